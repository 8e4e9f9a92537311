//! `strom schemas list|get|register|check|delete` against a schema registry's REST API
//! (Strom's or Confluent's), and the Avro values of `strom produce|consume
//! --value-format avro`: Confluent's wire format, schemas fetched by id and cached.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use serde_json::{json, Value};
use strom_registry::client::{encode_segment, RegistryClient};
use strom_registry::schema::avro::AvroSchema;
use strom_registry::schema::{ResolvedReference, SchemaType, REFERENCES_MAX};
use strom_registry::wire;

use super::args::{Common, SchemaFormat, SchemaInput, SchemasArgs, SchemasCommand};
use super::output;

/// How long one registry call may take.
const CALL_TIMEOUT_MS: u64 = 30_000;

pub fn client(url: &str) -> RegistryClient {
    RegistryClient::new(url, Duration::from_millis(CALL_TIMEOUT_MS))
}

pub async fn run(args: SchemasArgs) -> anyhow::Result<()> {
    let registry = client(&args.registry.registry_url);
    let common = &args.common;
    match args.command {
        SchemasCommand::List { prefix, deleted } => {
            let mut path = format!("/subjects?deleted={deleted}");
            if let Some(p) = prefix {
                path.push_str(&format!("&subjectPrefix={}", encode_segment(&p)));
            }
            let subjects = registry.call("GET", &path, None).await?;
            print(common, &subjects, || {
                subjects
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default()
            })
        }
        SchemasCommand::Get {
            subject,
            version,
            id,
        } => {
            let found = match (subject, id) {
                (_, Some(id)) => {
                    let mut v = registry
                        .call("GET", &format!("/schemas/ids/{id}"), None)
                        .await?;
                    v["id"] = json!(id);
                    v
                }
                (Some(subject), None) => {
                    let path = format!(
                        "/subjects/{}/versions/{}",
                        encode_segment(&subject),
                        encode_segment(&version)
                    );
                    registry.call("GET", &path, None).await?
                }
                (None, None) => return Err(anyhow!("give a SUBJECT or --id")),
            };
            print(common, &found, || describe(&found))
        }
        SchemasCommand::Register {
            subject,
            schema,
            normalize,
        } => {
            let body = request_body(&schema)?;
            let path = format!(
                "/subjects/{}/versions?normalize={normalize}",
                encode_segment(&subject)
            );
            let registered = registry.call("POST", &path, Some(&body)).await?;
            print(common, &registered, || {
                let id = registered["id"].as_i64().unwrap_or(-1);
                match registered.get("version").and_then(Value::as_i64) {
                    Some(v) => format!("Registered {subject} version {v} as schema id {id}."),
                    None => format!("Registered {subject} as schema id {id}."),
                }
            })
        }
        SchemasCommand::Check {
            subject,
            schema,
            version,
        } => {
            let body = request_body(&schema)?;
            let path = match &version {
                Some(v) => format!(
                    "/compatibility/subjects/{}/versions/{}?verbose=true",
                    encode_segment(&subject),
                    encode_segment(v)
                ),
                None => format!(
                    "/compatibility/subjects/{}/versions?verbose=true",
                    encode_segment(&subject)
                ),
            };
            let answer = registry.call("POST", &path, Some(&body)).await?;
            let compatible = answer["is_compatible"].as_bool() == Some(true);
            print(common, &answer, || {
                if compatible {
                    format!("Compatible with {subject}.")
                } else {
                    let reasons: Vec<&str> = answer["messages"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    format!("Incompatible with {subject}:\n  {}", reasons.join("\n  "))
                }
            })?;
            if compatible {
                Ok(())
            } else {
                Err(anyhow!("the schema is incompatible with {subject}"))
            }
        }
        SchemasCommand::Delete {
            subject,
            version,
            permanent,
        } => {
            let path = match &version {
                Some(v) => format!(
                    "/subjects/{}/versions/{}?permanent={permanent}",
                    encode_segment(&subject),
                    encode_segment(v)
                ),
                None => format!(
                    "/subjects/{}?permanent={permanent}",
                    encode_segment(&subject)
                ),
            };
            let deleted = registry.call("DELETE", &path, None).await?;
            let how = if permanent {
                "Permanently deleted"
            } else {
                "Deleted"
            };
            print(common, &deleted, || {
                format!("{how} {subject} version(s) {deleted}.")
            })
        }
    }
}

fn print(common: &Common, value: &Value, human: impl FnOnce() -> String) -> anyhow::Result<()> {
    if common.json() {
        output::print_json(value)
    } else {
        output::print_line(&human())
    }
}

/// A subject version or schema for people: a header line, then the schema.
fn describe(found: &Value) -> String {
    let mut head = Vec::new();
    for key in ["subject", "version", "id", "schemaType"] {
        if let Some(v) = found.get(key) {
            head.push(format!(
                "{key}: {}",
                v.as_str().map_or_else(|| v.to_string(), str::to_string)
            ));
        }
    }
    let schema = found["schema"].as_str().unwrap_or_default();
    let pretty = serde_json::from_str::<Value>(schema)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| schema.to_string());
    format!("{}\n{pretty}", head.join("  "))
}

fn type_name(format: SchemaFormat) -> &'static str {
    match format {
        SchemaFormat::Avro => "AVRO",
        SchemaFormat::Json => "JSON",
        SchemaFormat::Protobuf => "PROTOBUF",
    }
}

fn request_body(input: &SchemaInput) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(&input.file)
        .with_context(|| format!("cannot read {}", input.file.display()))?;
    let references: Vec<Value> = input
        .references
        .iter()
        .map(|(name, subject, version)| json!({"name": name, "subject": subject, "version": version}))
        .collect();
    Ok(json!({
        "schema": text,
        "schemaType": type_name(input.schema_type),
        "references": references,
    }))
}

/// Registers `schema_text` (Avro) under `subject` and returns its id and the parsed schema.
pub async fn register_avro(
    registry: &RegistryClient,
    subject: &str,
    schema_text: &str,
) -> anyhow::Result<(i32, AvroSchema)> {
    let schema =
        AvroSchema::parse(schema_text, &[]).map_err(|e| anyhow!("the schema is not Avro: {e}"))?;
    let body = json!({"schema": schema_text});
    let path = format!("/subjects/{}/versions", encode_segment(subject));
    let registered = registry.call("POST", &path, Some(&body)).await?;
    let id = registered["id"]
        .as_i64()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| anyhow!("the registry answered without an id: {registered}"))?;
    Ok((id, schema))
}

/// Decodes Confluent-framed Avro values to JSON, with writer schemas fetched by id.
pub struct AvroDecoder {
    registry: RegistryClient,
    schemas: HashMap<i32, AvroSchema>,
}

/// Most writer schemas cached (a topic rarely has more; beyond it, schemas are refetched).
const CACHED_SCHEMAS_MAX: usize = 1_000;

impl AvroDecoder {
    pub fn new(registry: RegistryClient) -> AvroDecoder {
        AvroDecoder {
            registry,
            schemas: HashMap::new(),
        }
    }

    /// The value as JSON text.
    pub async fn decode(&mut self, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
        let (id, payload) = wire::unframe(bytes).ok_or_else(|| {
            anyhow!("the value is not in Confluent's wire format (magic byte 0, schema id)")
        })?;
        if !self.schemas.contains_key(&id) {
            let schema = self.fetch(id).await?;
            if self.schemas.len() >= CACHED_SCHEMAS_MAX {
                self.schemas.clear();
            }
            self.schemas.insert(id, schema);
        }
        let schema = self
            .schemas
            .get(&id)
            .ok_or_else(|| anyhow!("schema {id} is not cached"))?;
        let json =
            wire::avro_decode(schema, payload).map_err(|e| anyhow!("schema id {id}: {e}"))?;
        Ok(json.to_string().into_bytes())
    }

    async fn fetch(&self, id: i32) -> anyhow::Result<AvroSchema> {
        let found = self
            .registry
            .call("GET", &format!("/schemas/ids/{id}"), None)
            .await?;
        let schema_type = found["schemaType"].as_str().unwrap_or("AVRO");
        if schema_type != "AVRO" {
            return Err(anyhow!("schema {id} is {schema_type}, not AVRO"));
        }
        let references = self.references(&found).await?;
        let text = found["schema"].as_str().unwrap_or_default();
        AvroSchema::parse(text, &references).map_err(|e| anyhow!("schema {id}: {e}"))
    }

    /// The schemas `found` references, dependencies first (bounded).
    async fn references(&self, found: &Value) -> anyhow::Result<Vec<ResolvedReference>> {
        let mut out: Vec<ResolvedReference> = Vec::new();
        let mut stack: Vec<(Value, bool)> = found["references"]
            .as_array()
            .map(|a| a.iter().rev().map(|r| (r.clone(), false)).collect())
            .unwrap_or_default();
        let mut fetched: HashMap<String, Value> = HashMap::new();
        while let Some((reference, expanded)) = stack.pop() {
            if out.len() > REFERENCES_MAX || fetched.len() > REFERENCES_MAX {
                return Err(anyhow!("more than {REFERENCES_MAX} referenced schemas"));
            }
            let name = reference["name"].as_str().unwrap_or_default().to_string();
            if out.iter().any(|r| r.name == name) {
                continue;
            }
            let version = match fetched.get(&name) {
                Some(v) => v.clone(),
                None => {
                    let subject = reference["subject"].as_str().unwrap_or_default();
                    let path = format!(
                        "/subjects/{}/versions/{}",
                        encode_segment(subject),
                        reference["version"]
                    );
                    let v = self.registry.call("GET", &path, None).await?;
                    fetched.insert(name.clone(), v.clone());
                    v
                }
            };
            let deps = version["references"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if expanded || deps.is_empty() {
                out.push(ResolvedReference {
                    name,
                    schema_type: SchemaType::Avro,
                    schema: version["schema"].as_str().unwrap_or_default().to_string(),
                });
            } else {
                stack.push((reference, true));
                stack.extend(deps.into_iter().rev().map(|d| (d, false)));
            }
        }
        Ok(out)
    }
}
