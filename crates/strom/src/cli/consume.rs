//! `strom consume TOPIC`: prints records (kcat-like `--format`, or JSON lines) from assigned
//! partitions, as a group member, or as a share group member (`--share-group`), until
//! `--max-messages`, `--timeout-ms` of idleness, or Ctrl-C. A group's offsets are committed
//! for exactly the records printed; a share group member acknowledges each printed record
//! (ACCEPT, or `--ack-type release|reject`) and releases what it polled but did not print.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use strom_client::{
    AcknowledgeType, Admin, Consumer, ConsumerConfig, ConsumerRecord, OffsetAndMetadata,
    OffsetReset, OffsetSpec, ShareAcknowledgementMode, ShareConsumer, ShareConsumerConfig,
    ShareRecord, TopicPartition,
};

use super::args::{AckTypeArg, ConsumeArgs, ValueFormat};
use super::format::{self, Format, Message};
use super::output::Out;
use super::parse::StartOffset;
use super::progress::{self, Progress};

/// Longest single poll, so Ctrl-C, the idle timeout and commits are checked this often.
const POLL_MS_MAX: u64 = 500;
/// Longest wait for a group's assignment before `--timeout-ms` starts counting anyway.
const ASSIGNMENT_WAIT_MS_MAX: u64 = 30_000;
/// How often a group member commits what it printed (Kafka's auto.commit.interval.ms).
const COMMIT_INTERVAL_MS: u64 = 5_000;

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    if let Some(group) = args.share_group.clone() {
        return run_share(&args, &group).await;
    }
    let mut consumer = Consumer::new(consumer_config(&args)?)?;
    if args.group.is_some() {
        consumer.subscribe(vec![args.topic.clone()]).await?;
    } else {
        assign(&mut consumer, &args).await?;
    }
    let mut source = GroupSource {
        consumer,
        grouped: args.group.is_some(),
        printed: BTreeMap::new(),
        uncommitted: false,
        last_commit: Instant::now(),
    };
    let result = consume(&mut source, &args).await;
    let finished = match &result {
        Ok(_) if source.grouped => source.commit().await,
        _ => Ok(()),
    };
    let closed = source.consumer.close().await;
    finish_run(
        &args,
        result,
        finished,
        closed.context("cannot close the consumer"),
    )
}

/// `--share-group`: a share consumer (explicit acknowledgement: each printed record gets
/// `--ack-type`, each polled but unprinted one is released for another delivery).
async fn run_share(args: &ConsumeArgs, group: &str) -> anyhow::Result<()> {
    let mut props = super::client_properties(&args.common)?;
    for (key, value) in &args.consumer_property {
        props.set(key.trim(), value.trim());
    }
    props.set("group.id", group);
    let mut config = ShareConsumerConfig::from_properties(&mut props)?;
    super::warn_unused(&props);
    config.acknowledgement_mode = ShareAcknowledgementMode::Explicit;
    let mut consumer = ShareConsumer::new(config)?;
    consumer.subscribe(vec![args.topic.clone()]).await?;
    let mut source = ShareSource {
        consumer,
        ack: match args.ack_type {
            AckTypeArg::Accept => AcknowledgeType::Accept,
            AckTypeArg::Release => AcknowledgeType::Release,
            AckTypeArg::Reject => AcknowledgeType::Reject,
        },
        polled: Vec::new(),
    };
    let result = consume(&mut source, args).await;
    let closed = source.consumer.close().await;
    let closed = closed
        .context("cannot close the share consumer")
        .and_then(|results| {
            for (tp, r) in results {
                r.with_context(|| format!("cannot acknowledge the records of {tp}"))?;
            }
            Ok(())
        });
    finish_run(args, result, Ok(()), closed)
}

fn finish_run(
    args: &ConsumeArgs,
    result: anyhow::Result<u64>,
    finished: anyhow::Result<()>,
    closed: anyhow::Result<()>,
) -> anyhow::Result<()> {
    let count = result?;
    finished?;
    closed?;
    if !args.common.quiet && !args.common.json() {
        eprintln!("Processed a total of {count} messages");
    }
    Ok(())
}

/// Where `consume` gets records and what it tells them once printed.
trait Source {
    /// No partitions yet (joining a group).
    fn joining(&self) -> bool;
    async fn poll(&mut self, wait: Duration) -> anyhow::Result<Vec<ConsumerRecord>>;
    /// Record `index` of the last poll was printed (or, `printed` false, was not: the
    /// group must see it again).
    fn done(&mut self, index: usize, record: &ConsumerRecord, printed: bool) -> anyhow::Result<()>;
    /// Called after each poll's records.
    async fn checkpoint(&mut self) -> anyhow::Result<()>;
}

/// Assigned partitions or a consumer group (offsets committed for printed records).
struct GroupSource {
    consumer: Consumer,
    grouped: bool,
    printed: BTreeMap<TopicPartition, i64>,
    uncommitted: bool,
    last_commit: Instant,
}

impl GroupSource {
    async fn commit(&mut self) -> anyhow::Result<()> {
        commit(&mut self.consumer, &self.printed).await
    }
}

impl Source for GroupSource {
    fn joining(&self) -> bool {
        self.consumer.assignment().is_empty()
    }

    async fn poll(&mut self, wait: Duration) -> anyhow::Result<Vec<ConsumerRecord>> {
        Ok(self.consumer.poll(wait).await?)
    }

    fn done(
        &mut self,
        _index: usize,
        record: &ConsumerRecord,
        printed: bool,
    ) -> anyhow::Result<()> {
        let tp = TopicPartition::new(record.topic.clone(), record.partition);
        if printed {
            self.printed.insert(tp, record.offset.saturating_add(1));
            self.uncommitted = true;
        } else {
            // Polled but not printed: the group must read it again next time.
            self.printed.entry(tp).or_insert(record.offset);
        }
        Ok(())
    }

    async fn checkpoint(&mut self) -> anyhow::Result<()> {
        if self.grouped
            && self.uncommitted
            && self.last_commit.elapsed() >= Duration::from_millis(COMMIT_INTERVAL_MS)
        {
            self.commit().await?;
            self.uncommitted = false;
            self.last_commit = Instant::now();
        }
        Ok(())
    }
}

/// A share group member: printed records get `ack`, the others are released.
struct ShareSource {
    consumer: ShareConsumer,
    ack: AcknowledgeType,
    polled: Vec<ShareRecord>,
}

impl Source for ShareSource {
    fn joining(&self) -> bool {
        self.consumer.assignment().map_or(true, |a| a.is_empty())
    }

    async fn poll(&mut self, wait: Duration) -> anyhow::Result<Vec<ConsumerRecord>> {
        self.polled = self.consumer.poll(wait).await?;
        for (tp, e) in self.consumer.take_acknowledgement_errors() {
            eprintln!("warning: an acknowledgement of {tp} failed: {e}");
        }
        Ok(self.polled.iter().map(|r| r.record.clone()).collect())
    }

    fn done(
        &mut self,
        index: usize,
        _record: &ConsumerRecord,
        printed: bool,
    ) -> anyhow::Result<()> {
        let kind = if printed {
            self.ack
        } else {
            AcknowledgeType::Release
        };
        if let Some(r) = self.polled.get(index) {
            self.consumer.acknowledge(r, kind)?;
        }
        Ok(())
    }

    async fn checkpoint(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The consumer's settings: the client properties, then --consumer-property, then what
/// the command's flags decide (group, start position, commits).
fn consumer_config(args: &ConsumeArgs) -> anyhow::Result<ConsumerConfig> {
    let mut props = super::client_properties(&args.common)?;
    for (key, value) in &args.consumer_property {
        props.set(key.trim(), value.trim());
    }
    let mut config = ConsumerConfig::from_properties(&mut props)?;
    super::warn_unused(&props);
    config.group_id = args.group.clone();
    // Commits are made here, for printed records only (a poll may return more than
    // --max-messages lets through).
    config.enable_auto_commit = false;
    config.auto_offset_reset = if args.from_beginning {
        OffsetReset::Earliest
    } else {
        OffsetReset::Latest
    };
    Ok(config)
}

/// Assigns the chosen partitions (all by default) and seeks to the start position.
async fn assign(consumer: &mut Consumer, args: &ConsumeArgs) -> anyhow::Result<()> {
    let admin = Admin::new(super::client_config(&args.common)?)?;
    let result = chosen_partitions(&admin, args).await;
    let partitions = match result {
        Ok(partitions) => partitions,
        Err(e) => {
            admin.close().await;
            return Err(e);
        }
    };
    consumer.assign(partitions.clone()).await?;
    let start = match (args.from_beginning, args.offset) {
        (true, _) => StartOffset::Beginning,
        (false, Some(offset)) => offset,
        // kafka-console-consumer.sh starts at the end without --from-beginning.
        (false, None) => StartOffset::End,
    };
    let sought = seek(consumer, &admin, &partitions, start).await;
    admin.close().await;
    sought
}

async fn chosen_partitions(
    admin: &Admin,
    args: &ConsumeArgs,
) -> anyhow::Result<Vec<TopicPartition>> {
    let all = admin.partitions_of(&args.topic).await?;
    if args.partition.is_empty() {
        return Ok(all);
    }
    let mut chosen = Vec::new();
    for &p in &args.partition {
        let tp = TopicPartition::new(args.topic.clone(), p);
        if !all.contains(&tp) {
            anyhow::bail!(
                "topic {} has no partition {p} (it has {})",
                args.topic,
                all.len()
            );
        }
        if !chosen.contains(&tp) {
            chosen.push(tp);
        }
    }
    Ok(chosen)
}

async fn seek(
    consumer: &mut Consumer,
    admin: &Admin,
    partitions: &[TopicPartition],
    start: StartOffset,
) -> anyhow::Result<()> {
    match start {
        StartOffset::Beginning => consumer.seek_to_beginning(partitions).await?,
        StartOffset::End => consumer.seek_to_end(partitions).await?,
        StartOffset::Timestamp(ms) => consumer.seek_to_timestamp(partitions, ms).await?,
        StartOffset::At(offset) => {
            for tp in partitions {
                consumer.seek(tp, offset).await?;
            }
        }
        StartOffset::BeforeEnd(n) => {
            let earliest = admin.list_offsets(partitions, OffsetSpec::Earliest).await?;
            let latest = admin.list_offsets(partitions, OffsetSpec::Latest).await?;
            for tp in partitions {
                let end = latest.get(tp).map_or(0, |o| o.offset);
                let start = earliest.get(tp).map_or(0, |o| o.offset);
                consumer.seek(tp, end.saturating_sub(n).max(start)).await?;
            }
        }
    }
    Ok(())
}

/// The poll loop; returns how many records were printed.
async fn consume(source: &mut impl Source, args: &ConsumeArgs) -> anyhow::Result<u64> {
    let common = &args.common;
    let format = args.format.clone().unwrap_or_default();
    let show = progress::wanted(common.quiet, common.json()) && args.max_messages.is_some();
    let progress = Progress::items(show, args.max_messages, "consuming");
    let idle = args.timeout_ms.map(Duration::from_millis);
    let mut out = Out::new();
    let mut count = 0u64;
    let mut last_record = Instant::now();
    let started = Instant::now();
    let assignment_wait = Duration::from_millis(ASSIGNMENT_WAIT_MS_MAX);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut avro = (args.value_format == ValueFormat::Avro).then(|| {
        super::schemas::AvroDecoder::new(super::schemas::client(&args.registry.registry_url))
    });
    loop {
        if args.max_messages.is_some_and(|max| count >= max) {
            break;
        }
        let mut wait = Duration::from_millis(POLL_MS_MAX);
        // A group member idles only once it has partitions: joining can take seconds
        // (group.initial.rebalance.delay.ms), which must not count as idleness.
        let joining = source.joining() && started.elapsed() < assignment_wait;
        if joining {
            last_record = Instant::now();
        }
        if let Some(idle) = idle {
            let left = idle.saturating_sub(last_record.elapsed());
            if left.is_zero() {
                break;
            }
            wait = wait.min(left);
        }
        let records = tokio::select! {
            _ = &mut ctrl_c => {
                super::exit_on_second_ctrl_c();
                break;
            }
            polled = source.poll(wait) => polled?,
        };
        // The poll that completes a join may itself take seconds.
        if !records.is_empty() || joining {
            last_record = Instant::now();
        }
        let allowed = args.max_messages.map_or(records.len(), |max| {
            usize::try_from(max.saturating_sub(count)).unwrap_or(usize::MAX)
        });
        for (i, mut record) in records.into_iter().enumerate() {
            if i >= allowed {
                source.done(i, &record, false)?;
                continue;
            }
            if let (Some(decoder), Some(value)) = (avro.as_mut(), record.value.as_ref()) {
                let json = decoder.decode(value).await.with_context(|| {
                    format!(
                        "cannot decode the value at {}-{} offset {}",
                        record.topic, record.partition, record.offset
                    )
                })?;
                record.value = Some(bytes::Bytes::from(json));
            }
            buf.clear();
            render(&format, common.json(), &record, &mut buf);
            out.bytes(&buf)?;
            count += 1;
            source.done(i, &record, true)?;
        }
        progress.set_position(count);
        progress.suspend(|| out.flush())?;
        source.checkpoint().await?;
    }
    progress.finish();
    out.flush()?;
    Ok(count)
}

/// Commits the offset after the last printed record of each partition (`printed`, which
/// also holds the first polled-but-unprinted offset); a partition with nothing polled gets
/// its current position (where it would start), as Kafka's console consumer leaves it.
async fn commit(
    consumer: &mut Consumer,
    printed: &BTreeMap<TopicPartition, i64>,
) -> anyhow::Result<()> {
    let mut offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = printed
        .iter()
        .map(|(tp, next)| (tp.clone(), OffsetAndMetadata::new(*next)))
        .collect();
    for tp in consumer.assignment() {
        if let (Entry::Vacant(slot), Some(position)) =
            (offsets.entry(tp.clone()), consumer.position(&tp))
        {
            slot.insert(OffsetAndMetadata::new(position));
        }
    }
    consumer
        .commit_offsets(&offsets)
        .await
        .context("cannot commit the group's offsets")
}

fn render(format: &Format, json: bool, record: &ConsumerRecord, out: &mut Vec<u8>) {
    let message = Message {
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
        timestamp_ms: record.timestamp_ms,
        key: record.key.clone(),
        value: record.value.clone(),
        headers: record
            .headers
            .iter()
            .map(|h| {
                (
                    String::from_utf8_lossy(&h.key).into_owned(),
                    h.value.clone(),
                )
            })
            .collect(),
    };
    if json {
        out.extend_from_slice(format::message_json(&message).as_bytes());
        out.push(b'\n');
    } else {
        format.render(&message, out);
    }
}
