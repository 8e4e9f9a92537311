//! The share groups' server-side assignor, after Kafka's `SimpleAssignor`: every
//! partition of a subscribed topic goes to at least one of the members subscribed to it,
//! and when a topic has more subscribers than partitions, its partitions are shared (a
//! partition may have several members; every member gets one). Deterministic: the same
//! members and topics give the same assignment.

use std::collections::{BTreeMap, BTreeSet};

use strom_group::consumer::{Assignment, TopicId};

/// Assigns the partitions of `partitions` (topic id to its assignable partitions: as Kafka,
/// only those whose share state is initialized) to the members of `subscriptions` (member
/// id to the topic ids it subscribes to; topics missing from `partitions` are ignored).
/// Every member appears in the result, perhaps with nothing.
pub fn simple_assign(
    subscriptions: &BTreeMap<String, BTreeSet<TopicId>>,
    partitions: &BTreeMap<TopicId, BTreeSet<i32>>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = subscriptions
        .keys()
        .map(|member| (member.clone(), Assignment::new()))
        .collect();
    // Rotates where each topic starts, so that the first member does not get the first
    // partition of every topic.
    let mut rotation = 0usize;
    for (topic, assignable) in partitions {
        let assignable: Vec<i32> = assignable.iter().copied().collect();
        let count = assignable.len();
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(member, _)| member)
            .collect();
        if count == 0 || members.is_empty() {
            continue;
        }
        let mut give = |member: &String, index: usize| {
            if let (Some(a), Some(p)) = (out.get_mut(member), assignable.get(index)) {
                a.entry(*topic).or_default().insert(*p);
            }
        };
        if members.len() <= count {
            // Each partition to one member, round robin.
            for partition in 0..count {
                give(members[(partition + rotation) % members.len()], partition);
            }
        } else {
            // More members than partitions: each member to one partition, so every
            // partition has at least one member and none more than one above another.
            for (i, member) in members.iter().enumerate() {
                give(member, (i + rotation) % count);
            }
        }
        rotation = rotation.wrapping_add(count);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u8) -> TopicId {
        TopicId([n; 16])
    }

    fn subs(members: &[(&str, &[u8])]) -> BTreeMap<String, BTreeSet<TopicId>> {
        members
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| topic(*t)).collect()))
            .collect()
    }

    fn all(count: i32) -> BTreeSet<i32> {
        (0..count).collect()
    }

    fn holders(a: &BTreeMap<String, Assignment>, t: TopicId, p: i32) -> usize {
        a.values()
            .filter(|x| x.get(&t).is_some_and(|ps| ps.contains(&p)))
            .count()
    }

    #[test]
    fn fewer_members_than_partitions_split_the_partitions() {
        let a = simple_assign(
            &subs(&[("a", &[1]), ("b", &[1])]),
            &BTreeMap::from([(topic(1), all(4))]),
        );
        for p in 0..4 {
            assert_eq!(holders(&a, topic(1), p), 1, "partition {p}");
        }
        assert_eq!(a["a"][&topic(1)].len(), 2);
        assert_eq!(a["b"][&topic(1)].len(), 2);
    }

    #[test]
    fn more_members_than_partitions_share_them() {
        let members: Vec<(String, BTreeSet<TopicId>)> = (0..5)
            .map(|i| (format!("m{i}"), BTreeSet::from([topic(1)])))
            .collect();
        let a = simple_assign(
            &members.into_iter().collect(),
            &BTreeMap::from([(topic(1), all(2))]),
        );
        for (member, assignment) in &a {
            assert_eq!(assignment[&topic(1)].len(), 1, "{member}");
        }
        let (p0, p1) = (holders(&a, topic(1), 0), holders(&a, topic(1), 1));
        assert_eq!(p0 + p1, 5);
        assert!(p0.abs_diff(p1) <= 1, "{p0} {p1}");
    }

    #[test]
    fn three_members_one_partition_all_read_it() {
        let a = simple_assign(
            &subs(&[("a", &[1]), ("b", &[1]), ("c", &[1])]),
            &BTreeMap::from([(topic(1), all(1))]),
        );
        assert_eq!(holders(&a, topic(1), 0), 3);
    }

    #[test]
    fn members_get_only_their_topics_and_unknown_topics_are_skipped() {
        let a = simple_assign(
            &subs(&[("a", &[1, 9]), ("b", &[2])]),
            &BTreeMap::from([(topic(1), all(3)), (topic(2), all(1))]),
        );
        assert_eq!(a["a"].keys().copied().collect::<Vec<_>>(), vec![topic(1)]);
        assert_eq!(a["a"][&topic(1)].len(), 3);
        assert_eq!(a["b"].keys().copied().collect::<Vec<_>>(), vec![topic(2)]);
    }

    #[test]
    fn only_assignable_partitions_are_given() {
        let a = simple_assign(
            &subs(&[("a", &[1]), ("b", &[1])]),
            &BTreeMap::from([(topic(1), BTreeSet::from([1, 3]))]),
        );
        assert_eq!(a["a"][&topic(1)].len() + a["b"][&topic(1)].len(), 2);
        assert_eq!(holders(&a, topic(1), 1) + holders(&a, topic(1), 3), 2);
        assert_eq!(holders(&a, topic(1), 0), 0);
    }

    #[test]
    fn a_member_with_no_topic_gets_an_empty_assignment() {
        let a = simple_assign(&subs(&[("a", &[7])]), &BTreeMap::from([(topic(1), all(3))]));
        assert!(a["a"].is_empty());
    }
}
