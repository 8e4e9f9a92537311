//! UpdateFeatures (KIP-584), as Kafka's `FeatureControlManager` judges it: every update is
//! checked against the levels this node supports and the level the image finalizes, and one
//! refusal fails the whole request with INVALID_UPDATE_VERSION and Kafka's message. An
//! accepted change is one `FeatureLevel` record per feature whose level moves, all in one
//! entry, carrying the next finalized-features epoch; `validate_only` writes nothing.
//!
//! Downgrades: a feature other than `metadata.version` may go down with either downgrade
//! type, as in Kafka (nothing in Strom's metadata depends on those levels); a change to
//! `metadata.version` or `kraft.version` is refused by their single supported level.

use crate::controller::errors::{ApiError, ErrorCode};
use crate::controller::messages::{
    ControllerReply, FeatureUpgradeType, SupportedFeature, UpdateFeaturesRequest,
};
use crate::controller::Handled;
use crate::image::MetadataImage;
use crate::records::MetadataRecord;

pub(crate) fn update_features(image: &MetadataImage, request: UpdateFeaturesRequest) -> Handled {
    let refusal = request.updates.iter().find_map(|update| {
        let supported = request.supported.iter().find(|f| f.name == update.name);
        let current = current_level(image, supported, &update.name);
        refusal(
            update.level,
            update.upgrade_type,
            supported,
            current,
            request.node_id,
        )
        .map(|reason| {
            format!(
                "The update failed for all features since the following feature had an \
                 error: Invalid update version {} for feature {}. {reason}",
                update.level, update.name
            )
        })
    });
    if let Some(message) = refusal {
        return Ok((
            Vec::new(),
            ControllerReply::UpdateFeatures(Err(ApiError::new(
                ErrorCode::InvalidUpdateVersion,
                message,
            ))),
        ));
    }
    if request.validate_only {
        return Ok((Vec::new(), ControllerReply::UpdateFeatures(Ok(()))));
    }
    let epoch = image.features_epoch() + 1;
    let mut records: Vec<MetadataRecord> = Vec::new();
    for update in &request.updates {
        let supported = request.supported.iter().find(|f| f.name == update.name);
        if current_level(image, supported, &update.name) == update.level {
            continue;
        }
        // A feature named twice: the last update wins, in one record.
        records.retain(
            |r| !matches!(r, MetadataRecord::FeatureLevel { name, .. } if *name == update.name),
        );
        records.push(MetadataRecord::FeatureLevel {
            name: update.name.clone(),
            level: update.level,
            epoch,
        });
    }
    Ok((records, ControllerReply::UpdateFeatures(Ok(()))))
}

/// The level `name` runs at: the image's record, else the binary's default (0 for a
/// feature this node does not know).
fn current_level(image: &MetadataImage, supported: Option<&SupportedFeature>, name: &str) -> i16 {
    image
        .feature_level(name)
        .unwrap_or_else(|| supported.map_or(0, |f| f.default_level))
}

/// Why a change to `level` is refused (Kafka's reason, without the common prefix).
fn refusal(
    level: i16,
    upgrade: FeatureUpgradeType,
    supported: Option<&SupportedFeature>,
    current: i16,
    node_id: i32,
) -> Option<String> {
    let (min, max) = supported.map_or((0, 0), |f| (f.min, f.max));
    if upgrade == FeatureUpgradeType::Unknown {
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
    } else if level < current && upgrade == FeatureUpgradeType::Upgrade {
        Some(
            "Can't downgrade the version of this feature without setting the upgrade type \
             to either safe or unsafe downgrade."
                .to_string(),
        )
    } else if level > current && upgrade != FeatureUpgradeType::Upgrade {
        Some("Can't downgrade to a newer version.".to_string())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::messages::FeatureUpdate;

    fn supported() -> Vec<SupportedFeature> {
        vec![
            SupportedFeature {
                name: "metadata.version".into(),
                min: 25,
                max: 25,
                default_level: 25,
            },
            SupportedFeature {
                name: "transaction.version".into(),
                min: 0,
                max: 2,
                default_level: 2,
            },
        ]
    }

    fn request(
        updates: &[(&str, i16, FeatureUpgradeType)],
        validate_only: bool,
    ) -> UpdateFeaturesRequest {
        UpdateFeaturesRequest {
            updates: updates
                .iter()
                .map(|(name, level, upgrade_type)| FeatureUpdate {
                    name: (*name).into(),
                    level: *level,
                    upgrade_type: *upgrade_type,
                })
                .collect(),
            validate_only,
            supported: supported(),
            node_id: 1,
        }
    }

    fn run(
        image: &MetadataImage,
        r: UpdateFeaturesRequest,
    ) -> (Vec<MetadataRecord>, Result<(), ApiError>) {
        match update_features(image, r) {
            Ok((records, ControllerReply::UpdateFeatures(result))) => (records, result),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn message(result: Result<(), ApiError>) -> String {
        let error = result.expect_err("refused");
        assert_eq!(error.code, ErrorCode::InvalidUpdateVersion);
        error.message
    }

    use FeatureUpgradeType::*;

    #[test]
    fn downgrade_and_upgrade_follow_kafkas_rules() {
        let image = MetadataImage::default();
        let tv = "transaction.version";
        // Downgrades need a downgrade type; safe and unsafe both work for this feature.
        let (records, result) = run(&image, request(&[(tv, 1, Upgrade)], false));
        assert!(records.is_empty());
        assert!(message(result).ends_with(
            "Invalid update version 1 for feature transaction.version. Can't downgrade the \
             version of this feature without setting the upgrade type to either safe or unsafe \
             downgrade."
        ));
        let (records, result) = run(&image, request(&[(tv, 1, SafeDowngrade)], true));
        assert_eq!(
            (records, result),
            (Vec::new(), Ok(())),
            "validate only writes nothing"
        );
        let (records, result) = run(&image, request(&[(tv, 1, UnsafeDowngrade)], false));
        assert_eq!(result, Ok(()));
        assert_eq!(
            records,
            vec![MetadataRecord::FeatureLevel {
                name: tv.into(),
                level: 1,
                epoch: 1
            }]
        );
        let (image, _) = image.apply(&records).expect("applies");
        assert_eq!(
            (image.feature_level(tv), image.features_epoch()),
            (Some(1), 1)
        );
        // Now 1: a downgrade type cannot raise it, an upgrade can, and the epoch moves on.
        let (_, result) = run(&image, request(&[(tv, 2, SafeDowngrade)], false));
        assert!(message(result).ends_with("Can't downgrade to a newer version."));
        let (records, result) = run(&image, request(&[(tv, 2, Upgrade)], false));
        assert_eq!(result, Ok(()));
        let (image, _) = image.apply(&records).expect("applies");
        assert_eq!(
            (image.feature_level(tv), image.features_epoch()),
            (Some(2), 2)
        );
        // The current level is accepted and writes nothing.
        let (records, result) = run(&image, request(&[(tv, 2, Upgrade)], false));
        assert_eq!((records, result), (Vec::new(), Ok(())));
        // A snapshot keeps the levels and the epoch.
        let restored = MetadataImage::decode_snapshot(&image.encode_snapshot()).expect("decodes");
        assert_eq!(
            (restored.feature_level(tv), restored.features_epoch()),
            (Some(2), 2)
        );
    }

    #[test]
    fn one_refusal_fails_the_whole_request() {
        let image = MetadataImage::default();
        type Updates<'a> = &'a [(&'a str, i16, FeatureUpgradeType)];
        let cases: &[(Updates, &str)] = &[
            (
                &[("transaction.version", 1, SafeDowngrade), ("metadata.version", 24, SafeDowngrade)],
                "Invalid update version 24 for feature metadata.version. Local controller 1 only supports versions 25",
            ),
            (&[("transaction.version", 3, Upgrade)], "Local controller 1 only supports versions 0-2"),
            (&[("no.such.feature", 1, Upgrade)], "Local controller 1 does not support this feature."),
            (&[("transaction.version", -1, SafeDowngrade)], "A feature version cannot be less than 0."),
            (&[("transaction.version", 1, Unknown)], "The controller does not support the given upgrade type."),
        ];
        for (updates, reason) in cases {
            let (records, result) = run(&image, request(updates, false));
            assert!(records.is_empty(), "{updates:?}");
            let message = message(result);
            assert!(
                message.starts_with(
                    "The update failed for all features since the following feature had an error: "
                ) && message.ends_with(reason),
                "{updates:?}: {message}"
            );
        }
    }
}
