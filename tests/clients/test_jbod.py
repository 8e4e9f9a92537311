"""Several log directories (JBOD; Kafka's KIP-113 and KIP-858) on real `strom server`
processes: partitions spread over every directory of `log.dirs`, DescribeLogDirs through
the Java client's Admin (real total and usable bytes, every directory), AlterReplicaLogDirs
moving a replica under a running acks=all producer with every acknowledged record readable
after (and after a restart), and a directory unusable at start-up taken offline alone on a
3-node cluster: its replicas are reported offline and led elsewhere, the broker serves the
rest.
"""

import json
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from kafka.admin import KafkaAdminClient

from cluster import NotYet
from cluster_fixtures import create_topic, make_cluster  # noqa: F401 (fixture)
from conftest import strom_binary

pytestmark = pytest.mark.cluster

KAFKA_STORAGE_ERROR = 56
TIMEOUT_S = 60


def partition_dirs(log_dir, topic):
    """{partition} of `topic` whose directory is in `log_dir` (not -future, -moved, ...)."""
    out = set()
    for d in log_dir.iterdir():
        name = d.name
        if d.is_dir() and name.startswith(f"{topic}-") and name[len(topic) + 1:].isdigit():
            out.add(int(name[len(topic) + 1:]))
    return out


def strom_json(node, args):
    """`strom ARGS --output json` against one node, parsed."""
    cmd = [str(strom_binary())] + [str(a) for a in args] + ["--bootstrap-server", node.bootstrap,
                                                           "--output", "json", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"{args}: {proc.stderr.decode(errors='replace')[-2000:]}"
    return json.loads(proc.stdout)


def leftovers(log_dir):
    return sorted(d.name for d in log_dir.iterdir() if d.name.endswith(("-future", "-moved")))


class Load:
    """An idempotent acks=all confluent-kafka producer in a thread, sending until stopped;
    {(partition, offset): value} of what was acknowledged."""

    def __init__(self, bootstrap, topic):
        self.topic = topic
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                           "linger.ms": 2, "message.timeout.ms": 60000, "log_level": 0})
        self.acked, self.errors, self.sent = {}, [], 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _done(self, err, msg):
        if err is None:
            self.acked[(msg.partition(), msg.offset())] = msg.value()
        else:
            self.errors.append(err.str())

    def _run(self):
        while not self._stop.is_set():
            try:
                self.p.produce(self.topic, value=f"v-{self.sent}".encode() + b"x" * 300, partition=0,
                               on_delivery=self._done)
                self.sent += 1
            except BufferError:
                pass
            self.p.poll(0.002)

    def start(self):
        self.thread.start()
        return self

    def wait_acked(self, count, timeout_s=TIMEOUT_S):
        deadline = time.monotonic() + timeout_s
        while len(self.acked) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.acked) >= count, f"{len(self.acked)} acked of {count} wanted; errors {self.errors[:5]}"

    def stop(self):
        self._stop.set()
        self.thread.join(TIMEOUT_S)
        assert self.p.flush(TIMEOUT_S) == 0, "deliveries outstanding"


def read_all(bootstrap, topic, partition):
    """{offset: value} of the partition from its start up to its high watermark (bounded)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"jbod-{time.monotonic_ns()}",
                  "enable.auto.commit": False, "log_level": 0})
    try:
        _, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=TIMEOUT_S)
        c.assign([TopicPartition(topic, partition, 0)])
        out = {}
        deadline = time.monotonic() + TIMEOUT_S
        while len(out) < high and time.monotonic() < deadline:
            for m in c.consume(500, timeout=1.0):
                if m.error() is None:
                    out[m.offset()] = m.value()
        return out
    finally:
        c.close()


def assert_all_readable(bootstrap, topic, acked):
    got = read_all(bootstrap, topic, 0)
    want = {o: v for (_, o), v in acked.items()}
    missing = [o for o in want if got.get(o) != want[o]]
    assert not missing, f"{len(missing)} of {len(want)} acknowledged records not read back, e.g. offsets {missing[:5]}"


def test_partitions_spread_over_log_dirs_and_a_replica_moves_under_load(make_cluster, java_tool):
    cluster = make_cluster(1, log_dirs=2)
    node = cluster[1]
    first, second = node.log_dirs
    create_topic(cluster, "spread", 6, 1)
    # Kafka's placement: each new partition in the directory holding the fewest.
    assert len(partition_dirs(first, "spread")) == 3 and len(partition_dirs(second, "spread")) == 3, (
        sorted(first.iterdir()), sorted(second.iterdir()))
    for d in node.log_dirs:
        text = (d / "meta.properties").read_text()
        assert "directory.id=" in text and "node.id=1" in text, text

    # DescribeLogDirs through the Java client: both directories, their real sizes, and
    # the replicas each holds.
    dirs = java_tool(["admin", node.bootstrap, "log-dirs", 1])
    assert set(dirs) == {str(first.resolve()), str(second.resolve())}, dirs
    for path, d in dirs.items():
        assert d["error"] is None, d
        assert 0 < d["usable"] <= d["total"], d
        on_disk = partition_dirs(first if path == str(first.resolve()) else second, "spread")
        assert {r["partition"] for r in d["replicas"] if r["topic"] == "spread"} == on_disk, (path, d)

    # A move under a running producer.
    topic = "moving"
    create_topic(cluster, topic, 1, 1)
    source = first if partition_dirs(first, topic) else second
    target = second if source == first else first
    load = Load(node.bootstrap, topic).start()
    try:
        load.wait_acked(3000)
        answer = java_tool(["admin", node.bootstrap, "move-dir", topic, 1, str(target.resolve()), 0])
        assert answer == {"0": None}, answer

        def moved():
            info = java_tool(["admin", node.bootstrap, "replica-dirs", topic, 1, 0])["0"]
            if info["current"] != str(target.resolve()) or info["future"] is not None:
                raise NotYet(f"{info}")
            return info

        cluster.wait(f"{topic}-0 moved to {target}", moved, TIMEOUT_S)
        acked_at_move = len(load.acked)
        load.wait_acked(acked_at_move + 2000)
    finally:
        load.stop()
    assert not load.errors, f"deliveries failed: {load.errors[:5]}"
    assert partition_dirs(target, topic) == {0} and partition_dirs(source, topic) == set()
    assert leftovers(source) == [] and leftovers(target) == [], (leftovers(source), leftovers(target))
    assert_all_readable(node.bootstrap, topic, load.acked)
    # DescribeLogDirs lists it in its new directory.
    dirs = java_tool(["admin", node.bootstrap, "log-dirs", 1])
    assert any(r["topic"] == topic and not r["future"] for r in dirs[str(target.resolve())]["replicas"]), dirs
    assert not any(r["topic"] == topic for r in dirs[str(source.resolve())]["replicas"]), dirs

    # Kafka's answers for what cannot move.
    answer = java_tool(["admin", node.bootstrap, "move-dir", topic, 1, "/not/a/log/dir", 0])
    assert answer == {"0": "LogDirNotFoundException"}, answer
    answer = java_tool(["admin", node.bootstrap, "move-dir", "no-such-topic", 1, str(source.resolve()), 0])
    assert answer == {"0": "ReplicaNotAvailableException"}, answer

    # The same through `strom log-dirs`: describe, then move it back and wait.
    described = {d["path"]: d for d in strom_json(node, ["log-dirs", "describe", "--topic-list", topic])}
    assert set(described) == {str(first.resolve()), str(second.resolve())}, described
    assert [(r["topic"], r["partition"]) for r in described[str(target.resolve())]["replicas"]] == [(topic, 0)]
    assert described[str(source.resolve())]["replicas"] == [] and described[str(source.resolve())]["error"] is None
    back = strom_json(node, ["log-dirs", "move", "--topic", topic, "--partition", 0, "--dir", source.resolve(),
                             "--wait", "--timeout-s", TIMEOUT_S])
    assert back["log_dir"] == str(source.resolve()) and back["broker"] == 1, back
    assert partition_dirs(source, topic) == {0} and partition_dirs(target, topic) == set()

    # The moved replica is where it was put after a restart, with every record.
    node.stop()
    node.start()
    assert partition_dirs(source, topic) == {0} and partition_dirs(target, topic) == set()
    assert leftovers(source) == [] and leftovers(target) == []
    assert_all_readable(node.bootstrap, topic, load.acked)


def test_an_unusable_log_dir_goes_offline_alone_and_its_replicas_are_led_elsewhere(make_cluster):
    cluster = make_cluster(3, log_dirs=2)
    topic = "jbod"
    create_topic(cluster, topic, 4, 3, {"min.insync.replicas": "2"})
    cluster.wait_isr(topic, timeout_s=TIMEOUT_S)
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 0, "log_level": 0})
    acked = {}

    def done(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()

    for i in range(400):
        p.produce(topic, value=f"before-{i}".encode(), partition=i % 4, on_delivery=done)
    assert p.flush(TIMEOUT_S) == 0
    victim = cluster[2]
    healthy, broken = victim.log_dirs
    lost = partition_dirs(broken, topic)
    kept = partition_dirs(healthy, topic)
    assert lost and kept and lost | kept == {0, 1, 2, 3}, (lost, kept)

    # The second directory becomes unusable while the broker is down (a file where the
    # directory was: what a dead disk's mount point gives, without root tricks).
    victim.stop()
    broken.rename(broken.with_name(broken.name + "-gone"))
    broken.write_bytes(b"not a directory")
    victim.start()
    live = {n.node_id for n in cluster.live()}

    def reported():
        for n in cluster.live():
            info = cluster.partitions(topic, via=n.node_id)
            for part in lost:
                i = info[part]
                if victim.node_id not in i["offline"] or victim.node_id in i["isr"] or \
                        i["leader"] not in live - {victim.node_id}:
                    raise NotYet(f"node {n.node_id}: partition {part}: {i}")
            for part in kept:
                i = info[part]
                if victim.node_id in i["offline"] or victim.node_id not in i["isr"]:
                    raise NotYet(f"node {n.node_id}: partition {part} (healthy dir): {i}")
        return True

    cluster.wait(f"node {victim.node_id}'s replicas in {broken} offline and led elsewhere, the others in sync",
                 reported, TIMEOUT_S)

    # DescribeLogDirs (kafka-python): the failed directory answers KAFKA_STORAGE_ERROR, the
    # healthy one lists its partitions.
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=30000)
    try:
        [answer] = admin.describe_log_dirs(brokers=[victim.node_id])
    finally:
        admin.close()
    by_dir = {d["log_dir"]: d for d in answer["log_dirs"]}
    assert by_dir[str(broken)]["error_code"] == KAFKA_STORAGE_ERROR and not by_dir[str(broken)]["topics"], by_dir
    good = by_dir[str(healthy.resolve())]
    assert good["error_code"] == 0, by_dir
    assert {p["partition_index"] for t in good["topics"] if t["name"] == topic for p in t["partitions"]} == kept

    # The broker keeps serving: writes go on, and no acknowledged record is lost.
    for i in range(200):
        p.produce(topic, value=f"after-{i}".encode(), partition=i % 4, on_delivery=done)
    assert p.flush(TIMEOUT_S) == 0
    for part in range(4):
        got = read_all(cluster.bootstrap, topic, part)
        want = {o: v for (q, o), v in acked.items() if q == part}
        assert {o: got.get(o) for o in want} == want, f"partition {part}: {len(want)} acked, {len(got)} read"


def test_a_log_dir_failing_while_the_broker_runs_goes_offline_alone(make_cluster):
    cluster = make_cluster(3, log_dirs=2)
    topic = "jbod-runtime"
    # Small segments: the next roll after the failure creates a file in the lost directory.
    create_topic(cluster, topic, 4, 3, {"min.insync.replicas": "2", "segment.bytes": "65536"})
    cluster.wait_isr(topic, timeout_s=TIMEOUT_S)
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 0,
                  "message.timeout.ms": 60000, "batch.size": 8192, "log_level": 0})
    acked, errors = {}, []

    def done(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()
        else:
            errors.append(err.str())

    for i in range(200):
        p.produce(topic, value=f"before-{i}".encode(), partition=i % 4, on_delivery=done)
    assert p.flush(TIMEOUT_S) == 0
    victim = cluster[2]
    healthy, broken = victim.log_dirs
    lost = partition_dirs(broken, topic)
    kept = partition_dirs(healthy, topic)
    assert lost and kept, (lost, kept)

    # The directory goes away under the running broker (a disk pulled): the files it has
    # open still take writes, the next segment it creates there fails, which fails that
    # log, which takes the whole directory offline.
    broken.rename(broken.with_name(broken.name + "-pulled"))
    for i in range(1200):
        p.produce(topic, value=f"during-{i}".encode() + b"y" * 300, partition=i % 4, on_delivery=done)
    assert p.flush(TIMEOUT_S) == 0
    assert len(acked) == 1400 and not errors, (len(acked), errors[:3])
    live = {n.node_id for n in cluster.live()}

    def reported():
        for n in cluster.live():
            info = cluster.partitions(topic, via=n.node_id)
            for part in lost:
                i = info[part]
                if victim.node_id not in i["offline"] or victim.node_id in i["isr"] or \
                        i["leader"] not in live - {victim.node_id}:
                    raise NotYet(f"node {n.node_id}: partition {part}: {i}")
            for part in kept:
                i = info[part]
                if victim.node_id in i["offline"] or victim.node_id not in i["isr"]:
                    raise NotYet(f"node {n.node_id}: partition {part} (healthy dir): {i}")
        return True

    cluster.wait(f"node {victim.node_id}'s replicas in the pulled {broken} offline and led elsewhere, "
                 f"the others in sync", reported, TIMEOUT_S)
    assert victim.alive, "the broker must keep serving its other log directory"
    for i in range(200):
        p.produce(topic, value=f"after-{i}".encode(), partition=i % 4, on_delivery=done)
    assert p.flush(TIMEOUT_S) == 0
    for part in range(4):
        got = read_all(cluster.bootstrap, topic, part)
        want = {o: v for (q, o), v in acked.items() if q == part}
        assert {o: got.get(o) for o in want} == want, f"partition {part}: {len(want)} acked, {len(got)} read"


ALTER_LOG_DIRS_RATE = "replica.alter.log.dirs.io.max.bytes.per.second"


def set_broker_config(cluster, broker, configs):
    """IncrementalAlterConfigs on broker resource `broker`: SET (value) or DELETE (None), as
    kafka-configs.sh --entity-type brokers does."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.DELETE if v is None else AlterConfigOpType.SET)
               for k, v in configs.items()]
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 0})
    for future in admin.incremental_alter_configs([ConfigResource("BROKER", broker,
                                                                  incremental_configs=entries)]).values():
        future.result(timeout=30)


def future_bytes(log_dir, topic, partition):
    """Bytes of the future copy of `topic-partition` in `log_dir` (0 when there is none)."""
    return sum(f.stat().st_size for d in log_dir.glob(f"{topic}-{partition}.*-future") for f in d.glob("*.log"))


def test_the_alter_log_dirs_throttle_holds_a_move_back_until_lifted(make_cluster, java_tool):
    """`replica.alter.log.dirs.io.max.bytes.per.second` (a dynamic broker config, as in
    Kafka) throttles AlterReplicaLogDirs copies: a 3 MB move stays unfinished at 20 kB/s;
    deleting the rate lets it end, with every record in the moved replica."""
    cluster = make_cluster(1, log_dirs=2)
    node = cluster[1]
    first, second = node.log_dirs
    topic = "throttled-move"
    create_topic(cluster, topic, 1, 1)
    source = first if partition_dirs(first, topic) else second
    target = second if source == first else first
    # Small records in small batches: the copy moves whole batches, and the move only
    # finishes once it is within 2000 offsets of the end, so it must be far behind.
    p = Producer({"bootstrap.servers": node.bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 16384,
                  "log_level": 0})
    acked = {}

    def done(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()

    for i in range(30000):
        p.produce(topic, value=b"%06d" % i + b"t" * 94, partition=0, on_delivery=done)
        if i % 5000 == 0:
            p.poll(0)
    assert p.flush(TIMEOUT_S) == 0 and len(acked) == 30000, len(acked)
    total = sum(f.stat().st_size for f in (source / f"{topic}-0").glob("*.log"))
    assert total > 3_000_000, total

    set_broker_config(cluster, "1", {ALTER_LOG_DIRS_RATE: "20000"})
    answer = java_tool(["admin", node.bootstrap, "move-dir", topic, 1, str(target.resolve()), 0])
    assert answer == {"0": None}, answer
    def began():
        if future_bytes(target, topic, 0) == 0:
            raise NotYet("no bytes in a future copy yet")
        return True

    cluster.wait("the move began", began, 30)
    time.sleep(3)  # the throttle's effect is what a span of time shows
    copied = future_bytes(target, topic, 0)
    # The rate is averaged over at least 10 s: about 200 kB (and a batch) may pass at once.
    assert 0 < copied < 1_000_000, f"the throttle let {copied} of {total} bytes through in 3 s"
    info = java_tool(["admin", node.bootstrap, "replica-dirs", topic, 1, 0])["0"]
    assert info["current"] == str(source.resolve()) and info["future"] == str(target.resolve()), info

    set_broker_config(cluster, "1", {ALTER_LOG_DIRS_RATE: None})

    def moved():
        info = java_tool(["admin", node.bootstrap, "replica-dirs", topic, 1, 0])["0"]
        if info["current"] != str(target.resolve()) or info["future"] is not None:
            raise NotYet(f"{info}")
        return info

    cluster.wait(f"{topic}-0 moved to {target} once the throttle is lifted", moved, TIMEOUT_S)
    assert partition_dirs(target, topic) == {0} and leftovers(source) == [] and leftovers(target) == []
    # The producer state came with it: a snapshot at the log end offset (30000), which the
    # reopened replica starts from instead of replaying its log.
    snapshots = sorted(f.name for f in (target / f"{topic}-0").glob("*.snapshot"))
    assert "00000000000000030000.snapshot" in snapshots, snapshots
    assert_all_readable(node.bootstrap, topic, acked)
    # A rate that is not a number of bytes per second is refused.
    with pytest.raises(Exception, match="INVALID_CONFIG|Invalid value"):
        set_broker_config(cluster, "1", {ALTER_LOG_DIRS_RATE: "-5"})


def test_a_log_dir_whose_reads_fail_goes_offline_alone(make_cluster):
    """A *read* I/O error takes a log directory offline as a failed write does (Kafka's
    log-directory failure handling covers every IOException of a log, KIP-112/858): the
    victim leads every partition; its second directory disappears under it (a disk pulled)
    and no record is written after; consumers reading from offset 0 make it reopen old
    segments (`strom.open.files.max=1`: none stay open), which fails; the directory goes
    offline alone, its replicas are reported offline and led elsewhere, every acknowledged
    record is read back, and the broker serves its other directory."""
    victim_id = 2
    cluster = make_cluster(3, log_dirs=2, node_props={victim_id: {"strom.open.files.max": "1"}})
    topic = "jbod-reads"
    # The victim first in every replica list: it leads them all, so the reads reach it.
    create_topic(cluster, topic, 4, 3, {"min.insync.replicas": "2", "segment.bytes": "65536"},
                 assignment=[[victim_id, 1, 3]] * 4)
    cluster.wait_isr(topic, timeout_s=TIMEOUT_S)
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 0,
                  "message.timeout.ms": 60000, "batch.size": 8192, "log_level": 0})
    acked, errors = {}, []

    def done(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()
        else:
            errors.append(err.str())

    for i in range(1600):
        p.produce(topic, value=f"before-{i}".encode() + b"r" * 300, partition=i % 4, on_delivery=done)
    assert p.flush(TIMEOUT_S) == 0 and len(acked) == 1600 and not errors, (len(acked), errors[:3])
    victim = cluster[victim_id]
    info = cluster.partitions(topic, via=victim_id)
    assert all(i["leader"] == victim_id for i in info.values()), info
    healthy, broken = victim.log_dirs
    lost = partition_dirs(broken, topic)
    kept = partition_dirs(healthy, topic)
    assert lost and kept, (lost, kept)
    assert all(len(list((broken / f"{topic}-{q}").glob("*.log"))) >= 2 for q in lost), "want inactive segments"

    broken.rename(broken.with_name(broken.name + "-pulled"))
    # Reads only: the consumers' fetches of the old segments fail on the victim, then (its
    # directory offline) are answered by the new leaders.
    for q in sorted(lost):
        try:
            read_all(cluster.bootstrap, topic, q)
        except KafkaException:
            pass  # KAFKA_STORAGE_ERROR once the directory is offline: what this test waits for
    live = {n.node_id for n in cluster.live()}

    def reported():
        for n in cluster.live():
            info = cluster.partitions(topic, via=n.node_id)
            for part in lost:
                i = info[part]
                if victim_id not in i["offline"] or victim_id in i["isr"] or i["leader"] not in live - {victim_id}:
                    raise NotYet(f"node {n.node_id}: partition {part}: {i}")
            for part in kept:
                i = info[part]
                if victim_id in i["offline"] or victim_id not in i["isr"]:
                    raise NotYet(f"node {n.node_id}: partition {part} (healthy dir): {i}")
        return True

    cluster.wait(f"node {victim_id}'s replicas in the pulled {broken} offline (after failed reads) and led "
                 "elsewhere, the others in sync", reported, TIMEOUT_S)
    assert victim.alive, "the broker must keep serving its other log directory"
    # What failed the log was a read (an open of an old segment), not a write.
    failed = [line for line in victim.log_path.read_text(errors="replace").splitlines() if "log failed" in line]
    assert failed and all("open " in line for line in failed), failed[:3] or victim.log_tail()
    for part in range(4):
        want = {o: v for (q, o), v in acked.items() if q == part}

        def complete():
            got = read_all(cluster.bootstrap, topic, part)
            if {o: got.get(o) for o in want} != want:
                raise NotYet(f"partition {part}: {len(want)} acked, {len(got)} read")
            return True

        cluster.wait(f"every acknowledged record of partition {part} read back", complete, TIMEOUT_S)
    # Writes go on: to the kept partitions on the victim, to the lost ones elsewhere.
    for i in range(200):
        p.produce(topic, value=f"after-{i}".encode(), partition=i % 4, on_delivery=done)
    assert p.flush(TIMEOUT_S) == 0 and not errors, errors[:3]


def test_a_log_dir_whose_high_watermark_checkpoint_fails_goes_offline_alone(make_cluster):
    """A directory whose `replication-offset-checkpoint` cannot be written is taken offline
    (Kafka's checkpointHighWatermarks hands it to the LogDirFailureChannel): the write of its
    temporary file fails (a directory stands at that name), the directory goes offline alone,
    its replicas are led elsewhere, every acknowledged record is read back, and the broker
    serves its other directory."""
    victim_id = 2
    cluster = make_cluster(3, log_dirs=2)
    topic = "jbod-checkpoint"
    create_topic(cluster, topic, 4, 3, {"min.insync.replicas": "2"}, assignment=[[victim_id, 1, 3]] * 4)
    cluster.wait_isr(topic, timeout_s=TIMEOUT_S)
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 0,
                  "message.timeout.ms": 60000, "log_level": 0})
    acked, errors = {}, []

    def done(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()
        else:
            errors.append(err.str())

    def produce(prefix, count):
        for i in range(count):
            p.produce(topic, value=f"{prefix}-{i}".encode(), partition=i % 4, on_delivery=done)
        assert p.flush(TIMEOUT_S) == 0 and not errors, errors[:3]

    produce("before", 200)
    victim = cluster[victim_id]
    healthy, broken = victim.log_dirs
    lost = partition_dirs(broken, topic)
    kept = partition_dirs(healthy, topic)
    assert lost and kept, (lost, kept)
    (broken / "replication-offset-checkpoint.tmp").mkdir()
    # New high watermarks in every partition: the next checkpoint must be written, and fails.
    produce("during", 400)
    assert len(acked) == 600, len(acked)
    live = {n.node_id for n in cluster.live()}

    def reported():
        for n in cluster.live():
            info = cluster.partitions(topic, via=n.node_id)
            for part in lost:
                i = info[part]
                if victim_id not in i["offline"] or i["leader"] not in live - {victim_id}:
                    raise NotYet(f"node {n.node_id}: partition {part}: {i}")
            for part in kept:
                i = info[part]
                if victim_id in i["offline"] or i["leader"] != victim_id:
                    raise NotYet(f"node {n.node_id}: partition {part} (healthy dir): {i}")
        return True

    cluster.wait(f"node {victim_id}'s replicas in {broken} offline after its checkpoint failed, the others "
                 "still led by it", reported, TIMEOUT_S)
    assert victim.alive, "the broker must keep serving its other log directory"
    log = victim.log_path.read_text(errors="replace")
    assert "high-watermark checkpoint could not be written" in log, victim.log_tail()
    produce("after", 200)
    for part in range(4):
        want = {o: v for (q, o), v in acked.items() if q == part}

        def complete():
            got = read_all(cluster.bootstrap, topic, part)
            if {o: got.get(o) for o in want} != want:
                raise NotYet(f"partition {part}: {len(want)} acked, {len(got)} read")
            return True

        cluster.wait(f"every acknowledged record of partition {part} read back", complete, TIMEOUT_S)


def test_a_move_a_kill_interrupted_resumes_after_the_restart(make_cluster, java_tool):
    """A replica move in progress (held back by the throttle) when the broker is killed
    (kill -9) is resumed after the restart from its `-future` copy, as Kafka resumes a
    future replica, not discarded: the copy is still there with its bytes, DescribeLogDirs
    shows the move still under way, and once the throttle is lifted it ends with every
    acknowledged record in the moved replica and nothing left over."""
    cluster = make_cluster(1, log_dirs=2)
    node = cluster[1]
    first, second = node.log_dirs
    topic = "resumed-move"
    create_topic(cluster, topic, 1, 1)
    source = first if partition_dirs(first, topic) else second
    target = second if source == first else first
    p = Producer({"bootstrap.servers": node.bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 16384,
                  "log_level": 0})
    acked = {}

    def done(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()

    for i in range(30000):
        p.produce(topic, value=b"%06d" % i + b"k" * 94, partition=0, on_delivery=done)
        if i % 5000 == 0:
            p.poll(0)
    assert p.flush(TIMEOUT_S) == 0 and len(acked) == 30000, len(acked)
    set_broker_config(cluster, "1", {ALTER_LOG_DIRS_RATE: "20000"})
    answer = java_tool(["admin", node.bootstrap, "move-dir", topic, 1, str(target.resolve()), 0])
    assert answer == {"0": None}, answer

    def began():
        if future_bytes(target, topic, 0) == 0:
            raise NotYet("no bytes in a future copy yet")
        return True

    cluster.wait("the move began", began, 30)
    copies = sorted(d.name for d in target.glob(f"{topic}-0.*-future"))
    copied = future_bytes(target, topic, 0)
    assert len(copies) == 1, copies
    node.kill()
    node.start()
    # Resumed from the same copy (same directory, at least the bytes it had), still
    # throttled (the rate is a committed config).
    assert sorted(d.name for d in target.glob(f"{topic}-0.*-future")) == copies
    assert future_bytes(target, topic, 0) >= copied
    info = java_tool(["admin", node.bootstrap, "replica-dirs", topic, 1, 0])["0"]
    assert info["current"] == str(source.resolve()) and info["future"] == str(target.resolve()), info
    assert "resuming a replica move a restart interrupted" in node.log_path.read_text(errors="replace")

    set_broker_config(cluster, "1", {ALTER_LOG_DIRS_RATE: None})

    def moved():
        info = java_tool(["admin", node.bootstrap, "replica-dirs", topic, 1, 0])["0"]
        if info["current"] != str(target.resolve()) or info["future"] is not None:
            raise NotYet(f"{info}")
        return info

    cluster.wait(f"{topic}-0 moved to {target} after the restart", moved, TIMEOUT_S)
    assert partition_dirs(target, topic) == {0} and partition_dirs(source, topic) == set()
    assert leftovers(source) == [] and leftovers(target) == [], (leftovers(source), leftovers(target))
    assert_all_readable(node.bootstrap, topic, acked)
