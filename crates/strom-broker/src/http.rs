//! The broker's HTTP listener (`strom.http.listeners`): `/metrics` (Prometheus text
//! format), `/health/live` and `/health/ready` (`metrics/health.rs`), and the read-only
//! web console at `/` (`console.rs`).
//!
//! Bounded like the Kafka listener: at most [`CONNECTIONS_MAX`] connections at once
//! (accepting waits beyond that, so the kernel's backlog absorbs bursts), each closed
//! [`CONNECTION_LIFETIME`] after it opened whatever it is doing (a keep-alive scraper simply
//! reconnects), each request answered within [`REQUEST_TIMEOUT`] or with 503. GET routes
//! read no body; the console's write actions (`console_actions.rs`) are POSTs of small forms
//! (at most `FORM_BYTES_MAX`, refused beyond), guarded against cross-site requests by a
//! per-process form token and the `Origin`/`Sec-Fetch-Site` headers.
//!
//! Secured by configuration: an `https://` listener serves TLS with the broker's `ssl.*`
//! PEM keys (or `strom.http.ssl.*` overrides), the handshake done off the accept loop
//! within [`HANDSHAKE_TIMEOUT`] (a stalled client holds one connection permit, nothing
//! else); `strom.http.authentication.method=BASIC` authenticates every request against the
//! broker's SASL users (`http_auth.rs`) except under `strom.http.authentication.skip.paths`.
//! Without authentication a non-loopback address is logged as a warning at start-up.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::Router;
use strom_registry::access::RegistryAccess;
use strom_registry::decode::Decoder;
use strom_security::{tokio_rustls, TlsServer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Sleep;

use crate::console_actions as actions;
use crate::http_auth::{Gate, HttpSecurity};
use crate::metrics::{health, HttpAuthentication, HttpListener, MetricsConfig};
use crate::server::BrokerContext;

/// HTTP connections served at once.
pub const CONNECTIONS_MAX: usize = 64;
/// The longest one HTTP connection stays open.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// The longest one request may take to be answered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the HTTP listener's handlers share beyond the broker's context: its security and
/// the schema registry the console reads schemas from (set once the in-process registry
/// has started, or at start-up from `strom.console.schema.registry.url`).
#[derive(Debug)]
pub struct HttpShared {
    pub security: Arc<HttpSecurity>,
    pub tls: Option<Arc<TlsServer>>,
    registry: std::sync::RwLock<Option<Arc<Decoder>>>,
}

impl HttpShared {
    /// Builds the listener's TLS (reading its files now: a bad key fails start-up) and
    /// authentication from the config.
    pub fn new(config: &MetricsConfig) -> Result<Arc<HttpShared>, crate::StartError> {
        let tls = match &config.http_tls {
            Some(settings) => Some(Arc::new(TlsServer::new(settings.clone()).map_err(|e| {
                crate::StartError::Tls(format!(
                    "the https:// HTTP listener (strom.http.listeners): {} (set strom.http.{} or {})",
                    e.reason, e.key, e.key
                ))
            })?)),
            None => None,
        };
        let registry = config.console_registry_url.as_ref().map(|url| {
            Arc::new(Decoder::new(RegistryAccess::Remote(
                strom_registry::client::RegistryClient::new(url, REQUEST_TIMEOUT),
            )))
        });
        Ok(Arc::new(HttpShared {
            security: Arc::new(HttpSecurity::new(
                config.http_authentication,
                config.http_skip_paths.clone(),
            )),
            tls,
            registry: std::sync::RwLock::new(registry),
        }))
    }

    /// The registry the console decodes records and shows schemas with, if any.
    pub fn registry(&self) -> Option<Arc<Decoder>> {
        match self.registry.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Points the console at a registry (the in-process one, once it has started).
    pub fn set_registry(&self, access: RegistryAccess) {
        let decoder = Some(Arc::new(Decoder::new(access)));
        match self.registry.write() {
            Ok(mut r) => *r = decoder,
            Err(poisoned) => *poisoned.into_inner() = decoder,
        }
    }
}

/// Binds the HTTP listener. `Ok(None)` when the default listener's port is taken (several
/// nodes on one machine): logged, not fatal. A configured listener that cannot be bound
/// fails start-up.
pub async fn bind(
    listener: &HttpListener,
    configured: bool,
    authentication: HttpAuthentication,
) -> Result<Option<TcpListener>, crate::StartError> {
    let address = listener.bind_address();
    match TcpListener::bind(&address).await {
        Ok(bound) => {
            if !listener.is_loopback() && authentication == HttpAuthentication::None {
                tracing::warn!(
                    %address,
                    "the HTTP listener (metrics, health, console) is bound to a non-loopback \
                     address without authentication; anyone who reaches it can read the \
                     broker's metrics and use the console (set \
                     strom.http.authentication.method=BASIC, or \
                     strom.http.listeners=http://127.0.0.1:PORT to keep it local)"
                );
            }
            Ok(Some(bound))
        }
        Err(error) if !configured => {
            tracing::warn!(
                %address, %error,
                "the default HTTP listener (metrics, health) cannot be bound; serving without \
                 it (set strom.http.listeners to a free http://host:port, or empty to silence this)"
            );
            Ok(None)
        }
        Err(source) => Err(crate::StartError::Bind {
            address: format!("{address} (strom.http.listeners)"),
            source,
        }),
    }
}

/// The routes, over the broker's context, behind the authentication gate.
pub fn router(context: Arc<BrokerContext>, shared: Arc<HttpShared>) -> Router {
    let gate = Gate {
        context: Arc::clone(&context),
        security: Arc::clone(&shared.security),
    };
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/", get(crate::console::home))
        .route("/clients", get(crate::console::clients))
        .route("/topics/{topic}", get(crate::console::topic))
        .route("/topics/{topic}/{partition}", get(crate::console::browse))
        .route("/topics", post(actions::create_topic))
        .route("/topics/{topic}/delete", post(actions::delete_topic))
        .route("/topics/{topic}/partitions", post(actions::add_partitions))
        .route("/topics/{topic}/configs", post(actions::set_config))
        .route("/topics/{topic}/produce", post(actions::produce))
        .route("/groups/{group}/reset", post(actions::reset_offsets))
        .route("/topics/{topic}/rates", get(crate::console::rates))
        .route("/chart.js", get(crate::console::chart_js))
        .route(
            "/schemas",
            get(crate::console_schemas::subjects).post(crate::console_schemas::register),
        )
        .route(
            "/schemas/config",
            post(crate::console_schemas::set_global_compatibility),
        )
        .route("/schemas/{subject}", get(crate::console_schemas::subject))
        .route(
            "/schemas/{subject}/config",
            post(crate::console_schemas::set_compatibility),
        )
        .layer(DefaultBodyLimit::max(actions::FORM_BYTES_MAX))
        .layer(Extension(shared))
        .layer(axum::middleware::from_fn_with_state(
            gate,
            crate::http_auth::authenticate,
        ))
        .with_state(context)
}

/// Serves `listener` until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    context: Arc<BrokerContext>,
    shared: Arc<HttpShared>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let bounded = Bounded::new(listener, shared.tls.clone());
    let app = router(context, shared).into_make_service_with_connect_info::<PeerAddr>();
    if let Err(error) = axum::serve(bounded, app).with_graceful_shutdown(stop).await {
        tracing::warn!(%error, "the HTTP listener stopped");
    }
}

async fn metrics(State(context): State<Arc<BrokerContext>>) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, crate::metrics::scrape(&context)).await {
        Ok(text) => ([(header::CONTENT_TYPE, strom_metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "scrape timed out\n").into_response(),
    }
}

pub(crate) async fn live() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        "{\"live\":true}",
    )
        .into_response()
}

async fn ready(State(context): State<Arc<BrokerContext>>) -> Response {
    let checks = health::readiness(&context);
    let status = if checks.iter().all(|c| c.ok) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        health::to_json(&checks),
    )
        .into_response()
}

/// A listener that holds a permit per open connection, and shakes hands with TLS clients
/// off the accept loop.
pub struct Bounded {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    tls: Option<Arc<TlsServer>>,
    handshakes: JoinSet<Option<(Limited, SocketAddr)>>,
}

impl Bounded {
    pub fn new(listener: TcpListener, tls: Option<Arc<TlsServer>>) -> Bounded {
        Bounded {
            listener,
            permits: Arc::new(Semaphore::new(CONNECTIONS_MAX)),
            tls,
            handshakes: JoinSet::new(),
        }
    }
}

/// A permit, then a TCP connection.
async fn accept_tcp(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    // Closed never: the semaphore lives as long as the listener.
    let permit = Arc::clone(permits).acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => {
            let _ = stream.set_nodelay(true);
            Some((stream, peer, permit))
        }
        Err(error) => {
            tracing::debug!(%error, "HTTP accept failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

enum Accepted {
    Tcp(Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)>),
    Handshake(Option<(Limited, SocketAddr)>),
}

impl axum::serve::Listener for Bounded {
    type Io = Limited;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Limited, SocketAddr) {
        loop {
            let handshaking = !self.handshakes.is_empty();
            let accepted = tokio::select! {
                tcp = accept_tcp(&self.listener, &self.permits) => Accepted::Tcp(tcp),
                Some(done) = self.handshakes.join_next(), if handshaking => {
                    Accepted::Handshake(done.ok().flatten())
                }
            };
            match accepted {
                Accepted::Tcp(None) | Accepted::Handshake(None) => {}
                Accepted::Handshake(Some(connection)) => return connection,
                Accepted::Tcp(Some((stream, peer, permit))) => match &self.tls {
                    None => return (Limited::new(Stream::Plain(stream), permit), peer),
                    Some(tls) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                        self.handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                                .await
                            {
                                Ok(Ok(tls)) => {
                                    Some((Limited::new(Stream::Tls(Box::new(tls)), permit), peer))
                                }
                                Ok(Err(error)) => {
                                    tracing::debug!(%peer, %error, "HTTP TLS handshake failed");
                                    None
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "HTTP TLS handshake timed out");
                                    None
                                }
                            }
                        });
                    }
                },
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// The client's address of an HTTP connection (axum's `ConnectInfo` of [`Bounded`]).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Bounded>> for PeerAddr {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Bounded>) -> PeerAddr {
        PeerAddr(*stream.remote_addr())
    }
}

/// An HTTP connection's bytes: plain TCP or TLS over TCP.
type Stream = crate::authn::Stream;

/// A connection that ends at its deadline: reads see end of input, writes fail.
pub struct Limited {
    stream: Stream,
    deadline: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl Limited {
    fn new(stream: Stream, permit: OwnedSemaphorePermit) -> Limited {
        Limited {
            stream,
            deadline: Box::pin(tokio::time::sleep(CONNECTION_LIFETIME)),
            _permit: permit,
        }
    }
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Limited {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
