//! Readers run concurrently with appends, rolls, flushes and retention: every range they
//! get holds whole, valid batches with the offsets asked for.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{batch, open_sim};
use strom_log::fs::SimFs;
use strom_log::{AppendOrigin, CleanupPolicy, CompactionLimits, Durability, LogConfig};
use strom_records::{batches, validate, ValidateLimits};

#[test]
fn readers_never_see_partial_batches() {
    run(LogConfig {
        retention_bytes: 20_000,
        durability: Durability::SyncOnCommit,
        ..LogConfig::test_min()
    });
}

#[test]
fn readers_run_alongside_compaction() {
    // Compaction keeps three keys' worth of bytes (merging segments): a lower size bound
    // makes sure retention still runs alongside it.
    run(LogConfig {
        retention_bytes: 6_000,
        cleanup_policy: CleanupPolicy::CompactDelete,
        ..LogConfig::test_min()
    });
}

fn run(config: LogConfig) {
    let retention_bytes = config.retention_bytes as u64;
    let fs = SimFs::new();
    let log = Arc::new(open_sim(&fs, config, 0).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3u64)
        .map(|seed| {
            let log = Arc::clone(&log);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut rng = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                let mut reads = 0u64;
                while !done.load(Ordering::Acquire) && reads < 200_000 {
                    rng = rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let start = log.log_start_offset();
                    let end = log.high_watermark();
                    if end <= start {
                        continue;
                    }
                    let offset = start + (rng >> 33) as i64 % (end - start);
                    let info = match log.read(offset, 1 + (rng % 5000), end) {
                        Ok(info) => info,
                        // Retention may move the start past `offset` meanwhile.
                        Err(e) if e.kafka_error_code() == 1 => continue,
                        Err(e) => panic!("read {offset}: {e}"),
                    };
                    let Some(range) = info.range else { continue };
                    let bytes = range.read_bytes().unwrap();
                    let mut last = None;
                    for item in batches(&bytes) {
                        let (header, r) = item.expect("whole batches");
                        validate(&bytes[r], &ValidateLimits::default()).unwrap();
                        last = Some(header.last_offset());
                    }
                    let last = last.expect("at least one batch");
                    assert!(
                        last >= offset && last < end,
                        "offset {offset} last {last} end {end}"
                    );
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for i in 0..1500i64 {
        let info = log
            .append(
                &mut batch(1 + (i % 3) as usize, 100, i),
                AppendOrigin::Client,
                i,
            )
            .unwrap();
        if i % 4 == 0 {
            log.sync_to(info.last_offset + 1).unwrap();
        }
        log.set_high_watermark(info.last_offset + 1);
        if i % 50 == 0 {
            log.maintain(i).unwrap();
            log.compact(i, &CompactionLimits::default()).unwrap();
        }
    }
    done.store(true, Ordering::Release);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
    log.maintain(2000).unwrap();
    assert!(log.log_start_offset() > 0, "retention ran");
    assert!(log.size_bytes() <= retention_bytes + 4096);
}
