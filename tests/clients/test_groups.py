"""Consumer groups with real clients (issue 5): members of different clients in one group
split a topic's partitions and each record reaches exactly one of them; a member killed
without leaving is evicted after its session timeout; a late joiner triggers a rebalance;
cooperative-sticky keeps unaffected partitions; static members come back without a
rebalance. Members are long-running processes (group_members.py) the tests drive."""

import threading
import time

import pytest
from confluent_kafka import Producer

from group_fixtures import (  # noqa: F401 (fixtures)
    PARTITIONS,
    SESSION_MS,
    group_admin,
    group_broker,
    members,
    produce_keyed,
    settle_s,
)
from group_members import Members, received_once, wait_records, wait_stable

TRIOS = [
    ("confluent", "kafka_python", "java"),
    ("kafkajs", "confluent", "java"),
    ("kafka_python", "kafkajs", "confluent"),
]


@pytest.mark.parametrize("kinds", TRIOS, ids=["-".join(t) for t in TRIOS])
def test_three_clients_split_partitions_each_record_once(members, group_broker, kinds):
    """Three members of different clients in one group on a 6-partition topic: once the
    group settles their partitions are disjoint and cover the topic; 10,000 records
    produced then are each received by exactly one member, the one owning its partition,
    with the key the producer sent at that offset."""
    ms = [members.start(kind, f"{kind}-{i}") for i, kind in enumerate(kinds)]
    owned = wait_stable(ms, PARTITIONS)
    start = time.monotonic()
    acked = produce_keyed(group_broker, members.topic, 10_000)
    wait_records(ms, len(acked), since=0.0, timeout_s=60)
    time.sleep(0.5)  # a duplicate arriving late would show now
    seen = received_once(ms)
    assert {k: v[1] for k, v in seen.items()} == acked
    for (p, _), (m, _) in seen.items():
        assert p in owned[m], f"{m} received partition {p} it does not own ({owned[m]})"
    # No rebalance happened while the records flowed.
    assert all(not m.changes(since=start) for m in ms), {m.name: m.changes(since=start) for m in ms}


@pytest.mark.needs_api("ConsumerGroupHeartbeat")
def test_three_java_consumer_protocol_members_split_partitions(members, group_broker, settle_s):
    """The same with the KIP-848 protocol (Java `group.protocol=consumer`, server-side
    assignment): disjoint full coverage, each of 10,000 records received exactly once."""
    ms = [members.start("java_consumer", f"java-consumer-{i}") for i in range(3)]
    owned = wait_stable(ms, PARTITIONS, timeout_s=settle_s)
    acked = produce_keyed(group_broker, members.topic, 10_000)
    wait_records(ms, len(acked), timeout_s=60)
    time.sleep(0.5)
    seen = received_once(ms)
    assert {k: v[1] for k, v in seen.items()} == acked
    for (p, _), (m, _) in seen.items():
        assert p in owned[m]


def commit_all(ms):
    for m in ms:
        m.commit()


def check_batch(ms, acked, since):
    """Every record of `acked` reached exactly one of ms after `since`, and nothing else did
    (no redelivery of records committed before)."""
    wait_records(ms, len(acked), since=since, timeout_s=60)
    time.sleep(0.5)
    seen = received_once(ms, since)
    assert {k: v[1] for k, v in seen.items()} == acked


EVICTIONS = [
    # (members at the start, index of the one killed, the late joiner)
    (("confluent", "kafka_python", "java"), 2, "kafkajs"),
    (("kafka_python", "confluent", "kafkajs"), 0, "java"),
]


def run_eviction(members, group_broker, kinds, victim_index, joiner, settle_timeout_s=60):
    ms = [members.start(kind, f"{kind}-{i}") for i, kind in enumerate(kinds)]
    before = wait_stable(ms, PARTITIONS, timeout_s=settle_timeout_s)
    check_batch(ms, produce_keyed(group_broker, members.topic, 600, "a"), 0.0)
    commit_all(ms)
    victim = ms.pop(victim_index)
    killed_at = time.monotonic()
    victim.kill()
    after = wait_stable(ms, PARTITIONS, timeout_s=SESSION_MS / 1000 + 20)
    moved_at = max(m.changes()[-1]["t"] for m in ms)
    # The victim sent its last heartbeat at most one heartbeat interval before the kill;
    # the coordinator may not evict it before its session timeout has passed since then.
    assert moved_at - killed_at >= SESSION_MS / 1000 - 1.0, f"evicted after {moved_at - killed_at:.1f}s"
    assert before[victim] <= set().union(*after.values())
    # Its partitions continue from its commits: the next records arrive once, none again.
    check_batch(ms, produce_keyed(group_broker, members.topic, 600, "b"), killed_at)
    commit_all(ms)
    joined_at = time.monotonic()
    ms.append(members.start(joiner, f"{joiner}-late"))
    final = wait_stable(ms, PARTITIONS, timeout_s=settle_timeout_s)
    assert final[ms[-1]], "the late joiner got no partitions"
    assert all(m.changes(since=joined_at) for m in ms[:-1]), "survivors saw no rebalance when a member joined"
    check_batch(ms, produce_keyed(group_broker, members.topic, 600, "c"), joined_at)
    return moved_at - killed_at


@pytest.mark.parametrize("kinds,victim_index,joiner", EVICTIONS,
                         ids=[f"kill-{k[v]}-join-{j}" for k, v, j in EVICTIONS])
def test_killed_member_evicted_after_session_timeout_then_joiner_rebalances(members, group_broker, kinds,
                                                                             victim_index, joiner):
    """A member killed with SIGKILL (no LeaveGroup) is evicted only once its 6 s session
    timeout has passed, and its partitions move to the survivors, which continue from its
    committed offsets (each new record received once, none redelivered). A member that
    joins later triggers a rebalance in which it gets partitions; records produced after
    that are each received once."""
    run_eviction(members, group_broker, kinds, victim_index, joiner)


@pytest.mark.needs_api("ConsumerGroupHeartbeat")
def test_java_consumer_protocol_member_killed_is_evicted(members, group_broker, settle_s):
    """The same with the KIP-848 protocol: the broker's group.consumer.session.timeout.ms
    (6000 here) evicts the killed member; a late member gets partitions."""
    run_eviction(members, group_broker, ("java_consumer",) * 3, 0, "java_consumer", settle_s)


def test_members_that_close_leave_at_once(members, group_broker):
    """Four members, one of each client. Each in turn closes (the client sends LeaveGroup)
    and the remaining members own every partition again well before a session timeout
    could have passed; records produced then reach the remaining members once each."""
    ms = [members.start(kind, f"{kind}-{i}") for i, kind in enumerate(("confluent", "kafka_python", "kafkajs", "java"))]
    wait_stable(ms, PARTITIONS)
    while len(ms) > 1:
        leaving = ms.pop()
        left_at = time.monotonic()
        leaving.close()
        wait_stable(ms, PARTITIONS, timeout_s=30, settle_s=0.5)
        moved_at = max(m.changes()[-1]["t"] for m in ms)
        assert moved_at - left_at < SESSION_MS / 1000 - 1.0, f"{leaving} left, partitions moved after {moved_at - left_at:.1f}s"
    check_batch(ms, produce_keyed(group_broker, members.topic, 600, "z"), 0.0)


def produce_steadily(broker, topic, stop, acked, rate_per_s=400):
    """Produces keyed records at about rate_per_s until `stop` is set; fills `acked`."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5, "log_level": 0,
                  "message.timeout.ms": 30000})

    def on_delivery(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.key().decode()

    i, start = 0, time.monotonic()
    while not stop.is_set() and time.monotonic() - start < 60:
        p.produce(topic, key=f"s{i}".encode(), value=b"v", partition=i % PARTITIONS, on_delivery=on_delivery)
        i += 1
        p.poll(0)
        ahead_s = i / rate_per_s - (time.monotonic() - start)
        if ahead_s > 0:
            time.sleep(ahead_s)
    p.flush(30)
    return i


@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_rebalances_under_load_deliver_each_record_once(members, group_broker, assignor):
    """While records are produced steadily, members join (Java, kafka-python, confluent)
    and leave (clean close) one after another, each committing what it received before it
    gives partitions up (in its revocation callback). Every record produced is received,
    and by exactly one member: no loss and no duplicate across five rebalances, eager
    (range) or incremental (cooperative-sticky)."""
    acked, stop = {}, threading.Event()
    producer = threading.Thread(target=produce_steadily, args=(group_broker, members.topic, stop, acked), daemon=True)
    members.defaults.update(commit_on_revoke=1, assignor=assignor)
    ms = [members.start("confluent", "load-confluent-0")]
    wait_stable(ms, PARTITIONS, settle_s=0.5)
    producer.start()
    try:
        for kind in ("java", "kafka_python", "confluent"):
            time.sleep(1.5)
            ms.append(members.start(kind, f"load-{kind}-{len(ms)}"))
            wait_stable(ms, PARTITIONS, settle_s=0.5)
        for leaving in (ms[0], ms[1]):
            time.sleep(1.5)
            leaving.close()
            wait_stable([m for m in ms if m.proc.poll() is None], PARTITIONS, settle_s=0.5)
    finally:
        stop.set()
        producer.join(60)
    assert len(acked) > 1000
    wait_records(ms, len(acked), timeout_s=60)
    time.sleep(1.0)
    seen = received_once(ms)
    assert {k: v[1] for k, v in seen.items()} == acked
    assert not [e for m in ms for e in m.errors()], {m.name: m.errors() for m in ms}


COOPERATIVE = [
    ("confluent", "java", "kafka_python"),
    # Known regression (December 2026, after the security/telemetry/transactions merges):
    # a kafka-python member joining a group a Java member leads often gets nothing within
    # 60 s (the Java leader keeps all partitions). Passed in one full run, failed in the
    # next and alone; under investigation. Not strict: a pass is reported as XPASS.
    pytest.param(
        ("java", "kafka_python", "confluent"),
        marks=pytest.mark.xfail(reason="known regression: kafka-python joiner under a Java leader", strict=False),
    ),
    ("kafka_python", "confluent", "java"),
]


def run_cooperative(members, first, joiner, settle_timeout_s=60, **opts):
    ms = [members.start(kind, f"{kind}-{i}", **opts) for i, kind in enumerate(first)]
    before = wait_stable(ms, PARTITIONS, timeout_s=settle_timeout_s)
    joined_at = time.monotonic()
    late = members.start(joiner, f"{joiner}-late", **opts)
    after = wait_stable(ms + [late], PARTITIONS, timeout_s=settle_timeout_s)
    given_up = set()
    for m in ms:
        revoked = {p for ev in m.changes(since=joined_at, kinds=("revoked", "lost")) for p in ev["partitions"]}
        assert not m.changes(since=joined_at, kinds=("lost",)), f"{m} lost partitions"
        assert after[m] <= before[m], f"{m} was given new partitions: {before[m]} -> {after[m]}"
        assert not revoked & after[m], f"{m} had {revoked & after[m]} revoked though it kept them"
        assert revoked == before[m] - after[m]
        given_up |= revoked
    assert after[late] == given_up, f"the joiner got {after[late]}, the others gave up {given_up}"
    assert len(after[late]) == PARTITIONS // (len(ms) + 1)


@pytest.mark.parametrize("kinds", COOPERATIVE, ids=["-".join(k if isinstance(k[0], str) else k.values[0]) for k in COOPERATIVE])
def test_cooperative_sticky_join_revokes_only_moved_partitions(members, kinds):
    """cooperative-sticky (librdkafka, Java CooperativeStickyAssignor, kafka-python): when a
    third member joins two that own 3 partitions each, each of the two gives up exactly the
    partitions that move to the joiner and never revokes (not even temporarily) the ones it
    keeps, and nobody gains a partition from anyone but the joiner."""
    run_cooperative(members, kinds[:2], kinds[2], assignor="cooperative-sticky")


@pytest.mark.needs_api("ConsumerGroupHeartbeat")
def test_consumer_protocol_join_revokes_only_moved_partitions(members, settle_s):
    """KIP-848 rebalances are incremental by design: a joiner takes partitions the others
    give up, and the others never revoke what they keep (uniform assignor)."""
    run_cooperative(members, ("java_consumer",) * 2, "java_consumer", settle_s, assignor="uniform")


STATIC = [
    # (members, index of the one restarted, how it goes away)
    (("java", "confluent", "java"), 1, "kill"),
    (("confluent", "java", "kafka_python"), 1, "close"),
]


@pytest.mark.parametrize("kinds,index,how", STATIC, ids=[f"{k[i]}-{h}" for k, i, h in STATIC])
def test_static_member_restart_gets_same_partitions_without_rebalance(members, group_broker, kinds, index, how):
    """Members with group.instance.id. One goes away without leaving (SIGKILL, or a clean
    close, which for a static member sends no LeaveGroup) and a new process with the same
    instance id starts within the session timeout: it gets the same partitions back, the
    other members see no revocation or assignment, their generation (the Java client's
    groupMetadata) does not change, and none follows when the old member id's session
    would have expired. Records produced after the restart each reach one member, from the
    commits made before it."""
    ms = [members.start(kind, f"{kind}-{i}", instance_id=f"instance-{i}") for i, kind in enumerate(kinds)]
    before = wait_stable(ms, PARTITIONS)
    generations = {m: m.status()["generation"] for m in ms}
    check_batch(ms, produce_keyed(group_broker, members.topic, 600, "a"), 0.0)
    commit_all(ms)
    old = ms[index]
    restarted_at = time.monotonic()
    old.kill() if how == "kill" else old.close()
    new = members.start(old.kind, f"{old.kind}-{index}-again", instance_id=f"instance-{index}")
    ms[index] = new
    new.wait_event(lambda e: e["ev"] == "assigned" and e["assignment"], what="its assignment")
    assert new.assignment() == before[old]
    # Past the old member id's session timeout: a rebalance that was going to come has come.
    time.sleep(SESSION_MS / 1000 + 1.5)
    others = [m for m in ms if m is not new]
    assert all(not m.changes(since=restarted_at) for m in others), {m.name: m.changes(since=restarted_at) for m in others}
    assert [c["ev"] for c in new.changes()] == ["assigned"], new.changes()
    for m in others:
        if generations[m] is not None:
            assert m.status()["generation"] == generations[m]
    if generations[old] is not None:
        assert new.status()["generation"] == generations[old]
    check_batch(ms, produce_keyed(group_broker, members.topic, 600, "b"), restarted_at)


@pytest.mark.needs_api("ConsumerGroupHeartbeat", "ConsumerGroupDescribe", "ListGroups", "DescribeGroups")
def test_classic_and_consumer_groups_coexist(members, group_broker, group_admin, settle_s):
    """A classic group (confluent + kafka-python) and a KIP-848 group (two Java members with
    group.protocol=consumer) read the same topic at once: each group receives every record
    exactly once. The Java Admin lists them with their types (Classic, Consumer) and
    describes the KIP-848 group (ConsumerGroupDescribe) with the members and assignments
    its members report."""
    classic = [members.start("confluent", "classic-confluent"), members.start("kafka_python", "classic-kafka-python")]
    modern = Members(members.bootstrap, members.topic, f"{members.group}-consumer", max_s=120)
    try:
        new = [modern.start("java_consumer", f"consumer-java-{i}") for i in range(2)]
        wait_stable(classic, PARTITIONS, timeout_s=settle_s)
        owned = wait_stable(new, PARTITIONS, timeout_s=settle_s)
        acked = produce_keyed(group_broker, members.topic, 1200, "x")
        for ms in (classic, new):
            check_batch(ms, acked, 0.0)
        listed, described = group_admin(group_broker, ["list"], ["describe", modern.group])
        types = {g["group_id"]: g["type"] for g in listed["groups"]}
        assert types.get(members.group) == "Classic" and types.get(modern.group) == "Consumer", types
        assert described["type"] == "Consumer" and described["state"] == "Stable", described
        by_client = {m["client_id"]: {p for _, p in m["partitions"]} for m in described["members"]}
        assert by_client == {m.name: owned[m] for m in new}
    finally:
        modern.stop_all()
