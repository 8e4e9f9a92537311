//! The registry's operations, planned against the [`Store`]: each read returns its answer,
//! each write returns the `_schemas` records to append and the answer to give once they
//! are applied. Pure: the caller (the leader's HTTP handler) appends the records and waits
//! until its reader has applied them before answering, so a write is never acknowledged
//! before it is in the topic.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::compat::{self, CompatibilityLevel};
use crate::error::{code, RestError};
use crate::records::{ConfigValue, DeleteSubjectValue, Key, Record, Reference, SchemaValue};
use crate::schema::{ParsedSchema, ResolvedReference, SchemaType, REFERENCES_MAX};
use crate::store::Store;

/// The settings operations depend on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `schema.compatibility.level`: used when neither the subject nor the global config
    /// sets one.
    pub default_compatibility: CompatibilityLevel,
    /// `mode.mutability`: whether `/mode` may be changed.
    pub mode_mutability: bool,
    /// Longest schema text accepted, in bytes.
    pub schema_bytes_max: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            default_compatibility: CompatibilityLevel::Backward,
            mode_mutability: true,
            schema_bytes_max: 1024 * 1024,
        }
    }
}

/// One record to append to `_schemas` (`None`: a tombstone).
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub key: Key,
    pub value: Option<Record>,
}

impl Write {
    /// The record's key and value bytes.
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let subject = match &self.key {
            Key::Schema { subject, .. }
            | Key::DeleteSubject { subject }
            | Key::ClearSubject { subject } => Some(subject.as_str()),
            Key::Config { subject } | Key::Mode { subject } => subject.as_deref(),
            _ => None,
        };
        (
            self.key.encode(),
            self.value.as_ref().map(|v| v.encode(subject)),
        )
    }
}

/// Records to append, then the response.
#[derive(Debug, Clone)]
pub struct Planned<T> {
    pub writes: Vec<Write>,
    pub response: T,
}

impl<T> Planned<T> {
    fn done(response: T) -> Planned<T> {
        Planned {
            writes: Vec::new(),
            response,
        }
    }
}

/// The body of a register, lookup or compatibility request.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRequest {
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub schema_type: Option<String>,
    #[serde(default)]
    pub references: Vec<Reference>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub rule_set: Option<Value>,
    #[serde(default)]
    pub id: Option<i32>,
    #[serde(default)]
    pub version: Option<i32>,
}

/// The schema a register created or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub id: i32,
    pub version: i32,
    /// Whether it was registered just now (a write) or was there already.
    pub new: bool,
}

const MODES: [&str; 4] = ["READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT"];

pub fn check_subject(subject: &str) -> Result<(), RestError> {
    if subject.is_empty() || subject.chars().any(char::is_control) || subject.len() > 4096 {
        return Err(RestError::new(
            code::INVALID_SUBJECT,
            format!(
                "The specified subject '{}' is not valid.",
                subject.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// `latest`/`-1` (the newest live version) or a version number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionId {
    Latest,
    Number(i32),
}

impl VersionId {
    pub fn parse(text: &str) -> Result<VersionId, RestError> {
        if text.eq_ignore_ascii_case("latest") || text == "-1" {
            return Ok(VersionId::Latest);
        }
        match text.parse::<i32>() {
            Ok(n) if n >= 1 => Ok(VersionId::Number(n)),
            _ => Err(RestError::invalid_version(text)),
        }
    }
}

/// A subject's version, as `GET /subjects/{s}/versions/{v}` finds it.
pub fn version<'a>(
    store: &'a Store,
    subject: &str,
    version: VersionId,
    deleted: bool,
) -> Result<&'a SchemaValue, RestError> {
    if !store.has_subject(subject, deleted) {
        return Err(RestError::subject_not_found(subject));
    }
    let found = match version {
        VersionId::Latest => store.latest(subject, deleted),
        VersionId::Number(n) => store.get(subject, n).filter(|v| deleted || !v.deleted),
    };
    found.ok_or_else(|| match version {
        VersionId::Latest => RestError::version_not_found("latest"),
        VersionId::Number(n) => RestError::version_not_found(n),
    })
}

/// The JSON of one subject version (Confluent's `Schema` entity).
pub fn version_json(value: &SchemaValue, schema: String) -> Value {
    let mut map = Map::new();
    map.insert("subject".into(), json!(value.subject));
    map.insert("version".into(), json!(value.version));
    map.insert("id".into(), json!(value.id));
    if value.schema_type != SchemaType::Avro {
        map.insert("schemaType".into(), json!(value.schema_type.name()));
    }
    if !value.references.is_empty() {
        map.insert("references".into(), json!(value.references));
    }
    if let Some(m) = &value.metadata {
        map.insert("metadata".into(), m.clone());
    }
    if let Some(r) = &value.rule_set {
        map.insert("ruleSet".into(), r.clone());
    }
    map.insert("schema".into(), json!(schema));
    Value::Object(map)
}

/// Every schema `references` pulls in, dependencies first, each once.
pub fn resolve_references(
    store: &Store,
    references: &[Reference],
) -> Result<Vec<ResolvedReference>, RestError> {
    let mut out: Vec<ResolvedReference> = Vec::new();
    let mut stack: Vec<(Reference, bool)> = references
        .iter()
        .rev()
        .map(|r| (r.clone(), false))
        .collect();
    let mut steps = 0usize;
    while let Some((reference, expanded)) = stack.pop() {
        steps += 1;
        if steps > REFERENCES_MAX * 4 || out.len() > REFERENCES_MAX {
            return Err(RestError::invalid_schema(format!(
                "more than {REFERENCES_MAX} referenced schemas"
            )));
        }
        if out.iter().any(|r| r.name == reference.name) {
            continue;
        }
        let value = if reference.version == -1 {
            store.latest(&reference.subject, false)
        } else {
            store.get(&reference.subject, reference.version)
        };
        let Some(value) = value else {
            return Err(RestError::invalid_schema(format!(
                "the reference {} (subject {}, version {}) does not exist",
                reference.name, reference.subject, reference.version
            )));
        };
        if expanded || value.references.is_empty() {
            out.push(ResolvedReference {
                name: reference.name.clone(),
                schema_type: value.schema_type,
                schema: value.schema.clone(),
            });
        } else {
            stack.push((reference, true));
            for dep in value.references.iter().rev() {
                if !out.iter().any(|r| r.name == dep.name) {
                    stack.push((dep.clone(), false));
                }
            }
        }
    }
    Ok(out)
}

/// Parses a stored version (with its references).
pub fn parse_stored(store: &Store, value: &SchemaValue) -> Result<ParsedSchema, RestError> {
    let refs = resolve_references(store, &value.references)?;
    ParsedSchema::parse(value.schema_type, &value.schema, &refs).map_err(RestError::invalid_schema)
}

/// The schema text to return: as stored, or for Protobuf with `format=serialized` a base64
/// `FileDescriptorProto`.
pub fn render_schema(store: &Store, value: &SchemaValue, format: Option<&str>) -> String {
    if value.schema_type == SchemaType::Protobuf && format == Some("serialized") {
        if let Ok(ParsedSchema::Protobuf(p)) = parse_stored(store, value) {
            return p.serialized();
        }
    }
    value.schema.clone()
}

/// A request's schema, parsed, and the text to store for it.
fn parse_request(
    store: &Store,
    settings: &Settings,
    request: &SchemaRequest,
    normalize: bool,
) -> Result<(ParsedSchema, SchemaValue), RestError> {
    let text = request
        .schema
        .as_deref()
        .ok_or_else(|| RestError::invalid_schema("the request has no schema"))?;
    if text.len() > settings.schema_bytes_max {
        return Err(RestError::new(
            code::SCHEMA_TOO_LARGE,
            format!("Schema is larger than {} bytes", settings.schema_bytes_max),
        ));
    }
    let schema_type = match request.schema_type.as_deref() {
        None => SchemaType::Avro,
        Some(name) => SchemaType::parse(name)
            .ok_or_else(|| RestError::invalid_schema(format!("unknown schema type {name:?}")))?,
    };
    let refs = resolve_references(store, &request.references)?;
    let parsed =
        ParsedSchema::parse(schema_type, text, &refs).map_err(RestError::invalid_schema)?;
    let stored = if normalize {
        parsed.normalized()
    } else {
        parsed.canonical()
    };
    let value = SchemaValue {
        subject: String::new(),
        version: 0,
        id: 0,
        schema_type,
        references: request.references.clone(),
        metadata: request.metadata.clone(),
        rule_set: request.rule_set.clone(),
        schema: stored,
        deleted: false,
    };
    Ok((parsed, value))
}

fn same_schema(a: &SchemaValue, b: &SchemaValue) -> bool {
    a.schema_type == b.schema_type && a.schema == b.schema && a.references == b.references
}

fn normalize_in_scope(store: &Store, subject: &str, normalize: bool) -> bool {
    normalize
        || store
            .config(Some(subject))
            .is_some_and(ConfigValue::normalize)
        || store.config(None).is_some_and(ConfigValue::normalize)
}

/// The compatibility level in force for `subject`.
pub fn level(store: &Store, settings: &Settings, subject: Option<&str>) -> CompatibilityLevel {
    subject
        .and_then(|s| store.config(Some(s)))
        .and_then(ConfigValue::compatibility)
        .or_else(|| store.config(None).and_then(ConfigValue::compatibility))
        .and_then(CompatibilityLevel::parse)
        .unwrap_or(settings.default_compatibility)
}

/// The mode in force for `subject`.
pub fn mode<'a>(store: &'a Store, subject: Option<&str>) -> &'a str {
    subject
        .and_then(|s| store.mode(Some(s)))
        .or_else(|| store.mode(None))
        .unwrap_or("READWRITE")
}

fn check_writable(store: &Store, subject: &str) -> Result<(), RestError> {
    if matches!(mode(store, Some(subject)), "READONLY" | "READONLY_OVERRIDE") {
        return Err(RestError::not_permitted(format!(
            "Subject {subject} is in read-only mode"
        )));
    }
    Ok(())
}

/// `POST /subjects/{subject}/versions`.
pub fn register(
    store: &Store,
    settings: &Settings,
    subject: &str,
    request: &SchemaRequest,
    normalize: bool,
) -> Result<Planned<Registered>, RestError> {
    check_subject(subject)?;
    check_writable(store, subject)?;
    let import = mode(store, Some(subject)) == "IMPORT";
    if request.id.is_some_and(|id| id >= 0) && !import {
        return Err(RestError::not_permitted(format!(
            "Subject {subject} is not in import mode"
        )));
    }
    let normalize = normalize_in_scope(store, subject, normalize);
    let (parsed, mut value) = parse_request(store, settings, request, normalize)?;
    value.subject = subject.to_string();
    let live = store.versions(subject, false);
    if request.version.is_none_or(|v| v <= 0) {
        if let Some(existing) = live.iter().find(|v| same_schema(v, &value)) {
            if request.id.is_none_or(|id| id < 0 || id == existing.id) {
                return Ok(Planned::done(Registered {
                    id: existing.id,
                    version: existing.version,
                    new: false,
                }));
            }
        }
    }
    if !import {
        let previous: Vec<ParsedSchema> = live
            .iter()
            .filter_map(|v| match parse_stored(store, v) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(subject, version = v.version, error = %e, "a stored schema does not parse; left out of the compatibility check");
                    None
                }
            })
            .collect();
        let errors = compat::check(level(store, settings, Some(subject)), &parsed, &previous);
        if !errors.is_empty() {
            return Err(RestError::incompatible(subject, &errors));
        }
    }
    let id = match request.id.filter(|id| *id >= 0) {
        Some(id) => {
            if let Some(other) = store.by_id(id) {
                if !same_schema(other, &value) {
                    return Err(RestError::new(
                        code::ID_DOES_NOT_MATCH,
                        format!("Schema id {id} already exists with a different schema"),
                    ));
                }
            }
            id
        }
        None => match store.find_id(&value) {
            Some(id) => id,
            None => store
                .max_id()
                .checked_add(1)
                .ok_or_else(|| RestError::store("every schema id is taken"))?,
        },
    };
    let next_version = store.max_version(subject) + 1;
    let version = match request.version.filter(|v| *v > 0) {
        Some(v) if import => v,
        Some(v) if v != next_version => {
            return Err(RestError::invalid_schema(
                "Version is not one more than previous version",
            ))
        }
        _ => next_version,
    };
    value.id = id;
    value.version = version;
    Ok(Planned {
        writes: vec![Write {
            key: Key::Schema {
                subject: subject.to_string(),
                version,
            },
            value: Some(Record::Schema(value)),
        }],
        response: Registered {
            id,
            version,
            new: true,
        },
    })
}

/// `POST /subjects/{subject}`: the version of `subject` that has this schema.
pub fn lookup<'a>(
    store: &'a Store,
    settings: &Settings,
    subject: &str,
    request: &SchemaRequest,
    normalize: bool,
    deleted: bool,
) -> Result<&'a SchemaValue, RestError> {
    if !store.has_subject(subject, deleted) {
        return Err(RestError::subject_not_found(subject));
    }
    let normalize = normalize_in_scope(store, subject, normalize);
    let (_, value) = parse_request(store, settings, request, normalize)?;
    let versions = store.versions(subject, deleted);
    versions
        .into_iter()
        .rev()
        .find(|v| same_schema(v, &value))
        .ok_or_else(RestError::schema_not_found)
}

/// `POST /compatibility/subjects/{subject}/versions[/{version}]`: whether the schema could
/// be registered (against `version` only, or as a register would check it), and why not.
pub fn check_compatibility(
    store: &Store,
    settings: &Settings,
    subject: &str,
    version: Option<VersionId>,
    request: &SchemaRequest,
    normalize: bool,
) -> Result<Vec<String>, RestError> {
    let normalize = normalize_in_scope(store, subject, normalize);
    let (parsed, _) = parse_request(store, settings, request, normalize)?;
    let against: Vec<&SchemaValue> = match version {
        Some(v) => vec![self::version(store, subject, v, false)?],
        None => store.versions(subject, false),
    };
    let previous = against
        .iter()
        .map(|v| parse_stored(store, v))
        .collect::<Result<Vec<_>, _>>()?;
    let mut level = level(store, settings, Some(subject));
    if version.is_some() {
        // One version: the level's direction, not its transitivity.
        level = match level {
            CompatibilityLevel::BackwardTransitive => CompatibilityLevel::Backward,
            CompatibilityLevel::ForwardTransitive => CompatibilityLevel::Forward,
            CompatibilityLevel::FullTransitive => CompatibilityLevel::Full,
            other => other,
        };
    }
    Ok(compat::check(level, &parsed, &previous))
}

/// `DELETE /subjects/{subject}/versions/{version}`.
pub fn delete_version(
    store: &Store,
    subject: &str,
    version: VersionId,
    permanent: bool,
) -> Result<Planned<i32>, RestError> {
    check_writable(store, subject)?;
    if !store.has_subject(subject, true) {
        return Err(RestError::subject_not_found(subject));
    }
    let found = match version {
        VersionId::Latest => store.latest(subject, permanent),
        VersionId::Number(n) => store.get(subject, n),
    };
    let Some(value) = found else {
        return Err(match version {
            VersionId::Latest => RestError::version_not_found("latest"),
            VersionId::Number(n) => RestError::version_not_found(n),
        });
    };
    let v = value.version;
    let referenced = store.referenced_by(subject, v);
    if !referenced.is_empty() {
        return Err(RestError::new(
            code::REFERENCE_EXISTS,
            format!("One or more references exist to the schema {{subject={subject},version={v}}} (ids {referenced:?})"),
        ));
    }
    let key = Key::Schema {
        subject: subject.to_string(),
        version: v,
    };
    if permanent {
        if !value.deleted {
            return Err(RestError::new(
                code::VERSION_NOT_SOFT_DELETED,
                format!("Subject '{subject}' Version {v} was not deleted first before being permanently deleted"),
            ));
        }
        return Ok(Planned {
            writes: vec![Write { key, value: None }],
            response: v,
        });
    }
    if value.deleted {
        return Err(RestError::new(
            code::VERSION_SOFT_DELETED,
            format!("Subject '{subject}' Version {v} was soft deleted. Set permanent=true to delete permanently"),
        ));
    }
    let mut deleted = value.clone();
    deleted.deleted = true;
    Ok(Planned {
        writes: vec![Write {
            key,
            value: Some(Record::Schema(deleted)),
        }],
        response: v,
    })
}

/// `DELETE /subjects/{subject}`.
pub fn delete_subject(
    store: &Store,
    subject: &str,
    permanent: bool,
) -> Result<Planned<Vec<i32>>, RestError> {
    check_writable(store, subject)?;
    if !store.has_subject(subject, true) {
        return Err(RestError::subject_not_found(subject));
    }
    let live: Vec<i32> = store
        .versions(subject, false)
        .iter()
        .map(|v| v.version)
        .collect();
    if !permanent && live.is_empty() {
        return Err(RestError::new(
            code::SUBJECT_SOFT_DELETED,
            format!(
                "Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
            ),
        ));
    }
    if permanent && !live.is_empty() {
        return Err(RestError::new(
            code::SUBJECT_NOT_SOFT_DELETED,
            format!("Subject '{subject}' was not deleted first before being permanently deleted"),
        ));
    }
    let all: Vec<i32> = store
        .versions(subject, true)
        .iter()
        .map(|v| v.version)
        .collect();
    for v in &all {
        let others: Vec<i32> = store
            .referenced_by(subject, *v)
            .into_iter()
            .filter(|id| {
                store
                    .versions_of_id(*id, false)
                    .iter()
                    .any(|s| s.subject != subject)
            })
            .collect();
        if !others.is_empty() {
            return Err(RestError::new(
                code::REFERENCE_EXISTS,
                format!(
                    "One or more references exist to the schema {{subject={subject},version={v}}}"
                ),
            ));
        }
    }
    if !permanent {
        let last = live.last().copied().unwrap_or(0);
        return Ok(Planned {
            writes: vec![Write {
                key: Key::DeleteSubject {
                    subject: subject.to_string(),
                },
                value: Some(Record::DeleteSubject(DeleteSubjectValue {
                    subject: subject.to_string(),
                    version: last,
                })),
            }],
            response: live,
        });
    }
    let mut writes: Vec<Write> = all
        .iter()
        .rev()
        .map(|v| Write {
            key: Key::Schema {
                subject: subject.to_string(),
                version: *v,
            },
            value: None,
        })
        .collect();
    if store.mode(Some(subject)).is_some() {
        writes.push(Write {
            key: Key::Mode {
                subject: Some(subject.to_string()),
            },
            value: None,
        });
    }
    if store.config(Some(subject)).is_some() {
        writes.push(Write {
            key: Key::Config {
                subject: Some(subject.to_string()),
            },
            value: None,
        });
    }
    Ok(Planned {
        writes,
        response: all,
    })
}

fn config_json(config: Option<&ConfigValue>, fallback: CompatibilityLevel) -> Value {
    let mut map = config.map(|c| c.0.clone()).unwrap_or_default();
    map.remove("subject");
    if !map.contains_key("compatibilityLevel") {
        map.insert("compatibilityLevel".into(), json!(fallback.name()));
    }
    Value::Object(map)
}

/// `GET /config[/{subject}]`.
pub fn get_config(
    store: &Store,
    settings: &Settings,
    subject: Option<&str>,
    default_to_global: bool,
) -> Result<Value, RestError> {
    match subject {
        None => Ok(config_json(
            store.config(None),
            settings.default_compatibility,
        )),
        Some(s) => match store.config(Some(s)) {
            Some(c) => Ok(config_json(Some(c), level(store, settings, None))),
            None if default_to_global => Ok(config_json(
                store.config(None),
                settings.default_compatibility,
            )),
            None => Err(RestError::new(
                code::SUBJECT_COMPATIBILITY_NOT_CONFIGURED,
                format!("Subject '{s}' does not have subject-level compatibility configured"),
            )),
        },
    }
}

/// `PUT /config[/{subject}]`: `{"compatibility": LEVEL, ...}`.
pub fn put_config(
    store: &Store,
    subject: Option<&str>,
    body: &Map<String, Value>,
) -> Result<Planned<Value>, RestError> {
    if let Some(s) = subject {
        check_subject(s)?;
    }
    let invalid = || {
        RestError::new(
            code::INVALID_COMPATIBILITY_LEVEL,
            "Invalid compatibility level. Valid values are none, backward, forward, full, \
             backward_transitive, forward_transitive, and full_transitive",
        )
    };
    let mut config = store.config(subject).cloned().unwrap_or_default().0;
    config.remove("subject");
    for (k, v) in body {
        match k.as_str() {
            "compatibility" | "compatibilityLevel" => {
                let level = v
                    .as_str()
                    .and_then(CompatibilityLevel::parse)
                    .ok_or_else(invalid)?;
                config.insert("compatibilityLevel".into(), json!(level.name()));
            }
            _ if v.is_null() => {
                config.remove(k);
            }
            _ => {
                config.insert(k.clone(), v.clone());
            }
        }
    }
    let mut response = body.clone();
    if let Some(level) = config.get("compatibilityLevel") {
        response.remove("compatibilityLevel");
        response.insert("compatibility".into(), level.clone());
    }
    Ok(Planned {
        writes: vec![Write {
            key: Key::Config {
                subject: subject.map(str::to_string),
            },
            value: Some(Record::Config(ConfigValue(config))),
        }],
        response: Value::Object(response),
    })
}

/// `DELETE /config[/{subject}]`: back to the global (or default) level; answers the
/// config that was removed.
pub fn delete_config(
    store: &Store,
    settings: &Settings,
    subject: Option<&str>,
) -> Result<Planned<Value>, RestError> {
    if let Some(s) = subject {
        if !store.has_subject(s, true) && store.config(Some(s)).is_none() {
            return Err(RestError::subject_not_found(s));
        }
    }
    let old = config_json(store.config(subject), level(store, settings, None));
    let writes = if store.config(subject).is_some() {
        vec![Write {
            key: Key::Config {
                subject: subject.map(str::to_string),
            },
            value: None,
        }]
    } else {
        Vec::new()
    };
    Ok(Planned {
        writes,
        response: old,
    })
}

/// `GET /mode[/{subject}]`.
pub fn get_mode(
    store: &Store,
    subject: Option<&str>,
    default_to_global: bool,
) -> Result<Value, RestError> {
    match subject {
        None => Ok(json!({"mode": mode(store, None)})),
        Some(s) => match store.mode(Some(s)) {
            Some(m) => Ok(json!({ "mode": m })),
            None if default_to_global => Ok(json!({"mode": mode(store, None)})),
            None => Err(RestError::new(
                code::SUBJECT_MODE_NOT_CONFIGURED,
                format!("Subject '{s}' does not have subject-level mode configured"),
            )),
        },
    }
}

/// `PUT /mode[/{subject}]`: `{"mode": MODE}`.
pub fn put_mode(
    store: &Store,
    settings: &Settings,
    subject: Option<&str>,
    body: &Map<String, Value>,
    force: bool,
) -> Result<Planned<Value>, RestError> {
    if !settings.mode_mutability {
        return Err(RestError::not_permitted(
            "Mode changes are not allowed (mode.mutability is false)",
        ));
    }
    if let Some(s) = subject {
        check_subject(s)?;
    }
    let mode = body
        .get("mode")
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase)
        .filter(|m| MODES.contains(&m.as_str()))
        .ok_or_else(|| {
            RestError::new(
                code::INVALID_MODE,
                "Invalid mode. Valid values are READWRITE, READONLY, READONLY_OVERRIDE and IMPORT.",
            )
        })?;
    if mode == "IMPORT" && !force {
        let has_schemas = match subject {
            Some(s) => store.has_subject(s, true),
            None => !store.subjects(true).is_empty(),
        };
        if has_schemas {
            return Err(RestError::not_permitted(
                "Cannot import since found existing subjects",
            ));
        }
    }
    Ok(Planned {
        writes: vec![Write {
            key: Key::Mode {
                subject: subject.map(str::to_string),
            },
            value: Some(Record::Mode(mode.clone())),
        }],
        response: json!({ "mode": mode }),
    })
}

/// `DELETE /mode[/{subject}]`.
pub fn delete_mode(store: &Store, subject: Option<&str>) -> Result<Planned<Value>, RestError> {
    let old = json!({"mode": mode(store, subject)});
    if let Some(s) = subject {
        if !store.has_subject(s, true) && store.mode(Some(s)).is_none() {
            return Err(RestError::subject_not_found(s));
        }
    }
    let writes = if store.mode(subject).is_some() {
        vec![Write {
            key: Key::Mode {
                subject: subject.map(str::to_string),
            },
            value: None,
        }]
    } else {
        Vec::new()
    };
    Ok(Planned {
        writes,
        response: old,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with the planned writes applied, as the leader's reader would.
    struct Registry {
        store: Store,
        settings: Settings,
        offset: i64,
    }

    impl Registry {
        fn new() -> Registry {
            Registry {
                store: Store::new(),
                settings: Settings::default(),
                offset: 0,
            }
        }

        fn apply<T>(&mut self, planned: Planned<T>) -> T {
            for w in &planned.writes {
                let (k, v) = w.encode();
                self.store.apply(self.offset, Some(&k), v.as_deref());
                self.offset += 1;
            }
            planned.response
        }

        fn register(&mut self, subject: &str, schema: &str) -> Result<Registered, RestError> {
            let request = SchemaRequest {
                schema: Some(schema.into()),
                ..SchemaRequest::default()
            };
            let planned = register(&self.store, &self.settings, subject, &request, false)?;
            Ok(self.apply(planned))
        }
    }

    const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
    const V2: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":""}]}"#;
    const BAD: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;

    #[test]
    fn register_is_idempotent_and_ids_are_global() {
        let mut r = Registry::new();
        let a = r.register("s", V1).unwrap();
        assert_eq!((a.id, a.version, a.new), (1, 1, true));
        let again = r.register("s", &format!(" {V1}\n")).unwrap();
        assert_eq!((again.id, again.version, again.new), (1, 1, false));
        let other = r.register("t", V1).unwrap();
        assert_eq!((other.id, other.version), (1, 1));
        let b = r.register("s", V2).unwrap();
        assert_eq!((b.id, b.version), (2, 2));
    }

    #[test]
    fn incompatible_schemas_get_409() {
        let mut r = Registry::new();
        r.register("s", V1).unwrap();
        let e = r.register("s", BAD).unwrap_err();
        assert_eq!((e.status, e.error_code), (409, code::INCOMPATIBLE_SCHEMA));
        let e = r.register("s", "{").unwrap_err();
        assert_eq!(e.error_code, code::INVALID_SCHEMA);
        // With NONE it goes in.
        let body: Map<String, Value> = serde_json::from_str(r#"{"compatibility":"NONE"}"#).unwrap();
        let planned = put_config(&r.store, Some("s"), &body).unwrap();
        r.apply(planned);
        assert_eq!(r.register("s", BAD).unwrap().version, 2);
    }

    #[test]
    fn deletes_follow_confluents_order() {
        let mut r = Registry::new();
        r.register("s", V1).unwrap();
        r.register("s", V2).unwrap();
        let e = delete_version(&r.store, "s", VersionId::Number(1), true).unwrap_err();
        assert_eq!(e.error_code, code::VERSION_NOT_SOFT_DELETED);
        let planned = delete_version(&r.store, "s", VersionId::Number(1), false).unwrap();
        assert_eq!(r.apply(planned), 1);
        let e = delete_version(&r.store, "s", VersionId::Number(1), false).unwrap_err();
        assert_eq!(e.error_code, code::VERSION_SOFT_DELETED);
        let planned = delete_version(&r.store, "s", VersionId::Number(1), true).unwrap();
        r.apply(planned);
        assert!(r.store.get("s", 1).is_none());
        let e = delete_subject(&r.store, "s", true).unwrap_err();
        assert_eq!(e.error_code, code::SUBJECT_NOT_SOFT_DELETED);
        let planned = delete_subject(&r.store, "s", false).unwrap();
        assert_eq!(r.apply(planned), vec![2]);
        let e = delete_subject(&r.store, "s", false).unwrap_err();
        assert_eq!(e.error_code, code::SUBJECT_SOFT_DELETED);
        let planned = delete_subject(&r.store, "s", true).unwrap();
        assert_eq!(r.apply(planned), vec![2]);
        assert_eq!(
            delete_subject(&r.store, "s", true).unwrap_err().error_code,
            code::SUBJECT_NOT_FOUND
        );
        // Ids are never reused, even after a hard delete of the newest.
        assert_eq!(r.register("s", BAD).unwrap().id, 3);
    }

    #[test]
    fn lookups_and_versions() {
        let mut r = Registry::new();
        r.register("s", V1).unwrap();
        let request = SchemaRequest {
            schema: Some(V1.into()),
            ..SchemaRequest::default()
        };
        let found = lookup(&r.store, &r.settings, "s", &request, false, false).unwrap();
        assert_eq!(found.version, 1);
        assert_eq!(
            lookup(&r.store, &r.settings, "nope", &request, false, false)
                .unwrap_err()
                .error_code,
            code::SUBJECT_NOT_FOUND
        );
        let other = SchemaRequest {
            schema: Some(V2.into()),
            ..SchemaRequest::default()
        };
        assert_eq!(
            lookup(&r.store, &r.settings, "s", &other, false, false)
                .unwrap_err()
                .error_code,
            code::SCHEMA_NOT_FOUND
        );
        assert_eq!(
            version(&r.store, "s", VersionId::Number(9), false)
                .unwrap_err()
                .error_code,
            code::VERSION_NOT_FOUND
        );
        assert_eq!(
            VersionId::parse("0").unwrap_err().error_code,
            code::INVALID_VERSION
        );
        assert_eq!(VersionId::parse("latest").unwrap(), VersionId::Latest);
    }

    #[test]
    fn references_resolve_transitively() {
        let mut r = Registry::new();
        r.register(
            "address",
            r#"{"type":"record","name":"Address","fields":[{"name":"s","type":"string"}]}"#,
        )
        .unwrap();
        let request = SchemaRequest {
            schema: Some(
                r#"{"type":"record","name":"User","fields":[{"name":"home","type":"Address"}]}"#
                    .into(),
            ),
            references: vec![Reference {
                name: "Address".into(),
                subject: "address".into(),
                version: 1,
            }],
            ..SchemaRequest::default()
        };
        let planned = register(&r.store, &r.settings, "user", &request, false).unwrap();
        let registered = r.apply(planned);
        assert_eq!(registered.id, 2);
        assert_eq!(r.store.referenced_by("address", 1), vec![2]);
        let e = delete_version(&r.store, "address", VersionId::Number(1), false).unwrap_err();
        assert_eq!(e.error_code, code::REFERENCE_EXISTS);
        let missing = SchemaRequest {
            references: vec![Reference {
                name: "X".into(),
                subject: "nope".into(),
                version: 1,
            }],
            ..request
        };
        assert_eq!(
            register(&r.store, &r.settings, "user", &missing, false)
                .unwrap_err()
                .error_code,
            code::INVALID_SCHEMA
        );
    }

    #[test]
    fn modes_and_configs() {
        let mut r = Registry::new();
        let body: Map<String, Value> = serde_json::from_str(r#"{"mode":"READONLY"}"#).unwrap();
        let planned = put_mode(&r.store, &r.settings, None, &body, false).unwrap();
        r.apply(planned);
        assert_eq!(
            r.register("s", V1).unwrap_err().error_code,
            code::OPERATION_NOT_PERMITTED
        );
        r.settings.mode_mutability = false;
        assert!(put_mode(&r.store, &r.settings, None, &body, false).is_err());
        assert_eq!(
            get_config(&r.store, &r.settings, Some("s"), false)
                .unwrap_err()
                .error_code,
            code::SUBJECT_COMPATIBILITY_NOT_CONFIGURED
        );
        assert_eq!(
            get_config(&r.store, &r.settings, None, false).unwrap(),
            json!({"compatibilityLevel": "BACKWARD"})
        );
        let bad: Map<String, Value> =
            serde_json::from_str(r#"{"compatibility":"SIDEWAYS"}"#).unwrap();
        assert_eq!(
            put_config(&r.store, None, &bad).unwrap_err().error_code,
            code::INVALID_COMPATIBILITY_LEVEL
        );
    }
}
