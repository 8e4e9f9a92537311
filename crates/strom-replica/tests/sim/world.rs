//! The simulated world: three broker nodes, the controller (strom-meta's real one, fed
//! registrations, heartbeats and AlterPartition), a client that produces with
//! `acks=all` and consumes, and a network that delays, reorders, duplicates and drops
//! messages. Faults: crashes (with restarts), pauses (SIGSTOP), isolation. Everything is
//! driven by one seeded generator and a queue of timed events, so a seed replays exactly.

use std::collections::{BTreeMap, BTreeSet};

use strom_meta::{
    AlterPartitionItem, AlterPartitionRequest, AlterPartitionResult, BrokerHeartbeatRequest,
    Controller, ControllerConfig, ControllerReply, ControllerRequest, CreatableTopic,
    CreateTopicsRequest, ErrorCode, MetadataImage, RegisterBrokerRequest, TopicIdPartition,
};
use strom_replica::{AlterIsr, AlterRefusal, AlterReply, EpochEndOffset};

use crate::checker::Checker;
use crate::node::{Node, NodeConfig};
use crate::rng::Rng;

pub const NODES: [i32; 3] = [1, 2, 3];
pub const MIN_ISR: usize = 2;
const TOPIC: &str = "sim";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Kafka's default: a process crash keeps what was written (the page cache survives).
    PageCache,
    /// Acknowledge only what is fsynced everywhere; a crash here is a power loss.
    SyncOnCommit,
}

/// One record (each produce is one batch of one record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rec {
    pub offset: i64,
    pub epoch: i32,
    pub value: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Node(i32),
    Controller,
    Client,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProduceError {
    NotLeader,
    NotEnoughReplicas,
    NotEnoughReplicasAfterAppend,
    Timeout,
}

#[derive(Clone, Debug)]
pub enum Msg {
    Register {
        from: i32,
        incarnation: u64,
    },
    Registered {
        incarnation: u64,
        broker_epoch: i64,
    },
    Heartbeat {
        from: i32,
        broker_epoch: i64,
    },
    AlterPartition {
        from: i32,
        broker_epoch: i64,
        sent: AlterIsr,
    },
    AlterResponse {
        sent: AlterIsr,
        reply: AlterReply,
    },
    Metadata {
        index: usize,
    },
    Fetch {
        from: i32,
        id: u64,
        leader_epoch: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        broker_epoch: i64,
    },
    FetchResponse {
        id: u64,
        leader_epoch: i32,
        result: Result<(Vec<Rec>, i64, Option<EpochEndOffset>), &'static str>,
    },
    Produce {
        request: u64,
        value: u64,
    },
    ProduceResponse {
        request: u64,
        result: Result<i64, ProduceError>,
    },
    ListOffsets {
        request: u64,
    },
    ListOffsetsResponse {
        request: u64,
        result: Result<i64, &'static str>,
    },
    ConsumerFetch {
        offset: i64,
    },
    ConsumerFetchResponse {
        offset: i64,
        result: Result<Vec<Rec>, &'static str>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    Register,
    Heartbeat,
    IsrTick,
    HwCheckpoint,
    Fetch,
    Acks,
}

/// What a node asks the world to do.
#[derive(Debug)]
pub enum Out {
    Send(Target, Msg),
    Timer(i64, TimerKind),
    Fsync { generation: u64, len: usize },
    BecameLeader(i32),
}

#[derive(Debug)]
enum Event {
    Deliver {
        from: Target,
        to: Target,
        msg: Msg,
    },
    Timer {
        node: i32,
        incarnation: u64,
        kind: TimerKind,
    },
    Fsync {
        node: i32,
        incarnation: u64,
        generation: u64,
        len: usize,
    },
    Restart(i32),
    Fault,
    ControllerTick,
    Produce,
    Consume,
}

/// What one run does.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub durability: Durability,
    /// Simulated milliseconds with faults, then without (healing).
    pub fault_ms: i64,
    pub heal_ms: i64,
    pub drop_per_mille: u64,
    pub duplicate_per_mille: u64,
    pub delay_max_ms: i64,
    /// A deliberately broken broker (the checker's own test).
    pub broken: Option<Broken>,
    /// Crashes are power losses in page-cache mode too (what that mode does not promise).
    pub power_loss: bool,
}

/// Ways to break the brokers on purpose, to show the checker notices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// Answer produce right after the leader's append (as if acks=1).
    AckOnAppend,
    /// Followers fetch without their last fetched epoch, so they never learn where they
    /// diverge (replication before KIP-101).
    NoLastFetchedEpoch,
}

/// Counters printed with the results.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub events: u64,
    pub crashes: u64,
    pub pauses: u64,
    pub isolations: u64,
    /// AlterPartitionReassignments the controller accepted (moves and cancels).
    pub reassignments: u64,
    /// Replica logs deleted because a committed reassignment removed them.
    pub replica_deletions: u64,
    pub leader_changes: u64,
    pub truncations: u64,
    pub produced: u64,
    pub acked: u64,
    pub consumed: u64,
}

struct Client {
    leader: Option<i32>,
    view_refreshed_ms: i64,
    next_value: u64,
    next_request: u64,
    in_flight: BTreeMap<u64, (u64, i64)>,
    position: i64,
    producing: bool,
    /// The ListOffsets request waiting for its answer: a consumer asks again only after
    /// the previous answer (or after giving up on it), as one in-order connection does.
    listing: Option<(u64, i64)>,
}

pub struct World {
    pub now: i64,
    seq: u64,
    queue: BTreeMap<(i64, u64), Event>,
    rng: Rng,
    params: Params,
    pub nodes: BTreeMap<i32, Node>,
    controller: Controller,
    pub images: Vec<MetadataImage>,
    client: Client,
    pub checker: Checker,
    faults: bool,
    isolated_until: BTreeMap<i32, i64>,
    pub stats: Stats,
    trace: bool,
}

impl World {
    pub fn new(seed: u64, params: Params, trace: bool) -> World {
        let mut world = World {
            now: 1_000_000,
            seq: 0,
            queue: BTreeMap::new(),
            rng: Rng::new(seed),
            params,
            nodes: BTreeMap::new(),
            controller: Controller::new(ControllerConfig {
                broker_session_timeout_ms: 600,
                default_replication_factor: 3,
                topic_id_seed: seed,
                ..ControllerConfig::default()
            }),
            images: vec![MetadataImage::default()],
            client: Client {
                leader: None,
                view_refreshed_ms: 0,
                next_value: 1,
                next_request: 1,
                in_flight: BTreeMap::new(),
                position: 0,
                producing: true,
                listing: None,
            },
            checker: Checker::default(),
            faults: false,
            isolated_until: BTreeMap::new(),
            stats: Stats::default(),
            trace,
        };
        world.setup();
        world
    }

    /// Registers and unfences the brokers and creates the topic (RF 3, min ISR 2), then
    /// starts every node's timers.
    fn setup(&mut self) {
        let config = NodeConfig {
            durability: self.params.durability,
            replica_lag_time_max_ms: 1_000,
            fetch_records_max: 40,
            request_timeout_ms: 1_500,
            broken: self.params.broken,
        };
        let mut epochs = BTreeMap::new();
        for id in NODES {
            let reply = self.call(ControllerRequest::RegisterBroker(RegisterBrokerRequest {
                broker_id: id,
                incarnation_id: incarnation_id(id, 0),
                endpoints: Vec::new(),
                rack: None,
            }));
            let Ok(ControllerReply::RegisterBroker { broker_epoch }) = reply else {
                unreachable!("setup registration: {reply:?}");
            };
            self.call(heartbeat(id, broker_epoch)).ok();
            // A placeholder topic id until the topic exists.
            let tp = TopicIdPartition {
                topic_id: uuid::Uuid::nil(),
                partition: 0,
            };
            self.nodes.insert(id, Node::new(id, config, tp));
            epochs.insert(id, broker_epoch);
        }
        let create = ControllerRequest::CreateTopics(CreateTopicsRequest {
            topics: vec![CreatableTopic {
                num_partitions: 1,
                replication_factor: 3,
                configs: vec![("min.insync.replicas".into(), Some("2".into()))],
                ..CreatableTopic::named(TOPIC)
            }],
            validate_only: false,
        });
        self.call(create).ok();
        let topic_id = self.image().topic_id(TOPIC).unwrap_or_default();
        let index = self.images.len() - 1;
        for id in NODES {
            let node = self.nodes.get_mut(&id).unwrap_or_else(|| unreachable!());
            node.tp = TopicIdPartition {
                topic_id,
                partition: 0,
            };
            let epoch = epochs.get(&id).copied().unwrap_or(-1);
            let incarnation = node.incarnation;
            let out = node.on_registered(incarnation, epoch);
            self.apply(id, out);
            let out = self
                .nodes
                .get_mut(&id)
                .map(|n| n.on_metadata(index, &self.images, self.now))
                .unwrap_or_default();
            self.apply(id, out);
        }
        self.schedule(50, Event::ControllerTick);
        self.schedule(5, Event::Produce);
        self.schedule(7, Event::Consume);
    }

    fn image(&self) -> &MetadataImage {
        self.images.last().unwrap_or_else(|| unreachable!())
    }

    /// The controller handles a request against the latest image; new records become a
    /// new image, announced to every node.
    fn call(&mut self, request: ControllerRequest) -> Result<ControllerReply, ErrorCode> {
        let image = self.image().clone();
        let (records, reply) = self
            .controller
            .handle(&image, request, self.now)
            .map_err(|e| e.0.code)?;
        self.publish(&image, &records);
        Ok(reply)
    }

    fn publish(&mut self, image: &MetadataImage, records: &[strom_meta::MetadataRecord]) {
        if records.is_empty() {
            return;
        }
        match image.apply(records) {
            Ok((next, _)) => {
                self.images.push(next);
                self.broadcast();
            }
            Err(error) => self.checker.violation(
                self.now,
                format!("controller records do not apply: {error}"),
            ),
        }
    }

    fn broadcast(&mut self) {
        let index = self.images.len() - 1;
        for id in NODES {
            self.send(
                Target::Controller,
                Target::Node(id),
                Msg::Metadata { index },
            );
        }
    }

    fn schedule(&mut self, delay_ms: i64, event: Event) {
        self.seq += 1;
        self.queue
            .insert((self.now + delay_ms.max(0), self.seq), event);
    }

    fn isolated(&self, target: Target) -> bool {
        match target {
            Target::Node(id) => self.isolated_until.get(&id).is_some_and(|t| *t > self.now),
            _ => false,
        }
    }

    fn send(&mut self, from: Target, to: Target, msg: Msg) {
        if self.faults {
            if self.isolated(from) || self.isolated(to) {
                return;
            }
            if self.rng.chance(self.params.drop_per_mille) {
                return;
            }
            if self.rng.chance(self.params.duplicate_per_mille) {
                let delay = self.rng.range(1, self.params.delay_max_ms);
                self.schedule(
                    delay,
                    Event::Deliver {
                        from,
                        to,
                        msg: msg.clone(),
                    },
                );
            }
        }
        let delay = self.rng.range(1, self.params.delay_max_ms);
        self.schedule(delay, Event::Deliver { from, to, msg });
    }

    /// Carries out what node `id` asked for.
    fn apply(&mut self, id: i32, out: Vec<Out>) {
        let incarnation = self.nodes.get(&id).map_or(0, |n| n.incarnation);
        for item in out {
            match item {
                Out::Send(to, msg) => self.send(Target::Node(id), to, msg),
                Out::Timer(delay, kind) => self.schedule(
                    delay,
                    Event::Timer {
                        node: id,
                        incarnation,
                        kind,
                    },
                ),
                Out::Fsync { generation, len } => {
                    let delay = self.rng.range(1, 8);
                    self.schedule(
                        delay,
                        Event::Fsync {
                            node: id,
                            incarnation,
                            generation,
                            len,
                        },
                    );
                }
                Out::BecameLeader(epoch) => {
                    self.stats.leader_changes += 1;
                    self.checker.became_leader(self.now, id, epoch);
                }
            }
        }
    }

    /// Runs the faulty phase, heals, and checks the end state. The first violation ends
    /// the run.
    pub fn run(&mut self) -> Result<(), String> {
        self.faults = true;
        let first = self.rng.range(100, 400);
        self.schedule(first, Event::Fault);
        let heal_at = self.now + self.params.fault_ms;
        self.run_until(heal_at)?;
        self.heal();
        let end = self.now + self.params.heal_ms;
        self.run_until(end)?;
        self.final_check()
    }

    fn run_until(&mut self, until: i64) -> Result<(), String> {
        while let Some(entry) = self.queue.first_entry() {
            let (time, _) = *entry.key();
            if time > until {
                break;
            }
            let event = entry.remove();
            self.now = time;
            self.stats.events += 1;
            if self.trace {
                eprintln!("{:>8} {event:?}", self.now);
            }
            self.step(event);
            if let Some(violation) = self.checker.first_violation() {
                return Err(violation);
            }
        }
        self.now = until;
        Ok(())
    }

    fn heal(&mut self) {
        self.faults = false;
        self.isolated_until.clear();
        self.client.producing = false;
        for id in NODES {
            let Some(node) = self.nodes.get_mut(&id) else {
                continue;
            };
            node.paused_until_ms = 0;
            if !node.alive {
                self.schedule(0, Event::Restart(id));
            }
        }
    }

    /// Delivers one event, deferring those of a paused node.
    fn step(&mut self, event: Event) {
        let target = match &event {
            Event::Deliver {
                to: Target::Node(id),
                ..
            } => Some(*id),
            Event::Timer { node, .. } | Event::Fsync { node, .. } => Some(*node),
            _ => None,
        };
        if let Some(id) = target {
            let Some(node) = self.nodes.get(&id) else {
                return;
            };
            if node.paused_until_ms > self.now {
                let delay = node.paused_until_ms - self.now + self.rng.range(0, 3);
                self.schedule(delay, event);
                return;
            }
        }
        match event {
            Event::Deliver { from, to, msg } => self.deliver(from, to, msg),
            Event::Timer {
                node,
                incarnation,
                kind,
            } => {
                let Some(n) = self.nodes.get_mut(&node) else {
                    return;
                };
                if !n.alive || n.incarnation != incarnation {
                    return;
                }
                let out = n.on_timer(kind, self.now, &self.images);
                self.apply(node, out);
                self.observe(node);
            }
            Event::Fsync {
                node,
                incarnation,
                generation,
                len,
            } => {
                let Some(n) = self.nodes.get_mut(&node) else {
                    return;
                };
                if !n.alive || n.incarnation != incarnation {
                    return;
                }
                let out = n.on_fsync(generation, len, self.now);
                self.apply(node, out);
                self.observe(node);
            }
            Event::Restart(id) => {
                if let Some(n) = self.nodes.get_mut(&id) {
                    if !n.alive {
                        let out = n.restart();
                        self.apply(id, out);
                        // Its durable metadata log: the image it had applied.
                        if let Some(index) = self.nodes.get(&id).and_then(|n| n.image_index) {
                            let out = self
                                .nodes
                                .get_mut(&id)
                                .map(|n| {
                                    n.image_index = None;
                                    n.on_metadata(index, &self.images, self.now)
                                })
                                .unwrap_or_default();
                            self.apply(id, out);
                        }
                        self.observe(id);
                    }
                }
            }
            Event::Fault => self.fault(),
            Event::ControllerTick => {
                let image = self.image().clone();
                let records = self.controller.expire_broker_sessions(&image, self.now);
                self.publish(&image, &records);
                // Nodes catch up with the metadata log even after lost messages.
                self.broadcast();
                self.schedule(50, Event::ControllerTick);
            }
            Event::Produce => self.produce(),
            Event::Consume => self.consume(),
        }
    }

    fn deliver(&mut self, from: Target, to: Target, msg: Msg) {
        if self.faults && (self.isolated(from) || self.isolated(to)) {
            return;
        }
        match to {
            Target::Controller => self.controller_receive(msg),
            Target::Client => self.client_receive(msg),
            Target::Node(id) => {
                let now = self.now;
                let images = &self.images;
                let Some(node) = self.nodes.get_mut(&id) else {
                    return;
                };
                if !node.alive {
                    return;
                }
                let out = match msg {
                    Msg::Metadata { index } => {
                        let before = node.deletions;
                        let out = node.on_metadata(index, images, now);
                        self.stats.replica_deletions += node.deletions - before;
                        out
                    }
                    Msg::Registered {
                        incarnation,
                        broker_epoch,
                    } => {
                        let mut out = node.on_registered(incarnation, broker_epoch);
                        if let Some(index) = node.image_index {
                            node.image_index = None;
                            out.extend(node.on_metadata(index, images, now));
                        }
                        out
                    }
                    Msg::AlterResponse { sent, reply } => node.on_alter_response(sent, reply, now),
                    Msg::Fetch {
                        from,
                        id: fetch_id,
                        leader_epoch,
                        fetch_offset,
                        last_fetched_epoch,
                        broker_epoch,
                    } => node.on_fetch(
                        from,
                        fetch_id,
                        leader_epoch,
                        fetch_offset,
                        last_fetched_epoch,
                        broker_epoch,
                        now,
                    ),
                    Msg::FetchResponse {
                        id: fetch_id,
                        leader_epoch,
                        result,
                    } => {
                        let before = node.truncations;
                        let out = node.on_fetch_response(fetch_id, leader_epoch, result);
                        self.stats.truncations += node.truncations - before;
                        out
                    }

                    Msg::Produce { request, value } => node.on_produce(request, value, now),
                    Msg::ListOffsets { request } => node.on_list_offsets(request),
                    Msg::ConsumerFetch { offset } => node.on_consumer_fetch(offset),
                    _ => Vec::new(),
                };
                self.apply(id, out);
                self.observe(id);
            }
        }
    }

    fn controller_receive(&mut self, msg: Msg) {
        match msg {
            Msg::Register { from, incarnation } => {
                let request = ControllerRequest::RegisterBroker(RegisterBrokerRequest {
                    broker_id: from,
                    incarnation_id: incarnation_id(from, incarnation),
                    endpoints: Vec::new(),
                    rack: None,
                });
                if let Ok(ControllerReply::RegisterBroker { broker_epoch }) = self.call(request) {
                    self.send(
                        Target::Controller,
                        Target::Node(from),
                        Msg::Registered {
                            incarnation,
                            broker_epoch,
                        },
                    );
                }
            }
            Msg::Heartbeat { from, broker_epoch } => {
                let _ = self.call(heartbeat(from, broker_epoch));
            }
            Msg::AlterPartition {
                from,
                broker_epoch,
                sent,
            } => {
                let Some(tp) = self.nodes.get(&from).map(|n| n.tp) else {
                    return;
                };
                let request = ControllerRequest::AlterPartition(AlterPartitionRequest {
                    broker_id: from,
                    broker_epoch,
                    partitions: vec![AlterPartitionItem {
                        topic_id: tp.topic_id,
                        partition: tp.partition,
                        leader_epoch: sent.leader_epoch,
                        new_isr: sent.new_isr.clone(),
                        partition_epoch: sent.partition_epoch,
                    }],
                });
                let reply = match self.call(request) {
                    Ok(ControllerReply::AlterPartition(results)) => results
                        .first()
                        .map_or(AlterReply::Refused(AlterRefusal::Other), alter_reply),
                    _ => AlterReply::Refused(AlterRefusal::Other),
                };
                self.send(
                    Target::Controller,
                    Target::Node(from),
                    Msg::AlterResponse { sent, reply },
                );
            }
            _ => {}
        }
    }

    fn client_leader(&mut self) -> Option<i32> {
        if self.client.leader.is_none() || self.now - self.client.view_refreshed_ms > 200 {
            let image = self.image();
            let topic = image.topic_by_name(TOPIC)?;
            let leader = topic
                .partitions
                .get(&0)
                .map(|p| p.leader)
                .filter(|l| *l >= 0);
            self.client.leader = leader;
            self.client.view_refreshed_ms = self.now;
        }
        self.client.leader
    }

    fn produce(&mut self) {
        if self.client.producing {
            let timeout_ms = 1_000;
            let now = self.now;
            self.client
                .in_flight
                .retain(|_, (_, sent)| now - *sent < timeout_ms);
            if self.client.in_flight.len() < 10 {
                if let Some(leader) = self.client_leader() {
                    let request = self.client.next_request;
                    let value = self.client.next_value;
                    self.client.next_request += 1;
                    self.client.next_value += 1;
                    self.client.in_flight.insert(request, (value, now));
                    self.stats.produced += 1;
                    self.send(
                        Target::Client,
                        Target::Node(leader),
                        Msg::Produce { request, value },
                    );
                }
            }
            let delay = self.rng.range(1, 4);
            self.schedule(delay, Event::Produce);
        }
    }

    fn consume(&mut self) {
        if let Some(leader) = self.client_leader() {
            let request = self.client.next_request;
            self.client.next_request += 2;
            let waiting = self
                .client
                .listing
                .is_some_and(|(_, sent)| self.now - sent < 500);
            if !waiting {
                self.client.listing = Some((request, self.now));
                self.send(
                    Target::Client,
                    Target::Node(leader),
                    Msg::ListOffsets { request },
                );
            }
            let offset = self.client.position;
            self.send(
                Target::Client,
                Target::Node(leader),
                Msg::ConsumerFetch { offset },
            );
        }
        self.schedule(10, Event::Consume);
    }

    fn client_receive(&mut self, msg: Msg) {
        match msg {
            Msg::ProduceResponse { request, result } => {
                let Some((value, _)) = self.client.in_flight.remove(&request) else {
                    return;
                };
                match result {
                    Ok(offset) => {
                        self.stats.acked += 1;
                        self.checker.acked(self.now, value, offset);
                    }
                    Err(_) => self.client.leader = None,
                }
            }
            Msg::ListOffsetsResponse { request, result } => {
                if self.client.listing.map(|(r, _)| r) != Some(request) {
                    return;
                }
                self.client.listing = None;
                match result {
                    Ok(hw) => self.checker.listed(self.now, hw),
                    Err(_) => self.client.leader = None,
                }
            }
            Msg::ConsumerFetchResponse { offset, result } => match result {
                Ok(records) if offset == self.client.position => {
                    if let Some(last) = records.last() {
                        self.client.position = last.offset + 1;
                    }
                    self.stats.consumed += records.len() as u64;
                    self.checker.consumed(self.now, offset, &records);
                }
                Ok(_) => {}
                Err(_) => self.client.leader = None,
            },
            _ => {}
        }
    }

    fn fault(&mut self) {
        if !self.faults {
            return;
        }
        let id = NODES[self.rng.below(NODES.len() as u64) as usize];
        match self.rng.below(100) {
            0..=34 => {
                if let Some(node) = self.nodes.get_mut(&id) {
                    if node.alive {
                        node.crash(self.params.power_loss);
                        self.stats.crashes += 1;
                        let down = self.rng.range(20, 2_000);
                        self.schedule(down, Event::Restart(id));
                    }
                }
            }
            35..=54 => {
                let pause = self.rng.range(50, 1_500);
                if let Some(node) = self.nodes.get_mut(&id) {
                    node.paused_until_ms = node.paused_until_ms.max(self.now + pause);
                    self.stats.pauses += 1;
                }
            }
            55..=74 => {
                let isolate = self.rng.range(100, 2_000);
                self.isolated_until.insert(id, self.now + isolate);
                self.stats.isolations += 1;
            }
            75..=89 => self.reassign(),
            _ => {}
        }
        let next = self.rng.range(200, 1_200);
        self.schedule(next, Event::Fault);
    }

    /// An operator moves the partition: onto two or three of the nodes in a random order,
    /// or cancels the move in progress. Removed replicas delete their logs once the change
    /// commits; the checker must still find every acknowledged record.
    fn reassign(&mut self) {
        let Some(topic) = self.image().topic_by_name(TOPIC).map(|t| t.name.clone()) else {
            return;
        };
        let target = if self.rng.below(4) == 0 {
            None
        } else {
            let mut pool = NODES.to_vec();
            let mut target = Vec::new();
            let size = 2 + self.rng.below(2) as usize;
            while target.len() < size && !pool.is_empty() {
                let pick = self.rng.below(pool.len() as u64) as usize;
                target.push(pool.remove(pick));
            }
            Some(target)
        };
        let request = ControllerRequest::AlterPartitionReassignments(
            strom_meta::AlterPartitionReassignmentsRequest {
                allow_replication_factor_change: true,
                topics: vec![(topic, vec![(0, target.clone())])],
            },
        );
        if let Ok(ControllerReply::AlterPartitionReassignments(results)) = self.call(request) {
            let accepted = results
                .iter()
                .flat_map(|t| &t.partitions)
                .all(|(_, error)| error.is_none());
            if accepted {
                self.stats.reassignments += 1;
                if self.trace {
                    println!("{:>7} reassign partition 0 onto {target:?}", self.now);
                }
            }
        }
    }

    fn observe(&mut self, id: i32) {
        if let Some(node) = self.nodes.get(&id) {
            self.checker.observe(self.now, node);
        }
    }

    /// After healing: one live leader whose high watermark covers every acknowledged
    /// record at its offset, and every replica identical to it below that.
    fn final_check(&mut self) -> Result<(), String> {
        let image = self.image();
        let part = image
            .topic_by_name(TOPIC)
            .and_then(|t| t.partitions.get(&0))
            .ok_or("the topic is gone")?;
        let leader_id = part.leader;
        let leader = self
            .nodes
            .get(&leader_id)
            .ok_or_else(|| format!("no leader after healing: {part:?}"))?;
        let hw = leader.high_watermark();
        if !leader.alive {
            return Err(format!("leader {leader_id} is not alive after healing"));
        }
        let isr: BTreeSet<i32> = part.isr.iter().copied().collect();
        for (value, offset) in &self.checker.acked {
            if *offset >= hw {
                return Err(format!(
                    "acknowledged value {value} at offset {offset} is above the final high watermark {hw} (leader {leader_id}, isr {isr:?})"
                ));
            }
            let found = leader.log.recs.get(*offset as usize).map(|r| r.value);
            if found != Some(*value) {
                return Err(format!(
                    "acknowledged value {value} at offset {offset} lost: leader {leader_id} has {found:?}"
                ));
            }
        }
        for node in self.nodes.values() {
            let upto = (node.high_watermark().min(hw)) as usize;
            for offset in 0..upto {
                let (a, b) = (node.log.recs.get(offset), leader.log.recs.get(offset));
                if a.map(|r| r.value) != b.map(|r| r.value) {
                    return Err(format!(
                        "node {} and leader {leader_id} differ at offset {offset}: {a:?} vs {b:?}",
                        node.id
                    ));
                }
            }
        }
        if (hw as usize) < self.checker.committed.len() {
            return Err(format!(
                "final high watermark {hw} below what was committed ({})",
                self.checker.committed.len()
            ));
        }
        Ok(())
    }
}

fn incarnation_id(node: i32, incarnation: u64) -> uuid::Uuid {
    uuid::Uuid::from_u128(((node as u128) << 64) | u128::from(incarnation) | 1 << 127)
}

fn heartbeat(broker_id: i32, broker_epoch: i64) -> ControllerRequest {
    ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id,
        broker_epoch,
        want_fence: false,
        want_shutdown: false,
        offline_replicas: Vec::new(),
    })
}

/// The broker's mapping of the controller's AlterPartition answer.
fn alter_reply(result: &AlterPartitionResult) -> AlterReply {
    match &result.error {
        None => AlterReply::Committed {
            leader_epoch: result.leader_epoch,
            partition_epoch: result.partition_epoch,
            isr: result.isr.clone(),
        },
        Some(error) => AlterReply::Refused(match error.code {
            ErrorCode::NotController => AlterRefusal::NotController,
            ErrorCode::FencedLeaderEpoch => AlterRefusal::FencedLeaderEpoch,
            ErrorCode::InvalidUpdateVersion => AlterRefusal::InvalidUpdateVersion,
            _ => AlterRefusal::Other,
        }),
    }
}
