//! Replication throttles, as Kafka's `ReplicationQuotaManager` applies them to partition
//! moves: a byte rate per broker and side (`leader.replication.throttled.rate`,
//! `follower.replication.throttled.rate`, dynamic broker configs set with AlterConfigs, this
//! broker's own value before the cluster default; unset means unlimited), applied only to
//! the replicas a topic lists (`leader.replication.throttled.replicas`,
//! `follower.replication.throttled.replicas`: `partition:broker,...` entries naming this
//! broker, or `*` for every replica), and only to replicas outside the ISR, so a throttle
//! never holds back the replication that acknowledges writes.
//!
//! - Leader side (the Fetch handler): while the bytes it served to throttled replicas exceed
//!   the leader rate, a throttled partition of a follower's fetch is answered with offsets
//!   and no records.
//! - Follower side (the fetchers): while the bytes it fetched for throttled partitions
//!   exceed the follower rate, those partitions are left out of its fetches for a backoff.
//!
//! - Moves between this broker's log directories (AlterReplicaLogDirs, `replica_move.rs`):
//!   while the bytes copied into future replicas exceed
//!   `replica.alter.log.dirs.io.max.bytes.per.second` (a dynamic broker config too; Kafka's
//!   `ReplicaAlterLogDirsThread` quota), the copy waits; every move on the broker counts
//!   against the one rate. The final copy of a move, made while the partition serves
//!   nothing, is never held back (it is at most `CATCH_UP_LAG_MAX` offsets).
//!
//! The rate is measured as Kafka's quota sensors do: bytes in the last [`WINDOWS`] one-second
//! windows over at least that span, so a short burst does not trip it and a long one
//! averages out at the limit.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use strom_meta::{ConfigResource, MetadataImage};

pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";
pub const ALTER_LOG_DIRS_RATE: &str = "replica.alter.log.dirs.io.max.bytes.per.second";

/// Kafka's `replication.quota.window.num` (11) minus the current window.
const WINDOWS: u64 = 10;

/// Which end of replication a throttle applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Leader,
    Follower,
}

impl Side {
    fn rate_key(self) -> &'static str {
        match self {
            Side::Leader => LEADER_RATE,
            Side::Follower => FOLLOWER_RATE,
        }
    }

    fn replicas_key(self) -> &'static str {
        match self {
            Side::Leader => LEADER_REPLICAS,
            Side::Follower => FOLLOWER_REPLICAS,
        }
    }
}

/// Bytes per one-second window over the last [`WINDOWS`] + 1 windows.
#[derive(Debug)]
pub struct RateMeter {
    start: Instant,
    /// (second since `start`, bytes in it), oldest first.
    windows: Mutex<VecDeque<(u64, u64)>>,
}

impl Default for RateMeter {
    fn default() -> Self {
        RateMeter {
            start: Instant::now(),
            windows: Mutex::new(VecDeque::new()),
        }
    }
}

impl RateMeter {
    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs()
    }

    pub fn record(&self, bytes: u64, now: Instant) {
        if bytes == 0 {
            return;
        }
        let second = self.second(now);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match windows.back_mut() {
            Some((at, total)) if *at == second => *total = total.saturating_add(bytes),
            _ => windows.push_back((second, bytes)),
        }
        while windows
            .front()
            .is_some_and(|(at, _)| at.saturating_add(WINDOWS) < second)
        {
            windows.pop_front();
        }
    }

    /// Bytes per second over the windows kept, counted over at least [`WINDOWS`] seconds.
    pub fn rate(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
        let second = self.second(now);
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let oldest = second.saturating_sub(WINDOWS);
        let total: u64 = windows
            .iter()
            .filter(|(at, _)| *at >= oldest)
            .map(|(_, bytes)| *bytes)
            .sum();
        let span = (elapsed - oldest as f64).max(WINDOWS as f64);
        total as f64 / span
    }

    /// Whether the rate is over `limit` bytes per second.
    pub fn exceeds(&self, limit: u64, now: Instant) -> bool {
        self.rate(now) > limit as f64
    }
}

/// The meters of one broker: both ends of replication, and the copies between its log
/// directories.
#[derive(Debug, Default)]
pub struct ReplicationQuotas {
    pub leader: RateMeter,
    pub follower: RateMeter,
    pub alter_log_dirs: RateMeter,
}

/// The rate limit of `side` on broker `node_id` (bytes per second), or `None` when none is
/// set (or the value is not a non-negative number, which AlterConfigs refuses anyway).
pub fn rate_limit(image: &MetadataImage, node_id: i32, side: Side) -> Option<u64> {
    let key = side.rate_key();
    image
        .config_value(&ConfigResource::broker(node_id.to_string()), key)
        .or_else(|| image.config_value(&ConfigResource::broker(""), key))
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// The limit on copies between this broker's log directories (bytes per second), or `None`
/// when none is set: `replica.alter.log.dirs.io.max.bytes.per.second`, this broker's own
/// dynamic value before the cluster default (Kafka's default, `Long.MAX_VALUE`, is no
/// limit).
pub fn alter_log_dirs_limit(image: &MetadataImage, node_id: i32) -> Option<u64> {
    image
        .config_value(
            &ConfigResource::broker(node_id.to_string()),
            ALTER_LOG_DIRS_RATE,
        )
        .or_else(|| image.config_value(&ConfigResource::broker(""), ALTER_LOG_DIRS_RATE))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|limit| i64::try_from(*limit).is_ok_and(|l| l < i64::MAX))
}

/// Why `value` is not a valid rate for `key`, if `key` is one of the rate keys.
pub fn invalid_rate(key: &str, value: &str) -> Option<String> {
    if key != LEADER_RATE && key != FOLLOWER_RATE && key != ALTER_LOG_DIRS_RATE {
        return None;
    }
    match value.trim().parse::<u64>() {
        Ok(rate) if i64::try_from(rate).is_ok() => None,
        _ => Some(format!(
            "Invalid value {value} for configuration {key}: a rate in bytes per second, \
             at least 0 (leave it unset for no throttle)"
        )),
    }
}

/// Whether `topic`'s throttled-replicas list of `side` names partition `partition` on broker
/// `node_id` (Kafka's `parseThrottledPartitions`: `*`, or `partition:broker` entries).
pub fn is_throttled(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    node_id: i32,
    side: Side,
) -> bool {
    let Some(list) = image
        .topic_configs(topic)
        .and_then(|c| c.get(side.replicas_key()))
    else {
        return false;
    };
    lists(list, partition, node_id)
}

fn lists(list: &str, partition: i32, node_id: i32) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    list.split(',').any(|entry| {
        let mut parts = entry.trim().split(':');
        let p = parts.next().and_then(|p| p.trim().parse::<i32>().ok());
        let b = parts.next().and_then(|b| b.trim().parse::<i32>().ok());
        p == Some(partition) && b == Some(node_id) && parts.next().is_none()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn throttled_replica_lists_name_partition_and_broker() {
        assert!(lists("*", 3, 7));
        assert!(lists("0:1, 1:2,2:3", 1, 2));
        assert!(!lists("0:1,1:2", 1, 1));
        assert!(!lists("0:1:2", 0, 1));
        assert!(!lists("", 0, 1));
    }

    #[test]
    fn the_rate_is_averaged_over_ten_seconds_at_least() {
        let meter = RateMeter::default();
        let t0 = meter.start;
        meter.record(1_000, t0);
        // 1000 bytes in the first second count as 100 B/s, not 1000 B/s.
        assert!((meter.rate(t0) - 100.0).abs() < 1e-9);
        assert!(meter.exceeds(99, t0) && !meter.exceeds(100, t0));
        // Old windows fall out.
        let later = t0 + Duration::from_secs(30);
        assert_eq!(meter.rate(later), 0.0);
        meter.record(2_000, later);
        assert!((meter.rate(later) - 200.0).abs() < 1e-9);
    }

    #[test]
    fn rates_must_be_non_negative_numbers() {
        assert_eq!(invalid_rate(LEADER_RATE, "1048576"), None);
        assert!(invalid_rate(FOLLOWER_RATE, "-1").is_some());
        assert!(invalid_rate(FOLLOWER_RATE, "fast").is_some());
        assert_eq!(invalid_rate("log.retention.ms", "x"), None);
    }
}
