//! What only the PostgreSQL backend has: its migrations in step with SQLite's, its connection
//! settings, its error mapping. The behaviour both backends share is tested on both in
//! `sqlite/tests.rs`.

use std::collections::BTreeSet;
use std::path::Path;

use postern_core::Error;
use postern_core::partner::{Audit, PartnerChange, StringParameter};

use super::{PgStore, test_db};
use crate::{ChangeStore, PartnerStore, RoleStore};

fn migration_names(dialect: &str) -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .into_string()
                .expect("UTF-8 file name")
        })
        .collect()
}

#[test]
fn both_dialects_have_the_same_migrations() {
    let sqlite = migration_names("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite,
        migration_names("postgres"),
        "every migration needs a file of the same name in migrations/sqlite and migrations/postgres"
    );
}

#[tokio::test]
async fn a_malformed_url_is_invalid_input() {
    let e = PgStore::open("postgres://host:port-is-not-a-number/db")
        .await
        .expect_err("malformed");
    assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
}

#[tokio::test]
async fn nodes_starting_together_migrate_once() {
    test_db::run(|store| async move {
        let options = store.pool.connect_options();
        let (a, b) = tokio::join!(
            PgStore::connect((*options).clone()),
            PgStore::connect((*options).clone())
        );
        let (a, b) = (a.expect("first node"), b.expect("second node"));
        assert_eq!(
            a.roles().await.expect("roles"),
            store.roles().await.expect("roles")
        );
        assert_eq!(
            b.roles().await.expect("roles").len(),
            2,
            "built-in roles seeded once"
        );
        a.close().await;
        b.close().await;
    })
    .await;
}

#[tokio::test]
async fn connections_name_themselves_postern() {
    test_db::run(|store| async move {
        let name: String = sqlx::query_scalar("SELECT current_setting('application_name')")
            .fetch_one(&store.pool)
            .await
            .expect("query");
        assert_eq!(name, "postern");
    })
    .await;
}

#[tokio::test]
async fn text_postgresql_cannot_store_is_invalid_input() {
    test_db::run(|store| async move {
        let p = StringParameter {
            pid: "ACME".into(),
            id: "Nul".into(),
            value: "a\0b".into(),
            audit: Audit {
                created_by: "admin".into(),
                created_at: 1,
                modified_by: "admin".into(),
                modified_at: 1,
            },
        };
        let e = store
            .apply_partner_changes(&[PartnerChange::InsertString(p)])
            .await
            .expect_err("NUL in text");
        assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    })
    .await;
}

#[tokio::test]
async fn pruning_the_change_feed_moves_its_horizon() {
    test_db::run(|store| async move {
        assert_eq!(store.pruned_through().await.expect("horizon"), 0);
        let role = postern_core::model::Role {
            name: postern_core::ids::RoleName::parse("Orders.Send").expect("name"),
            description: "d".into(),
            builtin: false,
            created_at: 1,
            modified_at: 1,
        };
        store.insert_role(&role).await.expect("insert");
        let last = store.last_change().await.expect("last");
        assert!(last > 0);
        assert_eq!(store.changes_after(0, 0, 100).await.expect("changes").len(), 1);
        // Nothing is old enough yet.
        assert_eq!(store.prune_changes(3_600_000).await.expect("prune"), 0);
        assert_eq!(store.pruned_through().await.expect("horizon"), 0);
        assert_eq!(store.prune_changes(0).await.expect("prune"), 1);
        assert_eq!(store.pruned_through().await.expect("horizon"), last);
        // The feed is empty, but the position a new node starts from does not go back.
        assert!(store.changes_after(0, 0, 100).await.expect("changes").is_empty());
        assert_eq!(store.last_change().await.expect("last"), last);
    })
    .await;
}
