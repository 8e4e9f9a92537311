//! Request decoding: one frame body to a header and a typed request, or a typed refusal.
//!
//! What a Kafka 4 broker does with each refusal (`SocketServer.processCompletedReceives`,
//! `RequestHeader.parse`, `RequestContext.parseRequest`): an unparsable header, an unknown API
//! key, an API or version the broker does not serve, and a body that does not parse are all
//! refused in the network layer by closing the connection, without a response. The one
//! exception is ApiVersions at a version the broker does not know: it is answered with a
//! v0 body carrying UNSUPPORTED_VERSION, so that the client can retry at a shared version.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::versions::ApiVersionTable;

/// A frame that a Kafka broker refuses by closing the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The frame is too short for, or does not parse as, a request header.
    #[error("malformed request header (api key {api_key:?}): {reason}")]
    MalformedHeader {
        /// The API key, when the frame is long enough to hold one.
        api_key: Option<i16>,
        /// Why the header did not parse.
        reason: String,
    },
    /// The API key is not one Kafka defines.
    #[error(
        "unknown api key {api_key} (version {api_version}, correlation id {correlation_id:?})"
    )]
    UnknownApiKey {
        /// The API key received.
        api_key: i16,
        /// The API version received.
        api_version: i16,
        /// The correlation id, when the frame is long enough to hold one.
        correlation_id: Option<i32>,
    },
    /// The API is not served, or not at this version.
    #[error(
        "api {api_key:?} version {api_version} is not enabled (correlation id {correlation_id})"
    )]
    UnsupportedVersion {
        /// The API.
        api_key: ApiKey,
        /// The version received.
        api_version: i16,
        /// The correlation id.
        correlation_id: i32,
    },
    /// The header parsed but the body did not.
    #[error(
        "malformed {api_key:?} v{api_version} body (correlation id {correlation_id}): {reason}"
    )]
    MalformedBody {
        /// The API.
        api_key: ApiKey,
        /// The version.
        api_version: i16,
        /// The correlation id.
        correlation_id: i32,
        /// Why the body did not parse.
        reason: String,
    },
}

impl RequestError {
    /// Whether the broker closes the connection. Always true: Kafka answers none of these
    /// (the ApiVersions fallback is not an error, see [`Incoming::UnsupportedApiVersions`]).
    pub fn closes_connection(&self) -> bool {
        true
    }
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    /// The header; a null client id reads as the empty string, as in Kafka.
    pub header: RequestHeader,
    /// The API.
    pub api_key: ApiKey,
    /// The body, decoded at `header.request_api_version`.
    pub body: RequestKind,
}

impl DecodedRequest {
    /// The API version of the request (and of its response).
    pub fn api_version(&self) -> i16 {
        self.header.request_api_version
    }

    /// Whether the client waits for a response: Kafka sends none to a Produce with `acks=0`.
    pub fn expects_response(&self) -> bool {
        !matches!(&self.body, RequestKind::Produce(produce) if produce.acks == 0)
    }
}

/// What a frame turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A request to handle (boxed: decoded requests are large, the fallback is small).
    Request(Box<DecodedRequest>),
    /// ApiVersions at a version this broker does not know; its body was not parsed. Answer
    /// with [`crate::api_versions::unsupported_version_response`] encoded at version 0.
    UnsupportedApiVersions {
        /// The header (the API version is the unknown one the client sent).
        header: RequestHeader,
    },
}

impl Incoming {
    /// The header of the request.
    pub fn header(&self) -> &RequestHeader {
        match self {
            Incoming::Request(request) => &request.header,
            Incoming::UnsupportedApiVersions { header } => header,
        }
    }
}

/// The fields every request header starts with, read before the header version is known.
struct HeaderPrefix {
    api_key: i16,
    api_version: i16,
    correlation_id: Option<i32>,
}

fn read_prefix(frame: &[u8]) -> Result<HeaderPrefix, RequestError> {
    let mut buf = frame;
    if buf.remaining() < 4 {
        let api_key = (buf.remaining() >= 2).then(|| buf.get_i16());
        return Err(RequestError::MalformedHeader {
            api_key,
            reason: format!("{} bytes is too short for a request header", frame.len()),
        });
    }
    let api_key = buf.get_i16();
    let api_version = buf.get_i16();
    let correlation_id = (buf.remaining() >= 4).then(|| buf.get_i32());
    Ok(HeaderPrefix {
        api_key,
        api_version,
        correlation_id,
    })
}

/// Parses the request header at the start of `frame` and returns it with the body that
/// follows. The header version comes from the API and its version (v2 when flexible).
pub fn parse_header(frame: &Bytes) -> Result<(ApiKey, RequestHeader, Bytes), RequestError> {
    let prefix = read_prefix(frame)?;
    let api_key = ApiKey::try_from(prefix.api_key).map_err(|()| RequestError::UnknownApiKey {
        api_key: prefix.api_key,
        api_version: prefix.api_version,
        correlation_id: prefix.correlation_id,
    })?;
    let header_version = api_key.request_header_version(prefix.api_version);
    let mut buf = frame.clone();
    let mut header = RequestHeader::decode(&mut buf, header_version).map_err(|error| {
        RequestError::MalformedHeader {
            api_key: Some(prefix.api_key),
            reason: error.to_string(),
        }
    })?;
    if header.client_id.is_none() {
        header.client_id = Some(StrBytes::new());
    }
    Ok((api_key, header, buf))
}

/// Decodes one frame body (the bytes after the size prefix) against the broker's table.
pub fn decode_request(frame: &Bytes, table: &ApiVersionTable) -> Result<Incoming, RequestError> {
    let (api_key, header, mut body) = parse_header(frame)?;
    let api_version = header.request_api_version;
    if !table.is_enabled(api_key, api_version) {
        if api_key == ApiKey::ApiVersions {
            return Ok(Incoming::UnsupportedApiVersions { header });
        }
        return Err(RequestError::UnsupportedVersion {
            api_key,
            api_version,
            correlation_id: header.correlation_id,
        });
    }
    // Trailing bytes after the body are ignored, as Kafka does.
    let body = RequestKind::decode(api_key, &mut body, api_version).map_err(|error| {
        RequestError::MalformedBody {
            api_key,
            api_version,
            correlation_id: header.correlation_id,
            reason: format!("{error:#}"),
        }
    })?;
    Ok(Incoming::Request(Box::new(DecodedRequest {
        header,
        api_key,
        body,
    })))
}
