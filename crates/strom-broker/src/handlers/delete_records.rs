//! DeleteRecords: moves a partition's log start offset forward (`-1` means the high
//! watermark); whole segments below it are deleted by the log, and fetches below it get
//! OFFSET_OUT_OF_RANGE. An offset past the high watermark is OFFSET_OUT_OF_RANGE.

use std::sync::Arc;

use strom_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use strom_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, ResponseKind};
use strom_protocol::ErrorCode;

use super::resolve;
use crate::metadata::now_ms;
use crate::partition::Partition;
use crate::server::BrokerContext;

pub(super) async fn handle(
    context: &BrokerContext,
    request: DeleteRecordsRequest,
    _version: i16,
) -> ResponseKind {
    let image = context.metadata.image();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let target = resolve(&image, &topic.name.0, p.partition_index)
                .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
                .and_then(|tp| super::local_replica(context, tp));
            let outcome = match target {
                Ok(partition) => {
                    let offset = p.offset;
                    tokio::task::spawn_blocking(move || delete_before(&partition, offset))
                        .await
                        .unwrap_or(Err(ErrorCode::UNKNOWN_SERVER_ERROR))
                }
                Err(code) => Err(code),
            };
            let result =
                DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            partitions.push(match outcome {
                Ok(low_watermark) => result.with_low_watermark(low_watermark),
                Err(code) => result.with_low_watermark(-1).with_error_code(code.code()),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    ResponseKind::DeleteRecords(DeleteRecordsResponse::default().with_topics(topics))
}

fn delete_before(partition: &Arc<Partition>, offset: i64) -> Result<i64, ErrorCode> {
    let log = &partition.log;
    let high_watermark = log.high_watermark();
    let offset = if offset == -1 { high_watermark } else { offset };
    if offset < 0 || offset > high_watermark {
        return Err(ErrorCode::OFFSET_OUT_OF_RANGE);
    }
    log.delete_records_before(offset, now_ms())
        .map_err(|error| ErrorCode(error.kafka_error_code()))
}
