//! Partition reassignment: the state machine of AlterPartitionReassignments (start, catch
//! up, complete, cancel), ListPartitionReassignments, and Kafka's per-partition errors.

mod common;
use common::*;
use strom_meta::*;

fn topic(
    c: &mut Controller,
    image: &MetadataImage,
    name: &str,
    replicas: &[&[i32]],
) -> MetadataImage {
    let create = ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics: vec![CreatableTopic {
            assignments: replicas
                .iter()
                .enumerate()
                .map(|(i, r)| (i as i32, r.to_vec()))
                .collect(),
            ..CreatableTopic::named(name)
        }],
        validate_only: false,
    });
    let (next, _, _, reply) = commit(c, image, create, 0);
    let ControllerReply::CreateTopics(results) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    assert_eq!(results[0].error, None);
    next
}

fn partition(image: &MetadataImage, name: &str, index: i32) -> PartitionImage {
    let id = image.topic_id(name).unwrap();
    image.partition(id, index).unwrap().clone()
}

/// Sends one AlterPartitionReassignments and returns the image and per-partition codes.
fn reassign(
    c: &mut Controller,
    image: &MetadataImage,
    allow_rf_change: bool,
    items: &[(&str, i32, Option<&[i32]>)],
) -> (MetadataImage, Vec<Option<ErrorCode>>) {
    let topics = items
        .iter()
        .map(|(t, p, r)| (t.to_string(), vec![(*p, r.map(<[i32]>::to_vec))]))
        .collect();
    let request =
        ControllerRequest::AlterPartitionReassignments(AlterPartitionReassignmentsRequest {
            allow_replication_factor_change: allow_rf_change,
            topics,
        });
    let (next, _, _, reply) = commit(c, image, request, 0);
    let ControllerReply::AlterPartitionReassignments(results) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    let codes = results
        .iter()
        .flat_map(|t| t.partitions.iter().map(|(_, e)| e.as_ref().map(|e| e.code)))
        .collect();
    (next, codes)
}

fn list(
    c: &mut Controller,
    image: &MetadataImage,
    topics: Option<Vec<(&str, Vec<i32>)>>,
) -> Vec<OngoingTopicReassignment> {
    let request =
        ControllerRequest::ListPartitionReassignments(ListPartitionReassignmentsRequest {
            topics: topics.map(|t| t.into_iter().map(|(n, p)| (n.to_string(), p)).collect()),
        });
    let (records, reply) = c.handle(image, request, 0).unwrap();
    assert!(records.is_empty(), "listing writes nothing");
    let ControllerReply::ListPartitionReassignments(found) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    found
}

/// The leader reports `new_isr` (a follower caught up, or fell behind).
fn set_isr(
    c: &mut Controller,
    image: &MetadataImage,
    name: &str,
    index: i32,
    new_isr: &[i32],
) -> MetadataImage {
    let id = image.topic_id(name).unwrap();
    let p = image.partition(id, index).unwrap();
    let request = ControllerRequest::AlterPartition(AlterPartitionRequest {
        broker_id: p.leader,
        broker_epoch: broker_epoch(image, p.leader),
        partitions: vec![AlterPartitionItem {
            topic_id: id,
            partition: index,
            leader_epoch: p.leader_epoch,
            new_isr: new_isr.to_vec(),
            partition_epoch: p.partition_epoch,
        }],
    });
    let (next, _, _, reply) = commit(c, image, request, 0);
    let ControllerReply::AlterPartition(results) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    assert_eq!(results[0].error, None, "{new_isr:?}");
    next
}

fn tick(c: &mut Controller, image: &MetadataImage) -> MetadataImage {
    let records = c.tick(image, 0);
    image.apply(&records).unwrap().0
}

#[test]
fn a_move_adds_followers_waits_for_them_then_removes_the_old_replica() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3, 4]);
    let image = topic(&mut c, &image, "t", &[&[1, 2, 3]]);
    let before = partition(&image, "t", 0);

    let (moving, delta, _, reply) = commit(
        &mut c,
        &image,
        reassign_request(&[("t", 0, Some(&[4, 2, 3]))]),
        0,
    );
    assert_eq!(
        reply,
        ControllerReply::AlterPartitionReassignments(vec![ReassignmentTopicResult {
            topic: "t".into(),
            partitions: vec![(0, None)],
        }])
    );
    let p = partition(&moving, "t", 0);
    // Target first, then the replica being removed; the leader and ISR are untouched.
    assert_eq!(p.replicas, vec![4, 2, 3, 1]);
    assert_eq!(
        (p.adding_replicas.clone(), p.removing_replicas.clone()),
        (vec![4], vec![1])
    );
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2, 3]));
    assert_eq!(p.leader_epoch, before.leader_epoch);
    // The new replica's broker is told to follow; nobody deletes anything yet.
    let for_4 = delta.local_changes(4, &moving);
    assert_eq!(for_4.followers.len(), 1);
    assert!(delta.local_changes(1, &moving).deletes.is_empty());
    assert_eq!(
        list(&mut c, &moving, None),
        vec![OngoingTopicReassignment {
            topic: "t".into(),
            partitions: vec![OngoingPartitionReassignment {
                partition: 0,
                replicas: vec![4, 2, 3, 1],
                adding_replicas: vec![4],
                removing_replicas: vec![1],
            }],
        }]
    );

    // Not in sync yet: the periodic pass leaves it alone.
    let waiting = tick(&mut c, &moving);
    assert_eq!(partition(&waiting, "t", 0), p);

    // Broker 4 caught up and joined the ISR: the next pass completes the move. Broker 1
    // led, so leadership goes to the first in-sync target replica, 4.
    let caught_up = set_isr(&mut c, &waiting, "t", 0, &[1, 2, 3, 4]);
    let records = c.tick(&caught_up, 0);
    let (done, delta) = caught_up.apply(&records).unwrap();
    let p = partition(&done, "t", 0);
    assert_eq!(p.replicas, vec![4, 2, 3]);
    assert_eq!((p.leader, p.isr.clone()), (4, vec![2, 3, 4]));
    assert!(!p.is_reassigning());
    assert!(p.leader_epoch > partition(&caught_up, "t", 0).leader_epoch);
    // Only now, by this committed change, is broker 1 told to delete its replica.
    let deletes = delta.local_changes(1, &done).deletes;
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].1, "t");
    assert!(list(&mut c, &done, None).is_empty());
}

fn reassign_request(items: &[(&str, i32, Option<&[i32]>)]) -> ControllerRequest {
    ControllerRequest::AlterPartitionReassignments(AlterPartitionReassignmentsRequest {
        allow_replication_factor_change: true,
        topics: items
            .iter()
            .map(|(t, p, r)| (t.to_string(), vec![(*p, r.map(<[i32]>::to_vec))]))
            .collect(),
    })
}

#[test]
fn removing_a_follower_keeps_the_leader_and_bumps_its_epoch() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3, 4]);
    let image = topic(&mut c, &image, "t", &[&[1, 2, 3]]);
    let (moving, _) = reassign(&mut c, &image, false, &[("t", 0, Some(&[1, 2, 4]))]);
    let epoch = partition(&moving, "t", 0).leader_epoch;
    let done = {
        let isr = set_isr(&mut c, &moving, "t", 0, &[1, 2, 3, 4]);
        tick(&mut c, &isr)
    };
    let p = partition(&done, "t", 0);
    assert_eq!(
        (p.replicas.clone(), p.leader, p.isr.clone()),
        (vec![1, 2, 4], 1, vec![1, 2, 4])
    );
    // The removed replica's fetches at the old epoch are fenced.
    assert_eq!(p.leader_epoch, epoch + 1);
}

#[test]
fn a_reordering_completes_at_once_without_moving_the_leader() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3]);
    let image = topic(&mut c, &image, "t", &[&[1, 2, 3]]);
    let (after, codes) = reassign(&mut c, &image, false, &[("t", 0, Some(&[3, 2, 1]))]);
    assert_eq!(codes, vec![None]);
    let p = partition(&after, "t", 0);
    assert_eq!(
        (p.replicas.clone(), p.leader, p.is_reassigning()),
        (vec![3, 2, 1], 1, false)
    );
    // The same target again is a no-op, and no reassignment is left to cancel.
    let (same, codes) = reassign(&mut c, &after, false, &[("t", 0, Some(&[3, 2, 1]))]);
    assert_eq!((codes, partition(&same, "t", 0)), (vec![None], p));
    let (_, codes) = reassign(&mut c, &after, false, &[("t", 0, None)]);
    assert_eq!(codes, vec![Some(ErrorCode::NoReassignmentInProgress)]);
}

#[test]
fn cancelling_reverts_to_the_original_replicas() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3, 4, 5]);
    let image = topic(&mut c, &image, "t", &[&[1, 2, 3]]);
    let (moving, _) = reassign(&mut c, &image, false, &[("t", 0, Some(&[4, 5, 3]))]);
    // Broker 4 caught up, 5 has not: the move waits, and is cancelled.
    let half = set_isr(&mut c, &moving, "t", 0, &[1, 2, 3, 4]);
    assert_eq!(
        partition(&tick(&mut c, &half), "t", 0),
        partition(&half, "t", 0)
    );
    let (reverted, codes) = reassign(&mut c, &half, false, &[("t", 0, None)]);
    assert_eq!(codes, vec![None]);
    let p = partition(&reverted, "t", 0);
    assert_eq!(p.replicas, vec![3, 1, 2]);
    assert_eq!(
        (p.leader, p.isr.clone(), p.is_reassigning()),
        (1, vec![1, 2, 3], false)
    );
    assert!(list(&mut c, &reverted, Some(vec![("t", vec![0])])).is_empty());
}

#[test]
fn a_cancel_that_needs_an_unclean_election_is_refused_unless_the_topic_allows_it() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2]);
    let image = topic(&mut c, &image, "t", &[&[1]]);
    let (moving, _) = reassign(&mut c, &image, true, &[("t", 0, Some(&[2]))]);
    // Broker 2 joins the ISR and broker 1 leaves it (say it fell behind) before the move
    // completes: only the adding replica is in sync.
    let both = set_isr(&mut c, &moving, "t", 0, &[1, 2]);
    let id = both.topic_id("t").unwrap();
    let p = both.partition(id, 0).unwrap().clone();
    let only_new = both
        .apply(&[MetadataRecord::PartitionChange {
            topic_id: id,
            partition: 0,
            isr: Some(vec![2]),
            leader: Some(2),
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
        }])
        .unwrap()
        .0;
    assert!(p.is_reassigning());
    let (_, codes) = reassign(&mut c, &only_new, true, &[("t", 0, None)]);
    assert_eq!(codes, vec![Some(ErrorCode::InvalidReplicaAssignment)]);

    let allow = ControllerRequest::AlterConfigs(AlterConfigsRequest {
        resources: vec![AlterResource {
            resource: ConfigResource::topic("t"),
            configs: vec![(UNCLEAN_LEADER_ELECTION_ENABLE.into(), Some("true".into()))],
        }],
        validate_only: false,
    });
    let unclean_ok = commit(&mut c, &only_new, allow, 0).0;
    let (reverted, codes) = reassign(&mut c, &unclean_ok, true, &[("t", 0, None)]);
    assert_eq!(codes, vec![None]);
    let p = partition(&reverted, "t", 0);
    assert_eq!(
        (p.replicas.clone(), p.leader, p.isr.clone()),
        (vec![1], 1, vec![1])
    );
}

#[test]
fn errors_are_kafkas_and_per_partition() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3]);
    let image = topic(&mut c, &image, "t", &[&[1, 2], &[2, 3]]);
    let (after, codes) = reassign(
        &mut c,
        &image,
        false,
        &[
            ("nope", 0, Some(&[1, 2])),
            ("t", 7, Some(&[1, 2])),
            ("t", 0, Some(&[])),
            ("t", 0, Some(&[1, 1])),
            ("t", 0, Some(&[1, 9])),
            ("t", 0, Some(&[1, 2, 3])),
            ("t", 1, None),
            ("t", 1, Some(&[3, 1])),
        ],
    );
    assert_eq!(
        codes,
        vec![
            Some(ErrorCode::UnknownTopicOrPartition),
            Some(ErrorCode::UnknownTopicOrPartition),
            Some(ErrorCode::InvalidReplicaAssignment),
            Some(ErrorCode::InvalidReplicaAssignment),
            Some(ErrorCode::InvalidReplicaAssignment),
            Some(ErrorCode::InvalidReplicationFactor),
            Some(ErrorCode::NoReassignmentInProgress),
            None,
        ]
    );
    // The valid item went through although others in the same request failed.
    assert_eq!(partition(&after, "t", 1).adding_replicas, vec![1]);
    // Version 0 (and v1 with the flag) may change the replication factor.
    let (grown, codes) = reassign(&mut c, &image, true, &[("t", 0, Some(&[1, 2, 3]))]);
    assert_eq!(codes, vec![None]);
    assert_eq!(partition(&grown, "t", 0).adding_replicas, vec![3]);
}

#[test]
fn a_fenced_target_may_be_named_but_completion_waits_for_it() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3]);
    let image = topic(&mut c, &image, "t", &[&[1, 2]]);
    let fence = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id: 3,
        broker_epoch: broker_epoch(&image, 3),
        want_fence: true,
        want_shutdown: false,
        offline_replicas: Vec::new(),
    });
    let fenced = commit(&mut c, &image, fence, 0).0;
    let (moving, codes) = reassign(&mut c, &fenced, false, &[("t", 0, Some(&[3, 2]))]);
    assert_eq!(codes, vec![None]);
    let p = partition(&tick(&mut c, &moving), "t", 0);
    assert_eq!(
        (p.replicas.clone(), p.adding_replicas.clone()),
        (vec![3, 2, 1], vec![3])
    );
    assert_eq!(p.leader, 1);
}

#[test]
fn a_new_target_replaces_an_ongoing_reassignment() {
    let mut c = controller();
    let image = cluster(&mut c, &[1, 2, 3, 4, 5]);
    let image = topic(&mut c, &image, "t", &[&[1, 2, 3]]);
    let (first, _) = reassign(&mut c, &image, false, &[("t", 0, Some(&[4, 2, 3]))]);
    let (second, codes) = reassign(&mut c, &first, false, &[("t", 0, Some(&[4, 5, 3]))]);
    assert_eq!(codes, vec![None]);
    let p = partition(&second, "t", 0);
    assert_eq!(p.replicas, vec![4, 5, 3, 2, 1]);
    // 4 is still being added (it is not in sync), as is 5; 1 and 2 go.
    assert_eq!(p.adding_replicas, vec![4, 5]);
    assert_eq!(p.removing_replicas, vec![2, 1]);
    let partly = {
        let isr = set_isr(&mut c, &second, "t", 0, &[1, 2, 3, 5]);
        tick(&mut c, &isr)
    };
    assert!(
        partition(&partly, "t", 0).is_reassigning(),
        "4 is not in sync yet"
    );
    let done = {
        let isr = set_isr(&mut c, &partly, "t", 0, &[1, 2, 3, 4, 5]);
        tick(&mut c, &isr)
    };
    let p = partition(&done, "t", 0);
    assert_eq!(
        (p.replicas.clone(), p.leader, p.isr.clone()),
        (vec![4, 5, 3], 4, vec![3, 4, 5])
    );
}
