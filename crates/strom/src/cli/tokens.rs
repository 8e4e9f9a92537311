//! `strom delegation-tokens create|renew|expire|describe`: delegation tokens through the
//! Admin API, as `kafka-delegation-tokens.sh --create/--renew/--expire/--describe`. HMACs
//! are printed and read in base64, the form a client's SCRAM password takes.

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Serialize;
use strom_client::{Admin, DelegationToken};

use super::args::{Common, DelegationTokensCommand};
use super::output::{self, Table};

#[derive(Debug, Serialize)]
struct TokenView {
    token_id: String,
    hmac: String,
    owner: String,
    requester: String,
    renewers: Vec<String>,
    issue_timestamp_ms: i64,
    expiry_timestamp_ms: i64,
    max_timestamp_ms: i64,
}

impl From<&DelegationToken> for TokenView {
    fn from(t: &DelegationToken) -> TokenView {
        TokenView {
            token_id: t.token_id.clone(),
            hmac: B64.encode(&t.hmac),
            owner: t.owner.clone(),
            requester: t.requester.clone(),
            renewers: t.renewers.clone(),
            issue_timestamp_ms: t.issue_timestamp_ms,
            expiry_timestamp_ms: t.expiry_timestamp_ms,
            max_timestamp_ms: t.max_timestamp_ms,
        }
    }
}

pub async fn run(common: &Common, command: DelegationTokensCommand) -> anyhow::Result<()> {
    let admin = Admin::new(super::client_config(common)?)?;
    let result = dispatch(&admin, common, command).await;
    admin.close().await;
    result
}

async fn dispatch(
    admin: &Admin,
    common: &Common,
    command: DelegationTokensCommand,
) -> anyhow::Result<()> {
    match command {
        DelegationTokensCommand::Create(args) => {
            let token = admin
                .create_delegation_token(
                    args.owner_principal.as_deref(),
                    &args.renewer_principal,
                    args.max_life_time_period_ms,
                )
                .await?;
            print_tokens(common, &[token])
        }
        DelegationTokensCommand::Renew(args) => {
            let expiry = admin
                .renew_delegation_token(&hmac(&args.hmac)?, args.renew_time_period_ms)
                .await?;
            print_expiry(common, "renewed", expiry)
        }
        DelegationTokensCommand::Expire(args) => {
            let expiry = admin
                .expire_delegation_token(&hmac(&args.hmac)?, args.expiry_time_period_ms)
                .await?;
            print_expiry(common, "expired", expiry)
        }
        DelegationTokensCommand::Describe(args) => {
            let owners = (!args.owner_principal.is_empty()).then_some(&args.owner_principal[..]);
            let tokens = admin.describe_delegation_tokens(owners).await?;
            print_tokens(common, &tokens)
        }
    }
}

fn hmac(text: &str) -> anyhow::Result<Vec<u8>> {
    B64.decode(text.trim())
        .context("--hmac: expected the token's HMAC in base64, as `create` prints it")
}

fn print_expiry(common: &Common, what: &str, expiry_ms: i64) -> anyhow::Result<()> {
    if common.json() {
        return output::print_json(&serde_json::json!({ "expiry_timestamp_ms": expiry_ms }));
    }
    if expiry_ms < 0 {
        output::print_line(&format!("Completed: the token is {what} now."))
    } else {
        output::print_line(&format!(
            "Completed: the token is {what}; it expires at {}.",
            when(expiry_ms)
        ))
    }
}

fn print_tokens(common: &Common, tokens: &[DelegationToken]) -> anyhow::Result<()> {
    let views: Vec<TokenView> = tokens.iter().map(TokenView::from).collect();
    if common.json() {
        return output::print_json(&views);
    }
    let mut table = Table::new(&[
        "TOKENID",
        "HMAC",
        "OWNER",
        "REQUESTER",
        "RENEWERS",
        "ISSUEDATE",
        "EXPIRYDATE",
        "MAXDATE",
    ]);
    for v in views {
        table.row(vec![
            v.token_id,
            v.hmac,
            v.owner,
            v.requester,
            v.renewers.join(","),
            when(v.issue_timestamp_ms),
            when(v.expiry_timestamp_ms),
            when(v.max_timestamp_ms),
        ]);
    }
    table.print()
}

/// A timestamp as kafka-delegation-tokens.sh prints it (UTC here).
fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%dT%H:%MZ").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmacs_and_dates_read_and_print() {
        assert_eq!(hmac(" AAEC ").unwrap(), vec![0, 1, 2]);
        assert!(hmac("not base64!").is_err());
        assert_eq!(when(0), "1970-01-01T00:00Z");
    }
}
