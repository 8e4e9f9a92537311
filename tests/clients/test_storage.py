"""`meta.properties` with real clients: a node formatted with `strom storage format
--cluster-id` reports that id to confluent-kafka and kafka-python (Metadata and
DescribeCluster), and a restart with a `cluster.id` that contradicts its directories is
refused naming the file, the key and both ids."""

import subprocess

import pytest
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient

from conftest import Broker, strom_binary

TIMEOUT_S = 30

pytestmark = pytest.mark.xfail(
    strom_binary().name == "standalone",
    reason="the standalone example has no storage format step",
    strict=False,
)


def strom(*args, check=True):
    return subprocess.run([str(strom_binary()), *args], capture_output=True, text=True, timeout=60, check=check)


def test_a_formatted_node_reports_its_cluster_id(tmp_path):
    b = Broker(strom_binary())
    data = b.data_dir / "data"
    config = tmp_path / "server.properties"
    config.write_text(
        f"node.id=1\nlisteners=PLAINTEXT://127.0.0.1:{b.port},CONTROLLER://127.0.0.1:{b.controller_port}\n"
        f"log.dirs={data}\n"
    )
    cluster_id = strom("storage", "random-uuid").stdout.strip()
    assert len(cluster_id) == 22
    formatted = strom("storage", "format", "--config", str(config), "--cluster-id", cluster_id)
    assert "Formatting" in formatted.stdout, formatted.stdout
    try:
        b.start()
        metadata = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=TIMEOUT_S)
        assert metadata.cluster_id == cluster_id
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
        try:
            assert admin.describe_cluster()["cluster_id"] == cluster_id
        finally:
            admin.close()
        b.stop()
        # The same directories with a cluster.id of another cluster: refused, nothing served.
        refused = strom(
            "server", str(config), "--override", "cluster.id=AAAAAAAAAAAAAAAAAAAAAA", check=False
        )
        assert refused.returncode == 1
        assert (
            f"{data / 'meta.properties'} says cluster.id={cluster_id}, but the configuration says "
            "cluster.id=AAAAAAAAAAAAAAAAAAAAAA" in refused.stderr
        ), refused.stderr
    finally:
        b.stop()
        b.cleanup()
        b.log_path.unlink(missing_ok=True)
