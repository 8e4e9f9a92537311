//! Server-side assignors: `uniform` (Kafka's default: balanced and sticky) and `range`
//! (contiguous ranges per topic). Both are deterministic: the same input gives the same
//! target assignment, so a replayed or recomputed target never moves partitions needlessly.

use std::collections::{BTreeMap, BTreeSet};

use super::types::{Assignment, TopicId};

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";

/// Bounds the balancing passes of the uniform assignor (each moves one partition).
const BALANCE_MOVES_MAX: usize = 1_000_000;

/// What an assignor sees: members' subscribed topic ids, partition counts, the last target.
pub struct AssignmentSpec<'a> {
    pub subscriptions: &'a BTreeMap<String, BTreeSet<TopicId>>,
    pub partitions: &'a BTreeMap<TopicId, i32>,
    pub previous: &'a BTreeMap<String, Assignment>,
}

pub fn assign(assignor: &str, spec: &AssignmentSpec<'_>) -> BTreeMap<String, Assignment> {
    if assignor == RANGE {
        range(spec)
    } else {
        uniform(spec)
    }
}

/// Every member subscribed to each topic, sorted by member id.
fn subscribers<'a>(spec: &AssignmentSpec<'a>) -> BTreeMap<TopicId, Vec<&'a str>> {
    let mut out: BTreeMap<TopicId, Vec<&str>> = BTreeMap::new();
    for (member, topics) in spec.subscriptions {
        for topic in topics {
            if spec.partitions.contains_key(topic) {
                out.entry(*topic).or_default().push(member.as_str());
            }
        }
    }
    out
}

fn empty_result(spec: &AssignmentSpec<'_>) -> BTreeMap<String, Assignment> {
    spec.subscriptions
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect()
}

/// Per topic, its subscribers in member-id order get contiguous ranges; the first
/// `partitions % subscribers` get one more (Kafka's range assignor, co-partitioning aligned).
pub fn range(spec: &AssignmentSpec<'_>) -> BTreeMap<String, Assignment> {
    let mut out = empty_result(spec);
    for (topic, members) in subscribers(spec) {
        let count = spec.partitions.get(&topic).copied().unwrap_or(0).max(0);
        let n = i32::try_from(members.len()).unwrap_or(i32::MAX).max(1);
        let (quota, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, member) in members.iter().enumerate() {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            let take = quota + i32::from(i < extra);
            if take > 0 {
                if let Some(a) = out.get_mut(*member) {
                    a.entry(topic).or_default().extend(next..next + take);
                }
            }
            next += take;
        }
    }
    out
}

/// Balanced (member counts differ by at most one among members that could take a
/// partition) and sticky (a partition stays with its previous owner unless balance needs
/// it elsewhere).
pub fn uniform(spec: &AssignmentSpec<'_>) -> BTreeMap<String, Assignment> {
    let eligible = subscribers(spec);
    let mut owner: BTreeMap<(TopicId, i32), String> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> =
        spec.subscriptions.keys().map(|m| (m.clone(), 0)).collect();
    // Keep what is still valid from the last target.
    for (member, assignment) in spec.previous {
        let Some(topics) = spec.subscriptions.get(member) else {
            continue;
        };
        for (topic, partitions) in assignment {
            let count = spec.partitions.get(topic).copied().unwrap_or(0);
            if !topics.contains(topic) {
                continue;
            }
            for p in partitions.iter().filter(|p| (0..count).contains(*p)) {
                if let std::collections::btree_map::Entry::Vacant(slot) = owner.entry((*topic, *p))
                {
                    slot.insert(member.clone());
                    *counts.entry(member.clone()).or_default() += 1;
                }
            }
        }
    }
    // Hand out the rest, each to the least loaded member that subscribes to its topic.
    for (topic, members) in &eligible {
        let count = spec.partitions.get(topic).copied().unwrap_or(0);
        for p in 0..count {
            if owner.contains_key(&(*topic, p)) {
                continue;
            }
            if let Some(m) = least_loaded(members, &counts) {
                owner.insert((*topic, p), m.to_owned());
                *counts.entry(m.to_owned()).or_default() += 1;
            }
        }
    }
    balance(&eligible, &mut owner, &mut counts);
    let mut out = empty_result(spec);
    for ((topic, p), member) in owner {
        if let Some(a) = out.get_mut(&member) {
            a.entry(topic).or_default().insert(p);
        }
    }
    out
}

fn least_loaded<'a>(members: &[&'a str], counts: &BTreeMap<String, usize>) -> Option<&'a str> {
    members
        .iter()
        .min_by_key(|m| (counts.get(**m).copied().unwrap_or(0), **m))
        .copied()
}

/// Moves one partition at a time from a member to an eligible member holding at least two
/// fewer, most loaded giver first, until no such move exists. Each move lowers the sum of
/// squared counts, so the loop ends; the bound is a safety net.
fn balance(
    eligible: &BTreeMap<TopicId, Vec<&str>>,
    owner: &mut BTreeMap<(TopicId, i32), String>,
    counts: &mut BTreeMap<String, usize>,
) {
    for _ in 0..BALANCE_MOVES_MAX {
        let Some((tp, from, to)) = find_move(eligible, owner, counts) else {
            return;
        };
        owner.insert(tp, to.clone());
        if let Some(c) = counts.get_mut(&from) {
            *c = c.saturating_sub(1);
        }
        *counts.entry(to).or_default() += 1;
    }
    tracing::warn!("uniform assignor stopped balancing at its move bound");
}

fn find_move(
    eligible: &BTreeMap<TopicId, Vec<&str>>,
    owner: &BTreeMap<(TopicId, i32), String>,
    counts: &BTreeMap<String, usize>,
) -> Option<((TopicId, i32), String, String)> {
    let mut givers: Vec<(&String, usize)> = counts.iter().map(|(m, c)| (m, *c)).collect();
    givers.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (giver, giver_count) in givers {
        if giver_count < 2 {
            return None;
        }
        // Prefer giving away the highest partitions, so low partitions stay put.
        for ((topic, p), current) in owner.iter().rev() {
            if current != giver {
                continue;
            }
            let Some(members) = eligible.get(topic) else {
                continue;
            };
            if let Some(taker) = least_loaded(members, counts) {
                let taker_count = counts.get(taker).copied().unwrap_or(0);
                if taker_count + 1 < giver_count {
                    return Some(((*topic, *p), giver.clone(), taker.to_owned()));
                }
            }
        }
    }
    None
}
