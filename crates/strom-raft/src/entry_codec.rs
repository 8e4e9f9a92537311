//! On-disk frame of one raft log entry: `word u32 | crc32c u32 | body`, little-endian.
//!
//! `word` holds the body length in its low 24 bits and the frame format version in its top
//! 8 bits. Version 1 (written now) checksums `word` and the body; version 0 (the first
//! layout, still read) has the same fields but checksums only the body.
//!
//! Body: `index u64 | term u64 | leader node u64 | kind u8 | data`, where data is the
//! payload bytes (normal), nothing (blank) or the membership as JSON (rare, small).

use openraft::{CommittedLeaderId, Membership};

use crate::types::{Entry, EntryPayload, LogId, Node, NodeId, Payload};

/// Bytes before the body: its length and its checksum.
pub const FRAME_HEADER_BYTES: usize = 8;
/// The fixed part of a body; with the header, the smallest frame there is.
pub const BODY_FIXED_BYTES: usize = 25;
/// The frame format written by this version.
pub const FRAME_VERSION: u8 = 1;
/// The first frame format: the checksum covers the body only.
const FRAME_VERSION_LEGACY: u8 = 0;
/// Largest body a frame can describe (24 bits of length).
pub const FRAME_BODY_BYTES_MAX: usize = (1 << 24) - 1;

const KIND_BLANK: u8 = 0;
const KIND_NORMAL: u8 = 1;
const KIND_MEMBERSHIP: u8 = 2;

/// Why the bytes at some position are not a complete, valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("incomplete frame: {available} of {needed} bytes")]
    Incomplete { needed: usize, available: usize },
    #[error("frame length {len} exceeds the maximum {max}")]
    TooLong { len: usize, max: usize },
    #[error("frame checksum mismatch")]
    Checksum,
    #[error("unknown frame format version {0}")]
    Version(u8),
    #[error("malformed frame body: {0}")]
    Body(String),
}

/// Appends the frame of `entry` to `out`.
pub fn encode_entry(entry: &Entry, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let mut body = Vec::with_capacity(BODY_FIXED_BYTES + 64);
    body.extend_from_slice(&entry.log_id.index.to_le_bytes());
    body.extend_from_slice(&entry.log_id.leader_id.term.to_le_bytes());
    body.extend_from_slice(&entry.log_id.leader_id.node_id.to_le_bytes());
    match &entry.payload {
        EntryPayload::Blank => body.push(KIND_BLANK),
        EntryPayload::Normal(payload) => {
            body.push(KIND_NORMAL);
            body.extend_from_slice(&payload.0);
        }
        EntryPayload::Membership(membership) => {
            body.push(KIND_MEMBERSHIP);
            let json =
                serde_json::to_vec(membership).map_err(|e| FrameError::Body(e.to_string()))?;
            body.extend_from_slice(&json);
        }
    }
    if body.len() > FRAME_BODY_BYTES_MAX {
        return Err(FrameError::TooLong {
            len: body.len(),
            max: FRAME_BODY_BYTES_MAX,
        });
    }
    let word = (u32::from(FRAME_VERSION) << 24) | body.len() as u32;
    let word = word.to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&word), &body);
    out.extend_from_slice(&word);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

/// Decodes the frame at the start of `bytes`; returns the entry and the frame's length.
pub fn decode_entry(bytes: &[u8], body_bytes_max: usize) -> Result<(Entry, usize), FrameError> {
    let header = bytes
        .get(..FRAME_HEADER_BYTES)
        .ok_or(FrameError::Incomplete {
            needed: FRAME_HEADER_BYTES,
            available: bytes.len(),
        })?;
    let word = read_u32(header, 0)?;
    let version = (word >> 24) as u8;
    let len = (word & 0x00ff_ffff) as usize;
    let crc = read_u32(header, 4)?;
    if version != FRAME_VERSION && version != FRAME_VERSION_LEGACY {
        return Err(FrameError::Version(version));
    }
    if len > body_bytes_max {
        return Err(FrameError::TooLong {
            len,
            max: body_bytes_max,
        });
    }
    let frame_len = FRAME_HEADER_BYTES + len;
    let body = bytes
        .get(FRAME_HEADER_BYTES..frame_len)
        .ok_or(FrameError::Incomplete {
            needed: frame_len,
            available: bytes.len(),
        })?;
    let expected = if version == FRAME_VERSION_LEGACY {
        crc32c::crc32c(body)
    } else {
        crc32c::crc32c_append(crc32c::crc32c(&word.to_le_bytes()), body)
    };
    if expected != crc {
        return Err(FrameError::Checksum);
    }
    Ok((decode_body(body)?, frame_len))
}

fn decode_body(body: &[u8]) -> Result<Entry, FrameError> {
    if body.len() < BODY_FIXED_BYTES {
        return Err(FrameError::Body(format!("body of {} bytes", body.len())));
    }
    let index = read_u64(body, 0)?;
    let term = read_u64(body, 8)?;
    let node_id: NodeId = read_u64(body, 16)?;
    let kind = body.get(24).copied().unwrap_or(u8::MAX);
    let data = body.get(BODY_FIXED_BYTES..).unwrap_or_default();
    let payload = match kind {
        KIND_BLANK => EntryPayload::Blank,
        KIND_NORMAL => EntryPayload::Normal(Payload(data.to_vec())),
        KIND_MEMBERSHIP => {
            let membership: Membership<NodeId, Node> =
                serde_json::from_slice(data).map_err(|e| FrameError::Body(e.to_string()))?;
            EntryPayload::Membership(membership)
        }
        other => return Err(FrameError::Body(format!("unknown entry kind {other}"))),
    };
    Ok(Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, node_id), index),
        payload,
    })
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32, FrameError> {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(field(bytes, at, 4)?);
    Ok(u32::from_le_bytes(buf))
}

fn read_u64(bytes: &[u8], at: usize) -> Result<u64, FrameError> {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(field(bytes, at, 8)?);
    Ok(u64::from_le_bytes(buf))
}

fn field(bytes: &[u8], at: usize, len: usize) -> Result<&[u8], FrameError> {
    bytes
        .get(at..at + len)
        .ok_or_else(|| FrameError::Body(format!("field at {at} out of range")))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    pub(crate) fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Payload(data.to_vec())),
        }
    }

    #[test]
    fn round_trip_every_kind() {
        let membership = Membership::new(
            vec![BTreeSet::from([1, 2])],
            BTreeMap::from([
                (1, Node::new("127.0.0.1:1")),
                (
                    2,
                    Node {
                        addr: "127.0.0.1:2".into(),
                        directory_id: Some(uuid::Uuid::from_u128(2)),
                    },
                ),
            ]),
        );
        let entries = [
            entry(7, 3, b"abc"),
            Entry {
                log_id: LogId::new(CommittedLeaderId::new(2, 9), 1),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: LogId::new(CommittedLeaderId::new(0, 0), 0),
                payload: EntryPayload::Membership(membership),
            },
        ];
        for original in entries {
            let mut buf = Vec::new();
            encode_entry(&original, &mut buf).unwrap();
            let (decoded, len) = decode_entry(&buf, 1 << 20).unwrap();
            assert_eq!(len, buf.len());
            assert_eq!(decoded.log_id, original.log_id);
            assert_eq!(decoded.payload, original.payload);
        }
    }

    #[test]
    fn torn_and_corrupt_frames_are_detected() {
        let mut buf = Vec::new();
        encode_entry(&entry(1, 1, b"payload"), &mut buf).unwrap();
        for cut in 0..buf.len() {
            assert!(matches!(
                decode_entry(&buf[..cut], 1 << 20),
                Err(FrameError::Incomplete { .. })
            ));
        }
        let mut flipped = buf.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        assert_eq!(
            decode_entry(&flipped, 1 << 20).unwrap_err(),
            FrameError::Checksum
        );
        assert!(matches!(
            decode_entry(&buf, 4),
            Err(FrameError::TooLong { .. })
        ));
    }

    /// A frame of the first layout: `len u32 | crc32c(body) u32 | body`.
    fn legacy_frame(entry: &Entry) -> Vec<u8> {
        let mut v1 = Vec::new();
        encode_entry(entry, &mut v1).unwrap();
        let body = &v1[FRAME_HEADER_BYTES..];
        let mut out = (body.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn frames_of_the_first_layout_are_still_read() {
        let original = entry(4, 2, b"old");
        let bytes = legacy_frame(&original);
        let (decoded, len) = decode_entry(&bytes, 1 << 20).unwrap();
        assert_eq!(len, bytes.len());
        assert_eq!(decoded.log_id, original.log_id);
        assert_eq!(decoded.payload, original.payload);
    }

    #[test]
    fn every_flipped_bit_is_caught_in_both_layouts() {
        let original = entry(9, 3, b"some payload");
        let mut v1 = Vec::new();
        encode_entry(&original, &mut v1).unwrap();
        assert_eq!(v1[3], FRAME_VERSION);
        for good in [v1, legacy_frame(&original)] {
            for bit in 0..good.len() * 8 {
                let mut bytes = good.clone();
                bytes[bit / 8] ^= 1 << (bit % 8);
                assert!(decode_entry(&bytes, 1 << 20).is_err(), "bit {bit}");
            }
        }
        let mut unknown = Vec::new();
        encode_entry(&original, &mut unknown).unwrap();
        unknown[3] = 7;
        assert_eq!(
            decode_entry(&unknown, 1 << 20).unwrap_err(),
            FrameError::Version(7)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_entry(&bytes, 1 << 16);
        }
    }
}
