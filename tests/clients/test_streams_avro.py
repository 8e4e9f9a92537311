"""Strom Streams' Avro serdes (feature `avro`) against confluent-kafka's own Avro
serializer and deserializer, through `strom schema-registry`: confluent-kafka's
AvroSerializer writes orders (Avro string keys, `Order` record values, a union field);
the `avro_orders` example topology (crates/strom-streams/examples/avro_orders.rs) reads
them with `AvroSerde` and writes `OrderLine` records with schemas it registered itself;
confluent-kafka's AvroDeserializer reads every one of them back exactly."""

import json
import os
import pathlib
import queue
import signal
import subprocess
import tempfile
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import ROOT, strom_binary
from test_schema_registry import Registry

BUILD_TIMEOUT_S = 1200
READY_TIMEOUT_S = 120
ORDERS = 20

ORDER_SCHEMA = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [
        {"name": "item", "type": "string"},
        {"name": "quantity", "type": "int"},
        {"name": "price", "type": "double"},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
})


def example_binary() -> pathlib.Path:
    """The `avro_orders` example beside the strom binary; `cargo test` builds it with the
    workspace (the crate's dev-dependency enables `avro`), else it is built here once."""
    profile = strom_binary().parent
    path = profile / "examples" / "avro_orders"
    if not path.exists():
        env = dict(os.environ, CARGO_TARGET_DIR=str(profile.parent))
        subprocess.run(["cargo", "build", "-p", "strom-streams", "--example", "avro_orders"],
                       cwd=ROOT, env=env, check=True, timeout=BUILD_TIMEOUT_S)
    return path


def create_topics(bootstrap, names):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for name, future in admin.create_topics([NewTopic(n, 2, 1) for n in names]).items():
        future.result(30)


class Streams:
    """One `avro_orders` process; SIGKILLed at the end if still running."""

    def __init__(self, args):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=dict(os.environ, RUST_LOG="warn"))
        self.lines = queue.Queue()
        self.stderr = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr.append), daemon=True).start()

    @staticmethod
    def _read(pipe, sink):
        for line in pipe:
            sink(line)

    def wait_running(self):
        try:
            line = self.lines.get(timeout=READY_TIMEOUT_S)
        except queue.Empty:
            raise AssertionError(f"avro_orders not running in {READY_TIMEOUT_S}s:\n{''.join(self.stderr)}")
        assert "running" in line, f"unexpected line {line!r}:\n{''.join(self.stderr)}"

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def test_topology_reads_and_writes_confluent_avro(broker):
    binary = example_binary()
    suffix = uuid.uuid4().hex[:8]
    registry = Registry(broker.bootstrap, f"_schemas_{suffix}", f"schema-registry-{suffix}").start()
    orders, lines = f"orders-{suffix}", f"order-lines-{suffix}"
    create_topics(broker.bootstrap, [orders, lines])
    state = tempfile.mkdtemp(prefix="strom-streams-avro-")
    streams = Streams([str(binary), "--bootstrap-server", broker.bootstrap,
                       "--schema-registry-url", registry.url, "--input", orders,
                       "--output", lines, "--application-id", f"avro-{suffix}",
                       "--state-dir", state])
    try:
        streams.wait_running()
        sr = registry.client()
        key_ser = AvroSerializer(sr, '"string"')
        value_ser = AvroSerializer(sr, ORDER_SCHEMA)
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        expected = {}
        for i in range(ORDERS):
            customer = f"customer-{i % 4}"
            order = {"item": f"item-{i}", "quantity": i + 1, "price": 0.5 * (i % 3 + 1),
                     "note": "gift" if i % 5 == 0 else None}
            expected[order["item"]] = (customer, {
                "customer": customer, "item": order["item"],
                "amount": order["quantity"] * order["price"], "noted": order["note"] is not None,
            })
            producer.produce(orders,
                             key=key_ser(customer, SerializationContext(orders, MessageField.KEY)),
                             value=value_ser(order, SerializationContext(orders, MessageField.VALUE)))
        assert producer.flush(30) == 0

        # The topology registered its output schemas under the topic name strategy.
        value_version = sr.get_latest_version(f"{lines}-value")
        key_version = sr.get_latest_version(f"{lines}-key")
        assert json.loads(value_version.schema.schema_str)["name"] == "OrderLine"
        assert json.loads(key_version.schema.schema_str) == "string"

        key_de, value_de = AvroDeserializer(sr), AvroDeserializer(sr)
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"check-{suffix}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe([lines])
        got = {}
        deadline = time.monotonic() + 90
        while len(got) < ORDERS and time.monotonic() < deadline:
            m = consumer.poll(1.0)
            if m is None or m.error():
                continue
            for raw, version in ((m.key(), key_version), (m.value(), value_version)):
                assert raw[0] == 0, "Confluent's wire format starts with magic byte 0"
                assert int.from_bytes(raw[1:5], "big") == version.schema_id
            key = key_de(m.key(), SerializationContext(lines, MessageField.KEY))
            value = value_de(m.value(), SerializationContext(lines, MessageField.VALUE))
            assert value["item"] not in got, f"duplicate {value}"
            got[value["item"]] = (key, value)
        consumer.close()
        assert got == expected, f"stderr of avro_orders:\n{''.join(streams.stderr)}"
        assert streams.terminate() == 0, ''.join(streams.stderr)
    finally:
        streams.kill()
        registry.stop()
