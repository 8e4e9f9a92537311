"""SASL/OAUTHBEARER with real clients: librdkafka's built-in unsecured JWT (Kafka's default
unsecured validator on the broker), and JWTs signed here with RS256 and ES256 (Python's
`cryptography`) that the broker checks against a JWKS file (KIP-768), sent by confluent-kafka
(`oauth_cb`) and kafka-python (its token provider) over SASL_SSL. Expired tokens, a wrong
audience, a wrong issuer and a key the JWKS does not hold are refused with Kafka's error JSON
and an audit line saying why; a token's expiry bounds the session, so the client
re-authenticates (KIP-368) with a fresh token on the same connection.

The JWKS can also come from an https endpoint (an `http.server` over TLS with the test CA's
server certificate, served by the test): keys fetched at start-up, a rotated key fetched when
a token names an unknown key id (bounded: once a minute per key id), and a broker whose JWKS
endpoint cannot be reached does not start.

KIP-768's client credentials flow end to end: a token endpoint (`POST /token`, HTTP Basic
client auth, a thread of this process) hands out RS256 JWTs the broker checks against the
https JWKS; the Java client (OAuthBearerLoginCallbackHandler) and confluent-kafka
(`sasl.oauthbearer.method=oidc`) get in, tokens for another audience or expired are
refused, and short-lived tokens are refreshed while sessions re-authenticate.
"""

import base64
import json
import pathlib
import shutil
import ssl
import threading
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from kafka import KafkaConsumer, KafkaProducer
from kafka.net.sasl.oauth import AbstractTokenProvider

from conftest import Broker, free_port, strom_binary
from test_security import pki  # noqa: F401 (fixture)

TIMEOUT_S = 30
AUDIENCE, ISSUER = "strom-test", "https://issuer.strom.test"
UNSECURED_JAAS = ("org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                  'unsecuredValidatorRequiredScope="kafka" unsecuredValidatorAllowableClockSkewMs="1000";')
SECURED_JAAS = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
VALIDATOR = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    """An RSA and an EC P-256 signing key, their JWKS, and a key the JWKS does not hold."""

    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict:
        n = self.rsa.public_key().public_numbers()
        p = self.ec.public_key().public_numbers()
        return {"keys": [
            {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
             "n": b64url(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")), "e": b64url(n.e.to_bytes(3, "big"))},
            {"kty": "EC", "kid": "ec-1", "use": "sig", "crv": "P-256",
             "x": b64url(p.x.to_bytes(32, "big")), "y": b64url(p.y.to_bytes(32, "big"))},
        ]}

    def sign(self, claims: dict, alg="RS256", kid="rsa-1", key=None) -> str:
        header = {"alg": alg, "kid": kid, "typ": "JWT"}
        signed = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}".encode()
        if alg == "ES256":
            r, s = decode_dss_signature((key or self.ec).sign(signed, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            signature = (key or self.rsa).sign(signed, padding.PKCS1v15(), hashes.SHA256())
        return f"{signed.decode()}.{b64url(signature)}"


def claims(sub="svc-alice", lifetime_s=3600, **extra):
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + lifetime_s, "aud": AUDIENCE, "iss": ISSUER,
            "scope": "kafka", **extra}


def unsigned(claims_: dict) -> str:
    return f"{b64url(json.dumps({'alg': 'none'}).encode())}.{b64url(json.dumps(claims_).encode())}."


class OAuthBroker(Broker):
    """PLAINTEXT (set-up), UNSEC (SASL_PLAINTEXT, unsecured tokens with the scope `kafka`
    required) and JWT (SASL_SSL, tokens signed by a key of the JWKS file)."""

    def __init__(self, pki, jwks_url, extra=()):
        super().__init__(strom_binary())
        # Every port a placeholder, picked by Broker.pick_ports (and picked again by start
        # when one was taken before the broker bound it).
        overrides = {
            "listeners": "PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port},"
                         "UNSEC://127.0.0.1:{unsec_port},JWT://127.0.0.1:{jwt_port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,UNSEC:SASL_PLAINTEXT,JWT:SASL_SSL",
            "inter.broker.listener.name": "PLAINTEXT",
            "sasl.enabled.mechanisms": "OAUTHBEARER",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(pki / "server.pem"),
            "listener.name.unsec.oauthbearer.sasl.jaas.config": UNSECURED_JAAS,
            "listener.name.jwt.oauthbearer.sasl.jaas.config": SECURED_JAAS,
            "listener.name.jwt.oauthbearer.sasl.server.callback.handler.class": VALIDATOR,
            "listener.name.jwt.oauthbearer.sasl.oauthbearer.jwks.endpoint.url": jwks_url,
            "sasl.oauthbearer.expected.audience": AUDIENCE,
            "sasl.oauthbearer.expected.issuer": ISSUER,
            "sasl.oauthbearer.clock.skew.seconds": "1",
            "connection.failed.authentication.delay.ms": "50",
            "strom.http.listeners": "http://127.0.0.1:{http_port}",
            **dict(extra),
        }
        for key, value in overrides.items():
            self.extra_args += ["--override", f"{key}={value}"]
        self.pick_ports()

    def metric(self, name):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + "{") or line.startswith(name + " "))

    def wait_log(self, text, timeout_s=TIMEOUT_S):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log_tail(2000):
                return True
            time.sleep(0.2)
        return False


@pytest.fixture(scope="module")
def keys():
    return Keys()


@pytest.fixture(scope="module")
def oauth(pki, keys):
    d = pathlib.Path(tempfile.mkdtemp(prefix="strom-jwks-"))
    jwks = d / "jwks.json"
    jwks.write_text(json.dumps(keys.jwks()))
    mp = pytest.MonkeyPatch()
    mp.setenv("RUST_LOG", "warn,strom=info,strom_broker=info,strom_broker::connection=debug,strom::audit=info")
    b = OAuthBroker(pki, f"file://{jwks}")
    try:
        b.start()
        yield b
    finally:
        mp.undo()
        b.stop()
        b.cleanup()
        shutil.rmtree(d, ignore_errors=True)


def create_topic(broker, topic):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT_S)


def roundtrip(bootstrap, conf, topic, n=3):
    p = Producer({"bootstrap.servers": bootstrap, **conf})
    for i in range(n):
        p.produce(topic, value=b"o%d" % i)
    assert p.flush(TIMEOUT_S) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", **conf})
    c.subscribe([topic])
    got, deadline = [], time.monotonic() + TIMEOUT_S
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    return got


def refused(bootstrap, conf):
    """The errors librdkafka reports for a client that must not get in (at least one), after
    checking that it never gets metadata."""
    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "error_cb": errors.append, **conf})
    deadline = time.monotonic() + TIMEOUT_S
    while not errors and time.monotonic() < deadline:
        p.poll(0.2)
    assert errors, "no error reported"
    with pytest.raises(KafkaException):
        p.list_topics(timeout=2)
    return [e.str() for e in errors]


def ck_token_conf(pki, token_fn):
    return {"security.protocol": "SASL_SSL", "ssl.ca.location": str(pki / "ca.crt"),
            "sasl.mechanism": "OAUTHBEARER", "oauth_cb": token_fn}


def test_librdkafka_unsecured_jwt_with_the_required_scope(oauth, topic_name):
    create_topic(oauth, topic_name)
    bootstrap = f"127.0.0.1:{oauth.unsec_port}"
    conf = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
            "enable.sasl.oauthbearer.unsecure.jwt": True,
            "sasl.oauthbearer.config": "principal=alice scope=kafka lifeSeconds=3600"}
    assert roundtrip(bootstrap, conf, topic_name) == [b"o0", b"o1", b"o2"]
    assert oauth.wait_log("principal=User:alice")
    # Without the required scope: Kafka's insufficient_scope answer, and the audit line.
    no_scope = dict(conf, **{"sasl.oauthbearer.config": "principal=mallory scope=other lifeSeconds=3600"})
    errors = refused(bootstrap, no_scope)
    assert any("insufficient_scope" in e or "uthentication" in e for e in errors), errors
    assert oauth.wait_log("lacks the required")


def test_unsecured_listener_refuses_expired_and_signed_tokens(oauth, keys):
    bootstrap = f"127.0.0.1:{oauth.unsec_port}"
    failed_before = oauth.metric("kafka_server_socket_server_metrics_failed_authentication_total")
    expired = unsigned(claims(lifetime_s=-60))
    conf = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": lambda _: (expired, time.time() + 3600)}
    refused(bootstrap, conf)
    assert oauth.wait_log("the token expired")
    signed = keys.sign(claims())
    refused(bootstrap, dict(conf, oauth_cb=lambda _: (signed, time.time() + 3600)))
    assert oauth.wait_log("alg")
    assert oauth.metric("kafka_server_socket_server_metrics_failed_authentication_total") >= failed_before + 2


@pytest.mark.parametrize("alg,kid", [("RS256", "rsa-1"), ("ES256", "ec-1")])
def test_confluent_kafka_signed_jwt_against_the_jwks(oauth, pki, keys, topic_name, alg, kid):
    create_topic(oauth, topic_name)
    token = keys.sign(claims(sub=f"svc-{alg.lower()}"), alg=alg, kid=kid)
    conf = ck_token_conf(pki, lambda _: (token, time.time() + 3600))
    assert roundtrip(f"127.0.0.1:{oauth.jwt_port}", conf, topic_name) == [b"o0", b"o1", b"o2"]
    assert oauth.wait_log(f"principal=User:svc-{alg.lower()}")


@pytest.mark.parametrize("case,why", [
    ("expired", "the token expired"),
    ("audience", "audience"),
    ("issuer", "issuer"),
    ("rogue key", "does not verify"),
    ("unsigned", "not allowed"),
    ("oversized", "too long"),
    ("garbage", "3 dot-separated"),
])
def test_signed_listener_refuses_bad_tokens_with_the_reason_audited(oauth, pki, keys, case, why):
    token = {
        "expired": lambda: keys.sign(claims(lifetime_s=-120)),
        "audience": lambda: keys.sign(claims(aud="someone-else")),
        "issuer": lambda: keys.sign(claims(iss="https://evil.test")),
        "rogue key": lambda: keys.sign(claims(), key=keys.rogue),
        "unsigned": lambda: unsigned(claims()),
        "oversized": lambda: "a" * 200_000,
        "garbage": lambda: "garbage.token",
    }[case]()
    errors = refused(f"127.0.0.1:{oauth.jwt_port}", ck_token_conf(pki, lambda _: (token, time.time() + 3600)))
    assert errors
    assert oauth.wait_log(why), oauth.log_tail(40)
    # The broker carries on.
    AdminClient({"bootstrap.servers": oauth.bootstrap}).list_topics(timeout=TIMEOUT_S)


class StaticTokens(AbstractTokenProvider):
    def __init__(self, token):
        super().__init__()
        self._token = token

    def token(self):
        return self._token


def test_kafka_python_token_provider_over_sasl_ssl(oauth, pki, keys, topic_name):
    create_topic(oauth, topic_name)
    common = {"bootstrap_servers": f"127.0.0.1:{oauth.jwt_port}", "security_protocol": "SASL_SSL",
              "ssl_cafile": str(pki / "ca.crt"), "sasl_mechanism": "OAUTHBEARER",
              "sasl_oauth_token_provider": StaticTokens(keys.sign(claims(sub="svc-kp")))}
    producer = KafkaProducer(**common)
    producer.send(topic_name, b"kp-oauth").get(timeout=TIMEOUT_S)
    producer.close()
    consumer = KafkaConsumer(topic_name, auto_offset_reset="earliest", consumer_timeout_ms=15000, **common)
    assert [m.value for m in consumer] == [b"kp-oauth"]
    consumer.close()
    assert oauth.wait_log("principal=User:svc-kp")


def test_token_expiry_bounds_the_session_and_the_client_reauthenticates(oauth, pki, keys, topic_name):
    """A token valid for 6 s: with connections.max.reauth.ms unset (0), the SaslAuthenticate
    answer still announces a session of at most 6 s, so librdkafka re-authenticates on the
    same connection (KIP-368) and fetches a new token (oauth_cb) while it keeps producing."""
    create_topic(oauth, topic_name)
    calls = []

    def fresh_token(_config):
        calls.append(time.time())
        return keys.sign(claims(sub="svc-short", lifetime_s=6)), time.time() + 6

    reauth_before = oauth.metric("kafka_server_socket_server_metrics_successful_reauthentication_total")
    p = Producer({"bootstrap.servers": f"127.0.0.1:{oauth.jwt_port}", **ck_token_conf(pki, fresh_token)})
    deadline, sent = time.monotonic() + 40, 0
    while time.monotonic() < deadline:
        p.produce(topic_name, value=b"r%d" % sent)
        sent += 1
        p.poll(0.5)
        reauthenticated = oauth.metric(
            "kafka_server_socket_server_metrics_successful_reauthentication_total") > reauth_before
        if reauthenticated and len(calls) >= 2:
            break
    assert p.flush(TIMEOUT_S) == 0
    assert len(calls) >= 2, calls
    assert oauth.metric("kafka_server_socket_server_metrics_successful_reauthentication_total") > reauth_before
    assert oauth.wait_log("reauth=true")


class JwksServer:
    """An https JWKS endpoint: `http.server` over TLS with the test CA's server certificate.
    The test swaps `jwks`; `gets` counts the requests."""

    def __init__(self, pki, jwks):
        self.jwks, self.gets = jwks, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.gets += 1
                body = json.dumps(outer.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki / "server.pem")
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/realms/strom/jwks"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def https_jaas(pki):
    return ("org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
            f'ssl.truststore.location="{pki / "ca.crt"}" ssl.truststore.type="PEM";')


def admin_gets_in(bootstrap, conf):
    """Whether a client with `conf` gets metadata (one bounded attempt)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **conf})
    try:
        admin.list_topics(timeout=5)
        return True
    except KafkaException:
        return False


def test_https_jwks_fetched_at_start_rotated_on_an_unknown_kid(pki, keys, topic_name):
    server = JwksServer(pki, keys.jwks())
    mp = pytest.MonkeyPatch()
    mp.setenv("RUST_LOG", "warn,strom=info,strom_broker=info,strom_broker::connection=debug,strom_security=info,strom::audit=info")
    broker = OAuthBroker(pki, server.url, {
        "listener.name.jwt.oauthbearer.sasl.jaas.config": https_jaas(pki),
        "org.apache.kafka.sasl.oauthbearer.allowed.urls": f"file:///unused,{server.url}",
    })
    try:
        broker.start()
        assert server.gets >= 1
        bootstrap = f"127.0.0.1:{broker.jwt_port}"
        create_topic(broker, topic_name)
        # A token signed by a key of the endpoint's JWKS.
        token = keys.sign(claims(sub="svc-https"))
        conf = ck_token_conf(pki, lambda _: (token, time.time() + 3600))
        assert roundtrip(bootstrap, conf, topic_name) == [b"o0", b"o1", b"o2"]
        assert broker.wait_log("principal=User:svc-https")

        # The identity provider rotates: a new key `rsa-2`, the old `rsa-1` withdrawn. A token
        # naming rsa-2 is refused at first (as Kafka), which makes the broker fetch the JWKS
        # at once; a later attempt gets in.
        rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        n = rotated.public_key().public_numbers()
        server.jwks = {"keys": [{"kty": "RSA", "kid": "rsa-2", "use": "sig", "alg": "RS256",
                                 "n": b64url(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")),
                                 "e": b64url(n.e.to_bytes(3, "big"))}]}
        new_token = keys.sign(claims(sub="svc-rotated"), kid="rsa-2", key=rotated)
        new_conf = ck_token_conf(pki, lambda _: (new_token, time.time() + 3600))
        deadline, admitted = time.monotonic() + TIMEOUT_S, False
        while not admitted and time.monotonic() < deadline:
            admitted = admin_gets_in(bootstrap, new_conf)
        assert admitted, broker.log_tail(40)
        assert broker.wait_log("fetching the JWKS now")
        assert broker.wait_log("principal=User:svc-rotated")
        # The withdrawn key's tokens are refused now; an unknown key id makes at most one
        # fetch a minute however often it is sent; an expired token is refused.
        refused(bootstrap, conf)
        assert broker.wait_log("rsa-1"), broker.log_tail(40)
        assert any("no key with kid" in line for line in broker.log_tail(2000).splitlines() if "rsa-1" in line)
        # Two expedited fetches so far (for rsa-2, then rsa-1); let the second finish.
        deadline = time.monotonic() + TIMEOUT_S
        while broker.log_tail(4000).count("JWKS refreshed") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert broker.log_tail(4000).count("JWKS refreshed") == 2, broker.log_tail(40)
        before = server.gets
        unknown = keys.sign(claims(), kid="nobody")
        unknown_conf = ck_token_conf(pki, lambda _: (unknown, time.time() + 3600))
        refused(bootstrap, unknown_conf)
        deadline = time.monotonic() + TIMEOUT_S
        while server.gets < before + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.gets == before + 1
        for _ in range(3):
            refused(bootstrap, unknown_conf)
        time.sleep(1)
        assert server.gets == before + 1, "an unknown key id within a minute made the broker fetch again"
        expired = keys.sign(claims(lifetime_s=-120), kid="rsa-2", key=rotated)
        refused(bootstrap, ck_token_conf(pki, lambda _: (expired, time.time() + 3600)))
        assert broker.wait_log("the token expired")
        # The broker carries on.
        AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=TIMEOUT_S)
    finally:
        mp.undo()
        broker.stop()
        broker.cleanup()
        server.close()


@pytest.mark.parametrize("case,why", [
    ("unreachable", "could not fetch the JWKS"),
    ("untrusted", "TLS"),
    ("not allowed", "is not allowed"),
])
def test_https_jwks_that_cannot_be_used_stops_start_up(pki, keys, case, why):
    server = JwksServer(pki, keys.jwks())
    url = server.url
    extra = {"listener.name.jwt.oauthbearer.sasl.jaas.config": https_jaas(pki),
             "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms": "500"}
    if case == "unreachable":
        url = f"https://127.0.0.1:{free_port()}/jwks"
    elif case == "untrusted":
        extra["listener.name.jwt.oauthbearer.sasl.jaas.config"] = SECURED_JAAS  # system CAs only
    else:
        extra["org.apache.kafka.sasl.oauthbearer.allowed.urls"] = "https://idp.example/jwks"
    broker = OAuthBroker(pki, url, extra)
    try:
        with pytest.raises(RuntimeError) as failed:
            broker.start()
        assert "sasl.oauthbearer.jwks.endpoint.url" in str(failed.value), str(failed.value)[-2000:]
        assert why in str(failed.value), str(failed.value)[-2000:]
    finally:
        broker.stop()
        broker.cleanup()
        server.close()


def java_roundtrip(java_tool, bootstrap, topic, values, conf):
    """Produces `values` with the Java producer and reads them back with the Java consumer,
    both configured with `conf` (k=v strings)."""
    with tempfile.NamedTemporaryFile("w", suffix=".records", delete=False) as f:
        for v in values:
            f.write(f"{base64.b64encode(b'k').decode()}\t{base64.b64encode(v).decode()}\t\n")
    try:
        acks = java_tool(["produce", bootstrap, topic, "none", f.name, *conf])["acks"]
    finally:
        pathlib.Path(f.name).unlink()
    assert len(acks) == len(values)
    out = java_tool(["consume", bootstrap, topic, len(values), 30000, *conf])
    return [base64.b64decode(r["value"]) for r in out["records"]]


def test_java_clients_with_the_unsecured_login_module(oauth, java_tool, topic_name):
    """Kafka's OAuthBearerLoginModule with its default (unsecured) login callback handler,
    against the listener with Kafka's unsecured validator and its required scope."""
    create_topic(oauth, topic_name)
    jaas = ("org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
            'unsecuredLoginStringClaim_sub="java-alice" unsecuredLoginListClaim_scope=",kafka";')
    conf = ["security.protocol=SASL_PLAINTEXT", "sasl.mechanism=OAUTHBEARER", f"sasl.jaas.config={jaas}"]
    got = java_roundtrip(java_tool, f"127.0.0.1:{oauth.unsec_port}", topic_name, [b"j0", b"j1"], conf)
    assert got == [b"j0", b"j1"]
    assert oauth.wait_log("principal=User:java-alice")


def test_java_clients_with_a_signed_jwt_checked_against_the_jwks(oauth, pki, keys, java_tool, topic_name,
                                                                monkeypatch, tmp_path):
    """Kafka's OAuthBearerLoginCallbackHandler reading a signed JWT from a file
    (`sasl.oauthbearer.token.endpoint.url=file://...`, allowed through Kafka 4's
    `org.apache.kafka.sasl.oauthbearer.allowed.urls` system property) over SASL_SSL; the
    broker verifies it against the JWKS. A token signed by a key the JWKS does not hold is
    refused: the Java producer fails with SaslAuthenticationException."""
    create_topic(oauth, topic_name)
    token_file = tmp_path / "token.jwt"
    token_file.write_text(keys.sign(claims(sub="svc-java"), alg="ES256", kid="ec-1"))
    token_url = f"file://{token_file}"
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={token_url}")
    conf = ["security.protocol=SASL_SSL", "ssl.truststore.type=PEM", f"ssl.truststore.location={pki / 'ca.crt'}",
            "sasl.mechanism=OAUTHBEARER",
            "sasl.login.callback.handler.class="
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
            f"sasl.oauthbearer.token.endpoint.url={token_url}",
            "sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"]
    got = java_roundtrip(java_tool, f"127.0.0.1:{oauth.jwt_port}", topic_name, [b"s0", b"s1"], conf)
    assert got == [b"s0", b"s1"]
    assert oauth.wait_log("principal=User:svc-java")
    # A rogue key's token: refused by the broker, reported by the Java client.
    token_file.write_text(keys.sign(claims(sub="svc-rogue"), key=keys.rogue))
    with tempfile.NamedTemporaryFile("w", suffix=".records", delete=False) as f:
        f.write(f"{base64.b64encode(b'k').decode()}\t{base64.b64encode(b'x').decode()}\t\n")
    try:
        out = java_tool(["produce-outcomes", f"127.0.0.1:{oauth.jwt_port}", topic_name, f.name, *conf])
    finally:
        pathlib.Path(f.name).unlink()
    assert "SaslAuthenticationException" in json.dumps(out), out
    assert oauth.wait_log("does not verify")


class TokenEndpoint:
    """A KIP-768 token endpoint over http (a thread of this process): `POST /token` with
    `grant_type=client_credentials` and the client's id and secret in HTTP Basic auth
    (RFC 6749 section 2.3.1, as Kafka's HttpAccessTokenRetriever and librdkafka send them)
    answers an RS256 JWT signed by a key of `keys`' JWKS, `sub` the client id. Clients
    `wrong-aud`, `expired` and `short` get a token for another audience, one expired two
    minutes ago, and one that lives 8 s. Anything else is 401. `issued` counts tokens by
    client."""

    CLIENTS = {"app": "app-secret", "wrong-aud": "wa-secret", "expired": "ex-secret", "short": "short-secret"}

    def __init__(self, keys):
        self.issued, self.refusals = {}, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = min(int(self.headers.get("Content-Length") or 0), 4096)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                client = outer.client(self.headers.get("Authorization", ""))
                if self.path != "/token" or form.get("grant_type") != ["client_credentials"] or client is None:
                    outer.refusals += 1
                    return self.answer(401, {"error": "invalid_client"})
                outer.issued[client] = outer.issued.get(client, 0) + 1
                lifetime = {"expired": -120, "short": 8}.get(client, 3600)
                extra = {"aud": "someone-else"} if client == "wrong-aud" else {}
                token = keys.sign(claims(sub=client, lifetime_s=lifetime, **extra))
                self.answer(200, {"access_token": token, "token_type": "bearer", "expires_in": max(lifetime, 1)})

            def answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def client(self, authorization):
        """The client id of a valid `Basic` header, else None."""
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return None
        client_id, secret = urllib.parse.unquote(client_id), urllib.parse.unquote(secret)
        return client_id if self.CLIENTS.get(client_id) == secret else None

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def idp(pki, keys):
    """The token endpoint, the JWKS over https, and a broker whose JWT listener checks tokens
    against that JWKS with sessions of at most 3 s (`connections.max.reauth.ms`)."""
    jwks, tokens = JwksServer(pki, keys.jwks()), TokenEndpoint(keys)
    broker = OAuthBroker(pki, jwks.url, {
        "listener.name.jwt.oauthbearer.sasl.jaas.config": https_jaas(pki),
        "org.apache.kafka.sasl.oauthbearer.allowed.urls": jwks.url,
        "connections.max.reauth.ms": "3000",
    })
    mp = pytest.MonkeyPatch()
    mp.setenv("RUST_LOG", "warn,strom=info,strom_broker=info,strom_broker::connection=debug,strom_security=info,strom::audit=info")
    try:
        broker.start()
        yield broker, tokens
    finally:
        mp.undo()
        broker.stop()
        broker.cleanup()
        tokens.close()
        jwks.close()


def java_oidc_conf(pki, client):
    """Kafka's OAuthBearerLoginCallbackHandler with the client credentials grant (KIP-768)."""
    return ["security.protocol=SASL_SSL", "ssl.truststore.type=PEM", f"ssl.truststore.location={pki / 'ca.crt'}",
            "sasl.mechanism=OAUTHBEARER",
            "sasl.login.callback.handler.class="
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
            "sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
            f'clientId="{client}" clientSecret="{TokenEndpoint.CLIENTS[client]}" scope="kafka";']


def ck_oidc_conf(pki, tokens, client):
    """librdkafka's built-in OIDC client credentials flow."""
    return {"security.protocol": "SASL_SSL", "ssl.ca.location": str(pki / "ca.crt"),
            "sasl.mechanism": "OAUTHBEARER", "sasl.oauthbearer.method": "oidc",
            "sasl.oauthbearer.client.id": client, "sasl.oauthbearer.client.secret": TokenEndpoint.CLIENTS[client],
            "sasl.oauthbearer.token.endpoint.url": tokens.url, "sasl.oauthbearer.scope": "kafka"}


def java_produce_outcomes(java_tool, bootstrap, topic, conf):
    with tempfile.NamedTemporaryFile("w", suffix=".records", delete=False) as f:
        f.write(f"{base64.b64encode(b'k').decode()}\t{base64.b64encode(b'x').decode()}\t\n")
    try:
        return java_tool(["produce-outcomes", bootstrap, topic, f.name, *conf])
    finally:
        pathlib.Path(f.name).unlink()


def test_java_client_credentials_flow_against_a_token_endpoint(idp, pki, java_tool, topic_name, monkeypatch):
    """The Java producer and consumer fetch a token from the endpoint with the client
    credentials grant (Kafka 4 needs the endpoint in the allowed-URLs system property) and
    the broker verifies it against the https JWKS: produce and consume succeed as the
    client's principal. A token for another audience, and an expired one, are refused by the
    broker with Kafka's error (SaslAuthenticationException) and an audit line saying why."""
    broker, tokens = idp
    create_topic(broker, topic_name)
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={tokens.url}")
    bootstrap = f"127.0.0.1:{broker.jwt_port}"
    conf = java_oidc_conf(pki, "app") + [f"sasl.oauthbearer.token.endpoint.url={tokens.url}"]
    got = java_roundtrip(java_tool, bootstrap, topic_name, [b"cc0", b"cc1"], conf)
    assert got == [b"cc0", b"cc1"]
    assert tokens.issued.get("app", 0) >= 2  # the producer's login and the consumer's
    assert broker.wait_log("principal=User:app")
    for client, why in [("wrong-aud", "audience"), ("expired", "the token expired")]:
        before = tokens.issued.get(client, 0)
        conf = java_oidc_conf(pki, client) + [f"sasl.oauthbearer.token.endpoint.url={tokens.url}"]
        out = java_produce_outcomes(java_tool, bootstrap, topic_name, conf)
        assert "SaslAuthenticationException" in json.dumps(out), (client, out)
        assert tokens.issued.get(client, 0) > before, client
        assert broker.wait_log(why), (client, broker.log_tail(40))


def test_confluent_kafka_oidc_client_credentials_refresh_and_reauthentication(idp, pki, topic_name):
    """librdkafka's `sasl.oauthbearer.method=oidc`: the token from the endpoint gets a
    producer and a consumer in. With tokens that live 8 s and sessions of at most 3 s, a
    producer that keeps producing for 12 s re-authenticates on its connection (KIP-368) and
    fetches fresh tokens before the old ones expire: nothing it sends is lost. A token for
    another audience is refused."""
    broker, tokens = idp
    create_topic(broker, topic_name)
    bootstrap = f"127.0.0.1:{broker.jwt_port}"
    assert roundtrip(bootstrap, ck_oidc_conf(pki, tokens, "app"), topic_name) == [b"o0", b"o1", b"o2"]

    p = Producer({"bootstrap.servers": bootstrap, **ck_oidc_conf(pki, tokens, "short")})
    delivered, failed = [], []
    report = lambda err, msg: (failed if err else delivered).append(err or msg.value())  # noqa: E731
    deadline = time.monotonic() + 12
    sent = 0
    while time.monotonic() < deadline:
        p.produce(topic_name, value=b"r%d" % sent, on_delivery=report)
        sent += 1
        p.poll(0.5)
    assert p.flush(TIMEOUT_S) == 0
    assert failed == [] and len(delivered) == sent, failed
    assert tokens.issued.get("short", 0) >= 2, tokens.issued
    assert broker.wait_log("reauth=true"), broker.log_tail(40)

    errors = refused(bootstrap, ck_oidc_conf(pki, tokens, "wrong-aud"))
    assert any("Authentication" in e or "authentication" in e for e in errors), errors
    assert broker.wait_log("audience")
