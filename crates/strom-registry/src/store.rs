//! The registry's state: a pure state machine fed, in offset order, by the records of the
//! `_schemas` topic. Every registry process reading the same topic reaches the same state,
//! which is how several processes agree and how a restart gets every id and version back.
//!
//! Invariant: one id names one schema. A SCHEMA record that gives an id already in use to a
//! different schema text is skipped (the first one, by offset, wins) with a warning, as
//! Confluent's registry does; the writer notices its record was skipped and retries.
//! A record that cannot be decoded is skipped and counted, never guessed at.

use std::collections::{BTreeMap, BTreeSet};

use crate::records::{ConfigValue, Key, Record, Reference, SchemaValue};

/// What applying one record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Changed,
    /// The record was not applied, and why.
    Skipped(String),
}

/// The state built from `_schemas`.
#[derive(Debug, Default, Clone)]
pub struct Store {
    subjects: BTreeMap<String, BTreeMap<i32, SchemaValue>>,
    /// Which subject versions carry each id.
    ids: BTreeMap<i32, BTreeSet<(String, i32)>>,
    global_config: Option<ConfigValue>,
    configs: BTreeMap<String, ConfigValue>,
    global_mode: Option<String>,
    modes: BTreeMap<String, String>,
    max_id: i32,
    /// The offset after the last record applied or skipped.
    next_offset: i64,
    skipped: u64,
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// The offset of the next record to apply.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Moves past offsets that hold no record (compacted away, control batches).
    pub fn advance_to(&mut self, next_offset: i64) {
        self.next_offset = self.next_offset.max(next_offset);
    }

    /// Records skipped so far (undecodable or conflicting).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    pub fn max_id(&self) -> i32 {
        self.max_id
    }

    /// Applies the record at `offset` (records must come in offset order; one at or
    /// before the last applied is ignored).
    pub fn apply(&mut self, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Applied {
        if offset < self.next_offset {
            return Applied::Skipped(format!("offset {offset} was applied already"));
        }
        self.next_offset = offset + 1;
        let applied = self.apply_record(key, value);
        if let Applied::Skipped(reason) = &applied {
            self.skipped += 1;
            tracing::warn!(offset, %reason, "skipped a _schemas record");
        }
        applied
    }

    fn apply_record(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) -> Applied {
        let Some(key) = key else {
            return Applied::Skipped("a record without a key".into());
        };
        let key = match Key::decode(key) {
            Ok(key) => key,
            Err(e) => return Applied::Skipped(e),
        };
        let record = match value.map(|v| Record::decode(&key, v)).transpose() {
            Ok(record) => record,
            Err(e) => return Applied::Skipped(e),
        };
        match (key, record) {
            (Key::Schema { subject, version }, None) => {
                self.remove_version(&subject, version);
                Applied::Changed
            }
            (Key::Schema { subject, version }, Some(Record::Schema(value))) => {
                if value.subject != subject || value.version != version {
                    return Applied::Skipped(format!(
                        "SCHEMA key {subject}/{version} holds a value for {}/{}",
                        value.subject, value.version
                    ));
                }
                self.put_version(value)
            }
            (Key::Config { subject }, config) => {
                let config = match config {
                    Some(Record::Config(c)) => Some(c),
                    _ => None,
                };
                match (subject, config) {
                    (None, c) => self.global_config = c,
                    (Some(s), Some(c)) => {
                        self.configs.insert(s, c);
                    }
                    (Some(s), None) => {
                        self.configs.remove(&s);
                    }
                }
                Applied::Changed
            }
            (Key::Mode { subject }, mode) => {
                let mode = match mode {
                    Some(Record::Mode(m)) => Some(m),
                    _ => None,
                };
                match (subject, mode) {
                    (None, m) => self.global_mode = m,
                    (Some(s), Some(m)) => {
                        self.modes.insert(s, m);
                    }
                    (Some(s), None) => {
                        self.modes.remove(&s);
                    }
                }
                Applied::Changed
            }
            (Key::DeleteSubject { subject }, Some(Record::DeleteSubject(d))) => {
                if let Some(versions) = self.subjects.get_mut(&subject) {
                    for (_, v) in versions.range_mut(..=d.version) {
                        v.deleted = true;
                    }
                }
                Applied::Changed
            }
            // Tombstones of these, NOOP markers, CLEAR_SUBJECT (which clears Confluent's
            // caches only) and key types of features not served here.
            _ => Applied::Changed,
        }
    }

    fn put_version(&mut self, value: SchemaValue) -> Applied {
        if let Some(holder) = self.ids.get(&value.id).and_then(|keys| keys.iter().next()) {
            let same = self.get(&holder.0, holder.1).is_some_and(|other| {
                other.schema == value.schema && other.schema_type == value.schema_type
            });
            let replacing = holder.0 == value.subject && holder.1 == value.version;
            if !same && !replacing {
                return Applied::Skipped(format!(
                    "id {} is {}/{}'s, not {}/{}'s (a different schema)",
                    value.id, holder.0, holder.1, value.subject, value.version
                ));
            }
        }
        self.remove_version(&value.subject, value.version);
        self.max_id = self.max_id.max(value.id);
        self.ids
            .entry(value.id)
            .or_default()
            .insert((value.subject.clone(), value.version));
        self.subjects
            .entry(value.subject.clone())
            .or_default()
            .insert(value.version, value);
        Applied::Changed
    }

    fn remove_version(&mut self, subject: &str, version: i32) {
        let Some(versions) = self.subjects.get_mut(subject) else {
            return;
        };
        if let Some(old) = versions.remove(&version) {
            if let Some(keys) = self.ids.get_mut(&old.id) {
                keys.remove(&(subject.to_string(), version));
                if keys.is_empty() {
                    self.ids.remove(&old.id);
                }
            }
        }
        if versions.is_empty() {
            self.subjects.remove(subject);
        }
    }

    /// Subjects with a live version (or any version with `deleted`), in name order.
    pub fn subjects(&self, deleted: bool) -> Vec<&str> {
        self.subjects
            .iter()
            .filter(|(_, v)| deleted || v.values().any(|s| !s.deleted))
            .map(|(s, _)| s.as_str())
            .collect()
    }

    /// Whether the subject has a version (live, or any with `deleted`).
    pub fn has_subject(&self, subject: &str, deleted: bool) -> bool {
        self.subjects
            .get(subject)
            .is_some_and(|v| deleted || v.values().any(|s| !s.deleted))
    }

    /// The subject's versions, oldest first.
    pub fn versions(&self, subject: &str, deleted: bool) -> Vec<&SchemaValue> {
        self.subjects
            .get(subject)
            .map(|v| v.values().filter(|s| deleted || !s.deleted).collect())
            .unwrap_or_default()
    }

    pub fn get(&self, subject: &str, version: i32) -> Option<&SchemaValue> {
        self.subjects.get(subject)?.get(&version)
    }

    pub fn latest(&self, subject: &str, deleted: bool) -> Option<&SchemaValue> {
        self.versions(subject, deleted).last().copied()
    }

    /// The highest version the subject ever had that is still in the topic.
    pub fn max_version(&self, subject: &str) -> i32 {
        self.subjects
            .get(subject)
            .and_then(|v| v.keys().next_back().copied())
            .unwrap_or(0)
    }

    /// The schema with this id (a live version's value when one has it).
    pub fn by_id(&self, id: i32) -> Option<&SchemaValue> {
        let keys = self.ids.get(&id)?;
        let values = keys.iter().filter_map(|(s, v)| self.get(s, *v));
        let mut first = None;
        for value in values {
            if !value.deleted {
                return Some(value);
            }
            first.get_or_insert(value);
        }
        first
    }

    /// The subject versions that carry `id`.
    pub fn versions_of_id(&self, id: i32, deleted: bool) -> Vec<&SchemaValue> {
        self.ids
            .get(&id)
            .map(|keys| {
                keys.iter()
                    .filter_map(|(s, v)| self.get(s, *v))
                    .filter(|v| deleted || !v.deleted)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The id of an identical schema (type, text and references), if any has one.
    pub fn find_id(&self, value: &SchemaValue) -> Option<i32> {
        self.ids.keys().copied().find(|id| {
            self.by_id(*id).is_some_and(|s| {
                s.schema_type == value.schema_type
                    && s.schema == value.schema
                    && s.references == value.references
            })
        })
    }

    /// Ids of live schemas that reference `subject` at `version`.
    pub fn referenced_by(&self, subject: &str, version: i32) -> Vec<i32> {
        let mut ids = BTreeSet::new();
        for versions in self.subjects.values() {
            for v in versions.values().filter(|v| !v.deleted) {
                if v.references
                    .iter()
                    .any(|r: &Reference| r.subject == subject && r.version == version)
                {
                    ids.insert(v.id);
                }
            }
        }
        ids.into_iter().collect()
    }

    pub fn config(&self, subject: Option<&str>) -> Option<&ConfigValue> {
        match subject {
            None => self.global_config.as_ref(),
            Some(s) => self.configs.get(s),
        }
    }

    pub fn mode(&self, subject: Option<&str>) -> Option<&str> {
        match subject {
            None => self.global_mode.as_deref(),
            Some(s) => self.modes.get(s).map(String::as_str),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::DeleteSubjectValue;
    use crate::schema::SchemaType;

    fn schema(subject: &str, version: i32, id: i32, text: &str) -> (Vec<u8>, Vec<u8>) {
        let value = SchemaValue {
            subject: subject.into(),
            version,
            id,
            schema_type: SchemaType::Avro,
            references: vec![],
            metadata: None,
            rule_set: None,
            schema: text.into(),
            deleted: false,
        };
        (
            Key::Schema {
                subject: subject.into(),
                version,
            }
            .encode(),
            Record::Schema(value).encode(Some(subject)),
        )
    }

    struct Feed {
        store: Store,
        offset: i64,
    }

    impl Feed {
        fn put(&mut self, (k, v): (Vec<u8>, Vec<u8>)) -> Applied {
            self.offset += 1;
            self.store.apply(self.offset, Some(&k), Some(&v))
        }
        fn raw(&mut self, k: &[u8], v: Option<&[u8]>) -> Applied {
            self.offset += 1;
            self.store.apply(self.offset, Some(k), v)
        }
    }

    fn feed() -> Feed {
        Feed {
            store: Store::new(),
            offset: -1,
        }
    }

    #[test]
    fn schemas_versions_and_ids() {
        let mut f = feed();
        f.put(schema("a", 1, 1, "\"int\""));
        f.put(schema("a", 2, 2, "\"long\""));
        f.put(schema("b", 1, 1, "\"int\""));
        let s = &f.store;
        assert_eq!(s.subjects(false), vec!["a", "b"]);
        assert_eq!(s.versions("a", false).len(), 2);
        assert_eq!(s.latest("a", false).unwrap().id, 2);
        assert_eq!(s.versions_of_id(1, false).len(), 2);
        assert_eq!(s.max_id(), 2);
        assert_eq!(s.by_id(2).unwrap().schema, "\"long\"");
        assert_eq!(s.next_offset(), 3);
    }

    #[test]
    fn an_id_names_one_schema_first_record_wins() {
        let mut f = feed();
        f.put(schema("a", 1, 1, "\"int\""));
        assert!(matches!(
            f.put(schema("b", 1, 1, "\"string\"")),
            Applied::Skipped(_)
        ));
        assert!(f.store.get("b", 1).is_none());
        assert_eq!(f.store.skipped(), 1);
    }

    #[test]
    fn soft_and_hard_deletes() {
        let mut f = feed();
        f.put(schema("a", 1, 1, "\"int\""));
        f.put(schema("a", 2, 2, "\"long\""));
        let delete = Record::DeleteSubject(DeleteSubjectValue {
            subject: "a".into(),
            version: 1,
        });
        f.raw(
            &Key::DeleteSubject {
                subject: "a".into(),
            }
            .encode(),
            Some(&delete.encode(Some("a"))),
        );
        assert_eq!(f.store.versions("a", false).len(), 1);
        assert_eq!(f.store.versions("a", true).len(), 2);
        // The id of a soft-deleted version still resolves.
        assert!(f.store.by_id(1).is_some());
        f.raw(
            &Key::Schema {
                subject: "a".into(),
                version: 1,
            }
            .encode(),
            None,
        );
        assert!(f.store.by_id(1).is_none());
        assert_eq!(f.store.max_version("a"), 2);
    }

    #[test]
    fn configs_modes_and_tombstones() {
        let mut f = feed();
        let config = Record::Config(ConfigValue(
            serde_json::from_str(r#"{"compatibilityLevel":"FULL"}"#).unwrap(),
        ));
        f.raw(
            &Key::Config { subject: None }.encode(),
            Some(&config.encode(None)),
        );
        f.raw(
            &Key::Config {
                subject: Some("s".into()),
            }
            .encode(),
            Some(&config.encode(Some("s"))),
        );
        f.raw(
            &Key::Mode { subject: None }.encode(),
            Some(&Record::Mode("READONLY".into()).encode(None)),
        );
        assert_eq!(f.store.config(None).unwrap().compatibility(), Some("FULL"));
        assert_eq!(
            f.store.config(Some("s")).unwrap().compatibility(),
            Some("FULL")
        );
        assert_eq!(f.store.mode(None), Some("READONLY"));
        f.raw(
            &Key::Config {
                subject: Some("s".into()),
            }
            .encode(),
            None,
        );
        assert!(f.store.config(Some("s")).is_none());
    }

    #[test]
    fn bad_records_are_skipped_and_counted() {
        let mut f = feed();
        assert!(matches!(f.raw(b"garbage", Some(b"x")), Applied::Skipped(_)));
        let key = Key::Schema {
            subject: "a".into(),
            version: 1,
        }
        .encode();
        assert!(matches!(f.raw(&key, Some(b"{}")), Applied::Skipped(_)));
        // A key naming another subject than its value.
        let (_, v) = schema("b", 1, 1, "\"int\"");
        assert!(matches!(f.raw(&key, Some(&v)), Applied::Skipped(_)));
        assert_eq!(
            f.raw(br#"{"keytype":"NOOP","magic":0}"#, Some(b"{}")),
            Applied::Changed
        );
        assert_eq!(f.store.skipped(), 3);
        assert!(f.store.subjects(true).is_empty());
    }
}
