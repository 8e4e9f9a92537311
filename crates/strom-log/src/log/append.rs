//! Appending: validate every batch, assign offsets by rewriting base offsets (and
//! LogAppendTime timestamps), roll when needed, write, update the indexes.

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use strom_records::{
    batch_frames, set_base_offset, set_log_append_time, set_partition_leader_epoch, validate,
    validate_client_batch, BatchHeader, RecordsError, TimestampType, ValidateLimits,
    BATCH_HEADER_BYTES,
};

use crate::config::{
    Durability, MessageTimestampType, OFFSET_INDEX_ENTRY_BYTES, TIME_INDEX_ENTRY_BYTES,
};
use crate::error::LogError;
use crate::fs::{write_all_at, write_all_vectored_at};
use crate::segment::{relative, Indexes, Segment, NO_TIMESTAMP};

use super::{ActiveFiles, Log, RolledFiles, TailRepair, Writer};

/// Who is appending; decides validation and offset assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer: Kafka's client rules (base offset 0, exact record counts, no control
    /// batches), timestamps checked, offsets assigned.
    Client,
    /// A coordinator or the broker itself (e.g. transaction markers): offsets assigned,
    /// control batches allowed.
    Coordinator,
    /// A follower copying the leader: offsets kept (must follow the log end offset),
    /// timestamps kept.
    Replication,
}

/// The outcome of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    /// The time written into the batches under LogAppendTime; -1 otherwise (Kafka's value).
    pub log_append_time_ms: i64,
    pub max_timestamp_ms: i64,
    pub batch_count: usize,
    pub log_start_offset: i64,
}

/// The bytes of a shared batch the log writes from its own copy: the batch header, in which
/// it stamps the base offset (0..8) and the partition leader epoch (12..16), both outside
/// the CRC.
const SHARED_PREFIX_BYTES: usize = BATCH_HEADER_BYTES;

/// What an append writes: bytes it may rewrite in place, one batch it must not touch, or
/// a leader's batches copied exactly as they are.
enum Payload<'a> {
    Owned(&'a mut [u8]),
    Shared {
        batch: &'a [u8],
        partition_leader_epoch: i32,
    },
    Verbatim(&'a [u8]),
}

impl Payload<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Payload::Owned(bytes) => bytes,
            Payload::Shared { batch, .. } => batch,
            Payload::Verbatim(bytes) => bytes,
        }
    }
}

/// The stored header of a validated shared batch appended at `base_offset`, and the copy of
/// its first bytes with the base offset and leader epoch stamped in.
fn shared_prefix(
    batch: &[u8],
    checked: &[Checked],
    base_offset: i64,
    partition_leader_epoch: i32,
) -> Result<(BatchHeader, [u8; SHARED_PREFIX_BYTES]), LogError> {
    let invalid = |source: RecordsError| LogError::InvalidBatch {
        batch_index: 0,
        source,
    };
    let first = checked.first().ok_or(LogError::EmptyAppend)?;
    let mut prefix = [0u8; SHARED_PREFIX_BYTES];
    let head = batch
        .get(..SHARED_PREFIX_BYTES)
        .ok_or(invalid(RecordsError::Truncated {
            needed_bytes: SHARED_PREFIX_BYTES,
            available_bytes: batch.len(),
        }))?;
    prefix.copy_from_slice(head);
    set_base_offset(&mut prefix, base_offset).map_err(invalid)?;
    set_partition_leader_epoch(&mut prefix, partition_leader_epoch).map_err(invalid)?;
    let mut header = first.header;
    header.base_offset = base_offset;
    header.partition_leader_epoch = partition_leader_epoch;
    Ok((header, prefix))
}

/// A batch of the request after validation: its header and where it lies.
struct Checked {
    header: BatchHeader,
    range: Range<usize>,
}

/// What a non-blocking [`Log::append_shared`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unflushed {
    /// Nothing: the append must first fsync (the first append since the log was opened
    /// marks it unclean on disk). Call [`Log::append`] where blocking is allowed.
    WouldBlock,
    /// Appended. With `flush_due` the caller owes [`Log::flush_after_append`] (a roll, or
    /// `flush.messages` / `flush.ms` reached) before it answers.
    Appended { info: AppendInfo, flush_due: bool },
}

impl Log {
    /// Validates and appends `batches` (one or more concatenated RecordBatch v2), rewriting
    /// their base offsets (and timestamps under LogAppendTime) in place. In page-cache mode
    /// this may fsync (after a roll or when `flush.messages` / `flush.ms` is due); in
    /// sync-on-commit mode call [`Log::sync_to`] before acknowledging.
    pub fn append(
        &self,
        batches_bytes: &mut [u8],
        origin: AppendOrigin,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        if origin == AppendOrigin::Replication {
            return self.append_replicated(batches_bytes, now_ms);
        }
        let payload = Payload::Owned(batches_bytes);
        let (info, flush_due) = self
            .append_payload(payload, origin, now_ms, true)?
            .ok_or(LogError::EmptyAppend)?;
        if flush_due {
            self.flush_at(now_ms)?;
        }
        Ok(info)
    }

    /// A follower's append: the leader's batches exactly as fetched, with their offsets,
    /// leader epochs and timestamps (nothing reassigned, nothing recompressed). The first
    /// batch must start at the log end offset and each next one where the previous ended
    /// (`UnexpectedAppendOffset` otherwise: the follower is out of step and must truncate
    /// or refetch). A batch of a newer leader epoch enters the epoch cache durably first.
    /// Page-cache flushes are run as for [`Log::append`]; under sync-on-commit the caller
    /// syncs before it reports the new end to the leader.
    pub fn append_replicated(&self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let payload = Payload::Verbatim(batches);
        let (info, flush_due) = self
            .append_payload(payload, AppendOrigin::Replication, now_ms, true)?
            .ok_or(LogError::EmptyAppend)?;
        if flush_due {
            self.flush_at(now_ms)?;
        }
        Ok(info)
    }

    /// Appends one producer batch that stays untouched where it lies (e.g. in a request
    /// buffer shared with other fields): no copy of its bytes is made. Without `may_block`
    /// (an async caller) it never fsyncs: writes go to the page cache under the writer
    /// mutex, which nobody holds across an fsync, and a fsync the append would owe is left
    /// to the caller ([`Unflushed`]; sync-on-commit's [`Log::sync_to`] covers a roll's
    /// files too).
    /// The log writes its own copy of the batch header (61 bytes) with the
    /// assigned base offset and `partition_leader_epoch` stamped in, then the rest of the
    /// batch, in one vectored write. Both fields lie outside the CRC. Under LogAppendTime
    /// (which rewrites fields the CRC covers) or with more than one batch the bytes are
    /// copied and appended as by [`Log::append`]. With `may_block` it fsyncs as `append`
    /// does and never answers [`Unflushed::WouldBlock`]; the flush it reports is then done.
    pub fn append_shared(
        &self,
        batch: &[u8],
        partition_leader_epoch: i32,
        now_ms: i64,
        may_block: bool,
    ) -> Result<Unflushed, LogError> {
        if !may_block
            && (!self.marked_unclean.load(Ordering::Acquire)
                || self.needs_epoch(partition_leader_epoch))
        {
            return Ok(Unflushed::WouldBlock);
        }
        let single = batch_frames(batch).take(2).count() == 1;
        let appended =
            if single && self.config.message_timestamp_type == MessageTimestampType::CreateTime {
                let payload = Payload::Shared {
                    batch,
                    partition_leader_epoch,
                };
                self.append_payload(payload, AppendOrigin::Client, now_ms, may_block)?
            } else {
                let mut owned = batch.to_vec();
                for (_, range) in batch_frames(batch).map_while(Result::ok) {
                    if let Some(frame) = owned.get_mut(range) {
                        // Too short to hold the field: validation refuses the batch.
                        let _ = set_partition_leader_epoch(frame, partition_leader_epoch);
                    }
                }
                let payload = Payload::Owned(&mut owned);
                self.append_payload(payload, AppendOrigin::Client, now_ms, may_block)?
            };
        let Some((info, flush_due)) = appended else {
            return Ok(Unflushed::WouldBlock);
        };
        if may_block && flush_due {
            self.flush_at(now_ms)?;
            return Ok(Unflushed::Appended {
                info,
                flush_due: false,
            });
        }
        Ok(Unflushed::Appended { info, flush_due })
    }

    /// The fsync a non-blocking [`Log::append_shared`] left due.
    pub fn flush_after_append(&self, now_ms: i64) -> Result<(), LogError> {
        self.flush_at(now_ms)
    }

    /// Validates and appends; `None` when, without `may_block`, the append would first
    /// have to fsync (a newer leader epoch enters the epoch cache): nothing was written.
    fn append_payload(
        &self,
        mut payload: Payload<'_>,
        origin: AppendOrigin,
        now_ms: i64,
        may_block: bool,
    ) -> Result<Option<(AppendInfo, bool)>, LogError> {
        self.check_writable()?;
        let checked = self.validate_batches(payload.bytes(), origin, now_ms)?;
        if may_block {
            self.ensure_marked_unclean()?;
        }
        let appended = {
            let mut writer = self.lock_writer();
            self.check_writable()?;
            self.append_locked(
                &mut writer,
                &mut payload,
                &checked,
                origin,
                now_ms,
                may_block,
            )?
        };
        let Some((info, rolled)) = appended else {
            return Ok(None);
        };
        // Fsyncs happen in the caller, after the writer mutex is released. After a roll the
        // rolled segment's indexes and the recovery point need one in either mode
        // (sync-on-commit does it now rather than on the next commit).
        let page_cache = self.config.durability == Durability::PageCache;
        Ok(Some((
            info,
            rolled || (page_cache && self.flush_due(now_ms)),
        )))
    }

    fn validate_batches(
        &self,
        bytes: &[u8],
        origin: AppendOrigin,
        now_ms: i64,
    ) -> Result<Vec<Checked>, LogError> {
        if bytes.is_empty() {
            return Err(LogError::EmptyAppend);
        }
        if bytes.len() as u64 > self.config.segment_bytes {
            return Err(LogError::AppendTooLarge {
                size_bytes: bytes.len() as u64,
                limit_bytes: self.config.segment_bytes,
            });
        }
        let limits = ValidateLimits {
            batch_bytes_max: match origin {
                AppendOrigin::Replication => {
                    usize::try_from(self.config.segment_bytes).unwrap_or(usize::MAX)
                }
                _ => usize::try_from(self.config.max_message_bytes).unwrap_or(usize::MAX),
            },
        };
        let mut checked = Vec::new();
        // Framing only: the full validation below computes each batch's CRC, once.
        for (batch_index, item) in batch_frames(bytes).enumerate() {
            let invalid = |source: RecordsError| LogError::InvalidBatch {
                batch_index,
                source,
            };
            let (_, range) = item.map_err(|e| invalid(e.error))?;
            let batch = bytes.get(range.clone()).unwrap_or_default();
            let header = match origin {
                AppendOrigin::Client => validate_client_batch(batch, &limits),
                AppendOrigin::Coordinator | AppendOrigin::Replication => validate(batch, &limits),
            }
            .map_err(invalid)?;
            if origin != AppendOrigin::Replication {
                self.check_timestamps(batch_index, &header, now_ms)?;
            }
            checked.push(Checked { header, range });
        }
        Ok(checked)
    }

    /// CreateTime must lie within `message.timestamp.before/after.max.ms` of now. Checked
    /// here on the batch's base and max timestamps; each record's own timestamp is checked
    /// by the record walk (`Log::check_client_records`), as Kafka checks each record.
    fn check_timestamps(
        &self,
        batch_index: usize,
        header: &BatchHeader,
        now_ms: i64,
    ) -> Result<(), LogError> {
        if self.config.message_timestamp_type != MessageTimestampType::CreateTime {
            return Ok(());
        }
        let earliest = now_ms.saturating_sub(self.config.message_timestamp_before_max_ms);
        let latest = now_ms.saturating_add(self.config.message_timestamp_after_max_ms);
        for timestamp_ms in [header.base_timestamp, header.max_timestamp] {
            if timestamp_ms != NO_TIMESTAMP && !(earliest..=latest).contains(&timestamp_ms) {
                return Err(LogError::InvalidTimestamp {
                    batch_index,
                    timestamp_ms,
                    now_ms,
                });
            }
        }
        Ok(())
    }

    fn append_locked(
        &self,
        writer: &mut Writer,
        payload: &mut Payload<'_>,
        checked: &[Checked],
        origin: AppendOrigin,
        now_ms: i64,
        may_block: bool,
    ) -> Result<Option<(AppendInfo, bool)>, LogError> {
        let (headers, prefix) = match payload {
            Payload::Owned(bytes) => (self.assign(writer, bytes, checked, origin, now_ms)?, None),
            Payload::Verbatim(_) => (self.check_replicated(writer, checked)?, None),
            Payload::Shared {
                batch,
                partition_leader_epoch,
            } => {
                let (header, prefix) =
                    shared_prefix(batch, checked, writer.next_offset, *partition_leader_epoch)?;
                (vec![header], Some(prefix))
            }
        };
        if origin != AppendOrigin::Replication {
            // A leader writes only in its current epoch; an older one means a stale leader
            // got through (the epoch history must never go back).
            let latest = self.latest_epoch();
            if let Some(stale) = headers
                .iter()
                .find(|h| h.partition_leader_epoch >= 0 && Some(h.partition_leader_epoch) < latest)
            {
                return Err(LogError::StaleLeaderEpoch {
                    epoch: stale.partition_leader_epoch,
                    latest: latest.unwrap_or(-1),
                });
            }
        }
        // A newer epoch is durable in the cache before any of its batches is written.
        if !self.assign_batch_epochs(writer, &headers, may_block)? {
            return Ok(None);
        }
        let bytes = payload.bytes();
        let first_offset = headers
            .first()
            .map_or(writer.next_offset, |h| h.base_offset);
        let last_offset = headers
            .last()
            .map_or(writer.next_offset, |h| h.last_offset());
        let max_timestamp_ms = headers
            .iter()
            .map(|h| h.max_timestamp)
            .max()
            .unwrap_or(NO_TIMESTAMP);
        let rolled = self.should_roll(
            writer,
            bytes.len() as u64,
            max_timestamp_ms,
            last_offset,
            now_ms,
        );
        if rolled {
            // A roll that fails part way changes no published state; at worst the old
            // segment's index files were trimmed or its final time entry not written,
            // which the resume rewrites from memory. Its in-memory final time entry is
            // the max timestamp of batches that exist, so it stays true.
            let tail = TailRepair {
                size_bytes: writer.active.size_bytes(),
                rebuild_indexes: false,
            };
            let result = self.roll_locked(writer, now_ms);
            self.latch_write(writer, tail, result)?;
        }
        let pieces: [&[u8]; 2] = match &prefix {
            Some(prefix) => [prefix, bytes.get(SHARED_PREFIX_BYTES..).unwrap_or_default()],
            None => [bytes, &[]],
        };
        let mut tail = TailRepair {
            size_bytes: writer.active.size_bytes(),
            rebuild_indexes: false,
        };
        let result = self.write_locked(
            writer,
            &pieces,
            bytes.len(),
            checked,
            &headers,
            &mut tail.rebuild_indexes,
        );
        self.latch_write(writer, tail, result)?;
        let records: u64 = headers
            .iter()
            .map(|h| u64::try_from(h.records_count).unwrap_or(0))
            .sum();
        writer.records_since_flush = writer.records_since_flush.saturating_add(records);
        let log_append_time_ms = match (origin, self.config.message_timestamp_type) {
            (AppendOrigin::Replication, _) | (_, MessageTimestampType::CreateTime) => NO_TIMESTAMP,
            (_, MessageTimestampType::LogAppendTime) => now_ms,
        };
        let info = AppendInfo {
            first_offset,
            last_offset,
            log_append_time_ms,
            max_timestamp_ms,
            batch_count: headers.len(),
            log_start_offset: self.log_start_offset(),
        };
        Ok(Some((info, rolled)))
    }

    /// A follower's batches keep their offsets: the first must start at the log end offset
    /// and each next one where the previous ended.
    fn check_replicated(
        &self,
        writer: &Writer,
        checked: &[Checked],
    ) -> Result<Vec<BatchHeader>, LogError> {
        let mut next = writer.next_offset;
        let mut headers = Vec::with_capacity(checked.len());
        for c in checked {
            if c.header.base_offset != next {
                return Err(LogError::UnexpectedAppendOffset {
                    base_offset: c.header.base_offset,
                    log_end_offset: next,
                });
            }
            next = c.header.next_offset();
            headers.push(c.header);
        }
        Ok(headers)
    }

    /// Rewrites base offsets (and LogAppendTime) in place; returns the final headers.
    fn assign(
        &self,
        writer: &Writer,
        bytes: &mut [u8],
        checked: &[Checked],
        origin: AppendOrigin,
        now_ms: i64,
    ) -> Result<Vec<BatchHeader>, LogError> {
        let mut next = writer.next_offset;
        let mut headers = Vec::with_capacity(checked.len());
        for (batch_index, c) in checked.iter().enumerate() {
            let invalid = |source: RecordsError| LogError::InvalidBatch {
                batch_index,
                source,
            };
            let mut header = c.header;
            let batch = bytes.get_mut(c.range.clone()).unwrap_or_default();
            if origin == AppendOrigin::Replication {
                if header.base_offset != next {
                    return Err(LogError::UnexpectedAppendOffset {
                        base_offset: header.base_offset,
                        log_end_offset: next,
                    });
                }
            } else {
                // The base offset lies outside the CRC-covered range: no CRC recompute.
                set_base_offset(batch, next).map_err(invalid)?;
                header.base_offset = next;
                if self.config.message_timestamp_type == MessageTimestampType::LogAppendTime {
                    set_log_append_time(batch, now_ms).map_err(invalid)?;
                    header.max_timestamp = now_ms;
                    header.attributes |= 0x08;
                    debug_assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
                }
            }
            next = header.next_offset();
            headers.push(header);
        }
        Ok(headers)
    }

    /// Kafka's roll rule: size, age (`segment.ms` from the first batch's timestamp, else
    /// from when the segment was opened), full indexes, or offsets too far from the base.
    fn should_roll(
        &self,
        writer: &Writer,
        size_bytes: u64,
        max_timestamp_ms: i64,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        let active = &writer.active;
        let current = active.size_bytes();
        if current == 0 {
            return false;
        }
        if current.saturating_add(size_bytes) > self.config.segment_bytes {
            return true;
        }
        if relative(active.base_offset, last_offset).is_none_or(|r| r > i32::MAX as u32) {
            return true;
        }
        let guard = active.lock_indexes();
        let Some(indexes) = guard.as_ref() else {
            return true;
        };
        if indexes.offset.is_full() || indexes.time.is_full() {
            return true;
        }
        let waited_ms = match indexes.first_batch_timestamp_ms {
            Some(first) if first >= 0 => max_timestamp_ms.saturating_sub(first),
            _ => now_ms.saturating_sub(writer.active_since_ms),
        };
        waited_ms > self.config.segment_ms
    }

    /// Closes the active segment (final time-index entry, indexes trimmed to their entries)
    /// and starts a new one at the log end offset. No fsync here: the rolled files are
    /// queued and synced by the flush that follows, outside the writer mutex.
    fn roll_locked(&self, writer: &mut Writer, now_ms: i64) -> Result<(), LogError> {
        let old = Arc::clone(&writer.active);
        self.finish_active_indexes(writer)?;
        let new_base = writer.next_offset;
        let segment = Arc::new(Segment::new(&self.dir, new_base, 0));
        let create = |path: &std::path::Path| {
            self.handles.forget(path);
            self.fs
                .create(path)
                .map_err(|e| LogError::io("create", path, e))
        };
        let old_files = self.active_files(writer)?;
        let files = ActiveFiles {
            log: create(&segment.log_path)?,
            index: create(&segment.index_path)?,
            time_index: create(&segment.time_index_path)?,
        };
        // Every segment has a `.txnindex`, empty until an ABORT marker lands in it: at
        // open a missing one means a directory from before Strom kept them.
        create(&segment.txn_index_path)?;
        segment.set_txn_index_len(0);
        let old_txn_index = &old.txn_index_path;
        let old_txn_index_file = if self
            .fs
            .exists(old_txn_index)
            .map_err(|e| LogError::io("stat", old_txn_index, e))?
        {
            Some(
                self.fs
                    .open(old_txn_index)
                    .map_err(|e| LogError::io("open", old_txn_index, e))?,
            )
        } else {
            None
        };
        segment.set_indexes(Indexes::new(&self.config));
        segment.pin(Some(Arc::clone(&files.log)));
        let mut rolled_files = vec![
            (old.log_path.clone(), old_files.log),
            (old.index_path.clone(), old_files.index),
            (old.time_index_path.clone(), old_files.time_index),
        ];
        // Its aborted-transaction entries are durable with it, before the recovery point
        // passes it.
        if let Some(file) = old_txn_index_file {
            rolled_files.push((old_txn_index.clone(), file));
        }
        writer.rolled.push(RolledFiles {
            base_offset: old.base_offset,
            files: rolled_files,
        });
        self.segments_write().insert(new_base, Arc::clone(&segment));
        old.pin(None);
        writer.active = segment;
        writer.files = Some(files);
        writer.indexes_preallocated = false;
        writer.active_since_ms = now_ms;
        writer.dir_dirty = true;
        tracing::debug!(dir = %self.dir.display(), base_offset = new_base, "rolled segment");
        Ok(())
    }

    /// Writes the final time-index entry and trims both index files to their entries, so
    /// that a clean open can read them as they are.
    pub(super) fn finish_active_indexes(&self, writer: &mut Writer) -> Result<(), LogError> {
        let active = Arc::clone(&writer.active);
        let files = self.active_files(writer)?;
        let mut guard = active.lock_indexes();
        let Some(indexes) = guard.as_mut() else {
            return Ok(());
        };
        if let Some(entry) = indexes.time_entry(active.base_offset, true) {
            let position = (indexes.time.len() as u64 - 1) * TIME_INDEX_ENTRY_BYTES;
            write_all_at(files.time_index.as_ref(), position, &entry.encode())
                .map_err(|e| LogError::io("write", &active.time_index_path, e))?;
        }
        let trims = [
            (
                &files.index,
                &active.index_path,
                indexes.offset.len() as u64 * OFFSET_INDEX_ENTRY_BYTES,
            ),
            (
                &files.time_index,
                &active.time_index_path,
                indexes.time.len() as u64 * TIME_INDEX_ENTRY_BYTES,
            ),
        ];
        for (file, path, len) in trims {
            file.set_len(len)
                .map_err(|e| LogError::io("trim", path, e))?;
        }
        writer.indexes_preallocated = false;
        Ok(())
    }

    /// Writes `pieces` (together `len` bytes: the batches as stored) at the end of the
    /// active segment, then their index entries, then publishes the log end offset.
    ///
    /// On an error the log end offset is not moved, so nothing of this write is
    /// acknowledged or readable; `indexes_touched` says whether the in-memory indexes
    /// already account for it (the resume then rebuilds them).
    fn write_locked(
        &self,
        writer: &mut Writer,
        pieces: &[&[u8]],
        len: usize,
        checked: &[Checked],
        headers: &[BatchHeader],
        indexes_touched: &mut bool,
    ) -> Result<(), LogError> {
        let active = Arc::clone(&writer.active);
        let files = self.active_files(writer)?;
        let position = active.size_bytes();
        write_all_vectored_at(files.log.as_ref(), position, pieces)
            .map_err(|e| LogError::io("write", &active.log_path, e))?;
        // Size before index entries: a reader that sees an entry (through the index mutex)
        // and then reads the size sees the batch the entry names, so it can tell a wrong
        // entry from one it raced with. Readers still see no offset past the log end
        // offset, published last.
        active.set_size_bytes(position + len as u64);
        self.preallocate_indexes(writer, &files)?;
        let mut guard = active.lock_indexes();
        let indexes = guard.get_or_insert_with(|| Indexes::new(&self.config));
        *indexes_touched = true;
        for (c, header) in checked.iter().zip(headers) {
            let batch_position = position + c.range.start as u64;
            let (offset_entry, time_entry) = indexes.on_batch(
                active.base_offset,
                header,
                batch_position,
                self.config.index_interval_bytes,
            );
            if let Some(entry) = offset_entry {
                let at = (indexes.offset.len() as u64 - 1) * OFFSET_INDEX_ENTRY_BYTES;
                write_all_at(files.index.as_ref(), at, &entry.encode())
                    .map_err(|e| LogError::io("write", &active.index_path, e))?;
            }
            if let Some(entry) = time_entry {
                let at = (indexes.time.len() as u64 - 1) * TIME_INDEX_ENTRY_BYTES;
                write_all_at(files.time_index.as_ref(), at, &entry.encode())
                    .map_err(|e| LogError::io("write", &active.time_index_path, e))?;
            }
        }
        drop(guard);
        let next = headers
            .last()
            .map_or(writer.next_offset, |h| h.next_offset());
        // Size before offset: a reader that sees the new log end offset sees the bytes.
        writer.next_offset = next;
        self.log_end_offset.store(next, Ordering::Release);
        Ok(())
    }

    /// Index files get their full `segment.index.bytes` on the first write (Kafka
    /// preallocates too); trimmed again on roll and close.
    fn preallocate_indexes(
        &self,
        writer: &mut Writer,
        files: &ActiveFiles,
    ) -> Result<(), LogError> {
        if writer.indexes_preallocated {
            return Ok(());
        }
        let bytes = self.config.segment_index_bytes;
        let active = &writer.active;
        for (file, path, entry_bytes) in [
            (&files.index, &active.index_path, OFFSET_INDEX_ENTRY_BYTES),
            (
                &files.time_index,
                &active.time_index_path,
                TIME_INDEX_ENTRY_BYTES,
            ),
        ] {
            let len = bytes - bytes % entry_bytes;
            file.set_len(len)
                .map_err(|e| LogError::io("preallocate", path, e))?;
        }
        writer.indexes_preallocated = true;
        Ok(())
    }

    pub(super) fn flush_due(&self, now_ms: i64) -> bool {
        let writer = self.lock_writer();
        writer.records_since_flush >= self.config.flush_messages
            || now_ms.saturating_sub(writer.last_flush_ms) >= self.config.flush_ms
    }
}
