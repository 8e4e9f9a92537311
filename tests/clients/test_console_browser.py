"""The web console in headless Chromium (Debian's `chromium`, driven by playwright-core from
`js/console_browser.js`; both installed by scripts/setup-clients) against a real broker: the
console lists a topic a client created, shows a produced record in the message browser and a
group's lag, creates a topic and changes a config through the UI; a Kafka client then sees
the new topic and config. Screenshots go to target/console-screenshots/."""

import json
import shutil
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from conftest import HERE, ROOT, run_tool
from test_console import topic_metadata, wait_for
from test_metrics import create_topic, http_args

TIMEOUT_S = 30
SCREENSHOTS = ROOT / "target" / "console-screenshots"


def chromium():
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: run scripts/setup-clients")
    if not (HERE / "node_modules" / "playwright-core").is_dir():
        pytest.fail("playwright-core is not installed: run scripts/setup-clients")
    return path


def test_console_in_headless_chromium(make_broker):
    browser = chromium()
    broker = make_broker(http_args("{http_port}"))
    port = broker.http_port
    bootstrap = broker.bootstrap
    topic = f"browser-{uuid.uuid4().hex[:8]}"
    group = f"browser-group-{uuid.uuid4().hex[:8]}"
    new_topic = f"browser-new-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, 1)
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(5):
        p.produce(topic, key=f"k{i}".encode(), value=json.dumps({"order": i, "item": "tea"}).encode(), partition=0)
    assert p.flush(TIMEOUT_S) == 0
    # The group has consumed (and committed) two records: lag 3.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        c.subscribe([topic])
        got = 0
        deadline_polls = 120
        while got < 2 and deadline_polls > 0:
            deadline_polls -= 1
            msg = c.poll(0.5)
            if msg is not None and msg.error() is None:
                got += 1
                c.commit(message=msg, asynchronous=False)
        assert got == 2
    finally:
        c.close()

    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    node = shutil.which("node") or "node"
    request = {"base": f"http://127.0.0.1:{port}", "chromium": browser, "screenshots": str(SCREENSHOTS),
               "topic": topic, "group": group, "newTopic": new_topic, "timeoutMs": TIMEOUT_S * 1000}
    seen = run_tool([node, str(HERE / "js" / "console_browser.js")], "console in chromium", 180,
                    stdin=json.dumps(request).encode())

    assert seen["topicListed"], seen
    # group, topic, partition, committed offset, high watermark, lag
    assert [group, topic, "0", "2", "5", "3"] in seen["groupLagCells"], seen["groupLagCells"]
    assert '"item": "tea"' in seen["browserText"] and '"order": 4' in seen["browserText"], seen["browserText"]
    assert seen["createOutcome"] == f"Created topic {new_topic} with 2 partition(s).", seen
    assert seen["configOutcome"] == f"Set retention.ms=7200000 on topic {new_topic}.", seen
    assert "retention.ms\t7200000" in seen["topicPage"], seen["topicPage"]
    for shot in seen["screenshots"]:
        with open(shot, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", shot
    assert len(seen["screenshots"]) == 4

    # A Kafka client sees what the UI did.
    meta = wait_for(lambda: topic_metadata(bootstrap, new_topic), "the topic created in the UI")
    assert len(meta.partitions) == 2
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, new_topic)
    described = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)
    assert described["retention.ms"].value == "7200000"
    # The produced records are still exactly those the client wrote.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{group}-check", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        msg = wait_for(lambda: (m := c.poll(0.5)) is not None and m.error() is None and m, "a record")
        assert json.loads(msg.value()) == {"order": 0, "item": "tea"}
    finally:
        c.close()
