//! A JWKS fetched over `https://` (or `http://`), as Kafka's `RefreshingHttpsJwks` keeps it.
//!
//! - The first fetch happens when the validator is built (broker start): if it fails, start-up
//!   fails naming `sasl.oauthbearer.jwks.endpoint.url`, as Kafka's "Could not refresh JWKS".
//! - A background thread (`strom-jwks`, with its own single-threaded tokio runtime, so it
//!   never blocks or depends on the broker's runtime) fetches again every
//!   `sasl.oauthbearer.jwks.endpoint.refresh.ms`. A failed fetch is retried with exponential
//!   back-off starting at `sasl.oauthbearer.jwks.endpoint.retry.backoff.ms`, for at most
//!   `sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms` in all (Kafka's `Retry`); when
//!   every attempt fails the previous keys stay in use and a warning is logged.
//! - Validation never does I/O: it reads the cached keys. A token whose `kid` is not among
//!   them is refused, and the refresher is woken to fetch at once ("expedited", Kafka's
//!   `maybeExpediteRefresh`): at most once per key id per [`MISSING_KID_RETRY`], for at most
//!   [`MISSING_KIDS_MAX`] key ids at a time, ids longer than [`KID_BYTES_MAX`] ignored; and
//!   however many key ids ask, fetches are at least [`EXPEDITED_INTERVAL_MIN`] apart (a
//!   request meanwhile waits, it is not lost). So clients sending made-up key ids cannot
//!   make the broker fetch more than once a second.
//! - Each attempt (connect, TLS handshake, request, response) is bounded by
//!   [`FETCH_TIMEOUT`], and the response body by `JWKS_BYTES_MAX`; only status 200 is used
//!   (redirects are not followed).
//!
//! The thread ends when the validator is dropped (its wake-up channel disconnects).

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

use crate::oauthbearer::{parse_jwks, Jwk, JWKS_BYTES_MAX};
use crate::tls::TlsSettings;

/// The bound on one fetch attempt (connect, handshake, request and response).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an unknown key id does not trigger another expedited fetch.
pub const MISSING_KID_RETRY: Duration = Duration::from_secs(60);
/// How many unknown key ids are remembered (the oldest is forgotten first).
pub const MISSING_KIDS_MAX: usize = 16;
/// Key ids longer than this never trigger a fetch.
pub const KID_BYTES_MAX: usize = 1000;
/// The shortest interval between two fetches when the second is an expedited one.
pub const EXPEDITED_INTERVAL_MIN: Duration = Duration::from_secs(1);
/// The shortest interval between scheduled fetches.
pub const REFRESH_MIN: Duration = Duration::from_secs(1);

/// Where and how to fetch.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    pub url: String,
    /// `sasl.oauthbearer.jwks.endpoint.refresh.ms`.
    pub refresh: Duration,
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    /// TLS trust for `https://` (the `ssl.*` options of the listener's OAUTHBEARER JAAS
    /// config, as Kafka's `JaasOptionsUtils`; else the system's CA bundle).
    pub tls: Option<TlsSettings>,
}

/// A parsed endpoint.
struct Endpoint {
    url: String,
    uri: Uri,
    host: String,
    port: u16,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl Endpoint {
    fn new(settings: &FetchSettings) -> Result<Endpoint, String> {
        let uri: Uri = settings
            .url
            .parse()
            .map_err(|e| format!("not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("expected an https://, http:// or file:// URL".into()),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or("the URL has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            let settings = match &settings.tls {
                Some(settings) => settings.clone(),
                None => TlsSettings::from_lookup(&|_| None).map_err(|e| e.to_string())?,
            };
            let config = settings
                .client_config()
                .map_err(|e| format!("TLS trust for the JWKS endpoint: {e}"))?;
            let name =
                ServerName::try_from(host.clone()).map_err(|e| format!("host {host:?}: {e}"))?;
            Some((config, name))
        } else {
            None
        };
        Ok(Endpoint {
            url: settings.url.clone(),
            uri,
            host,
            port,
            tls,
        })
    }

    /// One GET within [`FETCH_TIMEOUT`], the parsed keys.
    async fn fetch(&self) -> Result<Vec<Jwk>, String> {
        let body = match tokio::time::timeout(FETCH_TIMEOUT, self.get()).await {
            Ok(result) => result?,
            Err(_) => return Err(format!("no answer within {FETCH_TIMEOUT:?}")),
        };
        parse_jwks(&body)
    }

    async fn get(&self) -> Result<Bytes, String> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect to {}:{}: {e}", self.host, self.port))?;
        match &self.tls {
            Some((config, name)) => {
                let stream = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS handshake: {e}"))?;
                self.exchange(TokioIo::new(stream)).await
            }
            None => self.exchange(TokioIo::new(tcp)).await,
        }
    }

    async fn exchange<IO>(&self, io: IO) -> Result<Bytes, String>
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "JWKS endpoint connection");
            }
        });
        let authority = self
            .uri
            .authority()
            .map_or_else(|| self.host.clone(), |a| a.as_str().to_string());
        let path = self
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let result = async {
            let request = Request::get(path)
                .header("host", authority)
                .header("accept", "application/json")
                .header("user-agent", "strom")
                .body(Empty::<Bytes>::new())
                .map_err(|e| format!("request: {e}"))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("HTTP: {e}"))?;
            let status = response.status().as_u16();
            if status != 200 {
                return Err(format!("HTTP status {status} (expected 200)"));
            }
            let limit = usize::try_from(JWKS_BYTES_MAX).unwrap_or(usize::MAX);
            Limited::new(response.into_body(), limit)
                .collect()
                .await
                .map(|body| body.to_bytes())
                .map_err(|e| format!("reading the response (at most {JWKS_BYTES_MAX} bytes): {e}"))
        }
        .await;
        driver.abort();
        result
    }

    /// Fetches, retrying with exponential back-off for at most `backoff_max` in all.
    async fn fetch_with_retry(
        &self,
        backoff: Duration,
        backoff_max: Duration,
    ) -> Result<Vec<Jwk>, String> {
        let end = Instant::now() + backoff_max;
        let mut wait = backoff.max(Duration::from_millis(1));
        loop {
            match self.fetch().await {
                Ok(keys) => return Ok(keys),
                Err(reason) => {
                    let left = end.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(reason);
                    }
                    tracing::debug!(url = %self.url, %reason, retry_in = ?wait.min(left),
                        "JWKS fetch failed; retrying");
                    tokio::time::sleep(wait.min(left)).await;
                    wait = wait.saturating_mul(2);
                }
            }
        }
    }
}

/// The cached keys and the unknown key ids recently asked for.
struct Shared {
    url: String,
    keys: RwLock<Arc<Vec<Jwk>>>,
    missing: Mutex<Vec<(String, Instant)>>,
}

/// A JWKS endpoint's keys, kept fresh by a background thread.
pub(crate) struct RemoteJwks {
    shared: Arc<Shared>,
    wake: Mutex<Sender<()>>,
}

impl RemoteJwks {
    /// Fetches the keys now (blocking the caller up to the retry budget plus one attempt)
    /// and starts the refresher.
    pub(crate) fn start(settings: &FetchSettings) -> Result<RemoteJwks, String> {
        let endpoint = Endpoint::new(settings)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the JWKS refresher's runtime: {e}"))?;
        let (wake, woken) = mpsc::channel::<()>();
        let (first_tx, first_rx) = mpsc::sync_channel::<Result<Vec<Jwk>, String>>(1);
        let refresh = settings.refresh.max(REFRESH_MIN);
        let (backoff, backoff_max) = (settings.retry_backoff, settings.retry_backoff_max);
        // The validator holds the only strong reference; the thread a weak one, so it ends
        // (at its next wake-up) once the validator is gone.
        let shared = Arc::new(Shared {
            url: settings.url.clone(),
            keys: RwLock::new(Arc::new(Vec::new())),
            missing: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("strom-jwks".into())
            .spawn(move || {
                let first = runtime.block_on(endpoint.fetch_with_retry(backoff, backoff_max));
                let fetched = first.is_ok();
                if first_tx.send(first).is_ok() && fetched {
                    refresher(
                        &runtime,
                        &endpoint,
                        &weak,
                        &woken,
                        refresh,
                        backoff,
                        backoff_max,
                    );
                }
            })
            .map_err(|e| format!("cannot start the JWKS refresher thread: {e}"))?;
        match first_rx.recv() {
            Ok(Ok(keys)) => {
                *shared.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
                Ok(RemoteJwks {
                    shared,
                    wake: Mutex::new(wake),
                })
            }
            Ok(Err(reason)) => Err(format!("could not fetch the JWKS: {reason}")),
            Err(_) => Err("the JWKS refresher ended during start-up".into()),
        }
    }

    /// The current keys (no I/O).
    pub(crate) fn keys(&self) -> Arc<Vec<Jwk>> {
        self.shared
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A token named `kid`, which no cached key has: wakes the refresher unless this key id
    /// was asked for within [`MISSING_KID_RETRY`]. True when a fetch was requested.
    pub(crate) fn missing_kid(&self, kid: &str) -> bool {
        // Logged escaped and cut: the key id comes from an unauthenticated client.
        let shown = &kid[..kid.floor_char_boundary_compat(64)];
        if kid.len() > KID_BYTES_MAX {
            tracing::warn!(url = %self.shared.url, kid = ?shown, bytes = kid.len(),
                "a token's key id is too long to look up");
            return false;
        }
        let now = Instant::now();
        {
            let mut missing = self
                .shared
                .missing
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match missing.iter_mut().find(|(k, _)| k == kid) {
                Some((_, next)) if *next > now => return false,
                Some((_, next)) => *next = now + MISSING_KID_RETRY,
                None => {
                    if missing.len() >= MISSING_KIDS_MAX {
                        missing.remove(0);
                    }
                    missing.push((kid.to_string(), now + MISSING_KID_RETRY));
                }
            }
        }
        tracing::info!(url = %self.shared.url, kid = ?shown, "no JWKS key with this key id; fetching the JWKS now");
        let wake = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        wake.send(()).is_ok()
    }
}

/// The refresher's loop: fetch every `refresh`, or at once when woken; ends when the
/// validator is dropped.
fn refresher(
    runtime: &tokio::runtime::Runtime,
    endpoint: &Endpoint,
    shared: &Weak<Shared>,
    woken: &mpsc::Receiver<()>,
    refresh: Duration,
    backoff: Duration,
    backoff_max: Duration,
) {
    let mut last_fetch = Instant::now();
    loop {
        match woken.recv_timeout(refresh) {
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) => {
                // Expedited: not sooner than EXPEDITED_INTERVAL_MIN after the last fetch.
                let since = last_fetch.elapsed();
                if since < EXPEDITED_INTERVAL_MIN {
                    std::thread::sleep(EXPEDITED_INTERVAL_MIN - since);
                }
            }
        }
        while woken.try_recv().is_ok() {}
        last_fetch = Instant::now();
        let result = runtime.block_on(endpoint.fetch_with_retry(backoff, backoff_max));
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match result {
            Ok(keys) => {
                tracing::info!(url = %endpoint.url, keys = keys.len(), "JWKS refreshed");
                let mut missing = shared.missing.lock().unwrap_or_else(|p| p.into_inner());
                missing.retain(|(kid, _)| !keys.iter().any(|k| k.kid() == Some(kid.as_str())));
                drop(missing);
                *shared.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
            }
            Err(reason) => tracing::warn!(url = %endpoint.url, %reason,
                "JWKS refresh failed; keeping the previous keys"),
        }
    }
}

/// `str::floor_char_boundary` is unstable: the largest char boundary at or below `index`.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, index: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, index: usize) -> usize {
        let mut i = index.min(self.len());
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}
