//! Schemas of the three formats: parsing (with references), the canonical text used for
//! lookups and ids, and the compatibility checks. Pure: no I/O.
//!
//! Every parser here sees input only after [`check_depth`] bounded its nesting, so deep
//! recursion in a schema is refused with an error instead of overflowing the stack.

pub mod avro;
pub mod json;
mod proto_print;
pub mod protobuf;

use serde::{Deserialize, Serialize};

/// Deepest nesting of brackets/braces accepted in a schema's text.
pub const NESTING_DEPTH_MAX: usize = 64;
/// Most schemas (direct and transitive references) one schema may pull in.
pub const REFERENCES_MAX: usize = 100;

/// The three formats, as Confluent names them on the wire.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum SchemaType {
    #[default]
    #[serde(rename = "AVRO")]
    Avro,
    #[serde(rename = "JSON")]
    Json,
    #[serde(rename = "PROTOBUF")]
    Protobuf,
}

impl SchemaType {
    pub fn is_avro(&self) -> bool {
        *self == SchemaType::Avro
    }

    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    pub fn parse(name: &str) -> Option<SchemaType> {
        match name.to_ascii_uppercase().as_str() {
            "AVRO" => Some(SchemaType::Avro),
            "JSON" => Some(SchemaType::Json),
            "PROTOBUF" => Some(SchemaType::Protobuf),
            _ => None,
        }
    }
}

/// A referenced schema, resolved: the name the referring schema uses and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedReference {
    pub name: String,
    pub schema_type: SchemaType,
    pub schema: String,
}

/// A parsed schema of any format.
#[derive(Debug, Clone)]
pub enum ParsedSchema {
    Avro(avro::AvroSchema),
    Json(json::JsonSchema),
    Protobuf(protobuf::ProtoSchema),
}

impl ParsedSchema {
    /// Parses `text`; `references` are every schema it pulls in, dependencies first.
    pub fn parse(
        schema_type: SchemaType,
        text: &str,
        references: &[ResolvedReference],
    ) -> Result<ParsedSchema, String> {
        if references.len() > REFERENCES_MAX {
            return Err(format!(
                "more than {REFERENCES_MAX} referenced schemas (found {})",
                references.len()
            ));
        }
        if text.trim().is_empty() {
            return Err("the schema is empty".into());
        }
        check_depth(text)?;
        for r in references {
            check_depth(&r.schema)?;
        }
        Ok(match schema_type {
            SchemaType::Avro => ParsedSchema::Avro(avro::AvroSchema::parse(text, references)?),
            SchemaType::Json => ParsedSchema::Json(json::JsonSchema::parse(text, references)?),
            SchemaType::Protobuf => {
                ParsedSchema::Protobuf(protobuf::ProtoSchema::parse(text, references)?)
            }
        })
    }

    pub fn schema_type(&self) -> SchemaType {
        match self {
            ParsedSchema::Avro(_) => SchemaType::Avro,
            ParsedSchema::Json(_) => SchemaType::Json,
            ParsedSchema::Protobuf(_) => SchemaType::Protobuf,
        }
    }

    /// The text stored and compared on lookup: the schema with insignificant whitespace
    /// removed (JSON formats) or as given (Protobuf).
    pub fn canonical(&self) -> String {
        match self {
            ParsedSchema::Avro(s) => s.canonical(),
            ParsedSchema::Json(s) => s.canonical(),
            ParsedSchema::Protobuf(s) => s.canonical(),
        }
    }

    /// The text stored with `normalize=true`: as canonical, with object keys sorted (JSON
    /// formats), or printed back from the descriptor (Protobuf).
    pub fn normalized(&self) -> String {
        match self {
            ParsedSchema::Avro(s) => s.normalized(),
            ParsedSchema::Json(s) => s.normalized(),
            ParsedSchema::Protobuf(s) => s.normalized(),
        }
    }

    /// Why data written with `writer` cannot be read with `self` as the reader (empty when
    /// it can). Schemas of different formats are never compatible.
    pub fn can_read(&self, writer: &ParsedSchema) -> Vec<String> {
        match (self, writer) {
            (ParsedSchema::Avro(r), ParsedSchema::Avro(w)) => avro::can_read(r, w),
            (ParsedSchema::Json(r), ParsedSchema::Json(w)) => json::can_read(r, w),
            (ParsedSchema::Protobuf(r), ParsedSchema::Protobuf(w)) => protobuf::can_read(r, w),
            _ => vec![format!(
                "SCHEMA_TYPE_CHANGED: the schema type changed from {} to {}",
                writer.schema_type().name(),
                self.schema_type().name()
            )],
        }
    }
}

/// Stack of the thread schema work runs on: parsing and comparing recurse as deep as a
/// schema nests, and a chain of references nests each referenced schema in the next
/// ([`REFERENCES_MAX`] times [`NESTING_DEPTH_MAX`] levels at worst), deeper than a tokio
/// worker's 2 MiB stack holds. Reserved address space; only what is used is touched.
pub const SCHEMA_STACK_BYTES: usize = 256 * 1024 * 1024;

/// Runs `work` (parsing, compatibility, anything holding parsed schemas) on a scoped
/// thread with a [`SCHEMA_STACK_BYTES`] stack, and returns its result. A thread that
/// cannot be started, or that panicked, is an error.
pub fn with_schema_stack<T: Send>(work: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("schema-work".into())
            .stack_size(SCHEMA_STACK_BYTES)
            .spawn_scoped(scope, work)
            .map_err(|e| format!("cannot start a thread for schema work: {e}"))?;
        handle
            .join()
            .map_err(|_| "schema work failed unexpectedly".to_string())
    })
}

/// Refuses text whose brackets nest deeper than [`NESTING_DEPTH_MAX`] (outside strings).
pub fn check_depth(text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' | '(' | '<' => {
                depth += 1;
                if depth > NESTING_DEPTH_MAX {
                    return Err(format!(
                        "the schema nests deeper than {NESTING_DEPTH_MAX} levels"
                    ));
                }
            }
            '}' | ']' | ')' | '>' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// JSON text with the whitespace between tokens removed; object key order is kept.
pub fn minify_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_bounded_outside_strings() {
        let deep = "[".repeat(NESTING_DEPTH_MAX + 1);
        assert!(check_depth(&deep).is_err());
        let ok = format!("\"{}\"", "[".repeat(1000));
        assert!(check_depth(&ok).is_ok());
        assert!(check_depth(&"[".repeat(NESTING_DEPTH_MAX)).is_ok());
    }

    #[test]
    fn minify_keeps_strings() {
        assert_eq!(
            minify_json("{ \"a b\" : [ 1, \"x \\\" y\" ] }\n"),
            "{\"a b\":[1,\"x \\\" y\"]}"
        );
    }

    #[test]
    fn formats_never_mix() {
        let a = ParsedSchema::parse(SchemaType::Avro, "\"string\"", &[]).unwrap();
        let j = ParsedSchema::parse(SchemaType::Json, "{\"type\":\"string\"}", &[]).unwrap();
        assert!(!a.can_read(&j).is_empty());
    }
}

#[cfg(test)]
mod deep_tests {
    //! Deep or long-chained schemas are refused or handled, never a stack overflow (these
    //! run on the test harness's 2 MiB threads, as small as a tokio worker's).
    use super::*;

    fn parse(
        t: SchemaType,
        text: &str,
        refs: &[ResolvedReference],
    ) -> Result<ParsedSchema, String> {
        ParsedSchema::parse(t, text, refs)
    }

    #[test]
    fn deep_nesting_is_refused_in_every_format() {
        let n = 100_000;
        let avro = format!(
            "{}\"int\"{}",
            "{\"type\":\"array\",\"items\":".repeat(n),
            "}".repeat(n)
        );
        assert!(parse(SchemaType::Avro, &avro, &[]).is_err());
        let json = format!("{}{{}}{}", "{\"items\":".repeat(n), "}".repeat(n));
        assert!(parse(SchemaType::Json, &json, &[]).is_err());
        let proto = format!(
            "syntax = \"proto3\"; {} {}",
            "message M {".repeat(n),
            "}".repeat(n)
        );
        assert!(parse(SchemaType::Protobuf, &proto, &[]).is_err());
    }

    #[test]
    fn the_deepest_accepted_schemas_check_without_overflow() {
        let n = NESTING_DEPTH_MAX / 2 - 1;
        let avro = format!(
            "{}\"int\"{}",
            "{\"type\":\"array\",\"items\":".repeat(n),
            "}".repeat(n)
        );
        let a = parse(SchemaType::Avro, &avro, &[]).unwrap();
        assert!(a.can_read(&a).is_empty());
        let json = format!(
            "{}{{\"type\":\"integer\"}}{}",
            "{\"type\":\"array\",\"items\":".repeat(n),
            "}".repeat(n)
        );
        let j = parse(SchemaType::Json, &json, &[]).unwrap();
        assert!(j.can_read(&j).is_empty());
        let proto = format!(
            "syntax = \"proto3\"; {} {}",
            "message M { int32 x = 1; ".repeat(n),
            "}".repeat(n)
        );
        let p = parse(SchemaType::Protobuf, &proto, &[]).unwrap();
        assert!(p.can_read(&p).is_empty());
    }

    /// A chain of Avro references, each schema nesting the next as deep as allowed.
    #[test]
    fn chains_of_avro_references_check_without_overflow() {
        let depth = NESTING_DEPTH_MAX / 4;
        let mut refs = Vec::new();
        let mut inner = "\"int\"".to_string();
        for i in 0..REFERENCES_MAX {
            let wrapped = format!(
                "{{\"type\":\"record\",\"name\":\"R{i}\",\"fields\":[{{\"name\":\"f\",\"type\":{}{inner}{}}}]}}",
                "{\"type\":\"array\",\"items\":".repeat(depth),
                "}".repeat(depth)
            );
            refs.push(ResolvedReference {
                name: format!("R{i}"),
                schema_type: SchemaType::Avro,
                schema: wrapped,
            });
            inner = format!("\"R{i}\"");
        }
        let root = format!("{{\"type\":\"record\",\"name\":\"Root\",\"fields\":[{{\"name\":\"f\",\"type\":{inner}}}]}}");
        let checked = with_schema_stack(|| match parse(SchemaType::Avro, &root, &refs) {
            Ok(a) => a.can_read(&a).len(),
            Err(e) => e.len(),
        });
        assert!(checked.is_ok());
    }

    /// JSON Schema: a chain of definitions, each referencing the next.
    #[test]
    fn chains_of_json_refs_check_without_overflow() {
        let mut defs = Vec::new();
        for i in 0..5_000 {
            defs.push(format!(
                "\"d{i}\":{{\"type\":\"object\",\"properties\":{{\"x\":{{\"$ref\":\"#/definitions/d{}\"}}}}}}",
                i + 1
            ));
        }
        defs.push("\"d5000\":{\"type\":\"integer\"}".to_string());
        let json = format!(
            "{{\"definitions\":{{{}}},\"$ref\":\"#/definitions/d0\"}}",
            defs.join(",")
        );
        let j = parse(SchemaType::Json, &json, &[]).unwrap();
        let _ = j.can_read(&j);
    }
}
