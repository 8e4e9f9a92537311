//! Delegation tokens (KIP-48), as Kafka's `DelegationTokenControlManager` runs them: create,
//! renew and expire a token, and sweep the expired ones away on the check interval.
//!
//! The controller knows no secret: the broker checks the channel and ACLs, finds a token by
//! its HMAC (which it derives from `delegation.token.secret.key`) and sends the token id;
//! the broker also adds the HMAC to the creation's reply. Time is passed in.

use crate::controller::errors::{ApiError, ErrorCode};
use crate::controller::messages::{
    ChangeTokenRequest, ControllerReply, CreateTokenRequest, CreatedToken,
};
use crate::controller::{ControllerConfig, IdSource};
use crate::image::{DelegationTokenImage, MetadataImage};
use crate::records::MetadataRecord;

/// Kafka's principal type of users: the only one a token may be owned or renewed by.
const USER_PREFIX: &str = "User:";

pub(crate) fn create(
    image: &MetadataImage,
    config: &ControllerConfig,
    ids: &mut dyn IdSource,
    request: CreateTokenRequest,
) -> (Vec<MetadataRecord>, ControllerReply) {
    let now_ms = request.now_ms;
    let refuse = |error| {
        (
            Vec::new(),
            ControllerReply::CreateDelegationToken(Err(error)),
        )
    };
    if let Some(bad) = request
        .renewers
        .iter()
        .find(|r| !r.starts_with(USER_PREFIX))
    {
        return refuse(ApiError::new(
            ErrorCode::InvalidPrincipalType,
            format!("renewer {bad} is not a User principal"),
        ));
    }
    let mut max_lifetime_ms = config.delegation_token_max_lifetime_ms;
    if request.max_lifetime_ms > 0 {
        max_lifetime_ms = max_lifetime_ms.min(request.max_lifetime_ms);
    }
    let max_timestamp_ms = now_ms.saturating_add(max_lifetime_ms);
    let expiry_timestamp_ms =
        max_timestamp_ms.min(now_ms.saturating_add(config.delegation_token_expiry_time_ms));
    // A fresh random id, written as Kafka writes its `Uuid` (22 characters of url-safe
    // base64); a clash with a live token is as likely as a clash of random UUIDs, and is
    // refused rather than overwriting that token.
    let token_id = base64_url(ids.next_topic_id().as_bytes());
    if image.delegation_token(&token_id).is_some() {
        return refuse(ApiError::new(
            ErrorCode::UnknownServerError,
            "token id clash; retry the request",
        ));
    }
    let record = MetadataRecord::DelegationToken {
        token_id: token_id.clone(),
        owner: request.owner,
        requester: request.requester,
        renewers: request.renewers,
        issue_timestamp_ms: now_ms,
        max_timestamp_ms,
        expiry_timestamp_ms,
    };
    (
        vec![record],
        ControllerReply::CreateDelegationToken(Ok(CreatedToken {
            token_id,
            issue_timestamp_ms: now_ms,
            expiry_timestamp_ms,
            max_timestamp_ms,
        })),
    )
}

/// The token a renewal or expiry may change, or Kafka's error for it (in Kafka's order:
/// not found, expired, then not the owner nor a renewer).
fn changeable<'a>(
    image: &'a MetadataImage,
    request: &ChangeTokenRequest,
) -> Result<&'a DelegationTokenImage, ApiError> {
    let token = image.delegation_token(&request.token_id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::DelegationTokenNotFound,
            "Delegation Token not found.",
        )
    })?;
    if token.expired(request.now_ms) {
        return Err(ApiError::new(
            ErrorCode::DelegationTokenExpired,
            "Delegation Token is expired.",
        ));
    }
    if !token.owner_or_renewer(&request.principal) {
        return Err(ApiError::new(
            ErrorCode::DelegationTokenOwnerMismatch,
            "Specified Principal is not valid Owner/Renewer.",
        ));
    }
    Ok(token)
}

fn with_expiry(token_id: &str, token: &DelegationTokenImage, expiry_ms: i64) -> MetadataRecord {
    MetadataRecord::DelegationToken {
        token_id: token_id.to_string(),
        owner: token.owner.clone(),
        requester: token.requester.clone(),
        renewers: token.renewers.clone(),
        issue_timestamp_ms: token.issue_timestamp_ms,
        max_timestamp_ms: token.max_timestamp_ms,
        expiry_timestamp_ms: expiry_ms,
    }
}

pub(crate) fn renew(
    image: &MetadataImage,
    config: &ControllerConfig,
    request: ChangeTokenRequest,
) -> (Vec<MetadataRecord>, ControllerReply) {
    let now_ms = request.now_ms;
    let token = match changeable(image, &request) {
        Ok(token) => token,
        Err(error) => {
            return (
                Vec::new(),
                ControllerReply::RenewDelegationToken(Err(error)),
            )
        }
    };
    let mut period_ms = config.delegation_token_expiry_time_ms;
    if request.period_ms > 0 {
        period_ms = period_ms.min(request.period_ms);
    }
    let expiry_ms = token.max_timestamp_ms.min(now_ms.saturating_add(period_ms));
    (
        vec![with_expiry(&request.token_id, token, expiry_ms)],
        ControllerReply::RenewDelegationToken(Ok(expiry_ms)),
    )
}

pub(crate) fn expire(
    image: &MetadataImage,
    request: ChangeTokenRequest,
) -> (Vec<MetadataRecord>, ControllerReply) {
    let now_ms = request.now_ms;
    let token = match changeable(image, &request) {
        Ok(token) => token,
        Err(error) => {
            return (
                Vec::new(),
                ControllerReply::ExpireDelegationToken(Err(error)),
            )
        }
    };
    if request.period_ms < 0 {
        // Expire now: the token is removed, and the reply carries the period (Kafka's).
        return (
            vec![MetadataRecord::RemoveDelegationToken {
                token_id: request.token_id,
            }],
            ControllerReply::ExpireDelegationToken(Ok(request.period_ms)),
        );
    }
    let expiry_ms = token
        .max_timestamp_ms
        .min(now_ms.saturating_add(request.period_ms));
    (
        vec![with_expiry(&request.token_id, token, expiry_ms)],
        ControllerReply::ExpireDelegationToken(Ok(expiry_ms)),
    )
}

/// Removes every token expired at `now_ms` (Kafka's expired-token sweep).
pub(crate) fn sweep_expired(image: &MetadataImage, now_ms: i64) -> Vec<MetadataRecord> {
    image
        .delegation_tokens()
        .filter(|(_, token)| token.expired(now_ms))
        .map(|(token_id, _)| MetadataRecord::RemoveDelegationToken {
            token_id: token_id.clone(),
        })
        .collect()
}

/// Url-safe base64 without padding (how Kafka's `Uuid.toString` writes an id).
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = chunk.len() + 1;
        for i in 0..sextets {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::SeededIdSource;

    const HOUR: i64 = 3_600_000;

    fn config() -> ControllerConfig {
        ControllerConfig {
            delegation_token_max_lifetime_ms: 10 * HOUR,
            delegation_token_expiry_time_ms: 2 * HOUR,
            ..ControllerConfig::default()
        }
    }

    fn created(
        image: &MetadataImage,
        owner: &str,
        renewers: &[&str],
        now: i64,
    ) -> (MetadataImage, CreatedToken) {
        let (records, reply) = create(
            image,
            &config(),
            &mut SeededIdSource::new(7 + now as u64),
            CreateTokenRequest {
                owner: owner.into(),
                requester: "User:admin".into(),
                renewers: renewers.iter().map(|r| r.to_string()).collect(),
                max_lifetime_ms: -1,
                now_ms: now,
            },
        );
        let ControllerReply::CreateDelegationToken(Ok(token)) = reply else {
            panic!("not created: {reply:?}")
        };
        let (image, _) = image.apply(&records).unwrap();
        (image, token)
    }

    fn change(token_id: &str, principal: &str, period_ms: i64, now_ms: i64) -> ChangeTokenRequest {
        ChangeTokenRequest {
            token_id: token_id.into(),
            principal: principal.into(),
            period_ms,
            now_ms,
        }
    }

    fn error_of(reply: &ControllerReply) -> Option<ErrorCode> {
        match reply {
            ControllerReply::RenewDelegationToken(Err(e))
            | ControllerReply::ExpireDelegationToken(Err(e))
            | ControllerReply::CreateDelegationToken(Err(e)) => Some(e.code),
            _ => None,
        }
    }

    #[test]
    fn create_bounds_the_lifetimes_and_the_id_looks_like_kafkas() {
        let (image, token) = created(&MetadataImage::default(), "User:alice", &[], 1000);
        assert_eq!(token.issue_timestamp_ms, 1000);
        assert_eq!(token.expiry_timestamp_ms, 1000 + 2 * HOUR);
        assert_eq!(token.max_timestamp_ms, 1000 + 10 * HOUR);
        assert_eq!(token.token_id.len(), 22);
        let stored = image.delegation_token(&token.token_id).unwrap();
        assert_eq!(stored.owner, "User:alice");
        assert_eq!(stored.requester, "User:admin");
        // A lifetime asked for below the maximum bounds both timestamps.
        let (records, reply) = create(
            &image,
            &config(),
            &mut SeededIdSource::new(99),
            CreateTokenRequest {
                owner: "User:alice".into(),
                requester: "User:alice".into(),
                renewers: vec![],
                max_lifetime_ms: HOUR,
                now_ms: 0,
            },
        );
        assert_eq!(records.len(), 1);
        let ControllerReply::CreateDelegationToken(Ok(short)) = reply else {
            panic!()
        };
        assert_eq!(
            (short.expiry_timestamp_ms, short.max_timestamp_ms),
            (HOUR, HOUR)
        );
        // Renewers must be users.
        let (records, reply) = create(
            &image,
            &config(),
            &mut SeededIdSource::new(5),
            CreateTokenRequest {
                owner: "User:alice".into(),
                requester: "User:alice".into(),
                renewers: vec!["Group:ops".into()],
                max_lifetime_ms: -1,
                now_ms: 0,
            },
        );
        assert!(records.is_empty());
        assert_eq!(error_of(&reply), Some(ErrorCode::InvalidPrincipalType));
    }

    #[test]
    fn renew_and_expire_follow_kafkas_checks() {
        let (image, token) = created(&MetadataImage::default(), "User:alice", &["User:bob"], 0);
        let id = token.token_id.as_str();
        let cfg = config();
        // Unknown token, a stranger, then the renewer within the maximum.
        let (_, reply) = renew(&image, &cfg, change("nope", "User:alice", -1, 10));
        assert_eq!(error_of(&reply), Some(ErrorCode::DelegationTokenNotFound));
        let (_, reply) = renew(&image, &cfg, change(id, "User:eve", -1, 10));
        assert_eq!(
            error_of(&reply),
            Some(ErrorCode::DelegationTokenOwnerMismatch)
        );
        let (records, reply) = renew(
            &image,
            &cfg,
            change(id, "User:bob", HOUR, 9 * HOUR + 30 * 60_000),
        );
        // Past its expiry (2 h) the token cannot be renewed.
        assert_eq!(error_of(&reply), Some(ErrorCode::DelegationTokenExpired));
        assert!(records.is_empty());
        let (records, reply) = renew(&image, &cfg, change(id, "User:bob", -1, HOUR));
        assert_eq!(reply, ControllerReply::RenewDelegationToken(Ok(3 * HOUR)));
        let (image, _) = image.apply(&records).unwrap();
        // Renewals never pass the maximum timestamp.
        let (mut image, mut now) = (image, HOUR);
        for _ in 0..10 {
            now += HOUR;
            let (records, _) = renew(&image, &cfg, change(id, "User:alice", -1, now));
            if records.is_empty() {
                break;
            }
            image = image.apply(&records).unwrap().0;
        }
        assert_eq!(
            image.delegation_token(id).unwrap().expiry_timestamp_ms,
            10 * HOUR
        );
        // Expire in an hour, then now: the token is removed and the reply is the period.
        let (records, reply) = expire(&image, change(id, "User:alice", HOUR, 5 * HOUR));
        assert_eq!(reply, ControllerReply::ExpireDelegationToken(Ok(6 * HOUR)));
        let image = image.apply(&records).unwrap().0;
        let (records, reply) = expire(&image, change(id, "User:bob", -1, 5 * HOUR));
        assert_eq!(reply, ControllerReply::ExpireDelegationToken(Ok(-1)));
        let image = image.apply(&records).unwrap().0;
        assert!(image.delegation_token(id).is_none());
    }

    #[test]
    fn the_sweep_removes_expired_tokens_and_snapshots_keep_live_ones() {
        let (image, old) = created(&MetadataImage::default(), "User:alice", &[], 0);
        let (image, young) = created(&image, "User:bob", &["User:carol"], 3 * HOUR);
        assert!(sweep_expired(&image, 2 * HOUR).is_empty());
        let records = sweep_expired(&image, 2 * HOUR + 1);
        assert_eq!(
            records,
            vec![MetadataRecord::RemoveDelegationToken {
                token_id: old.token_id.clone()
            }]
        );
        let image = image.apply(&records).unwrap().0;
        // The records survive encoding and a snapshot.
        let bytes = crate::encode_records(&image.to_records());
        let again = MetadataImage::default()
            .apply(&crate::decode_records(&bytes).unwrap())
            .unwrap()
            .0;
        let token = again.delegation_token(&young.token_id).unwrap();
        assert_eq!(token.renewers, vec!["User:carol".to_string()]);
        assert_eq!(token.expiry_timestamp_ms, 5 * HOUR);
        assert!(again.delegation_token(&old.token_id).is_none());
        // Removing an absent token is a damaged log, refused.
        assert!(again.apply(&records).is_err());
    }

    #[test]
    fn base64_url_matches_the_standard_alphabet_without_padding() {
        assert_eq!(base64_url(b""), "");
        assert_eq!(base64_url(b"f"), "Zg");
        assert_eq!(base64_url(b"fo"), "Zm8");
        assert_eq!(base64_url(b"foo"), "Zm9v");
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
    }
}
