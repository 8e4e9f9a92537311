//! strom-security: authentication for the broker and its clients. TLS configurations from
//! Kafka's `ssl.*` keys (`tls.rs`, rustls with the ring provider), SASL PLAIN and Kafka's JAAS
//! text (`sasl.rs`), SCRAM-SHA-256/512 on both sides (`scram.rs`), and the client
//! certificate's subject with `ssl.principal.mapping.rules` (`x500.rs`), and OAUTHBEARER's
//! token validation, unsecured or against a JWKS (`oauthbearer.rs`), a JWKS endpoint fetched
//! over https and refreshed by a thread of its own (`jwks_http.rs`).
//!
//! It holds no broker state and, but for the JWKS fetches, no sockets: the broker's
//! connection layer and strom-client drive these pieces.

pub mod client;
pub mod jwks_http;
pub mod oauthbearer;
pub mod sasl;
pub mod scram;
pub mod tls;
pub mod transport;
pub mod x500;

pub use client::ClientStream;
pub use sasl::{
    plain_authenticate, plain_message, JaasConfig, PlainError, SaslClient, SaslClientError,
};
pub use scram::{ScramClient, ScramCredential, ScramError, ScramMechanism, ScramServer};
pub use tls::{ClientAuth, TlsClient, TlsError, TlsServer, TlsSettings};
pub use transport::Transport;
pub use x500::{subject_name, PrincipalMapper, SubjectError};

pub use rustls;
/// Re-exported so users build connectors and acceptors with the same rustls.
pub use tokio_rustls;

/// Compares secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
