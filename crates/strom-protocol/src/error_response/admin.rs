//! Error shapes for admin APIs: ApiVersions, topics, partitions, configs, cluster.

#[allow(clippy::wildcard_imports)]
use kafka_protocol::messages::*;

use crate::api_versions;
use crate::kafka_error::ErrorCode;
use crate::versions::ApiVersionTable;

pub(super) fn api_versions_error(
    table: &ApiVersionTable,
    error: ErrorCode,
) -> kafka_protocol::messages::ApiVersionsResponse {
    if error == ErrorCode::UNSUPPORTED_VERSION {
        return api_versions::unsupported_version_response(table);
    }
    kafka_protocol::messages::ApiVersionsResponse::default().with_error_code(error.code())
}

pub(super) fn create_topics(request: &CreateTopicsRequest, code: i16) -> CreateTopicsResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let mut result = create_topics_response::CreatableTopicResult::default();
            result.name = topic.name.clone();
            result.error_code = code;
            result.error_message = None;
            result.configs = None;
            result
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// Up to version 5 DeleteTopics names topics in `topic_names`; from 6 in `topics`.
const DELETE_TOPICS_STATE_VERSION: i16 = 6;

pub(super) fn delete_topics(
    request: &DeleteTopicsRequest,
    api_version: i16,
    code: i16,
) -> DeleteTopicsResponse {
    let result = |name, topic_id| {
        let mut result = delete_topics_response::DeletableTopicResult::default();
        result.name = name;
        result.topic_id = topic_id;
        result.error_code = code;
        result
    };
    let responses = if api_version >= DELETE_TOPICS_STATE_VERSION {
        request
            .topics
            .iter()
            .map(|topic| result(topic.name.clone(), topic.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|name| result(Some(name.clone()), Default::default()))
            .collect()
    };
    DeleteTopicsResponse::default().with_responses(responses)
}

pub(super) fn create_partitions(
    request: &CreatePartitionsRequest,
    code: i16,
) -> CreatePartitionsResponse {
    let results = request
        .topics
        .iter()
        .map(|topic| {
            create_partitions_response::CreatePartitionsTopicResult::default()
                .with_name(topic.name.clone())
                .with_error_code(code)
                .with_error_message(None)
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

pub(super) fn describe_configs(
    request: &DescribeConfigsRequest,
    code: i16,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .iter()
        .map(|resource| {
            describe_configs_response::DescribeConfigsResult::default()
                .with_error_code(code)
                .with_error_message(None)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

pub(super) fn alter_configs(request: &AlterConfigsRequest, code: i16) -> AlterConfigsResponse {
    let responses = request
        .resources
        .iter()
        .map(|resource| {
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(None)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

pub(super) fn incremental_alter_configs(
    request: &IncrementalAlterConfigsRequest,
    code: i16,
) -> IncrementalAlterConfigsResponse {
    let responses = request
        .resources
        .iter()
        .map(|resource| {
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(None)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
