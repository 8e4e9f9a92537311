//! ShareFetch (KIP-932, v1): a share consumer's session update, its piggy-backed
//! acknowledgements, then records acquired from the session's share partitions in a long
//! poll (`max_wait_ms` capped by `strom.fetch.wait.max.ms`; answered as soon as anything is
//! acquired, so `min_bytes` is treated as 1), within `max_bytes` and `max_records`. The share partitions and sessions live in `share_partitions.rs`.
//!
//! Session rules, as Kafka's `ShareSessionCache`: epoch 0 opens a session (acknowledgements
//! are not allowed then: INVALID_REQUEST; its hosted share partitions are checked against
//! their durable state, `ShareManager::check_state`); a positive epoch must be the session's next one
//! (SHARE_SESSION_NOT_FOUND without a session, INVALID_SHARE_SESSION_EPOCH otherwise) and
//! adds and forgets partitions; -1 applies the acknowledgements, closes the session and
//! releases the member's acquired records, and fetches nothing. Closing the connection
//! the session was last used on closes it the same way.
//!
//! Authorization: READ on the group before the handler (`authz::precheck`), READ on each
//! topic here: a partition of a topic it may not read is TOPIC_AUTHORIZATION_FAILED (its
//! acknowledgements too) and nothing is acquired from it.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use strom_protocol::messages::share_fetch_request::FetchTopic;
use strom_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse,
};
use strom_protocol::messages::{ResponseKind, ShareFetchRequest, ShareFetchResponse};
use strom_protocol::{ErrorCode, StrBytes};
use strom_share::partition::{AckBatch, AckType};
use tokio::time::Instant;
use uuid::Uuid;

use strom_meta::acl::ResourceType;
use strom_protocol::messages::ApiKey;

use crate::principal::Session;
use crate::server::BrokerContext;
use crate::share_partitions::{ConnectionKey, SessionUpdate};

/// Records per fetch when the request sets no positive `max_records` (the Java client's
/// `max.poll.records` default).
const RECORDS_DEFAULT: usize = 500;

/// The error of the whole request.
fn top_error(code: ErrorCode) -> ResponseKind {
    ResponseKind::ShareFetch(ShareFetchResponse::default().with_error_code(code.code()))
}

/// What ShareFetch and ShareAcknowledge share: the group and member ids (an empty group
/// is INVALID_GROUP_ID, an empty member INVALID_REQUEST, for the whole request), and the
/// connection their share session lives on.
pub(super) struct Preamble {
    pub group_id: String,
    pub member_id: String,
    pub connection: ConnectionKey,
}

pub(super) fn preamble(
    session: &Session,
    group_id: Option<&strom_protocol::messages::GroupId>,
    member_id: Option<&StrBytes>,
) -> Result<Preamble, ErrorCode> {
    let group_id = group_id.map(|g| g.0.to_string()).unwrap_or_default();
    let member_id = member_id.map(|m| m.to_string()).unwrap_or_default();
    if group_id.is_empty() {
        return Err(ErrorCode::INVALID_GROUP_ID);
    }
    if member_id.is_empty() {
        return Err(ErrorCode::INVALID_REQUEST);
    }
    Ok(Preamble {
        group_id,
        member_id,
        connection: (session.listener_name.clone(), session.client_address),
    })
}

/// May `session` READ the topic of `topic_id` (ShareFetch, ShareAcknowledge)? An unknown
/// topic id passes here: the share partition answers UNKNOWN_TOPIC_ID.
pub(super) fn topic_readable(
    context: &BrokerContext,
    session: &Session,
    api: ApiKey,
    topic_id: Uuid,
) -> bool {
    if !crate::authz::enabled(context) {
        return true;
    }
    let image = context.metadata.image();
    match image.topic_by_id(topic_id) {
        Some(topic) => {
            crate::authz::allowed(context, session, api, ResourceType::Topic, &topic.name)
        }
        None => true,
    }
}

pub(super) async fn handle(
    context: &BrokerContext,
    session: &Session,
    request: ShareFetchRequest,
    _version: i16,
) -> ResponseKind {
    let Preamble {
        group_id,
        member_id,
        connection,
    } = match preamble(
        session,
        request.group_id.as_ref(),
        request.member_id.as_ref(),
    ) {
        Ok(preamble) => preamble,
        Err(code) => return top_error(code),
    };
    let epoch = request.share_session_epoch;
    let has_acks = request
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .any(|p| !p.acknowledgement_batches.is_empty());
    if epoch == 0 && has_acks {
        return top_error(ErrorCode::INVALID_REQUEST);
    }
    let added: Vec<(Uuid, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.topic_id, p.partition_index))
        })
        .collect();
    let forgotten: Vec<(Uuid, i32)> = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
        .collect();
    let shares = &context.shares;
    let update = match shares.fetch_session(
        Some(&connection),
        context.config.share.max_share_sessions,
        &group_id,
        &member_id,
        epoch,
        &added,
        &forgotten,
    ) {
        Ok(update) => update,
        Err(code) => return top_error(code),
    };
    if let (0, SessionUpdate::Fetch(partitions)) = (epoch, &update) {
        // A new session: hosted share partitions whose state was deleted or reset through
        // the group coordinator (on whatever broker) read it again before they deliver.
        shares.check_state(context, &group_id, partitions).await;
    }
    let mut out: BTreeMap<(Uuid, i32), PartitionData> = BTreeMap::new();
    // Acknowledgements first: they may free records this fetch then acquires.
    let acked = acknowledge(context, session, &group_id, &member_id, &request.topics).await;
    for ((topic_id, partition), code) in acked {
        let data = entry(&mut out, context, topic_id, partition);
        data.acknowledge_error_code = code.code();
    }
    let partitions = match update {
        SessionUpdate::Closed => {
            shares.release_member(&group_id, &member_id).await;
            Vec::new()
        }
        SessionUpdate::Fetch(partitions) => partitions,
    };
    // READ on each topic: the partitions of a topic it may not read are answered
    // TOPIC_AUTHORIZATION_FAILED and nothing is acquired from them (Kafka checks the
    // session's whole partition set on every fetch).
    type Partitions = Vec<(Uuid, i32)>;
    let (partitions, denied): (Partitions, Partitions) = partitions
        .into_iter()
        .partition(|(topic_id, _)| topic_readable(context, session, ApiKey::ShareFetch, *topic_id));
    for (topic_id, partition) in denied {
        let data = entry(&mut out, context, topic_id, partition);
        data.error_code = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
    }
    if !partitions.is_empty() {
        fetch(
            context,
            &request,
            &group_id,
            &member_id,
            &partitions,
            &mut out,
        )
        .await;
    }
    let lock_ms = crate::share_partitions::partition_config(context, &group_id).lock_duration_ms;
    let mut responses: Vec<ShareFetchableTopicResponse> = Vec::new();
    for ((topic_id, _), data) in out {
        match responses.last_mut() {
            Some(last) if last.topic_id == topic_id => last.partitions.push(data),
            _ => responses.push(
                ShareFetchableTopicResponse::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    ResponseKind::ShareFetch(
        ShareFetchResponse::default()
            .with_acquisition_lock_timeout_ms(i32::try_from(lock_ms).unwrap_or(i32::MAX))
            .with_responses(responses),
    )
}

/// The response entry of a partition, created with its current leader.
fn entry<'a>(
    out: &'a mut BTreeMap<(Uuid, i32), PartitionData>,
    context: &BrokerContext,
    topic_id: Uuid,
    partition: i32,
) -> &'a mut PartitionData {
    out.entry((topic_id, partition)).or_insert_with(|| {
        let image = context.metadata.image();
        let leader = image
            .partition(topic_id, partition)
            .map_or((-1, -1), |s| (s.leader, s.leader_epoch));
        empty_partition(partition, leader)
    })
}

/// A partition's answer with nothing acquired: its records are empty, never null. In
/// ShareFetch v1 `Records` is not nullable: the Java client (4.x) fails to parse a null
/// one, drops the whole response, and keeps the fetch to that broker pending forever, so
/// its close (which waits for that node's fetch before the final ShareAcknowledge) ran
/// into its 30 s timeout. Kafka answers an empty `MemoryRecords` too.
fn empty_partition(partition: i32, (leader_id, leader_epoch): (i32, i32)) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_current_leader(
            LeaderIdAndEpoch::default()
                .with_leader_id(leader_id)
                .with_leader_epoch(leader_epoch),
        )
        .with_records(Some(Bytes::new()))
}

/// Converts a partition's acknowledgement batches; `None` if one is malformed.
pub(super) fn ack_batches<'a>(
    batches: impl Iterator<Item = (i64, i64, &'a [i8])>,
) -> Option<Vec<AckBatch>> {
    let mut out = Vec::new();
    for (first_offset, last_offset, types) in batches {
        let ack_types = types
            .iter()
            .map(|t| AckType::from_wire(*t))
            .collect::<Option<Vec<AckType>>>()?;
        out.push(AckBatch {
            first_offset,
            last_offset,
            ack_types,
        });
    }
    Some(out)
}

/// Applies the acknowledgements of every partition that carries some.
async fn acknowledge(
    context: &BrokerContext,
    session: &Session,
    group_id: &str,
    member_id: &str,
    topics: &[FetchTopic],
) -> Vec<((Uuid, i32), ErrorCode)> {
    let mut out = Vec::new();
    for topic in topics {
        for p in &topic.partitions {
            if p.acknowledgement_batches.is_empty() {
                continue;
            }
            let batches = ack_batches(p.acknowledgement_batches.iter().map(|b| {
                (
                    b.first_offset,
                    b.last_offset,
                    b.acknowledge_types.as_slice(),
                )
            }));
            let readable = topic_readable(context, session, ApiKey::ShareFetch, topic.topic_id);
            let code = match batches {
                _ if !readable => ErrorCode::TOPIC_AUTHORIZATION_FAILED,
                None => ErrorCode::INVALID_REQUEST,
                Some(batches) => context
                    .shares
                    .acknowledge(
                        context,
                        group_id,
                        member_id,
                        topic.topic_id,
                        p.partition_index,
                        &batches,
                    )
                    .await
                    .err()
                    .unwrap_or(ErrorCode(0)),
            };
            out.push(((topic.topic_id, p.partition_index), code));
        }
    }
    out
}

/// Acquires records from the session's partitions, waiting for some within the request's
/// bounds.
async fn fetch(
    context: &BrokerContext,
    request: &ShareFetchRequest,
    group_id: &str,
    member_id: &str,
    partitions: &[(Uuid, i32)],
    out: &mut BTreeMap<(Uuid, i32), PartitionData>,
) {
    let wait_ms = u64::try_from(request.max_wait_ms)
        .unwrap_or(0)
        .min(context.config.fetch_wait_max_ms);
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let max_bytes = u64::try_from(request.max_bytes)
        .ok()
        .filter(|b| *b > 0)
        .unwrap_or(context.config.fetch_max_bytes)
        .min(context.config.fetch_max_bytes);
    let records_max = usize::try_from(request.max_records)
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or(RECORDS_DEFAULT);
    let mut watermarks = context.replicas.subscribe_high_watermarks();
    let mut released = context.shares.subscribe_released();
    let mut shutdown = context.shutdown.clone();
    loop {
        watermarks.borrow_and_update();
        released.borrow_and_update();
        let mut bytes_left = max_bytes;
        let mut records_left = records_max;
        let mut bytes_total = 0u64;
        let mut any_error = false;
        for &(topic_id, partition) in partitions {
            if records_left == 0 || bytes_left == 0 {
                break;
            }
            let result = context
                .shares
                .acquire(
                    context,
                    group_id,
                    member_id,
                    topic_id,
                    partition,
                    records_left,
                    bytes_left,
                )
                .await;
            match result {
                Ok(acquired) if acquired.ranges.is_empty() => {}
                Ok(acquired) => {
                    let count: i64 = acquired
                        .ranges
                        .iter()
                        .map(|r| r.last_offset - r.first_offset + 1)
                        .sum();
                    records_left = records_left.saturating_sub(usize::try_from(count).unwrap_or(0));
                    let len = acquired.records.len() as u64;
                    bytes_left = bytes_left.saturating_sub(len);
                    bytes_total += len;
                    let data = entry(out, context, topic_id, partition);
                    data.records = Some(acquired.records);
                    data.acquired_records = acquired
                        .ranges
                        .iter()
                        .map(|r| {
                            AcquiredRecords::default()
                                .with_first_offset(r.first_offset)
                                .with_last_offset(r.last_offset)
                                .with_delivery_count(
                                    i16::try_from(r.delivery_count).unwrap_or(i16::MAX),
                                )
                        })
                        .collect();
                }
                Err(code) => {
                    any_error = true;
                    let data = entry(out, context, topic_id, partition);
                    data.error_code = code.code();
                    data.error_message = Some(StrBytes::from_string(format!(
                        "share partition {topic_id}-{partition} of group {group_id}: {code}"
                    )));
                }
            }
        }
        // Whatever was acquired is answered now: acquiring again would overwrite it (and
        // records stay locked to this member), so `min_bytes` only decides about waiting
        // when nothing was.
        let done = bytes_total > 0 || any_error || Instant::now() >= deadline || *shutdown.borrow();
        if done {
            return;
        }
        tokio::select! {
            _ = watermarks.changed() => {}
            _ = released.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::{Decodable, Encodable};

    /// A partition answered with nothing acquired (an acknowledgement's result, an error)
    /// carries empty records on the wire, not null (length 0 as compact bytes, not -1):
    /// the Java client rejects null records in ShareFetch v1.
    #[test]
    fn a_partition_with_nothing_acquired_has_empty_not_null_records() {
        let data = empty_partition(3, (1, 7));
        assert_eq!(data.records.as_deref(), Some(&[][..]));
        let response = ShareFetchResponse::default().with_responses(vec![
            ShareFetchableTopicResponse::default()
                .with_topic_id(Uuid::from_u128(1))
                .with_partitions(vec![data]),
        ]);
        let mut buf = bytes::BytesMut::new();
        response.encode(&mut buf, 1).expect("encodes");
        let mut read = buf.freeze();
        let decoded = ShareFetchResponse::decode(&mut read, 1).expect("decodes");
        let partition = &decoded.responses[0].partitions[0];
        assert_eq!(partition.records.as_deref(), Some(&[][..]));
        assert_eq!(partition.current_leader.leader_epoch, 7);
    }
}
