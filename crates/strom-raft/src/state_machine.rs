//! openraft's `RaftStateMachine` over a [`ReplicatedState`]: applies committed entries,
//! publishes the state through a watch and deltas through a bounded broadcast, and keeps the
//! snapshot file that lets the log be purged.
//!
//! The state itself is not persisted on apply; start-up rebuilds it from the snapshot plus
//! the log (openraft replays entries up to the commit hint).
//!
//! A snapshot write that finds the disk full waits and is tried again (bounded backoff)
//! until space returns or the node shuts down, as log writes do (`log_store.rs`): openraft
//! stops the node on any error from building or installing a snapshot. The old snapshot
//! file stays in place meanwhile (the new one is renamed over it only once written).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder,
};
use tokio::sync::{broadcast, watch};

use crate::fsutil::is_space_error;
use crate::log_store::wait_for_retry;

use crate::snapshot_file;
use crate::state::{Applied, ReplicatedState, StateEvent};
use crate::types::{
    ApplyOutcome, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

type Snapshot = openraft::Snapshot<TypeConfig>;

/// Channels through which the applied state is observed.
#[derive(Clone, Debug)]
pub struct StateChannels<S: ReplicatedState> {
    pub state: watch::Receiver<Applied<S>>,
    pub events: broadcast::Sender<StateEvent<S::Delta>>,
}

#[derive(Debug)]
pub struct StateMachineStore<S: ReplicatedState> {
    applied: Applied<S>,
    membership: StoredMembership,
    dir: PathBuf,
    /// Serializes snapshot file writes between builders and installs.
    snapshot_write: Arc<Mutex<()>>,
    state_tx: watch::Sender<Applied<S>>,
    events_tx: broadcast::Sender<StateEvent<S::Delta>>,
    /// Set when the node shuts down: a snapshot write waiting for disk space gives up.
    shutdown: Option<watch::Receiver<bool>>,
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageError::IO {
        source: openraft::StorageIOError::new(
            ErrorSubject::StateMachine,
            verb,
            AnyError::error(e.to_string()),
        ),
    }
}

fn snapshot_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageError::IO {
        source: openraft::StorageIOError::new(
            ErrorSubject::Snapshot(None),
            verb,
            AnyError::error(e.to_string()),
        ),
    }
}

impl<S: ReplicatedState> StateMachineStore<S> {
    /// Loads the last snapshot from `dir` (if any); `events_capacity` bounds the delta backlog
    /// a slow consumer may have before it sees `Lagged` and must resync from the image. An
    /// error of kind `InvalidData` means the snapshot file is damaged (its message names it).
    pub fn open(dir: &Path, events_capacity: usize) -> std::io::Result<(Self, StateChannels<S>)> {
        let (applied, membership) = match snapshot_file::load(dir)? {
            None => (Applied::default(), StoredMembership::default()),
            Some(body) => {
                let path = dir.join(snapshot_file::SNAPSHOT_FILE);
                let invalid = |what: String| {
                    crate::fsutil::invalid_data(format!(
                        "{} passes its checksum but {what}",
                        path.display()
                    ))
                };
                let (meta, state_bytes) = snapshot_file::decode_body(&body)
                    .map_err(|e| invalid(format!("its header does not decode: {e}")))?;
                let state = S::decode_snapshot(state_bytes)
                    .map_err(|e| invalid(format!("its state does not decode: {e}")))?;
                let applied = Applied {
                    last_applied: meta.last_log_id,
                    state,
                };
                (applied, meta.last_membership)
            }
        };
        let (state_tx, state_rx) = watch::channel(applied.clone());
        let (events_tx, _) = broadcast::channel(events_capacity.max(1));
        let channels = StateChannels {
            state: state_rx,
            events: events_tx.clone(),
        };
        let store = StateMachineStore {
            applied,
            membership,
            dir: dir.to_path_buf(),
            snapshot_write: Arc::new(Mutex::new(())),
            state_tx,
            events_tx,
            shutdown: None,
        };
        Ok((store, channels))
    }

    /// Snapshot writes waiting for disk space give up once `shutdown` turns true.
    pub fn with_shutdown(mut self, shutdown: watch::Receiver<bool>) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    fn apply_one(&mut self, entry: Entry) -> ApplyOutcome {
        let log_id = entry.log_id;
        self.applied.last_applied = Some(log_id);
        let outcome = match entry.payload {
            EntryPayload::Blank => ApplyOutcome::default(),
            EntryPayload::Membership(membership) => {
                self.membership = StoredMembership::new(Some(log_id), membership);
                ApplyOutcome::default()
            }
            EntryPayload::Normal(payload) => match self.applied.state.apply_payload(&payload.0) {
                Ok((state, delta)) => {
                    self.applied.state = state;
                    self.state_tx.send_replace(self.applied.clone());
                    // No receivers is fine: nobody is listening yet.
                    let _ = self.events_tx.send(StateEvent::Applied { log_id, delta });
                    return ApplyOutcome::default();
                }
                Err(e) => {
                    tracing::warn!("entry {log_id} skipped: it does not apply: {e}");
                    ApplyOutcome {
                        error: Some(e.to_string()),
                    }
                }
            },
        };
        self.state_tx.send_replace(self.applied.clone());
        outcome
    }
}

/// Builds a snapshot from a frozen copy of the state.
#[derive(Debug)]
pub struct SnapshotBuilder<S: ReplicatedState> {
    applied: Applied<S>,
    membership: StoredMembership,
    dir: PathBuf,
    snapshot_write: Arc<Mutex<()>>,
    shutdown: Option<watch::Receiver<bool>>,
}

impl<S: ReplicatedState> RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder<S> {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let snapshot_id = match self.applied.last_applied {
            Some(id) => format!(
                "{}-{}-{}",
                id.leader_id.term, id.leader_id.node_id, id.index
            ),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id: self.applied.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let body = snapshot_file::encode_body(&meta, &self.applied.state.encode_snapshot())
            .map_err(|e| snapshot_err(ErrorVerb::Write, e))?;
        let body = store_off_runtime(
            &self.dir,
            &self.snapshot_write,
            &meta,
            body,
            self.shutdown.clone(),
        )
        .await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(body)),
        })
    }
}

/// The first wait before a snapshot write that found the disk full is tried again, and the
/// longest.
const DISK_FULL_RETRY_MS_MIN: u64 = 100;
const DISK_FULL_RETRY_MS_MAX: u64 = 5_000;

/// [`store_if_newer`] on the blocking pool (it fsyncs; the runtime's workers serve broker
/// connections too), tried again while the disk is full (see the module docs); hands the
/// body back.
async fn store_off_runtime(
    dir: &Path,
    lock: &Arc<Mutex<()>>,
    meta: &SnapshotMeta,
    body: Vec<u8>,
    shutdown: Option<watch::Receiver<bool>>,
) -> Result<Vec<u8>, StorageError> {
    let body = Arc::new(body);
    let mut wait_ms = DISK_FULL_RETRY_MS_MIN;
    let mut waited = false;
    loop {
        let (dir, lock, meta) = (dir.to_path_buf(), Arc::clone(lock), meta.clone());
        let attempt = Arc::clone(&body);
        let stored =
            tokio::task::spawn_blocking(move || store_if_newer(&dir, &lock, &meta, &attempt))
                .await
                .map_err(|e| snapshot_err(ErrorVerb::Write, e))?;
        match stored {
            Ok(()) => break,
            Err(StoreError::Full(error)) => {
                if !waited {
                    tracing::warn!(
                        "snapshot not written, the disk is full ({error}); waiting for space"
                    );
                    waited = true;
                }
                if wait_for_retry(shutdown.clone(), wait_ms).await {
                    return Err(snapshot_err(ErrorVerb::Write, error));
                }
                wait_ms = wait_ms.saturating_mul(2).min(DISK_FULL_RETRY_MS_MAX);
            }
            Err(StoreError::Other(error)) => return Err(*error),
        }
    }
    if waited {
        tracing::info!("disk space is back; the snapshot was written");
    }
    Ok(Arc::try_unwrap(body).unwrap_or_else(|shared| shared.as_ref().clone()))
}

/// Why a snapshot was not stored.
enum StoreError {
    /// Its write found the disk full; nothing changed.
    Full(std::io::Error),
    Other(Box<StorageError>),
}

impl From<StorageError> for StoreError {
    fn from(error: StorageError) -> Self {
        StoreError::Other(Box::new(error))
    }
}

/// Writes the snapshot unless a newer one is already stored (a concurrent install).
fn store_if_newer(
    dir: &Path,
    lock: &Mutex<()>,
    meta: &SnapshotMeta,
    body: &[u8],
) -> Result<(), StoreError> {
    let _guard = lock
        .lock()
        .map_err(|_| snapshot_err(ErrorVerb::Write, "snapshot lock poisoned"))?;
    if let Some(existing) =
        snapshot_file::load(dir).map_err(|e| snapshot_err(ErrorVerb::Read, e))?
    {
        let (existing_meta, _) =
            snapshot_file::decode_body(&existing).map_err(|e| snapshot_err(ErrorVerb::Read, e))?;
        if existing_meta.last_log_id > meta.last_log_id {
            return Ok(());
        }
    }
    snapshot_file::store(dir, body).map_err(|e| {
        if is_space_error(&e) {
            StoreError::Full(e)
        } else {
            StoreError::Other(Box::new(snapshot_err(ErrorVerb::Write, e)))
        }
    })
}

impl<S: ReplicatedState> RaftStateMachine<TypeConfig> for StateMachineStore<S> {
    type SnapshotBuilder = SnapshotBuilder<S>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.applied.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyOutcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        Ok(entries
            .into_iter()
            .map(|entry| self.apply_one(entry))
            .collect())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            applied: self.applied.clone(),
            membership: self.membership.clone(),
            dir: self.dir.clone(),
            snapshot_write: self.snapshot_write.clone(),
            shutdown: self.shutdown.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let body = snapshot.into_inner();
        let (body_meta, state_bytes) =
            snapshot_file::decode_body(&body).map_err(|e| snapshot_err(ErrorVerb::Read, e))?;
        if body_meta.last_log_id != meta.last_log_id {
            return Err(snapshot_err(
                ErrorVerb::Read,
                "snapshot body does not match its meta",
            ));
        }
        let state = S::decode_snapshot(state_bytes).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        store_off_runtime(
            &self.dir,
            &self.snapshot_write,
            meta,
            body,
            self.shutdown.clone(),
        )
        .await?;
        self.applied = Applied {
            last_applied: meta.last_log_id,
            state,
        };
        self.membership = meta.last_membership.clone();
        self.state_tx.send_replace(self.applied.clone());
        let _ = self.events_tx.send(StateEvent::Reset {
            last_applied: meta.last_log_id,
        });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let dir = self.dir.clone();
        let loaded = tokio::task::spawn_blocking(move || snapshot_file::load(&dir))
            .await
            .map_err(|e| snapshot_err(ErrorVerb::Read, e))?;
        let Some(body) = loaded.map_err(|e| snapshot_err(ErrorVerb::Read, e))? else {
            return Ok(None);
        };
        let (meta, _) =
            snapshot_file::decode_body(&body).map_err(|e| snapshot_err(ErrorVerb::Read, e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(body)),
        }))
    }
}
