"""Transactions through clients nobody here wrote: librdkafka's (confluent-kafka) transactional
producer commits and aborts, a zombie is fenced by a new producer with the same
transactional.id, consume-transform-produce commits its input offsets inside the transaction
(send_offsets_to_transaction), transactions past their timeout are aborted by the coordinator,
the coordinator's state survives a restart, the Java client and kafkajs commit and abort
(with Kafka's Admin listing and describing transactions), and kafka-python's transactional
producer copies with its offsets in the transaction at the pre-KIP-890 request versions.

What a reader sees is checked two ways. With isolation.level=read_uncommitted every data
record is delivered and each COMMIT/ABORT marker takes one offset that no consumer delivers,
which shows where the coordinator wrote its markers; read_committed readers see exactly the
committed records, and an open transaction holds them back."""

import json
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import strom_binary
from test_cli import strom
from test_compat import compat_tool  # noqa: F401  (the Java helper fixture)

TIMEOUT_S = 30


def create_topic(bootstrap, name, partitions=1):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=TIMEOUT_S)[name].result(timeout=TIMEOUT_S)


def txn_producer(bootstrap, transactional_id, **extra):
    config = {"bootstrap.servers": bootstrap, "transactional.id": transactional_id, "linger.ms": 5}
    config.update(extra)
    return Producer(config)


def consume_all(bootstrap, topic, isolation, expected_end, partitions=1, wait_s=TIMEOUT_S):
    """(offset, value) of every record delivered from `topic`, reading until each partition's
    position reaches its end offset (`expected_end`: markers included) or `wait_s` is up."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    got = []
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append((m.partition(), m.offset(), m.value().decode()))
            positions = c.position([TopicPartition(topic, p) for p in range(partitions)])
            if m is None and all(tp.offset >= expected_end for tp in positions):
                break
    finally:
        c.close()
    return got


def end_offset(bootstrap, topic, partition=0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"w-{uuid.uuid4().hex[:8]}"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=TIMEOUT_S)[1]
    finally:
        c.close()


def test_commit_and_abort_write_markers(broker, topic_name):
    """A committed transaction of 5 records and an aborted one of 3: 8 data records and two
    markers in the log (offsets 5 and 9), which no consumer delivers."""
    create_topic(broker.bootstrap, topic_name)
    p = txn_producer(broker.bootstrap, f"{topic_name}-tx")
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic_name, value=f"committed-{i}".encode())
    p.commit_transaction(TIMEOUT_S)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic_name, value=f"aborted-{i}".encode())
    p.flush(TIMEOUT_S)
    p.abort_transaction(TIMEOUT_S)
    # The markers are written after EndTxn is answered: the end offset reaches 10 shortly.
    deadline = time.monotonic() + TIMEOUT_S
    while end_offset(broker.bootstrap, topic_name) < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert end_offset(broker.bootstrap, topic_name) == 10
    got = consume_all(broker.bootstrap, topic_name, "read_uncommitted", 10)
    assert [(o, v) for _, o, v in got] == [(i, f"committed-{i}") for i in range(5)] + [
        (6 + i, f"aborted-{i}") for i in range(3)
    ]


def test_read_committed_sees_only_committed(broker, topic_name):
    create_topic(broker.bootstrap, topic_name)
    p = txn_producer(broker.bootstrap, f"{topic_name}-tx")
    p.init_transactions(TIMEOUT_S)
    for outcome in ("commit", "abort", "commit"):
        p.begin_transaction()
        for i in range(4):
            p.produce(topic_name, value=f"{outcome}-{i}".encode())
        p.flush(TIMEOUT_S)
        (p.commit_transaction if outcome == "commit" else p.abort_transaction)(TIMEOUT_S)
    got = consume_all(broker.bootstrap, topic_name, "read_committed", 15)
    assert [v for _, _, v in got] == [f"commit-{i}" for i in range(4)] * 2


def test_zombie_is_fenced_by_a_new_producer(broker, topic_name):
    """A second producer with the same transactional.id fences the first: the first one's
    open transaction is aborted by the coordinator, and its commit fails fatally."""
    create_topic(broker.bootstrap, topic_name)
    txid = f"{topic_name}-tx"
    zombie = txn_producer(broker.bootstrap, txid)
    zombie.init_transactions(TIMEOUT_S)
    zombie.begin_transaction()
    zombie.produce(topic_name, value=b"zombie")
    zombie.flush(TIMEOUT_S)
    fresh = txn_producer(broker.bootstrap, txid)
    fresh.init_transactions(TIMEOUT_S)
    with pytest.raises(KafkaException) as raised:
        zombie.commit_transaction(TIMEOUT_S)
    error = raised.value.args[0]
    assert error.fatal() or error.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH), error
    # The zombie's record was aborted (marker at offset 1); the new producer commits.
    fresh.begin_transaction()
    fresh.produce(topic_name, value=b"fresh")
    fresh.commit_transaction(TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    while end_offset(broker.bootstrap, topic_name) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    got = consume_all(broker.bootstrap, topic_name, "read_uncommitted", 4)
    assert [(o, v) for _, o, v in got] == [(0, "zombie"), (2, "fresh")]


def test_send_offsets_to_transaction(broker, topic_name):
    """Consume-transform-produce: the input offsets are committed by the transaction's commit
    (TxnOffsetCommit, then the COMMIT marker on __consumer_offsets), not by an abort."""
    src, dst, group = f"{topic_name}-in", f"{topic_name}-out", f"{topic_name}-g"
    create_topic(broker.bootstrap, src)
    create_topic(broker.bootstrap, dst)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        plain.produce(src, value=str(i).encode())
    plain.flush(TIMEOUT_S)
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    p = txn_producer(broker.bootstrap, f"{topic_name}-tx")
    try:
        p.init_transactions(TIMEOUT_S)
        consumer.subscribe([src])
        seen = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(seen) < 6 and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and m.error() is None:
                seen.append(m)
        assert len(seen) >= 6, seen
        first = seen[:6]

        def copy(messages, commit):
            p.begin_transaction()
            for m in messages:
                p.produce(dst, value=b"x" + m.value())
            last = messages[-1]
            offsets = [TopicPartition(src, last.partition(), last.offset() + 1)]
            p.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), TIMEOUT_S)
            (p.commit_transaction if commit else p.abort_transaction)(TIMEOUT_S)

        copy(first[:3], commit=True)
        committed = consumer.committed([TopicPartition(src, 0)], timeout=TIMEOUT_S)
        assert committed[0].offset == 3, committed
        copy(first[3:6], commit=False)
        committed = consumer.committed([TopicPartition(src, 0)], timeout=TIMEOUT_S)
        assert committed[0].offset == 3, committed
        copy(first[3:6], commit=True)
        committed = consumer.committed([TopicPartition(src, 0)], timeout=TIMEOUT_S)
        assert committed[0].offset == 6, committed
    finally:
        consumer.close()
    # A new consumer of the group starts where the committed transaction left it.
    again = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        got = again.committed([TopicPartition(src, 0)], timeout=TIMEOUT_S)
        assert got[0].offset == 6, got
    finally:
        again.close()


def kafka_python_read(bootstrap, topic, isolation, expected_end):
    """Values kafka-python's consumer delivers from partition 0 of `topic` at `isolation`,
    reading until its position reaches `expected_end` (markers included) or the timeout."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KpTopicPartition

    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation,
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    tp = KpTopicPartition(topic, 0)
    got = []
    try:
        c.assign([tp])
        c.seek_to_beginning(tp)
        deadline = time.monotonic() + TIMEOUT_S
        while c.position(tp) < expected_end and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                got.extend(r.value.decode() for r in records)
    finally:
        c.close()
    return got


def test_kafka_python_consume_transform_produce(broker, topic_name):
    """kafka-python's transactional producer (InitProducerId v4, AddPartitionsToTxn v3,
    AddOffsetsToTxn v3, TxnOffsetCommit v3, EndTxn v3: the pre-KIP-890 versions it pins)
    copies with its input offsets committed inside the transaction: a committed copy moves
    the group's offset, an aborted one neither moves it nor shows its records to a
    read_committed consumer (kafka-python's and librdkafka's)."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KpTopicPartition
    from kafka.structs import OffsetAndMetadata

    src, dst, group = f"{topic_name}-in", f"{topic_name}-out", f"{topic_name}-g"
    create_topic(broker.bootstrap, src)
    create_topic(broker.bootstrap, dst)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        plain.produce(src, value=str(i).encode())
    plain.flush(TIMEOUT_S)
    source = KpTopicPartition(src, 0)
    consumer = KafkaConsumer(
        src,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=f"{topic_name}-tx")
    try:
        producer.init_transactions()
        seen = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(seen) < 6 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                seen.extend(records)
        assert [r.value.decode() for r in seen[:6]] == [str(i) for i in range(6)], seen

        def copy(records, commit):
            producer.begin_transaction()
            for r in records:
                producer.send(dst, value=b"x" + r.value)
            # Sent before the end: kafka-python's abort drops batches not yet sent, which
            # would leave the aborted copy (and its marker) out of the log.
            producer.flush()
            offsets = {source: OffsetAndMetadata(records[-1].offset + 1, "", -1)}
            producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
            (producer.commit_transaction if commit else producer.abort_transaction)()

        def committed_becomes(expected):
            # The offsets become visible when the coordinator's marker reaches
            # __consumer_offsets, which it writes after answering EndTxn: wait for it.
            limit = time.monotonic() + TIMEOUT_S
            got = consumer.committed(source)
            while got != expected and time.monotonic() < limit:
                time.sleep(0.1)
                got = consumer.committed(source)
            return got

        copy(seen[0:3], commit=True)
        assert committed_becomes(3) == 3
        copy(seen[3:6], commit=False)
        assert committed_becomes(3) == 3
        copy(seen[3:6], commit=True)
        assert committed_becomes(6) == 6
    finally:
        producer.close()
        consumer.close()
    # Three transactions of three records, each ended by a marker: 12 offsets in all.
    deadline = time.monotonic() + TIMEOUT_S
    while end_offset(broker.bootstrap, dst) < 12 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert end_offset(broker.bootstrap, dst) == 12
    copied = [f"x{i}" for i in range(6)]
    assert kafka_python_read(broker.bootstrap, dst, "read_committed", 12) == copied
    got = consume_all(broker.bootstrap, dst, "read_committed", 12)
    assert [v for _, _, v in got] == copied
    # read_uncommitted also delivers the aborted copy, between the two committed ones.
    assert kafka_python_read(broker.bootstrap, dst, "read_uncommitted", 12) == copied[:3] + copied[3:] * 2
    # The group's committed offset is the last committed transaction's, for another client too.
    again = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = again.committed([TopicPartition(src, 0)], timeout=TIMEOUT_S)
        assert got[0].offset == 6, got
    finally:
        again.close()

def test_timed_out_transaction_is_aborted_and_producer_fenced(make_broker, topic_name):
    """A transaction open past its transaction.timeout.ms is aborted by the coordinator with
    a bumped epoch: the producer's commit then fails, and an ABORT marker follows its data."""
    b = make_broker(["--override", "transaction.abort.timed.out.transaction.cleanup.interval.ms=200"])
    create_topic(b.bootstrap, topic_name)
    p = txn_producer(b.bootstrap, f"{topic_name}-tx", **{"transaction.timeout.ms": 2000})
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic_name, value=b"late")
    p.flush(TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    while end_offset(b.bootstrap, topic_name) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert end_offset(b.bootstrap, topic_name) == 2, "no ABORT marker after the timeout"
    with pytest.raises(KafkaException):
        p.commit_transaction(TIMEOUT_S)


def test_timeout_above_the_maximum_is_refused(make_broker):
    b = make_broker(["--override", "transaction.max.timeout.ms=5000"])
    p = txn_producer(b.bootstrap, "too-long", **{"transaction.timeout.ms": 10000})
    with pytest.raises(KafkaException) as raised:
        p.init_transactions(TIMEOUT_S)
    assert raised.value.args[0].code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, raised.value


def test_coordinator_state_survives_restart(make_broker, topic_name):
    """The coordinator's state is in __transaction_state: after a restart the same
    transactional.id continues (its epoch moves on), a committed transaction stays
    committed, and a producer from before the restart is fenced by the new one."""
    b = make_broker()
    create_topic(b.bootstrap, topic_name)
    txid = f"{topic_name}-tx"
    p = txn_producer(b.bootstrap, txid)
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic_name, value=b"before")
    p.commit_transaction(TIMEOUT_S)
    b.stop()
    b.start()
    fresh = txn_producer(b.bootstrap, txid)
    fresh.init_transactions(TIMEOUT_S)
    fresh.begin_transaction()
    fresh.produce(topic_name, value=b"after")
    fresh.commit_transaction(TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    while end_offset(b.bootstrap, topic_name) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    got = consume_all(b.bootstrap, topic_name, "read_uncommitted", 4)
    assert [(o, v) for _, o, v in got] == [(0, "before"), (2, "after")]
    # The producer from before the restart holds an older epoch: it is fenced.
    p.begin_transaction()
    p.produce(topic_name, value=b"zombie")
    with pytest.raises(KafkaException):
        p.commit_transaction(TIMEOUT_S)


def test_java_commit_abort_and_admin(broker, compat_tool, topic_name):
    """The Java producer commits 4 records and aborts 2; Kafka's Admin lists and describes
    the transactional id (what kafka-transactions.sh list/describe print)."""
    create_topic(broker.bootstrap, topic_name)
    txid = f"{topic_name}-java"
    out = compat_tool(["transaction", broker.bootstrap, txid, topic_name, 4, 2])
    assert out["error"] is None, out
    deadline = time.monotonic() + TIMEOUT_S
    while end_offset(broker.bootstrap, topic_name) < 8 and time.monotonic() < deadline:
        time.sleep(0.1)
    got = consume_all(broker.bootstrap, topic_name, "read_uncommitted", 8)
    assert [(o, v) for _, o, v in got] == [(i, f"commit-{i}") for i in range(4)] + [
        (5 + i, f"abort-{i}") for i in range(2)
    ]
    listed = compat_tool(["transactions", broker.bootstrap, txid])
    assert listed["listed"].get(txid) == "CompleteAbort", listed
    assert listed["describe"]["state"] == "CompleteAbort", listed
    # The Java client uses transaction version 2 (the broker finalizes it, KIP-890 part 2):
    # initTransactions gives epoch 0 and each of the two ends bumps it.
    assert listed["describe"]["producer_epoch"] == 2, listed
    assert listed["describe"]["partitions"] == [], listed


def test_kafkajs_commit_and_abort(broker, js_tool, topic_name):
    create_topic(broker.bootstrap, topic_name)
    out = js_tool(
        {
            "op": "transaction",
            "bootstrap": broker.bootstrap,
            "topic": topic_name,
            "transactionalId": f"{topic_name}-js",
            "commit": ["c0", "c1", "c2"],
            "abort": ["a0", "a1"],
        }
    )
    assert out["ok"], out
    deadline = time.monotonic() + TIMEOUT_S
    while end_offset(broker.bootstrap, topic_name) < 7 and time.monotonic() < deadline:
        time.sleep(0.1)
    got = consume_all(broker.bootstrap, topic_name, "read_uncommitted", 7)
    assert [(o, v) for _, o, v in got] == [(0, "c0"), (1, "c1"), (2, "c2"), (4, "a0"), (5, "a1")]


def test_cli_list_describe_abort(broker, topic_name):
    """`strom transactions list|describe|abort`: an open transaction is listed Ongoing with
    its partition; abort ends it (an ABORT marker follows its record) and fences its
    producer, whose commit then fails."""
    create_topic(broker.bootstrap, topic_name, partitions=2)
    txid = f"{topic_name}-cli"
    p = txn_producer(broker.bootstrap, txid)
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic_name, value=b"open", partition=1)
    p.flush(TIMEOUT_S)
    listed = json.loads(strom(broker, ["transactions", "list", "--state", "Ongoing", "--output", "json"]))
    assert {"transactional_id": txid, "producer_id": listed[0]["producer_id"], "state": "Ongoing"} in listed, listed
    described = json.loads(strom(broker, ["transactions", "describe", txid, "--output", "json"]))
    assert described[0]["state"] == "Ongoing", described
    assert described[0]["partitions"] == [f"{topic_name}-1"], described
    epoch = described[0]["producer_epoch"]
    aborted = json.loads(strom(broker, ["transactions", "abort", txid, "--output", "json"]))
    assert aborted[0]["state"] in ("Empty", "CompleteAbort"), aborted
    assert aborted[0]["producer_epoch"] > epoch, aborted
    assert end_offset(broker.bootstrap, topic_name, 1) == 2, "no ABORT marker after the record"
    with pytest.raises(KafkaException):
        p.commit_transaction(TIMEOUT_S)
    # Nothing ongoing any more: a second abort is refused, fencing nobody.
    cmd = [str(strom_binary()), "transactions", "abort", txid, "--bootstrap-server", broker.bootstrap]
    proc = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT_S)
    assert proc.returncode != 0 and b"no ongoing transaction" in proc.stderr, proc


def test_open_transaction_holds_back_read_committed_only(broker, topic_name):
    """An open transaction holds a read_committed reader at its first offset (the last
    stable offset) while a read_uncommitted reader gets its records; the commit releases
    them."""
    create_topic(broker.bootstrap, topic_name)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce(topic_name, value=b"before")
    plain.flush(TIMEOUT_S)
    p = txn_producer(broker.bootstrap, f"{topic_name}-tx")
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic_name, value=b"open")
    p.flush(TIMEOUT_S)
    uncommitted = consume_all(broker.bootstrap, topic_name, "read_uncommitted", 2)
    assert [v for _, _, v in uncommitted] == ["before", "open"]
    # Held back at the open transaction: read for a few seconds, never past "before".
    committed = consume_all(broker.bootstrap, topic_name, "read_committed", 2, wait_s=5)
    assert [v for _, _, v in committed] == ["before"]
    p.commit_transaction(TIMEOUT_S)
    committed = consume_all(broker.bootstrap, topic_name, "read_committed", 3)
    assert [v for _, _, v in committed] == ["before", "open"]


def test_strom_client_transactions_seen_by_confluent_kafka(broker, topic_name):
    """strom-client's transactional producer (through `strom produce` with a
    transactional.id) commits one transaction, aborts the next and commits a third: a
    confluent-kafka read_committed consumer delivers exactly the committed records, in
    order, while read_uncommitted delivers all of them (a marker takes one offset per
    transaction)."""
    create_topic(broker.bootstrap, topic_name)
    txid = f"{topic_name}-strom"

    def produce(prefix, count, *extra):
        lines = b"".join(f"{prefix}-{i}\n".encode() for i in range(count))
        out = strom(broker, ["produce", topic_name, "--producer-property", f"transactional.id={txid}",
                             "--output", "json", "--quiet", *extra], stdin=lines)
        return json.loads(out)

    assert produce("first", 20)["transaction"] == "committed"
    assert produce("aborted", 15, "--abort-transaction")["transaction"] == "aborted"
    assert produce("second", 10)["transaction"] == "committed"

    end = end_offset(broker.bootstrap, topic_name)
    assert end == 45 + 3, "45 data records and three markers"
    committed = consume_all(broker.bootstrap, topic_name, "read_committed", end)
    assert [v for _, _, v in committed] == [f"first-{i}" for i in range(20)] + [f"second-{i}" for i in range(10)]
    # The first transaction's marker is at 20; the aborted records sit at 21-35.
    assert [o for _, o, _ in committed] == list(range(20)) + list(range(37, 47))
    uncommitted = consume_all(broker.bootstrap, topic_name, "read_uncommitted", end)
    assert len(uncommitted) == 45


def test_java_consume_transform_produce_exactly_once(broker, compat_tool, topic_name):
    """The Java client (transaction version 2: Produce v12+ and TxnOffsetCommit v5 add the
    partitions implicitly, no AddPartitionsToTxn or AddOffsetsToTxn) copies 40 records from
    two input partitions with sendOffsetsToTransaction: after one aborted transaction (its
    records and offsets vanish) every record is copied exactly once and the group's committed
    offsets are the inputs' ends."""
    src, dst, group = f"{topic_name}-in", f"{topic_name}-out", f"{topic_name}-g"
    create_topic(broker.bootstrap, src, partitions=2)
    create_topic(broker.bootstrap, dst)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(40):
        plain.produce(src, value=f"v{i}".encode(), partition=i % 2)
    plain.flush(TIMEOUT_S)
    out = compat_tool(["eos-copy", broker.bootstrap, f"{topic_name}-tx", group, src, dst, 40])
    assert out["error"] is None, out
    assert out["copied"] == 40 and out["transactions"] >= 4, out
    end = end_offset(broker.bootstrap, dst)
    committed_values = [v for _, _, v in consume_all(broker.bootstrap, dst, "read_committed", end)]
    assert sorted(committed_values) == sorted(f"v{i}" for i in range(40)), committed_values
    everything = [v for _, _, v in consume_all(broker.bootstrap, dst, "read_uncommitted", end)]
    assert any(v.startswith("aborted-") for v in everything), everything
    reader = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = reader.committed([TopicPartition(src, 0), TopicPartition(src, 1)], timeout=TIMEOUT_S)
        assert [tp.offset for tp in got] == [20, 20], got
    finally:
        reader.close()


def test_list_transactions_by_id_pattern_and_duration_java(broker, compat_tool, topic_name):
    """ListTransactions v2 (KIP-1152): the Java Admin's transactional id pattern must match
    the whole id; v1's duration filter (KIP-994) lists only Ongoing transactions open that
    long; a pattern that does not compile is INVALID_REGULAR_EXPRESSION."""
    import re

    create_topic(broker.bootstrap, topic_name)
    ongoing = txn_producer(broker.bootstrap, f"{topic_name}-a")
    idle = txn_producer(broker.bootstrap, f"{topic_name}-b")
    ongoing.init_transactions(TIMEOUT_S)
    idle.init_transactions(TIMEOUT_S)
    ongoing.begin_transaction()
    ongoing.produce(topic_name, value=b"x")
    assert ongoing.flush(TIMEOUT_S) == 0
    prefix = re.escape(topic_name)

    def listed(pattern, duration_ms=-1):
        out = compat_tool(["list-transactions", broker.bootstrap, pattern, duration_ms])
        assert "error" not in out, out
        return out["listed"]

    assert listed(f"{prefix}-a") == {f"{topic_name}-a": "Ongoing"}
    assert listed(f"{prefix}-.*") == {f"{topic_name}-a": "Ongoing", f"{topic_name}-b": "Empty"}
    assert listed(prefix) == {}, "the pattern matches the whole id"
    assert listed(f"{prefix}-.*", 0) == {f"{topic_name}-a": "Ongoing"}
    assert listed(f"{prefix}-.*", 3_600_000) == {}
    bad = compat_tool(["list-transactions", broker.bootstrap, "(", -1])
    assert "InvalidRegularExpression" in f"{bad.get('error')} {bad.get('message')}", bad
    ongoing.abort_transaction(TIMEOUT_S)


def test_copier_killed_and_restarted_copies_exactly_once(broker, topic_name):
    """Consume-transform-produce with send_offsets_to_transaction (librdkafka), its process
    killed (`kill -9`) mid-run three times and restarted: each new instance fences its
    predecessor (aborting its open transaction) and resumes from the offsets the last
    committed transaction wrote, so the output holds every input record exactly once."""
    import os
    import signal
    import sys

    src, dst, group = f"{topic_name}-in", f"{topic_name}-out", f"{topic_name}-g"
    create_topic(broker.bootstrap, src, partitions=2)
    create_topic(broker.bootstrap, dst, partitions=2)
    n = 120
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(n):
        plain.produce(src, value=f"v{i}".encode(), partition=i % 2)
    plain.flush(TIMEOUT_S)
    script = os.path.join(os.path.dirname(__file__), "eos_copier.py")
    args = [sys.executable, script, broker.bootstrap, f"{topic_name}-tx", group, src, dst, "2"]

    def start(deadline_s):
        return subprocess.Popen(args + [str(deadline_s)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)

    kills = 0
    for _ in range(3):
        proc = start(60)
        # Killed after its second committed transaction, in the middle of what follows.
        seen = 0
        for line in proc.stdout:
            if line.startswith("committed"):
                seen += 1
            if seen >= 2 or line.startswith("done"):
                break
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=TIMEOUT_S)
        proc.stdout.close()
    assert kills == 3, "the copier finished before it was killed three times"
    final = start(45)
    out, _ = final.communicate(timeout=60)
    assert final.returncode == 0, out
    ends = [end_offset(broker.bootstrap, dst, p) for p in range(2)]
    got = consume_all(broker.bootstrap, dst, "read_committed", max(ends), partitions=2)
    values = sorted(v for _, _, v in got)
    assert values == sorted(f"v{i}" for i in range(n)), (len(values), values)


def test_transaction_version_downgrade_and_upgrade(make_broker, compat_tool, topic_name):
    """`transaction.version` changed at run time with the Java Admin's updateFeatures: after a
    downgrade to 1 the Java producer (which reads the finalized level from ApiVersions, whose
    epoch grew) ends its transactions without the epoch bump of version 2, the confluent
    producer keeps working, and read_committed sees exactly the committed records; upgraded
    back to 2 the Java producer bumps at every end again."""
    b = make_broker()
    create_topic(b.bootstrap, topic_name)
    tv = "transaction.version"

    def finalized():
        out = compat_tool(["features", b.bootstrap])
        return out["finalized"].get(tv, {}).get("max"), out["finalized_epoch"]

    assert finalized() == (2, 0)
    refused = compat_tool(["update-feature", b.bootstrap, tv, 1, "UPGRADE"])
    assert refused["error"] == "InvalidUpdateVersionException", refused
    assert "without setting the upgrade type" in refused["message"], refused
    assert compat_tool(["update-feature", b.bootstrap, tv, 1, "SAFE_DOWNGRADE", "validate"]) == {"ok": True}
    assert finalized() == (2, 0), "validate only changes nothing"
    assert compat_tool(["update-feature", b.bootstrap, tv, 1, "SAFE_DOWNGRADE"]) == {"ok": True}
    assert finalized() == (1, 1)
    newer = compat_tool(["update-feature", b.bootstrap, tv, 2, "SAFE_DOWNGRADE"])
    assert "Can't downgrade to a newer version" in newer["message"], newer

    expected = []  # values read_committed must deliver, in order

    def java(txid):
        out = compat_tool(["transaction", b.bootstrap, txid, topic_name, 3, 2])
        assert out["error"] is None, out
        expected.extend(f"commit-{i}" for i in range(3))
        return compat_tool(["transactions", b.bootstrap, txid])["describe"]

    def confluent(txid, tag):
        p = txn_producer(b.bootstrap, txid)
        p.init_transactions(TIMEOUT_S)
        for round_ in range(2):
            p.begin_transaction()
            p.produce(topic_name, value=f"{tag}-c{round_}".encode())
            p.commit_transaction(TIMEOUT_S)
            expected.append(f"{tag}-c{round_}")
            p.begin_transaction()
            p.produce(topic_name, value=f"{tag}-a{round_}".encode())
            p.flush(TIMEOUT_S)
            p.abort_transaction(TIMEOUT_S)

    # At level 1: no bump at the ends (initTransactions gives epoch 0).
    described = java(f"{topic_name}-java-tv1")
    assert (described["state"], described["producer_epoch"]) == ("CompleteAbort", 0), described
    confluent(f"{topic_name}-rd-tv1", "tv1")

    assert compat_tool(["update-feature", b.bootstrap, tv, 2, "UPGRADE"]) == {"ok": True}
    assert finalized() == (2, 2)
    described = java(f"{topic_name}-java-tv2")
    assert (described["state"], described["producer_epoch"]) == ("CompleteAbort", 2), described
    confluent(f"{topic_name}-rd-tv2", "tv2")

    # 6 Java records + 4 aborted, 4 confluent commits + 4 aborts, and 12 markers.
    records = 2 * (3 + 2) + 2 * 4
    markers = 2 * 2 + 2 * 4
    deadline = time.monotonic() + TIMEOUT_S
    while end_offset(b.bootstrap, topic_name) < records + markers and time.monotonic() < deadline:
        time.sleep(0.1)
    got = consume_all(b.bootstrap, topic_name, "read_committed", records + markers)
    assert [v for _, _, v in got] == expected


def test_strom_features_cli(make_broker):
    """`strom features` (kafka-features.sh) against the real binary: describe in Kafka's lines
    and as JSON, a dry run that changes nothing, a downgrade and an upgrade of
    transaction.version, and a refused level with Kafka's message and exit code 1."""
    b = make_broker()
    tv = "transaction.version"

    def run(*args):
        cmd = [str(strom_binary()), "features", *args, "--bootstrap-server", b.bootstrap]
        return subprocess.run(cmd, capture_output=True, timeout=TIMEOUT_S)

    def described():
        out = run("describe", "--output", "json")
        assert out.returncode == 0, out.stderr
        return {f["feature"]: f for f in json.loads(out.stdout)}

    text = run("describe")
    assert text.returncode == 0, text.stderr
    assert (
        "Feature: transaction.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 2\t"
        "FinalizedVersionLevel: 2\tEpoch: 0" in text.stdout.decode()
    ), text.stdout
    dry = run("downgrade", "--feature", f"{tv}=1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.decode() == f"DRY RUN: no change was made.\n{tv} can be downgraded to 1.\n"
    assert described()[tv]["finalized_version_level"] == 2

    down = run("downgrade", "--feature", f"{tv}=1")
    assert (down.returncode, down.stdout.decode()) == (0, f"{tv} was downgraded to 1.\n"), down.stderr
    assert (described()[tv]["finalized_version_level"], described()[tv]["epoch"]) == (1, 1)

    refused = run("upgrade", "--feature", f"{tv}=3")
    assert refused.returncode == 1, refused
    message = refused.stderr.decode()
    assert f"Could not upgrade {tv} to 3." in message and "only supports versions 0-2" in message, message
    bad = run("upgrade", "--feature", "transaction.version")
    assert bad.returncode != 0 and "NAME=LEVEL" in bad.stderr.decode(), bad

    up = run("upgrade", "--feature", f"{tv}=2")
    assert (up.returncode, up.stdout.decode()) == (0, f"{tv} was upgraded to 2.\n"), up.stderr
    assert (described()[tv]["finalized_version_level"], described()[tv]["epoch"]) == (2, 2)
