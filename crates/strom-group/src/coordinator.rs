//! The coordinator: owns the groups of one `__consumer_offsets` partition, dispatches
//! commands, fires timers and replays records.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::consumer::{self, ConsumerConfig, ConsumerError, ConsumerGroups, ConsumerRecord};
use crate::error::{ErrorCode, RecordError};
use crate::group::{Group, GroupState, GroupSummary, JoinTimer, Member, Protocol};
use crate::records::{GroupMetadataValue, GroupRecord, OffsetCommitValue, RecordKey};
use crate::streams::{StreamsConfig, StreamsGroups, StreamsHeartbeatResponse, StreamsRecord};
use crate::types::{Command, JoinGroupResponse, ListGroupsResponse, Response, SyncGroupResponse};

/// Chosen by the caller to route replies that arrive later than their request.
pub type RequestId = u64;

#[derive(Debug, Clone)]
pub struct Config {
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: i64,
    /// `group.max.size`
    pub group_max_size: usize,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes`, in milliseconds.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`
    pub offsets_retention_check_interval_ms: i64,
    /// Mixed into generated member ids so ids differ across coordinator incarnations;
    /// the broker passes something unique (e.g. its start time), tests a constant.
    pub member_id_salt: u64,
    /// KIP-848 groups (`group.consumer.*`).
    pub consumer: ConsumerConfig,
    /// KIP-1071 groups (`group.streams.*`).
    pub streams: StreamsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            initial_rebalance_delay_ms: 3_000,
            // Kafka's default is Integer.MAX_VALUE; a finite bound keeps memory bounded.
            group_max_size: 10_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            offset_metadata_max_bytes: 4_096,
            offsets_retention_ms: 10_080 * 60_000,
            offsets_retention_check_interval_ms: 600_000,
            member_id_salt: 0,
            consumer: ConsumerConfig::default(),
            streams: StreamsConfig::default(),
        }
    }
}

/// A reply to the request `request_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub request_id: RequestId,
    pub response: Response,
}

/// Append `records` durably, then release `replies`. If the append fails, the caller must
/// answer with a retriable error and rebuild the coordinator with [`Coordinator::load`]:
/// in-memory state already reflects the records.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    pub records: Vec<GroupRecord>,
    pub replies: Vec<Reply>,
    /// The records are a transaction's (TxnOffsetCommit): they go in one transactional
    /// batch of this producer id and epoch, resolved later by the transaction's marker.
    pub transactional: Option<(i64, i16)>,
}

impl Output {
    pub(crate) fn reply(&mut self, request_id: RequestId, response: Response) {
        self.replies.push(Reply {
            request_id,
            response,
        });
    }

    pub(crate) fn record(&mut self, record: Result<GroupRecord, RecordError>) {
        match record {
            Ok(r) => self.records.push(r),
            // Inputs are length-checked before they reach state, so this is a bug.
            Err(e) => tracing::error!(error = %e, "group record not encodable; dropped"),
        }
    }
}

#[derive(Debug, Default)]
pub struct Coordinator {
    pub(crate) config: Config,
    pub(crate) groups: BTreeMap<String, Group>,
    pub(crate) next_member_seq: u64,
    /// When [`Coordinator::tick`] next looks for expired offsets; `None` until the first
    /// tick, which schedules it one check interval later.
    pub(crate) next_expiry_check_ms: Option<i64>,
    /// The KIP-848 groups of the partition; a group id is either here or classic.
    pub(crate) consumer: ConsumerGroups,
    /// The KIP-1071 streams groups of the partition; their committed offsets live in a
    /// member-less classic entry of the same id, as a consumer group's.
    pub(crate) streams: StreamsGroups,
    /// Offsets staged by transactional producers (TxnOffsetCommit), by producer id, until
    /// their transaction's marker commits or drops them.
    pub(crate) pending_txn_offsets: BTreeMap<i64, crate::offsets::PendingTxnOffsets>,
}

impl Coordinator {
    pub fn new(config: Config) -> Self {
        let consumer = ConsumerGroups::new(ConsumerConfig {
            member_id_salt: config.member_id_salt,
            ..config.consumer.clone()
        });
        let streams = StreamsGroups::new(config.streams.clone());
        Coordinator {
            config,
            groups: BTreeMap::new(),
            streams,
            next_member_seq: 0,
            next_expiry_check_ms: None,
            consumer,
            pending_txn_offsets: BTreeMap::new(),
        }
    }

    pub fn handle(&mut self, request_id: RequestId, command: Command, now_ms: i64) -> Output {
        let mut out = Output::default();
        match command {
            Command::JoinGroup(c) => self.join(request_id, c, now_ms, &mut out),
            Command::SyncGroup(c) => self.sync(request_id, c, now_ms, &mut out),
            Command::Heartbeat(c) => {
                let error = self.heartbeat(&c, now_ms);
                out.reply(request_id, Response::Heartbeat(error));
            }
            Command::LeaveGroup(c) => self.leave(request_id, c, now_ms, &mut out),
            Command::OffsetCommit(c) => self.commit(request_id, c, now_ms, &mut out),
            Command::OffsetFetch(c) => {
                let response = self.fetch(&c);
                out.reply(request_id, Response::OffsetFetch(response));
            }
            Command::DescribeGroup(c) => {
                let response = self.describe(&c.group_id);
                out.reply(request_id, Response::DescribeGroup(response));
            }
            Command::ListGroups(c) => {
                let groups = self.list(&c);
                let response = ListGroupsResponse {
                    error: ErrorCode::None,
                    groups,
                };
                out.reply(request_id, Response::ListGroups(response));
            }
            Command::DeleteGroup(c) => {
                let error = self.delete_group(&c.group_id, &mut out);
                out.reply(request_id, Response::DeleteGroup(error));
            }
            Command::OffsetDelete(c) => {
                let response = self.delete_offsets(&c, &mut out);
                out.reply(request_id, Response::OffsetDelete(response));
            }
            Command::ConsumerGroupHeartbeat(c) if self.streams.group(&c.group_id).is_some() => {
                let response = consumer::ConsumerHeartbeatResponse::error(ConsumerError::new(
                    crate::ErrorCode::GroupIdNotFound,
                    format!("Group {} is not a consumer group.", c.group_id),
                ));
                out.reply(request_id, Response::ConsumerGroupHeartbeat(response));
            }
            Command::ConsumerGroupHeartbeat(c) => {
                let response = consumer::bridge_heartbeat(
                    &mut self.groups,
                    &mut self.consumer,
                    c,
                    now_ms,
                    &mut out,
                );
                out.reply(request_id, Response::ConsumerGroupHeartbeat(response));
            }
            Command::ConsumerGroupDescribe(group_id) => {
                let mut response =
                    consumer::describe_group(&self.groups, &self.consumer, &group_id);
                if response.error.is_some() && self.streams.group(&group_id).is_some() {
                    response.error = Some(ConsumerError::new(
                        crate::ErrorCode::GroupIdNotFound,
                        format!("Group {group_id} is not a consumer group."),
                    ));
                }
                out.reply(request_id, Response::ConsumerGroupDescribe(response));
            }
            Command::StreamsGroupHeartbeat(c) => {
                let response = self.streams_heartbeat(c, now_ms, &mut out);
                out.reply(request_id, Response::StreamsGroupHeartbeat(response));
            }
            Command::StreamsGroupDescribe(group_id) => {
                let mut response = self.streams.describe(&group_id);
                if response.error.is_some() && self.has_group(&group_id) {
                    response.error = Some(ConsumerError::new(
                        crate::ErrorCode::GroupIdNotFound,
                        format!("Group {group_id} is not a streams group."),
                    ));
                }
                out.reply(request_id, Response::StreamsGroupDescribe(response));
            }
            Command::TxnOffsetCommit(c) => self.txn_commit(request_id, c, now_ms, &mut out),
            Command::TxnMarker {
                producer_id,
                commit,
            } => {
                self.txn_marker(producer_id, commit, now_ms);
                out.reply(request_id, Response::TxnMarker);
            }
        }
        out
    }

    /// Fires due timers: pending-member and session expiry, then rebalance deadlines, and
    /// every `offsets_retention_check_interval_ms` the offset expiry of KIP-211.
    pub fn tick(&mut self, now_ms: i64) -> Output {
        let mut out = Output::default();
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in ids {
            self.tick_group(&id, now_ms, &mut out);
        }
        out.records.extend(self.consumer.tick(now_ms));
        out.records.extend(self.streams.tick(now_ms));
        let interval_ms = self.config.offsets_retention_check_interval_ms.max(1);
        match self.next_expiry_check_ms {
            None => self.next_expiry_check_ms = Some(now_ms.saturating_add(interval_ms)),
            Some(due_ms) if due_ms <= now_ms => {
                self.next_expiry_check_ms = Some(now_ms.saturating_add(interval_ms));
                self.expire_offsets(now_ms, &mut out);
            }
            Some(_) => {}
        }
        out
    }

    fn tick_group(&mut self, group_id: &str, now_ms: i64, out: &mut Output) {
        let config = &self.config;
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        group
            .pending_members
            .retain(|_, expires_ms| *expires_ms > now_ms);
        let expired: Vec<String> = group
            .members
            .values()
            .filter(|m| m.session_expired(now_ms))
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in expired {
            tracing::info!(group = group_id, member = %member_id, "session expired");
            remove_member(group, &member_id, now_ms, config, out);
        }
        expire_pending_syncs(group, now_ms, config, out);
        let due = group.join_timer.as_ref().map(|t| t.deadline_ms <= now_ms) == Some(true);
        if group.state == GroupState::PreparingRebalance && (due || can_complete_join(group)) {
            crate::join::on_join_deadline(group, now_ms, config, out);
        }
    }

    /// Groups of this partition, for DescribeGroups / ListGroups and tests.
    pub fn group(&self, group_id: &str) -> Option<GroupSummary> {
        self.groups.get(group_id).map(Group::summary)
    }

    pub fn group_ids(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// Whether a classic or consumer group of this id exists here (with members, or only
    /// committed offsets): a share group may not take its id.
    pub fn has_group(&self, group_id: &str) -> bool {
        self.groups.contains_key(group_id)
            || self.consumer.group(group_id).is_some()
            || self.streams.group(group_id).is_some()
    }

    /// Whether `group_id` is a KIP-848 consumer or a KIP-1071 streams group (whose offsets
    /// live in a member-less classic entry that is not a classic group).
    pub(crate) fn is_modern(&self, group_id: &str) -> bool {
        self.consumer.group(group_id).is_some() || self.streams.group(group_id).is_some()
    }

    /// The streams groups of this partition, for tests and tools.
    pub fn streams(&self) -> &StreamsGroups {
        &self.streams
    }

    /// StreamsGroupHeartbeat under the one-type rule: a classic group with members (or in
    /// a rebalance) or a consumer group of the id refuses it with GROUP_ID_NOT_FOUND, as
    /// Kafka; an empty classic entry (committed offsets only) becomes the streams group's.
    fn streams_heartbeat(
        &mut self,
        c: crate::streams::StreamsHeartbeat,
        now_ms: i64,
        out: &mut Output,
    ) -> StreamsHeartbeatResponse {
        let classic_in_use = self.groups.get(&c.group_id).is_some_and(|g| {
            !g.members.is_empty() || !g.pending_members.is_empty() || g.state != GroupState::Empty
        });
        if self.streams.group(&c.group_id).is_none()
            && (classic_in_use || self.consumer.group(&c.group_id).is_some())
        {
            return StreamsHeartbeatResponse::error(ConsumerError::new(
                crate::ErrorCode::GroupIdNotFound,
                format!("Group {} is not a streams group.", c.group_id),
            ));
        }
        let (records, response) = self.streams.heartbeat(c, now_ms);
        out.records.extend(records);
        response
    }

    /// Rebuilds state from the partition's records in log order. Loaded groups with members
    /// come back Stable with fresh session timers starting at `now_ms`.
    pub fn load<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a GroupRecord>,
        now_ms: i64,
    ) -> Result<(), RecordError> {
        for record in records {
            match RecordKey::decode(&record.key)? {
                None => match ConsumerRecord::decode(&record.key, record.value.as_deref())? {
                    Some(r) => self.consumer.replay(r, now_ms),
                    None => match StreamsRecord::decode(&record.key, record.value.as_deref())? {
                        Some(r) => self.streams.replay(r, now_ms),
                        None => tracing::debug!("skipping record of an unknown key version"),
                    },
                },
                Some(RecordKey::OffsetCommit(k)) => {
                    let group = self
                        .groups
                        .entry(k.group.clone())
                        .or_insert_with(|| Group::new(&k.group, now_ms));
                    match &record.value {
                        Some(v) => {
                            let value = OffsetCommitValue::decode(v)?;
                            group.offsets.insert((k.topic, k.partition), value);
                        }
                        None => {
                            group.offsets.remove(&(k.topic, k.partition));
                        }
                    }
                }
                Some(RecordKey::GroupMetadata(k)) => match &record.value {
                    Some(v) => {
                        let value = GroupMetadataValue::decode(v)?;
                        let offsets = self
                            .groups
                            .remove(&k.group)
                            .map(|g| g.offsets)
                            .unwrap_or_default();
                        let mut group = group_from_record(&k.group, value, now_ms);
                        group.offsets = offsets;
                        self.groups.insert(k.group, group);
                    }
                    None => {
                        // Offsets are records of their own (Kafka keeps them apart from
                        // groups): a metadata tombstone leaves them, as after a conversion
                        // to a consumer group.
                        let offsets = self
                            .groups
                            .remove(&k.group)
                            .map(|g| g.offsets)
                            .unwrap_or_default();
                        if !offsets.is_empty() {
                            let mut group = Group::new(&k.group, now_ms);
                            group.offsets = offsets;
                            self.groups.insert(k.group, group);
                        }
                    }
                },
            }
        }
        Ok(())
    }

    pub(crate) fn new_member_id(&mut self, client_id: &str, group: &Group) -> String {
        loop {
            self.next_member_seq = self.next_member_seq.wrapping_add(1);
            let id = format!(
                "{client_id}-{:016x}-{}",
                self.config.member_id_salt, self.next_member_seq
            );
            if !group.members.contains_key(&id) && !group.pending_members.contains_key(&id) {
                return id;
            }
        }
    }
}

fn group_from_record(group_id: &str, value: GroupMetadataValue, now_ms: i64) -> Group {
    let mut group = Group::new(group_id, now_ms);
    let value_state_timestamp_ms = value.current_state_timestamp_ms;
    group.generation_id = value.generation;
    group.protocol_type = Some(value.protocol_type).filter(|t| !t.is_empty());
    group.protocol_name = value.protocol;
    group.leader_id = value.leader;
    for m in value.members {
        if let Some(instance) = &m.group_instance_id {
            group
                .static_members
                .insert(instance.clone(), m.member_id.clone());
        }
        let protocols = group
            .protocol_name
            .iter()
            .map(|name| Protocol {
                name: name.clone(),
                metadata: m.subscription.clone(),
            })
            .collect();
        group.members.insert(
            m.member_id.clone(),
            Member {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols,
                assignment: m.assignment,
                last_heartbeat_ms: now_ms,
                awaiting_join: None,
                awaiting_sync: None,
                sync_pending: false,
            },
        );
    }
    let state = if group.members.is_empty() {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
    group.transition(state, now_ms);
    if state == GroupState::Empty {
        // Offset expiry of an Empty group counts from when it became Empty (-1 from old
        // metadata versions: then from each commit).
        group.state_timestamp_ms = value_state_timestamp_ms;
    }
    group
}

/// Removes members that did not send SyncGroup within the rebalance timeout after the
/// join completed; removing them starts the next rebalance.
fn expire_pending_syncs(group: &mut Group, now_ms: i64, config: &Config, out: &mut Output) {
    let Some(deadline_ms) = group.sync_deadline_ms else {
        return;
    };
    if now_ms < deadline_ms {
        return;
    }
    group.sync_deadline_ms = None;
    if !matches!(
        group.state,
        GroupState::CompletingRebalance | GroupState::Stable
    ) {
        return;
    }
    let late: Vec<String> = group
        .members
        .values()
        .filter(|m| m.sync_pending)
        .map(|m| m.member_id.clone())
        .collect();
    for member_id in late {
        tracing::info!(group = %group.group_id, member = %member_id, "no SyncGroup in time");
        remove_member(group, &member_id, now_ms, config, out);
    }
}

/// Checks that `member_id` (with its instance id) is a current member, as Kafka's
/// `validateMember`: a stale member id for a known instance id is FENCED_INSTANCE_ID.
pub(crate) fn validate_member(
    group: &Group,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<(), ErrorCode> {
    if let Some(instance) = instance_id {
        return match group.static_members.get(instance) {
            Some(current) if current == member_id => Ok(()),
            Some(_) => Err(ErrorCode::FencedInstanceId),
            None => Err(ErrorCode::UnknownMemberId),
        };
    }
    if group.members.contains_key(member_id) {
        Ok(())
    } else {
        Err(ErrorCode::UnknownMemberId)
    }
}

pub(crate) fn can_complete_join(group: &Group) -> bool {
    let initial = group.join_timer.as_ref().map(|t| t.initial) == Some(true);
    // The initial delay always runs its course, so that a burst of consumers starting
    // together lands in one generation.
    !initial && group.all_members_joined()
}

/// Starts (or keeps) a rebalance. Followers waiting in SyncGroup are told to rejoin.
pub(crate) fn prepare_rebalance(group: &mut Group, now_ms: i64, config: &Config, out: &mut Output) {
    if group.state == GroupState::CompletingRebalance {
        for m in group.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(request_id) = m.awaiting_sync.take() {
                out.reply(request_id, sync_error(ErrorCode::RebalanceInProgress));
            }
        }
    }
    if group.state == GroupState::PreparingRebalance {
        return;
    }
    let timer = if group.state == GroupState::Empty {
        let delay_ms = config.initial_rebalance_delay_ms;
        JoinTimer {
            deadline_ms: now_ms + delay_ms,
            initial: true,
            remaining_ms: (group.max_rebalance_timeout_ms() - delay_ms).max(0),
            new_member_joined: false,
        }
    } else {
        JoinTimer {
            deadline_ms: now_ms + group.max_rebalance_timeout_ms(),
            initial: false,
            remaining_ms: 0,
            new_member_joined: false,
        }
    };
    group.join_timer = Some(timer);
    group.sync_deadline_ms = None;
    tracing::info!(group = %group.group_id, generation = group.generation_id, "preparing rebalance");
    group.transition(GroupState::PreparingRebalance, now_ms);
}

/// Removes a member (leave, session expiry, fencing) and moves the group on as Kafka does.
pub(crate) fn remove_member(
    group: &mut Group,
    member_id: &str,
    now_ms: i64,
    config: &Config,
    out: &mut Output,
) {
    let Some(member) = group.members.remove(member_id) else {
        return;
    };
    if let Some(instance) = &member.group_instance_id {
        group.static_members.remove(instance);
    }
    if let Some(request_id) = member.awaiting_join {
        out.reply(
            request_id,
            join_error(member_id, ErrorCode::UnknownMemberId),
        );
    }
    if let Some(request_id) = member.awaiting_sync {
        out.reply(request_id, sync_error(ErrorCode::UnknownMemberId));
    }
    if group.leader_id.as_deref() == Some(member_id) {
        group.leader_id = group.members.keys().next().cloned();
    }
    match group.state {
        GroupState::Stable | GroupState::CompletingRebalance => {
            prepare_rebalance(group, now_ms, config, out)
        }
        _ => {}
    }
}

pub(crate) fn join_error(member_id: &str, error: ErrorCode) -> Response {
    Response::JoinGroup(JoinGroupResponse {
        error,
        generation_id: -1,
        protocol_type: None,
        protocol_name: None,
        leader: String::new(),
        member_id: member_id.to_owned(),
        members: Vec::new(),
        skip_assignment: false,
    })
}

pub(crate) fn sync_error(error: ErrorCode) -> Response {
    Response::SyncGroup(SyncGroupResponse {
        error,
        protocol_type: None,
        protocol_name: None,
        assignment: Bytes::new(),
    })
}
