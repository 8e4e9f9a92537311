//! The edge to the cluster: creates `kafkastore.topic` (one partition, compacted) when it
//! is missing, reads it from the beginning into the [`Store`] on a task of its own, and
//! appends the records of writes (acks=all, idempotent) and waits until its own reader
//! has applied them. Every registry process runs one; all of them read the same records
//! in the same order and so hold the same store.

use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use bytes::Bytes;
use strom_client::{
    Acks, Admin, ClientConfig, ClientError, Consumer, ConsumerConfig, NewTopic, OffsetSpec,
    Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::RegistryConfig;
use crate::error::{RegistryError, RestError};
use crate::service::Write;
use crate::store::Store;

/// Longest single poll of the reader.
const POLL_MS: u64 = 200;
/// The wait between attempts after the reader failed.
const READ_RETRY_MS: u64 = 500;

/// The store and the Kafka clients that keep it.
pub struct KafkaStore {
    topic: String,
    admin: Admin,
    producer: Producer,
    store: Arc<RwLock<Store>>,
    /// The store's next offset, published after each applied poll.
    applied: watch::Receiver<i64>,
    reader: JoinHandle<()>,
    timeout: Duration,
}

fn client_config(config: &RegistryConfig, role: &str) -> ClientConfig {
    let mut client = ClientConfig::new(&config.bootstrap_servers);
    client.client_id = format!("strom-registry-{role}");
    client.request_timeout_ms = config.store_timeout_ms.max(1_000);
    client.default_api_timeout_ms = config.init_timeout_ms;
    client
}

fn kafka_error(topic: &str) -> impl Fn(ClientError) -> RegistryError + '_ {
    move |source| RegistryError::Kafka {
        topic: topic.to_string(),
        source,
    }
}

impl KafkaStore {
    /// Creates the topic if needed, starts the reader and reads to the end of the topic.
    pub async fn start(config: &RegistryConfig) -> Result<KafkaStore, RegistryError> {
        let topic = config.topic.clone();
        let admin = Admin::new(client_config(config, "admin")).map_err(kafka_error(&topic))?;
        ensure_topic(&admin, config).await?;
        let mut producer_config = ProducerConfig::new("");
        producer_config.client = client_config(config, "writer");
        producer_config.acks = Acks::All;
        producer_config.enable_idempotence = true;
        producer_config.linger_ms = 0;
        producer_config.max_block_ms = config.store_timeout_ms;
        producer_config.delivery_timeout_ms = config.store_timeout_ms.max(1_000);
        let producer = Producer::new(producer_config).map_err(kafka_error(&topic))?;
        let store = Arc::new(RwLock::new(Store::new()));
        let (tx, applied) = watch::channel(0i64);
        let reader = tokio::spawn(read_forever(
            client_config(config, "reader"),
            topic.clone(),
            store.clone(),
            tx,
        ));
        let kafka = KafkaStore {
            topic,
            admin,
            producer,
            store,
            applied,
            reader,
            timeout: Duration::from_millis(config.store_timeout_ms),
        };
        let init = Duration::from_millis(config.init_timeout_ms);
        kafka
            .catch_up(init)
            .await
            .map_err(|e| RegistryError::Store {
                topic: kafka.topic.clone(),
                reason: format!("cannot read the topic to its end at startup: {}", e.message),
            })?;
        Ok(kafka)
    }

    /// The store as read so far.
    pub fn read(&self) -> RwLockReadGuard<'_, Store> {
        match self.store.read() {
            Ok(guard) => guard,
            // A panic while applying cannot happen outside tests; the state is still the
            // last fully applied one.
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Waits until the reader has applied everything in the topic now (Confluent's
    /// "wait until the reader reaches the last offset").
    pub async fn catch_up(&self, timeout: Duration) -> Result<(), RestError> {
        let tp = TopicPartition::new(self.topic.clone(), 0);
        let end = tokio::time::timeout(
            timeout,
            self.admin
                .list_offsets(std::slice::from_ref(&tp), OffsetSpec::Latest),
        )
        .await
        .map_err(|_| RestError::timeout("Timed out reading the end offset of the schemas topic"))?
        .map_err(|e| {
            RestError::store(format!("cannot read the end offset of {}: {e}", self.topic))
        })?;
        let end = end.get(&tp).map_or(0, |o| o.offset);
        self.wait_applied(end, timeout).await
    }

    /// Waits until the store's next offset is at least `offset`.
    pub async fn wait_applied(&self, offset: i64, timeout: Duration) -> Result<(), RestError> {
        let mut applied = self.applied.clone();
        let waited = tokio::time::timeout(timeout, applied.wait_for(|next| *next >= offset)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(RestError::store("the schemas topic reader stopped")),
            Err(_) => Err(RestError::timeout(format!(
                "Timed out waiting for the schemas topic reader to reach offset {offset}"
            ))),
        }
    }

    /// Appends `writes` in order and returns the offset after the last one.
    pub async fn append(&self, writes: &[Write]) -> Result<i64, RestError> {
        let mut deliveries = Vec::with_capacity(writes.len());
        for write in writes {
            let (key, value) = write.encode();
            let mut record = ProducerRecord::new(self.topic.clone(), Bytes::new())
                .key(key)
                .partition(0);
            record.value = value.map(Bytes::from);
            let delivery =
                self.producer.send(record).await.map_err(|e| {
                    RestError::store(format!("cannot write to {}: {e}", self.topic))
                })?;
            deliveries.push(delivery);
        }
        let mut next = 0;
        for delivery in deliveries {
            let meta = tokio::time::timeout(self.timeout, delivery)
                .await
                .map_err(|_| RestError::timeout("Write to the Kafka store timed out"))?
                .map_err(|e| RestError::store(format!("cannot write to {}: {e}", self.topic)))?;
            next = next.max(meta.offset + 1);
        }
        Ok(next)
    }

    pub async fn close(self) {
        self.reader.abort();
        if let Err(e) = self.producer.close().await {
            tracing::debug!(error = %e, "closing the registry's producer");
        }
        self.admin.close().await;
    }
}

/// Creates the topic (1 partition, compacted) or checks the one there.
async fn ensure_topic(admin: &Admin, config: &RegistryConfig) -> Result<(), RegistryError> {
    let topic = &config.topic;
    let new = NewTopic::new(topic.clone(), 1, config.topic_replication_factor)
        .config("cleanup.policy", "compact");
    match admin.create_topic(&new).await {
        Ok(()) => {
            tracing::info!(topic, "created the schemas topic");
        }
        Err(e) if e.code() == Some(36) => {} // TOPIC_ALREADY_EXISTS
        Err(source) => {
            return Err(RegistryError::Kafka {
                topic: topic.clone(),
                source,
            })
        }
    }
    let partitions = admin
        .partitions_of(topic)
        .await
        .map_err(kafka_error(topic))?;
    if partitions.len() != 1 {
        return Err(RegistryError::Store {
            topic: topic.clone(),
            reason: format!(
                "the schemas topic has {} partitions; it must have exactly 1 (records are read in one order)",
                partitions.len()
            ),
        });
    }
    Ok(())
}

/// The reader: from offset 0, forever; each polled batch is applied under the write lock,
/// then the next offset is published.
async fn read_forever(
    client: ClientConfig,
    topic: String,
    store: Arc<RwLock<Store>>,
    applied: watch::Sender<i64>,
) {
    let tp = TopicPartition::new(topic.clone(), 0);
    loop {
        let next = match store.read() {
            Ok(s) => s.next_offset(),
            Err(p) => p.into_inner().next_offset(),
        };
        let result = read_from(&client, &tp, next, &store, &applied).await;
        if let Err(e) = result {
            tracing::warn!(topic, error = %e, "the schemas topic reader failed; retrying");
        }
        tokio::time::sleep(Duration::from_millis(READ_RETRY_MS)).await;
    }
}

async fn read_from(
    client: &ClientConfig,
    tp: &TopicPartition,
    from: i64,
    store: &Arc<RwLock<Store>>,
    applied: &watch::Sender<i64>,
) -> Result<(), ClientError> {
    let mut config = ConsumerConfig::new("");
    config.client = client.clone();
    config.enable_auto_commit = false;
    let mut consumer = Consumer::new(config)?;
    consumer.assign(vec![tp.clone()]).await?;
    consumer.seek(tp, from).await?;
    loop {
        let records = consumer.poll(Duration::from_millis(POLL_MS)).await?;
        let next = {
            let mut store = match store.write() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            for r in &records {
                store.apply(r.offset, r.key.as_deref(), r.value.as_deref());
            }
            // Past records compaction removed or control batches: the position is the
            // truth about what was read.
            let position = consumer.position(tp).unwrap_or(0);
            store.advance_to(position);
            store.next_offset()
        };
        applied.send_replace(next);
    }
}
