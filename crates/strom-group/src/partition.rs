//! Which `__consumer_offsets` partition coordinates a group, exactly as Kafka computes it.

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, wrapping.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// `Utils.abs(groupId.hashCode) % partitions`; Kafka's `Utils.abs` masks the sign bit
/// (so `i32::MIN` maps to 0, unlike `Math.abs`). Zero partitions maps to partition 0.
pub fn coordinator_partition(group_id: &str, partitions: u32) -> u32 {
    let positive = (java_string_hash(group_id) & 0x7fff_ffff) as u32;
    positive.checked_rem(partitions).unwrap_or(0)
}
