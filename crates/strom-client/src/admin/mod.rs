//! Admin client: topics, partitions (reassignments, leader elections), configs, consumer
//! and share groups, offsets, cluster, transactions, ACLs, log directories.
//!
//! Every call retries retriable errors with backoff for up to `default.api.timeout.ms`;
//! per-item broker errors come back as [`ClientError::Broker`] with Kafka's error name.

mod acls;
mod configs;
mod features;
mod groups;
mod log_dirs;
pub(crate) mod offsets;
mod partitions;
mod quorum;
mod quotas;
mod share_groups;
mod tokens;
mod topics;
mod transactions;

use std::sync::Arc;

use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::error::Result;

pub use acls::AclEntry;
pub use configs::{AlterConfigOp, ConfigEntry, ConfigResource, ConfigSource};
pub use features::{FeatureDescription, FeatureMetadata, UpgradeType};
pub use groups::{GroupDescription, GroupListing, MemberDescription};
pub use log_dirs::{LogDirDescription, LogDirReplica};
pub use offsets::ListedOffset;
pub use partitions::{ElectionType, PartitionReassignment, PartitionResults};
pub use quorum::{QuorumDescription, QuorumReplica};
pub use quotas::{QuotaEntity, QuotaMatch};
pub use share_groups::{ShareGroupDescription, ShareMemberDescription, SharePartitionOffset};
pub use tokens::DelegationToken;
pub use topics::{ClusterDescription, NewTopic};
pub use transactions::{TransactionDescription, TransactionListing};

/// The admin client. Cheap to clone; clones share connections and the metadata cache.
#[derive(Clone)]
pub struct Admin {
    cluster: Arc<Cluster>,
}

impl Admin {
    /// An admin client; connects lazily on the first call.
    pub fn new(config: ClientConfig) -> Result<Admin> {
        Ok(Admin {
            cluster: Cluster::new(config)?,
        })
    }

    /// Closes all connections (a later call reconnects).
    pub async fn close(&self) {
        self.cluster.close().await;
    }
}

/// Per-item results of a batched admin call, in request order.
pub type ItemResults = Vec<(String, Result<()>)>;
