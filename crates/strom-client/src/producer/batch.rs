//! The producer's accumulator: per-partition open and sealed batches, sequence numbers,
//! and the rules for when a batch is ready to send.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_records::{BatchBuilder, Compression, Header};
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::partitioner::Sticky;
use super::RecordMetadata;
use crate::error::{ClientError, Result};
use crate::types::TopicPartition;

/// One queued record and where its result goes.
pub(crate) struct Pending {
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    pub size_bytes: usize,
    pub reply: oneshot::Sender<Result<RecordMetadata>>,
    /// Buffer space, released when the record completes.
    pub _permit: OwnedSemaphorePermit,
}

/// Producer id and epoch from InitProducerId.
pub(crate) type ProducerIdentity = (i64, i16);

/// Records for one partition, sent (and retried) as one RecordBatch.
pub(crate) struct Batch {
    pub tp: TopicPartition,
    pub records: Vec<Pending>,
    pub size_bytes: usize,
    pub created: Instant,
    /// Assigned when first drained; kept across retries so the broker can de-duplicate.
    pub base_sequence: Option<i32>,
    pub producer: Option<ProducerIdentity>,
    /// The bytes sent, kept so a retry resends exactly the same batch.
    pub encoded: Option<Bytes>,
    pub attempts: u32,
    /// Part of a transaction: written with the transactional flag.
    pub transactional: bool,
}

impl Batch {
    fn new(tp: TopicPartition) -> Self {
        Batch {
            tp,
            records: Vec::new(),
            size_bytes: 0,
            created: Instant::now(),
            base_sequence: None,
            producer: None,
            encoded: None,
            attempts: 0,
            transactional: false,
        }
    }

    /// The RecordBatch bytes (encoded once).
    pub fn encode(&mut self, compression: Compression) -> Result<Bytes> {
        if let Some(b) = &self.encoded {
            return Ok(b.clone());
        }
        let base_timestamp_ms = self.records.first().map_or(0, |r| r.timestamp_ms);
        let mut builder = BatchBuilder::new(0, base_timestamp_ms).compression(compression);
        if let (Some((pid, epoch)), Some(seq)) = (self.producer, self.base_sequence) {
            builder = builder.producer(pid, epoch, seq);
        }
        builder = builder.transactional(self.transactional);
        for r in &self.records {
            builder.append(
                r.timestamp_ms,
                r.key.clone(),
                r.value.clone(),
                r.headers.clone(),
            )?;
        }
        let bytes = Bytes::from(builder.build()?);
        self.encoded = Some(bytes.clone());
        Ok(bytes)
    }

    /// Resolves every record: offsets from `base_offset`, or the error.
    pub fn complete(self, outcome: Result<(i64, i64)>) {
        for (i, r) in self.records.into_iter().enumerate() {
            let result = outcome.clone().map(|(base_offset, log_append_time_ms)| {
                let delta = i64::try_from(i).unwrap_or(i64::MAX);
                RecordMetadata {
                    topic: self.tp.topic.clone(),
                    partition: self.tp.partition,
                    offset: if base_offset < 0 {
                        -1
                    } else {
                        base_offset.saturating_add(delta)
                    },
                    timestamp_ms: if log_append_time_ms >= 0 {
                        log_append_time_ms
                    } else {
                        r.timestamp_ms
                    },
                }
            });
            let _ = r.reply.send(result);
        }
    }

    fn record_count(&self) -> i32 {
        i32::try_from(self.records.len()).unwrap_or(i32::MAX)
    }
}

/// One partition's queue.
#[derive(Default)]
pub(crate) struct PartitionQueue {
    open: Option<Batch>,
    sealed: VecDeque<Batch>,
    /// One batch in flight per partition keeps retries in order.
    in_flight: bool,
    next_sequence: i32,
    retry_at: Option<Instant>,
}

impl PartitionQueue {
    fn is_idle(&self) -> bool {
        self.open.is_none() && self.sealed.is_empty() && !self.in_flight
    }
}

/// Everything the producer has queued.
pub(crate) struct State {
    queues: HashMap<TopicPartition, PartitionQueue>,
    pub sticky: Sticky,
    /// Callers waiting in `flush`: linger is skipped while any are.
    pub flushing: u32,
    pub idempotent: bool,
    pub producer: Option<ProducerIdentity>,
    /// A batch failed for good after getting a sequence: get a new producer id before
    /// sending more, as Kafka's producer bumps its epoch.
    pub reset_producer: bool,
    /// The transaction of a transactional producer (`transactional.id` set).
    pub txn: Option<super::txn::TxnState>,
}

impl State {
    pub fn new(seed: u64, idempotent: bool) -> Self {
        State {
            queues: HashMap::new(),
            sticky: Sticky::new(seed),
            flushing: 0,
            idempotent,
            producer: None,
            reset_producer: false,
            txn: None,
        }
    }

    /// Adds a record; returns whether a batch was sealed (the sender should look).
    pub fn append(&mut self, tp: TopicPartition, record: Pending, batch_bytes: usize) -> bool {
        let queue = self.queues.entry(tp.clone()).or_default();
        let mut sealed = false;
        if let Some(open) = &queue.open {
            if !open.records.is_empty() && open.size_bytes + record.size_bytes > batch_bytes {
                if let Some(full) = queue.open.take() {
                    queue.sealed.push_back(full);
                    sealed = true;
                }
            }
        }
        let open = queue.open.get_or_insert_with(|| Batch::new(tp.clone()));
        open.size_bytes += record.size_bytes;
        open.records.push(record);
        if open.size_bytes >= batch_bytes {
            if let Some(full) = queue.open.take() {
                queue.sealed.push_back(full);
                sealed = true;
            }
        }
        sealed
    }

    /// Nothing queued and nothing in flight.
    pub fn is_idle(&self) -> bool {
        self.queues.values().all(PartitionQueue::is_idle)
    }

    pub fn any_in_flight(&self) -> bool {
        self.queues.values().any(|q| q.in_flight)
    }

    /// Takes the batches to send now (at most one per partition) and the earliest time
    /// another may become ready. Expired batches (`delivery.timeout.ms`) fail here.
    pub fn drain(
        &mut self,
        linger: Duration,
        delivery_timeout: Duration,
        closing: bool,
    ) -> (Vec<Batch>, Option<Instant>) {
        let now = Instant::now();
        let skip_linger = closing || self.flushing > 0;
        let mut ready = Vec::new();
        let mut next: Option<Instant> = None;
        let mut earliest = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        for queue in self.queues.values_mut() {
            if queue.in_flight {
                continue;
            }
            if let Some(at) = queue.retry_at.filter(|&at| at > now) {
                earliest(at);
                continue;
            }
            queue.retry_at = None;
            if queue.sealed.is_empty() {
                if let Some(open) = &queue.open {
                    let due = open.created + linger;
                    if skip_linger || due <= now {
                        queue.sealed.extend(queue.open.take());
                    } else {
                        earliest(due);
                    }
                }
            }
            while let Some(mut batch) = queue.sealed.pop_front() {
                if batch.created.elapsed() > delivery_timeout {
                    let what = format!("delivery to {}", batch.tp);
                    batch.complete(Err(ClientError::Timeout {
                        what,
                        timeout_ms: u64::try_from(delivery_timeout.as_millis()).unwrap_or(u64::MAX),
                    }));
                    continue;
                }
                if self.idempotent
                    && (batch.base_sequence.is_none() || batch.producer != self.producer)
                {
                    batch.producer = self.producer;
                    batch.base_sequence = Some(queue.next_sequence);
                    batch.encoded = None;
                    queue.next_sequence =
                        queue.next_sequence.wrapping_add(batch.record_count()) & i32::MAX;
                }
                batch.transactional = self.txn.is_some();
                queue.in_flight = true;
                ready.push(batch);
                break;
            }
        }
        (ready, next)
    }

    /// Puts a batch back to be resent after `backoff`.
    pub fn requeue(&mut self, mut batch: Batch, backoff: Duration) {
        batch.attempts = batch.attempts.saturating_add(1);
        let queue = self.queues.entry(batch.tp.clone()).or_default();
        queue.in_flight = false;
        queue.retry_at = Some(Instant::now() + backoff);
        queue.sealed.push_front(batch);
    }

    /// Fails every batch not yet sent (an aborting transaction); returns whether one of
    /// them had a sequence number already (then the sequences have a gap: the producer
    /// epoch must be bumped before it sends again).
    pub fn fail_undrained(&mut self, error: &ClientError) -> bool {
        let mut sequenced = false;
        for queue in self.queues.values_mut() {
            let open = queue.open.take();
            for batch in queue.sealed.drain(..).chain(open) {
                sequenced |= batch.base_sequence.is_some();
                batch.complete(Err(error.clone()));
            }
            queue.retry_at = None;
        }
        sequenced
    }

    /// Marks a partition's in-flight batch done.
    pub fn finished(&mut self, tp: &TopicPartition) {
        if let Some(q) = self.queues.get_mut(tp) {
            q.in_flight = false;
        }
    }

    /// New producer identity: sequences restart at 0 everywhere.
    pub fn set_producer(&mut self, producer: Option<ProducerIdentity>) {
        self.producer = producer;
        self.reset_producer = false;
        for q in self.queues.values_mut() {
            q.next_sequence = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Semaphore;

    use super::*;

    fn record(size_bytes: usize) -> (Pending, oneshot::Receiver<Result<RecordMetadata>>) {
        let (tx, rx) = oneshot::channel();
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let pending = Pending {
            timestamp_ms: 1,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: Vec::new(),
            size_bytes,
            reply: tx,
            _permit: permit,
        };
        (pending, rx)
    }

    const LINGER: Duration = Duration::from_secs(3600);
    const DELIVERY: Duration = Duration::from_secs(3600);

    #[test]
    fn batches_seal_by_size_and_one_per_partition_is_in_flight() {
        let mut s = State::new(1, true);
        s.set_producer(Some((9, 0)));
        let tp = TopicPartition::new("t", 0);
        let mut rxs = Vec::new();
        for _ in 0..5 {
            let (p, rx) = record(40);
            s.append(tp.clone(), p, 100);
            rxs.push(rx);
        }
        // 40+40 fits in 100, the third seals; so batches of 2, 2 and an open 1.
        let (ready, _) = s.drain(LINGER, DELIVERY, false);
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].records.len(), 2);
        assert_eq!(ready[0].base_sequence, Some(0));
        let (again, _) = s.drain(LINGER, DELIVERY, false);
        assert!(
            again.is_empty(),
            "the partition already has a batch in flight"
        );

        // A retried batch keeps its sequence and goes before the next one.
        let mut first = ready.into_iter().next().unwrap();
        first.encoded = Some(Bytes::from_static(b"same bytes"));
        s.requeue(first, Duration::ZERO);
        let (ready, _) = s.drain(LINGER, DELIVERY, false);
        assert_eq!(ready[0].base_sequence, Some(0));
        assert_eq!(ready[0].attempts, 1);
        assert_eq!(ready[0].encoded.as_deref(), Some(&b"same bytes"[..]));
        s.finished(&tp);
        let (ready, _) = s.drain(LINGER, DELIVERY, false);
        assert_eq!(ready[0].base_sequence, Some(2));
        s.finished(&tp);

        // The open batch waits for linger unless someone flushes.
        let (ready, next) = s.drain(LINGER, DELIVERY, false);
        assert!(ready.is_empty());
        assert!(next.is_some());
        s.flushing = 1;
        let (ready, _) = s.drain(LINGER, DELIVERY, false);
        assert_eq!(ready[0].base_sequence, Some(4));
        s.finished(&tp);
        assert!(s.is_idle());
    }

    #[test]
    fn expired_batches_fail_and_a_new_producer_id_resequences() {
        let mut s = State::new(1, true);
        s.set_producer(Some((9, 0)));
        let tp = TopicPartition::new("t", 0);
        let (p, mut rx) = record(10);
        s.append(tp.clone(), p, 100);
        let (ready, _) = s.drain(Duration::ZERO, Duration::ZERO, false);
        assert!(ready.is_empty());
        let failed = rx.try_recv().unwrap();
        assert!(matches!(failed, Err(ClientError::Timeout { .. })));

        let (p, _rx) = record(10);
        s.append(tp.clone(), p, 100);
        let (ready, _) = s.drain(Duration::ZERO, DELIVERY, false);
        let batch = ready.into_iter().next().unwrap();
        assert_eq!(batch.base_sequence, Some(0));
        s.requeue(batch, Duration::ZERO);
        s.set_producer(Some((10, 0)));
        let (ready, _) = s.drain(Duration::ZERO, DELIVERY, false);
        assert_eq!(ready[0].producer, Some((10, 0)));
        assert_eq!(ready[0].base_sequence, Some(0));
        assert!(
            ready[0].encoded.is_none(),
            "re-encoded under the new producer id"
        );
    }
}
