"""Small compatibility points third-party client suites and Kafka's tools check, each through a
client nobody here wrote: null error messages on success, transactional clients failing fast,
OffsetCommit of unknown topics, the ACL APIs without an authorizer, DescribeQuorum, features,
coordinator loading on a fresh broker, and dynamic broker configs."""

import os
import shutil
import time

import pytest
from confluent_kafka import KafkaException, Producer
from kafka import KafkaAdminClient

from conftest import TOOLS, TOOL_TIMEOUT_S, run_tool

TIMEOUT_S = 30
# A client that retried instead of failing would take its whole timeout (60 s here); a fatal
# answer ends the call in well under this, even on a loaded machine.
FAIL_FAST_S = 20


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


def test_transactional_producer_fails_fast_librdkafka(broker):
    """librdkafka retries FindCoordinator(TRANSACTION) errors for ever unless they are fatal:
    `init_transactions` must fail at once with a fatal error that says why."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "compat-txn-rdkafka"})
    start = time.monotonic()
    try:
        with pytest.raises(KafkaException) as raised:
            p.init_transactions(60)
    finally:
        elapsed_s = time.monotonic() - start
        del p
    error = raised.value.args[0]
    assert elapsed_s < FAIL_FAST_S, f"init_transactions took {elapsed_s:.1f}s: {error}"
    assert error.fatal(), error
    assert "does not serve transactions" in error.str(), error


def test_transactional_producer_fails_fast_java(broker, compat_tool):
    out = compat_tool(["init-transactions", broker.bootstrap, "compat-txn-java"])
    assert out["error"] is not None, out
    assert out["elapsed_ms"] < FAIL_FAST_S * 1000, out
    # The Java client does not show the broker's message for this code, only its own.
    assert out["error"] == "TransactionalIdAuthorizationException", out


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
