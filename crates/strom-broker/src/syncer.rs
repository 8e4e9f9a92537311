//! Group commit for `strom.log.durability=sync-on-commit`, without a thread per waiter.
//!
//! A produce request appends from its async task and then waits here until an fsync covers
//! its records. The fsyncs run on a few dedicated threads ([`SYNC_THREADS`]): a partition
//! with waiters is queued once; a thread takes it, fsyncs everything appended to it so far
//! (every waiter queued before that moment is covered), hands the durable offset to the
//! partition (the leader's part of the high watermark under sync-on-commit, which may move
//! it and wake long polls and `acks=all` waiters), and publishes it on the partition's
//! watch channel, which wakes the waiting tasks. Appends that arrive during the
//! fsync queue the partition again and share the next one.
//!
//! Ordering: the queued flag of a partition is only read and written under the queue mutex.
//! A waiter appends before it takes that mutex, and a thread clears the flag under the
//! mutex before it starts the fsync, so a waiter that finds the flag set is covered by the
//! fsync of the thread that will clear it; one that finds it clear queues the partition.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use crate::partition::Partition;
use strom_log::LogError;

/// Threads that run fsyncs. Partitions are fsynced in parallel up to this many; more waiters
/// on one partition share its fsync. Kafka's `num.io.threads` defaults to 8 too.
pub const SYNC_THREADS: usize = 8;

/// What a partition's waiters see: the offset below which its log is durable, or the error
/// that failed the log (a failed log stays failed).
pub type Durable = Result<i64, Arc<LogError>>;

/// Why a commit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The fsync failed; the log refuses further writes.
    #[error(transparent)]
    Log(Arc<LogError>),
    /// The broker is shutting down and no longer syncs.
    #[error("the broker is shutting down")]
    ShuttingDown,
}

/// The fsync threads and their queue.
#[derive(Debug)]
pub struct Syncer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct Queue {
    partitions: VecDeque<Arc<Partition>>,
    closed: bool,
}

impl Syncer {
    /// Starts the fsync threads.
    pub fn start() -> std::io::Result<Syncer> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
        });
        for index in 0..SYNC_THREADS {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("strom-sync-{index}"))
                .spawn(move || shared.run())?;
        }
        Ok(Syncer { shared })
    }

    /// Returns once every offset below `end_offset` of `partition` is durable and the
    /// partition was told. The wait is async: no thread blocks for it.
    pub async fn commit(
        &self,
        partition: &Arc<Partition>,
        end_offset: i64,
    ) -> Result<(), CommitError> {
        let mut durable = partition.durable.subscribe();
        if let Ok(offset) = &*durable.borrow_and_update() {
            if *offset >= end_offset {
                return Ok(());
            }
        }
        self.shared.request(partition);
        let reached = durable
            .wait_for(|state| state.as_ref().map_or(true, |offset| *offset >= end_offset))
            .await;
        match reached {
            Ok(state) => state.clone().map(|_| ()).map_err(CommitError::Log),
            Err(_closed) => Err(CommitError::ShuttingDown),
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.closed = true;
        self.shared.ready.notify_all();
    }
}

impl Shared {
    fn request(&self, partition: &Arc<Partition>) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if partition.sync_queued() || queue.closed {
            return;
        }
        partition.set_sync_queued(true);
        queue.partitions.push_back(Arc::clone(partition));
        drop(queue);
        self.ready.notify_one();
    }

    fn run(&self) {
        while let Some(partition) = self.next() {
            let durable = match crate::metrics::timed_flush(|| partition.log.flush()) {
                Ok(()) => {
                    // The durable offset can only exceed the log end after a truncation;
                    // the high watermark never may.
                    let offset = partition
                        .log
                        .durable_offset()
                        .min(partition.log.log_end_offset());
                    partition.on_durable(offset);
                    Ok(offset)
                }
                Err(error) => {
                    tracing::error!(topic = %partition.topic, partition = partition.tp.partition,
                        %error, "fsync failed; the partition refuses writes");
                    Err(Arc::new(error))
                }
            };
            let _previous = partition.durable.send_replace(durable);
        }
    }

    /// The next partition to fsync, its queued flag cleared; `None` once closed.
    fn next(&self) -> Option<Arc<Partition>> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if queue.closed {
                return None;
            }
            if let Some(partition) = queue.partitions.pop_front() {
                partition.set_sync_queued(false);
                return Some(partition);
            }
            queue = self.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
    }
}
