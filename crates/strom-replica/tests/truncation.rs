//! The follower's truncation against a model: two replicas and random histories of
//! appends, replication and leader changes (each new leader beginning its epoch at its log
//! end, as the broker does), with strom-log's leader-epoch cache on both sides. Whenever the
//! follower fetches, the leader's diverging-epoch answer and the follower's truncation are
//! applied until they agree; the follower's log must then be a prefix of the leader's,
//! record for record, and nothing the two had in common may be cut.

use proptest::prelude::*;
use strom_log::LeaderEpochCache;
use strom_replica::{diverging_epoch, truncation_on_divergence, EpochEndOffset};

/// One replica: the epoch of every record, and its cache.
#[derive(Clone, Debug, Default)]
struct Replica {
    epochs: Vec<i32>,
    cache: LeaderEpochCache,
}

impl Replica {
    fn leo(&self) -> i64 {
        self.epochs.len() as i64
    }

    fn end_for(&self, epoch: i32) -> Option<EpochEndOffset> {
        self.cache
            .end_offset_for(epoch, self.leo())
            .map(|e| EpochEndOffset {
                epoch: e.epoch,
                end_offset: e.start_offset,
            })
    }

    fn append(&mut self, epoch: i32) {
        if Some(epoch) > self.cache.latest_epoch() {
            self.cache.assign(epoch, self.leo());
        }
        self.epochs.push(epoch);
    }

    fn truncate(&mut self, offset: i64) {
        self.epochs.truncate(offset.max(0) as usize);
        self.cache.truncate_from_end(self.leo());
    }
}

/// Fetches until the leader no longer reports a divergence (bounded), then copies up to
/// `copy` records. Returns the number of divergence rounds.
fn fetch(leader: &Replica, follower: &mut Replica, hw: i64, copy: usize) -> usize {
    let mut rounds = 0;
    loop {
        let last = follower.cache.latest_epoch().unwrap_or(-1);
        let answer = leader.end_for(last).unwrap_or(EpochEndOffset::UNDEFINED);
        let Some(diverging) = diverging_epoch(last, follower.leo(), answer) else {
            break;
        };
        let local = follower.end_for(diverging.epoch);
        let cut = truncation_on_divergence(diverging, local, follower.leo(), hw);
        assert!(cut.offset <= follower.leo());
        follower.truncate(cut.offset);
        rounds += 1;
        assert!(rounds <= 64, "no convergence");
    }
    let from = follower.epochs.len();
    for epoch in leader.epochs.iter().skip(from).take(copy) {
        follower.append(*epoch);
    }
    rounds
}

#[derive(Clone, Debug)]
enum Op {
    Append(usize),
    Replicate(usize),
    Failover,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1..6usize).prop_map(Op::Append),
        3 => (0..8usize).prop_map(Op::Replicate),
        1 => Just(Op::Failover),
    ]
}

fn common_prefix(a: &[i32], b: &[i32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn followers_truncate_to_a_prefix_of_their_leader(ops in proptest::collection::vec(op(), 1..60)) {
        let mut replicas = [Replica::default(), Replica::default()];
        let mut leader = 0usize;
        let mut epoch = 0;
        replicas[0].cache.assign(0, 0);
        for op in ops {
            let follower = 1 - leader;
            match op {
                Op::Append(n) => {
                    for _ in 0..n {
                        replicas[leader].append(epoch);
                    }
                }
                Op::Replicate(n) => {
                    let (l, f) = if leader == 0 {
                        let (a, b) = replicas.split_at_mut(1);
                        (&a[0], &mut b[0])
                    } else {
                        let (a, b) = replicas.split_at_mut(1);
                        (&b[0], &mut a[0])
                    };
                    // What the two had in common and the leader still has stays.
                    let before = common_prefix(&l.epochs, &f.epochs);
                    fetch(l, f, 0, n);
                    let after = common_prefix(&l.epochs, &f.epochs);
                    prop_assert!(after >= before, "cut common records: {before} -> {after}");
                    // The follower is now a prefix of the leader.
                    prop_assert_eq!(after, f.epochs.len(), "leader {:?} follower {:?}", l.epochs, f.epochs);
                }
                Op::Failover => {
                    // The follower becomes leader of a new epoch at its log end (whatever
                    // it lacks of the old leader's tail is lost: an unclean handover of
                    // uncommitted records, which truncation must then remove).
                    epoch += 1;
                    leader = follower;
                    let leo = replicas[leader].leo();
                    replicas[leader].cache.assign(epoch, leo);
                }
            }
        }
    }
}
