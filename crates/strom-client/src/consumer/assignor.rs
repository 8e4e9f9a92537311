//! Group assignors: the [`GroupAssignor`] trait a classic-group leader runs (so a library
//! such as Strom Streams can bring its own, with user data in subscriptions and
//! assignments), and Kafka's `RangeAssignor`: per topic, partitions split into contiguous
//! ranges over the subscribed members sorted by member id; the first `partitions % members`
//! get one extra.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::error::Result;
use crate::types::TopicPartition;

/// One member's subscription as the leader's assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberSubscription {
    pub topics: Vec<String>,
    /// What the member's own assignor put in its subscription.
    pub user_data: Option<Bytes>,
    pub owned_partitions: Vec<TopicPartition>,
}

/// What the leader hands one member.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberAssignment {
    pub partitions: Vec<TopicPartition>,
    /// Read back by the member through `Consumer::assignment_user_data`.
    pub user_data: Option<Bytes>,
}

/// A classic-protocol partition assignor (Kafka's `ConsumerPartitionAssignor`). Every
/// member sends [`GroupAssignor::user_data`] with its JoinGroup; the elected leader calls
/// [`GroupAssignor::assign`] with all members' subscriptions.
pub trait GroupAssignor: Send + Sync {
    /// The protocol name sent in JoinGroup (`range`, `stream`).
    fn name(&self) -> &str;
    /// Bytes for this member's subscription, asked for at every join.
    fn user_data(&self) -> Option<Bytes> {
        None
    }
    /// Assigns partitions. `partition_counts` has every subscribed topic that exists.
    /// Every member in `members` must appear in the result.
    fn assign(
        &self,
        members: &BTreeMap<String, MemberSubscription>,
        partition_counts: &BTreeMap<String, i32>,
    ) -> Result<BTreeMap<String, MemberAssignment>>;
}

/// Kafka's range assignor as a [`GroupAssignor`] (the consumer's default).
#[derive(Debug, Default, Clone, Copy)]
pub struct RangeAssignor;

impl GroupAssignor for RangeAssignor {
    fn name(&self) -> &str {
        "range"
    }

    fn assign(
        &self,
        members: &BTreeMap<String, MemberSubscription>,
        partition_counts: &BTreeMap<String, i32>,
    ) -> Result<BTreeMap<String, MemberAssignment>> {
        let subscriptions: BTreeMap<String, Vec<String>> = members
            .iter()
            .map(|(m, s)| (m.clone(), s.topics.clone()))
            .collect();
        Ok(range_assign(&subscriptions, partition_counts)
            .into_iter()
            .map(|(m, partitions)| {
                (
                    m,
                    MemberAssignment {
                        partitions,
                        user_data: None,
                    },
                )
            })
            .collect())
    }
}

/// Assigns `partition_counts` (topic -> number of partitions) to members by their
/// subscribed topics. Every member appears in the result, possibly with nothing.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out: BTreeMap<String, Vec<TopicPartition>> = subscriptions
        .keys()
        .map(|m| (m.clone(), Vec::new()))
        .collect();
    for (topic, &count) in partition_counts {
        // BTreeMap keys are already sorted by member id, as Kafka sorts them.
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        let Ok(n) = i32::try_from(members.len()) else {
            continue;
        };
        if n == 0 || count <= 0 {
            continue;
        }
        let per_member = count / n;
        let extra = count % n;
        for (i, member) in (0..n).zip(members) {
            let start = per_member * i + i.min(extra);
            let len = per_member + i32::from(i < extra);
            if let Some(list) = out.get_mut(member) {
                list.extend((start..start + len).map(|p| TopicPartition::new(topic.clone(), p)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        subs: &[(&str, &[&str])],
        counts: &[(&str, i32)],
        expected: &[(&str, &[(&str, i32)])],
    ) {
        let subs = subs
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect();
        let counts = counts.iter().map(|(t, c)| (t.to_string(), *c)).collect();
        let expected: BTreeMap<String, Vec<TopicPartition>> = expected
            .iter()
            .map(|(m, tps)| {
                (
                    m.to_string(),
                    tps.iter()
                        .map(|(t, p)| TopicPartition::new(*t, *p))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(range_assign(&subs, &counts), expected);
    }

    /// Cases from Kafka's `RangeAssignorTest`.
    #[test]
    fn range_assignment_matches_kafka() {
        check(
            &[("c1", &["t1"])],
            &[("t1", 3)],
            &[("c1", &[("t1", 0), ("t1", 1), ("t1", 2)])],
        );
        check(
            &[("c1", &["t1"]), ("c2", &["t1"])],
            &[("t1", 3)],
            &[("c1", &[("t1", 0), ("t1", 1)]), ("c2", &[("t1", 2)])],
        );
        check(
            &[("c1", &["t1", "t2"]), ("c2", &["t1", "t2"])],
            &[("t1", 3), ("t2", 3)],
            &[
                ("c1", &[("t1", 0), ("t1", 1), ("t2", 0), ("t2", 1)]),
                ("c2", &[("t1", 2), ("t2", 2)]),
            ],
        );
        check(
            &[("c1", &["t1"]), ("c2", &["t1", "t2"]), ("c3", &["t1"])],
            &[("t1", 3), ("t2", 2)],
            &[
                ("c1", &[("t1", 0)]),
                ("c2", &[("t1", 1), ("t2", 0), ("t2", 1)]),
                ("c3", &[("t1", 2)]),
            ],
        );
        check(
            &[("c1", &["t1"]), ("c2", &["t1"])],
            &[("t1", 1)],
            &[("c1", &[("t1", 0)]), ("c2", &[])],
        );
        check(&[("c1", &["none"])], &[], &[("c1", &[])]);
    }
}
