//! ShareGroupDescribe (v1, KIP-932): each group is asked of the coordinator partition that
//! owns it; topic ids in assignments are named from the metadata image.

use std::sync::Arc;

use strom_group::consumer::Assignment;
use strom_group::ErrorCode;
use strom_meta::MetadataImage;
use strom_protocol::messages::share_group_describe_response::{self as wire, TopicPartitions};
use strom_protocol::messages::{
    GroupId, ResponseKind, ShareGroupDescribeRequest, ShareGroupDescribeResponse,
};
use strom_share::group::{DescribedShareGroup, ShareCommand, ShareResponse};

use super::consumer_group_heartbeat::{topics, uuid};
use super::{share_call, str_bytes, topic_name};
use crate::server::BrokerContext;

/// Groups described per request (a client's list is bounded by the frame size anyway).
const GROUPS_MAX: usize = 10_000;

pub(super) async fn handle(
    context: &BrokerContext,
    request: ShareGroupDescribeRequest,
) -> ResponseKind {
    let image = context.metadata.image();
    let view = topics(&image);
    let mut groups = Vec::with_capacity(request.group_ids.len().min(GROUPS_MAX));
    for group_id in request.group_ids.into_iter().take(GROUPS_MAX) {
        let id = group_id.0.to_string();
        if id.is_empty() {
            groups.push(failed(group_id, ErrorCode::InvalidGroupId));
            continue;
        }
        let command = ShareCommand::Describe {
            group_ids: vec![id.clone()],
            topics: Arc::clone(&view),
        };
        let described = match share_call(context, &id, command).await {
            Ok(ShareResponse::Describe(mut d)) if d.len() == 1 => match d.pop() {
                Some(d) => to_wire(d, &image),
                None => failed(group_id, ErrorCode::CoordinatorNotAvailable),
            },
            Ok(_) => failed(group_id, ErrorCode::CoordinatorNotAvailable),
            Err(code) => failed(group_id, code),
        };
        groups.push(described);
    }
    ResponseKind::ShareGroupDescribe(ShareGroupDescribeResponse::default().with_groups(groups))
}

fn failed(group_id: GroupId, code: ErrorCode) -> wire::DescribedGroup {
    wire::DescribedGroup::default()
        .with_group_id(group_id)
        .with_error_code(code.code())
}

fn to_wire(d: DescribedShareGroup, image: &MetadataImage) -> wire::DescribedGroup {
    let (error_code, error_message) = match &d.error {
        Some(e) => (
            e.code.code(),
            Some(e.message.clone())
                .filter(|m| !m.is_empty())
                .map(str_bytes),
        ),
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
                        .with_assignment(assignment(&m.assignment, image))
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
