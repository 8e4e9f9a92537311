//! ACLs: Kafka's StandardAuthorizer semantics (deny wins, literal/prefixed/wildcard
//! patterns, hosts, implied operations, super users, the no-ACL default), filters, the
//! controller's CreateAcls/DeleteAcls, and ACL records through the codec and snapshots.

use proptest::prelude::*;
use strom_meta::acl::*;
use strom_meta::*;

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

fn topic_acl(name: &str, pt: PatternType, op: AclOperation, perm: AclPermission) -> AclBinding {
    acl(ResourceType::Topic, name, pt, "User:alice", "*", op, perm)
}

const ALICE: Requester<'static> = Requester {
    principal: "User:alice",
    host: "10.0.0.1",
};

fn allowed(
    acls: &[AclBinding],
    settings: &AuthorizerSettings,
    op: AclOperation,
    topic: &str,
) -> bool {
    authorize(acls, settings, ALICE, op, ResourceType::Topic, topic).is_allowed()
}

fn strict() -> AuthorizerSettings {
    AuthorizerSettings::default()
}

#[test]
fn no_acls_follows_allow_everyone_if_no_acl_found() {
    assert!(!allowed(&[], &strict(), AclOperation::Read, "t"));
    let open = AuthorizerSettings {
        allow_everyone_if_no_acl_found: true,
        ..strict()
    };
    assert!(allowed(&[], &open, AclOperation::Read, "t"));
    // An ACL on the resource for someone else: no longer "no ACL found", so denied.
    let other = vec![acl(
        ResourceType::Topic,
        "t",
        PatternType::Literal,
        "User:bob",
        "*",
        AclOperation::Read,
        AclPermission::Allow,
    )];
    assert_eq!(
        authorize(
            &other,
            &open,
            ALICE,
            AclOperation::Read,
            ResourceType::Topic,
            "t"
        ),
        Decision::NoMatchingAcl
    );
    // An ACL on another topic leaves "t" without ACLs.
    assert!(allowed(
        &[topic_acl(
            "u",
            PatternType::Literal,
            AclOperation::Read,
            AclPermission::Allow
        )],
        &open,
        AclOperation::Read,
        "t"
    ));
}

#[test]
fn literal_prefixed_and_wildcard_patterns() {
    let read = |name: &str, pt| {
        vec![topic_acl(
            name,
            pt,
            AclOperation::Read,
            AclPermission::Allow,
        )]
    };
    assert!(allowed(
        &read("orders", PatternType::Literal),
        &strict(),
        AclOperation::Read,
        "orders"
    ));
    assert!(!allowed(
        &read("orders", PatternType::Literal),
        &strict(),
        AclOperation::Read,
        "orders2"
    ));
    assert!(!allowed(
        &read("ord", PatternType::Literal),
        &strict(),
        AclOperation::Read,
        "orders"
    ));
    assert!(allowed(
        &read("ord", PatternType::Prefixed),
        &strict(),
        AclOperation::Read,
        "orders"
    ));
    assert!(allowed(
        &read("orders", PatternType::Prefixed),
        &strict(),
        AclOperation::Read,
        "orders"
    ));
    assert!(!allowed(
        &read("orders.", PatternType::Prefixed),
        &strict(),
        AclOperation::Read,
        "orders"
    ));
    assert!(allowed(
        &read("*", PatternType::Literal),
        &strict(),
        AclOperation::Read,
        "anything"
    ));
    // A PREFIXED `*` is a prefix like any other, not a wildcard.
    assert!(!allowed(
        &read("*", PatternType::Prefixed),
        &strict(),
        AclOperation::Read,
        "orders"
    ));
    assert!(allowed(
        &read("*", PatternType::Prefixed),
        &strict(),
        AclOperation::Read,
        "*x"
    ));
    // Resource types do not mix.
    let group = vec![acl(
        ResourceType::Group,
        "orders",
        PatternType::Literal,
        "User:alice",
        "*",
        AclOperation::Read,
        AclPermission::Allow,
    )];
    assert!(!allowed(&group, &strict(), AclOperation::Read, "orders"));
}

#[test]
fn deny_wins_over_allow_whatever_the_pattern() {
    let acls = vec![
        topic_acl(
            "*",
            PatternType::Literal,
            AclOperation::All,
            AclPermission::Allow,
        ),
        topic_acl(
            "secret",
            PatternType::Prefixed,
            AclOperation::Read,
            AclPermission::Deny,
        ),
    ];
    assert!(allowed(&acls, &strict(), AclOperation::Read, "public"));
    assert!(!allowed(&acls, &strict(), AclOperation::Read, "secret.pay"));
    assert!(allowed(&acls, &strict(), AclOperation::Write, "secret.pay"));
    // DENY READ does not deny DESCRIBE (implication is for ALLOW only).
    assert!(allowed(
        &acls,
        &strict(),
        AclOperation::Describe,
        "secret.pay"
    ));
    // DENY ALL denies everything, DESCRIBE included.
    let all = vec![
        topic_acl(
            "t",
            PatternType::Literal,
            AclOperation::Read,
            AclPermission::Allow,
        ),
        topic_acl(
            "t",
            PatternType::Literal,
            AclOperation::All,
            AclPermission::Deny,
        ),
    ];
    assert!(!allowed(&all, &strict(), AclOperation::Read, "t"));
    assert!(!allowed(&all, &strict(), AclOperation::Describe, "t"));
}

#[test]
fn implied_operations() {
    for op in [
        AclOperation::Read,
        AclOperation::Write,
        AclOperation::Delete,
        AclOperation::Alter,
        AclOperation::Describe,
        AclOperation::All,
    ] {
        let acls = vec![topic_acl(
            "t",
            PatternType::Literal,
            op,
            AclPermission::Allow,
        )];
        assert!(
            allowed(&acls, &strict(), AclOperation::Describe, "t"),
            "{op} implies DESCRIBE"
        );
    }
    for op in [
        AclOperation::Create,
        AclOperation::DescribeConfigs,
        AclOperation::AlterConfigs,
    ] {
        let acls = vec![topic_acl(
            "t",
            PatternType::Literal,
            op,
            AclPermission::Allow,
        )];
        assert!(
            !allowed(&acls, &strict(), AclOperation::Describe, "t"),
            "{op} does not imply DESCRIBE"
        );
    }
    for (op, implies) in [
        (AclOperation::AlterConfigs, true),
        (AclOperation::DescribeConfigs, true),
        (AclOperation::All, true),
        (AclOperation::Alter, false),
        (AclOperation::Read, false),
    ] {
        let acls = vec![topic_acl(
            "t",
            PatternType::Literal,
            op,
            AclPermission::Allow,
        )];
        assert_eq!(
            allowed(&acls, &strict(), AclOperation::DescribeConfigs, "t"),
            implies,
            "{op} and DESCRIBE_CONFIGS"
        );
    }
    // READ does not imply WRITE.
    let acls = vec![topic_acl(
        "t",
        PatternType::Literal,
        AclOperation::Read,
        AclPermission::Allow,
    )];
    assert!(!allowed(&acls, &strict(), AclOperation::Write, "t"));
}

#[test]
fn principals_and_hosts() {
    let everyone = vec![acl(
        ResourceType::Topic,
        "t",
        PatternType::Literal,
        WILDCARD_PRINCIPAL,
        "*",
        AclOperation::Read,
        AclPermission::Allow,
    )];
    assert!(allowed(&everyone, &strict(), AclOperation::Read, "t"));
    let other_host = vec![acl(
        ResourceType::Topic,
        "t",
        PatternType::Literal,
        "User:alice",
        "10.0.0.2",
        AclOperation::Read,
        AclPermission::Allow,
    )];
    assert!(!allowed(&other_host, &strict(), AclOperation::Read, "t"));
    let this_host = vec![acl(
        ResourceType::Topic,
        "t",
        PatternType::Literal,
        "User:alice",
        "10.0.0.1",
        AclOperation::Read,
        AclPermission::Allow,
    )];
    assert!(allowed(&this_host, &strict(), AclOperation::Read, "t"));
    // Principal types matter: Group:alice is not User:alice.
    let group_principal = vec![acl(
        ResourceType::Topic,
        "t",
        PatternType::Literal,
        "Group:alice",
        "*",
        AclOperation::Read,
        AclPermission::Allow,
    )];
    assert!(!allowed(
        &group_principal,
        &strict(),
        AclOperation::Read,
        "t"
    ));
}

#[test]
fn super_users_pass_even_a_deny() {
    let acls = vec![topic_acl(
        "t",
        PatternType::Literal,
        AclOperation::All,
        AclPermission::Deny,
    )];
    let settings = AuthorizerSettings {
        super_users: vec!["User:root".into(), "User:alice".into()],
        allow_everyone_if_no_acl_found: false,
    };
    assert_eq!(
        authorize(
            &acls,
            &settings,
            ALICE,
            AclOperation::Read,
            ResourceType::Topic,
            "t"
        ),
        Decision::SuperUser
    );
    let bob = Requester {
        principal: "User:bob",
        host: "10.0.0.1",
    };
    assert!(!authorize(
        &acls,
        &settings,
        bob,
        AclOperation::Read,
        ResourceType::Topic,
        "t"
    )
    .is_allowed());
}

#[test]
fn filters_follow_kafka_pattern_filter_semantics() {
    let lit = topic_acl(
        "orders",
        PatternType::Literal,
        AclOperation::Read,
        AclPermission::Allow,
    );
    let wild = topic_acl(
        "*",
        PatternType::Literal,
        AclOperation::Read,
        AclPermission::Allow,
    );
    let pre = topic_acl(
        "ord",
        PatternType::Prefixed,
        AclOperation::Write,
        AclPermission::Deny,
    );
    let other = topic_acl(
        "x",
        PatternType::Prefixed,
        AclOperation::Write,
        AclPermission::Deny,
    );
    let all = [&lit, &wild, &pre, &other];
    let pick = |f: &AclFilter| all.iter().filter(|a| f.matches(a)).count();
    let named = |pt, name: &str| AclFilter {
        resource_type: ResourceType::Topic,
        resource_name: Some(name.into()),
        pattern_type: pt,
        ..AclFilter::any()
    };
    assert_eq!(pick(&AclFilter::any()), 4);
    // MATCH: every ACL that applies to "orders".
    assert_eq!(pick(&named(PatternType::Match, "orders")), 3);
    // ANY: exact name, any pattern type.
    assert_eq!(pick(&named(PatternType::Any, "orders")), 1);
    assert_eq!(pick(&named(PatternType::Literal, "orders")), 1);
    assert_eq!(pick(&named(PatternType::Prefixed, "orders")), 0);
    assert_eq!(pick(&named(PatternType::Prefixed, "ord")), 1);
    let deny_only = AclFilter {
        permission: AclPermission::Deny,
        ..AclFilter::any()
    };
    assert_eq!(pick(&deny_only), 2);
    let write = AclFilter {
        operation: AclOperation::Write,
        principal: Some("User:alice".into()),
        host: Some("*".into()),
        ..AclFilter::any()
    };
    assert_eq!(pick(&write), 2);
    let groups = AclFilter {
        resource_type: ResourceType::Group,
        ..AclFilter::any()
    };
    assert_eq!(pick(&groups), 0);
}

fn create(
    image: &MetadataImage,
    controller: &mut Controller,
    acls: Vec<AclBinding>,
) -> (MetadataImage, ControllerReply) {
    let (records, reply) = controller
        .handle(image, ControllerRequest::CreateAcls(acls), 0)
        .unwrap();
    let entry = encode_records(&records);
    let (image, delta) = image.apply(&decode_records(&entry).unwrap()).unwrap();
    assert_eq!(delta.acls_changed, !records.is_empty());
    (image, reply)
}

#[test]
fn controller_creates_once_deletes_by_filter_and_snapshots_keep_acls() {
    let mut controller = Controller::new(ControllerConfig::default());
    let a = topic_acl(
        "t",
        PatternType::Literal,
        AclOperation::Read,
        AclPermission::Allow,
    );
    let b = topic_acl(
        "p",
        PatternType::Prefixed,
        AclOperation::Write,
        AclPermission::Deny,
    );
    let mut bad = a.clone();
    bad.pattern_type = PatternType::Match;
    let (image, reply) = create(
        &MetadataImage::default(),
        &mut controller,
        vec![a.clone(), b.clone(), a.clone(), bad],
    );
    let ControllerReply::CreateAcls(results) = reply else {
        panic!("wrong reply")
    };
    assert!(results[0].is_ok() && results[1].is_ok() && results[2].is_ok());
    assert_eq!(
        results[3].as_ref().unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        image.acl_count(),
        2,
        "a duplicate is accepted but stored once"
    );
    // Creating it again adds nothing.
    let (image, _) = create(&image, &mut controller, vec![a.clone()]);
    assert_eq!(image.acl_count(), 2);
    // Snapshots keep ACLs with their ids.
    assert_eq!(
        MetadataImage::decode_snapshot(&image.encode_snapshot()).unwrap(),
        image
    );
    // Two filters matching the same ACL: both report it, one record removes it.
    let filter = AclFilter {
        permission: AclPermission::Deny,
        ..AclFilter::any()
    };
    let (records, reply) = controller
        .handle(
            &image,
            ControllerRequest::DeleteAcls(vec![filter.clone(), filter]),
            0,
        )
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        reply,
        ControllerReply::DeleteAcls(vec![Ok(vec![b.clone()]), Ok(vec![b])])
    );
    let (image, _) = image.apply(&records).unwrap();
    assert_eq!(image.acl_bindings().collect::<Vec<_>>(), vec![&a]);
    // Removing an id twice is a damaged log, refused.
    assert!(image.apply(&records).is_err());
}

fn arb_acl() -> impl Strategy<Value = AclBinding> {
    (
        prop::sample::select(vec!["t", "to", "top", "topic", "*", "x"]),
        prop::sample::select(vec![PatternType::Literal, PatternType::Prefixed]),
        prop::sample::select(vec!["User:alice", "User:bob", "User:*"]),
        prop::sample::select(vec!["*", "10.0.0.1", "10.0.0.2"]),
        prop::sample::select(AclOperation::ALL_VALUES[2..].to_vec()),
        prop::sample::select(vec![AclPermission::Allow, AclPermission::Deny]),
    )
        .prop_map(|(name, pt, principal, host, op, perm)| {
            acl(ResourceType::Topic, name, pt, principal, host, op, perm)
        })
}

fn arb_op() -> impl Strategy<Value = AclOperation> {
    prop::sample::select(AclOperation::ALL_VALUES[3..].to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Adding a DENY that matches the caller and operation denies, whatever else is there.
    #[test]
    fn a_matching_deny_always_wins(
        acls in prop::collection::vec(arb_acl(), 0..12),
        op in arb_op(),
        topic in prop::sample::select(vec!["t", "topic", "top2", "x"]),
        deny_all in any::<bool>(),
        open in any::<bool>(),
    ) {
        let settings = AuthorizerSettings { super_users: vec![], allow_everyone_if_no_acl_found: open };
        let mut acls = acls;
        let deny_op = if deny_all { AclOperation::All } else { op };
        acls.push(acl(ResourceType::Topic, topic, PatternType::Literal, "User:*", "10.0.0.1", deny_op, AclPermission::Deny));
        let decision = authorize(&acls, &settings, ALICE, op, ResourceType::Topic, topic);
        prop_assert!(matches!(decision, Decision::Denied(_)), "{decision:?}");
    }

    /// The decision does not depend on the order of the ACLs, and a super user is always in.
    #[test]
    fn order_does_not_matter_and_super_users_pass(
        acls in prop::collection::vec(arb_acl(), 0..12),
        op in arb_op(),
        topic in prop::sample::select(vec!["t", "topic", "top2", "x"]),
    ) {
        let settings = AuthorizerSettings::default();
        let forward = authorize(&acls, &settings, ALICE, op, ResourceType::Topic, topic).is_allowed();
        let mut reversed = acls.clone();
        reversed.reverse();
        let backward = authorize(&reversed, &settings, ALICE, op, ResourceType::Topic, topic).is_allowed();
        prop_assert_eq!(forward, backward);
        let root = AuthorizerSettings { super_users: vec!["User:alice".into()], ..settings };
        prop_assert!(authorize(&acls, &root, ALICE, op, ResourceType::Topic, topic).is_allowed());
    }

    /// Allowed means: some ALLOW matching ACL applies and no matching DENY does (checked
    /// against a direct reading of Kafka's rules, with MATCH filters selecting the ACLs).
    #[test]
    fn allowed_iff_matching_allow_and_no_matching_deny(
        acls in prop::collection::vec(arb_acl(), 0..12),
        op in arb_op(),
        topic in prop::sample::select(vec!["t", "topic", "top2", "x"]),
    ) {
        let applying = AclFilter {
            resource_type: ResourceType::Topic,
            resource_name: Some(topic.into()),
            pattern_type: PatternType::Match,
            ..AclFilter::any()
        };
        let mine = |a: &&AclBinding| applying.matches(a)
            && (a.principal == "User:alice" || a.principal == "User:*")
            && (a.host == "*" || a.host == "10.0.0.1");
        let deny = acls.iter().filter(mine).any(|a| a.permission == AclPermission::Deny
            && (a.operation == op || a.operation == AclOperation::All));
        let allow = acls.iter().filter(mine).any(|a| a.permission == AclPermission::Allow
            && (a.operation == op || a.operation == AclOperation::All
                || (op == AclOperation::Describe && matches!(a.operation, AclOperation::Read | AclOperation::Write | AclOperation::Delete | AclOperation::Alter))
                || (op == AclOperation::DescribeConfigs && a.operation == AclOperation::AlterConfigs)));
        let any_applies = acls.iter().any(|a| applying.matches(a));
        for open in [false, true] {
            let settings = AuthorizerSettings { super_users: vec![], allow_everyone_if_no_acl_found: open };
            let expected = !deny && (allow || (open && !any_applies));
            prop_assert_eq!(
                authorize(&acls, &settings, ALICE, op, ResourceType::Topic, topic).is_allowed(),
                expected
            );
        }
    }

    /// ACL records survive the entry codec.
    #[test]
    fn acl_records_round_trip(acl in arb_acl(), id in any::<u128>()) {
        let records = vec![
            MetadataRecord::AccessControlEntry { id: uuid::Uuid::from_u128(id), acl },
            MetadataRecord::RemoveAccessControlEntry { id: uuid::Uuid::from_u128(id) },
        ];
        prop_assert_eq!(decode_records(&encode_records(&records)).unwrap(), records);
    }
}
