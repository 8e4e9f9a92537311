//! [`SimFs`]: an in-memory file system with a crash model and injectable faults.
//!
//! Crash model (what [`SimFs::crash`] keeps):
//! - A file's contents are durable up to its last successful [`FileHandle::sync`]. Writes
//!   and `set_len` calls after it are kept in order as far as a seeded random point, the
//!   write at that point possibly torn (only a prefix of its bytes lands). Later ones are
//!   lost. This models a disk that writes back dirty pages in order; it is enough to tear
//!   the tail of a segment or leave a half-written index.
//! - A directory entry (create, rename, remove) is durable only after a
//!   [`FileSystem::sync_dir`] of its directory. A file whose entry is not durable is gone
//!   after a crash even if its data was synced.
//! - Directories themselves are created durably.
//! - [`SimFs::crash_with_dir_ops`] models a file system that may also have written back
//!   some directory changes made since the last `sync_dir`: the first N of them, in order.
//!
//! Faults: power loss at the N-th write or N-th sync (file or directory; the operation does
//! not happen and every later operation fails), a failing N-th sync (nothing becomes
//! durable; with `ENOSPC` too, as ext4 may answer when delayed allocation finds no room),
//! a short N-th write (half the bytes), a failing N-th write, and a full disk: with a
//! capacity set, the bytes of all linked files never exceed it; a write that would grow
//! past it writes what fits (a short write) and the next one fails with `ENOSPC`, as a
//! real file system does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{FileHandle, FileSystem};

/// Faults to inject; counts are 1-based and count every write (or sync) on the file system.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimFaults {
    pub power_loss_at_write: Option<u64>,
    pub power_loss_at_sync: Option<u64>,
    pub fail_sync_at: Option<u64>,
    pub short_write_at: Option<u64>,
    pub fail_write_at: Option<u64>,
    /// The N-th sync fails with `ENOSPC` (nothing becomes durable).
    pub enospc_sync_at: Option<u64>,
    /// The N-th write (or `set_len`) fails with `ENOSPC`, writing nothing.
    pub enospc_write_at: Option<u64>,
    /// Bytes all linked files may hold together; `None` is unlimited.
    pub capacity_bytes: Option<u64>,
}

#[derive(Clone, Debug)]
enum PendingOp {
    Write { position: u64, data: Vec<u8> },
    SetLen(u64),
}

/// A directory change not yet made durable by a `sync_dir`.
#[derive(Clone, Debug)]
enum DirOp {
    Link(PathBuf, u64),
    Unlink(PathBuf),
    /// Atomic, as `rename(2)` is.
    Rename(PathBuf, PathBuf, u64),
}

#[derive(Clone, Debug, Default)]
struct SimFile {
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<PendingOp>,
}

#[derive(Debug, Default)]
struct SimState {
    files: HashMap<u64, SimFile>,
    file_id_next: u64,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    /// Directory changes since their directory's last `sync_dir`, oldest first.
    dir_ops: Vec<DirOp>,
    dirs: BTreeSet<PathBuf>,
    write_count: u64,
    sync_count: u64,
    faults: SimFaults,
    powered_off: bool,
    /// Handles alive right now (open file descriptors, for bounds tests).
    open_handles: usize,
    /// Calls of `available_bytes`.
    space_checks: u64,
}

/// The simulated file system; clones share one state.
#[derive(Clone, Debug, Default)]
pub struct SimFs {
    state: Arc<Mutex<SimState>>,
}

#[derive(Debug)]
struct SimHandle {
    state: Arc<Mutex<SimState>>,
    id: u64,
}

fn power_off_error() -> io::Error {
    io::Error::other("simulated power loss")
}

fn no_space() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

fn apply(data: &mut Vec<u8>, op: &PendingOp) {
    match op {
        PendingOp::Write {
            position,
            data: bytes,
        } => {
            let start = usize::try_from(*position).unwrap_or(usize::MAX);
            let end = start.saturating_add(bytes.len());
            if data.len() < end {
                data.resize(end, 0);
            }
            if let Some(dst) = data.get_mut(start..end) {
                dst.copy_from_slice(bytes);
            }
        }
        PendingOp::SetLen(len) => data.resize(usize::try_from(*len).unwrap_or(0), 0),
    }
}

/// A small deterministic generator (xorshift64*), so a seed replays a crash.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

impl SimState {
    fn check_power(&self) -> io::Result<()> {
        if self.powered_off {
            Err(power_off_error())
        } else {
            Ok(())
        }
    }

    fn file(&mut self, id: u64) -> io::Result<&mut SimFile> {
        self.files
            .get_mut(&id)
            .ok_or_else(|| io::Error::other("simulated file vanished"))
    }

    fn dir_exists(&self, dir: &Path) -> bool {
        self.dirs.contains(dir)
    }

    fn check_parent(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() && !self.dir_exists(parent) => {
                Err(not_found(parent))
            }
            _ => Ok(()),
        }
    }

    /// Counts a write and decides its fate: `Ok(Some(len))` writes `len` bytes.
    fn admit_write(&mut self, len: usize) -> io::Result<usize> {
        self.check_power()?;
        self.write_count += 1;
        let n = self.write_count;
        if self.faults.power_loss_at_write == Some(n) {
            self.powered_off = true;
            return Err(power_off_error());
        }
        if self.faults.fail_write_at == Some(n) {
            return Err(io::Error::other("simulated write failure"));
        }
        if self.faults.enospc_write_at == Some(n) {
            return Err(no_space());
        }
        if self.faults.short_write_at == Some(n) && len > 1 {
            return Ok(len / 2);
        }
        Ok(len)
    }

    fn admit_sync(&mut self) -> io::Result<()> {
        self.check_power()?;
        self.sync_count += 1;
        let n = self.sync_count;
        if self.faults.power_loss_at_sync == Some(n) {
            self.powered_off = true;
            return Err(power_off_error());
        }
        if self.faults.fail_sync_at == Some(n) {
            return Err(io::Error::other("simulated fsync failure"));
        }
        if self.faults.enospc_sync_at == Some(n) {
            return Err(no_space());
        }
        Ok(())
    }

    /// Bytes held by linked files (a removed file's space is freed at once).
    fn used_bytes(&self) -> u64 {
        self.names
            .values()
            .filter_map(|id| self.files.get(id))
            .map(|f| f.current.len() as u64)
            .sum()
    }

    /// How many of `len` bytes written at `position` into file `id` fit under the capacity.
    fn fitting(&self, id: u64, position: u64, len: usize) -> io::Result<usize> {
        let Some(capacity) = self.faults.capacity_bytes else {
            return Ok(len);
        };
        let current = self.files.get(&id).map_or(0, |f| f.current.len() as u64);
        let limit = current.saturating_add(capacity.saturating_sub(self.used_bytes()));
        let fits = usize::try_from(limit.saturating_sub(position))
            .unwrap_or(usize::MAX)
            .min(len);
        if fits == 0 && len > 0 {
            return Err(no_space());
        }
        Ok(fits)
    }
}

impl SimFs {
    pub fn new() -> SimFs {
        SimFs::default()
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the faults to inject; counters keep running.
    pub fn set_faults(&self, faults: SimFaults) {
        self.lock().faults = faults;
    }

    /// The faults in force.
    pub fn faults(&self) -> SimFaults {
        self.lock().faults
    }

    /// Sets (or with `None` lifts) the disk's capacity, keeping the other faults.
    pub fn set_capacity(&self, capacity_bytes: Option<u64>) {
        self.lock().faults.capacity_bytes = capacity_bytes;
    }

    /// Bytes held by linked files.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes()
    }

    /// How often `available_bytes` was asked.
    pub fn space_check_count(&self) -> u64 {
        self.lock().space_checks
    }

    pub fn write_count(&self) -> u64 {
        self.lock().write_count
    }

    pub fn sync_count(&self) -> u64 {
        self.lock().sync_count
    }

    pub fn is_powered_off(&self) -> bool {
        self.lock().powered_off
    }

    /// Loses power now (if not already) and returns the file system as found on restart:
    /// a new, independent `SimFs` holding the durable image plus a seeded random prefix of
    /// each file's unsynced writes (see the module's crash model).
    pub fn crash(&self, seed: u64) -> SimFs {
        self.crash_with_dir_ops(seed, 0)
    }

    /// Directory changes (creates, renames, removes) not yet made durable by a `sync_dir`.
    pub fn pending_dir_ops(&self) -> usize {
        self.lock().dir_ops.len()
    }

    /// As [`SimFs::crash`], but the first `kept` of the pending directory changes survive
    /// too (in the order they were made), as on a file system that wrote some back.
    pub fn crash_with_dir_ops(&self, seed: u64, kept: usize) -> SimFs {
        let mut state = self.lock();
        state.powered_off = true;
        let mut rng = Rng(seed | 1);
        let mut files = HashMap::new();
        let mut file_id_next = 0;
        let mut names = BTreeMap::new();
        let mut surviving = state.durable_names.clone();
        for op in state.dir_ops.iter().take(kept) {
            match op {
                DirOp::Link(path, id) => {
                    surviving.insert(path.clone(), *id);
                }
                DirOp::Unlink(path) => {
                    surviving.remove(path);
                }
                DirOp::Rename(from, to, id) => {
                    surviving.remove(from);
                    surviving.insert(to.clone(), *id);
                }
            }
        }
        for (path, id) in surviving.iter() {
            let Some(file) = state.files.get(id) else {
                continue;
            };
            let mut data = file.durable.clone();
            let kept = rng.below(file.pending.len() as u64 + 1) as usize;
            for op in file.pending.iter().take(kept) {
                apply(&mut data, op);
            }
            if let Some(PendingOp::Write {
                position,
                data: bytes,
            }) = file.pending.get(kept)
            {
                // The first lost write may be torn: a prefix of it lands.
                let torn_len = rng.below(bytes.len() as u64) as usize;
                let torn = bytes.get(..torn_len).unwrap_or_default().to_vec();
                apply(
                    &mut data,
                    &PendingOp::Write {
                        position: *position,
                        data: torn,
                    },
                );
            }
            file_id_next += 1;
            files.insert(
                file_id_next,
                SimFile {
                    durable: data.clone(),
                    current: data,
                    pending: Vec::new(),
                },
            );
            names.insert(path.clone(), file_id_next);
        }
        let restarted = SimState {
            files,
            file_id_next,
            durable_names: names.clone(),
            names,
            dirs: state.dirs.clone(),
            ..SimState::default()
        };
        SimFs {
            state: Arc::new(Mutex::new(restarted)),
        }
    }

    /// Test helper: the current bytes of the file at `path`.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let id = state.names.get(path)?;
        state.files.get(id).map(|f| f.current.clone())
    }

    /// Test helper: overwrites the file at `path` (current and durable), e.g. to corrupt it.
    pub fn replace_contents(&self, path: &Path, data: Vec<u8>) -> bool {
        let mut state = self.lock();
        let Some(id) = state.names.get(path).copied() else {
            return false;
        };
        let Some(file) = state.files.get_mut(&id) else {
            return false;
        };
        *file = SimFile {
            durable: data.clone(),
            current: data,
            pending: Vec::new(),
        };
        true
    }

    /// A new handle; the caller holds the state lock and counts it in `open_handles`.
    fn handle(&self, id: u64) -> Arc<dyn FileHandle> {
        Arc::new(SimHandle {
            state: Arc::clone(&self.state),
            id,
        })
    }

    /// Handles currently open (created and not yet dropped).
    pub fn open_handle_count(&self) -> usize {
        self.lock().open_handles
    }
}

impl SimHandle {
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let mut state = self.lock();
        state.open_handles = state.open_handles.saturating_sub(1);
    }
}

impl FileHandle for SimHandle {
    fn read_at(&self, position: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut state = self.lock();
        state.check_power()?;
        let file = state.file(self.id)?;
        let start = usize::try_from(position).unwrap_or(usize::MAX);
        let src = file.current.get(start..).unwrap_or_default();
        let n = src.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), src.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }

    fn write_at(&self, position: u64, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.lock();
        let n = state.admit_write(buf.len())?;
        let n = state.fitting(self.id, position, n)?;
        let op = PendingOp::Write {
            position,
            data: buf.get(..n).unwrap_or_default().to_vec(),
        };
        let file = state.file(self.id)?;
        apply(&mut file.current, &op);
        file.pending.push(op);
        Ok(n)
    }

    fn len_bytes(&self) -> io::Result<u64> {
        let mut state = self.lock();
        state.check_power()?;
        Ok(state.file(self.id)?.current.len() as u64)
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        let mut state = self.lock();
        state.admit_write(0)?;
        let current = state.file(self.id)?.current.len() as u64;
        if len_bytes > current {
            let growth = usize::try_from(len_bytes - current).unwrap_or(usize::MAX);
            if state.fitting(self.id, current, growth)? < growth {
                return Err(no_space());
            }
        }
        let op = PendingOp::SetLen(len_bytes);
        let file = state.file(self.id)?;
        apply(&mut file.current, &op);
        file.pending.push(op);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut state = self.lock();
        state.admit_sync()?;
        let file = state.file(self.id)?;
        file.durable = file.current.clone();
        file.pending.clear();
        Ok(())
    }

    fn std_file(&self) -> Option<&std::fs::File> {
        None
    }
}

impl FileSystem for SimFs {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let mut state = self.lock();
        state.check_power()?;
        state.check_parent(path)?;
        if let Some(id) = state.names.get(path).copied() {
            // Truncating an existing file is a data change like set_len(0).
            state.admit_write(0)?;
            let file = state.file(id)?;
            file.current.clear();
            file.pending.push(PendingOp::SetLen(0));
            state.open_handles += 1;
            return Ok(self.handle(id));
        }
        state.file_id_next += 1;
        let id = state.file_id_next;
        state.files.insert(id, SimFile::default());
        state.names.insert(path.to_path_buf(), id);
        state.dir_ops.push(DirOp::Link(path.to_path_buf(), id));
        state.open_handles += 1;
        Ok(self.handle(id))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let mut state = self.lock();
        state.check_power()?;
        let id = state
            .names
            .get(path)
            .copied()
            .ok_or_else(|| not_found(path))?;
        state.open_handles += 1;
        Ok(self.handle(id))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.check_power()?;
        state.check_parent(to)?;
        let id = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_path_buf(), id);
        state
            .dir_ops
            .push(DirOp::Rename(from.to_path_buf(), to.to_path_buf(), id));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.check_power()?;
        state.names.remove(path).ok_or_else(|| not_found(path))?;
        state.dir_ops.push(DirOp::Unlink(path.to_path_buf()));
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        state.check_power()?;
        if !state.dir_exists(dir) {
            return Err(not_found(dir));
        }
        Ok(state
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.check_power()?;
        for ancestor in dir.ancestors() {
            if !ancestor.as_os_str().is_empty() {
                state.dirs.insert(ancestor.to_path_buf());
            }
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.admit_sync()?;
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        state.durable_names.retain(|p, _| !in_dir(p));
        let current: Vec<(PathBuf, u64)> = state
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        state.durable_names.extend(current);
        state.dir_ops.retain(|op| match op {
            DirOp::Link(p, _) | DirOp::Unlink(p) | DirOp::Rename(_, p, _) => {
                p.parent() != Some(dir)
            }
        });
        Ok(())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let state = self.lock();
        state.check_power()?;
        Ok(state.names.contains_key(path) || state.dirs.contains(path))
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let mut state = self.lock();
        state.check_power()?;
        let id = state
            .names
            .get(path)
            .copied()
            .ok_or_else(|| not_found(path))?;
        Ok(state.file(id)?.current.len() as u64)
    }

    fn available_bytes(&self, _dir: &Path) -> io::Result<u64> {
        let mut state = self.lock();
        state.check_power()?;
        state.space_checks += 1;
        Ok(match state.faults.capacity_bytes {
            Some(capacity) => capacity.saturating_sub(state.used_bytes()),
            None => u64::MAX,
        })
    }
}
