//! The share coordinator's RPCs (KIP-932, v0; broker to broker in Kafka, CLUSTER_ACTION):
//! InitializeShareGroupState, ReadShareGroupState, WriteShareGroupState,
//! DeleteShareGroupState and ReadShareGroupStateSummary, served by the coordinator of each
//! key's `__share_group_state` partition on this broker (`share_state.rs`; NOT_COORDINATOR
//! when another broker leads it). Every answer of a write comes after its records are
//! committed.

use strom_protocol::messages::{
    DeleteShareGroupStateRequest, DeleteShareGroupStateResponse, InitializeShareGroupStateRequest,
    InitializeShareGroupStateResponse, ReadShareGroupStateRequest, ReadShareGroupStateResponse,
    ReadShareGroupStateSummaryRequest, ReadShareGroupStateSummaryResponse, ResponseKind,
    WriteShareGroupStateRequest, WriteShareGroupStateResponse,
};
use strom_protocol::{ErrorCode, StrBytes};
use strom_share::partition::{RecordState, StateBatch};
use strom_share::state::ShareKey;
use uuid::Uuid;

use crate::metadata::now_ms;
use crate::server::BrokerContext;

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

fn code_of<T>(result: &Result<T, ErrorCode>) -> ErrorCode {
    result.as_ref().err().copied().unwrap_or(ErrorCode(0))
}

pub(super) async fn initialize(
    context: &BrokerContext,
    request: InitializeShareGroupStateRequest,
) -> ResponseKind {
    use strom_protocol::messages::initialize_share_group_state_response::{
        InitializeStateResult, PartitionResult,
    };
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let key = key(&request.group_id, topic.topic_id, p.partition);
            let now = now_ms();
            let result = context
                .share_state
                .call(context, &key, |c| {
                    c.initialize(&key, p.state_epoch, p.start_offset, now)
                        .map(|r| ((), r))
                })
                .await;
            let code = code_of(&result);
            partitions.push(
                PartitionResult::default()
                    .with_partition(p.partition)
                    .with_error_code(code.code())
                    .with_error_message(message(code)),
            );
        }
        results.push(
            InitializeStateResult::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    ResponseKind::InitializeShareGroupState(
        InitializeShareGroupStateResponse::default().with_results(results),
    )
}

pub(super) async fn read(
    context: &BrokerContext,
    request: ReadShareGroupStateRequest,
) -> ResponseKind {
    use strom_protocol::messages::read_share_group_state_response::{
        PartitionResult, ReadStateResult, StateBatch as WireBatch,
    };
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let key = key(&request.group_id, topic.topic_id, p.partition);
            let now = now_ms();
            let result = context
                .share_state
                .call(context, &key, |c| c.read(&key, p.leader_epoch, now))
                .await;
            let code = code_of(&result);
            let mut data = PartitionResult::default()
                .with_partition(p.partition)
                .with_error_code(code.code())
                .with_error_message(message(code))
                .with_state_epoch(0)
                .with_start_offset(-1);
            if let Ok(state) = result {
                data = data
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
                    );
            }
            partitions.push(data);
        }
        results.push(
            ReadStateResult::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    ResponseKind::ReadShareGroupState(ReadShareGroupStateResponse::default().with_results(results))
}

pub(super) async fn write(
    context: &BrokerContext,
    request: WriteShareGroupStateRequest,
) -> ResponseKind {
    use strom_protocol::messages::write_share_group_state_response::{
        PartitionResult, WriteStateResult,
    };
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let key = key(&request.group_id, topic.topic_id, p.partition);
            let batches: Option<Vec<StateBatch>> = p
                .state_batches
                .iter()
                .map(|b| {
                    Some(StateBatch {
                        first_offset: b.first_offset,
                        last_offset: b.last_offset,
                        state: u8::try_from(b.delivery_state)
                            .ok()
                            .and_then(RecordState::from_id)?,
                        delivery_count: u16::try_from(b.delivery_count).ok()?,
                    })
                })
                .collect();
            let result = match batches {
                None => Err(ErrorCode::INVALID_REQUEST),
                Some(batches) => {
                    let now = now_ms();
                    context
                        .share_state
                        .call(context, &key, |c| {
                            c.write(
                                &key,
                                p.state_epoch,
                                p.leader_epoch,
                                p.start_offset,
                                &batches,
                                now,
                            )
                            .map(|r| ((), r))
                        })
                        .await
                }
            };
            let code = code_of(&result);
            partitions.push(
                PartitionResult::default()
                    .with_partition(p.partition)
                    .with_error_code(code.code())
                    .with_error_message(message(code)),
            );
        }
        results.push(
            WriteStateResult::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    ResponseKind::WriteShareGroupState(
        WriteShareGroupStateResponse::default().with_results(results),
    )
}

pub(super) async fn delete(
    context: &BrokerContext,
    request: DeleteShareGroupStateRequest,
) -> ResponseKind {
    use strom_protocol::messages::delete_share_group_state_response::{
        DeleteStateResult, PartitionResult,
    };
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let key = key(&request.group_id, topic.topic_id, p.partition);
            let result = context
                .share_state
                .call(context, &key, |c| Ok(((), c.delete(&key))))
                .await;
            let code = code_of(&result);
            partitions.push(
                PartitionResult::default()
                    .with_partition(p.partition)
                    .with_error_code(code.code())
                    .with_error_message(message(code)),
            );
        }
        results.push(
            DeleteStateResult::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    ResponseKind::DeleteShareGroupState(
        DeleteShareGroupStateResponse::default().with_results(results),
    )
}

pub(super) async fn summary(
    context: &BrokerContext,
    request: ReadShareGroupStateSummaryRequest,
) -> ResponseKind {
    use strom_protocol::messages::read_share_group_state_summary_response::{
        PartitionResult, ReadStateSummaryResult,
    };
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let key = key(&request.group_id, topic.topic_id, p.partition);
            let result = context
                .share_state
                .call(context, &key, |c| c.summary(&key).map(|s| (s, Vec::new())))
                .await;
            let code = code_of(&result);
            let (state_epoch, leader_epoch, start_offset) = result
                .map(|s| (s.state_epoch, s.leader_epoch, s.start_offset))
                .unwrap_or((0, -1, -1));
            partitions.push(
                PartitionResult::default()
                    .with_partition(p.partition)
                    .with_error_code(code.code())
                    .with_error_message(message(code))
                    .with_state_epoch(state_epoch)
                    .with_leader_epoch(leader_epoch)
                    .with_start_offset(start_offset),
            );
        }
        results.push(
            ReadStateSummaryResult::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    ResponseKind::ReadShareGroupStateSummary(
        ReadShareGroupStateSummaryResponse::default().with_results(results),
    )
}
