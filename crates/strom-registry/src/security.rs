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

impl Authenticator {
    /// This check behind a [`CheckCache`]: a successful check is remembered for
    /// [`CHECK_CACHE_TTL`], so a burst of requests with the same credentials costs one check.
    pub fn cached(self) -> Authenticator {
        let cache = CheckCache::new(self, CHECK_CACHE_TTL);
        Authenticator(Arc::new(move |user: &str, password: &str| {
            cache.check(user, password)
        }))
    }
}

/// How long a successful check is trusted: a changed or removed password stops working at
/// most this long after the change.
pub const CHECK_CACHE_TTL: Duration = Duration::from_secs(5);
/// Successful checks remembered at once; when full (after dropping expired ones) a further
/// success is not remembered, so the cache never grows past this.
pub const CHECK_CACHE_ENTRIES_MAX: usize = 1024;

/// A user's remembered check: a keyed hash of the password that passed, and until when.
type Remembered = (Vec<u8>, std::time::Instant);
/// A check in flight: held while it runs, then holding its outcome for those who waited.
type Gate = Arc<std::sync::Mutex<Option<bool>>>;

/// Successful checks of an [`Authenticator`] that is costly (the standalone registry's
/// opens a SASL connection to the cluster), kept for [`CHECK_CACHE_TTL`]. An entry is the
/// user and an HMAC-SHA256 of the password under a random salt made at start-up (never the
/// password, and nothing a copy of the memory can be checked against offline without the
/// salt); it matches only the same user with the same password. Failed checks are never
/// remembered: a wrong password is checked (and refused and delayed by the cluster) each
/// time. Requests with credentials being checked wait for that check and take its
/// outcome, success or failure, instead of starting their own, so a burst (of right or of
/// wrong passwords) costs one check.
pub struct CheckCache {
    inner: Authenticator,
    ttl: Duration,
    salt: Vec<u8>,
    /// user -> the last password hash that passed, and until when.
    passed: std::sync::Mutex<std::collections::HashMap<String, Remembered>>,
    /// (user, hash) being checked -> its gate; bounded by the checks running at once
    /// (each holds a blocking-pool thread), removed when the last waiter is done.
    checking: std::sync::Mutex<std::collections::HashMap<(String, Vec<u8>), Gate>>,
}

impl std::fmt::Debug for CheckCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckCache")
    }
}

fn locked<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl CheckCache {
    /// A cache of `inner`'s successful checks, each trusted for `ttl`.
    pub fn new(inner: Authenticator, ttl: Duration) -> CheckCache {
        CheckCache {
            inner,
            ttl,
            salt: strom_security::scram::random_bytes(32),
            passed: Default::default(),
            checking: Default::default(),
        }
    }

    fn hash(&self, user: &str, password: &str) -> Vec<u8> {
        let mut data = Vec::with_capacity(user.len() + 1 + password.len());
        data.extend_from_slice(user.as_bytes());
        data.push(0);
        data.extend_from_slice(password.as_bytes());
        strom_security::ScramMechanism::Sha256.hmac(&self.salt, &data)
    }

    fn remembered(&self, user: &str, hash: &[u8]) -> bool {
        locked(&self.passed)
            .get(user)
            .is_some_and(|(passed, until)| {
                std::time::Instant::now() < *until && strom_security::constant_time_eq(passed, hash)
            })
    }

    fn remember(&self, user: &str, hash: Vec<u8>) {
        let mut passed = locked(&self.passed);
        let now = std::time::Instant::now();
        if passed.len() >= CHECK_CACHE_ENTRIES_MAX && !passed.contains_key(user) {
            passed.retain(|_, (_, until)| now < *until);
            if passed.len() >= CHECK_CACHE_ENTRIES_MAX {
                return;
            }
        }
        passed.insert(user.to_string(), (hash, now + self.ttl));
    }

    /// Whether `user` and `password` pass: remembered, or checked by the inner check.
    pub fn check(&self, user: &str, password: &str) -> bool {
        let hash = self.hash(user, password);
        if self.remembered(user, &hash) {
            return true;
        }
        let key = (user.to_string(), hash);
        let gate = Arc::clone(locked(&self.checking).entry(key.clone()).or_default());
        let ok = {
            let mut outcome = locked(&gate);
            match *outcome {
                // The check this request waited for answers it too.
                Some(ok) => ok,
                None => {
                    let ok = self.remembered(user, &key.1) || {
                        let ok = (self.inner.0)(user, password);
                        if ok {
                            self.remember(user, key.1.clone());
                        }
                        ok
                    };
                    *outcome = Some(ok);
                    ok
                }
            }
        };
        let mut checking = locked(&self.checking);
        // Only the map and this request hold the gate: nobody else waits on it.
        if Arc::strong_count(&gate) == 2 {
            checking.remove(&key);
        }
        ok
    }

    /// How many users' successful checks are remembered.
    pub fn len(&self) -> usize {
        locked(&self.passed).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

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

    /// A check against a password that can change, counting the checks made.
    fn counting(
        password: &Arc<std::sync::Mutex<String>>,
        checks: &Arc<std::sync::atomic::AtomicUsize>,
    ) -> Authenticator {
        let (password, checks) = (Arc::clone(password), Arc::clone(checks));
        Authenticator(Arc::new(move |user: &str, offered: &str| {
            checks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            user == "alice" && *locked(&password) == offered
        }))
    }

    #[test]
    fn a_burst_does_one_check_and_a_changed_password_stops_working_after_the_ttl() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let password = Arc::new(std::sync::Mutex::new("old".to_string()));
        let checks = Arc::new(AtomicUsize::new(0));
        let ttl = Duration::from_millis(400);
        let cache = Arc::new(CheckCache::new(counting(&password, &checks), ttl));
        // 16 requests at once with the same credentials: one check.
        let burst: Vec<_> = (0..16)
            .map(|_| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || cache.check("alice", "old"))
            })
            .collect();
        for request in burst {
            assert!(request.join().unwrap());
        }
        assert_eq!(checks.load(SeqCst), 1);
        assert_eq!(cache.len(), 1);
        // Wrong passwords are checked every time, and never remembered.
        assert!(!cache.check("alice", "wrong"));
        assert!(!cache.check("alice", "wrong"));
        assert!(!cache.check("bob", "old"));
        assert_eq!(checks.load(SeqCst), 4);
        // A burst of one wrong password shares the check in flight: one more check, not 16
        // in a row.
        let burst: Vec<_> = (0..16)
            .map(|_| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || cache.check("alice", "wrong"))
            })
            .collect();
        for request in burst {
            assert!(!request.join().unwrap());
        }
        let after_burst = checks.load(SeqCst);
        assert!(
            after_burst < 4 + 16,
            "{after_burst} checks for a burst of 16"
        );
        assert!(locked(&cache.checking).is_empty());
        assert_eq!(cache.len(), 1);
        checks.store(4, SeqCst);
        // The password changes: the old one still passes from the cache until the TTL ends,
        // then is checked again and refused; the new one passes.
        *locked(&password) = "new".to_string();
        assert!(cache.check("alice", "old"));
        assert_eq!(checks.load(SeqCst), 4);
        std::thread::sleep(ttl + Duration::from_millis(50));
        assert!(!cache.check("alice", "old"));
        assert!(cache.check("alice", "new"));
        assert!(cache.check("alice", "new"));
        assert_eq!(checks.load(SeqCst), 6);
        // Nothing the cache holds is the password.
        let held = locked(&cache.passed);
        let (hash, _) = held.get("alice").unwrap();
        assert!(!hash.windows(3).any(|w| w == b"new"));
    }

    #[test]
    fn the_cache_never_grows_past_its_bound() {
        let checks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&checks);
        let any = Authenticator(Arc::new(move |_: &str, _: &str| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            true
        }));
        let cache = CheckCache::new(any, Duration::from_secs(60));
        for i in 0..CHECK_CACHE_ENTRIES_MAX + 10 {
            assert!(cache.check(&format!("user{i}"), "pw"));
        }
        assert_eq!(cache.len(), CHECK_CACHE_ENTRIES_MAX);
        assert!(locked(&cache.checking).is_empty());
    }

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
