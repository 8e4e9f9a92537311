"""Transactions on a 3-node cluster, through clients nobody here wrote: the transaction
coordinator (the leader of the id's `__transaction_state` partition, on one node) writes
COMMIT/ABORT markers to partitions led by the other nodes (WriteTxnMarkers between brokers),
and partition leaders on other nodes check transactional batches with it (KIP-890:
librdkafka's batches are verified, AddPartitionsToTxn v4 `verify_only`; the Java client's
transaction version 2 batches and offsets are added, AddPartitionsToTxn v4 without it).

Marked `cluster`: deselected unless STROM_CLUSTER_TESTS=1 (README.md, "Cluster tests").
"""

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster_fixtures import make_cluster  # noqa: F401 (fixture)
from test_compat import compat_tool  # noqa: F401 (the Java helper fixture)

pytestmark = pytest.mark.cluster

PARTITIONS = 3
WAIT_S = 30


def create(cluster, *names):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    topics = [NewTopic(n, PARTITIONS, 3, config={"min.insync.replicas": "2"}) for n in names]
    for name, future in admin.create_topics(topics, operation_timeout=WAIT_S).items():
        future.result(timeout=WAIT_S)
    for name in names:
        cluster.wait_isr(name, size=3)


def read(cluster, topic, isolation, expected):
    """Values of `topic` (every partition) under `isolation`, read until `expected` arrive or
    the partitions are at their ends."""
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": f"r-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": isolation, "enable.partition.eof": True})
    got, eof = [], set()
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and (len(got) < expected or len(eof) < PARTITIONS):
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    eof.add(m.partition())
                continue
            eof.discard(m.partition())
            got.append(m.value().decode())
    finally:
        c.close()
    return got


def test_markers_and_verification_across_brokers(make_cluster, compat_tool, topic_name):
    cluster = make_cluster(3)
    src, dst = f"{topic_name}-in", f"{topic_name}-out"
    create(cluster, src, dst)
    leaders = {cluster.leader(dst, p) for p in range(PARTITIONS)}
    # Whichever node coordinates the transaction, some partition is led by another node.
    assert len(leaders) >= 2, leaders

    # librdkafka (transaction version 1): one committed and one aborted transaction over
    # every partition.
    p = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": f"{topic_name}-rd",
                  "linger.ms": 5})
    p.init_transactions(WAIT_S)
    for outcome in ("commit", "abort"):
        p.begin_transaction()
        for part in range(PARTITIONS):
            p.produce(dst, value=f"{outcome}-{part}".encode(), partition=part)
        # Sent before the end (librdkafka's abort drops what it has not sent yet).
        assert p.flush(WAIT_S) == 0
        (p.commit_transaction if outcome == "commit" else p.abort_transaction)(WAIT_S)
    assert sorted(read(cluster, dst, "read_committed", PARTITIONS)) == [f"commit-{i}" for i in range(PARTITIONS)]
    everything = read(cluster, dst, "read_uncommitted", 2 * PARTITIONS)
    assert sorted(everything) == sorted([f"{o}-{i}" for o in ("commit", "abort") for i in range(PARTITIONS)])

    # The Java client (transaction version 2): consume-transform-produce from three input
    # partitions, offsets committed in the transactions, its first transaction aborted.
    plain = Producer({"bootstrap.servers": cluster.bootstrap})
    for i in range(30):
        plain.produce(src, value=f"v{i}".encode(), partition=i % PARTITIONS)
    plain.flush(WAIT_S)
    group = f"{topic_name}-g"
    out = compat_tool(["eos-copy", cluster.bootstrap, f"{topic_name}-java", group, src, dst, 30])
    assert out["error"] is None, out
    assert out["copied"] == 30, out
    committed = read(cluster, dst, "read_committed", PARTITIONS + 30)
    copies = sorted(v for v in committed if v.startswith("v"))
    assert copies == sorted(f"v{i}" for i in range(30)), committed
    assert not any(v.startswith("aborted-") for v in committed), committed
    reader = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = reader.committed([TopicPartition(src, q) for q in range(PARTITIONS)], timeout=WAIT_S)
        assert [tp.offset for tp in got] == [10] * PARTITIONS, got
    finally:
        reader.close()
