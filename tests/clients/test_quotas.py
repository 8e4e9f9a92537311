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


def scrape(http_port):
    """The /metrics samples as {(name, labels text): value}."""
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


def http_broker(make_broker, *overrides):
    """A broker with an HTTP listener, and its HTTP port (picked by the Broker, which picks
    it again if it was taken before the broker bound it: conftest.Broker.start)."""
    args = ["--override", "strom.http.listeners=http://127.0.0.1:{http_port}"]
    for o in overrides:
        args += ["--override", o]
    b = make_broker(args)
    return b, b.http_port


def produce_flat_out(bootstrap, topic, client_id, seconds, throttles=None):
    """One record per request (linger 0, one in flight) for `seconds`; returns the
    delivery times (s since start)."""
    delivered = []
    conf = {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "linger.ms": 0,
        "acks": 1,
        "max.in.flight.requests.per.connection": 1,
        "enable.idempotence": False,
    }
    if throttles is not None:
        conf["throttle_cb"] = lambda event: throttles.append(event.throttle_time)
    producer = Producer(conf)
    start = time.monotonic()

    def on_delivery(err, msg):
        if err is None:
            delivered.append(time.monotonic() - start)

    while time.monotonic() - start < seconds:
        if len(producer) < 10:
            producer.produce(topic, b"x" * 100, on_delivery=on_delivery)
        producer.poll(0.001)
    producer.flush(60)
    return delivered


def test_request_percentage_throttles_a_producer(make_broker, admin_tool):
    """`request_percentage` for one client id: its producer sees throttle_time_ms from the
    broker and sends a bounded number of requests per second, while another client id on
    the same broker is not held back; /metrics counts the Request throttles."""
    b, http_port = http_broker(make_broker, "quota.window.num=2")
    topic = f"rq-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=TIMEOUT_S)
    # 0.01% of one thread: 0.1 ms of handling per second, a few produce requests at most.
    assert admin_tool("quota-alter", b.bootstrap, "client-id=busy", "request_percentage=0.01") == {"result": None}

    throttles = []
    busy = produce_flat_out(b.bootstrap, topic, "busy", 6.0, throttles)
    free = produce_flat_out(b.bootstrap, topic, "free", 3.0)
    busy_rate = len([t for t in busy if 2.0 <= t < 6.0]) / 4.0
    free_rate = len([t for t in free if 1.0 <= t < 3.0]) / 2.0
    assert throttles and max(throttles) > 0, "librdkafka saw no throttle time"
    # Kafka caps a request-quota throttle at one window (1 s here).
    assert max(throttles) <= 1000, throttles
    assert busy_rate <= 20, f"{busy_rate} requests/s under a 0.01% quota"
    assert free_rate >= 5 * max(busy_rate, 1), f"unthrottled {free_rate}/s vs throttled {busy_rate}/s"
    samples = scrape(http_port)
    assert samples['kafka_server_quota_throttled_responses_total{type="Request"}'] > 0
    assert samples['kafka_server_quota_throttle_time_ms_total{type="Request"}'] > 0
    # Per entity: the client-id quota's entity (user "", client id "busy"), as Kafka's
    # kafka.server:type=Request,user=,client-id=busy; "free" has no quota, so no series.
    busy_labels = '{type="Request",user="",client_id="busy"}'
    assert samples["kafka_server_quota_entity_throttle_time_ms_total" + busy_labels] > 0
    assert samples["kafka_server_quota_entity_throttled_responses_total" + busy_labels] > 0
    assert samples["kafka_server_quota_entity_recorded_total" + busy_labels] > 0
    assert samples["kafka_server_quota_entity_throttle_time_ms_total" + busy_labels] <= \
        samples['kafka_server_quota_throttle_time_ms_total{type="Request"}']
    assert not [k for k in samples if 'client_id="free"' in k], [k for k in samples if "free" in k]


def test_controller_mutation_rate_with_the_java_admin(make_broker, admin_tool):
    """KIP-599 with the Java Admin: under `controller_mutation_rate` (the default user's), a
    CreateTopics of more partitions than the bucket holds gets ThrottlingQuotaExceededException
    for the topics past the empty bucket when the Admin does not retry; with retries (the
    Admin's default) every topic is created, after the throttle time."""
    b, http_port = http_broker(make_broker, "controller.quota.window.num=2")
    # 5 partitions/s with two 1 s windows: a bucket of 10.
    assert admin_tool("quota-alter", b.bootstrap, "user=-", "controller_mutation_rate=5") == {"result": None}
    tag = uuid.uuid4().hex[:6]
    # 4 topics of 4 partitions: 10 -> 6 -> 2 -> -2 (accepted: the bucket was not empty yet)
    # -> refused.
    out = admin_tool("create-topics", b.bootstrap, f"strict-{tag}", "4", "4", "false")
    errors = out["errors"]
    assert [errors[f"strict-{tag}-{i}"] for i in range(4)] == [None, None, None, "ThrottlingQuotaExceededException"], out
    # With the Admin's retries the refused topic is created once the bucket refills.
    # 4 topics of 6: the third finds the bucket below zero whatever it refilled to meanwhile
    # (at most 10 - 6 - 6 = -2), so the Admin waits out at least 400 ms.
    out = admin_tool("create-topics", b.bootstrap, f"retry-{tag}", "4", "6", "true")
    assert all(e is None for e in out["errors"].values()), out
    assert out["ms"] >= 300, out
    listed = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=TIMEOUT_S).topics
    assert {f"retry-{tag}-{i}" for i in range(4)} <= set(listed)
    assert f"strict-{tag}-3" not in listed
    samples = scrape(http_port)
    assert samples['kafka_server_quota_throttled_responses_total{type="ControllerMutation"}'] > 0
    assert samples['kafka_server_quota_recorded_total{type="ControllerMutation"}'] >= 12 + 24


def test_a_connection_storm_is_delayed_not_refused(make_broker):
    """KIP-612: with `max.connection.creation.rate=5`, 30 clients connecting at once are all
    served, but spread out over seconds by the acceptor's delay; /metrics counts them."""
    import concurrent.futures
    from kafka_wire import api_versions
    b, http_port = http_broker(make_broker, "max.connection.creation.rate=5", "quota.window.num=2")
    time.sleep(1.5)  # the start-up probes' connections age out of the 1 s window
    start = time.monotonic()

    def connect(_):
        api_versions("127.0.0.1", b.port, timeout_s=60)
        return time.monotonic() - start

    with concurrent.futures.ThreadPoolExecutor(30) as pool:
        done = sorted(pool.map(connect, range(30)))
    assert len(done) == 30
    # Unthrottled, 30 ApiVersions take milliseconds; at 5/s the last waits seconds.
    assert done[-1] >= 2.5, done
    assert done[4] < 2.0, done
    samples = scrape(http_port)
    throttled = [v for k, v in samples.items() if k.startswith("strom_connections_creation_throttled_total")]
    assert sum(throttled) > 0


def test_strom_quotas_cli_alters_and_describes_what_the_java_admin_sees(broker, admin_tool):
    """`strom quotas alter/describe` (kafka-configs.sh --entity-type users/clients through the
    same Admin API): what it sets the Java Admin describes, and what the Java Admin sets it
    describes; --delete-config removes a key; a bad value is refused with the broker's error."""
    import json
    import subprocess
    from conftest import strom_binary

    def strom(*args):
        cmd = [str(strom_binary()), "quotas", *args, "--bootstrap-server", broker.bootstrap]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    tag = uuid.uuid4().hex[:6]
    done = strom("alter", "--user", f"cli-{tag}", "--client-default",
                 "--add-config", "producer_byte_rate=2048,request_percentage=12.5")
    assert done.returncode == 0, done.stderr
    quotas = admin_tool("quota-describe", broker.bootstrap)["quotas"]
    assert quotas[f"client-id=-,user=cli-{tag}"] == {"producer_byte_rate": 2048.0, "request_percentage": 12.5}
    assert admin_tool("quota-alter", broker.bootstrap, f"client-id=java-{tag}", "controller_mutation_rate=3") == {"result": None}
    shown = strom("describe", "--output", "json")
    assert shown.returncode == 0, shown.stderr
    views = {v["entity"]: v["quotas"] for v in json.loads(shown.stdout)}
    assert views[f"client-id=<default>,user=cli-{tag}"] == {"producer_byte_rate": 2048.0, "request_percentage": 12.5}
    assert views[f"client-id=java-{tag}"] == {"controller_mutation_rate": 3.0}
    one = strom("describe", "--client-id", f"java-{tag}", "--output", "json")
    assert json.loads(one.stdout) == [{"entity": f"client-id=java-{tag}", "quotas": {"controller_mutation_rate": 3.0}}]
    assert strom("alter", "--user", f"cli-{tag}", "--client-default", "--delete-config", "request_percentage").returncode == 0
    quotas = admin_tool("quota-describe", broker.bootstrap)["quotas"]
    assert quotas[f"client-id=-,user=cli-{tag}"] == {"producer_byte_rate": 2048.0}
    bad = strom("alter", "--user", f"cli-{tag}", "--add-config", "producer_byte_rate=10.5")
    assert bad.returncode != 0 and "producer_byte_rate" in bad.stderr, bad.stderr


def test_per_ip_connection_creation_rate_with_real_clients(make_broker, admin_tool):
    """KIP-612's IP entity: `connection_creation_rate` for 127.0.0.1 (set and described with
    the Java Admin, as kafka-configs.sh --entity-type ips does). 20 confluent-kafka clients
    connecting at once from that address all get in eventually, but the connections past the
    rate are closed unserved after the throttle (the clients reconnect), so it takes seconds,
    and /metrics counts them. A quota for another address holds 127.0.0.1 back not at all."""
    import concurrent.futures
    b, http_port = http_broker(make_broker, "quota.window.num=2")

    def storm(n):
        start = time.monotonic()

        def connect(_):
            admin = AdminClient({"bootstrap.servers": b.bootstrap, "reconnect.backoff.max.ms": 1000})
            admin.list_topics(timeout=60)
            return time.monotonic() - start

        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            return sorted(pool.map(connect, range(n)))

    def ip_throttled():
        return sum(v for k, v in scrape(http_port).items() if k.startswith("strom_connections_ip_throttled_total"))

    # Another address's quota: 127.0.0.1 is not held back.
    assert admin_tool("quota-alter", b.bootstrap, "ip=10.9.9.9", "connection_creation_rate=1") == {"result": None}
    time.sleep(2.5)  # the set-up connections age out of the two 1 s windows
    done = storm(20)
    assert len(done) == 20 and ip_throttled() == 0, done
    # 127.0.0.1's own quota: 5 connections a second.
    assert admin_tool("quota-alter", b.bootstrap, "ip=127.0.0.1", "connection_creation_rate=5") == {"result": None}
    assert admin_tool("quota-describe", b.bootstrap)["quotas"]["ip=127.0.0.1"] == {"connection_creation_rate": 5.0}
    time.sleep(2.5)
    done = storm(20)
    assert len(done) == 20
    # Unthrottled, 20 clients connect within a second; at 5/s the last needs seconds.
    assert done[-1] >= 2.0, done
    assert ip_throttled() > 0
    # Removed, the address connects freely again.
    assert admin_tool("quota-alter", b.bootstrap, "ip=127.0.0.1", "connection_creation_rate=-") == {"result": None}
    time.sleep(2.5)
    before = ip_throttled()
    done = storm(10)
    assert len(done) == 10 and ip_throttled() == before, done
