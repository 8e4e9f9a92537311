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
