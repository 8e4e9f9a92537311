"""`strom consume --share-group` (strom-client's ShareConsumer) and `strom groups` for share
groups (KIP-932), checked against the Java client: the CLI reads and accepts, releases (the
records come back) or rejects (they are archived), as the share-partition start offset that
the Java Admin reads shows; a strom-client member and a Java KafkaShareConsumer share a
one-partition topic and together get every record exactly once; `strom groups
list/describe/reset-offsets/delete-offsets/delete` report and change what the Java Admin sees
(kafka-share-groups.sh's view).

Each group's start offset is set to 0 with the Java Admin (alterShareGroupOffsets) before
anything consumes, so records produced first are delivered whatever
`share.auto.offset.reset` says."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import TOOLS, Broker, strom_binary
from group_fixtures import create_topic
from share_fixtures import java_start_offset, share_tool, start_offsets  # noqa: F401 (fixture)
from test_cli import strom
from test_share_groups import produce

SHARE_ARGS = [
    "--override", "group.share.min.session.timeout.ms=6000",
    "--override", "group.share.session.timeout.ms=6000",
    "--override", "group.share.min.heartbeat.interval.ms=500",
    "--override", "group.share.heartbeat.interval.ms=500",
    "--override", "share.coordinator.state.topic.num.partitions=1",
    "--override", "strom.log.durability=sync-on-commit",
]
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def share_broker():
    b = Broker(strom_binary(), SHARE_ARGS)
    try:
        b.start()
        yield b
    finally:
        b.stop()
        if os.environ.get("STROM_KEEP_LOG"):
            print(f"\nstrom log: {b.log_path}", file=sys.stderr)
        else:
            b.cleanup()
            b.log_path.unlink(missing_ok=True)


def share_consume(broker, topic, group, *extra):
    """`strom consume --share-group` as JSON lines; returns [(offset, value)]."""
    out = strom(broker, ["consume", topic, "--share-group", group, "--output", "json", "--quiet", *extra])
    return [(m["offset"], m["value"]) for m in map(json.loads, out.decode().splitlines())]


def wait_members(share_tool, broker, group, count):
    """The Java Admin's description of the group once it has `count` members (bounded)."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        [described] = share_tool(broker, ["describe", group])
        if len(described.get("members", [])) == count or time.monotonic() > deadline:
            return described
        time.sleep(0.5)


def start_at_zero(share_tool, broker, group, topic):
    [altered] = share_tool(broker, ["alter", group, topic, 0, 0])
    assert altered == {"altered": group}, altered


def test_consume_share_group_accepts_what_it_prints(share_broker, share_tool, topic_name):
    """20 records read through `strom consume --share-group` are accepted: the Java Admin
    sees the start offset past them, and the next run gets nothing."""
    create_topic(share_broker, topic_name, 1)
    group = f"{topic_name}-g"
    start_at_zero(share_tool, share_broker, group, topic_name)
    offsets = produce(share_broker.bootstrap, topic_name, 20)
    got = share_consume(share_broker, topic_name, group, "--max-messages", 20, "--timeout-ms", 20000)
    assert got == [(o, f"v{o}") for o in offsets]
    assert java_start_offset(share_tool, share_broker, group, topic_name, 20) == 20
    assert share_consume(share_broker, topic_name, group, "--timeout-ms", 3000) == []


def test_consume_share_group_release_redelivers_and_reject_archives(share_broker, share_tool, topic_name):
    """--ack-type release gives the printed records back (the next run prints them again,
    the start offset stays); --ack-type reject archives them (the start offset moves past
    them, and nothing is printed again)."""
    create_topic(share_broker, topic_name, 1)
    group = f"{topic_name}-g"
    start_at_zero(share_tool, share_broker, group, topic_name)
    produce(share_broker.bootstrap, topic_name, 5)
    first = share_consume(share_broker, topic_name, group, "--max-messages", 5, "--timeout-ms", 20000,
                          "--ack-type", "release")
    assert [o for o, _ in first] == list(range(5))
    assert start_offsets(share_tool, share_broker, group)[(topic_name, 0)] == 0
    again = share_consume(share_broker, topic_name, group, "--max-messages", 5, "--timeout-ms", 20000,
                          "--ack-type", "reject")
    assert again == first
    assert java_start_offset(share_tool, share_broker, group, topic_name, 5) == 5
    assert share_consume(share_broker, topic_name, group, "--timeout-ms", 3000) == []


def test_strom_and_java_share_consumers_share_a_topic(share_broker, share_tool, topic_name):
    """A `strom consume --share-group` member and a Java KafkaShareConsumer on one
    partition: records produced while both are members reach exactly one of them, once
    (neither takes a record the other holds)."""
    classes, libs = TOOLS / "java-classes", TOOLS / "java-libs"
    if not (classes / "ShareMember.class").is_file():
        pytest.fail("Java helper not compiled: run scripts/setup-clients")
    create_topic(share_broker, topic_name, 1)
    group = f"{topic_name}-g"
    start_at_zero(share_tool, share_broker, group, topic_name)
    java = shutil.which("java") or "java"
    cp = f"{classes}{os.pathsep}{libs}/*"
    java_member = subprocess.Popen(
        [java, "-cp", cp, "ShareMember", share_broker.bootstrap, group, topic_name, "8000", "150"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    strom_member = None
    try:
        # The Java member first (a JVM may take seconds to start), then the strom one,
        # whose idle timeout starts once it is assigned.
        wait_members(share_tool, share_broker, group, 1)
        strom_member = subprocess.Popen(
            [str(strom_binary()), "consume", topic_name, "--share-group", group, "--output", "json", "--quiet",
             "--timeout-ms", "20000", "--consumer-property", "max.poll.records=20",
             "--bootstrap-server", share_broker.bootstrap],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        described = wait_members(share_tool, share_broker, group, 2)
        if len(described["members"]) != 2:
            strom_member.kill()
            pytest.fail(f"members {described}; strom member exit {strom_member.wait()}: {strom_member.stderr.read()[-3000:]}")
        offsets = []
        for i in range(10):
            offsets += produce(share_broker.bootstrap, topic_name, 50, start=i * 50)
            time.sleep(0.3)
        java_out, _ = java_member.communicate(timeout=150)
        strom_out, strom_err = strom_member.communicate(timeout=150)
        assert java_member.returncode == 0
        assert strom_member.returncode == 0, strom_err[-3000:]
    finally:
        for p in (java_member, strom_member):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(timeout=15)
    java_got = [o for o, _ in json.loads(java_out.strip().splitlines()[-1])["records"]]
    strom_got = [json.loads(line)["offset"] for line in strom_out.splitlines()]
    # Which member acquires a round is the broker's wake-up order (the Java member asks
    # for 500 records a fetch and often takes every round), so only the union is checked.
    assert sorted(java_got + strom_got) == offsets, ("every record once, none twice", len(java_got), len(strom_got))


def test_groups_list_describe_reset_and_delete_a_share_group(share_broker, share_tool, topic_name):
    """`strom groups` on a share group agrees with the Java Admin: list shows type Share,
    describe the member (id, client, assignment), the state, and per partition the start
    offset and lag; reset-offsets is refused while the group has a member and sets the start
    offset once it has none (a dry run changes nothing); delete removes the group."""
    create_topic(share_broker, topic_name, 1)
    idle_topic = f"{topic_name}-idle"
    create_topic(share_broker, idle_topic, 1)
    group = f"{topic_name}-g"
    start_at_zero(share_tool, share_broker, group, topic_name)
    produce(share_broker.bootstrap, topic_name, 30)
    assert len(share_consume(share_broker, topic_name, group, "--max-messages", 10, "--timeout-ms", 20000)) == 10
    # A member that stays: it subscribes to an empty topic, so nothing moves meanwhile.
    member = subprocess.Popen(
        [str(strom_binary()), "consume", idle_topic, "--share-group", group, "--quiet", "--timeout-ms", "60000",
         "--bootstrap-server", share_broker.bootstrap],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            [described] = share_tool(share_broker, ["describe", group])
            members = described.get("members", [])
            if members and members[0]["partitions"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        [java_member] = described["members"]
        assert java_member["partitions"] == [[idle_topic, 0]], described

        listed = json.loads(strom(share_broker, ["groups", "list", "--output", "json"]))
        [mine] = [g for g in listed if g["group"] == group]
        [java_listed] = [g for g in share_tool(share_broker, ["list"])[0]["groups"] if g["group_id"] == group]
        assert (mine["type"], mine["state"]) == (java_listed["type"], java_listed["state"]) == ("Share", "Stable")
        text = strom(share_broker, ["groups", "list"]).decode()
        assert any(line.split()[:3] == [group, "Share", "Stable"] for line in text.splitlines()), text

        [m] = json.loads(strom(share_broker, ["groups", "describe", group, "--members", "--output", "json"]))
        assert m["consumer_id"] == java_member["member_id"]
        assert m["client_id"] == java_member["client_id"]
        assert m["host"] == java_member["host"]
        assert m["assignment"] == [{"topic": idle_topic, "partition": 0}]
        [state] = json.loads(strom(share_broker, ["groups", "describe", group, "--state", "--output", "json"]))
        assert (state["state"], state["members"], state["type"]) == (described["state"], 1, "Share")

        rows = json.loads(strom(share_broker, ["groups", "describe", group, "--output", "json"]))
        by_topic = {r["topic"]: r for r in rows}
        java_offsets = start_offsets(share_tool, share_broker, group)
        row = by_topic[topic_name]
        assert row["start_offset"] == java_offsets[(topic_name, 0)] == 10
        assert (row["log_end_offset"], row["lag"]) == (30, 20)
        assert idle_topic in by_topic, rows

        busy = subprocess.run(
            [str(strom_binary()), "groups", "reset-offsets", "--group", group, "--topic", topic_name,
             "--to-earliest", "--execute", "--bootstrap-server", share_broker.bootstrap],
            capture_output=True, timeout=TIMEOUT_S)
        assert busy.returncode != 0
        assert b"not empty" in busy.stderr, busy.stderr
        busy = subprocess.run(
            [str(strom_binary()), "groups", "delete-offsets", "--group", group, "--topic", topic_name,
             "--bootstrap-server", share_broker.bootstrap],
            capture_output=True, timeout=TIMEOUT_S)
        assert busy.returncode != 0
        # Said once, in Kafka's words.
        assert busy.stderr.count(b"NON_EMPTY_GROUP") == 1, busy.stderr
        assert b"The group is not empty." in busy.stderr, busy.stderr
        assert start_offsets(share_tool, share_broker, group)[(topic_name, 0)] == 10
    finally:
        if member.poll() is None:
            member.send_signal(signal.SIGINT)  # closes the share consumer, which leaves
        try:
            member.wait(timeout=30)
        except subprocess.TimeoutExpired:
            member.kill()
            member.wait(timeout=15)
    deadline = time.monotonic() + TIMEOUT_S
    while share_tool(share_broker, ["describe", group])[0].get("members") and time.monotonic() < deadline:
        time.sleep(0.5)

    planned = json.loads(strom(share_broker, ["groups", "reset-offsets", "--group", group, "--topic", topic_name,
                                              "--to-latest", "--output", "json"]))
    assert (planned["executed"], [o["new_offset"] for o in planned["offsets"]]) == (False, [30])
    assert start_offsets(share_tool, share_broker, group)[(topic_name, 0)] == 10
    strom(share_broker, ["groups", "reset-offsets", "--group", group, "--topic", topic_name, "--to-offset", 5,
                         "--execute"])
    assert start_offsets(share_tool, share_broker, group)[(topic_name, 0)] == 5
    assert share_consume(share_broker, topic_name, group, "--max-messages", 1, "--timeout-ms", 20000)[0][0] == 5

    # delete-offsets (kafka-share-groups.sh --delete-offsets): the topic's share state goes,
    # the other topic's stays; whole topics only.
    partial = subprocess.run(
        [str(strom_binary()), "groups", "delete-offsets", "--group", group, "--topic", f"{topic_name}:0",
         "--bootstrap-server", share_broker.bootstrap],
        capture_output=True, timeout=TIMEOUT_S)
    assert partial.returncode != 0
    assert b"whole topics" in partial.stderr, partial.stderr
    before = start_offsets(share_tool, share_broker, group)
    assert (topic_name, 0) in before and (idle_topic, 0) in before, before
    [deleted] = json.loads(strom(share_broker, ["groups", "delete-offsets", "--group", group, "--topic", topic_name,
                                                "--output", "json"]))
    assert (deleted["name"], deleted["outcome"], deleted["error"]) == (topic_name, "deleted", None), deleted
    after = start_offsets(share_tool, share_broker, group)
    assert (topic_name, 0) not in after and after[(idle_topic, 0)] == before[(idle_topic, 0)], after
    text = strom(share_broker, ["groups", "delete-offsets", "--group", group, "--topic", idle_topic]).decode()
    assert text.strip() == f"Deleted the share state of {idle_topic}.", text
    assert start_offsets(share_tool, share_broker, group) == {}

    strom(share_broker, ["groups", "delete", group])
    [gone] = share_tool(share_broker, ["describe", group])
    assert gone.get("error") == "GroupIdNotFoundException" or gone.get("state") == "Dead", gone
