//! The transactional producer (`transactional.id` set): Kafka's transaction protocol as
//! the Java producer speaks it (transaction version 1, explicit AddPartitionsToTxn).
//!
//! - `init_transactions`: FindCoordinator(TRANSACTION), then InitProducerId with the
//!   transactional id; the coordinator fences older producers of the id (epoch bump) and
//!   finishes (aborts) whatever transaction they left open.
//! - `begin_transaction`; `send` as usual: before the sender ships the first batch of a
//!   partition in this transaction it adds the partition with one AddPartitionsToTxn for
//!   every new partition of the drained batches (KIP-890 part 1 makes the partition
//!   leader refuse a transactional batch of a partition that was not added).
//! - `send_offsets_to_transaction`: AddOffsetsToTxn, then TxnOffsetCommit to the group
//!   coordinator with the consumer's generation and member id (a zombie is refused).
//! - `commit_transaction`: flush (every batch acknowledged), then EndTxn(commit). The
//!   coordinator answers once PrepareCommit is durable; the markers follow.
//! - `abort_transaction`: unsent batches fail, in-flight ones finish, EndTxn(abort); if a
//!   batch failed after it got a sequence number, InitProducerId with the current
//!   producer id and epoch bumps the epoch (KIP-360) so sequences restart cleanly.
//!
//! Errors are fatal or abortable as Java classifies them ([`ClientError::is_fatal_for_transaction`]):
//! after an abortable error only `abort_transaction` is accepted; after a fatal one
//! nothing is (close the producer).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId,
    InitProducerIdRequest, ProducerId, TransactionalId, TxnOffsetCommitRequest,
};
use strom_protocol::ErrorCode;

use super::batch::{Batch, ProducerIdentity};
use super::{Inner, Producer};
use crate::cluster::{str_bytes, topic_name, Target};
use crate::error::{ClientError, Result};
use crate::retry::RetryState;
use crate::types::{ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition};

/// The longest wait between retries of CONCURRENT_TRANSACTIONS (the previous transaction's
/// markers are being written; that takes milliseconds, not seconds).
const CONCURRENT_TXN_BACKOFF_MS: u64 = 20;

/// Where a transactional producer is.
#[derive(Debug, Clone)]
pub(crate) enum Phase {
    /// `init_transactions` not yet done.
    Uninitialized,
    /// Between transactions.
    Ready,
    InTransaction,
    /// `commit_transaction` is flushing or ending the transaction.
    Committing,
    /// `abort_transaction` is draining or ending the transaction.
    Aborting,
    /// Only `abort_transaction` is accepted.
    Abortable(ClientError),
    /// Nothing is accepted.
    Fatal(ClientError),
}

/// The transaction state of a transactional producer (in the accumulator's lock, so the
/// sender sees it with the batches).
#[derive(Debug)]
pub(crate) struct TxnState {
    pub transactional_id: String,
    pub phase: Phase,
    /// Partitions the coordinator has in the current transaction.
    pub partitions: BTreeSet<TopicPartition>,
    /// Something (partitions or offsets) was added: the transaction needs an EndTxn.
    pub started: bool,
    /// A sequenced batch failed: bump the epoch after the abort (KIP-360).
    pub bump_epoch: bool,
}

impl TxnState {
    pub fn new(transactional_id: String) -> Self {
        TxnState {
            transactional_id,
            phase: Phase::Uninitialized,
            partitions: BTreeSet::new(),
            started: false,
            bump_epoch: false,
        }
    }

    /// Records a failure: fatal errors end the producer; others make the running
    /// transaction abortable.
    pub fn fail(&mut self, error: &ClientError) {
        if matches!(self.phase, Phase::Fatal(_)) {
            return;
        }
        if error.is_fatal_for_transaction() {
            self.phase = Phase::Fatal(error.clone());
        } else if matches!(self.phase, Phase::InTransaction | Phase::Committing) {
            self.phase = Phase::Abortable(error.clone());
        }
    }

    /// Whether batches may be sent now.
    pub fn sending(&self) -> bool {
        matches!(self.phase, Phase::InTransaction | Phase::Committing)
    }

    /// Why a send (or a batch) is refused now, if it is.
    pub fn refusal(&self) -> Option<ClientError> {
        match &self.phase {
            Phase::InTransaction => None,
            Phase::Abortable(e) | Phase::Fatal(e) => Some(e.clone()),
            Phase::Uninitialized => Some(state_error(
                "send before init_transactions: call init_transactions, then begin_transaction",
            )),
            Phase::Ready => Some(state_error(
                "send outside a transaction: call begin_transaction first",
            )),
            Phase::Committing | Phase::Aborting => Some(state_error(
                "send while the transaction is being committed or aborted",
            )),
        }
    }

    fn end(&mut self) {
        self.phase = Phase::Ready;
        self.partitions.clear();
        self.started = false;
    }
}

fn state_error(what: &str) -> ClientError {
    ClientError::TransactionState(what.to_string())
}

/// Before the sender ships `ready`: refuses every batch when the transaction is not
/// sending, and adds the partitions new to the transaction (one AddPartitionsToTxn).
/// Returns the batches to send.
pub(crate) async fn prepare(inner: &Inner, ready: Vec<Batch>) -> Vec<Batch> {
    let (refusal, id, producer, new) = {
        let Ok(s) = inner.state.lock() else {
            return Vec::new();
        };
        let Some(txn) = &s.txn else { return ready };
        let new: BTreeSet<TopicPartition> = ready
            .iter()
            .map(|b| b.tp.clone())
            .filter(|tp| !txn.partitions.contains(tp))
            .collect();
        let refusal = (!txn.sending()).then(|| {
            txn.refusal()
                .unwrap_or_else(|| state_error("the transaction is being aborted"))
        });
        (refusal, txn.transactional_id.clone(), s.producer, new)
    };
    if let Some(e) = refusal {
        fail_batches(inner, ready, &e);
        return Vec::new();
    }
    if new.is_empty() {
        return ready;
    }
    let Some(producer) = producer else {
        fail_batches(inner, ready, &state_error("no producer id"));
        return Vec::new();
    };
    let added = coordinator_call(inner, "AddPartitionsToTxn", || {
        add_partitions(inner, &id, producer, &new)
    })
    .await;
    match added {
        Ok(()) => {
            if let Ok(mut s) = inner.state.lock() {
                if let Some(txn) = &mut s.txn {
                    txn.partitions.extend(new);
                    txn.started = true;
                }
            }
            ready
        }
        Err(e) => {
            tracing::debug!(transactional_id = %id, error = %e, "AddPartitionsToTxn failed");
            if let Ok(mut s) = inner.state.lock() {
                if let Some(txn) = &mut s.txn {
                    txn.fail(&e);
                }
            }
            fail_batches(inner, ready, &e);
            Vec::new()
        }
    }
}

/// Fails drained (sequenced) batches: their sequences are lost, so the epoch is bumped
/// at the next abort.
fn fail_batches(inner: &Inner, batches: Vec<Batch>, error: &ClientError) {
    if let Ok(mut s) = inner.state.lock() {
        for b in &batches {
            s.finished(&b.tp);
        }
        if let Some(txn) = &mut s.txn {
            txn.bump_epoch = true;
        }
    }
    for b in batches {
        b.complete(Err(error.clone()));
    }
    inner.progress.notify_waiters();
}

async fn add_partitions(
    inner: &Inner,
    id: &str,
    (producer_id, epoch): ProducerIdentity,
    partitions: &BTreeSet<TopicPartition>,
) -> Result<()> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        topics.entry(&tp.topic).or_default().push(tp.partition);
    }
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(str_bytes(id)))
        .with_v3_and_below_producer_id(ProducerId(producer_id))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    AddPartitionsToTxnTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
        );
    // The client's versions stop at v3 (see versions.rs): the v3-and-below shape.
    let response = inner
        .cluster
        .call(&Target::TransactionCoordinator(id.to_string()), |_| {
            Ok(request)
        })
        .await?;
    // Partitions not at fault answer OPERATION_NOT_ATTEMPTED; report the one that is.
    let mut first = None;
    for t in &response.results_by_topic_v3_and_below {
        for p in &t.results_by_partition {
            let code = p.partition_error_code;
            if code != 0 && code != ErrorCode::OPERATION_NOT_ATTEMPTED.code() {
                first.get_or_insert((code, format!("{}-{}", t.name.0, p.partition_index)));
            }
        }
    }
    match first {
        Some((code, tp)) => {
            Err(
                ClientError::from_code(code, None, format!("add {tp} to the transaction of {id}"))
                    .unwrap_or(ClientError::Closed),
            )
        }
        None => Ok(()),
    }
}

/// Runs a call to a coordinator until it succeeds, fails for good, or `max.block.ms` is
/// spent; CONCURRENT_TRANSACTIONS (the previous transaction still ending) is retried
/// quickly, coordinator errors after a new FindCoordinator.
async fn coordinator_call<T, F, Fut>(inner: &Inner, what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut retry = RetryState::new(
        inner.cluster.backoff(),
        u32::MAX,
        Duration::from_millis(inner.config.max_block_ms),
    );
    loop {
        let err = match op().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let concurrent = err.code() == Some(ErrorCode::CONCURRENT_TRANSACTIONS.code());
        if !(err.is_retriable() || concurrent) {
            return Err(err);
        }
        if err.needs_coordinator_refresh() {
            inner.cluster.forget_coordinators();
        }
        if err.needs_metadata_refresh() {
            inner.cluster.invalidate_metadata();
        }
        let Some(delay) = retry.next_delay() else {
            return Err(err);
        };
        let delay = if concurrent {
            delay.min(Duration::from_millis(CONCURRENT_TXN_BACKOFF_MS))
        } else {
            delay
        };
        tracing::debug!(what, error = %err, attempt = retry.attempts(), "retrying");
        tokio::time::sleep(delay).await;
    }
}

/// InitProducerId for the transactional id; with `current` (v3+) the coordinator bumps
/// that producer's epoch instead of fencing it (KIP-360).
async fn init_producer_id(
    inner: &Inner,
    id: &str,
    current: Option<ProducerIdentity>,
) -> Result<ProducerIdentity> {
    let timeout_ms = i32::try_from(inner.config.transaction_timeout_ms).unwrap_or(i32::MAX);
    let response = inner
        .cluster
        .call(&Target::TransactionCoordinator(id.to_string()), |version| {
            let (pid, epoch) = current.filter(|_| version >= 3).unwrap_or((-1, -1));
            Ok(InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(str_bytes(id))))
                .with_transaction_timeout_ms(timeout_ms)
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch))
        })
        .await?;
    ClientError::check(
        response.error_code,
        None,
        format!("InitProducerId of transactional id {id}"),
    )?;
    Ok((response.producer_id.0, response.producer_epoch))
}

async fn end_txn(inner: &Inner, id: &str, producer: ProducerIdentity, commit: bool) -> Result<()> {
    let response = inner
        .cluster
        .call(&Target::TransactionCoordinator(id.to_string()), |_| {
            Ok(EndTxnRequest::default()
                .with_transactional_id(TransactionalId(str_bytes(id)))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_committed(commit))
        })
        .await?;
    let what = if commit { "commit" } else { "abort" };
    ClientError::check(
        response.error_code,
        None,
        format!("EndTxn ({what}) of transactional id {id}"),
    )
}

async fn add_offsets(
    inner: &Inner,
    id: &str,
    producer: ProducerIdentity,
    group: &str,
) -> Result<()> {
    let response = inner
        .cluster
        .call(&Target::TransactionCoordinator(id.to_string()), |_| {
            Ok(AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(str_bytes(id)))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_group_id(GroupId(str_bytes(group))))
        })
        .await?;
    ClientError::check(
        response.error_code,
        None,
        format!("AddOffsetsToTxn of group {group} to transactional id {id}"),
    )
}

async fn txn_offset_commit(
    inner: &Inner,
    id: &str,
    producer: ProducerIdentity,
    offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    group: &ConsumerGroupMetadata,
) -> Result<()> {
    let mut topics: BTreeMap<&str, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
    for (tp, o) in offsets {
        topics.entry(&tp.topic).or_default().push(
            TxnOffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(o.offset)
                .with_committed_leader_epoch(o.leader_epoch)
                .with_committed_metadata(o.metadata.as_deref().map(str_bytes)),
        );
    }
    let topics: Vec<TxnOffsetCommitRequestTopic> = topics
        .into_iter()
        .map(|(t, ps)| {
            TxnOffsetCommitRequestTopic::default()
                .with_name(topic_name(t))
                .with_partitions(ps)
        })
        .collect();
    let response = inner
        .cluster
        .call(
            &Target::GroupCoordinator(group.group_id.clone()),
            |version| {
                let mut request = TxnOffsetCommitRequest::default()
                    .with_transactional_id(TransactionalId(str_bytes(id)))
                    .with_group_id(GroupId(str_bytes(&group.group_id)))
                    .with_producer_id(ProducerId(producer.0))
                    .with_producer_epoch(producer.1)
                    .with_topics(topics.clone());
                if version < 2 {
                    // Leader epochs arrived with v2.
                    for t in &mut request.topics {
                        for p in &mut t.partitions {
                            p.committed_leader_epoch = -1;
                        }
                    }
                }
                // v3+ carries the member: the coordinator refuses a zombie's offsets.
                if version >= 3 {
                    request = request
                        .with_generation_id(group.generation_id)
                        .with_member_id(str_bytes(&group.member_id))
                        .with_group_instance_id(group.group_instance_id.as_deref().map(str_bytes));
                }
                Ok(request)
            },
        )
        .await?;
    for t in &response.topics {
        for p in &t.partitions {
            ClientError::check(
                p.error_code,
                None,
                format!(
                    "TxnOffsetCommit of {}-{} for group {} in transactional id {id}",
                    t.name.0, p.partition_index, group.group_id
                ),
            )?;
        }
    }
    Ok(())
}

impl Producer {
    /// Registers the `transactional.id` with its coordinator (InitProducerId): fences
    /// older producers with the same id and completes any transaction they left open.
    /// Call once, before the first `begin_transaction`. Waits up to `max.block.ms`.
    pub async fn init_transactions(&self) -> Result<()> {
        let id = {
            let s = self.lock_state()?;
            let txn = s.txn.as_ref().ok_or_else(|| {
                state_error("init_transactions needs a transactional.id in the producer config")
            })?;
            match &txn.phase {
                Phase::Uninitialized => txn.transactional_id.clone(),
                Phase::Fatal(e) => return Err(e.clone()),
                _ => return Err(state_error("init_transactions was already called")),
            }
        };
        let inner = &*self.inner;
        let result = coordinator_call(inner, "InitProducerId", || {
            init_producer_id(inner, &id, None)
        })
        .await;
        let mut s = self.lock_state()?;
        match result {
            Ok(identity) => {
                tracing::debug!(transactional_id = %id, producer_id = identity.0, epoch = identity.1, "transactional producer id");
                s.set_producer(Some(identity));
                if let Some(txn) = &mut s.txn {
                    txn.phase = Phase::Ready;
                }
                Ok(())
            }
            Err(e) => {
                if let Some(txn) = &mut s.txn {
                    txn.fail(&e);
                }
                Err(e)
            }
        }
    }

    /// Starts a transaction: records sent from now on are committed or aborted together.
    pub fn begin_transaction(&self) -> Result<()> {
        let mut s = self.lock_state()?;
        let txn = s
            .txn
            .as_mut()
            .ok_or_else(|| state_error("begin_transaction needs a transactional.id"))?;
        match &txn.phase {
            Phase::Ready => {
                txn.phase = Phase::InTransaction;
                Ok(())
            }
            Phase::Fatal(e) => Err(e.clone()),
            Phase::Uninitialized => Err(state_error("call init_transactions first")),
            other => Err(state_error(&format!(
                "begin_transaction while a transaction is open ({})",
                phase_name(other)
            ))),
        }
    }

    /// Commits consumer offsets as part of the transaction (AddOffsetsToTxn, then
    /// TxnOffsetCommit): they become visible only if the transaction commits. `offsets`
    /// are the next offsets to read; `group` comes from [`crate::Consumer::group_metadata`].
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let (id, producer) = self.running_transaction()?;
        if offsets.is_empty() {
            return Ok(());
        }
        let inner = &*self.inner;
        let result = async {
            coordinator_call(inner, "AddOffsetsToTxn", || {
                add_offsets(inner, &id, producer, &group.group_id)
            })
            .await?;
            if let Some(txn) = &mut self.lock_state()?.txn {
                txn.started = true;
            }
            coordinator_call(inner, "TxnOffsetCommit", || {
                txn_offset_commit(inner, &id, producer, offsets, group)
            })
            .await
        }
        .await;
        if let Err(e) = &result {
            if let Some(txn) = &mut self.lock_state()?.txn {
                txn.fail(e);
            }
        }
        result
    }

    /// Flushes every record of the transaction, then commits it (EndTxn). On an abortable
    /// error the transaction stays open: call `abort_transaction`.
    pub async fn commit_transaction(&self) -> Result<()> {
        {
            let mut s = self.lock_state()?;
            let txn = s
                .txn
                .as_mut()
                .ok_or_else(|| state_error("commit_transaction needs a transactional.id"))?;
            match &txn.phase {
                Phase::InTransaction => txn.phase = Phase::Committing,
                Phase::Abortable(e) | Phase::Fatal(e) => return Err(e.clone()),
                other => {
                    return Err(state_error(&format!(
                        "commit_transaction without an open transaction ({})",
                        phase_name(other)
                    )))
                }
            }
        }
        let flushed = self.flush().await;
        let (id, producer, started) = {
            let mut s = self.lock_state()?;
            let producer = s.producer;
            let txn = s
                .txn
                .as_mut()
                .ok_or_else(|| state_error("no transaction"))?;
            if let Err(e) = &flushed {
                txn.fail(e);
            }
            match &txn.phase {
                Phase::Committing => {}
                Phase::Abortable(e) | Phase::Fatal(e) => return Err(e.clone()),
                other => return Err(state_error(phase_name(other))),
            }
            let producer = producer.ok_or_else(|| state_error("no producer id"))?;
            (txn.transactional_id.clone(), producer, txn.started)
        };
        if started {
            let inner = &*self.inner;
            let ended =
                coordinator_call(inner, "EndTxn", || end_txn(inner, &id, producer, true)).await;
            if let Err(e) = ended {
                if let Some(txn) = &mut self.lock_state()?.txn {
                    txn.fail(&e);
                }
                return Err(e);
            }
        }
        if let Some(txn) = &mut self.lock_state()?.txn {
            txn.end();
        }
        Ok(())
    }

    /// Aborts the transaction: records not yet sent fail, records sent are discarded by
    /// read_committed readers (EndTxn abort). Accepted after abortable errors.
    pub async fn abort_transaction(&self) -> Result<()> {
        {
            let mut s = self.lock_state()?;
            let txn = s
                .txn
                .as_mut()
                .ok_or_else(|| state_error("abort_transaction needs a transactional.id"))?;
            match &txn.phase {
                Phase::InTransaction | Phase::Abortable(_) | Phase::Aborting => {
                    txn.phase = Phase::Aborting
                }
                Phase::Fatal(e) => return Err(e.clone()),
                other => {
                    return Err(state_error(&format!(
                        "abort_transaction without an open transaction ({})",
                        phase_name(other)
                    )))
                }
            }
        }
        self.drain_for_abort().await?;
        let (id, producer, started, bump) = {
            let s = self.lock_state()?;
            let txn = s
                .txn
                .as_ref()
                .ok_or_else(|| state_error("no transaction"))?;
            let producer = s.producer.ok_or_else(|| state_error("no producer id"))?;
            (
                txn.transactional_id.clone(),
                producer,
                txn.started,
                txn.bump_epoch,
            )
        };
        let inner = &*self.inner;
        let mut result = Ok(());
        if started {
            result =
                coordinator_call(inner, "EndTxn", || end_txn(inner, &id, producer, false)).await;
        }
        if result.is_ok() && bump {
            match coordinator_call(inner, "InitProducerId", || {
                init_producer_id(inner, &id, Some(producer))
            })
            .await
            {
                Ok(identity) => {
                    tracing::debug!(transactional_id = %id, producer_id = identity.0, epoch = identity.1, "epoch bumped after abort");
                    let mut s = self.lock_state()?;
                    s.set_producer(Some(identity));
                    if let Some(txn) = &mut s.txn {
                        txn.bump_epoch = false;
                    }
                }
                Err(e) => result = Err(e),
            }
        }
        let mut s = self.lock_state()?;
        if let Some(txn) = &mut s.txn {
            match &result {
                Ok(()) => txn.end(),
                Err(e) if e.is_fatal_for_transaction() => txn.phase = Phase::Fatal(e.clone()),
                // The abort may be retried.
                Err(e) => txn.phase = Phase::Abortable(e.clone()),
            }
        }
        result
    }

    /// Fails unsent batches and waits (bounded by `delivery.timeout.ms`) for in-flight
    /// ones; the sender refuses new ones while the phase is Aborting.
    async fn drain_for_abort(&self) -> Result<()> {
        let aborted = state_error("the transaction was aborted before this record was sent");
        let limit_ms = self.drain_limit_ms();
        let deadline = Instant::now() + Duration::from_millis(limit_ms);
        loop {
            {
                let mut s = self.lock_state()?;
                if s.fail_undrained(&aborted) {
                    if let Some(txn) = &mut s.txn {
                        txn.bump_epoch = true;
                    }
                }
                if s.is_idle() {
                    break;
                }
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout {
                    what: "abort_transaction waiting for in-flight batches".into(),
                    timeout_ms: limit_ms,
                });
            }
            self.inner.wake.notify_one();
            let _ = tokio::time::timeout(
                Duration::from_millis(super::FLUSH_POLL_MS),
                self.inner.progress.notified(),
            )
            .await;
        }
        self.inner.progress.notify_waiters();
        Ok(())
    }

    /// The transactional id and producer identity of the open transaction, or why there
    /// is none.
    fn running_transaction(&self) -> Result<(String, ProducerIdentity)> {
        let s = self.lock_state()?;
        let txn = s
            .txn
            .as_ref()
            .ok_or_else(|| state_error("transactions need a transactional.id"))?;
        if let Some(e) = txn.refusal() {
            return Err(e);
        }
        let producer = s.producer.ok_or_else(|| state_error("no producer id"))?;
        Ok((txn.transactional_id.clone(), producer))
    }

    /// The producer id and epoch in use (`None` before InitProducerId). For tests and
    /// diagnostics: an abort after a failed batch bumps the epoch (KIP-360).
    #[doc(hidden)]
    pub fn producer_identity(&self) -> Option<(i64, i16)> {
        self.lock_state().ok().and_then(|s| s.producer)
    }

    /// Why a transactional producer refuses a send now (`None`: not transactional, or
    /// in a transaction).
    pub(super) fn transaction_refusal(&self) -> Result<Option<ClientError>> {
        Ok(self.lock_state()?.txn.as_ref().and_then(TxnState::refusal))
    }
}

fn phase_name(phase: &Phase) -> &'static str {
    match phase {
        Phase::Uninitialized => "not initialised",
        Phase::Ready => "no transaction open",
        Phase::InTransaction => "in a transaction",
        Phase::Committing => "committing",
        Phase::Aborting => "aborting",
        Phase::Abortable(_) => "abortable error",
        Phase::Fatal(_) => "fatal error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker_error(code: i16) -> ClientError {
        ClientError::from_code(code, None, "test").unwrap()
    }

    #[test]
    fn fencing_is_fatal_and_other_errors_are_abortable() {
        let mut t = TxnState::new("t".into());
        t.phase = Phase::InTransaction;
        assert!(t.refusal().is_none());
        t.fail(&broker_error(ErrorCode::NOT_ENOUGH_REPLICAS.code()));
        assert!(matches!(t.phase, Phase::Abortable(_)));
        assert!(t.refusal().is_some(), "sends are refused until the abort");
        t.fail(&broker_error(ErrorCode::PRODUCER_FENCED.code()));
        assert!(matches!(t.phase, Phase::Fatal(_)));
        // Nothing brings a fatal producer back.
        t.fail(&broker_error(ErrorCode::NOT_ENOUGH_REPLICAS.code()));
        assert!(matches!(t.phase, Phase::Fatal(_)));

        let mut t = TxnState::new("t".into());
        t.phase = Phase::Committing;
        t.fail(&broker_error(ErrorCode::INVALID_PRODUCER_EPOCH.code()));
        assert!(matches!(t.phase, Phase::Fatal(_)));

        // Between transactions an abortable error changes nothing.
        let mut t = TxnState::new("t".into());
        t.phase = Phase::Ready;
        t.fail(&broker_error(ErrorCode::REQUEST_TIMED_OUT.code()));
        assert!(matches!(t.phase, Phase::Ready));
        assert!(matches!(
            t.refusal(),
            Some(ClientError::TransactionState(_))
        ));
    }
}
