//! The Streams-aware assignor, run by the group leader over the classic protocol
//! (protocol name `stream`, as Kafka Streams'). Members send, as subscription user data,
//! their process id, `application.server`, the tasks they ran and the tasks whose state
//! they hold on disk; the leader assigns whole tasks (every source partition of a task to
//! one member), sticky: a task stays where it ran, else goes where its state is, else to
//! the least loaded instance, within a balanced quota per instance. Standby replicas go
//! to other instances, preferring ones that hold the state. Each member gets its active
//! and standby tasks and the map of which host holds which task (for interactive queries)
//! as assignment user data.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strom_client::consumer::assignor::{GroupAssignor, MemberAssignment, MemberSubscription};
use strom_client::{ClientError, TopicPartition};

use crate::task::TaskId;
use crate::topology::Topology;

const VERSION: u32 = 1;

/// What a member tells the leader.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SubscriptionInfo {
    pub version: u32,
    pub process: String,
    pub host: Option<String>,
    pub active: Vec<TaskId>,
    /// Tasks with local state (standbys, and task directories left on disk).
    pub state: Vec<TaskId>,
}

/// What the leader tells a member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AssignmentInfo {
    pub version: u32,
    pub active: Vec<TaskId>,
    pub standby: Vec<TaskId>,
    /// `application.server` -> (active tasks, standby tasks) of every instance.
    pub hosts: BTreeMap<String, (Vec<TaskId>, Vec<TaskId>)>,
    /// A problem the leader found (topics not co-partitioned); members stop with it.
    pub error: Option<String>,
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Option<Bytes> {
    serde_json::to_vec(v).ok().map(Bytes::from)
}

pub(crate) fn decode<T: for<'a> Deserialize<'a>>(b: &[u8]) -> Option<T> {
    serde_json::from_slice(b).ok()
}

/// One instance (process) in the group.
#[derive(Debug, Clone, Default)]
pub(crate) struct Client {
    pub members: Vec<String>,
    pub host: Option<String>,
    pub prev_active: BTreeSet<TaskId>,
    pub state: BTreeSet<TaskId>,
}

/// Tasks per process: (active, standby).
pub(crate) type TaskAssignment = BTreeMap<String, (BTreeSet<TaskId>, BTreeSet<TaskId>)>;

/// Assigns `tasks` to the clients (pure; see the module doc for the rules). Stateful and
/// stateless tasks are balanced separately, so each instance gets its share of state.
pub(crate) fn assign_tasks(
    clients: &BTreeMap<String, Client>,
    tasks: &[TaskId],
    stateful: &BTreeSet<TaskId>,
    standbys: usize,
) -> TaskAssignment {
    let mut out: TaskAssignment = clients
        .keys()
        .map(|c| (c.clone(), Default::default()))
        .collect();
    if clients.is_empty() {
        return out;
    }
    let (with_state, without): (Vec<TaskId>, Vec<TaskId>) =
        tasks.iter().copied().partition(|t| stateful.contains(t));
    // State first (balanced among itself), then the rest fills up to a balanced total.
    assign_active(clients, &with_state, &with_state, &mut out);
    assign_active(clients, &without, tasks, &mut out);
    // Standbys: other instances, those with the state first, then the least loaded.
    for t in tasks.iter().filter(|t| stateful.contains(t)) {
        for _ in 0..standbys {
            let total =
                |out: &TaskAssignment, c: &str| out.get(c).map_or(0, |(a, s)| a.len() + s.len());
            let pick = clients
                .iter()
                .filter(|(name, _)| {
                    out.get(*name)
                        .is_some_and(|(a, s)| !a.contains(t) && !s.contains(t))
                })
                .min_by_key(|(name, c)| {
                    (
                        !(c.state.contains(t) || c.prev_active.contains(t)),
                        total(&out, name),
                        (*name).clone(),
                    )
                })
                .map(|(n, _)| n.clone());
            match pick {
                Some(p) => {
                    if let Some(e) = out.get_mut(&p) {
                        e.1.insert(*t);
                    }
                }
                None => break,
            }
        }
    }
    out
}

/// Sticky, then state-following, then least-loaded assignment of `tasks`, with loads
/// counted among `counted` and a quota of `counted` proportional to each client's threads.
fn assign_active(
    clients: &BTreeMap<String, Client>,
    tasks: &[TaskId],
    counted: &[TaskId],
    out: &mut TaskAssignment,
) {
    let capacity: usize = clients.values().map(|c| c.members.len().max(1)).sum();
    let quota = |c: &Client| (counted.len() * c.members.len().max(1)).div_ceil(capacity.max(1));
    let load = |out: &TaskAssignment, c: &str| {
        out.get(c)
            .map_or(0, |(a, _)| a.iter().filter(|t| counted.contains(t)).count())
    };
    let mut unassigned: Vec<TaskId> = Vec::new();
    for t in tasks {
        let owner = clients
            .iter()
            .find(|(name, c)| c.prev_active.contains(t) && load(out, name) < quota(c))
            .map(|(n, _)| n.clone());
        match owner {
            Some(o) => {
                if let Some(e) = out.get_mut(&o) {
                    e.0.insert(*t);
                }
            }
            None => unassigned.push(*t),
        }
    }
    for t in unassigned {
        let pick = clients
            .iter()
            .filter(|(name, c)| c.state.contains(&t) && load(out, name) < quota(c))
            .min_by_key(|(name, _)| load(out, name))
            .or_else(|| {
                clients.iter().min_by_key(|(name, c)| {
                    (
                        load(out, name) * capacity / c.members.len().max(1),
                        (*name).clone(),
                    )
                })
            })
            .map(|(n, _)| n.clone());
        if let Some(p) = pick {
            if let Some(e) = out.get_mut(&p) {
                e.0.insert(t);
            }
        }
    }
}

/// The assignor a thread's consumer runs; shares its view of local state with the thread.
pub(crate) struct StreamsAssignor {
    pub topology: Arc<Topology>,
    pub application_id: String,
    pub standbys: usize,
    /// This member's subscription info, refreshed by the thread before every join.
    pub info: Arc<Mutex<SubscriptionInfo>>,
}

impl StreamsAssignor {
    /// Tasks of the topology given the partition counts of its source topics.
    fn tasks(&self, counts: &BTreeMap<String, i32>) -> (Vec<TaskId>, BTreeSet<TaskId>) {
        let mut tasks = Vec::new();
        let mut stateful = BTreeSet::new();
        for sub in &self.topology.subtopologies {
            let n = sub
                .sources
                .iter()
                .filter_map(|t| counts.get(&t.resolve(&self.application_id)))
                .max()
                .copied()
                .unwrap_or(0);
            for p in 0..n {
                let id = TaskId::new(sub.id, p);
                tasks.push(id);
                if sub
                    .stores
                    .iter()
                    .any(|s| self.topology.stores.get(s).is_some_and(|s| s.logged))
                {
                    stateful.insert(id);
                }
            }
        }
        (tasks, stateful)
    }

    /// The source partitions of a task that exist.
    fn partitions(&self, task: TaskId, counts: &BTreeMap<String, i32>) -> Vec<TopicPartition> {
        let Some(sub) = self.topology.subtopologies.get(task.subtopology as usize) else {
            return Vec::new();
        };
        sub.sources
            .iter()
            .map(|t| t.resolve(&self.application_id))
            .filter(|t| counts.get(t).is_some_and(|&n| task.partition < n))
            .map(|t| TopicPartition::new(t, task.partition))
            .collect()
    }

    /// A co-partitioning problem among the current partition counts.
    fn check_copartitioning(&self, counts: &BTreeMap<String, i32>) -> Option<String> {
        for group in &self.topology.copartition {
            let listed: Vec<(String, i32)> = group
                .iter()
                .map(|t| {
                    let name = t.resolve(&self.application_id);
                    let c = counts.get(&name).copied().unwrap_or(-1);
                    (name, c)
                })
                .collect();
            if listed.windows(2).any(|w| w[0].1 != w[1].1) {
                return Some(format!(
                    "topics {} are joined and must have the same number of partitions",
                    listed
                        .iter()
                        .map(|(t, c)| format!("{t} ({c})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        None
    }
}

impl GroupAssignor for StreamsAssignor {
    fn name(&self) -> &str {
        "stream"
    }

    fn user_data(&self) -> Option<Bytes> {
        let info = self.info.lock().ok()?.clone();
        encode(&info)
    }

    fn assign(
        &self,
        members: &BTreeMap<String, MemberSubscription>,
        partition_counts: &BTreeMap<String, i32>,
    ) -> strom_client::Result<BTreeMap<String, MemberAssignment>> {
        let mut clients: BTreeMap<String, Client> = BTreeMap::new();
        let mut member_process: BTreeMap<String, String> = BTreeMap::new();
        for (member, sub) in members {
            let Some(info) = sub
                .user_data
                .as_deref()
                .and_then(decode::<SubscriptionInfo>)
            else {
                tracing::warn!(
                    member,
                    "group member without Streams subscription data gets nothing"
                );
                continue;
            };
            if info.version != VERSION {
                return Err(ClientError::Protocol(format!(
                    "member {member} speaks Streams assignment version {}, this one {VERSION}",
                    info.version
                )));
            }
            let c = clients.entry(info.process.clone()).or_default();
            c.members.push(member.clone());
            c.host = info.host.clone();
            c.prev_active.extend(info.active.iter().copied());
            c.state.extend(info.state.iter().copied());
            member_process.insert(member.clone(), info.process);
        }
        let error = self.check_copartitioning(partition_counts);
        let (tasks, stateful) = self.tasks(partition_counts);
        let by_client = if error.is_some() {
            BTreeMap::new()
        } else {
            assign_tasks(&clients, &tasks, &stateful, self.standbys)
        };
        let mut hosts = BTreeMap::new();
        for (name, c) in &clients {
            if let (Some(h), Some((a, s))) = (&c.host, by_client.get(name)) {
                hosts.insert(
                    h.clone(),
                    (a.iter().copied().collect(), s.iter().copied().collect()),
                );
            }
        }
        // Within an instance, tasks go round-robin over its members (threads).
        let mut per_member: BTreeMap<String, (Vec<TaskId>, Vec<TaskId>)> = BTreeMap::new();
        for (name, c) in &clients {
            let Some((active, standby)) = by_client.get(name) else {
                continue;
            };
            let mut ms = c.members.clone();
            ms.sort();
            for (i, t) in active.iter().enumerate() {
                if let Some(m) = ms.get(i % ms.len().max(1)) {
                    per_member.entry(m.clone()).or_default().0.push(*t);
                }
            }
            for (i, t) in standby.iter().enumerate() {
                if let Some(m) = ms.get(i % ms.len().max(1)) {
                    per_member.entry(m.clone()).or_default().1.push(*t);
                }
            }
        }
        let mut out = BTreeMap::new();
        for member in members.keys() {
            let (active, standby) = per_member.remove(member).unwrap_or_default();
            let partitions = active
                .iter()
                .flat_map(|t| self.partitions(*t, partition_counts))
                .collect();
            let info = AssignmentInfo {
                version: VERSION,
                active,
                standby,
                hosts: hosts.clone(),
                error: error.clone(),
            };
            out.insert(
                member.clone(),
                MemberAssignment {
                    partitions,
                    user_data: encode(&info),
                },
            );
        }
        let _ = member_process;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u32, p: i32) -> TaskId {
        TaskId::new(s, p)
    }

    fn client(members: usize, prev: &[TaskId], state: &[TaskId]) -> Client {
        Client {
            members: (0..members).map(|i| format!("m{i}")).collect(),
            host: None,
            prev_active: prev.iter().copied().collect(),
            state: state.iter().copied().collect(),
        }
    }

    #[test]
    fn tasks_are_balanced_sticky_and_follow_state() {
        let tasks: Vec<TaskId> = (0..6).map(|p| t(0, p)).collect();
        let stateful: BTreeSet<TaskId> = tasks.iter().copied().collect();
        // One instance had everything; a second joins: half move, the rest stay.
        let mut clients = BTreeMap::new();
        clients.insert("a".to_string(), client(1, &tasks, &[]));
        clients.insert("b".to_string(), client(1, &[], &[t(0, 5)]));
        let out = assign_tasks(&clients, &tasks, &stateful, 0);
        assert_eq!(out["a"].0.len(), 3);
        assert_eq!(out["b"].0.len(), 3);
        assert!(out["a"].0.iter().all(|x| x.partition < 3), "{out:?}");
        // A third joins holding state of 0_1: it gets two tasks, 0_1 among them.
        let mut clients2 = BTreeMap::new();
        clients2.insert(
            "a".to_string(),
            client(1, &out["a"].0.iter().copied().collect::<Vec<_>>(), &[]),
        );
        clients2.insert(
            "b".to_string(),
            client(1, &out["b"].0.iter().copied().collect::<Vec<_>>(), &[]),
        );
        clients2.insert("c".to_string(), client(1, &[], &[t(0, 1)]));
        let out2 = assign_tasks(&clients2, &tasks, &stateful, 0);
        for c in ["a", "b", "c"] {
            assert_eq!(out2[c].0.len(), 2, "{out2:?}");
        }
        let all: BTreeSet<TaskId> = out2.values().flat_map(|(a, _)| a.iter().copied()).collect();
        assert_eq!(all.len(), 6, "every task once");
        let moved = ["a", "b"]
            .iter()
            .map(|c| out[*c].0.difference(&out2[*c].0).count())
            .sum::<usize>();
        assert_eq!(
            moved, 2,
            "only the tasks the newcomer takes move: {out:?} -> {out2:?}"
        );
    }

    #[test]
    fn standbys_go_to_other_instances_and_prefer_state() {
        let tasks = vec![t(0, 0), t(0, 1), t(1, 0)];
        let stateful: BTreeSet<TaskId> = [t(0, 0), t(0, 1)].into_iter().collect();
        let mut clients = BTreeMap::new();
        clients.insert("a".to_string(), client(1, &[t(0, 0)], &[]));
        clients.insert("b".to_string(), client(1, &[t(0, 1)], &[]));
        clients.insert("c".to_string(), client(1, &[], &[t(0, 0)]));
        let out = assign_tasks(&clients, &tasks, &stateful, 1);
        for task in &stateful {
            let owners: Vec<&String> = out
                .iter()
                .filter(|(_, (a, _))| a.contains(task))
                .map(|(n, _)| n)
                .collect();
            let standbys: Vec<&String> = out
                .iter()
                .filter(|(_, (_, s))| s.contains(task))
                .map(|(n, _)| n)
                .collect();
            assert_eq!(owners.len(), 1);
            assert_eq!(standbys.len(), 1);
            assert_ne!(owners[0], standbys[0]);
        }
        assert!(
            out["c"].1.contains(&t(0, 0)) || out["c"].0.contains(&t(0, 0)),
            "{out:?}"
        );
        assert!(
            out.values().all(|(_, s)| !s.contains(&t(1, 0))),
            "stateless tasks get no standby"
        );
        // More replicas than other instances: as many as fit.
        let mut one = BTreeMap::new();
        one.insert("a".to_string(), client(2, &[], &[]));
        let out = assign_tasks(&one, &tasks, &stateful, 2);
        assert_eq!(out["a"].0.len(), 3);
        assert!(out["a"].1.is_empty());
    }

    #[test]
    fn stateful_and_stateless_tasks_are_balanced_separately() {
        let tasks: Vec<TaskId> = (0..3).flat_map(|p| [t(0, p), t(1, p)]).collect();
        let stateful: BTreeSet<TaskId> = (0..3).map(|p| t(1, p)).collect();
        let mut clients = BTreeMap::new();
        clients.insert("a".to_string(), client(1, &tasks, &[]));
        clients.insert("b".to_string(), client(1, &[], &[]));
        let out = assign_tasks(&clients, &tasks, &stateful, 0);
        for c in ["a", "b"] {
            let with_state = out[c].0.iter().filter(|x| stateful.contains(x)).count();
            assert!((1..=2).contains(&with_state), "{out:?}");
            assert_eq!(out[c].0.len(), 3, "{out:?}");
        }
    }

    #[test]
    fn user_data_round_trips() {
        let info = SubscriptionInfo {
            version: VERSION,
            process: "p".into(),
            host: Some("h:1".into()),
            active: vec![t(0, 1)],
            state: vec![t(1, 2)],
        };
        let b = encode(&info).unwrap();
        assert_eq!(decode::<SubscriptionInfo>(&b), Some(info));
        assert!(decode::<AssignmentInfo>(b"garbage").is_none());
    }
}
