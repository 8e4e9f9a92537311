//! ApiVersions: the served APIs and their version ranges (strom-protocol builds the rows).

use strom_protocol::messages::{ApiVersionsRequest, ResponseKind};

use crate::server::BrokerContext;

pub(super) fn handle(
    context: &BrokerContext,
    request: &ApiVersionsRequest,
    version: i16,
) -> ResponseKind {
    ResponseKind::ApiVersions(strom_protocol::api_versions::response(
        &context.api_versions,
        request,
        version,
        &super::finalized_features(&context.metadata.image()),
    ))
}
