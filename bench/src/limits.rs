//! The machine's limits, measured in the same run as the workloads they bound: sequential
//! writes of the same bytes to a file in the broker's data directory, without and with an
//! `fdatasync` per batch, and one loopback TCP stream.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

/// The most bytes a no-fsync write limit writes.
const WRITE_BYTES_MAX: u64 = 1 << 30;
/// The longest a limit measurement runs.
const LIMIT_SECONDS_MAX: Duration = Duration::from_secs(5);
/// Bytes per write(2) of the TCP stream.
const TCP_CHUNK_BYTES: usize = 1 << 20;
/// Bytes the TCP stream moves at most.
const TCP_BYTES_MAX: u64 = 4 << 30;

/// The limits of one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Limits {
    /// The batch size the disk limits wrote in (the client's average produce batch).
    pub write_batch_bytes: u64,
    pub write_mb_per_s: Option<f64>,
    /// CPU seconds (user + system, of the writing thread) per 10^9 bytes of that plain
    /// write: what the kernel's copy into the page cache costs on this machine now, the
    /// floor for any broker's CPU per GB ingested.
    pub write_cpu_s_per_gb: Option<f64>,
    pub write_fsync_mb_per_s: Option<f64>,
    /// Median time of one write + fdatasync, milliseconds.
    pub write_fsync_p50_ms: Option<f64>,
    /// Its 99th and 99.9th percentiles: the disk's own tail, which bounds the tail latency
    /// of anything that waits for an fsync (sync-on-commit acknowledgements and reads).
    pub write_fsync_p99_ms: Option<f64>,
    pub write_fsync_p999_ms: Option<f64>,
    pub tcp_loopback_mb_per_s: Option<f64>,
    /// CPU seconds of the sending thread per 10^9 bytes of that stream (on loopback the
    /// sender also runs most of the receive path): the floor for a broker's CPU per GB sent
    /// to consumers.
    pub tcp_loopback_cpu_s_per_gb: Option<f64>,
}

/// Writes up to `total_bytes` in `batch_bytes` writes to a fresh file in `dir`, calling
/// `fdatasync` after each write when `fsync`; returns MB/s and the batch times.
pub fn sequential_write(
    dir: &Path,
    batch_bytes: u64,
    total_bytes: u64,
    fsync: bool,
) -> anyhow::Result<(f64, BatchTimes)> {
    let path = dir.join(format!("strom-bench-limit-{}", std::process::id()));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let batch = vec![0x5au8; batch_bytes.max(1) as usize];
    let total_bytes = total_bytes.min(WRITE_BYTES_MAX);
    let started = Instant::now();
    let cpu_started = thread_cpu_s();
    let mut written = 0u64;
    let mut times = Vec::new();
    while written < total_bytes && started.elapsed() < LIMIT_SECONDS_MAX {
        let one = Instant::now();
        file.write_all(&batch)?;
        if fsync {
            file.sync_data()?;
        }
        times.push(one.elapsed());
        written += batch.len() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_s = thread_cpu_s() - cpu_started;
    drop(file);
    let _ = std::fs::remove_file(&path);
    times.sort();
    let at = |quantile: f64| {
        let index = ((times.len() as f64 * quantile) as usize).min(times.len().saturating_sub(1));
        times.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let batch_times = BatchTimes {
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
        cpu_s_per_gb: cpu_s / (written.max(1) as f64 / 1e9),
    };
    Ok((written as f64 / 1e6 / seconds.max(1e-9), batch_times))
}

/// Percentiles of the time of one batch (write, and fdatasync if asked), milliseconds, and
/// the writing thread's CPU seconds per 10^9 bytes.
pub struct BatchTimes {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub cpu_s_per_gb: f64,
}

/// User + system CPU seconds of the calling thread so far.
fn thread_cpu_s() -> f64 {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage for the call to fill.
    let done = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    if done != 0 {
        return 0.0;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// One TCP stream over loopback: a writer thread sends 1 MiB writes, this thread reads.
/// Returns MB/s and the writer's CPU seconds per 10^9 bytes.
pub fn tcp_loopback() -> anyhow::Result<(f64, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let writer = std::thread::spawn(move || -> std::io::Result<f64> {
        let mut stream = TcpStream::connect(addr)?;
        let chunk = vec![0xa5u8; TCP_CHUNK_BYTES];
        let started = Instant::now();
        let cpu_started = thread_cpu_s();
        let mut sent = 0u64;
        while sent < TCP_BYTES_MAX && started.elapsed() < LIMIT_SECONDS_MAX {
            stream.write_all(&chunk)?;
            sent += chunk.len() as u64;
        }
        Ok((thread_cpu_s() - cpu_started) / (sent.max(1) as f64 / 1e9))
    });
    let (mut stream, _) = listener.accept()?;
    let mut buf = vec![0u8; TCP_CHUNK_BYTES];
    let started = Instant::now();
    let mut received = 0u64;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        received += n as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_s_per_gb = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the TCP writer panicked"))??;
    Ok((received as f64 / 1e6 / seconds.max(1e-9), cpu_s_per_gb))
}

/// Measures every limit; a failed measurement is reported and left empty.
pub fn measure(dir: &Path, batch_bytes: u64, total_bytes: u64) -> Limits {
    let mut limits = Limits {
        write_batch_bytes: batch_bytes,
        ..Limits::default()
    };
    match sequential_write(dir, batch_bytes, total_bytes, false) {
        Ok((mb_per_s, times)) => {
            limits.write_mb_per_s = Some(mb_per_s);
            limits.write_cpu_s_per_gb = Some(times.cpu_s_per_gb);
        }
        Err(error) => eprintln!("write limit: {error:#}"),
    }
    match sequential_write(dir, batch_bytes, total_bytes, true) {
        Ok((mb_per_s, times)) => {
            limits.write_fsync_mb_per_s = Some(mb_per_s);
            limits.write_fsync_p50_ms = Some(times.p50_ms);
            limits.write_fsync_p99_ms = Some(times.p99_ms);
            limits.write_fsync_p999_ms = Some(times.p999_ms);
        }
        Err(error) => eprintln!("write+fsync limit: {error:#}"),
    }
    match tcp_loopback() {
        Ok((mb_per_s, cpu_s_per_gb)) => {
            limits.tcp_loopback_mb_per_s = Some(mb_per_s);
            limits.tcp_loopback_cpu_s_per_gb = Some(cpu_s_per_gb);
        }
        Err(error) => eprintln!("TCP limit: {error:#}"),
    }
    limits
}

impl Limits {
    pub fn print(&self) {
        let show = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.1}"));
        let show2 = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.2}"));
        println!(
            "limits: write {} MB/s ({} CPU-s/GB), write+fdatasync {} MB/s (p50 {} p99 {} p99.9 {} ms) in {} B batches; TCP loopback {} MB/s ({} CPU-s/GB)",
            show(self.write_mb_per_s),
            show2(self.write_cpu_s_per_gb),
            show(self.write_fsync_mb_per_s),
            show2(self.write_fsync_p50_ms),
            show2(self.write_fsync_p99_ms),
            show2(self.write_fsync_p999_ms),
            self.write_batch_bytes,
            show(self.tcp_loopback_mb_per_s),
            show2(self.tcp_loopback_cpu_s_per_gb)
        );
    }
}
