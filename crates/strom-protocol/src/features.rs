//! Cluster features (KIP-584): what this broker supports and the level the cluster runs at,
//! carried by ApiVersions v3+ (what `kafka-features.sh describe` and Admin
//! `describeFeatures` read) and changed by UpdateFeatures.
//!
//! This table is what the binary supports and the level each feature runs at until an
//! UpdateFeatures finalizes another (a `FeatureLevel` metadata record, judged by
//! strom-meta's controller). Only `transaction.version` has a range to move in: 0-2 as Kafka 4,
//! finalized at 2 by default (KIP-890 part 2, what a new Kafka 4 cluster gets); the other
//! features have one supported level.

use kafka_protocol::messages::api_versions_response::{FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::protocol::StrBytes;

/// One feature: its supported range and its default finalized level (0: not enabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    pub name: &'static str,
    pub min_supported: i16,
    pub max_supported: i16,
    pub finalized: i16,
}

/// The features, in Kafka's names and levels.
pub const FEATURES: &[Feature] = &[
    // 25 is 4.0-IV3, Kafka 4.0's latest production metadata.version (the API ranges served
    // are Kafka 4.x's, and 4.0's tools can name this level).
    Feature {
        name: "metadata.version",
        min_supported: 25,
        max_supported: 25,
        finalized: 25,
    },
    // A static quorum (`controller.quorum.voters`): no KIP-853 dynamic voters.
    Feature {
        name: "kraft.version",
        min_supported: 0,
        max_supported: 0,
        finalized: 0,
    },
    // The KIP-848 consumer group protocol (ConsumerGroupHeartbeat) is served.
    Feature {
        name: "group.version",
        min_supported: 1,
        max_supported: 1,
        finalized: 1,
    },
    // KIP-932 share groups: ShareFetch, ShareAcknowledge and the share state are served.
    Feature {
        name: "share.version",
        min_supported: 1,
        max_supported: 1,
        finalized: 1,
    },
    // KIP-1071 streams groups: StreamsGroupHeartbeat and StreamsGroupDescribe are served
    // (advertised in ApiVersions) at level 1, as Kafka 4.2 enables them on a new cluster;
    // UpdateFeatures may turn them off (0).
    Feature {
        name: "streams.version",
        min_supported: 0,
        max_supported: 1,
        finalized: 1,
    },
    // KIP-890: 1 is the flexible TransactionLogValue v1, 2 the epoch bump at every
    // transaction end and implicit partition addition.
    Feature {
        name: "transaction.version",
        min_supported: 0,
        max_supported: 2,
        finalized: 2,
    },
];

/// The finalized levels and their epoch, as ApiVersions reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finalized {
    /// (feature, level), one per feature of [`FEATURES`], in its order.
    pub levels: Vec<(&'static str, i16)>,
    /// 0 for the levels the cluster was formed with; each UpdateFeatures change adds one
    /// (clients keep the features of the highest epoch they saw, so it must grow).
    pub epoch: i64,
}

impl Finalized {
    /// The levels given by `level_of` (a finalized record's level, `None` for the default).
    pub fn new(level_of: impl Fn(&str) -> Option<i16>, epoch: i64) -> Finalized {
        Finalized {
            levels: FEATURES
                .iter()
                .map(|f| (f.name, level_of(f.name).unwrap_or(f.finalized)))
                .collect(),
            epoch,
        }
    }

    /// The defaults, before any change.
    pub fn defaults() -> Finalized {
        Finalized::new(|_| None, 0)
    }

    /// The level of `name` (0 when unknown or disabled).
    pub fn level(&self, name: &str) -> i16 {
        self.levels
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, level)| *level)
    }
}

/// The first ApiVersions version with features.
const FEATURES_MIN_VERSION: i16 = 3;
/// The first ApiVersions version that may carry a supported range starting at 0: clients
/// older than Kafka 3.9 fail to parse such a range, so Kafka leaves those features out of
/// v3 answers (KAFKA-17492).
const ZERO_MIN_VERSION: i16 = 4;

/// Adds the features to an ApiVersions answer at `api_version`, with Kafka's rules: supported
/// ranges from 0 only at v4+, finalized levels of 0 never.
pub fn with_features(
    response: ApiVersionsResponse,
    api_version: i16,
    finalized: &Finalized,
) -> ApiVersionsResponse {
    if api_version < FEATURES_MIN_VERSION {
        return response;
    }
    let supported = FEATURES
        .iter()
        .filter(|f| f.min_supported > 0 || api_version >= ZERO_MIN_VERSION)
        .map(|f| {
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(f.name))
                .with_min_version(f.min_supported)
                .with_max_version(f.max_supported)
        })
        .collect();
    let finalized_keys = finalized
        .levels
        .iter()
        .filter(|(_, level)| *level != 0)
        .map(|(name, level)| {
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str(name))
                .with_min_version_level(*level)
                .with_max_version_level(*level)
        })
        .collect();
    response
        .with_supported_features(supported)
        .with_finalized_features_epoch(finalized.epoch)
        .with_finalized_features(finalized_keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(response: &ApiVersionsResponse) -> (Vec<String>, Vec<String>) {
        (
            response
                .supported_features
                .iter()
                .map(|f| format!("{}:{}-{}", f.name, f.min_version, f.max_version))
                .collect(),
            response
                .finalized_features
                .iter()
                .map(|f| format!("{}:{}", f.name, f.max_version_level))
                .collect(),
        )
    }

    #[test]
    fn features_follow_kafkas_per_version_rules() {
        let v2 = with_features(ApiVersionsResponse::default(), 2, &Finalized::defaults());
        assert_eq!(v2, ApiVersionsResponse::default());
        let v3 = with_features(ApiVersionsResponse::default(), 3, &Finalized::defaults());
        assert_eq!(
            names(&v3),
            (
                vec![
                    "metadata.version:25-25".into(),
                    "group.version:1-1".into(),
                    "share.version:1-1".into()
                ],
                vec![
                    "metadata.version:25".into(),
                    "group.version:1".into(),
                    "share.version:1".into(),
                    "streams.version:1".into(),
                    "transaction.version:2".into()
                ]
            )
        );
        assert_eq!(v3.finalized_features_epoch, 0);
        let v4 = with_features(ApiVersionsResponse::default(), 4, &Finalized::defaults());
        assert_eq!(
            names(&v4).0,
            vec![
                "metadata.version:25-25".to_string(),
                "kraft.version:0-0".into(),
                "group.version:1-1".into(),
                "share.version:1-1".into(),
                "streams.version:0-1".into(),
                "transaction.version:0-2".into()
            ],
            "ranges from 0 only from v4 on"
        );
        assert_eq!(names(&v4).1.len(), 5, "a level of 0 is never finalized");
        let tv1 = Finalized::new(|name| (name == "transaction.version").then_some(1), 3);
        let v4 = with_features(ApiVersionsResponse::default(), 4, &tv1);
        assert_eq!(v4.finalized_features_epoch, 3);
        assert!(names(&v4).1.contains(&"transaction.version:1".to_string()));
        let tv0 = Finalized::new(|name| (name == "transaction.version").then_some(0), 4);
        let v4 = with_features(ApiVersionsResponse::default(), 4, &tv0);
        assert_eq!(names(&v4).1.len(), 4, "a disabled feature is not finalized");
    }
}
