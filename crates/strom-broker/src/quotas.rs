//! Client quotas: `producer_byte_rate` and `consumer_byte_rate` per user and client id,
//! enforced as Kafka's `ClientQuotaManager` does.
//!
//! The quota of a request is the first of Kafka's eight user/client-id entities (KIP-55
//! precedence, `strom_meta::quota::precedence`) that has a value in the metadata image; the
//! bytes are counted on a rate shared by every client that entity covers. The rate is
//! Kafka's sampled rate: `quota.window.num` windows of `quota.window.size.seconds`, the rate
//! being the bytes of the live windows over their span (never less than `num - 1` windows,
//! so a fresh client is not judged on a few milliseconds). When a request takes the rate
//! above the quota, its response carries `throttle_time_ms = (rate - quota) / quota *
//! span`, and the connection reads nothing more from the client
//! for that long after sending it (KIP-219: the client also holds back on its own).
//!
//! State is soft: rates live in memory and start over when the broker restarts, as Kafka's.
//! The map of rates is bounded ([`SENSORS_MAX`]): idle rates are dropped first.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use strom_meta::quota::{precedence, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE};
use strom_meta::MetadataImage;

use crate::config::ConfigError;

/// Most rates kept at once; beyond it the longest idle ones are dropped.
pub const SENSORS_MAX: usize = 100_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaConfig {
    /// `quota.window.num` (11).
    pub window_num: u32,
    /// `quota.window.size.seconds` (1), in milliseconds.
    pub window_ms: u64,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            window_num: 11,
            window_ms: 1000,
        }
    }
}

impl QuotaConfig {
    pub fn from_props(map: &BTreeMap<String, String>) -> Result<QuotaConfig, ConfigError> {
        // Kafka's names and defaults, from the table of keys (1 to 3600 each).
        let props = crate::config_keys::Props::new(map);
        Ok(QuotaConfig {
            window_num: props.int("quota.window.num")?,
            window_ms: props.int::<u64>("quota.window.size.seconds")? * 1000,
        })
    }
}

/// Which byte rate a request counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    Produce,
    Fetch,
}

impl QuotaKind {
    fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
        }
    }
}

/// Kafka's sampled rate over `window_num` windows.
#[derive(Debug)]
struct Sensor {
    /// (window start, bytes), oldest first.
    samples: VecDeque<(u64, f64)>,
    last_used_ms: u64,
}

impl Sensor {
    fn record(&mut self, config: &QuotaConfig, now_ms: u64, bytes: f64) {
        let starts_new = self
            .samples
            .back()
            .is_none_or(|(start, _)| now_ms >= start + config.window_ms);
        if starts_new {
            self.samples.push_back((now_ms, 0.0));
        }
        // Windows older than the whole span no longer count.
        let span_ms = config.window_ms * u64::from(config.window_num);
        while self.samples.len() > config.window_num as usize
            || self
                .samples
                .front()
                .is_some_and(|(start, _)| start + span_ms <= now_ms)
        {
            self.samples.pop_front();
        }
        if let Some(last) = self.samples.back_mut() {
            last.1 += bytes;
        }
        self.last_used_ms = now_ms;
    }

    /// (rate in bytes per second, span in ms), as Kafka's `Rate.measure`/`windowSize`.
    fn rate(&self, config: &QuotaConfig, now_ms: u64) -> (f64, f64) {
        let total: f64 = self.samples.iter().map(|(_, bytes)| bytes).sum();
        let oldest = self.samples.front().map_or(now_ms, |(start, _)| *start);
        let mut elapsed = now_ms.saturating_sub(oldest);
        let full = elapsed / config.window_ms;
        let min_full = u64::from(config.window_num.saturating_sub(1));
        if full < min_full {
            elapsed += (min_full - full) * config.window_ms;
        }
        let span_ms = elapsed.max(1) as f64;
        (total * 1000.0 / span_ms, span_ms)
    }
}

/// The rates of every (kind, user, client-id) a quota applies to.
#[derive(Debug)]
pub struct QuotaManager {
    config: QuotaConfig,
    epoch: Instant,
    sensors: Mutex<HashMap<(QuotaKind, String, String), Sensor>>,
}

impl QuotaManager {
    pub fn new(config: QuotaConfig) -> QuotaManager {
        QuotaManager {
            config,
            epoch: Instant::now(),
            sensors: Mutex::new(HashMap::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The quota (bytes/s) of `user` with `client_id` for `kind`, and the (user,
    /// client-id) its rate is shared by; `None` when no entity sets one.
    pub fn quota(
        image: &MetadataImage,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
    ) -> Option<(f64, (String, String))> {
        // Most clusters set no quota: skip the eight lookups.
        image.client_quotas().next()?;
        precedence(user, client_id)
            .into_iter()
            .find_map(|(entity, shared)| {
                image
                    .client_quota(&entity, kind.key())
                    .map(|quota| (quota, shared))
            })
    }

    /// Records `bytes` for the client and returns how long it must be throttled (ms; 0 when
    /// within its quota or without one).
    pub fn record(
        &self,
        image: &MetadataImage,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        bytes: usize,
    ) -> u32 {
        let Some((quota, (user, client))) = Self::quota(image, kind, user, client_id) else {
            return 0;
        };
        let now = self.now_ms();
        let mut sensors = self.sensors.lock().unwrap_or_else(|e| e.into_inner());
        if sensors.len() >= SENSORS_MAX
            && !sensors.contains_key(&(kind, user.clone(), client.clone()))
        {
            // Drop the rates idle for more than a whole span, else the single oldest.
            let span = self.config.window_ms * u64::from(self.config.window_num);
            sensors.retain(|_, s| s.last_used_ms + span > now);
            if sensors.len() >= SENSORS_MAX {
                if let Some(oldest) = sensors
                    .iter()
                    .min_by_key(|(_, s)| s.last_used_ms)
                    .map(|(k, _)| k.clone())
                {
                    sensors.remove(&oldest);
                }
            }
        }
        let sensor = sensors.entry((kind, user, client)).or_insert(Sensor {
            samples: VecDeque::new(),
            last_used_ms: now,
        });
        sensor.record(&self.config, now, bytes as f64);
        let (rate, span_ms) = sensor.rate(&self.config, now);
        if rate <= quota || quota <= 0.0 {
            return 0;
        }
        // No cap, as Kafka's produce and fetch quotas: a request far over the quota (one
        // large batch) waits for as long as the rate needs to come back to the quota.
        let throttle = (rate - quota) / quota * span_ms;
        throttle.round().min(f64::from(i32::MAX)) as u32
    }
}

/// The throttle time a handler put in a response (Produce and Fetch carry quota throttles).
pub fn throttle_of(response: &strom_protocol::messages::ResponseKind) -> i32 {
    use strom_protocol::messages::ResponseKind;
    match response {
        ResponseKind::Produce(r) => r.throttle_time_ms,
        ResponseKind::Fetch(r) => r.throttle_time_ms,
        _ => 0,
    }
}

/// Puts a throttle time in a response (the final one of a Produce that waited).
pub fn set_throttle(response: &mut strom_protocol::messages::ResponseKind, throttle_ms: i32) {
    use strom_protocol::messages::ResponseKind;
    match response {
        ResponseKind::Produce(r) => r.throttle_time_ms = r.throttle_time_ms.max(throttle_ms),
        ResponseKind::Fetch(r) => r.throttle_time_ms = r.throttle_time_ms.max(throttle_ms),
        _ => {}
    }
}

/// The bytes a Produce request counts against `producer_byte_rate`: its record batches.
pub fn produce_bytes(request: &strom_protocol::messages::ProduceRequest) -> usize {
    request
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum()
}

/// The bytes a Fetch response counts against `consumer_byte_rate`: its records, in memory
/// or spliced from segment files.
pub fn fetch_bytes(
    response: &strom_protocol::messages::ResponseKind,
    files: &[crate::sendfile::FileRecords],
) -> usize {
    let in_memory: usize = match response {
        strom_protocol::messages::ResponseKind::Fetch(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
            .sum(),
        _ => 0,
    };
    in_memory
        + files
            .iter()
            .map(|f| usize::try_from(f.range.len_bytes).unwrap_or(usize::MAX))
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_spans_at_least_num_minus_one_windows() {
        let config = QuotaConfig::default();
        let mut sensor = Sensor {
            samples: VecDeque::new(),
            last_used_ms: 0,
        };
        sensor.record(&config, 0, 10_000.0);
        let (rate, span) = sensor.rate(&config, 0);
        assert_eq!(span, 10_000.0);
        assert_eq!(rate, 1_000.0);
        // 15 s later the first window no longer counts.
        sensor.record(&config, 15_000, 500.0);
        let (rate, _) = sensor.rate(&config, 15_000);
        assert_eq!(rate, 50.0);
    }

    #[test]
    fn throttle_is_kafkas_formula() {
        use strom_meta::quota::{QuotaValue, USER};
        use strom_meta::MetadataRecord;
        let entity: strom_meta::quota::QuotaEntity =
            [(USER.to_string(), None)].into_iter().collect();
        let (image, _) = MetadataImage::default()
            .apply(&[MetadataRecord::ClientQuota {
                entity,
                key: PRODUCER_BYTE_RATE.into(),
                value: Some(QuotaValue::new(1000.0)),
            }])
            .unwrap();
        let manager = QuotaManager::new(QuotaConfig::default());
        // 10 s worth at once: exactly at the quota over the 10 s minimum span.
        assert_eq!(
            manager.record(&image, QuotaKind::Produce, "ANONYMOUS", "c", 10_000),
            0
        );
        // Another 10 s worth doubles the rate: throttled for a whole span.
        let throttle = manager.record(&image, QuotaKind::Produce, "ANONYMOUS", "c", 10_000);
        assert!((9_900..=10_000).contains(&throttle), "{throttle}");
        // Uncapped: 100 s worth more waits about 100 s.
        let throttle = manager.record(&image, QuotaKind::Produce, "ANONYMOUS", "c", 100_000);
        assert!((109_000..=110_000).contains(&throttle), "{throttle}");
        // Without a quota for fetches nothing is throttled.
        assert_eq!(
            manager.record(&image, QuotaKind::Fetch, "ANONYMOUS", "c", 1 << 30),
            0
        );
    }
}
