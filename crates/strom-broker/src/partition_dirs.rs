//! Partition directories on disk: the `partition.metadata` file that ties a directory to a
//! topic id, claiming a directory for a partition, moving strays aside, and the one deletion
//! there is (of a partition whose removal the metadata log committed).
//!
//! **Nothing here deletes data because the metadata does not mention it.** A directory whose
//! topic id the committed image does not know is renamed `<name>.<uuid>-stray` (Kafka's
//! name) and reported at WARN with its size; it is never removed. A `partition.metadata`
//! that cannot be read is reported and never overwritten while the directory holds data:
//! the partition stays offline until an operator decides. Only `remove_committed_deletion`
//! removes data, for a partition the committed image no longer gives this broker (see
//! "Deleting data" in docs/ARCHITECTURE.md), and `sweep` removes the `-delete` directories
//! such removals leave behind after a crash.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use strom_meta::MetadataImage;
use uuid::Uuid;

/// The file in a partition directory that names the topic id (Kafka's name and layout).
pub const PARTITION_METADATA_FILE: &str = "partition.metadata";
/// Where `partition.metadata` is written before it is renamed into place.
const PARTITION_METADATA_TEMP_FILE: &str = "partition.metadata.tmp";
/// Suffix of a directory being deleted (a committed deletion).
pub const DELETE_SUFFIX: &str = "-delete";
/// Suffix of a directory moved aside because no topic of the metadata claims it.
pub const STRAY_SUFFIX: &str = "-stray";

/// Why a directory cannot be used for a partition; the partition stays offline.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{} cannot be read ({reason}), and {} holds data whose topic is therefore unknown: \
         the partition stays offline and nothing is changed. If the directory belongs to topic \
         id {wanted}, write \"version: 0\\ntopic_id: {wanted}\\n\" into the file and restart; \
         otherwise move the directory aside",
        file.display(),
        dir.display()
    )]
    UnreadableId {
        dir: PathBuf,
        file: PathBuf,
        reason: String,
        wanted: Uuid,
    },
    #[error(
        "{} holds data but no {PARTITION_METADATA_FILE}, so its topic is unknown: the partition \
         stays offline and nothing is changed. If it belongs to topic id {wanted}, write \
         \"version: 0\\ntopic_id: {wanted}\\n\" into {}; otherwise move the directory aside",
        dir.display(),
        dir.join(PARTITION_METADATA_FILE).display()
    )]
    NoId { dir: PathBuf, wanted: Uuid },
    #[error(
        "{} holds topic id {found}, which the metadata still knows, not {wanted}: the \
         partition stays offline and nothing is changed",
        dir.display()
    )]
    LiveOtherTopic {
        dir: PathBuf,
        found: Uuid,
        wanted: Uuid,
    },
}

/// What a directory's `partition.metadata` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicIdFile {
    /// No such file.
    Missing,
    /// A file that does not hold a topic id, and why.
    Unreadable(String),
    /// The topic id.
    Id(Uuid),
}

/// Reads `dir/partition.metadata`: `version: 0` and `topic_id: <uuid>` lines.
pub fn read_topic_id(dir: &Path) -> TopicIdFile {
    let path = dir.join(PARTITION_METADATA_FILE);
    let text = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return TopicIdFile::Missing,
        Err(e) => return TopicIdFile::Unreadable(e.to_string()),
    };
    let Ok(text) = std::str::from_utf8(&text) else {
        return TopicIdFile::Unreadable("not UTF-8 text".into());
    };
    let field = |key: &str| {
        text.lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim())
    };
    if field("version") != Some("0") {
        return TopicIdFile::Unreadable("no \"version: 0\" line".into());
    }
    let Some(id) = field("topic_id") else {
        return TopicIdFile::Unreadable("no topic_id line".into());
    };
    match Uuid::parse_str(id) {
        Ok(id) => TopicIdFile::Id(id),
        Err(_) => TopicIdFile::Unreadable(format!("topic_id {id:?} is not a UUID")),
    }
}

/// Makes `dir` the directory of topic `wanted`. A directory holding another topic id that
/// `image` does not know is moved aside as a stray; the id file is written atomically and
/// durably before any data. `image` must be at least as new as every directory on disk
/// (start-up catches up with the committed metadata before the first claim).
pub fn claim_dir(dir: &Path, wanted: Uuid, image: &MetadataImage) -> Result<(), ClaimError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ClaimError::Io { path, source }
    };
    match read_topic_id(dir) {
        TopicIdFile::Id(found) if found == wanted => return Ok(()),
        TopicIdFile::Id(found) if image.topic_by_id(found).is_some() => {
            return Err(ClaimError::LiveOtherTopic {
                dir: dir.to_path_buf(),
                found,
                wanted,
            })
        }
        TopicIdFile::Id(found) => {
            move_aside(
                dir,
                &format!("it holds topic id {found}, which no topic has"),
            )
            .map_err(io(dir))?;
        }
        TopicIdFile::Unreadable(reason) => {
            if holds_data(dir).map_err(io(dir))? {
                return Err(ClaimError::UnreadableId {
                    dir: dir.to_path_buf(),
                    file: dir.join(PARTITION_METADATA_FILE),
                    reason,
                    wanted,
                });
            }
            // Nothing but the id file: a creation torn before any data was written.
            tracing::warn!(file = %dir.join(PARTITION_METADATA_FILE).display(), %reason,
                "unreadable partition.metadata in a directory without data; writing it again");
        }
        TopicIdFile::Missing => {
            if holds_data(dir).map_err(io(dir))? {
                return Err(ClaimError::NoId {
                    dir: dir.to_path_buf(),
                    wanted,
                });
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    write_topic_id(dir, wanted).map_err(io(&dir.join(PARTITION_METADATA_FILE)))?;
    if let Some(parent) = dir.parent() {
        // The new directory entry must survive a crash with the data that follows.
        sync_dir(parent).map_err(io(parent))?;
    }
    Ok(())
}

/// Whether `dir` holds any file besides the id file and its temp file.
fn holds_data(dir: &Path) -> io::Result<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name();
        if name != PARTITION_METADATA_FILE && name != PARTITION_METADATA_TEMP_FILE {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Writes `partition.metadata` atomically: temp file, fsync, rename, directory fsync, so a
/// crash never leaves a torn id file.
fn write_topic_id(dir: &Path, topic_id: Uuid) -> io::Result<()> {
    let temp = dir.join(PARTITION_METADATA_TEMP_FILE);
    let text = format!("version: 0\ntopic_id: {}\n", topic_id.hyphenated());
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(text.as_bytes())?;
    // fsync: the contents must be durable before the rename exposes them.
    file.sync_all()?;
    std::fs::rename(&temp, dir.join(PARTITION_METADATA_FILE))?;
    // fsync: the rename must be durable before any data is written beside it.
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Runs at start-up with an image that holds everything committed (see `Broker::start`):
/// finishes committed deletions a crash interrupted (`-delete` directories), moves aside
/// partition directories whose topic id no topic has, and reports (without touching)
/// directories already moved aside and directories whose id cannot be read. Returns the
/// names of the directories it moved aside.
pub fn sweep(data_dir: &Path, image: &MetadataImage) -> Vec<String> {
    let mut moved = Vec::new();
    let entries = match std::fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(error) => {
            tracing::warn!(dir = %data_dir.display(), %error, "cannot list the log directory");
            return moved;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !path.is_dir() {
            continue;
        }
        if name.ends_with(DELETE_SUFFIX) {
            // Renamed only after its deletion committed: finishing it is the deletion itself.
            if let Err(error) = std::fs::remove_dir_all(&path) {
                tracing::warn!(dir = %path.display(), %error, "cannot remove a deleted partition");
            }
            continue;
        }
        if name.ends_with(STRAY_SUFFIX) {
            tracing::warn!(dir = %path.display(), size_bytes = size_bytes(&path),
                "stray partition directory kept (no topic claims it); remove it once you are \
                 sure its data is not needed");
            continue;
        }
        match read_topic_id(&path) {
            TopicIdFile::Id(id) if image.topic_by_id(id).is_none() => {
                let reason = format!("it holds topic id {id}, which no topic has");
                match move_aside(&path, &reason) {
                    Ok(_) => moved.push(name),
                    Err(error) => tracing::error!(dir = %path.display(), %error,
                        "cannot move a stray partition directory aside; it is left in place"),
                }
            }
            TopicIdFile::Unreadable(reason) => {
                tracing::warn!(file = %path.join(PARTITION_METADATA_FILE).display(), %reason,
                    "cannot read the topic id of a directory in the log directory; it is left \
                     alone");
            }
            TopicIdFile::Id(_) | TopicIdFile::Missing => {}
        }
    }
    moved
}

/// Renames `dir` to `<name>.<uuid>-stray` (durably) and reports it at WARN with its size.
pub fn move_aside(dir: &Path, reason: &str) -> io::Result<PathBuf> {
    let size = size_bytes(dir);
    let stray = suffixed(dir, STRAY_SUFFIX);
    std::fs::rename(dir, &stray)?;
    if let Some(parent) = stray.parent() {
        // fsync: the rename is durable before the directory's old name is reused.
        sync_dir(parent)?;
    }
    tracing::warn!(dir = %dir.display(), moved_to = %stray.display(), size_bytes = size,
        "partition directory moved aside as a stray, not deleted: {reason}");
    Ok(stray)
}

/// Removes the directory of a partition whose removal from this broker is committed in the
/// metadata log: renamed to `-delete` first, so a crash mid-removal leaves a directory that
/// no longer looks like a partition, which the next start-up's `sweep` finishes.
pub fn remove_committed_deletion(dir: &Path) -> io::Result<()> {
    let doomed = suffixed(dir, DELETE_SUFFIX);
    std::fs::rename(dir, &doomed)?;
    std::fs::remove_dir_all(&doomed)
}

/// `<dir>.<uuid>-<suffix>` beside `dir`.
fn suffixed(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.with_file_name(format!("{name}.{}{suffix}", Uuid::new_v4().simple()))
}

/// Bytes of the files in `dir` and its subdirectories (bounded depth; errors count 0).
fn size_bytes(dir: &Path) -> u64 {
    fn walk(dir: &Path, depth: usize) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|entry| match entry.metadata() {
                Ok(meta) if meta.is_dir() && depth < 4 => walk(&entry.path(), depth + 1),
                Ok(meta) if meta.is_file() => meta.len(),
                _ => 0,
            })
            .sum()
    }
    walk(dir, 0)
}

#[cfg(test)]
mod tests {
    use strom_meta::MetadataRecord;

    use super::*;

    /// An image holding one topic "live" (its id returned).
    fn image_with_topic() -> (MetadataImage, Uuid) {
        let topic_id = Uuid::new_v4();
        let records = [MetadataRecord::Topic {
            name: "live".into(),
            topic_id,
        }];
        let (image, _) = MetadataImage::default().apply(&records).unwrap();
        (image, topic_id)
    }

    fn partition_with_data(root: &Path, name: &str, id: &str) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(PARTITION_METADATA_FILE), id).unwrap();
        std::fs::write(dir.join("00000000000000000000.log"), vec![7u8; 1000]).unwrap();
        dir
    }

    fn names(root: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn read_topic_id_names_garbage() {
        let root = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        let dir = root.path();
        assert_eq!(read_topic_id(dir), TopicIdFile::Missing);
        write_topic_id(dir, id).unwrap();
        assert_eq!(read_topic_id(dir), TopicIdFile::Id(id));
        for garbage in [
            &b"\xff\xfe"[..],
            b"",
            b"version: 0\ntopic_id: 12\n",
            b"topic_id: x",
        ] {
            std::fs::write(dir.join(PARTITION_METADATA_FILE), garbage).unwrap();
            assert!(matches!(read_topic_id(dir), TopicIdFile::Unreadable(_)));
        }
    }

    #[test]
    fn sweep_moves_unknown_ids_aside_and_keeps_the_rest() {
        let root = tempfile::tempdir().unwrap();
        let (image, live) = image_with_topic();
        let unknown = Uuid::new_v4();
        let ghost = partition_with_data(
            root.path(),
            "ghost-0",
            &format!("version: 0\ntopic_id: {unknown}\n"),
        );
        let before = std::fs::read(ghost.join("00000000000000000000.log")).unwrap();
        partition_with_data(
            root.path(),
            "live-0",
            &format!("version: 0\ntopic_id: {live}\n"),
        );
        partition_with_data(root.path(), "garbled-0", "version: 0\ntopic_id: ???\n");
        std::fs::create_dir_all(root.path().join("old-0.0123-delete")).unwrap();
        std::fs::write(root.path().join(".lock"), b"").unwrap();
        sweep(root.path(), &image);
        let names = names(root.path());
        assert!(names.contains(&"live-0".to_string()), "{names:?}");
        assert!(names.contains(&"garbled-0".to_string()), "{names:?}");
        assert!(!names.iter().any(|n| n.ends_with("-delete")), "{names:?}");
        let stray = names
            .iter()
            .find(|n| n.starts_with("ghost-0.") && n.ends_with(STRAY_SUFFIX))
            .unwrap_or_else(|| panic!("no stray in {names:?}"));
        let moved = root.path().join(stray);
        assert_eq!(
            std::fs::read(moved.join("00000000000000000000.log")).unwrap(),
            before
        );
        // A second sweep leaves the stray where it is.
        sweep(root.path(), &image);
        assert!(moved.exists());
    }

    #[test]
    fn claim_never_deletes_and_never_overwrites_an_unreadable_id() {
        let root = tempfile::tempdir().unwrap();
        let (image, live) = image_with_topic();
        let wanted = Uuid::new_v4();
        // A new directory is created with its id.
        let fresh = root.path().join("new-0");
        claim_dir(&fresh, wanted, &image).unwrap();
        assert_eq!(read_topic_id(&fresh), TopicIdFile::Id(wanted));
        claim_dir(&fresh, wanted, &image).unwrap();
        // Another, unknown id: moved aside, then claimed fresh.
        let old = Uuid::new_v4();
        let dir = partition_with_data(
            root.path(),
            "reused-0",
            &format!("version: 0\ntopic_id: {old}\n"),
        );
        claim_dir(&dir, wanted, &image).unwrap();
        assert_eq!(read_topic_id(&dir), TopicIdFile::Id(wanted));
        assert!(!dir.join("00000000000000000000.log").exists());
        let stray = names(root.path())
            .into_iter()
            .find(|n| n.starts_with("reused-0.") && n.ends_with(STRAY_SUFFIX))
            .unwrap();
        assert!(root
            .path()
            .join(stray)
            .join("00000000000000000000.log")
            .exists());
        // A live topic's id: refused.
        let dir = partition_with_data(
            root.path(),
            "clash-0",
            &format!("version: 0\ntopic_id: {live}\n"),
        );
        assert!(matches!(
            claim_dir(&dir, wanted, &image),
            Err(ClaimError::LiveOtherTopic { .. })
        ));
        // Garbage beside data: refused, file untouched, the message names it.
        let dir = partition_with_data(root.path(), "garbled-0", "version: 0\ntopic_id: ?\n");
        let err = claim_dir(&dir, wanted, &image).unwrap_err();
        assert!(err.to_string().contains("partition.metadata"), "{err}");
        assert_eq!(
            std::fs::read(dir.join(PARTITION_METADATA_FILE)).unwrap(),
            b"version: 0\ntopic_id: ?\n"
        );
        // No id file beside data: refused.
        let dir = root.path().join("anonymous-0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("00000000000000000000.log"), b"x").unwrap();
        assert!(matches!(
            claim_dir(&dir, wanted, &image),
            Err(ClaimError::NoId { .. })
        ));
        // Garbage with no data beside it (a torn creation): written again.
        let dir = root.path().join("torn-0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(PARTITION_METADATA_FILE), b"vers").unwrap();
        claim_dir(&dir, wanted, &image).unwrap();
        assert_eq!(read_topic_id(&dir), TopicIdFile::Id(wanted));
    }
}
