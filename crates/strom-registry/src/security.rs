//! The REST listener's security: TLS on `https://` listeners (the `ssl.*` PEM keys, as the
//! broker reads them, reloaded when the files change) and HTTP Basic authentication
//! (`authentication.method=BASIC`, Confluent's key), the credentials checked by an
//! [`Authenticator`] its embedder supplies (`strom server`: the broker's SASL users).
//!
//! TLS handshakes run off the accept loop, each within [`HANDSHAKE_TIMEOUT`], at most
//! [`HANDSHAKES_MAX`] at once (further connections wait in the kernel's backlog), so a
//! client that stalls holds one slot and nothing else. A request without valid credentials
//! is answered 401 with Confluent's JSON error body and `WWW-Authenticate: Basic`, after
//! [`FAILED_DELAY`] when credentials were offered and wrong.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use strom_security::{tokio_rustls, TlsServer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// The longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in progress at once.
pub const HANDSHAKES_MAX: usize = 64;
/// The pause before answering wrong credentials.
pub const FAILED_DELAY: Duration = Duration::from_millis(100);

/// A check of a user name and password.
pub type CheckFn = dyn Fn(&str, &str) -> bool + Send + Sync;

/// Checks a user name and password (blocking allowed: it runs on the blocking pool).
#[derive(Clone)]
pub struct Authenticator(pub Arc<CheckFn>);

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator")
    }
}

/// A TCP listener whose connections are TLS.
pub struct TlsListener {
    listener: TcpListener,
    tls: Arc<TlsServer>,
    slots: Arc<Semaphore>,
    handshakes: JoinSet<Option<Box<Handshaken>>>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, tls: Arc<TlsServer>) -> TlsListener {
        TlsListener {
            listener,
            tls,
            slots: Arc::new(Semaphore::new(HANDSHAKES_MAX)),
            handshakes: JoinSet::new(),
        }
    }
}

async fn accept_tcp(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = Arc::clone(slots).acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => Some((stream, peer, slot)),
        Err(error) => {
            tracing::debug!(%error, "registry accept failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

/// A connection whose TLS handshake completed, and its peer.
type Handshaken = (tokio_rustls::server::TlsStream<TcpStream>, SocketAddr);

enum Accepted {
    Tcp(Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)>),
    Done(Option<Box<Handshaken>>),
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        loop {
            let handshaking = !self.handshakes.is_empty();
            let accepted = tokio::select! {
                tcp = accept_tcp(&self.listener, &self.slots) => Accepted::Tcp(tcp),
                Some(done) = self.handshakes.join_next(), if handshaking => {
                    Accepted::Done(done.ok().flatten())
                }
            };
            match accepted {
                Accepted::Tcp(None) | Accepted::Done(None) => {}
                Accepted::Done(Some(connection)) => return *connection,
                Accepted::Tcp(Some((stream, peer, slot))) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.current());
                    self.handshakes.spawn(async move {
                        let _slot = slot;
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                        {
                            Ok(Ok(tls)) => Some(Box::new((tls, peer))),
                            Ok(Err(error)) => {
                                tracing::debug!(%peer, %error, "registry TLS handshake failed");
                                None
                            }
                            Err(_) => None,
                        }
                    });
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// What the Basic authentication layer needs.
#[derive(Clone)]
pub struct BasicAuth {
    pub authenticator: Authenticator,
    pub realm: String,
}

fn unauthorized(realm: &str) -> Response {
    let body = serde_json::json!({"error_code": 401, "message": "Unauthorized"}).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::client::CONTENT_TYPE),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// `Basic base64(user:password)` → (user, password).
pub fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    if user.is_empty() {
        return None;
    }
    Some((user.to_string(), password.to_string()))
}

/// Middleware: lets a request through only with credentials the authenticator accepts.
pub async fn basic(State(auth): State<BasicAuth>, request: Request, next: Next) -> Response {
    let offered = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_basic);
    let Some((user, password)) = offered else {
        return unauthorized(&auth.realm);
    };
    let check = Arc::clone(&auth.authenticator.0);
    let name = user.clone();
    let ok = tokio::task::spawn_blocking(move || check(&name, &password))
        .await
        .unwrap_or(false);
    if !ok {
        tracing::warn!(target: "strom::audit", user, "schema registry: authentication failed");
        tokio::time::sleep(FAILED_DELAY).await;
        return unauthorized(&auth.realm);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials() {
        assert_eq!(
            parse_basic("basic YWxpY2U6czM6Y3JldA=="),
            Some(("alice".into(), "s3:cret".into()))
        );
        assert_eq!(parse_basic("Digest x"), None);
        assert_eq!(parse_basic("Basic OnB3"), None);
    }
}
