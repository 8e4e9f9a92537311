//! Leader elections, as Kafka's `PartitionChangeBuilder` makes them: moving leaders off a
//! broker that is fenced or shutting down, electing leaders when a broker comes back,
//! unclean elections when a topic allows them, preferred-replica elections (ElectLeaders)
//! and the periodic leader rebalance (`auto.leader.rebalance.enable`).
//!
//! Clean elections choose the leader from the ISR only, in replica order, among active
//! brokers (unfenced and not in controlled shutdown). The ISR never shrinks below one
//! member: the last in-sync replica is remembered while it is down and leads again when it
//! returns. An unclean election (only when `unclean.leader.election.enable` is true for the
//! topic, or asked for by ElectLeaders) happens only when no ISR member can lead: the first
//! active replica in replica order leads and the ISR becomes just it. Records written only
//! to the old ISR may then be lost, which is what the setting accepts.

use crate::controller::errors::{ApiError, ErrorCode};
use crate::controller::messages::{
    ControllerReply, ElectLeadersRequest, ElectLeadersTopicResult, ElectionType,
};
use crate::controller::staged::Staged;
use crate::controller::Handled;
use crate::image::{MetadataImage, PartitionImage, TopicIdPartition};
use crate::records::{ConfigResource, MetadataRecord, NO_LEADER};
use std::collections::BTreeMap;

/// The topic (and cluster-default broker) config that allows unclean elections.
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

/// Most partition changes one rebalance or unclean-election pass makes (Kafka's
/// `maxElectionsPerImbalance`); the rest follow at the next pass.
pub(crate) const ELECTIONS_PER_PASS_MAX: usize = 1_000;

/// How a leader is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Election {
    /// From the ISR; the current leader stays when it still may lead.
    Clean,
    /// As `Clean`, then from any active replica when no ISR member may lead.
    Unclean,
    /// The first replica when it may lead, else as `Clean`.
    Preferred,
}

/// Who may lead: active brokers, minus one being removed, plus one coming back (it is
/// still fenced in the image the election reads, as in Kafka's `LeaderAcceptor`).
#[derive(Clone, Copy)]
pub(crate) struct Acceptor<'a> {
    image: &'a MetadataImage,
    removed: Option<i32>,
    added: Option<i32>,
    /// The partition elected for, whose replicas reported offline may not lead it.
    partition: Option<TopicIdPartition>,
}

impl<'a> Acceptor<'a> {
    pub fn new(image: &'a MetadataImage) -> Self {
        Acceptor {
            image,
            removed: None,
            added: None,
            partition: None,
        }
    }

    /// The same acceptor for an election of `tp`: a broker that reported its replica of
    /// `tp` offline (`BrokerReplicasOffline`) may not lead it, cleanly or not.
    pub fn for_partition(self, tp: TopicIdPartition) -> Self {
        Acceptor {
            partition: Some(tp),
            ..self
        }
    }

    pub fn removing(image: &'a MetadataImage, broker_id: i32) -> Self {
        Acceptor {
            removed: Some(broker_id),
            ..Acceptor::new(image)
        }
    }

    pub fn adding(image: &'a MetadataImage, broker_id: i32) -> Self {
        Acceptor {
            added: Some(broker_id),
            ..Acceptor::new(image)
        }
    }

    fn accepts(&self, broker_id: i32) -> bool {
        broker_id >= 0
            && Some(broker_id) != self.removed
            && (Some(broker_id) == self.added || self.image.is_broker_active(broker_id))
            && !self
                .partition
                .is_some_and(|tp| self.image.is_replica_offline(broker_id, tp))
    }
}

/// The partition's next (leader, ISR): Kafka's election over `target_isr`.
pub(crate) fn elect(
    p: &PartitionImage,
    target_isr: &[i32],
    election: Election,
    acceptor: Acceptor<'_>,
) -> (i32, Vec<i32>) {
    let valid = |r: i32| target_isr.contains(&r) && acceptor.accepts(r);
    let first_valid = |skip: usize| p.replicas.iter().skip(skip).copied().find(|r| valid(*r));
    let clean = match election {
        Election::Preferred => p
            .replicas
            .first()
            .copied()
            .filter(|r| valid(*r))
            .or_else(|| valid(p.leader).then_some(p.leader))
            .or_else(|| first_valid(1)),
        Election::Clean | Election::Unclean => valid(p.leader)
            .then_some(p.leader)
            .or_else(|| first_valid(0)),
    };
    if let Some(leader) = clean {
        return (leader, isr_after(p, target_isr));
    }
    if election == Election::Unclean {
        if let Some(leader) = p.replicas.iter().copied().find(|r| acceptor.accepts(*r)) {
            // The ISR becomes just the new leader: whatever the old ISR had beyond its log
            // is given up. This is the data loss the setting accepts.
            return (leader, vec![leader]);
        }
    }
    (NO_LEADER, isr_after(p, target_isr))
}

/// The ISR never becomes empty: when the last member leaves, it stays recorded.
fn isr_after(p: &PartitionImage, target_isr: &[i32]) -> Vec<i32> {
    if target_isr.is_empty() {
        p.isr.clone()
    } else {
        target_isr.to_vec()
    }
}

/// The record that moves `p` to (leader, ISR), if anything changes.
pub(crate) fn change(
    tp: TopicIdPartition,
    p: &PartitionImage,
    (leader, isr): (i32, Vec<i32>),
) -> Option<MetadataRecord> {
    let isr_changed = isr != p.isr;
    let leader_changed = leader != p.leader;
    (isr_changed || leader_changed).then(|| MetadataRecord::PartitionChange {
        topic_id: tp.topic_id,
        partition: tp.partition,
        isr: isr_changed.then_some(isr),
        leader: leader_changed.then_some(leader),
        replicas: None,
        adding_replicas: None,
        removing_replicas: None,
    })
}

/// Whether `topic` allows unclean elections: its own config, else the cluster-wide broker
/// default set through AlterConfigs, else the controller's `unclean.leader.election.enable`.
pub(crate) fn unclean_enabled(image: &MetadataImage, topic: &str, default: bool) -> bool {
    let cluster_default = ConfigResource::broker("");
    image
        .topic_configs(topic)
        .and_then(|c| c.get(UNCLEAN_LEADER_ELECTION_ENABLE))
        .or_else(|| {
            image
                .configs(&cluster_default)
                .and_then(|c| c.get(UNCLEAN_LEADER_ELECTION_ENABLE))
        })
        .and_then(|v| parse_bool(v))
        .unwrap_or(default)
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

pub(crate) fn election_for(
    image: &MetadataImage,
    topic_id: uuid::Uuid,
    unclean_default: bool,
) -> Election {
    let unclean = image
        .topic_by_id(topic_id)
        .is_some_and(|t| unclean_enabled(image, &t.name, unclean_default));
    if unclean {
        Election::Unclean
    } else {
        Election::Clean
    }
}

/// Changes that take `broker_id` out of every ISR and leadership (it is being fenced,
/// unregistered, or shut down): another ISR member leads, or, where the topic allows it
/// and none can, an unclean election picks an active replica.
pub(crate) fn remove_broker_from_partitions(
    image: &MetadataImage,
    broker_id: i32,
    unclean_default: bool,
) -> Vec<MetadataRecord> {
    let acceptor = Acceptor::removing(image, broker_id);
    image
        .partitions()
        .filter(|(_, p)| p.leader == broker_id || p.isr.contains(&broker_id))
        .filter_map(|(tp, p)| {
            let target: Vec<i32> = p.isr.iter().copied().filter(|b| *b != broker_id).collect();
            let election = election_for(image, tp.topic_id, unclean_default);
            change(
                tp,
                p,
                elect(p, &target, election, acceptor.for_partition(tp)),
            )
        })
        .collect()
}

/// Elections for leaderless partitions now that `broker_id` is coming back (unfenced):
/// clean where it (or another active broker) is in the ISR, unclean where allowed.
pub(crate) fn elect_with_broker(
    image: &MetadataImage,
    broker_id: i32,
    unclean_default: bool,
) -> Vec<MetadataRecord> {
    let acceptor = Acceptor::adding(image, broker_id);
    image
        .partitions()
        .filter(|(_, p)| p.leader == NO_LEADER)
        .filter_map(|(tp, p)| {
            let election = election_for(image, tp.topic_id, unclean_default);
            change(
                tp,
                p,
                elect(p, &p.isr, election, acceptor.for_partition(tp)),
            )
        })
        .collect()
}

/// Leaders for leaderless partitions of topics that allow unclean elections (Kafka's
/// periodic `maybeElectUncleanLeaders`, for a setting turned on while a partition was
/// already leaderless).
pub(crate) fn elect_unclean_leaders(
    image: &MetadataImage,
    unclean_default: bool,
) -> Vec<MetadataRecord> {
    let acceptor = Acceptor::new(image);
    image
        .partitions()
        .filter(|(_, p)| p.leader == NO_LEADER)
        .filter(|(tp, _)| election_for(image, tp.topic_id, unclean_default) == Election::Unclean)
        .filter_map(|(tp, p)| {
            let acceptor = acceptor.for_partition(tp);
            change(tp, p, elect(p, &p.isr, Election::Unclean, acceptor))
        })
        .take(ELECTIONS_PER_PASS_MAX)
        .collect()
}

/// Per preferred broker: how many partitions it should lead, and those it does not lead.
type PreferredBy<'a> = (usize, Vec<(TopicIdPartition, &'a PartitionImage)>);

/// The leader rebalance of `auto.leader.rebalance.enable`, with Kafka's per-broker
/// threshold: for each broker, among the partitions whose preferred (first) replica it is,
/// the share it does not lead; when that share exceeds `imbalance_percentage` percent,
/// every such partition whose preferred replica is active and in the ISR gets a preferred
/// election. (Kafka 4's KRaft controller no longer reads
/// `leader.imbalance.per.broker.percentage` and rebalances any imbalance; with the setting
/// at 0 Strom does the same.)
pub(crate) fn rebalance_leaders(
    image: &MetadataImage,
    imbalance_percentage: u32,
) -> Vec<MetadataRecord> {
    let mut by_preferred: BTreeMap<i32, PreferredBy<'_>> = BTreeMap::new();
    for (tp, p) in image.partitions() {
        let Some(preferred) = p.replicas.first().copied() else {
            continue;
        };
        let entry = by_preferred.entry(preferred).or_default();
        entry.0 += 1;
        if p.leader != preferred {
            entry.1.push((tp, p));
        }
    }
    let acceptor = Acceptor::new(image);
    let mut records = Vec::new();
    for (preferred, (total, not_led)) in by_preferred {
        // ratio > percentage / 100, in integers.
        let imbalanced =
            (not_led.len() as u64) * 100 > (total as u64) * u64::from(imbalance_percentage);
        if !imbalanced || !acceptor.accepts(preferred) {
            continue;
        }
        for (tp, p) in not_led {
            if records.len() >= ELECTIONS_PER_PASS_MAX {
                return records;
            }
            let elected = elect(p, &p.isr, Election::Preferred, acceptor.for_partition(tp));
            if elected.0 == preferred {
                records.extend(change(tp, p, elected));
            }
        }
    }
    records
}

/// ElectLeaders: preferred or unclean elections for the named partitions (or all).
pub(crate) fn elect_leaders(image: &MetadataImage, request: ElectLeadersRequest) -> Handled {
    let mut staged = Staged::new(image);
    let mut results = Vec::new();
    match request.topic_partitions {
        None => {
            let topics: Vec<(String, Vec<i32>)> = image
                .topic_names()
                .filter_map(|name| {
                    let t = image.topic_by_name(name)?;
                    Some((name.to_owned(), t.partitions.keys().copied().collect()))
                })
                .collect();
            for (topic, partitions) in topics {
                let mut out = Vec::new();
                for partition in partitions {
                    let outcome = elect_one(&mut staged, &topic, partition, request.election_type);
                    // Electing for every partition leaves out those already as wanted.
                    if outcome
                        .as_ref()
                        .is_err_and(|e| e.code == ErrorCode::ElectionNotNeeded)
                    {
                        continue;
                    }
                    out.push((partition, outcome.err()));
                }
                results.push(ElectLeadersTopicResult {
                    topic,
                    partitions: out,
                });
            }
        }
        Some(topics) => {
            for (topic, partitions) in topics {
                let out = partitions
                    .into_iter()
                    .map(|partition| {
                        let outcome =
                            elect_one(&mut staged, &topic, partition, request.election_type);
                        (partition, outcome.err())
                    })
                    .collect();
                results.push(ElectLeadersTopicResult {
                    topic,
                    partitions: out,
                });
            }
        }
    }
    Ok((
        staged.finish(false)?,
        ControllerReply::ElectLeaders(results),
    ))
}

fn elect_one(
    staged: &mut Staged,
    topic: &str,
    partition: i32,
    election_type: ElectionType,
) -> Result<(), ApiError> {
    let image = &staged.image;
    let t = image.topic_by_name(topic).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            format!("No such topic as {topic}"),
        )
    })?;
    let p = t.partitions.get(&partition).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            format!("No such partition as {topic}-{partition}"),
        )
    })?;
    let tp = TopicIdPartition {
        topic_id: t.topic_id,
        partition,
    };
    let (not_needed, election, unavailable) = match election_type {
        ElectionType::Preferred => (
            p.replicas.first() == Some(&p.leader),
            Election::Preferred,
            ApiError::new(
                ErrorCode::PreferredLeaderNotAvailable,
                "The preferred leader was not available.",
            ),
        ),
        ElectionType::Unclean => (
            p.leader != NO_LEADER,
            Election::Unclean,
            ApiError::new(
                ErrorCode::EligibleLeadersNotAvailable,
                "Eligible topic partition leaders are not available.",
            ),
        ),
    };
    if not_needed {
        return Err(ApiError::new(
            ErrorCode::ElectionNotNeeded,
            "Leader election not needed for topic partition.",
        ));
    }
    let elected = elect(p, &p.isr, election, Acceptor::new(image).for_partition(tp));
    match change(tp, p, elected) {
        Some(record) => staged.push_applied(vec![record]),
        None => Err(unavailable),
    }
}
