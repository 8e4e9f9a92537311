//! `strom storage` (Kafka's `kafka-storage.sh`): `random-uuid` prints a cluster id, `format`
//! prepares a new node's directories: `meta.properties` in each of `log.dirs` and
//! `metadata.log.dir`, and, for a controller of a dynamic quorum
//! (`controller.quorum.bootstrap.servers` without `controller.quorum.voters`), the voters
//! the quorum starts with (`--standalone`, `--initial-controllers`) or none
//! (`--no-initial-controllers`: the controller joins as an observer and waits to be added).

use std::collections::BTreeMap;
use std::io::Write;
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

/// A Kafka-style random id: 16 random bytes in URL-safe base64 without padding, never one
/// that starts with `-` (a command line would take it for an option), as Kafka's
/// `Uuid.randomUuid`.
pub fn random_uuid() -> String {
    // Bounded: a leading '-' has probability 1/64 per draw.
    for _ in 0..64 {
        let text = base64_url(uuid::Uuid::new_v4().as_bytes());
        if !text.starts_with('-') {
            return text;
        }
    }
    base64_url(&[0x55; 16])
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// Formats this node's directories; returns the lines to print.
pub fn format(
    config: &ServerConfig,
    cluster_id: &str,
    initial: &InitialVoters,
    ignore_formatted: bool,
) -> anyhow::Result<Vec<String>> {
    if cluster_id.is_empty() {
        bail!("--cluster-id is empty: give one (strom storage random-uuid makes one)");
    }
    let voters = initial_voters(config, initial)?;
    let mut dirs: Vec<PathBuf> = config.log_dirs.clone();
    let metadata_base = config.metadata_dir().parent().map(Path::to_path_buf);
    if let Some(base) = metadata_base {
        if !dirs.contains(&base) {
            dirs.push(base);
        }
    }
    let mut out = Vec::new();
    let mut fresh = Vec::new();
    for dir in dirs {
        if dir.join(META_PROPERTIES).exists() {
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
        write_meta_properties(&dir, cluster_id, config.node_id)?;
        out.push(format!(
            "Formatting {} with metadata.version 4.0-IV3.",
            dir.display()
        ));
    }
    if let Some(voters) = voters {
        strom_raft::membership::write_initial_voters(&config.metadata_dir(), &voters)
            .with_context(|| {
                format!(
                    "cannot write the initial voters into {}",
                    config.metadata_dir().display()
                )
            })?;
        let listed: Vec<String> = voters.iter().map(|(id, a)| format!("{id}@{a}")).collect();
        out.push(format!("Initial voters: {}.", listed.join(",")));
    }
    Ok(out)
}

/// The voters a dynamic quorum starts with, checked against the roles (Kafka's rules).
fn initial_voters(
    config: &ServerConfig,
    initial: &InitialVoters,
) -> anyhow::Result<Option<BTreeMap<u64, String>>> {
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
                format!("{}:{}", listener.host, listener.port),
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

/// `1@host:9093:DIRID,2@host:9093:DIRID` (the directory ids are accepted and not kept:
/// Strom's voters are their node ids).
fn parse_initial_controllers(text: &str) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut voters = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad =
            || anyhow!("--initial-controllers entry {entry} is not id@host:port[:directory-id]");
        let (id, rest) = entry.split_once('@').ok_or_else(bad)?;
        let id: u64 = id.parse().map_err(|_| bad())?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (host, port) = match parts.as_slice() {
            [host, port] | [host, port, _] => (*host, *port),
            _ => return Err(bad()),
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad());
        }
        if voters.insert(id, format!("{host}:{port}")).is_some() {
            bail!("--initial-controllers names node {id} twice");
        }
    }
    if voters.is_empty() {
        bail!("--initial-controllers is empty");
    }
    Ok(voters)
}

/// Kafka's `meta.properties` (version 1), written and fsynced before it is renamed into place.
fn write_meta_properties(dir: &Path, cluster_id: &str, node_id: u64) -> anyhow::Result<()> {
    let body = format!(
        "#\n#Written by strom storage format\ncluster.id={cluster_id}\ndirectory.id={}\nnode.id={node_id}\nversion=1\n",
        random_uuid()
    );
    let path = dir.join(META_PROPERTIES);
    let temp = dir.join(format!("{META_PROPERTIES}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(body.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)?;
        // The rename is durable once the directory is synced.
        std::fs::File::open(dir)?.sync_all()
    };
    write().with_context(|| format!("cannot write {}", path.display()))
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
        ServerConfig::from_properties(&props).unwrap().0
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
        let bytes: Vec<u8> = (0..16).collect();
        assert_eq!(base64_url(&bytes), "AAECAwQFBgcICQoLDA0ODw");
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
        let err = format(&controller, "abc", &InitialVoters::Unset, false).unwrap_err();
        assert!(
            err.to_string().contains("--no-initial-controllers"),
            "{err}"
        );
        format(&controller, "abc", &InitialVoters::Standalone, false).unwrap();
        let meta = std::fs::read_to_string(dir.path().join(META_PROPERTIES)).unwrap();
        assert!(
            meta.contains("cluster.id=abc\n") && meta.contains("node.id=3\n"),
            "{meta}"
        );
        let voters =
            strom_raft::membership::read_initial_voters(&controller.metadata_dir()).unwrap();
        assert_eq!(
            voters,
            Some(BTreeMap::from([(3, "127.0.0.1:19093".to_string())]))
        );
        let err = format(&controller, "abc", &InitialVoters::Standalone, false).unwrap_err();
        assert!(err.to_string().contains("--ignore-formatted"), "{err}");
        format(&controller, "abc", &InitialVoters::Standalone, true).unwrap();
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
        )
        .unwrap_err();
        assert!(err.to_string().contains("node.id 2"), "{err}");
        let err = format(&controller, "c", &listed("1@h"), false).unwrap_err();
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
        let err = format(&broker, "c", &InitialVoters::Standalone, false).unwrap_err();
        assert!(err.to_string().contains("controllers"), "{err}");
        format(&broker, "c", &InitialVoters::Unset, false).unwrap();
        let other = tempfile::tempdir().unwrap();
        let controller = config(&dynamic, other.path());
        format(
            &controller,
            "c",
            &listed("1@h:1,2@127.0.0.1:19094:x"),
            false,
        )
        .unwrap();
        assert_eq!(
            strom_raft::membership::read_initial_voters(&controller.metadata_dir())
                .unwrap()
                .map(|v| v.into_keys().collect::<Vec<_>>()),
            Some(vec![1, 2])
        );
    }
}
