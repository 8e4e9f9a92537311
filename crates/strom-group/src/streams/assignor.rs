//! The sticky task assignor, Kafka 4.2's server-side `StickyTaskAssignor` (the group
//! coordinator's `streams/assignor`), rewritten:
//!
//! - Load is counted per **process** (one application instance, `process_id`): a process's
//!   load is its tasks (active and standby) divided by its members (threads), so the members
//!   of one process share its load and tasks spread over processes first, then over the
//!   members of the chosen process (its least loaded one).
//! - **Active tasks**, in three passes: (1) a task stays with its previous active owner
//!   while that member is under the per-member quota; (2) otherwise it goes to a previous
//!   standby owner under the quota (the least loaded such process); (3) the rest go to the
//!   least loaded member of the least loaded process that has a member under the quota.
//!   The quota starts at ⌈tasks / members⌉ and, each time a member reaches it, is worked
//!   out again over the tasks and members left (as Kafka's `maybeUpdateTasksPerMember`).
//!   Kafka's pass (3) ignores the quota, so a process with a sticky heavy member and a new
//!   idle one counts as balanced and members can end two or more tasks apart, which the
//!   next assignment then moves; here members end within one task of each other and a
//!   recomputed target of an unchanged group is the same.
//! - **Standby tasks** exist for stateful subtopologies only (those with a changelog, as
//!   Kafka's `isStateful`): `num_standby_replicas` copies per task, never on a process that
//!   already holds the task (active or standby), preferring the task's previous active
//!   owner, then a previous standby owner, while that process is not above its share (it has
//!   fewer tasks than members, or it is among the least loaded), else the least loaded
//!   process. A copy that finds no process is left out (logged).
//! - No warm-up tasks and no rack- or client-tag-aware standbys: Kafka 4.2's assignor makes
//!   neither (its `MemberAssignment` warm-up map is always empty; `rack.aware.assignment.tags`
//!   for streams groups came after 4.2). Kafka's task-pair heuristic (spreading pairs of
//!   tasks over processes) is not reproduced.
//!
//! Deterministic: tasks go in (subtopology, partition) order, ties break on the larger
//! process, then on process id, then on member id. Cost: O((tasks × (1 + replicas) +
//! members) × log members).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::types::{Tasks, TasksTuple};

/// One member as the assignor sees it.
pub struct MemberSpec<'a> {
    pub member_id: &'a str,
    pub process_id: &'a str,
}

type TaskId<'a> = (&'a str, i32);

/// Computes the target assignment of every member in `members`. `tasks` holds the task count
/// of each subtopology, `stateful` the subtopologies that have state (a changelog): only
/// their tasks get standby copies.
pub fn assign(
    members: &[MemberSpec<'_>],
    tasks: &BTreeMap<String, i32>,
    stateful: &BTreeSet<String>,
    previous: &BTreeMap<String, TasksTuple>,
    num_standby_replicas: i32,
) -> BTreeMap<String, TasksTuple> {
    let mut out: BTreeMap<String, TasksTuple> = members
        .iter()
        .map(|m| (m.member_id.to_owned(), TasksTuple::default()))
        .collect();
    let mut state = State::new(members);
    if state.procs.is_empty() {
        return out;
    }
    let all: Vec<TaskId<'_>> = tasks
        .iter()
        .flat_map(|(sub, n)| (0..(*n).max(0)).map(move |p| (sub.as_str(), p)))
        .collect();
    let mut prev_active: BTreeMap<TaskId<'_>, usize> = BTreeMap::new();
    let mut prev_standby: BTreeMap<TaskId<'_>, Vec<usize>> = BTreeMap::new();
    for (member, t) in previous {
        let Some(&m) = state.member_index.get(member.as_str()) else {
            continue;
        };
        for (sub, parts) in &t.active {
            for p in parts {
                prev_active.insert((sub.as_str(), *p), m);
            }
        }
        for (sub, parts) in &t.standby {
            for p in parts {
                prev_standby.entry((sub.as_str(), *p)).or_default().push(m);
            }
        }
    }

    // Active tasks.
    let mut quota = Quota::new(all.len(), state.members.len());
    let mut left: Vec<TaskId<'_>> = Vec::new();
    for &task in &all {
        match prev_active.get(&task) {
            Some(&m) if state.members[m].active < quota.per_member => {
                state.add(m, task, true);
                quota.added(state.members[m].active);
            }
            _ => left.push(task),
        }
    }
    let mut rest: Vec<TaskId<'_>> = Vec::new();
    for task in left {
        let candidate = prev_standby
            .get(&task)
            .and_then(|owners| state.least_loaded_of(owners));
        match candidate {
            Some(m) if state.members[m].active < quota.per_member => {
                state.add(m, task, true);
                quota.added(state.members[m].active);
            }
            _ => rest.push(task),
        }
    }
    for task in rest {
        // The least loaded process with a member under the quota (Kafka takes the least
        // loaded process whatever its members hold; the quota here keeps members within one
        // task of each other, so a later assignment of the same group keeps every task).
        let per_member = quota.per_member;
        let Some(m) = state.least_loaded_member(|p| {
            state.procs[p]
                .members
                .first()
                .is_some_and(|&(_, m)| state.members[m].active < per_member)
        }) else {
            break;
        };
        state.add(m, task, true);
        quota.added(state.members[m].active);
    }

    // Standby tasks.
    let replicas = usize::try_from(num_standby_replicas).unwrap_or(0);
    if replicas > 0 {
        for &task in all.iter().filter(|(sub, _)| stateful.contains(*sub)) {
            for placed in 0..replicas {
                let free = |p: usize| !state.procs[p].held.contains(&task);
                let mut pick = prev_active
                    .get(&task)
                    .copied()
                    .filter(|&m| free(state.members[m].proc) && state.balanced(m));
                if pick.is_none() {
                    let owners: Vec<usize> = prev_standby
                        .get(&task)
                        .into_iter()
                        .flatten()
                        .copied()
                        .filter(|&m| free(state.members[m].proc))
                        .collect();
                    pick = state
                        .least_loaded_of(&owners)
                        .filter(|&m| state.balanced(m));
                }
                if pick.is_none() {
                    pick = state.least_loaded_member(free);
                }
                let Some(m) = pick else {
                    tracing::warn!(
                        subtopology = task.0,
                        partition = task.1,
                        missing = replicas - placed,
                        "not enough processes for every standby replica of a task: run more \
                         application instances or lower num.standby.replicas"
                    );
                    break;
                };
                state.add(m, task, false);
            }
        }
    }

    for member in &state.members {
        let Some(t) = out.get_mut(member.id) else {
            continue;
        };
        for &(sub, p) in &member.active_tasks {
            add(&mut t.active, sub, p);
        }
        for &(sub, p) in &member.standby_tasks {
            add(&mut t.standby, sub, p);
        }
    }
    out
}

/// Kafka's tasks-per-member quota for sticky placements: ⌈tasks / members⌉, worked out
/// again over what is left whenever a member reaches it.
struct Quota {
    tasks: usize,
    members: usize,
    per_member: usize,
}

impl Quota {
    fn new(tasks: usize, members: usize) -> Self {
        Quota {
            tasks,
            members,
            per_member: tasks.div_ceil(members.max(1)),
        }
    }

    /// A member now holds `count` active tasks.
    fn added(&mut self, count: usize) {
        if count == self.per_member && self.members > 0 {
            self.members -= 1;
            self.tasks = self.tasks.saturating_sub(count);
            self.per_member = self.tasks.div_ceil(self.members.max(1));
        }
    }
}

struct MemberState<'a> {
    id: &'a str,
    proc: usize,
    active: usize,
    active_tasks: Vec<TaskId<'a>>,
    standby_tasks: Vec<TaskId<'a>>,
}

struct Proc<'a> {
    /// Tasks of every kind held by its members.
    tasks: usize,
    /// Its members, least loaded first: (tasks of every kind, member index).
    members: BTreeSet<(usize, usize)>,
    /// Every task one of its members holds (active or standby).
    held: BTreeSet<TaskId<'a>>,
    id: &'a str,
}

/// The ordering key of a process: load (tasks / members, compared exactly), then the
/// larger process, then the process index (id order).
#[derive(Clone, Copy, PartialEq, Eq)]
struct LoadKey {
    tasks: usize,
    capacity: usize,
    index: usize,
}

impl LoadKey {
    fn cmp_load(&self, other: &Self) -> Ordering {
        let mine = self.tasks as u128 * other.capacity as u128;
        let theirs = other.tasks as u128 * self.capacity as u128;
        mine.cmp(&theirs)
    }
}

impl Ord for LoadKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_load(other)
            .then(other.capacity.cmp(&self.capacity))
            .then(self.index.cmp(&other.index))
    }
}

impl PartialOrd for LoadKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

struct State<'a> {
    members: Vec<MemberState<'a>>,
    member_index: BTreeMap<&'a str, usize>,
    procs: Vec<Proc<'a>>,
    by_load: BTreeSet<LoadKey>,
}

impl<'a> State<'a> {
    fn new(specs: &[MemberSpec<'a>]) -> Self {
        let mut sorted: Vec<&MemberSpec<'a>> = specs.iter().collect();
        sorted.sort_by(|a, b| (a.process_id, a.member_id).cmp(&(b.process_id, b.member_id)));
        sorted.dedup_by(|a, b| a.member_id == b.member_id);
        let mut members = Vec::with_capacity(sorted.len());
        let mut member_index = BTreeMap::new();
        let mut procs: Vec<Proc<'a>> = Vec::new();
        for spec in sorted {
            if procs.last().is_none_or(|p| p.id != spec.process_id) {
                procs.push(Proc {
                    tasks: 0,
                    members: BTreeSet::new(),
                    held: BTreeSet::new(),
                    id: spec.process_id,
                });
            }
            let proc = procs.len() - 1;
            let index = members.len();
            if let Some(p) = procs.last_mut() {
                p.members.insert((0, index));
            }
            member_index.insert(spec.member_id, index);
            members.push(MemberState {
                id: spec.member_id,
                proc,
                active: 0,
                active_tasks: Vec::new(),
                standby_tasks: Vec::new(),
            });
        }
        let by_load = procs
            .iter()
            .enumerate()
            .map(|(index, p)| LoadKey {
                tasks: 0,
                capacity: p.members.len(),
                index,
            })
            .collect();
        State {
            members,
            member_index,
            procs,
            by_load,
        }
    }

    fn key(&self, proc: usize) -> LoadKey {
        LoadKey {
            tasks: self.procs[proc].tasks,
            capacity: self.procs[proc].members.len(),
            index: proc,
        }
    }

    fn member_load(&self, m: usize) -> usize {
        self.members[m].active_tasks.len() + self.members[m].standby_tasks.len()
    }

    fn add(&mut self, m: usize, task: TaskId<'a>, active: bool) {
        let proc = self.members[m].proc;
        let before = self.member_load(m);
        self.by_load.remove(&self.key(proc));
        let member = &mut self.members[m];
        if active {
            member.active += 1;
            member.active_tasks.push(task);
        } else {
            member.standby_tasks.push(task);
        }
        let p = &mut self.procs[proc];
        p.tasks += 1;
        p.held.insert(task);
        p.members.remove(&(before, m));
        p.members.insert((before + 1, m));
        self.by_load.insert(self.key(proc));
    }

    /// The least loaded member of the least loaded process that `eligible` accepts.
    fn least_loaded_member(&self, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let key = self.by_load.iter().find(|k| eligible(k.index))?;
        self.procs[key.index].members.first().map(|&(_, m)| m)
    }

    /// Of `owners` (member indexes), the one on the least loaded process (the first listed
    /// of that process), as Kafka's `findMemberWithLeastLoad` with the same member wanted.
    fn least_loaded_of(&self, owners: &[usize]) -> Option<usize> {
        owners
            .iter()
            .copied()
            .min_by_key(|&m| self.key(self.members[m].proc))
    }

    /// Whether member `m`'s process may take one more task without going above its share:
    /// it has fewer tasks than members, or no process is less loaded (Kafka's
    /// `isLoadBalanced`).
    fn balanced(&self, m: usize) -> bool {
        let proc = self.members[m].proc;
        let p = &self.procs[proc];
        if p.tasks < p.members.len() {
            return true;
        }
        let key = self.key(proc);
        self.by_load
            .first()
            .is_none_or(|least| key.cmp_load(least) != Ordering::Greater)
    }
}

fn add(tasks: &mut Tasks, sub: &str, p: i32) {
    tasks.entry(sub.to_owned()).or_default().insert(p);
}
