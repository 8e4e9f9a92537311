//! DescribeTopicPartitions (KIP-966, used by kafka-topics.sh): topics with their partitions
//! (leader, replicas, ISR and offline replicas as Kafka's metadata cache reports them), in
//! name order, paginated by `response_partition_limit` and a cursor. An empty topic list
//! means every topic.

use strom_meta::{MetadataImage, TopicIdPartition, TopicImage, NO_LEADER};
use strom_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use strom_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, ResponseKind,
};
use strom_protocol::ErrorCode;

use super::{broker_ids, liveness, topic_name};
use crate::server::BrokerContext;

/// Kafka's `max.request.partition.size.limit` default: the most partitions per answer.
const PARTITIONS_PER_RESPONSE_MAX: usize = 2000;

pub(super) async fn handle(
    context: &BrokerContext,
    request: DescribeTopicPartitionsRequest,
    _version: i16,
) -> ResponseKind {
    let image = context.metadata.image();
    let mut names: Vec<String> = if request.topics.is_empty() {
        image.topic_names().map(str::to_string).collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    names.sort();
    names.dedup();
    let (start_topic, start_partition) = request.cursor.as_ref().map_or((String::new(), 0), |c| {
        (c.topic_name.0.to_string(), c.partition_index)
    });
    let limit = usize::try_from(request.response_partition_limit)
        .unwrap_or(PARTITIONS_PER_RESPONSE_MAX)
        .clamp(1, PARTITIONS_PER_RESPONSE_MAX);
    let mut budget = limit;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names.into_iter().filter(|n| *n >= start_topic) {
        let Some(topic) = image.topic_by_name(&name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code())
                    .with_name(Some(topic_name(name))),
            );
            continue;
        };
        let first = if name == start_topic {
            start_partition
        } else {
            0
        };
        let (response, cursor) = describe(
            &image,
            &context.advertised_here().name,
            topic,
            first,
            &mut budget,
        );
        topics.push(response);
        if let Some(partition_index) = cursor {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name(name))
                    .with_partition_index(partition_index),
            );
            break;
        }
    }
    ResponseKind::DescribeTopicPartitions(
        DescribeTopicPartitionsResponse::default()
            .with_topics(topics)
            .with_next_cursor(next_cursor),
    )
}

/// The topic's partitions from `first` within `budget`; the partition to resume at if the
/// budget ran out.
fn describe(
    image: &MetadataImage,
    listener: &str,
    topic: &TopicImage,
    first: i32,
    budget: &mut usize,
) -> (DescribeTopicPartitionsResponseTopic, Option<i32>) {
    let mut partitions = Vec::new();
    let mut cursor = None;
    for (index, p) in topic.partitions.range(first..) {
        if *budget == 0 {
            cursor = Some(*index);
            break;
        }
        *budget -= 1;
        let tp = TopicIdPartition {
            topic_id: topic.topic_id,
            partition: *index,
        };
        let leader = if p.has_leader() && liveness::leader_reachable(image, p.leader, listener) {
            p.leader
        } else {
            NO_LEADER
        };
        partitions.push(
            DescribeTopicPartitionsResponsePartition::default()
                .with_partition_index(*index)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(broker_ids(&p.replicas))
                .with_isr_nodes(broker_ids(&p.isr))
                .with_offline_replicas(broker_ids(&liveness::offline(
                    image,
                    tp,
                    &p.replicas,
                    listener,
                )))
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new())),
        );
    }
    let response = DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(topic_name(topic.name.clone())))
        .with_topic_id(topic.topic_id)
        .with_is_internal(topic.name == crate::groups::OFFSETS_TOPIC)
        .with_partitions(partitions);
    (response, cursor)
}
