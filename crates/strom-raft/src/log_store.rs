//! openraft's `RaftLogStorage` over [`DurableLog`]: a shared handle for the core and readers.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageIOError};

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
}

impl LogStore {
    pub fn new(log: DurableLog) -> LogStore {
        LogStore {
            inner: Arc::new(Mutex::new(log)),
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
        self.write(move |log| {
            log.save_vote(&vote)
                .map_err(|e| StorageIOError::write_vote(openraft::AnyError::new(&e)).into())
        })
        .await
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
        let result = self.write(move |log| Ok(log.append(entries))).await?;
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
        self.write(move |log| log.purge(log_id).map_err(write_err))
            .await
    }
}
