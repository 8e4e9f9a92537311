//! The share groups of one `__consumer_offsets` partition: ShareGroupHeartbeat (join,
//! heartbeat, leave), session expiry, describe, list, delete and record replay.
//!
//! Every error is found before anything changes, and every change is made together with
//! the record that persists it, so replaying the records rebuilds the same groups (only
//! session deadlines and initialization times restart at load).
//!
//! Durable share state (Kafka's ShareGroupStatePartitionMetadata, record type 15): the
//! coordinator records which share partitions of a group have state in
//! `__share_group_state`. A heartbeat whose group subscribes to partitions that are neither
//! initialized nor being initialized (or were initializing for longer than
//! `initialize_retry_interval_ms`) records them as initializing and hands out an
//! [`InitializeJob`]; the broker initializes their state and reports back with
//! `Initialized` (recorded as initialized) or `Uninitialized` (dropped from initializing,
//! asked again by the next heartbeat). As Kafka, only initialized partitions are assigned,
//! and a group epoch bump follows once newly initialized partitions are not assigned yet.
//! Deletions (DeleteGroups, DeleteShareGroupOffsets) first move partitions to deleting,
//! then the broker deletes their state, then the group (or the deleting entry) goes.
//! Topics that left the cluster leave the record at the group's next heartbeat.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use strom_group::consumer::{Assignment, TopicId, Topics};
use strom_group::{ErrorCode, GroupRecord};

use super::assignor::simple_assign;
use super::records::{CurrentAssignment, MemberMetadata, ShareGroupRecord, StatePartitions};
use super::types::{
    DescribedShareGroup, DescribedShareMember, InitializeJob, ListedShareGroup, OffsetsToDelete,
    ShareCommand, ShareConfig, ShareError, ShareHeartbeat, ShareHeartbeatResponse, ShareResponse,
    StateToDelete,
};

/// Member epoch of a heartbeat that leaves the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// Kafka's name of the share groups' only server-side assignor.
const ASSIGNOR_NAME: &str = "simple";
/// Group and member ids are record-key strings (int16 lengths).
const ID_BYTES_MAX: usize = i16::MAX as usize;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Member {
    metadata: MemberMetadata,
    current: CurrentAssignment,
    /// When the session expires without a heartbeat (not recorded: restarts at load).
    deadline_ms: i64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Group {
    epoch: i32,
    /// The hash of the subscribed topics' metadata the epoch was last computed for.
    metadata_hash: i64,
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    target: BTreeMap<String, Assignment>,
}

impl Group {
    fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    fn subscribed_topics(&self) -> BTreeSet<&str> {
        self.members
            .values()
            .flat_map(|m| m.metadata.subscribed_topic_names.iter().map(String::as_str))
            .collect()
    }
}

/// A group's state partition metadata (record type 15) with when each initializing topic
/// was last asked for (not recorded: restarts at load, as in Kafka).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct StateEntry {
    partitions: StatePartitions,
    initializing_since_ms: BTreeMap<TopicId, i64>,
}

#[derive(Debug, Default)]
pub struct ShareGroups {
    config: ShareConfig,
    groups: BTreeMap<String, Group>,
    /// Kept apart from `groups`: AlterShareGroupOffsets may record state for a group id
    /// that has no members yet (Strom counts it as an empty group).
    state: BTreeMap<String, StateEntry>,
    /// The newest topic view seen, for removals by timers (they carry none).
    topics: Arc<Topics>,
}

type Records = Vec<ShareGroupRecord>;

impl ShareGroups {
    pub fn new(config: ShareConfig) -> Self {
        ShareGroups {
            config,
            groups: BTreeMap::new(),
            state: BTreeMap::new(),
            topics: Arc::default(),
        }
    }

    pub fn config(&self) -> &ShareConfig {
        &self.config
    }

    /// Whether a share group of this id exists (the group coordinator keeps one type per
    /// group id).
    pub fn contains(&self, group_id: &str) -> bool {
        self.groups.contains_key(group_id) || self.state.contains_key(group_id)
    }

    pub fn group_ids(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// The topic partitions assigned to some member of `group_id` (what its share
    /// partitions serve), by topic id.
    pub fn assigned_partitions(&self, group_id: &str) -> Assignment {
        let mut out = Assignment::new();
        for member in self
            .groups
            .get(group_id)
            .into_iter()
            .flat_map(|g| g.members.values())
        {
            for (topic, partitions) in &member.current.assigned {
                out.entry(*topic).or_default().extend(partitions);
            }
        }
        out
    }

    /// Handles one command; returns the records to append durably before the response is
    /// released.
    pub fn handle(
        &mut self,
        command: ShareCommand,
        now_ms: i64,
    ) -> (Vec<GroupRecord>, ShareResponse) {
        let mut records = Records::new();
        let response = match command {
            ShareCommand::Heartbeat(hb) => {
                let response = match self.heartbeat(hb, now_ms, &mut records) {
                    Ok(r) => r,
                    Err(e) => ShareHeartbeatResponse::error(e),
                };
                ShareResponse::Heartbeat(response)
            }
            ShareCommand::Describe { group_ids, topics } => {
                ShareResponse::Describe(self.describe(&group_ids, &topics))
            }
            ShareCommand::List => ShareResponse::List(self.list()),
            ShareCommand::Delete(group_id) => {
                ShareResponse::Delete(self.delete(&group_id, &mut records))
            }
            ShareCommand::PrepareDelete(group_id) => {
                ShareResponse::PrepareDelete(self.prepare_delete(&group_id, &mut records))
            }
            ShareCommand::PrepareDeleteOffsets {
                group_id,
                topic_ids,
                topics,
            } => ShareResponse::PrepareDeleteOffsets(self.prepare_delete_offsets(
                &group_id,
                &topic_ids,
                &topics,
                &mut records,
            )),
            ShareCommand::DeletedOffsets {
                group_id,
                topic_ids,
            } => {
                if let Some(entry) = self.state.get(&group_id) {
                    let mut next = entry.partitions.clone();
                    for id in &topic_ids {
                        next.deleting.remove(id);
                    }
                    self.set_state(&group_id, next, &mut records);
                }
                ShareResponse::Done(Ok(()))
            }
            ShareCommand::Initialized {
                group_id,
                partitions,
                topics,
                job,
            } => {
                self.initialized(&group_id, &partitions, &topics, job, &mut records);
                ShareResponse::Done(Ok(()))
            }
            ShareCommand::Uninitialized {
                group_id,
                partitions,
            } => {
                if let Some(entry) = self.state.get(&group_id) {
                    let mut next = entry.partitions.clone();
                    remove_partitions(&mut next.initializing, &partitions);
                    self.set_state(&group_id, next, &mut records);
                }
                ShareResponse::Done(Ok(()))
            }
            ShareCommand::OffsetsAdmin { group_id, create } => {
                ShareResponse::OffsetsAdmin(self.offsets_admin(&group_id, create))
            }
            ShareCommand::StatePartitions(group_id) => ShareResponse::StatePartitions(
                self.state
                    .get(&group_id)
                    .map(|e| strip_names(&e.partitions.initialized)),
            ),
        };
        (encode(records), response)
    }

    /// See [`ShareCommand::OffsetsAdmin`]. Nothing is recorded here: an altered group comes
    /// into being with the record of its altered partitions (`Initialized`), and one whose
    /// alter wrote nothing stays unknown.
    fn offsets_admin(&self, group_id: &str, create: bool) -> Result<(), ShareError> {
        if self
            .groups
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
        {
            // Kafka's words (`Errors.NON_EMPTY_GROUP.message()`).
            return Err(ShareError::new(
                ErrorCode::NonEmptyGroup,
                "The group is not empty.",
            ));
        }
        if create || self.contains(group_id) {
            return Ok(());
        }
        Err(ShareError::new(
            ErrorCode::GroupIdNotFound,
            format!("Group {group_id} not found."),
        ))
    }

    /// Records `next` as `group_id`'s state partition metadata (when it changed), keeping
    /// the initialization times of topics still initializing.
    fn set_state(&mut self, group_id: &str, next: StatePartitions, records: &mut Records) {
        set_state(&mut self.state, group_id, next, None, records);
    }

    /// The persister initialized `partitions` of `group_id`: they move from initializing
    /// (if there) to initialized. A job's answer (`job`) moves only partitions still
    /// initializing: the group may have been deleted, or the partitions moved to deleting,
    /// while the job ran, and neither may be undone by it.
    fn initialized(
        &mut self,
        group_id: &str,
        partitions: &Assignment,
        topics: &Topics,
        job: bool,
        records: &mut Records,
    ) {
        let mut next = match self.state.get(group_id) {
            Some(e) => e.partitions.clone(),
            None if job => return,
            None => StatePartitions::default(),
        };
        let still_initializing;
        let partitions = if job {
            still_initializing = partitions
                .iter()
                .filter_map(|(topic, ps)| {
                    let (_, asked) = next.initializing.get(topic)?;
                    let ps: BTreeSet<i32> = ps.intersection(asked).copied().collect();
                    (!ps.is_empty()).then_some((*topic, ps))
                })
                .collect::<Assignment>();
            &still_initializing
        } else {
            partitions
        };
        remove_partitions(&mut next.initializing, partitions);
        for (topic, ps) in partitions {
            let name = topic_name(topics, *topic);
            let entry = next
                .initialized
                .entry(*topic)
                .or_insert_with(|| (name, BTreeSet::new()));
            entry.1.extend(ps);
            next.deleting.remove(topic);
        }
        self.set_state(group_id, next, records);
    }

    /// DeleteGroups' first step: an empty share group's initialized and initializing share
    /// partitions (and topics already deleting, whose delete is retried) move to deleting.
    fn prepare_delete(
        &mut self,
        group_id: &str,
        records: &mut Records,
    ) -> Result<Option<StateToDelete>, ErrorCode> {
        match self.groups.get(group_id) {
            Some(group) if !group.members.is_empty() => return Err(ErrorCode::NonEmptyGroup),
            Some(_) => {}
            None if self.state.contains_key(group_id) => {}
            None => return Ok(None),
        }
        let Some(entry) = self.state.get(group_id) else {
            return Ok(Some(StateToDelete::Unrecorded));
        };
        let current = entry.partitions.clone();
        let mut delete = strip_names(&current.initialized);
        for (topic, ps) in strip_names(&current.initializing) {
            delete.entry(topic).or_default().extend(ps);
        }
        // Topics left deleting by an earlier attempt: every partition they have now.
        for topic in current.deleting.keys() {
            if let Some(info) = topic_by_id(&self.topics, *topic) {
                delete.entry(*topic).or_default().extend(0..info.partitions);
            }
        }
        let mut next = StatePartitions::default();
        for topic in delete.keys() {
            let name = current
                .initialized
                .get(topic)
                .or_else(|| current.initializing.get(topic))
                .map(|(n, _)| n.clone())
                .or_else(|| current.deleting.get(topic).cloned())
                .unwrap_or_default();
            next.deleting.insert(*topic, name);
        }
        self.set_state(group_id, next, records);
        Ok(Some(StateToDelete::Partitions(delete)))
    }

    /// DeleteShareGroupOffsets' first step, as Kafka's `sharePartitionsEligibleForOffsetDeletion`:
    /// an initialized topic moves to deleting and its initialized partitions are named; a
    /// topic already deleting is named with every partition it has; any other topic has no
    /// state to delete (`None`). A group without a record names every partition.
    fn prepare_delete_offsets(
        &mut self,
        group_id: &str,
        topic_ids: &[TopicId],
        topics: &Topics,
        records: &mut Records,
    ) -> Result<OffsetsToDelete, ErrorCode> {
        if self
            .groups
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
        {
            return Err(ErrorCode::NonEmptyGroup);
        }
        let all = |topic: &TopicId| -> BTreeSet<i32> {
            topic_by_id(topics, *topic)
                .map(|t| (0..t.partitions).collect())
                .unwrap_or_default()
        };
        let Some(entry) = self.state.get(group_id) else {
            return Ok(topic_ids.iter().map(|t| (*t, Some(all(t)))).collect());
        };
        let mut next = entry.partitions.clone();
        let mut out = Vec::with_capacity(topic_ids.len());
        for topic in topic_ids {
            if let Some((name, partitions)) = next.initialized.remove(topic) {
                next.deleting.insert(*topic, name);
                out.push((*topic, Some(partitions)));
            } else if next.deleting.contains_key(topic) {
                out.push((*topic, Some(all(topic))));
            } else {
                out.push((*topic, None));
            }
        }
        self.set_state(group_id, next, records);
        Ok(out)
    }

    /// Removes members whose session expired; returns the records of their removal.
    pub fn tick(&mut self, now_ms: i64) -> Vec<GroupRecord> {
        self.tick_expired(now_ms).0
    }

    /// As [`ShareGroups::tick`], also naming the (group, member) pairs removed, whose
    /// acquired records the share partitions release.
    pub fn tick_expired(&mut self, now_ms: i64) -> (Vec<GroupRecord>, Vec<(String, String)>) {
        let mut removed = Vec::new();
        let mut records = Records::new();
        let topics = Arc::clone(&self.topics);
        for (group_id, group) in &mut self.groups {
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| m.deadline_ms <= now_ms)
                .map(|(id, _)| id.clone())
                .collect();
            for member_id in expired {
                tracing::info!(group = %group_id, member = %member_id, "share group member session expired");
                remove_member(group_id, group, &member_id, &topics, &mut records);
                removed.push((group_id.clone(), member_id));
            }
        }
        (encode(records), removed)
    }

    /// Applies one record read back from the log (in log order) at load.
    pub fn replay(&mut self, record: ShareGroupRecord, now_ms: i64) {
        let deadline_ms = now_ms.saturating_add(i64::from(self.config.session_timeout_ms));
        match record {
            ShareGroupRecord::GroupEpoch { group, epoch } => match epoch {
                Some((epoch, hash)) => {
                    let g = self.groups.entry(group).or_default();
                    g.epoch = epoch;
                    g.metadata_hash = hash;
                }
                None => {
                    self.groups.remove(&group);
                }
            },
            ShareGroupRecord::MemberMetadata {
                group,
                member,
                metadata,
            } => {
                let g = self.groups.entry(group).or_default();
                match metadata {
                    Some(metadata) => {
                        let m = g.members.entry(member).or_default();
                        m.metadata = metadata;
                        m.deadline_ms = deadline_ms;
                    }
                    None => {
                        g.members.remove(&member);
                    }
                }
            }
            ShareGroupRecord::TargetEpoch { group, epoch } => {
                let g = self.groups.entry(group).or_default();
                g.assignment_epoch = epoch.unwrap_or(0);
            }
            ShareGroupRecord::TargetMember {
                group,
                member,
                assignment,
            } => {
                let g = self.groups.entry(group).or_default();
                match assignment {
                    Some(a) => {
                        g.target.insert(member, a);
                    }
                    None => {
                        g.target.remove(&member);
                    }
                }
            }
            ShareGroupRecord::CurrentMember {
                group,
                member,
                current,
            } => {
                let g = self.groups.entry(group).or_default();
                if let Some(current) = current {
                    let m = g.members.entry(member).or_default();
                    m.current = current;
                    m.deadline_ms = deadline_ms;
                }
            }
            ShareGroupRecord::StatePartitions { group, partitions } => match partitions {
                Some(partitions) => {
                    // Initializing topics are asked for again once the retry interval
                    // passes from now (the time they were asked is not recorded).
                    let initializing_since_ms = partitions
                        .initializing
                        .keys()
                        .map(|t| (*t, now_ms))
                        .collect();
                    self.state.insert(
                        group,
                        StateEntry {
                            partitions,
                            initializing_since_ms,
                        },
                    );
                }
                None => {
                    self.state.remove(&group);
                }
            },
        }
    }

    fn heartbeat(
        &mut self,
        hb: ShareHeartbeat,
        now_ms: i64,
        records: &mut Records,
    ) -> Result<ShareHeartbeatResponse, ShareError> {
        validate(&hb)?;
        self.topics = Arc::clone(&hb.topics);
        if hb.member_epoch == LEAVE_GROUP_MEMBER_EPOCH {
            return self.leave(&hb.group_id, &hb.member_id, records);
        }
        let joining = hb.member_epoch == 0;
        // Checks first: nothing changes on an error.
        match self.groups.get(&hb.group_id) {
            None if !joining => {
                return Err(ShareError::new(
                    ErrorCode::GroupIdNotFound,
                    format!("Share group {} not found.", hb.group_id),
                ))
            }
            None => {}
            Some(group) => match group.members.get(&hb.member_id) {
                None if !joining => {
                    return Err(ShareError::new(
                        ErrorCode::UnknownMemberId,
                        format!(
                            "Member {} is not a member of share group {}.",
                            hb.member_id, hb.group_id
                        ),
                    ))
                }
                None if group.members.len() >= self.config.max_size => {
                    return Err(ShareError::new(
                        ErrorCode::GroupMaxSizeReached,
                        format!(
                            "The share group {} has reached its maximum capacity of {} members.",
                            hb.group_id, self.config.max_size
                        ),
                    ))
                }
                None => {}
                Some(member) if !joining => check_epoch(member, hb.member_epoch)?,
                // A member rejoining with epoch 0 (after a fencing) starts over.
                Some(_) => {}
            },
        }
        // The group's `share.session.timeout.ms` / `share.heartbeat.interval.ms` configs,
        // when it has them, override the broker's.
        let mut config = self.config.clone();
        if let Some(ms) = hb.session_timeout_ms {
            config.session_timeout_ms = ms;
        }
        if let Some(ms) = hb.heartbeat_interval_ms {
            config.heartbeat_interval_ms = ms;
        }
        let group_id = hb.group_id.clone();
        let group = self.groups.entry(group_id.clone()).or_default();
        let is_new = !group.members.contains_key(&hb.member_id);
        let member = group.members.entry(hb.member_id.clone()).or_default();
        let mut metadata = MemberMetadata {
            rack_id: hb.rack_id.clone(),
            client_id: hb.client_id.clone(),
            client_host: hb.client_host.clone(),
            subscribed_topic_names: member.metadata.subscribed_topic_names.clone(),
        };
        if let Some(names) = &hb.subscribed_topic_names {
            metadata.subscribed_topic_names = names.iter().cloned().collect();
        }
        let mut bump =
            is_new || metadata.subscribed_topic_names != member.metadata.subscribed_topic_names;
        if is_new || metadata != member.metadata {
            member.metadata = metadata.clone();
            records.push(ShareGroupRecord::MemberMetadata {
                group: group_id.clone(),
                member: hb.member_id.clone(),
                metadata: Some(metadata),
            });
        }
        member.deadline_ms = now_ms.saturating_add(i64::from(config.session_timeout_ms));
        prune_deleted_topics(&mut self.state, &group_id, &hb.topics, records);
        let initialized = self
            .state
            .get(&group_id)
            .map(|e| strip_names(&e.partitions.initialized))
            .unwrap_or_default();
        let hash = metadata_hash(&group.subscribed_topics(), &hb.topics);
        bump |= hash != group.metadata_hash;
        bump |= assignment_pending(group, &initialized, &hb.topics);
        if bump {
            group.epoch = group.epoch.saturating_add(1);
            group.metadata_hash = hash;
            records.push(ShareGroupRecord::GroupEpoch {
                group: group_id.clone(),
                epoch: Some((group.epoch, hash)),
            });
        }
        if group.epoch > group.assignment_epoch {
            compute_target(&group_id, group, &hb.topics, &initialized, records);
        }
        let initialize = initialize_job(
            &mut self.state,
            &group_id,
            group,
            &hb.topics,
            now_ms,
            self.config.initialize_retry_interval_ms,
            records,
        );
        let Some(group) = self.groups.get_mut(&group_id) else {
            return Err(ShareError::new(
                ErrorCode::UnknownServerError,
                "group vanished",
            ));
        };
        let target = group.target.get(&hb.member_id).cloned().unwrap_or_default();
        let assignment_epoch = group.assignment_epoch;
        let Some(member) = group.members.get_mut(&hb.member_id) else {
            // Inserted above; unreachable.
            return Err(ShareError::new(
                ErrorCode::UnknownServerError,
                "member vanished",
            ));
        };
        let changed = member.current.assigned != target;
        if changed || member.current.member_epoch != assignment_epoch {
            member.current = CurrentAssignment {
                member_epoch: assignment_epoch,
                previous_member_epoch: member.current.member_epoch,
                assigned: target,
            };
            records.push(ShareGroupRecord::CurrentMember {
                group: group_id,
                member: hb.member_id.clone(),
                current: Some(member.current.clone()),
            });
        }
        Ok(ShareHeartbeatResponse {
            error: None,
            member_id: Some(hb.member_id),
            member_epoch: member.current.member_epoch,
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            assignment: (joining || changed).then(|| member.current.assigned.clone()),
            initialize,
        })
    }

    fn leave(
        &mut self,
        group_id: &str,
        member_id: &str,
        records: &mut Records,
    ) -> Result<ShareHeartbeatResponse, ShareError> {
        let Some(group) = self.groups.get_mut(group_id) else {
            return Err(ShareError::new(
                ErrorCode::GroupIdNotFound,
                format!("Share group {group_id} not found."),
            ));
        };
        if !group.members.contains_key(member_id) {
            return Err(ShareError::new(
                ErrorCode::UnknownMemberId,
                format!("Member {member_id} is not a member of share group {group_id}."),
            ));
        }
        tracing::debug!(
            group = group_id,
            member = member_id,
            "share group member left"
        );
        remove_member(group_id, group, member_id, &self.topics, records);
        Ok(ShareHeartbeatResponse {
            error: None,
            member_id: Some(member_id.to_owned()),
            member_epoch: LEAVE_GROUP_MEMBER_EPOCH,
            heartbeat_interval_ms: 0,
            assignment: None,
            initialize: None,
        })
    }

    fn describe(&self, group_ids: &[String], topics: &Topics) -> Vec<DescribedShareGroup> {
        group_ids
            .iter()
            .map(|id| match self.groups.get(id) {
                // Made by AlterShareGroupOffsets before any member joined: an empty share
                // group, as Kafka 4.2 describes it.
                None if self.state.contains_key(id) => DescribedShareGroup {
                    group_id: id.clone(),
                    error: None,
                    state: Group::default().state().to_owned(),
                    group_epoch: 0,
                    assignment_epoch: 0,
                    assignor_name: ASSIGNOR_NAME.to_owned(),
                    members: Vec::new(),
                },
                None => DescribedShareGroup::error(
                    id,
                    ErrorCode::GroupIdNotFound,
                    &format!("Group {id} not found."),
                ),
                Some(group) => DescribedShareGroup {
                    group_id: id.clone(),
                    error: None,
                    state: group.state().to_owned(),
                    group_epoch: group.epoch,
                    assignment_epoch: group.assignment_epoch,
                    assignor_name: ASSIGNOR_NAME.to_owned(),
                    members: group
                        .members
                        .iter()
                        .map(|(member_id, m)| DescribedShareMember {
                            member_id: member_id.clone(),
                            rack_id: m.metadata.rack_id.clone(),
                            member_epoch: m.current.member_epoch,
                            client_id: m.metadata.client_id.clone(),
                            client_host: m.metadata.client_host.clone(),
                            subscribed_topic_names: m.metadata.subscribed_topic_names.clone(),
                            // Topics deleted since are left out, as Kafka does.
                            assignment: m
                                .current
                                .assigned
                                .iter()
                                .filter(|(t, _)| topics.name(**t).is_some())
                                .map(|(t, p)| (*t, p.clone()))
                                .collect(),
                        })
                        .collect(),
                },
            })
            .collect()
    }

    /// Every share group, those made by AlterShareGroupOffsets before any member joined
    /// (known only by their state record) as Empty.
    fn list(&self) -> Vec<ListedShareGroup> {
        let empty = Group::default();
        let only_state = self
            .state
            .keys()
            .filter(|id| !self.groups.contains_key(*id))
            .map(|id| (id, &empty));
        let mut out: Vec<ListedShareGroup> = self
            .groups
            .iter()
            .chain(only_state)
            .map(|(id, g)| ListedShareGroup {
                group_id: id.clone(),
                state: g.state().to_owned(),
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    fn delete(&mut self, group_id: &str, records: &mut Records) -> Result<bool, ErrorCode> {
        if self
            .groups
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
        {
            return Err(ErrorCode::NonEmptyGroup);
        }
        if self.state.remove(group_id).is_some() {
            records.push(ShareGroupRecord::StatePartitions {
                group: group_id.to_owned(),
                partitions: None,
            });
        }
        let Some(group) = self.groups.get(group_id) else {
            // A group id with only state (AlterShareGroupOffsets before any member).
            return Ok(!records.is_empty());
        };
        for member in group.target.keys() {
            records.push(ShareGroupRecord::TargetMember {
                group: group_id.to_owned(),
                member: member.clone(),
                assignment: None,
            });
        }
        records.push(ShareGroupRecord::TargetEpoch {
            group: group_id.to_owned(),
            epoch: None,
        });
        records.push(ShareGroupRecord::GroupEpoch {
            group: group_id.to_owned(),
            epoch: None,
        });
        self.groups.remove(group_id);
        Ok(true)
    }
}

fn validate(hb: &ShareHeartbeat) -> Result<(), ShareError> {
    let invalid = |message: &str| Err(ShareError::new(ErrorCode::InvalidRequest, message));
    if hb.group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if hb.member_id.is_empty() {
        return invalid("MemberId can't be empty.");
    }
    if hb.group_id.len() > ID_BYTES_MAX || hb.member_id.len() > ID_BYTES_MAX {
        return invalid("GroupId and MemberId must be at most 32767 bytes.");
    }
    if hb.member_epoch < LEAVE_GROUP_MEMBER_EPOCH {
        return invalid(&format!("MemberEpoch {} is invalid.", hb.member_epoch));
    }
    if hb.member_epoch == 0
        && hb
            .subscribed_topic_names
            .as_ref()
            .is_none_or(|names| names.is_empty())
    {
        return invalid("SubscribedTopicNames must be set in first request.");
    }
    Ok(())
}

/// Kafka's rule: a member may come back with its current epoch, or with the previous one
/// (the response that moved it on was lost); anything else is fenced.
fn check_epoch(member: &Member, received: i32) -> Result<(), ShareError> {
    let current = member.current.member_epoch;
    if received == current || received == member.current.previous_member_epoch && received < current
    {
        return Ok(());
    }
    Err(ShareError::new(
        ErrorCode::FencedMemberEpoch,
        format!("The share group member has a member epoch ({received}) different from the coordinator's ({current})."),
    ))
}

/// Removes a member with its records and bumps the group epoch (with the hash of what the
/// remaining members subscribe to), so that the others get a new target at their next
/// heartbeat.
fn remove_member(
    group_id: &str,
    group: &mut Group,
    member_id: &str,
    topics: &Topics,
    records: &mut Records,
) {
    group.members.remove(member_id);
    let target = group.target.remove(member_id);
    records.push(ShareGroupRecord::CurrentMember {
        group: group_id.to_owned(),
        member: member_id.to_owned(),
        current: None,
    });
    if target.is_some() {
        records.push(ShareGroupRecord::TargetMember {
            group: group_id.to_owned(),
            member: member_id.to_owned(),
            assignment: None,
        });
    }
    records.push(ShareGroupRecord::MemberMetadata {
        group: group_id.to_owned(),
        member: member_id.to_owned(),
        metadata: None,
    });
    group.epoch = group.epoch.saturating_add(1);
    group.metadata_hash = metadata_hash(&group.subscribed_topics(), topics);
    records.push(ShareGroupRecord::GroupEpoch {
        group: group_id.to_owned(),
        epoch: Some((group.epoch, group.metadata_hash)),
    });
}

/// A new target assignment at the group epoch, recording the members whose target changed.
/// Only partitions whose share state is initialized are assigned (as Kafka's
/// `withTopicAssignablePartitionsMap`).
fn compute_target(
    group_id: &str,
    group: &mut Group,
    topics: &Topics,
    initialized: &Assignment,
    records: &mut Records,
) {
    let mut partitions: BTreeMap<TopicId, BTreeSet<i32>> = BTreeMap::new();
    let subscriptions: BTreeMap<String, BTreeSet<TopicId>> = group
        .members
        .iter()
        .map(|(id, m)| {
            let ids = m
                .metadata
                .subscribed_topic_names
                .iter()
                .filter_map(|name| topics.by_name(name))
                .map(|t| {
                    let assignable = initialized
                        .get(&t.id)
                        .map(|ps| ps.range(0..t.partitions).copied().collect())
                        .unwrap_or_default();
                    partitions.insert(t.id, assignable);
                    t.id
                })
                .collect();
            (id.clone(), ids)
        })
        .collect();
    let target = simple_assign(&subscriptions, &partitions);
    for (member, assignment) in &target {
        if group.target.get(member) != Some(assignment) {
            records.push(ShareGroupRecord::TargetMember {
                group: group_id.to_owned(),
                member: member.clone(),
                assignment: Some(assignment.clone()),
            });
        }
    }
    group.target = target;
    group.assignment_epoch = group.epoch;
    records.push(ShareGroupRecord::TargetEpoch {
        group: group_id.to_owned(),
        epoch: Some(group.epoch),
    });
}

/// A hash of the subscribed topics as the cluster has them now (name, id, partition
/// count; a missing topic counts too, so its creation changes the hash): FNV-1a, stable
/// across runs and platforms, since it is recorded.
fn metadata_hash(subscribed: &BTreeSet<&str>, topics: &Topics) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for name in subscribed {
        feed(name.as_bytes());
        feed(&[0]);
        if let Some(t) = topics.by_name(name) {
            feed(&t.id.0);
            feed(&t.partitions.to_be_bytes());
        }
    }
    i64::from_be_bytes(hash.to_be_bytes())
}

/// Whether a subscribed topic's initialized partitions differ from what the target
/// assigns of it (Kafka's `initializedAssignmentPending`): newly initialized partitions
/// then get a new target through a group epoch bump.
fn assignment_pending(group: &Group, initialized: &Assignment, topics: &Topics) -> bool {
    if group.members.is_empty() || initialized.is_empty() {
        return false;
    }
    let mut assigned: Assignment = Assignment::new();
    for target in group.target.values() {
        for (topic, ps) in target {
            assigned.entry(*topic).or_default().extend(ps);
        }
    }
    group.subscribed_topics().into_iter().any(|name| {
        topics.by_name(name).is_some_and(|t| {
            initialized.get(&t.id).is_some_and(|ps| {
                let live: BTreeSet<i32> = ps.range(0..t.partitions).copied().collect();
                !live.is_empty() && assigned.get(&t.id) != Some(&live)
            })
        })
    })
}

/// The share partitions `group` subscribes to that are neither initialized nor initializing
/// (or were initializing for `retry_ms` or longer: their outcome was lost, e.g. in a
/// failover), recorded as initializing now (and no longer deleting), as Kafka's
/// `maybeCreateInitializeShareGroupStateRequest`.
fn initialize_job(
    state: &mut BTreeMap<String, StateEntry>,
    group_id: &str,
    group: &Group,
    topics: &Topics,
    now_ms: i64,
    retry_ms: i64,
    records: &mut Records,
) -> Option<InitializeJob> {
    let current = state.get(group_id);
    let mut wanted = Assignment::new();
    for name in group.subscribed_topics() {
        let Some(t) = topics.by_name(name) else {
            continue;
        };
        let mut have: BTreeSet<i32> = BTreeSet::new();
        if let Some(entry) = current {
            if let Some((_, ps)) = entry.partitions.initialized.get(&t.id) {
                have.extend(ps);
            }
            let fresh = entry
                .initializing_since_ms
                .get(&t.id)
                .is_some_and(|since| now_ms.saturating_sub(*since) < retry_ms);
            if fresh {
                if let Some((_, ps)) = entry.partitions.initializing.get(&t.id) {
                    have.extend(ps);
                }
            }
        }
        let missing: BTreeSet<i32> = (0..t.partitions).filter(|p| !have.contains(p)).collect();
        if !missing.is_empty() {
            wanted.insert(t.id, missing);
        }
    }
    if wanted.is_empty() {
        return None;
    }
    let mut next = current.map(|e| e.partitions.clone()).unwrap_or_default();
    for (topic, ps) in &wanted {
        let name = topic_name(topics, *topic);
        next.initializing
            .entry(*topic)
            .or_insert_with(|| (name, BTreeSet::new()))
            .1
            .extend(ps);
        if next.deleting.remove(topic).is_some() {
            tracing::warn!(
                group = group_id,
                "a topic being deleted is initialized again; no longer deleting"
            );
        }
    }
    let started: Vec<TopicId> = wanted.keys().copied().collect();
    set_state(state, group_id, next, Some((&started, now_ms)), records);
    Some(InitializeJob {
        group_id: group_id.to_owned(),
        state_epoch: group.epoch,
        partitions: wanted,
    })
}

/// Drops topics that no longer exist from `group_id`'s record (Kafka's
/// `maybeCleanupShareGroupState`, done here at the group's heartbeat).
fn prune_deleted_topics(
    state: &mut BTreeMap<String, StateEntry>,
    group_id: &str,
    topics: &Topics,
    records: &mut Records,
) {
    let Some(entry) = state.get(group_id) else {
        return;
    };
    let exists = |t: &TopicId| topics.name(*t).is_some();
    let mut next = entry.partitions.clone();
    next.initializing.retain(|t, _| exists(t));
    next.initialized.retain(|t, _| exists(t));
    next.deleting.retain(|t, _| exists(t));
    set_state(state, group_id, next, None, records);
}

/// Records `next` as `group_id`'s state partition metadata when it differs from what is
/// recorded; `started` topics are (re)stamped as initializing from the given time.
fn set_state(
    state: &mut BTreeMap<String, StateEntry>,
    group_id: &str,
    next: StatePartitions,
    started: Option<(&[TopicId], i64)>,
    records: &mut Records,
) {
    if !state.contains_key(group_id) && next == StatePartitions::default() {
        return;
    }
    let entry = state.entry(group_id.to_owned()).or_default();
    let changed = entry.partitions != next;
    if let Some((topics, now_ms)) = started {
        for t in topics {
            entry.initializing_since_ms.insert(*t, now_ms);
        }
    }
    entry
        .initializing_since_ms
        .retain(|t, _| next.initializing.contains_key(t));
    if changed {
        entry.partitions = next.clone();
        records.push(ShareGroupRecord::StatePartitions {
            group: group_id.to_owned(),
            partitions: Some(next),
        });
    }
}

fn remove_partitions(
    from: &mut BTreeMap<TopicId, (String, BTreeSet<i32>)>,
    partitions: &Assignment,
) {
    for (topic, ps) in partitions {
        if let Some((_, have)) = from.get_mut(topic) {
            have.retain(|p| !ps.contains(p));
            if have.is_empty() {
                from.remove(topic);
            }
        }
    }
}

fn strip_names(topics: &BTreeMap<TopicId, (String, BTreeSet<i32>)>) -> Assignment {
    topics.iter().map(|(t, (_, ps))| (*t, ps.clone())).collect()
}

fn topic_by_id(topics: &Topics, id: TopicId) -> Option<&strom_group::consumer::TopicInfo> {
    topics.name(id).and_then(|name| topics.by_name(name))
}

/// The topic's name now, or Kafka's placeholder for one that is gone.
fn topic_name(topics: &Topics, topic: TopicId) -> String {
    topics
        .name(topic)
        .map_or_else(|| "<UNKNOWN>".to_owned(), str::to_owned)
}

fn encode(records: Records) -> Vec<GroupRecord> {
    records
        .into_iter()
        .filter_map(|r| match r.encode() {
            Ok(r) => Some(r),
            // Ids are length-checked before they reach state, so this is a bug.
            Err(e) => {
                tracing::error!(error = %e, "share group record not encodable; dropped");
                None
            }
        })
        .collect()
}

#[cfg(test)]
impl ShareGroups {
    /// The recorded state partition metadata of every group (replay checks).
    pub(super) fn state_for_test(&self) -> BTreeMap<String, StatePartitions> {
        self.state
            .iter()
            .map(|(g, e)| (g.clone(), e.partitions.clone()))
            .collect()
    }

    pub(super) fn describe_for_test(
        &self,
        group_ids: &[String],
        topics: &Topics,
    ) -> Vec<DescribedShareGroup> {
        self.describe(group_ids, topics)
    }
}
