"""The console's write actions over HTTP against the real broker, each checked through a
Kafka client (confluent-kafka, kafka-python): create a topic, change a config, add
partitions, produce a test message, reset a group's offsets, delete the topic; refusals of
cross-site posts; and the message browser by timestamp, as JSON and searched by key."""

import html
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from test_metrics import http_args, http_get

TIMEOUT_S = 30


def token(port):
    status, page, _ = http_get(port, "/")
    assert status == 200
    found = re.search(r'name=csrf value="([0-9a-f]+)"', page)
    assert found, "no form token on the console page"
    return found.group(1)


def post(port, path, fields, origin="same", csrf=None):
    """POSTs a form; returns (status, body). `origin`: "same" sends the console's own origin,
    None sends none, anything else is sent as is."""
    data = urllib.parse.urlencode(fields if csrf is None else {**fields, "csrf": csrf}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    if origin == "same":
        request.add_header("Origin", f"http://127.0.0.1:{port}")
    elif origin is not None:
        request.add_header("Origin", origin)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def outcome(body):
    found = re.search(r"<p id=outcome>(.*?)</p>", body, re.S)
    return html.unescape(found.group(1)) if found else body


def topic_metadata(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.list_topics(topic=None, timeout=TIMEOUT_S).topics.get(topic)


def wait_for(check, what):
    deadline = time.monotonic() + TIMEOUT_S
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


def test_console_write_actions_go_through_kafka_and_refuse_cross_site_posts(make_broker):
    broker = make_broker(http_args("{http_port}"))
    port = broker.http_port
    bootstrap = broker.bootstrap
    csrf = token(port)
    topic = f"console-w-{uuid.uuid4().hex[:8]}"

    # Cross-site or token-less posts change nothing.
    assert post(port, "/topics", {"name": topic, "partitions": "2"}, csrf=None)[0] == 403
    assert post(port, "/topics", {"name": topic}, origin="http://evil.example", csrf=csrf)[0] == 403
    assert post(port, "/topics", {"name": topic}, csrf="0" * len(csrf))[0] == 403
    assert topic_metadata(bootstrap, topic) is None
    # GET never changes anything.
    assert http_get(port, "/topics?name=x")[0] in (404, 405)

    # Create: the Kafka client sees the topic with its partitions.
    status, body = post(port, "/topics", {"name": topic, "partitions": "2", "replication_factor": ""}, csrf=csrf)
    assert status == 200, body
    assert outcome(body) == f"Created topic {topic} with 2 partition(s)."
    meta = wait_for(lambda: topic_metadata(bootstrap, topic), "the created topic")
    assert len(meta.partitions) == 2
    # Creating it again is Kafka's TOPIC_ALREADY_EXISTS, shown as it is.
    status, body = post(port, "/topics", {"name": topic, "partitions": "2"}, origin=None, csrf=csrf)
    assert status == 400 and "TOPIC_ALREADY_EXISTS" in outcome(body), body

    # Edit a config; then delete it back to the default; an unknown key is refused.
    status, body = post(port, f"/topics/{topic}/configs", {"key": "retention.ms", "value": "3600000"}, csrf=csrf)
    assert status == 200, body
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, topic)
    described = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)
    assert described["retention.ms"].value == "3600000"
    status, body = post(port, f"/topics/{topic}/configs", {"key": "no.such.config", "value": "1"}, csrf=csrf)
    assert status == 400 and "INVALID_CONFIG" in outcome(body), body
    status, body = post(port, f"/topics/{topic}/configs", {"key": "retention.ms", "value": ""}, csrf=csrf)
    assert status == 200, body
    described = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)
    assert described["retention.ms"].value == "604800000"

    # Add partitions.
    status, body = post(port, f"/topics/{topic}/partitions", {"total": "3"}, csrf=csrf)
    assert status == 200, body
    wait_for(lambda: len(topic_metadata(bootstrap, topic).partitions) == 3, "three partitions")
    status, body = post(port, f"/topics/{topic}/partitions", {"total": "2"}, csrf=csrf)
    assert status == 400 and "INVALID_PARTITIONS" in outcome(body), body

    # Produce a test message; a consumer reads exactly it.
    status, body = post(port, f"/topics/{topic}/produce",
                        {"partition": "1", "key": "order-17", "value": '{"id":17,"item":"tea"}'}, csrf=csrf)
    assert status == 200, body
    assert outcome(body) == f"Produced 1 record to {topic} partition 1 at offset 0."
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 1, 0)])
        msg = wait_for(lambda: (m := c.poll(0.5)) is not None and m.error() is None and m, "the produced record")
        assert msg.key() == b"order-17" and msg.value() == b'{"id":17,"item":"tea"}'
    finally:
        c.close()

    # The browser: by timestamp, as JSON, searched by key.
    more = Producer({"bootstrap.servers": bootstrap})
    for i in range(20):
        more.produce(topic, key=f"k-{i}".encode(), value=f"v-{i}".encode(), partition=0, timestamp=1_700_000_000_000 + i * 1000)
    assert more.flush(TIMEOUT_S) == 0
    status, page, _ = http_get(port, f"/topics/{topic}/0?timestamp={1_700_000_000_000 + 15_000}")
    assert status == 200 and "Showing from 15." in page, page[-2000:]
    assert "v-15" in page and "v-14" not in page
    status, page, _ = http_get(port, f"/topics/{topic}/1?offset=0&format=json")
    assert status == 200 and "&quot;item&quot;: &quot;tea&quot;" in page
    status, page, _ = http_get(port, f"/topics/{topic}/0?key=k-1")
    assert status == 200
    shown = set(re.findall(r"<pre>(v-\d+)</pre>", page))
    assert shown == {"v-1"} | {f"v-{i}" for i in range(10, 20)}, shown

    # Reset a group's offsets: commit through a consumer, then reset to earliest and to a
    # given offset; the Kafka client's committed offsets follow.
    group = f"console-group-{uuid.uuid4().hex[:8]}"
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    def committed():
        try:
            c.commit(offsets=[TopicPartition(topic, 0, 20)], asynchronous=False)
            return True
        except KafkaException as e:
            # The offsets topic is created by the first FindCoordinator: until it is there
            # the commit is refused with a coordinator error, which the client retries.
            assert e.args[0].code() in (KafkaError.NOT_COORDINATOR, KafkaError._WAIT_COORD,
                                        KafkaError.COORDINATOR_NOT_AVAILABLE,
                                        KafkaError.COORDINATOR_LOAD_IN_PROGRESS), e
            return False

    try:
        wait_for(committed, "a first commit")
    finally:
        c.close()
    status, body = post(port, f"/groups/{group}/reset", {"topic": topic, "to": "earliest"}, csrf=csrf)
    assert status == 200, body
    status, body = post(port, f"/groups/{group}/reset", {"topic": topic, "to": "offset", "offset": "5"}, csrf=csrf)
    assert status == 200, body
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        committed = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=TIMEOUT_S)
        assert [tp.offset for tp in committed] == [5, 5, 5]
    finally:
        c.close()
    status, body = post(port, f"/groups/{group}/reset", {"topic": topic, "to": "latest"}, csrf=csrf)
    assert status == 200, body
    assert "partition 0 to 20;" in outcome(body) and "partition 1 to 1;" in outcome(body), body

    # Delete the topic.
    status, body = post(port, f"/topics/{topic}/delete", {}, csrf=csrf)
    assert status == 200, body
    wait_for(lambda: topic_metadata(bootstrap, topic) is None, "the topic gone")
