//! Fuzz target: whole request frames (size prefix, header, body) through the frame decoder
//! and request decoding, then the error response for whatever decoded. Must never panic and
//! never allocate by a claimed length.
#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use strom_protocol::messages::{ApiKey, ResponseKind};
use strom_protocol::{
    api_versions, decode_request, encode_response, error_response, ApiVersionTable, ErrorCode,
    FrameDecoder, Incoming, ResponseTarget,
};

/// Small, so that the size-prefix checks are reached often.
const FRAME_BYTES_MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let table = ApiVersionTable::new(ApiKey::iter());
    let mut stream = BytesMut::new();
    if mode & 1 == 1 {
        // Random bytes rarely hold a known API key and a valid header: build one from the
        // first three bytes so that the fuzzer spends its time in body decoding.
        let Some(frame) = framed_with_header(rest) else {
            return;
        };
        stream.put_slice(&frame);
    } else {
        stream.put_slice(rest);
    }
    let decoder = FrameDecoder::new(FRAME_BYTES_MAX);
    while let Ok(Some(frame)) = decoder.decode(&mut stream) {
        assert!(frame.len() <= FRAME_BYTES_MAX);
        let Ok(incoming) = decode_request(&frame, &table) else {
            continue;
        };
        answer(&incoming, &table);
    }
});

fn framed_with_header(rest: &[u8]) -> Option<Vec<u8>> {
    let (&[key_byte, version_byte, flags], body) = rest.split_first_chunk::<3>()?;
    let keys: Vec<ApiKey> = ApiKey::iter().collect();
    let api_key = *keys.get(usize::from(key_byte) % keys.len())?;
    let range = api_key.valid_versions();
    let span = (range.max - range.min + 1).max(1);
    let api_version = range.min + i16::from(version_byte) % span;
    let mut frame = BytesMut::new();
    frame.put_i16(api_key as i16);
    frame.put_i16(api_version);
    frame.put_i32(7);
    if flags & 1 == 1 {
        frame.put_i16(-1);
    } else {
        frame.put_i16(4);
        frame.put_slice(b"fuzz");
    }
    if api_key.request_header_version(api_version) >= 2 {
        frame.put_u8(0);
    }
    frame.put_slice(body);
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&(frame.len() as i32).to_be_bytes());
    out.extend_from_slice(&frame);
    Some(out)
}

/// ApiVersions answers always encode; an error response, where there is a shape for one,
/// encodes at the request's version (its names and ids came from the request itself).
fn answer(incoming: &Incoming, table: &ApiVersionTable) {
    let target = ResponseTarget::for_incoming(incoming);
    let request = match incoming {
        Incoming::UnsupportedApiVersions { .. } => {
            let body = ResponseKind::ApiVersions(api_versions::unsupported_version_response(table));
            assert!(encode_response(&target, &body).is_ok());
            return;
        }
        Incoming::Request(request) => request,
    };
    if let strom_protocol::messages::RequestKind::ApiVersions(body) = &request.body {
        // The levels a cluster is formed with (no UpdateFeatures yet).
        let finalized = strom_protocol::features::Finalized::new(|_| None, 0);
        let response = api_versions::response(table, body, request.api_version(), &finalized);
        assert!(encode_response(&target, &ResponseKind::ApiVersions(response)).is_ok());
    }
    if let Some(response) = error_response(
        &request.body,
        request.api_version(),
        ErrorCode::INVALID_REQUEST,
        table,
    ) {
        let _ = encode_response(&target, &response);
    }
}
