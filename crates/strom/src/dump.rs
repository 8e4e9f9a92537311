//! `strom metadata dump DIR`: prints a metadata log directory's vote, snapshot, entries and
//! records, and the image they build (like kafka-metadata-shell), without changing any file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use strom_meta::{decode_records, MetadataImage};
use strom_raft::durable_log::{DurableLog, LogConfig};
use strom_raft::snapshot_file;
use strom_raft::types::EntryPayload;

use crate::server_config::METADATA_TOPIC_DIR;

/// Accepts the metadata log dir itself or the `metadata.log.dir` that contains it.
fn resolve_dir(dir: &Path) -> PathBuf {
    let nested = dir.join(METADATA_TOPIC_DIR);
    if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}

pub fn run(dir: &Path) -> anyhow::Result<()> {
    print!("{}", render(dir)?);
    Ok(())
}

/// The whole dump as text (stable line prefixes, so tests and scripts can grep it).
pub fn render(dir: &Path) -> anyhow::Result<String> {
    let dir = resolve_dir(dir);
    if !dir.is_dir() {
        return Err(anyhow!("{} is not a directory", dir.display()));
    }
    let config = LogConfig {
        entry_bytes_max: 64 * 1024 * 1024,
        ..LogConfig::default()
    };
    // The snapshot first: the log is checked against its last entry, as at start-up.
    let snapshot = snapshot_file::load(&dir).context("reading the snapshot")?;
    let snapshot = match &snapshot {
        Some(body) => Some(snapshot_file::decode_body(body)?),
        None => None,
    };
    let snapshot_last = snapshot.as_ref().and_then(|(meta, _)| meta.last_log_id);
    let (log, report) = DurableLog::open_after_snapshot(&dir, config, snapshot_last, false)
        .with_context(|| format!("reading {}", dir.display()))?;
    // Nothing at all: not a metadata log dir (a typo, or a broker's log.dirs without the
    // metadata log). An empty dump would look like an empty cluster.
    if snapshot.is_none() && report.segments == 0 && log.vote().is_none() {
        return Err(anyhow!(
            "{} holds no metadata log (no {METADATA_TOPIC_DIR} directory, log segment, snapshot \
             or vote): give a node's metadata.log.dir (by default the first of log.dirs) or \
             the {METADATA_TOPIC_DIR} directory inside it",
            dir.display()
        ));
    }
    let mut out = String::new();
    writeln!(out, "dir: {}", dir.display())?;
    writeln!(out, "vote: {:?}", log.vote())?;
    writeln!(out, "committed: {:?}", log.committed())?;
    writeln!(out, "purged-through: {:?}", log.last_purged())?;
    writeln!(
        out,
        "segments: {} (torn tail bytes: {})",
        report.segments, report.torn_bytes_cut
    )?;
    let mut image = MetadataImage::default();
    // Entries up to here are already in the snapshot image (the log keeps a tail of them).
    let mut snapshot_index: Option<u64> = None;
    if let Some((meta, state)) = snapshot {
        image =
            MetadataImage::decode_snapshot(state).map_err(|e| anyhow!("snapshot image: {e}"))?;
        snapshot_index = meta.last_log_id.map(|id| id.index);
        writeln!(
            out,
            "snapshot: last {:?}, {} bytes, {} topics",
            meta.last_log_id,
            state.len(),
            image.topic_count()
        )?;
    }
    for entry in log.entries(..) {
        let id = entry.log_id;
        match &entry.payload {
            EntryPayload::Blank => {
                writeln!(out, "entry {} term {}: blank", id.index, id.leader_id.term)?
            }
            EntryPayload::Membership(m) => writeln!(
                out,
                "entry {} term {}: membership {m}",
                id.index, id.leader_id.term
            )?,
            EntryPayload::Normal(payload) if snapshot_index.is_some_and(|i| id.index <= i) => {
                writeln!(
                    out,
                    "entry {} term {}: {} bytes (in the snapshot)",
                    id.index,
                    id.leader_id.term,
                    payload.0.len()
                )?;
            }
            EntryPayload::Normal(payload) => {
                writeln!(
                    out,
                    "entry {} term {}: {} bytes",
                    id.index,
                    id.leader_id.term,
                    payload.0.len()
                )?;
                image = dump_records(&mut out, &image, &payload.0)?;
            }
        }
    }
    writeln!(out, "image:")?;
    render_image(&mut out, &image)?;
    Ok(out)
}

/// Prints one entry's records and returns the image after them (unchanged if they do not
/// apply, exactly as the state machine skips such an entry).
fn dump_records(
    out: &mut String,
    image: &MetadataImage,
    payload: &[u8],
) -> anyhow::Result<MetadataImage> {
    let records = match decode_records(payload) {
        Ok(records) => records,
        Err(e) => {
            writeln!(out, "  undecodable: {e}")?;
            return Ok(image.clone());
        }
    };
    for record in &records {
        writeln!(out, "  record {record:?}")?;
    }
    Ok(match image.apply(&records) {
        Ok((next, _)) => next,
        Err(e) => {
            writeln!(out, "  skipped: {e}")?;
            image.clone()
        }
    })
}

fn render_image(out: &mut String, image: &MetadataImage) -> anyhow::Result<()> {
    for broker in image.brokers() {
        writeln!(
            out,
            "broker {} epoch {} fenced {}",
            broker.broker_id, broker.epoch, broker.fenced
        )?;
    }
    for topic in image.topics() {
        writeln!(
            out,
            "topic {} {} partitions {}",
            topic.name,
            topic.topic_id,
            topic.partitions.len()
        )?;
    }
    writeln!(out, "next-producer-id {}", image.next_producer_id())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use strom_meta::{
        BrokerHeartbeatRequest, ControllerConfig, ControllerReply, ControllerRequest,
        CreatableTopic, CreateTopicsRequest, RegisterBrokerRequest,
    };
    use strom_raft::metadata::start_metadata_node;
    use strom_raft::NodeConfig;

    use super::*;

    /// Writes a metadata dir with a snapshot and a log that overlaps it, then dumps it.
    #[test]
    fn a_dir_without_a_metadata_log_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = render(dir.path()).unwrap_err().to_string();
        assert!(error.contains("holds no metadata log"), "{error}");
        assert!(error.contains(&dir.path().display().to_string()), "{error}");
    }

    #[test]
    fn dump_combines_snapshot_and_log_without_reapplying() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join(METADATA_TOPIC_DIR);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let image = runtime.block_on(async {
            // Snapshots every 20 entries, keeping 5 entries behind each in the log.
            let config = NodeConfig::test_min(1, "127.0.0.1:0".parse().unwrap(), data.clone());
            let node = start_metadata_node(config, ControllerConfig::default())
                .await
                .unwrap();
            let register = ControllerRequest::RegisterBroker(RegisterBrokerRequest {
                broker_id: 0,
                incarnation_id: uuid::Uuid::new_v4(),
                endpoints: Vec::new(),
                rack: None,
            });
            let Ok(ControllerReply::RegisterBroker { broker_epoch }) =
                node.submit(register).await.unwrap()
            else {
                panic!("register failed")
            };
            let heartbeat = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
                broker_id: 0,
                broker_epoch,
                want_fence: false,
                want_shutdown: false,
                offline_replicas: Vec::new(),
            });
            node.submit(heartbeat).await.unwrap().unwrap();
            for i in 0..45 {
                let create = ControllerRequest::CreateTopics(CreateTopicsRequest {
                    topics: vec![CreatableTopic {
                        num_partitions: 2,
                        ..CreatableTopic::named(format!("t{i}"))
                    }],
                    validate_only: false,
                });
                node.submit(create).await.unwrap().unwrap();
            }
            let image = node.state().state;
            node.shutdown().await;
            image
        });
        let text = render(dir.path()).unwrap();
        assert!(text.contains("snapshot: last Some"), "{text}");
        assert!(text.contains("(in the snapshot)"), "{text}");
        assert!(!text.contains("skipped"), "{text}");
        let topics: Vec<&str> = text.lines().filter(|l| l.starts_with("topic ")).collect();
        assert_eq!(topics.len(), 45);
        for topic in image.topics() {
            let line = format!("topic {} {} partitions 2", topic.name, topic.topic_id);
            assert!(topics.contains(&line.as_str()), "{line} missing");
        }
    }
}
