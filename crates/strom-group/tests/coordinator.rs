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
    assert_eq!(j.leader, j.member_id);
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
    // The only member rejoined, so the rebalance completes at once.
    let (r, out) = h.send(join_cmd("", Some("i1"), &["range", "roundrobin"]));
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
