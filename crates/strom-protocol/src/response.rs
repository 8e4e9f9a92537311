//! Response encoding: size prefix, response header (v0 or v1), body.
//!
//! The header version follows the API and version (v1, with tagged fields, when the response
//! is flexible), except ApiVersions, whose response header is always v0 so that a client
//! that does not yet know the broker's versions can read it. The body encoder (kafka-protocol)
//! writes a tagged field only when it differs from its default: Debian's kcat (librdkafka
//! 2.0.2) cannot parse ApiVersions v3 tagged fields it does not expect. It does read the
//! supported and finalized features Kafka sends (and Strom, `features.rs`): kcat's client
//! tests run against them.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;

use crate::frame::SIZE_PREFIX_BYTES;
use crate::request::{DecodedRequest, Incoming};

/// A response that could not be encoded: a bug in the handler that built it, never a
/// client's doing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The body does not encode at this version (a field the version cannot carry, a string
    /// too long for its length prefix...).
    #[error("cannot encode {api_key:?} v{api_version} response: {reason}")]
    Body {
        /// The API.
        api_key: ApiKey,
        /// The version.
        api_version: i16,
        /// The encoder's message.
        reason: String,
    },
    /// The response does not fit in a frame.
    #[error("response of {size_bytes} bytes does not fit in a frame")]
    TooLarge {
        /// The encoded size.
        size_bytes: usize,
    },
}

/// Where a response goes: the API and version it is encoded at, and the correlation id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseTarget {
    /// The API.
    pub api_key: ApiKey,
    /// The version the body is encoded at.
    pub api_version: i16,
    /// Echoed from the request.
    pub correlation_id: i32,
}

impl ResponseTarget {
    /// The target for a decoded request: same API, version and correlation id.
    pub fn for_request(request: &DecodedRequest) -> Self {
        Self {
            api_key: request.api_key,
            api_version: request.api_version(),
            correlation_id: request.header.correlation_id,
        }
    }

    /// The target for any incoming frame; the ApiVersions fallback answers at version 0.
    pub fn for_incoming(incoming: &Incoming) -> Self {
        match incoming {
            Incoming::Request(request) => Self::for_request(request),
            Incoming::UnsupportedApiVersions { header } => Self {
                api_key: ApiKey::ApiVersions,
                api_version: 0,
                correlation_id: header.correlation_id,
            },
        }
    }
}

/// The response header version for `api_key` at `api_version` (ApiVersions: always 0).
pub fn response_header_version(api_key: ApiKey, api_version: i16) -> i16 {
    if api_key == ApiKey::ApiVersions {
        return 0;
    }
    api_key.response_header_version(api_version)
}

/// Encodes a whole response frame: size prefix, header, body.
pub fn encode_response(target: &ResponseTarget, body: &ResponseKind) -> Result<Bytes, EncodeError> {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(target.correlation_id);
    let header_version = response_header_version(target.api_key, target.api_version);
    header
        .encode(&mut buf, header_version)
        .map_err(body_error(target))?;
    body.encode(&mut buf, target.api_version)
        .map_err(body_error(target))?;
    let size_bytes = buf.len() - SIZE_PREFIX_BYTES;
    let size_prefix =
        i32::try_from(size_bytes).map_err(|_| EncodeError::TooLarge { size_bytes })?;
    if let Some(prefix) = buf.first_chunk_mut::<SIZE_PREFIX_BYTES>() {
        *prefix = size_prefix.to_be_bytes();
    }
    Ok(buf.freeze())
}

fn body_error<E: std::fmt::Display>(target: &ResponseTarget) -> impl Fn(E) -> EncodeError + '_ {
    move |error| EncodeError::Body {
        api_key: target.api_key,
        api_version: target.api_version,
        reason: format!("{error:#}"),
    }
}
