"""Controller-only nodes (`process.roles=controller`) serve `/metrics`, `/health/live` and
`/health/ready` on their `strom.http.listeners`, as brokers do:

- one controller of three started alone is live but not ready (no quorum leader: it has not
  joined a quorum), and says why;
- once the other two controllers (and a broker) run, each is ready (it knows the leader and
  has applied its metadata log), and their metrics agree on the leader: one of them reports
  ActiveControllerCount 1, all report the same raft-metrics current-leader and epoch;
- a controller that is stopped stops answering, and the others stay ready;
- with `strom.http.authentication.method=BASIC`, a controller-only node checks its own
  users: its controller listener's PLAIN users and its metadata log's SCRAM users.

Marked `cluster` (README.md, "Cluster tests").
"""

import base64
import json
import re
import urllib.error
import urllib.request

import pytest
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

from cluster import Cluster, NotYet, free_ports
from conftest import strom_binary

pytestmark = pytest.mark.cluster


def get(port, path, timeout_s=5):
    """(status, body) of GET http://127.0.0.1:port/path (an HTTP error status is returned)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout_s) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def gauge(text, name):
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (-?\d+)$", text, re.MULTILINE)
    assert m, f"no {name} in:\n{text}"
    return int(m.group(1))


@pytest.fixture
def cluster(request):
    c = Cluster(strom_binary(), 1, name=request.node.name, controllers=3)
    for node, port in zip((c[1], c[2], c[3]), free_ports(3)):
        node.http_port = port
        node.props["strom.http.listeners"] = f"http://127.0.0.1:{port}"
    yield c
    c.teardown()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else True:
        print(f"\n{c.dump_logs()}")
    c.remove()


def test_controller_only_nodes_serve_metrics_and_readiness(cluster):
    controllers = [cluster[1], cluster[2], cluster[3]]
    first = controllers[0]
    first.start(wait=True)
    # The harness waits for the controller listener, which binds before the HTTP one.
    live = cluster.wait("node 1's HTTP listener", lambda: get(first.http_port, "/health/live"), timeout_s=30)
    assert live == (200, '{"live":true}')

    # Alone, it cannot have joined a quorum of three: not ready, and the checks say why.
    def not_ready():
        code, body = get(first.http_port, "/health/ready")
        if code != 503:
            raise NotYet((code, body))
        return json.loads(body)

    checks = cluster.wait("node 1 answering not ready", not_ready, timeout_s=30)
    assert checks["ready"] is False and checks["checks"]["quorum"]["ok"] is False, checks
    assert "no quorum leader" in checks["checks"]["quorum"]["detail"], checks
    assert checks["checks"]["not_stopping"]["ok"] is True, checks

    for node in controllers[1:] + [cluster[4]]:
        node.start(wait=False)
    for node in controllers[1:] + [cluster[4]]:
        node.wait_serving()
    cluster.wait_ready(nodes=[4])

    def all_ready():
        bodies = {}
        for node in controllers:
            code, body = get(node.http_port, "/health/ready")
            if code != 200:
                raise NotYet((node.node_id, code, body))
            bodies[node.node_id] = json.loads(body)
        return bodies

    ready = cluster.wait("every controller ready", all_ready, timeout_s=60)
    for node_id, body in ready.items():
        assert body["checks"]["quorum"]["detail"].startswith("voter, leader "), (node_id, body)

    def agreed():
        seen = {}
        for node in controllers:
            code, text = get(node.http_port, "/metrics")
            assert code == 200, (node, code, text)
            seen[node.node_id] = (gauge(text, "kafka_server_raftmetrics_current_leader"),
                                  gauge(text, "kafka_server_raftmetrics_current_epoch"),
                                  gauge(text, "kafka_controller_kafkacontroller_activecontrollercount"),
                                  gauge(text, "kafka_server_raftmetrics_log_end_offset"))
        leaders = {v[0] for v in seen.values()}
        epochs = {v[1] for v in seen.values()}
        if len(leaders) != 1 or len(epochs) != 1:
            raise NotYet(seen)
        return seen

    seen = cluster.wait("the controllers' metrics agreeing on a leader", agreed, timeout_s=30)
    leader = next(iter(seen.values()))[0]
    assert leader in (1, 2, 3), seen
    assert [node_id for node_id, v in seen.items() if v[2] == 1] == [leader], seen
    assert all(v[3] > 0 for v in seen.values()), seen
    code, text = get(first.http_port, "/metrics")
    assert "process_resident_memory_bytes" in text or "process_cpu_seconds_total" in text, text

    # A stopped controller answers nothing; the other two still form a quorum and are ready.
    stopped = next(n for n in controllers if n.node_id != leader)
    assert stopped.stop() == 0
    with pytest.raises(OSError):
        get(stopped.http_port, "/health/live", timeout_s=3)
    for node in controllers:
        if node is stopped:
            continue
        cluster.wait(f"{node} still ready", lambda n=node: get(n.http_port, "/health/ready")[0] == 200, timeout_s=30)


def get_as(port, path, user=None, password=None, timeout_s=5):
    """(status, body) of GET with HTTP Basic credentials (none when `user` is None)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_controller_only_node_serves_basic_auth_with_its_own_users(request):
    """A controller-only node with strom.http.authentication.method=BASIC checks the PLAIN
    users of its controller listener's login module and the SCRAM users of its metadata log
    replica. The controller listener is SASL_PLAINTEXT: the broker-only node registers
    through it and is replicated to through it (its observer endpoint serves the same
    settings)."""
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" '
            'password="controller-secret" user_controller="controller-secret" user_ops="ops-secret";')
    c = Cluster(strom_binary(), 1, name=request.node.name, controllers=1, overrides={
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": jaas,
        "connection.failed.authentication.delay.ms": "50",
    })
    controller = c[1]
    (controller.http_port,) = free_ports(1)
    controller.props.update({
        "strom.http.listeners": f"http://127.0.0.1:{controller.http_port}",
        "strom.http.authentication.method": "BASIC",
        "strom.http.authentication.skip.paths": "/health/live",
    })
    try:
        c.start()
        port = controller.http_port
        assert get_as(port, "/health/live")[0] == 200
        assert get_as(port, "/metrics")[0] == 401
        assert get_as(port, "/metrics", "ops", "wrong")[0] == 401
        code, body = get_as(port, "/metrics", "ops", "ops-secret")
        assert code == 200 and "process_" in body, (code, body)
        assert get_as(port, "/health/ready", "controller", "controller-secret")[0] == 200

        # A SCRAM user created through the broker reaches the controller's metadata log.
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        upsert = UserScramCredentialUpsertion("scrammy", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                              b"scrammy-secret")
        admin.alter_user_scram_credentials([upsert])["scrammy"].result(30)

        def scram_accepted():
            code, body = get_as(port, "/metrics", "scrammy", "scrammy-secret")
            if code != 200:
                raise NotYet((code, body))
            return True

        c.wait("the SCRAM user accepted by the controller", scram_accepted, timeout_s=30)
        assert get_as(port, "/metrics", "scrammy", "not-it")[0] == 401
    finally:
        c.teardown()
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else True:
            print(f"\n{c.dump_logs()}")
        c.remove()
