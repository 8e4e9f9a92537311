//! Hostile input: lengths and counts that claim far more than the frame holds must fail
//! without a large allocation. A counting global allocator measures each thread's peak.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use strom_protocol::messages::ApiKey;
use strom_protocol::{decode_request, ApiVersionTable, Incoming};

struct CountingAllocator;

thread_local! {
    static LIVE_BYTES: Cell<usize> = const { Cell::new(0) };
    static PEAK_BYTES: Cell<usize> = const { Cell::new(0) };
}

fn record_alloc(size: usize) {
    let _ = LIVE_BYTES.try_with(|live| {
        let now = live.get().saturating_add(size);
        live.set(now);
        let _ = PEAK_BYTES.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn record_dealloc(size: usize) {
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get().saturating_sub(size)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters move.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record_alloc(layout.size());
        // SAFETY: same layout as the caller's, which upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record_alloc(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record_dealloc(layout.size());
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record_dealloc(layout.size());
        record_alloc(new_size);
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Peak bytes allocated by `f` on this thread, above what was live when it started.
fn peak_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE_BYTES.with(Cell::get);
    PEAK_BYTES.with(|peak| peak.set(start));
    let value = f();
    let peak = PEAK_BYTES.with(Cell::get);
    (value, peak - start)
}

/// A decode may allocate the decoded values, which never exceed a small multiple of the
/// input; anything near a claimed length (gigabytes) fails this by far.
const PEAK_BYTES_MAX: usize = 256 * 1024;
const DECODE_TIME_MAX: Duration = Duration::from_secs(2);

fn frame(api_key: ApiKey, api_version: i16, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(api_key as i16);
    buf.put_i16(api_version);
    buf.put_i32(1);
    buf.put_i16(0);
    if api_key.request_header_version(api_version) >= 2 {
        buf.put_u8(0);
    }
    buf.put_slice(body);
    buf.freeze()
}

/// Bodies whose lengths claim i32::MAX / u32::MAX elements or bytes, at the first field and
/// behind a few levels of nesting.
fn hostile_bodies() -> Vec<Vec<u8>> {
    let max_i32 = [0x7f, 0xff, 0xff, 0xff];
    let max_varint = [0xff, 0xff, 0xff, 0xff, 0x0f];
    let mut bodies = vec![max_i32.to_vec(), max_varint.to_vec()];
    for depth in 1..6 {
        // Arrays of one element nesting down to a huge claim.
        let mut nested = [0, 0, 0, 1].repeat(depth);
        nested.extend_from_slice(&max_i32);
        bodies.push(nested);
        let mut compact = vec![2; depth];
        compact.extend_from_slice(&max_varint);
        bodies.push(compact);
        bodies.push(max_i32.repeat(depth + 1));
        bodies.push(max_varint.repeat(depth + 1));
        // A short string or a zero then a huge claim, to reach the second field.
        let mut second = [0, 1, b'x'].repeat(depth);
        second.extend_from_slice(&max_i32);
        bodies.push(second);
        let mut second_compact = [2, b'x'].repeat(depth);
        second_compact.extend_from_slice(&max_varint);
        bodies.push(second_compact);
    }
    bodies
}

#[test]
fn four_byte_body_claiming_i32_max_elements_fails_small_and_fast() {
    let table = ApiVersionTable::new([ApiKey::Produce, ApiKey::Metadata, ApiKey::Fetch]);
    for (api_key, api_version) in [
        (ApiKey::Produce, 3),
        (ApiKey::Metadata, 1),
        (ApiKey::Fetch, 4),
    ] {
        let request = frame(api_key, api_version, &[0x7f, 0xff, 0xff, 0xff]);
        let (result, peak_bytes) = peak_allocation(|| decode_request(&request, &table));
        assert!(result.is_err(), "{api_key:?} v{api_version}: {result:?}");
        assert!(
            peak_bytes < PEAK_BYTES_MAX,
            "{api_key:?} v{api_version}: {peak_bytes} bytes"
        );
    }
}

#[test]
fn huge_claims_never_allocate_much_for_any_api_or_version() {
    let table = ApiVersionTable::new(ApiKey::iter());
    let bodies = hostile_bodies();
    let mut decoded_count = 0usize;
    let mut refused_count = 0usize;
    for api_key in ApiKey::iter() {
        let range = api_key.valid_versions();
        for api_version in range.min..=range.max {
            for body in &bodies {
                let request = frame(api_key, api_version, body);
                let started = Instant::now();
                let (result, peak_bytes) = peak_allocation(|| decode_request(&request, &table));
                assert!(
                    peak_bytes < PEAK_BYTES_MAX,
                    "{api_key:?} v{api_version} body {body:?}: {peak_bytes} bytes"
                );
                assert!(
                    started.elapsed() < DECODE_TIME_MAX,
                    "{api_key:?} v{api_version} slow"
                );
                match result {
                    Ok(Incoming::Request(_)) => decoded_count += 1,
                    Ok(Incoming::UnsupportedApiVersions { .. }) => {}
                    Err(_) => refused_count += 1,
                }
            }
        }
    }
    // Nearly all of these must be refused; the few that decode have tiny bodies.
    assert!(
        refused_count > 10 * decoded_count,
        "{refused_count} refused, {decoded_count} decoded"
    );
}

#[test]
fn a_frame_of_many_tiny_elements_allocates_in_proportion_to_its_size() {
    // Metadata v1: an array of topic names, each the empty string (2 bytes on the wire).
    let topic_count = 10_000usize;
    let mut body = Vec::new();
    body.extend_from_slice(&(topic_count as i32).to_be_bytes());
    body.extend(std::iter::repeat_n([0u8, 0], topic_count).flatten());
    let request = frame(ApiKey::Metadata, 1, &body);
    let table = ApiVersionTable::new([ApiKey::Metadata]);
    let (result, peak_bytes) = peak_allocation(|| decode_request(&request, &table));
    assert!(result.is_ok(), "{result:?}");
    // The allocator does count: ten thousand decoded topics take more than their wire bytes.
    assert!(peak_bytes > body.len(), "{peak_bytes} bytes counted");
    // Each decoded topic is a few dozen bytes of struct; bounded by the input, not a claim.
    assert!(
        peak_bytes < 200 * body.len(),
        "{peak_bytes} bytes for a {}-byte body",
        body.len()
    );
}
