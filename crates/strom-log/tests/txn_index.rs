//! The per-segment `.txnindex` on a real log (simulated file system): written when an
//! ABORT marker is appended, in the segment holding the marker; a torn last entry cut at
//! open; damage in the middle reported for rebuild with a WARN naming the file (the segment
//! is the truth), and rebuilt; cut by truncation; reported for rebuild where recovery
//! scanned or where a segment has none (a directory from before Strom kept them), and
//! rebuilt.

mod common;

use std::path::PathBuf;

use strom_log::fs::{write_all_at, FileSystem, SimFs};
use strom_log::txn_index::TXN_INDEX_ENTRY_BYTES;
use strom_log::{AbortedTxn, AppendOrigin, Log, LogConfig, Transactions};
use strom_records::{BatchBuilder, EndTransactionMarker};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1_400,
        ..LogConfig::test_min()
    }
}

fn data(producer_id: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(0, 1_000)
        .producer(producer_id, 0, 0)
        .transactional(true);
    b.append(1_000, None, Some(vec![1u8; 300].into()), Vec::new())
        .unwrap();
    b.build().unwrap()
}

fn marker(producer_id: i64, commit: bool) -> Vec<u8> {
    EndTransactionMarker {
        commit,
        coordinator_epoch: 0,
    }
    .to_batch(0, 1_000, producer_id, 0)
    .unwrap()
}

/// A log driven as the broker drives it: the transaction state fed every batch, each
/// ABORT's entry handed to the log after the marker's append.
struct Driver {
    state: Transactions,
    /// (producer, commit) by marker offset, for replays.
    markers: Vec<(i64, i64, bool)>,
    aborted: Vec<AbortedTxn>,
}

impl Driver {
    fn new() -> Driver {
        Driver {
            state: Transactions::default(),
            markers: Vec::new(),
            aborted: Vec::new(),
        }
    }

    fn data(&mut self, log: &Log, producer_id: i64) -> i64 {
        let mut bytes = data(producer_id);
        let info = log
            .append(&mut bytes, AppendOrigin::Coordinator, 1_000)
            .unwrap();
        let header = strom_records::BatchHeader::parse(&bytes).unwrap();
        self.state.on_batch(&header, info.first_offset);
        info.first_offset
    }

    fn end(&mut self, log: &Log, producer_id: i64, commit: bool) -> i64 {
        let mut bytes = marker(producer_id, commit);
        let offset = log
            .append(&mut bytes, AppendOrigin::Coordinator, 1_000)
            .unwrap()
            .first_offset;
        self.markers.push((offset, producer_id, commit));
        if let Some(a) = self.state.on_marker(producer_id, 0, commit, offset) {
            log.append_txn_index(a).unwrap();
            self.aborted.push(a);
        }
        offset
    }

    /// The broker's rebuild after an open: replay from the log start.
    fn rebuild(&self, log: &Log) {
        let from = log.txn_index_rebuild_from().expect("a rebuild is owed");
        let mut state = Transactions::default();
        let mut entries = Vec::new();
        log.for_each_batch_header(log.log_start_offset(), |header| {
            if header.is_control() {
                let (_, producer, commit) = self
                    .markers
                    .iter()
                    .find(|m| m.0 == header.base_offset)
                    .copied()
                    .unwrap();
                entries.extend(state.on_marker(producer, 0, commit, header.base_offset));
            } else {
                state.on_batch(header, header.base_offset);
            }
        })
        .unwrap();
        log.rebuild_txn_index(from, &entries).unwrap();
        assert_eq!(log.txn_index_rebuild_from(), None);
    }
}

/// Nine transactions over several segments, interleaved, six of them aborted.
fn build(log: &Log) -> Driver {
    let mut d = Driver::new();
    for round in 0..3 {
        d.data(log, 1);
        d.data(log, 2);
        d.end(log, 1, false);
        d.data(log, 3);
        d.end(log, 2, round == 1);
        d.end(log, 3, round != 1);
    }
    d
}

fn txn_index_path(base: i64) -> PathBuf {
    common::dir().join(format!("{base:020}.txnindex"))
}

#[test]
fn aborts_are_indexed_in_the_segment_holding_their_marker() {
    let fs = SimFs::new();
    let log = common::open_sim(&fs, config(), 0).unwrap();
    let d = build(&log);
    assert!(log.segment_count() > 2, "{:?}", log.segment_base_offsets());
    // Producer 1 aborts every round, 2 in rounds 0 and 2, 3 in round 1.
    assert_eq!(d.aborted.len(), 6);
    let bases = log.segment_base_offsets();
    let mut seen = Vec::new();
    for (i, base) in bases.iter().enumerate() {
        // Every segment has its file, empty or not.
        assert!(fs.exists(&txn_index_path(*base)).unwrap(), "segment {base}");
        let end = bases.get(i + 1).copied().unwrap_or(log.log_end_offset());
        for entry in log.txn_index_entries(*base).unwrap() {
            assert!(
                (*base..end).contains(&entry.last_offset),
                "{entry:?} in {base}"
            );
            seen.push(entry);
        }
    }
    assert_eq!(seen, d.aborted);
    assert_eq!(
        log.aborted_between(0, log.log_end_offset()).unwrap(),
        d.aborted
    );
    // An entry for a marker past the log end is refused and fails nothing else.
    let past = AbortedTxn {
        producer_id: 9,
        first_offset: 0,
        last_offset: log.log_end_offset(),
        last_stable_offset: 1,
    };
    assert!(log.append_txn_index(past).is_err());
}

#[test]
fn a_torn_last_entry_is_cut_at_open() {
    let fs = SimFs::new();
    let log = common::open_sim(&fs, config(), 0).unwrap();
    let d = build(&log);
    let base = d.aborted[0].last_offset;
    let base = *log
        .segment_base_offsets()
        .iter()
        .rev()
        .find(|b| **b <= base)
        .unwrap();
    log.close().unwrap();
    let path = txn_index_path(base);
    let len = fs.file_len(&path).unwrap();
    let file = fs.open(&path).unwrap();
    write_all_at(file.as_ref(), len, &[0u8; 20]).unwrap();
    file.sync().unwrap();
    let log = common::open_sim(&fs, config(), 0).unwrap();
    assert_eq!(fs.file_len(&path).unwrap(), len);
    assert_eq!(log.txn_index_rebuild_from(), None);
    assert_eq!(
        log.aborted_between(0, log.log_end_offset()).unwrap(),
        d.aborted
    );
}

/// What the log writes through `tracing` while `f` runs (on this thread).
fn logs_of<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    (out, logs)
}

/// A damaged entry in the middle of a `.txnindex` (not a torn tail) does not stop the
/// partition: the open warns naming the file and reports the segment for a rebuild from
/// its markers (the segment is the truth, as Kafka rebuilds a damaged index), and the
/// rebuild writes back exactly the entries there were.
#[test]
fn damage_in_the_middle_is_rebuilt_from_the_segment_with_a_warning() {
    // Larger segments: two rounds of `build`, four aborts, in the first.
    let config = || LogConfig {
        segment_bytes: 2_800,
        ..LogConfig::test_min()
    };
    let fs = SimFs::new();
    let log = common::open_sim(&fs, config(), 0).unwrap();
    let d = build(&log);
    let bases = log.segment_base_offsets();
    // The segment with the most entries (several), and its entries as written.
    let base = *bases
        .iter()
        .max_by_key(|b| log.txn_index_entries(**b).unwrap().len())
        .unwrap();
    let original = log.txn_index_entries(base).unwrap();
    assert!(original.len() >= 3, "{original:?} in {base}");
    log.close().unwrap();
    let path = txn_index_path(base);
    let before = fs.contents(&path).unwrap();
    // A middle entry's marker offset runs backwards (its last offset, bytes 18..26 of the
    // entry): not where a torn append could leave anything.
    let damaged = original.len() / 2;
    let at = damaged * TXN_INDEX_ENTRY_BYTES + 18;
    let file = fs.open(&path).unwrap();
    write_all_at(file.as_ref(), at as u64, &(-5i64).to_be_bytes()).unwrap();
    file.sync().unwrap();
    let (log, logs) = logs_of(|| common::open_sim(&fs, config(), 0).unwrap());
    let warning = logs
        .lines()
        .find(|l| l.contains("WARN") && l.contains("damaged transaction index"))
        .unwrap_or_else(|| panic!("no warning in {logs}"));
    assert!(warning.contains(&path.display().to_string()), "{warning}");
    assert!(warning.contains("marker outside the segment"), "{warning}");
    assert_eq!(log.txn_index_rebuild_from(), Some(base));
    // Until the rebuild, the entries before the damage are served.
    assert_eq!(log.txn_index_entries(base).unwrap(), &original[..damaged]);
    d.rebuild(&log);
    assert_eq!(log.txn_index_entries(base).unwrap(), original);
    assert_eq!(fs.contents(&path).unwrap(), before);
    assert_eq!(
        log.aborted_between(0, log.log_end_offset()).unwrap(),
        d.aborted
    );
    // And it stays whole across a reopen.
    log.close().unwrap();
    let log = common::open_sim(&fs, config(), 0).unwrap();
    assert_eq!(log.txn_index_rebuild_from(), None);
    assert_eq!(log.txn_index_entries(base).unwrap(), original);
}

#[test]
fn truncation_cuts_the_index() {
    let fs = SimFs::new();
    let log = common::open_sim(&fs, config(), 0).unwrap();
    let d = build(&log);
    let cut_at = d.aborted[2].last_offset;
    log.truncate_to(cut_at, 0).unwrap();
    let end = log.log_end_offset();
    assert_eq!(end, cut_at);
    assert_eq!(log.aborted_between(0, end).unwrap(), &d.aborted[..2]);
    let all: Vec<AbortedTxn> = log
        .segment_base_offsets()
        .iter()
        .flat_map(|b| log.txn_index_entries(*b).unwrap())
        .collect();
    assert_eq!(all, &d.aborted[..2]);
    // What stays survives a clean reopen as it is.
    log.close().unwrap();
    let log = common::open_sim(&fs, config(), 0).unwrap();
    assert_eq!(log.txn_index_rebuild_from(), None);
    assert_eq!(log.aborted_between(0, end).unwrap(), &d.aborted[..2]);
}

#[test]
fn a_missing_index_is_reported_and_rebuilt() {
    let fs = SimFs::new();
    let log = common::open_sim(&fs, config(), 0).unwrap();
    let d = build(&log);
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    // A directory from before Strom kept `.txnindex` files.
    for base in &bases {
        fs.remove(&txn_index_path(*base)).unwrap();
    }
    fs.sync_dir(&common::dir()).unwrap();
    let log = common::open_sim(&fs, config(), 0).unwrap();
    assert_eq!(log.txn_index_rebuild_from(), Some(bases[0]));
    // Not "no aborted transactions": still owed after another close and open.
    log.close().unwrap();
    let log = common::open_sim(&fs, config(), 0).unwrap();
    assert_eq!(log.txn_index_rebuild_from(), Some(bases[0]));
    d.rebuild(&log);
    assert_eq!(
        log.aborted_between(0, log.log_end_offset()).unwrap(),
        d.aborted
    );
    for base in &bases {
        assert!(fs.exists(&txn_index_path(*base)).unwrap());
    }
    log.close().unwrap();
    let log = common::open_sim(&fs, config(), 0).unwrap();
    assert_eq!(log.txn_index_rebuild_from(), None);
    assert_eq!(
        log.aborted_between(0, log.log_end_offset()).unwrap(),
        d.aborted
    );
}

#[test]
fn recovery_owes_a_rebuild_of_what_it_scanned_until_it_is_done() {
    for seed in 1..20u64 {
        let fs = SimFs::new();
        let log = common::open_sim(&fs, config(), 0).unwrap();
        let d = build(&log);
        log.flush().unwrap();
        let crashed = fs.crash(seed);
        let log = common::open_sim(&crashed, config(), 0).unwrap();
        let scanned = log.open_report().first_scanned_with_markers;
        assert!(scanned.is_some(), "seed {seed}");
        assert_eq!(log.txn_index_rebuild_from(), scanned, "seed {seed}");
        // A second crash before the rebuild: the scanned segments are scanned again.
        let log_end = log.log_end_offset();
        drop(log);
        let again = crashed.crash(seed + 100);
        let log = common::open_sim(&again, config(), 0).unwrap();
        let from = log.txn_index_rebuild_from().expect("still owed");
        assert!(from <= scanned.unwrap(), "seed {seed}");
        assert_eq!(log.log_end_offset(), log_end);
        d.rebuild(&log);
        let expected: Vec<AbortedTxn> = d
            .aborted
            .iter()
            .filter(|a| a.last_offset < log_end)
            .copied()
            .collect();
        assert_eq!(log.aborted_between(0, log_end).unwrap(), expected);
        // Rebuilt files are durable: a crash now owes only what the new scan covers,
        // and what it keeps is right.
        log.flush().unwrap();
        let third = again.crash(seed + 200);
        let log = common::open_sim(&third, config(), 0).unwrap();
        if log.txn_index_rebuild_from().is_some() {
            d.rebuild(&log);
        }
        assert_eq!(log.aborted_between(0, log_end).unwrap(), expected);
    }
}
