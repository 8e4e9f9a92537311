//! The snapshot file: `u32 meta length | meta JSON | state bytes`, stored atomically with a
//! checksum. The same body (without the checksum) is what openraft ships to a lagging follower.

use std::io;
use std::path::Path;

use crate::fsutil::{invalid_data, read_atomic, write_atomic};
use crate::types::SnapshotMeta;

pub const SNAPSHOT_FILE: &str = "snapshot";

/// Builds the body for `meta` and the encoded state.
pub fn encode_body(meta: &SnapshotMeta, state: &[u8]) -> io::Result<Vec<u8>> {
    let meta_json = serde_json::to_vec(meta).map_err(io::Error::other)?;
    let meta_len = u32::try_from(meta_json.len()).map_err(io::Error::other)?;
    let mut body = Vec::with_capacity(4 + meta_json.len() + state.len());
    body.extend_from_slice(&meta_len.to_le_bytes());
    body.extend_from_slice(&meta_json);
    body.extend_from_slice(state);
    Ok(body)
}

/// Splits a body into its meta and state bytes.
pub fn decode_body(body: &[u8]) -> io::Result<(SnapshotMeta, &[u8])> {
    let (len_bytes, rest) = body
        .split_at_checked(4)
        .ok_or_else(|| invalid_data("snapshot shorter than its header".into()))?;
    let mut len = [0u8; 4];
    len.copy_from_slice(len_bytes);
    let (meta_json, state) = rest
        .split_at_checked(u32::from_le_bytes(len) as usize)
        .ok_or_else(|| invalid_data("snapshot meta length out of range".into()))?;
    let meta = serde_json::from_slice(meta_json)
        .map_err(|e| invalid_data(format!("snapshot meta: {e}")))?;
    Ok((meta, state))
}

/// Stores `body` durably (fsync before return: the log may be purged right after).
pub fn store(dir: &Path, body: &[u8]) -> io::Result<()> {
    write_atomic(&dir.join(SNAPSHOT_FILE), body, true)
}

/// The stored body, if any; a checksum mismatch is an error (never silently ignored, since
/// the log before the snapshot may already be purged).
pub fn load(dir: &Path) -> io::Result<Option<Vec<u8>>> {
    read_atomic(&dir.join(SNAPSHOT_FILE))
}
