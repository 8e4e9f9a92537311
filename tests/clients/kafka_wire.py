"""Just enough of Kafka's wire protocol to ask a broker which APIs it serves (ApiVersions v0)
and which feature levels it sees finalized (ApiVersions v3).

The harness uses this, not a client under test, to decide which tests can pass yet.
"""

import socket
import struct

API_KEYS = {
    "Produce": 0,
    "Fetch": 1,
    "ListOffsets": 2,
    "Metadata": 3,
    "OffsetCommit": 8,
    "OffsetFetch": 9,
    "FindCoordinator": 10,
    "JoinGroup": 11,
    "Heartbeat": 12,
    "LeaveGroup": 13,
    "SyncGroup": 14,
    "DescribeGroups": 15,
    "ListGroups": 16,
    "ApiVersions": 18,
    "CreateTopics": 19,
    "DeleteTopics": 20,
    "DeleteRecords": 21,
    "InitProducerId": 22,
    "OffsetForLeaderEpoch": 23,
    "DescribeConfigs": 32,
    "AlterConfigs": 33,
    "DescribeLogDirs": 35,
    "CreatePartitions": 37,
    "IncrementalAlterConfigs": 44,
    "DescribeCluster": 60,
    "DescribeTopicPartitions": 75,
}

# The APIs a consumer group needs; kafkajs consumes only through a group.
GROUP_APIS = ("FindCoordinator", "JoinGroup", "SyncGroup", "Heartbeat", "OffsetFetch", "OffsetCommit", "LeaveGroup")

_RESPONSE_BYTES_MAX = 1 << 20



def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


def _exchange(host: str, port: int, frame: bytes, timeout_s: float) -> bytes:
    """Sends one request frame (without its size) and returns the response (without it)."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.settimeout(timeout_s)
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", _read_exact(sock, 4))
        if not 0 < size <= _RESPONSE_BYTES_MAX:
            raise ValueError(f"ApiVersions response size {size} out of range")
        return _read_exact(sock, size)


def api_versions(host: str, port: int, timeout_s: float = 5.0) -> dict:
    """Returns {api_key: (min_version, max_version)} as the broker advertises them."""
    client_id = b"strom-tests"
    body = struct.pack(">hhih", API_KEYS["ApiVersions"], 0, 1, len(client_id)) + client_id
    resp = _exchange(host, port, body, timeout_s)
    correlation_id, error_code, count = struct.unpack(">ihi", resp[:10])
    if correlation_id != 1:
        raise ValueError(f"correlation id {correlation_id}, expected 1")
    if error_code != 0:
        raise ValueError(f"ApiVersions error code {error_code}")
    versions = {}
    for i in range(count):
        key, lo, hi = struct.unpack(">hhh", resp[10 + 6 * i : 16 + 6 * i])
        versions[key] = (lo, hi)
    return versions


def missing_apis(advertised: dict, names) -> list:
    return [n for n in names if API_KEYS[n] not in advertised]


def _uvarint(buf: bytes, at: int):
    """An unsigned varint at `at`: (value, next position); at most 5 bytes."""
    value = 0
    for i in range(5):
        if at + i >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[at + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, at + i + 1
    raise ValueError("varint longer than 5 bytes")


def finalized_features(host: str, port: int, timeout_s: float = 5.0) -> dict:
    """{feature: max_version_level} finalized as this broker sees it (ApiVersions v3's
    tagged field 2, FinalizedFeatures; the broker answers from its own metadata image)."""
    client_id = b"strom-tests"
    header = struct.pack(">hhih", API_KEYS["ApiVersions"], 3, 1, len(client_id)) + client_id + b"\x00"
    body = b"\x0cstrom-tests\x021\x00"  # compact "strom-tests", compact "1", no tags
    resp = _exchange(host, port, header + body, timeout_s)
    correlation_id, error_code = struct.unpack(">ih", resp[:6])
    if correlation_id != 1 or error_code != 0:
        raise ValueError(f"ApiVersions v3: correlation id {correlation_id}, error {error_code}")
    count, at = _uvarint(resp, 6)
    for _ in range(max(count - 1, 0)):
        at += 6  # api key, min, max
        tags, at = _uvarint(resp, at)
        for _ in range(tags):
            _, at = _uvarint(resp, at)
            length, at = _uvarint(resp, at)
            at += length
    at += 4  # throttle_time_ms
    tags, at = _uvarint(resp, at)
    features = {}
    for _ in range(tags):
        tag, at = _uvarint(resp, at)
        length, at = _uvarint(resp, at)
        end = at + length
        if tag == 2:
            n, at = _uvarint(resp, at)
            for _ in range(max(n - 1, 0)):
                name_len, at = _uvarint(resp, at)
                name = resp[at : at + name_len - 1].decode()
                at += name_len - 1
                (max_level,) = struct.unpack(">h", resp[at : at + 2])
                at += 4  # max and min version levels
                inner, at = _uvarint(resp, at)
                for _ in range(inner):
                    _, at = _uvarint(resp, at)
                    skip, at = _uvarint(resp, at)
                    at += skip
                features[name] = max_level
        at = end
    return features
