//! UpdateFeatures (`kafka-features.sh upgrade|downgrade`, Admin `updateFeatures`), judged as
//! Kafka's controller judges it (`strom_protocol::features`). Strom's feature levels are
//! fixed by the binary and the same on every node, so there is nothing to write: the current
//! level is accepted (validate-only or not) and any other is INVALID_UPDATE_VERSION for the
//! whole request, with Kafka's message.

use strom_protocol::features::{refusal, UpgradeType};
use strom_protocol::messages::update_features_response::UpdatableFeatureResult;
use strom_protocol::messages::{ResponseKind, UpdateFeaturesRequest, UpdateFeaturesResponse};
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::server::BrokerContext;

/// The last version with per-feature results (v2 answers with the top-level error only).
const RESULTS_MAX_VERSION: i16 = 1;
/// The first version with `upgrade_type` (v0 has `allow_downgrade`).
const UPGRADE_TYPE_MIN_VERSION: i16 = 1;

pub(super) fn handle(
    context: &BrokerContext,
    request: UpdateFeaturesRequest,
    version: i16,
) -> ResponseKind {
    let first_refusal = request.feature_updates.iter().find_map(|update| {
        let upgrade = if version >= UPGRADE_TYPE_MIN_VERSION {
            UpgradeType::from_code(update.upgrade_type)
        } else if update.allow_downgrade {
            UpgradeType::SafeDowngrade
        } else {
            UpgradeType::Upgrade
        };
        refusal(
            &update.feature,
            update.max_version_level,
            upgrade,
            context.config.node_id,
        )
    });
    let response = match first_refusal {
        Some(message) => UpdateFeaturesResponse::default()
            .with_error_code(ErrorCode::INVALID_UPDATE_VERSION.code())
            .with_error_message(Some(str_bytes(format!(
                "The update failed for all features since the following feature had an error: \
                 {message}"
            )))),
        None if version <= RESULTS_MAX_VERSION => UpdateFeaturesResponse::default().with_results(
            request
                .feature_updates
                .iter()
                .map(|u| UpdatableFeatureResult::default().with_feature(u.feature.clone()))
                .collect(),
        ),
        None => UpdateFeaturesResponse::default(),
    };
    ResponseKind::UpdateFeatures(response)
}
