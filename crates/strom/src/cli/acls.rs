//! `strom acls add|remove|list`: ACLs through the Admin API, with kafka-acls.sh's flags.

use anyhow::{bail, Context};
use serde::Serialize;
use strom_client::{AclEntry, Admin};
use strom_meta::acl::{kafka_name, AclOperation, AclPermission, PatternType, ResourceType};

use super::args::{AclChangeArgs, AclListArgs, AclResourceArgs, AclsCommand, Common};
use super::output::{self, Table};

#[derive(Debug, Serialize)]
struct AclView {
    resource_type: String,
    pattern_type: String,
    resource_name: String,
    principal: String,
    host: String,
    operation: String,
    permission: String,
}

fn view(acl: &AclEntry) -> AclView {
    AclView {
        resource_type: kafka_name(ResourceType::from_id(acl.resource_type)),
        pattern_type: kafka_name(PatternType::from_id(acl.pattern_type)),
        resource_name: acl.resource_name.clone().unwrap_or_default(),
        principal: acl.principal.clone().unwrap_or_default(),
        host: acl.host.clone().unwrap_or_default(),
        operation: kafka_name(AclOperation::from_id(acl.operation)),
        permission: kafka_name(AclPermission::from_id(acl.permission)),
    }
}

pub async fn run(common: &Common, command: AclsCommand) -> anyhow::Result<()> {
    let admin = Admin::new(super::client_config(common)?)?;
    let result = match command {
        AclsCommand::Add(args) => add(&admin, common, args).await,
        AclsCommand::Remove(args) => remove(&admin, common, args).await,
        AclsCommand::List(args) => list(&admin, common, args).await,
    };
    admin.close().await;
    result
}

/// The resource named by the flags: `None` when none is given.
fn resource(args: &AclResourceArgs) -> anyhow::Result<Option<(ResourceType, String)>> {
    let mut named = Vec::new();
    if let Some(t) = &args.topic {
        named.push((ResourceType::Topic, t.clone()));
    }
    if let Some(g) = &args.group {
        named.push((ResourceType::Group, g.clone()));
    }
    if args.cluster {
        named.push((
            ResourceType::Cluster,
            strom_meta::acl::CLUSTER_NAME.to_string(),
        ));
    }
    if let Some(t) = &args.transactional_id {
        named.push((ResourceType::TransactionalId, t.clone()));
    }
    if named.len() > 1 {
        bail!("name one resource: --topic, --group, --cluster or --transactional-id");
    }
    Ok(named.pop())
}

fn pattern_type(text: Option<&str>, default: PatternType) -> anyhow::Result<PatternType> {
    Ok(match text.map(str::to_ascii_lowercase).as_deref() {
        None => default,
        Some("literal") => PatternType::Literal,
        Some("prefixed") => PatternType::Prefixed,
        Some("any") => PatternType::Any,
        Some("match") => PatternType::Match,
        Some(other) => {
            bail!("unknown --resource-pattern-type {other}: literal, prefixed, any or match")
        }
    })
}

fn operation(text: &str) -> anyhow::Result<AclOperation> {
    let wanted: String = text
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase();
    AclOperation::ALL_VALUES
        .iter()
        .copied()
        .filter(|op| !matches!(op, AclOperation::Unknown | AclOperation::Any))
        .find(|op| kafka_name(*op).replace('_', "") == wanted)
        .with_context(|| format!("unknown --operation {text} (see --help for the list)"))
}

/// One ACL (or filter) per (permission, principal, host, operation), as kafka-acls.sh.
fn entries(
    args: &AclChangeArgs,
    rt: ResourceType,
    name: &str,
    pt: PatternType,
    default_op: Option<AclOperation>,
) -> anyhow::Result<Vec<AclEntry>> {
    let mut ops: Vec<Option<AclOperation>> = args
        .operation
        .iter()
        .map(|o| operation(o).map(Some))
        .collect::<anyhow::Result<_>>()?;
    if ops.is_empty() {
        ops.push(default_op);
    }
    let star = vec!["*".to_string()];
    let mut out = Vec::new();
    for (permission, principals, hosts) in [
        (
            AclPermission::Allow,
            &args.allow_principal,
            &args.allow_host,
        ),
        (AclPermission::Deny, &args.deny_principal, &args.deny_host),
    ] {
        let hosts = if hosts.is_empty() { &star } else { hosts };
        for principal in principals {
            for host in hosts {
                for op in &ops {
                    out.push(AclEntry {
                        resource_type: rt.id(),
                        resource_name: Some(name.to_string()),
                        pattern_type: pt.id(),
                        principal: Some(principal.clone()),
                        host: Some(host.clone()),
                        operation: op.unwrap_or(AclOperation::Any).id(),
                        permission: permission.id(),
                    });
                }
            }
        }
    }
    Ok(out)
}

async fn add(admin: &Admin, common: &Common, args: AclChangeArgs) -> anyhow::Result<()> {
    let Some((rt, name)) = resource(&args.resource)? else {
        bail!("name the resource: --topic, --group, --cluster or --transactional-id");
    };
    let pt = pattern_type(
        args.resource.resource_pattern_type.as_deref(),
        PatternType::Literal,
    )?;
    let acls = entries(&args, rt, &name, pt, Some(AclOperation::All))?;
    if acls.is_empty() {
        bail!("name a principal: --allow-principal or --deny-principal");
    }
    let results = admin.create_acls(&acls).await?;
    let mut failed = None;
    for (acl, result) in acls.iter().zip(results) {
        if let Err(e) = result {
            eprintln!("strom: cannot add {:?}: {e}", view(acl));
            failed = Some(e);
        }
    }
    if let Some(e) = failed {
        return Err(e.into());
    }
    print(common, &acls)
}

async fn remove(admin: &Admin, common: &Common, args: AclChangeArgs) -> anyhow::Result<()> {
    let Some((rt, name)) = resource(&args.resource)? else {
        bail!("name the resource: --topic, --group, --cluster or --transactional-id");
    };
    let pt = pattern_type(
        args.resource.resource_pattern_type.as_deref(),
        PatternType::Literal,
    )?;
    let mut filters = entries(&args, rt, &name, pt, None)?;
    if filters.is_empty() {
        // No principal: every ACL of the resource, as kafka-acls.sh --remove.
        filters.push(AclEntry {
            resource_type: rt.id(),
            resource_name: Some(name),
            pattern_type: pt.id(),
            principal: None,
            host: None,
            operation: AclOperation::Any.id(),
            permission: AclPermission::Any.id(),
        });
    }
    let removed = admin.delete_acls(&filters).await?;
    print(common, &removed)
}

async fn list(admin: &Admin, common: &Common, args: AclListArgs) -> anyhow::Result<()> {
    let filter = match resource(&args.resource)? {
        Some((rt, name)) => AclEntry {
            resource_type: rt.id(),
            resource_name: Some(name),
            pattern_type: pattern_type(
                args.resource.resource_pattern_type.as_deref(),
                PatternType::Literal,
            )?
            .id(),
            principal: args.principal.clone(),
            host: None,
            operation: AclOperation::Any.id(),
            permission: AclPermission::Any.id(),
        },
        None => AclEntry {
            resource_type: ResourceType::Any.id(),
            resource_name: None,
            pattern_type: pattern_type(
                args.resource.resource_pattern_type.as_deref(),
                PatternType::Any,
            )?
            .id(),
            principal: args.principal.clone(),
            host: None,
            operation: AclOperation::Any.id(),
            permission: AclPermission::Any.id(),
        },
    };
    let acls = admin.describe_acls(&filter).await?;
    print(common, &acls)
}

fn print(common: &Common, acls: &[AclEntry]) -> anyhow::Result<()> {
    let views: Vec<AclView> = acls.iter().map(view).collect();
    if common.json() {
        return output::print_json(&views);
    }
    let mut table = Table::new(&[
        "RESOURCE",
        "PATTERN",
        "NAME",
        "PRINCIPAL",
        "HOST",
        "OPERATION",
        "PERMISSION",
    ]);
    for v in &views {
        table.row(vec![
            v.resource_type.clone(),
            v.pattern_type.clone(),
            v.resource_name.clone(),
            v.principal.clone(),
            v.host.clone(),
            v.operation.clone(),
            v.permission.clone(),
        ]);
    }
    let mut out = output::Out::new();
    out.bytes(table.render().as_bytes())?;
    out.flush()
}
