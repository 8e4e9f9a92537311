"""Share groups (KIP-932) on a 3-node cluster: a share partition whose durable state lives
in a `__share_group_state` partition led by ANOTHER broker reads and writes it over the
inter-broker listener (Initialize/Read/WriteShareGroupState; `share_persister.rs`).

confluent-kafka's ShareConsumer consumes an RF 3 topic with explicit ACCEPT; the share
partition's leader and its state partition's leader are asserted to differ. Then the share
partition's leader is killed (SIGKILL): after failover no record whose acknowledgement was
answered before the kill is delivered again, and every record is delivered; the Admin
client then lists the state (listShareGroupOffsets) and deleting the group deletes it. A
second test kills the state partition's leader instead.

Marked `cluster`: deselected unless STROM_CLUSTER_TESTS=1 (README.md, "Cluster tests").
"""

import base64
import struct
import time

import pytest
from confluent_kafka import AcknowledgeType, ShareConsumer
from confluent_kafka.admin import AdminClient

from cluster import NotYet, find_coordinator
from cluster_fixtures import create_topic, make_cluster  # noqa: F401 (fixture)
from share_fixtures import share_tool  # noqa: F401 (fixture)
from test_share_groups import alter_share_offsets, produce

pytestmark = [pytest.mark.cluster, pytest.mark.needs_api("ShareGroupHeartbeat", "ShareFetch", "ShareAcknowledge")]

STATE_PARTITIONS = 3
RECORDS = 200
SHARE_OVERRIDES = {
    "group.share.min.session.timeout.ms": "6000",
    "group.share.session.timeout.ms": "6000",
    "group.share.min.heartbeat.interval.ms": "500",
    "group.share.heartbeat.interval.ms": "500",
    "share.coordinator.state.topic.num.partitions": str(STATE_PARTITIONS),
    "strom.log.durability": "sync-on-commit",
}


def java_hash_partition(key, partitions):
    """Kafka's: abs(key.hashCode()) % partitions, with Java's String.hashCode."""
    h = 0
    for unit in key.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % partitions


def topic_id_base64(bootstrap, topic):
    """The topic id as Kafka prints it (URL-safe base64, no padding), from DescribeTopics."""
    from confluent_kafka import TopicCollection

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    desc = admin.describe_topics(TopicCollection([topic]))[topic].result(timeout=30)
    uid = desc.topic_id
    raw = struct.pack(">qq", uid.get_most_significant_bits(), uid.get_least_significant_bits())
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def coordinator(cluster, group):
    """The bootstrap address of the group's coordinator (AlterShareGroupOffsets goes there)."""
    def probe():
        n = cluster.live()[0]
        error, node = find_coordinator(n.host, n.port, group, timeout_s=3)
        if error:
            raise NotYet(f"FindCoordinator({group}) error {error}")
        return cluster[node].bootstrap

    return cluster.wait(f"the coordinator of {group}", probe, timeout_s=60)


def state_leader(cluster, group, topic_id, partition):
    """The leader of the `__share_group_state` partition of the share partition's key."""
    key = f"{group}:{topic_id}:{partition}"
    parts = cluster.partitions("__share_group_state")
    return parts[java_hash_partition(key, len(parts))]["leader"]


def test_share_state_on_another_broker_survives_the_share_leader_kill(make_cluster, share_tool, topic_name):
    c = make_cluster(3, overrides=SHARE_OVERRIDES)
    create_topic(c, topic_name, 1, replication=3, configs={"min.insync.replicas": "2"})
    leader = c.leader(topic_name, 0)
    # The first share state call creates __share_group_state (RF 3).
    assert alter_share_offsets(coordinator(c, f"warm-{topic_name}"), f"warm-{topic_name}", topic_name, 0, 0) == (0, 0)
    c.wait_isr("__share_group_state")
    tid = topic_id_base64(c.bootstrap, topic_name)
    # A group whose state partition another broker leads (bounded search over names).
    group = next((g for g in (f"sg-{topic_name}-{i}" for i in range(100))
                  if state_leader(c, g, tid, 0) != leader), None)
    assert group is not None, "every group name maps to a state partition the topic leader leads"
    state_node = state_leader(c, group, tid, 0)
    assert state_node != leader
    # Initialize the state at offset 0 through the group's coordinator (wherever it is).
    assert alter_share_offsets(coordinator(c, group), group, topic_name, 0, 0) == (0, 0)
    offsets = produce(c.bootstrap, topic_name, RECORDS)
    assert offsets == list(range(RECORDS))

    consumer = ShareConsumer({
        "bootstrap.servers": c.bootstrap,
        "group.id": group,
        "share.acknowledgement.mode": "explicit",
        "log_level": 0,
    })
    consumer.subscribe([topic_name])
    committed = set()  # acknowledged ACCEPT, and the broker answered so
    seen_before = set()
    try:
        deadline = time.monotonic() + 90
        while len(committed) < RECORDS // 2 and time.monotonic() < deadline:
            pending = []
            for m in consumer.poll(1.0):
                if m.error() is not None:
                    continue
                seen_before.add(m.offset())
                consumer.acknowledge(m, AcknowledgeType.ACCEPT)
                pending.append(m.offset())
            if pending:
                results = consumer.commit_sync(30)
                if results and all(err is None for err in results.values()):
                    committed.update(pending)
        assert len(committed) >= RECORDS // 2, f"only {len(committed)} acknowledgements answered before the kill"
        # The state partition's leader was not the share partition's leader all along.
        assert state_leader(c, group, tid, 0) == state_node

        c[leader].kill()
        new_leader = c.leader(topic_name, 0, not_in=(leader,))
        assert new_leader != leader

        seen_after = {}
        deadline = time.monotonic() + 120
        while (seen_before | set(seen_after)) != set(offsets) and time.monotonic() < deadline:
            pending = []
            for m in consumer.poll(1.0):
                if m.error() is not None:
                    continue
                assert m.offset() not in committed, \
                    f"offset {m.offset()} delivered again after its acknowledgement was answered"
                seen_after[m.offset()] = m.delivery_count()
                consumer.acknowledge(m, AcknowledgeType.ACCEPT)
                pending.append(m.offset())
            if pending:
                consumer.commit_sync(30)
    finally:
        consumer.close()
    missing = set(offsets) - seen_before - set(seen_after)
    assert not missing, f"{len(missing)} records never delivered, e.g. {sorted(missing)[:10]}"
    assert not committed & set(seen_after)

    # The Admin client reads the state wherever it lives (listShareGroupOffsets: every
    # partition with state), and deleting the group deletes it there.
    [listed] = share_tool(c, ["offsets", group])
    rows = [r for r in listed.get("offsets", []) if r[0] == topic_name]
    assert len(rows) == 1 and rows[0][1] == 0 and rows[0][2] >= RECORDS // 2, listed
    deleted = None
    for _ in range(10):  # the closed consumer's leave may take a heartbeat to land
        [deleted] = share_tool(c, ["delete", group])
        if deleted == {"deleted": group}:
            break
        time.sleep(1)
    assert deleted == {"deleted": group}, deleted
    [after] = share_tool(c, ["offsets", group])
    assert [r for r in after.get("offsets", []) if r[0] == topic_name] == [], after


def test_share_acknowledgements_survive_the_state_leader_kill(make_cluster, topic_name):
    """The other way round: SIGKILL of the `__share_group_state` partition's leader while the
    share partition's leader (another node) keeps serving. Its state calls are retried
    against the new state leader (NOT_COORDINATOR / unreachable peer): acknowledgements
    answered before the kill stay acknowledged, and every record is delivered."""
    c = make_cluster(3, overrides=SHARE_OVERRIDES)
    create_topic(c, topic_name, 1, replication=3, configs={"min.insync.replicas": "2"})
    leader = c.leader(topic_name, 0)
    assert alter_share_offsets(coordinator(c, f"warm-{topic_name}"), f"warm-{topic_name}", topic_name, 0, 0) == (0, 0)
    c.wait_isr("__share_group_state")
    tid = topic_id_base64(c.bootstrap, topic_name)
    group = next((g for g in (f"sg-{topic_name}-{i}" for i in range(100))
                  if state_leader(c, g, tid, 0) != leader), None)
    assert group is not None, "every group name maps to a state partition the topic leader leads"
    state_node = state_leader(c, group, tid, 0)
    assert alter_share_offsets(coordinator(c, group), group, topic_name, 0, 0) == (0, 0)
    first = produce(c.bootstrap, topic_name, RECORDS // 2)

    consumer = ShareConsumer({
        "bootstrap.servers": c.bootstrap,
        "group.id": group,
        "share.acknowledgement.mode": "explicit",
        "log_level": 0,
    })
    consumer.subscribe([topic_name])
    committed, seen = set(), set()

    def consume(until, timeout_s):
        deadline = time.monotonic() + timeout_s
        while not until() and time.monotonic() < deadline:
            pending = []
            for m in consumer.poll(1.0):
                if m.error() is not None:
                    continue
                assert m.offset() not in committed, \
                    f"offset {m.offset()} delivered again after its acknowledgement was answered"
                seen.add(m.offset())
                consumer.acknowledge(m, AcknowledgeType.ACCEPT)
                pending.append(m.offset())
            if pending:
                results = consumer.commit_sync(30)
                if results and all(err is None for err in results.values()):
                    committed.update(pending)

    try:
        consume(lambda: committed >= set(first), 60)
        assert committed >= set(first), f"only {len(committed)} acknowledgements answered before the kill"
        c[state_node].kill()
        assert c.leader(topic_name, 0) == leader, "the share partition's leader moved"
        offsets = first + produce(c.bootstrap, topic_name, RECORDS - len(first), start=len(first))
        consume(lambda: seen == set(offsets), 120)
    finally:
        consumer.close()
    new_state_leader = state_leader(c, group, tid, 0)
    assert new_state_leader not in (state_node, -1)
    missing = set(offsets) - seen
    assert not missing, f"{len(missing)} records never delivered, e.g. {sorted(missing)[:10]}"


def coordinator_node(cluster, group):
    """The node id of the group's coordinator."""
    def probe():
        n = cluster.live()[0]
        error, node = find_coordinator(n.host, n.port, group, timeout_s=3)
        if error:
            raise NotYet(f"FindCoordinator({group}) error {error}")
        return node

    return cluster.wait(f"the coordinator of {group}", probe, timeout_s=60)


def consume_until(bootstrap, group, topic, want, timeout_s=60):
    """A new confluent ShareConsumer (implicit acknowledgement) polls until it has seen
    every offset of `want` or the time is up; returns every offset it saw, in order."""
    c = ShareConsumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "share.acknowledgement.mode": "implicit",
        "log_level": 0,
    })
    c.subscribe([topic])
    seen = []
    try:
        deadline = time.monotonic() + timeout_s
        while not set(want) <= set(seen) and time.monotonic() < deadline:
            seen.extend(m.offset() for m in c.poll(1.0) if m.error() is None)
        # One more poll acknowledges the last records (implicit mode) before the close.
        seen.extend(m.offset() for m in c.poll(0.5) if m.error() is None)
    finally:
        c.close()
    return seen


def until_done(share_tool, cluster, op, expected, attempts=20):
    """Runs a ShareTool admin op until it answers `expected` (the closed consumer's leave
    may take a heartbeat to land: NON_EMPTY_GROUP until then)."""
    result = None
    for _ in range(attempts):
        [result] = share_tool(cluster, op)
        if result == expected:
            return result
        time.sleep(1)
    return result


def test_reset_and_delete_reach_the_share_partition_on_another_broker(make_cluster, share_tool, topic_name):
    """The group coordinator, the state partition's leader and the share partition's leader
    are three different nodes' roles: the share partition is hosted on a node that neither
    alters nor deletes anything. After the Java Admin resets the group's start offset
    (alterShareGroupOffsets) a new consumer reads from the new start, not from where the
    share partition's memory was; after deleteShareGroups a new consumer of the group starts
    over (share.auto.offset.reset=earliest: every record again)."""
    c = make_cluster(3, overrides=SHARE_OVERRIDES)
    create_topic(c, topic_name, 1, replication=3, configs={"min.insync.replicas": "2"})
    leader = c.leader(topic_name, 0)
    warm = f"warm-{topic_name}"
    assert alter_share_offsets(coordinator(c, warm), warm, topic_name, 0, 0) == (0, 0)
    c.wait_isr("__share_group_state")
    tid = topic_id_base64(c.bootstrap, topic_name)
    group = next((g for g in (f"sg-{topic_name}-{i}" for i in range(200))
                  if state_leader(c, g, tid, 0) != leader and coordinator_node(c, g) != leader), None)
    assert group is not None, "no group name maps its coordinator and state away from the topic leader"
    assert share_tool(c, ["config-set", group, "share.auto.offset.reset", "earliest"]) == [{"altered": group}]
    offsets = produce(c.bootstrap, topic_name, 20)
    assert offsets == list(range(20))

    first = consume_until(c.bootstrap, group, topic_name, offsets)
    assert set(first) == set(offsets), f"first consumer saw {sorted(set(first))}"
    # The share partition on `leader` now holds start offset 20 in memory.
    assert until_done(share_tool, c, ["alter", group, topic_name, 0, 12], {"altered": group}) == {"altered": group}
    second = consume_until(c.bootstrap, group, topic_name, range(12, 20))
    assert sorted(set(second)) == list(range(12, 20)), \
        f"after the reset to 12 a new consumer saw {sorted(set(second))}"

    assert until_done(share_tool, c, ["delete", group], {"deleted": group}) == {"deleted": group}
    third = consume_until(c.bootstrap, group, topic_name, offsets)
    assert sorted(set(third)) == offsets, f"after the group's deletion a new consumer saw {sorted(set(third))}"
    # The coordinator recorded the re-created group's share partition: listed with its state.
    [listed] = share_tool(c, ["offsets", group])
    rows = [r for r in listed.get("offsets", []) if r[0] == topic_name]
    assert [r[:2] for r in rows] == [[topic_name, 0]], listed
