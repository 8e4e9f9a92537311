"""The controller quorum secured: three combined nodes whose client, inter-broker (SECURE) and
controller (CONTROLLER) listeners are all SASL_SSL with PLAIN, the controller listener with
mutual TLS as well (`listener.name.controller.ssl.client.auth=required`), certificates from
a throwaway CA (test_security.py's `pki`).

- confluent-kafka and the Java client produce with acks=all over SASL_SSL; the active
  controller is killed (kill -9), a new one is elected over the secured quorum and topics
  are still created; the partition leader is killed; every acknowledged record is read back.
- A controller whose login module has another password, then one whose certificate comes
  from an untrusted CA, cannot take part: its log and its peers' logs say why, and the
  quorum carries on without it; with its right configuration it catches up again.

- With `authorizer.class.name` set, the quorum's requests are authorized as Kafka's
  controllers authorize them: the nodes' principals in `super.users` form the quorum and
  survive the active controller's kill; a broker whose controller-listener principal is
  neither a super user nor granted CLUSTER_ACTION is refused (its log and the controllers'
  audit lines say why) until CLUSTER_ACTION is granted with confluent-kafka's create_acls.
- `strom metadata status --command-config` reaches a SASL_SSL controller listener with
  mutual TLS; without the file it cannot; a principal without DESCRIBE on the cluster is
  refused until granted it.
- SCRAM-SHA-512 on a SASL_SSL controller listener, its user from `strom storage format
  --add-scram`: the quorum forms before any metadata reaches a node, writes go through and
  survive the active controller's kill (the Java Admin finds the new one); the bootstrap
  user reaches the metadata log (DescribeUserScramCredentials); `strom metadata status`
  authenticates with SCRAM; a controller with a wrong password is refused by both sides; a
  user added later with AlterUserScramCredentials is accepted once replicated. Every node
  then has retired its `bootstrap.scram`; once every SCRAM credential is deleted, a
  controller restarted with the bootstrap password is refused by both sides and the
  bootstrap user is not written again.
- The controller listener's key store file is replaced on a running SSL quorum with mutual
  TLS: the nodes' new outgoing connections present the new certificate (the accepting
  node's principal is its subject), without a restart of the nodes that make them.

Each node keeps a PLAINTEXT listener for the harness (readiness, Metadata polling).
Marked `cluster` (README.md, "Cluster tests").
"""

import base64
import os
import re
import shutil
import subprocess
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)

from cluster import NotYet, free_ports
from cluster_fixtures import make_cluster  # noqa: F401 (fixture)
from conftest import java_tool, strom_binary  # noqa: F401 (fixture)
from test_compat import compat_tool  # noqa: F401 (fixture)
from test_security import make_ca, make_cert, pki, sasl_conf  # noqa: F401 (fixture)

pytestmark = pytest.mark.cluster

TIMEOUT_S = 30


def jaas(user, password, users):
    entries = " ".join(f'user_{u}="{p}"' for u, p in users.items())
    return ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            f'username="{user}" password="{password}" {entries};')


CONTROLLER_USERS = {"controller": "controller-secret"}


def secured(pki):
    """Every listener but the harness's PLAINTEXT one is SASL_SSL; the controller listener
    also asks for client certificates."""
    return {
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_SSL,SECURE:SASL_SSL",
        "inter.broker.listener.name": "SECURE",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.secure.plain.sasl.jaas.config":
            jaas("broker", "broker-secret", {"broker": "broker-secret", "alice": "alice-secret"}),
        "listener.name.controller.plain.sasl.jaas.config":
            jaas("controller", "controller-secret", CONTROLLER_USERS),
        "listener.name.controller.ssl.client.auth": "required",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(pki / "server.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(pki / "ca.crt"),
    }


def quorum_leader(cluster, compat_tool, not_in=()):
    """The active controller per describeMetadataQuorum (Java Admin), once it is a live node
    outside `not_in`."""
    live = {n.node_id for n in cluster.live()}

    def probe():
        q = compat_tool(["quorum", cluster.bootstrap])
        if "error" in q or q.get("leader_id") not in live or q["leader_id"] in not_in:
            raise NotYet(q)
        return q["leader_id"]

    return cluster.wait("an active controller", probe, timeout_s=60, interval_s=0.5)


def produce(bootstrap, conf, topic, prefix, n):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, **conf})
    for i in range(n):
        p.produce(topic, value=b"%s%d" % (prefix, i))
    assert p.flush(TIMEOUT_S) == 0
    return [b"%s%d" % (prefix, i) for i in range(n)]


def create_topic(bootstrap, conf, topic, rf=3):
    admin = AdminClient({"bootstrap.servers": bootstrap, **conf})
    admin.create_topics([NewTopic(topic, 1, rf, config={"min.insync.replicas": "2"})])[topic].result(TIMEOUT_S)


def consume_all(bootstrap, conf, topic, n):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, **conf})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got, deadline = [], time.monotonic() + 60
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    return got


def test_sasl_ssl_quorum_fails_over_and_loses_nothing(make_cluster, pki, topic_name, compat_tool, java_tool,
                                                      tmp_path):
    cluster = make_cluster(3, secured(pki), extra_listener="SECURE")
    secure = ",".join(f"127.0.0.1:{n.extra_port}" for n in cluster.nodes.values())
    conf = sasl_conf(pki, "PLAIN", "alice", "alice-secret")
    create_topic(secure, conf, topic_name)
    cluster.wait_isr(topic_name, 3)
    want = produce(secure, conf, topic_name, b"a", 50)
    # The Java client over SASL_SSL, acks=all.
    records = tmp_path / "records.tsv"
    records.write_text("".join("\t%s\n" % base64.b64encode(b"java-%d" % i).decode() for i in range(5)))
    java_props = ["security.protocol=SASL_SSL", "ssl.truststore.type=PEM",
                  f"ssl.truststore.location={pki / 'ca.crt'}", "sasl.mechanism=PLAIN", "acks=all",
                  'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required '
                  'username="alice" password="alice-secret";']
    out = java_tool(["produce", secure, topic_name, "none", records, *java_props])
    assert len(out["acks"]) == 5, out
    want += [b"java-" + str(i).encode() for i in range(5)]

    # The active controller dies: a new one is elected over the SASL_SSL quorum, and
    # metadata changes (a topic creation) go through it.
    active = quorum_leader(cluster, compat_tool)
    cluster[active].kill()
    quorum_leader(cluster, compat_tool, not_in=(active,))
    create_topic(secure, conf, topic_name + "-after")
    want += produce(secure, conf, topic_name, b"b", 50)
    cluster[active].start()
    cluster.wait_isr(topic_name, 3)

    # The partition leader dies.
    leader = cluster.leader(topic_name, 0)
    cluster[leader].kill()
    cluster.leader(topic_name, 0, not_in=(leader,))
    want += produce(secure, conf, topic_name, b"c", 50)
    got = consume_all(secure, conf, topic_name, len(want))
    assert sorted(got) == sorted(want)


def log_text(node):
    return node.log_path.read_text(errors="replace")


def wait_log(cluster, nodes, needle, what):
    def probe():
        if not any(needle in log_text(node) for node in nodes):
            raise NotYet(f"{needle!r} not in the log of {nodes}")
        return True

    return cluster.wait(what, probe, timeout_s=30)


def create_topic_when_led(cluster, bootstrap, conf, topic):
    """Creates `topic` once the quorum without the bad node has elected a leader (until then
    the others may still take the bad node for the leader they knew, and time out). RF 2:
    the bad node's broker is fenced."""

    def probe():
        try:
            create_topic(bootstrap, conf, topic, rf=2)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        return True

    cluster.wait(f"topic {topic} created", probe, timeout_s=60, interval_s=0.5)


def wait_fenced(cluster, node_id, via):
    """Until `via`'s Metadata no longer lists broker `node_id` (it failed to heartbeat for
    broker.session.timeout.ms): clients then stop sending it requests it cannot forward."""

    def probe():
        brokers = cluster.metadata([], via=via)["brokers"]
        if node_id in brokers:
            raise NotYet(f"brokers {sorted(brokers)}")
        return True

    cluster.wait(f"broker {node_id} fenced", probe, timeout_s=60)


def test_a_controller_with_a_wrong_password_or_untrusted_cert_cannot_take_part(make_cluster, pki, topic_name):
    rogue = make_ca(pki, "rogue-q", "/CN=Rogue Quorum CA")
    make_cert(pki, "rogue-node", "/CN=rogue/O=Strom", rogue, san="IP:127.0.0.1,DNS:localhost")
    cluster = make_cluster(3, secured(pki), extra_listener="SECURE")
    secure = ",".join(f"127.0.0.1:{n.extra_port}" for n in cluster.nodes.values())
    conf = sasl_conf(pki, "PLAIN", "alice", "alice-secret")
    create_topic(secure, conf, topic_name)
    cluster.wait_isr(topic_name, 3)
    want = produce(secure, conf, topic_name, b"a", 20)
    bad = cluster[3]
    good = [cluster[1], cluster[2]]
    good_secure = ",".join(f"127.0.0.1:{n.extra_port}" for n in good)

    # Another password (its own and the one it expects): nobody accepts it, it accepts
    # nobody, and both sides say why.
    bad.stop()
    bad.props["listener.name.controller.plain.sasl.jaas.config"] = jaas("controller", "wrong", {"controller": "wrong"})
    # Not waited for: its broker does not serve before it has registered, and gives up
    # (the process exits, naming the refusal) if that fails for long.
    bad.start(wait=False)
    bad.expected = False
    wait_log(cluster, [bad], "SASL PLAIN authentication as controller was refused", "the bad node's refusal")
    wait_log(cluster, good, "SASL PLAIN authentication as \"controller\" failed", "the quorum's refusal")
    wait_fenced(cluster, bad.node_id, via=1)
    # The quorum carries on: metadata changes and acks=all writes go through the other two.
    create_topic_when_led(cluster, good_secure, conf, topic_name + "-pw")
    want += produce(good_secure, conf, topic_name, b"b", 20)

    # A certificate from a CA nobody trusts (and a trust store that trusts nobody else).
    bad.kill()
    del bad.props["listener.name.controller.plain.sasl.jaas.config"]
    bad.props["listener.name.controller.ssl.keystore.location"] = str(pki / "rogue-node.pem")
    bad.props["listener.name.controller.ssl.truststore.location"] = str(pki / "rogue-q.crt")
    bad.start(wait=False)
    bad.expected = False
    wait_log(cluster, [bad], "the TLS handshake with controller listener CONTROLLER failed", "the bad node's TLS failure")
    wait_log(cluster, good, "invalid peer certificate", "the quorum's TLS failure")
    wait_fenced(cluster, bad.node_id, via=1)
    create_topic_when_led(cluster, good_secure, conf, topic_name + "-tls")
    want += produce(good_secure, conf, topic_name, b"c", 20)

    # Its right configuration: it catches up and serves again.
    bad.kill()
    bad.props.clear()
    bad.start()
    cluster.wait_isr(topic_name, 3)
    got = consume_all(secure, conf, topic_name, len(want))
    assert sorted(got) == sorted(want)
    assert not cluster.crashed()


STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
# The controller listener's PLAIN users: the controllers', a broker's without privileges,
# and a person's for `strom metadata status`.
AUTHZ_USERS = {"controller": "controller-secret", "broker4": "broker4-secret", "operator": "operator-secret"}


def authorized(pki):
    """secured(pki) with Kafka's StandardAuthorizer: the controllers' principal (the
    controller listener's), the inter-broker one and the harness's (PLAINTEXT, ANONYMOUS)
    are super users; nobody else has an ACL."""
    return {**secured(pki),
            "listener.name.controller.plain.sasl.jaas.config": jaas("controller", "controller-secret", AUTHZ_USERS),
            "authorizer.class.name": STANDARD_AUTHORIZER,
            "super.users": "User:controller;User:broker;User:ANONYMOUS"}


def grant_cluster(cluster, principal, operation):
    """`operation` on the CLUSTER resource for `principal` from any host, created through the
    harness's (super user) listener with confluent-kafka's create_acls."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    binding = AclBinding(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, principal, "*",
                         operation, AclPermissionType.ALLOW)
    for future in admin.create_acls([binding]).values():
        future.result(TIMEOUT_S)


def audit_denied(nodes, principal, operation):
    """The controllers' audit lines denying `principal` `operation` on the cluster."""
    pattern = re.compile(r"strom::audit.*denied.*principal=User:%s.*operation=%s" % (principal, operation))
    return [line for node in nodes for line in log_text(node).splitlines() if pattern.search(line)]


def test_quorum_authorizer_super_users_and_cluster_action(make_cluster, pki, topic_name, compat_tool):
    cluster = make_cluster(3, authorized(pki), extra_listener="SECURE")
    controllers = [cluster[i] for i in (1, 2, 3)]
    # The super users formed the quorum; metadata changes and acks=all writes go through it,
    # also after the active controller is killed.
    create_topic(cluster.bootstrap, {}, topic_name)
    cluster.wait_isr(topic_name, 3)
    want = produce(cluster.bootstrap, {}, topic_name, b"a", 20)
    active = quorum_leader(cluster, compat_tool)
    cluster[active].kill()
    quorum_leader(cluster, compat_tool, not_in=(active,))
    live = ",".join(n.bootstrap for n in cluster.live())
    create_topic(live, {}, topic_name + "-after", rf=2)
    want += produce(live, {}, topic_name, b"b", 20)
    cluster[active].start()
    cluster.wait_isr(topic_name, 3)
    assert not audit_denied(controllers, "controller", "CLUSTER_ACTION")

    # A broker whose controller-listener principal (User:broker4) is neither a super user
    # nor granted CLUSTER_ACTION: it can neither join as an observer nor register.
    broker4 = cluster.add_node("broker", {
        "listener.name.controller.plain.sasl.jaas.config": jaas("broker4", "broker4-secret", AUTHZ_USERS),
    }, start=False)
    broker4.extra_port = free_ports(1)[0]
    broker4.start(wait=False)
    broker4.expected = False  # it may give up registering and exit, naming the refusal
    wait_log(cluster, [broker4], "CLUSTER_AUTHORIZATION_FAILED: principal User:broker4", "broker 4's refusal")

    def controllers_audit():
        if not audit_denied(controllers, "broker4", "CLUSTER_ACTION"):
            raise NotYet("no audit line denying User:broker4 CLUSTER_ACTION")
        return True

    cluster.wait("the controllers' audit line", controllers_audit, timeout_s=30)
    assert 4 not in cluster.metadata([], via=1)["brokers"]

    # CLUSTER_ACTION granted: broker 4 joins and registers, and serves as a replica.
    grant_cluster(cluster, "User:broker4", AclOperation.CLUSTER_ACTION)
    broker4.kill()
    broker4.start()
    cluster.wait_ready(nodes=[1, 2, 3, 4])
    create_topic(cluster.bootstrap, {}, topic_name + "-4", rf=4)
    cluster.wait_isr(topic_name + "-4", 4)
    got = consume_all(cluster.bootstrap, {}, topic_name, len(want))
    assert sorted(got) == sorted(want)
    assert not cluster.crashed()


def metadata_status(cluster, config=None):
    """`strom metadata status` against every controller, with `config` as --command-config."""
    args = [str(strom_binary()), "metadata", "status", "--bootstrap-controller", cluster.controller_addrs]
    if config is not None:
        args += ["--command-config", str(config)]
    proc = subprocess.run(args, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode().splitlines()


def test_metadata_status_over_sasl_ssl_with_command_config(make_cluster, pki, tmp_path):
    cluster = make_cluster(3, authorized(pki), extra_listener="SECURE")

    def client_config(user, password):
        path = tmp_path / f"{user}.properties"
        path.write_text(
            "security.protocol=SASL_SSL\n"
            f"ssl.ca.location={pki / 'ca.crt'}\n"
            # mutual TLS on the controller listener: librdkafka's key names
            f"ssl.certificate.location={pki / 'alice.crt'}\nssl.key.location={pki / 'alice.key'}\n"
            "sasl.mechanism=PLAIN\n"
            'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required '
            f'username="{user}" password="{password}";\n')
        return path

    # Without client security the TLS listener gives it nothing.
    lines = metadata_status(cluster)
    assert len(lines) == 3 and all("unreachable" in line for line in lines), lines

    # As a super user: every controller answers and they agree on the leader.
    def statuses(config):
        lines = metadata_status(cluster, config)
        if len(lines) != 3 or any("unreachable" in line for line in lines):
            raise NotYet(lines)
        leaders = {re.search(r"leader (\S+)", line).group(1) for line in lines}
        if len(leaders) != 1 or "none" in leaders:
            raise NotYet(lines)
        return lines

    lines = cluster.wait("every controller's status", lambda: statuses(client_config("controller", "controller-secret")))
    assert sorted(int(re.search(r"node (\d+)", line).group(1)) for line in lines) == [1, 2, 3]

    # A principal without DESCRIBE on the cluster is refused, saying why, until granted it.
    operator = client_config("operator", "operator-secret")
    lines = metadata_status(cluster, operator)
    assert all("CLUSTER_AUTHORIZATION_FAILED: principal User:operator" in line and "DESCRIBE" in line
               for line in lines), lines
    grant_cluster(cluster, "User:operator", AclOperation.DESCRIBE)
    cluster.wait("the operator's status", lambda: statuses(operator))
    # A wrong password is refused by the SASL exchange.
    lines = metadata_status(cluster, client_config("operator", "wrong"))
    assert all("unreachable" in line and "authentication" in line for line in lines), lines


def test_rotated_controller_certificate_is_presented_by_outgoing_connections(make_cluster, pki, tmp_path,
                                                                             monkeypatch):
    # Each accepted quorum connection's principal is logged at DEBUG by the accepting node.
    monkeypatch.setenv("RUST_LOG", "warn,strom=info,strom_broker=info,strom_raft=info,strom_raft::security=debug")
    stores = {i: tmp_path / f"controller-{i}.pem" for i in (1, 2, 3)}
    for path in stores.values():
        shutil.copy(pki / "server.pem", path)
    overrides = {
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:SSL",
        "listener.name.controller.ssl.client.auth": "required",
        "ssl.keystore.type": "PEM",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(pki / "ca.crt"),
    }
    cluster = make_cluster(3, overrides, node_props={
        i: {"listener.name.controller.ssl.keystore.location": str(path)} for i, path in stores.items()})
    old, new = "as User:O=Strom,CN=localhost", "as User:O=Strom,CN=rotated"
    wait_log(cluster, list(cluster.nodes.values()), old, "a quorum connection with the first certificate")

    # Every node's key store is replaced (a rename, as one should rotate), the nodes run on.
    for i, path in stores.items():
        staged = tmp_path / f"controller-{i}.pem.new"
        shutil.copy(pki / "server2.pem", staged)
        os.replace(staged, path)
    # Node 3 restarts: every connection it accepts from now on is a new connection of node 1
    # or 2, which never restarted.
    node3 = cluster[3]
    node3.stop()
    restarted_at = len(log_text(node3))
    node3.start()

    def accepted_since_restart():
        lines = [line for line in log_text(node3)[restarted_at:].splitlines() if "quorum connection from" in line]
        if not any(new in line for line in lines):
            raise NotYet(lines[-5:])
        return lines

    lines = cluster.wait("node 3 accepting its peers' connections", accepted_since_restart, timeout_s=30)
    assert not [line for line in lines if old in line], lines
    topic = "rotated-" + os.urandom(4).hex()
    create_topic(cluster.bootstrap, {}, topic)
    cluster.wait_isr(topic, 3)


def scram_jaas(user, password):
    return ('org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="{user}" password="{password}";')


SCRAM_JAAS_KEY = "listener.name.controller.scram-sha-512.sasl.jaas.config"


def scram_secured(pki):
    """The controller listener on SASL_SSL with SCRAM-SHA-512 (its users in the metadata
    log, the first from `strom storage format --add-scram`); the harness's listener PLAINTEXT."""
    return {
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.controller.protocol": "SCRAM-SHA-512",
        SCRAM_JAAS_KEY: scram_jaas("controller", "controller-secret"),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(pki / "server.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(pki / "ca.crt"),
    }


def test_scram_sha_512_quorum_from_format_add_scram(make_cluster, pki, topic_name, compat_tool, tmp_path):
    cluster = make_cluster(3, scram_secured(pki),
                           format_flags=("--add-scram", "SCRAM-SHA-512=[name=controller,password=controller-secret]"))
    # The quorum formed over SASL_SSL + SCRAM with the bootstrap user (every broker
    # registered through it); metadata changes and acks=all writes go through it.
    create_topic(cluster.bootstrap, {}, topic_name)
    cluster.wait_isr(topic_name, 3)
    want = produce(cluster.bootstrap, {}, topic_name, b"a", 20)

    # The active controller wrote the bootstrap user into the metadata log.
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})

    def described():
        try:
            found = admin.describe_user_scram_credentials(["controller"])["controller"].result(TIMEOUT_S)
        except KafkaException as e:
            raise NotYet(e)
        return [(i.mechanism, i.iterations) for i in found.scram_credential_infos]

    infos = cluster.wait("the bootstrap user in the metadata log", described, timeout_s=30)
    assert infos == [(ScramMechanism.SCRAM_SHA_512, 4096)]

    # `strom metadata status` authenticates to every controller with SCRAM-SHA-512.
    config = tmp_path / "scram.properties"
    config.write_text("security.protocol=SASL_SSL\n"
                      f"ssl.ca.location={pki / 'ca.crt'}\n"
                      "sasl.mechanism=SCRAM-SHA-512\n"
                      f"sasl.jaas.config={scram_jaas('controller', 'controller-secret')}\n")

    def statuses():
        lines = metadata_status(cluster, config)
        if len(lines) != 3 or any("unreachable" in line for line in lines):
            raise NotYet(lines)
        return lines

    cluster.wait("every controller's status over SCRAM", statuses)

    # The active controller dies: a new one is elected over the SCRAM quorum (the Java
    # Admin's describeMetadataQuorum names it) and metadata changes go through it.
    active = quorum_leader(cluster, compat_tool)
    cluster[active].kill()
    quorum_leader(cluster, compat_tool, not_in=(active,))
    live = ",".join(n.bootstrap for n in cluster.live())
    create_topic(live, {}, topic_name + "-after", rf=2)
    want += produce(live, {}, topic_name, b"b", 20)
    cluster[active].start()
    cluster.wait_isr(topic_name, 3)

    # A controller with a wrong password: nobody accepts it, and both sides say why.
    bad = cluster[3]
    good = [cluster[1], cluster[2]]
    good_bootstrap = ",".join(n.bootstrap for n in good)
    bad.stop()
    bad.props[SCRAM_JAAS_KEY] = scram_jaas("controller", "wrong")
    bad.start(wait=False)
    bad.expected = False  # its broker may give up registering and exit, naming the refusal
    wait_log(cluster, [bad], "SASL SCRAM-SHA-512 authentication as controller was refused", "the bad node's refusal")
    wait_log(cluster, good, 'SASL SCRAM-SHA-512 authentication as "controller" failed', "the quorum's refusal")
    assert "invalid credentials" in log_text(bad)
    wait_fenced(cluster, bad.node_id, via=1)
    create_topic_when_led(cluster, good_bootstrap, {}, topic_name + "-pw")
    want += produce(good_bootstrap, {}, topic_name, b"c", 20)

    # A user created now with AlterUserScramCredentials is accepted once replicated: node 3
    # authenticates as it and takes part again.
    upsert = UserScramCredentialUpsertion("node3", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                          b"node3-secret")
    good_admin = AdminClient({"bootstrap.servers": good_bootstrap})  # alive until the answer
    good_admin.alter_user_scram_credentials([upsert])["node3"].result(TIMEOUT_S)
    bad.kill()
    bad.props[SCRAM_JAAS_KEY] = scram_jaas("node3", "node3-secret")
    bad.start()
    cluster.wait_isr(topic_name, 3)
    got = consume_all(cluster.bootstrap, {}, topic_name, len(want))
    assert sorted(got) == sorted(want)

    # Every node has retired its bootstrap file: its metadata log holds SCRAM credentials.
    def retired():
        files = {n.node_id: sorted(p.name for p in n.data_dir.rglob("bootstrap.scram*")) for n in cluster.nodes.values()}
        if any(names != ["bootstrap.scram.applied"] for names in files.values()):
            raise NotYet(files)
        return files

    cluster.wait("every node's bootstrap SCRAM file retired", retired)

    # Every SCRAM credential deleted: the bootstrap password does not come back, neither
    # written again into the metadata log by the active controller nor accepted from a
    # restarted controller (Kafka writes its bootstrap records once).
    deletions = [UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512) for user in ("controller", "node3")]
    for user, future in good_admin.alter_user_scram_credentials(deletions).items():
        future.result(TIMEOUT_S)

    def scram_users():
        users = good_admin.describe_user_scram_credentials().result(TIMEOUT_S)
        if users:
            raise NotYet(sorted(users))
        return True

    cluster.wait("every SCRAM credential deleted", scram_users)
    bad.kill()
    restarted_at = len(log_text(bad))
    good_at = {n.node_id: len(log_text(n)) for n in good}
    bad.props[SCRAM_JAAS_KEY] = scram_jaas("controller", "controller-secret")
    bad.start(wait=False)
    bad.expected = False  # its broker may give up registering and exit, naming the refusal

    def refused_both_ways():
        mine = log_text(bad)[restarted_at:]
        theirs = "".join(log_text(n)[good_at[n.node_id]:] for n in good)
        if ("SASL SCRAM-SHA-512 authentication as controller was refused" not in mine
                or 'SASL SCRAM-SHA-512 authentication as "controller" failed' not in theirs):
            raise NotYet(mine[-2000:])
        return True

    cluster.wait("the bootstrap password refused after the restart", refused_both_ways)
    # The active controller ticked all along: still no credential, the bootstrap one included.
    assert good_admin.describe_user_scram_credentials().result(TIMEOUT_S) == {}
    assert not cluster.crashed()
