//! ACLs: CreateAcls, DescribeAcls, DeleteAcls (what `kafka-acls.sh` calls). Enum fields are
//! Kafka's wire ids (resource type, pattern type, operation, permission).

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;

use super::Admin;
use crate::cluster::Target;
use crate::error::{ClientError, Result};

/// One ACL (a binding), or a filter when used with `None` strings and ANY (1) ids.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AclEntry {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

fn text(s: &Option<String>) -> Option<StrBytes> {
    s.as_ref().map(|s| StrBytes::from_string(s.clone()))
}

fn owned(s: &StrBytes) -> Option<String> {
    Some(s.to_string())
}

impl Admin {
    /// Creates ACLs; one result per ACL, in order.
    pub async fn create_acls(&self, acls: &[AclEntry]) -> Result<Vec<Result<()>>> {
        let creations: Vec<AclCreation> = acls
            .iter()
            .map(|a| {
                AclCreation::default()
                    .with_resource_type(a.resource_type)
                    .with_resource_name(text(&a.resource_name).unwrap_or_default())
                    .with_resource_pattern_type(a.pattern_type)
                    .with_principal(text(&a.principal).unwrap_or_default())
                    .with_host(text(&a.host).unwrap_or_default())
                    .with_operation(a.operation)
                    .with_permission_type(a.permission)
            })
            .collect();
        let cluster = &self.cluster;
        let r = cluster
            .retry("create ACLs", || async {
                cluster
                    .call(&Target::Any, |_| {
                        Ok(CreateAclsRequest::default().with_creations(creations.clone()))
                    })
                    .await
            })
            .await?;
        Ok(r.results
            .into_iter()
            .map(|res| {
                ClientError::check(
                    res.error_code,
                    res.error_message.map(|m| m.to_string()),
                    "create ACL",
                )
            })
            .collect())
    }

    /// The ACLs matching `filter`.
    pub async fn describe_acls(&self, filter: &AclEntry) -> Result<Vec<AclEntry>> {
        let cluster = &self.cluster;
        let r = cluster
            .retry("describe ACLs", || async {
                let r = cluster
                    .call(&Target::Any, |_| {
                        Ok(DescribeAclsRequest::default()
                            .with_resource_type_filter(filter.resource_type)
                            .with_resource_name_filter(text(&filter.resource_name))
                            .with_pattern_type_filter(filter.pattern_type)
                            .with_principal_filter(text(&filter.principal))
                            .with_host_filter(text(&filter.host))
                            .with_operation(filter.operation)
                            .with_permission_type(filter.permission))
                    })
                    .await?;
                ClientError::check(
                    r.error_code,
                    r.error_message.as_ref().map(|m| m.to_string()),
                    "describe ACLs",
                )?;
                Ok(r)
            })
            .await?;
        let mut out = Vec::new();
        for resource in r.resources {
            for acl in resource.acls {
                out.push(AclEntry {
                    resource_type: resource.resource_type,
                    resource_name: owned(&resource.resource_name),
                    pattern_type: resource.pattern_type,
                    principal: owned(&acl.principal),
                    host: owned(&acl.host),
                    operation: acl.operation,
                    permission: acl.permission_type,
                });
            }
        }
        out.sort();
        Ok(out)
    }

    /// Deletes every ACL matching any of `filters`; returns the ACLs deleted.
    pub async fn delete_acls(&self, filters: &[AclEntry]) -> Result<Vec<AclEntry>> {
        let wire: Vec<DeleteAclsFilter> = filters
            .iter()
            .map(|f| {
                DeleteAclsFilter::default()
                    .with_resource_type_filter(f.resource_type)
                    .with_resource_name_filter(text(&f.resource_name))
                    .with_pattern_type_filter(f.pattern_type)
                    .with_principal_filter(text(&f.principal))
                    .with_host_filter(text(&f.host))
                    .with_operation(f.operation)
                    .with_permission_type(f.permission)
            })
            .collect();
        let cluster = &self.cluster;
        let r = cluster
            .retry("delete ACLs", || async {
                cluster
                    .call(&Target::Any, |_| {
                        Ok(DeleteAclsRequest::default().with_filters(wire.clone()))
                    })
                    .await
            })
            .await?;
        let mut out = Vec::new();
        for result in r.filter_results {
            ClientError::check(
                result.error_code,
                result.error_message.map(|m| m.to_string()),
                "delete ACLs",
            )?;
            for m in result.matching_acls {
                out.push(AclEntry {
                    resource_type: m.resource_type,
                    resource_name: owned(&m.resource_name),
                    pattern_type: m.pattern_type,
                    principal: owned(&m.principal),
                    host: owned(&m.host),
                    operation: m.operation,
                    permission: m.permission_type,
                });
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}
