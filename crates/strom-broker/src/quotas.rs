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
//! `request_percentage` (Kafka's `RequestQuotaManager`) is the same sampled rate over the
//! time the broker spent handling the client's requests, in percent of one thread (100 = one
//! thread busy all the time): the time counted is the time the request's handler future spent
//! being polled (a task's share of a worker thread, Kafka's request-handler thread time), not
//! the time it waited for the controller, a replica or a purgatory. Its throttle is capped
//! at one window (`quota.window.size.seconds`), as Kafka's. Inter-broker requests (follower
//! fetches) are exempt.
//!
//! `controller_mutation_rate` (KIP-599, Kafka's `ControllerMutationQuotaManager`) is a token
//! bucket of partition mutations per user/client-id: the bucket holds at most `quota *
//! controller.quota.window.num * controller.quota.window.size.seconds` tokens and refills at
//! `quota` per second; a created or deleted topic takes its partition count, CreatePartitions
//! the partitions it adds. Strict callers (CreateTopics v6+, CreatePartitions v3+,
//! DeleteTopics v5+) get THROTTLING_QUOTA_EXCEEDED for a topic once the bucket is empty (one
//! request may take it below zero, as Kafka allows); older versions are served and throttled
//! for the time the bucket needs to come back to zero. Unlike Kafka, where the active
//! controller keeps the bucket, each broker keeps its own: a client spreading its requests
//! over N brokers gets up to N times its rate.
//!
//! State is soft: rates live in memory and start over when the broker restarts, as Kafka's.
//! The map of rates is bounded ([`SENSORS_MAX`]): idle rates are dropped first.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use strom_meta::quota::{
    precedence, CONSUMER_BYTE_RATE, CONTROLLER_MUTATION_RATE, PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
};
use strom_meta::MetadataImage;

use crate::config::ConfigError;

/// Most rates kept at once; beyond it the longest idle ones are dropped.
pub const SENSORS_MAX: usize = 100_000;
/// Most (quota type, user, client-id) entities with `/metrics` series of their own; the
/// entities seen after the cap is reached are summed into one series per type, labelled
/// [`OTHER_ENTITY`]. Series are never dropped (they are counters), so this bounds both
/// memory and the scrape's size.
pub const ENTITY_SERIES_MAX: usize = 200;
/// The `user` and `client_id` labels of the series past [`ENTITY_SERIES_MAX`].
pub const OTHER_ENTITY: &str = "<other>";
/// Longer user names and client ids are cut to this many bytes in labels.
pub const ENTITY_LABEL_BYTES_MAX: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaConfig {
    /// `quota.window.num` (11).
    pub window_num: u32,
    /// `quota.window.size.seconds` (1), in milliseconds.
    pub window_ms: u64,
    /// `controller.quota.window.num` (11).
    pub controller_window_num: u32,
    /// `controller.quota.window.size.seconds` (1), in milliseconds.
    pub controller_window_ms: u64,
    /// `max.connection.creation.rate` (KIP-612): new connections per second, broker-wide
    /// and the default of every listener.
    pub connection_creation_rate: u32,
    /// `listener.name.<name>.max.connection.creation.rate`, by upper-case listener name.
    pub listener_connection_creation_rates: BTreeMap<String, u32>,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            window_num: 11,
            window_ms: 1000,
            controller_window_num: 11,
            controller_window_ms: 1000,
            connection_creation_rate: i32::MAX as u32,
            listener_connection_creation_rates: BTreeMap::new(),
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
            controller_window_num: props.int("controller.quota.window.num")?,
            controller_window_ms: props.int::<u64>("controller.quota.window.size.seconds")? * 1000,
            connection_creation_rate: props.int("max.connection.creation.rate")?,
            listener_connection_creation_rates: listener_rates(map)?,
        })
    }
}

/// `listener.name.<name>.max.connection.creation.rate` entries (0 to 2^31-1, as Kafka).
fn listener_rates(map: &BTreeMap<String, String>) -> Result<BTreeMap<String, u32>, ConfigError> {
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let Some(name) = key
            .strip_prefix("listener.name.")
            .and_then(|rest| rest.strip_suffix(".max.connection.creation.rate"))
        else {
            continue;
        };
        let rate = value
            .trim()
            .parse::<i32>()
            .ok()
            .and_then(|r| u32::try_from(r).ok())
            .ok_or_else(|| ConfigError::InvalidValue {
                key: key.clone(),
                value: value.clone(),
                reason: "connections per second: a whole number from 0 to 2147483647".into(),
            })?;
        out.insert(name.to_ascii_uppercase(), rate);
    }
    Ok(out)
}

/// Which sampled rate a request counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// Produced bytes (`producer_byte_rate`).
    Produce,
    /// Fetched bytes (`consumer_byte_rate`).
    Fetch,
    /// Request handling time, in percent-seconds (`request_percentage`).
    Request,
}

impl QuotaKind {
    fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
            QuotaKind::Request => REQUEST_PERCENTAGE,
        }
    }

    /// Kafka's quota types, as its metrics name them (`type=Produce`, `Fetch`, `Request`).
    pub fn name(self) -> &'static str {
        match self {
            QuotaKind::Produce => "Produce",
            QuotaKind::Fetch => "Fetch",
            QuotaKind::Request => "Request",
        }
    }
}

/// What a strict controller-mutation quota said about one topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Go ahead (the tokens are taken).
    Accepted,
    /// THROTTLING_QUOTA_EXCEEDED, with the time until the bucket is back at zero (ms).
    Rejected(u32),
}

/// Kafka's `TokenBucket` stat: tokens in hand (may be negative) at `at_ms`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

impl Bucket {
    /// Refills at `quota` per second up to `burst`.
    fn refill(&mut self, quota: f64, burst: f64, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + quota * elapsed).min(burst);
        self.at_ms = now_ms;
    }

    /// How long until the bucket is back at zero (ms), as Kafka's `throttleTimeMs`.
    fn throttle_ms(&self, quota: f64) -> u32 {
        if self.tokens >= 0.0 || quota <= 0.0 {
            return 0;
        }
        (-self.tokens / quota * 1000.0)
            .round()
            .min(f64::from(i32::MAX)) as u32
    }
}

/// Kafka's sampled rate over `window_num` windows.
#[derive(Debug, Default)]
pub(crate) struct Sensor {
    /// (window start, bytes), oldest first.
    samples: VecDeque<(u64, f64)>,
    last_used_ms: u64,
}

impl Sensor {
    pub(crate) fn record(&mut self, config: &QuotaConfig, now_ms: u64, bytes: f64) {
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

    /// When this rate was last recorded (ms on the owner's clock).
    pub(crate) fn last_used_ms(&self) -> u64 {
        self.last_used_ms
    }

    /// (rate in bytes per second, span in ms), as Kafka's `Rate.measure`/`windowSize`.
    pub(crate) fn rate(&self, config: &QuotaConfig, now_ms: u64) -> (f64, f64) {
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

/// Totals of one quota type, for `/metrics`.
#[derive(Debug, Default)]
pub struct QuotaStat {
    throttle_ms: AtomicU64,
    throttled: AtomicU64,
    recorded: AtomicU64,
}

impl QuotaStat {
    pub fn throttle_ms(&self) -> u64 {
        self.throttle_ms.load(Ordering::Relaxed)
    }

    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    fn count(&self, recorded: u64, throttle_ms: u32) {
        self.recorded.fetch_add(recorded, Ordering::Relaxed);
        if throttle_ms > 0 {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            self.throttle_ms
                .fetch_add(u64::from(throttle_ms), Ordering::Relaxed);
        }
    }
}

/// Kafka's quota type names, in the order of [`QuotaManager::stats`].
const STAT_TYPES: [&str; 4] = ["Produce", "Fetch", "Request", "ControllerMutation"];

/// The rates of every (kind, user, client-id) a quota applies to.
#[derive(Debug)]
pub struct QuotaManager {
    config: QuotaConfig,
    epoch: Instant,
    sensors: Mutex<HashMap<(QuotaKind, String, String), Sensor>>,
    /// Controller-mutation token buckets per (user, client-id) sharing one.
    buckets: Mutex<HashMap<(String, String), Bucket>>,
    /// Totals per quota type ([`STAT_TYPES`]).
    stats: [QuotaStat; 4],
    /// Totals per (quota type, user, client-id) of the entity whose quota applied: Kafka's
    /// per-entity sensors, bounded by [`ENTITY_SERIES_MAX`].
    entities: Mutex<BTreeMap<EntityKey, EntityStat>>,
}

/// (quota type, user, client-id) as the metric labels them.
pub type EntityKey = (&'static str, String, String);

/// One entity's totals, for `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EntityStat {
    pub throttle_ms: u64,
    pub throttled: u64,
    pub recorded: u64,
}

/// `text` cut to at most [`ENTITY_LABEL_BYTES_MAX`] bytes at a character boundary.
fn label(text: &str) -> String {
    let mut end = text.len().min(ENTITY_LABEL_BYTES_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

impl QuotaManager {
    pub fn new(config: QuotaConfig) -> QuotaManager {
        QuotaManager {
            config,
            epoch: Instant::now(),
            sensors: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
            stats: Default::default(),
            entities: Mutex::new(BTreeMap::new()),
        }
    }

    /// The totals per (quota type, user, client-id), in label order.
    pub fn entity_stats(&self) -> Vec<(EntityKey, EntityStat)> {
        let entities = self.entities.lock().unwrap_or_else(|e| e.into_inner());
        entities.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    fn count_entity(
        &self,
        kind: QuotaKind,
        user: &str,
        client: &str,
        recorded: u64,
        throttle_ms: u32,
    ) {
        let type_name = match kind {
            QuotaKind::Produce => STAT_TYPES[0],
            QuotaKind::Fetch => STAT_TYPES[1],
            QuotaKind::Request => STAT_TYPES[2],
        };
        let mut entities = self.entities.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = (type_name, label(user), label(client));
        if !entities.contains_key(&key) && entities.len() >= ENTITY_SERIES_MAX {
            key = (
                type_name,
                OTHER_ENTITY.to_string(),
                OTHER_ENTITY.to_string(),
            );
        }
        let stat = entities.entry(key).or_default();
        stat.recorded = stat.recorded.saturating_add(recorded);
        if throttle_ms > 0 {
            stat.throttled = stat.throttled.saturating_add(1);
            stat.throttle_ms = stat.throttle_ms.saturating_add(u64::from(throttle_ms));
        }
    }

    /// The totals per quota type (`Produce`, `Fetch`, `Request`, `ControllerMutation`).
    pub fn stats(&self) -> Vec<(&'static str, &QuotaStat)> {
        STAT_TYPES.iter().copied().zip(self.stats.iter()).collect()
    }

    fn stat(&self, kind: QuotaKind) -> &QuotaStat {
        &self.stats[match kind {
            QuotaKind::Produce => 0,
            QuotaKind::Fetch => 1,
            QuotaKind::Request => 2,
        }]
    }

    /// Counts a controller-mutation throttle put in a response.
    pub fn count_mutation_throttle(&self, throttle_ms: u32) {
        self.stats[3].count(0, throttle_ms);
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
        Self::quota_of(image, kind.key(), user, client_id)
    }

    /// The value of quota `key` for `user` with `client_id` by Kafka's entity precedence
    /// (user+client-id, user+default client, user, default user+client-id, ...), and the
    /// (user, client-id) the rate of that entity is shared by.
    pub fn quota_of(
        image: &MetadataImage,
        key: &str,
        user: &str,
        client_id: &str,
    ) -> Option<(f64, (String, String))> {
        // Most clusters set no quota: skip the eight lookups.
        image.client_quotas().next()?;
        precedence(user, client_id)
            .into_iter()
            .find_map(|(entity, shared)| image.client_quota(&entity, key).map(|q| (q, shared)))
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
        self.record_counted(image, kind, user, client_id, bytes as f64, bytes as u64)
    }

    fn record_value(
        &self,
        image: &MetadataImage,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        value: f64,
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
        sensor.record(&self.config, now, value);
        let (rate, span_ms) = sensor.rate(&self.config, now);
        if rate <= quota || quota <= 0.0 {
            return 0;
        }
        // No cap, as Kafka's produce and fetch quotas: a request far over the quota (one
        // large batch) waits for as long as the rate needs to come back to the quota. The
        // request quota caps it at one window, as Kafka's RequestQuotaManager does.
        let throttle = (rate - quota) / quota * span_ms;
        let cap = match kind {
            QuotaKind::Request => self.config.window_ms as f64,
            QuotaKind::Produce | QuotaKind::Fetch => f64::from(i32::MAX),
        };
        throttle.round().min(cap) as u32
    }

    /// [`Self::record_value`], counted for `/metrics` (`recorded` in the stat's unit).
    fn record_counted(
        &self,
        image: &MetadataImage,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        value: f64,
        recorded: u64,
    ) -> u32 {
        let throttle = self.record_value(image, kind, user, client_id, value);
        // A throttle implies a quota: only clients some quota applies to are counted.
        if let Some((_, (shared_user, shared_client))) = Self::quota(image, kind, user, client_id) {
            self.stat(kind).count(recorded, throttle);
            self.count_entity(kind, &shared_user, &shared_client, recorded, throttle);
        }
        throttle
    }

    /// Counts `elapsed` of request handling against the client's `request_percentage` and
    /// returns the throttle (ms; 0 without a quota or within it).
    pub fn record_request_time(
        &self,
        image: &MetadataImage,
        user: &str,
        client_id: &str,
        elapsed: std::time::Duration,
    ) -> u32 {
        // Percent of one thread for one second: 10 ms of handling is 1 unit.
        let units = elapsed.as_secs_f64() * 100.0;
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.record_counted(image, QuotaKind::Request, user, client_id, units, micros)
    }

    /// The current rate of `kind` for the (user, client-id) a quota shares, if one applies
    /// (bytes/s, or percent for requests): for metrics and tests.
    pub fn rate(
        &self,
        image: &MetadataImage,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
    ) -> Option<f64> {
        let (_, (user, client)) = Self::quota(image, kind, user, client_id)?;
        let now = self.now_ms();
        let sensors = self.sensors.lock().unwrap_or_else(|e| e.into_inner());
        sensors
            .get(&(kind, user, client))
            .map(|s| s.rate(&self.config, now).0)
    }

    /// One topic's partition mutations (`permits`) against `controller_mutation_rate`.
    /// Strict: refused once the bucket is below zero (the tokens are then not taken).
    /// Permissive: always taken. Returns `Accepted` without a quota.
    pub fn record_mutations(
        &self,
        image: &MetadataImage,
        user: &str,
        client_id: &str,
        permits: f64,
        strict: bool,
    ) -> Mutation {
        let Some((quota, shared)) =
            Self::quota_of(image, CONTROLLER_MUTATION_RATE, user, client_id)
        else {
            return Mutation::Accepted;
        };
        let now = self.now_ms();
        let burst = quota
            * f64::from(self.config.controller_window_num)
            * (self.config.controller_window_ms as f64 / 1000.0);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= SENSORS_MAX && !buckets.contains_key(&shared) {
            // Full buckets hold no debt: dropping them forgets nothing.
            buckets.retain(|_, b| b.tokens < 0.0);
            if buckets.len() >= SENSORS_MAX {
                if let Some(oldest) = buckets
                    .iter()
                    .min_by_key(|(_, b)| b.at_ms)
                    .map(|(k, _)| k.clone())
                {
                    buckets.remove(&oldest);
                }
            }
        }
        let bucket = buckets.entry(shared).or_insert(Bucket {
            tokens: burst,
            at_ms: now,
        });
        bucket.refill(quota, burst, now);
        if strict && bucket.tokens < 0.0 {
            return Mutation::Rejected(bucket.throttle_ms(quota).max(1));
        }
        bucket.tokens -= permits;
        self.stats[3].count(permits as u64, 0);
        Mutation::Accepted
    }

    /// Gives back mutations taken for a topic that then failed (it mutated nothing).
    pub fn refund_mutations(
        &self,
        image: &MetadataImage,
        user: &str,
        client_id: &str,
        permits: f64,
    ) {
        let Some((quota, shared)) =
            Self::quota_of(image, CONTROLLER_MUTATION_RATE, user, client_id)
        else {
            return;
        };
        let burst = quota
            * f64::from(self.config.controller_window_num)
            * (self.config.controller_window_ms as f64 / 1000.0);
        let now = self.now_ms();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = buckets.get_mut(&shared) {
            bucket.refill(quota, burst, now);
            bucket.tokens = (bucket.tokens + permits).min(burst);
        }
    }

    /// How long the client must wait for its mutation bucket to be back at zero (ms).
    pub fn mutation_throttle(&self, image: &MetadataImage, user: &str, client_id: &str) -> u32 {
        let Some((quota, shared)) =
            Self::quota_of(image, CONTROLLER_MUTATION_RATE, user, client_id)
        else {
            return 0;
        };
        let burst = quota
            * f64::from(self.config.controller_window_num)
            * (self.config.controller_window_ms as f64 / 1000.0);
        let now = self.now_ms();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.get_mut(&shared).map_or(0, |bucket| {
            bucket.refill(quota, burst, now);
            bucket.throttle_ms(quota)
        })
    }
}

/// The `throttle_time_ms` field of a response, if its kind has one.
fn throttle_field(response: &mut strom_protocol::messages::ResponseKind) -> Option<&mut i32> {
    use strom_protocol::messages::ResponseKind as R;
    match response {
        R::AddOffsetsToTxn(r) => Some(&mut r.throttle_time_ms),
        R::AddPartitionsToTxn(r) => Some(&mut r.throttle_time_ms),
        R::AddRaftVoter(r) => Some(&mut r.throttle_time_ms),
        R::AllocateProducerIds(r) => Some(&mut r.throttle_time_ms),
        R::AlterClientQuotas(r) => Some(&mut r.throttle_time_ms),
        R::AlterConfigs(r) => Some(&mut r.throttle_time_ms),
        R::AlterPartitionReassignments(r) => Some(&mut r.throttle_time_ms),
        R::AlterPartition(r) => Some(&mut r.throttle_time_ms),
        R::AlterReplicaLogDirs(r) => Some(&mut r.throttle_time_ms),
        R::AlterShareGroupOffsets(r) => Some(&mut r.throttle_time_ms),
        R::AlterUserScramCredentials(r) => Some(&mut r.throttle_time_ms),
        R::ApiVersions(r) => Some(&mut r.throttle_time_ms),
        R::AssignReplicasToDirs(r) => Some(&mut r.throttle_time_ms),
        R::BrokerHeartbeat(r) => Some(&mut r.throttle_time_ms),
        R::BrokerRegistration(r) => Some(&mut r.throttle_time_ms),
        R::ConsumerGroupDescribe(r) => Some(&mut r.throttle_time_ms),
        R::ConsumerGroupHeartbeat(r) => Some(&mut r.throttle_time_ms),
        R::ControllerRegistration(r) => Some(&mut r.throttle_time_ms),
        R::CreateAcls(r) => Some(&mut r.throttle_time_ms),
        R::CreateDelegationToken(r) => Some(&mut r.throttle_time_ms),
        R::CreatePartitions(r) => Some(&mut r.throttle_time_ms),
        R::CreateTopics(r) => Some(&mut r.throttle_time_ms),
        R::DeleteAcls(r) => Some(&mut r.throttle_time_ms),
        R::DeleteGroups(r) => Some(&mut r.throttle_time_ms),
        R::DeleteRecords(r) => Some(&mut r.throttle_time_ms),
        R::DeleteShareGroupOffsets(r) => Some(&mut r.throttle_time_ms),
        R::DeleteTopics(r) => Some(&mut r.throttle_time_ms),
        R::DescribeAcls(r) => Some(&mut r.throttle_time_ms),
        R::DescribeClientQuotas(r) => Some(&mut r.throttle_time_ms),
        R::DescribeCluster(r) => Some(&mut r.throttle_time_ms),
        R::DescribeConfigs(r) => Some(&mut r.throttle_time_ms),
        R::DescribeDelegationToken(r) => Some(&mut r.throttle_time_ms),
        R::DescribeGroups(r) => Some(&mut r.throttle_time_ms),
        R::DescribeLogDirs(r) => Some(&mut r.throttle_time_ms),
        R::DescribeProducers(r) => Some(&mut r.throttle_time_ms),
        R::DescribeShareGroupOffsets(r) => Some(&mut r.throttle_time_ms),
        R::DescribeTopicPartitions(r) => Some(&mut r.throttle_time_ms),
        R::DescribeTransactions(r) => Some(&mut r.throttle_time_ms),
        R::DescribeUserScramCredentials(r) => Some(&mut r.throttle_time_ms),
        R::ElectLeaders(r) => Some(&mut r.throttle_time_ms),
        R::EndTxn(r) => Some(&mut r.throttle_time_ms),
        R::ExpireDelegationToken(r) => Some(&mut r.throttle_time_ms),
        R::Fetch(r) => Some(&mut r.throttle_time_ms),
        R::FetchSnapshot(r) => Some(&mut r.throttle_time_ms),
        R::FindCoordinator(r) => Some(&mut r.throttle_time_ms),
        R::GetTelemetrySubscriptions(r) => Some(&mut r.throttle_time_ms),
        R::Heartbeat(r) => Some(&mut r.throttle_time_ms),
        R::IncrementalAlterConfigs(r) => Some(&mut r.throttle_time_ms),
        R::InitProducerId(r) => Some(&mut r.throttle_time_ms),
        R::JoinGroup(r) => Some(&mut r.throttle_time_ms),
        R::LeaveGroup(r) => Some(&mut r.throttle_time_ms),
        R::ListConfigResources(r) => Some(&mut r.throttle_time_ms),
        R::ListGroups(r) => Some(&mut r.throttle_time_ms),
        R::ListOffsets(r) => Some(&mut r.throttle_time_ms),
        R::ListPartitionReassignments(r) => Some(&mut r.throttle_time_ms),
        R::ListTransactions(r) => Some(&mut r.throttle_time_ms),
        R::Metadata(r) => Some(&mut r.throttle_time_ms),
        R::OffsetCommit(r) => Some(&mut r.throttle_time_ms),
        R::OffsetDelete(r) => Some(&mut r.throttle_time_ms),
        R::OffsetFetch(r) => Some(&mut r.throttle_time_ms),
        R::OffsetForLeaderEpoch(r) => Some(&mut r.throttle_time_ms),
        R::Produce(r) => Some(&mut r.throttle_time_ms),
        R::PushTelemetry(r) => Some(&mut r.throttle_time_ms),
        R::RemoveRaftVoter(r) => Some(&mut r.throttle_time_ms),
        R::RenewDelegationToken(r) => Some(&mut r.throttle_time_ms),
        R::ShareAcknowledge(r) => Some(&mut r.throttle_time_ms),
        R::ShareFetch(r) => Some(&mut r.throttle_time_ms),
        R::ShareGroupDescribe(r) => Some(&mut r.throttle_time_ms),
        R::ShareGroupHeartbeat(r) => Some(&mut r.throttle_time_ms),
        R::StreamsGroupDescribe(r) => Some(&mut r.throttle_time_ms),
        R::StreamsGroupHeartbeat(r) => Some(&mut r.throttle_time_ms),
        R::SyncGroup(r) => Some(&mut r.throttle_time_ms),
        R::TxnOffsetCommit(r) => Some(&mut r.throttle_time_ms),
        R::UnregisterBroker(r) => Some(&mut r.throttle_time_ms),
        R::UpdateFeatures(r) => Some(&mut r.throttle_time_ms),
        R::UpdateRaftVoter(r) => Some(&mut r.throttle_time_ms),
        _ => None,
    }
}

/// The throttle time a handler put in a response (any quota: byte rates, request time,
/// controller mutations).
pub fn throttle_of(response: &strom_protocol::messages::ResponseKind) -> i32 {
    read_throttle(response)
}

fn read_throttle(response: &strom_protocol::messages::ResponseKind) -> i32 {
    use strom_protocol::messages::ResponseKind as R;
    match response {
        R::AddOffsetsToTxn(r) => r.throttle_time_ms,
        R::AddPartitionsToTxn(r) => r.throttle_time_ms,
        R::AddRaftVoter(r) => r.throttle_time_ms,
        R::AllocateProducerIds(r) => r.throttle_time_ms,
        R::AlterClientQuotas(r) => r.throttle_time_ms,
        R::AlterConfigs(r) => r.throttle_time_ms,
        R::AlterPartitionReassignments(r) => r.throttle_time_ms,
        R::AlterPartition(r) => r.throttle_time_ms,
        R::AlterReplicaLogDirs(r) => r.throttle_time_ms,
        R::AlterShareGroupOffsets(r) => r.throttle_time_ms,
        R::AlterUserScramCredentials(r) => r.throttle_time_ms,
        R::ApiVersions(r) => r.throttle_time_ms,
        R::AssignReplicasToDirs(r) => r.throttle_time_ms,
        R::BrokerHeartbeat(r) => r.throttle_time_ms,
        R::BrokerRegistration(r) => r.throttle_time_ms,
        R::ConsumerGroupDescribe(r) => r.throttle_time_ms,
        R::ConsumerGroupHeartbeat(r) => r.throttle_time_ms,
        R::ControllerRegistration(r) => r.throttle_time_ms,
        R::CreateAcls(r) => r.throttle_time_ms,
        R::CreateDelegationToken(r) => r.throttle_time_ms,
        R::CreatePartitions(r) => r.throttle_time_ms,
        R::CreateTopics(r) => r.throttle_time_ms,
        R::DeleteAcls(r) => r.throttle_time_ms,
        R::DeleteGroups(r) => r.throttle_time_ms,
        R::DeleteRecords(r) => r.throttle_time_ms,
        R::DeleteShareGroupOffsets(r) => r.throttle_time_ms,
        R::DeleteTopics(r) => r.throttle_time_ms,
        R::DescribeAcls(r) => r.throttle_time_ms,
        R::DescribeClientQuotas(r) => r.throttle_time_ms,
        R::DescribeCluster(r) => r.throttle_time_ms,
        R::DescribeConfigs(r) => r.throttle_time_ms,
        R::DescribeDelegationToken(r) => r.throttle_time_ms,
        R::DescribeGroups(r) => r.throttle_time_ms,
        R::DescribeLogDirs(r) => r.throttle_time_ms,
        R::DescribeProducers(r) => r.throttle_time_ms,
        R::DescribeShareGroupOffsets(r) => r.throttle_time_ms,
        R::DescribeTopicPartitions(r) => r.throttle_time_ms,
        R::DescribeTransactions(r) => r.throttle_time_ms,
        R::DescribeUserScramCredentials(r) => r.throttle_time_ms,
        R::ElectLeaders(r) => r.throttle_time_ms,
        R::EndTxn(r) => r.throttle_time_ms,
        R::ExpireDelegationToken(r) => r.throttle_time_ms,
        R::Fetch(r) => r.throttle_time_ms,
        R::FetchSnapshot(r) => r.throttle_time_ms,
        R::FindCoordinator(r) => r.throttle_time_ms,
        R::GetTelemetrySubscriptions(r) => r.throttle_time_ms,
        R::Heartbeat(r) => r.throttle_time_ms,
        R::IncrementalAlterConfigs(r) => r.throttle_time_ms,
        R::InitProducerId(r) => r.throttle_time_ms,
        R::JoinGroup(r) => r.throttle_time_ms,
        R::LeaveGroup(r) => r.throttle_time_ms,
        R::ListConfigResources(r) => r.throttle_time_ms,
        R::ListGroups(r) => r.throttle_time_ms,
        R::ListOffsets(r) => r.throttle_time_ms,
        R::ListPartitionReassignments(r) => r.throttle_time_ms,
        R::ListTransactions(r) => r.throttle_time_ms,
        R::Metadata(r) => r.throttle_time_ms,
        R::OffsetCommit(r) => r.throttle_time_ms,
        R::OffsetDelete(r) => r.throttle_time_ms,
        R::OffsetFetch(r) => r.throttle_time_ms,
        R::OffsetForLeaderEpoch(r) => r.throttle_time_ms,
        R::Produce(r) => r.throttle_time_ms,
        R::PushTelemetry(r) => r.throttle_time_ms,
        R::RemoveRaftVoter(r) => r.throttle_time_ms,
        R::RenewDelegationToken(r) => r.throttle_time_ms,
        R::ShareAcknowledge(r) => r.throttle_time_ms,
        R::ShareFetch(r) => r.throttle_time_ms,
        R::ShareGroupDescribe(r) => r.throttle_time_ms,
        R::ShareGroupHeartbeat(r) => r.throttle_time_ms,
        R::StreamsGroupDescribe(r) => r.throttle_time_ms,
        R::StreamsGroupHeartbeat(r) => r.throttle_time_ms,
        R::SyncGroup(r) => r.throttle_time_ms,
        R::TxnOffsetCommit(r) => r.throttle_time_ms,
        R::UnregisterBroker(r) => r.throttle_time_ms,
        R::UpdateFeatures(r) => r.throttle_time_ms,
        R::UpdateRaftVoter(r) => r.throttle_time_ms,
        _ => 0,
    }
}

/// Puts a throttle time in a response (the larger of the one there and `throttle_ms`, as
/// Kafka sends the larger of its quotas' throttles).
pub fn set_throttle(response: &mut strom_protocol::messages::ResponseKind, throttle_ms: i32) {
    if let Some(field) = throttle_field(response) {
        *field = (*field).max(throttle_ms);
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

#[cfg(test)]
mod more_tests {
    use super::*;
    use strom_meta::quota::{QuotaValue, CLIENT_ID, USER};
    use strom_meta::MetadataRecord;

    fn image_with(entity: &[(&str, Option<&str>)], key: &str, value: f64) -> MetadataImage {
        let entity: strom_meta::quota::QuotaEntity = entity
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect();
        MetadataImage::default()
            .apply(&[MetadataRecord::ClientQuota {
                entity,
                key: key.into(),
                value: Some(QuotaValue::new(value)),
            }])
            .unwrap()
            .0
    }

    #[test]
    fn request_time_is_a_percentage_of_one_thread_capped_at_one_window() {
        // 10% of a thread: 1 s of handling over the 10 s minimum span is exactly 10%.
        let image = image_with(&[(CLIENT_ID, Some("busy"))], REQUEST_PERCENTAGE, 10.0);
        let manager = QuotaManager::new(QuotaConfig::default());
        let second = std::time::Duration::from_secs(1);
        assert_eq!(manager.record_request_time(&image, "u", "busy", second), 0);
        // Another second doubles the rate: Kafka's formula says 10 s, capped at 1 s.
        assert_eq!(
            manager.record_request_time(&image, "u", "busy", second),
            1000
        );
        // Other clients have no quota.
        assert_eq!(
            manager.record_request_time(&image, "u", "idle", second * 5),
            0
        );
        let (kind, stat) = manager.stats()[2];
        assert_eq!(kind, "Request");
        assert_eq!((stat.throttled(), stat.throttle_ms()), (1, 1000));
        assert_eq!(stat.recorded(), 2_000_000);
    }

    #[test]
    fn the_mutation_bucket_is_strict_once_empty_and_refills() {
        // 10 mutations/s with 11 one-second windows: a burst of 110.
        let image = image_with(&[(USER, Some("alice"))], CONTROLLER_MUTATION_RATE, 10.0);
        let manager = QuotaManager::new(QuotaConfig::default());
        assert_eq!(
            manager.record_mutations(&image, "alice", "c", 100.0, true),
            Mutation::Accepted
        );
        // 10 tokens left: a topic of 50 partitions still goes (the bucket may go below zero).
        assert_eq!(
            manager.record_mutations(&image, "alice", "c", 50.0, true),
            Mutation::Accepted
        );
        // -40 tokens: refused for about 4 s (the time to refill to zero).
        let Mutation::Rejected(ms) = manager.record_mutations(&image, "alice", "c", 1.0, true)
        else {
            panic!("not refused");
        };
        assert!((3_900..=4_000).contains(&ms), "{ms}");
        // Permissive callers are served and told how long to wait.
        assert_eq!(
            manager.record_mutations(&image, "alice", "other", 1.0, false),
            Mutation::Accepted
        );
        let throttle = manager.mutation_throttle(&image, "alice", "c");
        assert!((4_000..=4_100).contains(&throttle), "{throttle}");
        // A refund gives the tokens of a failed topic back.
        manager.refund_mutations(&image, "alice", "c", 41.0);
        assert_eq!(manager.mutation_throttle(&image, "alice", "c"), 0);
        // Someone without a quota is never refused.
        assert_eq!(
            manager.record_mutations(&image, "bob", "c", 1e9, true),
            Mutation::Accepted
        );
    }

    #[test]
    fn the_bucket_refills_at_the_quota_up_to_the_burst() {
        let mut bucket = Bucket {
            tokens: -20.0,
            at_ms: 0,
        };
        assert_eq!(bucket.throttle_ms(10.0), 2_000);
        bucket.refill(10.0, 110.0, 1_000);
        assert_eq!(bucket.throttle_ms(10.0), 1_000);
        bucket.refill(10.0, 110.0, 60_000);
        assert_eq!(bucket.tokens, 110.0);
        assert_eq!(bucket.throttle_ms(10.0), 0);
    }

    #[test]
    fn every_response_with_a_throttle_field_takes_the_larger_throttle() {
        use strom_protocol::messages::{CreateTopicsResponse, MetadataResponse, ResponseKind};
        let mut response = ResponseKind::Metadata(MetadataResponse::default());
        set_throttle(&mut response, 250);
        assert_eq!(throttle_of(&response), 250);
        set_throttle(&mut response, 100);
        assert_eq!(throttle_of(&response), 250);
        let mut response =
            ResponseKind::CreateTopics(CreateTopicsResponse::default().with_throttle_time_ms(7));
        set_throttle(&mut response, 3);
        assert_eq!(throttle_of(&response), 7);
    }
}

#[cfg(test)]
mod entity_tests {
    use super::*;
    use strom_meta::quota::{QuotaValue, CLIENT_ID};
    use strom_meta::MetadataRecord;

    #[test]
    fn per_entity_totals_are_bounded_and_the_rest_summed() {
        // A default client-id quota: every client id is an entity of its own.
        let entity: strom_meta::quota::QuotaEntity =
            [(CLIENT_ID.to_string(), None)].into_iter().collect();
        let (image, _) = MetadataImage::default()
            .apply(&[MetadataRecord::ClientQuota {
                entity,
                key: PRODUCER_BYTE_RATE.into(),
                value: Some(QuotaValue::new(1000.0)),
            }])
            .unwrap();
        let manager = QuotaManager::new(QuotaConfig::default());
        manager.record(&image, QuotaKind::Produce, "alice", "c-0", 10_000);
        let throttle = manager.record(&image, QuotaKind::Produce, "alice", "c-0", 10_000);
        assert!(throttle > 0);
        let long = "x".repeat(1000);
        for i in 1..ENTITY_SERIES_MAX + 10 {
            let client = if i == 1 {
                long.clone()
            } else {
                format!("c-{i}")
            };
            manager.record(&image, QuotaKind::Produce, "alice", &client, 7);
        }
        // No quota applies to fetches: nothing is counted for them.
        manager.record(&image, QuotaKind::Fetch, "alice", "c-0", 7);
        let stats = manager.entity_stats();
        assert_eq!(stats.len(), ENTITY_SERIES_MAX + 1);
        let get = |client: &str| {
            stats
                .iter()
                .find(|((_, _, c), _)| c == client)
                .map(|(k, s)| (k.clone(), *s))
                .unwrap()
        };
        let (key, first) = get("c-0");
        assert_eq!(key, ("Produce", String::new(), "c-0".to_string()));
        assert_eq!(first.recorded, 20_000);
        assert_eq!(
            (first.throttled, first.throttle_ms),
            (1, u64::from(throttle))
        );
        assert_eq!(get(&long[..ENTITY_LABEL_BYTES_MAX]).1.recorded, 7);
        // Past the cap: ten entities summed under <other>.
        let (key, other) = get(OTHER_ENTITY);
        assert_eq!(key.1, OTHER_ENTITY);
        assert_eq!(other.recorded, 70);
        // The per-type totals still count everything.
        assert_eq!(
            manager.stats()[0].1.recorded(),
            20_000 + 7 * (ENTITY_SERIES_MAX as u64 + 9)
        );
    }
}
