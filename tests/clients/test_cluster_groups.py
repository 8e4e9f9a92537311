"""A consumer group survives the loss of its coordinator's broker: the group's committed
offsets live in `__consumer_offsets` (replicated like any topic, RF 3 here), so after
`kill -9` of the coordinator's node a new coordinator serves them, a new member resumes
exactly at them (no committed record delivered again, none skipped), and they are still
there once the killed node is back.

Marked `cluster`: deselected unless STROM_CLUSTER_TESTS=1 (README.md, "Cluster tests").
"""

import json
import os
import shutil
import subprocess
import time

import pytest

from cluster import NotYet, find_coordinator
from cluster_fixtures import Run, make_cluster  # noqa: F401 (fixture)
from conftest import TOOLS
from group_members import Members, wait_records, wait_stable

pytestmark = pytest.mark.cluster

PARTITIONS = 3
WAIT_S = 30


def offsets_partition(group, partitions):
    """Kafka's: abs(groupId.hashCode()) % partitions, with Java's String.hashCode."""
    h = 0
    for unit in group.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % partitions


def live_coordinator(cluster, group):
    """The group's coordinator: the live leader of its `__consumer_offsets` partition (as
    Kafka places groups), once every live node's FindCoordinator (sent by the harness) names
    it. Nodes naming another is recorded (problem) by the caller from the NotYet text.
    Not confluent-kafka's describe_consumer_groups: it aborts the whole process (a librdkafka
    assertion) on an answer without the group id, which Strom gives while a coordinator is
    not loaded on the node asked."""
    live = {n.node_id for n in cluster.live()}
    parts = cluster.partitions("__consumer_offsets")
    leader = parts[offsets_partition(group, len(parts))]["leader"]
    if leader not in live:
        raise NotYet(f"__consumer_offsets partition {offsets_partition(group, len(parts))} has leader {leader}")
    views = {}
    for n in cluster.live():
        error, node = find_coordinator("127.0.0.1", n.port, group, timeout_s=3)
        views[n.node_id] = f"error {error}" if error else node
    if set(views.values()) != {leader}:
        raise NotYet(f"the group's offsets partition is led by node {leader}; FindCoordinator answers by node: {views}")
    return leader


def group_leader(cluster, group):
    """The live leader of the group's `__consumer_offsets` partition, whatever FindCoordinator says."""
    parts = cluster.partitions("__consumer_offsets")
    leader = parts[offsets_partition(group, len(parts))]["leader"]
    if leader not in {n.node_id for n in cluster.live()}:
        raise NotYet(f"leader {leader}")
    return leader


def committed_offsets(cluster, topic, group):
    """{partition: committed offset} per the Java Admin client (java GroupAdmin lag)."""
    cp = f"{TOOLS / 'java-classes'}{os.pathsep}{TOOLS / 'java-libs'}/*"
    bootstrap = ",".join(n.bootstrap for n in cluster.live())
    cmd = [shutil.which("java") or "java", "-cp", cp, "GroupAdmin", bootstrap, "lag", group]
    proc = subprocess.run(cmd, capture_output=True, timeout=90)
    [res] = json.loads(proc.stdout.decode().strip().splitlines()[-1])["results"]
    if "error" in res:
        raise NotYet(f"{res['error']}: {res['message']}")
    return {p: committed for t, p, committed, _ in res["partitions"] if t == topic}


def first_offsets(member, since=0.0):
    firsts = {}
    for p, o, _ in member.records(since):
        firsts.setdefault(p, o)
    return firsts


# Every wait is bounded; when all of them run out (a broken cluster) the test takes ~150 s.
@pytest.mark.timeout(300)
def test_group_resumes_from_committed_offsets_after_coordinator_kill(make_cluster, topic_name):
    cluster = make_cluster(3)
    run = Run(cluster, topic_name, partitions=PARTITIONS)
    run.start({"confluent": 1000}, observers=())
    group = f"g-{topic_name}"
    members = Members(cluster.bootstrap, topic_name, group, session_timeout_ms=6000, heartbeat_interval_ms=500,
                      max_s=170)
    try:
        resume_after_coordinator_kill(cluster, run, members, topic_name, group)
    finally:
        members.stop_all()
    run.check().assert_ok()


def resume_after_coordinator_kill(cluster, run, members, topic_name, group):
    """The scenario; anomalies go to run.history (problem), checked by the caller."""
    problem = run.history.problem
    m1 = members.start("confluent", "m1")
    try:
        wait_stable([m1], PARTITIONS, timeout_s=40)
        wait_records([m1], 1500, timeout_s=40)
    except AssertionError as e:
        raise AssertionError(f"the group did not form on the healthy cluster, before any fault: {e}\n"
                             f"{cluster.coordinator_views(group)}") from None
    committed = m1.commit()
    run.note(f"m1 committed {committed}")
    try:
        coord = cluster.wait("the group's coordinator", lambda: live_coordinator(cluster, group), 10)
    except AssertionError as e:
        problem("coordinator-disagreement", str(e)[:500])
        coord = cluster.wait("the group's offsets partition leader", lambda: group_leader(cluster, group), WAIT_S)
    sent_at_kill = run.producers[0].sent
    cluster[coord].kill()
    run.note(f"kill -9 node {coord} (the group's coordinator)")

    # The live member goes on through the failover (new partition leaders, new coordinator):
    # it receives records produced after the kill.
    def newer():
        n = sum(1 for _, _, key in m1.records() if int(key.rsplit("-", 1)[1]) >= sent_at_kill)
        if n < 300:
            raise NotYet(f"{n} records produced after the kill received")
        return n

    try:
        cluster.wait("m1 receiving records produced after the kill", newer, WAIT_S)
        run.note("m1 receives records produced after the kill")
    except AssertionError as e:
        problem("member-stalled", str(e)[:300])
    m1.kill()
    run.note("m1 killed (SIGKILL): the group must resume from what m1 committed")

    try:
        new = cluster.wait("a coordinator on a live node", lambda: live_coordinator(cluster, group), WAIT_S)
        run.note(f"node {new} coordinates the group")
        got = cluster.wait("the committed offsets", lambda: committed_offsets(cluster, topic_name, group), WAIT_S)
        if got != committed:
            problem("committed-offsets-lost", f"the new coordinator node {new} has {got}; m1 committed {committed}")
    except AssertionError as e:
        problem("no-new-coordinator", f"{str(e)[:400]}; {cluster.coordinator_views(group)}")

    started = time.monotonic()
    m2 = members.start("confluent", "m2")
    try:
        wait_stable([m2], PARTITIONS, timeout_s=WAIT_S)
        cluster.wait("m2 has records of every partition", lambda: len(first_offsets(m2)) == PARTITIONS, WAIT_S)
        run.note(f"m2 joined after {time.monotonic() - started:.1f}s, starts at {first_offsets(m2)}")
    except AssertionError as e:
        problem("group-not-resumed", f"m2 (same group) got no assignment or records: {str(e)[:400]}; "
                f"{cluster.coordinator_views(group)}")
        # What follows checks m2's records: without them it would only repeat this.
        run.restart(cluster[coord])
        run.stop_load()
        return

    run.restart(cluster[coord])
    run.stop_load()
    ends = run.end_offsets()
    try:
        cluster.wait("m2 read to the end offsets",
                     lambda: all(max((o for q, o, _ in m2.records() if q == p), default=-1) + 1 >= end
                                 for p, end in ends.items()), WAIT_S)
    except AssertionError as e:
        problem("member-behind", str(e)[:300])

    # Where m2 resumed: at the committed offsets. Nothing below them may come again (m1
    # committed only what it had received, then died: at-least-once allows redelivery
    # only above the last commit), and every offset from them to the end must come.
    firsts = first_offsets(m2)
    redelivered = [f"p{p}@{o}" for p, o, _ in m2.records() if p in committed and o < committed[p]]
    skipped_start = [f"p{p}: starts at {firsts[p]}, committed {committed[p]}" for p in committed
                     if p in firsts and firsts[p] > committed[p]]
    seen = {(p, o) for p, o, _ in m2.records()}
    gaps = [f"p{p}@{o}" for p, end in sorted(ends.items()) for o in range(committed.get(p, 0), end)
            if (p, o) not in seen]
    for kind, items in (("redelivered-committed", redelivered), ("skipped-at-resume", skipped_start),
                        ("skipped", gaps)):
        if items:
            problem(kind, f"{len(items)} (m2 starts at {firsts}, m1 committed {committed}): {items[:5]}")

    # What m2 commits on the new coordinator is still there once the killed node is back.
    try:
        committed2 = m2.commit()
        run.note(f"m2 committed {committed2} (node {coord} back)")
        got2 = cluster.wait("the committed offsets", lambda: committed_offsets(cluster, topic_name, group), WAIT_S)
        if got2 != committed2:
            problem("committed-offsets-lost", f"after node {coord} returned: {got2}; m2 committed {committed2}")
    except AssertionError as e:
        problem("commit-failed", f"m2's commit or the offsets' lookup after node {coord} returned: {str(e)[:400]}")
