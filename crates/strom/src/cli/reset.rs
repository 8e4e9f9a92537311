//! The arithmetic of `groups reset-offsets` and `groups describe`, as
//! kafka-consumer-groups.sh does it: which offset each scenario picks, clamped to the
//! partition's range, and the lag.

/// `--to-earliest`, `--to-latest`, `--to-offset N`, `--to-datetime T`, `--shift-by N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
    /// Milliseconds since the epoch.
    Datetime(i64),
    ShiftBy(i64),
}

/// What is known about one partition when planning its new offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    /// The group's committed offset, if any.
    pub committed: Option<i64>,
    /// The log start offset.
    pub earliest: i64,
    /// The log end offset.
    pub latest: i64,
    /// For `--to-datetime`: the first offset at or after the time; `None` when every
    /// record is older (then the log end, as Kafka does).
    pub at_time: Option<i64>,
}

/// The new offset of one partition, or why there is none.
pub fn new_offset(to: ResetTo, state: &PartitionState) -> Result<i64, String> {
    let target = match to {
        ResetTo::Earliest => state.earliest,
        ResetTo::Latest => state.latest,
        ResetTo::Offset(offset) => offset,
        ResetTo::Datetime(_) => state.at_time.unwrap_or(state.latest),
        ResetTo::ShiftBy(shift) => match state.committed {
            Some(committed) => committed.saturating_add(shift),
            None => {
                return Err(
                    "cannot shift the offset: the group has no committed offset for it".to_string(),
                )
            }
        },
    };
    Ok(clamp(target, state))
}

/// Kafka moves an offset outside the log to the nearest end of it.
fn clamp(offset: i64, state: &PartitionState) -> i64 {
    if offset < state.earliest {
        state.earliest
    } else if offset > state.latest {
        state.latest
    } else {
        offset
    }
}

/// The lag of a committed offset behind the log end; `None` without a committed offset.
pub fn lag(committed: Option<i64>, log_end: Option<i64>) -> Option<i64> {
    match (committed, log_end) {
        (Some(committed), Some(end)) => Some(end.saturating_sub(committed).max(0)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: PartitionState = PartitionState {
        committed: Some(50),
        earliest: 10,
        latest: 100,
        at_time: Some(70),
    };

    fn check(to: ResetTo, state: PartitionState, expected: Result<i64, ()>) {
        assert_eq!(
            new_offset(to, &state).map_err(|_| ()),
            expected,
            "{to:?} {state:?}"
        );
    }

    #[test]
    fn scenarios_pick_kafkas_offsets() {
        check(ResetTo::Earliest, STATE, Ok(10));
        check(ResetTo::Latest, STATE, Ok(100));
        check(ResetTo::Offset(42), STATE, Ok(42));
        check(ResetTo::Datetime(0), STATE, Ok(70));
        check(ResetTo::ShiftBy(-5), STATE, Ok(45));
        check(ResetTo::ShiftBy(7), STATE, Ok(57));
    }

    #[test]
    fn offsets_outside_the_log_are_clamped() {
        check(ResetTo::Offset(3), STATE, Ok(10));
        check(ResetTo::Offset(1000), STATE, Ok(100));
        check(ResetTo::ShiftBy(-1000), STATE, Ok(10));
        check(ResetTo::ShiftBy(i64::MAX), STATE, Ok(100));
    }

    #[test]
    fn datetime_after_every_record_goes_to_the_end() {
        let state = PartitionState {
            at_time: None,
            ..STATE
        };
        check(ResetTo::Datetime(0), state, Ok(100));
    }

    #[test]
    fn shift_without_a_committed_offset_is_an_error() {
        let state = PartitionState {
            committed: None,
            ..STATE
        };
        check(ResetTo::ShiftBy(1), state, Err(()));
        check(ResetTo::Earliest, state, Ok(10));
    }

    #[test]
    fn lag_is_log_end_minus_committed() {
        assert_eq!(lag(Some(40), Some(100)), Some(60));
        assert_eq!(lag(Some(100), Some(100)), Some(0));
        assert_eq!(lag(Some(120), Some(100)), Some(0));
        assert_eq!(lag(None, Some(100)), None);
        assert_eq!(lag(Some(1), None), None);
    }
}
