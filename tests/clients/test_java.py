"""The official Java client (kafka-clients 4.x) against the real broker: Admin, producer,
consumer. The Java producer is idempotent by default, so its default produce needs
InitProducerId; the non-idempotent variant shows produce itself works."""

import pathlib
import tempfile
import time

import pytest

from records import CODECS, PARTITIONS, b64, check_acks, check_consumed, from_json, record_set


def records_file(records):
    f = tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False)
    with f:
        for r in records:
            headers = ",".join(f"{b64(k.encode())}:{b64(v)}" for k, v in r["headers"])
            f.write(f"{b64(r['key'])}\t{b64(r['value'])}\t{headers}\n")
    return pathlib.Path(f.name)


def create(java_tool, broker, topic, partitions=PARTITIONS, *configs):
    assert java_tool(["admin", broker.bootstrap, "create", topic, partitions, *configs])["created"] == topic


def produce(java_tool, broker, topic, records, codec, *extra):
    path = records_file(records)
    try:
        out = java_tool(["produce", broker.bootstrap, topic, codec, path, *extra])
    finally:
        path.unlink()
    return [(a["partition"], a["offset"]) for a in out["acks"]]


def consume(java_tool, broker, topic, count):
    out = java_tool(["consume", broker.bootstrap, topic, count, 30000])
    return [from_json(r) for r in out["records"]]


@pytest.mark.needs_api("InitProducerId")
@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_defaults(broker, java_tool, topic_name, codec):
    create(java_tool, broker, topic_name)
    records = record_set(f"java-{codec}")
    check_acks(records, produce(java_tool, broker, topic_name, records, codec))
    check_consumed(records, consume(java_tool, broker, topic_name, len(records)))


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_not_idempotent(broker, java_tool, topic_name, codec):
    create(java_tool, broker, topic_name)
    records = record_set(f"java-plain-{codec}")
    check_acks(records, produce(java_tool, broker, topic_name, records, codec, "enable.idempotence=false"))
    check_consumed(records, consume(java_tool, broker, topic_name, len(records)))


def test_admin_describe_topic(broker, java_tool, topic_name):
    create(java_tool, broker, topic_name, 3)
    out = java_tool(["admin", broker.bootstrap, "describe", topic_name])
    assert out["name"] == topic_name
    assert out["topic_id"] != "AAAAAAAAAAAAAAAAAAAAAA"  # a real topic id, not the zero uuid
    assert out["internal"] is False
    assert [p["partition"] for p in out["partitions"]] == [0, 1, 2]
    assert all(p["leader"] == 1 and p["replicas"] == 1 and p["isr"] == 1 for p in out["partitions"])


@pytest.mark.needs_api("DescribeConfigs")
def test_admin_configs_with_defaults(broker, java_tool, topic_name):
    create(java_tool, broker, topic_name, 1, "retention.ms=86400000", "cleanup.policy=compact,delete")
    configs = java_tool(["admin", broker.bootstrap, "configs", topic_name])["configs"]
    assert configs["retention.ms"] == {"value": "86400000", "source": "DYNAMIC_TOPIC_CONFIG", "read_only": False, "sensitive": False}
    assert configs["cleanup.policy"]["value"] == "compact,delete"
    for name, default in [("segment.bytes", "1073741824"), ("min.insync.replicas", "1"),
                          ("message.timestamp.type", "CreateTime"), ("compression.type", "producer"),
                          ("retention.bytes", "-1"), ("max.message.bytes", "1048588")]:
        assert configs[name]["value"] == default, name
        assert configs[name]["source"] == "DEFAULT_CONFIG", name


@pytest.mark.needs_api("CreatePartitions")
def test_admin_add_partitions(broker, java_tool, topic_name):
    create(java_tool, broker, topic_name, 2)
    java_tool(["admin", broker.bootstrap, "add-partitions", topic_name, 6])
    out = java_tool(["admin", broker.bootstrap, "describe", topic_name])
    assert [p["partition"] for p in out["partitions"]] == list(range(6))


@pytest.mark.needs_api("DeleteRecords")
def test_admin_delete_records(broker, java_tool, topic_name):
    create(java_tool, broker, topic_name, 1)
    produce(java_tool, broker, topic_name, record_set("java-delete", count=7), "none", "enable.idempotence=false")
    out = java_tool(["admin", broker.bootstrap, "delete-records", topic_name, 0, 3])
    assert out["low_watermark"] == 3
    assert java_tool(["admin", broker.bootstrap, "offset", topic_name, 0, "earliest"])["offset"] == 3


@pytest.mark.needs_api("ListOffsets")
def test_admin_list_offsets(broker, java_tool, topic_name):
    create(java_tool, broker, topic_name, 1)
    produce(java_tool, broker, topic_name, record_set("java-offsets-a", count=4), "zstd", "enable.idempotence=false")
    time.sleep(0.05)
    t_mid = int(time.time() * 1000)
    time.sleep(0.05)
    produce(java_tool, broker, topic_name, record_set("java-offsets-b", count=3), "zstd", "enable.idempotence=false")
    offset = lambda spec: java_tool(["admin", broker.bootstrap, "offset", topic_name, 0, spec])
    assert offset("earliest")["offset"] == 0
    assert offset("latest")["offset"] == 7
    by_time = offset(str(t_mid))
    assert by_time["offset"] == 4 and by_time["timestamp"] >= t_mid
    # The newest records may share a millisecond; the broker names one of them.
    newest = offset("max")
    assert 4 <= newest["offset"] <= 6 and newest["timestamp"] >= t_mid
