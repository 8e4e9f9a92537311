"""Delegation tokens (KIP-48) with the Java client: the Admin's createDelegationToken,
describeDelegationToken, renewDelegationToken and expireDelegationToken (what
kafka-delegation-tokens.sh calls) over SASL_PLAINTEXT, then a Java producer and consumer
authenticating with the token (ScramLoginModule, `tokenauth="true"`) as the token's owner,
within the owner's ACLs. Refusals as Kafka answers them: a stranger renewing, a creation for
another owner without CREATE_TOKENS, a token-authenticated connection asking for a token, an
expired token. Tokens live in the metadata log: they survive a restart and still work.

librdkafka (confluent-kafka), kafka-python and kafkajs cannot authenticate with a token:
none of them sends SCRAM's `tokenauth` extension, so only the Java client is driven here.
"""

import json
import os
import subprocess
import shutil
import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from cluster_fixtures import make_cluster  # noqa: F401 (fixture)
from conftest import TOOLS, TOOL_TIMEOUT_S, Broker, run_tool, strom_binary

TIMEOUT_S = 30
SECRET = "a-cluster-wide-token-secret"
USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def plain_props(user):
    return ("security.protocol=SASL_PLAINTEXT;sasl.mechanism=PLAIN;sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{user}" password="{USERS[user]}";')


def token_props(token, mechanism="SCRAM-SHA-256"):
    """The Java client's settings for authenticating with a token, as Kafka documents them."""
    return ["security.protocol=SASL_PLAINTEXT", f"sasl.mechanism={mechanism}",
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{token["id"]}" password="{token["hmac"]}" tokenauth="true";']


def ck_conf(user):
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
            "sasl.username": user, "sasl.password": USERS[user]}


class TokenBroker(Broker):
    """A broker with a SASL_PLAINTEXT listener (PLAIN users, SCRAM for tokens), the
    StandardAuthorizer with `User:admin` as super user, and tokens enabled."""

    def __init__(self):
        super().__init__(strom_binary())
        jaas = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="admin" password="{USERS["admin"]}" '
                + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")
        overrides = {
            "listeners": "SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
            "authorizer.class.name": AUTHORIZER,
            "super.users": "User:admin",
            "delegation.token.secret.key": SECRET,
            # Expired tokens are swept away within seconds, for the expiry test.
            "delegation.token.expiry.check.interval.ms": "1000",
            "connection.failed.authentication.delay.ms": "10",
        }
        for key, value in overrides.items():
            self.extra_args += ["--override", f"{key}={value}"]


@pytest.fixture(scope="module")
def broker():
    b = TokenBroker()
    b.start()
    yield b
    b.stop()
    if not os.environ.get("STROM_KEEP_LOG"):
        b.cleanup()
        b.log_path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def token_tool():
    classes, libs = TOOLS / "java-classes", TOOLS / "java-libs"
    if not (classes / "TokenTool.class").is_file():
        pytest.fail("Java helper not compiled: run scripts/setup-clients")
    java = shutil.which("java") or "java"
    cp = f"{classes}{os.pathsep}{libs}/*"

    def run(command, bootstrap, props, *args):
        return run_tool([java, "-cp", cp, "TokenTool", command, bootstrap, props, *map(str, args)],
                        f"java TokenTool {command}", TOOL_TIMEOUT_S)

    return run


def create_topics(b, *names):
    admin = AdminClient({"bootstrap.servers": b.bootstrap, **ck_conf("admin")})
    for future in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        future.result(TIMEOUT_S)


def allow(b, *acls):
    """ACLs created by the super user through the Java Admin (AclTool)."""
    classes, libs = TOOLS / "java-classes", TOOLS / "java-libs"
    java = shutil.which("java") or "java"
    out = run_tool([java, "-cp", f"{classes}{os.pathsep}{libs}/*", "AclTool", "create", b.bootstrap,
                    plain_props("admin"), *acls], "java AclTool create", TOOL_TIMEOUT_S)
    assert out["results"] == [None] * len(acls), out


def produce(java_tool, bootstrap, topic, props, tmp_path, value=b"v"):
    import base64
    records = tmp_path / f"records-{uuid.uuid4().hex[:6]}.tsv"
    records.write_text(f"-\t{base64.b64encode(value).decode()}\t\n")
    return java_tool(["produce-outcomes", bootstrap, topic, records, *props])["outcomes"]


def test_token_lifecycle_and_authentication_as_the_owner(broker, token_tool, java_tool, tmp_path):
    b = broker
    suffix = uuid.uuid4().hex[:6]
    mine, theirs = f"alice-{suffix}", f"other-{suffix}"
    create_topics(b, mine, theirs)
    allow(b,
          f"TOPIC|LITERAL|{mine}|User:alice|*|WRITE|ALLOW",
          f"TOPIC|LITERAL|{mine}|User:alice|*|READ|ALLOW")

    # alice asks for a token that bob may renew.
    created = token_tool("create", b.bootstrap, plain_props("alice"), "-", "User:bob", -1)
    token = created["token"]
    assert token["owner"] == "User:alice" and token["requester"] == "User:alice", created
    assert token["renewers"] == ["User:bob"]
    # Kafka's defaults: expiry after a day, at most a week.
    assert token["expiry"] - token["issue"] == 86_400_000
    assert token["max"] - token["issue"] == 604_800_000
    assert token["hmac"] and len(token["id"]) == 22

    # Described to its owner, its renewer and the super user; not to carol.
    for user in ("alice", "bob", "admin"):
        ids = [t["id"] for t in token_tool("describe", b.bootstrap, plain_props(user), "-")["tokens"]]
        assert token["id"] in ids, user
    assert token_tool("describe", b.bootstrap, plain_props("carol"), "-")["tokens"] == []
    # An owners filter that names someone else leaves it out.
    assert token_tool("describe", b.bootstrap, plain_props("admin"), "User:carol")["tokens"] == []
    described = token_tool("describe", b.bootstrap, plain_props("admin"), "User:alice")["tokens"]
    assert [t["hmac"] for t in described if t["id"] == token["id"]] == [token["hmac"]]

    # The token authenticates as alice (both SCRAM mechanisms) and gets alice's rights.
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        outcomes = produce(java_tool, b.bootstrap, mine, token_props(token, mechanism), tmp_path, value=mechanism.encode())
        assert "offset" in outcomes[0], outcomes
    denied = produce(java_tool, b.bootstrap, theirs, token_props(token), tmp_path)
    assert "TopicAuthorizationException" in denied[0].get("error", ""), denied
    consumed = java_tool(["consume", b.bootstrap, mine, 2, 30000, *token_props(token)])
    assert len(consumed["records"]) == 2, consumed

    # A token-authenticated connection may not ask for tokens (Kafka's allowTokenRequests).
    refused = token_tool("create", b.bootstrap, ";".join(token_props(token)), "-", "-", -1)
    assert "UnsupportedByAuthenticationException" in refused.get("error", ""), refused

    # Renewing: carol is neither owner nor renewer; bob is a renewer.
    refused = token_tool("renew", b.bootstrap, plain_props("carol"), token["hmac"], 3_600_000)
    assert "DelegationTokenOwnerMismatchException" in refused.get("error", ""), refused
    before = time.time() * 1000
    renewed = token_tool("renew", b.bootstrap, plain_props("bob"), token["hmac"], 3_600_000)
    assert before + 3_600_000 - 60_000 <= renewed["expiry"] <= time.time() * 1000 + 3_600_000, renewed
    after = token_tool("describe", b.bootstrap, plain_props("alice"), "-")["tokens"]
    assert [t["expiry"] for t in after if t["id"] == token["id"]] == [renewed["expiry"]]
    # An HMAC no token has.
    unknown = token_tool("renew", b.bootstrap, plain_props("alice"), "AAAA", 1000)
    assert "DelegationTokenNotFoundException" in unknown.get("error", ""), unknown

    # KIP-373: a token for another owner needs CREATE_TOKENS on that user.
    refused = token_tool("create", b.bootstrap, plain_props("carol"), "User:bob", "-", -1)
    assert "DelegationTokenAuthorizationException" in refused.get("error", ""), refused
    allow(b, "USER|LITERAL|User:bob|User:carol|*|CREATE_TOKENS|ALLOW")
    for_bob = token_tool("create", b.bootstrap, plain_props("carol"), "User:bob", "-", -1)["token"]
    assert (for_bob["owner"], for_bob["requester"]) == ("User:bob", "User:carol")
    # Requesting a token is not owning it: carol sees bob's tokens only with DESCRIBE_TOKENS
    # on User:bob.
    assert token_tool("describe", b.bootstrap, plain_props("carol"), "-")["tokens"] == []
    allow(b, "USER|LITERAL|User:bob|User:carol|*|DESCRIBE_TOKENS|ALLOW")
    seen = token_tool("describe", b.bootstrap, plain_props("carol"), "-")["tokens"]
    assert [t["id"] for t in seen] == [for_bob["id"]], seen

    # Expired now (a negative period): gone, and the token no longer authenticates.
    expired = token_tool("expire", b.bootstrap, plain_props("alice"), token["hmac"], -1)
    assert expired == {"expiry": -1}, expired
    ids = [t["id"] for t in token_tool("describe", b.bootstrap, plain_props("admin"), "-")["tokens"]]
    assert token["id"] not in ids and for_bob["id"] in ids
    refused = produce(java_tool, b.bootstrap, mine, token_props(token), tmp_path)
    assert "SaslAuthenticationException" in refused[0].get("error", ""), refused


def test_an_expired_token_is_refused_and_swept(broker, token_tool, java_tool, tmp_path):
    b = broker
    topic = f"short-{uuid.uuid4().hex[:6]}"
    create_topics(b, topic)
    allow(b, f"TOPIC|LITERAL|{topic}|User:bob|*|WRITE|ALLOW")
    # A lifetime asked for bounds the token's maximum (and so its expiry).
    short = token_tool("create", b.bootstrap, plain_props("bob"), "-", "-", 3000)["token"]
    assert short["max"] - short["issue"] == 3000 and short["expiry"] == short["max"]
    # A token that works, then is set to expire in a second (a positive period keeps it in
    # the log until then): past that it authenticates no more.
    token = token_tool("create", b.bootstrap, plain_props("bob"), "-", "-", -1)["token"]
    ok = produce(java_tool, b.bootstrap, topic, token_props(token), tmp_path)
    assert "offset" in ok[0], ok
    soon = token_tool("expire", b.bootstrap, plain_props("bob"), token["hmac"], 1000)["expiry"]
    assert soon <= time.time() * 1000 + 1000
    while time.time() * 1000 <= soon + 100:
        time.sleep(0.2)
    refused = produce(java_tool, b.bootstrap, topic, token_props(token), tmp_path)
    assert "SaslAuthenticationException" in refused[0].get("error", ""), refused
    # Renewing it fails: DELEGATION_TOKEN_EXPIRED, or NOT_FOUND once the controller's sweep
    # (every second here) has removed it, which it must do within the timeout.
    expired = token_tool("renew", b.bootstrap, plain_props("bob"), token["hmac"], 1000)
    assert "DelegationTokenExpiredException" in expired.get("error", "") or \
        "DelegationTokenNotFoundException" in expired.get("error", ""), expired
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        ids = [t["id"] for t in token_tool("describe", b.bootstrap, plain_props("bob"), "-")["tokens"]]
        if token["id"] not in ids and short["id"] not in ids:
            break
        time.sleep(0.5)
    assert token["id"] not in ids and short["id"] not in ids, "expired tokens were not removed"
    gone = token_tool("renew", b.bootstrap, plain_props("bob"), token["hmac"], 1000)
    assert "DelegationTokenNotFoundException" in gone.get("error", ""), gone


def test_tokens_survive_a_restart_and_still_authenticate(token_tool, java_tool, tmp_path):
    b = TokenBroker()
    try:
        b.start()
        topic = f"kept-{uuid.uuid4().hex[:6]}"
        create_topics(b, topic)
        allow(b, f"TOPIC|LITERAL|{topic}|User:alice|*|ALL|ALLOW")
        token = token_tool("create", b.bootstrap, plain_props("alice"), "-", "-", -1)["token"]
        b.stop()
        b.start()
        described = token_tool("describe", b.bootstrap, plain_props("alice"), "-")["tokens"]
        assert [t for t in described if t["id"] == token["id"]] == [token]
        ok = produce(java_tool, b.bootstrap, topic, token_props(token), tmp_path)
        assert "offset" in ok[0], ok
    finally:
        b.stop()
        if not os.environ.get("STROM_KEEP_LOG"):
            b.cleanup()
            b.log_path.unlink(missing_ok=True)


def strom_tokens(b, user, *args):
    """`strom delegation-tokens ...` as `user` (PLAIN), JSON output."""
    cmd = [str(strom_binary()), "delegation-tokens", *map(str, args), "--bootstrap-server", b.bootstrap,
           "--output", "json", "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN",
           "-X", f"sasl.username={user}", "-X", f"sasl.password={USERS[user]}"]
    proc = subprocess.run(cmd, capture_output=True, timeout=60)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def test_strom_cli_creates_renews_expires_and_describes(broker, java_tool, tmp_path):
    """`strom delegation-tokens` as kafka-delegation-tokens.sh: the token it prints works
    for the Java client, a renewer renews it, a stranger may not, the owner expires it."""
    b = broker
    topic = f"cli-{uuid.uuid4().hex[:6]}"
    create_topics(b, topic)
    allow(b, f"TOPIC|LITERAL|{topic}|User:alice|*|WRITE|ALLOW")
    code, out, err = strom_tokens(b, "alice", "create", "--renewer-principal", "User:bob",
                                  "--max-life-time-period", 3_600_000)
    assert code == 0, err
    [token] = json.loads(out)
    assert token["owner"] == "User:alice" and token["renewers"] == ["User:bob"], token
    assert token["max_timestamp_ms"] - token["issue_timestamp_ms"] == 3_600_000
    ok = produce(java_tool, b.bootstrap, topic, token_props({"id": token["token_id"], "hmac": token["hmac"]}), tmp_path)
    assert "offset" in ok[0], ok
    code, out, err = strom_tokens(b, "alice", "describe", "--owner-principal", "User:alice")
    assert code == 0, err
    assert token["token_id"] in [t["token_id"] for t in json.loads(out)]
    code, out, err = strom_tokens(b, "bob", "renew", "--hmac", token["hmac"], "--renew-time-period", 60_000)
    assert code == 0, err
    assert json.loads(out)["expiry_timestamp_ms"] <= time.time() * 1000 + 60_000
    code, out, err = strom_tokens(b, "carol", "renew", "--hmac", token["hmac"])
    assert code != 0 and "DELEGATION_TOKEN_OWNER_MISMATCH" in err, (out, err)
    code, out, err = strom_tokens(b, "alice", "expire", "--hmac", token["hmac"], "--expiry-time-period", -1)
    assert code == 0, err
    code, out, err = strom_tokens(b, "alice", "describe")
    assert code == 0, err
    assert token["token_id"] not in [t["token_id"] for t in json.loads(out)]


@pytest.mark.cluster
def test_a_token_from_one_broker_works_on_the_others(make_cluster, token_tool, java_tool, tmp_path):
    """Three nodes with the same secret: a token created through node 1 is described by
    node 3 and authenticates a Java producer bootstrapped on node 2 only (each node derives
    the HMAC itself; the token reached it through the metadata log)."""
    jaas = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="admin" password="{USERS["admin"]}" '
            + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")
    cluster = make_cluster(3, {
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SECURE:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.secure.plain.sasl.jaas.config": jaas,
        "delegation.token.secret.key": SECRET,
    }, extra_listener="SECURE")
    nodes = list(cluster.nodes.values())
    first, second, third = (f"127.0.0.1:{n.extra_port}" for n in nodes[:3])
    topic = f"spread-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": first, **ck_conf("alice")})
    admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(TIMEOUT_S)
    token = token_tool("create", first, plain_props("alice"), "-", "-", -1)["token"]
    deadline = time.monotonic() + TIMEOUT_S
    seen = []
    while time.monotonic() < deadline:
        seen = [t["id"] for t in token_tool("describe", third, plain_props("alice"), "-")["tokens"]]
        if token["id"] in seen:
            break
        time.sleep(0.5)
    assert token["id"] in seen, "node 3 never described the token"

    ok = produce(java_tool, second, topic, token_props(token), tmp_path)
    assert "offset" in ok[0], ok
    # Expired through node 2, the token is refused everywhere.
    assert token_tool("expire", second, plain_props("alice"), token["hmac"], -1) == {"expiry": -1}
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        seen = [t["id"] for t in token_tool("describe", first, plain_props("alice"), "-")["tokens"]]
        if token["id"] not in seen:
            break
        time.sleep(0.5)
    assert token["id"] not in seen

    refused = produce(java_tool, first, topic, token_props(token), tmp_path)
    assert "SaslAuthenticationException" in refused[0].get("error", ""), refused


@pytest.mark.cluster
def test_a_token_is_renewed_and_expired_through_another_broker_at_once(make_cluster, token_tool):
    """Kafka forwards renewals and expiries to the controller, so any broker finds a token
    created a moment ago through another. Here a Java Admin of node 1 creates tokens and a
    second, already connected Admin of node 2 renews and then expires each one at once:
    every renewal gets the token's new expiry (never DelegationTokenNotFoundException from
    a broker whose image is behind), every expiry succeeds."""
    jaas = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="admin" password="{USERS["admin"]}" '
            + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")
    cluster = make_cluster(3, {
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SECURE:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256",
        "listener.name.secure.plain.sasl.jaas.config": jaas,
        "delegation.token.secret.key": SECRET,
    }, extra_listener="SECURE")
    nodes = list(cluster.nodes.values())
    first, second = (f"127.0.0.1:{n.extra_port}" for n in nodes[:2])
    rounds, period_ms = 8, 3_600_000
    before = time.time() * 1000
    out = token_tool("create-renew", first, plain_props("alice"), second, rounds, period_ms)
    assert "error" not in out, out
    assert len(out["renewed"]) == rounds and len(out["expired"]) == rounds, out
    after = time.time() * 1000
    for expiry in out["renewed"]:
        assert before + period_ms - 60_000 <= expiry <= after + period_ms, out
    assert out["expired"] == [-1] * rounds, out
    # Expired now: none of them is left (Describe reads a broker's image: wait for it).
    deadline = time.monotonic() + TIMEOUT_S
    left = None
    while time.monotonic() < deadline:
        left = token_tool("describe", second, plain_props("alice"), "-")["tokens"]
        if left == []:
            break
        time.sleep(0.5)
    assert left == [], left
