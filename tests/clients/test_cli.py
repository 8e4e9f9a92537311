"""The `strom` command line client against other clients: records that `strom produce` writes
(keys, headers, partitions, every codec) are read back exactly by kcat and the Java consumer,
and records that kcat and the Java producer write are printed exactly by `strom consume`.
The CLI under test is the same binary as the broker ($STROM_BIN)."""

import base64
import json
import re
import subprocess

import pytest

from conftest import strom_binary
from kcat_client import consume as kcat_consume
from partitioner import default_partition
from records import CODECS, PARTITIONS, check_consumed, record_set
from test_java import create as java_create
from test_java import produce as java_produce

TIMEOUT_S = 60
HEADERS = [("trace-id", b"cli-1"), ("origin", b"strom=cli")]


def strom(broker, args, stdin=b""):
    """Runs `strom ARGS --bootstrap-server BROKER`; returns stdout, failing on a non-zero exit."""
    cmd = [str(strom_binary())] + [str(a) for a in args] + ["--bootstrap-server", broker.bootstrap]
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"strom {' '.join(map(str, args[:2]))} timed out; stderr: {(e.stderr or b'')[-2000:]!r}")
    if proc.returncode != 0:
        pytest.fail(f"strom {' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-3000:]}")
    return proc.stdout


def strom_produce(broker, topic, records, *extra):
    """Produces text records as `key<TAB>value` lines with HEADERS on every record."""
    lines = b"".join(r["key"] + b"\t" + r["value"] + b"\n" for r in records)
    args = ["produce", topic, "--key-separator", "\t", *extra]
    for k, v in HEADERS:
        args += ["--header", f"{k}={v.decode()}"]
    strom(broker, args, stdin=lines)


def strom_consume_json(broker, topic, count):
    """Every record of the topic through `strom consume --output json`, in the common shape."""
    out = strom(broker, ["consume", topic, "--from-beginning", "--max-messages", count,
                         "--timeout-ms", 15000, "--output", "json", "--quiet"])
    records = []
    for line in out.decode().splitlines():
        m = json.loads(line)
        assert m["topic"] == topic
        records.append({
            "partition": m["partition"],
            "offset": m["offset"],
            "key": field(m, "key"),
            "value": field(m, "value"),
            "headers": [(h["key"], field(h, "value")) for h in m["headers"]],
        })
    return records


def field(obj, name):
    """A JSON bytes field: text as a string, other bytes under NAME_base64."""
    if obj.get(f"{name}_base64") is not None:
        return base64.b64decode(obj[f"{name}_base64"])
    return None if obj[name] is None else obj[name].encode()


def with_headers(records, headers):
    return [dict(r, headers=list(headers)) for r in records]


def create(broker, topic, partitions=PARTITIONS):
    strom(broker, ["topics", "create", topic, "--partitions", partitions])


@pytest.mark.parametrize("codec", CODECS)
def test_strom_produce_is_read_by_kcat(broker, kcat, topic_name, codec):
    create(broker, topic_name)
    records = with_headers(record_set(f"cli-{codec}", text_only=True), HEADERS)
    strom_produce(broker, topic_name, records, "--compression", codec)
    check_consumed(records, kcat_consume(kcat, broker.bootstrap, topic_name))


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_strom_produce_is_read_by_java(broker, java_tool, topic_name, codec):
    create(broker, topic_name)
    records = with_headers(record_set(f"cli-java-{codec}", text_only=True), HEADERS)
    strom_produce(broker, topic_name, records, "--compression", codec, "--acks", "1")
    out = java_tool(["consume", broker.bootstrap, topic_name, len(records), 30000])
    consumed = [
        {
            "partition": r["partition"],
            "offset": r["offset"],
            "key": base64.b64decode(r["key"]),
            "value": base64.b64decode(r["value"]),
            "headers": [(base64.b64decode(k).decode(), base64.b64decode(v)) for k, v in r["headers"]],
        }
        for r in out["records"]
    ]
    check_consumed(records, consumed)


def test_strom_produce_to_one_partition_and_without_keys(broker, kcat, topic_name):
    create(broker, topic_name)
    strom(broker, ["produce", topic_name, "--partition", 2], stdin=b"one\ntwo\nthree\n")
    got = kcat_consume(kcat, broker.bootstrap, topic_name)
    assert [(r["partition"], r["offset"], r["key"], r["value"]) for r in got] == [
        (2, 0, None, b"one"), (2, 1, None, b"two"), (2, 2, None, b"three")]


def test_kcat_records_are_printed_by_strom(broker, kcat, topic_name):
    create(broker, topic_name)
    records = record_set("kcat-to-cli", text_only=True)
    lines = b"".join(r["key"] + b"\t" + r["value"] + b"\n" for r in records)
    subprocess.run([kcat, "-P", "-b", broker.bootstrap, "-t", topic_name, "-K", "\t",
                    "-X", "partitioner=murmur2_random", "-H", "trace-id=kcat", "-H", "origin=kcat"],
                   input=lines, check=True, timeout=TIMEOUT_S, capture_output=True)
    expected = with_headers(records, [("trace-id", b"kcat"), ("origin", b"kcat")])
    check_consumed(expected, strom_consume_json(broker, topic_name, len(records)))
    # The kcat-like format prints the same records as text.
    out = strom(broker, ["consume", topic_name, "--from-beginning", "--max-messages", len(records),
                         "--format", "%p|%k|%s|%h\\n", "--quiet"])
    printed = sorted(out.decode().splitlines())
    want = sorted(f"{default_partition(r['key'], PARTITIONS)}|{r['key'].decode()}|{r['value'].decode()}"
                  "|trace-id=kcat,origin=kcat" for r in records)
    assert printed == want


@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_java_records_are_printed_by_strom(broker, java_tool, topic_name, codec):
    java_create(java_tool, broker, topic_name)
    records = record_set(f"java-to-cli-{codec}")  # binary keys, values and header values
    java_produce(java_tool, broker, topic_name, records, codec)
    check_consumed(records, strom_consume_json(broker, topic_name, len(records)))


def run_on_terminal(broker, args, timeout_s=TIMEOUT_S):
    """Runs `strom ARGS` with stdout and stderr on a pseudo-terminal, as a person would;
    returns (exit code, everything it drew)."""
    import os
    import pty
    import select
    import time

    master, slave = pty.openpty()
    cmd = [str(strom_binary())] + [str(a) for a in args] + ["--bootstrap-server", broker.bootstrap]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    drawn = b""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the terminal closed: the process has exited
                    break
                if not chunk:
                    break
                drawn += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, drawn.decode(errors="replace")


def test_progress_bar_with_a_rate_on_a_terminal_and_not_when_quiet(broker, topic_name, tmp_path):
    """A large produce from a file and a long consume draw a progress bar with a rate on a
    terminal; --quiet draws none, and neither changes what is produced or printed."""
    create(broker, topic_name, partitions=1)
    records = 20_000
    path = tmp_path / "lines.txt"
    path.write_bytes(b"".join(b"record-%06d\n" % i for i in range(records)))
    code, drawn = run_on_terminal(broker, ["produce", topic_name, "--file", path])
    assert code == 0, drawn[-2000:]
    # The bytes bar: "<done>/<total> (<rate>/s)" as indicatif draws it, then the summary.
    assert "/s)" in drawn and "B/" in drawn, drawn[-2000:]
    assert f"Produced {records} records" in drawn, drawn[-2000:]
    code, drawn = run_on_terminal(broker, ["produce", topic_name, "--file", path, "--quiet"])
    assert code == 0 and "/s)" not in drawn, drawn[-2000:]
    code, drawn = run_on_terminal(broker, ["consume", topic_name, "--from-beginning",
                                           "--max-messages", records, "--format", "", ])
    assert code == 0, drawn[-2000:]
    assert f"/{records} (" in drawn and "/s)" in drawn, drawn[-2000:]
    rates = re.findall(r"/%d \((\d+)/s\)" % records, drawn)
    assert rates and int(rates[-1]) > 0, drawn[-2000:]
    end = strom(broker, ["consume", topic_name, "--offset", "-1", "--max-messages", 1, "--quiet"])
    assert end == b"record-%06d\n" % (records - 1)
