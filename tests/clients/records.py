"""The records every client produces, and the check that what came back is exactly that.

Records are dicts: key (bytes), value (bytes), headers (list of (str, bytes)). On the wire
to the Java and JS helper programs bytes travel as base64.
"""

import base64
import random

import pytest

from partitioner import default_partition

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]

# The codecs for tests that check librdkafka's batches really are compressed. librdkafka
# turns LZ4 on only when the broker advertises FindCoordinator v0 (its feature map dates LZ4
# support by that API); without it, lz4 batches silently go uncompressed.
COMPRESSED_CODECS = ["gzip", "snappy", pytest.param("lz4", marks=pytest.mark.needs_api("FindCoordinator")), "zstd"]
PARTITIONS = 3


def sample_keys(text_only=False):
    """Keys of many lengths (every murmur2 tail length) and, unless text_only, high bytes."""
    keys = [b"k", b"ab", b"key", b"user-1", b"user-22", b"order:333", b"a-little-bit-long-string"]
    keys += [f"id-{i:04d}".encode() for i in range(5)]
    if not text_only:
        keys += [b"\x00", b"\xff\xfe", b"\x80\x81\x82", bytes(range(250, 256)), "zürich-€".encode()]
    return keys


def record_set(tag, count=24, text_only=False, seed=7):
    """Deterministic keyed records with headers; text_only keeps to printable ASCII (kcat)."""
    rng = random.Random(f"{tag}/{seed}")
    keys = sample_keys(text_only)
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!?"
    out = []
    for i in range(count):
        size = rng.choice([1, 7, 100, 1000, 5000])
        if text_only:
            value = bytes(rng.choice(alphabet) for _ in range(size))
        else:
            value = bytes(rng.getrandbits(8) for _ in range(size))
        # Compressible tail so codecs have something to do.
        value += f"|{tag}|{i:05d}|".encode() * 8
        hval = f"h{i}-{tag}".encode() if text_only else bytes([i % 256, 0, 255]) + tag.encode()
        out.append(
            {
                "key": keys[i % len(keys)],
                "value": value,
                "headers": [("trace-id", f"t-{i}".encode()), ("origin", hval)],
            }
        )
    return out


def b64(b):
    return None if b is None else base64.b64encode(b).decode()


def unb64(s):
    return None if s is None else base64.b64decode(s)


def from_json(rec):
    """A consumed record from a helper program's JSON (base64 fields) to the common shape."""
    return {
        "partition": rec["partition"],
        "offset": rec["offset"],
        "key": unb64(rec["key"]),
        "value": unb64(rec["value"]),
        "headers": [(unb64(k).decode(), unb64(v)) for k, v in rec["headers"]],
    }


def check_consumed(produced, consumed, partitions=PARTITIONS):
    """Every produced record came back once, byte for byte, in the default partitioner's
    partition, in produce order within each partition, at increasing offsets."""
    assert len(consumed) == len(produced), f"consumed {len(consumed)} records, produced {len(produced)}"
    for p in range(partitions):
        want = [r for r in produced if default_partition(r["key"], partitions) == p]
        got = sorted((r for r in consumed if r["partition"] == p), key=lambda r: r["offset"])
        offsets = [r["offset"] for r in got]
        assert len(set(offsets)) == len(offsets), f"partition {p}: duplicate offsets {offsets}"
        assert len(got) == len(want), f"partition {p}: got {len(got)} records, expected {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            where = f"partition {p} record {i} (offset {g['offset']})"
            assert g["key"] == w["key"], f"{where}: key {g['key']!r} != {w['key']!r}"
            assert g["value"] == w["value"], f"{where}: value differs ({len(g['value'])} vs {len(w['value'])} bytes)"
            assert list(map(tuple, g["headers"])) == list(w["headers"]), f"{where}: headers {g['headers']!r} != {w['headers']!r}"


def check_acks(produced, acks, partitions=PARTITIONS):
    """The producer's acknowledgements put every keyed record where Java's partitioner would."""
    assert len(acks) == len(produced)
    for r, (partition, _offset) in zip(produced, acks):
        assert partition == default_partition(r["key"], partitions), f"key {r['key']!r} acked in partition {partition}"
