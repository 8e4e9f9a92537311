"""Encrypted PEM private keys (`ssl.key.password`): a broker whose keystore holds a PKCS#8
key encrypted with AES-256-CBC (what `openssl pkcs8 -topk8 -v2 aes-256-cbc` and Java write)
serves TLS with the right password, to confluent-kafka and to Python's ssl module; with a
wrong password, or a legacy OpenSSL-encrypted key, it refuses to start and says which key
is wrong and what to do. DescribeConfigs lists the secrets (`ssl.key.password`, the token
secret, a dynamic per-listener password) as Kafka does: null and sensitive.
"""

import json

import pytest

from test_quotas import admin_tool  # noqa: F401 (fixture)
from test_security import SecureBroker, TIMEOUT_S, ck_roundtrip, create_topic, openssl, peer_common_name, pki, ssl_conf  # noqa: F401 (pki is a fixture)

PASSWORD = "k3y-pass"


def encrypted_keystore(pki, name, *convert):
    """server.pem's chain with its key encrypted by `openssl <convert>`."""
    key = pki / f"{name}.key"
    if not key.exists():
        openssl(*convert, "-in", "server.key", "-passout", f"pass:{PASSWORD}", "-out", key.name, cwd=pki)
    pem = pki / f"{name}.pem"
    pem.write_text(key.read_text() + (pki / "server.crt").read_text())
    return pem


def start_with(pki, keystore, password):
    b = SecureBroker(pki, {"ssl.keystore.location": str(keystore), "ssl.key.password": password})
    return b


def test_an_encrypted_key_loads_with_the_right_password(pki, topic_name):
    keystore = encrypted_keystore(pki, "server-pkcs8", "pkcs8", "-topk8", "-v2", "aes-256-cbc")
    assert "BEGIN ENCRYPTED PRIVATE KEY" in keystore.read_text()
    b = start_with(pki, keystore, PASSWORD)
    try:
        b.start()
        assert peer_common_name(b.ssl_port, pki / "ca.crt") == "localhost"
        create_topic(b, topic_name)
        got = ck_roundtrip(f"127.0.0.1:{b.ssl_port}", ssl_conf(pki), topic_name)
        assert got == [b"v%d" % i for i in range(5)]
    finally:
        b.stop()
        b.cleanup()


@pytest.mark.parametrize("name,convert,password,expected", [
    ("server-pkcs8", ("pkcs8", "-topk8", "-v2", "aes-256-cbc"), "wrong-pass", "wrong ssl.key.password"),
    ("server-pkcs8", ("pkcs8", "-topk8", "-v2", "aes-256-cbc"), "", "set ssl.key.password"),
    ("server-legacy", ("ec", "-aes256"), PASSWORD, "legacy OpenSSL PEM"),
])
def test_a_key_that_cannot_be_decrypted_is_refused_clearly(pki, name, convert, password, expected):
    keystore = encrypted_keystore(pki, name, *convert)
    b = start_with(pki, keystore, password)
    try:
        with pytest.raises(RuntimeError) as failed:
            b.start()
        message = str(failed.value)
        assert "ssl.key.password" in message or "ssl.keystore.location" in message, message
        assert expected in message, message
    finally:
        b.stop()
        b.cleanup()


def alter_broker(admin_tool, bootstrap, broker_id, key, value):
    """IncrementalAlterConfigs SET of one key on a broker resource through the Java Admin
    (what `kafka-configs.sh --entity-type brokers --alter --add-config` sends; `""` is
    `--entity-default`); returns the exception's class name or None."""
    result = admin_tool("broker-config-set", bootstrap, broker_id, key, value)["result"]
    return None if result is None else result.split(":", 1)[0]


def test_a_keystore_swapped_through_incremental_alter_configs(pki, admin_tool):
    """`listener.name.ssl.ssl.keystore.location` changed at runtime: a key store that does not
    load is refused with INVALID_CONFIG and the old one stays in force; the cluster default is
    refused (Kafka: per broker only), and so is a key without the listener prefix
    (INVALID_REQUEST naming the accepted form); a good one is served to new connections, which is
    checked on the certificate the broker presents."""
    import shutil
    import time
    from confluent_kafka.admin import AdminClient
    b = SecureBroker(pki)
    try:
        b.start()
        ca = pki / "ca.crt"
        assert peer_common_name(b.ssl_port, ca) == "localhost"
        broker_id = str(next(iter(AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=TIMEOUT_S).brokers)))
        key = "listener.name.ssl.ssl.keystore.location"
        assert alter_broker(admin_tool, b.bootstrap, broker_id, key, str(pki / "missing.pem")) == "InvalidConfigurationException"
        # Per broker only, as Kafka (kafka-configs.sh --entity-default).
        assert alter_broker(admin_tool, b.bootstrap, "", key, str(pki / "server2.pem")) == "InvalidRequestException"
        # Without the listener prefix: Kafka's refusal, naming the key and the accepted form.
        result = admin_tool("broker-config-set", b.bootstrap, broker_id, "ssl.keystore.password", "x")["result"]
        assert result.startswith("InvalidRequestException"), result
        assert "only per-listener using the listener prefix: ssl.keystore.password" in result, result
        assert "listener.name.<listener>.<key>" in result, result
        assert peer_common_name(b.ssl_port, ca) == "localhost"
        new = b.data_dir.parent / f"{b.data_dir.name}-dynamic.pem"
        shutil.copy(pki / "server2.pem", new)
        assert alter_broker(admin_tool, b.bootstrap, broker_id, key, str(new)) is None
        deadline, name = time.monotonic() + 15, None
        while time.monotonic() < deadline:
            name = peer_common_name(b.ssl_port, ca)
            if name == "rotated":
                break
            time.sleep(0.3)
        assert name == "rotated"
        # Other listeners keep theirs.
        assert peer_common_name(b.sasl_port, ca) == "localhost"
        new.unlink()
    finally:
        b.stop()
        b.cleanup()


TOKEN_SECRET = "token-s3cret-key"
PLUGIN_SECRET = "plugin-s3cret"
# Kafka's PASSWORD keys that Strom reads; each is listed whether set or not.
PASSWORD_KEYS = ("delegation.token.secret.key", "delegation.token.master.key", "ssl.key.password",
                 "ssl.keystore.password", "ssl.keystore.key", "ssl.keystore.certificate.chain",
                 "ssl.truststore.password", "ssl.truststore.certificates")


def test_secrets_are_listed_as_sensitive_and_never_shown(pki, admin_tool):
    """DescribeConfigs of a broker lists Kafka's PASSWORD keys (set in server.properties,
    unset, or set at runtime per listener) and keys of unknown type with a null value,
    is_sensitive and the PASSWORD type, their synonyms null too, as Kafka's ConfigHelper
    answers: to the Java Admin (with synonyms) and to confluent-kafka. No secret's text is
    anywhere in either answer; other keys keep their values."""
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
    keystore = encrypted_keystore(pki, "server-pkcs8", "pkcs8", "-topk8", "-v2", "aes-256-cbc")
    b = SecureBroker(pki, {"ssl.keystore.location": str(keystore), "ssl.key.password": PASSWORD,
                           "delegation.token.secret.key": TOKEN_SECRET})
    try:
        b.start()
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        broker_id = str(next(iter(admin.list_topics(timeout=TIMEOUT_S).brokers)))
        dynamic_key = "listener.name.ssl.ssl.key.password"
        assert alter_broker(admin_tool, b.bootstrap, broker_id, dynamic_key, PASSWORD) is None
        assert alter_broker(admin_tool, b.bootstrap, broker_id, "custom.plugin.secret", PLUGIN_SECRET) is None
        secret_keys = PASSWORD_KEYS + (dynamic_key, "custom.plugin.secret")

        out = admin_tool("broker-config-describe", b.bootstrap, broker_id)
        text = json.dumps(out)
        assert PASSWORD not in text and TOKEN_SECRET not in text and PLUGIN_SECRET not in text
        configs = out["configs"]
        for key in secret_keys:
            entry = configs[key]
            assert (entry["value"], entry["sensitive"], entry["type"]) == (None, True, "PASSWORD"), (key, entry)
            assert all(s["value"] is None for s in entry["synonyms"]), (key, entry)
        assert configs["delegation.token.secret.key"]["source"] == "STATIC_BROKER_CONFIG"
        assert configs["ssl.keystore.password"]["source"] == "DEFAULT_CONFIG"
        assert configs[dynamic_key]["source"] == "DYNAMIC_BROKER_CONFIG"
        assert [s["source"] for s in configs[dynamic_key]["synonyms"]] == ["DYNAMIC_BROKER_CONFIG"]
        lifetime = configs["delegation.token.max.lifetime.ms"]
        assert (lifetime["value"], lifetime["sensitive"]) == ("604800000", False), lifetime

        resource = ConfigResource(ResourceType.BROKER, broker_id)
        described = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
        assert PASSWORD not in repr(described) and TOKEN_SECRET not in repr(described)
        for key in secret_keys:
            entry = described[key]
            assert (entry.value, entry.is_sensitive) == (None, True), (key, entry)
            assert all(s.value is None for s in entry.synonyms.values()), (key, entry)
        assert described["num.partitions"].is_sensitive is False
        assert described["num.partitions"].value is not None
    finally:
        b.stop()
        b.cleanup()
