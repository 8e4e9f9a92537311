//! Kafka's default partitioner: murmur2 of the key (as Java's `Utils.murmur2`) for keyed
//! records, a sticky partition per topic for keyless ones.

use std::collections::HashMap;

/// Java's `Utils.murmur2` (seed 0x9747b28c), bit for bit.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java's int arithmetic wraps; the length is mixed in as a 32-bit int.
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Java's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's default partitioner picks for a keyed record.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    to_positive(murmur2(key)) % partitions
}

/// Sticky partitions for keyless records (KIP-480/KIP-794): one partition per topic until
/// `batch.size` bytes went to it, then another one at random.
#[derive(Debug)]
pub(crate) struct Sticky {
    /// Topic -> (partition, bytes sent to it since it was chosen).
    current: HashMap<String, (i32, usize)>,
    rng: u64,
}

impl Sticky {
    pub fn new(seed: u64) -> Self {
        Sticky {
            current: HashMap::new(),
            rng: seed | 1,
        }
    }

    /// The sticky partition of `topic`, choosing one at random the first time.
    pub fn partition(&mut self, topic: &str, partitions: i32) -> i32 {
        if let Some(&(p, _)) = self.current.get(topic).filter(|(p, _)| *p < partitions) {
            return p;
        }
        let p = self.random_below(partitions);
        self.current.insert(topic.to_string(), (p, 0));
        p
    }

    /// Counts a keyless record sent to the sticky partition; moves on after `batch_bytes`.
    pub fn appended(
        &mut self,
        topic: &str,
        size_bytes: usize,
        batch_bytes: usize,
        partitions: i32,
    ) {
        let Some(&(current, sent)) = self.current.get(topic) else {
            return;
        };
        let sent = sent.saturating_add(size_bytes);
        if sent < batch_bytes {
            self.current.insert(topic.to_string(), (current, sent));
            return;
        }
        let mut next = self.random_below(partitions);
        if partitions > 1 && next == current {
            next = (next + 1) % partitions;
        }
        self.current.insert(topic.to_string(), (next, 0));
    }

    fn random_below(&mut self, n: i32) -> i32 {
        // xorshift64: spreading keyless load needs no cryptographic randomness.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let n = u64::try_from(n.max(1)).unwrap_or(1);
        i32::try_from(self.rng % n).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka() {
        let cases: [(&[u8], i32); 10] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
            (b"string-f-24-chars-length", 124_730_809),
            (b"string-fo-25-chars-length", 1_269_511_650),
            (b"string-foo-26-chars-length", 119_165_628),
            (b"string-last-27-chars-length", 1_089_971_754),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), expected, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn keyed_partition_is_positive_modulo() {
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(i32::MIN), 0);
        // -973932308 & 0x7fffffff = 1173551340; % 3 = 0.
        assert_eq!(partition_for_key(b"21", 3), 1_173_551_340 % 3);
        for p in 1..20 {
            assert!((0..p).contains(&partition_for_key(b"any key", p)));
        }
    }

    #[test]
    fn sticky_partition_holds_until_a_batch_size_went_to_it() {
        let mut s = Sticky::new(42);
        let first = s.partition("t", 4);
        s.appended("t", 100, 250, 4);
        s.appended("t", 100, 250, 4);
        assert_eq!(s.partition("t", 4), first);
        s.appended("t", 100, 250, 4);
        assert_ne!(s.partition("t", 4), first);
        assert_eq!(Sticky::new(7).partition("one", 1), 0);
    }
}
