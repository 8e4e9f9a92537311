//! Delegation tokens (KIP-48): CreateDelegationToken, RenewDelegationToken,
//! ExpireDelegationToken and DescribeDelegationToken (what `kafka-delegation-tokens.sh`
//! calls). Principals are written as Kafka writes them, `User:alice`.
//!
//! Creating, renewing and expiring are not retried: each changes the cluster, and a retry
//! after a lost reply would create a second token or move an expiry twice.

use kafka_protocol::messages::create_delegation_token_request::CreatableRenewers;
use kafka_protocol::messages::describe_delegation_token_request::DescribeDelegationTokenOwner;
use kafka_protocol::messages::{
    CreateDelegationTokenRequest, DescribeDelegationTokenRequest, ExpireDelegationTokenRequest,
    RenewDelegationTokenRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::Admin;
use crate::cluster::Target;
use crate::error::{ClientError, Result};

/// A delegation token as the broker describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelegationToken {
    pub token_id: String,
    /// The token's password (base64-encoded, it is the SCRAM password).
    pub hmac: Vec<u8>,
    pub owner: String,
    pub requester: String,
    pub renewers: Vec<String>,
    pub issue_timestamp_ms: i64,
    pub expiry_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
}

/// `Type:name` into its parts (a principal without a type is refused by the broker).
fn parts(principal: &str) -> (StrBytes, StrBytes) {
    let (kind, name) = principal.split_once(':').unwrap_or(("", principal));
    (
        StrBytes::from_string(kind.to_string()),
        StrBytes::from_string(name.to_string()),
    )
}

fn joined(kind: &StrBytes, name: &StrBytes) -> String {
    format!("{}:{}", kind.as_str(), name.as_str())
}

impl Admin {
    /// Creates a token owned by `owner` (`None`: the caller), renewable by `renewers`,
    /// living at most `max_lifetime_ms` (not above 0: the broker's maximum).
    pub async fn create_delegation_token(
        &self,
        owner: Option<&str>,
        renewers: &[String],
        max_lifetime_ms: i64,
    ) -> Result<DelegationToken> {
        let named: Vec<CreatableRenewers> = renewers
            .iter()
            .map(|r| {
                let (kind, name) = parts(r);
                CreatableRenewers::default()
                    .with_principal_type(kind)
                    .with_principal_name(name)
            })
            .collect();
        let owner = owner.map(parts);
        let r = self
            .cluster
            .call(&Target::Any, |_| {
                Ok(CreateDelegationTokenRequest::default()
                    .with_owner_principal_type(owner.as_ref().map(|(k, _)| k.clone()))
                    .with_owner_principal_name(owner.as_ref().map(|(_, n)| n.clone()))
                    .with_renewers(named.clone())
                    .with_max_lifetime_ms(max_lifetime_ms))
            })
            .await?;
        ClientError::check(r.error_code, None, "create delegation token")?;
        Ok(DelegationToken {
            token_id: r.token_id.to_string(),
            hmac: r.hmac.to_vec(),
            owner: joined(&r.principal_type, &r.principal_name),
            requester: joined(
                &r.token_requester_principal_type,
                &r.token_requester_principal_name,
            ),
            // The reply does not list them: they are the ones asked for.
            renewers: renewers.to_vec(),
            issue_timestamp_ms: r.issue_timestamp_ms,
            expiry_timestamp_ms: r.expiry_timestamp_ms,
            max_timestamp_ms: r.max_timestamp_ms,
        })
    }

    /// Renews the token with this HMAC for `period_ms` (not above 0: the broker's default);
    /// returns its new expiry timestamp.
    pub async fn renew_delegation_token(&self, hmac: &[u8], period_ms: i64) -> Result<i64> {
        let hmac = bytes::Bytes::copy_from_slice(hmac);
        let r = self
            .cluster
            .call(&Target::Any, |_| {
                Ok(RenewDelegationTokenRequest::default()
                    .with_hmac(hmac.clone())
                    .with_renew_period_ms(period_ms))
            })
            .await?;
        ClientError::check(r.error_code, None, "renew delegation token")?;
        Ok(r.expiry_timestamp_ms)
    }

    /// Expires the token with this HMAC in `period_ms` (negative: now, removing it);
    /// returns its expiry timestamp (the period itself when negative, as Kafka answers).
    pub async fn expire_delegation_token(&self, hmac: &[u8], period_ms: i64) -> Result<i64> {
        let hmac = bytes::Bytes::copy_from_slice(hmac);
        let r = self
            .cluster
            .call(&Target::Any, |_| {
                Ok(ExpireDelegationTokenRequest::default()
                    .with_hmac(hmac.clone())
                    .with_expiry_time_period_ms(period_ms))
            })
            .await?;
        ClientError::check(r.error_code, None, "expire delegation token")?;
        Ok(r.expiry_timestamp_ms)
    }

    /// The tokens the caller may see, of `owners` (`None`: of everyone).
    pub async fn describe_delegation_tokens(
        &self,
        owners: Option<&[String]>,
    ) -> Result<Vec<DelegationToken>> {
        let owners: Option<Vec<DescribeDelegationTokenOwner>> = owners.map(|owners| {
            owners
                .iter()
                .map(|o| {
                    let (kind, name) = parts(o);
                    DescribeDelegationTokenOwner::default()
                        .with_principal_type(kind)
                        .with_principal_name(name)
                })
                .collect()
        });
        let cluster = &self.cluster;
        let r = cluster
            .retry("describe delegation tokens", || async {
                cluster
                    .call(&Target::Any, |_| {
                        Ok(DescribeDelegationTokenRequest::default().with_owners(owners.clone()))
                    })
                    .await
            })
            .await?;
        ClientError::check(r.error_code, None, "describe delegation tokens")?;
        let mut tokens: Vec<DelegationToken> = r
            .tokens
            .into_iter()
            .map(|t| DelegationToken {
                token_id: t.token_id.to_string(),
                hmac: t.hmac.to_vec(),
                owner: joined(&t.principal_type, &t.principal_name),
                requester: joined(
                    &t.token_requester_principal_type,
                    &t.token_requester_principal_name,
                ),
                renewers: t
                    .renewers
                    .iter()
                    .map(|r| joined(&r.principal_type, &r.principal_name))
                    .collect(),
                issue_timestamp_ms: t.issue_timestamp,
                expiry_timestamp_ms: t.expiry_timestamp,
                max_timestamp_ms: t.max_timestamp,
            })
            .collect();
        tokens.sort_by(|a, b| a.token_id.cmp(&b.token_id));
        Ok(tokens)
    }
}
