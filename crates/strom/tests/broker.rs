//! The real `strom server` binary as a Kafka broker on 127.0.0.1: kcat produces and
//! consumes through it, a clean restart keeps topics and data, and `kill -9` during an
//! `acks=all` produce loop in sync-on-commit mode loses no acknowledged record.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{free_ports, ServerProcess};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

/// A blocking Kafka client: one request at a time, bounded by socket timeouts.
struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    fn connect(addr: &str) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(Client {
            stream,
            correlation_id: 0,
        })
    }

    fn send<R>(&mut self, version: i16, body: R) -> std::io::Result<R::Response>
    where
        R: Request + Encodable,
        R::Response: Decodable,
    {
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
        self.stream.write_all(&framed)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body)?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, api.response_header_version(version))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        assert_eq!(header.correlation_id, self.correlation_id);
        let response = R::Response::decode(&mut body, version)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        assert_eq!(body.remaining(), 0);
        Ok(response)
    }
}

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

fn broker_overrides(port: u16, data: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut overrides = vec![
        format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
        format!("log.dirs={}", data.display()),
        "controller.quorum.election.timeout.ms=300".to_string(),
    ];
    overrides.extend(extra.iter().map(|s| s.to_string()));
    overrides
}

fn kcat(args: &[&str], input: &str) -> String {
    let mut child = Command::new("timeout")
        .arg("30")
        .arg("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat must be installed (apt-get install kcat)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kcat {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn record_batch(value: &str) -> Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut builder = strom_records::BatchBuilder::new(0, now);
    builder
        .append(now, None, Some(Bytes::from(value.to_string())), vec![])
        .unwrap();
    Bytes::from(builder.build().unwrap())
}

fn produce_one(client: &mut Client, topic: &str, value: &str) -> std::io::Result<i16> {
    let response = client.send(
        9,
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(record_batch(value)))])]),
    )?;
    Ok(response.responses[0].partition_responses[0].error_code)
}

/// Every record value of partition 0 from offset 0, fetched in bounded rounds.
fn read_all(client: &mut Client, topic: &str) -> Vec<String> {
    let mut offset = 0;
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let response = client
            .send(
                12,
                FetchRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_max_bytes(1 << 20)
                    .with_session_epoch(-1)
                    .with_topics(vec![FetchTopic::default()
                        .with_topic(name(topic))
                        .with_partitions(vec![FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(1 << 20)])]),
            )
            .unwrap();
        let data = &response.responses[0].partitions[0];
        assert_eq!(data.error_code, 0);
        let bytes = data.records.clone().unwrap_or_default();
        if bytes.is_empty() {
            return out;
        }
        for item in strom_records::batches(&bytes) {
            let (header, range) = item.unwrap();
            let records =
                strom_records::records(&bytes[range], &strom_records::DecodeLimits::default())
                    .unwrap();
            for (i, record) in records.iter().enumerate() {
                if header.base_offset + i as i64 >= offset {
                    out.push(String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap());
                }
            }
            offset = header.last_offset() + 1;
        }
    }
    panic!("read_all did not reach the end");
}

/// Connects, retrying while the broker starts (bounded).
fn connect(addr: &str) -> Client {
    let start = Instant::now();
    loop {
        match Client::connect(addr) {
            Ok(client) => return client,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot connect to {addr}: {e}"),
        }
    }
}

#[test]
fn kcat_round_trip_and_clean_restart_keep_everything() {
    let data = tempfile::tempdir().unwrap();
    let port = free_ports(1)[0];
    let addr = format!("127.0.0.1:{port}");
    let overrides = broker_overrides(port, data.path(), &["num.partitions=2"]);
    let mut server = ServerProcess::start(&overrides, &addr);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let input: String = (0..10).map(|i| format!("k{i}\t{codec}-{i}\n")).collect();
        kcat(
            &[
                "-b", &addr, "-P", "-t", "kc", "-K", "\t", "-z", codec, "-H", "h=v",
            ],
            &input,
        );
    }
    let consume = |addr: &str| {
        let mut lines: Vec<String> = kcat(
            &[
                "-b",
                addr,
                "-C",
                "-t",
                "kc",
                "-o",
                "beginning",
                "-e",
                "-f",
                "%k|%s|%h\n",
            ],
            "",
        )
        .lines()
        .map(str::to_string)
        .collect();
        lines.sort();
        lines
    };
    let before = consume(&addr);
    assert_eq!(before.len(), 50);
    assert!(before.contains(&"k3|zstd-3|h=v".to_string()));
    assert!(server.terminate(), "clean exit on SIGTERM");

    let _server = ServerProcess::start(&overrides, &addr);
    assert_eq!(consume(&addr), before);
    let list = kcat(&["-b", &addr, "-L", "-t", "kc"], "");
    assert!(list.contains("topic \"kc\" with 2 partitions"), "{list}");
}

#[test]
fn kill_9_during_acks_all_in_sync_on_commit_mode_loses_no_acknowledged_record() {
    let data = tempfile::tempdir().unwrap();
    let port = free_ports(1)[0];
    let addr = format!("127.0.0.1:{port}");
    let overrides = broker_overrides(
        port,
        data.path(),
        &[
            "strom.log.durability=sync-on-commit",
            "log.segment.bytes=4096",
        ],
    );
    let mut server = ServerProcess::start(&overrides, &addr);
    let mut client = connect(&addr);
    let created = client
        .send(
            7,
            CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name("acked"))
                .with_num_partitions(1)
                .with_replication_factor(-1)]),
        )
        .unwrap();
    assert_eq!(created.topics[0].error_code, 0);

    let producer = std::thread::spawn(move || {
        let mut acked = Vec::new();
        let start = Instant::now();
        for i in 0..100_000 {
            if start.elapsed() > Duration::from_secs(20) {
                break;
            }
            let value = format!("r{i}");
            match produce_one(&mut client, "acked", &value) {
                Ok(0) => acked.push(value),
                Ok(code) => panic!("produce error {code}"),
                Err(_) => break,
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(700));
    server.kill();
    let acked = producer.join().unwrap();
    assert!(acked.len() > 5, "only {} records acknowledged", acked.len());

    let _server = ServerProcess::start(&overrides, &addr);
    let mut client = connect(&addr);
    let found = read_all(&mut client, "acked");
    // Every acknowledged record is there, in order; at most the one in flight is extra.
    assert!(found.len() >= acked.len());
    assert!(found.len() <= acked.len() + 1);
    assert_eq!(&found[..acked.len()], &acked[..]);
}
