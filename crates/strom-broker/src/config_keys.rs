//! The one table of `server.properties` keys (name, type, default, allowed values, doc
//! line) and the one parser of their values. Both the broker ([`crate::BrokerConfig`]) and
//! the `strom` binary's quorum config read every value through [`Props`], so a key has one
//! set of rules and every invalid value one message:
//! `config KEY: invalid value "VALUE": must be ...` (the allowed values or range).
//!
//! A key not in the table (nor a `listener.name.<name>.<key>` override) is reported back as
//! unknown: the caller warns and ignores it. `docs/CONFIG.md` documents exactly the keys of
//! this table (a test checks both ways). To add a key: add a row here, read it with
//! [`Props`], document it in `docs/CONFIG.md`.

use std::collections::BTreeMap;

use crate::config::{ConfigError, Listener};

/// What a key's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number in `min..=max`.
    Int { min: i64, max: i64 },
    /// `true` or `false`, any case.
    Bool,
    /// Comma-separated, at least one, each one of these (exact case).
    ListOf(&'static [&'static str]),
    /// Any text; its reader checks what it needs (paths, class names, PEM, principals).
    Text,
    /// A secret (Kafka's PASSWORD type): any text, never shown (DescribeConfigs answers
    /// it with a null value and `is_sensitive`, see [`is_sensitive`]).
    Password,
    /// `NAME://host:port,...`, each name once (names upper-cased, as Kafka's
    /// `ListenerName.normalised`).
    Listeners,
    /// Comma-separated listener names (letters, digits, `_`), upper-cased.
    ListenerNames,
    /// `host:port,...`.
    HostPorts,
    /// `id@host:port,...`, each id once.
    Voters,
    /// The broker-wide default of a topic config: checked by the topic-config parser
    /// (strom-log's `LogConfig`) under this topic key.
    TopicDefault(&'static str),
}

/// One key of the table.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Kafka's (or Strom's `strom.*`) name.
    pub name: &'static str,
    pub kind: Kind,
    /// The default, written as a value of the key; `None` when it is computed from other
    /// keys or the key is unset by default (the doc line says which).
    pub default: Option<&'static str>,
    /// One line for people.
    pub doc: &'static str,
}

const I16: i64 = i16::MAX as i64;
const I32: i64 = i32::MAX as i64;
const I64: i64 = i64::MAX;

const fn int(min: i64, max: i64) -> Kind {
    Kind::Int { min, max }
}

const fn key(name: &'static str, kind: Kind, default: &'static str, doc: &'static str) -> Key {
    Key {
        name,
        kind,
        default: Some(default),
        doc,
    }
}

/// A key whose default is computed or absent.
const fn unset(name: &'static str, kind: Kind, doc: &'static str) -> Key {
    Key {
        name,
        kind,
        default: None,
        doc,
    }
}

/// The assignors `group.consumer.assignors` knows, by short and by Kafka class name.
pub const ASSIGNORS: &[&str] = &[
    "uniform",
    "range",
    "org.apache.kafka.coordinator.group.assignor.UniformAssignor",
    "org.apache.kafka.coordinator.group.assignor.RangeAssignor",
];

/// Every key the server reads. Grouped as `docs/CONFIG.md` is.
pub const KEYS: &[Key] = &[
    // Node and network.
    key("node.id", int(0, I32), "1", "This node's id."),
    key("broker.id", int(0, I32), "1", "Alias of node.id."),
    key(
        "cluster.id",
        Kind::Text,
        "c3Ryb20tY2x1c3Rlci0x",
        "The cluster id; must match meta.properties.",
    ),
    unset(
        "broker.rack",
        Kind::Text,
        "The rack this broker registers with.",
    ),
    key(
        "listeners",
        Kind::Listeners,
        "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        "NAME://host:port entries served (broker) or bound (controller).",
    ),
    unset(
        "advertised.listeners",
        Kind::Listeners,
        "What clients are told; defaults to listeners.",
    ),
    key(
        "listener.security.protocol.map",
        Kind::Text,
        "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        "NAME:PROTOCOL pairs.",
    ),
    key(
        "socket.request.max.bytes",
        int(1, I64),
        "104857600",
        "Largest request frame.",
    ),
    key(
        "fetch.max.bytes",
        int(0, I64),
        "57671680",
        "Most bytes one Fetch response carries.",
    ),
    key(
        "max.connections",
        int(1, I64),
        "10000",
        "Connections served at once.",
    ),
    key(
        "max.connections.per.ip",
        int(0, I32),
        "2147483647",
        "Connections from one address.",
    ),
    key(
        "max.connection.creation.rate",
        int(0, I32),
        "2147483647",
        "New connections per second per listener (KIP-612).",
    ),
    key(
        "max.connections.per.ip.overrides",
        Kind::Text,
        "",
        "host:count,... exceptions to max.connections.per.ip.",
    ),
    key(
        "connections.max.idle.ms",
        int(i64::MIN, I64),
        "600000",
        "Idle connections close after this; negative never.",
    ),
    key(
        "strom.request.receive.timeout.ms",
        int(1, I64),
        "30000",
        "Longest a request may take to arrive.",
    ),
    unset(
        "queued.max.request.bytes",
        int(i64::MIN, I64),
        "Budget of request bytes received and not handled; <= 0 unbounded.",
    ),
    // Metadata quorum.
    key(
        "process.roles",
        Kind::ListOf(&["broker", "controller"]),
        "broker,controller",
        "What this node runs.",
    ),
    unset(
        "controller.quorum.voters",
        Kind::Voters,
        "id@host:port of every voter of a static quorum.",
    ),
    unset(
        "controller.quorum.bootstrap.servers",
        Kind::HostPorts,
        "host:port of controllers to join through (KIP-853).",
    ),
    key(
        "controller.listener.names",
        Kind::ListenerNames,
        "CONTROLLER",
        "Which listeners the quorum uses.",
    ),
    unset(
        "metadata.log.dir",
        Kind::Text,
        "Where __cluster_metadata-0 lives; defaults to the first of log.dirs.",
    ),
    key(
        "controller.quorum.election.timeout.ms",
        int(50, I64),
        "1000",
        "Raft election timeout.",
    ),
    key(
        "request.timeout.ms",
        int(1, I64),
        "30000",
        "Bound on one metadata request.",
    ),
    key(
        "metadata.log.segment.bytes",
        int(1, I64),
        "16777216",
        "Raft log segment size.",
    ),
    key(
        "strom.metadata.snapshot.interval.entries",
        int(1, I64),
        "10000",
        "Entries between metadata snapshots.",
    ),
    key(
        "broker.session.timeout.ms",
        int(1, I32),
        "9000",
        "A broker silent this long is fenced.",
    ),
    key(
        "broker.heartbeat.interval.ms",
        int(1, I64),
        "2000",
        "How often a broker heartbeats.",
    ),
    // Leaders and elections.
    key(
        "unclean.leader.election.enable",
        Kind::Bool,
        "false",
        "Default of the topic config of that name.",
    ),
    key(
        "unclean.leader.election.interval.ms",
        int(1, I64),
        "300000",
        "How often leaderless partitions are looked for.",
    ),
    key(
        "auto.leader.rebalance.enable",
        Kind::Bool,
        "true",
        "Move leadership back to preferred replicas.",
    ),
    key(
        "leader.imbalance.check.interval.seconds",
        int(1, I64),
        "300",
        "How often the rebalance runs.",
    ),
    key(
        "leader.imbalance.per.broker.percentage",
        int(0, 100),
        "10",
        "Imbalance a broker may have before a rebalance.",
    ),
    // Topics.
    key(
        "num.partitions",
        int(1, I32),
        "1",
        "Partitions of auto-created topics and of -1.",
    ),
    key(
        "default.replication.factor",
        int(1, I16),
        "1",
        "Replication factor of auto-created topics and of -1.",
    ),
    key(
        "min.insync.replicas",
        int(1, I32),
        "1",
        "Default of the topic config of that name.",
    ),
    key(
        "auto.create.topics.enable",
        Kind::Bool,
        "true",
        "Metadata requests create missing topics.",
    ),
    key(
        "delete.topic.enable",
        Kind::Bool,
        "true",
        "Whether DeleteTopics is allowed.",
    ),
    // Logs.
    key(
        "log.dirs",
        Kind::Text,
        "./data",
        "Comma-separated data directories.",
    ),
    unset("log.dir", Kind::Text, "Alias of log.dirs (one directory)."),
    key(
        "log.segment.bytes",
        Kind::TopicDefault("segment.bytes"),
        "1073741824",
        "Segment size.",
    ),
    unset(
        "log.roll.hours",
        int(1, I64),
        "Roll a segment this long after its first batch (hours).",
    ),
    unset(
        "log.roll.ms",
        int(1, I64),
        "Roll a segment this long after its first batch.",
    ),
    unset(
        "log.retention.hours",
        int(-1, I64),
        "Retention in hours (168 by default).",
    ),
    unset(
        "log.retention.minutes",
        int(-1, I64),
        "Retention in minutes.",
    ),
    unset(
        "log.retention.ms",
        int(-1, I64),
        "Retention in milliseconds; -1 forever.",
    ),
    key(
        "log.retention.bytes",
        Kind::TopicDefault("retention.bytes"),
        "-1",
        "Retention by size per partition.",
    ),
    key(
        "log.retention.check.interval.ms",
        int(1, I64),
        "300000",
        "How often retention runs.",
    ),
    key(
        "log.cleaner.backoff.ms",
        int(1, I64),
        "15000",
        "How often compaction runs.",
    ),
    key(
        "log.cleanup.policy",
        Kind::TopicDefault("cleanup.policy"),
        "delete",
        "delete, compact or both.",
    ),
    key(
        "log.cleaner.delete.retention.ms",
        Kind::TopicDefault("delete.retention.ms"),
        "86400000",
        "How long compaction keeps tombstones.",
    ),
    key(
        "log.cleaner.min.compaction.lag.ms",
        Kind::TopicDefault("min.compaction.lag.ms"),
        "0",
        "Shortest time a record stays uncompacted.",
    ),
    key(
        "log.index.size.max.bytes",
        Kind::TopicDefault("segment.index.bytes"),
        "10485760",
        "Size of each index file.",
    ),
    key(
        "log.index.interval.bytes",
        Kind::TopicDefault("index.interval.bytes"),
        "4096",
        "Bytes between offset-index entries.",
    ),
    key(
        "message.max.bytes",
        Kind::TopicDefault("max.message.bytes"),
        "1048588",
        "Largest record batch.",
    ),
    key(
        "log.message.timestamp.type",
        Kind::TopicDefault("message.timestamp.type"),
        "CreateTime",
        "CreateTime or LogAppendTime.",
    ),
    key(
        "log.message.timestamp.before.max.ms",
        Kind::TopicDefault("message.timestamp.before.max.ms"),
        "9223372036854775807",
        "How far in the past a CreateTime may be.",
    ),
    key(
        "log.message.timestamp.after.max.ms",
        Kind::TopicDefault("message.timestamp.after.max.ms"),
        "3600000",
        "How far in the future a CreateTime may be.",
    ),
    key(
        "log.flush.interval.messages",
        Kind::TopicDefault("flush.messages"),
        "9223372036854775807",
        "fsync after this many records.",
    ),
    key(
        "log.flush.interval.ms",
        Kind::TopicDefault("flush.ms"),
        "9223372036854775807",
        "fsync when the last one is this old.",
    ),
    key(
        "log.flush.offset.checkpoint.interval.ms",
        int(0, I64),
        "60000",
        "How often recovery points are checkpointed.",
    ),
    key(
        "log.segment.delete.delay.ms",
        Kind::TopicDefault("file.delete.delay.ms"),
        "60000",
        "How long deleted segments linger.",
    ),
    // Consumer groups.
    key(
        "offsets.topic.num.partitions",
        int(1, I32),
        "50",
        "Partitions of __consumer_offsets.",
    ),
    unset(
        "offsets.topic.replication.factor",
        int(1, I16),
        "Replicas of __consumer_offsets (3; 1 on a single node).",
    ),
    key(
        "group.initial.rebalance.delay.ms",
        int(0, I64),
        "3000",
        "How long a new group's first rebalance waits.",
    ),
    key(
        "group.min.session.timeout.ms",
        int(0, I32),
        "6000",
        "Smallest classic session timeout.",
    ),
    key(
        "group.max.session.timeout.ms",
        int(0, I32),
        "1800000",
        "Largest classic session timeout.",
    ),
    key(
        "group.max.size",
        int(1, I32),
        "2147483647",
        "Members per classic group.",
    ),
    key(
        "offset.metadata.max.bytes",
        int(0, I32),
        "4096",
        "Longest commit metadata.",
    ),
    key(
        "group.consumer.session.timeout.ms",
        int(1, I32),
        "45000",
        "KIP-848 session timeout.",
    ),
    key(
        "group.consumer.min.session.timeout.ms",
        int(1, I32),
        "45000",
        "Lower bound of the KIP-848 session timeout.",
    ),
    key(
        "group.consumer.max.session.timeout.ms",
        int(1, I32),
        "60000",
        "Upper bound of the KIP-848 session timeout.",
    ),
    key(
        "group.consumer.heartbeat.interval.ms",
        int(1, I32),
        "5000",
        "KIP-848 heartbeat interval.",
    ),
    key(
        "group.consumer.min.heartbeat.interval.ms",
        int(1, I32),
        "5000",
        "Lower bound of the KIP-848 heartbeat interval.",
    ),
    key(
        "group.consumer.max.heartbeat.interval.ms",
        int(1, I32),
        "15000",
        "Upper bound of the KIP-848 heartbeat interval.",
    ),
    key(
        "group.consumer.max.size",
        int(1, I32),
        "2147483647",
        "Members per KIP-848 group.",
    ),
    key(
        "group.consumer.assignors",
        Kind::ListOf(ASSIGNORS),
        "uniform,range",
        "Server-side assignors; the first is the default.",
    ),
    key(
        "group.streams.session.timeout.ms",
        int(1, I32),
        "45000",
        "KIP-1071 streams group session timeout.",
    ),
    key(
        "group.streams.min.session.timeout.ms",
        int(1, I32),
        "45000",
        "Lower bound of the streams group session timeout.",
    ),
    key(
        "group.streams.max.session.timeout.ms",
        int(1, I32),
        "60000",
        "Upper bound of the streams group session timeout.",
    ),
    key(
        "group.streams.heartbeat.interval.ms",
        int(1, I32),
        "5000",
        "KIP-1071 streams group heartbeat interval.",
    ),
    key(
        "group.streams.min.heartbeat.interval.ms",
        int(1, I32),
        "5000",
        "Lower bound of the streams group heartbeat interval.",
    ),
    key(
        "group.streams.max.heartbeat.interval.ms",
        int(1, I32),
        "15000",
        "Upper bound of the streams group heartbeat interval.",
    ),
    key(
        "group.streams.max.size",
        int(1, I32),
        "2147483647",
        "Members per streams group.",
    ),
    key(
        "group.streams.num.standby.replicas",
        int(0, I32),
        "0",
        "Standby replicas of each task of a streams group.",
    ),
    key(
        "group.streams.max.standby.replicas",
        int(0, I32),
        "2",
        "Upper bound of the streams group standby replicas.",
    ),
    key(
        "group.share.session.timeout.ms",
        int(1, I32),
        "45000",
        "Share group session timeout.",
    ),
    key(
        "group.share.min.session.timeout.ms",
        int(1, I32),
        "45000",
        "Lower bound of the share group session timeout.",
    ),
    key(
        "group.share.max.session.timeout.ms",
        int(1, I32),
        "60000",
        "Upper bound of the share group session timeout.",
    ),
    key(
        "group.share.heartbeat.interval.ms",
        int(1, I32),
        "5000",
        "Share group heartbeat interval.",
    ),
    key(
        "group.share.min.heartbeat.interval.ms",
        int(1, I32),
        "5000",
        "Lower bound of the share group heartbeat interval.",
    ),
    key(
        "group.share.max.heartbeat.interval.ms",
        int(1, I32),
        "15000",
        "Upper bound of the share group heartbeat interval.",
    ),
    key(
        "group.share.max.size",
        int(1, 1000),
        "200",
        "Members per share group.",
    ),
    key(
        "group.share.initialize.retry.interval.ms",
        int(1, I32),
        "30000",
        "How long share partitions stay initializing before a heartbeat asks again.",
    ),
    key(
        "offsets.retention.minutes",
        int(1, I64),
        "10080",
        "How long offsets outlive an Empty group.",
    ),
    key(
        "offsets.retention.check.interval.ms",
        int(1, I64),
        "600000",
        "How often offsets are checked for expiry.",
    ),
    // Transactions.
    key(
        "transaction.state.log.num.partitions",
        int(1, I32),
        "50",
        "Partitions of __transaction_state.",
    ),
    unset(
        "transaction.state.log.replication.factor",
        int(1, I16),
        "Replicas of __transaction_state (3; 1 on a single node).",
    ),
    unset(
        "transaction.state.log.min.isr",
        int(1, I32),
        "min.insync.replicas of __transaction_state (2; 1 on a single node).",
    ),
    // Share groups: the data plane (share partitions, sessions, the share state topic).
    key(
        "group.share.record.lock.duration.ms",
        int(1000, 3_600_000),
        "30000",
        "How long a share consumer holds an acquired record before it is offered again.",
    ),
    key(
        "group.share.min.record.lock.duration.ms",
        int(1000, 3_600_000),
        "15000",
        "Lower bound of a share group's share.record.lock.duration.ms group config.",
    ),
    key(
        "group.share.max.record.lock.duration.ms",
        int(1000, 3_600_000),
        "60000",
        "Upper bound of a share group's share.record.lock.duration.ms group config.",
    ),
    key(
        "group.share.delivery.count.limit",
        int(2, 10),
        "5",
        "Deliveries of a record to share consumers before it is archived.",
    ),
    key(
        "group.share.partition.max.record.locks",
        int(100, 10_000),
        "2000",
        "In-flight records of one share partition.",
    ),
    key(
        "group.share.max.share.sessions",
        int(1, I32),
        "2000",
        "Share sessions a broker keeps (SHARE_SESSION_LIMIT_REACHED beyond).",
    ),
    key(
        "share.coordinator.state.topic.num.partitions",
        int(1, I32),
        "50",
        "Partitions of __share_group_state.",
    ),
    unset(
        "share.coordinator.state.topic.replication.factor",
        int(1, I16),
        "Replicas of __share_group_state (3; 1 on a single node).",
    ),
    unset(
        "share.coordinator.state.topic.min.isr",
        int(1, I16),
        "min.insync.replicas of __share_group_state (2; 1 on a single node).",
    ),
    key(
        "share.coordinator.snapshot.update.records.per.snapshot",
        int(0, 500),
        "500",
        "Share state updates written between two snapshots of a share partition.",
    ),
    key(
        "transaction.max.timeout.ms",
        int(1, I32),
        "900000",
        "Longest transaction timeout a producer may ask for.",
    ),
    key(
        "transactional.id.expiration.ms",
        int(1, I64),
        "604800000",
        "Idle transactional ids are removed after this.",
    ),
    key(
        "producer.id.expiration.ms",
        int(1, I64),
        "86400000",
        "Idle producer ids are forgotten by partitions after this.",
    ),
    key(
        "producer.id.expiration.check.interval.ms",
        int(1, I64),
        "600000",
        "How often partitions forget idle producer ids.",
    ),
    key(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        int(1, I64),
        "10000",
        "How often timed-out transactions are aborted.",
    ),
    key(
        "transaction.partition.verification.enable",
        Kind::Bool,
        "true",
        "KIP-890 part 1 verification.",
    ),
    // Replication.
    key(
        "replica.lag.time.max.ms",
        int(1, I64),
        "30000",
        "A follower behind this long leaves the ISR.",
    ),
    key(
        "replica.fetch.max.bytes",
        int(0, I64),
        "1048576",
        "Bytes a follower asks per partition.",
    ),
    key(
        "replica.fetch.min.bytes",
        int(0, I64),
        "1",
        "Bytes a follower's fetch waits for.",
    ),
    key(
        "replica.fetch.wait.max.ms",
        int(0, I64),
        "500",
        "How long a follower's fetch waits.",
    ),
    key(
        "replica.fetch.response.max.bytes",
        int(0, I64),
        "10485760",
        "Bytes one fetch response to a follower carries.",
    ),
    key(
        "replica.fetch.backoff.ms",
        int(0, I64),
        "1000",
        "A follower's pause after an error.",
    ),
    key(
        "num.replica.fetchers",
        int(1, I64),
        "1",
        "Fetcher tasks per source broker.",
    ),
    key(
        "replica.socket.timeout.ms",
        int(1, I64),
        "30000",
        "A follower's connect and request timeout.",
    ),
    key(
        "replica.high.watermark.checkpoint.interval.ms",
        int(1, I64),
        "5000",
        "How often high watermarks are checkpointed.",
    ),
    unset(
        "inter.broker.listener.name",
        Kind::ListenerNames,
        "The listener followers fetch through.",
    ),
    unset(
        "security.inter.broker.protocol",
        Kind::Text,
        "Older way to name the inter-broker listener.",
    ),
    unset(
        "sasl.mechanism.inter.broker.protocol",
        Kind::Text,
        "The mechanism used to other brokers.",
    ),
    unset(
        "sasl.mechanism.controller.protocol",
        Kind::Text,
        "The mechanism used to the controllers (PLAIN).",
    ),
    // Strom keys.
    key(
        "strom.log.durability",
        Kind::TopicDefault("strom.durability"),
        "page-cache",
        "page-cache or sync-on-commit.",
    ),
    key(
        "strom.fetch.wait.max.ms",
        int(0, I64),
        "30000",
        "Longest Fetch long poll.",
    ),
    key(
        "strom.open.files.max",
        int(1, I64),
        "4096",
        "Inactive segment files kept open.",
    ),
    // Strom's: Kafka keeps every share partition a broker ever served in memory.
    key(
        "strom.share.partitions.max",
        int(1, I32),
        "10000",
        "Share partitions a broker holds in memory (idle ones evicted first).",
    ),
    key(
        "strom.share.partition.idle.ms",
        int(1, I64),
        "300000",
        "Unused share partitions without acquired records leave memory after this.",
    ),
    // The scrubber's rate is modest next to a disk's bandwidth; a week between passes, as
    // Ceph's deep scrub (Kafka has no scrubber).
    key(
        "strom.log.scrub.bytes.per.sec",
        int(0, I64),
        "16777216",
        "Scrubber rate; 0 disables it.",
    ),
    key(
        "strom.log.scrub.interval.ms",
        int(1, I64),
        "604800000",
        "Pause between scrub passes.",
    ),
    // Security.
    key("ssl.keystore.type", Kind::Text, "PEM", "Only PEM."),
    unset(
        "ssl.keystore.location",
        Kind::Text,
        "PEM key and certificate chain.",
    ),
    unset("ssl.keystore.key", Kind::Password, "Inline PEM key."),
    unset(
        "ssl.keystore.certificate.chain",
        Kind::Password,
        "Inline PEM chain.",
    ),
    unset(
        "ssl.keystore.password",
        Kind::Password,
        "Accepted and ignored.",
    ),
    unset(
        "ssl.key.password",
        Kind::Password,
        "Refused (encrypted keys).",
    ),
    key("ssl.truststore.type", Kind::Text, "PEM", "Only PEM."),
    unset(
        "ssl.truststore.location",
        Kind::Text,
        "PEM CA certificates.",
    ),
    unset(
        "ssl.truststore.password",
        Kind::Password,
        "Accepted and ignored.",
    ),
    unset(
        "ssl.truststore.certificates",
        Kind::Password,
        "Inline PEM CA certificates.",
    ),
    key(
        "ssl.client.auth",
        Kind::Text,
        "none",
        "none, requested or required.",
    ),
    key(
        "ssl.principal.mapping.rules",
        Kind::Text,
        "DEFAULT",
        "Certificate subject to principal rules.",
    ),
    key(
        "ssl.enabled.protocols",
        Kind::Text,
        "TLSv1.2,TLSv1.3",
        "TLS versions.",
    ),
    unset("ssl.cipher.suites", Kind::Text, "IANA cipher suite names."),
    key(
        "ssl.endpoint.identification.algorithm",
        Kind::Text,
        "https",
        "Host-name check of other brokers.",
    ),
    key(
        "ssl.protocol",
        Kind::Text,
        "TLSv1.3",
        "Accepted and ignored.",
    ),
    key(
        "sasl.enabled.mechanisms",
        Kind::Text,
        "GSSAPI",
        "SASL mechanisms of a listener.",
    ),
    // OAUTHBEARER (KIP-768): the JWKS validator's keys, per listener as
    // `listener.name.<name>.oauthbearer.<key>`.
    unset(
        "sasl.server.callback.handler.class",
        Kind::Text,
        "OAUTHBEARER's validator class.",
    ),
    unset(
        "sasl.oauthbearer.jwks.endpoint.url",
        Kind::Text,
        "JWKS of signed OAUTHBEARER tokens (file:// or https://).",
    ),
    key(
        "sasl.oauthbearer.jwks.endpoint.refresh.ms",
        int(0, I64),
        "3600000",
        "How often the JWKS is checked or fetched.",
    ),
    key(
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
        int(0, I64),
        "100",
        "First wait after a failed JWKS fetch.",
    ),
    key(
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
        int(0, I64),
        "10000",
        "Most time spent retrying a JWKS fetch.",
    ),
    unset(
        "org.apache.kafka.sasl.oauthbearer.allowed.urls",
        Kind::Text,
        "OAUTHBEARER URLs allowed (Kafka's system property).",
    ),
    key(
        "sasl.oauthbearer.expected.audience",
        Kind::Text,
        "",
        "Audiences a token must name one of.",
    ),
    unset(
        "sasl.oauthbearer.expected.issuer",
        Kind::Text,
        "The issuer a token must name.",
    ),
    key(
        "sasl.oauthbearer.sub.claim.name",
        Kind::Text,
        "sub",
        "The claim naming the principal.",
    ),
    key(
        "sasl.oauthbearer.scope.claim.name",
        Kind::Text,
        "scope",
        "The claim holding the scopes.",
    ),
    key(
        "sasl.oauthbearer.clock.skew.seconds",
        int(0, I32),
        "30",
        "Clock skew allowed on exp/iat/nbf.",
    ),
    key(
        "connections.max.reauth.ms",
        int(0, I64),
        "0",
        "KIP-368 session lifetime; 0 never expires.",
    ),
    key(
        "connection.failed.authentication.delay.ms",
        int(0, I64),
        "100",
        "Delay before a failed authentication's answer.",
    ),
    // Delegation tokens (KIP-48).
    unset(
        "delegation.token.secret.key",
        Kind::Password,
        "Enables delegation tokens; the same on every node.",
    ),
    unset(
        "delegation.token.master.key",
        Kind::Password,
        "Deprecated name of delegation.token.secret.key.",
    ),
    key(
        "delegation.token.max.lifetime.ms",
        int(1, I64),
        "604800000",
        "No token lives longer, renewed or not.",
    ),
    key(
        "delegation.token.expiry.time.ms",
        int(1, I64),
        "86400000",
        "A token's life from creation or renewal.",
    ),
    key(
        "delegation.token.expiry.check.interval.ms",
        int(1, I64),
        "3600000",
        "How often the controller removes expired tokens.",
    ),
    // Authorization and quotas.
    key(
        "authorizer.class.name",
        Kind::Text,
        "",
        "StandardAuthorizer or empty.",
    ),
    key(
        "super.users",
        Kind::Text,
        "",
        "Principals allowed everything, ';'-separated.",
    ),
    key(
        "allow.everyone.if.no.acl.found",
        Kind::Bool,
        "false",
        "Open resources no ACL applies to.",
    ),
    key(
        "quota.window.num",
        int(1, 3600),
        "11",
        "Samples of a quota's rate.",
    ),
    key(
        "quota.window.size.seconds",
        int(1, 3600),
        "1",
        "Length of one quota sample.",
    ),
    key(
        "controller.quota.window.num",
        int(1, 3600),
        "11",
        "Windows of controller_mutation_rate's token bucket.",
    ),
    key(
        "controller.quota.window.size.seconds",
        int(1, 3600),
        "1",
        "Length of one controller-mutation window.",
    ),
    // HTTP listener and metrics.
    key(
        "strom.http.listeners",
        Kind::Text,
        "http://127.0.0.1:9644",
        "Where the HTTP listener binds; empty turns it off.",
    ),
    key(
        "strom.http.authentication.method",
        Kind::Text,
        "NONE",
        "NONE or BASIC (HTTP Basic against the SASL users).",
    ),
    unset(
        "strom.http.authentication.skip.paths",
        Kind::Text,
        "Paths served without authentication.",
    ),
    unset(
        "strom.console.schema.registry.url",
        Kind::Text,
        "A remote schema registry for the console.",
    ),
    key(
        "strom.metrics.partition.enable",
        Kind::Bool,
        "true",
        "Per-partition series.",
    ),
    key(
        "strom.metrics.client.instances.max",
        int(1, 16_384),
        "256",
        "KIP-714 client instances kept.",
    ),
    key(
        "telemetry.max.bytes",
        int(1, I32),
        "1048576",
        "Largest PushTelemetry payload.",
    ),
    key(
        "strom.metrics.series.max",
        int(1, I64),
        "10000",
        "Most series per label family.",
    ),
];

/// Per-listener overrides, `listener.name.<name>.<key>`: read by `listeners.rs`.
pub const LISTENER_PREFIX: &str = "listener.name.";

/// The row of `name`.
pub fn lookup(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.name == name)
}

/// Kafka's PASSWORD-type broker keys that are not rows of [`KEYS`] (Strom reads JAAS only
/// per listener and has no password encoder), still secret wherever they are stored.
const PASSWORD_KEYS_UNREAD: &[&str] = &[
    "sasl.jaas.config",
    "password.encoder.secret",
    "password.encoder.old.secret",
];

/// The keys `name` may stand for, as Kafka's `DynamicBrokerConfig.brokerConfigSynonyms`
/// reads a listener override: `name` itself, the key after `listener.name.<listener>.`,
/// and that key without a leading mechanism
/// (`listener.name.<listener>.<mechanism>.sasl.jaas.config`).
fn base_keys(name: &str) -> impl Iterator<Item = &str> {
    let listener_key = name
        .strip_prefix(LISTENER_PREFIX)
        .and_then(|rest| rest.split_once('.'))
        .map(|(_, key)| key);
    let mechanism_key = listener_key
        .and_then(|key| key.split_once('.'))
        .map(|(_, key)| key);
    std::iter::once(name)
        .chain(listener_key)
        .chain(mechanism_key)
}

/// Whether a broker config's value must never be shown (DescribeConfigs answers it with a
/// null value, `is_sensitive=true` and the PASSWORD type, in its synonyms too): Kafka's
/// `KafkaConfig.maybeSensitive`. A PASSWORD key (or a listener override of one) is; so is
/// a key whose type Strom cannot tell (not a row, not an override of a row), because Kafka
/// treats an unknown type as sensitive "to be safe". A dynamic value Strom stores for a
/// key it does not know is therefore never echoed back.
pub fn is_sensitive(name: &str) -> bool {
    let mut known = false;
    for key in base_keys(name) {
        if PASSWORD_KEYS_UNREAD.contains(&key) {
            return true;
        }
        match lookup(key) {
            Some(row) if row.kind == Kind::Password => return true,
            Some(_) => known = true,
            None => {}
        }
    }
    !known
}

/// The HTTP listener's TLS overrides, `strom.http.ssl.<key>`: read by `metrics/config.rs`.
pub const HTTP_SSL_PREFIX: &str = "strom.http.ssl.";

/// Whether the server reads `name` (a row, or a per-listener override).
pub fn is_known(name: &str) -> bool {
    lookup(name).is_some() || name.starts_with(LISTENER_PREFIX) || name.starts_with(HTTP_SSL_PREFIX)
}

/// Checks every key of `map` that the table knows; returns the keys it does not know, for
/// the caller to warn about.
pub fn check(map: &BTreeMap<String, String>) -> Result<Vec<String>, ConfigError> {
    let mut unknown = Vec::new();
    for (name, value) in map {
        match lookup(name) {
            Some(key) => {
                check_value(key, value.trim())?;
            }
            None if name.starts_with(LISTENER_PREFIX) || name.starts_with(HTTP_SSL_PREFIX) => {}
            None => unknown.push(name.clone()),
        }
    }
    Ok(unknown)
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// What an integer of `min..=max` must be, for a value that is not one (`value` None) or
/// is out of range.
fn int_reason(min: i64, max: i64, value: Option<i128>) -> String {
    match value {
        Some(v) if v < i128::from(min) => format!("must be an integer >= {min}"),
        Some(v) if v > i128::from(max) => format!("must be an integer <= {max}"),
        _ if min == i64::MIN && max == I64 => "must be an integer".to_string(),
        _ if max == I64 => format!("must be an integer >= {min}"),
        _ => format!("must be an integer from {min} to {max}"),
    }
}

fn items(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Validates `value` (trimmed) as `key` requires.
pub fn check_value(key: &Key, value: &str) -> Result<(), ConfigError> {
    let name = key.name;
    match key.kind {
        Kind::Int { min, max } => parse_int(name, value, min, max).map(|_| ()),
        Kind::Bool => parse_bool(name, value).map(|_| ()),
        Kind::ListOf(allowed) => parse_list_of(name, value, allowed).map(|_| ()),
        Kind::Text | Kind::Password => Ok(()),
        Kind::Listeners => parse_listeners(name, value).map(|_| ()),
        Kind::ListenerNames => parse_listener_names(name, value).map(|_| ()),
        Kind::HostPorts => parse_host_ports(name, value).map(|_| ()),
        Kind::Voters => parse_voters(name, value).map(|_| ()),
        Kind::TopicDefault(topic_key) => {
            strom_log::LogConfig::from_kafka_props([(topic_key, value)])
                .map(|_| ())
                .map_err(|error| match error {
                    strom_log::ConfigError::InvalidValue { reason, .. } => {
                        invalid(name, value, reason.to_string())
                    }
                    strom_log::ConfigError::UnknownKey(topic) => {
                        invalid(name, value, format!("topic key {topic} is unknown"))
                    }
                })
        }
    }
}

fn parse_int(name: &str, value: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let parsed = value.parse::<i128>().ok();
    match parsed {
        Some(v) if (i128::from(min)..=i128::from(max)).contains(&v) => {
            i64::try_from(v).map_err(|_| invalid(name, value, int_reason(min, max, parsed)))
        }
        _ => Err(invalid(name, value, int_reason(min, max, parsed))),
    }
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(name, value, "must be true or false")),
    }
}

fn parse_list_of(name: &str, value: &str, allowed: &[&str]) -> Result<Vec<String>, ConfigError> {
    let reason = || {
        format!(
            "must be one or more of {}, comma-separated",
            allowed.join(", ")
        )
    };
    let list: Vec<String> = items(value).map(str::to_string).collect();
    if list.is_empty() || list.iter().any(|item| !allowed.contains(&item.as_str())) {
        return Err(invalid(name, value, reason()));
    }
    Ok(list)
}

/// `NAME://host:port,...` (IPv6 hosts in brackets), each name once, names upper-cased.
pub fn parse_listeners(name: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let mut listeners: Vec<Listener> = Vec::new();
    for entry in items(value) {
        let listener = Listener::parse(name, entry)?;
        if listeners.iter().any(|l| l.name == listener.name) {
            return Err(invalid(
                name,
                value,
                format!(
                    "must name each listener once ({} appears twice)",
                    listener.name
                ),
            ));
        }
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Listener names (letters, digits, `_`), upper-cased as Kafka's `ListenerName.normalised`.
pub fn parse_listener_names(name: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    items(value)
        .map(|item| {
            if item.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                Ok(item.to_ascii_uppercase())
            } else {
                Err(invalid(
                    name,
                    value,
                    "must be listener names (letters, digits, _), comma-separated",
                ))
            }
        })
        .collect()
}

fn host_port(entry: &str) -> Option<(&str, u16)> {
    let (host, port) = entry.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    (!host.is_empty()).then_some((host, port))
}

/// `host:port,...`.
pub fn parse_host_ports(name: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    items(value)
        .map(|entry| match host_port(entry) {
            Some(_) => Ok(entry.to_string()),
            None => Err(invalid(
                name,
                value,
                format!("must be host:port entries, comma-separated ({entry} is not)"),
            )),
        })
        .collect()
}

/// `id@host:port,...`, ids whole numbers from 0, each once.
pub fn parse_voters(name: &str, value: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
    let mut voters = BTreeMap::new();
    for entry in items(value) {
        let bad = |what: &str| {
            invalid(
                name,
                value,
                format!("must be id@host:port entries, comma-separated ({entry}: {what})"),
            )
        };
        let (id, addr) = entry.split_once('@').ok_or_else(|| bad("no @"))?;
        let id = id
            .parse::<u64>()
            .ok()
            .filter(|id| i32::try_from(*id).is_ok())
            .ok_or_else(|| bad("the id is not an integer >= 0"))?;
        host_port(addr).ok_or_else(|| bad("not host:port after @"))?;
        if voters.insert(id, addr.to_string()).is_some() {
            return Err(bad("the id appears twice"));
        }
    }
    Ok(voters)
}

/// `value` of the integer key `name` as `T`, by the table's range (for values read from
/// elsewhere than the key itself, such as a per-listener override).
pub fn int_of<T: TryFrom<i64>>(name: &str, value: &str) -> Result<T, ConfigError> {
    let row = lookup(name).ok_or_else(|| invalid(name, value, "is not in the table of keys"))?;
    let Kind::Int { min, max } = row.kind else {
        return Err(invalid(name, value, "is not an integer key"));
    };
    let n = parse_int(name, value.trim(), min, max)?;
    T::try_from(n).map_err(|_| invalid(name, value, int_reason(min, max, None)))
}

/// Typed reads of a property map through the table: a key's value if set (trimmed), else
/// its default; every error in the one format.
#[derive(Clone, Copy)]
pub struct Props<'a> {
    map: &'a BTreeMap<String, String>,
}

impl<'a> Props<'a> {
    pub fn new(map: &'a BTreeMap<String, String>) -> Props<'a> {
        Props { map }
    }

    /// The value set for `name` (trimmed), if any.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.map.get(name).map(|v| v.trim())
    }

    /// Whether `name` is set.
    pub fn is_set(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// The value set, else the table's default ("" when there is none).
    pub fn text(&self, name: &str) -> &'a str {
        self.get(name)
            .or_else(|| lookup(name).and_then(|k| k.default))
            .unwrap_or("")
    }

    /// An integer key as `T`; unset, its default.
    pub fn int<T: TryFrom<i64>>(&self, name: &str) -> Result<T, ConfigError> {
        int_of(name, self.text(name))
    }

    /// An integer key as `T`; unset, `default` (a default computed from other keys).
    pub fn int_or<T: TryFrom<i64>>(&self, name: &str, default: T) -> Result<T, ConfigError> {
        match self.get(name) {
            Some(value) => int_of(name, value),
            None => Ok(default),
        }
    }

    /// A boolean key; unset, its default.
    pub fn bool(&self, name: &str) -> Result<bool, ConfigError> {
        parse_bool(name, self.text(name))
    }

    /// A list key (`ListOf`); unset, its default.
    pub fn list_of(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        let row = lookup(name).ok_or_else(|| invalid(name, "", "is not in the table of keys"))?;
        match row.kind {
            Kind::ListOf(allowed) => parse_list_of(name, self.text(name), allowed),
            _ => Err(invalid(name, self.text(name), "is not a list key")),
        }
    }

    /// A comma-separated text key as its non-empty items; unset, its default's.
    pub fn items(&self, name: &str) -> Vec<String> {
        items(self.text(name)).map(str::to_string).collect()
    }

    /// A listener-list key; unset, its default's (none for `advertised.listeners`).
    pub fn listeners(&self, name: &str) -> Result<Vec<Listener>, ConfigError> {
        parse_listeners(name, self.text(name))
    }

    /// A listener-names key; unset, its default's.
    pub fn listener_names(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        parse_listener_names(name, self.text(name))
    }

    /// A `host:port` list key; unset, empty.
    pub fn host_ports(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        parse_host_ports(name, self.text(name))
    }

    /// A voters key; unset, empty.
    pub fn voters(&self, name: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
        parse_voters(name, self.text(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kafkas_password_keys_and_their_listener_overrides_are_sensitive() {
        for (name, sensitive) in [
            ("delegation.token.secret.key", true),
            ("delegation.token.master.key", true),
            ("ssl.keystore.password", true),
            ("ssl.key.password", true),
            ("ssl.keystore.key", true),
            ("ssl.keystore.certificate.chain", true),
            ("ssl.truststore.password", true),
            ("ssl.truststore.certificates", true),
            ("sasl.jaas.config", true),
            ("password.encoder.secret", true),
            ("listener.name.external.ssl.keystore.password", true),
            ("listener.name.external.ssl.key.password", true),
            ("listener.name.sasl_plaintext.plain.sasl.jaas.config", true),
            ("listener.name.x.scram-sha-512.sasl.jaas.config", true),
            // Kafka: a key whose type is unknown is treated as sensitive.
            ("no.such.key", true),
            ("listener.name.x.no.such.key", true),
            ("ssl.keystore.location", false),
            ("ssl.truststore.location", false),
            ("delegation.token.max.lifetime.ms", false),
            ("log.retention.ms", false),
            ("listener.name.external.ssl.keystore.location", false),
            ("listener.name.external.max.connection.creation.rate", false),
            ("sasl.oauthbearer.jwks.endpoint.url", false),
        ] {
            assert_eq!(is_sensitive(name), sensitive, "{name}");
        }
        // Every Password row is one of Kafka's PASSWORD keys, nothing else is.
        let passwords: Vec<&str> = KEYS
            .iter()
            .filter(|k| k.kind == Kind::Password)
            .map(|k| k.name)
            .collect();
        assert_eq!(passwords.len(), 8, "{passwords:?}");
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        match check(&map(pairs)) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{pairs:?} accepted"),
        }
    }

    #[test]
    fn every_default_is_a_valid_value_and_every_name_is_once() {
        for (i, key) in KEYS.iter().enumerate() {
            if let Some(default) = key.default {
                check_value(key, default).unwrap_or_else(|e| panic!("{}: {e}", key.name));
            }
            assert!(!key.doc.is_empty(), "{}", key.name);
            assert!(
                KEYS[..i].iter().all(|other| other.name != key.name),
                "{} twice",
                key.name
            );
        }
    }

    #[test]
    fn defaults_shared_with_other_crates_agree() {
        let pairs = BTreeMap::new();
        let props = Props::new(&pairs);
        assert_eq!(
            props.int::<usize>("socket.request.max.bytes").unwrap(),
            strom_protocol::FRAME_BYTES_MAX_DEFAULT
        );
    }

    #[test]
    fn integers_say_their_range() {
        assert_eq!(
            error(&[("node.id", "-1")]),
            r#"config node.id: invalid value "-1": must be an integer >= 0"#
        );
        assert_eq!(
            error(&[("node.id", "abc")]),
            r#"config node.id: invalid value "abc": must be an integer from 0 to 2147483647"#
        );
        assert_eq!(
            error(&[("node.id", "2147483648")]),
            r#"config node.id: invalid value "2147483648": must be an integer <= 2147483647"#
        );
        assert_eq!(
            error(&[("num.partitions", "0")]),
            r#"config num.partitions: invalid value "0": must be an integer >= 1"#
        );
        assert_eq!(
            error(&[("socket.request.max.bytes", "x")]),
            r#"config socket.request.max.bytes: invalid value "x": must be an integer >= 1"#
        );
        assert_eq!(
            error(&[("leader.imbalance.per.broker.percentage", "101")]),
            r#"config leader.imbalance.per.broker.percentage: invalid value "101": must be an integer <= 100"#
        );
        assert_eq!(
            error(&[("connections.max.idle.ms", "ten")]),
            r#"config connections.max.idle.ms: invalid value "ten": must be an integer"#
        );
        assert_eq!(
            error(&[("controller.quorum.election.timeout.ms", "10")]),
            r#"config controller.quorum.election.timeout.ms: invalid value "10": must be an integer >= 50"#
        );
        // Values are trimmed; a typed read converts within the table's range.
        let pairs = map(&[
            ("num.partitions", " 7 "),
            ("default.replication.factor", "3"),
        ]);
        let props = Props::new(&pairs);
        assert_eq!(props.int::<i32>("num.partitions").unwrap(), 7);
        assert_eq!(props.int::<i16>("default.replication.factor").unwrap(), 3);
        assert_eq!(props.int::<u64>("fetch.max.bytes").unwrap(), 57_671_680);
        assert_eq!(
            props
                .int_or::<i16>("offsets.topic.replication.factor", 3)
                .unwrap(),
            3
        );
    }

    #[test]
    fn booleans_lists_and_topic_defaults() {
        assert_eq!(
            error(&[("delete.topic.enable", "yes")]),
            r#"config delete.topic.enable: invalid value "yes": must be true or false"#
        );
        let pairs = map(&[("auto.create.topics.enable", "FALSE")]);
        assert!(!Props::new(&pairs)
            .bool("auto.create.topics.enable")
            .unwrap());
        assert!(Props::new(&pairs).bool("delete.topic.enable").unwrap());
        assert_eq!(
            error(&[("process.roles", "broker,teapot")]),
            r#"config process.roles: invalid value "broker,teapot": must be one or more of broker, controller, comma-separated"#
        );
        assert!(error(&[("process.roles", "")]).contains("one or more of broker, controller"));
        assert!(error(&[("group.consumer.assignors", "sticky")]).contains("uniform, range"));
        let message = error(&[("log.segment.bytes", "-5")]);
        assert!(
            message.starts_with(r#"config log.segment.bytes: invalid value "-5": "#),
            "{message}"
        );
        let message = error(&[("strom.log.durability", "never")]);
        assert!(message.contains("config strom.log.durability"), "{message}");
    }

    #[test]
    fn addresses_and_listeners() {
        let message = error(&[("controller.quorum.voters", "1@nohost")]);
        assert!(
            message.starts_with(
                r#"config controller.quorum.voters: invalid value "1@nohost": must be id@host:port"#
            ),
            "{message}"
        );
        assert!(error(&[("controller.quorum.voters", "x@h:1")]).contains("the id is not"));
        assert!(error(&[("controller.quorum.voters", "1@h:1,1@h:2")]).contains("twice"));
        assert!(
            error(&[("controller.quorum.bootstrap.servers", "nohost")]).contains("nohost is not")
        );
        assert!(error(&[("listeners", "CONTROLLER:9093")]).contains("config listeners"));
        assert!(error(&[("listeners", "A://:1,a://:2")]).contains("A appears twice"));
        assert!(error(&[("controller.listener.names", "CON-TROLLER")]).contains("listener names"));
        // Kafka's ListenerName.normalised: names are upper-cased wherever they are written.
        let pairs = map(&[
            (
                "listeners",
                "plaintext://127.0.0.1:9092,Controller://[::1]:9093",
            ),
            ("controller.listener.names", "controller"),
            ("inter.broker.listener.name", "plaintext"),
        ]);
        let props = Props::new(&pairs);
        let listeners = props.listeners("listeners").unwrap();
        assert_eq!(
            listeners
                .iter()
                .map(|l| (l.name.as_str(), l.host.as_str(), l.port))
                .collect::<Vec<_>>(),
            vec![
                ("PLAINTEXT", "127.0.0.1", 9092),
                ("CONTROLLER", "::1", 9093)
            ]
        );
        assert_eq!(
            props.listener_names("controller.listener.names").unwrap(),
            vec!["CONTROLLER"]
        );
        assert_eq!(
            props.listener_names("inter.broker.listener.name").unwrap(),
            vec!["PLAINTEXT"]
        );
        assert_eq!(
            props.voters("controller.quorum.voters").unwrap(),
            BTreeMap::new()
        );
    }

    #[test]
    fn unknown_keys_are_returned_and_overrides_are_known() {
        let unknown = check(&map(&[
            ("some.future.key", "x"),
            ("listener.name.internal.ssl.client.auth", "required"),
            ("node.id", "3"),
        ]))
        .unwrap();
        assert_eq!(unknown, vec!["some.future.key".to_string()]);
        assert!(is_known("listener.name.x.sasl.enabled.mechanisms"));
        assert!(!is_known("no.such.key"));
        assert!(is_known("strom.http.ssl.keystore.location"));
    }

    /// The keys `docs/CONFIG.md` documents for `strom server` (its tables before "Schema
    /// registry", leaving out the dynamic-only and topic keys of "Partition moves").
    fn documented_keys() -> Vec<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIG.md");
        let text = std::fs::read_to_string(path).unwrap();
        let mut keys = Vec::new();
        let mut section = String::new();
        for line in text.lines() {
            if let Some(title) = line.strip_prefix("## ") {
                section = title.to_string();
                continue;
            }
            if section.starts_with("Schema registry") {
                break;
            }
            // Group configs are keys of a group resource, not server keys.
            if section.starts_with("Changing")
                || section.starts_with("Partition moves")
                || section.starts_with("Group configs")
            {
                continue;
            }
            let Some(first) = line.strip_prefix('|').and_then(|l| l.split('|').next()) else {
                continue;
            };
            // The topic key in brackets is the topic config's, not a server key.
            let first = first.split('[').next().unwrap_or_default();
            for (i, token) in first.split('`').enumerate() {
                // `-512` in "(and `-512`)" is a suffix, not a key.
                if i % 2 == 1
                    && !token.starts_with('-')
                    && !token.starts_with(LISTENER_PREFIX)
                    && !token.starts_with(HTTP_SSL_PREFIX)
                {
                    keys.push(token.to_string());
                }
            }
        }
        keys
    }

    #[test]
    fn config_md_documents_exactly_the_table() {
        let documented = documented_keys();
        for key in KEYS {
            assert!(
                documented.iter().any(|d| d == key.name),
                "{} is in the table but not in docs/CONFIG.md",
                key.name
            );
        }
        for name in &documented {
            assert!(
                lookup(name).is_some(),
                "{name} is in docs/CONFIG.md but not in the table"
            );
        }
    }
}
