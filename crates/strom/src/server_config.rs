//! The metadata quorum's view of the configuration: Kafka (KRaft) keys read through
//! strom-broker's one table of keys and parser (`config_keys.rs`, the same rules and
//! defaults the broker reads), plus Kafka's checks of `process.roles` against the quorum and
//! listener keys. Every error is in the table's format: `config KEY: invalid value "V": ...`.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use strom_broker::config_keys::Props;
use strom_broker::{ConfigError, Listener};
use strom_meta::ControllerConfig;
use strom_raft::{LogConfig, NodeConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Broker,
    Controller,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `node.id`; Kafka requires it, Strom defaults it to 1 so a bare `strom server` runs.
    pub node_id: u64,
    /// `cluster.id` when the configuration sets it: `meta.properties` must then agree.
    pub cluster_id: Option<String>,
    pub process_roles: Vec<Role>,
    /// `controller.quorum.voters`, `id@host:port,...`; empty means this node alone.
    pub voters: BTreeMap<u64, String>,
    /// `controller.quorum.bootstrap.servers` (KIP-853), `host:port,...`: the controllers a
    /// node that is not a static voter asks to join the quorum.
    pub bootstrap_servers: Vec<String>,
    pub controller_listener_names: Vec<String>,
    /// Whether `controller.listener.names` was given (else a single node without a
    /// controller listener binds one on a free loopback port).
    pub controller_listener_names_set: bool,
    pub listeners: Vec<Listener>,
    /// `advertised.listeners` (the broker reads it too; here only for the address a
    /// broker-only node's metadata replication endpoint is reached at).
    pub advertised_listeners: Vec<Listener>,
    pub log_dirs: Vec<PathBuf>,
    /// `metadata.log.dir`; defaults to the first of `log.dirs`.
    pub metadata_log_dir: Option<PathBuf>,
    pub election_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub metadata_log_segment_bytes: u64,
    pub snapshot_interval_entries: u64,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub broker_session_timeout_ms: i64,
    pub delete_topic_enable: bool,
    /// Leader elections (read by the controller): `unclean.leader.election.enable`,
    /// `unclean.leader.election.interval.ms`, `auto.leader.rebalance.enable`,
    /// `leader.imbalance.check.interval.seconds`, `leader.imbalance.per.broker.percentage`.
    pub unclean_leader_election_enable: bool,
    pub unclean_leader_election_interval_ms: u64,
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_seconds: u64,
    /// `delegation.token.max.lifetime.ms`, `delegation.token.expiry.time.ms`,
    /// `delegation.token.expiry.check.interval.ms`: the controller's token lifetimes.
    pub delegation_token_max_lifetime_ms: i64,
    pub delegation_token_expiry_time_ms: i64,
    pub delegation_token_expiry_check_interval_ms: i64,
    pub leader_imbalance_per_broker_percentage: u32,
    /// The controller listener's protocol, TLS and SASL (`listeners::controller_security`):
    /// this node's quorum listener and its connections to the quorum use them.
    pub quorum_security: strom_raft::QuorumSecurity,
}

/// Name of the metadata log directory inside `metadata.log.dir`, as in Kafka.
pub const METADATA_TOPIC_DIR: &str = "__cluster_metadata-0";

impl ServerConfig {
    /// Reads the quorum's keys from properties checked by `config_keys::check` (values and
    /// defaults from the table), then checks them against each other.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<ServerConfig, ConfigError> {
        let quorum_security = strom_broker::listeners::controller_security(props)?;
        let props = Props::new(props);
        let node_id = match props.get("node.id") {
            Some(_) => props.int("node.id")?,
            None => props.int("broker.id")?,
        };
        let log_dirs = match props.get("log.dirs") {
            Some(_) => props.items("log.dirs"),
            None => match props.get("log.dir") {
                Some(dir) => vec![dir.to_string()],
                None => props.items("log.dirs"),
            },
        };
        let process_roles = props
            .list_of("process.roles")?
            .iter()
            .map(|role| match role.as_str() {
                "controller" => Role::Controller,
                _ => Role::Broker,
            })
            .collect();
        let config = ServerConfig {
            node_id,
            cluster_id: props.get("cluster.id").map(str::to_string),
            process_roles,
            voters: props.voters("controller.quorum.voters")?,
            bootstrap_servers: props.host_ports("controller.quorum.bootstrap.servers")?,
            controller_listener_names: props.listener_names("controller.listener.names")?,
            controller_listener_names_set: props.is_set("controller.listener.names"),
            listeners: props.listeners("listeners")?,
            advertised_listeners: props.listeners("advertised.listeners")?,
            log_dirs: log_dirs.into_iter().map(PathBuf::from).collect(),
            metadata_log_dir: props.get("metadata.log.dir").map(PathBuf::from),
            election_timeout_ms: props.int("controller.quorum.election.timeout.ms")?,
            request_timeout_ms: props.int("request.timeout.ms")?,
            metadata_log_segment_bytes: props.int("metadata.log.segment.bytes")?,
            snapshot_interval_entries: props.int("strom.metadata.snapshot.interval.entries")?,
            num_partitions: props.int("num.partitions")?,
            default_replication_factor: props.int("default.replication.factor")?,
            broker_session_timeout_ms: props.int("broker.session.timeout.ms")?,
            delete_topic_enable: props.bool("delete.topic.enable")?,
            unclean_leader_election_enable: props.bool("unclean.leader.election.enable")?,
            unclean_leader_election_interval_ms: props
                .int("unclean.leader.election.interval.ms")?,
            auto_leader_rebalance_enable: props.bool("auto.leader.rebalance.enable")?,
            leader_imbalance_check_interval_seconds: props
                .int("leader.imbalance.check.interval.seconds")?,
            leader_imbalance_per_broker_percentage: props
                .int("leader.imbalance.per.broker.percentage")?,
            quorum_security,
            delegation_token_max_lifetime_ms: props.int("delegation.token.max.lifetime.ms")?,
            delegation_token_expiry_time_ms: props.int("delegation.token.expiry.time.ms")?,
            delegation_token_expiry_check_interval_ms: props
                .int("delegation.token.expiry.check.interval.ms")?,
        };
        if config.log_dirs.is_empty() && config.metadata_log_dir.is_none() {
            return Err(conflict("log.dirs", "", "needs at least one directory"));
        }
        config.validate_roles(&props)?;
        Ok(config)
    }

    /// Kafka's checks of `process.roles` against the quorum and listener keys (KafkaConfig's
    /// `validateValues`, in Kafka's words), each naming the key at fault and its value.
    fn validate_roles(&self, props: &Props<'_>) -> Result<(), ConfigError> {
        let voters = || {
            self.voters
                .iter()
                .map(|(id, addr)| format!("{id}@{addr}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let fault = |key: &str, reason: String| conflict(key, props.text(key), &reason);
        let is_controller_listener =
            |l: &Listener| self.controller_listener_names.contains(&l.name);
        if !self.runs_controller() {
            if self.voters.is_empty() && self.bootstrap_servers.is_empty() {
                return Err(fault(
                    "process.roles",
                    "a node with just the broker role needs the quorum: set \
                     controller.quorum.bootstrap.servers to the controllers' host:port, or \
                     controller.quorum.voters to id@host:port of each"
                        .into(),
                ));
            }
            if self.voters.contains_key(&self.node_id) {
                return Err(fault(
                    "controller.quorum.voters",
                    format!(
                        "if process.roles contains just the 'broker' role, the node id {} must \
                         not be included in the set of voters controller.quorum.voters={}",
                        self.node_id,
                        voters()
                    ),
                ));
            }
            if self.controller_listener_names.is_empty() {
                return Err(fault(
                    "controller.listener.names",
                    "must contain at least one value when running KRaft with just the broker \
                     role"
                        .into(),
                ));
            }
            if let Some(l) = self.listeners.iter().find(|l| is_controller_listener(l)) {
                return Err(fault(
                    "listeners",
                    format!(
                        "controller.listener.names must not contain a value appearing in the \
                         'listeners' configuration when running KRaft with just the broker role \
                         (listener {})",
                        l.name
                    ),
                ));
            }
            return Ok(());
        }
        if !self.voters.is_empty() && !self.voters.contains_key(&self.node_id) {
            return Err(fault(
                "controller.quorum.voters",
                format!(
                    "if process.roles contains the 'controller' role, the node id {} must be \
                     included in the set of voters controller.quorum.voters={}",
                    self.node_id,
                    voters()
                ),
            ));
        }
        self.controller_listener()?;
        if !self.runs_broker() {
            if let Some(l) = self.listeners.iter().find(|l| !is_controller_listener(l)) {
                return Err(fault(
                    "listeners",
                    format!(
                        "the listeners config must only contain KRaft controller listeners from \
                         controller.listener.names when process.roles=controller (listener {} \
                         is not one of {})",
                        l.name,
                        self.controller_listener_names.join(",")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The listener named first in `controller.listener.names`. A single node (no voters)
    /// whose `listeners` name no controller listener, and that did not name one, gets one on
    /// a free loopback port: nothing outside the process needs to reach it, so
    /// `listeners=PLAINTEXT://127.0.0.1:9092` alone runs a whole node.
    pub fn controller_listener(&self) -> Result<Listener, ConfigError> {
        let names = self.controller_listener_names.join(",");
        let Some(name) = self.controller_listener_names.first() else {
            return Err(conflict(
                "controller.listener.names",
                &names,
                "must name the controller listener",
            ));
        };
        if let Some(listener) = self.listeners.iter().find(|l| &l.name == name) {
            return Ok(listener.clone());
        }
        if self.voters.is_empty()
            && self.bootstrap_servers.is_empty()
            && !self.controller_listener_names_set
        {
            return Ok(Listener {
                name: name.clone(),
                host: "127.0.0.1".into(),
                port: 0,
            });
        }
        Err(conflict(
            "controller.listener.names",
            &names,
            &format!("listeners has no entry for controller listener {name}: add {name}://host:port to listeners"),
        ))
    }

    /// Whether this node runs the Kafka broker beside its quorum member.
    pub fn runs_broker(&self) -> bool {
        self.process_roles.contains(&Role::Broker)
    }

    /// Whether this node is a controller (a voter, or one to be added); a broker-only node
    /// replicates the metadata log as an observer.
    pub fn runs_controller(&self) -> bool {
        self.process_roles.contains(&Role::Controller)
    }

    /// Where a broker-only node's metadata replication endpoint binds (a free port on the
    /// first listener's host: the leader pushes the log there) and the host it is reached
    /// at (the first advertised listener's, else the listener's, else loopback).
    fn observer_endpoint(&self) -> Result<(SocketAddr, Option<String>), String> {
        let host = self
            .listeners
            .first()
            .map(|l| l.host.clone())
            .unwrap_or_default();
        let listen_addr = resolve(&host, 0)?;
        let advertised = self
            .advertised_listeners
            .first()
            .map(|l| l.host.clone())
            .filter(|h| !h.is_empty())
            .or_else(|| Some(host).filter(|h| !h.is_empty() && h != "0.0.0.0" && h != "::"));
        Ok((listen_addr, advertised))
    }

    /// The directories this node writes in, each with the key that names it: the directory
    /// holding `__cluster_metadata-0` (`metadata.log.dir`, else the first of `log.dirs`) and,
    /// when the node runs a broker or has no `metadata.log.dir`, every one of `log.dirs`.
    /// Each holds a `meta.properties` (`storage.rs`).
    pub fn storage_dirs(&self) -> Vec<(&'static str, PathBuf)> {
        let mut dirs: Vec<(&'static str, PathBuf)> = Vec::new();
        if let Some(dir) = &self.metadata_log_dir {
            dirs.push(("metadata.log.dir", dir.clone()));
        }
        if self.runs_broker() || self.metadata_log_dir.is_none() {
            for dir in &self.log_dirs {
                if !dirs.iter().any(|(_, d)| d == dir) {
                    dirs.push(("log.dirs", dir.clone()));
                }
            }
        }
        dirs
    }

    /// Where the raft log of the metadata lives.
    pub fn metadata_dir(&self) -> PathBuf {
        let base = self
            .metadata_log_dir
            .clone()
            .or_else(|| self.log_dirs.first().cloned())
            .unwrap_or_else(|| PathBuf::from("./data"));
        base.join(METADATA_TOPIC_DIR)
    }

    pub fn node_config(&self) -> Result<NodeConfig, String> {
        let (listen_addr, advertised_host) = if self.runs_controller() {
            let listener = self.controller_listener().map_err(|e| e.to_string())?;
            (resolve(&listener.host, listener.port)?, None)
        } else {
            self.observer_endpoint()?
        };
        let mut node = NodeConfig::single(self.node_id, listen_addr, self.metadata_dir());
        node.voters = self.voters.clone();
        node.bootstrap_servers = self.bootstrap_servers.clone();
        node.observer = !self.runs_controller();
        node.security = self.quorum_security.clone();
        // The port is known once bound: the node appends it (see `advertised_addr`).
        node.advertised_host = advertised_host;
        node.election_timeout_min_ms = self.election_timeout_ms;
        node.election_timeout_max_ms = self.election_timeout_ms * 2;
        node.heartbeat_interval_ms = (self.election_timeout_ms / 5).max(10);
        node.connect_timeout_ms = self.election_timeout_ms.min(1000);
        node.submit_timeout_ms = self.request_timeout_ms;
        node.snapshot_entries_interval = self.snapshot_interval_entries;
        node.log = LogConfig {
            segment_bytes: self.metadata_log_segment_bytes,
            ..LogConfig::default()
        };
        node.validate().map_err(|e| e.to_string())?;
        Ok(node)
    }

    pub fn controller_config(&self) -> ControllerConfig {
        ControllerConfig {
            num_partitions: self.num_partitions,
            default_replication_factor: self.default_replication_factor,
            broker_session_timeout_ms: self.broker_session_timeout_ms,
            delete_topic_enable: self.delete_topic_enable,
            unclean_leader_election_enable: self.unclean_leader_election_enable,
            unclean_leader_election_interval_ms: millis(self.unclean_leader_election_interval_ms),
            auto_leader_rebalance_enable: self.auto_leader_rebalance_enable,
            leader_imbalance_check_interval_ms: millis(
                self.leader_imbalance_check_interval_seconds
                    .saturating_mul(1000),
            ),
            leader_imbalance_per_broker_percentage: self.leader_imbalance_per_broker_percentage,
            delegation_token_max_lifetime_ms: self.delegation_token_max_lifetime_ms,
            delegation_token_expiry_time_ms: self.delegation_token_expiry_time_ms,
            delegation_token_expiry_check_interval_ms: self
                .delegation_token_expiry_check_interval_ms,
            ..ControllerConfig::default()
        }
    }
}

fn millis(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

pub(crate) fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port} resolves to no address"))
}

/// An error of a key checked against others, in the table's one format.
fn conflict(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
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
    fn kraft_keys_become_a_node_config() {
        let pairs = props(&[
            ("node.id", "2"),
            ("process.roles", "broker,controller"),
            (
                "controller.quorum.voters",
                "1@127.0.0.1:19093,2@127.0.0.1:19094,3@127.0.0.1:19095",
            ),
            ("controller.listener.names", "CONTROLLER"),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19094",
            ),
            ("log.dirs", "/tmp/a,/tmp/b"),
            ("controller.quorum.election.timeout.ms", "500"),
            ("some.future.key", "x"),
        ]);
        // Unknown keys are the table's to report; the quorum ignores them.
        let warnings = strom_broker::config_keys::check(&pairs).unwrap();
        assert_eq!(warnings, vec!["some.future.key".to_string()]);
        let config = ServerConfig::from_properties(&pairs).unwrap();
        let node = config.node_config().unwrap();
        assert_eq!(node.node_id, 2);
        assert_eq!(node.listen_addr, "127.0.0.1:19094".parse().unwrap());
        assert_eq!(node.voters.len(), 3);
        assert_eq!(node.data_dir, PathBuf::from("/tmp/a/__cluster_metadata-0"));
        assert_eq!(
            (node.election_timeout_min_ms, node.heartbeat_interval_ms),
            (500, 100)
        );
    }

    #[test]
    fn defaults_are_a_single_voter() {
        let config = ServerConfig::from_properties(&BTreeMap::new()).unwrap();
        let node = config.node_config().unwrap();
        assert_eq!(node.effective_voters().len(), 1);
        assert_eq!(node.listen_addr.port(), 9093);
    }

    #[test]
    fn a_single_node_without_a_controller_listener_gets_a_private_one() {
        let config =
            ServerConfig::from_properties(&props(&[("listeners", "PLAINTEXT://127.0.0.1:19092")]))
                .unwrap();
        let node = config.node_config().unwrap();
        assert_eq!(node.listen_addr, "127.0.0.1:0".parse().unwrap());
        assert!(config.runs_broker());
        // With voters the controller listener must be given.
        let err = ServerConfig::from_properties(&props(&[
            ("listeners", "PLAINTEXT://127.0.0.1:19092"),
            ("controller.quorum.voters", "1@127.0.0.1:19093"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("CONTROLLER"), "{err}");
    }

    #[test]
    fn listener_names_are_case_insensitive_as_in_kafka() {
        let props: BTreeMap<String, String> = [
            (
                "listeners",
                "plaintext://127.0.0.1:9092,Controller://127.0.0.1:9093",
            ),
            ("controller.listener.names", "controller"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = ServerConfig::from_properties(&props).unwrap();
        let controller = config.controller_listener().unwrap();
        assert_eq!(
            (controller.name.as_str(), controller.port),
            ("CONTROLLER", 9093)
        );
        assert_eq!(config.listeners[0].name, "PLAINTEXT");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let cases = [
            ("node.id", "abc", "node.id"),
            (
                "controller.quorum.voters",
                "1@nohost",
                "controller.quorum.voters",
            ),
            (
                "controller.quorum.voters",
                "x@h:1",
                "controller.quorum.voters",
            ),
            ("listeners", "CONTROLLER:9093", "listeners"),
            ("process.roles", "broker,teapot", "process.roles"),
            ("delete.topic.enable", "yes", "delete.topic.enable"),
            ("request.timeout.ms", "0", "request.timeout.ms"),
        ];
        for (key, value, named) in cases {
            let err = ServerConfig::from_properties(&props(&[(key, value)]))
                .unwrap_err()
                .to_string();
            // The one format: the key, the value, what is allowed.
            assert!(
                err.starts_with(&format!("config {named}: invalid value {value:?}: must be")),
                "{key}={value}: {err}"
            );
        }
        let err = |pairs: &[(&str, &str)]| {
            ServerConfig::from_properties(&props(pairs))
                .unwrap_err()
                .to_string()
        };
        let message = err(&[("process.roles", "broker")]);
        assert!(
            message.starts_with(r#"config process.roles: invalid value "broker": "#)
                && message.contains("controller.quorum.bootstrap.servers"),
            "{message}"
        );
        let message = err(&[("controller.quorum.voters", "2@127.0.0.1:1")]);
        assert!(message.contains("node id 1"), "{message}");
        let message = err(&[("controller.listener.names", "NOPE")]);
        assert!(
            message.starts_with(r#"config controller.listener.names: invalid value "NOPE": "#)
                && message.contains("NOPE://host:port"),
            "{message}"
        );
        let message = err(&[("controller.quorum.election.timeout.ms", "49")]);
        assert!(message.ends_with("must be an integer >= 50"), "{message}");
        let message = err(&[("log.dirs", " , ")]);
        assert!(message.starts_with("config log.dirs: "), "{message}");
    }

    #[test]
    fn roles_are_checked_against_the_quorum_and_listener_keys() {
        let voters = (
            "controller.quorum.voters",
            "1@127.0.0.1:19093,2@127.0.0.1:19094",
        );
        // check(props, Ok(observer?) or Err(words the message must contain)).
        let check = |pairs: &[(&str, &str)], expected: Result<bool, &[&str]>| match (
            ServerConfig::from_properties(&props(pairs)),
            expected,
        ) {
            (Ok(config), Ok(observer)) => {
                let node = config.node_config().unwrap();
                assert_eq!(node.observer, observer, "{pairs:?}");
            }
            (Err(message), Err(words)) => {
                let message = message.to_string();
                for word in words {
                    assert!(message.contains(word), "{pairs:?}: {message}");
                }
            }
            (got, want) => panic!("{pairs:?}: got {got:?}, expected {want:?}"),
        };
        let broker_listener = ("listeners", "PLAINTEXT://127.0.0.1:19092");
        let controller_listener = ("listeners", "CONTROLLER://127.0.0.1:19093");
        let bootstrap = ("controller.quorum.bootstrap.servers", "127.0.0.1:19093");
        // A broker-only node finds the quorum through either key and observes it.
        check(
            &[
                ("node.id", "4"),
                ("process.roles", "broker"),
                broker_listener,
                voters,
            ],
            Ok(true),
        );
        check(
            &[
                ("node.id", "4"),
                ("process.roles", "broker"),
                broker_listener,
                bootstrap,
            ],
            Ok(true),
        );
        check(
            &[
                ("node.id", "4"),
                ("process.roles", "broker"),
                broker_listener,
            ],
            Err(&[
                "controller.quorum.bootstrap.servers",
                "controller.quorum.voters",
            ]),
        );
        check(
            &[
                ("node.id", "1"),
                ("process.roles", "broker"),
                broker_listener,
                voters,
            ],
            Err(&[
                "node id 1 must not",
                "controller.quorum.voters=1@127.0.0.1:19093",
            ]),
        );
        check(
            &[
                ("node.id", "4"),
                ("process.roles", "broker"),
                (
                    "listeners",
                    "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
                ),
                voters,
            ],
            Err(&["controller.listener.names", "listener CONTROLLER"]),
        );
        // A controller-only node serves its controller listener alone.
        check(
            &[
                ("node.id", "1"),
                ("process.roles", "controller"),
                controller_listener,
                voters,
            ],
            Ok(false),
        );
        check(
            &[
                ("node.id", "1"),
                ("process.roles", "controller"),
                (
                    "listeners",
                    "CONTROLLER://127.0.0.1:19093,PLAINTEXT://127.0.0.1:19092",
                ),
                voters,
            ],
            Err(&["process.roles=controller", "listener PLAINTEXT"]),
        );
        check(
            &[
                ("node.id", "3"),
                ("process.roles", "controller"),
                controller_listener,
                voters,
            ],
            Err(&["node id 3 must be included", "controller.quorum.voters"]),
        );
        // A controller of a dynamic quorum needs its listener named, and is no observer.
        check(
            &[
                ("node.id", "3"),
                ("process.roles", "controller"),
                controller_listener,
                bootstrap,
            ],
            Ok(false),
        );
        check(
            &[
                ("node.id", "3"),
                ("process.roles", "controller"),
                broker_listener,
                bootstrap,
            ],
            Err(&["controller listener CONTROLLER"]),
        );
        check(&[("process.roles", "")], Err(&["process.roles"]));
        check(
            &[("controller.quorum.bootstrap.servers", "nohost")],
            Err(&["controller.quorum.bootstrap.servers", "nohost"]),
        );
    }
}
