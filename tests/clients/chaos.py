#!/usr/bin/env python3
"""The fault-injection harness (`scripts/chaos`): a cluster of real `strom server` processes,
a workload of real clients, faults on a seeded schedule, and a checker in Jepsen's terms.

Cluster: `--nodes N` combined controller+broker nodes (default 3), or `--controllers 3` for
separate controller-only nodes beside N broker-only ones (`cluster.Cluster`). Each node has
its own data dir under one temp dir, removed when the verdict is clean (kept, and printed,
otherwise or with `--keep`). Topic `chaos`: `--partitions` partitions, RF 3,
`min.insync.replicas=2`.

Network (`--net`): `netns` (needs root and `ip`) puts each node in its own network namespace,
joined to the harness's namespace by a veth pair on a bridge the harness creates, each on
its own address of a /24. A network partition between nodes a and b is a blackhole route to
b's address in a's namespace and to a's in b's: packets between them are dropped (new
connections fail, open ones stall until healed), while the clients, which run in the
harness's namespace, still reach both. `loopback` runs every node on 127.0.0.1 and leaves
partition faults out. `auto` (default) picks `netns` when it can.

Workload: idempotent `acks=all` producers (confluent-kafka and kafka-python, `cluster_load`;
each value `<producer>-<seq>` names its producer and sequence, so every acknowledged record
is known), one observer that polls every partition from offset 0 throughout, and group
consumers: group `chaos-ru` (two read_uncommitted members) and `chaos-rc` (one
read_committed member), auto-committing; every poll is recorded with partition and offset.

Faults (`--faults K` drawn from the kinds at random, or exact counts with `--mix
kind=count,...`, shuffled), from `random.Random(seed)`; the seed and the whole schedule are
printed first, and `--seed S` with the same options replays the schedule (which fault,
which partition or node, how long; the node "the leader of partition p" resolves to
depends on the run):
- kill-leader: kill -9 of partition p's leader (from Metadata); restarted after a while;
- kill-any: kill -9 of a random node; restarted after a while;
- pause: SIGSTOP of partition p's leader or of a random node for longer than
  broker.session.timeout.ms, then SIGCONT;
- partition-isolate: one node (p's leader or a random one) cut from every other node;
- partition-pair: two nodes cut from each other (each still reaches the third);
- disk-full (only with `--disk-mb N`, which puts each node's data dir on a tmpfs of N MiB,
  a root mount): a ballast file fills the disk of p's leader or of a random node for a
  while, then is deleted;
- slow-fsync: every fsync, fdatasync, syncfs and sync_file_range of p's leader or of a
  random node stalls for 1-5 s (each call) for a while, then runs; through an LD_PRELOAD
  shim (`slow_fsync.c`, compiled with `cc` at the start of a run whose faults include it,
  and loaded into every node then), which reads the stall from a file per node the harness
  rewrites: no hook in Strom's code. Each stalled call leaves a line in the node's log.
After each fault is undone the harness waits (bounded) until every broker is registered and
every ISR is full again before the next; a wait that runs out is reported (slow heals), not
counted as a safety anomaly, since the verdict must not depend on the machine's speed.

At the end every fault is undone, the cluster must heal (else: `unhealed`), the producers
flush, a fresh consumer reads every partition from offset 0 (the final read), the group
consumers get time to catch up, and `checker.check` looks for: lost writes, duplicates,
inconsistent offsets, vanished reads, non-monotonic polls, poll skips, group skips, fatal
client errors; plus node crashes (a node exiting without being killed), restarts that
fail, and a schedule cut short by the deadline. One verdict line with every count; exit 0
when all are zero, 1 when not, 2 when the harness itself failed.

`--acks 1` swaps the producers for non-idempotent acks=1 ones, which lose what a leader
acknowledged before its followers fetched it when that leader is killed: a check that the
checker finds real losses in a real run (its verdict is then expected to be ANOMALIES).

Every wait is bounded and the run has an overall deadline (`--deadline-s`, by default from
the number of faults): past it no new fault starts, and a watchdog ends the process (nodes
killed, namespaces removed) if the ending itself does not finish in time.
"""

import argparse
import atexit
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from confluent_kafka import Consumer  # noqa: E402

from checker import History, check  # noqa: E402
from cluster import SESSION_TIMEOUT_MS, Cluster, WaitTimeout  # noqa: E402
from cluster_fixtures import create_topic  # noqa: E402
from cluster_load import (  # noqa: E402
    CONNECTION_EVENTS,
    ConfluentObserver,
    ConfluentPolling,
    ConfluentProducer,
    KafkaPythonProducer,
    final_read,
)

KINDS = ("kill-leader", "kill-any", "pause", "partition-isolate", "partition-pair", "disk-full", "slow-fsync")
PARTITION_KINDS = ("partition-isolate", "partition-pair")
SESSION_S = SESSION_TIMEOUT_MS / 1000
TOPIC = "chaos"
# Bounds of the waits between faults and at the end; generous for a loaded 2-core machine.
LEADER_TIMEOUT_S = 60
HEAL_TIMEOUT_S = 90
FINAL_HEAL_TIMEOUT_S = 180
CATCH_UP_TIMEOUT_S = 120
# What the ending (heal, flush, final read, catch-up, teardown) may take at most, kept free
# before the deadline; the watchdog allows this much again past it.
ENDING_S = FINAL_HEAL_TIMEOUT_S + 60 + 120 + CATCH_UP_TIMEOUT_S + 60


def log(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def run_ip(*args, check_rc=True):
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check_rc and proc.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


# --- the network ---------------------------------------------------------------------------


class Netns:
    """One network namespace per node on a bridge of the harness's own (see the module doc).
    Names carry a random tag, so runs side by side do not collide; `teardown` removes all."""

    def __init__(self, node_ids):
        self.tag = uuid.uuid4().hex[:5]
        rng = random.Random()
        self.prefix = f"10.{rng.randrange(100, 250)}.{rng.randrange(0, 256)}"
        self.bridge = f"chb{self.tag}"
        self.ns = {i: f"chaos-{self.tag}-{i}" for i in node_ids}
        self.cuts = set()  # frozenset({a, b})
        self.made = False

    @staticmethod
    def available():
        """Whether this process may create namespaces (root and `ip` present), and why not."""
        if os.geteuid() != 0:
            return False, "not root"
        if shutil.which("ip") is None:
            return False, "no `ip` command"
        probe = f"chaos-probe-{uuid.uuid4().hex[:6]}"
        proc = run_ip("netns", "add", probe, check_rc=False)
        if proc.returncode != 0:
            return False, f"`ip netns add` failed: {proc.stderr.strip()}"
        run_ip("netns", "del", probe, check_rc=False)
        return True, ""

    def host(self, node_id):
        return f"{self.prefix}.{node_id}"

    def wrap(self, node_id):
        return ["ip", "netns", "exec", self.ns[node_id]]

    def setup(self):
        self.made = True
        run_ip("link", "add", self.bridge, "type", "bridge")
        run_ip("addr", "add", f"{self.prefix}.254/24", "dev", self.bridge)
        run_ip("link", "set", self.bridge, "up")
        for i, ns in self.ns.items():
            veth = f"chv{self.tag}{i}"
            run_ip("netns", "add", ns)
            run_ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            run_ip("link", "set", veth, "master", self.bridge, "up")
            run_ip("-n", ns, "addr", "add", f"{self.host(i)}/24", "dev", "eth0")
            run_ip("-n", ns, "link", "set", "eth0", "up")
            run_ip("-n", ns, "link", "set", "lo", "up")
        log(f"network: namespaces {sorted(self.ns.values())} on bridge {self.bridge}, {self.prefix}.0/24")

    def _route(self, op, a, b):
        run_ip("-n", self.ns[a], "route", op, "blackhole", f"{self.host(b)}/32")

    def cut(self, a, b):
        pair = frozenset((a, b))
        if pair in self.cuts:
            return
        self._route("add", a, b)
        self._route("add", b, a)
        self.cuts.add(pair)

    def heal(self, a, b):
        pair = frozenset((a, b))
        if pair not in self.cuts:
            return
        self._route("del", a, b)
        self._route("del", b, a)
        self.cuts.discard(pair)

    def heal_all(self):
        for pair in list(self.cuts):
            self.heal(*sorted(pair))

    def teardown(self):
        if not self.made:
            return
        self.made = False
        for ns in self.ns.values():
            run_ip("netns", "del", ns, check_rc=False)  # also removes the veth pair
        run_ip("link", "del", self.bridge, check_rc=False)


# --- full disks ------------------------------------------------------------------------------


class Disks:
    """Each node's data dir on its own tmpfs of `mb` MiB (mounted before the node starts;
    `ip netns exec` gives a node a mount namespace that still sees it). A full disk is a
    ballast file in that dir written until the tmpfs has no room left; freeing deletes it."""

    BALLAST = "chaos-ballast"

    def __init__(self, cluster, mb):
        self.cluster, self.mb = cluster, mb
        self.mounted = []

    def mount(self):
        for n in self.cluster.nodes.values():
            n.data_dir.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.mb}m", "tmpfs", str(n.data_dir)],
                                  capture_output=True, text=True, timeout=30)
            if proc.returncode != 0:
                raise RuntimeError(f"cannot mount a tmpfs on {n.data_dir} (--disk-mb needs root): {proc.stderr.strip()}")
            self.mounted.append(n.data_dir)
        log(f"disks: a {self.mb} MiB tmpfs on each node's data dir")

    def fill(self, node):
        """Writes the ballast until the disk is full (at most the tmpfs's size); MiB written."""
        chunk = b"\0" * (1 << 20)
        written = 0
        with open(node.data_dir / self.BALLAST, "ab", buffering=0) as f:
            for _ in range(self.mb + 1):
                try:
                    f.write(chunk)
                    written += 1
                except OSError:
                    break
        # The last partial chunk: fill what is left byte-exactly, in shrinking pieces.
        size = 1 << 19
        with open(node.data_dir / self.BALLAST, "ab", buffering=0) as f:
            while size >= 512:
                try:
                    f.write(b"\0" * size)
                except OSError:
                    size //= 2
        return written

    def free(self, node):
        (node.data_dir / self.BALLAST).unlink(missing_ok=True)

    def free_all(self):
        for n in self.cluster.nodes.values():
            self.free(n)

    def unmount(self, save):
        """Unmounts every tmpfs (the nodes stopped); `save` copies each dir out first (a
        tmpfs forgets its contents), to `<dir>/node-<id>.saved`."""
        for d in self.mounted:
            if save:
                shutil.copytree(d, d.with_name(d.name + ".saved"), dirs_exist_ok=True, symlinks=True)
            subprocess.run(["umount", str(d)], capture_output=True, timeout=30)
        self.mounted = []


# --- slow fsync ------------------------------------------------------------------------------


class SlowFsync:
    """The LD_PRELOAD shim of `slow_fsync.c` in every node: `stall(node, ms)` makes each of
    that node's fsync-family calls sleep `ms` first, from the next call on (a call already
    asleep finishes its own stall); `stall(node, 0)` ends it. The shim reads the node's
    control file on every call, so this works on a running process and across restarts."""

    SOURCE = HERE / "slow_fsync.c"

    def __init__(self, cluster):
        self.cluster = cluster
        self.lib = cluster.dir / "slow_fsync.so"

    @staticmethod
    def available():
        cc = shutil.which("cc") or shutil.which("gcc")
        return (True, "") if cc else (False, "no C compiler (cc) to build the slow-fsync shim")

    def control(self, node):
        return self.cluster.dir / f"node-{node.node_id}.fsync-delay-ms"

    def install(self):
        """Compiles the shim and sets every node's environment (before the nodes start)."""
        cc = shutil.which("cc") or shutil.which("gcc")
        proc = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(self.lib), str(self.SOURCE), "-ldl"],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"cannot compile {self.SOURCE} with {cc}: {proc.stderr.strip()}")
        for n in self.cluster.nodes.values():
            self.control(n).write_text("0\n")
            n.env.update({"LD_PRELOAD": str(self.lib), "STROM_CHAOS_FSYNC_DELAY_FILE": str(self.control(n))})
        log(f"slow fsync: shim {self.lib} preloaded into every node (control files node-N.fsync-delay-ms)")

    def stall(self, node, ms):
        # Written whole by a rename, so the shim never reads a half-written number.
        tmp = self.control(node).with_suffix(".tmp")
        tmp.write_text(f"{int(ms)}\n")
        os.replace(tmp, self.control(node))

    def stalls_logged(self, node):
        """How many stalled calls the node's log shows so far (the shim's lines)."""
        try:
            with open(node.log_path, "rb") as f:
                return sum(1 for line in f if line.startswith(b"slow-fsync: "))
        except OSError:
            return 0

    def clear_all(self):
        for n in self.cluster.nodes.values():
            self.stall(n, 0)


# --- group consumers -------------------------------------------------------------------------


class GroupMember(ConfluentPolling):
    """A subscribed confluent-kafka consumer of a group. Each assignment it gets is recorded
    under its own consumer name (`<group>/<member>#<generation>`): within one, offsets of a
    partition must rise without gaps; a new assignment starts from the committed offset."""

    batch = 500

    def __init__(self, history, bootstrap, topic, group, member, isolation):
        self.history, self.group, self.member = history, group, member
        self.name = f"{group}/{member}"
        self.generation = 0
        self.c = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": member,
            "isolation.level": isolation,
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 15000,
            "topic.metadata.refresh.interval.ms": 1000,
            "socket.timeout.ms": 10000,
            "log_level": 3,
            "error_cb": lambda err: history.error(f"{self.name}:client", err.name(), err.str(),
                                                  err.retriable() or err.code() in CONNECTION_EVENTS, err.fatal()),
        })
        self.c.subscribe([topic], on_assign=self._assigned, on_revoke=self._revoked)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    @property
    def current(self):
        return f"{self.name}#{self.generation}"

    def _assigned(self, consumer, partitions):
        self.generation += 1
        with self.history.lock:
            self.history.groups[self.group].add(self.current)
        self.history.note(f"{self.current} assigned {sorted(p.partition for p in partitions)}")

    def _revoked(self, consumer, partitions):
        self.history.note(f"{self.current} revoked {sorted(p.partition for p in partitions)}")

    def polled_as(self):
        return self.current


# --- the schedule ----------------------------------------------------------------------------


def parse_mix(text):
    mix = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        kind, _, count = item.partition("=")
        if kind not in KINDS or not count.isdigit():
            raise SystemExit(f"--mix: `{item}` is not kind=count with kind one of {', '.join(KINDS)}")
        mix[kind] = int(count)
    return mix


def make_schedule(rng, args, node_ids, kinds):
    if args.mix:
        order = [k for k, n in sorted(parse_mix(args.mix).items()) for _ in range(n)]
        rng.shuffle(order)
    else:
        order = [rng.choice(kinds) for _ in range(args.faults)]
    schedule = []
    for kind in order:
        f = {"kind": kind}
        if kind == "kill-leader":
            f["partition"] = rng.randrange(args.partitions)
            f["down_s"] = round(rng.uniform(0.5, 4), 1)
        elif kind == "kill-any":
            f["node"] = rng.choice(node_ids)
            f["down_s"] = round(rng.uniform(0.5, 4), 1)
        else:
            if rng.random() < 0.5:
                f["partition"] = rng.randrange(args.partitions)
            if kind == "pause":
                if "partition" not in f:
                    f["node"] = rng.choice(node_ids)
                f["hold_s"] = round(SESSION_S + rng.uniform(1, 5), 1)
            elif kind in ("partition-isolate", "disk-full", "slow-fsync"):
                if "partition" not in f:
                    f["node"] = rng.choice(node_ids)
                f["hold_s"] = round(rng.uniform(2, 2 * SESSION_S), 1)
                if kind == "slow-fsync":
                    f["stall_ms"] = rng.randrange(1000, 5001, 100)
            else:  # partition-pair: the partition's leader and another node, or any two
                f["other"] = rng.random()
                if "partition" not in f:
                    f["pair"] = sorted(rng.sample(node_ids, 2))
                f["hold_s"] = round(rng.uniform(2, 2 * SESSION_S), 1)
        f["gap_s"] = round(rng.uniform(0.5, 3), 1)
        schedule.append(f)
    return schedule


def describe(f):
    where = (f"leader of partition {f['partition']}" if "partition" in f
             else f"nodes {f['pair']}" if "pair" in f else f"node {f['node']}")
    if f["kind"] == "partition-pair" and "partition" in f:
        where += " and another node"
    length = f"down {f['down_s']}s" if "down_s" in f else f"for {f['hold_s']}s"
    if "stall_ms" in f:
        length = f"each fsync stalled {f['stall_ms']} ms, {length}"
    return f"{f['kind']} {where}, {length}, then {f['gap_s']}s of load"


# --- the run ---------------------------------------------------------------------------------


class Chaos:
    def __init__(self, args, net):
        self.args, self.net = args, net
        self.history = History()
        self.deadline = time.monotonic() + args.deadline_s
        self.cluster = None
        self.producers, self.consumers = [], []
        self.done = {k: 0 for k in KINDS}
        self.slow = []  # bounded waits that ran out (liveness, not safety)
        self.restart_failures = []
        self.disks = None
        self.slow_fsync = None

    def note(self, text):
        self.history.note(text)
        log(f"[{self.history.t():8.2f}s] {text}")

    # cluster state

    def leader_of(self, partition):
        return self.cluster.leader(TOPIC, partition, timeout_s=LEADER_TIMEOUT_S)

    def soft(self, what, fn):
        """A bounded wait; when it runs out it is noted as slow and the run goes on."""
        start = time.monotonic()
        try:
            value = fn()
        except WaitTimeout as e:
            self.slow.append(f"{what}: {e}")
            self.note(f"slow: {what}: {e}")
            return None
        self.note(f"{what} after {time.monotonic() - start:.1f}s")
        return value

    def wait_healed(self, timeout_s=HEAL_TIMEOUT_S):
        every = [n.node_id for n in self.cluster.brokers()]
        start = time.monotonic()
        self.cluster.wait_ready(nodes=every, timeout_s=timeout_s)
        left = max(5.0, timeout_s - (time.monotonic() - start))
        self.cluster.wait_isr(TOPIC, timeout_s=left)

    def start_node(self, node):
        try:
            node.start()
            return True
        except AssertionError as e:
            self.restart_failures.append(f"{node}: {str(e).splitlines()[0]}")
            self.note(f"restart of {node} failed: {str(e).splitlines()[0]}")
            return False

    # faults

    def target(self, f):
        if "partition" in f:
            leader = self.soft(f"a live leader of partition {f['partition']}", lambda: self.leader_of(f["partition"]))
            return self.cluster[leader] if leader is not None else None
        return self.cluster[f["node"]]

    def inject(self, i, f):
        kind = f["kind"]
        node = self.target(f) if kind != "partition-pair" or "partition" in f else None
        if kind != "partition-pair" and node is None:
            self.note(f"fault {i}: {kind} skipped: no target")
            return False
        if kind in ("kill-leader", "kill-any"):
            node.kill()
            self.note(f"fault {i}: kill -9 {node}" + (f" (leader of partition {f['partition']})" if "partition" in f else ""))
            if "partition" in f:
                self.soft(f"partition {f['partition']}: a live leader other than {node}",
                          lambda: self.cluster.leader(TOPIC, f["partition"], timeout_s=LEADER_TIMEOUT_S,
                                                      not_in=(node.node_id,)))
            time.sleep(f["down_s"])  # the fault's length, from the schedule
            if self.start_node(node):
                self.note(f"{node} restarted")
        elif kind == "pause":
            node.pause()
            self.note(f"fault {i}: SIGSTOP {node}" + (f" (leader of partition {f['partition']})" if "partition" in f else "")
                      + f" for {f['hold_s']}s")
            time.sleep(f["hold_s"])  # the fault's length, from the schedule
            if "partition" in f and node.is_broker:
                self.soft(f"partition {f['partition']}: a live leader other than paused {node}",
                          lambda: self.cluster.leader(TOPIC, f["partition"], timeout_s=LEADER_TIMEOUT_S,
                                                      not_in=(node.node_id,)))
            node.resume()
            self.note(f"SIGCONT {node}")
        elif kind == "disk-full":
            filled = self.disks.fill(node)
            self.note(f"fault {i}: disk of {node} full" + (f" (leader of partition {f['partition']})" if "partition" in f
                                                          else "") + f" ({filled} MiB of ballast) for {f['hold_s']}s")
            time.sleep(f["hold_s"])  # the fault's length, from the schedule
            self.disks.free(node)
            self.note(f"disk of {node} freed")
        elif kind == "slow-fsync":
            before = self.slow_fsync.stalls_logged(node)
            self.slow_fsync.stall(node, f["stall_ms"])
            self.note(f"fault {i}: every fsync of {node} stalls {f['stall_ms']} ms"
                      + (f" (leader of partition {f['partition']})" if "partition" in f else "") + f" for {f['hold_s']}s")
            time.sleep(f["hold_s"])  # the fault's length, from the schedule
            self.slow_fsync.stall(node, 0)
            self.note(f"fsyncs of {node} fast again; {self.slow_fsync.stalls_logged(node) - before} stalled call(s) "
                      "logged so far (calls still asleep finish their stall)")
        else:
            ids = sorted(self.cluster.nodes)
            if kind == "partition-isolate":
                pairs = [(node.node_id, o) for o in ids if o != node.node_id]
                what = f"{node} isolated from {[o for _, o in pairs]}"
            elif node is not None:
                others = [o for o in ids if o != node.node_id]
                pairs = [(node.node_id, others[int(f["other"] * len(others))])]
                what = f"{node} (leader of partition {f['partition']}) cut from node {pairs[0][1]}"
            else:
                pairs = [tuple(f["pair"])]
                what = f"node {f['pair'][0]} cut from node {f['pair'][1]}"
            for a, b in pairs:
                self.net.cut(a, b)
            self.note(f"fault {i}: network partition: {what} for {f['hold_s']}s")
            time.sleep(f["hold_s"])  # the fault's length, from the schedule
            for a, b in pairs:
                self.net.heal(a, b)
            self.note("network healed")
        self.done[kind] += 1
        self.soft("every broker registered and every ISR full", self.wait_healed)
        return True

    # load

    def start_load(self):
        bootstrap = self.cluster.bootstrap
        P, rate = self.args.partitions, self.args.rate
        self.consumers.append(ConfluentObserver(self.history, bootstrap, TOPIC, P, name="observer").start())
        for group, member, isolation in (("chaos-ru", "m1", "read_uncommitted"), ("chaos-ru", "m2", "read_uncommitted"),
                                         ("chaos-rc", "m1", "read_committed")):
            self.consumers.append(GroupMember(self.history, bootstrap, TOPIC, group, member, isolation).start())
        if self.args.acks == "all":
            confluent_conf, kafkapython_conf, how = {}, {}, "idempotent, acks=all"
        else:
            # The checker's own check: acks=1 producers (not idempotent: an idempotent
            # producer must use acks=all) lose what the leader acknowledged before its
            # followers fetched it when the leader dies.
            confluent_conf = {"acks": "1", "enable.idempotence": False}
            kafkapython_conf = {"acks": 1, "idempotent": False}
            how = "acks=1, not idempotent: losses are expected (a check of the checker)"
        if self.args.client_debug:
            # librdkafka's debug contexts (e.g. eos, msg), logged to stderr at level 7.
            confluent_conf.update({"debug": self.args.client_debug, "log_level": 7})
        self.producers.append(ConfluentProducer(self.history, bootstrap, TOPIC, P, rate, name="confluent",
                                                **{"message.timeout.ms": 300000, **confluent_conf}).start())
        self.producers.append(KafkaPythonProducer(self.history, bootstrap, TOPIC, P, rate, name="kafkapython",
                                                  delivery_timeout_ms=300000, **kafkapython_conf).start())
        if self.args.acks != "all":
            self.history.idempotent.clear()
        self.note(f"load: producers confluent and kafkapython at {rate}/s each ({how}); observer; "
                  "groups chaos-ru (2 members, read_uncommitted) and chaos-rc (1 member, read_committed)")

    def run(self, schedule):
        a = self.args
        overrides = {"min.insync.replicas": str(a.min_insync), "replica.lag.time.max.ms": str(a.replica_lag_ms)}
        for item in a.broker_config:
            key, _, value = item.partition("=")
            overrides[key] = value
        self.cluster = Cluster(a.binary, a.nodes, overrides, name=f"chaos-{a.seed}", controllers=a.controllers,
                               net=self.net)
        self.cluster.runs = []
        log(f"cluster dir {self.cluster.dir}")
        if self.net is not None:
            self.net.setup()
        if a.disk_mb:
            self.disks = Disks(self.cluster, a.disk_mb)
            self.disks.mount()
        if any(f["kind"] == "slow-fsync" for f in schedule):
            self.slow_fsync = SlowFsync(self.cluster)
            self.slow_fsync.install()
        self.cluster.start()
        create_topic(self.cluster, TOPIC, a.partitions, 3, {"min.insync.replicas": str(a.min_insync)})
        self.cluster.wait_isr(TOPIC, timeout_s=HEAL_TIMEOUT_S)
        self.note(f"topic {TOPIC}: {a.partitions} partitions, RF 3, min.insync.replicas={a.min_insync}, "
                  f"replica.lag.time.max.ms={overrides['replica.lag.time.max.ms']}; "
                  f"nodes {[f'{n.node_id}:{n.roles}@{n.host}' for n in self.cluster.nodes.values()]}")
        self.start_load()
        time.sleep(3)  # load before the first fault
        cut = None
        for i, f in enumerate(schedule, 1):
            if time.monotonic() > self.deadline - ENDING_S:
                cut = f"deadline reached before fault {i} of {len(schedule)}"
                self.note(cut)
                break
            self.inject(i, f)
            time.sleep(f["gap_s"])  # load between faults, from the schedule
        return self.finish(cut)

    def finish(self, cut):
        self.note("ending: every fault undone, waiting for the cluster to heal")
        if self.net is not None:
            self.net.heal_all()
        if self.disks is not None:
            self.disks.free_all()
        if self.slow_fsync is not None:
            self.slow_fsync.clear_all()
        for n in self.cluster.nodes.values():
            n.resume()
            if not n.alive:
                self.start_node(n)
        unhealed = None
        epochs = None
        try:
            self.wait_healed(FINAL_HEAL_TIMEOUT_S)
            epochs = {p: i["epoch"] for p, i in sorted(self.cluster.partitions(TOPIC).items())}
            self.note(f"healed; leader epochs by partition {epochs} (each leader change adds one)")
        except WaitTimeout as e:
            unhealed = str(e)
            self.note(f"not healed: {e}")
        for p in self.producers:
            p.stop(timeout_s=120)
        self.note(f"producers stopped: {self.history.summary()['sent']} sent, {len(self.history.acks)} acknowledged")
        final_read(self.history, self.cluster.bootstrap, TOPIC, self.args.partitions, timeout_s=120)
        self.catch_up()
        for c in self.consumers:
            c.stop()
        self.producers, self.consumers = [], []
        result = check(self.history)
        result.add("node-crashes", [f"node {k} exited {v}" for k, v in self.cluster.crashed()])
        result.add("restart-failures", self.restart_failures)
        result.add("unhealed", [unhealed] if unhealed else [])
        result.add("schedule-cut", [cut] if cut else [])
        result.info["leader epochs"] = epochs
        return result

    def catch_up(self):
        """Until the observer and every group polled up to the final read's end offsets."""
        ends = {}
        for p, o, _ in self.history.final:
            ends[p] = max(ends.get(p, -1), o)

        def behind():
            out = []
            with self.history.lock:
                sets = {"observer": ["observer"], **{g: sorted(m) for g, m in self.history.groups.items()}}
                for who, names in sets.items():
                    top = {}
                    for name in names:
                        for p, o, _ in self.history.polls.get(name, ()):
                            top[p] = max(top.get(p, -1), o)
                    if any(top.get(p, -1) < end for p, end in ends.items()):
                        out.append(who)
            return out

        start = time.monotonic()
        while time.monotonic() - start < CATCH_UP_TIMEOUT_S:
            late = behind()
            if not late:
                self.note(f"consumers caught up after {time.monotonic() - start:.1f}s")
                return
            time.sleep(0.5)
        self.note(f"consumers {late} did not reach the end offsets {ends} in {CATCH_UP_TIMEOUT_S}s")


VERDICT_KINDS = ("lost", "duplicates", "inconsistent-offsets", "vanished-reads", "non-monotonic-polls", "poll-skips",
                 "group-skips", "group-incomplete", "fatal-client-errors", "final-read-incomplete",
                 "final-read-conflicts", "node-crashes", "restart-failures", "unhealed", "schedule-cut")


def verdict_line(result, chaos, seed, elapsed):
    counts = " ".join(f"{k}={result.count(k)}" for k in VERDICT_KINDS)
    others = [k for k in result.problems if k not in VERDICT_KINDS]
    counts += "".join(f" {k}={result.count(k)}" for k in others)
    faults = ",".join(f"{k}={v}" for k, v in chaos.done.items())
    return (f"chaos verdict: {'CLEAN' if result.ok else 'ANOMALIES'} seed={seed} faults[{faults}] "
            f"acked={result.info.get('acked')} final={result.info.get('final')} {counts} slow-heals={len(chaos.slow)} "
            f"elapsed={elapsed:.0f}s")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="scripts/chaos", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=None, help="replays a schedule (default: random, printed)")
    ap.add_argument("--nodes", type=int, default=3, help="broker nodes (combined controller+broker unless --controllers)")
    ap.add_argument("--controllers", type=int, default=0, help="separate controller-only nodes (0: combined roles)")
    ap.add_argument("--faults", type=int, default=10, help="faults drawn at random from --kinds")
    ap.add_argument("--kinds", default=",".join(KINDS), help="fault kinds to draw from")
    ap.add_argument("--mix", default="", help="exact counts instead, e.g. kill-leader=100,pause=50 (shuffled)")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--min-insync", type=int, default=2)
    ap.add_argument("--rate", type=int, default=200, help="records a second per producer")
    ap.add_argument("--acks", choices=("all", "1"), default="all",
                    help="1: non-idempotent acks=1 producers, which lose writes when a leader dies; a check "
                         "that the checker finds real losses (expect ANOMALIES)")
    ap.add_argument("--client-debug", default="", metavar="CONTEXTS",
                    help="librdkafka debug contexts for the confluent producer (e.g. eos), to stderr")
    ap.add_argument("--replica-lag-ms", type=int, default=8000,
                    help="replica.lag.time.max.ms of every node (Kafka's 30000 outlasts every fault here; "
                         "8000 lets partitions and pauses shrink ISRs)")
    ap.add_argument("--disk-mb", type=int, default=0,
                    help="each node's data dir on a tmpfs of this many MiB (mounting needs root), which "
                         "enables the disk-full fault; 0: off")
    ap.add_argument("--broker-config", action="append", default=[], metavar="KEY=VALUE",
                    help="a key for every node (repeatable)")
    ap.add_argument("--net", choices=("auto", "netns", "loopback"), default="auto")
    ap.add_argument("--deadline-s", type=float, default=None, help="overall deadline (default: from the faults)")
    ap.add_argument("--keep", action="store_true", help="keep the data dirs and logs even when clean")
    ap.add_argument("--results", default=None, help="append one JSON line with the outcome to this file")
    ap.add_argument("--binary", default=os.environ.get("STROM_BIN", str(HERE.parent.parent / "target/debug/strom")))
    args = ap.parse_args(argv)
    started = time.monotonic()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)
    if not pathlib.Path(args.binary).is_file():
        print(f"no strom binary at {args.binary}: build it (cargo build --bin strom) or set STROM_BIN", file=sys.stderr)
        return 2
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        print(f"--kinds: unknown {bad}; kinds are {', '.join(KINDS)}", file=sys.stderr)
        return 2

    net = None
    if args.net != "loopback":
        ok, why = Netns.available()
        if ok:
            net = Netns(range(1, args.nodes + args.controllers + 1))
        elif args.net == "netns":
            print(f"--net netns: cannot create network namespaces ({why})", file=sys.stderr)
            return 2
        else:
            log(f"network namespaces unavailable ({why}): nodes on 127.0.0.1, no partition faults")
    if net is None:
        if any(k in PARTITION_KINDS for k in parse_mix(args.mix)):
            print("--mix asks for network partitions, which need --net netns (root)", file=sys.stderr)
            return 2
        kinds = [k for k in kinds if k not in PARTITION_KINDS]
    if not args.disk_mb:
        if "disk-full" in parse_mix(args.mix):
            print("--mix asks for disk-full, which needs --disk-mb (a tmpfs per node: root)", file=sys.stderr)
            return 2
        kinds = [k for k in kinds if k != "disk-full"]
    ok, why = SlowFsync.available()
    if not ok:
        if "slow-fsync" in parse_mix(args.mix):
            print(f"--mix asks for slow-fsync: {why}", file=sys.stderr)
            return 2
        kinds = [k for k in kinds if k != "slow-fsync"]

    rng = random.Random(args.seed)
    node_ids = list(range(1, args.nodes + args.controllers + 1))
    schedule = make_schedule(rng, args, node_ids, kinds)
    if args.deadline_s is None:
        args.deadline_s = 180 + ENDING_S + sum(60 + f.get("down_s", 0) + f.get("hold_s", 0) + f["gap_s"] for f in schedule)
    log(f"seed {args.seed} (--seed {args.seed} replays this schedule); {args.nodes} broker nodes"
        + (f" + {args.controllers} controllers" if args.controllers else " (combined controller+broker)")
        + f", net {'netns' if net else 'loopback'}, deadline {args.deadline_s:.0f}s")
    for i, f in enumerate(schedule, 1):
        log(f"  schedule {i}: {describe(f)}")

    chaos = Chaos(args, net)

    def cleanup():
        if chaos.cluster is not None:
            for n in chaos.cluster.nodes.values():
                if n.proc is not None and n.proc.poll() is None:
                    n.proc.kill()
                    n.proc.wait(10)
        if chaos.disks is not None:
            chaos.disks.unmount(save=False)
        if net is not None:
            net.teardown()

    def watchdog():
        log(f"watchdog: the run passed its deadline by {ENDING_S}s: nodes killed, exiting "
            f"(seed {args.seed}; logs in {chaos.cluster.dir if chaos.cluster else '-'})")
        cleanup()
        os._exit(2)

    timer = threading.Timer(args.deadline_s + ENDING_S, watchdog)
    timer.daemon = True
    timer.start()
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))

    code = 2
    try:
        result = chaos.run(schedule)
        elapsed = time.monotonic() - started
        print(result.message() if not result.ok else f"no anomaly; {result.info | {'timeline': '...'}}", flush=True)
        odd = [f"{t}s {text}" for t, text in chaos.history.timeline if text.startswith("ack without an offset")]
        if odd:
            log(f"{len(odd)} acknowledgement(s) without an offset (counted as kept when the value is in the final read):")
            for line in odd[:20]:
                log(f"    {line}")
        if chaos.slow:
            log(f"{len(chaos.slow)} bounded wait(s) ran out (liveness, not counted in the verdict):")
            for s in chaos.slow[:10]:
                log(f"    {s}")
        if chaos.slow_fsync is not None:
            log("slow fsync: stalled calls logged by node: " + ", ".join(
                f"{n.node_id}={chaos.slow_fsync.stalls_logged(n)}" for n in chaos.cluster.nodes.values()))
        line = verdict_line(result, chaos, args.seed, elapsed)
        print(line, flush=True)
        code = 0 if result.ok else 1
        if args.results:
            with open(args.results, "a") as out:
                out.write(json.dumps({
                    "seed": args.seed, "nodes": args.nodes, "controllers": args.controllers, "net": "netns" if net else
                    "loopback", "faults": chaos.done, "anomalies": {k: v[0] for k, v in result.problems.items()},
                    "acked": result.info.get("acked"), "final": result.info.get("final"), "slow_heals": len(chaos.slow),
                    "leader_epochs": result.info.get("leader epochs"),
                    "acked_without_offset": result.info.get("acked without an offset"),
                    "fsync_stalls": (sum(chaos.slow_fsync.stalls_logged(n) for n in chaos.cluster.nodes.values())
                                     if chaos.slow_fsync else 0),
                    "elapsed_s": round(elapsed), "verdict": "clean" if result.ok else "anomalies",
                }) + "\n")
    except Exception as e:  # noqa: BLE001 -- the harness reports its own failure and keeps the logs
        import traceback

        traceback.print_exc()
        print(f"chaos verdict: HARNESS-ERROR seed={args.seed}: {e!r}", flush=True)
    finally:
        timer.cancel()
        for c in chaos.consumers + chaos.producers:
            try:
                c.stop(timeout_s=10)
            except Exception:  # noqa: BLE001 -- cleanup reaches every client
                pass
        if chaos.cluster is not None:
            chaos.cluster.teardown(keep=True)
            if chaos.disks is not None:
                chaos.disks.unmount(save=code != 0 or args.keep)
            if code == 0 and not args.keep:
                chaos.cluster.remove()
            else:
                if code != 0:
                    print(chaos.cluster.dump_logs(30), flush=True)
                log(f"kept: data dirs and node logs in {chaos.cluster.dir} (seed {args.seed})")
        cleanup()
    return code


if __name__ == "__main__":
    sys.exit(main())
