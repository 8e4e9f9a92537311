//! Reading a raft log segment at start-up, and telling a torn tail from corruption.
//!
//! A **torn tail** is what an interrupted last write leaves: damage at the very end of the
//! last segment, with no valid frame after it, in entries above everything known to be
//! committed. Such entries were never acknowledged, so cutting them loses nothing.
//!
//! Anything else is **corruption** of entries that were durable: a bad frame in a segment
//! that others follow, a bad frame followed by a valid one (found by trying every later
//! byte offset, since a damaged length field hides where the next frame starts), a bad frame
//! at or below the commit point, the purge point or the snapshot, or a frame that checks out
//! but holds the wrong index. Corruption stops start-up: guessing could lose committed
//! metadata, and with it the topics whose partition data the broker keeps.
//!
//! Pure functions over bytes, so the classification is tested against a model.

use std::path::Path;

use crate::entry_codec::{
    decode_entry, BODY_FIXED_BYTES, FRAME_BODY_BYTES_MAX, FRAME_HEADER_BYTES,
};
use crate::types::Entry;

/// What an operator can do about a damaged metadata directory `dir` (docs/FORMATS.md, "A
/// damaged metadata log"); ends every start-up error about damage.
pub fn recovery_advice(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        "Strom does not start on a damaged metadata log, because guessing could lose committed \
         metadata (and with it the topics whose data this broker keeps); no file was changed. \
         To recover: restore {dir} from a backup taken while this node was stopped; or, if this \
         node is one of several controller.quorum.voters and `strom metadata status` shows the \
         others with a leader and each applied as far as it, move {dir} aside (keep it) and \
         restart this node: it copies the log from the other voters. See \"A damaged \
         metadata log\" in docs/FORMATS.md"
    )
}

/// The smallest frame there is: a header and a body with no payload.
const FRAME_BYTES_MIN: usize = FRAME_HEADER_BYTES + BODY_FIXED_BYTES;

/// What decoding one segment's bytes found.
#[derive(Debug)]
pub struct SegmentScan {
    /// Every entry up to the first bad frame, with the byte offset of its frame.
    pub entries: Vec<(u64, Entry)>,
    /// Bytes of whole valid frames from the start of the file.
    pub valid_len: u64,
    /// The first frame that did not decode, if the file does not end in a whole frame.
    pub bad: Option<BadFrame>,
}

/// The first frame of a segment that is not a valid frame of the expected entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFrame {
    /// Byte offset of the frame in its file.
    pub offset: u64,
    /// The index the frame should hold.
    pub index: u64,
    /// Why it is bad.
    pub reason: String,
    /// The frame checks out but holds another index: never a torn write.
    pub misplaced: bool,
}

/// Decodes the frames of a segment whose first entry is `base`, in order, stopping at the
/// first frame that is not a valid frame of the next index.
pub fn scan_segment(bytes: &[u8], base: u64, body_bytes_max: usize) -> SegmentScan {
    let mut entries = Vec::new();
    let mut offset = 0usize;
    let mut expected = base;
    while let Some(rest) = bytes.get(offset..).filter(|rest| !rest.is_empty()) {
        let bad = |reason: String, misplaced: bool| BadFrame {
            offset: offset as u64,
            index: expected,
            reason,
            misplaced,
        };
        match decode_entry(rest, body_bytes_max) {
            Ok((entry, len)) if entry.log_id.index == expected => {
                entries.push((offset as u64, entry));
                expected += 1;
                offset += len;
            }
            Ok((entry, _)) => {
                let reason = format!(
                    "a valid frame holds entry {} where entry {expected} belongs",
                    entry.log_id
                );
                return scan_end(entries, offset, Some(bad(reason, true)));
            }
            Err(error) => return scan_end(entries, offset, Some(bad(error.to_string(), false))),
        }
    }
    scan_end(entries, offset, None)
}

fn scan_end(entries: Vec<(u64, Entry)>, offset: usize, bad: Option<BadFrame>) -> SegmentScan {
    SegmentScan {
        entries,
        valid_len: offset as u64,
        bad,
    }
}

/// The highest entry known to be committed before the segments are read, and which file
/// says so; every entry at or below it must be intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Floor {
    pub index: u64,
    pub source: &'static str,
}

impl Floor {
    /// The highest of the given points.
    pub fn highest(points: impl IntoIterator<Item = Option<Floor>>) -> Option<Floor> {
        points.into_iter().flatten().max_by_key(|floor| floor.index)
    }
}

/// `None` when `bad` is a torn tail that may be cut; otherwise why it is corruption.
/// `last_term` is the term of the last valid entry before it (0 if none).
pub fn classify(
    bytes: &[u8],
    bad: &BadFrame,
    is_last_segment: bool,
    floor: Option<Floor>,
    last_term: u64,
    body_bytes_max: usize,
) -> Option<String> {
    if bad.misplaced {
        return Some(bad.reason.clone());
    }
    if !is_last_segment {
        return Some(format!(
            "{}, in a segment that later segments follow (only the last segment is ever \
             written to, so this is not an interrupted write)",
            bad.reason
        ));
    }
    if let Some(floor) = floor.filter(|floor| bad.index <= floor.index) {
        return Some(format!(
            "{}, and entry {} is at or below {} (entry {}), so it was durable",
            bad.reason, bad.index, floor.source, floor.index
        ));
    }
    let from = usize::try_from(bad.offset).ok()?.saturating_add(1);
    if let Some((offset, index)) =
        next_valid_frame(bytes, from, bad.index, last_term, body_bytes_max)
    {
        return Some(format!(
            "{}, and a valid frame of entry {index} follows at byte {offset}, so this is not \
             an interrupted write",
            bad.reason
        ));
    }
    None
}

/// The first byte offset at or after `from` where a frame starts that verifies (checksum
/// and body) and could be a later entry of this log: index at least `index_min` (and no
/// further than the bytes left could hold), term at least `term_min` (stale blocks of
/// entries removed by a truncation hold older terms). Cheap field checks come before the
/// checksum, so a scan over a damaged segment stays linear.
pub fn next_valid_frame(
    bytes: &[u8],
    from: usize,
    index_min: u64,
    term_min: u64,
    body_bytes_max: usize,
) -> Option<(u64, u64)> {
    let body_max = body_bytes_max.min(FRAME_BODY_BYTES_MAX);
    let index_max = index_min.saturating_add((bytes.len() / FRAME_BYTES_MIN) as u64);
    (from..bytes.len().saturating_sub(FRAME_BYTES_MIN - 1)).find_map(|offset| {
        let rest = bytes.get(offset..)?;
        let word = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
        let (version, len) = (word >> 24, (word & 0x00ff_ffff) as usize);
        if version > 1 || len < BODY_FIXED_BYTES || len > body_max {
            return None;
        }
        if rest.len() < FRAME_HEADER_BYTES + len {
            return None;
        }
        let field = |at: usize| {
            let start = FRAME_HEADER_BYTES + at;
            Some(u64::from_le_bytes(
                rest.get(start..start + 8)?.try_into().ok()?,
            ))
        };
        let (index, term) = (field(0)?, field(8)?);
        if index < index_min || index > index_max || term < term_min {
            return None;
        }
        let (entry, _) = decode_entry(rest, body_max).ok()?;
        Some((offset as u64, entry.log_id.index))
    })
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};
    use proptest::prelude::*;

    use super::*;
    use crate::entry_codec::encode_entry;
    use crate::types::{LogId, Payload};

    const MAX: usize = 1 << 16;

    fn entry(index: u64, term: u64, len: usize) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Payload(vec![(index % 251) as u8; len])),
        }
    }

    /// Frames of entries `base..base + sizes.len()`, and where each frame starts.
    fn segment(base: u64, sizes: &[usize]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for (i, size) in sizes.iter().enumerate() {
            starts.push(bytes.len());
            encode_entry(&entry(base + i as u64, 1 + i as u64 / 3, *size), &mut bytes).unwrap();
        }
        (bytes, starts)
    }

    fn floor(index: u64) -> Option<Floor> {
        Some(Floor {
            index,
            source: "the commit point",
        })
    }

    /// The model's answer: how many entries survive, or that this is corruption.
    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        Kept(usize),
        Corrupt,
    }

    fn outcome(bytes: &[u8], base: u64, is_last: bool, floor: Option<Floor>) -> Outcome {
        let scan = scan_segment(bytes, base, MAX);
        let Some(bad) = &scan.bad else {
            return Outcome::Kept(scan.entries.len());
        };
        let last_term = scan
            .entries
            .last()
            .map_or(0, |(_, e)| e.log_id.leader_id.term);
        match classify(bytes, bad, is_last, floor, last_term, MAX) {
            None => Outcome::Kept(scan.entries.len()),
            Some(_) => Outcome::Corrupt,
        }
    }

    #[test]
    fn intact_segment_scans_whole() {
        let (bytes, starts) = segment(10, &[3, 0, 40, 7]);
        let scan = scan_segment(&bytes, 10, MAX);
        assert!(scan.bad.is_none());
        assert_eq!(scan.valid_len, bytes.len() as u64);
        let offsets: Vec<u64> = scan.entries.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            offsets,
            starts.iter().map(|s| *s as u64).collect::<Vec<_>>()
        );
    }

    #[test]
    fn flipped_length_bit_mid_segment_is_corruption() {
        let (mut bytes, starts) = segment(0, &[20, 20, 20, 20]);
        // A length that now runs past the end of the file looks like a torn write; the valid
        // frames behind it say otherwise.
        bytes[starts[1] + 2] ^= 0x01;
        assert_eq!(outcome(&bytes, 0, true, None), Outcome::Corrupt);
        let scan = scan_segment(&bytes, 0, MAX);
        let bad = scan.bad.unwrap();
        assert_eq!((bad.offset, bad.index), (starts[1] as u64, 1));
        let reason = classify(&bytes, &bad, true, None, 1, MAX).unwrap();
        assert!(reason.contains("entry 2 follows"), "{reason}");
    }

    #[test]
    fn damage_in_the_last_frame_above_the_floor_is_a_torn_tail() {
        let (mut bytes, starts) = segment(0, &[20, 20, 20]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0x80;
        assert_eq!(outcome(&bytes, 0, true, floor(1)), Outcome::Kept(2));
        // The same damage at or below the commit point is corruption...
        assert_eq!(outcome(&bytes, 0, true, floor(2)), Outcome::Corrupt);
        // ...and so is it in a segment that others follow.
        assert_eq!(outcome(&bytes, 0, false, None), Outcome::Corrupt);
        // A cut mid-frame and garbage after the last frame are torn tails.
        let (whole, _) = segment(0, &[20, 20, 20]);
        assert_eq!(
            outcome(&whole[..starts[2] + 5], 0, true, None),
            Outcome::Kept(2)
        );
        let mut garbage = whole.clone();
        garbage.extend_from_slice(&[0xff; 13]);
        assert_eq!(outcome(&garbage, 0, true, None), Outcome::Kept(3));
        let mut zeros = whole;
        zeros.extend_from_slice(&[0; 4096]);
        assert_eq!(outcome(&zeros, 0, true, None), Outcome::Kept(3));
    }

    #[test]
    fn a_valid_frame_in_the_wrong_place_is_corruption() {
        let (bytes, _) = segment(5, &[4, 4]);
        // The segment's name says its first entry is 4.
        assert_eq!(outcome(&bytes, 4, true, None), Outcome::Corrupt);
    }

    #[test]
    fn stale_frames_of_an_older_term_do_not_count() {
        // Entries 0..3 of term 5, then garbage holding a stale frame of entry 4 at term 1
        // (blocks of entries a truncation removed): still a torn tail.
        let mut bytes = Vec::new();
        for i in 0..3 {
            encode_entry(&entry(i, 5, 10), &mut bytes).unwrap();
        }
        bytes.extend_from_slice(&[0xee; 7]);
        encode_entry(&entry(4, 1, 10), &mut bytes).unwrap();
        assert_eq!(outcome(&bytes, 0, true, None), Outcome::Kept(3));
    }

    /// One way to damage a segment.
    #[derive(Debug, Clone)]
    enum Damage {
        /// Cut the file at this byte (modulo its length).
        Cut(usize),
        /// Flip this bit (modulo the file's bits).
        Flip(usize),
        /// Append these bytes.
        Garbage(Vec<u8>),
    }

    fn damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            any::<usize>().prop_map(Damage::Cut),
            any::<usize>().prop_map(Damage::Flip),
            proptest::collection::vec(any::<u8>(), 1..64).prop_map(Damage::Garbage),
        ]
    }

    /// The model: a segment is a `Vec` of frames with known extents, and damage hits one
    /// frame (`bad`, counting from 0, `frames` for garbage after the last one). It is a torn
    /// tail, keeping the frames before `bad`, only in the last segment, above the floor, with
    /// no intact frame after it; otherwise corruption. A cut exactly between frames leaves no
    /// bad frame at all (a missing committed entry is then found by the commit hint check).
    fn model(
        starts: &[usize],
        len: usize,
        damage: &Damage,
        is_last: bool,
        floor: Option<u64>,
    ) -> Outcome {
        let frames = starts.len();
        let frame_of = |byte: usize| starts.iter().rposition(|s| *s <= byte).unwrap_or(0);
        let (bad, intact_after) = match damage {
            Damage::Cut(at) => {
                let at = at % (len + 1);
                if at == len || starts.contains(&at) {
                    return Outcome::Kept(starts.iter().filter(|s| **s < at).count());
                }
                (frame_of(at), false)
            }
            Damage::Flip(bit) => {
                let bad = frame_of((bit / 8) % len);
                (bad, bad + 1 < frames)
            }
            Damage::Garbage(_) => (frames, false),
        };
        let committed = floor.is_some_and(|f| bad as u64 <= f);
        if !is_last || committed || intact_after {
            Outcome::Corrupt
        } else {
            Outcome::Kept(bad)
        }
    }

    fn apply(bytes: &mut Vec<u8>, damage: &Damage) {
        match damage {
            Damage::Cut(at) => bytes.truncate(at % (bytes.len() + 1)),
            Damage::Flip(bit) => {
                let len = bytes.len();
                bytes[(bit / 8) % len] ^= 1 << (bit % 8);
            }
            Damage::Garbage(extra) => bytes.extend_from_slice(extra),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn classification_matches_the_model(
            sizes in proptest::collection::vec(0usize..80, 1..12),
            damage in damage(),
            is_last in any::<bool>(),
            floor_at in proptest::option::of(0u64..14),
        ) {
            let (mut bytes, starts) = segment(0, &sizes);
            let expected = model(&starts, bytes.len(), &damage, is_last, floor_at);
            apply(&mut bytes, &damage);
            let floor = floor_at.and_then(floor);
            prop_assert_eq!(outcome(&bytes, 0, is_last, floor), expected);
        }
    }
}
