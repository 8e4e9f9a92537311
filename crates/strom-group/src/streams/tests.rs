//! The streams coordinator against its invariants: a record round-trips, a topology is
//! configured as Kafka configures it, and random members (joining, heartbeating with what
//! they own, leaving, falling silent, topics growing) never see an active task owned twice,
//! never see an epoch go back, end with every task assigned once, and a coordinator
//! reloaded from the records written so far equals the live one.
// Compiled only under #[cfg(test)] (declared so in mod.rs): unwrapping is fine here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::consumer::{TopicId, TopicInfo as ClusterTopic, Topics};
use crate::coordinator::{Config, Coordinator};
use crate::records::GroupRecord;
use crate::types::{Command, Response};

use super::group::{CurrentAssignment, MemberMetadata, MemberState};
use super::records::{GroupMetadata, StreamsRecord};
use super::types::*;

fn cluster(topics: &[(&str, i32)]) -> Arc<Topics> {
    Arc::new(Topics::new(topics.iter().enumerate().map(
        |(i, (name, n))| ClusterTopic {
            id: TopicId([u8::try_from(i + 1).unwrap(); 16]),
            name: (*name).to_owned(),
            partitions: *n,
        },
    )))
}

fn topology(changelog: bool) -> Topology {
    Topology {
        epoch: 1,
        subtopologies: vec![Subtopology {
            id: "0".into(),
            source_topics: vec!["in".into()],
            state_changelog_topics: if changelog {
                vec![TopicInfo {
                    name: "app-changelog".into(),
                    partitions: 0,
                    replication_factor: 0,
                    configs: vec![("cleanup.policy".into(), "compact".into())],
                }]
            } else {
                Vec::new()
            },
            ..Subtopology::default()
        }],
    }
}

fn tasks(pairs: &[(&str, &[i32])]) -> Tasks {
    pairs
        .iter()
        .map(|(s, p)| ((*s).to_owned(), p.iter().copied().collect()))
        .collect()
}

fn heartbeat(
    member: &str,
    epoch: i32,
    owned: Option<TasksTuple>,
    topics: &Arc<Topics>,
) -> StreamsHeartbeat {
    StreamsHeartbeat {
        group_id: "app".into(),
        member_id: member.into(),
        member_epoch: epoch,
        instance_id: None,
        rack_id: None,
        rebalance_timeout_ms: if epoch == 0 { 10_000 } else { -1 },
        topology: (epoch == 0).then(|| topology(false)),
        null_tasks: if owned.is_some() {
            NullTasks::default()
        } else {
            NullTasks::ALL
        },
        owned,
        process_id: (epoch == 0).then(|| format!("process-{member}")),
        user_endpoint: None,
        client_tags: None,
        shutdown_application: false,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        topics: Arc::clone(topics),
        session_timeout_ms: None,
        heartbeat_interval_ms: None,
        num_standby_replicas: None,
    }
}

fn send(
    c: &mut Coordinator,
    hb: StreamsHeartbeat,
    now: i64,
    log: &mut Vec<GroupRecord>,
) -> StreamsHeartbeatResponse {
    let out = c.handle(1, Command::StreamsGroupHeartbeat(hb), now);
    log.extend(out.records);
    match out.replies.into_iter().next().map(|r| r.response) {
        Some(Response::StreamsGroupHeartbeat(r)) => r,
        other => panic!("unexpected reply {other:?}"),
    }
}

#[test]
fn records_round_trip_and_truncation_is_an_error() {
    let current = CurrentAssignment {
        member_epoch: 7,
        previous_member_epoch: 6,
        state: MemberState::UnrevokedTasks,
        assigned: TasksTuple {
            active: tasks(&[("0", &[0, 2]), ("1", &[5])]),
            standby: tasks(&[("0", &[1])]),
            warmup: Tasks::new(),
        },
        pending_revocation: TasksTuple {
            active: tasks(&[("0", &[3])]),
            ..TasksTuple::default()
        },
    };
    let metadata = MemberMetadata {
        instance_id: Some("i-1".into()),
        rack_id: None,
        client_id: "c".into(),
        client_host: "/h".into(),
        rebalance_timeout_ms: 30_000,
        topology_epoch: 2,
        process_id: "p".into(),
        user_endpoint: Some(Endpoint {
            host: "localhost".into(),
            port: 8080,
        }),
        client_tags: vec![("zone".into(), "a".into())],
    };
    let mut t = topology(true);
    t.subtopologies[0].repartition_source_topics = vec![TopicInfo {
        name: "r".into(),
        partitions: 4,
        replication_factor: 3,
        configs: Vec::new(),
    }];
    t.subtopologies[0].repartition_sink_topics = vec!["s".into()];
    t.subtopologies[0].copartition_groups = vec![CopartitionGroup {
        source_topics: vec![0],
        source_topic_regex: Vec::new(),
        repartition_source_topics: vec![0],
    }];
    let records = vec![
        StreamsRecord::GroupMetadata {
            group: "g".into(),
            value: Some(GroupMetadata {
                epoch: 3,
                metadata_hash: -42,
                validated_topology_epoch: 2,
                assignment_configs: vec![("num.standby.replicas".into(), "1".into())],
            }),
        },
        StreamsRecord::GroupMetadata {
            group: "g".into(),
            value: Some(GroupMetadata {
                epoch: 1,
                metadata_hash: i64::MAX,
                validated_topology_epoch: -1,
                assignment_configs: Vec::new(),
            }),
        },
        StreamsRecord::GroupMetadata {
            group: "g".into(),
            value: None,
        },
        StreamsRecord::MemberMetadata {
            group: "g".into(),
            member: "m".into(),
            value: Some(metadata),
        },
        StreamsRecord::TargetEpoch {
            group: "g".into(),
            epoch: Some(9),
        },
        StreamsRecord::TargetMember {
            group: "g".into(),
            member: "m".into(),
            tasks: Some(current.assigned.clone()),
        },
        StreamsRecord::CurrentMember {
            group: "g".into(),
            member: "m".into(),
            current: Some(current),
        },
        StreamsRecord::Topology {
            group: "g".into(),
            topology: Some(t),
        },
    ];
    for record in records {
        let encoded = record.encode().unwrap();
        let decoded = StreamsRecord::decode(&encoded.key, encoded.value.as_deref()).unwrap();
        assert_eq!(decoded, Some(record.clone()));
        if let Some(value) = &encoded.value {
            for cut in 0..value.len() {
                assert!(
                    StreamsRecord::decode(&encoded.key, Some(&value[..cut])).is_err(),
                    "{record:?} cut at {cut} decoded"
                );
            }
        }
    }
    // The key version is the record type, as Kafka writes it.
    let key = StreamsRecord::Topology {
        group: "g".into(),
        topology: None,
    }
    .encode()
    .unwrap()
    .key;
    assert_eq!(&key[..2], &23i16.to_be_bytes());
}

#[test]
fn topology_is_configured_against_the_topics() {
    let mut t = topology(true);
    t.subtopologies.push(Subtopology {
        id: "1".into(),
        repartition_source_topics: vec![TopicInfo {
            name: "app-repartition".into(),
            ..TopicInfo::default()
        }],
        ..Subtopology::default()
    });
    t.subtopologies[0].repartition_sink_topics = vec!["app-repartition".into()];
    let missing = super::configure(&t, &cluster(&[]), 1000);
    assert_eq!(missing.status[0].code, StatusCode::MissingSourceTopics);
    assert_eq!(missing.status[0].detail, "Source topics in are missing.");
    // The repartition topic takes its writer's input partitions; the changelog its tasks.
    let c = super::configure(&t, &cluster(&[("in", 3)]), 1000);
    assert_eq!(c.status[0].code, StatusCode::MissingInternalTopics);
    let created: BTreeMap<&str, i32> = c
        .to_create
        .iter()
        .map(|t| (t.name.as_str(), t.partitions))
        .collect();
    assert_eq!(
        created,
        BTreeMap::from([("app-changelog", 3), ("app-repartition", 3)])
    );
    let ready = super::configure(
        &t,
        &cluster(&[("in", 3), ("app-changelog", 3), ("app-repartition", 3)]),
        1000,
    );
    assert!(ready.is_ready(), "{ready:?}");
    assert_eq!(
        ready.tasks,
        BTreeMap::from([("0".into(), 3), ("1".into(), 3)])
    );
    let wrong = super::configure(
        &t,
        &cluster(&[("in", 3), ("app-changelog", 2), ("app-repartition", 3)]),
        1000,
    );
    assert_eq!(
        wrong.status[0].code,
        StatusCode::IncorrectlyPartitionedTopics
    );
    let too_many = super::configure(
        &t,
        &cluster(&[("in", 3), ("app-changelog", 3), ("app-repartition", 3)]),
        5,
    );
    assert_eq!(
        too_many.status[0].code,
        StatusCode::IncorrectlyPartitionedTopics
    );
    let mut bad = topology(true);
    bad.subtopologies[0].state_changelog_topics[0].partitions = 2;
    assert!(super::validate(&bad)
        .unwrap_err()
        .contains("undefined partition count"));
}

/// Members and processes as the assignor takes them.
fn specs<'a>(members: &'a [(String, String)]) -> Vec<super::MemberSpec<'a>> {
    members
        .iter()
        .map(|(m, p)| super::MemberSpec {
            member_id: m,
            process_id: p,
        })
        .collect()
}

/// `per_process[i]` members on process `p{i}`, named `p{i}-m{j}`.
fn processes(per_process: &[usize]) -> Vec<(String, String)> {
    per_process
        .iter()
        .enumerate()
        .flat_map(|(i, n)| (0..*n).map(move |j| (format!("p{i}-m{j}"), format!("p{i}"))))
        .collect()
}

/// Checks a target against the assignor's invariants and returns the active tasks per
/// member: every task active exactly once; a process holds each task at most once (so no
/// standby shares a process with its active or with another standby); stateless tasks have
/// no standby and stateful ones `min(replicas, processes - 1)`; members' active counts
/// within one of each other, and so the active tasks per member of any two processes.
fn check_target(
    members: &[(String, String)],
    counts: &BTreeMap<String, i32>,
    stateful: &BTreeSet<String>,
    replicas: usize,
    target: &BTreeMap<String, TasksTuple>,
) -> BTreeMap<String, usize> {
    let process: BTreeMap<&str, &str> = members
        .iter()
        .map(|(m, p)| (m.as_str(), p.as_str()))
        .collect();
    let n_processes = process.values().collect::<BTreeSet<_>>().len();
    assert_eq!(target.len(), members.len(), "one entry per member");
    let mut active: BTreeMap<(String, i32), usize> = BTreeMap::new();
    let mut standbys: BTreeMap<(String, i32), usize> = BTreeMap::new();
    let mut held: BTreeSet<(&str, String, i32)> = BTreeSet::new();
    let mut active_per_member = BTreeMap::new();
    for (m, t) in target {
        let proc_id = process[m.as_str()];
        let mut n = 0;
        for (s, parts) in &t.active {
            for p in parts {
                *active.entry((s.clone(), *p)).or_default() += 1;
                assert!(
                    held.insert((proc_id, s.clone(), *p)),
                    "{s}_{p} twice on {proc_id}"
                );
                n += 1;
            }
        }
        for (s, parts) in &t.standby {
            for p in parts {
                *standbys.entry((s.clone(), *p)).or_default() += 1;
                assert!(
                    held.insert((proc_id, s.clone(), *p)),
                    "{s}_{p} twice on {proc_id}"
                );
            }
        }
        assert!(t.warmup.is_empty(), "no warm-up tasks");
        active_per_member.insert(m.clone(), n);
    }
    for (s, n) in counts {
        for p in 0..*n {
            let key = (s.clone(), p);
            assert_eq!(active.get(&key), Some(&1), "{s}_{p} active once");
            let want = if stateful.contains(s) {
                replicas.min(n_processes - 1)
            } else {
                0
            };
            assert_eq!(
                standbys.get(&key).copied().unwrap_or(0),
                want,
                "standbys of {s}_{p}"
            );
        }
    }
    assert_eq!(
        active.len(),
        counts.values().map(|n| *n as usize).sum::<usize>()
    );
    let max = active_per_member.values().max().copied().unwrap_or(0);
    let min = active_per_member.values().min().copied().unwrap_or(0);
    assert!(
        max - min <= 1,
        "members' active tasks {active_per_member:?}"
    );
    assert_processes_within_one(&process_loads(members, target, false));
    active_per_member
}

/// Active tasks (and standbys too with `standby`) per process, and members per process.
fn process_loads(
    members: &[(String, String)],
    target: &BTreeMap<String, TasksTuple>,
    standby: bool,
) -> BTreeMap<String, (usize, usize)> {
    let mut loads: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (m, p) in members {
        let t = &target[m];
        let n: usize = t
            .active
            .values()
            .chain(t.standby.values().filter(|_| standby))
            .map(BTreeSet::len)
            .sum();
        let e = loads.entry(p.clone()).or_default();
        e.0 += n;
        e.1 += 1;
    }
    loads
}

/// No process took a task while another was less loaded per member (the greedy rule):
/// (tasks_p - 1) / members_p <= tasks_q / members_q for every pair. Holds for the active
/// tasks of a fresh assignment.
fn assert_processes_balanced(loads: &BTreeMap<String, (usize, usize)>) {
    for (p, (tp, cp)) in loads {
        for (q, (tq, cq)) in loads {
            assert!(
                tp.saturating_sub(1) * cq <= tq * cp,
                "{p} ({tp} tasks / {cp} members) above {q} ({tq} / {cq}): {loads:?}"
            );
        }
    }
}

/// Tasks per member of any two processes within one: tasks_p / members_p - tasks_q /
/// members_q <= 1.
fn assert_processes_within_one(loads: &BTreeMap<String, (usize, usize)>) {
    for (p, (tp, cp)) in loads {
        for (q, (tq, cq)) in loads {
            assert!(
                tp * cq <= tq * cp + cp * cq,
                "{p} ({tp} tasks / {cp} members) more than one per member above {q} ({tq} / {cq}): {loads:?}"
            );
        }
    }
}

#[test]
fn standbys_go_to_other_processes_and_everything_is_assigned() {
    let members = vec![
        ("a".to_owned(), "p1".to_owned()),
        ("b".to_owned(), "p1".to_owned()),
        ("c".to_owned(), "p2".to_owned()),
    ];
    let counts = BTreeMap::from([("0".to_owned(), 5), ("1".to_owned(), 2)]);
    let stateful = BTreeSet::from(["0".to_owned(), "1".to_owned()]);
    let target = super::assign(&specs(&members), &counts, &stateful, &BTreeMap::new(), 1);
    check_target(&members, &counts, &stateful, 1, &target);
    // Sticky: the same members keep the same tasks.
    let again = super::assign(&specs(&members), &counts, &stateful, &target, 1);
    assert_eq!(again, target);
}

#[test]
fn processes_share_load_by_their_members() {
    // p0 runs 4 threads, p1 and p2 one each: p0 takes two thirds of the 12 tasks.
    let members = processes(&[4, 1, 1]);
    let counts = BTreeMap::from([("0".to_owned(), 12)]);
    let none = BTreeSet::new();
    let target = super::assign(&specs(&members), &counts, &none, &BTreeMap::new(), 0);
    let per_member = check_target(&members, &counts, &none, 0, &target);
    assert!(per_member.values().all(|n| *n == 2), "{per_member:?}");
    let loads = process_loads(&members, &target, false);
    assert_eq!(loads["p0"], (8, 4));
    assert_eq!(loads["p1"], (2, 1));
    assert_processes_balanced(&loads);
}

#[test]
fn only_stateful_tasks_get_standbys_and_never_beside_their_active() {
    let members = processes(&[2, 2, 2]);
    let counts = BTreeMap::from([("0".to_owned(), 6), ("1".to_owned(), 6)]);
    let stateful = BTreeSet::from(["1".to_owned()]);
    let target = super::assign(&specs(&members), &counts, &stateful, &BTreeMap::new(), 2);
    check_target(&members, &counts, &stateful, 2, &target);
    assert!(target.values().all(|t| !t.standby.contains_key("0")));
    // More replicas than other processes: each task gets one copy per other process.
    let target = super::assign(&specs(&members), &counts, &stateful, &BTreeMap::new(), 5);
    check_target(&members, &counts, &stateful, 5, &target);
}

#[test]
fn a_standby_owner_takes_over_the_active_of_a_lost_process() {
    let members = processes(&[1, 1, 1]);
    let counts = BTreeMap::from([("0".to_owned(), 6)]);
    let stateful = BTreeSet::from(["0".to_owned()]);
    let first = super::assign(&specs(&members), &counts, &stateful, &BTreeMap::new(), 1);
    check_target(&members, &counts, &stateful, 1, &first);
    // p2 goes away: each of its tasks goes active to the member that held its standby.
    let lost = &first["p2-m0"];
    let survivors: Vec<(String, String)> = members[..2].to_vec();
    let mut previous = first.clone();
    previous.remove("p2-m0");
    let second = super::assign(&specs(&survivors), &counts, &stateful, &previous, 1);
    check_target(&survivors, &counts, &stateful, 1, &second);
    for (s, parts) in &lost.active {
        for p in parts {
            let standby_owner = first
                .iter()
                .find(|(_, t)| t.standby.get(s).is_some_and(|x| x.contains(p)))
                .map(|(m, _)| m.clone())
                .unwrap();
            assert!(
                second[&standby_owner].active[s].contains(p),
                "{s}_{p} to its standby owner {standby_owner}"
            );
        }
    }
    // Tasks the survivors had as active stay theirs.
    for m in ["p0-m0", "p1-m0"] {
        for (s, parts) in &first[m].active {
            assert!(parts.is_subset(&second[m].active[s]), "{m} keeps {s}");
        }
    }
}

#[test]
fn many_members_and_processes_are_assigned_in_bounded_time() {
    // 200 processes of 1-4 threads, 20,000 tasks, 2 standbys each.
    let per_process: Vec<usize> = (0..200).map(|i| 1 + i % 4).collect();
    let members = processes(&per_process);
    let counts: BTreeMap<String, i32> = (0..10).map(|s| (s.to_string(), 2_000)).collect();
    let stateful: BTreeSet<String> = counts.keys().cloned().collect();
    let started = std::time::Instant::now();
    let target = super::assign(&specs(&members), &counts, &stateful, &BTreeMap::new(), 2);
    check_target(&members, &counts, &stateful, 2, &target);
    assert_processes_balanced(&process_loads(&members, &target, false));
    assert_processes_within_one(&process_loads(&members, &target, true));
    // A new process joins: most tasks stay where they were.
    let mut grown = members.clone();
    grown.push(("new-m0".to_owned(), "new".to_owned()));
    let again = super::assign(&specs(&grown), &counts, &stateful, &target, 2);
    check_target(&grown, &counts, &stateful, 2, &again);
    let moved: usize = members
        .iter()
        .map(|(m, _)| {
            target[m]
                .active
                .iter()
                .map(|(s, parts)| {
                    parts
                        .iter()
                        .filter(|p| !again[m].active.get(s).is_some_and(|x| x.contains(p)))
                        .count()
                })
                .sum::<usize>()
        })
        .sum();
    let share = 20_000 / grown.len() + 1;
    assert!(moved <= share, "{moved} active tasks moved, share {share}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

mod assignor_properties {
    use super::*;
    use proptest::prelude::*;

    fn group() -> impl Strategy<Value = Vec<usize>> {
        proptest::collection::vec(1..4usize, 1..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Over random processes, subtopologies, standby counts and a previous target from
        /// a different membership: every active task once, no standby beside its active,
        /// processes within one active task per member, and a fresh assignment's active tasks balanced
        /// over processes (standbys cannot always be: with two processes and one replica
        /// each process holds every stateful task, whatever its size).
        #[test]
        fn assignments_hold_their_invariants(
            before in group(),
            after in group(),
            subs in proptest::collection::vec((0..13i32, any::<bool>()), 1..4),
            replicas in 0..4usize,
        ) {
            let counts: BTreeMap<String, i32> =
                subs.iter().enumerate().map(|(i, (n, _))| (i.to_string(), *n)).collect();
            let stateful: BTreeSet<String> = subs
                .iter()
                .enumerate()
                .filter(|(_, (_, s))| *s)
                .map(|(i, _)| i.to_string())
                .collect();
            let r = i32::try_from(replicas).unwrap();
            let first_members = processes(&before);
            let first = super::super::assign(&specs(&first_members), &counts, &stateful, &BTreeMap::new(), r);
            check_target(&first_members, &counts, &stateful, replicas, &first);
            assert_processes_balanced(&process_loads(&first_members, &first, false));
            // The next membership keeps the members both share (same names, same processes).
            let next_members = processes(&after);
            let previous: BTreeMap<String, TasksTuple> = first
                .into_iter()
                .filter(|(m, _)| next_members.iter().any(|(n, _)| n == m))
                .collect();
            let next = super::super::assign(&specs(&next_members), &counts, &stateful, &previous, r);
            check_target(&next_members, &counts, &stateful, replicas, &next);
            let again = super::super::assign(&specs(&next_members), &counts, &stateful, &next, r);
            prop_assert_eq!(&again, &next, "a stable group's target does not move");
        }
    }
}

/// What a replay must rebuild: everything but timers and the shutdown request.
fn durable(c: &Coordinator) -> Vec<String> {
    c.streams()
        .groups()
        .map(|g| {
            let members: Vec<_> = g
                .members
                .values()
                .map(|m| (m.member_id.clone(), m.metadata.clone(), m.current.clone()))
                .collect();
            format!(
                "{} {} {} {} {} {} {:?} {:?} {:?}",
                g.group_id,
                g.group_epoch,
                g.assignment_epoch,
                g.metadata_hash,
                g.validated_topology_epoch,
                g.num_standby_replicas,
                g.topology,
                g.target,
                members
            )
        })
        .collect()
}

mod model {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Join(usize),
        Beat(usize),
        Leave(usize),
        /// Time passes; members not heard from in a session are fenced.
        Advance(i64),
        Grow,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0usize..4).prop_map(Op::Join),
            8 => (0usize..4).prop_map(Op::Beat),
            1 => (0usize..4).prop_map(Op::Leave),
            1 => (1i64..60_000).prop_map(Op::Advance),
            1 => Just(Op::Grow),
        ]
    }

    /// A member as a client: its epoch and the tasks it owns (what it was last told).
    #[derive(Debug, Clone, Default)]
    struct Client {
        epoch: Option<i32>,
        owned: TasksTuple,
    }

    fn active_of(clients: &[Client]) -> Vec<(String, i32)> {
        clients
            .iter()
            .flat_map(|c| {
                c.owned
                    .active
                    .iter()
                    .flat_map(|(s, p)| p.iter().map(move |p| (s.clone(), *p)))
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn no_active_task_is_owned_twice_and_groups_converge(ops in proptest::collection::vec(op(), 1..60)) {
            let names = ["m0", "m1", "m2", "m3"];
            let mut partitions = 3;
            let mut coordinator = Coordinator::new(Config::default());
            let mut clients = vec![Client::default(); 4];
            let mut last_epoch: BTreeMap<usize, i32> = BTreeMap::new();
            let mut group_epoch = 0;
            let mut now = 0i64;
            let mut log = Vec::new();
            for op in ops {
                let view = cluster(&[("in", partitions)]);
                match op {
                    Op::Join(i) if clients[i].epoch.is_none() => {
                        let r = send(&mut coordinator, heartbeat(names[i], 0, Some(TasksTuple::default()), &view), now, &mut log);
                        prop_assert!(r.error.is_none(), "{r:?}");
                        clients[i] = Client { epoch: Some(r.member_epoch), owned: r.assignment.clone().unwrap_or_default() };
                    }
                    Op::Join(_) => {}
                    Op::Beat(i) => {
                        let Some(epoch) = clients[i].epoch else { continue };
                        let hb = heartbeat(names[i], epoch, Some(clients[i].owned.clone()), &view);
                        let r = send(&mut coordinator, hb, now, &mut log);
                        match &r.error {
                            None => {
                                clients[i].epoch = Some(r.member_epoch);
                                if let Some(a) = r.assignment { clients[i].owned = a; }
                            }
                            // Fenced (session expired): the client drops its tasks and rejoins later.
                            Some(_) => { clients[i] = Client::default(); last_epoch.remove(&i); }
                        }
                    }
                    Op::Leave(i) => {
                        if let Some(epoch) = clients[i].epoch {
                            let _ = epoch;
                            send(&mut coordinator, heartbeat(names[i], -1, None, &view), now, &mut log);
                            clients[i] = Client::default();
                            last_epoch.remove(&i);
                        }
                    }
                    Op::Advance(ms) => {
                        now += ms;
                        log.extend(coordinator.tick(now).records);
                        // A fenced member's client still believes it owns its tasks until
                        // its next heartbeat fails; the coordinator no longer counts them.
                        for (i, c) in clients.iter_mut().enumerate() {
                            let known = coordinator.streams().group("app").is_some_and(|g| g.members.contains_key(names[i]));
                            if c.epoch.is_some() && !known {
                                *c = Client::default();
                                last_epoch.remove(&i);
                            }
                        }
                    }
                    Op::Grow => partitions = (partitions + 1).min(8),
                }
                prop_assert!(now >= 0);
                let owned = active_of(&clients);
                let distinct: BTreeSet<_> = owned.iter().cloned().collect();
                prop_assert_eq!(owned.len(), distinct.len(), "an active task owned twice: {:?}", clients);
                for (i, c) in clients.iter().enumerate() {
                    if let Some(e) = c.epoch {
                        if let Some(prev) = last_epoch.insert(i, e) {
                            prop_assert!(e >= prev, "member {} epoch went from {} to {}", i, prev, e);
                        }
                    }
                }
                if let Some(g) = coordinator.streams().group("app") {
                    prop_assert!(g.group_epoch >= group_epoch);
                    group_epoch = g.group_epoch;
                }
                let mut reloaded = Coordinator::new(Config::default());
                reloaded.load(log.iter(), now).unwrap();
                prop_assert_eq!(durable(&reloaded), durable(&coordinator));
            }
            // Settle: everyone left heartbeats until nothing changes; every task is owned once.
            let view = cluster(&[("in", partitions)]);
            let live: Vec<usize> = (0..4).filter(|i| clients[*i].epoch.is_some()).collect();
            for _ in 0..20 {
                for &i in &live {
                    let epoch = clients[i].epoch.unwrap_or(0);
                    let r = send(&mut coordinator, heartbeat(names[i], epoch, Some(clients[i].owned.clone()), &view), now, &mut log);
                    prop_assert!(r.error.is_none(), "{r:?}");
                    clients[i].epoch = Some(r.member_epoch);
                    if let Some(a) = r.assignment { clients[i].owned = a; }
                }
            }
            if !live.is_empty() {
                let owned: BTreeSet<_> = active_of(&clients).into_iter().collect();
                let all: BTreeSet<_> = (0..partitions).map(|p| ("0".to_owned(), p)).collect();
                prop_assert_eq!(owned, all);
                let g = coordinator.streams().group("app").unwrap();
                prop_assert_eq!(g.state().name(), "Stable");
            }
        }
    }
}

#[test]
fn static_member_keeps_its_tasks_across_a_temporary_leave() {
    let view = cluster(&[("in", 2)]);
    let mut c = Coordinator::new(Config::default());
    let mut log = Vec::new();
    let mut hb = heartbeat("a", 0, Some(TasksTuple::default()), &view);
    hb.instance_id = Some("instance-a".into());
    let r = send(&mut c, hb, 0, &mut log);
    let mut epoch = r.member_epoch;
    let mut owned = r.assignment.unwrap();
    for _ in 0..3 {
        let mut hb = heartbeat("a", epoch, Some(owned.clone()), &view);
        hb.instance_id = Some("instance-a".into());
        let r = send(&mut c, hb, 0, &mut log);
        epoch = r.member_epoch;
        if let Some(a) = r.assignment {
            owned = a;
        }
    }
    assert_eq!(owned.active, tasks(&[("0", &[0, 1])]));
    let mut leave = heartbeat("a", -2, None, &view);
    leave.instance_id = Some("instance-a".into());
    assert!(send(&mut c, leave, 0, &mut log).error.is_none());
    // Back under a new member id with the same instance id: the same tasks.
    let mut back = heartbeat("a2", 0, Some(TasksTuple::default()), &view);
    back.instance_id = Some("instance-a".into());
    let r = send(&mut c, back, 0, &mut log);
    assert!(r.error.is_none(), "{r:?}");
    assert_eq!(r.assignment.unwrap().active, tasks(&[("0", &[0, 1])]));
    // A second instance with the id while the first is in is refused.
    let mut other = heartbeat("a3", 0, Some(TasksTuple::default()), &view);
    other.instance_id = Some("instance-a".into());
    let r = send(&mut c, other, 0, &mut log);
    assert_eq!(
        r.error.unwrap().code,
        crate::ErrorCode::UnreleasedInstanceId
    );
}

#[test]
fn group_id_of_another_type_is_refused() {
    let view = cluster(&[("in", 2)]);
    let mut c = Coordinator::new(Config::default());
    let mut log = Vec::new();
    let r = send(
        &mut c,
        heartbeat("a", 0, Some(TasksTuple::default()), &view),
        0,
        &mut log,
    );
    assert!(r.error.is_none());
    // A classic JoinGroup on the streams group's id.
    let join = crate::types::JoinGroup {
        group_id: "app".into(),
        member_id: String::new(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "h".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: Vec::new(),
        require_known_member_id: false,
        supports_skip_assignment: false,
    };
    let out = c.handle(2, Command::JoinGroup(join), 0);
    match &out.replies[0].response {
        Response::JoinGroup(j) => assert_eq!(j.error, crate::ErrorCode::InconsistentGroupProtocol),
        other => panic!("{other:?}"),
    }
    // A streams heartbeat on a consumer group's id.
    let consumer = crate::consumer::ConsumerHeartbeat {
        api_version: 1,
        group_id: "cg".into(),
        member_id: "m".into(),
        member_epoch: 0,
        instance_id: None,
        rack_id: None,
        rebalance_timeout_ms: 10_000,
        subscribed_topic_names: Some(vec!["in".into()]),
        subscribed_topic_regex: None,
        server_assignor: None,
        owned_partitions: Some(Vec::new()),
        client_id: "c".into(),
        client_host: "h".into(),
        topics: Arc::clone(&view),
        session_timeout_ms: None,
        heartbeat_interval_ms: None,
    };
    c.handle(3, Command::ConsumerGroupHeartbeat(consumer), 0);
    let mut hb = heartbeat("a", 0, Some(TasksTuple::default()), &view);
    hb.group_id = "cg".into();
    let r = send(&mut c, hb, 0, &mut log);
    assert_eq!(r.error.unwrap().code, crate::ErrorCode::GroupIdNotFound);
}

#[test]
fn a_topology_or_member_too_large_for_a_record_is_refused_and_writes_nothing() {
    let t = cluster(&[("in", 2)]);
    let mut c = Coordinator::new(Config::default());
    let mut log = Vec::new();
    let mut big = heartbeat("a", 0, Some(TasksTuple::default()), &t);
    let mut topology = topology(false);
    topology.subtopologies[0].source_topics =
        (0..20_000).map(|i| format!("topic-{i:08}")).collect();
    big.topology = Some(topology);
    let r = send(&mut c, big, 0, &mut log);
    assert_eq!(
        r.error.map(|e| e.code),
        Some(crate::consumer::ConsumerErrorCode::StreamsInvalidTopology)
    );
    let mut tagged = heartbeat("a", 0, Some(TasksTuple::default()), &t);
    tagged.client_tags = Some(vec![("k".into(), "v".repeat(64 * 1024))]);
    let r = send(&mut c, tagged, 0, &mut log);
    assert_eq!(
        r.error.map(|e| e.code),
        Some(crate::consumer::ConsumerErrorCode::InvalidRequest)
    );
    assert!(log.is_empty(), "a refused heartbeat writes nothing");
    // An ordinary join still works.
    let ok = send(
        &mut c,
        heartbeat("a", 0, Some(TasksTuple::default()), &t),
        0,
        &mut log,
    );
    assert_eq!(ok.error, None);
}

#[test]
fn null_task_lists_are_refused_as_kafka_refuses_them() {
    let t = cluster(&[("in", 2)]);
    let null = |active, standby, warmup| NullTasks {
        active,
        standby,
        warmup,
    };
    // (member epoch, null lists, INVALID_REQUEST message or None for accepted by validation)
    let cases = [
        (
            0,
            NullTasks::ALL,
            Some("ActiveTasks must be empty when (re-)joining."),
        ),
        (
            0,
            null(true, false, false),
            Some("ActiveTasks must be empty when (re-)joining."),
        ),
        (
            0,
            null(false, true, false),
            Some("StandbyTasks must be empty when (re-)joining."),
        ),
        (
            0,
            null(false, false, true),
            Some("WarmupTasks must be empty when (re-)joining."),
        ),
        (0, NullTasks::default(), None),
        (
            3,
            null(true, false, false),
            Some("If one task-type is non-null, all must be non-null."),
        ),
        (
            3,
            null(false, true, true),
            Some("If one task-type is non-null, all must be non-null."),
        ),
        (
            -1,
            null(false, false, true),
            Some("If one task-type is non-null, all must be non-null."),
        ),
        (3, NullTasks::ALL, None),
        (3, NullTasks::default(), None),
    ];
    for (epoch, nulls, expected) in cases {
        let mut c = Coordinator::new(Config::default());
        let mut log = Vec::new();
        let mut hb = heartbeat("a", epoch, Some(TasksTuple::default()), &t);
        hb.owned = (nulls == NullTasks::default()).then(TasksTuple::default);
        hb.null_tasks = nulls;
        let r = send(&mut c, hb, 0, &mut log);
        let invalid = r
            .error
            .filter(|e| e.code == crate::consumer::ConsumerErrorCode::InvalidRequest)
            .map(|e| e.message);
        assert_eq!(
            invalid.as_deref(),
            expected,
            "epoch {epoch}, null {nulls:?}"
        );
        if expected.is_some() {
            assert!(log.is_empty(), "a refused heartbeat writes nothing");
        }
    }
}

/// A member's OffsetCommit of offset 7 of `in`'s `partition` in group `app`.
fn commit(member: &str, epoch: i32, partition: i32) -> Command {
    Command::OffsetCommit(crate::types::OffsetCommit {
        group_id: "app".into(),
        generation_id: epoch,
        member_id: member.into(),
        group_instance_id: None,
        retention_time_ms: -1,
        unknown_group_not_found: false,
        offsets: vec![crate::types::CommitOffset {
            topic: "in".into(),
            partition,
            offset: 7,
            leader_epoch: 0,
            metadata: String::new(),
        }],
    })
}

/// A coordinator whose streams group `app` (reading `in`) has member `a`, joined at 0;
/// with the cluster and the member's epoch.
fn joined() -> (Coordinator, Arc<Topics>, i32) {
    let t = cluster(&[("in", 2)]);
    let mut c = Coordinator::new(Config::default());
    let hb = heartbeat("a", 0, Some(TasksTuple::default()), &t);
    let r = send(&mut c, hb, 0, &mut Vec::new());
    assert_eq!(r.error, None);
    (c, t, r.member_epoch)
}

#[test]
fn an_empty_streams_group_expires_with_its_offsets() {
    let (mut c, t, epoch) = joined();
    let retention_ms = Config::default().offsets_retention_ms;
    let mut log = Vec::new();
    let out = c.handle(2, commit("a", epoch, 0), 0);
    assert_eq!(out.records.len(), 1, "the commit is written");
    let tombstone = crate::admin::offset_tombstone("app", "in", 0).unwrap();
    // A member still reads `in`: its offset stays however old it is.
    let late_ms = retention_ms + 1;
    let out = c.expire_offsets_now(late_ms);
    assert!(
        out.records.is_empty(),
        "offsets of a topic the group reads expired"
    );
    assert!(c.streams.group("app").is_some());
    // The last member leaves: the group reads nothing, its offset is past retention since
    // its commit, and the group goes with it.
    let left = send(&mut c, heartbeat("a", -1, None, &t), late_ms, &mut log);
    assert_eq!(left.error, None);
    let out = c.expire_offsets_now(late_ms);
    assert!(
        out.records.contains(&tombstone),
        "the offset was not tombstoned"
    );
    let metadata_tombstone = StreamsRecord::GroupMetadata {
        group: "app".into(),
        value: None,
    }
    .encode()
    .unwrap();
    assert!(
        out.records.contains(&metadata_tombstone),
        "the group was not tombstoned"
    );
    assert!(c.streams.group("app").is_none());
}

#[test]
fn an_empty_streams_group_keeps_offsets_younger_than_retention() {
    let (mut c, t, epoch) = joined();
    let retention_ms = Config::default().offsets_retention_ms;
    let mut log = Vec::new();
    let commit_ms = 1_000;
    c.handle(2, commit("a", epoch, 1), commit_ms);
    send(&mut c, heartbeat("a", -1, None, &t), commit_ms, &mut log);
    // Kafka's `StreamsGroup.offsetExpirationCondition`: retention counts from the commit.
    let out = c.expire_offsets_now(commit_ms + retention_ms - 1);
    assert!(
        out.records.is_empty(),
        "an offset younger than retention expired"
    );
    assert!(c.streams.group("app").is_some());
    let out = c.expire_offsets_now(commit_ms + retention_ms);
    let tombstone = crate::admin::offset_tombstone("app", "in", 1).unwrap();
    assert!(out.records.contains(&tombstone));
    assert!(c.streams.group("app").is_none());
}

/// A revoking member's records replayed in either order (after compaction its metadata
/// may follow its current assignment): its revocation deadline is its own rebalance
/// timeout after the load, not the load's instant.
#[test]
fn a_revoking_member_loaded_in_any_record_order_keeps_its_rebalance_timeout() {
    let rebalance_timeout_ms = 30_000;
    let metadata = StreamsRecord::MemberMetadata {
        group: "g".into(),
        member: "m".into(),
        value: Some(MemberMetadata {
            instance_id: None,
            rack_id: None,
            client_id: "c".into(),
            client_host: "/h".into(),
            rebalance_timeout_ms,
            topology_epoch: 1,
            process_id: "p".into(),
            user_endpoint: None,
            client_tags: Vec::new(),
        }),
    };
    let current = StreamsRecord::CurrentMember {
        group: "g".into(),
        member: "m".into(),
        current: Some(CurrentAssignment {
            member_epoch: 5,
            previous_member_epoch: 4,
            state: MemberState::UnrevokedTasks,
            assigned: TasksTuple {
                active: tasks(&[("0", &[0])]),
                ..TasksTuple::default()
            },
            pending_revocation: TasksTuple {
                active: tasks(&[("0", &[1])]),
                ..TasksTuple::default()
            },
        }),
    };
    let config = Config::default();
    // Past the revocation deadline, before the session's end: only revocation fences.
    assert!(i64::from(rebalance_timeout_ms) < i64::from(config.streams.session_timeout_ms));
    for order in [[&metadata, &current], [&current, &metadata]] {
        let records: Vec<GroupRecord> = order.iter().map(|r| r.encode().unwrap()).collect();
        let mut c = Coordinator::new(config.clone());
        let load_ms = 1_000;
        c.load(records.iter(), load_ms).unwrap();
        let out = c.tick(load_ms + 1);
        assert!(out.records.is_empty(), "fenced at load ({order:?})");
        assert!(c.streams().group("g").unwrap().members.contains_key("m"));
        let out = c.tick(load_ms + i64::from(rebalance_timeout_ms));
        assert!(
            !out.records.is_empty(),
            "not fenced at its deadline ({order:?})"
        );
        assert!(!c.streams().group("g").unwrap().members.contains_key("m"));
    }
}
