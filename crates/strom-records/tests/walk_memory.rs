//! The header bomb: a few kilobytes of zstd holding one record with 30 million empty headers
//! (60 MB once decompressed). Walking it must allocate nothing in proportion to the headers:
//! this test binary counts every allocation the Rust side makes (the codecs' C state, zstd's
//! window, is outside that count and bounded by the frame's window size) and bounds the peak
//! during the walk, for every codec. It also prints how long each walk took.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use strom_records::*;

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

/// Bytes the walk may allocate at its peak: its 64 KiB window, a codec's Rust-side state
/// (lz4 block buffers, a 32 KiB snappy block, miniz's inflate state), with room to spare.
/// The records hold 60 MB: a walk that kept one object per header would take ~2 GB.
const WALK_PEAK_BYTES_MAX: usize = 1024 * 1024;

fn varint(out: &mut Vec<u8>, value: i32) {
    let mut zigzag = ((value << 1) ^ (value >> 31)) as u32;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// One record, key "bomb", value null, `headers` headers with an empty key and null value.
fn bomb_section(headers: i32) -> Vec<u8> {
    let mut body = vec![0u8, 0, 0]; // attributes, timestamp delta, offset delta
    varint(&mut body, 4);
    body.extend_from_slice(b"bomb");
    varint(&mut body, -1);
    varint(&mut body, headers);
    body.reserve(2 * headers as usize);
    for _ in 0..headers {
        body.extend_from_slice(&[0x00, 0x01]); // key length 0, value length -1
    }
    let mut out = Vec::with_capacity(body.len() + 5);
    varint(&mut out, body.len() as i32);
    out.extend_from_slice(&body);
    out
}

fn template() -> BatchHeader {
    BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: -1,
        magic: MAGIC_V2,
        crc: 0,
        attributes: 0,
        last_offset_delta: 0,
        base_timestamp: 1_700_000_000_000,
        max_timestamp: 1_700_000_000_000,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records_count: 1,
    }
}

fn walk_peak(batch: &[u8]) -> (usize, WalkSummary, std::time::Duration) {
    let start = Instant::now();
    PEAK_BYTES.store(LIVE_BYTES.load(Ordering::SeqCst), Ordering::SeqCst);
    let before = LIVE_BYTES.load(Ordering::SeqCst);
    let mut headers_seen = 0;
    let summary = walk_records(
        batch,
        &DecodeLimits::default(),
        WalkOptions::CLIENT.with_keys(true),
        |info, key| {
            assert_eq!(key, Some(&b"bomb"[..]));
            headers_seen += info.header_count;
            Ok::<_, RecordsError>(())
        },
    )
    .unwrap();
    let peak = PEAK_BYTES.load(Ordering::SeqCst) - before;
    assert_eq!(summary.records, 1);
    (peak, summary, start.elapsed())
}

#[test]
fn thirty_million_empty_headers_take_no_memory_per_header() {
    let headers = 30_000_000;
    let section = bomb_section(headers);
    let batch = frame_records_section(&template(), Compression::Zstd, &section).unwrap();
    let plain_bytes = section.len();
    drop(section);
    assert!(batch.len() < 10_000, "the bomb is {} bytes", batch.len());
    validate_client_batch(&batch, &ValidateLimits::default()).unwrap();
    let (peak, summary, took) = walk_peak(&batch);
    eprintln!(
        "zstd bomb: {} bytes -> {} plain bytes, walked in {took:?}, peak Rust allocation {peak} bytes",
        batch.len(),
        summary.plain_bytes
    );
    assert_eq!(summary.plain_bytes, plain_bytes);
    assert!(peak <= WALK_PEAK_BYTES_MAX, "peak {peak} bytes");

    // Compaction's rebuild keeps it bounded too: dropping the record allocates the header
    // only, keeping it copies the compressed output.
    PEAK_BYTES.store(LIVE_BYTES.load(Ordering::SeqCst), Ordering::SeqCst);
    let before = LIVE_BYTES.load(Ordering::SeqCst);
    let dropped = retain_records(&batch, &DecodeLimits::default(), Rebuild::default(), |_| {
        false
    })
    .unwrap();
    assert_eq!(dropped.records_kept, 0);
    let peak = PEAK_BYTES.load(Ordering::SeqCst) - before;
    assert!(peak <= WALK_PEAK_BYTES_MAX, "retain peak {peak} bytes");
}

#[test]
fn every_codec_walks_headers_in_constant_memory() {
    let headers = 3_000_000;
    let section = bomb_section(headers);
    for codec in Compression::ALL {
        let batch = frame_records_section(&template(), codec, &section).unwrap();
        let (peak, summary, took) = walk_peak(&batch);
        eprintln!(
            "{codec:?}: {} bytes -> {} plain bytes, walked in {took:?}, peak Rust allocation {peak} bytes",
            batch.len(),
            summary.plain_bytes
        );
        assert_eq!(summary.plain_bytes, section.len());
        assert!(peak <= WALK_PEAK_BYTES_MAX, "{codec:?}: peak {peak} bytes");
    }
}
