"""The harness itself: ports picked below the kernel's ephemeral range, and brokers,
clusters and registry processes that start anyway when a port they picked is taken before
they bind it (a first start on fresh ports, a restart on the same ports once they are free
again; ports.py).

Each case takes the port on purpose (a listening socket) so the retry runs every time, and
checks the broker, cluster or registry then serves what was written before (restarts) or
after."""

import contextlib
import socket
import threading
import time
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster
from conftest import Broker, strom_binary
from ports import PORT_TAKEN, ephemeral_low, free_ports

TIMEOUT_S = 30


@contextlib.contextmanager
def taken(port):
    """A listening socket on 127.0.0.1:`port` (SO_REUSEADDR: a port that was a broker's a
    moment ago may have connections in TIME_WAIT)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1)
        yield s
    finally:
        s.close()


def output_since(path, offset):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def release_once_refused(sock, log_path, offset, timeout_s=TIMEOUT_S):
    """Closes `sock` once the log (from `offset`) shows a start refused for a taken port, or
    after `timeout_s`; the thread, to join."""
    def run():
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and PORT_TAKEN not in output_since(log_path, offset):
            time.sleep(0.05)
        sock.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def create_topic(bootstrap, topic, replicas=1):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, 1, replicas)], operation_timeout=TIMEOUT_S)[topic].result(timeout=TIMEOUT_S)


def produce(bootstrap, topic, values):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for v in values:
        p.produce(topic, value=v)
    assert p.flush(TIMEOUT_S) == 0


def read_all(bootstrap, topic, count):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        got, deadline = [], time.monotonic() + TIMEOUT_S
        while len(got) < count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
        return got
    finally:
        c.close()


def test_free_ports_are_distinct_free_and_below_the_ephemeral_range():
    ports = free_ports(50)
    assert len(set(ports)) == 50, ports
    assert all(1024 <= p < ephemeral_low() for p in ports), (ephemeral_low(), ports)
    # Not handed out again by this process.
    assert not set(free_ports(50)) & set(ports)


def test_first_start_with_taken_ports_starts_on_fresh_ports(topic_name):
    b = Broker(strom_binary(), ["--override", "strom.http.listeners=http://127.0.0.1:{http_port}"])
    first_port, first_http = b.port, b.http_port
    try:
        # The Kafka port (refused at start-up) and the HTTP one (bound later) both taken.
        with taken(first_port), taken(first_http):
            b.start()
            assert b.starts == 2, output_since(b.log_path, 0)
            assert (b.port, b.http_port) != (first_port, first_http)
            assert b.port not in (first_port, first_http) and b.http_port not in (first_port, first_http)
            assert PORT_TAKEN in output_since(b.log_path, 0)
            with urllib.request.urlopen(f"http://127.0.0.1:{b.http_port}/health/live", timeout=10) as r:
                assert r.status == 200
            create_topic(b.bootstrap, topic_name)
            produce(b.bootstrap, topic_name, [b"a", b"b"])
            assert read_all(b.bootstrap, topic_name, 2) == [b"a", b"b"]
    finally:
        b.stop()
        b.cleanup()
        b.log_path.unlink(missing_ok=True)


def test_restart_with_its_port_taken_waits_for_the_same_port(make_broker, topic_name):
    b = make_broker()
    create_topic(b.bootstrap, topic_name)
    produce(b.bootstrap, topic_name, [b"before"])
    b.stop()
    port, offset = b.port, b.log_path.stat().st_size
    with taken(port) as sock:
        releaser = release_once_refused(sock, b.log_path, offset)
        b.start()
        releaser.join(TIMEOUT_S)
    assert PORT_TAKEN in output_since(b.log_path, offset)
    # Refused once, then started again on the same port once it was let go (a loaded
    # machine may need the last attempt too).
    assert b.port == port and b.starts in (3, 4), b.starts
    produce(b.bootstrap, topic_name, [b"after"])
    assert read_all(b.bootstrap, topic_name, 2) == [b"before", b"after"]


def test_registry_with_its_port_taken_starts_on_a_fresh_port(broker):
    from test_schema_registry import Registry

    suffix = uuid.uuid4().hex[:8]
    r = Registry(broker.bootstrap, f"_schemas_{suffix}", f"harness-{suffix}")
    first = r.port
    try:
        with taken(first):
            r.start()
        assert r.port != first and r.url.endswith(f":{r.port}")
        assert PORT_TAKEN in r.log_text()
        with urllib.request.urlopen(f"{r.url}/subjects", timeout=10) as resp:
            assert resp.status == 200 and resp.read() == b"[]"
    finally:
        r.stop()
        r.log_path.unlink(missing_ok=True)


@pytest.mark.cluster
def test_cluster_with_a_taken_controller_port_starts_on_fresh_ports_and_restarts_on_its_own(topic_name):
    c = Cluster(strom_binary(), 3, name="harness-ports")
    first = c[2].controller_port
    try:
        with taken(first):
            c.start()
        assert first not in [p for n in c.nodes.values() for p in (n.port, n.controller_port)]
        assert f"2@127.0.0.1:{c[2].controller_port}" in c.voters.split(",")
        assert all(n.starts == 2 for n in c.nodes.values()), [n.starts for n in c.nodes.values()]
        assert not c.crashed()
        create_topic(c.bootstrap, topic_name, replicas=3)
        produce(c.bootstrap, topic_name, [b"before"])
        # A restart of node 1 whose PLAINTEXT port is taken until its first try is refused.
        c[1].stop()
        port, offset = c[1].port, c[1].log_path.stat().st_size
        with taken(port) as sock:
            releaser = release_once_refused(sock, c[1].log_path, offset)
            c[1].start()
            releaser.join(TIMEOUT_S)
        assert PORT_TAKEN in output_since(c[1].log_path, offset)
        assert c[1].port == port and c[1].starts in (4, 5), c[1].starts
        c.wait_ready(timeout_s=TIMEOUT_S)
        assert not c.crashed()
        produce(c.bootstrap, topic_name, [b"after"])
        assert read_all(c.bootstrap, topic_name, 2) == [b"before", b"after"]
    finally:
        c.teardown()
        c.remove()
