//! SASL/OAUTHBEARER (RFC 7628, Kafka's KIP-255) on the server side: the client's initial
//! response, and the two token validators Kafka ships.
//!
//! - [`Validator::Unsecured`]: Kafka's default `OAuthBearerUnsecuredValidatorCallbackHandler`.
//!   The token is an unsecured JWS (`alg: none`, empty signature); the principal comes from
//!   a claim (`unsecuredValidatorPrincipalClaimName`, `sub`), `exp` is required, `iat`
//!   optional, both checked with `unsecuredValidatorAllowableClockSkewMs`, and every scope of
//!   `unsecuredValidatorRequiredScope` must be in the token's scope claim. Anyone can write
//!   such a token: it is for development, as in Kafka.
//! - [`Validator::Jwks`]: Kafka's `OAuthBearerValidatorCallbackHandler` (KIP-768). The token
//!   is a signed JWS checked against the keys of a JWKS (`sasl.oauthbearer.jwks.endpoint.url`:
//!   a `file://` path re-read when it changes, or an `https://` endpoint fetched and refreshed
//!   in the background, see `jwks_http.rs`); `exp` and `iat` are required, `nbf` honoured, `aud` and `iss` checked
//!   against `sasl.oauthbearer.expected.audience` / `.expected.issuer` (a token carrying an
//!   audience is refused when none is expected, as jose4j does), with
//!   `sasl.oauthbearer.clock.skew.seconds`; the principal is `sasl.oauthbearer.sub.claim.name`.
//!   RS256/384/512, PS256/384/512, ES256 and ES384 are verified with ring (the crypto the
//!   rustls provider already builds); `none` and HMAC algorithms are refused.
//!
//! A refused token is answered, as Kafka does, with the error JSON
//! (`{"status":"invalid_token"}`) as a server challenge; the client answers `\x01` and the
//! exchange then fails with that JSON as the message. The detailed reason goes to the
//! broker's audit log only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

/// The mechanism's name.
pub const MECHANISM: &str = "OAUTHBEARER";
/// The longest token accepted. JWTs are a few kilobytes; this bounds the JSON parsed from an
/// unauthenticated client well below the SASL frame bound.
pub const TOKEN_BYTES_MAX: usize = 65_536;
/// The most keys read from a JWKS document.
pub const JWKS_KEYS_MAX: usize = 256;
/// The largest JWKS file read.
pub const JWKS_BYTES_MAX: u64 = 4 << 20;
/// The byte the client sends after receiving the server's error (RFC 7628 section 3.2.3).
pub const CONTROL_A: u8 = 0x01;

/// Kafka's class names for the two validators (`sasl.server.callback.handler.class`).
pub const SECURED_VALIDATOR_CLASSES: &[&str] = &[
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
];
pub const UNSECURED_VALIDATOR_CLASS: &str =
    "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler";

/// base64url, with or without padding (JWS segments have none; some writers add it).
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes bytes as unpadded base64url (for tokens built in tests and by clients).
pub fn b64url(bytes: &[u8]) -> String {
    B64URL.encode(bytes)
}

/// The client's initial response: `n,[a=authzid],\x01auth=Bearer <token>\x01[k=v\x01]*\x01`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInitial {
    /// The requested authorization id (empty when none).
    pub authzid: String,
    pub token: String,
    /// Extensions (`key=value` pairs other than `auth`).
    pub extensions: BTreeMap<String, String>,
}

/// Why a client's initial response was refused (Kafka's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid OAUTHBEARER client first message: {0}")]
pub struct InitialError(pub &'static str);

/// Parses the client's initial response as Kafka's `OAuthBearerClientInitialResponse`.
pub fn parse_client_initial(message: &[u8]) -> Result<ClientInitial, InitialError> {
    if message.len() > TOKEN_BYTES_MAX + 4096 {
        return Err(InitialError("too long"));
    }
    let text = std::str::from_utf8(message).map_err(|_| InitialError("not UTF-8"))?;
    let rest = text
        .strip_prefix("n,")
        .ok_or(InitialError("expected the GS2 header n,"))?;
    let (authzid, rest) = rest
        .split_once(',')
        .ok_or(InitialError("expected the GS2 header n,[a=authzid],"))?;
    let authzid = if authzid.is_empty() {
        String::new()
    } else {
        let name = authzid
            .strip_prefix("a=")
            .ok_or(InitialError("bad authorization id"))?;
        decode_saslname(name).ok_or(InitialError("bad authorization id"))?
    };
    let body = rest
        .strip_prefix('\u{1}')
        .and_then(|r| r.strip_suffix("\u{1}\u{1}"))
        .ok_or(InitialError("expected key=value pairs separated by %x01"))?;
    let mut auth = None;
    let mut extensions = BTreeMap::new();
    for pair in body.split('\u{1}') {
        let (key, value) = pair
            .split_once('=')
            .ok_or(InitialError("expected key=value"))?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(InitialError("bad key"));
        }
        if value.is_empty()
            || !value
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) || b" \t\r\n".contains(&b))
        {
            return Err(InitialError("bad value"));
        }
        if key == "auth" {
            auth = Some(value);
        } else {
            extensions.insert(key.to_string(), value.to_string());
        }
    }
    let auth = auth.ok_or(InitialError("'auth' not specified"))?;
    let (scheme, token) = auth
        .split_once(' ')
        .ok_or(InitialError("invalid 'auth' format"))?;
    let token = token.trim_start_matches(' ');
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(InitialError("the scheme must be Bearer"));
    }
    if token.is_empty()
        || token.len() > TOKEN_BYTES_MAX
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(InitialError("invalid 'auth' format"));
    }
    Ok(ClientInitial {
        authzid,
        token: token.to_string(),
        extensions,
    })
}

/// A SASL name with `=2C` and `=3D` escapes (RFC 5801).
fn decode_saslname(name: &str) -> Option<String> {
    if name.is_empty() || name.bytes().any(|b| b == 0 || b >= 0x80) {
        return None;
    }
    let mut out = String::new();
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let escape = rest.get(i..i + 3)?;
        out.push(match escape {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// The client's initial response for `token` (what clients send; used by tests).
pub fn client_initial(token: &str) -> Vec<u8> {
    format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes()
}

/// A token that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidToken {
    /// The principal's name (the subject claim).
    pub principal: String,
    /// When the token expires (`exp`), milliseconds since the epoch.
    pub expires_at_ms: i64,
    pub scopes: Vec<String>,
}

/// Why a token was refused: what the client is told (`status`, `scope`) and why (`reason`,
/// for the audit log only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct TokenRejected {
    /// `invalid_token` or `insufficient_scope`.
    pub status: &'static str,
    /// The scope that was required, for `insufficient_scope`.
    pub scope: Option<String>,
    pub reason: String,
}

impl TokenRejected {
    fn invalid(reason: impl Into<String>) -> TokenRejected {
        TokenRejected {
            status: "invalid_token",
            scope: None,
            reason: reason.into(),
        }
    }

    /// The error JSON sent to the client (Kafka's `jsonErrorResponse`).
    pub fn json(&self) -> String {
        let mut object = Map::new();
        object.insert("status".into(), Value::String(self.status.into()));
        if let Some(scope) = &self.scope {
            object.insert("scope".into(), Value::String(scope.clone()));
        }
        Value::Object(object).to_string()
    }
}

/// The unsecured validator's options (JAAS options of `OAuthBearerLoginModule`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsecuredOptions {
    pub principal_claim: String,
    pub scope_claim: String,
    pub required_scope: Vec<String>,
    pub clock_skew_ms: u64,
}

impl UnsecuredOptions {
    /// Reads `unsecuredValidator*` from JAAS options; an error names the bad option.
    pub fn from_jaas(options: &BTreeMap<String, String>) -> Result<UnsecuredOptions, String> {
        let text = |key: &str, default: &str| {
            options
                .get(key)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .unwrap_or(default)
                .to_string()
        };
        let skew = text("unsecuredValidatorAllowableClockSkewMs", "0");
        let clock_skew_ms = skew.parse::<u64>().map_err(|_| {
            format!(
                "unsecuredValidatorAllowableClockSkewMs={skew:?} must be a non-negative integer"
            )
        })?;
        Ok(UnsecuredOptions {
            principal_claim: text("unsecuredValidatorPrincipalClaimName", "sub"),
            scope_claim: text("unsecuredValidatorScopeClaimName", "scope"),
            required_scope: text("unsecuredValidatorRequiredScope", "")
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            clock_skew_ms,
        })
    }
}

/// The JWKS validator's settings (KIP-768 keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSettings {
    /// `sasl.oauthbearer.jwks.endpoint.url`: `file://` paths, `https://` (or `http://`)
    /// endpoints.
    pub url: String,
    pub expected_audience: Vec<String>,
    pub expected_issuer: Option<String>,
    pub sub_claim: String,
    pub scope_claim: String,
    pub clock_skew_seconds: u64,
    /// `sasl.oauthbearer.jwks.endpoint.refresh.ms`: how often the file is checked for a
    /// change (its modification time and size), or the endpoint fetched (at least every
    /// second).
    pub refresh_ms: u64,
    /// `sasl.oauthbearer.jwks.endpoint.retry.backoff.ms`: the first wait after a failed fetch.
    pub retry_backoff_ms: u64,
    /// `sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms`: the most time spent retrying.
    pub retry_backoff_max_ms: u64,
    /// TLS trust of an `https://` endpoint: the `ssl.*` options of the listener's
    /// OAUTHBEARER JAAS config, as Kafka reads them (`None`: the system's CA bundle).
    pub tls: Option<Box<crate::tls::TlsSettings>>,
}

/// How a listener validates OAUTHBEARER tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthSettings {
    Unsecured(UnsecuredOptions),
    Jwks(JwksSettings),
}

/// Why the JWKS could not be read (a start-up error names the key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sasl.oauthbearer.jwks.endpoint.url {url}: {reason}")]
pub struct JwksError {
    pub url: String,
    pub reason: String,
}

/// One verification key of a JWKS.
#[derive(Clone, Debug)]
pub(crate) enum Jwk {
    Rsa {
        kid: Option<String>,
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ec {
        kid: Option<String>,
        p384: bool,
        point: Vec<u8>,
    },
}

impl Jwk {
    pub(crate) fn kid(&self) -> Option<&str> {
        match self {
            Jwk::Rsa { kid, .. } | Jwk::Ec { kid, .. } => kid.as_deref(),
        }
    }
}

/// Parses a JWKS document (`{"keys":[...]}`); keys of other types (oct, OKP) or uses
/// (`"use":"enc"`) are skipped, as jose4j's resolver does.
pub(crate) fn parse_jwks(text: &[u8]) -> Result<Vec<Jwk>, String> {
    let value: Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
    let keys = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("expected a JSON object with a \"keys\" array")?;
    if keys.len() > JWKS_KEYS_MAX {
        return Err(format!("{} keys (at most {JWKS_KEYS_MAX})", keys.len()));
    }
    let mut out = Vec::new();
    for key in keys {
        let field = |name: &str| key.get(name).and_then(Value::as_str);
        let bytes = |name: &str| -> Result<Vec<u8>, String> {
            let text = field(name).ok_or_else(|| format!("a key has no {name:?}"))?;
            B64URL
                .decode(text)
                .map_err(|_| format!("a key's {name:?} is not base64url"))
        };
        if field("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let kid = field("kid").map(str::to_string);
        match field("kty") {
            Some("RSA") => out.push(Jwk::Rsa {
                kid,
                n: bytes("n")?,
                e: bytes("e")?,
            }),
            Some("EC") => {
                let p384 = match field("crv") {
                    Some("P-256") => false,
                    Some("P-384") => true,
                    _ => continue,
                };
                let mut point = vec![0x04];
                point.extend(bytes("x")?);
                point.extend(bytes("y")?);
                out.push(Jwk::Ec { kid, p384, point });
            }
            _ => continue,
        }
    }
    if out.is_empty() {
        return Err("no RSA or EC signing key".into());
    }
    Ok(out)
}

/// A JWKS: a file re-read when it changes, or an endpoint refreshed in the background.
enum JwksCache {
    File(FileJwks),
    Remote(crate::jwks_http::RemoteJwks),
}

impl JwksCache {
    fn open(settings: &JwksSettings) -> Result<JwksCache, JwksError> {
        let url = &settings.url;
        if url.starts_with("https://") || url.starts_with("http://") {
            let fetch = crate::jwks_http::FetchSettings {
                url: url.clone(),
                refresh: std::time::Duration::from_millis(settings.refresh_ms),
                retry_backoff: std::time::Duration::from_millis(settings.retry_backoff_ms),
                retry_backoff_max: std::time::Duration::from_millis(settings.retry_backoff_max_ms),
                tls: settings.tls.as_deref().cloned(),
            };
            return crate::jwks_http::RemoteJwks::start(&fetch)
                .map(JwksCache::Remote)
                .map_err(|reason| JwksError {
                    url: url.clone(),
                    reason,
                });
        }
        FileJwks::open(url, settings.refresh_ms).map(JwksCache::File)
    }

    fn keys(&self) -> Arc<Vec<Jwk>> {
        match self {
            JwksCache::File(file) => file.keys(),
            JwksCache::Remote(remote) => remote.keys(),
        }
    }

    /// A token named a key id no key has: an endpoint is fetched again soon (bounded); a
    /// file is re-read on its own schedule anyway.
    fn missing_kid(&self, kid: &str) {
        if let JwksCache::Remote(remote) = self {
            remote.missing_kid(kid);
        }
    }
}

/// The keys of a JWKS file, re-read when the file changes.
struct FileJwks {
    path: PathBuf,
    url: String,
    refresh_ms: u64,
    state: RwLock<JwksState>,
}

struct JwksState {
    keys: Arc<Vec<Jwk>>,
    stamp: Option<(SystemTime, u64)>,
    checked: std::time::Instant,
}

fn file_stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl FileJwks {
    fn open(url: &str, refresh_ms: u64) -> Result<FileJwks, JwksError> {
        let error = |reason: String| JwksError {
            url: url.to_string(),
            reason,
        };
        let path = match url.strip_prefix("file://") {
            Some(path) => PathBuf::from(path),
            None => return Err(error("expected a file://, https:// or http:// URL".into())),
        };
        let stamp = file_stamp(&path);
        let keys = Self::read(&path).map_err(error)?;
        Ok(FileJwks {
            path,
            url: url.to_string(),
            refresh_ms,
            state: RwLock::new(JwksState {
                keys: Arc::new(keys),
                stamp,
                checked: std::time::Instant::now(),
            }),
        })
    }

    fn read(path: &PathBuf) -> Result<Vec<Jwk>, String> {
        use std::io::Read;
        let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
        let mut text = Vec::new();
        file.take(JWKS_BYTES_MAX + 1)
            .read_to_end(&mut text)
            .map_err(|e| format!("cannot read: {e}"))?;
        if text.len() as u64 > JWKS_BYTES_MAX {
            return Err(format!("larger than {JWKS_BYTES_MAX} bytes"));
        }
        parse_jwks(&text)
    }

    /// The current keys: the file is re-read when `refresh_ms` has passed since the last
    /// check and its modification time or size changed. A file that no longer parses keeps
    /// the last good keys (and is logged), so a half-written file never locks users out.
    fn keys(&self) -> Arc<Vec<Jwk>> {
        let due = {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            if state.checked.elapsed().as_millis() < u128::from(self.refresh_ms) {
                return state.keys.clone();
            }
            file_stamp(&self.path) != state.stamp
        };
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.checked = std::time::Instant::now();
        if due {
            state.stamp = file_stamp(&self.path);
            match Self::read(&self.path) {
                Ok(keys) => {
                    tracing::info!(url = %self.url, keys = keys.len(), "JWKS reloaded");
                    state.keys = Arc::new(keys);
                }
                Err(reason) => {
                    tracing::warn!(url = %self.url, %reason,
                        "JWKS file changed but cannot be used; keeping the previous keys")
                }
            }
        }
        state.keys.clone()
    }
}

/// A listener's token validator.
pub enum Validator {
    Unsecured(UnsecuredOptions),
    Jwks(JwksSettings, JwksCacheHandle),
}

/// The key cache of a JWKS validator (opaque).
pub struct JwksCacheHandle(Box<JwksCache>);

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Validator::Unsecured(o) => f.debug_tuple("Unsecured").field(o).finish(),
            Validator::Jwks(s, _) => f.debug_tuple("Jwks").field(s).finish(),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A JWS in compact form, split and decoded.
struct Jws<'a> {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    /// `header.payload`, the signed text.
    signed: &'a str,
    signature: Vec<u8>,
}

fn split_jws(token: &str) -> Result<Jws<'_>, TokenRejected> {
    if token.len() > TOKEN_BYTES_MAX {
        return Err(TokenRejected::invalid(format!(
            "token of {} bytes (at most {TOKEN_BYTES_MAX})",
            token.len()
        )));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenRejected::invalid(
            "a JWS compact serialization must have 3 dot-separated base64url values",
        ));
    };
    let object = |segment: &str, what: &str| -> Result<Map<String, Value>, TokenRejected> {
        let bytes = B64URL
            .decode(segment)
            .map_err(|_| TokenRejected::invalid(format!("the {what} is not base64url")))?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(TokenRejected::invalid(format!(
                "the {what} is not a JSON object"
            ))),
        }
    };
    let signature = B64URL
        .decode(signature)
        .map_err(|_| TokenRejected::invalid("the signature is not base64url"))?;
    Ok(Jws {
        header: object(header, "JOSE header")?,
        claims: object(payload, "claims set")?,
        signed: &token[..header.len() + 1 + payload.len()],
        signature,
    })
}

/// A NumericDate claim (seconds, possibly fractional) in milliseconds; `Err` when present
/// but not a number.
fn date_ms(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, TokenRejected> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => match value.as_f64() {
            Some(seconds) if seconds.is_finite() && seconds.abs() < 1e14 => {
                Ok(Some((seconds * 1000.0) as i64))
            }
            _ => Err(TokenRejected::invalid(format!(
                "the '{name}' claim is not a number"
            ))),
        },
    }
}

/// The scopes of a scope claim: a space-delimited string or a list of strings.
fn scopes(claims: &Map<String, Value>, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(Value::String(text)) => text
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

impl Validator {
    /// Builds a validator; a JWKS is read now, so a missing or bad file fails start-up.
    pub fn new(settings: &OAuthSettings) -> Result<Validator, JwksError> {
        Ok(match settings {
            OAuthSettings::Unsecured(options) => Validator::Unsecured(options.clone()),
            OAuthSettings::Jwks(jwks) => Validator::Jwks(
                jwks.clone(),
                JwksCacheHandle(Box::new(JwksCache::open(jwks)?)),
            ),
        })
    }

    /// Validates `token` now.
    pub fn validate(&self, token: &str) -> Result<ValidToken, TokenRejected> {
        self.validate_at(token, now_ms())
    }

    /// Validates `token` at `now_ms` (milliseconds since the epoch).
    pub fn validate_at(&self, token: &str, now_ms: i64) -> Result<ValidToken, TokenRejected> {
        match self {
            Validator::Unsecured(options) => unsecured(options, token, now_ms),
            Validator::Jwks(settings, cache) => secured(settings, &cache.0, token, now_ms),
        }
    }
}

/// Kafka's `OAuthBearerUnsecuredValidatorCallbackHandler`.
fn unsecured(
    options: &UnsecuredOptions,
    token: &str,
    now_ms: i64,
) -> Result<ValidToken, TokenRejected> {
    let jws = split_jws(token)?;
    if jws.header.get("alg").and_then(Value::as_str) != Some("none") {
        return Err(TokenRejected::invalid(
            "an unsecured JWS must have \"alg\":\"none\" (this listener validates unsecured \
             tokens only; configure sasl.oauthbearer.jwks.endpoint.url for signed ones)",
        ));
    }
    if !jws.signature.is_empty() {
        return Err(TokenRejected::invalid(
            "an unsecured JWS must not carry a signature",
        ));
    }
    let claims = &jws.claims;
    let principal = match claims.get(&options.principal_claim) {
        Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
        Some(_) => {
            return Err(TokenRejected::invalid(format!(
                "the '{}' claim is not a non-empty string",
                options.principal_claim
            )))
        }
        None => {
            return Err(TokenRejected::invalid(format!(
                "the required '{}' claim is missing",
                options.principal_claim
            )))
        }
    };
    let skew = i64::try_from(options.clock_skew_ms).unwrap_or(i64::MAX);
    let issued = date_ms(claims, "iat")?;
    if let Some(iat) = issued {
        if now_ms.saturating_add(skew) < iat {
            return Err(TokenRejected::invalid(format!(
                "the token was issued in the future (iat {iat} ms, now {now_ms} ms, skew {skew} ms)"
            )));
        }
    }
    let exp = date_ms(claims, "exp")?
        .ok_or_else(|| TokenRejected::invalid("the required 'exp' claim is missing"))?;
    if now_ms.saturating_sub(skew) >= exp {
        return Err(TokenRejected::invalid(format!(
            "the token expired (exp {exp} ms, now {now_ms} ms, skew {skew} ms)"
        )));
    }
    if issued.is_some_and(|iat| exp <= iat) {
        return Err(TokenRejected::invalid(
            "the token's expiration time is not after its issue time",
        ));
    }
    let scopes = scopes(claims, &options.scope_claim);
    if let Some(missing) = options.required_scope.iter().find(|s| !scopes.contains(s)) {
        return Err(TokenRejected {
            status: "insufficient_scope",
            scope: Some(options.required_scope.join(" ")),
            reason: format!("the token's scope lacks the required {missing:?}"),
        });
    }
    Ok(ValidToken {
        principal,
        expires_at_ms: exp,
        scopes,
    })
}

/// Kafka's `OAuthBearerValidatorCallbackHandler` (jose4j's checks).
fn secured(
    settings: &JwksSettings,
    cache: &JwksCache,
    token: &str,
    now_ms: i64,
) -> Result<ValidToken, TokenRejected> {
    let jws = split_jws(token)?;
    let alg = jws.header.get("alg").and_then(Value::as_str).unwrap_or("");
    let kid = jws.header.get("kid").and_then(Value::as_str);
    let keys = cache.keys();
    let candidates: Vec<&Jwk> = keys
        .iter()
        .filter(|k| kid.is_none() || k.kid() == kid)
        .collect();
    let verified = match alg {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => {
            let params: &signature::RsaParameters = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            };
            candidates.iter().any(|k| match k {
                Jwk::Rsa { n, e, .. } => RsaPublicKeyComponents { n, e }
                    .verify(params, jws.signed.as_bytes(), &jws.signature)
                    .is_ok(),
                Jwk::Ec { .. } => false,
            })
        }
        "ES256" | "ES384" => {
            let want_p384 = alg == "ES384";
            let algorithm: &signature::EcdsaVerificationAlgorithm = if want_p384 {
                &signature::ECDSA_P384_SHA384_FIXED
            } else {
                &signature::ECDSA_P256_SHA256_FIXED
            };
            candidates.iter().any(|k| match k {
                Jwk::Ec { p384, point, .. } if *p384 == want_p384 => {
                    UnparsedPublicKey::new(algorithm, point)
                        .verify(jws.signed.as_bytes(), &jws.signature)
                        .is_ok()
                }
                _ => false,
            })
        }
        other => {
            return Err(TokenRejected::invalid(format!(
                "the JWS algorithm {other:?} is not allowed (RS256/384/512, PS256/384/512, \
                 ES256, ES384)"
            )))
        }
    };
    if !verified {
        return Err(TokenRejected::invalid(match kid {
            Some(kid) if candidates.is_empty() => {
                cache.missing_kid(kid);
                format!("no key with kid {kid:?} in the JWKS {}", settings.url)
            }
            _ => format!(
                "the {alg} signature does not verify with any key of the JWKS {}",
                settings.url
            ),
        }));
    }
    let claims = &jws.claims;
    let skew = i64::try_from(settings.clock_skew_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
    let exp = date_ms(claims, "exp")?
        .ok_or_else(|| TokenRejected::invalid("the required 'exp' claim is missing"))?;
    if now_ms.saturating_sub(skew) >= exp {
        return Err(TokenRejected::invalid(format!(
            "the token expired (exp {exp} ms, now {now_ms} ms, skew {skew} ms)"
        )));
    }
    date_ms(claims, "iat")?
        .ok_or_else(|| TokenRejected::invalid("the required 'iat' claim is missing"))?;
    if let Some(nbf) = date_ms(claims, "nbf")? {
        if now_ms.saturating_add(skew) < nbf {
            return Err(TokenRejected::invalid(format!(
                "the token is not valid yet (nbf {nbf} ms, now {now_ms} ms)"
            )));
        }
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        None => Vec::new(),
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err(TokenRejected::invalid("the 'aud' claim is malformed")),
    };
    if settings.expected_audience.is_empty() {
        if !audiences.is_empty() {
            return Err(TokenRejected::invalid(format!(
                "the token has an audience {audiences:?} but \
                 sasl.oauthbearer.expected.audience is not set"
            )));
        }
    } else if !audiences
        .iter()
        .any(|a| settings.expected_audience.iter().any(|e| e == a))
    {
        return Err(TokenRejected::invalid(format!(
            "the token's audience {audiences:?} is none of the expected {:?}",
            settings.expected_audience
        )));
    }
    if let Some(issuer) = &settings.expected_issuer {
        let iss = claims.get("iss").and_then(Value::as_str);
        if iss != Some(issuer.as_str()) {
            return Err(TokenRejected::invalid(format!(
                "the token's issuer {iss:?} is not the expected {issuer:?}"
            )));
        }
    }
    let principal = match claims.get(&settings.sub_claim) {
        Some(Value::String(sub)) if !sub.trim().is_empty() => sub.clone(),
        _ => {
            return Err(TokenRejected::invalid(format!(
                "the '{}' claim must be a non-empty string",
                settings.sub_claim
            )))
        }
    };
    Ok(ValidToken {
        principal,
        expires_at_ms: exp,
        scopes: scopes(claims, &settings.scope_claim),
    })
}

/// The outcome of one OAUTHBEARER server step.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerStep {
    /// Authenticated.
    Done(ValidToken),
    /// The token was refused: send this error JSON as a challenge and await `\x01`.
    Challenge(TokenRejected),
    /// The exchange failed: answer SASL_AUTHENTICATION_FAILED with this message.
    Failed(String),
}

/// The server side of one exchange. `error` is the JSON sent in the previous step, if any.
pub fn server_step(validator: &Validator, error: Option<&str>, message: &[u8]) -> ServerStep {
    if let Some(json) = error {
        // After the error JSON, the client must answer %x01 (RFC 7628 3.2.3); Kafka's
        // message is the JSON itself. Anything else ends the exchange too.
        return ServerStep::Failed(if message == [CONTROL_A] {
            json.to_string()
        } else {
            format!("Unexpected OAUTHBEARER message after the server's error {json}")
        });
    }
    let initial = match parse_client_initial(message) {
        Ok(initial) => initial,
        Err(error) => return ServerStep::Failed(error.to_string()),
    };
    match validator.validate(&initial.token) {
        Err(rejected) => ServerStep::Challenge(rejected),
        Ok(token) => {
            if !initial.authzid.is_empty() && initial.authzid != token.principal {
                return ServerStep::Failed(format!(
                    "Authentication failed: Client requested an authorization id ({}) that is \
                     different from the token's principal name ({})",
                    initial.authzid, token.principal
                ));
            }
            ServerStep::Done(token)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair};

    const NOW: i64 = 1_800_000_000_000;
    const RSA_DER: &[u8] = include_bytes!("../tests/fixtures/jwt-rsa-test.der");

    fn unsigned(claims: &Value) -> String {
        format!(
            "{}.{}.",
            b64url(br#"{"alg":"none"}"#),
            b64url(claims.to_string().as_bytes())
        )
    }

    fn unsecured_validator(required: &str, skew: &str) -> Validator {
        let options = BTreeMap::from([
            (
                "unsecuredValidatorRequiredScope".to_string(),
                required.to_string(),
            ),
            (
                "unsecuredValidatorAllowableClockSkewMs".to_string(),
                skew.to_string(),
            ),
        ]);
        Validator::Unsecured(UnsecuredOptions::from_jaas(&options).unwrap())
    }

    #[test]
    fn initial_response_parses_as_kafka_writes_it() {
        let initial =
            parse_client_initial(b"n,a=al=2Cice,\x01auth=Bearer a.b.c\x01traceId=x 1\x01\x01")
                .unwrap();
        assert_eq!(initial.authzid, "al,ice");
        assert_eq!(initial.token, "a.b.c");
        assert_eq!(initial.extensions["traceId"], "x 1");
        assert_eq!(
            parse_client_initial(&client_initial("t.u.")).unwrap().token,
            "t.u."
        );
        let long = client_initial(&"a".repeat(TOKEN_BYTES_MAX + 1));
        for bad in [
            &b""[..],
            b"\x01",
            b"y,,\x01auth=Bearer a\x01\x01",
            b"n,,auth=Bearer a\x01\x01",
            b"n,,\x01auth=Bearer a\x01",
            b"n,,\x01auth=Basic a\x01\x01",
            b"n,,\x01auth=Bearer a b\x01\x01",
            b"n,,\x01auth=Bearer \x01\x01",
            b"n,,\x01x=1\x01\x01",
            b"n,,\x011=2\x01auth=Bearer a\x01\x01",
            b"n,a=,\x01auth=Bearer a\x01\x01",
            b"n,a=x=41,\x01auth=Bearer a\x01\x01",
            &[0xff, 0xfe],
            &long,
        ] {
            assert!(parse_client_initial(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unsecured_tokens_are_checked_as_kafka_checks_them() {
        let v = unsecured_validator("", "0");
        let ok = unsigned(
            &serde_json::json!({"sub": "alice", "exp": NOW / 1000 + 60, "iat": NOW / 1000, "scope": "a b"}),
        );
        let token = v.validate_at(&ok, NOW).unwrap();
        assert_eq!(token.principal, "alice");
        assert_eq!(token.expires_at_ms, NOW + 60_000);
        assert_eq!(token.scopes, ["a", "b"]);
        let expired = unsigned(&serde_json::json!({"sub": "alice", "exp": NOW / 1000 - 1}));
        assert!(v
            .validate_at(&expired, NOW)
            .unwrap_err()
            .reason
            .contains("expired"));
        // The clock skew lets a just-expired token in.
        assert!(unsecured_validator("", "5000")
            .validate_at(&expired, NOW)
            .is_ok());
        for (claims, why) in [
            (serde_json::json!({"exp": NOW / 1000 + 60}), "missing"),
            (
                serde_json::json!({"sub": 7, "exp": NOW / 1000 + 60}),
                "string",
            ),
            (serde_json::json!({"sub": "a"}), "'exp'"),
            (serde_json::json!({"sub": "a", "exp": "soon"}), "number"),
            (
                serde_json::json!({"sub": "a", "exp": NOW / 1000 + 60, "iat": NOW / 1000 + 30}),
                "future",
            ),
        ] {
            let error = v.validate_at(&unsigned(&claims), NOW).unwrap_err();
            assert_eq!(error.status, "invalid_token");
            assert!(error.reason.contains(why), "{claims}: {}", error.reason);
        }
        // A signed token, or garbage, on an unsecured listener.
        let signed = format!("{}.{}.c2ln", b64url(br#"{"alg":"RS256"}"#), b64url(b"{}"));
        assert!(v.validate_at(&signed, NOW).is_err());
        for garbage in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "!!.!!.",
            "e30.bm90IGpzb24.",
            "W10.W10.",
        ] {
            assert!(v.validate_at(garbage, NOW).is_err(), "{garbage}");
        }
        // Required scope.
        let scoped = unsecured_validator("kafka", "0");
        let error = scoped.validate_at(&ok, NOW).unwrap_err();
        assert_eq!(error.status, "insufficient_scope");
        assert_eq!(
            error.json(),
            r#"{"scope":"kafka","status":"insufficient_scope"}"#
        );
        let with_list =
            unsigned(&serde_json::json!({"sub": "a", "exp": NOW / 1000 + 60, "scope": ["kafka"]}));
        assert!(scoped.validate_at(&with_list, NOW).is_ok());
    }

    struct Signer {
        dir: PathBuf,
        rsa: RsaKeyPair,
        ec: EcdsaKeyPair,
    }

    impl Signer {
        fn new(name: &str) -> Signer {
            let rng = SystemRandom::new();
            let rsa = RsaKeyPair::from_der(RSA_DER).unwrap();
            let pk8 =
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .unwrap();
            let ec = EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                pk8.as_ref(),
                &rng,
            )
            .unwrap();
            let dir =
                std::env::temp_dir().join(format!("strom-jwks-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let signer = Signer { dir, rsa, ec };
            signer.write_jwks(&["rsa1", "ec1"]);
            signer
        }

        fn write_jwks(&self, kids: &[&str]) {
            let rsa = RsaPublicKeyComponents::<Vec<u8>>::from(self.rsa.public());
            let point = self.ec.public_key().as_ref();
            let mut keys = Vec::new();
            if kids.contains(&"rsa1") {
                keys.push(serde_json::json!({"kty": "RSA", "kid": "rsa1", "use": "sig", "n": b64url(&rsa.n), "e": b64url(&rsa.e)}));
            }
            if kids.contains(&"ec1") {
                keys.push(serde_json::json!({"kty": "EC", "kid": "ec1", "crv": "P-256", "x": b64url(&point[1..33]), "y": b64url(&point[33..])}));
            }
            keys.push(serde_json::json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}));
            std::fs::write(
                self.dir.join("jwks.json"),
                serde_json::json!({"keys": keys}).to_string(),
            )
            .unwrap();
        }

        fn settings(&self) -> JwksSettings {
            JwksSettings {
                url: format!("file://{}", self.dir.join("jwks.json").display()),
                expected_audience: vec!["strom".into()],
                expected_issuer: Some("https://issuer".into()),
                sub_claim: "sub".into(),
                scope_claim: "scope".into(),
                clock_skew_seconds: 30,
                refresh_ms: 0,
                retry_backoff_ms: 100,
                retry_backoff_max_ms: 10_000,
                tls: None,
            }
        }

        fn sign(&self, alg: &str, kid: &str, claims: &Value) -> String {
            let header = serde_json::json!({"alg": alg, "kid": kid, "typ": "JWT"});
            let signed = format!(
                "{}.{}",
                b64url(header.to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            );
            let rng = SystemRandom::new();
            let signature = if alg == "ES256" {
                self.ec
                    .sign(&rng, signed.as_bytes())
                    .unwrap()
                    .as_ref()
                    .to_vec()
            } else {
                let mut out = vec![0; self.rsa.public().modulus_len()];
                self.rsa
                    .sign(
                        &signature::RSA_PKCS1_SHA256,
                        &rng,
                        signed.as_bytes(),
                        &mut out,
                    )
                    .unwrap();
                out
            };
            format!("{signed}.{}", b64url(&signature))
        }
    }

    fn good_claims() -> Value {
        serde_json::json!({"sub": "svc", "aud": "strom", "iss": "https://issuer", "iat": NOW / 1000, "exp": NOW / 1000 + 300})
    }

    #[test]
    fn signed_tokens_verify_against_the_jwks() {
        let signer = Signer::new("verify");
        let v = Validator::new(&OAuthSettings::Jwks(signer.settings())).unwrap();
        for (alg, kid) in [("RS256", "rsa1"), ("ES256", "ec1")] {
            let token = v
                .validate_at(&signer.sign(alg, kid, &good_claims()), NOW)
                .unwrap();
            assert_eq!(token.principal, "svc");
            assert_eq!(token.expires_at_ms, NOW + 300_000);
        }
        // A tampered payload, a wrong kid, wrong alg, none, HMAC.
        let token = signer.sign("RS256", "rsa1", &good_claims());
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64url(serde_json::json!({"sub": "admin", "aud": "strom", "iss": "https://issuer", "iat": NOW / 1000, "exp": NOW / 1000 + 300}).to_string().as_bytes());
        parts[1] = &forged;
        assert!(v
            .validate_at(&parts.join("."), NOW)
            .unwrap_err()
            .reason
            .contains("does not verify"));
        assert!(v
            .validate_at(&signer.sign("RS256", "nope", &good_claims()), NOW)
            .unwrap_err()
            .reason
            .contains("no key"));
        assert!(v
            .validate_at(&signer.sign("ES256", "rsa1", &good_claims()), NOW)
            .is_err());
        let none = unsigned(&good_claims());
        assert!(v
            .validate_at(&none, NOW)
            .unwrap_err()
            .reason
            .contains("not allowed"));
        let hs = format!(
            "{}.{}.c2ln",
            b64url(br#"{"alg":"HS256","kid":"hmac"}"#),
            b64url(good_claims().to_string().as_bytes())
        );
        assert!(v
            .validate_at(&hs, NOW)
            .unwrap_err()
            .reason
            .contains("not allowed"));
        // Claims: expiry (with the 30 s skew), audience, issuer, iat, sub.
        let with = |key: &str, value: Value| {
            let mut claims = good_claims();
            claims[key] = value;
            signer.sign("RS256", "rsa1", &claims)
        };
        assert!(v
            .validate_at(&with("exp", (NOW / 1000 - 10).into()), NOW)
            .is_ok());
        assert!(v
            .validate_at(&with("exp", (NOW / 1000 - 31).into()), NOW)
            .unwrap_err()
            .reason
            .contains("expired"));
        assert!(v
            .validate_at(&with("aud", "other".into()), NOW)
            .unwrap_err()
            .reason
            .contains("audience"));
        assert!(v
            .validate_at(&with("aud", serde_json::json!(["x", "strom"])), NOW)
            .is_ok());
        assert!(v
            .validate_at(&with("iss", "https://evil".into()), NOW)
            .unwrap_err()
            .reason
            .contains("issuer"));
        assert!(v.validate_at(&with("sub", "".into()), NOW).is_err());
        assert!(v
            .validate_at(&with("nbf", (NOW / 1000 + 100).into()), NOW)
            .is_err());
        let mut no_iat = good_claims();
        no_iat.as_object_mut().unwrap().remove("iat");
        assert!(v
            .validate_at(&signer.sign("RS256", "rsa1", &no_iat), NOW)
            .unwrap_err()
            .reason
            .contains("iat"));
        // No expected audience: a token naming one is refused (jose4j's rule).
        let mut open = signer.settings();
        open.expected_audience.clear();
        let v2 = Validator::new(&OAuthSettings::Jwks(open)).unwrap();
        assert!(v2
            .validate_at(&signer.sign("RS256", "rsa1", &good_claims()), NOW)
            .is_err());
        // A rotated JWKS is picked up; a broken rewrite keeps the last good keys.
        signer.write_jwks(&["ec1"]);
        assert!(v
            .validate_at(&signer.sign("RS256", "rsa1", &good_claims()), NOW)
            .is_err());
        std::fs::write(signer.dir.join("jwks.json"), "{not json").unwrap();
        assert!(v
            .validate_at(&signer.sign("ES256", "ec1", &good_claims()), NOW)
            .is_ok());
        let _ = std::fs::remove_dir_all(&signer.dir);
    }

    #[test]
    fn a_bad_jwks_fails_at_start_naming_the_url() {
        for (text, why) in [
            ("", "not JSON"),
            ("{}", "keys"),
            (r#"{"keys":[{"kty":"oct","k":"eA"}]}"#, "no RSA or EC"),
            (r#"{"keys":[{"kty":"RSA","n":"!"}]}"#, "base64url"),
        ] {
            assert!(
                parse_jwks(text.as_bytes()).unwrap_err().contains(why),
                "{text}"
            );
        }
        let error = FileJwks::open("file:///nonexistent/jwks.json", 0)
            .err()
            .unwrap();
        assert!(error
            .to_string()
            .contains("sasl.oauthbearer.jwks.endpoint.url"));
        assert!(FileJwks::open("ldap://idp/keys", 0).is_err());
    }

    #[test]
    fn the_exchange_sends_the_error_json_then_fails_on_control_a() {
        let v = unsecured_validator("", "0");
        let expired = unsigned(&serde_json::json!({"sub": "alice", "exp": 1}));
        let ServerStep::Challenge(rejected) = server_step(&v, None, &client_initial(&expired))
        else {
            panic!("expected the error challenge");
        };
        assert_eq!(rejected.json(), r#"{"status":"invalid_token"}"#);
        assert_eq!(
            server_step(&v, Some(&rejected.json()), &[CONTROL_A]),
            ServerStep::Failed(r#"{"status":"invalid_token"}"#.into())
        );
        assert!(matches!(
            server_step(&v, Some("{}"), b"again"),
            ServerStep::Failed(_)
        ));
        let future = now_ms() / 1000 + 3600;
        let good = unsigned(&serde_json::json!({"sub": "alice", "exp": future}));
        assert!(
            matches!(server_step(&v, None, &client_initial(&good)), ServerStep::Done(t) if t.principal == "alice")
        );
        let other = format!("n,a=bob,\u{1}auth=Bearer {good}\u{1}\u{1}");
        assert!(
            matches!(server_step(&v, None, other.as_bytes()), ServerStep::Failed(m) if m.contains("authorization id"))
        );
        assert!(matches!(
            server_step(&v, None, b"garbage"),
            ServerStep::Failed(_)
        ));
    }
}
