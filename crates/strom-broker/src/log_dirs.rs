//! The directories of `log.dirs` (JBOD, Kafka's KIP-113 and KIP-858): each one locked,
//! given a directory id in its `meta.properties` (written once, atomically and durably),
//! scanned at start-up for the partitions it holds, and taken offline alone when it fails.
//!
//! A partition lives in exactly one directory. A new one goes to the online directory
//! holding the fewest partitions (Kafka's `LogManager.nextLogDirs`; ties go to the one
//! listed first). A partition found in two directories at start-up is a start-up error
//! naming both paths: which copy is current cannot be known, and neither is deleted. A
//! `<topic>-<partition>.<uuid>-future` directory is the target of a replica move
//! (AlterReplicaLogDirs) and `<topic>-<partition>.<uuid>-moved` the old copy of a move being
//! swapped in: neither is a second copy. Start-up finishes or discards a move a crash
//! interrupted (`resolve_moves`, following the swap order of `replica_move.rs`) before any
//! partition opens; a copy it cannot decide about keeps its partition offline.
//!
//! **A failed directory stays offline until a restart** (Kafka's rule; after a failed fsync
//! nothing there can be trusted to be durable): the replica manager stops serving every
//! partition in it and reports them offline in its heartbeats, so the controller moves their
//! leadership to in-sync replicas elsewhere. When no directory is left, the broker stops.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Kafka's name of the file that ties a directory to a cluster, a node and a directory id.
pub const META_PROPERTIES: &str = "meta.properties";
/// Suffix of a replica being built in another directory by a move (Kafka's name).
pub const FUTURE_SUFFIX: &str = "-future";
/// Suffix of the old copy of a moved replica, between the two renames of the swap.
pub const MOVED_SUFFIX: &str = "-moved";
/// The metadata log's directory, which may sit in a log directory; never a partition here.
const METADATA_LOG_NAME: &str = "__cluster_metadata-0";

/// Why the log directories cannot be used; the broker does not start.
#[derive(Debug, thiserror::Error)]
pub enum LogDirsError {
    /// Another process holds a directory's lock.
    #[error(
        "log dir {}: is in use by another broker (.lock is held); stop it or give this one \
         other log.dirs",
        dir.display()
    )]
    InUse { dir: PathBuf },
    /// The same partition in two directories.
    #[error(
        "partition {name} is in two log directories, {} and {}: start-up stops so that \
         neither copy is used or changed. Keep the current copy and move the other one out of \
         log.dirs, then start again",
        first.display(),
        second.display()
    )]
    Duplicate {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// Every directory failed.
    #[error("every log directory is offline ({0}): the broker cannot serve any partition")]
    AllOffline(String),
}

/// One entry of `log.dirs`.
#[derive(Debug)]
pub struct LogDir {
    /// The directory as configured.
    pub path: PathBuf,
    /// Its `directory.id` from `meta.properties` (Kafka's base64 Uuid text); `None` if the
    /// directory failed before it was read.
    pub id: Option<String>,
    /// Why it is offline, once it is (never cleared: a restart brings it back).
    failure: Mutex<Option<String>>,
    /// The `.lock` file, held (flock) while the broker runs; dropped (unlocking the
    /// directory) when the broker is dropped or by [`LogDirs::release_locks`].
    lock: Mutex<Option<std::fs::File>>,
}

impl LogDir {
    /// Why this directory is offline, if it is.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether this directory serves its partitions.
    pub fn is_online(&self) -> bool {
        self.failure().is_none()
    }
}

/// A copy of a partition left by a move a crash interrupted (`-future` or `-moved`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct MoveCopy {
    /// `<topic>-<partition>`.
    name: String,
    /// The index in `log.dirs` of the directory holding it.
    dir: usize,
    /// The copy's directory.
    path: PathBuf,
}

/// Every directory of `log.dirs` and which partition is in which.
#[derive(Debug)]
pub struct LogDirs {
    dirs: Vec<LogDir>,
    /// `<topic>-<partition>` to the index of the directory holding it (found at start-up,
    /// or placed since).
    placed: Mutex<HashMap<String, usize>>,
    /// Partitions with a copy left by an interrupted move that start-up could not decide
    /// about (`resolve_moves`): offline until an operator acts.
    unresolved: Vec<String>,
    /// Partial copies of moves a restart interrupted (`-future` beside a current copy):
    /// `<topic>-<partition>` to the target directory's index and the copy's path, taken
    /// by `replica_move::resume_pending` once the partitions are open (Kafka resumes a
    /// future replica after a restart).
    pending_moves: Mutex<HashMap<String, (usize, PathBuf)>>,
}

impl LogDirs {
    /// Unlocks every directory (closes its `.lock` file). Called last by a broker's
    /// shutdown, once every replica is closed: a task spawned outside the broker's task
    /// set that still holds the context must not keep the directories locked against the
    /// next broker started in the same process.
    pub fn release_locks(&self) {
        for dir in &self.dirs {
            drop(dir.lock.lock().unwrap_or_else(|e| e.into_inner()).take());
        }
    }

    /// Creates (if need be), locks, identifies and scans every directory. A directory that
    /// cannot be created, locked, identified or listed is offline from the start (logged at
    /// ERROR, naming it); a lock held by another process, a partition in two directories,
    /// or no directory left online is an error.
    pub fn open(
        paths: &[PathBuf],
        cluster_id: &str,
        node_id: i32,
    ) -> Result<LogDirs, LogDirsError> {
        let mut dirs = Vec::with_capacity(paths.len());
        let mut placed: HashMap<String, usize> = HashMap::new();
        let (mut futures, mut moved) = (Vec::new(), Vec::new());
        for (index, path) in paths.iter().enumerate() {
            let prepared = prepare(path, cluster_id, node_id);
            let (id, lock, failure, names) = match prepared {
                Ok((id, lock, names)) => (Some(id), Some(lock), None, names),
                Err(Prepare::InUse) => return Err(LogDirsError::InUse { dir: path.clone() }),
                Err(Prepare::Failed(reason)) => {
                    tracing::error!(dir = %path.display(), %reason,
                        "log directory is offline from start-up; its partitions are reported \
                         offline and served by other brokers. Fix it and restart");
                    (None, None, Some(reason), Scan::default())
                }
            };
            for name in names.partitions {
                if let Some(first) = placed.insert(name.clone(), index) {
                    return Err(LogDirsError::Duplicate {
                        first: paths[first].join(&name),
                        second: path.join(&name),
                        name,
                    });
                }
            }
            let copy = |(name, path)| MoveCopy {
                name,
                dir: index,
                path,
            };
            futures.extend(names.futures.into_iter().map(copy));
            moved.extend(names.moved.into_iter().map(copy));
            dirs.push(LogDir {
                path: path.clone(),
                id,
                failure: Mutex::new(failure),
                lock: Mutex::new(lock),
            });
        }
        let mut pending = HashMap::new();
        let unresolved = resolve_moves(&dirs, &mut placed, futures, moved, &mut pending);
        let dirs = LogDirs {
            dirs,
            placed: Mutex::new(placed),
            unresolved,
            pending_moves: Mutex::new(pending),
        };
        if dirs.online_count() == 0 {
            return Err(LogDirsError::AllOffline(dirs.failures()));
        }
        Ok(dirs)
    }

    /// The partial copies of interrupted moves found at start-up (taken once).
    pub fn take_pending_moves(&self) -> Vec<(String, usize, PathBuf)> {
        let mut pending = self.pending_moves.lock().unwrap_or_else(|e| e.into_inner());
        pending
            .drain()
            .map(|(name, (dir, path))| (name, dir, path))
            .collect()
    }

    /// Every directory, in `log.dirs` order.
    pub fn all(&self) -> &[LogDir] {
        &self.dirs
    }

    /// How many directories are online.
    pub fn online_count(&self) -> usize {
        self.dirs.iter().filter(|d| d.is_online()).count()
    }

    /// `dir: reason` of every offline directory, for messages.
    pub fn failures(&self) -> String {
        let failed: Vec<String> = self
            .dirs
            .iter()
            .filter_map(|d| d.failure().map(|r| format!("{}: {r}", d.path.display())))
            .collect();
        failed.join("; ")
    }

    /// The index of the directory holding partition directory `name`, if placed.
    pub fn dir_of(&self, name: &str) -> Option<usize> {
        self.placed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied()
    }

    /// Whether directory `index` is online.
    pub fn is_online(&self, index: usize) -> bool {
        self.dirs.get(index).is_some_and(LogDir::is_online)
    }

    /// The directory for partition directory `name`: where it is, or, for a new partition,
    /// the online directory holding the fewest partitions (then placed there). `Err` with
    /// the directory's index when it is in an offline directory; `Err(None)` when no
    /// directory is online.
    pub fn place(&self, name: &str) -> Result<(usize, PathBuf), Option<usize>> {
        let mut placed = self.placed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&index) = placed.get(name) {
            return match self.dirs.get(index) {
                Some(dir) if dir.is_online() => Ok((index, dir.path.join(name))),
                _ => Err(Some(index)),
            };
        }
        let online: Vec<bool> = self.dirs.iter().map(LogDir::is_online).collect();
        let index = least_loaded(&placed, &online).ok_or(None)?;
        placed.insert(name.to_string(), index);
        Ok((index, self.dirs[index].path.join(name)))
    }

    /// Records that partition directory `name` is in directory `index` now (a move).
    pub fn set_placed(&self, name: &str, index: usize) {
        self.placed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), index);
    }

    /// Forgets where partition directory `name` was (its deletion).
    pub fn forget(&self, name: &str) {
        self.placed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// How many partitions each directory holds, in `log.dirs` order.
    pub fn counts(&self) -> Vec<usize> {
        let placed = self.placed.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts = vec![0; self.dirs.len()];
        for index in placed.values() {
            if let Some(count) = counts.get_mut(*index) {
                *count += 1;
            }
        }
        counts
    }

    /// Takes directory `index` offline for `reason`; `true` if it was online until now.
    pub fn fail(&self, index: usize, reason: &str) -> bool {
        let Some(dir) = self.dirs.get(index) else {
            return false;
        };
        let mut failure = dir.failure.lock().unwrap_or_else(|e| e.into_inner());
        if failure.is_some() {
            return false;
        }
        *failure = Some(reason.to_string());
        true
    }

    /// Whether partition directory `name` has a copy left by an interrupted move that
    /// start-up could not decide about: it stays offline.
    pub fn is_unresolved(&self, name: &str) -> bool {
        self.unresolved.iter().any(|n| n == name)
    }

    /// The index of the configured directory `path` (as given, or canonical).
    pub fn index_of(&self, path: &Path) -> Option<usize> {
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let wanted = canonical(path);
        self.dirs
            .iter()
            .position(|d| d.path == path || canonical(&d.path) == wanted)
    }
}

/// Finishes or discards the moves a crash interrupted (the swap order is in
/// `replica_move.rs`): a `-future` copy of a partition that has a current copy is partial
/// and kept in `pending` to be resumed (only the newest such copy of a partition; another,
/// older one, is removed); one whose partition has a `-moved` copy and no current one is complete
/// (the current copy is renamed `-moved` only after the future copy is durable) and is
/// renamed into place; a `-moved` copy of a partition with a current copy is removed.
/// Anything else is reported and left alone; its partitions are returned (kept offline).
fn resolve_moves(
    dirs: &[LogDir],
    placed: &mut HashMap<String, usize>,
    futures: Vec<MoveCopy>,
    moved: Vec<MoveCopy>,
    pending: &mut HashMap<String, (usize, PathBuf)>,
) -> Vec<String> {
    let mut unresolved = Vec::new();
    for future in futures {
        if let Some(index) = placed.get(&future.name) {
            // The current copy stays the partition's until a resumed move swaps it out;
            // the partial copy is reopened (recovery cuts a torn tail) and the copy goes on
            // from its end. Two partial copies of one partition (a crash during a move
            // that had replaced another): the one in a directory other than the current
            // one's is kept, any other removed.
            let keep = future.dir != *index && !pending.contains_key(&future.name);
            if keep {
                tracing::info!(future = %future.path.display(),
                    current = %dirs[*index].path.join(&future.name).display(),
                    "a replica move a restart interrupted resumes once the partition is open");
                pending.insert(future.name, (future.dir, future.path));
            } else {
                tracing::info!(future = %future.path.display(),
                    "removing a partial copy of a replica move that did not finish");
                crate::replica_move::remove_quietly(&future.path);
            }
            continue;
        }
        if !moved.iter().any(|m| m.name == future.name) {
            tracing::error!(future = %future.path.display(),
                "a replica move's copy has no current copy and no old copy beside it: it is                  left alone and the partition stays offline. If it is the only copy, rename it                  to its partition's name and restart");
            unresolved.push(future.name);
            continue;
        }
        let target = dirs[future.dir].path.join(&future.name);
        let renamed = std::fs::rename(&future.path, &target)
            .and_then(|()| std::fs::File::open(&dirs[future.dir].path)?.sync_all());
        match renamed {
            Ok(()) => {
                tracing::info!(dir = %target.display(),
                    "finished a replica move a crash interrupted (its copy is current)");
                placed.insert(future.name, future.dir);
            }
            Err(error) => {
                tracing::error!(future = %future.path.display(), %error,
                    "cannot finish a replica move a crash interrupted; the partition stays                      offline");
                unresolved.push(future.name);
            }
        }
    }
    for old in moved {
        if placed.contains_key(&old.name) {
            crate::replica_move::remove_quietly(&old.path);
        } else {
            tracing::error!(dir = %old.path.display(),
                "the old copy of a moved replica has no current copy beside it (its directory                  may be offline): it is left alone and the partition stays offline");
            unresolved.push(old.name);
        }
    }
    unresolved
}

/// Kafka's placement rule: the online directory with the fewest partitions, the first listed
/// on a tie; `None` when none is online.
pub fn least_loaded(placed: &HashMap<String, usize>, online: &[bool]) -> Option<usize> {
    let mut counts = vec![0usize; online.len()];
    for index in placed.values() {
        if let Some(count) = counts.get_mut(*index) {
            *count += 1;
        }
    }
    (0..online.len())
        .filter(|i| online[*i])
        .min_by_key(|i| (counts[*i], *i))
}

enum Prepare {
    InUse,
    Failed(String),
}

/// The partition directories and future copies a log directory holds.
#[derive(Debug, Default)]
struct Scan {
    partitions: Vec<String>,
    futures: Vec<(String, PathBuf)>,
    moved: Vec<(String, PathBuf)>,
}

/// Creates, locks, identifies and scans one directory.
fn prepare(
    path: &Path,
    cluster_id: &str,
    node_id: i32,
) -> Result<(String, std::fs::File, Scan), Prepare> {
    let failed = |what: &str, e: io::Error| Prepare::Failed(format!("{what}: {e}"));
    std::fs::create_dir_all(path).map_err(|e| failed("cannot create it", e))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.join(".lock"))
        .map_err(|e| failed("cannot open .lock", e))?;
    fs2::FileExt::try_lock_exclusive(&lock).map_err(|_| Prepare::InUse)?;
    let id = ensure_directory_id(path, cluster_id, node_id)
        .map_err(|e| failed(&format!("cannot read or write {META_PROPERTIES}"), e))?;
    let scan = scan(path).map_err(|e| failed("cannot list it", e))?;
    Ok((id, lock, scan))
}

/// The partition directories (`<topic>-<partition>`) and future copies in `dir`.
fn scan(dir: &Path) -> io::Result<Scan> {
    let mut out = Scan::default();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        for (suffix, into) in [
            (FUTURE_SUFFIX, &mut out.futures),
            (MOVED_SUFFIX, &mut out.moved),
        ] {
            // `<topic>-<partition>.<uuid>-future` (or `-moved`)
            if let Some((partition, _)) = name.strip_suffix(suffix).and_then(|s| s.rsplit_once('.'))
            {
                if parse_partition_name(partition).is_some() {
                    into.push((partition.to_string(), entry.path()));
                }
            }
        }
        if name.ends_with(FUTURE_SUFFIX) || name.ends_with(MOVED_SUFFIX) {
            continue;
        }
        if name != METADATA_LOG_NAME && parse_partition_name(&name).is_some() {
            out.partitions.push(name);
        }
    }
    out.partitions.sort();
    Ok(out)
}

/// `(topic, partition)` of a partition directory name `<topic>-<partition>`.
pub fn parse_partition_name(name: &str) -> Option<(&str, i32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty() || partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((topic, partition.parse().ok()?))
}

/// The `directory.id` of `dir/meta.properties`, written now if the file or the key is
/// missing: the other lines are kept, the new file is written to `meta.properties.tmp`,
/// fsynced, renamed over, and the directory fsynced, so the id is written once and a crash
/// leaves the old file or the new one whole.
pub fn ensure_directory_id(dir: &Path, cluster_id: &str, node_id: i32) -> io::Result<String> {
    let path = dir.join(META_PROPERTIES);
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if let Some(text) = &existing {
        if let Some(id) = property(text, "directory.id") {
            return Ok(id.to_string());
        }
    }
    let id = random_directory_id();
    let body = match existing {
        Some(text) => {
            let mut text = text;
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            format!("{text}directory.id={id}\n")
        }
        None => meta_properties_text(cluster_id, &id, i64::from(node_id)),
    };
    write_meta_properties(dir, &body)?;
    Ok(id)
}

/// Kafka's `meta.properties` (version 1) for a new directory: what `strom storage format`,
/// a first start and [`ensure_directory_id`] write.
pub fn meta_properties_text(cluster_id: &str, directory_id: &str, node_id: i64) -> String {
    let cluster = if cluster_id.is_empty() {
        String::new()
    } else {
        format!("cluster.id={cluster_id}\n")
    };
    format!("#\n#Written by strom\n{cluster}directory.id={directory_id}\nnode.id={node_id}\nversion=1\n")
}

/// The one writer of `meta.properties` (`strom storage format`, a first start, and
/// [`ensure_directory_id`]): `body` is written to `meta.properties.tmp`, fsynced, renamed
/// over the file, and the directory fsynced, so a crash leaves the old file (or none) or
/// the new one whole, and the rename is durable before anything relies on what it says.
/// Callers hold the directory's `.lock` (start-up and `strom storage format` take it), so
/// two processes never write the temporary file at once.
pub fn write_meta_properties(dir: &Path, body: &str) -> io::Result<()> {
    let path = dir.join(META_PROPERTIES);
    let temp = dir.join(format!("{META_PROPERTIES}.tmp"));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(body.as_bytes())?;
    // fsync: the contents are durable before the rename exposes them.
    file.sync_all()?;
    std::fs::rename(&temp, &path)?;
    // fsync: the rename is durable before anything relies on the file.
    std::fs::File::open(dir)?.sync_all()
}

/// The value of `key` in Java properties text (`key=value` lines; `#` and `!` comments).
fn property<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A Kafka-style Uuid text (16 random bytes, URL-safe base64 without padding), never one
/// starting with `-`.
fn random_directory_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    // Bounded: a leading '-' has probability 1/64 per draw; the last draw's first
    // character is replaced if it still is one.
    let mut out = String::new();
    for _ in 0..8 {
        out.clear();
        let bytes = *uuid::Uuid::new_v4().as_bytes();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        if !out.starts_with('-') {
            return out;
        }
    }
    out.replacen('-', "A", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_placement(placed: &[(&str, usize)], online: &[bool], expected: Option<usize>) {
        let placed: HashMap<String, usize> =
            placed.iter().map(|(n, i)| (n.to_string(), *i)).collect();
        assert_eq!(
            least_loaded(&placed, online),
            expected,
            "{placed:?} {online:?}"
        );
    }

    #[test]
    fn placement_takes_the_online_dir_with_fewest_partitions() {
        check_placement(&[], &[true, true], Some(0));
        check_placement(&[("a-0", 0)], &[true, true], Some(1));
        check_placement(&[("a-0", 0), ("a-1", 1)], &[true, true, true], Some(2));
        check_placement(&[("a-0", 0), ("a-1", 1)], &[true, true], Some(0));
        check_placement(&[("a-0", 1), ("a-1", 1)], &[true, true], Some(0));
        check_placement(&[("a-0", 1), ("a-1", 1)], &[false, true], Some(1));
        check_placement(&[], &[false, false], None);
        check_placement(
            &[("a-0", 0), ("b-0", 0), ("c-0", 2)],
            &[true, false, true],
            Some(2),
        );
    }

    #[test]
    fn partition_names() {
        assert_eq!(parse_partition_name("t-0"), Some(("t", 0)));
        assert_eq!(parse_partition_name("a-b-12"), Some(("a-b", 12)));
        for bad in ["t", "-0", "t-", "t-x", "t-0.abc-future", "t-0.abc-delete"] {
            assert_eq!(parse_partition_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn spreads_partitions_and_keeps_what_it_found() {
        let root = tempfile::tempdir().unwrap();
        let paths = vec![root.path().join("a"), root.path().join("b")];
        std::fs::create_dir_all(paths[1].join("old-0")).unwrap();
        std::fs::create_dir_all(paths[1].join("old-1.0123abcd-future")).unwrap();
        // A move of old-0 into `a` that a restart interrupted: kept, to be resumed.
        std::fs::create_dir_all(paths[0].join("old-0.4567cdef-future")).unwrap();
        std::fs::create_dir_all(paths[0].join("__cluster_metadata-0")).unwrap();
        let dirs = LogDirs::open(&paths, "cid", 1).unwrap();
        assert!(paths[0].join("old-0.4567cdef-future").is_dir());
        assert_eq!(
            dirs.take_pending_moves(),
            vec![(
                "old-0".to_string(),
                0,
                paths[0].join("old-0.4567cdef-future")
            )]
        );
        assert!(dirs.take_pending_moves().is_empty());
        assert_eq!(dirs.dir_of("old-0"), Some(1));
        assert_eq!(dirs.counts(), vec![0, 1]);
        assert_eq!(dirs.place("new-0").unwrap().0, 0);
        assert_eq!(dirs.place("new-1").unwrap().0, 0);
        assert_eq!(dirs.place("new-2").unwrap().0, 1);
        assert_eq!(dirs.place("old-0").unwrap().1, paths[1].join("old-0"));
        // A future copy without a current or an old copy is left alone, its partition
        // kept offline.
        assert!(paths[1].join("old-1.0123abcd-future").is_dir());
        assert!(dirs.is_unresolved("old-1") && !dirs.is_unresolved("old-0"));
        // Ids are written once and read back; different per directory.
        let ids: Vec<String> = dirs.all().iter().map(|d| d.id.clone().unwrap()).collect();
        assert_ne!(ids[0], ids[1]);
        assert_eq!(ids[0].len(), 22);
        drop(dirs);
        let again = LogDirs::open(&paths, "cid", 1).unwrap();
        let ids_again: Vec<String> = again.all().iter().map(|d| d.id.clone().unwrap()).collect();
        assert_eq!(ids, ids_again);
        let text = std::fs::read_to_string(paths[0].join(META_PROPERTIES)).unwrap();
        assert!(
            text.contains("cluster.id=cid\n") && text.contains("node.id=1\n"),
            "{text}"
        );
        // A second broker on the same directories is refused.
        assert!(matches!(
            LogDirs::open(&paths, "cid", 1),
            Err(LogDirsError::InUse { .. })
        ));
    }

    #[test]
    fn a_formatted_dir_keeps_its_id_and_one_without_gets_one() {
        let root = tempfile::tempdir().unwrap();
        let formatted = "cluster.id=c\ndirectory.id=AAECAwQFBgcICQoLDA0ODw\nnode.id=1\nversion=1\n";
        std::fs::write(root.path().join(META_PROPERTIES), formatted).unwrap();
        assert_eq!(
            ensure_directory_id(root.path(), "c", 1).unwrap(),
            "AAECAwQFBgcICQoLDA0ODw"
        );
        std::fs::write(root.path().join(META_PROPERTIES), "cluster.id=c\nnode.id=1").unwrap();
        let id = ensure_directory_id(root.path(), "c", 1).unwrap();
        let text = std::fs::read_to_string(root.path().join(META_PROPERTIES)).unwrap();
        assert_eq!(
            text,
            format!("cluster.id=c\nnode.id=1\ndirectory.id={id}\n")
        );
    }

    #[test]
    fn a_partition_in_two_dirs_stops_start_up_naming_both() {
        let root = tempfile::tempdir().unwrap();
        let paths = vec![root.path().join("a"), root.path().join("b")];
        for p in &paths {
            std::fs::create_dir_all(p.join("t-3")).unwrap();
        }
        let err = LogDirs::open(&paths, "", 1).unwrap_err().to_string();
        assert!(
            err.contains(&paths[0].join("t-3").display().to_string()),
            "{err}"
        );
        assert!(
            err.contains(&paths[1].join("t-3").display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn an_unusable_dir_is_offline_alone_and_all_offline_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let good = root.path().join("good");
        let dirs = LogDirs::open(&[file.clone(), good.clone()], "", 1).unwrap();
        assert!(!dirs.is_online(0) && dirs.is_online(1));
        assert_eq!(dirs.place("t-0").unwrap().0, 1);
        assert!(dirs.failures().contains("not-a-dir"), "{}", dirs.failures());
        assert!(dirs.fail(1, "fsync failed"));
        assert!(!dirs.fail(1, "again"));
        assert_eq!(dirs.place("t-0"), Err(Some(1)));
        assert_eq!(dirs.place("t-1"), Err(None));
        drop(dirs);
        let err = LogDirs::open(std::slice::from_ref(&file), "", 1).unwrap_err();
        assert!(matches!(err, LogDirsError::AllOffline(_)), "{err}");
    }
}
