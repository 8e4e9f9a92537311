"""The per-segment `.txnindex` (Kafka's transaction index) with real clients.

A transactional confluent-kafka producer writes many transactions, about half of them
aborted (a seeded choice), to one partition with small segments. Every `.log` on disk then
has its `.txnindex`, and the entries across them are exactly the aborted transactions: each
in the file of the segment holding its ABORT marker, naming the transaction's first offset
and its marker (markers and data read from the segment files). read_committed consumers of
confluent-kafka (librdkafka), kafka-python and the Java client see exactly the committed
values, read_uncommitted ones every value, up to the same end offset. The same holds after
a `kill -9` and a restart (recovery rescans the unsynced segments and the broker rebuilds
their indexes), and after a clean stop with every `.txnindex` file deleted, as in a data
directory written by a Strom from before the files: the broker rebuilds them from the log
rather than serving the aborted records as committed. Last, an entry in the middle of one
`.txnindex` is damaged while the broker is stopped (a marker offset that runs backwards, not
what a torn append leaves): the broker warns naming the file and rebuilds it from its segment,
as Kafka rebuilds a damaged index, instead of refusing the partition; the files then hold
exactly the entries they held before, and every client reads as before."""

import random
import struct
import time

from confluent_kafka import Producer

import test_confluent_kafka as ck
from test_compaction import disk_batches
from test_compat import compat_tool  # noqa: F401  (the Java helper fixture)
from test_transactions_log import read_confluent, read_kafka_python

TIMEOUT_S = 30
SEGMENT_BYTES = 4096
TRANSACTIONS = 40
RECORDS_PER_TRANSACTION = 3
CONTROL = 0x20
ENTRY_BYTES = 34


def segment_dir(broker, topic):
    return broker.data_dir / "data" / f"{topic}-0"


def txn_indexes(broker, topic):
    """{segment base offset: [(producer id, first offset, marker offset, last stable offset)]}
    from the `.txnindex` beside every `.log` (a missing one fails)."""
    out = {}
    for log in sorted(segment_dir(broker, topic).glob("*.log")):
        path = log.with_suffix(".txnindex")
        assert path.is_file(), f"{log.name} has no .txnindex"
        data = path.read_bytes()
        assert len(data) % ENTRY_BYTES == 0, f"{path.name}: {len(data)} bytes"
        entries = []
        for at in range(0, len(data), ENTRY_BYTES):
            version, producer_id, first, last, lso = struct.unpack_from(">hqqqq", data, at)
            assert version == 0, f"{path.name}: entry version {version}"
            entries.append((producer_id, first, last, lso))
        out[int(log.name.split(".")[0])] = entries
    return out


def control_batches(broker, topic):
    return [b for bs in disk_batches(broker, topic).values() for b in bs if b[3] & CONTROL]


def expected_entries(broker, topic, outcomes):
    """The aborted transactions as the segment files show them: the n-th marker ends the
    n-th transaction, whose data starts at the first data batch after the previous marker."""
    batches = sorted(b for bs in disk_batches(broker, topic).values() for b in bs)
    want, first = [], None
    markers = iter(outcomes)
    for base, _, _, attributes, _ in batches:
        if not attributes & CONTROL:
            first = base if first is None else first
            continue
        if not next(markers):
            want.append((first, base, base + 1))
        first = None
    return want


def check_indexes(broker, topic, outcomes):
    indexes = txn_indexes(broker, topic)
    assert len(indexes) > 3, f"want several segments, have {sorted(indexes)}"
    bases = sorted(indexes)
    found = []
    for i, base in enumerate(bases):
        end = bases[i + 1] if i + 1 < len(bases) else float("inf")
        for producer_id, first, last, lso in indexes[base]:
            assert base <= last < end, f"entry of marker {last} in the segment of {base}"
            found.append((producer_id, first, last, lso))
    assert len({f[0] for f in found}) <= 1, f"one producer wrote them all: {found}"
    assert [f[1:] for f in found] == expected_entries(broker, topic, outcomes)


def check_reads(broker, compat_tool, topic, committed, every):  # noqa: F811
    end, got = read_kafka_python(broker, topic, "read_committed")
    assert got == committed, f"kafka-python read_committed: {got}"
    end_all, got = read_kafka_python(broker, topic, "read_uncommitted")
    assert got == every, f"kafka-python read_uncommitted: {got}"
    assert end == end_all, "the last stable offset is held back"
    assert read_confluent(broker, topic, "read_committed") == committed
    assert read_confluent(broker, topic, "read_uncommitted") == every
    for isolation, want in [("read_committed", committed), ("read_uncommitted", every)]:
        out = compat_tool(["read", broker.bootstrap, topic, isolation])
        assert out["error"] is None, out
        assert out["end"] == end and out["position"] >= end, out
        assert out["values"] == want, f"Java {isolation}: {out['values']}"


def test_aborted_transactions_are_indexed_and_survive_restarts(make_broker, compat_tool, topic_name):  # noqa: F811
    broker = make_broker()
    ck.create_topic(broker, topic_name, partitions=1, config={"segment.bytes": str(SEGMENT_BYTES)})
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": f"idx-{topic_name}",
                  "linger.ms": 5, "message.timeout.ms": TIMEOUT_S * 1000})
    p.init_transactions(TIMEOUT_S)
    rng = random.Random(15)
    outcomes, committed, every = [], [], []
    for t in range(TRANSACTIONS):
        commit = rng.random() < 0.5
        p.begin_transaction()
        for r in range(RECORDS_PER_TRANSACTION):
            value = f"{'c' if commit else 'a'}{t}-{r}-" + "x" * 200
            p.produce(topic_name, value=value.encode(), partition=0)
            every.append(value)
            if commit:
                committed.append(value)
        # Delivered first: an abort purges records still queued.
        assert p.flush(TIMEOUT_S) == 0, "records undelivered"
        if commit:
            p.commit_transaction(TIMEOUT_S)
        else:
            p.abort_transaction(TIMEOUT_S)
        outcomes.append(commit)
    assert 0 < sum(outcomes) < TRANSACTIONS
    # The coordinator writes the last marker after it answers EndTxn.
    deadline = time.monotonic() + TIMEOUT_S
    while len(control_batches(broker, topic_name)) < TRANSACTIONS and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(control_batches(broker, topic_name)) == TRANSACTIONS

    check_indexes(broker, topic_name, outcomes)
    check_reads(broker, compat_tool, topic_name, committed, every)

    broker.kill()
    broker.start()
    check_reads(broker, compat_tool, topic_name, committed, every)
    check_indexes(broker, topic_name, outcomes)

    # A data directory from before Strom wrote `.txnindex` files: none at all.
    broker.stop()
    for path in segment_dir(broker, topic_name).glob("*.txnindex"):
        path.unlink()
    broker.start()
    check_reads(broker, compat_tool, topic_name, committed, every)
    check_indexes(broker, topic_name, outcomes)

    # A damaged entry in the middle of the fullest `.txnindex`.
    broker.stop()
    before = txn_indexes(broker, topic_name)
    base = max(before, key=lambda b: len(before[b]))
    assert len(before[base]) >= 2, f"want a file with several entries: {before}"
    path = segment_dir(broker, topic_name) / f"{base:020}.txnindex"
    data = bytearray(path.read_bytes())
    struct.pack_into(">q", data, (len(before[base]) // 2) * ENTRY_BYTES + 18, -5)  # its marker offset
    path.write_bytes(bytes(data))
    log_from = broker.log_path.stat().st_size
    broker.start()
    check_reads(broker, compat_tool, topic_name, committed, every)
    assert txn_indexes(broker, topic_name) == before
    check_indexes(broker, topic_name, outcomes)
    with open(broker.log_path, "rb") as f:
        f.seek(log_from)
        logs = f.read().decode(errors="replace").splitlines()
    warned = [line for line in logs if "WARN" in line and "damaged transaction index" in line]
    assert any(path.name in line for line in warned), f"no WARN naming {path.name}: {warned}"
