"""Just enough of Kafka's wire protocol to ask a broker which APIs it serves (ApiVersions v0).

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


def api_versions(host: str, port: int, timeout_s: float = 5.0) -> dict:
    """Returns {api_key: (min_version, max_version)} as the broker advertises them."""
    client_id = b"strom-tests"
    body = struct.pack(">hhih", API_KEYS["ApiVersions"], 0, 1, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.settimeout(timeout_s)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _read_exact(sock, 4))
        if not 0 < size <= _RESPONSE_BYTES_MAX:
            raise ValueError(f"ApiVersions response size {size} out of range")
        resp = _read_exact(sock, size)
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
