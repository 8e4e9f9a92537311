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
    pub write_fsync_mb_per_s: Option<f64>,
    /// Median time of one write + fdatasync, milliseconds.
    pub write_fsync_p50_ms: Option<f64>,
    pub tcp_loopback_mb_per_s: Option<f64>,
}

/// Writes up to `total_bytes` in `batch_bytes` writes to a fresh file in `dir`, calling
/// `fdatasync` after each write when `fsync`; returns MB/s and the median batch time.
pub fn sequential_write(
    dir: &Path,
    batch_bytes: u64,
    total_bytes: u64,
    fsync: bool,
) -> anyhow::Result<(f64, f64)> {
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
    drop(file);
    let _ = std::fs::remove_file(&path);
    times.sort();
    let p50_ms = times
        .get(times.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3);
    Ok((written as f64 / 1e6 / seconds.max(1e-9), p50_ms))
}

/// One TCP stream over loopback: a writer thread sends 1 MiB writes, this thread reads.
pub fn tcp_loopback() -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut stream = TcpStream::connect(addr)?;
        let chunk = vec![0xa5u8; TCP_CHUNK_BYTES];
        let started = Instant::now();
        let mut sent = 0u64;
        while sent < TCP_BYTES_MAX && started.elapsed() < LIMIT_SECONDS_MAX {
            stream.write_all(&chunk)?;
            sent += chunk.len() as u64;
        }
        Ok(())
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
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the TCP writer panicked"))??;
    Ok(received as f64 / 1e6 / seconds.max(1e-9))
}

/// Measures every limit; a failed measurement is reported and left empty.
pub fn measure(dir: &Path, batch_bytes: u64, total_bytes: u64) -> Limits {
    let mut limits = Limits {
        write_batch_bytes: batch_bytes,
        ..Limits::default()
    };
    match sequential_write(dir, batch_bytes, total_bytes, false) {
        Ok((mb_per_s, _)) => limits.write_mb_per_s = Some(mb_per_s),
        Err(error) => eprintln!("write limit: {error:#}"),
    }
    match sequential_write(dir, batch_bytes, total_bytes, true) {
        Ok((mb_per_s, p50_ms)) => {
            limits.write_fsync_mb_per_s = Some(mb_per_s);
            limits.write_fsync_p50_ms = Some(p50_ms);
        }
        Err(error) => eprintln!("write+fsync limit: {error:#}"),
    }
    match tcp_loopback() {
        Ok(mb_per_s) => limits.tcp_loopback_mb_per_s = Some(mb_per_s),
        Err(error) => eprintln!("TCP limit: {error:#}"),
    }
    limits
}

impl Limits {
    pub fn print(&self) {
        let show = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.1}"));
        println!(
            "limits: write {} MB/s, write+fdatasync {} MB/s (p50 {} ms) in {} B batches; TCP loopback {} MB/s",
            show(self.write_mb_per_s),
            show(self.write_fsync_mb_per_s),
            show(self.write_fsync_p50_ms),
            self.write_batch_bytes,
            show(self.tcp_loopback_mb_per_s)
        );
    }
}
