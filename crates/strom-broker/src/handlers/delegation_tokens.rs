//! Delegation tokens (KIP-48): CreateDelegationToken, RenewDelegationToken,
//! ExpireDelegationToken and DescribeDelegationToken, as Kafka's `KafkaApis` answers them.
//!
//! Kafka's order of checks: a request on a connection that is not SASL-authenticated
//! (PLAINTEXT, SSL without a client certificate) or that was itself authenticated with a
//! token is DELEGATION_TOKEN_REQUEST_NOT_ALLOWED (`allowTokenRequests`). A creation for
//! another owner then needs CREATE_TOKENS on that user (KIP-373, else
//! DELEGATION_TOKEN_AUTHORIZATION_FAILED), and owner and renewers must be `User`
//! principals (INVALID_PRINCIPAL_TYPE). Without `delegation.token.secret.key` the answer is
//! then DELEGATION_TOKEN_AUTH_DISABLED. Renewals and expiries name the token by its HMAC:
//! the broker finds the token (`tokens.rs`; when its image does not hold it, only after
//! catching up with the quorum, so any broker answers as the controller would) and the
//! controller checks it is live and that the caller owns or may renew it. Creations, renewals and expiries are records committed
//! through the controller, answered once committed; Describe reads the broker's image.

use std::time::Duration;

use bytes::Bytes;
use strom_meta::acl::ResourceType;
use strom_meta::{
    ChangeTokenRequest, ControllerReply, ControllerRequest, CreateTokenRequest,
    DelegationTokenImage,
};
use strom_protocol::messages::describe_delegation_token_response::{
    DescribedDelegationToken, DescribedDelegationTokenRenewer,
};
use strom_protocol::messages::{
    ApiKey, CreateDelegationTokenRequest, CreateDelegationTokenResponse,
    DescribeDelegationTokenRequest, DescribeDelegationTokenResponse, ExpireDelegationTokenRequest,
    ExpireDelegationTokenResponse, RenewDelegationTokenRequest, RenewDelegationTokenResponse,
    ResponseKind,
};
use strom_protocol::ErrorCode;

use super::{controller_error, str_bytes};
use crate::authz;
use crate::principal::{KafkaPrincipal, SecurityProtocol, Session, USER_TYPE};
use crate::server::BrokerContext;

/// Kafka's `allowTokenRequests`: tokens are handed out only over authenticated channels,
/// and never to a connection that authenticated with a token.
fn allowed_channel(session: &Session) -> bool {
    !(session.principal.token_authenticated
        || session.security_protocol == SecurityProtocol::Plaintext
        || (session.security_protocol == SecurityProtocol::Ssl && session.principal.is_anonymous()))
}

/// The first check that fails for every token API: the channel, then whether tokens are
/// enabled.
fn gate(context: &BrokerContext, session: &Session) -> Option<ErrorCode> {
    if !allowed_channel(session) {
        Some(ErrorCode::DELEGATION_TOKEN_REQUEST_NOT_ALLOWED)
    } else if !context.config.tokens.enabled() {
        Some(ErrorCode::DELEGATION_TOKEN_AUTH_DISABLED)
    } else {
        None
    }
}

/// A controller reply's error as a Kafka code (the message is not carried by these APIs).
fn reply_code(error: &strom_meta::ApiError) -> ErrorCode {
    ErrorCode(error.code.code())
}

/// The wall clock in milliseconds since the epoch: token timestamps are read by clients.
pub(crate) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn split(principal: &str) -> (String, String) {
    match KafkaPrincipal::parse(principal) {
        Some(p) => (p.principal_type, p.name),
        None => (String::new(), principal.to_string()),
    }
}

pub(super) async fn create(
    context: &BrokerContext,
    session: &Session,
    request: CreateDelegationTokenRequest,
) -> ResponseKind {
    let requester = session.principal.clone();
    // The owner is the one asked for, else the requester (Kafka's `prepareResponse`).
    let owner = match &request.owner_principal_name {
        Some(name) if !name.is_empty() => KafkaPrincipal {
            principal_type: request
                .owner_principal_type
                .as_ref()
                .map_or(String::new(), |t| t.to_string()),
            name: name.to_string(),
            token_authenticated: false,
        },
        _ => KafkaPrincipal {
            token_authenticated: false,
            ..requester.clone()
        },
    };
    let response = |code: ErrorCode| {
        CreateDelegationTokenResponse::default()
            .with_error_code(code.code())
            .with_principal_type(str_bytes(owner.principal_type.clone()))
            .with_principal_name(str_bytes(owner.name.clone()))
            .with_token_requester_principal_type(str_bytes(requester.principal_type.clone()))
            .with_token_requester_principal_name(str_bytes(requester.name.clone()))
            .with_issue_timestamp_ms(-1)
            .with_expiry_timestamp_ms(-1)
            .with_max_timestamp_ms(-1)
            .with_token_id(str_bytes(""))
            .with_hmac(Bytes::new())
    };
    let renewers: Vec<String> = request
        .renewers
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r.principal_type.as_str(),
                r.principal_name.as_str()
            )
        })
        .collect();
    let refused = if !allowed_channel(session) {
        Some(ErrorCode::DELEGATION_TOKEN_REQUEST_NOT_ALLOWED)
    } else if owner != requester
        && !authz::allowed(
            context,
            session,
            ApiKey::CreateDelegationToken,
            ResourceType::User,
            &owner.to_string(),
        )
    {
        Some(ErrorCode::DELEGATION_TOKEN_AUTHORIZATION_FAILED)
    } else if owner.principal_type != USER_TYPE
        || request
            .renewers
            .iter()
            .any(|r| r.principal_type.as_str() != USER_TYPE)
    {
        Some(ErrorCode::INVALID_PRINCIPAL_TYPE)
    } else {
        gate(context, session)
    };
    if let Some(code) = refused {
        return ResponseKind::CreateDelegationToken(response(code));
    }
    let reply = context
        .metadata
        .submit(ControllerRequest::CreateDelegationToken(
            CreateTokenRequest {
                owner: owner.to_string(),
                requester: requester.to_string(),
                renewers,
                max_lifetime_ms: request.max_lifetime_ms,
                now_ms: wall_ms(),
            },
        ))
        .await;
    let body = match reply {
        Ok(ControllerReply::CreateDelegationToken(Ok(token))) => {
            let hmac = context
                .config
                .tokens
                .hmac(&token.token_id)
                .unwrap_or_default();
            response(ErrorCode::NONE)
                .with_issue_timestamp_ms(token.issue_timestamp_ms)
                .with_expiry_timestamp_ms(token.expiry_timestamp_ms)
                .with_max_timestamp_ms(token.max_timestamp_ms)
                .with_token_id(str_bytes(token.token_id))
                .with_hmac(Bytes::from(hmac))
        }
        Ok(ControllerReply::CreateDelegationToken(Err(error))) => response(reply_code(&error)),
        Ok(_) => response(ErrorCode::UNKNOWN_SERVER_ERROR),
        Err(error) => response(ErrorCode(controller_error(&error).0)),
    };
    ResponseKind::CreateDelegationToken(body)
}

/// How long a renewal or expiry waits for this node's image to catch up with the quorum
/// when its HMAC names no token the image holds.
const TOKEN_CATCH_UP_MS: u64 = 10_000;
/// The pause before asking the quorum again when it could not answer.
const CATCH_UP_RETRY: Duration = Duration::from_millis(100);

/// The id of the token whose HMAC is `hmac`. Kafka forwards renewals and expiries to the
/// active controller, which knows every committed token; here the broker finds the token,
/// and its image may be behind the node the token was created through (a client renewing
/// right after creating). So a miss is not an answer until the image has caught up with
/// everything committed (a linearizable read of the quorum): only then is it
/// DELEGATION_TOKEN_NOT_FOUND. A quorum that cannot be reached in time is REQUEST_TIMED_OUT
/// (retriable), as a forwarded request that times out.
async fn token_for_hmac(context: &BrokerContext, hmac: &[u8]) -> Result<Option<String>, ErrorCode> {
    let tokens = &context.config.tokens;
    let image = context.metadata.image();
    if let Some((token_id, _)) = tokens.find_by_hmac(&image, hmac) {
        return Ok(Some(token_id.clone()));
    }
    // A quorum between leaders answers "unavailable" at once: asked again until the bound.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(TOKEN_CATCH_UP_MS);
    let image = loop {
        match tokio::time::timeout_at(deadline, context.metadata.caught_up_image()).await {
            Ok(Ok(image)) => break image,
            Ok(Err(error)) if tokio::time::Instant::now() + CATCH_UP_RETRY < deadline => {
                tracing::debug!(%error, "catching up to find a delegation token; asking again");
                tokio::time::sleep(CATCH_UP_RETRY).await;
            }
            Ok(Err(error)) => return Err(ErrorCode(controller_error(&error).0)),
            Err(_) => return Err(ErrorCode::REQUEST_TIMED_OUT),
        }
    };
    Ok(tokens
        .find_by_hmac(&image, hmac)
        .map(|(token_id, _)| token_id.clone()))
}

/// Renew (`expire == false`) or expire the token whose HMAC is `hmac`: the expiry timestamp,
/// or Kafka's error with timestamp -1.
async fn change(
    context: &BrokerContext,
    session: &Session,
    hmac: &[u8],
    period_ms: i64,
    expire: bool,
) -> (ErrorCode, i64) {
    if let Some(code) = gate(context, session) {
        return (code, -1);
    }
    let token_id = match token_for_hmac(context, hmac).await {
        Ok(Some(token_id)) => token_id,
        Ok(None) => return (ErrorCode::DELEGATION_TOKEN_NOT_FOUND, -1),
        Err(code) => return (code, -1),
    };
    let change = ChangeTokenRequest {
        token_id,
        principal: session.principal.to_string(),
        period_ms,
        now_ms: wall_ms(),
    };
    let request = if expire {
        ControllerRequest::ExpireDelegationToken(change)
    } else {
        ControllerRequest::RenewDelegationToken(change)
    };
    match context.metadata.submit(request).await {
        Ok(
            ControllerReply::RenewDelegationToken(Ok(expiry))
            | ControllerReply::ExpireDelegationToken(Ok(expiry)),
        ) => (ErrorCode::NONE, expiry),
        Ok(
            ControllerReply::RenewDelegationToken(Err(error))
            | ControllerReply::ExpireDelegationToken(Err(error)),
        ) => (reply_code(&error), -1),
        Ok(_) => (ErrorCode::UNKNOWN_SERVER_ERROR, -1),
        Err(error) => (ErrorCode(controller_error(&error).0), -1),
    }
}

pub(super) async fn renew(
    context: &BrokerContext,
    session: &Session,
    request: RenewDelegationTokenRequest,
) -> ResponseKind {
    let (code, expiry) = change(
        context,
        session,
        &request.hmac,
        request.renew_period_ms,
        false,
    )
    .await;
    ResponseKind::RenewDelegationToken(
        RenewDelegationTokenResponse::default()
            .with_error_code(code.code())
            .with_expiry_timestamp_ms(expiry),
    )
}

pub(super) async fn expire(
    context: &BrokerContext,
    session: &Session,
    request: ExpireDelegationTokenRequest,
) -> ResponseKind {
    let (code, expiry) = change(
        context,
        session,
        &request.hmac,
        request.expiry_time_period_ms,
        true,
    )
    .await;
    ResponseKind::ExpireDelegationToken(
        ExpireDelegationTokenResponse::default()
            .with_error_code(code.code())
            .with_expiry_timestamp_ms(expiry),
    )
}

/// Kafka's `DelegationTokenManager.filterToken`: tokens of the owners asked for (all when
/// none are named), of which the caller owns or renews, or may DESCRIBE the token, or
/// DESCRIBE_TOKENS of its owner.
fn eligible(
    context: &BrokerContext,
    session: &Session,
    owners: Option<&[String]>,
    token_id: &str,
    token: &DelegationTokenImage,
) -> bool {
    if owners.is_some_and(|owners| !owners.iter().any(|o| token.owner_or_renewer(o))) {
        return false;
    }
    token.owner_or_renewer(&session.principal.to_string())
        || authz::visible(
            context,
            session,
            ApiKey::DescribeDelegationToken,
            ResourceType::DelegationToken,
            token_id,
        )
        || authz::visible(
            context,
            session,
            ApiKey::DescribeDelegationToken,
            ResourceType::User,
            &token.owner,
        )
}

fn described(
    context: &BrokerContext,
    token_id: &str,
    token: &DelegationTokenImage,
) -> DescribedDelegationToken {
    let (owner_type, owner_name) = split(&token.owner);
    let (requester_type, requester_name) = split(&token.requester);
    let renewers = token
        .renewers
        .iter()
        .map(|r| {
            let (t, n) = split(r);
            DescribedDelegationTokenRenewer::default()
                .with_principal_type(str_bytes(t))
                .with_principal_name(str_bytes(n))
        })
        .collect();
    DescribedDelegationToken::default()
        .with_principal_type(str_bytes(owner_type))
        .with_principal_name(str_bytes(owner_name))
        .with_token_requester_principal_type(str_bytes(requester_type))
        .with_token_requester_principal_name(str_bytes(requester_name))
        .with_issue_timestamp(token.issue_timestamp_ms)
        .with_expiry_timestamp(token.expiry_timestamp_ms)
        .with_max_timestamp(token.max_timestamp_ms)
        .with_token_id(str_bytes(token_id))
        .with_hmac(Bytes::from(
            context.config.tokens.hmac(token_id).unwrap_or_default(),
        ))
        .with_renewers(renewers)
}

pub(super) fn describe(
    context: &BrokerContext,
    session: &Session,
    request: DescribeDelegationTokenRequest,
) -> ResponseKind {
    let response = DescribeDelegationTokenResponse::default();
    if let Some(code) = gate(context, session) {
        return ResponseKind::DescribeDelegationToken(response.with_error_code(code.code()));
    }
    let owners: Option<Vec<String>> = request.owners.map(|owners| {
        owners
            .iter()
            .map(|o| {
                format!(
                    "{}:{}",
                    o.principal_type.as_str(),
                    o.principal_name.as_str()
                )
            })
            .collect()
    });
    // An empty list of owners asks for nothing (Kafka's `ownersListEmpty`).
    if owners.as_ref().is_some_and(Vec::is_empty) {
        return ResponseKind::DescribeDelegationToken(response);
    }
    let image = context.metadata.image();
    let tokens = image
        .delegation_tokens()
        .filter(|(id, token)| eligible(context, session, owners.as_deref(), id, token))
        .map(|(id, token)| described(context, id, token))
        .collect();
    ResponseKind::DescribeDelegationToken(response.with_tokens(tokens))
}
