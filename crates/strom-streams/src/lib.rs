//! Strom Streams: Kafka Streams' model for Rust programs. A library, not a cluster: it
//! turns topics into other topics with filters, maps, aggregations, joins and windows,
//! keeps state in local stores backed by compacted changelog topics, scales by running
//! more instances of the same program (a consumer group with a Streams-aware assignor),
//! and recovers by replaying changelogs. It works against Strom and any Kafka broker.
//!
//! ```no_run
//! use strom_streams::{Consumed, KafkaStreams, Materialized, Produced, Serdes, StreamsBuilder,
//!     StreamsConfig};
//!
//! # async fn demo() -> strom_streams::Result<()> {
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("input", Consumed::with(Serdes::unit(), Serdes::string()))
//!     .flat_map_values(|line: &String| {
//!         line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>()
//!     })
//!     .group_by(|_, word: &String| word.clone(), strom_streams::Grouped::with(Serdes::string(), Serdes::string()))
//!     .count(Materialized::as_store("counts"))
//!     .to_stream()
//!     .map_values(|count: &Option<i64>| count.unwrap_or(0).to_string())
//!     .to("output", Produced::with(Serdes::string(), Serdes::string()));
//! let topology = builder.build()?;
//! let streams = KafkaStreams::new(topology, StreamsConfig::new("wordcount", "127.0.0.1:9092"))?;
//! streams.start().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Start at [`StreamsBuilder`] (the DSL: [`KStream`], [`KTable`], [`GlobalKTable`]),
//! [`Processor`] (the processor API), [`TopologyTestDriver`] (tests without a broker) and
//! [`KafkaStreams`] (the runtime).

#[cfg(feature = "avro")]
pub mod avro;
pub mod driver;
pub mod dsl;
pub mod error;
pub mod processor;
pub mod record;
pub mod runtime;
pub mod serdes;
pub mod state;
pub mod task;
pub mod topology;
pub mod windows;

#[cfg(feature = "avro")]
pub use avro::AvroSerde;
pub use driver::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
pub use dsl::{
    BranchedKStream, Consumed, GlobalKTable, Grouped, KGroupedStream, KGroupedTable, KStream,
    KTable, Materialized, Produced, Repartitioned, SessionWindowedKStream, StoreBuilder,
    StreamJoined, StreamsBuilder, Suppressed, TimeWindowedKStream,
};
pub use error::{Result, StreamsError};
pub use processor::{OutRecord, Processor, ProcessorContext, PunctuationType, TaskMetrics};
pub use record::{Change, Header, Record, RecordContext};
pub use runtime::{
    GroupProtocol, KafkaStreams, KeyQueryMetadata, Metrics, ProcessingGuarantee, StateListener,
    StreamThreadExceptionResponse, StreamsConfig, StreamsState, UncaughtExceptionHandler,
};
pub use serdes::{Serde, SerdeError, SerdeRef, Serdes};
pub use state::typed::{KeyValueStore, SessionStore, WindowStore};
pub use task::TaskId;
pub use topology::{RawRecord, TimestampExtractor, Topology};
pub use windows::{JoinWindows, SessionWindows, SlidingWindows, TimeWindows, Window, Windowed};
