"""Records written by one client and read by another: each pair crosses codecs and framing
choices (librdkafka's batches, the Java client's, kafka-python's)."""

import test_confluent_kafka as ck
import test_java as jv
import test_kafka_python as kp
from kcat_client import kcat_record_set
from kcat_client import produce as kcat_produce
from records import check_consumed, record_set


def test_kcat_to_java(broker, kcat, java_tool, topic_name):
    kp.create_topic(broker, topic_name)
    records = kcat_record_set("cross-kcat", count=12)
    kcat_produce(kcat, broker.bootstrap, topic_name, records, "lz4")
    check_consumed(records, jv.consume(java_tool, broker, topic_name, len(records)))


def test_java_to_confluent(broker, java_tool, topic_name):
    jv.create(java_tool, broker, topic_name)
    records = record_set("cross-java")
    jv.produce(java_tool, broker, topic_name, records, "snappy", "enable.idempotence=false")
    check_consumed(records, ck.consume(broker, topic_name, len(records)))


def test_confluent_to_kafka_python(broker, topic_name):
    ck.create_topic(broker, topic_name)
    records = record_set("cross-confluent")
    ck.produce(broker, topic_name, records, "zstd")
    check_consumed(records, kp.consume(broker, topic_name, len(records)))


def test_kafka_python_to_java(broker, java_tool, topic_name):
    kp.create_topic(broker, topic_name)
    records = record_set("cross-kafka-python")
    kp.produce(broker, topic_name, records, "gzip")
    check_consumed(records, jv.consume(java_tool, broker, topic_name, len(records)))
