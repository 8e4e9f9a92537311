"""The partition-log side of transactions, with clients nobody here wrote and no transaction
coordinator: transactional batches are produced by hand (raw Produce v7, a RecordBatch v2 with
the transactional attribute and a producer id), kafka-python's admin client finds the open
transaction (DescribeProducers, as `kafka-transactions.sh describe-producers`) and aborts it
(WriteTxnMarkers, as `kafka-transactions.sh abort`), and read_committed consumers of
kafka-python and confluent-kafka (librdkafka) read. An open transaction holds read_committed
back at its first offset but not read_uncommitted; aborted records are skipped; after a
`kill -9` and a restart the LSO and aborted list are the same."""

import socket
import struct
import time

import crc32c
import pytest
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as CTopicPartition
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import AbortTransactionSpec

import kafka_wire
import test_kafka_python as kp
from test_compat import compat_tool  # noqa: F401  (the Java helper fixture)
from test_record_validation import read_exact, record

TIMEOUT_S = 30
TRANSACTIONAL = 0x10

kafka_wire.API_KEYS.update({"WriteTxnMarkers": 27, "DescribeProducers": 61})


def txn_batch(values, producer_id=-1, epoch=-1, sequence=-1, timestamp_ms=None):
    """A RecordBatch v2 of `values`; transactional when a producer id is given."""
    records = b"".join(record(i, v.encode()) for i, v in enumerate(values))
    count = len(values)
    now_ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    attributes = TRANSACTIONAL if producer_id >= 0 else 0
    after_crc = struct.pack(">hiqqqhii", attributes, count - 1, now_ms, now_ms, producer_id, epoch, sequence,
                            count) + records
    after_length = struct.pack(">ibI", -1, 2, crc32c.crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def produce_all(broker, topic, batches):
    with socket.create_connection(("127.0.0.1", broker.port), timeout=TIMEOUT_S) as sock:
        for correlation_id, b in enumerate(batches, start=1):
            assert produce_v7_txn(sock, topic, b, correlation_id) == 0


# Brokers whose transactional batches open transactions no coordinator knows of (hanging ones,
# which the tools abort): KIP-890 verification off, as Kafka's own key allows.
UNVERIFIED = ["--override", "transaction.partition.verification.enable=false"]


def produce_v7_txn(sock, topic, records, correlation_id, transactional_id=b"txn-log-by-hand"):
    """Produce v7 (acks=-1) of one batch to partition 0 with a transactional id (Kafka refuses
    transactional batches without one); returns the partition's error code."""
    client_id = b"strom-txn-log"
    name = topic.encode()
    body = (
        struct.pack(">hhih", 0, 7, correlation_id, len(client_id)) + client_id
        + struct.pack(">h", len(transactional_id)) + transactional_id
        + struct.pack(">hi", -1, 10_000)
        + struct.pack(">ih", 1, len(name)) + name
        + struct.pack(">iii", 1, 0, len(records)) + records
    )
    sock.sendall(struct.pack(">i", len(body)) + body)
    (size,) = struct.unpack(">i", read_exact(sock, 4))
    resp = read_exact(sock, size)
    (got, topics, name_len) = struct.unpack(">iih", resp[:10])
    assert got == correlation_id and topics == 1
    at = 10 + name_len
    (partitions, index, error_code) = struct.unpack(">iih", resp[at : at + 10])
    assert partitions == 1 and index == 0
    return error_code


def read_kafka_python(broker, topic, isolation):
    """(end offset, values) as kafka-python reads partition 0 from the beginning."""
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                             isolation_level=isolation, request_timeout_ms=TIMEOUT_S * 1000 + 1000)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        got, deadline = [], time.monotonic() + TIMEOUT_S
        while consumer.position(tp) < end and time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=200).values():
                got += [m.value.decode() for m in recs]
        assert consumer.position(tp) >= end, "did not reach the end offset"
        return end, got
    finally:
        consumer.close()


def read_confluent(broker, topic, isolation):
    """Values librdkafka reads from the beginning up to the partition's end (EOF: the LSO
    under read_committed)."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "txn-log-reader",
                         "enable.auto.commit": False, "isolation.level": isolation,
                         "enable.partition.eof": True})
    try:
        consumer.assign([CTopicPartition(topic, 0, 0)])
        got, deadline = [], time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    return got
                raise AssertionError(m.error())
            got.append(m.value().decode())
        raise AssertionError(f"no end of partition; read {got}")
    finally:
        consumer.close()


def open_transactions(broker, topic):
    admin = kp.admin(broker)
    try:
        tp = TopicPartition(topic, 0)
        states = admin.describe_producers([tp])[tp].active_producers
        return {p.producer_id: p.current_transaction_start_offset for p in states}
    finally:
        admin.close()


def abort(broker, topic, producer_id, epoch):
    admin = kp.admin(broker)
    try:
        admin.abort_transaction(AbortTransactionSpec(TopicPartition(topic, 0), producer_id, epoch, 0))
    finally:
        admin.close()


@pytest.mark.needs_api("WriteTxnMarkers", "DescribeProducers")
def test_open_transactions_hold_read_committed_and_aborts_are_skipped(make_broker, topic_name):
    broker = make_broker(UNVERIFIED)
    kp.create_topic(broker, topic_name, partitions=1)
    # p0 (0), producer 7001's a1 a2 (1-2, open), p1 (3), producer 7002's b1 (4, open).
    produce_all(broker, topic_name, [
        txn_batch(["p0"]),
        txn_batch(["a1", "a2"], 7001, 0, 0),
        txn_batch(["p1"]),
        txn_batch(["b1"], 7002, 2, 0),
    ])
    everything = ["p0", "a1", "a2", "p1", "b1"]
    assert read_kafka_python(broker, topic_name, "read_uncommitted") == (5, everything)
    assert read_kafka_python(broker, topic_name, "read_committed") == (1, ["p0"])
    assert read_confluent(broker, topic_name, "read_committed") == ["p0"]
    assert read_confluent(broker, topic_name, "read_uncommitted") == everything
    found = open_transactions(broker, topic_name)
    assert (found[7001], found[7002]) == (1, 4), found

    # `kafka-transactions.sh abort` of 7001: its records are skipped, the LSO moves to 7002's.
    abort(broker, topic_name, 7001, 0)
    assert open_transactions(broker, topic_name)[7001] == -1
    assert read_kafka_python(broker, topic_name, "read_committed") == (4, ["p0", "p1"])
    assert read_confluent(broker, topic_name, "read_committed") == ["p0", "p1"]

    # A crash and a restart: the same LSO and aborted list, rebuilt from the log.
    broker.kill()
    broker.start()
    assert read_kafka_python(broker, topic_name, "read_committed") == (4, ["p0", "p1"])
    abort(broker, topic_name, 7002, 2)
    assert read_kafka_python(broker, topic_name, "read_committed") == (7, ["p0", "p1"])
    assert read_confluent(broker, topic_name, "read_committed") == ["p0", "p1"]
    assert read_kafka_python(broker, topic_name, "read_uncommitted") == (7, everything)


@pytest.mark.needs_api("DescribeProducers")
def test_idle_producer_ids_expire(make_broker, topic_name):
    """`producer.id.expiration.ms`: an idempotent producer (librdkafka) idle that long is
    forgotten by the partition (DescribeProducers no longer lists it, as Kafka's
    removeExpiredProducers); a producer with an open transaction is kept; the forgotten
    producer's next batches are accepted and nothing is lost or duplicated."""
    broker = make_broker(["--override", "producer.id.expiration.ms=3000",
                          "--override", "producer.id.expiration.check.interval.ms=200"] + UNVERIFIED)
    kp.create_topic(broker, topic_name, partitions=1)
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 0})
    for i in range(3):
        producer.produce(topic_name, value=f"a{i}".encode())
    assert producer.flush(TIMEOUT_S) == 0
    # A transaction nobody ends, by hand (no coordinator): its producer must stay.
    produce_all(broker, topic_name, [txn_batch(["open"], producer_id=777_000, epoch=0, sequence=0)])
    listed = open_transactions(broker, topic_name)
    assert len(listed) == 2 and listed[777_000] >= 0, listed
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and len(listed) > 1:
        time.sleep(0.2)
        listed = open_transactions(broker, topic_name)
    assert list(listed) == [777_000], listed
    # The idempotent producer carries on at its next sequence after being forgotten.
    for i in range(3):
        producer.produce(topic_name, value=f"b{i}".encode())
    assert producer.flush(TIMEOUT_S) == 0
    # Listed again, as a new producer (unless it went idle for 3 s again meanwhile).
    assert len(open_transactions(broker, topic_name)) == 2
    values = read_confluent(broker, topic_name, "read_uncommitted")
    assert values == ["a0", "a1", "a2", "open", "b0", "b1", "b2"], values


@pytest.mark.needs_api("WriteTxnMarkers", "DescribeProducers")
def test_find_hanging_and_abort_through_the_java_admin(make_broker, compat_tool, topic_name):
    """`kafka-transactions.sh find-hanging` and `abort`, as the Java Admin calls behind them:
    a partition holds an open transaction no coordinator knows (written with verification
    off, its last batch an hour old: a producer whose coordinator state was lost) beside a
    live librdkafka transaction. find-hanging reports only the hanging one (the live one is
    named by listTransactions and describeTransactions), abort closes it, and then the live
    transaction commits and read_committed readers see only its record."""
    from confluent_kafka import Producer

    broker = make_broker(UNVERIFIED)
    kp.create_topic(broker, topic_name, partitions=1)
    live = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": f"{topic_name}-live"})
    live.init_transactions(TIMEOUT_S)
    live.begin_transaction()
    live.produce(topic_name, value=b"live")
    assert live.flush(TIMEOUT_S) == 0
    hour_ago = int(time.time() * 1000) - 3_600_000
    produce_all(broker, topic_name, [txn_batch(["hanging"], producer_id=888_000, epoch=3, sequence=0,
                                               timestamp_ms=hour_ago)])
    hanging = {"partition": 0, "producer_id": 888_000, "producer_epoch": 3, "coordinator_epoch": -1,
               "start_offset": 1}
    # The tool's default maximum transaction timeout (15 minutes): only the old one is a
    # candidate. With 0 both are, and the coordinator's answers clear the live one.
    for max_ms in (900_000, 0):
        found = compat_tool(["find-hanging", broker.bootstrap, topic_name, max_ms])
        assert found == {"hanging": [hanging]}, (max_ms, found)
    assert compat_tool(["abort-txn", broker.bootstrap, topic_name, 0, 1]) == {"ok": True}
    assert compat_tool(["find-hanging", broker.bootstrap, topic_name, 0]) == {"hanging": []}
    live.commit_transaction(TIMEOUT_S)
    assert read_confluent(broker, topic_name, "read_committed") == ["live"]
    assert read_confluent(broker, topic_name, "read_uncommitted") == ["live", "hanging"]
