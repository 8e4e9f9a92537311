//! Compatibility levels and how a new schema is checked against a subject's earlier
//! versions: BACKWARD (the new schema reads data of the latest), FORWARD (the latest reads
//! data of the new), FULL (both), their `_TRANSITIVE` forms (against every earlier version)
//! and NONE.

use crate::schema::ParsedSchema;

/// A subject's (or the global) compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompatibilityLevel {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl CompatibilityLevel {
    pub fn parse(name: &str) -> Option<CompatibilityLevel> {
        Some(match name.trim().to_ascii_uppercase().as_str() {
            "NONE" => CompatibilityLevel::None,
            "BACKWARD" => CompatibilityLevel::Backward,
            "BACKWARD_TRANSITIVE" => CompatibilityLevel::BackwardTransitive,
            "FORWARD" => CompatibilityLevel::Forward,
            "FORWARD_TRANSITIVE" => CompatibilityLevel::ForwardTransitive,
            "FULL" => CompatibilityLevel::Full,
            "FULL_TRANSITIVE" => CompatibilityLevel::FullTransitive,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            CompatibilityLevel::None => "NONE",
            CompatibilityLevel::Backward => "BACKWARD",
            CompatibilityLevel::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatibilityLevel::Forward => "FORWARD",
            CompatibilityLevel::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatibilityLevel::Full => "FULL",
            CompatibilityLevel::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Backward
                | CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Forward
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }
}

/// Why `new` is incompatible with `previous` (oldest first) under `level`; empty when it
/// is compatible. Non-transitive levels look at the latest version only.
pub fn check(
    level: CompatibilityLevel,
    new: &ParsedSchema,
    previous: &[ParsedSchema],
) -> Vec<String> {
    let against: &[ParsedSchema] = if level.transitive() {
        previous
    } else {
        previous.last().map(std::slice::from_ref).unwrap_or(&[])
    };
    let mut errors = Vec::new();
    // Newest first, as Confluent reports them.
    for old in against.iter().rev() {
        if level.backward() {
            errors.extend(new.can_read(old));
        }
        if level.forward() {
            errors.extend(old.can_read(new));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SchemaType;

    fn avro(fields: &str) -> ParsedSchema {
        let text = format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#);
        ParsedSchema::parse(SchemaType::Avro, &text, &[]).unwrap()
    }

    #[test]
    fn levels_pick_directions_and_versions() {
        let v1 = avro(r#"{"name":"a","type":"int"}"#);
        // Adds a field without a default: old data lacks it (not backward); old readers
        // ignore it (forward).
        let v2 = avro(r#"{"name":"a","type":"int"},{"name":"b","type":"int"}"#);
        use CompatibilityLevel::*;
        assert!(!check(Backward, &v2, std::slice::from_ref(&v1)).is_empty());
        assert!(check(Forward, &v2, std::slice::from_ref(&v1)).is_empty());
        assert!(!check(Full, &v2, std::slice::from_ref(&v1)).is_empty());
        assert!(check(None, &v2, std::slice::from_ref(&v1)).is_empty());
        // Transitive levels look past the latest version.
        let v0 = avro(r#"{"name":"a","type":"int"},{"name":"b","type":"string"}"#);
        let v1b = avro(r#"{"name":"a","type":"int"},{"name":"b","type":"int","default":1}"#);
        let v2b = avro(r#"{"name":"a","type":"int"},{"name":"b","type":"int","default":2}"#);
        assert!(check(Backward, &v2b, &[v0.clone(), v1b.clone()]).is_empty());
        assert!(!check(BackwardTransitive, &v2b, &[v0, v1b]).is_empty());
        assert_eq!(
            CompatibilityLevel::parse("full_transitive"),
            Some(FullTransitive)
        );
        assert_eq!(CompatibilityLevel::parse("bogus"), Option::None);
    }
}
