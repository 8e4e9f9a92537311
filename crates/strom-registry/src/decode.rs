//! Reading record keys and values written in Confluent's wire format (magic byte 0, a
//! 4-byte big-endian schema id, then the payload) for the console's message browser: the
//! schema is fetched by id through a [`RegistryAccess`] (with its references), parsed by
//! the same [`ParsedSchema`] code the registry validates with, and the payload shown as
//! JSON (Avro, JSON Schema) or Protobuf text format.
//!
//! The framing and the Avro decoding are `wire.rs`'s (the command line's), so there is one
//! of each. Bounded: payloads are decoded on the blocking pool with Avro allocations capped
//! at `wire::AVRO_ALLOCATION_BYTES_MAX`; parsed schemas are cached by id (ids never change their
//! schema) up to [`CACHED_SCHEMAS_MAX`], the cache emptied when full. A failure (unknown
//! id, payload that does not match its schema) is shown as such, never hidden.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::access::RegistryAccess;
use crate::client::encode_segment;
use crate::schema::{ParsedSchema, ResolvedReference, SchemaType, REFERENCES_MAX};

/// Parsed schemas kept by id.
pub const CACHED_SCHEMAS_MAX: usize = 256;

/// One decoded key or value.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub schema_id: i32,
    /// `AVRO`, `JSON` or `PROTOBUF`; `None` when the schema could not be fetched.
    pub schema_type: Option<SchemaType>,
    /// A subject and version the schema is registered under (the first the registry names).
    pub subject: Option<(String, i64)>,
    /// The Protobuf message type the payload names.
    pub message: Option<String>,
    /// The payload as pretty JSON (Avro, JSON Schema) or text format (Protobuf), or why not.
    pub shown: Result<String, String>,
}

struct Cached {
    schema_type: SchemaType,
    parsed: Option<ParsedSchema>,
    subject: Option<(String, i64)>,
}

/// Decodes framed payloads through one registry.
pub struct Decoder {
    access: RegistryAccess,
    cache: Mutex<HashMap<i32, Arc<Cached>>>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

/// The schema id of bytes in Confluent's wire format, and the payload after it.
pub fn framed(bytes: &[u8]) -> Option<(i32, &[u8])> {
    crate::wire::unframe(bytes)
}

impl Decoder {
    pub fn new(access: RegistryAccess) -> Decoder {
        Decoder {
            access,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn access(&self) -> &RegistryAccess {
        &self.access
    }

    /// `None` when `bytes` are not in the wire format; else what they decode to.
    pub async fn decode(&self, bytes: &[u8]) -> Option<Decoded> {
        let (id, payload) = framed(bytes)?;
        let cached = match self.schema(id).await {
            Ok(cached) => cached,
            Err(error) => {
                return Some(Decoded {
                    schema_id: id,
                    schema_type: None,
                    subject: None,
                    message: None,
                    shown: Err(error),
                })
            }
        };
        let payload = payload.to_vec();
        let working = Arc::clone(&cached);
        // Decoding recurses as deep as the schema nests: on the schema stack, off the runtime.
        let decoded = tokio::task::spawn_blocking(move || {
            crate::schema::with_schema_stack(|| show(&working, &payload))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .unwrap_or_else(|e| (None, Err(format!("the decoder failed: {e}"))));
        Some(Decoded {
            schema_id: id,
            schema_type: Some(cached.schema_type),
            subject: cached.subject.clone(),
            message: decoded.0,
            shown: decoded.1,
        })
    }

    async fn schema(&self, id: i32) -> Result<Arc<Cached>, String> {
        if let Some(hit) = self.lock().get(&id) {
            return Ok(Arc::clone(hit));
        }
        let found = self
            .access
            .call("GET", &format!("/schemas/ids/{id}"), None)
            .await
            .map_err(|e| format!("schema id {id}: {e}"))?;
        let schema_type = found
            .get("schemaType")
            .and_then(Value::as_str)
            .map_or(Some(SchemaType::Avro), SchemaType::parse)
            .ok_or_else(|| format!("schema id {id}: unknown schema type"))?;
        let text = found
            .get("schema")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let references = self.resolve(found.get("references")).await?;
        let parsed = tokio::task::spawn_blocking(move || {
            crate::schema::with_schema_stack(|| {
                ParsedSchema::parse(schema_type, &text, &references)
            })
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .and_then(|r| r)
        .map_err(|e| format!("schema id {id} does not parse: {e}"))?;
        let subject = match self
            .access
            .call("GET", &format!("/schemas/ids/{id}/versions"), None)
            .await
        {
            Ok(Value::Array(list)) => list.first().and_then(|v| {
                Some((
                    v.get("subject")?.as_str()?.to_string(),
                    v.get("version")?.as_i64()?,
                ))
            }),
            _ => None,
        };
        let cached = Arc::new(Cached {
            schema_type,
            parsed: Some(parsed),
            subject,
        });
        let mut cache = self.lock();
        if cache.len() >= CACHED_SCHEMAS_MAX {
            cache.clear();
        }
        cache.insert(id, Arc::clone(&cached));
        Ok(cached)
    }

    /// Every schema `references` pulls in, dependencies first, each once (as the
    /// registry's `service::resolve_references`, over the REST API).
    async fn resolve(&self, references: Option<&Value>) -> Result<Vec<ResolvedReference>, String> {
        let mut out: Vec<ResolvedReference> = Vec::new();
        let mut stack: Vec<(Value, bool)> = match references {
            Some(Value::Array(list)) => list.iter().rev().map(|r| (r.clone(), false)).collect(),
            _ => Vec::new(),
        };
        let mut steps = 0usize;
        while let Some((reference, expanded)) = stack.pop() {
            steps += 1;
            if steps > REFERENCES_MAX * 4 {
                return Err(format!("more than {REFERENCES_MAX} referenced schemas"));
            }
            let name = reference.get("name").and_then(Value::as_str).unwrap_or("");
            if out.iter().any(|r| r.name == name) {
                continue;
            }
            let subject = reference
                .get("subject")
                .and_then(Value::as_str)
                .unwrap_or("");
            let version = reference
                .get("version")
                .and_then(Value::as_i64)
                .unwrap_or(-1);
            let version = if version == -1 {
                "latest".to_string()
            } else {
                version.to_string()
            };
            let found = self
                .access
                .call(
                    "GET",
                    &format!("/subjects/{}/versions/{version}", encode_segment(subject)),
                    None,
                )
                .await
                .map_err(|e| format!("the reference {name} ({subject} version {version}): {e}"))?;
            let deps = match found.get("references") {
                Some(Value::Array(list)) if !list.is_empty() => list.clone(),
                _ => Vec::new(),
            };
            if expanded || deps.is_empty() {
                let schema_type = found
                    .get("schemaType")
                    .and_then(Value::as_str)
                    .map_or(Some(SchemaType::Avro), SchemaType::parse)
                    .unwrap_or(SchemaType::Avro);
                out.push(ResolvedReference {
                    name: name.to_string(),
                    schema_type,
                    schema: found
                        .get("schema")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                });
            } else {
                stack.push((reference, true));
                for dep in deps.into_iter().rev() {
                    stack.push((dep, false));
                }
            }
        }
        Ok(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Arc<Cached>>> {
        match self.cache.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The payload shown by its schema: (Protobuf message name, text or why not).
fn show(cached: &Cached, payload: &[u8]) -> (Option<String>, Result<String, String>) {
    match &cached.parsed {
        Some(ParsedSchema::Avro(schema)) => {
            let shown = crate::wire::avro_decode(schema, payload)
                .map_err(|e| format!("the Avro payload does not match its schema: {e}"))
                .and_then(|json| serde_json::to_string_pretty(&json).map_err(|e| e.to_string()));
            (None, shown)
        }
        Some(ParsedSchema::Json(_)) => {
            let shown = serde_json::from_slice::<Value>(payload)
                .map_err(|e| format!("the payload is not JSON: {e}"))
                .and_then(|v| serde_json::to_string_pretty(&v).map_err(|e| e.to_string()));
            (None, shown)
        }
        Some(ParsedSchema::Protobuf(schema)) => protobuf(schema, payload),
        None => (None, Err("the schema could not be parsed".to_string())),
    }
}

/// A zigzag varint at the start of `bytes`, and the rest.
fn varint(bytes: &[u8]) -> Option<(i64, &[u8])> {
    let mut value: u64 = 0;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let magnitude = i64::try_from(value >> 1).unwrap_or(i64::MAX);
            let decoded = if value & 1 == 0 {
                magnitude
            } else {
                !magnitude
            };
            return Some((decoded, &bytes[i + 1..]));
        }
    }
    None
}

/// Confluent's Protobuf framing: the message-index path (a count, then the indexes; a
/// lone 0 means `[0]`), then the message.
fn protobuf(
    schema: &crate::schema::protobuf::ProtoSchema,
    payload: &[u8],
) -> (Option<String>, Result<String, String>) {
    let bad = |why: &str| (None, Err(format!("the Protobuf payload {why}")));
    let Some((count, mut rest)) = varint(payload) else {
        return bad("has no message index");
    };
    let mut indexes = Vec::new();
    if count == 0 {
        indexes.push(0usize);
    } else {
        if !(1..=64).contains(&count) {
            return bad("has an implausible message-index count");
        }
        for _ in 0..count {
            let Some((index, after)) = varint(rest) else {
                return bad("has a truncated message index");
            };
            let Ok(index) = usize::try_from(index) else {
                return bad("has a negative message index");
            };
            indexes.push(index);
            rest = after;
        }
    }
    let Some(name) = schema.message_name(&indexes) else {
        return bad("names a message its schema does not have");
    };
    let Some(descriptor) = schema.pool().get_message_by_name(&name) else {
        return bad("names a message its schema does not have");
    };
    let shown = prost_reflect::DynamicMessage::decode(descriptor, rest)
        .map(|m| {
            m.to_text_format_with_options(
                &prost_reflect::text_format::FormatOptions::new().pretty(true),
            )
        })
        .map_err(|e| format!("the Protobuf payload does not match {name}: {e}"));
    (Some(name), shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_and_varints() {
        assert_eq!(framed(&[0, 0, 0, 1, 2, 9]), Some((258, &[9u8][..])));
        assert_eq!(framed(&[1, 0, 0, 0, 1]), None);
        assert_eq!(framed(&[0, 0, 0]), None);
        assert_eq!(varint(&[0]), Some((0, &[][..])));
        assert_eq!(varint(&[2, 7]), Some((1, &[7u8][..])));
        assert_eq!(varint(&[3]), Some((-2, &[][..])));
        assert_eq!(varint(&[0x80]), None);
    }

    #[test]
    fn avro_payload_shown_as_json() {
        let parsed = ParsedSchema::parse(
            SchemaType::Avro,
            r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"}]}"#,
            &[],
        )
        .unwrap();
        let cached = Cached {
            schema_type: SchemaType::Avro,
            parsed: Some(parsed),
            subject: None,
        };
        // id 21 (zigzag 42), "tea"
        let (_, shown) = show(&cached, &[42, 6, b't', b'e', b'a']);
        let json: Value = serde_json::from_str(&shown.unwrap()).unwrap();
        assert_eq!(json, serde_json::json!({"id": 21, "item": "tea"}));
        assert!(show(&cached, &[0xff; 11]).1.is_err());
    }
}
