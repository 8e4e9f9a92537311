//! Dynamic `ssl.*` of a TLS listener, as Kafka's `DynamicBrokerConfig` reconfigures its
//! SSL factory: `kafka-configs.sh --entity-type brokers --entity-name <id> --alter
//! --add-config listener.name.<name>.ssl.keystore.location=...` (IncrementalAlterConfigs or
//! AlterConfigs on this broker's resource).
//!
//! - Only Kafka's reconfigurable SSL keys ([`RECONFIGURABLE`]: key and trust stores and
//!   their passwords) change at runtime, only with the listener prefix, and only per broker:
//!   the cluster default is refused as Kafka refuses it (INVALID_REQUEST).
//! - The broker that receives the change validates it before it reaches the controller: the
//!   listener's `server.properties` values with this broker's dynamic values and the change
//!   laid over them must load (files read, key decrypted, key matching the certificate),
//!   else INVALID_CONFIG and nothing is stored, so the old key store stays in force.
//! - Applied by each listener's accept loop (`server.rs`): before serving a connection it
//!   compares the dynamic values in the metadata image with those it applied last and, when
//!   they differ, rebuilds the listener's TLS configuration for new connections
//!   (`TlsServer::replace`); connections already open keep their session. A change that no
//!   longer loads there (a file removed since) keeps the previous configuration, logged.
//!
//! The values are stored in the metadata log as given, as KRaft stores dynamic configs
//! (`ssl.key.password` included: protect the metadata log directory).

use std::collections::BTreeMap;

use strom_meta::{ConfigResource, ConfigResourceKind, MetadataImage};
use strom_protocol::ErrorCode;
use strom_security::{TlsError, TlsSettings};

use crate::listeners::ServedListener;
use crate::server::BrokerContext;

/// Kafka's `SslConfigs.RECONFIGURABLE_CONFIGS`.
pub const RECONFIGURABLE: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
];

/// `listener.name.<listener>.<ssl key>` split, when `key` has that shape.
fn split(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("listener.name.")?;
    let dot = rest.find(".ssl.")?;
    Some((&rest[..dot], &rest[dot + 1..]))
}

/// The dynamic `ssl.*` values of `listener` on node `node_id` (prefix removed).
pub fn overlay(image: &MetadataImage, node_id: i32, listener: &str) -> BTreeMap<String, String> {
    let resource = ConfigResource {
        kind: ConfigResourceKind::Broker,
        name: node_id.to_string(),
    };
    image
        .configs(&resource)
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| {
            let (name, ssl_key) = split(key)?;
            name.eq_ignore_ascii_case(listener)
                .then(|| (ssl_key.to_string(), value.clone()))
        })
        .collect()
}

/// The listener's settings with `overlay` laid over its `server.properties` values.
pub fn settings(
    served: &ServedListener,
    overlay: &BTreeMap<String, String>,
) -> Result<TlsSettings, TlsError> {
    let lookup = |key: &str| {
        overlay
            .get(key)
            .or_else(|| served.ssl_static.0.get(key))
            .map(|v| v.trim().to_string())
    };
    TlsSettings::from_lookup(&lookup)
}

/// Why a change of broker `resource` is refused because of its listener `ssl.*` keys, as
/// Kafka refuses it; `None` when it has none or they are valid.
pub fn refusal<'a>(
    context: &BrokerContext,
    resource: &ConfigResource,
    configs: impl Iterator<Item = (&'a str, Option<&'a str>)> + Clone,
) -> Option<(ErrorCode, String)> {
    if resource.kind != ConfigResourceKind::Broker {
        return None;
    }
    if let Some(refusal) = unprefixed(configs.clone().map(|(key, _)| key)) {
        return Some(refusal);
    }
    // listener (upper case) -> changes (None: delete).
    let mut changes: BTreeMap<String, Vec<(&str, Option<&str>)>> = BTreeMap::new();
    for (key, value) in configs {
        let Some((listener, ssl_key)) = split(key) else {
            continue;
        };
        if !RECONFIGURABLE.contains(&ssl_key) {
            return Some((
                ErrorCode::INVALID_REQUEST,
                format!("Cannot update these configs dynamically: {key}"),
            ));
        }
        changes
            .entry(listener.to_ascii_uppercase())
            .or_default()
            .push((ssl_key, value));
    }
    if changes.is_empty() {
        return None;
    }
    if resource.name.is_empty() {
        return Some((
            ErrorCode::INVALID_REQUEST,
            "Cannot update these configs at default cluster level, broker id must be specified"
                .into(),
        ));
    }
    // Another broker validates its own files; its key stores are not readable from here.
    if resource.name != context.config.node_id.to_string() {
        return None;
    }
    let image = context.metadata.image();
    for (listener, changes) in changes {
        let Some(served) = context
            .config
            .listeners
            .served
            .iter()
            .find(|s| s.listener.name == listener && s.tls.is_some())
        else {
            return Some((
                ErrorCode::INVALID_CONFIG,
                format!(
                    "Invalid dynamic SSL config: {listener} is not an SSL or SASL_SSL listener of \
                     broker {}",
                    context.config.node_id
                ),
            ));
        };
        let mut laid = overlay(&image, context.config.node_id, &listener);
        for (key, value) in changes {
            match value {
                Some(value) => laid.insert(key.to_string(), value.to_string()),
                None => laid.remove(key),
            };
        }
        if let Err(error) = settings(served, &laid).and_then(|s| s.server_config().map(|_| ())) {
            return Some((
                ErrorCode::INVALID_CONFIG,
                format!(
                    "Validation of dynamic config update of SSLFactory failed for listener \
                     {listener}: {error}"
                ),
            ));
        }
    }
    None
}

/// Kafka's refusal of reconfigurable `ssl.*` keys given without the listener prefix
/// (`DynamicBrokerConfig.validateConfigs`: INVALID_REQUEST, "These security configs can be
/// dynamically updated only per-listener using the listener prefix"), naming the keys and
/// the form that is accepted.
fn unprefixed<'a>(keys: impl Iterator<Item = &'a str>) -> Option<(ErrorCode, String)> {
    let bare: Vec<&str> = keys.filter(|key| RECONFIGURABLE.contains(key)).collect();
    let first = bare.first()?;
    Some((
        ErrorCode::INVALID_REQUEST,
        format!(
            "These security configs can be dynamically updated only per-listener using the \
             listener prefix: {} (give them as listener.name.<listener>.<key>, e.g. \
             listener.name.<an SSL or SASL_SSL listener of this broker, lower case>.{first}; \
             without the prefix they are read only from server.properties)",
            bare.join(", ")
        ),
    ))
}

/// What a listener's accept loop applied last (`None`: nothing dynamic yet).
#[derive(Debug, Default)]
pub struct Applied(Option<BTreeMap<String, String>>);

impl Applied {
    /// Rebuilds `listener`'s TLS configuration if its dynamic values changed since the
    /// last call.
    pub fn refresh(&mut self, context: &BrokerContext, runtime: &crate::authn::ListenerRuntime) {
        let Some(tls) = &runtime.tls else {
            return;
        };
        let image = context.metadata.image();
        let now = overlay(&image, context.config.node_id, &runtime.name);
        let unchanged = match &self.0 {
            Some(applied) => *applied == now,
            None => now.is_empty(),
        };
        if unchanged {
            return;
        }
        let Some(served) = context
            .config
            .listeners
            .served
            .iter()
            .find(|s| s.listener.name == runtime.name)
        else {
            return;
        };
        match settings(served, &now).and_then(|s| tls.replace(s)) {
            Ok(()) => {
                tracing::info!(listener = %runtime.name, keys = ?now.keys().collect::<Vec<_>>(),
                    "dynamic SSL config applied to new connections");
            }
            Err(error) => {
                tracing::error!(listener = %runtime.name, %error,
                    "dynamic SSL config does not load; keeping the previous key and trust stores");
            }
        }
        // Tried once per change, not on every connection.
        self.0 = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_ssl_keys_split_at_the_ssl_part() {
        assert_eq!(
            split("listener.name.sasl_ssl.ssl.keystore.location"),
            Some(("sasl_ssl", "ssl.keystore.location"))
        );
        assert_eq!(split("ssl.keystore.location"), None);
        assert_eq!(split("listener.name.x.max.connection.creation.rate"), None);
    }

    #[test]
    fn ssl_keys_without_the_listener_prefix_are_refused_naming_the_accepted_form() {
        let (code, message) = unprefixed(
            [
                "log.cleaner.threads",
                "ssl.keystore.password",
                "ssl.key.password",
            ]
            .into_iter(),
        )
        .unwrap();
        assert_eq!(code, ErrorCode::INVALID_REQUEST);
        assert!(
            message.starts_with(
                "These security configs can be dynamically updated only per-listener using the \
                 listener prefix: ssl.keystore.password, ssl.key.password ("
            ) && message.contains("listener.name.<listener>.<key>"),
            "{message}"
        );
        assert_eq!(
            unprefixed(["listener.name.ssl.ssl.keystore.password", "num.io.threads"].into_iter()),
            None
        );
    }
}
