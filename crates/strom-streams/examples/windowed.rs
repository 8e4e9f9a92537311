//! Windowed aggregation with `suppress`: counts records per key in tumbling windows and
//! writes each window's count once, when the window closes (stream time past its end plus
//! the grace period). Output: key `<key>@<window start ms>`, value the count as decimal
//! text.
//!
//! ```text
//! cargo run --release -p strom-streams --example windowed -- \
//!     --bootstrap-server 127.0.0.1:9092 --input clicks --output clicks-per-minute \
//!     --application-id clicks --window-ms 60000 --grace-ms 5000
//! ```

mod common;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use strom_streams::{
    Consumed, Grouped, KafkaStreams, Materialized, Produced, Serdes, StreamsBuilder, StreamsConfig,
    Suppressed, TimeWindows, Topology, Windowed,
};

#[derive(Parser)]
#[command(about = "Strom Streams windowed count with suppress")]
struct Args {
    #[arg(long)]
    bootstrap_server: String,
    /// Topic of keyed records (the key is what is counted).
    #[arg(long)]
    input: String,
    /// Topic of final per-window counts.
    #[arg(long)]
    output: String,
    #[arg(long)]
    application_id: String,
    /// Window size.
    #[arg(long, default_value_t = 60_000)]
    window_ms: u64,
    /// How long after a window's end late records still count.
    #[arg(long, default_value_t = 5_000)]
    grace_ms: u64,
    #[arg(long)]
    state_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 1000)]
    commit_interval_ms: u64,
    /// More settings, `key=value`.
    #[arg(long = "config", short = 'c')]
    settings: Vec<String>,
}

pub fn topology(
    input: &str,
    output: &str,
    window: Duration,
    grace: Duration,
) -> strom_streams::Result<Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream(
            input,
            Consumed::with(Serdes::string(), Serdes::nullable(Serdes::bytes())),
        )
        .group_by_key(Grouped::default())
        .windowed_by(TimeWindows::of_size_and_grace(window, grace))
        .count(Materialized::as_store("window-counts"))
        .suppress(Suppressed::until_window_closes())
        .to_stream()
        .filter_some()
        .map(|w: &Windowed<String>, count: &i64| {
            (format!("{}@{}", w.key, w.window.start), count.to_string())
        })
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
        .set("commit.interval.ms", args.commit_interval_ms.to_string())
        .set("state.dir", state_dir.display().to_string());
    common::set_all(&mut props, &args.settings)?;
    let config = StreamsConfig::from_properties(&props)?;
    let topology = topology(
        &args.input,
        &args.output,
        Duration::from_millis(args.window_ms),
        Duration::from_millis(args.grace_ms),
    )?;
    let streams = KafkaStreams::new(topology, config)?;
    common::run_until_signal(streams, "windowed").await
}
