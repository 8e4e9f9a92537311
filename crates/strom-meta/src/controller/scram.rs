//! AlterUserScramCredentials, as Kafka's `ScramControlManager` validates it: a user named
//! twice in one request, an unknown mechanism, an empty name, an iteration count outside
//! 4096..=16384 and the deletion of a credential that does not exist each fail that user's
//! alterations only; the rest commit together.

use std::collections::BTreeMap;

use crate::controller::errors::{ApiError, ErrorCode};
use crate::controller::messages::{AlterScramRequest, AlterScramResult, ControllerReply};
use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// Kafka's bounds on SCRAM iterations (`ScramMechanism.minIterations`/`maxIterations`).
pub const ITERATIONS_MIN: i32 = 4096;
pub const ITERATIONS_MAX: i32 = 16384;

pub(crate) fn alter(
    image: &MetadataImage,
    request: AlterScramRequest,
) -> (Vec<MetadataRecord>, ControllerReply) {
    // Users in first-seen order, with how often each is named.
    let mut order: Vec<String> = Vec::new();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    let names = request
        .deletions
        .iter()
        .map(|(name, _)| name)
        .chain(request.upsertions.iter().map(|u| &u.name));
    for name in names {
        let seen = count.entry(name.clone()).or_insert(0);
        if *seen == 0 {
            order.push(name.clone());
        }
        *seen += 1;
    }
    let mut errors: BTreeMap<String, ApiError> = BTreeMap::new();
    for (name, times) in &count {
        if *times > 1 {
            errors.insert(
                name.clone(),
                ApiError::new(
                    ErrorCode::DuplicateResource,
                    "A user credential cannot be altered twice in the same request",
                ),
            );
        } else if name.is_empty() {
            errors.insert(
                name.clone(),
                ApiError::new(
                    ErrorCode::UnacceptableCredential,
                    "Username must not be empty",
                ),
            );
        }
    }
    let mut records = Vec::new();
    for (name, mechanism) in &request.deletions {
        if errors.contains_key(name) {
            continue;
        }
        let error = if !matches!(mechanism, 1 | 2) {
            Some(ApiError::new(
                ErrorCode::UnsupportedSaslMechanism,
                "Unknown SCRAM mechanism",
            ))
        } else if image.scram_credential(name, *mechanism).is_none() {
            Some(ApiError::new(
                ErrorCode::ResourceNotFound,
                "Attempt to delete a user credential that does not exist",
            ))
        } else {
            None
        };
        match error {
            Some(error) => {
                errors.insert(name.clone(), error);
            }
            None => records.push(MetadataRecord::RemoveUserScramCredential {
                name: name.clone(),
                mechanism: *mechanism,
            }),
        }
    }
    for u in request.upsertions {
        if errors.contains_key(&u.name) {
            continue;
        }
        let error = if !matches!(u.mechanism, 1 | 2) {
            Some(ApiError::new(
                ErrorCode::UnsupportedSaslMechanism,
                "Unknown SCRAM mechanism",
            ))
        } else if u.iterations < ITERATIONS_MIN {
            Some(ApiError::new(
                ErrorCode::UnacceptableCredential,
                "Too few iterations",
            ))
        } else if u.iterations > ITERATIONS_MAX {
            Some(ApiError::new(
                ErrorCode::UnacceptableCredential,
                "Too many iterations",
            ))
        } else if u.salt.is_empty() || u.stored_key.is_empty() || u.server_key.is_empty() {
            Some(ApiError::new(
                ErrorCode::UnacceptableCredential,
                "Salt and salted password must not be empty",
            ))
        } else {
            None
        };
        match error {
            Some(error) => {
                errors.insert(u.name.clone(), error);
            }
            None => records.push(MetadataRecord::UserScramCredential {
                name: u.name,
                mechanism: u.mechanism,
                salt: u.salt,
                stored_key: u.stored_key,
                server_key: u.server_key,
                iterations: u.iterations,
            }),
        }
    }
    let results = order
        .into_iter()
        .map(|user| AlterScramResult {
            error: errors.remove(&user),
            user,
        })
        .collect();
    (records, ControllerReply::AlterUserScramCredentials(results))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::messages::ScramUpsertion;

    fn upsert(name: &str, mechanism: i8, iterations: i32) -> ScramUpsertion {
        ScramUpsertion {
            name: name.into(),
            mechanism,
            iterations,
            salt: vec![1],
            stored_key: vec![2],
            server_key: vec![3],
        }
    }

    #[test]
    fn each_user_fails_alone_and_the_rest_commit() {
        let image = MetadataImage::default();
        let (records, reply) = alter(
            &image,
            AlterScramRequest {
                deletions: vec![("gone".into(), 1), ("twice".into(), 1)],
                upsertions: vec![
                    upsert("alice", 1, 8192),
                    upsert("twice", 2, 8192),
                    upsert("few", 1, 10),
                    upsert("odd", 9, 8192),
                ],
            },
        );
        assert_eq!(records.len(), 1);
        let (image, _) = image.apply(&records).unwrap();
        assert!(image.scram_credential("alice", 1).is_some());
        let ControllerReply::AlterUserScramCredentials(results) = reply else {
            panic!("wrong reply")
        };
        let code = |user: &str| {
            results
                .iter()
                .find(|r| r.user == user)
                .unwrap()
                .error
                .as_ref()
                .map(|e| e.code)
        };
        assert_eq!(code("alice"), None);
        assert_eq!(code("gone"), Some(ErrorCode::ResourceNotFound));
        assert_eq!(code("twice"), Some(ErrorCode::DuplicateResource));
        assert_eq!(code("few"), Some(ErrorCode::UnacceptableCredential));
        assert_eq!(code("odd"), Some(ErrorCode::UnsupportedSaslMechanism));
        // A snapshot carries the credential; deleting it works once.
        let (again, _) = MetadataImage::default().apply(&image.to_records()).unwrap();
        assert!(again.scram_credential("alice", 1).is_some());
        let (records, _) = alter(
            &again,
            AlterScramRequest {
                deletions: vec![("alice".into(), 1)],
                upsertions: vec![],
            },
        );
        let (gone, _) = again.apply(&records).unwrap();
        assert!(gone.scram_credential("alice", 1).is_none());
    }
}
