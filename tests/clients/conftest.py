"""Fixtures for the real-client tests: the real `strom` binary on 127.0.0.1, the helper
programs (Java, kafkajs, kcat), and xfail marks for APIs the broker does not advertise yet.

A test marked `@pytest.mark.needs_api("X", ...)` runs as usual when the broker advertises
every named API; when it does not, the test still runs but is expected to fail (xfail,
strict=False), with the missing API names as the reason, so the suite shows what is missing
without failing CI, and a broker that starts advertising an API makes its tests count.
"""

import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from kafka_wire import api_versions, missing_apis  # noqa: E402
# free_port is imported from here by the test files.
from ports import empty_dir, free_port, free_ports, restart_backoff, start_retrying  # noqa: E402,F401

# APIs whose issue has not landed yet. Tests that need them run as non-strict xfails until the
# broker advertises them. The classic group APIs (issue 5) are served now, so none is listed.
NOT_YET_SERVED = frozenset()

# API names the group tests (test_groups*.py) put in needs_api marks. They are all served
# now, so a broker that stops advertising one fails those tests.
import kafka_wire  # noqa: E402

kafka_wire.API_KEYS.update(
    {"DeleteGroups": 42, "OffsetDelete": 47, "ConsumerGroupHeartbeat": 68, "ConsumerGroupDescribe": 69}
)

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TOOLS = ROOT / ".tools"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15
TOOL_TIMEOUT_S = 120

# How the broker is started; {port}, {controller_port} and {data_dir} are filled in.
DEFAULT_SERVER_ARGS = (
    "server"
    " --override node.id=1"
    " --override listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"
    " --override log.dirs={data_dir}"
)


_results = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the item (item.rep_setup, rep_call), so a fixture can
    tell in its teardown whether the test failed (the cluster fixture dumps node logs then)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def pytest_collection_modifyitems(config, items):
    """Multi-node tests (marker `cluster`) run only with STROM_CLUSTER_TESTS=1, and their
    long soak variants (marker `soak`) only with STROM_CLUSTER_SOAK=1 as well; the rest are
    deselected (tests/clients/README.md, "Cluster tests")."""
    run_cluster = os.environ.get("STROM_CLUSTER_TESTS") == "1"
    run_soak = run_cluster and os.environ.get("STROM_CLUSTER_SOAK") == "1"
    keep, drop = [], []
    for item in items:
        if item.get_closest_marker("cluster") and not run_cluster:
            drop.append(item)
        elif item.get_closest_marker("soak") and not run_soak:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_runtest_logreport(report):
    """Collects each test's outcome and first error line for STROM_CLIENT_RESULTS."""
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = report.outcome
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.outcome in ("skipped", "failed") else "XPASS"
        elif report.when == "setup":
            outcome = "error"
        first_error = ""
        crash = getattr(report.longrepr, "reprcrash", None)
        if crash is not None:
            first_error = crash.message.strip().splitlines()[0][:300]
        elif outcome not in ("passed", "XPASS") and report.longrepr is not None:
            first_error = str(report.longrepr).strip().splitlines()[-1][:300]
        _results.append((report.nodeid, outcome, getattr(report, "wasxfail", ""), first_error))


def pytest_sessionfinish(session, exitstatus):
    """Writes a Markdown table of the run to $STROM_CLIENT_RESULTS, when set."""
    path = os.environ.get("STROM_CLIENT_RESULTS")
    if not path or not _results:
        return
    counts = {}
    for _, outcome, _, _ in _results:
        counts[outcome] = counts.get(outcome, 0) + 1
    lines = [
        "# Real-client test results",
        "",
        f"Run at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} against `{strom_binary()}`"
        f" ({os.environ.get('STROM_SERVER_ARGS', 'default server args')}).",
        "",
        "Totals: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())),
        "",
        "| test | outcome | first error / xfail reason |",
        "|---|---|---|",
    ]
    order = {"failed": 0, "error": 1, "XPASS": 2, "xfailed": 3, "passed": 4}
    for nodeid, outcome, reason, error in sorted(_results, key=lambda r: (order.get(r[1], 9), r[0])):
        detail = error if outcome in ("failed", "error") else reason
        if outcome == "xfailed" and error:
            detail = f"{reason}; first error: {error}"
        detail = detail.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{nodeid}` | {outcome} | {detail} |")
    pathlib.Path(path).write_text("\n".join(lines) + "\n")


# Extra arguments may name ports as `{port}`, `{controller_port}` or `{NAME_port}`: the Broker
# picks each (Broker.pick_ports) and fills it in when it starts the process.
PORT_PLACEHOLDER = re.compile(r"\{(port|[a-z][a-z0-9_]*_port)\}")


class Broker:
    """One `strom server` process with its own data dir and ports.

    Ports are picked free (ports.py: below the kernel's ephemeral range): `port` (PLAINTEXT),
    `controller_port`, and every `{NAME_port}` placeholder in the extra arguments, which
    becomes attribute `NAME_port` (e.g. `strom.http.listeners=http://127.0.0.1:{http_port}`,
    then `b.http_port`); a subclass that adds arguments with placeholders after
    `Broker.__init__` calls `pick_ports()` again. `expand(text)` fills them in. A
    `{NAME_port}` must be a port the broker listens on on 127.0.0.1: `start` waits until
    each accepts connections.

    A port picked free can still be taken before the broker binds it; `start` then starts
    again (see there), so a test never sees "Address already in use" for a port it did not
    take on purpose."""

    def __init__(self, binary: pathlib.Path, extra_args=()):
        self.binary = binary
        self.extra_args = list(extra_args)
        self.data_dir = pathlib.Path(tempfile.mkdtemp(prefix="strom-clients-"))
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.proc = None
        self.log = None
        self.apis = {}
        # Processes started (by start); 0 until the first.
        self.starts = 0
        self.pick_ports()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pick_ports(self):
        """Picks every port afresh: `port`, `controller_port` and each `{NAME_port}` of the
        extra arguments, set as attributes of those names."""
        named = sorted({n for a in self.extra_args for n in PORT_PLACEHOLDER.findall(a)} - {"port", "controller_port"})
        self.port_names = ["port", "controller_port"] + named
        for name, port in zip(self.port_names, free_ports(len(self.port_names))):
            setattr(self, name, port)

    def expand(self, text: str) -> str:
        """`text` with its port placeholders filled in (unknown ones left as they are)."""
        return PORT_PLACEHOLDER.sub(
            lambda m: str(getattr(self, m.group(1))) if m.group(1) in self.port_names else m.group(0), text
        )

    def start(self):
        """Starts the process and waits until it answers ApiVersions on `port` and each
        `{NAME_port}` accepts connections.

        If it exits because a port was taken ("Address already in use"; ports.py), it is
        started again, at most 3 starts in all, then the failure is raised with that start's
        output:
        - on the first start, with every port picked afresh (pick_ports), and with the data
          dir emptied if it was empty before (the failed start may have written to it; the
          test had put nothing there). A data dir the test prepared (formatted, mounted) is
          kept as it is.
        - on a restart, with the same ports (the test's clients and data know them) after a
          short backoff (ports.restart_backoff).
        """
        first = self.starts == 0
        prepared = first and any(self.data_dir.iterdir())

        def before_retry(attempt):
            if not first:
                restart_backoff(attempt)
                return
            self.pick_ports()
            if not prepared:
                empty_dir(self.data_dir)

        start_retrying(self._start_once, before_retry)

    def _start_once(self):
        template = os.environ.get("STROM_SERVER_ARGS", DEFAULT_SERVER_ARGS)
        args = shlex.split(
            template.format(port=self.port, controller_port=self.controller_port, data_dir=self.data_dir / "data")
        )
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn,strom=info,strom_broker=info")
        if self.log is not None:
            self.log.close()
        self.log = open(self.log_path, "ab")
        # Where this start's output begins: a failure shows (and is judged by) its own output.
        output_from = self.log.tell()
        self.starts += 1
        self.proc = subprocess.Popen(
            [str(self.binary)] + args + [self.expand(a) for a in self.extra_args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        last_error = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"strom exited with {self.proc.returncode} before it was ready:\n{self.log_tail(since=output_from)}"
                )
            try:
                self.apis = api_versions("127.0.0.1", self.port, timeout_s=2.0)
                # Every other listener too (HTTP, the in-process registry, ... bind after
                # the Kafka listener serves): a port taken there fails this start as well.
                for name in self.port_names[2:]:
                    socket.create_connection(("127.0.0.1", getattr(self, name)), timeout=2.0).close()
                return
            except (OSError, ValueError) as e:
                last_error = e
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"strom not ready on {self.bootstrap} in {START_TIMEOUT_S}s ({last_error}):\n"
            f"{self.log_tail(since=output_from)}"
        )

    def partition_log_bytes(self, topic: str, partition: int) -> int:
        """Bytes in a partition's segment files (Kafka's layout: <log.dirs>/<topic>-<partition>)."""
        return sum(f.stat().st_size for f in (self.data_dir / "data" / f"{topic}-{partition}").glob("*.log"))

    def log_tail(self, lines=40, since=0) -> str:
        """The log's last `lines` lines, of what was written from byte `since` on."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        if getattr(self, "log", None):
            self.log.close()

    def kill(self):
        """SIGKILL, as a crash: no clean shutdown, no flush."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        if getattr(self, "log", None):
            self.log.close()

    def cleanup(self):
        shutil.rmtree(self.data_dir, ignore_errors=True)


def strom_binary() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("STROM_BIN", ROOT / "target" / "debug" / "strom"))
    return path if path.is_absolute() else ROOT / path


@pytest.fixture(scope="session")
def broker():
    binary = strom_binary()
    if not binary.is_file():
        pytest.fail(f"no strom binary at {binary}: build it (cargo build -p strom) or set STROM_BIN")
    b = Broker(binary)
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


@pytest.fixture
def make_broker():
    """Brokers of the test's own (restart and crash tests); each is stopped and removed after."""
    made = []

    def make(extra_args=()):
        b = Broker(strom_binary(), extra_args)
        made.append(b)
        b.start()
        return b

    yield make
    for b in made:
        b.stop()
        if not os.environ.get("STROM_KEEP_LOG"):
            b.cleanup()
            b.log_path.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _needs_api(request):
    marker = request.node.get_closest_marker("needs_api")
    if marker is None:
        return
    b = request.getfixturevalue("broker")
    missing = missing_apis(b.apis, marker.args)
    # Only APIs that no issue has delivered yet may be missing; any other missing API is a
    # regression and fails, so a broker that stops advertising an API cannot hide as xfail.
    regressed = [api for api in missing if api not in NOT_YET_SERVED]
    if regressed:
        pytest.fail(f"broker no longer advertises {', '.join(regressed)}")
    if missing:
        request.node.add_marker(
            pytest.mark.xfail(reason=f"broker does not serve {', '.join(missing)} yet", strict=False)
        )


@pytest.fixture(autouse=True)
def _broker_survives(request):
    """A test after which the broker process is gone fails, with the broker's last log lines."""
    yield
    if "broker" in request.fixturenames:
        b = request.getfixturevalue("broker")
        if b.proc is not None and b.proc.poll() is not None:
            pytest.fail(f"strom exited with {b.proc.returncode} during this test:\n{b.log_tail()}")


@pytest.fixture
def topic_name(request):
    """A fresh topic name per test (Kafka's legal characters only)."""
    base = "".join(c if c.isalnum() or c in "-_" else "-" for c in request.node.name)[:150]
    return f"{base}-{uuid.uuid4().hex[:8]}"


def key_error(stderr: str) -> str:
    """The line of a helper's stderr that names the failure (exception, or kafkajs' cause)."""
    lines = [l.strip() for l in stderr.splitlines()]
    for marker in ("Caused by:", "Exception in thread", "error:"):
        found = [l for l in lines if l.startswith(marker)]
        if found:
            return found[-1][:400] if marker == "Caused by:" else found[0][:400]
    return lines[-1][:400] if lines else "(no stderr)"


def run_tool(cmd, what, timeout_s=TOOL_TIMEOUT_S, stdin=None):
    """Runs a helper program; returns its stdout parsed as JSON, or fails with its stderr."""
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{what} timed out after {timeout_s}s; stderr tail:\n{(e.stderr or b'')[-3000:].decode(errors='replace')}")
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace")
        pytest.fail(f"{what} exited {proc.returncode}: {key_error(stderr)}\nstderr tail:\n{stderr[-3000:]}")
    try:
        return json.loads(proc.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        pytest.fail(f"{what} printed no JSON; stdout: {proc.stdout[-2000:]!r}; stderr: {proc.stderr[-2000:]!r}")


@pytest.fixture(scope="session")
def java_tool():
    classes, libs = TOOLS / "java-classes", TOOLS / "java-libs"
    if not (classes / "StromClientTool.class").is_file():
        pytest.fail("Java helper not compiled: run scripts/setup-clients")
    java = shutil.which("java") or "java"
    cp = f"{classes}{os.pathsep}{libs}/*"

    def run(args, timeout_s=TOOL_TIMEOUT_S):
        return run_tool([java, "-cp", cp, "StromClientTool"] + [str(a) for a in args], "java " + " ".join(map(str, args[:2])), timeout_s)

    return run


@pytest.fixture(scope="session")
def js_tool():
    script = HERE / "js" / "client.js"
    if not (HERE / "node_modules" / "kafkajs").is_dir():
        pytest.fail("kafkajs not installed: run scripts/setup-clients")
    node = shutil.which("node") or "node"

    def run(request: dict, timeout_s=TOOL_TIMEOUT_S):
        return run_tool([node, str(script)], "kafkajs " + request.get("op", "?"), timeout_s, stdin=json.dumps(request).encode())

    return run


@pytest.fixture(scope="session")
def kcat():
    path = shutil.which("kcat")
    if path is None:
        pytest.fail("kcat not installed: run scripts/setup-clients")
    return path
