"""Damaged replicas on a 3-node cluster of real `strom server` processes (KIP-858's idea,
per replica): a broker that finds a partition log damaged at start-up reports it to the
controller in its heartbeat; the controller takes that replica out of the ISR and out of
leadership, Metadata lists it in `offline_replicas`, and DescribeLogDirs answers its
directory with KAFKA_STORAGE_ERROR. Consumers still read every acknowledged record from
the other replicas.

The scrubber repairs a damaged cold segment from the leader (a damaged leader first gives
up leadership), so that the replica's bytes are the leader's again. ListOffsets with the
debugging replica id (-2) is answered by a follower from its own log.

Also unclean leader elections: with `unclean.leader.election.enable` off a partition whose
last in-sync replica is gone stays leaderless; turned on through IncrementalAlterConfigs,
an out-of-sync replica leads.
"""

import socket
import struct
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from kafka.admin import KafkaAdminClient

from cluster import NotYet, _Reader
from kafka_wire import _read_exact
from cluster_fixtures import create_topic, make_cluster  # noqa: F401 (fixture)

pytestmark = pytest.mark.cluster

KAFKA_STORAGE_ERROR = 56
NOT_LEADER_OR_FOLLOWER = 6
LATEST, EARLIEST = -1, -2
# Kafka's ListOffsetsRequest.CONSUMER_REPLICA_ID and DEBUGGING_REPLICA_ID.
CONSUMER, DEBUGGING = -1, -2
TIMEOUT_S = 60


def produce_acked(cluster, topic, partitions, rounds, per_round, tag, idempotent=True):
    """acks=all records in `rounds` flushed rounds (so each partition holds many batches);
    returns {(partition, offset): value} of the acknowledged ones."""
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 0,
                  "enable.idempotence": idempotent, "log_level": 0})
    acked = {}

    def done(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()

    for r in range(rounds):
        for part in partitions:
            for i in range(per_round):
                p.produce(topic, value=f"{tag}-{part}-{r}-{i}".encode() + b"x" * 200, partition=part,
                          on_delivery=done)
        assert p.flush(TIMEOUT_S) == 0
    return acked


def read_all(cluster, topic, partition):
    """{offset: value} of every record of the partition, read from the beginning up to its
    high watermark by a confluent-kafka consumer (bounded)."""
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": f"check-{time.monotonic_ns()}",
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


def list_offsets(node, topic, partition, timestamp, replica_id):
    """ListOffsets v1 to one node (a client library cannot pick the node nor send replica
    id -2): (error code, offset)."""
    client = b"strom-damage-tests"
    body = struct.pack(">hhih", 2, 1, 2, len(client)) + client
    body += struct.pack(">ii", replica_id, 1) + struct.pack(">h", len(topic)) + topic.encode()
    body += struct.pack(">iiq", 1, partition, timestamp)
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.settimeout(10)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _read_exact(sock, 4))
        r = _Reader(_read_exact(sock, size))
    assert r.take(">i") == 2, "correlation id"
    [[_, [(_, error, _, offset)]]] = r.array(lambda: (r.string(), r.array(lambda: r.take(">ihqq"))))
    return error, offset


def batch_positions(data):
    """(position, base offset, length) of each RecordBatch in a segment file."""
    out, pos = [], 0
    while pos + 12 <= len(data):
        base = int.from_bytes(data[pos:pos + 8], "big", signed=True)
        length = int.from_bytes(data[pos + 8:pos + 12], "big", signed=True)
        out.append((pos, base, length + 12))
        pos += length + 12
    return out


def flip_middle_batch(partition_dir):
    """Flips a byte under the CRC of a batch in the middle of the active segment, so that
    intact batches follow it (damage, never a torn tail). Returns the file."""
    segment = sorted(partition_dir.glob("*.log"))[-1]
    data = bytearray(segment.read_bytes())
    positions = batch_positions(bytes(data))
    assert len(positions) >= 4, f"{segment}: {len(positions)} batches"
    pos, _, _ = positions[len(positions) // 2]
    data[pos + 70] ^= 0x20
    segment.write_bytes(bytes(data))
    return segment


def test_damaged_leader_and_follower_replicas_are_reported_and_leave_isr_and_leadership(make_cluster):
    cluster = make_cluster(3)
    topic = "damaged"
    create_topic(cluster, topic, 3, 3, {"min.insync.replicas": "2"})
    cluster.wait_isr(topic, timeout_s=TIMEOUT_S)
    acked = produce_acked(cluster, topic, [0, 1, 2], rounds=8, per_round=40, tag="before")
    cluster.wait_isr(topic, timeout_s=TIMEOUT_S)
    parts = cluster.partitions(topic)
    # The broker that leads partition 0 also follows another partition: damage both there.
    victim = parts[0]["leader"]
    led = 0
    followed = next(p for p, i in sorted(parts.items()) if i["leader"] != victim)
    intact = next(p for p in parts if p not in (led, followed))
    node = cluster[victim]
    # SIGKILL: an unclean shutdown, so recovery scans the active segments at start-up.
    node.kill()
    for p in (led, followed):
        flip_middle_batch(node.data_dir / f"{topic}-{p}")
    node.start()

    live = {n.node_id for n in cluster.live()}

    def reported():
        views = {}
        for n in cluster.live():
            info = cluster.partitions(topic, via=n.node_id)
            for p in (led, followed):
                i = info[p]
                if victim not in i["offline"] or victim in i["isr"] or i["leader"] not in live - {victim}:
                    raise NotYet(f"node {n.node_id}: partition {p}: {i}")
            i = info[intact]
            if victim in i["offline"] or victim not in i["isr"]:
                raise NotYet(f"node {n.node_id}: intact partition {intact}: {i}")
            views[n.node_id] = info
        return views

    views = cluster.wait(f"node {victim}'s damaged replicas of {topic} {led} and {followed} reported offline, "
                         f"out of the ISR and of leadership", reported, TIMEOUT_S)
    for info in views.values():
        assert info[led]["leader"] != victim and len(info[led]["isr"]) == 2, info
        assert info[followed]["leader"] != victim and len(info[followed]["isr"]) == 2, info

    # DescribeLogDirs (kafka-python's admin): the log directory lists the intact partition
    # only; each damaged partition's directory is answered with KAFKA_STORAGE_ERROR.
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=30000)
    try:
        [answer] = admin.describe_log_dirs(brokers=[victim])
    finally:
        admin.close()
    dirs = answer["log_dirs"]
    online = [d for d in dirs if d["error_code"] == 0]
    offline = {d["log_dir"].rsplit("/", 1)[-1]: d for d in dirs if d["error_code"] != 0}
    assert len(online) == 1, dirs
    listed = {(t["name"], p["partition_index"]) for t in online[0]["topics"] for p in t["partitions"]}
    assert (topic, intact) in listed and (topic, led) not in listed and (topic, followed) not in listed, listed
    assert set(offline) == {f"{topic}-{led}", f"{topic}-{followed}"}, dirs
    assert all(d["error_code"] == KAFKA_STORAGE_ERROR and not d["topics"] for d in offline.values()), dirs

    # Writes go on with two in-sync replicas, and no acknowledged record is lost.
    acked.update(produce_acked(cluster, topic, [0, 1, 2], rounds=1, per_round=20, tag="after"))
    for p in (0, 1, 2):
        got = read_all(cluster, topic, p)
        want = {o: v for (q, o), v in acked.items() if q == p}
        assert {o: got.get(o) for o in want} == want, f"partition {p}: {len(want)} acked, {len(got)} read"

    # ListOffsets with the debugging replica id (-2) is answered by a follower from its own
    # log (KIP-392's follower fetching relies on it); a consumer's (-1) must ask the leader.
    # The damaged replica answers KAFKA_STORAGE_ERROR.
    ends = {p: 1 + max(o for (q, o) in acked if q == p) for p in (0, 1, 2)}
    cluster.wait_isr(topic, size=3, partitions=[intact], timeout_s=TIMEOUT_S)
    info = cluster.partitions(topic)[intact]
    follower = cluster[next(b for b in info["replicas"] if b != info["leader"])]

    def follower_caught_up():
        answer = list_offsets(follower, topic, intact, LATEST, DEBUGGING)
        if answer != (0, ends[intact]):
            raise NotYet(f"follower {follower.node_id} answers {answer}, the log ends at {ends[intact]}")
        return answer

    cluster.wait(f"follower {follower.node_id}'s log end offset of {topic}-{intact}", follower_caught_up, TIMEOUT_S)
    assert list_offsets(follower, topic, intact, EARLIEST, DEBUGGING) == (0, 0)
    assert list_offsets(follower, topic, intact, LATEST, CONSUMER)[0] == NOT_LEADER_OR_FOLLOWER
    assert list_offsets(cluster[info["leader"]], topic, intact, LATEST, CONSUMER) == (0, ends[intact])
    assert list_offsets(node, topic, led, LATEST, DEBUGGING)[0] == KAFKA_STORAGE_ERROR


LEADER_NOT_AVAILABLE = 5


def test_unclean_leader_election_only_once_enabled_through_incremental_alter_configs(make_cluster):
    # Kafka's internal interval of the controller's unclean-election pass, short here.
    cluster = make_cluster(3, {"unclean.leader.election.interval.ms": "1000"})
    topic = "unclean"
    create_topic(cluster, topic, 1, 3, {"min.insync.replicas": "1"})
    cluster.wait_isr(topic, timeout_s=TIMEOUT_S)
    in_sync = produce_acked(cluster, topic, [0], rounds=2, per_round=50, tag="in-sync")
    cluster.wait_isr(topic, timeout_s=TIMEOUT_S)
    leader = cluster.partitions(topic)[0]["leader"]
    others = [n for n in cluster.nodes if n != leader]
    # The followers stop (controlled shutdown takes them out of the ISR, which shrinks to
    # the leader alone); what is acknowledged next is on the leader only. (Without a
    # metadata quorum no producer id can be allocated: a plain producer.)
    for n in others:
        cluster[n].stop()
    only_leader = produce_acked(cluster, topic, [0], rounds=1, per_round=30, tag="leader-only", idempotent=False)
    assert len(only_leader) == 30
    # The last in-sync replica dies; the out-of-sync ones come back.
    cluster[leader].kill()
    for n in others:
        cluster[n].start(wait=False)
    for n in others:
        cluster[n].wait_serving()

    def fenced_and_leaderless():
        info = cluster.metadata([topic])
        p = info["topics"][topic]["partitions"][0]
        if leader in info["brokers"] or set(others) - set(info["brokers"]):
            raise NotYet(f"brokers {sorted(info['brokers'])}")
        if p["leader"] != -1:
            raise NotYet(f"partition: {p}")
        return p

    p = cluster.wait(f"node {leader} fenced and {topic}-0 leaderless", fenced_and_leaderless, TIMEOUT_S)
    assert p["error"] == LEADER_NOT_AVAILABLE and p["isr"] == [leader], p
    # With unclean.leader.election.enable off it stays so, through several unclean-election
    # passes: no out-of-sync replica leads, no record is served.
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        for n in others:
            p = cluster.partitions(topic, via=n)[0]
            assert p["leader"] == -1 and p["isr"] == [leader], p
            assert list_offsets(cluster[n], topic, 0, LATEST, CONSUMER)[0] == NOT_LEADER_OR_FOLLOWER
        time.sleep(0.5)

    # Turned on for the topic through IncrementalAlterConfigs: an out-of-sync replica leads.
    admin = AdminClient({"bootstrap.servers": ",".join(cluster[n].bootstrap for n in others), "log_level": 0})
    resource = ConfigResource("TOPIC", topic, incremental_configs=[
        ConfigEntry("unclean.leader.election.enable", "true",
                    incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([resource])[resource].result(timeout=TIMEOUT_S)

    def unclean_leader():
        p = cluster.partitions(topic)[0]
        if p["leader"] not in others:
            raise NotYet(f"partition: {p}")
        return p

    p = cluster.wait(f"an out-of-sync replica leading {topic}-0", unclean_leader, TIMEOUT_S)
    # The ISR restarted from the new leader alone (the other out-of-sync replica may have
    # caught up and joined it since); the old in-sync replica is out.
    assert p["leader"] in p["isr"] and leader not in p["isr"], p
    # What the old ISR alone had is given up (the setting accepts it); what every replica
    # had is read back.
    got = read_all(cluster, topic, 0)
    assert {o: got.get(o) for (_, o) in in_sync} == {o: v for (_, o), v in in_sync.items()}
    assert not set(only_leader.values()) & set(got.values())


def batches_of(files):
    """{base offset: batch bytes} of every batch in the segment files."""
    out = {}
    for f in files:
        data = f.read_bytes()
        for pos, base, length in batch_positions(data):
            out[base] = data[pos:pos + length]
    return out


def flip_running(segment):
    """Flips a payload byte of the segment's second batch in place (the broker runs; a
    rewrite of the whole file would let the scrubber see it short for a moment)."""
    data = segment.read_bytes()
    pos, base, length = batch_positions(data)[1]
    at = pos + length - 10
    with open(segment, "r+b") as f:
        f.seek(at)
        f.write(bytes([data[at] ^ 0x01]))
    return base


def log_lines(node, needle):
    try:
        text = node.log_path.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if needle in line]


def test_scrubber_repairs_damaged_segments_from_the_leader(make_cluster):
    cluster = make_cluster(3, {"strom.log.scrub.interval.ms": "300"})
    topic = "repaired"
    create_topic(cluster, topic, 2, 3, {"min.insync.replicas": "2", "segment.bytes": "32768"})
    cluster.wait_isr(topic, timeout_s=TIMEOUT_S)
    acked = produce_acked(cluster, topic, [0, 1], rounds=16, per_round=40, tag="r")
    cluster.wait_isr(topic, timeout_s=TIMEOUT_S)
    parts = cluster.partitions(topic)

    def segments(node_id, p):
        return sorted((cluster[node_id].data_dir / f"{topic}-{p}").glob("*.log"))

    def cold_segment(node_id, p):
        """A segment before the active one, of several batches."""
        files = segments(node_id, p)
        assert len(files) >= 3, files
        return files[-2]

    def repaired_like_leader(node_id, p, segment, leader):
        """The follower's segment holds exactly the leader's batches of its offsets."""
        mine = batches_of([segment])
        theirs = batches_of(segments(leader, p))
        if not mine or any(theirs.get(base) != b for base, b in mine.items()):
            raise NotYet(f"{segment.name} of node {node_id} differs from the leader's batches")
        return segment.read_bytes() == b"".join(mine[b] for b in sorted(mine))

    # A follower's cold segment damaged while it runs: repaired from the leader.
    leader0 = parts[0]["leader"]
    follower = next(b for b in parts[0]["replicas"] if b != leader0)
    segment = cold_segment(follower, 0)
    base = flip_running(segment)
    cluster.wait(f"node {follower} repairing {segment.name} of {topic}-0",
                 lambda: log_lines(cluster[follower], "scrubber repaired a damaged segment")
                 and repaired_like_leader(follower, 0, segment, leader0), TIMEOUT_S)
    assert log_lines(cluster[follower], f"offsets {base}..="), "the damage was reported first"

    # The leader's cold segment damaged: it gives up leadership (reported offline), is
    # repaired as a follower from the new leader, and rejoins the ISR.
    leader1 = parts[1]["leader"]
    segment = cold_segment(leader1, 1)
    flip_running(segment)

    def moved():
        i = cluster.partitions(topic)[1]
        if i["leader"] == leader1 or i["leader"] == -1:
            raise NotYet(f"partition 1: {i}")
        return i["leader"]

    new_leader = cluster.wait(f"leadership of {topic}-1 moving off damaged node {leader1}", moved, TIMEOUT_S)
    cluster.wait(f"node {leader1} repairing {segment.name} of {topic}-1 as a follower",
                 lambda: len(log_lines(cluster[leader1], "scrubber repaired a damaged segment")) >= 1
                 and repaired_like_leader(leader1, 1, segment, new_leader), TIMEOUT_S)

    def whole_again():
        i = cluster.partitions(topic)[1]
        if i["offline"] or leader1 not in i["isr"]:
            raise NotYet(f"partition 1: {i}")
        return i

    cluster.wait(f"node {leader1} back in the ISR of {topic}-1, no replica offline", whole_again, TIMEOUT_S)
    # Counted, as the pass lines (and `strom_log_scrub_repairs_total`) say.
    for n in {follower, leader1}:
        passes = log_lines(cluster[n], "scrub pass done")
        want = (n == follower) + (n == leader1)
        assert passes and f"segments_repaired={want} " in passes[-1], passes[-1:]
    assert log_lines(cluster[leader1], "reported offline so that an in-sync follower takes over")
    # Consumers read every acknowledged record.
    for p in (0, 1):
        got = read_all(cluster, topic, p)
        want = {o: v for (q, o), v in acked.items() if q == p}
        assert {o: got.get(o) for o in want} == want, f"partition {p}"
