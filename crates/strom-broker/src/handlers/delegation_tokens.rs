//! Delegation tokens (KIP-48): CreateDelegationToken, RenewDelegationToken,
//! ExpireDelegationToken and DescribeDelegationToken, answered as a Kafka broker answers them
//! when tokens are not enabled (`delegation.token.secret.key` unset, which is the only
//! configuration Strom accepts so far: setting the key stops start-up, see `config.rs`).
//!
//! Kafka's order of checks (`KafkaApis.allowTokenRequests`, then the token manager): a
//! request on a connection that is not SASL-authenticated (PLAINTEXT, SSL without a client
//! certificate) or that was itself authenticated with a token is
//! DELEGATION_TOKEN_REQUEST_NOT_ALLOWED; otherwise DELEGATION_TOKEN_AUTH_DISABLED. Nothing is
//! stored and no token is ever issued.

use bytes::Bytes;
use strom_protocol::messages::{
    CreateDelegationTokenRequest, CreateDelegationTokenResponse, DescribeDelegationTokenResponse,
    ExpireDelegationTokenResponse, RenewDelegationTokenResponse, ResponseKind,
};
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::principal::{SecurityProtocol, Session};

/// Kafka's `allowTokenRequests`: tokens are handed out only over authenticated channels,
/// and never to a connection that authenticated with a token.
fn allowed_channel(session: &Session) -> bool {
    !(session.principal.token_authenticated
        || session.security_protocol == SecurityProtocol::Plaintext
        || (session.security_protocol == SecurityProtocol::Ssl && session.principal.is_anonymous()))
}

fn error(session: &Session) -> ErrorCode {
    if allowed_channel(session) {
        ErrorCode::DELEGATION_TOKEN_AUTH_DISABLED
    } else {
        ErrorCode::DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
    }
}

pub(super) fn create(session: &Session, request: &CreateDelegationTokenRequest) -> ResponseKind {
    // The owner is the one asked for, else the requester (Kafka's `prepareResponse`).
    let (owner_type, owner_name) =
        match (&request.owner_principal_type, &request.owner_principal_name) {
            (Some(t), Some(n)) if !t.is_empty() && !n.is_empty() => (t.to_string(), n.to_string()),
            _ => (
                session.principal.principal_type.clone(),
                session.principal.name.clone(),
            ),
        };
    ResponseKind::CreateDelegationToken(
        CreateDelegationTokenResponse::default()
            .with_error_code(error(session).code())
            .with_principal_type(str_bytes(owner_type))
            .with_principal_name(str_bytes(owner_name))
            .with_token_requester_principal_type(str_bytes(
                session.principal.principal_type.clone(),
            ))
            .with_token_requester_principal_name(str_bytes(session.principal.name.clone()))
            .with_issue_timestamp_ms(-1)
            .with_expiry_timestamp_ms(-1)
            .with_max_timestamp_ms(-1)
            .with_token_id(str_bytes(""))
            .with_hmac(Bytes::new()),
    )
}

pub(super) fn renew(session: &Session) -> ResponseKind {
    ResponseKind::RenewDelegationToken(
        RenewDelegationTokenResponse::default()
            .with_error_code(error(session).code())
            .with_expiry_timestamp_ms(-1),
    )
}

pub(super) fn expire(session: &Session) -> ResponseKind {
    ResponseKind::ExpireDelegationToken(
        ExpireDelegationTokenResponse::default()
            .with_error_code(error(session).code())
            .with_expiry_timestamp_ms(-1),
    )
}

pub(super) fn describe(session: &Session) -> ResponseKind {
    ResponseKind::DescribeDelegationToken(
        DescribeDelegationTokenResponse::default().with_error_code(error(session).code()),
    )
}
