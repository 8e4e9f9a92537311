//! Windowed aggregations (tumbling, hopping, sliding, session; grace, late and
//! out-of-order records, window boundaries), suppress, and every join, against the
//! TopologyTestDriver.

use std::time::Duration;

use strom_streams::*;

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn i() -> SerdeRef<i64> {
    Serdes::i64()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

type Row = (String, i64, i64, Option<i64>);

/// Windowed counts as (key, start, end, count) read from `topic`.
fn windowed_counts(b: &StreamsBuilder, table: KTable<Windowed<String>, i64>, topic: &str) {
    let _ = b;
    table
        .to_stream()
        .map(|w: &Windowed<String>, c: &Option<i64>| {
            (format!("{}@{}-{}", w.key, w.window.start, w.window.end), *c)
        })
        .to(topic, Produced::with(s(), Serdes::nullable(i())));
}

fn read_rows(d: &mut TopologyTestDriver, topic: &str) -> Vec<Row> {
    d.output_topic(topic, s(), Serdes::nullable(i()))
        .read_key_values(d)
        .unwrap()
        .into_iter()
        .map(|(k, c)| {
            let (key, range) = k.split_once('@').unwrap();
            let (a, b) = range.split_once('-').unwrap();
            (key.to_string(), a.parse().unwrap(), b.parse().unwrap(), c)
        })
        .collect()
}

fn row(k: &str, start: i64, end: i64, c: i64) -> Row {
    (k.to_string(), start, end, Some(c))
}

#[test]
fn tumbling_windows_with_grace_accept_out_of_order_and_drop_late_records() {
    let b = StreamsBuilder::new();
    let counts = b
        .stream("in", Consumed::with(s(), s()))
        .group_by_key(Grouped::default())
        .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
        .count(Materialized::as_store("wc"));
    windowed_counts(&b, counts, "out");
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let t = d.input_topic("in", s(), s());
    for ts in [0, 9, 10, 3] {
        t.pipe(&mut d, "a".into(), "x".into(), ts).unwrap();
    }
    // Stream time 14: window [0,10) closes at 15.
    t.pipe(&mut d, "a".into(), "x".into(), 14).unwrap();
    t.pipe(&mut d, "a".into(), "x".into(), 4).unwrap();
    // Stream time 15: [0,10) is closed now; a record at 9 is late.
    t.pipe(&mut d, "a".into(), "x".into(), 15).unwrap();
    t.pipe(&mut d, "a".into(), "x".into(), 9).unwrap();
    assert_eq!(
        read_rows(&mut d, "out"),
        vec![
            row("a", 0, 10, 1),
            row("a", 0, 10, 2),
            row("a", 10, 20, 1),
            row("a", 0, 10, 3),
            row("a", 10, 20, 2),
            row("a", 0, 10, 4),
            row("a", 10, 20, 3),
        ]
    );
    assert_eq!(d.metrics().records_dropped_late, 1);
    let store = d.window_store::<String, i64>("wc").unwrap();
    assert_eq!(store.fetch(&"a".into(), 0).unwrap(), Some(4));
    assert_eq!(
        store.fetch_range(&"a".into(), 0, 10).unwrap(),
        vec![(0, 4), (10, 3)]
    );
    assert_eq!(d.output_len("topology-test-driver-wc-changelog"), 7);
}

#[test]
fn hopping_windows_count_each_record_in_every_window_it_falls_in() {
    let b = StreamsBuilder::new();
    let counts = b
        .stream("in", Consumed::with(s(), s()))
        .group_by_key(Grouped::default())
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(5)))
        .count(Materialized::default());
    windowed_counts(&b, counts, "out");
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let t = d.input_topic("in", s(), s());
    t.pipe(&mut d, "k".into(), "x".into(), 7).unwrap();
    t.pipe(&mut d, "k".into(), "x".into(), 10).unwrap();
    assert_eq!(
        read_rows(&mut d, "out"),
        vec![
            row("k", 0, 10, 1),
            row("k", 5, 15, 1),
            row("k", 5, 15, 2),
            row("k", 10, 20, 1)
        ]
    );
    // No grace: stream time 10 closed [0,10); a record at 9 only reaches [5,15).
    t.pipe(&mut d, "k".into(), "x".into(), 9).unwrap();
    assert_eq!(read_rows(&mut d, "out"), vec![row("k", 5, 15, 3)]);
    assert_eq!(d.metrics().records_dropped_late, 1);
}

#[test]
fn suppress_emits_each_window_once_when_it_closes() {
    let b = StreamsBuilder::new();
    let counts = b
        .stream("in", Consumed::with(s(), s()))
        .group_by_key(Grouped::default())
        .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(2)))
        .count(Materialized::as_store("counts"))
        .suppress(Suppressed::until_window_closes());
    windowed_counts(&b, counts, "final");
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let t = d.input_topic("in", s(), s());
    for (k, ts) in [("a", 1), ("b", 2), ("a", 5), ("a", 11), ("a", 9)] {
        t.pipe(&mut d, k.into(), "x".into(), ts).unwrap();
    }
    assert_eq!(d.output_len("final"), 0, "nothing closed at stream time 11");
    t.pipe(&mut d, "c".into(), "x".into(), 12).unwrap();
    assert_eq!(
        read_rows(&mut d, "final"),
        vec![row("a", 0, 10, 3), row("b", 0, 10, 1)]
    );
    t.pipe(&mut d, "a".into(), "x".into(), 8).unwrap();
    assert_eq!(d.metrics().records_dropped_late, 1);
    t.pipe(&mut d, "c".into(), "x".into(), 30).unwrap();
    assert_eq!(
        read_rows(&mut d, "final"),
        vec![row("a", 10, 20, 1), row("c", 10, 20, 1)]
    );
}

#[test]
fn sliding_windows_aggregate_records_within_the_difference() {
    let b = StreamsBuilder::new();
    let sums = b
        .stream("in", Consumed::with(s(), i()))
        .group_by_key(Grouped::default())
        .windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(ms(10)))
        .reduce(|a, b| a + b, Materialized::as_store("sliding"));
    windowed_counts(&b, sums, "out");
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let t = d.input_topic("in", s(), i());
    t.pipe(&mut d, "k".into(), 1, 5).unwrap();
    // Records earlier than the difference share the first window, [0, 10].
    assert_eq!(read_rows(&mut d, "out"), vec![row("k", 0, 10, 1)]);
    t.pipe(&mut d, "k".into(), 10, 12).unwrap();
    // New left window [2,12] holds both; the first record's right window [6,16] holds 12.
    assert_eq!(
        read_rows(&mut d, "out"),
        vec![row("k", 2, 12, 11), row("k", 6, 16, 10)]
    );
    t.pipe(&mut d, "k".into(), 100, 30).unwrap();
    // [20,30] holds only 30; [13,23] (right of 12) would hold nothing.
    assert_eq!(read_rows(&mut d, "out"), vec![row("k", 20, 30, 100)]);
    // Out of order (stream time 30, no grace): its own left window [15,25] is closed,
    // but it joins [20,30] and opens a right window [26,36] holding 30.
    t.pipe(&mut d, "k".into(), 1000, 25).unwrap();
    assert_eq!(
        read_rows(&mut d, "out"),
        vec![row("k", 20, 30, 1100), row("k", 26, 36, 100)]
    );
    // Too old for any open window: dropped and counted.
    t.pipe(&mut d, "k".into(), 1, 3).unwrap();
    assert_eq!(d.metrics().records_dropped_late, 1);
    assert!(read_rows(&mut d, "out").is_empty());
}

#[test]
fn session_windows_merge_when_a_record_bridges_the_gap() {
    let b = StreamsBuilder::new();
    let counts = b
        .stream("in", Consumed::with(s(), s()))
        .group_by_key(Grouped::default())
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(ms(5), ms(0)))
        .count(Materialized::as_store("sessions"));
    counts
        .to_stream()
        .map(|w: &Windowed<String>, c: &Option<i64>| {
            (format!("{}@{}-{}", w.key, w.window.start, w.window.end), *c)
        })
        .to("out", Produced::with(s(), Serdes::nullable(i())));
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let t = d.input_topic("in", s(), s());
    t.pipe(&mut d, "u".into(), "x".into(), 0).unwrap();
    t.pipe(&mut d, "u".into(), "x".into(), 10).unwrap();
    assert_eq!(
        read_rows(&mut d, "out"),
        vec![row("u", 0, 0, 1), row("u", 10, 10, 1)]
    );
    // 5 is within 5 of both: the sessions merge into [0,10].
    t.pipe(&mut d, "u".into(), "x".into(), 5).unwrap();
    assert_eq!(
        read_rows(&mut d, "out"),
        vec![
            ("u".into(), 0, 0, None),
            ("u".into(), 10, 10, None),
            row("u", 0, 10, 3)
        ]
    );
    let store = d.session_store::<String, i64>("sessions").unwrap();
    assert_eq!(
        store.fetch(&"u".into()).unwrap(),
        vec![(Window::new(0, 10), 3)]
    );
    // Far ahead: a new session; then a record for the old one is late.
    t.pipe(&mut d, "u".into(), "x".into(), 100).unwrap();
    t.pipe(&mut d, "u".into(), "x".into(), 3).unwrap();
    assert_eq!(read_rows(&mut d, "out"), vec![row("u", 100, 100, 1)]);
    assert_eq!(d.metrics().records_dropped_late, 1);
}

fn joined(b: &StreamsBuilder, stream: KStream<String, String>, topic: &str) {
    let _ = b;
    stream.to(topic, Produced::with(s(), s()));
}

fn read(d: &mut TopologyTestDriver, topic: &str) -> Vec<(String, String)> {
    d.output_topic(topic, s(), s()).read_key_values(d).unwrap()
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

#[test]
fn stream_stream_joins_inner_left_and_outer() {
    let b = StreamsBuilder::new();
    let left = b.stream("left", Consumed::with(s(), s()));
    let right = b.stream("right", Consumed::with(s(), s()));
    let w = JoinWindows::of_time_difference_and_grace(ms(10), ms(0));
    joined(
        &b,
        left.join(
            &right,
            |l, r| format!("{l}+{r}"),
            w,
            StreamJoined::default().named("inner"),
        ),
        "inner",
    );
    joined(
        &b,
        left.left_join(
            &right,
            |l, r| format!("{l}+{}", r.map_or("null", |r| r.as_str())),
            w,
            StreamJoined::default().named("left"),
        ),
        "leftj",
    );
    joined(
        &b,
        left.outer_join(
            &right,
            |l, r| {
                format!(
                    "{}+{}",
                    l.map_or("null", |l| l.as_str()),
                    r.map_or("null", |r| r.as_str())
                )
            },
            w,
            StreamJoined::default().named("outer"),
        ),
        "outer",
    );
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let l = d.input_topic("left", s(), s());
    let r = d.input_topic("right", s(), s());
    l.pipe(&mut d, "k".into(), "L1".into(), 0).unwrap();
    r.pipe(&mut d, "k".into(), "R1".into(), 5).unwrap();
    r.pipe(&mut d, "k".into(), "R2".into(), 11).unwrap();
    l.pipe(&mut d, "x".into(), "LX".into(), 12).unwrap();
    assert_eq!(read(&mut d, "inner"), vec![kv("k", "L1+R1")]);
    assert_eq!(read(&mut d, "leftj"), vec![kv("k", "L1+R1")]);
    assert_eq!(read(&mut d, "outer"), vec![kv("k", "L1+R1")]);
    // Stream time 30 closes every window: unmatched records come out once.
    l.pipe(&mut d, "z".into(), "LZ".into(), 30).unwrap();
    assert_eq!(read(&mut d, "inner"), vec![]);
    assert_eq!(read(&mut d, "leftj"), vec![kv("x", "LX+null")]);
    let mut outer = read(&mut d, "outer");
    outer.sort();
    assert_eq!(outer, vec![kv("k", "null+R2"), kv("x", "LX+null")]);
    // Late: more than before+after+grace behind stream time.
    l.pipe(&mut d, "k".into(), "old".into(), 1).unwrap();
    assert!(d.metrics().records_dropped_late >= 1);
}

#[test]
fn stream_table_and_global_table_joins() {
    let b = StreamsBuilder::new();
    let orders = b.stream("orders", Consumed::with(s(), s()));
    let customers = b.table(
        "customers",
        Consumed::with(s(), s()),
        Materialized::as_store("customers"),
    );
    let products = b.global_table(
        "products",
        Consumed::with(s(), s()),
        Materialized::as_store("products"),
    );
    joined(
        &b,
        orders.join_table(&customers, |o, c| format!("{o} by {c}")),
        "enriched",
    );
    joined(
        &b,
        orders.left_join_table(&customers, |o, c| {
            format!("{o} by {}", c.map_or("?", |c| c.as_str()))
        }),
        "left-enriched",
    );
    joined(
        &b,
        orders.join_global(&products, |_, o| o.clone(), |o, p| format!("{o}: {p}")),
        "priced",
    );
    joined(
        &b,
        orders.left_join_global(
            &products,
            |_, o| o.clone(),
            |o, p| format!("{o}: {}", p.map_or("?", |p| p.as_str())),
        ),
        "left-priced",
    );
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let o = d.input_topic("orders", s(), s());
    let c = d.input_topic("customers", s(), s());
    let p = d.input_topic("products", s(), s());
    o.pipe(&mut d, "c1".into(), "apple".into(), 1).unwrap();
    c.pipe(&mut d, "c1".into(), "ann".into(), 2).unwrap();
    p.pipe(&mut d, "apple".into(), "1 EUR".into(), 2).unwrap();
    o.pipe(&mut d, "c1".into(), "apple".into(), 3).unwrap();
    c.pipe_tombstone(&mut d, "c1".into(), 4).unwrap();
    o.pipe(&mut d, "c1".into(), "pear".into(), 5).unwrap();
    assert_eq!(read(&mut d, "enriched"), vec![kv("c1", "apple by ann")]);
    assert_eq!(
        read(&mut d, "left-enriched"),
        vec![
            kv("c1", "apple by ?"),
            kv("c1", "apple by ann"),
            kv("c1", "pear by ?")
        ]
    );
    assert_eq!(read(&mut d, "priced"), vec![kv("c1", "apple: 1 EUR")]);
    assert_eq!(
        read(&mut d, "left-priced"),
        vec![
            kv("c1", "apple: ?"),
            kv("c1", "apple: 1 EUR"),
            kv("c1", "pear: ?")
        ]
    );
    assert_eq!(
        d.key_value_store::<String, String>("products")
            .unwrap()
            .get(&"apple".into())
            .unwrap()
            .as_deref(),
        Some("1 EUR")
    );
}

#[test]
fn table_table_joins_track_both_sides() {
    let b = StreamsBuilder::new();
    let left = b.table("l", Consumed::with(s(), s()), Materialized::default());
    let right = b.table("r", Consumed::with(s(), s()), Materialized::default());
    let show = |t: KTable<String, String>, topic: &str| {
        t.to_stream()
            .to(topic, Produced::with(s(), Serdes::nullable(s())))
    };
    show(left.join(&right, |a, b| format!("{a}{b}")), "inner");
    show(
        left.left_join(&right, |a, b| {
            format!("{a}{}", b.map_or("-", |b| b.as_str()))
        }),
        "leftj",
    );
    show(
        left.outer_join(&right, |a, b| {
            format!(
                "{}{}",
                a.map_or("-", |a| a.as_str()),
                b.map_or("-", |b| b.as_str())
            )
        }),
        "outer",
    );
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let l = d.input_topic("l", s(), s());
    let r = d.input_topic("r", s(), s());
    l.pipe(&mut d, "k".into(), "a".into(), 1).unwrap();
    r.pipe(&mut d, "k".into(), "b".into(), 2).unwrap();
    l.pipe_tombstone(&mut d, "k".into(), 3).unwrap();
    let read_opt = |d: &mut TopologyTestDriver, t: &str| {
        d.output_topic(t, s(), Serdes::nullable(s()))
            .read_key_values(d)
            .unwrap()
    };
    let some = |v: &str| ("k".to_string(), Some(v.to_string()));
    let none = ("k".to_string(), None);
    assert_eq!(read_opt(&mut d, "inner"), vec![some("ab"), none.clone()]);
    assert_eq!(
        read_opt(&mut d, "leftj"),
        vec![some("a-"), some("ab"), none.clone()]
    );
    assert_eq!(
        read_opt(&mut d, "outer"),
        vec![some("a-"), some("ab"), some("-b")]
    );
}

#[test]
fn foreign_key_join_follows_both_tables_and_drops_stale_answers() {
    let b = StreamsBuilder::new();
    // orders: order id -> "customer id,item"; customers: customer id -> name.
    let orders = b.table("orders", Consumed::with(s(), s()), Materialized::default());
    let customers = b.table(
        "customers",
        Consumed::with(s(), s()),
        Materialized::default(),
    );
    orders
        .join_foreign_key(
            &customers,
            |o: &String| o.split(',').next().unwrap_or_default().to_string(),
            |o, c| format!("{o} for {c}"),
            Materialized::as_store("fk-result").with_value_serde(s()),
        )
        .to_stream()
        .to("out", Produced::with(s(), Serdes::nullable(s())));
    let topology = b.build().unwrap();
    assert!(topology
        .describe()
        .contains("subscription-registration-repartition"));
    let mut d = TopologyTestDriver::new(topology).unwrap();
    let o = d.input_topic("orders", s(), s());
    let c = d.input_topic("customers", s(), s());
    c.pipe(&mut d, "c1".into(), "ann".into(), 1).unwrap();
    o.pipe(&mut d, "o1".into(), "c1,apple".into(), 2).unwrap();
    o.pipe(&mut d, "o2".into(), "c2,pear".into(), 3).unwrap();
    c.pipe(&mut d, "c2".into(), "bob".into(), 4).unwrap();
    c.pipe(&mut d, "c1".into(), "annie".into(), 5).unwrap();
    o.pipe(&mut d, "o1".into(), "c2,apple".into(), 6).unwrap();
    o.pipe_tombstone(&mut d, "o2".into(), 7).unwrap();
    c.pipe(&mut d, "c1".into(), "ann again".into(), 8).unwrap();
    let out = d
        .output_topic("out", s(), Serdes::nullable(s()))
        .read_key_values(&mut d)
        .unwrap();
    let some = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
    assert_eq!(
        out,
        vec![
            some("o1", "c1,apple for ann"),
            some("o2", "c2,pear for bob"),
            some("o1", "c1,apple for annie"),
            some("o1", "c2,apple for bob"),
            ("o2".to_string(), None),
        ]
    );
    let result = d.key_value_store::<String, String>("fk-result").unwrap();
    assert_eq!(
        result.get(&"o1".into()).unwrap().as_deref(),
        Some("c2,apple for bob")
    );
    assert_eq!(result.get(&"o2".into()).unwrap(), None);
}

#[test]
fn stream_joins_after_a_key_change_repartition_first() {
    let b = StreamsBuilder::new();
    let left = b
        .stream("left", Consumed::with(s(), s()))
        .select_key(|_, v| v.clone());
    let table = b.table("t", Consumed::with(s(), s()), Materialized::default());
    left.join_table(&table, |l, t| format!("{l}/{t}"))
        .to("out", Produced::with(s(), s()));
    let topology = b.build().unwrap();
    assert!(
        topology.describe().contains("-left-repartition"),
        "{}",
        topology.describe()
    );
    let mut d = TopologyTestDriver::new(topology).unwrap();
    d.input_topic("t", s(), s())
        .pipe(&mut d, "v".into(), "T".into(), 0)
        .unwrap();
    d.input_topic("left", s(), s())
        .pipe(&mut d, "k".into(), "v".into(), 1)
        .unwrap();
    assert_eq!(read(&mut d, "out"), vec![kv("v", "v/T")]);
}
