//! The controller: validates admin and broker requests against the current image and turns
//! them into records plus the reply to release once those records commit.
//!
//! It never writes anything itself. The caller (the raft layer) appends the records, and
//! only after they commit applies them and sends the reply. State kept here between calls
//! (broker heartbeat times, the id source) is soft: a new controller rebuilds it.

mod acls;
mod brokers;
mod configs;
mod elections;
pub mod errors;
mod features;
mod leadership;
pub mod messages;
mod names;
mod offline;
mod placement;
mod reassign;
mod scram;
mod staged;
mod tokens;
mod topics;

use crate::image::MetadataImage;
use crate::records::MetadataRecord;
use errors::ControllerError;
use messages::{ControllerReply, ControllerRequest};
pub use placement::{assign_replicas_to_brokers, PlacementError};
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

pub use elections::UNCLEAN_LEADER_ELECTION_ENABLE;

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
    /// `unclean.leader.election.enable`: the default of the topic config of that name
    /// (a cluster-wide broker config set through AlterConfigs overrides it).
    pub unclean_leader_election_enable: bool,
    /// `unclean.leader.election.interval.ms`: how often leaderless partitions of topics
    /// that allow it get an unclean election (Kafka's internal key).
    pub unclean_leader_election_interval_ms: i64,
    /// `auto.leader.rebalance.enable`: periodically move leadership back to preferred
    /// replicas.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`, in milliseconds.
    pub leader_imbalance_check_interval_ms: i64,
    /// `leader.imbalance.per.broker.percentage`: the share of a broker's preferred
    /// partitions it may not lead before a rebalance moves them back.
    pub leader_imbalance_per_broker_percentage: u32,
    /// `delegation.token.max.lifetime.ms`: no token lives longer, renewed or not.
    pub delegation_token_max_lifetime_ms: i64,
    /// `delegation.token.expiry.time.ms`: a token's life from creation or renewal.
    pub delegation_token_expiry_time_ms: i64,
    /// `delegation.token.expiry.check.interval.ms`: how often expired tokens are removed.
    pub delegation_token_expiry_check_interval_ms: i64,
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
            unclean_leader_election_enable: false,
            unclean_leader_election_interval_ms: 300_000,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_ms: 300_000,
            leader_imbalance_per_broker_percentage: 10,
            delegation_token_max_lifetime_ms: 7 * 24 * 3_600_000,
            delegation_token_expiry_time_ms: 24 * 3_600_000,
            delegation_token_expiry_check_interval_ms: 3_600_000,
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
    /// When the next leader rebalance and unclean-election passes are due (soft: a new
    /// controller waits a full interval, as Kafka's schedules its first check).
    next_rebalance_ms: Option<i64>,
    next_unclean_ms: Option<i64>,
    next_token_sweep_ms: Option<i64>,
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
            next_rebalance_ms: None,
            next_unclean_ms: None,
            next_token_sweep_ms: None,
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
            ControllerRequest::ElectLeaders(r) => elections::elect_leaders(image, r),
            ControllerRequest::CreateAcls(r) => acls::create_acls(image, self.ids.as_mut(), r),
            ControllerRequest::DeleteAcls(r) => acls::delete_acls(image, r),
            ControllerRequest::AlterClientQuotas {
                entries,
                validate_only,
            } => acls::alter_client_quotas(image, entries, validate_only),
            ControllerRequest::AlterUserScramCredentials(r) => Ok(scram::alter(image, r)),
            // Token requests carry the wall clock (token timestamps are read by clients).
            ControllerRequest::CreateDelegationToken(r) => {
                Ok(tokens::create(image, &self.config, self.ids.as_mut(), r))
            }
            ControllerRequest::RenewDelegationToken(r) => Ok(tokens::renew(image, &self.config, r)),
            ControllerRequest::ExpireDelegationToken(r) => Ok(tokens::expire(image, r)),
            ControllerRequest::AlterPartitionReassignments(r) => {
                reassign::alter_reassignments(image, r, self.config.unclean_leader_election_enable)
            }
            ControllerRequest::ListPartitionReassignments(r) => {
                Ok((Vec::new(), reassign::list_reassignments(image, r)))
            }
            ControllerRequest::UpdateFeatures(r) => features::update_features(image, r),
        }
    }

    /// The controller's periodic work, called often (every second or so) on the leader:
    /// session expiry, completion of reassignments whose new replicas are in sync, then,
    /// when due, the leader rebalance and unclean elections. Returns the records to commit,
    /// all derived from `image` plus the earlier ones.
    pub fn tick(&mut self, image: &MetadataImage, now_ms: i64) -> Vec<MetadataRecord> {
        let mut staged = staged::Staged::new(image);
        // Records derived from the staged image apply; a failure would be a controller
        // bug, and leaving that step to the next tick is the safe reaction.
        let _ = staged.push_applied(self.expire_broker_sessions(image, now_ms));
        let completed = reassign::complete_ready(&staged.image);
        let _ = staged.push_applied(completed);
        if self.config.auto_leader_rebalance_enable
            && due(
                &mut self.next_rebalance_ms,
                now_ms,
                self.config.leader_imbalance_check_interval_ms,
            )
        {
            let records = elections::rebalance_leaders(
                &staged.image,
                self.config.leader_imbalance_per_broker_percentage,
            );
            if records.len() >= elections::ELECTIONS_PER_PASS_MAX {
                // More to do: the next tick continues.
                self.next_rebalance_ms = Some(now_ms);
            }
            let _ = staged.push_applied(records);
        }
        if due(
            &mut self.next_unclean_ms,
            now_ms,
            self.config.unclean_leader_election_interval_ms,
        ) {
            let records = elections::elect_unclean_leaders(
                &staged.image,
                self.config.unclean_leader_election_enable,
            );
            let _ = staged.push_applied(records);
        }
        staged.finish(false).unwrap_or_default()
    }

    /// Removes expired delegation tokens, every `delegation.token.expiry.check.interval.ms`
    /// (Kafka's token expiry sweep). Token timestamps are wall-clock milliseconds since the
    /// epoch (clients read them), unlike the monotonic `now_ms` of [`Controller::tick`], so
    /// the caller passes the wall clock here; call it as often as `tick`.
    pub fn sweep_delegation_tokens(
        &mut self,
        image: &MetadataImage,
        wall_ms: i64,
    ) -> Vec<MetadataRecord> {
        if due(
            &mut self.next_token_sweep_ms,
            wall_ms,
            self.config.delegation_token_expiry_check_interval_ms,
        ) {
            tokens::sweep_expired(image, wall_ms)
        } else {
            Vec::new()
        }
    }

    /// This node's controller became the active one (a new term): what it remembers of
    /// broker contacts is from an earlier term, when heartbeats went elsewhere, so every
    /// registered broker gets a full session from the next expiry pass (Kafka's controller rebuilds its
    /// heartbeat tracker on activation the same way). Without this a controller that led
    /// before would fence live brokers at once.
    pub fn activate(&mut self) {
        self.last_contact_ms.clear();
        self.unheard_since_ms.clear();
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

/// Whether a periodic pass is due at `now_ms`; schedules the next one an interval later.
/// The first call only schedules.
fn due(next_ms: &mut Option<i64>, now_ms: i64, interval_ms: i64) -> bool {
    let interval_ms = interval_ms.max(1);
    match *next_ms {
        Some(next) if now_ms >= next => {
            *next_ms = Some(now_ms.saturating_add(interval_ms));
            true
        }
        Some(_) => false,
        None => {
            *next_ms = Some(now_ms.saturating_add(interval_ms));
            false
        }
    }
}
