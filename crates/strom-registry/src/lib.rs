//! strom-registry: a Schema Registry compatible with Confluent's REST API, run as a Kafka
//! client of any Kafka-compatible cluster, its state in the compacted `_schemas` topic.
//!
//! Layers: `schema` (parsing, canonical text, compatibility of Avro, JSON Schema and
//! Protobuf) and `store` (the state machine fed by `_schemas` records, in Confluent's
//! `records` formats) are pure; `service` plans each request against the store;
//! `kafka` (reader, writer, leader election) and `http` (axum) are the edges.

pub mod compat;
pub mod error;
pub mod records;
pub mod schema;
pub mod service;
pub mod store;
