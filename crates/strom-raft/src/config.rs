//! Typed configuration of one raft node, validated once (KRaft key parsing lives in the binary).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::durable_log::LogConfig;
use crate::security::QuorumSecurity;
use crate::types::NodeId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// KRaft `node.id`.
    pub node_id: NodeId,
    /// KRaft `controller.quorum.voters`: node id -> `host:port` of its controller listener.
    /// Fixed at first start: the log's initial membership is made from it.
    pub voters: BTreeMap<NodeId, String>,
    /// KIP-853 `controller.quorum.bootstrap.servers`: controllers (`host:port`) asked to take
    /// this node into the quorum when it has no initial voters (see [`NodeConfig::joins`]).
    pub bootstrap_servers: Vec<String>,
    /// An observer (a broker-only node) never votes: it starts without initializing the
    /// quorum, asks to be added as an openraft learner, and applies the committed log.
    pub observer: bool,
    /// The host other members reach this node's listener at, when not the bound address's
    /// (an observer bound to a wildcard address); the bound port is appended.
    pub advertised_host: Option<String>,
    /// Where this node's controller listener binds (port 0 picks a free one).
    pub listen_addr: SocketAddr,
    /// KRaft `metadata.log.dir`: raft log, vote, snapshot and lock file.
    pub data_dir: PathBuf,
    /// The directory id to record when the node file is first written (the `directory.id`
    /// `strom storage format` wrote into `meta.properties`); `None`: a random one. A node
    /// file that records one keeps it.
    pub directory_id: Option<uuid::Uuid>,
    /// The cluster id of this node's storage (`cluster.id` in its meta.properties). Sent
    /// with every request to another member; a member whose own differs refuses the
    /// request (Kafka's INCONSISTENT_CLUSTER_ID), so a node formatted for another cluster
    /// can neither vote, replicate, join nor register here. `None`: nothing sent, nothing
    /// checked (a request without one is accepted, as Kafka accepts a null ClusterId).
    pub cluster_id: Option<String>,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub connect_timeout_ms: u64,
    /// Bound on a metadata request, queueing and commit included.
    pub submit_timeout_ms: u64,
    pub frame_bytes_max: usize,
    pub connections_max: usize,
    /// Requests waiting for the controller beyond this are refused with `Busy`.
    pub submit_queue_max: usize,
    /// Deltas buffered per subscriber before it lags and must resync from the image.
    pub events_capacity: usize,
    /// A snapshot is taken after this many entries since the last one.
    pub snapshot_entries_interval: u64,
    /// Entries kept in the log behind the snapshot (lets slow followers catch up by log).
    pub snapshot_entries_kept: u64,
    /// Idle controller connections are closed after this long.
    pub connection_idle_ms: u64,
    /// How often the leader's controller does periodic work (broker session expiry).
    pub controller_tick_ms: u64,
    /// An observer (learner) that has not acknowledged the leader's replication for this
    /// long is dropped from the membership, as Kafka's leader drops observers that stop
    /// fetching (`LeaderState.OBSERVER_SESSION_TIMEOUT_MS`, 5 minutes, not configurable
    /// there either); it is taken in again when it asks (see `join_quorum`).
    pub observer_session_timeout_ms: u64,
    pub log: LogConfig,
    /// The controller listener's protocol and its TLS and SASL settings, used by this
    /// node's listener and by every connection it makes to another member
    /// (`security.rs`). Default: PLAINTEXT.
    pub security: QuorumSecurity,
    /// The SCRAM users of `strom storage format --add-scram` (`bootstrap_scram.rs`), read
    /// from the metadata log directory by `start_metadata_node`: the controller listener
    /// checks SCRAM against them until the image holds SCRAM credentials.
    pub bootstrap_scram: Vec<crate::bootstrap_scram::BootstrapScram>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("node {node_id} is not among the voters {voters:?}")]
    NotAVoter {
        node_id: NodeId,
        voters: Vec<NodeId>,
    },
    #[error("{0}")]
    Invalid(String),
}

impl NodeConfig {
    /// A single voter on this node, Kafka-like defaults.
    pub fn single(node_id: NodeId, listen_addr: SocketAddr, data_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            node_id,
            voters: BTreeMap::new(),
            bootstrap_servers: Vec::new(),
            observer: false,
            advertised_host: None,
            listen_addr,
            data_dir,
            directory_id: None,
            cluster_id: None,
            // KRaft: controller.quorum.election.timeout.ms = 1000.
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            heartbeat_interval_ms: 200,
            connect_timeout_ms: 1000,
            // Kafka's request.timeout.ms for admin requests is 30 s.
            submit_timeout_ms: 30_000,
            frame_bytes_max: 16 * 1024 * 1024,
            connections_max: 256,
            submit_queue_max: 1024,
            events_capacity: 4096,
            snapshot_entries_interval: 10_000,
            snapshot_entries_kept: 1000,
            connection_idle_ms: 10 * 60 * 1000,
            controller_tick_ms: 1000,
            observer_session_timeout_ms: 300_000,
            log: LogConfig::default(),
            security: QuorumSecurity::default(),
            bootstrap_scram: Vec::new(),
        }
    }

    /// Short timeouts and tiny limits so tests reach elections, snapshots and rolls quickly.
    pub fn test_min(node_id: NodeId, listen_addr: SocketAddr, data_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            heartbeat_interval_ms: 50,
            connect_timeout_ms: 200,
            submit_timeout_ms: 3000,
            controller_tick_ms: 100,
            observer_session_timeout_ms: 2_000,
            snapshot_entries_interval: 20,
            snapshot_entries_kept: 5,
            log: LogConfig {
                segment_bytes: 4096,
                entry_bytes_max: 1024 * 1024,
            },
            ..NodeConfig::single(node_id, listen_addr, data_dir)
        }
    }

    /// Largest entry the controller may commit: one entry must fit in one replication frame
    /// (hex-encoded payload, so twice its size, plus the request around it).
    pub fn entry_bytes_max(&self) -> usize {
        (self.frame_bytes_max / 4).min(self.log.entry_bytes_max)
    }

    /// The voters, with this node as the only one when none are configured.
    pub fn effective_voters(&self) -> BTreeMap<NodeId, String> {
        if self.voters.is_empty() {
            BTreeMap::from([(self.node_id, self.listen_addr.to_string())])
        } else {
            self.voters.clone()
        }
    }

    /// Whether this node starts without an initial membership of its own and asks the
    /// quorum (`bootstrap_servers`, else the voters) to add it: observers, and controllers
    /// of a dynamic quorum (bootstrap servers, no static voters) whose storage was not
    /// formatted with initial controllers.
    pub fn joins(&self) -> bool {
        self.observer || (self.voters.is_empty() && !self.bootstrap_servers.is_empty())
    }

    /// The controllers a joining node asks: the bootstrap servers, else the static voters.
    pub fn join_addrs(&self) -> Vec<String> {
        if self.bootstrap_servers.is_empty() {
            self.voters.values().cloned().collect()
        } else {
            self.bootstrap_servers.clone()
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.joins() {
            if self.join_addrs().is_empty() {
                return Err(ConfigError::Invalid(
                    "an observer needs controller.quorum.bootstrap.servers or \
                     controller.quorum.voters to find the quorum"
                        .into(),
                ));
            }
            if self.observer && self.voters.contains_key(&self.node_id) {
                return Err(ConfigError::Invalid(format!(
                    "observer {} must not be among the voters",
                    self.node_id
                )));
            }
            return self.validate_limits();
        }
        let voters = self.effective_voters();
        if !voters.contains_key(&self.node_id) {
            return Err(ConfigError::NotAVoter {
                node_id: self.node_id,
                voters: voters.keys().copied().collect(),
            });
        }
        self.validate_limits()
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let checks = [
            (
                self.election_timeout_min_ms > self.heartbeat_interval_ms,
                "election timeout must exceed the heartbeat interval",
            ),
            (
                self.election_timeout_max_ms > self.election_timeout_min_ms,
                "election timeout max must exceed min",
            ),
            (
                self.frame_bytes_max >= 64 * 1024,
                "frame_bytes_max must be at least 64 KiB",
            ),
            (
                self.connections_max > 0 && self.submit_queue_max > 0,
                "connection and queue limits must be positive",
            ),
            (
                self.snapshot_entries_interval > 0,
                "snapshot interval must be positive",
            ),
            (
                self.submit_timeout_ms > 0
                    && self.connect_timeout_ms > 0
                    && self.controller_tick_ms > 0
                    && self.observer_session_timeout_ms > 0,
                "timeouts and intervals must be positive",
            ),
        ];
        for (ok, message) in checks {
            if !ok {
                return Err(ConfigError::Invalid(message.to_string()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_voter_by_default_and_membership_checked() {
        let addr: SocketAddr = "127.0.0.1:9093".parse().unwrap();
        let mut config = NodeConfig::single(1, addr, PathBuf::from("/tmp/x"));
        config.validate().unwrap();
        assert_eq!(
            config.effective_voters(),
            BTreeMap::from([(1, "127.0.0.1:9093".to_string())])
        );
        config.voters = BTreeMap::from([
            (2, "127.0.0.1:1".to_string()),
            (3, "127.0.0.1:2".to_string()),
        ]);
        assert!(matches!(
            config.validate(),
            Err(ConfigError::NotAVoter { node_id: 1, .. })
        ));
        config.voters.insert(1, "127.0.0.1:9093".into());
        config.validate().unwrap();
        config.election_timeout_max_ms = 10;
        assert!(matches!(config.validate(), Err(ConfigError::Invalid(_))));
    }
}
