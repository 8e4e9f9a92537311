"""Batches whose records lie about their structure are refused with Kafka's error code and
never stored, on a normal topic, compressed or not: a record's header count of 2^31-1 or -5,
a key length of -5, a record length one byte too long, an offset delta out of place, a record
count the records do not fill, bytes after the last record. Each is sent by hand (raw Produce
v7 on a socket, with a correct CRC), between good batches; a kafka-python consumer reading the
topic from the beginning then sees exactly the good records, in order (kafka-python stops at
such a record, so anything stored would show).

Records that break Kafka's per-record rules (no key on a compacted topic, a timestamp out of
range) refuse their whole batch, and the response names each one (record_errors): librdkafka
(confluent-kafka), kafka-python and the Java producer fail exactly those records with the
error and the others as part of an invalid batch."""

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


# Per-record errors. Kafka refuses a whole batch when records break its per-record rules
# (a keyless record on a compacted topic, a CreateTime timestamp out of range) and names each
# such record in the Produce response's record_errors; clients fail exactly those records
# with the error and the rest as "part of a batch which had invalid records". Each client
# sends 100 records in one batch to partition 0 of a compacted topic, every tenth (3, 13,
# ..., 93) without a key, and must report 10 + 90, with nothing stored.

RECORDS = 100
KEYLESS = [i for i in range(RECORDS) if i % 10 == 3]
INVALID_TIMESTAMP = 32


def keyless_message(topic):
    return f"Compacted topic cannot accept message without key in topic partition {topic}-0."


def create_compacted(broker, topic, **config):
    kp.create_topic(broker, topic, partitions=1,
                    config={"cleanup.policy": "compact", "message.timestamp.before.max.ms": "60000", **config})


def stored(broker, topic):
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                             request_timeout_ms=TIMEOUT_S * 1000 + 1000)
    try:
        tp = TopicPartition(topic, 0)
        return consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


def confluent_outcomes(broker, topic, records):
    """Sends (key, value, timestamp_ms or None) records in one batch with librdkafka; each
    record's (error code or None, error string)."""
    from confluent_kafka import Producer
    # One batch: flush() sends at once whatever linger.ms says, so a linger longer than the
    # produce loop can take on a loaded machine keeps every record in the same batch.
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": TIMEOUT_S * 1000 - 5000,
                         "message.timeout.ms": TIMEOUT_S * 1000, "enable.idempotence": False})
    outcomes = [None] * len(records)

    def report(i):
        def on_delivery(err, msg):
            outcomes[i] = (err.code() if err else None, err.str() if err else None)
        return on_delivery

    for i, (key, value, timestamp_ms) in enumerate(records):
        extra = {"timestamp": timestamp_ms} if timestamp_ms is not None else {}
        producer.produce(topic, value=value, key=key, partition=0, on_delivery=report(i), **extra)
    assert producer.flush(TIMEOUT_S) == 0, "every delivery report arrived"
    return outcomes


def with_keyless():
    return [(None if i in KEYLESS else f"k{i}".encode(), f"v{i}".encode(), None) for i in range(RECORDS)]


def test_librdkafka_fails_exactly_the_keyless_records(broker, topic_name):
    from confluent_kafka import KafkaError
    create_compacted(broker, topic_name)
    outcomes = confluent_outcomes(broker, topic_name, with_keyless())
    failed = [i for i, (code, _) in enumerate(outcomes) if code == KafkaError.INVALID_RECORD]
    assert failed == KEYLESS, outcomes
    # (confluent-kafka's delivery error carries librdkafka's text for the code, not the
    # broker's per-record message: kafka-python and Java check those below.)
    others = [code for i, (code, _) in enumerate(outcomes) if i not in KEYLESS]
    assert others == [KafkaError._INVALID_DIFFERENT_RECORD] * (RECORDS - len(KEYLESS)), outcomes
    assert stored(broker, topic_name) == 0


def test_librdkafka_fails_exactly_the_records_with_old_timestamps(broker, topic_name):
    from confluent_kafka import KafkaError
    create_compacted(broker, topic_name)
    now_ms = int(time.time() * 1000)
    old = [5, 50]
    records = [(f"k{i}".encode(), b"v", now_ms - 3_600_000 if i in old else now_ms) for i in range(RECORDS)]
    outcomes = confluent_outcomes(broker, topic_name, records)
    # More than one record error: librdkafka reports each listed record as INVALID_RECORD
    # (the partition's code, INVALID_TIMESTAMP, only when a single record is listed).
    failed = [i for i, (code, _) in enumerate(outcomes) if code == KafkaError.INVALID_RECORD]
    assert failed == old, outcomes
    assert sum(code == KafkaError._INVALID_DIFFERENT_RECORD for code, _ in outcomes) == RECORDS - len(old)
    assert stored(broker, topic_name) == 0


def test_kafka_python_fails_exactly_the_keyless_records(broker, topic_name):
    from kafka import KafkaProducer
    from kafka.errors import InvalidRecordError, KafkaError
    create_compacted(broker, topic_name)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=1000, enable_idempotence=False,
                             retries=0, request_timeout_ms=TIMEOUT_S * 1000, batch_size=1 << 20)
    try:
        futures = [producer.send(topic_name, key=k, value=v, partition=0) for k, v, _ in with_keyless()]
        producer.flush(timeout=TIMEOUT_S)
    finally:
        producer.close(timeout=TIMEOUT_S)
    errors = [f.exception for f in futures]
    assert all(f.is_done for f in futures)
    failed = [i for i, e in enumerate(errors) if isinstance(e, InvalidRecordError)]
    assert failed == KEYLESS, errors
    assert all(keyless_message(topic_name) in str(errors[i]) for i in KEYLESS), errors
    others = [e for i, e in enumerate(errors) if i not in KEYLESS]
    assert all(type(e) is KafkaError and "part of a batch" in str(e) for e in others), others[:3]
    assert stored(broker, topic_name) == 0


def test_kafka_python_gets_invalid_timestamp_for_a_single_old_record(broker, topic_name):
    """One record listed: clients use the partition's code for it (INVALID_TIMESTAMP)."""
    from kafka import KafkaProducer
    from kafka.errors import InvalidTimestampError, KafkaError
    create_compacted(broker, topic_name)
    now_ms = int(time.time() * 1000)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=1000, enable_idempotence=False,
                             retries=0, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        futures = [producer.send(topic_name, key=b"k", value=b"v", partition=0,
                                 timestamp_ms=now_ms - 3_600_000 if i == 7 else now_ms) for i in range(10)]
        producer.flush(timeout=TIMEOUT_S)
    finally:
        producer.close(timeout=TIMEOUT_S)
    errors = [f.exception for f in futures]
    assert isinstance(errors[7], InvalidTimestampError), errors
    assert f"Timestamp {now_ms - 3_600_000} of message with offset 7 is out of range" in str(errors[7])
    assert all(type(e) is KafkaError for i, e in enumerate(errors) if i != 7), errors
    assert stored(broker, topic_name) == 0


def test_java_producer_fails_exactly_the_keyless_records(broker, java_tool, topic_name):
    import base64
    import pathlib
    import tempfile
    create_compacted(broker, topic_name)
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as f:
        for key, value, _ in with_keyless():
            f.write(f"{base64.b64encode(key).decode() if key else '-'}\t{base64.b64encode(value).decode()}\t\n")
    path = pathlib.Path(f.name)
    try:
        outcomes = java_tool(["produce-outcomes", broker.bootstrap, topic_name, path])["outcomes"]
    finally:
        path.unlink()
    assert len(outcomes) == RECORDS
    failed = [i for i, o in enumerate(outcomes) if o.get("error") == "org.apache.kafka.common.InvalidRecordException"]
    assert failed == KEYLESS, outcomes
    assert all(outcomes[i]["message"] == keyless_message(topic_name) for i in KEYLESS), outcomes
    others = [o for i, o in enumerate(outcomes) if i not in KEYLESS]
    assert all(o.get("error") == "org.apache.kafka.common.KafkaException" and "part of a batch" in o["message"]
               for o in others), others[:3]
    assert stored(broker, topic_name) == 0


def test_clients_cannot_write_the_offsets_topic(broker):
    """Only the group coordinator writes __consumer_offsets (its loader trusts what it reads
    there): Kafka refuses a producer with INVALID_TOPIC_EXCEPTION, and so does Strom."""
    from confluent_kafka import KafkaError, Producer
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    # FindCoordinator creates the offsets topic.
    for f in admin.describe_consumer_groups(["offsets-topic-probe"], request_timeout=TIMEOUT_S).values():
        f.result(timeout=TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    while "__consumer_offsets" not in admin.list_topics(timeout=TIMEOUT_S).topics:
        assert time.monotonic() < deadline, "__consumer_offsets was not created"
        time.sleep(0.1)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": TIMEOUT_S * 1000})
    outcomes = []
    producer.produce("__consumer_offsets", key=b"k", value=b"v", partition=0,
                     on_delivery=lambda err, msg: outcomes.append(err.code() if err else msg.offset()))
    assert producer.flush(TIMEOUT_S) == 0
    assert outcomes == [KafkaError.TOPIC_EXCEPTION], outcomes
