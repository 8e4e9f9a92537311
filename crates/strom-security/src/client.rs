//! The client side of a connection's transport: plain TCP or TLS (for strom-client and the
//! broker's own connections to other brokers).

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::Transport;

/// A client's byte stream.
pub type ClientStream = Transport<tokio_rustls::client::TlsStream<TcpStream>>;

impl ClientStream {
    /// Wraps `tcp` in TLS with `config`, checking the certificate against `host` (an IP
    /// address or a DNS name).
    pub async fn tls(
        tcp: TcpStream,
        host: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> std::io::Result<ClientStream> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{host}: {e}"))
        })?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        Ok(ClientStream::Tls(Box::new(stream)))
    }
}
