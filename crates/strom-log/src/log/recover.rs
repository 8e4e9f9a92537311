//! Recovery after an unclean shutdown, and telling a torn tail from damage.
//!
//! What the fsync rules (docs/ARCHITECTURE.md, strom-log "Durability") let a crash leave:
//! - Every offset below the checkpoint's **recovery point** was fsynced before the
//!   checkpoint named it, and so was every segment below the one holding it, with its
//!   indexes (a roll's flush syncs the old segment, then the directory, then moves the
//!   recovery point past it). Recovery scans from the segment holding the recovery point.
//! - From that segment on lies the **unsynced zone**: the active segment, plus any segment
//!   a roll closed whose flush had not yet moved the recovery point past it (the new
//!   segment is created before the old one is fsynced, so the old one's tail can be torn
//!   while the new one exists). Nothing in a segment of the zone that follows a torn one
//!   was acknowledged in sync-on-commit mode: acknowledging it takes the flush that syncs
//!   the torn segment and then moves the recovery point past it.
//! - Compaction cleans only segments wholly below the recovery point, so offset gaps between
//!   segments (compaction's) exist only outside the zone; inside it, a segment that ends
//!   before the next one starts lost its unsynced tail at a batch boundary.
//!
//! A **torn tail** is therefore: bad bytes (or a segment ending early) in the unsynced
//! zone, at offsets at or above the recovery point, with no intact batch after them in
//! the same file at any later byte position (searched byte by byte, since a damaged length
//! field hides where the next batch starts). It is cut, with every later segment, as an
//! interrupted write. Anything else is **damage**: bad bytes below the recovery point or
//! outside the zone, bad bytes with an intact batch after them, an intact batch (valid
//! checksum) in the wrong place, a segment overlapping the next, a log ending below its
//! recovery point. Damage stops the open with [`LogError::Damaged`] naming the file, the
//! byte and the offsets around it, and nothing is changed: the scan finishes before any
//! file is touched.
//!
//! What this cannot tell apart (docs/ARCHITECTURE.md): damage confined to the last batches
//! above the recovery point with nothing intact after it looks exactly like an interrupted
//! write and is cut; and a file system or drive that wrote later unsynced pages before
//! earlier ones, leaving a hole before intact batches, looks like damage. The recovery
//! point is moved forward periodically ([`Log::checkpoint_recovery_point`]) to keep the
//! first window short.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use strom_records::{BatchHeader, BATCH_HEADER_BYTES, MAGIC_V2};

use crate::checkpoint::CHECKPOINT_FILE;
use crate::config::LogConfig;
use crate::error::LogError;
use crate::fs::{read_exact_at, FileHandle, FileSystem};
use crate::handles::HandleCache;
use crate::segment::{relative, scan_segment, ScanResult, Segment};

use super::open::{remove_segment_files, write_index_files, OpenReport};
use super::{lock, Log};

/// Bytes read at a time by the search for intact batches after damage.
const SEARCH_WINDOW_BYTES: usize = 1 << 20;
/// The search checksums at most this many bytes per byte searched (plus
/// [`SEARCH_HASH_BYTES_EXTRA`]) before giving up, which counts as damage: a file of
/// plausible-looking headers cannot make it quadratic.
const SEARCH_HASH_BYTES_PER_BYTE: u64 = 8;
const SEARCH_HASH_BYTES_EXTRA: u64 = 64 << 20;
/// `batch_length` counts the bytes after itself.
const LOG_OVERHEAD_BYTES: usize = 12;
/// Where the CRC-covered part of a batch starts.
const CRC_START_BYTES: u64 = 21;
/// Where the magic byte lies in a batch.
const MAGIC_AT: usize = 16;

/// What the search for an intact batch after damage found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Later {
    /// An intact batch starts at this byte.
    Found(u64, BatchHeader),
    /// No intact batch up to the end of the file.
    None,
    /// The search stopped after checksumming this many bytes.
    GaveUp(u64),
}

/// What recovery decided for the scanned segments.
struct Plan {
    /// Scanned segments with what their scan found, oldest first (up to the torn one).
    scanned: Vec<(Arc<Segment>, ScanResult)>,
    /// The torn tail: its segment, where it is cut (`None`: at its end) and why.
    torn: Option<(Arc<Segment>, Option<u64>, String)>,
    /// Segments after the torn tail, all in the unsynced zone: deleted with it.
    later: Vec<Arc<Segment>>,
}

/// Scans the segments from the one holding `recovery_point` (from the first if the
/// checkpoint was missing or damaged), cuts a torn tail and the segments after it, and
/// rebuilds the scanned segments' indexes. Damage returns [`LogError::Damaged`] before any
/// file is changed.
pub(super) fn recover(
    fs: &dyn FileSystem,
    config: &LogConfig,
    handles: &HandleCache,
    segments: &mut BTreeMap<i64, Arc<Segment>>,
    recovery_point: Option<i64>,
    report: &mut OpenReport,
) -> Result<(), LogError> {
    let plan = plan(fs, config, segments, recovery_point)?;
    report.segments_scanned += plan.scanned.len();
    if let Some((first, _)) = plan.scanned.first() {
        let from = report
            .first_segment_scanned
            .map_or(first.base_offset, |f| f.min(first.base_offset));
        report.first_segment_scanned = Some(from);
    }
    // A scanned segment without a marker can have no `.txnindex` entry (those past its
    // recovered end are cut); from the first one with a marker the index may lack unsynced
    // entries and is rebuilt.
    if let Some((first, _)) = plan
        .scanned
        .iter()
        .find(|(_, scan)| scan.first_control_offset.is_some())
    {
        let from = report
            .first_scanned_with_markers
            .map_or(first.base_offset, |f| f.min(first.base_offset));
        report.first_scanned_with_markers = Some(from);
    }
    if let Some((segment, cut, reason)) = &plan.torn {
        let len = segment.size_bytes();
        let at = cut.unwrap_or(len);
        tracing::warn!(segment = %segment.log_path.display(), position = at, bytes_cut = len - at,
            later_segments = plan.later.len(), %reason,
            "cutting a torn tail: an interrupted write, above everything known to be fsynced");
        if at < len {
            let file = fs
                .open(&segment.log_path)
                .map_err(|e| LogError::io("open", &segment.log_path, e))?;
            file.set_len(at)
                .map_err(|e| LogError::io("truncate", &segment.log_path, e))?;
            segment.set_size_bytes(at);
        }
        report.truncated_segment = Some(segment.base_offset);
        report.truncated_bytes = len - at;
        report.truncation_reason = Some(reason.clone());
    }
    // Highest first: a crash part-way leaves a prefix of the segments, whose tail the next
    // open finds torn again.
    for segment in plan.later.iter().rev() {
        segments.remove(&segment.base_offset);
        remove_segment_files(fs, segment, handles)?;
        report.segments_deleted += 1;
    }
    for (segment, scan) in plan.scanned {
        write_index_files(fs, &segment, &scan.indexes)?;
        segment.set_indexes(scan.indexes);
    }
    Ok(())
}

/// Scans and classifies, changing nothing.
fn plan(
    fs: &dyn FileSystem,
    config: &LogConfig,
    segments: &BTreeMap<i64, Arc<Segment>>,
    recovery_point: Option<i64>,
) -> Result<Plan, LogError> {
    let first = segments.keys().next().copied().unwrap_or(0);
    let last = segments.keys().next_back().copied().unwrap_or(0);
    let start = recovery_point
        .and_then(|point| segments.range(..=point).next_back().map(|(b, _)| *b))
        .unwrap_or(first);
    // Without an intact checkpoint nothing says how far the rolls' flushes got: only the
    // last segment is taken to be unsynced.
    let zone_start = if recovery_point.is_some() {
        start
    } else {
        last
    };
    let to_scan: Vec<Arc<Segment>> = segments
        .range(start..)
        .map(|(_, s)| Arc::clone(s))
        .collect();
    let mut plan = Plan {
        scanned: Vec::new(),
        torn: None,
        later: Vec::new(),
    };
    for (i, segment) in to_scan.iter().enumerate() {
        let next_base = to_scan.get(i + 1).map(|s| s.base_offset);
        let check = Check {
            segment,
            next_base,
            unsynced: segment.base_offset >= zone_start,
            holds_recovery_point: recovery_point.filter(|point| {
                segment.base_offset <= *point && next_base.is_none_or(|next| *point < next)
            }),
            recovery_point,
        };
        let file = fs
            .open(&segment.log_path)
            .map_err(|e| LogError::io("open", &segment.log_path, e))?;
        let len = segment.size_bytes();
        let scan = scan_segment(
            file.as_ref(),
            &segment.log_path,
            segment.base_offset,
            0,
            len,
            config,
        )?;
        let torn = check.classify(file.as_ref(), &scan, len)?;
        plan.scanned.push((Arc::clone(segment), scan));
        if let Some((cut, reason)) = torn {
            plan.torn = Some((Arc::clone(segment), cut, reason));
            plan.later = to_scan.get(i + 1..).unwrap_or_default().to_vec();
            break;
        }
    }
    Ok(plan)
}

/// What classifying one scanned segment needs to know of its place in the log.
struct Check<'a> {
    segment: &'a Segment,
    next_base: Option<i64>,
    /// In the unsynced zone (see the module docs).
    unsynced: bool,
    /// The recovery point, if it lies in this segment.
    holds_recovery_point: Option<i64>,
    recovery_point: Option<i64>,
}

impl Check<'_> {
    /// `Ok(None)`: intact. `Ok(Some((cut, reason)))`: a torn tail, cut at `cut` (`None`:
    /// the segment is whole but ends early) with the later segments. `Err`: damage.
    fn classify(
        &self,
        file: &dyn FileHandle,
        scan: &ScanResult,
        len: u64,
    ) -> Result<Option<(Option<u64>, String)>, LogError> {
        let base = self.segment.base_offset;
        let end_offset = scan.next_offset.unwrap_or(base);
        let offset_before = scan.next_offset.map(|next| next - 1);
        let damage = |position: u64, offset_after: Option<i64>, reason: String| LogError::Damaged {
            path: self.segment.log_path.clone(),
            position,
            offset_before,
            offset_after,
            reason,
        };
        let below_recovery_point = self.recovery_point.filter(|point| end_offset < *point);
        if scan.valid_bytes < len {
            let position = scan.valid_bytes;
            let what = scan.error.clone().unwrap_or_else(|| "invalid batch".into());
            // Searched whatever the verdict, so that damage names what follows it.
            let later = later_batch(
                file,
                &self.segment.log_path,
                base,
                position + 1,
                len,
                end_offset,
            )?;
            let offset_after = match &later {
                Later::Found(_, header) => Some(header.base_offset),
                Later::None | Later::GaveUp(_) => None,
            };
            let damaged = |reason: String| Err(damage(position, offset_after, reason));
            if scan.misplaced {
                return damaged(format!(
                    "{what}; a whole batch with a valid checksum in the wrong place is never \
                     an interrupted write"
                ));
            }
            if !self.unsynced {
                return damaged(format!(
                    "{what}, in a segment that later segments follow; without an intact \
                     {CHECKPOINT_FILE} to say how far fsyncs got, only the last segment is \
                     taken to hold an interrupted write"
                ));
            }
            if let Some(point) = below_recovery_point {
                return damaged(format!(
                    "{what}, and every offset below {point} was fsynced (the recovery point \
                     in {CHECKPOINT_FILE}), so this is not an interrupted write"
                ));
            }
            return match later {
                Later::Found(at, header) => damaged(format!(
                    "{what}, and an intact batch of offsets {}..={} follows at byte {at}, so \
                     this is not an interrupted write",
                    header.base_offset,
                    header.last_offset()
                )),
                Later::GaveUp(hashed) => damaged(format!(
                    "{what}; the search for intact batches after it gave up after \
                     checksumming {hashed} bytes, so it cannot be told from damage"
                )),
                Later::None => Ok(Some((Some(position), what))),
            };
        }
        if let Some(point) = self
            .holds_recovery_point
            .filter(|point| end_offset < *point)
        {
            return Err(ends_below(
                &self.segment.log_path,
                len,
                offset_before,
                point,
            ));
        }
        let Some(next_base) = self.next_base else {
            return Ok(None);
        };
        if end_offset > next_base {
            return Err(damage(
                len,
                None,
                format!(
                "the segment's batches run to offset {}, past offset {next_base} where the next \
                 segment starts",
                end_offset - 1
            ),
            ));
        }
        if end_offset < next_base && self.unsynced {
            return Ok(Some((
                None,
                format!(
                    "the segment ends at offset {end_offset}, the next starts at {next_base}: \
                     its unsynced tail was lost at a batch boundary"
                ),
            )));
        }
        Ok(None)
    }
}

/// Damage: the segment at `path` holding the recovery point `point` ends (at byte `len`,
/// after offset `offset_before`) below it.
pub(super) fn ends_below(
    path: &Path,
    len: u64,
    offset_before: Option<i64>,
    point: i64,
) -> LogError {
    let end = offset_before.map_or_else(|| "no intact batch".into(), |o| format!("offset {o}"));
    LogError::Damaged {
        path: path.to_path_buf(),
        position: len,
        offset_before,
        offset_after: None,
        reason: format!(
            "the segment's intact batches end with {end}, but every offset below {point} was \
             fsynced (the recovery point in {CHECKPOINT_FILE}): the file lost data it had"
        ),
    }
}

/// The first byte in `from..end` of `file` where a batch starts that could be a later batch
/// of this segment: magic 2, lengths that fit, counts that agree, offsets at or above
/// `offset_min` and inside the segment, and a CRC-32C that matches. Cheap field checks
/// come before the checksum.
pub(crate) fn later_batch(
    file: &dyn FileHandle,
    path: &Path,
    segment_base: i64,
    from: u64,
    end: u64,
    offset_min: i64,
) -> Result<Later, LogError> {
    let budget = end
        .saturating_sub(from)
        .saturating_mul(SEARCH_HASH_BYTES_PER_BYTE)
        .saturating_add(SEARCH_HASH_BYTES_EXTRA);
    let mut hashed = 0u64;
    let mut window: Vec<u8> = Vec::new();
    let mut window_start = from;
    let mut position = from;
    while position.saturating_add(BATCH_HEADER_BYTES as u64) <= end {
        let in_window = position >= window_start
            && position + BATCH_HEADER_BYTES as u64 <= window_start + window.len() as u64;
        if !in_window {
            let len = usize::try_from((end - position).min(SEARCH_WINDOW_BYTES as u64))
                .unwrap_or(SEARCH_WINDOW_BYTES);
            window.resize(len, 0);
            read_exact_at(file, position, &mut window)
                .map_err(|e| LogError::io("read", path, e))?;
            window_start = position;
        }
        let at = usize::try_from(position - window_start).unwrap_or(usize::MAX);
        let head = window.get(at..).unwrap_or_default();
        if let Some(header) = plausible(head, segment_base, offset_min, end - position) {
            let size = header.size_bytes() as u64;
            hashed = hashed.saturating_add(size);
            if hashed > budget {
                return Ok(Later::GaveUp(hashed));
            }
            if checksum_matches(file, path, position, &header, &window, window_start)? {
                return Ok(Later::Found(position, header));
            }
        }
        position += 1;
    }
    Ok(Later::None)
}

/// The header at the start of `head` if its fields could belong to a batch of this segment
/// at or above `offset_min` that fits in `remaining` bytes.
fn plausible(
    head: &[u8],
    segment_base: i64,
    offset_min: i64,
    remaining: u64,
) -> Option<BatchHeader> {
    if head.get(MAGIC_AT).copied() != Some(MAGIC_V2 as u8) {
        return None;
    }
    let header = BatchHeader::parse(head).ok()?;
    let length_min = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
    let fits = header.batch_length >= length_min && header.size_bytes() as u64 <= remaining;
    let counts = header.last_offset_delta >= 0
        && header.records_count >= 0
        && i64::from(header.records_count) <= i64::from(header.last_offset_delta) + 1;
    let offsets = header.base_offset >= offset_min
        && relative(segment_base, header.base_offset).is_some()
        && relative(segment_base, header.last_offset()).is_some();
    (fits && counts && offsets && header.compression().is_ok()).then_some(header)
}

/// Whether the CRC-32C of the batch at `position` matches its header, reading what the
/// window does not hold in bounded chunks.
fn checksum_matches(
    file: &dyn FileHandle,
    path: &Path,
    position: u64,
    header: &BatchHeader,
    window: &[u8],
    window_start: u64,
) -> Result<bool, LogError> {
    let mut at = position + CRC_START_BYTES;
    let end = position + header.size_bytes() as u64;
    let mut crc = 0u32;
    let mut chunk = Vec::new();
    while at < end {
        let in_window = at
            .checked_sub(window_start)
            .and_then(|from| usize::try_from(from).ok())
            .and_then(|from| window.get(from..))
            .filter(|rest| !rest.is_empty());
        let take = usize::try_from(end - at).unwrap_or(usize::MAX);
        let bytes = match in_window {
            Some(rest) => rest.get(..take.min(rest.len())).unwrap_or_default(),
            None => {
                chunk.resize(take.min(SEARCH_WINDOW_BYTES), 0);
                read_exact_at(file, at, &mut chunk).map_err(|e| LogError::io("read", path, e))?;
                &chunk[..]
            }
        };
        crc = crc32c::crc32c_append(crc, bytes);
        at += bytes.len() as u64;
    }
    Ok(crc == header.crc)
}

/// The recovery point to record while the log is open, for `durable` (every offset below
/// it fsynced, as is every segment below the active one, with its indexes, based at
/// `active_base`): `durable` itself if the log end is past it, else the last offset. A
/// roll starts its segment at the log end, and the segment it closes has unsynced
/// indexes until the roll's flush; the recovery point must never name that new segment's
/// base, or the closed one would count as synced below the segment holding it.
pub(super) fn recordable(durable: i64, active_base: i64, log_end_offset: i64) -> i64 {
    if durable < log_end_offset {
        durable
    } else {
        log_end_offset.saturating_sub(1).max(active_base)
    }
}

impl Log {
    /// Moves the checkpoint's recovery point up to the durable offset, if it lags: the
    /// higher it is, the less of the log a crash leaves where damage and an interrupted
    /// write look alike (see `recover.rs`). One checkpoint write (two fsyncs) when it
    /// moves; the broker calls it every `log.flush.offset.checkpoint.interval.ms`, as Kafka
    /// writes its recovery-point checkpoint. Returns whether it wrote (not while the disk is
    /// full).
    pub fn checkpoint_recovery_point(&self) -> Result<bool, LogError> {
        self.check_usable()?;
        let token = self.flush_token()?;
        let (durable, current) = {
            let state = lock(&self.flush);
            (state.durable_offset, state.checkpoint)
        };
        let active_base = self.lock_writer().active.base_offset;
        let point =
            self.capped_recovery_point(recordable(durable, active_base, self.log_end_offset()));
        if point <= current.recovery_point {
            return Ok(false);
        }
        let checkpoint = crate::checkpoint::Checkpoint {
            recovery_point: point,
            ..current
        };
        match self.write_checkpoint(&token, checkpoint) {
            Ok(()) => Ok(true),
            // No space for the new checkpoint: the old one is whole, the log went read-only
            // (`write_checkpoint`), and the recovery point lags until a call after space
            // returns. Not an error of the maintenance pass, which goes on (retention may
            // free space).
            Err(error) if error.is_space_error() => Ok(false),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{FileSystem, SimFs};
    use std::path::PathBuf;
    use strom_records::BatchBuilder;

    fn batch(base_offset: i64, records: usize, value_bytes: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(base_offset, 1_000);
        for i in 0..records {
            b.append(
                1_000 + i as i64,
                None,
                Some(vec![7u8; value_bytes].into()),
                Vec::new(),
            )
            .unwrap();
        }
        b.build().unwrap()
    }

    /// `bytes` as a file, searched from `from` for batches at or above `offset_min` of a
    /// segment based at 100.
    fn search(bytes: &[u8], from: u64, offset_min: i64) -> Later {
        let fs = SimFs::new();
        let path = PathBuf::from("/d/x.log");
        fs.create_dir_all(Path::new("/d")).unwrap();
        let file = fs.create(&path).unwrap();
        crate::fs::write_all_at(file.as_ref(), 0, bytes).unwrap();
        later_batch(
            file.as_ref(),
            &path,
            100,
            from,
            bytes.len() as u64,
            offset_min,
        )
        .unwrap()
    }

    #[test]
    fn finds_an_intact_batch_at_any_byte_after_damage() {
        let first = batch(100, 3, 40);
        let second = batch(103, 2, 40);
        for garbage in [0usize, 1, 7, 60, 61, 200] {
            let mut bytes = first.clone();
            bytes[30] ^= 0x20;
            bytes.extend(std::iter::repeat_n(0x5a, garbage));
            bytes.extend_from_slice(&second);
            let at = (first.len() + garbage) as u64;
            match search(&bytes, 1, 103) {
                Later::Found(position, header) => {
                    assert_eq!(position, at, "garbage {garbage}");
                    assert_eq!(header.base_offset, 103);
                }
                other => panic!("garbage {garbage}: {other:?}"),
            }
        }
    }

    #[test]
    fn ignores_batches_below_the_offsets_sought_or_outside_the_segment() {
        let mut bytes = vec![0u8; 10];
        bytes.extend_from_slice(&batch(100, 2, 10));
        assert_eq!(search(&bytes, 1, 102), Later::None);
        assert!(matches!(search(&bytes, 1, 100), Later::Found(10, _)));
        let mut far = vec![0u8; 10];
        far.extend_from_slice(&batch(100 + (1 << 33), 1, 10));
        assert_eq!(search(&far, 1, 0), Later::None);
    }

    #[test]
    fn a_torn_batch_has_nothing_intact_after_it() {
        let whole = batch(100, 5, 300);
        for cut in [1usize, 20, 61, 62, 400, whole.len() - 1] {
            let torn = &whole[..cut];
            assert_eq!(search(torn, 1, 100), Later::None, "cut {cut}");
        }
        // A checksum mismatch is not an intact batch.
        let mut bad = whole.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(search(&bad, 0, 100), Later::None);
    }

    #[test]
    fn large_batches_are_checksummed_in_chunks() {
        let big = batch(100, 3, SEARCH_WINDOW_BYTES);
        let mut bytes = vec![0u8; 5];
        bytes.extend_from_slice(&big);
        assert!(matches!(search(&bytes, 1, 100), Later::Found(5, _)));
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        assert_eq!(search(&bytes, 1, 100), Later::None);
    }
}
