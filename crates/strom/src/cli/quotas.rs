//! `strom quotas describe|alter`: client quotas through the Admin API, as
//! `kafka-configs.sh --entity-type users/clients --describe/--alter` (`--user`/`--user-default`
//! for `--entity-type users --entity-name`/`--entity-default`, likewise `--client-id`).

use anyhow::{bail, Context};
use serde::Serialize;
use strom_client::{Admin, QuotaEntity, QuotaMatch};

use super::args::{Common, QuotaAlterArgs, QuotaEntityArgs, QuotasCommand};
use super::output::{self, Table};

#[derive(Debug, Serialize)]
struct QuotaView {
    /// `user=alice,client-id=<default>`, as kafka-configs.sh names entities.
    entity: String,
    quotas: std::collections::BTreeMap<String, f64>,
}

pub async fn run(common: &Common, command: QuotasCommand) -> anyhow::Result<()> {
    let admin = Admin::new(super::client_config(common)?)?;
    let result = match command {
        QuotasCommand::Describe(args) => describe(&admin, common, args).await,
        QuotasCommand::Alter(args) => alter(&admin, args).await,
    };
    admin.close().await;
    result
}

/// The entity named by the flags (user and/or client id, each named or default).
fn entity(args: &QuotaEntityArgs) -> anyhow::Result<QuotaEntity> {
    let mut entity = Vec::new();
    match (&args.user, args.user_default) {
        (Some(_), true) => bail!("give --user or --user-default, not both"),
        (Some(name), false) => entity.push(("user".to_string(), Some(name.clone()))),
        (None, true) => entity.push(("user".to_string(), None)),
        (None, false) => {}
    }
    match (&args.client_id, args.client_default) {
        (Some(_), true) => bail!("give --client-id or --client-default, not both"),
        (Some(name), false) => entity.push(("client-id".to_string(), Some(name.clone()))),
        (None, true) => entity.push(("client-id".to_string(), None)),
        (None, false) => {}
    }
    Ok(entity)
}

/// `key=value,key=value` (kafka-configs.sh --add-config).
fn additions(text: &str) -> anyhow::Result<Vec<(String, Option<f64>)>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("--add-config: expected key=value, got {pair:?}"))?;
            let value: f64 = value.trim().parse().with_context(|| {
                format!("--add-config: {} needs a number, got {value:?}", key.trim())
            })?;
            Ok((key.trim().to_string(), Some(value)))
        })
        .collect()
}

async fn alter(admin: &Admin, args: QuotaAlterArgs) -> anyhow::Result<()> {
    let entity = entity(&args.entity)?;
    if entity.is_empty() {
        bail!("name the entity: --user/--user-default and/or --client-id/--client-default");
    }
    let mut ops = match &args.add_config {
        Some(text) => additions(text)?,
        None => Vec::new(),
    };
    for key in args
        .delete_config
        .iter()
        .flat_map(|t| t.split(','))
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        ops.push((key.to_string(), None));
    }
    if ops.is_empty() {
        bail!("nothing to change: --add-config key=value,... and/or --delete-config key,...");
    }
    admin.alter_client_quotas(&entity, &ops).await?;
    println!("Completed updating quotas for {}.", name(&entity));
    Ok(())
}

async fn describe(admin: &Admin, common: &Common, args: QuotaEntityArgs) -> anyhow::Result<()> {
    let entity = entity(&args)?;
    // A named entity matches exactly (strict, as kafka-configs.sh describes one entity);
    // none lists every user and client-id entity.
    let (components, strict) = if entity.is_empty() {
        (Vec::new(), false)
    } else {
        let components = entity
            .iter()
            .map(|(kind, name)| {
                let matched = match name {
                    Some(name) => QuotaMatch::Exact(name.clone()),
                    None => QuotaMatch::Default,
                };
                (kind.clone(), matched)
            })
            .collect();
        (components, true)
    };
    let found = admin.describe_client_quotas(&components, strict).await?;
    let views: Vec<QuotaView> = found
        .iter()
        .map(|(entity, values)| QuotaView {
            entity: name(entity),
            quotas: values.iter().cloned().collect(),
        })
        .collect();
    if common.json() {
        return output::print_json(&views);
    }
    let mut table = Table::new(&["ENTITY", "QUOTAS"]);
    for v in &views {
        let quotas: Vec<String> = v.quotas.iter().map(|(k, q)| format!("{k}={q}")).collect();
        table.row(vec![v.entity.clone(), quotas.join(",")]);
    }
    let mut out = output::Out::new();
    out.bytes(table.render().as_bytes())?;
    out.flush()
}

/// `user=alice,client-id=<default>`.
fn name(entity: &QuotaEntity) -> String {
    entity
        .iter()
        .map(|(kind, name)| format!("{kind}={}", name.as_deref().unwrap_or("<default>")))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_config_is_key_equals_number() {
        assert_eq!(
            additions("producer_byte_rate=1024, request_percentage=12.5").unwrap(),
            vec![
                ("producer_byte_rate".to_string(), Some(1024.0)),
                ("request_percentage".to_string(), Some(12.5))
            ]
        );
        assert!(additions("producer_byte_rate").is_err());
        assert!(additions("producer_byte_rate=fast").is_err());
    }
}
