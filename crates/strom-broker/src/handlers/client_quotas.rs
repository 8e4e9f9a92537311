//! AlterClientQuotas and DescribeClientQuotas: client quotas stored in the metadata log
//! (`strom_meta::quota`, enforced by `crate::quotas`). Altering needs ALTER_CONFIGS on the
//! cluster, describing DESCRIBE_CONFIGS (else CLUSTER_AUTHORIZATION_FAILED), as in Kafka.

use strom_meta::quota::{
    filter_matches, ComponentMatch, QuotaEntity, QuotaValue, CLIENT_ID, IP, USER,
};
use strom_meta::{ControllerReply, ControllerRequest};
use strom_protocol::messages::alter_client_quotas_response::{
    EntityData as AlterEntity, EntryData as AlterEntry,
};
use strom_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use strom_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse, ResponseKind,
};
use strom_protocol::ErrorCode;

use super::{controller_error, str_bytes};
use crate::authz;
use crate::principal::Session;
use crate::server::BrokerContext;

pub(super) async fn alter(
    context: &BrokerContext,
    session: &Session,
    request: AlterClientQuotasRequest,
) -> ResponseKind {
    let wire_entity =
        |entity: &[strom_protocol::messages::alter_client_quotas_request::EntityData]| {
            entity
                .iter()
                .map(|e| {
                    AlterEntity::default()
                        .with_entity_type(e.entity_type.clone())
                        .with_entity_name(e.entity_name.clone())
                })
                .collect::<Vec<_>>()
        };
    let all_failed = |code: ErrorCode, message: &str| {
        let entries = request
            .entries
            .iter()
            .map(|e| {
                AlterEntry::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)))
                    .with_entity(wire_entity(&e.entity))
            })
            .collect();
        ResponseKind::AlterClientQuotas(AlterClientQuotasResponse::default().with_entries(entries))
    };
    if !authz::cluster_allowed(context, session, ApiKey::AlterClientQuotas) {
        return all_failed(
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
            "Cluster authorization failed.",
        );
    }
    let mut entries = Vec::with_capacity(request.entries.len());
    let mut duplicates = Vec::new();
    for entry in &request.entries {
        let mut entity = QuotaEntity::new();
        let mut repeated = false;
        for e in &entry.entity {
            repeated |= entity
                .insert(
                    e.entity_type.to_string(),
                    e.entity_name.as_ref().map(|n| n.to_string()),
                )
                .is_some();
        }
        duplicates.push(repeated);
        let ops = entry
            .ops
            .iter()
            .map(|op| {
                let value = (!op.remove).then(|| QuotaValue::new(op.value));
                (op.key.to_string(), value)
            })
            .collect();
        // A repeated entity type makes the entity invalid; an empty one is refused below.
        entries.push(if repeated {
            (QuotaEntity::new(), Vec::new())
        } else {
            (entity, ops)
        });
    }
    let reply = context
        .metadata
        .submit(ControllerRequest::AlterClientQuotas {
            entries,
            validate_only: request.validate_only,
        })
        .await;
    let results = match reply {
        Ok(ControllerReply::AlterClientQuotas(results)) => results,
        Ok(_) => {
            return all_failed(
                ErrorCode::UNKNOWN_SERVER_ERROR,
                "unexpected controller reply",
            )
        }
        Err(error) => {
            let (code, message) = controller_error(&error);
            return all_failed(ErrorCode(code), &message);
        }
    };
    let entries = request
        .entries
        .iter()
        .zip(results)
        .zip(duplicates)
        .map(|((entry, result), repeated)| {
            let wire = AlterEntry::default().with_entity(wire_entity(&entry.entity));
            match result {
                _ if repeated => wire
                    .with_error_code(ErrorCode::INVALID_REQUEST.code())
                    .with_error_message(Some(str_bytes("Duplicate quota entity type"))),
                Ok(()) => wire,
                Err(error) => wire
                    .with_error_code(error.code.code())
                    .with_error_message(Some(str_bytes(error.message))),
            }
        })
        .collect();
    ResponseKind::AlterClientQuotas(AlterClientQuotasResponse::default().with_entries(entries))
}

pub(super) fn describe(
    context: &BrokerContext,
    session: &Session,
    request: DescribeClientQuotasRequest,
) -> ResponseKind {
    let error = |code: ErrorCode, message: &str| {
        ResponseKind::DescribeClientQuotas(
            DescribeClientQuotasResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message)))
                .with_entries(None),
        )
    };
    if !authz::cluster_allowed(context, session, ApiKey::DescribeClientQuotas) {
        return error(
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
            "Cluster authorization failed.",
        );
    }
    let mut components = Vec::with_capacity(request.components.len());
    for c in &request.components {
        let kind = c.entity_type.to_string();
        if ![USER, CLIENT_ID, IP].contains(&kind.as_str()) {
            return error(
                ErrorCode::INVALID_REQUEST,
                &format!("Custom entity type {kind} not supported"),
            );
        }
        if components.iter().any(|(k, _)| *k == kind) {
            return error(
                ErrorCode::INVALID_REQUEST,
                &format!("Duplicate entity type {kind}"),
            );
        }
        let matching = match (c.match_type, &c._match) {
            (0, Some(name)) => ComponentMatch::Exact(name.to_string()),
            (0, None) | (1, _) => ComponentMatch::Default,
            (2, _) => ComponentMatch::Specified,
            (other, _) => {
                return error(
                    ErrorCode::INVALID_REQUEST,
                    &format!("Unknown match type {other}"),
                )
            }
        };
        components.push((kind, matching));
    }
    let has_ip = components.iter().any(|(k, _)| k == IP);
    if has_ip && components.len() > 1 {
        return error(
            ErrorCode::INVALID_REQUEST,
            "Invalid entity filter component combination, IP filter component should not be used with user or clientId filter component.",
        );
    }
    let image = context.metadata.image();
    let entries = image
        .client_quotas()
        .filter(|(entity, _)| filter_matches(&components, request.strict, entity))
        .map(|(entity, values)| {
            EntryData::default()
                .with_entity(
                    entity
                        .iter()
                        .map(|(kind, name)| {
                            EntityData::default()
                                .with_entity_type(str_bytes(kind.as_str()))
                                .with_entity_name(name.as_deref().map(str_bytes))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(key, value)| {
                            ValueData::default()
                                .with_key(str_bytes(key.as_str()))
                                .with_value(value.get())
                        })
                        .collect(),
                )
        })
        .collect();
    ResponseKind::DescribeClientQuotas(
        DescribeClientQuotasResponse::default().with_entries(Some(entries)),
    )
}
