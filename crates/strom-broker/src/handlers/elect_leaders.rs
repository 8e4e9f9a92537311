//! ElectLeaders on a single node: the only replica already leads every partition, so there
//! is never anything to elect. As in Kafka, named partitions answer ELECTION_NOT_NEEDED (or
//! UNKNOWN_TOPIC_OR_PARTITION), and a request for all partitions answers with no results.

use strom_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use strom_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, ResponseKind};
use strom_protocol::ErrorCode;

use super::resolve;
use crate::server::BrokerContext;

pub(super) async fn handle(
    context: &BrokerContext,
    request: ElectLeadersRequest,
    _version: i16,
) -> ResponseKind {
    let image = context.metadata.image();
    let results = request
        .topic_partitions
        .unwrap_or_default()
        .into_iter()
        .map(|topic| {
            let partition_result = topic
                .partitions
                .iter()
                .map(|partition| {
                    let code = match resolve(&image, &topic.topic.0, *partition) {
                        Some(_) => ErrorCode::ELECTION_NOT_NEEDED,
                        None => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    };
                    PartitionResult::default()
                        .with_partition_id(*partition)
                        .with_error_code(code.code())
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(topic.topic)
                .with_partition_result(partition_result)
        })
        .collect();
    ResponseKind::ElectLeaders(
        ElectLeadersResponse::default().with_replica_election_results(results),
    )
}
