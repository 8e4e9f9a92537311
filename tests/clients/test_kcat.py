"""Debian's kcat (librdkafka 2.0.2) against the real broker. kcat has no admin API: topics
come from auto-creation, or from kafka-python's admin client for multi-partition topics."""

import pytest

import test_kafka_python as kp
from kcat_client import consume, kcat_record_set, metadata, produce
from records import CODECS, COMPRESSED_CODECS, PARTITIONS, check_consumed


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume(broker, kcat, topic_name, codec):
    kp.create_topic(broker, topic_name)
    records = kcat_record_set(f"kcat-{codec}")
    produce(kcat, broker.bootstrap, topic_name, records, codec)
    check_consumed(records, consume(kcat, broker.bootstrap, topic_name))


def test_auto_create_produce_consume(broker, kcat, topic_name):
    records = kcat_record_set("kcat-auto", count=12)
    produce(kcat, broker.bootstrap, topic_name, records, "snappy")
    check_consumed(records, consume(kcat, broker.bootstrap, topic_name), partitions=1)


def test_metadata_lists_topic(broker, kcat, topic_name):
    kp.create_topic(broker, topic_name)
    md = metadata(kcat, broker.bootstrap, topic_name)
    assert [b["id"] for b in md["brokers"]] == [1]
    (t,) = [t for t in md["topics"] if t["topic"] == topic_name]
    assert "error" not in t or not t["error"]
    assert sorted(p["partition"] for p in t["partitions"]) == list(range(PARTITIONS))
    assert all(p["leader"] == 1 for p in t["partitions"])


@pytest.mark.parametrize("codec", COMPRESSED_CODECS)
def test_batches_stay_compressed(broker, kcat, topic_name, codec):
    """librdkafka compresses only when the broker's Produce range starts low enough (and, for
    lz4, only when FindCoordinator v0 is advertised: librdkafka's feature map), and the broker
    stores batches as received: so compressible records must stay small on disk."""
    kp.create_topic(broker, topic_name, partitions=1)
    records = [{"key": b"same", "value": b"a" * 2000, "headers": [("h", b"v")]} for _ in range(200)]
    produce(kcat, broker.bootstrap, topic_name, records, codec)
    log_bytes = broker.partition_log_bytes(topic_name, 0)
    assert 0 < log_bytes < 100_000, f"{log_bytes} bytes on disk for 400 kB of {codec}-compressible records"
