//! DescribeCluster: the cluster id, this broker as controller (as KRaft brokers report a
//! live broker), and the registered brokers (fenced ones only when asked, v2+).

use strom_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use strom_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, ResponseKind,
};
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::server::BrokerContext;

/// Kafka's endpoint type for brokers (1); 2 asks for controllers, which are not exposed.
const ENDPOINT_TYPE_BROKERS: i8 = 1;
/// The first version with `endpoint_type`.
const ENDPOINT_TYPE_MIN_VERSION: i16 = 1;

pub(super) async fn handle(
    context: &BrokerContext,
    request: DescribeClusterRequest,
    version: i16,
) -> ResponseKind {
    let base = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(context.config.cluster_id.clone()))
        .with_controller_id(BrokerId(context.config.node_id));
    let base = if version >= ENDPOINT_TYPE_MIN_VERSION {
        base.with_endpoint_type(ENDPOINT_TYPE_BROKERS)
    } else {
        base
    };
    if version >= ENDPOINT_TYPE_MIN_VERSION && request.endpoint_type != ENDPOINT_TYPE_BROKERS {
        return ResponseKind::DescribeCluster(
            base.with_error_code(ErrorCode::UNSUPPORTED_ENDPOINT_TYPE.code())
                .with_error_message(Some(str_bytes("only broker endpoints are served"))),
        );
    }
    let image = context.metadata.image();
    let me = context.advertised_here();
    let mut brokers: Vec<DescribeClusterBroker> = image
        .brokers()
        .filter(|b| b.broker_id != context.config.node_id)
        .filter(|b| !b.fenced || request.include_fenced_brokers)
        .filter_map(|b| {
            let endpoint = b.endpoints.iter().find(|e| e.listener_name == me.name)?;
            let broker = DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.broker_id))
                .with_host(str_bytes(endpoint.host.clone()))
                .with_port(i32::from(endpoint.port))
                .with_rack(b.rack.clone().map(str_bytes));
            Some(if version >= 2 {
                broker.with_is_fenced(b.fenced)
            } else {
                broker
            })
        })
        .collect();
    brokers.push(
        DescribeClusterBroker::default()
            .with_broker_id(BrokerId(context.config.node_id))
            .with_host(str_bytes(me.host.clone()))
            .with_port(i32::from(me.port))
            .with_rack(context.config.rack.clone().map(str_bytes)),
    );
    brokers.sort_by_key(|b| b.broker_id.0);
    ResponseKind::DescribeCluster(base.with_brokers(brokers))
}
