//! Error shapes for the data path: Produce, Fetch, ListOffsets, Metadata and friends.

#[allow(clippy::wildcard_imports)]
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::UNKNOWN;

pub(super) fn produce(request: &ProduceRequest, code: i16) -> ProduceResponse {
    let responses = request
        .topic_data
        .iter()
        .map(|topic| {
            let partitions = topic
                .partition_data
                .iter()
                .map(|partition| {
                    let mut response = produce_response::PartitionProduceResponse::default();
                    response.index = partition.index;
                    response.error_code = code;
                    response.base_offset = UNKNOWN;
                    response.log_append_time_ms = UNKNOWN;
                    response.log_start_offset = UNKNOWN;
                    response
                })
                .collect();
            let mut response = produce_response::TopicProduceResponse::default();
            response.name = topic.name.clone();
            response.topic_id = topic.topic_id;
            response.partition_responses = partitions;
            response
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

/// From version 13 a Fetch error is the top-level code alone; before, every partition
/// carries it as well (clients of those versions read it there).
const FETCH_TOP_LEVEL_ERROR_ONLY_VERSION: i16 = 13;

pub(super) fn fetch(request: &FetchRequest, api_version: i16, code: i16) -> FetchResponse {
    let response = FetchResponse::default()
        .with_error_code(code)
        .with_session_id(request.session_id);
    if api_version >= FETCH_TOP_LEVEL_ERROR_ONLY_VERSION {
        return response;
    }
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let mut data = fetch_response::PartitionData::default();
                    data.partition_index = partition.partition;
                    data.error_code = code;
                    data.high_watermark = UNKNOWN;
                    data
                })
                .collect();
            let mut response = fetch_response::FetchableTopicResponse::default();
            response.topic = topic.topic.clone();
            response.topic_id = topic.topic_id;
            response.partitions = partitions;
            response
        })
        .collect();
    response.with_responses(topics)
}

pub(super) fn list_offsets(request: &ListOffsetsRequest, code: i16) -> ListOffsetsResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let mut response =
                        list_offsets_response::ListOffsetsPartitionResponse::default();
                    response.partition_index = partition.partition_index;
                    response.error_code = code;
                    response.timestamp = UNKNOWN;
                    response.offset = UNKNOWN;
                    response.leader_epoch = -1;
                    response
                })
                .collect();
            let mut response = list_offsets_response::ListOffsetsTopicResponse::default();
            response.name = topic.name.clone();
            response.partitions = partitions;
            response
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// Metadata responses name topics with a nullable string from version 12; requests may
/// already address a topic by id alone (null name) from version 10.
const METADATA_NULLABLE_TOPIC_NAME_VERSION: i16 = 12;

pub(super) fn metadata(request: &MetadataRequest, api_version: i16, code: i16) -> MetadataResponse {
    let topics = request
        .topics
        .iter()
        .flatten()
        .map(|topic| {
            let mut response = metadata_response::MetadataResponseTopic::default();
            response.error_code = code;
            response.name = match &topic.name {
                None if api_version < METADATA_NULLABLE_TOPIC_NAME_VERSION => {
                    Some(TopicName(StrBytes::new()))
                }
                name => name.clone(),
            };
            response.topic_id = topic.topic_id;
            response
        })
        .collect();
    MetadataResponse::default()
        .with_error_code(code)
        .with_topics(topics)
}

pub(super) fn delete_records(request: &DeleteRecordsRequest, code: i16) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    delete_records_response::DeleteRecordsPartitionResult::default()
                        .with_partition_index(partition.partition_index)
                        .with_low_watermark(UNKNOWN)
                        .with_error_code(code)
                })
                .collect();
            delete_records_response::DeleteRecordsTopicResult::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

pub(super) fn offset_for_leader_epoch(
    request: &OffsetForLeaderEpochRequest,
    code: i16,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    offset_for_leader_epoch_response::EpochEndOffset::default()
                        .with_partition(partition.partition)
                        .with_error_code(code)
                        .with_leader_epoch(-1)
                        .with_end_offset(UNKNOWN)
                })
                .collect();
            offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

pub(super) fn describe_topic_partitions(
    request: &DescribeTopicPartitionsRequest,
    code: i16,
) -> DescribeTopicPartitionsResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic.name.clone()))
                .with_error_code(code)
        })
        .collect();
    DescribeTopicPartitionsResponse::default().with_topics(topics)
}
