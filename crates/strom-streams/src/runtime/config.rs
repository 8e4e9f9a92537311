//! `StreamsConfig`: Kafka Streams' property names and defaults, plus the client properties
//! passed through to the consumers and the producer.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use strom_client::{ConsumerConfig, OffsetReset, ProducerConfig, Properties};

use crate::error::{Result, StreamsError};

/// `processing.guarantee`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    /// Every input record is processed at least once: after a crash, records since the
    /// last commit are processed again (their output may appear twice).
    AtLeastOnce,
    /// Kafka's `exactly_once_v2`: one transactional producer per thread; output,
    /// changelog writes and the consumed offsets commit in one transaction every
    /// `commit.interval.ms` (default 100 ms); consumers read committed data only.
    ExactlyOnceV2,
}

impl FromStr for ProcessingGuarantee {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "at_least_once" => Ok(ProcessingGuarantee::AtLeastOnce),
            "exactly_once_v2" => Ok(ProcessingGuarantee::ExactlyOnceV2),
            other => Err(format!("{other:?} is not at_least_once or exactly_once_v2")),
        }
    }
}

/// `group.protocol`: how the stream threads get their tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// The classic consumer-group protocol (JoinGroup/SyncGroup) with the Streams-aware
    /// assignor run by the group leader (`assignor.rs`). The default, as in Kafka.
    Classic,
    /// KIP-1071's streams group protocol: every thread heartbeats (StreamsGroupHeartbeat)
    /// with its topology and owned tasks, and the broker assigns the tasks and creates
    /// the internal topics (`streams_group.rs`).
    Streams,
}

impl FromStr for GroupProtocol {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "classic" => Ok(GroupProtocol::Classic),
            "streams" => Ok(GroupProtocol::Streams),
            other => Err(format!("{other:?} is not classic or streams")),
        }
    }
}

/// Kafka Streams' `client.tag.` prefix: `client.tag.<key>=<value>` tags the instance.
const CLIENT_TAG_PREFIX: &str = "client.tag.";
/// Kafka Streams' bounds on client tags (`StreamsConfig.MAX_RACK_AWARE_ASSIGNMENT_TAG_*`).
const CLIENT_TAGS_MAX: usize = 5;
const CLIENT_TAG_KEY_MAX: usize = 20;
const CLIENT_TAG_VALUE_MAX: usize = 30;

/// Settings of one application instance.
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    /// `application.id`: the consumer group id and the prefix of internal topics.
    pub application_id: String,
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// `processing.guarantee` (default `at_least_once`).
    pub processing_guarantee: ProcessingGuarantee,
    /// `group.protocol` (default `classic`).
    pub group_protocol: GroupProtocol,
    /// `commit.interval.ms` (default 30000, as Kafka under at_least_once).
    pub commit_interval_ms: u64,
    /// `num.stream.threads` (default 1): each thread is a group member with its own
    /// consumer and producer.
    pub num_stream_threads: usize,
    /// `num.standby.replicas` (default 0).
    pub num_standby_replicas: usize,
    /// `state.dir` (default `/tmp/strom-streams`): persistent stores and checkpoints live
    /// in `<state.dir>/<application.id>/<task>/`. One instance per directory.
    pub state_dir: PathBuf,
    /// `application.server` (`host:port`): where this instance answers interactive
    /// queries; shared with the group so every instance knows who hosts which key.
    pub application_server: Option<String>,
    /// `replication.factor` of internal topics (default -1: the broker's default).
    pub replication_factor: i16,
    /// `poll.ms` (default 100): how long a thread waits for records.
    pub poll_ms: u64,
    /// `default.deserialization.exception.handler`: `LogAndFailExceptionHandler` (the
    /// default) stops the thread; `LogAndContinueExceptionHandler` skips the record.
    pub deserialization_continue: bool,
    /// `repartition.purge.interval.ms` (default 30000): how often consumed records of
    /// repartition topics are deleted.
    pub repartition_purge_interval_ms: u64,
    /// Client properties for every consumer, producer and admin client
    /// (`session.timeout.ms`, ...); `consumer.`, `producer.` and `admin.` prefixes aim one
    /// at one client type only.
    pub client_properties: Vec<(String, String)>,
    /// `group.instance.id`: static membership (`group.protocol=streams` only). Thread `n`
    /// (from 1) joins as `<group.instance.id>-<n>`, as Kafka Streams names it; a restart
    /// with the same id within the session timeout takes the same tasks back without
    /// moving the other members' tasks.
    pub group_instance_id: Option<String>,
    /// `client.tag.<key>=<value>`: the instance's client tags, sent when a thread joins a
    /// streams group (at most 5; keys up to 20 characters, values up to 30, as Kafka).
    pub client_tags: BTreeMap<String, String>,
}

impl StreamsConfig {
    /// Kafka Streams' defaults.
    pub fn new(application_id: &str, bootstrap_servers: &str) -> Self {
        StreamsConfig {
            application_id: application_id.to_string(),
            bootstrap_servers: bootstrap_servers.to_string(),
            processing_guarantee: ProcessingGuarantee::AtLeastOnce,
            group_protocol: GroupProtocol::Classic,
            commit_interval_ms: 30_000,
            num_stream_threads: 1,
            num_standby_replicas: 0,
            state_dir: PathBuf::from("/tmp/strom-streams"),
            application_server: None,
            replication_factor: -1,
            poll_ms: 100,
            deserialization_continue: false,
            repartition_purge_interval_ms: 30_000,
            client_properties: Vec::new(),
            group_instance_id: None,
            client_tags: BTreeMap::new(),
        }
    }

    /// Reads Kafka Streams' property names; the rest go to the clients.
    pub fn from_properties(props: &Properties) -> Result<Self> {
        let mut p = props.clone();
        let app = p
            .take("application.id")
            .ok_or_else(|| StreamsError::config("application.id", "is required"))?;
        let servers = p
            .take("bootstrap.servers")
            .ok_or_else(|| StreamsError::config("bootstrap.servers", "is required"))?;
        let mut c = StreamsConfig::new(&app, &servers);
        if let Some(v) = p.take("processing.guarantee") {
            c.processing_guarantee = v
                .parse()
                .map_err(|e| StreamsError::config("processing.guarantee", e))?;
            if c.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2 {
                c.commit_interval_ms = 100;
            }
        }
        if let Some(v) = p.take("group.protocol") {
            c.group_protocol = v
                .parse()
                .map_err(|e| StreamsError::config("group.protocol", e))?;
        }
        parse_into(&mut p, "commit.interval.ms", &mut c.commit_interval_ms)?;
        parse_into(&mut p, "num.stream.threads", &mut c.num_stream_threads)?;
        parse_into(&mut p, "num.standby.replicas", &mut c.num_standby_replicas)?;
        if let Some(v) = p.take("state.dir") {
            c.state_dir = PathBuf::from(v);
        }
        c.application_server = p.take("application.server").filter(|s| !s.is_empty());
        parse_into(&mut p, "replication.factor", &mut c.replication_factor)?;
        parse_into(&mut p, "poll.ms", &mut c.poll_ms)?;
        parse_into(
            &mut p,
            "repartition.purge.interval.ms",
            &mut c.repartition_purge_interval_ms,
        )?;
        if let Some(v) = p.take("default.deserialization.exception.handler") {
            c.deserialization_continue = v.contains("LogAndContinue");
        }
        c.group_instance_id = p.take("group.instance.id").filter(|s| !s.is_empty());
        for key in p.unused() {
            if let Some(tag) = key.strip_prefix(CLIENT_TAG_PREFIX) {
                if let Some(v) = p.take(&key) {
                    c.client_tags.insert(tag.to_string(), v);
                }
            }
        }
        c.check()?;
        for key in p.unused() {
            if let Some(v) = p.take(&key) {
                c.client_properties.push((key, v));
            }
        }
        if c.num_stream_threads == 0 {
            return Err(StreamsError::config(
                "num.stream.threads",
                "must be at least 1",
            ));
        }
        Ok(c)
    }

    /// Kafka Streams' checks of the settings that are not plain numbers.
    pub(crate) fn check(&self) -> Result<()> {
        if self.group_instance_id.is_some() && self.group_protocol != GroupProtocol::Streams {
            return Err(StreamsError::config(
                "group.instance.id",
                "static membership is served under group.protocol=streams only here (the \
                 classic consumer has no static membership); set group.protocol=streams or \
                 remove group.instance.id",
            ));
        }
        if self.client_tags.len() > CLIENT_TAGS_MAX {
            return Err(StreamsError::config(
                "client.tag.",
                format!(
                    "{} client tags, more than the {CLIENT_TAGS_MAX} Kafka Streams allows",
                    self.client_tags.len()
                ),
            ));
        }
        for (k, v) in &self.client_tags {
            if k.is_empty() || k.chars().count() > CLIENT_TAG_KEY_MAX {
                return Err(StreamsError::config(
                    &format!("{CLIENT_TAG_PREFIX}{k}"),
                    format!("a client tag key has 1 to {CLIENT_TAG_KEY_MAX} characters"),
                ));
            }
            if v.chars().count() > CLIENT_TAG_VALUE_MAX {
                return Err(StreamsError::config(
                    &format!("{CLIENT_TAG_PREFIX}{k}"),
                    format!("a client tag value has at most {CLIENT_TAG_VALUE_MAX} characters"),
                ));
            }
        }
        Ok(())
    }

    /// The `group.instance.id` of thread `index` (from 0): `<group.instance.id>-<index + 1>`,
    /// Kafka Streams' per-thread static member name.
    pub(crate) fn thread_instance_id(&self, index: usize) -> Option<String> {
        self.group_instance_id
            .as_ref()
            .map(|id| format!("{id}-{}", index + 1))
    }

    /// Adds a client property (see [`StreamsConfig::client_properties`]).
    pub fn set(&mut self, key: &str, value: &str) -> &mut Self {
        self.client_properties
            .push((key.to_string(), value.to_string()));
        self
    }

    fn client_props(&self, prefix: &str) -> Properties {
        let mut p = Properties::new();
        p.set("bootstrap.servers", self.bootstrap_servers.clone());
        p.set("client.id", format!("{}-{prefix}", self.application_id));
        for (k, v) in &self.client_properties {
            if let Some(rest) = k.strip_prefix(&format!("{prefix}.")) {
                p.set(rest, v.clone());
            } else if !["consumer.", "producer.", "admin."]
                .iter()
                .any(|other| k.starts_with(other))
            {
                p.set(k.clone(), v.clone());
            }
        }
        p
    }

    /// The config of a thread's group consumer: Kafka Streams' overrides (earliest,
    /// no auto commit) under the user's properties.
    pub(crate) fn consumer(&self) -> Result<ConsumerConfig> {
        let mut p = self.client_props("consumer");
        let mut c = ConsumerConfig::from_properties(&mut p)?;
        c.group_id = Some(self.application_id.clone());
        c.enable_auto_commit = false;
        if self.exactly_once() {
            // Repartition topics are written in transactions too: read only what commits.
            c.isolation_read_committed = true;
        }
        if !self
            .client_properties
            .iter()
            .any(|(k, _)| k.ends_with("auto.offset.reset"))
        {
            c.auto_offset_reset = OffsetReset::Earliest;
        }
        warn_unused(&p, "consumer");
        Ok(c)
    }

    /// The config of restore and global consumers: no group, from the earliest offset.
    pub(crate) fn restore_consumer(&self) -> Result<ConsumerConfig> {
        let mut p = self.client_props("consumer");
        let mut c = ConsumerConfig::from_properties(&mut p)?;
        c.group_id = None;
        c.enable_auto_commit = false;
        c.auto_offset_reset = OffsetReset::Earliest;
        // Changelogs of aborted transactions never reach a store.
        c.isolation_read_committed |= self.exactly_once();
        Ok(c)
    }

    /// Whether `processing.guarantee` is `exactly_once_v2`.
    pub fn exactly_once(&self) -> bool {
        self.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2
    }

    /// The config of a thread's producer (idempotent; `linger.ms` 100 as Kafka Streams).
    /// Under exactly_once_v2 it is transactional with `transactional_id`, and
    /// `transaction.timeout.ms` defaults to 10000 as in Kafka Streams.
    pub(crate) fn producer(&self, transactional_id: Option<String>) -> Result<ProducerConfig> {
        let mut p = self.client_props("producer");
        if !p.contains("linger.ms") {
            p.set("linger.ms", "100");
        }
        if let Some(id) = transactional_id {
            p.set("transactional.id", id);
            if !p.contains("transaction.timeout.ms") {
                p.set("transaction.timeout.ms", "10000");
            }
        }
        let c = ProducerConfig::from_properties(&mut p)?;
        warn_unused(&p, "producer");
        Ok(c)
    }

    pub(crate) fn admin(&self) -> Result<strom_client::ClientConfig> {
        let mut p = self.client_props("admin");
        Ok(strom_client::ClientConfig::from_properties(&mut p)?)
    }
}

fn warn_unused(p: &Properties, what: &str) {
    let unused = p.unused();
    if !unused.is_empty() {
        tracing::debug!(
            client = what,
            ?unused,
            "client properties not used by this client"
        );
    }
}

fn parse_into<T: FromStr>(p: &mut Properties, key: &str, out: &mut T) -> Result<()>
where
    T::Err: std::fmt::Display,
{
    if let Some(v) = p.take(key) {
        *out = v
            .trim()
            .parse()
            .map_err(|e| StreamsError::config(key, format!("{v:?}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_use_kafka_streams_names_and_pass_the_rest_to_clients() {
        let props: Properties = [
            ("application.id", "app"),
            ("bootstrap.servers", "h:1"),
            ("num.standby.replicas", "1"),
            ("commit.interval.ms", "200"),
            ("session.timeout.ms", "9000"),
            ("producer.linger.ms", "7"),
            ("admin.request.timeout.ms", "1234"),
        ]
        .into_iter()
        .collect();
        let c = StreamsConfig::from_properties(&props).unwrap();
        assert_eq!(c.num_standby_replicas, 1);
        assert_eq!(c.commit_interval_ms, 200);
        let consumer = c.consumer().unwrap();
        assert_eq!(consumer.session_timeout_ms, 9000);
        assert_eq!(consumer.group_id.as_deref(), Some("app"));
        assert!(!consumer.enable_auto_commit);
        assert_eq!(consumer.auto_offset_reset, OffsetReset::Earliest);
        assert_eq!(c.producer(None).unwrap().linger_ms, 7);
        assert_eq!(c.admin().unwrap().request_timeout_ms, 1234);
        assert_ne!(consumer.client.request_timeout_ms, 1234);
        let bad: Properties = [
            ("application.id", "a"),
            ("bootstrap.servers", "h:1"),
            ("processing.guarantee", "exactly_once"),
        ]
        .into_iter()
        .collect();
        assert!(StreamsConfig::from_properties(&bad).is_err());
        let eos: Properties = [
            ("application.id", "a"),
            ("bootstrap.servers", "h:1"),
            ("processing.guarantee", "exactly_once_v2"),
        ]
        .into_iter()
        .collect();
        let eos = StreamsConfig::from_properties(&eos).unwrap();
        assert_eq!(eos.processing_guarantee, ProcessingGuarantee::ExactlyOnceV2);
        assert_eq!(eos.commit_interval_ms, 100);
        assert!(eos.consumer().unwrap().isolation_read_committed);
        assert!(eos.restore_consumer().unwrap().isolation_read_committed);
        let producer = eos.producer(Some("a-p-1".into())).unwrap();
        assert_eq!(producer.transactional_id.as_deref(), Some("a-p-1"));
        assert_eq!(producer.transaction_timeout_ms, 10_000);
        assert!(!c.consumer().unwrap().isolation_read_committed);
        assert_eq!(c.group_protocol, GroupProtocol::Classic);
        let streams: Properties = [
            ("application.id", "a"),
            ("bootstrap.servers", "h:1"),
            ("group.protocol", "streams"),
        ]
        .into_iter()
        .collect();
        let streams = StreamsConfig::from_properties(&streams).unwrap();
        assert_eq!(streams.group_protocol, GroupProtocol::Streams);
        assert!(streams.client_properties.is_empty());
        let bad: Properties = [
            ("application.id", "a"),
            ("bootstrap.servers", "h:1"),
            ("group.protocol", "consumer"),
        ]
        .into_iter()
        .collect();
        assert!(StreamsConfig::from_properties(&bad).is_err());
    }

    #[test]
    fn static_membership_and_client_tags_are_read_and_bounded_as_kafka() {
        let base = [
            ("application.id", "app"),
            ("bootstrap.servers", "h:1"),
            ("group.protocol", "streams"),
            ("group.instance.id", "inst"),
            ("client.tag.zone", "eu-1"),
            ("client.tag.rack", "r7"),
        ];
        let c = StreamsConfig::from_properties(&base.into_iter().collect()).unwrap();
        assert_eq!(c.group_instance_id.as_deref(), Some("inst"));
        assert_eq!(c.thread_instance_id(0).as_deref(), Some("inst-1"));
        assert_eq!(c.thread_instance_id(2).as_deref(), Some("inst-3"));
        assert_eq!(
            c.client_tags,
            BTreeMap::from([
                ("rack".to_string(), "r7".to_string()),
                ("zone".to_string(), "eu-1".to_string())
            ])
        );
        assert!(c.client_properties.is_empty(), "{:?}", c.client_properties);
        // Static membership needs the streams protocol here.
        let classic: Properties = base
            .iter()
            .filter(|(k, _)| *k != "group.protocol")
            .copied()
            .collect();
        let e = StreamsConfig::from_properties(&classic).unwrap_err();
        assert!(e.to_string().contains("group.instance.id"), "{e}");
        // Kafka's bounds: 5 tags, keys up to 20 characters, values up to 30.
        let mut many: Properties = base.into_iter().collect();
        for k in ["a", "b", "c", "d"] {
            many.set(format!("client.tag.{k}"), "v");
        }
        assert!(StreamsConfig::from_properties(&many).is_err());
        let mut long_key: Properties = base.into_iter().collect();
        long_key.set(format!("client.tag.{}", "k".repeat(21)), "v");
        assert!(StreamsConfig::from_properties(&long_key).is_err());
        let mut long_value: Properties = base.into_iter().collect();
        long_value.set("client.tag.zone", "v".repeat(31));
        assert!(StreamsConfig::from_properties(&long_value).is_err());
        let mut ok_value: Properties = base.into_iter().collect();
        ok_value.set("client.tag.zone", "v".repeat(30));
        assert!(StreamsConfig::from_properties(&ok_value).is_ok());
    }
}
