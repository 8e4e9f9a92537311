//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554): SCRAM credentials
//! live in the metadata log (salt, stored key, server key, iterations; never the password
//! nor the salted password). The broker turns each upsertion's salted password into its
//! keys before the request goes to the controller, which validates and commits.

use std::collections::BTreeMap;

use strom_meta::{AlterScramRequest, ControllerReply, ControllerRequest, ScramUpsertion};
use strom_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use strom_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use strom_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, ResponseKind,
};
use strom_protocol::{ErrorCode, StrBytes};
use strom_security::{ScramCredential, ScramMechanism};

use super::{api_error, controller_error, str_bytes};
use crate::server::BrokerContext;

pub(super) fn describe(
    context: &BrokerContext,
    request: DescribeUserScramCredentialsRequest,
) -> ResponseKind {
    let image = context.metadata.image();
    let mut by_user: BTreeMap<&str, Vec<CredentialInfo>> = BTreeMap::new();
    for ((user, mechanism), credential) in image.scram_credentials() {
        by_user.entry(user.as_str()).or_default().push(
            CredentialInfo::default()
                .with_mechanism(*mechanism)
                .with_iterations(credential.iterations),
        );
    }
    let result = |user: &str, code: ErrorCode, message: Option<String>, infos| {
        DescribeUserScramCredentialsResult::default()
            .with_user(str_bytes(user))
            .with_error_code(code.code())
            .with_error_message(message.map(StrBytes::from_string))
            .with_credential_infos(infos)
    };
    let results = match request.users.filter(|users| !users.is_empty()) {
        // Null or empty: every user with a credential.
        None => by_user
            .iter()
            .map(|(user, infos)| result(user, ErrorCode::NONE, None, infos.clone()))
            .collect(),
        Some(users) => {
            let mut count: BTreeMap<String, usize> = BTreeMap::new();
            for u in &users {
                *count.entry(u.name.to_string()).or_default() += 1;
            }
            let mut seen = Vec::new();
            let mut out = Vec::new();
            for u in users {
                let name = u.name.to_string();
                if seen.contains(&name) {
                    continue;
                }
                seen.push(name.clone());
                if count.get(&name).copied().unwrap_or(0) > 1 {
                    out.push(result(
                        &name,
                        ErrorCode::DUPLICATE_RESOURCE,
                        Some(format!(
                            "Cannot describe SCRAM credentials for the same user twice in a single request: {name}"
                        )),
                        Vec::new(),
                    ));
                } else if let Some(infos) = by_user.get(name.as_str()) {
                    out.push(result(&name, ErrorCode::NONE, None, infos.clone()));
                } else {
                    out.push(result(
                        &name,
                        ErrorCode::RESOURCE_NOT_FOUND,
                        Some(format!(
                            "Attempt to describe a user credential that does not exist: {name}"
                        )),
                        Vec::new(),
                    ));
                }
            }
            out
        }
    };
    ResponseKind::DescribeUserScramCredentials(
        DescribeUserScramCredentialsResponse::default().with_results(results),
    )
}

pub(super) async fn alter(
    context: &BrokerContext,
    request: AlterUserScramCredentialsRequest,
) -> ResponseKind {
    let deletions: Vec<(String, i8)> = request
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism))
        .collect();
    // Salted passwords become keys here; an empty one is refused by the controller's check
    // of empty keys, a mechanism it does not know passes through for it to refuse.
    let upsertions: Vec<ScramUpsertion> = request
        .upsertions
        .iter()
        .map(|u| {
            let (stored_key, server_key) = match ScramMechanism::from_id(u.mechanism) {
                Some(mechanism) if !u.salted_password.is_empty() => {
                    let c = ScramCredential::from_salted_password(
                        mechanism,
                        &u.salt,
                        &u.salted_password,
                        u.iterations.max(0) as u32,
                    );
                    (c.stored_key, c.server_key)
                }
                _ => (Vec::new(), Vec::new()),
            };
            ScramUpsertion {
                name: u.name.to_string(),
                mechanism: u.mechanism,
                iterations: u.iterations,
                salt: u.salt.to_vec(),
                stored_key,
                server_key,
            }
        })
        .collect();
    let users: Vec<String> = {
        let mut users = Vec::new();
        for name in deletions
            .iter()
            .map(|(n, _)| n)
            .chain(upsertions.iter().map(|u| &u.name))
        {
            if !users.contains(name) {
                users.push(name.clone());
            }
        }
        users
    };
    let reply = context
        .metadata
        .submit(ControllerRequest::AlterUserScramCredentials(
            AlterScramRequest {
                deletions,
                upsertions,
            },
        ))
        .await;
    let results = match reply {
        Ok(ControllerReply::AlterUserScramCredentials(results)) => results
            .into_iter()
            .map(|r| {
                let (code, message) = match &r.error {
                    Some(error) => {
                        let (code, message) = api_error(error);
                        (code, Some(message))
                    }
                    None => (0, None),
                };
                AlterUserScramCredentialsResult::default()
                    .with_user(str_bytes(r.user))
                    .with_error_code(code)
                    .with_error_message(message.map(StrBytes::from_string))
            })
            .collect(),
        other => {
            let (code, message) = match other {
                Err(error) => controller_error(&error),
                Ok(_) => (
                    ErrorCode::UNKNOWN_SERVER_ERROR.code(),
                    "unexpected controller reply".to_string(),
                ),
            };
            users
                .into_iter()
                .map(|user| {
                    AlterUserScramCredentialsResult::default()
                        .with_user(str_bytes(user))
                        .with_error_code(code)
                        .with_error_message(Some(StrBytes::from_string(message.clone())))
                })
                .collect()
        }
    };
    ResponseKind::AlterUserScramCredentials(
        AlterUserScramCredentialsResponse::default().with_results(results),
    )
}
