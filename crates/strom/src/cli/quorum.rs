//! `strom metadata-quorum` (Kafka's `kafka-metadata-quorum.sh`): describe the metadata quorum
//! (`--status`, `--replication`), add and remove controllers.

use serde::Serialize;
use strom_client::{Admin, QuorumReplica};

use super::args::{Common, MetadataQuorumCommand};
use super::output::{self, Table};

#[derive(Debug, Serialize)]
struct ReplicaView {
    id: i32,
    /// Kafka's base64 form, or null when not recorded.
    directory_id: Option<String>,
    status: &'static str,
    log_end_offset: i64,
    lag: i64,
    last_fetch_ms: i64,
    last_caught_up_ms: i64,
}

pub async fn run(common: &Common, command: MetadataQuorumCommand) -> anyhow::Result<()> {
    let admin = Admin::new(super::client_config(common)?)?;
    let result = match command {
        MetadataQuorumCommand::Describe { replication, .. } => {
            describe(common, &admin, replication).await
        }
        MetadataQuorumCommand::AddController {
            controller_id,
            controller_endpoint,
            controller_directory_id,
        } => {
            let directory_id = controller_directory_id
                .as_deref()
                .map(parse_directory_id)
                .transpose()?;
            let (host, port) = controller_endpoint
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
                .ok_or_else(|| {
                    anyhow::anyhow!("--controller-endpoint {controller_endpoint} is not host:port")
                })?;
            admin
                .add_raft_voter(controller_id, directory_id, host, port)
                .await?;
            output::print_line(&format!("Added controller {controller_id}."))
        }
        MetadataQuorumCommand::RemoveController {
            controller_id,
            controller_directory_id,
        } => {
            let directory_id = match controller_directory_id.as_deref() {
                Some(text) => Some(parse_directory_id(text)?),
                // The one recorded for the voter: kafka-metadata-quorum.sh requires it, this
                // command looks it up (a voter without one is matched by its id).
                None => admin
                    .describe_quorum()
                    .await?
                    .voters
                    .iter()
                    .find(|v| v.id == controller_id)
                    .and_then(|v| v.directory_id),
            };
            admin.remove_raft_voter(controller_id, directory_id).await?;
            output::print_line(&format!("Removed controller {controller_id}."))
        }
    };
    admin.close().await;
    result
}

async fn describe(common: &Common, admin: &Admin, replication: bool) -> anyhow::Result<()> {
    let q = admin.describe_quorum().await?;
    let view = |r: &QuorumReplica, status: &'static str| ReplicaView {
        id: r.id,
        directory_id: r.directory_id.map(crate::storage::kafka_uuid),
        status,
        log_end_offset: r.log_end_offset,
        lag: (q.high_watermark - r.log_end_offset).max(0),
        last_fetch_ms: r.last_fetch_ms,
        last_caught_up_ms: r.last_caught_up_ms,
    };
    let mut replicas: Vec<ReplicaView> = q
        .voters
        .iter()
        .map(|r| {
            view(
                r,
                if r.id == q.leader_id {
                    "Leader"
                } else {
                    "Follower"
                },
            )
        })
        .collect();
    replicas.extend(q.observers.iter().map(|r| view(r, "Observer")));
    if replication {
        if common.json() {
            return output::print_json(&replicas);
        }
        let now = strom_records::now_ms();
        let ago = |ms: i64| {
            if ms < 0 {
                "-".to_string()
            } else {
                format!("{} ms ago", (now - ms).max(0))
            }
        };
        let mut table = Table::new(&[
            "NODE ID",
            "DIRECTORY ID",
            "LOG END OFFSET",
            "LAG",
            "LAST FETCH",
            "LAST CAUGHT UP",
            "STATUS",
        ]);
        for r in &replicas {
            table.row(vec![
                r.id.to_string(),
                r.directory_id.clone().unwrap_or_else(|| "-".to_string()),
                r.log_end_offset.to_string(),
                r.lag.to_string(),
                ago(r.last_fetch_ms),
                ago(r.last_caught_up_ms),
                r.status.to_string(),
            ]);
        }
        return table.print();
    }
    let max_lag = replicas
        .iter()
        .filter(|r| r.status != "Observer")
        .map(|r| r.lag)
        .max()
        .unwrap_or(0);
    let ids = |list: &[QuorumReplica]| list.iter().map(|r| r.id.to_string()).collect::<Vec<_>>();
    if common.json() {
        return output::print_json(&serde_json::json!({
            "leader_id": q.leader_id,
            "leader_epoch": q.leader_epoch,
            "high_watermark": q.high_watermark,
            "max_follower_lag": max_lag,
            "current_voters": q.voters.iter().map(|r| r.id).collect::<Vec<_>>(),
            "current_observers": q.observers.iter().map(|r| r.id).collect::<Vec<_>>(),
        }));
    }
    output::print_line(&format!(
        "LeaderId:               {}\nLeaderEpoch:            {}\nHighWatermark:          {}\nMaxFollowerLag:         {max_lag}\nCurrentVoters:          [{}]\nCurrentObservers:       [{}]",
        q.leader_id,
        q.leader_epoch,
        q.high_watermark,
        ids(&q.voters).join(","),
        ids(&q.observers).join(","),
    ))
}

/// A directory id as Kafka prints it (22 characters of URL-safe base64) or as a
/// hyphenated UUID.
fn parse_directory_id(text: &str) -> anyhow::Result<uuid::Uuid> {
    crate::storage::parse_kafka_uuid(text)
        .or_else(|| uuid::Uuid::parse_str(text).ok())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--controller-directory-id {text} is neither a Kafka id (22 base64 characters) nor a UUID"
            )
        })
}
