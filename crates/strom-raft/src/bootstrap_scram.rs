//! The SCRAM users `strom storage format --add-scram` writes into the metadata log directory
//! (`bootstrap.scram`), as Kafka's `kafka-storage.sh format --add-scram` writes bootstrap
//! records: salt, stored key, server key and iterations, never the password.
//!
//! They count only for a metadata log that never held a SCRAM credential, as Kafka writes
//! its bootstrap records once, into a new log:
//! - the controller listener checks SCRAM against them while the node's applied image never
//!   held a SCRAM credential (a new quorum: a controller must authenticate its peers before
//!   any entry reaches it; a node that joins later, until it has caught up);
//! - the active controller writes them into the metadata log (one AlterUserScramCredentials
//!   entry) while its image never held a SCRAM credential, so from then on the image, which
//!   every node replicates, is the only source (a later password change or deletion through
//!   AlterUserScramCredentials is what everyone checks).
//!
//! "Never held" is `MetadataImage::scram_ever_written`: set by any SCRAM record, a deletion
//! included, and kept in snapshots, so deleting every credential does not bring the
//! bootstrap users back, on any node, nor makes a newly active controller write them again.
//!
//! Each node also retires its file once its applied image holds that mark and a stored
//! snapshot covers the record ([`retire`], called by the node: snapshots are fsynced and
//! loaded first at start-up, so after any crash the image holds the mark from the start;
//! the commit hint is not durable enough), by renaming `bootstrap.scram` to
//! `bootstrap.scram.applied` and fsyncing the directory. A node that finds
//! `bootstrap.scram.applied` reads no bootstrap users at all ([`read`]): so in the window
//! after a restart, before the log is replayed, a deleted bootstrap password does not
//! count either. A node that has never seen the record (new, or restored from an older
//! snapshot without the file retired) still authenticates its peers with the file until it
//! catches up, which is what a new quorum needs. Give every node of a cluster the same
//! `--add-scram` users.
//!
//! The file is an atomic checksummed file (`fsutil.rs`) holding JSON; it is read once at
//! start-up, at most [`BOOTSTRAP_SCRAM_BYTES_MAX`] bytes and [`BOOTSTRAP_SCRAM_USERS_MAX`]
//! users, each checked (mechanism, key lengths, iterations) so a damaged file fails start-up
//! naming it.

use std::path::Path;

use serde::{Deserialize, Serialize};
use strom_meta::ScramUpsertion;
use strom_security::{ScramCredential, ScramMechanism};

/// The file's name in the metadata log directory (`__cluster_metadata-0`).
pub const BOOTSTRAP_SCRAM_FILE: &str = "bootstrap.scram";
/// Its name once this node has seen SCRAM records in its log ([`retire`]): never read.
pub const BOOTSTRAP_SCRAM_APPLIED_FILE: &str = "bootstrap.scram.applied";
/// The largest file read.
pub const BOOTSTRAP_SCRAM_BYTES_MAX: u64 = 1024 * 1024;
/// The most users the file may hold.
pub const BOOTSTRAP_SCRAM_USERS_MAX: usize = 1024;
/// Kafka's bounds on a SCRAM credential's iterations (`ScramMechanism.minIterations`, and
/// `AlterUserScramCredentials`' maximum).
const ITERATIONS: std::ops::RangeInclusive<u32> = 4096..=16384;

/// One bootstrap user of one mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapScram {
    pub mechanism: ScramMechanism,
    pub user: String,
    pub credential: ScramCredential,
}

impl BootstrapScram {
    /// The user as AlterUserScramCredentials writes it into the metadata log.
    pub fn upsertion(&self) -> ScramUpsertion {
        ScramUpsertion {
            name: self.user.clone(),
            mechanism: self.mechanism.id(),
            // At most 16384 (checked when read or made).
            iterations: i32::try_from(self.credential.iterations).unwrap_or(i32::MAX),
            salt: self.credential.salt.clone(),
            stored_key: self.credential.stored_key.clone(),
            server_key: self.credential.server_key.clone(),
        }
    }
}

impl std::fmt::Debug for BootstrapScram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys let whoever holds them answer as the server: never logged.
        f.debug_struct("BootstrapScram")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The file's JSON form of one user.
#[derive(Serialize, Deserialize)]
struct Stored {
    mechanism: String,
    user: String,
    iterations: u32,
    salt: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct StoredFile {
    users: Vec<Stored>,
}

/// Writes `users` (fsynced, with a checksum, replacing any earlier file).
pub fn write(dir: &Path, users: &[BootstrapScram]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let file = StoredFile {
        users: users
            .iter()
            .map(|u| Stored {
                mechanism: u.mechanism.name().to_string(),
                user: u.user.clone(),
                iterations: u.credential.iterations,
                salt: u.credential.salt.clone(),
                stored_key: u.credential.stored_key.clone(),
                server_key: u.credential.server_key.clone(),
            })
            .collect(),
    };
    let body = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
    crate::fsutil::write_atomic(&dir.join(BOOTSTRAP_SCRAM_FILE), &body, true)
}

/// Retires `dir`'s bootstrap file: renames it to [`BOOTSTRAP_SCRAM_APPLIED_FILE`] and
/// fsyncs the directory, so the rename survives a crash. The caller waits first for a
/// stored snapshot that holds the mark: the file is retired only for a node whose image
/// holds the mark at start-up. True if a file was renamed (none is left
/// alone: retired before, or never formatted with users).
pub fn retire(dir: &Path) -> std::io::Result<bool> {
    let from = dir.join(BOOTSTRAP_SCRAM_FILE);
    match std::fs::rename(&from, dir.join(BOOTSTRAP_SCRAM_APPLIED_FILE)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    // fsync: the rename must be durable, or a crash could bring the file back into use.
    crate::fsutil::sync_dir(dir)?;
    Ok(true)
}

/// The users of `dir`'s bootstrap file; none when there is no file, or when it was retired
/// ([`retire`]: this node's log held SCRAM records). A file that is too large, fails its
/// checksum or holds an impossible credential is an error naming it.
pub fn read(dir: &Path) -> std::io::Result<Vec<BootstrapScram>> {
    let path = dir.join(BOOTSTRAP_SCRAM_FILE);
    let applied = dir.join(BOOTSTRAP_SCRAM_APPLIED_FILE);
    // An error deciding it (EACCES, EIO) fails start-up naming the file: read as absent,
    // it would let a file beside it count again.
    if applied.try_exists().map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot check {}: {e}", applied.display()))
    })? {
        if path.exists() {
            tracing::warn!(
                "{} is ignored: {} says this node's metadata log already held SCRAM \
                 credentials (the bootstrap users count only for a new log); remove it",
                path.display(),
                BOOTSTRAP_SCRAM_APPLIED_FILE
            );
        }
        return Ok(Vec::new());
    }
    let damaged = |reason: String| {
        crate::fsutil::invalid_data(format!(
            "SCRAM bootstrap file {} {reason}; format the node again with strom storage format \
             --add-scram (or remove the file to start without bootstrap users)",
            path.display()
        ))
    };
    match std::fs::metadata(&path) {
        Ok(meta) if meta.len() > BOOTSTRAP_SCRAM_BYTES_MAX => {
            return Err(damaged(format!(
                "is {} bytes, more than the {BOOTSTRAP_SCRAM_BYTES_MAX} allowed",
                meta.len()
            )))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    }
    let Some(body) = crate::fsutil::read_atomic(&path)? else {
        return Ok(Vec::new());
    };
    let file: StoredFile =
        serde_json::from_slice(&body).map_err(|e| damaged(format!("is not readable: {e}")))?;
    if file.users.len() > BOOTSTRAP_SCRAM_USERS_MAX {
        return Err(damaged(format!(
            "holds {} users, more than the {BOOTSTRAP_SCRAM_USERS_MAX} allowed",
            file.users.len()
        )));
    }
    file.users
        .into_iter()
        .map(|stored| checked(stored).map_err(&damaged))
        .collect()
}

fn checked(stored: Stored) -> Result<BootstrapScram, String> {
    let mechanism = ScramMechanism::from_name(&stored.mechanism)
        .ok_or_else(|| format!("names an unknown mechanism {:?}", stored.mechanism))?;
    let user = &stored.user;
    if user.is_empty() || user.len() > 256 {
        return Err("holds an empty or over-long user name".into());
    }
    if !ITERATIONS.contains(&stored.iterations) {
        return Err(format!(
            "gives user {user:?} {} iterations (4096 to 16384 allowed)",
            stored.iterations
        ));
    }
    let key_len = mechanism.key_len();
    if stored.stored_key.len() != key_len
        || stored.server_key.len() != key_len
        || stored.salt.is_empty()
        || stored.salt.len() > 256
    {
        return Err(format!(
            "holds a {} credential of user {user:?} with keys or salt of the wrong length",
            mechanism.name()
        ));
    }
    Ok(BootstrapScram {
        mechanism,
        user: stored.user,
        credential: ScramCredential {
            salt: stored.salt,
            stored_key: stored.stored_key,
            server_key: stored.server_key,
            iterations: stored.iterations,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_read_back_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_empty(), "no file: no users");
        let users = vec![
            BootstrapScram {
                mechanism: ScramMechanism::Sha512,
                user: "controller".into(),
                credential: ScramCredential::from_password(ScramMechanism::Sha512, "s", 4096),
            },
            BootstrapScram {
                mechanism: ScramMechanism::Sha256,
                user: "alice".into(),
                credential: ScramCredential::from_password(ScramMechanism::Sha256, "a", 8192),
            },
        ];
        write(dir.path(), &users).unwrap();
        assert_eq!(read(dir.path()).unwrap(), users);
        assert!(!format!("{:?}", users[0]).contains("stored_key"));

        // A key of the wrong length (a SHA-256 key under SHA-512) fails, naming the file.
        let mut wrong = users.clone();
        wrong[0].credential.stored_key.truncate(32);
        write(dir.path(), &wrong).unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(BOOTSTRAP_SCRAM_FILE) && e.contains("wrong length"),
            "{e}"
        );

        // A flipped byte fails the checksum.
        write(dir.path(), &users).unwrap();
        let path = dir.path().join(BOOTSTRAP_SCRAM_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains(BOOTSTRAP_SCRAM_FILE), "{e}");

        // Over the size bound: refused before it is read.
        std::fs::write(&path, vec![b' '; BOOTSTRAP_SCRAM_BYTES_MAX as usize + 1]).unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("more than"), "{e}");
    }

    #[test]
    fn a_retired_file_is_never_read_again() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!retire(dir.path()).unwrap(), "no file: nothing to retire");
        let users = vec![BootstrapScram {
            mechanism: ScramMechanism::Sha512,
            user: "controller".into(),
            credential: ScramCredential::from_password(ScramMechanism::Sha512, "s", 4096),
        }];
        write(dir.path(), &users).unwrap();
        assert_eq!(read(dir.path()).unwrap(), users);
        assert!(retire(dir.path()).unwrap());
        assert!(!dir.path().join(BOOTSTRAP_SCRAM_FILE).exists());
        assert!(dir.path().join(BOOTSTRAP_SCRAM_APPLIED_FILE).exists());
        assert!(read(dir.path()).unwrap().is_empty(), "retired: no users");
        assert!(!retire(dir.path()).unwrap(), "retired once only");

        // A bootstrap file beside the retired one (put back by hand) is ignored too.
        write(dir.path(), &users).unwrap();
        assert!(read(dir.path()).unwrap().is_empty());
    }
}
