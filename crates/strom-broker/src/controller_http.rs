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
//!
//! With `strom.http.authentication.method=BASIC` the users are this node's own
//! ([`ControllerUsers`]): the PLAIN users of its controller listener's login module
//! (`user_NAME="password"`) and the SCRAM credentials of its replica of the metadata log,
//! checked as a broker checks its SASL users (`http_auth::verify_users`); paths in
//! `strom.http.authentication.skip.paths` are served without asking. A failure is answered
//! 401 after `connection.failed.authentication.delay.ms` and logged on the `strom::audit`
//! target.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use strom_metrics::TextEncoder;
use strom_raft::wire::QuorumStatus;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use strom_meta::MetadataImage;

use crate::http::Bounded;
use crate::http_auth::{self, HttpSecurity};
use crate::metrics::health::{self, Check, APPLY_LAG_MAX};
use crate::metrics::{HttpAuthentication, MetricsConfig};

/// This node's view of the quorum, read at each request.
pub type StatusFn = Arc<dyn Fn() -> QuorumStatus + Send + Sync>;

/// The users HTTP Basic is checked against on a controller-only node.
#[derive(Clone)]
pub struct ControllerUsers {
    /// PLAIN users of the controller listener's login module (name to password).
    pub plain: BTreeMap<String, String>,
    /// This node's current metadata image (its SCRAM credentials are read at each check).
    pub image: Arc<dyn Fn() -> MetadataImage + Send + Sync>,
    /// `connection.failed.authentication.delay.ms`.
    pub failed_delay_ms: u64,
}

/// The authentication gate's state.
#[derive(Clone)]
struct ControllerGate {
    users: ControllerUsers,
    security: Arc<HttpSecurity>,
}

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
        users: Option<ControllerUsers>,
    ) -> Result<Option<ControllerHttp>, crate::StartError> {
        let Some(listener) = &config.http_listener else {
            return Ok(None);
        };
        let gate = match (config.http_authentication, users) {
            (HttpAuthentication::None, _) => None,
            (method, Some(users)) => Some(ControllerGate {
                users,
                security: Arc::new(HttpSecurity::new(method, config.http_skip_paths.clone())),
            }),
            (_, None) => {
                return Err(crate::StartError::Tls(
                    "strom.http.authentication.method=BASIC needs users to check: none were \
                     given to the controller's HTTP listener"
                        .to_string(),
                ))
            }
        };
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
        let router = match gate {
            Some(gate) => router.layer(axum::middleware::from_fn_with_state(gate, authenticate)),
            None => router,
        };
        let bounded = Bounded::new(bound, tls);
        let mut until = stopping;
        let task = tokio::spawn(async move {
            let app = router.into_make_service_with_connect_info::<crate::http::PeerAddr>();
            let serve = axum::serve(bounded, app).with_graceful_shutdown(async move {
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

/// Middleware: HTTP Basic against [`ControllerUsers`], unless the path is skipped.
async fn authenticate(
    State(gate): State<ControllerGate>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    if gate.security.skipped(request.uri().path()) {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<crate::http::PeerAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0 .0);
    let offered = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(http_auth::parse_basic);
    let Some((user, password)) = offered else {
        return http_auth::challenge("authentication required");
    };
    let checking = gate.clone();
    let name = user.clone();
    let ok = tokio::task::spawn_blocking(move || {
        let image = (checking.users.image)();
        http_auth::verify_users(
            &checking.security,
            [&checking.users.plain],
            &image,
            &name,
            &password,
        )
    })
    .await
    .unwrap_or(false);
    if !ok {
        crate::authn::audit_failure(
            peer,
            "http",
            Some("BASIC"),
            &format!("wrong user name or password (user {user})"),
        );
        tokio::time::sleep(Duration::from_millis(gate.users.failed_delay_ms)).await;
        return http_auth::challenge("wrong user name or password");
    }
    next.run(request).await
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
