//! A minimal Kafka client for the broker's tests (kafka-protocol's client-side types), and
//! helpers to start a broker in-process on 127.0.0.1 port 0.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use strom_broker::{Broker, BrokerConfig, LocalMetadata, MetadataPort};
use strom_meta::ControllerConfig;
use strom_records::{BatchBuilder, Compression, Header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct TestBroker {
    pub broker: Broker,
    pub metadata: Arc<LocalMetadata>,
    pub dir: tempfile::TempDir,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(edit: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig::test_min(dir.path());
        edit(&mut config);
        let metadata = Arc::new(LocalMetadata::new(ControllerConfig {
            num_partitions: config.num_partitions,
            ..ControllerConfig::default()
        }));
        let port: Arc<dyn MetadataPort> = metadata.clone();
        let broker = Broker::start(config, port).await.unwrap();
        TestBroker {
            broker,
            metadata,
            dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.broker.local_addr()
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr()).await
    }
}

pub struct Client {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        Client {
            stream,
            correlation_id: 0,
        }
    }

    /// Sends a request without reading a response; returns its correlation id.
    pub async fn send_only<R: Request + Encodable>(&mut self, version: i16, body: &R) -> i32 {
        self.correlation_id += 1;
        let api = ApiKey::try_from(R::KEY).unwrap();
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("strom-test")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let mut framed = BytesMut::new();
        framed.put_i32(buf.len() as i32);
        framed.put_slice(&buf);
        self.stream.write_all(&framed).await.unwrap();
        self.correlation_id
    }

    /// Reads one response frame; returns its correlation id and body bytes.
    pub async fn read_frame(&mut self, api: ApiKey, version: i16) -> (i32, Bytes) {
        let size = self.stream.read_i32().await.unwrap();
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body).await.unwrap();
        let mut body = Bytes::from(body);
        let header_version = if api == ApiKey::ApiVersions {
            0
        } else {
            api.response_header_version(version)
        };
        let header = ResponseHeader::decode(&mut body, header_version).unwrap();
        (header.correlation_id, body)
    }

    pub async fn send<R>(&mut self, version: i16, body: R) -> R::Response
    where
        R: Request + Encodable,
        R::Response: Decodable,
    {
        let sent = self.send_only(version, &body).await;
        let api = ApiKey::try_from(R::KEY).unwrap();
        let (correlation_id, mut bytes) = self.read_frame(api, version).await;
        assert_eq!(correlation_id, sent);
        let response = R::Response::decode(&mut bytes, version).unwrap();
        assert_eq!(bytes.remaining(), 0, "trailing bytes in {api:?} v{version}");
        response
    }

    /// Whether the broker closed the connection (reads EOF within a bound).
    pub async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(
                std::time::Duration::from_secs(5),
                self.stream.read(&mut byte)
            )
            .await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// A batch of `count` records `key-i` / `value-i` with one header each.
pub fn batch(first: usize, count: usize, compression: Compression) -> Vec<u8> {
    let now = now_ms();
    let mut builder = BatchBuilder::new(0, now).compression(compression);
    for i in first..first + count {
        builder
            .append(
                now,
                Some(Bytes::from(format!("key-{i}"))),
                Some(Bytes::from(format!("value-{i}"))),
                vec![Header::new(
                    Bytes::from_static(b"h"),
                    Some(Bytes::from(format!("{i}"))),
                )],
            )
            .unwrap();
    }
    builder.build().unwrap()
}

/// Wall-clock milliseconds (the helper shared with other crates' tests).
pub use strom_test_support::now_ms;

/// Values of every record in concatenated batches.
pub fn values(batches: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for item in strom_records::batches(batches) {
        let (_, range) = item.unwrap();
        let records =
            strom_records::records(&batches[range], &strom_records::DecodeLimits::default())
                .unwrap();
        for r in records {
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    out
}

/// A batch of `count` records from an idempotent producer.
pub fn producer_batch(producer_id: i64, epoch: i16, first_sequence: i32, count: usize) -> Vec<u8> {
    let now = now_ms();
    let mut builder = BatchBuilder::new(0, now).producer(producer_id, epoch, first_sequence);
    for i in 0..count {
        builder
            .append(
                now,
                None,
                Some(Bytes::from(format!("seq-{}", first_sequence as usize + i))),
                vec![],
            )
            .unwrap();
    }
    builder.build().unwrap()
}

/// A protocol string.
pub fn s(text: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(text.to_string())
}

/// Waits (boundedly, 30 s: creating and loading 50 partitions is slow on a busy machine)
/// until the group's `__consumer_offsets` partition is loaded: until then the coordinator
/// answers COORDINATOR_LOAD_IN_PROGRESS (14), as Kafka does after an election.
pub async fn wait_loaded(client: &mut Client, group_id: &str) {
    use kafka_protocol::messages::{GroupId, OffsetFetchRequest};
    for _ in 0..1_500 {
        let response = client
            .send(
                7,
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(s(group_id)))
                    .with_topics(None),
            )
            .await;
        if response.error_code != 14 {
            assert_eq!(response.error_code, 0);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("partition of {group_id} never loaded");
}

/// Creates `topic` (CreateTopics v7, the broker's default replication) and returns its id.
/// Offsets are committed only for partitions that exist, so group tests create theirs first.
pub async fn create_topic(client: &mut Client, topic: &str, partitions: i32) -> uuid::Uuid {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
    let response = client
        .send(
            7,
            CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(s(topic)))
                .with_num_partitions(partitions)
                .with_replication_factor(-1)]),
        )
        .await;
    assert_eq!(response.topics[0].error_code, 0, "{:?}", response.topics[0]);
    response.topics[0].topic_id
}
