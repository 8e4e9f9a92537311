//! Membership and assignment of share groups, driven through `ShareGroups::handle` with the
//! time passed in, and replay checked against the live state.
// Compiled only under #[cfg(test)] (declared so in group.rs): unwrapping is fine here.

use std::collections::BTreeSet;
use std::sync::Arc;

use strom_group::consumer::{Assignment, TopicId, TopicInfo, Topics};
use strom_group::{ErrorCode, GroupRecord};

use super::*;

fn topics(list: &[(&str, u8, i32)]) -> Arc<Topics> {
    Arc::new(Topics::new(list.iter().map(|(name, id, partitions)| {
        TopicInfo {
            id: TopicId([*id; 16]),
            name: (*name).to_owned(),
            partitions: *partitions,
        }
    })))
}

fn hb(member: &str, epoch: i32, subscribed: Option<&[&str]>, topics: &Arc<Topics>) -> ShareCommand {
    ShareCommand::Heartbeat(ShareHeartbeat {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        rack_id: None,
        subscribed_topic_names: subscribed.map(|s| s.iter().map(|t| t.to_string()).collect()),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        topics: Arc::clone(topics),
        session_timeout_ms: None,
        heartbeat_interval_ms: None,
    })
}

const RETRY_MS: i64 = 10_000;

struct Harness {
    groups: ShareGroups,
    log: Vec<GroupRecord>,
}

impl Harness {
    fn new() -> Self {
        Harness {
            groups: ShareGroups::new(ShareConfig {
                session_timeout_ms: 1_000,
                heartbeat_interval_ms: 100,
                max_size: 3,
                initialize_retry_interval_ms: RETRY_MS,
            }),
            log: Vec::new(),
        }
    }

    fn call(&mut self, command: ShareCommand, now_ms: i64) -> ShareHeartbeatResponse {
        let (records, response) = self.groups.handle(command, now_ms);
        self.log.extend(records);
        match response {
            ShareResponse::Heartbeat(r) => r,
            other => panic!("not a heartbeat response: {other:?}"),
        }
    }

    /// Any other command; its records go to the log.
    fn run(&mut self, command: ShareCommand, now_ms: i64) -> ShareResponse {
        let (records, response) = self.groups.handle(command, now_ms);
        self.log.extend(records);
        response
    }

    /// Records every partition of `topics` as initialized for group "g", as the broker
    /// does once the persister initialized them.
    fn init_all(&mut self, topics: &Arc<Topics>) {
        let partitions: Assignment = topics
            .iter()
            .map(|t| (t.id, (0..t.partitions).collect()))
            .collect();
        let done = self.run(initialized(partitions, topics, false), 0);
        assert_eq!(done, ShareResponse::Done(Ok(())));
    }

    fn state_partitions(&mut self) -> Option<Assignment> {
        match self.run(ShareCommand::StatePartitions("g".into()), 0) {
            ShareResponse::StatePartitions(p) => p,
            other => panic!("{other:?}"),
        }
    }

    fn ok(&mut self, command: ShareCommand, now_ms: i64) -> ShareHeartbeatResponse {
        let r = self.call(command, now_ms);
        assert_eq!(r.error, None);
        r
    }

    fn error(&mut self, command: ShareCommand, now_ms: i64) -> ErrorCode {
        let before = self.log.len();
        let r = self.call(command, now_ms);
        assert_eq!(self.log.len(), before, "an error writes nothing");
        r.error.expect("an error").code
    }

    fn describe(groups: &ShareGroups, topics: &Arc<Topics>) -> Vec<DescribedShareGroup> {
        let mut g = groups.clone_describe(topics);
        for d in &mut g {
            d.members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        }
        g
    }

    /// Replays the records written so far into a fresh coordinator and checks it describes
    /// the same groups.
    fn check_replay(&self, topics: &Arc<Topics>) {
        let replayed = self.replayed(0);
        assert_eq!(
            Harness::describe(&replayed, topics),
            Harness::describe(&self.groups, topics)
        );
        assert_eq!(replayed.state_for_test(), self.groups.state_for_test());
    }

    /// A coordinator loaded from the records so far at `now_ms` (a failover).
    fn replayed(&self, now_ms: i64) -> ShareGroups {
        let mut replayed = ShareGroups::new(self.groups.config().clone());
        for r in &self.log {
            let record = ShareGroupRecord::decode(&r.key, r.value.as_deref())
                .unwrap()
                .unwrap();
            replayed.replay(record, now_ms);
        }
        replayed
    }
}

impl ShareGroups {
    fn clone_describe(&self, topics: &Arc<Topics>) -> Vec<DescribedShareGroup> {
        let ids: Vec<String> = self.group_ids().map(str::to_owned).collect();
        match self.clone_handle_describe(ids, topics) {
            ShareResponse::Describe(d) => d,
            other => panic!("{other:?}"),
        }
    }

    fn clone_handle_describe(&self, group_ids: Vec<String>, topics: &Arc<Topics>) -> ShareResponse {
        ShareResponse::Describe(self.describe_for_test(&group_ids, topics))
    }
}

/// The persister's answer: to a heartbeat's job (`job`), or AlterShareGroupOffsets'.
fn initialized(partitions: Assignment, topics: &Arc<Topics>, job: bool) -> ShareCommand {
    ShareCommand::Initialized {
        group_id: "g".into(),
        partitions,
        topics: Arc::clone(topics),
        job,
    }
}

fn partitions(a: &Option<Assignment>, topic: u8) -> BTreeSet<i32> {
    a.as_ref()
        .and_then(|a| a.get(&TopicId([topic; 16])).cloned())
        .unwrap_or_default()
}

#[test]
fn three_members_share_one_partition() {
    let t = topics(&[("q", 1, 1)]);
    let mut h = Harness::new();
    h.init_all(&t);
    for (i, m) in ["a", "b", "c"].iter().enumerate() {
        let r = h.ok(hb(m, 0, Some(&["q"]), &t), i as i64);
        assert_eq!(r.member_id.as_deref(), Some(*m));
        assert_eq!(r.heartbeat_interval_ms, 100);
        assert_eq!(partitions(&r.assignment, 1), BTreeSet::from([0]), "{m}");
        assert_eq!(r.member_epoch, i as i32 + 1);
    }
    h.check_replay(&t);
}

#[test]
fn partitions_are_split_and_rebalanced_when_a_member_leaves() {
    let t = topics(&[("q", 1, 4)]);
    let mut h = Harness::new();
    h.init_all(&t);
    let a = h.ok(hb("a", 0, Some(&["q"]), &t), 0);
    assert_eq!(partitions(&a.assignment, 1).len(), 4);
    let b = h.ok(hb("b", 0, Some(&["q"]), &t), 1);
    assert_eq!(partitions(&b.assignment, 1).len(), 2);
    // a learns its smaller share at its next heartbeat, with the new epoch.
    let a = h.ok(hb("a", a.member_epoch, None, &t), 2);
    assert_eq!(a.member_epoch, b.member_epoch);
    let (pa, pb) = (partitions(&a.assignment, 1), partitions(&b.assignment, 1));
    assert_eq!(pa.len(), 2);
    assert!(pa.is_disjoint(&pb));
    // An unchanged heartbeat carries no assignment.
    let again = h.ok(hb("a", a.member_epoch, None, &t), 3);
    assert_eq!(again.assignment, None);
    // b leaves: a gets everything back.
    let left = h.ok(hb("b", -1, None, &t), 4);
    assert_eq!(left.member_epoch, -1);
    let a = h.ok(hb("a", a.member_epoch, None, &t), 5);
    assert_eq!(partitions(&a.assignment, 1).len(), 4);
    h.check_replay(&t);
}

#[test]
fn a_new_topic_is_initialized_once_then_assigned() {
    let none = topics(&[]);
    let mut h = Harness::new();
    let r = h.ok(hb("a", 0, Some(&["later"]), &none), 0);
    assert_eq!(r.assignment, Some(Assignment::new()));
    assert_eq!(r.initialize, None);
    let created = topics(&[("later", 7, 2)]);
    // The topic appears: its partitions are to be initialized, not assigned yet (Kafka
    // assigns only share partitions with state).
    let r2 = h.ok(hb("a", r.member_epoch, None, &created), 1);
    let job = r2.initialize.clone().expect("an initialize job");
    assert_eq!(job.group_id, "g");
    assert_eq!(job.partitions[&TopicId([7; 16])], BTreeSet::from([0, 1]));
    assert_eq!(job.state_epoch, r2.member_epoch);
    assert_eq!(partitions(&r2.assignment, 7), BTreeSet::new());
    // Asked once: the next heartbeats, and other members, do not ask again meanwhile.
    let r3 = h.ok(hb("a", r2.member_epoch, None, &created), 2);
    assert_eq!(r3.initialize, None);
    let b = h.ok(hb("b", 0, Some(&["later"]), &created), 3);
    assert_eq!(b.initialize, None);
    h.check_replay(&created);
    // The persister answered: recorded, and the next heartbeat assigns them.
    h.run(initialized(job.partitions.clone(), &created, true), 4);
    assert_eq!(h.state_partitions(), Some(job.partitions.clone()));
    let r4 = h.ok(hb("a", r3.member_epoch, None, &created), 5);
    assert!(r4.member_epoch > r3.member_epoch);
    let b = h.ok(hb("b", b.member_epoch, None, &created), 6);
    assert_eq!(
        &partitions(&r4.assignment, 7) | &partitions(&b.assignment, 7),
        BTreeSet::from([0, 1])
    );
    assert_eq!(r4.initialize, None);
    assert_eq!(b.initialize, None);
    h.check_replay(&created);
}

#[test]
fn a_failed_initialization_is_asked_again_at_the_next_heartbeat() {
    let t = topics(&[("q", 1, 2)]);
    let mut h = Harness::new();
    let r = h.ok(hb("a", 0, Some(&["q"]), &t), 0);
    let job = r.initialize.expect("an initialize job");
    h.run(
        ShareCommand::Uninitialized {
            group_id: "g".into(),
            partitions: job.partitions.clone(),
        },
        1,
    );
    let again = h.ok(hb("a", r.member_epoch, None, &t), 2);
    assert_eq!(again.initialize.map(|j| j.partitions), Some(job.partitions));
    h.check_replay(&t);
}

#[test]
fn initializing_partitions_are_asked_again_after_the_retry_interval_and_a_failover() {
    let t = topics(&[("q", 1, 1)]);
    let mut h = Harness::new();
    let r = h.ok(hb("a", 0, Some(&["q"]), &t), 0);
    assert!(r.initialize.is_some());
    // The outcome never came (the coordinator died mid-initialization, say).
    let quiet = h.ok(hb("a", r.member_epoch, None, &t), RETRY_MS - 1);
    assert_eq!(quiet.initialize, None);
    let retried = h.ok(hb("a", r.member_epoch, None, &t), RETRY_MS);
    assert!(retried.initialize.is_some());
    // After a failover the initializing record is replayed and its interval restarts.
    let mut failover = h.replayed(50_000);
    let (_, quiet) = failover.handle(hb("a", r.member_epoch, None, &t), 50_000 + RETRY_MS - 1);
    let ShareResponse::Heartbeat(quiet) = quiet else {
        panic!("{quiet:?}")
    };
    assert_eq!(quiet.error, None);
    assert_eq!(quiet.initialize, None);
    let (_, retried) = failover.handle(hb("a", r.member_epoch, None, &t), 50_000 + RETRY_MS);
    let ShareResponse::Heartbeat(retried) = retried else {
        panic!("{retried:?}")
    };
    assert!(retried.initialize.is_some());
}

#[test]
fn deleting_a_group_deletes_its_recorded_state_first() {
    let t = topics(&[("q", 1, 2), ("r", 2, 1)]);
    let mut h = Harness::new();
    // A group id that never had a member has none to delete.
    assert_eq!(
        h.run(ShareCommand::PrepareDelete("g".into()), 0),
        ShareResponse::PrepareDelete(Ok(None))
    );
    h.init_all(&t);
    let a = h.ok(hb("a", 0, Some(&["q", "r"]), &t), 0);
    let before = h.log.len();
    assert_eq!(
        h.run(ShareCommand::PrepareDelete("g".into()), 0),
        ShareResponse::PrepareDelete(Err(ErrorCode::NonEmptyGroup))
    );
    assert_eq!(h.log.len(), before, "an error writes nothing");
    h.ok(hb("a", a.member_epoch, None, &t), 0);
    h.ok(hb("a", -1, None, &t), 0);
    let prepared = h.run(ShareCommand::PrepareDelete("g".into()), 0);
    let expected = Assignment::from([
        (TopicId([1; 16]), BTreeSet::from([0, 1])),
        (TopicId([2; 16]), BTreeSet::from([0])),
    ]);
    assert_eq!(
        prepared,
        ShareResponse::PrepareDelete(Ok(Some(StateToDelete::Partitions(expected.clone()))))
    );
    // Nothing initialized any more: the topics are deleting until the group goes.
    assert_eq!(h.state_partitions(), Some(Assignment::new()));
    h.check_replay(&t);
    // A retried deletion (the state delete failed) names the deleting topics again.
    assert_eq!(
        h.run(ShareCommand::PrepareDelete("g".into()), 0),
        ShareResponse::PrepareDelete(Ok(Some(StateToDelete::Partitions(expected))))
    );
    assert_eq!(
        h.run(ShareCommand::Delete("g".into()), 0),
        ShareResponse::Delete(Ok(true))
    );
    assert_eq!(h.state_partitions(), None);
    let replayed = h.replayed(0);
    assert!(!replayed.contains("g"));
    assert!(replayed.state_for_test().is_empty());
}

#[test]
fn state_recorded_by_offsets_admin_alone_is_deleted_with_the_group_id() {
    let t = topics(&[("q", 1, 1)]);
    let mut h = Harness::new();
    h.init_all(&t);
    assert!(h.groups.contains("g"));
    assert_eq!(
        h.run(ShareCommand::Delete("g".into()), 0),
        ShareResponse::Delete(Ok(true))
    );
    assert!(!h.groups.contains("g"));
    h.check_replay(&t);
}

#[test]
fn deleting_offsets_names_initialized_topics_and_records_the_outcome() {
    let t = topics(&[("q", 1, 2), ("r", 2, 1), ("s", 3, 1)]);
    let mut h = Harness::new();
    let q = TopicId([1; 16]);
    let r = TopicId([2; 16]);
    let s = TopicId([3; 16]);
    // No record for the group (state written before Strom kept one): every partition.
    let unrecorded = h.run(
        ShareCommand::PrepareDeleteOffsets {
            group_id: "g".into(),
            topic_ids: vec![q],
            topics: Arc::clone(&t),
        },
        0,
    );
    assert_eq!(
        unrecorded,
        ShareResponse::PrepareDeleteOffsets(Ok(vec![(q, Some(BTreeSet::from([0, 1])))]))
    );
    h.run(
        initialized(
            Assignment::from([(q, BTreeSet::from([1])), (r, BTreeSet::from([0]))]),
            &t,
            false,
        ),
        0,
    );
    let prepared = h.run(
        ShareCommand::PrepareDeleteOffsets {
            group_id: "g".into(),
            topic_ids: vec![q, s],
            topics: Arc::clone(&t),
        },
        0,
    );
    assert_eq!(
        prepared,
        ShareResponse::PrepareDeleteOffsets(Ok(vec![(q, Some(BTreeSet::from([1]))), (s, None)]))
    );
    assert_eq!(
        h.state_partitions(),
        Some(Assignment::from([(r, BTreeSet::from([0]))]))
    );
    h.check_replay(&t);
    h.run(
        ShareCommand::DeletedOffsets {
            group_id: "g".into(),
            topic_ids: vec![q],
        },
        0,
    );
    assert!(h.groups.state_for_test()["g"].deleting.is_empty());
    h.check_replay(&t);
}

#[test]
fn deleted_topics_leave_the_record_at_the_next_heartbeat() {
    let t = topics(&[("q", 1, 1), ("r", 2, 1)]);
    let mut h = Harness::new();
    h.init_all(&t);
    let a = h.ok(hb("a", 0, Some(&["q", "r"]), &t), 0);
    let without_q = topics(&[("r", 2, 1)]);
    h.ok(hb("a", a.member_epoch, None, &without_q), 1);
    assert_eq!(
        h.state_partitions(),
        Some(Assignment::from([(TopicId([2; 16]), BTreeSet::from([0]))]))
    );
    h.check_replay(&without_q);
}

#[test]
fn errors_change_nothing() {
    let t = topics(&[("q", 1, 1)]);
    let mut h = Harness::new();
    h.init_all(&t);
    assert_eq!(h.error(hb("a", 0, None, &t), 0), ErrorCode::InvalidRequest);
    assert_eq!(
        h.error(hb("a", 0, Some(&[]), &t), 0),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        h.error(hb("", 0, Some(&["q"]), &t), 0),
        ErrorCode::InvalidRequest
    );
    assert_eq!(h.error(hb("a", -2, None, &t), 0), ErrorCode::InvalidRequest);
    assert_eq!(h.error(hb("a", 1, None, &t), 0), ErrorCode::GroupIdNotFound);
    assert_eq!(
        h.error(hb("a", -1, None, &t), 0),
        ErrorCode::GroupIdNotFound
    );
    let a = h.ok(hb("a", 0, Some(&["q"]), &t), 0);
    assert_eq!(h.error(hb("x", 1, None, &t), 0), ErrorCode::UnknownMemberId);
    assert_eq!(
        h.error(hb("x", -1, None, &t), 0),
        ErrorCode::UnknownMemberId
    );
    assert_eq!(
        h.error(hb("a", a.member_epoch + 1, None, &t), 0),
        ErrorCode::FencedMemberEpoch
    );
    for m in ["b", "c"] {
        h.ok(hb(m, 0, Some(&["q"]), &t), 0);
    }
    assert_eq!(
        h.error(hb("d", 0, Some(&["q"]), &t), 0),
        ErrorCode::GroupMaxSizeReached
    );
}

#[test]
fn the_previous_epoch_is_accepted_once_moved_on() {
    let t = topics(&[("q", 1, 2)]);
    let mut h = Harness::new();
    h.init_all(&t);
    let a = h.ok(hb("a", 0, Some(&["q"]), &t), 0);
    h.ok(hb("b", 0, Some(&["q"]), &t), 0);
    let moved = h.ok(hb("a", a.member_epoch, None, &t), 0);
    assert!(moved.member_epoch > a.member_epoch);
    // The response above was lost: the member retries with its old epoch.
    let retry = h.ok(hb("a", a.member_epoch, None, &t), 0);
    assert_eq!(retry.member_epoch, moved.member_epoch);
    // A member fenced rejoins with epoch 0 and the same id.
    let rejoin = h.ok(hb("a", 0, Some(&["q"]), &t), 0);
    assert_eq!(rejoin.member_epoch, moved.member_epoch);
    assert!(rejoin.assignment.is_some());
}

#[test]
fn expired_sessions_remove_members_and_the_group_stays_empty() {
    let t = topics(&[("q", 1, 1)]);
    let mut h = Harness::new();
    h.init_all(&t);
    h.ok(hb("a", 0, Some(&["q"]), &t), 0);
    let b = h.ok(hb("b", 0, Some(&["q"]), &t), 500);
    assert!(h.groups.tick(999).is_empty());
    h.log.extend(h.groups.tick(1_000));
    let d = Harness::describe(&h.groups, &t);
    assert_eq!(d[0].members.len(), 1);
    h.ok(hb("b", b.member_epoch, None, &t), 1_200);
    h.log.extend(h.groups.tick(2_200));
    let d = Harness::describe(&h.groups, &t);
    assert_eq!(d[0].state, "Empty");
    assert!(d[0].members.is_empty());
    h.check_replay(&t);
}

#[test]
fn only_an_empty_group_is_deleted_and_deletion_replays() {
    let t = topics(&[("q", 1, 1)]);
    let mut h = Harness::new();
    h.init_all(&t);
    let a = h.ok(hb("a", 0, Some(&["q"]), &t), 0);
    let (records, response) = h.groups.handle(ShareCommand::Delete("g".into()), 0);
    assert!(records.is_empty());
    assert_eq!(
        response,
        ShareResponse::Delete(Err(ErrorCode::NonEmptyGroup))
    );
    h.ok(hb("a", a.member_epoch, None, &t), 0);
    h.ok(hb("a", -1, None, &t), 0);
    let (records, response) = h.groups.handle(ShareCommand::Delete("g".into()), 0);
    assert_eq!(response, ShareResponse::Delete(Ok(true)));
    h.log.extend(records);
    assert!(!h.groups.contains("g"));
    let (_, response) = h.groups.handle(ShareCommand::Delete("g".into()), 0);
    assert_eq!(response, ShareResponse::Delete(Ok(false)));
    h.check_replay(&t);
    let mut replayed = ShareGroups::new(h.groups.config().clone());
    for r in &h.log {
        replayed.replay(
            ShareGroupRecord::decode(&r.key, r.value.as_deref())
                .unwrap()
                .unwrap(),
            0,
        );
    }
    assert!(!replayed.contains("g"));
}

#[test]
fn list_and_describe() {
    let t = topics(&[("q", 1, 3)]);
    let mut h = Harness::new();
    h.init_all(&t);
    h.ok(hb("a", 0, Some(&["q"]), &t), 0);
    let (_, list) = h.groups.handle(ShareCommand::List, 0);
    assert_eq!(
        list,
        ShareResponse::List(vec![ListedShareGroup {
            group_id: "g".into(),
            state: "Stable".into()
        }])
    );
    let (_, d) = h.groups.handle(
        ShareCommand::Describe {
            group_ids: vec!["g".into(), "nope".into()],
            topics: Arc::clone(&t),
        },
        0,
    );
    let ShareResponse::Describe(d) = d else {
        panic!("{d:?}")
    };
    assert_eq!(d[0].assignor_name, "simple");
    assert_eq!(d[0].members[0].assignment[&TopicId([1; 16])].len(), 3);
    assert_eq!(
        d[0].members[0].subscribed_topic_names,
        BTreeSet::from(["q".to_string()])
    );
    assert_eq!(
        d[1].error.as_ref().map(|e| e.code),
        Some(ErrorCode::GroupIdNotFound)
    );
    assert_eq!(
        h.groups.assigned_partitions("g")[&TopicId([1; 16])].len(),
        3
    );
}

#[test]
fn a_group_session_timeout_overrides_the_brokers_and_expiry_names_the_member() {
    let t = topics(&[("q", 1, 1)]);
    let mut h = Harness::new();
    h.init_all(&t);
    let mut join = hb("a", 0, Some(&["q"]), &t);
    if let ShareCommand::Heartbeat(beat) = &mut join {
        beat.session_timeout_ms = Some(3_000);
        beat.heartbeat_interval_ms = Some(250);
    }
    let r = h.ok(join, 0);
    assert_eq!(r.heartbeat_interval_ms, 250);
    // The broker's 1 s would have expired it.
    let (records, removed) = h.groups.tick_expired(2_999);
    assert!(records.is_empty() && removed.is_empty());
    let (records, removed) = h.groups.tick_expired(3_000);
    h.log.extend(records);
    assert_eq!(removed, [("g".to_string(), "a".to_string())]);
    h.check_replay(&t);
}

#[test]
fn a_job_answered_after_the_group_was_deleted_records_nothing() {
    let created = topics(&[("later", 7, 2)]);
    let mut h = Harness::new();
    let r = h.ok(hb("a", 0, Some(&["later"]), &created), 0);
    let job = match r.initialize.clone() {
        Some(job) => job,
        None => h
            .ok(hb("a", r.member_epoch, None, &created), 1)
            .initialize
            .expect("an initialize job"),
    };
    // The member leaves and the group is deleted while the job runs.
    h.ok(hb("a", -1, None, &created), 2);
    let _ = h.run(ShareCommand::PrepareDelete("g".into()), 3);
    assert_eq!(
        h.run(ShareCommand::Delete("g".into()), 3),
        ShareResponse::Delete(Ok(true))
    );
    assert!(!h.groups.contains("g"));
    // The late answer neither brings the group id back nor records state for it.
    h.run(initialized(job.partitions.clone(), &created, true), 4);
    assert!(!h.groups.contains("g"));
    assert_eq!(h.state_partitions(), None);
    // Partitions the job was not asked for are not recorded by it either.
    let r = h.ok(hb("b", 0, Some(&["later"]), &created), 5);
    let asked = match r.initialize.clone() {
        Some(job) => job,
        None => h
            .ok(hb("b", r.member_epoch, None, &created), 6)
            .initialize
            .expect("an initialize job"),
    };
    let mut more = asked.partitions.clone();
    more.entry(TopicId([9; 16])).or_default().insert(0);
    h.run(initialized(more, &created, true), 7);
    assert_eq!(h.state_partitions(), Some(asked.partitions.clone()));
    h.check_replay(&created);
}

fn offsets_admin(h: &mut Harness, create: bool) -> Result<(), ShareError> {
    let before = h.log.len();
    let response = h.run(
        ShareCommand::OffsetsAdmin {
            group_id: "g".into(),
            create,
        },
        0,
    );
    assert_eq!(h.log.len(), before, "the check records nothing");
    match response {
        ShareResponse::OffsetsAdmin(r) => r,
        other => panic!("{other:?}"),
    }
}

fn listed(groups: &mut ShareGroups) -> Vec<ListedShareGroup> {
    match groups.handle(ShareCommand::List, 0).1 {
        ShareResponse::List(l) => l,
        other => panic!("{other:?}"),
    }
}

/// Alter/DeleteShareGroupOffsets as Kafka 4.2's group coordinator decides them: an unknown
/// id is GROUP_ID_NOT_FOUND for a delete and becomes an empty share group for an alter
/// (once its altered partitions are recorded: listed and described as Empty, across a
/// replay); a group with members is NON_EMPTY_GROUP, in Kafka's words.
#[test]
fn offsets_admin_refuses_as_kafka_and_an_altered_group_is_empty() {
    let t = topics(&[("q", 1, 1)]);
    let mut h = Harness::new();
    let not_found = offsets_admin(&mut h, false).unwrap_err();
    assert_eq!(
        (not_found.code, not_found.message.as_str()),
        (ErrorCode::GroupIdNotFound, "Group g not found.")
    );
    offsets_admin(&mut h, true).unwrap();
    assert!(!h.groups.contains("g"), "the check alone makes no group");
    assert!(listed(&mut h.groups).is_empty());

    // The alter wrote state and recorded it: an empty share group.
    h.init_all(&t);
    offsets_admin(&mut h, false).unwrap();
    let empty = vec![ListedShareGroup {
        group_id: "g".into(),
        state: "Empty".into(),
    }];
    assert_eq!(listed(&mut h.groups), empty);
    assert_eq!(listed(&mut h.replayed(0)), empty);
    let described = h.groups.describe_for_test(&["g".to_string()], &t);
    assert_eq!(described.len(), 1);
    let d = &described[0];
    assert_eq!(
        (
            d.error.as_ref(),
            d.state.as_str(),
            d.group_epoch,
            d.members.len()
        ),
        (None, "Empty", 0, 0)
    );
    assert_eq!(d.assignor_name, "simple");

    h.ok(hb("a", 0, Some(&["q"]), &t), 0);
    assert_eq!(listed(&mut h.groups)[0].state, "Stable");
    for create in [true, false] {
        let busy = offsets_admin(&mut h, create).unwrap_err();
        assert_eq!(
            (busy.code, busy.message.as_str()),
            (ErrorCode::NonEmptyGroup, "The group is not empty.")
        );
    }
    h.check_replay(&t);
}
