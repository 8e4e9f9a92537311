//! The broker's metrics: what is recorded as requests are served (`request.rs`: rates,
//! errors, latency split, bytes and records per topic), what the storage layer reports
//! through the file-system seam (`fs.rs`: fsync latency) and the syncer (flush latency),
//! the counters the replication layer calls ([`ReplicationMetrics`]), the transaction
//! coordinator's stopped marker jobs (`txn_markers.rs`), and what is read at
//! scrape time from where it already lives (`collect.rs`: partitions and leaders from the
//! metadata image, log sizes, consumer lag from the group coordinators, connections,
//! controller state, the process). `health.rs` answers liveness and readiness. The HTTP
//! listener that serves them is `crate::http`.
//!
//! Names follow Kafka's MBeans the way the common JMX exporter configurations render them
//! (`kafka_server_brokertopicmetrics_bytesin_total{topic=...}`), so existing dashboards
//! translate; `docs/METRICS.md` maps each one.
//!
//! **Invariants.** Recording on the request path is relaxed atomic adds plus, per topic, a
//! shared-lock map lookup; it never allocates once a series exists, never blocks and never
//! fails. Every label set is bounded (`strom.metrics.series.max` per family; topics come
//! from the metadata image or are refused into one overflow series), and per-partition
//! series can be turned off (`strom.metrics.partition.enable`).

mod collect;
mod config;
mod errors;
pub mod fs;
pub mod health;
mod request;
mod txn_markers;

use std::sync::Arc;

use strom_metrics::{Counter, Family, Histogram};

pub use collect::{group_offsets, quorum_gauges, scrape, GROUPS_WAIT};
pub use config::{HttpAuthentication, HttpListener, MetricsConfig};
pub use request::{remote, RequestTrace, REMOTE};
pub use txn_markers::TxnMarkerMetrics;

/// Per-topic traffic, as Kafka's `BrokerTopicMetrics` (one set per topic, one for all).
#[derive(Debug, Default)]
pub struct TopicCounters {
    /// Record bytes appended by producers (`BytesInPerSec`).
    pub bytes_in: Counter,
    /// Records appended by producers (`MessagesInPerSec`).
    pub messages_in: Counter,
    /// Record bytes sent to consumers (`BytesOutPerSec`).
    pub bytes_out: Counter,
    /// Records sent to consumers, counted as offsets spanned by the batches sent.
    pub messages_out: Counter,
    /// Record bytes sent to follower replicas (`ReplicationBytesOutPerSec`).
    pub replication_bytes_out: Counter,
    /// Partitions produced to (`TotalProduceRequestsPerSec`, counted per partition as Kafka).
    pub produce_requests: Counter,
    /// Partitions whose produce failed (`FailedProduceRequestsPerSec`).
    pub failed_produce_requests: Counter,
    /// Partitions fetched (`TotalFetchRequestsPerSec`).
    pub fetch_requests: Counter,
    /// Partitions whose fetch failed (`FailedFetchRequestsPerSec`).
    pub failed_fetch_requests: Counter,
}

/// The counters the replication layer increments, through the process-wide [`REPLICATION`]
/// (`crate::metrics::REPLICATION.isr_shrunk()`), so that no replication type has to carry
/// a handle: `Partition::on_alter_reply` records them as the controller answers.
#[derive(Debug, Default)]
pub struct ReplicationMetrics {
    /// ISR shrinks of partitions this broker leads (`ReplicaManager.IsrShrinksPerSec`).
    pub isr_shrinks: Counter,
    /// ISR expansions of partitions this broker leads (`ReplicaManager.IsrExpandsPerSec`).
    pub isr_expands: Counter,
    /// AlterPartition requests that failed (`ReplicaManager.FailedIsrUpdatesPerSec`).
    pub failed_isr_updates: Counter,
}

/// The replication layer's counters (process-wide: one broker per process outside tests).
pub static REPLICATION: ReplicationMetrics = ReplicationMetrics {
    isr_shrinks: Counter::new(),
    isr_expands: Counter::new(),
    failed_isr_updates: Counter::new(),
};

/// The storage latencies (process-wide: fsyncs are timed at the file-system seam, which
/// every log of the process shares).
pub static STORAGE: std::sync::LazyLock<StorageMetrics> =
    std::sync::LazyLock::new(StorageMetrics::default);

/// Runs one flush of a partition log, timing it into [`STORAGE`] (`LogFlushRateAndTimeMs`).
pub fn timed_flush<T>(flush: impl FnOnce() -> T) -> T {
    let started = std::time::Instant::now();
    let result = flush();
    STORAGE.log_flush.observe_duration(started.elapsed());
    result
}

impl ReplicationMetrics {
    /// One ISR shrink of a led partition.
    pub fn isr_shrunk(&self) {
        self.isr_shrinks.inc();
    }

    /// One ISR expansion of a led partition.
    pub fn isr_expanded(&self) {
        self.isr_expands.inc();
    }

    /// One ISR update the controller refused or that timed out.
    pub fn isr_update_failed(&self) {
        self.failed_isr_updates.inc();
    }
}

/// Durations the storage layer reports.
#[derive(Debug)]
pub struct StorageMetrics {
    /// Every fsync of a partition's files (`fs.rs`), by what was synced.
    pub fsync_log: Histogram,
    pub fsync_index: Histogram,
    pub fsync_dir: Histogram,
    pub fsync_other: Histogram,
    /// Every flush of a partition log (all its fsyncs together), Kafka's
    /// `LogFlushStats.LogFlushRateAndTimeMs`.
    pub log_flush: Histogram,
}

impl Default for StorageMetrics {
    fn default() -> Self {
        StorageMetrics {
            fsync_log: Histogram::latency(),
            fsync_index: Histogram::latency(),
            fsync_dir: Histogram::latency(),
            fsync_other: Histogram::latency(),
            log_flush: Histogram::latency(),
        }
    }
}

/// Connection counters (the gauge of open connections is read from `limits.rs`).
#[derive(Debug, Default)]
pub struct ConnectionMetrics {
    /// Connections accepted and admitted (`connection-creation-total`).
    pub created: Counter,
    /// Connections closed, for any reason (`connection-close-total`).
    pub closed: Counter,
    /// Connections refused at accept by `max.connections` or a per-address limit.
    pub refused: Counter,
    /// Connections held back at accept by a connection creation rate (KIP-612).
    pub creation_throttled: Counter,
    /// Connections closed unserved, after a delay, by their address's
    /// `connection_creation_rate` quota (KIP-612).
    pub ip_throttled: Counter,
    /// SASL exchanges that succeeded (`successful-authentication-total`).
    pub successful_authentication: Counter,
    /// SASL exchanges, handshakes and client certificates refused
    /// (`failed-authentication-total`).
    pub failed_authentication: Counter,
    /// KIP-368 re-authentications (`successful-reauthentication-total`).
    pub successful_reauthentication: Counter,
    /// Failed re-authentications (`failed-reauthentication-total`).
    pub failed_reauthentication: Counter,
}

/// Everything the broker records, shared by every connection and task.
#[derive(Debug)]
pub struct BrokerMetrics {
    /// The bounds and switches.
    pub config: MetricsConfig,
    /// Per-API request rates, errors and latencies.
    pub requests: request::RequestMetrics,
    /// Traffic per topic (bounded by `series_max`; names come from requests, so a topic
    /// that does not exist is never recorded: its requests fail before any byte counts).
    pub topics: Family<String, TopicCounters>,
    /// Topic ids seen in requests (Produce and Fetch v13+) to their topic's counters.
    pub topic_ids: Family<uuid::Uuid, TopicRef>,
    /// Traffic of all topics together (the MBeans without a topic tag).
    pub all_topics: TopicCounters,
    /// Connections.
    pub connections: ConnectionMetrics,
    /// Completed rebalances of classic groups (one per generation: counted from the
    /// JoinGroup answer to the generation's leader).
    pub rebalances: Counter,
    /// Start-up and readiness flags.
    pub health: health::Health,
    /// Series a scrape left out at `series_max` (partitions, lag rows, groups).
    pub scrape_refused: Counter,
    /// Scrapes whose group collection timed out.
    pub scrape_group_timeouts: Counter,
    /// Transaction marker jobs stopped before every partition had its marker.
    pub txn_markers: TxnMarkerMetrics,
    /// What clients push (KIP-714), shown on `/metrics` and in the console.
    pub clients: crate::telemetry::ClientTelemetry,
}

/// The counters of the topic a topic id names, resolved once through the metadata image.
#[derive(Debug, Default)]
pub struct TopicRef(std::sync::OnceLock<Arc<TopicCounters>>);

impl BrokerMetrics {
    /// Empty metrics with these bounds.
    pub fn new(config: MetricsConfig) -> BrokerMetrics {
        let series_max = config.series_max;
        BrokerMetrics {
            requests: request::RequestMetrics::new(series_max),
            topics: Family::new(series_max),
            topic_ids: Family::new(series_max),
            all_topics: TopicCounters::default(),
            connections: ConnectionMetrics::default(),
            rebalances: Counter::new(),
            health: health::Health::default(),
            scrape_refused: Counter::new(),
            scrape_group_timeouts: Counter::new(),
            txn_markers: TxnMarkerMetrics::default(),
            clients: crate::telemetry::ClientTelemetry::new(
                config.client_instances_max,
                config.telemetry_max_bytes,
            ),
            config,
        }
    }

    /// The counters of the topic named `name`.
    pub fn topic(&self, name: &str) -> Arc<TopicCounters> {
        self.topics.get(name)
    }

    /// The counters of the topic with id `id`, looked up by name in `resolve` the first
    /// time; `None` for an id no topic has.
    pub fn topic_by_id(
        &self,
        id: uuid::Uuid,
        resolve: impl FnOnce() -> Option<String>,
    ) -> Option<Arc<TopicCounters>> {
        let slot = self.topic_ids.get(&id);
        if let Some(counters) = slot.0.get() {
            return Some(Arc::clone(counters));
        }
        let name = resolve()?;
        Some(Arc::clone(
            slot.0.get_or_init(|| self.topics.get(name.as_str())),
        ))
    }

    /// Forgets topics the image no longer has, so deleted topics stop being exposed and
    /// free their places.
    pub fn forget_topics(&self, image: &strom_meta::MetadataImage) {
        self.topics
            .retain(|name| image.topic_by_name(name).is_some());
        self.topic_ids.retain(|id| image.topic_by_id(*id).is_some());
    }
}
