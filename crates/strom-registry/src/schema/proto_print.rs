//! Protobuf's `normalize=true` form: the schema printed back from its compiled
//! descriptor, so that texts which differ only in comments, whitespace, how a type is
//! named (short or fully qualified), the order of options or of imports, compile and
//! print to the same text (and so get the same id), as Confluent's normalization does.
//!
//! What is kept as declared, because it carries meaning: the order of messages, enums and
//! services (Confluent's serializers address messages by their index) and of fields.
//! Types are written fully qualified with a leading dot; options sorted by name; imports
//! sorted; `json_name` only when it differs from the default protoc derives.

use std::fmt::Write as _;

use prost_reflect::{DynamicMessage, FileDescriptor, Kind, Value};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, ServiceDescriptorProto,
};

/// Prints `file` in the normalized form.
pub fn print_file(file: &FileDescriptor) -> String {
    let proto = file.file_descriptor_proto();
    let mut p = Printer {
        out: String::new(),
        file: file.clone(),
        editions: proto.syntax.as_deref() == Some("editions"),
        proto3: proto.syntax.as_deref() == Some("proto3"),
    };
    match proto.syntax.as_deref() {
        // The descriptor type here does not carry the edition; 2023 is the only one
        // the compiler accepts.
        Some("editions") => p.line(0, "edition = \"2023\";"),
        Some("proto3") => p.line(0, "syntax = \"proto3\";"),
        _ => p.line(0, "syntax = \"proto2\";"),
    }
    if let Some(package) = proto.package.as_deref().filter(|s| !s.is_empty()) {
        p.line(0, &format!("package {package};"));
    }
    let mut imports: Vec<(String, &str)> = proto
        .dependency
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let index = i32::try_from(i).unwrap_or(i32::MAX);
            let kind = if proto.public_dependency.contains(&index) {
                "public "
            } else if proto.weak_dependency.contains(&index) {
                "weak "
            } else {
                ""
            };
            (name.clone(), kind)
        })
        .collect();
    imports.sort();
    for (name, kind) in imports {
        p.line(0, &format!("import {kind}{};", quote(name.as_bytes())));
    }
    p.options(0, &file.options());
    let package = proto.package.clone().unwrap_or_default();
    for message in &proto.message_type {
        p.message(0, &package, message);
    }
    for e in &proto.enum_type {
        p.enumeration(0, &package, e);
    }
    for service in &proto.service {
        p.service(&package, service);
    }
    p.extends(0, &package, &proto.extension);
    p.out
}

struct Printer {
    out: String,
    file: FileDescriptor,
    editions: bool,
    proto3: bool,
}

fn full_name(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}.{name}")
    }
}

impl Printer {
    fn line(&mut self, depth: usize, text: &str) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// `option name = value;` lines, sorted by name.
    fn options(&mut self, depth: usize, options: &DynamicMessage) {
        for (name, value) in option_list(options) {
            self.line(depth, &format!("option {name} = {value};"));
        }
    }

    fn message(&mut self, depth: usize, scope: &str, message: &DescriptorProto) {
        let name = message.name();
        let full = full_name(scope, name);
        self.line(depth, &format!("message {name} {{"));
        self.message_body(depth + 1, &full, message);
        self.line(depth, "}");
    }

    fn message_body(&mut self, depth: usize, full: &str, message: &DescriptorProto) {
        if let Some(descriptor) = self.file.parent_pool().get_message_by_name(full) {
            self.options(depth, &descriptor.options());
        }
        let mut oneof_printed = vec![false; message.oneof_decl.len()];
        for field in &message.field {
            let oneof = field
                .oneof_index
                .filter(|_| !field.proto3_optional())
                .and_then(|i| usize::try_from(i).ok())
                .filter(|i| *i < message.oneof_decl.len());
            match oneof {
                Some(i) => {
                    if oneof_printed[i] {
                        continue;
                    }
                    oneof_printed[i] = true;
                    let decl = &message.oneof_decl[i];
                    self.line(depth, &format!("oneof {} {{", decl.name()));
                    if let Some(descriptor) = self
                        .file
                        .parent_pool()
                        .get_message_by_name(full)
                        .and_then(|m| m.oneofs().find(|o| o.name() == decl.name()))
                    {
                        self.options(depth + 1, &descriptor.options());
                    }
                    let members: Vec<&FieldDescriptorProto> = message
                        .field
                        .iter()
                        .filter(|f| {
                            !f.proto3_optional()
                                && f.oneof_index.and_then(|x| usize::try_from(x).ok()) == Some(i)
                        })
                        .collect();
                    for member in members {
                        self.field(depth + 1, full, message, member, true);
                    }
                    self.line(depth, "}");
                }
                None => self.field(depth, full, message, field, false),
            }
        }
        for nested in &message.nested_type {
            let is_map_entry = nested
                .options
                .as_ref()
                .and_then(|o| o.map_entry)
                .unwrap_or(false);
            let is_group = message
                .field
                .iter()
                .any(|f| f.r#type() == Type::Group && last_segment(f.type_name()) == nested.name());
            if !is_map_entry && !is_group {
                self.message(depth, full, nested);
            }
        }
        for e in &message.enum_type {
            self.enumeration(depth, full, e);
        }
        self.extends(depth, full, &message.extension);
        for range in &message.extension_range {
            let (start, end) = (range.start(), range.end().saturating_sub(1));
            let end = if end >= 536_870_911 {
                "max".to_string()
            } else {
                end.to_string()
            };
            self.line(depth, &format!("extensions {start} to {end};"));
        }
        if !message.reserved_range.is_empty() {
            let ranges: Vec<String> = message
                .reserved_range
                .iter()
                .map(|r| {
                    let (start, end) = (r.start(), r.end().saturating_sub(1));
                    if start == end {
                        start.to_string()
                    } else if end >= 536_870_911 {
                        format!("{start} to max")
                    } else {
                        format!("{start} to {end}")
                    }
                })
                .collect();
            self.line(depth, &format!("reserved {};", ranges.join(", ")));
        }
        self.reserved_names(depth, &message.reserved_name);
    }

    fn reserved_names(&mut self, depth: usize, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let quoted: Vec<String> = if self.editions {
            names.to_vec()
        } else {
            names.iter().map(|n| quote(n.as_bytes())).collect()
        };
        self.line(depth, &format!("reserved {};", quoted.join(", ")));
    }

    /// One field line (`in_oneof`: no label); `parent` holds map entries and groups.
    fn field(
        &mut self,
        depth: usize,
        scope: &str,
        parent: &DescriptorProto,
        field: &FieldDescriptorProto,
        in_oneof: bool,
    ) {
        let label = match field.label() {
            Label::Repeated => "repeated ",
            _ if in_oneof => "",
            Label::Required if !self.editions => "required ",
            Label::Optional if field.proto3_optional() => "optional ",
            Label::Optional if !self.proto3 && !self.editions => "optional ",
            _ => "",
        };
        let map_entry = (field.r#type() == Type::Message && field.label() == Label::Repeated)
            .then(|| {
                parent.nested_type.iter().find(|n| {
                    n.options
                        .as_ref()
                        .and_then(|o| o.map_entry)
                        .unwrap_or(false)
                        && last_segment(field.type_name()) == n.name()
                })
            })
            .flatten();
        let options = self.field_options(scope, field);
        let suffix = if options.is_empty() {
            String::new()
        } else {
            format!(" [{}]", options.join(", "))
        };
        if let Some(entry) = map_entry {
            let key = entry.field.iter().find(|f| f.number() == 1);
            let value = entry.field.iter().find(|f| f.number() == 2);
            if let (Some(key), Some(value)) = (key, value) {
                self.line(
                    depth,
                    &format!(
                        "map<{}, {}> {} = {}{suffix};",
                        type_name(key),
                        type_name(value),
                        field.name(),
                        field.number()
                    ),
                );
                return;
            }
        }
        if field.r#type() == Type::Group {
            let group_name = last_segment(field.type_name()).to_string();
            let group = parent.nested_type.iter().find(|n| n.name() == group_name);
            self.line(
                depth,
                &format!("{label}group {group_name} = {}{suffix} {{", field.number()),
            );
            if let Some(group) = group {
                let full = full_name(scope, &group_name);
                self.message_body(depth + 1, &full, group);
            }
            self.line(depth, "}");
            return;
        }
        self.line(
            depth,
            &format!(
                "{label}{} {} = {}{suffix};",
                type_name(field),
                field.name(),
                field.number()
            ),
        );
    }

    /// `default`, `json_name` (when not protoc's own) and the field's options, sorted.
    fn field_options(&self, scope: &str, field: &FieldDescriptorProto) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(default) = field.default_value.as_deref() {
            let value = match field.r#type() {
                Type::String => quote(default.as_bytes()),
                // protoc stores a bytes default C-escaped already.
                Type::Bytes => format!("\"{default}\""),
                _ => default.to_string(),
            };
            out.push(format!("default = {value}"));
        }
        if let Some(json) = field.json_name.as_deref() {
            if json != default_json_name(field.name()) {
                out.push(format!("json_name = {}", quote(json.as_bytes())));
            }
        }
        let pool = self.file.parent_pool();
        let options = pool
            .get_message_by_name(scope)
            .and_then(|m| m.get_field(u32::try_from(field.number()).unwrap_or(0)))
            .map(|f| f.options())
            .or_else(|| {
                let name = full_name(scope, field.name());
                pool.get_extension_by_name(&name).map(|e| e.options())
            });
        if let Some(options) = options {
            for (name, value) in option_list(&options) {
                out.push(format!("{name} = {value}"));
            }
        }
        out
    }

    fn enumeration(&mut self, depth: usize, scope: &str, e: &EnumDescriptorProto) {
        let full = full_name(scope, e.name());
        self.line(depth, &format!("enum {} {{", e.name()));
        let descriptor = self.file.parent_pool().get_enum_by_name(&full);
        if let Some(descriptor) = &descriptor {
            self.options(depth + 1, &descriptor.options());
        }
        for value in &e.value {
            let options = descriptor
                .as_ref()
                .and_then(|d| d.get_value_by_name(value.name()))
                .map(|v| option_list(&v.options()))
                .unwrap_or_default();
            let suffix = if options.is_empty() {
                String::new()
            } else {
                let parts: Vec<String> = options
                    .into_iter()
                    .map(|(n, v)| format!("{n} = {v}"))
                    .collect();
                format!(" [{}]", parts.join(", "))
            };
            self.line(
                depth + 1,
                &format!("{} = {}{suffix};", value.name(), value.number()),
            );
        }
        if !e.reserved_range.is_empty() {
            let ranges: Vec<String> = e
                .reserved_range
                .iter()
                .map(|r| {
                    let (start, end) = (r.start(), r.end());
                    if start == end {
                        start.to_string()
                    } else if end == i32::MAX {
                        format!("{start} to max")
                    } else {
                        format!("{start} to {end}")
                    }
                })
                .collect();
            self.line(depth + 1, &format!("reserved {};", ranges.join(", ")));
        }
        self.reserved_names(depth + 1, &e.reserved_name);
        self.line(depth, "}");
    }

    fn service(&mut self, scope: &str, service: &ServiceDescriptorProto) {
        let full = full_name(scope, service.name());
        self.line(0, &format!("service {} {{", service.name()));
        let descriptor = self.file.parent_pool().get_service_by_name(&full);
        if let Some(descriptor) = &descriptor {
            self.options(1, &descriptor.options());
        }
        for method in &service.method {
            let stream = |on: bool| if on { "stream " } else { "" };
            let head = format!(
                "rpc {} ({}{}) returns ({}{})",
                method.name(),
                stream(method.client_streaming()),
                qualified(method.input_type()),
                stream(method.server_streaming()),
                qualified(method.output_type()),
            );
            let options = descriptor
                .as_ref()
                .and_then(|d| d.methods().find(|m| m.name() == method.name()))
                .map(|m| option_list(&m.options()))
                .unwrap_or_default();
            if options.is_empty() {
                self.line(1, &format!("{head};"));
            } else {
                self.line(1, &format!("{head} {{"));
                for (name, value) in options {
                    self.line(2, &format!("option {name} = {value};"));
                }
                self.line(1, "}");
            }
        }
        self.line(0, "}");
    }

    /// `extend` blocks, one per extendee in the order first declared.
    fn extends(&mut self, depth: usize, scope: &str, extensions: &[FieldDescriptorProto]) {
        let mut extendees: Vec<&str> = Vec::new();
        for e in extensions {
            if !extendees.contains(&e.extendee()) {
                extendees.push(e.extendee());
            }
        }
        let empty = DescriptorProto::default();
        for extendee in extendees {
            self.line(depth, &format!("extend {} {{", qualified(extendee)));
            for e in extensions.iter().filter(|e| e.extendee() == extendee) {
                self.field(depth + 1, scope, &empty, e, false);
            }
            self.line(depth, "}");
        }
    }
}

/// A type reference as written: scalars by keyword, others fully qualified.
fn type_name(field: &FieldDescriptorProto) -> String {
    match field.r#type() {
        Type::Double => "double".into(),
        Type::Float => "float".into(),
        Type::Int64 => "int64".into(),
        Type::Uint64 => "uint64".into(),
        Type::Int32 => "int32".into(),
        Type::Fixed64 => "fixed64".into(),
        Type::Fixed32 => "fixed32".into(),
        Type::Bool => "bool".into(),
        Type::String => "string".into(),
        Type::Bytes => "bytes".into(),
        Type::Uint32 => "uint32".into(),
        Type::Sfixed32 => "sfixed32".into(),
        Type::Sfixed64 => "sfixed64".into(),
        Type::Sint32 => "sint32".into(),
        Type::Sint64 => "sint64".into(),
        Type::Group | Type::Message | Type::Enum => qualified(field.type_name()),
    }
}

/// A resolved name as descriptors hold it (`.pkg.Type`), kept with its leading dot so
/// that it can never resolve to anything else.
fn qualified(name: &str) -> String {
    if name.starts_with('.') {
        name.to_string()
    } else {
        format!(".{name}")
    }
}

fn last_segment(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// protoc's default JSON name: underscores dropped, the letter after each upper-cased.
fn default_json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The set options of an options message (fields and extensions) as `(name, value)`
/// pairs sorted by name; repeated options give one pair per element.
fn option_list(options: &DynamicMessage) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (field, value) in options.fields() {
        push_option(&mut out, field.name().to_string(), &field.kind(), value);
    }
    for (ext, value) in options.extensions() {
        push_option(
            &mut out,
            format!("({})", ext.full_name()),
            &ext.kind(),
            value,
        );
    }
    // Stable: repeated values keep their order under one name.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn push_option(out: &mut Vec<(String, String)>, name: String, kind: &Kind, value: &Value) {
    match value {
        Value::List(items) => {
            for item in items {
                out.push((name.clone(), value_text(kind, item)));
            }
        }
        other => out.push((name, value_text(kind, other))),
    }
}

fn value_text(kind: &Kind, value: &Value) -> String {
    match value {
        Value::Bool(v) => v.to_string(),
        Value::I32(v) => v.to_string(),
        Value::I64(v) => v.to_string(),
        Value::U32(v) => v.to_string(),
        Value::U64(v) => v.to_string(),
        Value::F32(v) => float_text(f64::from(*v)),
        Value::F64(v) => float_text(*v),
        Value::String(s) => quote(s.as_bytes()),
        Value::Bytes(b) => quote(b),
        Value::EnumNumber(n) => match kind {
            Kind::Enum(e) => e
                .get_value(*n)
                .map_or_else(|| n.to_string(), |v| v.name().to_string()),
            _ => n.to_string(),
        },
        Value::Message(m) => format!("{{ {} }}", m.to_text_format()),
        Value::List(items) => {
            let parts: Vec<String> = items.iter().map(|i| value_text(kind, i)).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Map(_) => "{}".to_string(),
    }
}

fn float_text(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else {
        format!("{v:?}")
    }
}

/// A proto string literal: printable ASCII as is, everything else octal-escaped.
fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push('"');
    out
}
