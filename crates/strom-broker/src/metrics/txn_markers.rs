//! The transaction coordinator's marker jobs that stopped before every partition had its
//! marker (`txns.rs`, `write_markers`; the answers classed by `markers::marker_round`). Such
//! a transaction stays prepared, and its clients get CONCURRENT_TRANSACTIONS, until its
//! `__transaction_state` partition is loaded here again (or by a newer coordinator), as in
//! Kafka; the log names each stop, and this counts them so that an operator sees them.

use strom_metrics::{Counter, Kind, TextEncoder};

use crate::markers::{MarkerAnswer, MarkerRound};

/// The counter's name, with a `reason` label of `fenced` or `fatal`.
pub const STOPPED_TOTAL: &str = "strom_txn_marker_sends_stopped_total";

/// Marker jobs stopped, by why.
#[derive(Debug, Default)]
pub struct TxnMarkerMetrics {
    /// INVALID_PRODUCER_EPOCH or TRANSACTION_COORDINATOR_FENCED: a newer producer or
    /// coordinator epoch owns the transaction (Kafka's `abortSending`).
    pub stopped_fenced: Counter,
    /// An answer retrying cannot mend (CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, ..., or a code
    /// the handler does not expect), logged as an error.
    pub stopped_fatal: Counter,
}

impl TxnMarkerMetrics {
    /// Counts `round` if it stopped its job; a round that completes or retries counts
    /// nothing.
    pub fn on_round(&self, round: &MarkerRound) {
        match round {
            MarkerRound::Stop {
                answer: MarkerAnswer::Fenced,
                ..
            } => self.stopped_fenced.inc(),
            // Every other stop is logged as fatal (`txns.rs`), so it is counted so.
            MarkerRound::Stop { .. } => self.stopped_fatal.inc(),
            MarkerRound::Complete | MarkerRound::Retry(_) => {}
        }
    }

    /// Writes the counter, both reasons always present (a rate over an absent series is
    /// no rate at all).
    pub fn encode(&self, e: &mut TextEncoder) {
        e.family(
            STOPPED_TOTAL,
            Kind::Counter,
            "Transaction marker jobs this coordinator stopped before every partition had its \
             marker: fenced (a newer producer or coordinator epoch owns the transaction) or \
             fatal (an answer retrying cannot mend; the transaction stays prepared until its \
             __transaction_state partition is loaded again).",
        );
        for (reason, counter) in [
            ("fenced", &self.stopped_fenced),
            ("fatal", &self.stopped_fatal),
        ] {
            e.int(
                STOPPED_TOTAL,
                &[("reason", reason)],
                i128::from(counter.get()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use strom_protocol::ErrorCode;
    use strom_txn::TopicPartition;

    use super::*;
    use crate::markers::marker_round;

    /// The scrape's line for `reason`.
    fn line(metrics: &TxnMarkerMetrics, reason: &str) -> String {
        let mut e = TextEncoder::new();
        metrics.encode(&mut e);
        let prefix = format!("{STOPPED_TOTAL}{{reason=\"{reason}\"}} ");
        let text = e.finish();
        let found = text.lines().find(|l| l.starts_with(&prefix));
        found.map(str::to_string).unwrap_or_default()
    }

    /// Each class of answer that stops a job moves its own series, and only it; rounds
    /// that complete or retry move neither.
    #[test]
    fn stopped_marker_sends_are_counted_by_reason() {
        let metrics = TxnMarkerMetrics::default();
        let tp = TopicPartition::new("t".to_string(), 0);
        let round = |code: ErrorCode| marker_round(vec![(tp.clone(), code)], |_| true);
        let expect = |fenced: u64, fatal: u64| {
            assert_eq!(
                (metrics.stopped_fenced.get(), metrics.stopped_fatal.get()),
                (fenced, fatal)
            );
            assert_eq!(
                line(&metrics, "fenced"),
                format!("{STOPPED_TOTAL}{{reason=\"fenced\"}} {fenced}")
            );
            assert_eq!(
                line(&metrics, "fatal"),
                format!("{STOPPED_TOTAL}{{reason=\"fatal\"}} {fatal}")
            );
        };
        expect(0, 0);
        for code in [
            ErrorCode::NONE,
            ErrorCode::NOT_LEADER_OR_FOLLOWER,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
        ] {
            metrics.on_round(&round(code));
        }
        expect(0, 0);
        metrics.on_round(&round(ErrorCode::INVALID_PRODUCER_EPOCH));
        expect(1, 0);
        metrics.on_round(&round(ErrorCode::TRANSACTION_COORDINATOR_FENCED));
        expect(2, 0);
        metrics.on_round(&round(ErrorCode::CORRUPT_MESSAGE));
        expect(2, 1);
        // A round with both stops counts once, as fatal (the answer the job reports).
        let both = marker_round(
            vec![
                (tp.clone(), ErrorCode::INVALID_PRODUCER_EPOCH),
                (
                    TopicPartition::new("t".to_string(), 1),
                    ErrorCode::MESSAGE_TOO_LARGE,
                ),
            ],
            |_| true,
        );
        metrics.on_round(&both);
        expect(2, 2);
    }
}
