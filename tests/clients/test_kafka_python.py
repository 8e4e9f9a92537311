"""kafka-python (pure Python) against the real broker: admin, produce, consume."""

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from records import CODECS, PARTITIONS, check_acks, check_consumed, record_set

TIMEOUT_S = 30


def admin(broker):
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)


def create_topic(broker, name, partitions=PARTITIONS, config=None):
    a = admin(broker)
    try:
        a.create_topics({name: {"num_partitions": partitions, "replication_factor": 1, "configs": config or {}}},
                        timeout_ms=TIMEOUT_S * 1000)
    finally:
        a.close()


def partition_ids(topic_metadata):
    return sorted(p.get("partition_index", p.get("partition")) for p in topic_metadata["partitions"])


def produce(broker, topic, records, codec, defaults=False, **extra):
    """Produces with kafka-python; unless defaults, idempotence is off (it needs InitProducerId)."""
    if not defaults:
        extra.setdefault("enable_idempotence", False)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=None if codec == "none" else codec,
                      linger_ms=20, request_timeout_ms=TIMEOUT_S * 1000, **extra)
    try:
        futures = [p.send(topic, key=r["key"], value=r["value"], headers=r["headers"]) for r in records]
        p.flush(timeout=TIMEOUT_S)
        metas = [f.get(timeout=TIMEOUT_S) for f in futures]
        return [(m.partition, m.offset) for m in metas]
    finally:
        p.close(timeout=5)


def consume(broker, topic, count, partitions=PARTITIONS):
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                      request_timeout_ms=TIMEOUT_S * 1000 + 1000)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out, deadline = [], time.monotonic() + TIMEOUT_S
        while len(out) < count and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=200).values():
                out += [{"partition": m.partition, "offset": m.offset, "key": m.key, "value": m.value,
                         "headers": list(m.headers)} for m in recs]
        return out
    finally:
        c.close()


@pytest.mark.needs_api("InitProducerId")
@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_defaults(broker, topic_name, codec):
    """kafka-python 3 is idempotent by default (KIP-679), as the Java producer is."""
    create_topic(broker, topic_name)
    records = record_set(f"kafka-python-{codec}")
    check_acks(records, produce(broker, topic_name, records, codec, defaults=True))
    check_consumed(records, consume(broker, topic_name, len(records)))


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_not_idempotent(broker, topic_name, codec):
    create_topic(broker, topic_name)
    records = record_set(f"kafka-python-plain-{codec}")
    check_acks(records, produce(broker, topic_name, records, codec))
    check_consumed(records, consume(broker, topic_name, len(records)))


def test_admin_describe_topics(broker, topic_name):
    create_topic(broker, topic_name, partitions=2)
    a = admin(broker)
    try:
        (t,) = a.describe_topics([topic_name])
        assert t["error_code"] == 0
        assert t.get("name", t.get("topic")) == topic_name
        assert partition_ids(t) == [0, 1]
        assert topic_name in a.list_topics()
    finally:
        a.close()


@pytest.mark.needs_api("DescribeConfigs")
def test_admin_describe_configs_with_defaults(broker, topic_name):
    create_topic(broker, topic_name, config={"cleanup.policy": "compact"})
    a = admin(broker)
    try:
        result = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)], config_filter="all")
        configs = result["topic"][topic_name]
        assert configs["cleanup.policy"]["value"] == "compact"
        assert configs["cleanup.policy"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        assert configs["retention.ms"]["value"] == "604800000"
        assert configs["retention.ms"]["config_source"] == "DEFAULT_CONFIG"
        assert configs["min.insync.replicas"]["value"] == "1"
    finally:
        a.close()


@pytest.mark.needs_api("CreatePartitions")
def test_admin_create_partitions(broker, topic_name):
    create_topic(broker, topic_name, partitions=1)
    a = admin(broker)
    try:
        a.create_partitions({topic_name: 3})
        (t,) = a.describe_topics([topic_name])
        assert partition_ids(t) == [0, 1, 2]
    finally:
        a.close()


@pytest.mark.needs_api("DeleteRecords")
def test_admin_delete_records(broker, topic_name):
    create_topic(broker, topic_name, partitions=1)
    produce(broker, topic_name, record_set("kafka-python-delete", count=8), "none")
    a = admin(broker)
    try:
        result = a.delete_records({TopicPartition(topic_name, 0): 5})
        assert result[TopicPartition(topic_name, 0)]["low_watermark"] == 5
    finally:
        a.close()
    got = consume(broker, topic_name, 3, partitions=1)
    assert [r["offset"] for r in got] == [5, 6, 7]


@pytest.mark.needs_api("ListOffsets")
def test_offsets_for_times_and_ends(broker, topic_name):
    create_topic(broker, topic_name, partitions=1)
    produce(broker, topic_name, record_set("kafka-python-times-a", count=4), "none")
    time.sleep(0.05)
    t_mid = int(time.time() * 1000)
    time.sleep(0.05)
    produce(broker, topic_name, record_set("kafka-python-times-b", count=2), "none")
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, request_timeout_ms=TIMEOUT_S * 1000 + 1000)
    try:
        tp = TopicPartition(topic_name, 0)
        found = c.offsets_for_times({tp: t_mid})[tp]
        assert found is not None and found.offset == 4 and found.timestamp >= t_mid
        assert c.beginning_offsets([tp])[tp] == 0
        assert c.end_offsets([tp])[tp] == 6
        assert c.offsets_for_times({tp: int(time.time() * 1000) + 60_000})[tp] is None
    finally:
        c.close()
