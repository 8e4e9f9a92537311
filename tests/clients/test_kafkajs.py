"""kafkajs (with snappy/lz4/zstd codecs registered) against the real broker.

kafkajs consumes only through a consumer group, so its own consume tests need the group
APIs; what it produces is also read back by kafka-python, which needs no group."""

import time

import pytest

import test_kafka_python as kp
from kafka_wire import GROUP_APIS
from records import CODECS, PARTITIONS, b64, check_consumed, from_json, record_set


def to_json(records):
    return [{"key": b64(r["key"]), "value": b64(r["value"]),
             "headers": [[b64(k.encode()), b64(v)] for k, v in r["headers"]]} for r in records]


def create(js_tool, broker, topic, partitions=PARTITIONS, configs=None):
    out = js_tool({"op": "create", "bootstrap": broker.bootstrap, "topic": topic, "partitions": partitions, "configs": configs or {}})
    assert out["created"] is True


def produce(js_tool, broker, topic, records, codec, idempotent=False):
    out = js_tool({"op": "produce", "bootstrap": broker.bootstrap, "topic": topic, "codec": codec,
                   "idempotent": idempotent, "records": to_json(records)})
    # One send: kafkajs answers per partition with the base offset of its batch.
    assert all(r["error"] == 0 for r in out["result"])
    return out["result"]


@pytest.mark.parametrize("codec", CODECS)
def test_produce_read_by_kafka_python(broker, js_tool, topic_name, codec):
    create(js_tool, broker, topic_name)
    records = record_set(f"kafkajs-{codec}")
    result = produce(js_tool, broker, topic_name, records, codec)
    assert {r["partition"] for r in result} <= set(range(PARTITIONS))
    check_consumed(records, kp.consume(broker, topic_name, len(records)))


@pytest.mark.needs_api("InitProducerId")
def test_idempotent_produce_read_by_kafka_python(broker, js_tool, topic_name):
    create(js_tool, broker, topic_name)
    records = record_set("kafkajs-idempotent")
    produce(js_tool, broker, topic_name, records, "zstd", idempotent=True)
    check_consumed(records, kp.consume(broker, topic_name, len(records)))


@pytest.mark.needs_api(*GROUP_APIS)
@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume(broker, js_tool, topic_name, codec):
    create(js_tool, broker, topic_name)
    records = record_set(f"kafkajs-rt-{codec}")
    produce(js_tool, broker, topic_name, records, codec)
    out = js_tool({"op": "consume", "bootstrap": broker.bootstrap, "topic": topic_name, "count": len(records),
                   "groupId": f"g-{topic_name}", "timeoutMs": 10000})
    check_consumed(records, [from_json(r) for r in out["records"]])


def test_admin_metadata(broker, js_tool, topic_name):
    create(js_tool, broker, topic_name, partitions=2)
    out = js_tool({"op": "metadata", "bootstrap": broker.bootstrap, "topic": topic_name})
    (t,) = out["topics"]
    assert t["name"] == topic_name
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1]
    assert all(p["leader"] == 1 and p["replicas"] == [1] for p in t["partitions"])


@pytest.mark.needs_api("ListOffsets")
def test_admin_offsets(broker, js_tool, topic_name):
    create(js_tool, broker, topic_name, partitions=1)
    produce(js_tool, broker, topic_name, record_set("kafkajs-offsets-a", count=5), "gzip")
    time.sleep(0.05)
    t_mid = int(time.time() * 1000)
    time.sleep(0.05)
    produce(js_tool, broker, topic_name, record_set("kafkajs-offsets-b", count=3), "gzip")
    out = js_tool({"op": "offsets", "bootstrap": broker.bootstrap, "topic": topic_name})
    assert out["offsets"] == [{"partition": 0, "low": 0, "high": 8}]
    out = js_tool({"op": "offsetsByTimestamp", "bootstrap": broker.bootstrap, "topic": topic_name, "timestamp": t_mid})
    assert out["offsets"] == [{"partition": 0, "offset": 5}]


@pytest.mark.needs_api("CreatePartitions")
def test_admin_create_partitions(broker, js_tool, topic_name):
    create(js_tool, broker, topic_name, partitions=1)
    js_tool({"op": "createPartitions", "bootstrap": broker.bootstrap, "topic": topic_name, "count": 4})
    out = js_tool({"op": "metadata", "bootstrap": broker.bootstrap, "topic": topic_name})
    assert sorted(p["partition"] for p in out["topics"][0]["partitions"]) == [0, 1, 2, 3]


@pytest.mark.needs_api("DeleteRecords")
def test_admin_delete_records(broker, js_tool, topic_name):
    create(js_tool, broker, topic_name, partitions=1)
    produce(js_tool, broker, topic_name, record_set("kafkajs-delete", count=6), "none")
    js_tool({"op": "deleteRecords", "bootstrap": broker.bootstrap, "topic": topic_name, "partition": 0, "offset": 2})
    out = js_tool({"op": "offsets", "bootstrap": broker.bootstrap, "topic": topic_name})
    assert out["offsets"] == [{"partition": 0, "low": 2, "high": 6}]


@pytest.mark.needs_api("DescribeConfigs")
def test_admin_describe_configs(broker, js_tool, topic_name):
    create(js_tool, broker, topic_name, partitions=1, configs={"retention.bytes": "1048576"})
    out = js_tool({"op": "describeConfigs", "bootstrap": broker.bootstrap, "topic": topic_name})
    assert out["errorCode"] == 0
    assert out["configs"]["retention.bytes"]["value"] == "1048576"
    assert out["configs"]["retention.bytes"]["isDefault"] is False
    assert out["configs"]["compression.type"]["value"] == "producer"
    assert out["configs"]["compression.type"]["isDefault"] is True
