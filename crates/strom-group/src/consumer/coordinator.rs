//! The KIP-848 coordinator of one `__consumer_offsets` partition: ConsumerGroupHeartbeat
//! (join, heartbeat, leave, static leave), timers (session and revocation deadlines),
//! ConsumerGroupDescribe, the offset checks of consumer groups and record replay.
//!
//! Every state change is made together with the record that persists it, and every error
//! is found before anything changes, so a rejected request leaves neither state nor records.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::member_epoch::{self, check_stale, fenced_instance, unknown_instance, unknown_member};
use crate::records::GroupRecord;
use crate::records::STRING_BYTES_MAX;

use super::group::{ConsumerGroup, OthersHold, TopicMetadata};
use super::member::{is_subset, to_assignment, Member, MemberState};
use super::reconcile::Reconcile;
use super::records::ConsumerRecord;
use super::subscription;
use super::types::{
    Assignment, ConsumerConfig, ConsumerError, ConsumerErrorCode as Code, ConsumerHeartbeat,
    ConsumerHeartbeatResponse, DescribedGroup, DescribedMember, Topics,
};

/// Member epoch of a heartbeat that leaves the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// Member epoch of a static member that leaves and will come back within its session.
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

type HeartbeatResult = Result<ConsumerHeartbeatResponse, ConsumerError>;

#[derive(Debug, Default)]
pub struct ConsumerGroups {
    pub(crate) config: ConsumerConfig,
    pub(crate) groups: BTreeMap<String, ConsumerGroup>,
    /// The newest topic view seen, for timers that fence members (they carry none).
    topics: Arc<Topics>,
    next_member_seq: u64,
}

impl ConsumerGroups {
    pub fn new(config: ConsumerConfig) -> Self {
        ConsumerGroups {
            config,
            ..ConsumerGroups::default()
        }
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    pub fn group(&self, group_id: &str) -> Option<&ConsumerGroup> {
        self.groups.get(group_id)
    }

    pub fn group_ids(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// Handles a ConsumerGroupHeartbeat; returns the records to append before replying.
    pub fn heartbeat(
        &mut self,
        c: ConsumerHeartbeat,
        now_ms: i64,
    ) -> (Vec<GroupRecord>, ConsumerHeartbeatResponse) {
        self.topics = Arc::clone(&c.topics);
        let mut records = Vec::new();
        let result = validate_request(&c, &self.config).and_then(|()| {
            if c.member_epoch < 0 {
                self.leave(&c, &mut records)
            } else {
                self.join_or_heartbeat(&c, now_ms, &mut records)
            }
        });
        match result {
            Ok(response) => (records, response),
            Err(error) => {
                tracing::debug!(group = %c.group_id, member = %c.member_id, ?error, "heartbeat refused");
                (Vec::new(), ConsumerHeartbeatResponse::error(error))
            }
        }
    }

    fn join_or_heartbeat(
        &mut self,
        c: &ConsumerHeartbeat,
        now_ms: i64,
        records: &mut Vec<GroupRecord>,
    ) -> HeartbeatResult {
        let joining = c.member_epoch == 0;
        let existing = self.groups.remove(&c.group_id);
        let existed = existing.is_some();
        if !existed && !joining {
            return Err(ConsumerError::new(
                Code::GroupIdNotFound,
                format!("Consumer group {} not found.", c.group_id),
            ));
        }
        let mut group = existing.unwrap_or_else(|| ConsumerGroup::new(&c.group_id));
        let result = self.heartbeat_group(&mut group, c, now_ms, records);
        if existed || result.is_ok() {
            self.groups.insert(c.group_id.clone(), group);
        }
        result
    }

    fn heartbeat_group(
        &mut self,
        group: &mut ConsumerGroup,
        c: &ConsumerHeartbeat,
        now_ms: i64,
        records: &mut Vec<GroupRecord>,
    ) -> HeartbeatResult {
        let known = !c.member_id.is_empty() && group.members.contains_key(&c.member_id);
        if group.members.len() >= self.config.max_size && !known {
            return Err(ConsumerError::new(
                Code::GroupMaxSizeReached,
                format!(
                    "The consumer group has reached its maximum capacity of {} members.",
                    self.config.max_size
                ),
            ));
        }
        let member_id = if c.member_id.is_empty() {
            self.new_member_id(group)
        } else {
            c.member_id.clone()
        };
        let owned = c.owned_partitions.as_deref().map(to_assignment);
        let (member, replaced) = find_member(group, c, &member_id, owned.as_ref())?;
        if member.current.state == MemberState::Unknown
            && owned.as_ref().is_none_or(|o| !o.is_empty())
        {
            return Err(ConsumerError::new(
                Code::FencedMemberEpoch,
                "The consumer group member is in a unknown state. The member must abandon all its partitions and rejoin.",
            ));
        }
        // From here on nothing fails: state and records change together.
        let gid = group.group_id.clone();
        if let Some(old_id) = replaced {
            let old_target = group.target.get(&old_id).cloned().unwrap_or_default();
            remove_member(group, &old_id, records);
            group.target.insert(member_id.clone(), old_target.clone());
            group.put_member(member.clone());
            emit(records, member_record(&gid, &member));
            emit(records, target_record(&gid, &member_id, Some(old_target)));
            emit(records, current_record(&gid, &member));
        }
        let is_new = !group.members.contains_key(&member_id);
        let mut updated = member.clone();
        update_subscription(&mut updated, c);
        let mut bump = is_new
            || updated.subscription.subscribed_topic_names
                != member.subscription.subscribed_topic_names
            || updated.subscription.subscribed_topic_regex
                != member.subscription.subscribed_topic_regex;
        if is_new || updated.subscription != member.subscription {
            emit(records, member_record(&gid, &updated));
        }
        group.put_member(updated);
        bump |= refresh_subscription_metadata(group, &c.topics, records);
        if bump {
            group.group_epoch = group.group_epoch.saturating_add(1);
            tracing::info!(group = %gid, epoch = group.group_epoch, "bumped group epoch");
            emit(
                records,
                ConsumerRecord::GroupEpoch {
                    group: gid.clone(),
                    epoch: Some(group.group_epoch),
                },
            );
        }
        if group.group_epoch > group.assignment_epoch {
            self.update_target(group, &c.topics, records);
        }
        self.reconcile(group, &member_id, owned.as_ref(), now_ms, records);
        // The group's `consumer.*` configs, when set, override the broker's.
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
        let full = c.member_epoch == 0
            || (c.rebalance_timeout_ms != -1
                && c.subscribed_topic_names.is_some()
                && c.owned_partitions.is_some());
        let assignment = (full || after.current.assigned != member.current.assigned)
            .then(|| after.current.assigned.clone());
        Ok(ConsumerHeartbeatResponse {
            error: None,
            member_id: Some(member_id),
            member_epoch: after.current.member_epoch,
            heartbeat_interval_ms,
            assignment,
        })
    }

    fn update_target(
        &self,
        group: &mut ConsumerGroup,
        topics: &Topics,
        records: &mut Vec<GroupRecord>,
    ) {
        let default = self.default_assignor();
        let resolved = resolve_all(group, topics);
        let target = group.compute_target(default, &resolved);
        let gid = group.group_id.clone();
        for (member, assignment) in &target {
            if group.target.get(member) != Some(assignment) {
                emit(
                    records,
                    target_record(&gid, member, Some(assignment.clone())),
                );
            }
        }
        group.target = target;
        group.assignment_epoch = group.group_epoch;
        emit(
            records,
            ConsumerRecord::TargetEpoch {
                group: gid.clone(),
                epoch: Some(group.assignment_epoch),
            },
        );
        tracing::info!(group = %gid, epoch = group.assignment_epoch, "new target assignment");
    }

    fn reconcile(
        &self,
        group: &mut ConsumerGroup,
        member_id: &str,
        owned: Option<&Assignment>,
        now_ms: i64,
        records: &mut Vec<GroupRecord>,
    ) {
        let Some(member) = group.members.get(member_id) else {
            return;
        };
        if member.current.is_reconciled_to(group.assignment_epoch) {
            return;
        }
        let empty = Assignment::new();
        let target = group.target.get(member_id).unwrap_or(&empty);
        let ownership = OthersHold::new(group, member_id);
        let step = Reconcile {
            target_epoch: group.assignment_epoch,
            target,
            ownership: &ownership,
            owned,
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
            m.rebalance_timer = m.revocation_timer(now_ms);
            emit(records, current_record(&gid, m));
        }
    }

    fn leave(&mut self, c: &ConsumerHeartbeat, records: &mut Vec<GroupRecord>) -> HeartbeatResult {
        let Some(group) = self.groups.get_mut(&c.group_id) else {
            return Err(ConsumerError::new(
                Code::GroupIdNotFound,
                format!("Consumer group {} not found.", c.group_id),
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
            tracing::info!(group = %c.group_id, member = %member_id, "static member left temporarily");
            let gid = group.group_id.clone();
            if let Some(m) = group.members.get_mut(&member_id) {
                m.current.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
                m.current.pending_revocation.clear();
                emit(records, current_record(&gid, m));
            }
        } else {
            tracing::info!(group = %c.group_id, member = %member_id, "member left");
            fence(group, &member_id, &c.topics, records);
        }
        Ok(ConsumerHeartbeatResponse {
            error: None,
            member_id: Some(c.member_id.clone()),
            member_epoch: c.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// Fences members whose session expired or who did not revoke in time.
    pub fn tick(&mut self, now_ms: i64) -> Vec<GroupRecord> {
        let mut records = Vec::new();
        let topics = Arc::clone(&self.topics);
        for group in self.groups.values_mut() {
            let due: Vec<(String, &'static str)> = group
                .members
                .values()
                .filter_map(|m| {
                    if m.session_deadline_ms <= now_ms {
                        Some((m.member_id.clone(), "session expired"))
                    } else if m.rebalance_timer.is_some_and(|t| {
                        t.deadline_ms <= now_ms && t.member_epoch == m.current.member_epoch
                    }) {
                        Some((
                            m.member_id.clone(),
                            "partitions not revoked within the rebalance timeout",
                        ))
                    } else {
                        None
                    }
                })
                .collect();
            for (member_id, why) in due {
                tracing::info!(group = %group.group_id, member = %member_id, why, "fencing member");
                fence(group, &member_id, &topics, &mut records);
            }
        }
        records
    }

    pub fn describe(&self, group_ids: &[String]) -> Vec<DescribedGroup> {
        group_ids
            .iter()
            .map(|id| match self.groups.get(id) {
                Some(g) => self.described(g),
                None => DescribedGroup {
                    group_id: id.clone(),
                    error: Some(ConsumerError::new(
                        Code::GroupIdNotFound,
                        format!("Group {id} not found."),
                    )),
                    state: "Dead".to_owned(),
                    group_epoch: 0,
                    assignment_epoch: 0,
                    assignor_name: String::new(),
                    members: Vec::new(),
                },
            })
            .collect()
    }

    fn described(&self, g: &ConsumerGroup) -> DescribedGroup {
        DescribedGroup {
            group_id: g.group_id.clone(),
            error: None,
            state: g.state().name().to_owned(),
            group_epoch: g.group_epoch,
            assignment_epoch: g.assignment_epoch,
            assignor_name: g.preferred_assignor(self.default_assignor()),
            members: g
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.subscription.instance_id.clone(),
                    rack_id: m.subscription.rack_id.clone(),
                    member_epoch: m.current.member_epoch,
                    client_id: m.subscription.client_id.clone(),
                    client_host: m.subscription.client_host.clone(),
                    subscribed_topic_names: m
                        .subscription
                        .subscribed_topic_names
                        .iter()
                        .cloned()
                        .collect(),
                    subscribed_topic_regex: m.subscription.subscribed_topic_regex.clone(),
                    assignment: m.current.assigned.clone(),
                    target_assignment: g.target.get(&m.member_id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// OffsetCommit by a consumer group (Kafka's `ConsumerGroup.validateOffsetCommit`).
    pub fn validate_offset_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
        api_version: i16,
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
        if api_version < 9 {
            return Err(ConsumerError::new(
                Code::UnsupportedVersion,
                "OffsetCommit version 9 or above must be used by members using the modern group protocol",
            ));
        }
        check_stale(member_epoch, member.current.member_epoch)
    }

    /// OffsetFetch v9+ by a member (Kafka's `ConsumerGroup.validateOffsetFetch`).
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
            ConsumerRecord::TargetEpoch {
                group: group.clone(),
                epoch: None,
            },
        );
        emit(
            &mut records,
            ConsumerRecord::PartitionMetadata {
                group: group.clone(),
                topics: None,
            },
        );
        emit(
            &mut records,
            ConsumerRecord::GroupEpoch { group, epoch: None },
        );
        Some(records)
    }

    /// Applies one record read back from the log. Members come back with a fresh session
    /// (and revocation deadline) starting at `now_ms`, as Kafka reschedules on load.
    pub fn replay(&mut self, record: ConsumerRecord, now_ms: i64) {
        let session_ms = i64::from(self.config.session_timeout_ms);
        match record {
            ConsumerRecord::GroupEpoch {
                group,
                epoch: Some(epoch),
            } => {
                self.entry(&group).group_epoch = epoch;
            }
            ConsumerRecord::GroupEpoch { group, epoch: None } => {
                self.groups.remove(&group);
            }
            ConsumerRecord::PartitionMetadata { group, topics } => {
                self.entry(&group).subscription_metadata =
                    topics.unwrap_or_default().into_iter().collect();
            }
            ConsumerRecord::MemberMetadata {
                group,
                member,
                subscription,
            } => {
                let g = self.entry(&group);
                match subscription {
                    Some(s) => {
                        let mut m = g
                            .members
                            .get(&member)
                            .cloned()
                            .unwrap_or_else(|| Member::new(&member, now_ms));
                        m.subscription = s;
                        // Both timers restart at load from whichever of the member's records
                        // comes last: after compaction its metadata (with the rebalance
                        // timeout) may follow its current assignment.
                        m.session_deadline_ms = now_ms.saturating_add(session_ms);
                        m.rebalance_timer = m.revocation_timer(now_ms);
                        g.put_member(m);
                    }
                    None => {
                        g.remove_member(&member);
                    }
                }
            }
            ConsumerRecord::TargetEpoch { group, epoch } => {
                self.entry(&group).assignment_epoch = epoch.unwrap_or(0);
            }
            ConsumerRecord::TargetMember {
                group,
                member,
                assignment,
            } => {
                let g = self.entry(&group);
                match assignment {
                    Some(a) => {
                        g.target.insert(member, a);
                    }
                    None => {
                        g.target.remove(&member);
                    }
                }
            }
            ConsumerRecord::CurrentMember {
                group,
                member,
                current,
            } => {
                let g = self.entry(&group);
                let mut m = g
                    .members
                    .get(&member)
                    .cloned()
                    .unwrap_or_else(|| Member::new(&member, now_ms));
                m.current = current.unwrap_or_default();
                m.session_deadline_ms = now_ms.saturating_add(session_ms);
                m.rebalance_timer = m.revocation_timer(now_ms);
                g.put_member(m);
            }
        }
    }

    fn entry(&mut self, group_id: &str) -> &mut ConsumerGroup {
        self.groups
            .entry(group_id.to_owned())
            .or_insert_with(|| ConsumerGroup::new(group_id))
    }

    fn default_assignor(&self) -> &str {
        self.config
            .assignors
            .first()
            .map_or(super::assignor::UNIFORM, String::as_str)
    }

    fn new_member_id(&mut self, group: &ConsumerGroup) -> String {
        loop {
            self.next_member_seq = self.next_member_seq.wrapping_add(1);
            let id = format!(
                "{:016x}-{:08x}",
                self.config.member_id_salt, self.next_member_seq
            );
            if !group.members.contains_key(&id) {
                return id;
            }
        }
    }
}

/// Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid` (4.x: v1 needs a member id
/// from the client; joining may subscribe by names or by regex).
fn validate_request(c: &ConsumerHeartbeat, config: &ConsumerConfig) -> Result<(), ConsumerError> {
    let invalid = |m: &str| Err(ConsumerError::new(Code::InvalidRequest, m));
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
    ]
    .into_iter()
    .flatten()
    .any(|s| s.len() > STRING_BYTES_MAX);
    if too_long {
        return invalid("GroupId, MemberId and InstanceId must fit in a record key.");
    }
    if c.api_version >= 1 && c.member_id.is_empty() {
        return invalid("MemberId can't be empty.");
    }
    match c.member_epoch {
        e if e > 0 || e == LEAVE_GROUP_MEMBER_EPOCH => {
            if c.member_id.is_empty() {
                return invalid("MemberId can't be empty.");
            }
        }
        0 => {
            if c.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if c.owned_partitions.as_ref().is_none_or(|o| !o.is_empty()) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if c.subscribed_topic_names.is_none() && c.subscribed_topic_regex.is_none() {
                return invalid("Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.");
            }
        }
        LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
            if c.member_id.is_empty() {
                return invalid("MemberId can't be empty.");
            }
            if c.instance_id.is_none() {
                return invalid("InstanceId can't be null.");
            }
        }
        _ => return invalid("MemberEpoch is invalid."),
    }
    if let Some(assignor) = &c.server_assignor {
        if !config.assignors.iter().any(|a| a == assignor) {
            return Err(ConsumerError::new(
                Code::UnsupportedAssignor,
                format!(
                    "ServerAssignor {assignor} is not supported. Supported assignors: {}.",
                    config.assignors.join(", ")
                ),
            ));
        }
    }
    if let Some(regex) = c
        .subscribed_topic_regex
        .as_deref()
        .filter(|r| !r.is_empty())
    {
        subscription::validate_regex(regex)
            .map_err(|m| ConsumerError::new(Code::InvalidRegularExpression, m))?;
    }
    Ok(())
}

/// The member the heartbeat is about, before its update, and the member id it replaces
/// (a static member rejoining under a new member id).
fn find_member(
    group: &ConsumerGroup,
    c: &ConsumerHeartbeat,
    member_id: &str,
    owned: Option<&Assignment>,
) -> Result<(Member, Option<String>), ConsumerError> {
    let joining = c.member_epoch == 0;
    let Some(instance) = &c.instance_id else {
        let member = match group.members.get(member_id) {
            Some(m) => m.clone(),
            None if joining => Member::new(member_id, 0),
            None => return Err(unknown_member(member_id, &group.group_id)),
        };
        check_epoch(&member, c.member_epoch, owned)?;
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
                    .unwrap_or_else(|| Member::new(member_id, 0)),
                None,
            )),
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
                member.rebalance_timer = None;
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
    check_epoch(old, c.member_epoch, owned)?;
    Ok((old.clone(), None))
}

/// Kafka's `throwIfConsumerGroupMemberEpochIsInvalid`: a member one epoch behind is
/// accepted if it owns no more than its assignment (its last response may have been lost),
/// and epoch 0 always is: a fenced member rejoins under its member id (KAFKA-19233).
fn check_epoch(
    member: &Member,
    received: i32,
    owned: Option<&Assignment>,
) -> Result<(), ConsumerError> {
    let known = member.current.member_epoch;
    let fenced = if received == 0 {
        false
    } else if received > known {
        true
    } else if received < known {
        received != member.current.previous_member_epoch
            || !owned.is_some_and(|o| is_subset(o, &member.current.assigned))
    } else {
        false
    };
    if fenced {
        return Err(ConsumerError::new(
            Code::FencedMemberEpoch,
            format!(
                "The consumer group member has a {} member epoch ({received}) than the one known by the group coordinator ({known}). The member must abandon all its partitions and rejoin.",
                if received > known { "greater" } else { "smaller" }
            ),
        ));
    }
    Ok(())
}

fn update_subscription(member: &mut Member, c: &ConsumerHeartbeat) {
    let s = &mut member.subscription;
    if let Some(instance) = &c.instance_id {
        s.instance_id = Some(instance.clone());
    }
    if let Some(rack) = &c.rack_id {
        s.rack_id = Some(rack.clone());
    }
    if c.rebalance_timeout_ms != -1 {
        s.rebalance_timeout_ms = c.rebalance_timeout_ms;
    }
    if let Some(assignor) = &c.server_assignor {
        s.server_assignor = Some(assignor.clone());
    }
    if let Some(names) = &c.subscribed_topic_names {
        s.subscribed_topic_names = names.iter().cloned().collect();
    }
    if let Some(regex) = &c.subscribed_topic_regex {
        // An empty regex clears a regex subscription.
        s.subscribed_topic_regex = Some(regex.clone()).filter(|r| !r.is_empty());
    }
    s.client_id.clone_from(&c.client_id);
    s.client_host.clone_from(&c.client_host);
}

fn resolve_all(group: &ConsumerGroup, topics: &Topics) -> BTreeMap<String, BTreeSet<String>> {
    let mut resolver = subscription::Resolver::new(topics);
    group
        .members
        .values()
        .map(|m| (m.member_id.clone(), resolver.resolve(&m.subscription)))
        .collect()
}

/// Recomputes the metadata of the subscribed topics; true (and a record) if it changed.
fn refresh_subscription_metadata(
    group: &mut ConsumerGroup,
    topics: &Topics,
    records: &mut Vec<GroupRecord>,
) -> bool {
    let names: BTreeSet<String> = resolve_all(group, topics).into_values().flatten().collect();
    let metadata: BTreeMap<String, TopicMetadata> = names
        .into_iter()
        .filter_map(|name| {
            let t = topics.by_name(&name)?;
            Some((
                name,
                TopicMetadata {
                    id: t.id,
                    partitions: t.partitions,
                },
            ))
        })
        .collect();
    if metadata == group.subscription_metadata {
        return false;
    }
    emit(
        records,
        ConsumerRecord::PartitionMetadata {
            group: group.group_id.clone(),
            topics: Some(
                metadata
                    .iter()
                    .map(|(n, t)| (n.clone(), t.clone()))
                    .collect(),
            ),
        },
    );
    group.subscription_metadata = metadata;
    true
}

/// Removes a member (leave, session or revocation timeout) and bumps the group epoch.
fn fence(
    group: &mut ConsumerGroup,
    member_id: &str,
    topics: &Topics,
    records: &mut Vec<GroupRecord>,
) {
    remove_member(group, member_id, records);
    refresh_subscription_metadata(group, topics, records);
    group.group_epoch = group.group_epoch.saturating_add(1);
    emit(
        records,
        ConsumerRecord::GroupEpoch {
            group: group.group_id.clone(),
            epoch: Some(group.group_epoch),
        },
    );
    // An empty group has nothing to assign: its target epoch catches up (KAFKA-20442).
    if group.members.is_empty() {
        group.assignment_epoch = group.group_epoch;
        emit(
            records,
            ConsumerRecord::TargetEpoch {
                group: group.group_id.clone(),
                epoch: Some(group.assignment_epoch),
            },
        );
    }
}

/// Kafka's `removeMember`: the tombstones, in the order Kafka writes them.
fn remove_member(group: &mut ConsumerGroup, member_id: &str, records: &mut Vec<GroupRecord>) {
    let gid = group.group_id.clone();
    let member = member_id.to_owned();
    emit(
        records,
        ConsumerRecord::CurrentMember {
            group: gid.clone(),
            member: member.clone(),
            current: None,
        },
    );
    emit(
        records,
        ConsumerRecord::TargetMember {
            group: gid.clone(),
            member: member.clone(),
            assignment: None,
        },
    );
    emit(
        records,
        ConsumerRecord::MemberMetadata {
            group: gid,
            member,
            subscription: None,
        },
    );
    group.remove_member(member_id);
}

fn member_record(group: &str, m: &Member) -> ConsumerRecord {
    ConsumerRecord::MemberMetadata {
        group: group.to_owned(),
        member: m.member_id.clone(),
        subscription: Some(m.subscription.clone()),
    }
}

fn target_record(group: &str, member: &str, assignment: Option<Assignment>) -> ConsumerRecord {
    ConsumerRecord::TargetMember {
        group: group.to_owned(),
        member: member.to_owned(),
        assignment,
    }
}

fn current_record(group: &str, m: &Member) -> ConsumerRecord {
    ConsumerRecord::CurrentMember {
        group: group.to_owned(),
        member: m.member_id.clone(),
        current: Some(m.current.clone()),
    }
}

fn emit(records: &mut Vec<GroupRecord>, record: ConsumerRecord) {
    match record.encode() {
        Ok(r) => records.push(r),
        // Ids are length-checked in `validate_request`, so this is a bug.
        Err(e) => tracing::error!(error = %e, "consumer group record not encodable; dropped"),
    }
}
