//! Opening a log: a clean open reads only the checkpoint, the file list and the active
//! segment's indexes; after an unclean shutdown the segments from the recovery point on
//! are scanned (`recover.rs`): a torn tail is cut and indexes rebuilt, damage stops the
//! open without changing a file.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use crate::checkpoint::{Checkpoint, Stored, CHECKPOINT_TEMP_FILE};
use crate::config::LogConfig;
use crate::error::LogError;
use crate::fs::{write_all_at, FileHandle, FileSystem};
use crate::handles::HandleCache;
use crate::leader_epoch::{LeaderEpochCache, LEADER_EPOCH_TEMP_FILE};
use crate::segment::{
    file_name, parse_file_name, read_header, scan_segment, Indexes, Segment, CLEANED_SUFFIX,
    DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX,
};

use super::compact::with_suffix;
use super::recover::recover;
use super::{FlushState, Log, Writer};

/// What opening a log found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The checkpoint recorded a clean shutdown and the active segment's tail was intact.
    pub clean: bool,
    /// Segments validated batch by batch (with their indexes rebuilt).
    pub segments_scanned: usize,
    /// Base offset of the first segment recovery scanned, if it scanned any: from there
    /// on the `.txnindex` files are cut to their entries below the recovered end.
    pub first_segment_scanned: Option<i64>,
    /// Base offset of the first scanned segment holding a control batch (a transaction
    /// marker): from there on the `.txnindex` files are rebuilt
    /// ([`Log::txn_index_rebuild_from`]).
    pub first_scanned_with_markers: Option<i64>,
    /// Base offset of the segment whose torn tail recovery cut, if any.
    pub truncated_segment: Option<i64>,
    /// Bytes removed from that segment's tail (0 if it ended at a batch boundary).
    pub truncated_bytes: u64,
    /// What the torn tail was.
    pub truncation_reason: Option<String>,
    /// Segments deleted: those after a torn tail, and those wholly below the checkpointed
    /// log start (a front deletion a crash interrupted).
    pub segments_deleted: usize,
    /// Why the checkpoint file was ignored, if it was damaged (logged as a warning).
    pub checkpoint_damage: Option<String>,
    pub log_end_offset: i64,
    /// Why the leader-epoch cache had to be rebuilt from the batch headers, if it had to.
    pub epochs_rebuilt: Option<String>,
}

fn io<'a>(operation: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LogError + 'a {
    move |e| LogError::io(operation, path, e)
}

impl Log {
    /// Opens (or creates) the log in `dir`. `handles` is shared by all logs of a broker and
    /// bounds their open inactive segment files; `now_ms` starts the flush and roll clocks.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        handles: Arc<HandleCache>,
        now_ms: i64,
    ) -> Result<Log, LogError> {
        config.validate()?;
        let fs = Arc::clone(handles.fs());
        if !fs.exists(dir).map_err(io("stat", dir))? {
            fs.create_dir_all(dir).map_err(io("create dir", dir))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                // A new partition directory must itself survive a crash, or all its
                // synced segments would go with it.
                fs.sync_dir(parent).map_err(io("fsync dir", parent))?;
            }
        }
        let bases = list_segments(fs.as_ref(), dir)?;
        let mut report = OpenReport::default();
        let stored = Checkpoint::read(fs.as_ref(), dir)?;
        if let Stored::Damaged(reason) = &stored {
            report.checkpoint_damage = Some(reason.clone());
        }
        let stored = stored.checkpoint();
        let (segments, mut checkpoint) = if bases.is_empty() {
            let start = stored.map_or(0, |c| c.log_start_offset.max(0));
            create_first_segment(fs.as_ref(), dir, start)?
        } else {
            load_segments(
                fs.as_ref(),
                dir,
                &config,
                &handles,
                &bases,
                stored,
                &mut report,
            )?
        };
        let mut segments = segments;
        let active = segments
            .last_key_value()
            .map(|(_, s)| Arc::clone(s))
            .ok_or_else(|| LogError::CorruptSegment {
                path: dir.to_path_buf(),
                position: 0,
                reason: "no segment after open".into(),
            })?;
        let next_offset = open_active(
            fs.as_ref(),
            &active,
            &config,
            &handles,
            &mut segments,
            stored.map(|c| c.recovery_point),
            &mut report,
        )?;
        report.log_end_offset = next_offset;
        let active = segments
            .last_key_value()
            .map(|(_, s)| Arc::clone(s))
            .unwrap_or(active);
        let with_ends: Vec<(Arc<Segment>, i64)> = {
            let list: Vec<Arc<Segment>> = segments.values().cloned().collect();
            let ends = list
                .iter()
                .skip(1)
                .map(|s| s.base_offset)
                .chain([next_offset]);
            list.iter().cloned().zip(ends).collect()
        };
        let txn_index_state = super::aborted::check_txn_indexes(
            fs.as_ref(),
            &with_ends,
            report.first_segment_scanned,
            report.first_scanned_with_markers,
        )?;
        let writer = open_writer(active, next_offset, now_ms);
        if !report.clean {
            // Recovery changed files: make them and the directory durable, then record the
            // new recovery point (all of the log is durable now), before anything is
            // appended.
            sync_recovered(fs.as_ref(), dir, &segments)?;
            let active_base = segments.keys().next_back().copied().unwrap_or(next_offset);
            let recordable = super::recover::recordable(next_offset, active_base, next_offset);
            // The scanned segments' `.txnindex` files are rebuilt by the caller after the
            // open: until then a crash must scan them again.
            let recordable = match txn_index_state.recovery_point_cap {
                Some(cap) => recordable.min(cap),
                None => recordable,
            };
            checkpoint = Checkpoint {
                recovery_point: recordable,
                clean_shutdown: false,
                ..checkpoint
            };
            checkpoint.write(fs.as_ref(), dir)?;
        }
        let mut log_start = checkpoint.log_start_offset;
        if log_start > next_offset {
            // Cannot happen while the log start is only raised over durable data; a
            // damaged segment could still cut the log below it.
            tracing::warn!(dir = %dir.display(), log_start, next_offset, "log end below log start");
            log_start = next_offset;
        }
        // Debug: a broker opens every partition at start-up; its own summary is the INFO line.
        tracing::debug!(dir = %dir.display(), clean = report.clean, log_end_offset = next_offset, "opened log");
        let log = Log {
            dir: dir.to_path_buf(),
            fs,
            handles,
            config,
            segments: RwLock::new(segments),
            writer: Mutex::new(writer),
            flush: Mutex::new(FlushState {
                in_progress: false,
                durable_offset: next_offset,
                checkpoint: Checkpoint {
                    clean_shutdown: report.clean,
                    ..checkpoint
                },
            }),
            flush_done: Condvar::new(),
            log_start_offset: AtomicI64::new(log_start),
            log_end_offset: AtomicI64::new(next_offset),
            high_watermark: AtomicI64::new(log_start),
            marked_unclean: AtomicBool::new(!report.clean),
            health: AtomicU8::new(super::Health::Writable.as_u8()),
            failure: Mutex::new(None),
            resume: Mutex::new(super::ResumeClock::default()),
            closed: AtomicBool::new(false),
            report,
            pending_deletes: Mutex::new(Vec::new()),
            cleaner: Mutex::new(()),
            epochs: Mutex::new(LeaderEpochCache::default()),
            txn_index_state: Mutex::new(txn_index_state),
            unwritten_txns: Mutex::new(Vec::new()),
        };
        // The checkpoint and the data are settled: the epoch cache is checked against them.
        let epoch_problem = log.load_epochs()?;
        let log = Log {
            report: OpenReport {
                epochs_rebuilt: epoch_problem,
                ..log.report.clone()
            },
            ..log
        };
        Ok(log)
    }
}

/// Base offsets of the `.log` files, after removing leftovers of interrupted deletions and
/// checkpoint writes.
fn list_segments(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<i64>, LogError> {
    complete_swaps(fs, dir)?;
    let names = fs.list_dir(dir).map_err(io("list", dir))?;
    let mut bases = Vec::new();
    for name in &names {
        let leftover = name.ends_with(DELETED_SUFFIX)
            || name.ends_with(CLEANED_SUFFIX)
            || name.ends_with(SWAP_SUFFIX)
            || name == CHECKPOINT_TEMP_FILE
            || name == LEADER_EPOCH_TEMP_FILE;
        if leftover {
            let path = dir.join(name);
            fs.remove(&path).map_err(io("remove", &path))?;
        } else if let Some(base) = parse_file_name(name, LOG_SUFFIX) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Finishes compaction swaps that reached their commit point (`B.log.swap` exists): the
/// segments the swap replaced (those whose base offsets lie inside its offsets, after B)
/// are removed and that removal made durable, then every `.swap` file of B replaces its
/// original. Other `.swap` and `.cleaned` files belong to passes that did not commit and
/// are removed by the caller.
fn complete_swaps(fs: &dyn FileSystem, dir: &Path) -> Result<(), LogError> {
    let names = fs.list_dir(dir).map_err(io("list", dir))?;
    let committed: Vec<i64> = names
        .iter()
        .filter_map(|n| n.strip_suffix(SWAP_SUFFIX))
        .filter_map(|n| parse_file_name(n, LOG_SUFFIX))
        .collect();
    if committed.is_empty() {
        return Ok(());
    }
    let bases: Vec<i64> = names
        .iter()
        .filter_map(|n| parse_file_name(n, LOG_SUFFIX))
        .collect();
    let mut replaced = Vec::new();
    for &base in &committed {
        let swap = with_suffix(&dir.join(file_name(base, LOG_SUFFIX)), SWAP_SUFFIX);
        let end = swap_end_offset(fs, &swap, base)?;
        replaced.extend(bases.iter().copied().filter(|b| base < *b && *b < end));
    }
    if !replaced.is_empty() {
        for base in &replaced {
            for suffix in [
                LOG_SUFFIX,
                INDEX_SUFFIX,
                TIME_INDEX_SUFFIX,
                TXN_INDEX_SUFFIX,
            ] {
                let path = dir.join(file_name(*base, suffix));
                if fs.exists(&path).map_err(io("stat", &path))? {
                    fs.remove(&path).map_err(io("remove", &path))?;
                }
            }
        }
        // Gone durably before the renames below remove the commit point.
        fs.sync_dir(dir).map_err(io("fsync dir", dir))?;
        tracing::info!(dir = %dir.display(), ?replaced, "removed segments merged by an interrupted compaction swap");
    }
    for base in committed {
        for suffix in [
            INDEX_SUFFIX,
            TIME_INDEX_SUFFIX,
            TXN_INDEX_SUFFIX,
            LOG_SUFFIX,
        ] {
            let path = dir.join(file_name(base, suffix));
            let swap = with_suffix(&path, SWAP_SUFFIX);
            if fs.exists(&swap).map_err(io("stat", &swap))? {
                fs.rename(&swap, &path).map_err(io("rename", &swap))?;
            }
        }
        tracing::info!(dir = %dir.display(), base, "completed an interrupted compaction swap");
    }
    // The completed renames are durable before anything else reads the segments.
    fs.sync_dir(dir).map_err(io("fsync dir", dir))
}

/// The offset after the last batch of a committed swap file (fsynced before it was
/// committed, so every header must read: anything else is corruption, reported).
fn swap_end_offset(fs: &dyn FileSystem, path: &Path, base: i64) -> Result<i64, LogError> {
    let file = fs.open(path).map_err(io("open", path))?;
    let len = fs.file_len(path).map_err(io("stat", path))?;
    let mut position = 0;
    let mut end = base;
    while let Some(header) = read_header(file.as_ref(), path, position, len)? {
        end = header.next_offset();
        position += header.size_bytes() as u64;
    }
    Ok(end)
}

fn create_first_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    base_offset: i64,
) -> Result<(BTreeMap<i64, Arc<Segment>>, Checkpoint), LogError> {
    let segment = Segment::new(dir, base_offset, 0);
    for path in [
        &segment.log_path,
        &segment.index_path,
        &segment.time_index_path,
        &segment.txn_index_path,
    ] {
        fs.create(path).map_err(io("create", path))?;
    }
    // The new files' directory entries must be durable before the checkpoint names them.
    fs.sync_dir(dir).map_err(io("fsync dir", dir))?;
    let checkpoint = Checkpoint {
        recovery_point: base_offset,
        log_start_offset: base_offset,
        clean_shutdown: false,
    };
    checkpoint.write(fs, dir)?;
    let mut map = BTreeMap::new();
    map.insert(base_offset, Arc::new(segment));
    Ok((map, checkpoint))
}

/// Builds the segment map; scans from the recovery point when the shutdown was unclean.
fn load_segments(
    fs: &dyn FileSystem,
    dir: &Path,
    config: &LogConfig,
    handles: &HandleCache,
    bases: &[i64],
    stored: Option<Checkpoint>,
    report: &mut OpenReport,
) -> Result<(BTreeMap<i64, Arc<Segment>>, Checkpoint), LogError> {
    let first_base = bases.first().copied().unwrap_or(0);
    let mut segments = BTreeMap::new();
    for &base in bases {
        let segment = Segment::new(dir, base, 0);
        let len = fs
            .file_len(&segment.log_path)
            .map_err(io("stat", &segment.log_path))?;
        segment.set_size_bytes(len);
        segments.insert(base, Arc::new(segment));
    }
    let log_start = stored
        .map_or(first_base, |c| c.log_start_offset)
        .max(first_base);
    report.segments_deleted += delete_below(fs, &mut segments, log_start, handles)?;
    let clean = stored.is_some_and(|c| c.clean_shutdown);
    report.clean = clean;
    let recovery_point = stored.map(|c| c.recovery_point);
    if !clean {
        recover(fs, config, handles, &mut segments, recovery_point, report)?;
    }
    // Replaced by the log end offset once an unclean open has made everything durable.
    let checkpoint = Checkpoint {
        recovery_point: recovery_point.unwrap_or(first_base),
        log_start_offset: log_start,
        clean_shutdown: clean,
    };
    Ok((segments, checkpoint))
}

/// Removes segments whose offsets all lie below `log_start` (a front truncation whose
/// file deletions did not complete before a crash).
fn delete_below(
    fs: &dyn FileSystem,
    segments: &mut BTreeMap<i64, Arc<Segment>>,
    log_start: i64,
    handles: &HandleCache,
) -> Result<usize, LogError> {
    let bases: Vec<i64> = segments.keys().copied().collect();
    let mut deleted = 0;
    for pair in bases.windows(2) {
        if let [base, next] = *pair {
            if next <= log_start {
                if let Some(segment) = segments.remove(&base) {
                    remove_segment_files(fs, &segment, handles)?;
                    deleted += 1;
                }
            }
        }
    }
    Ok(deleted)
}

pub(super) fn remove_segment_files(
    fs: &dyn FileSystem,
    segment: &Segment,
    handles: &HandleCache,
) -> Result<(), LogError> {
    for path in [
        &segment.log_path,
        &segment.index_path,
        &segment.time_index_path,
        &segment.txn_index_path,
    ] {
        handles.forget(path);
        if fs.exists(path).map_err(io("stat", path))? {
            fs.remove(path).map_err(io("remove", path))?;
        }
    }
    Ok(())
}

/// Replaces a segment's index files with trimmed copies of `indexes`.
pub(super) fn write_index_files(
    fs: &dyn FileSystem,
    segment: &Segment,
    indexes: &Indexes,
) -> Result<(), LogError> {
    for (path, bytes) in [
        (&segment.index_path, indexes.offset.encode()),
        (&segment.time_index_path, indexes.time.encode()),
    ] {
        let file = fs.create(path).map_err(io("create", path))?;
        write_all_at(file.as_ref(), 0, &bytes).map_err(io("write", path))?;
    }
    Ok(())
}

/// Loads the active segment's indexes and finds the log end offset by scanning from the
/// last offset-index entry (bounded by `index.interval.bytes` plus one batch). A damaged
/// tail in a supposedly clean log falls back to recovery from `recovery_point`.
fn open_active(
    fs: &dyn FileSystem,
    active: &Arc<Segment>,
    config: &LogConfig,
    handles: &HandleCache,
    segments: &mut BTreeMap<i64, Arc<Segment>>,
    recovery_point: Option<i64>,
    report: &mut OpenReport,
) -> Result<i64, LogError> {
    let (start, mut indexes) = active.with_indexes(handles, config, |ix| {
        (
            ix.offset.last().map_or(0, |e| u64::from(e.position)),
            ix.clone(),
        )
    })?;
    let file = fs
        .open(&active.log_path)
        .map_err(io("open", &active.log_path))?;
    let len = active.size_bytes();
    let scan = scan_segment(
        file.as_ref(),
        &active.log_path,
        active.base_offset,
        start,
        len,
        config,
    )?;
    if scan.valid_bytes < len {
        report.clean = false;
        tracing::warn!(segment = %active.log_path.display(), position = scan.valid_bytes, len,
            reason = ?scan.error, "the active segment's tail is not intact after a clean shutdown; recovering");
        recover(fs, config, handles, segments, recovery_point, report)?;
        // Recovery may have cut the active segment, or a torn tail before it with it.
        let last = segments
            .last_key_value()
            .map(|(_, s)| Arc::clone(s))
            .unwrap_or_else(|| Arc::clone(active));
        let file = fs
            .open(&last.log_path)
            .map_err(io("open", &last.log_path))?;
        let rescan = last.with_indexes(handles, config, |ix| ix.clone())?;
        return next_offset_from(file.as_ref(), &last, &rescan);
    }
    if let Some(first) = read_header(file.as_ref(), &active.log_path, 0, len)? {
        indexes.first_batch_timestamp_ms = Some(first.max_timestamp);
    }
    // The scan restarted its own index state; fold in the tail's max timestamp.
    if scan.indexes.max_timestamp_ms > indexes.max_timestamp_ms {
        indexes.max_timestamp_ms = scan.indexes.max_timestamp_ms;
        indexes.offset_of_max_timestamp = scan.indexes.offset_of_max_timestamp;
    }
    active.set_indexes(indexes);
    let next = scan.next_offset.unwrap_or(active.base_offset);
    if let Some(point) = recovery_point.filter(|point| next < *point) {
        // A clean shutdown fsynced everything below its recovery point.
        let before = (next > active.base_offset).then_some(next - 1);
        return Err(super::recover::ends_below(
            &active.log_path,
            len,
            before,
            point,
        ));
    }
    Ok(next)
}

/// The offset after the last batch of a just-recovered active segment.
fn next_offset_from(
    file: &dyn FileHandle,
    active: &Segment,
    indexes: &Indexes,
) -> Result<i64, LogError> {
    let len = active.size_bytes();
    let mut position = indexes.offset.last().map_or(0, |e| u64::from(e.position));
    let mut next = active.base_offset;
    while let Some(header) = read_header(file, &active.log_path, position, len)? {
        next = header.next_offset();
        position += header.size_bytes() as u64;
    }
    Ok(next)
}

fn open_writer(active: Arc<Segment>, next_offset: i64, now_ms: i64) -> Writer {
    Writer {
        active,
        files: None,
        indexes_preallocated: false,
        active_since_ms: now_ms,
        next_offset,
        records_since_flush: 0,
        last_flush_ms: now_ms,
        rolled: Vec::new(),
        dir_dirty: true,
        tail: None,
    }
}

/// Makes recovered segments (truncations, rebuilt indexes) and the directory durable.
fn sync_recovered(
    fs: &dyn FileSystem,
    dir: &Path,
    segments: &BTreeMap<i64, Arc<Segment>>,
) -> Result<(), LogError> {
    for segment in segments.values() {
        if segment.lock_indexes().is_none() {
            continue; // not scanned: untouched by recovery
        }
        for path in [
            &segment.log_path,
            &segment.index_path,
            &segment.time_index_path,
        ] {
            // fsync through any handle makes the file's data durable.
            let file = fs.open(path).map_err(io("open", path))?;
            // Truncations and rebuilt indexes must be durable before the checkpoint moves
            // the recovery point past them.
            file.sync().map_err(io("fsync", path))?;
        }
    }
    // Deleted later segments and the recreated index files' entries, durable with the data.
    fs.sync_dir(dir).map_err(io("fsync dir", dir))?;
    Ok(())
}
