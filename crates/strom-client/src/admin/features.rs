//! Cluster features (KIP-584, `kafka-features.sh`): ApiVersions' supported ranges and
//! finalized levels (Admin `describeFeatures`), and UpdateFeatures (Admin `updateFeatures`).

use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::{ApiVersionsRequest, UpdateFeaturesRequest};
use kafka_protocol::protocol::StrBytes;

use super::Admin;
use crate::cluster::{str_bytes, Target};
use crate::error::{ClientError, Result};

/// How long the controller may take to commit a feature change.
const UPDATE_TIMEOUT_MS: i32 = 30_000;
/// The first UpdateFeatures version with `upgrade_type`.
const UPGRADE_TYPE_MIN_VERSION: i16 = 1;

/// One feature as a broker reports it: its supported range and its finalized level (0 when
/// it is not finalized, as Kafka leaves a disabled feature out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureDescription {
    pub name: String,
    pub min_supported: i16,
    pub max_supported: i16,
    pub finalized: i16,
}

/// The features of the cluster and the epoch of their finalized levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureMetadata {
    /// In name order.
    pub features: Vec<FeatureDescription>,
    pub finalized_epoch: i64,
}

/// Kafka's `FeatureUpdate.UpgradeType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeType {
    Upgrade,
    SafeDowngrade,
    UnsafeDowngrade,
}

impl UpgradeType {
    fn code(self) -> i8 {
        match self {
            UpgradeType::Upgrade => 1,
            UpgradeType::SafeDowngrade => 2,
            UpgradeType::UnsafeDowngrade => 3,
        }
    }
}

impl Admin {
    /// The supported and finalized features, from any broker's ApiVersions (Admin
    /// `describeFeatures`).
    pub async fn describe_features(&self) -> Result<FeatureMetadata> {
        let cluster = &self.cluster;
        cluster
            .retry("describe features", || async {
                let request = ApiVersionsRequest::default()
                    .with_client_software_name(StrBytes::from_static_str("strom-client"))
                    .with_client_software_version(StrBytes::from_static_str(env!(
                        "CARGO_PKG_VERSION"
                    )));
                let r = cluster.call(&Target::Any, |_| Ok(request.clone())).await?;
                ClientError::check(r.error_code, None, "describe features")?;
                let mut features: Vec<FeatureDescription> = r
                    .supported_features
                    .iter()
                    .map(|f| FeatureDescription {
                        name: f.name.to_string(),
                        min_supported: f.min_version,
                        max_supported: f.max_version,
                        finalized: r
                            .finalized_features
                            .iter()
                            .find(|g| g.name == f.name)
                            .map_or(0, |g| g.max_version_level),
                    })
                    .collect();
                features.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(FeatureMetadata {
                    features,
                    finalized_epoch: r.finalized_features_epoch,
                })
            })
            .await
    }

    /// Sets feature levels (Admin `updateFeatures`): all or none, as the controller
    /// refuses the whole request when one update is refused. `validate_only` changes nothing.
    pub async fn update_features(
        &self,
        updates: &[(String, i16, UpgradeType)],
        validate_only: bool,
    ) -> Result<()> {
        let cluster = &self.cluster;
        cluster
            .retry("update features", || async {
                // v0 says a downgrade with `allow_downgrade` (safe), v1+ with `upgrade_type`.
                let request = |version: i16| {
                    UpdateFeaturesRequest::default()
                        .with_timeout_ms(UPDATE_TIMEOUT_MS)
                        .with_validate_only(validate_only)
                        .with_feature_updates(
                            updates
                                .iter()
                                .map(|(name, level, upgrade)| {
                                    let key = FeatureUpdateKey::default()
                                        .with_feature(str_bytes(name))
                                        .with_max_version_level(*level);
                                    if version >= UPGRADE_TYPE_MIN_VERSION {
                                        key.with_upgrade_type(upgrade.code())
                                    } else {
                                        key.with_allow_downgrade(*upgrade != UpgradeType::Upgrade)
                                    }
                                })
                                .collect(),
                        )
                };
                let r = cluster
                    .call(&Target::Any, |version| Ok(request(version)))
                    .await?;
                ClientError::check(
                    r.error_code,
                    r.error_message.as_ref().map(|m| m.to_string()),
                    "update features",
                )?;
                for result in &r.results {
                    ClientError::check(
                        result.error_code,
                        result.error_message.as_ref().map(|m| m.to_string()),
                        format!("update feature {}", result.feature.as_str()),
                    )?;
                }
                Ok(())
            })
            .await
    }
}
