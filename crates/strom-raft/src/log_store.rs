//! openraft's `RaftLogStorage` over [`DurableLog`]: a shared handle for the core and readers.
//!
//! A full disk: openraft 0.9 treats any error from a storage call as fatal (the raft core
//! stops with `Fatal::StorageError`, and the node would need a restart). So a write that
//! found the disk full (`LogError::DiskFull`, which left the durable state as it was) is
//! not reported: the call waits and tries again, with a bounded backoff, until space
//! returns or the node shuts down. The raft core waits with it (it awaits each log write),
//! so this node makes no progress meanwhile, as a node with a stalled disk would: its
//! followers elect another leader, its own followers' appends time out, and it catches up
//! once the write goes through. Reads are served from memory throughout. A failed fsync or
//! any other error is reported at once (and stops the core): it is never retried.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageIOError};
use tokio::sync::watch;

use crate::durable_log::{DurableLog, LogError};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// The raft log store. Cloning shares the same log (readers for replication tasks).
///
/// Writes (appends and votes fsync; the commit point, truncation and purge touch files) run
/// on the blocking pool: the raft core shares the tokio runtime with the broker's
/// connections, and a worker thread waiting for the disk would stall every task queued
/// behind it. openraft issues log writes one at a time, so their order is kept. Reads are
/// served from memory.
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<DurableLog>>,
    /// Set when the node shuts down: a write waiting for disk space gives up.
    shutdown: Option<watch::Receiver<bool>>,
}

/// The first wait before a write that found the disk full is tried again.
const DISK_FULL_RETRY_MS_MIN: u64 = 100;
/// The longest wait between tries: how late, at most, writes resume after space is freed.
const DISK_FULL_RETRY_MS_MAX: u64 = 5_000;

impl LogStore {
    pub fn new(log: DurableLog) -> LogStore {
        LogStore {
            inner: Arc::new(Mutex::new(log)),
            shutdown: None,
        }
    }

    /// Writes waiting for disk space give up once `shutdown` turns true.
    pub fn with_shutdown(mut self, shutdown: watch::Receiver<bool>) -> LogStore {
        self.shutdown = Some(shutdown);
        self
    }

    /// Runs `write` on the blocking pool until it does not find the disk full (see the
    /// module docs), or the node shuts down (then the `DiskFull` error is returned).
    async fn write_until_space<T, F>(
        &self,
        what: &'static str,
        write: F,
    ) -> Result<Result<T, LogError>, StorageError>
    where
        T: Send + 'static,
        F: Fn(&mut DurableLog) -> Result<T, LogError> + Clone + Send + 'static,
    {
        let mut wait_ms = DISK_FULL_RETRY_MS_MIN;
        let mut waited = false;
        loop {
            let attempt = write.clone();
            let result = self.write(move |log| Ok(attempt(log))).await?;
            let error = match result {
                Err(error @ LogError::DiskFull { .. }) => error,
                other => {
                    if waited && other.is_ok() {
                        tracing::info!(
                            "raft log: disk space is back; the waiting {what} went through"
                        );
                    }
                    return Ok(other);
                }
            };
            if !waited {
                tracing::warn!(
                    "{error}; the {what} waits (this node makes no raft progress meanwhile)"
                );
                waited = true;
            }
            if wait_for_retry(self.shutdown.clone(), wait_ms).await {
                return Ok(Err(error));
            }
            wait_ms = wait_ms.saturating_mul(2).min(DISK_FULL_RETRY_MS_MAX);
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, DurableLog>, StorageError> {
        lock(&self.inner)
    }

    /// Runs `write` on the log on the blocking pool.
    async fn write<T, F>(&self, write: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DurableLog) -> Result<T, StorageError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || write(&mut *lock(&inner)?))
            .await
            .map_err(|e| {
                let error: StorageError =
                    StorageIOError::write_logs(openraft::AnyError::error(e.to_string())).into();
                error
            })?
    }
}

/// Sleeps `wait_ms`; true if the node is shutting down (at once or meanwhile).
pub(crate) async fn wait_for_retry(shutdown: Option<watch::Receiver<bool>>, wait_ms: u64) -> bool {
    let sleep = tokio::time::sleep(Duration::from_millis(wait_ms));
    let Some(mut shutdown) = shutdown else {
        sleep.await;
        return false;
    };
    if *shutdown.borrow_and_update() {
        return true;
    }
    tokio::select! {
        () = sleep => *shutdown.borrow(),
        changed = shutdown.changed() => changed.is_err() || *shutdown.borrow(),
    }
}

fn lock(inner: &Mutex<DurableLog>) -> Result<MutexGuard<'_, DurableLog>, StorageError> {
    inner.lock().map_err(|_| {
        StorageIOError::read_logs(openraft::AnyError::error("raft log lock poisoned")).into()
    })
}

fn write_err(e: LogError) -> StorageError {
    StorageIOError::write_logs(openraft::AnyError::new(&e)).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self.lock()?.entries(range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let log = self.lock()?;
        Ok(LogState {
            last_purged_log_id: log.last_purged(),
            last_log_id: log.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.write_until_space("vote", move |log| log.save_vote(&vote))
            .await?
            .map_err(|e| StorageIOError::write_vote(openraft::AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock()?.vote())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.write(move |log| log.save_committed(committed).map_err(write_err))
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock()?.committed())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let result = self
            .write_until_space("append", move |log| log.append(entries.clone()))
            .await?;
        match result {
            Ok(()) => {
                // The entries were fsynced inside `append`: acknowledge them now.
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write(move |log| log.truncate(log_id.index).map_err(write_err))
            .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write_until_space("purge", move |log| log.purge(log_id))
            .await?
            .map_err(write_err)
    }
}
