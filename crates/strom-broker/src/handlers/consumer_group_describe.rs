//! ConsumerGroupDescribe (v0-v1, KIP-848): each group is asked of the coordinator
//! partition that owns it; topic ids in assignments are named from the metadata image.

use strom_group::consumer::{Assignment, DescribedGroup};
use strom_group::{Command, ErrorCode, Response};
use strom_meta::MetadataImage;
use strom_protocol::messages::consumer_group_describe_response::{self as wire, TopicPartitions};
use strom_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId, ResponseKind,
};

use super::consumer_group_heartbeat::uuid;
use super::{group_call, str_bytes, topic_name};
use crate::server::BrokerContext;

/// KIP-1099 member type of a member using the consumer protocol.
const MEMBER_TYPE_CONSUMER: i8 = 1;
/// Groups described per request (a client's list is bounded by the frame size anyway).
const GROUPS_MAX: usize = 10_000;

pub(super) async fn handle(
    context: &BrokerContext,
    request: ConsumerGroupDescribeRequest,
    _version: i16,
) -> ResponseKind {
    let mut groups = Vec::with_capacity(request.group_ids.len().min(GROUPS_MAX));
    for group_id in request.group_ids.into_iter().take(GROUPS_MAX) {
        let id = group_id.0.to_string();
        if id.is_empty() {
            groups.push(failed(group_id, ErrorCode::InvalidGroupId));
            continue;
        }
        let command = Command::ConsumerGroupDescribe(id.clone());
        let described = match group_call(context, &id, command).await {
            // A coordinator error (loading, moved away) names no group: keep the id asked for.
            Ok(Response::ConsumerGroupDescribe(d)) if d.group_id.is_empty() => {
                let code = d
                    .error
                    .map_or(ErrorCode::CoordinatorNotAvailable, |e| e.code);
                failed(group_id, code)
            }
            Ok(Response::ConsumerGroupDescribe(d)) => to_wire(d, &context.metadata.image()),
            Ok(_) => failed(group_id, ErrorCode::CoordinatorNotAvailable),
            Err(code) => failed(group_id, code),
        };
        groups.push(described);
    }
    ResponseKind::ConsumerGroupDescribe(
        ConsumerGroupDescribeResponse::default().with_groups(groups),
    )
}

fn failed(group_id: GroupId, code: ErrorCode) -> wire::DescribedGroup {
    wire::DescribedGroup::default()
        .with_group_id(group_id)
        .with_error_code(code.code())
}

fn to_wire(d: DescribedGroup, image: &MetadataImage) -> wire::DescribedGroup {
    let (error_code, error_message) = match &d.error {
        Some(e) => (e.code.code(), Some(str_bytes(e.message.clone()))),
        None => (0, None),
    };
    wire::DescribedGroup::default()
        .with_error_code(error_code)
        .with_error_message(error_message)
        .with_group_id(GroupId(str_bytes(d.group_id)))
        .with_group_state(str_bytes(d.state))
        .with_group_epoch(d.group_epoch)
        .with_assignment_epoch(d.assignment_epoch)
        .with_assignor_name(str_bytes(d.assignor_name))
        .with_members(
            d.members
                .into_iter()
                .map(|m| {
                    wire::Member::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_instance_id(m.instance_id.map(str_bytes))
                        .with_rack_id(m.rack_id.map(str_bytes))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(str_bytes(m.client_id))
                        .with_client_host(str_bytes(m.client_host))
                        .with_subscribed_topic_names(
                            m.subscribed_topic_names
                                .into_iter()
                                .map(topic_name)
                                .collect(),
                        )
                        .with_subscribed_topic_regex(m.subscribed_topic_regex.map(str_bytes))
                        .with_assignment(assignment(&m.assignment, image))
                        .with_target_assignment(assignment(&m.target_assignment, image))
                        .with_member_type(MEMBER_TYPE_CONSUMER)
                })
                .collect(),
        )
}

fn assignment(a: &Assignment, image: &MetadataImage) -> wire::Assignment {
    wire::Assignment::default().with_topic_partitions(
        a.iter()
            .map(|(topic, partitions)| {
                let id = uuid(*topic);
                let name = image
                    .topic_by_id(id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                TopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(topic_name(name))
                    .with_partitions(partitions.iter().copied().collect())
            })
            .collect(),
    )
}
