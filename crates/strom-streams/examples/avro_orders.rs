//! Avro in, Avro out, through a schema registry (feature `avro`): reads orders whose key
//! (the customer, an Avro string) and value (an `Order` record) were written in
//! Confluent's wire format by any Avro serializer (e.g. confluent-kafka's
//! `AvroSerializer`), and writes one `OrderLine` record per order with its amount, keyed
//! by customer, registered under `<output>-key` / `<output>-value`, so Confluent's
//! `AvroDeserializer` reads it.
//!
//! ```text
//! cargo run -p strom-streams --features avro --example avro_orders -- \
//!     --bootstrap-server 127.0.0.1:9092 --schema-registry-url http://127.0.0.1:8081 \
//!     --input orders --output order-lines --application-id orders
//! ```

mod common;

use std::path::PathBuf;

use clap::Parser;
use serde::{Deserialize, Serialize};
use strom_streams::{AvroSerde, Consumed, KafkaStreams, Produced, StreamsBuilder, StreamsConfig};

#[derive(Parser)]
#[command(about = "Strom Streams: Avro orders to Avro order lines")]
struct Args {
    /// `host:port` of a broker.
    #[arg(long)]
    bootstrap_server: String,
    /// The schema registry (`schema.registry.url`), `http://host:port`.
    #[arg(long)]
    schema_registry_url: String,
    /// Topic of orders (key: customer, Avro string; value: `Order`).
    #[arg(long)]
    input: String,
    /// Topic of order lines (key: customer; value: `OrderLine`).
    #[arg(long)]
    output: String,
    /// The application id.
    #[arg(long)]
    application_id: String,
    /// Where this instance keeps its state.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// More settings, `key=value`.
    #[arg(long = "config", short = 'c')]
    settings: Vec<String>,
}

/// An order as its producer wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    item: String,
    quantity: i32,
    price: f64,
    /// Optional in the schema (a union with null).
    #[serde(default)]
    note: Option<String>,
}

/// What the topology writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderLine {
    customer: String,
    item: String,
    amount: f64,
    noted: bool,
}

const ORDER_LINE_SCHEMA: &str = r#"{"type":"record","name":"OrderLine","namespace":"strom.example","fields":[{"name":"customer","type":"string"},{"name":"item","type":"string"},{"name":"amount","type":"double"},{"name":"noted","type":"boolean"}]}"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let url = args.schema_registry_url.as_str();
    let state_dir = args.state_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("strom-streams-{}", std::process::id()))
    });
    let mut props = strom_client::Properties::new();
    props
        .set("application.id", args.application_id.clone())
        .set("bootstrap.servers", args.bootstrap_server.clone())
        .set("state.dir", state_dir.display().to_string())
        .set("commit.interval.ms", "200");
    common::set_all(&mut props, &args.settings)?;
    let config = StreamsConfig::from_properties(&props)?;

    // Reading: whatever schema each record's id names. Writing: our schemas, registered
    // now under the output topic's subjects.
    let order_keys = AvroSerde::<String>::reader(url);
    let orders = AvroSerde::<Order>::reader(url);
    let line_keys = AvroSerde::<String>::for_topic(url, &args.output, true, r#""string""#).await?;
    let lines =
        AvroSerde::<OrderLine>::for_topic(url, &args.output, false, ORDER_LINE_SCHEMA).await?;

    let builder = StreamsBuilder::new();
    builder
        .stream(&args.input, Consumed::with(order_keys, orders))
        .map(|customer: &String, order: &Order| {
            let line = OrderLine {
                customer: customer.clone(),
                item: order.item.clone(),
                amount: f64::from(order.quantity) * order.price,
                noted: order.note.is_some(),
            };
            (customer.clone(), line)
        })
        .to(&args.output, Produced::with(line_keys, lines));
    let streams = KafkaStreams::new(builder.build()?, config)?;
    common::run_until_signal(streams, "avro_orders").await
}
