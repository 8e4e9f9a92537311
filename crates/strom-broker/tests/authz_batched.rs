//! Batched APIs with an authorizer answer each item, as Kafka's `KafkaApis` does: with a
//! DENY ACL on the topic `no`, the group `no-g` and the transactional id `no-t` (everything
//! else open through `allow.everyone.if.no.acl.found`), every request below names one
//! allowed and one denied item; the denied one gets its authorization error and the allowed
//! one is served.

mod common;

use common::{create_topic, s, Client, TestBroker};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ConsumerGroupHeartbeatRequest, CreateAclsRequest,
    DescribeProducersRequest, DescribeTransactionsRequest, FindCoordinatorRequest, GroupId,
    OffsetCommitRequest, OffsetDeleteRequest, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest,
};
use strom_broker::authz::AuthzConfig;
use strom_meta::acl::AuthorizerSettings;

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const TXN_DENIED: i16 = 53;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

fn topic(name: &str) -> TopicName {
    TopicName(s(name))
}

/// DENY everything to User:ANONYMOUS on one literal resource (Kafka's codes: TOPIC 2,
/// GROUP 3, TRANSACTIONAL_ID 5; LITERAL 3; ALL 2; DENY 2).
fn deny(resource_type: i8, name: &str) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_resource_pattern_type(3)
        .with_principal(s("User:ANONYMOUS"))
        .with_host(s("*"))
        .with_operation(2)
        .with_permission_type(2)
}

async fn describe_producers(client: &mut Client) -> Vec<(String, i16)> {
    let response = client
        .send(
            0,
            DescribeProducersRequest::default().with_topics(
                ["ok", "no"]
                    .iter()
                    .map(|t| {
                        TopicRequest::default()
                            .with_name(topic(t))
                            .with_partition_indexes(vec![0])
                    })
                    .collect(),
            ),
        )
        .await;
    response
        .topics
        .iter()
        .map(|t| (t.name.to_string(), t.partitions[0].error_code))
        .collect()
}

fn code_of(answers: &[(String, i16)], name: &str) -> i16 {
    answers
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no answer for {name} in {answers:?}"))
        .1
}

#[tokio::test]
async fn batched_apis_answer_each_item() {
    let broker = TestBroker::start_with(|c| {
        c.authorization = AuthzConfig {
            enabled: true,
            settings: AuthorizerSettings {
                super_users: Vec::new(),
                allow_everyone_if_no_acl_found: true,
            },
        };
    })
    .await;
    let mut client = broker.client().await;
    create_topic(&mut client, "ok", 1).await;
    create_topic(&mut client, "no", 1).await;
    let created = client
        .send(
            3,
            CreateAclsRequest::default().with_creations(vec![
                deny(2, "no"),
                deny(3, "no-g"),
                deny(5, "no-t"),
            ]),
        )
        .await;
    assert!(
        created.results.iter().all(|r| r.error_code == 0),
        "{created:?}"
    );
    // The ACLs apply once the metadata image has them (bounded wait).
    let mut answers = Vec::new();
    for _ in 0..500 {
        answers = describe_producers(&mut client).await;
        if code_of(&answers, "no") == TOPIC_DENIED {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // DescribeProducers: per topic.
    assert_eq!(code_of(&answers, "no"), TOPIC_DENIED, "{answers:?}");
    assert_eq!(code_of(&answers, "ok"), 0, "{answers:?}");

    // FindCoordinator v4: per key.
    let found = client
        .send(
            4,
            FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![s("ok-g"), s("no-g")]),
        )
        .await;
    let codes: Vec<(String, i16)> = found
        .coordinators
        .iter()
        .map(|c| (c.key.to_string(), c.error_code))
        .collect();
    assert_eq!(code_of(&codes, "no-g"), GROUP_DENIED, "{codes:?}");
    assert_ne!(code_of(&codes, "ok-g"), GROUP_DENIED, "{codes:?}");

    // OffsetCommit (a simple consumer's, generation -1) then OffsetDelete: per topic.
    common::wait_loaded(&mut client, "ok-g").await;
    let commit = |name: &str| {
        OffsetCommitRequestTopic::default()
            .with_name(topic(name))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(0)])
    };
    let committed = client
        .send(
            8,
            OffsetCommitRequest::default()
                .with_group_id(GroupId(s("ok-g")))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![commit("ok"), commit("no")]),
        )
        .await;
    let codes: Vec<(String, i16)> = committed
        .topics
        .iter()
        .map(|t| (t.name.to_string(), t.partitions[0].error_code))
        .collect();
    assert_eq!(
        (code_of(&codes, "ok"), code_of(&codes, "no")),
        (0, TOPIC_DENIED),
        "{codes:?}"
    );
    let delete = |name: &str| {
        OffsetDeleteRequestTopic::default()
            .with_name(topic(name))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0)
            ])
    };
    let deleted = client
        .send(
            0,
            OffsetDeleteRequest::default()
                .with_group_id(GroupId(s("ok-g")))
                .with_topics(vec![delete("ok"), delete("no")]),
        )
        .await;
    assert_eq!(deleted.error_code, 0, "{deleted:?}");
    let codes: Vec<(String, i16)> = deleted
        .topics
        .iter()
        .map(|t| (t.name.to_string(), t.partitions[0].error_code))
        .collect();
    assert_eq!(
        (code_of(&codes, "ok"), code_of(&codes, "no")),
        (0, TOPIC_DENIED),
        "{codes:?}"
    );

    // DescribeTransactions: per id.
    let described = client
        .send(
            0,
            DescribeTransactionsRequest::default().with_transactional_ids(vec![
                TransactionalId(s("ok-t")),
                TransactionalId(s("no-t")),
            ]),
        )
        .await;
    let codes: Vec<(String, i16)> = described
        .transaction_states
        .iter()
        .map(|t| (t.transactional_id.to_string(), t.error_code))
        .collect();
    assert_eq!(code_of(&codes, "no-t"), TXN_DENIED, "{codes:?}");
    assert_ne!(code_of(&codes, "ok-t"), TXN_DENIED, "{codes:?}");

    // TxnOffsetCommit: per topic (the allowed one reaches the coordinator, which refuses
    // the unknown producer; only the denied one is an authorization error).
    let txn_commit = |name: &str| {
        TxnOffsetCommitRequestTopic::default()
            .with_name(topic(name))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(0)])
    };
    let committed = client
        .send(
            3,
            TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s("ok-t")))
                .with_group_id(GroupId(s("ok-g")))
                .with_producer_id(ProducerId(4242))
                .with_producer_epoch(0)
                .with_generation_id(-1)
                .with_topics(vec![txn_commit("ok"), txn_commit("no")]),
        )
        .await;
    let codes: Vec<(String, i16)> = committed
        .topics
        .iter()
        .map(|t| (t.name.to_string(), t.partitions[0].error_code))
        .collect();
    assert_eq!(code_of(&codes, "no"), TOPIC_DENIED, "{codes:?}");
    assert_ne!(code_of(&codes, "ok"), TOPIC_DENIED, "{codes:?}");

    // AddPartitionsToTxn v3: Kafka's answer to a request with a denied topic.
    let add = |name: &str| {
        AddPartitionsToTxnTopic::default()
            .with_name(topic(name))
            .with_partitions(vec![0])
    };
    let added = client
        .send(
            3,
            AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s("ok-t")))
                .with_v3_and_below_producer_id(ProducerId(4242))
                .with_v3_and_below_producer_epoch(0)
                .with_v3_and_below_topics(vec![add("ok"), add("no"), add("ghost")]),
        )
        .await;
    let codes: Vec<(String, i16)> = added
        .results_by_topic_v3_and_below
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.results_by_partition[0].partition_error_code,
            )
        })
        .collect();
    assert_eq!(code_of(&codes, "ok"), OPERATION_NOT_ATTEMPTED, "{codes:?}");
    assert_eq!(code_of(&codes, "no"), TOPIC_DENIED, "{codes:?}");
    assert_eq!(
        code_of(&codes, "ghost"),
        UNKNOWN_TOPIC_OR_PARTITION,
        "{codes:?}"
    );

    // ConsumerGroupHeartbeat subscribing to a topic it may not DESCRIBE: refused whole.
    let heartbeat = client
        .send(
            0,
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(s("ok-g2")))
                .with_member_id(s("m-1"))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![topic("ok"), topic("no")]))
                .with_topic_partitions(Some(Vec::new())),
        )
        .await;
    assert_eq!(heartbeat.error_code, TOPIC_DENIED, "{heartbeat:?}");
}
