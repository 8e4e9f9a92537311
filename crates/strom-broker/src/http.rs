//! The broker's HTTP listener (`strom.http.listeners`): `/metrics` (Prometheus text
//! format), `/health/live` and `/health/ready` (`metrics/health.rs`), and the read-only
//! web console at `/` (`console.rs`).
//!
//! Bounded like the Kafka listener: at most [`CONNECTIONS_MAX`] connections at once
//! (accepting waits beyond that, so the kernel's backlog absorbs bursts), each closed
//! [`CONNECTION_LIFETIME`] after it opened whatever it is doing (a keep-alive scraper simply
//! reconnects), each request answered within [`REQUEST_TIMEOUT`] or with 503. GET routes
//! read no body; the console's write actions (`console_actions.rs`) are POSTs of small forms
//! (at most `FORM_BYTES_MAX`, refused beyond), guarded against cross-site requests by a
//! per-process form token and the `Origin`/`Sec-Fetch-Site` headers. No authentication or
//! TLS yet: the default binds loopback, and a non-loopback address is logged as a warning
//! at start-up.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use crate::console_actions as actions;
use crate::metrics::{health, HttpListener};
use crate::server::BrokerContext;

/// HTTP connections served at once.
pub const CONNECTIONS_MAX: usize = 64;
/// The longest one HTTP connection stays open.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// The longest one request may take to be answered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the HTTP listener. `Ok(None)` when the default listener's port is taken (several
/// nodes on one machine): logged, not fatal. A configured listener that cannot be bound
/// fails start-up.
pub async fn bind(
    listener: &HttpListener,
    configured: bool,
) -> Result<Option<TcpListener>, crate::StartError> {
    let address = listener.bind_address();
    match TcpListener::bind(&address).await {
        Ok(bound) => {
            if !listener.is_loopback() {
                tracing::warn!(
                    %address,
                    "the HTTP listener (metrics, health) is bound to a non-loopback address \
                     and has no authentication or TLS yet; anyone who reaches it can read the \
                     broker's metrics (set strom.http.listeners=http://127.0.0.1:PORT to keep it \
                     local)"
                );
            }
            Ok(Some(bound))
        }
        Err(error) if !configured => {
            tracing::warn!(
                %address, %error,
                "the default HTTP listener (metrics, health) cannot be bound; serving without \
                 it (set strom.http.listeners to a free http://host:port, or empty to silence this)"
            );
            Ok(None)
        }
        Err(source) => Err(crate::StartError::Bind {
            address: format!("{address} (strom.http.listeners)"),
            source,
        }),
    }
}

/// The routes, over the broker's context.
pub fn router(context: Arc<BrokerContext>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/", get(crate::console::home))
        .route("/clients", get(crate::console::clients))
        .route("/topics/{topic}", get(crate::console::topic))
        .route("/topics/{topic}/{partition}", get(crate::console::browse))
        .route("/topics", post(actions::create_topic))
        .route("/topics/{topic}/delete", post(actions::delete_topic))
        .route("/topics/{topic}/partitions", post(actions::add_partitions))
        .route("/topics/{topic}/configs", post(actions::set_config))
        .route("/topics/{topic}/produce", post(actions::produce))
        .route("/groups/{group}/reset", post(actions::reset_offsets))
        .layer(DefaultBodyLimit::max(actions::FORM_BYTES_MAX))
        .with_state(context)
}

/// Serves `listener` until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    context: Arc<BrokerContext>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let bounded = Bounded {
        listener,
        permits: Arc::new(Semaphore::new(CONNECTIONS_MAX)),
    };
    if let Err(error) = axum::serve(bounded, router(context))
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::warn!(%error, "the HTTP listener stopped");
    }
}

async fn metrics(State(context): State<Arc<BrokerContext>>) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, crate::metrics::scrape(&context)).await {
        Ok(text) => ([(header::CONTENT_TYPE, strom_metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "scrape timed out\n").into_response(),
    }
}

pub(crate) async fn live() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        "{\"live\":true}",
    )
        .into_response()
}

async fn ready(State(context): State<Arc<BrokerContext>>) -> Response {
    let checks = health::readiness(&context);
    let status = if checks.iter().all(|c| c.ok) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        health::to_json(&checks),
    )
        .into_response()
}

/// A listener that holds a permit per open connection.
pub(crate) struct Bounded {
    pub(crate) listener: TcpListener,
    pub(crate) permits: Arc<Semaphore>,
}

impl axum::serve::Listener for Bounded {
    type Io = Limited;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Limited, SocketAddr) {
        loop {
            // Closed never: the semaphore lives as long as the listener.
            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                std::future::pending::<()>().await;
                continue;
            };
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let limited = Limited {
                        stream,
                        deadline: Box::pin(tokio::time::sleep(CONNECTION_LIFETIME)),
                        _permit: permit,
                    };
                    return (limited, peer);
                }
                Err(error) => {
                    tracing::debug!(%error, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A connection that ends at its deadline: reads see end of input, writes fail.
pub(crate) struct Limited {
    stream: TcpStream,
    deadline: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Limited {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
