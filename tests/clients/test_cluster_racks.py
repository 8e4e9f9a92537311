"""Rack-aware placement on real processes: 3 broker+controller nodes and 3 broker-only nodes,
`broker.rack` over 3 racks (rack-a: 1 and 4, rack-b: 2 and 5, rack-c: 3 and 6).

- Topics created through confluent-kafka's AdminClient (CreateTopics without an assignment):
  RF 3 puts no two replicas of a partition on one rack and spreads leaders evenly; RF 4 and
  RF 5 (more replicas than racks) use every rack and put at most ceil(RF / racks) replicas
  on any rack (Kafka's rule: spread as evenly as possible). DescribeCluster reports each
  broker's rack.
- `strom partitions reassign --generate` answers as `kafka-reassign-partitions.sh --generate`
  (the current and the proposed assignment, Kafka's JSON with "log_dirs":["any",..]), by the
  same placement as creation: over every broker it proposes exactly the current placement;
  over brokers 1-5 it proposes a rack-aware placement off broker 6, which `--wait` carries
  out.

Marked `cluster` (README.md, "Cluster tests").
"""

import json
import math
import subprocess

import pytest
from confluent_kafka.admin import AdminClient

from cluster import NotYet
from cluster_fixtures import create_topic, make_cluster  # noqa: F401 (fixture)
from conftest import strom_binary

pytestmark = pytest.mark.cluster

RACKS = {1: "rack-a", 2: "rack-b", 3: "rack-c", 4: "rack-a", 5: "rack-b", 6: "rack-c"}
CLI_TIMEOUT_S = 120


def strom(cluster, *args):
    cmd = [str(strom_binary())] + [str(a) for a in args] + ["--bootstrap-server", cluster.bootstrap]
    proc = subprocess.run(cmd, capture_output=True, timeout=CLI_TIMEOUT_S)
    out, err = proc.stdout.decode(), proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, f"{' '.join(cmd[1:])} exited {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
    return out


def rack_counts(replicas):
    counts = {}
    for b in replicas:
        counts[RACKS[b]] = counts.get(RACKS[b], 0) + 1
    return counts


def parse_generate(text):
    """kafka-reassign-partitions.sh --generate's output: (current, proposed) plans."""
    lines = text.strip().splitlines()
    assert lines[0] == "Current partition replica assignment", text
    assert lines[2] == "" and lines[3] == "Proposed partition reassignment configuration", text
    assert len(lines) == 5, text
    return json.loads(lines[1]), json.loads(lines[4])


def as_map(plan):
    return {p["partition"]: p["replicas"] for p in plan["partitions"]}


def test_rack_aware_creation_and_generate_on_six_brokers(make_cluster, topic_name):
    cluster = make_cluster(3, node_props={i: {"broker.rack": RACKS[i]} for i in (1, 2, 3)})
    for i in (4, 5, 6):
        cluster.add_node("broker", {"broker.rack": RACKS[i]})
    cluster.wait_ready(nodes=[1, 2, 3, 4, 5, 6])

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 0})
    described = admin.describe_cluster(request_timeout=30).result(timeout=30)
    assert {n.id: n.rack for n in described.nodes} == RACKS, described.nodes

    rf3, rf4, rf5 = f"{topic_name}-rf3", f"{topic_name}-rf4", f"{topic_name}-rf5"
    create_topic(cluster, rf3, 12, replication=3)
    create_topic(cluster, rf4, 6, replication=4)
    create_topic(cluster, rf5, 6, replication=5)

    def placed(topic, n):
        parts = cluster.partitions(topic)
        if len(parts) != n:
            raise NotYet(parts)
        return {p: info["replicas"] for p, info in parts.items()}

    three = cluster.wait(f"{rf3} in Metadata", lambda: placed(rf3, 12), timeout_s=30)
    leaders = {}
    for p, replicas in three.items():
        assert len(set(replicas)) == 3, (p, replicas)
        assert sorted(rack_counts(replicas).values()) == [1, 1, 1], f"two replicas of {rf3}-{p} on a rack: {replicas}"
        leaders[replicas[0]] = leaders.get(replicas[0], 0) + 1
    # 12 partitions over 6 brokers: each leads two (Kafka's round robin of first replicas).
    assert leaders == {b: 2 for b in RACKS}, leaders
    for topic, rf in ((rf4, 4), (rf5, 5)):
        for p, replicas in cluster.wait(f"{topic} in Metadata", lambda t=topic: placed(t, 6), timeout_s=30).items():
            counts = rack_counts(replicas)
            assert len(set(replicas)) == rf, (topic, p, replicas)
            # Every rack holds one before any holds two: as even as the racks allow.
            assert len(counts) == 3 and max(counts.values()) <= math.ceil(rf / 3), (topic, p, replicas, counts)
            assert max(counts.values()) - min(counts.values()) <= 1, (topic, p, replicas, counts)

    # --generate over every broker: the placement creation made (the same rule and seed).
    current, proposed = parse_generate(strom(cluster, "partitions", "reassign", "--generate", "--broker-list",
                                             "1,2,3,4,5,6", "--topics", rf3))
    assert current["version"] == 1 and proposed["version"] == 1, (current, proposed)
    assert as_map(current) == three, current
    assert as_map(proposed) == three, proposed
    for p in current["partitions"] + proposed["partitions"]:
        assert p["topic"] == rf3 and p["log_dirs"] == ["any"] * 3, p

    # Kafka's topics file and a list without broker 6: every partition placed afresh on 1-5,
    # one replica per rack (rack-c is broker 3 alone now), leaders spread over the five.
    topics_file = cluster.dir / "topics-to-move.json"
    topics_file.write_text(json.dumps({"version": 1, "topics": [{"topic": rf3}]}))
    current, proposed = parse_generate(strom(cluster, "partitions", "reassign", "--generate", "--broker-list",
                                             "1,2,3,4,5", "--topics-to-move-json-file", topics_file))
    assert as_map(current) == three, current
    target = as_map(proposed)
    assert sorted(target) == list(range(12)), proposed
    leaders = {}
    for p, replicas in target.items():
        assert 6 not in replicas and len(set(replicas)) == 3, (p, replicas)
        assert sorted(rack_counts(replicas).values()) == [1, 1, 1], (p, replicas)
        leaders[replicas[0]] = leaders.get(replicas[0], 0) + 1
    assert sorted(leaders) == [1, 2, 3, 4, 5] and max(leaders.values()) - min(leaders.values()) <= 1, leaders

    # The proposal is a plan Kafka's --execute takes: carried out, Metadata shows it.
    plan = cluster.dir / "off-6.json"
    plan.write_text(json.dumps(proposed))
    out = strom(cluster, "partitions", "reassign", "--reassignment-json-file", plan, "--wait", "--timeout-s", "90")
    assert "Successfully started partition reassignment" in out, out

    def moved():
        now = placed(rf3, 12)
        if now != target:
            raise NotYet(now)
        return now

    cluster.wait(f"{rf3} on the proposed replicas", moved, timeout_s=60)
