//! The cleaner on a header bomb: a compacted log holding a few-kilobyte zstd batch whose
//! one record carries 10 million empty headers (20 MB decompressed), later superseded by a
//! record with the same key. Compaction must remove it without memory in proportion to
//! the headers (decoding them into values took ~64 bytes each: 640 MB here, 1.9 GB for the
//! 30-million-header batch a probe sent). This test binary counts the Rust side's
//! allocations and bounds their peak during the pass.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::{open_in, read_all};
use strom_log::fs::{FileSystem, RealFs};
use strom_log::{AppendOrigin, CleanupPolicy, CompactionLimits, LogConfig};
use strom_records::{
    frame_records_section, walk_records, BatchBuilder, BatchHeader, Compression, DecodeLimits,
    RecordsError, WalkOptions,
};

struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE_BYTES.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK_BYTES.fetch_max(live, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const HEADERS: usize = 10_000_000;
/// The pass's peak above what was live before it: segment reads of a few KiB, a 64 KiB
/// walk window, the key map, indexes. Generous, and 100 times below a decode of the headers.
const PASS_PEAK_BYTES_MAX: usize = 6 * 1024 * 1024;

fn bomb() -> Vec<u8> {
    // attributes, timestamp delta, offset delta, key "bomb", value "v", header count.
    let mut body = vec![0u8, 0, 0, 8, b'b', b'o', b'm', b'b', 2, b'v'];
    let mut count = (HEADERS as u32) << 1;
    while count >= 0x80 {
        body.push((count as u8) | 0x80);
        count >>= 7;
    }
    body.push(count as u8);
    body.reserve(2 * HEADERS);
    for _ in 0..HEADERS {
        body.extend_from_slice(&[0x00, 0x01]);
    }
    let mut section = Vec::new();
    let mut length = (body.len() as u32) << 1;
    while length >= 0x80 {
        section.push((length as u8) | 0x80);
        length >>= 7;
    }
    section.push(length as u8);
    section.extend_from_slice(&body);
    let template = BatchHeader::parse(&keyed("bomb", 0)).unwrap();
    frame_records_section(&template, Compression::Zstd, &section).unwrap()
}

fn keyed(key: &str, timestamp_ms: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(0, timestamp_ms);
    b.append(
        timestamp_ms,
        Some(key.as_bytes().to_vec().into()),
        Some(vec![b'x'; 500].into()),
        Vec::new(),
    )
    .unwrap();
    b.build().unwrap()
}

#[test]
fn the_cleaner_removes_a_header_bomb_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(RealFs);
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        max_message_bytes: 1 << 20,
        ..LogConfig::test_min()
    };
    let log = open_in(fs, dir.path(), config);
    let mut bomb = bomb();
    assert!(bomb.len() < 4096, "the bomb is {} bytes", bomb.len());
    log.append(&mut bomb, AppendOrigin::Client, 0).unwrap();
    // Fillers roll segments; then the bomb's key again, then more fillers so that the
    // segment holding it is cleanable.
    for i in 0..20 {
        let key = if i == 10 {
            "bomb".to_string()
        } else {
            format!("k{i}")
        };
        log.append(&mut keyed(&key, i), AppendOrigin::Client, 0)
            .unwrap();
    }
    log.flush().unwrap();
    log.set_high_watermark(log.log_end_offset());

    let limits = CompactionLimits::default();
    PEAK_BYTES.store(LIVE_BYTES.load(Ordering::SeqCst), Ordering::SeqCst);
    let before = LIVE_BYTES.load(Ordering::SeqCst);
    let started = Instant::now();
    let report = log.compact(100, &limits).unwrap();
    let peak = PEAK_BYTES.load(Ordering::SeqCst) - before;
    eprintln!(
        "compaction pass {report:?} in {:?}, peak Rust allocation {peak} bytes",
        started.elapsed()
    );
    assert!(report.records_removed >= 1, "{report:?}");
    assert!(peak <= PASS_PEAK_BYTES_MAX, "peak {peak} bytes");

    // Offset 0 (the bomb) is gone; the later "bomb" record stays.
    let mut bomb_offsets = Vec::new();
    for (_, batch) in read_all(&log) {
        let header = BatchHeader::parse(&batch).unwrap();
        walk_records(
            &batch,
            &DecodeLimits::default(),
            WalkOptions::STORED.with_keys(true),
            |info, key| {
                assert!(info.header_count < 10, "a header-heavy record is left");
                if key == Some(&b"bomb"[..]) {
                    bomb_offsets.push(info.offset(&header));
                }
                Ok::<_, RecordsError>(())
            },
        )
        .unwrap();
    }
    assert_eq!(bomb_offsets, vec![11]);
}
