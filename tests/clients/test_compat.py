"""Small compatibility points third-party client suites and Kafka's tools check, each through a
client nobody here wrote: null error messages on success,
OffsetCommit of unknown topics, the ACL APIs without an authorizer, DescribeQuorum, features,
coordinator loading on a fresh broker, and dynamic broker configs."""

import os
import shutil
import tempfile
import time

import pytest
from confluent_kafka import KafkaException, Producer
from kafka import KafkaAdminClient

from conftest import TOOLS, TOOL_TIMEOUT_S, run_tool

TIMEOUT_S = 30


@pytest.fixture(scope="session")
def compat_tool():
    classes, libs = TOOLS / "java-classes", TOOLS / "java-libs"
    if not (classes / "CompatTool.class").is_file():
        pytest.fail("Java helper not compiled: run scripts/setup-clients")
    java = shutil.which("java") or "java"
    cp = f"{classes}{os.pathsep}{libs}/*"

    def run(args, timeout_s=TOOL_TIMEOUT_S):
        return run_tool([java, "-cp", cp, "CompatTool"] + [str(a) for a in args], "java CompatTool " + str(args[0]), timeout_s)

    return run


def kafka_python_admin(broker):
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)


def test_success_error_messages_are_null(broker, topic_name):
    """kafkajs' and aiokafka's suites assert that a successful CreateTopics result carries a
    null error message, not ""; Kafka leaves every message null when the code is NONE."""
    admin = kafka_python_admin(broker)
    try:
        checked = admin.create_topics({f"{topic_name}-v": {"num_partitions": 1}}, validate_only=True)
        assert [(t["error_code"], t["error_message"]) for t in checked["topics"]] == [(0, None)]
        created = admin.create_topics({topic_name: {"num_partitions": 2}})
        assert [(t["name"], t["error_code"], t["error_message"]) for t in created["topics"]] == [(topic_name, 0, None)]
        # A refusal still explains itself.
        again = admin.create_topics({topic_name: {"num_partitions": 2}}, raise_errors=False)
        assert again["topics"][0]["error_code"] == 36  # TOPIC_ALREADY_EXISTS
        assert again["topics"][0]["error_message"]
    finally:
        admin.close()


def test_commit_offsets_of_missing_topic(broker, topic_name):
    """librdkafka's 0030 commits offsets of a topic that does not exist: Kafka answers
    UNKNOWN_TOPIC_OR_PARTITION for each partition (and the coordinator stores nothing), while
    the partitions of an existing topic in the same request commit."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic_name, 2, 1)], operation_timeout=TIMEOUT_S)[topic_name].result(timeout=TIMEOUT_S)
    missing = f"{topic_name}-missing"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"{topic_name}-g", "enable.auto.commit": False})
    try:
        with pytest.raises(KafkaException) as raised:
            c.commit(offsets=[TopicPartition(missing, 0, 5), TopicPartition(missing, 1, 6)], asynchronous=False)
        assert raised.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, raised.value
        # Mixed: the existing topic's partitions commit; the missing partition 7 does not.
        with pytest.raises(KafkaException):
            c.commit(offsets=[TopicPartition(topic_name, 0, 3), TopicPartition(topic_name, 7, 4)], asynchronous=False)
        got = c.committed([TopicPartition(topic_name, 0), TopicPartition(missing, 0)], timeout=TIMEOUT_S)
        assert [(tp.topic, tp.offset) for tp in got] == [(topic_name, 3), (missing, -1001)], got
    finally:
        c.close()


def test_acl_apis_without_authorizer(broker, compat_tool):
    """`kafka-acls.sh` goes through the Java Admin: without an authorizer Kafka answers every
    ACL request SECURITY_DISABLED, which the Admin raises as SecurityDisabledException."""
    out = compat_tool(["acls", broker.bootstrap])
    for op in ("describe", "create", "delete"):
        assert out[op].get("error") == "SecurityDisabledException", (op, out)
        assert "No Authorizer is configured" in out[op]["message"], (op, out)


def test_describe_metadata_quorum(broker, compat_tool, topic_name):
    """`kafka-metadata-quorum.sh describe --status/--replication` through the Java Admin: the
    Raft leader, its epoch and high watermark, and every voter's progress and times."""
    before_ms = int(time.time() * 1000)
    first = compat_tool(["quorum", broker.bootstrap])
    assert first["leader_id"] == 1, first
    assert first["leader_epoch"] >= 1, first
    assert first["high_watermark"] >= 1, first
    assert [v["id"] for v in first["voters"]] == [1], first
    assert first["observers"] == [], first
    # `nodes` lists the voters' controller endpoints (Kafka's RaftUtil): the one voter here.
    assert list(first["nodes"]) == ["1"], first
    assert len(first["nodes"]["1"]) == 1 and first["nodes"]["1"][0].startswith("CONTROLLER://"), first
    leader = first["voters"][0]
    # The leader is caught up with itself: its log ends at the high watermark, timed now.
    assert leader["log_end_offset"] >= first["high_watermark"], first
    assert leader["last_fetch_ms"] >= before_ms - 5000 and leader["last_caught_up_ms"] >= before_ms - 5000, first
    # A metadata change moves the log and the high watermark on.
    admin = kafka_python_admin(broker)
    try:
        admin.create_topics({topic_name: {"num_partitions": 1}})
    finally:
        admin.close()
    second = compat_tool(["quorum", broker.bootstrap])
    assert second["high_watermark"] > first["high_watermark"], (first, second)
    assert second["voters"][0]["log_end_offset"] >= second["high_watermark"], second


def test_features_describe_and_update(broker, compat_tool):
    """`kafka-features.sh describe` reads supported and finalized features from ApiVersions
    v3+ (Admin describeFeatures); UpdateFeatures accepts the level the cluster runs at and
    refuses a level outside the supported range with Kafka's INVALID_UPDATE_VERSION."""
    out = compat_tool(["features", broker.bootstrap])
    assert out["finalized"] == {
        "metadata.version": {"min": 25, "max": 25},
        "group.version": {"min": 1, "max": 1},
        "share.version": {"min": 1, "max": 1},
        "streams.version": {"min": 1, "max": 1},
        "transaction.version": {"min": 2, "max": 2},
    }, out
    assert out["supported"]["metadata.version"] == {"min": 25, "max": 25}, out
    assert out["supported"]["group.version"] == {"min": 1, "max": 1}, out
    # ApiVersions v4 (the Java client's) also carries ranges that start at 0.
    assert out["supported"]["kraft.version"] == {"min": 0, "max": 0}, out
    # KIP-890: transaction version 0-2, finalized at 2 as on a new Kafka 4 cluster.
    assert out["supported"]["transaction.version"] == {"min": 0, "max": 2}, out
    assert out["finalized_epoch"] == 0, out

    assert compat_tool(["update-feature", broker.bootstrap, "group.version", 1, "UPGRADE"]) == {"ok": True}
    assert compat_tool(["update-feature", broker.bootstrap, "metadata.version", 25, "UPGRADE", "validate"]) == {"ok": True}
    refused = compat_tool(["update-feature", broker.bootstrap, "metadata.version", 24, "SAFE_DOWNGRADE"])
    assert refused["error"] == "InvalidUpdateVersionException", refused
    assert "only supports versions 25" in refused["message"], refused
    assert compat_tool(["update-feature", broker.bootstrap, "transaction.version", 2, "UPGRADE"]) == {"ok": True}
    # A validate-only downgrade of transaction.version is accepted and changes nothing
    # (test_transactions.py changes it for real on a broker of its own).
    assert compat_tool(["update-feature", broker.bootstrap, "transaction.version", 1, "SAFE_DOWNGRADE", "validate"]) == {"ok": True}
    assert compat_tool(["features", broker.bootstrap])["finalized"]["transaction.version"] == {"min": 2, "max": 2}
    unknown = compat_tool(["update-feature", broker.bootstrap, "no.such.feature", 1, "UPGRADE"])
    assert unknown["error"] == "InvalidUpdateVersionException", unknown
    assert "does not support this feature" in unknown["message"], unknown


def test_first_join_on_a_fresh_broker_kafkajs(make_broker, topic_name):
    """On a fresh broker the first FindCoordinator creates `__consumer_offsets`; kafkajs
    treats COORDINATOR_LOAD_IN_PROGRESS on its JoinGroup as a consumer crash, so the broker
    names a coordinator only once the group's partition is loaded (fresh partitions load at
    once). Several groups join at once, each consuming every record."""
    import json
    import subprocess

    from records import check_consumed, from_json, record_set
    from test_kafkajs import to_json

    fresh = make_broker()
    node = shutil.which("node") or "node"
    script = os.path.join(os.path.dirname(__file__), "js", "client.js")

    def js(request):
        proc = subprocess.run([node, script], input=json.dumps(request).encode(), capture_output=True, timeout=TOOL_TIMEOUT_S)
        stderr = proc.stderr.decode(errors="replace")
        assert proc.returncode == 0, stderr[-3000:]
        return json.loads(proc.stdout.decode().strip().splitlines()[-1]), stderr

    out, _ = js({"op": "create", "bootstrap": fresh.bootstrap, "topic": topic_name, "partitions": 3, "configs": {}})
    assert out["created"] is True
    records = record_set("kafkajs-fresh", count=20)
    js({"op": "produce", "bootstrap": fresh.bootstrap, "topic": topic_name, "codec": "none", "idempotent": False,
        "records": to_json(records)})
    consumers = []
    for i in range(3):
        request = {"op": "consume", "bootstrap": fresh.bootstrap, "topic": topic_name, "count": len(records),
                   "groupId": f"fresh-{i}-{topic_name}", "timeoutMs": 30000}
        stdin = tempfile.TemporaryFile()
        stdin.write(json.dumps(request).encode())
        stdin.seek(0)
        consumers.append(subprocess.Popen([node, script], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for proc in consumers:
        stdout, stderr = proc.communicate(timeout=TOOL_TIMEOUT_S)
        stderr = stderr.decode(errors="replace")
        assert proc.returncode == 0, stderr[-3000:]
        assert "COORDINATOR_LOAD_IN_PROGRESS" not in stderr and "coordinator is loading" not in stderr, stderr[-3000:]
        assert "Crash" not in stderr, stderr[-3000:]
        got = json.loads(stdout.decode().strip().splitlines()[-1])["records"]
        check_consumed(records, [from_json(r) for r in got], partitions=3)


def test_dynamic_broker_configs(make_broker, compat_tool, topic_name):
    """Broker configs changed at runtime (rust-rdkafka's test_configs, `kafka-configs.sh
    --alter --entity-type brokers`): confluent-kafka's AdminClient sees them with Kafka's
    dynamic sources, and a changed topic default (message.max.bytes) takes effect at once."""
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                       NewTopic, ResourceType)

    b = make_broker()
    a = AdminClient({"bootstrap.servers": b.bootstrap})

    def alter(name, key, value):
        op = AlterConfigOpType.DELETE if value is None else AlterConfigOpType.SET
        res = ConfigResource(ResourceType.BROKER, name,
                             incremental_configs=[ConfigEntry(key, value, incremental_operation=op)])
        return list(a.incremental_alter_configs([res]).values())[0].result(timeout=TIMEOUT_S)

    def describe(name):
        res = ConfigResource(ResourceType.BROKER, name)
        return list(a.describe_configs([res]).values())[0].result(timeout=TIMEOUT_S)

    before = describe("1")["log.flush.interval.messages"]
    assert before.source == ConfigSource.DEFAULT_CONFIG.value and before.is_read_only is False, before
    assert describe("1")["node.id"].is_read_only is True
    alter("1", "log.flush.interval.messages", "1234")
    # librdkafka and kafka-python refuse the cluster-default resource (""); the Java Admin
    # (kafka-configs.sh --entity-default) sets it.
    assert compat_tool(["alter-broker", b.bootstrap, "", "log.retention.bytes", "987654321"]) == {"ok": True}
    configs = describe("1")
    assert (configs["log.flush.interval.messages"].value, configs["log.flush.interval.messages"].source) == \
        ("1234", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    assert (configs["log.retention.bytes"].value, configs["log.retention.bytes"].source) == \
        ("987654321", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    defaults = compat_tool(["describe-broker", b.bootstrap, ""])["configs"]
    assert defaults == {"log.retention.bytes": {"value": "987654321", "source": "DYNAMIC_DEFAULT_BROKER_CONFIG",
                                                "read_only": False}}, defaults

    # Keys that cannot change at runtime, and bad values, are refused before they are stored.
    with pytest.raises(KafkaException) as raised:
        alter("1", "num.partitions", "7")
    assert raised.value.args[0].code() == KafkaError.INVALID_REQUEST, raised.value
    assert "Cannot update these configs dynamically" in raised.value.args[0].str()
    with pytest.raises(KafkaException) as raised:
        alter("1", "log.segment.bytes", "abc")
    assert raised.value.args[0].code() == KafkaError.INVALID_CONFIG, raised.value
    assert describe("1")["num.partitions"].source != ConfigSource.DYNAMIC_BROKER_CONFIG.value

    # A dynamic topic default reaches topics (DescribeConfigs) and their logs (Produce).
    a.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(timeout=TIMEOUT_S)
    topic = ConfigResource(ResourceType.TOPIC, topic_name)
    topic_configs = list(a.describe_configs([topic]).values())[0].result(timeout=TIMEOUT_S)
    assert (topic_configs["flush.messages"].value, topic_configs["flush.messages"].source) == \
        ("1234", ConfigSource.DYNAMIC_BROKER_CONFIG.value)

    def produce(size):
        p = Producer({"bootstrap.servers": b.bootstrap, "message.timeout.ms": 20000, "retries": 0})
        outcome = []
        p.produce(topic_name, b"x" * size, on_delivery=lambda err, msg: outcome.append(err))
        p.flush(TIMEOUT_S)
        return outcome[0]

    assert produce(5000) is None
    alter("1", "message.max.bytes", "2000")
    err = produce(5000)
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    alter("1", "message.max.bytes", None)
    assert produce(5000) is None
    assert describe("1")["message.max.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
