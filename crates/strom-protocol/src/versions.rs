//! The API version table: which versions of which APIs the broker decodes and advertises.
//!
//! The ranges are Apache Kafka 4.1's `validVersions` (kafka-protocol 0.18 is generated from
//! Kafka 4.1.0's message JSON, so its `ApiKey::valid_versions` is that table; the vendored
//! copy's STROM PATCHes add Kafka 4.2's WriteTxnMarkers v2, KIP-1228), with two
//! differences that follow what a Kafka 4.1 broker actually advertises:
//! - a version marked `latestVersionUnstable` is left out (InitProducerId v6; OffsetCommit and
//!   OffsetFetch v10, which also need topic ids in the group coordinator);
//! - Produce is advertised from version 0 but decoded only from version 3 (KAFKA-18659:
//!   librdkafka checks the Produce range before choosing a compression codec).

use std::collections::BTreeMap;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiKey;

/// The versions of one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    /// The lowest version written in the ApiVersions response.
    pub min_advertised: i16,
    /// The lowest version decoded; a request below it is refused (`min_advertised <= min`).
    pub min: i16,
    /// The highest version decoded and advertised.
    pub max: i16,
}

impl ApiRange {
    /// Whether a request at `version` is decoded.
    pub fn contains(&self, version: i16) -> bool {
        (self.min..=self.max).contains(&version)
    }
}

/// Produce's advertised floor (Kafka's `PRODUCE_API_VERSIONS_RESPONSE_MIN_VERSION`).
const PRODUCE_MIN_ADVERTISED: i16 = 0;

/// Highest stable versions where Kafka 4.1's JSON lists an unstable one above them.
const STABLE_MAX_OVERRIDES: &[(ApiKey, i16)] = &[
    (ApiKey::InitProducerId, 5),
    (ApiKey::OffsetCommit, 9),
    (ApiKey::OffsetFetch, 9),
];

/// The range a Kafka 4.1 broker serves for `api`, as far as kafka-protocol can decode it.
pub fn kafka_range(api: ApiKey) -> ApiRange {
    let valid = api.valid_versions();
    let max = STABLE_MAX_OVERRIDES
        .iter()
        .find(|(key, _)| *key == api)
        .map_or(valid.max, |(_, max)| (*max).min(valid.max));
    let min_advertised = if api == ApiKey::Produce {
        PRODUCE_MIN_ADVERTISED
    } else {
        valid.min
    };
    ApiRange {
        min_advertised,
        min: valid.min,
        max,
    }
}

/// The APIs one broker serves, with their version ranges. ApiVersions is always served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersionTable {
    ranges: BTreeMap<i16, ApiRange>,
}

impl ApiVersionTable {
    /// A table serving exactly `served` (plus ApiVersions) at Kafka's ranges.
    pub fn new(served: impl IntoIterator<Item = ApiKey>) -> Self {
        let ranges = served
            .into_iter()
            .chain(std::iter::once(ApiKey::ApiVersions))
            .map(|api| (api as i16, kafka_range(api)))
            .collect();
        Self { ranges }
    }

    /// Lowers the highest version of `api` to `max` (for an API whose newest versions the
    /// broker does not implement yet). Never raises it; an `api` not served, or a `max` below
    /// the decoded floor, leaves the table unchanged.
    pub fn with_max_version(mut self, api: ApiKey, max: i16) -> Self {
        if let Some(range) = self.ranges.get_mut(&(api as i16)) {
            if max >= range.min && max < range.max {
                range.max = max;
            }
        }
        self
    }

    /// The range of `api`, or `None` when the broker does not serve it.
    pub fn range(&self, api: ApiKey) -> Option<ApiRange> {
        self.ranges.get(&(api as i16)).copied()
    }

    /// Whether a request for `api` at `version` is decoded.
    pub fn is_enabled(&self, api: ApiKey, version: i16) -> bool {
        self.range(api).is_some_and(|range| range.contains(version))
    }

    /// The rows of the ApiVersions response, by API key.
    pub fn advertised(&self) -> Vec<ApiVersion> {
        self.ranges
            .iter()
            .map(|(key, range)| {
                ApiVersion::default()
                    .with_api_key(*key)
                    .with_min_version(range.min_advertised)
                    .with_max_version(range.max)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(api: ApiKey, min_advertised: i16, min: i16, max: i16) {
        assert_eq!(
            kafka_range(api),
            ApiRange {
                min_advertised,
                min,
                max
            },
            "{api:?}"
        );
    }

    #[test]
    fn ranges_match_kafka_4_1() {
        check(ApiKey::Produce, 0, 3, 13);
        check(ApiKey::Fetch, 4, 4, 18);
        check(ApiKey::ListOffsets, 1, 1, 10);
        check(ApiKey::Metadata, 0, 0, 13);
        check(ApiKey::OffsetCommit, 2, 2, 9);
        check(ApiKey::OffsetFetch, 1, 1, 9);
        check(ApiKey::FindCoordinator, 0, 0, 6);
        check(ApiKey::JoinGroup, 0, 0, 9);
        check(ApiKey::ApiVersions, 0, 0, 4);
        check(ApiKey::CreateTopics, 2, 2, 7);
        check(ApiKey::InitProducerId, 0, 0, 5);
        check(ApiKey::OffsetForLeaderEpoch, 2, 2, 4);
    }

    #[test]
    fn table_serves_only_what_it_is_given_plus_api_versions() {
        let table = ApiVersionTable::new([ApiKey::Metadata, ApiKey::Produce]);
        assert!(table.is_enabled(ApiKey::Produce, 3));
        assert!(!table.is_enabled(ApiKey::Produce, 2));
        assert!(!table.is_enabled(ApiKey::Fetch, 4));
        assert!(table.is_enabled(ApiKey::ApiVersions, 4));
        let rows: Vec<(i16, i16, i16)> = table
            .advertised()
            .iter()
            .map(|row| (row.api_key, row.min_version, row.max_version))
            .collect();
        assert_eq!(rows, vec![(0, 0, 13), (3, 0, 13), (18, 0, 4)]);
    }

    #[test]
    fn max_version_only_lowers() {
        let table = ApiVersionTable::new([ApiKey::Fetch])
            .with_max_version(ApiKey::Fetch, 12)
            .with_max_version(ApiKey::Fetch, 30)
            .with_max_version(ApiKey::Fetch, 1)
            .with_max_version(ApiKey::Produce, 5);
        assert_eq!(
            table.range(ApiKey::Fetch),
            Some(ApiRange {
                min_advertised: 4,
                min: 4,
                max: 12
            })
        );
        assert_eq!(table.range(ApiKey::Produce), None);
    }
}
