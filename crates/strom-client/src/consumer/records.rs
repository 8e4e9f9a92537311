//! Turning a fetched partition's bytes into consumer records: whole batches only, records
//! below the fetch offset skipped, control batches skipped, and (read_committed) records of
//! aborted transactions dropped using the response's aborted-transaction list.

use std::collections::HashSet;

use bytes::Bytes;
use strom_records::{batches, records, ControlRecordType, DecodeLimits, Header, TimestampType};

use crate::error::Result;
use crate::types::TopicPartition;

/// One consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// Records of one fetched partition and the offset to fetch next.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub records: Vec<ConsumerRecord>,
    /// The offset after the last whole batch (never below the fetch offset).
    pub next_offset: i64,
}

/// An aborted transaction from a Fetch response: producer id and its first offset.
pub(crate) type AbortedTxn = (i64, i64);

/// Parses the batches in `data`. A truncated last batch (the broker cut the response at
/// `max_bytes`) is left for the next fetch; a corrupt one is an error.
pub(crate) fn parse(
    tp: &TopicPartition,
    data: &Bytes,
    fetch_offset: i64,
    aborted: Option<&[AbortedTxn]>,
    limits: &DecodeLimits,
) -> Result<Parsed> {
    let mut out = Parsed {
        records: Vec::new(),
        next_offset: fetch_offset,
    };
    let mut pending_aborts: Vec<AbortedTxn> = aborted.map(<[_]>::to_vec).unwrap_or_default();
    pending_aborts.sort_by_key(|a| std::cmp::Reverse(a.1));
    let mut aborting: HashSet<i64> = HashSet::new();
    for item in batches(data) {
        let (header, range) = match item {
            Ok(b) => b,
            Err(e) if e.is_truncated_tail() => break,
            Err(e) => {
                if out.records.is_empty() {
                    return Err(e.error.into());
                }
                // Hand out what decoded; the next fetch starts at the bad batch and fails.
                break;
            }
        };
        if header.next_offset() <= fetch_offset {
            continue;
        }
        while pending_aborts
            .last()
            .is_some_and(|a| a.1 <= header.last_offset())
        {
            if let Some((pid, _)) = pending_aborts.pop() {
                aborting.insert(pid);
            }
        }
        let batch = data.slice(range);
        let decoded = records(&batch, limits)?;
        out.next_offset = out.next_offset.max(header.next_offset());
        if header.is_control() {
            let abort = decoded
                .first()
                .is_some_and(|r| ControlRecordType::of(r).ok() == Some(ControlRecordType::Abort));
            if abort {
                aborting.remove(&header.producer_id);
            }
            continue;
        }
        if aborted.is_some() && header.is_transactional() && aborting.contains(&header.producer_id)
        {
            continue;
        }
        let timestamp_type = header.timestamp_type();
        for r in decoded {
            let offset = r.offset(&header);
            if offset < fetch_offset {
                continue;
            }
            out.records.push(ConsumerRecord {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset,
                timestamp_ms: r.timestamp_ms(&header),
                timestamp_type,
                key: r.key,
                value: r.value,
                headers: r.headers,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_records::{BatchBuilder, Compression, EndTransactionMarker};

    fn batch(base_offset: i64, values: &[&str], compression: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new(base_offset, 1_000).compression(compression);
        for v in values {
            b.append(1_000, None, Some(Bytes::from(v.to_string())), Vec::new())
                .unwrap();
        }
        b.build().unwrap()
    }

    fn values(parsed: &Parsed) -> Vec<(i64, String)> {
        parsed
            .records
            .iter()
            .map(|r| {
                let v = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
                (r.offset, v)
            })
            .collect()
    }

    #[test]
    fn skips_records_below_the_fetch_offset_and_keeps_truncated_tails() {
        let tp = TopicPartition::new("t", 0);
        let mut data = batch(10, &["a", "b", "c"], Compression::Lz4);
        data.extend(batch(13, &["d"], Compression::None));
        let whole = Bytes::from(data.clone());
        let parsed = parse(&tp, &whole, 11, None, &DecodeLimits::default()).unwrap();
        assert_eq!(
            values(&parsed),
            vec![(11, "b".into()), (12, "c".into()), (13, "d".into())]
        );
        assert_eq!(parsed.next_offset, 14);

        let cut = Bytes::from(data[..data.len() - 3].to_vec());
        let parsed = parse(&tp, &cut, 10, None, &DecodeLimits::default()).unwrap();
        assert_eq!(parsed.records.len(), 3);
        assert_eq!(parsed.next_offset, 13);

        let empty = parse(&tp, &Bytes::new(), 5, None, &DecodeLimits::default()).unwrap();
        assert!(empty.records.is_empty());
        assert_eq!(empty.next_offset, 5);
    }

    #[test]
    fn control_batches_and_aborted_transactions_are_skipped() {
        let tp = TopicPartition::new("t", 0);
        let pid = 7;
        let mut txn = BatchBuilder::new(0, 1_000)
            .producer(pid, 0, 0)
            .transactional(true);
        txn.append(
            1_000,
            None,
            Some(Bytes::from_static(b"aborted")),
            Vec::new(),
        )
        .unwrap();
        let mut data = txn.build().unwrap();
        let marker = EndTransactionMarker {
            commit: false,
            coordinator_epoch: 0,
        }
        .to_batch(1, 1_000, pid, 0)
        .unwrap();
        data.extend(marker);
        data.extend(batch(2, &["plain"], Compression::Gzip));
        let data = Bytes::from(data);

        let committed = parse(&tp, &data, 0, Some(&[(pid, 0)]), &DecodeLimits::default()).unwrap();
        assert_eq!(values(&committed), vec![(2, "plain".into())]);
        assert_eq!(committed.next_offset, 3);

        let uncommitted = parse(&tp, &data, 0, None, &DecodeLimits::default()).unwrap();
        assert_eq!(
            values(&uncommitted),
            vec![(0, "aborted".into()), (2, "plain".into())]
        );
    }
}
