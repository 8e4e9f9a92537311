"""Committed offsets outside a group's membership: a consumer that assigns partitions
itself commits with no generation (a "simple" commit), with metadata strings that read back
through other clients, and metadata over offset.metadata.max.bytes (4096) is refused with
OFFSET_METADATA_TOO_LARGE.

Metadata is written with kafka-python: confluent-kafka-python sends its metadata as a C
string with the terminating NUL counted in its length (so "m" is stored as "m\\0", and
4096 characters are 4097 bytes); Kafka stores those bytes as they come, and so does Strom."""

import pytest
from confluent_kafka import Consumer, TopicPartition
from kafka import KafkaConsumer
from kafka.errors import OffsetMetadataTooLargeError
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KpTopicPartition

from group_fixtures import PARTITIONS, create_topic, group_broker  # noqa: F401 (fixtures)

TIMEOUT_S = 30


def kp_consumer(broker, group):
    return KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False,
                         request_timeout_ms=TIMEOUT_S * 1000)


def test_simple_commit_with_metadata_reads_back_everywhere(group_broker, topic_name):
    """kafka-python assigns partitions itself (no JoinGroup) and commits offsets with a
    metadata string per partition; kafka-python and librdkafka read back the same offsets
    and metadata; a later librdkafka commit without metadata replaces offset and metadata
    (Kafka stores a missing metadata as "")."""
    create_topic(group_broker, topic_name, PARTITIONS)
    group = f"g-{topic_name}"
    kp = kp_consumer(group_broker, group)
    try:
        kp.assign([KpTopicPartition(topic_name, p) for p in range(3)])
        kp.commit({KpTopicPartition(topic_name, p): OffsetAndMetadata(2 + p, f"meta-{p}", -1) for p in range(3)})
        read = {p: kp.committed(KpTopicPartition(topic_name, p), metadata=True) for p in range(3)}
        assert {p: (om.offset, om.metadata) for p, om in read.items()} == {p: (2 + p, f"meta-{p}") for p in range(3)}
        assert kp.committed(KpTopicPartition(topic_name, 4)) is None
    finally:
        kp.close()
    c = Consumer({"bootstrap.servers": group_broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "log_level": 0})
    try:
        got = c.committed([TopicPartition(topic_name, p) for p in range(PARTITIONS)], timeout=TIMEOUT_S)
        assert [(tp.partition, tp.offset, tp.metadata) for tp in got[:3]] == [(p, 2 + p, f"meta-{p}") for p in range(3)]
        assert all(tp.offset < 0 for tp in got[3:]), got  # never committed: no offset
        c.commit(offsets=[TopicPartition(topic_name, 0, 9)], asynchronous=False)
    finally:
        c.close()
    kp = kp_consumer(group_broker, group)
    try:
        om = kp.committed(KpTopicPartition(topic_name, 0), metadata=True)
        assert (om.offset, om.metadata) == (9, "")
    finally:
        kp.close()


def test_metadata_over_the_limit_is_refused(group_broker, topic_name):
    """offset.metadata.max.bytes defaults to 4096: metadata of 4096 bytes is stored, 4097
    bytes gets OFFSET_METADATA_TOO_LARGE and leaves the offset as it was."""
    create_topic(group_broker, topic_name, PARTITIONS)
    kp = kp_consumer(group_broker, f"g-{topic_name}")
    tp = KpTopicPartition(topic_name, 0)
    try:
        kp.assign([tp])
        kp.commit({tp: OffsetAndMetadata(1, "x" * 4096, -1)})
        with pytest.raises(OffsetMetadataTooLargeError):
            kp.commit({tp: OffsetAndMetadata(2, "y" * 4097, -1)})
        om = kp.committed(tp, metadata=True)
        assert (om.offset, om.metadata) == (1, "x" * 4096)
    finally:
        kp.close()
