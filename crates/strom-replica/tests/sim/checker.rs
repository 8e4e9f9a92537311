//! What must hold at every step of a run:
//! - one leader per leader epoch;
//! - a leader's high watermark never moves back within its epoch;
//! - below any replica's high watermark every replica that has an offset has the same
//!   record there: the committed prefix (`committed`) is one sequence that only grows;
//! - no acknowledged record is lost: it sits at its offset in the committed prefix (checked
//!   as the prefix grows, and at the end against the healed leader);
//! - consumers see only committed records, and ListOffsets(latest) never goes back (a new
//!   leader answers OFFSET_NOT_AVAILABLE until its high watermark is established, KIP-207).

use std::collections::BTreeMap;

use crate::node::{Node, Role};
use crate::world::Rec;

#[derive(Debug, Default)]
pub struct Checker {
    /// The record at every committed offset, as first seen below some high watermark.
    pub committed: Vec<u64>,
    /// Per node: offsets below this were compared with `committed`.
    checked: BTreeMap<i32, usize>,
    leaders: BTreeMap<i32, i32>,
    leader_hw: BTreeMap<(i32, i32), i64>,
    /// Acknowledged value -> offset.
    pub acked: BTreeMap<u64, i64>,
    /// Offset -> acknowledged value (a duplicated produce may land twice; each answer
    /// names its own offset).
    acked_at: BTreeMap<i64, u64>,
    listed_max: i64,
    violations: Vec<String>,
}

impl Checker {
    pub fn violation(&mut self, now: i64, what: String) {
        self.violations.push(format!("at {now} ms: {what}"));
    }

    pub fn first_violation(&self) -> Option<String> {
        self.violations.first().cloned()
    }

    pub fn became_leader(&mut self, now: i64, node: i32, epoch: i32) {
        let first = *self.leaders.entry(epoch).or_insert(node);
        if first != node {
            self.violation(
                now,
                format!("epoch {epoch} has two leaders: {first} and {node}"),
            );
        }
    }

    /// After every event that touched `node`.
    pub fn observe(&mut self, now: i64, node: &Node) {
        if let Role::Leader(leader) = &node.role {
            let key = (node.id, leader.leader_epoch());
            let hw = leader.high_watermark();
            let seen = self.leader_hw.entry(key).or_insert(hw);
            if hw < *seen {
                let message = format!(
                    "leader {} epoch {} high watermark went back {} -> {hw}",
                    node.id,
                    leader.leader_epoch(),
                    *seen
                );
                self.violation(now, message);
            }
            let seen = self.leader_hw.entry(key).or_insert(hw);
            *seen = (*seen).max(hw);
        }
        let hw = node.high_watermark().max(0) as usize;
        let len = node.log.recs.len();
        if hw > len {
            self.violation(
                now,
                format!(
                    "node {} high watermark {hw} above its log end {len}",
                    node.id
                ),
            );
            return;
        }
        let checked = self.checked.entry(node.id).or_insert(0);
        *checked = (*checked).min(hw);
        let from = *checked;
        *checked = hw;
        for offset in from..hw {
            let value = node.log.recs[offset].value;
            match self.committed.get(offset) {
                Some(known) if *known != value => {
                    let message = format!(
                        "node {} has value {value} at committed offset {offset}, which holds {known}",
                        node.id
                    );
                    self.violation(now, message);
                    return;
                }
                Some(_) => {}
                None => {
                    self.committed.push(value);
                    self.check_acked_at(now, offset);
                }
            }
        }
    }

    fn check_acked_at(&mut self, now: i64, offset: usize) {
        let value = self.committed[offset];
        if let Some(acked) = self.acked_at.get(&(offset as i64)) {
            if *acked != value {
                self.violation(
                    now,
                    format!("value {acked} acknowledged at {offset}, where {value} was committed"),
                );
            }
        }
    }

    pub fn acked(&mut self, now: i64, value: u64, offset: i64) {
        self.acked.insert(value, offset);
        if let Some(other) = self.acked_at.insert(offset, value) {
            if other != value {
                self.violation(
                    now,
                    format!("values {other} and {value} both acknowledged at {offset}"),
                );
            }
        }
        if let Some(committed) = self.committed.get(offset as usize) {
            if *committed != value {
                self.violation(
                    now,
                    format!(
                        "acknowledged value {value} at offset {offset}, which holds {committed}"
                    ),
                );
            }
        }
    }

    pub fn listed(&mut self, now: i64, latest: i64) {
        if latest < self.listed_max {
            self.violation(
                now,
                format!(
                    "ListOffsets(latest) went back from {} to {latest}",
                    self.listed_max
                ),
            );
        }
        self.listed_max = self.listed_max.max(latest);
    }

    pub fn consumed(&mut self, now: i64, offset: i64, records: &[Rec]) {
        for (i, rec) in records.iter().enumerate() {
            let at = offset + i as i64;
            if rec.offset != at {
                self.violation(
                    now,
                    format!("consumer got offset {} where {at} was due", rec.offset),
                );
                return;
            }
            match self.committed.get(at as usize) {
                Some(value) if *value == rec.value => {}
                other => {
                    self.violation(
                        now,
                        format!(
                            "consumer read value {} at {at}, committed there: {other:?}",
                            rec.value
                        ),
                    );
                    return;
                }
            }
        }
    }
}
