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
        let mut replayed = ShareGroups::new(self.groups.config().clone());
        for r in &self.log {
            let record = ShareGroupRecord::decode(&r.key, r.value.as_deref())
                .unwrap()
                .unwrap();
            replayed.replay(record, 0);
        }
        assert_eq!(
            Harness::describe(&replayed, topics),
            Harness::describe(&self.groups, topics)
        );
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

fn partitions(a: &Option<Assignment>, topic: u8) -> BTreeSet<i32> {
    a.as_ref()
        .and_then(|a| a.get(&TopicId([topic; 16])).cloned())
        .unwrap_or_default()
}

#[test]
fn three_members_share_one_partition() {
    let t = topics(&[("q", 1, 1)]);
    let mut h = Harness::new();
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
fn a_new_topic_is_assigned_at_the_next_heartbeat() {
    let none = topics(&[]);
    let mut h = Harness::new();
    let r = h.ok(hb("a", 0, Some(&["later"]), &none), 0);
    assert_eq!(r.assignment, Some(Assignment::new()));
    let created = topics(&[("later", 7, 2)]);
    let r2 = h.ok(hb("a", r.member_epoch, None, &created), 1);
    assert!(r2.member_epoch > r.member_epoch);
    assert_eq!(partitions(&r2.assignment, 7), BTreeSet::from([0, 1]));
    h.check_replay(&created);
}

#[test]
fn errors_change_nothing() {
    let t = topics(&[("q", 1, 1)]);
    let mut h = Harness::new();
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
