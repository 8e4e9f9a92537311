//! `strom storage` (Kafka's `kafka-storage.sh`): `random-uuid` prints a cluster id, `format`
//! prepares a new node's directories: `meta.properties` in each of `log.dirs` and
//! `metadata.log.dir` (read back at every start by [`check_at_start`], as Kafka 4's
//! `MetaPropertiesEnsemble`), and, for a controller of a dynamic quorum
//! (`controller.quorum.bootstrap.servers` without `controller.quorum.voters`), the voters
//! the quorum starts with (`--standalone`, `--initial-controllers`) or none
//! (`--no-initial-controllers`: the controller joins as an observer and waits to be added).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};

use crate::server_config::ServerConfig;

/// Kafka's name of the file that ties a directory to a cluster and a node.
const META_PROPERTIES: &str = "meta.properties";

/// How a dynamic quorum's first voters are given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitialVoters {
    /// Not given (a static quorum, or a broker).
    Unset,
    /// `--standalone`: this controller alone.
    Standalone,
    /// `--initial-controllers id@host:port[:directory-id],...`.
    Listed(String),
    /// `--no-initial-controllers`.
    None,
}

pub use strom_client::types::{kafka_uuid, random_kafka_uuid as random_uuid};

/// Kafka's text form of a UUID (22 URL-safe base64 characters) read back.
pub fn parse_kafka_uuid(text: &str) -> Option<uuid::Uuid> {
    if text.len() != 22 {
        return None;
    }
    let mut bytes = Vec::with_capacity(17);
    let (mut acc, mut held) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        held += 6;
        if held >= 8 {
            held -= 8;
            bytes.push((acc >> held) as u8);
            acc &= (1 << held) - 1;
        }
    }
    // 22 characters carry 132 bits: 16 bytes and 4 padding bits, which must be zero.
    if acc != 0 {
        return None;
    }
    let bytes: [u8; 16] = bytes.try_into().ok()?;
    Some(uuid::Uuid::from_bytes(bytes))
}

/// Formats this node's directories; returns the lines to print.
pub fn format(
    config: &ServerConfig,
    cluster_id: &str,
    initial: &InitialVoters,
    ignore_formatted: bool,
    add_scram: &[crate::scram_bootstrap::AddScram],
) -> anyhow::Result<Vec<String>> {
    if cluster_id.is_empty() {
        bail!("--cluster-id is empty: give one (strom storage random-uuid makes one)");
    }
    if let Some(configured) = config.cluster_id.as_deref().filter(|c| *c != cluster_id) {
        bail!(
            "--cluster-id {cluster_id} differs from cluster.id={configured} in the \
             configuration: give the same id to both (or remove cluster.id)"
        );
    }
    let mut voters = initial_voters(config, initial)?;
    let dirs: Vec<PathBuf> = config.storage_dirs().into_iter().map(|(_, d)| d).collect();
    let metadata_base = config.metadata_dir().parent().map(Path::to_path_buf);
    let mut out = Vec::new();
    let mut fresh = Vec::new();
    // The metadata directory's id: this node's replica key in the quorum (KIP-853).
    let mut metadata_directory_id = None;
    // Whether the metadata directory is formatted now (its bootstrap users are written
    // only then: a directory left as it is keeps its own).
    let mut metadata_formatted = false;
    for dir in dirs {
        if dir.join(META_PROPERTIES).exists() {
            if Some(&dir) == metadata_base.as_ref() {
                metadata_directory_id = read_directory_id(&dir);
            }
            if ignore_formatted {
                out.push(format!(
                    "{} is already formatted: left as it is.",
                    dir.display()
                ));
                continue;
            }
            bail!(
                "log directory {} is already formatted. Use --ignore-formatted to ignore this \
                 directory and format the others",
                dir.display()
            );
        }
        fresh.push(dir);
    }
    for dir in fresh {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create log directory {}", dir.display()))?;
        // Not while a server (or another format) uses the directory: it holds `.lock`.
        let _lock = lock_dir(&dir)?;
        let directory_id = write_meta_properties(&dir, cluster_id, config.node_id)?;
        if Some(&dir) == metadata_base.as_ref() {
            metadata_directory_id = Some(directory_id);
            metadata_formatted = true;
        }
        out.push(format!(
            "Formatting {} with metadata.version 4.0-IV3.",
            dir.display()
        ));
    }
    if let (Some(voters), Some(id)) = (voters.as_mut(), metadata_directory_id) {
        // This node's own entry carries its directory id (`--standalone`, or
        // `--initial-controllers` without one for this node).
        if let Some(own) = voters.get_mut(&config.node_id) {
            own.directory_id.get_or_insert(id);
        }
    }
    if let Some(voters) = voters {
        strom_raft::membership::write_initial_voters(&config.metadata_dir(), &voters)
            .with_context(|| {
                format!(
                    "cannot write the initial voters into {}",
                    config.metadata_dir().display()
                )
            })?;
        let listed: Vec<String> = voters
            .iter()
            .map(|(id, n)| match n.directory_id {
                Some(dir) => format!("{id}@{}:{}", n.addr, kafka_uuid(dir)),
                None => format!("{id}@{}", n.addr),
            })
            .collect();
        out.push(format!("Initial voters: {}.", listed.join(",")));
    }
    if !add_scram.is_empty() && metadata_formatted {
        let users = crate::scram_bootstrap::bootstrap_users(add_scram);
        strom_raft::bootstrap_scram::write(&config.metadata_dir(), &users).with_context(|| {
            format!(
                "cannot write the SCRAM bootstrap users into {}",
                config.metadata_dir().display()
            )
        })?;
        let names: Vec<String> = users
            .iter()
            .map(|u| format!("{} ({})", u.user, u.mechanism.name()))
            .collect();
        out.push(format!("SCRAM bootstrap users: {}.", names.join(", ")));
    }
    Ok(out)
}

/// The voters a dynamic quorum starts with, checked against the roles (Kafka's rules).
fn initial_voters(
    config: &ServerConfig,
    initial: &InitialVoters,
) -> anyhow::Result<Option<BTreeMap<u64, strom_raft::types::Node>>> {
    let dynamic_controller = config.runs_controller() && config.voters.is_empty();
    match initial {
        InitialVoters::Unset if dynamic_controller && !config.bootstrap_servers.is_empty() => {
            bail!(
                "because controller.quorum.voters is not set on this controller, you must \
                 specify one of the following: --standalone, --initial-controllers, or \
                 --no-initial-controllers"
            )
        }
        InitialVoters::Unset | InitialVoters::None => Ok(None),
        _ if !config.runs_controller() => {
            bail!("--standalone and --initial-controllers are for controllers (process.roles contains controller)")
        }
        _ if !config.voters.is_empty() => bail!(
            "--standalone and --initial-controllers cannot be used when \
             controller.quorum.voters is set (a static quorum)"
        ),
        InitialVoters::Standalone => {
            let listener = config.controller_listener().map_err(|e| anyhow!(e))?;
            if listener.port == 0 {
                bail!("--standalone needs the controller listener's port in listeners");
            }
            Ok(Some(BTreeMap::from([(
                config.node_id,
                strom_raft::types::Node::new(format!("{}:{}", listener.host, listener.port)),
            )])))
        }
        InitialVoters::Listed(text) => {
            let voters = parse_initial_controllers(text)?;
            if !voters.contains_key(&config.node_id) {
                bail!(
                    "--initial-controllers {text} does not contain this node.id {}",
                    config.node_id
                );
            }
            Ok(Some(voters))
        }
    }
}

/// `1@host:9093:DIRID,2@host:9093:DIRID`: the voters with their directory ids (Kafka's
/// base64 form, or a UUID), which become their replica keys in the quorum.
fn parse_initial_controllers(text: &str) -> anyhow::Result<BTreeMap<u64, strom_raft::types::Node>> {
    let mut voters = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad =
            || anyhow!("--initial-controllers entry {entry} is not id@host:port[:directory-id]");
        let (id, rest) = entry.split_once('@').ok_or_else(bad)?;
        let id: u64 = id.parse().map_err(|_| bad())?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (host, port, directory) = match parts.as_slice() {
            [host, port] => (*host, *port, None),
            [host, port, dir] => (*host, *port, Some(*dir)),
            _ => return Err(bad()),
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad());
        }
        let directory_id = match directory {
            None => None,
            Some(text) => Some(
                parse_kafka_uuid(text)
                    .or_else(|| uuid::Uuid::parse_str(text).ok())
                    .ok_or_else(bad)?,
            ),
        };
        let node = strom_raft::types::Node {
            addr: format!("{host}:{port}"),
            directory_id,
        };
        if voters.insert(id, node).is_some() {
            bail!("--initial-controllers names node {id} twice");
        }
    }
    if voters.is_empty() {
        bail!("--initial-controllers is empty");
    }
    Ok(voters)
}

/// The `directory.id` of `dir`'s `meta.properties`, if it has one that parses.
pub fn read_directory_id(dir: &Path) -> Option<uuid::Uuid> {
    let text = std::fs::read_to_string(dir.join(META_PROPERTIES)).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("directory.id="))
        .and_then(|v| parse_kafka_uuid(v.trim()))
}

/// What a directory's `meta.properties` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    pub cluster_id: String,
    pub node_id: u64,
}

/// Reads `dir/meta.properties`: `None` when the file does not exist; an error naming the file
/// when it cannot be read or is not Kafka's version 1 with `cluster.id` and `node.id`.
pub fn read_meta_properties(dir: &Path) -> anyhow::Result<Option<MetaProperties>> {
    let path = dir.join(META_PROPERTIES);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(anyhow!(
                "cannot read {}: {e}: give the user running strom read access to it",
                path.display()
            ))
        }
    };
    let shown = path.display();
    let props = crate::properties::parse(&text).map_err(|e| anyhow!("{shown}: {e}"))?;
    let get = |key: &str| props.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    match get("version") {
        Some("1") => {}
        Some("0") => bail!(
            "{shown} has version=0 (a ZooKeeper-era broker's directory): Strom reads version 1; \
             format a new directory with strom storage format"
        ),
        other => bail!(
            "{shown}: version is {}, expected 1: the file is damaged or not Kafka's \
             meta.properties; restore it, or remove it only if this directory holds no data",
            other.unwrap_or("missing")
        ),
    }
    let cluster_id = get("cluster.id")
        .ok_or_else(|| anyhow!("{shown} has no cluster.id: the file is damaged; restore it"))?;
    let node_id = get("node.id")
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| anyhow!("{shown} has no valid node.id: the file is damaged; restore it"))?;
    Ok(Some(MetaProperties {
        cluster_id: cluster_id.to_string(),
        node_id,
    }))
}

/// Start-up, as Kafka 4's `KafkaRaftServer`: reads `meta.properties` in every directory of
/// the node that passed the preflight checks (`dirs`: each of `log.dirs` and the metadata
/// directory, less failed ones, which stay offline) and returns the cluster id they
/// share. `cluster.id` and `node.id` must agree across the directories and with the
/// configuration; a directory without the file while another has one is refused (as Kafka
/// refuses it); a node none of whose directories is formatted (a first start) is formatted
/// here with the configured `cluster.id` (its default unless set), as `strom storage
/// format` would, so that a bare `strom server` needs no format step. Runs after the
/// preflight checks (the directories exist and are writable) and before anything else is
/// created in them. Each file is fsynced and renamed into place, then its directory fsynced
/// (`write_meta_properties`), so a crash leaves each either formatted or not at all; a
/// crash between two directories leaves a partly formatted node, which the next start
/// reports (format the rest with `strom storage format --ignore-formatted`).
pub fn check_at_start(
    config: &ServerConfig,
    dirs: &[(&'static str, PathBuf)],
) -> anyhow::Result<String> {
    let found = read_all(dirs)?;
    if found.iter().all(|(_, _, meta)| meta.is_some()) {
        return check_dirs(config, found);
    }
    // A directory without the file: a first start, a directory added to a formatted node,
    // or another process formatting these directories right now (it writes them one by
    // one). Decided under the directories' `.lock` (the lock the log directories and the
    // metadata log hold while a server runs), taken without waiting, and a second read:
    // - none formatted: every directory is locked, and a first start formats them all
    //   while it holds the locks;
    // - some formatted: only those are locked (nothing is created in a new directory that
    //   is then refused).
    // So of two processes started at once on the same directories, the second stops at a
    // lock the first holds ("in use by another process"), or, started after the first
    // released them, reads every directory formatted and checks them. Reads outside the
    // locks are safe: the file is replaced whole by a rename. The locks are released on
    // return; the log directories and the metadata log take them again for the life of
    // the process, and a process that finds them held stops then.
    let none_formatted = found.iter().all(|(_, _, meta)| meta.is_none());
    let mut locked: Vec<&PathBuf> = Vec::new();
    let mut held = Vec::new();
    for (_, dir, meta) in &found {
        // A directory named twice (`metadata.log.dir` one of `log.dirs`) is locked once: a
        // second lock of the same file would fail even in this process.
        if (none_formatted || meta.is_some()) && !locked.contains(&dir) {
            held.push(lock_dir(dir)?);
            locked.push(dir);
        }
    }
    let cluster_id = read_all(dirs).and_then(|found| check_dirs(config, found));
    drop(held);
    cluster_id
}

/// Every directory's `meta.properties`, `None` where it does not exist.
fn read_all(dirs: &[(&'static str, PathBuf)]) -> anyhow::Result<Vec<FoundMeta>> {
    dirs.iter()
        .map(|(key, dir)| Ok((*key, dir.clone(), read_meta_properties(dir)?)))
        .collect()
}

/// A directory of the node (its config key, its path) and what its `meta.properties` says.
type FoundMeta = (&'static str, PathBuf, Option<MetaProperties>);

/// [`check_at_start`] on what was read: formats a node none of whose directories is
/// formatted (the caller holds every directory's lock then), else checks them.
fn check_dirs(config: &ServerConfig, found: Vec<FoundMeta>) -> anyhow::Result<String> {
    let first = found.iter().find_map(|(_, dir, meta)| {
        meta.as_ref()
            .map(|m| (dir.join(META_PROPERTIES), m.clone()))
    });
    let Some((first_path, first)) = first else {
        // A first start: every directory is formatted here, under the locks.
        // `cluster.id`'s default from the table of keys, as the broker reads it.
        let default = strom_broker::config_keys::lookup("cluster.id").and_then(|key| key.default);
        let cluster_id = config.cluster_id.as_deref().or(default).unwrap_or_default();
        for (_, dir, _) in &found {
            write_meta_properties(dir, cluster_id, config.node_id)?;
        }
        tracing::info!(
            cluster_id,
            node_id = config.node_id,
            dirs = found.len(),
            "first start: wrote meta.properties into every data directory"
        );
        return Ok(cluster_id.to_string());
    };
    for (key, dir, meta) in &found {
        let path = dir.join(META_PROPERTIES);
        let shown = path.display();
        let Some(meta) = meta else {
            bail!(
                "no meta.properties in {} ({key}), but {} is formatted (cluster.id={}): format \
                 the new directory with strom storage format --config <file> --cluster-id {} \
                 --ignore-formatted, or remove it from {key}",
                dir.display(),
                first_path.display(),
                first.cluster_id,
                first.cluster_id
            );
        };
        if meta.node_id != config.node_id {
            bail!(
                "{shown} says node.id={}, but the configuration says node.id={}: this directory \
                 belongs to node {}; set node.id={} if this is that node, or give this node its \
                 own directories in {key}",
                meta.node_id,
                config.node_id,
                meta.node_id,
                meta.node_id
            );
        }
        if meta.cluster_id != first.cluster_id {
            bail!(
                "{shown} says cluster.id={}, but {} says cluster.id={}: the directories of one \
                 node must belong to one cluster; check {key}",
                meta.cluster_id,
                first_path.display(),
                first.cluster_id
            );
        }
        if let Some(configured) = config.cluster_id.as_deref() {
            if meta.cluster_id != configured {
                bail!(
                    "{shown} says cluster.id={}, but the configuration says cluster.id={configured}: \
                     set cluster.id={} (or remove the key), or point {key} at this cluster's \
                     directories",
                    meta.cluster_id,
                    meta.cluster_id
                );
            }
        }
    }
    Ok(first.cluster_id)
}

/// The directory's `.lock` (the lock the log directories and the metadata log hold while a
/// server runs), taken without waiting.
fn lock_dir(dir: &Path) -> anyhow::Result<strom_raft::fsutil::DirLock> {
    strom_raft::fsutil::DirLock::acquire(dir).map_err(|error| {
        anyhow!(
            "{error}: another strom process is starting or running on {}; stop it, or give \
             this node its own directories",
            dir.display()
        )
    })
}

/// Kafka's `meta.properties` (version 1) through the broker's one writer
/// (`strom_broker::log_dirs::write_meta_properties`: temp file, fsync, rename, directory
/// fsync); returns the directory id it records.
fn write_meta_properties(dir: &Path, cluster_id: &str, node_id: u64) -> anyhow::Result<uuid::Uuid> {
    let directory_id = random_uuid();
    let node = i64::try_from(node_id).with_context(|| format!("node.id {node_id} is too large"))?;
    let body = strom_broker::log_dirs::meta_properties_text(cluster_id, &directory_id, node);
    let path = dir.join(META_PROPERTIES);
    strom_broker::log_dirs::write_meta_properties(dir, &body)
        .with_context(|| format!("cannot write {}", path.display()))?;
    parse_kafka_uuid(&directory_id)
        .ok_or_else(|| anyhow!("made directory id {directory_id} does not read back (a bug)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)], dir: &Path) -> ServerConfig {
        let mut props: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        props.insert("log.dirs".into(), dir.display().to_string());
        ServerConfig::from_properties(&props).unwrap()
    }

    #[test]
    fn kafka_uuids_read_back() {
        for _ in 0..50 {
            let id = uuid::Uuid::new_v4();
            assert_eq!(parse_kafka_uuid(&kafka_uuid(id)), Some(id));
        }
        assert_eq!(
            parse_kafka_uuid("AAAAAAAAAAAAAAAAAAAAAA"),
            Some(uuid::Uuid::nil())
        );
        assert_eq!(
            parse_kafka_uuid("AAAAAAAAAAAAAAAAAAAAAB"),
            None,
            "padding bits set"
        );
        assert_eq!(parse_kafka_uuid("short"), None);
        assert_eq!(parse_kafka_uuid("AAAAAAAAAAAAAAAAAAAA+A"), None);
    }

    #[test]
    fn random_uuids_are_kafkas_22_characters() {
        for _ in 0..200 {
            let id = random_uuid();
            assert_eq!(id.len(), 22, "{id}");
            assert!(!id.starts_with('-'), "{id}");
            assert!(id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        }
        // Kafka's Uuid.toString of the bytes 0x00..0x0f.
        let bytes: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(
            kafka_uuid(uuid::Uuid::from_bytes(bytes)),
            "AAECAwQFBgcICQoLDA0ODw"
        );
    }

    #[test]
    fn a_dynamic_controller_is_formatted_standalone_once() {
        let dir = tempfile::tempdir().unwrap();
        let controller = config(
            &[
                ("node.id", "3"),
                ("process.roles", "controller"),
                ("listeners", "CONTROLLER://127.0.0.1:19093"),
                ("controller.quorum.bootstrap.servers", "127.0.0.1:19093"),
            ],
            dir.path(),
        );
        let err = format(&controller, "abc", &InitialVoters::Unset, false, &[]).unwrap_err();
        assert!(
            err.to_string().contains("--no-initial-controllers"),
            "{err}"
        );
        format(&controller, "abc", &InitialVoters::Standalone, false, &[]).unwrap();
        let meta = std::fs::read_to_string(dir.path().join(META_PROPERTIES)).unwrap();
        assert!(
            meta.contains("cluster.id=abc\n") && meta.contains("node.id=3\n"),
            "{meta}"
        );
        let voters =
            strom_raft::membership::read_initial_voters(&controller.metadata_dir()).unwrap();
        // The standalone voter's directory id is its metadata directory's directory.id.
        let own = read_directory_id(dir.path()).unwrap();
        assert_eq!(
            voters,
            Some(BTreeMap::from([(
                3,
                strom_raft::types::Node {
                    addr: "127.0.0.1:19093".to_string(),
                    directory_id: Some(own),
                }
            )]))
        );
        let err = format(&controller, "abc", &InitialVoters::Standalone, false, &[]).unwrap_err();
        assert!(err.to_string().contains("--ignore-formatted"), "{err}");
        format(&controller, "abc", &InitialVoters::Standalone, true, &[]).unwrap();
    }

    #[test]
    fn add_scram_writes_credentials_never_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let node = config(
            &[
                ("node.id", "1"),
                ("process.roles", "broker,controller"),
                (
                    "listeners",
                    "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
                ),
                ("controller.listener.names", "CONTROLLER"),
                ("controller.quorum.voters", "1@127.0.0.1:19093"),
            ],
            dir.path(),
        );
        let users = [crate::scram_bootstrap::parse(
            "SCRAM-SHA-512=[name=controller,password=controller-secret]",
        )
        .unwrap()];
        let lines = format(&node, "abc", &InitialVoters::Unset, false, &users).unwrap();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("controller (SCRAM-SHA-512)")),
            "{lines:?}"
        );
        let stored = strom_raft::bootstrap_scram::read(&node.metadata_dir()).unwrap();
        assert_eq!(stored.len(), 1);
        let user = &stored[0];
        // The stored keys are the password's, under the stored salt and iterations.
        let mechanism = strom_security::ScramMechanism::Sha512;
        let salted = mechanism.salted_password(
            b"controller-secret",
            &user.credential.salt,
            user.credential.iterations,
        );
        let expected = strom_security::ScramCredential::from_salted_password(
            mechanism,
            &user.credential.salt,
            &salted,
            user.credential.iterations,
        );
        assert_eq!(
            (user.user.as_str(), &user.credential),
            ("controller", &expected)
        );
        let file = std::fs::read(
            node.metadata_dir()
                .join(strom_raft::bootstrap_scram::BOOTSTRAP_SCRAM_FILE),
        )
        .unwrap();
        assert!(!file.windows(17).any(|w| w == b"controller-secret"));
        // A directory left as it is keeps its users.
        let other = [crate::scram_bootstrap::parse("SCRAM-SHA-256=[name=x,password=y]").unwrap()];
        format(&node, "abc", &InitialVoters::Unset, true, &other).unwrap();
        assert_eq!(
            strom_raft::bootstrap_scram::read(&node.metadata_dir()).unwrap(),
            stored
        );
    }

    #[test]
    fn initial_controllers_must_name_this_node_and_fit_the_roles() {
        let dir = tempfile::tempdir().unwrap();
        let dynamic = [
            ("node.id", "2"),
            ("process.roles", "controller"),
            ("listeners", "CONTROLLER://127.0.0.1:19094"),
            ("controller.quorum.bootstrap.servers", "127.0.0.1:19093"),
        ];
        let controller = config(&dynamic, dir.path());
        let listed = |text: &str| InitialVoters::Listed(text.to_string());
        let err = format(
            &controller,
            "c",
            &listed("1@h:1:AAAAAAAAAAAAAAAAAAAAAA"),
            false,
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("node.id 2"), "{err}");
        let err = format(&controller, "c", &listed("1@h"), false, &[]).unwrap_err();
        assert!(err.to_string().contains("1@h"), "{err}");
        let broker = config(
            &[
                ("node.id", "5"),
                ("process.roles", "broker"),
                ("listeners", "PLAINTEXT://127.0.0.1:19092"),
                ("controller.quorum.bootstrap.servers", "127.0.0.1:19093"),
            ],
            dir.path(),
        );
        let err = format(&broker, "c", &InitialVoters::Standalone, false, &[]).unwrap_err();
        assert!(err.to_string().contains("controllers"), "{err}");
        format(&broker, "c", &InitialVoters::Unset, false, &[]).unwrap();
        let other = tempfile::tempdir().unwrap();
        let controller = config(&dynamic, other.path());
        format(&controller, "c", &listed("1@h:1:x"), false, &[]).unwrap_err();
        let dir1 = uuid::Uuid::from_u128(0x1111);
        format(
            &controller,
            "c",
            &listed(&format!("1@h:1:{},2@127.0.0.1:19094", kafka_uuid(dir1))),
            false,
            &[],
        )
        .unwrap();
        let voters = strom_raft::membership::read_initial_voters(&controller.metadata_dir())
            .unwrap()
            .unwrap();
        assert_eq!(voters.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(voters[&1].directory_id, Some(dir1));
        // Its own entry without one gets its metadata directory's.
        assert_eq!(voters[&2].directory_id, read_directory_id(other.path()));
        assert!(voters[&2].directory_id.is_some());
    }
}
