//! The share coordinator's RPCs (KIP-932, v0; broker to broker in Kafka, CLUSTER_ACTION):
//! InitializeShareGroupState, ReadShareGroupState, WriteShareGroupState,
//! DeleteShareGroupState and ReadShareGroupStateSummary, served by the coordinator of each
//! key's `__share_group_state` partition on this broker (`share_persister::local`,
//! `share_state.rs`; NOT_COORDINATOR when another broker leads it: the caller retries
//! there). Every answer of a write comes after its records are committed. The five have
//! one shape ([`serve`]); only the wire types differ.

use strom_protocol::messages::{
    DeleteShareGroupStateRequest, DeleteShareGroupStateResponse, InitializeShareGroupStateRequest,
    InitializeShareGroupStateResponse, ReadShareGroupStateRequest, ReadShareGroupStateResponse,
    ReadShareGroupStateSummaryRequest, ReadShareGroupStateSummaryResponse, ResponseKind,
    WriteShareGroupStateRequest, WriteShareGroupStateResponse,
};
use strom_protocol::{ErrorCode, StrBytes};
use strom_share::partition::StateBatch;
use strom_share::state::ShareKey;
use uuid::Uuid;

use crate::server::BrokerContext;
use crate::share_persister::{local, StateAnswer, StateCall};

fn key(group_id: &StrBytes, topic_id: Uuid, partition: i32) -> ShareKey {
    ShareKey {
        group_id: group_id.to_string(),
        topic_id: *topic_id.as_bytes(),
        partition,
    }
}

fn message(code: ErrorCode) -> Option<StrBytes> {
    (!code.is_none()).then(|| StrBytes::from_string(format!("share state: {code}")))
}

/// Per topic, per partition: a call (or a refusal) in, its answer out.
type Calls = Vec<(Uuid, Vec<(i32, Result<StateCall, ErrorCode>)>)>;
type Answers = Vec<(Uuid, Vec<(i32, Result<StateAnswer, ErrorCode>)>)>;

/// The one shape of the five handlers: every (topic, partition) of the request is one
/// [`StateCall`] (or a refusal) run on this broker's share coordinator, answered in order.
async fn serve(context: &BrokerContext, group_id: &StrBytes, topics: Calls) -> Answers {
    let mut results = Vec::with_capacity(topics.len());
    for (topic_id, partitions) in topics {
        let mut answers = Vec::with_capacity(partitions.len());
        for (partition, call) in partitions {
            let answer = match call {
                Ok(call) => local(context, &key(group_id, topic_id, partition), &call).await,
                Err(code) => Err(code),
            };
            answers.push((partition, answer));
        }
        results.push((topic_id, answers));
    }
    results
}

/// The error code of an answer (0 for success).
fn code_of(answer: &Result<StateAnswer, ErrorCode>) -> ErrorCode {
    answer.as_ref().err().copied().unwrap_or(ErrorCode(0))
}

pub(super) async fn initialize(
    context: &BrokerContext,
    request: InitializeShareGroupStateRequest,
) -> ResponseKind {
    use strom_protocol::messages::initialize_share_group_state_response::{
        InitializeStateResult, PartitionResult,
    };
    let calls = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| {
                let call = StateCall::Initialize {
                    state_epoch: p.state_epoch,
                    start_offset: p.start_offset,
                };
                (p.partition, Ok(call))
            });
            (t.topic_id, partitions.collect())
        })
        .collect();
    let results = serve(context, &request.group_id, calls).await;
    let results = results.into_iter().map(|(topic_id, answers)| {
        let partitions = answers.into_iter().map(|(partition, answer)| {
            let code = code_of(&answer);
            PartitionResult::default()
                .with_partition(partition)
                .with_error_code(code.code())
                .with_error_message(message(code))
        });
        InitializeStateResult::default()
            .with_topic_id(topic_id)
            .with_partitions(partitions.collect())
    });
    ResponseKind::InitializeShareGroupState(
        InitializeShareGroupStateResponse::default().with_results(results.collect()),
    )
}

pub(super) async fn read(
    context: &BrokerContext,
    request: ReadShareGroupStateRequest,
) -> ResponseKind {
    use strom_protocol::messages::read_share_group_state_response::{
        PartitionResult, ReadStateResult, StateBatch as WireBatch,
    };
    let calls = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| {
                let call = StateCall::Read {
                    leader_epoch: p.leader_epoch,
                };
                (p.partition, Ok(call))
            });
            (t.topic_id, partitions.collect())
        })
        .collect();
    let results = serve(context, &request.group_id, calls).await;
    let results = results.into_iter().map(|(topic_id, answers)| {
        let partitions = answers.into_iter().map(|(partition, answer)| {
            // No state is Kafka's UNKNOWN_TOPIC_OR_PARTITION.
            let answer = match answer {
                Ok(StateAnswer::Read(Some(state))) => Ok(state),
                Ok(_) => Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                Err(code) => Err(code),
            };
            let code = answer.as_ref().err().copied().unwrap_or(ErrorCode(0));
            let data = PartitionResult::default()
                .with_partition(partition)
                .with_error_code(code.code())
                .with_error_message(message(code))
                .with_state_epoch(0)
                .with_start_offset(-1);
            match answer {
                Err(_) => data,
                Ok(state) => data
                    .with_state_epoch(state.state_epoch)
                    .with_start_offset(state.start_offset)
                    .with_state_batches(
                        state
                            .batches
                            .iter()
                            .map(|b| {
                                WireBatch::default()
                                    .with_first_offset(b.first_offset)
                                    .with_last_offset(b.last_offset)
                                    .with_delivery_state(b.state.id() as i8)
                                    .with_delivery_count(
                                        i16::try_from(b.delivery_count).unwrap_or(i16::MAX),
                                    )
                            })
                            .collect(),
                    ),
            }
        });
        ReadStateResult::default()
            .with_topic_id(topic_id)
            .with_partitions(partitions.collect())
    });
    ResponseKind::ReadShareGroupState(
        ReadShareGroupStateResponse::default().with_results(results.collect()),
    )
}

pub(super) async fn write(
    context: &BrokerContext,
    request: WriteShareGroupStateRequest,
) -> ResponseKind {
    use strom_protocol::messages::write_share_group_state_response::{
        PartitionResult, WriteStateResult,
    };
    let calls = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| {
                let batches: Option<Vec<StateBatch>> = p
                    .state_batches
                    .iter()
                    .map(|b| {
                        crate::share_persister::state_batch(
                            b.first_offset,
                            b.last_offset,
                            b.delivery_state,
                            b.delivery_count,
                        )
                    })
                    .collect();
                let call = batches
                    .map(|batches| StateCall::Write {
                        state_epoch: p.state_epoch,
                        leader_epoch: p.leader_epoch,
                        start_offset: p.start_offset,
                        batches,
                    })
                    .ok_or(ErrorCode::INVALID_REQUEST);
                (p.partition, call)
            });
            (t.topic_id, partitions.collect())
        })
        .collect();
    let results = serve(context, &request.group_id, calls).await;
    let results = results.into_iter().map(|(topic_id, answers)| {
        let partitions = answers.into_iter().map(|(partition, answer)| {
            let code = code_of(&answer);
            PartitionResult::default()
                .with_partition(partition)
                .with_error_code(code.code())
                .with_error_message(message(code))
        });
        WriteStateResult::default()
            .with_topic_id(topic_id)
            .with_partitions(partitions.collect())
    });
    ResponseKind::WriteShareGroupState(
        WriteShareGroupStateResponse::default().with_results(results.collect()),
    )
}

pub(super) async fn delete(
    context: &BrokerContext,
    request: DeleteShareGroupStateRequest,
) -> ResponseKind {
    use strom_protocol::messages::delete_share_group_state_response::{
        DeleteStateResult, PartitionResult,
    };
    let calls = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| (p.partition, Ok(StateCall::Delete)));
            (t.topic_id, partitions.collect())
        })
        .collect();
    let results = serve(context, &request.group_id, calls).await;
    let results = results.into_iter().map(|(topic_id, answers)| {
        let partitions = answers.into_iter().map(|(partition, answer)| {
            let code = code_of(&answer);
            PartitionResult::default()
                .with_partition(partition)
                .with_error_code(code.code())
                .with_error_message(message(code))
        });
        DeleteStateResult::default()
            .with_topic_id(topic_id)
            .with_partitions(partitions.collect())
    });
    ResponseKind::DeleteShareGroupState(
        DeleteShareGroupStateResponse::default().with_results(results.collect()),
    )
}

pub(super) async fn summary(
    context: &BrokerContext,
    request: ReadShareGroupStateSummaryRequest,
) -> ResponseKind {
    use strom_protocol::messages::read_share_group_state_summary_response::{
        PartitionResult, ReadStateSummaryResult,
    };
    let calls = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| (p.partition, Ok(StateCall::Summary)));
            (t.topic_id, partitions.collect())
        })
        .collect();
    let results = serve(context, &request.group_id, calls).await;
    let results = results.into_iter().map(|(topic_id, answers)| {
        let partitions = answers.into_iter().map(|(partition, answer)| {
            // No state is Kafka's UNKNOWN_TOPIC_OR_PARTITION.
            let answer = match answer {
                Ok(StateAnswer::Summary(Some(summary))) => Ok(summary),
                Ok(_) => Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                Err(code) => Err(code),
            };
            let code = answer.as_ref().err().copied().unwrap_or(ErrorCode(0));
            let (state_epoch, leader_epoch, start_offset) = answer
                .map(|s| (s.state_epoch, s.leader_epoch, s.start_offset))
                .unwrap_or((0, -1, -1));
            PartitionResult::default()
                .with_partition(partition)
                .with_error_code(code.code())
                .with_error_message(message(code))
                .with_state_epoch(state_epoch)
                .with_leader_epoch(leader_epoch)
                .with_start_offset(start_offset)
        });
        ReadStateSummaryResult::default()
            .with_topic_id(topic_id)
            .with_partitions(partitions.collect())
    });
    ResponseKind::ReadShareGroupStateSummary(
        ReadShareGroupStateSummaryResponse::default().with_results(results.collect()),
    )
}
