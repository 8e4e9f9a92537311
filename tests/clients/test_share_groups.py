"""Share groups (KIP-932) with confluent-kafka's ShareConsumer and the Java client's
KafkaShareConsumer (tests/clients/java/ShareMember.java) against the real broker:
three consumers share a one-partition topic and together get every record exactly once
under ACCEPT; RELEASE redelivers up to the delivery count limit and REJECT archives at once;
a consumer stalled with records acquired has them redelivered after the lock duration; a
broker restart keeps acknowledged records acknowledged.

The group's start offset is set to 0 with AlterShareGroupOffsets (raw protocol, below)
before the consumers start, so records produced first are delivered whatever
`share.auto.offset.reset` says. These tests need ShareGroupHeartbeat (the share group
coordinator); until the broker advertises it they are expected failures (needs_api)."""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import AcknowledgeType, Producer, ShareConsumer

import kafka_wire
from conftest import TOOLS
from group_fixtures import create_topic
from share_fixtures import java_start_offset, share_tool  # noqa: F401 (fixture)

kafka_wire.API_KEYS.update({"ShareGroupHeartbeat": 76, "ShareFetch": 78, "ShareAcknowledge": 79})

pytestmark = pytest.mark.needs_api("ShareGroupHeartbeat", "ShareFetch", "ShareAcknowledge")

LOCK_MS = 3000
DELIVERY_LIMIT = 3
# Kafka's 30 s locks, so that a slow poll on a loaded machine does not redeliver anything in
# the exactly-once tests; the killed-consumer test uses LOCK_MS.
SHARE_ARGS = [
    "--override", "group.share.min.session.timeout.ms=6000",
    "--override", "group.share.session.timeout.ms=6000",
    "--override", "group.share.min.heartbeat.interval.ms=500",
    "--override", "group.share.heartbeat.interval.ms=500",
    "--override", f"group.share.delivery.count.limit={DELIVERY_LIMIT}",
    "--override", "share.coordinator.state.topic.num.partitions=3",
    "--override", "strom.log.durability=sync-on-commit",
]


def _uvarint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _compact_str(s):
    data = s.encode()
    return _uvarint(len(data) + 1) + data


def alter_share_offsets(bootstrap, group, topic, partition, start_offset, timeout_s=30):
    """AlterShareGroupOffsets v0 (API 91, flexible) for one partition; returns the
    (top-level, partition) error codes. Retries while the broker answers retriably."""
    host, port = bootstrap.rsplit(":", 1)
    body = (
        _compact_str(group)
        + _uvarint(2)
        + _compact_str(topic)
        + _uvarint(2)
        + struct.pack(">iq", partition, start_offset)
        + b"\x00"  # partition tags
        + b"\x00"  # topic tags
        + b"\x00"  # request tags
    )
    client_id = b"share-test"
    header = struct.pack(">hhih", 91, 0, 7, len(client_id)) + client_id + b"\x00"
    frame = header + body
    deadline = time.monotonic() + timeout_s
    while True:
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(struct.pack(">i", len(frame)) + frame)
            size = struct.unpack(">i", kafka_wire._read_exact(s, 4))[0]
            resp = kafka_wire._read_exact(s, size)
        # correlation id, header tags, throttle, error code.
        pos = 4 + 1 + 4
        top_error = struct.unpack(">h", resp[pos:pos + 2])[0]
        pos += 2
        msg_len = resp[pos]
        pos += 1 + max(msg_len - 1, 0)
        part_error = None
        if resp[pos] > 1:  # one topic
            pos += 1
            name_len = resp[pos]
            pos += 1 + name_len - 1 + 16
            pos += 1  # partitions count
            part_error = struct.unpack(">h", resp[pos + 4:pos + 6])[0]
        if (top_error, part_error) in ((0, 0),) or time.monotonic() > deadline:
            return top_error, part_error
        time.sleep(0.2)


def produce(bootstrap, topic, count, start=0):
    acked = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "log_level": 0})
    for i in range(start, start + count):
        p.produce(topic, value=f"v{i}".encode(), partition=0,
                  on_delivery=lambda err, msg: acked.append(msg.offset()) if err is None else None)
    assert p.flush(30) == 0
    assert len(acked) == count
    return sorted(acked)


def consumer(bootstrap, group, topic, explicit=False):
    c = ShareConsumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "share.acknowledgement.mode": "explicit" if explicit else "implicit",
        "log_level": 0,
    })
    c.subscribe([topic])
    return c


def poll_records(c, timeout_s=1.0):
    out = []
    for m in c.poll(timeout_s):
        if m.error() is None:
            out.append(m)
    return out


def java_helper(name, *args):
    """The command line running the Java helper `name` (tests/clients/java/<name>.java)."""
    classes, libs = TOOLS / "java-classes", TOOLS / "java-libs"
    if not (classes / f"{name}.class").is_file():
        pytest.fail("Java helper not compiled: run scripts/setup-clients")
    java = shutil.which("java") or "java"
    return [java, "-cp", f"{classes}{os.pathsep}{libs}/*", name, *args]


def test_three_consumers_share_a_partition_and_get_every_record_once(make_broker, topic_name):
    b = make_broker(SHARE_ARGS)
    create_topic(b, topic_name, 1)
    group = f"sg-{topic_name}"
    assert alter_share_offsets(b.bootstrap, group, topic_name, 0, 0) == (0, 0)
    offsets = produce(b.bootstrap, topic_name, 300)
    consumers = [consumer(b.bootstrap, group, topic_name) for _ in range(3)]
    seen = {}
    try:
        deadline = time.monotonic() + 90
        while len(seen) < 300 and time.monotonic() < deadline:
            for i, c in enumerate(consumers):
                for m in poll_records(c, 0.5):
                    assert m.offset() not in seen, f"offset {m.offset()} delivered twice"
                    seen[m.offset()] = (i, m.value())
        # A few more polls: implicit acknowledgements go out, nothing may come again.
        for _ in range(3):
            for c in consumers:
                for m in poll_records(c, 0.5):
                    pytest.fail(f"offset {m.offset()} delivered again after ACCEPT")
    finally:
        for c in consumers:
            c.close()
    assert sorted(seen) == offsets
    assert all(v == f"v{o}".encode() for o, (_, v) in seen.items())


def test_release_redelivers_to_the_limit_and_reject_archives(make_broker, topic_name):
    b = make_broker(SHARE_ARGS)
    create_topic(b, topic_name, 1)
    group = f"sg-{topic_name}"
    assert alter_share_offsets(b.bootstrap, group, topic_name, 0, 0) == (0, 0)
    produce(b.bootstrap, topic_name, 10)
    c = consumer(b.bootstrap, group, topic_name, explicit=True)
    deliveries = {}
    try:
        deadline = time.monotonic() + 90
        # Even offsets are released every time, odd ones rejected at once.
        while time.monotonic() < deadline:
            got = poll_records(c, 1.0)
            for m in got:
                deliveries.setdefault(m.offset(), []).append(m.delivery_count())
                c.acknowledge(m, AcknowledgeType.RELEASE if m.offset() % 2 == 0 else AcknowledgeType.REJECT)
            if got:
                c.commit_sync()
            done = all(len(deliveries.get(o, [])) == (DELIVERY_LIMIT if o % 2 == 0 else 1) for o in range(10))
            if done and not got:
                break
        # Quiet for a while: archived records never come back.
        quiet_until = time.monotonic() + 5
        while time.monotonic() < quiet_until:
            for m in poll_records(c, 0.5):
                pytest.fail(f"offset {m.offset()} delivered after it was archived")
    finally:
        c.close()
    for o in range(10):
        expected = list(range(1, DELIVERY_LIMIT + 1)) if o % 2 == 0 else [1]
        assert deliveries.get(o) == expected, (o, deliveries.get(o))


KILLED_CONSUMER = """
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
time.sleep(600)
"""


def test_stalled_consumer_records_come_back_after_the_lock(make_broker, topic_name):
    """A consumer stopped (SIGSTOP: its connection stays open, so its share session lives)
    with records acquired: they come back once the lock runs out, not before. (A consumer
    whose connection closes gives them up at once: test_share_group_configs.py.)"""
    b = make_broker(SHARE_ARGS + ["--override", f"group.share.record.lock.duration.ms={LOCK_MS}"])
    create_topic(b, topic_name, 1)
    group = f"sg-{topic_name}"
    assert alter_share_offsets(b.bootstrap, group, topic_name, 0, 0) == (0, 0)
    offsets = produce(b.bootstrap, topic_name, 20)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_CONSUMER, b.bootstrap, group, topic_name],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        held = [int(o) for o in line.split()]
        assert held, "the first consumer got nothing"
        proc.send_signal(signal.SIGSTOP)
        c = consumer(b.bootstrap, group, topic_name, explicit=True)
        redelivered = {}
        try:
            deadline = time.monotonic() + 60
            while len(redelivered) < len(offsets) and time.monotonic() < deadline:
                for m in poll_records(c, 1.0):
                    redelivered[m.offset()] = (m.delivery_count(), time.monotonic())
                    c.acknowledge(m, AcknowledgeType.ACCEPT)
                c.commit_sync()
        finally:
            c.close()
    finally:
        proc.kill()
        proc.wait(timeout=15)
    assert sorted(redelivered) == offsets
    for o in held:
        count, at = redelivered[o]
        assert count == 2, (o, count)
        # Not before the killed consumer's lock ran out: it acquired them after `started`.
        assert at - started >= LOCK_MS / 1000, (o, at - started)


def test_restart_keeps_acknowledged_records_acknowledged(make_broker, topic_name):
    b = make_broker(SHARE_ARGS)
    create_topic(b, topic_name, 1)
    group = f"sg-{topic_name}"
    assert alter_share_offsets(b.bootstrap, group, topic_name, 0, 0) == (0, 0)
    produce(b.bootstrap, topic_name, 50)
    c = consumer(b.bootstrap, group, topic_name, explicit=True)
    accepted = set()
    try:
        deadline = time.monotonic() + 60
        while len(accepted) < 30 and time.monotonic() < deadline:
            for m in poll_records(c, 1.0):
                if m.offset() < 30:
                    c.acknowledge(m, AcknowledgeType.ACCEPT)
                    accepted.add(m.offset())
                else:
                    c.acknowledge(m, AcknowledgeType.RELEASE)
            c.commit_sync()
    finally:
        c.close()
    assert accepted == set(range(30))
    b.stop()
    b.start()
    produce(b.bootstrap, topic_name, 10, start=50)
    c = consumer(b.bootstrap, group, topic_name)
    seen = set()
    try:
        deadline = time.monotonic() + 60
        while len(seen) < 30 and time.monotonic() < deadline:
            for m in poll_records(c, 1.0):
                assert m.offset() not in accepted, f"acknowledged offset {m.offset()} delivered after the restart"
                seen.add(m.offset())
    finally:
        c.close()
    assert seen == set(range(30, 60))


# A Java member stops IDLE_MS after the last record it got; a member that got nothing is
# ended (its stdin closed) once every record was delivered and no member got one for as long.
IDLE_MS = 8000


def test_three_java_consumers_share_a_partition_and_get_every_record_once(make_broker, topic_name, share_tool):
    """Three KafkaShareConsumer processes (implicit acknowledgement) on one partition: every
    record reaches exactly one of them, once, and the group's start offset ends past them
    all (every record acknowledged: none is left to come again once a lock runs out)."""
    b = make_broker(SHARE_ARGS)
    create_topic(b, topic_name, 1)
    group = f"sg-{topic_name}"
    assert alter_share_offsets(b.bootstrap, group, topic_name, 0, 0) == (0, 0)
    offsets = produce(b.bootstrap, topic_name, 600)
    procs = [
        subprocess.Popen(java_helper("ShareMember", b.bootstrap, group, topic_name, str(IDLE_MS), "100", "stdin"),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for _ in range(3)
    ]
    # What each member printed, line by line, and when any member last got a record.
    lines = [[] for _ in procs]
    polled, last_record = set(), [time.monotonic()]
    lock = threading.Lock()

    def read(i, p):
        for line in p.stdout:
            lines[i].append(line)
            if line.startswith('{"polled"'):
                with lock:
                    polled.update(o for o, _ in json.loads(line)["polled"])
                    last_record[0] = time.monotonic()

    readers = [threading.Thread(target=read, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for t in readers:
        t.start()
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            with lock:
                done = polled >= set(offsets) and time.monotonic() - last_record[0] >= IDLE_MS / 1000
            if done:
                break
            time.sleep(0.2)
        for p in procs:
            if p.poll() is None:
                p.stdin.close()
        for p in procs:
            p.wait(timeout=60)
            assert p.returncode == 0
        for t in readers:
            t.join(timeout=15)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=15)
    received = [json.loads(member[-1])["records"] for member in lines]
    all_offsets = [o for records in received for o, _ in records]
    assert sorted(all_offsets) == offsets, "every record once, none twice"
    assert all(count == 1 for records in received for _, count in records)
    assert java_start_offset(share_tool, b, group, topic_name, offsets[-1] + 1) == offsets[-1] + 1


# KafkaShareConsumer's default close timeout is 30 s: a close that waits for it means some
# request of the close sequence (ShareAcknowledge with session epoch -1, then the leaving
# ShareGroupHeartbeat) was not answered as the client expects.
CLOSE_BOUND_MS = 10_000


@pytest.mark.parametrize("mode,idle_ms", [("commit", 2000), ("implicit", 2000), ("implicit", 0), ("explicit", 0)])
def test_java_consumer_closes_promptly_after_receiving_records(make_broker, topic_name, mode, idle_ms):
    """A KafkaShareConsumer that received records closes well within its close timeout:
    after polling on idly (its acknowledgements sent with the next ShareFetch, which is then
    answered with nothing acquired) and committing (commit) or not (implicit), or right after
    the poll that got them, unacknowledged (implicit with no idle time: the 4.x client's close
    sends its final ShareAcknowledge without acknowledgements; explicit: none made), which
    close releases. A second consumer then gets exactly the records the first did not
    acknowledge."""
    b = make_broker(SHARE_ARGS)
    create_topic(b, topic_name, 1)
    group = f"sg-{topic_name}"
    assert alter_share_offsets(b.bootstrap, group, topic_name, 0, 0) == (0, 0)
    offsets = produce(b.bootstrap, topic_name, 10)
    out = subprocess.run(java_helper("ShareCloser", b.bootstrap, group, topic_name, mode, "10", str(idle_ms), "60"),
                         capture_output=True, text=True, timeout=150)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["records"], "the consumer received records before closing"
    assert set(result["records"]) <= set(offsets)
    assert result["close_ms"] < CLOSE_BOUND_MS, f"close() took {result['close_ms']} ms"
    # What close left behind: acknowledged records are gone, released ones come back. When
    # nothing should come back, the second consumer polls for 3 s to see that nothing does.
    acknowledged = set(result["records"]) if idle_ms > 0 else set()
    expected = set(offsets) - acknowledged
    c = consumer(b.bootstrap, group, topic_name)
    seen = set()
    try:
        deadline = time.monotonic() + (30 if expected else 3)
        while time.monotonic() < deadline and not (expected and seen >= expected):
            seen.update(m.offset() for m in poll_records(c))
    finally:
        c.close()
    assert seen == expected
