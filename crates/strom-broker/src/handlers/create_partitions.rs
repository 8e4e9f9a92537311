//! CreatePartitions: raises a topic's partition count through the controller (with
//! optional manual assignments and `validate_only`); the new logs are open before the answer.

use strom_meta::{
    ControllerReply, ControllerRequest, CreatePartitionsRequest as MetaRequest,
    CreatePartitionsTopic,
};
use strom_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use strom_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, ResponseKind};
use strom_protocol::ErrorCode;

use super::{api_error, controller_error, str_bytes, topic_name};
use crate::server::BrokerContext;

pub(super) async fn handle(
    context: &BrokerContext,
    request: CreatePartitionsRequest,
    _version: i16,
) -> ResponseKind {
    let names: Vec<String> = request
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .collect();
    let meta_request = ControllerRequest::CreatePartitions(MetaRequest {
        topics: request
            .topics
            .into_iter()
            .map(|t| CreatePartitionsTopic {
                name: t.name.0.to_string(),
                count: t.count,
                assignments: t.assignments.map(|all| {
                    all.into_iter()
                        .map(|a| a.broker_ids.into_iter().map(|b| b.0).collect())
                        .collect()
                }),
            })
            .collect(),
        validate_only: request.validate_only,
    });
    let results = match context.metadata.submit(meta_request).await {
        Ok(ControllerReply::CreatePartitions(results)) => results
            .into_iter()
            .map(|r| {
                let (code, message) = r.error.as_ref().map_or((0, None), |e| {
                    let (code, message) = api_error(e);
                    (code, Some(message))
                });
                result(r.name, code, message)
            })
            .collect(),
        other => {
            let (code, message) = match other {
                Err(error) => controller_error(&error),
                Ok(reply) => (ErrorCode::UNKNOWN_SERVER_ERROR.code(), format!("{reply:?}")),
            };
            names
                .into_iter()
                .map(|name| result(name, code, Some(message.clone())))
                .collect()
        }
    };
    context.replicas.reconcile_latest(&context.metadata).await;
    ResponseKind::CreatePartitions(CreatePartitionsResponse::default().with_results(results))
}

fn result(name: String, code: i16, message: Option<String>) -> CreatePartitionsTopicResult {
    CreatePartitionsTopicResult::default()
        .with_name(topic_name(name))
        .with_error_code(code)
        .with_error_message(message.map(str_bytes))
}
