//! The share consumer (KIP-932, Kafka's `KafkaShareConsumer`): a member of a share group
//! that reads the partitions the group's coordinator assigns it, together with the other
//! members, each record acquired by one member for a time-limited lock and acknowledged one
//! by one: ACCEPT (processed), RELEASE (deliver again, to anyone), REJECT (archive, never
//! deliver again).
//!
//! - Membership: `membership.rs` (ShareGroupHeartbeat in a background task).
//! - Fetching: one share session per partition leader (`session.rs`); each poll sends one
//!   ShareFetch to every leader of an assigned partition at once, carrying the
//!   acknowledgements due for that leader's partitions, and hands out the acquired records
//!   (`acquired.rs`) up to `max.poll.records`, the rest on the next polls.
//! - Acknowledgement (`share.acknowledgement.mode`): implicit, the next poll, `commit_sync`
//!   or `close` accepts every record the previous poll returned; explicit, the application
//!   calls [`ShareConsumer::acknowledge`] for each record before the next poll (a poll with
//!   records still unacknowledged is refused, as Kafka's is). Acknowledgements of records
//!   whose partition is no longer assigned, and `commit_sync`'s, go in a ShareAcknowledge.
//!   Their outcomes (the broker refuses an acknowledgement whose lock expired) are kept for
//!   [`ShareConsumer::take_acknowledgement_errors`] and returned by `commit_sync`.
//! - `close` acknowledges what is due and closes every share session (epoch -1, which
//!   releases every record still acquired, fetched but not handed out included), then
//!   leaves the group.
//!
//! Errors as Kafka's client handles them: a session error opens a new session (the
//! acknowledgements it carried were not applied and are sent again); NOT_LEADER and the
//! other metadata errors refresh the metadata; a lost connection starts new sessions;
//! FENCED/UNKNOWN member rejoin (`membership.rs`).

mod acquired;
mod membership;
mod session;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckAckBatch,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic, ForgottenTopic,
};
use kafka_protocol::messages::{
    GroupId, ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest,
    ShareFetchResponse,
};
use strom_protocol::ErrorCode;
use strom_records::DecodeLimits;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::cluster::{str_bytes, Cluster, Target};
use crate::config::{ShareAcknowledgementMode, ShareConsumerConfig};
use crate::consumer::ConsumerRecord;
use crate::error::{ClientError, Result};
use crate::types::{random_kafka_uuid, TopicPartition};
use acquired::{acquired, AcquiredRange};
use membership::Membership;
use session::{merge, AckRange, PartitionKey, Plan, Session};

/// How long `poll` sleeps when there is nothing to fetch (no assignment yet).
const IDLE_SLEEP_MS: u64 = 50;

/// How a record is acknowledged (Kafka's `AcknowledgeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AcknowledgeType {
    /// Processed: the record is done for the group.
    Accept,
    /// Not processed: deliver it again (to any member), its delivery count kept.
    Release,
    /// Unprocessable: archive it, never deliver it again.
    Reject,
}

impl AcknowledgeType {
    /// The value on the wire (0 is a gap, which only the client itself sends).
    pub(crate) fn wire(self) -> i8 {
        match self {
            AcknowledgeType::Accept => 1,
            AcknowledgeType::Release => 2,
            AcknowledgeType::Reject => 3,
        }
    }
}

/// A record delivered to a share consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRecord {
    pub record: ConsumerRecord,
    /// How many times the record has been acquired, this delivery included (1 the first
    /// time).
    pub delivery_count: i16,
    /// The id of the record's topic (share partitions are addressed by topic id).
    pub topic_id: Uuid,
}

/// The outcome of each partition's acknowledgements.
pub type AcknowledgementResults = BTreeMap<TopicPartition, Result<()>>;

/// How a round of fetches went.
enum Round {
    /// Every request was answered.
    Fetched,
    /// Nothing to ask.
    Idle,
    /// A request failed: the next waits a backoff.
    Failed,
}

/// What one ShareFetch to one leader came back with.
struct FetchOutcome {
    leader: i32,
    plan: Plan,
    acks: BTreeMap<PartitionKey, Vec<AckRange>>,
    result: Result<ShareFetchResponse>,
}

/// The share consumer. Not `Clone`: one owner polls.
pub struct ShareConsumer {
    cluster: Arc<Cluster>,
    config: ShareConsumerConfig,
    membership: Membership,
    subscription: Vec<String>,
    /// Topic names of the subscribed topics by id.
    names: HashMap<Uuid, String>,
    /// Share sessions by leader node id.
    sessions: BTreeMap<i32, Session>,
    /// Acquired, not yet handed out.
    buffered: VecDeque<ShareRecord>,
    /// Handed out by the last poll, with the acknowledgement given so far.
    delivered: BTreeMap<PartitionKey, BTreeMap<i64, Option<AcknowledgeType>>>,
    /// Acknowledgements waiting to be sent.
    pending: BTreeMap<PartitionKey, Vec<AckRange>>,
    /// Acknowledgements the broker refused, or whose outcome is unknown.
    ack_errors: Vec<(TopicPartition, ClientError)>,
    limits: DecodeLimits,
}

impl ShareConsumer {
    /// A share consumer with a fresh member id; connects on first use. Must be created
    /// inside a tokio runtime.
    pub fn new(config: ShareConsumerConfig) -> Result<ShareConsumer> {
        if config.group_id.is_empty() {
            return Err(ClientError::Config {
                key: "group.id".into(),
                reason: "a share consumer needs a group.id".into(),
            });
        }
        let cluster = Cluster::new(config.client.clone())?;
        let membership = Membership::new(config.group_id.clone(), random_kafka_uuid());
        Ok(ShareConsumer {
            cluster,
            config,
            membership,
            subscription: Vec::new(),
            names: HashMap::new(),
            sessions: BTreeMap::new(),
            buffered: VecDeque::new(),
            delivered: BTreeMap::new(),
            pending: BTreeMap::new(),
            ack_errors: Vec::new(),
            limits: DecodeLimits::default(),
        })
    }

    /// This member's id (chosen by the client, as Kafka 4.2's does).
    pub fn member_id(&self) -> &str {
        self.membership.member_id()
    }

    /// The member epoch the coordinator gave (0 while joining).
    pub fn member_epoch(&self) -> i32 {
        self.membership.epoch()
    }

    /// Subscribes to `topics`: joins the share group (or changes the subscription).
    pub async fn subscribe(&mut self, topics: Vec<String>) -> Result<()> {
        if topics.is_empty() {
            return Err(ClientError::InvalidArgument(
                "subscribe needs at least one topic".into(),
            ));
        }
        self.subscription = topics.clone();
        self.membership.subscribe(&self.cluster, topics);
        Ok(())
    }

    /// The partitions the coordinator assigned to this member whose topic names are known.
    pub fn assignment(&self) -> Result<Vec<TopicPartition>> {
        Ok(self
            .membership
            .assignment()?
            .into_iter()
            .filter_map(|k| self.partition_of(&k))
            .collect())
    }

    /// Acknowledges one record the last poll returned (explicit mode only). The
    /// acknowledgement is sent with the next poll, `commit_sync` or `close`.
    pub fn acknowledge(&mut self, record: &ShareRecord, kind: AcknowledgeType) -> Result<()> {
        if self.config.acknowledgement_mode != ShareAcknowledgementMode::Explicit {
            return Err(ClientError::InvalidArgument(
                "acknowledge needs share.acknowledgement.mode=explicit".into(),
            ));
        }
        let key = (record.topic_id, record.record.partition);
        let slot = self
            .delivered
            .get_mut(&key)
            .and_then(|offsets| offsets.get_mut(&record.record.offset))
            .ok_or_else(|| {
                ClientError::InvalidArgument(format!(
                    "{}-{} offset {} was not returned by the last poll",
                    record.record.topic, record.record.partition, record.record.offset
                ))
            })?;
        *slot = Some(kind);
        Ok(())
    }

    /// Waits up to `timeout` for records; an empty `Vec` when none arrived. In implicit
    /// mode the records of the previous poll are accepted first.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ShareRecord>> {
        self.settle_delivered(true)?;
        let deadline = Instant::now() + timeout;
        loop {
            if !self.buffered.is_empty() {
                return Ok(self.hand_out());
            }
            let assignment = self.membership.assignment()?;
            let left = deadline.saturating_duration_since(Instant::now());
            let wait_ms = i32::try_from(left.as_millis())
                .unwrap_or(i32::MAX)
                .min(self.config.fetch_max_wait_ms);
            let round = self.fetch_round(&assignment, wait_ms).await?;
            if !self.buffered.is_empty() {
                return Ok(self.hand_out());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Vec::new());
            }
            // Nothing to ask (no assignment yet), or a failure: wait before the next round.
            let pause_ms = match round {
                Round::Failed => self.cluster.backoff().base_ms,
                Round::Idle => IDLE_SLEEP_MS,
                Round::Fetched => 0,
            };
            if pause_ms > 0 {
                tokio::time::sleep(left.min(Duration::from_millis(pause_ms))).await;
            }
        }
    }

    /// Sends the acknowledgements due now (in implicit mode, every record of the last poll
    /// is accepted) and waits for their outcome, per partition.
    pub async fn commit_sync(&mut self) -> Result<AcknowledgementResults> {
        self.settle_delivered(false)?;
        let mut results = AcknowledgementResults::new();
        let leaders: BTreeSet<i32> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.is_open())
            .map(|(l, _)| *l)
            .collect();
        for leader in leaders {
            let acks = self.take_pending_for(leader).await;
            if acks.is_empty() {
                continue;
            }
            results.extend(self.acknowledge_on(leader, acks, false).await);
        }
        for key in self.pending.keys() {
            if let Some(tp) = self.partition_of(key) {
                // No open session with its leader: it goes with the next poll's fetch.
                tracing::debug!(%tp, "acknowledgement waits for a share session");
            }
        }
        Ok(results)
    }

    /// Acknowledgement failures seen since the last call (acknowledgements sent with a
    /// poll, or whose outcome a lost connection left unknown).
    pub fn take_acknowledgement_errors(&mut self) -> Vec<(TopicPartition, ClientError)> {
        std::mem::take(&mut self.ack_errors)
    }

    /// Acknowledges what is due (in implicit mode the last poll's records are accepted;
    /// in explicit mode unacknowledged ones are released), closes every share session,
    /// which releases the records still acquired, and leaves the group.
    pub async fn close(mut self) -> Result<AcknowledgementResults> {
        if let Err(e) = self.settle_delivered(false) {
            tracing::debug!(error = %e, "closing with unacknowledged records; they are released");
        }
        self.delivered.clear();
        let mut results = AcknowledgementResults::new();
        let leaders: Vec<i32> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.is_open())
            .map(|(l, _)| *l)
            .collect();
        for leader in leaders {
            let acks = self.take_pending_for(leader).await;
            results.extend(self.acknowledge_on(leader, acks, true).await);
        }
        for key in std::mem::take(&mut self.pending).keys() {
            if let Some(tp) = self.partition_of(key) {
                results.insert(
                    tp,
                    Err(ClientError::InvalidArgument(
                        "no share session to send the acknowledgement in; the records' locks expire instead"
                            .into(),
                    )),
                );
            }
        }
        self.membership.leave(&self.cluster).await;
        self.cluster.close().await;
        Ok(results)
    }

    /// Turns the last poll's records into acknowledgements due: all accepted (implicit),
    /// or the ones the application acknowledged (explicit; with `strict`, an
    /// unacknowledged record is an error, and nothing is sent).
    fn settle_delivered(&mut self, strict: bool) -> Result<()> {
        let implicit = self.config.acknowledgement_mode == ShareAcknowledgementMode::Implicit;
        if !implicit && strict {
            let missing = self.delivered.iter().find_map(|(k, offsets)| {
                offsets
                    .iter()
                    .find(|(_, a)| a.is_none())
                    .map(|(o, _)| (*k, *o))
            });
            if let Some((key, offset)) = missing {
                let tp = self
                    .partition_of(&key)
                    .map_or_else(|| format!("{}-{}", key.0, key.1), |tp| tp.to_string());
                return Err(ClientError::InvalidArgument(format!(
                    "{tp} offset {offset} is not acknowledged: in explicit mode every record must be acknowledged before the next poll"
                )));
            }
        }
        for (key, offsets) in std::mem::take(&mut self.delivered) {
            let mut left = BTreeMap::new();
            for (offset, ack) in offsets {
                let kind = match (ack, implicit) {
                    (Some(kind), _) => kind,
                    (None, true) => AcknowledgeType::Accept,
                    (None, false) => {
                        left.insert(offset, None);
                        continue;
                    }
                };
                self.pending.entry(key).or_default().push(AckRange {
                    first: offset,
                    last: offset,
                    kind: kind.wire(),
                });
            }
            if !left.is_empty() {
                self.delivered.insert(key, left);
            }
        }
        Ok(())
    }

    /// Up to `max.poll.records` buffered records, remembered as delivered.
    fn hand_out(&mut self) -> Vec<ShareRecord> {
        let n = self.buffered.len().min(self.config.max_poll_records);
        let out: Vec<ShareRecord> = self.buffered.drain(..n).collect();
        for r in &out {
            self.delivered
                .entry((r.topic_id, r.record.partition))
                .or_default()
                .insert(r.record.offset, None);
        }
        out
    }

    fn partition_of(&self, key: &PartitionKey) -> Option<TopicPartition> {
        self.names
            .get(&key.0)
            .map(|name| TopicPartition::new(name.clone(), key.1))
    }

    /// Learns the names of the subscribed topics' ids (when the assignment names one not
    /// known yet).
    async fn resolve_names(&mut self, keys: &[PartitionKey]) {
        let unknown = keys.iter().any(|k| !self.names.contains_key(&k.0));
        if !unknown {
            return;
        }
        self.cluster.invalidate_metadata();
        for topic in &self.subscription {
            match self.cluster.topic(topic, false).await {
                Ok(info) => {
                    self.names.insert(info.id, info.name);
                }
                Err(e) => tracing::debug!(topic, error = %e, "no metadata for a subscribed topic"),
            }
        }
    }

    /// The leader of each share partition (those whose leader is unknown are left out).
    async fn leaders(
        &self,
        keys: impl Iterator<Item = PartitionKey>,
    ) -> BTreeMap<PartitionKey, i32> {
        let mut out = BTreeMap::new();
        for key in keys {
            let Some(tp) = self.partition_of(&key) else {
                continue;
            };
            match self.cluster.leader(&tp.topic, tp.partition).await {
                Ok(leader) => {
                    out.insert(key, leader);
                }
                Err(e) => tracing::debug!(%tp, error = %e, "no leader to share-fetch from"),
            }
        }
        out
    }

    /// The pending acknowledgements of partitions led by `leader`, merged.
    async fn take_pending_for(&mut self, leader: i32) -> BTreeMap<PartitionKey, Vec<AckRange>> {
        let leaders = self.leaders(self.pending.keys().copied()).await;
        let mut out = BTreeMap::new();
        for (key, l) in leaders {
            if l == leader {
                if let Some(acks) = self.pending.remove(&key) {
                    out.insert(key, merge(acks));
                }
            }
        }
        out
    }

    /// One ShareFetch to every leader of an assigned partition (and to leaders whose
    /// session holds partitions no longer assigned), all at once; then a ShareAcknowledge
    /// for acknowledgements no fetch carried.
    async fn fetch_round(
        &mut self,
        assignment: &BTreeSet<PartitionKey>,
        wait_ms: i32,
    ) -> Result<Round> {
        let keys: Vec<PartitionKey> = assignment
            .iter()
            .chain(self.pending.keys())
            .copied()
            .collect();
        self.resolve_names(&keys).await;
        let leaders = self.leaders(assignment.iter().copied()).await;
        let mut wanted: BTreeMap<i32, BTreeSet<PartitionKey>> = BTreeMap::new();
        for (key, leader) in &leaders {
            wanted.entry(*leader).or_default().insert(*key);
        }
        for leader in self.sessions.keys() {
            wanted.entry(*leader).or_default();
        }
        let ack_leaders = self.leaders(self.pending.keys().copied()).await;
        let mut tasks = JoinSet::new();
        for (leader, keys) in wanted {
            let session = self.sessions.entry(leader).or_default();
            if !session.needed(&keys) {
                continue;
            }
            let plan = session.plan(&keys);
            let mut acks = BTreeMap::new();
            if plan.carries_acks() {
                for key in &keys {
                    if ack_leaders.get(key) == Some(&leader) {
                        if let Some(a) = self.pending.remove(key) {
                            acks.insert(*key, merge(a));
                        }
                    }
                }
            }
            let request = self.fetch_request(&plan, &acks, wait_ms);
            let cluster = self.cluster.clone();
            let timeout_ms = self
                .config
                .client
                .request_timeout_ms
                .saturating_add(u64::try_from(wait_ms).unwrap_or(0));
            tasks.spawn(async move {
                let result = cluster
                    .call_timeout(&Target::Broker(leader), timeout_ms, |_| Ok(request))
                    .await;
                FetchOutcome {
                    leader,
                    plan,
                    acks,
                    result,
                }
            });
        }
        let sent = !tasks.is_empty();
        let mut failed = false;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(outcome) => failed |= self.apply_fetch(outcome)?,
                Err(e) => {
                    failed = true;
                    tracing::warn!(error = %e, "share fetch task failed");
                }
            }
        }
        // Acknowledgements of partitions no fetch named (no longer assigned, or their
        // leader's session was not open yet) go in a ShareAcknowledge where a session is.
        let open: Vec<i32> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.is_open())
            .map(|(l, _)| *l)
            .collect();
        for leader in open {
            let acks = self.take_pending_for(leader).await;
            if acks.is_empty() {
                continue;
            }
            for (tp, result) in self.acknowledge_on(leader, acks, false).await {
                if let Err(e) = result {
                    self.ack_errors.push((tp, e));
                }
            }
        }
        Ok(match (failed, sent) {
            (true, _) => Round::Failed,
            (false, true) => Round::Fetched,
            (false, false) => Round::Idle,
        })
    }

    fn fetch_request(
        &self,
        plan: &Plan,
        acks: &BTreeMap<PartitionKey, Vec<AckRange>>,
        wait_ms: i32,
    ) -> ShareFetchRequest {
        let mut topics: BTreeMap<Uuid, Vec<FetchPartition>> = BTreeMap::new();
        let listed: BTreeSet<PartitionKey> =
            plan.listed.iter().chain(acks.keys()).copied().collect();
        for key in listed {
            let batches = acks.get(&key).map_or_else(Vec::new, |ranges| {
                ranges
                    .iter()
                    .map(|r| {
                        AcknowledgementBatch::default()
                            .with_first_offset(r.first)
                            .with_last_offset(r.last)
                            .with_acknowledge_types(vec![r.kind])
                    })
                    .collect()
            });
            topics.entry(key.0).or_default().push(
                FetchPartition::default()
                    .with_partition_index(key.1)
                    .with_acknowledgement_batches(batches),
            );
        }
        let mut forgotten: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in &plan.forgotten {
            forgotten.entry(*topic).or_default().push(*partition);
        }
        let records = i32::try_from(self.config.max_poll_records).unwrap_or(i32::MAX);
        ShareFetchRequest::default()
            .with_group_id(Some(GroupId(str_bytes(&self.config.group_id))))
            .with_member_id(Some(str_bytes(self.member_id())))
            .with_share_session_epoch(plan.epoch)
            .with_max_wait_ms(wait_ms)
            .with_min_bytes(self.config.fetch_min_bytes)
            .with_max_bytes(self.config.fetch_max_bytes)
            .with_max_records(records)
            .with_batch_size(records)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(id, ps)| FetchTopic::default().with_topic_id(id).with_partitions(ps))
                    .collect(),
            )
            .with_forgotten_topics_data(
                forgotten
                    .into_iter()
                    .map(|(id, ps)| {
                        ForgottenTopic::default()
                            .with_topic_id(id)
                            .with_partitions(ps)
                    })
                    .collect(),
            )
    }

    /// Applies one leader's ShareFetch answer; returns whether it failed (a retry waits a
    /// backoff). Only an error no retry cures is returned as `Err`.
    fn apply_fetch(&mut self, outcome: FetchOutcome) -> Result<bool> {
        let FetchOutcome {
            leader,
            plan,
            acks,
            result,
        } = outcome;
        let session = self.sessions.entry(leader).or_default();
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                // The connection (and with it the broker's session) may be gone; whether
                // the acknowledgements were applied is unknown.
                session.reset();
                if e.needs_metadata_refresh() {
                    self.cluster.invalidate_metadata();
                }
                tracing::debug!(leader, error = %e, "share fetch failed");
                self.fail_acks(acks.keys(), &e);
                return if e.is_retriable() || matches!(e, ClientError::Timeout { .. }) {
                    Ok(true)
                } else {
                    Err(e)
                };
            }
        };
        if let Some(e) = ClientError::from_code(
            response.error_code,
            response.error_message.as_ref().map(|m| m.to_string()),
            format!("share fetch from broker {leader}"),
        ) {
            session.reset();
            if session_lost(response.error_code) {
                // Refused before the acknowledgements were looked at: send them again.
                tracing::debug!(leader, error = %e, "share session lost; opening a new one");
                for (key, ranges) in acks {
                    self.pending.entry(key).or_default().extend(ranges);
                }
                return Ok(true);
            }
            self.fail_acks(acks.keys(), &e);
            return if e.is_retriable() { Ok(true) } else { Err(e) };
        }
        session.fetched(&plan);
        let mut failed = false;
        for topic in response.responses {
            for p in topic.partitions {
                let key = (topic.topic_id, p.partition_index);
                let Some(tp) = self.partition_of(&key) else {
                    tracing::warn!(topic_id = %key.0, partition = key.1, "share fetch answered a partition of an unknown topic");
                    continue;
                };
                if let Some(e) = ClientError::from_code(
                    p.acknowledge_error_code,
                    p.acknowledge_error_message.as_ref().map(|m| m.to_string()),
                    format!("acknowledge {tp}"),
                ) {
                    self.ack_errors.push((tp.clone(), e));
                }
                if let Some(e) = ClientError::from_code(
                    p.error_code,
                    p.error_message.as_ref().map(|m| m.to_string()),
                    format!("share fetch {tp}"),
                ) {
                    if e.needs_metadata_refresh() {
                        self.cluster.invalidate_metadata();
                    }
                    tracing::debug!(%tp, error = %e, "share fetch partition error");
                    failed = true;
                    continue;
                }
                let ranges: Vec<AcquiredRange> = p
                    .acquired_records
                    .iter()
                    .map(|a| AcquiredRange {
                        first: a.first_offset,
                        last: a.last_offset,
                        delivery_count: a.delivery_count,
                    })
                    .collect();
                let data = p.records.unwrap_or_default();
                let got = acquired(&tp, key.0, &data, &ranges, &self.limits);
                self.buffered.extend(got.records);
                if !got.acks.is_empty() {
                    self.pending.entry(key).or_default().extend(got.acks);
                }
            }
        }
        Ok(failed)
    }

    fn fail_acks<'a>(&mut self, keys: impl Iterator<Item = &'a PartitionKey>, e: &ClientError) {
        let failed: Vec<(TopicPartition, ClientError)> = keys
            .filter_map(|k| self.partition_of(k))
            .map(|tp| (tp, e.clone()))
            .collect();
        self.ack_errors.extend(failed);
    }

    /// A ShareAcknowledge of `acks` to `leader` in its open session (`closing`: epoch -1,
    /// which also closes the session and releases what this member still holds there).
    async fn acknowledge_on(
        &mut self,
        leader: i32,
        acks: BTreeMap<PartitionKey, Vec<AckRange>>,
        closing: bool,
    ) -> AcknowledgementResults {
        let epoch = match self.sessions.get(&leader) {
            Some(s) if s.is_open() => {
                if closing {
                    -1
                } else {
                    s.epoch()
                }
            }
            _ => {
                for (key, ranges) in acks {
                    self.pending.entry(key).or_default().extend(ranges);
                }
                return AcknowledgementResults::new();
            }
        };
        let mut topics: BTreeMap<Uuid, Vec<AcknowledgePartition>> = BTreeMap::new();
        for (key, ranges) in &acks {
            topics.entry(key.0).or_default().push(
                AcknowledgePartition::default()
                    .with_partition_index(key.1)
                    .with_acknowledgement_batches(
                        ranges
                            .iter()
                            .map(|r| {
                                AckAckBatch::default()
                                    .with_first_offset(r.first)
                                    .with_last_offset(r.last)
                                    .with_acknowledge_types(vec![r.kind])
                            })
                            .collect(),
                    ),
            );
        }
        let request = ShareAcknowledgeRequest::default()
            .with_group_id(Some(GroupId(str_bytes(&self.config.group_id))))
            .with_member_id(Some(str_bytes(self.member_id())))
            .with_share_session_epoch(epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(id, ps)| {
                        AcknowledgeTopic::default()
                            .with_topic_id(id)
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let result: Result<ShareAcknowledgeResponse> = self
            .cluster
            .call(&Target::Broker(leader), |_| Ok(request))
            .await;
        let session = self.sessions.entry(leader).or_default();
        let mut out = AcknowledgementResults::new();
        let whole = match result {
            Ok(r) if r.error_code == 0 => {
                if closing {
                    session.reset();
                } else {
                    session.acknowledged();
                }
                let mut codes: BTreeMap<PartitionKey, Result<()>> = BTreeMap::new();
                for t in r.responses {
                    for p in t.partitions {
                        let key = (t.topic_id, p.partition_index);
                        let r = ClientError::check(
                            p.error_code,
                            p.error_message.map(|m| m.to_string()),
                            format!("acknowledge {}-{}", key.0, key.1),
                        );
                        codes.insert(key, r);
                    }
                }
                for key in acks.keys() {
                    if let Some(tp) = self.partition_of(key) {
                        let r = codes.remove(key).unwrap_or_else(|| {
                            Err(ClientError::Protocol(format!(
                                "ShareAcknowledge answered nothing for {tp}"
                            )))
                        });
                        out.insert(tp, r);
                    }
                }
                return out;
            }
            Ok(r) if !closing && session_lost(r.error_code) => {
                // Refused before the acknowledgements were looked at: they go again with
                // the next fetch, in a new session.
                session.reset();
                for (key, ranges) in acks {
                    self.pending.entry(key).or_default().extend(ranges);
                }
                return out;
            }
            Ok(r) => {
                session.reset();
                ClientError::from_code(
                    r.error_code,
                    r.error_message.map(|m| m.to_string()),
                    format!("share acknowledge to broker {leader}"),
                )
                .unwrap_or(ClientError::Closed)
            }
            Err(e) => {
                session.reset();
                e
            }
        };
        tracing::debug!(leader, error = %whole, "share acknowledge failed");
        for key in acks.keys() {
            if let Some(tp) = self.partition_of(key) {
                out.insert(tp, Err(whole.clone()));
            }
        }
        out
    }
}

/// SHARE_SESSION_NOT_FOUND or INVALID_SHARE_SESSION_EPOCH: the request was refused before
/// anything in it was applied, and a new session is the cure.
fn session_lost(code: i16) -> bool {
    code == ErrorCode::SHARE_SESSION_NOT_FOUND.code()
        || code == ErrorCode::INVALID_SHARE_SESSION_EPOCH.code()
}
