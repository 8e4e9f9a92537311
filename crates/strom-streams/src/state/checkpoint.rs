//! Checkpoint files: `<state.dir>/<application.id>/<task>/.checkpoint` holds, per changelog
//! partition, the offset restoring starts from (everything before it is in the task's
//! persistent stores). Text, one `topic partition offset` line each after a version line.
//!
//! Written to `.checkpoint.tmp`, fsynced, renamed over `.checkpoint`, and the directory
//! fsynced, so a crash leaves the old or the new file, never a torn one. Written only after
//! the stores were flushed (see `persistent.rs`), so the offsets never run ahead of the
//! files. A missing or unreadable checkpoint means "restore from the beginning".

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use strom_client::TopicPartition;

use crate::error::{Result, StreamsError};

const FILE: &str = ".checkpoint";
const VERSION: &str = "0";

pub(crate) fn read(dir: &Path) -> BTreeMap<TopicPartition, i64> {
    let path = dir.join(FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return BTreeMap::new();
    };
    let mut lines = text.lines();
    if lines.next() != Some(VERSION) {
        tracing::warn!(path = %path.display(), "checkpoint of an unknown version; restoring from the beginning");
        return BTreeMap::new();
    }
    let mut out = BTreeMap::new();
    for line in lines {
        let parts: Vec<&str> = line.split(' ').collect();
        let parsed = match parts.as_slice() {
            [t, p, o] => p
                .parse::<i32>()
                .ok()
                .zip(o.parse::<i64>().ok())
                .map(|(p, o)| (t, p, o)),
            _ => None,
        };
        match parsed {
            Some((t, p, o)) => {
                out.insert(TopicPartition::new(*t, p), o);
            }
            None => {
                tracing::warn!(path = %path.display(), line, "corrupt checkpoint line; restoring from the beginning");
                return BTreeMap::new();
            }
        }
    }
    out
}

pub(crate) fn write(dir: &Path, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| StreamsError::io(dir, e))?;
    let tmp = dir.join(".checkpoint.tmp");
    let mut text = format!("{VERSION}\n");
    for (tp, o) in offsets {
        text.push_str(&format!("{} {} {o}\n", tp.topic, tp.partition));
    }
    let mut f = std::fs::File::create(&tmp).map_err(|e| StreamsError::io(&tmp, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| StreamsError::io(&tmp, e))?;
    f.sync_all().map_err(|e| StreamsError::io(&tmp, e))?;
    let path = dir.join(FILE);
    std::fs::rename(&tmp, &path).map_err(|e| StreamsError::io(&path, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StreamsError::io(dir, e))
}

const PROCESS_ID_FILE: &str = ".process-id";

/// This instance's process id, kept in `<state.dir>/<application.id>/.process-id` (one
/// UUID line, written like a checkpoint) so that a restarted instance has the same one.
/// Under exactly_once_v2 the transactional ids derive from it: the restarted instance's
/// InitProducerId then fences its killed predecessor and aborts the transaction it left
/// open at once, instead of after `transaction.timeout.ms`. An unreadable file is
/// replaced by a new id (the old transactions then time out).
pub(crate) fn process_id(app_dir: &Path) -> Result<String> {
    let path = app_dir.join(PROCESS_ID_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if uuid::Uuid::parse_str(id).is_ok() {
            return Ok(id.to_string());
        }
        tracing::warn!(path = %path.display(), "unreadable process id; using a new one");
    }
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::create_dir_all(app_dir).map_err(|e| StreamsError::io(app_dir, e))?;
    let tmp = app_dir.join(".process-id.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| StreamsError::io(&tmp, e))?;
    f.write_all(format!("{id}\n").as_bytes())
        .map_err(|e| StreamsError::io(&tmp, e))?;
    f.sync_all().map_err(|e| StreamsError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| StreamsError::io(&path, e))?;
    std::fs::File::open(app_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StreamsError::io(app_dir, e))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_id_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = process_id(dir.path()).unwrap();
        assert_eq!(process_id(dir.path()).unwrap(), first);
        std::fs::write(dir.path().join(PROCESS_ID_FILE), "junk").unwrap();
        assert_ne!(process_id(dir.path()).unwrap(), first);
    }

    #[test]
    fn round_trips_and_corruption_means_from_the_beginning() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).is_empty());
        let mut offsets = BTreeMap::new();
        offsets.insert(TopicPartition::new("app-s-changelog", 2), 17);
        write(dir.path(), &offsets).unwrap();
        assert_eq!(read(dir.path()), offsets);
        std::fs::write(dir.path().join(FILE), "0\ngarbage\n").unwrap();
        assert!(read(dir.path()).is_empty());
    }
}
