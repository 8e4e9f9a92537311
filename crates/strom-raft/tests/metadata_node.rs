//! strom-meta's image and controller on a single-voter node: requests become committed
//! records, the image and deltas follow, and snapshots restore the same image.

use std::time::Duration;

use strom_meta::{
    BrokerHeartbeatRequest, ControllerConfig, ControllerReply, ControllerRequest, CreatableTopic,
    CreateTopicsRequest, DeleteTopicsRequest, MetadataImage, RegisterBrokerRequest, TopicRef,
};
use strom_raft::bootstrap_scram::{self, BootstrapScram};
use strom_raft::metadata::{start_metadata_node, MetadataReply};
use strom_raft::{NodeConfig, ReplicatedState, StateEvent};
use strom_security::{ScramCredential, ScramMechanism};
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

/// A metadata directory under `dir` formatted with one bootstrap SCRAM-SHA-512 user
/// (`controller`), as `strom storage format --add-scram` writes it; the directory and user.
fn formatted_with_bootstrap_user(dir: &std::path::Path) -> (std::path::PathBuf, BootstrapScram) {
    let meta = dir.join("meta");
    let sha512 = ScramMechanism::Sha512;
    let bootstrap = BootstrapScram {
        mechanism: sha512,
        user: "controller".into(),
        credential: ScramCredential::from_password(sha512, "controller-secret", 4096),
    };
    bootstrap_scram::write(&meta, std::slice::from_ref(&bootstrap)).unwrap();
    (meta, bootstrap)
}

/// `strom storage format --add-scram`'s users: the node checks SCRAM against them while its
/// image holds no SCRAM credential; the active controller writes them into the log, after
/// which the image (and a later AlterUserScramCredentials) is what counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_scram_users_are_written_into_the_log_then_the_image_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, bootstrap) = formatted_with_bootstrap_user(dir.path());
    let sha512 = ScramMechanism::Sha512;
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
    assert_eq!(node.scram_credential("controller", sha512), Some(changed));
    assert!(node.state().state.scram_ever_written());
    node.shutdown().await;
}

/// AlterUserScramCredentials deleting `deletions` ((user, mechanism id)).
fn scram_deletions(deletions: Vec<(String, i8)>) -> ControllerRequest {
    ControllerRequest::AlterUserScramCredentials(strom_meta::AlterScramRequest {
        deletions,
        upsertions: Vec::new(),
    })
}

/// Waits (bounded) until `what` holds.
async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kafka writes the bootstrap SCRAM records once: deleting every SCRAM credential does not
/// bring the bootstrap users back, neither for authentication nor as records the active
/// controller writes again, and not after a restart either (the node retired its file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_bootstrap_scram_users_never_count_again() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, bootstrap) = formatted_with_bootstrap_user(dir.path());
    let sha512 = ScramMechanism::Sha512;
    let mut config = NodeConfig::test_min(1, "127.0.0.1:0".parse().unwrap(), meta.clone());
    config.controller_tick_ms = 20;
    let node = start_metadata_node(config.clone(), ControllerConfig::default())
        .await
        .unwrap();
    wait_until("the bootstrap user reached the image", || {
        node.state()
            .state
            .scram_credential("controller", sha512.id())
            .is_some()
    })
    .await;
    // The node retires its file once it has seen the record.
    let retired = meta.join(bootstrap_scram::BOOTSTRAP_SCRAM_APPLIED_FILE);
    wait_until("the bootstrap file was retired", || retired.exists()).await;
    assert!(!meta.join(bootstrap_scram::BOOTSTRAP_SCRAM_FILE).exists());

    // Every SCRAM credential deleted.
    let reply = node
        .submit(scram_deletions(vec![("controller".into(), sha512.id())]))
        .await
        .unwrap();
    let Ok(ControllerReply::AlterUserScramCredentials(results)) = reply else {
        panic!("{reply:?}")
    };
    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
    let deleted_at = node.state().last_applied;
    assert_eq!(node.scram_credential("controller", sha512), None);
    assert!(node.state().state.scram_ever_written());

    // The controller keeps ticking; whatever it writes, never a SCRAM credential. Entries
    // are made to pass (a broker registration each) so that ticks run in between: the
    // controller handles requests and ticks in one task.
    for broker_id in 0..5 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        node.submit(ControllerRequest::RegisterBroker(RegisterBrokerRequest {
            broker_id,
            incarnation_id: Uuid::new_v4(),
            endpoints: Vec::new(),
            rack: None,
        }))
        .await
        .unwrap()
        .unwrap();
    }
    let image = node.state();
    assert!(image.last_applied > deleted_at);
    assert_eq!(image.state.scram_credentials().count(), 0);
    assert_eq!(node.scram_credential("controller", sha512), None);
    node.shutdown().await;

    // Restarted: refused from the first moment (the file is retired), and after replay.
    let node = start_metadata_node(config.clone(), ControllerConfig::default())
        .await
        .unwrap();
    assert!(
        node.config().bootstrap_scram.is_empty(),
        "the retired file was read"
    );
    assert_eq!(node.scram_credential("controller", sha512), None);
    wait_until("the log replayed", || {
        node.state().last_applied >= image.last_applied
    })
    .await;
    assert_eq!(node.scram_credential("controller", sha512), None);
    assert_eq!(node.state().state.scram_credentials().count(), 0);
    node.shutdown().await;

    // Even with the bootstrap file put back beside the retired one, nothing counts: only a
    // node whose log never held SCRAM credentials (a new one) would use it. The image's
    // mark alone also keeps it out: without the retired file, the replayed log refuses it.
    bootstrap_scram::write(&meta, std::slice::from_ref(&bootstrap)).unwrap();
    std::fs::remove_file(&retired).unwrap();
    let node = start_metadata_node(config, ControllerConfig::default())
        .await
        .unwrap();
    assert_eq!(node.config().bootstrap_scram, vec![bootstrap]);
    wait_until("the log replayed", || {
        node.state().last_applied >= image.last_applied
    })
    .await;
    assert!(node.state().state.scram_ever_written());
    assert_eq!(node.scram_credential("controller", sha512), None);
    wait_until("the bootstrap file was retired again", || retired.exists()).await;
    assert_eq!(node.state().state.scram_credentials().count(), 0);
    node.shutdown().await;
}
