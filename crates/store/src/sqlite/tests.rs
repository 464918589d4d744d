//! The store tests, run on both backends with the same bodies: each body takes a `&dyn Store`
//! and `on_both_backends!` runs it on a fresh SQLite file and on a fresh PostgreSQL database
//! (`POSTERN_TEST_POSTGRES_URL`; see `postgres/test_db.rs`).

use postern_core::model::ROLE_SEND;
use postern_core::mpl::Denial;

use super::*;
use crate::Store;

/// For each body, a module with a `sqlite` and a `postgres` test that run it.
macro_rules! on_both_backends {
    ($($body:ident),+ $(,)?) => {$(
        mod $body {
            #[tokio::test]
            async fn sqlite() {
                let (_dir, store) = super::store().await;
                super::$body(&store).await;
            }

            #[tokio::test]
            async fn postgres() {
                crate::postgres::test_db::run(|store| async move { super::$body(&store).await }).await;
            }
        }
    )+};
}

on_both_backends!(
    builtin_roles_are_seeded_and_roles_in_use_are_kept,
    instances_keys_cascade,
    mpl_queries_filter_sort_and_page,
    partner_directory_keys_uniqueness_cascade_and_rollback,
    lists_sort_by_bytes_whatever_the_locale,
    users_hold_roles_and_role_descriptions_change,
    flows_replace_and_keep_addresses_unique,
    certificate_keys_bind_one_certificate,
    token_keys_rotate_to_one_current_key_and_purge,
    the_first_local_ca_stored_wins,
    console_sessions_expire_and_end,
    trusted_cas_and_cert_mappings_are_unique_by_certificate,
    audit_pages_newest_first,
    mpl_keeps_the_first_entry_of_a_guid,
    partner_directory_pages_updates_and_names_the_failing_change,
    queue_stores_leases_retries_and_dedupes,
    credentials_are_replaced_by_name,
    key_expiry_is_kept_set_and_cleared,
    directory_load_reads_every_row_whatever_its_characters,
);

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
        rate_limit: None,
        created_at: 2,
        created_by: "admin".into(),
    }
}

async fn builtin_roles_are_seeded_and_roles_in_use_are_kept(s: &dyn Store) {
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

async fn instances_keys_cascade(s: &dyn Store) {
    let i = instance("i1", &[ROLE_SEND]);
    s.insert_instance(&i).await.expect("insert");
    assert_eq!(s.instance("i1").await.expect("read"), Some(i.clone()));
    let key = ServiceKey {
        instance: i.name.clone(),
        name: KeyName::parse("k1").expect("valid"),
        key_type: KeyType::ClientSecret,
        secret_hash: vec![7; 32],
        certificate: None,
        expires_at: None,
        created_at: 3,
        created_by: "admin".into(),
    };
    s.insert_key(&key).await.expect("key");
    assert!(matches!(s.insert_key(&key).await, Err(Error::Conflict(_))));
    assert_eq!(s.keys(Some("i1")).await.expect("keys"), vec![key]);
    assert!(s.delete_instance("i1").await.expect("delete"));
    assert!(s.keys(None).await.expect("keys").is_empty());
}

async fn key_expiry_is_kept_set_and_cleared(s: &dyn Store) {
    let i = instance("i1", &[ROLE_SEND]);
    s.insert_instance(&i).await.expect("insert");
    let key = |name: &str, expires_at| ServiceKey {
        instance: i.name.clone(),
        name: KeyName::parse(name).expect("valid"),
        key_type: KeyType::ClientSecret,
        secret_hash: vec![7; 32],
        certificate: None,
        expires_at,
        created_at: 3,
        created_by: "admin".into(),
    };
    s.insert_key(&key("new", None)).await.expect("key");
    s.insert_key(&key("old", Some(1_900_000_000_000)))
        .await
        .expect("key");
    assert_eq!(
        s.keys(Some("i1")).await.expect("keys"),
        vec![key("new", None), key("old", Some(1_900_000_000_000))]
    );
    assert!(s.set_key_expiry("i1", "new", Some(5)).await.expect("set"));
    assert!(s.set_key_expiry("i1", "old", None).await.expect("clear"));
    assert!(!s.set_key_expiry("i1", "gone", Some(5)).await.expect("absent"));
    assert!(!s.set_key_expiry("i2", "new", Some(5)).await.expect("absent"));
    assert_eq!(
        s.keys(None).await.expect("keys"),
        vec![key("new", Some(5)), key("old", None)]
    );
}

async fn mpl_queries_filter_sort_and_page(s: &dyn Store) {
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
        denial: (i == 0).then(|| Denial {
            required_roles: vec!["Orders.Send".into()],
            ..Denial::new("role", "missing_role")
        }),
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
    let first = MplQuery {
        conditions: vec![cond(MplField::MessageGuid, "g0")],
        order_by: None,
        top: 1,
        skip: 0,
    };
    let read = s.query_mpls(&first).await.expect("query g0");
    assert_eq!(read, vec![batch[0].clone()], "the denial is read back as written");
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

/// The rows the directory load hands over, one line each, sorted.
#[derive(Default)]
struct LoadedRows(Vec<String>);

impl postern_core::partner::DirectorySink for LoadedRows {
    fn alternative(&mut self, agency: &str, scheme: &str, id: &str, pid: &str) {
        self.0.push(format!("alt|{agency}|{scheme}|{id}|{pid}"));
    }
    fn user(&mut self, user: &str, pid: &str) {
        self.0.push(format!("user|{user}|{pid}"));
    }
    fn string(&mut self, pid: &str, id: &str, value: &str) {
        self.0.push(format!("string|{pid}|{id}|{value}"));
    }
}

impl LoadedRows {
    /// What the directory load hands over from `s`, sorted.
    async fn load(s: &dyn Store) -> Vec<String> {
        let mut rows = Self::default();
        s.load_directory(&mut rows).await.expect("load");
        rows.0.sort();
        rows.0
    }

    /// The same lines from the store's listings of the three tables, sorted.
    async fn listed(s: &dyn Store) -> Vec<String> {
        let mut rows: Vec<String> = s
            .alternative_partners()
            .await
            .expect("alternatives")
            .iter()
            .map(|a| format!("alt|{}|{}|{}|{}", a.agency, a.scheme, a.id, a.pid))
            .chain(
                s.authorized_users()
                    .await
                    .expect("users")
                    .iter()
                    .map(|u| format!("user|{}|{}", u.user, u.pid)),
            )
            .chain(
                s.string_parameters()
                    .await
                    .expect("params")
                    .iter()
                    .map(|p| format!("string|{}|{}|{}", p.pid, p.id, p.value)),
            )
            .collect();
        rows.sort();
        rows
    }
}

async fn directory_load_reads_every_row_whatever_its_characters(s: &dyn Store) {
    use postern_core::partner::{AlternativePartner, AuthorizedUser, PartnerChange as C, StringParameter};

    // Rows over several chunks of the SQLite load (the last one partial), and text that JSON has
    // to escape.
    let n = 2 * super::partner::LOAD_CHUNK as usize + 500;
    let odd = [
        "quo\"te",
        "back\\slash",
        "comma,]bracket",
        "ümlaut",
        "emoji 😀",
        "[\"x\",\"y\"]",
    ];
    let mut changes: Vec<C> = (0..n)
        .map(|i| {
            C::InsertAlternative(AlternativePartner {
                agency: "016".into(),
                scheme: "DUNS".into(),
                id: format!("{}", 100_000_000 + i),
                pid: format!("P{i:05}"),
                audit: audit(1),
            })
        })
        .collect();
    // Users over two chunks; the six string parameters below over two (of four and two).
    let users = super::partner::LOAD_CHUNK as usize + 10;
    changes.extend((0..users).map(|i| {
        C::InsertUser(AuthorizedUser {
            user: format!("user-{i}"),
            pid: format!("P{i:05}"),
            audit: audit(1),
        })
    }));
    for (i, text) in odd.iter().enumerate() {
        changes.push(C::InsertAlternative(AlternativePartner {
            agency: format!("agency {text}"),
            scheme: format!("scheme {text}"),
            id: format!("id {text}"),
            pid: format!("ODD{i}"),
            audit: audit(1),
        }));
        changes.push(C::InsertUser(AuthorizedUser {
            user: format!("user {text}"),
            pid: format!("ODD{i}"),
            audit: audit(1),
        }));
        changes.push(C::InsertString(StringParameter {
            pid: format!("ODD{i}"),
            id: format!("param {text}"),
            value: format!("value {text}"),
            audit: audit(1),
        }));
    }
    s.apply_partner_changes(&changes).await.expect("insert");
    let loaded = LoadedRows::load(s).await;
    let expected = LoadedRows::listed(s).await;
    assert_eq!(expected.len(), n + users + 3 * odd.len());
    assert_eq!(loaded, expected);
    assert!(loaded.contains(&"user|user emoji 😀|ODD4".to_string()));
}

async fn partner_directory_keys_uniqueness_cascade_and_rollback(s: &dyn Store) {
    use postern_core::mpl::{CmpOp, Literal};
    use postern_core::partner::{
        AlternativePartner, AuthorizedUser, BinaryParameter, PartnerChange as C, PartnerCondition,
        PartnerDelta, PartnerField, PartnerKind, PartnerQuery, PartnerRow, PartnerSet, StringParameter,
    };

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
    // The stream that builds the in-memory directory sees the same rows.
    assert_eq!(LoadedRows::load(s).await, LoadedRows::listed(s).await);
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

fn names<T>(items: Vec<T>, name: impl Fn(T) -> String) -> Vec<String> {
    items.into_iter().map(name).collect()
}

async fn lists_sort_by_bytes_whatever_the_locale(s: &dyn Store) {
    use postern_core::partner::{
        PartnerChange as C, PartnerCondition, PartnerField, PartnerQuery, PartnerRow, PartnerSet,
        StringParameter,
    };

    for name in ["b", "B", "a", "_z"] {
        s.insert_role(&role(name)).await.expect("insert");
    }
    let roles = names(s.roles().await.expect("roles"), |r| r.name.as_str().to_owned());
    assert_eq!(roles, ["API.invoke", "B", "ESBMessaging.send", "_z", "a", "b"]);

    let changes: Vec<_> = ["b", "B", "a", "_z"]
        .into_iter()
        .map(|id| {
            C::InsertString(StringParameter {
                pid: "P".into(),
                id: id.into(),
                value: "v".into(),
                audit: audit(1),
            })
        })
        .collect();
    s.apply_partner_changes(&changes).await.expect("params");
    let q = PartnerQuery {
        set: PartnerSet::StringParameters,
        conditions: vec![PartnerCondition {
            field: PartnerField::Id,
            op: CmpOp::Gt,
            value: Literal::Text("B".into()),
        }],
        order_by: Some((PartnerField::Id, false)),
        top: 10,
        skip: 0,
    };
    let (rows, total) = s.query_partners(&q).await.expect("query");
    let ids = names(rows, |r| match r {
        PartnerRow::String(p) => p.id,
        other => panic!("{other:?}"),
    });
    assert_eq!((ids, total), (vec!["_z".to_owned(), "a".into(), "b".into()], 3));

    let mpls: Vec<_> = ["b", "B", "a"]
        .into_iter()
        .enumerate()
        .map(|(i, sender)| Mpl {
            guid: format!("g{i}"),
            flow_id: "f".into(),
            status: MplStatus::Completed,
            user: "u".into(),
            sender: sender.into(),
            receiver: String::new(),
            log_start: 1,
            log_end: 2,
            http_status: 200,
            error: None,
            denial: None,
        })
        .collect();
    s.insert_mpls(&mpls).await.expect("insert");
    let q = MplQuery {
        conditions: vec![],
        order_by: Some((MplField::Sender, false)),
        top: 10,
        skip: 0,
    };
    let senders = names(s.query_mpls(&q).await.expect("query"), |m| m.sender);
    assert_eq!(senders, ["B", "a", "b"]);
}

async fn users_hold_roles_and_role_descriptions_change(s: &dyn Store) {
    let send = RoleName::parse(ROLE_SEND).expect("valid");
    let orders = RoleName::parse("Orders.Send").expect("valid");
    assert!(
        !s.update_role_description("Orders.Send", "new", 7)
            .await
            .expect("update")
    );
    s.insert_role(&role("Orders.Send")).await.expect("role");
    assert!(
        s.update_role_description("Orders.Send", "new", 7)
            .await
            .expect("update")
    );
    let r = s.role("Orders.Send").await.expect("read").expect("exists");
    assert_eq!(
        (r.description.as_str(), r.modified_at, r.builtin),
        ("new", 7, false)
    );
    assert_eq!(s.role("Nope").await.expect("read"), None);

    let mut bob = TechnicalUser {
        name: UserName::parse("Bob").expect("valid"),
        password_phc: "phc1".into(),
        roles: vec![send.clone(), orders.clone()],
        created_at: 5,
    };
    s.insert_user(&bob).await.expect("insert");
    assert_eq!(
        s.insert_user(&bob).await,
        Err(Error::Conflict("already exists".into()))
    );
    assert_eq!(s.user("bob").await.expect("read"), Some(bob.clone()));
    let usage = s
        .delete_role("Orders.Send")
        .await
        .expect("delete")
        .expect("exists");
    assert_eq!(usage.users, vec!["bob".to_string()]);

    bob.password_phc = "phc2".into();
    bob.roles = vec![orders.clone(), orders.clone()];
    assert!(s.update_user(&bob).await.expect("update"));
    bob.roles = vec![orders];
    assert_eq!(s.users().await.expect("users"), vec![bob.clone()]);
    let ghost = TechnicalUser {
        name: UserName::parse("ghost").expect("valid"),
        ..bob.clone()
    };
    assert!(!s.update_user(&ghost).await.expect("update"));
    assert_eq!(s.user("ghost").await.expect("read"), None);

    assert!(s.delete_user("bob").await.expect("delete"));
    assert!(!s.delete_user("bob").await.expect("delete"));
    assert_eq!(
        s.delete_role("Orders.Send").await.expect("delete"),
        Some(RoleUsage::default())
    );
}

async fn flows_replace_and_keep_addresses_unique(s: &dyn Store) {
    let flow = |id: &str, yaml: &str| StoredFlow {
        id: FlowId::parse(id).expect("valid"),
        yaml: yaml.into(),
        deployed_at: 1,
        deployed_by: "admin".into(),
    };
    let roles = ["Orders.Send".to_owned(), "Orders.Send".to_owned()];
    assert!(
        s.put_flow(&flow("orders", "a"), "/orders", &roles)
            .await
            .expect("deploy")
    );
    let usage = s.delete_role("Orders.Send").await.expect("delete").expect("used");
    assert_eq!(usage.flows, vec!["orders".to_string()]);
    assert!(
        !s.put_flow(&flow("orders", "b"), "/orders", &[])
            .await
            .expect("redeploy")
    );
    assert_eq!(s.flows().await.expect("flows"), vec![flow("orders", "b")]);
    assert_eq!(s.delete_role("Orders.Send").await.expect("delete"), None);
    assert_eq!(
        s.put_flow(&flow("other", "c"), "/orders", &[]).await,
        Err(Error::Conflict(
            "address /orders is already served by flow orders".into()
        ))
    );
    assert!(s.delete_flow("orders").await.expect("undeploy"));
    assert!(!s.delete_flow("orders").await.expect("undeploy"));
    assert!(
        s.put_flow(&flow("other", "c"), "/orders", &[])
            .await
            .expect("the address is free")
    );
}

async fn certificate_keys_bind_one_certificate(s: &dyn Store) {
    s.insert_instance(&instance("i1", &[ROLE_SEND]))
        .await
        .expect("instance");
    let key = |name: &str| ServiceKey {
        instance: InstanceName::parse("i1").expect("valid"),
        name: KeyName::parse(name).expect("valid"),
        key_type: KeyType::CertificateExternal,
        secret_hash: vec![],
        certificate: Some(BoundCertificate {
            pem: "-----BEGIN CERTIFICATE-----".into(),
            sha256: [9; 32],
            not_after: 99,
        }),
        expires_at: None,
        created_at: 3,
        created_by: "admin".into(),
    };
    s.insert_key(&key("k1")).await.expect("key");
    assert_eq!(
        s.insert_key(&key("k2")).await,
        Err(Error::Conflict("already exists".into()))
    );
    assert_eq!(s.keys(None).await.expect("keys"), vec![key("k1")]);
    assert!(s.delete_key("i1", "k1").await.expect("delete"));
    assert!(!s.delete_key("i1", "k1").await.expect("delete"));
    s.insert_key(&key("k2")).await.expect("the certificate is free");
}

async fn token_keys_rotate_to_one_current_key_and_purge(s: &dyn Store) {
    let key = |kid: &str, at: i64| TokenKey {
        kid: kid.into(),
        alg: "EdDSA".into(),
        private_enc: vec![1, 2, 0, 255],
        public_key: vec![3],
        created_at: at,
        retired_at: None,
    };
    s.rotate_token_key(&key("k1", 10)).await.expect("rotate");
    s.rotate_token_key(&key("k2", 20)).await.expect("rotate");
    let retired = TokenKey {
        retired_at: Some(20),
        ..key("k1", 10)
    };
    assert_eq!(s.token_keys().await.expect("keys"), vec![retired, key("k2", 20)]);
    assert_eq!(s.purge_token_keys(20).await.expect("purge"), 0);
    assert_eq!(s.purge_token_keys(21).await.expect("purge"), 1);
    assert_eq!(s.token_keys().await.expect("keys"), vec![key("k2", 20)]);

    // Rotations at the same moment (two nodes) still leave exactly one current key.
    let (k3, k4, k5) = (key("k3", 30), key("k4", 30), key("k5", 30));
    let (a, b, c) = tokio::join!(
        s.rotate_token_key(&k3),
        s.rotate_token_key(&k4),
        s.rotate_token_key(&k5)
    );
    a.and(b).and(c).expect("rotate");
    let current = s
        .token_keys()
        .await
        .expect("keys")
        .into_iter()
        .filter(|k| k.retired_at.is_none())
        .count();
    assert_eq!(current, 1);
}

async fn the_first_local_ca_stored_wins(s: &dyn Store) {
    use postern_core::model::StoredCa;
    assert_eq!(s.local_ca().await.expect("ca"), None);
    let ca = |n: u8| StoredCa {
        cert_pem: format!("cert {n}"),
        key_enc: vec![n; 40],
        created_at: i64::from(n),
    };
    // Nodes starting together on an empty database each offer theirs; all get the same one.
    let (one, two, three) = (ca(1), ca(2), ca(3));
    let (a, b, c) = tokio::join!(
        s.init_local_ca(&one),
        s.init_local_ca(&two),
        s.init_local_ca(&three)
    );
    let (a, b, c) = (a.expect("a"), b.expect("b"), c.expect("c"));
    assert_eq!(a, b);
    assert_eq!(b, c);
    assert_eq!(s.local_ca().await.expect("ca"), Some(a.clone()));
    assert_eq!(s.init_local_ca(&ca(9)).await.expect("again"), a);
}

async fn trusted_cas_and_cert_mappings_are_unique_by_certificate(s: &dyn Store) {
    let ca = TrustedCa {
        sha256: [1; 32],
        pem: "pem".into(),
        subject: "CN=CA".into(),
        not_after: 9,
        created_at: 1,
        created_by: "admin".into(),
    };
    s.insert_trusted_ca(&ca).await.expect("insert");
    assert_eq!(
        s.insert_trusted_ca(&ca).await,
        Err(Error::Conflict("already exists".into()))
    );
    assert_eq!(s.trusted_cas().await.expect("cas"), vec![ca]);
    assert!(s.delete_trusted_ca(&[1; 32]).await.expect("delete"));
    assert!(!s.delete_trusted_ca(&[1; 32]).await.expect("delete"));

    let mapping = |id: &str, sha: u8, user: &str| CertMapping {
        id: id.into(),
        sha256: [sha; 32],
        user: user.into(),
        pem: "pem".into(),
        subject: "CN=x".into(),
        issuer: "CN=CA".into(),
        serial: "01".into(),
        not_after: 9,
        created_at: 1,
        created_by: "admin".into(),
    };
    s.insert_cert_mapping(&mapping("m1", 2, "bob"))
        .await
        .expect("insert");
    assert_eq!(
        s.insert_cert_mapping(&mapping("m9", 2, "carol")).await,
        Err(Error::Conflict("already exists".into()))
    );
    s.insert_cert_mapping(&mapping("m2", 3, "alice"))
        .await
        .expect("insert");
    assert_eq!(
        s.cert_mappings().await.expect("mappings"),
        vec![mapping("m2", 3, "alice"), mapping("m1", 2, "bob")]
    );
    assert!(s.delete_cert_mapping("m1").await.expect("delete"));
    assert!(!s.delete_cert_mapping("m1").await.expect("delete"));
}

async fn audit_pages_newest_first(s: &dyn Store) {
    let entry = |at: i64| AuditEntry {
        id: 0,
        at,
        actor: "admin".into(),
        action: "role.create".into(),
        target: format!("r{at}"),
        detail: "{}".into(),
        source: "127.0.0.1".into(),
    };
    s.append_audit(&(1..=5).map(entry).collect::<Vec<_>>())
        .await
        .expect("append");
    let page = s.audit(2, None).await.expect("audit");
    assert_eq!(page.iter().map(|e| e.at).collect::<Vec<_>>(), [5, 4]);
    assert!(page[0].id > page[1].id);
    assert_eq!(
        page[1],
        AuditEntry {
            id: page[1].id,
            ..entry(4)
        }
    );
    let rest = s.audit(10, Some(page[1].id)).await.expect("audit");
    assert_eq!(rest.iter().map(|e| e.at).collect::<Vec<_>>(), [3, 2, 1]);
}

async fn mpl_keeps_the_first_entry_of_a_guid(s: &dyn Store) {
    let mpl = |status, http_status, error: Option<&str>| Mpl {
        guid: "g1".into(),
        flow_id: "f".into(),
        status,
        user: "u".into(),
        sender: "S".into(),
        receiver: "R".into(),
        log_start: 1,
        log_end: 2,
        http_status,
        error: error.map(str::to_owned),
        denial: None,
    };
    let first = mpl(MplStatus::Failed, 500, Some("boom"));
    s.insert_mpls(&[first.clone(), mpl(MplStatus::Completed, 200, None)])
        .await
        .expect("insert");
    s.insert_mpls(&[mpl(MplStatus::Completed, 200, None)])
        .await
        .expect("insert");
    let q = MplQuery {
        conditions: vec![Condition {
            field: MplField::MessageGuid,
            op: CmpOp::Eq,
            value: Literal::Text("g1".into()),
        }],
        order_by: None,
        top: 10,
        skip: 0,
    };
    assert_eq!(s.query_mpls(&q).await.expect("query"), vec![first]);
}

async fn partner_directory_pages_updates_and_names_the_failing_change(s: &dyn Store) {
    use postern_core::partner::{
        AlternativePartner, BinaryParameter, PartnerChange as C, PartnerCondition, PartnerDelta,
        PartnerField, PartnerQuery, PartnerRow, PartnerSet, StringParameter,
    };

    let param = |id: &str, at: i64| StringParameter {
        pid: "P".into(),
        id: id.into(),
        value: "v".into(),
        audit: audit(at),
    };
    let inserts: Vec<_> = (1..=5)
        .map(|i| C::InsertString(param(&format!("p{i}"), i)))
        .collect();
    s.apply_partner_changes(&inserts).await.expect("insert");
    let page = |skip| PartnerQuery {
        set: PartnerSet::StringParameters,
        conditions: vec![PartnerCondition {
            field: PartnerField::CreatedTime,
            op: CmpOp::Ge,
            value: Literal::Time(3),
        }],
        order_by: Some((PartnerField::CreatedTime, true)),
        top: 2,
        skip,
    };
    let ids = |rows: Vec<PartnerRow>| {
        names(rows, |r| match r {
            PartnerRow::String(p) => p.id,
            other => panic!("{other:?}"),
        })
    };
    let (rows, total) = s.query_partners(&page(0)).await.expect("query");
    assert_eq!((ids(rows), total), (vec!["p5".to_owned(), "p4".into()], 3));
    let (rows, total) = s.query_partners(&page(2)).await.expect("query");
    assert_eq!((ids(rows), total), (vec!["p3".to_owned()], 3));

    // A failing change set names the change and leaves nothing behind.
    let e = s
        .apply_partner_changes(&[
            C::InsertString(param("p6", 6)),
            C::UpdateString(param("missing", 6)),
        ])
        .await;
    assert_eq!(
        e,
        Err(Error::NotFound(
            "StringParameters(Pid='P',Id='missing') (change 2)".into()
        ))
    );
    assert_eq!(s.string_parameters().await.expect("params").len(), 5);
    assert_eq!(
        s.apply_partner_changes(&[C::DeleteUser {
            user: "nobody".into()
        }])
        .await,
        Err(Error::NotFound("AuthorizedUsers('nobody')".into()))
    );

    let alt = |id: &str, pid: &str| AlternativePartner {
        agency: "016".into(),
        scheme: "DUNS".into(),
        id: id.into(),
        pid: pid.into(),
        audit: audit(7),
    };
    s.apply_partner_changes(&[
        C::InsertAlternative(alt("1", "P")),
        C::InsertAlternative(alt("2", "Q")),
    ])
    .await
    .expect("alternatives");
    assert_eq!(
        s.apply_partner_changes(&[C::UpdateAlternative(alt("2", "P"))])
            .await,
        Err(Error::Conflict(
            "partner P already has an alternative partner of agency 016 and scheme DUNS".into()
        ))
    );

    let bin = |content_type: &str, value: Vec<u8>| BinaryParameter {
        pid: "P".into(),
        id: "b".into(),
        content_type: content_type.into(),
        value,
        audit: audit(8),
    };
    s.apply_partner_changes(&[C::InsertBinary(bin("xsd", vec![0, 1, 2, 255]))])
        .await
        .expect("binary");
    let deltas = s
        .apply_partner_changes(&[
            C::UpdateString(StringParameter {
                value: "w".into(),
                ..param("p1", 9)
            }),
            C::UpdateBinary(bin("xml", vec![7])),
        ])
        .await
        .expect("update");
    assert_eq!(
        deltas,
        [
            PartnerDelta::String {
                pid: "P".into(),
                id: "p1".into(),
                value: Some("w".into())
            },
            PartnerDelta::Binary {
                pid: "P".into(),
                id: "b".into()
            },
        ]
    );
    let binaries = PartnerQuery {
        set: PartnerSet::BinaryParameters,
        conditions: vec![],
        order_by: None,
        top: 10,
        skip: 0,
    };
    let (rows, total) = s.query_partners(&binaries).await.expect("query");
    assert_eq!((rows, total), (vec![PartnerRow::Binary(bin("xml", vec![7]))], 1));
}

async fn console_sessions_expire_and_end(s: &dyn Store) {
    use crate::ConsoleSession;
    let session = |n: u8, expires_at: i64| ConsoleSession {
        id_hash: vec![n; 32],
        user: "admin".into(),
        csrf: format!("csrf{n}"),
        created_at: 10,
        expires_at,
    };
    s.insert_session(&session(1, 100)).await.expect("insert");
    s.insert_session(&session(2, 200)).await.expect("insert");
    assert!(
        s.insert_session(&session(2, 300)).await.is_err(),
        "ids are unique"
    );
    assert_eq!(s.session(&[1; 32], 50).await.expect("get"), Some(session(1, 100)));
    assert_eq!(s.session(&[1; 32], 100).await.expect("get"), None, "expired");
    assert_eq!(s.session(&[3; 32], 50).await.expect("get"), None);
    assert_eq!(s.purge_sessions(150).await.expect("purge"), 1);
    assert!(s.delete_session(&[2; 32]).await.expect("delete"));
    assert!(!s.delete_session(&[2; 32]).await.expect("delete"));
    assert_eq!(s.session(&[2; 32], 50).await.expect("get"), None);
}

fn queued(guid: &str, partner: &str, at: i64, key: Option<&str>) -> crate::queue::NewQueued {
    use crate::queue::{NewQueued, QueueStatus, QueuedMessage};
    NewQueued {
        message: QueuedMessage {
            guid: guid.into(),
            queue: "orders".into(),
            flow_id: "f1".into(),
            partner: partner.into(),
            user: "u".into(),
            ordered: true,
            method: "POST".into(),
            url: "http://127.0.0.1:9/x".into(),
            headers: vec![("content-type".into(), "text/xml".into())],
            body: b"<a/>".to_vec(),
            status: QueueStatus::Queued,
            attempts: 0,
            next_attempt_at: at,
            created_at: at,
            updated_at: at,
            last_error: None,
            last_http_status: None,
            idempotency_key: key.map(str::to_owned),
        },
        mpl: Mpl {
            guid: guid.into(),
            flow_id: "f1".into(),
            status: MplStatus::Processing,
            user: "u".into(),
            sender: partner.into(),
            receiver: String::new(),
            log_start: at,
            log_end: at,
            http_status: 202,
            error: None,
            denial: None,
        },
        idempotent_since: at - 1000,
    }
}

async fn mpl_status_of(s: &dyn Store, guid: &str) -> MplStatus {
    let q = MplQuery {
        conditions: vec![Condition {
            field: MplField::MessageGuid,
            op: CmpOp::Eq,
            value: Literal::Text(guid.into()),
        }],
        order_by: None,
        top: 1,
        skip: 0,
    };
    s.query_mpls(&q).await.expect("query")[0].status
}

async fn queue_stores_leases_retries_and_dedupes(s: &dyn Store) {
    use crate::queue::{Attempted, Enqueued, QueueStatus};
    let out = s
        .enqueue(&[
            queued("g1", "ACME", 1000, Some("k1")),
            queued("g2", "ACME", 1001, None),
            queued("g3", "GLOBEX", 1002, None),
        ])
        .await
        .expect("enqueue");
    assert_eq!(out, vec![Enqueued::Stored; 3]);
    // The same key within its window answers with the first message; after it, a new one.
    let again = s
        .enqueue(&[queued("g4", "ACME", 1500, Some("k1"))])
        .await
        .expect("enqueue");
    assert_eq!(
        again,
        vec![Enqueued::Duplicate {
            guid: "g1".into(),
            status: QueueStatus::Queued
        }]
    );
    assert_eq!(mpl_status_of(s, "g1").await, MplStatus::Processing);

    // Ordered: ACME's second message waits for its first; GLOBEX's goes.
    let claimed = s.claim_due("n1", 2000, 62_000, 10).await.expect("claim");
    let guids: Vec<_> = claimed.iter().map(|m| m.guid.as_str()).collect();
    assert_eq!(guids, ["g1", "g3"]);
    assert_eq!(
        claimed[0].headers,
        [("content-type".to_owned(), "text/xml".to_owned())]
    );
    assert_eq!(claimed[0].body, b"<a/>");
    // Leased messages are not claimed again, by this node or another.
    assert!(
        s.claim_due("n2", 2001, 62_001, 10)
            .await
            .expect("claim")
            .is_empty()
    );

    let retry = Attempted {
        guid: "g1".into(),
        status: QueueStatus::Retry,
        mpl_status: MplStatus::Retry,
        next_attempt_at: 5000,
        error: Some("connection refused".into()),
        http_status: None,
        at: 2100,
    };
    assert!(s.record_attempt("n1", &retry).await.expect("attempt"));
    // Only the lease holder records.
    assert!(!s.record_attempt("n2", &retry).await.expect("attempt"));
    assert_eq!(mpl_status_of(s, "g1").await, MplStatus::Retry);
    let delivered = Attempted {
        guid: "g3".into(),
        status: QueueStatus::Delivered,
        mpl_status: MplStatus::Completed,
        next_attempt_at: 0,
        error: None,
        http_status: Some(200),
        at: 2200,
    };
    assert!(s.record_attempt("n1", &delivered).await.expect("attempt"));
    assert_eq!(mpl_status_of(s, "g3").await, MplStatus::Completed);
    // g1 is not due before 5000, and g2 still waits behind it.
    assert!(
        s.claim_due("n1", 3000, 63_000, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let claimed = s.claim_due("n2", 5000, 65_000, 10).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].guid.as_str(), claimed[0].attempts), ("g1", 1));
    let dead = Attempted {
        guid: "g1".into(),
        status: QueueStatus::Dead,
        mpl_status: MplStatus::Failed,
        next_attempt_at: 0,
        error: Some("gave up".into()),
        http_status: Some(503),
        at: 5100,
    };
    assert!(s.record_attempt("n2", &dead).await.expect("attempt"));
    // A dead message no longer holds its partner's queue.
    let claimed = s.claim_due("n1", 5200, 65_200, 10).await.expect("claim");
    assert_eq!(
        claimed.iter().map(|m| m.guid.as_str()).collect::<Vec<_>>(),
        ["g2"]
    );

    let g1 = s.queued("g1").await.expect("read").expect("there");
    assert_eq!(
        (g1.status, g1.attempts, g1.last_http_status),
        (QueueStatus::Dead, 2, Some(503))
    );
    assert_eq!(g1.last_error.as_deref(), Some("gave up"));
    let dead_list = s
        .queued_list(Some("orders"), Some(QueueStatus::Dead), 10, 0)
        .await
        .expect("list");
    assert_eq!(dead_list.len(), 1);
    assert_eq!(s.queued_list(None, None, 2, 0).await.expect("list").len(), 2);
    let counts = s.queue_counts().await.expect("counts");
    assert!(
        counts
            .iter()
            .any(|c| c.status == QueueStatus::Dead && c.count == 1)
    );

    assert!(s.retry_queued("g1", 6000).await.expect("retry"));
    assert!(
        !s.retry_queued("g3", 6000).await.expect("retry"),
        "delivered is final"
    );
    assert_eq!(mpl_status_of(s, "g1").await, MplStatus::Retry);
    let g1 = s.queued("g1").await.expect("read").expect("there");
    assert_eq!((g1.status, g1.attempts), (QueueStatus::Retry, 0));
    assert!(s.discard_queued("g1", 6100).await.expect("discard"));
    assert!(!s.discard_queued("g3", 6100).await.expect("discard"));
    assert_eq!(mpl_status_of(s, "g1").await, MplStatus::Discarded);

    // Pruning: delivered/discarded rows without a key go; a key keeps its row until it expires.
    s.prune_queue(10_000, 0).await.expect("prune");
    assert!(s.queued("g3").await.expect("read").is_none());
    let kept = s.queued("g1").await.expect("read").expect("key keeps the row");
    assert!(kept.body.is_empty());
    s.prune_queue(10_000, 10_000).await.expect("prune");
    assert!(s.queued("g1").await.expect("read").is_none());
    assert!(
        s.queued("g2").await.expect("read").is_some(),
        "pending messages stay"
    );
}

async fn credentials_are_replaced_by_name(s: &dyn Store) {
    use postern_core::model::StoredCredential;
    let c = |user: &str, at: i64| StoredCredential {
        name: "erp".into(),
        kind: "basic".into(),
        user: user.into(),
        certificate: String::new(),
        secret_enc: vec![1, 2, 3],
        modified_at: at,
        modified_by: "admin".into(),
    };
    assert!(s.put_credential(&c("u1", 1)).await.expect("put"));
    assert!(
        !s.put_credential(&c("u2", 2)).await.expect("put"),
        "replaced, not new"
    );
    assert_eq!(s.credentials().await.expect("list"), vec![c("u2", 2)]);
    assert!(s.delete_credential("erp").await.expect("delete"));
    assert!(!s.delete_credential("erp").await.expect("delete"));
    assert!(s.credentials().await.expect("list").is_empty());
}

#[test]
fn mpl_batches_split_into_the_prepared_statement_sizes() {
    for n in 1..2000 {
        let (mut left, mut statements) = (n, 0);
        while left > 0 {
            let (size, sql) = super::mpl_insert(left);
            assert!(
                super::MPL_CHUNKS.contains(&size) && size <= left,
                "{n}: chunk {size}"
            );
            assert_eq!(sql.matches('?').count(), size * super::MPL_COLUMNS, "{n}: {size}");
            left -= size;
            statements += 1;
        }
        assert!(statements <= n / 256 + 8, "{n} rows took {statements} statements");
    }
}
