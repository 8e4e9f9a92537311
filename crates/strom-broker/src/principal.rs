//! Who is on the other end of a connection: the authenticated [`KafkaPrincipal`], the client's
//! address and the listener it came in on ([`Session`]), as Kafka's `RequestContext` carries
//! them to its request handlers and its authorizer.
//!
//! A connection starts with the principal its transport gives it (Kafka's
//! `DefaultKafkaPrincipalBuilder`): `User:ANONYMOUS` on PLAINTEXT, the mapped certificate
//! subject on SSL with a client certificate (`ssl.principal.mapping.rules`), `User:ANONYMOUS`
//! on SSL without one. On a SASL listener it is `User:ANONYMOUS` only until the SASL exchange
//! succeeds (no other request is served before then); the exchange then sets
//! `User:<authorization id>`. A re-authentication (KIP-368) may not change the principal.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Kafka's principal type for users (`KafkaPrincipal.USER_TYPE`); the only one Kafka's
/// default principal builder produces.
pub const USER_TYPE: &str = "User";
/// The name of the principal of an unauthenticated connection (`KafkaPrincipal.ANONYMOUS`).
pub const ANONYMOUS: &str = "ANONYMOUS";

/// A principal as Kafka writes it: `User:alice`. Compared by type and name, both exactly
/// (case-sensitive), as Kafka's `KafkaPrincipal.equals` does; the token-authenticated flag
/// is not part of the identity.
#[derive(Debug, Clone)]
pub struct KafkaPrincipal {
    pub principal_type: String,
    pub name: String,
    /// Authenticated with a delegation token (SCRAM with `tokenauth=true`).
    pub token_authenticated: bool,
}

impl KafkaPrincipal {
    /// `User:<name>`.
    pub fn user(name: impl Into<String>) -> KafkaPrincipal {
        KafkaPrincipal {
            principal_type: USER_TYPE.to_string(),
            name: name.into(),
            token_authenticated: false,
        }
    }

    /// `User:ANONYMOUS`: the principal of a PLAINTEXT connection.
    pub fn anonymous() -> KafkaPrincipal {
        KafkaPrincipal::user(ANONYMOUS)
    }

    pub fn is_anonymous(&self) -> bool {
        self.principal_type == USER_TYPE && self.name == ANONYMOUS
    }

    /// Parses `Type:name` (`super.users`, ACL principals). The name may itself hold colons
    /// (`User:CN=a:b`); only the first one separates. `None` when there is no colon or the
    /// type is empty.
    pub fn parse(text: &str) -> Option<KafkaPrincipal> {
        let (principal_type, name) = text.split_once(':')?;
        if principal_type.is_empty() {
            return None;
        }
        Some(KafkaPrincipal {
            principal_type: principal_type.to_string(),
            name: name.to_string(),
            token_authenticated: false,
        })
    }
}

impl PartialEq for KafkaPrincipal {
    fn eq(&self, other: &KafkaPrincipal) -> bool {
        self.principal_type == other.principal_type && self.name == other.name
    }
}

impl Eq for KafkaPrincipal {}

impl std::hash::Hash for KafkaPrincipal {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.principal_type.hash(state);
        self.name.hash(state);
    }
}

impl fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// Kafka's security protocols (`SecurityProtocol`), as named in
/// `listener.security.protocol.map` and `security.inter.broker.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// Parses Kafka's name (case-insensitive, as Kafka's `SecurityProtocol.forName`).
    pub fn parse(name: &str) -> Option<SecurityProtocol> {
        match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Kafka's id (`SecurityProtocol.id`), as broker registrations carry it.
    pub fn id(self) -> i16 {
        match self {
            SecurityProtocol::Plaintext => 0,
            SecurityProtocol::Ssl => 1,
            SecurityProtocol::SaslPlaintext => 2,
            SecurityProtocol::SaslSsl => 3,
        }
    }

    /// Whether the transport is TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether a SASL exchange must complete before other requests are served.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One connection's identity, handed to every request handler: Kafka's `Session` plus the
/// listener (`RequestContext.listenerName`, `securityProtocol`).
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: KafkaPrincipal,
    /// The client's address (ACL `host` entries match `client_address.ip()`).
    pub client_address: SocketAddr,
    /// The listener the connection came in on (`PLAINTEXT`, `SASL_SSL`, `INTERNAL`...).
    pub listener_name: String,
    pub security_protocol: SecurityProtocol,
    /// The SASL mechanism that authenticated the principal (`PLAIN`, `SCRAM-SHA-256`...),
    /// `None` on a listener without SASL.
    pub sasl_mechanism: Option<String>,
}

impl Session {
    /// An unauthenticated session on `listener_name` (`User:ANONYMOUS`).
    pub fn anonymous(
        client_address: SocketAddr,
        listener_name: impl Into<String>,
        security_protocol: SecurityProtocol,
    ) -> Session {
        Session {
            principal: KafkaPrincipal::anonymous(),
            client_address,
            listener_name: listener_name.into(),
            security_protocol,
            sasl_mechanism: None,
        }
    }

    /// The client's IP address, as ACL host entries name it.
    pub fn client_ip(&self) -> IpAddr {
        self.client_address.ip()
    }
}

tokio::task_local! {
    /// The listener of the request being handled (set by the connection around handlers).
    pub(crate) static LISTENER: String;
}

/// The name of the listener the request being handled came in on, if any.
pub fn current_listener() -> Option<String> {
    LISTENER.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_parses_and_prints_as_kafka_does() {
        let alice = KafkaPrincipal::parse("User:alice").unwrap();
        assert_eq!(alice, KafkaPrincipal::user("alice"));
        assert_eq!(alice.to_string(), "User:alice");
        let dn = KafkaPrincipal::parse("User:CN=a:b,O=x").unwrap();
        assert_eq!(dn.name, "CN=a:b,O=x");
        assert!(KafkaPrincipal::parse("alice").is_none());
        assert!(KafkaPrincipal::parse(":alice").is_none());
        assert!(KafkaPrincipal::anonymous().is_anonymous());
        assert_ne!(KafkaPrincipal::user("Alice"), KafkaPrincipal::user("alice"));
    }

    #[test]
    fn security_protocols_parse_case_insensitively() {
        assert_eq!(
            SecurityProtocol::parse("sasl_ssl"),
            Some(SecurityProtocol::SaslSsl)
        );
        assert!(SecurityProtocol::parse("TLS").is_none());
        assert!(SecurityProtocol::SaslSsl.uses_tls() && SecurityProtocol::SaslSsl.uses_sasl());
        assert!(!SecurityProtocol::Plaintext.uses_tls());
    }
}
