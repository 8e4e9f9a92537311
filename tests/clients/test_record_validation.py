"""Batches whose records lie about their structure are refused with Kafka's error code and
never stored, on a normal topic, compressed or not: a record's header count of 2^31-1 or -5,
a key length of -5, a record length one byte too long, an offset delta out of place, a record
count the records do not fill, bytes after the last record. Each is sent by hand (raw Produce
v7 on a socket, with a correct CRC), between good batches; a kafka-python consumer reading the
topic from the beginning then sees exactly the good records, in order (kafka-python stops at
such a record, so anything stored would show)."""

import gzip
import socket
import struct
import time

import crc32c
import zstandard
from kafka import KafkaConsumer, TopicPartition

import test_kafka_python as kp

TIMEOUT_S = 30
INVALID_RECORD = 87
CODECS = {"none": (0, lambda b: b), "gzip": (1, gzip.compress), "zstd": (4, lambda b: zstandard.ZstdCompressor().compress(b))}


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


def record(offset_delta, value, key=b"key", key_len=None, header_count=0, length_error=0):
    """One record (attributes 0, timestamp delta 0), each field free to lie."""
    body = b"\x00" + varint(0) + varint(offset_delta)
    body += varint(len(key) if key_len is None else key_len) + key
    body += varint(len(value)) + value + varint(header_count)
    return varint(len(body) + length_error) + body


def batch(records, count, codec, trailing=b""):
    """A RecordBatch v2 with a correct CRC around `records` (plus `trailing`), claiming `count`."""
    codec_id, compress = CODECS[codec]
    payload = compress(b"".join(records) + trailing)
    now_ms = int(time.time() * 1000)
    after_crc = struct.pack(">hiqqqhii", codec_id, count - 1, now_ms, now_ms, -1, -1, -1, count) + payload
    after_length = struct.pack(">ibI", -1, 2, crc32c.crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def produce_v7(sock, topic: str, records: bytes, correlation_id: int) -> int:
    """Produce v7 (acks=-1) of one batch to partition 0; returns the partition's error code."""
    client_id = b"strom-record-validation"
    name = topic.encode()
    body = (
        struct.pack(">hhih", 0, 7, correlation_id, len(client_id)) + client_id
        + struct.pack(">hhi", -1, -1, 10_000)
        + struct.pack(">ih", 1, len(name)) + name
        + struct.pack(">iii", 1, 0, len(records)) + records
    )
    sock.sendall(struct.pack(">i", len(body)) + body)
    (size,) = struct.unpack(">i", read_exact(sock, 4))
    resp = read_exact(sock, size)
    (got, topics, name_len) = struct.unpack(">iih", resp[:10])
    assert got == correlation_id and topics == 1
    at = 10 + name_len
    (partitions, index, error_code) = struct.unpack(">iih", resp[at : at + 10])
    assert partitions == 1 and index == 0
    return error_code


def lies(codec):
    """(what, batch): two records each, the second lying, or the batch around them."""
    good = record(0, b"bad")
    return [
        ("header count 2^31-1", batch([good, record(1, b"bad", header_count=2**31 - 1)], 2, codec)),
        ("header count -5", batch([good, record(1, b"bad", header_count=-5)], 2, codec)),
        ("key length -5", batch([good, record(1, b"bad", key_len=-5)], 2, codec)),
        ("record length one too long", batch([good, record(1, b"bad", length_error=1)], 2, codec)),
        ("offset delta 5 at position 1", batch([good, record(5, b"bad")], 2, codec)),
        ("three records claimed", batch([good, record(1, b"bad")], 3, codec)),
        ("bytes after the records", batch([good, record(1, b"bad")], 2, codec, trailing=b"\x00\x00")),
    ]


def test_lying_records_are_refused_and_consumers_see_only_good_ones(broker, topic_name):
    kp.create_topic(broker, topic_name, partitions=1)
    expected = []
    correlation_id = 0
    with socket.create_connection(("127.0.0.1", broker.port), timeout=TIMEOUT_S) as sock:
        for codec in CODECS:
            for what, bad in lies(codec):
                correlation_id += 1
                good_value = f"good-{codec}-{correlation_id}".encode()
                good = batch([record(0, good_value)], 1, codec)
                assert produce_v7(sock, topic_name, good, correlation_id) == 0, f"good batch ({codec})"
                expected.append(good_value)
                correlation_id += 1
                code = produce_v7(sock, topic_name, bad, correlation_id)
                assert code == INVALID_RECORD, f"{what} ({codec}): error {code}"

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                             request_timeout_ms=TIMEOUT_S * 1000 + 1000)
    try:
        tp = TopicPartition(topic_name, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        assert consumer.end_offsets([tp])[tp] == len(expected), "only the good records were stored"
        got, deadline = [], time.monotonic() + TIMEOUT_S
        while len(got) < len(expected) and time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=200).values():
                got += [(m.offset, m.key, m.value) for m in recs]
    finally:
        consumer.close()
    assert got == [(i, b"key", v) for i, v in enumerate(expected)]
