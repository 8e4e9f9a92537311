//! Client quotas as Kafka stores them (`ClientQuotaRecord`, type 14): a value per quota key
//! per entity, an entity being a user, a client id, both, or an IP, each named or the
//! default (`None`). Pure validation and lookups; enforcement is the broker's.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// An entity: its components by type (`user`, `client-id`, `ip`), each with a name or
/// `None` for the default entity of that type.
pub type QuotaEntity = BTreeMap<String, Option<String>>;

/// One AlterClientQuotas entry: an entity and its keys, each set (`Some`) or removed.
pub type QuotaAlteration = (QuotaEntity, Vec<(String, Option<QuotaValue>)>);

/// A quota value (Kafka's `double`), kept as its bits so records compare exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaValue(u64);

impl QuotaValue {
    pub fn new(value: f64) -> QuotaValue {
        QuotaValue(value.to_bits())
    }

    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }

    pub fn bits(self) -> u64 {
        self.0
    }

    pub fn from_bits(bits: u64) -> QuotaValue {
        QuotaValue(bits)
    }
}

/// Kafka's quota keys: which entity kinds take them and whether they are whole numbers.
fn key_def(key: &str) -> Option<(bool, bool)> {
    // (for user / client-id entities, integral)
    match key {
        PRODUCER_BYTE_RATE | CONSUMER_BYTE_RATE => Some((true, true)),
        REQUEST_PERCENTAGE | CONTROLLER_MUTATION_RATE => Some((true, false)),
        CONNECTION_CREATION_RATE => Some((false, true)),
        _ => None,
    }
}

/// Kafka's `ClientQuotaControlManager.validateEntity`.
pub fn validate_entity(entity: &QuotaEntity) -> Result<(), String> {
    if entity.is_empty() {
        return Err("Invalid empty client quota entity".into());
    }
    for (kind, name) in entity {
        match kind.as_str() {
            USER | CLIENT_ID => {}
            IP => {
                if let Some(name) = name {
                    if name.parse::<std::net::IpAddr>().is_err() {
                        return Err(format!("{name} is not a valid IP or resolvable host."));
                    }
                }
            }
            other => return Err(format!("Unhandled client quota entity type: {other}")),
        }
    }
    if entity.contains_key(IP) && entity.len() > 1 {
        return Err(
            "Invalid quota entity combination, IP entity should not be combined with User or ClientId"
                .into(),
        );
    }
    Ok(())
}

/// Kafka's `validateQuotaKeyValue`: the key must be one the entity takes; whole-number keys
/// take whole numbers. Values must be finite and positive.
pub fn validate_value(entity: &QuotaEntity, key: &str, value: f64) -> Result<(), String> {
    let ip = entity.contains_key(IP);
    let Some((user_or_client, integral)) = key_def(key) else {
        return Err(format!("Invalid configuration key {key}"));
    };
    if user_or_client == ip {
        return Err(format!("Invalid configuration key {key}"));
    }
    if !value.is_finite() || value <= 0.0 {
        return Err(format!(
            "Invalid value {value} for {key}: must be a positive number"
        ));
    }
    if integral && value.fract() != 0.0 {
        return Err(format!("Configuration {key} must be a Long value"));
    }
    Ok(())
}

/// The entities a client of `user` with `client_id` falls under for a user/client-id quota,
/// in Kafka's precedence order (`ClientQuotaManager`, KIP-55): the first one with a value
/// for the key sets the quota. Each comes with the (user, client-id) the quota is shared
/// by: the real names for the component types the entity has, "" for the others.
pub fn precedence(user: &str, client_id: &str) -> Vec<(QuotaEntity, (String, String))> {
    let entity = |u: Option<Option<&str>>, c: Option<Option<&str>>| {
        let mut e = QuotaEntity::new();
        if let Some(u) = u {
            e.insert(USER.to_string(), u.map(str::to_string));
        }
        if let Some(c) = c {
            e.insert(CLIENT_ID.to_string(), c.map(str::to_string));
        }
        e
    };
    let both = (user.to_string(), client_id.to_string());
    let user_only = (user.to_string(), String::new());
    let client_only = (String::new(), client_id.to_string());
    vec![
        (
            entity(Some(Some(user)), Some(Some(client_id))),
            both.clone(),
        ),
        (entity(Some(Some(user)), Some(None)), both.clone()),
        (entity(Some(Some(user)), None), user_only.clone()),
        (entity(Some(None), Some(Some(client_id))), both.clone()),
        (entity(Some(None), Some(None)), both),
        (entity(Some(None), None), user_only),
        (entity(None, Some(Some(client_id))), client_only.clone()),
        (entity(None, Some(None)), client_only),
    ]
}

/// How DescribeClientQuotas matches one component (Kafka's `ClientQuotaFilterComponent`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComponentMatch {
    /// This exact name.
    Exact(String),
    /// The default entity of the type.
    Default,
    /// Any named (non-default) entity of the type.
    Specified,
}

/// Kafka's DescribeClientQuotas filter: every component must match; with `strict`, the
/// entity must have no other component types.
pub fn filter_matches(
    components: &[(String, ComponentMatch)],
    strict: bool,
    entity: &QuotaEntity,
) -> bool {
    let all = components
        .iter()
        .all(|(kind, m)| match (entity.get(kind), m) {
            (Some(Some(name)), ComponentMatch::Exact(want)) => name == want,
            (Some(None), ComponentMatch::Default) => true,
            (Some(Some(_)), ComponentMatch::Specified) => true,
            _ => false,
        });
    all && (!strict || entity.len() == components.len())
}
