"""The broker's HTTP listener: /metrics scraped with the Prometheus text-format parser before
and after confluent-kafka produces and consumes in a group, /health/live and /health/ready, and
start-up checks of strom.http.listeners."""

import json
import re
import subprocess
import socket
import time
import urllib.error
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, strom_binary

TIMEOUT_S = 30
RECORDS = 120
PARTITIONS = 3


def http_get(port, path):
    """(status, body) of GET path; HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=TIMEOUT_S) as r:
            return r.status, r.read().decode(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Content-Type", "")


class Scrape:
    """One /metrics answer, parsed strictly: every sample's family has TYPE and HELP, no
    series appears twice, histograms are cumulative and end in +Inf == _count."""

    def __init__(self, port):
        status, text, content_type = http_get(port, "/metrics")
        assert status == 200, text
        assert content_type.startswith("text/plain; version=0.0.4"), content_type
        self.text = text
        self.samples = {}
        self.types = {}
        families = list(text_string_to_metric_families(text))
        assert families, "empty scrape"
        for family in families:
            assert family.documentation, f"{family.name} has no HELP"
            assert family.type in ("counter", "gauge", "histogram"), (family.name, family.type)
            self.types[family.name] = family.type
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                assert key not in self.samples, f"duplicate series {key}"
                assert s.value == s.value, f"NaN in {key}"
                self.samples[key] = s.value
        self.check_histograms(families)
        # Every sample line names a family declared before it (the parser accepts untyped
        # samples; this exposition has none).
        declared = set()
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                declared.add(line.split()[2])
            elif line and not line.startswith("#"):
                name = line.split("{")[0].split(" ")[0]
                base = name
                for suffix in ("_bucket", "_sum", "_count"):
                    if name.endswith(suffix) and name[: -len(suffix)] in declared:
                        base = name[: -len(suffix)]
                assert base in declared, f"sample before its TYPE: {line}"

    @staticmethod
    def check_histograms(families):
        for family in families:
            if family.type != "histogram":
                continue
            series = {}
            for s in family.samples:
                labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                entry = series.setdefault(labels, {"buckets": [], "count": None})
                if s.name.endswith("_bucket"):
                    entry["buckets"].append((float(s.labels["le"]), s.value))
                elif s.name.endswith("_count"):
                    entry["count"] = s.value
            for labels, entry in series.items():
                buckets = entry["buckets"]
                assert buckets and buckets[-1][0] == float("inf"), (family.name, labels)
                bounds = [b for b, _ in buckets]
                assert bounds == sorted(bounds), (family.name, labels)
                counts = [c for _, c in buckets]
                assert counts == sorted(counts), f"{family.name}{labels} not cumulative"
                assert counts[-1] == entry["count"], (family.name, labels)

    def get(self, name, **labels):
        """One series' value (0 when absent)."""
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name, **labels):
        """The sum over every series of `name` whose labels include `labels`."""
        return sum(
            v for (n, ls), v in self.samples.items()
            if n == name and all((k, val) in ls for k, val in labels.items())
        )

    def series(self, name):
        return {ls: v for (n, ls), v in self.samples.items() if n == name}


def http_args(port, *extra):
    """--override arguments for an HTTP listener on `port` (a number, or a Broker port
    placeholder such as "{http_port}", see conftest.Broker) and `extra` keys."""
    args = ["--override", f"strom.http.listeners=http://127.0.0.1:{port}"]
    for e in extra:
        args += ["--override", e]
    return args


def create_topic(bootstrap, name, partitions):
    a = AdminClient({"bootstrap.servers": bootstrap})
    futures = a.create_topics([NewTopic(name, partitions, 1)], operation_timeout=TIMEOUT_S, request_timeout=TIMEOUT_S)
    futures[name].result(timeout=TIMEOUT_S)


def produce(bootstrap, topic, count, start=0):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "message.timeout.ms": TIMEOUT_S * 1000})
    errors, acked = [], []

    def cb(err, msg):
        (errors if err is not None else acked).append(err or msg.offset())

    for i in range(start, start + count):
        p.produce(topic, key=f"k{i}".encode(), value=f"value-{i:06d}".encode(), partition=i % PARTITIONS, on_delivery=cb)
    assert p.flush(TIMEOUT_S) == 0
    assert not errors, errors
    assert len(acked) == count


def consume_and_commit(bootstrap, topic, group, count):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 10000})
    try:
        c.subscribe([topic])
        got = 0
        deadline = time.monotonic() + 60
        while got < count and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got += 1
        assert got == count, f"consumed {got} of {count}"
        c.commit(asynchronous=False)
    finally:
        c.close()


def wait_for(check, what, timeout_s=TIMEOUT_S):
    """Polls check() until it returns a truthy value; fails naming `what`."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what} (last: {last})")


def test_metrics_move_by_what_clients_produce_and_consume(make_broker):
    broker = make_broker(http_args("{http_port}"))
    port = broker.http_port
    bootstrap = broker.bootstrap
    status, body, content_type = http_get(port, "/health/live")
    assert status == 200 and json.loads(body)["live"] is True
    status, body, _ = http_get(port, "/health/ready")
    ready = json.loads(body)
    assert status == 200 and ready["ready"] is True, body
    assert set(ready["checks"]) == {"started", "registered", "metadata", "log_dirs", "not_stopping"}
    assert http_get(port, "/nothing-here")[0] == 404

    topic = f"metrics-{uuid.uuid4().hex[:8]}"
    group = f"metrics-group-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, PARTITIONS)
    before = Scrape(port)
    assert before.get("kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == 0
    assert before.get("kafka_controller_kafkacontroller_activecontrollercount") == 1
    # Stopped transaction marker jobs: both reasons exposed from the start (no transaction ran).
    assert before.series("strom_txn_marker_sends_stopped_total") == {
        (("reason", "fatal"),): 0, (("reason", "fenced"),): 0}
    produce_requests_before = before.total("kafka_network_requestmetrics_requests_total", request="Produce")

    produce(bootstrap, topic, RECORDS)
    after = Scrape(port)
    assert after.get("kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == RECORDS
    # The all-topics series moved by the same amount (no other producer runs on this broker).
    assert (after.get("kafka_server_brokertopicmetrics_messagesin_total")
            - before.get("kafka_server_brokertopicmetrics_messagesin_total")) == RECORDS
    # Bytes in are the record batches as appended: exactly what the partition logs hold.
    on_disk = sum(broker.partition_log_bytes(topic, p) for p in range(PARTITIONS))
    assert on_disk > RECORDS * len("value-000000")
    assert after.get("kafka_server_brokertopicmetrics_bytesin_total", topic=topic) == on_disk
    assert after.total("kafka_log_log_size", topic=topic) == on_disk
    assert after.total("kafka_log_log_logendoffset", topic=topic) == RECORDS
    for p in range(PARTITIONS):
        assert after.get("kafka_log_log_logendoffset", topic=topic, partition=str(p)) == RECORDS // PARTITIONS
        assert after.get("kafka_log_log_numlogsegments", topic=topic, partition=str(p)) == 1
    assert after.get("strom_topic_log_size_bytes", topic=topic) == on_disk
    assert after.get("kafka_server_brokertopicmetrics_failedproducerequests_total", topic=topic) == 0
    produced_partitions = after.get("kafka_server_brokertopicmetrics_totalproducerequests_total", topic=topic)
    produce_requests = after.total("kafka_network_requestmetrics_requests_total", request="Produce") - produce_requests_before
    assert PARTITIONS <= produced_partitions <= RECORDS
    assert 1 <= produce_requests <= produced_partitions
    # Every Produce request was timed, and answered without error per partition.
    assert after.get("kafka_network_requestmetrics_totaltime_seconds_count", request="Produce") == \
        after.total("kafka_network_requestmetrics_requests_total", request="Produce")
    assert after.get("kafka_network_requestmetrics_errors_total", request="Produce", error="NONE") - \
        before.get("kafka_network_requestmetrics_errors_total", request="Produce", error="NONE") == produced_partitions
    assert after.get("kafka_server_replicamanager_leadercount") >= PARTITIONS
    assert after.get("kafka_server_replicamanager_underreplicatedpartitions") == 0
    assert after.get("kafka_controller_kafkacontroller_offlinepartitionscount") == 0
    assert after.get("process_resident_memory_bytes") > 0

    consume_and_commit(bootstrap, topic, group, RECORDS)
    consumed = Scrape(port)
    assert consumed.get("kafka_server_brokertopicmetrics_bytesout_total", topic=topic) >= on_disk
    assert consumed.get("strom_topic_messages_out_total", topic=topic) >= RECORDS
    assert consumed.total("kafka_network_requestmetrics_requests_total", request="FetchConsumer") > 0
    assert consumed.total("kafka_network_requestmetrics_requests_total", request="FetchFollower") == 0
    assert consumed.total("kafka_consumergroup_current_offset", consumergroup=group, topic=topic) == RECORDS
    assert consumed.get("kafka_consumergroup_lag_sum", consumergroup=group, topic=topic) == 0
    assert consumed.get("kafka_server_group_coordinator_rebalances_total") >= 1
    assert consumed.total("kafka_coordinator_group_groupmetadatamanager_numgroups") >= 1

    # Ten more records, not consumed: the group lags by exactly ten, spread per partition.
    more = 10
    produce(bootstrap, topic, more, start=RECORDS)
    lagging = Scrape(port)
    assert lagging.get("kafka_consumergroup_lag_sum", consumergroup=group, topic=topic) == more
    per_partition = {p: lagging.get("kafka_consumergroup_lag", consumergroup=group, topic=topic, partition=str(p))
                     for p in range(PARTITIONS)}
    assert per_partition == {p: sum(1 for i in range(RECORDS, RECORDS + more) if i % PARTITIONS == p)
                             for p in range(PARTITIONS)}
    assert lagging.get("kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == RECORDS + more

    # A fetch from past the end is OFFSET_OUT_OF_RANGE: counted as a failed fetch and by error.
    failed_before = lagging.get("kafka_server_brokertopicmetrics_failedfetchrequests_total", topic=topic)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{group}-oor", "auto.offset.reset": "error",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, 1_000_000)])
        deadline = time.monotonic() + TIMEOUT_S
        saw_error = False
        while time.monotonic() < deadline and not saw_error:
            msg = c.poll(0.5)
            saw_error = msg is not None and msg.error() is not None
        assert saw_error, "the consumer never saw the out-of-range error"
    finally:
        c.close()
    errored = Scrape(port)
    assert errored.get("kafka_server_brokertopicmetrics_failedfetchrequests_total", topic=topic) > failed_before
    assert errored.get("kafka_network_requestmetrics_errors_total", request="Fetch", error="OFFSET_OUT_OF_RANGE") >= 1
    # Connections: every client above was closed; the counters balance the gauge.
    final = wait_for(lambda: (s := Scrape(port)).get(
        "kafka_server_socket_server_metrics_connection_count", listener="PLAINTEXT") == 0 and s, "connections closed")
    assert final.get("kafka_server_socket_server_metrics_connection_creation_total", listener="PLAINTEXT") == \
        final.get("kafka_server_socket_server_metrics_connection_close_total", listener="PLAINTEXT") > 0


def test_partition_series_can_be_turned_off(make_broker):
    broker = make_broker(http_args("{http_port}", "strom.metrics.partition.enable=false"))
    port = broker.http_port
    topic = f"metrics-off-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    produce(broker.bootstrap, topic, 30)
    scrape = Scrape(port)
    assert not scrape.series("kafka_log_log_size")
    assert not scrape.series("kafka_log_log_logendoffset")
    on_disk = sum(broker.partition_log_bytes(topic, p) for p in range(PARTITIONS))
    assert scrape.get("strom_topic_log_size_bytes", topic=topic) == on_disk
    assert scrape.get("kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == 30


def run_expecting_exit(extra_overrides, timeout_s=60):
    """Runs strom server that must fail to start; returns its exit code and output."""
    data = f"/tmp/strom-metrics-{uuid.uuid4().hex[:8]}"
    args = [str(strom_binary()), "server", "--override", "node.id=1",
            "--override", f"listeners=PLAINTEXT://127.0.0.1:{free_port()},CONTROLLER://127.0.0.1:{free_port()}",
            "--override", f"log.dirs={data}"]
    for o in extra_overrides:
        args += ["--override", o]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
    finally:
        subprocess.run(["rm", "-rf", data], check=False)
    return done.returncode, done.stdout + done.stderr


def test_taken_http_port_fails_start_up_naming_the_key():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, output = run_expecting_exit([f"strom.http.listeners=http://127.0.0.1:{port}"])
    assert code != 0, output
    assert "strom.http.listeners" in output and f"127.0.0.1:{port}" in output, output


def test_invalid_http_listener_is_refused():
    code, output = run_expecting_exit(["strom.http.listeners=127.0.0.1:9644"])
    assert code != 0, output
    assert "strom.http.listeners" in output and "http://host:port" in output, output


def test_http_listener_off_when_empty(make_broker):
    broker = make_broker(["--override", "strom.http.listeners="])
    log = broker.log_path.read_text(errors="replace")
    assert "(metrics, health)" not in log, log


def test_non_loopback_http_listener_warns(make_broker):
    broker = make_broker(["--override", "strom.http.listeners=http://0.0.0.0:{http_port}"])
    port = broker.http_port
    assert http_get(port, "/health/live")[0] == 200
    log = broker.log_path.read_text(errors="replace")
    assert "non-loopback" in log, log


def test_console_lists_topics_browses_records_and_shows_group_lag(make_broker):
    broker = make_broker(http_args("{http_port}"))
    port = broker.http_port
    bootstrap = broker.bootstrap
    topic = f"console-{uuid.uuid4().hex[:8]}"
    group = f"console-group-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, PARTITIONS)
    # Compressed batches and markup in values: the browser decompresses and escapes.
    p = Producer({"bootstrap.servers": bootstrap, "compression.codec": "lz4", "linger.ms": 5})
    for i in range(30):
        p.produce(topic, key=f"key-{i}".encode(), value=f"<b>value {i}</b>".encode(), partition=i % PARTITIONS)
    p.produce(topic, key=b"binary", value=bytes([0, 1, 2, 255]), partition=0)
    assert p.flush(TIMEOUT_S) == 0
    consume_and_commit(bootstrap, topic, group, 31)
    produce(bootstrap, topic, 6, start=1000)

    status, home, content_type = http_get(port, "/")
    assert status == 200 and content_type.startswith("text/html"), home
    assert f'<a href="/topics/{topic}">{topic}</a>' in home
    assert "<script" not in home
    # The group's lag: 6 new records, 2 per partition, each partition's row shows 2.
    lag_rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in home.split("<tr>") if f"<td>{group}</td>" in row]
    assert sorted(int(cells[2]) for cells in lag_rows) == list(range(PARTITIONS)), home
    # group, topic, partition, committed offset, high watermark, lag
    assert all(int(cells[4]) - int(cells[3]) == 2 and cells[5] == "2" for cells in lag_rows), lag_rows

    status, page, _ = http_get(port, f"/topics/{topic}")
    assert status == 200
    for partition in range(PARTITIONS):
        assert f'href="/topics/{topic}/{partition}"' in page

    status, page, _ = http_get(port, f"/topics/{topic}/1?offset=0")
    assert status == 200
    # Partition 1 holds records 1, 4, 7, ... at offsets 0, 1, 2, ...; markup is escaped.
    assert "<pre>key-1</pre></td><td><pre>&lt;b&gt;value 1&lt;/b&gt;</pre>" in page, page
    assert "<pre>key-4</pre></td><td><pre>&lt;b&gt;value 4&lt;/b&gt;</pre>" in page
    assert "<b>value" not in page
    status, page, _ = http_get(port, f"/topics/{topic}/0?offset=10&format=hex")
    assert status == 200
    # Offset 10 of partition 0 is the binary record (after records 0, 3, ..., 27).
    assert "<pre>62 69 6e 61 72 79</pre></td><td><pre>00 01 02 ff</pre>" in page, page
    assert http_get(port, "/topics/no-such-topic")[0] == 404
    assert http_get(port, f"/topics/{topic}/99")[0] == 404
