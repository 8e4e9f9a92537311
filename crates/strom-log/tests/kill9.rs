//! A real writer process killed with SIGKILL at random moments, then recovery.
//!
//! The test binary re-executes itself (`--exact child_writer`, with `STROM_KILL9_DIR` set)
//! so that [`child_writer`] runs a writer loop in a separate process against a log on the
//! real file system. Each writer thread appends batches whose record values name their
//! round, writer, batch sequence number and record index (plus a checkable filler), and
//! reports on stdout, one flushed line each:
//! - `written <end> <writer> <seq> <first>` once `append` returned Ok;
//! - `durable <end>` once `sync_to(end)` (sync-on-commit) or `flush()` (page cache) did;
//! - `big <writer> <seq>` just before appending a batch of 0.5-0.8 MB.
//!
//! The parent kills the child with SIGKILL after a random delay (in odd rounds, as soon as
//! a `big` line arrives after it, so that the kill may cut that batch's `write` short and
//! leave a torn tail for recovery to truncate), reopens the log with `Log::open`, and
//! checks:
//! - the log end offset is at least the highest `durable` end reported, and at least the
//!   highest `written` end: a kill -9 without power loss keeps the page cache, so in both
//!   modes everything *written* before the kill must survive, not only what was synced;
//! - every reported batch is at exactly the offsets the writer was told, with its contents;
//! - the whole log reads back from its start as contiguous, CRC-valid batches whose records
//!   decode (`strom_records::records`) to the expected values, each writer's batches in
//!   sequence order with no gaps, rounds in order;
//! - appending after reopen works (the parent appends and syncs a marker batch each round,
//!   then closes cleanly or drops the log; the next child must see exactly that end offset
//!   and a clean open only after a clean close).
//!
//! Modes: sync-on-commit with 4 writer threads sharing group commit (`sync_to` after every
//! append), and page cache with 2 writers that call `flush()` now and then
//! (`flush.messages` = 5000 too); 1 MiB segments so that rolls and their fsyncs happen in
//! every round. 8 rounds per mode on one log directory, so each child also recovers what
//! the previous kill left. Each run prints how many rounds had a torn tail truncated
//! (usually 0-3 of 16: it depends on timing and is not asserted).
//!
//! What it cannot check: durability across power loss (the page cache survives a process
//! kill, so an fsync that was skipped would go unnoticed here). The simulated-power-loss
//! tests in `crash.rs` cover that; this test covers real files, real threads and torn
//! `write` calls cut short by the kill.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_log::fs::{FileSystem, RealFs};
use strom_log::{AppendOrigin, Durability, HandleCache, Log, LogConfig};
use strom_records::{batches, now_ms, records, BatchBuilder, DecodeLimits};

const CHILD_DIR_ENV: &str = "STROM_KILL9_DIR";
const CHILD_MODE_ENV: &str = "STROM_KILL9_MODE";
const CHILD_ROUND_ENV: &str = "STROM_KILL9_ROUND";
const CHILD_SEED_ENV: &str = "STROM_KILL9_SEED";
const LINE_PREFIX: &str = "KILL9 ";
/// Writer id of the marker batch the parent appends after each reopen.
const PARENT_WRITER: u32 = 99;
const ROUNDS: u32 = 8;
/// A child stops writing (and later exits) on its own after this, in case it is orphaned.
const CHILD_WRITE_MS_MAX: u64 = 8_000;
const CHILD_LIFE_MS_MAX: u64 = 20_000;
/// Bytes one child round may append, so that the log stays small for the read-back.
const CHILD_ROUND_BYTES_MAX: u64 = 12 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    SyncOnCommit,
    PageCache,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::SyncOnCommit => "sync",
            Mode::PageCache => "page",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        match s {
            "sync" => Some(Mode::SyncOnCommit),
            "page" => Some(Mode::PageCache),
            _ => None,
        }
    }

    /// Writer threads in the child: several share group commit in sync-on-commit mode.
    fn writers(self) -> u32 {
        match self {
            Mode::SyncOnCommit => 4,
            Mode::PageCache => 2,
        }
    }

    /// Small segments and indexes so that rolls (and their fsyncs) happen every round.
    fn config(self) -> LogConfig {
        LogConfig {
            segment_bytes: 1024 * 1024,
            segment_index_bytes: 4096,
            index_interval_bytes: 4096,
            retention_ms: -1,
            durability: match self {
                Mode::SyncOnCommit => Durability::SyncOnCommit,
                Mode::PageCache => Durability::PageCache,
            },
            flush_messages: match self {
                Mode::SyncOnCommit => LogConfig::default().flush_messages,
                Mode::PageCache => 5_000,
            },
            ..LogConfig::default()
        }
    }
}

/// xorshift64*: enough randomness for sizes and kill delays, with a printable seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn open_log(dir: &Path, mode: Mode) -> Result<Log, strom_log::LogError> {
    let fs: Arc<dyn FileSystem> = Arc::new(RealFs);
    Log::open(
        dir,
        mode.config(),
        Arc::new(HandleCache::new(fs, 32)),
        now_ms(),
    )
}

// ---------------------------------------------------------------------------------------
// Record contents: every value says where it belongs, and its filler is checkable.

/// Identifies one record of the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Tag {
    round: u32,
    writer: u32,
    seq: u64,
    index: u32,
    count: u32,
}

fn filler_byte(tag: &Tag, j: usize) -> u8 {
    let mix = u64::from(tag.round) * 31
        + u64::from(tag.writer) * 7
        + tag.seq * 13
        + u64::from(tag.index) * 3
        + j as u64;
    (mix % 251) as u8
}

fn encode_value(tag: &Tag, filler_bytes: usize) -> Vec<u8> {
    let mut value = format!(
        "r{} w{} s{} i{} c{} n{};",
        tag.round, tag.writer, tag.seq, tag.index, tag.count, filler_bytes
    )
    .into_bytes();
    value.extend((0..filler_bytes).map(|j| filler_byte(tag, j)));
    value
}

/// Parses and checks a value written by [`encode_value`].
fn decode_value(value: &[u8]) -> Result<Tag, String> {
    let semi = value
        .iter()
        .position(|&b| b == b';')
        .ok_or("no ';' in value")?;
    let head = std::str::from_utf8(&value[..semi]).map_err(|e| e.to_string())?;
    let mut fields = HashMap::new();
    for part in head.split(' ') {
        let (name, number) = part.split_at(1);
        let number: u64 = number.parse().map_err(|_| format!("bad field {part:?}"))?;
        fields.insert(name, number);
    }
    let field = |name: &str| {
        fields
            .get(name)
            .copied()
            .ok_or(format!("field {name} missing in {head:?}"))
    };
    let tag = Tag {
        round: field("r")? as u32,
        writer: field("w")? as u32,
        seq: field("s")?,
        index: field("i")? as u32,
        count: field("c")? as u32,
    };
    let filler = &value[semi + 1..];
    if filler.len() as u64 != field("n")? {
        return Err(format!("{head}: filler of {} bytes", filler.len()));
    }
    if let Some(j) = (0..filler.len()).find(|&j| filler[j] != filler_byte(&tag, j)) {
        return Err(format!("{head}: filler byte {j} damaged"));
    }
    Ok(tag)
}

/// A client batch of `count` records for (`round`, `writer`, `seq`).
fn build_batch(round: u32, writer: u32, seq: u64, count: u32, filler_bytes: usize) -> Vec<u8> {
    let timestamp_ms = now_ms();
    let mut builder = BatchBuilder::new(0, timestamp_ms);
    for index in 0..count {
        let tag = Tag {
            round,
            writer,
            seq,
            index,
            count,
        };
        let key = format!("w{writer}").into_bytes();
        builder
            .append(
                timestamp_ms,
                Some(key.into()),
                Some(encode_value(&tag, filler_bytes).into()),
                Vec::new(),
            )
            .unwrap();
    }
    builder.build().unwrap()
}

// ---------------------------------------------------------------------------------------
// The child: a writer process that runs until it is killed.

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // A failed write means the parent is gone; the writer carries on until its deadline.
    let _ = writeln!(out, "{LINE_PREFIX}{line}");
    let _ = out.flush();
}

/// Runs the writer when started by a parent test; returns at once otherwise.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let mode = std::env::var(CHILD_MODE_ENV)
        .ok()
        .and_then(|m| Mode::parse(&m))
        .unwrap();
    let round: u32 = std::env::var(CHILD_ROUND_ENV).unwrap().parse().unwrap();
    let seed: u64 = std::env::var(CHILD_SEED_ENV).unwrap().parse().unwrap();
    let started = Instant::now();
    let log = Arc::new(open_log(Path::new(&dir), mode).unwrap());
    let report = log.open_report();
    say(&format!(
        "ready {} {} {}",
        log.log_end_offset(),
        report.clean,
        report.truncated_bytes
    ));
    let budget = Arc::new(std::sync::atomic::AtomicU64::new(CHILD_ROUND_BYTES_MAX));
    let threads: Vec<_> = (0..mode.writers())
        .map(|writer| {
            let log = Arc::clone(&log);
            let budget = Arc::clone(&budget);
            std::thread::spawn(move || {
                let rng = Rng::new(seed ^ (u64::from(writer) + 1).wrapping_mul(0x9E37_79B9));
                write_loop(&log, mode, round, writer, rng, &budget, started)
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Out of budget or time: wait to be killed, but not forever.
    while started.elapsed() < Duration::from_millis(CHILD_LIFE_MS_MAX) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_loop(
    log: &Log,
    mode: Mode,
    round: u32,
    writer: u32,
    mut rng: Rng,
    budget: &std::sync::atomic::AtomicU64,
    started: Instant,
) {
    use std::sync::atomic::Ordering;
    for seq in 0u64.. {
        if started.elapsed() > Duration::from_millis(CHILD_WRITE_MS_MAX) {
            return;
        }
        // Mostly small batches, some of several pages, and now and then a big one (about
        // 0.5-0.8 MB) announced beforehand so that the parent can aim a kill at its write.
        let big = rng.below(200) == 0;
        let (count, filler) = match (big, rng.below(10)) {
            (true, _) => (8, 64_000 + rng.below(36_000)),
            (false, 0) => (1 + rng.below(8) as u32, rng.below(60_000)),
            (false, _) => (1 + rng.below(8) as u32, rng.below(2_000)),
        };
        let mut batch = build_batch(round, writer, seq, count, filler as usize);
        let size = batch.len() as u64;
        if budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| b.checked_sub(size))
            .is_err()
        {
            return;
        }
        if big {
            say(&format!("big {writer} {seq}"));
        }
        let info = log
            .append(&mut batch, AppendOrigin::Client, now_ms())
            .unwrap();
        let end = info.last_offset + 1;
        say(&format!(
            "written {end} {writer} {seq} {}",
            info.first_offset
        ));
        match mode {
            Mode::SyncOnCommit => {
                log.sync_to(end).unwrap();
                say(&format!("durable {end}"));
            }
            Mode::PageCache => {
                if rng.below(40) == 0 {
                    log.flush().unwrap();
                    say(&format!("durable {}", log.durable_offset()));
                }
                // Unthrottled page-cache appends would spend the byte budget in a few
                // milliseconds; pause now and then so that kills land mid-stream.
                if rng.below(4) == 0 {
                    std::thread::sleep(Duration::from_micros(rng.below(2_000)));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The parent: start, kill, reopen, check.

/// What a child said before it died.
#[derive(Debug, Default)]
struct ChildReport {
    ready: Option<(i64, bool)>,
    written_end_max: i64,
    durable_end_max: i64,
    /// Each batch the writer saw appended: its first offset -> (writer, seq, end).
    batches: BTreeMap<i64, (u32, u64, i64)>,
}

/// Lines the parent acts on as they arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Ready,
    Big,
}

impl ChildReport {
    fn take(&mut self, line: &str) -> Option<Event> {
        let at = line.find(LINE_PREFIX)?;
        let words: Vec<&str> = line[at + LINE_PREFIX.len()..].split(' ').collect();
        let num = |i: usize| -> i64 { words[i].parse().unwrap() };
        match words[0] {
            "ready" => {
                self.ready = Some((num(1), words[2] == "true"));
                return Some(Event::Ready);
            }
            "big" => return Some(Event::Big),
            "written" => {
                let end = num(1);
                self.written_end_max = self.written_end_max.max(end);
                self.batches
                    .insert(num(4), (num(2) as u32, num(3) as u64, end));
            }
            "durable" => self.durable_end_max = self.durable_end_max.max(num(1)),
            other => panic!("unknown child line {other:?}"),
        }
        None
    }
}

/// Kills the child if the parent test fails half way.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(dir: &Path, mode: Mode, round: u32, seed: u64) -> ChildGuard {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_MODE_ENV, mode.name())
        .env(CHILD_ROUND_ENV, round.to_string())
        .env(CHILD_SEED_ENV, seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    ChildGuard(child)
}

/// Runs one child for a random time, kills it with SIGKILL and returns what it reported.
fn run_child(dir: &Path, mode: Mode, round: u32, rng: &mut Rng) -> ChildReport {
    use std::os::unix::process::ExitStatusExt;
    let mut guard = spawn_child(dir, mode, round, rng.next());
    let stdout = guard.0.stdout.take().unwrap();
    let (event_tx, event_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut report = ChildReport::default();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(event) = report.take(&line) {
                let _ = event_tx.send(event);
            }
        }
        report
    });
    let first = event_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("child did not open the log within 60 s");
    assert_eq!(first, Event::Ready, "the child's first line");
    // Kill anywhere from during the first appends to well into the stream; in odd rounds
    // right when a big batch is about to be written, to tear it if the kill is quick.
    let delay_ms = match rng.below(4) {
        0 => rng.below(30),
        _ => 30 + rng.below(1_500),
    };
    let aimed = round % 2 == 1;
    let delay_ms = if aimed { delay_ms / 4 } else { delay_ms };
    std::thread::sleep(Duration::from_millis(delay_ms));
    if aimed {
        let deadline = Instant::now() + Duration::from_secs(3);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match event_rx.recv_timeout(left) {
                Ok(Event::Big) => {
                    // The child builds nothing after the line: it validates (CRC) and
                    // writes. A random pause spreads kills over that window.
                    std::thread::sleep(Duration::from_micros(rng.below(1_000)));
                    break;
                }
                Ok(Event::Ready) => {}
                Err(_) => break,
            }
        }
    }
    if let Some(status) = guard.0.try_wait().unwrap() {
        panic!("child exited on its own before the kill: {status}");
    }
    guard.0.kill().unwrap();
    let status = guard.0.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "child died of SIGKILL: {status}");
    let report = reader.join().unwrap();
    eprintln!(
        "kill9 {} round {round}: killed after {delay_ms} ms{}, {} batches written, \
         written end {}, durable end {}",
        mode.name(),
        if aimed { " and a big batch" } else { "" },
        report.batches.len(),
        report.written_end_max,
        report.durable_end_max
    );
    report
}

/// Reads the whole log back, checking its structure and every record's contents, and
/// returns the tags of the records by offset plus each batch's (base, writer, seq).
fn read_back(log: &Log) -> (Vec<Tag>, Vec<(i64, u32, u64)>) {
    let limits = DecodeLimits::default();
    let mut tags = Vec::new();
    let mut batch_list = Vec::new();
    let mut offset = log.log_start_offset();
    assert_eq!(offset, 0, "nothing deletes from the front here");
    let end = log.log_end_offset();
    for _ in 0..1_000_000 {
        if offset >= end {
            break;
        }
        let info = log.read(offset, 256 * 1024, i64::MAX).unwrap();
        let range = info
            .range
            .unwrap_or_else(|| panic!("no data at {offset} below the end {end}"));
        assert_eq!(
            range.first_offset, offset,
            "reads start at a batch boundary"
        );
        let bytes = range.read_bytes().unwrap();
        let mut next = offset;
        for item in batches(&bytes) {
            let (header, r) = item.unwrap_or_else(|e| panic!("bad batch after {next}: {e:?}"));
            assert_eq!(header.base_offset, next, "offsets are contiguous");
            let decoded = records(&bytes[r], &limits).unwrap();
            assert_eq!(
                decoded.len() as i64,
                header.next_offset() - header.base_offset
            );
            let mut first_tag = None;
            for (i, record) in decoded.iter().enumerate() {
                assert_eq!(record.offset(&header), next + i as i64);
                let tag = decode_value(record.value.as_deref().unwrap())
                    .unwrap_or_else(|e| panic!("record {}: {e}", next + i as i64));
                assert_eq!(tag.index as usize, i, "records of a batch in order");
                assert_eq!(tag.count as usize, decoded.len(), "whole batch");
                first_tag.get_or_insert(tag);
                tags.push(tag);
            }
            let tag = first_tag.unwrap();
            batch_list.push((header.base_offset, tag.writer, tag.seq));
            next = header.next_offset();
        }
        assert_eq!(next, range.next_offset);
        assert!(next > offset, "reads make progress");
        offset = next;
    }
    assert_eq!(offset, end, "read up to the log end offset");
    (tags, batch_list)
}

/// Rounds in order; within a round each writer's batches in sequence from 0, no gaps.
fn check_order(tags: &[Tag]) {
    let mut round = 0;
    let mut next_seq: HashMap<(u32, u32), u64> = HashMap::new();
    for tag in tags.iter().filter(|t| t.index == 0) {
        assert!(
            tag.round >= round,
            "round {} after round {round}",
            tag.round
        );
        round = tag.round;
        let expected = next_seq.entry((tag.round, tag.writer)).or_insert(0);
        if tag.writer == PARENT_WRITER {
            assert_eq!(tag.seq, u64::from(tag.round), "marker batch of its round");
        } else {
            assert_eq!(
                tag.seq, *expected,
                "round {} writer {}: batches in sequence",
                tag.round, tag.writer
            );
        }
        *expected = tag.seq + 1;
    }
}

fn run(mode: Mode) {
    let started = Instant::now();
    let seed = std::env::var("STROM_KILL9_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() as u64 ^ u64::from(std::process::id()) ^ ((mode as u64) << 40));
    eprintln!(
        "kill9 {}: seed {seed} (set STROM_KILL9_TEST_SEED to repeat the sizes)",
        mode.name()
    );
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir: PathBuf = tmp.path().join(format!("kill9-{}-0", mode.name()));
    // What the next child must find on open: (end offset, clean).
    let mut expected_open = (0i64, false);
    let mut first_open = true;
    let mut torn_rounds = 0;
    for round in 0..ROUNDS {
        let child = run_child(&dir, mode, round, &mut rng);
        let (ready_end, ready_clean) = child.ready.unwrap();
        assert_eq!(
            ready_end, expected_open.0,
            "child opened at the parent's end"
        );
        if !first_open {
            assert_eq!(ready_clean, expected_open.1, "clean open only after close");
        }
        first_open = false;

        let log = open_log(&dir, mode).unwrap();
        let report = log.open_report().clone();
        eprintln!("kill9 {} round {round}: reopened: {report:?}", mode.name());
        if !child.batches.is_empty() {
            assert!(!report.clean, "a killed writer leaves an unclean log");
        }
        if report.truncated_bytes > 0 {
            torn_rounds += 1;
        }
        let end = log.log_end_offset();
        assert!(
            end >= child.durable_end_max,
            "lost durable data: end {end} < durable {}",
            child.durable_end_max
        );
        assert!(
            end >= child.written_end_max,
            "lost written data (the page cache survives a kill): end {end} < written {}",
            child.written_end_max
        );
        let (tags, batch_list) = read_back(&log);
        check_order(&tags);
        let found: HashMap<i64, (u32, u64)> = batch_list
            .iter()
            .map(|&(base, writer, seq)| (base, (writer, seq)))
            .collect();
        for (&first, &(writer, seq, batch_end)) in &child.batches {
            assert_eq!(
                found.get(&first),
                Some(&(writer, seq)),
                "reported batch at {first}..{batch_end} is in the log"
            );
            let tag = tags[first as usize];
            assert_eq!((tag.round, tag.index), (round, 0));
            assert_eq!(tags[(batch_end - 1) as usize].seq, seq);
        }

        // Appending after the reopen works and is readable.
        let mut marker = build_batch(round, PARENT_WRITER, u64::from(round), 2, 10);
        let info = log
            .append(&mut marker, AppendOrigin::Client, now_ms())
            .unwrap();
        assert_eq!(info.first_offset, end);
        log.sync_to(info.last_offset + 1).unwrap();
        let (tags_after, _) = read_back(&log);
        assert_eq!(tags_after.len() as i64, info.last_offset + 1);
        assert_eq!(tags_after[end as usize].writer, PARENT_WRITER);
        let clean = rng.below(2) == 0;
        if clean {
            log.close().unwrap();
        }
        drop(log);
        expected_open = (info.last_offset + 1, clean);
    }
    let elapsed = started.elapsed();
    eprintln!(
        "kill9 {}: {ROUNDS} rounds in {elapsed:?}, {torn_rounds} with a torn tail truncated",
        mode.name()
    );
}

#[test]
fn kill9_sync_on_commit_group_commit() {
    if std::env::var(CHILD_DIR_ENV).is_ok() {
        return;
    }
    run(Mode::SyncOnCommit);
}

#[test]
fn kill9_page_cache() {
    if std::env::var(CHILD_DIR_ENV).is_ok() {
        return;
    }
    run(Mode::PageCache);
}

#[test]
fn values_round_trip_and_detect_damage() {
    let tag = Tag {
        round: 3,
        writer: 1,
        seq: 77,
        index: 2,
        count: 5,
    };
    let mut value = encode_value(&tag, 300);
    assert_eq!(decode_value(&value), Ok(tag));
    let last = value.len() - 1;
    value[last] ^= 1;
    assert!(decode_value(&value).is_err());
    value.truncate(last);
    assert!(decode_value(&value).is_err());
}
