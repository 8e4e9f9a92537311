//! Random command sequences: nothing panics, every request is answered at most once, and
//! group invariants (leader membership, monotonic generation) hold after every step.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use proptest::prelude::*;
use strom_group::*;

#[derive(Debug, Clone)]
enum Op {
    Join { who: usize, fresh: bool },
    Sync { who: usize },
    Heartbeat { who: usize },
    Leave { who: usize },
    Commit { who: usize, offset: i64 },
    Tick { advance_ms: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize, any::<bool>()).prop_map(|(who, fresh)| Op::Join { who, fresh }),
        (0..4usize).prop_map(|who| Op::Sync { who }),
        (0..4usize).prop_map(|who| Op::Heartbeat { who }),
        (0..4usize).prop_map(|who| Op::Leave { who }),
        (0..4usize, 0..1000i64).prop_map(|(who, offset)| Op::Commit { who, offset }),
        (0..12_000i64).prop_map(|advance_ms| Op::Tick { advance_ms }),
    ]
}

struct World {
    coordinator: Coordinator,
    now_ms: i64,
    next_request: u64,
    member_ids: [String; 4],
    generations: [i32; 4],
    open: BTreeSet<u64>,
    answered: BTreeSet<u64>,
}

impl World {
    fn absorb(&mut self, out: Output) {
        for reply in out.replies {
            assert!(self.answered.insert(reply.request_id), "answered twice");
            self.open.remove(&reply.request_id);
            if let Response::JoinGroup(j) = &reply.response {
                if let Some(who) = self.member_ids.iter().position(|m| *m == j.member_id) {
                    if j.error == ErrorCode::None {
                        self.generations[who] = j.generation_id;
                    }
                }
            }
        }
    }

    fn command(&self, op: &Op) -> Option<Command> {
        let id = |who: usize| self.member_ids[who].clone();
        let gen = |who: usize| self.generations[who];
        Some(match *op {
            Op::Join { who, fresh } => Command::JoinGroup(JoinGroup {
                group_id: "g".into(),
                member_id: if fresh { String::new() } else { id(who) },
                group_instance_id: None,
                client_id: format!("c{who}"),
                client_host: "h".into(),
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 20_000,
                protocol_type: "consumer".into(),
                protocols: vec![Protocol {
                    name: "range".into(),
                    metadata: Bytes::new(),
                }],
                require_known_member_id: true,
                supports_skip_assignment: false,
            }),
            Op::Sync { who } => Command::SyncGroup(SyncGroup {
                group_id: "g".into(),
                generation_id: gen(who),
                member_id: id(who),
                group_instance_id: None,
                protocol_type: None,
                protocol_name: None,
                assignments: self
                    .member_ids
                    .iter()
                    .map(|m| (m.clone(), Bytes::from_static(b"a")))
                    .collect(),
            }),
            Op::Heartbeat { who } => Command::Heartbeat(Heartbeat {
                group_id: "g".into(),
                generation_id: gen(who),
                member_id: id(who),
                group_instance_id: None,
            }),
            Op::Leave { who } => Command::LeaveGroup(LeaveGroup {
                group_id: "g".into(),
                members: vec![LeavingMember {
                    member_id: id(who),
                    group_instance_id: None,
                }],
            }),
            Op::Commit { who, offset } => Command::OffsetCommit(OffsetCommit {
                group_id: "g".into(),
                generation_id: gen(who),
                member_id: id(who),
                group_instance_id: None,
                retention_time_ms: -1,
                unknown_group_not_found: false,
                offsets: vec![CommitOffset {
                    topic: "t".into(),
                    partition: 0,
                    offset,
                    leader_epoch: -1,
                    metadata: String::new(),
                }],
            }),
            Op::Tick { .. } => return None,
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_sequences_keep_invariants(ops in proptest::collection::vec(op(), 1..80)) {
        let mut w = World {
            coordinator: Coordinator::new(Config::default()),
            now_ms: 0,
            next_request: 0,
            member_ids: Default::default(),
            generations: [-1; 4],
            open: BTreeSet::new(),
            answered: BTreeSet::new(),
        };
        let mut last_generation = 0;
        let mut log = Vec::new();
        for op in &ops {
            let out = match (op, w.command(op)) {
                (Op::Tick { advance_ms }, _) => {
                    w.now_ms += advance_ms;
                    w.coordinator.tick(w.now_ms)
                }
                (Op::Join { who, .. }, Some(cmd)) => {
                    w.next_request += 1;
                    let out = w.coordinator.handle(w.next_request, cmd, w.now_ms);
                    // Learn ids handed out by MEMBER_ID_REQUIRED or by a join response.
                    for reply in &out.replies {
                        if let Response::JoinGroup(j) = &reply.response {
                            if reply.request_id == w.next_request && !j.member_id.is_empty() {
                                w.member_ids[*who] = j.member_id.clone();
                            }
                        }
                    }
                    w.open.insert(w.next_request);
                    out
                }
                (_, Some(cmd)) => {
                    w.next_request += 1;
                    w.open.insert(w.next_request);
                    w.coordinator.handle(w.next_request, cmd, w.now_ms)
                }
                (_, None) => Output::default(),
            };
            log.extend(out.records.iter().cloned());
            w.absorb(out);
            if let Some(g) = w.coordinator.group("g") {
                prop_assert!(g.generation_id >= last_generation);
                last_generation = g.generation_id;
                let members: BTreeMap<_, _> =
                    g.members.iter().map(|m| (m.member_id.clone(), ())).collect();
                if matches!(g.state, GroupState::Stable | GroupState::CompletingRebalance) {
                    let leader = g.leader_id.clone().unwrap_or_default();
                    prop_assert!(members.contains_key(&leader), "leader {leader} not a member");
                }
                if g.state == GroupState::Empty {
                    prop_assert!(g.members.is_empty());
                }
            }
        }
        // Every record the run produced decodes and replays.
        let mut replayed = Coordinator::new(Config::default());
        prop_assert!(replayed.load(&log, w.now_ms).is_ok());
        if let (Some(a), Some(b)) = (replayed.group("g"), w.coordinator.group("g")) {
            prop_assert_eq!(a.offsets, b.offsets);
        }
    }
}
