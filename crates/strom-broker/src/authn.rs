//! Authentication on the broker's side of a connection: the transport (plain TCP or TLS,
//! with the principal of a client certificate) and the SASL exchange (Kafka's
//! `SaslServerAuthenticator`).
//!
//! SASL, as Kafka runs it:
//! - Before authentication only ApiVersions, SaslHandshake and SaslAuthenticate are served;
//!   anything else closes the connection ("unexpected request during SASL handshake"), and
//!   frames are bounded by [`SASL_RECEIVE_BYTES_MAX`] (Kafka's `sasl.server.max.receive.size`
//!   default) until the exchange has succeeded.
//! - SaslHandshake v0 means the tokens then come as raw size-prefixed frames (no Kafka
//!   header) and are answered the same way; v1 means they come in SaslAuthenticate requests
//!   (KIP-152).
//! - A mechanism not enabled is answered UNSUPPORTED_SASL_MECHANISM with the enabled list,
//!   then the connection is closed. A failed exchange is answered SASL_AUTHENTICATION_FAILED
//!   with a message, after `connection.failed.authentication.delay.ms`, and the connection is
//!   closed; each failure is counted (`/metrics`) and logged on the `strom::audit` target.
//! - OAUTHBEARER (RFC 7628): a refused token is answered with Kafka's error JSON as a
//!   challenge (the reason goes to the audit line only); the client's `%x01` reply then fails
//!   the exchange with that JSON as the message.
//! - With `connections.max.reauth.ms`, or an OAUTHBEARER token (whose `exp` bounds the
//!   session as Kafka's `CREDENTIAL_LIFETIME_MS`), a successful SaslAuthenticate (v1+)
//!   carries the session lifetime; the client re-authenticates within it (KIP-368: SaslHandshake and
//!   SaslAuthenticate again on the same connection, same principal required), or the
//!   connection is closed at its next request after the session expired.

use std::sync::Arc;
use std::time::Duration;

use strom_security::oauthbearer::{self, ServerStep, Validator};
use strom_security::scram::{parse_client_first, ScramCredential, ScramMechanism, ScramServer};
use strom_security::{plain_authenticate, subject_name, tokio_rustls, TlsServer};
use tokio::net::TcpStream;

use crate::listeners::{SaslServerSettings, ServedListener};
use crate::principal::{KafkaPrincipal, SecurityProtocol};

/// The largest frame read before a SASL exchange succeeds (Kafka's
/// `sasl.server.max.receive.size` default).
pub const SASL_RECEIVE_BYTES_MAX: usize = 524_288;
/// The tracing target of authentication failures (and, from the authorizer, denials).
pub use strom_meta::acl::AUDIT_TARGET;

/// One listener as it runs: its name and protocol, the TLS configuration (reloaded when its
/// files change), and SASL's settings.
#[derive(Debug)]
pub struct ListenerRuntime {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub tls: Option<TlsServer>,
    pub sasl: Option<SaslServerSettings>,
    /// OAUTHBEARER's token validator (with its JWKS keys), when enabled.
    pub oauth: Option<Arc<Validator>>,
    /// `connection.failed.authentication.delay.ms`.
    pub failed_delay: Duration,
}

impl ListenerRuntime {
    /// Builds the runtime of a configured listener: reads its TLS files now, so a bad key
    /// or certificate fails start-up naming its key.
    pub fn new(
        served: &ServedListener,
        failed_delay_ms: u64,
    ) -> Result<ListenerRuntime, strom_security::TlsError> {
        let tls =
            match &served.tls {
                Some(settings) => Some(TlsServer::new(settings.clone()).map_err(|e| {
                    strom_security::TlsError {
                        key: e.key,
                        reason: format!("listener {}: {}", served.listener.name, e.reason),
                    }
                })?),
                None => None,
            };
        let oauth = match served.sasl.as_ref().and_then(|s| s.oauth.as_ref()) {
            None => None,
            Some(settings) => {
                if matches!(settings, oauthbearer::OAuthSettings::Unsecured(_)) {
                    tracing::warn!(listener = %served.listener.name,
                        "OAUTHBEARER accepts unsecured tokens (alg none): anyone can name any \
                         principal; set sasl.oauthbearer.jwks.endpoint.url for signed tokens");
                }
                Some(Arc::new(Validator::new(settings).map_err(|e| {
                    strom_security::TlsError {
                        key: "sasl.oauthbearer.jwks.endpoint.url".into(),
                        reason: format!("listener {}: {}", served.listener.name, e),
                    }
                })?))
            }
        };
        Ok(ListenerRuntime {
            name: served.listener.name.clone(),
            protocol: served.protocol,
            tls,
            sasl: served.sasl.clone(),
            oauth,
            failed_delay: Duration::from_millis(failed_delay_ms),
        })
    }
}

/// A connection's byte stream: plain TCP or TLS over TCP.
pub type Stream = strom_security::Transport<tokio_rustls::server::TlsStream<TcpStream>>;

/// Why a transport was not established (logged by the caller).
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("TLS handshake did not complete within {0:?}")]
    Timeout(Duration),
    /// The client certificate's subject could not be mapped to a principal.
    #[error("{0}")]
    Principal(String),
}

/// Sets up the transport of an accepted connection: the TLS handshake on SSL and SASL_SSL
/// listeners (within `timeout`), and the principal it gives (`User:<mapped subject>` for a
/// client certificate, else `User:ANONYMOUS`).
pub async fn establish(
    tcp: TcpStream,
    listener: &ListenerRuntime,
    timeout: Duration,
) -> Result<(Stream, KafkaPrincipal), TransportError> {
    let Some(tls) = &listener.tls else {
        return Ok((Stream::Plain(tcp), KafkaPrincipal::anonymous()));
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
    // A client that speaks anything but TLS fails here (rustls refuses the first record),
    // and one that stalls is bounded by the timeout: either way only this connection ends.
    let stream = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(TransportError::Handshake(error)),
        Err(_) => return Err(TransportError::Timeout(timeout)),
    };
    let principal = match stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
    {
        None => KafkaPrincipal::anonymous(),
        Some(cert) => {
            let subject = subject_name(cert.as_ref())
                .map_err(|e| TransportError::Principal(e.to_string()))?;
            let name = tls
                .principal_mapper()
                .map(&subject)
                .map_err(|e| TransportError::Principal(e.to_string()))?;
            KafkaPrincipal::user(name)
        }
    };
    Ok((Stream::Tls(Box::new(stream)), principal))
}

/// Where a SASL exchange stands.
#[derive(Debug)]
enum Exchange {
    Plain,
    ScramFirst(ScramMechanism),
    /// With the owner and expiry of the delegation token authenticating, if it is one.
    ScramFinal(Box<ScramServer>, Option<(KafkaPrincipal, i64)>),
    /// OAUTHBEARER: `Some(json)` once the token was refused and the error JSON sent.
    OAuthBearer(Option<String>),
    Finished,
}

/// The SASL state of one connection.
#[derive(Debug)]
pub struct SaslSession {
    /// The mechanism chosen by the last SaslHandshake, and whether tokens come raw (v0).
    pending: Option<(String, bool, Exchange)>,
    /// Authenticated (at least once): the principal and mechanism.
    pub authenticated: Option<(KafkaPrincipal, String)>,
    /// When the session expires (`connections.max.reauth.ms`, or the token's `exp`), if it
    /// does.
    pub expires_at: Option<tokio::time::Instant>,
    /// When the credential of the last successful exchange expires (an OAUTHBEARER token's
    /// `exp`, milliseconds since the epoch): the session lasts no longer (KIP-368).
    pub credential_expires_ms: Option<i64>,
    /// Why the last token was refused (for the audit line; the client gets only Kafka's
    /// error JSON).
    pub rejected: Option<String>,
}

/// What a delegation token authenticates with (`tokens.rs`): its SCRAM credential, its
/// owner (the session's principal) and its expiry (which bounds the session, KIP-368).
#[derive(Debug, Clone)]
pub struct TokenCredential {
    pub credential: ScramCredential,
    pub owner: KafkaPrincipal,
    pub expiry_timestamp_ms: i64,
}

/// Looks up SCRAM credentials: a user's by name, a live delegation token's by token id.
pub struct Credentials<'a> {
    pub user: &'a dyn Fn(&str, ScramMechanism) -> Option<ScramCredential>,
    pub token: &'a dyn Fn(&str, ScramMechanism) -> Option<TokenCredential>,
}

/// The result of one SASL step.
#[derive(Debug)]
pub enum Step {
    /// Send this token back; the exchange goes on.
    Continue(Vec<u8>),
    /// Authenticated as `principal`: send the token back.
    Done {
        token: Vec<u8>,
        principal: KafkaPrincipal,
    },
    /// Refused: answer SASL_AUTHENTICATION_FAILED with this message and close.
    Failed(String),
}

impl SaslSession {
    pub fn new() -> SaslSession {
        SaslSession {
            pending: None,
            authenticated: None,
            expires_at: None,
            credential_expires_ms: None,
            rejected: None,
        }
    }

    /// Whether a SaslHandshake has chosen a mechanism and its tokens are awaited.
    pub fn in_exchange(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether tokens are expected as raw frames (after SaslHandshake v0).
    pub fn expects_raw_tokens(&self) -> bool {
        matches!(self.pending, Some((_, true, _)))
    }

    /// A SaslHandshake for `mechanism`: whether it is enabled (then tokens are awaited).
    /// A re-authentication must keep the mechanism of the first authentication.
    pub fn handshake(
        &mut self,
        settings: &SaslServerSettings,
        mechanism: &str,
        version: i16,
    ) -> bool {
        if !settings.mechanisms.iter().any(|m| m == mechanism) {
            return false;
        }
        if let Some((_, first)) = &self.authenticated {
            if first != mechanism {
                return false;
            }
        }
        let exchange = match ScramMechanism::from_name(mechanism) {
            Some(scram) => Exchange::ScramFirst(scram),
            None if mechanism == oauthbearer::MECHANISM => Exchange::OAuthBearer(None),
            None => Exchange::Plain,
        };
        self.pending = Some((mechanism.to_string(), version == 0, exchange));
        true
    }

    /// One token of the exchange. `credentials` looks up SCRAM credentials (of users and
    /// of delegation tokens); `oauth` validates OAUTHBEARER tokens.
    pub fn step(
        &mut self,
        settings: &SaslServerSettings,
        oauth: Option<&Validator>,
        token: &[u8],
        credentials: &Credentials<'_>,
    ) -> Step {
        let Some((mechanism, raw, exchange)) = self.pending.take() else {
            return Step::Failed(
                "Unexpected SaslAuthenticate request: no SaslHandshake before it".into(),
            );
        };
        let mut credential_expires_ms = None;
        let outcome = match exchange {
            Exchange::OAuthBearer(error) => match oauth {
                None => Err("OAUTHBEARER is not configured on this listener".to_string()),
                Some(validator) => {
                    match oauthbearer::server_step(validator, error.as_deref(), token) {
                        ServerStep::Done(valid) => {
                            credential_expires_ms = Some(valid.expires_at_ms);
                            Ok((
                                Vec::new(),
                                Some(KafkaPrincipal::user(valid.principal)),
                                Exchange::Finished,
                            ))
                        }
                        ServerStep::Challenge(rejected) => {
                            let json = rejected.json();
                            self.rejected = Some(rejected.reason);
                            Ok((
                                json.clone().into_bytes(),
                                None,
                                Exchange::OAuthBearer(Some(json)),
                            ))
                        }
                        ServerStep::Failed(message) => Err(message),
                    }
                }
            },
            Exchange::Plain => match plain_authenticate(token, &settings.plain_users) {
                Ok(user) => Ok((
                    Vec::new(),
                    Some(KafkaPrincipal::user(user)),
                    Exchange::Finished,
                )),
                Err(error) => Err(error.to_string()),
            },
            Exchange::ScramFirst(scram) => match parse_client_first(token) {
                Ok(first) => {
                    // Kafka's ScramSaslServer: with `tokenauth=true` the user name is a token
                    // id and the principal is the token's owner, marked token-authenticated.
                    // An unknown or expired token gets a made-up salt and fails at the proof,
                    // as an unknown user does (its reason goes to the audit line).
                    let (known, token_owner) = if first.token_auth {
                        match (credentials.token)(&first.user, scram) {
                            Some(t) => (Some(t.credential), Some((t.owner, t.expiry_timestamp_ms))),
                            None => {
                                self.rejected = Some(format!(
                                    "delegation token {:?} is unknown or expired",
                                    first.user
                                ));
                                (None, None)
                            }
                        }
                    } else {
                        ((credentials.user)(&first.user, scram), None)
                    };
                    let (server, reply) = ScramServer::first(scram, first, known);
                    Ok((
                        reply,
                        None,
                        Exchange::ScramFinal(Box::new(server), token_owner),
                    ))
                }
                Err(error) => Err(format!("Authentication failed: {error}")),
            },
            Exchange::ScramFinal(server, token_owner) => {
                let user = server.user().to_string();
                match server.last(token) {
                    Ok(reply) => {
                        let principal = match token_owner {
                            Some((owner, expiry_ms)) => {
                                credential_expires_ms = Some(expiry_ms);
                                KafkaPrincipal {
                                    token_authenticated: true,
                                    ..owner
                                }
                            }
                            None => KafkaPrincipal::user(user),
                        };
                        Ok((reply, Some(principal), Exchange::Finished))
                    }
                    Err(error) => Err(error.to_string()),
                }
            }
            Exchange::Finished => Err("Unexpected SASL token after the exchange completed".into()),
        };
        match outcome {
            Err(message) => Step::Failed(message),
            Ok((token, None, exchange)) => {
                self.pending = Some((mechanism, raw, exchange));
                Step::Continue(token)
            }
            Ok((token, Some(principal), _)) => {
                if let Some((first, _)) = &self.authenticated {
                    if *first != principal {
                        return Step::Failed(format!(
                            "Cannot change principals during re-authentication from {first}: {principal}"
                        ));
                    }
                }
                self.authenticated = Some((principal.clone(), mechanism));
                self.credential_expires_ms = credential_expires_ms;
                self.rejected = None;
                Step::Done { token, principal }
            }
        }
    }
}

impl Default for SaslSession {
    fn default() -> Self {
        SaslSession::new()
    }
}

/// Logs an authentication failure on the audit target.
pub fn audit_failure(
    peer: std::net::SocketAddr,
    listener: &str,
    mechanism: Option<&str>,
    reason: &str,
) {
    tracing::warn!(target: AUDIT_TARGET, %peer, listener, mechanism = mechanism.unwrap_or("-"),
        reason, "authentication failed");
}

/// Shared handle to a listener's runtime.
pub type Listener = Arc<ListenerRuntime>;
