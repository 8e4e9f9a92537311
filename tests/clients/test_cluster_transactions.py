"""Transactions on a 3-node cluster, through clients nobody here wrote: the transaction
coordinator (the leader of the id's `__transaction_state` partition, on one node) writes
COMMIT/ABORT markers to partitions led by the other nodes (WriteTxnMarkers v2 between
brokers, KIP-1228: each marker names its transaction version, by which the leader checks
its epoch), and partition leaders on other nodes check transactional batches with it
(KIP-890: librdkafka's batches are verified, AddPartitionsToTxn v4 `verify_only`; the Java
client's transaction version 2 batches and offsets are added, AddPartitionsToTxn v4
without it).

Marked `cluster`: deselected unless STROM_CLUSTER_TESTS=1 (README.md, "Cluster tests").
"""

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import NotYet, free_ports
from cluster_fixtures import make_cluster  # noqa: F401 (fixture)
from kafka_wire import finalized_features
from test_compat import compat_tool  # noqa: F401 (the Java helper fixture)
from test_metrics import Scrape

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


def commit_then_abort(p, topic, prefix=""):
    """One transaction of `p` over every partition of `topic` committed, then one aborted:
    values f"{prefix}commit-{partition}" and f"{prefix}abort-{partition}"."""
    for outcome in ("commit", "abort"):
        p.begin_transaction()
        for part in range(PARTITIONS):
            p.produce(topic, value=f"{prefix}{outcome}-{part}".encode(), partition=part)
        # Sent before the end (librdkafka's abort drops what it has not sent yet).
        assert p.flush(WAIT_S) == 0
        (p.commit_transaction if outcome == "commit" else p.abort_transaction)(WAIT_S)


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
    commit_then_abort(p, dst)
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


def txn_partition(transactional_id, partitions=50):
    """Kafka's: abs(transactionalId.hashCode()) % partitions, with Java's String.hashCode."""
    h = 0
    for unit in transactional_id.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    if h & 0x80000000:
        h = (-h) & 0xFFFFFFFF
    return (0 if h == 0x80000000 else h) % partitions


def test_coordinator_killed_between_prepare_and_complete(make_cluster, compat_tool, topic_name):
    """`kill -9` of the coordinator's node in the middle of a commit. Four nodes: the
    transactional id's `__transaction_state` partition has three replicas (A, the
    coordinator, B and C), and the output topic has one replica per partition on D (not a
    replica of that state partition), B and C. D is paused (SIGSTOP) before the commit, so the
    coordinator writes PrepareCommit and answers EndTxn but cannot finish D's marker; then A
    is killed and D resumed. The new coordinator (B or C) loads PrepareCommit and writes every
    marker: the transaction is committed on every partition and completes. A second
    transaction left open by its producer (transaction.timeout.ms 8 s) is aborted by its
    coordinator, so read_committed readers are not held past that timeout."""
    cluster = make_cluster(4)
    txid = f"{topic_name}-tx"
    p = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": txid, "linger.ms": 5})
    p.init_transactions(WAIT_S)
    state = cluster.partitions("__transaction_state")[txn_partition(txid)]
    coordinator = cluster.leader("__transaction_state", txn_partition(txid))
    replicas = list(state["replicas"])
    assert len(replicas) == 3 and coordinator in replicas, state
    (outside,) = [n for n in cluster.nodes if n not in replicas]
    b, c = [n for n in replicas if n != coordinator]
    dst = f"{topic_name}-out"
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    topic = NewTopic(dst, PARTITIONS, replica_assignment=[[outside], [b], [c]],
                     config={"min.insync.replicas": "1"})
    admin.create_topics([topic], operation_timeout=WAIT_S)[dst].result(timeout=WAIT_S)
    for part in range(PARTITIONS):
        cluster.leader(dst, part)

    left_open = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": f"{topic_name}-open",
                          "transaction.timeout.ms": 8000, "linger.ms": 5})
    left_open.init_transactions(WAIT_S)
    left_open.begin_transaction()
    for part in range(PARTITIONS):
        left_open.produce(dst, value=f"open-{part}".encode(), partition=part)
    assert left_open.flush(WAIT_S) == 0

    p.begin_transaction()
    for part in range(PARTITIONS):
        p.produce(dst, value=f"commit-{part}".encode(), partition=part)
    assert p.flush(WAIT_S) == 0
    paused = cluster[outside]
    paused.pause()
    try:
        p.commit_transaction(WAIT_S)
        cluster[coordinator].kill()
    finally:
        paused.resume()
    started = time.monotonic()
    committed = read(cluster, dst, "read_committed", PARTITIONS)
    assert sorted(committed) == [f"commit-{i}" for i in range(PARTITIONS)], committed
    # Held back at most by the open transaction's timeout plus the failover.
    assert time.monotonic() - started < 8 + WAIT_S

    def complete():
        described = compat_tool(["transactions", cluster.bootstrap, txid])
        if described.get("describe", {}).get("state") != "CompleteCommit":
            raise NotYet(str(described))
        return described

    described = cluster.wait("the transaction completed by the new coordinator", complete, WAIT_S)
    assert described["describe"]["partitions"] == [], described
    # The commit was caught between PrepareCommit and CompleteCommit: a new coordinator
    # found it prepared and wrote its markers.
    logs = "".join(cluster[n].log_tail(lines=100_000) for n in (b, c))
    assert "finishing the markers of transactions the previous coordinator prepared" in logs


def test_copier_on_a_cluster_killed_and_its_coordinator_killed(make_cluster, topic_name):
    """The consume-transform-produce copier (`eos_copier.py`: librdkafka's read_committed
    consumer and transactional producer, input offsets committed in each transaction) on a
    3-node cluster with RF 3 topics: its process is `kill -9`ed three times mid-run and
    restarted, and once, while a copier runs, the node leading the transactional id's
    `__transaction_state` partition is `kill -9`ed (and later restarted), so the coordinator
    moves to another replica mid-transaction. A last copier runs to the end: read_committed,
    the output holds every input record exactly once.

    STROM_EOS_CLUSTER_LONG=1 runs the longer variant (more records, more kills, the
    coordinator's node killed twice); its result is in docs/RELIABILITY.md."""
    import os
    import signal
    import subprocess
    import sys

    long_run = os.environ.get("STROM_EOS_CLUSTER_LONG") == "1"
    n, copier_kills, coordinator_kills = (1500, 8, 2) if long_run else (150, 3, 1)
    cluster = make_cluster(3)
    src, dst, group, txid = f"{topic_name}-in", f"{topic_name}-out", f"{topic_name}-g", f"{topic_name}-tx"
    create(cluster, src, dst)
    plain = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    for i in range(n):
        plain.produce(src, value=f"v{i}".encode(), partition=i % PARTITIONS)
    assert plain.flush(WAIT_S) == 0
    script = os.path.join(os.path.dirname(__file__), "eos_copier.py")

    def start(deadline_s):
        args = [sys.executable, script, cluster.bootstrap, txid, group, src, dst, str(PARTITIONS), str(deadline_s)]
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def run_until(proc, committed):
        """Reads the copier's lines until it committed `committed` more transactions (or
        ended); True if it is still running."""
        seen = 0
        for line in proc.stdout:
            if line.startswith("committed"):
                seen += 1
            if seen >= committed or line.startswith("done"):
                break
        return proc.poll() is None

    def coordinator():
        return cluster.leader("__transaction_state", txn_partition(txid))

    kills = killed_coordinators = 0
    rounds = 0
    while kills < copier_kills and rounds < 3 * copier_kills:
        rounds += 1
        proc = start(90)
        try:
            if killed_coordinators < coordinator_kills and kills % 3 == 1:
                # Mid-run: the coordinator's node dies after a committed transaction; the
                # copier goes on (librdkafka finds the new coordinator) or fails and is
                # restarted like a killed one.
                if run_until(proc, 1):
                    victim = coordinator()
                    cluster[victim].kill()
                    killed_coordinators += 1
                    run_until(proc, 2)
                    cluster[victim].start()
                    cluster.wait_isr("__transaction_state", size=3, partitions=[txn_partition(txid)])
            if run_until(proc, 2):
                proc.send_signal(signal.SIGKILL)
                kills += 1
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=WAIT_S)
            proc.stdout.close()
    assert (kills, killed_coordinators) == (copier_kills, coordinator_kills), \
        "the copier finished before it was killed often enough"
    final = start(120 if long_run else 60)
    out, _ = final.communicate(timeout=150)
    assert final.returncode == 0, out
    got = read(cluster, dst, "read_committed", n)
    assert sorted(got) == sorted(f"v{i}" for i in range(n)), (len(got), len(set(got)))
    if long_run:
        print(f"\nEOS copier on a cluster: {n} records copied exactly once through {kills} copier "
              f"kills and {killed_coordinators} coordinator kills")


def marker_requests(port):
    """WriteTxnMarkers requests a node served, by version: {version: count}."""
    series = Scrape(port).series("kafka_network_requestmetrics_requests_total")
    return {int(dict(labels)["version"]): count for labels, count in series.items()
            if dict(labels).get("request") == "WriteTxnMarkers"}


def test_markers_go_between_brokers_as_v2_at_transaction_versions_2_and_1(make_cluster, compat_tool, topic_name):
    """KIP-1228 end to end. Every partition of the output topic is led by one node L, and
    each transactional id is picked so that its coordinator is another node: every marker
    reaches L as a WriteTxnMarkers request, which the metrics count by version. At
    transaction.version 2 the Java producer (transaction version 2: its epoch bumped at
    each end, markers of version 2 checked as strictly newer than the data) and the
    confluent producer (version 0 markers) commit and abort; then at level 1 (a downgrade,
    the version 1 path: no bump) again. Every request is v2, none v1, and read_committed
    readers see exactly the committed records."""
    ports = free_ports(3)
    cluster = make_cluster(3, node_props={n: {"strom.http.listeners": f"http://127.0.0.1:{port}"}
                                          for n, port in zip((1, 2, 3), ports)})
    http = dict(zip((1, 2, 3), ports))
    dst = f"{topic_name}-out"
    # The first transactional producer creates __transaction_state (and is used below).
    rd = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": f"{topic_name}-first",
                   "linger.ms": 5})
    rd.init_transactions(WAIT_S)
    state = cluster.partitions("__transaction_state")
    # L leads every output partition (first in each replica list) and no coordinator of
    # the ids below is L.
    lead = next(n for n in (1, 2, 3) if state[txn_partition(f"{topic_name}-first")]["leader"] != n)
    others = [n for n in (1, 2, 3) if n != lead]
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    assignment = [[lead, *others], [lead, *reversed(others)], [lead, *others]]
    admin.create_topics([NewTopic(dst, PARTITIONS, replica_assignment=assignment, config={"min.insync.replicas": "2"})],
                        operation_timeout=WAIT_S)[dst].result(timeout=WAIT_S)
    cluster.wait_isr(dst, size=3)
    assert [cluster.leader(dst, p) for p in range(PARTITIONS)] == [lead] * PARTITIONS

    def remote_id(prefix):
        for k in range(200):
            txid = f"{prefix}-{k}"
            if state[txn_partition(txid)]["leader"] not in (lead, -1):
                assert cluster.leader("__transaction_state", txn_partition(txid)) != lead
                return txid
        raise AssertionError(f"no transactional id coordinated away from node {lead}")

    expected = []
    before = marker_requests(http[lead])

    def transactions(tag, epoch_after):
        # Java: 3 records committed, 2 aborted (one sticky partition); its describe shows
        # the epoch the ends left (2 at version 2: one bump per end; 0 below).
        java_id = remote_id(f"{topic_name}-java-{tag}")
        out = compat_tool(["transaction", cluster.bootstrap, java_id, dst, 3, 2])
        assert out["error"] is None, out
        expected.extend(f"commit-{i}" for i in range(3))
        # abortTransaction returns once PrepareAbort is written (Kafka's EndTxn answer);
        # the markers, then CompleteAbort, follow from the coordinator: wait for them.
        deadline = time.monotonic() + WAIT_S
        while True:
            described = compat_tool(["transactions", cluster.bootstrap, java_id])["describe"]
            if described["state"] != "PrepareAbort" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert (described["state"], described["producer_epoch"]) == ("CompleteAbort", epoch_after), described
        # librdkafka (transaction version 0 whatever the level): every partition.
        p = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": remote_id(f"{topic_name}-rd-{tag}"),
                      "linger.ms": 5})
        p.init_transactions(WAIT_S)
        commit_then_abort(p, dst, prefix=f"{tag}-")
        expected.extend(f"{tag}-commit-{part}" for part in range(PARTITIONS))

    def served_v2(since):
        """Four ends, each at least one request to L once its markers are written (EndTxn
        is answered before that), all v2."""
        def probe():
            now = marker_requests(http[lead])
            if now.get(2, 0) - since.get(2, 0) < 4:
                raise NotYet(f"{since} -> {now}")
            return now
        return cluster.wait("the markers of four ends served as WriteTxnMarkers v2", probe, WAIT_S)

    transactions("tv2", epoch_after=2)
    after_tv2 = served_v2(before)

    tv = "transaction.version"
    assert compat_tool(["update-feature", cluster.bootstrap, tv, 1, "SAFE_DOWNGRADE"]) == {"ok": True}

    def downgraded():
        for node in cluster.brokers():
            seen = finalized_features(node.host, node.port)
            if seen.get(tv) != 1:
                raise NotYet(f"{node}: {seen}")
        return True

    cluster.wait("every node finalized transaction.version 1", downgraded, WAIT_S)
    transactions("tv1", epoch_after=0)
    served_v2(after_tv2)
    for node, port in http.items():
        assert marker_requests(port).get(1, 0) == 0, f"node {node} was sent WriteTxnMarkers v1"

    got = read(cluster, dst, "read_committed", len(expected))
    assert sorted(got) == sorted(expected), got
    everything = read(cluster, dst, "read_uncommitted", len(expected) + 2 * 2 + 2 * PARTITIONS)
    assert len(everything) == len(expected) + 2 * 2 + 2 * PARTITIONS, everything
