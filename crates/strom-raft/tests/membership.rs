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
                    },
                )
                .await;
            assert_eq!(twice, Err(MembershipError::DuplicateVoter(id)));
        } else {
            let removable: Vec<u64> = world.voters.iter().copied().filter(|id| *id >= 5).collect();
            let id = removable[rng.below(removable.len())];
            println!("step {step}: remove voter {id}");
            world
                .change(&mut rng, MembershipChange::RemoveVoter { node_id: id })
                .await
                .unwrap();
            world.voters.remove(&id);
            let twice = world
                .change(&mut rng, MembershipChange::RemoveVoter { node_id: id })
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
                },
            )
            .await
            .unwrap();
        world.voters.insert(5);
    }
    world
        .change(&mut rng, MembershipChange::RemoveVoter { node_id: 1 })
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
            },
        )
        .await
        .unwrap();
    for id in [1, 4] {
        let addr = world.addrs[(id - 1) as usize].to_string();
        let refused = world
            .change(
                &mut rng,
                MembershipChange::UpdateVoter { node_id: id, addr },
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

    for node in world.nodes.values() {
        node.shutdown().await;
    }
}
