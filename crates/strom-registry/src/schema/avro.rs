//! Avro: parsed with the `apache-avro` crate; compatibility by Avro's schema-resolution
//! rules (the specification's "Schema Resolution" section), checked as Avro's Java
//! `SchemaCompatibility` (which Confluent's registry uses) checks them: a reader field
//! missing from the writer needs a default, enum symbols, fixed sizes, numeric and
//! string/bytes promotions, unions branch by branch, names matched or aliased.

use std::collections::{HashMap, HashSet};

use apache_avro::schema::{Name, Schema};

use super::{minify_json, ResolvedReference};

/// A parsed Avro schema and the named types it can refer to.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    pub schema: Schema,
    /// The referenced schemas, parsed (dependencies of `schema`).
    pub references: Vec<Schema>,
    text: String,
    names: HashMap<String, Schema>,
}

impl AvroSchema {
    pub fn parse(text: &str, references: &[ResolvedReference]) -> Result<AvroSchema, String> {
        let texts: Vec<&str> = references.iter().map(|r| r.schema.as_str()).collect();
        let (schema, references) = if texts.is_empty() {
            (
                Schema::parse_str(text).map_err(|e| e.to_string())?,
                Vec::new(),
            )
        } else {
            Schema::parse_str_with_list(text, texts).map_err(|e| e.to_string())?
        };
        let mut names = HashMap::new();
        collect_names(&schema, &mut names);
        for r in &references {
            collect_names(r, &mut names);
        }
        Ok(AvroSchema {
            schema,
            references,
            text: minify_json(text.trim()),
            names,
        })
    }

    pub fn canonical(&self) -> String {
        self.text.clone()
    }

    pub fn normalized(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.text)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| self.text.clone())
    }

    /// Avro's Parsing Canonical Form (names, types, symbols and sizes only).
    pub fn parsing_canonical_form(&self) -> String {
        self.schema.canonical_form()
    }

    fn resolve<'a>(&'a self, schema: &'a Schema) -> &'a Schema {
        match schema {
            Schema::Ref { name } => self.names.get(&name.fullname(None)).unwrap_or(schema),
            _ => schema,
        }
    }
}

fn collect_names(schema: &Schema, names: &mut HashMap<String, Schema>) {
    match schema {
        Schema::Record(r) => {
            names.insert(r.name.fullname(None), schema.clone());
            for f in &r.fields {
                collect_names(&f.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.fullname(None), schema.clone());
        }
        Schema::Fixed(f) => {
            names.insert(f.name.fullname(None), schema.clone());
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => {
            for v in u.variants() {
                collect_names(v, names);
            }
        }
        Schema::Decimal(d) => collect_names(&d.inner, names),
        _ => {}
    }
}

/// The reasons data written with `writer` cannot be read with `reader` (empty: it can).
pub fn can_read(reader: &AvroSchema, writer: &AvroSchema) -> Vec<String> {
    let mut check = Check {
        reader,
        writer,
        in_progress: HashSet::new(),
        depth: 0,
        errors: Vec::new(),
    };
    check.schemas(&reader.schema, &writer.schema, "");
    check.errors
}

struct Check<'a> {
    reader: &'a AvroSchema,
    writer: &'a AvroSchema,
    /// Named pairs being compared: met again (a recursive type), they are assumed
    /// compatible, as Avro's Java checker does.
    in_progress: HashSet<(String, String)>,
    /// Nesting of the check now (named types of references included), bounded by
    /// [`CHECK_DEPTH_MAX`].
    depth: usize,
    errors: Vec<String>,
}

/// Deepest the check nests (the stack stays small whatever the references chain).
const CHECK_DEPTH_MAX: usize = 128;

/// The type as resolution sees it: logical types compare as their underlying types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array,
    Map,
    Union,
    Record,
    Enum,
    Fixed,
}

fn kind(schema: &Schema) -> Kind {
    match schema {
        Schema::Null => Kind::Null,
        Schema::Boolean => Kind::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Kind::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Kind::Long,
        Schema::Float => Kind::Float,
        Schema::Double => Kind::Double,
        Schema::Bytes | Schema::BigDecimal => Kind::Bytes,
        Schema::String | Schema::Uuid => Kind::String,
        Schema::Array(_) => Kind::Array,
        Schema::Map(_) => Kind::Map,
        Schema::Union(_) => Kind::Union,
        Schema::Record(_) => Kind::Record,
        Schema::Enum(_) => Kind::Enum,
        Schema::Fixed(_) | Schema::Duration => Kind::Fixed,
        Schema::Decimal(d) => kind(&d.inner),
        Schema::Ref { .. } => Kind::Null,
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Null => "null",
        Kind::Boolean => "boolean",
        Kind::Int => "int",
        Kind::Long => "long",
        Kind::Float => "float",
        Kind::Double => "double",
        Kind::Bytes => "bytes",
        Kind::String => "string",
        Kind::Array => "array",
        Kind::Map => "map",
        Kind::Union => "union",
        Kind::Record => "record",
        Kind::Enum => "enum",
        Kind::Fixed => "fixed",
    }
}

/// Whether a writer's primitive promotes to the reader's (the specification's list).
fn promotes(writer: Kind, reader: Kind) -> bool {
    matches!(
        (writer, reader),
        (Kind::Int, Kind::Long | Kind::Float | Kind::Double)
            | (Kind::Long, Kind::Float | Kind::Double)
            | (Kind::Float, Kind::Double)
            | (Kind::String, Kind::Bytes)
            | (Kind::Bytes, Kind::String)
    )
}

fn full_name(schema: &Schema) -> Option<&Name> {
    match schema {
        Schema::Record(r) => Some(&r.name),
        Schema::Enum(e) => Some(&e.name),
        Schema::Fixed(f) => Some(&f.name),
        Schema::Decimal(d) => full_name(&d.inner),
        _ => None,
    }
}

fn aliases(schema: &Schema) -> Vec<String> {
    let (aliases, namespace) = match schema {
        Schema::Record(r) => (&r.aliases, &r.name.namespace),
        Schema::Enum(e) => (&e.aliases, &e.name.namespace),
        Schema::Fixed(f) => (&f.aliases, &f.name.namespace),
        _ => return Vec::new(),
    };
    aliases
        .iter()
        .flatten()
        .map(|a| a.fullname(namespace.clone()))
        .collect()
}

impl Check<'_> {
    fn error(&mut self, kind: &str, path: &str, message: String) {
        let path = if path.is_empty() { "/" } else { path };
        self.errors.push(format!(
            "{{errorType:'{kind}', description:'{message}', path:'{path}'}}"
        ));
    }

    /// Whether `reader` reads `writer`, without recording errors.
    fn quietly(&mut self, reader: &Schema, writer: &Schema) -> bool {
        let before = self.errors.len();
        self.schemas(reader, writer, "");
        let ok = self.errors.len() == before;
        self.errors.truncate(before);
        ok
    }

    fn schemas(&mut self, reader: &Schema, writer: &Schema, path: &str) {
        if self.depth >= CHECK_DEPTH_MAX {
            self.error(
                "SCHEMA_NESTED_TOO_DEEPLY",
                path,
                format!("the schemas nest deeper than {CHECK_DEPTH_MAX} levels"),
            );
            return;
        }
        self.depth += 1;
        self.schemas_nested(reader, writer, path);
        self.depth -= 1;
    }

    fn schemas_nested(&mut self, reader: &Schema, writer: &Schema, path: &str) {
        let reader = self.reader.resolve(reader);
        let writer = self.writer.resolve(writer);
        let (rk, wk) = (kind(reader), kind(writer));
        if wk == Kind::Union {
            // Every branch the writer may have written must be readable.
            if let Schema::Union(u) = writer {
                for (i, branch) in u.variants().iter().enumerate() {
                    if !self.quietly(reader, branch) {
                        let branch = self.writer.resolve(branch);
                        self.error(
                            "MISSING_UNION_BRANCH",
                            &format!("{path}/{i}"),
                            format!(
                                "The new schema is missing a type inside a union field at path \
                                 '{path}/{i}' in the old schema: {}",
                                kind_name(kind(branch))
                            ),
                        );
                    }
                }
            }
            return;
        }
        if rk == Kind::Union {
            if let Schema::Union(u) = reader {
                if !u.variants().iter().any(|b| self.quietly(b, writer)) {
                    self.error(
                        "MISSING_UNION_BRANCH",
                        path,
                        format!(
                            "The new schema is missing a type inside a union field at path \
                             '{path}' in the old schema: {}",
                            kind_name(wk)
                        ),
                    );
                }
            }
            return;
        }
        if rk != wk {
            if !promotes(wk, rk) {
                self.error(
                    "TYPE_MISMATCH",
                    path,
                    format!(
                        "The type (path '{path}') of a field in the new schema does not match \
                         with the old schema: reader type: {} not compatible with writer type: {}",
                        kind_name(rk),
                        kind_name(wk)
                    ),
                );
            }
            return;
        }
        match (reader, writer) {
            (Schema::Array(r), Schema::Array(w)) => {
                self.schemas(&r.items, &w.items, &format!("{path}/items"))
            }
            (Schema::Map(r), Schema::Map(w)) => {
                self.schemas(&r.types, &w.types, &format!("{path}/values"))
            }
            _ => self.named(reader, writer, path),
        }
    }

    fn named(&mut self, reader: &Schema, writer: &Schema, path: &str) {
        let reader = decimal_inner(reader);
        let writer = decimal_inner(writer);
        let (Some(rn), Some(wn)) = (full_name(reader), full_name(writer)) else {
            return; // same primitive kind
        };
        let (rfull, wfull) = (rn.fullname(None), wn.fullname(None));
        if rn.name != wn.name && !aliases(reader).contains(&wfull) {
            self.error(
                "NAME_MISMATCH",
                &format!("{path}/name"),
                format!(
                    "The name of the schema has changed (path '{path}/name'): expected: {wfull}, \
                     found: {rfull}"
                ),
            );
            return;
        }
        if !self.in_progress.insert((rfull.clone(), wfull.clone())) {
            return;
        }
        match (reader, writer) {
            (Schema::Record(r), Schema::Record(w)) => {
                for (i, rf) in r.fields.iter().enumerate() {
                    let found = w.fields.iter().find(|wf| {
                        wf.name == rf.name || rf.aliases.iter().flatten().any(|a| *a == wf.name)
                    });
                    let field_path = format!("{path}/fields/{i}");
                    match found {
                        Some(wf) => {
                            self.schemas(&rf.schema, &wf.schema, &format!("{field_path}/type"))
                        }
                        None if rf.default.is_none() => self.error(
                            "READER_FIELD_MISSING_DEFAULT_VALUE",
                            &field_path,
                            format!(
                                "The field '{}' at path '{field_path}' in the new schema has no \
                                 default value and is missing in the old schema",
                                rf.name
                            ),
                        ),
                        None => {}
                    }
                }
            }
            (Schema::Enum(r), Schema::Enum(w)) => {
                let missing: Vec<&String> = w
                    .symbols
                    .iter()
                    .filter(|s| !r.symbols.contains(s))
                    .collect();
                if !missing.is_empty() && r.default.is_none() {
                    let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                    self.error(
                        "MISSING_ENUM_SYMBOLS",
                        &format!("{path}/symbols"),
                        format!(
                            "The new schema is missing enum symbols '[{}]' at path \
                             '{path}/symbols' in the old schema",
                            list.join(", ")
                        ),
                    );
                }
            }
            (Schema::Fixed(r), Schema::Fixed(w)) if r.size != w.size => self.error(
                "FIXED_SIZE_MISMATCH",
                &format!("{path}/size"),
                format!(
                    "The size of FIXED type field at path '{path}/size' in the new schema does \
                     not match with the old schema: expected: {}, found: {}",
                    w.size, r.size
                ),
            ),
            _ => {}
        }
        self.in_progress.remove(&(rfull, wfull));
    }
}

fn decimal_inner(schema: &Schema) -> &Schema {
    match schema {
        Schema::Decimal(d) => &d.inner,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> AvroSchema {
        AvroSchema::parse(text, &[]).unwrap()
    }

    /// `reader` reads data written with `writer` exactly when `ok`.
    fn check(reader: &str, writer: &str, ok: bool) {
        let errors = can_read(&parse(reader), &parse(writer));
        assert_eq!(
            errors.is_empty(),
            ok,
            "reader {reader} writer {writer}: {errors:?}"
        );
    }

    fn record(fields: &str) -> String {
        format!(r#"{{"type":"record","name":"R","namespace":"n","fields":[{fields}]}}"#)
    }

    #[test]
    fn primitives_and_the_specifications_promotions() {
        // "int is promotable to long, float, or double; long to float or double; float to
        // double; string to bytes; bytes to string."
        for (writer, readers) in [
            ("int", &["int", "long", "float", "double"][..]),
            ("long", &["long", "float", "double"][..]),
            ("float", &["float", "double"][..]),
            ("string", &["string", "bytes"][..]),
            ("bytes", &["bytes", "string"][..]),
        ] {
            for reader in readers {
                check(&format!("\"{reader}\""), &format!("\"{writer}\""), true);
            }
        }
        for (writer, reader) in [
            ("long", "int"),
            ("double", "float"),
            ("float", "long"),
            ("string", "int"),
            ("boolean", "int"),
            ("null", "string"),
        ] {
            check(&format!("\"{reader}\""), &format!("\"{writer}\""), false);
        }
    }

    #[test]
    fn record_fields_need_defaults_when_the_writer_lacks_them() {
        let v1 = record(r#"{"name":"a","type":"string"}"#);
        let v2_default =
            record(r#"{"name":"a","type":"string"},{"name":"b","type":"int","default":0}"#);
        let v2_no_default = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int"}"#);
        // "if the reader's record schema has a field with no default value, and writer's
        // schema does not have a field with the same name, an error is signalled."
        check(&v2_default, &v1, true);
        check(&v2_no_default, &v1, false);
        // "the writer's fields that the reader lacks are ignored."
        check(&v1, &v2_no_default, true);
        // Matched by alias.
        let renamed = record(r#"{"name":"a2","aliases":["a"],"type":"string"}"#);
        check(&renamed, &v1, true);
        // Field types are resolved recursively, with promotions.
        check(
            &record(r#"{"name":"a","type":"long"}"#),
            &record(r#"{"name":"a","type":"int"}"#),
            true,
        );
        check(
            &record(r#"{"name":"a","type":"int"}"#),
            &record(r#"{"name":"a","type":"long"}"#),
            false,
        );
    }

    #[test]
    fn names_must_match_unless_aliased() {
        let a = r#"{"type":"record","name":"A","fields":[]}"#;
        let b = r#"{"type":"record","name":"B","fields":[]}"#;
        let b_alias = r#"{"type":"record","name":"B","aliases":["A"],"fields":[]}"#;
        check(b, a, false);
        check(b_alias, a, true);
    }

    #[test]
    fn enums_fixed_arrays_maps() {
        let e2 = r#"{"type":"enum","name":"E","symbols":["A","B"]}"#;
        let e3 = r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#;
        let e2_default = r#"{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}"#;
        // "if the writer's symbol is not present in the reader's enum and the reader has a
        // default value, then that value is used, otherwise an error is signalled."
        check(e3, e2, true);
        check(e2, e3, false);
        check(e2_default, e3, true);
        let f4 = r#"{"type":"fixed","name":"F","size":4}"#;
        let f8 = r#"{"type":"fixed","name":"F","size":8}"#;
        check(f4, f4, true);
        check(f8, f4, false);
        check(
            r#"{"type":"array","items":"long"}"#,
            r#"{"type":"array","items":"int"}"#,
            true,
        );
        check(
            r#"{"type":"array","items":"int"}"#,
            r#"{"type":"array","items":"long"}"#,
            false,
        );
        check(
            r#"{"type":"map","values":"double"}"#,
            r#"{"type":"map","values":"float"}"#,
            true,
        );
        check(
            r#"{"type":"map","values":"int"}"#,
            r#"{"type":"array","items":"int"}"#,
            false,
        );
    }

    #[test]
    fn unions() {
        // "if both are unions: the first schema in the reader's union that matches the
        // selected writer's union schema is recursively resolved against it; if none
        // match, an error is signalled."
        check(r#"["null","string","int"]"#, r#"["null","string"]"#, true);
        check(r#"["null","string"]"#, r#"["null","string","int"]"#, false);
        // "if reader's is a union, but writer's is not: the first schema in the reader's
        // union that matches the writer's schema is recursively resolved against it."
        check(r#"["null","long"]"#, r#""int""#, true);
        check(r#"["null","string"]"#, r#""int""#, false);
        // "if writer's is a union, but reader's is not: if the reader's schema matches the
        // selected writer's schema, it is recursively resolved against it."
        check(r#""long""#, r#"["int","long"]"#, true);
        check(r#""string""#, r#"["null","string"]"#, false);
    }

    #[test]
    fn logical_types_compare_as_their_underlying_types() {
        check(
            r#"{"type":"long","logicalType":"timestamp-millis"}"#,
            r#""long""#,
            true,
        );
        check(
            r#"{"type":"int","logicalType":"date"}"#,
            r#""string""#,
            false,
        );
    }

    #[test]
    fn recursive_types_terminate() {
        let list = r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","Node"]}]}"#;
        let list_long = r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","Node"]}]}"#;
        check(list_long, list, true);
        check(list, list_long, false);
    }

    #[test]
    fn references_resolve_named_types() {
        let address = ResolvedReference {
            name: "n.Address".into(),
            schema_type: super::super::SchemaType::Avro,
            schema: r#"{"type":"record","name":"Address","namespace":"n","fields":[{"name":"street","type":"string"}]}"#.into(),
        };
        let user = r#"{"type":"record","name":"User","namespace":"n","fields":[{"name":"home","type":"n.Address"}]}"#;
        let parsed = AvroSchema::parse(user, std::slice::from_ref(&address)).unwrap();
        assert!(can_read(&parsed, &parsed).is_empty());
        assert!(AvroSchema::parse(user, &[]).is_err());
    }

    #[test]
    fn malformed_schemas_are_errors() {
        for text in [
            "",
            "{",
            r#"{"type":"record","name":"R"}"#,
            r#"{"type":"nope"}"#,
            r#"{"type":"enum","name":"E","symbols":["A","A"]}"#,
        ] {
            assert!(AvroSchema::parse(text, &[]).is_err(), "{text}");
        }
    }

    #[test]
    fn canonical_text_drops_whitespace_only() {
        let s = parse("{ \"type\" : \"record\", \"name\": \"R\", \"fields\": [] }\n");
        assert_eq!(s.canonical(), r#"{"type":"record","name":"R","fields":[]}"#);
        assert_eq!(
            s.normalized(),
            r#"{"fields":[],"name":"R","type":"record"}"#
        );
        assert_eq!(
            s.parsing_canonical_form(),
            r#"{"name":"R","type":"record","fields":[]}"#
        );
    }
}
