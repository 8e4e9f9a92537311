//! strom-broker: the Kafka broker. A tokio server that speaks Kafka's wire
//! protocol (through strom-protocol), stores partitions in strom-log logs, and takes its
//! topics from the metadata quorum (strom-meta's image, through [`MetadataPort`]).
//!
//! Start reading at [`Broker::start`] (`server.rs`), then `connection.rs` (one client) and
//! `handlers/` (one module per API). [`ReplicaManager`] (`replicas.rs`) keeps the partition
//! logs and their roles in step with the metadata image; a [`Partition`] (`partition.rs`)
//! leads (strom-replica's high watermark and ISR) or follows (`fetcher.rs` copies it from
//! the leader over `peer.rs`), `replication.rs` sends ISR changes to the controller and
//! checkpoints high watermarks, `producers.rs` holds idempotent producer state,
//! `txns.rs` runs the transaction coordinator (strom-txn) and `markers.rs` writes its
//! markers, `sendfile.rs` splices Fetch records from segment files into responses, `limits.rs` admits
//! connections and holds the budget for request bytes in flight, `syncer.rs` runs
//! sync-on-commit's group-committed fsyncs for async waiters, `scrubber.rs` verifies cold
//! segments in the background, `txn_markers.rs` writes transaction markers (WriteTxnMarkers
//! and the transaction coordinator), `throttle.rs` holds the replication throttles of
//! partition moves. [`BrokerConfig`]
//! (`config.rs`) reads Kafka's keys through the one table of keys and parser
//! (`config_keys.rs`), which the binary's quorum config reads too. The quorum is reached through [`MetadataPort`]:
//! [`QuorumMetadata`] (`quorum.rs`) over the Raft node, [`LocalMetadata`] in tests.
//!
//! Only this crate serves Kafka clients over sockets; nothing depends on it but the `strom`
//! binary.

pub mod authn;
pub mod authz;
pub mod config;
pub mod config_keys;
pub mod conn_rate;
pub mod connection;
pub mod console;
pub mod console_actions;
pub mod console_schemas;
pub mod controller_http;
pub mod dynamic_config;
pub mod dynamic_tls;
pub mod fetcher;
pub mod group_configs;
pub mod groups;
pub mod handlers;
pub mod http;
pub mod http_auth;
pub mod limits;
pub mod listeners;
pub mod log_dirs;
pub mod markers;
pub mod metadata;
pub mod metrics;
pub mod partition;
pub mod partition_dirs;
pub mod peer;
pub mod principal;
pub mod producers;
pub mod quorum;
pub mod quotas;
pub mod replica_move;
pub mod replicas;
mod replication;
mod scrub_repair;
pub mod scrubber;
pub mod sendfile;
pub mod server;
pub mod share_group_jobs;
pub mod share_partitions;
pub mod share_persister;
pub mod share_state;
pub mod syncer;
pub mod telemetry;
pub mod throttle;
pub mod tokens;
pub mod txn_markers;
pub mod txns;

pub use config::{BrokerConfig, ConfigError, Listener};
pub use metadata::{LocalMetadata, MetadataError, MetadataPort, SubmitFuture};
pub use partition::{AppendError, Appended, Partition};
pub use principal::{KafkaPrincipal, SecurityProtocol, Session};
pub use quorum::QuorumMetadata;
pub use replicas::{DamageCounts, ReplicaManager};
pub use scrubber::ScrubCounts;
pub use server::{served_api_versions, Broker, BrokerContext, StartError};
