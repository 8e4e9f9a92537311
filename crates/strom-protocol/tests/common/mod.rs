//! Helpers shared by the message tests of the STROM PATCH messages: encoding with its size
//! checked, and the round trip with every truncation refused.

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::{Decodable, Encodable};

/// `message` at `version`; its length is what `compute_size` said.
pub fn encode<T: Encodable>(message: &T, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    message.encode(&mut buf, version).unwrap();
    assert_eq!(buf.len(), message.compute_size(version).unwrap());
    buf.freeze()
}

/// Encodes, decodes, compares; then every strict prefix of the bytes must fail to decode.
pub fn check<T: Encodable + Decodable + PartialEq + std::fmt::Debug>(message: &T, version: i16) {
    let bytes = encode(message, version);
    let mut input = bytes.clone();
    let decoded = T::decode(&mut input, version).unwrap();
    assert_eq!(&decoded, message);
    assert!(input.is_empty(), "decode left {} bytes", input.len());
    for cut in 0..bytes.len() {
        let mut short = bytes.slice(..cut);
        assert!(
            T::decode(&mut short, version).is_err(),
            "a body cut at {cut} of {} bytes decoded",
            bytes.len()
        );
    }
}
