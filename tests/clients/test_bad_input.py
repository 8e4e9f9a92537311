"""Hostile bytes on one connection never disturb another, and two brokers never disturb each other.

While a confluent-kafka producer and consumer work on their own connections, other
connections send random bytes, an oversized length prefix, a truncated frame, an unknown API
key, version-99 requests, a record batch with a wrong CRC and an array claiming 2^31 - 1
elements. Each gets what a Kafka broker gives: a close, or an error in the response. The
producer and consumer must see every record, in order, throughout.
"""

import random
import socket
import struct
import threading
import time

import crc32c
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

CLOSE_WAIT_S = 10.0
LIVE_RECORDS_MAX = 400
LIVE_SECONDS_MAX = 60.0


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def request_header(api_key: int, version: int, correlation_id: int) -> bytes:
    client_id = b"strom-bad-input"
    return struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id


def read_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def read_response(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", read_exact(sock, 4))
    assert 0 < size < 1 << 20
    return read_exact(sock, size)


def closed_by_broker(sock: socket.socket) -> bool:
    """True when the broker closes the connection (EOF or reset) without sending anything."""
    sock.settimeout(CLOSE_WAIT_S)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def connect(broker) -> socket.socket:
    return socket.create_connection(("127.0.0.1", broker.port), timeout=CLOSE_WAIT_S)


def varint(n: int) -> bytes:
    zigzag = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        byte = zigzag & 0x7F
        zigzag >>= 7
        if zigzag:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def record_batch(value: bytes) -> bytes:
    """One uncompressed RecordBatch v2 holding one record, with a correct CRC-32C."""
    record = b"\x00" + varint(0) + varint(0) + varint(-1) + varint(len(value)) + value + varint(0)
    records = varint(len(record)) + record
    now_ms = int(time.time() * 1000)
    after_crc = struct.pack(">hiqqqhii", 0, 0, now_ms, now_ms, -1, -1, -1, 1) + records
    crc = crc32c.crc32c(after_crc)
    after_length = struct.pack(">ibI", -1, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def produce_v3(sock: socket.socket, topic: str, batch: bytes, correlation_id: int) -> int:
    """Sends Produce v3 (acks=1) of one batch to partition 0; returns the partition's error code."""
    name = topic.encode()
    body = (
        request_header(0, 3, correlation_id)
        + struct.pack(">hhi", -1, 1, 10_000)
        + struct.pack(">ih", 1, len(name)) + name
        + struct.pack(">iii", 1, 0, len(batch)) + batch
    )
    sock.sendall(frame(body))
    resp = read_response(sock)
    (got_correlation_id, topics, name_len) = struct.unpack(">iih", resp[:10])
    assert got_correlation_id == correlation_id and topics == 1
    at = 10 + name_len
    (partitions, index, error_code) = struct.unpack(">iih", resp[at : at + 10])
    assert partitions == 1 and index == 0
    return error_code


class LiveTraffic:
    """A producer and a consumer on their own connections, running until stopped."""

    def __init__(self, broker, topic):
        self.topic = topic
        self.sent = []
        self.acked = []
        self.errors = []
        self.received = []
        self.stop = threading.Event()
        self.producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0})
        self.consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                                  "enable.auto.commit": False})
        self.consumer.assign([TopicPartition(topic, 0, 0)])
        self.threads = [threading.Thread(target=self.produce), threading.Thread(target=self.consume)]

    def produce(self):
        deadline = time.monotonic() + LIVE_SECONDS_MAX
        i = 0
        while not self.stop.is_set() and i < LIVE_RECORDS_MAX and time.monotonic() < deadline:
            value = f"live-{i}".encode()
            self.sent.append(value)
            self.producer.produce(self.topic, value, partition=0, on_delivery=self.delivered)
            self.producer.poll(0.02)
            i += 1
        self.producer.flush(30)

    def delivered(self, err, msg):
        if err is not None:
            self.errors.append(str(err))
        else:
            self.acked.append(msg.value())

    def consume(self):
        deadline = time.monotonic() + LIVE_SECONDS_MAX + 30
        while time.monotonic() < deadline:
            if self.stop.is_set() and len(self.received) >= len(self.acked) and not self.threads[0].is_alive():
                break
            msg = self.consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                self.received.append(msg.value())
        self.consumer.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=LIVE_SECONDS_MAX + 60)


def create_topic(broker, topic, partitions=1):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(timeout=30)


def test_hostile_connections_do_not_disturb_other_clients(make_broker):
    broker = make_broker()
    create_topic(broker, "live")
    create_topic(broker, "target")
    rng = random.Random(20261122)

    with LiveTraffic(broker, "live") as live:
        # Random bytes: a random length prefix (negative or far over the limit here).
        noise = rng.randbytes(4096)
        assert struct.unpack(">i", noise[:4])[0] < 0 or struct.unpack(">i", noise[:4])[0] > 100 * 1024 * 1024
        with connect(broker) as s:
            s.sendall(noise)
            assert closed_by_broker(s), "random bytes"
        # Random bytes inside a well-formed frame: the header does not parse.
        with connect(broker) as s:
            s.sendall(frame(b"\x7f\x7f" + rng.randbytes(510)))
            assert closed_by_broker(s), "random frame body"
        # A length prefix over socket.request.max.bytes (100 MiB).
        with connect(broker) as s:
            s.sendall(struct.pack(">i", 100 * 1024 * 1024 + 1))
            assert closed_by_broker(s), "oversized length prefix"
        # A truncated frame: the client sends part of it and stops writing.
        with connect(broker) as s:
            s.sendall(struct.pack(">i", 100) + request_header(3, 1, 7)[:6])
            s.shutdown(socket.SHUT_WR)
            assert closed_by_broker(s), "truncated frame"
        # An unknown API key.
        with connect(broker) as s:
            s.sendall(frame(request_header(9999, 0, 1)))
            assert closed_by_broker(s), "unknown api key"
        # Metadata v99: Kafka closes the connection.
        with connect(broker) as s:
            s.sendall(frame(request_header(3, 99, 1) + b"\x00\x00\x00\x00"))
            assert closed_by_broker(s), "Metadata v99"
        # ApiVersions v99: a v0 body with UNSUPPORTED_VERSION (35) and the broker's ranges.
        # Versions past 3 are flexible, so the request header ends with empty tagged fields.
        with connect(broker) as s:
            s.sendall(frame(request_header(18, 99, 5) + b"\x00"))
            resp = read_response(s)
            correlation_id, error_code, count = struct.unpack(">ihi", resp[:10])
            assert (correlation_id, error_code) == (5, 35) and count >= 1
        # Metadata v1 whose topic array claims 2^31 - 1 elements.
        with connect(broker) as s:
            s.sendall(frame(request_header(3, 1, 1) + struct.pack(">i", 0x7FFFFFFF)))
            assert closed_by_broker(s), "array claiming 2^31-1 elements"
        # A record batch with a wrong CRC: CORRUPT_MESSAGE (2) for that partition; the
        # connection stays usable and a correct batch is then accepted.
        with connect(broker) as s:
            good = record_batch(b"checked")
            bad = bytearray(good)
            bad[-2] ^= 0x01
            assert produce_v3(s, "target", bytes(bad), 1) == 2
            assert produce_v3(s, "target", good, 2) == 0

    assert live.errors == []
    assert len(live.sent) > 0 and live.acked == live.sent
    assert live.received == live.acked
    assert broker.proc.poll() is None


def test_two_brokers_side_by_side_and_a_locked_data_dir(make_broker):
    first, second = make_broker(), make_broker()
    for b, tag in ((first, b"first"), (second, b"second")):
        create_topic(b, "side", 2)
        p = Producer({"bootstrap.servers": b.bootstrap})
        for i in range(20):
            p.produce("side", tag + b"-%d" % i, partition=i % 2)
        assert p.flush(30) == 0
    for b, tag in ((first, b"first"), (second, b"second")):
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "unused", "enable.auto.commit": False})
        c.assign([TopicPartition("side", 0, 0), TopicPartition("side", 1, 0)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 20 and time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
        c.close()
        assert sorted(got) == sorted(tag + b"-%d" % i for i in range(20))

    # A third process on the first broker's data dir fails fast and says why.
    import subprocess

    from conftest import free_port, strom_binary

    port, controller_port = free_port(), free_port()
    out = subprocess.run(
        [str(strom_binary()), "server",
         "--override", "node.id=1",
         "--override", f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
         "--override", f"log.dirs={first.data_dir / 'data'}"],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode != 0
    assert "in use" in (out.stdout + out.stderr).lower() or "lock" in (out.stdout + out.stderr).lower()
