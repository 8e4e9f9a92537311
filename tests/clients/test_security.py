"""TLS and SASL with real clients: confluent-kafka (librdkafka), kafka-python, kafkajs and the
Java client produce and consume over SSL, SASL_SSL with PLAIN and SCRAM-SHA-256/512, and
mutual TLS; a wrong password, an untrusted certificate and a client without a certificate
are refused; a plaintext client on a TLS port is closed while the broker carries on; the
broker's certificate is replaced on disk and new connections get the new one.

Certificates are made at test time with the `openssl` command (EC P-256 keys, unencrypted
PKCS#8, a throwaway CA per run); nothing secret is committed. Encrypted keys
(`ssl.key.password`) are in test_tls_keys.py.
"""

import json
import pathlib
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import urllib.request
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
from kafka import KafkaConsumer, KafkaProducer

from cluster_fixtures import make_cluster  # noqa: F401 (fixture)
from conftest import Broker, strom_binary

TIMEOUT_S = 30
PLAIN_JAAS = (
    'org.apache.kafka.common.security.plain.PlainLoginModule required '
    'user_admin="admin-secret" user_alice="alice-secret";'
)


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_cert(d, name, subject, ca, san=None):
    """An EC key and a certificate signed by `ca` (a (cert, key) pair of file names)."""
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{name}.key", cwd=d)
    openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        + ("extendedKeyUsage=serverAuth,clientAuth\n")
        + (f"subjectAltName={san}\n" if san else "")
    )
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
            "-days", "2", "-sha256", "-extfile", ext.name, "-out", f"{name}.crt", cwd=d)
    # Kafka's PEM keystore: the key and the chain in one file.
    (d / f"{name}.pem").write_text((d / f"{name}.key").read_text() + (d / f"{name}.crt").read_text())


def make_ca(d, name, subject):
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{name}.key", cwd=d)
    openssl("req", "-x509", "-new", "-key", f"{name}.key", "-subj", subject, "-days", "2", "-sha256",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", f"{name}.crt", cwd=d)
    return (f"{name}.crt", f"{name}.key")


@pytest.fixture(scope="module")
def pki():
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make test certificates")
    d = pathlib.Path(tempfile.mkdtemp(prefix="strom-pki-"))
    ca = make_ca(d, "ca", "/CN=Strom Test CA")
    make_cert(d, "server", "/CN=localhost/O=Strom", ca, san="IP:127.0.0.1,DNS:localhost")
    make_cert(d, "server2", "/CN=rotated/O=Strom", ca, san="IP:127.0.0.1,DNS:localhost")
    make_cert(d, "alice", "/O=Strom/OU=eng/CN=alice", ca)
    rogue = make_ca(d, "rogue", "/CN=Rogue CA")
    make_cert(d, "mallory", "/O=Strom/OU=eng/CN=mallory", rogue)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class SecureBroker(Broker):
    """A broker with PLAINTEXT (readiness, set-up), SSL, SASL_SSL and MTLS (SSL, client
    certificates required) listeners."""

    def __init__(self, pki, extra=()):
        super().__init__(strom_binary())
        self.pki, self.extra = pki, dict(extra)
        self.keystore = self.data_dir.parent / f"{self.data_dir.name}-server.pem"
        shutil.copy(pki / "server.pem", self.keystore)
        # Every port a placeholder, picked by Broker.pick_ports (and picked again by start
        # when one was taken before the broker bound it).
        overrides = {
            "listeners": "PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port},"
                         "SSL://127.0.0.1:{ssl_port},SASL_SSL://127.0.0.1:{sasl_port},"
                         "MTLS://127.0.0.1:{mtls_port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,MTLS:SSL",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(pki / "ca.crt"),
            "listener.name.mtls.ssl.client.auth": "required",
            "listener.name.mtls.ssl.principal.mapping.rules": "RULE:^.*CN=([a-z]+).*$/$1/L,DEFAULT",
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": PLAIN_JAAS,
            "connection.failed.authentication.delay.ms": "100",
            "strom.http.listeners": "http://127.0.0.1:{http_port}",
        }
        overrides.update(self.extra)
        self.http_template = overrides["strom.http.listeners"]
        for key, value in overrides.items():
            self.extra_args += ["--override", f"{key}={value}"]
        # The first SCRAM user, as kafka-storage.sh format --add-scram makes it.
        self.extra_args += ["--add-scram", "SCRAM-SHA-256=[name=boot,password=boot-secret]"]
        self.pick_ports()

    @property
    def http(self):
        """The HTTP listener's URL, its port filled in."""
        return self.expand(self.http_template)

    def metric(self, name):
        with urllib.request.urlopen(f"{self.http}/metrics", timeout=10) as r:
            text = r.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + "{") or line.startswith(name + " "))


@pytest.fixture(scope="module")
def secure(pki, monkeypatch_module):
    # The connection's debug line names each authenticated principal.
    monkeypatch_module.setenv("RUST_LOG", "warn,strom=info,strom_broker=info,strom_broker::connection=debug,strom::audit=info")
    b = SecureBroker(pki)
    b.start()
    yield b
    b.stop()
    b.cleanup()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def ssl_conf(pki, **extra):
    return {"security.protocol": "SSL", "ssl.ca.location": str(pki / "ca.crt"), **extra}


def sasl_conf(pki, mechanism, user, password):
    return {"security.protocol": "SASL_SSL", "ssl.ca.location": str(pki / "ca.crt"),
            "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password}


def create_topic(broker, topic):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT_S)


def ck_roundtrip(bootstrap, conf, topic, n=5):
    """Produces n records with confluent-kafka and reads them back with a group."""
    p = Producer({"bootstrap.servers": bootstrap, **conf})
    for i in range(n):
        p.produce(topic, key=b"k%d" % i, value=b"v%d" % i)
    assert p.flush(TIMEOUT_S) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", **conf})
    c.subscribe([topic])
    got, deadline = [], time.monotonic() + TIMEOUT_S
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    return got


def ck_refused(bootstrap, conf):
    """A confluent-kafka client that must fail to connect or authenticate: returns the errors
    librdkafka reported (at least one), after checking that metadata never arrives."""
    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "error_cb": errors.append, **conf})
    deadline = time.monotonic() + TIMEOUT_S
    while not errors and time.monotonic() < deadline:
        p.poll(0.2)
    assert errors, "no error reported"
    with pytest.raises(KafkaException):
        p.list_topics(timeout=2)
    return [e.str() for e in errors]


def test_confluent_kafka_over_ssl(secure, pki, topic_name):
    create_topic(secure, topic_name)
    got = ck_roundtrip(f"127.0.0.1:{secure.ssl_port}", ssl_conf(pki), topic_name)
    assert got == [b"v%d" % i for i in range(5)]


def test_metadata_advertises_the_listener_asked(secure, pki, topic_name):
    create_topic(secure, topic_name)
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{secure.ssl_port}", **ssl_conf(pki)})
    brokers = admin.list_topics(timeout=TIMEOUT_S).brokers
    assert [b.port for b in brokers.values()] == [secure.ssl_port]


def test_plain_over_sasl_ssl_and_wrong_password(secure, pki, topic_name):
    create_topic(secure, topic_name)
    bootstrap = f"127.0.0.1:{secure.sasl_port}"
    got = ck_roundtrip(bootstrap, sasl_conf(pki, "PLAIN", "alice", "alice-secret"), topic_name)
    assert len(got) == 5
    failed_before = secure.metric("kafka_server_socket_server_metrics_failed_authentication_total")
    errors = ck_refused(bootstrap, sasl_conf(pki, "PLAIN", "alice", "wrong"))
    assert any("Authentication failed" in e for e in errors), errors
    assert secure.metric("kafka_server_socket_server_metrics_failed_authentication_total") > failed_before
    assert "authentication failed" in secure.log_tail(200)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_users_from_the_metadata_log(secure, pki, topic_name, mechanism):
    """An admin (PLAIN) creates a SCRAM user with AlterUserScramCredentials; the user then
    produces and consumes; DescribeUserScramCredentials shows the mechanism and iterations,
    never the password; a wrong password is refused."""
    create_topic(secure, topic_name)
    bootstrap = f"127.0.0.1:{secure.sasl_port}"
    admin = AdminClient({"bootstrap.servers": bootstrap, **sasl_conf(pki, "PLAIN", "admin", "admin-secret")})
    kind = ScramMechanism.SCRAM_SHA_256 if mechanism.endswith("256") else ScramMechanism.SCRAM_SHA_512
    user = f"bob-{mechanism[-3:]}"
    futures = admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion(user, ScramCredentialInfo(kind, 8192), b"bob-secret")])
    futures[user].result(TIMEOUT_S)
    described = admin.describe_user_scram_credentials([user])[user].result(TIMEOUT_S)
    infos = described.scram_credential_infos
    assert [(i.mechanism, i.iterations) for i in infos] == [(kind, 8192)]
    got = ck_roundtrip(bootstrap, sasl_conf(pki, mechanism, user, "bob-secret"), topic_name)
    assert len(got) == 5
    errors = ck_refused(bootstrap, sasl_conf(pki, mechanism, user, "not-bob"))
    assert any("Authentication failed" in e for e in errors), errors


def test_kafka_python_ssl_and_sasl_plain(secure, pki, topic_name):
    create_topic(secure, topic_name)
    for port, extra in [
        (secure.ssl_port, {"security_protocol": "SSL"}),
        (secure.sasl_port, {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN",
                            "sasl_plain_username": "alice", "sasl_plain_password": "alice-secret"}),
    ]:
        common = {"bootstrap_servers": f"127.0.0.1:{port}", "ssl_cafile": str(pki / "ca.crt"), **extra}
        producer = KafkaProducer(**common)
        producer.send(topic_name, b"kp-%d" % port).get(timeout=TIMEOUT_S)
        producer.close()
    consumer = KafkaConsumer(topic_name, bootstrap_servers=f"127.0.0.1:{secure.ssl_port}",
                             security_protocol="SSL", ssl_cafile=str(pki / "ca.crt"),
                             auto_offset_reset="earliest", consumer_timeout_ms=15000)
    values = sorted(m.value for m in consumer)
    consumer.close()
    assert values == sorted([b"kp-%d" % secure.ssl_port, b"kp-%d" % secure.sasl_port])


def test_kafka_python_scram_sha_512(secure, pki, topic_name):
    create_topic(secure, topic_name)
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{secure.sasl_port}",
                         **sasl_conf(pki, "PLAIN", "admin", "admin-secret")})
    admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
        "kp", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"kp-secret")])["kp"].result(TIMEOUT_S)
    common = {"bootstrap_servers": f"127.0.0.1:{secure.sasl_port}", "ssl_cafile": str(pki / "ca.crt"),
              "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
              "sasl_plain_username": "kp", "sasl_plain_password": "kp-secret"}
    producer = KafkaProducer(**common)
    producer.send(topic_name, b"scram").get(timeout=TIMEOUT_S)
    producer.close()
    consumer = KafkaConsumer(topic_name, auto_offset_reset="earliest", consumer_timeout_ms=15000, **common)
    assert [m.value for m in consumer] == [b"scram"]
    consumer.close()


def test_kafkajs_ssl_and_sasl(secure, pki, js_tool, topic_name):
    create_topic(secure, topic_name)
    ca = (pki / "ca.crt").read_text()
    records = [{"key": None, "value": "a2pz", "headers": []}]  # base64 "kjs"
    for port, extra in [
        (secure.ssl_port, {"ssl": {"ca": [ca]}}),
        (secure.sasl_port, {"ssl": {"ca": [ca]}, "sasl": {"mechanism": "plain", "username": "alice", "password": "alice-secret"}}),
    ]:
        out = js_tool({"op": "produce", "bootstrap": f"127.0.0.1:{port}", "topic": topic_name, "codec": "none",
                       "records": records, **extra})
        assert all(r["error"] == 0 for r in out["result"])
    out = js_tool({"op": "consume", "bootstrap": f"127.0.0.1:{secure.sasl_port}", "topic": topic_name, "count": 2,
                   "groupId": f"g-{topic_name}", "timeoutMs": 20000, "ssl": {"ca": [ca]},
                   "sasl": {"mechanism": "plain", "username": "alice", "password": "alice-secret"}})
    assert len(out["records"]) == 2


def test_java_ssl_and_sasl_plain(secure, pki, java_tool, topic_name, tmp_path):
    create_topic(secure, topic_name)
    records = tmp_path / "records.tsv"
    records.write_text("a2V5\tdmFsdWU=\n")
    ssl_props = ["security.protocol=SSL", "ssl.truststore.type=PEM", f"ssl.truststore.location={pki / 'ca.crt'}"]
    sasl_props = ["security.protocol=SASL_SSL", "ssl.truststore.type=PEM", f"ssl.truststore.location={pki / 'ca.crt'}",
                  "sasl.mechanism=PLAIN",
                  'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="alice-secret";']
    out = java_tool(["produce", f"127.0.0.1:{secure.ssl_port}", topic_name, "none", records, *ssl_props])
    assert len(out["acks"]) == 1, out
    out = java_tool(["produce", f"127.0.0.1:{secure.sasl_port}", topic_name, "none", records, *sasl_props])
    assert len(out["acks"]) == 1, out
    out = java_tool(["consume", f"127.0.0.1:{secure.sasl_port}", topic_name, 2, 30000, *sasl_props])
    assert len(out["records"]) == 2, out


def test_mutual_tls_principal_and_refusals(secure, pki, topic_name):
    create_topic(secure, topic_name)
    bootstrap = f"127.0.0.1:{secure.mtls_port}"
    alice = ssl_conf(pki, **{"ssl.certificate.location": str(pki / "alice.crt"), "ssl.key.location": str(pki / "alice.key")})
    assert len(ck_roundtrip(bootstrap, alice, topic_name, n=2)) == 2
    # The subject O=Strom,OU=eng,CN=alice is printed CN=alice,OU=eng,O=Strom and mapped by the rule.
    deadline = time.monotonic() + 10
    while "principal=User:alice" not in secure.log_tail(400) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "principal=User:alice" in secure.log_tail(400)
    # No certificate, and a certificate from a CA the broker does not trust: refused.
    ck_refused(bootstrap, ssl_conf(pki))
    mallory = ssl_conf(pki, **{"ssl.certificate.location": str(pki / "mallory.crt"), "ssl.key.location": str(pki / "mallory.key")})
    ck_refused(bootstrap, mallory)
    # The client side refuses a broker it does not trust as well.
    ck_refused(f"127.0.0.1:{secure.ssl_port}", {"security.protocol": "SSL", "ssl.ca.location": str(pki / "rogue.crt")})


def api_versions_frame():
    body = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
    return struct.pack(">i", len(body)) + body


def test_plaintext_client_on_tls_port_is_closed_and_others_carry_on(secure, pki, topic_name):
    create_topic(secure, topic_name)
    with socket.create_connection(("127.0.0.1", secure.ssl_port), timeout=10) as s:
        s.sendall(api_versions_frame())
        s.settimeout(10)
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    # Whatever rustls sent (a TLS alert at most), never a Kafka response.
    assert not data or data[0] == 0x15, data
    assert len(ck_roundtrip(f"127.0.0.1:{secure.ssl_port}", ssl_conf(pki), topic_name, n=2)) == 2


def peer_common_name(port, ca):
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            subject = dict(x[0] for x in s.getpeercert()["subject"])
            return subject["commonName"]


def test_certificate_rotation_without_restart(pki):
    b = SecureBroker(pki)
    b.start()
    try:
        assert peer_common_name(b.ssl_port, pki / "ca.crt") == "localhost"
        # Replaced atomically, as cert-manager and friends do.
        tmp = b.keystore.with_suffix(".new")
        shutil.copy(pki / "server2.pem", tmp)
        tmp.replace(b.keystore)
        deadline, name = time.monotonic() + 15, None
        while time.monotonic() < deadline:
            name = peer_common_name(b.ssl_port, pki / "ca.crt")
            if name == "rotated":
                break
            time.sleep(0.3)
        assert name == "rotated"
    finally:
        b.stop()
        b.cleanup()


def test_bad_security_config_fails_start_up_naming_the_key(pki):
    for extra, key in [
        ({"ssl.keystore.type": "JKS"}, "ssl.keystore.type"),
        ({"ssl.keystore.location": str(pki / "nope.pem")}, "ssl.keystore.location"),
        ({"listener.name.sasl_ssl.plain.sasl.jaas.config": "nonsense"}, "listener.name.sasl_ssl.plain.sasl.jaas.config"),
        ({"sasl.enabled.mechanisms": "GSSAPI"}, "sasl.enabled.mechanisms"),
    ]:
        b = SecureBroker(pki, extra)
        try:
            with pytest.raises(RuntimeError) as failed:
                b.start()
            assert key in str(failed.value), str(failed.value)
        finally:
            b.stop()
            b.cleanup()


def strom_cli(bootstrap, args, props, stdin=b""):
    cmd = [str(strom_binary()), *map(str, args), "--bootstrap-server", bootstrap]
    for p in props:
        cmd += ["-X", p]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=60)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def test_strom_cli_over_ssl_and_sasl_ssl(secure, pki, topic_name, tmp_path):
    """The strom CLI with Kafka's client property names: PLAIN over SASL_SSL creates a SCRAM
    user (`strom` reads them through -X and --command-config alike), SCRAM-SHA-512 produces,
    SSL consumes; a wrong password fails with the broker's message."""
    ca = pki / "ca.crt"
    sasl = f"127.0.0.1:{secure.sasl_port}"
    plain = ["security.protocol=SASL_SSL", f"ssl.ca.location={ca}", "sasl.mechanism=PLAIN",
             "sasl.username=alice", "sasl.password=alice-secret"]
    code, out, err = strom_cli(sasl, ["topics", "create", topic_name, "--partitions", 1], plain)
    assert code == 0, err
    admin = AdminClient({"bootstrap.servers": sasl, **sasl_conf(pki, "PLAIN", "admin", "admin-secret")})
    admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
        "cli", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"cli-secret")])["cli"].result(TIMEOUT_S)
    config = tmp_path / "client.properties"
    config.write_text("security.protocol=SASL_SSL\n"
                      f"ssl.truststore.type=PEM\nssl.truststore.location={ca}\n"
                      "sasl.mechanism=SCRAM-SHA-512\n"
                      'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
                      'username="cli" password="cli-secret";\n')
    cmd = [str(strom_binary()), "produce", topic_name, "--bootstrap-server", sasl, "--command-config", str(config)]
    proc = subprocess.run(cmd, input=b"one\ntwo\n", capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    code, out, err = strom_cli(f"127.0.0.1:{secure.ssl_port}",
                               ["consume", topic_name, "--from-beginning", "--max-messages", 2, "--timeout-ms", 20000],
                               ["security.protocol=SSL", f"ssl.ca.location={ca}"])
    assert code == 0, err
    assert out.split() == ["one", "two"], out
    code, out, err = strom_cli(sasl, ["topics", "list"], plain[:-1] + ["sasl.password=nope"])
    assert code != 0
    assert "Invalid username or password" in err, err


def test_add_scram_bootstraps_the_first_user(secure, pki, topic_name):
    """`strom server --add-scram` created `boot` before the broker said it was ready."""
    create_topic(secure, topic_name)
    got = ck_roundtrip(f"127.0.0.1:{secure.sasl_port}", sasl_conf(pki, "SCRAM-SHA-256", "boot", "boot-secret"),
                       topic_name, n=2)
    assert len(got) == 2


def test_a_deleted_add_scram_user_stays_deleted_across_a_restart_with_the_flag(pki, topic_name):
    """Like Kafka's bootstrap records, `strom server --add-scram` users are written once: a
    user deleted with AlterUserScramCredentials is not brought back by a restart that passes
    the same flag."""
    from confluent_kafka.admin import UserScramCredentialDeletion

    b = SecureBroker(pki)
    b.start()
    try:
        sasl = f"127.0.0.1:{b.sasl_port}"
        boot = sasl_conf(pki, "SCRAM-SHA-256", "boot", "boot-secret")
        create_topic(b, topic_name)
        assert len(ck_roundtrip(sasl, boot, topic_name, n=1)) == 1
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        deletion = UserScramCredentialDeletion("boot", ScramMechanism.SCRAM_SHA_256)
        admin.alter_user_scram_credentials([deletion])["boot"].result(TIMEOUT_S)
        assert admin.describe_user_scram_credentials().result(TIMEOUT_S) == {}
        b.stop()
        b.start()
        # The broker applies --add-scram before it says it is ready: nothing was written.
        assert admin.describe_user_scram_credentials().result(TIMEOUT_S) == {}
        errors = ck_refused(sasl, boot)
        assert any("Authentication failed" in e for e in errors), errors
    finally:
        b.stop()
        b.cleanup()


@pytest.mark.cluster
def test_three_nodes_with_sasl_ssl_between_brokers_replicate_and_fail_over(make_cluster, pki, topic_name):
    """Clients and followers both use a SASL_SSL listener (PLAIN; the brokers' own user from
    the listener's login module): an RF 3 topic reaches a full ISR only if the followers'
    TLS and SASL work, and after the leader is killed the records acknowledged with acks=all
    are all read back through a new leader."""
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" '
            'password="broker-secret" user_broker="broker-secret" user_alice="alice-secret";')
    cluster = make_cluster(3, {
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SECURE:SASL_SSL",
        "inter.broker.listener.name": "SECURE",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.secure.plain.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(pki / "server.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(pki / "ca.crt"),
    }, extra_listener="SECURE")
    secure = ",".join(f"127.0.0.1:{n.extra_port}" for n in cluster.nodes.values())
    conf = sasl_conf(pki, "PLAIN", "alice", "alice-secret")
    admin = AdminClient({"bootstrap.servers": secure, **conf})
    admin.create_topics([NewTopic(topic_name, 1, 3, config={"min.insync.replicas": "2"})])[topic_name].result(TIMEOUT_S)
    cluster.wait_isr(topic_name, 3)
    p = Producer({"bootstrap.servers": secure, "acks": "all", "enable.idempotence": True, **conf})
    for i in range(50):
        p.produce(topic_name, value=b"a%d" % i)
    assert p.flush(TIMEOUT_S) == 0
    cluster.wait_isr(topic_name, 3)
    leader = cluster.leader(topic_name, 0)
    cluster[leader].kill()
    cluster.leader(topic_name, 0, not_in=(leader,))
    for i in range(50):
        p.produce(topic_name, value=b"b%d" % i)
    assert p.flush(TIMEOUT_S) == 0
    c = Consumer({"bootstrap.servers": secure, "group.id": f"g-{topic_name}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, **conf})
    c.assign([TopicPartition(topic_name, 0, OFFSET_BEGINNING)])
    got, deadline = [], time.monotonic() + 60
    while len(got) < 100 and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    assert sorted(got) == sorted([b"a%d" % i for i in range(50)] + [b"b%d" % i for i in range(50)])
