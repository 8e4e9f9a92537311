"""The cluster tests' checker (checker.py) catches each anomaly it claims to, on synthetic
histories: a checker that passes everything would make the cluster tests vacuous. Pure
Python, no broker: runs in every suite (not marked `cluster`)."""

import pytest

from checker import History, check


def clean(n=6, partitions=2):
    """n acknowledged records of idempotent producer `p`, consumed and read back intact."""
    h = History()
    h.idempotent.add("p")
    offsets = {}
    for i in range(n):
        part = i % partitions
        off = offsets.get(part, 0)
        offsets[part] = off + 1
        h.ack("p", part, off, f"p-{i}")
        h.poll("c1", [(part, off, f"p-{i}")])
        h.final.append((part, off, f"p-{i}"))
    return h


def kinds(result):
    return set(result.problems)


def test_a_clean_history_passes():
    r = check(clean())
    assert r.ok, r.message()
    r.assert_ok()
    assert r.info["acked"] == 6 and r.info["final"] == 6


def test_lost_write_is_caught():
    h = clean()
    h.final = [rec for rec in h.final if rec != (0, 1, "p-2")]
    h.polls["c1"] = [rec for rec in h.polls["c1"] if rec != (0, 1, "p-2")]
    r = check(h)
    assert kinds(r) == {"lost"}, r.message()
    assert r.count("lost") == 1
    msg = r.message()
    assert "lost: 1 (of 6 acknowledged; by partition {0: 1})" in msg and "p-2 acked by p at p0@1" in msg
    with pytest.raises(AssertionError, match="lost=1"):
        r.assert_ok()


def test_lost_write_replaced_by_another_value_is_caught_as_lost_and_inconsistent():
    """What a new leader without the old leader's data does: it hands the same offset out again."""
    h = clean()
    h.final = [(p, o, "p-99" if (p, o) == (1, 0) else v) for p, o, v in h.final]
    h.ack("p", 1, 0, "p-99")
    r = check(h)
    assert {"lost", "inconsistent-offsets", "vanished-reads"} <= kinds(r), r.message()
    assert r.count("lost") == 1 and r.count("inconsistent-offsets") == 1 and r.count("vanished-reads") == 1
    assert "'p-1' seen by ack:p,c1; 'p-99' seen by ack:p,final" in r.message()


def test_duplicate_of_an_idempotent_producer_is_caught():
    h = clean()
    h.final.append((0, 3, "p-0"))  # p-0 written twice (a retry the broker did not deduplicate)
    r = check(h)
    assert kinds(r) == {"duplicates"}, r.message()
    assert "'p-0' at [(0, 0), (0, 3)]" in r.message()


def test_duplicate_of_a_non_idempotent_producer_is_allowed():
    h = clean()
    h.idempotent.clear()
    h.final.append((0, 3, "p-0"))
    assert check(h).ok


def test_inconsistent_offset_across_consumers_is_caught():
    h = clean()
    h.poll("c2", [(1, 2, "p-5"), (1, 2, "other-1")])
    r = check(h)
    assert "inconsistent-offsets" in kinds(r), r.message()
    assert r.count("inconsistent-offsets") == 1


def test_vanished_read_is_caught():
    """A consumer saw a record (never acknowledged) that is not there at the end: it was
    served before it was committed."""
    h = clean()
    h.poll("c1", [(0, 3, "p-77")])
    r = check(h)
    assert kinds(r) == {"vanished-reads"}, r.message()
    assert "c1 polled 'p-77' at p0@3; final read has 'nothing'" in r.message()


def test_non_monotonic_poll_is_caught():
    h = clean()
    h.poll("c1", [(0, 1, "p-2")])  # p0 offset 1 again after 2
    r = check(h)
    assert kinds(r) == {"non-monotonic-polls"}, r.message()
    assert "c1 p0: offset 1 after 2" in r.message()


def test_poll_skip_is_caught():
    """c2 polled p0 at offsets 0 and 2: offset 1, which the final read has, was skipped."""
    h = clean()
    h.poll("c2", [(0, 0, "p-0"), (0, 2, "p-4")])
    r = check(h)
    assert kinds(r) == {"poll-skips"}, r.message()
    assert "c2 p0: offset 2 after 0, skipping 1 record(s)" in r.message()


def test_gap_without_records_is_not_a_poll_skip():
    """Offsets the final read does not have either (e.g. transaction markers) are no skip."""
    h = clean()
    h.final = [rec for rec in h.final if rec[:2] != (0, 1)]
    h.acks = [a for a in h.acks if a[1:3] != (0, 1)]
    h.polls["c1"] = [rec for rec in h.polls["c1"] if rec[:2] != (0, 1)]
    r = check(h)
    assert r.ok, r.message()


def test_group_skip_and_group_incomplete_are_caught():
    """Group g: member a's first assignment polled p0@0, its second (after a rebalance) p0@2;
    nobody in g polled p0@1 (a skip) nor anything of p1 past offset 0 (behind)."""
    h = clean()
    h.groups["g"] = {"g/a#1", "g/a#2"}
    h.poll("g/a#1", [(0, 0, "p-0"), (1, 0, "p-1")])
    h.poll("g/a#2", [(0, 2, "p-4")])
    r = check(h)
    assert kinds(r) == {"group-skips", "group-incomplete"}, r.message()
    assert "group g p0: 1 record(s) never polled, first at offsets [1]" in r.message()
    assert "group g p1: polled up to 0, the final read ends at 2" in r.message()
    h.poll("g/a#2", [(1, 1, "p-3"), (1, 2, "p-5")])
    h.poll("g/b#1", [(0, 1, "p-2")])
    h.groups["g"].add("g/b#1")
    assert check(h).ok


def test_acks_and_records_without_an_offset():
    """An ack without an offset counts as kept when the value is anywhere in the final read;
    a polled record without one is reported, not a crash of the checker."""
    h = clean()
    h.ack("p", 0, None, "p-0")
    assert check(h).ok
    h.ack("p", 0, None, "p-404")
    r = check(h)
    assert kinds(r) == {"lost"} and "p-404 acked by p (without an offset)" in r.message()
    h = clean()
    h.poll("c1", [(0, None, "p-0")])
    r = check(h)
    assert kinds(r) == {"records-without-offset"}, r.message()


def test_final_read_that_stopped_short_is_caught():
    h = clean()
    h.final_complete = False
    h.final_note = "partition 1 not read to its end"
    assert kinds(check(h)) == {"final-read-incomplete"}


def test_client_errors_fatal_always_non_retriable_when_asked():
    h = clean()
    h.error("p:delivery", "NOT_LEADER_OR_FOLLOWER", "moved", retriable=True)
    assert check(h, no_errors=True).ok
    h.error("p:delivery", "_MSG_TIMED_OUT", "expired", retriable=False)
    assert check(h).ok  # non-retriable errors count only when asked
    r = check(h, no_errors=True)
    assert kinds(r) == {"non-retriable-client-errors"} and "_MSG_TIMED_OUT" in r.message()
    assert check(h, no_errors=True, retriable_ok=lambda name: name == "_MSG_TIMED_OUT").ok
    h.error("p:client", "OUT_OF_ORDER_SEQUENCE_NUMBER", "fatal", retriable=False, fatal=True)
    assert "fatal-client-errors" in kinds(check(h))


def test_harness_problems_are_reported():
    h = clean()
    h.problem("isr-not-restored", "partition 0: ISR [2, 3]")
    r = check(h)
    assert kinds(r) == {"isr-not-restored"} and "ISR [2, 3]" in r.message()
