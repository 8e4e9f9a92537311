//! TxnOffsetCommit: a transactional producer's offsets, sent to the group's coordinator,
//! which writes them as records of the producer's transaction (a transactional batch of its
//! producer id and epoch in `__consumer_offsets`) and stages them until the transaction's
//! marker commits or drops them (`GroupHandle::on_txn_marker`). v3+ carries the consumer's
//! generation and member id (KIP-447), checked as an OffsetCommit's are. As for
//! OffsetCommit, a partition that does not exist is UNKNOWN_TOPIC_OR_PARTITION. v5+ comes
//! from a transaction version 2 producer (KIP-890 part 2), which sends no AddOffsetsToTxn:
//! the group's `__consumer_offsets` partition is added to its transaction first (so the
//! transaction's marker reaches the staged offsets), and a refusal answers every partition.
//! `acl` adds the TRANSACTIONAL_ID WRITE and GROUP READ checks here.

use std::collections::{HashMap, HashSet};

use strom_group::{Command, CommitOffset, ErrorCode, Response, TxnOffsetCommit};
use strom_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use strom_protocol::messages::{ResponseKind, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use strom_protocol::ErrorCode as KafkaError;

use super::{group_call, opt_string, resolve, topic_name};
use crate::server::BrokerContext;

/// The first version that knows PRODUCER_FENCED.
const PRODUCER_FENCED_MIN_VERSION: i16 = 3;
/// The first version of transaction version 2 producers.
const IMPLICIT_ADD_MIN_VERSION: i16 = 5;

pub(super) async fn handle(
    context: &BrokerContext,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> ResponseKind {
    let group_id = request.group_id.0.to_string();
    let image = context.metadata.image();
    let mut requested: Vec<(String, Vec<i32>)> = Vec::with_capacity(request.topics.len());
    let mut unknown: HashSet<(String, i32)> = HashSet::new();
    let mut offsets = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            partitions.push(p.partition_index);
            if resolve(&image, &name, p.partition_index).is_none() {
                unknown.insert((name.clone(), p.partition_index));
                continue;
            }
            offsets.push(CommitOffset {
                topic: name.clone(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p
                    .committed_metadata
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            });
        }
        requested.push((name, partitions));
    }
    let added = if version >= IMPLICIT_ADD_MIN_VERSION && !offsets.is_empty() {
        let partition = crate::groups::partition_for(&image, &group_id);
        let tp =
            strom_txn::TopicPartition::new(crate::groups::OFFSETS_TOPIC.to_string(), partition);
        crate::txns::verify_partition(
            context,
            &request.transactional_id.0,
            request.producer_id.0,
            request.producer_epoch,
            tp,
            true,
            true,
        )
        .await
    } else {
        KafkaError::NONE
    };
    let reply = if offsets.is_empty() {
        Ok(Response::TxnOffsetCommit(Vec::new()))
    } else if added != KafkaError::NONE {
        // Nothing is written: every partition gets the coordinator's refusal below.
        Ok(Response::TxnOffsetCommit(Vec::new()))
    } else {
        let command = Command::TxnOffsetCommit(TxnOffsetCommit {
            group_id: group_id.clone(),
            producer_id: request.producer_id.0,
            producer_epoch: request.producer_epoch,
            generation_id: request.generation_id,
            member_id: request.member_id.to_string(),
            group_instance_id: opt_string(request.group_instance_id),
            offsets,
        });
        group_call(context, &group_id, command).await
    };
    let (results, whole) = match reply {
        Ok(Response::TxnOffsetCommit(results)) => {
            let whole = results
                .iter()
                .find(|r| r.partition < 0 && r.topic.is_empty())
                .map(|r| r.error);
            let by_partition: HashMap<(String, i32), ErrorCode> = results
                .into_iter()
                .map(|r| ((r.topic, r.partition), r.error))
                .collect();
            (by_partition, whole)
        }
        Ok(_) => (HashMap::new(), Some(ErrorCode::CoordinatorNotAvailable)),
        Err(code) => (HashMap::new(), Some(code)),
    };
    let topics = requested
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|index| {
                    let code = if unknown.contains(&(name.clone(), index)) {
                        KafkaError::UNKNOWN_TOPIC_OR_PARTITION.code()
                    } else if added != KafkaError::NONE {
                        added.code()
                    } else {
                        let error = whole
                            .or_else(|| results.get(&(name.clone(), index)).copied())
                            .unwrap_or(ErrorCode::None);
                        if error == ErrorCode::ProducerFenced
                            && version < PRODUCER_FENCED_MIN_VERSION
                        {
                            KafkaError::INVALID_PRODUCER_EPOCH.code()
                        } else {
                            error.code()
                        }
                    };
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic_name(name))
                .with_partitions(partitions)
        })
        .collect();
    ResponseKind::TxnOffsetCommit(TxnOffsetCommitResponse::default().with_topics(topics))
}
