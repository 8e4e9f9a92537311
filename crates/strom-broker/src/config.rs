//! The broker's configuration: Kafka's `server.properties` keys and defaults, validated once
//! into [`BrokerConfig`]. Unknown keys are reported back as warnings, invalid values are an
//! error naming the key. Every supported key is documented in `docs/CONFIG.md`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use strom_log::{Durability, LogConfig};

use crate::config_keys::{self, Props};

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value that does not parse or is out of range.
    #[error("config {key}: invalid value {value:?}: {reason}")]
    InvalidValue {
        /// The Kafka key.
        key: String,
        /// The value given.
        value: String,
        /// What was expected.
        reason: String,
    },
}

/// One `listeners` / `advertised.listeners` entry: `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The listener name (`PLAINTEXT`, `SASL_SSL`, `INTERNAL`...).
    pub name: String,
    /// The host; empty means every interface (bind) or this machine's address (advertise).
    pub host: String,
    /// The port; 0 picks a free one at bind time.
    pub port: u16,
}

impl Listener {
    /// Parses `NAME://host:port` (IPv6 hosts in brackets).
    pub fn parse(key: &str, text: &str) -> Result<Listener, ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidValue {
            key: key.to_string(),
            value: text.to_string(),
            reason: reason.to_string(),
        };
        let (name, rest) = text
            .trim()
            .split_once("://")
            .ok_or_else(|| invalid("must be NAME://host:port entries, comma-separated"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| invalid("must be NAME://host:port entries, comma-separated"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| invalid("must be NAME://host:port with a port from 0 to 65535"))?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(
                "must be NAME://host:port with a name of letters, digits or _",
            ));
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(Listener {
            name: name.to_ascii_uppercase(),
            host: host.to_string(),
            port,
        })
    }

    /// The `host:port` string to bind (an empty host binds every interface).
    pub fn bind_address(&self) -> String {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// The broker's typed configuration. Field names carry their units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// `node.id` (alias `broker.id`).
    pub node_id: i32,
    /// `cluster.id` as reported in Metadata and DescribeCluster.
    pub cluster_id: String,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// The inter-broker listener among `listeners` (what the health line and metrics name).
    pub listener: Listener,
    /// The inter-broker listener among `advertised.listeners`.
    pub advertised_listener: Listener,
    /// Every listener served (`listeners` minus `controller.listener.names`), with its
    /// security protocol and settings, and the inter-broker client (`listeners.rs`).
    pub listeners: crate::listeners::ListenersConfig,
    /// `log.dirs` (alias `log.dir`); partitions live in the first one.
    pub log_dirs: Vec<PathBuf>,
    /// `num.partitions`: partitions of a topic created with -1 or auto-created.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// `socket.request.max.bytes`: larger frames close the connection.
    pub socket_request_max_bytes: usize,
    /// `max.connections`: connections served at once. At the limit a new connection closes
    /// the one idle longest, or is closed itself when none is idle (`limits.rs`).
    pub connections_max: usize,
    /// `max.connections.per.ip`: connections from one address; more are closed at accept.
    pub connections_max_per_ip: u32,
    /// `max.connections.per.ip.overrides`: `(host or IP, limit)` pairs in the order given
    /// (a later entry for the same host wins); hosts are resolved when the broker starts.
    pub connections_max_per_ip_overrides: Vec<(String, u32)>,
    /// `connections.max.idle.ms`: a connection with nothing to do for this long is closed
    /// (`None`: never, Kafka's negative value).
    pub connections_max_idle_ms: Option<u64>,
    /// `strom.request.receive.timeout.ms`: the longest a request may take to arrive, from
    /// its first byte to its last (time waiting for `queued.max.request.bytes` excluded).
    pub request_receive_timeout_ms: u64,
    /// `queued.max.request.bytes`: the broker-wide budget for request frames received and
    /// not yet handled (`None`: unbounded, Kafka's value of 0 or less).
    pub queued_max_request_bytes: Option<u64>,
    /// `log.retention.check.interval.ms`: how often retention, flush and compaction run.
    pub log_retention_check_interval_ms: u64,
    /// `log.cleaner.backoff.ms`: how often compaction passes run.
    pub log_cleaner_backoff_ms: u64,
    /// `log.flush.offset.checkpoint.interval.ms`: how often each log's checkpoint records
    /// how far it is fsynced (its recovery point), as Kafka's recovery-point checkpoint.
    pub log_flush_offset_checkpoint_interval_ms: u64,
    /// `group.initial.rebalance.delay.ms`: how long a new group's first rebalance waits for
    /// more members.
    pub group_initial_rebalance_delay_ms: i64,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets` when it is created.
    pub offsets_topic_num_partitions: i32,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`: the session
    /// timeouts a JoinGroup may ask for (others are INVALID_SESSION_TIMEOUT).
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size`: members per classic group (Kafka: unlimited, here 2^31-1).
    pub group_max_size: i32,
    /// `group.consumer.session.timeout.ms`: KIP-848 members not heard from for this long
    /// are fenced.
    pub group_consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`: how often KIP-848 members heartbeat.
    pub group_consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`: members per KIP-848 group (Kafka: unlimited, here 2^31-1).
    pub group_consumer_max_size: i32,
    /// `group.consumer.assignors`: server-side assignors by name (`uniform`, `range`, or
    /// Kafka's class names for them); the first is the default.
    pub group_consumer_assignors: Vec<String>,
    /// `group.streams.session.timeout.ms`: KIP-1071 members not heard from for this long
    /// are fenced.
    pub group_streams_session_timeout_ms: i32,
    /// `group.streams.heartbeat.interval.ms`: how often KIP-1071 members heartbeat.
    pub group_streams_heartbeat_interval_ms: i32,
    /// `group.streams.max.size`: members per streams group (Kafka: unlimited, here 2^31-1).
    pub group_streams_max_size: i32,
    /// `group.streams.num.standby.replicas`: standby copies of each task, at most
    /// `group.streams.max.standby.replicas`.
    pub group_streams_num_standby_replicas: i32,
    /// `group.share.session.timeout.ms`: share group members not heard from for this long
    /// are removed.
    pub group_share_session_timeout_ms: i32,
    /// `group.share.heartbeat.interval.ms`: how often share group members heartbeat.
    pub group_share_heartbeat_interval_ms: i32,
    /// `group.share.max.size`: members per share group.
    pub group_share_max_size: i32,
    /// `group.share.initialize.retry.interval.ms`: how long share partitions stay
    /// initializing before a heartbeat of their group asks for them again.
    pub group_share_initialize_retry_interval_ms: i32,
    /// The `group.{consumer,share}.{min,max}.*` bounds of the group configs
    /// (`group_configs.rs`).
    pub group_config_bounds: crate::group_configs::Bounds,
    /// `offsets.retention.minutes`: how long offsets outlive an Empty group (KIP-211).
    pub offsets_retention_minutes: i64,
    /// `offsets.retention.check.interval.ms`: how often offsets are checked for expiry.
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`: longer commit metadata is OFFSET_METADATA_TOO_LARGE.
    pub offset_metadata_max_bytes: i32,
    /// `fetch.max.bytes`: the most a Fetch response carries, whatever it asks (at least
    /// one batch is always returned).
    pub fetch_max_bytes: u64,
    /// `strom.fetch.wait.max.ms`: the longest a Fetch long poll waits, whatever it asks.
    pub fetch_wait_max_ms: u64,
    /// `strom.open.files.max`: cached open inactive segment files, shared by all logs.
    pub open_files_max: usize,
    /// `min.insync.replicas`: the default of the topic config of that name.
    pub min_insync_replicas: usize,
    /// `replica.lag.time.max.ms`: an ISR member not caught up for this long is dropped.
    pub replica_lag_time_max_ms: i64,
    /// `replica.fetch.max.bytes`: bytes a follower asks per partition (at least one batch
    /// always comes).
    pub replica_fetch_max_bytes: u64,
    /// `replica.fetch.min.bytes`: bytes a follower's fetch waits for.
    pub replica_fetch_min_bytes: u64,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch waits at the leader.
    pub replica_fetch_wait_max_ms: u64,
    /// `replica.fetch.response.max.bytes`: bytes a follower's fetch response may carry.
    pub replica_fetch_response_max_bytes: u64,
    /// `replica.fetch.backoff.ms`: a follower's pause after a fetch error.
    pub replica_fetch_backoff_ms: u64,
    /// `num.replica.fetchers`: fetcher tasks per source broker.
    pub num_replica_fetchers: usize,
    /// `replica.high.watermark.checkpoint.interval.ms`: how often the high watermarks are
    /// written to `replication-offset-checkpoint`.
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    /// `replica.socket.timeout.ms`: a follower's connect and request timeout (on top of
    /// the fetch wait).
    pub replica_socket_timeout_ms: u64,
    /// `inter.broker.listener.name`: the listener followers fetch through (the listener
    /// named PLAINTEXT by default, else the first one).
    pub inter_broker_listener_name: String,
    /// `broker.heartbeat.interval.ms`: how often the broker heartbeats to the controller.
    pub broker_heartbeat_interval_ms: u64,
    /// `strom.log.scrub.bytes.per.sec`: how fast the scrubber reads cold segments to verify
    /// their CRCs; 0 disables it.
    pub scrub_bytes_per_sec: u64,
    /// `strom.log.scrub.interval.ms`: the pause between the end of one scrub pass over every
    /// partition and the start of the next.
    pub scrub_interval_ms: u64,
    /// Topic-level defaults from the broker's `log.*` keys, as Kafka topic keys (the
    /// values DescribeConfigs reports with source DEFAULT or STATIC_BROKER_CONFIG).
    pub topic_defaults: BTreeMap<&'static str, String>,
    /// Topic keys among `topic_defaults` that `server.properties` set explicitly.
    pub topic_defaults_set: Vec<&'static str>,
    /// `topic_defaults` validated into the log's config (durability included).
    pub log_defaults: LogConfig,
    /// The keys `server.properties` (or an override) set, for DescribeConfigs' sources.
    pub keys_set: Vec<String>,
    // Coordinators in a cluster.
    /// `offsets.topic.replication.factor`: replicas of `__consumer_offsets` when it is
    /// created. Kafka's default is 3; Strom's embedded default is 1, as Kafka's sample
    /// `server.properties` sets it, so that a bare `strom server` serves groups. Until that
    /// many brokers are alive FindCoordinator answers COORDINATOR_NOT_AVAILABLE.
    pub offsets_topic_replication_factor: i16,
    /// The transaction coordinator's keys (`transaction.*`, `transactional.id.*`).
    pub transactions: TransactionsConfig,
    /// The share partitions' and share state topic's keys (`group.share.*`,
    /// `share.coordinator.*`).
    pub share: crate::share_partitions::ShareConfig,
    /// The HTTP listener and metrics keys (`strom.http.listeners`, `strom.metrics.*`).
    pub metrics: crate::metrics::MetricsConfig,
    /// `authorizer.class.name`, `super.users`, `allow.everyone.if.no.acl.found` (`authz.rs`).
    pub authorization: crate::authz::AuthzConfig,
    /// `quota.window.num`, `quota.window.size.seconds` (`quotas.rs`).
    pub quotas: crate::quotas::QuotaConfig,
    /// `delegation.token.*` (`tokens.rs`).
    pub tokens: crate::tokens::TokenConfig,
}

/// Broker keys that set a topic-level default (Kafka's `broker_synonym`s), from the table;
/// `log.roll.hours` and the retention units resolve separately.
fn topic_synonyms() -> impl Iterator<Item = (&'static str, &'static str)> {
    config_keys::KEYS.iter().filter_map(|key| match key.kind {
        config_keys::Kind::TopicDefault(topic) => Some((key.name, topic)),
        _ => None,
    })
}

const HOUR_MS: i64 = 3_600_000;
/// Strom's default `queued.max.request.bytes` (Kafka's is unbounded); never below
/// `socket.request.max.bytes`, so that the largest frame always fits.
pub const QUEUED_MAX_REQUEST_BYTES_DEFAULT: u64 = 256 * 1024 * 1024;

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// A KIP-848 group timing (`key`) checked against its broker-wide bounds, as Kafka's
/// `GroupCoordinatorConfig` checks them at start-up: `min <= max` and `min <= value <= max`.
/// (Per-group overrides of these keys are not served yet.)
fn consumer_group_timing(
    props: &Props<'_>,
    key: &str,
    min_key: &str,
    max_key: &str,
) -> Result<i32, ConfigError> {
    let min: i32 = props.int(min_key)?;
    let max: i32 = props.int(max_key)?;
    if max < min {
        return Err(invalid(
            max_key,
            &max.to_string(),
            &format!("must be at least {min_key} ({min})"),
        ));
    }
    let value: i32 = props.int(key)?;
    if value < min || value > max {
        return Err(invalid(
            key,
            &value.to_string(),
            &format!("must lie within {min_key} ({min}) and {max_key} ({max})"),
        ));
    }
    Ok(value)
}

/// `group.consumer.assignors` as short names (Kafka's class names accepted), each once, in
/// order; the table allows only the known ones.
fn assignors(props: &Props<'_>) -> Result<Vec<String>, ConfigError> {
    let mut names: Vec<String> = Vec::new();
    for item in props.list_of("group.consumer.assignors")? {
        let name = if item == "uniform" || item.ends_with(".UniformAssignor") {
            "uniform"
        } else {
            "range"
        };
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// The transaction coordinator's keys, Kafka's names and defaults (except the replication
/// factor and min ISR of `__transaction_state`, which follow the offsets topic's rule: 1 on a
/// single-node quorum, Kafka's 3 and 2 on a cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionsConfig {
    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state`.
    pub state_log_num_partitions: i32,
    /// `transaction.state.log.replication.factor`: its replicas when it is created.
    pub state_log_replication_factor: i16,
    /// `transaction.state.log.min.isr`: its `min.insync.replicas`.
    pub state_log_min_isr: i32,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may
    /// ask for (INVALID_TRANSACTION_TIMEOUT beyond).
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: an id with no transaction for this long is removed.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often transactions
    /// past their timeout are aborted (and expired ids removed).
    pub abort_timed_out_cleanup_interval_ms: i64,
    /// `transaction.partition.verification.enable` (KIP-890 part 1): a partition leader asks
    /// the coordinator whether a transactional batch's partition is in the ongoing
    /// transaction before it appends the batch.
    pub partition_verification_enable: bool,
    /// `producer.id.expiration.ms`: a partition forgets a producer with no open transaction
    /// whose last batch or marker is this old.
    pub producer_id_expiration_ms: i64,
    /// `producer.id.expiration.check.interval.ms`: how often partitions look for them.
    pub producer_id_expiration_check_interval_ms: u64,
}

impl TransactionsConfig {
    fn from_props(props: &Props<'_>) -> Result<Self, ConfigError> {
        let replication_default = default_offsets_topic_replication_factor(props);
        Ok(TransactionsConfig {
            state_log_num_partitions: props.int("transaction.state.log.num.partitions")?,
            state_log_replication_factor: props.int_or(
                "transaction.state.log.replication.factor",
                replication_default,
            )?,
            state_log_min_isr: props.int_or(
                "transaction.state.log.min.isr",
                i32::from(replication_default.min(2)),
            )?,
            max_timeout_ms: props.int("transaction.max.timeout.ms")?,
            transactional_id_expiration_ms: props.int("transactional.id.expiration.ms")?,
            abort_timed_out_cleanup_interval_ms: props
                .int("transaction.abort.timed.out.transaction.cleanup.interval.ms")?,
            partition_verification_enable: props
                .bool("transaction.partition.verification.enable")?,
            producer_id_expiration_ms: props.int("producer.id.expiration.ms")?,
            producer_id_expiration_check_interval_ms: props
                .int("producer.id.expiration.check.interval.ms")?,
        })
    }
}

/// Kafka's default replication factor of `__consumer_offsets`, 3, on a cluster; 1 on a node
/// that is its own whole quorum (no `controller.quorum.voters`, or only one voter, and no
/// `controller.quorum.bootstrap.servers`), so that a
/// bare `strom server` serves groups, as Kafka's sample single-node `server.properties` does
/// by setting 1. A cluster that forgot the key thus keeps its committed offsets on three
/// brokers, not on one.
fn default_offsets_topic_replication_factor(props: &Props<'_>) -> i16 {
    let voters = props.items("controller.quorum.voters").len();
    // A node that finds its quorum through bootstrap servers is part of a cluster.
    if voters > 1 || props.is_set("controller.quorum.bootstrap.servers") {
        3
    } else {
        1
    }
}

impl BrokerConfig {
    /// Validates Kafka `server.properties` pairs. Returns the config and the keys it did
    /// not recognise (the caller logs them as warnings; keys read by other parts of the
    /// binary, such as the metadata quorum's, are filtered there).
    pub fn from_props(
        map: &BTreeMap<String, String>,
    ) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        // Every value the table knows is checked first, in the one format.
        let unknown = config_keys::check(map)?;
        let props = Props::new(map);
        let node_id = match props.get("node.id") {
            Some(_) => props.int("node.id")?,
            None => props.int("broker.id")?,
        };
        let listeners = crate::listeners::parse(map)?;
        let inter_broker_listener_name = listeners.inter_broker_listener_name.clone();
        let find = |all: &[Listener]| {
            all.iter()
                .find(|l| l.name == inter_broker_listener_name)
                .cloned()
        };
        let served: Vec<Listener> = listeners
            .served
            .iter()
            .map(|s| s.listener.clone())
            .collect();
        let (Some(listener), Some(advertised_listener)) =
            (find(&served), find(&listeners.advertised))
        else {
            return Err(invalid(
                "inter.broker.listener.name",
                &inter_broker_listener_name,
                "must name one of this broker's listeners",
            ));
        };
        let log_dirs_text = props
            .get("log.dirs")
            .or_else(|| props.get("log.dir"))
            .unwrap_or_else(|| props.text("log.dirs"));
        let log_dirs: Vec<PathBuf> = log_dirs_text
            .split(',')
            .map(str::trim)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .collect();
        if log_dirs.is_empty() {
            return Err(invalid(
                "log.dirs",
                log_dirs_text,
                "needs at least one directory",
            ));
        }
        let (topic_defaults, topic_defaults_set) = topic_defaults(&props)?;
        let log_defaults =
            LogConfig::from_kafka_props(topic_defaults.iter().map(|(k, v)| (*k, v.as_str())))
                .map_err(|error| log_config_error(&topic_defaults_set, error))?;
        let config = BrokerConfig {
            node_id,
            // The table's default until `strom server` reads meta.properties (`storage.rs`).
            cluster_id: props.text("cluster.id").to_string(),
            rack: props.get("broker.rack").map(str::to_string),
            listener,
            advertised_listener,
            listeners,
            log_dirs,
            num_partitions: props.int("num.partitions")?,
            default_replication_factor: props.int("default.replication.factor")?,
            auto_create_topics_enable: props.bool("auto.create.topics.enable")?,
            delete_topic_enable: props.bool("delete.topic.enable")?,
            socket_request_max_bytes: props.int("socket.request.max.bytes")?,
            connections_max: props.int("max.connections")?,
            connections_max_per_ip: props.int::<i32>("max.connections.per.ip")?.unsigned_abs(),
            connections_max_per_ip_overrides: per_ip_overrides(&props)?,
            connections_max_idle_ms: u64::try_from(props.int::<i64>("connections.max.idle.ms")?)
                .ok(),
            request_receive_timeout_ms: props.int("strom.request.receive.timeout.ms")?,
            queued_max_request_bytes: None,
            log_retention_check_interval_ms: props.int("log.retention.check.interval.ms")?,
            log_cleaner_backoff_ms: props.int("log.cleaner.backoff.ms")?,
            log_flush_offset_checkpoint_interval_ms: props
                .int("log.flush.offset.checkpoint.interval.ms")?,
            group_initial_rebalance_delay_ms: props.int("group.initial.rebalance.delay.ms")?,
            offsets_topic_num_partitions: props.int("offsets.topic.num.partitions")?,
            group_min_session_timeout_ms: props.int("group.min.session.timeout.ms")?,
            group_max_session_timeout_ms: props.int("group.max.session.timeout.ms")?,
            group_max_size: props.int("group.max.size")?,
            group_consumer_session_timeout_ms: consumer_group_timing(
                &props,
                "group.consumer.session.timeout.ms",
                "group.consumer.min.session.timeout.ms",
                "group.consumer.max.session.timeout.ms",
            )?,
            group_consumer_heartbeat_interval_ms: consumer_group_timing(
                &props,
                "group.consumer.heartbeat.interval.ms",
                "group.consumer.min.heartbeat.interval.ms",
                "group.consumer.max.heartbeat.interval.ms",
            )?,
            group_consumer_max_size: props.int("group.consumer.max.size")?,
            group_consumer_assignors: assignors(&props)?,
            group_streams_session_timeout_ms: consumer_group_timing(
                &props,
                "group.streams.session.timeout.ms",
                "group.streams.min.session.timeout.ms",
                "group.streams.max.session.timeout.ms",
            )?,
            group_streams_heartbeat_interval_ms: consumer_group_timing(
                &props,
                "group.streams.heartbeat.interval.ms",
                "group.streams.min.heartbeat.interval.ms",
                "group.streams.max.heartbeat.interval.ms",
            )?,
            group_streams_max_size: props.int("group.streams.max.size")?,
            group_streams_num_standby_replicas: {
                let n: i32 = props.int("group.streams.num.standby.replicas")?;
                let max: i32 = props.int("group.streams.max.standby.replicas")?;
                if n > max {
                    return Err(invalid(
                        "group.streams.num.standby.replicas",
                        &n.to_string(),
                        &format!("must be at most group.streams.max.standby.replicas ({max})"),
                    ));
                }
                n
            },
            group_share_session_timeout_ms: consumer_group_timing(
                &props,
                "group.share.session.timeout.ms",
                "group.share.min.session.timeout.ms",
                "group.share.max.session.timeout.ms",
            )?,
            group_share_heartbeat_interval_ms: consumer_group_timing(
                &props,
                "group.share.heartbeat.interval.ms",
                "group.share.min.heartbeat.interval.ms",
                "group.share.max.heartbeat.interval.ms",
            )?,
            group_share_max_size: props.int("group.share.max.size")?,
            group_share_initialize_retry_interval_ms: props
                .int("group.share.initialize.retry.interval.ms")?,
            offsets_retention_minutes: props.int("offsets.retention.minutes")?,
            offsets_retention_check_interval_ms: props
                .int("offsets.retention.check.interval.ms")?,
            offset_metadata_max_bytes: props.int("offset.metadata.max.bytes")?,
            fetch_max_bytes: props.int("fetch.max.bytes")?,
            fetch_wait_max_ms: props.int("strom.fetch.wait.max.ms")?,
            open_files_max: props.int("strom.open.files.max")?,
            min_insync_replicas: props.int("min.insync.replicas")?,
            replica_lag_time_max_ms: props.int("replica.lag.time.max.ms")?,
            replica_fetch_max_bytes: props.int("replica.fetch.max.bytes")?,
            replica_fetch_min_bytes: props.int("replica.fetch.min.bytes")?,
            replica_fetch_wait_max_ms: props.int("replica.fetch.wait.max.ms")?,
            replica_fetch_response_max_bytes: props.int("replica.fetch.response.max.bytes")?,
            replica_fetch_backoff_ms: props.int("replica.fetch.backoff.ms")?,
            num_replica_fetchers: props.int("num.replica.fetchers")?,
            replica_high_watermark_checkpoint_interval_ms: props
                .int("replica.high.watermark.checkpoint.interval.ms")?,
            replica_socket_timeout_ms: props.int("replica.socket.timeout.ms")?,
            inter_broker_listener_name,
            broker_heartbeat_interval_ms: props.int("broker.heartbeat.interval.ms")?,
            scrub_bytes_per_sec: props.int("strom.log.scrub.bytes.per.sec")?,
            scrub_interval_ms: props.int("strom.log.scrub.interval.ms")?,
            topic_defaults,
            topic_defaults_set,
            log_defaults,
            keys_set: map.keys().cloned().collect(),
            offsets_topic_replication_factor: props.int_or(
                "offsets.topic.replication.factor",
                default_offsets_topic_replication_factor(&props),
            )?,
            transactions: TransactionsConfig::from_props(&props)?,
            group_config_bounds: crate::group_configs::Bounds::from_props(&props)?,
            share: crate::share_partitions::ShareConfig::from_props(
                &props,
                default_offsets_topic_replication_factor(&props),
            )?,
            metrics: crate::metrics::MetricsConfig::from_props(map)?,
            authorization: crate::authz::AuthzConfig::from_props(map)?,
            quotas: crate::quotas::QuotaConfig::from_props(map)?,
            tokens: crate::tokens::TokenConfig::from_props(&props)?,
        };
        let mut config = config;
        config.queued_max_request_bytes =
            queued_max_request_bytes(&props, config.socket_request_max_bytes)?;
        if config.connections_max_per_ip == 0 && config.connections_max_per_ip_overrides.is_empty()
        {
            return Err(invalid(
                "max.connections.per.ip",
                "0",
                "can be 0 only if max.connections.per.ip.overrides is set",
            ));
        }
        if config.replica_fetch_wait_max_ms > config.replica_socket_timeout_ms {
            return Err(invalid(
                "replica.fetch.wait.max.ms",
                &config.replica_fetch_wait_max_ms.to_string(),
                "must not exceed replica.socket.timeout.ms",
            ));
        }
        if config.group_consumer_heartbeat_interval_ms >= config.group_consumer_session_timeout_ms {
            return Err(invalid(
                "group.consumer.heartbeat.interval.ms",
                &config.group_consumer_heartbeat_interval_ms.to_string(),
                "must be less than group.consumer.session.timeout.ms",
            ));
        }
        if config.group_streams_heartbeat_interval_ms >= config.group_streams_session_timeout_ms {
            return Err(invalid(
                "group.streams.heartbeat.interval.ms",
                &config.group_streams_heartbeat_interval_ms.to_string(),
                "must be less than group.streams.session.timeout.ms",
            ));
        }
        if config.group_share_heartbeat_interval_ms >= config.group_share_session_timeout_ms {
            return Err(invalid(
                "group.share.heartbeat.interval.ms",
                &config.group_share_heartbeat_interval_ms.to_string(),
                "must be less than group.share.session.timeout.ms",
            ));
        }
        Ok((config, unknown))
    }

    /// Kafka's defaults plus the embedded single-node ones.
    pub fn default_single_node() -> BrokerConfig {
        match BrokerConfig::from_props(&BTreeMap::new()) {
            Ok((config, _)) => config,
            // The empty map always validates; a failure here is a bug in the defaults.
            Err(error) => unreachable!("default config invalid: {error}"),
        }
    }

    /// A config for tests: 127.0.0.1 port 0, the given data dir, small logs.
    pub fn test_min(data_dir: &std::path::Path) -> BrokerConfig {
        let mut map = BTreeMap::new();
        map.insert(
            "listeners".to_string(),
            "PLAINTEXT://127.0.0.1:0".to_string(),
        );
        map.insert("log.dirs".to_string(), data_dir.display().to_string());
        map.insert("log.segment.bytes".to_string(), "65536".to_string());
        map.insert("strom.fetch.wait.max.ms".to_string(), "5000".to_string());
        // In-process test brokers run side by side: no HTTP listener unless a test asks.
        map.insert("strom.http.listeners".to_string(), String::new());
        match BrokerConfig::from_props(&map) {
            Ok((config, _)) => config,
            Err(error) => unreachable!("test config invalid: {error}"),
        }
    }

    /// Every broker key this config serves with its effective value, for DescribeConfigs
    /// on the broker resource. The secrets (every [`config_keys::Kind::Password`] row, set
    /// or not, as Kafka lists its PASSWORD keys) are listed with an empty value: their
    /// values never leave the config.
    pub fn broker_entries(&self) -> Vec<(String, String)> {
        let listener = |l: &Listener| format!("{}://{}:{}", l.name, l.host, l.port);
        let mut out: Vec<(String, String)> = vec![
            ("node.id".into(), self.node_id.to_string()),
            ("broker.id".into(), self.node_id.to_string()),
            ("cluster.id".into(), self.cluster_id.clone()),
            (
                "listeners".into(),
                self.listeners
                    .served
                    .iter()
                    .map(|s| listener(&s.listener))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "advertised.listeners".into(),
                self.listeners
                    .advertised
                    .iter()
                    .map(listener)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "log.dirs".into(),
                self.log_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("num.partitions".into(), self.num_partitions.to_string()),
            (
                "delegation.token.max.lifetime.ms".into(),
                self.tokens.max_lifetime_ms.to_string(),
            ),
            (
                "delegation.token.expiry.time.ms".into(),
                self.tokens.expiry_time_ms.to_string(),
            ),
            (
                "delegation.token.expiry.check.interval.ms".into(),
                self.tokens.expiry_check_interval_ms.to_string(),
            ),
            (
                "default.replication.factor".into(),
                self.default_replication_factor.to_string(),
            ),
            (
                "auto.create.topics.enable".into(),
                self.auto_create_topics_enable.to_string(),
            ),
            (
                "delete.topic.enable".into(),
                self.delete_topic_enable.to_string(),
            ),
            (
                "socket.request.max.bytes".into(),
                self.socket_request_max_bytes.to_string(),
            ),
            ("max.connections".into(), self.connections_max.to_string()),
            (
                "max.connections.per.ip".into(),
                self.connections_max_per_ip.to_string(),
            ),
            (
                "max.connections.per.ip.overrides".into(),
                self.connections_max_per_ip_overrides
                    .iter()
                    .map(|(host, count)| format!("{host}:{count}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "connections.max.idle.ms".into(),
                self.connections_max_idle_ms
                    .map_or_else(|| "-1".to_string(), |ms| ms.to_string()),
            ),
            (
                "strom.request.receive.timeout.ms".into(),
                self.request_receive_timeout_ms.to_string(),
            ),
            (
                "queued.max.request.bytes".into(),
                self.queued_max_request_bytes
                    .map_or_else(|| "-1".to_string(), |bytes| bytes.to_string()),
            ),
            (
                "log.retention.check.interval.ms".into(),
                self.log_retention_check_interval_ms.to_string(),
            ),
            (
                "log.flush.offset.checkpoint.interval.ms".into(),
                self.log_flush_offset_checkpoint_interval_ms.to_string(),
            ),
            (
                "strom.fetch.wait.max.ms".into(),
                self.fetch_wait_max_ms.to_string(),
            ),
            (
                "strom.open.files.max".into(),
                self.open_files_max.to_string(),
            ),
            (
                "offsets.topic.replication.factor".into(),
                self.offsets_topic_replication_factor.to_string(),
            ),
            (
                "transaction.state.log.num.partitions".into(),
                self.transactions.state_log_num_partitions.to_string(),
            ),
            (
                "transaction.state.log.replication.factor".into(),
                self.transactions.state_log_replication_factor.to_string(),
            ),
            (
                "transaction.state.log.min.isr".into(),
                self.transactions.state_log_min_isr.to_string(),
            ),
            (
                "transaction.max.timeout.ms".into(),
                self.transactions.max_timeout_ms.to_string(),
            ),
            (
                "transactional.id.expiration.ms".into(),
                self.transactions.transactional_id_expiration_ms.to_string(),
            ),
            (
                "producer.id.expiration.ms".into(),
                self.transactions.producer_id_expiration_ms.to_string(),
            ),
            (
                "producer.id.expiration.check.interval.ms".into(),
                self.transactions
                    .producer_id_expiration_check_interval_ms
                    .to_string(),
            ),
            (
                "transaction.abort.timed.out.transaction.cleanup.interval.ms".into(),
                self.transactions
                    .abort_timed_out_cleanup_interval_ms
                    .to_string(),
            ),
            (
                "transaction.partition.verification.enable".into(),
                self.transactions.partition_verification_enable.to_string(),
            ),
            (
                "group.share.record.lock.duration.ms".into(),
                self.share.record_lock_duration_ms.to_string(),
            ),
            (
                "group.share.delivery.count.limit".into(),
                self.share.delivery_count_limit.to_string(),
            ),
            (
                "group.share.partition.max.record.locks".into(),
                self.share.partition_max_record_locks.to_string(),
            ),
            (
                "group.share.max.share.sessions".into(),
                self.share.max_share_sessions.to_string(),
            ),
            (
                "strom.share.partitions.max".into(),
                self.share.partitions_max.to_string(),
            ),
            (
                "strom.share.partition.idle.ms".into(),
                self.share.partition_idle_ms.to_string(),
            ),
            (
                "share.coordinator.state.topic.num.partitions".into(),
                self.share.state_topic_num_partitions.to_string(),
            ),
            (
                "share.coordinator.state.topic.replication.factor".into(),
                self.share.state_topic_replication_factor.to_string(),
            ),
            (
                "share.coordinator.state.topic.min.isr".into(),
                self.share.state_topic_min_isr.to_string(),
            ),
            (
                "share.coordinator.snapshot.update.records.per.snapshot".into(),
                self.share.snapshot_updates_max.to_string(),
            ),
            (
                "min.insync.replicas".into(),
                self.min_insync_replicas.to_string(),
            ),
            (
                "replica.lag.time.max.ms".into(),
                self.replica_lag_time_max_ms.to_string(),
            ),
            (
                "replica.fetch.max.bytes".into(),
                self.replica_fetch_max_bytes.to_string(),
            ),
            (
                "replica.fetch.min.bytes".into(),
                self.replica_fetch_min_bytes.to_string(),
            ),
            (
                "replica.fetch.wait.max.ms".into(),
                self.replica_fetch_wait_max_ms.to_string(),
            ),
            (
                "replica.fetch.response.max.bytes".into(),
                self.replica_fetch_response_max_bytes.to_string(),
            ),
            (
                "replica.fetch.backoff.ms".into(),
                self.replica_fetch_backoff_ms.to_string(),
            ),
            (
                "num.replica.fetchers".into(),
                self.num_replica_fetchers.to_string(),
            ),
            (
                "replica.high.watermark.checkpoint.interval.ms".into(),
                self.replica_high_watermark_checkpoint_interval_ms
                    .to_string(),
            ),
            (
                "replica.socket.timeout.ms".into(),
                self.replica_socket_timeout_ms.to_string(),
            ),
            (
                "inter.broker.listener.name".into(),
                self.inter_broker_listener_name.clone(),
            ),
            (
                "broker.heartbeat.interval.ms".into(),
                self.broker_heartbeat_interval_ms.to_string(),
            ),
            (
                "strom.log.scrub.bytes.per.sec".into(),
                self.scrub_bytes_per_sec.to_string(),
            ),
            (
                "strom.log.scrub.interval.ms".into(),
                self.scrub_interval_ms.to_string(),
            ),
        ];
        if let Some(rack) = &self.rack {
            out.push(("broker.rack".into(), rack.clone()));
        }
        out.extend(
            config_keys::KEYS
                .iter()
                .filter(|key| key.kind == config_keys::Kind::Password)
                .map(|key| (key.name.to_string(), String::new())),
        );
        for (broker_key, topic_key) in topic_synonyms() {
            if let Some(value) = self.topic_defaults.get(&topic_key) {
                out.push((broker_key.to_string(), value.clone()));
            }
        }
        for (broker_key, topic_key) in [
            ("log.retention.ms", "retention.ms"),
            ("log.roll.ms", "segment.ms"),
        ] {
            if let Some(value) = self.topic_defaults.get(topic_key) {
                out.push((broker_key.to_string(), value.clone()));
            }
        }
        out.sort();
        out
    }

    /// Whether `server.properties` or an override set `key` (or a key that sets it).
    pub fn is_key_set(&self, key: &str) -> bool {
        let retention = [
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ];
        let roll = ["log.roll.ms", "log.roll.hours"];
        let aliases: &[&str] = if retention.contains(&key) {
            &retention
        } else if roll.contains(&key) {
            &roll
        } else if key == "node.id" || key == "broker.id" {
            &["node.id", "broker.id"]
        } else {
            &[]
        };
        self.keys_set
            .iter()
            .any(|set| set == key || aliases.contains(&set.as_str()))
    }

    /// The broker key whose value is the default of topic config `topic_key`.
    pub fn broker_synonym(topic_key: &str) -> Option<&'static str> {
        match topic_key {
            "retention.ms" => Some("log.retention.ms"),
            "segment.ms" => Some("log.roll.ms"),
            _ => topic_synonyms()
                .find(|(_, topic)| *topic == topic_key)
                .map(|(broker, _)| broker),
        }
    }

    /// The directory partitions are created in.
    pub fn data_dir(&self) -> PathBuf {
        self.log_dirs.first().cloned().unwrap_or_default()
    }

    /// Whether appends are acknowledged only once fsynced (`strom.log.durability`).
    pub fn sync_on_commit(&self) -> bool {
        self.log_defaults.durability == Durability::SyncOnCommit
    }

    /// The effective log config of a topic: broker defaults overlaid with the topic's
    /// overrides (keys the log does not use, such as `min.insync.replicas`, are skipped).
    pub fn topic_log_config(
        &self,
        overrides: Option<&BTreeMap<String, String>>,
    ) -> Result<LogConfig, strom_log::ConfigError> {
        let known = LogConfig::default().to_kafka_props();
        let mut merged: BTreeMap<&str, &str> = self
            .topic_defaults
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        for (key, value) in overrides.into_iter().flatten() {
            // Durability is a broker-wide choice, never a topic override.
            if known.contains_key(key.as_str()) && key != "strom.durability" {
                merged.insert(key.as_str(), value.as_str());
            }
        }
        let config = LogConfig::from_kafka_props(merged)?;
        // Durability is broker-wide: `log_defaults` is its one source of truth.
        Ok(LogConfig {
            durability: self.log_defaults.durability,
            ..config
        })
    }
}

/// `max.connections.per.ip.overrides` as Kafka reads it (`Csv.parseCsvMap`): entries split
/// at commas (surrounding blanks dropped, trailing empty entries ignored), each `host:count`
/// split at its last colon (so IPv6 addresses work), hosts of Kafka's legal characters,
/// counts integers (here also not negative).
fn per_ip_overrides(props: &Props<'_>) -> Result<Vec<(String, u32)>, ConfigError> {
    const KEY: &str = "max.connections.per.ip.overrides";
    let Some(text) = props.get(KEY).filter(|text| !text.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut entries: Vec<&str> = text.split(',').map(str::trim).collect();
    while entries.last().is_some_and(|entry| entry.is_empty()) {
        entries.pop();
    }
    let host_char = |c: char| c.is_ascii_alphanumeric() || "-%._:".contains(c);
    entries
        .into_iter()
        .map(|entry| {
            let (host, count) = entry.rsplit_once(':').ok_or_else(|| {
                invalid(KEY, entry, "expected host:count (a comma-separated list)")
            })?;
            let (host, count) = (host.trim(), count.trim());
            if host.is_empty() || !host.chars().all(host_char) {
                return Err(invalid(KEY, entry, "invalid host or IP address"));
            }
            let count = count
                .parse::<u32>()
                .ok()
                .filter(|c| i32::try_from(*c).is_ok());
            let count = count.ok_or_else(|| {
                invalid(KEY, entry, "the count is not an integer in 0..=2147483647")
            })?;
            Ok((host.to_string(), count))
        })
        .collect()
}

/// `queued.max.request.bytes`: Kafka's 0 or less means unbounded; a positive value must
/// hold the largest frame (`socket.request.max.bytes`), as Kafka requires. Unset, Strom's
/// default applies, raised to `socket.request.max.bytes` when that is larger.
fn queued_max_request_bytes(
    props: &Props<'_>,
    socket_request_max_bytes: usize,
) -> Result<Option<u64>, ConfigError> {
    const KEY: &str = "queued.max.request.bytes";
    let frame_max = u64::try_from(socket_request_max_bytes).unwrap_or(u64::MAX);
    if props.get(KEY).is_none() {
        return Ok(Some(QUEUED_MAX_REQUEST_BYTES_DEFAULT.max(frame_max)));
    }
    let value: i64 = props.int(KEY)?;
    match u64::try_from(value) {
        Ok(0) | Err(_) => Ok(None),
        Ok(bytes) if bytes < frame_max => Err(invalid(
            KEY,
            &value.to_string(),
            &format!(
                "must be at least socket.request.max.bytes ({frame_max}), or -1 for unbounded"
            ),
        )),
        Ok(bytes) => Ok(Some(bytes)),
    }
}

/// The topic-level defaults the broker keys set, as topic keys.
fn topic_defaults(
    props: &Props<'_>,
) -> Result<(BTreeMap<&'static str, String>, Vec<&'static str>), ConfigError> {
    let mut defaults: BTreeMap<&'static str, String> =
        LogConfig::default().to_kafka_props().into_iter().collect();
    let mut set = Vec::new();
    for (broker_key, topic_key) in topic_synonyms() {
        if let Some(value) = props.get(broker_key) {
            defaults.insert(topic_key, value.to_string());
            set.push(topic_key);
        }
    }
    // Kafka's precedence: the finest unit set wins.
    let retention_ms = if props.get("log.retention.ms").is_some() {
        Some(props.int::<i64>("log.retention.ms")?)
    } else if props.get("log.retention.minutes").is_some() {
        Some(minutes_or_forever(
            props.int::<i64>("log.retention.minutes")?,
        ))
    } else if props.get("log.retention.hours").is_some() {
        let hours = props.int::<i64>("log.retention.hours")?;
        Some(if hours < 0 {
            -1
        } else {
            hours.saturating_mul(HOUR_MS)
        })
    } else {
        None
    };
    if let Some(ms) = retention_ms {
        defaults.insert("retention.ms", ms.to_string());
        set.push("retention.ms");
    }
    let roll_ms = if props.get("log.roll.ms").is_some() {
        Some(props.int::<i64>("log.roll.ms")?)
    } else if props.get("log.roll.hours").is_some() {
        Some(props.int::<i64>("log.roll.hours")?.saturating_mul(HOUR_MS))
    } else {
        None
    };
    if let Some(ms) = roll_ms {
        defaults.insert("segment.ms", ms.to_string());
        set.push("segment.ms");
    }
    Ok((defaults, set))
}

fn minutes_or_forever(minutes: i64) -> i64 {
    if minutes < 0 {
        -1
    } else {
        minutes.saturating_mul(60_000)
    }
}

/// Names the broker key behind an invalid topic-level default.
fn log_config_error(set: &[&'static str], error: strom_log::ConfigError) -> ConfigError {
    match error {
        strom_log::ConfigError::InvalidValue { key, value, reason } => {
            let broker_key = topic_synonyms()
                .find(|(_, topic)| *topic == key)
                .map_or_else(|| key.clone(), |(broker, _)| broker.to_string());
            let broker_key = if set.iter().any(|k| *k == key) {
                broker_key
            } else {
                key
            };
            ConfigError::InvalidValue {
                key: broker_key,
                value,
                reason: reason.to_string(),
            }
        }
        strom_log::ConfigError::UnknownKey(key) => ConfigError::InvalidValue {
            key,
            value: String::new(),
            reason: "unknown topic key".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_kafkas_and_the_single_node_ones() {
        let config = BrokerConfig::default_single_node();
        assert_eq!(config.node_id, 1);
        assert_eq!(config.listener.bind_address(), "127.0.0.1:9092");
        assert_eq!(config.advertised_listener, config.listener);
        assert_eq!(config.log_dirs, vec![PathBuf::from("./data")]);
        assert_eq!(config.num_partitions, 1);
        assert!(config.auto_create_topics_enable);
        assert_eq!(config.socket_request_max_bytes, 104_857_600);
        assert_eq!(config.log_defaults.retention_ms, 168 * HOUR_MS);
        assert_eq!(config.log_defaults.segment_bytes, 1 << 30);
        assert_eq!(config.log_defaults.max_message_bytes, 1_048_588);
        assert!(!config.sync_on_commit());
    }

    #[test]
    fn offsets_topic_replication_follows_the_quorum_unless_set() {
        let factor = |pairs: &[(&str, &str)]| {
            BrokerConfig::from_props(&props(pairs))
                .unwrap()
                .0
                .offsets_topic_replication_factor
        };
        assert_eq!(factor(&[]), 1);
        assert_eq!(
            factor(&[("controller.quorum.voters", "1@127.0.0.1:9093")]),
            1
        );
        let three = "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097";
        assert_eq!(factor(&[("controller.quorum.voters", three)]), 3);
        assert_eq!(
            factor(&[("controller.quorum.bootstrap.servers", "127.0.0.1:9093")]),
            3
        );
        assert_eq!(
            factor(&[
                ("controller.quorum.voters", three),
                ("offsets.topic.replication.factor", "2")
            ]),
            2
        );
    }

    #[test]
    fn retention_takes_the_finest_unit() {
        let check = |pairs: &[(&str, &str)], expected_ms: i64| {
            let (config, unknown) = BrokerConfig::from_props(&props(pairs)).unwrap();
            assert!(unknown.is_empty());
            assert_eq!(config.log_defaults.retention_ms, expected_ms, "{pairs:?}");
        };
        check(&[("log.retention.hours", "1")], HOUR_MS);
        check(
            &[("log.retention.hours", "1"), ("log.retention.minutes", "2")],
            120_000,
        );
        check(
            &[("log.retention.minutes", "2"), ("log.retention.ms", "5")],
            5,
        );
        check(&[("log.retention.ms", "-1")], -1);
    }

    #[test]
    fn unknown_keys_warn_and_bad_values_name_their_key() {
        let (config, unknown) = BrokerConfig::from_props(&props(&[
            ("no.such.key", "1"),
            ("node.id", "7"),
            ("strom.log.durability", "sync-on-commit"),
            ("listeners", "CONTROLLER://:9093,PLAINTEXT://127.0.0.1:0"),
        ]))
        .unwrap();
        assert_eq!(unknown, vec!["no.such.key".to_string()]);
        assert_eq!(config.node_id, 7);
        assert!(config.sync_on_commit());
        assert_eq!(config.listener.port, 0);
        for (key, value) in [
            ("num.partitions", "0"),
            ("num.partitions", "x"),
            ("log.segment.bytes", "-5"),
            ("listeners", "PLAINTEXT://:9093,PLAINTEXT://:9094"),
            ("auto.create.topics.enable", "maybe"),
            ("strom.log.durability", "never"),
        ] {
            match BrokerConfig::from_props(&props(&[(key, value)])) {
                Err(ConfigError::InvalidValue { key: named, .. }) => {
                    assert_eq!(named, key, "{key}={value}")
                }
                Ok(_) => panic!("{key}={value} accepted"),
            }
        }
    }

    #[test]
    fn consumer_group_timings_are_checked_against_their_bounds() {
        let config = BrokerConfig::default_single_node();
        assert_eq!(config.group_consumer_session_timeout_ms, 45_000);
        assert_eq!(config.group_consumer_heartbeat_interval_ms, 5_000);
        // Lowered together with their minimums, as test clusters do.
        let (config, unknown) = BrokerConfig::from_props(&props(&[
            ("group.consumer.min.session.timeout.ms", "6000"),
            ("group.consumer.session.timeout.ms", "6000"),
            ("group.consumer.min.heartbeat.interval.ms", "500"),
            ("group.consumer.heartbeat.interval.ms", "500"),
        ]))
        .unwrap();
        assert!(unknown.is_empty());
        assert_eq!(config.group_consumer_session_timeout_ms, 6_000);
        assert_eq!(config.group_consumer_heartbeat_interval_ms, 500);
        for (pairs, named) in [
            (
                &[("group.consumer.session.timeout.ms", "6000")][..],
                "group.consumer.session.timeout.ms",
            ),
            (
                &[("group.consumer.heartbeat.interval.ms", "20000")][..],
                "group.consumer.heartbeat.interval.ms",
            ),
            (
                &[("group.consumer.max.session.timeout.ms", "1000")][..],
                "group.consumer.max.session.timeout.ms",
            ),
            (
                &[
                    ("group.consumer.max.heartbeat.interval.ms", "60000"),
                    ("group.consumer.heartbeat.interval.ms", "50000"),
                ][..],
                "group.consumer.heartbeat.interval.ms",
            ),
        ] {
            match BrokerConfig::from_props(&props(pairs)) {
                Err(ConfigError::InvalidValue { key, .. }) => assert_eq!(key, named, "{pairs:?}"),
                Ok(_) => panic!("{pairs:?} accepted"),
            }
        }
    }

    #[test]
    fn connection_limits_read_as_kafka_reads_them() {
        let config = BrokerConfig::default_single_node();
        assert_eq!(config.connections_max_idle_ms, Some(600_000));
        assert_eq!(config.connections_max_per_ip, i32::MAX as u32);
        assert!(config.connections_max_per_ip_overrides.is_empty());
        assert_eq!(config.request_receive_timeout_ms, 30_000);
        assert_eq!(config.queued_max_request_bytes, Some(256 << 20));

        let check = |pairs: &[(&str, &str)]| BrokerConfig::from_props(&props(pairs)).unwrap().0;
        let config = check(&[
            ("max.connections.per.ip", "0"),
            (
                "max.connections.per.ip.overrides",
                " hostName:100 , 127.0.0.1:200,::1:7,127.0.0.1:3,",
            ),
            ("connections.max.idle.ms", "-1"),
            ("queued.max.request.bytes", "-1"),
        ]);
        assert_eq!(config.connections_max_per_ip, 0);
        assert_eq!(
            config.connections_max_per_ip_overrides,
            vec![
                ("hostName".to_string(), 100),
                ("127.0.0.1".to_string(), 200),
                ("::1".to_string(), 7),
                ("127.0.0.1".to_string(), 3),
            ]
        );
        assert_eq!(config.connections_max_idle_ms, None);
        assert_eq!(config.queued_max_request_bytes, None);
        // The default budget grows with the largest frame; an explicit one must hold it.
        let config = check(&[("socket.request.max.bytes", "500000000")]);
        assert_eq!(config.queued_max_request_bytes, Some(500_000_000));
        let config = check(&[
            ("socket.request.max.bytes", "1000"),
            ("queued.max.request.bytes", "1000"),
        ]);
        assert_eq!(config.queued_max_request_bytes, Some(1000));

        for (pairs, named) in [
            (
                &[("max.connections.per.ip", "0")][..],
                "max.connections.per.ip",
            ),
            (
                &[("max.connections.per.ip", "-1")][..],
                "max.connections.per.ip",
            ),
            (
                &[("max.connections.per.ip.overrides", "host")][..],
                "max.connections.per.ip.overrides",
            ),
            (
                &[("max.connections.per.ip.overrides", ",a:1")][..],
                "max.connections.per.ip.overrides",
            ),
            (
                &[("max.connections.per.ip.overrides", "a:x")][..],
                "max.connections.per.ip.overrides",
            ),
            (
                &[("max.connections.per.ip.overrides", "a:-1")][..],
                "max.connections.per.ip.overrides",
            ),
            (
                &[("max.connections.per.ip.overrides", "a b:1")][..],
                "max.connections.per.ip.overrides",
            ),
            (
                &[("max.connections.per.ip.overrides", ":1")][..],
                "max.connections.per.ip.overrides",
            ),
            (
                &[("queued.max.request.bytes", "1000")][..],
                "queued.max.request.bytes",
            ),
            (
                &[("strom.request.receive.timeout.ms", "0")][..],
                "strom.request.receive.timeout.ms",
            ),
            (
                &[("connections.max.idle.ms", "ten")][..],
                "connections.max.idle.ms",
            ),
        ] {
            match BrokerConfig::from_props(&props(pairs)) {
                Err(ConfigError::InvalidValue { key, .. }) => assert_eq!(key, named, "{pairs:?}"),
                Ok(_) => panic!("{pairs:?} accepted"),
            }
        }
    }

    #[test]
    fn topic_overrides_layer_over_broker_defaults() {
        let (config, _) =
            BrokerConfig::from_props(&props(&[("log.segment.bytes", "100000")])).unwrap();
        let overrides = props(&[("retention.ms", "1000"), ("min.insync.replicas", "2")]);
        let log = config.topic_log_config(Some(&overrides)).unwrap();
        assert_eq!(log.segment_bytes, 100_000);
        assert_eq!(log.retention_ms, 1000);
    }
}
