"""Consumer-group tooling through admin clients (confluent-kafka's AdminClient and the Java
Admin): list groups with a state filter, describe members and assignments, lag per
partition (committed offset against the end offset from ListOffsets), delete a group and
delete offsets, with Kafka's errors for a group that is in use."""

import time

import pytest
from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from group_fixtures import (  # noqa: F401 (fixtures)
    PARTITIONS,
    group_admin,
    group_broker,
    members,
    produce_keyed,
    settle_s,
)
from group_members import Members, wait_records, wait_stable

TIMEOUT_S = 30


def setup_groups(members, group_broker, settle_timeout_s):
    """A Stable group (confluent + Java members) that committed 100 records a partition
    and received 10 more, and an Empty group (its confluent member committed 110 a
    partition and left)."""
    active = [members.start("confluent", "admin-confluent"), members.start("java", "admin-java")]
    owned = wait_stable(active, PARTITIONS, timeout_s=settle_timeout_s)
    produce_keyed(group_broker, members.topic, 600, "a")
    wait_records(active, 600)
    for m in active:
        m.commit()
    produce_keyed(group_broker, members.topic, 60, "b")
    wait_records(active, 660)
    empty = Members(group_broker.bootstrap, members.topic, f"{members.group}-empty", session_timeout_ms=6000,
                    heartbeat_interval_ms=500, max_s=120)
    try:
        m = empty.start("confluent", "admin-confluent-empty")
        wait_records([m], 660)
        assert m.commit() == {p: 110 for p in range(PARTITIONS)}
        m.close()
    finally:
        empty.stop_all()
    return active, owned, empty.group


def kafka_error(future):
    with pytest.raises(KafkaException) as e:
        future.result(timeout=TIMEOUT_S)
    return e.value.args[0].code()


@pytest.mark.needs_api("ListGroups", "DescribeGroups", "DeleteGroups", "OffsetDelete")
def test_group_tooling_with_confluent_and_java_admin(members, group_broker, group_admin, settle_s):
    """Both admin clients: list (all; Stable only; Empty only), describe (state, assignor,
    members with client id, host and the partitions each member itself reports), lag (100
    committed, 110 at the end of every partition), delete of the Stable group fails with
    NON_EMPTY_GROUP, offset delete of a subscribed topic fails with
    GROUP_SUBSCRIBED_TO_TOPIC; the Empty group's offsets and then the group itself delete,
    and once the members leave the other group deletes too."""
    active, owned, empty_group = setup_groups(members, group_broker, settle_s)
    group, topic = members.group, members.topic
    admin = AdminClient({"bootstrap.servers": group_broker.bootstrap})

    # list, with and without a state filter
    def listed(**kw):
        res = admin.list_consumer_groups(request_timeout=TIMEOUT_S, **kw).result(timeout=TIMEOUT_S)
        return {g.group_id: g.state for g in res.valid}

    everything = listed()
    assert everything.get(group) == ConsumerGroupState.STABLE
    assert everything.get(empty_group) == ConsumerGroupState.EMPTY
    stable = listed(states={ConsumerGroupState.STABLE})
    assert group in stable and empty_group not in stable
    empty = listed(states={ConsumerGroupState.EMPTY})
    assert empty_group in empty and group not in empty
    # describe
    by_client = {m.name: owned[m] for m in active}
    d = admin.describe_consumer_groups([group], request_timeout=TIMEOUT_S)[group].result(timeout=TIMEOUT_S)
    assert d.state == ConsumerGroupState.STABLE and d.partition_assignor == "range"
    assert {m.client_id: {tp.partition for tp in m.assignment.topic_partitions} for m in d.members} == by_client
    assert all(m.host.endswith("127.0.0.1") for m in d.members), [m.host for m in d.members]
    de = admin.describe_consumer_groups([empty_group], request_timeout=TIMEOUT_S)[empty_group].result(timeout=TIMEOUT_S)
    assert de.state == ConsumerGroupState.EMPTY and not de.members

    # lag: committed offsets against end offsets
    req = [ConsumerGroupTopicPartitions(group)]
    committed = admin.list_consumer_group_offsets(req, request_timeout=TIMEOUT_S)[group].result(timeout=TIMEOUT_S)
    committed = {tp.partition: tp.offset for tp in committed.topic_partitions if tp.topic == topic}
    ends = admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in range(PARTITIONS)},
                              request_timeout=TIMEOUT_S)
    ends = {tp.partition: f.result(timeout=TIMEOUT_S).offset for tp, f in ends.items()}
    assert committed == {p: 100 for p in range(PARTITIONS)}
    assert ends == {p: 110 for p in range(PARTITIONS)}

    # deleting what is in use fails
    assert kafka_error(admin.delete_consumer_groups([group], request_timeout=TIMEOUT_S)[group]) == KafkaError.NON_EMPTY_GROUP

    # The same through the Java Admin (one process for all), then the Empty group's offset
    # of partition 0 is deleted.
    (j_all, j_stable, j_empty, jd, jde, jlag, jdel, jdel_offsets, jdel_empty_offsets, jlag_empty) = group_admin(
        group_broker, ["list"], ["list", "Stable"], ["list", "Empty"], ["describe", group], ["describe", empty_group],
        ["lag", group], ["delete", group], ["delete-offsets", group, topic, 0],
        ["delete-offsets", empty_group, topic, 0], ["lag", empty_group])
    j_all = {g["group_id"]: g for g in j_all["groups"]}
    assert j_all[group]["state"] == "Stable" and j_all[empty_group]["state"] == "Empty"
    assert j_all[group]["type"] == "Classic" and j_all[group]["protocol"] == "consumer"
    j_stable = {g["group_id"] for g in j_stable["groups"]}
    assert group in j_stable and empty_group not in j_stable
    j_empty = {g["group_id"] for g in j_empty["groups"]}
    assert empty_group in j_empty and group not in j_empty
    assert jd["state"] == "Stable" and jd["assignor"] == "range", jd
    assert {m["client_id"]: {p for t, p in m["partitions"] if t == topic} for m in jd["members"]} == by_client
    assert sorted(m["member_id"] for m in jd["members"]) == sorted(m.member_id for m in d.members)
    assert jde["state"] == "Empty" and jde["members"] == [], jde
    assert sorted(jlag["partitions"]) == [[topic, p, 100, 110] for p in range(PARTITIONS)]
    assert jdel.get("error") == "GroupNotEmptyException", jdel
    assert jdel_offsets.get("error") == "GroupSubscribedToTopicException", jdel_offsets
    assert jdel_empty_offsets == {"deleted": [[topic, 0]]}, jdel_empty_offsets
    assert sorted(jlag_empty["partitions"]) == [[topic, p, 110, 110] for p in range(1, PARTITIONS)]

    # the Empty group deletes
    admin.delete_consumer_groups([empty_group], request_timeout=TIMEOUT_S)[empty_group].result(timeout=TIMEOUT_S)
    assert empty_group not in listed()
    [gone] = group_admin(group_broker, ["describe", empty_group])
    assert gone.get("error") == "GroupIdNotFoundException" or (gone.get("state") == "Dead" and not gone["members"]), gone

    # once its members leave, the other group deletes too (through the Java Admin)
    for m in active:
        m.close()
    deadline = time.monotonic() + TIMEOUT_S
    while listed().get(group) != ConsumerGroupState.EMPTY and time.monotonic() < deadline:
        time.sleep(0.2)
    assert group_admin(group_broker, ["delete", group]) == [{"deleted": group}]
    assert group not in listed()
