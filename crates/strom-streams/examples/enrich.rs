//! Stream-table enrichment join: each order (key = customer id) is joined with the
//! customer's current row from a table (key = customer id, value = name; a null value
//! deletes the customer). Orders of unknown customers go out with `unknown customer`.
//! Output: key = customer id, value = `<order> for <name>`.
//!
//! ```text
//! cargo run --release -p strom-streams --example enrich -- \
//!     --bootstrap-server 127.0.0.1:9092 --orders orders --customers customers \
//!     --output enriched-orders --application-id enrich
//! ```
//! `orders` and `customers` must have the same number of partitions (the join is local
//! to each task), and their records keyed by customer id.

mod common;

use std::path::PathBuf;

use clap::Parser;
use strom_streams::{
    Consumed, KafkaStreams, Materialized, Produced, Serdes, StreamsBuilder, StreamsConfig, Topology,
};

#[derive(Parser)]
#[command(about = "Strom Streams stream-table enrichment join")]
struct Args {
    #[arg(long)]
    bootstrap_server: String,
    /// Topic of orders keyed by customer id.
    #[arg(long)]
    orders: String,
    /// Compacted topic of customers: customer id -> name.
    #[arg(long)]
    customers: String,
    #[arg(long)]
    output: String,
    #[arg(long)]
    application_id: String,
    #[arg(long)]
    state_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 1000)]
    commit_interval_ms: u64,
    /// More settings, `key=value`.
    #[arg(long = "config", short = 'c')]
    settings: Vec<String>,
}

pub fn topology(orders: &str, customers: &str, output: &str) -> strom_streams::Result<Topology> {
    let builder = StreamsBuilder::new();
    let customers = builder.table(
        customers,
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::as_store("customers"),
    );
    builder
        .stream(orders, Consumed::with(Serdes::string(), Serdes::string()))
        .left_join_table(&customers, |order: &String, name: Option<&String>| {
            format!(
                "{order} for {}",
                name.map_or("unknown customer", String::as_str)
            )
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
    let streams = KafkaStreams::new(
        topology(&args.orders, &args.customers, &args.output)?,
        config,
    )?;
    common::run_until_signal(streams, "enrich").await
}
