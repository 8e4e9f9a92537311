//! DescribeAcls, CreateAcls and DeleteAcls.
//!
//! Without an authorizer (`authorizer.class.name` unset) every request is answered
//! SECURITY_DISABLED, exactly as a Kafka broker without one answers them
//! (`kafka-acls.sh --list` then says no authorizer is configured). With the
//! StandardAuthorizer, ACLs live in the metadata log: creations and deletions go to the
//! controller (`strom_meta::controller::acls`) and are answered once committed;
//! descriptions read the current image. CreateAcls and DeleteAcls need ALTER on the
//! cluster, DescribeAcls DESCRIBE (else CLUSTER_AUTHORIZATION_FAILED), as in Kafka.

use std::collections::BTreeMap;

use strom_meta::acl::{
    AclBinding, AclFilter, AclOperation, AclPermission, PatternType, ResourceType,
};
use strom_meta::{ControllerReply, ControllerRequest};
use strom_protocol::messages::create_acls_request::AclCreation;
use strom_protocol::messages::create_acls_response::AclCreationResult;
use strom_protocol::messages::delete_acls_request::DeleteAclsFilter;
use strom_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use strom_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use strom_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse, ResponseKind,
};
use strom_protocol::{ErrorCode, StrBytes};

use super::{controller_error, opt_string, str_bytes};
use crate::authz;
use crate::principal::Session;
use crate::server::BrokerContext;

/// Kafka's messages, word for word: DescribeAcls words it differently from the other two.
const DESCRIBE_MESSAGE: &str = "No Authorizer is configured on the broker";
const CHANGE_MESSAGE: &str = "No Authorizer is configured.";

pub(super) fn describe(
    context: &BrokerContext,
    session: &Session,
    request: DescribeAclsRequest,
) -> ResponseKind {
    let error = |code: ErrorCode, message: &str| {
        ResponseKind::DescribeAcls(
            DescribeAclsResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message))),
        )
    };
    if !authz::enabled(context) {
        return error(ErrorCode::SECURITY_DISABLED, DESCRIBE_MESSAGE);
    }
    if !authz::cluster_allowed(context, session, ApiKey::DescribeAcls) {
        return error(
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
            "Cluster authorization failed.",
        );
    }
    let filter = AclFilter {
        resource_type: ResourceType::from_id(request.resource_type_filter),
        resource_name: opt_string(request.resource_name_filter),
        pattern_type: PatternType::from_id(request.pattern_type_filter),
        principal: opt_string(request.principal_filter),
        host: opt_string(request.host_filter),
        operation: AclOperation::from_id(request.operation),
        permission: AclPermission::from_id(request.permission_type),
    };
    if filter.is_unknown() {
        return error(ErrorCode::INVALID_REQUEST, "The filter has unknown fields.");
    }
    // Kafka groups the matching ACLs by resource pattern.
    let image = context.metadata.image();
    let mut by_pattern: BTreeMap<(ResourceType, &str, PatternType), Vec<AclDescription>> =
        BTreeMap::new();
    for acl in image.acl_bindings().filter(|acl| filter.matches(acl)) {
        by_pattern
            .entry((acl.resource_type, &acl.resource_name, acl.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(acl.principal.as_str()))
                    .with_host(str_bytes(acl.host.as_str()))
                    .with_operation(acl.operation.id())
                    .with_permission_type(acl.permission.id()),
            );
    }
    let resources = by_pattern
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type.id())
                .with_resource_name(str_bytes(name))
                .with_pattern_type(pattern_type.id())
                .with_acls(acls)
        })
        .collect();
    ResponseKind::DescribeAcls(DescribeAclsResponse::default().with_resources(resources))
}

/// Why an ACL change is refused before it reaches the controller: no authorizer
/// (SECURITY_DISABLED, as Kafka), or no CLUSTER ALTER.
fn change_refused(
    context: &BrokerContext,
    session: &Session,
    api: ApiKey,
) -> Option<(ErrorCode, &'static str)> {
    if !authz::enabled(context) {
        return Some((ErrorCode::SECURITY_DISABLED, CHANGE_MESSAGE));
    }
    (!authz::cluster_allowed(context, session, api)).then_some((
        ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
        "Cluster authorization failed.",
    ))
}

pub(super) async fn create(
    context: &BrokerContext,
    session: &Session,
    request: CreateAclsRequest,
) -> ResponseKind {
    let all_failed = |code: ErrorCode, message: &str| {
        let results = request
            .creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)))
            })
            .collect();
        ResponseKind::CreateAcls(CreateAclsResponse::default().with_results(results))
    };
    if let Some((code, message)) = change_refused(context, session, ApiKey::CreateAcls) {
        return all_failed(code, message);
    }
    let bindings: Vec<AclBinding> = request.creations.iter().map(binding).collect();
    let reply = context
        .metadata
        .submit(ControllerRequest::CreateAcls(bindings))
        .await;
    let results = match reply {
        Ok(ControllerReply::CreateAcls(results)) => results
            .into_iter()
            .map(|result| match result {
                Ok(()) => AclCreationResult::default(),
                Err(error) => AclCreationResult::default()
                    .with_error_code(error.code.code())
                    .with_error_message(Some(str_bytes(error.message))),
            })
            .collect(),
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
    ResponseKind::CreateAcls(CreateAclsResponse::default().with_results(results))
}

pub(super) async fn delete(
    context: &BrokerContext,
    session: &Session,
    request: DeleteAclsRequest,
) -> ResponseKind {
    let all_failed = |code: ErrorCode, message: &str| {
        let results = request
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)))
            })
            .collect();
        ResponseKind::DeleteAcls(DeleteAclsResponse::default().with_filter_results(results))
    };
    if let Some((code, message)) = change_refused(context, session, ApiKey::DeleteAcls) {
        return all_failed(code, message);
    }
    let filters: Vec<AclFilter> = request.filters.iter().map(filter).collect();
    let reply = context
        .metadata
        .submit(ControllerRequest::DeleteAcls(filters))
        .await;
    let results = match reply {
        Ok(ControllerReply::DeleteAcls(results)) => results
            .into_iter()
            .map(|result| match result {
                Ok(deleted) => DeleteAclsFilterResult::default()
                    .with_matching_acls(deleted.iter().map(matching_acl).collect()),
                Err(error) => DeleteAclsFilterResult::default()
                    .with_error_code(error.code.code())
                    .with_error_message(Some(str_bytes(error.message))),
            })
            .collect(),
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
    ResponseKind::DeleteAcls(DeleteAclsResponse::default().with_filter_results(results))
}

fn text(bytes: &StrBytes) -> String {
    bytes.to_string()
}

fn binding(creation: &AclCreation) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::from_id(creation.resource_type),
        resource_name: text(&creation.resource_name),
        pattern_type: PatternType::from_id(creation.resource_pattern_type),
        principal: text(&creation.principal),
        host: text(&creation.host),
        operation: AclOperation::from_id(creation.operation),
        permission: AclPermission::from_id(creation.permission_type),
    }
}

fn filter(filter: &DeleteAclsFilter) -> AclFilter {
    AclFilter {
        resource_type: ResourceType::from_id(filter.resource_type_filter),
        resource_name: filter.resource_name_filter.as_ref().map(text),
        pattern_type: PatternType::from_id(filter.pattern_type_filter),
        principal: filter.principal_filter.as_ref().map(text),
        host: filter.host_filter.as_ref().map(text),
        operation: AclOperation::from_id(filter.operation),
        permission: AclPermission::from_id(filter.permission_type),
    }
}

fn matching_acl(acl: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(acl.resource_type.id())
        .with_resource_name(str_bytes(acl.resource_name.as_str()))
        .with_pattern_type(acl.pattern_type.id())
        .with_principal(str_bytes(acl.principal.as_str()))
        .with_host(str_bytes(acl.host.as_str()))
        .with_operation(acl.operation.id())
        .with_permission_type(acl.permission.id())
}
