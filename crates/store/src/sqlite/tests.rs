use postern_core::model::ROLE_SEND;

use super::*;

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = SqliteStore::open(&url).await.expect("open");
    (dir, store)
}

fn role(name: &str) -> Role {
    Role {
        name: RoleName::parse(name).expect("valid"),
        description: "d".into(),
        builtin: false,
        created_at: 1,
        modified_at: 1,
    }
}

fn instance(name: &str, roles: &[&str]) -> ServiceInstance {
    ServiceInstance {
        name: InstanceName::parse(name).expect("valid"),
        plan: Plan::IntegrationFlow,
        client_id: format!("sb-{name}"),
        roles: roles.iter().map(|r| RoleName::parse(r).expect("valid")).collect(),
        grant_types: vec!["client_credentials".into()],
        redirect_uris: vec![],
        token_validity: 3600,
        created_at: 2,
        created_by: "admin".into(),
    }
}

#[tokio::test]
async fn builtin_roles_are_seeded_and_roles_in_use_are_kept() {
    let (_dir, s) = store().await;
    assert!(s.role(ROLE_SEND).await.expect("read").expect("seeded").builtin);
    s.insert_role(&role("Orders.Send")).await.expect("insert");
    assert_eq!(
        s.insert_role(&role("Orders.Send")).await,
        Err(Error::Conflict("already exists".into()))
    );
    s.insert_instance(&instance("i1", &["Orders.Send"]))
        .await
        .expect("instance");
    let usage = s
        .delete_role("Orders.Send")
        .await
        .expect("delete")
        .expect("exists");
    assert_eq!(usage.instances, vec!["i1".to_string()]);
    assert!(s.delete_instance("i1").await.expect("delete"));
    assert_eq!(
        s.delete_role("Orders.Send").await.expect("delete"),
        Some(RoleUsage::default())
    );
    assert_eq!(s.delete_role("Orders.Send").await.expect("delete"), None);
}

#[tokio::test]
async fn instances_keys_cascade() {
    let (_dir, s) = store().await;
    let i = instance("i1", &[ROLE_SEND]);
    s.insert_instance(&i).await.expect("insert");
    assert_eq!(s.instance("i1").await.expect("read"), Some(i.clone()));
    let key = ServiceKey {
        instance: i.name.clone(),
        name: KeyName::parse("k1").expect("valid"),
        key_type: KeyType::ClientSecret,
        secret_hash: vec![7; 32],
        certificate: None,
        created_at: 3,
        created_by: "admin".into(),
    };
    s.insert_key(&key).await.expect("key");
    assert!(matches!(s.insert_key(&key).await, Err(Error::Conflict(_))));
    assert_eq!(s.keys(Some("i1")).await.expect("keys"), vec![key]);
    assert!(s.delete_instance("i1").await.expect("delete"));
    assert!(s.keys(None).await.expect("keys").is_empty());
}

#[tokio::test]
async fn mpl_queries_filter_sort_and_page() {
    let (_dir, s) = store().await;
    let mk = |i: i64, status| Mpl {
        guid: format!("g{i}"),
        flow_id: if i % 2 == 0 { "even".into() } else { "odd".into() },
        status,
        user: "u".into(),
        sender: String::new(),
        receiver: String::new(),
        log_start: i,
        log_end: i + 1,
        http_status: 200,
        error: None,
    };
    let batch: Vec<_> = (0..10)
        .map(|i| {
            mk(
                i,
                if i < 3 {
                    MplStatus::Failed
                } else {
                    MplStatus::Completed
                },
            )
        })
        .collect();
    s.insert_mpls(&batch).await.expect("insert");
    s.insert_mpls(&batch[..2]).await.expect("duplicates are ignored");
    let cond = |field, value: &str| Condition {
        field,
        op: CmpOp::Eq,
        value: Literal::Text(value.into()),
    };
    let q = MplQuery {
        conditions: vec![
            cond(MplField::Status, "COMPLETED"),
            cond(MplField::IntegrationFlowName, "even"),
        ],
        order_by: Some((MplField::LogEnd, true)),
        top: 2,
        skip: 1,
    };
    let got: Vec<_> = s
        .query_mpls(&q)
        .await
        .expect("query")
        .into_iter()
        .map(|m| m.guid)
        .collect();
    assert_eq!(got, vec!["g6", "g4"]);
    assert_eq!(s.count_mpls(&q.conditions).await.expect("count"), 3);
    let many: Vec<_> = (100..550).map(|i| mk(i, MplStatus::Completed)).collect();
    s.insert_mpls(&many)
        .await
        .expect("a batch larger than one INSERT");
    assert_eq!(s.count_mpls(&[]).await.expect("count"), 460);
    let since = Condition {
        field: MplField::LogEnd,
        op: CmpOp::Gt,
        value: Literal::Time(8),
    };
    assert_eq!(s.count_mpls(&[since]).await.expect("count"), 452);
}

fn audit(at: i64) -> postern_core::partner::Audit {
    postern_core::partner::Audit {
        created_by: "admin".into(),
        created_at: at,
        modified_by: "admin".into(),
        modified_at: at,
    }
}

#[tokio::test]
async fn partner_directory_keys_uniqueness_cascade_and_rollback() {
    use postern_core::mpl::{CmpOp, Literal};
    use postern_core::partner::{
        AlternativePartner, AuthorizedUser, BinaryParameter, PartnerChange as C, PartnerCondition,
        PartnerDelta, PartnerField, PartnerKind, PartnerQuery, PartnerRow, PartnerSet, StringParameter,
    };

    use crate::PartnerStore;
    let (_dir, s) = store().await;
    let alt = |id: &str, pid: &str| AlternativePartner {
        agency: "016".into(),
        scheme: "DUNS".into(),
        id: id.into(),
        pid: pid.into(),
        audit: audit(1),
    };
    let one = |c: C| [c];
    s.apply_partner_changes(&one(C::InsertAlternative(alt("123456789", "ACME"))))
        .await
        .expect("insert");
    assert!(matches!(
        s.apply_partner_changes(&one(C::InsertAlternative(alt("123456789", "OTHER"))))
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(
        matches!(
            s.apply_partner_changes(&one(C::InsertAlternative(alt("987", "ACME"))))
                .await,
            Err(Error::Conflict(_))
        ),
        "(agency, scheme, pid) is unique too"
    );
    let user = AuthorizedUser {
        user: "partner-a".into(),
        pid: "ACME".into(),
        audit: audit(2),
    };
    s.apply_partner_changes(&one(C::InsertUser(user.clone())))
        .await
        .expect("user");
    assert!(
        matches!(
            s.apply_partner_changes(&one(C::InsertUser(user.clone()))).await,
            Err(Error::Conflict(_))
        ),
        "one partner per user"
    );
    let param = StringParameter {
        pid: "ACME".into(),
        id: "ReceiverAddress".into(),
        value: "https://acme.example/orders".into(),
        audit: audit(3),
    };
    let bin = BinaryParameter {
        pid: "ACME".into(),
        id: "schema".into(),
        content_type: "xsd".into(),
        value: b"<xs:schema/>".to_vec(),
        audit: audit(3),
    };
    s.apply_partner_changes(&[C::InsertString(param.clone()), C::InsertBinary(bin.clone())])
        .await
        .expect("params");

    // A change set that fails half way leaves nothing behind.
    let failing = [
        C::InsertString(StringParameter {
            id: "Other".into(),
            ..param.clone()
        }),
        C::InsertUser(user.clone()),
    ];
    let e = s.apply_partner_changes(&failing).await.expect_err("conflict");
    assert!(e.to_string().contains("change 2"), "{e}");
    let strings = PartnerQuery {
        set: PartnerSet::StringParameters,
        conditions: vec![PartnerCondition {
            field: PartnerField::Pid,
            op: CmpOp::Eq,
            value: Literal::Text("ACME".into()),
        }],
        order_by: None,
        top: 100,
        skip: 0,
    };
    let (rows, total) = s.query_partners(&strings).await.expect("query");
    assert_eq!((rows, total), (vec![PartnerRow::String(param.clone())], 1));

    // Moving an authorized user creates the new partner.
    let moved = AuthorizedUser {
        pid: "GLOBEX".into(),
        ..user.clone()
    };
    s.apply_partner_changes(&one(C::UpdateUser(moved.clone())))
        .await
        .expect("update");
    let partners = PartnerQuery {
        set: PartnerSet::Partners,
        conditions: vec![],
        order_by: None,
        top: 10,
        skip: 0,
    };
    let (rows, _) = s.query_partners(&partners).await.expect("partners");
    assert_eq!(
        rows,
        vec![
            PartnerRow::Partner("ACME".into()),
            PartnerRow::Partner("GLOBEX".into())
        ]
    );

    // Deleting a partner removes what belongs to it (except what is kept), and only that.
    let deltas = s
        .apply_partner_changes(&one(C::DeletePartner {
            pid: "ACME".into(),
            keep: vec![PartnerKind::StringParameters],
        }))
        .await
        .expect("delete");
    assert!(deltas.contains(&PartnerDelta::Binary {
        pid: "ACME".into(),
        id: "schema".into()
    }));
    assert!(s.alternative_partners().await.expect("alts").is_empty());
    assert_eq!(s.string_parameters().await.expect("params"), vec![param]);
    let deltas = s
        .apply_partner_changes(&one(C::DeletePartner {
            pid: "ACME".into(),
            keep: vec![],
        }))
        .await
        .expect("delete");
    assert!(deltas.contains(&PartnerDelta::PartnerRemoved { pid: "ACME".into() }));
    assert!(s.string_parameters().await.expect("params").is_empty());
    assert_eq!(s.authorized_users().await.expect("users"), vec![moved]);
    assert!(matches!(
        s.apply_partner_changes(&one(C::DeletePartner {
            pid: "ACME".into(),
            keep: vec![]
        }))
        .await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.apply_partner_changes(&one(C::DeleteAlternative {
            agency: "016".into(),
            scheme: "DUNS".into(),
            id: "123456789".into()
        }))
        .await,
        Err(Error::NotFound(_))
    ));
}
