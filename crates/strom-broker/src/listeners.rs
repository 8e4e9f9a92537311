//! The broker's listeners and their security, from Kafka's keys: `listeners`,
//! `advertised.listeners`, `listener.security.protocol.map`, `inter.broker.listener.name` /
//! `security.inter.broker.protocol`, the `ssl.*` and `sasl.*` keys, and per-listener
//! overrides `listener.name.<name>.<key>` (the name lower-cased, as Kafka writes it; SASL
//! login modules as `listener.name.<name>.<mechanism>.sasl.jaas.config`).
//!
//! Listeners named in `controller.listener.names` belong to the controller quorum, not to
//! the broker: they are skipped here (the `strom` binary binds them).

use std::collections::BTreeMap;

use strom_security::oauthbearer::{
    JwksSettings, OAuthSettings, UnsecuredOptions, SECURED_VALIDATOR_CLASSES,
    UNSECURED_VALIDATOR_CLASS,
};
use strom_security::{JaasConfig, TlsSettings};

use crate::config::{ConfigError, Listener};
use crate::config_keys::{self, Props};
use crate::principal::SecurityProtocol;

/// The SASL mechanisms Strom serves.
pub const SERVED_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];
/// The SASL mechanisms the controller listener serves (strom-raft's `security.rs`).
pub const QUORUM_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Kafka's system property listing the OAUTHBEARER URLs allowed, read here as a key.
pub const ALLOWED_URLS_KEY: &str = "org.apache.kafka.sasl.oauthbearer.allowed.urls";

/// SASL on one listener.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslServerSettings {
    /// `sasl.enabled.mechanisms`, in order (each one of [`SERVED_MECHANISMS`]).
    pub mechanisms: Vec<String>,
    /// PLAIN's users (`user_NAME="password"` of the listener's PLAIN JAAS config).
    pub plain_users: BTreeMap<String, String>,
    /// `connections.max.reauth.ms` (KIP-368); 0 means sessions never expire.
    pub max_reauth_ms: u64,
    /// `username`/`password` of each mechanism's JAAS config: what this broker sends when it
    /// connects to another broker's listener of this name.
    pub client_credentials: BTreeMap<String, (String, String)>,
    /// How OAUTHBEARER tokens are validated, when it is enabled.
    pub oauth: Option<OAuthSettings>,
}

impl std::fmt::Debug for SaslServerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords never reach a log.
        f.debug_struct("SaslServerSettings")
            .field("mechanisms", &self.mechanisms)
            .field("plain_users", &self.plain_users.keys().collect::<Vec<_>>())
            .field("max_reauth_ms", &self.max_reauth_ms)
            .field("oauth", &self.oauth)
            .finish_non_exhaustive()
    }
}

/// One listener the broker accepts connections on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedListener {
    pub listener: Listener,
    pub protocol: SecurityProtocol,
    /// TLS settings (SSL, SASL_SSL).
    pub tls: Option<TlsSettings>,
    /// SASL settings (SASL_PLAINTEXT, SASL_SSL).
    pub sasl: Option<SaslServerSettings>,
    /// The `ssl.*` values of `server.properties` for this listener (its overrides
    /// resolved), which dynamic `listener.name.<name>.ssl.*` configs are laid over
    /// (`dynamic_tls.rs`).
    pub ssl_static: SslProps,
}

/// `ssl.*` key/value pairs, kept out of `Debug` output (they hold passwords).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SslProps(pub BTreeMap<String, String>);

impl std::fmt::Debug for SslProps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// The `ssl.*` keys a listener reads.
pub const SSL_KEYS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.truststore.password",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.cipher.suites",
    "ssl.principal.mapping.rules",
    "ssl.endpoint.identification.algorithm",
];

/// How this broker connects to the inter-broker listener of other brokers.
#[derive(Clone, PartialEq, Eq)]
pub struct InterBrokerClient {
    pub listener_name: String,
    pub protocol: SecurityProtocol,
    pub tls: Option<TlsSettings>,
    /// (mechanism, username, password).
    pub sasl: Option<(String, String, String)>,
}

impl std::fmt::Debug for InterBrokerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterBrokerClient")
            .field("listener_name", &self.listener_name)
            .field("protocol", &self.protocol)
            .field("sasl_mechanism", &self.sasl.as_ref().map(|s| &s.0))
            .finish_non_exhaustive()
    }
}

/// Everything the listener keys say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenersConfig {
    /// Served listeners, in the order of `listeners`.
    pub served: Vec<ServedListener>,
    /// `advertised.listeners` (defaults to `listeners`), the controller's excluded.
    pub advertised: Vec<Listener>,
    /// `inter.broker.listener.name`.
    pub inter_broker_listener_name: String,
    pub inter_broker_client: InterBrokerClient,
    /// `connection.failed.authentication.delay.ms`.
    pub failed_authentication_delay_ms: u64,
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// A lookup of `key` for listener `name`: `listener.name.<name>.<key>`, then `<key>`.
pub fn listener_lookup<'a>(
    map: &'a BTreeMap<String, String>,
    name: &str,
) -> impl Fn(&str) -> Option<String> + 'a {
    let prefix = format!("listener.name.{}.", name.to_ascii_lowercase());
    move |key: &str| {
        map.get(&format!("{prefix}{key}"))
            .or_else(|| map.get(key))
            .map(|v| v.trim().to_string())
    }
}

/// Reads the listener keys.
pub fn parse(map: &BTreeMap<String, String>) -> Result<ListenersConfig, ConfigError> {
    let props = Props::new(map);
    let get = |key: &str| props.get(key);
    let listeners_text = props.text("listeners");
    let controller_names = props.listener_names("controller.listener.names")?;
    let protocol_map_text = props.text("listener.security.protocol.map");
    let mut protocol_map = BTreeMap::new();
    for entry in list(protocol_map_text) {
        let (name, protocol) = entry.split_once(':').ok_or_else(|| {
            invalid(
                "listener.security.protocol.map",
                protocol_map_text,
                "expected NAME:PROTOCOL,...",
            )
        })?;
        let protocol = SecurityProtocol::parse(protocol.trim()).ok_or_else(|| {
            invalid(
                "listener.security.protocol.map",
                protocol_map_text,
                format!("unknown security protocol {protocol:?} (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)"),
            )
        })?;
        protocol_map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    let all = props.listeners("listeners")?;
    let bound: Vec<Listener> = all
        .into_iter()
        .filter(|l| !controller_names.contains(&l.name))
        .collect();
    if bound.is_empty() {
        return Err(invalid(
            "listeners",
            listeners_text,
            "names no broker listener (only controller listeners)",
        ));
    }
    let advertised = match get("advertised.listeners") {
        Some(text) => {
            let advertised: Vec<Listener> = props
                .listeners("advertised.listeners")?
                .into_iter()
                .filter(|l| !controller_names.contains(&l.name))
                .collect();
            for a in &advertised {
                if !bound.iter().any(|l| l.name == a.name) {
                    return Err(invalid(
                        "advertised.listeners",
                        text,
                        format!("{} is not a listener in listeners", a.name),
                    ));
                }
            }
            // Listeners not advertised explicitly are advertised as bound (Kafka requires
            // every one to be listed; filling in is friendlier and changes nothing listed).
            bound
                .iter()
                .map(|l| {
                    advertised
                        .iter()
                        .find(|a| a.name == l.name)
                        .unwrap_or(l)
                        .clone()
                })
                .collect()
        }
        None => bound.clone(),
    };
    let mut served = Vec::new();
    for listener in bound {
        let protocol = *protocol_map.get(&listener.name).ok_or_else(|| {
            invalid(
                "listener.security.protocol.map",
                protocol_map_text,
                format!(
                    "has no entry for listener {name}: add {name}:PLAINTEXT (or SSL, SASL_PLAINTEXT, SASL_SSL)",
                    name = listener.name
                ),
            )
        })?;
        let lookup = listener_lookup(map, &listener.name);
        let tls = if protocol.uses_tls() {
            let settings = TlsSettings::from_lookup(&lookup).map_err(|e| {
                invalid(
                    &e.key,
                    "",
                    format!("listener {}: {}", listener.name, e.reason),
                )
            })?;
            Some(settings)
        } else {
            None
        };
        let sasl = if protocol.uses_sasl() {
            Some(sasl_settings(map, &listener.name, &lookup)?)
        } else {
            None
        };
        let ssl_static = SslProps(
            SSL_KEYS
                .iter()
                .filter_map(|key| lookup(key).map(|value| (key.to_string(), value)))
                .collect(),
        );
        served.push(ServedListener {
            listener,
            protocol,
            tls,
            sasl,
            ssl_static,
        });
    }
    let inter_broker_listener_name = match (
        get("inter.broker.listener.name"),
        get("security.inter.broker.protocol"),
    ) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "security.inter.broker.protocol",
                get("security.inter.broker.protocol").unwrap_or_default(),
                "set only one of inter.broker.listener.name and security.inter.broker.protocol",
            ))
        }
        (Some(name), None) => name.to_ascii_uppercase(),
        (None, Some(protocol)) => {
            let protocol = SecurityProtocol::parse(protocol).ok_or_else(|| {
                invalid(
                    "security.inter.broker.protocol",
                    protocol,
                    "unknown security protocol",
                )
            })?;
            protocol.name().to_string()
        }
        // Kafka's default is the listener named PLAINTEXT; without one, the first listener.
        (None, None) => served
            .iter()
            .find(|s| s.listener.name == "PLAINTEXT")
            .unwrap_or(&served[0])
            .listener
            .name
            .clone(),
    };
    let Some(inter) = served
        .iter()
        .find(|s| s.listener.name == inter_broker_listener_name)
    else {
        return Err(invalid(
            "inter.broker.listener.name",
            &inter_broker_listener_name,
            "must name one of this broker's listeners",
        ));
    };
    let inter_broker_client = inter_broker_client(map, inter)?;
    let failed_authentication_delay_ms = props.int("connection.failed.authentication.delay.ms")?;
    Ok(ListenersConfig {
        served,
        advertised,
        inter_broker_listener_name,
        inter_broker_client,
        failed_authentication_delay_ms,
    })
}

fn jaas_key(listener: &str, mechanism: &str) -> String {
    format!(
        "listener.name.{}.{}.sasl.jaas.config",
        listener.to_ascii_lowercase(),
        mechanism.to_ascii_lowercase()
    )
}

fn sasl_settings(
    map: &BTreeMap<String, String>,
    listener: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<SaslServerSettings, ConfigError> {
    // Kafka's default is GSSAPI (Kerberos), which Strom does not serve: say so.
    let text = lookup("sasl.enabled.mechanisms")
        .unwrap_or_else(|| Props::new(map).text("sasl.enabled.mechanisms").to_string());
    let mut mechanisms = Vec::new();
    for name in list(&text) {
        let name = name.to_ascii_uppercase();
        if !SERVED_MECHANISMS.contains(&name.as_str()) {
            return Err(invalid(
                "sasl.enabled.mechanisms",
                &text,
                format!(
                    "listener {listener}: mechanism {name} is not supported (Kafka's default is \
                     GSSAPI); enable some of {}",
                    SERVED_MECHANISMS.join(", ")
                ),
            ));
        }
        if !mechanisms.contains(&name) {
            mechanisms.push(name);
        }
    }
    if mechanisms.is_empty() {
        return Err(invalid(
            "sasl.enabled.mechanisms",
            &text,
            "names no mechanism",
        ));
    }
    let mut plain_users = BTreeMap::new();
    let mut client_credentials = BTreeMap::new();
    let mut oauth = None;
    for mechanism in &mechanisms {
        let key = jaas_key(listener, mechanism);
        let Some(text) = map.get(&key) else {
            if mechanism == "PLAIN" {
                return Err(invalid(
                    &key,
                    "",
                    "PLAIN is enabled but has no users: set it to \
                     org.apache.kafka.common.security.plain.PlainLoginModule required user_NAME=\"password\";",
                ));
            }
            if mechanism == "OAUTHBEARER" {
                return Err(invalid(
                    &key,
                    "",
                    "OAUTHBEARER is enabled but has no login module: set it to \
                     org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
                ));
            }
            continue;
        };
        let jaas = JaasConfig::parse(text).map_err(|e| invalid(&key, "(hidden)", e.to_string()))?;
        if mechanism == "PLAIN" {
            plain_users = jaas.plain_users();
        }
        if mechanism == "OAUTHBEARER" {
            oauth = Some(oauth_settings(map, listener, &key, &jaas)?);
        }
        if let (Some(user), Some(password)) =
            (jaas.options.get("username"), jaas.options.get("password"))
        {
            client_credentials.insert(mechanism.clone(), (user.clone(), password.clone()));
        }
    }
    // A per-listener value follows the key's rules in the table too.
    let max_reauth_ms = match lookup("connections.max.reauth.ms") {
        None => Props::new(map).int("connections.max.reauth.ms")?,
        Some(v) => config_keys::int_of("connections.max.reauth.ms", &v)?,
    };
    Ok(SaslServerSettings {
        mechanisms,
        plain_users,
        max_reauth_ms,
        client_credentials,
        oauth,
    })
}

/// OAUTHBEARER's validator on `listener`: against a JWKS when
/// `sasl.oauthbearer.jwks.endpoint.url` is set (whatever the callback class: a configured
/// JWKS is never silently ignored), else Kafka's unsecured validator with the JAAS options.
/// Each `sasl.*` key is read as `listener.name.<l>.oauthbearer.<key>`, then
/// `listener.name.<l>.<key>`, then `<key>`, then the table's default.
fn oauth_settings(
    map: &BTreeMap<String, String>,
    listener: &str,
    jaas_key: &str,
    jaas: &JaasConfig,
) -> Result<OAuthSettings, ConfigError> {
    let lower = listener.to_ascii_lowercase();
    let get = |key: &str| -> (String, Option<String>) {
        for name in [
            format!("listener.name.{lower}.oauthbearer.{key}"),
            format!("listener.name.{lower}.{key}"),
            key.to_string(),
        ] {
            if let Some(value) = map.get(&name) {
                return (name, Some(value.trim().to_string()));
            }
        }
        let default = config_keys::lookup(key).and_then(|k| k.default.map(str::to_string));
        (key.to_string(), default)
    };
    let int = |key: &str| -> Result<u64, ConfigError> {
        let (name, value) = get(key);
        let value = value.unwrap_or_default();
        value
            .parse::<u64>()
            .map_err(|_| invalid(&name, &value, "must be a non-negative whole number"))
    };
    if !jaas.login_module.ends_with("OAuthBearerLoginModule") {
        return Err(invalid(
            jaas_key,
            &jaas.login_module,
            "OAUTHBEARER needs org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule",
        ));
    }
    let (class_key, class) = get("sasl.server.callback.handler.class");
    let class = class.filter(|c| !c.is_empty());
    let secured_class = match class.as_deref() {
        None => false,
        Some(c) if SECURED_VALIDATOR_CLASSES.contains(&c) => true,
        Some(UNSECURED_VALIDATOR_CLASS) => false,
        Some(other) => {
            return Err(invalid(
                &class_key,
                other,
                format!(
                    "Strom serves Kafka's {} (JWKS) or {UNSECURED_VALIDATOR_CLASS}",
                    SECURED_VALIDATOR_CLASSES[0]
                ),
            ))
        }
    };
    let (url_key, url) = get("sasl.oauthbearer.jwks.endpoint.url");
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        if secured_class {
            return Err(invalid(
                &url_key,
                "",
                format!(
                    "listener {listener}: the JWKS validator needs the JWKS, e.g. \
                     file:///etc/strom/jwks.json"
                ),
            ));
        }
        let options = UnsecuredOptions::from_jaas(&jaas.options)
            .map_err(|reason| invalid(jaas_key, "(hidden)", reason))?;
        return Ok(OAuthSettings::Unsecured(options));
    };
    if class.as_deref() == Some(UNSECURED_VALIDATOR_CLASS) {
        return Err(invalid(
            &class_key,
            UNSECURED_VALIDATOR_CLASS,
            format!("contradicts {url_key}: unset one of them"),
        ));
    }
    // Kafka 4 requires every OAUTHBEARER URL to be listed in the JVM system property
    // `org.apache.kafka.sasl.oauthbearer.allowed.urls` (empty: none allowed). Strom reads the
    // same name as a key: set, the JWKS URL must be one of its entries; unset, any URL is
    // allowed, since the URL only ever comes from this file (no client or dynamic config can
    // set it). docs/CONFIG.md states the difference.
    if let Some(allowed) = map.get(ALLOWED_URLS_KEY) {
        if !list(allowed).any(|a| a == url) {
            return Err(invalid(
                &url_key,
                &url,
                format!("is not allowed: add it to {ALLOWED_URLS_KEY} (comma-separated)"),
            ));
        }
    }
    let tls = if url.starts_with("https://") {
        // Kafka builds the JWKS client's SSL from the `ssl.*` options of the mechanism's
        // JAAS config (`JaasOptionsUtils`): `ssl.truststore.location="..."` and so on.
        let options = &jaas.options;
        let lookup = |key: &str| options.get(key).map(|v| v.trim().to_string());
        Some(Box::new(TlsSettings::from_lookup(&lookup).map_err(
            |e| {
                invalid(
                    jaas_key,
                    "(hidden)",
                    format!("the JWKS endpoint's TLS option {}: {}", e.key, e.reason),
                )
            },
        )?))
    } else {
        None
    };
    let (_, audience) = get("sasl.oauthbearer.expected.audience");
    let (_, issuer) = get("sasl.oauthbearer.expected.issuer");
    let (_, sub) = get("sasl.oauthbearer.sub.claim.name");
    let (_, scope) = get("sasl.oauthbearer.scope.claim.name");
    Ok(OAuthSettings::Jwks(JwksSettings {
        url,
        expected_audience: list(&audience.unwrap_or_default())
            .map(str::to_string)
            .collect(),
        expected_issuer: issuer.filter(|i| !i.is_empty()),
        sub_claim: sub
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "sub".into()),
        scope_claim: scope
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "scope".into()),
        clock_skew_seconds: int("sasl.oauthbearer.clock.skew.seconds")?,
        refresh_ms: int("sasl.oauthbearer.jwks.endpoint.refresh.ms")?,
        retry_backoff_ms: int("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms")?,
        retry_backoff_max_ms: int("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms")?,
        tls,
    }))
}

fn inter_broker_client(
    map: &BTreeMap<String, String>,
    inter: &ServedListener,
) -> Result<InterBrokerClient, ConfigError> {
    let sasl = match &inter.sasl {
        None => None,
        Some(settings) => {
            let mechanism = match map.get("sasl.mechanism.inter.broker.protocol") {
                Some(m) => {
                    let m = m.trim().to_ascii_uppercase();
                    if !settings.mechanisms.contains(&m) {
                        return Err(invalid(
                            "sasl.mechanism.inter.broker.protocol",
                            &m,
                            format!(
                                "must be enabled on the inter-broker listener {} (sasl.enabled.mechanisms)",
                                inter.listener.name
                            ),
                        ));
                    }
                    m
                }
                None => settings.mechanisms[0].clone(),
            };
            if mechanism == "OAUTHBEARER" {
                return Err(invalid(
                    "sasl.mechanism.inter.broker.protocol",
                    &mechanism,
                    format!(
                        "the inter-broker listener {} would use OAUTHBEARER, which this broker \
                         cannot send yet: set sasl.mechanism.inter.broker.protocol to PLAIN or \
                         SCRAM-SHA-256/512 (enabled on that listener), or make another listener \
                         the inter-broker one",
                        inter.listener.name
                    ),
                ));
            }
            let (user, password) = settings
                .client_credentials
                .get(&mechanism)
                .cloned()
                .ok_or_else(|| {
                    invalid(
                        &jaas_key(&inter.listener.name, &mechanism),
                        "",
                        format!(
                            "the inter-broker listener {} uses {mechanism}: its login module needs \
                             username=\"...\" password=\"...\" for this broker's own connections",
                            inter.listener.name
                        ),
                    )
                })?;
            Some((mechanism, user, password))
        }
    };
    Ok(InterBrokerClient {
        listener_name: inter.listener.name.clone(),
        protocol: inter.protocol,
        tls: inter.tls.clone(),
        sasl,
    })
}

/// The controller listener's security (the first of `controller.listener.names`): its
/// protocol from `listener.security.protocol.map` (a name that is itself a protocol name
/// needs no entry; a name with none is PLAINTEXT, as before these keys were honoured), its
/// `ssl.*` keys and its SASL login module, with `listener.name.<name>.` overrides, as for
/// any listener. Every node reads it, whatever its roles: a controller serves and uses it,
/// a broker-only node uses it to reach the controllers and serves it on its metadata
/// replication endpoint (the leader pushes the log there), so a broker-only node needs the
/// login module's `user_NAME` entries too.
///
/// SASL takes `sasl.mechanism.controller.protocol` (default: the first enabled mechanism),
/// which must be enabled on the listener and be one of [`QUORUM_MECHANISMS`]: PLAIN checks
/// the login module's `user_NAME` entries, SCRAM the node's metadata image (or, in a new
/// quorum, the users of `strom storage format --add-scram`); OAUTHBEARER has no token
/// source for a node's own connections here.
pub fn controller_security(
    map: &BTreeMap<String, String>,
) -> Result<strom_raft::QuorumSecurity, ConfigError> {
    let props = Props::new(map);
    // Kafka's controllers authorize every request on this listener when an authorizer is
    // configured (strom-raft's `security.rs`): the same keys as the broker's.
    let authorization = crate::authz::AuthzConfig::from_props(map)?;
    let authorizer = authorization.enabled.then_some(authorization.settings);
    let Some(name) = props
        .listener_names("controller.listener.names")?
        .into_iter()
        .next()
    else {
        return Ok(strom_raft::QuorumSecurity {
            authorizer,
            ..strom_raft::QuorumSecurity::default()
        });
    };
    let protocol_map_text = props.text("listener.security.protocol.map");
    let mut protocol = SecurityProtocol::parse(&name).unwrap_or(SecurityProtocol::Plaintext);
    for entry in list(protocol_map_text) {
        if let Some((entry_name, text)) = entry.split_once(':') {
            if entry_name.trim().eq_ignore_ascii_case(&name) {
                protocol = SecurityProtocol::parse(text.trim()).ok_or_else(|| {
                    invalid(
                        "listener.security.protocol.map",
                        protocol_map_text,
                        format!(
                            "unknown security protocol {text:?} for controller listener {name}"
                        ),
                    )
                })?;
            }
        }
    }
    let lookup = listener_lookup(map, &name);
    let tls = if protocol.uses_tls() {
        let named = |e: strom_security::TlsError| {
            invalid(
                &e.key,
                "",
                format!("controller listener {name}: {}", e.reason),
            )
        };
        let settings = TlsSettings::from_lookup(&lookup).map_err(named)?;
        // Every node serves this listener (a broker-only node its replication endpoint):
        // its key store must load, checked now so the error names the key.
        settings.server_config().map_err(named)?;
        Some(settings)
    } else {
        None
    };
    let sasl = if protocol.uses_sasl() {
        let settings = sasl_settings(map, &name, &lookup)?;
        let key = "sasl.mechanism.controller.protocol";
        let mechanism = match map.get(key) {
            Some(m) => m.trim().to_ascii_uppercase(),
            None => settings.mechanisms[0].clone(),
        };
        if !QUORUM_MECHANISMS.contains(&mechanism.as_str()) {
            return Err(invalid(
                key,
                &mechanism,
                format!(
                    "controller listener {name}: {mechanism} is not served on the controller \
                     listener (served: {}; OAUTHBEARER would need a token source for each \
                     node's own connections); set {key} to one of them and enable it in \
                     sasl.enabled.mechanisms",
                    QUORUM_MECHANISMS.join(", ")
                ),
            ));
        }
        if !settings.mechanisms.contains(&mechanism) {
            return Err(invalid(
                key,
                &mechanism,
                format!("must be enabled on controller listener {name} (sasl.enabled.mechanisms)"),
            ));
        }
        let (username, password) = settings
            .client_credentials
            .get(&mechanism)
            .cloned()
            .ok_or_else(|| {
                invalid(
                    &jaas_key(&name, &mechanism),
                    "",
                    format!(
                        "controller listener {name} uses {mechanism}: its login module needs \
                         username=\"...\" password=\"...\" for this node's own connections to \
                         the quorum"
                    ),
                )
            })?;
        Some(strom_raft::QuorumSasl {
            mechanism,
            enabled: settings.mechanisms,
            plain_users: settings.plain_users,
            username,
            password,
        })
    } else {
        None
    };
    Ok(strom_raft::QuorumSecurity {
        listener_name: name,
        tls,
        sasl,
        authorizer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn several_listeners_with_their_protocols_and_overrides() {
        let config = parse(&props(&[
            ("listeners", "PLAINTEXT://:9092,INTERNAL://127.0.0.1:9094,CONTROLLER://:9093,SASL_PLAINTEXT://:9095"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"),
            ("inter.broker.listener.name", "INTERNAL"),
            ("sasl.enabled.mechanisms", "PLAIN"),
            ("listener.name.internal.sasl.enabled.mechanisms", "SCRAM-SHA-512,PLAIN"),
            ("listener.name.internal.plain.sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"b\" password=\"bp\" user_b=\"bp\";"),
            ("listener.name.sasl_plaintext.plain.sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"a\";"),
            ("listener.name.internal.scram-sha-512.sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"s\" password=\"sp\";"),
        ]))
        .unwrap();
        let names: Vec<_> = config
            .served
            .iter()
            .map(|s| s.listener.name.as_str())
            .collect();
        assert_eq!(names, ["PLAINTEXT", "INTERNAL", "SASL_PLAINTEXT"]);
        let internal = &config.served[1];
        assert_eq!(internal.protocol, SecurityProtocol::SaslPlaintext);
        let sasl = internal.sasl.as_ref().unwrap();
        assert_eq!(sasl.mechanisms, ["SCRAM-SHA-512", "PLAIN"]);
        assert_eq!(
            config.served[2].sasl.as_ref().unwrap().plain_users["alice"],
            "a"
        );
        assert_eq!(
            config.inter_broker_client.sasl,
            Some(("SCRAM-SHA-512".into(), "s".into(), "sp".into()))
        );
        assert!(
            !format!("{config:?}").contains("bp"),
            "passwords never printed"
        );
    }

    #[test]
    fn refusals_name_their_key() {
        let key_of = |pairs: &[(&str, &str)]| match parse(&props(pairs)) {
            Err(ConfigError::InvalidValue { key, .. }) => key,
            Ok(_) => "accepted".to_string(),
        };
        assert_eq!(
            key_of(&[("listeners", "FOO://:1")]),
            "listener.security.protocol.map"
        );
        assert_eq!(
            key_of(&[("listeners", "SASL_PLAINTEXT://:1")]),
            "sasl.enabled.mechanisms"
        );
        assert_eq!(
            key_of(&[
                ("listeners", "SASL_PLAINTEXT://:1"),
                ("sasl.enabled.mechanisms", "PLAIN")
            ]),
            "listener.name.sasl_plaintext.plain.sasl.jaas.config"
        );
        assert_eq!(
            key_of(&[("listeners", "SSL://:1"), ("ssl.keystore.type", "JKS")]),
            "ssl.keystore.type"
        );
        assert_eq!(
            key_of(&[
                ("listeners", "PLAINTEXT://:1"),
                ("inter.broker.listener.name", "X")
            ]),
            "inter.broker.listener.name"
        );
        assert_eq!(
            key_of(&[("listeners", "PLAINTEXT://:1,PLAINTEXT://:2")]),
            "listeners"
        );
    }

    #[test]
    fn oauthbearer_validators_from_kafkas_keys() {
        let base = [
            ("listeners", "PLAINTEXT://:1,OAUTH://:2"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,OAUTH:SASL_PLAINTEXT",
            ),
            ("sasl.enabled.mechanisms", "OAUTHBEARER"),
            (
                "listener.name.oauth.oauthbearer.sasl.jaas.config",
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
                 unsecuredValidatorRequiredScope=\"a b\";",
            ),
        ];
        let oauth = |extra: &[(&str, &str)]| {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(extra);
            parse(&props(&pairs)).map(|c| c.served[1].sasl.clone().unwrap().oauth.unwrap())
        };
        match oauth(&[]).unwrap() {
            OAuthSettings::Unsecured(o) => assert_eq!(o.required_scope, ["a", "b"]),
            other => panic!("{other:?}"),
        }
        let jwks = oauth(&[
            (
                "listener.name.oauth.oauthbearer.sasl.server.callback.handler.class",
                SECURED_VALIDATOR_CLASSES[0],
            ),
            (
                "listener.name.oauth.oauthbearer.sasl.oauthbearer.jwks.endpoint.url",
                "file:///etc/jwks.json",
            ),
            ("sasl.oauthbearer.expected.audience", "a, b"),
            (
                "listener.name.oauth.sasl.oauthbearer.clock.skew.seconds",
                "5",
            ),
        ])
        .unwrap();
        assert_eq!(
            jwks,
            OAuthSettings::Jwks(JwksSettings {
                url: "file:///etc/jwks.json".into(),
                expected_audience: vec!["a".into(), "b".into()],
                expected_issuer: None,
                sub_claim: "sub".into(),
                scope_claim: "scope".into(),
                clock_skew_seconds: 5,
                refresh_ms: 3_600_000,
                retry_backoff_ms: 100,
                retry_backoff_max_ms: 10_000,
                tls: None,
            })
        );
        // An https endpoint takes its TLS trust from the JAAS options; the allow-list, when
        // set, must name the URL.
        let https = [
            (
                "listener.name.oauth.oauthbearer.sasl.oauthbearer.jwks.endpoint.url",
                "https://idp.test/jwks",
            ),
            (
                "listener.name.oauth.oauthbearer.sasl.jaas.config",
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
                 ssl.truststore.type=\"JKS\";",
            ),
        ];
        assert_eq!(
            match oauth(&https) {
                Err(ConfigError::InvalidValue { key, reason, .. }) =>
                    (key, reason.contains("ssl.truststore.type")),
                other => panic!("{other:?}"),
            },
            (
                "listener.name.oauth.oauthbearer.sasl.jaas.config".to_string(),
                true
            )
        );
        match oauth(&https[..1]).unwrap() {
            OAuthSettings::Jwks(s) => assert!(s.tls.is_some()),
            other => panic!("{other:?}"),
        }
        let listed = [
            https[0],
            (ALLOWED_URLS_KEY, "file:///x, https://idp.test/jwks"),
        ];
        assert!(oauth(&listed).is_ok());
        let unlisted = [https[0], (ALLOWED_URLS_KEY, "https://other.test/jwks")];
        assert!(matches!(oauth(&unlisted),
            Err(ConfigError::InvalidValue { key, .. }) if key == "listener.name.oauth.oauthbearer.sasl.oauthbearer.jwks.endpoint.url"));
        let key_of = |extra: &[(&str, &str)]| match oauth(extra) {
            Err(ConfigError::InvalidValue { key, .. }) => key,
            Ok(_) => "accepted".into(),
        };
        assert_eq!(
            key_of(&[(
                "listener.name.oauth.oauthbearer.sasl.server.callback.handler.class",
                SECURED_VALIDATOR_CLASSES[1]
            )]),
            "sasl.oauthbearer.jwks.endpoint.url"
        );
        assert_eq!(
            key_of(&[("sasl.server.callback.handler.class", "com.example.Mine")]),
            "sasl.server.callback.handler.class"
        );
        assert_eq!(
            key_of(&[("inter.broker.listener.name", "OAUTH")]),
            "sasl.mechanism.inter.broker.protocol"
        );
        let mut no_jaas = base.to_vec();
        no_jaas.pop();
        assert!(matches!(parse(&props(&no_jaas)),
            Err(ConfigError::InvalidValue { key, .. }) if key == "listener.name.oauth.oauthbearer.sasl.jaas.config"));
    }

    #[test]
    fn the_controller_listener_security_from_its_keys() {
        const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
            username=\"c\" password=\"cp\" user_c=\"cp\";";
        let base = [
            ("controller.listener.names", "CONTROLLER"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            ),
            ("sasl.enabled.mechanisms", "PLAIN"),
            ("listener.name.controller.plain.sasl.jaas.config", JAAS),
        ];
        let check = |extra: &[(&str, &str)]| {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(extra);
            controller_security(&props(&pairs))
        };
        let security = check(&[]).unwrap();
        assert_eq!(security.listener_name, "CONTROLLER");
        assert_eq!(security.protocol_name(), "SASL_PLAINTEXT");
        let sasl = security.sasl.unwrap();
        assert_eq!(
            (sasl.mechanism.as_str(), sasl.username.as_str()),
            ("PLAIN", "c")
        );
        assert_eq!(sasl.plain_users.get("c").map(String::as_str), Some("cp"));
        // No map entry: PLAINTEXT, as before the keys were honoured.
        let plain = controller_security(&props(&[("controller.listener.names", "CONTROLLER")]));
        assert_eq!(plain.unwrap().protocol_name(), "PLAINTEXT");
        // Each refusal names its key.
        let key_of = |extra: &[(&str, &str)]| match check(extra) {
            Err(ConfigError::InvalidValue { key, .. }) => key,
            other => panic!("{other:?}"),
        };
        // OAUTHBEARER is refused; SCRAM is served once enabled, with its login module.
        assert_eq!(
            key_of(&[("sasl.mechanism.controller.protocol", "OAUTHBEARER")]),
            "sasl.mechanism.controller.protocol"
        );
        assert_eq!(
            key_of(&[("sasl.mechanism.controller.protocol", "SCRAM-SHA-256")]),
            "sasl.mechanism.controller.protocol"
        );
        let scram = check(&[
            ("sasl.mechanism.controller.protocol", "SCRAM-SHA-512"),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
            (
                "listener.name.controller.scram-sha-512.sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required \
                 username=\"c\" password=\"cs\";",
            ),
        ])
        .unwrap()
        .sasl
        .unwrap();
        assert_eq!(
            (
                scram.mechanism.as_str(),
                scram.username.as_str(),
                scram.password.as_str()
            ),
            ("SCRAM-SHA-512", "c", "cs")
        );
        assert_eq!(
            key_of(&[(
                "listener.name.controller.plain.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required user_c=\"cp\";"
            )]),
            "listener.name.controller.plain.sasl.jaas.config"
        );
        assert_eq!(
            key_of(&[("listener.security.protocol.map", "CONTROLLER:SASL_SSL")]),
            "ssl.keystore.location"
        );
    }
}
