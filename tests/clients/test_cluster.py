"""A cluster is as safe as its metadata says: 3 (and 5) `strom server` processes, an RF 3
topic with min.insync.replicas=2, idempotent acks=all producers of three clients under
steady load, and faults: kill -9 of a partition leader, SIGSTOP of one past the broker
session timeout, a rolling restart. After each, the returning node must rejoin the ISR, and
`checker.check` must find no lost, duplicated or inconsistent record (see checker.py).

Marked `cluster`: deselected unless STROM_CLUSTER_TESTS=1 (README.md, "Cluster tests").
"""

import pytest

from cluster_fixtures import SESSION_S, Run, make_cluster  # noqa: F401 (fixture)

pytestmark = pytest.mark.cluster

RATE = 2000  # records/s of one producer
WARM_S = 3  # load before the fault
DURING_S = 2  # load while the node is down
AFTER_S = 3  # load after it is back


def test_no_fault_control(make_cluster, topic_name):
    """The same load with no fault: every client's records read back intact. A failure here
    is the harness or the steady state, not failover."""
    cluster = make_cluster(3)
    run = Run(cluster, topic_name)
    run.start({"confluent": 1000, "java": 1000, "kafka_python": 500}, observers=("confluent", "kafka_python"))
    run.load_for(WARM_S + AFTER_S)
    run.finish(no_errors=True).assert_ok()


@pytest.mark.parametrize(
    "client,overrides",
    [
        ("confluent", {}),
        ("java", {}),
        ("kafka_python", {}),
        ("confluent", {"strom.log.durability": "sync-on-commit"}),
    ],
    ids=["confluent", "java", "kafka_python", "confluent-sync_on_commit"],
)
def test_kill_9_leader_then_restart(make_cluster, topic_name, client, overrides):
    cluster = make_cluster(3, overrides)
    run = Run(cluster, topic_name)
    rate = RATE // 2 if client == "kafka_python" else RATE
    run.start({client: rate}, observers=("kafka_python",) if client == "kafka_python" else ("confluent",))
    run.load_for(WARM_S)
    old = run.kill_leader(0)
    run.wait_new_leader(0, old)
    run.load_for(DURING_S)
    run.restart(old)
    run.load_for(AFTER_S)
    run.finish().assert_ok()


def test_sigstop_leader_past_session_timeout(make_cluster, topic_name):
    """The paused leader is fenced and replaced; once resumed it must neither acknowledge
    nor serve what it could not replicate, and it rejoins the ISR as a follower."""
    cluster = make_cluster(3)
    run = Run(cluster, topic_name)
    run.start({"confluent": RATE})
    run.load_for(WARM_S)
    old = run.pause_leader(0)
    run.wait_new_leader(0, old)
    # Past the session timeout by a margin, so the pause is certainly longer than it.
    run.load_for(max(DURING_S, SESSION_S / 2))
    old.resume()
    run.note(f"SIGCONT {old}")
    run.wait_healed()
    run.load_for(AFTER_S)
    run.finish().assert_ok()


def test_rolling_restart_under_load(make_cluster, topic_name):
    """SIGTERM each node in turn under load, wait, restart, wait for full ISRs: no record
    lost and no client error a client would not retry by itself."""
    cluster = make_cluster(3)
    run = Run(cluster, topic_name)
    run.start({"confluent": RATE}, observers=("confluent",))
    run.load_for(2)
    for node in list(cluster.nodes.values()):
        code = node.stop()
        run.note(f"SIGTERM {node}: exited {code}")
        assert code == 0, f"{node} exited {code} on SIGTERM:\n{node.log_tail()}"
        run.wait_leaders_live()
        run.load_for(1)
        run.restart(node)
        run.load_for(1)
    run.finish(no_errors=True).assert_ok()


def test_five_nodes_kill_9_leader(make_cluster, topic_name):
    cluster = make_cluster(5)
    run = Run(cluster, topic_name, partitions=5)
    run.start({"confluent": RATE})
    run.load_for(WARM_S)
    old = run.kill_leader(0)
    run.wait_new_leader(0, old)
    run.load_for(DURING_S)
    run.restart(old)
    run.load_for(AFTER_S)
    run.finish().assert_ok()
