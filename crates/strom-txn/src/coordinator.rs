//! The coordinator of one `__transaction_state` partition: Kafka's
//! `TransactionCoordinator` and `TransactionStateManager` without the I/O.
//!
//! Every change of a transactional id's state is one record (the whole new state), so the
//! partition's log replayed in order rebuilds the state exactly ([`Coordinator::load`]).
//! The in-memory state moves when a command returns its records; the broker appends them
//! and answers only once they are committed, and drops and reloads the coordinator when an
//! append fails, so no answer rests on state the log does not hold.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::records::{decode_key, decode_value, RecordError, TxnRecord};
use crate::state::{TopicPartition, TxnMetadata, TxnState, NO_PRODUCER_EPOCH, NO_PRODUCER_ID};

/// The coordinator's bounds, from the broker's `transaction.*` keys.
#[derive(Debug, Clone)]
pub struct Config {
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: an id idle (no transaction) this long is removed.
    pub transactional_id_expiration_ms: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
        }
    }
}

/// The Kafka error codes the coordinator answers with; `code()` is the wire value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    None,
    /// Retriable: markers of the previous transaction are being written.
    ConcurrentTransactions,
    ProducerFenced,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    InvalidTxnState,
    /// KIP-890: the partition a batch was verified for is not in the ongoing transaction;
    /// the client can abort and go on (older clients get INVALID_TXN_STATE instead).
    TransactionAbortable,
    InvalidTransactionTimeout,
    TransactionalIdNotFound,
    CoordinatorNotAvailable,
    CoordinatorLoadInProgress,
    NotCoordinator,
    UnknownServerError,
}

impl ErrorCode {
    pub fn code(self) -> i16 {
        match self {
            ErrorCode::None => 0,
            ErrorCode::ConcurrentTransactions => 51,
            ErrorCode::ProducerFenced => 90,
            ErrorCode::InvalidProducerEpoch => 47,
            ErrorCode::InvalidProducerIdMapping => 49,
            ErrorCode::InvalidTxnState => 48,
            ErrorCode::TransactionAbortable => 120,
            ErrorCode::InvalidTransactionTimeout => 50,
            ErrorCode::TransactionalIdNotFound => 105,
            ErrorCode::CoordinatorNotAvailable => 15,
            ErrorCode::CoordinatorLoadInProgress => 14,
            ErrorCode::NotCoordinator => 16,
            ErrorCode::UnknownServerError => -1,
        }
    }
}

/// Markers to write: one COMMIT or ABORT control batch of `producer_id`/`producer_epoch` on
/// every partition listed. Started only once the record that asked for it is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerJob {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: Vec<TopicPartition>,
    /// The transaction version the transaction ends at (Kafka's `clientTransactionVersion`
    /// of the PREPARE record, sent as WriteTxnMarkers v2's `TransactionVersion`, KIP-1228):
    /// [`TV2`] exactly when this end bumped the epoch, so that each partition checks the
    /// marker's epoch as strictly newer than its data's; below it, not older.
    pub transaction_version: i16,
}

/// Records to append, the response to release once they are committed, and marker jobs to
/// start once they are committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output<R> {
    pub records: Vec<TxnRecord>,
    pub response: R,
    pub markers: Vec<MarkerJob>,
}

impl<R> Output<R> {
    fn only(response: R) -> Self {
        Output {
            records: Vec::new(),
            response,
            markers: Vec::new(),
        }
    }
}

/// InitProducerId's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitPidResult {
    pub error: ErrorCode,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

impl InitPidResult {
    fn error(error: ErrorCode) -> Self {
        InitPidResult {
            error,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
        }
    }
}

/// EndTxn's answer (the epoch is the producer's current one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnResult {
    pub error: ErrorCode,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// DescribeTransactions' view of one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedTxn {
    pub transactional_id: String,
    pub state: TxnState,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub start_ms: i64,
    pub partitions: Vec<TopicPartition>,
}

/// ListTransactions' filters (empty: no filter). Sets, as a client may send many: each
/// transaction listed is looked up in them, not compared with every entry.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub states: HashSet<String>,
    pub producer_ids: HashSet<i64>,
    /// Only transactions running at least this long (-1: no filter), KIP-994.
    pub min_duration_ms: i64,
}

/// Epochs at or above this cannot be bumped: the producer gets a new id (Kafka's
/// `isEpochExhausted`: `Short.MaxValue - 1`).
const EPOCH_EXHAUSTED: i16 = i16::MAX - 1;

/// Kafka's `transaction.version` 2 (KIP-890 part 2): a client at this level (EndTxn v5+,
/// Produce v12+ and TxnOffsetCommit v5+, whose partitions the broker adds for it) has its
/// epoch bumped at every transaction end.
pub const TV2: i16 = 2;
/// The transaction version of a client that sends AddPartitionsToTxn v0-3 and EndTxn v0-4
/// (Kafka's `TV_0` for such requests).
pub const TV0: i16 = 0;

/// The transactional ids of one `__transaction_state` partition.
#[derive(Debug)]
pub struct Coordinator {
    config: Config,
    txns: BTreeMap<String, TxnMetadata>,
    /// The cluster's finalized `transaction.version` (Kafka's `transactionVersionLevel()`).
    transaction_version: i16,
}

impl Coordinator {
    pub fn new(config: Config) -> Self {
        Coordinator {
            config,
            txns: BTreeMap::new(),
            transaction_version: TV2,
        }
    }

    /// The cluster's finalized `transaction.version` changed (UpdateFeatures; [`TV2`] until
    /// set). It applies to transactions that start from now on: one starts at the lower of
    /// its client's version and this level and keeps that version until it ends, so a
    /// downgrade never changes the rules of a transaction under way, and a transaction that
    /// starts below [`TV2`] ends without the epoch bump even if its client asks at version 2
    /// (the answer then carries the unchanged epoch, which such a client continues with).
    pub fn set_transaction_version(&mut self, level: i16) {
        self.transaction_version = level;
    }

    /// The finalized `transaction.version` this coordinator applies to new transactions.
    pub fn transaction_version(&self) -> i16 {
        self.transaction_version
    }

    /// The version an EndTxn by a client at `client_tv` is judged at: that of the
    /// transaction it ends while one is open or being ended; for a retry of a version 2
    /// end, 2; otherwise (nothing open) the lower of the client's and the cluster's.
    fn end_version(&self, transactional_id: &str, client_tv: i16) -> i16 {
        match self.txns.get(transactional_id) {
            Some(meta) => match meta.state {
                TxnState::Ongoing
                | TxnState::PrepareCommit
                | TxnState::PrepareAbort
                | TxnState::PrepareEpochFence => client_tv.min(meta.client_tv),
                TxnState::CompleteCommit | TxnState::CompleteAbort if meta.client_tv >= TV2 => {
                    client_tv
                }
                _ => client_tv.min(self.transaction_version),
            },
            None => client_tv,
        }
    }

    /// Rebuilds the state from the partition's records in log order, and returns the marker
    /// jobs of transactions the previous coordinator prepared but did not complete.
    pub fn load<'a>(
        &mut self,
        records: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<Vec<MarkerJob>, RecordError> {
        self.txns.clear();
        for (key, value) in records {
            let id = decode_key(key)?;
            match value {
                None => {
                    self.txns.remove(&id);
                }
                Some(value) => {
                    let v = decode_value(value)?;
                    let previous = self.txns.get(&id);
                    // v1 carries the previous id; a v0 record leaves it to be inferred from
                    // the record before (the id changed between them).
                    let previous_producer_id = if v.previous_producer_id != NO_PRODUCER_ID {
                        v.previous_producer_id
                    } else {
                        previous
                            .map(|p| {
                                if p.producer_id != v.producer_id {
                                    p.producer_id
                                } else {
                                    p.previous_producer_id
                                }
                            })
                            .unwrap_or(NO_PRODUCER_ID)
                    };
                    let meta = TxnMetadata {
                        previous_producer_id,
                        next_producer_id: v.next_producer_id,
                        client_tv: v.client_tv,
                        last_producer_epoch: NO_PRODUCER_EPOCH,
                        transactional_id: id.clone(),
                        producer_id: v.producer_id,
                        producer_epoch: v.producer_epoch,
                        timeout_ms: v.timeout_ms,
                        state: v.state,
                        partitions: v.partitions,
                        start_ms: v.start_ms,
                        last_update_ms: v.last_update_ms,
                    };
                    self.txns.insert(id, meta);
                }
            }
        }
        Ok(self.txns.values().filter_map(pending_markers).collect())
    }

    /// The state of one id.
    pub fn get(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id)
    }

    /// Every id's state, in id order.
    pub fn all(&self) -> impl Iterator<Item = &TxnMetadata> {
        self.txns.values()
    }

    /// InitProducerId with a transactional id. `fresh_producer_id` is a newly allocated id
    /// the call takes when it needs one (a new transactional id, an exhausted epoch); the
    /// caller keeps it otherwise. `expected` is the producer's current id and epoch when it
    /// asks to bump its epoch after an error (KIP-360).
    pub fn init_producer_id(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        fresh_producer_id: &mut Option<i64>,
        now_ms: i64,
    ) -> Output<InitPidResult> {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Output::only(InitPidResult::error(ErrorCode::InvalidTransactionTimeout));
        }
        let Some(meta) = self.txns.get(transactional_id) else {
            let Some(producer_id) = fresh_producer_id.take() else {
                return Output::only(InitPidResult::error(ErrorCode::CoordinatorNotAvailable));
            };
            let meta = TxnMetadata {
                transactional_id: transactional_id.to_string(),
                producer_id,
                previous_producer_id: NO_PRODUCER_ID,
                producer_epoch: 0,
                last_producer_epoch: NO_PRODUCER_EPOCH,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now_ms,
                next_producer_id: NO_PRODUCER_ID,
                client_tv: TV0,
            };
            return self.write(meta, Vec::new(), ok_pid(producer_id, 0));
        };
        let mut meta = meta.clone();
        if meta.state.is_preparing()
            || matches!(meta.state, TxnState::PrepareEpochFence | TxnState::Dead)
        {
            return Output::only(InitPidResult::error(ErrorCode::ConcurrentTransactions));
        }
        if let Some((producer_id, epoch)) = expected {
            // Kafka's isValidProducerId: the current id, or the previous one after an
            // exhausted epoch (a retry whose answer was lost).
            let valid = producer_id == meta.producer_id
                || (producer_id == meta.previous_producer_id && epoch >= EPOCH_EXHAUSTED);
            if !valid {
                return Output::only(InitPidResult::error(ErrorCode::ProducerFenced));
            }
        }
        if meta.state == TxnState::Ongoing {
            // A new producer instance fences the old one: its transaction is aborted with a
            // bumped epoch (so the zombie's writes are refused) and this call is retried.
            if meta.producer_epoch < EPOCH_EXHAUSTED {
                meta.last_producer_epoch = meta.producer_epoch;
                meta.producer_epoch += 1;
            }
            fence_bump_tv2(&mut meta);
            meta.state = TxnState::PrepareAbort;
            meta.last_update_ms = now_ms;
            let job = job_of(&meta, false);
            return self.write(
                meta,
                vec![job],
                InitPidResult::error(ErrorCode::ConcurrentTransactions),
            );
        }
        if let Some((producer_id, epoch)) = expected {
            let current = producer_id == meta.producer_id && epoch == meta.producer_epoch;
            let retried = (producer_id == meta.producer_id
                && meta.last_producer_epoch != NO_PRODUCER_EPOCH
                && epoch == meta.last_producer_epoch)
                || producer_id == meta.previous_producer_id;
            if retried && !current {
                // The previous bump's answer was lost: the same answer again.
                return Output::only(ok_pid(meta.producer_id, meta.producer_epoch));
            }
            if !current {
                return Output::only(InitPidResult::error(ErrorCode::ProducerFenced));
            }
        }
        if meta.producer_epoch >= EPOCH_EXHAUSTED {
            let Some(producer_id) = fresh_producer_id.take() else {
                return Output::only(InitPidResult::error(ErrorCode::CoordinatorNotAvailable));
            };
            meta.previous_producer_id = meta.producer_id;
            meta.producer_id = producer_id;
            meta.producer_epoch = 0;
            meta.last_producer_epoch = NO_PRODUCER_EPOCH;
        } else {
            meta.last_producer_epoch = meta.producer_epoch;
            meta.producer_epoch += 1;
        }
        meta.timeout_ms = timeout_ms;
        meta.state = TxnState::Empty;
        meta.partitions.clear();
        meta.start_ms = -1;
        meta.last_update_ms = now_ms;
        let answer = ok_pid(meta.producer_id, meta.producer_epoch);
        self.write(meta, Vec::new(), answer)
    }

    /// The checks every producer request makes: the id exists, the producer id is its
    /// current one, the epoch is current, no markers are being written.
    fn check_producer(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<&TxnMetadata, ErrorCode> {
        let meta = self
            .txns
            .get(transactional_id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if meta.producer_id != producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if meta.producer_epoch != producer_epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        if meta.state == TxnState::Dead {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        Ok(meta)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's `__consumer_offsets`
    /// partition): the partitions join the ongoing transaction, which starts if none is.
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        now_ms: i64,
    ) -> Output<ErrorCode> {
        self.add_partitions_tv(
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            TV0,
            now_ms,
        )
    }

    /// [`Coordinator::add_partitions`] by a client at transaction version `client_tv`
    /// (recorded with the transaction, as Kafka's `prepareAddPartitions` does). At
    /// [`TV2`] this is also the implicit addition a partition leader asks for when a
    /// Produce v12+ (or TxnOffsetCommit v5+) batch of a transaction reaches it.
    pub fn add_partitions_tv(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        client_tv: i16,
        now_ms: i64,
    ) -> Output<ErrorCode> {
        let meta = match self.check_producer(transactional_id, producer_id, producer_epoch) {
            Ok(meta) => meta,
            Err(error) => return Output::only(error),
        };
        if meta.state.is_preparing() || meta.state == TxnState::PrepareEpochFence {
            return Output::only(ErrorCode::ConcurrentTransactions);
        }
        if meta.state == TxnState::Ongoing && partitions.iter().all(|p| meta.partitions.contains(p))
        {
            return Output::only(ErrorCode::None);
        }
        let mut meta = meta.clone();
        if meta.state != TxnState::Ongoing {
            meta.partitions.clear();
            meta.start_ms = now_ms;
            meta.state = TxnState::Ongoing;
            // The transaction's version is fixed when it starts (see
            // `set_transaction_version`).
            meta.client_tv = client_tv.min(self.transaction_version);
        }
        meta.partitions.extend(partitions.iter().cloned());
        meta.last_update_ms = now_ms;
        self.write(meta, Vec::new(), ErrorCode::None)
    }

    /// KIP-890 part 1: whether each partition is in the producer's ongoing transaction
    /// (AddPartitionsToTxn v4+ with `verify_only`, asked by a partition leader before it
    /// appends a transactional batch). Writes nothing.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, ErrorCode)>, ErrorCode> {
        let meta = self.check_producer(transactional_id, producer_id, producer_epoch)?;
        if meta.state.is_preparing() {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        let ongoing = meta.state == TxnState::Ongoing;
        Ok(partitions
            .iter()
            .map(|p| {
                // Kafka's `handleVerifyPartitionsInTransaction` answers TRANSACTION_ABORTABLE
                // (the leader turns it into INVALID_TXN_STATE for clients that predate it).
                let error = if ongoing && meta.partitions.contains(p) {
                    ErrorCode::None
                } else {
                    ErrorCode::TransactionAbortable
                };
                (p.clone(), error)
            })
            .collect())
    }

    /// EndTxn: PrepareCommit or PrepareAbort is written and the markers start once it is
    /// committed; a retry of an end already done (or under way) is answered as Kafka does.
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Output<EndTxnResult> {
        self.end_txn_tv(
            transactional_id,
            producer_id,
            producer_epoch,
            commit,
            TV0,
            &mut None,
            now_ms,
        )
    }

    /// EndTxn by a client at transaction version `client_tv`. Below [`TV2`] as
    /// [`Coordinator::end_txn`]. At [`TV2`] (KIP-890 part 2, Kafka's rules): the epoch is
    /// bumped by every end, the PREPARE record and the markers carry the bumped epoch
    /// (so a late batch of the ended transaction is refused by every partition as of an
    /// old epoch), and the answer names the producer id and epoch the client continues
    /// with; at an exhausted epoch the transaction moves to `fresh_producer_id` (taken from
    /// the caller) with epoch 0 when it completes. A retry of an end that was done (its
    /// epoch one below the current one, or the last epoch of the previous producer id after
    /// an overflow) is answered again; an abort with no transaction open (Empty or a
    /// completed one, at the current epoch) bumps the epoch with no markers to write.
    #[allow(clippy::too_many_arguments)]
    pub fn end_txn_tv(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        client_tv: i16,
        fresh_producer_id: &mut Option<i64>,
        now_ms: i64,
    ) -> Output<EndTxnResult> {
        let end_version = self.end_version(transactional_id, client_tv);
        if end_version >= TV2 {
            return self.end_txn_v2(
                transactional_id,
                producer_id,
                producer_epoch,
                commit,
                fresh_producer_id,
                now_ms,
            );
        }
        let result = |error| EndTxnResult {
            error,
            producer_id,
            producer_epoch,
        };
        let meta = match self.check_producer(transactional_id, producer_id, producer_epoch) {
            Ok(meta) => meta,
            Err(error) => return Output::only(result(error)),
        };
        let error = match (meta.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut meta = meta.clone();
                // The end is judged below version 2 (no bump), so its markers are too, even
                // if the transaction began at 2 (a client that changed versions mid-way);
                // as Kafka's `prepareAbortOrCommit`, which records the EndTxn's version.
                meta.client_tv = meta.client_tv.min(end_version);
                meta.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                meta.last_update_ms = now_ms;
                let job = job_of(&meta, commit);
                return self.write(meta, vec![job], result(ErrorCode::None));
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => ErrorCode::None,
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                ErrorCode::ConcurrentTransactions
            }
            (TxnState::PrepareEpochFence, _) => ErrorCode::ConcurrentTransactions,
            _ => ErrorCode::InvalidTxnState,
        };
        Output::only(result(error))
    }

    fn end_txn_v2(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        fresh_producer_id: &mut Option<i64>,
        now_ms: i64,
    ) -> Output<EndTxnResult> {
        let refuse = |error| {
            Output::only(EndTxnResult {
                error,
                producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
            })
        };
        let Some(meta) = self.txns.get(transactional_id) else {
            return refuse(ErrorCode::InvalidProducerIdMapping);
        };
        let retry_on_overflow = meta.previous_producer_id == producer_id
            && producer_id != meta.producer_id
            && producer_epoch == EPOCH_EXHAUSTED
            && meta.producer_epoch == 0;
        let retry_on_bump = i32::from(meta.producer_epoch) == i32::from(producer_epoch) + 1;
        let current = producer_epoch == meta.producer_epoch;
        let valid_epoch = match meta.state {
            TxnState::Ongoing | TxnState::Empty | TxnState::Dead | TxnState::PrepareEpochFence => {
                current
            }
            TxnState::PrepareCommit | TxnState::PrepareAbort => retry_on_bump,
            TxnState::CompleteCommit | TxnState::CompleteAbort => {
                retry_on_bump || retry_on_overflow || current
            }
        };
        if meta.producer_id != producer_id && !retry_on_overflow {
            return refuse(ErrorCode::InvalidProducerIdMapping);
        }
        if !valid_epoch {
            return refuse(ErrorCode::ProducerFenced);
        }
        let is_retry = retry_on_bump || retry_on_overflow;
        let answered = Output::only(EndTxnResult {
            error: ErrorCode::None,
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
        });
        // (state, commit) -> prepare (with "no partition added") or an answer.
        let prepare = match (meta.state, commit) {
            (TxnState::Ongoing, _) => Some(false),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) if is_retry => {
                return answered
            }
            (TxnState::CompleteCommit, false) if is_retry => None,
            (TxnState::CompleteCommit | TxnState::CompleteAbort | TxnState::Empty, false) => {
                Some(true)
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                return refuse(ErrorCode::ConcurrentTransactions)
            }
            (TxnState::Dead | TxnState::PrepareEpochFence, _) => {
                return refuse(ErrorCode::ConcurrentTransactions)
            }
            _ => None,
        };
        let Some(no_partition_added) = prepare else {
            return refuse(ErrorCode::InvalidTxnState);
        };
        let mut meta = meta.clone();
        let next_producer_id = if meta.producer_epoch >= EPOCH_EXHAUSTED {
            match fresh_producer_id.take() {
                Some(id) => id,
                None => return refuse(ErrorCode::CoordinatorNotAvailable),
            }
        } else {
            NO_PRODUCER_ID
        };
        meta.last_producer_epoch = meta.producer_epoch;
        // Kafka lets an abort at Short.MaxValue through without a bump (a broken state it
        // recovers from); exhaustion at MAX - 1 moves to a new id before that.
        meta.producer_epoch = meta.producer_epoch.saturating_add(1);
        if no_partition_added {
            meta.partitions.clear();
            meta.start_ms = now_ms;
        }
        meta.next_producer_id = next_producer_id;
        meta.client_tv = TV2;
        meta.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        meta.last_update_ms = now_ms;
        let (answer_id, answer_epoch) = if next_producer_id != NO_PRODUCER_ID {
            (next_producer_id, 0)
        } else {
            (meta.producer_id, meta.producer_epoch)
        };
        let job = job_of(&meta, commit);
        self.write(
            meta,
            vec![job],
            EndTxnResult {
                error: ErrorCode::None,
                producer_id: answer_id,
                producer_epoch: answer_epoch,
            },
        )
    }

    /// Every marker of a job is written: the transaction completes (CompleteCommit or
    /// CompleteAbort, no partitions). A job that no longer matches the state (the id moved
    /// on meanwhile) is ignored.
    pub fn markers_written(&mut self, job: &MarkerJob, now_ms: i64) -> Output<()> {
        let Some(meta) = self.txns.get(&job.transactional_id) else {
            return Output::only(());
        };
        let expected = if job.commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if meta.state != expected
            || meta.producer_id != job.producer_id
            || meta.producer_epoch != job.producer_epoch
        {
            return Output::only(());
        }
        let mut meta = meta.clone();
        meta.state = if job.commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        meta.partitions.clear();
        meta.last_update_ms = now_ms;
        if meta.next_producer_id != NO_PRODUCER_ID {
            // Transaction version 2 at an exhausted epoch: the producer continues with the
            // id its EndTxn answer named, at epoch 0 (Kafka's `prepareComplete`).
            meta.previous_producer_id = meta.producer_id;
            meta.producer_id = meta.next_producer_id;
            meta.producer_epoch = 0;
            meta.next_producer_id = NO_PRODUCER_ID;
        }
        self.write(meta, Vec::new(), ())
    }

    fn abort_ongoing<R: Refusable>(
        &mut self,
        mut meta: TxnMetadata,
        now_ms: i64,
        answer: R,
    ) -> Output<R> {
        if meta.producer_epoch < EPOCH_EXHAUSTED {
            meta.last_producer_epoch = NO_PRODUCER_EPOCH;
            meta.producer_epoch += 1;
        }
        fence_bump_tv2(&mut meta);
        meta.state = TxnState::PrepareAbort;
        meta.last_update_ms = now_ms;
        let job = job_of(&meta, false);
        self.write(meta, vec![job], answer)
    }

    /// Timers: transactions older than their timeout are aborted with a bumped epoch (the
    /// producer is fenced, as in Kafka); ids with no transaction for
    /// `transactional.id.expiration.ms` are removed (a tombstone).
    pub fn tick(&mut self, now_ms: i64) -> Output<()> {
        let mut out = Output::only(());
        let timed_out: Vec<TxnMetadata> = self
            .txns
            .values()
            .filter(|m| {
                m.state == TxnState::Ongoing
                    && now_ms.saturating_sub(m.start_ms) > i64::from(m.timeout_ms)
            })
            .cloned()
            .collect();
        for meta in timed_out {
            let step = self.abort_ongoing(meta, now_ms, ());
            out.records.extend(step.records);
            out.markers.extend(step.markers);
        }
        let expired: Vec<String> = self
            .txns
            .values()
            .filter(|m| {
                matches!(
                    m.state,
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                ) && now_ms.saturating_sub(m.last_update_ms)
                    >= self.config.transactional_id_expiration_ms
            })
            .map(|m| m.transactional_id.clone())
            .collect();
        for id in expired {
            match TxnRecord::tombstone(&id) {
                Ok(record) => {
                    self.txns.remove(&id);
                    out.records.push(record);
                }
                // Unreachable for an id that was encoded before; it simply stays.
                Err(_) => continue,
            }
        }
        out
    }

    pub fn describe(&self, transactional_id: &str) -> Result<DescribedTxn, ErrorCode> {
        let meta = self
            .txns
            .get(transactional_id)
            .ok_or(ErrorCode::TransactionalIdNotFound)?;
        Ok(DescribedTxn {
            transactional_id: meta.transactional_id.clone(),
            state: meta.state,
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            timeout_ms: meta.timeout_ms,
            start_ms: meta.start_ms,
            partitions: meta.partitions.iter().cloned().collect(),
        })
    }

    /// ListTransactions: (id, producer id, state) of the ids matching every filter given.
    pub fn list(&self, filter: &ListFilter, now_ms: i64) -> Vec<(String, i64, TxnState)> {
        self.txns
            .values()
            .filter(|m| {
                (filter.states.is_empty() || filter.states.contains(m.state.name()))
                    && (filter.producer_ids.is_empty()
                        || filter.producer_ids.contains(&m.producer_id))
                    && (filter.min_duration_ms < 0
                        || (m.state == TxnState::Ongoing
                            && now_ms.saturating_sub(m.start_ms) >= filter.min_duration_ms))
            })
            .map(|m| (m.transactional_id.clone(), m.producer_id, m.state))
            .collect()
    }

    /// Installs `meta` and returns its record with `response`; an id too long to encode
    /// (a key over 32 KiB) changes nothing and is refused.
    fn write<R>(&mut self, meta: TxnMetadata, markers: Vec<MarkerJob>, response: R) -> Output<R>
    where
        R: Refusable,
    {
        match TxnRecord::of(&meta, self.transaction_version) {
            Ok(record) => {
                self.txns.insert(meta.transactional_id.clone(), meta);
                Output {
                    records: vec![record],
                    response,
                    markers,
                }
            }
            Err(_) => Output::only(R::refused()),
        }
    }
}

/// A response that can say "refused" when a record cannot be encoded.
pub trait Refusable {
    fn refused() -> Self;
}

impl Refusable for ErrorCode {
    fn refused() -> Self {
        ErrorCode::InvalidTxnState
    }
}

impl Refusable for InitPidResult {
    fn refused() -> Self {
        InitPidResult::error(ErrorCode::UnknownServerError)
    }
}

impl Refusable for EndTxnResult {
    fn refused() -> Self {
        EndTxnResult {
            error: ErrorCode::UnknownServerError,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
        }
    }
}

impl Refusable for () {
    fn refused() -> Self {}
}

fn ok_pid(producer_id: i64, producer_epoch: i16) -> InitPidResult {
    InitPidResult {
        error: ErrorCode::None,
        producer_id,
        producer_epoch,
    }
}

/// A fence (a new producer instance, or a transaction past its timeout) of a transaction
/// whose client is at [`TV2`]: Kafka aborts it through the version 2 end, which bumps the
/// already fenced epoch once more (never past `i16::MAX`), and the abort records the fenced
/// epoch as the last one.
fn fence_bump_tv2(meta: &mut TxnMetadata) {
    if meta.client_tv >= TV2 && meta.producer_epoch < i16::MAX {
        meta.last_producer_epoch = meta.producer_epoch;
        meta.producer_epoch += 1;
    }
}

fn job_of(meta: &TxnMetadata, commit: bool) -> MarkerJob {
    MarkerJob {
        transactional_id: meta.transactional_id.clone(),
        producer_id: meta.producer_id,
        producer_epoch: meta.producer_epoch,
        commit,
        partitions: meta.partitions.iter().cloned().collect(),
        transaction_version: meta.client_tv,
    }
}

fn pending_markers(meta: &TxnMetadata) -> Option<MarkerJob> {
    match meta.state {
        TxnState::PrepareCommit => Some(job_of(meta, true)),
        TxnState::PrepareAbort => Some(job_of(meta, false)),
        _ => None,
    }
}
