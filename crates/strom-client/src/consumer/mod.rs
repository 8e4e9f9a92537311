//! The consumer: assigned or subscribed (classic group protocol, range assignor)
//! partitions, pipelined fetches (one per leader in flight while records are handed out),
//! positions with `auto.offset.reset`, auto and manual commits, seek, pause and resume.
//!
//! Isolation is read_uncommitted unless `isolation.level=read_committed`; control batches
//! are always skipped.

pub mod assignor;
mod fetch;
mod group;
pub mod protocol;
pub(crate) mod records;
pub mod streams_group;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::admin::offsets::{commit, fetch_committed, list_offsets};
use crate::cluster::Cluster;
use crate::config::{ConsumerConfig, OffsetReset};
use crate::error::{ClientError, Result};
use crate::types::{ConsumerGroupMetadata, OffsetAndMetadata, OffsetSpec, TopicPartition};
use fetch::{FetchOutcome, FetchPlan};
use group::{rejoinable, Membership};
pub use records::ConsumerRecord;

/// How long `poll` sleeps when nothing can be fetched (no assignment, all paused).
const IDLE_SLEEP_MS: u64 = 50;

/// One assigned partition.
#[derive(Debug, Default)]
struct PartitionState {
    /// Next offset to hand out; `None` until reset from a commit or `auto.offset.reset`.
    position: Option<i64>,
    paused: bool,
    /// Fetched, not yet handed out.
    buffered: VecDeque<ConsumerRecord>,
    /// Where the position goes once `buffered` is drained (past skipped control batches).
    buffered_next: i64,
    fetching: bool,
    /// After a partition-level fetch error, no new fetch before this time.
    retry_at: Option<Instant>,
}

impl PartitionState {
    /// Moves the position and forgets everything fetched for the old one.
    fn seek(&mut self, offset: i64) {
        self.position = Some(offset);
        self.buffered.clear();
        self.buffered_next = offset;
    }
}

/// The consumer. Not `Clone`: one owner polls.
pub struct Consumer {
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    partitions: BTreeMap<TopicPartition, PartitionState>,
    subscription: Option<Vec<String>>,
    membership: Option<Membership>,
    fetches: JoinSet<FetchOutcome>,
    /// Brokers with a fetch in flight.
    fetching_from: BTreeSet<i32>,
    last_auto_commit: Instant,
    /// Partition counts of the subscribed topics when the group was last joined; a change
    /// (new partitions, a topic created) triggers a rejoin, as Kafka's consumer does.
    subscribed_counts: BTreeMap<String, usize>,
    last_metadata_check: Instant,
    /// When set, `poll` never rejoins the group itself: it returns at once while a
    /// rebalance is due, and the owner calls [`Consumer::rejoin`] after it has committed
    /// (Kafka's `onPartitionsRevoked` moment, without a callback).
    manual_rejoin: bool,
    /// The member id and epoch commits carry while partitions are assigned rather than
    /// subscribed: set by a runtime that is a member of a KIP-1071 streams group through
    /// its own heartbeats ([`Consumer::set_group_member`]).
    assigned_member: Option<(String, i32)>,
}

impl Consumer {
    /// A consumer; connects on first use. Must be created inside a tokio runtime.
    pub fn new(config: ConsumerConfig) -> Result<Consumer> {
        let cluster = Cluster::new(config.client.clone())?;
        let membership = config.group_id.clone().map(Membership::new);
        Ok(Consumer {
            cluster,
            config,
            partitions: BTreeMap::new(),
            subscription: None,
            membership,
            fetches: JoinSet::new(),
            fetching_from: BTreeSet::new(),
            last_auto_commit: Instant::now(),
            subscribed_counts: BTreeMap::new(),
            last_metadata_check: Instant::now(),
            manual_rejoin: false,
            assigned_member: None,
        })
    }

    /// Uses `assignor` instead of the range assignor from the next join on (this member
    /// sends its name and user data; when elected leader, it assigns the whole group).
    pub fn set_assignor(&mut self, assignor: Arc<dyn assignor::GroupAssignor>) -> Result<()> {
        let membership = self.membership_mut()?;
        membership.set_assignor(assignor);
        Ok(())
    }

    /// Switches manual rejoin on or off (see [`Consumer::rejoin`]).
    pub fn set_manual_rejoin(&mut self, manual: bool) {
        self.manual_rejoin = manual;
    }

    /// Whether the group needs this member to (re)join: never joined, the coordinator
    /// started a rebalance, or the subscribed topics changed.
    pub fn rebalance_due(&self) -> bool {
        self.subscription.is_some()
            && self
                .membership
                .as_ref()
                .is_some_and(Membership::needs_rejoin)
    }

    /// Joins (or rejoins) the group now and returns the new assignment. With manual
    /// rejoin, the owner calls this when [`Consumer::rebalance_due`] says so, after
    /// committing what it processed (commits are accepted while the group prepares the
    /// rebalance). Positions of the new assignment come from the committed offsets.
    pub async fn rejoin(&mut self) -> Result<Vec<TopicPartition>> {
        let topics = self
            .subscription
            .clone()
            .ok_or_else(|| ClientError::InvalidArgument("rejoin needs a subscription".into()))?;
        let membership = self
            .membership
            .as_mut()
            .ok_or_else(|| ClientError::Config {
                key: "group.id".into(),
                reason: "needs a group.id".into(),
            })?;
        let assigned = membership
            .join(&self.cluster, &self.config, &topics)
            .await?;
        self.subscribed_counts = self.partition_counts(&topics).await;
        self.last_metadata_check = Instant::now();
        self.partitions.clear();
        self.set_assignment(assigned);
        Ok(self.assignment())
    }

    /// The user data the group leader's assignor attached to this member's assignment.
    pub fn assignment_user_data(&self) -> Option<bytes::Bytes> {
        self.membership
            .as_ref()
            .and_then(|m| m.assignment_user_data().cloned())
    }

    /// This member's generation and member id (generation -1 before the first join).
    pub fn group_generation(&self) -> Option<(i32, String)> {
        self.membership
            .as_ref()
            .map(|m| (m.generation(), m.member_id().to_string()))
    }

    /// The group identity `Producer::send_offsets_to_transaction` needs (Java's
    /// `groupMetadata()`); `None` without a `group.id`. Generation -1 and no member id
    /// when partitions are assigned rather than subscribed.
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        let m = self.membership.as_ref()?;
        let (generation_id, member_id) = self.commit_identity(m);
        Some(ConsumerGroupMetadata {
            group_id: m.group_id().to_string(),
            generation_id,
            member_id,
            group_instance_id: None,
        })
    }

    /// The generation (or member epoch) and member id commits carry: the classic
    /// membership's when subscribed, the one set by [`Consumer::set_group_member`] when
    /// assigned, else none (-1 and empty: an "admin" commit, refused while the group has
    /// members).
    fn commit_identity(&self, m: &Membership) -> (i32, String) {
        if self.subscription.is_some() {
            return (m.generation(), m.member_id().to_string());
        }
        match &self.assigned_member {
            Some((member, epoch)) => (*epoch, member.clone()),
            None => (-1, String::new()),
        }
    }

    /// Sets (or clears) the member id and member epoch that commits of assigned
    /// partitions carry, and that [`Consumer::group_metadata`] returns: a Kafka Streams
    /// runtime that is a member of a streams group (KIP-1071) heartbeats itself and
    /// assigns the partitions of its tasks, but its commits must name its membership.
    pub fn set_group_member(&mut self, member: Option<(String, i32)>) {
        self.assigned_member = member;
    }

    fn membership_mut(&mut self) -> Result<&mut Membership> {
        self.membership.as_mut().ok_or_else(|| ClientError::Config {
            key: "group.id".into(),
            reason: "needs a group.id".into(),
        })
    }

    /// Consumes exactly these partitions (no group membership; commits still go to
    /// `group.id` if set).
    pub async fn assign(&mut self, partitions: Vec<TopicPartition>) -> Result<()> {
        self.subscription = None;
        self.set_assignment(partitions);
        Ok(())
    }

    /// Subscribes to topics through the group (`group.id` required); the assignment
    /// arrives on the next `poll`.
    pub async fn subscribe(&mut self, topics: Vec<String>) -> Result<()> {
        let membership = self
            .membership
            .as_ref()
            .ok_or_else(|| ClientError::Config {
                key: "group.id".into(),
                reason: "subscribe needs a group.id".into(),
            })?;
        membership.request_rejoin();
        self.subscription = Some(topics);
        Ok(())
    }

    /// Partitions currently assigned.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.partitions.keys().cloned().collect()
    }

    /// The next offset `poll` hands out for `tp`, once known.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.partitions.get(tp).and_then(|p| p.position)
    }

    /// Waits up to `timeout` for records; an empty `Vec` when none arrived.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.manual_rejoin && self.rebalance_due() {
                return Ok(Vec::new());
            }
            self.maintain_group().await?;
            self.maybe_auto_commit().await;
            self.reset_positions().await?;
            let records = self.take_buffered();
            self.start_fetches().await;
            if !records.is_empty() {
                return Ok(records);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wait = deadline - now;
            if self.fetches.is_empty() {
                tokio::time::sleep(wait.min(Duration::from_millis(IDLE_SLEEP_MS))).await;
                continue;
            }
            if let Ok(Some(joined)) = tokio::time::timeout(wait, self.fetches.join_next()).await {
                match joined {
                    Ok(outcome) => self.apply_fetch(outcome).await?,
                    Err(e) => tracing::warn!(error = %e, "fetch task failed"),
                }
            }
        }
    }

    /// Commits the current positions of all assigned partitions.
    pub async fn commit(&mut self) -> Result<()> {
        let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = self
            .partitions
            .iter()
            .filter_map(|(tp, p)| p.position.map(|o| (tp.clone(), OffsetAndMetadata::new(o))))
            .collect();
        self.commit_offsets(&offsets).await
    }

    /// Commits the given offsets (the next offset to read, as Kafka expects).
    pub async fn commit_offsets(
        &mut self,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let membership = self
            .membership
            .as_ref()
            .ok_or_else(|| ClientError::Config {
                key: "group.id".into(),
                reason: "commits need a group.id".into(),
            })?;
        let (generation, member) = self.commit_identity(membership);
        let result = commit(
            &self.cluster,
            membership.group_id(),
            generation,
            &member,
            offsets,
        )
        .await;
        if let Err(e) = &result {
            if rejoinable(e) {
                membership.request_rejoin();
            }
        }
        result
    }

    /// The group's committed offsets for `partitions`.
    pub async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>> {
        let group = self.group_id()?;
        fetch_committed(
            &self.cluster,
            &group,
            Some(partitions),
            self.config.isolation_read_committed,
        )
        .await
    }

    /// Moves `tp`'s position; the next `poll` reads from `offset`.
    pub async fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        let p = self
            .partitions
            .get_mut(tp)
            .ok_or_else(|| ClientError::InvalidArgument(format!("{tp} is not assigned")))?;
        p.seek(offset);
        Ok(())
    }

    /// Seeks to the log start offsets.
    pub async fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_to_spec(partitions, OffsetSpec::Earliest).await
    }

    /// Seeks to the log end offsets.
    pub async fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_to_spec(partitions, OffsetSpec::Latest).await
    }

    /// Seeks to the first offset with a timestamp at or after `timestamp_ms` (the end of
    /// the log when there is none).
    pub async fn seek_to_timestamp(
        &mut self,
        partitions: &[TopicPartition],
        timestamp_ms: i64,
    ) -> Result<()> {
        self.seek_to_spec(partitions, OffsetSpec::Timestamp(timestamp_ms))
            .await
    }

    /// Stops handing out and fetching records of these partitions.
    pub fn pause(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            if let Some(p) = self.partitions.get_mut(tp) {
                p.paused = true;
            }
        }
    }

    /// Undoes `pause`.
    pub fn resume(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            if let Some(p) = self.partitions.get_mut(tp) {
                p.paused = false;
            }
        }
    }

    /// Commits (with auto commit on), leaves the group and closes connections.
    pub async fn close(mut self) -> Result<()> {
        let committed = if self.config.enable_auto_commit && self.membership.is_some() {
            self.commit().await
        } else {
            Ok(())
        };
        self.fetches.abort_all();
        if let Some(mut m) = self.membership.take() {
            if self.subscription.is_some() {
                m.leave(&self.cluster).await;
            }
        }
        self.cluster.close().await;
        committed
    }

    fn group_id(&self) -> Result<String> {
        self.membership
            .as_ref()
            .map(|m| m.group_id().to_string())
            .ok_or_else(|| ClientError::Config {
                key: "group.id".into(),
                reason: "needs a group.id".into(),
            })
    }

    fn set_assignment(&mut self, partitions: Vec<TopicPartition>) {
        let mut next = BTreeMap::new();
        for tp in partitions {
            let state = self.partitions.remove(&tp).unwrap_or_default();
            next.insert(tp, state);
        }
        self.partitions = next;
    }

    /// Joins or rejoins when the subscription or the group asks for it.
    async fn maintain_group(&mut self) -> Result<()> {
        let Some(topics) = self.subscription.clone() else {
            return Ok(());
        };
        self.check_subscribed_metadata(&topics).await;
        let needs = self
            .membership
            .as_ref()
            .is_some_and(Membership::needs_rejoin);
        // With manual rejoin only `rejoin` joins. The heartbeat task may raise the flag on
        // another thread after `poll` looked at it, so it is checked here again rather than
        // trusted from there: joining here would clear it before the owner ever saw it.
        if !needs || self.manual_rejoin {
            return Ok(());
        }
        if self.config.enable_auto_commit && !self.partitions.is_empty() {
            // Eager rebalancing revokes everything: commit what was consumed first.
            if let Err(e) = self.commit().await {
                tracing::debug!(error = %e, "commit before rejoin failed");
            }
        }
        let Some(membership) = self.membership.as_mut() else {
            return Ok(());
        };
        let assigned = membership
            .join(&self.cluster, &self.config, &topics)
            .await?;
        self.subscribed_counts = self.partition_counts(&topics).await;
        self.last_metadata_check = Instant::now();
        // Positions of the new assignment come from the committed offsets.
        self.partitions.clear();
        self.set_assignment(assigned);
        Ok(())
    }

    /// Every `metadata.max.age.ms`, asks for a rejoin if a subscribed topic's partition
    /// count changed since the join.
    async fn check_subscribed_metadata(&mut self, topics: &[String]) {
        let max_age = Duration::from_millis(self.config.client.metadata_max_age_ms);
        if self.last_metadata_check.elapsed() < max_age {
            return;
        }
        self.last_metadata_check = Instant::now();
        self.cluster.invalidate_metadata();
        let counts = self.partition_counts(topics).await;
        if counts != self.subscribed_counts {
            tracing::debug!(?counts, before = ?self.subscribed_counts, "subscribed topics changed");
            if let Some(m) = &self.membership {
                m.request_rejoin();
            }
        }
    }

    async fn partition_counts(&self, topics: &[String]) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for t in topics {
            let n = self
                .cluster
                .topic(t, false)
                .await
                .map_or(0, |i| i.partitions.len());
            counts.insert(t.clone(), n);
        }
        counts
    }

    async fn maybe_auto_commit(&mut self) {
        if !self.config.enable_auto_commit || self.membership.is_none() {
            return;
        }
        if self.last_auto_commit.elapsed()
            < Duration::from_millis(self.config.auto_commit_interval_ms)
        {
            return;
        }
        self.last_auto_commit = Instant::now();
        if let Err(e) = self.commit().await {
            tracing::debug!(error = %e, "auto commit failed");
        }
    }

    /// Gives partitions without a position one: the committed offset, else
    /// `auto.offset.reset`.
    async fn reset_positions(&mut self) -> Result<()> {
        let missing: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(|(_, p)| p.position.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut committed = BTreeMap::new();
        if let Some(m) = &self.membership {
            committed = fetch_committed(
                &self.cluster,
                m.group_id(),
                Some(&missing),
                self.config.isolation_read_committed,
            )
            .await?;
        }
        let (from_commit, to_reset): (Vec<_>, Vec<_>) = missing
            .into_iter()
            .partition(|tp| committed.contains_key(tp));
        for tp in from_commit {
            if let (Some(p), Some(o)) = (self.partitions.get_mut(&tp), committed.get(&tp)) {
                p.seek(o.offset);
            }
        }
        self.reset_by_policy(&to_reset).await
    }

    async fn reset_by_policy(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        let spec = match self.config.auto_offset_reset {
            OffsetReset::Earliest => OffsetSpec::Earliest,
            OffsetReset::Latest => OffsetSpec::Latest,
            OffsetReset::None => {
                return Err(ClientError::InvalidArgument(format!(
                    "no committed offset for {} and auto.offset.reset=none",
                    partitions
                        .first()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                )))
            }
        };
        self.seek_to_spec(partitions, spec).await
    }

    async fn seek_to_spec(
        &mut self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<()> {
        let read_committed = self.config.isolation_read_committed;
        let listed = list_offsets(&self.cluster, partitions, spec, read_committed).await?;
        let mut end = BTreeMap::new();
        if listed.values().any(|l| l.offset < 0) {
            end = list_offsets(
                &self.cluster,
                partitions,
                OffsetSpec::Latest,
                read_committed,
            )
            .await?;
        }
        for (tp, l) in listed {
            let offset = if l.offset < 0 {
                end.get(&tp).map_or(0, |e| e.offset)
            } else {
                l.offset
            };
            if let Some(p) = self.partitions.get_mut(&tp) {
                p.seek(offset);
            }
        }
        Ok(())
    }

    /// Up to `max.poll.records` buffered records of unpaused partitions.
    fn take_buffered(&mut self) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        for p in self.partitions.values_mut().filter(|p| !p.paused) {
            while out.len() < self.config.max_poll_records {
                let Some(r) = p.buffered.pop_front() else {
                    break;
                };
                p.position = Some(r.offset + 1);
                out.push(r);
            }
            if p.buffered.is_empty() {
                p.position = p.position.map(|pos| pos.max(p.buffered_next));
            }
        }
        out
    }

    /// Starts one Fetch per leader for partitions with nothing buffered or in flight.
    async fn start_fetches(&mut self) {
        let mut by_leader: HashMap<i32, Vec<(TopicPartition, i64)>> = HashMap::new();
        let candidates: Vec<(TopicPartition, i64)> = self
            .partitions
            .iter()
            .filter(|(_, p)| !p.paused && !p.fetching && p.buffered.is_empty())
            .filter(|(_, p)| p.retry_at.is_none_or(|at| at <= Instant::now()))
            .filter_map(|(tp, p)| p.position.map(|o| (tp.clone(), o)))
            .collect();
        for (tp, offset) in candidates {
            match self.cluster.leader(&tp.topic, tp.partition).await {
                Ok(leader) if !self.fetching_from.contains(&leader) => {
                    by_leader.entry(leader).or_default().push((tp, offset));
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(%tp, error = %e, "no leader to fetch from"),
            }
        }
        for (leader, partitions) in by_leader {
            for (tp, _) in &partitions {
                if let Some(p) = self.partitions.get_mut(tp) {
                    p.fetching = true;
                }
            }
            self.fetching_from.insert(leader);
            let plan = FetchPlan {
                leader,
                partitions,
                config: self.config.clone(),
            };
            self.fetches.spawn(fetch::run(self.cluster.clone(), plan));
        }
    }

    async fn apply_fetch(&mut self, outcome: FetchOutcome) -> Result<()> {
        self.fetching_from.remove(&outcome.leader);
        let mut out_of_range = Vec::new();
        for (tp, fetch_offset, result) in outcome.partitions {
            let Some(p) = self.partitions.get_mut(&tp) else {
                continue;
            };
            p.fetching = false;
            tracing::trace!(%tp, fetch_offset, position = ?p.position, records = result.as_ref().map(|r| r.records.len()).ok(), next = result.as_ref().map(|r| r.next_offset).ok(), "fetched");
            // A seek or a reassignment since the fetch started makes its data stale.
            if p.position != Some(fetch_offset) || !p.buffered.is_empty() {
                continue;
            }
            match result {
                Ok(parsed) => {
                    p.retry_at = None;
                    p.buffered_next = parsed.next_offset;
                    p.buffered = parsed.records.into();
                    if p.buffered.is_empty() {
                        p.position = Some(fetch_offset.max(parsed.next_offset));
                    }
                }
                Err(e) if e.code() == Some(1) => out_of_range.push(tp),
                Err(e) if e.is_retriable() => {
                    if e.needs_metadata_refresh() {
                        self.cluster.invalidate_metadata();
                    }
                    p.retry_at = Some(
                        Instant::now() + Duration::from_millis(self.cluster.backoff().base_ms),
                    );
                    tracing::debug!(%tp, error = %e, "fetch error; will retry");
                }
                Err(e) => return Err(e),
            }
        }
        if !out_of_range.is_empty() {
            tracing::info!(?out_of_range, "offset out of range; resetting");
            self.reset_by_policy(&out_of_range).await?;
        }
        Ok(())
    }
}
