//! Kafka's topic name rules.

use crate::controller::errors::{ApiError, ErrorCode};
use crate::image::MetadataImage;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Longest legal topic name (Kafka's limit, leaving room for a partition suffix in paths).
pub const TOPIC_NAME_LENGTH_MAX: usize = 249;

/// Checks a name against Kafka's rules: non-empty, not `.` or `..`, at most 249 chars of
/// `[a-zA-Z0-9._-]`.
pub fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let invalid = |message: String| Err(ApiError::new(ErrorCode::InvalidTopicException, message));
    if name.is_empty() {
        return invalid("Topic name is illegal, it can't be empty".to_owned());
    }
    if name == "." || name == ".." {
        return invalid("Topic name cannot be \".\" or \"..\"".to_owned());
    }
    if name.len() > TOPIC_NAME_LENGTH_MAX {
        return invalid(format!(
            "Topic name is illegal, it can't be longer than {TOPIC_NAME_LENGTH_MAX} characters, topic name: {name}"
        ));
    }
    let legal = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-';
    if !name.chars().all(legal) {
        return invalid(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// The topic names a CreateTopics request must not reuse or collide with: the image's plus
/// those created earlier in the same request.
///
/// Metric names flatten `.` to `_`, so Kafka's controller refuses a topic whose name
/// differs from an existing one only there. Only names holding `.` or `_` can collide with
/// a different name, so only those are indexed.
pub(crate) struct TopicNames {
    by_flat_name: BTreeMap<String, String>,
    created: BTreeSet<String>,
    created_ids: BTreeSet<Uuid>,
}

impl TopicNames {
    pub fn new(image: &MetadataImage) -> Self {
        let by_flat_name = image
            .topic_names()
            .filter(|name| name.contains(['.', '_']))
            .map(|name| (flatten(name), name.to_owned()))
            .collect();
        TopicNames {
            by_flat_name,
            created: BTreeSet::new(),
            created_ids: BTreeSet::new(),
        }
    }

    pub fn check_new(&self, image: &MetadataImage, name: &str) -> Result<(), ApiError> {
        if image.topic_by_name(name).is_some() || self.created.contains(name) {
            return Err(ApiError::new(
                ErrorCode::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
        }
        if !name.contains(['.', '_']) {
            return Ok(());
        }
        match self.by_flat_name.get(&flatten(name)) {
            Some(existing) => Err(ApiError::new(
                ErrorCode::InvalidTopicException,
                format!("Topic '{name}' collides with existing topic: {existing}"),
            )),
            None => Ok(()),
        }
    }

    pub fn is_id_taken(&self, image: &MetadataImage, topic_id: Uuid) -> bool {
        image.topic_by_id(topic_id).is_some() || self.created_ids.contains(&topic_id)
    }

    pub fn add(&mut self, name: &str, topic_id: Uuid) {
        if name.contains(['.', '_']) {
            self.by_flat_name.insert(flatten(name), name.to_owned());
        }
        self.created.insert(name.to_owned());
        self.created_ids.insert(topic_id);
    }
}

fn flatten(name: &str) -> String {
    name.replace('.', "_")
}
