"""KIP-714 client metrics: a subscription set as a CLIENT_METRICS config resource with the Java
Admin (IncrementalAlterConfigs, listed by ListConfigResources v0 and v1, described by
DescribeConfigs), then the Java producer (kafka-clients 4.3) and librdkafka (confluent-kafka)
push their metrics, which appear on /metrics labelled with the client instance and client id,
and in the console."""

import os
import shutil
import time
import uuid

import pytest
from confluent_kafka import Producer

from conftest import TOOLS, TOOL_TIMEOUT_S, run_tool
from test_metrics import Scrape, create_topic, http_args, http_get

TIMEOUT_S = 30


def client_metrics_tool(*args):
    classes, libs = TOOLS / "java-classes", TOOLS / "java-libs"
    if not (classes / "ClientMetricsTool.class").is_file():
        pytest.fail("Java helper not compiled: run scripts/setup-clients")
    java = shutil.which("java") or "java"
    cmd = [java, "-cp", f"{classes}{os.pathsep}{libs}/*", "ClientMetricsTool"] + [str(a) for a in args]
    return run_tool(cmd, "java ClientMetricsTool " + " ".join(map(str, args[:1])), TOOL_TIMEOUT_S)


def pushed(scrape, client_id, prefix):
    """The pushed series of `client_id` whose family starts with `prefix`."""
    return {
        (name, labels): value
        for (name, labels), value in scrape.samples.items()
        if name.startswith(prefix) and ("client_id", client_id) in labels
    }


def test_subscriptions_are_client_metrics_configs_and_pushed_metrics_reach_metrics(make_broker):
    broker = make_broker(http_args("{http_port}"))
    port = broker.http_port
    bootstrap = broker.bootstrap
    topic = f"telemetry-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, 1)

    # Kafka's validation: unknown keys and intervals out of range are INVALID_REQUEST, bad
    # match patterns INVALID_CONFIG; nothing is stored.
    bad = client_metrics_tool("alter", bootstrap, "bad", "no.such.key=1")
    assert bad["error"] == "InvalidRequestException", bad
    assert "no.such.key" in bad["message"]
    bad = client_metrics_tool("alter", bootstrap, "bad", "interval.ms=50")
    assert bad["error"] == "InvalidRequestException", bad
    bad = client_metrics_tool("alter", bootstrap, "bad", "match=client_colour=red")
    assert bad["error"] == "InvalidConfigurationException", bad
    assert bad["listed"] == [] and bad["listed_v0"] == []

    name = "producers"
    set_ = client_metrics_tool("alter", bootstrap, name, "metrics=org.apache.kafka.producer.",
                               "interval.ms=500", "match=client_id=.*-telemetry")
    assert set_["error"] is None, set_
    assert set_["listed"] == [name] and set_["listed_v0"] == [name]
    configs = set_["configs"]
    assert configs["metrics"] == {"value": "org.apache.kafka.producer.", "source": "DYNAMIC_CLIENT_METRICS_CONFIG"}
    assert configs["interval.ms"] == {"value": "500", "source": "DYNAMIC_CLIENT_METRICS_CONFIG"}
    assert configs["match"] == {"value": "client_id=.*-telemetry", "source": "DYNAMIC_CLIENT_METRICS_CONFIG"}

    before = Scrape(port)
    # The Java producer pushes (zstd-compressed OTLP) every 500 ms while it runs, and a
    # terminating push as it closes.
    java = client_metrics_tool("produce", bootstrap, topic, "java-telemetry", 4000)
    assert java["sent"] > 0
    after = Scrape(port)
    series = pushed(after, "java-telemetry", "kafka_client_org_apache_kafka_producer_")
    assert series, f"no pushed producer metrics on /metrics:\n{after.text[-3000:]}"
    ids = {dict(labels)["client_instance_id"] for _, labels in series}
    assert ids == {java["client_instance_id"]}
    assert any("record_send" in name or "record_queue_time" in name for name, _ in series), sorted(series)[:20]
    assert after.get("strom_client_metrics_pushes_total") > before.get("strom_client_metrics_pushes_total")
    assert after.get("strom_client_metrics_instances") >= 1

    # librdkafka (confluent-kafka 2.16) pushes too, under its own client id.
    p = Producer({"bootstrap.servers": bootstrap, "client.id": "rdkafka-telemetry"})
    try:
        deadline = time.monotonic() + TIMEOUT_S
        found = {}
        while time.monotonic() < deadline and not found:
            p.produce(topic, b"v")
            p.poll(0.2)
            found = pushed(Scrape(port), "rdkafka-telemetry", "kafka_client_org_apache_kafka_producer_")
        assert found, "librdkafka's pushed metrics never reached /metrics"
        assert p.flush(TIMEOUT_S) == 0
    finally:
        p.flush(TIMEOUT_S)

    # A client the subscription does not match is asked for nothing and pushes nothing.
    other = client_metrics_tool("produce", bootstrap, topic, "unmatched", 1500)
    assert not pushed(Scrape(port), "unmatched", "kafka_client_")
    assert other["client_instance_id"]

    # The console lists the client instances with what they pushed.
    status, page, _ = http_get(port, "/clients")
    assert status == 200
    assert java["client_instance_id"] in page and "rdkafka-telemetry" in page
    assert "org.apache.kafka.producer." in page

    # Deleting every key removes the subscription.
    gone = client_metrics_tool("alter", bootstrap, name, "metrics=", "interval.ms=", "match=")
    assert gone["error"] is None, gone
    assert gone["listed"] == [] and gone["listed_v0"] == []
    assert gone["configs"]["interval.ms"] == {"value": "300000", "source": "DEFAULT_CONFIG"}
