"""SASL/OAUTHBEARER with real clients: librdkafka's built-in unsecured JWT (Kafka's default
unsecured validator on the broker), and JWTs signed here with RS256 and ES256 (Python's
`cryptography`) that the broker checks against a JWKS file (KIP-768), sent by confluent-kafka
(`oauth_cb`) and kafka-python (its token provider) over SASL_SSL. Expired tokens, a wrong
audience, a wrong issuer and a key the JWKS does not hold are refused with Kafka's error JSON
and an audit line saying why; a token's expiry bounds the session, so the client
re-authenticates (KIP-368) with a fresh token on the same connection.
"""

import base64
import json
import pathlib
import shutil
import tempfile
import time
import urllib.request
import uuid

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

    def __init__(self, pki, jwks_path):
        super().__init__(strom_binary())
        self.unsec_port, self.jwt_port, self.http_port = free_port(), free_port(), free_port()
        overrides = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port},"
                         f"UNSEC://127.0.0.1:{self.unsec_port},JWT://127.0.0.1:{self.jwt_port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,UNSEC:SASL_PLAINTEXT,JWT:SASL_SSL",
            "inter.broker.listener.name": "PLAINTEXT",
            "sasl.enabled.mechanisms": "OAUTHBEARER",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(pki / "server.pem"),
            "listener.name.unsec.oauthbearer.sasl.jaas.config": UNSECURED_JAAS,
            "listener.name.jwt.oauthbearer.sasl.jaas.config": SECURED_JAAS,
            "listener.name.jwt.oauthbearer.sasl.server.callback.handler.class": VALIDATOR,
            "listener.name.jwt.oauthbearer.sasl.oauthbearer.jwks.endpoint.url": f"file://{jwks_path}",
            "sasl.oauthbearer.expected.audience": AUDIENCE,
            "sasl.oauthbearer.expected.issuer": ISSUER,
            "sasl.oauthbearer.clock.skew.seconds": "1",
            "connection.failed.authentication.delay.ms": "50",
            "strom.http.listeners": f"http://127.0.0.1:{self.http_port}",
        }
        for key, value in overrides.items():
            self.extra_args += ["--override", f"{key}={value}"]

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
    b = OAuthBroker(pki, jwks)
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
