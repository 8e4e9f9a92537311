"""KIP-1071's StreamsGroupHeartbeat (API 88, v0) spoken on the wire, for tests of the broker's
streams group coordinator without a streams client: a connection that encodes the request
(flexible version: compact strings and arrays, tagged fields) and decodes the response into
plain dicts. FindCoordinator v0 first, so `__consumer_offsets` exists.
"""

import socket
import struct

from kafka_wire import _read_exact

STREAMS_GROUP_HEARTBEAT = 88
FIND_COORDINATOR = 10
_RESPONSE_BYTES_MAX = 1 << 24

# StreamsGroupHeartbeatResponse.Status codes.
STALE_TOPOLOGY = 0
MISSING_SOURCE_TOPICS = 1
INCORRECTLY_PARTITIONED_TOPICS = 2
MISSING_INTERNAL_TOPICS = 3
SHUTDOWN_APPLICATION = 4


def _uvarint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def _cstr(s) -> bytes:
    if s is None:
        return b"\x00"
    raw = s.encode()
    return _uvarint(len(raw) + 1) + raw


def _carray(items, encode) -> bytes:
    if items is None:
        return b"\x00"
    return _uvarint(len(items) + 1) + b"".join(encode(i) for i in items)


def _tags() -> bytes:
    return b"\x00"


def _key_value(kv) -> bytes:
    return _cstr(kv[0]) + _cstr(kv[1]) + _tags()


def _topic_info(t) -> bytes:
    return (
        _cstr(t["name"])
        + struct.pack(">ih", t.get("partitions", 0), t.get("replication_factor", -1))
        + _carray(list(t.get("configs", {}).items()), _key_value)
        + _tags()
    )


def _subtopology(s) -> bytes:
    return (
        _cstr(s["id"])
        + _carray(s.get("source_topics", []), _cstr)
        + _carray([], _cstr)
        + _carray(s.get("changelog_topics", []), _topic_info)
        + _carray(s.get("repartition_sink_topics", []), _cstr)
        + _carray(s.get("repartition_source_topics", []), _topic_info)
        + _carray([], lambda g: b"")
        + _tags()
    )


def _task_ids(item) -> bytes:
    sub, partitions = item
    return _cstr(sub) + _carray(sorted(partitions), lambda p: struct.pack(">i", p)) + _tags()


def _tasks(tasks):
    if tasks is None:
        return b"\x00"
    return _carray(sorted(tasks.items()), _task_ids)


class _Reader:
    def __init__(self, buf: bytes):
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise ValueError("response truncated")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def int(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def uvarint(self) -> int:
        n, shift = 0, 0
        while True:
            b = self.take(1)[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7

    def cstr(self):
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def carray(self, decode):
        n = self.uvarint()
        return None if n == 0 else [decode(self) for _ in range(n - 1)]

    def skip_tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def _read_task_ids(r: _Reader):
    sub = r.cstr()
    partitions = r.carray(lambda r: r.int(">i"))
    r.skip_tags()
    return sub, set(partitions or [])


def _read_tasks(r: _Reader):
    items = r.carray(_read_task_ids)
    if items is None:
        return None
    out = {}
    for sub, parts in items:
        out.setdefault(sub, set()).update(parts)
    return out


def _read_status(r: _Reader):
    code = r.int(">b")
    detail = r.cstr()
    r.skip_tags()
    return code, detail


def _read_topic_partition(r: _Reader):
    topic = r.cstr()
    partitions = r.carray(lambda r: r.int(">i"))
    r.skip_tags()
    return topic, set(partitions or [])


def _read_endpoint(r: _Reader):
    host = r.cstr()
    port = r.int(">H")
    r.skip_tags()
    active = dict(r.carray(_read_topic_partition) or [])
    standby = dict(r.carray(_read_topic_partition) or [])
    r.skip_tags()
    return {"endpoint": (host, port), "active": active, "standby": standby}


class Connection:
    """One TCP connection speaking request header v2 (flexible) / v1 to a broker."""

    def __init__(self, host: str, port: int, timeout_s: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.settimeout(timeout_s)
        self.correlation = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, api_key: int, version: int, body: bytes, flexible: bool) -> _Reader:
        self.correlation += 1
        client_id = b"streams-wire"
        header = struct.pack(">hhih", api_key, version, self.correlation, len(client_id)) + client_id
        if flexible:
            header += _tags()
        frame = header + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", _read_exact(self.sock, 4))
        if not 0 < size <= _RESPONSE_BYTES_MAX:
            raise ValueError(f"response size {size} out of range")
        r = _Reader(_read_exact(self.sock, size))
        if r.int(">i") != self.correlation:
            raise ValueError("correlation id mismatch")
        if flexible:
            r.skip_tags()
        return r

    def find_coordinator(self, group_id: str):
        """FindCoordinator v0: (error code, node id, host, port)."""
        key = group_id.encode()
        r = self._call(FIND_COORDINATOR, 0, struct.pack(">h", len(key)) + key, flexible=False)
        error = r.int(">h")
        node = r.int(">i")
        host = r.take(r.int(">h")).decode()
        port = r.int(">i")
        return error, node, host, port

    def heartbeat(
        self,
        group_id: str,
        member_id: str,
        member_epoch: int,
        *,
        topology=None,
        process_id=None,
        rebalance_timeout_ms: int = -1,
        active=None,
        standby=None,
        warmup=None,
        instance_id=None,
        endpoint=None,
        shutdown: bool = False,
    ) -> dict:
        """StreamsGroupHeartbeat v0. `topology` is {"epoch": e, "subtopologies": [...]}
        with subtopologies as dicts (id, source_topics, changelog_topics, ...); tasks
        are {subtopology: set(partitions)} or None (unchanged)."""
        if topology is None:
            topo = b"\xff"
        else:
            topo = (
                b"\x01"
                + struct.pack(">i", topology["epoch"])
                + _carray(topology["subtopologies"], _subtopology)
                + _tags()
            )
        if endpoint is None:
            ep = b"\xff"
        else:
            ep = b"\x01" + _cstr(endpoint[0]) + struct.pack(">H", endpoint[1]) + _tags()
        body = (
            _cstr(group_id)
            + _cstr(member_id)
            + struct.pack(">i", member_epoch)
            + _cstr(instance_id)
            + _cstr(None)
            + struct.pack(">i", rebalance_timeout_ms)
            + topo
            + _tasks(active)
            + _tasks(standby)
            + _tasks(warmup)
            + _cstr(process_id)
            + ep
            + b"\x00"
            + b"\x00"
            + b"\x00"
            + struct.pack(">?", shutdown)
            + _tags()
        )
        r = self._call(STREAMS_GROUP_HEARTBEAT, 0, body, flexible=True)
        out = {
            "throttle_time_ms": r.int(">i"),
            "error_code": r.int(">h"),
            "error_message": r.cstr(),
            "member_id": r.cstr(),
            "member_epoch": r.int(">i"),
            "heartbeat_interval_ms": r.int(">i"),
            "acceptable_recovery_lag": r.int(">i"),
            "task_offset_interval_ms": r.int(">i"),
            "status": r.carray(_read_status),
            "active": _read_tasks(r),
            "standby": _read_tasks(r),
            "warmup": _read_tasks(r),
            "endpoints": r.carray(_read_endpoint),
        }
        r.skip_tags()
        return out
