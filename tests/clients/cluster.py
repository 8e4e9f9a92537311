"""A cluster of real `strom server` processes on 127.0.0.1, for the multi-node tests
(test_cluster*.py).

`Cluster(n)` gives each node its own data dir, `node.id` (1..n), a PLAINTEXT and a CONTROLLER
port, `process.roles=broker,controller` and `controller.quorum.voters` listing every node.
`Cluster(n, controllers=c)` separates the roles as a production cluster does: nodes 1..c are
controller-only (`process.roles=controller`, the CONTROLLER listener alone, the static voters),
nodes c+1..c+n broker-only (`process.roles=broker`, PLAINTEXT alone, the quorum found through
`controller.quorum.bootstrap.servers`). `add_node` starts one more (a controller that joins as
an observer, or a broker). `live()` and every Metadata read are about the brokers.
Single nodes can be stopped (SIGTERM), killed (SIGKILL), paused (SIGSTOP) and resumed
(SIGCONT), and restarted on the same ports and data dir. Every wait is a bounded poll.

Cluster state is read the way a client reads it, with a Metadata request (v7) sent to one
chosen node over a plain socket (the harness must be able to ask a given node, which a
client library does not allow): which brokers it lists (Strom lists the unfenced ones, and
itself), and each partition's leader, leader epoch, replicas and ISR.

`Cluster(n, net=...)` places nodes elsewhere than on 127.0.0.1: `net.host(node_id)` is the
address a node listens on (and is reached at), `net.wrap(node_id)` a command prefix it is
started under (the chaos harness, `chaos.py`, runs each node in its own network namespace
with `ip netns exec`, which execs, so the process's pid stays the node's).

Each node's stdout/stderr goes to `<dir>/node-<id>.log`; `dump_logs()` returns their tails
for a failure message.

Ports are picked free below the kernel's ephemeral range (ports.py) but can still be taken
before a node binds them. When a node exits with "Address already in use":
- during `Cluster.start` (the cluster's first start: every node's controller port is in
  every node's config, so one port cannot be changed alone), every node is stopped, every
  node's ports are picked afresh, its directories emptied (nothing of the test's is in them
  yet) and formatted again if the cluster formats, and the whole cluster started again;
- during `add_node`, that node alone gets fresh ports and empty directories;
- during any other `Node.start` (a restart: its data and its peers know its ports), the
  same ports are tried again after a short backoff;
at most 3 starts in all, then the failure is raised with that start's output.
"""

import os
import pathlib
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

from kafka_wire import _read_exact, api_versions
# free_ports is imported from here by the cluster tests.
from ports import empty_dir, free_ports, restart_backoff, start_retrying  # noqa: F401

ANSI = re.compile(r"\x1b\[[0-9;]*m")
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20
# Kafka's broker.session.timeout.ms is 9 s; a shorter one keeps failover tests short. Strom's
# broker heartbeats every 2 s, so 6 s still tolerates two lost heartbeats on a loaded machine.
SESSION_TIMEOUT_MS = 6000

# What every node of a test cluster runs with, besides its own ids, ports and dirs.
CLUSTER_DEFAULTS = {
    "process.roles": "broker,controller",
    "controller.listener.names": "CONTROLLER",
    "broker.session.timeout.ms": str(SESSION_TIMEOUT_MS),
    "default.replication.factor": "3",
    "num.partitions": "3",
    # The consumer-offsets topic replicated as Kafka's default (3): a group's committed
    # offsets must survive losing its coordinator's broker.
    "offsets.topic.replication.factor": "3",
    "offsets.topic.num.partitions": "6",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "false",
}




# --- Metadata v7 over a socket ---------------------------------------------------------------


class _Reader:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def take(self, fmt):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise ValueError("Metadata response truncated")
        vals = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return vals if len(vals) > 1 else vals[0]

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.buf[self.pos : self.pos + n].decode()
        self.pos += n
        return s

    def array(self, item):
        n = self.take(">i")
        return [item() for _ in range(max(n, 0))]


def metadata(host, port, topics=None, timeout_s=5.0):
    """Metadata v7 from one broker: {"brokers": {id: (host, port)}, "controller": id,
    "topics": {name: {"error": code, "partitions": {p: {"error", "leader", "epoch",
    "replicas", "isr", "offline"}}}}}. `topics` None asks for every topic."""
    body = struct.pack(">hhih", 3, 7, 7, len(b"strom-cluster-tests")) + b"strom-cluster-tests"
    if topics is None:
        body += struct.pack(">i", -1)
    else:
        body += struct.pack(">i", len(topics))
        for t in topics:
            body += struct.pack(">h", len(t.encode())) + t.encode()
    body += struct.pack(">?", False)  # allow_auto_topic_creation
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.settimeout(timeout_s)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _read_exact(sock, 4))
        if not 0 < size <= 64 << 20:
            raise ValueError(f"Metadata response size {size} out of range")
        r = _Reader(_read_exact(sock, size))
    if r.take(">i") != 7:
        raise ValueError("Metadata response with the wrong correlation id")
    r.take(">i")  # throttle_time_ms
    brokers = {}
    for node_id, host_, port_ in r.array(lambda: (r.take(">i"), r.string(), r.take(">i"), r.string())[:3]):
        brokers[node_id] = (host_, port_)
    r.string()  # cluster_id
    controller = r.take(">i")

    def partition():
        error, index, leader, epoch = r.take(">hiii")
        replicas = r.array(lambda: r.take(">i"))
        isr = r.array(lambda: r.take(">i"))
        offline = r.array(lambda: r.take(">i"))
        return index, {"error": error, "leader": leader, "epoch": epoch, "replicas": replicas, "isr": isr,
                       "offline": offline}

    def topic():
        error = r.take(">h")
        name = r.string()
        r.take(">?")  # is_internal
        return name, {"error": error, "partitions": dict(r.array(partition))}

    return {"brokers": brokers, "controller": controller, "topics": dict(r.array(topic))}


class NotYet(Exception):
    """A polled condition does not hold yet; the argument says what was seen."""


class WaitTimeout(AssertionError):
    """A bounded wait ran out."""


def find_coordinator(host, port, group, timeout_s=5.0):
    """FindCoordinator v1 for a group from one broker: (error_code, node_id)."""
    client = b"strom-cluster-tests"
    body = struct.pack(">hhih", 10, 1, 10, len(client)) + client
    body += struct.pack(">h", len(group.encode())) + group.encode() + struct.pack(">b", 0)
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.settimeout(timeout_s)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _read_exact(sock, 4))
        if not 0 < size <= 1 << 20:
            raise ValueError(f"FindCoordinator response size {size} out of range")
        r = _Reader(_read_exact(sock, size))
    if r.take(">i") != 10:
        raise ValueError("FindCoordinator response with the wrong correlation id")
    r.take(">i")  # throttle_time_ms
    error = r.take(">h")
    r.string()  # error_message
    return error, r.take(">i")


# --- nodes -----------------------------------------------------------------------------------


class Node:
    """One `strom server` process of a cluster; keeps its ports and data dir across restarts."""

    def __init__(self, cluster, node_id, port, controller_port, roles="broker,controller", props=None):
        self.cluster, self.node_id = cluster, node_id
        self.port, self.controller_port = port, controller_port
        self.roles = roles
        # Per-node keys over the cluster's (e.g. a joining controller's bootstrap servers).
        self.props = dict(props or {})
        self.host = cluster.net.host(node_id) if cluster.net else "127.0.0.1"
        self.data_dir = cluster.dir / f"node-{node_id}"
        # Every entry of log.dirs: the data dir first (it holds the metadata log), then
        # the cluster's `log_dirs - 1` more (JBOD).
        self.log_dirs = [self.data_dir] + [cluster.dir / f"node-{node_id}-dir{k}"
                                           for k in range(2, getattr(cluster, "log_dirs", 1) + 1)]
        self.log_path = cluster.dir / f"node-{node_id}.log"
        self.proc = None
        self.paused = False
        self.starts = 0
        # Whether the harness means it to be running (a process that exits while this is
        # set crashed).
        self.expected = False
        self._log = None
        # Where the current start's output begins in the log (a failure shows its own output).
        self._output_from = 0
        # Environment variables for this node's process only (e.g. the chaos harness's
        # LD_PRELOAD slow-fsync shim), over the harness's own.
        self.env = {}

    def __repr__(self):
        return f"node {self.node_id}"

    @property
    def bootstrap(self):
        return f"{self.host}:{self.port}"

    @property
    def is_broker(self):
        return "broker" in self.roles

    @property
    def is_controller(self):
        return "controller" in self.roles

    def extra(self):
        """The cluster's extra listener on this node, as a `listeners` suffix (or nothing)."""
        if not self.cluster.extra_listener:
            return ""
        return f",{self.cluster.extra_listener}://{self.host}:{self.extra_port}"

    def args(self):
        out = ["server"]
        for k, v in self.properties().items():
            out += ["--override", f"{k}={v}"]
        return out

    def format(self, *flags):
        """`strom storage format` of this node's directories (its keys in a properties file),
        with `flags` such as --standalone or --no-initial-controllers."""
        path = self.cluster.dir / f"node-{self.node_id}.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        proc = subprocess.run([str(self.cluster.binary), "storage", "format", "-c", str(path), "-t",
                               self.cluster.cluster_id, *flags], capture_output=True, timeout=30)
        assert proc.returncode == 0, f"format of {self} failed: {proc.stderr.decode(errors='replace')}"
        return proc.stdout.decode()

    def properties(self):
        props = dict(CLUSTER_DEFAULTS)
        props.update({"node.id": str(self.node_id), "log.dirs": ",".join(str(d) for d in self.log_dirs),
                      "process.roles": self.roles})
        if self.roles == "broker":
            props["listeners"] = f"PLAINTEXT://{self.host}:{self.port}" + self.extra()
            props["controller.quorum.bootstrap.servers"] = self.cluster.controller_addrs
        elif self.roles == "controller":
            props["listeners"] = f"CONTROLLER://{self.host}:{self.controller_port}"
            if self.cluster.dynamic:
                props["controller.quorum.bootstrap.servers"] = self.cluster.controller_addrs
            else:
                props["controller.quorum.voters"] = self.cluster.voters
        else:
            props["listeners"] = (f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
                                  + self.extra())
            props["controller.quorum.voters"] = self.cluster.voters
        props.update(self.cluster.overrides)
        props.update(self.props)
        return {k: v for k, v in props.items() if v is not None}

    @property
    def alive(self):
        """Running (paused counts: the process is there, it just does nothing)."""
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait=True):
        """Starts the process; with `wait`, waits until it serves (wait_serving), and starts
        it again on the same ports after a short backoff when it exited because a port was
        taken (module doc)."""
        if not wait:
            self._spawn()
            return

        def once():
            self._spawn()
            self.wait_serving()

        def before_retry(attempt):
            self._abandon()
            restart_backoff(attempt)

        start_retrying(once, before_retry)

    def _abandon(self):
        """Forgets a start that failed (the process exited or is killed now): not a crash."""
        self.expected = False
        if self.alive:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        self._close_log()

    def _spawn(self):
        assert not self.alive, f"{self} is already running"
        self._check_crash()
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn,strom=info,strom_broker=info,strom_meta=info,strom_raft=info")
        env.update(self.env)
        self._log = open(self.log_path, "ab")
        self._output_from = self._log.tell()
        self.starts += 1
        self._log.write(f"\n===== harness: start #{self.starts} of {self} at {time.strftime('%H:%M:%S')}\n".encode())
        self._log.flush()
        wrap = self.cluster.net.wrap(self.node_id) if self.cluster.net else []
        self.proc = subprocess.Popen(wrap + [str(self.cluster.binary)] + self.args(), stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env)
        self.paused = False
        self.expected = True

    def wait_serving(self, timeout_s=START_TIMEOUT_S, watch=()):
        """Until the PLAINTEXT listener answers ApiVersions (a controller-only node: until
        its CONTROLLER listener accepts connections). Fails, with the output of its start,
        as soon as it or a node of `watch` (started with it) has exited."""
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            for n in (self, *watch):
                if n.proc is not None and n.proc.poll() is not None:
                    raise AssertionError(f"{n} exited with {n.proc.returncode} while starting:\n"
                                         f"{n.log_tail(since=n._output_from)}")
            try:
                if self.is_broker:
                    api_versions(self.host, self.port, timeout_s=2.0)
                else:
                    socket.create_connection((self.host, self.controller_port), timeout=2.0).close()
                return
            except (OSError, ValueError) as e:
                last = e
                time.sleep(0.2)
        raise AssertionError(f"{self} not serving on {self.bootstrap} in {timeout_s}s ({last}):\n"
                             f"{self.log_tail(since=self._output_from)}")

    def _note(self, what):
        if self._log is not None and not self._log.closed:
            self._log.write(f"\n===== harness: {what} at {time.strftime('%H:%M:%S')}\n".encode())
            self._log.flush()

    def stop(self, timeout_s=STOP_TIMEOUT_S):
        """SIGTERM (controlled shutdown); returns the exit code. SIGKILL if it does not exit."""
        self._check_crash()
        self.expected = False
        if not self.alive:
            return None
        if self.paused:
            self.resume()
        self._note("SIGTERM")
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._note(f"still running {timeout_s}s after SIGTERM: SIGKILL")
            self.proc.kill()
            code = self.proc.wait(timeout=timeout_s)
        self._close_log()
        return code

    def kill(self):
        """SIGKILL: a crash; nothing is flushed or said goodbye."""
        self._check_crash()
        self.expected = False
        if not self.alive:
            return
        self._note("SIGKILL")
        self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.paused = False
        self._close_log()

    def pause(self):
        """SIGSTOP: the process keeps its sockets but does nothing (a long GC pause, a VM stall)."""
        assert self.alive, f"{self} is not running"
        self._note("SIGSTOP")
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.alive and self.paused:
            self.proc.send_signal(signal.SIGCONT)
            self.paused = False
            self._note("SIGCONT")

    def restart(self, how="stop", wait=True):
        """Stops (SIGTERM, or `kill`) and starts again on the same ports and data dir."""
        (self.kill if how == "kill" else self.stop)()
        self.start(wait=wait)

    def _close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None

    def metadata(self, topics=None, timeout_s=5.0):
        return metadata(self.host, self.port, topics, timeout_s)

    def _check_crash(self):
        code = self.crashed()
        if code is not None:
            self.cluster.crashes.append((self.node_id, code))
            self.expected = False

    def crashed(self):
        """The exit code when it exited without the harness stopping it, else None."""
        if self.expected and self.proc is not None and self.proc.poll() is not None:
            return self.proc.returncode
        return None

    def log_tail(self, lines=60, since=0):
        """The log's last `lines` lines, of what was written from byte `since` on."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
            return ANSI.sub("", "\n".join(text.splitlines()[-lines:]))
        except OSError:
            return "(no log)"


class Cluster:
    """n nodes, each broker and controller. `overrides` apply to every node (e.g.
    {"strom.log.durability": "sync-on-commit"})."""

    def __init__(self, binary, n=3, overrides=None, name="cluster", controllers=0, dynamic=False,
                 extra_listener=None, net=None, log_dirs=1, format_flags=()):
        self.binary = pathlib.Path(binary)
        # Flags for `strom storage format` of every node before its first start (e.g.
        # --add-scram); a static quorum is otherwise formatted by its first start.
        self.format_flags = tuple(format_flags)
        # How many directories each node's log.dirs lists (JBOD).
        self.log_dirs = log_dirs
        # A third listener per broker node (e.g. "SECURE" for the security tests), on its own port.
        self.extra_listener = extra_listener
        # A dynamic quorum (KIP-853): controllers find each other through
        # controller.quorum.bootstrap.servers; `start` formats node 1 as the only initial
        # voter and the other controllers without initial voters (they join as observers).
        self.dynamic = dynamic
        # Where nodes run (see the module doc); None: all on 127.0.0.1 in this namespace.
        self.net = net
        self.cluster_id = "c3Ryb20tY2x1c3Rlci0x"
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix=f"strom-{name[:40]}-"))
        self.overrides = dict(overrides or {})
        self.crashes = []  # (node_id, exit code) of exits the harness did not cause
        total = n + controllers

        def roles(i):
            if not controllers:
                return "broker,controller"
            return "controller" if i < controllers else "broker"

        self.nodes = {i + 1: Node(self, i + 1, None, None, roles(i)) for i in range(total)}
        self.pick_ports()

    def pick_ports(self):
        """Picks every node's ports afresh (PLAINTEXT, CONTROLLER, the extra listener's), and
        the voters and controller addresses that name them."""
        nodes = list(self.nodes.values())
        ports = free_ports((3 if self.extra_listener else 2) * len(nodes))
        for i, node in enumerate(nodes):
            node.port, node.controller_port = ports[2 * i], ports[2 * i + 1]
            if self.extra_listener:
                node.extra_port = ports[2 * len(nodes) + i]
        self.voters = ",".join(f"{n.node_id}@{n.host}:{n.controller_port}" for n in nodes if n.is_controller)
        self.controller_addrs = ",".join(f"{n.host}:{n.controller_port}" for n in nodes if n.is_controller)

    def __getitem__(self, node_id):
        return self.nodes[node_id]

    def add_node(self, roles, props=None, start=True):
        """One more node (id one above the highest) with `roles` and its own keys; a
        controller not among the static voters joins as an observer through the bootstrap
        servers (set `controller.quorum.bootstrap.servers` in `props`)."""
        node_id = max(self.nodes) + 1
        port, controller_port = free_ports(2)
        node = Node(self, node_id, port, controller_port, roles, props)
        self.nodes[node_id] = node
        if start:
            # Its first start: nothing of the test's is in its directories yet and no other
            # node names its ports, so a taken port is picked afresh (module doc).
            def once():
                node._spawn()
                node.wait_serving()

            def before_retry(attempt):
                node._abandon()
                node.port, node.controller_port = free_ports(2)
                for d in node.log_dirs:
                    empty_dir(d)

            start_retrying(once, before_retry)
        return node

    def brokers(self):
        return [n for n in self.nodes.values() if n.is_broker]

    @property
    def bootstrap(self):
        return ",".join(n.bootstrap for n in self.brokers())

    def live(self):
        """Running, unpaused brokers (the nodes clients and Metadata reads reach)."""
        return [n for n in self.brokers() if n.alive and not n.paused]

    def start(self, timeout_s=START_TIMEOUT_S):
        """Formats (when the cluster formats) and starts every node, and waits until every
        broker serves and is ready. A node that exits because a port was taken: the whole
        cluster again on fresh ports and empty directories (module doc)."""

        def before_retry(attempt):
            for n in self.nodes.values():
                n._abandon()
            self.pick_ports()
            for n in self.nodes.values():
                for d in n.log_dirs:
                    empty_dir(d)

        start_retrying(lambda: self._start_once(timeout_s), before_retry)

    def _start_once(self, timeout_s):
        if self.dynamic:
            for n in self.nodes.values():
                first = n.node_id == min(self.nodes)
                n.format(*(() if not n.is_controller else ("--standalone",) if first else ("--no-initial-controllers",)),
                         *self.format_flags)
        elif self.format_flags:
            for n in self.nodes.values():
                n.format(*self.format_flags)
        # All at once: a node waits for a quorum before its broker registers.
        for n in self.nodes.values():
            n.start(wait=False)
        every = list(self.nodes.values())
        for n in every:
            n.wait_serving(timeout_s, watch=every)
        self.wait_ready(timeout_s=timeout_s)

    def teardown(self, keep=False):
        """Every node stopped (resumed first if paused, SIGKILL if SIGTERM does not do it);
        data dirs removed unless `keep`. Returns the directory holding the logs."""
        for n in self.nodes.values():
            n.resume()
        # SIGTERM to all at once (one by one, the last ones wait for a quorum that is gone).
        for n in self.nodes.values():
            n.expected = False
            if n.alive:
                n._note("SIGTERM (teardown)")
                n.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for n in self.nodes.values():
            if n.proc is None:
                continue
            try:
                n.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                n._note("still running after SIGTERM (teardown): SIGKILL")
                n.proc.kill()
                n.proc.wait(timeout=STOP_TIMEOUT_S)
            n._close_log()
        if not keep:
            for n in self.nodes.values():
                for d in n.log_dirs:
                    shutil.rmtree(d, ignore_errors=True)
        return self.dir

    def crashed(self):
        """[(node_id, exit code)] of every time a node exited without the harness stopping it."""
        for n in self.nodes.values():
            n._check_crash()
        return list(self.crashes)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def dump_logs(self, lines=60):
        """Each node's last lines, without openraft's (repetitive connection) lines; the
        whole logs stay in their files."""
        out = []
        for n in self.nodes.values():
            state = "running" if n.alive else f"exited {n.proc.returncode if n.proc else '-'}"
            try:
                text = ANSI.sub("", n.log_path.read_text(errors="replace"))
            except OSError:
                text = "(no log)"
            kept = [line for line in text.splitlines() if "openraft::" not in line][-lines:]
            out.append(f"----- {n} ({state}; {n.log_path}); last {lines} lines, openraft's left out -----")
            out.extend(kept)
        return "\n".join(out)

    # --- reading the cluster through Metadata ---

    def metadata(self, topics=None, via=None, timeout_s=5.0):
        """Metadata from node `via`, or from the first live node that answers."""
        nodes = [self.nodes[via]] if via is not None else self.live()
        last = None
        for n in nodes:
            try:
                return n.metadata(topics, timeout_s)
            except (OSError, ValueError) as e:
                last = e
        raise ConnectionError(f"no node answered Metadata ({last})")

    def wait(self, what, probe, timeout_s=60, interval_s=0.2):
        """Polls probe() until it returns a true value, which is returned. The probe raises
        NotYet(state) while the condition does not hold; any other exception (a node not
        answering, a client error) also counts as not yet, and is reported if it is the last.
        After timeout_s this fails with WaitTimeout naming `what` and the last state."""
        deadline = time.monotonic() + timeout_s
        last = None
        while True:
            try:
                value = probe()
                if value:
                    return value
                last = value
            except NotYet as e:
                last = e.args[0] if e.args else None
            except Exception as e:  # noqa: BLE001 -- reported below if it persists
                last = repr(e)
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"timed out after {timeout_s}s waiting for {what}; last: {last}")
            time.sleep(interval_s)

    def coordinator_views(self, group):
        """What each live node answers to FindCoordinator(group), and who leads each
        __consumer_offsets partition: for failure messages of group tests."""
        views = {}
        for n in self.live():
            try:
                error, node = find_coordinator(n.host, n.port, group, timeout_s=3)
                views[n.node_id] = f"error {error}" if error else node
            except (OSError, ValueError) as e:
                views[n.node_id] = repr(e)
        try:
            offsets = {p: (i["leader"], i["isr"]) for p, i in sorted(self.partitions("__consumer_offsets").items())}
        except (OSError, ValueError, KeyError) as e:
            offsets = repr(e)
        return f"FindCoordinator({group}) answered by node: {views}; __consumer_offsets (leader, ISR): {offsets}"

    def wait_ready(self, nodes=None, timeout_s=60):
        """Every live node lists every node in `nodes` (default: all live nodes) as a broker
        in its Metadata: each registered and unfenced as that node's image sees it."""
        want = set(nodes if nodes is not None else (n.node_id for n in self.live()))

        def probe():
            views = {n.node_id: sorted(n.metadata([], timeout_s=3)["brokers"]) for n in self.live()}
            if not all(want <= set(v) for v in views.values()):
                raise NotYet(f"brokers listed by each node: {views}")
            return views

        return self.wait(f"brokers {sorted(want)} registered and unfenced on every live node", probe, timeout_s)

    def partitions(self, topic, via=None):
        """{partition: {"leader", "epoch", "replicas", "isr", ...}} from Metadata."""
        md = self.metadata([topic], via=via)
        t = md["topics"].get(topic)
        if t is None or t["error"] != 0:
            raise KeyError(f"topic {topic}: {t}")
        return t["partitions"]

    def leader(self, topic, partition, timeout_s=60, not_in=()):
        """The partition's leader per Metadata once it is a live node not in `not_in`."""
        live = {n.node_id for n in self.live()}

        def probe():
            p = self.partitions(topic)[partition]
            if p["leader"] not in live or p["leader"] in not_in:
                raise NotYet(f"leader {p['leader']}, epoch {p['epoch']}, ISR {p['isr']}")
            return p["leader"]

        return self.wait(f"a live leader of {topic}-{partition} outside {sorted(not_in)}", probe, timeout_s)

    def wait_isr(self, topic, size=None, timeout_s=60, partitions=None, everywhere=True):
        """Until every partition (or those listed) has an ISR of `size` (default: all its
        replicas) and a live leader, on every live node's Metadata (`everywhere`) or any one."""
        live = {n.node_id for n in self.live()}

        def probe():
            views = {}
            for n in (self.live() if everywhere else self.live()[:1]):
                parts = self.partitions(topic, via=n.node_id)
                for p, info in parts.items():
                    if partitions is not None and p not in partitions:
                        continue
                    want = size if size is not None else len(info["replicas"])
                    if len(info["isr"]) < want or info["leader"] not in live:
                        raise NotYet(f"node {n.node_id} says partition {p}: leader {info['leader']}, "
                                     f"replicas {info['replicas']}, ISR {info['isr']}")
                views[n.node_id] = parts
            return views

        return self.wait(f"{topic}: ISR of {size or 'every replica'} everywhere", probe, timeout_s)
