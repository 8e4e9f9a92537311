//! strom-raft: Strom's Raft-replicated metadata log (KRaft's idea) on openraft.
//!
//! Layers, bottom up: `durable_log` (segments, vote, fsync order) and `state_machine`
//! (apply, snapshot file) behind openraft's storage-v2 traits; `wire` + `conn` + `network` +
//! `server` (length-prefixed JSON frames over TCP, secured by `security`: the controller
//! listener's TLS and SASL); `node` (a raft node with a one-at-a-time
//! controller task); `client` (submit to any node); `metadata` (strom-meta plugged in).
//!
//! Using it from the broker:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use strom_meta::{ControllerConfig, ControllerReply, ControllerRequest, DeleteTopicsRequest};
//! use strom_raft::metadata::start_metadata_node;
//! use strom_raft::{NodeConfig, StateEvent};
//!
//! let config = NodeConfig::single(1, "127.0.0.1:9093".parse()?, "/tmp/meta".into());
//! let node = start_metadata_node(config, ControllerConfig::default()).await?;
//! // The image, and every delta after it (skip events at or below `last_applied`).
//! let (applied, mut deltas) = node.subscribe_with_state();
//! println!("{} topics", applied.state.topic_count());
//! // Returns once the records are committed and applied (forwarded if this is a follower).
//! let reply = node.submit(ControllerRequest::DeleteTopics(DeleteTopicsRequest::default())).await?;
//! assert!(matches!(reply, Ok(ControllerReply::DeleteTopics(_))));
//! if let Ok(StateEvent::Applied { log_id, delta }) = deltas.try_recv() {
//!     println!("{log_id}: {:?}", delta.topics_created);
//! }
//! node.shutdown().await;
//! # Ok(())
//! # }
//! ```

// openraft's `StorageError` is large and its trait signatures return it by value.
#![allow(clippy::result_large_err)]

pub mod bootstrap_scram;
pub mod client;
pub mod config;
pub mod conn;
pub mod controller_task;
pub mod durable_log;
pub mod entry_codec;
pub mod fsutil;
pub mod log_store;
pub mod membership;
pub mod metadata;
pub mod network;
pub mod node;
pub mod recovery;
pub mod security;
mod server;
pub mod snapshot_file;
pub mod state;
pub mod state_machine;
pub mod types;
pub mod wire;

pub use client::QuorumClient;
pub use config::{ConfigError, NodeConfig};
pub use controller_task::Controller;
pub use durable_log::LogConfig;
pub use node::{RaftNode, StartError};
pub use security::{QuorumSasl, QuorumSecurity, SecurityContext};
pub use state::{Applied, ReplicatedState, StateEvent};
pub use wire::{MembershipChange, MembershipError, SubmitError};
