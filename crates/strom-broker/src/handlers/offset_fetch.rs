//! OffsetFetch (v1-v9, by topic name): one group before v8, a batch of groups from v8
//! (KIP-709). Null topics (v2+) fetch every committed offset of the group.

use strom_group::{Command, ErrorCode, FetchedOffset, OffsetFetch, Response};
use strom_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use strom_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, ResponseKind};

use super::{group_call, opt_string, str_bytes, topic_name};
use crate::server::BrokerContext;

/// The first version with a batch of groups.
const GROUPS_MIN_VERSION: i16 = 8;
/// The first version with a top-level error code (older ones repeat it per partition).
const ERROR_CODE_MIN_VERSION: i16 = 2;

pub(super) async fn handle(
    context: &BrokerContext,
    request: OffsetFetchRequest,
    version: i16,
) -> ResponseKind {
    if version >= GROUPS_MIN_VERSION {
        let mut groups = Vec::with_capacity(request.groups.len());
        for group in request.groups {
            let partitions = group.topics.map(|topics| {
                topics
                    .into_iter()
                    .flat_map(|t| {
                        let name = t.name.0.to_string();
                        t.partition_indexes
                            .into_iter()
                            .map(move |p| (name.clone(), p))
                    })
                    .collect()
            });
            let member = Member {
                id: opt_string(group.member_id),
                epoch: group.member_epoch,
            };
            let (error, fetched) = fetch(
                context,
                group.group_id.0.to_string(),
                partitions,
                request.require_stable,
                member,
            )
            .await;
            groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(group.group_id)
                    .with_error_code(error.code())
                    .with_topics(batched_topics(fetched)),
            );
        }
        return ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_groups(groups));
    }
    let partitions = request.topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.partition_indexes
                    .into_iter()
                    .map(move |p| (name.clone(), p))
            })
            .collect::<Vec<_>>()
    });
    let GroupId(group_id) = request.group_id;
    let (error, mut fetched) = fetch(
        context,
        group_id.to_string(),
        partitions.clone(),
        request.require_stable,
        Member {
            id: None,
            epoch: -1,
        },
    )
    .await;
    let mut response = OffsetFetchResponse::default();
    if version >= ERROR_CODE_MIN_VERSION {
        response = response.with_error_code(error.code());
    } else if error != ErrorCode::None {
        // v0-v1 have no top-level error: every requested partition carries it.
        fetched = partitions
            .unwrap_or_default()
            .into_iter()
            .map(|(topic, partition)| FetchedOffset {
                topic,
                partition,
                offset: -1,
                leader_epoch: -1,
                metadata: String::new(),
                error,
            })
            .collect();
    }
    ResponseKind::OffsetFetch(response.with_topics(single_topics(fetched)))
}

/// The fetching member (OffsetFetch v9+, KIP-848 consumer groups); none before v9.
struct Member {
    id: Option<String>,
    epoch: i32,
}

async fn fetch(
    context: &BrokerContext,
    group_id: String,
    partitions: Option<Vec<(String, i32)>>,
    require_stable: bool,
    member: Member,
) -> (ErrorCode, Vec<FetchedOffset>) {
    let command = Command::OffsetFetch(OffsetFetch {
        group_id: group_id.clone(),
        partitions,
        require_stable,
        member_id: member.id,
        member_epoch: member.epoch,
    });
    match group_call(context, &group_id, command).await {
        Ok(Response::OffsetFetch(r)) => (r.error, r.partitions),
        Ok(_) => (ErrorCode::CoordinatorNotAvailable, Vec::new()),
        Err(code) => (code, Vec::new()),
    }
}

/// Groups fetched offsets by topic, keeping the first-seen topic order.
fn by_topic(fetched: Vec<FetchedOffset>) -> Vec<(String, Vec<FetchedOffset>)> {
    let mut topics: Vec<(String, Vec<FetchedOffset>)> = Vec::new();
    for f in fetched {
        match topics.iter_mut().find(|(name, _)| *name == f.topic) {
            Some((_, list)) => list.push(f),
            None => topics.push((f.topic.clone(), vec![f])),
        }
    }
    topics
}

fn single_topics(fetched: Vec<FetchedOffset>) -> Vec<OffsetFetchResponseTopic> {
    by_topic(fetched)
        .into_iter()
        .map(|(name, list)| {
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(name))
                .with_partitions(
                    list.into_iter()
                        .map(|f| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(f.partition)
                                .with_committed_offset(f.offset)
                                .with_committed_leader_epoch(f.leader_epoch)
                                .with_metadata(Some(str_bytes(f.metadata)))
                                .with_error_code(f.error.code())
                        })
                        .collect(),
                )
        })
        .collect()
}

fn batched_topics(fetched: Vec<FetchedOffset>) -> Vec<OffsetFetchResponseTopics> {
    by_topic(fetched)
        .into_iter()
        .map(|(name, list)| {
            OffsetFetchResponseTopics::default()
                .with_name(topic_name(name))
                .with_partitions(
                    list.into_iter()
                        .map(|f| {
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(f.partition)
                                .with_committed_offset(f.offset)
                                .with_committed_leader_epoch(f.leader_epoch)
                                .with_metadata(Some(str_bytes(f.metadata)))
                                .with_error_code(f.error.code())
                        })
                        .collect(),
                )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::protocol::{Decodable, Encodable};
    use strom_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;

    use super::*;

    fn round_trip(request: &OffsetFetchRequest, version: i16) -> OffsetFetchRequest {
        let mut buf = BytesMut::new();
        request.encode(&mut buf, version).unwrap();
        OffsetFetchRequest::decode(&mut buf.freeze(), version).unwrap()
    }

    /// KIP-447's `require_stable` (v7+) reaches the handler; with no transactional offsets
    /// in Strom it never changes the answer (see `strom_group::OffsetFetch`).
    #[test]
    fn require_stable_is_decoded_from_v7() {
        let single = OffsetFetchRequest::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_require_stable(true);
        assert!(round_trip(&single, 7).require_stable);
        let batched = OffsetFetchRequest::default()
            .with_groups(vec![
                OffsetFetchRequestGroup::default().with_group_id(GroupId(str_bytes("g")))
            ])
            .with_require_stable(true);
        assert!(round_trip(&batched, 8).require_stable);
        assert!(round_trip(&batched, 9).require_stable);
    }
}
