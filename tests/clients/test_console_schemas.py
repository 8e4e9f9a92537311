"""The console's schema-registry parts and throughput chart in headless Chromium (driven by
`js/console_schemas.js`) against a real broker running the registry in-process: records
written by confluent-kafka's AvroSerializer through Strom's registry are shown decoded as
JSON with their schema id and subject; the schemas page lists the subject, registers a new
version and changes the compatibility level (confluent-kafka's SchemaRegistryClient then
sees both); the topic's throughput chart moves while a producer runs. Keys in JSON Schema
and values in Protobuf are decoded and labelled too, through a registry running as its own
process (`strom.console.schema.registry.url`). Screenshots go to
target/console-screenshots/."""

import html
import json
import re
import shutil
import threading
import time
import uuid

import requests
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from google.protobuf import descriptor_pb2
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import HERE, free_port, run_tool
from test_console_browser import SCREENSHOTS, chromium
from test_metrics import create_topic, http_args
from test_schema_registry import Registry, message_class

TIMEOUT_S = 30
ORDER_V1 = {"type": "record", "name": "Order", "namespace": "shop",
            "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"}]}
ORDER_V2 = {"type": "record", "name": "Order", "namespace": "shop",
            "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"},
                       {"name": "note", "type": "string", "default": ""}]}


def wait_registry(url, broker):
    sr = SchemaRegistryClient({"url": url})
    deadline = time.monotonic() + 60
    while True:
        try:
            sr.get_subjects()
            return sr
        except Exception:
            assert time.monotonic() < deadline, broker.log_tail()
            time.sleep(0.2)


def test_console_schemas_avro_and_chart_in_chromium(make_broker):
    browser = chromium()
    broker = make_broker(http_args("{http_port}", "schema.registry.enable=true",
                                   "schema.registry.listeners=http://127.0.0.1:{registry_port}"))
    http_port, registry_url = broker.http_port, f"http://127.0.0.1:{broker.registry_port}"
    sr = wait_registry(registry_url, broker)
    topic = f"avro-{uuid.uuid4().hex[:8]}"
    subject = f"{topic}-value"
    create_topic(broker.bootstrap, topic, 2)
    serialize = AvroSerializer(sr, json.dumps(ORDER_V1))
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(3):
        value = serialize({"id": 100 + i, "item": "tea"}, SerializationContext(topic, MessageField.VALUE))
        p.produce(topic, key=f"k{i}".encode(), value=value, partition=0)
    assert p.flush(TIMEOUT_S) == 0
    del p
    schema_id = sr.get_latest_version(subject).schema_id

    # A producer runs (to partition 1, so the browsed partition 0 holds only the Avro
    # records) while the browser watches the chart (bounded: stops with the tool or after
    # 120 s).
    stop = threading.Event()

    def produce_steadily():
        q = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            for _ in range(20):
                q.produce(topic, value=b"x" * 100, partition=1)
            q.poll(0)
            time.sleep(0.05)
        q.flush(TIMEOUT_S)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    node = shutil.which("node") or "node"
    request = {"base": f"http://127.0.0.1:{http_port}", "chromium": browser, "screenshots": str(SCREENSHOTS),
               "topic": topic, "subject": subject, "schemaV2": json.dumps(ORDER_V2),
               "timeoutMs": TIMEOUT_S * 1000}
    producer = threading.Thread(target=produce_steadily, daemon=True)
    producer.start()
    try:
        seen = run_tool([node, str(HERE / "js" / "console_schemas.js")], "console schemas in chromium", 180,
                        stdin=json.dumps(request).encode())
    finally:
        stop.set()
        producer.join(60)

    # 1. Decoded Avro, labelled with id and subject.
    text = seen["browserText"]
    assert '"item": "tea"' in text and '"id": 100' in text and '"id": 102' in text, text
    assert f"AVRO · schema id {schema_id} · {subject} v1" in seen["schemaLabels"], seen["schemaLabels"]
    # 2. The schemas page.
    assert subject in seen["subjectsText"], seen["subjectsText"]
    assert '"name": "item"' in seen["schemaText"] and seen["versionBefore"] == "1", seen
    # 3. and 4. Registered through the UI, level changed through the UI; the Python client
    # sees both.
    sr = SchemaRegistryClient({"url": registry_url})  # a fresh client: no cached answers
    v2 = sr.get_latest_version(subject)
    assert v2.version == 2 and "note" in v2.schema.schema_str
    assert seen["registerOutcome"] == f"Registered subject {subject} version 2 with schema id {v2.schema_id}.", seen
    assert seen["compatibilityOutcome"] == f"Compatibility of subject {subject} is now FULL.", seen
    assert seen["versionAfter"] == "2" and seen["levelAfter"] == "FULL" and '"note"' in seen["schemaAfter"], seen
    assert sr.get_compatibility(subject) == "FULL"
    # 5. The chart moved and was drawn.
    assert "records in/s:" in seen["chartText"] and seen["chartPixels"] > 100, seen
    for shot in seen["screenshots"]:
        with open(shot, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", shot
    assert len(seen["screenshots"]) == 4


def test_console_decodes_json_schema_and_protobuf(make_broker):
    """Through a registry running as its own process (`strom schema-registry`), named by
    strom.console.schema.registry.url."""
    registry_port = free_port()
    registry_url = f"http://127.0.0.1:{registry_port}"
    broker = make_broker(http_args("{http_port}", f"strom.console.schema.registry.url={registry_url}"))
    http_port = broker.http_port
    suffix = uuid.uuid4().hex[:8]
    registry = Registry(broker.bootstrap, f"_schemas_{suffix}", f"schema-registry-{suffix}", registry_port)
    registry.start()
    try:
        decodes_json_schema_and_protobuf(registry.client(), http_port, broker)
    finally:
        registry.stop()
        registry.log_path.unlink(missing_ok=True)


def decodes_json_schema_and_protobuf(sr, http_port, broker):
    topic = f"mixed-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic, 1)
    fdp = descriptor_pb2.FieldDescriptorProto
    Item = message_class([("sku", 1, fdp.TYPE_STRING), ("count", 2, fdp.TYPE_INT32)])
    key_schema = json.dumps({"type": "object", "properties": {"region": {"type": "string"}}})
    keys = JSONSerializer(key_schema, sr)
    values = ProtobufSerializer(Item, sr, {"use.deprecated.format": False})
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(topic, partition=0,
              key=keys({"region": "north"}, SerializationContext(topic, MessageField.KEY)),
              value=values(Item(sku="b-2", count=3), SerializationContext(topic, MessageField.VALUE)))
    # Bytes that look framed but name no schema: shown as such, with their bytes.
    p.produce(topic, partition=0, value=b"\x00\x00\x00\x03\xe7garbage")
    assert p.flush(TIMEOUT_S) == 0
    del p
    key_id = sr.get_latest_version(f"{topic}-key").schema_id
    value_id = sr.get_latest_version(f"{topic}-value").schema_id
    page = requests.get(f"http://127.0.0.1:{http_port}/topics/{topic}/0?offset=0", timeout=TIMEOUT_S).text
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert f"JSON · schema id {key_id} · {topic}-key v1" in text and '"region": "north"' in text, text
    assert f"PROTOBUF · schema id {value_id} · {topic}-value v1 · shop.Item" in text, text
    assert 'sku: "b-2"' in text and "count: 3" in text, text
    assert "schema id 999" in text and "cannot decode" in text, text
