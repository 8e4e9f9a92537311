//! FindCoordinator: a group's coordinator is the leader of the group's `__consumer_offsets`
//! partition, as Kafka answers it. The internal topic is created on the first lookup (with
//! `offsets.topic.replication.factor` replicas; until that many brokers are alive the
//! answer is COORDINATOR_NOT_AVAILABLE, as in Kafka). A partition without a live leader is
//! COORDINATOR_NOT_AVAILABLE too. When this broker is the one named, the answer waits (a
//! bounded time) until it has loaded the partition's groups and is COORDINATOR_NOT_AVAILABLE
//! (retriable) if they are still loading, so that a client's first JoinGroup is not met with
//! COORDINATOR_LOAD_IN_PROGRESS, which kafkajs treats as fatal.
//! A transactional id's coordinator is, the same way, the leader of its
//! `__transaction_state` partition (created on the first lookup, see `txns.rs`).
//! v4+ batches keys (KIP-699). Advertising FindCoordinator also makes librdkafka enable LZ4.

use std::time::Duration;

use strom_meta::MetadataImage;
use strom_protocol::messages::find_coordinator_response::Coordinator;
use strom_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, ResponseKind,
};
use strom_protocol::{ErrorCode, StrBytes};

use super::str_bytes;
use crate::groups::{partition_for, OFFSETS_TOPIC};
use crate::server::BrokerContext;

/// The first version that batches keys (KIP-699).
const BATCHED_MIN_VERSION: i16 = 4;
/// The first version with an error message.
const MESSAGE_MIN_VERSION: i16 = 1;
/// `key_type` of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;
/// `key_type` of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;
/// `key_type` of a share partition's state (`group:topicId:partition`, KIP-932).
const KEY_TYPE_SHARE: i8 = 2;
/// How long an answer naming this broker waits for the partition's groups to load.
const LOAD_WAIT_MS: u64 = 3_000;

/// One key's answer: a coordinator, or an error code and message.
enum Answer {
    Node { id: i32, host: String, port: i32 },
    Error(ErrorCode, &'static str),
}

pub(super) async fn handle(
    context: &BrokerContext,
    request: FindCoordinatorRequest,
    version: i16,
) -> ResponseKind {
    let keys: Vec<StrBytes> = if version >= BATCHED_MIN_VERSION {
        request.coordinator_keys.clone()
    } else {
        vec![request.key.clone()]
    };
    let answers = answers(context, request.key_type, &keys, version).await;
    let response = if version >= BATCHED_MIN_VERSION {
        let coordinators = keys
            .into_iter()
            .zip(answers)
            .map(|(key, answer)| {
                let (code, message, node, host, port) = fields(answer);
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(node)
                    .with_host(host)
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let answer = answers
            .into_iter()
            .next()
            .unwrap_or(Answer::Error(ErrorCode::INVALID_REQUEST, "no key"));
        let (code, message, node, host, port) = fields(answer);
        let response = FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_node_id(node)
            .with_host(host)
            .with_port(port);
        if version >= MESSAGE_MIN_VERSION {
            response.with_error_message(message)
        } else {
            response
        }
    };
    ResponseKind::FindCoordinator(response)
}

async fn answers(
    context: &BrokerContext,
    key_type: i8,
    keys: &[StrBytes],
    version: i16,
) -> Vec<Answer> {
    if key_type == KEY_TYPE_TRANSACTION {
        return transaction_answers(context, keys, version).await;
    }
    if key_type == KEY_TYPE_SHARE {
        return share_answers(context, keys).await;
    }
    if key_type != KEY_TYPE_GROUP {
        return keys
            .iter()
            .map(|_| Answer::Error(ErrorCode::INVALID_REQUEST, "unknown coordinator key type"))
            .collect();
    }
    if !crate::groups::ensure_offsets_topic(context).await {
        return keys
            .iter()
            .map(|_| {
                Answer::Error(
                    ErrorCode::COORDINATOR_NOT_AVAILABLE,
                    "the offsets topic is not available yet",
                )
            })
            .collect();
    }
    let image = context.metadata.image();
    let mut answers: Vec<Answer> = keys
        .iter()
        .map(|key| {
            // Kafka answers an empty group id with INVALID_REQUEST per key.
            if key.is_empty() && version >= BATCHED_MIN_VERSION {
                return Answer::Error(ErrorCode::INVALID_REQUEST, "empty group id");
            }
            coordinator_of(context, &image, OFFSETS_TOPIC, partition_for(&image, key))
        })
        .collect();
    let mine: Vec<i32> = keys
        .iter()
        .zip(&answers)
        .filter(|(_, a)| matches!(a, Answer::Node { id, .. } if *id == context.config.node_id))
        .map(|(key, _)| partition_for(&image, key))
        .collect();
    if !mine.is_empty()
        && !context
            .groups
            .wait_loaded(&mine, Duration::from_millis(LOAD_WAIT_MS))
            .await
    {
        // Kafka names a coordinator only once its partition is loaded: until then the
        // client retries FindCoordinator (retriable everywhere) instead of meeting
        // COORDINATOR_LOAD_IN_PROGRESS on its JoinGroup, which kafkajs treats as fatal.
        for (key, answer) in keys.iter().zip(answers.iter_mut()) {
            let here = matches!(answer, Answer::Node { id, .. } if *id == context.config.node_id);
            if here && !context.groups.is_loaded(partition_for(&image, key)) {
                *answer = Answer::Error(
                    ErrorCode::COORDINATOR_NOT_AVAILABLE,
                    "the group coordinator is still loading its partition",
                );
            }
        }
    }
    answers
}

/// FindCoordinator(TRANSACTION): the leader of each id's `__transaction_state` partition,
/// named only once its transactions are loaded (as for groups).
/// `acl` adds the TRANSACTIONAL_ID DESCRIBE check here (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
async fn transaction_answers(
    context: &BrokerContext,
    keys: &[StrBytes],
    version: i16,
) -> Vec<Answer> {
    if !crate::txns::ensure_txn_topic(context).await {
        return keys
            .iter()
            .map(|_| {
                Answer::Error(
                    ErrorCode::COORDINATOR_NOT_AVAILABLE,
                    "the transaction state topic is not available yet",
                )
            })
            .collect();
    }
    let image = context.metadata.image();
    let txn_partition = |key: &str| crate::txns::partition_for(&image, key);
    let mut answers: Vec<Answer> = keys
        .iter()
        .map(|key| {
            if key.is_empty() && version >= BATCHED_MIN_VERSION {
                return Answer::Error(ErrorCode::INVALID_REQUEST, "empty transactional id");
            }
            coordinator_of(context, &image, crate::txns::TXN_TOPIC, txn_partition(key))
        })
        .collect();
    let here = |a: &Answer| matches!(a, Answer::Node { id, .. } if *id == context.config.node_id);
    let mine: Vec<i32> = keys
        .iter()
        .zip(&answers)
        .filter(|(_, a)| here(a))
        .map(|(key, _)| txn_partition(key))
        .collect();
    if !mine.is_empty()
        && !context
            .txns
            .wait_loaded(&mine, Duration::from_millis(LOAD_WAIT_MS))
            .await
    {
        for (key, answer) in keys.iter().zip(answers.iter_mut()) {
            if here(answer) && !context.txns.is_loaded(txn_partition(key)) {
                *answer = Answer::Error(
                    ErrorCode::COORDINATOR_NOT_AVAILABLE,
                    "the transaction coordinator is still loading its partition",
                );
            }
        }
    }
    answers
}

/// FindCoordinator(SHARE): the leader of each share partition key's `__share_group_state`
/// partition (created on the first lookup). Its coordinator loads lazily on the first call
/// (`share_state.rs`), so there is nothing to wait for here.
async fn share_answers(context: &BrokerContext, keys: &[StrBytes]) -> Vec<Answer> {
    if !crate::share_state::ensure_state_topic(context).await {
        return keys
            .iter()
            .map(|_| {
                Answer::Error(
                    ErrorCode::COORDINATOR_NOT_AVAILABLE,
                    "the share state topic is not available yet",
                )
            })
            .collect();
    }
    let image = context.metadata.image();
    keys.iter()
        .map(|key| {
            // Kafka's SharePartitionKey: group:topicId:partition, the partition a number.
            let parts: Vec<&str> = key.rsplitn(3, ':').collect();
            let valid = parts.len() == 3
                && parts[0].parse::<i32>().is_ok_and(|p| p >= 0)
                && !parts[1].is_empty()
                && !parts[2].is_empty();
            if !valid {
                return Answer::Error(
                    ErrorCode::INVALID_REQUEST,
                    "a share coordinator key is group:topicId:partition",
                );
            }
            let partition = crate::share_state::partition_for(context, key);
            coordinator_of(
                context,
                &image,
                crate::share_state::SHARE_STATE_TOPIC,
                partition,
            )
        })
        .collect()
}

/// The live leader of `partition` of the internal `topic`, at its endpoint for this listener.
fn coordinator_of(
    context: &BrokerContext,
    image: &MetadataImage,
    topic: &str,
    partition: i32,
) -> Answer {
    let unavailable = Answer::Error(
        ErrorCode::COORDINATOR_NOT_AVAILABLE,
        "The coordinator is not available.",
    );
    let Some(topic) = image.topic_by_name(topic) else {
        return unavailable;
    };
    let Some(leader) = topic.partitions.get(&partition).map(|p| p.leader) else {
        return unavailable;
    };
    if leader == context.config.node_id {
        let me = context.advertised_here();
        return Answer::Node {
            id: leader,
            host: me.host.clone(),
            port: i32::from(me.port),
        };
    }
    let endpoint = image.broker(leader).filter(|b| !b.fenced).and_then(|b| {
        b.endpoints
            .iter()
            .find(|e| e.listener_name == context.advertised_here().name)
    });
    match endpoint {
        Some(e) => Answer::Node {
            id: leader,
            host: e.host.clone(),
            port: i32::from(e.port),
        },
        None => unavailable,
    }
}

fn fields(answer: Answer) -> (i16, Option<StrBytes>, BrokerId, StrBytes, i32) {
    match answer {
        Answer::Error(code, message) => (
            code.code(),
            Some(str_bytes(message)),
            BrokerId(-1),
            str_bytes(""),
            -1,
        ),
        Answer::Node { id, host, port } => (0, None, BrokerId(id), str_bytes(host), port),
    }
}
