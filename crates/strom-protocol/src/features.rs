//! Cluster features (KIP-584): what this broker supports and the level the cluster runs at,
//! carried by ApiVersions v3+ (what `kafka-features.sh describe` and Admin
//! `describeFeatures` read) and changed by UpdateFeatures.
//!
//! Strom runs each feature at one level, fixed by the binary: an UpdateFeatures to that
//! level is a no-op, and any other level is refused (as Kafka refuses a level outside the
//! supported range). `transaction.version` supports 0-2 as Kafka 4 does and is finalized at
//! 2 (KIP-890 part 2, what a new Kafka 4 cluster gets); the lower levels are served to the
//! clients that use them (a client's request versions say its transaction version), but
//! the finalized level cannot be moved yet.

use kafka_protocol::messages::api_versions_response::{FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::protocol::StrBytes;

/// One feature: its supported range and its finalized level (0: not enabled).
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
    // KIP-890: 1 is the flexible TransactionLogValue v1, 2 the epoch bump at every
    // transaction end and implicit partition addition.
    Feature {
        name: "transaction.version",
        min_supported: 0,
        max_supported: 2,
        finalized: 2,
    },
];

/// The epoch of the finalized levels: they were finalized when the cluster was formed and
/// never change, so it stays 0 (Kafka: -1 means unknown).
pub const FINALIZED_FEATURES_EPOCH: i64 = 0;

/// The first ApiVersions version with features.
const FEATURES_MIN_VERSION: i16 = 3;
/// The first ApiVersions version that may carry a supported range starting at 0: clients
/// older than Kafka 3.9 fail to parse such a range, so Kafka leaves those features out of
/// v3 answers (KAFKA-17492).
const ZERO_MIN_VERSION: i16 = 4;

/// Adds the features to an ApiVersions answer at `api_version`, with Kafka's rules: supported
/// ranges from 0 only at v4+, finalized levels of 0 never.
pub fn with_features(response: ApiVersionsResponse, api_version: i16) -> ApiVersionsResponse {
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
    let finalized = FEATURES
        .iter()
        .filter(|f| f.finalized != 0)
        .map(|f| {
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str(f.name))
                .with_min_version_level(f.finalized)
                .with_max_version_level(f.finalized)
        })
        .collect();
    response
        .with_supported_features(supported)
        .with_finalized_features_epoch(FINALIZED_FEATURES_EPOCH)
        .with_finalized_features(finalized)
}

/// Kafka's upgrade types (UpdateFeatures v1+; v0's `allow_downgrade` means SAFE_DOWNGRADE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeType {
    Unknown,
    Upgrade,
    SafeDowngrade,
    UnsafeDowngrade,
}

impl UpgradeType {
    pub fn from_code(code: i8) -> UpgradeType {
        match code {
            1 => UpgradeType::Upgrade,
            2 => UpgradeType::SafeDowngrade,
            3 => UpgradeType::UnsafeDowngrade,
            _ => UpgradeType::Unknown,
        }
    }
}

/// Why setting `name` to `level` is refused, in Kafka's words (FeatureControlManager), or
/// `None` when it is allowed (which, with fixed levels, means it is already the level).
pub fn refusal(name: &str, level: i16, upgrade: UpgradeType, node_id: i32) -> Option<String> {
    let feature = FEATURES.iter().find(|f| f.name == name);
    let (min, max, current) = feature.map_or((0, 0, 0), |f| {
        (f.min_supported, f.max_supported, f.finalized)
    });
    let reason = if upgrade == UpgradeType::Unknown {
        Some("The controller does not support the given upgrade type.".to_string())
    } else if level < 0 {
        Some("A feature version cannot be less than 0.".to_string())
    } else if !(min..=max).contains(&level) {
        Some(if max == 0 {
            format!("Local controller {node_id} does not support this feature.")
        } else if min == max {
            format!("Local controller {node_id} only supports versions {min}")
        } else {
            format!("Local controller {node_id} only supports versions {min}-{max}")
        })
    } else if level < current && upgrade == UpgradeType::Upgrade {
        Some(
            "Can't downgrade the version of this feature without setting the upgrade type \
             to either safe or unsafe downgrade."
                .to_string(),
        )
    } else if level > current && upgrade != UpgradeType::Upgrade {
        Some("Can't downgrade to a newer version.".to_string())
    } else if level != current {
        Some(format!(
            "Strom runs this feature at level {current} only; it cannot be changed."
        ))
    } else {
        None
    };
    reason.map(|r| format!("Invalid update version {level} for feature {name}. {r}"))
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
        let v2 = with_features(ApiVersionsResponse::default(), 2);
        assert_eq!(v2, ApiVersionsResponse::default());
        let v3 = with_features(ApiVersionsResponse::default(), 3);
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
                    "transaction.version:2".into()
                ]
            )
        );
        assert_eq!(v3.finalized_features_epoch, 0);
        let v4 = with_features(ApiVersionsResponse::default(), 4);
        assert_eq!(
            names(&v4).0,
            vec![
                "metadata.version:25-25".to_string(),
                "kraft.version:0-0".into(),
                "group.version:1-1".into(),
                "share.version:1-1".into(),
                "transaction.version:0-2".into()
            ],
            "ranges from 0 only from v4 on"
        );
        assert_eq!(names(&v4).1.len(), 4, "a level of 0 is never finalized");
    }

    #[test]
    fn only_the_current_level_is_accepted() {
        assert_eq!(refusal("group.version", 1, UpgradeType::Upgrade, 1), None);
        assert_eq!(refusal("kraft.version", 0, UpgradeType::Upgrade, 1), None);
        assert_eq!(
            refusal("metadata.version", 24, UpgradeType::SafeDowngrade, 1).as_deref(),
            Some(
                "Invalid update version 24 for feature metadata.version. \
                 Local controller 1 only supports versions 25"
            )
        );
        assert_eq!(
            refusal("no.such.feature", 1, UpgradeType::Upgrade, 2).as_deref(),
            Some(
                "Invalid update version 1 for feature no.such.feature. \
                 Local controller 2 does not support this feature."
            )
        );
        assert!(refusal("group.version", 1, UpgradeType::Unknown, 1).is_some());
        assert_eq!(
            refusal("transaction.version", 2, UpgradeType::Upgrade, 1),
            None
        );
        assert_eq!(
            refusal("transaction.version", 1, UpgradeType::SafeDowngrade, 1).as_deref(),
            Some(
                "Invalid update version 1 for feature transaction.version. \
                 Strom runs this feature at level 2 only; it cannot be changed."
            )
        );
        assert!(refusal("transaction.version", 3, UpgradeType::Upgrade, 1).is_some());
        assert!(refusal("group.version", -1, UpgradeType::Upgrade, 1).is_some());
    }
}
