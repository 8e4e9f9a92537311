"""KIP-1071 streams groups on the wire: StreamsGroupHeartbeat spoken by `streams_wire.py`
(members join with a topology, the broker creates the changelog topic, tasks are split,
a leaving member's tasks move only after revocation, a silent member is fenced at its
session timeout), and the Java Admin's view of streams groups.
"""

import json
import threading
import time

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from group_fixtures import group_admin  # noqa: F401 (fixture)
from share_fixtures import share_tool  # noqa: F401 (fixture)
from test_cli import strom
from streams_wire import MISSING_INTERNAL_TOPICS, MISSING_SOURCE_TOPICS, Connection

SESSION_MS = 2000
FAST_STREAMS = (
    "--override",
    "group.streams.min.session.timeout.ms=2000",
    "--override",
    f"group.streams.session.timeout.ms={SESSION_MS}",
    "--override",
    "group.streams.min.heartbeat.interval.ms=500",
    "--override",
    "group.streams.heartbeat.interval.ms=500",
)
UNKNOWN_MEMBER_ID = 25
INVALID_REQUEST = 42
GROUP_ID_NOT_FOUND = 69
STEPS_MAX = 60


def create_topic(bootstrap: str, name: str, partitions: int):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(timeout=30)


def topology(source: str, app: str) -> dict:
    return {
        "epoch": 1,
        "subtopologies": [
            {
                "id": "0",
                "source_topics": [source],
                "changelog_topics": [{"name": f"{app}-store-changelog", "configs": {"cleanup.policy": "compact"}}],
            }
        ],
    }


def coordinator_ready(conn: Connection, group: str):
    for _ in range(STEPS_MAX):
        error, *_ = conn.find_coordinator(group)
        if error == 0:
            return
        time.sleep(0.25)
    pytest.fail(f"no coordinator for {group}")


class Member:
    """A streams member that owns exactly what the broker last assigned it."""

    def __init__(self, conn: Connection, group: str, member_id: str, process: str):
        self.conn, self.group, self.member_id, self.process = conn, group, member_id, process
        self.epoch = 0
        self.active = {}
        self.standby = {}
        self.last = None

    def owned(self):
        return {sub: set(parts) for sub, parts in self.active.items()}

    def join(self, topo: dict) -> dict:
        r = self.conn.heartbeat(
            self.group,
            self.member_id,
            0,
            topology=topo,
            process_id=self.process,
            rebalance_timeout_ms=30000,
            active={},
            standby={},
            warmup={},
        )
        return self._took(r)

    def beat(self) -> dict:
        r = self.conn.heartbeat(self.group, self.member_id, self.epoch, active=self.owned(), standby={}, warmup={})
        return self._took(r)

    def leave(self) -> dict:
        return self.conn.heartbeat(self.group, self.member_id, -1)

    def _took(self, r: dict) -> dict:
        self.last = r
        if r["error_code"] == 0:
            self.epoch = r["member_epoch"]
            if r["active"] is not None:
                self.active = r["active"]
            if r["standby"] is not None:
                self.standby = r["standby"]
        return r

    def tasks(self) -> set:
        return {(sub, p) for sub, parts in self.active.items() for p in parts}


def all_tasks(n: int) -> set:
    return {("0", p) for p in range(n)}


def beat_until(members, done, what: str):
    """Heartbeats every member in turn until `done()`; checks after every step that no
    active task is owned by two members."""
    for _ in range(STEPS_MAX):
        for m in members:
            r = m.beat()
            assert r["error_code"] == 0, (m.member_id, r)
            owned = [t for x in members for t in x.tasks()]
            assert len(owned) == len(set(owned)), f"an active task owned twice: {[(x.member_id, x.tasks()) for x in members]}"
        if done():
            return
        time.sleep(0.05)
    pytest.fail(f"{what}: {[(m.member_id, m.epoch, m.tasks(), m.last) for m in members]}")


def test_streams_heartbeat_splits_moves_and_fences(make_broker):
    broker = make_broker(FAST_STREAMS)
    create_topic(broker.bootstrap, "streams-in", 4)
    group = "streams-app-1"
    with Connection("127.0.0.1", broker.port) as conn:
        coordinator_ready(conn, group)
        a = Member(conn, group, "member-a", "process-a")
        r = a.join(topology("streams-in", group))
        assert r["error_code"] == 0, r
        assert r["member_epoch"] >= 1
        # The changelog topic is missing on the first heartbeat; the broker creates it.
        assert any(code == MISSING_INTERNAL_TOPICS for code, _ in r["status"]), r["status"]
        beat_until([a], lambda: a.tasks() == all_tasks(4), "the only member gets every task")
        assert a.last["status"] == [], a.last["status"]

        b = Member(conn, group, "member-b", "process-b")
        r = b.join(topology("streams-in", group))
        assert r["error_code"] == 0, r
        # B gets nothing A still owns: A must revoke first.
        assert not (b.tasks() & a.tasks())
        r = a.beat()
        assert r["error_code"] == 0
        kept = a.tasks()
        assert len(kept) == 2, f"A keeps half its tasks and is asked to revoke the rest: {r}"
        beat_until([a, b], lambda: len(b.tasks()) == 2, "B gets the tasks A revoked")
        assert a.tasks() | b.tasks() == all_tasks(4)
        assert a.tasks() == kept, "A's kept tasks did not move"

        # B leaves: A gets its tasks back.
        assert b.leave()["error_code"] == 0
        beat_until([a], lambda: a.tasks() == all_tasks(4), "A gets the tasks B left")

        # C joins and falls silent: fenced at its session timeout, its tasks go back to A.
        c = Member(conn, group, "member-c", "process-c")
        assert c.join(topology("streams-in", group))["error_code"] == 0
        beat_until([a, c], lambda: len(c.tasks()) == 2, "C gets half the tasks")
        deadline = time.monotonic() + SESSION_MS / 1000 * 4
        while time.monotonic() < deadline and a.tasks() != all_tasks(4):
            assert a.beat()["error_code"] == 0
            time.sleep(0.2)
        assert a.tasks() == all_tasks(4), f"C was not fenced: {a.last}"
        r = c.beat()
        assert r["error_code"] == UNKNOWN_MEMBER_ID, r


def test_streams_heartbeat_reports_missing_source_topics(make_broker):
    broker = make_broker(FAST_STREAMS)
    group = "streams-app-missing"
    with Connection("127.0.0.1", broker.port) as conn:
        coordinator_ready(conn, group)
        m = Member(conn, group, "member-1", "process-1")
        r = m.join(topology("no-such-topic", group))
        assert r["error_code"] == 0, r
        assert (MISSING_SOURCE_TOPICS, "Source topics no-such-topic are missing.") in r["status"]
        assert m.tasks() == set()
        # A heartbeat at another epoch than the member's is for a group that does not know it.
        r = conn.heartbeat("streams-app-unknown", "member-x", 3, active={}, standby={}, warmup={})
        assert r["error_code"] == GROUP_ID_NOT_FOUND, r


def test_streams_heartbeat_refuses_null_task_lists_as_kafka_does(make_broker):
    broker = make_broker(FAST_STREAMS)
    group = "streams-app-null-tasks"
    create_topic(broker.bootstrap, "null-tasks-in", 2)
    topo = topology("null-tasks-in", group)
    join = {"topology": topo, "process_id": "process-1", "rebalance_timeout_ms": 30000}
    # (epoch, active, standby, warmup, extra fields, Kafka's INVALID_REQUEST message)
    cases = [
        (0, None, None, None, join, "ActiveTasks must be empty when (re-)joining."),
        (0, {}, None, {}, join, "StandbyTasks must be empty when (re-)joining."),
        (0, {}, {}, None, join, "WarmupTasks must be empty when (re-)joining."),
        (3, {}, None, None, {}, "If one task-type is non-null, all must be non-null."),
    ]
    with Connection("127.0.0.1", broker.port) as conn:
        coordinator_ready(conn, group)
        for epoch, active, standby, warmup, extra, message in cases:
            r = conn.heartbeat(group, "member-1", epoch, active=active, standby=standby, warmup=warmup, **extra)
            assert (r["error_code"], r["error_message"]) == (INVALID_REQUEST, message), r
        # The refused heartbeats left nothing behind: a proper join is the group's first member.
        r = Member(conn, group, "member-1", "process-1").join(topo)
        assert r["error_code"] == 0, r
        assert r["member_epoch"] == 1, r


class KeepAlive:
    """Heartbeats members from a thread (a JVM start outlasts the test session timeout);
    the members' connection is used by this thread only while it runs."""

    def __init__(self, members):
        self.members = members
        self.stop = threading.Event()
        self.errors = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.wait(0.3):
            for m in self.members:
                r = m.beat()
                if r["error_code"] != 0:
                    self.errors.append((m.member_id, r))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)


def test_java_admin_lists_describes_and_deletes_streams_groups(make_broker, group_admin):
    broker = make_broker(FAST_STREAMS)
    create_topic(broker.bootstrap, "streams-admin-in", 2)
    group = "streams-app-admin"
    with Connection("127.0.0.1", broker.port) as conn:
        coordinator_ready(conn, group)
        a = Member(conn, group, "member-a", "process-a")
        b = Member(conn, group, "member-b", "process-b")
        assert a.join(topology("streams-admin-in", group))["error_code"] == 0
        assert b.join(topology("streams-admin-in", group))["error_code"] == 0
        beat_until([a, b], lambda: len(a.tasks()) == 1 and len(b.tasks()) == 1, "one task each")
        beat_until([a, b], lambda: a.epoch == b.epoch, "both at the assignment epoch")
        with KeepAlive([a, b]) as alive:
            listed, described, classic, refused = group_admin(
                broker,
                ["streams-list"],
                ["streams-describe", group],
                ["list"],
                ["streams-delete", group],
            )
            cli_list = json.loads(strom(broker, ["groups", "list", "--output", "json"]))
            cli_members = json.loads(strom(broker, ["groups", "describe", group, "--members", "--output", "json"]))
        assert alive.errors == []
        assert cli_list == [{"group": group, "protocol_type": "streams", "state": "Stable", "type": "Streams"}]
        cli_owned = {
            m["consumer_id"]: {("0", p["partition"]) for p in m["assignment"] if p["topic"] == "streams-admin-in"}
            for m in cli_members
        }
        assert cli_owned == {"member-a": a.tasks(), "member-b": b.tasks()}
        assert [(g["group_id"], g["state"].lower(), g["type"].lower()) for g in listed["groups"]] == [
            (group, "stable", "streams")
        ]
        assert described["state"].lower() == "stable"
        assert described["topology_epoch"] == 1
        assert described["subtopologies"] == [{"id": "0", "source_topics": ["streams-admin-in"]}]
        by_member = {m["member_id"]: m for m in described["members"]}
        assert set(by_member) == {"member-a", "member-b"}
        assert {tuple(t) for t in by_member["member-a"]["active"]} == a.tasks()
        assert {tuple(t) for t in by_member["member-b"]["active"]} == b.tasks()
        assert by_member["member-a"]["process_id"] == "process-a"
        assert group not in [g["group_id"] for g in classic["groups"]], "a streams group is no consumer group"
        assert refused.get("error") == "GroupNotEmptyException", refused
        assert a.leave()["error_code"] == 0
        assert b.leave()["error_code"] == 0
    empty, deleted, gone = group_admin(
        broker, ["streams-list", "Empty"], ["streams-delete", group], ["streams-describe", group]
    )
    assert [g["group_id"] for g in empty["groups"]] == [group]
    assert deleted == {"deleted": group}
    assert gone.get("error") == "GroupIdNotFoundException", gone


def test_group_config_sets_standby_replicas(make_broker, share_tool):
    """`streams.num.standby.replicas` set on the group (IncrementalAlterConfigs, GROUP
    resource): each task gets a standby on the other process; above the broker's
    `group.streams.max.standby.replicas` it is refused."""
    broker = make_broker(FAST_STREAMS)
    create_topic(broker.bootstrap, "streams-standby-in", 2)
    group = "streams-app-standby"
    set_one, too_many = share_tool(
        broker,
        ["config-set", group, "streams.num.standby.replicas", "1"],
        ["config-set", group, "streams.num.standby.replicas", "3"],
    )
    assert set_one == {"altered": group}
    assert too_many["error"] == "InvalidConfigurationException", too_many
    assert "group.streams.max.standby.replicas" in too_many["message"]
    with Connection("127.0.0.1", broker.port) as conn:
        coordinator_ready(conn, group)
        a = Member(conn, group, "member-a", "process-a")
        b = Member(conn, group, "member-b", "process-b")
        assert a.join(topology("streams-standby-in", group))["error_code"] == 0
        assert b.join(topology("streams-standby-in", group))["error_code"] == 0

        def standbys(m):
            return {(s, p) for s, parts in m.standby.items() for p in parts}

        def settled():
            return (
                len(a.tasks()) == 1
                and len(b.tasks()) == 1
                and standbys(a) == b.tasks()
                and standbys(b) == a.tasks()
            )

        beat_until([a, b], settled, "each member a standby of the other's task")
