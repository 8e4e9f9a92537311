//! CreateTopics: names, -1 partition and replication defaults, manual assignments, configs
//! and `validate_only`, validated by the controller and answered once committed. The new
//! partitions' logs are open before the answer, so a Produce right after it succeeds.

use strom_meta::{
    ControllerReply, ControllerRequest, CreatableTopic, CreateTopicResult, CreateTopicsRequest,
};
use strom_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use strom_protocol::messages::{
    CreateTopicsRequest as WireRequest, CreateTopicsResponse, ResponseKind,
};
use strom_protocol::ErrorCode;

use super::{api_error, controller_error, str_bytes, topic_name, with_broker_defaults};
use crate::server::BrokerContext;

/// The first version whose results carry the topic's configs, partitions and factor.
const CONFIGS_MIN_VERSION: i16 = 5;

pub(super) async fn handle(
    context: &BrokerContext,
    request: WireRequest,
    version: i16,
) -> ResponseKind {
    let names: Vec<String> = request
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .collect();
    let controller_request = ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics: request.topics.into_iter().map(creatable).collect(),
        validate_only: request.validate_only,
    });
    let results = match context.metadata.submit(controller_request).await {
        Ok(ControllerReply::CreateTopics(results)) => results
            .into_iter()
            .map(|r| result(context, r, version))
            .collect(),
        Ok(other) => failed(
            &names,
            ErrorCode::UNKNOWN_SERVER_ERROR.code(),
            format!("{other:?}"),
        ),
        Err(error) => {
            let (code, message) = controller_error(&error);
            failed(&names, code, message)
        }
    };
    if !request.validate_only {
        context.replicas.reconcile_latest(&context.metadata).await;
    }
    ResponseKind::CreateTopics(CreateTopicsResponse::default().with_topics(results))
}

fn creatable(
    topic: strom_protocol::messages::create_topics_request::CreatableTopic,
) -> CreatableTopic {
    CreatableTopic {
        name: topic.name.0.to_string(),
        num_partitions: topic.num_partitions,
        replication_factor: topic.replication_factor,
        assignments: topic
            .assignments
            .into_iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.into_iter().map(|b| b.0).collect(),
                )
            })
            .collect(),
        configs: topic
            .configs
            .into_iter()
            .map(|c| (c.name.to_string(), c.value.map(|v| v.to_string())))
            .collect(),
    }
}

fn result(context: &BrokerContext, r: CreateTopicResult, version: i16) -> CreatableTopicResult {
    let mut out = CreatableTopicResult::default()
        .with_name(topic_name(r.name))
        .with_topic_id(r.topic_id);
    if let Some(error) = &r.error {
        let (code, message) = api_error(error);
        out = out
            .with_error_code(code)
            .with_error_message(Some(str_bytes(message)));
        if version >= CONFIGS_MIN_VERSION {
            out = out.with_num_partitions(-1).with_replication_factor(-1);
        }
        return out;
    }
    if version >= CONFIGS_MIN_VERSION {
        let configs = with_broker_defaults(context, r.configs)
            .into_iter()
            .map(|c| {
                CreatableTopicConfigs::default()
                    .with_name(str_bytes(c.name))
                    .with_value(c.value.map(str_bytes))
                    .with_read_only(c.read_only)
                    .with_config_source(c.source.kafka_id())
                    .with_is_sensitive(c.sensitive)
            })
            .collect();
        out = out
            .with_num_partitions(r.num_partitions)
            .with_replication_factor(r.replication_factor)
            .with_configs(Some(configs));
    }
    out
}

fn failed(names: &[String], code: i16, message: String) -> Vec<CreatableTopicResult> {
    names
        .iter()
        .map(|name| {
            CreatableTopicResult::default()
                .with_name(topic_name(name.clone()))
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message.clone())))
        })
        .collect()
}
