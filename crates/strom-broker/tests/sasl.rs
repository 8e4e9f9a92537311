//! SASL on a real (in-process) broker, driven with raw frames: PLAIN and SCRAM exchanges
//! with KIP-152 framing and with v0 raw tokens, re-authentication and session expiry
//! (KIP-368), and bad input (requests before authentication, garbage, oversized tokens,
//! out-of-order SCRAM messages, unknown mechanisms) answered with Kafka's error or a close,
//! while the broker carries on.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{s, Client};
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, ApiVersionsRequest, MetadataRequest, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use strom_broker::{Broker, BrokerConfig, LocalMetadata, MetadataPort};
use strom_meta::ControllerConfig;
use strom_security::scram::{ScramClient, ScramMechanism};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                    username=\"alice\" password=\"alice-secret\" \
                    user_alice=\"alice-secret\";";

struct SaslBroker {
    broker: Broker,
    _dir: tempfile::TempDir,
}

async fn start(extra: &[(&str, &str)]) -> SaslBroker {
    let dir = tempfile::tempdir().unwrap();
    let mut map: BTreeMap<String, String> = [
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-256"),
        ("listener.name.sasl_plaintext.plain.sasl.jaas.config", JAAS),
        ("connection.failed.authentication.delay.ms", "50"),
        ("strom.http.listeners", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    map.insert("log.dirs".into(), dir.path().display().to_string());
    for (k, v) in extra {
        map.insert(k.to_string(), v.to_string());
    }
    let (config, _) = BrokerConfig::from_props(&map).unwrap();
    let metadata = Arc::new(LocalMetadata::new(ControllerConfig::default()));
    let port: Arc<dyn MetadataPort> = metadata;
    let broker = Broker::start(config, port).await.unwrap();
    SaslBroker { broker, _dir: dir }
}

impl SaslBroker {
    async fn client(&self) -> Client {
        Client::connect(self.broker.local_addr()).await
    }

    async fn plain_client(&self) -> Client {
        let mut c = self.client().await;
        plain(&mut c, "alice", "alice-secret", 2).await;
        c
    }
}

async fn handshake(c: &mut Client, mechanism: &str, version: i16) -> i16 {
    let r = c
        .send(
            version,
            SaslHandshakeRequest::default().with_mechanism(s(mechanism)),
        )
        .await;
    r.error_code
}

async fn authenticate(
    c: &mut Client,
    token: &[u8],
    version: i16,
) -> kafka_protocol::messages::SaslAuthenticateResponse {
    c.send(
        version,
        SaslAuthenticateRequest::default().with_auth_bytes(token.to_vec().into()),
    )
    .await
}

async fn plain(c: &mut Client, user: &str, password: &str, version: i16) -> i16 {
    assert_eq!(handshake(c, "PLAIN", 1).await, 0);
    authenticate(c, &strom_security::plain_message(user, password), version)
        .await
        .error_code
}

async fn metadata_works(c: &mut Client) {
    let r = c
        .send(12, MetadataRequest::default().with_topics(None))
        .await;
    assert_eq!(r.brokers.len(), 1);
}

#[tokio::test]
async fn plain_authenticates_then_serves_and_wrong_password_is_refused_and_closed() {
    let b = start(&[]).await;
    let mut c = b.client().await;
    // ApiVersions is served before authentication and lists the SASL APIs.
    let versions = c.send(2, ApiVersionsRequest::default()).await;
    let keys: Vec<i16> = versions.api_keys.iter().map(|k| k.api_key).collect();
    assert!(keys.contains(&17) && keys.contains(&36), "{keys:?}");
    assert_eq!(plain(&mut c, "alice", "alice-secret", 2).await, 0);
    metadata_works(&mut c).await;

    let mut bad = b.client().await;
    assert_eq!(handshake(&mut bad, "PLAIN", 1).await, 0);
    let started = std::time::Instant::now();
    let r = authenticate(&mut bad, &strom_security::plain_message("alice", "nope"), 1).await;
    assert_eq!(r.error_code, 58, "SASL_AUTHENTICATION_FAILED");
    assert!(r
        .error_message
        .unwrap()
        .contains("Invalid username or password"));
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "failure is delayed"
    );
    assert!(bad.is_closed().await);
    let failed = b
        .broker
        .context()
        .metrics
        .connections
        .failed_authentication
        .get();
    assert_eq!(failed, 1);
    // The first connection is unaffected.
    metadata_works(&mut c).await;
}

#[tokio::test]
async fn requests_before_authentication_close_the_connection() {
    let b = start(&[]).await;
    let mut c = b.client().await;
    c.send_only(12, &MetadataRequest::default().with_topics(None))
        .await;
    assert!(c.is_closed().await);
    // SaslAuthenticate without a handshake: ILLEGAL_SASL_STATE, then closed.
    let mut c = b.client().await;
    let r = authenticate(&mut c, b"\0a\0b", 1).await;
    assert_eq!(r.error_code, 34);
    assert!(c.is_closed().await);
    // An unknown mechanism: UNSUPPORTED_SASL_MECHANISM with the enabled list, then closed.
    let mut c = b.client().await;
    let r = c
        .send(
            1,
            SaslHandshakeRequest::default().with_mechanism(s("GSSAPI")),
        )
        .await;
    assert_eq!(r.error_code, 33);
    let names: Vec<String> = r.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(names, ["PLAIN", "SCRAM-SHA-256"]);
    assert!(c.is_closed().await);
    // Garbage before the handshake (not a Kafka request) and an oversized frame.
    let mut c = b.client().await;
    c.stream
        .write_all(&[0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4])
        .await
        .unwrap();
    assert!(c.is_closed().await);
    let mut c = b.client().await;
    c.stream
        .write_all(&(10_000_000i32).to_be_bytes())
        .await
        .unwrap();
    assert!(c.is_closed().await);
    // Through all of it the broker serves.
    let mut ok = b.plain_client().await;
    metadata_works(&mut ok).await;
}

#[tokio::test]
async fn oversized_and_malformed_tokens_are_refused() {
    let b = start(&[]).await;
    let mut c = b.client().await;
    assert_eq!(handshake(&mut c, "PLAIN", 1).await, 0);
    let r = authenticate(&mut c, &vec![b'a'; 100_000], 1).await;
    assert_eq!(r.error_code, 58);
    assert!(c.is_closed().await);
    let mut c = b.client().await;
    assert_eq!(handshake(&mut c, "SCRAM-SHA-256", 1).await, 0);
    // The client-final message first: out of order.
    let r = authenticate(&mut c, b"c=biws,r=abc,p=AAAA", 1).await;
    assert_eq!(r.error_code, 58);
    assert!(c.is_closed().await);
}

async fn add_scram_user(b: &SaslBroker, user: &str, password: &str) {
    let mut admin = b.plain_client().await;
    let salt = b"0123456789abcdef".to_vec();
    let salted = ScramMechanism::Sha256.salted_password(password.as_bytes(), &salt, 4096);
    let r = admin
        .send(
            0,
            AlterUserScramCredentialsRequest::default().with_upsertions(vec![
                ScramCredentialUpsertion::default()
                    .with_name(s(user))
                    .with_mechanism(1)
                    .with_iterations(4096)
                    .with_salt(salt.into())
                    .with_salted_password(salted.into()),
            ]),
        )
        .await;
    assert_eq!(
        r.results[0].error_code, 0,
        "{:?}",
        r.results[0].error_message
    );
}

#[tokio::test]
async fn scram_with_kip152_framing_and_with_v0_raw_tokens() {
    let b = start(&[]).await;
    add_scram_user(&b, "carol", "carol-secret").await;

    let mut c = b.client().await;
    assert_eq!(handshake(&mut c, "SCRAM-SHA-256", 1).await, 0);
    let (mut scram, first) = ScramClient::start(ScramMechanism::Sha256, "carol", "carol-secret");
    let r = authenticate(&mut c, &first, 2).await;
    assert_eq!(r.error_code, 0);
    let last = scram.respond(&r.auth_bytes).unwrap();
    let r = authenticate(&mut c, &last, 2).await;
    assert_eq!(r.error_code, 0);
    scram.finish(&r.auth_bytes).unwrap();
    metadata_works(&mut c).await;

    // SaslHandshake v0: the tokens go as raw size-prefixed frames.
    let mut c = b.client().await;
    assert_eq!(handshake(&mut c, "SCRAM-SHA-256", 0).await, 0);
    let (mut scram, first) = ScramClient::start(ScramMechanism::Sha256, "carol", "carol-secret");
    let server_first = raw_exchange(&mut c, &first).await;
    let last = scram.respond(&server_first).unwrap();
    let server_final = raw_exchange(&mut c, &last).await;
    scram.finish(&server_final).unwrap();
    metadata_works(&mut c).await;

    // A wrong password over v0 framing: no error frame exists, the connection closes.
    let mut c = b.client().await;
    assert_eq!(handshake(&mut c, "SCRAM-SHA-256", 0).await, 0);
    let (mut scram, first) = ScramClient::start(ScramMechanism::Sha256, "carol", "wrong");
    let server_first = raw_exchange(&mut c, &first).await;
    let last = scram.respond(&server_first).unwrap();
    raw_send(&mut c, &last).await;
    assert!(c.is_closed().await);
}

async fn raw_send(c: &mut Client, token: &[u8]) {
    c.stream
        .write_all(&(token.len() as i32).to_be_bytes())
        .await
        .unwrap();
    c.stream.write_all(token).await.unwrap();
}

async fn raw_exchange(c: &mut Client, token: &[u8]) -> Vec<u8> {
    raw_send(c, token).await;
    let size = c.stream.read_i32().await.unwrap();
    let mut reply = vec![0u8; size as usize];
    c.stream.read_exact(&mut reply).await.unwrap();
    reply
}

#[tokio::test]
async fn reauthentication_within_the_session_and_expiry_closes() {
    let b = start(&[("connections.max.reauth.ms", "1500")]).await;
    let mut c = b.client().await;
    assert_eq!(handshake(&mut c, "PLAIN", 1).await, 0);
    let r = authenticate(
        &mut c,
        &strom_security::plain_message("alice", "alice-secret"),
        1,
    )
    .await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.session_lifetime_ms, 1500);
    // Re-authenticate (KIP-368): same principal, on the same connection.
    assert_eq!(plain(&mut c, "alice", "alice-secret", 1).await, 0);
    metadata_works(&mut c).await;
    assert_eq!(
        b.broker
            .context()
            .metrics
            .connections
            .successful_reauthentication
            .get(),
        1
    );
    // Let the session run out: the next request closes the connection.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    c.send_only(12, &MetadataRequest::default().with_topics(None))
        .await;
    assert!(c.is_closed().await);
}

/// An unsecured JWS (`alg: none`) for `sub`, expiring `lifetime_s` seconds from now.
fn unsecured_token(sub: &str, lifetime_s: i64) -> String {
    use strom_security::oauthbearer::b64url;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = format!(
        r#"{{"sub":"{sub}","iat":{now},"exp":{}}}"#,
        now + lifetime_s
    );
    format!(
        "{}.{}.",
        b64url(br#"{"alg":"none"}"#),
        b64url(claims.as_bytes())
    )
}

#[tokio::test]
async fn oauthbearer_token_lifetime_error_json_and_bad_tokens() {
    use strom_security::oauthbearer::client_initial;
    let b = start(&[
        ("sasl.enabled.mechanisms", "PLAIN,OAUTHBEARER"),
        (
            "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
        ),
        ("connections.max.reauth.ms", "600000"),
    ])
    .await;
    // A valid token: the session lasts no longer than the token (not the 10 minutes of
    // connections.max.reauth.ms).
    let mut c = b.client().await;
    assert_eq!(handshake(&mut c, "OAUTHBEARER", 1).await, 0);
    let r = authenticate(&mut c, &client_initial(&unsecured_token("carol", 20)), 1).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    assert!(r.auth_bytes.is_empty());
    assert!(
        (1..=20_000).contains(&r.session_lifetime_ms),
        "{}",
        r.session_lifetime_ms
    );
    metadata_works(&mut c).await;
    // An expired token: Kafka's error JSON as a challenge, then the client's %x01, then
    // SASL_AUTHENTICATION_FAILED carrying the JSON, and the connection closes.
    let failed_before = b
        .broker
        .context()
        .metrics
        .connections
        .failed_authentication
        .get();
    let mut c = b.client().await;
    assert_eq!(handshake(&mut c, "OAUTHBEARER", 1).await, 0);
    let r = authenticate(&mut c, &client_initial(&unsecured_token("carol", -60)), 1).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(&r.auth_bytes[..], br#"{"status":"invalid_token"}"#);
    let r = authenticate(&mut c, &[0x01], 1).await;
    assert_eq!(r.error_code, 58, "SASL_AUTHENTICATION_FAILED");
    assert_eq!(
        r.error_message.as_deref(),
        Some(r#"{"status":"invalid_token"}"#)
    );
    assert!(c.is_closed().await);
    // Garbage, an oversized token, a signed token on an unsecured listener: refused, closed.
    let signed = format!(
        "{}.{}.c2ln",
        strom_security::oauthbearer::b64url(br#"{"alg":"RS256"}"#),
        strom_security::oauthbearer::b64url(b"{}")
    );
    for bad in [
        b"garbage".to_vec(),
        client_initial(&"a".repeat(300_000)),
        vec![0x01],
    ] {
        let mut c = b.client().await;
        assert_eq!(handshake(&mut c, "OAUTHBEARER", 1).await, 0);
        let r = authenticate(&mut c, &bad, 1).await;
        assert_eq!(r.error_code, 58, "{r:?}");
        assert!(c.is_closed().await);
    }
    let mut c = b.client().await;
    assert_eq!(handshake(&mut c, "OAUTHBEARER", 1).await, 0);
    let r = authenticate(&mut c, &client_initial(&signed), 1).await;
    assert_eq!(&r.auth_bytes[..], br#"{"status":"invalid_token"}"#);
    assert!(
        b.broker
            .context()
            .metrics
            .connections
            .failed_authentication
            .get()
            >= failed_before + 4
    );
    // The broker carries on.
    let mut c = b.plain_client().await;
    metadata_works(&mut c).await;
}

#[tokio::test]
async fn delegation_token_apis_answer_as_kafka_without_a_secret_key() {
    use kafka_protocol::messages::{
        CreateDelegationTokenRequest, DescribeDelegationTokenRequest, ExpireDelegationTokenRequest,
        RenewDelegationTokenRequest,
    };
    const AUTH_DISABLED: i16 = 61;
    const REQUEST_NOT_ALLOWED: i16 = 64;
    let b = start(&[
        (
            "listeners",
            "SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
        ),
        (
            "listener.security.protocol.map",
            "SASL_PLAINTEXT:SASL_PLAINTEXT,PLAINTEXT:PLAINTEXT",
        ),
        ("inter.broker.listener.name", "SASL_PLAINTEXT"),
    ])
    .await;
    // Authenticated with SASL: tokens are not enabled.
    let mut c = b.plain_client().await;
    let r = c
        .send(
            3,
            CreateDelegationTokenRequest::default().with_max_lifetime_ms(-1),
        )
        .await;
    assert_eq!(r.error_code, AUTH_DISABLED);
    assert_eq!(
        (r.principal_type.as_str(), r.principal_name.as_str()),
        ("User", "alice")
    );
    assert!(r.hmac.is_empty() && r.token_id.is_empty());
    let r = c
        .send(
            2,
            RenewDelegationTokenRequest::default().with_hmac(vec![1u8; 8].into()),
        )
        .await;
    assert_eq!((r.error_code, r.expiry_timestamp_ms), (AUTH_DISABLED, -1));
    let r = c
        .send(
            2,
            ExpireDelegationTokenRequest::default().with_hmac(vec![1u8; 8].into()),
        )
        .await;
    assert_eq!(r.error_code, AUTH_DISABLED);
    let r = c
        .send(
            3,
            DescribeDelegationTokenRequest::default().with_owners(None),
        )
        .await;
    assert_eq!(r.error_code, AUTH_DISABLED);
    assert!(r.tokens.is_empty());
    // Unauthenticated (PLAINTEXT): not allowed, as Kafka's allowTokenRequests.
    let plaintext = b.broker.listener_addr("PLAINTEXT").unwrap();
    let mut c = Client::connect(plaintext).await;
    let r = c
        .send(
            3,
            CreateDelegationTokenRequest::default().with_max_lifetime_ms(-1),
        )
        .await;
    assert_eq!(r.error_code, REQUEST_NOT_ALLOWED);
    let r = c
        .send(
            3,
            DescribeDelegationTokenRequest::default().with_owners(None),
        )
        .await;
    assert_eq!(r.error_code, REQUEST_NOT_ALLOWED);
}

#[test]
fn a_delegation_token_secret_key_enables_tokens_and_stays_hidden() {
    let map: BTreeMap<String, String> = [
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("log.dirs", "/tmp/strom-unused"),
        ("delegation.token.secret.key", "s3cret"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (config, _) = BrokerConfig::from_props(&map).unwrap();
    assert!(config.tokens.enabled());
    assert!(!format!("{config:?}").contains("s3cret"));
    // Listed by DescribeConfigs with an empty value (the handler answers it null).
    let entries = config.broker_entries();
    assert!(entries.iter().all(|(_, value)| !value.contains("s3cret")));
    assert!(entries
        .iter()
        .any(|(key, value)| key == "delegation.token.max.lifetime.ms" && value == "604800000"));
}

/// One SCRAM-SHA-512 login with a delegation token; whether it succeeded.
async fn token_login(b: &SaslBroker, token_id: &str, hmac: &[u8]) -> bool {
    use base64::Engine as _;
    let password = base64::engine::general_purpose::STANDARD.encode(hmac);
    let mut c = b.client().await;
    assert_eq!(handshake(&mut c, "SCRAM-SHA-512", 1).await, 0);
    let (mut scram, first) = ScramClient::start_token(ScramMechanism::Sha512, token_id, &password);
    let r = authenticate(&mut c, &first, 2).await;
    if r.error_code != 0 {
        return false;
    }
    let last = scram.respond(&r.auth_bytes).unwrap();
    let r = authenticate(&mut c, &last, 2).await;
    r.error_code == 0 && scram.finish(&r.auth_bytes).is_ok()
}

#[tokio::test]
async fn a_delegation_token_credential_is_computed_once_and_dropped_with_the_token() {
    use kafka_protocol::messages::{CreateDelegationTokenRequest, ExpireDelegationTokenRequest};
    const LOGINS: u32 = 50;
    let b = start(&[
        ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-512"),
        ("delegation.token.secret.key", "token-secret"),
    ])
    .await;
    let cache = &b.broker.context().token_credentials;
    assert!(cache.is_empty());
    let mut admin = b.plain_client().await;
    let created = admin
        .send(
            3,
            CreateDelegationTokenRequest::default().with_max_lifetime_ms(-1),
        )
        .await;
    assert_eq!(created.error_code, 0);
    let (token_id, hmac) = (created.token_id.to_string(), created.hmac.to_vec());
    // The image carrying the token reached the broker: its credentials are there already.
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while cache.len() != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the token's credentials were not computed");
    let started = std::time::Instant::now();
    for _ in 0..LOGINS {
        assert!(token_login(&b, &token_id, &hmac).await);
    }
    let per_login = started.elapsed() / LOGINS;
    eprintln!("{LOGINS} delegation-token SCRAM-SHA-512 logins: {per_login:?} per login");
    assert_eq!(cache.len(), 1);
    assert!(!token_login(&b, &token_id, b"not the hmac").await);

    // Expired: the token leaves the image, and its credentials the cache.
    let r = admin
        .send(
            2,
            ExpireDelegationTokenRequest::default()
                .with_hmac(hmac.clone().into())
                .with_expiry_time_period_ms(-1),
        )
        .await;
    assert_eq!(r.error_code, 0);
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !cache.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the expired token's credentials were kept");
    assert!(!token_login(&b, &token_id, &hmac).await);
}
