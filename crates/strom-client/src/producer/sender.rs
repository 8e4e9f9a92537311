//! The producer's background sender: drains ready batches, groups them by leader, sends
//! Produce requests, and retries or completes each batch from the response.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    InitProducerIdRequest, ProduceRequest, ProduceResponse, ProducerId, TransactionalId,
};

use super::batch::Batch;
use super::Inner;
use crate::cluster::{str_bytes, topic_name, Target};
use crate::config::Acks;
use crate::error::{ClientError, Result};
use crate::types::TopicPartition;

/// The longest the sender sleeps without being woken.
const IDLE_WAIT_MS: u64 = 100;

/// Runs until the producer is closed and everything queued has completed.
pub(crate) async fn run(inner: Arc<Inner>) {
    loop {
        if needs_producer_id(&inner) {
            init_producer_id(&inner).await;
        }
        let closing = inner.closed.load(Ordering::SeqCst);
        let (ready, next) = match inner.state.lock() {
            Ok(mut s) => s.drain(
                Duration::from_millis(inner.config.linger_ms),
                Duration::from_millis(inner.config.delivery_timeout_ms),
                closing,
            ),
            Err(_) => return,
        };
        // A transactional producer adds new partitions to the transaction first.
        let ready = if ready.is_empty() {
            ready
        } else {
            super::txn::prepare(&inner, ready).await
        };
        if !ready.is_empty() {
            dispatch(&inner, ready).await;
        }
        if closing && inner.state.lock().map_or(true, |s| s.is_idle()) {
            inner.progress.notify_waiters();
            return;
        }
        let idle_until = Instant::now() + Duration::from_millis(IDLE_WAIT_MS);
        let until = next.map_or(idle_until, |n| n.min(idle_until));
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep_until(until.into()) => {}
        }
    }
}

fn needs_producer_id(inner: &Inner) -> bool {
    inner.state.lock().is_ok_and(|s| {
        // A transactional producer's id comes from init_transactions (and its epoch bump
        // from abort_transaction), never from here.
        s.txn.is_none()
            && s.idempotent
            && (s.producer.is_none() || s.reset_producer)
            && !s.any_in_flight()
    })
}

/// InitProducerId (non-transactional). A broker without it gets a plain producer.
async fn init_producer_id(inner: &Inner) {
    let result = inner
        .cluster
        .call(&Target::Any, |_| {
            Ok(InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(i32::MAX)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1))
        })
        .await
        .and_then(|r| {
            ClientError::check(r.error_code, None, "InitProducerId")?;
            Ok((r.producer_id.0, r.producer_epoch))
        });
    match result {
        Ok(identity) => {
            tracing::debug!(producer_id = identity.0, epoch = identity.1, "producer id");
            if let Ok(mut s) = inner.state.lock() {
                s.set_producer(Some(identity));
            }
        }
        Err(ClientError::UnsupportedApi { .. }) => {
            tracing::warn!("broker does not support InitProducerId; idempotence off");
            if let Ok(mut s) = inner.state.lock() {
                s.idempotent = false;
                s.set_producer(None);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "InitProducerId failed; retrying");
            tokio::time::sleep(Duration::from_millis(inner.config.client.retry_backoff_ms)).await;
        }
    }
}

/// Looks up each batch's leader and starts one Produce request per leader.
async fn dispatch(inner: &Arc<Inner>, ready: Vec<Batch>) {
    let mut by_leader: HashMap<i32, Vec<Batch>> = HashMap::new();
    for batch in ready {
        match inner
            .cluster
            .leader(&batch.tp.topic, batch.tp.partition)
            .await
        {
            Ok(leader) => by_leader.entry(leader).or_default().push(batch),
            Err(e) => finish(inner, batch, Err(e)),
        }
    }
    for (leader, batches) in by_leader {
        let inner = inner.clone();
        tokio::spawn(async move {
            send_to_leader(&inner, leader, batches).await;
            inner.wake.notify_one();
        });
    }
}

async fn send_to_leader(inner: &Arc<Inner>, leader: i32, batches: Vec<Batch>) {
    let (request, batches) = produce_request(inner, batches);
    if batches.is_empty() {
        return;
    }
    if inner.config.acks == Acks::None {
        let sent = send_no_ack(inner, leader, &request).await;
        for batch in batches {
            finish(inner, batch, sent.clone().map(|()| (-1, -1)));
        }
        return;
    }
    match send_with_ack(inner, leader, request).await {
        Ok(response) => {
            let mut results = partition_results(response);
            for batch in batches {
                let outcome = results.remove(&batch.tp).unwrap_or_else(|| {
                    Err(ClientError::Protocol(format!(
                        "no Produce result for {}",
                        batch.tp
                    )))
                });
                finish(inner, batch, outcome);
            }
        }
        Err(e) => {
            for batch in batches {
                finish(inner, batch, Err(e.clone()));
            }
        }
    }
}

/// One Produce request for the batches that encode; the others fail here.
fn produce_request(inner: &Inner, batches: Vec<Batch>) -> (ProduceRequest, Vec<Batch>) {
    let mut topics: BTreeMap<String, Vec<PartitionProduceData>> = BTreeMap::new();
    let mut encoded = Vec::with_capacity(batches.len());
    for mut batch in batches {
        match batch.encode(inner.config.compression) {
            Ok(bytes) => {
                topics.entry(batch.tp.topic.clone()).or_default().push(
                    PartitionProduceData::default()
                        .with_index(batch.tp.partition)
                        .with_records(Some(bytes)),
                );
                encoded.push(batch);
            }
            Err(e) => finish(inner, batch, Err(e)),
        }
    }
    let timeout_ms = i32::try_from(inner.config.client.request_timeout_ms).unwrap_or(i32::MAX);
    // Transactional batches travel in requests that name the transactional id.
    let transactional_id = inner
        .config
        .transactional_id
        .as_deref()
        .map(|id| TransactionalId(str_bytes(id)));
    let request = ProduceRequest::default()
        .with_transactional_id(transactional_id)
        .with_acks(inner.config.acks.wire())
        .with_timeout_ms(timeout_ms)
        .with_topic_data(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    TopicProduceData::default()
                        .with_name(topic_name(&t))
                        .with_partition_data(ps)
                })
                .collect(),
        );
    (request, encoded)
}

async fn send_with_ack(
    inner: &Inner,
    leader: i32,
    request: ProduceRequest,
) -> Result<ProduceResponse> {
    let response = inner
        .cluster
        .call(&Target::Broker(leader), |_| Ok(request))
        .await?;
    let lost = inner
        .lost_responses
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if lost {
        return Err(ClientError::Timeout {
            what: "Produce (test hook dropped the response)".into(),
            timeout_ms: 0,
        });
    }
    Ok(response)
}

/// Each partition's base offset and LogAppendTime (-1 for CreateTime), or its error.
fn partition_results(response: ProduceResponse) -> HashMap<TopicPartition, Result<(i64, i64)>> {
    let mut results = HashMap::new();
    for t in response.responses {
        for p in t.partition_responses {
            let tp = TopicPartition::new(t.name.0.to_string(), p.index);
            let outcome = match p.error_code {
                0 => Ok((p.base_offset, p.log_append_time_ms)),
                // The broker already has this batch: a retry of a write that succeeded.
                46 => Ok((-1, -1)),
                code => Err(ClientError::from_code(
                    code,
                    p.error_message.map(|m| m.to_string()),
                    format!("produce to {tp}"),
                )
                .unwrap_or(ClientError::Closed)),
            };
            results.insert(tp, outcome);
        }
    }
    results
}

async fn send_no_ack(inner: &Inner, leader: i32, request: &ProduceRequest) -> Result<()> {
    let conn = inner.cluster.connection(&Target::Broker(leader)).await?;
    conn.send_no_response(request).await.map(|_| ())
}

/// Completes, retries or fails one batch.
fn finish(inner: &Inner, batch: Batch, outcome: Result<(i64, i64)>) {
    let Ok(mut state) = inner.state.lock() else {
        return;
    };
    match outcome {
        Ok(offsets) => {
            state.finished(&batch.tp);
            batch.complete(Ok(offsets));
        }
        Err(e) if e.is_retriable() && batch.attempts < inner.config.retries => {
            if e.needs_metadata_refresh() {
                inner.cluster.invalidate_metadata();
            }
            let backoff =
                Duration::from_millis(inner.cluster.backoff().delay_ms(batch.attempts + 1));
            tracing::debug!(tp = %batch.tp, error = %e, attempt = batch.attempts + 1, "retrying batch");
            state.requeue(batch, backoff);
        }
        Err(e) => {
            state.finished(&batch.tp);
            if let Some(txn) = &mut state.txn {
                // The transaction cannot commit without this batch; its sequence is lost,
                // so the abort bumps the epoch (KIP-360).
                txn.fail(&e);
                txn.bump_epoch = true;
            } else if state.idempotent && batch.base_sequence.is_some() {
                state.reset_producer = true;
            }
            tracing::debug!(tp = %batch.tp, error = %e, "batch failed");
            batch.complete(Err(e));
        }
    }
    drop(state);
    inner.progress.notify_waiters();
}
