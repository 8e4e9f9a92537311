//! strom-registry: a Schema Registry compatible with Confluent's REST API, run as a Kafka
//! client of any Kafka-compatible cluster, its state in the compacted `_schemas` topic.
//!
//! Layers: `schema` (parsing, canonical text and compatibility of Avro, JSON Schema and
//! Protobuf), `compat` (levels) and `store` (the state machine fed by `_schemas` records,
//! in Confluent's `records` formats) are pure; `service` plans each request against the
//! store (pure too); `kafka` (reader and writer of the topic), `leader` (election through
//! a consumer group), `http` (the REST API on axum) and `client` (a small HTTP client)
//! are the edges; `registry` puts them together.

pub mod access;
pub mod client;
pub mod compat;
pub mod config;
pub mod decode;
pub mod error;
pub mod http;
pub mod kafka;
pub mod leader;
pub mod records;
pub mod registry;
pub mod schema;
pub mod security;
pub mod service;
pub mod store;
pub mod wire;

pub use config::RegistryConfig;
pub use error::{RegistryError, RestError};
pub use registry::Registry;
