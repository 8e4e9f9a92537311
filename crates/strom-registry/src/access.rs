//! One way in to a registry's REST API for code that is not an HTTP client of its own: the
//! broker's console. In-process (the registry `strom server` runs itself) a call goes
//! through the registry's own router, so it runs exactly the handlers a REST client reaches
//! (same validation, same leader forwarding, same errors) without a socket and without the
//! listener's authentication (the console authenticates its own users). Remote (a registry
//! running elsewhere, `strom.console.schema.registry.url`) it goes through [`RegistryClient`].

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use tower_service::Service;

use crate::client::{CallError, HttpError, RegistryClient, CONTENT_TYPE};

/// The longest answer read from an in-process call.
const ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;

/// A registry to call.
#[derive(Clone)]
pub enum RegistryAccess {
    /// The registry of this process, through its router.
    InProcess {
        router: axum::Router,
        timeout: Duration,
    },
    /// A registry at an `http://host:port` URL.
    Remote(RegistryClient),
}

impl std::fmt::Debug for RegistryAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryAccess::InProcess { .. } => f.write_str("RegistryAccess::InProcess"),
            RegistryAccess::Remote(client) => {
                write!(f, "RegistryAccess::Remote({})", client.base())
            }
        }
    }
}

impl RegistryAccess {
    /// Where the registry is, for messages.
    pub fn describe(&self) -> String {
        match self {
            RegistryAccess::InProcess { .. } => "the schema registry of this process".to_string(),
            RegistryAccess::Remote(client) => format!("the schema registry at {}", client.base()),
        }
    }

    /// One REST call; a non-2xx answer is a [`CallError::Registry`].
    pub async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, CallError> {
        match self {
            RegistryAccess::Remote(client) => client.call(method, path_and_query, body).await,
            RegistryAccess::InProcess { router, timeout } => {
                let exchange = in_process(router.clone(), method, path_and_query, body);
                match tokio::time::timeout(*timeout, exchange).await {
                    Ok(result) => result,
                    Err(_) => Err(CallError::Http(HttpError::Timeout {
                        url: path_and_query.to_string(),
                        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                    })),
                }
            }
        }
    }
}

async fn in_process(
    mut router: axum::Router,
    method: &str,
    path_and_query: &str,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value, CallError> {
    let failed = |reason: String| {
        CallError::Http(HttpError::Exchange {
            url: path_and_query.to_string(),
            reason,
        })
    };
    let mut request = axum::http::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header("accept", CONTENT_TYPE);
    if body.is_some() {
        request = request.header("content-type", CONTENT_TYPE);
    }
    let request = request
        .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
        .map_err(|e| failed(e.to_string()))?;
    // The router is always ready (axum's Router::poll_ready is).
    let response = match router.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status().as_u16();
    let bytes: Bytes = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
        .collect()
        .await
        .map_err(|e| failed(format!("reading the answer: {e}")))?
        .to_bytes();
    crate::client::answer(status, &bytes)
}
