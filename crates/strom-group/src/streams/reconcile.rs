//! Kafka's streams `CurrentAssignmentBuilder`: moves a member's current assignment toward
//! its target one step at a time. A task the member must give up stays "pending
//! revocation" (and the member at its epoch) until the member stops reporting it; a task
//! it should get is handed over only once no other member holds it (an active task held
//! anywhere, or a standby/warm-up copy of it on the member's own process): so an active
//! task is never owned by two members at once.

use std::collections::BTreeSet;

use super::group::{CurrentAssignment, MemberState, Owners};
use super::types::{Tasks, TasksTuple};

pub struct Reconcile<'a> {
    pub target_epoch: i32,
    pub target: &'a TasksTuple,
    pub owners: &'a Owners,
    pub process_id: &'a str,
    /// The tasks the member reported owning in this heartbeat (`None`: not sent).
    pub owned: Option<&'a TasksTuple>,
}

/// The member must abandon its tasks and rejoin (FENCED_MEMBER_EPOCH).
#[derive(Debug)]
pub struct MustRejoin;

impl Reconcile<'_> {
    pub fn next(&self, c: &CurrentAssignment) -> Result<CurrentAssignment, MustRejoin> {
        match c.state {
            MemberState::Stable => {
                if c.member_epoch != self.target_epoch {
                    Ok(self.compute(c, c.member_epoch))
                } else {
                    Ok(c.clone())
                }
            }
            MemberState::UnrevokedTasks => match self.owned {
                Some(owned) if !owned.contains_any(&c.pending_revocation) => {
                    Ok(self.compute(c, c.member_epoch.saturating_add(1)))
                }
                _ => Ok(c.clone()),
            },
            MemberState::UnreleasedTasks => Ok(self.compute(c, c.member_epoch)),
            MemberState::Unknown => match self.owned {
                Some(owned) if owned.is_empty() => Ok(self.compute(c, self.target_epoch)),
                _ => Err(MustRejoin),
            },
        }
    }

    fn compute(&self, c: &CurrentAssignment, member_epoch: i32) -> CurrentAssignment {
        let owners = self.owners;
        let process = self.process_id;
        let on_my_process = |sub: &str, p: i32| {
            let key = (sub.to_owned(), p);
            owners
                .standby
                .get(&key)
                .is_some_and(|s| s.contains(process))
                || owners.warmup.get(&key).is_some_and(|s| s.contains(process))
        };
        let active = diff(&c.assigned.active, &self.target.active, |sub, p| {
            owners.active.contains_key(&(sub.to_owned(), p)) || on_my_process(sub, p)
        });
        let copy_unreleased = |sub: &str, p: i32| {
            owners
                .active
                .get(&(sub.to_owned(), p))
                .is_some_and(|(_, owner_process)| owner_process == process)
                || on_my_process(sub, p)
        };
        let standby = diff(&c.assigned.standby, &self.target.standby, copy_unreleased);
        let warmup = diff(&c.assigned.warmup, &self.target.warmup, copy_unreleased);
        let revoke = TasksTuple {
            active: active.revoke,
            standby: standby.revoke,
            warmup: warmup.revoke,
        };
        let kept = TasksTuple {
            active: active.kept,
            standby: standby.kept,
            warmup: warmup.kept,
        };
        let mut gained = TasksTuple {
            active: active.gained,
            standby: standby.gained,
            warmup: warmup.gained,
        };
        let unreleased = active.unreleased || standby.unreleased || warmup.unreleased;
        let must_revoke =
            !revoke.is_empty() && self.owned.is_none_or(|owned| owned.contains_any(&revoke));
        if must_revoke {
            return CurrentAssignment {
                member_epoch,
                previous_member_epoch: c.member_epoch,
                state: MemberState::UnrevokedTasks,
                assigned: kept,
                pending_revocation: revoke,
            };
        }
        let state = if unreleased {
            MemberState::UnreleasedTasks
        } else {
            MemberState::Stable
        };
        let mut assigned = kept;
        for (mine, new) in [
            (&mut assigned.active, &mut gained.active),
            (&mut assigned.standby, &mut gained.standby),
            (&mut assigned.warmup, &mut gained.warmup),
        ] {
            for (sub, parts) in std::mem::take(new) {
                mine.entry(sub).or_default().extend(parts);
            }
        }
        CurrentAssignment {
            member_epoch: self.target_epoch,
            previous_member_epoch: c.member_epoch,
            state,
            assigned,
            pending_revocation: TasksTuple::default(),
        }
    }
}

struct Diff {
    kept: Tasks,
    revoke: Tasks,
    gained: Tasks,
    unreleased: bool,
}

fn diff(current: &Tasks, target: &Tasks, is_unreleased: impl Fn(&str, i32) -> bool) -> Diff {
    let mut d = Diff {
        kept: Tasks::new(),
        revoke: Tasks::new(),
        gained: Tasks::new(),
        unreleased: false,
    };
    let subs: BTreeSet<&String> = current.keys().chain(target.keys()).collect();
    let empty = BTreeSet::new();
    for sub in subs {
        let cur = current.get(sub).unwrap_or(&empty);
        let tgt = target.get(sub).unwrap_or(&empty);
        let kept: BTreeSet<i32> = cur.intersection(tgt).copied().collect();
        let revoke: BTreeSet<i32> = cur.difference(&kept).copied().collect();
        let mut gained = BTreeSet::new();
        for p in tgt.difference(&kept) {
            if is_unreleased(sub, *p) {
                d.unreleased = true;
            } else {
                gained.insert(*p);
            }
        }
        for (into, set) in [
            (&mut d.kept, kept),
            (&mut d.revoke, revoke),
            (&mut d.gained, gained),
        ] {
            if !set.is_empty() {
                into.insert(sub.clone(), set);
            }
        }
    }
    d
}
