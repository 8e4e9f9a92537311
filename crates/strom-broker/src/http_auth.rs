//! Authentication on the broker's HTTP listener (`strom.http.authentication.method=BASIC`):
//! HTTP Basic (RFC 7617) checked against the broker's own SASL users — the PLAIN users of
//! every SASL listener's JAAS config (`user_NAME="password"`) and the SCRAM-SHA-256/512
//! credentials of the metadata log (the password salted and hashed with the stored salt and
//! iterations, compared with the stored key; the password itself is never stored).
//!
//! The authenticated user is the request's principal (`User:NAME`): the console's actions
//! run as Kafka requests of that principal, so the authorizer and its ACLs decide them as
//! for any client ([`current_session`]). Without authentication every request is
//! `User:ANONYMOUS`, as before. Paths in `strom.http.authentication.skip.paths` (and below
//! them) are served without asking, e.g. `/metrics` for a scraper and `/health` for probes.
//!
//! A failure is answered 401 with `WWW-Authenticate: Basic` after
//! `connection.failed.authentication.delay.ms`, counted in
//! `kafka_server_socket_server_metrics_failed_authentication_total` and logged on the
//! `strom::audit` target. A SCRAM check costs `iterations` hashes (4096 and more): it runs on
//! the blocking pool, and a success is remembered (a keyed digest of the password, never the
//! password) for [`VERIFIED_MAX`] users while their stored credential stays the same, so a
//! page that polls does not redo it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use strom_meta::MetadataImage;
use strom_security::constant_time_eq;
use strom_security::scram::ScramMechanism;

use crate::metrics::HttpAuthentication;
use crate::principal::{KafkaPrincipal, Session};
use crate::server::BrokerContext;

/// Users whose last successful SCRAM check is remembered.
pub const VERIFIED_MAX: usize = 1024;
/// The realm named in `WWW-Authenticate`.
pub const REALM: &str = "Strom";

/// (user, mechanism id) → (keyed digest of the password, the stored key it matched).
type Verified = HashMap<(String, i8), (Vec<u8>, Vec<u8>)>;

/// A blocking check of a user name and password against the broker's SASL users.
pub type CredentialsChecker = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// The listener's authentication settings and what it remembers.
pub struct HttpSecurity {
    pub method: HttpAuthentication,
    pub skip_paths: Vec<String>,
    /// Successful SCRAM checks.
    verified: Mutex<Verified>,
    /// The key of those digests, drawn when the process starts.
    secret: Vec<u8>,
}

impl std::fmt::Debug for HttpSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSecurity")
            .field("method", &self.method)
            .field("skip_paths", &self.skip_paths)
            .finish_non_exhaustive()
    }
}

impl HttpSecurity {
    pub fn new(method: HttpAuthentication, skip_paths: Vec<String>) -> HttpSecurity {
        HttpSecurity {
            method,
            skip_paths,
            verified: Mutex::new(HashMap::new()),
            secret: strom_security::scram::random_bytes(32),
        }
    }

    pub(crate) fn skipped(&self, path: &str) -> bool {
        self.skip_paths.iter().any(|skip| {
            path == skip
                || path
                    .strip_prefix(skip.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

/// Who is asking, for the request being served (set by [`authenticate`]).
#[derive(Debug, Clone)]
pub struct HttpIdentity {
    pub principal: KafkaPrincipal,
    pub peer: SocketAddr,
}

tokio::task_local! {
    static IDENTITY: HttpIdentity;
}

/// The principal of the HTTP request being served (`User:ANONYMOUS` outside one, or
/// without authentication).
pub fn current_identity() -> HttpIdentity {
    IDENTITY.try_with(Clone::clone).unwrap_or(HttpIdentity {
        principal: KafkaPrincipal::anonymous(),
        peer: SocketAddr::from(([127, 0, 0, 1], 0)),
    })
}

/// The Kafka session the console acts in for the request being served: its principal and
/// address, on the first served client listener.
pub fn current_session(context: &BrokerContext) -> Option<Session> {
    let identity = current_identity();
    let served = context.config.listeners.served.first()?;
    let mut session =
        Session::anonymous(identity.peer, served.listener.name.clone(), served.protocol);
    session.principal = identity.principal;
    Some(session)
}

/// The gate's state.
#[derive(Clone)]
pub struct Gate {
    pub context: Arc<BrokerContext>,
    pub security: Arc<HttpSecurity>,
}

/// Middleware: authenticates the request (unless its path is skipped) and runs the rest
/// of the stack with its identity.
pub async fn authenticate(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<crate::http::PeerAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0 .0);
    let anonymous = HttpIdentity {
        principal: KafkaPrincipal::anonymous(),
        peer,
    };
    if gate.security.method == HttpAuthentication::None
        || gate.security.skipped(request.uri().path())
    {
        return IDENTITY.scope(anonymous, next.run(request)).await;
    }
    let offered = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_basic);
    let Some((user, password)) = offered else {
        // No credentials: the browser's first request. Asked for, not counted as a failure.
        return challenge("authentication required");
    };
    let checking = gate.clone();
    let name = user.clone();
    let ok = tokio::task::spawn_blocking(move || verify(&checking, &name, &password))
        .await
        .unwrap_or(false);
    if !ok {
        gate.context.metrics.connections.failed_authentication.inc();
        crate::authn::audit_failure(
            peer,
            "http",
            Some("BASIC"),
            &format!("wrong user name or password (user {user})"),
        );
        let delay = gate.context.config.listeners.failed_authentication_delay_ms;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        return challenge("wrong user name or password");
    }
    let identity = HttpIdentity {
        principal: KafkaPrincipal::user(user),
        peer,
    };
    IDENTITY.scope(identity, next.run(request)).await
}

pub(crate) fn challenge(why: &str) -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{why}: this listener asks for HTTP Basic authentication with a SASL user\n"),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("Basic realm=\"{REALM}\", charset=\"UTF-8\""))
    {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// `Basic base64(user:password)` → (user, password).
pub(crate) fn parse_basic(value: &str) -> Option<(String, String)> {
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

/// Whether `password` is `user`'s: a PLAIN user of some SASL listener, or a SCRAM
/// credential of the metadata log. Blocking (a SCRAM check hashes `iterations` times).
pub fn verify(gate: &Gate, user: &str, password: &str) -> bool {
    let context = &gate.context;
    let plain = context
        .config
        .listeners
        .served
        .iter()
        .filter_map(|served| served.sasl.as_ref().map(|s| &s.plain_users));
    verify_users(
        &gate.security,
        plain,
        &context.metadata.image(),
        user,
        password,
    )
}

/// Whether `password` is `user`'s among `plain` (PLAIN users, name to password) or the
/// SCRAM credentials of `image`; successes are remembered in `security`. Blocking.
pub fn verify_users<'a>(
    security: &HttpSecurity,
    plain: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
    image: &MetadataImage,
    user: &str,
    password: &str,
) -> bool {
    for users in plain {
        if let Some(expected) = users.get(user) {
            if constant_time_eq(expected.as_bytes(), password.as_bytes()) {
                return true;
            }
        }
    }
    for mechanism in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
        let Some(credential) = image.scram_credential(user, mechanism.id()) else {
            continue;
        };
        let Ok(iterations) = u32::try_from(credential.iterations) else {
            continue;
        };
        let mut keyed = Vec::with_capacity(user.len() + password.len() + 1);
        keyed.extend_from_slice(user.as_bytes());
        keyed.push(0);
        keyed.extend_from_slice(password.as_bytes());
        let digest = ScramMechanism::Sha256.hmac(&security.secret, &keyed);
        let key = (user.to_string(), mechanism.id());
        let remembered = {
            let verified = match security.verified.lock() {
                Ok(v) => v,
                Err(poisoned) => poisoned.into_inner(),
            };
            verified.get(&key).cloned()
        };
        if let Some((known, stored)) = remembered {
            if constant_time_eq(&known, &digest) && stored == credential.stored_key {
                return true;
            }
        }
        let salted = mechanism.salted_password(password.as_bytes(), &credential.salt, iterations);
        let stored = mechanism.hash(&mechanism.hmac(&salted, b"Client Key"));
        if constant_time_eq(&stored, &credential.stored_key) {
            let mut verified = match security.verified.lock() {
                Ok(v) => v,
                Err(poisoned) => poisoned.into_inner(),
            };
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
            verified.insert(key, (digest, stored));
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_and_skipped_paths() {
        // "alice:s3:cret" — the password may hold colons.
        assert_eq!(
            parse_basic("Basic YWxpY2U6czM6Y3JldA=="),
            Some(("alice".into(), "s3:cret".into()))
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic("Basic OnB3"), None); // ":pw", no user
        let security = HttpSecurity::new(
            HttpAuthentication::Basic,
            vec!["/metrics".into(), "/health".into()],
        );
        assert!(security.skipped("/metrics") && security.skipped("/health/ready"));
        assert!(
            !security.skipped("/metricsx")
                && !security.skipped("/")
                && !security.skipped("/topics")
        );
    }
}
