//! The follower's decisions, and the leader's check that starts them: whether a fetch's
//! last fetched epoch disagrees with the leader's log (Fetch v12+, KIP-320's "diverging
//! epoch"), where the follower then cuts its log (Kafka's `getOffsetTruncationState`), and
//! the high watermark a follower may take from a fetch response.

use crate::{EpochEndOffset, Truncation};

/// The leader's side of a replica fetch: `leader_answer` is the leader's end offset for the
/// fetch's `last_fetched_epoch` (the largest epoch at or below it and where it ends, or
/// [`EpochEndOffset::UNDEFINED`]). The follower diverges when the leader never had that
/// epoch, or ended it before the fetch offset: the response then carries no records, only
/// that answer, and the follower truncates before it fetches again. A negative
/// `last_fetched_epoch` (not sent) is not checked.
pub fn diverging_epoch(
    last_fetched_epoch: i32,
    fetch_offset: i64,
    leader_answer: EpochEndOffset,
) -> Option<EpochEndOffset> {
    if last_fetched_epoch < 0 {
        return None;
    }
    let diverges =
        leader_answer.epoch < last_fetched_epoch || leader_answer.end_offset < fetch_offset;
    diverges.then_some(leader_answer)
}

/// Where a follower truncates after the leader reported `diverging` (its end of the
/// follower's last fetched epoch). `local` is the follower's own end offset for
/// `diverging.epoch` (the largest epoch it knows at or below it, and where that ends);
/// `log_end_offset` and `high_watermark` are the follower's.
///
/// - The leader knows no epoch at all (`end_offset` undefined): cut to the follower's high
///   watermark, below which everything is committed.
/// - The follower has that epoch too: cut to the smaller of the two ends. Done.
/// - The follower's largest epoch below it is another one: cut to where that ends and ask
///   again with the new last epoch (the leader's answer for it may be earlier still).
/// - The follower knows no epoch that old: cut to the leader's end.
///
/// Never cuts above the log end offset.
pub fn truncation_on_divergence(
    diverging: EpochEndOffset,
    local: Option<EpochEndOffset>,
    log_end_offset: i64,
    high_watermark: i64,
) -> Truncation {
    if diverging.end_offset < 0 {
        return Truncation {
            offset: high_watermark.clamp(0, log_end_offset.max(0)),
            complete: true,
        };
    }
    let within = |offset: i64| offset.min(log_end_offset).max(0);
    match local {
        Some(local) if diverging.epoch >= 0 && local.epoch != diverging.epoch => Truncation {
            offset: within(local.end_offset),
            complete: false,
        },
        Some(local) if diverging.epoch >= 0 => Truncation {
            offset: within(local.end_offset.min(diverging.end_offset)),
            complete: true,
        },
        _ => Truncation {
            offset: within(diverging.end_offset),
            complete: true,
        },
    }
}

/// A follower's high watermark after a fetch response: the leader's, but never above what
/// the follower itself has.
pub fn follower_high_watermark(leader_high_watermark: i64, log_end_offset: i64) -> i64 {
    leader_high_watermark.min(log_end_offset).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(epoch: i32, end_offset: i64) -> EpochEndOffset {
        EpochEndOffset { epoch, end_offset }
    }

    #[test]
    fn divergence_is_an_older_epoch_or_an_earlier_end() {
        // No last fetched epoch: nothing to check.
        assert_eq!(diverging_epoch(-1, 10, e(3, 5)), None);
        // Same epoch, it ends at or after the fetch offset: in agreement.
        assert_eq!(diverging_epoch(3, 10, e(3, 10)), None);
        assert_eq!(diverging_epoch(3, 10, e(3, 12)), None);
        // The leader's epoch 3 ended before the follower's fetch offset.
        assert_eq!(diverging_epoch(3, 10, e(3, 8)), Some(e(3, 8)));
        // The leader never had epoch 3: its largest below is 2.
        assert_eq!(diverging_epoch(3, 10, e(2, 12)), Some(e(2, 12)));
        // The leader knows no epoch.
        assert_eq!(
            diverging_epoch(3, 10, EpochEndOffset::UNDEFINED),
            Some(EpochEndOffset::UNDEFINED)
        );
    }

    #[test]
    fn truncation_follows_kafka() {
        let check = |diverging, local, leo, hw, offset, complete| {
            assert_eq!(
                truncation_on_divergence(diverging, local, leo, hw),
                Truncation { offset, complete },
                "{diverging:?} {local:?} leo {leo} hw {hw}"
            );
        };
        // Same epoch on both sides: the smaller end.
        check(e(3, 8), Some(e(3, 12)), 15, 5, 8, true);
        check(e(3, 12), Some(e(3, 9)), 15, 5, 9, true);
        // The follower's largest epoch at or below 4 is 2: cut to its end, ask again.
        check(e(4, 20), Some(e(2, 11)), 15, 5, 11, false);
        // The follower knows nothing that old: the leader's end.
        check(e(1, 4), None, 15, 3, 4, true);
        // Undefined: the follower's high watermark.
        check(EpochEndOffset::UNDEFINED, Some(e(3, 9)), 15, 5, 5, true);
        // Never above the log end.
        check(e(3, 30), Some(e(3, 40)), 15, 5, 15, true);
    }

    #[test]
    fn follower_high_watermark_is_capped_by_its_log() {
        assert_eq!(follower_high_watermark(10, 7), 7);
        assert_eq!(follower_high_watermark(5, 7), 5);
        assert_eq!(follower_high_watermark(-1, 7), 0);
    }
}
