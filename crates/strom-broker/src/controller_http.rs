//! The HTTP listener of a controller-only node (`process.roles=controller`,
//! `strom.http.listeners` as on a broker): `/metrics` (the metadata quorum as this node
//! sees it, and the process), `/health/live` and `/health/ready`. A node that is also a
//! broker serves these from the broker's listener (`crate::http`) instead.
//!
//! **Ready** means every check passes, re-evaluated on each probe:
//! - `quorum`: this node knows a quorum leader, so it has joined the quorum (a voter, or an
//!   observer the leader replicates to, as a controller is before AddRaftVoter);
//! - `caught_up`: it has applied its metadata log to within
//!   [`crate::metrics::health::APPLY_LAG_MAX`] entries. The leader pushes its entries with
//!   every heartbeat, so a member that knows the leader holds the leader's log up to the
//!   last heartbeat; this is a local check, no request to the leader;
//! - `not_stopping`: shutdown has not begun.
//!
//! Bounded as the broker's listener is (`crate::http`: connections, lifetime, request time).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use strom_metrics::TextEncoder;
use strom_raft::wire::QuorumStatus;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::http::Bounded;
use crate::metrics::health::{self, Check, APPLY_LAG_MAX};
use crate::metrics::MetricsConfig;

/// This node's view of the quorum, read at each request.
pub type StatusFn = Arc<dyn Fn() -> QuorumStatus + Send + Sync>;

/// A running controller HTTP listener.
pub struct ControllerHttp {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

struct ControllerState {
    status: StatusFn,
    stopping: watch::Receiver<bool>,
}

impl ControllerHttp {
    /// Binds `strom.http.listeners` and serves. `Ok(None)` when the key is set empty, or
    /// when the default listener's port is taken (logged, as on a broker).
    pub async fn start(
        config: &MetricsConfig,
        status: StatusFn,
    ) -> Result<Option<ControllerHttp>, crate::StartError> {
        let Some(listener) = &config.http_listener else {
            return Ok(None);
        };
        // A controller-only node has no SASL users of its own to check passwords against.
        if config.http_authentication != crate::metrics::HttpAuthentication::None {
            return Err(crate::StartError::Tls(
                "strom.http.authentication.method=BASIC is served by brokers only; on a \
                 controller-only node set it to NONE and keep strom.http.listeners on loopback \
                 or a trusted network"
                    .to_string(),
            ));
        }
        let tls = crate::http::HttpShared::new(config)?.tls.clone();
        let Some(bound) = crate::http::bind(
            listener,
            config.http_listener_set,
            config.http_authentication,
        )
        .await?
        else {
            return Ok(None);
        };
        let addr = bound
            .local_addr()
            .map_err(|source| crate::StartError::Bind {
                address: format!("{} (strom.http.listeners)", listener.bind_address()),
                source,
            })?;
        let (stop, stopping) = watch::channel(false);
        let state = Arc::new(ControllerState {
            status,
            stopping: stopping.clone(),
        });
        let router = Router::new()
            .route("/metrics", get(metrics))
            .route("/health/live", get(crate::http::live))
            .route("/health/ready", get(ready))
            .with_state(state);
        let bounded = Bounded::new(bound, tls);
        let mut until = stopping;
        let task = tokio::spawn(async move {
            let serve = axum::serve(bounded, router).with_graceful_shutdown(async move {
                let _ = until.wait_for(|stop| *stop).await;
            });
            if let Err(error) = serve.await {
                tracing::warn!(%error, "the controller's HTTP listener stopped");
            }
        });
        Ok(Some(ControllerHttp { addr, stop, task }))
    }

    /// The bound address (the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Marks the node as stopping (readiness fails from now on).
    pub fn set_stopping(&self) {
        self.stop.send_replace(true);
    }

    /// Stops serving and waits for the listener's task.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        if tokio::time::timeout(crate::http::REQUEST_TIMEOUT, self.task)
            .await
            .is_err()
        {
            tracing::warn!("the controller's HTTP listener did not stop in time");
        }
    }
}

async fn metrics(State(state): State<Arc<ControllerState>>) -> Response {
    let mut e = TextEncoder::new();
    crate::metrics::quorum_gauges(&mut e, Some((state.status)()));
    strom_metrics::process::encode(&mut e);
    (
        [(header::CONTENT_TYPE, strom_metrics::CONTENT_TYPE)],
        e.finish(),
    )
        .into_response()
}

async fn ready(State(state): State<Arc<ControllerState>>) -> Response {
    let checks = readiness(&(state.status)(), *state.stopping.borrow());
    let code = if checks.iter().all(|c| c.ok) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        health::to_json(&checks),
    )
        .into_response()
}

/// The readiness checks of a controller-only node (see the module comment).
pub fn readiness(status: &QuorumStatus, stopping: bool) -> Vec<Check> {
    let role = if status.voters.contains(&status.node_id) {
        "voter"
    } else {
        "observer"
    };
    let quorum = match status.leader_id {
        Some(leader) => Check {
            name: "quorum",
            ok: true,
            detail: format!("{role}, leader {leader}, epoch {}", status.term),
        },
        None => Check {
            name: "quorum",
            ok: false,
            detail: format!("{role}, no quorum leader known"),
        },
    };
    let log_end = status.last_log_index.unwrap_or(0);
    let applied = status.last_applied_index.unwrap_or(0);
    let lag = log_end.saturating_sub(applied);
    let caught_up = Check {
        name: "caught_up",
        ok: lag <= APPLY_LAG_MAX,
        detail: format!("applied {applied} of {log_end} entries"),
    };
    let not_stopping = Check {
        name: "not_stopping",
        ok: !stopping,
        detail: if stopping { "shutting down" } else { "serving" }.to_string(),
    };
    vec![quorum, caught_up, not_stopping]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(leader: Option<u64>, log_end: u64, applied: u64) -> QuorumStatus {
        QuorumStatus {
            node_id: 1,
            leader_id: leader,
            term: 3,
            last_log_index: Some(log_end),
            last_applied_index: Some(applied),
            voters: vec![1, 2, 3],
        }
    }

    #[test]
    fn ready_needs_a_leader_a_caught_up_log_and_no_shutdown() {
        let ok = |checks: Vec<Check>| checks.iter().all(|c| c.ok);
        assert!(ok(readiness(&status(Some(2), 10, 10), false)));
        assert!(!ok(readiness(&status(None, 10, 10), false)));
        assert!(!ok(readiness(&status(Some(2), 5_000, 10), false)));
        assert!(!ok(readiness(&status(Some(2), 10, 10), true)));
        let observer = QuorumStatus {
            voters: vec![2, 3],
            ..status(Some(2), 10, 10)
        };
        let checks = readiness(&observer, false);
        assert!(ok(checks.clone()));
        assert!(checks[0].detail.starts_with("observer"), "{checks:?}");
    }
}
