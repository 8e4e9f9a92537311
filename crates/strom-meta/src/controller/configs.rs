//! AlterConfigs and IncrementalAlterConfigs, and validation of topic configs.
//!
//! Topic keys are checked against [`crate::config_defs`]. Broker and client-metrics keys are
//! stored as given: the broker owns their definitions and validates them before they reach
//! the controller and when it reads the image.

use crate::config_defs::{split_list, topic_config_def, ConfigType};
use crate::controller::errors::{ApiError, ErrorCode};
use crate::controller::messages::{
    AlterConfigOp, AlterConfigsRequest, AlterConfigsResult, AlterableConfig, ControllerReply,
    IncrementalAlterConfigsRequest,
};
use crate::controller::staged::Staged;
use crate::controller::topics::unknown_topic;
use crate::controller::Handled;
use crate::image::MetadataImage;
use crate::records::{ConfigResource, ConfigResourceKind, MetadataRecord};
use std::collections::{BTreeMap, BTreeSet};

/// Longest config key or value accepted (the record encoding's string limit).
const CONFIG_STRING_BYTES_MAX: usize = crate::wire::STRING_BYTES_MAX;

/// Checks CreateTopics configs; returns them as a map.
pub(crate) fn check_new_topic_configs(
    configs: &[(String, Option<String>)],
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for (key, value) in configs {
        let value = value.as_ref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidConfig,
                format!("Null value not supported for topic configs: {key}"),
            )
        })?;
        check_topic_value(key, value)?;
        if out.insert(key.clone(), value.clone()).is_some() {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("Duplicate config key: {key}"),
            ));
        }
    }
    check_topic_consistency(&out)?;
    Ok(out)
}

fn check_topic_value(key: &str, value: &str) -> Result<(), ApiError> {
    let def = topic_config_def(key).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidConfig,
            format!("Unknown topic config name: {key}"),
        )
    })?;
    if value.len() > CONFIG_STRING_BYTES_MAX {
        return Err(ApiError::new(
            ErrorCode::InvalidConfig,
            format!("Value of {key} is too long."),
        ));
    }
    def.validate(value)
        .map_err(|e| ApiError::new(ErrorCode::InvalidConfig, e.message))
}

/// Constraints between keys (Kafka's `LogConfig.validateValues`).
fn check_topic_consistency(configs: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let long = |key: &str| configs.get(key).and_then(|v| v.trim().parse::<i64>().ok());
    if let (Some(min), Some(max)) = (long("min.compaction.lag.ms"), long("max.compaction.lag.ms")) {
        if min > max {
            return Err(ApiError::new(
                ErrorCode::InvalidConfig,
                format!("conflict topic config setting min.compaction.lag.ms ({min}) > max.compaction.lag.ms ({max})"),
            ));
        }
    }
    Ok(())
}

fn check_resource(image: &MetadataImage, resource: &ConfigResource) -> Result<(), ApiError> {
    match resource.kind {
        ConfigResourceKind::Topic => {
            if image.topic_by_name(&resource.name).is_none() {
                return Err(unknown_topic());
            }
        }
        ConfigResourceKind::Broker => {
            let valid =
                resource.name.is_empty() || resource.name.parse::<i32>().is_ok_and(|id| id >= 0);
            if !valid {
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "Invalid broker name {}: expected a broker id or the empty default.",
                        resource.name
                    ),
                ));
            }
        }
        ConfigResourceKind::ClientMetrics => {
            if resource.name.is_empty() || resource.name.len() > CONFIG_STRING_BYTES_MAX {
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Subscription name can't be empty",
                ));
            }
        }
        ConfigResourceKind::Group => {
            if resource.name.is_empty() || resource.name.len() > CONFIG_STRING_BYTES_MAX {
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Group config resources need a group id (no default group resource).",
                ));
            }
        }
    }
    Ok(())
}

fn check_value(resource: &ConfigResource, key: &str, value: &str) -> Result<(), ApiError> {
    match resource.kind {
        ConfigResourceKind::Topic => check_topic_value(key, value),
        ConfigResourceKind::Broker
        | ConfigResourceKind::ClientMetrics
        | ConfigResourceKind::Group => {
            if key.is_empty()
                || key.len() > CONFIG_STRING_BYTES_MAX
                || value.len() > CONFIG_STRING_BYTES_MAX
            {
                return Err(ApiError::new(
                    ErrorCode::InvalidConfig,
                    format!("Invalid broker config {key}."),
                ));
            }
            Ok(())
        }
    }
}

/// Records turning the resource's current overrides into `wanted`, after validating them.
fn records_for(
    image: &MetadataImage,
    resource: &ConfigResource,
    wanted: &BTreeMap<String, String>,
) -> Result<Vec<MetadataRecord>, ApiError> {
    for (key, value) in wanted {
        check_value(resource, key, value)?;
    }
    if resource.kind == ConfigResourceKind::Topic {
        check_topic_consistency(wanted)?;
    }
    let empty = BTreeMap::new();
    let current = image.configs(resource).unwrap_or(&empty);
    let record = |key: &String, value: Option<&String>| MetadataRecord::Config {
        resource: resource.clone(),
        key: key.clone(),
        value: value.cloned(),
    };
    let deletes = current
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .map(|k| record(k, None));
    let sets = wanted
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(v))
        .map(|(k, v)| record(k, Some(v)));
    Ok(deletes.chain(sets).collect())
}

fn duplicate_resources<'a>(
    resources: impl Iterator<Item = &'a ConfigResource>,
) -> BTreeSet<ConfigResource> {
    let mut seen = BTreeSet::new();
    let mut duplicates = BTreeSet::new();
    for r in resources {
        if !seen.insert(r) {
            duplicates.insert(r.clone());
        }
    }
    duplicates
}

/// Runs `alter` once per distinct resource, answering duplicated resources with
/// INVALID_REQUEST as Kafka does.
fn per_resource<T>(
    image: &MetadataImage,
    items: &[T],
    resource_of: impl Fn(&T) -> &ConfigResource,
    alter: impl Fn(&MetadataImage, &T) -> Result<BTreeMap<String, String>, ApiError>,
) -> (Staged, Vec<AlterConfigsResult>) {
    let duplicates = duplicate_resources(items.iter().map(&resource_of));
    let mut staged = Staged::new(image);
    let mut answered = BTreeSet::new();
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let resource = resource_of(item);
        if !answered.insert(resource.clone()) {
            continue;
        }
        let outcome = if duplicates.contains(resource) {
            Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "Error due to duplicate resources.",
            ))
        } else {
            check_resource(&staged.image, resource)
                .and_then(|()| alter(&staged.image, item))
                .and_then(|wanted| records_for(&staged.image, resource, &wanted))
                .map(|records| staged.push(records))
        };
        results.push(AlterConfigsResult {
            resource: resource.clone(),
            error: outcome.err(),
        });
    }
    (staged, results)
}

pub(crate) fn alter_configs(image: &MetadataImage, request: AlterConfigsRequest) -> Handled {
    let (staged, results) = per_resource(
        image,
        &request.resources,
        |r| &r.resource,
        |_, r| {
            let mut wanted = BTreeMap::new();
            for (key, value) in &r.configs {
                let value = value.as_ref().ok_or_else(|| null_value(key))?;
                if wanted.insert(key.clone(), value.clone()).is_some() {
                    return Err(duplicate_keys());
                }
            }
            Ok(wanted)
        },
    );
    Ok((
        staged.finish(request.validate_only)?,
        ControllerReply::AlterConfigs(results),
    ))
}

pub(crate) fn incremental_alter_configs(
    image: &MetadataImage,
    request: IncrementalAlterConfigsRequest,
) -> Handled {
    let (staged, results) = per_resource(
        image,
        &request.resources,
        |r| &r.resource,
        |image, r| {
            let mut keys = BTreeSet::new();
            if !r.configs.iter().all(|c| keys.insert(c.key.as_str())) {
                return Err(duplicate_keys());
            }
            let mut wanted = image.configs(&r.resource).cloned().unwrap_or_default();
            for op in &r.configs {
                apply_op(&r.resource, &mut wanted, op)?;
            }
            Ok(wanted)
        },
    );
    Ok((
        staged.finish(request.validate_only)?,
        ControllerReply::IncrementalAlterConfigs(results),
    ))
}

fn apply_op(
    resource: &ConfigResource,
    configs: &mut BTreeMap<String, String>,
    op: &AlterableConfig,
) -> Result<(), ApiError> {
    let key = &op.key;
    match op.op {
        AlterConfigOp::Set => {
            let value = op.value.as_ref().ok_or_else(|| null_value(key))?;
            configs.insert(key.clone(), value.clone());
        }
        AlterConfigOp::Delete => {
            configs.remove(key);
        }
        AlterConfigOp::Append | AlterConfigOp::Subtract => {
            let value = op.value.as_ref().ok_or_else(|| null_value(key))?;
            let base = list_base(resource, configs, key, op.op)?;
            let mut items: Vec<String> = split_list(&base).into_iter().map(str::to_owned).collect();
            for item in split_list(value) {
                if op.op == AlterConfigOp::Append && !items.iter().any(|i| i == item) {
                    items.push(item.to_owned());
                } else if op.op == AlterConfigOp::Subtract {
                    items.retain(|i| i != item);
                }
            }
            configs.insert(key.clone(), items.join(","));
        }
    }
    Ok(())
}

/// The list an APPEND or SUBTRACT starts from: the override if set, else the default.
fn list_base(
    resource: &ConfigResource,
    configs: &BTreeMap<String, String>,
    key: &str,
    op: AlterConfigOp,
) -> Result<String, ApiError> {
    let default = match resource.kind {
        ConfigResourceKind::Topic => {
            let def = topic_config_def(key).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidConfig,
                    format!("Unknown topic config name: {key}"),
                )
            })?;
            if def.config_type != ConfigType::List {
                let verb = if op == AlterConfigOp::Append {
                    "append"
                } else {
                    "subtract"
                };
                return Err(ApiError::new(
                    ErrorCode::InvalidConfig,
                    format!("Config value {verb} is not allowed for config key: {key}"),
                ));
            }
            def.default
        }
        ConfigResourceKind::Broker
        | ConfigResourceKind::ClientMetrics
        | ConfigResourceKind::Group => "",
    };
    Ok(configs
        .get(key)
        .cloned()
        .unwrap_or_else(|| default.to_owned()))
}

fn null_value(key: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidRequest,
        format!("Null value not supported for : {key}"),
    )
}

fn duplicate_keys() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidRequest,
        "Error due to duplicate config keys",
    )
}
