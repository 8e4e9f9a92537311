//! The records of the `_schemas` topic in Confluent's formats, so that Confluent's registry
//! and Strom's can read each other's topic: a JSON key `{"keytype": ..., "subject": ...,
//! "version": ..., "magic": ...}` and a JSON value (or a tombstone).
//!
//! Key types: SCHEMA (one subject version; a tombstone is a hard delete), CONFIG and MODE
//! (per subject, or global with a null subject; a tombstone removes the setting),
//! DELETE_SUBJECT (soft-deletes versions 1..=version), CLEAR_SUBJECT (drops the soft-deleted
//! versions), NOOP (a marker to read up to). Other key types (contexts, associations) are
//! read and ignored.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::schema::SchemaType;

/// A schema reference: `name` as the referring schema imports it, resolved to a subject
/// version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// The key of a `_schemas` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Schema {
        subject: String,
        version: i32,
    },
    Config {
        subject: Option<String>,
    },
    Mode {
        subject: Option<String>,
    },
    DeleteSubject {
        subject: String,
    },
    ClearSubject {
        subject: String,
    },
    Noop,
    /// A key type this registry does not use (its records are skipped).
    Other(String),
}

#[derive(Deserialize)]
struct RawKey {
    keytype: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    version: Option<i32>,
}

impl Key {
    /// Confluent's JSON for this key (field order as its `@JsonPropertyOrder`).
    pub fn encode(&self) -> Vec<u8> {
        let quote = |s: &str| Value::from(s).to_string();
        let text = match self {
            Key::Schema { subject, version } => format!(
                r#"{{"keytype":"SCHEMA","subject":{},"version":{version},"magic":1}}"#,
                quote(subject)
            ),
            Key::Config { subject } | Key::Mode { subject } => {
                let keytype = if matches!(self, Key::Config { .. }) {
                    "CONFIG"
                } else {
                    "MODE"
                };
                let subject = subject.as_deref().map_or("null".to_string(), quote);
                format!(r#"{{"keytype":"{keytype}","subject":{subject},"magic":0}}"#)
            }
            Key::DeleteSubject { subject } => format!(
                r#"{{"keytype":"DELETE_SUBJECT","subject":{},"magic":0}}"#,
                quote(subject)
            ),
            Key::ClearSubject { subject } => format!(
                r#"{{"keytype":"CLEAR_SUBJECT","subject":{},"magic":0}}"#,
                quote(subject)
            ),
            Key::Noop => r#"{"keytype":"NOOP","magic":0}"#.to_string(),
            Key::Other(keytype) => format!(r#"{{"keytype":{},"magic":0}}"#, quote(keytype)),
        };
        text.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Key, String> {
        let raw: RawKey =
            serde_json::from_slice(bytes).map_err(|e| format!("key is not a registry key: {e}"))?;
        let subject = || {
            raw.subject
                .clone()
                .ok_or_else(|| format!("{} key without a subject", raw.keytype))
        };
        Ok(match raw.keytype.as_str() {
            "SCHEMA" => Key::Schema {
                subject: subject()?,
                version: raw.version.ok_or("SCHEMA key without a version")?,
            },
            "CONFIG" => Key::Config {
                subject: raw.subject.clone(),
            },
            "MODE" => Key::Mode {
                subject: raw.subject.clone(),
            },
            "DELETE_SUBJECT" => Key::DeleteSubject {
                subject: subject()?,
            },
            "CLEAR_SUBJECT" => Key::ClearSubject {
                subject: subject()?,
            },
            "NOOP" => Key::Noop,
            other => Key::Other(other.to_string()),
        })
    }
}

/// The value of a SCHEMA record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaValue {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "SchemaType::is_avro"
    )]
    pub schema_type: SchemaType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(rename = "ruleSet", default, skip_serializing_if = "Option::is_none")]
    pub rule_set: Option<Value>,
    pub schema: String,
    #[serde(default)]
    pub deleted: bool,
}

/// The value of a CONFIG record: `compatibilityLevel`, `normalize` and whatever else a
/// client set (metadata, rule sets), kept and given back as it came.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigValue(pub Map<String, Value>);

impl ConfigValue {
    pub fn compatibility(&self) -> Option<&str> {
        self.0.get("compatibilityLevel").and_then(Value::as_str)
    }

    pub fn normalize(&self) -> bool {
        self.0.get("normalize").and_then(Value::as_bool) == Some(true)
    }
}

/// The value of a DELETE_SUBJECT record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteSubjectValue {
    pub subject: String,
    pub version: i32,
}

/// A decoded record value.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Schema(SchemaValue),
    Config(ConfigValue),
    Mode(String),
    DeleteSubject(DeleteSubjectValue),
    ClearSubject,
    Noop,
    Ignored,
}

impl Record {
    /// Decodes a value for `key`.
    pub fn decode(key: &Key, bytes: &[u8]) -> Result<Record, String> {
        let bad = |e: serde_json::Error| format!("value of {key:?}: {e}");
        Ok(match key {
            Key::Schema { .. } => Record::Schema(serde_json::from_slice(bytes).map_err(bad)?),
            Key::Config { .. } => {
                let map: Map<String, Value> = serde_json::from_slice(bytes).map_err(bad)?;
                Record::Config(ConfigValue(map))
            }
            Key::Mode { .. } => {
                let map: Map<String, Value> = serde_json::from_slice(bytes).map_err(bad)?;
                let mode = map
                    .get("mode")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("value of {key:?} has no mode"))?;
                Record::Mode(mode.to_string())
            }
            Key::DeleteSubject { .. } => {
                Record::DeleteSubject(serde_json::from_slice(bytes).map_err(bad)?)
            }
            Key::ClearSubject { .. } => Record::ClearSubject,
            Key::Noop => Record::Noop,
            Key::Other(_) => Record::Ignored,
        })
    }

    /// Confluent's JSON for this value (`subject` is the key's, repeated as Confluent does).
    pub fn encode(&self, subject: Option<&str>) -> Vec<u8> {
        let value = match self {
            // A struct serializes in field order (a `Value` map would sort the keys).
            Record::Schema(value) => {
                return serde_json::to_vec(value).unwrap_or_default();
            }
            Record::Config(config) => {
                let mut map = config.0.clone();
                if let Some(subject) = subject {
                    map.insert("subject".into(), Value::from(subject));
                }
                Value::Object(map)
            }
            Record::Mode(mode) => {
                let mut map = Map::new();
                if let Some(subject) = subject {
                    map.insert("subject".into(), Value::from(subject));
                }
                map.insert("mode".into(), Value::from(mode.as_str()));
                Value::Object(map)
            }
            Record::DeleteSubject(value) => {
                return serde_json::to_vec(value).unwrap_or_default();
            }
            Record::ClearSubject => serde_json::json!({ "subject": subject }),
            Record::Noop | Record::Ignored => Value::Object(Map::new()),
        };
        value.to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_confluents_json() {
        let key = Key::Schema {
            subject: "orders-value".into(),
            version: 3,
        };
        assert_eq!(
            String::from_utf8(key.encode()).unwrap(),
            r#"{"keytype":"SCHEMA","subject":"orders-value","version":3,"magic":1}"#
        );
        assert_eq!(Key::decode(&key.encode()).unwrap(), key);
        let global = Key::Config { subject: None };
        assert_eq!(
            String::from_utf8(global.encode()).unwrap(),
            r#"{"keytype":"CONFIG","subject":null,"magic":0}"#
        );
        assert_eq!(Key::decode(&global.encode()).unwrap(), global);
        assert_eq!(
            Key::decode(br#"{"keytype":"NOOP","magic":0}"#).unwrap(),
            Key::Noop
        );
        assert!(Key::decode(b"not json").is_err());
        assert!(Key::decode(br#"{"keytype":"SCHEMA","magic":1}"#).is_err());
    }

    #[test]
    fn schema_values_round_trip_and_read_confluents() {
        // As Confluent's registry writes it (schemaType absent for Avro).
        let text = r#"{"subject":"s","version":1,"id":7,"schema":"\"string\"","deleted":false}"#;
        let key = Key::Schema {
            subject: "s".into(),
            version: 1,
        };
        let Record::Schema(value) = Record::decode(&key, text.as_bytes()).unwrap() else {
            panic!("not a schema")
        };
        assert_eq!(value.id, 7);
        assert_eq!(value.schema_type, SchemaType::Avro);
        assert_eq!(
            String::from_utf8(Record::Schema(value).encode(Some("s"))).unwrap(),
            text
        );
        let proto = r#"{"subject":"p","version":2,"id":9,"schemaType":"PROTOBUF","references":[{"name":"a.proto","subject":"a","version":1}],"schema":"syntax = \"proto3\";","deleted":true}"#;
        let Record::Schema(value) = Record::decode(&key, proto.as_bytes()).unwrap() else {
            panic!("not a schema")
        };
        assert_eq!(value.schema_type, SchemaType::Protobuf);
        assert_eq!(value.references.len(), 1);
        assert!(value.deleted);
    }

    #[test]
    fn config_and_mode_values() {
        let key = Key::Config {
            subject: Some("s".into()),
        };
        let Record::Config(config) =
            Record::decode(&key, br#"{"compatibilityLevel":"FULL","subject":"s"}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(config.compatibility(), Some("FULL"));
        let mode = Key::Mode { subject: None };
        assert_eq!(
            Record::decode(&mode, br#"{"mode":"READONLY"}"#).unwrap(),
            Record::Mode("READONLY".into())
        );
        assert!(Record::decode(&mode, br#"{"x":1}"#).is_err());
    }
}
