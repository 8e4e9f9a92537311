//! `strom features` (Kafka's `kafka-features.sh`): describe the cluster's features, upgrade
//! and downgrade their finalized levels (UpdateFeatures, judged and committed by the
//! controller). Output lines are kafka-features.sh's.

use serde::Serialize;
use strom_client::{Admin, UpgradeType};

use super::args::{Common, FeaturesCommand};
use super::output;

#[derive(Debug, Serialize)]
struct FeatureView {
    feature: String,
    supported_min_version: i16,
    supported_max_version: i16,
    finalized_version_level: i16,
    epoch: i64,
}

pub async fn run(common: &Common, command: FeaturesCommand) -> anyhow::Result<()> {
    let admin = Admin::new(super::client_config(common)?)?;
    let result = match command {
        FeaturesCommand::Describe => describe(common, &admin).await,
        FeaturesCommand::Upgrade { feature, dry_run } => {
            update(&admin, &feature, UpgradeType::Upgrade, dry_run).await
        }
        FeaturesCommand::Downgrade {
            feature,
            unsafe_downgrade,
            dry_run,
        } => {
            let upgrade = if unsafe_downgrade {
                UpgradeType::UnsafeDowngrade
            } else {
                UpgradeType::SafeDowngrade
            };
            update(&admin, &feature, upgrade, dry_run).await
        }
    };
    admin.close().await;
    result
}

async fn describe(common: &Common, admin: &Admin) -> anyhow::Result<()> {
    let metadata = admin.describe_features().await?;
    let views: Vec<FeatureView> = metadata
        .features
        .iter()
        .map(|f| FeatureView {
            feature: f.name.clone(),
            supported_min_version: f.min_supported,
            supported_max_version: f.max_supported,
            finalized_version_level: f.finalized,
            epoch: metadata.finalized_epoch,
        })
        .collect();
    if common.json() {
        return output::print_json(&views);
    }
    for v in &views {
        output::print_line(&format!(
            "Feature: {}\tSupportedMinVersion: {}\tSupportedMaxVersion: {}\t\
             FinalizedVersionLevel: {}\tEpoch: {}",
            v.feature,
            v.supported_min_version,
            v.supported_max_version,
            v.finalized_version_level,
            v.epoch
        ))?;
    }
    Ok(())
}

/// `NAME=LEVEL` of `--feature`.
fn parse_feature(text: &str) -> anyhow::Result<(String, i16)> {
    let (name, level) = text
        .split_once('=')
        .filter(|(name, _)| !name.trim().is_empty())
        .ok_or_else(|| anyhow::anyhow!("--feature {text} is not NAME=LEVEL"))?;
    let level = level
        .trim()
        .parse::<i16>()
        .map_err(|_| anyhow::anyhow!("--feature {text}: the level is not a number"))?;
    Ok((name.trim().to_string(), level))
}

async fn update(
    admin: &Admin,
    features: &[String],
    upgrade: UpgradeType,
    dry_run: bool,
) -> anyhow::Result<()> {
    let updates = features
        .iter()
        .map(|f| parse_feature(f).map(|(name, level)| (name, level, upgrade)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (verb, done) = match upgrade {
        UpgradeType::Upgrade => ("upgrade", "upgraded"),
        _ => ("downgrade", "downgraded"),
    };
    if dry_run {
        output::print_line("DRY RUN: no change was made.")?;
    }
    match admin.update_features(&updates, dry_run).await {
        Ok(()) => {
            for (name, level, _) in &updates {
                output::print_line(&if dry_run {
                    format!("{name} can be {done} to {level}.")
                } else {
                    format!("{name} was {done} to {level}.")
                })?;
            }
            Ok(())
        }
        Err(error) => {
            let names: Vec<String> = updates
                .iter()
                .map(|(name, level, _)| format!("{name} to {level}"))
                .collect();
            anyhow::bail!("Could not {verb} {}. {error}", names.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_arguments_are_name_equals_level() {
        assert_eq!(
            parse_feature("transaction.version=1").unwrap(),
            ("transaction.version".to_string(), 1)
        );
        assert!(parse_feature("transaction.version").is_err());
        assert!(parse_feature("=1").is_err());
        assert!(parse_feature("transaction.version=x").is_err());
    }
}
