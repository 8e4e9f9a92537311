"""Group configs (ConfigResource type GROUP, what `kafka-configs.sh --entity-type groups`
does) through the Java Admin client, and their effect on share consumers: a group whose
`share.auto.offset.reset` is `earliest` reads a topic from its start with confluent-kafka's
ShareConsumer, while a group without it starts at the end. Also: a share consumer that
leaves (closes) or dies with records acquired gives them up at once, well before the
record lock would expire. A topic deleted and created again under the same name starts
afresh for a share group, at its `share.auto.offset.reset`."""

import subprocess
import sys
import time

import pytest
from confluent_kafka import AcknowledgeType, KafkaError, KafkaException

from group_fixtures import create_topic
from share_fixtures import share_tool  # noqa: F401 (fixture)
from test_share_groups import SHARE_ARGS, consumer, poll_records, produce

pytestmark = pytest.mark.needs_api("ShareGroupHeartbeat", "ShareFetch", "ShareAcknowledge")

GROUP_SOURCE = "DYNAMIC_GROUP_CONFIG"
DEFAULT_SOURCE = "DEFAULT_CONFIG"


def test_group_configs_set_described_refused_listed_and_kept_over_a_restart(make_broker, share_tool, topic_name):
    b = make_broker(SHARE_ARGS)
    group = f"cfg-{topic_name}"
    (set_reset, set_lock, described, listed, unknown, too_short, bad_reset, bad_level,
     hb_over_session) = share_tool(
        b,
        ["config-set", group, "share.auto.offset.reset", "earliest"],
        ["config-set", group, "share.record.lock.duration.ms", "20000"],
        ["config-describe", group],
        ["config-list"],
        ["config-set", group, "no.such.key", "1"],
        ["config-set", group, "share.record.lock.duration.ms", "1000"],
        ["config-set", group, "share.auto.offset.reset", "sometimes"],
        ["config-set", group, "share.isolation.level", "dirty"],
        ["config-set", group, "share.heartbeat.interval.ms", "6000"],
    )
    assert set_reset == {"altered": group}
    assert set_lock == {"altered": group}
    configs = described["configs"]
    assert configs["share.auto.offset.reset"] == {"value": "earliest", "source": GROUP_SOURCE, "read_only": False}
    assert configs["share.record.lock.duration.ms"]["value"] == "20000"
    assert configs["share.record.lock.duration.ms"]["source"] == GROUP_SOURCE
    # Unset keys show the broker's value as the default.
    assert configs["share.isolation.level"] == {"value": "read_uncommitted", "source": DEFAULT_SOURCE, "read_only": False}
    assert configs["share.session.timeout.ms"] == {"value": "6000", "source": DEFAULT_SOURCE, "read_only": False}
    assert set(configs) == {
        "consumer.session.timeout.ms", "consumer.heartbeat.interval.ms", "share.session.timeout.ms",
        "share.heartbeat.interval.ms", "share.record.lock.duration.ms", "share.auto.offset.reset",
        "share.isolation.level", "streams.session.timeout.ms", "streams.heartbeat.interval.ms",
        "streams.num.standby.replicas",
    }
    assert group in listed["groups"]
    for refused, says in [
        (unknown, "Unknown group config name: no.such.key"),
        (too_short, "group.share.min.record.lock.duration.ms"),
        (bad_reset, "share.auto.offset.reset"),
        (bad_level, "read_committed"),
        (hb_over_session, "share.session.timeout.ms must be greater than share.heartbeat.interval.ms"),
    ]:
        assert refused["error"] == "InvalidConfigurationException", refused
        assert says in refused["message"], refused
    # Durable: the metadata log keeps them over a restart; a deleted key is the default again.
    b.stop()
    b.start()
    described, deleted, after = share_tool(
        b,
        ["config-describe", group],
        ["config-delete", group, "share.record.lock.duration.ms"],
        ["config-describe", group],
    )
    assert described["configs"]["share.record.lock.duration.ms"]["value"] == "20000"
    assert deleted == {"altered": group}
    assert after["configs"]["share.record.lock.duration.ms"]["source"] == DEFAULT_SOURCE
    assert after["configs"]["share.auto.offset.reset"]["value"] == "earliest"


def test_share_auto_offset_reset_earliest_as_a_group_config(make_broker, share_tool, topic_name):
    """Records produced before any consumer joined: the group configured `earliest` gets all
    of them; a group left at Kafka's default (latest) gets none of them, only what comes
    after it started."""
    b = make_broker(SHARE_ARGS)
    create_topic(b, topic_name, 1)
    early = produce(b.bootstrap, topic_name, 20)
    configured, plain = f"early-{topic_name}", f"late-{topic_name}"
    (altered,) = share_tool(b, ["config-set", configured, "share.auto.offset.reset", "earliest"])
    assert altered == {"altered": configured}
    c = consumer(b.bootstrap, configured, topic_name)
    seen = set()
    try:
        deadline = time.monotonic() + 60
        while len(seen) < len(early) and time.monotonic() < deadline:
            seen.update(m.offset() for m in poll_records(c, 0.5))
    finally:
        c.close()
    assert sorted(seen) == early

    other = consumer(b.bootstrap, plain, topic_name)
    got = set()
    try:
        # Joined and fetching (its share partition starts at the end) before the new records.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got.update(m.offset() for m in poll_records(other, 0.5))
        later = produce(b.bootstrap, topic_name, 5, start=20)
        deadline = time.monotonic() + 60
        while not set(later) <= got and time.monotonic() < deadline:
            got.update(m.offset() for m in poll_records(other, 0.5))
    finally:
        other.close()
    assert got == set(later), "a latest group sees only what came after it started"



def test_a_topic_deleted_and_created_again_starts_at_the_reset_offset(make_broker, share_tool, topic_name):
    """A share group (share.auto.offset.reset=earliest) accepts 20 records of a topic, which
    is then deleted and created again under the same name with 5 new records: a new share
    consumer of the group reads all 5 from offset 0 (the reset), not from the deleted topic's
    share-partition start offset (20), and nothing more."""
    from confluent_kafka.admin import AdminClient

    b = make_broker(SHARE_ARGS)
    group = f"sg-{topic_name}"
    (altered,) = share_tool(b, ["config-set", group, "share.auto.offset.reset", "earliest"])
    assert altered == {"altered": group}
    create_topic(b, topic_name, 1)
    first = produce(b.bootstrap, topic_name, 20)
    c = consumer(b.bootstrap, group, topic_name, explicit=True)
    seen = set()
    try:
        deadline = time.monotonic() + 60
        while len(seen) < len(first) and time.monotonic() < deadline:
            for m in poll_records(c, 0.5):
                c.acknowledge(m, AcknowledgeType.ACCEPT)
                seen.add(m.offset())
            c.commit_sync()
    finally:
        c.close()
    assert sorted(seen) == first
    deadline = time.monotonic() + 30
    while True:
        [offsets] = share_tool(b, ["offsets", group])
        starts = {(t, p): start for t, p, start, _ in offsets["offsets"]}
        if starts.get((topic_name, 0)) == 20 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert starts.get((topic_name, 0)) == 20, offsets

    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.delete_topics([topic_name], operation_timeout=30)[topic_name].result(timeout=30)
    deadline = time.monotonic() + 30
    while True:
        try:
            create_topic(b, topic_name, 1)
            break
        except Exception:  # TOPIC_ALREADY_EXISTS while the deletion is still under way
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    second = produce(b.bootstrap, topic_name, 5)
    assert second == list(range(5))
    c = consumer(b.bootstrap, group, topic_name)
    got = []
    try:
        deadline = time.monotonic() + 60
        while len(got) < len(second) and time.monotonic() < deadline:
            got.extend(m.offset() for m in poll_records(c, 0.5))
        # A little longer: nothing else may come.
        for _ in range(4):
            got.extend(m.offset() for m in poll_records(c, 0.5))
    finally:
        c.close()
    assert sorted(got) == second, got


HOLDER = """
import sys, time
from confluent_kafka import ShareConsumer
c = ShareConsumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
                   "share.acknowledgement.mode": "explicit", "log_level": 0})
c.subscribe([sys.argv[3]])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    got = [m for m in c.poll(1.0) if m.error() is None]
    if got:
        print(" ".join(str(m.offset()) for m in got), flush=True)
        break
if sys.argv[4] == "close":
    c.close()
    print("closed", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("how", ["close", "kill"])
def test_a_departed_consumers_records_come_back_at_once(make_broker, share_tool, topic_name, how):
    """A share consumer holds records without acknowledging them, then closes (its share
    session and group membership end) or is killed (its connection drops): another consumer
    gets them well before the group's 60 s record lock would run out, delivered a second
    time."""
    b = make_broker(SHARE_ARGS + ["--override", "group.share.max.record.lock.duration.ms=60000"])
    create_topic(b, topic_name, 1)
    group = f"dep-{topic_name}"
    share_tool(b, ["config-set", group, "share.auto.offset.reset", "earliest"],
               ["config-set", group, "share.record.lock.duration.ms", "60000"])
    offsets = produce(b.bootstrap, topic_name, 20)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, b.bootstrap, group, topic_name, how],
                            stdout=subprocess.PIPE, text=True)
    try:
        held = [int(o) for o in proc.stdout.readline().split()]
        assert held, "the first consumer got nothing"
        if how == "close":
            assert proc.stdout.readline().strip() == "closed"
        else:
            proc.kill()
            proc.wait(timeout=15)
        departed = time.monotonic()
        c = consumer(b.bootstrap, group, topic_name, explicit=True)
        redelivered = {}
        try:
            deadline = time.monotonic() + 40
            while len(redelivered) < len(offsets) and time.monotonic() < deadline:
                for m in poll_records(c, 0.5):
                    redelivered[m.offset()] = (m.delivery_count(), time.monotonic() - departed)
                    c.acknowledge(m, AcknowledgeType.ACCEPT)
                c.commit_sync()
        finally:
            c.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=15)
    assert sorted(redelivered) == offsets
    for o in held:
        count, after_s = redelivered[o]
        assert count == 2, (o, count)
        assert after_s < 40, (o, after_s)


def test_read_committed_share_group_skips_aborted_and_waits_for_open_transactions(make_broker, share_tool, topic_name):
    """With `share.isolation.level=read_committed` set on the group: of a transaction that
    aborted then one that committed, only the committed records are delivered; records of
    a transaction still open are held back (the last stable offset) until it commits."""
    from confluent_kafka import Producer

    b = make_broker(SHARE_ARGS)
    create_topic(b, topic_name, 1)
    group = f"rc-{topic_name}"
    share_tool(b, ["config-set", group, "share.auto.offset.reset", "earliest"],
               ["config-set", group, "share.isolation.level", "read_committed"])
    delivered = {}

    def on_delivery(err, msg):
        if err is None:
            delivered[msg.value()] = msg.offset()

    p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": f"tx-{topic_name}", "log_level": 0})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic_name, value=f"aborted-{i}".encode(), partition=0, on_delivery=on_delivery)
    p.flush(30)
    p.abort_transaction(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic_name, value=f"committed-{i}".encode(), partition=0, on_delivery=on_delivery)
    p.commit_transaction(30)
    committed = sorted(o for v, o in delivered.items() if v.startswith(b"committed"))
    assert len(committed) == 5

    c = consumer(b.bootstrap, group, topic_name)
    got = {}
    try:
        deadline = time.monotonic() + 60
        while len(got) < 5 and time.monotonic() < deadline:
            for m in poll_records(c, 0.5):
                got[m.offset()] = m.value()
        # An open transaction: nothing of it comes while it is open.
        p.begin_transaction()
        for i in range(3):
            p.produce(topic_name, value=f"open-{i}".encode(), partition=0, on_delivery=on_delivery)
        p.flush(30)
        quiet_until = time.monotonic() + 4
        while time.monotonic() < quiet_until:
            for m in poll_records(c, 0.5):
                got[m.offset()] = m.value()
        assert not any(v.startswith(b"open") for v in got.values()), "records of an open transaction delivered"
        p.commit_transaction(30)
        deadline = time.monotonic() + 60
        while len(got) < 8 and time.monotonic() < deadline:
            for m in poll_records(c, 0.5):
                got[m.offset()] = m.value()
    finally:
        c.close()
    assert sorted(got) == committed + sorted(o for v, o in delivered.items() if v.startswith(b"open"))
    assert not any(v.startswith(b"aborted") for v in got.values()), "aborted records delivered"


def test_share_consumers_need_read_on_each_topic(make_broker, share_tool, topic_name):
    """With ACLs (`allow.everyone.if.no.acl.found=true`) denying User:ANONYMOUS READ (but
    allowing DESCRIBE) on a topic: a confluent-kafka share consumer joins but gets none of
    its records (ShareFetch answers the partition TOPIC_AUTHORIZATION_FAILED, audited),
    while a topic without ACLs serves it as before. A DENY on DESCRIBE of a subscribed topic
    fails the share group heartbeat itself (Kafka 4.2's check): the Java
    KafkaShareConsumer's poll throws TopicAuthorizationException. (Not tested: one consumer
    subscribed to both topics. With librdkafka 2.12 it got no records of either and no
    error surfaced; whether the client or this broker's answer causes that is not known
    yet.)"""
    from test_acls import acl, acl_tool as _unused, authorizer_args  # noqa: F401
    import os
    import shutil

    from conftest import TOOLS, run_tool

    b = make_broker(SHARE_ARGS + authorizer_args("allow.everyone.if.no.acl.found=true"))
    allowed, denied, hidden = f"ok-{topic_name}", f"no-{topic_name}", f"hid-{topic_name}"
    for t in (allowed, denied, hidden):
        create_topic(b, t, 1)
    ok_offsets = produce(b.bootstrap, allowed, 10)
    produce(b.bootstrap, denied, 10)
    group = f"acl-{topic_name}"
    share_tool(b, ["config-set", group, "share.auto.offset.reset", "earliest"])
    cp = f"{TOOLS / 'java-classes'}{os.pathsep}{TOOLS / 'java-libs'}/*"
    java = shutil.which("java") or "java"
    created = run_tool([java, "-cp", cp, "AclTool", "create", b.bootstrap, "-",
                        acl("TOPIC", "LITERAL", denied, "User:ANONYMOUS", "*", "READ", "DENY"),
                        # With an ACL on the topic, DESCRIBE (which the heartbeat needs) must
                        # be allowed explicitly.
                        acl("TOPIC", "LITERAL", denied, "User:ANONYMOUS", "*", "DESCRIBE", "ALLOW"),
                        acl("TOPIC", "LITERAL", hidden, "User:ANONYMOUS", "*", "DESCRIBE", "DENY")],
                       "java AclTool create")
    assert created["results"] == [None, None, None]

    # The readable topic serves a confluent-kafka share consumer as before.
    c = consumer(b.bootstrap, group, allowed)
    seen = set()
    try:
        deadline = time.monotonic() + 45
        while len(seen) < len(ok_offsets) and time.monotonic() < deadline:
            seen.update(m.offset() for m in poll_records(c, 0.5))
    finally:
        c.close()
    assert sorted(seen) == ok_offsets

    # The topic without READ: the share consumer joins (DESCRIBE is allowed) and fetches,
    # and gets none of its 10 records.
    # librdkafka may surface the partition's TOPIC_AUTHORIZATION_FAILED from poll (it does
    # since ShareFetch answers such a partition with empty, not null, records, as Kafka).
    c = consumer(b.bootstrap, group, denied)
    leaked = []
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                leaked.extend(m.offset() for m in poll_records(c, 0.5))
            except KafkaException as e:
                assert e.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, e
    finally:
        c.close()
    assert leaked == [], "records of a topic without READ delivered"
    (describe_denied,) = share_tool(b, ["join", f"{group}-hidden", hidden, 4000])
    assert "TopicAuthorizationException" in describe_denied["poll_errors"], describe_denied
    log = b.log_path.read_text(errors="replace")
    assert any("strom::audit" in line and "api=ShareFetch" in line and denied in line and "operation=READ" in line
               for line in log.splitlines()), "no audit line for the denied ShareFetch"
    assert any("strom::audit" in line and "api=ShareGroupHeartbeat" in line and hidden in line
               for line in log.splitlines()), "no audit line for the denied heartbeat"
