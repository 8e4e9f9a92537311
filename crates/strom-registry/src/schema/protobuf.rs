//! Protobuf: `.proto` text (or a base64 `FileDescriptorProto`, as Confluent's Python
//! serializer sends) compiled with `protox`, imports served from the schema's references
//! and Google's well-known types; compatibility by Confluent's rules, which follow
//! Protobuf's wire-compatibility rules: messages are matched by name and fields by
//! number; adding and removing optional fields is compatible; changing a field's type is
//! not unless both types share a wire encoding group (int32/uint32/int64/uint64/bool,
//! sint32/sint64, fixed32/sfixed32, fixed64/sfixed64, string/bytes); required fields may
//! be neither added nor removed; reusing a number or name the other schema reserved is
//! refused.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use prost::Message as _;
use prost_reflect::{
    Cardinality, DescriptorPool, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor,
};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use super::ResolvedReference;

/// The file name the registered schema compiles under (its references keep theirs).
pub const ROOT_FILE: &str = "strom_registry_schema.proto";

/// A compiled Protobuf schema.
#[derive(Debug, Clone)]
pub struct ProtoSchema {
    pool: DescriptorPool,
    root: String,
    text: String,
}

struct MemoryResolver {
    files: HashMap<String, File>,
}

impl FileResolver for MemoryResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        self.files
            .get(name)
            .cloned()
            .ok_or_else(|| protox::Error::file_not_found(name))
    }
}

/// A file from `.proto` text, or from a base64 `FileDescriptorProto`.
fn load(name: &str, text: &str) -> Result<File, String> {
    let trimmed = text.trim();
    let looks_base64 = !trimmed.is_empty()
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=');
    if looks_base64 {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(trimmed) {
            if let Ok(mut proto) = prost_types::FileDescriptorProto::decode(bytes.as_slice()) {
                proto.name = Some(name.to_string());
                return Ok(File::from_file_descriptor_proto(proto));
            }
        }
    }
    File::from_source(name, text).map_err(|e| format!("{e}"))
}

impl ProtoSchema {
    pub fn parse(text: &str, references: &[ResolvedReference]) -> Result<ProtoSchema, String> {
        let mut files = HashMap::new();
        for r in references {
            files.insert(r.name.clone(), load(&r.name, &r.schema)?);
        }
        files.insert(ROOT_FILE.to_string(), load(ROOT_FILE, text)?);
        let mut chain = ChainFileResolver::new();
        chain.add(MemoryResolver { files });
        chain.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(chain);
        compiler.include_imports(true);
        compiler.open_file(ROOT_FILE).map_err(|e| format!("{e}"))?;
        Ok(ProtoSchema {
            pool: compiler.descriptor_pool(),
            root: ROOT_FILE.to_string(),
            text: text.trim().to_string(),
        })
    }

    pub fn canonical(&self) -> String {
        self.text.clone()
    }

    /// The `normalize=true` text: printed back from the compiled descriptor (see
    /// `proto_print`).
    pub fn normalized(&self) -> String {
        self.file()
            .map_or_else(|| self.text.clone(), |f| super::proto_print::print_file(&f))
    }

    fn file(&self) -> Option<FileDescriptor> {
        self.pool.get_file_by_name(&self.root)
    }

    /// The compiled root file as a base64 `FileDescriptorProto` (Confluent's
    /// `format=serialized`, which its Python deserializer asks for).
    pub fn serialized(&self) -> String {
        let bytes = self
            .file()
            .map(|f| f.file_descriptor_proto().encode_to_vec())
            .unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// The full name of the message at `indexes` (Confluent's message-index path).
    pub fn message_name(&self, indexes: &[usize]) -> Option<String> {
        let file = self.file()?;
        let (first, rest) = indexes.split_first()?;
        let mut message = file.messages().nth(*first)?;
        for i in rest {
            let child = message.child_messages().nth(*i)?;
            message = child;
        }
        Some(message.full_name().to_string())
    }

    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// The first message of the root file (what a serializer writes by default).
    pub fn first_message(&self) -> Option<MessageDescriptor> {
        self.file()?.messages().next()
    }

    /// Messages of the root file by name below the package (nested ones too).
    fn messages(&self) -> BTreeMap<String, MessageDescriptor> {
        let mut out = BTreeMap::new();
        if let Some(file) = self.file() {
            let package = file.package_name().to_string();
            let mut stack: Vec<MessageDescriptor> = file.messages().collect();
            while let Some(m) = stack.pop() {
                if m.is_map_entry() {
                    continue;
                }
                stack.extend(m.child_messages());
                out.insert(local_name(&package, m.full_name()), m);
            }
        }
        out
    }
}

fn local_name(package: &str, full: &str) -> String {
    if package.is_empty() {
        return full.to_string();
    }
    full.strip_prefix(package)
        .and_then(|s| s.strip_prefix('.'))
        .unwrap_or(full)
        .to_string()
}

/// The wire-encoding group of a scalar kind (values of one group read as each other).
fn scalar_group(kind: &Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Int32 | Kind::Uint32 | Kind::Int64 | Kind::Uint64 | Kind::Bool | Kind::Enum(_) => {
            "varint"
        }
        Kind::Sint32 | Kind::Sint64 => "zigzag",
        Kind::Fixed32 | Kind::Sfixed32 => "fixed32",
        Kind::Fixed64 | Kind::Sfixed64 => "fixed64",
        Kind::Float => "float",
        Kind::Double => "double",
        Kind::String | Kind::Bytes => "string_or_bytes",
        Kind::Message(_) => return None,
    })
}

/// The reasons `reader` and data written with `writer` disagree on the wire (Confluent
/// checks Protobuf symmetrically: the original is the writer, the update the reader).
pub fn can_read(reader: &ProtoSchema, writer: &ProtoSchema) -> Vec<String> {
    let mut errors = Vec::new();
    let (Some(wf), Some(rf)) = (writer.file(), reader.file()) else {
        return vec!["the schema has no root file".into()];
    };
    if wf.package_name() != rf.package_name() {
        errors.push(format!(
            "{{errorType:'PACKAGE_CHANGED', description:'package {:?} became {:?}'}}",
            wf.package_name(),
            rf.package_name()
        ));
    }
    let updated = reader.messages();
    for (name, original) in writer.messages() {
        match updated.get(&name) {
            None => errors.push(format!(
                "{{errorType:'MESSAGE_REMOVED', description:'message {name} was removed'}}"
            )),
            Some(update) => compare_message(&name, &original, update, &mut errors),
        }
    }
    errors
}

fn error(errors: &mut Vec<String>, kind: &str, path: &str) {
    errors.push(format!("{{errorType:'{kind}', description:'at {path}'}}"));
}

fn compare_message(
    name: &str,
    original: &MessageDescriptor,
    update: &MessageDescriptor,
    errors: &mut Vec<String>,
) {
    let required = |f: &FieldDescriptor| f.cardinality() == Cardinality::Required;
    let real_oneof = |f: &FieldDescriptor| {
        f.containing_oneof()
            .filter(|o| !o.is_synthetic())
            .map(|o| o.name().to_string())
    };
    for of in original.fields() {
        let path = format!("{name}.{}", of.number());
        match update.get_field(of.number()) {
            None => {
                if required(&of) {
                    error(errors, "REQUIRED_FIELD_REMOVED", &path);
                } else if real_oneof(&of).is_some() {
                    error(errors, "ONEOF_FIELD_REMOVED", &path);
                }
            }
            Some(uf) => {
                if required(&of) != required(&uf) {
                    let kind = if required(&uf) {
                        "REQUIRED_FIELD_ADDED"
                    } else {
                        "REQUIRED_FIELD_REMOVED"
                    };
                    error(errors, kind, &path);
                }
                compare_field(&path, &of, &uf, errors);
            }
        }
    }
    let reserved_number =
        |m: &MessageDescriptor, n: u32| m.reserved_ranges().any(|r| r.contains(&n));
    for uf in update.fields() {
        let path = format!("{name}.{}", uf.number());
        if original.get_field(uf.number()).is_none() {
            if required(&uf) {
                error(errors, "REQUIRED_FIELD_ADDED", &path);
            }
            if reserved_number(original, uf.number()) {
                error(errors, "FIELD_NUMBER_RESERVED", &path);
            }
            if original.reserved_names().any(|n| n == uf.name()) {
                error(errors, "FIELD_NAME_RESERVED", &path);
            }
        }
    }
    // Fields moved into a oneof: one into a new oneof is fine; more, or into an existing
    // oneof, changes how the wire data is read.
    let mut moved: BTreeMap<String, usize> = BTreeMap::new();
    for uf in update.fields() {
        let (Some(oneof), Some(of)) = (real_oneof(&uf), original.get_field(uf.number())) else {
            continue;
        };
        if real_oneof(&of).is_none() {
            *moved.entry(oneof).or_default() += 1;
        }
    }
    for (oneof, count) in moved {
        let existed = original
            .oneofs()
            .any(|o| o.name() == oneof && !o.is_synthetic());
        if existed {
            error(
                errors,
                "FIELD_MOVED_TO_EXISTING_ONEOF",
                &format!("{name}.{oneof}"),
            );
        } else if count > 1 {
            error(
                errors,
                "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
                &format!("{name}.{oneof}"),
            );
        }
    }
}

fn compare_field(path: &str, of: &FieldDescriptor, uf: &FieldDescriptor, errors: &mut Vec<String>) {
    if of.is_map() != uf.is_map() {
        error(errors, "FIELD_KIND_CHANGED", path);
        return;
    }
    let (ok, uk) = (of.kind(), uf.kind());
    if of.is_map() {
        if let (Kind::Message(om), Kind::Message(um)) = (&ok, &uk) {
            let pairs = [
                (om.map_entry_key_field(), um.map_entry_key_field()),
                (om.map_entry_value_field(), um.map_entry_value_field()),
            ];
            for (a, b) in pairs {
                compare_field(path, &a, &b, errors);
            }
        }
        return;
    }
    match (&ok, &uk) {
        (Kind::Message(om), Kind::Message(um)) => {
            let local = |m: &MessageDescriptor| local_name(m.package_name(), m.full_name());
            if local(om) != local(um) {
                error(errors, "FIELD_NAMED_TYPE_CHANGED", path);
            }
        }
        (Kind::Message(_), _) | (_, Kind::Message(_)) => {
            error(errors, "FIELD_KIND_CHANGED", path);
        }
        _ => {
            if scalar_group(&ok) != scalar_group(&uk) {
                error(errors, "FIELD_SCALAR_KIND_CHANGED", path);
            } else if of.is_list() != uf.is_list() && scalar_group(&ok) != Some("string_or_bytes") {
                error(errors, "FIELD_NUMERIC_LABEL_CHANGED", path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ProtoSchema {
        ProtoSchema::parse(text, &[]).unwrap()
    }

    fn message(body: &str) -> String {
        format!("syntax = \"proto3\";\npackage p;\nmessage M {{\n{body}\n}}\n")
    }

    /// `update` and data of `original` agree exactly when `ok`.
    fn check(original: &str, update: &str, ok: bool) {
        let errors = can_read(&parse(update), &parse(original));
        assert_eq!(
            errors.is_empty(),
            ok,
            "original {original} update {update}: {errors:?}"
        );
    }

    /// A schema with most of what a `.proto` can say, in proto2 (labels, defaults,
    /// groups, extensions) and proto3 (maps, oneofs, optional, services).
    const RICH_PROTO3: &str = r#"
        // leading comment
        syntax = "proto3";
        package shop.v1;
        import "google/protobuf/timestamp.proto";
        import "google/protobuf/descriptor.proto";
        option java_package = "com.example.shop";
        option go_package = "example.com/shop";
        extend google.protobuf.FieldOptions { string sensitive = 50001; }
        message Order {
          option deprecated = true;
          reserved 9, 12 to 15, 100 to max;
          reserved "legacy", "old";
          string id = 1 [(sensitive) = "pii", json_name = "orderId"];
          map<string, Line> lines = 2;
          oneof payment { string card = 3; Cash cash = 4; }
          optional int64 discount = 5 [deprecated = true];
          repeated int32 codes = 6 [packed = false];
          google.protobuf.Timestamp at = 7;
          Status status = 8;
          message Line { string sku = 1; uint32 qty = 2; }
          message Cash { bytes note = 1; }
          enum Status { option allow_alias = true; NEW = 0; OPEN = 1; STARTED = 1; reserved 5 to 7; reserved "GONE"; }
        }
        enum Kind { KIND_UNSPECIFIED = 0; KIND_A = 1 [deprecated = true]; }
        service Orders {
          rpc Get (Order) returns (Order);
          rpc Watch (stream Order) returns (stream Order) { option deprecated = true; }
        }
    "#;

    const RICH_PROTO2: &str = r#"
        syntax = "proto2";
        package legacy;
        message Old {
          required string name = 1 [default = "a \"q\" b"];
          optional int32 n = 2 [default = -7];
          optional bytes raw = 3 [default = "\001x"];
          optional Color color = 4 [default = GREEN];
          repeated group Item = 5 { optional string label = 6; }
          extensions 100 to 199;
        }
        enum Color { RED = 1; GREEN = 2; }
        extend Old { optional string note = 100; }
    "#;

    /// The root file's descriptor without source positions (what compiling produced).
    fn descriptor(schema: &ProtoSchema) -> prost_types::FileDescriptorProto {
        let mut proto = schema.file().unwrap().file_descriptor_proto().clone();
        proto.source_code_info = None;
        // Normalizing sorts imports, which is all it may change here.
        proto.dependency.sort();
        proto
    }

    #[test]
    fn normalized_text_compiles_to_the_same_descriptor() {
        for text in [RICH_PROTO3, RICH_PROTO2] {
            let original = parse(text);
            let normalized = original.normalized();
            let reparsed = ProtoSchema::parse(&normalized, &[])
                .unwrap_or_else(|e| panic!("normalized text does not compile: {e}\n{normalized}"));
            assert_eq!(descriptor(&reparsed), descriptor(&original), "{normalized}");
            // Normalizing is idempotent.
            assert_eq!(reparsed.normalized(), normalized);
        }
        // Custom options (which the typed descriptor above does not hold) are kept.
        let normalized = parse(RICH_PROTO3).normalized();
        assert!(
            normalized
                .contains(r#"string id = 1 [json_name = "orderId", (shop.v1.sensitive) = "pii"];"#),
            "{normalized}"
        );
    }

    #[test]
    fn normalizing_ignores_comments_layout_naming_and_option_order() {
        let a = r#"syntax = "proto3"; package p;
            import "google/protobuf/timestamp.proto"; import "google/protobuf/duration.proto";
            option java_package = "x"; option go_package = "y";
            message M { google.protobuf.Timestamp t = 1; N n = 2 [json_name = "nn", deprecated = true]; }
            message N { int32 v = 1; }"#;
        let b = r#"
            // The same schema, written differently.
            syntax = "proto3";
            package p;
            import "google/protobuf/duration.proto";
            import "google/protobuf/timestamp.proto";
            option go_package = "y";
            option java_package = "x";
            message M {
              .google.protobuf.Timestamp t = 1; /* fully qualified */
              .p.N n = 2 [deprecated = true, json_name = "nn"];
            }
            message N {
              int32 v = 1;
            }
        "#;
        assert_ne!(parse(a).canonical(), parse(b).canonical());
        assert_eq!(parse(a).normalized(), parse(b).normalized());
        // Message order carries meaning (message indexes) and is kept.
        let swapped = r#"syntax = "proto3"; package p; message N { int32 v = 1; }
            message M { google.protobuf.Timestamp t = 1; N n = 2 [json_name = "nn", deprecated = true]; }
            import "google/protobuf/timestamp.proto";"#;
        assert_ne!(parse(a).normalized(), parse(swapped).normalized());
    }

    #[test]
    fn adding_and_removing_fields_is_compatible() {
        let v1 = message("string a = 1;");
        let v2 = message("string a = 1;\n int32 b = 2;");
        check(&v1, &v2, true);
        check(&v2, &v1, true);
        // Renaming keeps the number, which is all the wire has.
        check(&v1, &message("string renamed = 1;"), true);
    }

    #[test]
    fn types_change_only_within_a_wire_group() {
        // "int32, uint32, int64, uint64, and bool are all compatible"; "sint32 and sint64
        // are compatible with each other"; "string and bytes are compatible as long as the
        // bytes are valid UTF-8"; "fixed32 is compatible with sfixed32, and fixed64 with
        // sfixed64".
        for (a, b, ok) in [
            ("int32", "int64", true),
            ("uint32", "bool", true),
            ("sint32", "sint64", true),
            ("fixed32", "sfixed32", true),
            ("fixed64", "sfixed64", true),
            ("string", "bytes", true),
            ("int32", "sint32", false),
            ("int32", "string", false),
            ("float", "double", false),
            ("fixed32", "fixed64", false),
        ] {
            check(
                &message(&format!("{a} f = 1;")),
                &message(&format!("{b} f = 1;")),
                ok,
            );
        }
        check(
            &message("string f = 1;\nmessage N { int32 x = 1; }"),
            &message("N f = 1;\nmessage N { int32 x = 1; }"),
            false,
        );
    }

    #[test]
    fn labels_messages_oneofs_reserved() {
        check(
            &message("int32 f = 1;"),
            &message("repeated int32 f = 1;"),
            false,
        );
        check(
            &message("string f = 1;"),
            &message("repeated string f = 1;"),
            true,
        );
        let two = "syntax = \"proto3\";\nmessage A { int32 x = 1; }\nmessage B { int32 y = 1; }";
        let one = "syntax = \"proto3\";\nmessage A { int32 x = 1; }";
        check(one, two, true);
        check(two, one, false);
        check(
            "syntax = \"proto3\";\npackage a;\nmessage M { int32 x = 1; }",
            "syntax = \"proto3\";\npackage b;\nmessage M { int32 x = 1; }",
            false,
        );
        check(
            &message("int32 a = 1;"),
            &message("oneof o { int32 a = 1; }"),
            true,
        );
        check(
            &message("int32 a = 1;\nint32 b = 2;"),
            &message("oneof o { int32 a = 1; int32 b = 2; }"),
            false,
        );
        check(
            &message("oneof o { int32 a = 1; int32 b = 2; }"),
            &message("oneof o { int32 a = 1; }"),
            false,
        );
        check(
            &message("reserved 2;\nint32 a = 1;"),
            &message("int32 a = 1;\nint32 b = 2;"),
            false,
        );
        check(
            &message("reserved \"b\";\nint32 a = 1;"),
            &message("int32 a = 1;\nint32 b = 2;"),
            false,
        );
    }

    #[test]
    fn proto2_required_fields() {
        let v1 = "syntax = \"proto2\";\nmessage M { optional int32 a = 1; }";
        let v2 = "syntax = \"proto2\";\nmessage M { optional int32 a = 1; required int32 b = 2; }";
        check(v1, v2, false);
        check(v2, v1, false);
    }

    #[test]
    fn references_and_well_known_types_resolve() {
        let dep = ResolvedReference {
            name: "dep.proto".into(),
            schema_type: super::super::SchemaType::Protobuf,
            schema: "syntax = \"proto3\";\npackage d;\nmessage D { int32 x = 1; }".into(),
        };
        let main = "syntax = \"proto3\";\nimport \"dep.proto\";\nimport \"google/protobuf/timestamp.proto\";\nmessage M { d.D dep = 1; google.protobuf.Timestamp at = 2; }";
        let s = ProtoSchema::parse(main, &[dep]).unwrap();
        assert!(can_read(&s, &s).is_empty());
        assert!(ProtoSchema::parse(main, &[]).is_err());
    }

    #[test]
    fn base64_descriptors_round_trip() {
        let s = parse(&message("string a = 1;"));
        let again = parse(&s.serialized());
        assert!(can_read(&again, &s).is_empty());
        assert_eq!(again.message_name(&[0]).as_deref(), Some("p.M"));
    }

    #[test]
    fn malformed_schemas_are_errors() {
        for text in [
            "message {",
            "syntax = \"proto3\"; message M { int32 a = 0; }",
            "message M { Unknown a = 1; }",
        ] {
            assert!(ProtoSchema::parse(text, &[]).is_err(), "{text:?}");
        }
    }
}
