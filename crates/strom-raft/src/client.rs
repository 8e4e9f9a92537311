//! A client for the controller quorum: submits requests to any node and follows the leader.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::conn::CallError;
use crate::conn::Conn;
use crate::security::{QuorumSecurity, SecurityContext, SecurityError};
use crate::wire::{kind, QuorumStatus, ReadStateRequest, StateReply, SubmitError, SubmitRequest};

/// Submits metadata requests to a set of controller addresses (KRaft's
/// `--bootstrap-controller`), retrying on other nodes and following leader hints until
/// `deadline` runs out.
#[derive(Debug)]
pub struct QuorumClient {
    addrs: Vec<String>,
    frame_bytes_max: usize,
    connect_timeout: Duration,
    /// Bound on one whole call, retries included.
    pub request_timeout: Duration,
    /// Pause between rounds when no node could answer.
    pub retry_backoff: Duration,
    /// The controller listener's TLS and SASL (plaintext unless [`QuorumClient::secured`]).
    security: Arc<SecurityContext>,
}

impl QuorumClient {
    pub fn new(addrs: Vec<String>, request_timeout: Duration) -> QuorumClient {
        QuorumClient {
            addrs,
            frame_bytes_max: 16 * 1024 * 1024,
            connect_timeout: Duration::from_millis(500),
            request_timeout,
            retry_backoff: Duration::from_millis(100),
            security: SecurityContext::plaintext(),
        }
    }

    /// Connects as the controller listener's `security` says (TLS, SASL).
    pub fn secured(mut self, security: QuorumSecurity) -> Result<QuorumClient, SecurityError> {
        self.security = Arc::new(SecurityContext::client(security)?);
        Ok(self)
    }

    /// Connects with `security` (e.g. [`SecurityContext::connecting`] for a tool).
    pub fn with_security(mut self, security: SecurityContext) -> QuorumClient {
        self.security = Arc::new(security);
        self
    }

    /// Submits `request`; the reply arrives after its records are committed.
    pub async fn submit<Req, Reply>(&self, request: &Req) -> Result<Reply, SubmitError>
    where
        Req: Serialize,
        Reply: DeserializeOwned,
    {
        let message = SubmitRequest {
            forwarded: false,
            request,
        };
        self.call(kind::SUBMIT, &message).await
    }

    /// The leader's state after every committed entry is applied, as snapshot bytes.
    pub async fn read_state(&self) -> Result<StateReply, SubmitError> {
        self.call(kind::READ_STATE, &ReadStateRequest { forwarded: false })
            .await
    }

    /// One node's view of the quorum (no retries, no leader following).
    pub async fn status_of(&self, addr: &str) -> Result<QuorumStatus, CallError> {
        let mut conn = Conn::new(
            addr.to_string(),
            self.frame_bytes_max,
            self.connect_timeout,
            self.security.clone(),
        );
        conn.call(
            kind::QUORUM_STATUS,
            &(),
            self.connect_timeout.max(Duration::from_secs(2)),
        )
        .await
    }

    async fn call<Req, Reply>(&self, request_kind: u8, request: &Req) -> Result<Reply, SubmitError>
    where
        Req: Serialize,
        Reply: DeserializeOwned,
    {
        let deadline = Instant::now() + self.request_timeout;
        let mut last_error = SubmitError::Unavailable("no controller address".into());
        let mut hint: Option<String> = None;
        // The last failure that says more than "ask another node" (a refused
        // authentication, an unreachable node, a busy controller): what the timeout reports,
        // as a NotLeader answer from a node that could answer hides nothing more useful.
        let mut cause: Option<String> = None;
        // Bounded in count as well as time.
        for attempt in 0..(self.addrs.len() * 8 + 8) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let addr = match hint.take() {
                Some(addr) => addr,
                None => match self.addrs.get(attempt % self.addrs.len().max(1)) {
                    Some(addr) => addr.clone(),
                    None => break,
                },
            };
            let mut conn = Conn::new(
                addr,
                self.frame_bytes_max,
                self.connect_timeout.min(remaining),
                self.security.clone(),
            );
            match conn
                .call::<_, Result<Reply, SubmitError>>(request_kind, request, remaining)
                .await
            {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(SubmitError::NotLeader {
                    leader_addr,
                    leader_id,
                })) => {
                    last_error = SubmitError::NotLeader {
                        leader_id,
                        leader_addr: leader_addr.clone(),
                    };
                    match leader_addr {
                        Some(addr) if !addr.is_empty() && addr != conn.addr() => hint = Some(addr),
                        _ => tokio::time::sleep(self.retry_backoff.min(remaining)).await,
                    }
                }
                Ok(Err(e @ (SubmitError::Unavailable(_) | SubmitError::Busy))) => {
                    cause = Some(e.to_string());
                    last_error = e;
                    tokio::time::sleep(self.retry_backoff.min(remaining)).await;
                }
                // The outcome of these is known or must not be retried blindly.
                Ok(Err(e)) => return Err(e),
                Err(e) => {
                    cause = Some(e.to_string());
                    last_error = SubmitError::Unavailable(e.to_string());
                    tokio::time::sleep(self.retry_backoff.min(remaining)).await;
                }
            }
        }
        match last_error {
            SubmitError::Unavailable(_) | SubmitError::NotLeader { .. } => {
                tracing::debug!("quorum call gave up: {last_error}");
                Err(SubmitError::Timeout {
                    timeout_ms: u64::try_from(self.request_timeout.as_millis()).unwrap_or(u64::MAX),
                    cause: Some(cause.unwrap_or_else(|| last_error.to_string())),
                })
            }
            other => Err(other),
        }
    }
}
