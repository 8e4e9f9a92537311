//! The observability keys: the HTTP listener (`strom.http.listeners`) and the metrics
//! bounds (`strom.metrics.*`).

use std::collections::BTreeMap;

use crate::config::ConfigError;

/// Where the HTTP listener (metrics, health) binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpListener {
    /// Host or address (empty or `0.0.0.0`: every interface).
    pub host: String,
    /// Port (0: any free one).
    pub port: u16,
    /// `https://`: served over TLS.
    pub tls: bool,
}

impl HttpListener {
    /// The `host:port` to bind.
    pub fn bind_address(&self) -> String {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Whether the host is a loopback name or address (anything else is reachable from
    /// other machines, and the endpoints have no authentication yet).
    pub fn is_loopback(&self) -> bool {
        if self.host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        self.host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    }

    /// Parses one `http://host:port` entry.
    fn parse(key: &str, text: &str) -> Result<HttpListener, ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidValue {
            key: key.to_string(),
            value: text.to_string(),
            reason: reason.to_string(),
        };
        let lower = text.to_ascii_lowercase();
        let (tls, scheme) = if lower.starts_with("https://") {
            (true, "https://")
        } else if lower.starts_with("http://") {
            (false, "http://")
        } else {
            return Err(invalid("expected http://host:port or https://host:port"));
        };
        let rest = text.get(scheme.len()..).unwrap_or_default();
        let rest = rest.trim_end_matches('/');
        let Some((host, port)) = rest.rsplit_once(':') else {
            return Err(invalid("expected http://host:port (the port is missing)"));
        };
        let port: u16 = port
            .parse()
            .map_err(|_| invalid("the port must be a number from 0 to 65535"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(HttpListener {
            host: host.to_string(),
            port,
            tls,
        })
    }
}

/// Bounds and switches of the broker's HTTP listener and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `strom.http.listeners`: where metrics and health are served (`None`: set empty,
    /// no HTTP listener). One listener for now.
    pub http_listener: Option<HttpListener>,
    /// Whether `strom.http.listeners` was set. The default listener is taken only when its
    /// port is free (several nodes on one machine would all want it): a busy default port
    /// is a warning, a busy configured one fails start-up.
    pub http_listener_set: bool,
    /// `strom.metrics.partition.enable`: expose per-partition series (log size, segments,
    /// offsets, consumer lag per partition). Off: only per-topic and per-group sums.
    pub partition_enable: bool,
    /// `strom.metrics.series.max`: the most series one metric family holds (topics,
    /// partitions, group-partition lag pairs, error codes). Beyond it, new label sets share
    /// an overflow series or are left out of the scrape, and
    /// `strom_metrics_series_refused_total` counts them.
    pub series_max: usize,
    /// `strom.metrics.client.instances.max`: the most KIP-714 client instances whose pushed
    /// metrics are kept (the least recently seen one makes room for a new one).
    pub client_instances_max: usize,
    /// `telemetry.max.bytes` (Kafka's key and default, 1 MiB): the largest PushTelemetry
    /// payload accepted, compressed and decompressed.
    pub telemetry_max_bytes: usize,
    /// The TLS settings of an `https://` listener: `strom.http.ssl.<key>` overrides, else the
    /// broker's `ssl.<key>` (PEM keystore and, for client certificates, truststore).
    pub http_tls: Option<strom_security::TlsSettings>,
    /// `strom.http.authentication.method`: NONE or BASIC (HTTP Basic, checked against the
    /// broker's SASL users).
    pub http_authentication: HttpAuthentication,
    /// `strom.http.authentication.skip.paths`: paths (and the paths below them) served
    /// without authentication, e.g. `/metrics,/health`.
    pub http_skip_paths: Vec<String>,
    /// `strom.console.schema.registry.url`: a registry running elsewhere that the console
    /// reads schemas from (`http://host:port`); the in-process registry needs none.
    pub console_registry_url: Option<String>,
}

/// How the HTTP listener authenticates requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpAuthentication {
    /// Every request is `User:ANONYMOUS`.
    None,
    /// HTTP Basic (RFC 7617) with a PLAIN JAAS user's or a SCRAM user's name and password.
    Basic,
}

/// Prefix of the HTTP listener's TLS overrides (`strom.http.ssl.keystore.location`...).
pub const HTTP_SSL_PREFIX: &str = "strom.http.";

impl Default for MetricsConfig {
    /// The default HTTP listener is `http://127.0.0.1:9644`: loopback only, on the port
    /// Redpanda's admin API uses.
    fn default() -> Self {
        MetricsConfig {
            http_listener: Some(HttpListener {
                host: "127.0.0.1".to_string(),
                port: 9644,
                tls: false,
            }),
            http_tls: None,
            http_authentication: HttpAuthentication::None,
            http_skip_paths: Vec::new(),
            console_registry_url: None,
            http_listener_set: false,
            partition_enable: true,
            series_max: 10_000,
            client_instances_max: 256,
            telemetry_max_bytes: 1024 * 1024,
        }
    }
}

impl MetricsConfig {
    /// Reads the keys from `server.properties` pairs.
    pub fn from_props(map: &BTreeMap<String, String>) -> Result<MetricsConfig, ConfigError> {
        let defaults = MetricsConfig::default();
        let invalid = |key: &str, value: &str, reason: &str| ConfigError::InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let get = |key: &str| map.get(key).map(|v| v.trim());
        let (http_listener, http_listener_set) = match get("strom.http.listeners") {
            None => (defaults.http_listener, false),
            Some("") => (None, true),
            Some(text) => {
                let entries: Vec<&str> = text
                    .split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .collect();
                match entries.as_slice() {
                    [] => (None, true),
                    [one] => (
                        Some(HttpListener::parse("strom.http.listeners", one)?),
                        true,
                    ),
                    _ => {
                        return Err(invalid(
                            "strom.http.listeners",
                            text,
                            "one HTTP listener is served for now; name only one",
                        ))
                    }
                }
            }
        };
        // The simple keys' rules and defaults are the table's (`config_keys.rs`).
        let props = crate::config_keys::Props::new(map);
        let partition_enable = props.bool("strom.metrics.partition.enable")?;
        let series_max = props.int("strom.metrics.series.max")?;
        let client_instances_max = props.int("strom.metrics.client.instances.max")?;
        let telemetry_max_bytes = props.int("telemetry.max.bytes")?;
        let http_tls = match &http_listener {
            Some(listener) if listener.tls => {
                let lookup = |key: &str| {
                    map.get(&format!("{HTTP_SSL_PREFIX}{key}"))
                        .or_else(|| map.get(key))
                        .map(|v| v.trim().to_string())
                };
                let settings = strom_security::TlsSettings::from_lookup(&lookup).map_err(|e| {
                    ConfigError::InvalidValue {
                        key: format!("{HTTP_SSL_PREFIX}{}", e.key),
                        value: String::new(),
                        reason: format!(
                            "the https:// HTTP listener: {} (set strom.http.{} or {})",
                            e.reason, e.key, e.key
                        ),
                    }
                })?;
                Some(settings)
            }
            _ => None,
        };
        let method = get("strom.http.authentication.method").unwrap_or("NONE");
        let http_authentication = if method.eq_ignore_ascii_case("NONE") || method.is_empty() {
            HttpAuthentication::None
        } else if method.eq_ignore_ascii_case("BASIC") {
            HttpAuthentication::Basic
        } else {
            return Err(invalid(
                "strom.http.authentication.method",
                method,
                "expected NONE or BASIC",
            ));
        };
        let mut http_skip_paths = Vec::new();
        for path in get("strom.http.authentication.skip.paths")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            if !path.starts_with('/') {
                return Err(invalid(
                    "strom.http.authentication.skip.paths",
                    path,
                    "each path starts with / (e.g. /metrics,/health)",
                ));
            }
            http_skip_paths.push(path.trim_end_matches('/').to_string());
        }
        let console_registry_url = match get("strom.console.schema.registry.url") {
            None | Some("") => None,
            Some(url) if url.to_ascii_lowercase().starts_with("http://") => Some(url.to_string()),
            Some(url) => {
                return Err(invalid(
                    "strom.console.schema.registry.url",
                    url,
                    "expected http://host:port (the console's registry client speaks plain \
                     HTTP; run the registry in-process with schema.registry.enable=true to use \
                     it without a URL)",
                ))
            }
        };
        Ok(MetricsConfig {
            http_listener,
            http_listener_set,
            partition_enable,
            series_max,
            client_instances_max,
            telemetry_max_bytes,
            http_tls,
            http_authentication,
            http_skip_paths,
            console_registry_url,
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
    fn defaults_and_values() {
        let defaults = MetricsConfig::from_props(&props(&[])).unwrap();
        assert_eq!(defaults, MetricsConfig::default());
        let listener = defaults.http_listener.unwrap();
        assert_eq!(listener.bind_address(), "127.0.0.1:9644");
        assert!(listener.is_loopback());
        assert!(!defaults.http_listener_set);
        let config = MetricsConfig::from_props(&props(&[
            ("strom.metrics.partition.enable", "FALSE"),
            ("strom.metrics.series.max", "5"),
            ("strom.http.listeners", "http://0.0.0.0:0/"),
        ]))
        .unwrap();
        assert!(!config.partition_enable);
        assert_eq!(config.series_max, 5);
        let listener = config.http_listener.unwrap();
        assert_eq!(listener.port, 0);
        assert!(!listener.is_loopback());
        let v6 = MetricsConfig::from_props(&props(&[("strom.http.listeners", "http://[::1]:80")]))
            .unwrap()
            .http_listener
            .unwrap();
        assert_eq!(v6.bind_address(), "[::1]:80");
        assert!(v6.is_loopback());
        // strom.http.ssl.* overrides the broker's ssl.* (checked here; files read at bind).
        let error = MetricsConfig::from_props(&props(&[
            ("strom.http.listeners", "https://127.0.0.1:1"),
            ("strom.http.ssl.keystore.type", "JKS"),
        ]))
        .unwrap_err();
        assert!(
            error.to_string().contains("strom.http.ssl.keystore.type"),
            "{error}"
        );
        let tls = MetricsConfig::from_props(&props(&[
            ("strom.http.listeners", "HTTPS://127.0.0.1:1"),
            ("ssl.keystore.location", "/k.pem"),
            ("strom.http.authentication.method", "basic"),
            ("strom.http.authentication.skip.paths", "/metrics, /health/"),
        ]))
        .unwrap();
        assert!(tls.http_listener.as_ref().unwrap().tls && tls.http_tls.is_some());
        assert_eq!(tls.http_authentication, HttpAuthentication::Basic);
        assert_eq!(tls.http_skip_paths, vec!["/metrics", "/health"]);
        let off = MetricsConfig::from_props(&props(&[("strom.http.listeners", "")])).unwrap();
        assert_eq!(off.http_listener, None);
        assert!(off.http_listener_set);
        for (key, value) in [
            ("strom.metrics.partition.enable", "yes"),
            ("strom.metrics.series.max", "0"),
            ("strom.http.listeners", "127.0.0.1:9644"),
            ("strom.http.listeners", "ftp://127.0.0.1:9644"),
            ("strom.http.authentication.method", "DIGEST"),
            ("strom.http.authentication.skip.paths", "metrics"),
            ("strom.http.listeners", "http://127.0.0.1"),
            ("strom.http.listeners", "http://127.0.0.1:70000"),
            ("strom.http.listeners", "http://a:1,http://b:2"),
        ] {
            let error = MetricsConfig::from_props(&props(&[(key, value)])).unwrap_err();
            assert!(error.to_string().contains(key), "{error}");
        }
    }
}
