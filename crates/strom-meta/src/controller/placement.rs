//! Replica placement for new partitions, and checks of manually given placements.
//!
//! Automatic placement is Kafka's round robin over a rack-alternating list of the active
//! brokers (unfenced and not in controlled shutdown): the first replica of consecutive partitions walks the list from a start index,
//! the followers are shifted by an amount that grows every full round, and a follower is
//! taken only from a rack without a replica of the partition until every rack has one.
//! Leaders and followers spread evenly, and across racks. Brokers without a rack count as
//! one rack. The start and shift come from the topic id, so placement is deterministic.
//! [`assign_replicas_to_brokers`] is the same rule over any broker list, public for
//! `strom partitions reassign --generate` (Kafka's `calculateAssignment`).

use crate::controller::errors::{ApiError, ErrorCode};
use crate::image::MetadataImage;
use crate::records::{MetadataRecord, NO_LEADER};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Replica lists for partitions `first_partition..first_partition + count`.
pub(crate) fn assign_replicas(
    image: &MetadataImage,
    first_partition: i32,
    count: i32,
    replication_factor: usize,
    topic_id: Uuid,
) -> Result<Vec<Vec<i32>>, ApiError> {
    let brokers: Vec<(i32, Option<String>)> = image
        .brokers()
        .filter(|b| b.is_active())
        .map(|b| (b.broker_id, b.rack.clone()))
        .collect();
    let bytes = topic_id.as_bytes();
    let seed = |range: std::ops::Range<usize>| {
        bytes.get(range).map_or(0, |b| {
            b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
        })
    };
    assign_replicas_to_brokers(
        &brokers,
        first_partition,
        count,
        replication_factor,
        (seed(0..8), seed(8..16)),
    )
    .map_err(|e| match e {
        PlacementError::ReplicationFactor { wanted, brokers } => {
            replication_factor_error(wanted, brokers)
        }
        other => ApiError::new(ErrorCode::UnknownServerError, other.to_string()),
    })
}

/// Why [`assign_replicas_to_brokers`] found no placement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error(
        "replication factor {wanted} cannot be reached with {brokers} broker(s): give at least \
         {wanted} brokers or lower the replication factor"
    )]
    ReplicationFactor { wanted: usize, brokers: usize },
    #[error("broker {0} is listed more than once")]
    DuplicateBroker(i32),
    #[error("replica placement did not converge (a bug: please report it)")]
    NoConvergence,
}

/// Kafka's `AdminUtils.assignReplicasToBrokers` over `brokers` (id, rack), for partitions
/// `first_partition..first_partition + count` with `replication_factor` replicas each: the
/// leaders of consecutive partitions walk a rack-alternating list of the brokers from a
/// start index, followers are shifted by an amount that grows every full round, and a
/// follower is taken from a rack without a replica of the partition until every rack has
/// one. Brokers without a rack count as one rack. `seeds` (start, shift) replace Kafka's
/// random numbers, so a placement is reproducible. This is both the controller's placement
/// of new partitions and `strom partitions reassign --generate`'s proposal.
pub fn assign_replicas_to_brokers(
    brokers: &[(i32, Option<String>)],
    first_partition: i32,
    count: i32,
    replication_factor: usize,
    seeds: (u64, u64),
) -> Result<Vec<Vec<i32>>, PlacementError> {
    let mut seen = BTreeSet::new();
    for (id, _) in brokers {
        if !seen.insert(*id) {
            return Err(PlacementError::DuplicateBroker(*id));
        }
    }
    let brokers = rack_alternating_brokers(brokers);
    let n = brokers.len();
    if replication_factor == 0 || replication_factor > n {
        return Err(PlacementError::ReplicationFactor {
            wanted: replication_factor,
            brokers: n,
        });
    }
    let rack_count = brokers
        .iter()
        .map(|(_, rack)| *rack)
        .collect::<BTreeSet<_>>()
        .len();
    let start = (seeds.0 % n as u64) as usize;
    let mut shift = (seeds.1 % n as u64) as usize;
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for p in first_partition.max(0)..first_partition.max(0).saturating_add(count) {
        let p = p as usize;
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start) % n;
        out.push(place_partition(
            &brokers,
            first,
            shift * rack_count,
            replication_factor,
            rack_count,
        )?);
    }
    Ok(out)
}

/// The brokers ordered so that consecutive entries come from different racks: the
/// first broker (lowest id) of each rack in rack order, then the second of each, and so on
/// (Kafka's `getRackAlternatedBrokerList`).
fn rack_alternating_brokers(brokers: &[(i32, Option<String>)]) -> Vec<(i32, Option<&str>)> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for (id, rack) in brokers {
        by_rack.entry(rack.as_deref()).or_default().push(*id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    for i in 0..longest {
        for (rack, ids) in &by_rack {
            if let Some(id) = ids.get(i) {
                out.push((*id, *rack));
            }
        }
    }
    out
}

/// The replicas of one partition whose leader sits at `first` in `brokers`.
fn place_partition(
    brokers: &[(i32, Option<&str>)],
    first: usize,
    shift: usize,
    replication_factor: usize,
    rack_count: usize,
) -> Result<Vec<i32>, PlacementError> {
    let n = brokers.len();
    let (leader, leader_rack) = broker_at(brokers, first)?;
    let mut replicas = vec![leader];
    let mut racks = BTreeSet::from([leader_rack]);
    let mut k = 0;
    // Each follower is found within one pass over the other brokers; the bound only
    // turns a logic error into an error instead of a hang.
    let steps_max = n.saturating_mul(replication_factor);
    while replicas.len() < replication_factor {
        if k > steps_max {
            return Err(PlacementError::NoConvergence);
        }
        let offset = 1 + (shift + k) % (n - 1);
        let (broker, rack) = broker_at(brokers, (first + offset) % n)?;
        k += 1;
        let rack_ok = !racks.contains(&rack) || racks.len() == rack_count;
        if rack_ok && !replicas.contains(&broker) {
            replicas.push(broker);
            racks.insert(rack);
        }
    }
    Ok(replicas)
}

fn broker_at<'a>(
    brokers: &[(i32, Option<&'a str>)],
    index: usize,
) -> Result<(i32, Option<&'a str>), PlacementError> {
    brokers
        .get(index)
        .copied()
        .ok_or(PlacementError::NoConvergence)
}

fn replication_factor_error(replication_factor: usize, unfenced: usize) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidReplicationFactor,
        format!(
            "Unable to replicate the partition {replication_factor} time(s): The target replication factor of \
             {replication_factor} cannot be reached because only {unfenced} broker(s) are registered."
        ),
    )
}

/// Checks a manual replica list and returns its initial ISR (the active replicas).
pub(crate) fn check_manual_replicas(
    image: &MetadataImage,
    partition: i32,
    replicas: &[i32],
) -> Result<Vec<i32>, ApiError> {
    validate_manual_replicas(image, replicas)?;
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|b| image.is_broker_active(*b))
        .collect();
    if isr.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidReplicaAssignment,
            format!(
                "All brokers specified in the manual partition assignment for partition {partition} are fenced or in \
                 controlled shutdown."
            ),
        ));
    }
    Ok(isr)
}

/// Kafka's `validateManualPartitionAssignment`: a non-empty list of distinct registered
/// brokers (fenced ones included).
pub(crate) fn validate_manual_replicas(
    image: &MetadataImage,
    replicas: &[i32],
) -> Result<(), ApiError> {
    let invalid = |message: String| ApiError::new(ErrorCode::InvalidReplicaAssignment, message);
    if replicas.is_empty() {
        return Err(invalid(
            "The manual partition assignment includes an empty replica list.".to_owned(),
        ));
    }
    let mut seen = BTreeSet::new();
    for broker in replicas {
        if !seen.insert(*broker) {
            return Err(invalid(format!(
                "The manual partition assignment includes the broker {broker} more than once."
            )));
        }
        if image.broker(*broker).is_none() {
            return Err(invalid(format!(
                "The manual partition assignment includes broker {broker}, but no such broker is registered."
            )));
        }
    }
    Ok(())
}

/// The record of a new partition: the first ISR member in replica order leads.
pub(crate) fn new_partition_record(
    topic_id: Uuid,
    partition: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
) -> MetadataRecord {
    let leader = replicas
        .iter()
        .copied()
        .find(|r| isr.contains(r))
        .unwrap_or(NO_LEADER);
    MetadataRecord::Partition {
        topic_id,
        partition,
        replicas,
        isr,
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    }
}
