"""Long-running consumer-group members of every client, as processes a test controls.

`Member` starts one (group_member.py for confluent-kafka and kafka-python,
js/group_member.js for kafkajs, java GroupMember for the Java client in either group
protocol), reads its JSON-line events on a thread, and sends it commands (commit, status,
close). `kill()` is SIGKILL: the member never leaves, so the coordinator must evict it.
Every wait is bounded.
"""

import json
import os
import pathlib
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
TOOLS = HERE.parent.parent / ".tools"
WAIT_S = 30
# Kinds a test can ask for: client name, plus the Java client's group protocol.
KINDS = ("confluent", "kafka_python", "kafkajs", "java", "java_consumer")


def command(kind, opts):
    args = [f"{k}={v}" for k, v in opts.items() if v is not None]
    if kind in ("confluent", "kafka_python"):
        return [sys.executable, str(HERE / "group_member.py"), kind] + args
    if kind == "kafkajs":
        return [shutil.which("node") or "node", str(HERE / "js" / "group_member.js")] + args
    if kind in ("java", "java_consumer"):
        cp = f"{TOOLS / 'java-classes'}{os.pathsep}{TOOLS / 'java-libs'}/*"
        protocol = "consumer" if kind == "java_consumer" else "classic"
        return [shutil.which("java") or "java", "-Xss512k", "-XX:TieredStopAtLevel=1", "-cp", cp, "GroupMember",
                f"protocol={protocol}"] + args
    raise ValueError(f"unknown member kind {kind}")


class Member:
    """One member process; `events` is every event it printed, in order, with arrival time."""

    def __init__(self, kind, bootstrap, topic, group, name, **opts):
        self.kind, self.name = kind, name
        all_opts = {"bootstrap": bootstrap, "topic": topic, "group": group, "client_id": name}
        all_opts.update(opts)
        self.stderr_path = pathlib.Path(f"/tmp/strom-group-member-{os.getpid()}-{name}-{time.monotonic_ns()}.err")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(command(kind, all_opts), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr)
        self.events = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"ev": "garbage", "line": line.decode(errors="replace")}
            ev["t"] = time.monotonic()
            with self._cond:
                self.events.append(ev)
                self._cond.notify_all()
        with self._cond:
            self.events.append({"ev": "exit", "t": time.monotonic()})
            self._cond.notify_all()

    def __repr__(self):
        return f"{self.name}({self.kind})"

    # --- what it saw ---

    def assignment(self):
        """What it owns now, by its last assignment event."""
        with self._cond:
            for ev in reversed(self.events):
                if ev["ev"] in ("assigned", "revoked", "lost"):
                    return set(ev["assignment"])
        return set()

    def records(self, since=0.0):
        """(partition, offset, key) of every record it received after `since`."""
        with self._cond:
            return [tuple(r) for ev in self.events if ev["ev"] == "records" and ev["t"] >= since for r in ev["records"]]

    def changes(self, since=0.0, kinds=("assigned", "revoked", "lost")):
        with self._cond:
            return [ev for ev in self.events if ev["ev"] in kinds and ev["t"] >= since]

    def errors(self):
        with self._cond:
            return [ev["message"] for ev in self.events if ev["ev"] == "error"]

    def wait_event(self, pred, timeout_s=WAIT_S, since=0.0, what="event"):
        """The first event after `since` for which pred holds; fails after timeout_s."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for ev in self.events:
                    if ev["t"] >= since and pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or (self.events and self.events[-1]["ev"] == "exit" and not pred(self.events[-1])):
                    raise AssertionError(f"{self}: no {what} in {timeout_s}s; events tail {self.events[-5:]}\n"
                                         f"stderr tail: {self.stderr_tail()}")
                self._cond.wait(min(left, 0.5))

    # --- commands ---

    def send(self, cmd):
        self.proc.stdin.write((cmd + "\n").encode())
        self.proc.stdin.flush()

    def commit(self, timeout_s=WAIT_S):
        since = time.monotonic()
        self.send("commit")
        ev = self.wait_event(lambda e: e["ev"] in ("committed", "error"), timeout_s, since, "commit answer")
        if ev["ev"] == "error":
            raise AssertionError(f"{self}: {ev['message']}")
        return {p: o for p, o in ev["offsets"]}

    def status(self, timeout_s=WAIT_S):
        since = time.monotonic()
        self.send("status")
        return self.wait_event(lambda e: e["ev"] == "status", timeout_s, since, "status")

    def close(self, timeout_s=WAIT_S):
        """Closes as the client does (a dynamic member leaves the group) and waits for exit."""
        if self.proc.poll() is None:
            try:
                self.send("close")
            except OSError:
                pass
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._stderr.close()

    def kill(self):
        """SIGKILL: no LeaveGroup, no commit, sockets closed by the kernel."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._stderr.close()

    def stderr_tail(self, n=1500):
        try:
            return self.stderr_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


class Members:
    """The members a test started; all are killed at the end whatever happened."""

    def __init__(self, bootstrap, topic, group, **defaults):
        self.bootstrap, self.topic, self.group, self.defaults = bootstrap, topic, group, defaults
        self.all = []

    def start(self, kind, name=None, **opts):
        merged = dict(self.defaults)
        merged.update(opts)
        m = Member(kind, self.bootstrap, self.topic, self.group, name or f"{kind}-{len(self.all)}", **merged)
        self.all.append(m)
        return m

    def stop_all(self):
        for m in self.all:
            m.kill()
            if os.environ.get("STROM_KEEP_LOG"):
                print(f"member {m} stderr: {m.stderr_path}", file=sys.stderr)
            else:
                m.stderr_path.unlink(missing_ok=True)


def wait_stable(members, partitions, timeout_s=60, settle_s=1.5):
    """Waits until every member owns a non-empty share, the shares are disjoint and cover
    every partition, and that holds for settle_s; returns {member: set}."""
    deadline = time.monotonic() + timeout_s
    since_ok, last = None, None
    while time.monotonic() < deadline:
        now = {m: m.assignment() for m in members}
        owned = [p for a in now.values() for p in a]
        ok = all(now.values()) and len(owned) == len(set(owned)) and set(owned) == set(range(partitions))
        if ok and now == last:
            if since_ok is not None and time.monotonic() - since_ok >= settle_s:
                return now
        else:
            since_ok = time.monotonic() if ok else None
        last = now
        time.sleep(0.1)
    raise AssertionError(f"group never settled in {timeout_s}s: {last}; errors "
                         f"{ {m.name: m.errors()[-3:] for m in members} }; stderr "
                         f"{ {m.name: m.stderr_tail(600) for m in members} }")


def wait_records(members, count, since=0.0, timeout_s=60):
    """Waits until the members together received `count` records after `since`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = sum(len(m.records(since)) for m in members)
        if got >= count:
            return
        time.sleep(0.1)
    got = {m.name: len(m.records(since)) for m in members}
    tails = {m.name: [{k: v for k, v in ev.items() if k != "records"} for ev in m.events[-6:]] for m in members}
    raise AssertionError(f"received {got} of {count} records in {timeout_s}s; events {tails}; stderr "
                         f"{ {m.name: m.stderr_tail(800) for m in members} }")


def received_once(members, since=0.0):
    """{(partition, offset): (member, key)} over every member's records after `since`,
    asserting that no record reached two members (or one member twice)."""
    seen = {}
    for m in members:
        for p, o, k in m.records(since):
            assert (p, o) not in seen, f"record {p}/{o} received by {m} and by {seen[(p, o)][0]}"
            seen[(p, o)] = (m, k)
    return seen


def received_once_by(members, since=0.0):
    """{(partition, offset): key}, as received_once."""
    return {po: k for po, (_, k) in received_once(members, since).items()}
