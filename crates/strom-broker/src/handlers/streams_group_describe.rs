//! StreamsGroupDescribe (v0, KIP-1071): each group is asked of the coordinator partition
//! that owns it.

use strom_group::streams::{DescribedStreamsGroup, Tasks, TasksTuple, TopicInfo};
use strom_group::{Command, ErrorCode, Response};
use strom_protocol::messages::streams_group_describe_response as wire;
use strom_protocol::messages::{
    GroupId, ResponseKind, StreamsGroupDescribeRequest, StreamsGroupDescribeResponse,
};

use super::{group_call, str_bytes};
use crate::server::BrokerContext;

/// Groups described per request (a client's list is bounded by the frame size anyway).
const GROUPS_MAX: usize = 10_000;

pub(super) async fn handle(
    context: &BrokerContext,
    request: StreamsGroupDescribeRequest,
) -> ResponseKind {
    let mut groups = Vec::with_capacity(request.group_ids.len().min(GROUPS_MAX));
    for group_id in request.group_ids.into_iter().take(GROUPS_MAX) {
        let id = group_id.0.to_string();
        if id.is_empty() {
            groups.push(failed(group_id, ErrorCode::InvalidGroupId));
            continue;
        }
        let command = Command::StreamsGroupDescribe(id.clone());
        let described = match group_call(context, &id, command).await {
            // A coordinator error (loading, moved away) names no group: keep the id asked for.
            Ok(Response::StreamsGroupDescribe(d)) if d.group_id.is_empty() => {
                let code = d
                    .error
                    .map_or(ErrorCode::CoordinatorNotAvailable, |e| e.code);
                failed(group_id, code)
            }
            Ok(Response::StreamsGroupDescribe(d)) => to_wire(d),
            Ok(_) => failed(group_id, ErrorCode::CoordinatorNotAvailable),
            Err(code) => failed(group_id, code),
        };
        groups.push(described);
    }
    ResponseKind::StreamsGroupDescribe(StreamsGroupDescribeResponse::default().with_groups(groups))
}

fn failed(group_id: GroupId, code: ErrorCode) -> wire::DescribedGroup {
    wire::DescribedGroup::default()
        .with_group_id(group_id)
        .with_error_code(code.code())
}

fn tasks(t: &Tasks) -> Vec<wire::TaskIds> {
    t.iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(sub, parts)| {
            wire::TaskIds::default()
                .with_subtopology_id(str_bytes(sub.clone()))
                .with_partitions(parts.iter().copied().collect())
        })
        .collect()
}

fn assignment(t: &TasksTuple) -> wire::Assignment {
    wire::Assignment::default()
        .with_active_tasks(tasks(&t.active))
        .with_standby_tasks(tasks(&t.standby))
        .with_warmup_tasks(tasks(&t.warmup))
}

fn topic_info(t: &TopicInfo) -> wire::TopicInfo {
    wire::TopicInfo::default()
        .with_name(str_bytes(t.name.clone()))
        .with_partitions(t.partitions)
        .with_replication_factor(t.replication_factor)
        .with_topic_configs(
            t.configs
                .iter()
                .map(|(k, v)| {
                    wire::KeyValue::default()
                        .with_key(str_bytes(k.clone()))
                        .with_value(str_bytes(v.clone()))
                })
                .collect(),
        )
}

fn to_wire(d: DescribedStreamsGroup) -> wire::DescribedGroup {
    if let Some(e) = &d.error {
        return wire::DescribedGroup::default()
            .with_group_id(GroupId(str_bytes(d.group_id.clone())))
            .with_error_code(e.code.code())
            .with_error_message(Some(str_bytes(e.message.clone())))
            .with_group_state(str_bytes(d.state.clone()));
    }
    let topology = d.topology.as_ref().map(|t| {
        wire::Topology::default()
            .with_epoch(t.epoch)
            .with_subtopologies(Some(
                t.subtopologies
                    .iter()
                    .map(|s| {
                        wire::Subtopology::default()
                            .with_subtopology_id(str_bytes(s.id.clone()))
                            .with_source_topics(
                                s.source_topics
                                    .iter()
                                    .map(|t| str_bytes(t.clone()))
                                    .collect(),
                            )
                            .with_repartition_sink_topics(
                                s.repartition_sink_topics
                                    .iter()
                                    .map(|t| str_bytes(t.clone()))
                                    .collect(),
                            )
                            .with_state_changelog_topics(
                                s.state_changelog_topics.iter().map(topic_info).collect(),
                            )
                            .with_repartition_source_topics(
                                s.repartition_source_topics.iter().map(topic_info).collect(),
                            )
                    })
                    .collect(),
            ))
    });
    let members = d
        .members
        .iter()
        .map(|m| {
            wire::Member::default()
                .with_member_id(str_bytes(m.member_id.clone()))
                .with_member_epoch(m.member_epoch)
                .with_instance_id(m.instance_id.clone().map(str_bytes))
                .with_rack_id(m.rack_id.clone().map(str_bytes))
                .with_client_id(str_bytes(m.client_id.clone()))
                .with_client_host(str_bytes(m.client_host.clone()))
                .with_topology_epoch(m.topology_epoch)
                .with_process_id(str_bytes(m.process_id.clone()))
                .with_user_endpoint(m.user_endpoint.as_ref().map(|e| {
                    wire::Endpoint::default()
                        .with_host(str_bytes(e.host.clone()))
                        .with_port(e.port)
                }))
                .with_client_tags(
                    m.client_tags
                        .iter()
                        .map(|(k, v)| {
                            wire::KeyValue::default()
                                .with_key(str_bytes(k.clone()))
                                .with_value(str_bytes(v.clone()))
                        })
                        .collect(),
                )
                .with_assignment(assignment(&m.assignment))
                .with_target_assignment(assignment(&m.target_assignment))
                .with_is_classic(false)
        })
        .collect();
    wire::DescribedGroup::default()
        .with_group_id(GroupId(str_bytes(d.group_id)))
        .with_group_state(str_bytes(d.state))
        .with_group_epoch(d.group_epoch)
        .with_assignment_epoch(d.assignment_epoch)
        .with_topology(topology)
        .with_members(members)
}
