//! One simulated broker hosting a replica of the partition: a log with a durable prefix and
//! a leader-epoch cache (strom-log's), the leader state (strom-replica's `Leader`) or a
//! fetch loop as a follower, and the same decisions the real broker makes, in the same
//! order. It never reads the clock or draws random numbers: everything comes in as an
//! input and leaves as an output for the world to deliver.

use strom_log::LeaderEpochCache;
use strom_meta::{MetadataImage, TopicIdPartition};
use strom_replica::{
    diverging_epoch, follower_high_watermark, truncation_on_divergence, AckStatus, AlterIsr,
    AlterReply, EligibleBrokers, EpochEndOffset, FollowerFetch, Leader, LeaderConfig,
    PartitionView,
};

use crate::world::{Broken, Durability, Msg, Out, ProduceError, Rec, Target, TimerKind, MIN_ISR};

/// Settings every node shares.
#[derive(Clone, Copy, Debug)]
pub struct NodeConfig {
    pub durability: Durability,
    pub replica_lag_time_max_ms: i64,
    pub fetch_records_max: usize,
    pub request_timeout_ms: i64,
    /// Broken on purpose (tests the checker).
    pub broken: Option<Broken>,
}

/// The replica's log: records (one per batch) with the epoch that wrote them.
#[derive(Clone, Debug, Default)]
pub struct SimLog {
    pub recs: Vec<Rec>,
    /// Records below this survive a power loss.
    pub durable_len: usize,
    pub epochs: LeaderEpochCache,
    /// The high watermark this replica knows (a leader's is its `Leader`'s).
    pub hw: i64,
    /// The high-watermark checkpoint on disk.
    pub hw_checkpoint: i64,
    /// Bumped by every truncation, so that an fsync started before it is not believed.
    pub generation: u64,
    pub flushing: bool,
}

impl SimLog {
    pub fn len(&self) -> i64 {
        self.recs.len() as i64
    }

    fn end_for(&self, epoch: i32) -> EpochEndOffset {
        self.epochs
            .end_offset_for(epoch, self.len())
            .map_or(EpochEndOffset::UNDEFINED, |e| EpochEndOffset {
                epoch: e.epoch,
                end_offset: e.start_offset,
            })
    }

    /// Appends one record; a newer epoch enters the cache first (durably, as the real log
    /// writes its cache before the batch).
    fn push(&mut self, rec: Rec) {
        if Some(rec.epoch) > self.epochs.latest_epoch() {
            self.epochs.assign(rec.epoch, rec.offset);
        }
        self.recs.push(rec);
    }

    /// Cuts at `offset`: the data durably first, then the cache.
    fn truncate(&mut self, offset: i64) {
        let offset = offset.clamp(0, self.len()) as usize;
        self.recs.truncate(offset);
        self.durable_len = self.durable_len.min(offset);
        self.epochs.truncate_from_end(offset as i64);
        self.hw = self.hw.min(offset as i64);
        self.generation += 1;
    }
}

/// What the node is for the partition.
#[derive(Debug)]
pub enum Role {
    /// Not serving: just started and not yet registered, or not a replica.
    Offline,
    Leader(Box<Leader>),
    Follower {
        leader: i32,
        epoch: i32,
    },
}

/// An `acks=all` produce waiting for the high watermark.
#[derive(Clone, Copy, Debug)]
pub struct PendingAck {
    pub request: u64,
    pub offset: i64,
    pub epoch: i32,
    pub deadline_ms: i64,
}

#[derive(Debug)]
pub struct Node {
    pub id: i32,
    pub alive: bool,
    pub paused_until_ms: i64,
    /// Bumped at every restart; timers of an earlier incarnation are ignored.
    pub incarnation: u64,
    pub broker_epoch: Option<i64>,
    /// The metadata image this node applied (its metadata log survives crashes).
    pub image_index: Option<usize>,
    pub log: SimLog,
    pub role: Role,
    pub alter_in_flight: Option<(AlterIsr, i64)>,
    pub fetch_in_flight: Option<(u64, i64)>,
    pub fetch_id_next: u64,
    pub acks: Vec<PendingAck>,
    pub config: NodeConfig,
    pub tp: TopicIdPartition,
    /// Counters for the run's summary.
    pub truncations: u64,
    /// Logs deleted because a reassignment removed this replica.
    pub deletions: u64,
}

impl Node {
    pub fn new(id: i32, config: NodeConfig, tp: TopicIdPartition) -> Node {
        Node {
            id,
            alive: true,
            paused_until_ms: 0,
            incarnation: 0,
            broker_epoch: None,
            image_index: None,
            log: SimLog::default(),
            role: Role::Offline,
            alter_in_flight: None,
            fetch_in_flight: None,
            fetch_id_next: 0,
            acks: Vec::new(),
            config,
            tp,
            truncations: 0,
            deletions: 0,
        }
    }

    /// The high watermark this node would serve or checkpoint.
    pub fn high_watermark(&self) -> i64 {
        match &self.role {
            Role::Leader(leader) => leader.high_watermark(),
            _ => self.log.hw,
        }
    }

    fn sync_on_commit(&self) -> bool {
        self.config.durability == Durability::SyncOnCommit
    }

    /// The process dies. Under sync-on-commit (and any power loss) only the durable prefix
    /// survives; a process crash in page-cache mode keeps everything written. The cache
    /// file was written before the data, so it is the one in memory, trimmed to the data
    /// on open; the high watermark comes back from its checkpoint.
    pub fn crash(&mut self, power_loss: bool) {
        self.alive = false;
        self.incarnation += 1;
        if power_loss || self.sync_on_commit() {
            self.log.recs.truncate(self.log.durable_len);
        }
        self.log.durable_len = self.log.recs.len();
        let len = self.log.len();
        self.log.epochs.truncate_from_end(len);
        self.log.hw = self.log.hw_checkpoint.min(len);
        self.log.generation += 1;
        self.log.flushing = false;
        self.role = Role::Offline;
        self.broker_epoch = None;
        self.alter_in_flight = None;
        self.fetch_in_flight = None;
        self.acks.clear();
    }

    pub fn restart(&mut self) -> Vec<Out> {
        self.alive = true;
        vec![
            Out::Send(
                Target::Controller,
                Msg::Register {
                    from: self.id,
                    incarnation: self.incarnation,
                },
            ),
            Out::Timer(100, TimerKind::Register),
        ]
    }

    pub fn on_registered(&mut self, incarnation: u64, broker_epoch: i64) -> Vec<Out> {
        if incarnation != self.incarnation {
            return Vec::new();
        }
        // A retried registration of the same incarnation gets a newer epoch.
        let first = self.broker_epoch.is_none();
        if self.broker_epoch.is_some_and(|known| known >= broker_epoch) {
            return Vec::new();
        }
        self.broker_epoch = Some(broker_epoch);
        if !first {
            return Vec::new();
        }
        vec![
            Out::Timer(0, TimerKind::Heartbeat),
            Out::Timer(0, TimerKind::IsrTick),
            Out::Timer(0, TimerKind::HwCheckpoint),
        ]
    }

    pub fn on_timer(&mut self, kind: TimerKind, now: i64, images: &[MetadataImage]) -> Vec<Out> {
        let mut out = Vec::new();
        match kind {
            TimerKind::Register => {
                if self.broker_epoch.is_none() {
                    out.extend(self.restart());
                }
            }
            TimerKind::Heartbeat => {
                if let Some(epoch) = self.broker_epoch {
                    out.push(Out::Send(
                        Target::Controller,
                        Msg::Heartbeat {
                            from: self.id,
                            broker_epoch: epoch,
                        },
                    ));
                }
                out.push(Out::Timer(100, TimerKind::Heartbeat));
            }
            TimerKind::IsrTick => {
                if let Role::Leader(leader) = &mut self.role {
                    leader.tick(now);
                }
                self.expire_alter(now);
                out.extend(self.send_alter(now));
                out.extend(self.complete_acks(now));
                out.push(Out::Timer(
                    self.config.replica_lag_time_max_ms / 2,
                    TimerKind::IsrTick,
                ));
            }
            TimerKind::HwCheckpoint => {
                self.log.hw_checkpoint = self.high_watermark();
                out.push(Out::Timer(500, TimerKind::HwCheckpoint));
            }
            TimerKind::Fetch => out.extend(self.maybe_fetch(now)),
            TimerKind::Acks => out.extend(self.complete_acks(now)),
        }
        // Metadata may have arrived while the node waited for its registration.
        if let Some(index) = self.image_index {
            if matches!(self.role, Role::Offline) && self.broker_epoch.is_some() {
                out.extend(self.apply_image(index, images, now));
            }
        }
        out
    }

    /// A newer metadata image: the node takes its role from it, but only once the image
    /// holds its own current registration (so it reflects everything the controller did
    /// about its previous incarnation).
    pub fn on_metadata(&mut self, index: usize, images: &[MetadataImage], now: i64) -> Vec<Out> {
        if self.image_index.is_some_and(|seen| seen >= index) {
            return Vec::new();
        }
        self.image_index = Some(index);
        self.apply_image(index, images, now)
    }

    fn apply_image(&mut self, index: usize, images: &[MetadataImage], now: i64) -> Vec<Out> {
        let Some(image) = images.get(index) else {
            return Vec::new();
        };
        let registered = self.broker_epoch.is_some()
            && image.broker(self.id).map(|b| b.epoch) == self.broker_epoch;
        if !registered {
            return Vec::new();
        }
        let Some(part) = image.partition(self.tp.topic_id, self.tp.partition) else {
            return Vec::new();
        };
        if !part.replicas.contains(&self.id) {
            // A committed reassignment removed this replica: its log is deleted, as the
            // broker deletes it. Named again later, it starts over as an empty follower.
            if !self.log.recs.is_empty() || !matches!(self.role, Role::Offline) {
                self.log = SimLog {
                    generation: self.log.generation + 1,
                    ..SimLog::default()
                };
                self.role = Role::Offline;
                self.alter_in_flight = None;
                self.fetch_in_flight = None;
                self.acks.clear();
                self.deletions += 1;
            }
            return Vec::new();
        }
        let view = PartitionView {
            leader_epoch: part.leader_epoch,
            partition_epoch: part.partition_epoch,
            replicas: part.replicas.clone(),
            isr: part.isr.clone(),
        };
        let eligible: EligibleBrokers = image
            .brokers()
            .filter(|b| !b.fenced)
            .map(|b| (b.broker_id, b.epoch))
            .collect();
        let known_epoch = match &self.role {
            Role::Leader(leader) => Some(leader.leader_epoch()),
            Role::Follower { epoch, .. } => Some(*epoch),
            Role::Offline => None,
        };
        if known_epoch.is_some_and(|known| known > part.leader_epoch) {
            return Vec::new();
        }
        let mut out = Vec::new();
        if part.leader == self.id {
            match &mut self.role {
                Role::Leader(leader) if leader.leader_epoch() == part.leader_epoch => {
                    if leader.on_image(&view, eligible, now) {
                        self.log.hw = leader.high_watermark();
                    }
                }
                _ => {
                    // Becoming leader: this epoch starts at the log end (durably first).
                    self.log.epochs.assign(part.leader_epoch, self.log.len());
                    let config = LeaderConfig {
                        replica_lag_time_max_ms: self.config.replica_lag_time_max_ms,
                        durable_only: self.sync_on_commit(),
                    };
                    let leader = Leader::new(
                        self.id,
                        &view,
                        eligible,
                        config,
                        self.log.len(),
                        self.log.durable_len as i64,
                        self.log.hw,
                        now,
                    );
                    self.log.hw = leader.high_watermark();
                    self.role = Role::Leader(Box::new(leader));
                    self.alter_in_flight = None;
                    self.fetch_in_flight = None;
                    out.push(Out::BecameLeader(part.leader_epoch));
                }
            }
        } else if known_epoch != Some(part.leader_epoch) || matches!(self.role, Role::Leader(_)) {
            self.role = Role::Follower {
                leader: part.leader,
                epoch: part.leader_epoch,
            };
            self.alter_in_flight = None;
            self.fetch_in_flight = None;
            out.push(Out::Timer(0, TimerKind::Fetch));
        }
        out.extend(self.send_alter(now));
        out.extend(self.complete_acks(now));
        out
    }

    fn maybe_fetch(&mut self, now: i64) -> Vec<Out> {
        let Role::Follower { leader, epoch } = self.role else {
            return Vec::new();
        };
        if leader < 0 || self.broker_epoch.is_none() {
            return Vec::new();
        }
        if let Some((_, sent_at)) = self.fetch_in_flight {
            if now - sent_at < self.config.request_timeout_ms {
                return Vec::new();
            }
        }
        // Under sync-on-commit a follower reports only what it fsynced.
        if self.sync_on_commit()
            && (self.log.flushing || self.log.durable_len < self.log.recs.len())
        {
            return Vec::new();
        }
        self.fetch_id_next += 1;
        let id = self.fetch_id_next;
        self.fetch_in_flight = Some((id, now));
        vec![
            Out::Send(
                Target::Node(leader),
                Msg::Fetch {
                    from: self.id,
                    id,
                    leader_epoch: epoch,
                    fetch_offset: self.log.len(),
                    last_fetched_epoch: if self.config.broken == Some(Broken::NoLastFetchedEpoch) {
                        -1
                    } else {
                        self.log.epochs.latest_epoch().unwrap_or(-1)
                    },
                    broker_epoch: self.broker_epoch.unwrap_or(-1),
                },
            ),
            Out::Timer(self.config.request_timeout_ms, TimerKind::Fetch),
        ]
    }

    /// The leader's side of a replica fetch, in the broker's order: epoch checks, the
    /// diverging-epoch check, then the follower's progress, then the read up to the log end.
    #[allow(clippy::too_many_arguments)]
    pub fn on_fetch(
        &mut self,
        from: i32,
        id: u64,
        leader_epoch: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        broker_epoch: i64,
        now: i64,
    ) -> Vec<Out> {
        let reply = |result| {
            vec![Out::Send(
                Target::Node(from),
                Msg::FetchResponse {
                    id,
                    leader_epoch,
                    result,
                },
            )]
        };
        let Role::Leader(leader) = &mut self.role else {
            return reply(Err("not leader"));
        };
        if leader.leader_epoch() != leader_epoch {
            return reply(Err("epoch mismatch"));
        }
        let answer = self.log.end_for(last_fetched_epoch);
        if let Some(diverging) = diverging_epoch(last_fetched_epoch, fetch_offset, answer) {
            return reply(Ok((Vec::new(), leader.high_watermark(), Some(diverging))));
        }
        let fetch = FollowerFetch {
            replica_id: from,
            fetch_offset,
            log_start_offset: 0,
            broker_epoch: Some(broker_epoch),
        };
        match leader.on_follower_fetch(fetch, now) {
            Ok(_) => {}
            Err(_) => return reply(Err("refused")),
        }
        let hw = leader.high_watermark();
        self.log.hw = hw;
        let end = (fetch_offset as usize + self.config.fetch_records_max).min(self.log.recs.len());
        let records = self.log.recs[fetch_offset as usize..end].to_vec();
        let mut out = reply(Ok((records, hw, None)));
        out.extend(self.send_alter(now));
        out.extend(self.complete_acks(now));
        out
    }

    pub fn on_fetch_response(
        &mut self,
        id: u64,
        leader_epoch: i32,
        result: Result<(Vec<Rec>, i64, Option<EpochEndOffset>), &'static str>,
    ) -> Vec<Out> {
        let Role::Follower { epoch, .. } = self.role else {
            return Vec::new();
        };
        if epoch != leader_epoch || self.fetch_in_flight.map(|(i, _)| i) != Some(id) {
            return Vec::new();
        }
        self.fetch_in_flight = None;
        let (records, leader_hw, diverging) = match result {
            Ok(answer) => answer,
            Err(_) => return vec![Out::Timer(20, TimerKind::Fetch)],
        };
        if let Some(diverging) = diverging {
            let local = self
                .log
                .epochs
                .end_offset_for(diverging.epoch, self.log.len())
                .map(|e| EpochEndOffset {
                    epoch: e.epoch,
                    end_offset: e.start_offset,
                });
            let cut = truncation_on_divergence(diverging, local, self.log.len(), self.log.hw);
            if cut.offset < self.log.len() {
                self.truncations += 1;
            }
            self.log.truncate(cut.offset);
            return vec![Out::Timer(0, TimerKind::Fetch)];
        }
        let mut appended = false;
        if let Some(first) = records.first() {
            if first.offset != self.log.len() {
                return vec![Out::Timer(0, TimerKind::Fetch)];
            }
            for rec in records {
                self.log.push(rec);
            }
            appended = true;
        }
        self.log.hw = follower_high_watermark(leader_hw, self.log.len());
        if appended && self.sync_on_commit() {
            return self.request_fsync();
        }
        vec![Out::Timer(if appended { 0 } else { 10 }, TimerKind::Fetch)]
    }

    fn request_fsync(&mut self) -> Vec<Out> {
        if self.log.flushing {
            return Vec::new();
        }
        self.log.flushing = true;
        vec![Out::Fsync {
            generation: self.log.generation,
            len: self.log.recs.len(),
        }]
    }

    pub fn on_fsync(&mut self, generation: u64, len: usize, now: i64) -> Vec<Out> {
        self.log.flushing = false;
        if generation == self.log.generation {
            self.log.durable_len = self.log.durable_len.max(len.min(self.log.recs.len()));
        }
        let mut out = Vec::new();
        if self.log.durable_len < self.log.recs.len() {
            out.extend(self.request_fsync());
        }
        if let Role::Leader(leader) = &mut self.role {
            if leader.on_local_end(self.log.len(), self.log.durable_len as i64, now) {
                self.log.hw = leader.high_watermark();
            }
            out.extend(self.complete_acks(now));
        } else {
            out.push(Out::Timer(0, TimerKind::Fetch));
        }
        out
    }

    pub fn on_produce(&mut self, request: u64, value: u64, now: i64) -> Vec<Out> {
        let fail = |error| {
            vec![Out::Send(
                Target::Client,
                Msg::ProduceResponse {
                    request,
                    result: Err(error),
                },
            )]
        };
        let Role::Leader(leader) = &mut self.role else {
            return fail(ProduceError::NotLeader);
        };
        if leader.check_min_isr(MIN_ISR).is_err() {
            return fail(ProduceError::NotEnoughReplicas);
        }
        let epoch = leader.leader_epoch();
        let offset = self.log.len();
        self.log.push(Rec {
            offset,
            epoch,
            value,
        });
        if leader.on_local_end(self.log.len(), self.log.durable_len as i64, now) {
            self.log.hw = leader.high_watermark();
        }
        if self.config.broken == Some(Broken::AckOnAppend) {
            return vec![Out::Send(
                Target::Client,
                Msg::ProduceResponse {
                    request,
                    result: Ok(offset),
                },
            )];
        }
        self.acks.push(PendingAck {
            request,
            offset,
            epoch,
            deadline_ms: now + self.config.request_timeout_ms,
        });
        let mut out = vec![Out::Timer(self.config.request_timeout_ms, TimerKind::Acks)];
        if self.sync_on_commit() {
            out.extend(self.request_fsync());
        }
        out.extend(self.complete_acks(now));
        out
    }

    /// Releases every waiting `acks=all` produce whose fate is known.
    fn complete_acks(&mut self, now: i64) -> Vec<Out> {
        let mut out = Vec::new();
        let leader = match &self.role {
            Role::Leader(leader) => Some(leader),
            _ => None,
        };
        self.acks.retain(|ack| {
            let result = match leader {
                Some(l) if l.leader_epoch() == ack.epoch => {
                    match l.ack_status(ack.offset + 1, MIN_ISR) {
                        AckStatus::Committed => Ok(ack.offset),
                        AckStatus::NotEnoughReplicasAfterAppend => {
                            Err(ProduceError::NotEnoughReplicasAfterAppend)
                        }
                        AckStatus::Waiting if now >= ack.deadline_ms => Err(ProduceError::Timeout),
                        AckStatus::Waiting => return true,
                    }
                }
                _ => Err(ProduceError::NotLeader),
            };
            out.push(Out::Send(
                Target::Client,
                Msg::ProduceResponse {
                    request: ack.request,
                    result,
                },
            ));
            false
        });
        out
    }

    fn expire_alter(&mut self, now: i64) {
        let Some((sent, at)) = self.alter_in_flight.clone() else {
            return;
        };
        if now - at < self.config.request_timeout_ms {
            return;
        }
        self.alter_in_flight = None;
        if let Role::Leader(leader) = &mut self.role {
            if leader.on_alter_reply(&sent, AlterReply::Lost, now) {
                self.log.hw = leader.high_watermark();
            }
        }
    }

    fn send_alter(&mut self, now: i64) -> Vec<Out> {
        if self.alter_in_flight.is_some() {
            return Vec::new();
        }
        let (Role::Leader(leader), Some(broker_epoch)) = (&mut self.role, self.broker_epoch) else {
            return Vec::new();
        };
        let Some(sent) = leader.take_proposal() else {
            return Vec::new();
        };
        self.alter_in_flight = Some((sent.clone(), now));
        vec![Out::Send(
            Target::Controller,
            Msg::AlterPartition {
                from: self.id,
                broker_epoch,
                sent,
            },
        )]
    }

    pub fn on_alter_response(&mut self, sent: AlterIsr, reply: AlterReply, now: i64) -> Vec<Out> {
        if self
            .alter_in_flight
            .as_ref()
            .is_some_and(|(in_flight, _)| *in_flight == sent)
        {
            self.alter_in_flight = None;
        }
        if let Role::Leader(leader) = &mut self.role {
            if leader.on_alter_reply(&sent, reply, now) {
                self.log.hw = leader.high_watermark();
            }
        }
        let mut out = self.send_alter(now);
        out.extend(self.complete_acks(now));
        out
    }

    /// ListOffsets(latest) for a consumer: the high watermark, or OFFSET_NOT_AVAILABLE
    /// until a new leader's high watermark reached its epoch start (KIP-207).
    pub fn on_list_offsets(&self, request: u64) -> Vec<Out> {
        let result = match &self.role {
            Role::Leader(leader) if leader.high_watermark_established() => {
                Ok(leader.high_watermark())
            }
            Role::Leader(_) => Err("offset not available"),
            _ => Err("not leader"),
        };
        vec![Out::Send(
            Target::Client,
            Msg::ListOffsetsResponse { request, result },
        )]
    }

    /// A consumer's fetch: records up to the high watermark only.
    pub fn on_consumer_fetch(&self, offset: i64) -> Vec<Out> {
        let result = match &self.role {
            Role::Leader(leader) => {
                let hw = leader.high_watermark();
                if offset > self.log.len() || offset < 0 {
                    Err("offset out of range")
                } else {
                    let end = hw.max(offset) as usize;
                    let end = end.min(offset as usize + self.config.fetch_records_max);
                    Ok(self.log.recs[offset as usize..end].to_vec())
                }
            }
            _ => Err("not leader"),
        };
        vec![Out::Send(
            Target::Client,
            Msg::ConsumerFetchResponse { offset, result },
        )]
    }
}
