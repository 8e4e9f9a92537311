//! The seam between the raft layer and what it replicates: a state applied from entries.

use std::fmt::Debug;

use strom_meta::acl::{authorize_cluster, AclOperation, AuthorizerSettings, Decision, Requester};
use strom_security::{ScramCredential, ScramMechanism};

use crate::types::LogId;

/// A deterministic state machine replicated by the raft log (the metadata image, or a toy in
/// tests). Values are immutable: applying returns a new state, so readers hold cheap clones.
pub trait ReplicatedState: Clone + Default + Debug + Send + Sync + 'static {
    /// What one entry changed, for consumers that react to changes.
    type Delta: Clone + Debug + Send + Sync + 'static;
    type Error: std::error::Error + Send + Sync + 'static;

    /// Applies one committed entry atomically: all of it or, on error, none of it.
    fn apply_payload(&self, payload: &[u8]) -> Result<(Self, Self::Delta), Self::Error>;
    fn encode_snapshot(&self) -> Vec<u8>;
    fn decode_snapshot(bytes: &[u8]) -> Result<Self, Self::Error>;

    /// Kafka's StandardAuthorizer decision for `requester` doing `operation` on the CLUSTER
    /// resource, over the ACLs this state holds (the quorum listener's authorizer,
    /// `security.rs`). A state without ACLs leaves it to `super.users` and
    /// `allow.everyone.if.no.acl.found`.
    fn authorize_cluster(
        &self,
        settings: &AuthorizerSettings,
        requester: Requester<'_>,
        operation: AclOperation,
    ) -> Decision {
        authorize_cluster(std::iter::empty(), settings, requester, operation)
    }

    /// The SCRAM credential of `user` for `mechanism` this state holds (the controller
    /// listener's SCRAM, `security.rs`). A state without credentials holds none.
    fn scram_credential(&self, _user: &str, _mechanism: ScramMechanism) -> Option<ScramCredential> {
        None
    }

    /// Whether a SCRAM record ever reached this state (credentials it holds or held, all
    /// deleted since maybe). Until one does, the node checks SCRAM against its bootstrap
    /// users and its active controller writes them into the log (`bootstrap_scram.rs`);
    /// from then on never again.
    fn scram_ever_written(&self) -> bool {
        false
    }
}

/// A state together with the last entry it includes.
#[derive(Clone, Debug, Default)]
pub struct Applied<S> {
    pub last_applied: Option<LogId>,
    pub state: S,
}

/// One change of the applied state, in log order.
#[derive(Clone, Debug)]
pub enum StateEvent<D> {
    /// Entry `log_id` was applied and changed the state by `delta`.
    Applied { log_id: LogId, delta: D },
    /// The whole state was replaced from a snapshot: consumers resynchronize from the image.
    Reset { last_applied: Option<LogId> },
}
