//! DeleteTopics: by name (every version) or by topic id (v6+), through the controller; the
//! partition logs are closed and removed before the answer.

use strom_meta::{ControllerReply, ControllerRequest, DeleteTopicsRequest, TopicRef};
use strom_protocol::messages::delete_topics_response::DeletableTopicResult;
use strom_protocol::messages::{
    DeleteTopicsRequest as WireRequest, DeleteTopicsResponse, ResponseKind,
};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::{api_error, controller_error, str_bytes, topic_name};
use crate::server::BrokerContext;

/// The first version that names topics by `topics` (name or id) instead of `topic_names`.
const TOPIC_STATES_MIN_VERSION: i16 = 6;

pub(super) async fn handle(
    context: &BrokerContext,
    request: WireRequest,
    version: i16,
) -> ResponseKind {
    let refs: Vec<TopicRef> = if version >= TOPIC_STATES_MIN_VERSION {
        request
            .topics
            .into_iter()
            .map(|t| match t.name {
                Some(name) => TopicRef::Name(name.0.to_string()),
                None => TopicRef::Id(t.topic_id),
            })
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|name| TopicRef::Name(name.0.to_string()))
            .collect()
    };
    let controller_request = ControllerRequest::DeleteTopics(DeleteTopicsRequest {
        topics: refs.clone(),
    });
    let responses = match context.metadata.submit(controller_request).await {
        Ok(ControllerReply::DeleteTopics(results)) => results
            .into_iter()
            .map(|r| {
                let (code, message) = r.error.as_ref().map_or((0, None), |e| {
                    let (code, message) = api_error(e);
                    (code, Some(message))
                });
                let name = r.name.or(match &r.topic {
                    TopicRef::Name(name) => Some(name.clone()),
                    TopicRef::Id(_) => None,
                });
                entry(name, r.topic_id, code, message)
            })
            .collect(),
        Ok(_) => failed(&refs, ErrorCode::UNKNOWN_SERVER_ERROR.code(), None),
        Err(error) => {
            let (code, message) = controller_error(&error);
            failed(&refs, code, Some(message))
        }
    };
    // Topic ids travel from v6 on; older responses must not carry one.
    let responses = if version >= TOPIC_STATES_MIN_VERSION {
        responses
    } else {
        responses
            .into_iter()
            .map(|r| r.with_topic_id(Uuid::nil()))
            .collect()
    };
    context.replicas.reconcile_latest(&context.metadata).await;
    ResponseKind::DeleteTopics(DeleteTopicsResponse::default().with_responses(responses))
}

fn entry(
    name: Option<String>,
    id: Uuid,
    code: i16,
    message: Option<String>,
) -> DeletableTopicResult {
    DeletableTopicResult::default()
        .with_name(name.map(topic_name))
        .with_topic_id(id)
        .with_error_code(code)
        .with_error_message(message.map(str_bytes))
}

fn failed(refs: &[TopicRef], code: i16, message: Option<String>) -> Vec<DeletableTopicResult> {
    refs.iter()
        .map(|r| match r {
            TopicRef::Name(name) => entry(Some(name.clone()), Uuid::nil(), code, message.clone()),
            TopicRef::Id(id) => entry(None, *id, code, message.clone()),
        })
        .collect()
}
