//! DescribeAcls, CreateAcls and DeleteAcls without an authorizer: every request is answered
//! SECURITY_DISABLED, exactly as a Kafka broker without `authorizer.class.name` answers them
//! (`kafka-acls.sh --list` then says no authorizer is configured instead of failing on an
//! API the broker does not serve). Nothing is stored. An authorizer replaces this module.

use strom_protocol::messages::create_acls_response::AclCreationResult;
use strom_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use strom_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse, ResponseKind,
};
use strom_protocol::ErrorCode;

use super::str_bytes;

/// Kafka's messages, word for word: DescribeAcls words it differently from the other two.
const DESCRIBE_MESSAGE: &str = "No Authorizer is configured on the broker";
const CHANGE_MESSAGE: &str = "No Authorizer is configured.";

pub(super) fn describe(_request: DescribeAclsRequest) -> ResponseKind {
    ResponseKind::DescribeAcls(
        DescribeAclsResponse::default()
            .with_error_code(ErrorCode::SECURITY_DISABLED.code())
            .with_error_message(Some(str_bytes(DESCRIBE_MESSAGE))),
    )
}

pub(super) fn create(request: CreateAclsRequest) -> ResponseKind {
    let results = request
        .creations
        .iter()
        .map(|_| {
            AclCreationResult::default()
                .with_error_code(ErrorCode::SECURITY_DISABLED.code())
                .with_error_message(Some(str_bytes(CHANGE_MESSAGE)))
        })
        .collect();
    ResponseKind::CreateAcls(CreateAclsResponse::default().with_results(results))
}

pub(super) fn delete(request: DeleteAclsRequest) -> ResponseKind {
    let results = request
        .filters
        .iter()
        .map(|_| {
            DeleteAclsFilterResult::default()
                .with_error_code(ErrorCode::SECURITY_DISABLED.code())
                .with_error_message(Some(str_bytes(CHANGE_MESSAGE)))
        })
        .collect();
    ResponseKind::DeleteAcls(DeleteAclsResponse::default().with_filter_results(results))
}
