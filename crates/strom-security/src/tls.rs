//! TLS configurations built from Kafka's `ssl.*` keys, for a listener ([`TlsServer`]) and
//! for a client ([`TlsSettings::client_config`], or [`TlsClient`] for one that reloads).
//!
//! Only PEM key and trust stores are read (`ssl.keystore.type=PEM`, the default here; Kafka's
//! default JKS and PKCS12 are refused with a message saying how to convert). Private keys are
//! unencrypted PKCS#8, PKCS#1 or SEC1, or encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`, PBES2 with
//! PBKDF2 or scrypt and AES-CBC, as `openssl pkcs8 -topk8` and Java write them) decrypted with
//! `ssl.key.password`, as Kafka reads PEM keys; legacy OpenSSL-encrypted PEM (`Proc-Type:
//! 4,ENCRYPTED`) and PBES1 are refused with the command that converts them. A listener's (and
//! a [`TlsClient`]'s) key and trust store files are checked for changes at most once a
//! [`RELOAD_CHECK`] when a connection arrives or is made; a change rebuilds the configuration
//! for new connections (an unreadable new file keeps the old configuration, with an error logged), so
//! certificates rotate without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::x500::PrincipalMapper;

/// How often a listener looks at its key and trust store files for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);
/// The largest key or trust store file read.
const STORE_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// A configuration refused, naming its key and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct TlsError {
    pub key: String,
    pub reason: String,
}

fn err(key: &str, reason: impl Into<String>) -> TlsError {
    TlsError {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Looks a key up (for a listener: `listener.name.<name>.<key>` first, then `<key>`).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// Where PEM text comes from: a file, or inline.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    File { key: String, path: PathBuf },
    Inline { key: String, text: String },
}

impl Source {
    fn read(&self) -> Result<Vec<u8>, TlsError> {
        match self {
            Source::Inline { text, .. } => Ok(text.as_bytes().to_vec()),
            Source::File { key, path } => {
                let meta = std::fs::metadata(path)
                    .map_err(|e| err(key, format!("cannot read {}: {e}", path.display())))?;
                if meta.len() > STORE_BYTES_MAX {
                    return Err(err(key, format!("{} is larger than 4 MiB", path.display())));
                }
                std::fs::read(path)
                    .map_err(|e| err(key, format!("cannot read {}: {e}", path.display())))
            }
        }
    }

    fn key(&self) -> &str {
        match self {
            Source::File { key, .. } | Source::Inline { key, .. } => key,
        }
    }

    fn path(&self) -> Option<&Path> {
        match self {
            Source::File { path, .. } => Some(path),
            Source::Inline { .. } => None,
        }
    }
}

/// Validated `ssl.*` settings (files not yet read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The key and certificate chain: one file holding both, or the two inline values.
    keystore: Option<(Source, Source)>,
    /// `ssl.key.password`: decrypts an encrypted PKCS#8 private key.
    key_password: Option<KeyPassword>,
    truststore: Option<Source>,
    pub client_auth: ClientAuth,
    protocols: Vec<&'static rustls::SupportedProtocolVersion>,
    cipher_suites: Vec<String>,
    /// `ssl.principal.mapping.rules`, checked to parse.
    pub principal_mapping_rules: String,
    /// `ssl.endpoint.identification.algorithm`: `https` (check the server's host name, the
    /// default) or empty (do not), for clients.
    pub verify_host_name: bool,
}

impl TlsSettings {
    /// Reads and checks the `ssl.*` keys through `get`.
    pub fn from_lookup(get: Lookup<'_>) -> Result<TlsSettings, TlsError> {
        for (key, what) in [
            ("ssl.keystore.type", "keystore"),
            ("ssl.truststore.type", "truststore"),
        ] {
            if let Some(kind) = get(key) {
                if !kind.eq_ignore_ascii_case("PEM") {
                    return Err(err(
                        key,
                        format!(
                            "{kind} {what}s are not supported, only PEM: convert with e.g. \
                             `openssl pkcs12 -in store.p12 -nodes -out store.pem` (keytool can \
                             turn JKS into PKCS12 first) and set {key}=PEM"
                        ),
                    ));
                }
            }
        }
        let key_password = get("ssl.key.password")
            .filter(|p| !p.is_empty())
            .map(KeyPassword);
        let keystore = match (
            get("ssl.keystore.location").filter(|v| !v.is_empty()),
            get("ssl.keystore.key").filter(|v| !v.is_empty()),
            get("ssl.keystore.certificate.chain").filter(|v| !v.is_empty()),
        ) {
            (Some(path), None, None) => {
                let source = Source::File {
                    key: "ssl.keystore.location".into(),
                    path: PathBuf::from(path),
                };
                Some((source.clone(), source))
            }
            (None, Some(key), Some(chain)) => Some((
                Source::Inline {
                    key: "ssl.keystore.key".into(),
                    text: key,
                },
                Source::Inline {
                    key: "ssl.keystore.certificate.chain".into(),
                    text: chain,
                },
            )),
            (None, None, None) => None,
            (Some(_), _, _) => {
                return Err(err(
                    "ssl.keystore.location",
                    "set either ssl.keystore.location or ssl.keystore.key with \
                     ssl.keystore.certificate.chain, not both",
                ))
            }
            _ => {
                return Err(err(
                    "ssl.keystore.key",
                    "ssl.keystore.key and ssl.keystore.certificate.chain go together",
                ))
            }
        };
        let truststore = match (
            get("ssl.truststore.location").filter(|v| !v.is_empty()),
            get("ssl.truststore.certificates").filter(|v| !v.is_empty()),
        ) {
            (Some(path), None) => Some(Source::File {
                key: "ssl.truststore.location".into(),
                path: PathBuf::from(path),
            }),
            (None, Some(text)) => Some(Source::Inline {
                key: "ssl.truststore.certificates".into(),
                text,
            }),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(err(
                    "ssl.truststore.location",
                    "set ssl.truststore.location or ssl.truststore.certificates, not both",
                ))
            }
        };
        let client_auth = match get("ssl.client.auth")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("none") | Some("") => ClientAuth::None,
            Some("requested") => ClientAuth::Requested,
            Some("required") => ClientAuth::Required,
            Some(other) => {
                return Err(err(
                    "ssl.client.auth",
                    format!("{other:?} is not one of none, requested, required"),
                ))
            }
        };
        let mut protocols = Vec::new();
        let listed = get("ssl.enabled.protocols").unwrap_or_else(|| "TLSv1.2,TLSv1.3".into());
        for name in listed.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "TLSv1.3" => protocols.push(&rustls::version::TLS13),
                "TLSv1.2" => protocols.push(&rustls::version::TLS12),
                // Kafka accepts them (the JVM usually disables them); rustls never speaks them.
                "TLSv1" | "TLSv1.1" => {
                    tracing::warn!(
                        protocol = name,
                        "ssl.enabled.protocols: not supported, ignored"
                    )
                }
                other => {
                    return Err(err(
                        "ssl.enabled.protocols",
                        format!("unknown protocol {other:?} (TLSv1.2, TLSv1.3)"),
                    ))
                }
            }
        }
        if protocols.is_empty() {
            return Err(err(
                "ssl.enabled.protocols",
                "names no protocol Strom speaks (TLSv1.2, TLSv1.3)",
            ));
        }
        let cipher_suites: Vec<String> = get("ssl.cipher.suites")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let settings = TlsSettings {
            keystore,
            key_password,
            truststore,
            client_auth,
            protocols,
            cipher_suites,
            principal_mapping_rules: get("ssl.principal.mapping.rules")
                .unwrap_or_else(|| "DEFAULT".into()),
            verify_host_name: get("ssl.endpoint.identification.algorithm")
                .is_none_or(|v| !v.trim().is_empty()),
        };
        settings.provider()?;
        PrincipalMapper::parse(&settings.principal_mapping_rules)
            .map_err(|e| err("ssl.principal.mapping.rules", e.to_string()))?;
        Ok(settings)
    }

    /// The crypto provider with the suites of `ssl.cipher.suites` (all of ring's when empty).
    fn provider(&self) -> Result<Arc<CryptoProvider>, TlsError> {
        // ring's provider: its suites and key exchanges (X25519, P-256, P-384). rustls
        // deprecates it for lacking post-quantum key exchange, which only aws-lc-rs (a
        // cmake build) offers; Kafka's JVM clients do not negotiate one either.
        #[allow(deprecated)]
        let mut provider = rustls::crypto::ring::default_provider();
        if !self.cipher_suites.is_empty() {
            let all = provider.cipher_suites.clone();
            let mut chosen = Vec::new();
            for name in &self.cipher_suites {
                let found = all.iter().find(|s| {
                    s.suite()
                        .as_str()
                        .is_some_and(|n| n == name || n.replacen("TLS13_", "TLS_", 1) == *name)
                });
                match found {
                    Some(suite) => chosen.push(*suite),
                    None => {
                        let known: Vec<String> = all
                            .iter()
                            .filter_map(|s| s.suite().as_str())
                            .map(|n| n.replacen("TLS13_", "TLS_", 1))
                            .collect();
                        return Err(err(
                            "ssl.cipher.suites",
                            format!(
                                "unknown or unsupported suite {name:?}; supported: {}",
                                known.join(", ")
                            ),
                        ));
                    }
                }
            }
            provider.cipher_suites = chosen;
        }
        Ok(Arc::new(provider))
    }

    /// The principal mapper of `ssl.principal.mapping.rules` (checked at parse time).
    pub fn principal_mapper(&self) -> PrincipalMapper {
        PrincipalMapper::parse(&self.principal_mapping_rules)
            .unwrap_or_else(|_| PrincipalMapper::default_rules())
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Some((key, chain)) = &self.keystore {
            out.extend(key.path().map(Path::to_path_buf));
            out.extend(chain.path().map(Path::to_path_buf));
        }
        if let Some(trust) = &self.truststore {
            out.extend(trust.path().map(Path::to_path_buf));
        }
        out.dedup();
        out
    }

    fn key_and_chain(
        &self,
    ) -> Result<Option<(PrivateKeyDer<'static>, Vec<CertificateDer<'static>>)>, TlsError> {
        let Some((key_source, chain_source)) = &self.keystore else {
            return Ok(None);
        };
        let key_pem = key_source.read()?;
        let key = private_key(&key_pem, key_source.key(), self.key_password.as_ref())?;
        let chain_pem = chain_source.read()?;
        let chain = CertificateDer::pem_slice_iter(&chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(chain_source.key(), format!("bad PEM certificate: {e}")))?;
        if chain.is_empty() {
            return Err(err(chain_source.key(), "no PEM certificate found"));
        }
        Ok(Some((key, chain)))
    }

    fn roots(&self) -> Result<Option<RootCertStore>, TlsError> {
        let Some(source) = &self.truststore else {
            return Ok(None);
        };
        let pem = source.read()?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| err(source.key(), format!("bad PEM certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| err(source.key(), format!("unusable CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(err(source.key(), "no PEM certificate found"));
        }
        Ok(Some(roots))
    }

    /// A server configuration: the keystore is required, the truststore when clients are
    /// asked for certificates.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let (key, chain) = self.key_and_chain()?.ok_or_else(|| {
            err(
                "ssl.keystore.location",
                "a TLS listener needs a key and certificate chain (ssl.keystore.location, or \
                 ssl.keystore.key and ssl.keystore.certificate.chain)",
            )
        })?;
        let provider = self.provider()?;
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&self.protocols)
            .map_err(|e| {
                err(
                    "ssl.cipher.suites",
                    format!("{e} (with ssl.enabled.protocols)"),
                )
            })?;
        let builder = match self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            auth => {
                let roots = self.roots()?.ok_or_else(|| {
                    err(
                        "ssl.truststore.location",
                        "ssl.client.auth asks for client certificates: set a truststore \
                         (ssl.truststore.location or ssl.truststore.certificates)",
                    )
                })?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| err("ssl.truststore.location", e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|e| err("ssl.keystore.location", format!("key and certificate: {e}")))?;
        Ok(Arc::new(config))
    }

    /// A client configuration: trusts the truststore (else the system's CA bundle),
    /// presents the keystore if one is set (mutual TLS).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let roots = match self.roots()? {
            Some(roots) => roots,
            None => system_roots()?,
        };
        let provider = self.provider()?;
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&self.protocols)
            .map_err(|e| {
                err(
                    "ssl.cipher.suites",
                    format!("{e} (with ssl.enabled.protocols)"),
                )
            })?;
        let roots = Arc::new(roots);
        let builder = if self.verify_host_name {
            builder.with_root_certificates(roots)
        } else {
            let inner =
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| err("ssl.truststore.location", e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoHostName { inner }))
        };
        let config = match self.key_and_chain()? {
            Some((key, chain)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| err("ssl.keystore.location", format!("key and certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// `ssl.key.password`, kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq)]
struct KeyPassword(String);

impl std::fmt::Debug for KeyPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPassword([hidden])")
    }
}

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// The private key of a PEM text: an encrypted PKCS#8 key decrypted with `password`, else the
/// first unencrypted key. `key` names the setting the text came from, for errors.
fn private_key(
    pem: &[u8],
    key: &str,
    password: Option<&KeyPassword>,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    if contains(pem, b"Proc-Type: 4,ENCRYPTED") {
        return Err(err(
            key,
            "the private key is encrypted in the legacy OpenSSL PEM format (Proc-Type: \
             4,ENCRYPTED), which is not supported; convert it to encrypted PKCS#8 with \
             `openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.pem -out key.pem` and keep \
             ssl.key.password",
        ));
    }
    let text = String::from_utf8_lossy(pem);
    let Some(start) = text.find(ENCRYPTED_BEGIN) else {
        if password.is_some() {
            // Kafka refuses a password with an unencrypted PEM key; accepting it loses
            // nothing, but say so, since the password protects nothing.
            tracing::warn!(
                setting = key,
                "ssl.key.password is set but the private key is not encrypted; the password is \
                 ignored"
            );
        }
        return PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| err(key, format!("no PEM private key found ({e})")));
    };
    let body_start = start + ENCRYPTED_BEGIN.len();
    let body_len = text[body_start..]
        .find(ENCRYPTED_END)
        .ok_or_else(|| err(key, format!("{ENCRYPTED_BEGIN} has no {ENCRYPTED_END}")))?;
    let b64: String = text[body_start..body_start + body_len]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| {
                err(
                    key,
                    format!("the encrypted private key is not valid base64: {e}"),
                )
            })?
    };
    let password = password.ok_or_else(|| {
        err(
            "ssl.key.password",
            format!("the private key of {key} is encrypted: set ssl.key.password to its password"),
        )
    })?;
    decrypt_pkcs8(&der, &password.0)
        .map_err(|reason| err("ssl.key.password", format!("{key}: {reason}")))
}

/// Decrypts an `EncryptedPrivateKeyInfo` (RFC 5208/5958) into PKCS#8 DER.
fn decrypt_pkcs8(der: &[u8], password: &str) -> Result<PrivateKeyDer<'static>, String> {
    use pkcs8::der::Decode;
    let info = pkcs8::EncryptedPrivateKeyInfo::from_der(der).map_err(|e| {
        format!(
            "the encrypted private key is not PBES2-encrypted PKCS#8 ({e}); PKCS#12 and \
                 PBES1 schemes are not supported: re-encrypt it with `openssl pkcs8 -topk8 -v2 \
                 aes-256-cbc -in key.pem -out new.pem`"
        )
    })?;
    if info.encryption_algorithm.pbes2().is_none() {
        return Err(format!(
            "the private key is encrypted with {} (PBES1), which is not supported; re-encrypt \
             it with PBES2: `openssl pkcs8 -topk8 -v2 aes-256-cbc -in key.pem -out new.pem`",
            info.encryption_algorithm.oid()
        ));
    }
    let document = info.decrypt(password.as_bytes()).map_err(|e| {
        format!(
            "cannot decrypt the private key: wrong ssl.key.password, or an unsupported \
             cipher (PBES2 with AES-CBC is supported) ({e})"
        )
    })?;
    // A wrong password passes the padding check about once in 256 tries: the result must
    // still parse as a private key.
    pkcs8::PrivateKeyInfo::from_der(document.as_bytes()).map_err(|_| {
        "cannot decrypt the private key: wrong ssl.key.password (the result is not a private \
         key)"
            .to_string()
    })?;
    Ok(PrivateKeyDer::Pkcs8(
        rustls::pki_types::PrivatePkcs8KeyDer::from(document.as_bytes().to_vec()),
    ))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The system's CA bundle (`SSL_CERT_FILE`, else Debian's path).
fn system_roots() -> Result<RootCertStore, TlsError> {
    let path = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
    let source = Source::File {
        key: "ssl.truststore.location".into(),
        path,
    };
    let pem = source.read()?;
    let mut roots = RootCertStore::empty();
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    roots.add_parsable_certificates(certs);
    Ok(roots)
}

/// `ssl.endpoint.identification.algorithm=` (empty): the chain is verified, the host name is
/// not (Kafka's behaviour with the algorithm disabled).
#[derive(Debug)]
struct NoHostName {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for NoHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A listener's TLS configuration, rebuilt when its files change.
#[derive(Debug)]
pub struct TlsServer {
    settings: TlsSettings,
    mapper: PrincipalMapper,
    state: Mutex<ReloadState<ServerConfig>>,
}

/// A connecting side's TLS configuration (its trust store, and its key store for mutual
/// TLS), rebuilt when its files change, as [`TlsServer`]'s: a node's outgoing connections
/// present a rotated certificate without a restart.
#[derive(Debug)]
pub struct TlsClient {
    state: Mutex<ReloadState<ClientConfig>>,
}

/// The configuration in force, built by `C`'s [`Build`] from the settings, with the files'
/// stamps it was built from.
#[derive(Debug)]
struct ReloadState<C> {
    /// The settings in force: those of start-up, or the last ones `replace`d.
    settings: TlsSettings,
    config: Arc<C>,
    stamps: Vec<Option<(SystemTime, u64)>>,
    checked: Instant,
}

/// How a configuration is built from the settings (server or client side).
trait Build: Sized {
    fn build(settings: &TlsSettings) -> Result<Arc<Self>, TlsError>;
}

impl Build for ServerConfig {
    fn build(settings: &TlsSettings) -> Result<Arc<Self>, TlsError> {
        settings.server_config()
    }
}

impl Build for ClientConfig {
    fn build(settings: &TlsSettings) -> Result<Arc<Self>, TlsError> {
        settings.client_config()
    }
}

fn stamps(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

impl<C: Build> ReloadState<C> {
    /// Built now: an error is the caller's to report (start-up, or a refused change).
    fn new(settings: TlsSettings) -> Result<Self, TlsError> {
        let stamps = stamps(&settings.files());
        let config = C::build(&settings)?;
        Ok(ReloadState {
            settings,
            config,
            stamps,
            checked: Instant::now(),
        })
    }

    /// The configuration for a new connection, rebuilt first if a file changed (checked at
    /// most once per [`RELOAD_CHECK`]).
    fn current(&mut self) -> Arc<C> {
        if self.checked.elapsed() >= RELOAD_CHECK {
            self.checked = Instant::now();
            let now = stamps(&self.settings.files());
            if now != self.stamps {
                match C::build(&self.settings) {
                    Ok(config) => {
                        tracing::info!(files = ?self.settings.files(), "TLS key or trust store changed; reloaded");
                        self.config = config;
                        self.stamps = now;
                    }
                    // Half-written files are common during rotation: retry next time.
                    Err(error) => {
                        tracing::error!(%error, "TLS key or trust store changed but cannot be loaded; keeping the previous one")
                    }
                }
            }
        }
        Arc::clone(&self.config)
    }
}

/// The lock of a reload state; a panic elsewhere left a whole state behind.
fn locked<C>(state: &Mutex<ReloadState<C>>) -> std::sync::MutexGuard<'_, ReloadState<C>> {
    match state.lock() {
        Ok(state) => state,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl TlsServer {
    /// Builds the configuration now (start-up fails on an error).
    pub fn new(settings: TlsSettings) -> Result<TlsServer, TlsError> {
        Ok(TlsServer {
            mapper: settings.principal_mapper(),
            state: Mutex::new(ReloadState::new(settings.clone())?),
            settings,
        })
    }

    /// The settings of start-up (see [`TlsServer::replace`] for later ones).
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// Puts new settings in force for new connections (a dynamic config change), if their
    /// key and trust stores load; else the old ones stay and the error is returned. The
    /// principal mapping rules stay those of start-up.
    pub fn replace(&self, settings: TlsSettings) -> Result<(), TlsError> {
        let state = ReloadState::new(settings)?;
        *locked(&self.state) = state;
        Ok(())
    }

    pub fn principal_mapper(&self) -> &PrincipalMapper {
        &self.mapper
    }

    /// The configuration for a new connection, rebuilt first if a file changed.
    pub fn current(&self) -> Arc<ServerConfig> {
        locked(&self.state).current()
    }
}

impl TlsClient {
    /// Builds the configuration now (start-up fails on an error).
    pub fn new(settings: TlsSettings) -> Result<TlsClient, TlsError> {
        Ok(TlsClient {
            state: Mutex::new(ReloadState::new(settings)?),
        })
    }

    /// Puts new settings in force for new connections, if they load (else the old ones
    /// stay and the error is returned).
    pub fn replace(&self, settings: TlsSettings) -> Result<(), TlsError> {
        let state = ReloadState::new(settings)?;
        *locked(&self.state) = state;
        Ok(())
    }

    /// The configuration for a new connection, rebuilt first if a file changed.
    pub fn current(&self) -> Arc<ClientConfig> {
        locked(&self.state).current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = include_str!("../testdata/plain.key");
    const PBES2: &str = include_str!("../testdata/pbes2-aes256.key");
    const PKCS12_3DES: &str = include_str!("../testdata/pkcs12-3des.key");
    const LEGACY: &str = include_str!("../testdata/legacy-openssl.key");
    const CERT: &str = include_str!("../testdata/cert.pem");

    fn settings(key: &str, password: Option<&str>) -> Result<TlsSettings, TlsError> {
        let key = key.to_string();
        let password = password.map(str::to_string);
        TlsSettings::from_lookup(&move |k: &str| match k {
            "ssl.keystore.key" => Some(key.clone()),
            "ssl.keystore.certificate.chain" => Some(CERT.to_string()),
            "ssl.key.password" => password.clone(),
            _ => None,
        })
    }

    fn server(key: &str, password: Option<&str>) -> Result<Arc<ServerConfig>, TlsError> {
        settings(key, password)?.server_config()
    }

    #[test]
    fn an_encrypted_pkcs8_key_decrypts_to_the_plain_one() {
        let plain = PrivateKeyDer::from_pem_slice(PLAIN.as_bytes()).unwrap();
        let decrypted = private_key(
            PBES2.as_bytes(),
            "ssl.keystore.key",
            Some(&KeyPassword("s3cret".into())),
        )
        .unwrap();
        assert_eq!(plain.secret_der(), decrypted.secret_der());
        assert!(server(PBES2, Some("s3cret")).is_ok());
    }

    #[test]
    fn a_wrong_or_missing_password_is_refused_clearly() {
        let error = server(PBES2, Some("wrong")).unwrap_err();
        assert_eq!(error.key, "ssl.key.password");
        assert!(error.reason.contains("wrong ssl.key.password"), "{error}");
        let error = server(PBES2, None).unwrap_err();
        assert_eq!(error.key, "ssl.key.password");
        assert!(
            error.reason.contains("is encrypted: set ssl.key.password"),
            "{error}"
        );
        // The password never reaches a debug line.
        let debug = format!("{:?}", settings(PBES2, Some("s3cret")).unwrap());
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn legacy_and_pbes1_encryption_are_refused_with_the_conversion() {
        let error = server(LEGACY, Some("s3cret")).unwrap_err();
        assert!(error.reason.contains("legacy OpenSSL PEM"), "{error}");
        assert!(error.reason.contains("openssl pkcs8 -topk8 -v2"), "{error}");
        let error = server(PKCS12_3DES, Some("s3cret")).unwrap_err();
        assert!(error.reason.contains("openssl pkcs8 -topk8 -v2"), "{error}");
    }

    #[test]
    fn a_plain_key_loads_with_or_without_a_password() {
        assert!(server(PLAIN, None).is_ok());
        assert!(server(PLAIN, Some("unused")).is_ok());
    }
}
