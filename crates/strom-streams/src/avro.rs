//! Avro serdes through a schema registry (feature `avro`), in Confluent's wire format: a
//! magic byte 0, the writer schema's id (4 bytes, big-endian), then the Avro binary
//! encoding. What Confluent's `KafkaAvroSerializer` / `AvroSerializer` write and read, so a
//! topology reads what their producers wrote and writes what their consumers read.
//!
//! Values are Rust types through serde: a value becomes JSON, then Avro under the writer
//! schema (`serialize`); a record's Avro is read with the schema its id names, rendered as
//! JSON, then becomes the Rust type (`deserialize`). Fields are matched by name, so a
//! reader type may ignore fields or default missing ones (`#[serde(default)]`), as Avro's
//! schema resolution would.
//!
//! Registry calls (the REST API of Strom's registry or Confluent's, `schema.registry.url`):
//! the writer schema is registered once when the serde is made (`POST
//! /subjects/{subject}/versions`, Confluent's `auto.register.schemas`), under the topic
//! name strategy's subject (`<topic>-key` / `<topic>-value`) unless one is given. Schemas
//! of records read are fetched by id (`GET /schemas/ids/{id}`) on first sight and cached
//! for the life of the serde (ids are immutable); such a fetch blocks the stream thread
//! for one registry round trip, as Kafka's deserializer does. Schemas with references are
//! refused with an error naming the id (not resolved here).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use strom_registry::client::{encode_segment, CallError, RegistryClient};
use strom_registry::schema::avro::AvroSchema;
use strom_registry::wire;

use crate::error::{Result, StreamsError};
use crate::serdes::{Serde, SerdeError, SerdeRef};

/// How long one registry call may take (Confluent's client has no shorter default).
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(30);
/// Schemas cached per serde; past this the cache is emptied (bounded memory whatever the
/// records carry).
const CACHED_SCHEMAS_MAX: usize = 1000;

/// An Avro serde of `T` over a schema registry (see the module doc).
pub struct AvroSerde<T> {
    inner: Arc<Inner>,
    _type: PhantomData<fn() -> T>,
}

struct Inner {
    registry: RegistryClient,
    /// The writer schema and its id; `None`: this serde only reads.
    writer: Option<(i32, Arc<AvroSchema>)>,
    /// Schemas by id, as read.
    schemas: Mutex<HashMap<i32, Arc<AvroSchema>>>,
}

/// The subject of a topic's keys or values under Confluent's default
/// `TopicNameStrategy`.
pub fn topic_subject(topic: &str, is_key: bool) -> String {
    format!("{topic}-{}", if is_key { "key" } else { "value" })
}

fn registry_error(url: &str, e: CallError) -> StreamsError {
    StreamsError::config("schema.registry.url", format!("{url}: {e}"))
}

impl<T> AvroSerde<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    /// A serde writing with `schema` (Avro schema JSON), registered under `subject` at the
    /// registry at `url` (`schema.registry.url`, `http://host:port`).
    pub async fn with_subject(url: &str, subject: &str, schema: &str) -> Result<SerdeRef<T>> {
        let parsed = AvroSchema::parse(schema, &[]).map_err(|e| {
            StreamsError::config("schema", format!("not an Avro schema for {subject}: {e}"))
        })?;
        let registry = RegistryClient::new(url, REGISTRY_TIMEOUT);
        let body = serde_json::json!({ "schema": schema });
        let path = format!("/subjects/{}/versions", encode_segment(subject));
        let answer = registry
            .call("POST", &path, Some(&body))
            .await
            .map_err(|e| registry_error(url, e))?;
        let id = answer
            .get("id")
            .and_then(serde_json::Value::as_i64)
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| {
                StreamsError::config(
                    "schema.registry.url",
                    format!("{url}: registering {subject} gave no schema id: {answer}"),
                )
            })?;
        Ok(Arc::new(AvroSerde::<T> {
            inner: Arc::new(Inner {
                registry,
                writer: Some((id, Arc::new(parsed))),
                schemas: Mutex::new(HashMap::new()),
            }),
            _type: PhantomData,
        }))
    }

    /// A serde for the keys (`is_key`) or values of `topic`: the subject is
    /// `<topic>-key` / `<topic>-value` (Confluent's `TopicNameStrategy`).
    pub async fn for_topic(
        url: &str,
        topic: &str,
        is_key: bool,
        schema: &str,
    ) -> Result<SerdeRef<T>> {
        AvroSerde::with_subject(url, &topic_subject(topic, is_key), schema).await
    }

    /// A serde that only reads (any schema id the registry knows); serializing with it
    /// fails.
    pub fn reader(url: &str) -> SerdeRef<T> {
        Arc::new(AvroSerde::<T> {
            inner: Arc::new(Inner {
                registry: RegistryClient::new(url, REGISTRY_TIMEOUT),
                writer: None,
                schemas: Mutex::new(HashMap::new()),
            }),
            _type: PhantomData,
        })
    }
}

impl Inner {
    /// The schema of `id`, from the cache or the registry.
    fn schema(&self, id: i32) -> Result<Arc<AvroSchema>, SerdeError> {
        if let Some((writer_id, schema)) = &self.writer {
            if *writer_id == id {
                return Ok(schema.clone());
            }
        }
        self.cached_or_insert(id, || self.fetch(id))
    }

    fn cached_or_insert(
        &self,
        id: i32,
        make: impl FnOnce() -> Result<AvroSchema, SerdeError>,
    ) -> Result<Arc<AvroSchema>, SerdeError> {
        if let Some(s) = self.lock()?.get(&id) {
            return Ok(s.clone());
        }
        let schema = Arc::new(make()?);
        let mut cache = self.lock()?;
        if cache.len() >= CACHED_SCHEMAS_MAX {
            cache.clear();
        }
        cache.insert(id, schema.clone());
        Ok(schema)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<i32, Arc<AvroSchema>>>, SerdeError> {
        self.schemas
            .lock()
            .map_err(|_| SerdeError("the Avro schema cache was poisoned by a panic".into()))
    }

    /// `GET /schemas/ids/{id}`, on a thread of its own (the serde is called from async
    /// code that must not be blocked inside its runtime; a fresh thread with its own
    /// small runtime is).
    fn fetch(&self, id: i32) -> Result<AvroSchema, SerdeError> {
        let registry = self.registry.clone();
        let url = registry.base().to_string();
        let answer = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime for a registry call: {e}"))?;
            runtime
                .block_on(registry.call("GET", &format!("/schemas/ids/{id}"), None))
                .map_err(|e| e.to_string())
        })
        .join()
        .map_err(|_| {
            SerdeError(format!(
                "{url}: the registry lookup of schema {id} panicked"
            ))
        })?
        .map_err(|e| SerdeError(format!("{url}: schema id {id}: {e}")))?;
        let schema_type = answer
            .get("schemaType")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("AVRO");
        if schema_type != "AVRO" {
            return Err(SerdeError(format!(
                "{url}: schema id {id} is {schema_type}, not Avro"
            )));
        }
        if answer
            .get("references")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|r| !r.is_empty())
        {
            return Err(SerdeError(format!(
                "{url}: schema id {id} has references, which this Avro serde does not resolve"
            )));
        }
        let text = answer
            .get("schema")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| SerdeError(format!("{url}: schema id {id}: no schema in {answer}")))?;
        AvroSchema::parse(text, &[])
            .map_err(|e| SerdeError(format!("{url}: schema id {id} does not parse: {e}")))
    }
}

impl<T> Serde<T> for AvroSerde<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn serialize(&self, value: &T) -> Result<Option<Bytes>, SerdeError> {
        let (id, schema) = self.inner.writer.as_ref().ok_or_else(|| {
            SerdeError("this Avro serde only reads (it was made without a writer schema)".into())
        })?;
        let json = serde_json::to_value(value)
            .map_err(|e| SerdeError(format!("Avro (schema id {id}): {e}")))?;
        let payload = wire::avro_encode(schema, &json)
            .map_err(|e| SerdeError(format!("Avro (schema id {id}): {e}")))?;
        Ok(Some(Bytes::from(wire::frame(*id, &payload))))
    }

    fn deserialize(&self, data: Option<&[u8]>) -> Result<T, SerdeError> {
        let data =
            data.ok_or_else(|| SerdeError("null where an Avro value was expected".into()))?;
        let (id, payload) = wire::unframe(data).ok_or_else(|| {
            SerdeError(format!(
                "{} bytes not in Confluent's wire format (magic byte 0 and a schema id)",
                data.len()
            ))
        })?;
        let schema = self.inner.schema(id)?;
        let json = wire::avro_decode(&schema, payload)
            .map_err(|e| SerdeError(format!("Avro (schema id {id}): {e}")))?;
        serde_json::from_value(json).map_err(|e| SerdeError(format!("Avro (schema id {id}): {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_without_registry(schema: &str) -> AvroSerde<serde_json::Value> {
        AvroSerde {
            inner: Arc::new(Inner {
                // Nothing listens there: a lookup must fail, not hang.
                registry: RegistryClient::new("http://127.0.0.1:1", Duration::from_secs(5)),
                writer: Some((7, Arc::new(AvroSchema::parse(schema, &[]).unwrap()))),
                schemas: Mutex::new(HashMap::new()),
            }),
            _type: PhantomData,
        }
    }

    #[test]
    fn writes_confluent_wire_format_and_reads_it_back() {
        let serde = serde_without_registry(
            r#"{"type":"record","name":"Order","fields":[{"name":"item","type":"string"},{"name":"quantity","type":"int"},{"name":"note","type":["null","string"],"default":null}]}"#,
        );
        let value = serde_json::json!({"item": "tea", "quantity": 3, "note": null});
        let bytes = serde.serialize(&value).unwrap().unwrap();
        // Magic byte, schema id 7, then Avro: "tea" (zig-zag length 3 = 6), 3 (= 6), union
        // branch 0 (null).
        assert_eq!(&bytes[..], &[0, 0, 0, 0, 7, 6, b't', b'e', b'a', 6, 0]);
        assert_eq!(serde.deserialize(Some(&bytes)).unwrap(), value);
        // Not the wire format, null, an unknown id (the registry is unreachable), a value
        // that does not fit the schema: errors, never a panic.
        assert!(serde.deserialize(Some(&[1, 0, 0, 0, 7, 0])).is_err());
        assert!(serde.deserialize(None).is_err());
        let unknown = serde.deserialize(Some(&[0, 0, 0, 0, 8, 0])).unwrap_err();
        assert!(unknown.0.contains("schema id 8"), "{unknown}");
        assert!(serde
            .serialize(&serde_json::json!({"item": 1, "quantity": 3}))
            .is_err());
        assert!(serde.deserialize(Some(&[0, 0, 0, 0, 7, 0xff])).is_err());
        assert_eq!(topic_subject("orders", true), "orders-key");
        assert_eq!(topic_subject("orders", false), "orders-value");
    }

    #[test]
    fn a_reader_refuses_to_write() {
        let serde = AvroSerde::<String>::reader("http://127.0.0.1:1");
        assert!(serde.serialize(&"x".to_string()).is_err());
    }
}
