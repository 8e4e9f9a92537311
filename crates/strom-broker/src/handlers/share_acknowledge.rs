//! ShareAcknowledge (KIP-932, v1): a share consumer's acknowledgements outside a fetch.
//! The session epoch must be the session's next one (0 is INVALID_SHARE_SESSION_EPOCH);
//! -1 applies the acknowledgements, then closes the session and releases the member's
//! acquired records. Each partition's answer comes after its new state is durable
//! (`share_partitions.rs`). A partition of a topic the principal may not READ is
//! TOPIC_AUTHORIZATION_FAILED and its acknowledgements are not applied.

use strom_protocol::messages::share_acknowledge_response::{
    LeaderIdAndEpoch, PartitionData, ShareAcknowledgeTopicResponse,
};
use strom_protocol::messages::{ResponseKind, ShareAcknowledgeRequest, ShareAcknowledgeResponse};
use strom_protocol::{ErrorCode, StrBytes};

use strom_protocol::messages::ApiKey;

use super::share_fetch::{ack_batches, preamble, topic_readable, Preamble};
use crate::principal::Session;
use crate::server::BrokerContext;

fn top_error(code: ErrorCode) -> ResponseKind {
    ResponseKind::ShareAcknowledge(ShareAcknowledgeResponse::default().with_error_code(code.code()))
}

pub(super) async fn handle(
    context: &BrokerContext,
    session: &Session,
    request: ShareAcknowledgeRequest,
    _version: i16,
) -> ResponseKind {
    let Preamble {
        group_id,
        member_id,
        connection,
    } = match preamble(
        session,
        request.group_id.as_ref(),
        request.member_id.as_ref(),
    ) {
        Ok(preamble) => preamble,
        Err(code) => return top_error(code),
    };
    let closes = match context.shares.acknowledge_session(
        Some(&connection),
        &group_id,
        &member_id,
        request.share_session_epoch,
    ) {
        Ok(closes) => closes,
        Err(code) => return top_error(code),
    };
    let image = context.metadata.image();
    let mut responses = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let readable = topic_readable(context, session, ApiKey::ShareAcknowledge, topic.topic_id);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let batches = ack_batches(p.acknowledgement_batches.iter().map(|b| {
                (
                    b.first_offset,
                    b.last_offset,
                    b.acknowledge_types.as_slice(),
                )
            }));
            let code = match batches {
                _ if !readable => ErrorCode::TOPIC_AUTHORIZATION_FAILED,
                None => ErrorCode::INVALID_REQUEST,
                Some(batches) => context
                    .shares
                    .acknowledge(
                        context,
                        &group_id,
                        &member_id,
                        topic.topic_id,
                        p.partition_index,
                        &batches,
                    )
                    .await
                    .err()
                    .unwrap_or(ErrorCode(0)),
            };
            let leader = image
                .partition(topic.topic_id, p.partition_index)
                .map_or((-1, -1), |s| (s.leader, s.leader_epoch));
            let message = (!code.is_none()).then(|| {
                StrBytes::from_string(format!(
                    "acknowledging {}-{} for member {member_id} of group {group_id}: {code}",
                    topic.topic_id, p.partition_index
                ))
            });
            partitions.push(
                PartitionData::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code.code())
                    .with_error_message(message)
                    .with_current_leader(
                        LeaderIdAndEpoch::default()
                            .with_leader_id(leader.0)
                            .with_leader_epoch(leader.1),
                    ),
            );
        }
        responses.push(
            ShareAcknowledgeTopicResponse::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    if closes {
        context.shares.release_member(&group_id, &member_id).await;
    }
    ResponseKind::ShareAcknowledge(ShareAcknowledgeResponse::default().with_responses(responses))
}
