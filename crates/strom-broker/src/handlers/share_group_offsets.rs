//! DescribeShareGroupOffsets, AlterShareGroupOffsets and DeleteShareGroupOffsets (KIP-932,
//! v0): reads and writes of the share partitions' durable state (`share_partitions.rs`,
//! `share_state.rs`), addressed by topic name.
//!
//! Alter and Delete are served by the share group's coordinator (NOT_COORDINATOR elsewhere,
//! as Kafka's group coordinator answers; admin clients find it with FindCoordinator) and
//! refused, as Kafka 4.2 refuses them ([`refusal`]), while the group has members
//! (NON_EMPTY_GROUP, "The group is not empty.") and for the id of a classic, consumer or
//! streams group (GROUP_ID_NOT_FOUND, "Group g is not a share group."). An unknown id is
//! GROUP_ID_NOT_FOUND for Delete; Alter makes it an empty share group (KAFKA-19662:
//! offsets may be set before a share group is first used), listed and described as Empty
//! from the record of its altered partitions on. Before `__consumer_offsets` exists no
//! group can be recorded and both are served (the state is the admin's).
//!
//! The group coordinator's record of the group's share partitions with state (record type
//! 15, `strom_share::group`) is kept with them: Alter records the partitions it
//! initialized; Delete deletes the state of the topics' recorded partitions (moving them to
//! deleting first, dropping that once deleted; a topic with none recorded is
//! UNKNOWN_TOPIC_OR_PARTITION, as Kafka); Describe without topics lists the recorded ones.
//! A group without a record (state written by a Strom before it kept one, or before
//! `__consumer_offsets` existed) is served as before it: every partition may have state.

use strom_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
};
use strom_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
use strom_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use strom_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsResponse, DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsResponse, ResponseKind, TopicName,
};
use strom_protocol::{ErrorCode, StrBytes};

use strom_share::group::{ShareCommand, ShareResponse};

use super::consumer_group_heartbeat::topics;
use super::share_call;
use crate::server::BrokerContext;

/// Why Alter/DeleteShareGroupOffsets of `group_id` is refused here, if it is, with the
/// message to answer: this broker is not the group's coordinator (or it is loading), the
/// group has members (NON_EMPTY_GROUP), the id is another type of group's, or (a delete
/// only) no share group has it (GROUP_ID_NOT_FOUND). An alter of an unknown id makes the
/// share group, as Kafka 4.2 ([`ShareCommand::OffsetsAdmin`]).
async fn refusal(
    context: &BrokerContext,
    group_id: &str,
    alter: bool,
) -> Option<(ErrorCode, Option<StrBytes>)> {
    // No `__consumer_offsets` yet: no group has ever had a member, none has one now, and
    // none can be recorded: the state is the admin's.
    context
        .metadata
        .image()
        .topic_by_name(crate::groups::OFFSETS_TOPIC)?;
    let command = ShareCommand::OffsetsAdmin {
        group_id: group_id.to_owned(),
        create: alter,
    };
    let refused = match share_call(context, group_id, command).await {
        Ok(ShareResponse::OffsetsAdmin(Ok(()))) => return None,
        Ok(ShareResponse::OffsetsAdmin(Err(e))) => (ErrorCode(e.code.code()), e.message),
        Ok(_) => (ErrorCode::COORDINATOR_NOT_AVAILABLE, String::new()),
        Err(code) => (ErrorCode(code.code()), String::new()),
    };
    let (code, message) = refused;
    // No message of its own (the coordinator is elsewhere or loading): the code says it.
    Some((
        code,
        (!message.is_empty()).then(|| StrBytes::from_string(message)),
    ))
}

/// The share partitions with initialized state `group_id`'s coordinator records, in the
/// order DescribeShareGroupOffsets lists them; `None` when it has no record for the group
/// (or cannot be asked: the caller then asks the share coordinators about every
/// partition).
async fn recorded_partitions(
    context: &BrokerContext,
    group_id: &str,
) -> Option<Vec<(uuid::Uuid, i32)>> {
    let command = ShareCommand::StatePartitions(group_id.to_owned());
    let Ok(ShareResponse::StatePartitions(Some(recorded))) =
        share_call(context, group_id, command).await
    else {
        return None;
    };
    let image = context.metadata.image();
    let mut out = Vec::new();
    for (topic, partitions) in recorded {
        let id = uuid::Uuid::from_bytes(topic.0);
        if let Some(t) = image.topic_by_id(id) {
            out.extend(
                partitions
                    .into_iter()
                    .filter(|p| t.partitions.contains_key(p))
                    .map(|p| (id, p)),
            );
        }
    }
    out.sort();
    Some(out)
}

/// The error message of a partition's or topic's error: what failed (clients print the
/// code's name beside it, so it is not repeated here); none for success. NON_EMPTY_GROUP
/// in Kafka's words.
fn message(code: ErrorCode, what: &str) -> Option<StrBytes> {
    if code == ErrorCode::NON_EMPTY_GROUP {
        return Some(StrBytes::from_static_str(NON_EMPTY_GROUP_MESSAGE));
    }
    (!code.is_none()).then(|| StrBytes::from_string(what.to_owned()))
}

/// Kafka's message for NON_EMPTY_GROUP (`Errors.NON_EMPTY_GROUP.message()`).
const NON_EMPTY_GROUP_MESSAGE: &str = "The group is not empty.";

pub(super) async fn describe(
    context: &BrokerContext,
    request: DescribeShareGroupOffsetsRequest,
) -> ResponseKind {
    let mut groups = Vec::with_capacity(request.groups.len());
    for group in &request.groups {
        let group_id = group.group_id.0.to_string();
        let image = context.metadata.image();
        // Named topics: each partition asked for (an unknown topic answers
        // UNKNOWN_TOPIC_OR_PARTITION per partition); none: every partition with state.
        let mut unknown = Vec::new();
        let wanted = group.topics.as_ref().map(|topics| {
            let mut wanted = Vec::new();
            for t in topics {
                match image.topic_by_name(&t.topic_name.0) {
                    Some(topic) => {
                        wanted.extend(t.partitions.iter().map(|p| (topic.topic_id, *p)));
                    }
                    None => unknown.push(t),
                }
            }
            wanted
        });
        let wanted = match wanted {
            Some(wanted) => Some(wanted),
            None => recorded_partitions(context, &group_id).await,
        };
        let described = context
            .shares
            .describe_offsets(context, &group_id, wanted)
            .await;
        let mut topics: Vec<DescribeShareGroupOffsetsResponseTopic> = Vec::new();
        for (topic_id, partition, result) in described {
            let name = image
                .topic_by_id(topic_id)
                .map(|t| t.name.clone())
                .unwrap_or_default();
            let (start_offset, leader_epoch, code) = match result {
                Ok((start, epoch)) => (start, epoch, ErrorCode(0)),
                Err(code) => (-1, -1, code),
            };
            let data = DescribeShareGroupOffsetsResponsePartition::default()
                .with_partition_index(partition)
                .with_start_offset(start_offset)
                .with_leader_epoch(leader_epoch)
                .with_error_code(code.code())
                .with_error_message(message(code, "reading the share state"));
            match topics.last_mut() {
                Some(last) if last.topic_id == topic_id => last.partitions.push(data),
                _ => topics.push(
                    DescribeShareGroupOffsetsResponseTopic::default()
                        .with_topic_name(TopicName(StrBytes::from_string(name)))
                        .with_topic_id(topic_id)
                        .with_partitions(vec![data]),
                ),
            }
        }
        for t in unknown {
            let code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION;
            topics.push(
                DescribeShareGroupOffsetsResponseTopic::default()
                    .with_topic_name(t.topic_name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                DescribeShareGroupOffsetsResponsePartition::default()
                                    .with_partition_index(*p)
                                    .with_start_offset(-1)
                                    .with_leader_epoch(-1)
                                    .with_error_code(code.code())
                                    .with_error_message(message(code, "no such topic"))
                            })
                            .collect(),
                    ),
            );
        }
        groups.push(
            DescribeShareGroupOffsetsResponseGroup::default()
                .with_group_id(group.group_id.clone())
                .with_topics(topics),
        );
    }
    ResponseKind::DescribeShareGroupOffsets(
        DescribeShareGroupOffsetsResponse::default().with_groups(groups),
    )
}

pub(super) async fn alter(
    context: &BrokerContext,
    request: AlterShareGroupOffsetsRequest,
) -> ResponseKind {
    let group_id = request.group_id.0.to_string();
    if let Some((code, message)) = refusal(context, &group_id, true).await {
        return ResponseKind::AlterShareGroupOffsets(
            AlterShareGroupOffsetsResponse::default()
                .with_error_code(code.code())
                .with_error_message(message),
        );
    }
    let image = context.metadata.image();
    let mut responses = Vec::with_capacity(request.topics.len());
    let mut initialized = strom_group::consumer::Assignment::new();
    for t in &request.topics {
        let topic = image.topic_by_name(&t.topic_name.0);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let code = match topic {
                None => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                Some(topic) if !topic.partitions.contains_key(&p.partition_index) => {
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                }
                Some(topic) => context
                    .shares
                    .alter_offset(
                        context,
                        &group_id,
                        topic.topic_id,
                        p.partition_index,
                        p.start_offset,
                    )
                    .await
                    .err()
                    .unwrap_or(ErrorCode(0)),
            };
            if code.is_none() {
                if let Some(topic) = topic {
                    initialized
                        .entry(strom_group::consumer::TopicId(*topic.topic_id.as_bytes()))
                        .or_default()
                        .insert(p.partition_index);
                }
            }
            partitions.push(
                AlterShareGroupOffsetsResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code.code())
                    .with_error_message(message(code, "altering the share-partition start offset")),
            );
        }
        responses.push(
            AlterShareGroupOffsetsResponseTopic::default()
                .with_topic_name(t.topic_name.clone())
                .with_topic_id(topic.map(|t| t.topic_id).unwrap_or_default())
                .with_partitions(partitions),
        );
    }
    if !initialized.is_empty() {
        // Recorded after the state is written: if this fails (the coordinator moved, or
        // `__consumer_offsets` does not exist yet), the group's next heartbeat finds the
        // state and records it then.
        let command = ShareCommand::Initialized {
            group_id: group_id.clone(),
            partitions: initialized,
            topics: topics(&image),
            job: false,
        };
        if !matches!(
            share_call(context, &group_id, command).await,
            Ok(ShareResponse::Done(Ok(())))
        ) {
            tracing::debug!(group = %group_id, "altered share offsets not recorded by the group coordinator yet");
        }
    }
    ResponseKind::AlterShareGroupOffsets(
        AlterShareGroupOffsetsResponse::default().with_responses(responses),
    )
}

pub(super) async fn delete(
    context: &BrokerContext,
    request: DeleteShareGroupOffsetsRequest,
) -> ResponseKind {
    let group_id = request.group_id.0.to_string();
    if let Some((code, message)) = refusal(context, &group_id, false).await {
        return ResponseKind::DeleteShareGroupOffsets(
            DeleteShareGroupOffsetsResponse::default()
                .with_error_code(code.code())
                .with_error_message(message),
        );
    }
    let image = context.metadata.image();
    let known: Vec<strom_group::consumer::TopicId> = request
        .topics
        .iter()
        .filter_map(|t| image.topic_by_name(&t.topic_name.0))
        .map(|t| strom_group::consumer::TopicId(*t.topic_id.as_bytes()))
        .collect();
    let command = ShareCommand::PrepareDeleteOffsets {
        group_id: group_id.clone(),
        topic_ids: known,
        topics: topics(&image),
    };
    let prepared = match share_call(context, &group_id, command).await {
        Ok(ShareResponse::PrepareDeleteOffsets(Ok(prepared))) => Some(prepared),
        Ok(ShareResponse::PrepareDeleteOffsets(Err(code))) => {
            let code = ErrorCode(code.code());
            return ResponseKind::DeleteShareGroupOffsets(
                DeleteShareGroupOffsetsResponse::default()
                    .with_error_code(code.code())
                    .with_error_message(message(code, "deleting share group offsets")),
            );
        }
        // No coordinator to record it (no `__consumer_offsets` yet): every partition.
        _ => None,
    };
    let mut responses = Vec::with_capacity(request.topics.len());
    let mut deleted = Vec::new();
    for t in &request.topics {
        let topic = image.topic_by_name(&t.topic_name.0);
        let code = match topic {
            None => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            Some(topic) => {
                let id = strom_group::consumer::TopicId(*topic.topic_id.as_bytes());
                let partitions = match &prepared {
                    Some(prepared) => prepared
                        .iter()
                        .find(|(t, _)| *t == id)
                        .and_then(|(_, p)| p.clone()),
                    None => Some(crate::share_group_jobs::all_partitions(
                        context,
                        topic.topic_id,
                    )),
                };
                match partitions {
                    None => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    Some(partitions) => {
                        let result = context
                            .shares
                            .delete_partitions(context, &group_id, topic.topic_id, &partitions)
                            .await;
                        if result.is_ok() {
                            deleted.push(id);
                        }
                        result.err().unwrap_or(ErrorCode(0))
                    }
                }
            }
        };
        let what = if code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION && topic.is_some() {
            "there is no offset information to delete"
        } else {
            "deleting the share state"
        };
        responses.push(
            DeleteShareGroupOffsetsResponseTopic::default()
                .with_topic_name(t.topic_name.clone())
                .with_topic_id(topic.map(|t| t.topic_id).unwrap_or_default())
                .with_error_code(code.code())
                .with_error_message(message(code, what)),
        );
    }
    if prepared.is_some() && !deleted.is_empty() {
        let command = ShareCommand::DeletedOffsets {
            group_id: group_id.clone(),
            topic_ids: deleted,
        };
        if !matches!(
            share_call(context, &group_id, command).await,
            Ok(ShareResponse::Done(Ok(())))
        ) {
            // Left deleting: the next DeleteGroups or DeleteShareGroupOffsets deletes again.
            tracing::debug!(group = %group_id, "deleted share offsets not recorded by the group coordinator");
        }
    }
    ResponseKind::DeleteShareGroupOffsets(
        DeleteShareGroupOffsetsResponse::default().with_responses(responses),
    )
}
