//! AlterConfigs (legacy: the given keys become a resource's whole set of overrides) and
//! IncrementalAlterConfigs (set, delete, append, subtract per key), validated and committed
//! by the controller. Open logs pick up topic changes when the new image arrives, and the
//! dynamic broker configs that change topic defaults (`dynamic_config.rs`) likewise; other
//! known broker keys are refused before they reach the controller.

use std::collections::BTreeMap;

use strom_meta::{
    AlterConfigOp, AlterConfigsRequest as MetaAlter, AlterConfigsResult, AlterResource,
    AlterableConfig, ConfigResource, ConfigResourceKind, ControllerReply, ControllerRequest,
    IncrementalAlterConfigsRequest as MetaIncremental, IncrementalAlterResource,
};
use strom_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, ResponseKind,
};
use strom_protocol::{ErrorCode, StrBytes};

use super::{api_error, controller_error, str_bytes};
use crate::dynamic_config;
use crate::metadata::MetadataError;
use crate::server::BrokerContext;

/// One resource's answer: its wire type and name, error code and message.
type Outcome = (i8, StrBytes, i16, Option<String>);

pub(super) async fn handle_legacy(
    context: &BrokerContext,
    request: AlterConfigsRequest,
    _version: i16,
) -> ResponseKind {
    let mut refused = BTreeMap::new();
    let mut resources = Vec::new();
    let wire: Vec<(i8, StrBytes)> = request
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.clone()))
        .collect();
    for (slot, r) in request.resources.into_iter().enumerate() {
        let configs: Vec<(String, Option<String>)> = r
            .configs
            .into_iter()
            .map(|c| (c.name.to_string(), c.value.map(|v| v.to_string())))
            .collect();
        match resource(r.resource_type, &r.resource_name) {
            Some(resource) => {
                let checked = configs.iter().map(|(k, v)| (k.as_str(), v.as_deref()));
                // The given keys become the whole set.
                let refusal = group_refusal(context, &resource, BTreeMap::new(), checked.clone())
                    .or_else(|| broker_refusal(context, &resource, checked));
                match refusal {
                    Some(refusal) => {
                        refused.insert(slot, refusal);
                    }
                    None => resources.push(AlterResource { resource, configs }),
                }
            }
            None => {
                refused.insert(slot, unsupported());
            }
        }
    }
    let reply = if resources.is_empty() {
        Ok(ControllerReply::AlterConfigs(Vec::new()))
    } else {
        let request = ControllerRequest::AlterConfigs(MetaAlter {
            resources,
            validate_only: request.validate_only,
        });
        context.metadata.submit(request).await
    };
    let outcomes = merge(&wire, &refused, reply, |reply| match reply {
        ControllerReply::AlterConfigs(results) => Some(results),
        _ => None,
    });
    apply_to_logs(context).await;
    let responses = outcomes
        .into_iter()
        .map(|(kind, name, code, message)| {
            strom_protocol::messages::alter_configs_response::AlterConfigsResourceResponse::default(
            )
            .with_resource_type(kind)
            .with_resource_name(name)
            .with_error_code(code)
            .with_error_message(message.map(str_bytes))
        })
        .collect();
    ResponseKind::AlterConfigs(AlterConfigsResponse::default().with_responses(responses))
}

pub(super) async fn handle_incremental(
    context: &BrokerContext,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> ResponseKind {
    let mut refused = BTreeMap::new();
    let mut resources = Vec::new();
    let wire: Vec<(i8, StrBytes)> = request
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.clone()))
        .collect();
    for (slot, r) in request.resources.into_iter().enumerate() {
        let configs: Option<Vec<AlterableConfig>> = r
            .configs
            .into_iter()
            .map(|c| {
                Some(AlterableConfig {
                    key: c.name.to_string(),
                    op: AlterConfigOp::from_kafka_id(c.config_operation)?,
                    value: c.value.map(|v| v.to_string()),
                })
            })
            .collect();
        match (resource(r.resource_type, &r.resource_name), configs) {
            (Some(resource), Some(configs)) => {
                let checked = configs.iter().map(|c| {
                    let value = match c.op {
                        AlterConfigOp::Delete => None,
                        _ => c.value.as_deref(),
                    };
                    (c.key.as_str(), value)
                });
                let current = context
                    .metadata
                    .image()
                    .configs(&resource)
                    .cloned()
                    .unwrap_or_default();
                let listed = configs
                    .iter()
                    .find(|c| matches!(c.op, AlterConfigOp::Append | AlterConfigOp::Subtract));
                let refusal = match listed {
                    // No group config is a list (Kafka's answer for a non-list key).
                    Some(c) if resource.kind == ConfigResourceKind::Group => Some((
                        ErrorCode::INVALID_CONFIG,
                        format!(
                            "Config value append or subtract is not allowed for config key: {}",
                            c.key
                        ),
                    )),
                    _ => group_refusal(context, &resource, current, checked.clone()),
                }
                .or_else(|| broker_refusal(context, &resource, checked));
                match refusal {
                    Some(refusal) => {
                        refused.insert(slot, refusal);
                    }
                    None => resources.push(IncrementalAlterResource { resource, configs }),
                }
            }
            _ => {
                refused.insert(slot, unsupported());
            }
        }
    }
    let reply = if resources.is_empty() {
        Ok(ControllerReply::IncrementalAlterConfigs(Vec::new()))
    } else {
        let request = ControllerRequest::IncrementalAlterConfigs(MetaIncremental {
            resources,
            validate_only: request.validate_only,
        });
        context.metadata.submit(request).await
    };
    let outcomes = merge(&wire, &refused, reply, |reply| match reply {
        ControllerReply::IncrementalAlterConfigs(results) => Some(results),
        _ => None,
    });
    apply_to_logs(context).await;
    let responses = outcomes
        .into_iter()
        .map(|(kind, name, code, message)| {
            strom_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(kind)
                .with_resource_name(name)
                .with_error_code(code)
                .with_error_message(message.map(str_bytes))
        })
        .collect();
    ResponseKind::IncrementalAlterConfigs(
        IncrementalAlterConfigsResponse::default().with_responses(responses),
    )
}

fn unsupported() -> (ErrorCode, String) {
    (
        ErrorCode::INVALID_REQUEST,
        "unsupported resource or operation".into(),
    )
}

/// Why a change to a broker resource is refused before it reaches the controller, as
/// Kafka's broker checks it: a known key that cannot change at runtime (INVALID_REQUEST), or
/// a value the key's config refuses (INVALID_CONFIG); for a client-metrics subscription, an
/// unknown key or bad interval (INVALID_REQUEST) or a bad `match` pattern (INVALID_CONFIG),
/// as Kafka's `ClientMetricsConfigs.validate`. `None` for topics and valid changes.
fn broker_refusal<'a>(
    context: &BrokerContext,
    resource: &ConfigResource,
    configs: impl Iterator<Item = (&'a str, Option<&'a str>)> + Clone,
) -> Option<(ErrorCode, String)> {
    if resource.kind == ConfigResourceKind::ClientMetrics {
        return configs
            .filter_map(|(key, value)| crate::telemetry::validate(key, value).err())
            .map(|refusal| {
                let code = if refusal.invalid_config {
                    ErrorCode::INVALID_CONFIG
                } else {
                    ErrorCode::INVALID_REQUEST
                };
                (code, refusal.message)
            })
            .next();
    }
    if resource.kind != ConfigResourceKind::Broker {
        return None;
    }
    if let Some(refusal) = crate::dynamic_tls::refusal(context, resource, configs.clone()) {
        return Some(refusal);
    }
    let fixed = dynamic_config::refused_keys(&context.config, configs.clone().map(|(k, _)| k));
    if !fixed.is_empty() {
        return Some((
            ErrorCode::INVALID_REQUEST,
            format!(
                "Cannot update these configs dynamically: {}",
                fixed.join(", ")
            ),
        ));
    }
    configs
        .filter_map(|(key, value)| Some((key, value?)))
        .find_map(|(key, value)| {
            crate::throttle::invalid_rate(key, value)
                .or_else(|| dynamic_config::invalid_value(&context.config, key, value))
        })
        .map(|message| (ErrorCode::INVALID_CONFIG, message))
}

/// Why a change to a group's configs is refused (`group_configs::validate` on the group's
/// whole set after the change: `base` with `changes` applied, `None` deleting a key);
/// `None` for other resources and valid changes. An empty group id is left to the
/// controller (INVALID_REQUEST).
fn group_refusal<'a>(
    context: &BrokerContext,
    resource: &ConfigResource,
    mut base: BTreeMap<String, String>,
    changes: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> Option<(ErrorCode, String)> {
    if resource.kind != ConfigResourceKind::Group || resource.name.is_empty() {
        return None;
    }
    for (key, value) in changes {
        match value {
            Some(value) => {
                base.insert(key.to_string(), value.to_string());
            }
            None => {
                base.remove(key);
            }
        }
    }
    crate::group_configs::validate(&context.config, &base)
        .err()
        .map(|message| (ErrorCode::INVALID_CONFIG, message))
}

fn resource(kind: i8, name: &StrBytes) -> Option<ConfigResource> {
    let kind = ConfigResourceKind::from_kafka_id(kind)?;
    Some(ConfigResource {
        kind,
        name: name.to_string(),
    })
}

/// The answers in request order: refused slots, then the controller's per-resource results
/// (matched by resource), or the controller's refusal for all of them.
fn merge(
    wire: &[(i8, StrBytes)],
    refused: &BTreeMap<usize, (ErrorCode, String)>,
    reply: Result<ControllerReply, MetadataError>,
    results_of: impl Fn(ControllerReply) -> Option<Vec<AlterConfigsResult>>,
) -> Vec<Outcome> {
    let (results, whole): (Vec<AlterConfigsResult>, Option<(i16, String)>) = match reply {
        Ok(reply) => match results_of(reply) {
            Some(results) => (results, None),
            None => (
                Vec::new(),
                Some((
                    ErrorCode::UNKNOWN_SERVER_ERROR.code(),
                    "unexpected reply".into(),
                )),
            ),
        },
        Err(error) => (Vec::new(), Some(controller_error(&error))),
    };
    wire.iter()
        .enumerate()
        .map(|(slot, (kind, name))| {
            if let Some((code, message)) = refused.get(&slot) {
                return (*kind, name.clone(), code.code(), Some(message.clone()));
            }
            if let Some((code, message)) = &whole {
                return (*kind, name.clone(), *code, Some(message.clone()));
            }
            let found = results
                .iter()
                .find(|r| r.resource.kind.kafka_id() == *kind && r.resource.name == name.as_str());
            match found.and_then(|r| r.error.as_ref()) {
                Some(error) => {
                    let (code, message) = api_error(error);
                    (*kind, name.clone(), code, Some(message))
                }
                None => (*kind, name.clone(), 0, None),
            }
        })
        .collect()
}

async fn apply_to_logs(context: &BrokerContext) {
    context.replicas.reconcile_latest(&context.metadata).await;
}
