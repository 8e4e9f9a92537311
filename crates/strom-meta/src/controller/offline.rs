//! Replicas a broker reports it cannot serve (KIP-858's offline log directories, at the
//! granularity Strom takes logs offline: one partition). A broker's heartbeat lists them
//! every time; when the list differs from what the image holds, the controller records the
//! new set (`BrokerReplicasOffline`) and takes each newly offline replica out of its
//! partition's ISR and leadership, as Kafka's `handleDirectoriesOffline` does: another ISR
//! member leads, an unclean election picks another active replica only where the topic
//! allows it, and with neither the partition has no leader (clients see
//! LEADER_NOT_AVAILABLE). A replica reported offline may not lead that partition in any
//! later election (`Acceptor::for_partition`). A replica that comes back (the broker opened
//! its log again) leaves the set; it rejoins the ISR only through the leader's usual
//! AlterPartition once it has caught up, and a partition it left leaderless (it was the
//! last in-sync replica) gets the election a returning broker gets.

use crate::controller::elections::{change, elect, election_for, Acceptor};
use crate::controller::staged::Staged;
use crate::image::{MetadataImage, TopicIdPartition};
use crate::records::MetadataRecord;
use std::collections::BTreeSet;
use uuid::Uuid;

/// The records that bring the image in line with `broker_id`'s report, applied to
/// `staged` (empty when nothing changed). Replicas the image does not give the broker are
/// ignored (a report may race a deletion), which also bounds the set by the image.
pub(crate) fn report_offline_replicas(
    staged: &mut Staged,
    broker_id: i32,
    broker_epoch: i64,
    reported: &[(Uuid, i32)],
    unclean_default: bool,
) {
    let image = staged.image.clone();
    let now: BTreeSet<TopicIdPartition> = reported
        .iter()
        .map(|(topic_id, partition)| TopicIdPartition {
            topic_id: *topic_id,
            partition: *partition,
        })
        .filter(|tp| {
            image
                .partition(tp.topic_id, tp.partition)
                .is_some_and(|p| p.replicas.contains(&broker_id))
        })
        .collect();
    let before: BTreeSet<TopicIdPartition> = image.offline_replicas(broker_id).collect();
    if now == before {
        return;
    }
    let set = MetadataRecord::BrokerReplicasOffline {
        broker_id,
        epoch: broker_epoch,
        replicas: now.iter().map(|tp| (tp.topic_id, tp.partition)).collect(),
    };
    // Records built from the staged image apply; a failure would be a controller bug, and
    // leaving the image as it was is the safe reaction (the next heartbeat reports again).
    if staged.push_applied(vec![set]).is_err() {
        return;
    }
    let changes = leave_isr_and_leadership(&staged.image, broker_id, &now, unclean_default);
    if staged.push_applied(changes).is_err() {
        return;
    }
    let back: BTreeSet<TopicIdPartition> = before.difference(&now).copied().collect();
    let elections = elect_where_back(&staged.image, &back, unclean_default);
    let _ = staged.push_applied(elections);
}

/// Leaders for the leaderless partitions among `back` (replicas whose logs opened again,
/// a full disk having had space freed, say): the same election a broker's return gets
/// (`elect_with_broker`), now that the replica may lead again.
fn elect_where_back(
    image: &MetadataImage,
    back: &BTreeSet<TopicIdPartition>,
    unclean_default: bool,
) -> Vec<MetadataRecord> {
    let acceptor = Acceptor::new(image);
    back.iter()
        .filter_map(|tp| {
            let p = image.partition(tp.topic_id, tp.partition)?;
            if p.has_leader() {
                return None;
            }
            let election = election_for(image, tp.topic_id, unclean_default);
            change(
                *tp,
                p,
                elect(p, &p.isr, election, acceptor.for_partition(*tp)),
            )
        })
        .collect()
}

/// For each partition of `offline` that `broker_id` leads or is in the ISR of: the change
/// that removes it, with an election among the others.
fn leave_isr_and_leadership(
    image: &MetadataImage,
    broker_id: i32,
    offline: &BTreeSet<TopicIdPartition>,
    unclean_default: bool,
) -> Vec<MetadataRecord> {
    let acceptor = Acceptor::removing(image, broker_id);
    offline
        .iter()
        .filter_map(|tp| {
            let p = image.partition(tp.topic_id, tp.partition)?;
            if p.leader != broker_id && !p.isr.contains(&broker_id) {
                return None;
            }
            let target: Vec<i32> = p.isr.iter().copied().filter(|b| *b != broker_id).collect();
            let election = election_for(image, tp.topic_id, unclean_default);
            change(
                *tp,
                p,
                elect(p, &target, election, acceptor.for_partition(*tp)),
            )
        })
        .collect()
}

/// Whether the image's record of `broker_id`'s offline replicas may differ from a report
/// (the caller skips the work when it cannot).
pub(crate) fn may_change(image: &MetadataImage, broker_id: i32, reported: &[(Uuid, i32)]) -> bool {
    !reported.is_empty() || image.offline_replicas(broker_id).next().is_some()
}
