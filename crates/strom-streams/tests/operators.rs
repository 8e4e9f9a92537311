//! Every DSL operator and the processor API against the TopologyTestDriver: records piped
//! in, records read out, stores inspected, time advanced; late and out-of-order records
//! and window boundaries included.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strom_streams::*;

const APP: &str = "topology-test-driver";

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn i() -> SerdeRef<i64> {
    Serdes::i64()
}

fn str_stream(b: &StreamsBuilder, topic: &str) -> KStream<String, String> {
    b.stream(topic, Consumed::with(s(), s()))
}

fn driver(b: &StreamsBuilder) -> TopologyTestDriver {
    TopologyTestDriver::new(b.build().unwrap()).unwrap()
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

#[test]
fn filter_map_flat_map_select_key_peek_foreach() {
    let b = StreamsBuilder::new();
    let input = str_stream(&b, "in");
    input
        .filter(|_, v| v.len() > 1)
        .to("filtered", Produced::with(s(), s()));
    input
        .filter_not(|_, v| v.len() > 1)
        .to("short", Produced::with(s(), s()));
    input
        .map(|k, v| (v.clone(), k.clone()))
        .to("swapped", Produced::with(s(), s()));
    input
        .map_values(|v| v.len() as i64)
        .to("lengths", Produced::with(s(), i()));
    input
        .map_values_with_key(|k, v| format!("{k}={v}"))
        .to("joined", Produced::with(s(), s()));
    input
        .flat_map(|k, v| {
            v.chars()
                .map(|c| (c.to_string(), k.clone()))
                .collect::<Vec<_>>()
        })
        .to("chars", Produced::with(s(), s()));
    input
        .flat_map_values(|v| v.split('-').map(str::to_string).collect::<Vec<_>>())
        .to("parts", Produced::with(s(), s()));
    input
        .select_key(|_, v| v.to_uppercase())
        .to("rekeyed", Produced::with(s(), s()));
    let peeked = Arc::new(AtomicUsize::new(0));
    let p = peeked.clone();
    input
        .peek(move |_, _| {
            p.fetch_add(1, Ordering::SeqCst);
        })
        .to("peeked", Produced::with(s(), s()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    input.foreach(move |k, v| s2.lock().unwrap().push(format!("{k}:{v}")));

    let mut d = driver(&b);
    let t = d.input_topic("in", s(), s());
    t.pipe(&mut d, "a".into(), "x".into(), 1).unwrap();
    t.pipe(&mut d, "b".into(), "y-z".into(), 2).unwrap();
    let out = |d: &mut TopologyTestDriver, topic: &str| {
        d.output_topic(topic, s(), s()).read_key_values(d).unwrap()
    };
    assert_eq!(out(&mut d, "filtered"), vec![kv("b", "y-z")]);
    assert_eq!(out(&mut d, "short"), vec![kv("a", "x")]);
    assert_eq!(out(&mut d, "swapped"), vec![kv("x", "a"), kv("y-z", "b")]);
    assert_eq!(
        d.output_topic("lengths", s(), i())
            .read_key_values(&mut d)
            .unwrap(),
        vec![("a".to_string(), 1), ("b".to_string(), 3)]
    );
    assert_eq!(
        out(&mut d, "joined"),
        vec![kv("a", "a=x"), kv("b", "b=y-z")]
    );
    assert_eq!(
        out(&mut d, "chars"),
        vec![kv("x", "a"), kv("y", "b"), kv("-", "b"), kv("z", "b")]
    );
    assert_eq!(
        out(&mut d, "parts"),
        vec![kv("a", "x"), kv("b", "y"), kv("b", "z")]
    );
    assert_eq!(out(&mut d, "rekeyed"), vec![kv("X", "x"), kv("Y-Z", "y-z")]);
    assert_eq!(out(&mut d, "peeked").len(), 2);
    assert_eq!(peeked.load(Ordering::SeqCst), 2);
    assert_eq!(*seen.lock().unwrap(), vec!["a:x", "b:y-z"]);
    assert_eq!(d.metrics().records_processed, 2);
}

#[test]
fn split_branches_to_the_first_match_and_merge_rejoins() {
    let b = StreamsBuilder::new();
    let branches = str_stream(&b, "in")
        .split()
        .branch("long", |_, v| v.len() > 3)
        .branch("a", |_, v| v.starts_with('a'))
        .default_branch("rest");
    assert_eq!(
        branches.keys().cloned().collect::<Vec<_>>(),
        vec!["a", "long", "rest"]
    );
    branches["long"].to("long", Produced::with(s(), s()));
    branches["a"].to("a", Produced::with(s(), s()));
    branches["rest"].to("rest", Produced::with(s(), s()));
    branches["a"]
        .merge(&branches["rest"])
        .to("merged", Produced::with(s(), s()));
    let mut d = driver(&b);
    let t = d.input_topic("in", s(), s());
    for v in ["abcde", "ab", "xy", "zzzzz"] {
        t.pipe(&mut d, "k".into(), v.into(), 0).unwrap();
    }
    let vals = |d: &mut TopologyTestDriver, topic: &str| -> Vec<String> {
        d.output_topic(topic, s(), s())
            .read_key_values(d)
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    };
    assert_eq!(vals(&mut d, "long"), vec!["abcde", "zzzzz"]);
    assert_eq!(vals(&mut d, "a"), vec!["ab"]);
    assert_eq!(vals(&mut d, "rest"), vec!["xy"]);
    assert_eq!(vals(&mut d, "merged"), vec!["ab", "xy"]);

    let b = StreamsBuilder::new();
    let branches = str_stream(&b, "in")
        .split()
        .branch("x", |_, v| v == "x")
        .no_default_branch();
    branches["x"].to("x", Produced::with(s(), s()));
    let mut d = driver(&b);
    let t = d.input_topic("in", s(), s());
    t.pipe(&mut d, "k".into(), "y".into(), 0).unwrap();
    t.pipe(&mut d, "k".into(), "x".into(), 0).unwrap();
    assert_eq!(d.output_len("x"), 1);
}

#[test]
fn word_count_repartitions_counts_and_logs_to_the_changelog() {
    let b = StreamsBuilder::new();
    b.stream("lines", Consumed::with(Serdes::unit(), s()))
        .flat_map_values(|line: &String| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(|_, w: &String| w.clone(), Grouped::with(s(), s()))
        .count(Materialized::as_store("counts"))
        .to_stream()
        .filter_some()
        .map_values(|c| c.to_string())
        .to("words", Produced::with(s(), s()));
    let topology = b.build().unwrap();
    let described = topology.describe();
    assert!(described.contains("Sub-topology: 0"), "{described}");
    assert!(described.contains("Sub-topology: 1"), "{described}");
    assert!(
        described.contains("(topic: counts-repartition)"),
        "{described}"
    );
    assert!(
        described.contains("(topics: [counts-repartition])"),
        "{described}"
    );
    assert!(described.contains("stores: [counts]"), "{described}");
    let mut d = TopologyTestDriver::new(topology).unwrap();
    let t = d.input_topic("lines", Serdes::unit(), s());
    t.pipe_value(&mut d, "Hello world".into(), 10).unwrap();
    t.pipe_value(&mut d, "hello  KAFKA hello".into(), 20)
        .unwrap();
    let out = d
        .output_topic("words", s(), s())
        .read_key_values(&mut d)
        .unwrap();
    assert_eq!(
        out,
        vec![
            kv("hello", "1"),
            kv("world", "1"),
            kv("hello", "2"),
            kv("kafka", "1"),
            kv("hello", "3")
        ]
    );
    assert_eq!(d.output_len(&format!("{APP}-counts-repartition")), 5);
    let changelog = format!("{APP}-counts-changelog");
    assert_eq!(d.output_len(&changelog), 5);
    let last = std::iter::from_fn(|| d.read_output(&changelog))
        .last()
        .unwrap();
    assert_eq!(last.key.as_deref(), Some(&b"hello"[..]));
    assert_eq!(last.value.as_deref(), Some(&3i64.to_be_bytes()[..]));
    assert_eq!(last.partition, Some(0));
    let store = d.key_value_store::<String, i64>("counts").unwrap();
    assert_eq!(store.get(&"hello".into()).unwrap(), Some(3));
    assert_eq!(store.approximate_num_entries().unwrap(), 3);
    assert_eq!(store.all().unwrap().len(), 3);
}

#[test]
fn reduce_aggregate_and_group_by_key_without_repartition() {
    let b = StreamsBuilder::new();
    let nums = b.stream("nums", Consumed::with(s(), i()));
    nums.group_by_key(Grouped::default())
        .reduce(|a, b| a + b, Materialized::as_store("sums"))
        .to_stream()
        .to("sums", Produced::with(s(), Serdes::nullable(i())));
    nums.group_by_key(Grouped::default())
        .aggregate(
            String::new,
            |_, v, agg| format!("{agg}{v},"),
            Materialized::as_store("lists").with_value_serde(s()),
        )
        .to_stream()
        .filter_some()
        .to("lists", Produced::with(s(), s()));
    let topology = b.build().unwrap();
    assert!(
        !topology.describe().contains("repartition"),
        "no key change, no repartition"
    );
    let mut d = TopologyTestDriver::new(topology).unwrap();
    let t = d.input_topic("nums", s(), i());
    t.pipe(&mut d, "a".into(), 1, 0).unwrap();
    t.pipe(&mut d, "b".into(), 5, 0).unwrap();
    t.pipe(&mut d, "a".into(), 2, 0).unwrap();
    let sums = d
        .output_topic("sums", s(), Serdes::nullable(i()))
        .read_key_values(&mut d)
        .unwrap();
    assert_eq!(
        sums,
        vec![
            ("a".into(), Some(1)),
            ("b".into(), Some(5)),
            ("a".into(), Some(3))
        ]
    );
    let lists = d
        .output_topic("lists", s(), s())
        .read_key_values_to_map(&mut d)
        .unwrap();
    assert_eq!(lists["a"], "1,2,");
}

#[test]
fn tables_apply_tombstones_filter_map_values_and_to_stream() {
    let b = StreamsBuilder::new();
    let table = b.table(
        "users",
        Consumed::with(s(), s()),
        Materialized::as_store("users-store"),
    );
    table
        .filter(|_, v| !v.is_empty())
        .map_values(|v| v.len() as i64)
        .to_stream()
        .to("lengths", Produced::with(s(), Serdes::nullable(i())));
    b.stream("events", Consumed::with(s(), s()))
        .to_table(
            Materialized::as_store("latest")
                .with_key_serde(s())
                .with_value_serde(s()),
        )
        .to_stream()
        .filter_some()
        .to("latest", Produced::with(s(), s()));
    let mut d = driver(&b);
    let users = d.input_topic("users", s(), s());
    users.pipe(&mut d, "u1".into(), "ann".into(), 1).unwrap();
    users.pipe(&mut d, "u2".into(), "".into(), 2).unwrap();
    users.pipe(&mut d, "u1".into(), "annie".into(), 3).unwrap();
    users.pipe_tombstone(&mut d, "u1".into(), 4).unwrap();
    let out = d
        .output_topic("lengths", s(), Serdes::nullable(i()))
        .read_key_values(&mut d)
        .unwrap();
    assert_eq!(
        out,
        vec![
            ("u1".into(), Some(3)),
            ("u1".into(), Some(5)),
            ("u1".into(), None)
        ]
    );
    let store = d.key_value_store::<String, String>("users-store").unwrap();
    assert_eq!(store.get(&"u1".into()).unwrap(), None);
    assert_eq!(store.get(&"u2".into()).unwrap(), Some(String::new()));
    let ev = d.input_topic("events", s(), s());
    ev.pipe(&mut d, "k".into(), "v1".into(), 1).unwrap();
    ev.pipe(&mut d, "k".into(), "v2".into(), 1).unwrap();
    assert_eq!(
        d.key_value_store::<String, String>("latest")
            .unwrap()
            .get(&"k".into())
            .unwrap()
            .as_deref(),
        Some("v2")
    );
}

#[test]
fn grouped_table_count_subtracts_rows_that_move() {
    let b = StreamsBuilder::new();
    b.table(
        "user-region",
        Consumed::with(s(), s()),
        Materialized::default(),
    )
    .group_by(|_, region| (region.clone(), 1i64), Grouped::with(s(), i()))
    .count(Materialized::as_store("per-region"))
    .to_stream()
    .to("regions", Produced::with(s(), Serdes::nullable(i())));
    let mut d = driver(&b);
    let t = d.input_topic("user-region", s(), s());
    t.pipe(&mut d, "alice".into(), "eu".into(), 1).unwrap();
    t.pipe(&mut d, "bob".into(), "eu".into(), 2).unwrap();
    t.pipe(&mut d, "alice".into(), "us".into(), 3).unwrap();
    t.pipe_tombstone(&mut d, "bob".into(), 4).unwrap();
    let store = d.key_value_store::<String, i64>("per-region").unwrap();
    assert_eq!(store.get(&"eu".into()).unwrap(), Some(0));
    assert_eq!(store.get(&"us".into()).unwrap(), Some(1));
    let out = d
        .output_topic("regions", s(), Serdes::nullable(i()))
        .read_key_values(&mut d)
        .unwrap();
    assert_eq!(
        out,
        vec![
            ("eu".into(), Some(1)),
            ("eu".into(), Some(2)),
            ("eu".into(), Some(1)),
            ("us".into(), Some(1)),
            ("eu".into(), Some(0)),
        ]
    );
}

#[test]
fn repartition_and_through_pass_records_through_topics() {
    let b = StreamsBuilder::new();
    str_stream(&b, "in")
        .select_key(|_, v| v.clone())
        .repartition(
            Repartitioned::with(s(), s())
                .named("by-value")
                .with_partitions(4),
        )
        .through("middle", Produced::with(s(), s()))
        .to("out", Produced::with(s(), s()));
    let mut d = driver(&b);
    d.input_topic("in", s(), s())
        .pipe(&mut d, "k".into(), "v".into(), 7)
        .unwrap();
    assert_eq!(d.output_len(&format!("{APP}-by-value-repartition")), 1);
    assert_eq!(d.output_len("middle"), 1);
    let r = d
        .output_topic("out", s(), s())
        .read_record(&mut d)
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.key.as_str(), r.value.as_str(), r.timestamp),
        ("v", "v", 7)
    );
}

#[test]
fn headers_and_timestamps_propagate_and_extractors_set_event_time() {
    let b = StreamsBuilder::new();
    b.stream(
        "in",
        Consumed::with(s(), s()).with_timestamp_extractor(|r: &RawRecord<'_>, _| {
            r.value
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1)
        }),
    )
    .map_values(|v| v.clone())
    .to("out", Produced::with(s(), s()));
    let mut d = driver(&b);
    d.pipe_raw(
        "in",
        Some("k".into()),
        Some("1234".into()),
        1,
        vec![Header::new("h", Some("x".into()))],
    )
    .unwrap();
    d.pipe_raw("in", Some("k".into()), Some("nope".into()), 1, Vec::new())
        .unwrap();
    let r = d.read_output("out").unwrap();
    assert_eq!(r.timestamp, 1234);
    assert_eq!(r.headers, vec![Header::new("h", Some("x".into()))]);
    assert!(
        d.read_output("out").is_none(),
        "negative event time is skipped"
    );
    assert_eq!(d.metrics().records_skipped, 1);
}

#[test]
fn undeserializable_records_fail_the_task() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), i()))
        .to("out", Produced::with(s(), i()));
    let mut d = driver(&b);
    let e = d
        .pipe_raw("in", Some("k".into()), Some("short".into()), 0, Vec::new())
        .unwrap_err();
    assert!(matches!(e, StreamsError::Serde { .. }), "{e}");
}

#[test]
fn build_reports_missing_serdes_and_unknown_stores() {
    let b = StreamsBuilder::new();
    str_stream(&b, "in")
        .map(|k, v| (k.len() as i64, v.clone()))
        .group_by_key(Grouped::default())
        .count(Materialized::default());
    let e = b.build().err().unwrap();
    assert!(e.to_string().contains("serde"), "{e}");

    struct P;
    impl Processor<String, String, String, String> for P {
        fn process(
            &mut self,
            _: &mut ProcessorContext<'_, '_, String, String>,
            _: Record<String, String>,
        ) -> Result<()> {
            Ok(())
        }
    }
    let b = StreamsBuilder::new();
    str_stream(&b, "in").process(|| P, &["nope"]);
    let e = b.build().err().unwrap();
    assert!(e.to_string().contains("nope"), "{e}");
}

/// A processor keeping a running count per key, emitting totals on punctuation.
struct Totals {
    store: Option<KeyValueStore<String, i64>>,
    stream_schedule: u64,
}

impl Processor<String, String, String, String> for Totals {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, '_, String, String>) -> Result<()> {
        self.store = Some(ctx.key_value_store("totals")?);
        self.stream_schedule = ctx.schedule(Duration::from_millis(10), PunctuationType::StreamTime);
        ctx.schedule(Duration::from_secs(60), PunctuationType::WallClockTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, String>,
        record: Record<String, String>,
    ) -> Result<()> {
        let store = self.store.as_ref().unwrap();
        let n = store.get(&record.key)?.unwrap_or(0) + 1;
        store.put(&record.key, &n)?;
        assert_eq!(ctx.record_context().topic, "in");
        ctx.forward(Record::new(
            record.key,
            format!("seen {n}"),
            record.timestamp,
        ))
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, String>,
        schedule: u64,
        ts: i64,
    ) -> Result<()> {
        let kind = if schedule == self.stream_schedule {
            "stream"
        } else {
            "wall"
        };
        let total: i64 = self
            .store
            .as_ref()
            .unwrap()
            .all()?
            .iter()
            .map(|(_, n)| n)
            .sum();
        ctx.forward(Record::new(kind.to_string(), format!("{total}@{ts}"), ts))
    }
}

#[test]
fn processor_api_with_a_store_and_both_punctuations() {
    let b = StreamsBuilder::new();
    b.add_state_store(StoreBuilder::key_value("totals", s(), i()).in_memory());
    str_stream(&b, "in")
        .process(
            || Totals {
                store: None,
                stream_schedule: 0,
            },
            &["totals"],
        )
        .to("out", Produced::with(s(), s()));
    let mut d = TopologyTestDriver::with_options(b.build().unwrap(), APP, 1_000).unwrap();
    let t = d.input_topic("in", s(), s());
    t.pipe(&mut d, "a".into(), "x".into(), 5).unwrap();
    t.pipe(&mut d, "a".into(), "y".into(), 12).unwrap();
    t.pipe(&mut d, "b".into(), "z".into(), 13).unwrap();
    t.pipe(&mut d, "b".into(), "z".into(), 35).unwrap();
    let out = d
        .output_topic("out", s(), s())
        .read_key_values(&mut d)
        .unwrap();
    // Stream time punctuations at 5 (aligned to 0: first record), then 10, then 30 (20
    // is skipped: stream time jumped from 13 to 35).
    assert_eq!(
        out,
        vec![
            kv("a", "seen 1"),
            kv("stream", "1@5"),
            kv("a", "seen 2"),
            kv("stream", "2@12"),
            kv("b", "seen 1"),
            kv("b", "seen 2"),
            kv("stream", "4@35"),
        ]
    );
    d.advance_wall_clock_time(Duration::from_secs(59)).unwrap();
    assert_eq!(d.output_len("out"), 0);
    d.advance_wall_clock_time(Duration::from_secs(1)).unwrap();
    assert_eq!(
        d.output_topic("out", s(), s())
            .read_key_values(&mut d)
            .unwrap(),
        vec![kv("wall", "4@61000")]
    );
    assert_eq!(d.metrics().punctuations, 4);
    assert_eq!(
        d.output_len(&format!("{APP}-totals-changelog")),
        4,
        "in-memory stores are logged too"
    );
}
