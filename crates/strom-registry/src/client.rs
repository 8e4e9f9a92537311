//! A small HTTP/1 client on hyper's connection API: one connection per request, a time
//! limit on the whole exchange and on the response size. Used to forward writes to the
//! leader and by the `strom schemas` command line.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// The media type of Confluent's API.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Why an HTTP exchange failed (not an HTTP error status: that is a response).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: not an http://host:port URL")]
    Url { url: String },
    #[error("cannot reach {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url}: {reason}")]
    Exchange { url: String, reason: String },
    #[error("{url}: no answer within {timeout_ms} ms")]
    Timeout { url: String, timeout_ms: u64 },
}

/// A response: status and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

/// `http://host:port` (a trailing `/` and path are ignored) as `host:port`.
fn authority(base: &str) -> Result<String, HttpError> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| HttpError::Url { url: base.into() })?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(HttpError::Url { url: base.into() });
    }
    Ok(host.to_string())
}

/// Sends one request to `base` + `path_and_query` and reads the response (at most
/// `response_bytes_max` bytes) within `timeout`.
pub async fn send(
    base: &str,
    method: &str,
    path_and_query: &str,
    body: Option<Bytes>,
    timeout: Duration,
    response_bytes_max: usize,
) -> Result<Response, HttpError> {
    let url = format!("{}{path_and_query}", base.trim_end_matches('/'));
    let exchange = exchange(base, method, path_and_query, body, response_bytes_max);
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Timeout {
            url,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }),
    }
}

async fn exchange(
    base: &str,
    method: &str,
    path_and_query: &str,
    body: Option<Bytes>,
    response_bytes_max: usize,
) -> Result<Response, HttpError> {
    let host = authority(base)?;
    let url = format!("{}{path_and_query}", base.trim_end_matches('/'));
    let failed = |reason: String| HttpError::Exchange {
        url: url.clone(),
        reason,
    };
    let stream = tokio::net::TcpStream::connect(&host)
        .await
        .map_err(|e| HttpError::Connect {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "http client connection");
        }
    });
    let mut request = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header("host", &host)
        .header("accept", CONTENT_TYPE);
    if body.is_some() {
        request = request.header("content-type", CONTENT_TYPE);
    }
    let request = request
        .body(Full::new(body.unwrap_or_default()))
        .map_err(|e| failed(e.to_string()))?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), response_bytes_max)
            .collect()
            .await
            .map_err(|e| failed(format!("reading the response: {e}")))?
            .to_bytes();
        Ok(Response { status, body })
    }
    .await;
    driver.abort();
    result
}

/// A failed call to a registry.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The registry answered with an error body.
    #[error("schema registry: {message} (HTTP {status}, error code {error_code})")]
    Registry {
        status: u16,
        error_code: i64,
        message: String,
    },
    #[error("schema registry: the answer is not JSON: {0}")]
    Json(String),
}

/// A client of a registry's REST API (this one's or Confluent's).
#[derive(Debug, Clone)]
pub struct RegistryClient {
    base: String,
    timeout: Duration,
}

/// Longest registry answer read.
const ANSWER_BYTES_MAX: usize = 64 * 1024 * 1024;

impl RegistryClient {
    pub fn new(base: &str, timeout: Duration) -> RegistryClient {
        RegistryClient {
            base: base.trim_end_matches('/').to_string(),
            timeout,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// One call; a non-2xx answer is a [`CallError::Registry`].
    pub async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, CallError> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        let response = send(
            &self.base,
            method,
            path_and_query,
            body,
            self.timeout,
            ANSWER_BYTES_MAX,
        )
        .await?;
        answer(response.status, &response.body)
    }
}

/// A registry's answer as JSON; a non-2xx one is a [`CallError::Registry`].
pub(crate) fn answer(status: u16, body: &[u8]) -> Result<serde_json::Value, CallError> {
    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(body);
    if !(200..300).contains(&status) {
        let (error_code, message) = match &parsed {
            Ok(v) => (
                v.get("error_code")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(-1),
                v.get("message")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ),
            Err(_) => (-1, String::from_utf8_lossy(body).into_owned()),
        };
        return Err(CallError::Registry {
            status,
            error_code,
            message,
        });
    }
    parsed.map_err(|e| CallError::Json(e.to_string()))
}

/// Percent-encodes a path segment (a subject name may hold any character).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
