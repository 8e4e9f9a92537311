"""`strom schema-registry` driven by confluent-kafka's own SchemaRegistryClient and its Avro,
JSON Schema and Protobuf serializers: register, evolve, read back through the strom broker;
incompatible changes get 409; kill -9 and restart keep every id and version; two registry
processes over one cluster agree and a write sent to the follower succeeds; bad input gets
Confluent's error codes and never takes the registry down.

Each test uses its own schemas topic and election group on the session's broker, so tests
are independent."""

import base64
import json
import pathlib
import re
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import shutil

from conftest import HERE, free_port, restart_backoff, run_tool, start_retrying, strom_binary

READY_TIMEOUT_S = 60
MEDIA = "application/vnd.schemaregistry.v1+json"


class Registry:
    """One `strom schema-registry` process over the test broker."""

    def __init__(self, bootstrap, topic, group, port=None):
        # A port of its own choosing is picked again when it was taken before the registry
        # bound it (start); a port given (a registry again on a port the test knows) is not.
        self.own_port = port is None
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            str(strom_binary()),
            "schema-registry",
            "--override", f"kafkastore.bootstrap.servers={bootstrap}",
            "--override", f"listeners={self.url}",
            "--override", f"kafkastore.topic={topic}",
            "--override", f"schema.registry.group.id={group}",
        ]
        self.log_path = pathlib.Path(tempfile.mkstemp(prefix="strom-registry-", suffix=".log")[1])
        self.proc = None

    def start(self):
        """Starts the process and waits until it says it is ready. If it exits because its
        port was taken ("Address already in use"), it is started again (3 starts at most):
        on a port picked afresh if it chose its own, else on the same port after a short
        backoff (conftest.Broker.start does the same)."""

        def before_retry(attempt):
            if not self.own_port:
                restart_backoff(attempt)
                return
            listener = self.args.index(f"listeners={self.url}")
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.args[listener] = f"listeners={self.url}"

        start_retrying(self._start_once, before_retry)
        return self

    def _start_once(self):
        if getattr(self, "log", None) is not None:
            self.log.close()
        self.log = open(self.log_path, "ab")
        # Where this start's output begins: its readiness and failure are judged by it alone.
        output_from = self.log.tell()
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"registry exited with {self.proc.returncode}:\n{self.log_text(output_from)}")
            if "strom schema registry ready" in self.log_text(output_from):
                return
            time.sleep(0.1)
        raise RuntimeError(f"registry not ready in {READY_TIMEOUT_S}s:\n{self.log_text(output_from)}")

    def log_text(self, since=0):
        """The log from byte `since` on."""
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")

    def role(self):
        """The registry's last word on its role: True (leads), False, or None (not joined yet)."""
        text = re.sub(r"\x1b\[[0-9;]*m", "", self.log_text())
        changes = re.findall(r"leadership changed leader=(true|false)", text)
        return changes[-1] == "true" if changes else None

    def is_leader(self):
        return self.role() is True

    def client(self):
        return SchemaRegistryClient({"url": self.url})

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.log.close()

    def request(self, method, path, body=None, raw=None):
        """(status, decoded JSON body) of one request."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": MEDIA, "Accept": MEDIA})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


@pytest.fixture
def registries(broker):
    """Starts registries over the session broker, each test with its own topic and group."""
    suffix = uuid.uuid4().hex[:8]
    made = []

    def make(port=None):
        r = Registry(broker.bootstrap, f"_schemas_{suffix}", f"schema-registry-{suffix}", port)
        made.append(r)
        return r.start()

    yield make
    for r in made:
        r.stop()
        r.log_path.unlink(missing_ok=True)


def round_trip(broker, topic, serializer, deserializer, values):
    """Produces `values` serialized, consumes them back deserialized."""
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for v in values:
        producer.produce(topic, value=serializer(v, SerializationContext(topic, MessageField.VALUE)))
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    out = []
    deadline = time.monotonic() + 60
    while len(out) < len(values) and time.monotonic() < deadline:
        m = consumer.poll(1.0)
        if m is None or m.error():
            continue
        assert m.value()[0] == 0, "Confluent's wire format starts with magic byte 0"
        out.append(deserializer(m.value(), SerializationContext(topic, MessageField.VALUE)))
    consumer.close()
    return out


USER_V1 = json.dumps({"type": "record", "name": "User", "namespace": "shop",
                      "fields": [{"name": "name", "type": "string"}]})
USER_V2 = json.dumps({"type": "record", "name": "User", "namespace": "shop",
                      "fields": [{"name": "name", "type": "string"},
                                 {"name": "age", "type": "int", "default": -1}]})
USER_BAD = json.dumps({"type": "record", "name": "User", "namespace": "shop",
                       "fields": [{"name": "name", "type": "int"}]})


def test_avro_register_evolve_read_back(broker, registries):
    registry = registries()
    sr = registry.client()
    topic = f"users-{uuid.uuid4().hex[:6]}"
    subject = f"{topic}-value"
    v1 = AvroSerializer(sr, USER_V1)
    v2 = AvroSerializer(sr, USER_V2)
    reader = AvroDeserializer(sr)
    ctx = SerializationContext(topic, MessageField.VALUE)
    first = v1({"name": "ada"}, ctx)
    second = v2({"name": "bob", "age": 36}, ctx)
    id1, id2 = int.from_bytes(first[1:5], "big"), int.from_bytes(second[1:5], "big")
    assert id1 != id2
    assert sr.get_versions(subject) == [1, 2]
    assert sr.get_latest_version(subject).schema_id == id2
    assert sr.get_version(subject, 1).schema_id == id1

    got = round_trip(broker, topic, v2, reader, [{"name": "cy", "age": 7}])
    assert got == [{"name": "cy", "age": 7}]
    assert reader(first, ctx) == {"name": "ada"}

    # Registering the same schema again (another client, no cache) gives the same id.
    again = registry.client().register_schema(subject, Schema(USER_V2, "AVRO"))
    assert again == id2
    # The same schema under another subject shares the id.
    assert sr.register_schema(f"{subject}-copy", Schema(USER_V1, "AVRO")) == id1

    with pytest.raises(SchemaRegistryError) as e:
        sr.register_schema(subject, Schema(USER_BAD, "AVRO"))
    assert e.value.http_status_code == 409
    assert e.value.error_code == 40901
    assert not sr.test_compatibility(subject, Schema(USER_BAD, "AVRO"))
    assert sr.test_compatibility(subject, Schema(USER_V2, "AVRO"))

    assert sr.get_compatibility() == "BACKWARD"
    sr.set_compatibility(subject, "NONE")
    assert sr.get_compatibility(subject) == "NONE"
    assert sr.register_schema(subject, Schema(USER_BAD, "AVRO")) > id2
    found = sr.lookup_schema(subject, Schema(USER_V1, "AVRO"))
    assert (found.version, found.schema_id) == (1, id1)

    assert sr.delete_version(subject, 3) == 3
    assert sr.get_versions(subject) == [1, 2]
    assert sorted(sr.get_subjects()) == sorted([subject, f"{subject}-copy"])
    assert sr.delete_subject(f"{subject}-copy") == [1]
    assert sr.delete_subject(f"{subject}-copy", permanent=True) == [1]
    assert sr.get_subjects() == [subject]
    # A soft-deleted schema's id still resolves (old records stay readable).
    assert reader(first, ctx) == {"name": "ada"}


def test_avro_references(registries):
    sr = registries().client()
    address = json.dumps({"type": "record", "name": "Address", "namespace": "shop",
                          "fields": [{"name": "street", "type": "string"}]})
    order = json.dumps({"type": "record", "name": "Order", "namespace": "shop",
                        "fields": [{"name": "ship_to", "type": "shop.Address"}]})
    sr.register_schema("address", Schema(address, "AVRO"))
    ref = SchemaReference("shop.Address", "address", 1)
    order_id = sr.register_schema("order", Schema(order, "AVRO", [ref]))
    assert sr.get_schema(order_id).references[0].subject == "address"
    assert sr.get_referenced_by("address", 1) == [order_id]
    with pytest.raises(SchemaRegistryError) as e:
        sr.delete_version("address", 1)
    assert e.value.error_code == 42206
    with pytest.raises(SchemaRegistryError) as e:
        sr.register_schema("order2", Schema(order, "AVRO"))
    assert e.value.error_code == 42201


ORDER_V1 = {"$schema": "http://json-schema.org/draft-07/schema#", "title": "Order", "type": "object",
            "properties": {"id": {"type": "integer"}}, "required": ["id"], "additionalProperties": False}


def test_json_schema_serializer(broker, registries):
    registry = registries()
    sr = registry.client()
    topic = f"orders-{uuid.uuid4().hex[:6]}"
    subject = f"{topic}-value"
    serializer = JSONSerializer(json.dumps(ORDER_V1), sr)
    deserializer = JSONDeserializer(None, schema_registry_client=sr)
    assert round_trip(broker, topic, serializer, deserializer, [{"id": 1}, {"id": 2}]) == [{"id": 1}, {"id": 2}]
    # Closed content model: adding an optional property is backward compatible.
    v2 = dict(ORDER_V1, properties={"id": {"type": "integer"}, "note": {"type": "string"}})
    assert sr.register_schema(subject, Schema(json.dumps(v2), "JSON")) > 0
    assert sr.get_versions(subject) == [1, 2]
    # Narrowing a type is not.
    bad = dict(v2, properties={"id": {"type": "string"}, "note": {"type": "string"}})
    with pytest.raises(SchemaRegistryError) as e:
        sr.register_schema(subject, Schema(json.dumps(bad), "JSON"))
    assert e.value.http_status_code == 409
    assert sr.get_latest_version(subject).schema.schema_type == "JSON"


def message_class(fields):
    """A protobuf message class `shop.Item` with `fields` [(name, number, type)], built from
    a descriptor (no protoc needed)."""
    fdp = descriptor_pb2.FileDescriptorProto(name=f"item_{uuid.uuid4().hex[:6]}.proto", package="shop",
                                             syntax="proto3")
    message = fdp.message_type.add(name="Item")
    for name, number, kind in fields:
        message.field.add(name=name, number=number, type=kind,
                          label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Item"))


def test_protobuf_serializer(broker, registries):
    sr = registries().client()
    fdp = descriptor_pb2.FieldDescriptorProto
    ItemV1 = message_class([("sku", 1, fdp.TYPE_STRING)])
    ItemV2 = message_class([("sku", 1, fdp.TYPE_STRING), ("count", 2, fdp.TYPE_INT32)])
    ItemBad = message_class([("sku", 1, fdp.TYPE_INT64)])
    topic = f"items-{uuid.uuid4().hex[:6]}"
    subject = f"{topic}-value"
    conf = {"use.deprecated.format": False}
    v1 = ProtobufSerializer(ItemV1, sr, conf)
    v2 = ProtobufSerializer(ItemV2, sr, conf)
    bad = ProtobufSerializer(ItemBad, sr, conf)
    reader = ProtobufDeserializer(ItemV2, conf, sr)
    ctx = SerializationContext(topic, MessageField.VALUE)
    old = v1(ItemV1(sku="a-1"), ctx)
    got = round_trip(broker, topic, v2, reader, [ItemV2(sku="b-2", count=3)])
    assert [(m.sku, m.count) for m in got] == [("b-2", 3)]
    assert reader(old, ctx).sku == "a-1"
    assert sr.get_versions(subject) == [1, 2]
    assert sr.get_latest_version(subject).schema.schema_type == "PROTOBUF"
    with pytest.raises(Exception) as e:
        bad(ItemBad(sku=5), ctx)
    assert "409" in str(e.value) or "incompatible" in str(e.value).lower()


def test_protobuf_normalize_gives_equivalent_texts_one_id(registries):
    sr = registries().client()
    a = 'syntax = "proto3"; package n; option java_package = "x"; option go_package = "y";\n' \
        'message M { N n = 1 [deprecated = true]; }\nmessage N { int32 v = 1; }'
    b = 'syntax = "proto3";\npackage n;\n// same, written differently\n' \
        'option go_package = "y";\noption java_package = "x";\n' \
        'message M {\n  .n.N n = 1 [deprecated = true];\n}\nmessage N {\n  int32 v = 1;\n}\n'
    first = sr.register_schema("norm-value", Schema(a, "PROTOBUF"), normalize_schemas=True)
    again = sr.register_schema("norm-value", Schema(b, "PROTOBUF"), normalize_schemas=True)
    assert again == first
    assert sr.get_versions("norm-value") == [1]
    found = sr.lookup_schema("norm-value", Schema(b, "PROTOBUF"), normalize_schemas=True)
    assert found.schema_id == first and found.version == 1
    # The stored text is the normalized one, which compiles back (the registry reads it).
    stored = sr.get_schema(first).schema_str
    assert ".n.N n = 1 [deprecated = true];" in stored and "//" not in stored
    # Without normalize the other text is another schema (another version).
    other = sr.register_schema("plain-value", Schema(a, "PROTOBUF"))
    assert sr.register_schema("plain-value", Schema(b, "PROTOBUF")) != other


def test_kill9_restart_keeps_ids_and_versions(registries):
    registry = registries()
    sr = registry.client()
    expected = {}
    for i in range(4):
        schema = json.dumps({"type": "record", "name": f"R{i}", "fields": [{"name": "a", "type": "int"}]})
        for subject in (f"s{i}", "shared"):
            if subject == "shared":
                sr.set_compatibility(subject, "NONE") if i == 0 else None
            schema_id = sr.register_schema(subject, Schema(schema, "AVRO"))
            version = sr.lookup_schema(subject, Schema(schema, "AVRO")).version
            expected[(subject, version)] = (schema_id, schema)
    sr.delete_version("s3", 1)
    registry.kill()
    restarted = registries(port=registry.port)
    fresh = restarted.client()
    for (subject, version), (schema_id, schema) in expected.items():
        if subject == "s3":
            continue
        got = fresh.get_version(subject, version)
        assert (got.schema_id, json.loads(got.schema.schema_str)) == (schema_id, json.loads(schema))
        assert json.loads(fresh.get_schema(schema_id).schema_str) == json.loads(schema)
    assert "s3" not in fresh.get_subjects()
    assert fresh.get_compatibility("shared") == "NONE"
    # Ids go on from where they were: a new schema gets a new, higher id.
    new_id = fresh.register_schema("after", Schema('"string"', "AVRO"))
    assert new_id > max(i for i, _ in expected.values())


def test_two_registries_agree_and_follower_forwards(registries):
    a = registries()
    b = registries()
    # The second member's join rebalances the group; wait until it settles on one leader.
    deadline = time.monotonic() + 60
    settled = 0
    while settled < 10 and time.monotonic() < deadline:
        roles = {a.role(), b.role()}
        settled = settled + 1 if roles == {True, False} else 0
        time.sleep(0.2)
    assert a.is_leader() != b.is_leader(), "exactly one registry leads"
    follower, leader = (a, b) if b.is_leader() else (b, a)
    schema = Schema(USER_V1, "AVRO")
    via_follower = follower.client().register_schema("forwarded", schema)
    # The follower answered after its own reader caught up: it reads its write at once.
    assert follower.client().get_version("forwarded", 1).schema_id == via_follower
    via_leader = leader.client().register_schema("direct", Schema(USER_V2, "AVRO"))
    assert via_follower != via_leader
    # Both answer the same, each from its own read of the topic.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        views = [(sorted(r.client().get_subjects()), r.request("GET", f"/schemas/ids/{via_leader}")[0])
                 for r in (a, b)]
        if views[0] == views[1] == (["direct", "forwarded"], 200):
            break
        time.sleep(0.2)
    for r in (a, b):
        c = r.client()
        assert sorted(c.get_subjects()) == ["direct", "forwarded"]
        assert c.get_version("forwarded", 1).schema_id == via_follower
        assert c.get_version("direct", 1).schema_id == via_leader
    # Config writes forward too.
    assert follower.request("PUT", "/config/direct", {"compatibility": "FULL"})[0] == 200
    assert leader.request("GET", "/config/direct")[1] == {"compatibilityLevel": "FULL"}


def test_bad_input_gets_confluents_error_codes(registries):
    r = registries()
    cases = [
        ("POST", "/subjects/s/versions", {"schema": "{not json"}, None, 422, 42201),
        ("POST", "/subjects/s/versions", {"schema": '{"type":"record","name":"R"}'}, None, 422, 42201),
        ("POST", "/subjects/s/versions", {"schema": '"int"', "schemaType": "XML"}, None, 422, 42201),
        ("POST", "/subjects/s/versions", {"schema": "message {", "schemaType": "PROTOBUF"}, None, 422, 42201),
        ("POST", "/subjects/s/versions", {"schema": '{"type":"strin"}', "schemaType": "JSON"}, None, 422, 42201),
        ("POST", "/subjects/s/versions", {"schema": "[" * 100_000 + "]" * 100_000}, None, 422, 42201),
        ("POST", "/subjects/s/versions",
         {"schema": '{"type":"array","items":' * 500 + '"int"' + "}" * 500}, None, 422, 42201),
        ("POST", "/subjects/s/versions",
         {"schema": "message M {" * 300 + "}" * 300, "schemaType": "PROTOBUF"}, None, 422, 42201),
        ("POST", "/subjects/s/versions", None, b"x" * (3 * 1024 * 1024), 422, 42209),
        ("POST", "/subjects/s/versions", None, b"{oops", 400, 400),
        ("GET", "/subjects/unknown/versions", None, None, 404, 40401),
        ("GET", "/subjects/unknown/versions/1", None, None, 404, 40401),
        ("GET", "/subjects/s/versions/zero", None, None, 422, 42202),
        ("GET", "/schemas/ids/987654", None, None, 404, 40403),
        ("POST", "/subjects/unknown", {"schema": '"int"'}, None, 404, 40401),
        ("PUT", "/config", {"compatibility": "SIDEWAYS"}, None, 422, 42203),
        ("PUT", "/mode", {"mode": "SOMETIMES"}, None, 422, 42204),
        ("GET", "/no/such/path", None, None, 404, 404),
    ]
    for method, path, body, raw, status, error_code in cases:
        got_status, got = r.request(method, path, body, raw)
        assert (got_status, got.get("error_code")) == (status, error_code), (method, path, got)
        assert isinstance(got.get("message"), str)
    # Still serving.
    assert r.request("GET", "/subjects")[0] == 200
    assert r.proc.poll() is None


def strom(*args, check=True, timeout=60):
    """Runs the strom command line; its completed process."""
    done = subprocess.run([str(strom_binary()), *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"strom {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def test_cli_avro_values_and_schemas_commands(broker, registries, tmp_path):
    r = registries()
    sr = r.client()
    topic = f"cli-{uuid.uuid4().hex[:6]}"
    subject = f"{topic}-value"
    common = ["-b", broker.bootstrap, "--registry-url", r.url]
    (tmp_path / "user.avsc").write_text(USER_V1)
    (tmp_path / "bad.avsc").write_text(USER_BAD)
    strom("topics", "create", topic, "-b", broker.bootstrap)
    done = subprocess.run([str(strom_binary()), "produce", topic, "--value-format", "avro",
                           "--schema", str(tmp_path / "user.avsc"), *common],
                          input='{"name": "ada"}\n{"name": "bob"}\n', capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # confluent-kafka's AvroDeserializer reads what strom produced...
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    reader = AvroDeserializer(sr)
    got = []
    deadline = time.monotonic() + 60
    while len(got) < 2 and time.monotonic() < deadline:
        m = consumer.poll(1.0)
        if m is not None and not m.error():
            got.append(reader(m.value(), SerializationContext(topic, MessageField.VALUE)))
    consumer.close()
    assert got == [{"name": "ada"}, {"name": "bob"}]
    # ...and strom reads what confluent-kafka's AvroSerializer wrote, with a newer schema.
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    writer = AvroSerializer(sr, USER_V2)
    producer.produce(topic, value=writer({"name": "cy", "age": 3}, SerializationContext(topic, MessageField.VALUE)))
    assert producer.flush(30) == 0
    done = strom("consume", topic, "--from-beginning", "--value-format", "avro", "--max-messages", "3",
                 "--timeout-ms", "20000", *common)
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {"name": "ada"}, {"name": "bob"}, {"name": "cy", "age": 3}]

    assert subject in json.loads(strom("schemas", "list", "--output", "json", *common).stdout)
    latest = json.loads(strom("schemas", "get", subject, "--output", "json", *common).stdout)
    assert latest["version"] == 2
    check = strom("schemas", "check", subject, "--file", str(tmp_path / "bad.avsc"), *common, check=False)
    assert check.returncode == 1 and "ncompatible" in check.stdout
    registered = json.loads(strom("schemas", "register", f"{subject}-copy", "--file", str(tmp_path / "user.avsc"),
                                  "--output", "json", *common).stdout)
    assert registered["id"] == sr.get_version(subject, 1).schema_id
    strom("schemas", "delete", f"{subject}-copy", *common)
    assert f"{subject}-copy" not in sr.get_subjects()
    missing = strom("schemas", "get", "no-such-subject", *common, check=False)
    assert missing.returncode == 1 and "40401" in missing.stderr


def test_server_runs_the_registry_in_process(make_broker):
    b = make_broker(["--override", "schema.registry.enable=true",
                     "--override", "schema.registry.listeners=http://127.0.0.1:{registry_port}"])
    port = b.registry_port
    sr = SchemaRegistryClient({"url": f"http://127.0.0.1:{port}"})
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            sr.get_subjects()
            break
        except Exception:
            assert time.monotonic() < deadline, b.log_tail()
            time.sleep(0.2)
    schema_id = sr.register_schema("in-process", Schema(USER_V1, "AVRO"))
    assert sr.get_schema(schema_id).schema_str
    assert sr.get_versions("in-process") == [1]


def js_registry(request):
    """Runs one op of the JavaScript registry client (@kafkajs/confluent-schema-registry)."""
    if not (HERE / "node_modules" / "@kafkajs" / "confluent-schema-registry").is_dir():
        pytest.fail("@kafkajs/confluent-schema-registry not installed: run scripts/setup-clients")
    node = shutil.which("node") or "node"
    script = HERE / "js" / "schema_registry.js"
    return run_tool([node, str(script)], f"schema registry js {request['op']}", stdin=json.dumps(request).encode())


def test_javascript_serializers_interoperate(registries):
    """The JavaScript client registers and encodes; Python decodes, and the other way."""
    r = registries()
    sr = r.client()
    subject = f"js-{uuid.uuid4().hex[:6]}-value"
    js_id = js_registry({"op": "register", "url": r.url, "subject": subject, "type": "AVRO", "schema": USER_V1})["id"]
    assert sr.get_latest_version(subject).schema_id == js_id
    encoded = js_registry({"op": "encode", "url": r.url, "id": js_id, "value": {"name": "ada"}})["bytes"]
    ctx = SerializationContext("js", MessageField.VALUE)
    assert AvroDeserializer(sr)(base64.b64decode(encoded), ctx) == {"name": "ada"}
    # Python writes with an evolved schema; JavaScript reads it back.
    py_bytes = AvroSerializer(sr, USER_V2, conf={"auto.register.schemas": True})(
        {"name": "bob", "age": 4}, SerializationContext(subject[:-len("-value")], MessageField.VALUE))
    decoded = js_registry({"op": "decode", "url": r.url, "bytes": base64.b64encode(py_bytes).decode()})["value"]
    assert decoded == {"name": "bob", "age": 4}
    latest = r.client().get_latest_version(subject)  # a fresh client: no cached answer
    assert latest.version == 2
    assert js_registry({"op": "latest", "url": r.url, "subject": subject})["id"] == latest.schema_id
    # JSON Schema through the JavaScript serializer.
    json_subject = f"js-json-{uuid.uuid4().hex[:6]}"
    json_id = js_registry({"op": "register", "url": r.url, "subject": json_subject, "type": "JSON",
                           "schema": json.dumps(ORDER_V1)})["id"]
    encoded = js_registry({"op": "encode", "url": r.url, "id": json_id, "value": {"id": 7}})["bytes"]
    assert js_registry({"op": "decode", "url": r.url, "bytes": encoded})["value"] == {"id": 7}
    # An incompatible change reaches the JavaScript client as a 409.
    failed = js_registry({"op": "error", "url": r.url, "subject": subject, "type": "AVRO", "schema": USER_BAD})
    assert failed["status"] == 409, failed
