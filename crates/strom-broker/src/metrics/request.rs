//! Per-request metrics: the request rate per API and version, errors per API and error
//! code, the latency split of Kafka's `RequestMetrics`, and the bytes and records each
//! Produce and Fetch moved per topic.
//!
//! The latency of one request, in Strom's connection model (`connection.rs`):
//! - **request queue**: from the frame being fully read until its handler starts. A
//!   connection handles its requests in order, so this is the wait for the earlier
//!   requests of the same connection to be answered (a non-Produce request waits until
//!   every earlier response is written; a pipelined Produce waits for nothing).
//! - **local**: the handler's own work (decode to answer), less the remote part.
//! - **remote**: time spent waiting for something other than this request's own work:
//!   the sync-on-commit fsync a pipelined Produce leaves to its finisher, and a group
//!   command's wait for its coordinator (a JoinGroup waiting for the rebalance). A Fetch
//!   long poll is counted as local.
//! - **response queue**: from the answer being ready until its write starts (it waits for
//!   the responses before it, in request order).
//! - **response send**: writing it to the socket (a slow client makes it long).
//! - **total**: from the frame being read to the last byte written.
//!
//! A request answered with nothing (`acks=0`) records no response queue or send time.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

use strom_metrics::{Counter, Family, Histogram};
use strom_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use strom_protocol::{Incoming, StrBytes};

use super::{BrokerMetrics, TopicCounters};
use crate::sendfile::{FileRecords, MARKER_BYTES};

/// Slots for API keys (Kafka's go up to 92) plus Kafka's two Fetch metric names.
const SLOTS: usize = 128;
/// Fetch requests from consumers are also recorded as `FetchConsumer`, as in Kafka.
pub(super) const FETCH_CONSUMER_SLOT: usize = 126;
/// Fetch requests from follower replicas are also recorded as `FetchFollower`.
pub(super) const FETCH_FOLLOWER_SLOT: usize = 127;
/// Request versions counted separately; later ones share the last counter.
const VERSIONS: usize = 24;

tokio::task_local! {
    /// Remote time of the request being handled (see the module comment).
    pub static REMOTE: Cell<Duration>;
}

/// Runs `work`, counting its time as the current request's remote time (a wait for
/// something other than the request's own work).
pub async fn remote<F: Future>(work: F) -> F::Output {
    let started = Instant::now();
    let output = work.await;
    let took = started.elapsed();
    let _ = REMOTE.try_with(|remote| remote.set(remote.get().saturating_add(took)));
    output
}

/// The metrics of one API (or of `FetchConsumer` / `FetchFollower`).
#[derive(Debug)]
pub struct ApiMetrics {
    /// Requests per version (`RequestsPerSec{request,version}`).
    pub versions: [Counter; VERSIONS],
    pub total: Histogram,
    pub request_queue: Histogram,
    pub local: Histogram,
    pub remote: Histogram,
    pub response_queue: Histogram,
    pub response_send: Histogram,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        ApiMetrics {
            versions: Default::default(),
            total: Histogram::latency(),
            request_queue: Histogram::latency(),
            local: Histogram::latency(),
            remote: Histogram::latency(),
            response_queue: Histogram::latency(),
            response_send: Histogram::latency(),
        }
    }
}

impl ApiMetrics {
    /// Requests of every version.
    pub fn requests(&self) -> u64 {
        self.versions.iter().map(Counter::get).sum()
    }
}

/// Every API's metrics, indexed by API key (no lookup on the request path).
#[derive(Debug)]
pub struct RequestMetrics {
    apis: Box<[ApiMetrics]>,
    /// Error codes per API, NONE included (`ErrorsPerSec{request,error}`).
    pub errors: Family<(u8, i16), Counter>,
}

impl RequestMetrics {
    pub(super) fn new(series_max: usize) -> RequestMetrics {
        RequestMetrics {
            apis: (0..SLOTS).map(|_| ApiMetrics::default()).collect(),
            errors: Family::new(series_max),
        }
    }

    /// The metrics of a slot.
    pub fn api(&self, slot: usize) -> Option<&ApiMetrics> {
        self.apis.get(slot)
    }

    /// Every slot that saw a request, with Kafka's request name.
    pub fn active(&self) -> impl Iterator<Item = (String, &ApiMetrics)> + '_ {
        self.apis
            .iter()
            .enumerate()
            .filter(|(_, api)| api.requests() > 0)
            .filter_map(|(slot, api)| Some((slot_name(slot)?, api)))
    }
}

/// Kafka's request name for a slot: its `ApiKeys` name (the generated enum's variant
/// name, CamelCase as in Kafka), or `FetchConsumer`/`FetchFollower`. Scrape time only.
pub fn slot_name(slot: usize) -> Option<String> {
    match slot {
        FETCH_CONSUMER_SLOT => Some("FetchConsumer".to_string()),
        FETCH_FOLLOWER_SLOT => Some("FetchFollower".to_string()),
        _ => {
            let key = ApiKey::try_from(i16::try_from(slot).ok()?).ok()?;
            Some(format!("{key:?}"))
        }
    }
}

/// Which topic a Produce or Fetch entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TopicKey {
    Name(StrBytes),
    Id(uuid::Uuid),
}

impl TopicKey {
    fn new(name: &StrBytes, id: uuid::Uuid) -> TopicKey {
        if name.is_empty() && !id.is_nil() {
            TopicKey::Id(id)
        } else {
            TopicKey::Name(name.clone())
        }
    }
}

/// One partition of a Produce request: what it carried.
#[derive(Debug)]
struct Produced {
    topic: TopicKey,
    partition: i32,
    bytes: u64,
    records: u64,
}

/// What a request moves, read from it before its handler takes it.
#[derive(Debug)]
enum Traffic {
    Other,
    Produce(Vec<Produced>),
    Fetch { follower: bool },
}

/// The measurements of one request, from its frame being read to its response written.
#[derive(Debug)]
pub struct RequestTrace {
    slot: usize,
    /// `FetchConsumer` or `FetchFollower` for a Fetch.
    fetch_slot: Option<usize>,
    version: i16,
    received: Instant,
    started: Instant,
    handled: Instant,
    local: Duration,
    remote: Duration,
    traffic: Traffic,
}

impl RequestTrace {
    /// Starts the trace of a decoded request whose frame was complete at `received`.
    pub fn begin(incoming: &Incoming, received: Instant) -> RequestTrace {
        let (slot, version, traffic) = match incoming {
            Incoming::UnsupportedApiVersions { .. } => {
                (ApiKey::ApiVersions as usize, 0, Traffic::Other)
            }
            Incoming::Request(request) => {
                let traffic = match &request.body {
                    RequestKind::Produce(body) => Traffic::Produce(produced(body)),
                    RequestKind::Fetch(body) => Traffic::Fetch {
                        follower: body.replica_id.0 >= 0 || body.replica_state.replica_id.0 >= 0,
                    },
                    _ => Traffic::Other,
                };
                (request.api_key as usize, request.api_version(), traffic)
            }
        };
        let fetch_slot = match traffic {
            Traffic::Fetch { follower: true } => Some(FETCH_FOLLOWER_SLOT),
            Traffic::Fetch { follower: false } => Some(FETCH_CONSUMER_SLOT),
            _ => None,
        };
        RequestTrace {
            slot,
            fetch_slot,
            version,
            received,
            started: received,
            handled: received,
            local: Duration::ZERO,
            remote: Duration::ZERO,
            traffic,
        }
    }

    /// The handler starts now (the request queue time ends).
    pub fn start(&mut self) {
        self.started = Instant::now();
    }

    /// The handler returned after `took`, of which `remote` was spent waiting on others.
    pub fn handler_returned(&mut self, took: Duration, remote: Duration) {
        self.remote = self.remote.saturating_add(remote);
        self.local = took.saturating_sub(remote);
    }

    /// A finisher (the sync-on-commit wait) took `took`: remote time.
    pub fn finisher_returned(&mut self, took: Duration) {
        self.remote = self.remote.saturating_add(took);
    }

    /// The answer is final: counts its error codes and the traffic it carried.
    /// `topic_name` resolves a topic id (Produce and Fetch v13+) through the image.
    pub fn answered(
        &mut self,
        metrics: &BrokerMetrics,
        response: &ResponseKind,
        files: &[FileRecords],
        topic_name: &dyn Fn(uuid::Uuid) -> Option<String>,
    ) {
        self.handled = Instant::now();
        let slots = [Some(self.slot), self.fetch_slot];
        super::errors::for_each(response, |code, n| {
            for slot in slots.into_iter().flatten() {
                let slot = u8::try_from(slot).unwrap_or(u8::MAX);
                metrics.requests.errors.get(&(slot, code)).add(n);
            }
        });
        let counters = |key: &TopicKey| match key {
            TopicKey::Name(name) => Some(metrics.topic(name.as_str())),
            TopicKey::Id(id) => metrics.topic_by_id(*id, || topic_name(*id)),
        };
        match (&self.traffic, response) {
            (Traffic::Produce(produced), ResponseKind::Produce(response)) => {
                record_produce(metrics, produced, response, counters)
            }
            (Traffic::Fetch { follower }, ResponseKind::Fetch(response)) => {
                record_fetch(metrics, *follower, response, files, counters)
            }
            // One leader answer per generation: one completed rebalance.
            (_, ResponseKind::JoinGroup(join))
                if join.error_code == 0 && join.leader == join.member_id =>
            {
                metrics.rebalances.inc();
            }
            _ => {}
        }
    }

    /// An `acks=0` Produce was handled without an answer, successfully (a failed one
    /// closes the connection): its traffic counts as appended.
    pub fn answered_silently(
        &mut self,
        metrics: &BrokerMetrics,
        topic_name: &dyn Fn(uuid::Uuid) -> Option<String>,
    ) {
        self.handled = Instant::now();
        if let Traffic::Produce(produced) = &self.traffic {
            for entry in produced {
                let topic = match &entry.topic {
                    TopicKey::Name(name) => Some(metrics.topic(name.as_str())),
                    TopicKey::Id(id) => metrics.topic_by_id(*id, || topic_name(*id)),
                };
                record_produced(metrics, entry, 0, topic);
            }
        }
    }

    /// The response was written: writing started at `write_started` and ended now.
    pub fn sent(self, metrics: &BrokerMetrics, write_started: Instant) {
        let now = Instant::now();
        let response_queue = write_started.saturating_duration_since(self.handled);
        let send = now.saturating_duration_since(write_started);
        self.record(metrics, response_queue, send, now);
    }

    /// No response is sent (a successful `acks=0` Produce) or the connection closed.
    pub fn unanswered(self, metrics: &BrokerMetrics) {
        let now = Instant::now();
        self.record(metrics, Duration::ZERO, Duration::ZERO, now);
    }

    fn record(
        self,
        metrics: &BrokerMetrics,
        response_queue: Duration,
        send: Duration,
        end: Instant,
    ) {
        let version = usize::try_from(self.version).unwrap_or(0).min(VERSIONS - 1);
        let request_queue = self.started.saturating_duration_since(self.received);
        let total = end.saturating_duration_since(self.received);
        for slot in [Some(self.slot), self.fetch_slot].into_iter().flatten() {
            let Some(api) = metrics.requests.api(slot) else {
                continue;
            };
            if let Some(counter) = api.versions.get(version) {
                counter.inc();
            }
            api.total.observe_duration(total);
            api.request_queue.observe_duration(request_queue);
            api.local.observe_duration(self.local);
            api.remote.observe_duration(self.remote);
            api.response_queue.observe_duration(response_queue);
            api.response_send.observe_duration(send);
        }
    }
}

/// The partitions of a Produce request with their bytes and record counts (the count
/// field of each batch header; the framing is walked without checking CRCs).
fn produced(body: &strom_protocol::messages::ProduceRequest) -> Vec<Produced> {
    let mut out = Vec::new();
    for topic in &body.topic_data {
        let key = TopicKey::new(&topic.name.0, topic.topic_id);
        for partition in &topic.partition_data {
            let bytes = partition.records.as_ref().map_or(&[][..], |b| &b[..]);
            let records = strom_records::batch_frames(bytes)
                .map_while(Result::ok)
                .map(|(header, _)| u64::try_from(header.records_count).unwrap_or(0))
                .sum();
            out.push(Produced {
                topic: key.clone(),
                partition: partition.index,
                bytes: bytes.len() as u64,
                records,
            });
        }
    }
    out
}

/// Errors after which a topic name is not known to exist: not recorded per topic, so that
/// clients cannot create series by naming topics.
fn names_unknown_topic(code: i16) -> bool {
    use strom_protocol::ErrorCode;
    code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
        || code == ErrorCode::UNKNOWN_TOPIC_ID.code()
        || code == ErrorCode::INVALID_TOPIC_EXCEPTION.code()
}

fn record_produce(
    metrics: &BrokerMetrics,
    produced: &[Produced],
    response: &strom_protocol::messages::ProduceResponse,
    counters: impl Fn(&TopicKey) -> Option<std::sync::Arc<TopicCounters>>,
) {
    let answers = response.responses.iter().flat_map(|topic| {
        let key = TopicKey::new(&topic.name.0, topic.topic_id);
        topic
            .partition_responses
            .iter()
            .map(move |p| (key.clone(), p.index, p.error_code))
    });
    // The handler answers in request order; a different order falls back to a search.
    let answers: Vec<(TopicKey, i32, i16)> = answers.collect();
    for (position, entry) in produced.iter().enumerate() {
        let error = match answers.get(position) {
            Some((key, index, error)) if *key == entry.topic && *index == entry.partition => *error,
            _ => answers
                .iter()
                .find(|(key, index, _)| *key == entry.topic && *index == entry.partition)
                .map_or(-1, |(_, _, error)| *error),
        };
        let topic = if names_unknown_topic(error) {
            None
        } else {
            counters(&entry.topic)
        };
        record_produced(metrics, entry, error, topic);
    }
}

/// Counts one partition of a Produce, answered with `error`, for all topics and its topic.
fn record_produced(
    metrics: &BrokerMetrics,
    entry: &Produced,
    error: i16,
    topic: Option<std::sync::Arc<TopicCounters>>,
) {
    for counters in std::iter::once(&metrics.all_topics).chain(topic.as_deref()) {
        counters.produce_requests.inc();
        if error == 0 {
            counters.bytes_in.add(entry.bytes);
            counters.messages_in.add(entry.records);
        } else {
            counters.failed_produce_requests.inc();
        }
    }
}

fn record_fetch(
    metrics: &BrokerMetrics,
    follower: bool,
    response: &strom_protocol::messages::FetchResponse,
    files: &[FileRecords],
    counters: impl Fn(&TopicKey) -> Option<std::sync::Arc<TopicCounters>>,
) {
    for topic in &response.responses {
        let key = TopicKey::new(&topic.topic.0, topic.topic_id);
        let mut resolved = None;
        for partition in &topic.partitions {
            let (bytes, records) = fetched(partition.records.as_deref(), files);
            let error = partition.error_code;
            if resolved.is_none() && !names_unknown_topic(error) {
                resolved = Some(counters(&key));
            }
            let topic_counters = resolved.clone().flatten();
            for counters in std::iter::once(&metrics.all_topics).chain(topic_counters.as_deref()) {
                counters.fetch_requests.inc();
                if error != 0 {
                    counters.failed_fetch_requests.inc();
                } else if follower {
                    counters.replication_bytes_out.add(bytes);
                } else {
                    counters.bytes_out.add(bytes);
                    counters.messages_out.add(records);
                }
            }
        }
    }
}

/// Bytes and records (offsets spanned) of one partition's records in a Fetch response:
/// in memory, or a marker standing for a range of a segment file (`sendfile.rs`).
fn fetched(records: Option<&[u8]>, files: &[FileRecords]) -> (u64, u64) {
    let Some(records) = records else {
        return (0, 0);
    };
    if records.len() == MARKER_BYTES {
        if let Some(file) = files.iter().find(|f| f.marker[..] == *records) {
            let span = file
                .range
                .next_offset
                .saturating_sub(file.range.first_offset);
            return (file.range.len_bytes, u64::try_from(span).unwrap_or(0));
        }
    }
    let span = strom_records::batch_frames(records)
        .map_while(Result::ok)
        .map(|(header, _)| u64::try_from(header.last_offset_delta).unwrap_or(0) + 1)
        .sum();
    (records.len() as u64, span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_protocol::messages::{
        produce_request, produce_response, ProduceRequest, ProduceResponse, RequestHeader,
        TopicName,
    };
    use strom_protocol::DecodedRequest;

    /// A Produce of one batch of `records` records to partition 0 of `topic`, decoded.
    fn produce_incoming(topic: &str, records: usize) -> Incoming {
        let mut builder = strom_records::BatchBuilder::new(0, 1_700_000_000_000);
        for i in 0..records {
            builder
                .append(
                    1_700_000_000_000,
                    None,
                    Some(bytes::Bytes::from(format!("value-{i:04}"))),
                    Vec::new(),
                )
                .unwrap();
        }
        let batch = bytes::Bytes::from(builder.build().unwrap());
        let body = ProduceRequest::default().with_acks(1).with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch))]),
        ]);
        Incoming::Request(Box::new(DecodedRequest {
            header: RequestHeader::default()
                .with_request_api_key(0)
                .with_request_api_version(9),
            api_key: ApiKey::Produce,
            body: RequestKind::Produce(body),
        }))
    }

    fn produce_answer(topic: &str, error: i16) -> ResponseKind {
        ResponseKind::Produce(ProduceResponse::default().with_responses(vec![
            produce_response::TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_responses(vec![
                    produce_response::PartitionProduceResponse::default()
                        .with_index(0)
                        .with_error_code(error),
                ]),
        ]))
    }

    fn one_request(metrics: &BrokerMetrics, incoming: &Incoming, answer: &ResponseKind) {
        let mut trace = RequestTrace::begin(incoming, Instant::now());
        trace.start();
        trace.handler_returned(Duration::from_micros(50), Duration::ZERO);
        trace.answered(metrics, answer, &[], &|_| None);
        trace.sent(metrics, Instant::now());
    }

    #[test]
    fn a_produce_counts_its_bytes_records_and_errors() {
        let metrics = BrokerMetrics::new(super::super::MetricsConfig::default());
        let incoming = produce_incoming("orders", 5);
        let Incoming::Request(request) = &incoming else {
            unreachable!()
        };
        let RequestKind::Produce(body) = &request.body else {
            unreachable!()
        };
        let batch_bytes = body.topic_data[0].partition_data[0]
            .records
            .as_ref()
            .unwrap()
            .len() as u64;
        one_request(&metrics, &incoming, &produce_answer("orders", 0));
        one_request(&metrics, &incoming, &produce_answer("orders", 0));
        one_request(&metrics, &incoming, &produce_answer("orders", 6));
        let topic = metrics.topic("orders");
        assert_eq!(topic.messages_in.get(), 10);
        assert_eq!(topic.bytes_in.get(), 2 * batch_bytes);
        assert_eq!(topic.produce_requests.get(), 3);
        assert_eq!(topic.failed_produce_requests.get(), 1);
        assert_eq!(metrics.all_topics.messages_in.get(), 10);
        let produce = metrics.requests.api(0).unwrap();
        assert_eq!(produce.versions[9].get(), 3);
        assert_eq!(produce.total.count(), 3);
        assert_eq!(metrics.requests.errors.get(&(0, 0)).get(), 2);
        assert_eq!(metrics.requests.errors.get(&(0, 6)).get(), 1);
        // A topic that does not exist is not recorded per topic.
        one_request(&metrics, &incoming, &produce_answer("orders", 3));
        let unknown = produce_incoming("nope", 1);
        one_request(&metrics, &unknown, &produce_answer("nope", 3));
        assert_eq!(metrics.topics.len(), 1);
        assert_eq!(metrics.all_topics.failed_produce_requests.get(), 3);
    }

    /// What recording costs per Produce request (one partition, one batch): run with
    /// `cargo test --release -p strom-broker --lib recording_cost -- --ignored --nocapture`;
    /// figures in docs/PERFORMANCE.md.
    #[test]
    #[ignore]
    fn recording_cost() {
        let metrics = BrokerMetrics::new(super::super::MetricsConfig::default());
        for records in [1, 100] {
            let incoming = produce_incoming("orders", records);
            let answer = produce_answer("orders", 0);
            let rounds = 1_000_000u32;
            for _ in 0..10_000 {
                one_request(&metrics, &incoming, &answer);
            }
            let started = Instant::now();
            for _ in 0..rounds {
                one_request(&metrics, &incoming, &answer);
            }
            let per = started.elapsed() / rounds;
            // The clock reads alone (four per request in `one_request`).
            let started = Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(Instant::now());
            }
            let clock = started.elapsed() / rounds;
            println!(
                "recording one Produce request ({records} record(s) in one batch): {per:?} \
                 (of which one clock read costs {clock:?})"
            );
        }
    }

    #[test]
    fn kafka_request_names() {
        assert_eq!(slot_name(0).as_deref(), Some("Produce"));
        assert_eq!(slot_name(1).as_deref(), Some("Fetch"));
        assert_eq!(slot_name(18).as_deref(), Some("ApiVersions"));
        assert_eq!(
            slot_name(FETCH_CONSUMER_SLOT).as_deref(),
            Some("FetchConsumer")
        );
        assert_eq!(
            slot_name(FETCH_FOLLOWER_SLOT).as_deref(),
            Some("FetchFollower")
        );
        assert_eq!(slot_name(125), None);
    }
}
