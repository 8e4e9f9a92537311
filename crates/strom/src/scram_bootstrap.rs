//! `strom storage format --add-scram 'SCRAM-SHA-256=[name=alice,password=alice-secret]'`
//! (Kafka's `kafka-storage.sh format --add-scram`): the users' credentials are written into
//! the metadata log directory ([`bootstrap_users`]; strom-raft's `bootstrap_scram.rs` says
//! how they are used). `strom server --add-scram` with the same syntax: the first SCRAM
//! users, written through the broker once it runs, only while the metadata log has never
//! held a SCRAM credential (`MetadataImage::scram_ever_written`: a deletion counts), and
//! then only users without a credential of that mechanism. Like Kafka's bootstrap records
//! they are written once: a later password change or deletion (AlterUserScramCredentials)
//! is never undone by a restart with the same flag.

use anyhow::{anyhow, bail};
use strom_broker::Broker;
use strom_meta::{AlterScramRequest, ControllerReply, ControllerRequest, ScramUpsertion};
use strom_security::{ScramCredential, ScramMechanism};

/// One `--add-scram` entry.
#[derive(Clone, PartialEq, Eq)]
pub struct AddScram {
    pub mechanism: ScramMechanism,
    pub name: String,
    pub password: String,
    pub iterations: u32,
}

impl std::fmt::Debug for AddScram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddScram")
            .field("mechanism", &self.mechanism)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Parses Kafka's form: `MECHANISM=[name=NAME,password=PASSWORD(,iterations=N)]`
/// (values may be double-quoted).
pub fn parse(text: &str) -> anyhow::Result<AddScram> {
    let usage = "expected SCRAM-SHA-256=[name=alice,password=alice-secret] (iterations= optional)";
    let (mechanism, rest) = text
        .split_once('=')
        .ok_or_else(|| anyhow!("--add-scram {text:?}: {usage}"))?;
    let mechanism = ScramMechanism::from_name(mechanism.trim()).ok_or_else(|| {
        anyhow!("--add-scram: unknown mechanism {mechanism:?} (SCRAM-SHA-256, SCRAM-SHA-512)")
    })?;
    let inner = rest
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(|| anyhow!("--add-scram: {usage}"))?;
    let (mut name, mut password, mut iterations) = (None, None, 4096u32);
    for part in inner.split(',') {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("--add-scram: {usage}"))?;
        let value = value.trim().trim_matches('"').to_string();
        match key.trim() {
            "name" => name = Some(value),
            "password" => password = Some(value),
            "iterations" => {
                iterations = value
                    .parse()
                    .map_err(|_| anyhow!("--add-scram: iterations {value:?} is not a number"))?
            }
            other => bail!("--add-scram: unknown key {other:?} ({usage})"),
        }
    }
    let (Some(name), Some(password)) = (name, password) else {
        bail!("--add-scram: {usage}");
    };
    if name.is_empty() || password.is_empty() {
        bail!("--add-scram: the name and password must not be empty");
    }
    if !(4096..=16384).contains(&iterations) {
        bail!("--add-scram: iterations must lie within 4096 and 16384");
    }
    Ok(AddScram {
        mechanism,
        name,
        password,
        iterations,
    })
}

/// The credentials of `users` (a fresh salt each, the password then forgotten), as
/// `strom storage format --add-scram` writes them (strom-raft's `bootstrap_scram.rs`).
pub fn bootstrap_users(users: &[AddScram]) -> Vec<strom_raft::bootstrap_scram::BootstrapScram> {
    users
        .iter()
        .map(|u| strom_raft::bootstrap_scram::BootstrapScram {
            mechanism: u.mechanism,
            user: u.name.clone(),
            credential: ScramCredential::from_password(u.mechanism, &u.password, u.iterations),
        })
        .collect()
}

/// Writes the users that have no credential of their mechanism yet, if the metadata log
/// has never held a SCRAM credential.
pub async fn apply(broker: &Broker, users: &[AddScram]) -> anyhow::Result<()> {
    let metadata = &broker.context().metadata;
    let image = metadata.image();
    if !users.is_empty() && image.scram_ever_written() {
        tracing::info!(
            "--add-scram ignored: the metadata log has held SCRAM credentials (a deleted or \
             changed user stays so); manage users with AlterUserScramCredentials \
             (kafka-configs.sh --alter --entity-type users)"
        );
        return Ok(());
    }
    let missing: Vec<AddScram> = users
        .iter()
        .filter(|u| image.scram_credential(&u.name, u.mechanism.id()).is_none())
        .cloned()
        .collect();
    let upsertions: Vec<ScramUpsertion> = bootstrap_users(&missing)
        .iter()
        .map(strom_raft::bootstrap_scram::BootstrapScram::upsertion)
        .collect();
    if upsertions.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = upsertions.iter().map(|u| u.name.clone()).collect();
    let reply = metadata
        .submit(ControllerRequest::AlterUserScramCredentials(
            AlterScramRequest {
                deletions: Vec::new(),
                upsertions,
            },
        ))
        .await
        .map_err(|e| anyhow!("--add-scram: {e}"))?;
    if let ControllerReply::AlterUserScramCredentials(results) = reply {
        for r in results {
            if let Some(error) = r.error {
                bail!("--add-scram {}: {}", r.user, error.message);
            }
        }
    }
    tracing::info!(users = ?names, "SCRAM users added (--add-scram)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_storage_syntax() {
        let u = parse("SCRAM-SHA-512=[name=alice,password=\"a-secret\",iterations=8192]").unwrap();
        assert_eq!(u.mechanism, ScramMechanism::Sha512);
        assert_eq!(
            (u.name.as_str(), u.password.as_str(), u.iterations),
            ("alice", "a-secret", 8192)
        );
        for bad in [
            "SCRAM-SHA-1=[name=a,password=b]",
            "SCRAM-SHA-256=name=a,password=b",
            "SCRAM-SHA-256=[name=a]",
            "SCRAM-SHA-256=[name=a,password=b,iterations=10]",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(!format!("{u:?}").contains("a-secret"));
    }
}
