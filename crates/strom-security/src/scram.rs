//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka speaks them: the server's
//! exchange ([`ScramServer`]), the client's ([`ScramClient`]) and the stored credential
//! ([`ScramCredential`]: salt, stored key, server key, iterations; never the password).
//!
//! Every message is bounded ([`MESSAGE_BYTES_MAX`]) and parsed without panics; a message out
//! of order, malformed or failing the proof is an [`ScramError`] and ends the exchange.
//! Kafka's extensions in the client-first message (`tokenauth=true`) are read; channel
//! binding is not offered (gs2 header `n,,` or `y,,`), as in Kafka.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};
use std::num::NonZeroU32;

/// The longest SCRAM message accepted (Kafka's are a few hundred bytes).
pub const MESSAGE_BYTES_MAX: usize = 4096;
/// Kafka's bounds for the iteration count of a stored credential
/// (`ScramMechanism.minIterations` / `maxIterations`).
pub const ITERATIONS_MIN: u32 = 4096;
pub const ITERATIONS_MAX: u32 = 16384;

/// One of the two SCRAM mechanisms, with Kafka's ids (`ScramMechanism` in the
/// AlterUserScramCredentials API: 1 and 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        match name {
            "SCRAM-SHA-256" => Some(ScramMechanism::Sha256),
            "SCRAM-SHA-512" => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's wire id (AlterUserScramCredentials, DescribeUserScramCredentials).
    pub fn id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_id(id: i8) -> Option<ScramMechanism> {
        match id {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2_algorithm(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    /// The output length of the hash, the length of every key.
    pub fn key_len(self) -> usize {
        self.digest_algorithm().output_len()
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        let key = hmac::Key::new(self.hmac_algorithm(), key);
        hmac::sign(&key, data).as_ref().to_vec()
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest_algorithm(), data)
            .as_ref()
            .to_vec()
    }

    /// `Hi(password, salt, iterations)`: the salted password (PBKDF2).
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.key_len()];
        let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(
            self.pbkdf2_algorithm(),
            iterations,
            salt,
            password,
            &mut out,
        );
        out
    }
}

/// Why a SCRAM exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// The message does not follow RFC 5802 (or is out of order); the text says what.
    #[error("invalid SCRAM message: {0}")]
    Malformed(&'static str),
    /// Unknown user or wrong password (one error for both, as Kafka answers).
    #[error("Authentication failed during authentication due to invalid credentials with SASL mechanism {0}")]
    InvalidCredentials(&'static str),
    /// The server's signature did not verify (client side).
    #[error("the server's SCRAM signature is invalid")]
    BadServerSignature,
    /// The server answered with an error (`e=...`, client side).
    #[error("the server refused the SCRAM exchange: {0}")]
    ServerError(String),
}

/// A stored SCRAM credential (Kafka's `ScramCredential`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl ScramCredential {
    /// The credential of a salted password (what AlterUserScramCredentials carries).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// The credential of `password` with a fresh random salt.
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> ScramCredential {
        let salt = random_bytes(24);
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        ScramCredential::from_salted_password(mechanism, &salt, &salted, iterations)
    }
}

/// Random bytes from the system's generator.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    // SystemRandom fails only if the OS generator does; fall back to a time-derived fill
    // would be unsafe, so an all-zero nonce is avoided by hashing the time instead.
    if ring::rand::SystemRandom::new().fill(&mut out).is_err() {
        let seed = format!("{:?}", std::time::SystemTime::now());
        let hash = digest::digest(&digest::SHA512, seed.as_bytes());
        for (byte, h) in out.iter_mut().zip(hash.as_ref().iter().cycle()) {
            *byte = *h;
        }
    }
    out
}

fn nonce() -> String {
    B64.encode(random_bytes(24))
}

/// Splits `a=x,b=y` into attributes; a value may hold `=` but not `,`.
fn attributes(message: &str) -> Result<Vec<(char, &str)>, ScramError> {
    message
        .split(',')
        .map(|part| {
            let mut chars = part.chars();
            let name = chars
                .next()
                .ok_or(ScramError::Malformed("empty attribute"))?;
            let value = part
                .get(1..)
                .and_then(|rest| rest.strip_prefix('='))
                .ok_or(ScramError::Malformed("attribute without '='"))?;
            Ok((name, value))
        })
        .collect()
}

/// Decodes a SCRAM `saslname` (`=2C` is `,`, `=3D` is `=`).
fn decode_name(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3);
        match code {
            Some("2C") => out.push(','),
            Some("3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in the user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Encodes a user name as a SCRAM `saslname`.
pub fn encode_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn text(bytes: &[u8]) -> Result<&str, ScramError> {
    if bytes.len() > MESSAGE_BYTES_MAX {
        return Err(ScramError::Malformed("message too long"));
    }
    std::str::from_utf8(bytes).map_err(|_| ScramError::Malformed("not UTF-8"))
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// The client-first message, parsed.
#[derive(Debug, Clone)]
pub struct ClientFirst {
    pub user: String,
    pub nonce: String,
    /// `tokenauth=true` among the extensions (delegation-token authentication).
    pub token_auth: bool,
    /// The gs2 header (`n,,`), echoed base64 in the client-final message.
    gs2_header: String,
    bare: String,
}

/// Parses a client-first message.
pub fn parse_client_first(message: &[u8]) -> Result<ClientFirst, ScramError> {
    let message = text(message)?;
    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    let (flag, rest) = message
        .split_once(',')
        .ok_or(ScramError::Malformed("no gs2 header"))?;
    if flag != "n" && flag != "y" {
        return Err(ScramError::Malformed(
            "channel binding is not supported (gs2 flag must be n or y)",
        ));
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or(ScramError::Malformed("no gs2 header"))?;
    let gs2_header = format!("{flag},{authzid},");
    let mut parts = bare.split(',');
    let user = match parts.next() {
        Some(part) if part.starts_with("m=") => {
            return Err(ScramError::Malformed("mandatory extensions unsupported"))
        }
        Some(part) => part
            .strip_prefix("n=")
            .ok_or(ScramError::Malformed("expected n= then r="))
            .and_then(decode_name)?,
        None => return Err(ScramError::Malformed("no user name")),
    };
    let nonce = parts
        .next()
        .and_then(|part| part.strip_prefix("r="))
        .ok_or(ScramError::Malformed("expected n= then r="))?
        .to_string();
    // Kafka's extensions (`tokenauth=true`) follow as `key=value` pairs.
    let mut token_auth = false;
    for part in parts {
        match part.split_once('=') {
            Some(("tokenauth", value)) => token_auth = value.eq_ignore_ascii_case("true"),
            Some((key, _)) if !key.is_empty() => {}
            _ => return Err(ScramError::Malformed("bad extension")),
        }
    }
    if nonce.is_empty() || !nonce.chars().all(|c| c.is_ascii_graphic() && c != ',') {
        return Err(ScramError::Malformed("bad nonce"));
    }
    if let Some(authzid) = authzid.strip_prefix("a=") {
        if decode_name(authzid)? != user {
            return Err(ScramError::Malformed(
                "the authorization id must equal the user name",
            ));
        }
    } else if !authzid.is_empty() {
        return Err(ScramError::Malformed("bad authorization id"));
    }
    Ok(ClientFirst {
        user,
        nonce,
        token_auth,
        gs2_header,
        bare: bare.to_string(),
    })
}

/// The server side of one exchange: [`ScramServer::first`] with the client-first message
/// and the user's credential (`None` for an unknown user, answered like a wrong password
/// after the client's proof, so users cannot be probed), then [`ScramServer::last`].
#[derive(Debug)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    client_first: ClientFirst,
    credential: Option<ScramCredential>,
    server_first: String,
    nonce: String,
}

impl ScramServer {
    /// Answers the client-first message: `r=...,s=...,i=...`.
    pub fn first(
        mechanism: ScramMechanism,
        client_first: ClientFirst,
        credential: Option<ScramCredential>,
    ) -> (ScramServer, Vec<u8>) {
        let nonce = format!("{}{}", client_first.nonce, nonce());
        // An unknown user gets a made-up salt (stable per name would be better against
        // probing; a random one still fails the proof the same way).
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (random_bytes(24), ITERATIONS_MIN),
        };
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(salt));
        let reply = server_first.clone().into_bytes();
        (
            ScramServer {
                mechanism,
                client_first,
                credential,
                server_first,
                nonce,
            },
            reply,
        )
    }

    /// The user named in the client-first message.
    pub fn user(&self) -> &str {
        &self.client_first.user
    }

    pub fn token_auth(&self) -> bool {
        self.client_first.token_auth
    }

    /// Checks the client-final message; answers `v=...` on success.
    pub fn last(self, message: &[u8]) -> Result<Vec<u8>, ScramError> {
        let message = text(message)?;
        let (without_proof, proof) = message
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let attrs = attributes(without_proof)?;
        let mut channel = None;
        let mut nonce = None;
        for (name, value) in attrs {
            match name {
                'c' if channel.is_none() => channel = Some(value),
                'r' if nonce.is_none() => nonce = Some(value),
                _ => {
                    return Err(ScramError::Malformed(
                        "unexpected attribute in client-final",
                    ))
                }
            }
        }
        let expected_channel = B64.encode(self.client_first.gs2_header.as_bytes());
        if channel != Some(expected_channel.as_str()) {
            return Err(ScramError::Malformed("channel binding does not match"));
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(ScramError::Malformed("nonce does not match"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let failed = ScramError::InvalidCredentials(self.mechanism.name());
        let credential = self.credential.as_ref().ok_or(failed.clone())?;
        if proof.len() != self.mechanism.key_len() {
            return Err(failed);
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first.bare, self.server_first, without_proof
        );
        let signature = self
            .mechanism
            .hmac(&credential.stored_key, auth_message.as_bytes());
        let client_key = xor(&proof, &signature);
        let stored = self.mechanism.hash(&client_key);
        if !crate::constant_time_eq(&stored, &credential.stored_key) {
            return Err(failed);
        }
        let server_signature = self
            .mechanism
            .hmac(&credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// The salted passwords this process derived last, by mechanism, password, salt and
/// iterations (at most [`SALTED_CACHED_MAX`]): a client reconnecting with the same
/// credentials (a quorum member, a follower fetcher) derives its key once, not per
/// connection. PBKDF2 runs on the caller's thread; in an unoptimized build it can outlast
/// the caller's timeout, and without the cache every retry would start again.
static SALTED: std::sync::Mutex<Vec<(SaltedKey, Vec<u8>)>> = std::sync::Mutex::new(Vec::new());
/// The most salted passwords [`SALTED`] keeps.
const SALTED_CACHED_MAX: usize = 16;

type SaltedKey = (ScramMechanism, String, Vec<u8>, u32);

fn salted_cached(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    let key: SaltedKey = (mechanism, password.to_string(), salt.to_vec(), iterations);
    if let Ok(cache) = SALTED.lock() {
        if let Some((_, salted)) = cache.iter().find(|(k, _)| *k == key) {
            return salted.clone();
        }
    }
    let salted = mechanism.salted_password(password.as_bytes(), salt, iterations);
    if let Ok(mut cache) = SALTED.lock() {
        if cache.len() >= SALTED_CACHED_MAX {
            cache.remove(0);
        }
        cache.push((key, salted.clone()));
    }
    salted
}

/// The client side of one exchange.
#[derive(Debug)]
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    nonce: String,
    client_first_bare: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// Starts an exchange; returns the client-first message.
    pub fn start(mechanism: ScramMechanism, user: &str, password: &str) -> (ScramClient, Vec<u8>) {
        Self::start_with(mechanism, user, password, "")
    }

    /// Starts a delegation-token exchange: the user name is the token id, the password the
    /// base64 of the token's HMAC, and Kafka's extension `tokenauth=true` follows the nonce.
    pub fn start_token(
        mechanism: ScramMechanism,
        token_id: &str,
        hmac_base64: &str,
    ) -> (ScramClient, Vec<u8>) {
        Self::start_with(mechanism, token_id, hmac_base64, ",tokenauth=true")
    }

    fn start_with(
        mechanism: ScramMechanism,
        user: &str,
        password: &str,
        extensions: &str,
    ) -> (ScramClient, Vec<u8>) {
        let nonce = nonce();
        let client_first_bare = format!("n={},r={nonce}{extensions}", encode_name(user));
        let message = format!("n,,{client_first_bare}").into_bytes();
        (
            ScramClient {
                mechanism,
                password: password.to_string(),
                nonce,
                client_first_bare,
                server_signature: None,
            },
            message,
        )
    }

    /// Answers the server-first message with the client-final message.
    pub fn respond(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let server_first = text(server_first)?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for (name, value) in attributes(server_first)? {
            match name {
                'e' => return Err(ScramError::ServerError(value.to_string())),
                'r' => nonce = Some(value),
                's' => salt = Some(value),
                'i' => iterations = value.parse::<u32>().ok(),
                _ => {}
            }
        }
        let nonce = nonce.ok_or(ScramError::Malformed("no nonce from the server"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramError::Malformed(
                "the server's nonce does not extend ours",
            ));
        }
        let salt = B64
            .decode(salt.ok_or(ScramError::Malformed("no salt"))?)
            .map_err(|_| ScramError::Malformed("salt is not base64"))?;
        let iterations = iterations
            .filter(|i| (1..=1_000_000).contains(i))
            .ok_or(ScramError::Malformed("bad iteration count"))?;
        let salted = salted_cached(self.mechanism, &self.password, &salt, iterations);
        let client_key = self.mechanism.hmac(&salted, b"Client Key");
        let stored_key = self.mechanism.hash(&client_key);
        let without_proof = format!("c={},r={nonce}", B64.encode(b"n,,"));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = self.mechanism.hmac(&stored_key, auth_message.as_bytes());
        let proof = xor(&client_key, &signature);
        let server_key = self.mechanism.hmac(&salted, b"Server Key");
        self.server_signature = Some(self.mechanism.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message.
    pub fn finish(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let server_final = text(server_final)?;
        for (name, value) in attributes(server_final)? {
            match name {
                'e' => return Err(ScramError::ServerError(value.to_string())),
                'v' => {
                    let got = B64
                        .decode(value)
                        .map_err(|_| ScramError::Malformed("server signature is not base64"))?;
                    return match &self.server_signature {
                        Some(expected) if *expected == got => Ok(()),
                        _ => Err(ScramError::BadServerSignature),
                    };
                }
                _ => {}
            }
        }
        Err(ScramError::Malformed("no server signature"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(mechanism: ScramMechanism, stored: &str, given: &str) -> Result<(), ScramError> {
        let credential = ScramCredential::from_password(mechanism, stored, 4096);
        let (mut client, first) = ScramClient::start(mechanism, "al,ice", given);
        let parsed = parse_client_first(&first)?;
        assert_eq!(parsed.user, "al,ice");
        let (server, server_first) = ScramServer::first(mechanism, parsed, Some(credential));
        let client_final = client.respond(&server_first)?;
        let server_final = server.last(&client_final)?;
        client.finish(&server_final)
    }

    #[test]
    fn both_mechanisms_authenticate_the_right_password_only() {
        for mechanism in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            exchange(mechanism, "secret", "secret").unwrap();
            assert!(matches!(
                exchange(mechanism, "secret", "wrong"),
                Err(ScramError::InvalidCredentials(_))
            ));
        }
    }

    /// RFC 7677's SCRAM-SHA-256 example: the salted password's keys as the RFC derives them.
    #[test]
    fn rfc7677_vector() {
        let m = ScramMechanism::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = m.salted_password(b"pencil", &salt, 4096);
        let credential = ScramCredential::from_salted_password(m, &salt, &salted, 4096);
        let client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let server_signature = m.hmac(&credential.server_key, auth.as_bytes());
        assert_eq!(
            B64.encode(server_signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn garbage_and_out_of_order_messages_are_errors() {
        for bad in [
            &b""[..],
            b"n,,",
            b"p=tls-unique,,n=a,r=b",
            b"n,,r=abc,n=user",
            b"c=biws,r=x,p=abc",
            b"n,,n=us=ZZer,r=x",
            &[0xff, 0xfe][..],
        ] {
            assert!(parse_client_first(bad).is_err(), "{bad:?}");
        }
        assert!(parse_client_first(&vec![b'a'; MESSAGE_BYTES_MAX + 1]).is_err());
        let parsed = parse_client_first(b"n,,n=user,r=abc").unwrap();
        let (server, _) = ScramServer::first(ScramMechanism::Sha256, parsed, None);
        // The client-first again instead of the client-final.
        assert!(server.last(b"n,,n=user,r=abc").is_err());
        let parsed = parse_client_first(b"n,,n=user,r=abc,tokenauth=true").unwrap();
        assert!(parsed.token_auth);
    }
}
