//! Client metrics (KIP-714): the subscriptions clients are told about
//! (GetTelemetrySubscriptions), the metrics they push (PushTelemetry) and what `/metrics`
//! and the console show of them.
//!
//! **Subscriptions** are the `CLIENT_METRICS` config resources of the metadata image (keys
//! `metrics`, `interval.ms`, `match`, set with IncrementalAlterConfigs as with Kafka's
//! `kafka-client-metrics.sh`/`kafka-configs.sh`); [`validate`] checks them before they reach
//! the controller. A client instance's subscription is the union of the matching
//! subscriptions' metric prefixes with the shortest of their intervals, as Kafka computes it;
//! its id changes whenever that set changes, so a client holding an old id is told
//! UNKNOWN_SUBSCRIPTION_ID and asks again.
//!
//! **Pushes** are OTLP `MetricsData` protobuf, optionally compressed (zstd, lz4, gzip,
//! snappy, in that order of preference). The compressed payload and the decompressed one are
//! each bounded by `telemetry.max.bytes` (TELEMETRY_TOO_LARGE past it). [`decode_otlp`] is a
//! small hand decoder of only the fields used here (gauges and sums, their data points'
//! attributes and values); it walks the bytes without building the message, so memory is
//! bounded by the series it keeps, not by what the payload holds. Histograms and summaries
//! are skipped (neither the Java client nor librdkafka pushes them).
//!
//! **Bounds.** At most `strom.metrics.client.instances.max` client instances are kept (the
//! least recently seen one is dropped for a new one), each with at most
//! [`SERIES_PER_INSTANCE_MAX`] series of at most [`ATTRIBUTES_MAX`] attributes (names and
//! attributes bounded in bytes too, so a series is small whatever a push holds); an instance
//! unseen for `max(60 s, 3 × its push interval)` expires, as in Kafka. Refused series are
//! counted, never kept. Nothing here is persisted: pushed metrics are a view, not data.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use strom_meta::{ConfigResourceKind, MetadataImage};
use strom_metrics::{Counter, Kind, TextEncoder};
use uuid::Uuid;

/// Kafka's `interval.ms` default for a client-metrics subscription (5 minutes).
pub const INTERVAL_MS_DEFAULT: i32 = 5 * 60 * 1000;
/// The shortest and longest `interval.ms` Kafka accepts.
pub const INTERVAL_MS_MIN: i32 = 100;
pub const INTERVAL_MS_MAX: i32 = 3_600_000;
/// The keys of a client-metrics subscription.
pub const SUBSCRIPTION_KEYS: [&str; 3] = ["metrics", "interval.ms", "match"];
/// The `match` selectors Kafka allows.
pub const MATCH_SELECTORS: [&str; 6] = [
    "client_instance_id",
    "client_id",
    "client_software_name",
    "client_software_version",
    "client_source_address",
    "client_source_port",
];
/// Series kept per client instance; further series of a push are refused and counted.
pub const SERIES_PER_INSTANCE_MAX: usize = 500;
/// Attributes kept per data point (the rest are dropped from its labels).
pub const ATTRIBUTES_MAX: usize = 8;
/// Longest attribute value kept (longer ones are cut).
pub const ATTRIBUTE_VALUE_BYTES_MAX: usize = 128;
/// Longest attribute key kept (an attribute with a longer one is dropped: a key is a label
/// name, and cutting it could merge two).
pub const ATTRIBUTE_KEY_BYTES_MAX: usize = 128;
/// Longest metric name kept (a longer one refuses the series).
pub const METRIC_NAME_BYTES_MAX: usize = 200;
/// The least time an idle client instance is kept (Kafka's client-instance cache expiry).
pub const EXPIRY_MIN: Duration = Duration::from_secs(60);
/// The compression types accepted, in the broker's order of preference (Kafka's list).
pub const ACCEPTED_COMPRESSION: [i8; 4] = [4, 3, 1, 2];

/// Why a subscription's keys are refused, and whether Kafka calls it INVALID_CONFIG
/// (a bad `match` pattern) rather than INVALID_REQUEST (an unknown key, a bad interval).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub invalid_config: bool,
    pub message: String,
}

/// Checks one key of a client-metrics subscription (`value` `None`: the key is deleted).
pub fn validate(key: &str, value: Option<&str>) -> Result<(), Refusal> {
    let request = |message: String| Refusal {
        invalid_config: false,
        message,
    };
    if !SUBSCRIPTION_KEYS.contains(&key) {
        return Err(request(format!(
            "Unknown client metrics configuration: {key} (the keys are {})",
            SUBSCRIPTION_KEYS.join(", ")
        )));
    }
    let Some(value) = value else { return Ok(()) };
    match key {
        "interval.ms" => match value.trim().parse::<i32>() {
            Ok(ms) if (INTERVAL_MS_MIN..=INTERVAL_MS_MAX).contains(&ms) => Ok(()),
            _ => Err(request(format!(
                "Invalid value {value} for interval.ms, interval must be between 100 and \
                 3600000 (1 hour)"
            ))),
        },
        "match" => parse_match(value).map(|_| ()).map_err(|message| Refusal {
            invalid_config: true,
            message,
        }),
        _ => Ok(()),
    }
}

/// The comma-separated items of a list value, trimmed, without empty ones.
fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|i| !i.is_empty())
}

/// `selector=regex` pairs, each regex anchored (Kafka matches the whole value).
fn parse_match(value: &str) -> Result<Vec<(String, regex_lite::Regex)>, String> {
    let mut out = Vec::new();
    for item in list(value) {
        let illegal = || format!("Illegal client matching pattern: {item}");
        let mut parts = item.split('=');
        let (Some(selector), Some(pattern), None) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(illegal());
        };
        let selector = selector.trim();
        if !MATCH_SELECTORS.contains(&selector) {
            return Err(format!(
                "{} (selectors are {})",
                illegal(),
                MATCH_SELECTORS.join(", ")
            ));
        }
        let regex =
            regex_lite::Regex::new(&format!("^(?:{})$", pattern.trim())).map_err(|_| illegal())?;
        out.push((selector.to_string(), regex));
    }
    Ok(out)
}

/// One subscription as read from the image.
#[derive(Debug)]
struct Subscription {
    metrics: Vec<String>,
    interval_ms: i32,
    matches: Vec<(String, regex_lite::Regex)>,
}

/// What identifies a client instance for `match`.
#[derive(Debug, Clone)]
struct InstanceInfo {
    client_id: String,
    source: SocketAddr,
}

impl InstanceInfo {
    fn selector(&self, id: Uuid, selector: &str) -> String {
        match selector {
            "client_instance_id" => kafka_uuid(id),
            "client_id" => self.client_id.clone(),
            "client_source_address" => self.source.ip().to_string(),
            "client_source_port" => self.source.port().to_string(),
            // The connection does not keep what ApiVersions said; these match only "".
            _ => String::new(),
        }
    }
}

/// A client instance's subscription: what it is asked to push, how often, under which id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub subscription_id: i32,
    /// Metric name prefixes; `[""]` is every metric (Kafka's `*`), empty is none.
    pub metrics: Vec<String>,
    pub interval_ms: i32,
}

/// One pushed series' value.
#[derive(Debug, Clone, Copy)]
struct Value {
    value: f64,
    counter: bool,
}

#[derive(Debug)]
struct Instance {
    info: InstanceInfo,
    assigned: Assigned,
    last_get: Option<Instant>,
    last_push: Option<Instant>,
    last_seen: Instant,
    terminating: bool,
    pushes: u64,
    last_error: i16,
    /// (metric name, sorted attributes) to its value.
    series: BTreeMap<(String, Attributes), Value>,
}

impl Instance {
    fn expiry(&self) -> Duration {
        let interval = u64::try_from(self.assigned.interval_ms).unwrap_or(0);
        EXPIRY_MIN.max(Duration::from_millis(interval.saturating_mul(3)))
    }
}

#[derive(Debug, Default)]
struct State {
    instances: HashMap<Uuid, Instance>,
    /// The subscriptions parsed from the image, and the configs they were parsed from.
    parsed: Option<(SubscriptionConfigs, Vec<Subscription>)>,
}

/// Each subscription's keys, by subscription name, as the image holds them.
type SubscriptionConfigs = BTreeMap<String, BTreeMap<String, String>>;
/// A data point's attributes, sorted by key.
pub type Attributes = Vec<(String, String)>;
/// One series for the console: metric name, attributes, latest value.
pub type SeriesView = (String, Attributes, f64);
/// A family's samples at scrape: instance id, client id, attributes, value.
type Samples<'a> = Vec<(String, String, &'a [(String, String)], f64)>;

/// The client-metrics state of one broker.
#[derive(Debug)]
pub struct ClientTelemetry {
    state: Mutex<State>,
    instances_max: usize,
    /// `telemetry.max.bytes`.
    pub max_bytes: usize,
    /// Series refused by [`SERIES_PER_INSTANCE_MAX`] or a bad name.
    pub series_refused: Counter,
    /// Instances dropped to make room for a new one.
    pub instances_evicted: Counter,
    /// Pushes accepted.
    pub pushes: Counter,
}

/// The answer to a push.
#[derive(Debug, PartialEq, Eq)]
pub enum PushOutcome {
    Accepted,
    /// Kafka's error code and message.
    Refused(i16, String),
}

/// One client instance as the console shows it.
#[derive(Debug, Clone)]
pub struct InstanceView {
    pub id: Uuid,
    pub client_id: String,
    pub source: SocketAddr,
    pub subscription: Assigned,
    pub pushes: u64,
    pub last_push_ago: Option<Duration>,
    pub last_error: i16,
    pub series: Vec<SeriesView>,
}

/// Kafka's error codes used here.
mod code {
    pub const INVALID_REQUEST: i16 = 42;
    pub const INVALID_RECORD: i16 = 87;
    pub const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
    pub const UNKNOWN_SUBSCRIPTION_ID: i16 = 117;
    pub const TELEMETRY_TOO_LARGE: i16 = 118;
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
}

impl ClientTelemetry {
    pub fn new(instances_max: usize, max_bytes: usize) -> ClientTelemetry {
        ClientTelemetry {
            state: Mutex::new(State::default()),
            instances_max: instances_max.max(1),
            max_bytes,
            series_refused: Counter::new(),
            instances_evicted: Counter::new(),
            pushes: Counter::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// GetTelemetrySubscriptions: the instance's id (a new one for the zero id) and
    /// subscription, or THROTTLING_QUOTA_EXCEEDED when asked again within the push interval
    /// (unless the last push was refused for its subscription id or compression).
    pub fn get_subscription(
        &self,
        image: &MetadataImage,
        requested: Uuid,
        client_id: &str,
        source: SocketAddr,
    ) -> Result<(Uuid, Assigned), (Uuid, i16, String)> {
        let now = Instant::now();
        let mut state = self.lock();
        let id = if requested.is_nil() {
            loop {
                let id = Uuid::new_v4();
                if !state.instances.contains_key(&id) {
                    break id;
                }
            }
        } else {
            requested
        };
        let info = InstanceInfo {
            client_id: client_id.to_string(),
            source,
        };
        self.instance(&mut state, image, id, info, now);
        let Some(instance) = state.instances.get_mut(&id) else {
            return Err((id, code::INVALID_REQUEST, "no room for the client".into()));
        };
        let since = instance.last_get.max(instance.last_push);
        let interval = interval(&instance.assigned);
        let early = since.is_some_and(|t| now.duration_since(t) < interval);
        let excused = matches!(
            instance.last_error,
            code::UNKNOWN_SUBSCRIPTION_ID | code::UNSUPPORTED_COMPRESSION_TYPE
        );
        if early && !excused {
            return Err((
                id,
                code::THROTTLING_QUOTA_EXCEEDED,
                format!(
                    "Request from the client [{id}] arrived before the next push interval time"
                ),
            ));
        }
        instance.last_get = Some(now);
        instance.last_error = 0;
        Ok((id, instance.assigned.clone()))
    }

    /// PushTelemetry: checks the request as Kafka does, then decodes and keeps the metrics.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &self,
        image: &MetadataImage,
        id: Uuid,
        subscription_id: i32,
        terminating: bool,
        compression: i8,
        payload: &[u8],
        client_id: &str,
        source: SocketAddr,
    ) -> PushOutcome {
        if id.is_nil() || id == Uuid::from_u128(1) {
            return PushOutcome::Refused(
                code::INVALID_REQUEST,
                format!("Invalid request from the client [{id}], invalid client instance id"),
            );
        }
        let now = Instant::now();
        let checked = {
            let mut state = self.lock();
            let info = InstanceInfo {
                client_id: client_id.to_string(),
                source,
            };
            self.instance(&mut state, image, id, info, now);
            let Some(instance) = state.instances.get_mut(&id) else {
                return PushOutcome::Refused(
                    code::INVALID_REQUEST,
                    "no room for the client".into(),
                );
            };
            let checked = self.check_push(
                instance,
                subscription_id,
                terminating,
                compression,
                payload.len(),
                now,
            );
            instance.terminating = instance.terminating || terminating;
            if let Err((code, _)) = &checked {
                instance.last_error = *code;
            }
            checked
        };
        if let Err((code, message)) = checked {
            return PushOutcome::Refused(code, message);
        }
        // Decoded outside the lock: at most `max_bytes` of input, a bounded map of output.
        let decoded = strom_records::Compression::from_id(compression as u8)
            .ok()
            .ok_or_else(|| (code::UNSUPPORTED_COMPRESSION_TYPE, "unknown compression".to_string()))
            .and_then(|codec| {
                strom_records::decompress_bounded(codec, payload, self.max_bytes).map_err(|e| {
                    (
                        code::TELEMETRY_TOO_LARGE,
                        format!("telemetry from [{id}] does not decompress within telemetry.max.bytes ({}): {e}", self.max_bytes),
                    )
                })
            })
            .and_then(|plain| {
                let mut points = Points::default();
                decode_otlp(&plain, &mut points)
                    .map(|()| points)
                    .map_err(|e| (code::INVALID_RECORD, format!("telemetry from [{id}] is not OTLP metrics: {e}")))
            });
        let mut state = self.lock();
        let Some(instance) = state.instances.get_mut(&id) else {
            return PushOutcome::Accepted;
        };
        match decoded {
            Err((code, message)) => {
                instance.last_error = code;
                PushOutcome::Refused(code, message)
            }
            Ok(points) => {
                self.pushes.inc();
                instance.pushes += 1;
                instance.last_error = 0;
                self.series_refused.add(points.refused);
                for (key, point) in points.series {
                    let len = instance.series.len();
                    match instance.series.get_mut(&key) {
                        Some(kept) => {
                            if point.counter && point.delta {
                                kept.value += point.value;
                            } else {
                                kept.value = point.value;
                            }
                            kept.counter = point.counter;
                        }
                        None if len < SERIES_PER_INSTANCE_MAX => {
                            instance.series.insert(
                                key,
                                Value {
                                    value: point.value,
                                    counter: point.counter,
                                },
                            );
                        }
                        None => self.series_refused.inc(),
                    }
                }
                if terminating {
                    // The client is closing: keep its last values until it expires.
                    instance.last_seen = now;
                }
                PushOutcome::Accepted
            }
        }
    }

    fn check_push(
        &self,
        instance: &mut Instance,
        subscription_id: i32,
        terminating: bool,
        compression: i8,
        bytes: usize,
        now: Instant,
    ) -> Result<(), (i16, String)> {
        if instance.terminating {
            return Err((
                code::INVALID_REQUEST,
                "the client sent a terminating push before; no further push is accepted".into(),
            ));
        }
        // A push right after GetTelemetrySubscriptions is accepted whatever the jitter.
        let after_get = match (instance.last_get, instance.last_push) {
            (Some(get), Some(push)) => get > push,
            (Some(_), None) => true,
            _ => false,
        };
        let due = after_get
            || instance
                .last_push
                .is_none_or(|t| now.duration_since(t) >= interval(&instance.assigned));
        if !due && !terminating {
            return Err((
                code::THROTTLING_QUOTA_EXCEEDED,
                "Request from the client arrived before the next push interval time".into(),
            ));
        }
        if due {
            instance.last_push = Some(now);
        }
        if subscription_id != instance.assigned.subscription_id {
            return Err((
                code::UNKNOWN_SUBSCRIPTION_ID,
                "Unknown client subscription id for the client".into(),
            ));
        }
        if !(0..=4).contains(&compression) {
            return Err((
                code::UNSUPPORTED_COMPRESSION_TYPE,
                format!("Unknown compression type [{compression}]"),
            ));
        }
        if bytes > self.max_bytes {
            return Err((
                code::TELEMETRY_TOO_LARGE,
                format!(
                    "Telemetry request is larger than the maximum allowed size [{}] \
                     (telemetry.max.bytes)",
                    self.max_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Finds or creates the instance, re-evaluating its subscription against the image
    /// (a changed subscription resets it as Kafka recreates the instance).
    fn instance(
        &self,
        state: &mut State,
        image: &MetadataImage,
        id: Uuid,
        info: InstanceInfo,
        now: Instant,
    ) {
        state
            .instances
            .retain(|_, instance| now.duration_since(instance.last_seen) < instance.expiry());
        refresh_subscriptions(state, image);
        let subscriptions = state.parsed.as_ref().map_or(&[][..], |(_, s)| &s[..]);
        let info = state
            .instances
            .get(&id)
            .map_or(info, |instance| instance.info.clone());
        let assigned = assign(subscriptions, id, &info);
        if let Some(instance) = state.instances.get_mut(&id) {
            instance.last_seen = now;
            if instance.assigned != assigned {
                instance.assigned = assigned;
                instance.last_get = None;
                instance.last_push = None;
            }
            return;
        }
        if state.instances.len() >= self.instances_max {
            let oldest = state
                .instances
                .iter()
                .min_by_key(|(_, i)| i.last_seen)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                state.instances.remove(&oldest);
                self.instances_evicted.inc();
            }
        }
        state.instances.insert(
            id,
            Instance {
                info,
                assigned,
                last_get: None,
                last_push: None,
                last_seen: now,
                terminating: false,
                pushes: 0,
                last_error: 0,
                series: BTreeMap::new(),
            },
        );
    }

    /// The instances kept, for the console (expired ones left out).
    pub fn instances(&self) -> Vec<InstanceView> {
        let now = Instant::now();
        let state = self.lock();
        let mut out: Vec<InstanceView> = state
            .instances
            .iter()
            .filter(|(_, i)| now.duration_since(i.last_seen) < i.expiry())
            .map(|(id, i)| InstanceView {
                id: *id,
                client_id: i.info.client_id.clone(),
                source: i.info.source,
                subscription: i.assigned.clone(),
                pushes: i.pushes,
                last_push_ago: i.last_push.map(|t| now.duration_since(t)),
                last_error: i.last_error,
                series: i
                    .series
                    .iter()
                    .map(|((name, attrs), v)| (name.clone(), attrs.clone(), v.value))
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| (&a.client_id, a.id).cmp(&(&b.client_id, b.id)));
        out
    }

    /// Writes the pushed metrics: each OTLP metric as a family named
    /// `kafka_client_<name with every other character as _>` (monotonic sums as counters
    /// with `_total`), labelled with the client instance, its client id and the data point's
    /// attributes; and the state's own counters.
    pub fn encode(&self, e: &mut TextEncoder) {
        let now = Instant::now();
        let state = self.lock();
        let live: Vec<(&Uuid, &Instance)> = state
            .instances
            .iter()
            .filter(|(_, i)| now.duration_since(i.last_seen) < i.expiry())
            .collect();
        e.family(
            "strom_client_metrics_instances",
            Kind::Gauge,
            "Client instances (KIP-714) whose pushed metrics are kept.",
        );
        e.int("strom_client_metrics_instances", &[], live.len() as i128);
        for (name, help, value) in [
            (
                "strom_client_metrics_pushes_total",
                "PushTelemetry requests whose metrics were kept.",
                self.pushes.get(),
            ),
            (
                "strom_client_metrics_series_refused_total",
                "Pushed series left out (per-instance cap, bad names).",
                self.series_refused.get(),
            ),
            (
                "strom_client_metrics_instances_evicted_total",
                "Client instances dropped to make room (strom.metrics.client.instances.max).",
                self.instances_evicted.get(),
            ),
        ] {
            e.family(name, Kind::Counter, help);
            e.int(name, &[], i128::from(value));
        }
        // Group by family so every family's samples follow its header.
        let mut families: BTreeMap<String, (bool, Samples<'_>)> = BTreeMap::new();
        for (id, instance) in &live {
            for ((name, attrs), value) in &instance.series {
                let mut family = format!("kafka_client_{}", sanitize(name));
                if value.counter {
                    family.push_str("_total");
                }
                families
                    .entry(family)
                    .or_insert((value.counter, Vec::new()))
                    .1
                    .push((
                        kafka_uuid(**id),
                        instance.info.client_id.clone(),
                        attrs,
                        value.value,
                    ));
            }
        }
        for (family, (counter, samples)) in families {
            let kind = if counter { Kind::Counter } else { Kind::Gauge };
            e.family(&family, kind, "Pushed by clients (KIP-714 client metrics).");
            for (id, client_id, attrs, value) in samples {
                let mut labels: Vec<(&str, &str)> =
                    vec![("client_instance_id", &id), ("client_id", &client_id)];
                labels.extend(attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                e.float(&family, &labels, value);
            }
        }
    }

    /// The number of instances kept (tests).
    pub fn instance_count(&self) -> usize {
        self.lock().instances.len()
    }
}

/// A UUID as Kafka writes it (`Uuid.toString()`): URL-safe base64 of its 16 bytes, no
/// padding, as clients print their client instance id.
pub fn kafka_uuid(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 63;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

fn interval(assigned: &Assigned) -> Duration {
    Duration::from_millis(u64::try_from(assigned.interval_ms).unwrap_or(0))
}

/// Re-parses the image's subscriptions when they changed.
fn refresh_subscriptions(state: &mut State, image: &MetadataImage) {
    // Compared in place: a push or a GetTelemetrySubscriptions copies nothing unless the
    // subscriptions changed.
    let unchanged = state.parsed.as_ref().is_some_and(|(seen, _)| {
        seen.iter()
            .map(|(name, configs)| (name.as_str(), configs))
            .eq(image.configs_of_kind(ConfigResourceKind::ClientMetrics))
    });
    if unchanged {
        return;
    }
    let current: BTreeMap<String, BTreeMap<String, String>> = image
        .configs_of_kind(ConfigResourceKind::ClientMetrics)
        .map(|(name, configs)| (name.to_string(), configs.clone()))
        .collect();
    let parsed = current
        .values()
        .filter_map(|configs| {
            let metrics = configs
                .get("metrics")
                .map(|v| list(v).map(str::to_string).collect())
                .unwrap_or_default();
            let interval_ms = configs
                .get("interval.ms")
                .and_then(|v| v.trim().parse::<i32>().ok())
                .filter(|ms| (INTERVAL_MS_MIN..=INTERVAL_MS_MAX).contains(ms))
                .unwrap_or(INTERVAL_MS_DEFAULT);
            // A stored pattern that does not parse (validated on the way in) matches nobody.
            let matches = parse_match(configs.get("match").map_or("", String::as_str)).ok()?;
            Some(Subscription {
                metrics,
                interval_ms,
                matches,
            })
        })
        .collect();
    state.parsed = Some((current, parsed));
}

/// The union of the matching subscriptions, as Kafka's `createClientInstance` computes it.
fn assign(subscriptions: &[Subscription], id: Uuid, info: &InstanceInfo) -> Assigned {
    let mut metrics = std::collections::BTreeSet::new();
    let mut all = false;
    let mut interval_ms = INTERVAL_MS_DEFAULT;
    for s in subscriptions {
        let matched = s
            .matches
            .iter()
            .all(|(selector, regex)| regex.is_match(&info.selector(id, selector)));
        if !matched {
            continue;
        }
        all = all || s.metrics.iter().any(|m| m == "*");
        metrics.extend(s.metrics.iter().cloned());
        interval_ms = interval_ms.min(s.interval_ms);
    }
    let metrics: Vec<String> = if all {
        // KIP-714: a single empty prefix asks for every metric.
        vec![String::new()]
    } else {
        metrics.into_iter().collect()
    };
    let mut digest = metrics.join(",").into_bytes();
    digest.extend_from_slice(format!("|{interval_ms}").as_bytes());
    let crc = crc32c::crc32c(&digest);
    let (high, low) = id.as_u64_pair();
    let hash = (high ^ low) as u32 ^ ((high ^ low) >> 32) as u32;
    Assigned {
        subscription_id: (crc ^ hash) as i32,
        metrics,
        interval_ms,
    }
}

/// A metric name or attribute key as a Prometheus name: `[a-zA-Z0-9_]`, the rest `_`.
fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// One decoded data point.
#[derive(Debug, Clone, Copy)]
struct Point {
    value: f64,
    counter: bool,
    delta: bool,
}

/// The series of one push, bounded by [`SERIES_PER_INSTANCE_MAX`].
#[derive(Debug, Default)]
pub struct Points {
    series: BTreeMap<(String, Attributes), Point>,
    refused: u64,
}

impl Points {
    /// The number of series decoded (tests).
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The value of `name` with exactly `attrs` (tests).
    pub fn value(&self, name: &str, attrs: &[(&str, &str)]) -> Option<f64> {
        let attrs: Vec<(String, String)> = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.series.get(&(name.to_string(), attrs)).map(|p| p.value)
    }

    fn add(&mut self, name: &str, attrs: Vec<(String, String)>, point: Point) {
        let key = (name.to_string(), attrs);
        if self.series.contains_key(&key) || self.series.len() < SERIES_PER_INSTANCE_MAX {
            self.series.insert(key, point);
        } else {
            self.refused += 1;
        }
    }
}

/// Why a payload is not OTLP metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(&'static str);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Protobuf wire values.
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

/// Walks the fields of one protobuf message.
struct Fields<'a> {
    rest: &'a [u8],
}

fn varint(buf: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or(DecodeError("truncated varint"))?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError("varint longer than 10 bytes"))
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Field<'a>), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let mut step = || -> Result<(u64, Field<'a>), DecodeError> {
            let key = varint(&mut self.rest)?;
            let number = key >> 3;
            let field = match key & 7 {
                0 => Field::Varint(varint(&mut self.rest)?),
                1 => {
                    let (bytes, rest) = self
                        .rest
                        .split_at_checked(8)
                        .ok_or(DecodeError("truncated fixed64"))?;
                    self.rest = rest;
                    let mut raw = [0u8; 8];
                    raw.copy_from_slice(bytes);
                    Field::Fixed64(u64::from_le_bytes(raw))
                }
                2 => {
                    let len = usize::try_from(varint(&mut self.rest)?)
                        .map_err(|_| DecodeError("length too large"))?;
                    let (bytes, rest) = self
                        .rest
                        .split_at_checked(len)
                        .ok_or(DecodeError("length past the end"))?;
                    self.rest = rest;
                    Field::Bytes(bytes)
                }
                5 => {
                    let (_, rest) = self
                        .rest
                        .split_at_checked(4)
                        .ok_or(DecodeError("truncated fixed32"))?;
                    self.rest = rest;
                    Field::Fixed32
                }
                _ => return Err(DecodeError("unsupported wire type")),
            };
            Ok((number, field))
        };
        let item = step();
        if item.is_err() {
            self.rest = &[];
        }
        Some(item)
    }
}

fn fields(buf: &[u8]) -> Fields<'_> {
    Fields { rest: buf }
}

/// The length-delimited fields numbered `number` of a message.
fn each_bytes<'a>(
    buf: &'a [u8],
    number: u64,
    mut f: impl FnMut(&'a [u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    for item in fields(buf) {
        if let (n, Field::Bytes(bytes)) = item? {
            if n == number {
                f(bytes)?;
            }
        }
    }
    Ok(())
}

/// Decodes an OTLP `MetricsData` message into `out`: every gauge's and sum's data points.
pub fn decode_otlp(buf: &[u8], out: &mut Points) -> Result<(), DecodeError> {
    // MetricsData.resource_metrics = 1; ResourceMetrics.scope_metrics = 2;
    // ScopeMetrics.metrics = 2.
    each_bytes(buf, 1, |resource_metrics| {
        each_bytes(resource_metrics, 2, |scope_metrics| {
            each_bytes(scope_metrics, 2, |metric| decode_metric(metric, out))
        })
    })
}

/// Metric: name = 1, gauge = 5, sum = 7 (histogram 9, exponential 10, summary 11 skipped).
fn decode_metric(buf: &[u8], out: &mut Points) -> Result<(), DecodeError> {
    let mut name: Option<&str> = None;
    for item in fields(buf) {
        if let (1, Field::Bytes(bytes)) = item? {
            name = Some(
                std::str::from_utf8(bytes).map_err(|_| DecodeError("metric name is not UTF-8"))?,
            );
        }
    }
    let Some(name) = name.filter(|n| !n.is_empty() && n.len() <= METRIC_NAME_BYTES_MAX) else {
        out.refused += 1;
        return Ok(());
    };
    for item in fields(buf) {
        match item? {
            (5, Field::Bytes(gauge)) => each_bytes(gauge, 1, |point| {
                decode_point(point, name, false, false, out)
            })?,
            (7, Field::Bytes(sum)) => {
                // Sum: data_points = 1, aggregation_temporality = 2 (1 delta, 2 cumulative),
                // is_monotonic = 3.
                let mut delta = false;
                let mut monotonic = false;
                for item in fields(sum) {
                    match item? {
                        (2, Field::Varint(t)) => delta = t == 1,
                        (3, Field::Varint(m)) => monotonic = m != 0,
                        _ => {}
                    }
                }
                each_bytes(sum, 1, |point| {
                    decode_point(point, name, monotonic, delta, out)
                })?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// NumberDataPoint: attributes = 7, as_double = 4, as_int = 6.
fn decode_point(
    buf: &[u8],
    name: &str,
    counter: bool,
    delta: bool,
    out: &mut Points,
) -> Result<(), DecodeError> {
    let mut value = None;
    let mut attrs: Vec<(String, String)> = Vec::new();
    for item in fields(buf) {
        match item? {
            (4, Field::Fixed64(bits)) => value = Some(f64::from_bits(bits)),
            (6, Field::Fixed64(bits)) => value = Some(bits as i64 as f64),
            (7, Field::Bytes(kv)) if attrs.len() < ATTRIBUTES_MAX => {
                if let Some(attr) = decode_attribute(kv)? {
                    attrs.push(attr);
                }
            }
            _ => {}
        }
    }
    // The Java client reports an average with no samples as NaN: no value, not a series.
    let Some(value) = value.filter(|v| v.is_finite()) else {
        return Ok(());
    };
    attrs.sort();
    attrs.dedup_by(|a, b| a.0 == b.0);
    out.add(
        name,
        attrs,
        Point {
            value,
            counter,
            delta,
        },
    );
    Ok(())
}

/// KeyValue: key = 1, value = 2 (AnyValue: string 1, bool 2, int 3, double 4).
fn decode_attribute(buf: &[u8]) -> Result<Option<(String, String)>, DecodeError> {
    let mut key = None;
    let mut value = None;
    for item in fields(buf) {
        match item? {
            (1, Field::Bytes(bytes)) if bytes.len() > ATTRIBUTE_KEY_BYTES_MAX => return Ok(None),
            (1, Field::Bytes(bytes)) => key = Some(String::from_utf8_lossy(bytes)),
            (2, Field::Bytes(any)) => {
                for item in fields(any) {
                    value = match item? {
                        (1, Field::Bytes(s)) => Some(String::from_utf8_lossy(s).into_owned()),
                        (2, Field::Varint(b)) => Some((b != 0).to_string()),
                        (3, Field::Varint(i)) => Some((i as i64).to_string()),
                        (4, Field::Fixed64(bits)) => Some(f64::from_bits(bits).to_string()),
                        _ => value,
                    };
                }
            }
            _ => {}
        }
    }
    let (Some(key), Some(mut value)) = (key, value) else {
        return Ok(None);
    };
    let key = sanitize(&key);
    if matches!(key.as_str(), "client_instance_id" | "client_id" | "le") {
        return Ok(None);
    }
    if value.len() > ATTRIBUTE_VALUE_BYTES_MAX {
        let mut cut = ATTRIBUTE_VALUE_BYTES_MAX;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
    }
    Ok(Some((key, value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny protobuf writer for the tests.
    fn tag(out: &mut Vec<u8>, number: u64, wire: u64) {
        put_varint(out, (number << 3) | wire);
    }
    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn bytes(out: &mut Vec<u8>, number: u64, b: &[u8]) {
        tag(out, number, 2);
        put_varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    fn point(value: f64, attrs: &[(&str, &str)]) -> Vec<u8> {
        let mut p = Vec::new();
        tag(&mut p, 3, 1);
        p.extend_from_slice(&7u64.to_le_bytes());
        tag(&mut p, 4, 1);
        p.extend_from_slice(&value.to_bits().to_le_bytes());
        for (k, v) in attrs {
            let mut any = Vec::new();
            bytes(&mut any, 1, v.as_bytes());
            let mut kv = Vec::new();
            bytes(&mut kv, 1, k.as_bytes());
            bytes(&mut kv, 2, &any);
            bytes(&mut p, 7, &kv);
        }
        p
    }
    fn metrics_data(metrics: &[Vec<u8>]) -> Vec<u8> {
        let mut scope = Vec::new();
        for m in metrics {
            bytes(&mut scope, 2, m);
        }
        let mut resource = Vec::new();
        bytes(&mut resource, 2, &scope);
        let mut data = Vec::new();
        bytes(&mut data, 1, &resource);
        data
    }

    #[test]
    fn decodes_gauges_and_sums_with_attributes() {
        let mut gauge = Vec::new();
        bytes(
            &mut gauge,
            1,
            &point(2.5, &[("topic", "t"), ("partition", "0")]),
        );
        let mut metric = Vec::new();
        bytes(
            &mut metric,
            1,
            b"org.apache.kafka.producer.record.queue.time.avg",
        );
        bytes(&mut metric, 5, &gauge);
        let mut sum = Vec::new();
        bytes(&mut sum, 1, &point(10.0, &[]));
        tag(&mut sum, 2, 0);
        put_varint(&mut sum, 1);
        tag(&mut sum, 3, 0);
        put_varint(&mut sum, 1);
        let mut metric2 = Vec::new();
        bytes(&mut metric2, 1, b"org.apache.kafka.producer.record.retries");
        bytes(&mut metric2, 7, &sum);
        let data = metrics_data(&[metric, metric2]);
        let mut points = Points::default();
        decode_otlp(&data, &mut points).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(
            points.value(
                "org.apache.kafka.producer.record.queue.time.avg",
                &[("partition", "0"), ("topic", "t")]
            ),
            Some(2.5)
        );
        let retries = points
            .series
            .get(&(
                "org.apache.kafka.producer.record.retries".to_string(),
                vec![],
            ))
            .unwrap();
        assert!(retries.counter && retries.delta);
        assert_eq!(retries.value, 10.0);
    }

    #[test]
    fn garbage_is_an_error_or_nothing_never_a_panic() {
        let mut points = Points::default();
        assert!(decode_otlp(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], &mut points).is_err());
        assert!(decode_otlp(&[0x0b], &mut points).is_err());
        for seed in 0u32..2000 {
            let data: Vec<u8> = (0..64u32)
                .map(|i| (seed.wrapping_mul(2654435761).wrapping_add(i * 40503) >> 7) as u8)
                .collect();
            let _ = decode_otlp(&data, &mut points);
        }
        assert!(points.len() <= SERIES_PER_INSTANCE_MAX);
    }

    #[test]
    fn long_attribute_keys_are_dropped() {
        let long = "k".repeat(ATTRIBUTE_KEY_BYTES_MAX + 1);
        let fits = "k".repeat(ATTRIBUTE_KEY_BYTES_MAX);
        let mut gauge = Vec::new();
        bytes(
            &mut gauge,
            1,
            &point(1.0, &[(&long, "a"), (&fits, "b"), ("topic", "t")]),
        );
        let mut metric = Vec::new();
        bytes(&mut metric, 1, b"m");
        bytes(&mut metric, 5, &gauge);
        let mut points = Points::default();
        decode_otlp(&metrics_data(&[metric]), &mut points).unwrap();
        assert_eq!(points.len(), 1);
        assert_eq!(
            points.value("m", &[(&fits, "b"), ("topic", "t")]),
            Some(1.0)
        );
    }

    #[test]
    fn series_per_push_are_capped() {
        let mut gauge = Vec::new();
        for i in 0..(SERIES_PER_INSTANCE_MAX + 10) {
            bytes(&mut gauge, 1, &point(1.0, &[("n", &i.to_string())]));
        }
        let mut metric = Vec::new();
        bytes(&mut metric, 1, b"m");
        bytes(&mut metric, 5, &gauge);
        let mut points = Points::default();
        decode_otlp(&metrics_data(&[metric]), &mut points).unwrap();
        assert_eq!(points.len(), SERIES_PER_INSTANCE_MAX);
        assert_eq!(points.refused, 10);
    }

    #[test]
    fn subscription_keys_are_validated_like_kafka() {
        assert!(validate("metrics", Some("org.apache.kafka.producer.")).is_ok());
        assert!(validate("interval.ms", Some("1000")).is_ok());
        assert!(
            !validate("interval.ms", Some("99"))
                .unwrap_err()
                .invalid_config
        );
        assert!(
            !validate("interval.ms", Some("x"))
                .unwrap_err()
                .invalid_config
        );
        assert!(!validate("bogus", Some("1")).unwrap_err().invalid_config);
        assert!(validate("match", Some("client_id=perf-.*,client_source_port=\\d+")).is_ok());
        assert!(
            validate("match", Some("nosuch=1"))
                .unwrap_err()
                .invalid_config
        );
        assert!(
            validate("match", Some("client_id=("))
                .unwrap_err()
                .invalid_config
        );
        assert!(
            validate("match", Some("client_id"))
                .unwrap_err()
                .invalid_config
        );
    }

    #[test]
    fn matching_and_union_of_subscriptions() {
        let info = InstanceInfo {
            client_id: "perf-1".into(),
            source: "127.0.0.1:5000".parse().unwrap(),
        };
        let id = Uuid::new_v4();
        let subs = vec![
            Subscription {
                metrics: vec!["a.".into()],
                interval_ms: 1000,
                matches: parse_match("client_id=perf-.*").unwrap(),
            },
            Subscription {
                metrics: vec!["b.".into()],
                interval_ms: 500,
                matches: parse_match("client_id=other").unwrap(),
            },
            Subscription {
                metrics: vec!["c.".into()],
                interval_ms: 2000,
                matches: Vec::new(),
            },
        ];
        let assigned = assign(&subs, id, &info);
        assert_eq!(assigned.metrics, vec!["a.".to_string(), "c.".to_string()]);
        assert_eq!(assigned.interval_ms, 1000);
        let none = assign(&[], id, &info);
        assert!(none.metrics.is_empty());
        assert_eq!(none.interval_ms, INTERVAL_MS_DEFAULT);
        assert_ne!(none.subscription_id, assigned.subscription_id);
        let all = assign(
            &[Subscription {
                metrics: vec!["*".into()],
                interval_ms: 100,
                matches: Vec::new(),
            }],
            id,
            &info,
        );
        assert_eq!(all.metrics, vec![String::new()]);
    }

    #[test]
    fn uuids_print_as_kafka_does() {
        // Kafka's Uuid.toString of these bytes (base64url, no padding).
        let id = Uuid::from_bytes([
            0x57, 0x37, 0x4b, 0xb9, 0xb1, 0x04, 0x49, 0x3a, 0xa9, 0x79, 0xa2, 0x20, 0xe9, 0x7a,
            0xf9, 0x90,
        ]);
        assert_eq!(kafka_uuid(id), "VzdLubEESTqpeaIg6Xr5kA");
        assert_eq!(kafka_uuid(Uuid::nil()), "AAAAAAAAAAAAAAAAAAAAAA");
    }

    #[test]
    fn instances_are_capped_and_expire() {
        let telemetry = ClientTelemetry::new(2, 1 << 20);
        let image = MetadataImage::default();
        let source: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for _ in 0..5 {
            telemetry
                .get_subscription(&image, Uuid::nil(), "c", source)
                .unwrap();
        }
        assert_eq!(telemetry.instance_count(), 2);
        assert_eq!(telemetry.instances_evicted.get(), 3);
    }

    #[test]
    fn push_checks_follow_kafka() {
        let telemetry = ClientTelemetry::new(10, 64);
        let image = MetadataImage::default();
        let source: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (id, assigned) = telemetry
            .get_subscription(&image, Uuid::nil(), "c", source)
            .unwrap();
        // Asked again at once: throttled.
        let again = telemetry
            .get_subscription(&image, id, "c", source)
            .unwrap_err();
        assert_eq!(again.1, code::THROTTLING_QUOTA_EXCEEDED);
        let wrong = telemetry.push(
            &image,
            id,
            assigned.subscription_id ^ 1,
            false,
            0,
            &[],
            "c",
            source,
        );
        assert!(matches!(
            wrong,
            PushOutcome::Refused(code::UNKNOWN_SUBSCRIPTION_ID, _)
        ));
        // The unknown-subscription error lets the client ask again at once.
        let (_, assigned) = telemetry.get_subscription(&image, id, "c", source).unwrap();
        let big = vec![0u8; 65];
        let too_big = telemetry.push(
            &image,
            id,
            assigned.subscription_id,
            false,
            0,
            &big,
            "c",
            source,
        );
        assert!(matches!(
            too_big,
            PushOutcome::Refused(code::TELEMETRY_TOO_LARGE, _)
        ));
        let early = telemetry.push(
            &image,
            id,
            assigned.subscription_id,
            false,
            0,
            &[],
            "c",
            source,
        );
        assert!(matches!(
            early,
            PushOutcome::Refused(code::THROTTLING_QUOTA_EXCEEDED, _)
        ));
        let last = telemetry.push(
            &image,
            id,
            assigned.subscription_id,
            true,
            0,
            &[],
            "c",
            source,
        );
        assert_eq!(last, PushOutcome::Accepted);
        let after = telemetry.push(
            &image,
            id,
            assigned.subscription_id,
            true,
            0,
            &[],
            "c",
            source,
        );
        assert!(matches!(
            after,
            PushOutcome::Refused(code::INVALID_REQUEST, _)
        ));
        let nil = telemetry.push(&image, Uuid::nil(), 0, false, 0, &[], "c", source);
        assert!(matches!(
            nil,
            PushOutcome::Refused(code::INVALID_REQUEST, _)
        ));
    }
}
