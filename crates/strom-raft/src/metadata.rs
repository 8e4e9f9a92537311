//! strom-meta plugged into the raft layer: the metadata image as the replicated state and
//! the controller as the request handler (`ControllerRequest` in, `ControllerReply` or the
//! whole-request error out, both crossing the wire as JSON when forwarded to the leader).

use strom_meta::acl::{authorize_cluster, AclOperation, AuthorizerSettings, Decision, Requester};
use strom_meta::{
    decode_records, encode_records, AlterScramRequest, ApiError, ControllerConfig, ControllerReply,
    ControllerRequest, IdSource, MetaError, MetadataDelta, MetadataImage, MetadataRecord,
};
use strom_security::{ScramCredential, ScramMechanism};
use uuid::Uuid;

use crate::bootstrap_scram::BootstrapScram;
use crate::config::NodeConfig;
use crate::controller_task::Controller;
use crate::node::{RaftNode, StartError};
use crate::state::ReplicatedState;

impl ReplicatedState for MetadataImage {
    type Delta = MetadataDelta;
    type Error = MetaError;

    fn apply_payload(&self, payload: &[u8]) -> Result<(Self, MetadataDelta), MetaError> {
        let records = decode_records(payload)?;
        self.apply(&records)
    }

    fn encode_snapshot(&self) -> Vec<u8> {
        MetadataImage::encode_snapshot(self)
    }

    fn decode_snapshot(bytes: &[u8]) -> Result<Self, MetaError> {
        MetadataImage::decode_snapshot(bytes)
    }

    /// Over the image's ACLs: those the cluster's CreateAcls wrote, as this node has
    /// applied them (a node that has not caught up decides on the ACLs it has).
    fn authorize_cluster(
        &self,
        settings: &AuthorizerSettings,
        requester: Requester<'_>,
        operation: AclOperation,
    ) -> Decision {
        authorize_cluster(self.acl_bindings(), settings, requester, operation)
    }

    /// From the image's SCRAM credentials (AlterUserScramCredentials and the bootstrap
    /// users the active controller wrote), as this node has applied them.
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        let stored = MetadataImage::scram_credential(self, user, mechanism.id())?;
        Some(ScramCredential {
            salt: stored.salt.clone(),
            stored_key: stored.stored_key.clone(),
            server_key: stored.server_key.clone(),
            // Validated to Kafka's 4096..=16384 when written; a negative one matches no proof.
            iterations: u32::try_from(stored.iterations).unwrap_or(0),
        })
    }

    fn scram_ever_written(&self) -> bool {
        MetadataImage::scram_ever_written(self)
    }
}

/// Topic ids from the operating system's random source, so ids never repeat across
/// restarts or leaders (a seeded source would restart its sequence).
#[derive(Debug, Default)]
pub struct RandomIdSource;

impl IdSource for RandomIdSource {
    fn next_topic_id(&mut self) -> Uuid {
        Uuid::new_v4()
    }
}

/// strom-meta's controller behind the raft layer's [`Controller`] seam.
#[derive(Debug)]
pub struct MetadataController {
    inner: strom_meta::Controller,
    /// The bootstrap SCRAM users (`bootstrap_scram.rs`), written into the log by the
    /// active controller while its image never held a SCRAM credential.
    bootstrap_scram: Vec<BootstrapScram>,
}

impl MetadataController {
    pub fn new(config: ControllerConfig) -> Self {
        MetadataController {
            inner: strom_meta::Controller::with_id_source(config, Box::new(RandomIdSource)),
            bootstrap_scram: Vec::new(),
        }
    }

    /// The bootstrap users' AlterUserScramCredentials records, when `image` never held a
    /// SCRAM credential (Kafka writes its bootstrap records into a new log, once). The
    /// image remembers a SCRAM record even after every credential is deleted
    /// (`MetadataImage::scram_ever_written`, kept in snapshots), so a deleted bootstrap
    /// password is never written back, by this node or by another that becomes active. A
    /// tick runs on the state after every committed entry (`ensure_linearizable`) and waits
    /// for its own write, so only a tick whose write timed out uncommitted may be followed
    /// by a second write of the same credentials.
    fn bootstrap_records(&mut self, image: &MetadataImage, now_ms: i64) -> Vec<MetadataRecord> {
        if self.bootstrap_scram.is_empty() || image.scram_ever_written() {
            return Vec::new();
        }
        let upsertions = self
            .bootstrap_scram
            .iter()
            .map(BootstrapScram::upsertion)
            .collect();
        let request = ControllerRequest::AlterUserScramCredentials(AlterScramRequest {
            deletions: Vec::new(),
            upsertions,
        });
        match self.inner.handle(image, request, now_ms) {
            Ok((records, ControllerReply::AlterUserScramCredentials(results))) => {
                for refused in results.iter().filter(|r| r.error.is_some()) {
                    tracing::warn!(
                        user = %refused.user,
                        error = ?refused.error,
                        "a bootstrap SCRAM user (strom storage format --add-scram) was refused"
                    );
                }
                records
            }
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::warn!(error = ?e, "the bootstrap SCRAM users cannot be written");
                Vec::new()
            }
        }
    }
}

/// The controller's answer: the reply, or the error that refused the whole request.
pub type MetadataReply = Result<ControllerReply, ApiError>;

impl Controller for MetadataController {
    type State = MetadataImage;
    type Request = ControllerRequest;
    type Reply = MetadataReply;

    fn handle(
        &mut self,
        image: &MetadataImage,
        request: ControllerRequest,
        now_ms: i64,
    ) -> (Option<Vec<u8>>, MetadataReply) {
        match self.inner.handle(image, request, now_ms) {
            Ok((records, reply)) => (entry(&records), Ok(reply)),
            Err(e) => (None, Err(e.0)),
        }
    }

    fn tick(&mut self, image: &MetadataImage, now_ms: i64) -> Option<Vec<u8>> {
        let mut records = self.inner.tick(image, now_ms);
        // Delegation tokens expire on the wall clock (their timestamps are since the epoch);
        // the sweep only removes tokens, which the records of `tick` never touch, so both
        // lists apply to `image` in one entry.
        let wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        records.extend(self.inner.sweep_delegation_tokens(image, wall_ms));
        // SCRAM records only: independent of the others, so they apply to `image` too.
        records.extend(self.bootstrap_records(image, now_ms));
        entry(&records)
    }

    fn activate(&mut self, _image: &MetadataImage, _now_ms: i64) {
        self.inner.activate();
    }
}

fn entry(records: &[strom_meta::MetadataRecord]) -> Option<Vec<u8>> {
    (!records.is_empty()).then(|| encode_records(records))
}

/// The metadata quorum node the broker runs on.
pub type MetadataNode = RaftNode<MetadataController>;

/// Starts a metadata node with strom-meta's controller, with the bootstrap SCRAM users of
/// its metadata log directory (`bootstrap_scram.rs`; a damaged file fails start-up).
pub async fn start_metadata_node(
    mut config: NodeConfig,
    controller: ControllerConfig,
) -> Result<MetadataNode, StartError> {
    config.bootstrap_scram =
        crate::bootstrap_scram::read(&config.data_dir).map_err(StartError::Bootstrap)?;
    let mut controller = MetadataController::new(controller);
    controller.bootstrap_scram = config.bootstrap_scram.clone();
    RaftNode::start(config, controller).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The active controller writes the bootstrap users into a log that never held a SCRAM
    /// credential, and never into one whose credentials were all deleted.
    #[test]
    fn bootstrap_records_only_for_a_log_that_never_held_scram() {
        let mechanism = ScramMechanism::Sha512;
        let mut controller = MetadataController::new(ControllerConfig::default());
        controller.bootstrap_scram = vec![BootstrapScram {
            mechanism,
            user: "controller".into(),
            credential: ScramCredential::from_password(mechanism, "secret", 4096),
        }];
        let new_log = MetadataImage::default();
        let records = controller.bootstrap_records(&new_log, 0);
        assert_eq!(records.len(), 1, "{records:?}");
        let (written, _) = new_log.apply(&records).unwrap();
        assert!(controller.bootstrap_records(&written, 0).is_empty());
        let (deleted, _) = written
            .apply(&[MetadataRecord::RemoveUserScramCredential {
                name: "controller".into(),
                mechanism: mechanism.id(),
            }])
            .unwrap();
        assert_eq!(deleted.scram_credentials().count(), 0);
        assert!(controller.bootstrap_records(&deleted, 0).is_empty());
        // The same across a snapshot (another node restored from it becomes active).
        let restored = MetadataImage::decode_snapshot(&deleted.encode_snapshot()).unwrap();
        assert!(controller.bootstrap_records(&restored, 0).is_empty());
        assert_eq!(controller.tick(&restored, 0), None);
    }
}
