//! The controller: validates admin and broker requests against the current image and turns
//! them into records plus the reply to release once those records commit.
//!
//! It never writes anything itself. The caller (the raft layer) appends the records, and
//! only after they commit applies them and sends the reply. State kept here between calls
//! (broker heartbeat times, the id source) is soft: a new controller rebuilds it.

mod brokers;
mod configs;
pub mod errors;
mod leadership;
pub mod messages;
mod names;
mod placement;
mod staged;
mod topics;

use crate::image::MetadataImage;
use crate::records::MetadataRecord;
use errors::ControllerError;
use messages::{ControllerReply, ControllerRequest};
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

pub use names::{validate_topic_name, TOPIC_NAME_LENGTH_MAX};

/// Source of new topic ids. Injected so that tests are deterministic; production seeds it
/// from a random source outside this crate.
pub trait IdSource: Send {
    fn next_topic_id(&mut self) -> Uuid;
}

/// A deterministic id source (splitmix64) producing version-4-shaped UUIDs.
#[derive(Clone, Debug)]
pub struct SeededIdSource {
    state: u64,
}

impl SeededIdSource {
    pub fn new(seed: u64) -> Self {
        SeededIdSource { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl IdSource for SeededIdSource {
    fn next_topic_id(&mut self) -> Uuid {
        let bits = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
        uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid()
    }
}

/// Controller settings, with Kafka's names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerConfig {
    /// `num.partitions`: partitions of a topic created with -1.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// Producer ids handed to a broker per AllocateProducerIds.
    pub producer_id_block_size: i64,
    /// Most partitions one CreateTopics or CreatePartitions may create (Kafka's limit on
    /// records per controller operation).
    pub partitions_per_request_max: usize,
    /// `broker.session.timeout.ms`: a broker silent for this long gets fenced.
    pub broker_session_timeout_ms: i64,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// Seed of the default [`SeededIdSource`]; set it from a random source per process.
    pub topic_id_seed: u64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            num_partitions: 1,
            default_replication_factor: 1,
            producer_id_block_size: 1000,
            partitions_per_request_max: 10_000,
            broker_session_timeout_ms: 9_000,
            delete_topic_enable: true,
            topic_id_seed: 0,
        }
    }
}

pub struct Controller {
    config: ControllerConfig,
    ids: Box<dyn IdSource>,
    /// Last heartbeat (or registration) this controller received, per broker id: a live
    /// session, for session expiry and for refusing a second incarnation.
    last_contact_ms: BTreeMap<i32, i64>,
    /// When this controller started counting the session of an unfenced broker it has not
    /// heard from yet (it took over, or restarted): only for expiry, never a live session.
    unheard_since_ms: BTreeMap<i32, i64>,
}

impl fmt::Debug for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("config", &self.config)
            .field("last_contact_ms", &self.last_contact_ms)
            .field("unheard_since_ms", &self.unheard_since_ms)
            .finish_non_exhaustive()
    }
}

/// The result of handling one request: records to commit, and the reply for afterwards.
pub type Handled = Result<(Vec<MetadataRecord>, ControllerReply), ControllerError>;

impl Controller {
    pub fn new(config: ControllerConfig) -> Controller {
        let ids = Box::new(SeededIdSource::new(config.topic_id_seed));
        Controller::with_id_source(config, ids)
    }

    pub fn with_id_source(config: ControllerConfig, ids: Box<dyn IdSource>) -> Controller {
        Controller {
            config,
            ids,
            last_contact_ms: BTreeMap::new(),
            unheard_since_ms: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// Validates `request` against `image` and produces the records to commit plus the
    /// reply to send once they are committed. Per-item errors are in the reply; an `Err`
    /// refuses the whole request and has no records.
    pub fn handle(
        &mut self,
        image: &MetadataImage,
        request: ControllerRequest,
        now_ms: i64,
    ) -> Handled {
        match request {
            ControllerRequest::CreateTopics(r) => self.create_topics(image, r),
            ControllerRequest::DeleteTopics(r) => self.delete_topics(image, r),
            ControllerRequest::CreatePartitions(r) => self.create_partitions(image, r),
            ControllerRequest::AlterConfigs(r) => configs::alter_configs(image, r),
            ControllerRequest::IncrementalAlterConfigs(r) => {
                configs::incremental_alter_configs(image, r)
            }
            ControllerRequest::RegisterBroker(r) => self.register_broker(image, r, now_ms),
            ControllerRequest::BrokerHeartbeat(r) => self.broker_heartbeat(image, r, now_ms),
            ControllerRequest::UnregisterBroker { broker_id } => {
                self.unregister_broker(image, broker_id)
            }
            ControllerRequest::AllocateProducerIds {
                broker_id,
                broker_epoch,
            } => self.allocate_producer_ids(image, broker_id, broker_epoch),
            ControllerRequest::AlterPartition(r) => leadership::alter_partition(image, r),
        }
    }

    /// Fences unfenced brokers that have not heartbeaten within the session timeout, moving
    /// their leaderships away. Call periodically; returns the records to commit.
    pub fn expire_broker_sessions(
        &mut self,
        image: &MetadataImage,
        now_ms: i64,
    ) -> Vec<MetadataRecord> {
        brokers::expire_sessions(self, image, now_ms)
    }
}
