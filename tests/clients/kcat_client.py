"""Drives Debian's kcat (librdkafka 2.0.2): produce with per-invocation headers, consume as JSON."""

import json
import subprocess

import pytest

from records import record_set

TIMEOUT_S = 60
GROUP_SIZE = 6


def kcat_record_set(tag, count=24):
    """Text records for kcat; kcat sets headers per invocation, so records share them in groups."""
    records = record_set(tag, count=count, text_only=True)
    for i, r in enumerate(records):
        g = i // GROUP_SIZE
        r["headers"] = [("trace-id", f"group-{g}".encode()), ("origin", f"kcat-{tag}".encode())]
    return records


def run(kcat, args, stdin=None):
    try:
        proc = subprocess.run([kcat] + args, input=stdin, capture_output=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"kcat {' '.join(args[:2])} timed out after {TIMEOUT_S}s; stderr: {(e.stderr or b'')[-2000:]!r}")
    if proc.returncode != 0 or b"ERROR" in proc.stderr:
        pytest.fail(f"kcat {' '.join(args)} exited {proc.returncode}; stderr: {proc.stderr[-3000:].decode(errors='replace')}")
    return proc.stdout


def produce(kcat, bootstrap, topic, records, codec):
    for start in range(0, len(records), GROUP_SIZE):
        group = records[start : start + GROUP_SIZE]
        headers = group[0]["headers"]
        assert all(r["headers"] == headers for r in group)
        args = ["-P", "-b", bootstrap, "-t", topic, "-K", "\t", "-z", codec,
                # Java's partitioner (librdkafka's default hashes keys with CRC32).
                "-X", "partitioner=murmur2_random", "-X", "linger.ms=20"]
        for k, v in headers:
            args += ["-H", f"{k}={v.decode()}"]
        lines = b"".join(r["key"] + b"\t" + r["value"] + b"\n" for r in group)
        run(kcat, args, stdin=lines)


def consume(kcat, bootstrap, topic):
    out = run(kcat, ["-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-J", "-q",
                     "-X", "fetch.wait.max.ms=100"])
    records = []
    for line in out.decode().splitlines():
        m = json.loads(line)
        h = m.get("headers") or []
        records.append({
            "partition": m["partition"],
            "offset": m["offset"],
            "key": None if m["key"] is None else m["key"].encode(),
            "value": None if m["payload"] is None else m["payload"].encode(),
            "headers": [(h[i], h[i + 1].encode()) for i in range(0, len(h), 2)],
        })
    return records


def metadata(kcat, bootstrap, topic):
    return json.loads(run(kcat, ["-L", "-b", bootstrap, "-t", topic, "-J"]))
