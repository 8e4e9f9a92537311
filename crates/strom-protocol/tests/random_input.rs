//! Property tests: no byte string makes framing or decoding panic, and truncating a valid
//! request anywhere yields a refusal, never a panic.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use strom_protocol::messages::ApiKey;
use strom_protocol::{decode_request, ApiVersionTable, FrameDecoder};

fn table() -> ApiVersionTable {
    ApiVersionTable::new(ApiKey::iter())
}

/// A served API key and one of its versions, slightly past the range on both sides.
fn api_and_version() -> impl Strategy<Value = (ApiKey, i16)> {
    let keys: Vec<ApiKey> = ApiKey::iter().collect();
    proptest::sample::select(keys).prop_flat_map(|api_key| {
        let range = api_key.valid_versions();
        (Just(api_key), (range.min - 1)..=(range.max + 1))
    })
}

fn header(api_key: ApiKey, api_version: i16, flexible_tag: bool) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_i16(api_key as i16);
    buf.put_i16(api_version);
    buf.put_i32(5);
    buf.put_i16(3);
    buf.put_slice(b"cli");
    if flexible_tag {
        buf.put_u8(0);
    }
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn random_frames_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_request(&Bytes::from(frame), &table());
    }

    #[test]
    fn random_bodies_behind_valid_headers_never_panic(
        (api_key, api_version) in api_and_version(),
        body in proptest::collection::vec(any::<u8>(), 0..192),
    ) {
        let flexible = api_key.request_header_version(api_version) >= 2;
        let mut frame = header(api_key, api_version, flexible);
        frame.put_slice(&body);
        let _ = decode_request(&frame.freeze(), &table());
    }

    #[test]
    fn small_structured_bodies_never_panic(
        (api_key, api_version) in api_and_version(),
        // Mostly small values so that lengths and counts often fit the input.
        body in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(2u8), Just(0xffu8), any::<u8>()], 0..96),
    ) {
        let flexible = api_key.request_header_version(api_version) >= 2;
        let mut frame = header(api_key, api_version, flexible);
        frame.put_slice(&body);
        let _ = decode_request(&frame.freeze(), &table());
    }

    #[test]
    fn the_frame_decoder_never_panics_and_never_returns_more_than_it_got(
        stream in proptest::collection::vec(any::<u8>(), 0..128),
        frame_bytes_max in 0usize..64,
    ) {
        let decoder = FrameDecoder::new(frame_bytes_max);
        let mut buf = BytesMut::from(&stream[..]);
        let mut frames_seen = 0;
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            prop_assert!(frame.len() <= frame_bytes_max);
            frames_seen += 1;
            prop_assert!(frames_seen <= stream.len() / 4);
        }
    }
}
