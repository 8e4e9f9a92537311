"""Disk trouble with real clients against the real binary.

A full disk: the broker's log dir and metadata dir are a small tmpfs (mounting needs root,
as the tests have in CI; a failed mount fails the test). Producers get KAFKA_STORAGE_ERROR,
every acknowledged record stays readable (kafka-python and kcat) and metadata and group
requests are answered while the disk is full, and once space is freed producing and
creating topics work again without a restart and nothing acknowledged is lost.

Damage in old segments: a flipped payload byte (while the broker runs), an inflated batch
length and a segment cut short (while it is stopped) are reported by the scrubber as ERROR
lines naming the file, the byte position, the offset range and what to do, counted
(`damage_reports`, and the scrub pass line's `damaged_batches`), within a bounded time; the
broker keeps serving the partition, and consumers of healthy ranges are unaffected.
"""

import os
import pathlib
import re
import shutil
import subprocess
import time
import urllib.request

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition

from confluent_kafka.admin import ConfigResource

from conftest import Broker, strom_binary

TIMEOUT_S = 60
TMPFS_BYTES = 24 * 1024 * 1024
# Room left for the broker when the test starts producing.
HEADROOM_BYTES = 3 * 1024 * 1024
VALUE_BYTES = 1024


def free_bytes(path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def fill(path: pathlib.Path, leave_bytes: int = 0):
    """Appends to the filler file until `leave_bytes` are left (0: until ENOSPC)."""
    with open(path, "ab") as f:
        chunk = b"\xaa" * 65536
        for _ in range(100_000):
            room = free_bytes(path.parent) - leave_bytes
            if leave_bytes and room <= 0:
                break
            try:
                f.write(chunk if not leave_bytes else chunk[: max(1, min(len(chunk), room))])
                f.flush()
            except OSError as e:
                if e.errno == 28:  # ENOSPC
                    break
                raise
        try:
            os.fsync(f.fileno())
        except OSError:
            pass


@pytest.fixture
def tmpfs_broker():
    """A broker whose log.dirs (and so metadata.log.dir) is a fresh tmpfs; the broker is
    stopped and the tmpfs unmounted afterwards, whatever happens."""
    binary = strom_binary()
    b = Broker(binary, ["--override", "log.segment.bytes=1048576"])
    mount_point = b.data_dir / "data"
    mount_point.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        shutil.rmtree(b.data_dir, ignore_errors=True)
        pytest.fail(
            f"cannot mount a tmpfs on {mount_point} (this test needs root, as in CI): "
            f"{mounted.stderr.decode(errors='replace').strip()}"
        )
    try:
        b.start()
        yield b, mount_point
    finally:
        b.stop()
        subprocess.run(["umount", str(mount_point)], capture_output=True)
        if os.path.ismount(mount_point):
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)
        if not os.environ.get("STROM_KEEP_LOG"):
            b.cleanup()
            b.log_path.unlink(missing_ok=True)


def producer(b, **extra):
    conf = {"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": False,
            "retries": 0, "message.timeout.ms": 20_000}
    conf.update(extra)
    return Producer(conf)


def produce_until_refused(b, topic, count_max):
    """Produces 1 KiB records until the broker answers KAFKA_STORAGE_ERROR; returns the
    acknowledged {offset: value} and the error codes seen."""
    p = producer(b)
    acked, errors = {}, []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err.code())
        else:
            acked[msg.offset()] = msg.value()

    for i in range(count_max):
        p.produce(topic, key=b"k%d" % i, value=(b"%08d" % i) * (VALUE_BYTES // 8), on_delivery=on_delivery)
        p.poll(0)
        if i % 200 == 199:
            p.flush(TIMEOUT_S)
            if errors:
                break
    p.flush(TIMEOUT_S)
    return acked, errors


def produce_one(b, topic, value):
    """One record with no retries: ("offset", its offset) or ("error", the error code)."""
    p = producer(b)
    result = []
    p.produce(topic, value=value,
              on_delivery=lambda err, msg: result.append(("error", err.code()) if err else ("offset", msg.offset())))
    p.flush(TIMEOUT_S)
    assert result, "no delivery report"
    return result[0]


def read_all(b, topic, start, end):
    """Every record of partition 0 from `start` below `end`, as {offset: value}, read by
    kafka-python without a group (a group's coordinator needs `__consumer_offsets`, whose
    creation waits for the metadata log while the disk is full)."""
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None, enable_auto_commit=False,
                      request_timeout_ms=TIMEOUT_S * 1000 + 1000, fetch_max_bytes=1 << 20)
    out = {}
    try:
        tp = KafkaTopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, start)
        deadline = time.monotonic() + TIMEOUT_S
        while len(out) < end - start and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=200).values():
                out.update({m.offset: m.value for m in records if m.offset < end})
        return out
    finally:
        c.close()


def kcat_read(kcat, b, topic, start, end):
    """Records of partition 0 from `start` below `end`, as {offset: value}, read by kcat's
    simple consumer (no group)."""
    args = [kcat, "-C", "-b", b.bootstrap, "-t", topic, "-p", "0", "-o", str(start), "-c", str(end - start),
            "-e", "-q", "-f", "%o %s\\n", "-X", "fetch.wait.max.ms=100", "-X", f"fetch.max.bytes={1 << 20}"]
    proc = subprocess.run(args, capture_output=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"kcat exited {proc.returncode}: {proc.stderr[-2000:]!r}"
    out = {}
    for line in proc.stdout.splitlines():
        offset, _, value = line.partition(b" ")
        out[int(offset)] = value
    return out


def create_topic(b, name, timeout_s=TIMEOUT_S):
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    futures = a.create_topics([NewTopic(name, 1, 1)], operation_timeout=timeout_s, request_timeout=timeout_s)
    futures[name].result(timeout=timeout_s + 5)


def test_full_disk_keeps_reads_and_metadata_and_resumes_without_restart(tmpfs_broker, topic_name, kcat):
    b, mount = tmpfs_broker
    create_topic(b, topic_name)
    filler = mount / "filler"
    fill(filler, leave_bytes=HEADROOM_BYTES)

    acked, errors = produce_until_refused(b, topic_name, count_max=50_000)
    assert KafkaError.KAFKA_STORAGE_ERROR in errors, f"errors seen: {set(errors)}"
    assert set(errors) <= {KafkaError.KAFKA_STORAGE_ERROR}, f"errors seen: {set(errors)}"
    assert len(acked) > 100, len(acked)
    # Every byte gone: the metadata log finds the disk full too.
    fill(filler)
    assert free_bytes(mount) < 65536
    assert produce_one(b, topic_name, b"while-full") == ("error", KafkaError.KAFKA_STORAGE_ERROR)

    # Topics created while full: their metadata record (larger than a page, so the Raft log
    # needs new space) cannot be stored; the request times out, the metadata node waits.
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    many = [f"{topic_name}-while-full-{i}" for i in range(40)]
    futures = a.create_topics([NewTopic(t, 1, 1) for t in many], operation_timeout=5, request_timeout=5)
    with pytest.raises(Exception):
        futures[many[0]].result(timeout=15)
    wait_for_log(b, r"WARN.*raft log in .*the disk is full.*the append waits")
    assert b.proc.poll() is None, f"broker died on a full disk:\n{b.log_tail()}"

    # Every acknowledged record reads back, in order, while the disk is full.
    end = max(acked) + 1
    assert sorted(acked) == list(range(end)), "acknowledged offsets are contiguous"
    assert read_all(b, topic_name, 0, end) == acked
    assert kcat_read(kcat, b, topic_name, 0, end) == acked
    # Metadata and group requests are answered, promptly (on connections of their own: the
    # one of the waiting CreateTopics serves its requests in order).
    started = time.monotonic()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    listed = admin.list_topics(timeout=10)
    assert listed.topics[topic_name].partitions[0].leader == 1
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
    described = admin.describe_configs([resource], request_timeout=10)[resource].result(timeout=15)
    assert described["cleanup.policy"].value == "delete"
    groups = admin.list_consumer_groups(request_timeout=10).result(timeout=15)
    assert groups.errors == [], groups.errors
    assert time.monotonic() - started < 20

    # Space is freed: writes resume without a restart.
    filler.unlink()
    deadline = time.monotonic() + TIMEOUT_S
    first = None
    while time.monotonic() < deadline:
        kind, result = produce_one(b, topic_name, b"after")
        if kind == "offset":
            first = result
            break
        assert result == KafkaError.KAFKA_STORAGE_ERROR, result
        time.sleep(0.5)
    assert first is not None, f"writes did not resume within {TIMEOUT_S}s:\n{b.log_tail()}"
    assert first == end, "the record after the disk was full follows the acknowledged ones"
    p = producer(b, retries=5)
    after = {}
    for i in range(500):
        p.produce(topic_name, value=b"after-%d" % i,
                  on_delivery=lambda err, msg: after.__setitem__(msg.offset(), msg.value()) if err is None else None)
    assert p.flush(TIMEOUT_S) == 0
    assert len(after) == 500
    everything = dict(acked)
    everything[first] = b"after"
    everything.update(after)
    assert read_all(b, topic_name, 0, max(everything) + 1) == everything
    assert kcat_read(kcat, b, topic_name, 0, max(everything) + 1) == everything

    # Topic creation works again, and the new topic takes records.
    other = topic_name + "-after"
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            create_topic(b, other, timeout_s=10)
            break
        except Exception as e:  # noqa: BLE001
            assert time.monotonic() < deadline, f"topic creation did not recover: {e}\n{b.log_tail()}"
            time.sleep(1)
    deadline = time.monotonic() + TIMEOUT_S
    while (result := produce_one(b, other, b"fresh")) != ("offset", 0):
        assert time.monotonic() < deadline, f"cannot produce to a new topic: {result}\n{b.log_tail()}"
        time.sleep(0.5)
    assert read_all(b, other, 0, 1) == {0: b"fresh"}
    # The topics whose creation waited for space were created once it returned.
    listed = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=TIMEOUT_S)
    assert set(many) <= set(listed.topics), sorted(set(many) - set(listed.topics))[:3]
    log = b.log_path.read_text(errors="replace")
    assert "disk full: the log is read-only" in log
    assert "disk space is back: the log takes writes again" in log
    assert "raft log: disk space is back; the waiting append went through" in log
    assert b.proc.poll() is None


# --- the scrubber -----------------------------------------------------------------------

SEGMENT_BYTES = 65536
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def segment_files(b, topic):
    return sorted((b.data_dir / "data" / f"{topic}-0").glob("*.log"))


def batch_positions(data):
    """(position, base offset, length) of each RecordBatch in a segment file."""
    out, pos = [], 0
    while pos + 12 <= len(data):
        base = int.from_bytes(data[pos:pos + 8], "big", signed=True)
        length = int.from_bytes(data[pos + 8:pos + 12], "big", signed=True)
        out.append((pos, base, length + 12))
        pos += length + 12
    return out


def wait_for_log(b, pattern, timeout_s=TIMEOUT_S):
    """Waits (bounded) until a line of the broker's log (colours stripped) matches
    `pattern`; returns it."""
    deadline = time.monotonic() + timeout_s
    regex = re.compile(pattern)
    while time.monotonic() < deadline:
        for line in ANSI.sub("", b.log_path.read_text(errors="replace")).splitlines():
            if regex.search(line):
                return line
        time.sleep(0.2)
    pytest.fail(f"no log line matching {pattern!r} within {timeout_s}s:\n{b.log_tail()}")


def test_scrubber_reports_damaged_old_segments_and_healthy_ranges_still_read(make_broker, topic_name, kcat):
    b = make_broker(["--override", "strom.log.scrub.interval.ms=300",
                     "--override", "strom.http.listeners=http://127.0.0.1:{http_port}"])
    http = f"http://127.0.0.1:{b.http_port}"
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(topic_name, 1, 1, config={"segment.bytes": str(SEGMENT_BYTES)})],
                    operation_timeout=TIMEOUT_S)[topic_name].result(timeout=TIMEOUT_S)
    p = producer(b, retries=5, **{"linger.ms": 0, "batch.num.messages": 20})
    produced = {}
    for i in range(1200):
        p.produce(topic_name, value=b"value-%06d-" % i + b"x" * 400,
                  on_delivery=lambda err, msg: produced.__setitem__(msg.offset(), msg.value()) if err is None else None)
        if i % 100 == 99:
            p.flush(TIMEOUT_S)
    assert p.flush(TIMEOUT_S) == 0 and len(produced) == 1200
    files = segment_files(b, topic_name)
    assert len(files) >= 8, [f.name for f in files]
    # A clean pass first: nothing is reported on intact segments.
    wait_for_log(b, r"INFO.*scrub pass done.*segments_scrubbed=[1-9].*damaged_batches=0 .*damage_reports=0")

    # While running: a flipped payload byte in the second segment, written in place (a
    # rewrite of the whole file would let the scrubber see it short for a moment).
    damaged = files[1]
    data = bytearray(damaged.read_bytes())
    pos, base, length = batch_positions(bytes(data))[1]
    data[pos + length - 10] ^= 0x01
    with open(damaged, "r+b") as f:
        f.seek(pos + length - 10)
        f.write(data[pos + length - 10:pos + length - 9])
    line = wait_for_log(b, rf"ERROR.*scrubber found a damaged partition log file "
                           rf".*{damaged.name} at byte {pos} \(offsets {base}\.\.=.*damage_reports=1")
    assert "CRC mismatch" in line and "keeps serving this partition" in line and "DeleteRecords" in line, line
    assert "restore" in line and "docs/FORMATS.md" in line, line
    wait_for_log(b, r"INFO.*scrub pass done.*damaged_batches=[1-9]")
    # ... and as metrics.
    with urllib.request.urlopen(f"{http}/metrics", timeout=TIMEOUT_S) as resp:
        scraped = resp.read().decode()
    values = {m.group(1): float(m.group(2))
              for m in re.finditer(r"^(strom_log_\w+) (\S+)$", scraped, re.M)}
    assert values["strom_log_damage_reports_total"] >= 1, values
    assert values["strom_log_scrub_damaged_batches_total"] >= 1, values
    assert values["strom_log_scrub_bytes_verified_total"] > 0, values
    assert values["strom_log_offline_damaged_partitions"] == 0, values
    # The broker keeps serving the partition: healthy ranges read back (the first segment,
    # and from the third segment on), and producing goes on.
    second, third = int(files[1].stem), int(files[2].stem)
    assert kcat_read(kcat, b, topic_name, 0, second) == {o: v for o, v in produced.items() if o < second}
    assert kcat_read(kcat, b, topic_name, third, 1200) == {o: v for o, v in produced.items() if o >= third}
    assert produce_one(b, topic_name, b"still-serving") == ("offset", 1200)
    assert damaged.read_bytes() == bytes(data), "the scrubber changed nothing"

    # Between stop and start: an inflated batch length, and a segment cut short.
    b.stop()
    inflated = files[3]
    data = bytearray(inflated.read_bytes())
    pos3, base3, _ = batch_positions(bytes(data))[2]
    length = int.from_bytes(data[pos3 + 8:pos3 + 12], "big")
    data[pos3 + 8:pos3 + 12] = (length + 1_000_000).to_bytes(4, "big")
    inflated.write_bytes(bytes(data))
    cut = files[5]
    data = cut.read_bytes()
    pos5, base5, length5 = batch_positions(data)[3]
    cut.write_bytes(data[: pos5 + length5 // 2])
    b.start()
    line = wait_for_log(b, rf"ERROR.*scrubber found a damaged partition log file .*{inflated.name} at byte {pos3} "
                           rf"\(offsets {base3}\.\.=")
    assert "does not fit" in line, line
    line = wait_for_log(b, rf"ERROR.*scrubber found a damaged partition log file .*{cut.name} at byte {pos5} "
                           rf"\(offsets {base5}\.\.=")
    assert "does not fit" in line, line

    # Consumers of healthy ranges are unaffected: the first segment, and from the seventh
    # segment to the end.
    assert read_all(b, topic_name, 0, second) == {o: v for o, v in produced.items() if o < second}
    healthy = int(files[6].stem)
    expected = {o: v for o, v in produced.items() if o >= healthy}
    expected[1200] = b"still-serving"
    assert read_all(b, topic_name, healthy, 1201) == expected
    assert b.proc.poll() is None
