//! strom-protocol: the Kafka wire protocol edge of Strom — framing, bounded request decoding,
//! version negotiation and response encoding. No I/O, no async, no sockets.
//!
//! Start at [`decode_request`]: a frame body (from [`FrameDecoder`]) becomes an [`Incoming`]
//! request or a [`RequestError`] that the broker turns into a connection close, as Kafka does.
//! Kafka's generated message types (re-exported as [`messages`]) stay at this edge and in the
//! broker's handlers; domain crates never see them.

pub mod api_versions;
pub mod error_response;
pub mod features;
pub mod frame;
pub mod kafka_error;
pub mod request;
pub mod response;
pub mod success_messages;
pub mod versions;

pub use error_response::error_response;
pub use frame::{frame, FrameDecoder, FrameError, FRAME_BYTES_MAX_DEFAULT, SIZE_PREFIX_BYTES};
pub use kafka_error::ErrorCode;
pub use request::{decode_request, parse_header, DecodedRequest, Incoming, RequestError};
pub use response::{encode_response, response_header_version, EncodeError, ResponseTarget};
pub use success_messages::clear_success_messages;
pub use versions::{kafka_range, ApiRange, ApiVersionTable};

/// Kafka's generated request and response types (kafka-protocol 0.18, bounded decoding).
pub use kafka_protocol::messages;
/// Kafka's string type, used by the generated messages.
pub use kafka_protocol::protocol::StrBytes;
