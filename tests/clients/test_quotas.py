"""Client quotas with real clients: AlterClientQuotas / DescribeClientQuotas through the Java
Admin (what kafka-configs.sh --entity-type users/clients calls), and a confluent-kafka
producer held to `producer_byte_rate` by the broker's throttle_time_ms, as Kafka does it.
"""

import os
import shutil
import time
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import TOOLS, TOOL_TIMEOUT_S, run_tool

TIMEOUT_S = 30


@pytest.fixture(scope="session")
def admin_tool():
    classes, libs = TOOLS / "java-classes", TOOLS / "java-libs"
    if not (classes / "AclTool.class").is_file():
        pytest.fail("Java helper not compiled: run scripts/setup-clients")
    java = shutil.which("java") or "java"
    cp = f"{classes}{os.pathsep}{libs}/*"

    def run(command, bootstrap, *items):
        return run_tool([java, "-cp", cp, "AclTool", command, bootstrap, "-", *items], f"java AclTool {command}", TOOL_TIMEOUT_S)

    return run


def test_alter_and_describe_client_quotas(broker, admin_tool):
    """Quotas are stored per entity (user, client-id, both, defaults, ip) and described
    back; Kafka's validation refuses unknown keys, fractional byte rates and ip mixed with
    user."""
    tag = uuid.uuid4().hex[:6]
    assert admin_tool("quota-alter", broker.bootstrap, f"user=u-{tag}", "producer_byte_rate=1024", "consumer_byte_rate=2048") == {"result": None}
    assert admin_tool("quota-alter", broker.bootstrap, f"user=u-{tag},client-id=-", "request_percentage=12.5") == {"result": None}
    assert admin_tool("quota-alter", broker.bootstrap, "ip=-", "connection_creation_rate=10") == {"result": None}
    bad_key = admin_tool("quota-alter", broker.bootstrap, f"user=u-{tag}", "no_such_quota=1")["result"]
    assert bad_key is not None and "InvalidRequestException" in bad_key
    bad_value = admin_tool("quota-alter", broker.bootstrap, f"user=u-{tag}", "producer_byte_rate=10.5")["result"]
    assert bad_value is not None and "InvalidRequestException" in bad_value
    quotas = admin_tool("quota-describe", broker.bootstrap)["quotas"]
    assert quotas[f"user=u-{tag}"] == {"consumer_byte_rate": 2048.0, "producer_byte_rate": 1024.0}
    assert quotas[f"client-id=-,user=u-{tag}"] == {"request_percentage": 12.5}
    assert quotas["ip=-"] == {"connection_creation_rate": 10.0}
    # Removing a key removes it; an entity without keys is no longer listed.
    assert admin_tool("quota-alter", broker.bootstrap, f"user=u-{tag},client-id=-", "request_percentage=-") == {"result": None}
    assert admin_tool("quota-alter", broker.bootstrap, "ip=-", "connection_creation_rate=-") == {"result": None}
    quotas = admin_tool("quota-describe", broker.bootstrap)["quotas"]
    assert f"client-id=-,user=u-{tag}" not in quotas and "ip=-" not in quotas and f"user=u-{tag}" in quotas


RATE = 256 * 1024
MEASURE_FROM_S, MEASURE_TO_S = 2.0, 10.0


def test_producer_held_to_producer_byte_rate(make_broker, admin_tool):
    """A producer writing flat out under `producer_byte_rate` (the default user's quota, so
    it applies to User:ANONYMOUS) is throttled to within 10% of the quota, and librdkafka
    reports the broker's throttle times.

    Kafka measures a rate over at least `quota.window.num - 1` windows, so with its default
    of 11 a fresh client may send 10 s worth at once and is then held back until that burst
    ages out; `quota.window.num=2` (a Kafka key) keeps the allowance to one second, so the
    steady rate shows within a 10 s test. The rate is measured after that first second."""
    b = make_broker(["--override", "quota.window.num=2"])
    topic = f"throttled-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=TIMEOUT_S)
    assert admin_tool("quota-alter", b.bootstrap, "user=-", f"producer_byte_rate={RATE}") == {"result": None}

    throttles = []
    delivered = []  # (monotonic time, bytes)
    producer = Producer(
        {
            "bootstrap.servers": b.bootstrap,
            "linger.ms": 5,
            "acks": 1,
            "compression.type": "none",
            "queue.buffering.max.kbytes": 2048,
            # Small requests, so that the rate is fine-grained within the 8 s measured.
            "batch.size": 16384,
            "throttle_cb": lambda event: throttles.append(event.throttle_time),
        }
    )
    value = os.urandom(1024)
    start = time.monotonic()

    def on_delivery(err, msg):
        if err is None:
            delivered.append((time.monotonic() - start, len(msg.value())))

    while time.monotonic() - start < MEASURE_TO_S:
        try:
            producer.produce(topic, value, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)

    window = [n for t, n in delivered if MEASURE_FROM_S <= t < MEASURE_TO_S]
    rate = sum(window) / (MEASURE_TO_S - MEASURE_FROM_S)
    assert throttles and max(throttles) > 0, "librdkafka saw no throttle time"
    per_s = [sum(n for t, n in delivered if s <= t < s + 1) for s in range(int(MEASURE_TO_S))]
    assert abs(rate - RATE) <= 0.10 * RATE, f"delivered {rate:.0f} B/s, quota {RATE} B/s; per second {per_s}"
