"""Moving partitions and leaders on a 4-node cluster of real `strom server` processes.

- Under an idempotent acks=all producer: partitions of a topic on brokers 1-3 are
  reassigned onto broker 4 through the Java Admin call behind `kafka-reassign-partitions.sh
  --execute` (alterPartitionReassignments), followed with the calls behind `--verify`
  (listPartitionReassignments + describeTopics); then broker 1 is decommissioned with
  `strom partitions reassign --generate --exclude-broker 1 --minimal-moves` and `--wait`. Every acknowledged
  record reads back, in order, without duplicates (checker.py), broker 1 ends with no
  replica and no partition directory, and the leader of a moved partition was only ever
  an in-sync target replica.
- The Admin calls' answers: an ongoing reassignment (its target broker stopped) listed with
  adding and removing replicas, cancelled back; Kafka's exceptions for a cancel of nothing,
  duplicate or unknown brokers, an unknown topic; electLeaders PREFERRED and UNCLEAN (what
  `kafka-leader-election.sh` calls) with ELECTION_NOT_NEEDED; `strom partitions
  elect-leaders`.

Marked `cluster`: deselected unless STROM_CLUSTER_TESTS=1 (README.md, "Cluster tests").
"""

import json
import re
import subprocess
import time

import pytest

from cluster import NotYet
from cluster_fixtures import Run, make_cluster  # noqa: F401 (fixture)
from conftest import strom_binary

pytestmark = pytest.mark.cluster

MOVE_TIMEOUT_S = 90
CLI_TIMEOUT_S = 150


def strom(cluster, *args, check=True):
    cmd = [str(strom_binary())] + [str(a) for a in args] + ["--bootstrap-server", cluster.bootstrap]
    proc = subprocess.run(cmd, capture_output=True, timeout=CLI_TIMEOUT_S)
    out, err = proc.stdout.decode(), proc.stderr.decode(errors="replace")
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd[1:])} exited {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}")
    return proc.returncode, out, err


def wait_moved(cluster, java_tool, topic, targets):
    """`kafka-reassign-partitions.sh --verify`'s calls until every partition in `targets`
    ({partition: replicas}) has no reassignment and exactly those replicas."""

    def probe():
        ongoing = java_tool(["admin", cluster.bootstrap, "reassignments", topic])
        described = java_tool(["admin", cluster.bootstrap, "replicas", topic])
        for p, want in targets.items():
            if str(p) in ongoing:
                raise NotYet(f"partition {p} still moving: {ongoing[str(p)]}")
            if described[str(p)]["replicas"] != want:
                raise NotYet(f"partition {p}: replicas {described[str(p)]['replicas']}, want {want}")
        return described

    return cluster.wait(f"{topic}: partitions {sorted(targets)} moved", probe, MOVE_TIMEOUT_S, interval_s=0.5)


def test_reassign_onto_a_new_broker_then_decommission_one_under_load(make_cluster, topic_name, java_tool):
    cluster = make_cluster(4)
    run = Run(cluster, topic_name, partitions=3, assignment=[[1, 2, 3], [2, 3, 1], [3, 1, 2]])
    run.start({"confluent": 1000})
    run.load_for(2)

    # Partition 0 (led by 1) leaves broker 1 for 4; partition 1 swaps 2 for 4.
    targets = {0: [4, 2, 3], 1: [4, 3, 1]}
    outcome = java_tool(["admin", cluster.bootstrap, "reassign", topic_name]
                        + [f"{p}={','.join(map(str, r))}" for p, r in targets.items()])
    assert outcome == {"0": None, "1": None}, outcome
    run.note(f"reassignment started (Java Admin): {targets}")
    described = wait_moved(cluster, java_tool, topic_name, targets)
    run.note(f"moved: {described}")
    # The leader moved off broker 1 only to an in-sync target replica: broker 4 (first in
    # the target, and in the ISR by the time the move completed).
    assert described["0"]["leader"] == 4, described
    assert sorted(described["0"]["isr"]) == [2, 3, 4], described
    assert (cluster[4].data_dir / f"{topic_name}-0").is_dir()
    run.load_for(1)

    # Decommission broker 1: a plan for every topic (the consumer offsets too), executed
    # with progress until done, then verified.
    _, plan_text, _ = strom(cluster, "partitions", "reassign", "--generate", "--exclude-broker", "1",
                            "--minimal-moves", "--output", "json")
    plan = json.loads(plan_text)
    moved = {(p["topic"], p["partition"]): p["replicas"] for p in plan["partitions"]}
    assert moved, "broker 1 holds replicas, so the plan moves some"
    current = cluster.metadata()["topics"]
    for (topic, p), target in moved.items():
        before = current[topic]["partitions"][p]["replicas"]
        # Only broker 1's slot changes, to a broker the partition did not have.
        assert 1 in before and 1 not in target, (topic, p, before, target)
        assert [b for b in before if b != 1] == [t for t, b in zip(target, before) if b != 1], (before, target)
    assert {(topic_name, 1), (topic_name, 2)} <= set(moved), plan
    plan_path = cluster.dir / "decommission-1.json"
    plan_path.write_text(plan_text)
    _, out, _ = strom(cluster, "partitions", "reassign", "--reassignment-json-file", plan_path, "--wait")
    assert "Successfully started partition reassignments" in out, out
    assert out.count("is completed.") == len(moved), out
    _, out, _ = strom(cluster, "partitions", "reassign", "--reassignment-json-file", plan_path, "--verify")
    assert out.count("is completed.") == len(moved), out
    run.note(f"broker 1 decommissioned: {len(moved)} partition(s) moved")
    run.load_for(1)

    md = cluster.metadata()
    for topic, t in md["topics"].items():
        for p, info in t["partitions"].items():
            assert 1 not in info["replicas"] and info["leader"] != 1, (topic, p, info)

    # Broker 1's logs of the moved partitions go only once the committed change removes it.
    def gone():
        left = [d.name for d in cluster[1].data_dir.iterdir() if d.is_dir() and d.name.startswith(topic_name)]
        if left:
            raise NotYet(f"still on broker 1: {left}")
        return True

    cluster.wait("broker 1's replicas deleted", gone, 30)
    run.finish().assert_ok()


def test_admin_reassignment_answers_cancel_and_leader_elections(make_cluster, topic_name, java_tool):
    cluster = make_cluster(4)
    # Brokers named by role, so that the stop below does not hit the active controller (a
    # stopped controller costs a quorum election, not what this test is about): `spare` is
    # stopped to keep a move unfinished.
    controller = active_controller(cluster)
    spare = max(n for n in cluster.nodes if n != controller)
    a, b, c = sorted((n for n in cluster.nodes if n != spare), key=lambda n: (n != controller, n))
    Run(cluster, topic_name, partitions=2, assignment=[[a, b, c], [b, c, a]])
    admin = ["admin", cluster.bootstrap]
    # The spare broker stops (it stays registered, fenced): a move onto it cannot complete.
    cluster[spare].stop()
    assert java_tool(admin + ["reassign", topic_name, f"0={spare},{b},{c}"]) == {"0": None}
    ongoing = java_tool(admin + ["reassignments", topic_name])
    assert ongoing == {"0": {"replicas": [spare, b, c, a], "adding": [spare], "removing": [a]}}, ongoing
    rc, out, _ = strom(cluster, "partitions", "reassign", "--reassignment-json-file",
                       write_plan(cluster, topic_name, {0: [spare, b, c]}), "--verify", check=False)
    assert rc != 0 and "still in progress" in out, out
    _, out, _ = strom(cluster, "topics", "describe", topic_name, "--output", "json")
    moving = json.loads(out)[0]["partitions"][0]
    assert (moving["adding_replicas"], moving["removing_replicas"]) == ([spare], [a]), moving

    # Kafka's errors, per partition.
    errors = java_tool(admin + ["reassign", topic_name, "1=cancel"])
    assert errors == {"1": "NoReassignmentInProgressException"}, errors
    errors = java_tool(admin + ["reassign", topic_name, f"1={b},{b},{c}"])
    assert errors == {"1": "InvalidReplicaAssignmentException"}, errors
    errors = java_tool(admin + ["reassign", topic_name, f"1={b},{c},99"])
    assert errors == {"1": "InvalidReplicaAssignmentException"}, errors
    errors = java_tool(admin + ["reassign", topic_name + "-nope", f"0={a},{b},{c}"])
    assert errors == {"0": "UnknownTopicOrPartitionException"}, errors

    # Cancel: back to the old replicas, nothing listed, the leader never moved.
    assert java_tool(admin + ["reassign", topic_name, "0=cancel"]) == {"0": None}
    assert java_tool(admin + ["reassignments", topic_name]) == {}
    described = java_tool(admin + ["replicas", topic_name])
    assert sorted(described["0"]["replicas"]) == sorted([a, b, c]), described
    assert spare not in described["0"]["isr"] and described["0"]["leader"] == a, described

    # Leader elections. Partition 1 is led by its preferred replica: nothing to do; nor is
    # there for an unclean election of a partition that has a leader.
    assert java_tool(admin + ["elect", topic_name, "preferred", "1"]) == {"1": "ElectionNotNeededException"}
    assert java_tool(admin + ["elect", topic_name, "unclean", "1"]) == {"1": "ElectionNotNeededException"}
    # A reordering completes at once and leaves the leader where it is (Kafka moves it only
    # by an election): the preferred election then moves leadership to the new first replica.
    assert java_tool(admin + ["reassign", topic_name, f"1={c},{b},{a}"]) == {"1": None}
    described = java_tool(admin + ["replicas", topic_name])
    assert described["1"]["replicas"] == [c, b, a] and described["1"]["leader"] == b, described
    assert java_tool(admin + ["elect", topic_name, "preferred", "1"]) == {"1": None}
    assert java_tool(admin + ["replicas", topic_name])["1"]["leader"] == c
    # The strom command line: nothing left to elect.
    _, out, _ = strom(cluster, "partitions", "elect-leaders", "--election-type", "preferred", "--topic",
                      topic_name, "--partition", "1")
    assert "Valid replica already elected for partitions" in out, out


def active_controller(cluster):
    """The node whose controller became active in the highest raft term, from the nodes'
    logs (`controller active term=N`)."""
    best = (-1, None)
    for n in cluster.nodes.values():
        for m in re.finditer(r"controller active term=(\d+)", n.log_path.read_text(errors="replace")):
            best = max(best, (int(m.group(1)), n.node_id))
    assert best[1] is not None, "no node logged an active controller"
    return best[1]


def write_plan(cluster, topic, targets):
    path = cluster.dir / f"plan-{topic}.json"
    plan = {"version": 1, "partitions": [{"topic": topic, "partition": p, "replicas": r} for p, r in targets.items()]}
    path.write_text(json.dumps(plan))
    return path


def log_bytes(node, topic, partition):
    d = node.data_dir / f"{topic}-{partition}"
    return sum(f.stat().st_size for f in d.glob("*.log")) if d.is_dir() else 0


def began(node, topic, partition):
    if log_bytes(node, topic, partition) == 0:
        raise NotYet(f"{node} has no bytes of {topic}-{partition} yet")
    return True


def set_configs(cluster, kind, name, configs):
    """IncrementalAlterConfigs SET (value) or DELETE (None), as kafka-configs.sh does."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.DELETE if v is None else AlterConfigOpType.SET)
               for k, v in configs.items()]
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 0})
    for future in admin.incremental_alter_configs([ConfigResource(kind, name, incremental_configs=entries)]).values():
        future.result(timeout=30)


def test_replication_throttles_hold_a_move_back_until_lifted(make_cluster, topic_name, java_tool):
    """`follower.replication.throttled.rate` (with the topic's
    `follower.replication.throttled.replicas` naming the new replica) and then
    `leader.replication.throttled.rate` (with `leader.replication.throttled.replicas` naming
    the leader): a move of 3 MB stays unfinished at 20 kB/s; deleting the rate lets it end."""
    from confluent_kafka import Producer

    cluster = make_cluster(2)
    Run(cluster, topic_name, partitions=2, min_isr=1, assignment=[[1], [1]])
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 20})
    value = b"x" * 1000
    for i in range(3000):
        for p in (0, 1):
            producer.produce(topic_name, value, partition=p)
        if i % 500 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    total = log_bytes(cluster[1], topic_name, 0)
    assert total > 3_000_000, total
    rate = "20000"
    for partition, side, broker in ((0, "follower", 2), (1, "leader", 1)):
        set_configs(cluster, "TOPIC", topic_name, {f"{side}.replication.throttled.replicas": f"{partition}:{broker}"})
        set_configs(cluster, "BROKER", str(broker), {f"{side}.replication.throttled.rate": rate})
        assert java_tool(["admin", cluster.bootstrap, "reassign", topic_name, f"{partition}=1,2"]) == {str(partition): None}
        # Only one fetch's worth (replica.fetch.max.bytes, 1 MiB) passes before the rate,
        # averaged over 10 s, is over 20 kB/s; then the partition is held back.
        cluster.wait(f"{side} throttle: the move began", lambda: began(cluster[2], topic_name, partition), 30)
        time.sleep(3)  # the throttle's effect is what a span of time shows
        moved = log_bytes(cluster[2], topic_name, partition)
        assert moved < 2_000_000, f"{side} throttle let {moved} of {total} bytes through in 3 s"
        ongoing = java_tool(["admin", cluster.bootstrap, "reassignments", topic_name])
        assert str(partition) in ongoing, ongoing
        set_configs(cluster, "BROKER", str(broker), {f"{side}.replication.throttled.rate": None})
        wait_moved(cluster, java_tool, topic_name, {partition: [1, 2]})
        assert log_bytes(cluster[2], topic_name, partition) >= total
    # A rate that is not a number of bytes per second is refused.
    with pytest.raises(Exception, match="INVALID_CONFIG|Invalid value"):
        set_configs(cluster, "BROKER", "1", {"leader.replication.throttled.rate": "-5"})
