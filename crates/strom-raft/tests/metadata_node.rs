//! strom-meta's image and controller on a single-voter node: requests become committed
//! records, the image and deltas follow, and snapshots restore the same image.

use std::time::Duration;

use strom_meta::{
    BrokerHeartbeatRequest, ControllerConfig, ControllerReply, ControllerRequest, CreatableTopic,
    CreateTopicsRequest, DeleteTopicsRequest, MetadataImage, RegisterBrokerRequest, TopicRef,
};
use strom_raft::metadata::{start_metadata_node, MetadataReply};
use strom_raft::{NodeConfig, ReplicatedState, StateEvent};
use uuid::Uuid;

fn create_orders() -> ControllerRequest {
    ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics: vec![CreatableTopic {
            num_partitions: 3,
            replication_factor: 1,
            configs: vec![("cleanup.policy".into(), Some("compact".into()))],
            ..CreatableTopic::named("orders")
        }],
        validate_only: false,
    })
}

fn topic_codes(reply: &MetadataReply) -> Vec<Option<i16>> {
    match reply {
        Ok(ControllerReply::CreateTopics(results)) => results
            .iter()
            .map(|r| r.error.as_ref().map(|e| e.code.code()))
            .collect(),
        Ok(ControllerReply::DeleteTopics(results)) => results
            .iter()
            .map(|r| r.error.as_ref().map(|e| e.code.code()))
            .collect(),
        other => panic!("unexpected reply {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_requests_commit_and_update_image_and_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig::test_min(1, "127.0.0.1:0".parse().unwrap(), dir.path().join("meta"));
    let node = start_metadata_node(config, ControllerConfig::default())
        .await
        .unwrap();
    let mut events = node.subscribe();

    // No unfenced broker yet: the replication factor cannot be met (Kafka's error 38).
    // Sent right after start: `submit` waits out the first election.
    let reply = node.submit(create_orders()).await.unwrap();
    assert_eq!(topic_codes(&reply), vec![Some(38)]);

    let register = ControllerRequest::RegisterBroker(RegisterBrokerRequest {
        broker_id: 7,
        incarnation_id: Uuid::new_v4(),
        endpoints: Vec::new(),
        rack: None,
    });
    let Ok(ControllerReply::RegisterBroker { broker_epoch }) = node.submit(register).await.unwrap()
    else {
        panic!("register failed")
    };
    let heartbeat = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id: 7,
        broker_epoch,
        want_fence: false,
        want_shutdown: false,
        offline_replicas: Vec::new(),
    });
    node.submit(heartbeat).await.unwrap().unwrap();

    let reply = node.submit(create_orders()).await.unwrap();
    let Ok(ControllerReply::CreateTopics(results)) = &reply else {
        panic!("{reply:?}")
    };
    assert_eq!(results[0].error, None);
    let topic_id = results[0].topic_id;
    let image = node.state().state;
    let created = image.topic_by_name("orders").unwrap();
    assert_eq!((created.topic_id, created.partitions.len()), (topic_id, 3));
    assert_eq!(
        image
            .topic_configs("orders")
            .and_then(|c| c.get("cleanup.policy"))
            .map(String::as_str),
        Some("compact")
    );
    // Validation runs against the committed image: a second create is TOPIC_ALREADY_EXISTS.
    assert_eq!(
        topic_codes(&node.submit(create_orders()).await.unwrap()),
        vec![Some(36)]
    );

    // The delta of the creation reached subscribers.
    let mut saw_creation = false;
    for _ in 0..10 {
        let event = tokio::time::timeout(Duration::from_secs(2), events.recv())
            .await
            .unwrap()
            .unwrap();
        if let StateEvent::Applied { delta, .. } = event {
            if delta.topics_created.contains(&topic_id) {
                assert_eq!(delta.partitions_added.len(), 3);
                saw_creation = true;
                break;
            }
        }
    }
    assert!(saw_creation);

    let delete = ControllerRequest::DeleteTopics(DeleteTopicsRequest {
        topics: vec![
            TopicRef::Name("orders".into()),
            TopicRef::Name("missing".into()),
        ],
    });
    assert_eq!(
        topic_codes(&node.submit(delete).await.unwrap()),
        vec![None, Some(3)]
    );
    assert!(node.state().state.topic_by_name("orders").is_none());

    // The snapshot encoding restores the same image.
    let image = node.state().state;
    let restored = <MetadataImage as ReplicatedState>::decode_snapshot(
        &ReplicatedState::encode_snapshot(&image),
    )
    .unwrap();
    assert_eq!(restored, image);
    // A payload that is not records is refused by apply, never a panic.
    assert!(image.apply_payload(&[0xff, 0x00, 0x13]).is_err());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_tick_fences_a_broker_whose_session_expired() {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig::test_min(1, "127.0.0.1:0".parse().unwrap(), dir.path().join("meta"));
    let controller = ControllerConfig {
        broker_session_timeout_ms: 300,
        ..ControllerConfig::default()
    };
    let node = start_metadata_node(config, controller).await.unwrap();
    let register = ControllerRequest::RegisterBroker(RegisterBrokerRequest {
        broker_id: 3,
        incarnation_id: Uuid::new_v4(),
        endpoints: Vec::new(),
        rack: None,
    });
    let Ok(ControllerReply::RegisterBroker { broker_epoch }) = node.submit(register).await.unwrap()
    else {
        panic!("register failed")
    };
    let heartbeat = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id: 3,
        broker_epoch,
        want_fence: false,
        want_shutdown: false,
        offline_replicas: Vec::new(),
    });
    node.submit(heartbeat).await.unwrap().unwrap();
    assert!(node.state().state.is_broker_unfenced(3));
    // No more heartbeats: the leader's periodic tick fences the broker.
    let start = std::time::Instant::now();
    while node.state().state.is_broker_unfenced(3) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "broker never fenced"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.shutdown().await;
}

/// `strom storage format --add-scram`'s users: the node checks SCRAM against them while its
/// image holds no SCRAM credential; the active controller writes them into the log, after
/// which the image (and a later AlterUserScramCredentials) is what counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_scram_users_are_written_into_the_log_then_the_image_counts() {
    use strom_raft::bootstrap_scram::{self, BootstrapScram};
    use strom_security::{ScramCredential, ScramMechanism};

    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("meta");
    let sha512 = ScramMechanism::Sha512;
    let bootstrap = BootstrapScram {
        mechanism: sha512,
        user: "controller".into(),
        credential: ScramCredential::from_password(sha512, "controller-secret", 4096),
    };
    bootstrap_scram::write(&meta, std::slice::from_ref(&bootstrap)).unwrap();
    let mut config = NodeConfig::test_min(1, "127.0.0.1:0".parse().unwrap(), meta);
    config.controller_tick_ms = 50;
    let node = start_metadata_node(config, ControllerConfig::default())
        .await
        .unwrap();
    assert_eq!(
        node.scram_credential("controller", sha512),
        Some(bootstrap.credential.clone()),
        "served from the bootstrap file before anything is applied"
    );
    assert_eq!(
        node.scram_credential("controller", ScramMechanism::Sha256),
        None
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let image = node.state().state;
        if let Some(stored) = image.scram_credential("controller", sha512.id()) {
            assert_eq!(stored.stored_key, bootstrap.credential.stored_key);
            assert_eq!(stored.salt, bootstrap.credential.salt);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bootstrap user never reached the image"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A new password through AlterUserScramCredentials replaces it; the bootstrap one is
    // not written again (the image holds SCRAM credentials).
    let changed = ScramCredential::from_password(sha512, "new-secret", 4096);
    let reply = node
        .submit(ControllerRequest::AlterUserScramCredentials(
            strom_meta::AlterScramRequest {
                deletions: Vec::new(),
                upsertions: vec![strom_meta::ScramUpsertion {
                    name: "controller".into(),
                    mechanism: sha512.id(),
                    iterations: 4096,
                    salt: changed.salt.clone(),
                    stored_key: changed.stored_key.clone(),
                    server_key: changed.server_key.clone(),
                }],
            },
        ))
        .await
        .unwrap();
    assert!(matches!(
        reply,
        Ok(ControllerReply::AlterUserScramCredentials(_))
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(node.scram_credential("controller", sha512), Some(changed));
    assert!(node.state().state.holds_scram());
    node.shutdown().await;
}
