//! The quorum transport over TLS and SASL (`security.rs`), three voters in one process over
//! real TCP on 127.0.0.1, certificates from `testdata/` (see its README): a SASL_SSL quorum
//! with mutual TLS elects, replicates and forwards; clients with the right settings are
//! served, and a plaintext client, a wrong password, an untrusted certificate and a client
//! without a certificate are refused while the quorum carries on.

mod toy;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use strom_raft::{QuorumClient, QuorumSasl, QuorumSecurity, RaftNode, SubmitError};
use strom_security::TlsSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use toy::{config, free_addrs, put, wait_leader, wait_state, KvController, KvNode, KvReply};

const LIMIT: Duration = Duration::from_secs(15);

fn testdata(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
        .display()
        .to_string()
}

/// TLS settings from Kafka's keys: `keystore` (a PEM key + chain) or none, trusting `ca`.
fn tls(keystore: Option<&str>, ca: &str, client_auth: &str) -> TlsSettings {
    let mut keys: BTreeMap<&str, String> = BTreeMap::new();
    keys.insert("ssl.truststore.type", "PEM".into());
    keys.insert("ssl.truststore.location", testdata(ca));
    keys.insert("ssl.client.auth", client_auth.into());
    if let Some(keystore) = keystore {
        keys.insert("ssl.keystore.type", "PEM".into());
        keys.insert("ssl.keystore.location", testdata(keystore));
    }
    TlsSettings::from_lookup(&|k: &str| keys.get(k).cloned()).unwrap()
}

fn sasl(password: &str) -> QuorumSasl {
    QuorumSasl {
        mechanism: "PLAIN".into(),
        enabled: vec!["PLAIN".into()],
        plain_users: [("controller".to_string(), "controller-secret".to_string())].into(),
        username: "controller".into(),
        password: password.into(),
    }
}

fn sasl_ssl(keystore: &str, ca: &str, password: &str) -> QuorumSecurity {
    QuorumSecurity {
        listener_name: "CONTROLLER".into(),
        tls: Some(tls(Some(keystore), ca, "required")),
        sasl: Some(sasl(password)),
        authorizer: None,
    }
}

async fn start_secured(addrs: &[std::net::SocketAddr], dir: &std::path::Path) -> Vec<KvNode> {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let mut config = config(id, addrs, dir);
        config.security = sasl_ssl("node.pem", "ca.crt", "controller-secret");
        nodes.push(RaftNode::start(config, KvController).await.unwrap());
    }
    nodes
}

fn client(addrs: &[std::net::SocketAddr], security: Option<QuorumSecurity>) -> QuorumClient {
    let mut client = QuorumClient::new(
        addrs.iter().map(|a| a.to_string()).collect(),
        Duration::from_secs(3),
    );
    client.retry_backoff = Duration::from_millis(50);
    match security {
        Some(security) => client.secured(security).unwrap(),
        None => client,
    }
}

async fn refused(client: &QuorumClient) -> SubmitError {
    match client.submit::<_, KvReply>(&put("refused", 1)).await {
        Ok(reply) => panic!("served: {reply:?}"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sasl_ssl_quorum_with_mutual_tls_replicates_and_refuses_outsiders() {
    let dir = tempfile::tempdir().unwrap();
    let addrs = free_addrs(3);
    let nodes = start_secured(&addrs, dir.path()).await;
    let all: Vec<&KvNode> = nodes.iter().collect();
    let leader = wait_leader(&all, LIMIT).await;

    // A follower forwards to the leader over the secured transport.
    let follower = nodes.iter().find(|n| n.node_id() != leader).unwrap();
    assert_eq!(
        follower.submit(put("k0", 0)).await.unwrap(),
        KvReply::Written
    );
    // A client with the listener's settings is served.
    let good = client(
        &addrs,
        Some(sasl_ssl("node.pem", "ca.crt", "controller-secret")),
    );
    let reply: KvReply = good.submit(&put("k1", 1)).await.unwrap();
    assert_eq!(reply, KvReply::Written);

    // Outsiders get nothing: plaintext, a wrong password, an untrusted certificate, and
    // no certificate where one is required.
    refused(&client(&addrs, None)).await;
    refused(&client(
        &addrs,
        Some(sasl_ssl("node.pem", "ca.crt", "wrong")),
    ))
    .await;
    refused(&client(
        &addrs,
        Some(sasl_ssl("rogue.pem", "rogue-ca.crt", "controller-secret")),
    ))
    .await;
    let mut no_cert = sasl_ssl("node.pem", "ca.crt", "controller-secret");
    no_cert.tls = Some(tls(None, "ca.crt", "none"));
    refused(&client(&addrs, Some(no_cert))).await;

    // A client that speaks no TLS at all: the connection ends, the node carries on.
    let mut raw = tokio::net::TcpStream::connect(addrs[0]).await.unwrap();
    raw.write_all(&[0, 0, 0, 3, 6, b'{', b'}']).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(LIMIT, raw.read_to_end(&mut answer))
        .await
        .expect("the connection was not closed");
    // At most rustls' TLS alert record (content type 21), never a response frame.
    assert!(
        read.is_err() || answer.is_empty() || (answer[0] == 21 && answer.len() <= 7),
        "answered {answer:?}"
    );

    // The quorum carries on and every member holds what was written.
    let reply: KvReply = good.submit(&put("k2", 2)).await.unwrap();
    assert_eq!(reply, KvReply::Written);
    let expected: BTreeMap<String, u64> = (0..3).map(|i| (format!("k{i}"), i)).collect();
    for node in &nodes {
        wait_state(node, &expected, LIMIT).await;
    }
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_a_wrong_password_cannot_take_part() {
    let dir = tempfile::tempdir().unwrap();
    let addrs = free_addrs(3);
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let mut config = config(id, &addrs, dir.path());
        // Node 3 sends another password and expects it of the others.
        let mut security = sasl_ssl("node.pem", "ca.crt", "controller-secret");
        if id == 3 {
            security.sasl = Some(QuorumSasl {
                plain_users: [("controller".to_string(), "wrong".to_string())].into(),
                ..sasl("wrong")
            });
        }
        config.security = security;
        nodes.push(RaftNode::start(config, KvController).await.unwrap());
    }
    let pair: Vec<&KvNode> = nodes[..2].iter().collect();
    let leader = wait_leader(&pair, LIMIT).await;
    assert_ne!(leader, 3);
    let reply = nodes[0].submit(put("k", 1)).await.unwrap();
    assert_eq!(reply, KvReply::Written);
    // Node 3 never learns of it: nothing reaches it, and it reaches nobody.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(nodes[2].state().state.0.is_empty());
    assert!(matches!(
        nodes[2].submit(put("x", 1)).await,
        Err(SubmitError::Unavailable(_)
            | SubmitError::Timeout { .. }
            | SubmitError::NotLeader { .. })
    ));
    for node in nodes {
        node.shutdown().await;
    }
}

/// The listener's settings with an authorizer whose only super user is `User:controller`,
/// and `intruder` among the PLAIN users (authenticated, not authorized).
fn authorized(username: &str, password: &str) -> QuorumSecurity {
    let mut security = sasl_ssl("node.pem", "ca.crt", password);
    if let Some(sasl) = security.sasl.as_mut() {
        sasl.plain_users
            .insert("intruder".into(), "intruder-secret".into());
        sasl.username = username.into();
    }
    security.authorizer = Some(strom_meta::acl::AuthorizerSettings {
        super_users: vec!["User:controller".into()],
        allow_everyone_if_no_acl_found: false,
    });
    security
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_authorizer_only_allowed_principals_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let addrs = free_addrs(3);
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let mut config = config(id, &addrs, dir.path());
        config.security = authorized("controller", "controller-secret");
        nodes.push(RaftNode::start(config, KvController).await.unwrap());
    }
    let all: Vec<&KvNode> = nodes.iter().collect();
    // The super user's raft traffic and forwarding go through.
    let leader = wait_leader(&all, LIMIT).await;
    let follower = nodes.iter().find(|n| n.node_id() != leader).unwrap();
    assert_eq!(
        follower.submit(put("k", 1)).await.unwrap(),
        KvReply::Written
    );

    // An authenticated principal without an ACL: its status request (DESCRIBE) and its
    // submit (CLUSTER_ACTION) are refused, saying why.
    let intruder = client(&addrs, Some(authorized("intruder", "intruder-secret")));
    let error = intruder.status_of(&addrs[0].to_string()).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("CLUSTER_AUTHORIZATION_FAILED: principal User:intruder")
            && text.contains("DESCRIBE"),
        "{text}"
    );
    refused(&intruder).await;
    // The super user is served.
    let controller = client(&addrs, Some(authorized("controller", "controller-secret")));
    assert_eq!(
        controller
            .status_of(&addrs[0].to_string())
            .await
            .unwrap()
            .node_id,
        1
    );
    let reply: KvReply = controller.submit(&put("k2", 2)).await.unwrap();
    assert_eq!(reply, KvReply::Written);
    for node in nodes {
        node.shutdown().await;
    }
}

/// SCRAM-SHA-512 on a SASL_PLAINTEXT controller listener, `username` and `password` sent.
fn scram(username: &str, password: &str) -> QuorumSecurity {
    QuorumSecurity {
        listener_name: "CONTROLLER".into(),
        tls: None,
        sasl: Some(QuorumSasl {
            mechanism: "SCRAM-SHA-512".into(),
            enabled: vec!["SCRAM-SHA-512".into()],
            plain_users: BTreeMap::new(),
            username: username.into(),
            password: password.into(),
        }),
        authorizer: None,
    }
}

/// Writes one raw frame (`kind`, then `body` as is) and reads what comes back until the
/// node closes the connection (bounded by [`LIMIT`]).
async fn raw_exchange(addr: std::net::SocketAddr, frames: &[(u32, u8, Vec<u8>)]) -> Vec<u8> {
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    for (len, kind, body) in frames {
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.push(*kind);
        bytes.extend_from_slice(body);
        // The node may close before all is written: only what comes back matters.
        let _ = raw.write_all(&bytes).await;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(LIMIT, raw.read_to_end(&mut answer))
        .await
        .expect("the connection was not closed");
    if read.is_err() {
        answer.clear();
    }
    answer
}

fn authenticate_frame(mechanism: &str, token: &[u8]) -> (u32, u8, Vec<u8>) {
    let body =
        serde_json::to_vec(&serde_json::json!({"mechanism": mechanism, "token": token})).unwrap();
    (body.len() as u32 + 1, 9, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scram_quorum_authenticates_with_its_bootstrap_users_and_refuses_the_rest() {
    use strom_raft::bootstrap_scram::BootstrapScram;
    use strom_security::{ScramCredential, ScramMechanism};

    let dir = tempfile::tempdir().unwrap();
    let addrs = free_addrs(3);
    let sha512 = ScramMechanism::Sha512;
    let users = vec![BootstrapScram {
        mechanism: sha512,
        user: "controller".into(),
        credential: ScramCredential::from_password(sha512, "controller-secret", 4096),
    }];
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let mut config = config(id, &addrs, dir.path());
        config.security = scram("controller", "controller-secret");
        config.bootstrap_scram = users.clone();
        nodes.push(RaftNode::start(config, KvController).await.unwrap());
    }
    // The toy state holds no SCRAM credential: the bootstrap users form the quorum. Each
    // new connection derives the salted password (PBKDF2), so the leader may not have
    // reached a quorum yet when it is first asked: retried, bounded.
    let all: Vec<&KvNode> = nodes.iter().collect();
    let leader = wait_leader(&all, LIMIT).await;
    let follower = nodes.iter().find(|n| n.node_id() != leader).unwrap();
    let started = std::time::Instant::now();
    let written = loop {
        match follower.submit(put("k0", 0)).await {
            Ok(reply) => break reply,
            Err(e) if started.elapsed() < LIMIT => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the SCRAM quorum never committed: {e}"),
        }
    };
    eprintln!("first write committed after {:?}", started.elapsed());
    assert_eq!(written, KvReply::Written);
    let good = client(&addrs, Some(scram("controller", "controller-secret")));
    let reply: KvReply = good.submit(&put("k1", 1)).await.unwrap();
    assert_eq!(reply, KvReply::Written);

    // A wrong password, an unknown user and a mechanism the listener does not enable are
    // not served (the client retries every node until its timeout).
    // The client's error keeps the refusal's reason, not only that it timed out.
    for (user, password) in [("controller", "wrong"), ("nobody", "controller-secret")] {
        let error = refused(&client(&addrs, Some(scram(user, password)))).await;
        assert!(matches!(error, SubmitError::Timeout { .. }), "{error:?}");
        let text = error.to_string();
        assert!(
            text.contains("timed out") && text.contains("authentication failed"),
            "{text}"
        );
    }
    let mut plain = scram("controller", "controller-secret");
    if let Some(sasl) = plain.sasl.as_mut() {
        sasl.mechanism = "PLAIN".into();
    }
    refused(&client(&addrs, Some(plain))).await;

    // Bad input before authentication: answered with an error or closed, never served.
    let target = addrs[0];
    // The client-final message first (out of order): refused with the reason, then closed.
    let answer = raw_exchange(
        target,
        &[authenticate_frame("SCRAM-SHA-512", b"c=biws,r=abc,p=AAAA")],
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.contains("invalid SCRAM message"), "{text}");
    // A request before authenticating, and a frame over the pre-authentication bound: no
    // answer at all.
    let submit = serde_json::to_vec(&serde_json::json!({})).unwrap();
    assert!(
        raw_exchange(target, &[(submit.len() as u32 + 1, 4, submit)])
            .await
            .is_empty()
    );
    let oversized = strom_raft::security::AUTH_FRAME_BYTES_MAX as u32 + 1;
    assert!(raw_exchange(target, &[(oversized, 9, Vec::new())])
        .await
        .is_empty());
    // Delegation tokens are not accepted here.
    let answer = raw_exchange(
        target,
        &[authenticate_frame(
            "SCRAM-SHA-512",
            b"n,,n=controller,r=abcdefgh,tokenauth=true",
        )],
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.contains("delegation tokens"), "{text}");

    // The quorum carries on and every member holds what was written.
    let reply: KvReply = good.submit(&put("k2", 2)).await.unwrap();
    assert_eq!(reply, KvReply::Written);
    let expected: BTreeMap<String, u64> = (0..3).map(|i| (format!("k{i}"), i)).collect();
    for node in &nodes {
        wait_state(node, &expected, LIMIT).await;
    }
    for node in nodes {
        node.shutdown().await;
    }
}
