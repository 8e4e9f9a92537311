//! Deterministic tests of every group transition and error code, driven through `check`.

use bytes::Bytes;
use strom_group::*;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

struct Harness {
    coordinator: Coordinator,
    now_ms: i64,
    next_request: u64,
    log: Vec<GroupRecord>,
}

fn harness() -> Harness {
    harness_with(Config::default())
}

fn harness_with(config: Config) -> Harness {
    Harness {
        coordinator: Coordinator::new(config),
        now_ms: 1_000_000,
        next_request: 0,
        log: Vec::new(),
    }
}

fn protocols(names: &[&str]) -> Vec<Protocol> {
    names
        .iter()
        .map(|n| Protocol {
            name: (*n).to_owned(),
            metadata: Bytes::from(format!("meta-{n}")),
        })
        .collect()
}

fn join_cmd(member_id: &str, instance: Option<&str>, names: &[&str]) -> Command {
    Command::JoinGroup(JoinGroup {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: instance.map(str::to_owned),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: protocols(names),
        require_known_member_id: true,
        supports_skip_assignment: false,
    })
}

fn sync_cmd(member_id: &str, generation_id: i32, assignments: Vec<(String, Bytes)>) -> Command {
    Command::SyncGroup(SyncGroup {
        group_id: "g".into(),
        generation_id,
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: None,
        assignments,
    })
}

fn heartbeat_cmd(member_id: &str, generation_id: i32) -> Command {
    Command::Heartbeat(Heartbeat {
        group_id: "g".into(),
        generation_id,
        member_id: member_id.into(),
        group_instance_id: None,
    })
}

fn commit_cmd(member_id: &str, generation_id: i32, offset: i64) -> Command {
    Command::OffsetCommit(OffsetCommit {
        group_id: "g".into(),
        generation_id,
        member_id: member_id.into(),
        group_instance_id: None,
        retention_time_ms: -1,
        unknown_group_not_found: false,
        offsets: vec![CommitOffset {
            topic: "t".into(),
            partition: 0,
            offset,
            leader_epoch: 3,
            metadata: "m".into(),
        }],
    })
}

impl Harness {
    fn send(&mut self, command: Command) -> (u64, Output) {
        self.next_request += 1;
        let out = self
            .coordinator
            .handle(self.next_request, command, self.now_ms);
        self.log.extend(out.records.iter().cloned());
        (self.next_request, out)
    }

    fn tick(&mut self, advance_ms: i64) -> Output {
        self.now_ms += advance_ms;
        let out = self.coordinator.tick(self.now_ms);
        self.log.extend(out.records.iter().cloned());
        out
    }

    fn state(&self) -> GroupState {
        self.coordinator.group("g").map(|g| g.state).unwrap()
    }

    /// KIP-394 round trip; returns the assigned member id. The member is then parked.
    fn new_member(&mut self, instance: Option<&str>, names: &[&str]) -> (String, u64, Output) {
        let (first, out) = self.send(join_cmd("", None, names));
        let Response::JoinGroup(r) = check(&out, first, ErrorCode::MemberIdRequired) else {
            unreachable!()
        };
        let (request, out) = self.send(join_cmd(&r.member_id, instance, names));
        (r.member_id, request, out)
    }

    /// Each arrival during the initial delay extends it by another delay, up to the
    /// rebalance timeout; ticks (boundedly) until the join phase completes.
    fn until_joined(&mut self) -> Output {
        for _ in 0..20 {
            let out = self.tick(3_000);
            if !out.replies.is_empty() {
                return out;
            }
        }
        panic!("join never completed");
    }

    /// Forms a Stable group of `n` members (generation 1); returns (leader, member ids).
    fn stable_group(&mut self, n: usize) -> (String, Vec<String>) {
        let mut members = Vec::new();
        for _ in 0..n {
            let (id, _, out) = self.new_member(None, &["range"]);
            assert!(out.replies.is_empty(), "initial delay parks joins");
            members.push(id);
        }
        let out = self.until_joined();
        assert_eq!(out.replies.len(), n);
        let leader = join_ok(&out.replies[0].response).leader.clone();
        let assignments = members
            .iter()
            .map(|m| (m.clone(), Bytes::from(format!("a-{m}"))))
            .collect();
        let (request, out) = self.send(sync_cmd(&leader, 1, assignments));
        check(&out, request, ErrorCode::None);
        for m in members.iter().filter(|m| **m != leader) {
            let (request, out) = self.send(sync_cmd(m, 1, vec![]));
            check(&out, request, ErrorCode::None);
        }
        assert_eq!(self.state(), GroupState::Stable);
        (leader, members)
    }
}

fn error_of(response: &Response) -> ErrorCode {
    match response {
        Response::JoinGroup(r) => r.error,
        Response::SyncGroup(r) => r.error,
        Response::Heartbeat(e) => *e,
        Response::LeaveGroup(r) => r.error,
        Response::OffsetCommit(rs) => rs.first().map_or(ErrorCode::None, |r| r.error),
        Response::OffsetFetch(r) => r.error,
        Response::DescribeGroup(r) => r.error,
        Response::ListGroups(r) => r.error,
        Response::DeleteGroup(e) => *e,
        Response::OffsetDelete(r) => r.error,
        Response::ConsumerGroupHeartbeat(r) => r.error.as_ref().map_or(ErrorCode::None, |e| e.code),
        Response::ConsumerGroupDescribe(r) => r.error.as_ref().map_or(ErrorCode::None, |e| e.code),
        Response::StreamsGroupHeartbeat(r) => r.error.as_ref().map_or(ErrorCode::None, |e| e.code),
        Response::StreamsGroupDescribe(r) => r.error.as_ref().map_or(ErrorCode::None, |e| e.code),
        Response::TxnOffsetCommit(rs) => rs.first().map_or(ErrorCode::None, |r| r.error),
        Response::TxnMarker => ErrorCode::None,
    }
}

/// Asserts that `out` answers `request` with `expected` and returns that response.
fn check(out: &Output, request: u64, expected: ErrorCode) -> Response {
    let reply = out
        .replies
        .iter()
        .find(|r| r.request_id == request)
        .unwrap_or_else(|| panic!("no reply to {request} in {out:?}"));
    assert_eq!(error_of(&reply.response), expected, "{:?}", reply.response);
    reply.response.clone()
}

fn join_ok(response: &Response) -> &JoinGroupResponse {
    match response {
        Response::JoinGroup(r) => {
            assert_eq!(r.error, ErrorCode::None);
            r
        }
        other => panic!("not a join response: {other:?}"),
    }
}

#[test]
fn member_id_required_then_join_completes_after_initial_delay() {
    let mut h = harness();
    let (id, request, out) = h.new_member(None, &["range"]);
    assert!(id.starts_with("client-"));
    assert!(out.replies.is_empty());
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert!(h.tick(2_999).replies.is_empty());
    let out = h.tick(1);
    let Response::JoinGroup(r) = check(&out, request, ErrorCode::None) else {
        unreachable!()
    };
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader, id);
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].metadata, Bytes::from("meta-range"));
    assert_eq!(h.state(), GroupState::CompletingRebalance);
}

#[test]
fn initial_delay_extends_while_members_arrive() {
    let mut h = harness();
    let (_, a, _) = h.new_member(None, &["range"]);
    h.tick(2_000);
    let (_, b, _) = h.new_member(None, &["range"]);
    // The first deadline passes, but someone joined during it: extended by another delay.
    assert!(h.tick(1_000).replies.is_empty());
    let out = h.tick(3_000);
    check(&out, a, ErrorCode::None);
    check(&out, b, ErrorCode::None);
    let leaders: Vec<_> = out
        .replies
        .iter()
        .filter(|r| !join_ok(&r.response).members.is_empty())
        .collect();
    assert_eq!(leaders.len(), 1, "only the leader gets the member list");
}

#[test]
fn concurrent_rejoins_complete_without_unknown_member() {
    let mut h = harness();
    let (_, members) = h.stable_group(2);
    let (newcomer, c, out) = h.new_member(None, &["range"]);
    assert!(out.replies.is_empty());
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let (hb, out) = h.send(heartbeat_cmd(&members[0], 1));
    check(&out, hb, ErrorCode::RebalanceInProgress);
    let (a, out) = h.send(join_cmd(&members[0], None, &["range"]));
    assert!(out.replies.is_empty(), "waits for the other member");
    let (b, out) = h.send(join_cmd(&members[1], None, &["range"]));
    for request in [a, b, c] {
        let Response::JoinGroup(r) = check(&out, request, ErrorCode::None) else {
            unreachable!()
        };
        assert_eq!(r.generation_id, 2);
    }
    assert_eq!(h.coordinator.group("g").unwrap().members.len(), 3);
    assert!(h
        .coordinator
        .group("g")
        .unwrap()
        .members
        .iter()
        .any(|m| m.member_id == newcomer));
}

#[test]
fn rebalance_timeout_removes_members_that_did_not_rejoin() {
    let mut h = harness();
    let (_, members) = h.stable_group(2);
    let (a, out) = h.send(join_cmd(&members[0], None, &["range", "roundrobin"]));
    assert!(out.replies.is_empty());
    // The other member keeps heartbeating (so its session lives) but never rejoins.
    h.tick(5_000);
    let (hb, out) = h.send(heartbeat_cmd(&members[1], 1));
    check(&out, hb, ErrorCode::RebalanceInProgress);
    let out = h.tick(i64::from(REBALANCE_MS));
    let Response::JoinGroup(r) = check(&out, a, ErrorCode::None) else {
        unreachable!()
    };
    assert_eq!(r.generation_id, 2);
    assert_eq!(r.leader, members[0]);
    let (hb, out) = h.send(heartbeat_cmd(&members[1], 2));
    check(&out, hb, ErrorCode::UnknownMemberId);
}

#[test]
fn inconsistent_protocol_and_unknown_member() {
    let mut h = harness();
    h.stable_group(1);
    let (r, out) = h.send(join_cmd("", None, &["roundrobin"]));
    check(&out, r, ErrorCode::InconsistentGroupProtocol);
    let mut wrong_type = join_cmd("", None, &["range"]);
    if let Command::JoinGroup(j) = &mut wrong_type {
        j.protocol_type = "connect".into();
    }
    let (r, out) = h.send(wrong_type);
    check(&out, r, ErrorCode::InconsistentGroupProtocol);
    let (r, out) = h.send(join_cmd("nobody", None, &["range"]));
    check(&out, r, ErrorCode::UnknownMemberId);
    let mut other_group = join_cmd("nobody", None, &["range"]);
    if let Command::JoinGroup(j) = &mut other_group {
        j.group_id = "missing".into();
    }
    let (r, out) = h.send(other_group);
    check(&out, r, ErrorCode::UnknownMemberId);
}

#[test]
fn invalid_session_timeout_and_group_id() {
    let mut h = harness();
    let mut bad = join_cmd("", None, &["range"]);
    if let Command::JoinGroup(j) = &mut bad {
        j.session_timeout_ms = 100;
    }
    let (r, out) = h.send(bad);
    check(&out, r, ErrorCode::InvalidSessionTimeout);
    let mut bad = join_cmd("", None, &["range"]);
    if let Command::JoinGroup(j) = &mut bad {
        j.group_id = String::new();
    }
    let (r, out) = h.send(bad);
    check(&out, r, ErrorCode::InvalidGroupId);
    assert!(h.coordinator.group("g").is_none());
}

#[test]
fn group_max_size_reached() {
    let mut h = harness_with(Config {
        group_max_size: 1,
        ..Config::default()
    });
    h.stable_group(1);
    let (r, out) = h.send(join_cmd("", None, &["range"]));
    check(&out, r, ErrorCode::GroupMaxSizeReached);
}

#[test]
fn protocol_chosen_by_vote() {
    let mut h = harness();
    let (_, a, _) = h.new_member(None, &["range", "roundrobin"]);
    h.new_member(None, &["roundrobin", "range"]);
    h.new_member(None, &["roundrobin", "sticky", "range"]);
    let out = h.until_joined();
    let Response::JoinGroup(r) = check(&out, a, ErrorCode::None) else {
        unreachable!()
    };
    assert_eq!(r.protocol_name.as_deref(), Some("roundrobin"));
}

#[test]
fn sync_delivers_leader_assignments_to_waiting_followers() {
    let mut h = harness();
    let (_, a, _) = h.new_member(None, &["range"]);
    let (_, b, _) = h.new_member(None, &["range"]);
    let out = h.until_joined();
    let ra = join_ok(&check(&out, a, ErrorCode::None)).clone();
    let rb = join_ok(&check(&out, b, ErrorCode::None)).clone();
    let (leader, follower) = if ra.leader == ra.member_id {
        (ra, rb)
    } else {
        (rb, ra)
    };
    let (f, out) = h.send(sync_cmd(&follower.member_id, 1, vec![]));
    assert!(out.replies.is_empty(), "follower waits for the leader");
    let (r, out) = h.send(sync_cmd(&leader.member_id, 0, vec![]));
    check(&out, r, ErrorCode::IllegalGeneration);
    let (r, out) = h.send(sync_cmd("ghost", 1, vec![]));
    check(&out, r, ErrorCode::UnknownMemberId);
    let assignments = vec![
        (leader.member_id.clone(), Bytes::from("for-leader")),
        (follower.member_id.clone(), Bytes::from("for-follower")),
    ];
    let (l, out) = h.send(sync_cmd(&leader.member_id, 1, assignments));
    assert_eq!(out.records.len(), 1, "group metadata persisted");
    let Response::SyncGroup(rl) = check(&out, l, ErrorCode::None) else {
        unreachable!()
    };
    let Response::SyncGroup(rf) = check(&out, f, ErrorCode::None) else {
        unreachable!()
    };
    assert_eq!(rl.assignment, Bytes::from("for-leader"));
    assert_eq!(rf.assignment, Bytes::from("for-follower"));
    assert_eq!(rf.protocol_name.as_deref(), Some("range"));
    assert_eq!(h.state(), GroupState::Stable);
    // A late follower sync in Stable gets its assignment at once.
    let (r, out) = h.send(sync_cmd(&follower.member_id, 1, vec![]));
    let Response::SyncGroup(r) = check(&out, r, ErrorCode::None) else {
        unreachable!()
    };
    assert_eq!(r.assignment, Bytes::from("for-follower"));
}

#[test]
fn sync_during_rebalance_and_rebalance_during_sync() {
    let mut h = harness();
    let (_, a, _) = h.new_member(None, &["range"]);
    let (_, b, _) = h.new_member(None, &["range"]);
    let out = h.until_joined();
    let ra = join_ok(&check(&out, a, ErrorCode::None)).clone();
    let rb = join_ok(&check(&out, b, ErrorCode::None)).clone();
    let follower = if ra.leader == ra.member_id { rb } else { ra };
    let (f, _) = h.send(sync_cmd(&follower.member_id, 1, vec![]));
    // A newcomer during CompletingRebalance sends the waiting follower back to rejoin.
    let (_, _, out) = h.new_member(None, &["range"]);
    check(&out, f, ErrorCode::RebalanceInProgress);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let (r, out) = h.send(sync_cmd(&follower.member_id, 1, vec![]));
    check(&out, r, ErrorCode::RebalanceInProgress);
}

#[test]
fn heartbeat_errors() {
    let mut h = harness();
    let (leader, _) = h.stable_group(2);
    let (r, out) = h.send(heartbeat_cmd(&leader, 1));
    check(&out, r, ErrorCode::None);
    let (r, out) = h.send(heartbeat_cmd(&leader, 7));
    check(&out, r, ErrorCode::IllegalGeneration);
    let (r, out) = h.send(heartbeat_cmd("ghost", 1));
    check(&out, r, ErrorCode::UnknownMemberId);
}

#[test]
fn leader_rejoin_in_stable_triggers_rebalance() {
    let mut h = harness();
    let (leader, members) = h.stable_group(2);
    let follower = members.iter().find(|m| **m != leader).unwrap().clone();
    // A follower rejoining unchanged just gets the current generation back.
    let (r, out) = h.send(join_cmd(&follower, None, &["range"]));
    let Response::JoinGroup(j) = check(&out, r, ErrorCode::None) else {
        unreachable!()
    };
    assert_eq!(j.generation_id, 1);
    assert_eq!(h.state(), GroupState::Stable);
    let (_, out) = h.send(join_cmd(&leader, None, &["range"]));
    assert!(out.replies.is_empty());
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn batched_leave_empties_the_group() {
    let mut h = harness();
    let (_, members) = h.stable_group(2);
    let leave = Command::LeaveGroup(LeaveGroup {
        group_id: "g".into(),
        members: vec![
            LeavingMember {
                member_id: members[0].clone(),
                group_instance_id: None,
            },
            LeavingMember {
                member_id: "ghost".into(),
                group_instance_id: None,
            },
            LeavingMember {
                member_id: members[1].clone(),
                group_instance_id: None,
            },
        ],
    });
    let (r, out) = h.send(leave);
    let Response::LeaveGroup(l) = check(&out, r, ErrorCode::None) else {
        unreachable!()
    };
    let codes: Vec<_> = l.members.iter().map(|(_, e)| *e).collect();
    assert_eq!(
        codes,
        vec![ErrorCode::None, ErrorCode::UnknownMemberId, ErrorCode::None]
    );
    let g = h.coordinator.group("g").unwrap();
    assert_eq!(g.state, GroupState::Empty);
    assert_eq!(g.generation_id, 2);
    assert_eq!(out.records.len(), 1, "the empty group is persisted");
}

#[test]
fn session_expiry_evicts_and_rebalances() {
    let mut h = harness();
    let (_, members) = h.stable_group(2);
    h.tick(i64::from(SESSION_MS) - 1_000);
    let (r, out) = h.send(heartbeat_cmd(&members[0], 1));
    check(&out, r, ErrorCode::None);
    h.tick(1_000);
    assert_eq!(h.coordinator.group("g").unwrap().members.len(), 1);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let (r, out) = h.send(heartbeat_cmd(&members[0], 1));
    check(&out, r, ErrorCode::RebalanceInProgress);
    let (r, out) = h.send(join_cmd(&members[0], None, &["range"]));
    let Response::JoinGroup(j) = check(&out, r, ErrorCode::None) else {
        unreachable!()
    };
    assert_eq!(j.generation_id, 2);
    let (r, out) = h.send(heartbeat_cmd(&members[1], 1));
    check(&out, r, ErrorCode::UnknownMemberId);
}

#[test]
fn pending_member_expires() {
    let mut h = harness();
    let (r, out) = h.send(join_cmd("", None, &["range"]));
    let Response::JoinGroup(j) = check(&out, r, ErrorCode::MemberIdRequired) else {
        unreachable!()
    };
    h.tick(i64::from(SESSION_MS));
    let (r, out) = h.send(join_cmd(&j.member_id, None, &["range"]));
    check(&out, r, ErrorCode::UnknownMemberId);
}

#[test]
fn static_member_rejoin_replaces_without_rebalance() {
    let mut h = harness();
    let (_, a, _) = h.new_member(Some("i1"), &["range"]);
    let out = h.tick(3_000);
    let old = join_ok(&check(&out, a, ErrorCode::None)).member_id.clone();
    let (r, out) = h.send(sync_cmd(&old, 1, vec![(old.clone(), Bytes::from("x"))]));
    check(&out, r, ErrorCode::None);
    // Restart: static members join with an empty member id and skip MEMBER_ID_REQUIRED.
    let (r, out) = h.send(join_cmd("", Some("i1"), &["range"]));
    let Response::JoinGroup(j) = check(&out, r, ErrorCode::None) else {
        unreachable!()
    };
    assert_ne!(j.member_id, old);
    let old_id_for_join = old.clone();
    assert_eq!(j.generation_id, 1);
    // Kafka: before v9 the leader field names the replaced leader, and no members.
    assert_eq!(j.leader, old);
    assert!(j.members.is_empty());
    assert!(!j.skip_assignment);
    assert_eq!(out.records.len(), 1);
    assert_eq!(h.state(), GroupState::Stable);
    let stale = Command::Heartbeat(Heartbeat {
        group_id: "g".into(),
        generation_id: 1,
        member_id: old,
        group_instance_id: Some("i1".into()),
    });
    let (r, out) = h.send(stale);
    check(&out, r, ErrorCode::FencedInstanceId);
    let (r, out) = h.send(join_cmd(&old_id_for_join, Some("i1"), &["range"]));
    check(&out, r, ErrorCode::FencedInstanceId);
    let (r, out) = h.send(sync_cmd(&j.member_id, 1, vec![]));
    let Response::SyncGroup(s) = check(&out, r, ErrorCode::None) else {
        unreachable!()
    };
    assert_eq!(s.assignment, Bytes::from("x"), "assignment kept");
    let leave = Command::LeaveGroup(LeaveGroup {
        group_id: "g".into(),
        members: vec![
            LeavingMember {
                member_id: old_id_for_join.clone(),
                group_instance_id: Some("i1".into()),
            },
            LeavingMember {
                member_id: String::new(),
                group_instance_id: Some("i1".into()),
            },
        ],
    });
    let (r, out) = h.send(leave);
    let Response::LeaveGroup(l) = check(&out, r, ErrorCode::None) else {
        unreachable!()
    };
    let codes: Vec<_> = l.members.iter().map(|(_, e)| *e).collect();
    assert_eq!(codes, vec![ErrorCode::FencedInstanceId, ErrorCode::None]);
    assert_eq!(h.state(), GroupState::Empty);
}

#[test]
fn pending_members_are_bounded() {
    let mut h = harness_with(Config {
        group_max_size: 2,
        ..Config::default()
    });
    for _ in 0..2 {
        let (r, out) = h.send(join_cmd("", None, &["range"]));
        check(&out, r, ErrorCode::MemberIdRequired);
    }
    let (r, out) = h.send(join_cmd("", None, &["range"]));
    check(&out, r, ErrorCode::GroupMaxSizeReached);
}

#[test]
fn duplicate_join_answers_the_older_request() {
    let mut h = harness();
    let (id, first, _) = h.new_member(None, &["range"]);
    let (second, out) = h.send(join_cmd(&id, None, &["range"]));
    check(&out, first, ErrorCode::RebalanceInProgress);
    let out = h.until_joined();
    check(&out, second, ErrorCode::None);
}

#[test]
fn static_member_rejoin_with_new_protocols_rebalances() {
    let mut h = harness();
    let (_, a, _) = h.new_member(Some("i1"), &["range"]);
    let out = h.tick(3_000);
    let old = join_ok(&check(&out, a, ErrorCode::None)).member_id.clone();
    h.send(sync_cmd(&old, 1, vec![]));
    assert_eq!(h.state(), GroupState::Stable);
    // Adding a less preferred protocol changes nothing (Kafka compares the protocol the
    // group would select): no rebalance.
    let (r, out) = h.send(join_cmd("", Some("i1"), &["range", "roundrobin"]));
    let Response::JoinGroup(j) = check(&out, r, ErrorCode::None) else {
        unreachable!()
    };
    assert_eq!(j.generation_id, 1);
    assert_eq!(h.state(), GroupState::Stable);
    // Preferring another protocol does; the only member rejoined, so it completes at once.
    let (r, out) = h.send(join_cmd("", Some("i1"), &["roundrobin", "range"]));
    let Response::JoinGroup(j) = check(&out, r, ErrorCode::None) else {
        unreachable!()
    };
    assert_eq!(j.generation_id, 2);
    assert_eq!(h.state(), GroupState::CompletingRebalance);
}

#[test]
fn offset_commit_generation_checks() {
    let mut h = harness();
    let (leader, _) = h.stable_group(2);
    let (r, out) = h.send(commit_cmd(&leader, 1, 42));
    check(&out, r, ErrorCode::None);
    assert_eq!(out.records.len(), 1);
    let (r, out) = h.send(commit_cmd(&leader, 0, 43));
    check(&out, r, ErrorCode::IllegalGeneration);
    assert!(out.records.is_empty());
    let (r, out) = h.send(commit_cmd("ghost", 1, 43));
    check(&out, r, ErrorCode::UnknownMemberId);
    let (r, out) = h.send(commit_cmd("", -1, 43));
    check(&out, r, ErrorCode::UnknownMemberId);
    // A newcomer starts a rebalance: commits of the current generation are still fine.
    h.new_member(None, &["range"]);
    let (r, out) = h.send(commit_cmd(&leader, 1, 44));
    check(&out, r, ErrorCode::None);
    let fetch = Command::OffsetFetch(OffsetFetch {
        group_id: "g".into(),
        partitions: Some(vec![("t".into(), 0), ("t".into(), 1)]),
        require_stable: false,
        member_id: None,
        member_epoch: -1,
    });
    let (r, out) = h.send(fetch);
    let Response::OffsetFetch(f) = check(&out, r, ErrorCode::None) else {
        unreachable!()
    };
    assert_eq!(f.partitions[0].offset, 44);
    assert_eq!(f.partitions[0].leader_epoch, 3);
    assert_eq!(f.partitions[0].metadata, "m");
    assert_eq!(f.partitions[1].offset, -1);
}

#[test]
fn offset_commit_rejected_while_completing_rebalance() {
    let mut h = harness();
    let (_, a, _) = h.new_member(None, &["range"]);
    let out = h.tick(3_000);
    let id = join_ok(&check(&out, a, ErrorCode::None)).member_id.clone();
    let (r, out) = h.send(commit_cmd(&id, 1, 1));
    check(&out, r, ErrorCode::RebalanceInProgress);
}

#[test]
fn simple_commits_for_groups_without_members() {
    let mut h = harness();
    let (r, out) = h.send(commit_cmd("", -1, 7));
    check(&out, r, ErrorCode::None);
    let (r, out) = h.send(commit_cmd("someone", 3, 8));
    check(&out, r, ErrorCode::UnknownMemberId);
    let mut big = commit_cmd("", -1, 9);
    if let Command::OffsetCommit(c) = &mut big {
        c.offsets[0].metadata = "x".repeat(5_000);
    }
    let (r, out) = h.send(big);
    check(&out, r, ErrorCode::OffsetMetadataTooLarge);
    let fetch_all = Command::OffsetFetch(OffsetFetch {
        group_id: "g".into(),
        partitions: None,
        require_stable: true,
        member_id: None,
        member_epoch: -1,
    });
    let (r, out) = h.send(fetch_all);
    let Response::OffsetFetch(f) = check(&out, r, ErrorCode::None) else {
        unreachable!()
    };
    assert_eq!(f.partitions.len(), 1);
    assert_eq!(f.partitions[0].offset, 7);
    let mut missing = commit_cmd("m", 1, 1);
    if let Command::OffsetCommit(c) = &mut missing {
        c.group_id = "other".into();
    }
    let (r, out) = h.send(missing);
    check(&out, r, ErrorCode::IllegalGeneration);
}

#[test]
fn replay_rebuilds_the_same_state() {
    let mut h = harness();
    let (leader, _) = h.stable_group(3);
    h.send(commit_cmd(&leader, 1, 100));
    let mut simple = commit_cmd("", -1, 5);
    if let Command::OffsetCommit(c) = &mut simple {
        c.group_id = "simple".into();
    }
    h.send(simple);
    let mut reloaded = Coordinator::new(Config::default());
    reloaded.load(&h.log, h.now_ms).unwrap();
    for id in ["g", "simple"] {
        assert_eq!(reloaded.group(id), h.coordinator.group(id), "group {id}");
    }
    // The reloaded leader can keep working in the same generation.
    let mut cmd = heartbeat_cmd(&leader, 1);
    if let Command::Heartbeat(hb) = &mut cmd {
        hb.group_id = "g".into();
    }
    let out = reloaded.handle(1, cmd, h.now_ms);
    check(&out, 1, ErrorCode::None);
}

#[test]
fn java_string_hash_vectors() {
    assert_eq!(java_string_hash(""), 0);
    assert_eq!(java_string_hash("a"), 97);
    assert_eq!(java_string_hash("hello"), 99_162_322);
    assert_eq!(java_string_hash("Hello World"), -862_545_276);
    assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    // Non-BMP characters hash as their two UTF-16 surrogates.
    assert_eq!(java_string_hash("\u{1F600}"), 0xd83d * 31 + 0xde00);
    assert_eq!(coordinator_partition("polygenelubricants", 50), 0);
    assert_eq!(coordinator_partition("hello", 50), 99_162_322 % 50);
    assert_eq!(
        coordinator_partition("Hello World", 50),
        ((-862_545_276i32 & 0x7fff_ffff) as u32) % 50
    );
    assert_eq!(coordinator_partition("x", 0), 0);
}

#[test]
fn leader_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    let mut h = harness();
    let (_, a, _) = h.new_member(None, &["range"]);
    let (_, b, _) = h.new_member(None, &["range"]);
    let out = h.until_joined();
    let ra = join_ok(&check(&out, a, ErrorCode::None)).clone();
    let rb = join_ok(&check(&out, b, ErrorCode::None)).clone();
    let (leader, follower) = if ra.leader == ra.member_id {
        (ra, rb)
    } else {
        (rb, ra)
    };
    let (f, _) = h.send(sync_cmd(&follower.member_id, 1, vec![]));
    let mut answered = None;
    for _ in 0..7 {
        if answered.is_some() {
            break;
        }
        let (r, out) = h.send(heartbeat_cmd(&leader.member_id, 1));
        check(&out, r, ErrorCode::None);
        let out = h.tick(5_000);
        if let Some(reply) = out.replies.iter().find(|r| r.request_id == f) {
            answered = Some(reply.response.clone());
        }
    }
    assert_eq!(
        answered.map(|r| error_of(&r)),
        Some(ErrorCode::RebalanceInProgress),
        "the waiting follower is sent back to rejoin"
    );
    let g = h.coordinator.group("g").unwrap();
    assert_eq!(g.members.len(), 1);
    assert_eq!(g.members[0].member_id, follower.member_id);
}

// ---- group tooling APIs, offset expiry (KIP-211) ----

/// A ConsumerProtocolSubscription v1 naming `topics`.
fn subscription(topics: &[&str]) -> Bytes {
    let mut b = 1i16.to_be_bytes().to_vec();
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes()); // user data
    b.extend_from_slice(&0i32.to_be_bytes()); // owned partitions
    Bytes::from(b)
}

/// Forms a Stable one-member group of `protocol_type` subscribed to `topics`.
fn subscribed_group(h: &mut Harness, protocol_type: &str, topics: &[&str]) -> String {
    let join = |member_id: &str| {
        Command::JoinGroup(JoinGroup {
            group_id: "g".into(),
            member_id: member_id.into(),
            group_instance_id: None,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            protocol_type: protocol_type.into(),
            protocols: vec![Protocol {
                name: "range".into(),
                metadata: subscription(topics),
            }],
            require_known_member_id: true,
            supports_skip_assignment: false,
        })
    };
    let (r, out) = h.send(join(""));
    let Response::JoinGroup(first) = check(&out, r, ErrorCode::MemberIdRequired) else {
        unreachable!()
    };
    h.send(join(&first.member_id));
    h.until_joined();
    let mut sync = sync_cmd(
        &first.member_id,
        1,
        vec![(first.member_id.clone(), Bytes::from("a"))],
    );
    if let Command::SyncGroup(s) = &mut sync {
        s.protocol_type = Some(protocol_type.into());
    }
    let (r, out) = h.send(sync);
    check(&out, r, ErrorCode::None);
    assert_eq!(h.state(), GroupState::Stable);
    first.member_id
}

fn commit_to(topic: &str, member_id: &str, generation_id: i32) -> Command {
    let mut c = commit_cmd(member_id, generation_id, 11);
    if let Command::OffsetCommit(oc) = &mut c {
        oc.offsets[0].topic = topic.into();
    }
    c
}

fn describe(h: &mut Harness, group_id: &str) -> DescribedGroup {
    let (r, out) = h.send(Command::DescribeGroup(DescribeGroup {
        group_id: group_id.into(),
    }));
    assert!(out.records.is_empty());
    match &out
        .replies
        .iter()
        .find(|x| x.request_id == r)
        .unwrap()
        .response
    {
        Response::DescribeGroup(d) => d.clone(),
        other => panic!("{other:?}"),
    }
}

fn list(h: &mut Harness, states: &[&str], types: &[&str]) -> Vec<ListedGroup> {
    let (r, out) = h.send(Command::ListGroups(ListGroups {
        states: states.iter().map(|s| s.to_string()).collect(),
        types: types.iter().map(|s| s.to_string()).collect(),
    }));
    let Response::ListGroups(l) = check(&out, r, ErrorCode::None) else {
        unreachable!()
    };
    l.groups
}

fn delete_group(h: &mut Harness, group_id: &str) -> (ErrorCode, Output) {
    let (r, out) = h.send(Command::DeleteGroup(DeleteGroup {
        group_id: group_id.into(),
    }));
    let Response::DeleteGroup(e) = out
        .replies
        .iter()
        .find(|x| x.request_id == r)
        .unwrap()
        .response
    else {
        unreachable!()
    };
    (e, out)
}

fn delete_offsets(h: &mut Harness, partitions: &[(&str, i32)]) -> (OffsetDeleteResponse, Output) {
    let (r, out) = h.send(Command::OffsetDelete(OffsetDelete {
        group_id: "g".into(),
        partitions: partitions
            .iter()
            .map(|(t, p)| (t.to_string(), *p))
            .collect(),
    }));
    let Response::OffsetDelete(d) = out
        .replies
        .iter()
        .find(|x| x.request_id == r)
        .unwrap()
        .response
        .clone()
    else {
        unreachable!()
    };
    (d, out)
}

fn tombstones(out: &Output) -> usize {
    out.records.iter().filter(|r| r.value.is_none()).count()
}

#[test]
fn describe_unknown_group_is_dead_and_not_found() {
    let mut h = harness();
    let d = describe(&mut h, "nope");
    assert_eq!(d.error, ErrorCode::GroupIdNotFound);
    assert_eq!(d.state, "Dead");
    assert!(d.members.is_empty());
}

#[test]
fn describe_shows_metadata_and_assignment_only_when_stable() {
    let mut h = harness();
    let member = subscribed_group(&mut h, "consumer", &["t"]);
    let d = describe(&mut h, "g");
    assert_eq!(d.error, ErrorCode::None);
    assert_eq!(d.state, "Stable");
    assert_eq!(d.protocol_type, "consumer");
    assert_eq!(d.protocol_data, "range");
    assert_eq!(d.members.len(), 1);
    let m = &d.members[0];
    assert_eq!(m.member_id, member);
    assert_eq!(m.client_id, "client");
    assert_eq!(m.client_host, "/127.0.0.1");
    assert_eq!(m.metadata, subscription(&["t"]));
    assert_eq!(m.assignment, Bytes::from("a"));
    // A second member starts a rebalance: no protocol, metadata or assignment (as Kafka).
    h.new_member(None, &["range"]);
    let d = describe(&mut h, "g");
    assert_eq!(d.state, "PreparingRebalance");
    assert_eq!(d.protocol_data, "");
    assert!(d
        .members
        .iter()
        .all(|m| m.metadata.is_empty() && m.assignment.is_empty()));
}

#[test]
fn list_groups_filters_by_state_and_type_case_insensitively() {
    let mut h = harness();
    subscribed_group(&mut h, "consumer", &["t"]);
    let mut simple = commit_cmd("", -1, 1);
    if let Command::OffsetCommit(c) = &mut simple {
        c.group_id = "simple".into();
    }
    h.send(simple);
    let all = list(&mut h, &[], &[]);
    assert_eq!(all.len(), 2);
    let g = all.iter().find(|g| g.group_id == "g").unwrap();
    assert_eq!(
        (g.state.as_str(), g.protocol_type.as_str()),
        ("Stable", "consumer")
    );
    assert_eq!(g.group_type, "classic");
    let s = all.iter().find(|g| g.group_id == "simple").unwrap();
    assert_eq!((s.state.as_str(), s.protocol_type.as_str()), ("Empty", ""));
    let empty = list(&mut h, &["empty"], &[]);
    assert_eq!(empty.len(), 1);
    assert_eq!(empty[0].group_id, "simple");
    assert_eq!(list(&mut h, &["STABLE", "Empty"], &["Classic"]).len(), 2);
    assert!(list(&mut h, &[], &["consumer"]).is_empty());
    assert!(list(&mut h, &["Dead"], &[]).is_empty());
}

#[test]
fn delete_groups_errors_and_tombstones() {
    let mut h = harness();
    assert_eq!(delete_group(&mut h, "nope").0, ErrorCode::GroupIdNotFound);
    let member = subscribed_group(&mut h, "consumer", &["t"]);
    let (r, out) = h.send(commit_to("t", &member, 1));
    check(&out, r, ErrorCode::None);
    let (r, out) = h.send(commit_to("u", &member, 1));
    check(&out, r, ErrorCode::None);
    let (e, out) = delete_group(&mut h, "g");
    assert_eq!(e, ErrorCode::NonEmptyGroup);
    assert!(out.records.is_empty());
    let (r, out) = h.send(Command::LeaveGroup(LeaveGroup {
        group_id: "g".into(),
        members: vec![LeavingMember {
            member_id: member,
            group_instance_id: None,
        }],
    }));
    check(&out, r, ErrorCode::None);
    assert_eq!(h.state(), GroupState::Empty);
    let (e, out) = delete_group(&mut h, "g");
    assert_eq!(e, ErrorCode::None);
    // Two offsets and the group metadata.
    assert_eq!(tombstones(&out), 3);
    assert_eq!(out.records.len(), 3);
    assert!(h.coordinator.group("g").is_none());
    assert_eq!(delete_group(&mut h, "g").0, ErrorCode::GroupIdNotFound);
    // The log forgets the group too.
    let mut reloaded = Coordinator::new(Config::default());
    reloaded.load(&h.log, h.now_ms).unwrap();
    assert!(reloaded.group("g").is_none());
}

#[test]
fn offset_delete_refuses_subscribed_topics() {
    let mut h = harness();
    let (d, _) = delete_offsets(&mut h, &[("t", 0)]);
    assert_eq!(d.error, ErrorCode::GroupIdNotFound);
    let member = subscribed_group(&mut h, "consumer", &["t"]);
    h.send(commit_to("t", &member, 1));
    h.send(commit_to("u", &member, 1));
    let (d, out) = delete_offsets(&mut h, &[("t", 0), ("u", 0), ("u", 7)]);
    assert_eq!(d.error, ErrorCode::None);
    let errors: Vec<ErrorCode> = d.partitions.iter().map(|p| p.error).collect();
    assert_eq!(
        errors,
        [
            ErrorCode::GroupSubscribedToTopic,
            ErrorCode::None,
            ErrorCode::None
        ]
    );
    // Only the committed partition gets a tombstone.
    assert_eq!(tombstones(&out), 1);
    let offsets = h.coordinator.group("g").unwrap().offsets;
    assert_eq!(offsets.len(), 1);
    assert_eq!(offsets[0].0, "t");
}

#[test]
fn offset_delete_on_a_non_consumer_group_with_members_is_non_empty() {
    let mut h = harness();
    let member = subscribed_group(&mut h, "connect", &["t"]);
    h.send(commit_to("u", &member, 1));
    let (d, out) = delete_offsets(&mut h, &[("u", 0)]);
    assert_eq!(d.error, ErrorCode::NonEmptyGroup);
    assert!(out.records.is_empty());
}

#[test]
fn commit_to_unknown_group_with_a_generation() {
    let mut h = harness();
    let (r, out) = h.send(commit_cmd("m", 1, 1));
    check(&out, r, ErrorCode::IllegalGeneration);
    let mut v9 = commit_cmd("m", 1, 1);
    if let Command::OffsetCommit(c) = &mut v9 {
        c.unknown_group_not_found = true;
    }
    let (r, out) = h.send(v9);
    check(&out, r, ErrorCode::GroupIdNotFound);
    assert!(h.coordinator.group("g").is_none());
}

const RETENTION_MS: i64 = 60_000;
const CHECK_MS: i64 = 1_000;

/// Advances time by `total_ms` in check intervals, heartbeating for `member` (generation 1)
/// so that its session stays alive; returns every record written meanwhile.
fn keep_alive(h: &mut Harness, member: &str, total_ms: i64) -> Output {
    let mut all = Output::default();
    for _ in 0..total_ms / CHECK_MS {
        let (r, out) = h.send(heartbeat_cmd(member, 1));
        check(&out, r, ErrorCode::None);
        all.records.extend(h.tick(CHECK_MS).records);
    }
    all
}

fn expiring_harness() -> Harness {
    harness_with(Config {
        offsets_retention_ms: RETENTION_MS,
        offsets_retention_check_interval_ms: CHECK_MS,
        ..Config::default()
    })
}

#[test]
fn offsets_of_an_empty_group_expire_retention_after_it_became_empty() {
    let mut h = expiring_harness();
    let member = subscribed_group(&mut h, "consumer", &["t"]);
    h.send(commit_to("t", &member, 1));
    // Subscribed: never expires while Stable, however old.
    keep_alive(&mut h, &member, 2 * RETENTION_MS);
    assert_eq!(h.coordinator.group("g").unwrap().offsets.len(), 1);
    let (r, out) = h.send(Command::LeaveGroup(LeaveGroup {
        group_id: "g".into(),
        members: vec![LeavingMember {
            member_id: member,
            group_instance_id: None,
        }],
    }));
    check(&out, r, ErrorCode::None);
    // The commit is old, but retention counts from when the group became Empty.
    let out = h.tick(RETENTION_MS - CHECK_MS - 1);
    assert!(out.records.is_empty());
    assert_eq!(h.coordinator.group("g").unwrap().offsets.len(), 1);
    let out = h.tick(CHECK_MS + 1);
    // The offset and then the empty group's metadata.
    assert_eq!(tombstones(&out), 2);
    assert!(h.coordinator.group("g").is_none());
    let mut reloaded = Coordinator::new(Config::default());
    reloaded.load(&h.log, h.now_ms).unwrap();
    assert!(reloaded.group("g").is_none());
}

#[test]
fn unsubscribed_offsets_of_a_stable_group_expire_from_their_commit() {
    let mut h = expiring_harness();
    let member = subscribed_group(&mut h, "consumer", &["t"]);
    h.send(commit_to("t", &member, 1));
    h.send(commit_to("gone", &member, 1));
    keep_alive(&mut h, &member, RETENTION_MS / 2);
    assert_eq!(h.coordinator.group("g").unwrap().offsets.len(), 2);
    let out = keep_alive(&mut h, &member, RETENTION_MS);
    assert_eq!(tombstones(&out), 1);
    let offsets = h.coordinator.group("g").unwrap().offsets;
    assert_eq!(offsets.len(), 1);
    assert_eq!(offsets[0].0, "t");
    assert_eq!(h.state(), GroupState::Stable);
}

#[test]
fn simple_commits_expire_from_their_commit_and_explicit_retention_wins() {
    let mut h = expiring_harness();
    let (r, out) = h.send(commit_cmd("", -1, 1));
    check(&out, r, ErrorCode::None);
    let mut short = commit_to("short", "", -1);
    if let Command::OffsetCommit(c) = &mut short {
        c.retention_time_ms = 5_000;
    }
    h.send(short);
    h.tick(CHECK_MS); // schedules the first check
    h.tick(5_000);
    let offsets = h.coordinator.group("g").unwrap().offsets;
    assert_eq!(offsets.len(), 1, "{offsets:?}");
    assert_eq!(offsets[0].0, "t");
    h.tick(RETENTION_MS);
    assert!(h.coordinator.group("g").is_none());
}

#[test]
fn a_loaded_empty_group_keeps_when_it_became_empty() {
    let mut h = expiring_harness();
    let member = subscribed_group(&mut h, "consumer", &["t"]);
    h.send(commit_to("t", &member, 1));
    h.send(Command::LeaveGroup(LeaveGroup {
        group_id: "g".into(),
        members: vec![LeavingMember {
            member_id: member,
            group_instance_id: None,
        }],
    }));
    let empty_since_ms = h.now_ms;
    let mut reloaded = Coordinator::new(Config {
        offsets_retention_ms: RETENTION_MS,
        ..Config::default()
    });
    let later_ms = empty_since_ms + RETENTION_MS / 2;
    reloaded.load(&h.log, later_ms).unwrap();
    assert!(reloaded.expire_offsets_now(later_ms).records.is_empty());
    let out = reloaded.expire_offsets_now(empty_since_ms + RETENTION_MS);
    assert_eq!(tombstones(&out), 2);
}

#[test]
fn static_leader_rejoin_in_stable_gets_members_with_skip_assignment_from_v9() {
    let mut h = harness();
    let (_, a, _) = h.new_member(Some("i1"), &["range"]);
    let out = h.tick(3_000);
    let old = join_ok(&check(&out, a, ErrorCode::None)).member_id.clone();
    let (r, out) = h.send(sync_cmd(&old, 1, vec![(old.clone(), Bytes::from("x"))]));
    check(&out, r, ErrorCode::None);
    let mut rejoin = join_cmd("", Some("i1"), &["range"]);
    if let Command::JoinGroup(j) = &mut rejoin {
        j.supports_skip_assignment = true;
        // A changed subscription with the same protocol does not rebalance (as Kafka).
        j.protocols[0].metadata = Bytes::from("changed");
    }
    let (r, out) = h.send(rejoin);
    let j = join_ok(&check(&out, r, ErrorCode::None)).clone();
    assert_eq!(j.leader, j.member_id);
    assert!(j.skip_assignment);
    assert_eq!(j.members.len(), 1);
    assert_eq!(j.members[0].metadata, Bytes::from("changed"));
    assert_eq!(h.state(), GroupState::Stable);
}

#[test]
fn static_member_rejoin_during_a_rebalance_joins_it() {
    let mut h = harness();
    let (_, a, _) = h.new_member(Some("i1"), &["range"]);
    let out = h.tick(3_000);
    let old = join_ok(&check(&out, a, ErrorCode::None)).member_id.clone();
    let (r, out) = h.send(sync_cmd(&old, 1, vec![(old.clone(), Bytes::from("x"))]));
    check(&out, r, ErrorCode::None);
    // A dynamic newcomer starts a rebalance; the static member restarts meanwhile.
    let (_, newcomer, _) = h.new_member(None, &["range"]);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let (r, out) = h.send(join_cmd("", Some("i1"), &["range"]));
    // Both are now parked: the join completes at once, in generation 2.
    let j = join_ok(&check(&out, r, ErrorCode::None)).clone();
    let n = join_ok(&check(&out, newcomer, ErrorCode::None)).clone();
    assert_ne!(j.member_id, old);
    assert_eq!(j.generation_id, 2);
    assert_eq!(n.generation_id, 2);
    assert_eq!(h.state(), GroupState::CompletingRebalance);
}
