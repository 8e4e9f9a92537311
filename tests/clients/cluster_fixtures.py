"""Fixtures and the run harness of the multi-node tests (test_cluster*.py).

`make_cluster(n, overrides)` starts a `cluster.Cluster` of n nodes and waits until every
broker is registered and unfenced; at the end of the test every node is stopped and, when
the test failed (or a node crashed, or STROM_KEEP_LOG is set), the nodes' log tails are
printed and their logs kept (the directory is printed). A node that exited without the
test stopping it fails the test.

`Run(cluster, topic, ...)` creates an RF 3 topic with min.insync.replicas=2, starts
observers and producers (`cluster_load.py`) recording into a `checker.History`, offers the
faults (`kill_leader`, `pause_leader`, `restart`, ...), and `finish()` stops the load, reads
everything back and checks it (`checker.check`).

STROM_CLUSTER_RESULTS=FILE appends one JSON line per finished run (test, counts per anomaly,
acks, timeline), for the record of what a build shows.
"""

import json
import os
import sys
import time

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from checker import History, check
from cluster import SESSION_TIMEOUT_MS, Cluster, NotYet, WaitTimeout
from cluster_load import (
    ConfluentObserver,
    ConfluentProducer,
    JavaProducer,
    KafkaPythonObserver,
    KafkaPythonProducer,
    final_read,
)
from conftest import strom_binary

PRODUCERS = {"confluent": ConfluentProducer, "java": JavaProducer, "kafka_python": KafkaPythonProducer}
OBSERVERS = {"confluent": ConfluentObserver, "kafka_python": KafkaPythonObserver}
# Bounds of the waits for the cluster to heal (leader elected, ISR full again). A wait that
# runs out is recorded as an anomaly and the run goes on (so the checker still reports what
# was lost); later waits of the same kind in that run are then cut short.
HEAL_TIMEOUT_S = 30
SHORT_TIMEOUT_S = 5
SESSION_S = SESSION_TIMEOUT_MS / 1000


@pytest.fixture
def make_cluster(request):
    made = []

    def make(n=3, overrides=None, controllers=0, dynamic=False, extra_listener=None, log_dirs=1, node_props=None,
             format_flags=()):
        """`node_props`: {node id: {key: value}} over the cluster's keys (e.g. broker.rack);
        `format_flags`: `strom storage format` flags for every node (e.g. --add-scram)."""
        c = Cluster(strom_binary(), n, overrides, name=request.node.name, controllers=controllers, dynamic=dynamic,
                    extra_listener=extra_listener, log_dirs=log_dirs, format_flags=format_flags)
        for node_id, props in (node_props or {}).items():
            c.nodes[node_id].props.update(props)
        c.runs = []
        made.append(c)
        c.start()
        return c

    yield make
    failed = any(getattr(request.node, f"rep_{w}", None) is None or getattr(request.node, f"rep_{w}").failed
                 for w in ("setup", "call"))
    crashed = []
    for c in made:
        crashed += [f"node {k} exited {v}" for k, v in c.crashed()]
        for run in c.runs:
            run.abort()
        c.teardown(keep=bool(os.environ.get("STROM_KEEP_LOG")))
        if failed or crashed or os.environ.get("STROM_KEEP_LOG"):
            print(f"\n{c.dump_logs()}\n(cluster logs kept in {c.dir})", file=sys.stderr)
        else:
            c.remove()
        for run in c.runs:
            run.record(request.node.nodeid)
    if crashed:
        pytest.fail(f"nodes exited without being stopped: {crashed} (logs above)")


def create_topic(cluster, topic, partitions, replication=3, configs=None, timeout_s=30, assignment=None):
    """`assignment`: the replica list of each partition (instead of placement by the broker)."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 0})
    if assignment is not None:
        new = NewTopic(topic, len(assignment), replica_assignment=assignment, config=dict(configs or {}))
    else:
        new = NewTopic(topic, partitions, replication, config=dict(configs or {}))
    admin.create_topics([new], operation_timeout=timeout_s)[topic].result(timeout=timeout_s)


class Run:
    """One fault-injection run against `cluster` on a new topic."""

    def __init__(self, cluster, topic, partitions=3, replication=3, min_isr=2, configs=None, assignment=None):
        self.cluster, self.topic, self.partitions = cluster, topic, partitions
        self.history = History()
        self.producers, self.observers = [], []
        self.result = None
        cluster.runs.append(self)
        topic_configs = {"min.insync.replicas": str(min_isr)}
        topic_configs.update(configs or {})
        create_topic(cluster, topic, partitions, replication, topic_configs, assignment=assignment)
        cluster.wait_isr(topic, timeout_s=HEAL_TIMEOUT_S)
        self.note(f"topic {topic}: {partitions} partitions, RF {replication}, min.insync.replicas={min_isr}, "
                  f"leaders {self.leaders()}")

    def note(self, text):
        self.history.note(text)
        print(f"[{self.history.t():7.2f}s] {text}", flush=True)

    def leaders(self):
        return {p: info["leader"] for p, info in sorted(self.cluster.partitions(self.topic).items())}

    # --- load ---

    def start(self, producers=None, observers=("confluent",)):
        """Observers first (they read from offset 0 anyway), then producers {kind: rate}."""
        for kind in observers:
            self.observers.append(OBSERVERS[kind](self.history, self.cluster.bootstrap, self.topic,
                                                  self.partitions).start())
        for kind, rate in (producers or {"confluent": 2000}).items():
            self.producers.append(PRODUCERS[kind](self.history, self.cluster.bootstrap, self.topic,
                                                  self.partitions, rate).start())
        self.note(f"load started: producers {producers}, observers {list(observers)}")

    def load_for(self, seconds):
        """Lets the load run (the time is the load's length, not a wait for a condition)."""
        time.sleep(seconds)

    # --- faults ---

    def kill_leader(self, partition=0):
        """kill -9 of the partition's leader; returns the node."""
        node = self.cluster[self.cluster.leader(self.topic, partition)]
        node.kill()
        self.note(f"kill -9 {node} (leader of partition {partition})")
        return node

    def pause_leader(self, partition=0):
        node = self.cluster[self.cluster.leader(self.topic, partition)]
        node.pause()
        self.note(f"SIGSTOP {node} (leader of partition {partition})")
        return node

    def _soft_wait(self, kind, what, fn):
        """Runs a bounded wait; when it runs out, records anomaly `kind` and returns None."""
        start = time.monotonic()
        timeout_s = SHORT_TIMEOUT_S if any(k == kind for k, _ in self.history.problems) else HEAL_TIMEOUT_S
        try:
            value = fn(timeout_s)
        except WaitTimeout as e:
            self.history.problem(kind, f"{what}: {e}")
            print(f"[{self.history.t():7.2f}s] {kind}: {e}", flush=True)
            return None
        self.note(f"{what} after {time.monotonic() - start:.1f}s")
        return value

    def wait_new_leader(self, partition, old):
        return self._soft_wait(
            "no-new-leader", f"partition {partition}: a live leader other than {old}",
            lambda t: self.cluster.leader(self.topic, partition, timeout_s=t, not_in=(old.node_id,)))

    def wait_leaders_live(self):
        """Every partition has a live leader (after a node went down)."""
        live = {n.node_id for n in self.cluster.live()}

        def led():
            parts = self.cluster.partitions(self.topic)
            if not all(i["leader"] in live for i in parts.values()):
                raise NotYet("(leader, ISR) by partition: " + str({p: (i["leader"], i["isr"]) for p, i in parts.items()}))
            return True

        def probe(t):
            return self.cluster.wait(f"{self.topic}: every partition led by a live node {sorted(live)}", led, t)

        self._soft_wait("no-live-leader", "every partition led by a live node", probe)

    def restart(self, node):
        """Starts a stopped/killed node and waits until it is registered again and every
        partition's ISR is full again on every node's Metadata."""
        node.start()
        self.note(f"{node} restarted")
        self.wait_healed()

    def wait_healed(self):
        every = [n.node_id for n in self.cluster.brokers()]
        self._soft_wait("broker-not-registered", f"brokers {every} registered and unfenced everywhere",
                        lambda t: self.cluster.wait_ready(nodes=every, timeout_s=t))
        if self._soft_wait("isr-not-restored", "every ISR full on every node",
                           lambda t: self.cluster.wait_isr(self.topic, timeout_s=t)):
            self.note(f"leaders {self.leaders()}")

    # --- the end ---

    def finish(self, no_errors=False, retriable_ok=None):
        """Stops the load and checks; returns the checker's Result."""
        self.stop_load()
        return self.check(no_errors, retriable_ok)

    def stop_load(self):
        """Stops the producers (waiting for every delivery report), reads everything back,
        lets the observers catch up and stops them."""
        for p in self.producers:
            p.stop()
        self.note(f"producers stopped: {self.history.summary()['sent']} sent, {len(self.history.acks)} acknowledged")
        self.producers = []
        final_read(self.history, self.cluster.bootstrap, self.topic, self.partitions)
        self._observers_catch_up()
        for o in self.observers:
            o.stop()
        self.observers = []

    def end_offsets(self):
        """{partition: end offset} as the final read found them."""
        ends = {}
        for p, o, _ in self.history.final:
            ends[p] = max(ends.get(p, 0), o + 1)
        return ends

    def check(self, no_errors=False, retriable_ok=None):
        self.result = check(self.history, no_errors=no_errors, retriable_ok=retriable_ok)
        print(self.result.message() if not self.result.ok else f"no anomaly; {self.result.info}", flush=True)
        return self.result

    def _observers_catch_up(self, timeout_s=20):
        ends = {}
        for p, o, _ in self.history.final:
            ends[p] = max(ends.get(p, -1), o)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.history.lock:
                behind = [o.name for o in self.observers
                          if any(max((r[1] for r in self.history.polls[o.name] if r[0] == p), default=-1) < end
                                 for p, end in ends.items())]
            if not behind:
                return
            time.sleep(0.5)
        self.note(f"observers {behind} did not reach the end offsets {ends} in {timeout_s}s")

    def abort(self):
        """Stops whatever still runs (a test that failed midway), without waiting long."""
        for p in self.producers:
            try:
                p.stop(timeout_s=5)
            except Exception:  # noqa: BLE001 -- cleanup reaches every client
                pass
        for o in self.observers:
            o.stop(timeout_s=5)
        self.producers, self.observers = [], []

    def record(self, test):
        path = os.environ.get("STROM_CLUSTER_RESULTS")
        if not path or self.result is None:
            return
        line = {
            "test": test,
            "anomalies": {k: v[0] for k, v in self.result.problems.items()},
            "details": {k: v[2] for k, v in self.result.problems.items() if v[2]},
            **{k: v for k, v in self.result.info.items()},
        }
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")
