"""confluent-kafka (librdkafka) against the real broker: admin, produce, consume."""

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from records import CODECS, PARTITIONS, check_acks, check_consumed, record_set

TIMEOUT_S = 30


def admin(broker):
    # Callers keep the client in a variable until its futures resolve: a client that is
    # garbage-collected fails its pending futures with _DESTROY.
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create_topic(broker, name, partitions=PARTITIONS, config=None):
    a = admin(broker)
    futures = a.create_topics([NewTopic(name, partitions, 1, config=config or {})], operation_timeout=TIMEOUT_S, request_timeout=TIMEOUT_S)
    futures[name].result(timeout=TIMEOUT_S)


def produce(broker, topic, records, codec, **extra):
    # librdkafka's default partitioner is CRC32-based; murmur2_random is Java's.
    conf = {"bootstrap.servers": broker.bootstrap, "compression.codec": codec, "partitioner": "murmur2_random",
            "linger.ms": 20, "message.timeout.ms": TIMEOUT_S * 1000}
    conf.update(extra)
    p = Producer(conf)
    acks, errors = [None] * len(records), []

    def on_delivery(i):
        def cb(err, msg):
            if err is not None:
                errors.append(err)
            else:
                acks[i] = (msg.partition(), msg.offset())
        return cb

    for i, r in enumerate(records):
        p.produce(topic, key=r["key"], value=r["value"], headers=r["headers"], on_delivery=on_delivery(i))
    remaining = p.flush(TIMEOUT_S)
    assert not errors, f"delivery errors: {errors[:3]}"
    assert remaining == 0, f"{remaining} records undelivered after {TIMEOUT_S}s"
    return acks


def consume(broker, topic, count, partitions=PARTITIONS):
    # A group id is required by the Python binding; offsets are never committed, and the
    # partitions are assigned by hand so no group coordinator is involved.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{topic}", "enable.auto.commit": False,
                  "enable.partition.eof": False})
    try:
        c.assign([TopicPartition(topic, p, -2) for p in range(partitions)])  # -2 = beginning
        out, deadline = [], time.monotonic() + TIMEOUT_S
        while len(out) < count and time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, f"consume error: {msg.error()}"
            out.append({"partition": msg.partition(), "offset": msg.offset(), "key": msg.key(), "value": msg.value(),
                        "headers": [(k, v) for k, v in (msg.headers() or [])]})
        return out
    finally:
        c.close()


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume(broker, topic_name, codec):
    create_topic(broker, topic_name)
    records = record_set(f"confluent-{codec}")
    check_acks(records, produce(broker, topic_name, records, codec))
    check_consumed(records, consume(broker, topic_name, len(records)))


@pytest.mark.needs_api("InitProducerId")
def test_idempotent_produce(broker, topic_name):
    create_topic(broker, topic_name)
    records = record_set("confluent-idempotent")
    check_acks(records, produce(broker, topic_name, records, "lz4", **{"enable.idempotence": True}))
    check_consumed(records, consume(broker, topic_name, len(records)))


def test_auto_create_on_produce(broker, topic_name):
    records = record_set("confluent-auto", count=6)
    acks = produce(broker, topic_name, records, "none")
    # auto.create.topics.enable with num.partitions=1 (the embedded defaults)
    assert all(p == 0 for p, _ in acks)
    check_consumed(records, consume(broker, topic_name, len(records), partitions=1), partitions=1)


def test_admin_create_and_list_topics(broker, topic_name):
    create_topic(broker, topic_name, partitions=4, config={"retention.ms": "3600000"})
    a = admin(broker)
    md = a.list_topics(topic=topic_name, timeout=TIMEOUT_S)
    t = md.topics[topic_name]
    assert t.error is None
    assert sorted(t.partitions) == [0, 1, 2, 3]
    assert all(p.leader == 1 and p.replicas == [1] for p in t.partitions.values())


def test_admin_create_topic_twice_is_an_error(broker, topic_name):
    create_topic(broker, topic_name)
    a = admin(broker)
    fut = a.create_topics([NewTopic(topic_name, 1, 1)], operation_timeout=TIMEOUT_S)[topic_name]
    with pytest.raises(Exception) as e:
        fut.result(timeout=TIMEOUT_S)
    assert "TOPIC_ALREADY_EXISTS" in str(e.value) or "already exists" in str(e.value)


@pytest.mark.needs_api("DescribeConfigs")
def test_admin_describe_configs_with_defaults(broker, topic_name):
    from confluent_kafka.admin import ConfigResource, ConfigSource

    create_topic(broker, topic_name, config={"retention.ms": "3600000"})
    res = ConfigResource("TOPIC", topic_name)
    a = admin(broker)
    configs = a.describe_configs([res], request_timeout=TIMEOUT_S)[res].result(timeout=TIMEOUT_S)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    # Defaults are listed too, with Kafka's default values.
    assert configs["cleanup.policy"].value == "delete"
    assert configs["segment.bytes"].value == "1073741824"
    assert configs["max.message.bytes"].value == "1048588"
    assert configs["cleanup.policy"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value


@pytest.mark.needs_api("CreatePartitions")
def test_admin_create_partitions(broker, topic_name):
    from confluent_kafka.admin import NewPartitions

    create_topic(broker, topic_name, partitions=2)
    a = admin(broker)
    a.create_partitions([NewPartitions(topic_name, 5)], operation_timeout=TIMEOUT_S)[topic_name].result(timeout=TIMEOUT_S)
    md = a.list_topics(topic=topic_name, timeout=TIMEOUT_S)
    assert sorted(md.topics[topic_name].partitions) == [0, 1, 2, 3, 4]


@pytest.mark.needs_api("DeleteRecords", "ListOffsets")
def test_admin_delete_records(broker, topic_name):
    create_topic(broker, topic_name, partitions=1)
    records = record_set("confluent-delete", count=10)
    produce(broker, topic_name, records, "none")
    tp = TopicPartition(topic_name, 0, 4)
    a = admin(broker)
    result = a.delete_records([tp], request_timeout=TIMEOUT_S)[tp].result(timeout=TIMEOUT_S)
    assert result.low_watermark == 4
    got = consume(broker, topic_name, 6, partitions=1)
    assert [r["offset"] for r in got] == list(range(4, 10))


@pytest.mark.needs_api("ListOffsets")
def test_offsets_for_times(broker, topic_name):
    create_topic(broker, topic_name, partitions=1)
    first = record_set("confluent-times-a", count=3)
    produce(broker, topic_name, first, "none")
    time.sleep(0.05)
    t_mid = int(time.time() * 1000)
    time.sleep(0.05)
    produce(broker, topic_name, record_set("confluent-times-b", count=3), "none")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{topic_name}", "enable.auto.commit": False})
    try:
        (tp,) = c.offsets_for_times([TopicPartition(topic_name, 0, t_mid)], timeout=TIMEOUT_S)
        assert tp.error is None and tp.offset == 3
        low, high = c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=TIMEOUT_S)
        assert (low, high) == (0, 6)
        (tp,) = c.offsets_for_times([TopicPartition(topic_name, 0, int(time.time() * 1000) + 60_000)], timeout=TIMEOUT_S)
        assert tp.offset == -1  # no record at or after a future timestamp: the end
    finally:
        c.close()
