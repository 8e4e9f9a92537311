//! Shared helpers of the strom-meta integration tests: a cluster of registered brokers and
//! a "commit" that applies the controller's records the way the raft layer would.
#![allow(dead_code)]

use strom_meta::*;
use uuid::Uuid;

pub fn controller() -> Controller {
    Controller::new(ControllerConfig {
        topic_id_seed: 42,
        ..ControllerConfig::default()
    })
}

pub fn controller_with(config: ControllerConfig) -> Controller {
    Controller::new(ControllerConfig {
        topic_id_seed: 42,
        ..config
    })
}

pub fn endpoint(port: u16) -> Endpoint {
    Endpoint {
        listener_name: "PLAINTEXT".into(),
        host: "127.0.0.1".into(),
        port,
        security_protocol: 0,
    }
}

pub fn incarnation(broker_id: i32) -> Uuid {
    Uuid::from_u128(0x1000 + broker_id as u128)
}

/// Handles a request and applies its records, as committing them would.
pub fn commit(
    controller: &mut Controller,
    image: &MetadataImage,
    request: ControllerRequest,
    now_ms: i64,
) -> (
    MetadataImage,
    MetadataDelta,
    Vec<MetadataRecord>,
    ControllerReply,
) {
    let (records, reply) = controller
        .handle(image, request, now_ms)
        .expect("request accepted");
    let (next, delta) = image.apply(&records).expect("controller records apply");
    (next, delta, records, reply)
}

/// An image with brokers `ids` registered and unfenced.
pub fn cluster(controller: &mut Controller, ids: &[i32]) -> MetadataImage {
    let mut image = MetadataImage::default();
    for id in ids {
        let register = ControllerRequest::RegisterBroker(RegisterBrokerRequest {
            broker_id: *id,
            incarnation_id: incarnation(*id),
            endpoints: vec![endpoint(9092 + *id as u16)],
            rack: None,
        });
        let (next, _, _, reply) = commit(controller, &image, register, 0);
        let ControllerReply::RegisterBroker { broker_epoch } = reply else {
            panic!("unexpected reply {reply:?}")
        };
        let heartbeat = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
            broker_id: *id,
            broker_epoch,
            want_fence: false,
            want_shutdown: false,
            offline_replicas: Vec::new(),
        });
        image = commit(controller, &next, heartbeat, 0).0;
    }
    image
}

pub fn create_topic_request(
    name: &str,
    partitions: i32,
    replication_factor: i16,
) -> ControllerRequest {
    ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics: vec![CreatableTopic {
            num_partitions: partitions,
            replication_factor,
            ..CreatableTopic::named(name)
        }],
        validate_only: false,
    })
}

pub fn create_topic(
    controller: &mut Controller,
    image: &MetadataImage,
    name: &str,
    partitions: i32,
    rf: i16,
) -> MetadataImage {
    let (next, _, _, reply) = commit(
        controller,
        image,
        create_topic_request(name, partitions, rf),
        0,
    );
    let ControllerReply::CreateTopics(results) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    assert_eq!(results[0].error, None);
    next
}

pub fn broker_epoch(image: &MetadataImage, id: i32) -> i64 {
    image.broker(id).expect("broker registered").epoch
}
