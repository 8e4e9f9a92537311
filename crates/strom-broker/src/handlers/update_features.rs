//! UpdateFeatures (`kafka-features.sh upgrade|downgrade`, Admin `updateFeatures`, `strom
//! features`): the controller judges the updates as Kafka's `FeatureControlManager` does
//! (strom-meta `controller/features.rs`, against this binary's supported ranges) and
//! finalizes the new levels in the metadata log; the answer is released once they are
//! committed. One refusal fails the whole request with INVALID_UPDATE_VERSION and Kafka's
//! message; `validate_only` writes nothing. Only `transaction.version` has levels to move
//! between (0-2).

use strom_meta::{
    ControllerReply, ControllerRequest, FeatureUpdate, FeatureUpgradeType, MetadataImage,
    SupportedFeature, UpdateFeaturesRequest as MetaRequest,
};
use strom_protocol::features::{Finalized, FEATURES};
use strom_protocol::messages::update_features_response::UpdatableFeatureResult;
use strom_protocol::messages::{ResponseKind, UpdateFeaturesRequest, UpdateFeaturesResponse};
use strom_protocol::ErrorCode;

use super::{controller_error, str_bytes};
use crate::server::BrokerContext;

/// The last version with per-feature results (v2 answers with the top-level error only).
const RESULTS_MAX_VERSION: i16 = 1;
/// The first version with `upgrade_type` (v0 has `allow_downgrade`).
const UPGRADE_TYPE_MIN_VERSION: i16 = 1;

/// The finalized feature levels of `image` (records over the binary's defaults) and their
/// epoch, as ApiVersions reports them and the transaction coordinator applies them.
pub(crate) fn finalized_features(image: &MetadataImage) -> Finalized {
    Finalized::new(|name| image.feature_level(name), image.features_epoch())
}

pub(super) async fn handle(
    context: &BrokerContext,
    request: UpdateFeaturesRequest,
    version: i16,
) -> ResponseKind {
    let updates = request
        .feature_updates
        .iter()
        .map(|update| FeatureUpdate {
            name: update.feature.to_string(),
            level: update.max_version_level,
            upgrade_type: if version >= UPGRADE_TYPE_MIN_VERSION {
                FeatureUpgradeType::from_code(update.upgrade_type)
            } else if update.allow_downgrade {
                FeatureUpgradeType::SafeDowngrade
            } else {
                FeatureUpgradeType::Upgrade
            },
        })
        .collect();
    let supported = FEATURES
        .iter()
        .map(|f| SupportedFeature {
            name: f.name.to_string(),
            min: f.min_supported,
            max: f.max_supported,
            default_level: f.finalized,
        })
        .collect();
    let reply = context
        .metadata
        .submit(ControllerRequest::UpdateFeatures(MetaRequest {
            updates,
            validate_only: request.validate_only,
            supported,
            node_id: context.config.node_id,
        }))
        .await;
    let refused = |code: i16, message: String| {
        ResponseKind::UpdateFeatures(
            UpdateFeaturesResponse::default()
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message))),
        )
    };
    match reply {
        Ok(ControllerReply::UpdateFeatures(Ok(()))) if version <= RESULTS_MAX_VERSION => {
            ResponseKind::UpdateFeatures(
                UpdateFeaturesResponse::default().with_results(
                    request
                        .feature_updates
                        .iter()
                        .map(|u| UpdatableFeatureResult::default().with_feature(u.feature.clone()))
                        .collect(),
                ),
            )
        }
        Ok(ControllerReply::UpdateFeatures(Ok(()))) => {
            ResponseKind::UpdateFeatures(UpdateFeaturesResponse::default())
        }
        Ok(ControllerReply::UpdateFeatures(Err(error))) => {
            refused(error.code.code(), error.message)
        }
        Ok(_) => refused(
            ErrorCode::UNKNOWN_SERVER_ERROR.code(),
            "unexpected controller reply".to_string(),
        ),
        Err(error) => {
            let (code, message) = controller_error(&error);
            refused(code, message)
        }
    }
}
