//! Append throughput and latency of strom-log against the raw limit of the same disk.
//!
//! `cargo bench -p strom-log --bench append` runs every case: 1 KiB, 16 KiB and 1 MiB
//! pre-built batches (each append only rewrites the base offset back to 0, as a producer
//! sends it) in page-cache mode, in sync-on-commit mode with one writer, and in
//! sync-on-commit mode with 8 concurrent writers sharing group commit. Each log case is
//! paired with the raw limit: a plain sequential `write` of the same bytes to one file in
//! the same directory; in the sync cases with an fdatasync per batch (one writer), or, for
//! 8 writers, the same 8 threads doing `write` + the simplest possible group-committed
//! fdatasync. The table gives MB/s (10^6 bytes/s), the ratio to raw, latency percentiles
//! per append (append + `sync_to` in the sync cases), the raw p50, and batches per fsync.
//!
//! Environment: `STROM_BENCH_MIB` (bytes per throughput case, default 512),
//! `STROM_BENCH_SYNC_MIB` (cap for the sync cases, default 256), `STROM_BENCH_SECONDS`
//! (time cap per measurement, default 15), `STROM_BENCH_DIR` (default: a temporary
//! directory under the target directory), `STROM_BENCH_FILTER` (run only cases whose
//! `"<case> <target bytes>"` contains it, e.g. `page-cache 1048576`). Run without
//! `--bench` (e.g. by `cargo test --benches`) it does a tiny smoke run instead.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

use strom_log::fs::{FileHandle, FileSystem, RealFs};
use strom_log::{AppendOrigin, Durability, HandleCache, Log, LogConfig};
use strom_records::{set_base_offset, validate_client_batch, BatchBuilder, ValidateLimits};

const TIMESTAMP_MS: i64 = 1_700_000_000_000;
const GROUP_WRITERS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    PageCache,
    Sync,
    SyncGroup,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::PageCache => "page-cache",
            Mode::Sync => "sync x1",
            Mode::SyncGroup => "sync x8",
        }
    }
    fn writers(self) -> usize {
        match self {
            Mode::SyncGroup => GROUP_WRITERS,
            _ => 1,
        }
    }
    fn syncs(self) -> bool {
        self != Mode::PageCache
    }
}

struct Settings {
    throughput_bytes: u64,
    sync_bytes: u64,
    time_cap: Duration,
    dir: PathBuf,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------
// A file system that counts fsyncs, to report how many batches one fsync covered.

#[derive(Debug)]
struct CountingFs {
    inner: RealFs,
    syncs: Arc<AtomicU64>,
}

#[derive(Debug)]
struct CountingFile {
    inner: Arc<dyn FileHandle>,
    syncs: Arc<AtomicU64>,
}

impl FileHandle for CountingFile {
    fn read_at(&self, position: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(position, buf)
    }
    fn write_at(&self, position: u64, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_at(position, buf)
    }
    fn len_bytes(&self) -> io::Result<u64> {
        self.inner.len_bytes()
    }
    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.inner.set_len(len_bytes)
    }
    fn sync(&self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.sync()
    }
    fn std_file(&self) -> Option<&File> {
        self.inner.std_file()
    }
}

impl CountingFs {
    fn wrap(&self, inner: Arc<dyn FileHandle>) -> Arc<dyn FileHandle> {
        Arc::new(CountingFile {
            inner,
            syncs: Arc::clone(&self.syncs),
        })
    }
}

impl FileSystem for CountingFs {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        Ok(self.wrap(self.inner.create(path)?))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        Ok(self.wrap(self.inner.open(path)?))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.sync_dir(dir)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.inner.file_len(path)
    }
    fn available_bytes(&self, dir: &Path) -> io::Result<u64> {
        self.inner.available_bytes(dir)
    }
}

// ---------------------------------------------------------------------------------------
// Measurements.

/// Each case alternates log and raw in this many slices, so that load from other processes
/// on the machine hits both sides alike.
const SLICES: u64 = 4;

/// One measured run (or the sum of several slices).
#[derive(Debug, Default)]
struct Measure {
    bytes: u64,
    batches: u64,
    elapsed: Duration,
    /// Per append (log: append, plus `sync_to` when syncing) or per batch written (raw:
    /// write, plus waiting for its fdatasync when syncing), nanoseconds.
    latencies_ns: Vec<u64>,
    fsyncs: u64,
}

impl Measure {
    fn add(&mut self, other: Measure) {
        self.bytes += other.bytes;
        self.batches += other.batches;
        self.elapsed += other.elapsed;
        self.latencies_ns.extend(other.latencies_ns);
        self.fsyncs += other.fsyncs;
    }
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }
    fn percentile_us(&mut self, p: f64) -> f64 {
        if self.latencies_ns.is_empty() {
            return f64::NAN;
        }
        self.latencies_ns.sort_unstable();
        let rank = ((self.latencies_ns.len() as f64 * p).ceil() as usize)
            .clamp(1, self.latencies_ns.len());
        self.latencies_ns[rank - 1] as f64 / 1e3
    }
}

/// A client batch of about `target_bytes` (never more), with one timestamp.
fn build_batch(target_bytes: usize) -> Vec<u8> {
    let count = (target_bytes / 1024).clamp(4, 64);
    let build = |value_bytes: usize| {
        let mut b = BatchBuilder::new(0, TIMESTAMP_MS);
        for i in 0..count {
            let value: Vec<u8> = (0..value_bytes).map(|j| (i * 31 + j) as u8).collect();
            b.append(
                TIMESTAMP_MS,
                Some(format!("key-{i}").into_bytes().into()),
                Some(value.into()),
                Vec::new(),
            )
            .unwrap();
        }
        b.build().unwrap()
    };
    let mut value_bytes = target_bytes / count;
    loop {
        let batch = build(value_bytes);
        if batch.len() <= target_bytes {
            return batch;
        }
        value_bytes -= (batch.len() - target_bytes).div_ceil(count);
    }
}

fn config(mode: Mode) -> LogConfig {
    LogConfig {
        durability: if mode.syncs() {
            Durability::SyncOnCommit
        } else {
            Durability::PageCache
        },
        retention_ms: -1,
        ..LogConfig::default()
    }
}

/// Runs `writers` threads, each with its own copy of `batch`, calling `step` on it up to
/// `per_writer` times (stopping at the time cap) and timing each call; returns the wall
/// time and all latencies.
fn timed_threads(
    writers: usize,
    per_writer: u64,
    cap: Duration,
    batch: &[u8],
    step: impl Fn(&mut [u8]) + Send + Sync + 'static,
) -> (Duration, Vec<u64>) {
    let step = Arc::new(step);
    let barrier = Arc::new(Barrier::new(writers + 1));
    let threads: Vec<_> = (0..writers)
        .map(|_| {
            let (step, barrier) = (Arc::clone(&step), Arc::clone(&barrier));
            let mut buf = batch.to_vec();
            std::thread::spawn(move || {
                let mut latencies_ns = Vec::with_capacity(per_writer as usize);
                barrier.wait();
                let start = Instant::now();
                for _ in 0..per_writer {
                    if start.elapsed() > cap {
                        break;
                    }
                    let t = Instant::now();
                    step(&mut buf);
                    latencies_ns.push(t.elapsed().as_nanos() as u64);
                }
                latencies_ns
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut latencies_ns = Vec::new();
    for t in threads {
        latencies_ns.extend(t.join().unwrap());
    }
    (start.elapsed(), latencies_ns)
}

fn measure(elapsed: Duration, latencies_ns: Vec<u64>, batch_bytes: usize, fsyncs: u64) -> Measure {
    let batches = latencies_ns.len() as u64;
    Measure {
        bytes: batches * batch_bytes as u64,
        batches,
        elapsed,
        latencies_ns,
        fsyncs,
    }
}

/// A log under test and its fsync counter.
struct LogTarget {
    log: Arc<Log>,
    syncs: Arc<AtomicU64>,
}

fn open_log(dir: &Path, mode: Mode) -> LogTarget {
    let syncs = Arc::new(AtomicU64::new(0));
    let fs: Arc<dyn FileSystem> = Arc::new(CountingFs {
        inner: RealFs,
        syncs: Arc::clone(&syncs),
    });
    let handles = Arc::new(HandleCache::new(fs, 64));
    let log = Arc::new(Log::open(dir, config(mode), handles, TIMESTAMP_MS).unwrap());
    LogTarget { log, syncs }
}

/// Appends `batch` (as a client sends it: base offset 0) for about `bytes`, from
/// `mode.writers()` threads, each committing with `sync_to` in the sync modes.
fn log_slice(target: &LogTarget, mode: Mode, batch: &[u8], bytes: u64, cap: Duration) -> Measure {
    let writers = mode.writers();
    let per_writer = (bytes / batch.len() as u64 / writers as u64).max(1);
    let syncs_before = target.syncs.load(Ordering::Relaxed);
    let log = Arc::clone(&target.log);
    let (elapsed, latencies_ns) = timed_threads(writers, per_writer, cap, batch, move |buf| {
        // The log rewrote the base offset of the previous append in place; a producer's
        // batch arrives with 0.
        set_base_offset(buf, 0).unwrap();
        let info = log.append(buf, AppendOrigin::Client, TIMESTAMP_MS).unwrap();
        if mode.syncs() {
            log.sync_to(info.last_offset + 1).unwrap();
        }
    });
    let fsyncs = target.syncs.load(Ordering::Relaxed) - syncs_before;
    measure(elapsed, latencies_ns, batch.len(), fsyncs)
}

/// Shared state of the raw group commit: bytes written and bytes known durable.
#[derive(Default)]
struct RawGroup {
    written: u64,
    durable: u64,
    syncing: bool,
    fsyncs: u64,
}

/// The raw limit: one file written sequentially with plain `write` calls (a mutex orders
/// concurrent writers); when syncing, each writer waits for an fdatasync covering its
/// bytes, and whoever finds none running starts one for everything written so far. With
/// one writer that is write + fdatasync per batch; with 8 it is the least code that
/// gives group commit, with nothing else in the way.
struct RawTarget {
    path: PathBuf,
    file: Arc<Mutex<File>>,
    sync_handle: Arc<File>,
    state: Arc<(Mutex<RawGroup>, Condvar)>,
}

fn open_raw(path: PathBuf) -> RawTarget {
    let file = File::create(&path).unwrap();
    let sync_handle = Arc::new(file.try_clone().unwrap());
    RawTarget {
        path,
        file: Arc::new(Mutex::new(file)),
        sync_handle,
        state: Arc::new((Mutex::new(RawGroup::default()), Condvar::new())),
    }
}

fn raw_slice(target: &RawTarget, mode: Mode, batch: &[u8], bytes: u64, cap: Duration) -> Measure {
    let writers = mode.writers();
    let per_writer = (bytes / batch.len() as u64 / writers as u64).max(1);
    let fsyncs_before = target.state.0.lock().unwrap().fsyncs;
    let (file, sync_handle, state) = (
        Arc::clone(&target.file),
        Arc::clone(&target.sync_handle),
        Arc::clone(&target.state),
    );
    let (elapsed, latencies_ns) = timed_threads(writers, per_writer, cap, batch, move |buf| {
        let end = {
            let mut f = file.lock().unwrap();
            f.write_all(buf).unwrap();
            let mut s = state.0.lock().unwrap();
            s.written += buf.len() as u64;
            s.written
        };
        if mode.syncs() {
            raw_group_commit(&state, &sync_handle, end);
        }
    });
    let fsyncs = target.state.0.lock().unwrap().fsyncs - fsyncs_before;
    measure(elapsed, latencies_ns, batch.len(), fsyncs)
}

fn raw_group_commit(state: &(Mutex<RawGroup>, Condvar), file: &File, end: u64) {
    let mut s = state.0.lock().unwrap();
    while s.durable < end {
        if s.syncing {
            s = state.1.wait(s).unwrap();
            continue;
        }
        s.syncing = true;
        let target = s.written;
        drop(s);
        file.sync_data().unwrap();
        s = state.0.lock().unwrap();
        s.durable = s.durable.max(target);
        s.syncing = false;
        s.fsyncs += 1;
        state.1.notify_all();
    }
}

/// Writes `bytes` to a scratch file and deletes it, unmeasured: whoever first touches
/// fresh memory for the page cache pays for it (in a VM the host backs guest pages on
/// first touch), so the measured runs then reuse the pages freed here.
fn warm_up(dir: &Path, batch: &[u8], bytes: u64) {
    let path = dir.join("warm-up.bin");
    let mut file = File::create(&path).unwrap();
    for _ in 0..bytes / batch.len() as u64 {
        file.write_all(batch).unwrap();
    }
    drop(file);
    std::fs::remove_file(&path).unwrap();
}

struct Row {
    case: String,
    batch_bytes: usize,
    log: Measure,
    raw: Measure,
}

fn run_case(settings: &Settings, mode: Mode, target_bytes: usize, index: usize) -> Row {
    let batch = build_batch(target_bytes);
    let total = if mode.syncs() {
        settings.sync_bytes.min(settings.throughput_bytes)
    } else {
        settings.throughput_bytes
    };
    let case_dir = settings.dir.join(format!("case-{index}"));
    std::fs::create_dir_all(&case_dir).unwrap();
    if !mode.syncs() {
        warm_up(&case_dir, &batch, 2 * total);
    }
    let log_target = open_log(&case_dir.join("log-0"), mode);
    let raw_target = open_raw(case_dir.join("raw.bin"));
    let (mut log, mut raw) = (Measure::default(), Measure::default());
    let slice_cap = settings.time_cap / SLICES as u32;
    for _ in 0..SLICES {
        log.add(log_slice(
            &log_target,
            mode,
            &batch,
            total / SLICES,
            slice_cap,
        ));
        raw.add(raw_slice(
            &raw_target,
            mode,
            &batch,
            total / SLICES,
            slice_cap,
        ));
    }
    drop(log_target);
    std::fs::remove_file(&raw_target.path).unwrap();
    std::fs::remove_dir_all(&case_dir).unwrap();
    Row {
        case: mode.name().to_string(),
        batch_bytes: batch.len(),
        log,
        raw,
    }
}

fn print_header() {
    println!(
        "{:<11} {:>8} {:>9} {:>9} {:>6} {:>9} {:>9} {:>9} {:>8} {:>9} {:>7} {:>8}",
        "case",
        "batch B",
        "MB/s",
        "raw MB/s",
        "ratio",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "raw p50",
        "MiB done",
        "b/fsync",
        "raw b/fs"
    );
}

fn print_row(row: &mut Row) {
    let ratio = row.log.mb_per_s() / row.raw.mb_per_s();
    let per_fsync = |m: &Measure| {
        if m.fsyncs == 0 {
            "-".to_string()
        } else {
            format!("{:.2}", m.batches as f64 / m.fsyncs as f64)
        }
    };
    println!(
        "{:<11} {:>8} {:>9.1} {:>9.1} {:>6.2} {:>9.1} {:>9.1} {:>9.1} {:>8.1} {:>9.1} {:>7} {:>8}",
        row.case,
        row.batch_bytes,
        row.log.mb_per_s(),
        row.raw.mb_per_s(),
        ratio,
        row.log.percentile_us(0.50),
        row.log.percentile_us(0.99),
        row.log.percentile_us(0.999),
        row.raw.percentile_us(0.50),
        row.log.bytes as f64 / (1024.0 * 1024.0),
        per_fsync(&row.log),
        per_fsync(&row.raw)
    );
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let base_dir = std::env::var("STROM_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base_dir).unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("strom-log-bench-")
        .tempdir_in(&base_dir)
        .unwrap();
    let settings = if benching {
        Settings {
            throughput_bytes: env_u64("STROM_BENCH_MIB", 512) << 20,
            sync_bytes: env_u64("STROM_BENCH_SYNC_MIB", 256) << 20,
            time_cap: Duration::from_secs(env_u64("STROM_BENCH_SECONDS", 15)),
            dir: tmp.path().to_path_buf(),
        }
    } else {
        Settings {
            throughput_bytes: 4 << 20,
            sync_bytes: 1 << 20,
            time_cap: Duration::from_secs(2),
            dir: tmp.path().to_path_buf(),
        }
    };
    println!(
        "strom-log append benchmark: {} MiB per throughput case, sync cases capped at {} MiB, \
         {:?} per measurement, in {}",
        settings.throughput_bytes >> 20,
        settings.sync_bytes >> 20,
        settings.time_cap,
        settings.dir.display()
    );
    let filter = std::env::var("STROM_BENCH_FILTER").ok();
    print_header();
    let mut index = 0;
    for mode in [Mode::PageCache, Mode::Sync, Mode::SyncGroup] {
        for target in [1024, 16 * 1024, 1024 * 1024] {
            let name = format!("{} {target}", mode.name());
            if !filter.as_deref().is_none_or(|f| name.contains(f)) {
                continue;
            }
            let mut row = run_case(&settings, mode, target, index);
            print_row(&mut row);
            index += 1;
        }
    }
    print_validation_speed(settings.throughput_bytes);
}

/// What the validation every append does (header checks and CRC-32C, in memory) costs on
/// its own: a ceiling for the page-cache cases that the raw `write` does not have.
fn print_validation_speed(total_bytes: u64) {
    let limits = ValidateLimits::default();
    for target in [1024, 16 * 1024, 1024 * 1024] {
        let batch = build_batch(target);
        let rounds = (total_bytes / batch.len() as u64).max(1);
        let start = Instant::now();
        for _ in 0..rounds {
            validate_client_batch(std::hint::black_box(&batch), &limits).unwrap();
        }
        let elapsed = start.elapsed();
        let mb_per_s = (rounds * batch.len() as u64) as f64 / elapsed.as_secs_f64() / 1e6;
        println!(
            "validation alone (validate_client_batch), {}-byte batches: {mb_per_s:.0} MB/s",
            batch.len()
        );
    }
}
