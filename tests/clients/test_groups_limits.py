"""Group limits a broker enforces on real clients: a session timeout outside
[group.min.session.timeout.ms, group.max.session.timeout.ms] is refused with
INVALID_SESSION_TIMEOUT, and a group at group.max.size refuses one more member with
GROUP_MAX_SIZE_REACHED while its members keep their partitions."""

import time

from group_fixtures import GROUP_BROKER_ARGS, PARTITIONS, create_topic, group_broker  # noqa: F401 (fixtures)
from group_members import Members, wait_stable


def test_session_timeout_below_the_minimum_is_refused(group_broker, topic_name):
    """group.min.session.timeout.ms is 6000 (Kafka's default): a Java member asking for
    5000 gets InvalidSessionTimeoutException from poll and never gets partitions."""
    create_topic(group_broker, topic_name, PARTITIONS)
    ms = Members(group_broker.bootstrap, topic_name, f"g-{topic_name}", max_s=60)
    try:
        m = ms.start("java", "java-short-session", session_timeout_ms=5000, heartbeat_interval_ms=500)
        ev = m.wait_event(lambda e: e["ev"] == "error", timeout_s=30, what="an error")
        assert "InvalidSessionTimeoutException" in ev["message"], ev
        assert not m.assignment()
    finally:
        ms.stop_all()


def test_group_max_size_refuses_one_more_member(make_broker, topic_name):
    """With group.max.size=2, a third member (Java) is refused with
    GroupMaxSizeReachedException; the two members (confluent, Java) keep their partitions
    and see no rebalance."""
    b = make_broker(GROUP_BROKER_ARGS + ["--override", "group.max.size=2"])
    create_topic(b, topic_name, PARTITIONS)
    ms = Members(b.bootstrap, topic_name, f"g-{topic_name}", session_timeout_ms=6000, heartbeat_interval_ms=500,
                 max_s=60)
    try:
        first = [ms.start("confluent", "max-confluent"), ms.start("java", "max-java")]
        before = wait_stable(first, PARTITIONS)
        third_at = time.monotonic()
        third = ms.start("java", "max-java-third")
        ev = third.wait_event(lambda e: e["ev"] == "error", timeout_s=30, what="an error")
        assert "GroupMaxSizeReachedException" in ev["message"], ev
        time.sleep(2.0)
        assert not third.assignment()
        assert {m: m.assignment() for m in first} == before
        assert all(not m.changes(since=third_at) for m in first), {m.name: m.changes(since=third_at) for m in first}
    finally:
        ms.stop_all()
