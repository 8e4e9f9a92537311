//! A quorum that changes, over real TCP on 127.0.0.1: observers join (a broker-only node with
//! static voters to ask; controllers of a dynamic quorum through bootstrap servers) and apply
//! the committed log; voters are added, refused twice, removed; writes go on throughout.
//!
//! The order of operations is drawn from a seed (`STROM_SEED`, printed on failure), so a
//! failing schedule replays; the timing is the machine's, as in every real-TCP test here.
//! After each step the checker asserts that every running member applied exactly the
//! acknowledged writes, that the voters are the model's, and that observers never vote.

mod toy;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use strom_raft::{MembershipChange, MembershipError, NodeConfig, RaftNode};
use toy::{free_addrs, put, wait_state, KvController, KvNode, KvReply};

const LIMIT: Duration = Duration::from_secs(20);

/// xorshift64*: the schedule's only source of choice.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn base(id: u64, addrs: &[SocketAddr], dir: &std::path::Path) -> NodeConfig {
    NodeConfig::test_min(id, addrs[(id - 1) as usize], dir.join(format!("node-{id}")))
}

/// Node `id`: 1..=3 static voters; 4 an observer (broker-only) asking the static voters;
/// 5 and 6 controllers of a dynamic quorum, joining through bootstrap servers.
fn config(id: u64, addrs: &[SocketAddr], dir: &std::path::Path) -> NodeConfig {
    let voters: BTreeMap<u64, String> = (1..=3u64)
        .map(|i| (i, addrs[(i - 1) as usize].to_string()))
        .collect();
    let mut config = base(id, addrs, dir);
    match id {
        1..=3 => config.voters = voters,
        4 => {
            config.observer = true;
            config.voters = voters;
        }
        _ => config.bootstrap_servers = voters.values().cloned().collect(),
    }
    config
}

struct World {
    addrs: Vec<SocketAddr>,
    dir: tempfile::TempDir,
    nodes: BTreeMap<u64, KvNode>,
    voters: BTreeSet<u64>,
    written: BTreeMap<String, u64>,
    next_key: u64,
}

impl World {
    async fn start(&mut self, id: u64) {
        let node = RaftNode::start(config(id, &self.addrs, self.dir.path()), KvController)
            .await
            .unwrap();
        self.nodes.insert(id, node);
    }

    /// Any running member: requests are forwarded to the leader.
    fn any(&self, rng: &mut Rng) -> &KvNode {
        let ids: Vec<&u64> = self.nodes.keys().collect();
        &self.nodes[ids[rng.below(ids.len())]]
    }

    async fn write(&mut self, rng: &mut Rng) {
        let key = format!("k{}", self.next_key);
        self.next_key += 1;
        let reply = self.any(rng).submit(put(&key, self.next_key)).await;
        assert_eq!(reply.unwrap(), KvReply::Written, "{key}");
        self.written.insert(key, self.next_key);
    }

    async fn change(&self, rng: &mut Rng, change: MembershipChange) -> Result<(), MembershipError> {
        self.any(rng).change_membership(change).await
    }

    /// Every running member applied exactly the acknowledged writes; the leader's
    /// membership has the model's voters; every other running node is a learner.
    async fn check(&self) {
        for node in self.nodes.values() {
            wait_state(node, &self.written, LIMIT).await;
        }
        let start = Instant::now();
        loop {
            let views: Vec<(u64, Vec<u64>, Vec<u64>)> = self
                .nodes
                .values()
                .map(|n| {
                    let m = n.raft().metrics().borrow().clone();
                    let membership = m.membership_config.membership().clone();
                    (
                        n.node_id(),
                        membership.voter_ids().collect(),
                        membership.learner_ids().collect(),
                    )
                })
                .collect();
            let voters: Vec<u64> = self.voters.iter().copied().collect();
            let learners: Vec<u64> = self
                .nodes
                .keys()
                .copied()
                .filter(|id| !self.voters.contains(id))
                .collect();
            let agreed = views
                .iter()
                .all(|(id, v, l)| *v == voters && (!learners.contains(id) || l.contains(id)));
            if agreed {
                break;
            }
            assert!(
                start.elapsed() < LIMIT,
                "membership views {views:?} differ from voters {voters:?}, learners {learners:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (id, node) in &self.nodes {
            if let Some((leader, _)) = node.leader() {
                assert!(
                    self.voters.contains(&leader),
                    "node {id} follows {leader}, not a voter {:?}",
                    self.voters
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observers_join_voters_change_and_every_member_applies_the_log() {
    let seed: u64 = std::env::var("STROM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x05EE_D853);
    println!("STROM_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let mut world = World {
        addrs: free_addrs(6),
        dir: tempfile::tempdir().unwrap(),
        nodes: BTreeMap::new(),
        voters: BTreeSet::from([1, 2, 3]),
        written: BTreeMap::new(),
        next_key: 0,
    };
    for id in 1..=6 {
        world.start(id).await;
    }
    world.write(&mut rng).await;
    world.check().await;

    // An id that never joined cannot be made a voter without its address.
    let refused = world
        .change(
            &mut rng,
            MembershipChange::AddVoter {
                node_id: 9,
                addr: None,
                directory_id: None,
            },
        )
        .await;
    assert!(
        matches!(refused, Err(MembershipError::Refused(_))),
        "{refused:?}"
    );

    // The schedule: writes between membership changes, each checked. Controllers 5 and 6
    // go in and out; 1..=3 may be removed while at least three voters remain.
    for step in 0..8 {
        for _ in 0..1 + rng.below(3) {
            world.write(&mut rng).await;
        }
        let outside: Vec<u64> = [5u64, 6]
            .into_iter()
            .filter(|id| !world.voters.contains(id))
            .collect();
        let add = !outside.is_empty() && (world.voters.len() <= 3 || rng.below(2) == 0);
        if add {
            let id = outside[rng.below(outside.len())];
            println!("step {step}: add voter {id}");
            world
                .change(
                    &mut rng,
                    MembershipChange::AddVoter {
                        node_id: id,
                        addr: None,
                        directory_id: None,
                    },
                )
                .await
                .unwrap();
            world.voters.insert(id);
            let twice = world
                .change(
                    &mut rng,
                    MembershipChange::AddVoter {
                        node_id: id,
                        addr: None,
                        directory_id: None,
                    },
                )
                .await;
            assert_eq!(twice, Err(MembershipError::DuplicateVoter(id)));
        } else {
            let removable: Vec<u64> = world.voters.iter().copied().filter(|id| *id >= 5).collect();
            let id = removable[rng.below(removable.len())];
            println!("step {step}: remove voter {id}");
            // A dynamic controller's voter entry carries its directory id: another
            // replica's (or none) does not name it (Kafka's VoterSet.isVoter).
            let dir = world.nodes[&id].directory_id();
            for other in [None, Some(uuid::Uuid::from_u128(step as u128 + 1))] {
                let refused = world
                    .change(
                        &mut rng,
                        MembershipChange::RemoveVoter {
                            node_id: id,
                            directory_id: other,
                        },
                    )
                    .await;
                assert_eq!(
                    refused,
                    Err(MembershipError::VoterDirectoryMismatch {
                        node_id: id,
                        known: dir,
                        given: other
                    })
                );
            }
            world
                .change(
                    &mut rng,
                    MembershipChange::RemoveVoter {
                        node_id: id,
                        directory_id: Some(dir),
                    },
                )
                .await
                .unwrap();
            world.voters.remove(&id);
            let twice = world
                .change(
                    &mut rng,
                    MembershipChange::RemoveVoter {
                        node_id: id,
                        directory_id: Some(dir),
                    },
                )
                .await;
            assert_eq!(twice, Err(MembershipError::VoterNotFound(id)));
            // A removed controller is no longer replicated to; its log still names it a
            // voter, so it comes back on new storage (as after its disk is replaced) and
            // joins as an observer.
            world.nodes.remove(&id).unwrap().shutdown().await;
            std::fs::remove_dir_all(world.dir.path().join(format!("node-{id}"))).unwrap();
            world.start(id).await;
        }
        world.write(&mut rng).await;
        world.check().await;
    }

    // Replace voter 1 as if its disk were lost: remove it while a fourth voter serves.
    if !world.voters.contains(&5) {
        world
            .change(
                &mut rng,
                MembershipChange::AddVoter {
                    node_id: 5,
                    addr: None,
                    directory_id: None,
                },
            )
            .await
            .unwrap();
        world.voters.insert(5);
    }
    // Static voters are recorded without directory ids: any directory id names them.
    world
        .change(
            &mut rng,
            MembershipChange::RemoveVoter {
                node_id: 1,
                directory_id: Some(uuid::Uuid::from_u128(99)),
            },
        )
        .await
        .unwrap();
    world.voters.remove(&1);
    world.nodes.remove(&1).unwrap().shutdown().await;
    world.write(&mut rng).await;
    world.check().await;

    // UpdateRaftVoter: a voter's address is recorded again (unchanged here); an observer
    // or a removed node is no voter.
    let same = world.addrs[1].to_string();
    world
        .change(
            &mut rng,
            MembershipChange::UpdateVoter {
                node_id: 2,
                addr: same,
                directory_id: None,
            },
        )
        .await
        .unwrap();
    for id in [1, 4] {
        let addr = world.addrs[(id - 1) as usize].to_string();
        let refused = world
            .change(
                &mut rng,
                MembershipChange::UpdateVoter {
                    node_id: id,
                    addr,
                    directory_id: None,
                },
            )
            .await;
        assert_eq!(refused, Err(MembershipError::VoterNotFound(id)));
    }

    // The observer restarts from its own log and keeps applying.
    world.nodes.remove(&4).unwrap().shutdown().await;
    world.write(&mut rng).await;
    world.start(4).await;
    world.write(&mut rng).await;
    world.check().await;

    // Voter 5 loses its disk: on new storage it is another replica (a new directory id) of
    // node 5. Its join is refused while the old replica is a voter; RemoveVoter names the
    // old directory; then the new replica joins as an observer and is added by its own.
    let old_dir = world.nodes[&5].directory_id();
    world.nodes.remove(&5).unwrap().shutdown().await;
    std::fs::remove_dir_all(world.dir.path().join("node-5")).unwrap();
    world.start(5).await;
    let new_dir = world.nodes[&5].directory_id();
    assert_ne!(old_dir, new_dir);
    let leader_view = |world: &World| {
        let node = world.nodes.values().find(|n| n.node_id() != 5).unwrap();
        let m = node.raft().metrics().borrow().clone();
        m.membership_config.membership().get_node(&5).cloned()
    };
    // Raft messages for voter 5 carry the old directory id: the new replica refuses them,
    // so it neither votes nor takes entries as that voter (a write is not replicated to it).
    let reply = world.nodes[&2].submit(put("while-replaced", 1)).await;
    assert_eq!(reply.unwrap(), KvReply::Written);
    world.written.insert("while-replaced".to_string(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !world.nodes[&5]
            .state()
            .state
            .0
            .contains_key("while-replaced"),
        "the new replica of 5 took entries meant for the old one"
    );
    assert_eq!(
        leader_view(&world).and_then(|n| n.directory_id),
        Some(old_dir),
        "the new replica's join must not replace the voter"
    );
    let wrong = world
        .change(
            &mut rng,
            MembershipChange::RemoveVoter {
                node_id: 5,
                directory_id: Some(new_dir),
            },
        )
        .await;
    assert_eq!(
        wrong,
        Err(MembershipError::VoterDirectoryMismatch {
            node_id: 5,
            known: old_dir,
            given: Some(new_dir)
        })
    );
    world
        .change(
            &mut rng,
            MembershipChange::RemoveVoter {
                node_id: 5,
                directory_id: Some(old_dir),
            },
        )
        .await
        .unwrap();
    world.voters.remove(&5);
    let start = Instant::now();
    while leader_view(&world).and_then(|n| n.directory_id) != Some(new_dir) {
        assert!(start.elapsed() < LIMIT, "the new replica of 5 never joined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let other = world
        .change(
            &mut rng,
            MembershipChange::AddVoter {
                node_id: 5,
                addr: None,
                directory_id: Some(old_dir),
            },
        )
        .await;
    assert!(
        matches!(other, Err(MembershipError::Refused(_))),
        "{other:?}"
    );
    world
        .change(
            &mut rng,
            MembershipChange::AddVoter {
                node_id: 5,
                addr: None,
                directory_id: Some(new_dir),
            },
        )
        .await
        .unwrap();
    world.voters.insert(5);
    world.write(&mut rng).await;
    world.check().await;

    for node in world.nodes.values() {
        node.shutdown().await;
    }
}

/// Kafka's leader forgets observers that stop fetching: a stopped observer is dropped from
/// the membership (not retried for ever) and from DescribeQuorum after the observer session
/// (2 s in the test config), and is taken in again when it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_observer_expires_and_is_taken_in_again() {
    let mut world = World {
        addrs: free_addrs(4),
        dir: tempfile::tempdir().unwrap(),
        nodes: BTreeMap::new(),
        voters: BTreeSet::from([1, 2, 3]),
        written: BTreeMap::new(),
        next_key: 0,
    };
    let mut rng = Rng(0x0b5e_7e27);
    for id in 1..=4 {
        world.start(id).await;
    }
    world.write(&mut rng).await;
    world.check().await;
    let learners = |world: &World| -> Vec<u64> {
        let node = &world.nodes[&1];
        let m = node.raft().metrics().borrow().clone();
        m.membership_config.membership().learner_ids().collect()
    };
    let observers = |world: &World| {
        let node = world.nodes[&1].clone();
        async move {
            node.describe_quorum()
                .await
                .map(|q| q.observers.iter().map(|o| o.node_id).collect::<Vec<_>>())
        }
    };
    assert_eq!(learners(&world), vec![4]);
    assert_eq!(observers(&world).await.unwrap(), vec![4]);

    world.nodes.remove(&4).unwrap().shutdown().await;
    let start = Instant::now();
    while !learners(&world).is_empty() {
        assert!(
            start.elapsed() < LIMIT,
            "observer 4 never expired: {:?}",
            learners(&world)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        start.elapsed() >= Duration::from_millis(1500),
        "dropped after {:?}, before its session could end",
        start.elapsed()
    );
    assert_eq!(observers(&world).await.unwrap(), Vec::<u64>::new());
    // The quorum carries on without it.
    world.write(&mut rng).await;
    world.check().await;

    // Back on its own storage: it asks again, is taken in and catches up.
    world.start(4).await;
    world.write(&mut rng).await;
    world.check().await;
    assert_eq!(learners(&world), vec![4]);
    for node in world.nodes.values() {
        node.shutdown().await;
    }
}
