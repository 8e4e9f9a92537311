"""Transactions on a compacted topic: the cleaner removes aborted records, and removes a
transaction's COMMIT or ABORT marker once none of its records is left (KIP-534: a first pass
sets the marker batch's delete horizon, a pass after `delete.retention.ms` removes it), as
Kafka's cleaner does; an ABORT marker goes together with its `.txnindex` entry, never one
without the other (a read_committed client told of an aborted transaction whose marker it never
reads skips the producer's later transactions in the same fetch).

A transactional confluent-kafka producer writes three transactions to one compacted partition
with small segments: A commits k0 k1, B writes k0 k2 and aborts, C commits k0 k1 k2 (so A's
records are all superseded). Plain pad records then roll segments until two producer
snapshots lie above C's marker (markers are only removed below every snapshot, so that a
replay from any snapshot never meets a transaction's data without its marker). The test waits,
on the segment files, until only C's records, the pads and C's COMMIT marker are left (A's and
B's markers gone, or left as zero-record batches where the cleaner must keep one), and no
`.txnindex` holds an entry. The same producer then commits D (k3), aborts E (k4) and commits F
(k5). read_committed consumers of kafka-python, confluent-kafka (librdkafka) and the Java
client read the partition from the beginning, over the range whose markers went, and must see
exactly C's values, the pads, D's and F's; read_uncommitted ones E's too. The same holds
after a `kill -9` and a restart (the last stable offset at the log end: no transaction left
open by a removed marker), and the `.txnindex` entries on disk are exactly E's, if its marker
is still there, in the file of the segment holding it."""

import time

from confluent_kafka import Producer

import test_confluent_kafka as ck
from test_compaction import disk_batches, pad
from test_compat import compat_tool  # noqa: F401  (the Java helper fixture)
from test_transaction_index import txn_indexes
from test_transactions_log import read_confluent, read_kafka_python

TIMEOUT_S = 30
CLEANING_TIMEOUT_S = 90
SEGMENT_BYTES = 2048
CONTROL = 0x20
PADS_MAX = 12


def transactional_producer(broker, transactional_id):
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": transactional_id,
                  "linger.ms": 5, "message.timeout.ms": TIMEOUT_S * 1000})
    p.init_transactions(TIMEOUT_S)
    return p


def transaction(p, topic, records, commit):
    p.begin_transaction()
    for key, value in records:
        p.produce(topic, key=key.encode(), value=value.encode(), partition=0)
    # Delivered first: an abort purges records still queued (they would never reach the log).
    assert p.flush(TIMEOUT_S) == 0, "records undelivered"
    if commit:
        p.commit_transaction(TIMEOUT_S)
    else:
        p.abort_transaction(TIMEOUT_S)


def snapshots(broker, topic):
    """End offsets of the partition's producer snapshot files."""
    seg_dir = broker.data_dir / "data" / f"{topic}-0"
    return sorted(int(f.name.split(".")[0]) for f in seg_dir.glob("*.snapshot"))


def batches(broker, topic):
    """Every batch on disk, (base, last, length, attributes, records), in offset order."""
    while True:
        try:
            return sorted(b for bs in disk_batches(broker, topic).values() for b in bs)
        except OSError:  # a swap renamed a file under us: look again
            continue


def cleaned_state(broker, topic, want_markers, want_records):
    """Why the partition is not cleaned as wanted yet (None once it is)."""
    on_disk = batches(broker, topic)
    records = sum(b[4] for b in on_disk)
    markers = [b for b in on_disk if b[3] & CONTROL and b[4] > 0]
    if records - len(markers) != want_records:
        return f"{records} records on disk ({len(markers)} in markers), want {want_records} data records"
    if [m[0] for m in markers] != want_markers:
        return f"markers with records at {[m[0] for m in markers]}, want {want_markers}"
    return None


def markers_on_disk(broker, topic):
    """Base offsets of the control batches still holding their marker record."""
    return [b[0] for b in batches(broker, topic) if b[3] & CONTROL and b[4] > 0]


def wait_for_markers(broker, topic, count):
    """The marker batches (with records), once `count` of them are on disk: the coordinator
    writes the last one after it answers EndTxn, as Kafka's does."""
    deadline = time.monotonic() + TIMEOUT_S
    markers = markers_on_disk(broker, topic)
    while len(markers) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        markers = markers_on_disk(broker, topic)
    assert len(markers) == count, f"markers on disk: {markers}"
    return markers


def check_reads(broker, compat_tool, topic, committed, every):  # noqa: F811
    """Every client reads `committed` under read_committed, `every` under read_uncommitted,
    from the beginning; the last stable offset is the log end (no transaction open)."""
    ends = {}
    for isolation, want in [("read_committed", committed), ("read_uncommitted", every)]:
        ends[isolation], got = read_kafka_python(broker, topic, isolation)
        assert got == want, f"kafka-python {isolation}: {got}"
        got = read_confluent(broker, topic, isolation)
        assert got == want, f"confluent-kafka {isolation}: {got}"
        out = compat_tool(["read", broker.bootstrap, topic, isolation])
        assert out["error"] is None, out
        assert out["values"] == want, f"Java {isolation}: {out['values']}"
    assert ends["read_committed"] == ends["read_uncommitted"], f"last stable offset held back: {ends}"


def test_markers_of_transactions_without_records_are_removed(make_broker, compat_tool, topic_name):  # noqa: F811
    broker = make_broker(["--override", "log.cleaner.backoff.ms=100"])
    config = {"cleanup.policy": "compact", "segment.bytes": str(SEGMENT_BYTES),
              "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "0",
              "delete.retention.ms": "100"}
    ck.create_topic(broker, topic_name, partitions=1, config=config)
    p = transactional_producer(broker, f"compacted-{topic_name}")
    transaction(p, topic_name, [("k0", "a0"), ("k1", "a1")], commit=True)
    transaction(p, topic_name, [("k0", "b0"), ("k2", "b2")], commit=False)
    transaction(p, topic_name, [("k0", "c0"), ("k1", "c1"), ("k2", "c2")], commit=True)
    # Offsets never change; no marker can be removed before two snapshots lie above it,
    # which only the pads below bring.
    c_marker = wait_for_markers(broker, topic_name, 3)[2]

    plain = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0,
                      "message.timeout.ms": TIMEOUT_S * 1000})
    pads = []
    while len([s for s in snapshots(broker, topic_name) if s > c_marker]) < 2:
        assert len(pads) < PADS_MAX, (f"no two producer snapshots above {c_marker} after {len(pads)} pads:"
                                      f" {snapshots(broker, topic_name)}\n{broker.log_tail()}")
        value = pad("none", len(pads)).decode()
        pads.append(value)
        plain.produce(topic_name, key=f"pad-{len(pads)}".encode(), value=value.encode(), partition=0)
        assert plain.flush(TIMEOUT_S) == 0
        # A snapshot follows a roll at the next maintenance tick (every second).
        seen = snapshots(broker, topic_name)
        deadline = time.monotonic() + 5
        while snapshots(broker, topic_name) == seen and time.monotonic() < deadline:
            time.sleep(0.1)

    want = ["c0", "c1", "c2"] + pads
    deadline = time.monotonic() + CLEANING_TIMEOUT_S
    why = cleaned_state(broker, topic_name, [c_marker], len(want))
    while why is not None and time.monotonic() < deadline:
        time.sleep(0.2)
        why = cleaned_state(broker, topic_name, [c_marker], len(want))
    assert why is None, f"not cleaned after {CLEANING_TIMEOUT_S}s: {why}\n{batches(broker, topic_name)}"
    # What is left of A's and B's markers: nothing, or zero-record batches.
    for base, _, _, attributes, count in batches(broker, topic_name):
        if attributes & CONTROL and base != c_marker:
            assert count == 0, f"marker at {base} still holds {count} records"
    # B's entry went with its marker.
    assert index_entries(broker, topic_name) == [], "no ABORT marker left, so no entry"

    # Later transactions of the same producer: D commits, E aborts, F commits.
    transaction(p, topic_name, [("k3", "d3")], commit=True)
    transaction(p, topic_name, [("k4", "e4")], commit=False)
    transaction(p, topic_name, [("k5", "f5")], commit=True)
    e_marker = wait_for_markers(broker, topic_name, 4)[2]
    committed, every = want + ["d3", "f5"], want + ["d3", "e4", "f5"]
    check_reads(broker, compat_tool, topic_name, committed, every)
    check_aborts_indexed(broker, topic_name, e_marker)

    # A crash and a restart rebuild the producer state from a snapshot and the cleaned log:
    # no transaction is left open by a removed marker (the LSO is the log end again).
    broker.kill()
    broker.start()
    check_reads(broker, compat_tool, topic_name, committed, every)
    check_aborts_indexed(broker, topic_name, e_marker)


def index_entries(broker, topic):
    """[(segment base offset, entry)] of every `.txnindex` on disk, read whole."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            indexes = txn_indexes(broker, topic)
            return [(base, e) for base, es in sorted(indexes.items()) for e in es]
        except (OSError, AssertionError):  # a swap renamed a file under us: look again
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def check_aborts_indexed(broker, topic, marker):
    """The `.txnindex` entries are exactly the aborted transaction of `marker` while that
    ABORT marker is on disk (in the file of the segment holding it), none once it went."""
    entries = index_entries(broker, topic)
    if marker not in markers_on_disk(broker, topic):
        assert entries == [], f"index entries without their marker: {entries}"
        return
    assert len(entries) == 1, f"index entries: {entries}"
    base, (_, first, last, _) = entries[0]
    assert last == marker and first < marker, entries
    holder = max(b for b in txn_indexes(broker, topic) if b <= marker)
    assert base == holder, f"entry in the segment of {base}, marker in {holder}"
