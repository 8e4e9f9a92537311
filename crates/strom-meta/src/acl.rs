//! Access control lists: Kafka's ACL bindings and filters, and the decision of Kafka's
//! `StandardAuthorizer` (`StandardAuthorizerData.authorize`) over the ACLs of an image.
//!
//! Pure code, like the rest of this crate. The broker supplies the principal, the client's
//! host, `super.users` and `allow.everyone.if.no.acl.found`; the image supplies the ACLs,
//! which live in the metadata log as `AccessControlEntry` / `RemoveAccessControlEntry`
//! records (Kafka's record types 6 and 19).
//!
//! The decision, as Kafka's:
//! 1. a principal named in `super.users` is allowed everything;
//! 2. the ACLs that apply to a resource are the LITERAL ones with its exact name, the
//!    LITERAL ones named `*`, and the PREFIXED ones whose name starts the resource's name;
//! 3. among those, an ACL matches when its principal is the caller's or `User:*`, its host
//!    is the caller's or `*`, and its operation is the one asked, or ALL; an ALLOW ACL for
//!    READ, WRITE, DELETE or ALTER also matches DESCRIBE, and one for ALTER_CONFIGS also
//!    matches DESCRIBE_CONFIGS (a DENY ACL matches only its own operation, or ALL);
//! 4. any matching DENY denies (deny wins); else any matching ALLOW allows; else, when no
//!    ACL applies to the resource at all, `allow.everyone.if.no.acl.found` decides; else deny.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Kafka's resource name that LITERAL ACLs use to mean every resource of their type.
pub const WILDCARD_RESOURCE: &str = "*";
/// Kafka's principal that ACLs use to mean every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// Kafka's host that ACLs use to mean every host.
pub const WILDCARD_HOST: &str = "*";
/// The only name of the CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The tracing target of the audit lines (Kafka's `kafka.authorizer.logger`): every failed
/// authentication and every denied operation, on the broker's listeners and on the
/// controller quorum's.
pub const AUDIT_TARGET: &str = "strom::audit";

macro_rules! kafka_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $id:expr),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every value, in id order.
            pub const ALL_VALUES: &'static [$name] = &[$($name::$variant),+];

            /// Kafka's id on the wire.
            pub fn id(self) -> i8 {
                match self {
                    $($name::$variant => $id),+
                }
            }

            /// The value of a wire id; unknown ids are `UNKNOWN` (as Kafka's `fromCode`).
            pub fn from_id(id: i8) -> $name {
                match id {
                    $($id => $name::$variant,)+
                    _ => $name::Unknown,
                }
            }
        }
    };
}

kafka_enum!(
    /// Kafka's `ResourceType`.
    ResourceType {
        Unknown = 0,
        Any = 1,
        Topic = 2,
        Group = 3,
        Cluster = 4,
        TransactionalId = 5,
        DelegationToken = 6,
        User = 7,
    }
);

kafka_enum!(
    /// Kafka's `PatternType`.
    PatternType {
        Unknown = 0,
        Any = 1,
        Match = 2,
        Literal = 3,
        Prefixed = 4,
    }
);

kafka_enum!(
    /// Kafka's `AclOperation`.
    AclOperation {
        Unknown = 0,
        Any = 1,
        All = 2,
        Read = 3,
        Write = 4,
        Create = 5,
        Delete = 6,
        Alter = 7,
        Describe = 8,
        ClusterAction = 9,
        DescribeConfigs = 10,
        AlterConfigs = 11,
        IdempotentWrite = 12,
        CreateTokens = 13,
        DescribeTokens = 14,
    }
);

kafka_enum!(
    /// Kafka's `AclPermissionType`.
    AclPermission {
        Unknown = 0,
        Any = 1,
        Deny = 2,
        Allow = 3,
    }
);

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Kafka's `SecurityUtils.resourceTypeName` spelling, as its audit lines use.
        f.write_str(match self {
            ResourceType::Unknown => "Unknown",
            ResourceType::Any => "Any",
            ResourceType::Topic => "Topic",
            ResourceType::Group => "Group",
            ResourceType::Cluster => "Cluster",
            ResourceType::TransactionalId => "TransactionalId",
            ResourceType::DelegationToken => "DelegationToken",
            ResourceType::User => "User",
        })
    }
}

impl fmt::Display for AclOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AclOperation::Unknown => "UNKNOWN",
            AclOperation::Any => "ANY",
            AclOperation::All => "ALL",
            AclOperation::Read => "READ",
            AclOperation::Write => "WRITE",
            AclOperation::Create => "CREATE",
            AclOperation::Delete => "DELETE",
            AclOperation::Alter => "ALTER",
            AclOperation::Describe => "DESCRIBE",
            AclOperation::ClusterAction => "CLUSTER_ACTION",
            AclOperation::DescribeConfigs => "DESCRIBE_CONFIGS",
            AclOperation::AlterConfigs => "ALTER_CONFIGS",
            AclOperation::IdempotentWrite => "IDEMPOTENT_WRITE",
            AclOperation::CreateTokens => "CREATE_TOKENS",
            AclOperation::DescribeTokens => "DESCRIBE_TOKENS",
        })
    }
}

/// One ACL: who may (or may not) do what from where on which resources.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `Type:name`, e.g. `User:alice`, or [`WILDCARD_PRINCIPAL`].
    pub principal: String,
    /// An IP address as text, or [`WILDCARD_HOST`].
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

/// Kafka's `AclBindingFilter`: `None` strings match anything; ANY enums match anything;
/// pattern type MATCH matches every pattern that applies to the named resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl AclFilter {
    /// The filter that matches every ACL.
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        }
    }

    /// Whether the filter has a field Kafka cannot interpret (`isUnknown`); DescribeAcls
    /// and DeleteAcls refuse such filters with INVALID_REQUEST.
    pub fn is_unknown(&self) -> bool {
        self.resource_type == ResourceType::Unknown
            || self.pattern_type == PatternType::Unknown
            || self.operation == AclOperation::Unknown
            || self.permission == AclPermission::Unknown
    }

    /// Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        self.matches_pattern(acl) && self.matches_entry(acl)
    }

    /// Kafka's `ResourcePatternFilter.matches`.
    fn matches_pattern(&self, acl: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != acl.resource_type {
            return false;
        }
        if !matches!(self.pattern_type, PatternType::Any | PatternType::Match)
            && self.pattern_type != acl.pattern_type
        {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == acl.pattern_type {
            return *name == acl.resource_name;
        }
        // MATCH: every ACL that applies to the resource named `name`.
        match acl.pattern_type {
            PatternType::Literal => {
                *name == acl.resource_name || acl.resource_name == WILDCARD_RESOURCE
            }
            PatternType::Prefixed => name.starts_with(&acl.resource_name),
            _ => false,
        }
    }

    /// Kafka's `AccessControlEntryFilter.matches`.
    fn matches_entry(&self, acl: &AclBinding) -> bool {
        if self.principal.as_ref().is_some_and(|p| *p != acl.principal) {
            return false;
        }
        if self.host.as_ref().is_some_and(|h| *h != acl.host) {
            return false;
        }
        if self.operation != AclOperation::Any && self.operation != acl.operation {
            return false;
        }
        self.permission == AclPermission::Any || self.permission == acl.permission
    }
}

/// Kafka's name of an enum value (`TRANSACTIONAL_ID` for `TransactionalId`).
pub fn kafka_name(value: impl fmt::Debug) -> String {
    let mut out = String::new();
    for (i, c) in format!("{value:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Why a new ACL is refused (Kafka's `AclControlManager.validateNewAcl`, plus the broker's
/// checks in `AclApis`); the message is Kafka's.
pub fn validate_new_acl(acl: &AclBinding) -> Result<(), String> {
    if matches!(acl.resource_type, ResourceType::Unknown | ResourceType::Any) {
        return Err(format!(
            "Invalid resourceType {}",
            kafka_name(acl.resource_type)
        ));
    }
    if !matches!(
        acl.pattern_type,
        PatternType::Literal | PatternType::Prefixed
    ) {
        return Err(format!(
            "Invalid patternType {}",
            kafka_name(acl.pattern_type)
        ));
    }
    if matches!(acl.operation, AclOperation::Unknown | AclOperation::Any) {
        return Err(format!("Invalid operation {}", acl.operation));
    }
    if !matches!(acl.permission, AclPermission::Allow | AclPermission::Deny) {
        return Err(format!(
            "Invalid permissionType {}",
            kafka_name(acl.permission)
        ));
    }
    if acl.resource_name.is_empty() {
        return Err("Resource name should not be empty".into());
    }
    if acl.resource_type == ResourceType::Cluster && acl.resource_name != CLUSTER_NAME {
        return Err(format!(
            "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
        ));
    }
    match acl.principal.split_once(':') {
        Some((kind, _)) if !kind.is_empty() => {}
        _ => {
            return Err(format!(
                "Invalid principal {}: expected `Type:name`, e.g. User:alice",
                acl.principal
            ))
        }
    }
    if acl.host.is_empty() {
        return Err("Invalid empty host".into());
    }
    Ok(())
}

/// The caller of an authorization question.
#[derive(Clone, Copy, Debug)]
pub struct Requester<'a> {
    /// `Type:name`, e.g. `User:ANONYMOUS`.
    pub principal: &'a str,
    /// The client's IP address as text.
    pub host: &'a str,
}

/// What decided an authorization, for the audit line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    SuperUser,
    /// No ACL applies to the resource: `allow.everyone.if.no.acl.found` decided.
    DefaultAllow,
    DefaultDeny,
    /// This ACL matched.
    Allowed(AclBinding),
    Denied(AclBinding),
    /// ACLs apply to the resource, none matches the caller: denied.
    NoMatchingAcl,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(
            self,
            Decision::SuperUser | Decision::DefaultAllow | Decision::Allowed(_)
        )
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::SuperUser => f.write_str("SuperUser"),
            Decision::DefaultAllow => f.write_str("DefaultAllow"),
            Decision::DefaultDeny => f.write_str("DefaultDeny"),
            Decision::NoMatchingAcl => f.write_str("NoMatchingAcl"),
            Decision::Allowed(acl) | Decision::Denied(acl) => write!(
                f,
                "MatchingAcl({:?}:{}:{} {} {} from {} {:?})",
                acl.resource_type,
                acl.pattern_type.id(),
                acl.resource_name,
                acl.principal,
                acl.operation,
                acl.host,
                acl.permission
            ),
        }
    }
}

/// The authorizer's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorizerSettings {
    /// `super.users`, as `Type:name` strings.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_everyone_if_no_acl_found: bool,
}

/// Kafka's StandardAuthorizer decision for `requester` doing `operation` on the resource
/// `(resource_type, name)`, given every ACL of the cluster.
pub fn authorize<'a>(
    acls: impl IntoIterator<Item = &'a AclBinding>,
    settings: &AuthorizerSettings,
    requester: Requester<'_>,
    operation: AclOperation,
    resource_type: ResourceType,
    name: &str,
) -> Decision {
    if settings
        .super_users
        .iter()
        .any(|s| s == requester.principal)
    {
        return Decision::SuperUser;
    }
    let mut applies = false;
    let mut allowed = None;
    for acl in acls {
        if acl.resource_type != resource_type || !pattern_applies(acl, name) {
            continue;
        }
        applies = true;
        match acl_result(acl, requester, operation) {
            Some(AclPermission::Deny) => return Decision::Denied(acl.clone()),
            Some(_) if allowed.is_none() => allowed = Some(acl.clone()),
            Some(_) => {}
            None => {}
        }
    }
    match allowed {
        Some(acl) => Decision::Allowed(acl),
        None if applies => Decision::NoMatchingAcl,
        None if settings.allow_everyone_if_no_acl_found => Decision::DefaultAllow,
        None => Decision::DefaultDeny,
    }
}

/// [`authorize`] on the CLUSTER resource (its only name, [`CLUSTER_NAME`]).
pub fn authorize_cluster<'a>(
    acls: impl IntoIterator<Item = &'a AclBinding>,
    settings: &AuthorizerSettings,
    requester: Requester<'_>,
    operation: AclOperation,
) -> Decision {
    authorize(
        acls,
        settings,
        requester,
        operation,
        ResourceType::Cluster,
        CLUSTER_NAME,
    )
}

/// Kafka's `authorizeByResourceType`: whether `requester` may do `operation` on at least
/// one resource of `resource_type` (InitProducerId without a transactional id asks it for
/// WRITE on any topic). Allowed when a resource no ACL names would be allowed (super users,
/// a wildcard ALLOW, or no ACLs at all with `allow.everyone.if.no.acl.found`), or when some
/// ALLOW ACL of the caller for the operation is not covered by one of its DENY ACLs.
pub fn authorize_by_resource_type<'a>(
    acls: impl IntoIterator<Item = &'a AclBinding> + Clone,
    settings: &AuthorizerSettings,
    requester: Requester<'_>,
    operation: AclOperation,
    resource_type: ResourceType,
) -> bool {
    // Kafka asks about a made-up resource name first, so super users pass regardless of DENY.
    if authorize(
        acls.clone(),
        settings,
        requester,
        operation,
        resource_type,
        "hardcode",
    )
    .is_allowed()
    {
        return true;
    }
    let mine: Vec<&AclBinding> = acls
        .into_iter()
        .filter(|acl| {
            acl.resource_type == resource_type
                && (acl.principal == requester.principal || acl.principal == WILDCARD_PRINCIPAL)
                && (acl.host == WILDCARD_HOST || acl.host == requester.host)
                && (acl.operation == operation || acl.operation == AclOperation::All)
        })
        .collect();
    let denies = |pattern: PatternType| {
        mine.iter()
            .filter(move |a| a.permission == AclPermission::Deny && a.pattern_type == pattern)
            .map(|a| a.resource_name.as_str())
    };
    if denies(PatternType::Literal).any(|name| name == WILDCARD_RESOURCE) {
        return false;
    }
    let prefix_denied = |name: &str| denies(PatternType::Prefixed).any(|p| name.starts_with(p));
    mine.iter()
        .filter(|a| a.permission == AclPermission::Allow)
        .any(|a| match a.pattern_type {
            PatternType::Literal => {
                a.resource_name == WILDCARD_RESOURCE
                    || (!denies(PatternType::Literal).any(|n| n == a.resource_name)
                        && !prefix_denied(&a.resource_name))
            }
            PatternType::Prefixed => !prefix_denied(&a.resource_name),
            _ => false,
        })
}

/// Whether `acl`'s resource pattern covers the resource named `name`.
fn pattern_applies(acl: &AclBinding, name: &str) -> bool {
    match acl.pattern_type {
        PatternType::Literal => acl.resource_name == name || acl.resource_name == WILDCARD_RESOURCE,
        PatternType::Prefixed => name.starts_with(&acl.resource_name),
        _ => false,
    }
}

/// Kafka's `StandardAuthorizerData.findResult`: the ACL's permission if it matches the
/// caller and the operation, else `None`.
fn acl_result(
    acl: &AclBinding,
    requester: Requester<'_>,
    operation: AclOperation,
) -> Option<AclPermission> {
    if acl.principal != requester.principal && acl.principal != WILDCARD_PRINCIPAL {
        return None;
    }
    if acl.host != WILDCARD_HOST && acl.host != requester.host {
        return None;
    }
    if acl.operation != AclOperation::All {
        let matches = if acl.permission == AclPermission::Allow {
            match operation {
                AclOperation::Describe => matches!(
                    acl.operation,
                    AclOperation::Describe
                        | AclOperation::Read
                        | AclOperation::Write
                        | AclOperation::Delete
                        | AclOperation::Alter
                ),
                AclOperation::DescribeConfigs => matches!(
                    acl.operation,
                    AclOperation::DescribeConfigs | AclOperation::AlterConfigs
                ),
                other => other == acl.operation,
            }
        } else {
            operation == acl.operation
        };
        if !matches {
            return None;
        }
    }
    Some(acl.permission)
}

/// Operations Kafka reports in `authorized_operations` per resource type
/// (`AclEntry.supportedOperations`), ALL excluded.
pub fn supported_operations(resource_type: ResourceType) -> &'static [AclOperation] {
    use AclOperation::*;
    match resource_type {
        ResourceType::Topic => &[
            Read,
            Write,
            Create,
            Describe,
            Delete,
            Alter,
            DescribeConfigs,
            AlterConfigs,
        ],
        ResourceType::Group => &[Read, Describe, Delete],
        ResourceType::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
        ResourceType::TransactionalId => &[Describe, Write],
        ResourceType::DelegationToken => &[Describe],
        ResourceType::User => &[CreateTokens, DescribeTokens],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        rt: ResourceType,
        name: &str,
        pt: PatternType,
        principal: &str,
        host: &str,
        op: AclOperation,
        perm: AclPermission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: principal.into(),
            host: host.into(),
            operation: op,
            permission: perm,
        }
    }

    #[test]
    fn ids_round_trip_and_unknown_ids_are_unknown() {
        for op in AclOperation::ALL_VALUES {
            assert_eq!(AclOperation::from_id(op.id()), *op);
        }
        assert_eq!(AclOperation::from_id(99), AclOperation::Unknown);
        assert_eq!(ResourceType::from_id(-3), ResourceType::Unknown);
    }

    #[test]
    fn validation_refuses_what_kafka_refuses() {
        let good = acl(
            ResourceType::Topic,
            "t",
            PatternType::Literal,
            "User:a",
            "*",
            AclOperation::Read,
            AclPermission::Allow,
        );
        assert!(validate_new_acl(&good).is_ok());
        let mut bad = good.clone();
        bad.pattern_type = PatternType::Match;
        assert_eq!(
            validate_new_acl(&bad).unwrap_err(),
            "Invalid patternType MATCH"
        );
        let mut bad = good.clone();
        bad.resource_type = ResourceType::Cluster;
        assert!(validate_new_acl(&bad).is_err());
        let mut bad = good.clone();
        bad.principal = "alice".into();
        assert!(validate_new_acl(&bad).is_err());
        let mut bad = good;
        bad.operation = AclOperation::Any;
        assert!(validate_new_acl(&bad).is_err());
    }
}
