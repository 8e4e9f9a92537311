//! The share partitions' way to their durable state (Kafka's `Persister`): the five share
//! coordinator calls (Initialize, Read, Write, Delete, ReadSummary of one share partition's
//! state) made on the leader of the key's `__share_group_state` partition: in-process when
//! this broker leads it (`share_state.rs`), otherwise as the share coordinator RPC
//! (`handlers/share_group_state.rs` there) over the inter-broker listener with its security
//! (`peer.rs`).
//!
//! Retries: NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS and COORDINATOR_NOT_AVAILABLE
//! (the state partition's leader moved, is loading, or could not commit in time) and a peer
//! that cannot be reached are retried against the leader the metadata names then, with a
//! back-off doubling from `RETRY_BACKOFF_MIN_MS` to `RETRY_BACKOFF_MAX_MS`, until
//! `RETRY_DEADLINE_MS` has passed; then the last error is answered. Every other error is
//! answered at once.
//!
//! Ordering: a call returns success only once the state coordinator answered it, and the
//! coordinator answers a write only once its records are committed on the state partition's
//! ISR (`share_state.rs`), locally or remotely alike. A retried Write is harmless (the
//! state written is the share partition's whole state, merged newest-wins); a retried
//! Initialize whose first attempt was applied answers FENCED_STATE_EPOCH, and the share
//! partition's next creation reads the state it wrote.
//!
//! Connections: one per peer broker, reused, one request at a time (a call holds it for
//! its round trip); any error drops it and the next call connects again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strom_meta::MetadataImage;
use strom_protocol::messages::{
    DeleteShareGroupStateRequest, InitializeShareGroupStateRequest, ReadShareGroupStateRequest,
    ReadShareGroupStateSummaryRequest, WriteShareGroupStateRequest,
};
use strom_protocol::{ErrorCode, StrBytes};
use strom_share::partition::{RecordState, StateBatch};
use strom_share::state::{ReadResult, ShareKey, StateError, Summary};
use uuid::Uuid;

use crate::metadata::now_ms;
use crate::peer::PeerConnection;
use crate::server::BrokerContext;
use crate::share_state::{coordinator_key, ensure_state_topic, partition_for, SHARE_STATE_TOPIC};

/// The result for (`topic_id`, `partition`) in a share-state RPC response (each RPC's
/// response is its own generated type, with the same `results[].partitions[]` shape).
macro_rules! answered_partition {
    ($response:expr, $topic_id:expr, $partition:expr) => {
        $response
            .results
            .iter()
            .filter(|r| r.topic_id == $topic_id)
            .flat_map(|r| r.partitions.iter())
            .find(|p| p.partition == $partition)
    };
}

/// A state batch as the state RPCs carry it, or `None` when its delivery state or count is
/// not one Kafka defines (the RPC's request and response types each have their own struct).
pub(crate) fn state_batch(
    first_offset: i64,
    last_offset: i64,
    delivery_state: i8,
    delivery_count: i16,
) -> Option<StateBatch> {
    Some(StateBatch {
        first_offset,
        last_offset,
        state: u8::try_from(delivery_state)
            .ok()
            .and_then(RecordState::from_id)?,
        delivery_count: u16::try_from(delivery_count).ok()?,
    })
}

/// How long one request to another broker may take (its commit wait is 5 s).
const PEER_TIMEOUT_MS: u64 = 15_000;
/// The largest response frame accepted from another broker.
const PEER_FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;
/// The share coordinator RPC version sent (v0 is the only one).
const STATE_RPC_VERSION: i16 = 0;
/// Retry back-off bounds and the time after which a retriable error is answered.
const RETRY_BACKOFF_MIN_MS: u64 = 50;
const RETRY_BACKOFF_MAX_MS: u64 = 1_000;
const RETRY_DEADLINE_MS: u64 = 15_000;

/// One call on the state of one share partition.
#[derive(Debug, Clone)]
pub enum StateCall {
    /// InitializeShareGroupState: a new state epoch at a start offset, nothing in flight.
    Initialize { state_epoch: i32, start_offset: i64 },
    /// ReadShareGroupState at a leader epoch (fencing older partition leaders; -1 does not).
    Read { leader_epoch: i32 },
    /// WriteShareGroupState.
    Write {
        state_epoch: i32,
        leader_epoch: i32,
        start_offset: i64,
        batches: Vec<StateBatch>,
    },
    /// DeleteShareGroupState.
    Delete,
    /// ReadShareGroupStateSummary.
    Summary,
}

/// A call's answer. A key without state reads as `None` (Kafka's UNKNOWN_TOPIC_OR_PARTITION).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateAnswer {
    /// Initialize, Write, Delete.
    Done,
    /// Read.
    Read(Option<ReadResult>),
    /// Summary.
    Summary(Option<Summary>),
}

/// The connections to other brokers' share coordinators.
#[derive(Debug, Default)]
pub struct StatePeers {
    peers: Mutex<HashMap<i32, Arc<tokio::sync::Mutex<Option<PeerConnection>>>>>,
}

/// Where a key's state partition is led now.
enum Route {
    Local,
    Remote(i32),
}

fn route(
    context: &BrokerContext,
    image: &MetadataImage,
    key: &ShareKey,
) -> Result<Route, ErrorCode> {
    let partition = partition_for(context, &coordinator_key(key));
    let topic = image
        .topic_by_name(SHARE_STATE_TOPIC)
        .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)?;
    let state = image
        .partition(topic.topic_id, partition)
        .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)?;
    if state.leader == context.config.node_id {
        Ok(Route::Local)
    } else if state.leader < 0 {
        Err(ErrorCode::COORDINATOR_NOT_AVAILABLE)
    } else {
        Ok(Route::Remote(state.leader))
    }
}

/// Whether a call answering `code` is tried again.
fn retriable(code: ErrorCode) -> bool {
    code == ErrorCode::NOT_COORDINATOR
        || code == ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
        || code == ErrorCode::COORDINATOR_NOT_AVAILABLE
}

/// Makes `call` on `key`'s state where it lives, retrying as the module header says.
pub async fn call(
    context: &BrokerContext,
    key: &ShareKey,
    call: &StateCall,
) -> Result<StateAnswer, ErrorCode> {
    if !ensure_state_topic(context).await {
        return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(RETRY_DEADLINE_MS);
    let mut backoff = RETRY_BACKOFF_MIN_MS;
    loop {
        let result = call_once(context, key, call).await;
        match result {
            Err(code) if retriable(code) && tokio::time::Instant::now() < deadline => {
                tracing::debug!(group = %key.group_id, partition = key.partition, %code, "share state call retried");
                tokio::time::sleep(Duration::from_millis(backoff)).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX_MS);
            }
            other => return other,
        }
    }
}

/// One attempt of `call`, locally or at the state partition's leader.
async fn call_once(
    context: &BrokerContext,
    key: &ShareKey,
    call: &StateCall,
) -> Result<StateAnswer, ErrorCode> {
    let image = context.metadata.image();
    match route(context, &image, key)? {
        Route::Local => local(context, key, call).await,
        Route::Remote(broker) => remote(context, &image, broker, key, call).await,
    }
}

/// Runs `call` on this broker's share coordinator of `key` (NOT_COORDINATOR if this broker
/// does not lead its state partition). The share coordinator RPC handlers serve with it.
pub async fn local(
    context: &BrokerContext,
    key: &ShareKey,
    call: &StateCall,
) -> Result<StateAnswer, ErrorCode> {
    let store = &context.share_state;
    let now = now_ms();
    match call {
        StateCall::Initialize {
            state_epoch,
            start_offset,
        } => {
            store
                .call(context, key, |c| {
                    c.initialize(key, *state_epoch, *start_offset, now)
                        .map(|r| (StateAnswer::Done, r))
                })
                .await
        }
        StateCall::Read { leader_epoch } => {
            store
                .call(context, key, |c| match c.read(key, *leader_epoch, now) {
                    Ok((result, records)) => Ok((StateAnswer::Read(Some(result)), records)),
                    Err(StateError::UnknownKey) => Ok((StateAnswer::Read(None), Vec::new())),
                    Err(other) => Err(other),
                })
                .await
        }
        StateCall::Write {
            state_epoch,
            leader_epoch,
            start_offset,
            batches,
        } => {
            store
                .call(context, key, |c| {
                    c.write(
                        key,
                        *state_epoch,
                        *leader_epoch,
                        *start_offset,
                        batches,
                        now,
                    )
                    .map(|r| (StateAnswer::Done, r))
                })
                .await
        }
        StateCall::Delete => {
            store
                .call(context, key, |c| Ok((StateAnswer::Done, c.delete(key))))
                .await
        }
        StateCall::Summary => {
            store
                .call(context, key, |c| match c.summary(key) {
                    Ok(summary) => Ok((StateAnswer::Summary(Some(summary)), Vec::new())),
                    Err(StateError::UnknownKey) => Ok((StateAnswer::Summary(None), Vec::new())),
                    Err(other) => Err(other),
                })
                .await
        }
    }
}

/// The peer error's stand-in code: the peer is unreachable or answered nonsense, which is
/// retried as a coordinator that is not available.
fn unreachable(broker: i32, what: &str, reason: &dyn std::fmt::Display) -> ErrorCode {
    tracing::debug!(broker, %reason, "{what}: cannot reach the share coordinator");
    ErrorCode::COORDINATOR_NOT_AVAILABLE
}

/// Sends `call` to the share coordinator on `broker`.
async fn remote(
    context: &BrokerContext,
    image: &MetadataImage,
    broker: i32,
    key: &ShareKey,
    call: &StateCall,
) -> Result<StateAnswer, ErrorCode> {
    let slot = {
        let mut peers = context
            .share_state
            .peers
            .peers
            .lock()
            .map_err(|_| ErrorCode::COORDINATOR_NOT_AVAILABLE)?;
        Arc::clone(peers.entry(broker).or_default())
    };
    let mut connection = slot.lock().await;
    let addr = crate::markers::peer_addr(context, image, broker)
        .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)?;
    if connection.as_ref().is_none_or(|c| c.addr() != addr) {
        let client_id = format!("strom-share-persister-{}", context.config.node_id);
        match PeerConnection::connect(
            &addr,
            client_id,
            PEER_TIMEOUT_MS,
            PEER_FRAME_BYTES_MAX,
            &context.config.listeners.inter_broker_client,
        )
        .await
        {
            Ok(c) => *connection = Some(c),
            Err(error) => {
                *connection = None;
                return Err(unreachable(broker, "connect", &error));
            }
        }
    }
    let Some(conn) = connection.as_mut() else {
        return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
    };
    let answer = send(conn, key, call).await;
    if let Err(error) = &answer {
        *connection = None;
        return Err(unreachable(broker, "share state RPC", error));
    }
    answer.unwrap_or(Err(ErrorCode::COORDINATOR_NOT_AVAILABLE))
}

/// One RPC on a connection; the outer `Err` is the connection's failure (it is dropped),
/// the inner one the coordinator's answer for the key.
async fn send(
    conn: &mut PeerConnection,
    key: &ShareKey,
    call: &StateCall,
) -> Result<Result<StateAnswer, ErrorCode>, crate::peer::PeerError> {
    let group_id = StrBytes::from_string(key.group_id.clone());
    let topic_id = Uuid::from_bytes(key.topic_id);
    let partition = key.partition;
    match call {
        StateCall::Initialize {
            state_epoch,
            start_offset,
        } => {
            use strom_protocol::messages::initialize_share_group_state_request::{
                InitializeStateData, PartitionData,
            };
            let request = InitializeShareGroupStateRequest::default()
                .with_group_id(group_id)
                .with_topics(vec![InitializeStateData::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![PartitionData::default()
                        .with_partition(partition)
                        .with_state_epoch(*state_epoch)
                        .with_start_offset(*start_offset)])]);
            let version = conn.version_of::<InitializeShareGroupStateRequest>(STATE_RPC_VERSION)?;
            let response = conn.send(&request, version, PEER_TIMEOUT_MS).await?;
            let code =
                answered_partition!(response, topic_id, partition).map(|p| ErrorCode(p.error_code));
            Ok(done(code))
        }
        StateCall::Read { leader_epoch } => {
            use strom_protocol::messages::read_share_group_state_request::{
                PartitionData, ReadStateData,
            };
            let request = ReadShareGroupStateRequest::default()
                .with_group_id(group_id)
                .with_topics(vec![ReadStateData::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![PartitionData::default()
                        .with_partition(partition)
                        .with_leader_epoch(*leader_epoch)])]);
            let version = conn.version_of::<ReadShareGroupStateRequest>(STATE_RPC_VERSION)?;
            let response = conn.send(&request, version, PEER_TIMEOUT_MS).await?;
            let Some(p) = answered_partition!(response, topic_id, partition) else {
                return Ok(Err(ErrorCode::COORDINATOR_NOT_AVAILABLE));
            };
            let code = ErrorCode(p.error_code);
            if code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION {
                return Ok(Ok(StateAnswer::Read(None)));
            }
            if !code.is_none() {
                return Ok(Err(code));
            }
            let batches: Option<Vec<StateBatch>> = p
                .state_batches
                .iter()
                .map(|b| {
                    state_batch(
                        b.first_offset,
                        b.last_offset,
                        b.delivery_state,
                        b.delivery_count,
                    )
                })
                .collect();
            let Some(batches) = batches else {
                tracing::error!(
                    group = %key.group_id, %topic_id, partition,
                    "the share coordinator answered a state batch that does not decode"
                );
                return Ok(Err(ErrorCode::UNKNOWN_SERVER_ERROR));
            };
            Ok(Ok(StateAnswer::Read(Some(ReadResult {
                state_epoch: p.state_epoch,
                start_offset: p.start_offset,
                batches,
            }))))
        }
        StateCall::Write {
            state_epoch,
            leader_epoch,
            start_offset,
            batches,
        } => {
            use strom_protocol::messages::write_share_group_state_request::{
                PartitionData, StateBatch as WireBatch, WriteStateData,
            };
            let request = WriteShareGroupStateRequest::default()
                .with_group_id(group_id)
                .with_topics(vec![WriteStateData::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![PartitionData::default()
                        .with_partition(partition)
                        .with_state_epoch(*state_epoch)
                        .with_leader_epoch(*leader_epoch)
                        .with_start_offset(*start_offset)
                        .with_state_batches(
                            batches
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
                        )])]);
            let version = conn.version_of::<WriteShareGroupStateRequest>(STATE_RPC_VERSION)?;
            let response = conn.send(&request, version, PEER_TIMEOUT_MS).await?;
            let code =
                answered_partition!(response, topic_id, partition).map(|p| ErrorCode(p.error_code));
            Ok(done(code))
        }
        StateCall::Delete => {
            use strom_protocol::messages::delete_share_group_state_request::{
                DeleteStateData, PartitionData,
            };
            let request = DeleteShareGroupStateRequest::default()
                .with_group_id(group_id)
                .with_topics(vec![DeleteStateData::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![
                        PartitionData::default().with_partition(partition)
                    ])]);
            let version = conn.version_of::<DeleteShareGroupStateRequest>(STATE_RPC_VERSION)?;
            let response = conn.send(&request, version, PEER_TIMEOUT_MS).await?;
            let code =
                answered_partition!(response, topic_id, partition).map(|p| ErrorCode(p.error_code));
            Ok(done(code))
        }
        StateCall::Summary => {
            use strom_protocol::messages::read_share_group_state_summary_request::{
                PartitionData, ReadStateSummaryData,
            };
            let request = ReadShareGroupStateSummaryRequest::default()
                .with_group_id(group_id)
                .with_topics(vec![ReadStateSummaryData::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![PartitionData::default()
                        .with_partition(partition)
                        .with_leader_epoch(-1)])]);
            let version =
                conn.version_of::<ReadShareGroupStateSummaryRequest>(STATE_RPC_VERSION)?;
            let response = conn.send(&request, version, PEER_TIMEOUT_MS).await?;
            let Some(p) = answered_partition!(response, topic_id, partition) else {
                return Ok(Err(ErrorCode::COORDINATOR_NOT_AVAILABLE));
            };
            let code = ErrorCode(p.error_code);
            if code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION {
                return Ok(Ok(StateAnswer::Summary(None)));
            }
            if !code.is_none() {
                return Ok(Err(code));
            }
            Ok(Ok(StateAnswer::Summary(Some(Summary {
                state_epoch: p.state_epoch,
                leader_epoch: p.leader_epoch,
                start_offset: p.start_offset,
            }))))
        }
    }
}

/// The answer of a call without data: its partition's code (a partition the response
/// left out is retried as COORDINATOR_NOT_AVAILABLE).
fn done(code: Option<ErrorCode>) -> Result<StateAnswer, ErrorCode> {
    match code {
        Some(code) if code.is_none() => Ok(StateAnswer::Done),
        Some(code) => Err(code),
        None => Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
    }
}

/// Initializes `key`'s state at `state_epoch` and `start_offset`.
pub async fn initialize(
    context: &BrokerContext,
    key: &ShareKey,
    state_epoch: i32,
    start_offset: i64,
) -> Result<(), ErrorCode> {
    call(
        context,
        key,
        &StateCall::Initialize {
            state_epoch,
            start_offset,
        },
    )
    .await
    .map(|_| ())
}

/// Reads `key`'s state at `leader_epoch`; `None` when it has none.
pub async fn read(
    context: &BrokerContext,
    key: &ShareKey,
    leader_epoch: i32,
) -> Result<Option<ReadResult>, ErrorCode> {
    match call(context, key, &StateCall::Read { leader_epoch }).await? {
        StateAnswer::Read(result) => Ok(result),
        _ => Err(ErrorCode::UNKNOWN_SERVER_ERROR),
    }
}

/// Writes `key`'s whole state.
pub async fn write(
    context: &BrokerContext,
    key: &ShareKey,
    state_epoch: i32,
    leader_epoch: i32,
    start_offset: i64,
    batches: Vec<StateBatch>,
) -> Result<(), ErrorCode> {
    call(
        context,
        key,
        &StateCall::Write {
            state_epoch,
            leader_epoch,
            start_offset,
            batches,
        },
    )
    .await
    .map(|_| ())
}

/// Deletes `key`'s state (nothing to delete is success).
pub async fn delete(context: &BrokerContext, key: &ShareKey) -> Result<(), ErrorCode> {
    call(context, key, &StateCall::Delete).await.map(|_| ())
}

/// `key`'s state summary; `None` when it has none.
pub async fn summary(
    context: &BrokerContext,
    key: &ShareKey,
) -> Result<Option<Summary>, ErrorCode> {
    match call(context, key, &StateCall::Summary).await? {
        StateAnswer::Summary(result) => Ok(result),
        _ => Err(ErrorCode::UNKNOWN_SERVER_ERROR),
    }
}

/// The keys of `group_id` that may have state on share coordinators of other brokers:
/// every partition of every topic whose key's state partition another broker leads (no
/// broker lists the keys of a group; until the group coordinator records its initialized
/// partitions, a group-wide call asks about all of them).
pub fn remote_candidate_keys(context: &BrokerContext, group_id: &str) -> Vec<ShareKey> {
    let image = context.metadata.image();
    let mut keys = Vec::new();
    for topic in image.topics() {
        if topic.name == SHARE_STATE_TOPIC {
            continue;
        }
        for partition in topic.partitions.keys() {
            let key = ShareKey {
                group_id: group_id.to_string(),
                topic_id: *topic.topic_id.as_bytes(),
                partition: *partition,
            };
            if matches!(route(context, &image, &key), Ok(Route::Remote(_))) {
                keys.push(key);
            }
        }
    }
    keys
}
