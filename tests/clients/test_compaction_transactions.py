"""Transactions on a compacted topic: the cleaner removes aborted records, and removes a
committed transaction's COMMIT marker once none of its records is left (KIP-534: a first pass
sets the marker batch's delete horizon, a pass after `delete.retention.ms` removes it), as
Kafka's cleaner does. ABORT markers stay (Kafka's cleaner also removes an ABORT marker whose
records are gone, with its `.txnindex` entry; Strom keeps both, see
`strom-log/src/compaction.rs`), and the merged segments' `.txnindex` keeps B's entry.

A transactional confluent-kafka producer writes three transactions to one compacted partition
with small segments: A commits k0 k1, B writes k0 k2 and aborts, C commits k0 k1 k2 (so A's
records are all superseded). Plain pad records then roll segments until two producer
snapshots lie above C's marker (markers are only removed below every snapshot, so that a
replay from any snapshot never meets a transaction's data without its marker). The test waits,
on the segment files, until only C's records, the pads, B's ABORT marker and C's COMMIT marker
are left (A's marker gone, or left as a zero-record batch where the cleaner must keep one), then
read_committed and read_uncommitted consumers of kafka-python and confluent-kafka (librdkafka)
read the partition from the beginning and must see exactly C's values and the pads, before
and after a `kill -9` and a restart (the last stable offset at the log end: no transaction
left open by a removed marker). The only `.txnindex` entry on disk, before and after the
restart, is B's: in the file of the segment holding B's marker, naming it."""

import time

from confluent_kafka import Producer

import test_confluent_kafka as ck
from test_compaction import disk_batches, pad
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


def test_commit_markers_of_transactions_without_records_are_removed(make_broker, topic_name):
    broker = make_broker(["--override", "log.cleaner.backoff.ms=100"])
    config = {"cleanup.policy": "compact", "segment.bytes": str(SEGMENT_BYTES),
              "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "0",
              "delete.retention.ms": "100"}
    ck.create_topic(broker, topic_name, partitions=1, config=config)
    p = transactional_producer(broker, f"compacted-{topic_name}")
    transaction(p, topic_name, [("k0", "a0"), ("k1", "a1")], commit=True)
    transaction(p, topic_name, [("k0", "b0"), ("k2", "b2")], commit=False)
    transaction(p, topic_name, [("k0", "c0"), ("k1", "c1"), ("k2", "c2")], commit=True)
    # The three markers, once the coordinator has written them (it answers EndTxn first, as
    # Kafka's does). Offsets never change; no marker can be removed before two snapshots lie
    # above it, which only the pads below bring.
    deadline = time.monotonic() + TIMEOUT_S
    control = [b for b in batches(broker, topic_name) if b[3] & CONTROL]
    while len(control) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        control = [b for b in batches(broker, topic_name) if b[3] & CONTROL]
    assert [c[4] for c in control] == [1, 1, 1], f"markers on disk: {control}"
    b_marker, c_marker = control[1][0], control[2][0]

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
    why = cleaned_state(broker, topic_name, [b_marker, c_marker], len(want))
    while why is not None and time.monotonic() < deadline:
        time.sleep(0.2)
        why = cleaned_state(broker, topic_name, [b_marker, c_marker], len(want))
    assert why is None, f"not cleaned after {CLEANING_TIMEOUT_S}s: {why}\n{batches(broker, topic_name)}"
    # What is left of A's marker: nothing, or a zero-record batch.
    for base, _, _, attributes, count in batches(broker, topic_name):
        if attributes & CONTROL and base not in (b_marker, c_marker):
            assert count == 0, f"marker at {base} still holds {count} records"

    check_abort_indexed(broker, topic_name, b_marker)

    ends = {}
    for isolation in ["read_committed", "read_uncommitted"]:
        ends[isolation], got = read_kafka_python(broker, topic_name, isolation)
        assert got == want, f"kafka-python {isolation}: {got[:5]}..."
        got = read_confluent(broker, topic_name, isolation)
        assert got == want, f"confluent-kafka {isolation}: {got[:5]}..."
    assert ends["read_committed"] == ends["read_uncommitted"], f"last stable offset held back: {ends}"

    # A crash and a restart rebuild the producer state from a snapshot and the cleaned log:
    # no transaction is left open by a removed marker (the LSO is the log end again).
    broker.kill()
    broker.start()
    assert read_kafka_python(broker, topic_name, "read_committed") == (ends["read_uncommitted"], want)
    assert read_confluent(broker, topic_name, "read_committed") == want
    check_abort_indexed(broker, topic_name, b_marker)


def check_abort_indexed(broker, topic, marker):
    """B's ABORT is the one `.txnindex` entry, in the file of the segment holding its marker."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            indexes = txn_indexes(broker, topic)
            break
        except (OSError, AssertionError):  # a swap renamed a file under us: look again
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    entries = [(base, e) for base, es in indexes.items() for e in es]
    assert len(entries) == 1, f"index entries: {entries}"
    base, (_, first, last, _) = entries[0]
    assert last == marker and first < marker, entries
    holder = max(b for b in indexes if b <= marker)
    assert base == holder, f"entry in the segment of {base}, marker in {holder}"
