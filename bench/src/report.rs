//! Counters shared by worker threads, the progress line, latency histograms, and the
//! result of a run as a table or as JSON.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms hold, microseconds (longer ones are clamped).
const LATENCY_US_MAX: u64 = 120_000_000;

/// Records and bytes moved so far, updated by workers, read by the progress line.
#[derive(Default)]
pub struct Counters {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
}

impl Counters {
    pub fn add(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// A latency histogram in microseconds, merged from the workers' own.
pub struct Latency {
    merged: Mutex<Histogram<u64>>,
}

impl Latency {
    pub fn new() -> Latency {
        Latency {
            merged: Mutex::new(new_histogram()),
        }
    }

    pub fn merge(&self, other: &Histogram<u64>) {
        let mut merged = self.merged.lock().unwrap_or_else(|e| e.into_inner());
        // Both have the same bounds, so adding cannot fail.
        let _ = merged.add(other);
    }

    pub fn summary(&self) -> Option<LatencySummary> {
        let merged = self.merged.lock().unwrap_or_else(|e| e.into_inner());
        (!merged.is_empty()).then(|| LatencySummary::of(&merged))
    }
}

/// A worker's histogram.
pub fn new_histogram() -> Histogram<u64> {
    // 3 significant digits between 1 µs and 120 s; constant bounds that are valid.
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid constant bounds")
}

/// Records `latency_us` into `histogram`, clamped into its range.
pub fn record_us(histogram: &mut Histogram<u64>, latency_us: u64) {
    let _ = histogram.record(latency_us.clamp(1, LATENCY_US_MAX));
}

/// Percentiles in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub p9999_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> LatencySummary {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            p9999_ms: ms(0.9999),
            max_ms: h.max() as f64 / 1000.0,
        }
    }
}

/// A progress line on stderr once a second until dropped.
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub fn start(label: String, counters: Arc<Counters>, quiet: bool) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = (!quiet).then(|| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut last = (started, 0u64, 0u64);
                while !stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    let now = Instant::now();
                    if now.duration_since(last.0) < Duration::from_secs(1) {
                        continue;
                    }
                    let records = counters.records.load(Ordering::Relaxed);
                    let bytes = counters.bytes.load(Ordering::Relaxed);
                    let secs = now.duration_since(last.0).as_secs_f64();
                    eprint!(
                        "\r{label}: {:6.1} s  {:>12} records  {:>9.1} MB  {:>9.0} rec/s  {:>8.1} MB/s   ",
                        now.duration_since(started).as_secs_f64(),
                        records,
                        bytes as f64 / 1e6,
                        (records - last.1) as f64 / secs,
                        (bytes - last.2) as f64 / 1e6 / secs,
                    );
                    let _ = std::io::stderr().flush();
                    last = (now, records, bytes);
                }
                eprintln!();
            })
        });
        Progress { stop, thread }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One workload's figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkloadResult {
    pub name: String,
    pub records: u64,
    /// Record payload bytes moved (keys none, headers none).
    pub bytes: u64,
    pub seconds: f64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    pub errors: u64,
    /// Producer: send to acknowledgement; end to end: intended send time to consumption.
    pub latency: Option<LatencySummary>,
    /// What the client reported about its produce batches (librdkafka statistics).
    pub produce_batch_bytes_avg: Option<u64>,
    pub produce_batch_records_avg: Option<u64>,
    pub broker_cpu_s: Option<f64>,
    /// Broker CPU seconds per 10^9 payload bytes moved.
    pub broker_cpu_s_per_gb: Option<f64>,
    pub broker_peak_rss_mb: Option<f64>,
    /// CPU seconds of this process (librdkafka and the workers) in the measured part.
    pub client_cpu_s: Option<f64>,
    /// The limit this workload's throughput is compared against, and the ratio.
    pub limit_name: Option<String>,
    pub limit_mb_per_s: Option<f64>,
    pub ratio_to_limit: Option<f64>,
}

impl WorkloadResult {
    pub fn finish(&mut self) {
        if self.seconds > 0.0 {
            self.records_per_s = self.records as f64 / self.seconds;
            self.mb_per_s = self.bytes as f64 / 1e6 / self.seconds;
        }
        if let Some(cpu) = self.broker_cpu_s {
            if self.bytes > 0 {
                self.broker_cpu_s_per_gb = Some(cpu / (self.bytes as f64 / 1e9));
            }
        }
    }

    pub fn compare(&mut self, name: &str, limit_mb_per_s: f64) {
        self.limit_name = Some(name.to_string());
        self.limit_mb_per_s = Some(limit_mb_per_s);
        if limit_mb_per_s > 0.0 {
            self.ratio_to_limit = Some(self.mb_per_s / limit_mb_per_s);
        }
    }

    /// Human-readable lines.
    pub fn print(&self) {
        println!(
            "{:<10} {:>11} records {:>9.1} MB in {:>6.2} s: {:>10.0} rec/s {:>8.1} MB/s  errors {}",
            self.name,
            self.records,
            self.bytes as f64 / 1e6,
            self.seconds,
            self.records_per_s,
            self.mb_per_s,
            self.errors
        );
        if let (Some(name), Some(limit), Some(ratio)) =
            (&self.limit_name, self.limit_mb_per_s, self.ratio_to_limit)
        {
            println!("           limit {name}: {limit:.1} MB/s, ratio {ratio:.2}");
        }
        if let Some(l) = &self.latency {
            println!(
                "           latency ms: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  p99.99 {:.2}  max {:.2}  ({} samples)",
                l.p50_ms, l.p99_ms, l.p999_ms, l.p9999_ms, l.max_ms, l.count
            );
        }
        if let (Some(bytes), Some(records)) =
            (self.produce_batch_bytes_avg, self.produce_batch_records_avg)
        {
            println!("           produce batches: {bytes} B, {records} records on average");
        }
        if let Some(cpu) = self.broker_cpu_s {
            println!(
                "           broker CPU {:.2} s = {:.3} CPU-s/GB (client CPU {}); peak RSS {}",
                cpu,
                self.broker_cpu_s_per_gb.unwrap_or(f64::NAN),
                self.client_cpu_s
                    .map_or("?".to_string(), |s| format!("{s:.2} s")),
                self.broker_peak_rss_mb
                    .map_or("?".to_string(), |mb| format!("{mb:.1} MB"))
            );
        }
    }
}
