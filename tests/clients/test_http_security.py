"""The broker's HTTP listener over TLS with HTTP Basic authentication against the broker's
SASL users (Python `requests` as the HTTP client, certificates checked against the test CA),
the console's actions authorized as the authenticated principal by the broker's ACLs, and
the in-process schema registry over HTTPS with Basic authentication used by confluent-kafka's
SchemaRegistryClient and AvroSerializer."""

import html
import json
import re
import time
import uuid

import pytest
import requests
from confluent_kafka import Producer
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                   ResourcePatternType, ResourceType)
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from test_security import SecureBroker, create_topic, monkeypatch_module, pki, sasl_conf  # noqa: F401 (fixtures)

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
TIMEOUT_S = 30


@pytest.fixture(scope="module")
def https_broker(pki):
    b = SecureBroker(pki, extra={
        "strom.http.listeners": "https://127.0.0.1:{http_port}",
        "strom.http.authentication.method": "BASIC",
        "strom.http.authentication.skip.paths": "/health",
        "authorizer.class.name": AUTHORIZER,
        # The set-up PLAINTEXT listener (ANONYMOUS) and the broker's own requests.
        "super.users": "User:admin;User:ANONYMOUS",
    })
    b.start()
    yield b
    b.stop()
    b.cleanup()


def csrf(session, url):
    page = session.get(url, timeout=TIMEOUT_S)
    assert page.status_code == 200, page.text
    return re.search(r'name=csrf value="([0-9a-f]+)"', page.text).group(1)


def test_https_listener_with_basic_auth(https_broker, pki):
    base = https_broker.http
    ca = str(pki / "ca.crt")
    assert base.startswith("https://")
    # No credentials: asked for them.
    r = requests.get(f"{base}/", verify=ca, timeout=TIMEOUT_S)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic realm="), r.headers
    # Wrong password: refused, and counted.
    r = requests.get(f"{base}/metrics", auth=("admin", "wrong"), verify=ca, timeout=TIMEOUT_S)
    assert r.status_code == 401
    # A PLAIN JAAS user and a SCRAM user (from --add-scram) get in; the page names them.
    r = requests.get(f"{base}/", auth=("admin", "admin-secret"), verify=ca, timeout=TIMEOUT_S)
    assert r.status_code == 200 and "User:admin" in r.text, r.text[:500]
    r = requests.get(f"{base}/", auth=("boot", "boot-secret"), verify=ca, timeout=TIMEOUT_S)
    assert r.status_code == 200 and "User:boot" in r.text
    r = requests.get(f"{base}/", auth=("boot", "admin-secret"), verify=ca, timeout=TIMEOUT_S)
    assert r.status_code == 401
    metrics = requests.get(f"{base}/metrics", auth=("admin", "admin-secret"), verify=ca, timeout=TIMEOUT_S).text
    failures = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                   if line.startswith("kafka_server_socket_server_metrics_failed_authentication_total"))
    assert failures >= 2, failures
    # Skipped paths are open; the certificate is the broker's (checked against the CA).
    assert requests.get(f"{base}/health/live", verify=ca, timeout=TIMEOUT_S).status_code == 200
    # Plain HTTP to the TLS port gets no page.
    with pytest.raises(requests.exceptions.RequestException):
        r = requests.get(base.replace("https://", "http://") + "/health/live", timeout=5)
        assert r.status_code != 200


def test_console_actions_run_as_the_authenticated_principal(https_broker, pki):
    base = https_broker.http
    ca = str(pki / "ca.crt")
    alice, admin = requests.Session(), requests.Session()
    for s, user in ((alice, ("alice", "alice-secret")), (admin, ("admin", "admin-secret"))):
        # trust_env off: a CA bundle named in the environment would override verify.
        s.auth, s.verify, s.trust_env = user, ca, False
    topic = f"acl-{uuid.uuid4().hex[:8]}"
    # alice has no ACLs: creating a topic through the console is refused by the authorizer.
    r = alice.post(f"{base}/topics", data={"csrf": csrf(alice, f"{base}/"), "name": topic, "partitions": "1"},
                   timeout=TIMEOUT_S)
    assert r.status_code == 400 and "TOPIC_AUTHORIZATION_FAILED" in r.text, r.text
    # admin (a super user) may.
    r = admin.post(f"{base}/topics", data={"csrf": csrf(admin, f"{base}/"), "name": topic, "partitions": "1"},
                   timeout=TIMEOUT_S)
    assert r.status_code == 200 and f"Created topic {topic}" in r.text, r.text
    r = admin.post(f"{base}/topics/{topic}/produce",
                   data={"csrf": csrf(admin, f"{base}/"), "key": "k", "value": "secret-value"}, timeout=TIMEOUT_S)
    assert r.status_code == 200, r.text
    # alice cannot see the topic, its page or its records...
    assert f"/topics/{topic}\"" not in alice.get(f"{base}/", timeout=TIMEOUT_S).text
    r = alice.get(f"{base}/topics/{topic}/0?offset=0", timeout=TIMEOUT_S)
    assert r.status_code == 403 and "secret-value" not in r.text and "TOPIC_AUTHORIZATION_FAILED" in r.text
    # ...until an ACL allows her to read it (created by admin over SASL_SSL).
    a = AdminClient({"bootstrap.servers": f"127.0.0.1:{https_broker.sasl_port}",
                     **sasl_conf(pki, "PLAIN", "admin", "admin-secret")})
    for op in (AclOperation.READ, AclOperation.DESCRIBE):
        binding = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice", "*",
                             op, AclPermissionType.ALLOW)
        for f in a.create_acls([binding]).values():
            f.result(timeout=TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        r = alice.get(f"{base}/topics/{topic}/0?offset=0", timeout=TIMEOUT_S)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200 and "secret-value" in r.text, r.text[:500]
    # Reading is not writing: alice still may not produce.
    r = alice.post(f"{base}/topics/{topic}/produce",
                   data={"csrf": csrf(alice, f"{base}/"), "key": "k", "value": "v"}, timeout=TIMEOUT_S)
    assert r.status_code == 400 and "TOPIC_AUTHORIZATION_FAILED" in r.text, r.text


USER = json.dumps({"type": "record", "name": "User", "namespace": "shop",
                   "fields": [{"name": "name", "type": "string"}]})


def test_registry_over_https_with_basic_auth(pki):
    b = SecureBroker(pki, extra={
        "schema.registry.enable": "true",
        "schema.registry.listeners": "https://127.0.0.1:{registry_port}",
        # No schema.registry.ssl.*: the in-process registry takes the broker's ssl.* keys.
        "schema.registry.authentication.method": "BASIC",
    })
    b.start()
    url = f"https://127.0.0.1:{b.registry_port}"
    try:
        good = SchemaRegistryClient({"url": url, "ssl.ca.location": str(pki / "ca.crt"),
                                     "basic.auth.user.info": "alice:alice-secret"})
        deadline = time.monotonic() + 60
        while True:
            try:
                good.get_subjects()
                break
            except Exception:
                assert time.monotonic() < deadline, b.log_tail()
                time.sleep(0.2)
        subject = f"secure-{uuid.uuid4().hex[:6]}"
        schema_id = good.register_schema(subject, Schema(USER, "AVRO"))
        assert good.get_schema(schema_id).schema_str
        # The serializer path too (SCRAM user from --add-scram).
        scram = SchemaRegistryClient({"url": url, "ssl.ca.location": str(pki / "ca.crt"),
                                      "basic.auth.user.info": "boot:boot-secret"})
        value = AvroSerializer(scram, USER)({"name": "ada"}, SerializationContext(subject, MessageField.VALUE))
        assert value[0] == 0
        # Wrong password and no credentials: 401.
        bad = SchemaRegistryClient({"url": url, "ssl.ca.location": str(pki / "ca.crt"),
                                    "basic.auth.user.info": "alice:nope"})
        with pytest.raises(SchemaRegistryError) as e:
            bad.get_subjects()
        assert e.value.http_status_code == 401
        r = requests.get(f"{url}/subjects", verify=str(pki / "ca.crt"), timeout=TIMEOUT_S)
        assert r.status_code == 401 and r.json()["error_code"] == 401
        # Untrusted server certificate: the client refuses.
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{url}/subjects", auth=("alice", "alice-secret"), timeout=TIMEOUT_S)
        # The console still reaches the registry in-process (no credentials of its own).
        p = Producer({"bootstrap.servers": b.bootstrap})
        topic = subject
        create_topic(b, topic)
        p.produce(topic, value=value, partition=0)
        assert p.flush(TIMEOUT_S) == 0
        del p
        page = requests.get(f"{b.http}/topics/{topic}/0?offset=0", timeout=TIMEOUT_S).text
        page = html.unescape(re.sub(r"<[^>]+>", "", page))
        assert f"AVRO · schema id {schema_id} · {subject} v1" in page and '"name": "ada"' in page, page[-2000:]
    finally:
        b.stop()
        b.cleanup()


def test_standalone_registry_checks_basic_users_against_the_cluster(pki):
    """`strom schema-registry` with `authentication.method=BASIC` (Confluent's key, as the
    in-process registry) accepts the same users: it authenticates to the cluster's SASL_SSL
    listener as the Basic user (PLAIN, then SCRAM-SHA-256), so a PLAIN JAAS user and a SCRAM
    user of the metadata log get in, a wrong password or unknown user is 401, and the
    broker audits the refused attempts. A password changed in the cluster stops working
    once the registry's remembered check (5 s) runs out."""
    from test_schema_registry import Registry
    b = SecureBroker(pki)
    b.start()
    registry = Registry(b.bootstrap, f"_schemas-{uuid.uuid4().hex[:6]}", f"g-{uuid.uuid4().hex[:6]}")
    registry.args += [
        "--override", "authentication.method=BASIC",
        "--override", f"strom.authentication.kafka.bootstrap.servers=127.0.0.1:{b.sasl_port}",
        "--override", "strom.authentication.kafka.security.protocol=SASL_SSL",
        "--override", "strom.authentication.kafka.ssl.truststore.type=PEM",
        "--override", f"strom.authentication.kafka.ssl.truststore.location={pki / 'ca.crt'}",
    ]
    try:
        registry.start()
        plain = SchemaRegistryClient({"url": registry.url, "basic.auth.user.info": "alice:alice-secret"})
        deadline = time.monotonic() + 60
        while True:
            try:
                plain.get_subjects()
                break
            except SchemaRegistryError as e:
                assert e.http_status_code != 401, "a PLAIN JAAS user was refused"
                assert time.monotonic() < deadline, registry.log_text()[-3000:]
                time.sleep(0.2)
        subject = f"standalone-{uuid.uuid4().hex[:6]}"
        assert plain.register_schema(subject, Schema(USER, "AVRO")) > 0
        # The SCRAM user added with --add-scram.
        scram = SchemaRegistryClient({"url": registry.url, "basic.auth.user.info": "boot:boot-secret"})
        assert subject in scram.get_subjects()
        for user_info in ("alice:nope", "boot:nope", "nobody:x"):
            bad = SchemaRegistryClient({"url": registry.url, "basic.auth.user.info": user_info})
            with pytest.raises(SchemaRegistryError) as e:
                bad.get_subjects()
            assert e.value.http_status_code == 401, user_info
        r = requests.get(f"{registry.url}/subjects", timeout=TIMEOUT_S)
        assert r.status_code == 401 and r.json()["error_code"] == 401
        assert "authentication failed" in registry.log_text()

        # boot's password changes in the cluster: a successful check is remembered for at
        # most 5 s (CHECK_CACHE_TTL), so the old password stops working within that and the
        # new one works.
        from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                           UserScramCredentialUpsertion)
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        upsert = UserScramCredentialUpsertion("boot", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                              b"boot-new-secret")
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(TIMEOUT_S)
        changed = time.monotonic()
        old = SchemaRegistryClient({"url": registry.url, "basic.auth.user.info": "boot:boot-secret"})
        refused_after = None
        while time.monotonic() < changed + 5 + TIMEOUT_S:
            try:
                old.get_subjects()
            except SchemaRegistryError as e:
                assert e.http_status_code == 401
                refused_after = time.monotonic() - changed
                break
            time.sleep(0.5)
        assert refused_after is not None and refused_after <= 5 + 5, refused_after
        new = SchemaRegistryClient({"url": registry.url, "basic.auth.user.info": "boot:boot-new-secret"})
        assert subject in new.get_subjects()
    finally:
        registry.stop()
        b.stop()
        b.cleanup()


def test_standalone_registry_basic_needs_a_sasl_check(pki):
    """A standalone registry whose Basic check would not be SASL stops at start, naming the key."""
    from test_schema_registry import Registry
    registry = Registry("127.0.0.1:1", "_schemas", "g")
    registry.args += ["--override", "authentication.method=BASIC",
                      "--override", "strom.authentication.kafka.security.protocol=PLAINTEXT"]
    with pytest.raises(RuntimeError) as e:
        registry.start()
    assert "strom.authentication.kafka.security.protocol" in str(e.value)
