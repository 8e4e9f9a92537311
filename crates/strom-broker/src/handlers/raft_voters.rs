//! AddRaftVoter, RemoveRaftVoter and UpdateRaftVoter (KIP-853; `kafka-metadata-quorum.sh
//! add-controller|remove-controller`, Admin `addRaftVoter`/`removeRaftVoter`): forwarded to
//! the metadata quorum's leader, as a Kafka broker forwards them to the active controller.
//!
//! A voter is matched on (`voter_id`, `voter_directory_id`) as Kafka's `VoterSet.isVoter`:
//! a voter recorded with a directory id is only that replica (VOTER_NOT_FOUND otherwise);
//! one recorded without (a static voter) is its node id. The zero id means none, as in
//! Kafka. A voter's address is the first listener given.

use strom_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse,
    ResponseKind, UpdateRaftVoterRequest, UpdateRaftVoterResponse,
};
use strom_protocol::{ErrorCode, StrBytes};
use strom_raft::wire::{MembershipChange, MembershipError, SubmitError};

use super::str_bytes;
use crate::server::BrokerContext;

pub(super) async fn add(context: &BrokerContext, request: AddRaftVoterRequest) -> ResponseKind {
    let addr = request
        .listeners
        .first()
        .map(|l| host_port(&l.host, l.port));
    let (code, message) = match checked(context, &request.cluster_id, request.voter_id) {
        Err(refused) => refused,
        Ok(node_id) => outcome(
            context
                .metadata
                .change_quorum(MembershipChange::AddVoter {
                    node_id,
                    addr,
                    directory_id: directory(request.voter_directory_id),
                })
                .await,
        ),
    };
    ResponseKind::AddRaftVoter(
        AddRaftVoterResponse::default()
            .with_error_code(code.code())
            .with_error_message(message),
    )
}

pub(super) async fn remove(
    context: &BrokerContext,
    request: RemoveRaftVoterRequest,
) -> ResponseKind {
    let (code, message) = match checked(context, &request.cluster_id, request.voter_id) {
        Err(refused) => refused,
        Ok(node_id) => outcome(
            context
                .metadata
                .change_quorum(MembershipChange::RemoveVoter {
                    node_id,
                    directory_id: directory(request.voter_directory_id),
                })
                .await,
        ),
    };
    ResponseKind::RemoveRaftVoter(
        RemoveRaftVoterResponse::default()
            .with_error_code(code.code())
            .with_error_message(message),
    )
}

pub(super) async fn update(
    context: &BrokerContext,
    request: UpdateRaftVoterRequest,
) -> ResponseKind {
    let (code, _) = match (
        checked(context, &request.cluster_id, request.voter_id),
        request.listeners.first(),
    ) {
        (Err(refused), _) => refused,
        (Ok(_), None) => (ErrorCode::INVALID_REQUEST, None),
        (Ok(node_id), Some(listener)) => {
            let addr = host_port(&listener.host, listener.port);
            outcome(
                context
                    .metadata
                    .change_quorum(MembershipChange::UpdateVoter {
                        node_id,
                        addr,
                        directory_id: directory(request.voter_directory_id),
                    })
                    .await,
            )
        }
    };
    ResponseKind::UpdateRaftVoter(UpdateRaftVoterResponse::default().with_error_code(code.code()))
}

type Refusal = (ErrorCode, Option<StrBytes>);

/// The voter's node id, or the refusal of a request for another cluster or a negative id.
fn checked(
    context: &BrokerContext,
    cluster_id: &Option<StrBytes>,
    voter_id: i32,
) -> Result<u64, Refusal> {
    // Null (and, from lax clients, empty) means not checked, as in Kafka.
    if let Some(id) = cluster_id.as_ref().filter(|id| !id.is_empty()) {
        if id.as_str() != context.config.cluster_id {
            return Err((
                ErrorCode::INCONSISTENT_CLUSTER_ID,
                Some(str_bytes(format!(
                    "cluster id {id} is not this cluster's ({})",
                    context.config.cluster_id
                ))),
            ));
        }
    }
    u64::try_from(voter_id).map_err(|_| {
        (
            ErrorCode::INVALID_REQUEST,
            Some(str_bytes(format!("voter id {voter_id} is negative"))),
        )
    })
}

/// Kafka's `ReplicaKey.NO_DIRECTORY_ID` (the zero id) is no directory id.
fn directory(id: uuid::Uuid) -> Option<uuid::Uuid> {
    (!id.is_nil()).then_some(id)
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Kafka's error for each outcome: the quorum not answering in time is REQUEST_TIMED_OUT
/// (retriable), as from a Kafka controller whose change did not commit in time.
fn outcome(result: Result<(), MembershipError>) -> Refusal {
    let code = match &result {
        Ok(()) => return (ErrorCode::NONE, None),
        Err(MembershipError::DuplicateVoter(_)) => ErrorCode::DUPLICATE_VOTER,
        Err(MembershipError::VoterNotFound(_))
        | Err(MembershipError::VoterDirectoryMismatch { .. }) => ErrorCode::VOTER_NOT_FOUND,
        Err(MembershipError::Refused(_))
        | Err(MembershipError::Submit(SubmitError::BadRequest(_))) => ErrorCode::INVALID_REQUEST,
        Err(MembershipError::Submit(_)) => ErrorCode::REQUEST_TIMED_OUT,
    };
    let message = result.err().map(|e| str_bytes(e.to_string()));
    (code, message)
}
