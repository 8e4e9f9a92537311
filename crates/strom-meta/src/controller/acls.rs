//! Security metadata. CreateAcls and DeleteAcls, as Kafka's `AclControlManager`: each new ACL is validated and
//! gets a fresh id unless an identical ACL exists (then it succeeds with no record); a
//! deletion removes every ACL any filter matches, all in one entry.

use crate::acl::{validate_new_acl, AclBinding, AclFilter};
use crate::controller::errors::{ApiError, ErrorCode};
use crate::controller::messages::ControllerReply;
use crate::controller::{Handled, IdSource};
use crate::image::MetadataImage;
use crate::records::MetadataRecord;
use std::collections::BTreeSet;
use uuid::Uuid;

/// Most ACLs one cluster may hold: bounds the image's memory and every authorization scan
/// against a client creating ACLs in a loop (Kafka has no limit; a million is far beyond
/// any real deployment).
pub const ACLS_MAX: usize = 1_000_000;

pub(crate) fn create_acls(
    image: &MetadataImage,
    ids: &mut dyn IdSource,
    acls: Vec<AclBinding>,
) -> Handled {
    let mut existing: BTreeSet<&AclBinding> = image.acl_bindings().collect();
    let mut used_ids: BTreeSet<Uuid> = BTreeSet::new();
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(acls.len());
    for acl in &acls {
        if let Err(message) = validate_new_acl(acl) {
            results.push(Err(ApiError::new(ErrorCode::InvalidRequest, message)));
            continue;
        }
        if !existing.contains(acl) {
            if existing.len() >= ACLS_MAX {
                results.push(Err(ApiError::new(
                    ErrorCode::PolicyViolation,
                    format!("the cluster already holds {ACLS_MAX} ACLs; delete some first"),
                )));
                continue;
            }
            let id = fresh_id(image, ids, &used_ids);
            used_ids.insert(id);
            existing.insert(acl);
            records.push(MetadataRecord::AccessControlEntry {
                id,
                acl: acl.clone(),
            });
        }
        results.push(Ok(()));
    }
    Ok((records, ControllerReply::CreateAcls(results)))
}

/// A random id no ACL uses (Kafka's `newAclId`); bounded, the id source never repeats in
/// practice.
fn fresh_id(image: &MetadataImage, ids: &mut dyn IdSource, used: &BTreeSet<Uuid>) -> Uuid {
    let mut id = ids.next_topic_id();
    for _ in 0..16 {
        let taken = id.is_nil() || used.contains(&id) || image.acls().any(|(a, _)| *a == id);
        if !taken {
            break;
        }
        id = ids.next_topic_id();
    }
    id
}

pub(crate) fn delete_acls(image: &MetadataImage, filters: Vec<AclFilter>) -> Handled {
    let mut removed: BTreeSet<Uuid> = BTreeSet::new();
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(filters.len());
    for filter in &filters {
        if filter.is_unknown() {
            results.push(Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "Unknown patternFilter or entryFilter.",
            )));
            continue;
        }
        let mut deleted = Vec::new();
        for (id, acl) in image.acls() {
            if filter.matches(acl) {
                deleted.push(acl.clone());
                if removed.insert(*id) {
                    records.push(MetadataRecord::RemoveAccessControlEntry { id: *id });
                }
            }
        }
        results.push(Ok(deleted));
    }
    Ok((records, ControllerReply::DeleteAcls(results)))
}

/// AlterClientQuotas, as Kafka's `ClientQuotaControlManager`: each entry is validated as a
/// whole (entity, then every key and value) and refused INVALID_REQUEST on the first fault;
/// valid entries become one record per key (removing an absent key is a no-op).
pub(crate) fn alter_client_quotas(
    image: &MetadataImage,
    entries: Vec<crate::quota::QuotaAlteration>,
    validate_only: bool,
) -> Handled {
    use crate::quota::{validate_entity, validate_value};
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(entries.len());
    for (entity, ops) in &entries {
        let checked = validate_entity(entity).and_then(|()| {
            let mut seen = BTreeSet::new();
            for (key, value) in ops {
                if !seen.insert(key) {
                    return Err(format!("Duplicate quota key {key}"));
                }
                if let Some(value) = value {
                    validate_value(entity, key, value.get())?;
                } else if !matches!(
                    key.as_str(),
                    crate::quota::PRODUCER_BYTE_RATE
                        | crate::quota::CONSUMER_BYTE_RATE
                        | crate::quota::REQUEST_PERCENTAGE
                        | crate::quota::CONTROLLER_MUTATION_RATE
                        | crate::quota::CONNECTION_CREATION_RATE
                ) {
                    return Err(format!("Invalid configuration key {key}"));
                }
            }
            Ok(())
        });
        if let Err(message) = checked {
            results.push(Err(ApiError::new(ErrorCode::InvalidRequest, message)));
            continue;
        }
        if !validate_only {
            for (key, value) in ops {
                let present = image.client_quota(entity, key).is_some();
                if value.is_some() || present {
                    records.push(MetadataRecord::ClientQuota {
                        entity: entity.clone(),
                        key: key.clone(),
                        value: *value,
                    });
                }
            }
        }
        results.push(Ok(()));
    }
    Ok((records, ControllerReply::AlterClientQuotas(results)))
}
