"""A consumer group survives the loss of its coordinator's broker: the group's committed
offsets live in `__consumer_offsets` (replicated like any topic, RF 3 here), so after
`kill -9` of the coordinator's node a new coordinator serves them, a new member resumes
exactly at them (no committed record delivered again, none skipped), and they are still
there once the killed node is back.

Marked `cluster`: deselected unless STROM_CLUSTER_TESTS=1 (README.md, "Cluster tests").
"""

import time

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from cluster import NotYet
from cluster_fixtures import Run, make_cluster  # noqa: F401 (fixture)
from group_members import Members, wait_records, wait_stable

pytestmark = pytest.mark.cluster

PARTITIONS = 3
WAIT_S = 30


def coordinator(cluster, group):
    """The group's coordinator per the admin client (DescribeGroups through FindCoordinator)."""
    admin = AdminClient({"bootstrap.servers": ",".join(n.bootstrap for n in cluster.live()), "log_level": 0})
    return admin.describe_consumer_groups([group], request_timeout=5)[group].result(timeout=10).coordinator.id


def committed_offsets(cluster, topic, group):
    admin = AdminClient({"bootstrap.servers": ",".join(n.bootstrap for n in cluster.live()), "log_level": 0})
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    res = admin.list_consumer_group_offsets([req], request_timeout=5)[group].result(timeout=10)
    return {tp.partition: tp.offset for tp in res.topic_partitions}


def live_coordinator(cluster, group):
    c = coordinator(cluster, group)
    if c not in {n.node_id for n in cluster.live()}:
        raise NotYet(f"coordinator {c} is not a live node")
    return c


def first_offsets(member, since=0.0):
    firsts = {}
    for p, o, _ in member.records(since):
        firsts.setdefault(p, o)
    return firsts


def test_group_resumes_from_committed_offsets_after_coordinator_kill(make_cluster, topic_name):
    cluster = make_cluster(3)
    run = Run(cluster, topic_name, partitions=PARTITIONS)
    run.start({"confluent": 1000}, observers=())
    group = f"g-{topic_name}"
    members = Members(cluster.bootstrap, topic_name, group, session_timeout_ms=6000, heartbeat_interval_ms=500,
                      max_s=170)
    problem = run.history.problem
    try:
        m1 = members.start("confluent", "m1")
        try:
            wait_stable([m1], PARTITIONS, timeout_s=40)
            wait_records([m1], 1500, timeout_s=40)
        except AssertionError as e:
            raise AssertionError(f"the group did not form on the healthy cluster, before any fault: {e}\n"
                                 f"{cluster.coordinator_views(group)}") from None
        committed = m1.commit()
        run.note(f"m1 committed {committed}")
        coord = run.cluster.wait("the group's coordinator", lambda: coordinator(cluster, group), WAIT_S)
        killed_at = time.monotonic()
        cluster[coord].kill()
        run.note(f"kill -9 node {coord} (the group's coordinator)")

        # The live member goes on through the failover (new partition leaders, new coordinator).
        try:
            wait_records([m1], 300, since=killed_at, timeout_s=WAIT_S)
            run.note("m1 received records after the kill")
        except AssertionError as e:
            problem("member-stalled", f"m1 received no records for {WAIT_S}s after the kill: {str(e)[:300]}")
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
            wait_stable([m2], PARTITIONS, timeout_s=WAIT_S + 10)
            cluster.wait("m2 has records of every partition", lambda: len(first_offsets(m2)) == PARTITIONS, WAIT_S)
            run.note(f"m2 joined after {time.monotonic() - started:.1f}s, starts at {first_offsets(m2)}")
        except AssertionError as e:
            problem("group-not-resumed", f"m2 (same group) got no assignment or records: {str(e)[:400]}; "
                    f"{cluster.coordinator_views(group)}")

        run.restart(cluster[coord])
        run.stop_load()
        ends = run.end_offsets()
        try:
            cluster.wait("m2 read to the end offsets",
                         lambda: all(max((o for q, o, _ in m2.records() if q == p), default=-1) + 1 >= end
                                     for p, end in ends.items()), WAIT_S)
        except AssertionError as e:
            problem("member-behind", str(e)[:300])

        # Where m2 resumed: at the committed offsets, nothing below (delivered again) or above
        # them skipped; then every offset up to the end.
        firsts = first_offsets(m2)
        redelivered = [f"p{p}: starts at {firsts[p]}, committed {committed[p]}" for p in committed
                       if p in firsts and firsts[p] < committed[p]]
        skipped_start = [f"p{p}: starts at {firsts[p]}, committed {committed[p]}" for p in committed
                         if p in firsts and firsts[p] > committed[p]]
        seen = {(p, o) for p, o, _ in m2.records()}
        gaps = [f"p{p}@{o}" for p, end in sorted(ends.items()) for o in range(committed.get(p, 0), end)
                if (p, o) not in seen]
        for kind, items in (("redelivered-committed", redelivered), ("skipped-at-resume", skipped_start),
                            ("skipped", gaps)):
            if items:
                problem(kind, f"{len(items)}: {items[:5]}")

        committed2 = m2.commit()
        run.note(f"m2 committed {committed2} (node {coord} back)")
        got2 = cluster.wait("the committed offsets", lambda: committed_offsets(cluster, topic_name, group), WAIT_S)
        if got2 != committed2:
            problem("committed-offsets-lost", f"after node {coord} returned: {got2}; m2 committed {committed2}")
    finally:
        members.stop_all()
    run.check().assert_ok()
