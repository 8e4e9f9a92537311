"""Connections that go away, and the broker-wide budget for request bytes in flight.

Each test starts its own broker with small limits and drives it with raw sockets (the
hostile or idle side) and confluent-kafka (the real client that must keep working):

- `connections.max.idle.ms`: idle connections are closed; one in a long poll Fetch, or one
  with produce responses owed, is not, and a close never drops a response owed.
- `strom.request.receive.timeout.ms`: 1,000 slowloris connections (a size prefix, then
  nothing or a byte a second) are closed within the bound while a producer and a consumer
  work promptly beside them.
- `max.connections`: idle sockets filling it do not lock a new client out (the one idle
  longest makes room); when every connection is busy a new one is closed at once.
- `max.connections.per.ip` and its overrides: the connection over an address's limit is
  closed at once; other addresses (127.0.0.2..4: all of 127/8 is loopback on Linux) have
  their own limits; an override that does not resolve stops start-up naming the key.
- `queued.max.request.bytes`: 48 connections sending 4 MiB produce requests at once keep
  the broker's peak RSS (VmHWM) within a bound derived from the 12 MiB budget (the 192 MiB
  they carry would otherwise be read at once), and every request is answered.
- The warning for each limit is rate-limited: one line per limit per 10 s, with counts.

Socket counts are what the limits need, kept small enough for a loaded 2-core machine with
the default descriptor limit: 1,000 slowloris sockets as the probe that found the problem
used; `max.connections=300` filled by 400 idle sockets stands for the probe's 10,126, the
mechanism (admission at the limit) being the same whatever the number.
"""

import logging
import re
import resource
import selectors
import socket
import struct
import subprocess
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import free_port, strom_binary

def raise_open_files(wanted: int) -> int:
    """Raises this process's descriptor limit (which the brokers it starts inherit) towards
    `wanted`, within the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# Before any broker of this module starts: 1,000 slowloris sockets need 1,000 descriptors
# on each side, more than the common default soft limit of 1024 leaves.
OPEN_FILES = raise_open_files(4096)
CLIENT_DEADLINE_S = 30.0
CLOSE_WAIT_S = 20.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# --- wire helpers -------------------------------------------------------------------------


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def header(api_key: int, version: int, correlation_id: int) -> bytes:
    client_id = b"strom-connections"
    return struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id


def api_versions_request(correlation_id: int) -> bytes:
    return frame(header(18, 0, correlation_id))


def fetch_request(topic: str, max_wait_ms: int, correlation_id: int) -> bytes:
    """Fetch v4 of partition 0 from offset 0, min_bytes 1: a long poll on an empty topic."""
    name = topic.encode()
    body = (
        header(1, 4, correlation_id)
        + struct.pack(">iiiib", -1, max_wait_ms, 1, 1 << 20, 0)
        + struct.pack(">ih", 1, len(name)) + name
        + struct.pack(">iiqi", 1, 0, 0, 1 << 20)
    )
    return frame(body)


def varint(n: int) -> bytes:
    zigzag = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        byte = zigzag & 0x7F
        zigzag >>= 7
        if zigzag:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def record_batch(value: bytes) -> bytes:
    """One uncompressed RecordBatch v2 holding one record, with a correct CRC-32C."""
    import crc32c

    record = b"\x00" + varint(0) + varint(0) + varint(-1) + varint(len(value)) + value + varint(0)
    records = varint(len(record)) + record
    now_ms = int(time.time() * 1000)
    after_crc = struct.pack(">hiqqqhii", 0, 0, now_ms, now_ms, -1, -1, -1, 1) + records
    after_length = struct.pack(">ibI", -1, 2, crc32c.crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def produce_request(topic: str, batch: bytes, correlation_id: int, acks: int) -> bytes:
    """Produce v3 of one batch to partition 0."""
    name = topic.encode()
    body = (
        header(0, 3, correlation_id)
        + struct.pack(">hhi", -1, acks, 30_000)
        + struct.pack(">ih", 1, len(name)) + name
        + struct.pack(">iii", 1, 0, len(batch)) + batch
    )
    return frame(body)


def produce_error(response: bytes) -> int:
    """The partition error code of a Produce v3 response to `produce_request`."""
    (topics, name_len) = struct.unpack(">ih", response[4:10])
    at = 10 + name_len
    (partitions, _index, error_code) = struct.unpack(">iih", response[at : at + 10])
    assert topics == 1 and partitions == 1
    return error_code


def read_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed by the broker")
        buf += chunk
    return buf


def read_response(sock: socket.socket, correlation_id: int) -> bytes:
    (size,) = struct.unpack(">i", read_exact(sock, 4))
    assert 4 <= size < 1 << 24
    body = read_exact(sock, size)
    assert struct.unpack(">i", body[:4])[0] == correlation_id
    return body


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(CLOSE_WAIT_S)
    sock.connect(("127.0.0.1", port))
    return sock


def served(sock: socket.socket, correlation_id: int = 1) -> bool:
    """Whether the broker answers an ApiVersions request on `sock`."""
    try:
        sock.sendall(api_versions_request(correlation_id))
        read_response(sock, correlation_id)
        return True
    except (ConnectionError, OSError):
        return False


def seconds_until_closed(sock: socket.socket, timeout_s: float = CLOSE_WAIT_S):
    """Seconds until the broker closes `sock` (EOF or reset, anything unread skipped), or None."""
    start = time.monotonic()
    deadline = start + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - start
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
        except socket.timeout:
            return None


def wait_all_closed(socks, timeout_s: float):
    """Waits (boundedly) until the broker has closed every socket; returns the open ones."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    open_socks = set(socks)
    deadline = time.monotonic() + timeout_s
    while open_socks and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data == b"":
                sel.unregister(s)
                open_socks.discard(s)
    sel.close()
    return open_socks


def closed_among(socks, want: int, timeout_s: float) -> set:
    """The sockets the broker has closed, once at least `want` are (or the time is up)."""
    closed = set()
    deadline = time.monotonic() + timeout_s
    while len(closed) < want and time.monotonic() < deadline:
        closed |= {s for s in socks if s not in closed and not is_open(s)}
        time.sleep(0.2)
    return closed


def is_open(sock: socket.socket) -> bool:
    """True when the broker has not closed `sock` (nothing to read, no EOF), checked at once."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


# --- broker helpers -----------------------------------------------------------------------


def overrides(**pairs) -> list:
    args = []
    for key, value in pairs.items():
        args += ["--override", f"{key.replace('_', '.')}={value}"]
    return args


def create_topic(broker, topic: str):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(timeout=CLIENT_DEADLINE_S)


def produce_and_consume(broker, topic: str, value: bytes) -> float:
    """A real client round trip; returns its seconds. Fails if it does not complete in time."""
    start = time.monotonic()
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0,
                         "message.timeout.ms": int(CLIENT_DEADLINE_S * 1000)})
    delivered = []
    producer.produce(topic, value, partition=0, on_delivery=lambda err, msg: delivered.append(err))
    assert producer.flush(CLIENT_DEADLINE_S) == 0
    assert delivered == [None], delivered
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + CLIENT_DEADLINE_S
    while value not in got and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            got.append(msg.value())
    consumer.close()
    assert value in got
    return time.monotonic() - start


def log_text(broker) -> str:
    broker.log.flush()
    return ANSI.sub("", broker.log_path.read_text(errors="replace"))


def warning_counts(broker, message: str) -> list:
    """The `connections=N` counts of the log lines carrying `message`, in order."""
    counts = []
    for line in log_text(broker).splitlines():
        if message in line:
            found = re.search(r"connections=(\d+)", line)
            assert found, line
            counts.append(int(found.group(1)))
    return counts


def wait_for_warned_total(broker, message: str, total: int, timeout_s: float = 25.0) -> list:
    """Waits (boundedly: the summary comes within the 10 s interval) until the warning
    lines for `message` account for `total` bites; returns their counts."""
    deadline = time.monotonic() + timeout_s
    counts = warning_counts(broker, message)
    while sum(counts) < total and time.monotonic() < deadline:
        time.sleep(0.5)
        counts = warning_counts(broker, message)
    return counts


def vm_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


RECEIVE_TIMEOUT = "strom.request.receive.timeout.ms passed before a request had arrived"
IDLE = "connections.max.idle.ms passed with no activity"
EVICTED = "max.connections reached: the connections idle longest were closed"
REFUSED = "max.connections reached and no connection idle"
PER_IP = "max.connections.per.ip reached"
BUDGET = "queued.max.request.bytes in use"


# --- tests --------------------------------------------------------------------------------


def test_idle_connections_close_but_not_in_a_long_poll_or_with_responses_owed(make_broker):
    idle_ms = 1500
    broker = make_broker(overrides(connections_max_idle_ms=idle_ms,
                                   strom_log_durability="sync-on-commit"))
    create_topic(broker, "empty")
    create_topic(broker, "piped")

    # A connection that never sends, and one that goes quiet after a request.
    silent = connect(broker.port)
    answered = connect(broker.port)
    assert served(answered)
    quiet_since = time.monotonic()
    for sock in (silent, answered):
        assert seconds_until_closed(sock) is not None, "an idle connection was not closed"
        closed_after = time.monotonic() - quiet_since
        assert closed_after >= idle_ms / 1000 * 0.9, closed_after

    # A long poll longer than the idle limit is answered, then the idle clock starts.
    polling = connect(broker.port)
    started = time.monotonic()
    polling.sendall(fetch_request("empty", 4000, 7))
    read_response(polling, 7)
    assert time.monotonic() - started >= 3.0, "the long poll ended early"
    assert seconds_until_closed(polling) is not None

    # Pipelined produces with sync-on-commit: all responses owed are delivered before an
    # idle close, even when the client reads them only after the idle limit.
    piped = connect(broker.port)
    batch = record_batch(b"piped")
    piped.sendall(b"".join(produce_request("piped", batch, 100 + i, -1) for i in range(50)))
    time.sleep(idle_ms / 1000 * 2)
    for i in range(50):
        assert produce_error(read_response(piped, 100 + i)) == 0
    assert seconds_until_closed(piped) is not None

    # A real producer pipelining acks=all requests for several idle limits never loses its
    # connection while it has requests in flight; once it stops, the idle close comes.
    disconnects = DisconnectLog()
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0},
                        logger=disconnects)
    errors = []
    sent = 0
    deadline = time.monotonic() + idle_ms / 1000 * 3
    while time.monotonic() < deadline:
        producer.produce("piped", b"live-%d" % sent, partition=0,
                         on_delivery=lambda err, msg: err and errors.append(err))
        sent += 1
        producer.poll(0.005)
    assert producer.flush(CLIENT_DEADLINE_S) == 0
    assert errors == [] and sent > 0
    assert disconnects.lines == [], disconnects.lines
    wait_until = time.monotonic() + idle_ms / 1000 + 10
    while not disconnects.lines and time.monotonic() < wait_until:
        producer.poll(0.2)
    assert disconnects.lines, "the idle producer connection was never closed"


class DisconnectLog(logging.Logger):
    """Collects librdkafka's "Disconnected" log lines for broker 1 (confluent-kafka's
    `logger`); its bootstrap connection, idle once metadata is known, is left out."""

    def __init__(self):
        super().__init__("librdkafka-disconnects")
        self.lines = []

    def handle(self, record):
        message = record.getMessage()
        if "/1: Disconnected" in message:
            self.lines.append(message)


def test_slowloris_connections_close_while_real_clients_carry_on(make_broker):
    receive_ms = 3000
    broker = make_broker(overrides(strom_request_receive_timeout_ms=receive_ms))
    create_topic(broker, "beside")
    # 1,000 as the probe used, unless the hard descriptor limit forbids (it is per process:
    # this one and the broker each hold one descriptor per connection, plus their own).
    count = min(1000, OPEN_FILES - 200)
    assert count >= 500, f"descriptor limit {OPEN_FILES} too low for this test"
    started = time.monotonic()
    socks = []
    for i in range(count):
        s = connect(broker.port)
        # Announce a 1,000-byte frame; half stop there, half trickle a byte a second.
        s.sendall(struct.pack(">i", 1000))
        socks.append(s)
    opened_s = time.monotonic() - started
    trickling = socks[count // 2 :]
    stop = threading.Event()

    def trickle():
        while not stop.wait(1.0):
            for s in trickling:
                try:
                    s.send(b"x", socket.MSG_DONTWAIT)
                except OSError:
                    pass

    trickler = threading.Thread(target=trickle)
    trickler.start()
    try:
        round_trip_s = produce_and_consume(broker, "beside", b"next to 1000 slowloris")
        assert round_trip_s < 15, f"the real client took {round_trip_s:.1f} s"
        still_open = wait_all_closed(socks, receive_ms / 1000 + opened_s + 15)
    finally:
        stop.set()
        trickler.join(timeout=10)
    elapsed = time.monotonic() - started
    assert not still_open, f"{len(still_open)} slowloris connections still open after {elapsed:.1f} s"
    for s in socks:
        s.close()
    counts = wait_for_warned_total(broker, RECEIVE_TIMEOUT, count)
    assert sum(counts) == count, counts
    # Rate-limited: the first at once, then one summary per 10 s.
    assert 1 <= len(counts) <= 2 + int(elapsed // 10), counts
    assert broker.proc.poll() is None


def test_idle_sockets_filling_max_connections_do_not_lock_out_a_new_client(make_broker):
    broker = make_broker(overrides(max_connections=300))
    create_topic(broker, "admitted")
    idle = []
    for _ in range(400):
        idle.append(connect(broker.port))
        time.sleep(0.001)  # distinct arrival times, so "idle longest" is well defined
    # Each connection past 300 closed the one idle longest: (about) the first hundred, the
    # admin client's connection from create_topic possibly among them.
    closed = closed_among(idle, 99, 20)
    assert len(closed) >= 99, f"only {len(closed)} idle connections made room"
    assert closed <= set(idle[:150]), "a connection other than the idlest was closed"
    assert all(is_open(s) for s in idle[-150:])
    round_trip_s = produce_and_consume(broker, "admitted", b"admitted past idle sockets")
    assert round_trip_s < 15, f"the new client took {round_trip_s:.1f} s"
    for s in idle:
        s.close()
    counts = wait_for_warned_total(broker, EVICTED, 100)
    assert sum(counts) >= 100 and len(counts) <= 3, counts


def test_at_max_connections_with_every_connection_busy_a_new_one_is_closed_at_once(make_broker):
    broker = make_broker(overrides(max_connections=3))
    create_topic(broker, "busy")
    polls = [connect(broker.port) for _ in range(3)]
    for i, s in enumerate(polls):
        s.sendall(fetch_request("busy", 6000, 10 + i))
    time.sleep(0.5)
    refused = connect(broker.port)
    closed_after = seconds_until_closed(refused, 5)
    assert closed_after is not None and closed_after < 3, closed_after
    for i, s in enumerate(polls):
        read_response(s, 10 + i)
    # Idle now: a new connection makes room and is served.
    admitted = connect(broker.port)
    assert served(admitted)
    assert warning_counts(broker, REFUSED)


def admit(port: int, address: str, count: int) -> list:
    """`count` served connections from `address`. Retried (boundedly) while the broker has
    yet to notice that an earlier connection from there closed (the readiness probe's)."""
    deadline = time.monotonic() + 10
    while True:
        socks = [connect(port, address) for _ in range(count)]
        if all(served(s) for s in socks):
            return socks
        for s in socks:
            s.close()
        assert time.monotonic() < deadline, f"{address}: {count} connections not admitted"
        time.sleep(0.2)


def test_per_address_limits_and_overrides(make_broker):
    broker = make_broker(overrides(max_connections_per_ip=5,
                                   max_connections_per_ip_overrides="127.0.0.3:2 , 127.0.0.4:8"))
    for address, limit in (("127.0.0.1", 5), ("127.0.0.2", 5), ("127.0.0.3", 2), ("127.0.0.4", 8)):
        admitted = admit(broker.port, address, limit)
        over = connect(broker.port, address)
        closed_after = seconds_until_closed(over, 5)
        assert closed_after is not None and closed_after < 3, (address, closed_after)
        # A place freed is a place for the next connection from that address.
        admitted.pop().close()
        deadline = time.monotonic() + 10
        while True:
            again = connect(broker.port, address)
            if served(again):
                break
            assert time.monotonic() < deadline, f"{address}: a freed place was not reused"
            time.sleep(0.1)
        assert all(is_open(s) for s in admitted)
        for s in admitted + [again]:
            s.close()
    counts = warning_counts(broker, PER_IP)
    assert 1 <= len(counts) <= 2, counts


def test_invalid_or_unresolvable_per_address_overrides_stop_start_up(tmp_path):
    for i, value in enumerate(("no-such-host.invalid:3", "host", "bad host:1", "127.0.0.1:many")):
        port, controller_port = free_port(), free_port()
        out = subprocess.run(
            [str(strom_binary()), "server",
             "--override", "node.id=1",
             "--override", f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
             "--override", f"log.dirs={tmp_path / str(i)}",
             "--override", f"max.connections.per.ip.overrides={value}"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode != 0, value
        assert "max.connections.per.ip.overrides" in out.stdout + out.stderr, (value, out.stderr[-2000:])


def test_request_bytes_budget_bounds_broker_memory(make_broker):
    frame_max = 5 << 20
    budget = 12 << 20
    broker = make_broker(overrides(socket_request_max_bytes=frame_max, queued_max_request_bytes=budget,
                                   message_max_bytes=frame_max))
    create_topic(broker, "large")
    batch = record_batch(b"v" * (4 << 20))
    pid = broker.proc.pid
    # Warm up: one large request through the whole path before the baseline is taken.
    with connect(broker.port) as s:
        s.sendall(produce_request("large", batch, 1, 1))
        assert produce_error(read_response(s, 1)) == 0
    baseline_kib = vm_kib(pid, "VmHWM")

    senders = 48
    socks = [connect(broker.port) for _ in range(senders)]
    errors = []
    barrier = threading.Barrier(senders)

    def send(i, s):
        try:
            barrier.wait(timeout=30)
            s.sendall(produce_request("large", batch, 1000 + i, 1))
            errors.append(produce_error(read_response(s, 1000 + i)))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=send, args=(i, s)) for i, s in enumerate(socks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for s in socks:
        s.close()
    assert errors == [0] * senders, errors
    peak_kib = vm_kib(pid, "VmHWM")
    grown_mib = (peak_kib - baseline_kib) / 1024
    # Without the budget the broker reads all 192 MiB at once. With it, frames in flight
    # hold at most the budget, plus their buffers' read-ahead and allocator slack.
    bound_mib = 2 * budget / (1 << 20) + 32
    print(f"VmHWM {baseline_kib // 1024} MiB -> {peak_kib // 1024} MiB (+{grown_mib:.0f} MiB, bound {bound_mib:.0f} MiB)")
    assert grown_mib <= bound_mib, f"peak RSS grew by {grown_mib:.0f} MiB, over {bound_mib:.0f} MiB"
    counts = warning_counts(broker, BUDGET)
    assert 1 <= len(counts) <= 3, counts


def test_waiting_for_budget_stops_neither_the_connection_nor_its_receive_clock(make_broker):
    frame_max = 64 << 10
    receive_ms = 2000
    broker = make_broker(overrides(socket_request_max_bytes=frame_max, queued_max_request_bytes=frame_max,
                                   strom_request_receive_timeout_ms=receive_ms))
    # An ApiVersions v0 request padded to 60 KiB (Kafka ignores bytes after the body).
    padded = frame(header(18, 0, 5) + bytes((60 << 10) - len(header(18, 0, 5))))
    # Two connections announce that frame at once: the first to get the budget never
    # finishes its frame and is closed after the receive timeout; the other waits for the
    # budget all that time, then gets its rest ~1 s after the budget came. Its receive clock
    # ran for ~1 s of the ~3 s since its first byte, so it must be answered.
    first, second = connect(broker.port), connect(broker.port)
    first.sendall(padded[:1024])
    second.sendall(padded[:1024])
    started = time.monotonic()
    sel = selectors.DefaultSelector()
    for s in (first, second):
        sel.register(s, selectors.EVENT_READ)
    ready = sel.select(timeout=15)
    sel.close()
    assert len(ready) == 1, "both or neither connection closed"
    holder = ready[0][0].fileobj
    waiter = second if holder is first else first
    assert holder.recv(1) == b""
    closed_after = time.monotonic() - started
    assert closed_after >= receive_ms / 1000 * 0.9, closed_after
    time.sleep(max(0.0, started + receive_ms / 1000 * 1.5 - time.monotonic()))
    waiter.sendall(padded[1024:])
    read_response(waiter, 5)
    assert served(waiter, 6)
    assert warning_counts(broker, BUDGET)
    assert warning_counts(broker, RECEIVE_TIMEOUT) == [1]
