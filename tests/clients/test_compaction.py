"""Compacted topics read from the beginning by every client, for every codec.

One broker (cleaner every 100 ms) holds one compacted topic per codec with small segments.
Each topic gets rounds that overwrite the same keys (so whole batches are compacted away),
the first rounds from one idempotent producer and the last from another (with a tombstone
for one key), then two unique "pad" records that push the last round out of the active
segment. The fixture waits, on the segment files themselves, until the cleaner has merged
the segments, left only the latest record per key (the tombstone gone after
delete.retention.ms) and kept at least one zero-record batch (the first producer's last
batch, kept empty as Kafka keeps it), every such batch the 61-byte uncompressed header.
Then kcat, confluent-kafka, the Java client, kafka-python and kafkajs each read every
topic from the beginning and must get exactly the latest value per key: no crash, no hang.

Before the fix, a batch compacted to nothing kept its codec bits and an empty compressed
payload, on which librdkafka aborts (gzip, lz4, zstd) or hangs (snappy), and segments
never merged (a topic ended as dozens of one-batch segments)."""

import base64
import hashlib
import os
import struct
import time
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

import kcat_client
import test_confluent_kafka as ck
import test_java
import test_kafka_python as kp
from conftest import Broker, strom_binary
from records import CODECS, from_json

SEGMENT_BYTES = 2048
KEYS = 8
ROUNDS = 30
# Each round's values are distinct SHA-512 hex digests: at least 4 bits of entropy per
# character, so no codec stores a round in less than KEYS * 64 bytes plus a 61-byte header,
# and one segment never held more than this many rounds before the cleaner merged segments.
# (A round also writes key "gone", which the last round deletes.)
ROUNDS_PER_SEGMENT_MAX = SEGMENT_BYTES // (KEYS * 64 + 61)
PER_ROUND = KEYS + 1
PAD_CHARS = 1850
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
COMPACTION_TIMEOUT_S = 90
READ_TIMEOUT_S = 30


def value(codec, round_, key):
    return hashlib.sha512(f"{codec}/{round_}/{key}".encode()).hexdigest().encode()


def pad(codec, i):
    # Base64 of random bytes: text (kcat prints payloads as text) that hardly compresses.
    return base64.b64encode(os.urandom(PAD_CHARS * 3 // 4))[:PAD_CHARS]


def produce(bootstrap, topic, codec, rounds, pads=()):
    """Each round (and each pad) in a batch of its own, from one idempotent producer."""
    p = Producer({"bootstrap.servers": bootstrap, "compression.codec": codec, "enable.idempotence": True,
                  "linger.ms": 5, "message.timeout.ms": READ_TIMEOUT_S * 1000})
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)

    for records in list(rounds) + [[r] for r in pads]:
        for key, val in records:
            p.produce(topic, key=key, value=val, on_delivery=on_delivery)
        assert p.flush(READ_TIMEOUT_S) == 0, f"{topic}: records undelivered"
    assert not errors, f"{topic}: delivery errors {errors[:3]}"


def round_records(codec, r):
    """KEYS keyed records, and key "gone" (deleted by a tombstone in the last round)."""
    records = [(f"key-{k}".encode(), value(codec, r, k)) for k in range(KEYS)]
    return records + [(b"gone", None if r == ROUNDS - 1 else value(codec, r, "gone"))]


def disk_batches(broker, topic):
    """{segment file name: [(base offset, last offset, batch length, attributes, record count)]}."""
    seg_dir = broker.data_dir / "data" / f"{topic}-0"
    out = {}
    for f in sorted(seg_dir.glob("*.log")):
        data = f.read_bytes()
        batches, pos = [], 0
        while pos + 61 <= len(data):
            base, length = struct.unpack_from(">qi", data, pos)
            (attributes, last_delta) = struct.unpack_from(">hi", data, pos + 21)
            (count,) = struct.unpack_from(">i", data, pos + 57)
            batches.append((base, base + last_delta, length, attributes, count))
            pos += 12 + length
        out[f.name] = batches
    return out


def compaction_state(broker, topic, codec):
    """Why the topic is not compacted as wanted yet (None once it is)."""
    try:
        segments = disk_batches(broker, topic)
    except OSError as e:  # a swap renamed a file under us: look again
        return f"reading segments: {e}"
    batches = [b for bs in segments.values() for b in bs]
    # The latest record per key, both pads, and no tombstone: delete.retention.ms (100 ms)
    # after the pass that first kept it, a later pass dropped it.
    records = sum(b[4] for b in batches)
    if records != KEYS + 2:
        return f"{records} records on disk, want {KEYS + 2}: {len(segments)} segments"
    if len(segments) > 3:
        return f"{len(segments)} segments"
    first = segments.get(f"{0:020}.log", [])
    if not any(b[0] >= PER_ROUND * ROUNDS_PER_SEGMENT_MAX for b in first):
        return f"first segment not merged: {first}"
    empty = [b for b in batches if b[4] == 0]
    # The first producer's last batch: all its records superseded, kept (empty) for its
    # sequence and epoch, as Kafka keeps an active producer's last batch.
    if not any(b[1] == (ROUNDS - 1) * PER_ROUND - 1 for b in empty):
        return f"no zero-record batch for the first producer: {empty}"
    # Settled; anything else is a failure, not a wait.
    for base, _, length, attributes, _ in empty:
        assert length == 49 and attributes & 0x07 == 0, (
            f"{topic}: zero-record batch at {base} has length {length}, attributes {attributes:#x};"
            " Kafka writes a 61-byte uncompressed header")
    for base, _, _, attributes, count in batches:
        # The rounds really are compressed (librdkafka sends a batch that does not shrink,
        # such as a pad, uncompressed).
        if count > 0 and base < ROUNDS * PER_ROUND:
            assert attributes & 0x07 == CODEC_IDS[codec], f"{topic}: batch at {base} attributes {attributes:#x}"
    return None


@pytest.fixture(scope="module")
def compacted():
    """The broker and, per codec, the compacted topic and its expected records."""
    broker = Broker(strom_binary(), ["--override", "log.cleaner.backoff.ms=100"])
    broker.start()
    try:
        admin = ck.admin(broker)
        topics = {codec: f"compacted-{codec}-{uuid.uuid4().hex[:8]}" for codec in CODECS}
        config = {"cleanup.policy": "compact", "segment.bytes": str(SEGMENT_BYTES),
                  "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "0",
                  "delete.retention.ms": "100"}
        futures = admin.create_topics([NewTopic(t, 1, 1, config=config) for t in topics.values()],
                                      operation_timeout=READ_TIMEOUT_S, request_timeout=READ_TIMEOUT_S)
        for f in futures.values():
            f.result(timeout=READ_TIMEOUT_S)
        expected = {}
        for codec, topic in topics.items():
            produce(broker.bootstrap, topic, codec, [round_records(codec, r) for r in range(ROUNDS - 1)])
            pads = [(f"pad-{i}".encode(), pad(codec, i)) for i in range(2)]
            produce(broker.bootstrap, topic, codec, [round_records(codec, ROUNDS - 1)], pads)
            expected[codec] = round_records(codec, ROUNDS - 1)[:KEYS] + pads
        deadline = time.monotonic() + COMPACTION_TIMEOUT_S
        waiting = dict(topics)
        why = {}
        while waiting and time.monotonic() < deadline:
            for codec, topic in list(waiting.items()):
                why[codec] = compaction_state(broker, topic, codec)
                if why[codec] is None:
                    del waiting[codec]
            if waiting:
                time.sleep(0.2)
        assert not waiting, f"not compacted after {COMPACTION_TIMEOUT_S}s: {why}\n{broker.log_tail()}"
        yield broker, topics, expected
    finally:
        broker.stop()
        broker.cleanup()
        broker.log_path.unlink(missing_ok=True)


def check_latest(got, want, client, codec):
    """Exactly the latest value per key, in offset order."""
    offsets = [r["offset"] for r in got]
    assert offsets == sorted(set(offsets)), f"{client}/{codec}: offsets {offsets}"
    assert [(r["key"], r["value"]) for r in got] == want, (
        f"{client}/{codec}: got keys {[r['key'] for r in got]}")


def read_kcat(kcat, broker, topic, count):
    return kcat_client.consume(kcat, broker.bootstrap, topic)


def read_confluent(broker, topic, count):
    return ck.consume(broker, topic, count, partitions=1)


def read_kafka_python(broker, topic, count):
    return kp.consume(broker, topic, count, partitions=1)


def read_java(java_tool, broker, topic, count):
    return test_java.consume(java_tool, broker, topic, count)


def read_kafkajs(js_tool, broker, topic, count):
    out = js_tool({"op": "consume", "bootstrap": broker.bootstrap, "topic": topic, "count": count,
                   "groupId": f"g-{topic}-{uuid.uuid4().hex[:6]}", "timeoutMs": READ_TIMEOUT_S * 1000})
    return [from_json(r) for r in out["records"]]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", ["kcat", "confluent-kafka", "java", "kafka-python", "kafkajs"])
def test_compacted_topic_reads_latest_per_key(compacted, client, codec, request):
    broker, topics, expected = compacted
    topic, want = topics[codec], expected[codec]
    # Count-bounded readers stop at len(want) records; any stale record left below the last
    # one would be among them, so an exact comparison still catches it.
    if client == "kcat":
        got = read_kcat(request.getfixturevalue("kcat"), broker, topic, len(want))
    elif client == "confluent-kafka":
        got = read_confluent(broker, topic, len(want))
    elif client == "java":
        got = read_java(request.getfixturevalue("java_tool"), broker, topic, len(want))
    elif client == "kafka-python":
        got = read_kafka_python(broker, topic, len(want))
    else:
        got = read_kafkajs(request.getfixturevalue("js_tool"), broker, topic, len(want))
    check_latest(got, want, client, codec)
    assert broker.proc.poll() is None, f"strom exited:\n{broker.log_tail()}"
