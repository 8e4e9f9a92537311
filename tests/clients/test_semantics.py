"""Kafka semantics that real brokers have got wrong (see shared COMPAT notes), checked with
real clients: fetches from the middle of a compressed batch, null keys and values, long
polls woken by a produce, size limits, compacted topics, LogAppendTime, config changes."""

import threading
import time

import pytest
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.errors import KafkaError

import test_confluent_kafka as ck
import test_kafka_python as kp
from records import COMPRESSED_CODECS, record_set

TIMEOUT_S = 30


def test_fetch_from_middle_of_compressed_batch(broker, topic_name):
    """A fetch at an offset inside a batch returns the whole batch; the client skips ahead."""
    kp.create_topic(broker, topic_name, partitions=1)
    records = record_set("mid-batch", count=20)
    kp.produce(broker, topic_name, records, "lz4")  # one linger window: one or few batches
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{topic_name}", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic_name, 0, 7)])
        got, deadline = [], time.monotonic() + TIMEOUT_S
        while len(got) < 13 and time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is not None:
                assert msg.error() is None, msg.error()
                got.append((msg.offset(), msg.key(), msg.value()))
    finally:
        c.close()
    assert [o for o, _, _ in got] == list(range(7, 20))
    assert [(k, v) for _, k, v in got] == [(r["key"], r["value"]) for r in records[7:]]


def test_null_keys_and_values_roundtrip(broker, topic_name):
    kp.create_topic(broker, topic_name, partitions=1)
    sent = [(None, b"keyless"), (b"tombstone", None), (b"", b""), (b"k", b"v")]
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False, compression_type="gzip")
    try:
        for k, v in sent:
            p.send(topic_name, key=k, value=v, headers=[("empty", b"")])
        p.flush(timeout=TIMEOUT_S)
    finally:
        p.close(timeout=5)
    got = kp.consume(broker, topic_name, len(sent), partitions=1)
    assert [(r["key"], r["value"]) for r in got] == sent
    assert all(r["headers"] == [("empty", b"")] for r in got)


def test_long_poll_is_woken_by_produce(broker, topic_name):
    """A consumer waiting at the end of the log gets a new record well before its max wait."""
    kp.create_topic(broker, topic_name, partitions=1)
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, fetch_max_wait_ms=10_000,
                      request_timeout_ms=TIMEOUT_S * 1000 + 1000)
    try:
        tp = KpTopicPartition(topic_name, 0)
        c.assign([tp])
        c.seek_to_end(tp)
        c.poll(timeout_ms=500)  # the consumer is now parked in a long poll
        sent_at = []

        def produce_later():
            time.sleep(1.0)
            sent_at.append(time.monotonic())
            kp.produce(broker, topic_name, [{"key": b"k", "value": b"wake", "headers": []}], "none")

        t = threading.Thread(target=produce_later)
        t.start()
        got, deadline = [], time.monotonic() + TIMEOUT_S
        while not got and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=200).values():
                got += recs
        t.join(timeout=TIMEOUT_S)
        assert got and got[0].value == b"wake"
        latency_s = time.monotonic() - sent_at[0]
        assert latency_s < 5.0, f"record reached the consumer {latency_s:.1f}s after it was produced"
    finally:
        c.close()


def test_record_over_max_message_bytes_is_rejected(broker, topic_name):
    ck.create_topic(broker, topic_name, partitions=1, config={"max.message.bytes": "10000"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 2_000_000,
                  "message.timeout.ms": TIMEOUT_S * 1000})
    errors = []
    p.produce(topic_name, key=b"big", value=b"x" * 50_000, on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(TIMEOUT_S) == 0
    assert errors and errors[0] is not None, "a 50 kB record was accepted by a topic with max.message.bytes=10000"
    assert errors[0].name() == "MSG_SIZE_TOO_LARGE", errors[0]
    # A separate batch: the limit applies to a whole batch, so the two must not share one.
    p.produce(topic_name, key=b"small", value=b"ok", on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(TIMEOUT_S) == 0
    assert errors[1] is None, errors[1]
    got = ck.consume(broker, topic_name, 1, partitions=1)
    assert [r["value"] for r in got] == [b"ok"]


def test_keyless_record_on_compacted_topic_is_rejected(broker, topic_name):
    kp.create_topic(broker, topic_name, partitions=1, config={"cleanup.policy": "compact"})
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False, retries=0)
    try:
        try:
            meta = p.send(topic_name, key=None, value=b"no key").get(timeout=TIMEOUT_S)
            pytest.fail(f"broker accepted a keyless record on a compacted topic at offset {meta.offset};"
                        " Kafka answers INVALID_RECORD (87)")
        except KafkaError as e:
            assert "InvalidRecord" in type(e).__name__ or "INVALID_RECORD" in str(e).upper(), repr(e)
        meta = p.send(topic_name, key=b"k", value=b"keyed").get(timeout=TIMEOUT_S)
        assert meta.offset == 0
    finally:
        p.close(timeout=5)


def test_log_append_time_topic(broker, topic_name):
    ck.create_topic(broker, topic_name, partitions=1, config={"message.timestamp.type": "LogAppendTime"})
    before_ms = int(time.time() * 1000)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(topic_name, key=b"k", value=b"v", timestamp=1_000)  # a client time long ago
    assert p.flush(TIMEOUT_S) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{topic_name}", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic_name, 0, -2)])
        msg, deadline = None, time.monotonic() + TIMEOUT_S
        while msg is None and time.monotonic() < deadline:
            msg = c.poll(0.2)
        assert msg is not None and msg.error() is None
        ts_type, ts = msg.timestamp()
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME
        assert before_ms - 1000 <= ts <= int(time.time() * 1000) + 1000
    finally:
        c.close()


@pytest.mark.needs_api("IncrementalAlterConfigs", "DescribeConfigs")
def test_incremental_alter_configs(broker, topic_name):
    ck.create_topic(broker, topic_name, partitions=1)
    a = ck.admin(broker)
    res = ConfigResource("TOPIC", topic_name, incremental_configs=[
        ConfigEntry("retention.ms", "123456", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(timeout=TIMEOUT_S)
    plain = ConfigResource("TOPIC", topic_name)
    configs = a.describe_configs([plain])[plain].result(timeout=TIMEOUT_S)
    assert configs["retention.ms"].value == "123456"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    res = ConfigResource("TOPIC", topic_name, incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    a.incremental_alter_configs([res])[res].result(timeout=TIMEOUT_S)
    configs = a.describe_configs([plain])[plain].result(timeout=TIMEOUT_S)
    assert configs["retention.ms"].value == "604800000"
    assert configs["retention.ms"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value


@pytest.mark.needs_api("DescribeCluster")
def test_describe_cluster(broker):
    a = ck.admin(broker)
    cluster = a.describe_cluster(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
    assert [n.id for n in cluster.nodes] == [1]
    assert cluster.nodes[0].port == broker.port
    assert cluster.cluster_id


def test_delete_topic(broker, topic_name):
    ck.create_topic(broker, topic_name, partitions=2)
    a = ck.admin(broker)
    a.delete_topics([topic_name], operation_timeout=TIMEOUT_S)[topic_name].result(timeout=TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        md = a.list_topics(timeout=TIMEOUT_S)
        if topic_name not in md.topics:
            break
        time.sleep(0.2)
    assert topic_name not in a.list_topics(timeout=TIMEOUT_S).topics



@pytest.mark.parametrize("codec", COMPRESSED_CODECS)
def test_confluent_batches_stay_compressed(broker, topic_name, codec):
    """As for kcat: the client really compresses, and the broker keeps the batch as sent."""
    ck.create_topic(broker, topic_name, partitions=1)
    records = [{"key": b"same", "value": b"a" * 2000, "headers": [("h", b"v")]} for _ in range(200)]
    ck.produce(broker, topic_name, records, codec)
    log_bytes = broker.partition_log_bytes(topic_name, 0)
    assert 0 < log_bytes < 100_000, f"{log_bytes} bytes on disk for 400 kB of {codec}-compressible records"
