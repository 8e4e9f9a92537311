//! OffsetDelete (v0): removes committed offsets of partitions a group does not consume
//! (KIP-496). Partitions of subscribed topics answer GROUP_SUBSCRIBED_TO_TOPIC.

use strom_group::{Command, ErrorCode, OffsetDelete, OffsetDeleteResponse, Response};
use strom_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use strom_protocol::messages::{
    OffsetDeleteRequest, OffsetDeleteResponse as WireResponse, ResponseKind,
};

use super::{group_call, topic_name};
use crate::server::BrokerContext;

pub(super) async fn handle(
    context: &BrokerContext,
    request: OffsetDeleteRequest,
    _version: i16,
) -> ResponseKind {
    let group_id = request.group_id.0.to_string();
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            let name = t.name.0.to_string();
            t.partitions
                .iter()
                .map(move |p| (name.clone(), p.partition_index))
        })
        .collect();
    let command = Command::OffsetDelete(OffsetDelete {
        group_id: group_id.clone(),
        partitions,
    });
    let response = match group_call(context, &group_id, command).await {
        Ok(Response::OffsetDelete(r)) => r,
        Ok(_) => whole(ErrorCode::CoordinatorNotAvailable),
        Err(code) => whole(code),
    };
    if response.error != ErrorCode::None {
        return ResponseKind::OffsetDelete(
            WireResponse::default().with_error_code(response.error.code()),
        );
    }
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
    for result in response.partitions {
        let partition = OffsetDeleteResponsePartition::default()
            .with_partition_index(result.partition)
            .with_error_code(result.error.code());
        match topics
            .iter_mut()
            .find(|t| t.name.0.as_str() == result.topic)
        {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(topic_name(result.topic))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    ResponseKind::OffsetDelete(WireResponse::default().with_topics(topics))
}

fn whole(error: ErrorCode) -> OffsetDeleteResponse {
    OffsetDeleteResponse {
        error,
        partitions: Vec::new(),
    }
}
