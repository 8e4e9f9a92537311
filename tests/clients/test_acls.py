"""ACLs and the StandardAuthorizer with real clients: the Java Admin's createAcls /
describeAcls / deleteAcls (what kafka-acls.sh calls), then confluent-kafka and kafka-python
producing, consuming and listing topics as `User:ANONYMOUS` (the principal of a PLAINTEXT
connection) with ACLs that allow or deny it.

The per-user test at the end needs SASL PLAIN (another branch); until the broker advertises
SaslHandshake it stops as an expected failure.
"""

import os
import shutil
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

import kafka_wire
from conftest import TOOLS, TOOL_TIMEOUT_S, Broker, run_tool, strom_binary

kafka_wire.API_KEYS.update({"SaslHandshake": 17, "SaslAuthenticate": 36})

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
TIMEOUT_S = 30
ANON = "User:ANONYMOUS"


def authorizer_args(*extra):
    args = ["--override", f"authorizer.class.name={AUTHORIZER}"]
    for kv in extra:
        args += ["--override", kv]
    return args


@pytest.fixture(scope="session")
def acl_tool():
    classes, libs = TOOLS / "java-classes", TOOLS / "java-libs"
    if not (classes / "AclTool.class").is_file():
        pytest.fail("Java helper not compiled: run scripts/setup-clients")
    java = shutil.which("java") or "java"
    cp = f"{classes}{os.pathsep}{libs}/*"

    def run(command, bootstrap, *items, client_props="-"):
        return run_tool([java, "-cp", cp, "AclTool", command, bootstrap, client_props, *items], f"java AclTool {command}", TOOL_TIMEOUT_S)

    return run


def acl(rt, pt, name, principal, host, op, perm):
    return "|".join([rt, pt, name, principal, host, op, perm])


def create_topics(bootstrap, *names, conf=None):
    admin = AdminClient({"bootstrap.servers": bootstrap, **(conf or {})})
    futures = admin.create_topics([NewTopic(n, num_partitions=1, replication_factor=1) for n in names])
    for name, future in futures.items():
        future.result(timeout=TIMEOUT_S)


def produce_one(bootstrap, topic, conf=None):
    """Produces one record; returns None on success or the librdkafka error name."""
    errors = []
    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 15000, **(conf or {})})

    def delivered(err, _msg):
        errors.append(err)

    producer.produce(topic, b"value", on_delivery=delivered)
    producer.flush(TIMEOUT_S)
    assert errors, "no delivery report within the timeout"
    return None if errors[0] is None else errors[0].name()


def consume_error(bootstrap, topic, group, conf=None):
    """Subscribes and polls until a record arrives or an error is reported; returns None for
    a record, else the error's name."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
            **(conf or {}),
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                return msg.error().name()
            return None
        pytest.fail(f"neither a record nor an error from {topic} in {TIMEOUT_S}s")
    finally:
        consumer.close()


def test_acl_admin_and_anonymous_access(make_broker, acl_tool):
    """With `allow.everyone.if.no.acl.found=true`, ACLs decide only for the resources they
    name: a DENY hides and protects one topic, a PREFIXED ALLOW for another principal
    closes a family of topics to ANONYMOUS, a DENY on a group refuses that group."""
    b = make_broker(authorizer_args("allow.everyone.if.no.acl.found=true"))
    suffix = uuid.uuid4().hex[:6]
    secret, public, staff, other = f"secret-{suffix}", f"public-{suffix}", f"staff-{suffix}", f"other-{suffix}"
    create_topics(b.bootstrap, secret, public, staff, other)
    for t in (secret, public, staff, other):
        assert produce_one(b.bootstrap, t) is None

    created = acl_tool(
        "create",
        b.bootstrap,
        acl("TOPIC", "LITERAL", secret, ANON, "*", "ALL", "DENY"),
        acl("TOPIC", "PREFIXED", "staff-", "User:alice", "*", "WRITE", "ALLOW"),
        acl("GROUP", "LITERAL", f"blocked-{suffix}", ANON, "*", "READ", "DENY"),
        acl("TOPIC", "LITERAL", public, ANON, "127.0.0.1", "READ", "ALLOW"),
        # Kafka refuses the cluster resource under another name.
        acl("CLUSTER", "LITERAL", "not-the-cluster", ANON, "*", "ALTER", "ALLOW"),
    )
    assert created["results"][:4] == [None, None, None, None]
    assert created["results"][4] is not None and "InvalidRequestException" in created["results"][4]

    every = acl_tool("describe", b.bootstrap, acl("ANY", "ANY", "-", "-", "-", "ANY", "ANY"))["acls"]
    assert len(every) == 4
    # MATCH: every ACL that applies to the topic staff-x (the prefixed one).
    matching = acl_tool("describe", b.bootstrap, acl("TOPIC", "MATCH", f"staff-{suffix}", "-", "-", "ANY", "ANY"))["acls"]
    assert matching == [acl("TOPIC", "PREFIXED", "staff-", "User:alice", "*", "WRITE", "ALLOW")]
    denies = acl_tool("describe", b.bootstrap, acl("ANY", "ANY", "-", ANON, "-", "ANY", "DENY"))["acls"]
    assert len(denies) == 2

    # Producing: a DENY ALL and a prefix granted to someone else refuse; no ACL allows.
    assert produce_one(b.bootstrap, secret) == "TOPIC_AUTHORIZATION_FAILED"
    assert produce_one(b.bootstrap, staff) == "TOPIC_AUTHORIZATION_FAILED"
    assert produce_one(b.bootstrap, other) is None
    # An ALLOW READ from this host covers reading `public`; nothing covers writing it now.
    assert produce_one(b.bootstrap, public) == "TOPIC_AUTHORIZATION_FAILED"

    # Metadata hides the denied topic from a listing; the others stay.
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    listed = set(admin.list_topics(timeout=TIMEOUT_S).topics)
    assert secret not in listed and public in listed and other in listed

    # Consuming: reading a denied topic and joining a denied group fail with Kafka's errors.
    assert consume_error(b.bootstrap, public, f"readers-{suffix}") is None
    assert consume_error(b.bootstrap, secret, f"readers2-{suffix}") == "TOPIC_AUTHORIZATION_FAILED"
    assert consume_error(b.bootstrap, public, f"blocked-{suffix}") == "GROUP_AUTHORIZATION_FAILED"

    # Deleting by filter: the topic DENY goes, and the topic is open again.
    deleted = acl_tool("delete", b.bootstrap, acl("TOPIC", "LITERAL", secret, "-", "-", "ANY", "ANY"))["deleted"]
    assert deleted == [[acl("TOPIC", "LITERAL", secret, ANON, "*", "ALL", "DENY")]]
    assert produce_one(b.bootstrap, secret) is None

    # Every denial left an audit line naming principal, host, operation and resource.
    log = b.log_path.read_text(errors="replace")
    audit = [line for line in log.splitlines() if "strom::audit" in line and secret in line]
    assert audit, f"no audit line for {secret}:\n{b.log_tail()}"
    # librdkafka learns of the denial from Metadata (DESCRIBE) before it would Produce.
    assert all("principal=User:ANONYMOUS" in a and "host=127.0.0.1" in a and "resource_type=Topic" in a for a in audit)
    assert any("operation=DESCRIBE" in a for a in audit), audit

    # Once a DENY names the cluster's ALTER, ANONYMOUS may no longer change ACLs.
    assert acl_tool("create", b.bootstrap, acl("CLUSTER", "LITERAL", "kafka-cluster", ANON, "*", "ALTER", "DENY"))["results"] == [None]
    refused = acl_tool("create", b.bootstrap, acl("TOPIC", "LITERAL", "x", ANON, "*", "READ", "ALLOW"))["results"][0]
    assert refused is not None and "ClusterAuthorizationException" in refused


def test_acls_survive_a_restart(make_broker, acl_tool):
    """ACLs are metadata-log records: a restarted broker enforces them."""
    b = make_broker(authorizer_args("allow.everyone.if.no.acl.found=true"))
    topic = f"kept-{uuid.uuid4().hex[:6]}"
    create_topics(b.bootstrap, topic)
    assert acl_tool("create", b.bootstrap, acl("TOPIC", "PREFIXED", "kept-", ANON, "*", "WRITE", "DENY"))["results"] == [None]
    assert produce_one(b.bootstrap, topic) == "TOPIC_AUTHORIZATION_FAILED"
    b.stop()
    b.start()
    assert acl_tool("describe", b.bootstrap, acl("ANY", "ANY", "-", "-", "-", "ANY", "ANY"))["acls"] == [
        acl("TOPIC", "PREFIXED", "kept-", ANON, "*", "WRITE", "DENY")
    ]
    assert produce_one(b.bootstrap, topic) == "TOPIC_AUTHORIZATION_FAILED"


def test_default_deny_without_acls(make_broker, acl_tool):
    """With the authorizer and no ACLs (allow.everyone.if.no.acl.found=false, Kafka's
    default) ANONYMOUS may do nothing: kafka-python and confluent-kafka get Kafka's errors."""
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic as KpNewTopic
    from kafka.errors import KafkaError as KpError, TopicAuthorizationFailedError

    b = make_broker(authorizer_args())
    topic = f"closed-{uuid.uuid4().hex[:6]}"
    with pytest.raises(KafkaException) as created:
        create_topics(b.bootstrap, topic)
    assert created.value.args[0].name() == "TOPIC_AUTHORIZATION_FAILED"

    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        with pytest.raises(KpError) as refused:
            admin.create_topics([KpNewTopic(topic, 1, 1)])
        assert "TopicAuthorizationFailed" in type(refused.value).__name__ or "TOPIC_AUTHORIZATION_FAILED" in str(refused.value)
    finally:
        admin.close()

    producer = KafkaProducer(bootstrap_servers=b.bootstrap, max_block_ms=10000, request_timeout_ms=10000)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(topic, b"v").get(timeout=TIMEOUT_S)
    finally:
        producer.close(timeout=5)

    described = acl_tool("describe", b.bootstrap, acl("ANY", "ANY", "-", "-", "-", "ANY", "ANY"))
    assert "ClusterAuthorizationException" in described.get("error", "")
    assert AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=TIMEOUT_S).topics.keys() <= {"__consumer_offsets"}


def test_super_user_passes_everything(make_broker, acl_tool):
    """A principal in `super.users` passes every check, DENY ACLs included."""
    b = make_broker(authorizer_args(f"super.users=User:admin;{ANON}"))
    topic = f"root-{uuid.uuid4().hex[:6]}"
    create_topics(b.bootstrap, topic)
    assert acl_tool("create", b.bootstrap, acl("TOPIC", "LITERAL", "*", ANON, "*", "ALL", "DENY"))["results"] == [None]
    assert produce_one(b.bootstrap, topic) is None
    assert consume_error(b.bootstrap, topic, "root-group") is None


def test_other_authorizer_classes_are_refused_at_start():
    """Only Kafka's StandardAuthorizer is served: anything else stops start-up with a
    message naming the key and the accepted class."""
    b = Broker(strom_binary(), ["--override", "authorizer.class.name=kafka.security.authorizer.AclAuthorizer"])
    try:
        with pytest.raises(RuntimeError) as failed:
            b.start()
        assert "authorizer.class.name" in str(failed.value) and AUTHORIZER in str(failed.value)
    finally:
        b.stop()
        b.cleanup()


def test_acls_without_authorizer_are_security_disabled(broker, acl_tool):
    """Without an authorizer the ACL APIs answer SECURITY_DISABLED, as Kafka's."""
    out = acl_tool("describe", broker.bootstrap, acl("ANY", "ANY", "-", "-", "-", "ANY", "ANY"))
    assert "SecurityDisabledException" in out["error"]


# --- Per-user tests: these need SASL PLAIN (users from the listener's JAAS config). ---

SASL_USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}


def sasl_broker_args():
    # The broker's own login (username/password) is what it uses on the inter-broker
    # listener, SASL_PLAINTEXT here: the super user, as Kafka requires of that module.
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        + f'username="admin" password="{SASL_USERS["admin"]}" '
        + " ".join(f'user_{u}="{p}"' for u, p in SASL_USERS.items())
        + ";"
    )
    return authorizer_args(
        "super.users=User:admin",
        "sasl.enabled.mechanisms=PLAIN",
        f"listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}",
    )


def sasl_conf(user):
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN", "sasl.username": user, "sasl.password": SASL_USERS[user]}


def test_per_user_acls_with_sasl_plain(broker, acl_tool):
    """alice may write `orders-*` and read them in group `billing`; bob may only read; the
    admin (a super user) grants it all through the Java Admin. A broker that does not serve
    SASL (SaslHandshake) stops the test as an expected failure."""
    missing = kafka_wire.missing_apis(broker.apis, ["SaslHandshake", "SaslAuthenticate"])
    if missing:
        pytest.xfail(f"broker does not serve {', '.join(missing)} yet")
    b = Broker(strom_binary())
    b.extra_args = sasl_broker_args() + [
        "--override",
        "listeners=SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "--override",
        "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "--override",
        "inter.broker.listener.name=SASL_PLAINTEXT",
    ]
    try:
        b.start()
        admin_props = f"security.protocol=SASL_PLAINTEXT;sasl.mechanism=PLAIN;sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"{SASL_USERS['admin']}\";"
        topic = f"orders-{uuid.uuid4().hex[:6]}"
        create_topics(b.bootstrap, topic, conf=sasl_conf("admin"))
        assert acl_tool(
            "create",
            b.bootstrap,
            acl("TOPIC", "PREFIXED", "orders-", "User:alice", "*", "WRITE", "ALLOW"),
            acl("TOPIC", "PREFIXED", "orders-", "User:alice", "*", "READ", "ALLOW"),
            acl("TOPIC", "PREFIXED", "orders-", "User:bob", "*", "READ", "ALLOW"),
            acl("GROUP", "LITERAL", "billing", "User:alice", "*", "READ", "ALLOW"),
            client_props=admin_props,
        )["results"] == [None] * 4
        assert produce_one(b.bootstrap, topic, conf=sasl_conf("alice")) is None
        assert produce_one(b.bootstrap, topic, conf=sasl_conf("bob")) == "TOPIC_AUTHORIZATION_FAILED"
        assert consume_error(b.bootstrap, topic, "billing", conf=sasl_conf("alice")) is None
        assert consume_error(b.bootstrap, topic, "billing", conf=sasl_conf("bob")) == "GROUP_AUTHORIZATION_FAILED"
        # bob cannot change ACLs (no CLUSTER ALTER).
        bob_props = admin_props.replace('username="admin"', 'username="bob"').replace(SASL_USERS["admin"], SASL_USERS["bob"])
        refused = acl_tool("create", b.bootstrap, acl("TOPIC", "LITERAL", "x", "User:bob", "*", "ALL", "ALLOW"), client_props=bob_props)
        assert "ClusterAuthorizationException" in refused["results"][0]
    finally:
        b.stop()
        b.cleanup()


def test_admin_apis_checked(make_broker, acl_tool):
    """Configs, groups and cluster APIs check Kafka's operations: a DENY on a topic's
    DESCRIBE_CONFIGS / ALTER_CONFIGS refuses describing and altering its configs, a DENY on
    a group's DESCRIBE hides it from ListGroups and refuses DescribeGroups, a DENY on its
    DELETE refuses DeleteGroups, and a DENY on the cluster's DESCRIBE refuses DescribeLogDirs."""
    from confluent_kafka import ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType as Rt

    b = make_broker(authorizer_args("allow.everyone.if.no.acl.found=true"))
    suffix = uuid.uuid4().hex[:6]
    locked, free, group, open_group = f"locked-{suffix}", f"free-{suffix}", f"g-{suffix}", f"og-{suffix}"
    create_topics(b.bootstrap, locked, free)
    assert produce_one(b.bootstrap, free) is None
    for g in (group, open_group):
        assert consume_error(b.bootstrap, free, g) is None
    assert acl_tool(
        "create",
        b.bootstrap,
        acl("TOPIC", "LITERAL", locked, ANON, "*", "DESCRIBE_CONFIGS", "DENY"),
        acl("TOPIC", "LITERAL", locked, ANON, "*", "ALTER_CONFIGS", "DENY"),
        acl("GROUP", "LITERAL", group, ANON, "*", "DESCRIBE", "DENY"),
        acl("GROUP", "LITERAL", group, ANON, "*", "DELETE", "DENY"),
        acl("CLUSTER", "LITERAL", "kafka-cluster", ANON, "*", "DESCRIBE", "DENY"),
    )["results"] == [None] * 5

    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    # Configs.
    futures = admin.describe_configs([ConfigResource(Rt.TOPIC, locked), ConfigResource(Rt.TOPIC, free)])
    results = {r.name: f for r, f in futures.items()}
    with pytest.raises(KafkaException) as denied:
        results[locked].result(timeout=TIMEOUT_S)
    assert denied.value.args[0].name() == "TOPIC_AUTHORIZATION_FAILED"
    assert "retention.ms" in results[free].result(timeout=TIMEOUT_S)
    futures = admin.incremental_alter_configs(
        [ConfigResource(Rt.TOPIC, locked, incremental_configs=[ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])]
    )
    with pytest.raises(KafkaException) as denied:
        list(futures.values())[0].result(timeout=TIMEOUT_S)
    assert denied.value.args[0].name() == "TOPIC_AUTHORIZATION_FAILED"

    # Groups: ListGroups (no CLUSTER DESCRIBE) lists only the groups ANONYMOUS may describe.
    listed = {g.group_id for g in admin.list_consumer_groups().result(timeout=TIMEOUT_S).valid}
    assert open_group in listed and group not in listed
    described = admin.describe_consumer_groups([group])[group]
    with pytest.raises(KafkaException) as denied:
        described.result(timeout=TIMEOUT_S)
    assert denied.value.args[0].name() == "GROUP_AUTHORIZATION_FAILED"
    deleted = admin.delete_consumer_groups([group])[group]
    with pytest.raises(KafkaException) as denied:
        deleted.result(timeout=TIMEOUT_S)
    assert denied.value.args[0].name() == "GROUP_AUTHORIZATION_FAILED"

    # OffsetFetch through list_consumer_group_offsets: the denied group's offsets are refused.
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    with pytest.raises(KafkaException) as denied:
        offsets.result(timeout=TIMEOUT_S)
    assert denied.value.args[0].name() == "GROUP_AUTHORIZATION_FAILED"
    allowed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(open_group)])[open_group].result(timeout=TIMEOUT_S)
    assert any(tp.topic == free and tp.offset >= 0 for tp in allowed.topic_partitions)

    # Cluster DESCRIBE denied: DescribeAcls says so (kafka-acls.sh --list).
    assert "ClusterAuthorizationException" in acl_tool("describe", b.bootstrap, acl("ANY", "ANY", "-", "-", "-", "ANY", "ANY"))["error"]


def test_strom_acls_cli(make_broker, acl_tool):
    """`strom acls add|list|remove` with kafka-acls.sh's flags; what it adds the Java Admin
    sees, and what the Java Admin adds it lists."""
    import json

    b = make_broker(authorizer_args("allow.everyone.if.no.acl.found=true"))

    def strom(*args):
        proc = subprocess.run(
            [str(strom_binary()), "acls", *args, "--bootstrap-server", b.bootstrap, "--output", "json"],
            capture_output=True,
            timeout=TIMEOUT_S * 2,
        )
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        return json.loads(proc.stdout)

    added = strom("add", "--allow-principal", "User:alice", "--operation", "Read", "--operation", "describe-configs", "--topic", "orders")
    assert [(a["operation"], a["permission"]) for a in added] == [("READ", "ALLOW"), ("DESCRIBE_CONFIGS", "ALLOW")]
    strom("add", "--deny-principal", "User:bob", "--deny-host", "10.0.0.9", "--group", "pay", "--resource-pattern-type", "prefixed")
    assert sorted(acl_tool("describe", b.bootstrap, acl("ANY", "ANY", "-", "-", "-", "ANY", "ANY"))["acls"]) == sorted(
        [
            acl("TOPIC", "LITERAL", "orders", "User:alice", "*", "READ", "ALLOW"),
            acl("TOPIC", "LITERAL", "orders", "User:alice", "*", "DESCRIBE_CONFIGS", "ALLOW"),
            acl("GROUP", "PREFIXED", "pay", "User:bob", "10.0.0.9", "ALL", "DENY"),
        ]
    )
    acl_tool("create", b.bootstrap, acl("TOPIC", "PREFIXED", "ord", "User:carol", "*", "WRITE", "ALLOW"))
    listed = strom("list", "--topic", "orders", "--resource-pattern-type", "match")
    assert {(a["principal"], a["pattern_type"]) for a in listed} == {("User:alice", "LITERAL"), ("User:carol", "PREFIXED")}
    assert len(strom("list")) == 4
    assert len(strom("list", "--principal", "User:bob")) == 1
    removed = strom("remove", "--topic", "orders")
    assert len(removed) == 2
    assert {a["principal"] for a in strom("list")} == {"User:bob", "User:carol"}
