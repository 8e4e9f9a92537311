//! ApiVersions on exact bytes: requests v0..v4 as clients send them, the responses as Kafka
//! writes them (header v0 always, features as tagged fields, none at its default), the
//! unknown-version fallback and KIP-511's validation.

use bytes::{BufMut, Bytes, BytesMut};
use strom_protocol::messages::{ApiKey, ResponseKind};
use strom_protocol::{
    api_versions, decode_request, encode_response, ApiVersionTable, ErrorCode, FrameDecoder,
    Incoming, ResponseTarget,
};

const CORRELATION_ID: i32 = 0x0102_0304;

fn table() -> ApiVersionTable {
    ApiVersionTable::new([ApiKey::Produce, ApiKey::Metadata])
}

/// A request frame body: header (v1, or v2 when `flexible`) then `body`.
fn request(api_version: i16, flexible: bool, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(18);
    buf.put_i16(api_version);
    buf.put_i32(CORRELATION_ID);
    buf.put_i16(7);
    buf.put_slice(b"rdkafka");
    if flexible {
        buf.put_u8(0);
    }
    buf.put_slice(body);
    buf.freeze()
}

/// The v3+ body: compact strings for the software name and version, no tagged fields.
fn software_body(name: &str, version: &str) -> Vec<u8> {
    let mut body = vec![name.len() as u8 + 1];
    body.extend_from_slice(name.as_bytes());
    body.push(version.len() as u8 + 1);
    body.extend_from_slice(version.as_bytes());
    body.push(0);
    body
}

/// Decodes `frame` and answers it the way the broker will.
fn answer(frame: &Bytes) -> Bytes {
    let table = table();
    let incoming = decode_request(frame, &table).unwrap();
    let response = match &incoming {
        Incoming::Request(request) => match &request.body {
            strom_protocol::messages::RequestKind::ApiVersions(body) => api_versions::response(
                &table,
                body,
                request.api_version(),
                &strom_protocol::features::Finalized::defaults(),
            ),
            other => panic!("not ApiVersions: {other:?}"),
        },
        Incoming::UnsupportedApiVersions { .. } => {
            api_versions::unsupported_version_response(&table)
        }
    };
    encode_response(
        &ResponseTarget::for_incoming(&incoming),
        &ResponseKind::ApiVersions(response),
    )
    .unwrap()
}

/// The rows for Produce (0..13), Metadata (0..13) and ApiVersions (0..4).
const ROWS: [[u8; 6]; 3] = [
    [0, 0, 0, 0, 0, 13],
    [0, 3, 0, 0, 0, 13],
    [0, 18, 0, 0, 0, 4],
];

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn expected_non_flexible(with_throttle: bool) -> Vec<u8> {
    let mut body = CORRELATION_ID.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&3i32.to_be_bytes());
    for row in ROWS {
        body.extend_from_slice(&row);
    }
    if with_throttle {
        body.extend_from_slice(&[0, 0, 0, 0]);
    }
    framed(&body)
}

/// One feature entry: compact string name, two int16 levels, no tagged fields.
fn feature(name: &str, first: i16, second: i16) -> Vec<u8> {
    let mut out = vec![name.len() as u8 + 1];
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&first.to_be_bytes());
    out.extend_from_slice(&second.to_be_bytes());
    out.push(0);
    out
}

/// A tagged field: tag, size, data (each fits one varint byte here).
fn tagged(tag: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![tag, data.len() as u8];
    out.extend_from_slice(data);
    out
}

fn expected_flexible(version: i16) -> Vec<u8> {
    // Header v0: the correlation id alone, no tagged-field byte.
    let mut body = CORRELATION_ID.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0]);
    body.push(4);
    for row in ROWS {
        body.extend_from_slice(&row);
        body.push(0);
    }
    body.extend_from_slice(&[0, 0, 0, 0]);
    // Tagged fields: supported features (ranges from 0 only at v4+), the finalized epoch (0)
    // and the finalized levels; zk_migration_ready keeps its default and is left out.
    let mut supported = vec![feature("metadata.version", 25, 25)];
    if version >= 4 {
        supported.push(feature("kraft.version", 0, 0));
    }
    supported.push(feature("group.version", 1, 1));
    supported.push(feature("share.version", 1, 1));
    if version >= 4 {
        supported.push(feature("streams.version", 0, 1));
        supported.push(feature("transaction.version", 0, 2));
    }
    let mut supported_bytes = vec![supported.len() as u8 + 1];
    supported
        .iter()
        .for_each(|f| supported_bytes.extend_from_slice(f));
    let mut finalized_bytes = vec![6];
    finalized_bytes.extend(feature("metadata.version", 25, 25));
    finalized_bytes.extend(feature("group.version", 1, 1));
    finalized_bytes.extend(feature("share.version", 1, 1));
    finalized_bytes.extend(feature("streams.version", 1, 1));
    finalized_bytes.extend(feature("transaction.version", 2, 2));
    body.push(3);
    body.extend(tagged(0, &supported_bytes));
    body.extend(tagged(1, &0i64.to_be_bytes()));
    body.extend(tagged(2, &finalized_bytes));
    framed(&body)
}

#[test]
fn v0_request_and_response_bytes() {
    let response = answer(&request(0, false, &[]));
    assert_eq!(response.as_ref(), expected_non_flexible(false).as_slice());
}

#[test]
fn v1_and_v2_responses_add_the_throttle_time() {
    for version in [1, 2] {
        let response = answer(&request(version, false, &[]));
        assert_eq!(
            response.as_ref(),
            expected_non_flexible(true).as_slice(),
            "v{version}"
        );
    }
}

#[test]
fn v3_and_v4_responses_are_flexible_with_a_v0_header_and_features_as_tagged_fields() {
    for version in [3, 4] {
        let frame = request(version, true, &software_body("librdkafka", "2.0.2"));
        let response = answer(&frame);
        assert_eq!(
            response.as_ref(),
            expected_flexible(version).as_slice(),
            "v{version}"
        );
    }
}

#[test]
fn v3_request_carries_the_client_software() {
    let frame = request(3, true, &software_body("apache-kafka-java", "4.1.0"));
    let Ok(Incoming::Request(request)) = decode_request(&frame, &table()) else {
        panic!("not decoded");
    };
    let strom_protocol::messages::RequestKind::ApiVersions(body) = request.body else {
        panic!("not ApiVersions");
    };
    assert_eq!(&*body.client_software_name, "apache-kafka-java");
    assert_eq!(&*body.client_software_version, "4.1.0");
    assert_eq!(request.header.client_id.as_deref(), Some("rdkafka"));
}

#[test]
fn unknown_version_gets_a_v0_unsupported_version_body_with_the_api_versions_row() {
    // The body of an unknown version is not parsed: garbage must not matter.
    let frame = request(99, true, &[0xde, 0xad, 0xbe, 0xef]);
    let response = answer(&frame);
    let mut body = CORRELATION_ID.to_be_bytes().to_vec();
    body.extend_from_slice(&35i16.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&ROWS[2]);
    assert_eq!(response.as_ref(), framed(&body).as_slice());
}

#[test]
fn negative_version_also_gets_the_fallback() {
    let frame = request(-1, false, &[]);
    assert!(matches!(
        decode_request(&frame, &table()),
        Ok(Incoming::UnsupportedApiVersions { .. })
    ));
}

#[test]
fn invalid_software_name_gets_invalid_request() {
    let frame = request(3, true, &software_body("bad name", "1.0"));
    let response = answer(&frame);
    let mut body = CORRELATION_ID.to_be_bytes().to_vec();
    body.extend_from_slice(&ErrorCode::INVALID_REQUEST.code().to_be_bytes());
    body.extend_from_slice(&[1, 0, 0, 0, 0, 0]);
    assert_eq!(response.as_ref(), framed(&body).as_slice());
}

#[test]
fn a_frame_split_anywhere_reassembles() {
    let frame = request(3, true, &software_body("librdkafka", "2.0.2"));
    let wire = framed(&frame);
    let decoder = FrameDecoder::default();
    for split in 0..wire.len() {
        let mut buf = BytesMut::from(&wire[..split]);
        assert_eq!(decoder.decode(&mut buf), Ok(None), "split at {split}");
        buf.put_slice(&wire[split..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Ok(Some(frame.clone())),
            "split at {split}"
        );
    }
}
