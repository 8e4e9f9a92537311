//! ApiVersions answers, as Kafka's `KafkaApis.handleApiVersionsRequest` gives them.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use crate::kafka_error::ErrorCode;
use crate::versions::ApiVersionTable;

/// The first ApiVersions version that carries the client's software name and version.
const CLIENT_SOFTWARE_MIN_VERSION: i16 = 3;

/// Kafka's rule for the client software name and version (KIP-511):
/// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
fn is_valid_software_field(text: &str) -> bool {
    let bytes = text.as_bytes();
    let alnum = |byte: &u8| byte.is_ascii_alphanumeric();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            alnum(first)
                && alnum(last)
                && bytes
                    .iter()
                    .all(|byte| alnum(byte) || *byte == b'-' || *byte == b'.')
        }
        _ => false,
    }
}

/// Whether Kafka accepts the request: from v3 on, both software fields must follow KIP-511.
pub fn is_valid_request(request: &ApiVersionsRequest, api_version: i16) -> bool {
    api_version < CLIENT_SOFTWARE_MIN_VERSION
        || (is_valid_software_field(&request.client_software_name)
            && is_valid_software_field(&request.client_software_version))
}

/// The answer to a decoded ApiVersions request at `api_version`: the table's rows, or
/// INVALID_REQUEST (with no rows) when the software fields break KIP-511's rule.
pub fn response(
    table: &ApiVersionTable,
    request: &ApiVersionsRequest,
    api_version: i16,
    finalized: &crate::features::Finalized,
) -> ApiVersionsResponse {
    if !is_valid_request(request, api_version) {
        return ApiVersionsResponse::default().with_error_code(ErrorCode::INVALID_REQUEST.code());
    }
    // Kafka 4.2 advertises the streams group APIs only while `streams.version` is enabled.
    let streams = finalized.level("streams.version") >= 1;
    let rows = table
        .advertised()
        .into_iter()
        .filter(|row| {
            streams
                || (row.api_key != ApiKey::StreamsGroupHeartbeat as i16
                    && row.api_key != ApiKey::StreamsGroupDescribe as i16)
        })
        .collect();
    crate::features::with_features(
        ApiVersionsResponse::default().with_api_keys(rows),
        api_version,
        finalized,
    )
}

/// The answer to ApiVersions at a version the broker does not know: UNSUPPORTED_VERSION with
/// the broker's ApiVersions row only. Encode it at version 0 (the client reads it as v0).
pub fn unsupported_version_response(table: &ApiVersionTable) -> ApiVersionsResponse {
    let row = table
        .advertised()
        .into_iter()
        .filter(|row| row.api_key == ApiKey::ApiVersions as i16)
        .collect::<Vec<ApiVersion>>();
    ApiVersionsResponse::default()
        .with_error_code(ErrorCode::UNSUPPORTED_VERSION.code())
        .with_api_keys(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_fields_follow_kip_511() {
        for valid in [
            "a",
            "librdkafka",
            "apache-kafka-java",
            "2.0.2",
            "3.9.0-SNAPSHOT",
            "x.y",
        ] {
            assert!(is_valid_software_field(valid), "{valid}");
        }
        for invalid in ["", "-a", "a-", ".a", "a.", "a b", "a_b", "é", "a/b"] {
            assert!(!is_valid_software_field(invalid), "{invalid}");
        }
    }
}
