"""/health/ready turns false as soon as a controlled shutdown begins, while the broker still
serves Kafka clients: a node of a three-node cluster is sent SIGTERM while the two others are
paused (SIGSTOP), so its controlled shutdown waits for a controller that cannot answer, and
its readiness is watched during that wait."""

import json
import signal
import time

from cluster import Cluster
from conftest import free_port, strom_binary
from kafka_wire import api_versions
from test_metrics import http_get

TIMEOUT_S = 30


def readiness(port):
    status, body, _ = http_get(port, "/health/ready")
    return status, json.loads(body)


def test_readiness_is_false_once_controlled_shutdown_begins():
    cluster = Cluster(strom_binary(), 3, {"strom.http.listeners": ""}, name="health-shutdown")
    node = cluster[1]
    port = free_port()
    plain_args = node.args
    # Only node 1 serves HTTP (a later --override wins).
    node.args = lambda: plain_args() + ["--override", f"strom.http.listeners=http://127.0.0.1:{port}"]
    try:
        cluster.start()
        deadline = time.monotonic() + TIMEOUT_S
        status, ready = readiness(port)
        while status != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            status, ready = readiness(port)
        assert status == 200 and ready["checks"]["not_stopping"]["ok"], ready

        # No controller can answer the controlled shutdown now.
        cluster[2].pause()
        cluster[3].pause()
        node.proc.send_signal(signal.SIGTERM)
        node.expected = False
        seen = None
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and node.proc.poll() is None:
            try:
                status, ready = readiness(port)
            except OSError:
                break
            if not ready["checks"]["not_stopping"]["ok"]:
                seen = (status, ready)
                break
            time.sleep(0.05)
        assert seen is not None, "readiness never reported the shutdown"
        status, ready = seen
        assert status == 503 and ready["ready"] is False, ready
        # The broker still serves Kafka clients while it waits for the controller.
        assert node.proc.poll() is None
        assert api_versions("127.0.0.1", node.port, timeout_s=5.0)
    finally:
        for n in (cluster[2], cluster[3]):
            n.resume()
        cluster.teardown()
        cluster.remove()
