"""Fixtures and helpers of the consumer-group tests (test_groups*.py): a broker started for
group tests (no initial rebalance delay, short KIP-848 session timeout), a topic and a
`Members` set per test, and a producer that records what the broker acknowledged."""

import os
import sys

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, strom_binary
from group_members import Members

PARTITIONS = 6
SESSION_MS = 6000
# group.initial.rebalance.delay.ms=0: a new group's first rebalance does not wait 3 s for
# more members (Kafka's own tests do the same). KIP-848 session timeout shortened too.
GROUP_BROKER_ARGS = [
    "--override", "group.initial.rebalance.delay.ms=0",
    "--override", "group.consumer.min.session.timeout.ms=6000",
    "--override", "group.consumer.session.timeout.ms=6000",
    "--override", "group.consumer.heartbeat.interval.ms=500",
    "--override", "group.consumer.min.heartbeat.interval.ms=500",
]


@pytest.fixture(scope="module")
def group_broker():
    b = Broker(strom_binary(), GROUP_BROKER_ARGS)
    try:
        b.start()
        yield b
    finally:
        b.stop()
        if os.environ.get("STROM_KEEP_LOG"):
            print(f"\nstrom log: {b.log_path}", file=sys.stderr)
        else:
            b.cleanup()
            b.log_path.unlink(missing_ok=True)


@pytest.fixture
def members(group_broker, topic_name):
    create_topic(group_broker, topic_name, PARTITIONS)
    ms = Members(group_broker.bootstrap, topic_name, f"g-{topic_name}", session_timeout_ms=SESSION_MS,
                 heartbeat_interval_ms=500, max_s=170)
    yield ms
    ms.stop_all()
    if group_broker.proc.poll() is not None:
        pytest.fail(f"strom exited with {group_broker.proc.returncode}:\n{group_broker.log_tail()}")


@pytest.fixture
def settle_s(request):
    """How long to wait for a group to settle: short when the test is already an expected
    failure (an API the broker does not serve yet), so such tests cost little."""
    return 10 if request.node.get_closest_marker("xfail") else 60


def create_topic(broker, topic, partitions):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=30)[topic].result(timeout=30)


def produce_keyed(broker, topic, count, prefix="k", partitions=PARTITIONS):
    """Produces `count` records, key f"{prefix}{i}" to partition i % partitions, acks=all;
    returns {(partition, offset): key} as the broker acknowledged them."""
    acked, failed = {}, []

    def on_delivery(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.key().decode()
        else:
            failed.append(err)

    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5, "log_level": 0,
                  "message.timeout.ms": 30000})
    for i in range(count):
        p.produce(topic, key=f"{prefix}{i}".encode(), value=b"v", partition=i % partitions, on_delivery=on_delivery)
        if i % 1000 == 999:
            p.poll(0)
    assert p.flush(30) == 0, "records left unacknowledged"
    assert not failed, failed[:3]
    assert len(acked) == count
    return acked


@pytest.fixture(scope="session")
def group_admin():
    """Runs java GroupAdmin (the Java Admin client's group tooling); returns its JSON."""
    import os
    import shutil

    from conftest import TOOLS, run_tool

    if not (TOOLS / "java-classes" / "GroupAdmin.class").is_file():
        pytest.fail("Java GroupAdmin not compiled: run scripts/setup-clients")
    cp = f"{TOOLS / 'java-classes'}{os.pathsep}{TOOLS / 'java-libs'}/*"

    def run(broker, *ops):
        """Each op is a list (["describe", group]); returns one result per op, in order."""
        args = [str(a) for i, op in enumerate(ops) for a in ([] if i == 0 else ["--"]) + list(op)]
        cmd = [shutil.which("java") or "java", "-cp", cp, "GroupAdmin", broker.bootstrap] + args
        return run_tool(cmd, "java GroupAdmin " + " ".join(op[0] for op in ops))["results"]

    return run
