//! The header bomb against the real `strom server`: a ~5 KB zstd Produce whose one record
//! carries 30 million empty headers (60 MB decompressed), sent three at once from three
//! connections to a normal topic, then the same bytes claiming 2^31-1 and -5 headers (refused
//! with INVALID_RECORD, as Kafka does), then three at once to a compacted one, whose cleaner
//! then removes them. Kafka accepts such a batch (30 million headers fit the record's bytes; the
//! broker walks them without keeping them), and so does Strom, within its 64 MiB
//! decompression budget. Asserted: every request is answered (accepted), the broker's peak
//! RSS (VmHWM) stays under [`PEAK_RSS_BYTES_MAX`], and another client's produce and fetch
//! on another topic are answered within [`OTHER_CLIENT_LATENCY_MAX`] throughout.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{free_ports, ServerProcess};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use strom_records::{frame_records_section, BatchBuilder, BatchHeader, Compression};
use strom_test_support::now_ms;

const HEADERS: usize = 30_000_000;
/// The bound on the broker's peak resident memory. Before this test's fix one such request
/// took the broker to 1.99 GB and three to 3.9 GB (a decoded header costs ~64 bytes). Now a
/// bomb costs its request (5 KB), one 64 KiB walk window and the zstd window its frame
/// declares (2 MiB here), and at most `decompressing_walks_max()` walks run at once; the
/// broker's own footprint (tokio, segment buffers, the metadata quorum) is measured first and
/// printed. Measured on the 2-core test machine: 13 MiB before, 23 MiB after everything.
/// 128 MiB leaves room for other allocators' habits and is 15 times below one decoded bomb.
const PEAK_RSS_BYTES_MAX: u64 = 128 * 1024 * 1024;
/// Another client's produce or fetch while bombs are walked: the walks run on blocking
/// threads (two at once on this 2-core machine), never on the tasks serving connections.
/// Before the fix a bomb stalled another client for 2.3 s.
const OTHER_CLIENT_LATENCY_MAX: Duration = Duration::from_millis(1500);

/// A blocking Kafka client: one request at a time, bounded by socket timeouts.
struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    fn connect(addr: &str) -> Client {
        let start = Instant::now();
        loop {
            match TcpStream::connect(addr) {
                Ok(stream) => {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(60)))
                        .unwrap();
                    return Client {
                        stream,
                        correlation_id: 0,
                    };
                }
                Err(e) if start.elapsed() < Duration::from_secs(10) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot connect to {addr}: {e}"),
            }
        }
    }

    fn send<R>(&mut self, version: i16, body: R) -> R::Response
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
        self.stream.write_all(&framed).unwrap();
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).unwrap();
        let mut body = Bytes::from(body);
        let header =
            ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation_id);
        let response = R::Response::decode(&mut body, version).unwrap();
        assert_eq!(body.remaining(), 0);
        response
    }

    fn create_topic(&mut self, topic: &str, configs: &[(&str, &str)]) {
        let configs = configs
            .iter()
            .map(|(k, v)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(k.to_string()))
                    .with_value(Some(StrBytes::from_string(v.to_string())))
            })
            .collect();
        let response = self.send(
            7,
            CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(configs)]),
        );
        assert_eq!(response.topics[0].error_code, 0, "{response:?}");
    }

    /// Produces one batch with acks=all; returns the partition's error code.
    fn produce(&mut self, topic: &str, batch: Bytes) -> i16 {
        let response = self.send(
            9,
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name(topic))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch))])]),
        );
        let partition = &response.responses[0].partition_responses[0];
        if partition.error_code != 0 {
            eprintln!("produce to {topic} refused: {partition:?}");
        }
        partition.error_code
    }

    /// The base offset and record count of each batch a fetch from `offset` returns.
    fn batch_offsets(&mut self, topic: &str, offset: i64) -> Vec<(i64, i32)> {
        let response = self.send(
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
        );
        let data = &response.responses[0].partitions[0];
        assert_eq!(data.error_code, 0);
        let bytes = data.records.clone().unwrap_or_default();
        strom_records::batches(&bytes)
            .map(|item| {
                let header = item.unwrap().0;
                (header.base_offset, header.records_count)
            })
            .collect()
    }
}

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

fn varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

fn small_batch(key: &str, value: &str) -> Bytes {
    let now = now_ms();
    let mut builder = BatchBuilder::new(0, now);
    builder
        .append(
            now,
            Some(Bytes::from(key.to_string())),
            Some(Bytes::from(value.to_string())),
            vec![],
        )
        .unwrap();
    Bytes::from(builder.build().unwrap())
}

/// One record, key "bomb", value "v", 30 million headers with an empty key and a null
/// value, as one zstd batch.
fn bomb() -> Bytes {
    bomb_claiming(HEADERS as i64)
}

/// The bomb with its header count replaced by `header_count` (the 30 million headers stay).
fn bomb_claiming(header_count: i64) -> Bytes {
    let mut body = vec![0u8, 0, 0]; // attributes, timestamp delta, offset delta
    varint(&mut body, 4);
    body.extend_from_slice(b"bomb");
    varint(&mut body, 1);
    body.push(b'v');
    varint(&mut body, header_count);
    body.reserve(2 * HEADERS);
    for _ in 0..HEADERS {
        body.extend_from_slice(&[0x00, 0x01]);
    }
    let mut section = Vec::new();
    varint(&mut section, body.len() as i64);
    section.extend_from_slice(&body);
    let template = BatchHeader::parse(&small_batch("bomb", "v")).unwrap();
    let batch = frame_records_section(&template, Compression::Zstd, &section).unwrap();
    assert!(batch.len() < 8_000, "the bomb is {} bytes", batch.len());
    Bytes::from(batch)
}

/// The process's peak resident set (VmHWM), in bytes.
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/<pid>/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

/// Sends the bomb to `topic` from three connections at once; returns each error code.
fn three_bombs(addr: &str, topic: &'static str, bomb: &Bytes) -> Vec<i16> {
    let senders: Vec<_> = (0..3)
        .map(|_| {
            let addr = addr.to_string();
            let bomb = bomb.clone();
            std::thread::spawn(move || Client::connect(&addr).produce(topic, bomb))
        })
        .collect();
    senders.into_iter().map(|s| s.join().unwrap()).collect()
}

#[test]
fn three_header_bombs_at_once_stay_bounded_and_do_not_stall_others() {
    let data = tempfile::tempdir().unwrap();
    let port = free_ports(1)[0];
    let addr = format!("127.0.0.1:{port}");
    let overrides = vec![
        format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
        format!("log.dirs={}", data.path().display()),
        "controller.quorum.election.timeout.ms=300".to_string(),
        "log.cleaner.backoff.ms=100".to_string(),
        "log.retention.check.interval.ms=100".to_string(),
    ];
    let server = ServerProcess::start(&overrides, &addr);
    let pid = server.pid().unwrap();
    let mut admin = Client::connect(&addr);
    admin.create_topic("plain", &[]);
    admin.create_topic(
        "compacted",
        &[("cleanup.policy", "compact"), ("segment.bytes", "8192")],
    );
    admin.create_topic("other", &[]);
    assert_eq!(admin.produce("other", small_batch("k", "warm-up")), 0);
    let baseline = peak_rss_bytes(pid);
    let bomb = bomb();

    // Another client produces and fetches on its own topic throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let addr = addr.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut client = Client::connect(&addr);
            let mut slowest = Duration::ZERO;
            let mut rounds = 0u32;
            for i in 0..100_000 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let start = Instant::now();
                assert_eq!(
                    client.produce("other", small_batch("k", &format!("v{i}"))),
                    0
                );
                assert!(!client.batch_offsets("other", 0).is_empty());
                slowest = slowest.max(start.elapsed());
                rounds += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            (slowest, rounds)
        })
    };

    let started = Instant::now();
    assert_eq!(three_bombs(&addr, "plain", &bomb), vec![0, 0, 0]);
    let plain_done = started.elapsed();
    // The same bytes claiming 2^31-1 headers (the walk runs out of record after 60 MB) or
    // -5: Kafka's INVALID_RECORD, three at once, nothing stored.
    for header_count in [i64::from(i32::MAX), -5] {
        let lying = bomb_claiming(header_count);
        assert_eq!(
            three_bombs(&addr, "plain", &lying),
            vec![87, 87, 87],
            "header count {header_count}"
        );
    }
    assert_eq!(admin.batch_offsets("plain", 0).len(), 3);
    assert_eq!(three_bombs(&addr, "compacted", &bomb), vec![0, 0, 0]);
    let compacted_done = started.elapsed();
    // The same key again, enough to roll the last bomb's segment: the cleaner then drops
    // the three bombs (each alone in its segment, which keeps an empty batch).
    for i in 0..60 {
        assert_eq!(
            admin.produce("compacted", small_batch("bomb", &format!("after-{i}"))),
            0
        );
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let offsets = admin.batch_offsets("compacted", 0);
        let bombs_left = offsets
            .iter()
            .filter(|(base, count)| *base < 3 && *count > 0)
            .count();
        if bombs_left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cleaner never removed the bombs: batches at {offsets:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let cleaned = started.elapsed();
    stop.store(true, Ordering::Release);
    let (slowest, rounds) = other.join().unwrap();
    let peak = peak_rss_bytes(pid);
    eprintln!(
        "baseline VmHWM {} MiB, after the bombs and the cleaner {} MiB; plain bombs answered \
         after {plain_done:?}, compacted after {compacted_done:?}, cleaned after {cleaned:?}; \
         the other client's slowest produce+fetch of {rounds}: {slowest:?}",
        baseline >> 20,
        peak >> 20
    );
    assert!(peak < PEAK_RSS_BYTES_MAX, "VmHWM {} MiB", peak >> 20);
    assert!(slowest < OTHER_CLIENT_LATENCY_MAX, "slowest {slowest:?}");
    assert!(rounds > 0);
}
