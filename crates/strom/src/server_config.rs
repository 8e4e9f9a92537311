//! The server's configuration: Kafka (KRaft) key names and defaults, validated once into
//! typed fields. An unknown key is a warning; an invalid value is an error naming the key.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use strom_meta::ControllerConfig;
use strom_raft::{LogConfig, NodeConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Broker,
    Controller,
}

/// A `NAME://host:port` entry of `listeners`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `node.id`; Kafka requires it, Strom defaults it to 1 so a bare `strom server` runs.
    pub node_id: u64,
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
    pub leader_imbalance_per_broker_percentage: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            node_id: 1,
            process_roles: vec![Role::Broker, Role::Controller],
            voters: BTreeMap::new(),
            bootstrap_servers: Vec::new(),
            controller_listener_names: vec!["CONTROLLER".into()],
            controller_listener_names_set: false,
            listeners: vec![
                Listener {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092,
                },
                Listener {
                    name: "CONTROLLER".into(),
                    host: "127.0.0.1".into(),
                    port: 9093,
                },
            ],
            advertised_listeners: Vec::new(),
            log_dirs: vec![PathBuf::from("./data")],
            metadata_log_dir: None,
            election_timeout_ms: 1000,
            request_timeout_ms: 30_000,
            metadata_log_segment_bytes: 16 * 1024 * 1024,
            snapshot_interval_entries: 10_000,
            num_partitions: 1,
            default_replication_factor: 1,
            broker_session_timeout_ms: 9000,
            delete_topic_enable: true,
            unclean_leader_election_enable: false,
            unclean_leader_election_interval_ms: 300_000,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            leader_imbalance_per_broker_percentage: 10,
        }
    }
}

/// Name of the metadata log directory inside `metadata.log.dir`, as in Kafka.
pub const METADATA_TOPIC_DIR: &str = "__cluster_metadata-0";

type Setter = fn(&mut ServerConfig, &str) -> Result<(), String>;

/// Every key the server understands, with how to set it.
const KEYS: &[(&str, Setter)] = &[
    ("node.id", |c, v| {
        c.node_id = parse_int(v, 0, i32::MAX.into())?;
        Ok(())
    }),
    ("broker.id", |c, v| {
        c.node_id = parse_int(v, 0, i32::MAX.into())?;
        Ok(())
    }),
    ("process.roles", |c, v| {
        c.process_roles = parse_roles(v)?;
        Ok(())
    }),
    ("controller.quorum.voters", |c, v| {
        c.voters = parse_voters(v)?;
        Ok(())
    }),
    ("controller.quorum.bootstrap.servers", |c, v| {
        c.bootstrap_servers = parse_host_ports(v)?;
        Ok(())
    }),
    ("controller.listener.names", |c, v| {
        // Listener names are case-insensitive, upper-cased as Kafka's ListenerName does.
        c.controller_listener_names = parse_list(v)
            .iter()
            .map(|n| n.to_ascii_uppercase())
            .collect();
        c.controller_listener_names_set = true;
        Ok(())
    }),
    ("listeners", |c, v| {
        c.listeners = parse_listeners(v)?;
        Ok(())
    }),
    ("advertised.listeners", |c, v| {
        c.advertised_listeners = parse_listeners(v)?;
        Ok(())
    }),
    ("log.dirs", |c, v| {
        c.log_dirs = parse_list(v).into_iter().map(PathBuf::from).collect();
        Ok(())
    }),
    ("log.dir", |c, v| {
        c.log_dirs = vec![PathBuf::from(v)];
        Ok(())
    }),
    ("metadata.log.dir", |c, v| {
        c.metadata_log_dir = Some(PathBuf::from(v));
        Ok(())
    }),
    ("controller.quorum.election.timeout.ms", |c, v| {
        c.election_timeout_ms = parse_positive(v)?;
        Ok(())
    }),
    ("request.timeout.ms", |c, v| {
        c.request_timeout_ms = parse_positive(v)?;
        Ok(())
    }),
    ("metadata.log.segment.bytes", |c, v| {
        c.metadata_log_segment_bytes = parse_positive(v)?;
        Ok(())
    }),
    ("strom.metadata.snapshot.interval.entries", |c, v| {
        c.snapshot_interval_entries = parse_positive(v)?;
        Ok(())
    }),
    ("num.partitions", |c, v| {
        c.num_partitions = parse_int(v, 1, i32::MAX.into())?;
        Ok(())
    }),
    ("default.replication.factor", |c, v| {
        c.default_replication_factor = parse_int(v, 1, i16::MAX.into())?;
        Ok(())
    }),
    ("broker.session.timeout.ms", |c, v| {
        c.broker_session_timeout_ms = parse_int(v, 1, i32::MAX.into())?;
        Ok(())
    }),
    ("delete.topic.enable", |c, v| {
        c.delete_topic_enable = parse_bool(v)?;
        Ok(())
    }),
    ("unclean.leader.election.enable", |c, v| {
        c.unclean_leader_election_enable = parse_bool(v)?;
        Ok(())
    }),
    ("unclean.leader.election.interval.ms", |c, v| {
        c.unclean_leader_election_interval_ms = parse_positive(v)?;
        Ok(())
    }),
    ("auto.leader.rebalance.enable", |c, v| {
        c.auto_leader_rebalance_enable = parse_bool(v)?;
        Ok(())
    }),
    ("leader.imbalance.check.interval.seconds", |c, v| {
        c.leader_imbalance_check_interval_seconds = parse_positive(v)?;
        Ok(())
    }),
    ("leader.imbalance.per.broker.percentage", |c, v| {
        c.leader_imbalance_per_broker_percentage = parse_int(v, 0, 100)?;
        Ok(())
    }),
];

impl ServerConfig {
    /// Builds the config from properties; returns it with the keys it does not know (the
    /// caller warns about those no other component knows either).
    pub fn from_properties(
        props: &BTreeMap<String, String>,
    ) -> Result<(ServerConfig, Vec<String>), String> {
        let mut config = ServerConfig::default();
        let mut unknown = Vec::new();
        for (key, value) in props {
            match KEYS.iter().find(|(name, _)| name == key) {
                Some((_, set)) => set(&mut config, value.trim())
                    .map_err(|e| format!("invalid value {value:?} for configuration {key}: {e}"))?,
                None => unknown.push(key.clone()),
            }
        }
        config.validate()?;
        Ok((config, unknown))
    }

    fn validate(&self) -> Result<(), String> {
        if self.process_roles.is_empty() {
            return Err("process.roles is empty: give broker, controller or both".into());
        }
        self.validate_roles()?;
        if self.log_dirs.is_empty() && self.metadata_log_dir.is_none() {
            return Err("log.dirs is empty".into());
        }
        if self.election_timeout_ms < 50 {
            return Err("controller.quorum.election.timeout.ms must be at least 50".into());
        }
        Ok(())
    }

    /// Kafka's checks of `process.roles` against the quorum and listener keys (KafkaConfig's
    /// `validateValues`), each naming the keys involved.
    fn validate_roles(&self) -> Result<(), String> {
        let voters = || {
            self.voters
                .iter()
                .map(|(id, addr)| format!("{id}@{addr}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let is_controller_listener =
            |l: &Listener| self.controller_listener_names.contains(&l.name);
        if !self.runs_controller() {
            if self.voters.is_empty() && self.bootstrap_servers.is_empty() {
                return Err("process.roles=broker needs the quorum: set \
                     controller.quorum.bootstrap.servers to the controllers' host:port, or \
                     controller.quorum.voters to id@host:port of each"
                    .into());
            }
            if self.voters.contains_key(&self.node_id) {
                return Err(format!(
                    "if process.roles contains just the 'broker' role, the node id {} must not \
                     be included in the set of voters controller.quorum.voters={}",
                    self.node_id,
                    voters()
                ));
            }
            if self.controller_listener_names.is_empty() {
                return Err(
                    "controller.listener.names must contain at least one value when \
                     running KRaft with just the broker role"
                        .into(),
                );
            }
            if let Some(l) = self.listeners.iter().find(|l| is_controller_listener(l)) {
                return Err(format!(
                    "controller.listener.names must not contain a value appearing in the \
                     'listeners' configuration when running KRaft with just the broker role \
                     (listener {})",
                    l.name
                ));
            }
            return Ok(());
        }
        if !self.voters.is_empty() && !self.voters.contains_key(&self.node_id) {
            return Err(format!(
                "if process.roles contains the 'controller' role, the node id {} must be \
                 included in the set of voters controller.quorum.voters={}",
                self.node_id,
                voters()
            ));
        }
        self.controller_listener()?;
        if !self.runs_broker() {
            if let Some(l) = self.listeners.iter().find(|l| !is_controller_listener(l)) {
                return Err(format!(
                    "the listeners config must only contain KRaft controller listeners from \
                     controller.listener.names when process.roles=controller (listener {} is \
                     not one of {})",
                    l.name,
                    self.controller_listener_names.join(",")
                ));
            }
        }
        Ok(())
    }

    /// The listener named first in `controller.listener.names`. A single node (no voters)
    /// whose `listeners` name no controller listener, and that did not name one, gets one on
    /// a free loopback port: nothing outside the process needs to reach it, so
    /// `listeners=PLAINTEXT://127.0.0.1:9092` alone runs a whole node.
    pub fn controller_listener(&self) -> Result<Listener, String> {
        let name = self
            .controller_listener_names
            .first()
            .ok_or("controller.listener.names is empty")?;
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
        Err(format!(
            "listeners has no entry for controller listener {name}"
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
            let listener = self.controller_listener()?;
            (resolve(&listener.host, listener.port)?, None)
        } else {
            self.observer_endpoint()?
        };
        let mut node = NodeConfig::single(self.node_id, listen_addr, self.metadata_dir());
        node.voters = self.voters.clone();
        node.bootstrap_servers = self.bootstrap_servers.clone();
        node.observer = !self.runs_controller();
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

fn parse_positive(value: &str) -> Result<u64, String> {
    parse_int(value, 1, u64::MAX.into())
}

/// A whole number in `min..=max`; the error says what is allowed.
fn parse_int<T: TryFrom<i128>>(value: &str, min: i128, max: i128) -> Result<T, String> {
    let allowed = || format!("allowed: a whole number from {min} to {max}");
    match value.parse::<i128>() {
        Ok(n) if (min..=max).contains(&n) => T::try_from(n).map_err(|_| allowed()),
        _ => Err(allowed()),
    }
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

fn parse_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn parse_roles(value: &str) -> Result<Vec<Role>, String> {
    parse_list(value)
        .iter()
        .map(|role| match role.as_str() {
            "broker" => Ok(Role::Broker),
            "controller" => Ok(Role::Controller),
            other => Err(format!(
                "unknown role {other} (expected broker, controller)"
            )),
        })
        .collect()
}

/// `1@host:9093,2@host:9094`.
fn parse_voters(value: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut voters = BTreeMap::new();
    for voter in parse_list(value) {
        let (id, addr) = voter
            .split_once('@')
            .ok_or_else(|| format!("voter {voter} is not id@host:port"))?;
        let id: u64 = id
            .parse()
            .map_err(|_| format!("voter id {id} is not a number"))?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("voter address {addr} has no port"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("voter address {addr} is not host:port"));
        }
        if voters.insert(id, addr.to_string()).is_some() {
            return Err(format!("voter id {id} appears twice"));
        }
    }
    Ok(voters)
}

/// `host1:9093,host2:9093` (`controller.quorum.bootstrap.servers`).
fn parse_host_ports(value: &str) -> Result<Vec<String>, String> {
    parse_list(value)
        .into_iter()
        .map(|entry| match entry.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(entry),
            _ => Err(format!("{entry} is not host:port")),
        })
        .collect()
}

/// `PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093`.
fn parse_listeners(value: &str) -> Result<Vec<Listener>, String> {
    parse_list(value)
        .iter()
        .map(|entry| {
            let (name, addr) = entry
                .split_once("://")
                .ok_or_else(|| format!("listener {entry} is not NAME://host:port"))?;
            let (host, port) = addr
                .rsplit_once(':')
                .ok_or_else(|| format!("listener {entry} has no port"))?;
            let port = port
                .parse()
                .map_err(|_| format!("listener {entry} has an invalid port"))?;
            Ok(Listener {
                name: name.to_ascii_uppercase(),
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                port,
            })
        })
        .collect()
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
        let (config, warnings) = ServerConfig::from_properties(&props(&[
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
        ]))
        .unwrap();
        assert_eq!(warnings, vec!["some.future.key".to_string()]);
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
        let (config, warnings) = ServerConfig::from_properties(&BTreeMap::new()).unwrap();
        assert!(warnings.is_empty());
        let node = config.node_config().unwrap();
        assert_eq!(node.effective_voters().len(), 1);
        assert_eq!(node.listen_addr.port(), 9093);
    }

    #[test]
    fn a_single_node_without_a_controller_listener_gets_a_private_one() {
        let (config, _) =
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
        .unwrap_err();
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
        let (config, _) = ServerConfig::from_properties(&props).unwrap();
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
            let err = ServerConfig::from_properties(&props(&[(key, value)])).unwrap_err();
            assert!(err.contains(named), "{key}={value}: {err}");
        }
        let err =
            ServerConfig::from_properties(&props(&[("process.roles", "broker")])).unwrap_err();
        assert!(err.contains("controller.quorum.bootstrap.servers"), "{err}");
        let err =
            ServerConfig::from_properties(&props(&[("controller.quorum.voters", "2@127.0.0.1:1")]))
                .unwrap_err();
        assert!(err.contains("node id 1"), "{err}");
        let err = ServerConfig::from_properties(&props(&[("controller.listener.names", "NOPE")]))
            .unwrap_err();
        assert!(err.contains("NOPE"), "{err}");
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
            (Ok((config, _)), Ok(observer)) => {
                let node = config.node_config().unwrap();
                assert_eq!(node.observer, observer, "{pairs:?}");
            }
            (Err(message), Err(words)) => {
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
