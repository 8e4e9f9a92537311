//! strom-client: an async Kafka client (admin, producer, consumer) over tokio that works
//! against any Kafka-compatible broker.
//!
//! Start at [`Admin`], [`Producer`], [`Consumer`] and [`ShareConsumer`]; each is built from a typed config
//! read from Kafka's client property names ([`ClientConfig`], [`ProducerConfig`],
//! [`ConsumerConfig`], [`Properties`]). Every failure is a [`ClientError`].
//!
//! ```no_run
//! use std::time::Duration;
//! use strom_client::{Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, OffsetReset,
//!     Producer, ProducerConfig, ProducerRecord};
//!
//! # async fn demo() -> strom_client::Result<()> {
//! let admin = Admin::new(ClientConfig::new("127.0.0.1:9092"))?;
//! admin.create_topic(&NewTopic::new("orders", 3, 1)).await?;
//!
//! let producer = Producer::new(ProducerConfig::new("127.0.0.1:9092"))?;
//! let delivery = producer.send(ProducerRecord::new("orders", "hello").key("k1")).await?;
//! let written = delivery.await?; // partition, offset, timestamp
//! producer.close().await?;
//!
//! let mut config = ConsumerConfig::new("127.0.0.1:9092");
//! config.group_id = Some("readers".into());
//! config.auto_offset_reset = OffsetReset::Earliest;
//! let mut consumer = Consumer::new(config)?;
//! consumer.subscribe(vec!["orders".into()]).await?;
//! for record in consumer.poll(Duration::from_secs(1)).await? {
//!     println!("{}-{}@{}: {:?}", record.topic, record.partition, record.offset, record.value);
//! }
//! consumer.close().await?; // commits (auto commit) and leaves the group
//! # let _ = written;
//! # Ok(())
//! # }
//! ```
//!
//! Architecture: `conn` is one pipelined connection (ApiVersions, framing, correlation
//! ids); `cluster` owns the metadata cache, the connection per broker, coordinator lookup
//! and retries; `admin`, `producer`, `consumer` and `share` (share groups, KIP-932) build
//! Kafka requests on top of it.

pub mod admin;
mod cluster;
pub mod config;
mod conn;
pub mod consumer;
pub mod error;
pub mod producer;
pub mod retry;
pub mod share;
pub mod types;
mod versions;

pub use admin::{
    AclEntry, Admin, AlterConfigOp, ClusterDescription, ConfigEntry, ConfigResource, ConfigSource,
    DelegationToken, ElectionType, FeatureDescription, FeatureMetadata, GroupDescription,
    GroupListing, ListedOffset, LogDirDescription, LogDirReplica, MemberDescription, NewTopic,
    PartitionReassignment, PartitionResults, QuorumDescription, QuorumReplica, QuotaEntity,
    QuotaMatch, ShareGroupDescription, ShareMemberDescription, SharePartitionOffset,
    TransactionDescription, TransactionListing, UpgradeType,
};
pub use cluster::{BrokerInfo, ClusterMetadata, PartitionInfo, TopicInfo};
pub use config::{
    parse_compression, Acks, ClientConfig, ConsumerConfig, OffsetReset, ProducerConfig, Properties,
    ShareAcknowledgementMode, ShareConsumerConfig,
};
pub use consumer::{Consumer, ConsumerRecord};
pub use error::{ClientError, Result};
pub use producer::{DeliveryFuture, Producer, ProducerRecord, RecordMetadata};
pub use share::{AcknowledgeType, AcknowledgementResults, ShareConsumer, ShareRecord};
pub use strom_records::{Compression, Header, TimestampType};
pub use types::{ConsumerGroupMetadata, OffsetAndMetadata, OffsetSpec, TopicPartition};
