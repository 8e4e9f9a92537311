//! The sticky task assignor (Kafka's `StickyTaskAssignor` in spirit): every task of the
//! topology goes to exactly one member as active; a task stays with the member that had it
//! in the previous target while that keeps the members balanced (no member more than one
//! task above another); then `num_standby_replicas` standby copies of each task go to the
//! least loaded members of other processes than the active's (and each other's),
//! previous standby owners first. Deterministic: ties break on member id.
//! Warm-up tasks are not made (Kafka 4.2's server-side assignor makes none either while
//! `acceptable.recovery.lag` plays no part here; the field stays empty).

use std::collections::{BTreeMap, BTreeSet};

use super::types::{Tasks, TasksTuple};

/// One member as the assignor sees it.
pub struct MemberSpec<'a> {
    pub member_id: &'a str,
    pub process_id: &'a str,
}

/// Computes the target assignment of every member in `members`.
pub fn assign(
    members: &[MemberSpec<'_>],
    tasks: &BTreeMap<String, i32>,
    previous: &BTreeMap<String, TasksTuple>,
    num_standby_replicas: i32,
) -> BTreeMap<String, TasksTuple> {
    let mut out: BTreeMap<String, TasksTuple> = members
        .iter()
        .map(|m| (m.member_id.to_owned(), TasksTuple::default()))
        .collect();
    if members.is_empty() {
        return out;
    }
    let all: Vec<(&str, i32)> = tasks
        .iter()
        .flat_map(|(sub, n)| (0..(*n).max(0)).map(move |p| (sub.as_str(), p)))
        .collect();
    let mut prev_active: BTreeMap<(&str, i32), &str> = BTreeMap::new();
    let mut prev_standby: BTreeMap<(&str, i32), Vec<&str>> = BTreeMap::new();
    for (member, t) in previous {
        for (sub, parts) in &t.active {
            for p in parts {
                prev_active.insert((sub.as_str(), *p), member.as_str());
            }
        }
        for (sub, parts) in &t.standby {
            for p in parts {
                prev_standby
                    .entry((sub.as_str(), *p))
                    .or_default()
                    .push(member.as_str());
            }
        }
    }
    let n_members = members.len();
    let floor = all.len() / n_members;
    // Members that may hold one task above `floor`, so that the sum comes out.
    let mut extra = all.len() % n_members;
    let mut load = Load::new(members.iter().map(|m| m.member_id));
    let mut active_owner: BTreeMap<(&str, i32), &str> = BTreeMap::new();
    // Sticky pass: previous active owners keep their tasks up to the balanced share.
    for &(sub, p) in &all {
        let Some(&prev) = prev_active.get(&(sub, p)) else {
            continue;
        };
        let Some(l) = load.of(prev) else {
            continue;
        };
        if l < floor || (l == floor && extra > 0) {
            if l == floor {
                extra -= 1;
            }
            load.add(prev);
            active_owner.insert((sub, p), prev);
        }
    }
    // Fill: the remaining tasks go to the least loaded member.
    for &(sub, p) in &all {
        if active_owner.contains_key(&(sub, p)) {
            continue;
        }
        let Some(member) = load.least(|_| true) else {
            break;
        };
        load.add(member);
        active_owner.insert((sub, p), member);
    }
    for (&(sub, p), member) in &active_owner {
        if let Some(t) = out.get_mut(*member) {
            add(&mut t.active, sub, p);
        }
    }
    let replicas = usize::try_from(num_standby_replicas).unwrap_or(0);
    if replicas == 0 {
        return out;
    }
    let process: BTreeMap<&str, &str> = members
        .iter()
        .map(|m| (m.member_id, m.process_id))
        .collect();
    for &(sub, p) in &all {
        let mut used: BTreeSet<&str> = BTreeSet::new();
        if let Some(proc_id) = active_owner.get(&(sub, p)).and_then(|o| process.get(o)) {
            used.insert(proc_id);
        }
        let mut placed = 0;
        // Previous standby owners first, then the least loaded members of unused processes.
        let previous_owners = prev_standby.get(&(sub, p)).cloned().unwrap_or_default();
        for member in previous_owners {
            if placed == replicas {
                break;
            }
            let Some(&proc_id) = process.get(member) else {
                continue;
            };
            if used.insert(proc_id) {
                placed += 1;
                load.add(member);
                if let Some(t) = out.get_mut(member) {
                    add(&mut t.standby, sub, p);
                }
            }
        }
        while placed < replicas {
            let Some(member) = load.least(|id| {
                process
                    .get(id)
                    .is_some_and(|proc_id| !used.contains(proc_id))
            }) else {
                break;
            };
            if let Some(&proc_id) = process.get(member) {
                used.insert(proc_id);
            }
            placed += 1;
            load.add(member);
            if let Some(t) = out.get_mut(member) {
                add(&mut t.standby, sub, p);
            }
        }
    }
    out
}

/// Members ordered by their number of tasks (then id), to find the least loaded fast.
struct Load<'a> {
    by_member: BTreeMap<&'a str, usize>,
    ordered: BTreeSet<(usize, &'a str)>,
}

impl<'a> Load<'a> {
    fn new(members: impl Iterator<Item = &'a str>) -> Self {
        let by_member: BTreeMap<&str, usize> = members.map(|m| (m, 0)).collect();
        let ordered = by_member.keys().map(|m| (0, *m)).collect();
        Load { by_member, ordered }
    }

    fn of(&self, member: &str) -> Option<usize> {
        self.by_member.get(member).copied()
    }

    fn add(&mut self, member: &'a str) {
        if let Some(l) = self.by_member.get_mut(member) {
            self.ordered.remove(&(*l, member));
            *l += 1;
            self.ordered.insert((*l, member));
        }
    }

    fn least(&self, eligible: impl Fn(&str) -> bool) -> Option<&'a str> {
        self.ordered
            .iter()
            .find(|(_, m)| eligible(m))
            .map(|(_, m)| *m)
    }
}

fn add(tasks: &mut Tasks, sub: &str, p: i32) {
    tasks.entry(sub.to_owned()).or_default().insert(p);
}
