//! Word count: reads lines from `--input`, splits each on whitespace (lower-cased), and
//! writes to `--output` one record per word occurrence with key = the word and value = its
//! running count as decimal text.
//!
//! ```text
//! cargo run --release -p strom-streams --example wordcount -- \
//!     --bootstrap-server 127.0.0.1:9092 --input lines --output counts --application-id wordcount
//! ```
//!
//! Run it again (with another `--state-dir`) to add an instance: the group shares the
//! work and moves tasks with their state. With `--processing-guarantee exactly_once_v2`
//! each commit (every 100 ms unless `--commit-interval-ms` says otherwise) is a
//! transaction: a read_committed reader of the output sees every count exactly once,
//! even when instances are killed.

mod common;

use std::path::PathBuf;

use clap::Parser;
use strom_streams::{
    Consumed, Grouped, KafkaStreams, Materialized, Produced, Serdes, StreamsBuilder, StreamsConfig,
    Topology,
};

#[derive(Parser)]
#[command(about = "Strom Streams word count")]
struct Args {
    /// `host:port` of a broker.
    #[arg(long)]
    bootstrap_server: String,
    /// Topic of text lines.
    #[arg(long)]
    input: String,
    /// Topic of (word, running count) records.
    #[arg(long)]
    output: String,
    /// The application id (consumer group, internal topic prefix).
    #[arg(long)]
    application_id: String,
    /// `at_least_once` (default) or `exactly_once_v2`.
    #[arg(long, default_value = "at_least_once")]
    processing_guarantee: String,
    /// `classic` (default: consumer groups with the Streams assignor) or `streams`
    /// (KIP-1071: the broker assigns the tasks).
    #[arg(long, default_value = "classic")]
    group_protocol: String,
    /// Where this instance keeps its stores (default: a directory per process id).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// `commit.interval.ms` (default 1000 under at_least_once; Kafka's 100 under
    /// exactly_once_v2).
    #[arg(long)]
    commit_interval_ms: Option<u64>,
    /// More settings, `key=value` (Kafka Streams or client property names).
    #[arg(long = "config", short = 'c')]
    settings: Vec<String>,
}

/// The word count topology.
pub fn topology(input: &str, output: &str) -> strom_streams::Result<Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream(
            input,
            Consumed::with(Serdes::nullable(Serdes::string()), Serdes::string()),
        )
        .flat_map_values(|line: &String| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(
            |_, word: &String| word.clone(),
            Grouped::with(Serdes::string(), Serdes::string()),
        )
        .count(Materialized::as_store("counts"))
        .to_stream()
        .filter_some()
        .map_values(|count: &i64| count.to_string())
        .to(output, Produced::with(Serdes::string(), Serdes::string()));
    builder.build()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let state_dir = args.state_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("strom-streams-{}", std::process::id()))
    });
    let mut props = strom_client::Properties::new();
    props
        .set("application.id", args.application_id.clone())
        .set("bootstrap.servers", args.bootstrap_server.clone())
        .set("processing.guarantee", args.processing_guarantee.clone())
        .set("group.protocol", args.group_protocol.clone())
        .set("state.dir", state_dir.display().to_string());
    let commit_interval_ms = match args.commit_interval_ms {
        Some(ms) => Some(ms),
        None if args.processing_guarantee == "exactly_once_v2" => None,
        None => Some(1000),
    };
    if let Some(ms) = commit_interval_ms {
        props.set("commit.interval.ms", ms.to_string());
    }
    common::set_all(&mut props, &args.settings)?;
    let config = StreamsConfig::from_properties(&props)?;
    let topology = topology(&args.input, &args.output)?;
    let streams = match KafkaStreams::new(topology, config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wordcount: {e}");
            std::process::exit(1);
        }
    };
    common::run_until_signal(streams, "wordcount").await
}
