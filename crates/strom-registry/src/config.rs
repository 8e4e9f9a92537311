//! The registry's configuration, read from Confluent's `schema-registry.properties` keys and
//! validated once into typed fields with units in their names.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::compat::CompatibilityLevel;
use crate::error::RegistryError;
use crate::service::Settings;

/// The typed configuration.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// `listeners`: where the REST API listens.
    pub listeners: Vec<SocketAddr>,
    /// Per listener (same order): `https://`, served with [`RegistryConfig::tls`].
    pub listener_tls: Vec<bool>,
    /// The `ssl.*` keys (PEM keystore, truststore, client auth) of the `https://` listeners.
    pub tls: Option<strom_security::TlsSettings>,
    /// `authentication.method=BASIC`: HTTP Basic checked by [`RegistryConfig::authenticator`].
    pub basic_auth: bool,
    /// `authentication.realm` (Confluent's key): the realm named in `WWW-Authenticate`.
    pub realm: String,
    /// Who checks Basic credentials: set by `strom server` for the in-process registry (the
    /// broker's SASL users). A registry with `basic_auth` and none refuses to start.
    pub authenticator: Option<crate::security::Authenticator>,
    /// `host.name`: the host other registry processes reach this one at (forwarded writes).
    pub host_name: String,
    /// `kafkastore.bootstrap.servers`: the cluster holding `kafkastore.topic`.
    pub bootstrap_servers: String,
    /// `kafkastore.topic`.
    pub topic: String,
    /// `kafkastore.topic.replication.factor`: -1 takes the cluster's default.
    pub topic_replication_factor: i16,
    /// `kafkastore.timeout.ms`: how long a write waits to be in the topic and read back.
    pub store_timeout_ms: u64,
    /// `kafkastore.init.timeout.ms`: how long startup may take (topic, first read, election).
    pub init_timeout_ms: u64,
    /// `schema.registry.group.id`: the group the leader is elected in.
    pub group_id: String,
    /// `leader.eligibility`: whether this process may become the leader.
    pub leader_eligibility: bool,
    /// `schema.compatibility.level`, `mode.mutability`, `strom.schema.bytes.max`.
    pub settings: Settings,
    /// `strom.request.bytes.max`: longest request body accepted.
    pub request_bytes_max: usize,
    /// `subject.search.max.limit`: most subjects one listing returns.
    pub subjects_listed_max: usize,
    /// `subject.version.search.max.limit`: most versions one listing returns.
    pub versions_listed_max: usize,
    /// `schema.search.max.limit`: most schemas `GET /schemas` returns.
    pub schemas_listed_max: usize,
}

/// Keys this crate reads (others are warned about by the caller).
pub const KEYS: &[&str] = &[
    "listeners",
    "host.name",
    "kafkastore.bootstrap.servers",
    "kafkastore.topic",
    "kafkastore.topic.replication.factor",
    "kafkastore.timeout.ms",
    "kafkastore.init.timeout.ms",
    "schema.registry.group.id",
    "leader.eligibility",
    "schema.compatibility.level",
    "mode.mutability",
    "strom.schema.bytes.max",
    "strom.request.bytes.max",
    "subject.search.max.limit",
    "subject.version.search.max.limit",
    "schema.search.max.limit",
    "authentication.method",
    "authentication.realm",
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
];

fn bad(key: &str, reason: impl Into<String>) -> RegistryError {
    RegistryError::Config {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn number<T: std::str::FromStr>(
    props: &BTreeMap<String, String>,
    key: &str,
    default: T,
) -> Result<T, RegistryError> {
    match props.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| bad(key, format!("{v:?} is not a number in range"))),
    }
}

fn boolean(
    props: &BTreeMap<String, String>,
    key: &str,
    default: bool,
) -> Result<bool, RegistryError> {
    match props.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(bad(key, format!("{v:?} is not true or false"))),
    }
}

/// `PLAINTEXT://host:port` or `host:port` as `host:port`.
fn strip_scheme(server: &str) -> &str {
    server.split_once("://").map_or(server, |(_, rest)| rest)
}

impl RegistryConfig {
    /// Reads the keys from `props`; `default_bootstrap` stands in for a missing
    /// `kafkastore.bootstrap.servers` (the in-process broker's address).
    pub fn from_props(
        props: &BTreeMap<String, String>,
        default_bootstrap: Option<&str>,
    ) -> Result<RegistryConfig, RegistryError> {
        let listeners_text = props
            .get("listeners")
            .map(String::as_str)
            .unwrap_or("http://127.0.0.1:8081");
        let mut listeners = Vec::new();
        let mut listener_tls = Vec::new();
        for item in listeners_text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (scheme, addr) = item.split_once("://").unwrap_or(("http", item));
            let tls = if scheme.eq_ignore_ascii_case("https") {
                true
            } else if scheme.eq_ignore_ascii_case("http") {
                false
            } else {
                return Err(bad(
                    "listeners",
                    format!("{item}: expected http://IP:PORT or https://IP:PORT"),
                ));
            };
            listener_tls.push(tls);
            let addr = addr.trim_end_matches('/');
            let addr = addr
                .strip_prefix("localhost:")
                .map_or(addr.to_string(), |p| format!("127.0.0.1:{p}"));
            let parsed = addr
                .parse::<SocketAddr>()
                .map_err(|_| bad("listeners", format!("{item}: not http(s)://IP:PORT")))?;
            listeners.push(parsed);
        }
        let first = listeners
            .first()
            .ok_or_else(|| bad("listeners", "no listener given"))?;
        let host_name = props
            .get("host.name")
            .cloned()
            .unwrap_or_else(|| first.ip().to_string());
        let bootstrap_servers = props
            .get("kafkastore.bootstrap.servers")
            .map(String::as_str)
            .or(default_bootstrap)
            .ok_or_else(|| {
                bad(
                    "kafkastore.bootstrap.servers",
                    "required: the cluster's bootstrap servers",
                )
            })?
            .split(',')
            .map(|s| strip_scheme(s.trim()))
            .collect::<Vec<_>>()
            .join(",");
        let level_text = props
            .get("schema.compatibility.level")
            .map(String::as_str)
            .unwrap_or("backward");
        let default_compatibility = CompatibilityLevel::parse(level_text).ok_or_else(|| {
            bad(
                "schema.compatibility.level",
                format!("{level_text:?} is not a compatibility level"),
            )
        })?;
        let topic = props
            .get("kafkastore.topic")
            .cloned()
            .unwrap_or_else(|| "_schemas".to_string());
        if topic.is_empty() {
            return Err(bad("kafkastore.topic", "empty"));
        }
        let tls = if listener_tls.iter().any(|t| *t) {
            let lookup = |key: &str| props.get(key).map(|v| v.trim().to_string());
            let settings = strom_security::TlsSettings::from_lookup(&lookup)
                .map_err(|e| bad(&e.key, format!("the https listeners: {}", e.reason)))?;
            Some(settings)
        } else {
            None
        };
        let method = props
            .get("authentication.method")
            .map_or("NONE", |m| m.trim());
        let basic_auth = if method.eq_ignore_ascii_case("BASIC") {
            true
        } else if method.eq_ignore_ascii_case("NONE") || method.is_empty() {
            false
        } else {
            return Err(bad(
                "authentication.method",
                format!("{method:?}: expected NONE or BASIC"),
            ));
        };
        Ok(RegistryConfig {
            listeners,
            listener_tls,
            tls,
            basic_auth,
            realm: props
                .get("authentication.realm")
                .map_or_else(|| "SchemaRegistry".to_string(), |r| r.trim().to_string()),
            authenticator: None,
            host_name,
            bootstrap_servers,
            topic,
            topic_replication_factor: number(props, "kafkastore.topic.replication.factor", -1)?,
            store_timeout_ms: number(props, "kafkastore.timeout.ms", 10_000)?,
            init_timeout_ms: number(props, "kafkastore.init.timeout.ms", 60_000)?,
            group_id: props
                .get("schema.registry.group.id")
                .cloned()
                .unwrap_or_else(|| "schema-registry".to_string()),
            leader_eligibility: boolean(props, "leader.eligibility", true)?,
            settings: Settings {
                default_compatibility,
                mode_mutability: boolean(props, "mode.mutability", true)?,
                schema_bytes_max: number(props, "strom.schema.bytes.max", 512 * 1024)?,
            },
            request_bytes_max: number(props, "strom.request.bytes.max", 2 * 1024 * 1024)?,
            subjects_listed_max: number(props, "subject.search.max.limit", 100_000)?,
            versions_listed_max: number(props, "subject.version.search.max.limit", 100_000)?,
            schemas_listed_max: number(props, "schema.search.max.limit", 1_000)?,
        })
    }
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
    fn defaults_are_confluents() {
        let c = RegistryConfig::from_props(
            &props(&[("kafkastore.bootstrap.servers", "PLAINTEXT://h:9092")]),
            None,
        )
        .unwrap();
        assert_eq!(c.listeners, vec!["127.0.0.1:8081".parse().unwrap()]);
        assert_eq!(c.bootstrap_servers, "h:9092");
        assert_eq!(c.topic, "_schemas");
        assert_eq!(
            c.settings.default_compatibility,
            CompatibilityLevel::Backward
        );
        assert!(c.settings.mode_mutability);
        assert_eq!(c.group_id, "schema-registry");
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = RegistryConfig::from_props(&props(&[]), None).unwrap_err();
        assert!(e.to_string().contains("kafkastore.bootstrap.servers"));
        let e =
            RegistryConfig::from_props(&props(&[("listeners", "ftp://0.0.0.0:8081")]), Some("h:1"))
                .unwrap_err();
        assert!(e.to_string().contains("listeners"));
        let e =
            RegistryConfig::from_props(&props(&[("authentication.method", "DIGEST")]), Some("h:1"))
                .unwrap_err();
        assert!(e.to_string().contains("authentication.method"));
        let c = RegistryConfig::from_props(
            &props(&[
                ("listeners", "https://127.0.0.1:8443,http://127.0.0.1:8081"),
                ("ssl.keystore.location", "/k.pem"),
                ("authentication.method", "BASIC"),
            ]),
            Some("h:1"),
        )
        .unwrap();
        assert_eq!(c.listener_tls, vec![true, false]);
        assert!(c.tls.is_some() && c.basic_auth);
        assert_eq!(c.realm, "SchemaRegistry");
        let e = RegistryConfig::from_props(
            &props(&[("schema.compatibility.level", "sideways")]),
            Some("h:1"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("schema.compatibility.level"));
        let c = RegistryConfig::from_props(
            &props(&[("listeners", "http://localhost:9999")]),
            Some("h:1"),
        )
        .unwrap();
        assert_eq!(c.listeners[0].port(), 9999);
    }
}
