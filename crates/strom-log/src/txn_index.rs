//! The per-segment transaction index (`NNNNNNNNNNNNNNNNNNNN.txnindex`, Kafka's
//! `TransactionIndex`): one 34-byte entry per aborted transaction whose ABORT marker lies
//! in the segment, in marker order. Layout in `docs/FORMATS.md`, "Transaction index".
//!
//! This module is the format and its search, pure (no I/O): encoding and decoding entries
//! ([`decode_entries`] leaves out a torn last entry, what an interrupted append leaves),
//! checking entries against the segment they belong to ([`Checker`]: anything that does not
//! fit is [`TxnIndexError`], naming the file), and Kafka's `collectAbortedTxns` over the
//! segments a `read_committed` fetch covers ([`AbortedCollector`]).
//!
//! The files themselves (written, read, checked at open, cut, rebuilt) are the log's:
//! `log/aborted.rs`.

use std::path::{Path, PathBuf};

use crate::txn::AbortedTxn;

/// The file suffix, as Kafka's.
pub const TXN_INDEX_SUFFIX: &str = ".txnindex";
/// Bytes of one entry: version (i16), producer id, first offset, last offset, last stable
/// offset (i64 each), big-endian.
pub const TXN_INDEX_ENTRY_BYTES: usize = 34;
/// The only entry version (Kafka's `AbortedTxn.CURRENT_VERSION`).
pub const TXN_INDEX_VERSION: i16 = 0;

/// Why a `.txnindex` file does not fit its segment: damage (an interrupted append only ever
/// leaves a torn last entry, which the log cuts instead).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum TxnIndexError {
    /// An entry's version is not [`TXN_INDEX_VERSION`].
    #[error("transaction index {path}: entry {entry} has version {version}, not 0; the file does not fit its segment (at open the log rebuilds it from the segment's markers)")]
    Version {
        path: PathBuf,
        entry: usize,
        version: i16,
    },
    /// An entry whose marker is not in the segment, or whose offsets contradict each other.
    #[error("transaction index {path}: entry {entry} (producer {producer_id}, offsets {first_offset}..={last_offset}, last stable offset {last_stable_offset}) {reason}; the file does not fit its segment (at open the log rebuilds it from the segment's markers)")]
    Entry {
        path: PathBuf,
        entry: usize,
        producer_id: i64,
        first_offset: i64,
        last_offset: i64,
        last_stable_offset: i64,
        reason: &'static str,
    },
}

/// The entry's bytes.
pub fn encode_entry(txn: &AbortedTxn) -> [u8; TXN_INDEX_ENTRY_BYTES] {
    let mut bytes = [0u8; TXN_INDEX_ENTRY_BYTES];
    bytes[..2].copy_from_slice(&TXN_INDEX_VERSION.to_be_bytes());
    let fields = [
        txn.producer_id,
        txn.first_offset,
        txn.last_offset,
        txn.last_stable_offset,
    ];
    for (i, field) in fields.iter().enumerate() {
        let at = 2 + i * 8;
        bytes[at..at + 8].copy_from_slice(&field.to_be_bytes());
    }
    bytes
}

/// Version and entry of one 34-byte entry.
fn decode_entry(bytes: &[u8; TXN_INDEX_ENTRY_BYTES]) -> (i16, AbortedTxn) {
    let (version, rest) = bytes.split_at(2);
    let version = i16::from_be_bytes([version[0], version[1]]);
    let mut fields = [0i64; 4];
    for (field, chunk) in fields.iter_mut().zip(rest.chunks_exact(8)) {
        let mut be = [0u8; 8];
        be.copy_from_slice(chunk);
        *field = i64::from_be_bytes(be);
    }
    let [producer_id, first_offset, last_offset, last_stable_offset] = fields;
    (
        version,
        AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset,
        },
    )
}

/// Checks entries one at a time against the segment at `path` holding offsets
/// `[base_offset, next_offset)`, carrying what the check of the next entry needs (the
/// previous marker, the entry's number), so that a file can be checked in chunks.
#[derive(Debug)]
pub struct Checker<'a> {
    path: &'a Path,
    base_offset: i64,
    next_offset: i64,
    previous: Option<i64>,
    entry: usize,
}

impl<'a> Checker<'a> {
    /// A checker for the first entry of the file.
    pub fn new(path: &'a Path, base_offset: i64, next_offset: i64) -> Checker<'a> {
        Checker {
            path,
            base_offset,
            next_offset,
            previous: None,
            entry: 0,
        }
    }

    /// Checks the next entry. Every entry's marker (its last offset) must lie in the
    /// segment, markers must increase, a transaction's first offset must come before its
    /// marker, and the last stable offset must lie between 0 and just past the marker
    /// (Kafka's `lastStableOffset(completedTxn)`: another open transaction's first offset,
    /// else the marker's next offset). Entries whose marker is at or past the segment's
    /// end — the index ahead of the log, which the ordering rule (entry written after its
    /// marker, flushed with it) rules out — are damage too.
    pub fn check(&mut self, version: i16, txn: &AbortedTxn) -> Result<(), TxnIndexError> {
        let entry = self.entry;
        if version != TXN_INDEX_VERSION {
            return Err(TxnIndexError::Version {
                path: self.path.to_path_buf(),
                entry,
                version,
            });
        }
        let reason = if txn.last_offset < self.base_offset || txn.last_offset >= self.next_offset {
            Some("has its marker outside the segment")
        } else if self.previous.is_some_and(|p| txn.last_offset <= p) {
            Some("does not follow the previous entry's marker")
        } else if txn.first_offset < 0 || txn.first_offset >= txn.last_offset {
            Some("does not start before its marker")
        } else if txn.last_stable_offset < 0 || txn.last_stable_offset > txn.last_offset + 1 {
            Some("has a last stable offset past its marker")
        } else if txn.producer_id < 0 {
            Some("has no producer id")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(TxnIndexError::Entry {
                path: self.path.to_path_buf(),
                entry,
                producer_id: txn.producer_id,
                first_offset: txn.first_offset,
                last_offset: txn.last_offset,
                last_stable_offset: txn.last_stable_offset,
                reason,
            });
        }
        self.previous = Some(txn.last_offset);
        self.entry += 1;
        Ok(())
    }
}

/// The whole entries of `bytes` with their versions (a torn tail is left out).
pub fn decode_entries(bytes: &[u8]) -> impl Iterator<Item = (i16, AbortedTxn)> + '_ {
    bytes.chunks_exact(TXN_INDEX_ENTRY_BYTES).map(|chunk| {
        let mut raw = [0u8; TXN_INDEX_ENTRY_BYTES];
        raw.copy_from_slice(chunk);
        decode_entry(&raw)
    })
}

/// Kafka's `collectAbortedTransactions` as a fold over entries in marker order: what a
/// `read_committed` fetch of `[fetch_offset, upper_bound)` must name. Fed the entries of
/// the segment holding `fetch_offset`, then of the later segments, until
/// [`AbortedCollector::push`] says the search is complete.
#[derive(Debug)]
pub struct AbortedCollector {
    fetch_offset: i64,
    upper_bound: i64,
    found: Vec<AbortedTxn>,
}

impl AbortedCollector {
    pub fn new(fetch_offset: i64, upper_bound: i64) -> AbortedCollector {
        AbortedCollector {
            fetch_offset,
            upper_bound,
            found: Vec::new(),
        }
    }

    /// Takes the next entry; `true` once the search is complete. Every entry whose range
    /// meets the fetch (marker at or after `fetch_offset`, first offset before
    /// `upper_bound`) is named; the search stops at the first entry whose last stable
    /// offset reaches `upper_bound` (no later marker can belong to a transaction that
    /// started below the bound, since that transaction would have held the last stable
    /// offset back), else it goes on through later segments, past the bound's: a
    /// transaction aborted after the bound may have started below it.
    pub fn push(&mut self, txn: &AbortedTxn) -> bool {
        if txn.last_offset >= self.fetch_offset && txn.first_offset < self.upper_bound {
            self.found.push(*txn);
        }
        txn.last_stable_offset >= self.upper_bound
    }

    /// The transactions named, in marker order.
    pub fn finish(self) -> Vec<AbortedTxn> {
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(producer_id: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    fn file(entries: &[AbortedTxn]) -> Vec<u8> {
        entries.iter().flat_map(encode_entry).collect()
    }

    /// The whole entries of a file's bytes, each checked (as the log checks them at open).
    fn parse(
        path: &Path,
        bytes: &[u8],
        base_offset: i64,
        next_offset: i64,
    ) -> Result<Vec<AbortedTxn>, TxnIndexError> {
        let mut checker = Checker::new(path, base_offset, next_offset);
        decode_entries(bytes)
            .map(|(version, txn)| checker.check(version, &txn).map(|()| txn))
            .collect()
    }

    /// The collector fed the entries of whole segments, as `Log::aborted_between` feeds it.
    fn collect_aborted<'a>(
        segments: impl IntoIterator<Item = &'a [AbortedTxn]>,
        fetch_offset: i64,
        upper_bound: i64,
    ) -> Vec<AbortedTxn> {
        let mut collector = AbortedCollector::new(fetch_offset, upper_bound);
        'segments: for entries in segments {
            for txn in entries {
                if collector.push(txn) {
                    break 'segments;
                }
            }
        }
        collector.finish()
    }

    #[test]
    fn entries_round_trip_in_kafkas_layout() {
        let a = txn(7, 100, 104, 102);
        let bytes = encode_entry(&a);
        assert_eq!(bytes.len(), 34);
        assert_eq!(&bytes[..2], &[0, 0], "version 0");
        assert_eq!(&bytes[2..10], &7i64.to_be_bytes());
        assert_eq!(&bytes[10..18], &100i64.to_be_bytes());
        assert_eq!(&bytes[18..26], &104i64.to_be_bytes());
        assert_eq!(&bytes[26..34], &102i64.to_be_bytes());
        let path = Path::new("00000000000000000100.txnindex");
        let read = parse(path, &file(&[a, txn(8, 90, 110, 111)]), 100, 200).unwrap();
        assert_eq!(read, vec![a, txn(8, 90, 110, 111)]);
        assert_eq!(parse(path, &[], 100, 200).unwrap(), vec![]);
    }

    #[test]
    fn a_torn_last_entry_is_left_out_not_damage() {
        let path = Path::new("00000000000000000000.txnindex");
        let whole = file(&[txn(1, 0, 3, 4), txn(2, 1, 5, 6)]);
        for cut in 1..TXN_INDEX_ENTRY_BYTES {
            let bytes = &whole[..whole.len() - cut];
            assert_eq!(parse(path, bytes, 0, 10).unwrap(), vec![txn(1, 0, 3, 4)]);
        }
    }

    #[test]
    fn entries_that_do_not_fit_the_segment_are_damage_naming_the_file() {
        let path = Path::new("/data/t-0/00000000000000000100.txnindex");
        let damaged = |entries: &[AbortedTxn]| parse(path, &file(entries), 100, 200);
        // Marker before the segment, at its end (the index ahead of the log), past it.
        for last in [99, 200, 500] {
            let err = damaged(&[txn(1, 50, last, last + 1)]).unwrap_err();
            assert!(
                err.to_string().contains("marker outside the segment"),
                "{err}"
            );
            assert!(err.to_string().contains(&path.display().to_string()));
        }
        // Markers out of order; a first offset after the marker; an LSO past it.
        assert!(damaged(&[txn(1, 100, 110, 111), txn(2, 100, 105, 106)]).is_err());
        assert!(damaged(&[txn(1, 120, 110, 111)]).is_err());
        assert!(damaged(&[txn(1, 100, 110, 112)]).is_err());
        assert!(damaged(&[txn(-1, 100, 110, 111)]).is_err());
        // Another version.
        let mut bytes = file(&[txn(1, 100, 110, 111)]);
        bytes[1] = 1;
        assert_eq!(
            parse(path, &bytes, 100, 200),
            Err(TxnIndexError::Version {
                path: path.to_path_buf(),
                entry: 0,
                version: 1
            })
        );
    }

    #[test]
    fn collecting_spans_segments_and_stops_once_complete() {
        // Segment 0: producer 1 aborted [1, 4] while producer 2 was open from 2 (LSO 2).
        // Segment 10: producer 2 aborted [2, 12] (LSO 13); producer 3 aborted [14, 15].
        let seg0 = [txn(1, 1, 4, 2)];
        let seg10 = [txn(2, 2, 12, 13), txn(3, 14, 15, 16)];
        let segments = || [&seg0[..], &seg10[..]];
        // A fetch of [0, 2): producer 1's range meets it; its LSO (2) completes the search.
        assert_eq!(collect_aborted(segments(), 0, 2), vec![seg0[0]]);
        // [0, 10): producer 2 started below 10 and aborted in the next segment.
        assert_eq!(collect_aborted(segments(), 0, 10), vec![seg0[0], seg10[0]]);
        // [5, 20): producer 1's marker is below 5.
        assert_eq!(collect_aborted(segments(), 5, 20), seg10.to_vec());
        // From the second segment only.
        assert_eq!(collect_aborted([&seg10[..]], 13, 20), vec![seg10[1]]);
        assert!(collect_aborted(segments(), 16, 20).is_empty());
    }
}
