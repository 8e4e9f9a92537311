//! Transactions: list (every broker's coordinators), describe (at the id's coordinator),
//! and abort an id's ongoing transaction.

use std::collections::BTreeSet;
use std::time::Duration;

use kafka_protocol::messages::{
    DescribeTransactionsRequest, InitProducerIdRequest, ListTransactionsRequest, TransactionalId,
};

use super::Admin;
use crate::cluster::{str_bytes, Target};
use crate::error::{ClientError, Result};
use crate::types::TopicPartition;

/// Kafka's CONCURRENT_TRANSACTIONS: the coordinator is still writing markers.
const CONCURRENT_TRANSACTIONS: i16 = 51;
/// How long [`Admin::abort_transaction`] waits for the abort's markers.
const ABORT_WAIT: Duration = Duration::from_secs(60);

/// A transaction as ListTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TransactionListing {
    pub transactional_id: String,
    pub producer_id: i64,
    /// `Ongoing`, `CompleteCommit`, ...
    pub state: String,
}

/// A transactional id as DescribeTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    pub transactional_id: String,
    pub coordinator: i32,
    pub state: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    /// When the ongoing transaction began (-1: none).
    pub start_time_ms: i64,
    pub partitions: Vec<TopicPartition>,
}

impl Admin {
    /// Every transactional id of every broker matching the filters (empty: all), sorted.
    pub async fn list_transactions(
        &self,
        states: &[String],
        producer_ids: &[i64],
    ) -> Result<Vec<TransactionListing>> {
        let meta = self.metadata().await?;
        let mut listed = BTreeSet::new();
        for broker in meta.brokers.keys() {
            let target = Target::Broker(*broker);
            let cluster = &self.cluster;
            let r = cluster
                .retry("list transactions", || async {
                    let r = cluster
                        .call(&target, |_| {
                            Ok(ListTransactionsRequest::default()
                                .with_state_filters(states.iter().map(|s| str_bytes(s)).collect())
                                .with_producer_id_filters(
                                    producer_ids
                                        .iter()
                                        .map(|p| kafka_protocol::messages::ProducerId(*p))
                                        .collect(),
                                ))
                        })
                        .await?;
                    ClientError::check(
                        r.error_code,
                        None,
                        format!("list transactions on broker {broker}"),
                    )?;
                    Ok(r)
                })
                .await?;
            for t in r.transaction_states {
                listed.insert(TransactionListing {
                    transactional_id: t.transactional_id.0.to_string(),
                    producer_id: t.producer_id.0,
                    state: t.transaction_state.to_string(),
                });
            }
        }
        Ok(listed.into_iter().collect())
    }

    /// Describes one transactional id at its coordinator.
    pub async fn describe_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<TransactionDescription> {
        let target = Target::TransactionCoordinator(transactional_id.to_string());
        let cluster = &self.cluster;
        let d = cluster
            .retry("describe transaction", || async {
                let r = cluster
                    .call(&target, |_| {
                        Ok(
                            DescribeTransactionsRequest::default().with_transactional_ids(vec![
                                TransactionalId(str_bytes(transactional_id)),
                            ]),
                        )
                    })
                    .await?;
                let d = r.transaction_states.into_iter().next().ok_or_else(|| {
                    ClientError::Protocol("DescribeTransactions: empty response".into())
                })?;
                ClientError::check(
                    d.error_code,
                    None,
                    format!("describe transactional id {transactional_id}"),
                )?;
                Ok(d)
            })
            .await?;
        let coordinator = cluster.txn_coordinator(transactional_id).await?;
        Ok(TransactionDescription {
            transactional_id: d.transactional_id.0.to_string(),
            coordinator,
            state: d.transaction_state.to_string(),
            producer_id: d.producer_id.0,
            producer_epoch: d.producer_epoch,
            timeout_ms: d.transaction_timeout_ms,
            start_time_ms: d.transaction_start_time_ms,
            partitions: d
                .topics
                .into_iter()
                .flat_map(|t| {
                    let topic = t.topic.0.to_string();
                    t.partitions
                        .into_iter()
                        .map(move |p| TopicPartition::new(topic.clone(), p))
                })
                .collect(),
        })
    }

    /// Aborts the ongoing transaction of `transactional_id` the way a new producer instance
    /// does: InitProducerId with the id makes the coordinator abort the transaction (its
    /// markers written) and bump the epoch, which fences the producer that was running it.
    /// Waits until the abort is complete. An id with no ongoing transaction is an error
    /// (INVALID_TXN_STATE), so that a live producer is not fenced for nothing.
    pub async fn abort_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<TransactionDescription> {
        let before = self.describe_transaction(transactional_id).await?;
        if before.state != "Ongoing" {
            return Err(ClientError::from_code(
                48,
                Some(format!(
                    "transactional id {transactional_id} has no ongoing transaction (it is {})",
                    before.state
                )),
                format!("abort transaction of {transactional_id}"),
            )
            .unwrap_or(ClientError::Closed));
        }
        let target = Target::TransactionCoordinator(transactional_id.to_string());
        let deadline = tokio::time::Instant::now() + ABORT_WAIT;
        loop {
            let cluster = &self.cluster;
            let r = cluster
                .retry("abort transaction", || async {
                    cluster
                        .call(&target, |_| {
                            Ok(InitProducerIdRequest::default()
                                .with_transactional_id(Some(TransactionalId(str_bytes(
                                    transactional_id,
                                ))))
                                .with_transaction_timeout_ms(before.timeout_ms)
                                .with_producer_id(kafka_protocol::messages::ProducerId(-1))
                                .with_producer_epoch(-1))
                        })
                        .await
                })
                .await?;
            // CONCURRENT_TRANSACTIONS: the abort's markers are being written; ask again.
            if r.error_code == CONCURRENT_TRANSACTIONS && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            ClientError::check(
                r.error_code,
                None,
                format!("abort transaction of {transactional_id}"),
            )?;
            return self.describe_transaction(transactional_id).await;
        }
    }
}
