//! The producer: records go into per-partition batches (`batch.size`, `linger.ms`), a
//! background sender ships them to partition leaders, and each record's future resolves
//! to its partition, offset and timestamp (or an error). Idempotent by default; with
//! `transactional.id`, transactional (`txn`: init, begin, send offsets, commit, abort).

mod batch;
pub mod partitioner;
mod sender;
mod txn;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_records::Header;
use tokio::sync::{oneshot, Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::config::ProducerConfig;
use crate::error::{ClientError, Result};
use crate::retry::RetryState;
use crate::types::TopicPartition;
use batch::{Pending, State};
use partitioner::partition_for_key;

/// Bytes a record takes beyond its key, value and headers (a generous varint estimate).
const RECORD_OVERHEAD_BYTES: usize = 25;
/// How often `flush` re-checks while waiting (besides being woken).
const FLUSH_POLL_MS: u64 = 50;

/// A record to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    pub topic: String,
    /// `None`: the partitioner chooses (murmur2 of the key, or sticky when keyless).
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    /// `None`: now.
    pub timestamp_ms: Option<i64>,
}

impl ProducerRecord {
    /// A keyless record with a value.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }

    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    pub fn header(mut self, key: impl Into<Bytes>, value: Option<Bytes>) -> Self {
        self.headers.push(Header::new(key, value));
        self
    }

    pub fn timestamp_ms(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    fn size_bytes(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len) + 10)
            .sum();
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + headers
            + RECORD_OVERHEAD_BYTES
    }
}

/// Where an acknowledged record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    /// -1 with `acks=0` (the broker does not answer).
    pub offset: i64,
    /// The record's timestamp, or the broker's when the topic uses LogAppendTime.
    pub timestamp_ms: i64,
}

/// Resolves when the record is acknowledged or has failed for good.
#[derive(Debug)]
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Result<RecordMetadata>>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ClientError::Closed)))
    }
}

pub(crate) struct Inner {
    cluster: Arc<Cluster>,
    config: ProducerConfig,
    state: Mutex<State>,
    /// Wakes the sender (new full batch, completion, flush, close).
    wake: Notify,
    /// Wakes flushers when batches complete.
    progress: Notify,
    buffer: Arc<Semaphore>,
    closed: AtomicBool,
    /// Test hook: responses to drop (as if they timed out) so batches are resent.
    lost_responses: AtomicU32,
}

/// Closes the producer when the last handle is dropped (the sender then drains and stops).
struct CloseOnDrop(Arc<Inner>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
        self.0.wake.notify_one();
    }
}

/// The producer. Cheap to clone; clones share batches, connections and the sender task.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
    _close: Arc<CloseOnDrop>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Producer {
    /// A producer; must be called inside a tokio runtime (it spawns the sender task).
    pub fn new(config: ProducerConfig) -> Result<Producer> {
        if config.batch_bytes == 0 || config.buffer_memory_bytes == 0 {
            return Err(ClientError::Config {
                key: "batch.size / buffer.memory".into(),
                reason: "must be positive".into(),
            });
        }
        let cluster = Cluster::new(config.client.clone())?;
        let permits = config.buffer_memory_bytes.min(Semaphore::MAX_PERMITS);
        let seed = now_ms().unsigned_abs() ^ u64::from(std::process::id());
        let mut state = State::new(seed, config.enable_idempotence);
        if let Some(id) = &config.transactional_id {
            if !config.enable_idempotence {
                return Err(ClientError::Config {
                    key: "transactional.id".into(),
                    reason: "needs enable.idempotence=true".into(),
                });
            }
            state.txn = Some(txn::TxnState::new(id.clone()));
        }
        let inner = Arc::new(Inner {
            cluster,
            state: Mutex::new(state),
            config,
            wake: Notify::new(),
            progress: Notify::new(),
            buffer: Arc::new(Semaphore::new(permits)),
            closed: AtomicBool::new(false),
            lost_responses: AtomicU32::new(0),
        });
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ClientError::InvalidArgument(
                "Producer::new must be called inside a tokio runtime".into(),
            )
        })?;
        let task = runtime.spawn(sender::run(inner.clone()));
        Ok(Producer {
            _close: Arc::new(CloseOnDrop(inner.clone())),
            inner,
            task: Arc::new(Mutex::new(Some(task))),
        })
    }

    /// Queues a record; the returned future resolves when it is acknowledged. Waits up to
    /// `max.block.ms` for the topic's metadata and for buffer space. A transactional
    /// producer sends only inside a transaction.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(ClientError::Closed);
        }
        if let Some(refused) = self.transaction_refusal()? {
            return Err(refused);
        }
        let size_bytes = record.size_bytes();
        if size_bytes > self.inner.config.max_request_bytes {
            return Err(ClientError::Broker {
                code: 10,
                name: "MESSAGE_TOO_LARGE",
                message: Some(format!(
                    "record of about {size_bytes} bytes is larger than max.request.size {}",
                    self.inner.config.max_request_bytes
                )),
                context: format!("send to {}", record.topic),
            });
        }
        let partitions = self.partition_count(&record.topic).await?;
        let permit = self.reserve(size_bytes).await?;
        let (tx, rx) = oneshot::channel();
        let timestamp_ms = record.timestamp_ms.unwrap_or_else(now_ms);
        let mut state = self.lock_state()?;
        let partition = match record.partition {
            Some(p) if (0..partitions).contains(&p) => p,
            Some(p) => {
                return Err(ClientError::InvalidArgument(format!(
                    "partition {p} of {} does not exist ({partitions} partitions)",
                    record.topic
                )))
            }
            None => match &record.key {
                Some(key) => partition_for_key(key, partitions),
                None => {
                    let p = state.sticky.partition(&record.topic, partitions);
                    let batch_bytes = self.inner.config.batch_bytes;
                    state
                        .sticky
                        .appended(&record.topic, size_bytes, batch_bytes, partitions);
                    p
                }
            },
        };
        let tp = TopicPartition::new(record.topic.clone(), partition);
        let pending = Pending {
            timestamp_ms,
            key: record.key,
            value: record.value,
            headers: record.headers,
            size_bytes,
            reply: tx,
            _permit: permit,
        };
        let sealed = state.append(tp, pending, self.inner.config.batch_bytes);
        drop(state);
        if sealed {
            self.inner.wake.notify_one();
        }
        Ok(DeliveryFuture { rx })
    }

    /// How long waiting for queued and in-flight records may take: a record's delivery
    /// timeout plus one request's.
    fn drain_limit_ms(&self) -> u64 {
        self.inner
            .config
            .delivery_timeout_ms
            .saturating_add(self.inner.config.client.request_timeout_ms)
    }

    /// Sends everything queued now and waits until each record is acknowledged or failed.
    pub async fn flush(&self) -> Result<()> {
        self.lock_state()?.flushing += 1;
        self.inner.wake.notify_one();
        let limit_ms = self.drain_limit_ms();
        let deadline = Instant::now() + Duration::from_millis(limit_ms);
        let result = loop {
            if self.lock_state()?.is_idle() {
                break Ok(());
            }
            if Instant::now() >= deadline {
                break Err(ClientError::Timeout {
                    what: "flush".into(),
                    timeout_ms: limit_ms,
                });
            }
            let _ = tokio::time::timeout(
                Duration::from_millis(FLUSH_POLL_MS),
                self.inner.progress.notified(),
            )
            .await;
        };
        let mut state = self.lock_state()?;
        state.flushing = state.flushing.saturating_sub(1);
        result
    }

    /// Flushes, stops the sender and closes connections. Later sends fail with `Closed`.
    pub async fn close(&self) -> Result<()> {
        let flushed = self.flush().await;
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
        self.inner.cluster.close().await;
        flushed
    }

    /// Test hook: the next `count` Produce responses are dropped as if they timed out, so
    /// their batches are sent again (idempotence must keep them from being written twice).
    #[doc(hidden)]
    pub fn drop_next_responses(&self, count: u32) {
        self.inner.lost_responses.store(count, Ordering::SeqCst);
    }

    async fn partition_count(&self, topic: &str) -> Result<i32> {
        let mut retry = RetryState::new(
            self.inner.cluster.backoff(),
            u32::MAX,
            Duration::from_millis(self.inner.config.max_block_ms),
        );
        loop {
            match self.inner.cluster.topic(topic, true).await {
                Ok(t) if !t.partitions.is_empty() => {
                    return i32::try_from(t.partitions.len())
                        .map_err(|_| ClientError::Protocol("too many partitions".into()))
                }
                Ok(_) => self.inner.cluster.invalidate_metadata(),
                // A missing topic may be auto-created: wait for it, as Kafka's producer does.
                Err(e) if !e.is_retriable() && !matches!(e, ClientError::UnknownTopic { .. }) => {
                    return Err(e)
                }
                Err(e) => {
                    tracing::debug!(topic, error = %e, "waiting for topic metadata");
                    self.inner.cluster.invalidate_metadata();
                }
            }
            match retry.next_delay() {
                Some(delay) => tokio::time::sleep(delay).await,
                None => {
                    return Err(ClientError::Timeout {
                        what: format!("metadata of topic {topic}"),
                        timeout_ms: self.inner.config.max_block_ms,
                    })
                }
            }
        }
    }

    async fn reserve(&self, size_bytes: usize) -> Result<tokio::sync::OwnedSemaphorePermit> {
        let cap = self
            .inner
            .config
            .buffer_memory_bytes
            .min(Semaphore::MAX_PERMITS);
        let permits = u32::try_from(size_bytes.min(cap)).unwrap_or(u32::MAX);
        let max_block_ms = self.inner.config.max_block_ms;
        tokio::time::timeout(
            Duration::from_millis(max_block_ms),
            self.inner.buffer.clone().acquire_many_owned(permits),
        )
        .await
        .map_err(|_| ClientError::BufferFull { max_block_ms })?
        .map_err(|_| ClientError::Closed)
    }

    fn lock_state(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.inner
            .state
            .lock()
            .map_err(|_| ClientError::Protocol("producer state poisoned".into()))
    }
}

pub(crate) use strom_records::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_outside_a_runtime_is_an_error_not_a_panic() {
        let err = Producer::new(ProducerConfig::new("127.0.0.1:1"))
            .err()
            .unwrap();
        assert!(matches!(err, ClientError::InvalidArgument(_)), "{err}");
    }

    #[tokio::test]
    async fn oversized_records_and_sends_after_close_are_refused() {
        let mut config = ProducerConfig::new("127.0.0.1:1");
        config.max_request_bytes = 100;
        let producer = Producer::new(config).unwrap();
        let err = producer
            .send(ProducerRecord::new("t", vec![0u8; 200]))
            .await
            .unwrap_err();
        assert_eq!(err.kafka_name(), Some("MESSAGE_TOO_LARGE"));
        producer.close().await.unwrap();
        let err = producer
            .send(ProducerRecord::new("t", "x"))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Closed));
    }
}
