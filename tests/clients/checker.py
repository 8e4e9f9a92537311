"""What the clients saw during a fault-injection run, and the checks over it.

A `History` collects, from any thread:
- every acknowledged write, as its producer's delivery report gave it: (producer,
  partition, offset, value); values are unique across a run (`<producer>-<seq>`);
- every error a client reported (source, name, retriable, fatal, message);
- every record each concurrent consumer polled, in poll order: (partition, offset, value);
- the final read: every record a fresh consumer read from the beginning to the end offsets
  once the faults were over;
- a timeline of what the test did (kills, restarts), for the failure message.

`check(history)` finds:
- lost writes: an acknowledged value is not in the final read at its acknowledged offset;
- duplicates: a value of an idempotent producer at two offsets (over every observation);
- inconsistent offsets: two different values at one (partition, offset), over acks,
  consumer polls and the final read together;
- vanished reads: a record a consumer polled is not in the final read at that offset;
- non-monotonic polls: a consumer that never seeks saw offsets of a partition go backwards
  or repeat;
- poll skips: a consumer that never seeks polled offset a then b of a partition while the
  final read has a record between them (a group member records each assignment it gets
  under its own consumer name, `<group>/<member>#<generation>`, as a consumer that never
  seeks);
- group skips: a record of the final read that no member of a consumer group polled
  although the group polled a later offset of that partition (the group's committed
  offsets moved past it), and group-incomplete: final records past everything the group
  polled once it was given time to catch up;
- fatal client errors (and, when asked, every non-retriable one).

`Result.assert_ok()` fails with the counts and the first few examples of each.
"""

import bisect
import collections
import threading
import time

EXAMPLES = 5


class History:
    def __init__(self):
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.acks = []  # (producer, partition, offset, value)
        self.sent = collections.Counter()  # producer -> records handed to the client
        self.errors = []  # (t, source, name, retriable, fatal, message)
        self.polls = collections.defaultdict(list)  # consumer -> [(partition, offset, value)]
        self.final = []  # (partition, offset, value)
        self.final_complete = True
        self.final_note = ""
        self.timeline = []  # (t, text)
        self.idempotent = set()  # producers whose values must appear once
        self.problems = []  # (kind, text): what the harness saw go wrong (a wait that ran out)
        self.groups = collections.defaultdict(set)  # consumer group -> consumer names of its members

    def t(self):
        return round(time.monotonic() - self.started, 2)

    def ack(self, producer, partition, offset, value):
        """`offset` None or negative: the client reported the write persisted without its offset
        (librdkafka's idempotent producer does so when a request failed with an uncertain
        outcome, a timeout or a dropped connection, and a later one of the same producer
        and partition succeeded: the broker's accepting the later sequence proves the
        earlier records were written, and librdkafka reports them delivered, "implicitly
        acked", with offset -1001); the timeline notes when."""
        with self.lock:
            self.acks.append((producer, partition, offset, value))
            if offset is None or offset < 0:
                self.timeline.append((self.t(), f"ack without an offset: {producer} p{partition} {value}"))

    def count_sent(self, producer, n=1):
        with self.lock:
            self.sent[producer] += n

    def error(self, source, name, message="", retriable=False, fatal=False):
        with self.lock:
            self.errors.append((self.t(), source, str(name), bool(retriable), bool(fatal), str(message)[:300]))

    def poll(self, consumer, records):
        with self.lock:
            self.polls[consumer].extend(records)

    def problem(self, kind, text):
        with self.lock:
            self.problems.append((kind, str(text)))
            self.timeline.append((self.t(), f"{kind}: {text}"))

    def note(self, text):
        with self.lock:
            self.timeline.append((self.t(), text))

    def summary(self):
        with self.lock:
            return {
                "sent": dict(self.sent),
                "acked": len(self.acks),
                "errors": len(self.errors),
                "polled": {c: len(r) for c, r in self.polls.items()},
                "final": len(self.final),
            }


class Result:
    def __init__(self):
        self.problems = collections.OrderedDict()  # kind -> (count, examples, detail)
        self.info = {}

    def add(self, kind, items, detail=""):
        items = list(items)
        if items:
            self.problems[kind] = (len(items), items[:EXAMPLES], detail)

    def count(self, kind):
        return self.problems.get(kind, (0,))[0]

    @property
    def ok(self):
        return not self.problems

    def message(self):
        lines = [f"{len(self.problems)} kind(s) of anomaly: " + ", ".join(f"{k}={v[0]}" for k, v in self.problems.items())]
        for kind, (count, examples, detail) in self.problems.items():
            lines.append(f"- {kind}: {count}{' (' + detail + ')' if detail else ''}; first {len(examples)}:")
            lines.extend(f"    {e}" for e in examples)
        info = dict(self.info)
        timeline = info.pop("timeline", [])
        lines.append("run: " + ", ".join(f"{k}={v}" for k, v in info.items()))
        lines.extend(["timeline:"] + [f"    {t}" for t in timeline] if timeline else [])
        return "\n".join(lines)

    def assert_ok(self):
        assert self.ok, self.message()


def _positions(history):
    """{(partition, offset): {value: [where seen]}} over acks, polls and the final read."""
    seen = collections.defaultdict(lambda: collections.defaultdict(list))
    for producer, p, o, v in history.acks:
        if o is not None and o >= 0:
            seen[(p, o)][v].append(f"ack:{producer}")
    for consumer, records in history.polls.items():
        for p, o, v in records:
            if consumer not in seen[(p, o)][v]:
                seen[(p, o)][v].append(consumer)
    for p, o, v in history.final:
        seen[(p, o)][v].append("final")
    return seen


def _positioned(record):
    p, o, _ = record
    return isinstance(p, int) and isinstance(o, int) and o >= 0


def check(history, no_errors=False, retriable_ok=None):
    """Checks a finished history; `no_errors` also counts every non-retriable client error
    (those `retriable_ok(name)` accepts are allowed too), besides the fatal ones."""
    r = Result()
    with history.lock:
        # A polled or finally read record without a partition or offset is reported and
        # left out of the checks below (which key on positions).
        malformed = []
        for consumer, records in list(history.polls.items()):
            bad = [rec for rec in records if not _positioned(rec)]
            if bad:
                malformed += [f"{consumer} polled {rec!r}" for rec in bad]
                history.polls[consumer] = [rec for rec in records if _positioned(rec)]
        bad = [rec for rec in history.final if not _positioned(rec)]
        if bad:
            malformed += [f"final read {rec!r}" for rec in bad]
            history.final = [rec for rec in history.final if _positioned(rec)]
        r.add("records-without-offset", malformed)
        for kind in dict.fromkeys(k for k, _ in history.problems):
            r.add(kind, [text for k, text in history.problems if k == kind])
        final = {}
        final_dups = []
        for p, o, v in history.final:
            if (p, o) in final and final[(p, o)] != v:
                final_dups.append((p, o, final[(p, o)], v))
            final.setdefault((p, o), v)
        final_where = collections.defaultdict(set)
        for p, o, v in history.final:
            final_where[v].add((p, o))

        # Lost writes: acknowledged at (p, o), not there at the end.
        lost, moved = [], 0
        lost_by_partition = collections.Counter()
        for producer, p, o, v in history.acks:
            if o is None or o < 0:  # acknowledged without an offset (see `ack`): anywhere will do
                if v not in final_where:
                    lost_by_partition[p] += 1
                    lost.append(f"{v} acked by {producer} (without an offset) at p{p}; not in the final read")
                continue
            if final.get((p, o)) != v:
                elsewhere = sorted(final_where.get(v, ()))
                moved += bool(elsewhere)
                lost_by_partition[p] += 1
                lost.append(f"{v} acked by {producer} at p{p}@{o}; final read has "
                            f"{final.get((p, o), 'nothing')!r} there" + (f", the value at {elsewhere}" if elsewhere else ""))
        r.add("lost", lost, f"of {len(history.acks)} acknowledged; by partition {dict(sorted(lost_by_partition.items()))}"
              + (f"; {moved} of them found at another offset" if moved else ""))

        # Inconsistent offsets: one position, two values.
        positions = _positions(history)
        inconsistent = [f"p{p}@{o}: " + "; ".join(f"{v!r} seen by {','.join(w)}" for v, w in vals.items())
                        for (p, o), vals in sorted(positions.items()) if len(vals) > 1]
        r.add("inconsistent-offsets", inconsistent, f"of {len(positions)} positions observed")

        # Duplicates: a value of an idempotent producer at two positions.
        where = collections.defaultdict(set)
        for (p, o), vals in positions.items():
            for v in vals:
                where[v].add((p, o))
        dups = [f"{v!r} at {sorted(ps)}" for v, ps in sorted(where.items())
                if len(ps) > 1 and v.rsplit("-", 1)[0] in history.idempotent]
        r.add("duplicates", dups, f"idempotent producers {sorted(history.idempotent)}")

        # Vanished reads: a consumer saw it, the final read does not have it there.
        vanished = []
        for consumer, records in sorted(history.polls.items()):
            for p, o, v in records:
                if final.get((p, o)) != v:
                    vanished.append(f"{consumer} polled {v!r} at p{p}@{o}; final read has {final.get((p, o), 'nothing')!r}")
        r.add("vanished-reads", vanished)

        # Non-monotonic polls: per consumer and partition, offsets only go up.
        backwards = []
        for consumer, records in sorted(history.polls.items()):
            last = {}
            for p, o, v in records:
                if p in last and o <= last[p]:
                    backwards.append(f"{consumer} p{p}: offset {o} after {last[p]}")
                last[p] = o
        r.add("non-monotonic-polls", backwards)

        # Poll skips: per consumer and partition, two successive polled offsets with a final
        # record between them.
        final_offsets = collections.defaultdict(list)
        for p, o in sorted(final):
            final_offsets[p].append(o)
        skips = []
        for consumer, records in sorted(history.polls.items()):
            last = {}
            for p, o, v in records:
                if p in last and o > last[p] + 1:
                    offs = final_offsets.get(p, [])
                    between = bisect.bisect_left(offs, o) - bisect.bisect_right(offs, last[p])
                    if between > 0:
                        skips.append(f"{consumer} p{p}: offset {o} after {last[p]}, skipping {between} record(s) "
                                     "the final read has")
                last[p] = o
        r.add("poll-skips", skips)

        # Group skips: what no member of a group polled, below the group's furthest offset.
        group_skips, group_behind = [], []
        for group, members in sorted(history.groups.items()):
            got = collections.defaultdict(set)
            for m in members:
                for p, o, _ in history.polls.get(m, ()):
                    got[p].add(o)
            for p, offs in sorted(final_offsets.items()):
                top = max(got[p], default=-1)
                missed = [o for o in offs if o < top and o not in got[p]]
                if missed:
                    group_skips.append(f"group {group} p{p}: {len(missed)} record(s) never polled, first at "
                                       f"offsets {missed[:5]}, below offset {top} it polled")
                behind = [o for o in offs if o > top]
                if behind:
                    group_behind.append(f"group {group} p{p}: polled up to {top}, the final read ends at {offs[-1]}")
        r.add("group-skips", group_skips)
        r.add("group-incomplete", group_behind)

        if not history.final_complete:
            r.add("final-read-incomplete", [history.final_note or "the final read did not reach the end offsets"])
        r.add("final-read-conflicts", [f"p{p}@{o}: {a!r} and {b!r}" for p, o, a, b in final_dups])

        fatal = [e for e in history.errors if e[4]]
        r.add("fatal-client-errors", [f"t={e[0]} {e[1]}: {e[2]} {e[5]}" for e in fatal])
        if no_errors:
            allowed = retriable_ok or (lambda name: False)
            hard = [e for e in history.errors if not e[3] and not e[4] and not allowed(e[2])]
            r.add("non-retriable-client-errors", [f"t={e[0]} {e[1]}: {e[2]} {e[5]}" for e in hard],
                  "by name " + str(dict(collections.Counter(e[2] for e in hard))))

        acked_values = {a[3] for a in history.acks}
        names = collections.Counter(f"{e[1].split(':')[0]}:{e[2]}" for e in history.errors)
        r.info = {
            "sent": sum(history.sent.values()),
            "acked": len(history.acks),
            "final": len(history.final),
            "polled": {c: len(v) for c, v in sorted(history.polls.items())},
            "client errors": dict(names.most_common(8)),
            "acked without an offset": dict(collections.Counter(a[0] for a in history.acks if a[2] is None or a[2] < 0)),
            "unacknowledged but present": sum(1 for v in final_where if v not in acked_values),
            "timeline": [f"{t}s {text}" for t, text in history.timeline],
        }
    return r
