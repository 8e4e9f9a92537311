//! JSON Schema: parsed as JSON and checked for the keywords' shapes; compatibility by
//! Confluent's rules, which compare an original schema with an update and allow the
//! changes after which the update accepts every document the original accepted: types
//! extended, bounds relaxed, properties added to a closed content model or removed from an
//! open one, required properties only with defaults, enums extended, sum types extended.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::{Map, Value};

use super::{minify_json, ResolvedReference};

/// Most `$ref` hops followed in one comparison (recursive schemas end here at worst).
const REF_HOPS_MAX: usize = 10_000;

/// A parsed JSON Schema and the documents its `$ref`s may name.
#[derive(Debug, Clone)]
pub struct JsonSchema {
    pub root: Value,
    documents: BTreeMap<String, Value>,
    text: String,
}

const TYPES: [&str; 7] = [
    "null", "boolean", "object", "array", "number", "string", "integer",
];

impl JsonSchema {
    pub fn parse(text: &str, references: &[ResolvedReference]) -> Result<JsonSchema, String> {
        let root: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        validate(&root, "#")?;
        let mut documents = BTreeMap::new();
        for r in references {
            let doc: Value = serde_json::from_str(&r.schema)
                .map_err(|e| format!("referenced schema {}: not JSON: {e}", r.name))?;
            validate(&doc, &r.name)?;
            documents.insert(r.name.clone(), doc);
        }
        let schema = JsonSchema {
            root,
            documents,
            text: minify_json(text.trim()),
        };
        schema.check_refs(&schema.root, None, 0)?;
        Ok(schema)
    }

    pub fn canonical(&self) -> String {
        self.text.clone()
    }

    pub fn normalized(&self) -> String {
        self.root.to_string()
    }

    /// Every `$ref` names something that exists.
    fn check_refs(&self, value: &Value, doc: Option<&str>, depth: usize) -> Result<(), String> {
        if depth > super::NESTING_DEPTH_MAX {
            return Err("the schema nests too deeply".into());
        }
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    if self.resolve_ref(r, doc).is_none() {
                        return Err(format!("$ref {r:?} cannot be resolved"));
                    }
                }
                for v in map.values() {
                    self.check_refs(v, doc, depth + 1)?;
                }
            }
            Value::Array(items) => {
                for v in items {
                    self.check_refs(v, doc, depth + 1)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The schema `$ref` points at and the document it is in (`None`: the root document).
    fn resolve_ref<'a>(
        &'a self,
        reference: &str,
        doc: Option<&'a str>,
    ) -> Option<(&'a Value, Option<&'a str>)> {
        let (name, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let (document, doc) = if name.is_empty() {
            match doc {
                None => (&self.root, None),
                Some(d) => (self.documents.get(d)?, Some(d)),
            }
        } else {
            let (key, value) = self.documents.get_key_value(name)?;
            (value, Some(key.as_str()))
        };
        let target = if pointer.is_empty() {
            document
        } else {
            document.pointer(pointer)?
        };
        Some((target, doc))
    }
}

fn validate(value: &Value, path: &str) -> Result<(), String> {
    let map = match value {
        Value::Bool(_) => return Ok(()),
        Value::Object(map) => map,
        _ => return Err(format!("{path}: a schema is an object or a boolean")),
    };
    if let Some(t) = map.get("type") {
        let names: Vec<&Value> = match t {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for name in names {
            match name.as_str() {
                Some(n) if TYPES.contains(&n) => {}
                _ => return Err(format!("{path}/type: unknown type {name}")),
            }
        }
    }
    if let Some(p) = map.get("properties") {
        let props = p
            .as_object()
            .ok_or_else(|| format!("{path}/properties: not an object"))?;
        for (k, v) in props {
            validate(v, &format!("{path}/properties/{k}"))?;
        }
    }
    if let Some(r) = map.get("required") {
        let ok = r.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            return Err(format!("{path}/required: not an array of strings"));
        }
    }
    for key in ["additionalProperties", "not", "contains", "propertyNames"] {
        if let Some(v) = map.get(key) {
            validate(v, &format!("{path}/{key}"))?;
        }
    }
    match map.get("items") {
        Some(Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                validate(v, &format!("{path}/items/{i}"))?;
            }
        }
        Some(v) => validate(v, &format!("{path}/items"))?,
        None => {}
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(v) = map.get(key) {
            let items = v
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| format!("{path}/{key}: not a non-empty array"))?;
            for (i, v) in items.iter().enumerate() {
                validate(v, &format!("{path}/{key}/{i}"))?;
            }
        }
    }
    for key in ["definitions", "$defs"] {
        if let Some(v) = map.get(key) {
            let defs = v
                .as_object()
                .ok_or_else(|| format!("{path}/{key}: not an object"))?;
            for (k, v) in defs {
                validate(v, &format!("{path}/{key}/{k}"))?;
            }
        }
    }
    if let Some(e) = map.get("enum") {
        if !e.is_array() {
            return Err(format!("{path}/enum: not an array"));
        }
    }
    for key in [
        "maximum",
        "minimum",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "multipleOf",
        "maxLength",
        "minLength",
        "maxItems",
        "minItems",
        "maxProperties",
        "minProperties",
    ] {
        if let Some(v) = map.get(key) {
            if !(v.is_number() || (v.is_boolean() && key.starts_with("exclusive"))) {
                return Err(format!("{path}/{key}: not a number"));
            }
        }
    }
    Ok(())
}

/// The reasons `reader` (the update) does not accept every document `writer` (the
/// original) accepted; empty when it does.
pub fn can_read(reader: &JsonSchema, writer: &JsonSchema) -> Vec<String> {
    let mut diff = Diff {
        original: writer,
        update: reader,
        in_progress: HashSet::new(),
        hops: 0,
        depth: 0,
        errors: Vec::new(),
    };
    diff.compare(&writer.root, None, &reader.root, None, "#");
    diff.errors
}

type Side<'a> = (&'a Value, Option<&'a str>);

struct Diff<'a> {
    original: &'a JsonSchema,
    update: &'a JsonSchema,
    in_progress: HashSet<(usize, usize)>,
    hops: usize,
    /// Nesting of the comparison now (through `$ref`s too), bounded by
    /// [`COMPARE_DEPTH_MAX`].
    depth: usize,
    errors: Vec<String>,
}

/// Deepest a comparison nests, `$ref`s followed included (the stack stays small).
const COMPARE_DEPTH_MAX: usize = 64;

fn is_open(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn types(map: &Map<String, Value>) -> Option<BTreeSet<String>> {
    let t = map.get("type")?;
    let set = match t {
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Value::String(s) => BTreeSet::from([s.clone()]),
        _ => BTreeSet::new(),
    };
    Some(set)
}

fn number(map: &Map<String, Value>, key: &str) -> Option<f64> {
    map.get(key).and_then(Value::as_f64)
}

impl<'a> Diff<'a> {
    fn error(&mut self, kind: &str, path: &str) {
        self.errors.push(format!(
            "{{errorType:'{kind}', description:'at path \"{path}\"'}}"
        ));
    }

    /// Follows `$ref`s (bounded) to the schema itself.
    fn deref(&mut self, schema: &'a JsonSchema, side: Side<'a>) -> Option<Side<'a>> {
        let (mut value, mut doc) = side;
        for _ in 0..32 {
            let Some(Value::String(r)) = value.as_object().and_then(|m| m.get("$ref")) else {
                return Some((value, doc));
            };
            self.hops += 1;
            if self.hops > REF_HOPS_MAX {
                return None;
            }
            (value, doc) = schema.resolve_ref(r, doc)?;
        }
        None
    }

    fn quietly(&mut self, original: Side<'a>, update: Side<'a>) -> bool {
        let before = self.errors.len();
        self.compare(original.0, original.1, update.0, update.1, "#");
        let ok = self.errors.len() == before;
        self.errors.truncate(before);
        ok
    }

    fn compare(
        &mut self,
        original: &'a Value,
        original_doc: Option<&'a str>,
        update: &'a Value,
        update_doc: Option<&'a str>,
        path: &str,
    ) {
        let (Some((o, od)), Some((u, ud))) = (
            self.deref(self.original, (original, original_doc)),
            self.deref(self.update, (update, update_doc)),
        ) else {
            self.error("REFERENCE_NOT_RESOLVED", path);
            return;
        };
        // A recursive schema compared again: assumed compatible.
        let key = (o as *const Value as usize, u as *const Value as usize);
        if !self.in_progress.insert(key) {
            return;
        }
        if self.depth >= COMPARE_DEPTH_MAX {
            self.error("SCHEMA_NESTED_TOO_DEEPLY", path);
        } else {
            self.depth += 1;
            self.compare_schemas((o, od), (u, ud), path);
            self.depth -= 1;
        }
        self.in_progress.remove(&key);
    }

    fn compare_schemas(&mut self, o: Side<'a>, u: Side<'a>, path: &str) {
        if o.0 == &Value::Bool(false) || is_open(u.0) {
            return;
        }
        if is_open(o.0) {
            self.error("SCHEMA_ADDED", path);
            return;
        }
        let (Some(om), Some(um)) = (o.0.as_object(), u.0.as_object()) else {
            self.error("SCHEMA_CHANGED", path);
            return;
        };
        if self.combined(o, om, u, um, path) {
            return;
        }
        self.compare_types(om, um, path);
        self.compare_bounds(om, um, path);
        self.compare_enum(om, um, path);
        self.compare_object(o, om, u, um, path);
        self.compare_array(o, om, u, um, path);
        if om.get("not") != um.get("not") {
            self.error("NOT_TYPE_CHANGED", path);
        }
    }

    /// oneOf/anyOf/allOf; true when it decided the comparison.
    fn combined(
        &mut self,
        o: Side<'a>,
        om: &'a Map<String, Value>,
        u: Side<'a>,
        um: &'a Map<String, Value>,
        path: &str,
    ) -> bool {
        let combiner = |m: &'a Map<String, Value>| {
            ["oneOf", "anyOf", "allOf"]
                .into_iter()
                .find_map(|k| m.get(k).and_then(Value::as_array).map(|a| (k, a)))
        };
        match (combiner(om), combiner(um)) {
            (None, None) => false,
            (Some(("allOf", oa)), Some(("allOf", ua))) => {
                // Product types may only lose members (each remaining one still holds).
                for (i, ub) in ua.iter().enumerate() {
                    if !oa.iter().any(|ob| self.quietly((ob, o.1), (ub, u.1))) {
                        self.error("PRODUCT_TYPE_EXTENDED", &format!("{path}/allOf/{i}"));
                    }
                }
                true
            }
            (Some((ok, oa)), Some((uk, ua))) if ok != "allOf" && uk != "allOf" => {
                // Sum types may only gain members.
                for (i, ob) in oa.iter().enumerate() {
                    if !ua.iter().any(|ub| self.quietly((ob, o.1), (ub, u.1))) {
                        self.error("SUM_TYPE_NARROWED", &format!("{path}/{ok}/{i}"));
                    }
                }
                true
            }
            (None, Some((uk, ua))) if uk != "allOf" => {
                if !ua.iter().any(|ub| self.quietly(o, (ub, u.1))) {
                    self.error("COMBINED_TYPE_CHANGED", path);
                }
                true
            }
            (Some((ok, oa)), None) if ok != "allOf" => {
                for (i, ob) in oa.iter().enumerate() {
                    if !self.quietly((ob, o.1), u) {
                        self.error(
                            "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
                            &format!("{path}/{ok}/{i}"),
                        );
                    }
                }
                true
            }
            _ => {
                self.error("COMBINED_TYPE_CHANGED", path);
                true
            }
        }
    }

    fn compare_types(&mut self, om: &Map<String, Value>, um: &Map<String, Value>, path: &str) {
        let Some(ut) = types(um) else {
            return; // the update accepts any type
        };
        let Some(ot) = types(om) else {
            self.error("TYPE_NARROWED", path);
            return;
        };
        for t in &ot {
            let covered = ut.contains(t) || (t == "integer" && ut.contains("number"));
            if !covered {
                self.error("TYPE_NARROWED", path);
                return;
            }
        }
    }

    fn compare_bounds(&mut self, om: &Map<String, Value>, um: &Map<String, Value>, path: &str) {
        // (keyword, an upper bound?)
        for (key, upper) in [
            ("maximum", true),
            ("exclusiveMaximum", true),
            ("maxLength", true),
            ("maxItems", true),
            ("maxProperties", true),
            ("minimum", false),
            ("exclusiveMinimum", false),
            ("minLength", false),
            ("minItems", false),
            ("minProperties", false),
        ] {
            match (number(om, key), number(um, key)) {
                (_, None) => {}
                (None, Some(_)) => self.error(&format!("{}_ADDED", upper_snake(key)), path),
                (Some(o), Some(u)) => {
                    if (upper && u < o) || (!upper && u > o) {
                        let change = if upper { "DECREASED" } else { "INCREASED" };
                        self.error(&format!("{}_{change}", upper_snake(key)), path);
                    }
                }
            }
        }
        match (number(om, "multipleOf"), number(um, "multipleOf")) {
            (_, None) => {}
            (None, Some(_)) => self.error("MULTIPLE_OF_ADDED", path),
            (Some(o), Some(u)) => {
                let ratio = o / u;
                if u == 0.0 || (ratio - ratio.round()).abs() > 1e-9 {
                    self.error("MULTIPLE_OF_CHANGED", path);
                }
            }
        }
        match (om.get("pattern"), um.get("pattern")) {
            (_, None) => {}
            (None, Some(_)) => self.error("PATTERN_ADDED", path),
            (Some(o), Some(u)) if o != u => self.error("PATTERN_CHANGED", path),
            _ => {}
        }
        if um.get("uniqueItems") == Some(&Value::Bool(true))
            && om.get("uniqueItems") != Some(&Value::Bool(true))
        {
            self.error("UNIQUE_ITEMS_ADDED", path);
        }
    }

    fn compare_enum(&mut self, om: &Map<String, Value>, um: &Map<String, Value>, path: &str) {
        match (om.get("enum"), um.get("enum")) {
            (_, None) => {}
            (None, Some(_)) => self.error("ENUM_ARRAY_NARROWED", path),
            (Some(Value::Array(o)), Some(Value::Array(u))) => {
                if o.iter().any(|v| !u.contains(v)) {
                    self.error("ENUM_ARRAY_NARROWED", path);
                }
            }
            _ => self.error("ENUM_ARRAY_CHANGED", path),
        }
        match (om.get("const"), um.get("const")) {
            (_, None) => {}
            (Some(o), Some(u)) if o == u => {}
            (None, Some(_)) => self.error("CONST_ADDED", path),
            _ => self.error("CONST_CHANGED", path),
        }
    }

    fn compare_object(
        &mut self,
        o: Side<'a>,
        om: &'a Map<String, Value>,
        u: Side<'a>,
        um: &'a Map<String, Value>,
        path: &str,
    ) {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        let empty = EMPTY.get_or_init(Map::new);
        let oprops = om
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(empty);
        let uprops = um
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(empty);
        let oadd = om.get("additionalProperties");
        let uadd = um.get("additionalProperties");
        let closed = |a: Option<&Value>| a == Some(&Value::Bool(false));
        let open = |a: Option<&Value>| a.is_none_or(is_open);
        let required = |m: &Map<String, Value>| -> BTreeSet<String> {
            m.get("required")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        for (name, oschema) in oprops {
            let ppath = format!("{path}/properties/{name}");
            match uprops.get(name) {
                Some(uschema) => self.compare(oschema, o.1, uschema, u.1, &ppath),
                None if open(uadd) => {}
                None if closed(uadd) => {
                    if oschema != &Value::Bool(false) {
                        self.error("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", &ppath);
                    }
                }
                None => {
                    let Some(partial) = uadd else { continue };
                    if !self.quietly((oschema, o.1), (partial, u.1)) {
                        self.error(
                            "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                            &ppath,
                        );
                    }
                }
            }
        }
        let (oreq, ureq) = (required(om), required(um));
        for (name, uschema) in uprops {
            if oprops.contains_key(name) {
                continue;
            }
            let ppath = format!("{path}/properties/{name}");
            if closed(oadd) {
                continue;
            }
            if open(oadd) {
                if !is_open(uschema) {
                    self.error("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", &ppath);
                }
            } else if let Some(partial) = oadd {
                if !self.quietly((partial, o.1), (uschema, u.1)) {
                    self.error(
                        "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                        &ppath,
                    );
                }
            }
        }
        for name in ureq.difference(&oreq) {
            let has_default = uprops
                .get(name)
                .and_then(Value::as_object)
                .is_some_and(|p| p.contains_key("default"));
            if !has_default {
                self.error(
                    "REQUIRED_ATTRIBUTE_ADDED",
                    &format!("{path}/required/{name}"),
                );
            }
        }
        match (oadd, uadd) {
            (_, None) => {}
            (a, Some(ua)) if open(a) && !is_open(ua) => {
                self.error(
                    "ADDITIONAL_PROPERTIES_NARROWED",
                    &format!("{path}/additionalProperties"),
                );
            }
            (a, Some(_)) if open(a) => {}
            (Some(oa), Some(ua)) if !closed(Some(oa)) => {
                self.compare(oa, o.1, ua, u.1, &format!("{path}/additionalProperties"));
            }
            _ => {}
        }
    }

    fn compare_array(
        &mut self,
        o: Side<'a>,
        om: &'a Map<String, Value>,
        u: Side<'a>,
        um: &'a Map<String, Value>,
        path: &str,
    ) {
        match (om.get("items"), um.get("items")) {
            (_, None) => {}
            (None, Some(ui)) => {
                if !is_open(ui) {
                    self.error("ITEMS_NARROWED", &format!("{path}/items"));
                }
            }
            (Some(Value::Array(oi)), Some(Value::Array(ui))) => {
                for (i, (a, b)) in oi.iter().zip(ui.iter()).enumerate() {
                    self.compare(a, o.1, b, u.1, &format!("{path}/items/{i}"));
                }
                if ui.len() > oi.len() {
                    self.error("ITEM_ADDED_TO_OPEN_CONTENT_MODEL", &format!("{path}/items"));
                }
            }
            (Some(oi), Some(ui)) if !oi.is_array() && !ui.is_array() => {
                self.compare(oi, o.1, ui, u.1, &format!("{path}/items"));
            }
            _ => self.error("ITEMS_CHANGED", &format!("{path}/items")),
        }
    }
}

fn upper_snake(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> JsonSchema {
        JsonSchema::parse(text, &[]).unwrap()
    }

    /// `update` accepts everything `original` accepted exactly when `ok`.
    fn check(original: &str, update: &str, ok: bool) {
        let errors = can_read(&parse(update), &parse(original));
        assert_eq!(
            errors.is_empty(),
            ok,
            "original {original} update {update}: {errors:?}"
        );
    }

    fn object(props: &str, extra: &str) -> String {
        format!(r#"{{"type":"object","properties":{{{props}}}{extra}}}"#)
    }

    #[test]
    fn types_may_only_widen() {
        check(r#"{"type":"integer"}"#, r#"{"type":"number"}"#, true);
        check(r#"{"type":"number"}"#, r#"{"type":"integer"}"#, false);
        check(
            r#"{"type":"string"}"#,
            r#"{"type":["string","null"]}"#,
            true,
        );
        check(
            r#"{"type":["string","null"]}"#,
            r#"{"type":"string"}"#,
            false,
        );
        check(r#"{"type":"string"}"#, r#"{}"#, true);
        check(r#"{}"#, r#"{"type":"string"}"#, false);
        check(r#"{"type":"string"}"#, r#"{"type":"boolean"}"#, false);
    }

    #[test]
    fn bounds_may_only_relax() {
        check(
            r#"{"type":"string","maxLength":5}"#,
            r#"{"type":"string","maxLength":10}"#,
            true,
        );
        check(
            r#"{"type":"string","maxLength":10}"#,
            r#"{"type":"string","maxLength":5}"#,
            false,
        );
        check(
            r#"{"type":"string"}"#,
            r#"{"type":"string","minLength":1}"#,
            false,
        );
        check(
            r#"{"type":"string","minLength":1}"#,
            r#"{"type":"string"}"#,
            true,
        );
        check(
            r#"{"type":"number","minimum":0}"#,
            r#"{"type":"number","minimum":-1}"#,
            true,
        );
        check(
            r#"{"type":"number","multipleOf":4}"#,
            r#"{"type":"number","multipleOf":2}"#,
            true,
        );
        check(
            r#"{"type":"number","multipleOf":2}"#,
            r#"{"type":"number","multipleOf":4}"#,
            false,
        );
        check(
            r#"{"type":"string","pattern":"a"}"#,
            r#"{"type":"string"}"#,
            true,
        );
        check(
            r#"{"type":"string"}"#,
            r#"{"type":"string","pattern":"a"}"#,
            false,
        );
    }

    #[test]
    fn content_models() {
        let open1 = object(r#""a":{"type":"string"}"#, "");
        let open2 = object(r#""a":{"type":"string"},"b":{"type":"integer"}"#, "");
        let closed1 = object(
            r#""a":{"type":"string"}"#,
            r#","additionalProperties":false"#,
        );
        let closed2 = object(
            r#""a":{"type":"string"},"b":{"type":"integer"}"#,
            r#","additionalProperties":false"#,
        );
        // Open model: a new property could clash with what documents already carry.
        check(&open1, &open2, false);
        check(&open2, &open1, true);
        // Closed model: no document had the new property.
        check(&closed1, &closed2, true);
        check(&closed2, &closed1, false);
        // Opening a closed model is fine; closing an open one is not.
        check(&closed1, &open1, true);
        check(&open1, &closed1, false);
        // Partially open: properties removed must fit the additionalProperties schema.
        let partial = object("", r#","additionalProperties":{"type":"integer"}"#);
        let closed = r#","additionalProperties":false"#;
        check(&object(r#""b":{"type":"integer"}"#, closed), &partial, true);
        check(&object(r#""b":{"type":"string"}"#, closed), &partial, false);
        // An open model narrowed to integers: documents with string extras break.
        check(&object(r#""b":{"type":"integer"}"#, ""), &partial, false);
    }

    #[test]
    fn required_properties_need_defaults() {
        let v1 = object(
            r#""a":{"type":"string"}"#,
            r#","additionalProperties":false"#,
        );
        let v2 = object(
            r#""a":{"type":"string"},"b":{"type":"integer"}"#,
            r#","required":["b"],"additionalProperties":false"#,
        );
        let v2_default = object(
            r#""a":{"type":"string"},"b":{"type":"integer","default":1}"#,
            r#","required":["b"],"additionalProperties":false"#,
        );
        check(&v1, &v2, false);
        check(&v1, &v2_default, true);
        check(&v2, &v1, false); // b removed from a closed model
    }

    #[test]
    fn enums_and_combinations() {
        check(r#"{"enum":["a","b"]}"#, r#"{"enum":["a","b","c"]}"#, true);
        check(r#"{"enum":["a","b","c"]}"#, r#"{"enum":["a","b"]}"#, false);
        check(
            r#"{"oneOf":[{"type":"string"}]}"#,
            r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
            true,
        );
        check(
            r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
            r#"{"oneOf":[{"type":"string"}]}"#,
            false,
        );
        check(
            r#"{"type":"string"}"#,
            r#"{"anyOf":[{"type":"string"},{"type":"null"}]}"#,
            true,
        );
        check(
            r#"{"allOf":[{"type":"object"},{"required":["a"]}]}"#,
            r#"{"allOf":[{"type":"object"}]}"#,
            true,
        );
    }

    #[test]
    fn arrays_and_refs() {
        check(
            r#"{"type":"array","items":{"type":"integer"}}"#,
            r#"{"type":"array","items":{"type":"number"}}"#,
            true,
        );
        check(
            r#"{"type":"array","items":{"type":"number"}}"#,
            r#"{"type":"array","items":{"type":"integer"}}"#,
            false,
        );
        let tree = r##"{"definitions":{"node":{"type":"object","properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/definitions/node"}}}}},"$ref":"#/definitions/node"}"##;
        let tree_wider = r##"{"definitions":{"node":{"type":"object","properties":{"v":{"type":"number"},"kids":{"type":"array","items":{"$ref":"#/definitions/node"}}}}},"$ref":"#/definitions/node"}"##;
        check(tree, tree_wider, true);
        check(tree_wider, tree, false);
        assert!(JsonSchema::parse(r##"{"$ref":"#/nope"}"##, &[]).is_err());
    }

    #[test]
    fn references_to_other_documents() {
        let r = ResolvedReference {
            name: "address.json".into(),
            schema_type: super::super::SchemaType::Json,
            schema: r#"{"type":"object","properties":{"street":{"type":"string"}}}"#.into(),
        };
        let s = JsonSchema::parse(
            r#"{"type":"object","properties":{"home":{"$ref":"address.json"}}}"#,
            &[r],
        )
        .unwrap();
        assert!(can_read(&s, &s).is_empty());
        assert!(
            JsonSchema::parse(r#"{"properties":{"home":{"$ref":"address.json"}}}"#, &[]).is_err()
        );
    }

    #[test]
    fn malformed_schemas_are_errors() {
        for text in [
            "",
            "[1]",
            "3",
            r#"{"type":"strin"}"#,
            r#"{"properties":[]}"#,
            r#"{"required":[1]}"#,
        ] {
            assert!(JsonSchema::parse(text, &[]).is_err(), "{text}");
        }
    }
}
