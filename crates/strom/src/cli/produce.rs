//! `strom produce TOPIC`: lines from stdin or `--file` as records, sent with a bounded
//! window of unacknowledged records; a summary of where they landed at the end. With a
//! `transactional.id` producer property every line goes into one transaction, committed
//! at the end (or aborted: on a failure, or with `--abort-transaction`).

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader};

use anyhow::Context as _;
use bytes::Bytes;
use serde::Serialize;
use strom_client::{DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata};

use super::args::{Acks, Common, Compression, ProduceArgs, ValueFormat};
use super::lines::{Line, LineError, Lines};
use super::output;
use super::progress::{self, Progress};

/// Records sent but not yet acknowledged; the producer's own buffer bounds bytes, this
/// bounds the delivery futures held here.
const PENDING_RECORDS_MAX: usize = 10_000;
/// Lines read ahead of the producer.
const READ_AHEAD_LINES: usize = 1_024;

/// Where the produced records landed, per partition.
#[derive(Debug, Default, Serialize)]
struct Summary {
    topic: String,
    records: u64,
    partitions: BTreeMap<i32, PartitionSummary>,
    /// `committed` or `aborted` when the records went into a transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct PartitionSummary {
    records: u64,
    /// -1 with `--acks 0` (the broker does not say).
    first_offset: i64,
    last_offset: i64,
}

impl Summary {
    fn add(&mut self, meta: &RecordMetadata) {
        self.records += 1;
        let entry = self
            .partitions
            .entry(meta.partition)
            .or_insert(PartitionSummary {
                records: 0,
                first_offset: meta.offset,
                last_offset: meta.offset,
            });
        entry.records += 1;
        entry.first_offset = entry.first_offset.min(meta.offset);
        entry.last_offset = entry.last_offset.max(meta.offset);
    }

    fn sentence(&self) -> String {
        let parts: Vec<String> = self
            .partitions
            .iter()
            .map(|(p, s)| {
                if s.first_offset < 0 {
                    format!("partition {p}: {} records", s.records)
                } else {
                    format!(
                        "partition {p}: offsets {}-{}",
                        s.first_offset, s.last_offset
                    )
                }
            })
            .collect();
        let plural = if self.records == 1 { "" } else { "s" };
        let sentence = self.plain_sentence(plural, &parts);
        match self.transaction {
            Some(end) => format!("{} The transaction was {end}.", sentence),
            None => sentence,
        }
    }

    fn plain_sentence(&self, plural: &str, parts: &[String]) -> String {
        if parts.is_empty() {
            format!(
                "Produced {} record{plural} to {}.",
                self.records, self.topic
            )
        } else {
            format!(
                "Produced {} record{plural} to {} ({}).",
                self.records,
                self.topic,
                parts.join("; ")
            )
        }
    }
}

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let (input, total_bytes) = open_input(&args)?;
    let show = progress::wanted(common.quiet, common.json());
    let progress = match total_bytes {
        Some(total) => Progress::bytes(show, total, "producing"),
        None => Progress::off(),
    };
    let avro = match args.value_format {
        ValueFormat::Raw => None,
        ValueFormat::Avro => Some(avro_schema(&args).await?),
    };
    let config = producer_config(&args)?;
    let transactional = config.transactional_id.is_some();
    if args.abort_transaction && !transactional {
        anyhow::bail!(
            "--abort-transaction needs a transactional producer: add --producer-property transactional.id=ID"
        );
    }
    let producer = Producer::new(config)?;
    if transactional {
        producer
            .init_transactions()
            .await
            .context("cannot initialise the transactional producer")?;
        producer.begin_transaction()?;
    }
    let headers: Vec<(Bytes, Option<Bytes>)> = args
        .header
        .iter()
        .map(|(k, v)| {
            (
                Bytes::from(k.clone()),
                v.as_ref().map(|v| Bytes::from(v.clone())),
            )
        })
        .collect();
    let mut rx = spawn_reader(input, args.key_separator.clone(), args.max_line_bytes);
    let mut summary = Summary {
        topic: args.topic.clone(),
        ..Summary::default()
    };
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut failure: Option<anyhow::Error> = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let item = tokio::select! {
            // Ctrl-C stops reading; what was read is still delivered and summarised.
            _ = &mut ctrl_c => {
                super::exit_on_second_ctrl_c();
                break;
            }
            item = rx.recv() => item,
        };
        let Some(item) = item else { break };
        let line = match item {
            Ok(line) => line,
            Err(e) => {
                failure = Some(e.into());
                break;
            }
        };
        progress.inc(line.read_bytes);
        let line = match &avro {
            None => line,
            Some((id, schema)) => match encode_avro(line, *id, schema) {
                Ok(line) => line,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            },
        };
        let record = record(&args, &headers, line);
        match producer.send(record).await {
            Ok(delivery) => pending.push_back(delivery),
            Err(e) => {
                failure = Some(anyhow::Error::new(e).context("cannot send"));
                break;
            }
        }
        if pending.len() >= PENDING_RECORDS_MAX {
            if let Some(delivery) = pending.pop_front() {
                if let Err(e) = settle(delivery, &mut summary, &progress).await {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    drop(rx);
    let flushed = producer.flush().await;
    for delivery in pending {
        if let Err(e) = settle(delivery, &mut summary, &progress).await {
            failure.get_or_insert(e);
        }
    }
    if transactional {
        let commit = failure.is_none() && flushed.is_ok() && !args.abort_transaction;
        let ended = if commit {
            producer.commit_transaction().await
        } else {
            producer.abort_transaction().await
        };
        match ended {
            Ok(()) => summary.transaction = Some(if commit { "committed" } else { "aborted" }),
            Err(e) => {
                failure.get_or_insert(anyhow::Error::new(e).context("cannot end the transaction"));
            }
        }
    }
    let closed = producer.close().await;
    progress.finish();
    report(common, &summary)?;
    if let Some(e) = failure {
        return Err(e);
    }
    flushed?;
    closed?;
    Ok(())
}

/// Registers `--schema` under `--subject` (default TOPIC-value): its id and the schema.
async fn avro_schema(
    args: &ProduceArgs,
) -> anyhow::Result<(i32, strom_registry::schema::avro::AvroSchema)> {
    let path = args
        .schema
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("--value-format avro needs --schema FILE"))?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let subject = args
        .subject
        .clone()
        .unwrap_or_else(|| format!("{}-value", args.topic));
    let registry = super::schemas::client(&args.registry.registry_url);
    super::schemas::register_avro(&registry, &subject, &text)
        .await
        .with_context(|| format!("cannot register {} under {subject}", path.display()))
}

/// A line's JSON value as Avro in Confluent's wire format.
fn encode_avro(
    mut line: Line,
    id: i32,
    schema: &strom_registry::schema::avro::AvroSchema,
) -> anyhow::Result<Line> {
    let json: serde_json::Value = serde_json::from_slice(&line.value)
        .with_context(|| format!("line {} is not a JSON value", line.number))?;
    let payload = strom_registry::wire::avro_encode(schema, &json)
        .map_err(|e| anyhow::anyhow!("line {}: {e}", line.number))?;
    line.value = Bytes::from(strom_registry::wire::frame(id, &payload));
    Ok(line)
}

async fn settle(
    delivery: DeliveryFuture,
    summary: &mut Summary,
    progress: &Progress,
) -> anyhow::Result<()> {
    let meta = delivery.await.context("a record was not delivered")?;
    summary.add(&meta);
    progress.set_note(format!("{} records", summary.records));
    Ok(())
}

fn report(common: &Common, summary: &Summary) -> anyhow::Result<()> {
    // The summary is produce's result: stdout, as text or JSON (docs/ARCHITECTURE.md).
    if common.json() {
        output::print_json(summary)
    } else {
        output::print_line(&summary.sentence())
    }
}

type Input = Box<dyn BufRead + Send>;

/// The input and, for a file, its size in bytes (for the progress bar).
fn open_input(args: &ProduceArgs) -> anyhow::Result<(Input, Option<u64>)> {
    match &args.file {
        Some(path) => {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let size = file.metadata().ok().map(|m| m.len());
            Ok((Box::new(BufReader::with_capacity(256 * 1024, file)), size))
        }
        None => Ok((Box::new(BufReader::new(std::io::stdin())), None)),
    }
}

/// Reads lines on a thread of its own, so a slow or interactive stdin never stalls the
/// runtime that sends batches; the channel bounds how far it reads ahead.
fn spawn_reader(
    input: Input,
    separator: Option<String>,
    max_line_bytes: usize,
) -> tokio::sync::mpsc::Receiver<Result<Line, LineError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD_LINES);
    std::thread::spawn(move || {
        let mut lines = Lines::new(input, separator.as_deref(), max_line_bytes);
        while let Some(item) = lines.next_line() {
            let stop = item.is_err();
            if tx.blocking_send(item).is_err() || stop {
                break;
            }
        }
    });
    rx
}

fn record(args: &ProduceArgs, headers: &[(Bytes, Option<Bytes>)], line: Line) -> ProducerRecord {
    let mut record = ProducerRecord::new(args.topic.clone(), line.value);
    if let Some(key) = line.key {
        record = record.key(key);
    }
    if let Some(partition) = args.partition {
        record = record.partition(partition);
    }
    for (key, value) in headers {
        record = record.header(key.clone(), value.clone());
    }
    record
}

/// The producer's settings: the client properties, then --producer-property, then the
/// explicit --acks and --compression (Kafka's console producer's order).
fn producer_config(args: &ProduceArgs) -> anyhow::Result<ProducerConfig> {
    let mut props = super::client_properties(&args.common)?;
    for (key, value) in &args.producer_property {
        props.set(key.trim(), value.trim());
    }
    if let Some(acks) = args.acks {
        let acks = match acks {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        };
        props.set("acks", acks);
    }
    if let Some(compression) = args.compression {
        let name = match compression {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        };
        props.set("compression.type", name);
    }
    // The command waits for metadata no longer than for a request, unless told otherwise.
    if !props.contains("max.block.ms") {
        let timeout = props
            .get("request.timeout.ms")
            .unwrap_or("30000")
            .to_string();
        props.set("max.block.ms", timeout);
    }
    let config = ProducerConfig::from_properties(&mut props)?;
    super::warn_unused(&props);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(partition: i32, offset: i64) -> RecordMetadata {
        RecordMetadata {
            topic: "t".into(),
            partition,
            offset,
            timestamp_ms: 0,
        }
    }

    #[test]
    fn summaries_name_offset_ranges_per_partition() {
        let mut summary = Summary {
            topic: "t".into(),
            ..Summary::default()
        };
        for (p, o) in [(1, 5), (0, 0), (1, 6), (0, 1), (0, 2)] {
            summary.add(&meta(p, o));
        }
        assert_eq!(
            summary.sentence(),
            "Produced 5 records to t (partition 0: offsets 0-2; partition 1: offsets 5-6)."
        );
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["records"], 5);
        assert_eq!(json["partitions"]["1"]["first_offset"], 5);
    }

    #[test]
    fn acks_0_summaries_have_no_offsets() {
        let mut summary = Summary {
            topic: "t".into(),
            ..Summary::default()
        };
        summary.add(&meta(0, -1));
        assert_eq!(
            summary.sentence(),
            "Produced 1 record to t (partition 0: 1 records)."
        );
    }
}
