//! A connection from this broker to another one (the follower fetcher's), one request at a
//! time: ApiVersions on connect, then requests encoded and responses decoded with
//! kafka-protocol's client-side codecs, framed and bounded by strom-protocol's
//! `FrameDecoder`, every step under a timeout. The connection uses the inter-broker
//! listener's security: TLS with the listener's trust store (and its key store as client
//! certificate), then SASL with the listener's own login module credentials.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use strom_protocol::messages::{
    ApiVersionsRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use strom_security::{ClientStream, SaslClient};

use crate::listeners::InterBrokerClient;
use strom_protocol::{FrameDecoder, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request};

/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// The ApiVersions version asked (every Strom broker serves it).
const API_VERSIONS_VERSION: i16 = 3;

/// Why a call to a peer failed; the connection is then dropped.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// Connecting, writing or reading failed.
    #[error("{addr}: {source}")]
    Io {
        /// The peer.
        addr: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// No answer within the timeout.
    #[error("{addr}: no answer within {timeout_ms} ms")]
    Timeout {
        /// The peer.
        addr: String,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The answer did not decode, or answered another request.
    #[error("{addr}: bad response: {reason}")]
    Protocol {
        /// The peer.
        addr: String,
        /// What was wrong.
        reason: String,
    },
    /// The peer does not serve the API in a version this broker speaks.
    #[error("{addr} does not serve API {api_key} in a version this broker speaks")]
    Unsupported {
        /// The peer.
        addr: String,
        /// The API.
        api_key: i16,
    },
}

/// One connection to a peer broker.
#[derive(Debug)]
pub struct PeerConnection {
    addr: String,
    stream: ClientStream,
    decoder: FrameDecoder,
    buf: BytesMut,
    correlation_id: i32,
    client_id: StrBytes,
    versions: HashMap<i16, (i16, i16)>,
}

impl PeerConnection {
    /// Connects to `addr` and learns its API versions, within `timeout_ms`. Responses
    /// larger than `frame_bytes_max` close the connection.
    pub async fn connect(
        addr: &str,
        client_id: String,
        timeout_ms: u64,
        frame_bytes_max: usize,
        security: &InterBrokerClient,
    ) -> Result<PeerConnection, PeerError> {
        let io = |source| PeerError::Io {
            addr: addr.to_string(),
            source,
        };
        let limit = Duration::from_millis(timeout_ms);
        let stream = tokio::time::timeout(limit, TcpStream::connect(addr))
            .await
            .map_err(|_| PeerError::Timeout {
                addr: addr.to_string(),
                timeout_ms,
            })?
            .map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let stream = match &security.tls {
            None => ClientStream::Plain(stream),
            Some(tls) => {
                let config = tls.client_config().map_err(|e| PeerError::Protocol {
                    addr: addr.to_string(),
                    reason: format!("TLS settings of the inter-broker listener: {e}"),
                })?;
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                tokio::time::timeout(limit, ClientStream::tls(stream, host, config))
                    .await
                    .map_err(|_| PeerError::Timeout {
                        addr: addr.to_string(),
                        timeout_ms,
                    })?
                    .map_err(io)?
            }
        };
        let mut connection = PeerConnection {
            addr: addr.to_string(),
            stream,
            decoder: FrameDecoder::new(frame_bytes_max),
            buf: BytesMut::with_capacity(READ_CHUNK_BYTES),
            correlation_id: 0,
            client_id: StrBytes::from_string(client_id),
            versions: HashMap::new(),
        };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strom-replica-fetcher"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response = connection
            .send(&request, API_VERSIONS_VERSION, timeout_ms)
            .await?;
        if response.error_code != 0 {
            return Err(connection.protocol(format!("ApiVersions error {}", response.error_code)));
        }
        connection.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        if let Some((mechanism, user, password)) = &security.sasl {
            connection
                .authenticate(mechanism, user, password, timeout_ms)
                .await?;
        }
        Ok(connection)
    }

    /// SaslHandshake v1 and SaslAuthenticate rounds (KIP-152).
    async fn authenticate(
        &mut self,
        mechanism: &str,
        user: &str,
        password: &str,
        timeout_ms: u64,
    ) -> Result<(), PeerError> {
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(mechanism.to_string()));
        let response = self.send(&handshake, 1, timeout_ms).await?;
        if response.error_code != 0 {
            return Err(self.protocol(format!(
                "SaslHandshake for {mechanism} refused (error {}); enabled: {:?}",
                response.error_code, response.mechanisms
            )));
        }
        let (mut client, mut token) = SaslClient::start(mechanism, user, password)
            .map_err(|e| self.protocol(e.to_string()))?;
        let version = self.version_of::<SaslAuthenticateRequest>(2)?;
        // PLAIN takes one round, SCRAM two; a server asking for more is refused.
        for _ in 0..3 {
            let request = SaslAuthenticateRequest::default().with_auth_bytes(token.into());
            let response = self.send(&request, version, timeout_ms).await?;
            if response.error_code != 0 {
                return Err(self.protocol(format!(
                    "SASL {mechanism} authentication as {user} failed (error {}): {}",
                    response.error_code,
                    response.error_message.as_deref().unwrap_or("")
                )));
            }
            match client
                .step(&response.auth_bytes)
                .map_err(|e| self.protocol(e.to_string()))?
            {
                Some(next) => token = next,
                None => return Ok(()),
            }
        }
        Err(self.protocol("SASL exchange did not finish".to_string()))
    }

    /// The address connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The highest version of `R` both sides speak, at most `max`.
    pub fn version_of<R: Request>(&self, max: i16) -> Result<i16, PeerError> {
        let unsupported = || PeerError::Unsupported {
            addr: self.addr.clone(),
            api_key: R::KEY,
        };
        let (peer_min, peer_max) = self
            .versions
            .get(&R::KEY)
            .copied()
            .ok_or_else(unsupported)?;
        let ours = R::VERSIONS;
        let version = peer_max.min(ours.max).min(max);
        if version < peer_min.max(ours.min) {
            return Err(unsupported());
        }
        Ok(version)
    }

    /// Sends `request` at `version` and waits (at most `timeout_ms`) for its response.
    pub async fn send<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout_ms: u64,
    ) -> Result<R::Response, PeerError> {
        let limit = Duration::from_millis(timeout_ms);
        let addr = self.addr.clone();
        match tokio::time::timeout(limit, self.exchange(request, version)).await {
            Ok(result) => result,
            Err(_) => Err(PeerError::Timeout { addr, timeout_ms }),
        }
    }

    async fn exchange<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, PeerError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::with_capacity(256);
        frame.put_i32(0);
        header
            .encode(&mut frame, R::header_version(version))
            .and_then(|()| request.encode(&mut frame, version))
            .map_err(|e| self.protocol(format!("cannot encode request: {e}")))?;
        let body_bytes = i32::try_from(frame.len() - 4)
            .map_err(|_| self.protocol("request too large".to_string()))?;
        frame[..4].copy_from_slice(&body_bytes.to_be_bytes());
        let addr = self.addr.clone();
        let io = |source| PeerError::Io {
            addr: addr.clone(),
            source,
        };
        self.stream.write_all(&frame).await.map_err(io)?;
        self.stream.flush().await.map_err(io)?;
        let mut body = loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(body)) => break body,
                Ok(None) => {}
                Err(error) => return Err(self.protocol(error.to_string())),
            }
            let missing = self.decoder.bytes_missing(&self.buf).unwrap_or(1).max(1);
            self.buf.reserve(missing.min(READ_CHUNK_BYTES));
            let read = self.stream.read_buf(&mut self.buf).await.map_err(io)?;
            if read == 0 {
                return Err(io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed",
                )));
            }
        };
        let response_header =
            ResponseHeader::decode(&mut body, R::Response::header_version(version))
                .map_err(|e| self.protocol(format!("response header: {e}")))?;
        if response_header.correlation_id != self.correlation_id {
            return Err(self.protocol(format!(
                "correlation id {} answers {}",
                response_header.correlation_id, self.correlation_id
            )));
        }
        R::Response::decode(&mut body, version).map_err(|e| self.protocol(e.to_string()))
    }

    fn protocol(&self, reason: String) -> PeerError {
        PeerError::Protocol {
            addr: self.addr.clone(),
            reason,
        }
    }
}
