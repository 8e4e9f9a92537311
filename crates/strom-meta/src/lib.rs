//! strom-meta: cluster metadata as records in a replicated log, the immutable image they
//! build, the deltas between images, and the controller that turns requests into records.
//!
//! Pure code: no I/O, no async, no clock (time is passed in), no randomness (topic ids
//! come from an injected [`IdSource`]).
//!
//! The flow, as the raft layer drives it:
//!
//! ```
//! use strom_meta::*;
//!
//! let mut controller = Controller::new(ControllerConfig::default());
//! let image = MetadataImage::default();
//! let request = ControllerRequest::RegisterBroker(RegisterBrokerRequest {
//!     broker_id: 1,
//!     incarnation_id: uuid::Uuid::from_u128(1),
//!     endpoints: vec![],
//!     rack: None,
//! });
//! // 1. The controller validates against the committed image: records plus a reply.
//! let (records, reply) = controller.handle(&image, request, 0).unwrap();
//! // 2. The records travel as one raft entry ...
//! let entry = encode_records(&records);
//! // 3. ... and every node applies the committed entry, all or nothing.
//! let (image, delta) = image.apply(&decode_records(&entry).unwrap()).unwrap();
//! assert!(delta.brokers_changed.contains(&1));
//! // 4. Only now is the reply released.
//! assert_eq!(reply, ControllerReply::RegisterBroker { broker_epoch: 1 });
//! // Snapshots rebuild the same image.
//! assert_eq!(MetadataImage::decode_snapshot(&image.encode_snapshot()).unwrap(), image);
//! ```

pub mod acl;
mod apply;
mod codec;
pub mod config_defs;
pub mod controller;
mod delta;
mod error;
mod image;
pub mod quota;
mod records;
mod snapshot;
mod wire;

pub use codec::{decode_records, encode_records};
pub use controller::errors::{ApiError, ControllerError, ErrorCode};
pub use controller::messages::*;
pub use controller::{
    assign_replicas_to_brokers, validate_topic_name, Controller, ControllerConfig, Handled,
    IdSource, PlacementError, SeededIdSource, TOPIC_NAME_LENGTH_MAX,
    UNCLEAN_LEADER_ELECTION_ENABLE,
};
pub use delta::{LocalReplicaChanges, MetadataDelta};
pub use error::MetaError;
pub use image::{
    BrokerRegistration, DelegationTokenImage, MetadataImage, PartitionImage, ProducerIdsImage,
    ScramCredentialImage, TopicIdPartition, TopicImage,
};
pub use records::{ConfigResource, ConfigResourceKind, Endpoint, MetadataRecord, NO_LEADER};
pub use wire::STRING_BYTES_MAX;
