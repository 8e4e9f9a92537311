//! The KIP-1071 coordinator of one `__consumer_offsets` partition: StreamsGroupHeartbeat
//! (join, heartbeat, leave, static leave, shutdown requests), timers (session and
//! revocation deadlines), StreamsGroupDescribe, the offset checks of streams groups and
//! record replay.
//!
//! Every error is found before anything changes, and every state change is made together
//! with the record that persists it, so a refused request leaves neither state nor records
//! and replaying the records rebuilds the groups.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::consumer::{ConsumerError, ConsumerErrorCode as Code, Topics};
use crate::member_epoch::{self, check_stale, fenced_instance, unknown_instance, unknown_member};
use crate::records::{GroupRecord, STRING_BYTES_MAX};

use super::assignor::{self, MemberSpec};
use super::group::{CurrentAssignment, MemberMetadata, MemberState, StreamsGroup, StreamsMember};
use super::reconcile::Reconcile;
use super::records::{GroupMetadata, StreamsRecord};
use super::topology::{self, Configured};
use super::types::{
    DescribedStreamsGroup, DescribedStreamsMember, EndpointPartitions, Status, StatusCode,
    StreamsConfig, StreamsHeartbeat, StreamsHeartbeatResponse, TasksTuple, TopicInfo, Topology,
};

/// Member epoch of a heartbeat that leaves the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// Member epoch of a static member that leaves and will come back within its session.
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// The assignment config key recorded with the group metadata.
const NUM_STANDBY_REPLICAS: &str = "num.standby.replicas";

type HeartbeatResult = Result<StreamsHeartbeatResponse, ConsumerError>;

#[derive(Debug, Default)]
pub struct StreamsGroups {
    pub(crate) config: StreamsConfig,
    pub(crate) groups: BTreeMap<String, StreamsGroup>,
    /// The newest topic view seen, for timers that fence members (they carry none).
    topics: Arc<Topics>,
}

impl StreamsGroups {
    pub fn new(config: StreamsConfig) -> Self {
        StreamsGroups {
            config,
            ..StreamsGroups::default()
        }
    }

    pub fn config(&self) -> &StreamsConfig {
        &self.config
    }

    pub fn group(&self, group_id: &str) -> Option<&StreamsGroup> {
        self.groups.get(group_id)
    }

    pub fn groups(&self) -> impl Iterator<Item = &StreamsGroup> {
        self.groups.values()
    }

    /// Handles a StreamsGroupHeartbeat; returns the records to append before replying.
    pub fn heartbeat(
        &mut self,
        c: StreamsHeartbeat,
        now_ms: i64,
    ) -> (Vec<GroupRecord>, StreamsHeartbeatResponse) {
        self.topics = Arc::clone(&c.topics);
        let mut records = Vec::new();
        let result = validate_request(&c).and_then(|()| {
            if c.member_epoch < 0 {
                self.leave(&c, &mut records)
            } else {
                self.join_or_heartbeat(&c, now_ms, &mut records)
            }
        });
        match result {
            Ok(response) => (records, response),
            Err(error) => {
                tracing::debug!(group = %c.group_id, member = %c.member_id, ?error, "streams heartbeat refused");
                (Vec::new(), StreamsHeartbeatResponse::error(error))
            }
        }
    }

    fn join_or_heartbeat(
        &mut self,
        c: &StreamsHeartbeat,
        now_ms: i64,
        records: &mut Vec<GroupRecord>,
    ) -> HeartbeatResult {
        let existing = self.groups.remove(&c.group_id);
        let existed = existing.is_some();
        if !existed && c.member_epoch != 0 {
            return Err(ConsumerError::new(
                Code::GroupIdNotFound,
                format!("Streams group {} not found.", c.group_id),
            ));
        }
        let mut group = existing.unwrap_or_else(|| StreamsGroup::new(&c.group_id));
        let result = self.heartbeat_group(&mut group, c, now_ms, records);
        if existed || result.is_ok() {
            self.groups.insert(c.group_id.clone(), group);
        }
        result
    }

    fn heartbeat_group(
        &self,
        group: &mut StreamsGroup,
        c: &StreamsHeartbeat,
        now_ms: i64,
        records: &mut Vec<GroupRecord>,
    ) -> HeartbeatResult {
        let known = group.members.contains_key(&c.member_id);
        if group.members.len() >= self.config.max_size && !known {
            return Err(ConsumerError::new(
                Code::GroupMaxSizeReached,
                format!(
                    "The streams group has reached its maximum capacity of {} members.",
                    self.config.max_size
                ),
            ));
        }
        let (member, replaced) = find_member(group, c)?;
        if member.current.state == MemberState::Unknown
            && c.owned.as_ref().is_none_or(|o| !o.is_empty())
        {
            return Err(ConsumerError::new(
                Code::FencedMemberEpoch,
                "The streams group member is in a unknown state. The member must abandon all its tasks and rejoin.",
            ));
        }
        // From here on nothing fails: state and records change together.
        let gid = group.group_id.clone();
        let member_id = c.member_id.clone();
        if let Some(old_id) = replaced {
            // A static member rejoins under a new member id: it takes over the old
            // member's target, and the old one is gone.
            let old_target = group.target.get(&old_id).cloned().unwrap_or_default();
            remove_member_records(group, &old_id, records);
            group.target.insert(member_id.clone(), old_target.clone());
            group.members.insert(member_id.clone(), member.clone());
            emit(records, member_record(&gid, &member));
            emit(records, target_record(&gid, &member_id, Some(old_target)));
            emit(records, current_record(&gid, &member));
        }
        let mut bump = false;
        // The topology: the group takes the one a joining member brings while it has no
        // other member (or none yet); otherwise the member runs with the group's.
        if let Some(t) = &c.topology {
            let alone = group.members.keys().all(|id| *id == member_id);
            if group.topology.is_none() || (alone && group.topology.as_ref() != Some(t)) {
                group.topology = Some(t.clone());
                group.validated_topology_epoch = -1;
                emit(
                    records,
                    StreamsRecord::Topology {
                        group: gid.clone(),
                        topology: Some(t.clone()),
                    },
                );
                bump = true;
            }
        }
        let is_new = !group.members.contains_key(&member_id);
        let mut updated = member.clone();
        update_metadata(&mut updated.metadata, c);
        if is_new || updated.metadata != member.metadata {
            emit(records, member_record(&gid, &updated));
            bump = true;
        }
        group.members.insert(member_id.clone(), updated);
        // The topology against the cluster's topics: a change of the partition counts
        // (or readiness) is a new group epoch, as Kafka's metadata hash.
        let configured = configure(group, &c.topics, self.config.tasks_max);
        let hash = metadata_hash(group, &c.topics);
        let validated = match (&group.topology, configured.is_ready()) {
            (Some(t), true) => t.epoch,
            _ => -1,
        };
        let standby = c
            .num_standby_replicas
            .unwrap_or(self.config.num_standby_replicas)
            .max(0);
        if hash != group.metadata_hash
            || validated != group.validated_topology_epoch
            || standby != group.num_standby_replicas
        {
            bump = true;
        }
        if bump {
            group.group_epoch = group.group_epoch.saturating_add(1);
            group.metadata_hash = hash;
            group.validated_topology_epoch = validated;
            group.num_standby_replicas = standby;
            tracing::info!(group = %gid, epoch = group.group_epoch, "bumped streams group epoch");
            emit(records, metadata_record(group));
        }
        if group.group_epoch > group.assignment_epoch {
            update_target(group, &configured, records);
        }
        reconcile(group, &member_id, c.owned.as_ref(), now_ms, records);
        if c.shutdown_application && group.shutdown_requested_by.is_none() {
            tracing::info!(group = %gid, member = %member_id, "the streams application is asked to shut down");
            group.shutdown_requested_by = Some(member_id.clone());
        }
        let session_ms = i64::from(
            c.session_timeout_ms
                .unwrap_or(self.config.session_timeout_ms),
        );
        let heartbeat_interval_ms = c
            .heartbeat_interval_ms
            .unwrap_or(self.config.heartbeat_interval_ms);
        let Some(after) = group.members.get_mut(&member_id) else {
            return Err(ConsumerError::new(
                Code::UnknownServerError,
                "member vanished",
            ));
        };
        after.session_deadline_ms = now_ms.saturating_add(session_ms);
        let after = after.clone();
        let assignment = (c.member_epoch == 0 || after.current.assigned != member.current.assigned)
            .then(|| after.current.assigned.clone());
        let mut status = Vec::new();
        if let Some(t) = &group.topology {
            if after.metadata.topology_epoch != t.epoch {
                status.push(Status {
                    code: StatusCode::StaleTopology,
                    detail: format!(
                        "The member's topology epoch {} does not match the group's topology epoch {}.",
                        after.metadata.topology_epoch, t.epoch
                    ),
                });
            }
        }
        status.extend(configured.status.iter().cloned());
        if let Some(by) = &group.shutdown_requested_by {
            status.push(Status {
                code: StatusCode::ShutdownApplication,
                detail: format!("The application is requested to shutdown by member {by}."),
            });
        }
        let endpoints = after
            .metadata
            .user_endpoint
            .is_some()
            .then(|| endpoints(group, &configured, &c.topics));
        Ok(StreamsHeartbeatResponse {
            error: None,
            member_id,
            member_epoch: after.current.member_epoch,
            heartbeat_interval_ms,
            status,
            assignment,
            endpoints,
            topics_to_create: configured.to_create,
        })
    }

    fn leave(&mut self, c: &StreamsHeartbeat, records: &mut Vec<GroupRecord>) -> HeartbeatResult {
        let Some(group) = self.groups.get_mut(&c.group_id) else {
            return Err(ConsumerError::new(
                Code::GroupIdNotFound,
                format!("Streams group {} not found.", c.group_id),
            ));
        };
        let member_id = match &c.instance_id {
            None => {
                if !group.members.contains_key(&c.member_id) {
                    return Err(unknown_member(&c.member_id, &c.group_id));
                }
                c.member_id.clone()
            }
            Some(instance) => {
                let Some(m) = group.static_member(instance) else {
                    return Err(unknown_instance(instance));
                };
                if m.member_id != c.member_id {
                    return Err(fenced_instance(&c.member_id, instance, &m.member_id));
                }
                m.member_id.clone()
            }
        };
        if c.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            tracing::info!(group = %c.group_id, member = %member_id, "static streams member left temporarily");
            let gid = group.group_id.clone();
            if let Some(m) = group.members.get_mut(&member_id) {
                m.current.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
                m.current.pending_revocation = TasksTuple::default();
                m.rebalance_deadline = None;
                emit(records, current_record(&gid, m));
            }
        } else {
            tracing::info!(group = %c.group_id, member = %member_id, "streams member left");
            fence(group, &member_id, records);
        }
        Ok(StreamsHeartbeatResponse {
            error: None,
            member_id: c.member_id.clone(),
            member_epoch: c.member_epoch,
            heartbeat_interval_ms: 0,
            status: Vec::new(),
            assignment: None,
            endpoints: None,
            topics_to_create: Vec::new(),
        })
    }

    /// Fences members whose session expired or who did not revoke in time.
    pub fn tick(&mut self, now_ms: i64) -> Vec<GroupRecord> {
        let mut records = Vec::new();
        for group in self.groups.values_mut() {
            let due: Vec<(String, &'static str)> = group
                .members
                .values()
                .filter_map(|m| {
                    if m.session_deadline_ms <= now_ms {
                        Some((m.member_id.clone(), "session expired"))
                    } else if m.rebalance_deadline.is_some_and(|(epoch, deadline)| {
                        deadline <= now_ms && epoch == m.current.member_epoch
                    }) {
                        Some((
                            m.member_id.clone(),
                            "tasks not revoked within the rebalance timeout",
                        ))
                    } else {
                        None
                    }
                })
                .collect();
            for (member_id, why) in due {
                tracing::info!(group = %group.group_id, member = %member_id, why, "fencing streams member");
                fence(group, &member_id, &mut records);
            }
        }
        records
    }

    pub fn describe(&self, group_id: &str) -> DescribedStreamsGroup {
        let Some(g) = self.groups.get(group_id) else {
            return DescribedStreamsGroup {
                group_id: group_id.to_owned(),
                error: Some(ConsumerError::new(
                    Code::GroupIdNotFound,
                    format!("Group {group_id} not found."),
                )),
                state: "Dead".to_owned(),
                group_epoch: 0,
                assignment_epoch: 0,
                topology: None,
                members: Vec::new(),
            };
        };
        DescribedStreamsGroup {
            group_id: g.group_id.clone(),
            error: None,
            state: g.state().name().to_owned(),
            group_epoch: g.group_epoch,
            assignment_epoch: g.assignment_epoch,
            topology: g.topology.clone(),
            members: g
                .members
                .values()
                .map(|m| DescribedStreamsMember {
                    member_id: m.member_id.clone(),
                    member_epoch: m.current.member_epoch,
                    instance_id: m.metadata.instance_id.clone(),
                    rack_id: m.metadata.rack_id.clone(),
                    client_id: m.metadata.client_id.clone(),
                    client_host: m.metadata.client_host.clone(),
                    topology_epoch: m.metadata.topology_epoch,
                    process_id: m.metadata.process_id.clone(),
                    user_endpoint: m.metadata.user_endpoint.clone(),
                    client_tags: m.metadata.client_tags.clone(),
                    assignment: m.current.assigned.clone(),
                    target_assignment: g.target.get(&m.member_id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// The topics the group reads (source and repartition source topics of its
    /// topology); `None` when the id is not a streams group. OffsetDelete refuses them
    /// and offset expiry spares them, as for a consumer group's subscriptions. An empty
    /// group reads nothing (Kafka's `StreamsGroup.isSubscribedToTopic` since 4.1), though
    /// it keeps its topology: so its offsets can be deleted, and expire
    /// `offsets.retention.minutes` after their commit, and the group with the last of
    /// them.
    pub fn subscribed_topics(&self, group_id: &str) -> Option<BTreeSet<String>> {
        let g = self.groups.get(group_id)?;
        let mut out = BTreeSet::new();
        if g.members.is_empty() {
            return Some(out);
        }
        for s in g.topology.iter().flat_map(|t| t.subtopologies.iter()) {
            out.extend(s.source_topics.iter().cloned());
            out.extend(s.repartition_source_topics.iter().map(|t| t.name.clone()));
        }
        Some(out)
    }

    /// OffsetCommit (and TxnOffsetCommit) by a streams group member (Kafka's
    /// `StreamsGroup.validateOffsetCommit`): an empty group takes commits without a
    /// member (the admin tools'); otherwise the member must exist at its current epoch.
    pub fn validate_offset_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<(), ConsumerError> {
        let Some(group) = self.groups.get(group_id) else {
            return Ok(());
        };
        if member_epoch < 0 && group.members.is_empty() {
            return Ok(());
        }
        let member = group
            .members
            .get(member_id)
            .ok_or_else(|| unknown_member(member_id, group_id))?;
        check_stale(member_epoch, member.current.member_epoch)
    }

    /// OffsetFetch v9+ by a member (Kafka's `StreamsGroup.validateOffsetFetch`).
    pub fn validate_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), ConsumerError> {
        let Some(group) = self.groups.get(group_id) else {
            return Ok(());
        };
        member_epoch::validate_offset_fetch(group_id, member_id, member_epoch, |id| {
            group.members.get(id).map(|m| m.current.member_epoch)
        })
    }

    /// Tombstones that delete an empty group (DeleteGroups); `None` if it has members or
    /// does not exist. The group is removed from memory.
    pub fn delete_empty(&mut self, group_id: &str) -> Option<Vec<GroupRecord>> {
        if !self.groups.get(group_id)?.members.is_empty() {
            return None;
        }
        self.groups.remove(group_id);
        let mut records = Vec::new();
        let group = group_id.to_owned();
        emit(
            &mut records,
            StreamsRecord::TargetEpoch {
                group: group.clone(),
                epoch: None,
            },
        );
        emit(
            &mut records,
            StreamsRecord::Topology {
                group: group.clone(),
                topology: None,
            },
        );
        emit(
            &mut records,
            StreamsRecord::GroupMetadata { group, value: None },
        );
        Some(records)
    }

    /// Applies one record read back from the log. Members come back with a fresh session
    /// (and revocation deadline) starting at `now_ms`, as Kafka reschedules on load.
    pub fn replay(&mut self, record: StreamsRecord, now_ms: i64) {
        let session_ms = i64::from(self.config.session_timeout_ms);
        match record {
            StreamsRecord::GroupMetadata {
                group,
                value: Some(v),
            } => {
                let g = self.entry(&group);
                g.group_epoch = v.epoch;
                g.metadata_hash = v.metadata_hash;
                g.validated_topology_epoch = v.validated_topology_epoch;
                if let Some(n) = v
                    .assignment_configs
                    .iter()
                    .find(|(k, _)| k == NUM_STANDBY_REPLICAS)
                    .and_then(|(_, v)| v.parse().ok())
                {
                    g.num_standby_replicas = n;
                }
            }
            StreamsRecord::GroupMetadata { group, value: None } => {
                self.groups.remove(&group);
            }
            StreamsRecord::Topology { group, topology } => {
                self.entry(&group).topology = topology;
            }
            StreamsRecord::MemberMetadata {
                group,
                member,
                value,
            } => {
                let g = self.entry(&group);
                match value {
                    Some(v) => {
                        let m = g
                            .members
                            .entry(member.clone())
                            .or_insert_with(|| StreamsMember::new(&member));
                        m.metadata = v;
                        // Kafka's `onLoaded` schedules both timers once the log is read; here
                        // each of the member's records schedules them again, so its metadata
                        // (after compaction it may follow the current assignment) brings the
                        // real rebalance timeout, not the default's zero that fences a
                        // revoking member at the first tick.
                        m.session_deadline_ms = now_ms.saturating_add(session_ms);
                        m.rebalance_deadline = m.revocation_deadline(now_ms);
                    }
                    None => {
                        g.members.remove(&member);
                    }
                }
            }
            StreamsRecord::TargetEpoch { group, epoch } => {
                self.entry(&group).assignment_epoch = epoch.unwrap_or(0);
            }
            StreamsRecord::TargetMember {
                group,
                member,
                tasks,
            } => {
                let g = self.entry(&group);
                match tasks {
                    Some(t) => {
                        g.target.insert(member, t);
                    }
                    None => {
                        g.target.remove(&member);
                    }
                }
            }
            StreamsRecord::CurrentMember {
                group,
                member,
                current,
            } => {
                let g = self.entry(&group);
                let Some(current) = current else {
                    // The member's metadata tombstone removes it; a current-assignment
                    // tombstone alone leaves an empty assignment.
                    if let Some(m) = g.members.get_mut(&member) {
                        m.current = CurrentAssignment::default();
                    }
                    return;
                };
                let m = g
                    .members
                    .entry(member.clone())
                    .or_insert_with(|| StreamsMember::new(&member));
                m.current = current;
                m.session_deadline_ms = now_ms.saturating_add(session_ms);
                m.rebalance_deadline = m.revocation_deadline(now_ms);
            }
        }
    }

    fn entry(&mut self, group_id: &str) -> &mut StreamsGroup {
        self.groups
            .entry(group_id.to_owned())
            .or_insert_with(|| StreamsGroup::new(group_id))
    }
}

/// Kafka's `throwIfStreamsGroupHeartbeatRequestIsInvalid` (and the unsupported regexes).
fn validate_request(c: &StreamsHeartbeat) -> Result<(), ConsumerError> {
    let invalid = |m: &str| Err(ConsumerError::new(Code::InvalidRequest, m));
    if c.member_id.is_empty() {
        return invalid("MemberId can't be empty.");
    }
    if c.group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if c.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    if c.rack_id.as_deref() == Some("") {
        return invalid("RackId can't be empty.");
    }
    let too_long = [
        Some(&c.group_id),
        Some(&c.member_id),
        c.instance_id.as_ref(),
        c.rack_id.as_ref(),
        c.process_id.as_ref(),
    ]
    .into_iter()
    .flatten()
    .any(|s| s.len() > STRING_BYTES_MAX);
    if too_long {
        return invalid(
            "GroupId, MemberId, InstanceId, RackId and ProcessId must fit in a record.",
        );
    }
    if let Some(t) = &c.topology {
        if t.subtopologies
            .iter()
            .any(|s| !s.source_topic_regex.is_empty())
        {
            return invalid("Regular expressions for source topics are not supported yet.");
        }
        // The topology becomes one record of a coordinator batch: one too large for
        // `__consumer_offsets` would fail the append and unload the whole partition.
        if topology_bytes(t) > TOPOLOGY_BYTES_MAX {
            return Err(ConsumerError::new(
                Code::StreamsInvalidTopology,
                format!("The topology takes more than {TOPOLOGY_BYTES_MAX} bytes."),
            ));
        }
    }
    let member_bytes = c
        .client_tags
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum::<usize>()
        + c.user_endpoint.as_ref().map_or(0, |e| e.host.len());
    if member_bytes > MEMBER_BYTES_MAX {
        return invalid(&format!(
            "ClientTags and UserEndpoint take more than {MEMBER_BYTES_MAX} bytes."
        ));
    }
    match c.member_epoch {
        0 => {
            if c.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            // Kafka's `throwIfNotEmptyCollection`: a null list is refused like a non-empty
            // one (a joining member owns nothing and must say so).
            let owned = c.owned.as_ref();
            if c.null_tasks.active || owned.is_some_and(|o| !o.active.is_empty()) {
                return invalid("ActiveTasks must be empty when (re-)joining.");
            }
            if c.null_tasks.standby || owned.is_some_and(|o| !o.standby.is_empty()) {
                return invalid("StandbyTasks must be empty when (re-)joining.");
            }
            if c.null_tasks.warmup || owned.is_some_and(|o| !o.warmup.is_empty()) {
                return invalid("WarmupTasks must be empty when (re-)joining.");
            }
            if owned.is_none() {
                // No list sent at all (every `null_tasks` flag should say so).
                return invalid("ActiveTasks must be empty when (re-)joining.");
            }
            let Some(t) = &c.topology else {
                return invalid("Topology must be non-null when (re-)joining.");
            };
            if c.process_id.as_deref().is_none_or(str::is_empty) {
                return invalid("ProcessId can't be empty.");
            }
            topology::validate(t)
                .map_err(|m| ConsumerError::new(Code::StreamsInvalidTopology, m))?;
        }
        LEAVE_GROUP_STATIC_MEMBER_EPOCH if c.instance_id.is_none() => {
            return invalid("InstanceId can't be null.");
        }
        e if e < LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
            return invalid(&format!(
                "MemberEpoch is {e}, but must be greater than or equal to -2."
            ));
        }
        _ => {}
    }
    if c.null_tasks.is_mixed() {
        return invalid("If one task-type is non-null, all must be non-null.");
    }
    if c.member_epoch != 0 && c.topology.is_some() {
        return invalid("Topology can only be provided when (re-)joining.");
    }
    Ok(())
}

/// The most bytes of names a topology may hold (its record's size, roughly), and of a
/// member's client tags and endpoint host: both well under `__consumer_offsets`'
/// `max.message.bytes` (1 MiB), so no heartbeat makes a record that cannot be appended.
const TOPOLOGY_BYTES_MAX: usize = 256 * 1024;
const MEMBER_BYTES_MAX: usize = 16 * 1024;

/// The bytes of a topology's names and configs, and a few per list element.
fn topology_bytes(t: &Topology) -> usize {
    let info = |i: &TopicInfo| {
        8 + i.name.len()
            + i.configs
                .iter()
                .map(|(k, v)| 4 + k.len() + v.len())
                .sum::<usize>()
    };
    let names = |v: &[String]| v.iter().map(|n| 4 + n.len()).sum::<usize>();
    t.subtopologies
        .iter()
        .map(|s| {
            8 + s.id.len()
                + names(&s.source_topics)
                + names(&s.source_topic_regex)
                + names(&s.repartition_sink_topics)
                + s.state_changelog_topics.iter().map(info).sum::<usize>()
                + s.repartition_source_topics.iter().map(info).sum::<usize>()
                + s.copartition_groups
                    .iter()
                    .map(|g| {
                        2 * (g.source_topics.len()
                            + g.source_topic_regex.len()
                            + g.repartition_source_topics.len())
                    })
                    .sum::<usize>()
        })
        .sum()
}

/// The member the heartbeat is about (a new one when joining), and the member id a static
/// member replaces; fencing per Kafka's `throwIfStreamsGroupMemberEpochIsInvalid`.
fn find_member(
    group: &StreamsGroup,
    c: &StreamsHeartbeat,
) -> Result<(StreamsMember, Option<String>), ConsumerError> {
    let joining = c.member_epoch == 0;
    let member_id = c.member_id.as_str();
    let Some(instance) = &c.instance_id else {
        let member = match group.members.get(member_id) {
            Some(m) => m.clone(),
            None if joining => StreamsMember::new(member_id),
            None => return Err(unknown_member(member_id, &group.group_id)),
        };
        check_epoch(&member, c.member_epoch, c.owned.as_ref())?;
        return Ok((member, None));
    };
    let existing = group.static_member(instance);
    if joining {
        return match existing {
            None => Ok((
                group
                    .members
                    .get(member_id)
                    .cloned()
                    .unwrap_or_else(|| StreamsMember::new(member_id)),
                None,
            )),
            Some(old) if old.member_id == member_id => Ok((old.clone(), None)),
            Some(old) if old.current.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
                Err(ConsumerError::new(
                    Code::UnreleasedInstanceId,
                    format!(
                        "Static member {member_id} with instance id {instance} cannot join the group because the instance id is owned by {} member.",
                        old.member_id
                    ),
                ))
            }
            Some(old) => {
                let mut member = old.clone();
                member.member_id = member_id.to_owned();
                member.current.member_epoch = 0;
                member.current.previous_member_epoch = 0;
                member.rebalance_deadline = None;
                Ok((member, Some(old.member_id.clone())))
            }
        };
    }
    let Some(old) = existing else {
        return Err(unknown_instance(instance));
    };
    if old.member_id != member_id {
        return Err(fenced_instance(member_id, instance, &old.member_id));
    }
    check_epoch(old, c.member_epoch, c.owned.as_ref())?;
    Ok((old.clone(), None))
}

/// A member one epoch behind is accepted if it owns no more than its assignment (its last
/// response may have been lost); epoch 0 always is (a fenced member rejoins).
fn check_epoch(
    member: &StreamsMember,
    received: i32,
    owned: Option<&TasksTuple>,
) -> Result<(), ConsumerError> {
    let known = member.current.member_epoch;
    let fenced = if received == 0 {
        false
    } else if received > known {
        true
    } else if received < known {
        received != member.current.previous_member_epoch
            || !owned.is_some_and(|o| o.is_subset_of(&member.current.assigned))
    } else {
        false
    };
    if fenced {
        return Err(ConsumerError::new(
            Code::FencedMemberEpoch,
            format!(
                "The streams group member has a {} member epoch ({received}) than the one known by the group coordinator ({known}). The member must abandon all its tasks and rejoin.",
                if received > known { "greater" } else { "smaller" }
            ),
        ));
    }
    Ok(())
}

fn update_metadata(m: &mut MemberMetadata, c: &StreamsHeartbeat) {
    if let Some(instance) = &c.instance_id {
        m.instance_id = Some(instance.clone());
    }
    if let Some(rack) = &c.rack_id {
        m.rack_id = Some(rack.clone());
    }
    if c.rebalance_timeout_ms != -1 {
        m.rebalance_timeout_ms = c.rebalance_timeout_ms;
    }
    if let Some(t) = &c.topology {
        m.topology_epoch = t.epoch;
    }
    if let Some(p) = &c.process_id {
        m.process_id = p.clone();
    }
    if let Some(e) = &c.user_endpoint {
        m.user_endpoint = Some(e.clone());
    }
    if let Some(tags) = &c.client_tags {
        m.client_tags = tags.clone();
    }
    m.client_id = c.client_id.clone();
    m.client_host = c.client_host.clone();
}

fn configure(group: &StreamsGroup, topics: &Topics, tasks_max: usize) -> Configured {
    match &group.topology {
        Some(t) => topology::configure(t, topics, tasks_max),
        None => Configured::default(),
    }
}

/// A hash of the names, ids and partition counts of every topic the topology names
/// (FNV-1a; Kafka hashes the same facts with its own function, so the values differ).
fn metadata_hash(group: &StreamsGroup, topics: &Topics) -> i64 {
    let Some(t) = &group.topology else {
        return 0;
    };
    let names: BTreeSet<&str> = t
        .subtopologies
        .iter()
        .flat_map(|s| {
            s.source_topics
                .iter()
                .chain(s.repartition_sink_topics.iter())
                .chain(s.repartition_source_topics.iter().map(|t| &t.name))
                .chain(s.state_changelog_topics.iter().map(|t| &t.name))
        })
        .map(String::as_str)
        .collect();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for name in names {
        mix(name.as_bytes());
        match topics.by_name(name) {
            Some(info) => {
                mix(&info.id.0);
                mix(&info.partitions.to_be_bytes());
            }
            None => mix(&[0xff]),
        }
    }
    h as i64
}

fn update_target(
    group: &mut StreamsGroup,
    configured: &Configured,
    records: &mut Vec<GroupRecord>,
) {
    // Static members away (epoch -2) keep their place: their tasks wait for them.
    let specs: Vec<MemberSpec<'_>> = group
        .members
        .values()
        .map(|m| MemberSpec {
            member_id: &m.member_id,
            process_id: &m.metadata.process_id,
        })
        .collect();
    let target = assignor::assign(
        &specs,
        &configured.tasks,
        &configured.stateful,
        &group.target,
        group.num_standby_replicas,
    );
    let gid = group.group_id.clone();
    for (member, tasks) in &target {
        if group.target.get(member) != Some(tasks) {
            emit(records, target_record(&gid, member, Some(tasks.clone())));
        }
    }
    group.target = target;
    group.assignment_epoch = group.group_epoch;
    emit(
        records,
        StreamsRecord::TargetEpoch {
            group: gid.clone(),
            epoch: Some(group.assignment_epoch),
        },
    );
    tracing::info!(group = %gid, epoch = group.assignment_epoch, "new streams target assignment");
}

fn reconcile(
    group: &mut StreamsGroup,
    member_id: &str,
    owned: Option<&TasksTuple>,
    now_ms: i64,
    records: &mut Vec<GroupRecord>,
) {
    let Some(member) = group.members.get(member_id) else {
        return;
    };
    if member.current.state == MemberState::Stable
        && member.current.member_epoch == group.assignment_epoch
    {
        return;
    }
    let empty = TasksTuple::default();
    let target = group.target.get(member_id).unwrap_or(&empty);
    let owners = group.owners();
    let owned = owned.cloned().map(TasksTuple::normalized);
    let step = Reconcile {
        target_epoch: group.assignment_epoch,
        target,
        owners: &owners,
        process_id: &member.metadata.process_id,
        owned: owned.as_ref(),
    };
    let Ok(next) = step.next(&member.current) else {
        // Unknown states are refused before any change; nothing to do here.
        return;
    };
    if next == member.current {
        return;
    }
    let gid = group.group_id.clone();
    if let Some(m) = group.members.get_mut(member_id) {
        m.current = next;
        m.rebalance_deadline = m.revocation_deadline(now_ms);
        emit(records, current_record(&gid, m));
    }
}

/// Removes a member (left, fenced, expired): its records are tombstoned, the group epoch
/// moves and a new target is computed for the others, whose reconciliation then
/// proceeds at their next heartbeats.
fn fence(group: &mut StreamsGroup, member_id: &str, records: &mut Vec<GroupRecord>) {
    remove_member_records(group, member_id, records);
    if group.members.is_empty() {
        // Kafka keeps a shutdown request until the application is gone.
        group.shutdown_requested_by = None;
    }
    group.group_epoch = group.group_epoch.saturating_add(1);
    emit(records, metadata_record(group));
}

fn remove_member_records(
    group: &mut StreamsGroup,
    member_id: &str,
    records: &mut Vec<GroupRecord>,
) {
    let gid = group.group_id.clone();
    group.members.remove(member_id);
    group.target.remove(member_id);
    emit(
        records,
        StreamsRecord::CurrentMember {
            group: gid.clone(),
            member: member_id.to_owned(),
            current: None,
        },
    );
    emit(records, target_record(&gid, member_id, None));
    emit(
        records,
        StreamsRecord::MemberMetadata {
            group: gid,
            member: member_id.to_owned(),
            value: None,
        },
    );
}

/// Which topic partitions each member's tasks read, per endpoint (interactive queries).
fn endpoints(
    group: &StreamsGroup,
    configured: &Configured,
    topics: &Topics,
) -> Vec<EndpointPartitions> {
    let mut by_endpoint: BTreeMap<_, EndpointPartitions> = BTreeMap::new();
    for m in group.members.values() {
        let Some(e) = &m.metadata.user_endpoint else {
            continue;
        };
        let entry = by_endpoint
            .entry(e.clone())
            .or_insert_with(|| EndpointPartitions {
                endpoint: e.clone(),
                active: BTreeMap::new(),
                standby: BTreeMap::new(),
            });
        for (tasks, into) in [
            (&m.current.assigned.active, &mut entry.active),
            (&m.current.assigned.standby, &mut entry.standby),
        ] {
            for (sub, parts) in tasks {
                for topic in configured.inputs.get(sub).into_iter().flatten() {
                    let count = topics.by_name(topic).map_or(0, |t| t.partitions);
                    let partitions: BTreeSet<i32> =
                        parts.iter().copied().filter(|p| *p < count).collect();
                    if !partitions.is_empty() {
                        into.entry(topic.clone()).or_default().extend(partitions);
                    }
                }
            }
        }
    }
    by_endpoint.into_values().collect()
}

fn metadata_record(group: &StreamsGroup) -> StreamsRecord {
    StreamsRecord::GroupMetadata {
        group: group.group_id.clone(),
        value: Some(GroupMetadata {
            epoch: group.group_epoch,
            metadata_hash: group.metadata_hash,
            validated_topology_epoch: group.validated_topology_epoch,
            assignment_configs: vec![(
                NUM_STANDBY_REPLICAS.to_owned(),
                group.num_standby_replicas.to_string(),
            )],
        }),
    }
}

fn member_record(gid: &str, m: &StreamsMember) -> StreamsRecord {
    StreamsRecord::MemberMetadata {
        group: gid.to_owned(),
        member: m.member_id.clone(),
        value: Some(m.metadata.clone()),
    }
}

fn target_record(gid: &str, member: &str, tasks: Option<TasksTuple>) -> StreamsRecord {
    StreamsRecord::TargetMember {
        group: gid.to_owned(),
        member: member.to_owned(),
        tasks,
    }
}

fn current_record(gid: &str, m: &StreamsMember) -> StreamsRecord {
    StreamsRecord::CurrentMember {
        group: gid.to_owned(),
        member: m.member_id.clone(),
        current: Some(m.current.clone()),
    }
}

fn emit(records: &mut Vec<GroupRecord>, record: StreamsRecord) {
    match record.encode() {
        Ok(r) => records.push(r),
        // Inputs are length-checked before they reach state, so this is a bug.
        Err(e) => tracing::error!(error = %e, "streams group record not encodable; dropped"),
    }
}
