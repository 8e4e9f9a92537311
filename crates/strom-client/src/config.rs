//! Typed client configuration read from Kafka's client property names, with Kafka's defaults.

use std::collections::BTreeMap;
use std::str::FromStr;

use strom_records::Compression;

use crate::error::{ClientError, Result};

/// Settings every client (admin, producer, consumer) shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// `bootstrap.servers`: `host:port` pairs tried in order until one answers.
    pub bootstrap_servers: Vec<String>,
    /// `client.id`, sent in every request header.
    pub client_id: String,
    /// `request.timeout.ms`: how long one request may wait for its response.
    pub request_timeout_ms: u64,
    /// `default.api.timeout.ms`: how long one API call may take, retries included.
    pub default_api_timeout_ms: u64,
    /// `retry.backoff.ms`: first wait before a retry.
    pub retry_backoff_ms: u64,
    /// `retry.backoff.max.ms`: the exponential backoff never waits longer than this.
    pub retry_backoff_max_ms: u64,
    /// `socket.connection.setup.timeout.ms`: TCP connect plus ApiVersions.
    pub connection_setup_timeout_ms: u64,
    /// `metadata.max.age.ms`: cached metadata older than this is refreshed.
    pub metadata_max_age_ms: u64,
    /// `receive.message.max.bytes` (librdkafka's name): the largest response frame accepted.
    pub frame_bytes_max: usize,
    /// `security.protocol` with its `ssl.*` and `sasl.*` settings.
    pub security: ClientSecurity,
}

/// How a client connects: `security.protocol` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL),
/// the TLS configuration built from the `ssl.*` keys (Java's PEM names or librdkafka's
/// `ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`), and SASL's
/// mechanism and credentials (`sasl.mechanism` with `sasl.username`/`sasl.password`, or the
/// `username`/`password` of `sasl.jaas.config`).
#[derive(Clone, Default)]
pub struct ClientSecurity {
    pub protocol: String,
    pub tls: Option<std::sync::Arc<strom_security::rustls::ClientConfig>>,
    /// (mechanism, user, password).
    pub sasl: Option<(String, String, String)>,
}

impl std::fmt::Debug for ClientSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSecurity")
            .field("protocol", &self.protocol)
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl.as_ref().map(|(m, u, _)| (m, u)))
            .finish()
    }
}

impl PartialEq for ClientSecurity {
    fn eq(&self, other: &Self) -> bool {
        self.protocol == other.protocol
            && self.sasl == other.sasl
            && self.tls.is_some() == other.tls.is_some()
    }
}

impl Eq for ClientSecurity {}

/// The client security keys (taken from the properties by [`ClientSecurity::from_properties`]).
const SECURITY_KEYS: &[&str] = &[
    "security.protocol",
    "sasl.mechanism",
    "sasl.username",
    "sasl.password",
    "sasl.jaas.config",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.truststore.password",
    "ssl.endpoint.identification.algorithm",
    "ssl.enabled.protocols",
    "ssl.cipher.suites",
];

impl ClientSecurity {
    /// Reads the security keys.
    pub fn from_properties(props: &mut Properties) -> Result<Self> {
        let mut taken = BTreeMap::new();
        for key in SECURITY_KEYS {
            if let Some(v) = props.take(key) {
                taken.insert(key.to_string(), v);
            }
        }
        let protocol = taken
            .get("security.protocol")
            .map(|p| p.trim().to_ascii_uppercase())
            .unwrap_or_else(|| "PLAINTEXT".to_string());
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => {
                return Err(config_error(
                    "security.protocol",
                    &format!("{other:?} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
                ))
            }
        };
        let tls = if tls {
            // librdkafka's names map onto Kafka's PEM ones.
            let lookup = |key: &str| -> Option<String> {
                let alias = match key {
                    "ssl.truststore.location" => "ssl.ca.location",
                    _ => "",
                };
                taken.get(key).or_else(|| taken.get(alias)).cloned()
            };
            let settings = match (
                taken.get("ssl.certificate.location"),
                taken.get("ssl.key.location"),
            ) {
                (Some(cert), Some(key)) => {
                    let (cert, key) = (cert.clone(), key.clone());
                    let read = |key_name: &str, path: &str| {
                        std::fs::read_to_string(path).map_err(|e| {
                            config_error(key_name, &format!("cannot read {path}: {e}"))
                        })
                    };
                    let chain = read("ssl.certificate.location", &cert)?;
                    let key_pem = read("ssl.key.location", &key)?;
                    let with_key = |k: &str| match k {
                        "ssl.keystore.key" => Some(key_pem.clone()),
                        "ssl.keystore.certificate.chain" => Some(chain.clone()),
                        _ => lookup(k),
                    };
                    strom_security::TlsSettings::from_lookup(&with_key)
                }
                (None, None) => strom_security::TlsSettings::from_lookup(&lookup),
                _ => {
                    return Err(config_error(
                        "ssl.certificate.location",
                        "ssl.certificate.location and ssl.key.location go together",
                    ))
                }
            }
            .map_err(|e| config_error(&e.key, &e.reason))?;
            Some(
                settings
                    .client_config()
                    .map_err(|e| config_error(&e.key, &e.reason))?,
            )
        } else {
            None
        };
        let sasl = if sasl {
            let mechanism = taken
                .get("sasl.mechanism")
                .map(|m| m.trim().to_ascii_uppercase())
                .unwrap_or_else(|| "GSSAPI".to_string());
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mechanism.as_str()) {
                return Err(config_error(
                    "sasl.mechanism",
                    &format!("{mechanism} is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"),
                ));
            }
            let jaas = match taken.get("sasl.jaas.config") {
                Some(text) => Some(
                    strom_security::JaasConfig::parse(text)
                        .map_err(|e| config_error("sasl.jaas.config", &e.to_string()))?,
                ),
                None => None,
            };
            let from_jaas = |name: &str| jaas.as_ref().and_then(|j| j.options.get(name).cloned());
            let user = taken
                .get("sasl.username")
                .cloned()
                .or_else(|| from_jaas("username"))
                .ok_or_else(|| config_error("sasl.username", "is required with SASL"))?;
            let password = taken
                .get("sasl.password")
                .cloned()
                .or_else(|| from_jaas("password"))
                .ok_or_else(|| config_error("sasl.password", "is required with SASL"))?;
            Some((mechanism, user, password))
        } else {
            None
        };
        Ok(ClientSecurity {
            protocol,
            tls,
            sasl,
        })
    }
}

impl ClientConfig {
    /// Kafka's defaults with the given bootstrap servers (comma-separated `host:port`).
    pub fn new(bootstrap_servers: &str) -> Self {
        ClientConfig {
            bootstrap_servers: split_list(bootstrap_servers),
            client_id: "strom-client".to_string(),
            request_timeout_ms: 30_000,
            default_api_timeout_ms: 60_000,
            retry_backoff_ms: 100,
            retry_backoff_max_ms: 1_000,
            connection_setup_timeout_ms: 10_000,
            metadata_max_age_ms: 300_000,
            frame_bytes_max: 104_857_600,
            security: ClientSecurity::default(),
        }
    }

    /// Reads Kafka property names; unknown names are left for the caller (see
    /// [`Properties::unused`]).
    pub fn from_properties(props: &mut Properties) -> Result<Self> {
        let servers = props
            .take("bootstrap.servers")
            .ok_or_else(|| config_error("bootstrap.servers", "is required"))?;
        let mut c = ClientConfig::new(&servers);
        if c.bootstrap_servers.is_empty() {
            return Err(config_error("bootstrap.servers", "lists no server"));
        }
        if let Some(v) = props.take("client.id") {
            c.client_id = v;
        }
        props.parse_into("request.timeout.ms", &mut c.request_timeout_ms)?;
        props.parse_into("default.api.timeout.ms", &mut c.default_api_timeout_ms)?;
        props.parse_into("retry.backoff.ms", &mut c.retry_backoff_ms)?;
        props.parse_into("retry.backoff.max.ms", &mut c.retry_backoff_max_ms)?;
        props.parse_into(
            "socket.connection.setup.timeout.ms",
            &mut c.connection_setup_timeout_ms,
        )?;
        props.parse_into("metadata.max.age.ms", &mut c.metadata_max_age_ms)?;
        props.parse_into("receive.message.max.bytes", &mut c.frame_bytes_max)?;
        c.security = ClientSecurity::from_properties(props)?;
        Ok(c)
    }
}

/// `acks`: how many replicas must have a batch before the broker answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: the broker sends no response; offsets are unknown (-1).
    None,
    /// `acks=1`: the leader has it.
    Leader,
    /// `acks=all` (or -1): every in-sync replica has it.
    All,
}

impl Acks {
    /// The wire value of the Produce request's `acks` field.
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl FromStr for Acks {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(format!("{other:?} is not one of 0, 1, all, -1")),
        }
    }
}

/// Producer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    pub client: ClientConfig,
    /// `acks` (default `all`).
    pub acks: Acks,
    /// `linger.ms` (default 5): how long a batch waits for more records.
    pub linger_ms: u64,
    /// `batch.size` (default 16384): a batch is sent once it holds this many bytes.
    pub batch_bytes: usize,
    /// `compression.type` (default `none`).
    pub compression: Compression,
    /// `enable.idempotence` (default true; needs `acks=all`).
    pub enable_idempotence: bool,
    /// `delivery.timeout.ms` (default 120000): a record fails if not acknowledged by then.
    pub delivery_timeout_ms: u64,
    /// `buffer.memory` (default 32 MiB): bytes of records waiting to be sent.
    pub buffer_memory_bytes: usize,
    /// `max.block.ms` (default 60000): how long `send` waits for metadata or buffer space.
    pub max_block_ms: u64,
    /// `max.request.size` (default 1 MiB): the largest record accepted.
    pub max_request_bytes: usize,
    /// `retries` (default `i32::MAX`, bounded by `delivery.timeout.ms`).
    pub retries: u32,
    /// `transactional.id` (default none): makes the producer transactional (see
    /// [`crate::Producer::init_transactions`]); needs idempotence.
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms` (default 60000): how long the coordinator lets a
    /// transaction stay open before it aborts it.
    pub transaction_timeout_ms: u64,
}

impl ProducerConfig {
    /// Kafka's producer defaults with the given bootstrap servers.
    pub fn new(bootstrap_servers: &str) -> Self {
        ProducerConfig {
            client: ClientConfig::new(bootstrap_servers),
            acks: Acks::All,
            linger_ms: 5,
            batch_bytes: 16_384,
            compression: Compression::None,
            enable_idempotence: true,
            delivery_timeout_ms: 120_000,
            buffer_memory_bytes: 33_554_432,
            max_block_ms: 60_000,
            max_request_bytes: 1_048_576,
            retries: i32::MAX as u32,
            transactional_id: None,
            transaction_timeout_ms: 60_000,
        }
    }

    /// Reads Kafka's producer property names. As in Kafka, idempotence left at its default
    /// is switched off by `acks` other than `all`; asked for explicitly, that is an error.
    pub fn from_properties(props: &mut Properties) -> Result<Self> {
        let client = ClientConfig::from_properties(props)?;
        let mut c = ProducerConfig {
            client,
            ..ProducerConfig::new("")
        };
        props.parse_into("acks", &mut c.acks)?;
        props.parse_into("linger.ms", &mut c.linger_ms)?;
        props.parse_into("batch.size", &mut c.batch_bytes)?;
        if let Some(v) = props.take("compression.type") {
            c.compression = parse_compression(&v)?;
        }
        let idempotence_set = props.contains("enable.idempotence");
        props.parse_into("enable.idempotence", &mut c.enable_idempotence)?;
        props.parse_into("delivery.timeout.ms", &mut c.delivery_timeout_ms)?;
        props.parse_into("buffer.memory", &mut c.buffer_memory_bytes)?;
        props.parse_into("max.block.ms", &mut c.max_block_ms)?;
        props.parse_into("max.request.size", &mut c.max_request_bytes)?;
        props.parse_into("retries", &mut c.retries)?;
        c.transactional_id = props.take("transactional.id").filter(|t| !t.is_empty());
        props.parse_into("transaction.timeout.ms", &mut c.transaction_timeout_ms)?;
        if c.transactional_id.is_some() {
            // As in Kafka: a transactional producer is idempotent; switching that off (or
            // acks other than all) contradicts `transactional.id`.
            if !c.enable_idempotence {
                return Err(config_error(
                    "transactional.id",
                    "needs enable.idempotence=true; remove enable.idempotence=false",
                ));
            }
            if c.acks != Acks::All {
                return Err(config_error(
                    "transactional.id",
                    "needs acks=all; set acks=all",
                ));
            }
        }
        if c.enable_idempotence && c.acks != Acks::All {
            if idempotence_set {
                return Err(config_error(
                    "enable.idempotence",
                    "needs acks=all; set acks=all or enable.idempotence=false",
                ));
            }
            c.enable_idempotence = false;
        }
        Ok(c)
    }
}

/// `compression.type` by Kafka's names.
pub fn parse_compression(name: &str) -> Result<Compression> {
    match name.trim() {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        other => Err(config_error(
            "compression.type",
            &format!("{other:?} is not one of none, gzip, snappy, lz4, zstd"),
        )),
    }
}

/// `auto.offset.reset`: where a consumer starts without a committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// `none`: fail with OFFSET_OUT_OF_RANGE-like error instead of guessing.
    None,
}

impl FromStr for OffsetReset {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "earliest" => Ok(OffsetReset::Earliest),
            "latest" => Ok(OffsetReset::Latest),
            "none" => Ok(OffsetReset::None),
            other => Err(format!("{other:?} is not one of earliest, latest, none")),
        }
    }
}

/// Consumer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    pub client: ClientConfig,
    /// `group.id`: needed for `subscribe` and for commits.
    pub group_id: Option<String>,
    /// `enable.auto.commit` (default true when a group is set).
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (default 5000).
    pub auto_commit_interval_ms: u64,
    /// `auto.offset.reset` (default latest).
    pub auto_offset_reset: OffsetReset,
    /// `session.timeout.ms` (default 45000).
    pub session_timeout_ms: u64,
    /// `heartbeat.interval.ms` (default 3000).
    pub heartbeat_interval_ms: u64,
    /// `max.poll.interval.ms` (default 300000), sent as the rebalance timeout.
    pub max_poll_interval_ms: u64,
    /// `fetch.min.bytes` (default 1).
    pub fetch_min_bytes: i32,
    /// `fetch.max.bytes` (default 52428800).
    pub fetch_max_bytes: i32,
    /// `fetch.max.wait.ms` (default 500).
    pub fetch_max_wait_ms: i32,
    /// `max.partition.fetch.bytes` (default 1048576).
    pub max_partition_fetch_bytes: i32,
    /// `max.poll.records` (default 500).
    pub max_poll_records: usize,
    /// `isolation.level=read_committed` (default read_uncommitted): hide records of
    /// aborted transactions.
    pub isolation_read_committed: bool,
}

impl ConsumerConfig {
    /// Kafka's consumer defaults with the given bootstrap servers and no group.
    pub fn new(bootstrap_servers: &str) -> Self {
        ConsumerConfig {
            client: ClientConfig::new(bootstrap_servers),
            group_id: None,
            enable_auto_commit: true,
            auto_commit_interval_ms: 5_000,
            auto_offset_reset: OffsetReset::Latest,
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 3_000,
            max_poll_interval_ms: 300_000,
            fetch_min_bytes: 1,
            fetch_max_bytes: 52_428_800,
            fetch_max_wait_ms: 500,
            max_partition_fetch_bytes: 1_048_576,
            max_poll_records: 500,
            isolation_read_committed: false,
        }
    }

    /// Reads Kafka's consumer property names.
    pub fn from_properties(props: &mut Properties) -> Result<Self> {
        let client = ClientConfig::from_properties(props)?;
        let mut c = ConsumerConfig {
            client,
            ..ConsumerConfig::new("")
        };
        c.group_id = props.take("group.id").filter(|g| !g.is_empty());
        props.parse_into("enable.auto.commit", &mut c.enable_auto_commit)?;
        props.parse_into("auto.commit.interval.ms", &mut c.auto_commit_interval_ms)?;
        props.parse_into("auto.offset.reset", &mut c.auto_offset_reset)?;
        props.parse_into("session.timeout.ms", &mut c.session_timeout_ms)?;
        props.parse_into("heartbeat.interval.ms", &mut c.heartbeat_interval_ms)?;
        props.parse_into("max.poll.interval.ms", &mut c.max_poll_interval_ms)?;
        props.parse_into("fetch.min.bytes", &mut c.fetch_min_bytes)?;
        props.parse_into("fetch.max.bytes", &mut c.fetch_max_bytes)?;
        props.parse_into("fetch.max.wait.ms", &mut c.fetch_max_wait_ms)?;
        props.parse_into(
            "max.partition.fetch.bytes",
            &mut c.max_partition_fetch_bytes,
        )?;
        props.parse_into("max.poll.records", &mut c.max_poll_records)?;
        if let Some(v) = props.take("isolation.level") {
            c.isolation_read_committed = match v.trim() {
                "read_committed" => true,
                "read_uncommitted" => false,
                other => {
                    return Err(config_error(
                        "isolation.level",
                        &format!("{other:?} is not read_committed or read_uncommitted"),
                    ))
                }
            };
        }
        Ok(c)
    }
}

/// `share.acknowledgement.mode`: how a share consumer acknowledges what it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareAcknowledgementMode {
    /// `implicit` (Kafka's default): the next poll, commit or close accepts every record
    /// the previous poll returned.
    Implicit,
    /// `explicit`: each record is acknowledged with
    /// [`crate::ShareConsumer::acknowledge`] before the next poll.
    Explicit,
}

impl FromStr for ShareAcknowledgementMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "implicit" => Ok(ShareAcknowledgementMode::Implicit),
            "explicit" => Ok(ShareAcknowledgementMode::Explicit),
            other => Err(format!("{other:?} is not implicit or explicit")),
        }
    }
}

/// Share consumer settings (KIP-932's `KafkaShareConsumer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareConsumerConfig {
    pub client: ClientConfig,
    /// `group.id`: the share group (required).
    pub group_id: String,
    /// `share.acknowledgement.mode` (default implicit).
    pub acknowledgement_mode: ShareAcknowledgementMode,
    /// `fetch.min.bytes` (default 1).
    pub fetch_min_bytes: i32,
    /// `fetch.max.bytes` (default 52428800).
    pub fetch_max_bytes: i32,
    /// `fetch.max.wait.ms` (default 500).
    pub fetch_max_wait_ms: i32,
    /// `max.poll.records` (default 500): records one poll returns, and asked per ShareFetch.
    pub max_poll_records: usize,
}

impl ShareConsumerConfig {
    /// Kafka's share consumer defaults for `group_id` with the given bootstrap servers.
    pub fn new(bootstrap_servers: &str, group_id: &str) -> Self {
        ShareConsumerConfig {
            client: ClientConfig::new(bootstrap_servers),
            group_id: group_id.to_string(),
            acknowledgement_mode: ShareAcknowledgementMode::Implicit,
            fetch_min_bytes: 1,
            fetch_max_bytes: 52_428_800,
            fetch_max_wait_ms: 500,
            max_poll_records: 500,
        }
    }

    /// Reads Kafka's share consumer property names (`group.id` is required).
    pub fn from_properties(props: &mut Properties) -> Result<Self> {
        let client = ClientConfig::from_properties(props)?;
        let group_id = props
            .take("group.id")
            .filter(|g| !g.is_empty())
            .ok_or_else(|| config_error("group.id", "a share consumer needs a group.id"))?;
        let mut c = ShareConsumerConfig {
            client,
            ..ShareConsumerConfig::new("", &group_id)
        };
        props.parse_into("share.acknowledgement.mode", &mut c.acknowledgement_mode)?;
        props.parse_into("fetch.min.bytes", &mut c.fetch_min_bytes)?;
        props.parse_into("fetch.max.bytes", &mut c.fetch_max_bytes)?;
        props.parse_into("fetch.max.wait.ms", &mut c.fetch_max_wait_ms)?;
        props.parse_into("max.poll.records", &mut c.max_poll_records)?;
        if c.max_poll_records == 0 {
            return Err(config_error("max.poll.records", "must be at least 1"));
        }
        Ok(c)
    }
}

/// Kafka-style `key=value` properties; each `from_properties` takes the keys it knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    values: BTreeMap<String, String>,
}

impl Properties {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` (later values win).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.values.insert(key.into(), value.into());
        self
    }

    /// Parses `key=value` lines (a `.properties` file): `#`/`!` comments and blank lines
    /// skipped, whitespace around keys and values trimmed.
    pub fn parse(text: &str) -> Result<Self> {
        let mut props = Properties::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .or_else(|| line.split_once(':'))
                .ok_or_else(|| config_error(line, "expected key=value"))?;
            props.set(k.trim(), v.trim());
        }
        Ok(props)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Removes and returns `key`.
    pub fn take(&mut self, key: &str) -> Option<String> {
        self.values.remove(key)
    }

    /// Keys no config has taken (typos, or settings of another client type).
    pub fn unused(&self) -> Vec<String> {
        self.values.keys().cloned().collect()
    }

    fn parse_into<T>(&mut self, key: &str, out: &mut T) -> Result<()>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        if let Some(v) = self.take(key) {
            *out = v
                .trim()
                .parse()
                .map_err(|e| config_error(key, &format!("{v:?}: {e}")))?;
        }
        Ok(())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Properties {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut p = Properties::new();
        for (k, v) in iter {
            p.set(k, v);
        }
        p
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn config_error(key: &str, reason: &str) -> ClientError {
    ClientError::Config {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_consumer_properties_need_a_group_and_read_the_acknowledgement_mode() {
        let props = |pairs: &[(&str, &str)]| -> Properties { pairs.iter().copied().collect() };
        let mut p = props(&[
            ("bootstrap.servers", "a:1"),
            ("group.id", "workers"),
            ("share.acknowledgement.mode", "explicit"),
            ("max.poll.records", "7"),
        ]);
        let c = ShareConsumerConfig::from_properties(&mut p).unwrap();
        assert_eq!(c.group_id, "workers");
        assert_eq!(c.acknowledgement_mode, ShareAcknowledgementMode::Explicit);
        assert_eq!((c.max_poll_records, c.fetch_max_wait_ms), (7, 500));
        assert!(p.unused().is_empty());

        let defaults = ShareConsumerConfig::new("a:1", "g");
        assert_eq!(
            defaults.acknowledgement_mode,
            ShareAcknowledgementMode::Implicit
        );
        for bad in [
            &[("bootstrap.servers", "a:1")][..],
            &[
                ("bootstrap.servers", "a:1"),
                ("group.id", "g"),
                ("share.acknowledgement.mode", "auto"),
            ],
            &[
                ("bootstrap.servers", "a:1"),
                ("group.id", "g"),
                ("max.poll.records", "0"),
            ],
        ] {
            assert!(
                ShareConsumerConfig::from_properties(&mut props(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn producer_properties_use_kafka_names_and_defaults() {
        let mut p: Properties = [
            ("bootstrap.servers", "a:1, b:2"),
            ("linger.ms", "20"),
            ("compression.type", "zstd"),
            ("acks", "1"),
            ("foo", "bar"),
        ]
        .into_iter()
        .collect();
        let c = ProducerConfig::from_properties(&mut p).unwrap();
        assert_eq!(c.client.bootstrap_servers, vec!["a:1", "b:2"]);
        assert_eq!(c.linger_ms, 20);
        assert_eq!(c.batch_bytes, 16_384);
        assert_eq!(c.compression, Compression::Zstd);
        assert_eq!(c.acks, Acks::Leader);
        assert!(
            !c.enable_idempotence,
            "acks=1 turns default idempotence off"
        );
        assert_eq!(p.unused(), vec!["foo"]);
    }

    #[test]
    fn explicit_idempotence_with_acks_1_is_an_error() {
        let mut p: Properties = [
            ("bootstrap.servers", "a:1"),
            ("acks", "1"),
            ("enable.idempotence", "true"),
        ]
        .into_iter()
        .collect();
        assert!(ProducerConfig::from_properties(&mut p).is_err());
    }

    #[test]
    fn consumer_properties_and_file_syntax() {
        let mut p = Properties::parse(
            "# comment\nbootstrap.servers=h:9092\ngroup.id = g\nauto.offset.reset=earliest\n",
        )
        .unwrap();
        let c = ConsumerConfig::from_properties(&mut p).unwrap();
        assert_eq!(c.group_id.as_deref(), Some("g"));
        assert_eq!(c.auto_offset_reset, OffsetReset::Earliest);
        let mut bad: Properties = [("bootstrap.servers", "h:1"), ("fetch.min.bytes", "x")]
            .into_iter()
            .collect();
        assert!(ConsumerConfig::from_properties(&mut bad).is_err());
    }
}
