//! What validating every record costs, per codec: the record walk (`walk_records`, what the
//! produce path runs on every batch), next to the header-and-CRC validation it adds to
//! (`validate_client_batch`) and to decoding the records into values (`records`, what the
//! key check and the cleaner did before).
//!
//! `cargo bench -p strom-records --bench walk` runs every case on one thread. Batch shapes:
//! `typical` (1,000 records of an 8-byte key, a 100-byte JSON-like value and one header:
//! about 140 KB of records, as a producer's batch), `small` (10 such records, 1.4 KB) and
//! `headers` (the worst case per byte: one record of 1 million empty headers, 2 MB). For
//! each: throughput per CPU-second in MB (10^6 bytes) of records walked (decompressed) and
//! of batch bytes as they arrive, CPU seconds per GB of records, all from the thread's own
//! CPU time (`CLOCK_THREAD_CPUTIME_ID`, so other load on a shared machine does not count),
//! and the wall-clock MB/s of records for reference. Each figure is the best of
//! `STROM_BENCH_REPEATS` (default 5) runs of `STROM_BENCH_MIB` (default 256) MiB of records;
//! `STROM_BENCH_FILTER` runs only the cases whose `"<shape> <codec>"` contains it. Run
//! without `--bench` (e.g. by `cargo test --benches`) it does a tiny smoke run instead.

use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_records::{
    records, validate_client_batch, walk_records, BatchBuilder, Compression, DecodeLimits, Header,
    RecordsError, ValidateLimits, WalkOptions,
};

const TIMESTAMP_MS: i64 = 1_700_000_000_000;

struct Shape {
    name: &'static str,
    records: usize,
    headers_per_record: usize,
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "typical",
        records: 1000,
        headers_per_record: 1,
    },
    Shape {
        name: "small",
        records: 10,
        headers_per_record: 1,
    },
    Shape {
        name: "headers",
        records: 1,
        headers_per_record: 1_000_000,
    },
];

fn build(shape: &Shape, codec: Compression) -> (Vec<u8>, usize) {
    let mut builder = BatchBuilder::new(0, TIMESTAMP_MS).compression(codec);
    for i in 0..shape.records {
        let (value, headers) = if shape.headers_per_record == 1 {
            let value = format!(
                r#"{{"user":{},"event":"page_view","path":"/items/{}","ms":{}}}"#,
                i % 97,
                (i * 7919) % 1000,
                TIMESTAMP_MS + i as i64
            );
            let value = format!("{value:<100}");
            let header = Header::new("trace", Some(Bytes::from(format!("{i:016x}"))));
            (Bytes::from(value), vec![header])
        } else {
            let headers = (0..shape.headers_per_record)
                .map(|_| Header::new(Bytes::new(), None))
                .collect();
            (Bytes::from_static(b"v"), headers)
        };
        builder
            .append(
                TIMESTAMP_MS + i as i64,
                Some(Bytes::from(format!("user{:04}", i % 97))),
                Some(value),
                headers,
            )
            .unwrap();
    }
    let batch = builder.build().unwrap();
    let plain = walk_records(
        &batch,
        &DecodeLimits::default(),
        WalkOptions::CLIENT,
        |_, _| Ok::<_, RecordsError>(()),
    )
    .unwrap()
    .plain_bytes;
    (batch, plain)
}

/// The calling thread's CPU time so far.
fn thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Best wall and CPU time of `repeats` runs of `rounds` calls.
fn measure(repeats: usize, rounds: usize, mut work: impl FnMut()) -> (Duration, Duration) {
    let mut best = (Duration::MAX, Duration::MAX);
    for _ in 0..repeats {
        let (wall, cpu) = (Instant::now(), thread_cpu());
        for _ in 0..rounds {
            work();
        }
        best.0 = best.0.min(wall.elapsed());
        best.1 = best.1.min(thread_cpu().saturating_sub(cpu));
    }
    best
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let env = |key: &str, default: usize| {
        std::env::var(key)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (total_bytes, repeats) = if benching {
        (
            env("STROM_BENCH_MIB", 256) << 20,
            env("STROM_BENCH_REPEATS", 5),
        )
    } else {
        (1 << 20, 1)
    };
    let limits = DecodeLimits::default();
    let validate_limits = ValidateLimits {
        batch_bytes_max: usize::MAX,
    };
    println!(
        "{:<8} {:<7} {:>9} {:>7} {:<21} {:>11} {:>11} {:>8} {:>9}",
        "shape",
        "codec",
        "batch B",
        "ratio",
        "operation",
        "rec MB/cpu",
        "wire MB/cpu",
        "CPU-s/GB",
        "wall MB/s"
    );
    let filter = std::env::var("STROM_BENCH_FILTER").ok();
    for shape in &SHAPES {
        for codec in Compression::ALL {
            let case = format!("{} {}", shape.name, codec.name());
            if !filter.as_deref().is_none_or(|f| case.contains(f)) {
                continue;
            }
            let (batch, plain_bytes) = build(shape, codec);
            let rounds = (total_bytes / plain_bytes).max(1);
            let walk = || {
                walk_records(
                    std::hint::black_box(&batch),
                    &limits,
                    WalkOptions::CLIENT,
                    |_, _| Ok::<_, RecordsError>(()),
                )
                .unwrap();
            };
            let crc = || {
                validate_client_batch(std::hint::black_box(&batch), &validate_limits).unwrap();
            };
            let decode = || {
                records(std::hint::black_box(&batch), &limits).unwrap();
            };
            let cases: [(&str, &dyn Fn()); 3] = [
                ("walk_records", &walk),
                ("validate (header+CRC)", &crc),
                ("records (decode)", &decode),
            ];
            for (operation, work) in cases {
                // Decoding a million headers into values is the cost this work removed;
                // a few rounds show it.
                let rounds = if operation.starts_with("records") && shape.name == "headers" {
                    rounds.min(8)
                } else {
                    rounds
                };
                let (wall, cpu) = measure(repeats, rounds, work);
                let plain_total = (plain_bytes * rounds) as f64;
                let wire_total = (batch.len() * rounds) as f64;
                let cpu_s = cpu.as_secs_f64().max(1e-9);
                println!(
                    "{:<8} {:<7} {:>9} {:>7.1} {:<21} {:>11.0} {:>11.0} {:>8.2} {:>9.0}",
                    shape.name,
                    codec.name(),
                    batch.len(),
                    plain_bytes as f64 / batch.len() as f64,
                    operation,
                    plain_total / cpu_s / 1e6,
                    wire_total / cpu_s / 1e6,
                    cpu_s / (plain_total / 1e9),
                    plain_total / wall.as_secs_f64() / 1e6,
                );
            }
        }
    }
}
