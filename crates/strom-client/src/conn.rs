//! One TCP connection to one broker: ApiVersions negotiation, framing, and pipelined
//! requests matched to responses by correlation id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use strom_protocol::FrameDecoder;
use strom_security::{ClientStream, SaslClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use crate::config::ClientSecurity;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{ClientError, Result};
use crate::versions::{api_name, client_range};

/// The ApiVersions version tried first; a broker that knows less answers in v0 format.
const API_VERSIONS_FIRST: i16 = 3;
/// The error code of an ApiVersions answer to a version the broker does not know.
const UNSUPPORTED_VERSION: i16 = 35;
/// Bytes read from the socket at a time (the buffer grows for larger frames).
const READ_CHUNK_BYTES: usize = 64 * 1024;

type Waiter = oneshot::Sender<Result<Bytes>>;

/// Requests sent and not yet answered; `closed` once the reader stopped.
#[derive(Default)]
struct Pending {
    waiters: HashMap<i32, Waiter>,
    closed: bool,
}

/// Settings of one connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionOptions {
    pub client_id: String,
    pub request_timeout_ms: u64,
    pub setup_timeout_ms: u64,
    pub frame_bytes_max: usize,
    /// `security.protocol` and its TLS and SASL settings.
    pub security: ClientSecurity,
}

/// A negotiated, pipelining connection to one broker.
pub(crate) struct Connection {
    addr: String,
    client_id: StrBytes,
    request_timeout_ms: u64,
    writer: tokio::sync::Mutex<WriteHalf<ClientStream>>,
    pending: Arc<Mutex<Pending>>,
    next_correlation_id: AtomicI32,
    /// Broker's (min, max) per API key, from ApiVersions.
    versions: OnceLock<HashMap<i16, (i16, i16)>>,
    reader: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Connection {
    /// Connects to `addr` and negotiates API versions, within the setup timeout.
    pub async fn connect(addr: &str, options: &ConnectionOptions) -> Result<Connection> {
        let setup = Duration::from_millis(options.setup_timeout_ms);
        let stream = tokio::time::timeout(setup, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("connect to {addr}"),
                timeout_ms: options.setup_timeout_ms,
            })?
            .map_err(|e| io_error(addr, &e))?;
        stream.set_nodelay(true).map_err(|e| io_error(addr, &e))?;
        let stream = match &options.security.tls {
            None => ClientStream::Plain(stream),
            Some(config) => {
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                tokio::time::timeout(setup, ClientStream::tls(stream, host, config.clone()))
                    .await
                    .map_err(|_| ClientError::Timeout {
                        what: format!("TLS handshake with {addr}"),
                        timeout_ms: options.setup_timeout_ms,
                    })?
                    .map_err(|e| io_error(addr, &e))?
            }
        };
        let (read, write) = tokio::io::split(stream);
        let pending = Arc::new(Mutex::new(Pending::default()));
        let reader = tokio::spawn(read_loop(
            read,
            FrameDecoder::new(options.frame_bytes_max),
            pending.clone(),
            addr.to_string(),
        ));
        let conn = Connection {
            addr: addr.to_string(),
            client_id: StrBytes::from_string(options.client_id.clone()),
            request_timeout_ms: options.request_timeout_ms,
            writer: tokio::sync::Mutex::new(write),
            pending,
            next_correlation_id: AtomicI32::new(0),
            versions: OnceLock::new(),
            reader,
        };
        tokio::time::timeout(setup, conn.negotiate())
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("ApiVersions with {addr}"),
                timeout_ms: options.setup_timeout_ms,
            })??;
        if let Some((mechanism, user, password)) = &options.security.sasl {
            tokio::time::timeout(setup, conn.authenticate(mechanism, user, password))
                .await
                .map_err(|_| ClientError::Timeout {
                    what: format!("SASL authentication with {addr}"),
                    timeout_ms: options.setup_timeout_ms,
                })??;
        }
        tracing::debug!(addr, "connected");
        Ok(conn)
    }

    /// `host:port` this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the socket is gone (the pool then reconnects).
    pub fn is_closed(&self) -> bool {
        self.pending.lock().map_or(true, |p| p.closed)
    }

    /// The highest version of `R` both sides speak.
    pub fn version_of<R: Request>(&self) -> Result<i16> {
        let unsupported = || ClientError::UnsupportedApi {
            addr: self.addr.clone(),
            api: api_name(R::KEY).to_string(),
        };
        let (broker_min, broker_max) = self
            .versions
            .get()
            .and_then(|v| v.get(&R::KEY).copied())
            .ok_or_else(unsupported)?;
        let (client_min, client_max) = client_range::<R>();
        let max = broker_max.min(client_max);
        if max < broker_min.max(client_min) {
            return Err(unsupported());
        }
        Ok(max)
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn send_version<R: Request>(&self, request: &R, version: i16) -> Result<R::Response> {
        self.send_version_timeout(request, version, self.request_timeout_ms)
            .await
    }

    /// Like [`Self::send_version`] with its own timeout (JoinGroup waits for a rebalance).
    pub async fn send_version_timeout<R: Request>(
        &self,
        request: &R,
        version: i16,
        timeout_ms: u64,
    ) -> Result<R::Response> {
        let (correlation_id, frame) = self.encode(request, version)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().map_err(|_| self.disconnected())?;
            if pending.closed {
                return Err(self.disconnected());
            }
            pending.waiters.insert(correlation_id, tx);
        }
        if let Err(e) = self.write(&frame).await {
            self.forget(correlation_id);
            return Err(e);
        }
        let timeout = Duration::from_millis(timeout_ms);
        let body = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(self.disconnected()),
            Err(_) => {
                self.forget(correlation_id);
                return Err(ClientError::Timeout {
                    what: format!("{} request to {}", api_name(R::KEY), self.addr),
                    timeout_ms,
                });
            }
        };
        decode_response::<R>(body, version)
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub async fn send_no_response<R: Request>(&self, request: &R) -> Result<i16> {
        let version = self.version_of::<R>()?;
        let (_, frame) = self.encode(request, version)?;
        self.write(&frame).await?;
        Ok(version)
    }

    async fn negotiate(&self) -> Result<()> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strom-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let first = self.send_version(&request, API_VERSIONS_FIRST).await;
        let response = match first {
            Ok(r) if r.error_code == 0 => r,
            // An older broker answers an unknown version in v0 format (which may not even
            // decode as v3); v0 is the version every broker speaks.
            Ok(r) if r.error_code != UNSUPPORTED_VERSION => {
                return Err(ClientError::from_code(r.error_code, None, "ApiVersions")
                    .unwrap_or_else(|| ClientError::Protocol("ApiVersions failed".into())))
            }
            Ok(_) | Err(ClientError::Protocol(_)) => {
                let r = self.send_version(&ApiVersionsRequest::default(), 0).await?;
                ClientError::check(r.error_code, None, "ApiVersions")?;
                r
            }
            Err(e) => return Err(e),
        };
        let versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        let _ = self.versions.set(versions);
        Ok(())
    }

    /// SaslHandshake v1, then SaslAuthenticate rounds (KIP-152): PLAIN one, SCRAM two.
    async fn authenticate(&self, mechanism: &str, user: &str, password: &str) -> Result<()> {
        use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
        let failed = |message: String| ClientError::Authentication(message);
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(mechanism.to_string()));
        let response = self.send_version(&handshake, 1).await?;
        if response.error_code != 0 {
            let enabled: Vec<String> = response.mechanisms.iter().map(|m| m.to_string()).collect();
            return Err(failed(format!(
                "{}: SASL mechanism {mechanism} is not enabled (the broker enables {})",
                self.addr,
                enabled.join(", ")
            )));
        }
        let (mut client, mut token) =
            SaslClient::start(mechanism, user, password).map_err(|e| failed(e.to_string()))?;
        let version = self.version_of::<SaslAuthenticateRequest>()?;
        for _ in 0..3 {
            let request = SaslAuthenticateRequest::default().with_auth_bytes(token.into());
            let response = self.send_version(&request, version).await?;
            if response.error_code != 0 {
                return Err(failed(format!(
                    "{}: {}",
                    self.addr,
                    response
                        .error_message
                        .as_deref()
                        .unwrap_or("SASL authentication failed")
                )));
            }
            match client
                .step(&response.auth_bytes)
                .map_err(|e| failed(e.to_string()))?
            {
                Some(next) => token = next,
                None => return Ok(()),
            }
        }
        Err(failed(format!(
            "{}: the SASL exchange did not finish",
            self.addr
        )))
    }

    fn encode<R: Request>(&self, request: &R, version: i16) -> Result<(i32, Bytes)> {
        let correlation_id = self
            .next_correlation_id
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        header
            .encode(&mut buf, R::header_version(version))
            .and_then(|()| request.encode(&mut buf, version))
            .map_err(|e| {
                ClientError::InvalidArgument(format!("cannot encode {}: {e}", api_name(R::KEY)))
            })?;
        let body_bytes = i32::try_from(buf.len() - 4).map_err(|_| {
            ClientError::InvalidArgument(format!("{} request too large", api_name(R::KEY)))
        })?;
        buf[..4].copy_from_slice(&body_bytes.to_be_bytes());
        Ok((correlation_id, buf.freeze()))
    }

    async fn write(&self, frame: &[u8]) -> Result<()> {
        let mut writer = self.writer.lock().await;
        // TLS buffers records in memory: flush sends them (a no-op on plain TCP).
        let written = async {
            writer.write_all(frame).await?;
            writer.flush().await
        };
        if let Err(e) = written.await {
            self.close_pending();
            return Err(io_error(&self.addr, &e));
        }
        Ok(())
    }

    fn forget(&self, correlation_id: i32) {
        if let Ok(mut p) = self.pending.lock() {
            p.waiters.remove(&correlation_id);
        }
    }

    fn close_pending(&self) {
        close_pending(&self.pending, &self.addr);
    }

    fn disconnected(&self) -> ClientError {
        ClientError::Disconnected {
            addr: self.addr.clone(),
        }
    }
}

fn decode_response<R: Request>(mut body: Bytes, version: i16) -> Result<R::Response> {
    let protocol = |e: String| {
        ClientError::Protocol(format!(
            "cannot decode {} v{version} response: {e}",
            api_name(R::KEY)
        ))
    };
    ResponseHeader::decode(&mut body, R::Response::header_version(version))
        .map_err(|e| protocol(e.to_string()))?;
    R::Response::decode(&mut body, version).map_err(|e| protocol(e.to_string()))
}

async fn read_loop(
    mut read: ReadHalf<ClientStream>,
    decoder: FrameDecoder,
    pending: Arc<Mutex<Pending>>,
    addr: String,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => deliver(&pending, frame),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(addr, error = %e, "bad response frame; closing");
                    close_pending(&pending, &addr);
                    return;
                }
            }
        }
        buf.reserve(READ_CHUNK_BYTES);
        match read.read_buf(&mut buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(addr, error = %e, "read failed");
                break;
            }
        }
    }
    close_pending(&pending, &addr);
}

fn deliver(pending: &Mutex<Pending>, frame: Bytes) {
    let Some(id) = frame.first_chunk::<4>().map(|b| i32::from_be_bytes(*b)) else {
        return;
    };
    let waiter = pending.lock().ok().and_then(|mut p| p.waiters.remove(&id));
    if let Some(waiter) = waiter {
        let _ = waiter.send(Ok(frame));
    }
}

fn close_pending(pending: &Mutex<Pending>, addr: &str) {
    let waiters = match pending.lock() {
        Ok(mut p) => {
            p.closed = true;
            std::mem::take(&mut p.waiters)
        }
        Err(_) => return,
    };
    for (_, waiter) in waiters {
        let _ = waiter.send(Err(ClientError::Disconnected {
            addr: addr.to_string(),
        }));
    }
}

fn io_error(addr: &str, e: &std::io::Error) -> ClientError {
    ClientError::Io {
        addr: addr.to_string(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{
        ApiKey, ApiVersionsResponse, MetadataRequest, MetadataResponse, RequestHeader,
    };
    use kafka_protocol::protocol::Decodable;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn options(request_timeout_ms: u64, frame_bytes_max: usize) -> ConnectionOptions {
        ConnectionOptions {
            client_id: "test".into(),
            request_timeout_ms,
            setup_timeout_ms: 5_000,
            frame_bytes_max,
            security: ClientSecurity::default(),
        }
    }

    async fn read_request(stream: &mut TcpStream) -> (RequestHeader, Bytes) {
        let size = stream.read_i32().await.unwrap();
        let mut body = vec![0u8; size as usize];
        stream.read_exact(&mut body).await.unwrap();
        let mut body = Bytes::from(body);
        let key = ApiKey::try_from(i16::from_be_bytes([body[0], body[1]])).unwrap();
        let version = i16::from_be_bytes([body[2], body[3]]);
        let header = RequestHeader::decode(&mut body, key.request_header_version(version)).unwrap();
        (header, body)
    }

    async fn respond<M: Encodable>(
        stream: &mut TcpStream,
        correlation_id: i32,
        header_version: i16,
        body: &M,
        version: i16,
    ) {
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut buf, header_version)
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        stream.write_i32(buf.len() as i32).await.unwrap();
        stream.write_all(&buf).await.unwrap();
    }

    /// A broker that only knows ApiVersions v0 and Metadata up to v4: it answers the v3
    /// probe in v0 format with UNSUPPORTED_VERSION, as Kafka does.
    async fn old_broker(listener: TcpListener, metadata_answers: usize) {
        let (mut s, _) = listener.accept().await.unwrap();
        let (h, _) = read_request(&mut s).await;
        assert_eq!(h.request_api_version, 3);
        let keys = vec![
            ApiVersion::default()
                .with_api_key(18)
                .with_min_version(0)
                .with_max_version(0),
            ApiVersion::default()
                .with_api_key(3)
                .with_min_version(0)
                .with_max_version(4),
        ];
        let unsupported = ApiVersionsResponse::default()
            .with_error_code(35)
            .with_api_keys(keys.clone());
        respond(&mut s, h.correlation_id, 0, &unsupported, 0).await;
        let (h, _) = read_request(&mut s).await;
        assert_eq!(h.request_api_version, 0);
        let ok = ApiVersionsResponse::default().with_api_keys(keys);
        respond(&mut s, h.correlation_id, 0, &ok, 0).await;
        // Answer Metadata requests in reverse order to check correlation matching.
        let mut pending = Vec::new();
        for _ in 0..metadata_answers {
            let (h, _) = read_request(&mut s).await;
            assert_eq!(h.request_api_version, 4, "highest common version");
            pending.push(h.correlation_id);
        }
        for id in pending.into_iter().rev() {
            let r = MetadataResponse::default()
                .with_controller_id(kafka_protocol::messages::BrokerId(id));
            respond(&mut s, id, 0, &r, 4).await;
        }
        // Keep the socket open until the client is done.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    }

    #[tokio::test]
    async fn negotiates_down_and_matches_pipelined_responses() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(old_broker(listener, 3));
        let conn = Connection::connect(&addr, &options(5_000, 1 << 20))
            .await
            .unwrap();
        assert_eq!(conn.version_of::<MetadataRequest>().unwrap(), 4);
        assert!(matches!(
            conn.version_of::<kafka_protocol::messages::ProduceRequest>(),
            Err(ClientError::UnsupportedApi { .. })
        ));
        let request = MetadataRequest::default();
        let (a, b, c) = tokio::join!(
            conn.send_version(&request, 4),
            conn.send_version(&request, 4),
            conn.send_version(&request, 4)
        );
        let ids: Vec<i32> = [a, b, c]
            .into_iter()
            .map(|r| r.unwrap().controller_id.0)
            .collect();
        // Each response carries its own correlation id as controller id.
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 3, "{ids:?}");
        drop(conn);
        server.await.unwrap();
    }

    /// A broker that negotiates, then misbehaves with the first Metadata request.
    async fn bad_broker(listener: TcpListener, oversized: bool) {
        let (mut s, _) = listener.accept().await.unwrap();
        let (h, _) = read_request(&mut s).await;
        let keys = vec![ApiVersion::default()
            .with_api_key(3)
            .with_min_version(0)
            .with_max_version(12)];
        let ok = ApiVersionsResponse::default().with_api_keys(keys);
        respond(&mut s, h.correlation_id, 0, &ok, 3).await;
        let _ = read_request(&mut s).await;
        if oversized {
            s.write_i32(1 << 30).await.unwrap();
        }
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    }

    #[tokio::test]
    async fn oversized_frames_close_and_silence_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(bad_broker(listener, true));
        let conn = Connection::connect(&addr, &options(5_000, 1 << 20))
            .await
            .unwrap();
        let err = conn
            .send_version(&MetadataRequest::default(), 12)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Disconnected { .. }), "{err}");
        assert!(conn.is_closed());
        drop(conn);
        server.await.unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(bad_broker(listener, false));
        let conn = Connection::connect(&addr, &options(200, 1 << 20))
            .await
            .unwrap();
        let err = conn
            .send_version(&MetadataRequest::default(), 12)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Timeout {
                    timeout_ms: 200,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.is_retriable());
        drop(conn);
        server.await.unwrap();
    }
}
