//! Moving a replica between this broker's log directories (AlterReplicaLogDirs, KIP-113):
//! a future copy `<target>/<topic>-<partition>.<uuid>-future` is built while the partition
//! keeps serving, caught up with its log end, then swapped in.
//!
//! **Copy.** A task copies whole batches from the current log to the future log as a
//! follower would (`Log::append_replicated`: offsets, leader epochs and timestamps as they
//! are), a bounded chunk per round on the blocking pool. A current log truncated under it
//! (this broker follows, and its leader changed) is noticed through the leader-epoch cache
//! as a follower notices it (`end_offset_for_epoch`), and the future copy truncated to
//! match. Once the future copy is within `CATCH_UP_LAG_MAX` offsets of the log end, the
//! partition stops serving (the reconcile lock held, the partition taken out of service as
//! for a reopen: clients get NOT_LEADER_OR_FOLLOWER, which they retry), the rest is copied,
//! and the swap runs.
//!
//! **Swap, in this order** (`swap`), each step durable before the next:
//! 1. the current log's `.txnindex` entries are written into the future log's segments
//!    (`Log::rebuild_txn_index`, durable), and the current producer state into the future
//!    log as a snapshot at its log end offset (durable), so the moved replica reopens
//!    without a replay; the future log
//!    is closed: every segment, index and the epoch cache fsynced, and the
//!    clean-shutdown checkpoint written (it holds every offset the current log holds,
//!    whether or not the current log had fsynced them);
//! 2. the current directory is renamed `<topic>-<partition>.<uuid>-moved`, then its parent
//!    fsynced: from here the current copy is no longer current;
//! 3. the future directory is renamed `<topic>-<partition>` in the target directory, then
//!    the target fsynced;
//! 4. the `-moved` directory is removed.
//!
//! **Crash at any step** (`LogDirs::open` resolves what it finds before anything opens):
//! before 2, the current copy is whole and current; the future copy is a partial copy,
//! kept and resumed once the partitions are open (`resume_pending`; removed when it cannot
//! be). Between 2 and 3, there is no current copy, a `-moved` copy and a complete future
//! copy (2 happens only after 1): the future copy is renamed into place (3) and the `-moved`
//! one removed. Between 3 and 4, the `-moved` copy of a partition that has a current copy
//! is removed. A `-future` copy with no current and no `-moved` copy, or a `-moved` copy
//! with no current copy (its directory offline, say), is reported and left alone: it is
//! never taken for the current one, nor removed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_log::{Log, LogError};
use strom_meta::TopicIdPartition;
use strom_protocol::ErrorCode;

use crate::log_dirs::{FUTURE_SUFFIX, MOVED_SUFFIX};
use crate::metadata::MetadataPort;
use crate::partition::Partition;
use crate::replicas::{dir_name, ReplicaManager};

/// Bytes copied per round at most (one read of whole batches, at least one batch).
const COPY_ROUND_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// How far behind the current log end the future copy may be when the partition stops
/// serving for the swap (the rest is copied while it does not serve).
const CATCH_UP_LAG_MAX: i64 = 2_000;
/// Rounds a move may take before it stops serving for the swap however far behind
/// (a bound on the copy loop: a producer faster than the copy cannot keep it going).
const COPY_ROUNDS_MAX: u64 = 1_000_000;
/// The pause between rounds that found nothing to copy.
const IDLE_WAIT_MS: u64 = 50;
/// Rounds of the final copy at most (the log does not grow then; this bounds the loop).
pub(crate) const FINAL_ROUNDS_MAX: u64 = 1_000_000;
/// The pause before looking again while the copies are over
/// `replica.alter.log.dirs.io.max.bytes.per.second` (each pause counts as a round of
/// `COPY_ROUNDS_MAX`).
const THROTTLE_WAIT_MS: u64 = 100;

/// What `AlterReplicaLogDirs` asks of one partition here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveStart {
    /// Already in that directory, or already moving there: nothing to do.
    AlreadyThere,
    /// A move began.
    Started,
}

/// Starts moving `partition` to log directory `target` (its index in `log.dirs`); the
/// error code Kafka answers when it cannot. A move to another directory in progress is
/// abandoned (its future copy removed) first, as Kafka does.
pub fn start(
    replicas: &Arc<ReplicaManager>,
    metadata: &Arc<dyn MetadataPort>,
    tp: TopicIdPartition,
    topic: &str,
    target: usize,
) -> Result<MoveStart, ErrorCode> {
    let dirs = replicas.log_dirs();
    if !dirs.is_online(target) {
        return Err(ErrorCode::KAFKA_STORAGE_ERROR);
    }
    let name = dir_name(topic, tp.partition);
    if replicas.is_offline(tp) {
        return Err(ErrorCode::KAFKA_STORAGE_ERROR);
    }
    let Some(partition) = replicas.get(tp) else {
        // Not hosted (yet): created in that directory if it comes (Kafka's preferred log
        // dir), answered as Kafka answers it.
        dirs.set_placed(&name, target);
        return Err(ErrorCode::REPLICA_NOT_AVAILABLE);
    };
    if let Some((moving_to, _)) = replicas.move_target(tp) {
        if moving_to == target {
            return Ok(MoveStart::AlreadyThere);
        }
        replicas.cancel_move(tp);
    }
    if replicas.dir_index(&partition) == Some(target) {
        return Ok(MoveStart::AlreadyThere);
    }
    // Kafka creates no future copy while a directory is offline: a copy of the same
    // partition might exist there already.
    if dirs.online_count() < dirs.all().len() {
        return Err(ErrorCode::KAFKA_STORAGE_ERROR);
    }
    let future_path = dirs.all()[target].path.join(format!(
        "{name}.{}{FUTURE_SUFFIX}",
        uuid::Uuid::new_v4().simple()
    ));
    let image = metadata.image();
    crate::partition_dirs::claim_dir(&future_path, tp.topic_id, &image).map_err(|error| {
        tracing::error!(dir = %future_path.display(), %error, "cannot create a future replica");
        ErrorCode::KAFKA_STORAGE_ERROR
    })?;
    let future = match open_future(replicas, &partition, &future_path) {
        Ok(future) => Arc::new(future),
        Err(error) => {
            tracing::error!(dir = %future_path.display(), %error, "cannot open a future replica");
            remove_quietly(&future_path);
            return Err(ErrorCode::KAFKA_STORAGE_ERROR);
        }
    };
    replicas.begin_move(tp, target, Arc::clone(&future));
    tracing::info!(topic, partition = tp.partition, from = %partition.log.dir().display(),
        to = %future_path.display(), "moving replica to another log directory");
    let replicas = Arc::clone(replicas);
    let metadata = Arc::clone(metadata);
    tokio::spawn(async move {
        run(replicas, metadata, partition, future, target).await;
    });
    Ok(MoveStart::Started)
}

/// Resumes the moves a restart interrupted (Kafka resumes a future replica found at
/// start-up): each partial copy `LogDirs::open` kept (`take_pending_moves`) is reopened
/// (an unclean close: recovery cuts a torn tail, as after any crash; nothing in it was
/// ever acknowledged from it, the current copy stays the partition's) and the copy task
/// goes on from its end, `align` truncating it where it no longer matches the current log.
/// Called once, after start-up's first reconcile opened the partitions. A copy whose
/// partition is not hosted here (or is offline, or already in the target), whose target
/// is offline, or that does not open, is removed: the current copy is whole.
pub fn resume_pending(replicas: &Arc<ReplicaManager>, metadata: &Arc<dyn MetadataPort>) {
    let dirs = replicas.log_dirs();
    for (name, target, path) in dirs.take_pending_moves() {
        let partition = replicas
            .all()
            .into_iter()
            .find(|p| dir_name(&p.topic, p.tp.partition) == name)
            .filter(|p| {
                dirs.is_online(target)
                    && dirs.online_count() == dirs.all().len()
                    && replicas.dir_index(p) != Some(target)
                    && replicas.move_target(p.tp).is_none()
            });
        let Some(partition) = partition else {
            tracing::info!(future = %path.display(),
                "not resuming an interrupted replica move (its partition is not served here, \
                 or a directory is offline); removing its partial copy");
            remove_quietly(&path);
            continue;
        };
        let now = crate::metadata::now_ms();
        let future = match Log::open(
            &path,
            partition.log.config().clone(),
            Arc::clone(replicas.handles()),
            now,
        ) {
            Ok(future) => Arc::new(future),
            Err(error) => {
                tracing::error!(future = %path.display(), %error,
                    "cannot reopen the partial copy of an interrupted replica move; removing \
                     it (the current copy is whole): move the replica again");
                remove_quietly(&path);
                continue;
            }
        };
        replicas.begin_move(partition.tp, target, Arc::clone(&future));
        tracing::info!(topic = %partition.topic, partition = partition.tp.partition,
            from = %partition.log.dir().display(), to = %path.display(),
            copied_to = future.log_end_offset(), "resuming a replica move a restart interrupted");
        let replicas = Arc::clone(replicas);
        let metadata = Arc::clone(metadata);
        tokio::spawn(async move {
            run(replicas, metadata, partition, future, target).await;
        });
    }
}

/// The future log, empty, starting where the current log's first batch starts.
fn open_future(
    replicas: &ReplicaManager,
    partition: &Partition,
    path: &Path,
) -> Result<Log, LogError> {
    let now = crate::metadata::now_ms();
    let future = Log::open(
        path,
        partition.log.config().clone(),
        Arc::clone(replicas.handles()),
        now,
    )?;
    let start = first_batch_offset(&partition.log)?;
    if start > 0 {
        future.truncate_fully_and_start_at(start, now)?;
    }
    Ok(future)
}

/// The base offset of the batch holding the log start offset (below it when the log start
/// lies inside a batch, as DeleteRecords leaves it): where a copy starts.
fn first_batch_offset(log: &Log) -> Result<i64, LogError> {
    let start = log.log_start_offset();
    let info = log.read(start, 1, i64::MAX)?;
    Ok(info.range.map_or(start, |r| r.first_offset.min(start)))
}

/// The copy, then the swap; on any failure the future copy is removed and the partition
/// serves from its current directory as before.
async fn run(
    replicas: Arc<ReplicaManager>,
    metadata: Arc<dyn MetadataPort>,
    partition: Arc<Partition>,
    future: Arc<Log>,
    target: usize,
) {
    let mut rounds = 0u64;
    let quota = &replicas.fetchers.quotas.alter_log_dirs;
    let node_id = replicas.node_id();
    loop {
        if !replicas.is_moving(&partition, &future) {
            // Cancelled (another move, a deletion, a reopen): whoever cancelled removed it.
            return;
        }
        rounds += 1;
        // The throttle (read each round: a dynamic config applies to moves in progress):
        // every move of this broker counts against one rate; a round copies at most the
        // limit's worth, so one round cannot overshoot it by much.
        let limit = crate::throttle::alter_log_dirs_limit(&metadata.image(), node_id);
        if let Some(limit) = limit {
            if quota.exceeds(limit, Instant::now()) && rounds < COPY_ROUNDS_MAX {
                tokio::time::sleep(Duration::from_millis(THROTTLE_WAIT_MS)).await;
                continue;
            }
        }
        let max_bytes = limit.map_or(COPY_ROUND_BYTES_MAX, |l| l.clamp(1, COPY_ROUND_BYTES_MAX));
        let before = future.log_end_offset();
        let (current, copy) = (Arc::clone(&partition), Arc::clone(&future));
        let round =
            tokio::task::spawn_blocking(move || copy_round_bounded(&current.log, &copy, max_bytes))
                .await;
        let lag = match round {
            Ok(Ok((lag, copied))) => {
                quota.record(copied, Instant::now());
                lag
            }
            Ok(Err(error)) => {
                tracing::error!(topic = %partition.topic, partition = partition.tp.partition,
                    %error, "moving the replica failed; it stays in its directory");
                replicas.cancel_move(partition.tp);
                return;
            }
            Err(_) => return,
        };
        if lag <= CATCH_UP_LAG_MAX || rounds >= COPY_ROUNDS_MAX {
            break;
        }
        if future.log_end_offset() == before {
            // Nothing copied (the current log moved under the copy): not a busy loop.
            tokio::time::sleep(Duration::from_millis(IDLE_WAIT_MS)).await;
        }
    }
    let finishing = Arc::clone(&replicas);
    let result = tokio::task::spawn_blocking(move || {
        finishing.finish_move(&*metadata, &partition, &future, target)
    })
    .await;
    if let Ok(Err(error)) = result {
        tracing::error!(%error, "finishing a replica move failed");
    }
}

/// One round: brings the future copy back in line with the current log if that one was
/// truncated or its start moved past the copy, then copies at most
/// `COPY_ROUND_BYTES_MAX` of whole batches. Returns how many offsets the copy is behind.
pub fn copy_round(current: &Log, future: &Log) -> Result<i64, LogError> {
    copy_round_bounded(current, future, COPY_ROUND_BYTES_MAX).map(|(lag, _)| lag)
}

/// [`copy_round`] copying at most `max_bytes` of whole batches (at least one batch);
/// returns the lag and the bytes copied.
pub fn copy_round_bounded(
    current: &Log,
    future: &Log,
    max_bytes: u64,
) -> Result<(i64, u64), LogError> {
    let now = crate::metadata::now_ms();
    align(current, future, now)?;
    let from = future.log_end_offset();
    let info = match current.read(from, max_bytes, i64::MAX) {
        Ok(info) => info,
        Err(LogError::OffsetOutOfRange { .. }) => {
            // Retention or DeleteRecords moved the current start past the copy: start over
            // from there (what was copied below it is gone from the current log too).
            future.truncate_fully_and_start_at(first_batch_offset(current)?, now)?;
            return Ok((current.log_end_offset() - future.log_end_offset(), 0));
        }
        Err(error) => return Err(error),
    };
    let mut copied = 0;
    if let Some(range) = info.range {
        let bytes = range.read_bytes().map_err(|source| {
            // A read I/O error fails the current log (its directory goes offline).
            current.read_failed(LogError::Io {
                operation: "read for a replica move",
                path: range.path.clone(),
                source,
            })
        })?;
        future.append_replicated(&bytes, now)?;
        copied = bytes.len() as u64;
    }
    Ok((current.log_end_offset() - future.log_end_offset(), copied))
}

/// Truncates the future copy where it no longer matches the current log (which a follower
/// truncates when its leader changes): by the leader-epoch caches, as a follower checks
/// against its leader.
fn align(current: &Log, future: &Log, now: i64) -> Result<(), LogError> {
    let future_end = future.log_end_offset();
    if current.log_end_offset() < future_end {
        future.truncate_to(current.log_end_offset(), now)?;
    }
    let Some(epoch) = future.latest_epoch() else {
        return Ok(());
    };
    match current.end_offset_for_epoch(epoch) {
        Some(answer) if answer.epoch == epoch => {
            if answer.start_offset < future.log_end_offset() {
                future.truncate_to(answer.start_offset, now)?;
            }
        }
        // The current log no longer has the copy's latest epoch: start over.
        _ => future.truncate_fully_and_start_at(first_batch_offset(current)?, now)?,
    }
    Ok(())
}

/// How far a crash-test run of [`swap`] goes: every step, or stop after `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steps {
    All,
    StopAfter(usize),
}

/// Steps 2 to 4 of the swap (see the module comment), the future log closed: renames the
/// current directory `-moved`, the future directory into place, and removes the `-moved`
/// one, each rename made durable by an fsync of its parent before the next. Returns the new
/// current directory. `steps` stops early for crash tests.
pub fn swap(current: &Path, future: &Path, steps: Steps) -> io::Result<PathBuf> {
    let go_on = |done: usize| match steps {
        Steps::All => true,
        Steps::StopAfter(n) => done < n,
    };
    let name = current
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| io::Error::other(format!("{} has no name", current.display())))?;
    let target_parent = future
        .parent()
        .ok_or_else(|| io::Error::other(format!("{} has no parent", future.display())))?;
    let moved = current.with_file_name(format!(
        "{name}.{}{MOVED_SUFFIX}",
        uuid::Uuid::new_v4().simple()
    ));
    let target = target_parent.join(&name);
    std::fs::rename(current, &moved)?;
    if let Some(parent) = moved.parent() {
        // fsync: the current copy is no longer current, durably, before the future copy
        // takes its name.
        sync_dir(parent)?;
    }
    if !go_on(1) {
        return Ok(moved);
    }
    std::fs::rename(future, &target)?;
    // fsync: the future copy is current, durably, before the old copy is removed.
    sync_dir(target_parent)?;
    if !go_on(2) {
        return Ok(target);
    }
    std::fs::remove_dir_all(&moved)?;
    Ok(target)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Removes a future copy (a partial copy of a partition whose current copy is whole).
pub(crate) fn remove_quietly(path: &Path) {
    if let Err(error) = std::fs::remove_dir_all(path) {
        tracing::warn!(dir = %path.display(), %error, "cannot remove a future replica");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::log_dirs::LogDirs;

    /// A partition directory with a "segment" whose bytes say which copy it is.
    fn write_copy(dir: &Path, what: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("00000000000000000000.log"), what).unwrap();
    }

    fn tree(root: &Path) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for dir in std::fs::read_dir(root).unwrap() {
            let dir = dir.unwrap().path();
            if !dir.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap().path();
                if entry.is_dir() {
                    let segment = entry.join("00000000000000000000.log");
                    let text = std::fs::read_to_string(segment).unwrap_or_default();
                    let key = format!(
                        "{}/{}",
                        dir.file_name().unwrap().to_string_lossy(),
                        entry.file_name().unwrap().to_string_lossy()
                    );
                    out.insert(key, text);
                }
            }
        }
        out
    }

    /// Power lost after each step of the swap (and before the first): start-up finds
    /// exactly one current copy, the old one whole before step 2 (the partial future kept
    /// to resume the move) and the new one from then on, and nothing else left but what it
    /// cannot decide about.
    #[test]
    fn a_crash_at_every_step_of_the_swap_leaves_one_whole_copy() {
        for stop in 0..=3 {
            let root = tempfile::tempdir().unwrap();
            let paths = vec![root.path().join("a"), root.path().join("b")];
            let current = paths[0].join("t-0");
            write_copy(&current, "old");
            // The directories were in use before (their ids written).
            drop(LogDirs::open(&paths, "", 1).unwrap_or_else(|e| panic!("{e}")));
            let future = paths[1].join("t-0.0123456789abcdef0123456789abcdef-future");
            write_copy(&future, "new");
            if stop > 0 {
                swap(&current, &future, Steps::StopAfter(stop)).unwrap();
            }
            let dirs = LogDirs::open(&paths, "", 1).unwrap();
            let names = tree(root.path());
            let expected: BTreeMap<String, String> = if stop == 0 {
                // Not swapped: the old copy stays current; the partial future is kept for
                // the move to resume (`resume_pending`).
                assert_eq!(
                    dirs.take_pending_moves(),
                    vec![("t-0".to_string(), 1, future.clone())],
                    "crash after step {stop}"
                );
                [
                    ("a/t-0".to_string(), "old".to_string()),
                    (
                        "b/t-0.0123456789abcdef0123456789abcdef-future".to_string(),
                        "new".to_string(),
                    ),
                ]
                .into()
            } else {
                [("b/t-0".to_string(), "new".to_string())].into()
            };
            assert_eq!(names, expected, "crash after step {stop}");
            let index = if stop == 0 { 0 } else { 1 };
            assert_eq!(dirs.dir_of("t-0"), Some(index), "crash after step {stop}");
        }
    }

    /// One single-record batch per offset in `offsets`, of leader epoch `epoch`.
    fn append(log: &Log, offsets: std::ops::Range<i64>, epoch: i32, tag: &str) {
        for offset in offsets {
            let mut builder =
                strom_records::BatchBuilder::new(offset, 1_000).partition_leader_epoch(epoch);
            builder
                .append(
                    1_000,
                    None,
                    Some(bytes::Bytes::from(format!("{tag}-{offset}").repeat(20))),
                    Vec::new(),
                )
                .unwrap();
            log.append_replicated(&builder.build().unwrap(), 1_000)
                .unwrap();
        }
    }

    /// Every batch of the log, as bytes.
    fn contents(log: &Log) -> Vec<u8> {
        let mut out = Vec::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let range = log.read(offset, 1 << 20, i64::MAX).unwrap().range.unwrap();
            out.extend(range.read_bytes().unwrap());
            offset = range.next_offset;
        }
        out
    }

    fn copy_until_caught_up(current: &Log, future: &Log) {
        for _ in 0..1_000 {
            if copy_round(current, future).unwrap() == 0 {
                return;
            }
        }
        panic!("not caught up after 1000 rounds");
    }

    #[test]
    fn the_copy_follows_the_current_log_through_truncation_and_retention() {
        let root = tempfile::tempdir().unwrap();
        let handles = Arc::new(strom_log::HandleCache::new(
            Arc::new(strom_log::fs::RealFs),
            64,
        ));
        let open = |path: PathBuf| {
            // Small segments: the copy crosses rolls.
            Log::open(
                &path,
                strom_log::LogConfig::test_min(),
                Arc::clone(&handles),
                1_000,
            )
            .unwrap()
        };
        let current = open(root.path().join("a").join("t-0"));
        let future = open(
            root.path()
                .join("b")
                .join("t-0.00000000000000000000000000000001-future"),
        );
        append(&current, 0..30, 0, "first");
        append(&current, 30..60, 1, "first");
        copy_until_caught_up(&current, &future);
        assert_eq!(future.log_end_offset(), 60);
        assert_eq!(contents(&future), contents(&current));
        assert_eq!(future.epoch_entries(), current.epoch_entries());

        // The current log is truncated (this broker follows, its leader changed) and
        // written again past where the copy was, with other records: the copy drops what
        // diverged rather than keeping it.
        current.truncate_to(45, 1_000).unwrap();
        append(&current, 45..80, 2, "second");
        copy_until_caught_up(&current, &future);
        assert_eq!(future.log_end_offset(), 80);
        assert_eq!(contents(&future), contents(&current));
        assert_eq!(future.epoch_entries(), current.epoch_entries());

        // Retention moves the current start past the copy: the copy starts over there.
        let behind = open(
            root.path()
                .join("b")
                .join("t-0.00000000000000000000000000000002-future"),
        );
        current.set_high_watermark(80);
        current.delete_records_before(70, 1_000).unwrap();
        copy_until_caught_up(&current, &behind);
        assert_eq!(behind.log_end_offset(), 80);
        assert!(behind.log_start_offset() <= 70);
        assert_eq!(contents(&behind)[..], contents(&current)[..]);
    }

    #[test]
    fn copies_whose_current_cannot_be_seen_are_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let paths = vec![root.path().join("a"), root.path().join("b")];
        // A future copy with no current and no -moved copy, and a -moved copy with no
        // current one (its new directory is not among log.dirs now, say).
        write_copy(
            &paths[1].join("x-0.00000000000000000000000000000001-future"),
            "f",
        );
        write_copy(
            &paths[0].join("y-0.00000000000000000000000000000002-moved"),
            "m",
        );
        let dirs = LogDirs::open(&paths, "", 1).unwrap();
        assert_eq!(dirs.dir_of("x-0"), None);
        assert_eq!(dirs.dir_of("y-0"), None);
        let names = tree(root.path());
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
