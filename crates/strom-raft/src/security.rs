//! Security of the quorum's connections: every connection to a raft listener (a controller's
//! `controller.listener.names` listener, or a broker-only node's metadata replication
//! endpoint) uses the controller listener's protocol from `listener.security.protocol.map`
//! and its `ssl.*` / `sasl.*` keys, on both sides.
//!
//! Who verifies whom:
//! - TLS (SSL, SASL_SSL): the connecting side checks the listener's certificate against its
//!   trust store and, with `ssl.endpoint.identification.algorithm=https` (Kafka's default),
//!   the host it dialled. The accepting side asks for a client certificate as
//!   `ssl.client.auth` says (`required`: mutual TLS, a peer without a certificate the trust
//!   store accepts fails the handshake). A client that does not speak TLS on a TLS port
//!   fails the handshake: it gets nothing, the listener carries on.
//! - SASL (SASL_PLAINTEXT, SASL_SSL): the connecting side authenticates first, with
//!   `sasl.mechanism.controller.protocol` and its login module's `username`/`password`
//!   (`listener.name.<controller listener>.<mechanism>.sasl.jaas.config`); the accepting
//!   side checks them against the same login module's `user_NAME="password"` entries.
//!   With SCRAM-SHA-256/512 the accepting side checks the credential the caller looks up
//!   (`RaftNode::scram_credential`: the node's metadata image, or, while that holds no
//!   SCRAM credential, the bootstrap users of `strom storage format --add-scram`, see
//!   `bootstrap_scram.rs`), in two `AUTHENTICATE` rounds (client-first, then client-final)
//!   through strom-security's `ScramServer`; delegation tokens (`tokenauth=true`) are
//!   refused here. OAUTHBEARER is not served (refused at start-up, naming the key).
//!   Until the exchange succeeds only `AUTHENTICATE` frames of at most
//!   [`AUTH_FRAME_BYTES_MAX`] bytes are read, at most two, all within [`AUTH_TIMEOUT`];
//!   anything else closes the connection.
//!
//! The principal of an accepted connection is `User:<SASL user>` with SASL, else
//! `User:<mapped certificate subject>` with a client certificate, else `User:ANONYMOUS`.
//!
//! Authorization: with `authorizer.class.name` set ([`QuorumSecurity::authorizer`]), every
//! request is checked before it is handled, as Kafka's `ControllerApis` checks it, with
//! Kafka's StandardAuthorizer rules over `super.users` and the CLUSTER ACLs of the node's
//! own metadata image ([`SecurityContext::check_cluster`]; which request needs which
//! operation is `server.rs`'s `required_operation`). A denied request gets a
//! [`crate::wire::kind::REFUSED`] answer naming the principal and the operation (Kafka's
//! CLUSTER_AUTHORIZATION_FAILED), an audit line on [`AUDIT_TARGET`], and the connection is
//! closed; the sender logs the refusal. The ACLs live in the metadata log the quorum
//! replicates, so the principals the quorum's own connections use (the leader pushes the
//! log to every member) must be in `super.users`: a node whose image does not hold an ACL
//! yet (a new or restarted member before it has caught up) decides without it. Brokers may
//! instead hold CLUSTER_ACTION ACLs, which the controllers they call have applied.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use strom_meta::acl::{AclOperation, AuthorizerSettings, Decision, Requester, AUDIT_TARGET};
use strom_security::scram::parse_client_first;
use strom_security::{
    plain_authenticate, subject_name, tokio_rustls, ClientStream, SaslClient, ScramCredential,
    ScramMechanism, ScramServer, TlsClient, TlsServer, TlsSettings, Transport,
};
use tokio::net::TcpStream;

use crate::wire::{self, kind, WireError};

/// The largest frame read before a SASL exchange succeeds (Kafka's
/// `sasl.server.max.receive.size` default).
pub const AUTH_FRAME_BYTES_MAX: usize = 524_288;
/// The bound on a TLS handshake and a SASL exchange, on either side.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often one failure to reach one address is logged at WARN (else DEBUG).
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

/// SASL on the controller listener.
#[derive(Clone, PartialEq, Eq)]
pub struct QuorumSasl {
    /// `sasl.mechanism.controller.protocol`: what this node sends.
    pub mechanism: String,
    /// `sasl.enabled.mechanisms` of the controller listener: what it accepts.
    pub enabled: Vec<String>,
    /// PLAIN's users (`user_NAME="password"` of the listener's PLAIN login module). SCRAM's
    /// are looked up when a peer authenticates ([`SecurityContext::accept`]).
    pub plain_users: BTreeMap<String, String>,
    /// `username`/`password` of the mechanism's login module, sent by this node.
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for QuorumSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords never reach a log.
        f.debug_struct("QuorumSasl")
            .field("mechanism", &self.mechanism)
            .field("enabled", &self.enabled)
            .field("plain_users", &self.plain_users.keys().collect::<Vec<_>>())
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The controller listener's security, as configured (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuorumSecurity {
    /// The controller listener's name (for log lines).
    pub listener_name: String,
    /// SSL and SASL_SSL: the listener's TLS settings, used to accept and to connect.
    pub tls: Option<TlsSettings>,
    /// SASL_PLAINTEXT and SASL_SSL.
    pub sasl: Option<QuorumSasl>,
    /// `authorizer.class.name` set (Kafka's StandardAuthorizer): `super.users` and
    /// `allow.everyone.if.no.acl.found`, with which every request on the listener is
    /// checked ([`SecurityContext::check_cluster`]). `None`: nothing is checked.
    pub authorizer: Option<AuthorizerSettings>,
}

impl QuorumSecurity {
    /// The security protocol's name, as `listener.security.protocol.map` spells it.
    pub fn protocol_name(&self) -> &'static str {
        match (self.tls.is_some(), self.sasl.is_some()) {
            (false, false) => "PLAINTEXT",
            (true, false) => "SSL",
            (false, true) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        }
    }
}

/// Why a secured connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("the TLS settings of controller listener {listener} cannot be used: {reason}")]
    Settings { listener: String, reason: String },
}

/// The running form of [`QuorumSecurity`]: TLS configurations built at start-up and rebuilt
/// when their key or trust store files change (the listener's for accepted connections,
/// the client's for this node's outgoing ones), shared by the listener and every outgoing
/// connection.
pub struct SecurityContext {
    config: QuorumSecurity,
    tls_server: Option<TlsServer>,
    tls_client: Option<ClientTls>,
    failures_logged: Mutex<BTreeMap<String, Instant>>,
}

impl std::fmt::Debug for SecurityContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityContext")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The connecting side's TLS: the listener's settings, reloaded when their files change
/// (a node's own connections to the quorum), or a client's fixed configuration (a tool's,
/// [`SecurityContext::connecting`]).
enum ClientTls {
    Reloading(Box<TlsClient>),
    Fixed(Arc<strom_security::rustls::ClientConfig>),
}

impl ClientTls {
    fn current(&self) -> Arc<strom_security::rustls::ClientConfig> {
        match self {
            ClientTls::Reloading(client) => client.current(),
            ClientTls::Fixed(config) => config.clone(),
        }
    }
}

/// An accepted connection's stream.
pub type ServerStream = Transport<tokio_rustls::server::TlsStream<TcpStream>>;

/// The `AUTHENTICATE` request: a SASL mechanism and the client's token.
#[derive(Serialize, Deserialize)]
struct AuthenticateRequest {
    mechanism: String,
    token: Vec<u8>,
}

/// The answer to `AUTHENTICATE`: `error` set when refused (the connection is then closed).
#[derive(Serialize, Deserialize)]
struct AuthenticateReply {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    token: Vec<u8>,
}

impl SecurityContext {
    /// Builds the TLS configurations now, so a bad key or trust store fails start-up.
    pub fn new(config: QuorumSecurity) -> Result<SecurityContext, SecurityError> {
        Self::build(config, true)
    }

    /// For a client that only connects (`QuorumClient`): no key store is needed unless the
    /// listener asks for client certificates.
    pub fn client(config: QuorumSecurity) -> Result<SecurityContext, SecurityError> {
        Self::build(config, false)
    }

    fn build(config: QuorumSecurity, serves: bool) -> Result<SecurityContext, SecurityError> {
        let settings_error = |reason: String| SecurityError::Settings {
            listener: config.listener_name.clone(),
            reason,
        };
        let (tls_server, tls_client) = match &config.tls {
            None => (None, None),
            Some(settings) => (
                match serves {
                    true => Some(
                        TlsServer::new(settings.clone())
                            .map_err(|e| settings_error(e.to_string()))?,
                    ),
                    false => None,
                },
                Some(ClientTls::Reloading(Box::new(
                    TlsClient::new(settings.clone()).map_err(|e| settings_error(e.to_string()))?,
                ))),
            ),
        };
        Ok(SecurityContext {
            config,
            tls_server,
            tls_client,
            failures_logged: Mutex::new(BTreeMap::new()),
        })
    }

    /// For a tool that only connects, with a Kafka client's settings (`strom metadata
    /// status --command-config`: `security.protocol`, `ssl.*`, `sasl.*` as strom-client
    /// reads them): its TLS configuration and its SASL (mechanism, user, password).
    pub fn connecting(
        tls_client: Option<Arc<strom_security::rustls::ClientConfig>>,
        sasl: Option<(String, String, String)>,
    ) -> SecurityContext {
        let sasl = sasl.map(|(mechanism, username, password)| QuorumSasl {
            enabled: vec![mechanism.clone()],
            mechanism,
            plain_users: BTreeMap::new(),
            username,
            password,
        });
        SecurityContext {
            config: QuorumSecurity {
                listener_name: "(the controller listener)".into(),
                tls: None,
                sasl,
                authorizer: None,
            },
            tls_server: None,
            tls_client: tls_client.map(ClientTls::Fixed),
            failures_logged: Mutex::new(BTreeMap::new()),
        }
    }

    /// Plain TCP both ways, no authentication.
    pub fn plaintext() -> Arc<SecurityContext> {
        Arc::new(SecurityContext {
            config: QuorumSecurity::default(),
            tls_server: None,
            tls_client: None,
            failures_logged: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn config(&self) -> &QuorumSecurity {
        &self.config
    }

    /// Whether `principal`, connected from `peer`, may do `operation` on the CLUSTER
    /// resource for `request` (a name for the log lines). `decide` gives Kafka's
    /// StandardAuthorizer decision over the node's ACLs. Without an authorizer everything
    /// is allowed. A denial is one audit line (INFO on [`AUDIT_TARGET`], at most one per
    /// principal, host and operation per [`FAILURE_LOG_EVERY`], the repeats at DEBUG, as a
    /// refused member retries every few hundred milliseconds) and an
    /// [`WireError::Unauthorized`] whose text is sent to the peer.
    pub fn check_cluster(
        &self,
        decide: impl FnOnce(&AuthorizerSettings, Requester<'_>) -> Decision,
        principal: &str,
        peer: SocketAddr,
        operation: AclOperation,
        request: &str,
    ) -> Result<(), WireError> {
        let Some(settings) = &self.config.authorizer else {
            return Ok(());
        };
        let host = peer.ip().to_string();
        let decision = decide(
            settings,
            Requester {
                principal,
                host: &host,
            },
        );
        if decision.is_allowed() {
            return Ok(());
        }
        let listener = &self.config.listener_name;
        if self.log_due(&format!("denied {principal} {host} {operation}")) {
            tracing::info!(
                target: AUDIT_TARGET,
                %principal,
                %host,
                %listener,
                %operation,
                resource_type = "Cluster",
                resource = strom_meta::acl::CLUSTER_NAME,
                api = request,
                rule = %decision,
                "denied"
            );
        } else {
            tracing::debug!(
                target: AUDIT_TARGET,
                %principal,
                %host,
                %listener,
                %operation,
                api = request,
                rule = %decision,
                "denied"
            );
        }
        Err(WireError::Unauthorized(format!(
            "CLUSTER_AUTHORIZATION_FAILED: principal {principal} (from {host}) may not \
             {operation} on the cluster, which {request} on controller listener {listener} \
             needs (authorizer rule: {decision}). Add {principal} to super.users on every node \
             (needed for controllers, whose connections carry the metadata log the ACLs are \
             in), or grant it with kafka-acls.sh --add --allow-principal {principal} \
             --operation {operation:?} --cluster"
        )))
    }

    /// Logs a refusal of this node's request by the member at `addr` (rate-limited) and
    /// returns it.
    pub(crate) fn refused_by(&self, addr: &str, reason: String) -> WireError {
        self.warn_due(
            &format!("refused by {addr}"),
            format!("the quorum member at {addr} refused this node's request: {reason}"),
        );
        WireError::Unauthorized(reason)
    }

    /// Whether a failure about `what` is due a WARN line (at most one per
    /// [`FAILURE_LOG_EVERY`]); else it is logged at DEBUG.
    pub(crate) fn log_due(&self, what: &str) -> bool {
        let Ok(mut logged) = self.failures_logged.lock() else {
            return true;
        };
        let now = Instant::now();
        match logged.get(what) {
            Some(at) if now.duration_since(*at) < FAILURE_LOG_EVERY => false,
            _ => {
                if logged.len() >= 64 {
                    logged.clear();
                }
                logged.insert(what.to_string(), now);
                true
            }
        }
    }

    /// `line` at WARN when a failure about `what` is due one ([`SecurityContext::log_due`]),
    /// else at DEBUG.
    fn warn_due(&self, what: &str, line: String) {
        if self.log_due(what) {
            tracing::warn!("{line}");
        } else {
            tracing::debug!("{line}");
        }
    }

    /// The connecting side: TLS (checking the listener's certificate, presenting this
    /// node's when it has a key store), then SASL. Errors say which step failed and why.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        addr: &str,
        frame_bytes_max: usize,
    ) -> Result<ClientStream, WireError> {
        let mut stream = match &self.tls_client {
            None => ClientStream::Plain(tcp),
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                match tokio::time::timeout(
                    AUTH_TIMEOUT,
                    ClientStream::tls(tcp, host, tls.current()),
                )
                .await
                {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        return Err(self.refused(
                            addr,
                            format!(
                                "the TLS handshake with controller listener {} failed: {e} (the \
                                 peer's certificate must be signed by a CA in this node's trust \
                                 store and name the host dialled; with ssl.client.auth=required \
                                 this node's certificate must be trusted by the peer)",
                                self.config.listener_name
                            ),
                        ))
                    }
                    Err(_) => return Err(WireError::Timeout(AUTH_TIMEOUT)),
                }
            }
        };
        if let Some(sasl) = &self.config.sasl {
            match tokio::time::timeout(
                AUTH_TIMEOUT,
                authenticate(&mut stream, sasl, frame_bytes_max.min(AUTH_FRAME_BYTES_MAX)),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(AuthFailure::Refused(reason))) => {
                    return Err(self.refused(
                        addr,
                        format!(
                            "SASL {} authentication as {} was refused: {reason} (check the \
                             username and password of listener.name.{}.{}.sasl.jaas.config \
                             against {})",
                            sasl.mechanism,
                            sasl.username,
                            self.config.listener_name.to_ascii_lowercase(),
                            sasl.mechanism.to_ascii_lowercase(),
                            match sasl.mechanism.as_str() {
                                "PLAIN" => format!("the peer's user_{}=\"...\"", sasl.username),
                                _ => format!(
                                    "the peer's {} credential of {} (its metadata image, or the \
                                     users of strom storage format --add-scram until the image \
                                     holds SCRAM credentials)",
                                    sasl.mechanism, sasl.username
                                ),
                            }
                        ),
                    ))
                }
                Ok(Err(AuthFailure::Wire(e))) => return Err(e),
                Err(_) => return Err(WireError::Timeout(AUTH_TIMEOUT)),
            }
        }
        Ok(stream)
    }

    /// Logs an authentication failure towards `addr` (rate-limited) and returns it.
    fn refused(&self, addr: &str, reason: String) -> WireError {
        self.warn_due(
            &format!("out {addr}"),
            format!("cannot connect to the quorum member at {addr}: {reason}"),
        );
        WireError::Authentication(reason)
    }

    /// The accepting side: TLS, then SASL. `scram_credential` gives a user's SCRAM
    /// credential for a mechanism (`None`: unknown, refused like a wrong password). Returns
    /// the stream and the principal (`User:...`), whose requests
    /// [`SecurityContext::check_cluster`] then authorizes; `Err` is logged and the
    /// connection closed.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        scram_credential: impl Fn(&str, ScramMechanism) -> Option<ScramCredential>,
    ) -> Result<(ServerStream, String), WireError> {
        let (mut stream, mut principal) = match &self.tls_server {
            None => (ServerStream::Plain(tcp), "User:ANONYMOUS".to_string()),
            Some(tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                // A client that speaks anything but TLS fails here, one that stalls is bounded
                // by the timeout: either way only this connection ends.
                let stream = match tokio::time::timeout(AUTH_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        return Err(self.refuse(
                            peer,
                            format!("the TLS handshake failed: {e} (a client that does not speak TLS, or whose certificate this node's trust store does not accept)"),
                        ))
                    }
                    Err(_) => return Err(WireError::Timeout(AUTH_TIMEOUT)),
                };
                let principal = match stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                {
                    None => "User:ANONYMOUS".to_string(),
                    Some(cert) => {
                        let mapped = subject_name(cert.as_ref())
                            .map_err(|e| e.to_string())
                            .and_then(|subject| {
                                tls.principal_mapper()
                                    .map(&subject)
                                    .map_err(|e| e.to_string())
                            });
                        match mapped {
                            Ok(name) => format!("User:{name}"),
                            Err(e) => {
                                return Err(self.refuse(
                                    peer,
                                    format!("its certificate's subject maps to no principal: {e}"),
                                ))
                            }
                        }
                    }
                };
                (ServerStream::Tls(Box::new(stream)), principal)
            }
        };
        if let Some(sasl) = &self.config.sasl {
            let exchange = serve_authenticate(&mut stream, sasl, &scram_credential);
            match tokio::time::timeout(AUTH_TIMEOUT, exchange).await {
                Ok(Ok(user)) => principal = format!("User:{user}"),
                Ok(Err(AuthFailure::Refused(reason))) => return Err(self.refuse(peer, reason)),
                Ok(Err(AuthFailure::Wire(e))) => {
                    return Err(self.refuse(peer, format!("no SASL authentication: {e}")))
                }
                Err(_) => {
                    return Err(self.refuse(
                        peer,
                        format!("no SASL authentication within {AUTH_TIMEOUT:?}"),
                    ))
                }
            }
        }
        tracing::debug!(
            "quorum connection from {peer} on listener {} ({}) as {principal}",
            self.config.listener_name,
            self.config.protocol_name()
        );
        Ok((stream, principal))
    }

    /// Logs a refused incoming connection (rate-limited) and returns the error.
    fn refuse(&self, peer: SocketAddr, reason: String) -> WireError {
        let line = format!(
            "refusing a quorum connection from {peer} on controller listener {} ({}): {reason}",
            self.config.listener_name,
            self.config.protocol_name()
        );
        self.warn_due(&format!("in {}", peer.ip()), line);
        WireError::Authentication(reason)
    }
}

enum AuthFailure {
    /// The exchange ran and was refused.
    Refused(String),
    /// The connection failed or spoke something else.
    Wire(WireError),
}

impl From<WireError> for AuthFailure {
    fn from(e: WireError) -> Self {
        AuthFailure::Wire(e)
    }
}

/// The client's SASL exchange in `AUTHENTICATE` frames (PLAIN takes one round; a server
/// asking for more than two is refused).
async fn authenticate(
    stream: &mut ClientStream,
    sasl: &QuorumSasl,
    frame_bytes_max: usize,
) -> Result<(), AuthFailure> {
    let (mut client, mut token) =
        SaslClient::start(&sasl.mechanism, &sasl.username, &sasl.password)
            .map_err(|e| AuthFailure::Refused(e.to_string()))?;
    for _ in 0..3 {
        let request = AuthenticateRequest {
            mechanism: sasl.mechanism.clone(),
            token,
        };
        wire::write_frame(stream, kind::AUTHENTICATE, &request, frame_bytes_max).await?;
        let (reply_kind, body) = wire::read_frame(stream, frame_bytes_max)
            .await?
            .ok_or_else(|| {
                AuthFailure::Wire(WireError::Malformed(
                    "connection closed during authentication (is the peer's controller listener \
                     of the same security protocol?)"
                        .into(),
                ))
            })?;
        if reply_kind != kind::RESPONSE {
            return Err(WireError::Malformed(format!("unexpected frame kind {reply_kind}")).into());
        }
        let reply: AuthenticateReply = wire::decode(&body)?;
        if let Some(error) = reply.error {
            return Err(AuthFailure::Refused(error));
        }
        match client
            .step(&reply.token)
            .map_err(|e| AuthFailure::Refused(e.to_string()))?
        {
            Some(next) => token = next,
            None => return Ok(()),
        }
    }
    Err(AuthFailure::Refused(
        "the SASL exchange did not finish".into(),
    ))
}

/// The server's SASL exchange: the first frame must be `AUTHENTICATE` with an enabled
/// mechanism (PLAIN: one round; SCRAM: two); returns the authenticated user.
async fn serve_authenticate(
    stream: &mut ServerStream,
    sasl: &QuorumSasl,
    scram_credential: &impl Fn(&str, ScramMechanism) -> Option<ScramCredential>,
) -> Result<String, AuthFailure> {
    let request = read_authenticate(stream).await?;
    // The peer's text reaches log lines: at most 64 characters of it.
    let mechanism = match request.mechanism.char_indices().nth(64) {
        Some((end, _)) => request.mechanism.get(..end).unwrap_or_default(),
        None => request.mechanism.as_str(),
    };
    if !sasl.enabled.contains(&request.mechanism) {
        let error = format!(
            "SASL mechanism {mechanism} is not enabled on this listener (enabled: {})",
            sasl.enabled.join(",")
        );
        return Err(answer(stream, error, mechanism, "(not read)").await);
    }
    if let Some(scram) = ScramMechanism::from_name(mechanism) {
        return serve_scram(stream, scram, &request.token, scram_credential).await;
    }
    if mechanism != "PLAIN" {
        let error = format!(
            "SASL mechanism {mechanism} is not served on the controller listener (PLAIN, \
             SCRAM-SHA-256, SCRAM-SHA-512)"
        );
        return Err(answer(stream, error, mechanism, "(not read)").await);
    }
    let user = plain_user(&request.token);
    let outcome = plain_authenticate(&request.token, &sasl.plain_users).map_err(|e| e.to_string());
    match outcome {
        Ok(name) => {
            reply(stream, None, Vec::new()).await?;
            Ok(name)
        }
        Err(e) => Err(answer(stream, e, mechanism, &user).await),
    }
}

/// SCRAM's two rounds after the client-first message `first`.
async fn serve_scram(
    stream: &mut ServerStream,
    mechanism: ScramMechanism,
    first: &[u8],
    scram_credential: &impl Fn(&str, ScramMechanism) -> Option<ScramCredential>,
) -> Result<String, AuthFailure> {
    let name = mechanism.name();
    let client_first = match parse_client_first(first) {
        Ok(parsed) => parsed,
        Err(e) => return Err(answer(stream, e.to_string(), name, "(unparsed)").await),
    };
    let user = client_first.user.clone();
    let shown = format!("{user:?}");
    if client_first.token_auth {
        let error = "delegation tokens (tokenauth=true) are not accepted on the controller \
                     listener"
            .to_string();
        return Err(answer(stream, error, name, &shown).await);
    }
    let credential = scram_credential(&user, mechanism);
    let (server, server_first) = ScramServer::first(mechanism, client_first, credential);
    reply(stream, None, server_first).await?;
    let last = read_authenticate(stream).await?;
    if last.mechanism != name {
        let error = format!("the SCRAM exchange changed mechanism to {}", last.mechanism);
        return Err(answer(stream, error, name, &shown).await);
    }
    match server.last(&last.token) {
        Ok(server_final) => {
            reply(stream, None, server_final).await?;
            Ok(user)
        }
        Err(e) => Err(answer(stream, e.to_string(), name, &shown).await),
    }
}

/// Reads the next frame, which must be `AUTHENTICATE` (at most [`AUTH_FRAME_BYTES_MAX`]).
async fn read_authenticate(stream: &mut ServerStream) -> Result<AuthenticateRequest, AuthFailure> {
    let (request_kind, body) = wire::read_frame(stream, AUTH_FRAME_BYTES_MAX)
        .await?
        .ok_or_else(|| {
            AuthFailure::Wire(WireError::Malformed("closed before authenticating".into()))
        })?;
    if request_kind != kind::AUTHENTICATE {
        return Err(AuthFailure::Refused(format!(
            "it sent a request (kind {request_kind}) before authenticating: its controller \
             listener is not configured for SASL"
        )));
    }
    Ok(wire::decode(&body)?)
}

async fn reply(
    stream: &mut ServerStream,
    error: Option<String>,
    token: Vec<u8>,
) -> Result<(), WireError> {
    let reply = AuthenticateReply { error, token };
    wire::write_frame(stream, kind::RESPONSE, &reply, AUTH_FRAME_BYTES_MAX).await
}

/// Answers a refused exchange with its reason and returns the failure to log (naming the
/// mechanism and the user, never a password).
async fn answer(
    stream: &mut ServerStream,
    error: String,
    mechanism: &str,
    user: &str,
) -> AuthFailure {
    if let Err(e) = reply(stream, Some(error.clone()), Vec::new()).await {
        return AuthFailure::Wire(e);
    }
    AuthFailure::Refused(format!(
        "SASL {mechanism} authentication as {user} failed: {error}"
    ))
}

/// The user a PLAIN message names, for log lines (never the password).
fn plain_user(token: &[u8]) -> String {
    let text = String::from_utf8_lossy(token);
    let mut parts = text.split('\0');
    let _authzid = parts.next();
    parts
        .next()
        .filter(|u| !u.is_empty() && u.len() <= 256)
        .map_or_else(|| "(unnamed user)".to_string(), |u| format!("{u:?}"))
}
