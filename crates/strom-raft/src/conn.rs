//! One client connection to a controller process: request/response with reconnect and
//! per-call timeouts. Any failure drops the socket, so the next call reconnects.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use strom_security::ClientStream;
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::security::SecurityContext;
use crate::wire::{self, kind, WireError};

/// Why a call failed, split the way callers retry differently.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection could be made: back off before retrying.
    #[error("cannot connect to {addr}: {source}")]
    Unreachable { addr: String, source: WireError },
    /// The connection failed mid-call: the request may or may not have been handled.
    #[error("call to {addr} failed: {source}")]
    Network { addr: String, source: WireError },
}

#[derive(Debug)]
pub struct Conn {
    addr: String,
    stream: Option<ClientStream>,
    frame_bytes_max: usize,
    connect_timeout: Duration,
    /// The controller listener's TLS and SASL (`security.rs`).
    security: Arc<SecurityContext>,
}

impl Conn {
    pub fn new(
        addr: String,
        frame_bytes_max: usize,
        connect_timeout: Duration,
        security: Arc<SecurityContext>,
    ) -> Conn {
        Conn {
            addr,
            stream: None,
            frame_bytes_max,
            connect_timeout,
            security,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` as a `request_kind` frame and waits up to `call_timeout` for the answer.
    pub async fn call<Req, Resp>(
        &mut self,
        request_kind: u8,
        request: &Req,
        call_timeout: Duration,
    ) -> Result<Resp, CallError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let stream = match self.stream.take() {
            Some(stream) => stream,
            None => self.connect().await?,
        };
        match timeout(call_timeout, self.exchange(stream, request_kind, request)).await {
            Ok(Ok((stream, response))) => {
                self.stream = Some(stream);
                Ok(response)
            }
            Ok(Err(source)) => Err(self.network(source)),
            Err(_) => Err(self.network(WireError::Timeout(call_timeout))),
        }
    }

    /// TCP within the connect timeout, then the listener's TLS and SASL (each bounded by
    /// `security::AUTH_TIMEOUT`). An authentication failure counts as unreachable: the
    /// caller backs off, and the reason is logged by `security.rs`.
    async fn connect(&self) -> Result<ClientStream, CallError> {
        let unreachable = |source| CallError::Unreachable {
            addr: self.addr.clone(),
            source,
        };
        let stream = timeout(self.connect_timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| unreachable(WireError::Timeout(self.connect_timeout)))?
            .map_err(|e| unreachable(WireError::Io(e)))?;
        stream
            .set_nodelay(true)
            .map_err(|e| unreachable(WireError::Io(e)))?;
        self.security
            .connect(stream, &self.addr, self.frame_bytes_max)
            .await
            .map_err(unreachable)
    }

    async fn exchange<Req, Resp>(
        &self,
        mut stream: ClientStream,
        request_kind: u8,
        request: &Req,
    ) -> Result<(ClientStream, Resp), WireError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        wire::write_frame(&mut stream, request_kind, request, self.frame_bytes_max).await?;
        let (response_kind, body) = wire::read_frame(&mut stream, self.frame_bytes_max)
            .await?
            .ok_or_else(|| WireError::Malformed("connection closed before the response".into()))?;
        if response_kind == kind::REFUSED {
            // The peer's authorizer said no (it closes the connection): logged here, once
            // per address per interval, since the caller only sees a failed call.
            let reason: String = wire::decode(&body)?;
            return Err(self.security.refused_by(&self.addr, reason));
        }
        if response_kind != kind::RESPONSE {
            return Err(WireError::Malformed(format!(
                "unexpected frame kind {response_kind}"
            )));
        }
        Ok((stream, wire::decode(&body)?))
    }

    fn network(&self, source: WireError) -> CallError {
        CallError::Network {
            addr: self.addr.clone(),
            source,
        }
    }
}
