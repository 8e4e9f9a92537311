//! Unit tests of the KIP-848 state machine: every heartbeat transition and error code,
//! timers, replay, records and the assignors.
// Compiled only under #[cfg(test)] (declared so in mod.rs): unwrapping is fine here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::*;
use crate::records::GroupRecord;

const T: TopicId = TopicId([1; 16]);
const U: TopicId = TopicId([2; 16]);

fn topics(t_partitions: i32) -> Arc<Topics> {
    Arc::new(Topics::new([
        TopicInfo {
            id: T,
            name: "t".into(),
            partitions: t_partitions,
        },
        TopicInfo {
            id: U,
            name: "u".into(),
            partitions: 2,
        },
    ]))
}

fn config() -> ConsumerConfig {
    ConsumerConfig {
        max_size: 3,
        ..ConsumerConfig::default()
    }
}

fn join(member: &str, names: &[&str], view: &Arc<Topics>) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        api_version: 1,
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: 0,
        instance_id: None,
        rack_id: None,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(names.iter().map(|s| s.to_string()).collect()),
        subscribed_topic_regex: None,
        server_assignor: None,
        owned_partitions: Some(Vec::new()),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        topics: Arc::clone(view),
        session_timeout_ms: None,
        heartbeat_interval_ms: None,
    }
}

/// A steady heartbeat: only the epoch and, if given, the owned partitions.
fn beat(member: &str, epoch: i32, owned: Option<&[i32]>, view: &Arc<Topics>) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        subscribed_topic_names: None,
        owned_partitions: owned.map(|p| vec![(T, p.to_vec())]),
        ..join(member, &[], view)
    }
}

fn parts(a: &Option<Assignment>) -> Vec<i32> {
    a.as_ref()
        .and_then(|a| a.get(&T))
        .map(|p| p.iter().copied().collect())
        .unwrap_or_default()
}

fn ok(
    groups: &mut ConsumerGroups,
    c: ConsumerHeartbeat,
    now_ms: i64,
) -> (Vec<GroupRecord>, ConsumerHeartbeatResponse) {
    let (records, response) = groups.heartbeat(c, now_ms);
    assert_eq!(response.error, None, "unexpected error");
    (records, response)
}

fn err(groups: &mut ConsumerGroups, c: ConsumerHeartbeat) -> ConsumerErrorCode {
    let (records, response) = groups.heartbeat(c, 0);
    assert!(records.is_empty(), "a refused heartbeat writes nothing");
    response.error.map(|e| e.code).expect("an error")
}

fn decoded(records: &[GroupRecord]) -> Vec<ConsumerRecord> {
    records
        .iter()
        .map(|r| {
            ConsumerRecord::decode(&r.key, r.value.as_deref())
                .unwrap()
                .unwrap()
        })
        .collect()
}

#[test]
fn first_member_joins_and_gets_every_partition() {
    let view = topics(4);
    let mut groups = ConsumerGroups::new(config());
    let (records, r) = ok(&mut groups, join("a", &["t"], &view), 0);
    assert_eq!(r.member_id.as_deref(), Some("a"));
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.heartbeat_interval_ms, 5_000);
    assert_eq!(parts(&r.assignment), vec![0, 1, 2, 3]);
    let kinds: Vec<&'static str> = decoded(&records)
        .iter()
        .map(|r| match r {
            ConsumerRecord::MemberMetadata { .. } => "member",
            ConsumerRecord::PartitionMetadata { .. } => "partitions",
            ConsumerRecord::GroupEpoch { .. } => "epoch",
            ConsumerRecord::TargetMember { .. } => "target",
            ConsumerRecord::TargetEpoch { .. } => "target-epoch",
            ConsumerRecord::CurrentMember { .. } => "current",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "member",
            "partitions",
            "epoch",
            "target",
            "target-epoch",
            "current"
        ]
    );
    let g = groups.group("g").unwrap();
    assert_eq!((g.group_epoch, g.assignment_epoch), (1, 1));
    assert_eq!(g.state(), ConsumerGroupState::Stable);
}

#[test]
fn steady_heartbeat_writes_nothing_and_sends_no_assignment() {
    let view = topics(2);
    let mut groups = ConsumerGroups::new(config());
    ok(&mut groups, join("a", &["t"], &view), 0);
    let (records, r) = ok(&mut groups, beat("a", 1, None, &view), 1_000);
    assert!(records.is_empty());
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.assignment, None);
}

#[test]
fn v0_join_without_member_id_gets_one_generated() {
    let view = topics(1);
    let mut groups = ConsumerGroups::new(config());
    let c = ConsumerHeartbeat {
        api_version: 0,
        ..join("", &["t"], &view)
    };
    let (_, r) = ok(&mut groups, c, 0);
    let id = r.member_id.unwrap();
    assert!(!id.is_empty());
    assert!(groups.group("g").unwrap().members.contains_key(&id));
}

/// Two members: a partition moves only after its old owner stops reporting it.
#[test]
fn reconciliation_revokes_before_it_assigns() {
    let view = topics(4);
    let mut groups = ConsumerGroups::new(config());
    ok(&mut groups, join("a", &["t"], &view), 0);
    let (_, b) = ok(&mut groups, join("b", &["t"], &view), 10);
    assert_eq!(b.member_epoch, 2, "b moves to the new epoch");
    assert_eq!(
        parts(&b.assignment),
        Vec::<i32>::new(),
        "its partitions are still a's"
    );
    assert_eq!(
        groups.group("g").unwrap().state(),
        ConsumerGroupState::Reconciling
    );
    let target = &groups.group("g").unwrap().target;
    assert_eq!(target["a"][&T], BTreeSet::from([0, 1]));
    assert_eq!(target["b"][&T], BTreeSet::from([2, 3]));

    // a still owns 0..4: it must revoke 2 and 3 and stays at epoch 1.
    let (_, a) = ok(&mut groups, beat("a", 1, Some(&[0, 1, 2, 3]), &view), 20);
    assert_eq!(a.member_epoch, 1);
    assert_eq!(parts(&a.assignment), vec![0, 1]);
    assert_eq!(
        groups.group("g").unwrap().members["a"].current.state,
        MemberState::UnrevokedPartitions
    );

    // b cannot have them yet.
    let (_, b) = ok(&mut groups, beat("b", 2, Some(&[]), &view), 30);
    assert_eq!(b.assignment, None);
    assert_eq!(
        groups.group("g").unwrap().members["b"].current.state,
        MemberState::UnreleasedPartitions
    );

    // a still reports them: nothing moves.
    let (records, a) = ok(&mut groups, beat("a", 1, Some(&[0, 1, 2, 3]), &view), 40);
    assert!(records.is_empty());
    assert_eq!(a.member_epoch, 1);

    // a acknowledges the revocation and reaches epoch 2.
    let (_, a) = ok(&mut groups, beat("a", 1, Some(&[0, 1]), &view), 50);
    assert_eq!(a.member_epoch, 2);
    assert_eq!(a.assignment, None, "its assigned partitions did not change");

    // Now b gets 2 and 3.
    let (_, b) = ok(&mut groups, beat("b", 2, Some(&[]), &view), 60);
    assert_eq!(b.member_epoch, 2);
    assert_eq!(parts(&b.assignment), vec![2, 3]);
    assert_eq!(
        groups.group("g").unwrap().state(),
        ConsumerGroupState::Stable
    );
}

#[test]
fn member_that_already_dropped_partitions_skips_revocation() {
    let view = topics(2);
    let mut groups = ConsumerGroups::new(config());
    ok(&mut groups, join("a", &["t"], &view), 0);
    ok(&mut groups, join("b", &["t"], &view), 0);
    let (_, a) = ok(&mut groups, beat("a", 1, Some(&[0]), &view), 0);
    assert_eq!(a.member_epoch, 2);
    assert_eq!(parts(&a.assignment), vec![0]);
}

#[test]
fn leave_removes_the_member_and_bumps_the_epoch() {
    let view = topics(2);
    let mut groups = ConsumerGroups::new(config());
    ok(&mut groups, join("a", &["t"], &view), 0);
    ok(&mut groups, join("b", &["t"], &view), 0);
    ok(&mut groups, beat("a", 1, Some(&[0]), &view), 0);
    ok(&mut groups, beat("b", 2, Some(&[]), &view), 0);
    let (records, r) = ok(&mut groups, beat("b", -1, None, &view), 0);
    assert_eq!((r.member_id.as_deref(), r.member_epoch), (Some("b"), -1));
    let tombstones = decoded(&records)
        .iter()
        .filter(|r| {
            matches!(
                r,
                ConsumerRecord::CurrentMember { current: None, .. }
                    | ConsumerRecord::TargetMember {
                        assignment: None,
                        ..
                    }
                    | ConsumerRecord::MemberMetadata {
                        subscription: None,
                        ..
                    }
            )
        })
        .count();
    assert_eq!(tombstones, 3);
    let g = groups.group("g").unwrap();
    assert_eq!(g.group_epoch, 3);
    assert_eq!(g.state(), ConsumerGroupState::Assigning);
    let (_, a) = ok(&mut groups, beat("a", 2, Some(&[0]), &view), 0);
    assert_eq!(a.member_epoch, 3);
    assert_eq!(parts(&a.assignment), vec![0, 1]);
    // The last member leaves: the group stays, Empty, its target epoch caught up.
    ok(&mut groups, beat("a", -1, None, &view), 0);
    let g = groups.group("g").unwrap();
    assert_eq!(g.state(), ConsumerGroupState::Empty);
    assert_eq!((g.group_epoch, g.assignment_epoch), (4, 4));
    assert_eq!(
        err(&mut groups, beat("a", -1, None, &view)),
        ConsumerErrorCode::UnknownMemberId
    );
}

#[test]
fn session_expiry_fences_the_member() {
    let view = topics(2);
    let mut groups = ConsumerGroups::new(config());
    ok(&mut groups, join("a", &["t"], &view), 0);
    ok(&mut groups, join("b", &["t"], &view), 40_000);
    assert!(groups.tick(44_999).is_empty());
    let records = groups.tick(45_000);
    assert!(!records.is_empty());
    let g = groups.group("g").unwrap();
    assert!(!g.members.contains_key("a"));
    assert!(g.members.contains_key("b"));
    assert_eq!(
        err(&mut groups, beat("a", 1, None, &view)),
        ConsumerErrorCode::UnknownMemberId
    );
}

#[test]
fn a_member_that_does_not_revoke_in_time_is_fenced() {
    let view = topics(2);
    let mut groups = ConsumerGroups::new(config());
    ok(&mut groups, join("a", &["t"], &view), 0);
    ok(&mut groups, join("b", &["t"], &view), 0);
    ok(&mut groups, beat("a", 1, Some(&[0, 1]), &view), 1_000);
    ok(&mut groups, beat("b", 2, Some(&[]), &view), 20_000);
    ok(&mut groups, beat("a", 1, Some(&[0, 1]), &view), 20_000);
    assert!(
        groups.tick(30_999).is_empty(),
        "rebalance timeout is 30s from the revocation"
    );
    groups.tick(31_000);
    assert!(!groups.group("g").unwrap().members.contains_key("a"));
}

#[test]
fn epochs_are_checked() {
    let view = topics(2);
    let mut groups = ConsumerGroups::new(config());
    ok(&mut groups, join("a", &["t"], &view), 0);
    assert_eq!(
        err(&mut groups, beat("a", 2, None, &view)),
        ConsumerErrorCode::FencedMemberEpoch
    );
    ok(&mut groups, join("b", &["t"], &view), 0);
    ok(&mut groups, beat("a", 1, Some(&[0]), &view), 0);
    // a is at epoch 2 now; its previous epoch 1 is accepted with a subset of its partitions
    // (the response that moved it may have been lost) ...
    let (_, r) = ok(&mut groups, beat("a", 1, Some(&[0]), &view), 0);
    assert_eq!(r.member_epoch, 2);
    // ... but not with partitions it does not have, nor without saying what it owns.
    assert_eq!(
        err(&mut groups, beat("a", 1, Some(&[1]), &view)),
        ConsumerErrorCode::FencedMemberEpoch
    );
    assert_eq!(
        err(&mut groups, beat("a", 1, None, &view)),
        ConsumerErrorCode::FencedMemberEpoch
    );
    assert_eq!(
        err(&mut groups, beat("zz", 1, None, &view)),
        ConsumerErrorCode::UnknownMemberId
    );
    // A fenced member rejoins with epoch 0 under its member id and gets its partitions back.
    let (_, r) = ok(&mut groups, join("a", &["t"], &view), 0);
    assert_eq!((r.member_epoch, parts(&r.assignment)), (2, vec![0]));
    let other = ConsumerHeartbeat {
        group_id: "nope".into(),
        ..beat("a", 1, None, &view)
    };
    assert_eq!(err(&mut groups, other), ConsumerErrorCode::GroupIdNotFound);
}

#[test]
fn invalid_requests_are_refused() {
    let view = topics(1);
    let mut groups = ConsumerGroups::new(config());
    let cases = [
        ConsumerHeartbeat {
            group_id: String::new(),
            ..join("a", &["t"], &view)
        },
        ConsumerHeartbeat {
            member_id: String::new(),
            ..join("a", &["t"], &view)
        },
        ConsumerHeartbeat {
            rebalance_timeout_ms: -1,
            ..join("a", &["t"], &view)
        },
        ConsumerHeartbeat {
            owned_partitions: None,
            ..join("a", &["t"], &view)
        },
        ConsumerHeartbeat {
            owned_partitions: Some(vec![(T, vec![0])]),
            ..join("a", &["t"], &view)
        },
        ConsumerHeartbeat {
            subscribed_topic_names: None,
            ..join("a", &["t"], &view)
        },
        ConsumerHeartbeat {
            instance_id: Some(String::new()),
            ..join("a", &["t"], &view)
        },
        ConsumerHeartbeat {
            rack_id: Some(String::new()),
            ..join("a", &["t"], &view)
        },
        ConsumerHeartbeat {
            member_epoch: -3,
            ..join("a", &["t"], &view)
        },
        ConsumerHeartbeat {
            member_epoch: -2,
            ..join("a", &["t"], &view)
        },
    ];
    for c in cases {
        assert_eq!(err(&mut groups, c), ConsumerErrorCode::InvalidRequest);
    }
    let c = ConsumerHeartbeat {
        server_assignor: Some("sticky".into()),
        ..join("a", &["t"], &view)
    };
    assert_eq!(err(&mut groups, c), ConsumerErrorCode::UnsupportedAssignor);
    let c = ConsumerHeartbeat {
        subscribed_topic_regex: Some("t(".into()),
        ..join("a", &["t"], &view)
    };
    assert_eq!(
        err(&mut groups, c),
        ConsumerErrorCode::InvalidRegularExpression
    );
    assert!(groups.group("g").is_none(), "refused joins create no group");
}

#[test]
fn group_max_size_is_enforced_for_new_members_only() {
    let view = topics(1);
    let mut groups = ConsumerGroups::new(config());
    for m in ["a", "b", "c"] {
        ok(&mut groups, join(m, &["t"], &view), 0);
    }
    assert_eq!(
        err(&mut groups, join("d", &["t"], &view)),
        ConsumerErrorCode::GroupMaxSizeReached
    );
    let epoch = groups.group("g").unwrap().members["a"].current.member_epoch;
    ok(&mut groups, beat("a", epoch, None, &view), 0);
}

fn static_join(member: &str, view: &Arc<Topics>) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        instance_id: Some("i".into()),
        ..join(member, &["t"], view)
    }
}

#[test]
fn static_member_leaves_and_rejoins_with_its_assignment() {
    let view = topics(2);
    let mut groups = ConsumerGroups::new(config());
    ok(&mut groups, static_join("a1", &view), 0);
    ok(&mut groups, join("b", &["t"], &view), 0);
    ok(&mut groups, beat("a1", 1, Some(&[0]), &view), 0);
    ok(&mut groups, beat("b", 2, Some(&[]), &view), 0);
    let epoch_before = groups.group("g").unwrap().group_epoch;
    // Another process with the same instance id cannot join while a1 holds it.
    assert_eq!(
        err(&mut groups, static_join("a2", &view)),
        ConsumerErrorCode::UnreleasedInstanceId
    );
    let leave = ConsumerHeartbeat {
        instance_id: Some("i".into()),
        ..beat("a1", -2, None, &view)
    };
    let (records, r) = ok(&mut groups, leave, 0);
    assert_eq!(r.member_epoch, -2);
    assert_eq!(records.len(), 1, "only the current assignment is rewritten");
    let g = groups.group("g").unwrap();
    assert_eq!(
        g.group_epoch, epoch_before,
        "a static leave does not rebalance"
    );
    assert_eq!(g.members["a1"].current.member_epoch, -2);
    // The replacement takes over a1's partitions without a rebalance.
    let (_, r) = ok(&mut groups, static_join("a2", &view), 0);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(parts(&r.assignment), vec![0]);
    let g = groups.group("g").unwrap();
    assert_eq!(g.group_epoch, epoch_before);
    assert!(!g.members.contains_key("a1"));
    assert_eq!(g.static_members["i"], "a2");
    // The old member id is fenced by the new one.
    let stale = ConsumerHeartbeat {
        instance_id: Some("i".into()),
        ..beat("a1", 2, None, &view)
    };
    assert_eq!(err(&mut groups, stale), ConsumerErrorCode::FencedInstanceId);
    let unknown = ConsumerHeartbeat {
        instance_id: Some("j".into()),
        ..beat("a2", 2, None, &view)
    };
    assert_eq!(
        err(&mut groups, unknown),
        ConsumerErrorCode::UnknownMemberId
    );
}

#[test]
fn static_member_that_never_returns_expires() {
    let view = topics(1);
    let mut groups = ConsumerGroups::new(config());
    ok(&mut groups, static_join("a1", &view), 0);
    let leave = ConsumerHeartbeat {
        instance_id: Some("i".into()),
        ..beat("a1", -2, None, &view)
    };
    ok(&mut groups, leave, 1_000);
    groups.tick(45_000);
    assert!(groups.group("g").unwrap().members.is_empty());
}

#[test]
fn partition_count_change_computes_a_new_target() {
    let mut groups = ConsumerGroups::new(config());
    ok(&mut groups, join("a", &["t"], &topics(1)), 0);
    let (_, r) = ok(&mut groups, beat("a", 1, Some(&[0]), &topics(3)), 0);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(parts(&r.assignment), vec![0, 1, 2]);
}

#[test]
fn subscription_change_and_missing_topics() {
    let view = topics(2);
    let mut groups = ConsumerGroups::new(config());
    let (_, r) = ok(&mut groups, join("a", &["missing"], &view), 0);
    assert_eq!(r.assignment, Some(Assignment::new()));
    let c = ConsumerHeartbeat {
        subscribed_topic_names: Some(vec!["u".into()]),
        ..beat("a", 1, None, &view)
    };
    let (_, r) = ok(&mut groups, c, 0);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(r.assignment.unwrap()[&U], BTreeSet::from([0, 1]));
}

#[test]
fn range_assignor_is_chosen_by_the_member() {
    let view = topics(3);
    let mut groups = ConsumerGroups::new(config());
    let c = ConsumerHeartbeat {
        server_assignor: Some("range".into()),
        ..join("a", &["t"], &view)
    };
    ok(&mut groups, c, 0);
    let c = ConsumerHeartbeat {
        server_assignor: Some("range".into()),
        ..join("b", &["t"], &view)
    };
    ok(&mut groups, c, 0);
    let g = groups.group("g").unwrap();
    assert_eq!(g.target["a"][&T], BTreeSet::from([0, 1]));
    assert_eq!(g.target["b"][&T], BTreeSet::from([2]));
    let d = groups.describe(&["g".into(), "x".into()]);
    assert_eq!(d[0].assignor_name, "range");
    assert_eq!(d[0].members.len(), 2);
    assert_eq!(
        d[1].error.as_ref().map(|e| e.code),
        Some(ConsumerErrorCode::GroupIdNotFound)
    );
}

#[test]
fn describe_reports_states_and_epochs() {
    let view = topics(2);
    let mut groups = ConsumerGroups::new(config());
    ok(&mut groups, join("a", &["t"], &view), 0);
    ok(&mut groups, join("b", &["t"], &view), 0);
    let d = &groups.describe(&["g".into()])[0];
    assert_eq!(
        (d.state.as_str(), d.group_epoch, d.assignment_epoch),
        ("Reconciling", 2, 2)
    );
    assert_eq!(d.assignor_name, "uniform");
    let a = d.members.iter().find(|m| m.member_id == "a").unwrap();
    assert_eq!(a.member_epoch, 1);
    assert_eq!(a.assignment[&T], BTreeSet::from([0, 1]));
    assert_eq!(a.target_assignment[&T], BTreeSet::from([0]));
    assert_eq!(a.client_host, "/127.0.0.1");
    assert_eq!(a.subscribed_topic_names, vec!["t".to_string()]);
}

#[test]
fn offset_commits_and_fetches_check_the_member_epoch() {
    let view = topics(1);
    let mut groups = ConsumerGroups::new(config());
    ok(&mut groups, join("a", &["t"], &view), 0);
    assert_eq!(groups.validate_offset_commit("g", "a", 1, 9), Ok(()));
    let code = |r: Result<(), ConsumerError>| r.err().map(|e| e.code);
    assert_eq!(
        code(groups.validate_offset_commit("g", "a", 0, 9)),
        Some(ConsumerErrorCode::StaleMemberEpoch)
    );
    assert_eq!(
        code(groups.validate_offset_commit("g", "b", 1, 9)),
        Some(ConsumerErrorCode::UnknownMemberId)
    );
    assert_eq!(
        code(groups.validate_offset_commit("g", "a", 1, 8)),
        Some(ConsumerErrorCode::UnsupportedVersion)
    );
    assert_eq!(
        code(groups.validate_offset_commit("g", "", -1, 9)),
        Some(ConsumerErrorCode::UnknownMemberId)
    );
    assert_eq!(groups.validate_offset_commit("other", "", -1, 2), Ok(()));
    assert_eq!(groups.validate_offset_fetch("g", None, -1), Ok(()));
    assert_eq!(groups.validate_offset_fetch("g", Some("a"), 1), Ok(()));
    assert_eq!(
        code(groups.validate_offset_fetch("g", Some("a"), 3)),
        Some(ConsumerErrorCode::StaleMemberEpoch)
    );
    ok(&mut groups, beat("a", -1, None, &view), 0);
    assert_eq!(
        groups.validate_offset_commit("g", "", -1, 9),
        Ok(()),
        "empty group: simple commit"
    );
    assert!(groups.delete_empty("g").is_some());
    assert!(groups.group("g").is_none());
}

/// Normalised state a replay must reproduce (timers are rebuilt from the load time).
fn snapshot(groups: &ConsumerGroups) -> Vec<ConsumerGroup> {
    groups
        .groups
        .values()
        .map(|g| {
            let mut g = g.clone();
            for m in g.members.values_mut() {
                m.session_deadline_ms = 0;
                m.rebalance_timer = None;
            }
            g
        })
        .collect()
}

#[test]
fn replaying_the_records_rebuilds_the_same_state() {
    let view = topics(4);
    let mut groups = ConsumerGroups::new(config());
    let mut log = Vec::new();
    let run = |groups: &mut ConsumerGroups, c: ConsumerHeartbeat| groups.heartbeat(c, 0).0;
    log.extend(run(&mut groups, static_join("a1", &view)));
    log.extend(run(&mut groups, join("b", &["t", "u"], &view)));
    log.extend(run(&mut groups, join("c", &["u"], &view)));
    log.extend(run(&mut groups, beat("a1", 1, Some(&[0, 1, 2, 3]), &view)));
    log.extend(run(&mut groups, beat("b", 3, Some(&[]), &view)));
    log.extend(run(
        &mut groups,
        ConsumerHeartbeat {
            instance_id: Some("i".into()),
            ..beat("a1", -2, None, &view)
        },
    ));
    log.extend(run(&mut groups, static_join("a2", &view)));
    log.extend(run(&mut groups, beat("c", -1, None, &view)));
    log.extend(groups.tick(100_000_000));
    log.extend(run(&mut groups, join("d", &["t"], &view)));
    let mut replayed = ConsumerGroups::new(config());
    for r in &log {
        let record = ConsumerRecord::decode(&r.key, r.value.as_deref())
            .unwrap()
            .unwrap();
        replayed.replay(record, 0);
    }
    assert_eq!(snapshot(&replayed), snapshot(&groups));
}

#[test]
fn records_round_trip() {
    let current = CurrentAssignment {
        member_epoch: 5,
        previous_member_epoch: 4,
        state: MemberState::UnrevokedPartitions,
        assigned: BTreeMap::from([(T, BTreeSet::from([0, 2]))]),
        pending_revocation: BTreeMap::from([(U, BTreeSet::from([1]))]),
    };
    let subscription = Subscription {
        instance_id: Some("i".into()),
        rack_id: None,
        client_id: "c".into(),
        client_host: "/h".into(),
        subscribed_topic_names: BTreeSet::from(["t".to_string(), "u".to_string()]),
        subscribed_topic_regex: Some("x.*".into()),
        rebalance_timeout_ms: 300_000,
        server_assignor: Some("range".into()),
    };
    let g = || "g".to_string();
    let m = || "m".to_string();
    let all = [
        ConsumerRecord::GroupEpoch {
            group: g(),
            epoch: Some(7),
        },
        ConsumerRecord::GroupEpoch {
            group: g(),
            epoch: None,
        },
        ConsumerRecord::PartitionMetadata {
            group: g(),
            topics: Some(vec![(
                "t".into(),
                TopicMetadata {
                    id: T,
                    partitions: 3,
                },
            )]),
        },
        ConsumerRecord::MemberMetadata {
            group: g(),
            member: m(),
            subscription: Some(subscription),
        },
        ConsumerRecord::TargetEpoch {
            group: g(),
            epoch: Some(7),
        },
        ConsumerRecord::TargetMember {
            group: g(),
            member: m(),
            assignment: Some(current.assigned.clone()),
        },
        ConsumerRecord::CurrentMember {
            group: g(),
            member: m(),
            current: Some(current),
        },
        ConsumerRecord::CurrentMember {
            group: g(),
            member: m(),
            current: None,
        },
    ];
    for record in all {
        let encoded = record.encode().unwrap();
        let back = ConsumerRecord::decode(&encoded.key, encoded.value.as_deref()).unwrap();
        assert_eq!(back, Some(record));
    }
}

/// Bytes as Kafka writes them: key version 3 + int16 string; value version 0, epoch, no tags.
#[test]
fn group_epoch_record_matches_kafka_bytes() {
    let r = ConsumerRecord::GroupEpoch {
        group: "g".into(),
        epoch: Some(1),
    }
    .encode()
    .unwrap();
    assert_eq!(&r.key[..], &[0, 3, 0, 1, b'g']);
    assert_eq!(r.value.as_deref(), Some(&[0, 0, 0, 0, 0, 1, 0][..]));
    // A tagged field written by a newer Kafka is skipped.
    let with_tag = [0, 0, 0, 0, 0, 1, 1, 0, 2, 0xab, 0xcd];
    let back = ConsumerRecord::decode(&r.key, Some(&with_tag)).unwrap();
    assert_eq!(
        back,
        Some(ConsumerRecord::GroupEpoch {
            group: "g".into(),
            epoch: Some(1)
        })
    );
    assert_eq!(
        ConsumerRecord::decode(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0], None).unwrap(),
        None
    );
    assert!(ConsumerRecord::decode(&[0, 3, 0, 9, b'g'], None).is_err());
}

fn spec_members(members: &[(&str, &[TopicId])]) -> BTreeMap<String, BTreeSet<TopicId>> {
    members
        .iter()
        .map(|(m, t)| (m.to_string(), t.iter().copied().collect()))
        .collect()
}

fn counts(result: &BTreeMap<String, Assignment>) -> Vec<usize> {
    result
        .values()
        .map(|a| a.values().map(BTreeSet::len).sum())
        .collect()
}

#[test]
fn uniform_is_balanced_complete_and_sticky() {
    let partitions = BTreeMap::from([(T, 7), (U, 5)]);
    let members = spec_members(&[("a", &[T, U]), ("b", &[T, U]), ("c", &[T, U])]);
    let none = BTreeMap::new();
    let first = uniform_assign(&AssignmentSpec {
        subscriptions: &members,
        partitions: &partitions,
        previous: &none,
    });
    let c = counts(&first);
    assert_eq!(c.iter().sum::<usize>(), 12);
    assert!(
        c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
        "{c:?}"
    );
    // Adding a member moves only what balance needs.
    let more = spec_members(&[
        ("a", &[T, U]),
        ("b", &[T, U]),
        ("c", &[T, U]),
        ("d", &[T, U]),
    ]);
    let second = uniform_assign(&AssignmentSpec {
        subscriptions: &more,
        partitions: &partitions,
        previous: &first,
    });
    assert_eq!(counts(&second), vec![3, 3, 3, 3]);
    for m in ["a", "b", "c"] {
        let kept = second[m].iter().all(|(t, p)| p.is_subset(&first[m][t]));
        assert!(kept, "{m} only lost partitions");
    }
    // Same input, same output.
    let again = uniform_assign(&AssignmentSpec {
        subscriptions: &more,
        partitions: &partitions,
        previous: &first,
    });
    assert_eq!(again, second);
}

#[test]
fn uniform_balances_heterogeneous_subscriptions() {
    let partitions = BTreeMap::from([(T, 6), (U, 2)]);
    let members = spec_members(&[("a", &[T]), ("b", &[T, U]), ("c", &[U])]);
    let none = BTreeMap::new();
    let out = uniform_assign(&AssignmentSpec {
        subscriptions: &members,
        partitions: &partitions,
        previous: &none,
    });
    assert_eq!(counts(&out).iter().sum::<usize>(), 8);
    assert!(out["a"].keys().all(|t| *t == T));
    assert!(out["c"].keys().all(|t| *t == U));
    let c = counts(&out);
    assert!(c[0] >= 3 && c[1] >= 3, "{c:?}");
}

#[test]
fn range_gives_contiguous_ranges_in_member_order() {
    let partitions = BTreeMap::from([(T, 5), (U, 2)]);
    let members = spec_members(&[("b", &[T, U]), ("a", &[T, U])]);
    let none = BTreeMap::new();
    let out = range_assign(&AssignmentSpec {
        subscriptions: &members,
        partitions: &partitions,
        previous: &none,
    });
    assert_eq!(out["a"][&T], BTreeSet::from([0, 1, 2]));
    assert_eq!(out["b"][&T], BTreeSet::from([3, 4]));
    assert_eq!(out["a"][&U], BTreeSet::from([0]));
    assert_eq!(out["b"][&U], BTreeSet::from([1]));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Join(usize),
        Beat(usize),
        Leave(usize),
        Tick(i64),
        Grow,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => (0..4usize).prop_map(Op::Join),
            4 => (0..4usize).prop_map(Op::Beat),
            1 => (0..4usize).prop_map(Op::Leave),
            1 => (0..60_000i64).prop_map(Op::Tick),
            1 => Just(Op::Grow),
        ]
    }

    /// A well-behaved client: it keeps what the last response assigned it.
    #[derive(Default, Clone)]
    struct Client {
        epoch: Option<i32>,
        owned: Vec<i32>,
    }

    fn held_disjoint(groups: &ConsumerGroups) -> bool {
        let Some(g) = groups.group("g") else {
            return true;
        };
        let mut seen = BTreeSet::new();
        g.members
            .values()
            .flat_map(|m| m.owned())
            .all(|tp| seen.insert(tp))
    }

    fn send(
        groups: &mut ConsumerGroups,
        clients: &mut [Client],
        i: usize,
        c: ConsumerHeartbeat,
        now: i64,
    ) -> Vec<GroupRecord> {
        let (records, r) = groups.heartbeat(c, now);
        let client = &mut clients[i];
        match r.error {
            None if r.member_epoch >= 0 => {
                client.epoch = Some(r.member_epoch);
                if let Some(a) = r.assignment {
                    client.owned = a
                        .get(&T)
                        .map(|p| p.iter().copied().collect())
                        .unwrap_or_default();
                }
            }
            _ => *client = Client::default(),
        }
        records
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn no_partition_is_ever_held_twice_and_groups_converge(ops in proptest::collection::vec(op(), 1..60)) {
            let mut partitions = 3;
            let mut groups = ConsumerGroups::new(ConsumerConfig { max_size: 10, ..ConsumerConfig::default() });
            let mut clients = vec![Client::default(); 4];
            let mut now = 0i64;
            let mut log = Vec::new();
            let names = ["m0", "m1", "m2", "m3"];
            for op in ops {
                let view = topics(partitions);
                match op {
                    Op::Join(i) => {
                        let records = send(&mut groups, &mut clients, i, join(names[i], &["t"], &view), now);
                        log.extend(records);
                    }
                    Op::Beat(i) => {
                        if let Some(epoch) = clients[i].epoch {
                            let owned = clients[i].owned.clone();
                            let c = beat(names[i], epoch, Some(&owned), &view);
                            log.extend(send(&mut groups, &mut clients, i, c, now));
                        }
                    }
                    Op::Leave(i) => {
                        if clients[i].epoch.is_some() {
                            log.extend(send(&mut groups, &mut clients, i, beat(names[i], -1, None, &view), now));
                            clients[i] = Client::default();
                        }
                    }
                    Op::Tick(ms) => {
                        now += ms;
                        log.extend(groups.tick(now));
                    }
                    Op::Grow => partitions = (partitions + 1).min(8),
                }
                prop_assert!(held_disjoint(&groups));
            }
            // Replaying the log gives the same state.
            let mut replayed = ConsumerGroups::new(ConsumerConfig { max_size: 10, ..ConsumerConfig::default() });
            for r in &log {
                let record = ConsumerRecord::decode(&r.key, r.value.as_deref()).unwrap().unwrap();
                replayed.replay(record, 0);
            }
            prop_assert_eq!(snapshot(&replayed), snapshot(&groups));
            // With everyone heartbeating and no time passing, the group becomes Stable.
            let view = topics(partitions);
            for _ in 0..6 {
                for i in 0..4 {
                    if let Some(epoch) = clients[i].epoch {
                        let owned = clients[i].owned.clone();
                        send(&mut groups, &mut clients, i, beat(names[i], epoch, Some(&owned), &view), now);
                    }
                }
            }
            if let Some(g) = groups.group("g") {
                prop_assert!(matches!(g.state(), ConsumerGroupState::Stable | ConsumerGroupState::Empty), "{:?}", g.state());
                let assigned: usize = g.members.values().map(|m| m.current.assigned.values().map(BTreeSet::len).sum::<usize>()).sum();
                let total = if g.members.is_empty() { 0 } else { usize::try_from(partitions).unwrap() };
                prop_assert_eq!(assigned, total);
            }
        }

        #[test]
        fn assignors_give_each_partition_to_one_subscriber(
            subs in proptest::collection::btree_map("[a-e]", proptest::collection::btree_set(0u8..3, 0..3), 1..5),
            counts in proptest::collection::vec(0i32..7, 3),
            range in any::<bool>(),
        ) {
            let ids = [T, U, TopicId([3; 16])];
            let subscriptions: BTreeMap<String, BTreeSet<TopicId>> = subs
                .iter()
                .map(|(m, t)| (m.clone(), t.iter().map(|i| ids[usize::from(*i)]).collect()))
                .collect();
            let partitions: BTreeMap<TopicId, i32> = ids.iter().copied().zip(counts.iter().copied()).collect();
            let none = BTreeMap::new();
            let spec = AssignmentSpec { subscriptions: &subscriptions, partitions: &partitions, previous: &none };
            let out = if range { range_assign(&spec) } else { uniform_assign(&spec) };
            for (topic, count) in &partitions {
                let subscribed = subscriptions.values().any(|t| t.contains(topic));
                for p in 0..*count {
                    let owners: Vec<&String> = out.iter().filter(|(_, a)| a.get(topic).is_some_and(|s| s.contains(&p))).map(|(m, _)| m).collect();
                    prop_assert_eq!(owners.len(), usize::from(subscribed));
                    for m in owners {
                        prop_assert!(subscriptions[m].contains(topic));
                    }
                }
            }
            // Uniform with identical subscriptions is balanced within one partition.
            let same = subscriptions.values().all(|t| Some(t) == subscriptions.values().next());
            if !range && same {
                let c = counts_of(&out);
                prop_assert!(c.iter().max().unwrap() - c.iter().min().unwrap() <= 1, "{:?}", c);
            }
        }
    }

    fn counts_of(result: &BTreeMap<String, Assignment>) -> Vec<usize> {
        super::counts(result)
    }
}

mod one_type_per_group_id {
    use super::*;
    use crate::coordinator::Output;
    use crate::group::{Group, GroupState};
    use crate::records::RecordKey;
    use crate::types::ListGroups;

    fn classic(state: GroupState, protocol: Option<&str>) -> BTreeMap<String, Group> {
        let mut g = Group::new("g", 0);
        g.state = state;
        g.protocol_type = protocol.map(str::to_owned);
        g.generation_id = i32::from(protocol.is_some());
        BTreeMap::from([("g".to_string(), g)])
    }

    #[test]
    fn a_classic_group_in_use_is_not_a_consumer_group() {
        let view = topics(1);
        let mut groups = ConsumerGroups::new(config());
        let mut classic = classic(GroupState::Stable, Some("consumer"));
        let mut out = Output::default();
        let r = bridge_heartbeat(
            &mut classic,
            &mut groups,
            join("a", &["t"], &view),
            0,
            &mut out,
        );
        assert_eq!(
            r.error.map(|e| (e.code, e.message)),
            Some((
                ConsumerErrorCode::GroupIdNotFound,
                "Group g is not a consumer group.".to_string()
            ))
        );
        assert!(out.records.is_empty());
        let d = describe_group(&classic, &groups, "g");
        assert_eq!(
            d.error.map(|e| e.message),
            Some("Group g is not a consumer group.".to_string())
        );
        let d = describe_group(&classic, &groups, "h");
        assert_eq!(
            d.error.map(|e| e.message),
            Some("Group h not found.".to_string())
        );
    }

    #[test]
    fn an_empty_classic_group_is_converted_and_keeps_its_offsets() {
        let view = topics(1);
        let mut groups = ConsumerGroups::new(config());
        let mut classic = classic(GroupState::Empty, Some("consumer"));
        let mut out = Output::default();
        let r = bridge_heartbeat(
            &mut classic,
            &mut groups,
            join("a", &["t"], &view),
            0,
            &mut out,
        );
        assert_eq!((r.error, r.member_epoch), (None, 1));
        let first = RecordKey::decode(&out.records[0].key).unwrap();
        assert!(matches!(first, Some(RecordKey::GroupMetadata(_))));
        assert_eq!(
            out.records[0].value, None,
            "the classic metadata is tombstoned first"
        );
        assert_eq!(
            classic["g"].protocol_type, None,
            "the entry stays, holding offsets only"
        );
        let listed = list_groups(
            &groups,
            &ListGroups {
                states: vec!["stable".into()],
                types: vec!["Consumer".into()],
            },
        );
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (
                listed[0].group_type.as_str(),
                listed[0].protocol_type.as_str()
            ),
            ("consumer", "consumer")
        );
        let none = list_groups(
            &groups,
            &ListGroups {
                states: vec![],
                types: vec!["classic".into()],
            },
        );
        assert!(none.is_empty());
    }

    #[test]
    fn classic_joins_and_deletes_respect_consumer_groups() {
        let view = topics(1);
        let mut groups = ConsumerGroups::new(config());
        let mut classic = BTreeMap::new();
        let mut out = Output::default();
        bridge_heartbeat(
            &mut classic,
            &mut groups,
            join("a", &["t"], &view),
            0,
            &mut out,
        );
        assert_eq!(
            before_classic_join(&mut groups, "g", &mut out),
            Err(crate::ErrorCode::InconsistentGroupProtocol)
        );
        assert_eq!(
            delete_group(&mut classic, &mut groups, "g", &mut out),
            Some(crate::ErrorCode::NonEmptyGroup)
        );
        assert_eq!(
            delete_group(&mut classic, &mut groups, "other", &mut out),
            None
        );
        groups.heartbeat(beat("a", -1, None, &view), 0);
        let mut out = Output::default();
        assert_eq!(
            delete_group(&mut classic, &mut groups, "g", &mut out),
            Some(crate::ErrorCode::None)
        );
        assert_eq!(
            out.records.len(),
            3,
            "target epoch, partition metadata and group epoch tombstones"
        );
        assert!(out.records.iter().all(|r| r.value.is_none()));
        assert!(groups.group("g").is_none());
        // An empty consumer group gives way to a classic join.
        bridge_heartbeat(
            &mut classic,
            &mut groups,
            join("b", &["t"], &view),
            0,
            &mut Output::default(),
        );
        groups.heartbeat(beat("b", -1, None, &view), 0);
        let mut out = Output::default();
        assert_eq!(before_classic_join(&mut groups, "g", &mut out), Ok(()));
        assert!(groups.group("g").is_none());
        assert!(!out.records.is_empty());
    }
}

/// A state byte from a newer coordinator: the member must come back without partitions.
#[test]
fn a_member_in_an_unknown_state_is_reconciled_from_scratch() {
    let view = topics(2);
    let mut groups = ConsumerGroups::new(config());
    ok(&mut groups, join("a", &["t"], &view), 0);
    let mut current = groups.group("g").unwrap().members["a"].current.clone();
    current.state = MemberState::Unknown;
    groups.replay(
        ConsumerRecord::CurrentMember {
            group: "g".into(),
            member: "a".into(),
            current: Some(current),
        },
        0,
    );
    assert_eq!(
        err(&mut groups, beat("a", 1, Some(&[0, 1]), &view)),
        ConsumerErrorCode::FencedMemberEpoch
    );
    assert_eq!(
        err(&mut groups, beat("a", 1, None, &view)),
        ConsumerErrorCode::FencedMemberEpoch
    );
    let (records, r) = ok(&mut groups, beat("a", 1, Some(&[]), &view), 0);
    assert_eq!(r.member_epoch, 1);
    assert_eq!(records.len(), 1, "the reconciled state is written");
    assert_eq!(
        groups.group("g").unwrap().members["a"].current.state,
        MemberState::Stable
    );
}

#[test]
fn regex_subscriptions_match_whole_topic_names() {
    let view = Arc::new(Topics::new([
        TopicInfo {
            id: T,
            name: "orders-eu".into(),
            partitions: 1,
        },
        TopicInfo {
            id: U,
            name: "orders-us".into(),
            partitions: 1,
        },
        TopicInfo {
            id: TopicId([3; 16]),
            name: "my-orders-eu".into(),
            partitions: 1,
        },
        TopicInfo {
            id: TopicId([4; 16]),
            name: "__consumer_offsets".into(),
            partitions: 1,
        },
    ]));
    let mut groups = ConsumerGroups::new(config());
    let c = ConsumerHeartbeat {
        subscribed_topic_names: None,
        subscribed_topic_regex: Some("orders-.*".into()),
        ..join("a", &[], &view)
    };
    let (_, r) = ok(&mut groups, c, 0);
    let topics: BTreeSet<TopicId> = r.assignment.unwrap().keys().copied().collect();
    assert_eq!(topics, BTreeSet::from([T, U]));
    let all = ConsumerHeartbeat {
        subscribed_topic_names: None,
        subscribed_topic_regex: Some(".*".into()),
        ..join("b", &[], &view)
    };
    ok(&mut groups, all, 0);
    let names = groups.subscribed_topics("g").unwrap();
    assert!(
        !names.contains("__consumer_offsets"),
        "internal topics never match"
    );
    // An empty regex clears the regex subscription.
    let clear = ConsumerHeartbeat {
        subscribed_topic_regex: Some(String::new()),
        ..beat("b", 2, None, &view)
    };
    ok(&mut groups, clear, 0);
    assert_eq!(
        groups.group("g").unwrap().members["b"]
            .subscription
            .subscribed_topic_regex,
        None
    );
}

#[test]
fn group_configs_override_the_session_timeout_and_heartbeat_interval() {
    let view = topics(1);
    let mut groups = ConsumerGroups::new(config());
    let c = ConsumerHeartbeat {
        session_timeout_ms: Some(50_000),
        heartbeat_interval_ms: Some(250),
        ..join("a", &["t"], &view)
    };
    let (_, r) = ok(&mut groups, c, 0);
    assert_eq!(r.heartbeat_interval_ms, 250);
    // The broker's 45 s would have fenced it by now; the group's 50 s has not.
    assert!(groups.tick(49_999).is_empty());
    assert!(!groups.tick(50_000).is_empty());
}

/// A revoking member's records replayed in either order (after compaction its metadata
/// may follow its current assignment): its revocation deadline is its own rebalance
/// timeout after the load, not the load's instant.
#[test]
fn a_revoking_member_loaded_in_any_record_order_keeps_its_rebalance_timeout() {
    let rebalance_timeout_ms = 30_000;
    let metadata = ConsumerRecord::MemberMetadata {
        group: "g".into(),
        member: "m".into(),
        subscription: Some(Subscription {
            client_id: "c".into(),
            client_host: "/h".into(),
            subscribed_topic_names: BTreeSet::from(["t".to_string()]),
            rebalance_timeout_ms,
            ..Subscription::default()
        }),
    };
    let current = ConsumerRecord::CurrentMember {
        group: "g".into(),
        member: "m".into(),
        current: Some(CurrentAssignment {
            member_epoch: 5,
            previous_member_epoch: 4,
            state: MemberState::UnrevokedPartitions,
            assigned: BTreeMap::from([(T, BTreeSet::from([0]))]),
            pending_revocation: BTreeMap::from([(T, BTreeSet::from([1]))]),
        }),
    };
    let config = ConsumerConfig::default();
    // Past the revocation deadline, before the session's end: only revocation fences.
    assert!(rebalance_timeout_ms < config.session_timeout_ms);
    for order in [[&metadata, &current], [&current, &metadata]] {
        let mut groups = ConsumerGroups::new(config.clone());
        let load_ms = 1_000;
        for record in order {
            groups.replay(record.clone(), load_ms);
        }
        assert!(
            groups.tick(load_ms + 1).is_empty(),
            "fenced at load ({order:?})"
        );
        assert!(groups.group("g").unwrap().members.contains_key("m"));
        let fenced = groups.tick(load_ms + i64::from(rebalance_timeout_ms));
        assert!(!fenced.is_empty(), "not fenced at its deadline ({order:?})");
        assert!(!groups.group("g").unwrap().members.contains_key("m"));
    }
}
