"""Separate roles, as a production cluster runs: 3 controller-only nodes (the metadata quorum)
and 3 broker-only nodes that replicate the metadata log as observers, found through
`controller.quorum.bootstrap.servers`. Under an idempotent acks=all load on an RF 3 topic
with min.insync.replicas=2:

- the quorum as `kafka-metadata-quorum.sh describe` reads it (Admin describeMetadataQuorum,
  the Java client): the controllers are its voters, the brokers its observers, and only the
  voters' controller endpoints are listed as its nodes;
- a killed broker-only node is fenced after `broker.session.timeout.ms` and its partitions
  get new leaders from their ISR; then every node is restarted in turn (rolling restart);
- a fourth controller joins as an observer, is added as a voter (Admin addRaftVoter, as
  `kafka-metadata-quorum.sh add-controller`), and an original voter is removed
  (removeRaftVoter, `remove-controller`) and stopped, as when a controller that lost its disk
  is replaced; the cluster keeps serving through a controller failure afterwards.

The checker (checker.py) must find nothing lost, duplicated or inconsistent.
Marked `cluster` (README.md, "Cluster tests").
"""

import pytest

from cluster import NotYet
from cluster_fixtures import SESSION_S, Run, make_cluster  # noqa: F401 (fixture)
from test_compat import compat_tool  # noqa: F401 (fixture)

pytestmark = pytest.mark.cluster

RATE = 1000  # records/s of the producer


def quorum(cluster, compat_tool, want):
    """describeMetadataQuorum (Java Admin) until `want(q)` holds; returns the last answer."""

    def probe():
        q = compat_tool(["quorum", cluster.bootstrap])
        if "error" in q or not want(q):
            raise NotYet(q)
        return q

    return cluster.wait("the quorum as described", probe, timeout_s=60, interval_s=0.5)


def ids(replicas):
    return sorted(r["id"] for r in replicas)


def test_split_roles_fence_a_broker_and_roll_every_node(make_cluster, topic_name, compat_tool):
    cluster = make_cluster(3, controllers=3)
    controllers = [n for n in cluster.nodes.values() if n.roles == "controller"]
    brokers = cluster.brokers()
    assert [n.node_id for n in controllers] == [1, 2, 3] and [n.node_id for n in brokers] == [4, 5, 6]
    # Controllers serve no Kafka listener: the brokers are the cluster's brokers.
    assert sorted(cluster.metadata([])["brokers"]) == [4, 5, 6]
    q = quorum(cluster, compat_tool, lambda q: ids(q["observers"]) == [4, 5, 6])
    assert ids(q["voters"]) == [1, 2, 3] and q["leader_id"] in (1, 2, 3), q
    # As Kafka's DescribeQuorum: `nodes` holds the voters' controller endpoints and nothing
    # of the observers (brokers fetch from the leader; they have no quorum endpoint).
    assert q["nodes"] == {str(c.node_id): [f"CONTROLLER://127.0.0.1:{c.controller_port}"] for c in controllers}, q
    for observer in q["observers"]:
        # The observers replicate the log: their log end is known to the leader.
        assert observer["log_end_offset"] > 0, q

    run = Run(cluster, topic_name)
    run.start({"confluent": RATE}, observers=("confluent",))
    run.load_for(2)
    old = run.kill_leader(0)
    # Fenced after the session timeout: the partition gets a new leader from its ISR.
    run.wait_new_leader(0, old)
    fenced = cluster.wait(f"{old} fenced (not listed as a broker)",
                          lambda: old.node_id not in cluster.metadata([])["brokers"], timeout_s=SESSION_S * 3)
    assert fenced
    run.load_for(1)
    run.restart(old)
    # Every node in turn, controllers first: SIGTERM, wait, start again.
    for node in list(cluster.nodes.values()):
        code = node.stop()
        run.note(f"SIGTERM {node}: exited {code}")
        assert code == 0, f"{node} exited {code} on SIGTERM:\n{node.log_tail()}"
        if node.is_broker:
            run.wait_leaders_live()
        run.load_for(1)
        run.restart(node)
    run.load_for(1)
    run.finish().assert_ok()
    q = quorum(cluster, compat_tool, lambda q: ids(q["observers"]) == [4, 5, 6])
    assert ids(q["voters"]) == [1, 2, 3], q


def test_add_and_remove_a_controller_under_load(make_cluster, topic_name, compat_tool):
    cluster = make_cluster(3, controllers=3)
    run = Run(cluster, topic_name)
    run.start({"confluent": RATE}, observers=("confluent",))
    run.load_for(1)
    # A new controller, not among the static voters: it finds the quorum through the
    # bootstrap servers and replicates as an observer until it is added.
    new = cluster.add_node("controller", {"controller.quorum.voters": None,
                                          "controller.quorum.bootstrap.servers": cluster.controller_addrs})
    run.note(f"{new} started as an observer")
    q = quorum(cluster, compat_tool, lambda q: new.node_id in ids(q["observers"]))
    # KIP-853's replica key: the observer replicates with its metadata directory's id; the
    # static voters were configured without one (Kafka's static quorum has none).
    new_dir = next(o["directory_id"] for o in q["observers"] if o["id"] == new.node_id)
    assert new_dir != "AAAAAAAAAAAAAAAAAAAAAA", q
    assert {v["directory_id"] for v in q["voters"]} == {"AAAAAAAAAAAAAAAAAAAAAA"}, q
    other_dir = "AAAAAAAAAAAAAAAAAAAAAQ"
    wrong = compat_tool(["add-voter", cluster.bootstrap, new.node_id, "127.0.0.1", new.controller_port, other_dir])
    assert "error" in wrong and "directory id" in wrong.get("message", ""), wrong
    added = compat_tool(["add-voter", cluster.bootstrap, new.node_id, "127.0.0.1", new.controller_port, new_dir])
    assert added == {"ok": True}, added
    run.note(f"{new} added as a voter")
    q = quorum(cluster, compat_tool, lambda q: ids(q["voters"]) == [1, 2, 3, new.node_id])
    assert new.node_id not in ids(q["observers"]), q
    assert next(v["directory_id"] for v in q["voters"] if v["id"] == new.node_id) == new_dir, q
    # A voter recorded with a directory id is only that replica: another id (or none) is
    # VOTER_NOT_FOUND, as Kafka's VoterSet.isVoter.
    for dir_args in ([other_dir], []):
        missing = compat_tool(["remove-voter", cluster.bootstrap, new.node_id] + dir_args)
        assert missing["error"] == "VoterNotFoundException", (dir_args, missing)
    again = compat_tool(["add-voter", cluster.bootstrap, new.node_id, "127.0.0.1", new.controller_port])
    assert again["error"] == "DuplicateVoterException", again

    # Replace controller 1 (as if its disk were lost): remove it, then stop it.
    removed = compat_tool(["remove-voter", cluster.bootstrap, 1])
    assert removed == {"ok": True}, removed
    run.note("node 1 removed from the voters")
    quorum(cluster, compat_tool, lambda q: ids(q["voters"]) == [2, 3, new.node_id])
    cluster[1].stop()
    unknown = compat_tool(["remove-voter", cluster.bootstrap, 1])
    assert unknown["error"] == "VoterNotFoundException", unknown
    run.load_for(1)
    # The new quorum of 3 survives losing one more controller: kill the leader of the quorum.
    leader = quorum(cluster, compat_tool, lambda q: q["leader_id"] in (2, 3, new.node_id))["leader_id"]
    cluster[leader].kill()
    run.note(f"kill -9 quorum leader {leader}")
    quorum(cluster, compat_tool, lambda q: q["leader_id"] not in (1, leader) and q["leader_id"] > 0)
    # Metadata changes still commit: a topic can be created.
    from cluster_fixtures import create_topic

    create_topic(cluster, topic_name + "-after", 1)
    run.load_for(1)
    cluster[leader].start()
    run.finish().assert_ok()


def strom_cli(cluster, *args):
    """The `strom` command line against the cluster's brokers; returns its stdout."""
    import subprocess

    proc = subprocess.run([str(cluster.binary), *args, "--bootstrap-server", cluster.bootstrap],
                          capture_output=True, timeout=60)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def test_dynamic_quorum_formatted_and_grown_with_the_strom_cli(make_cluster, topic_name, compat_tool):
    """`strom storage format --standalone` on the first controller, `--no-initial-controllers`
    on the others: a quorum of one voter, the other controllers and the brokers observers;
    `strom metadata-quorum add-controller` grows it to three voters, `remove-controller`
    retires the first, and the cluster keeps committing metadata and serving records."""
    import json

    cluster = make_cluster(2, controllers=3, dynamic=True, overrides={"offsets.topic.replication.factor": "2",
                                                                       "default.replication.factor": "2"})
    # The brokers serve once registered; the other controllers join in the background.
    def joined():
        code, out, err = strom_cli(cluster, "metadata-quorum", "describe", "--status", "--output", "json")
        if code != 0:
            raise NotYet(err)
        status = json.loads(out)
        if sorted(status["current_observers"]) != [2, 3, 4, 5]:
            raise NotYet(status)
        return status

    status = cluster.wait("controllers 2, 3 and brokers 4, 5 observers", joined, timeout_s=60)
    assert status["current_voters"] == [1] and status["leader_id"] == 1, status
    for node_id in (2, 3):
        code, out, err = strom_cli(cluster, "metadata-quorum", "add-controller", "--controller-id", str(node_id),
                                   "--controller-endpoint", f"127.0.0.1:{cluster[node_id].controller_port}")
        assert code == 0 and f"Added controller {node_id}." in out, (code, out, err)
    code, out, err = strom_cli(cluster, "metadata-quorum", "add-controller", "--controller-id", "2",
                               "--controller-endpoint", f"127.0.0.1:{cluster[2].controller_port}")
    assert code != 0 and "DUPLICATE_VOTER" in err, (code, out, err)
    code, out, err = strom_cli(cluster, "metadata-quorum", "remove-controller", "--controller-id", "1")
    assert code == 0, err
    cluster[1].stop()
    q = quorum(cluster, compat_tool, lambda q: ids(q["voters"]) == [2, 3] and q["leader_id"] in (2, 3))
    assert ids(q["observers"]) == [4, 5], q
    code, out, err = strom_cli(cluster, "metadata-quorum", "describe", "--replication", "--output", "json")
    assert code == 0, err
    replication = {r["id"]: r for r in json.loads(out)}
    assert {r["status"] for r in replication.values()} == {"Leader", "Follower", "Observer"}, replication
    code, out, err = strom_cli(cluster, "topics", "create", topic_name, "--partitions", "2",
                               "--replication-factor", "2")
    assert code == 0, err
    # Each broker sees the topic once the committed change reaches it (as in Kafka, a
    # broker's metadata trails the controller's briefly).

    def described():
        code, out, err = strom_cli(cluster, "topics", "describe", topic_name, "--output", "json")
        if code != 0:
            raise NotYet(err)
        return out

    cluster.wait(f"topic {topic_name} described", described, timeout_s=30)
