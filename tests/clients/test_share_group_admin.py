"""Share groups (KIP-932) with the real clients: the Java KafkaShareConsumer and
confluent-kafka's ShareConsumer join through ShareGroupHeartbeat and are given partitions
by the broker; the Java Admin client describes and lists share groups (what
kafka-share-groups.sh shows)."""

import os
import sys
import time

import pytest
from confluent_kafka import Consumer, ShareConsumer, TopicPartition

from conftest import Broker, strom_binary
from group_fixtures import create_topic
from share_fixtures import share_tool  # noqa: F401 (fixture)

import kafka_wire  # noqa: E402

kafka_wire.API_KEYS.update({"ShareGroupHeartbeat": 76, "ShareGroupDescribe": 77})

SHARE_BROKER_ARGS = [
    "--override", "group.share.min.session.timeout.ms=6000",
    "--override", "group.share.session.timeout.ms=6000",
    "--override", "group.share.min.heartbeat.interval.ms=500",
    "--override", "group.share.heartbeat.interval.ms=500",
]
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def share_broker():
    b = Broker(strom_binary(), SHARE_BROKER_ARGS)
    try:
        b.start()
        yield b
    finally:
        b.stop()
        if os.environ.get("STROM_KEEP_LOG"):
            print(f"\nstrom log: {b.log_path}", file=sys.stderr)
        else:
            b.cleanup()
            b.log_path.unlink(missing_ok=True)


def test_java_share_consumer_is_assigned_and_described(share_broker, share_tool, topic_name):
    """A KafkaShareConsumer joins (ShareGroupHeartbeat), and while it is in the group the
    Admin client sees it in describeShareGroups with the topic's partitions, and in
    listGroups filtered to SHARE, and cannot delete it; after it leaves, the group is Empty
    and deleteShareGroups removes it. The partitions are assigned once the group coordinator
    has initialized their share state (Kafka's order), a heartbeat after the join: the
    join polls long enough for that on a loaded machine, after the first share state call
    (an alter of another group) created `__share_group_state`."""
    create_topic(share_broker, topic_name, 3)
    group = f"{topic_name}-g"
    _, joined, described, listed, busy, _, after, deleted, gone = share_tool(
        share_broker,
        ["alter", f"warm-{group}", topic_name, 0, 0],
        ["join", group, topic_name, 10000],
        ["describe", group],
        ["list"],
        ["delete", group],
        ["leave"],
        ["describe", group],
        ["delete", group],
        ["describe", group],
    )
    assert joined["joined"] == group, joined
    assert described.get("state") == "Stable", described
    [member] = described["members"]
    assert member["client_id"] == "share-tool"
    assert member["host"] == "/127.0.0.1"
    assert sorted(member["partitions"]) == [[topic_name, p] for p in range(3)]
    mine = [g for g in listed["groups"] if g["group_id"] == group]
    assert mine == [{"group_id": group, "state": "Stable", "type": "Share"}], listed
    assert busy["error"] == "GroupNotEmptyException", busy
    assert after["state"] == "Empty" and after["members"] == [], after
    assert deleted == {"deleted": group}
    assert gone.get("error") == "GroupIdNotFoundException" or gone.get("state") == "Dead", gone


def test_confluent_share_consumers_share_one_partition(share_broker, share_tool, topic_name):
    """Three confluent-kafka ShareConsumers on a one-partition topic: every one is assigned
    partition 0 (share groups put several members on one partition)."""
    create_topic(share_broker, topic_name, 1)
    group = f"{topic_name}-g"
    consumers = []
    try:
        for i in range(3):
            c = ShareConsumer({"bootstrap.servers": share_broker.bootstrap, "group.id": group,
                               "client.id": f"confluent-share-{i}"})
            c.subscribe([topic_name])
            consumers.append(c)
        deadline = time.monotonic() + TIMEOUT_S
        described = None
        while time.monotonic() < deadline:
            for c in consumers:
                try:
                    c.poll(0.1)
                except Exception:  # noqa: BLE001 (ShareFetch may not be served: the group is what is checked)
                    pass
            [described] = share_tool(share_broker, ["describe", group])
            members = described.get("members", [])
            if len(members) == 3 and all(m["partitions"] for m in members):
                break
        else:
            pytest.fail(f"three assigned members never seen: {described}")
        assert described["state"] == "Stable"
        assert sorted(m["client_id"] for m in described["members"]) == [f"confluent-share-{i}" for i in range(3)]
        for m in described["members"]:
            assert m["partitions"] == [[topic_name, 0]], m
    finally:
        for c in consumers:
            c.close()


def test_java_admin_alters_lists_and_deletes_share_group_offsets(share_broker, share_tool, topic_name):
    """The Admin client's alterShareGroupOffsets / listShareGroupOffsets /
    deleteShareGroupOffsets (kafka-share-groups.sh --reset-offsets, --describe,
    --delete-offsets): an empty group's start offset is set and read back; while a member is
    in the group both changes are refused (GroupNotEmptyException) and the offset stays; once
    it left, the topic's share state is deleted and no longer listed."""
    create_topic(share_broker, topic_name, 2)
    group = f"{topic_name}-g"
    altered, listed, _, busy_alter, busy_delete, _, kept, deleted, after = share_tool(
        share_broker,
        ["alter", group, topic_name, 1, 5],
        ["offsets", group],
        ["join", group, topic_name, 3000],
        ["alter", group, topic_name, 1, 0],
        ["delete-offsets", group, topic_name],
        ["leave"],
        ["offsets", group],
        ["delete-offsets", group, topic_name],
        ["offsets", group],
    )
    assert altered == {"altered": group}, altered
    assert [r[:3] for r in listed["offsets"]] == [[topic_name, 1, 5]], listed
    assert busy_alter.get("error") == "GroupNotEmptyException", busy_alter
    assert busy_delete.get("error") == "GroupNotEmptyException", busy_delete
    # The member's share fetches may have given partition 0 state; partition 1 kept offset 5.
    assert [topic_name, 1, 5] in [r[:3] for r in kept["offsets"]], kept
    assert deleted == {"deleted_offsets": topic_name}, deleted
    assert [r for r in after["offsets"] if r[0] == topic_name] == [], after


def test_share_offsets_of_an_unknown_or_another_types_group(share_broker, share_tool, topic_name):
    """As Kafka 4.2's group coordinator: alterShareGroupOffsets / deleteShareGroupOffsets of
    a consumer group's id fail with GroupIdNotFoundException ("is not a share group") and
    change nothing; deleteShareGroupOffsets of an unknown group fails the same way; an
    alter of an unknown group makes it an empty share group (KAFKA-19662), listed as Share
    and Empty, with its offset set."""
    create_topic(share_broker, topic_name, 1)
    consumer_group = f"{topic_name}-cg"
    consumer = Consumer({"bootstrap.servers": share_broker.bootstrap, "group.id": consumer_group,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic_name, 0, 1)], asynchronous=False)
    finally:
        consumer.close()
    unknown = f"{topic_name}-unknown"
    fresh = f"{topic_name}-fresh"
    alter_cg, delete_cg, delete_unknown, made, listed, offsets = share_tool(
        share_broker,
        ["alter", consumer_group, topic_name, 0, 0],
        ["delete-offsets", consumer_group, topic_name],
        ["delete-offsets", unknown, topic_name],
        ["alter", fresh, topic_name, 0, 0],
        ["list"],
        ["offsets", fresh],
    )
    assert alter_cg.get("error") == "GroupIdNotFoundException", alter_cg
    # The Java Admin wraps the broker's message in its own ("Failed altering group offsets
    # for the following partitions: ..."); the exception class carries the answer.
    assert delete_cg.get("error") == "GroupIdNotFoundException", delete_cg
    assert delete_unknown.get("error") == "GroupIdNotFoundException", delete_unknown
    assert made == {"altered": fresh}, made
    shares = {g["group_id"]: g for g in listed["groups"]}
    assert shares.get(fresh) == {"group_id": fresh, "state": "Empty", "type": "Share"}, listed
    assert consumer_group not in shares and unknown not in shares, listed
    assert [r[:3] for r in offsets["offsets"]] == [[topic_name, 0, 0]], offsets
