//! First start: make sure an administrator exists.

use postern_auth::admin::create_user;
use postern_auth::secret::new_password;
use postern_core::Result;
use postern_core::model::ROLE_ADMIN;
use postern_store::{Ctx, Store};

/// The bootstrap administrator's name.
pub const ADMIN_USER: &str = "admin";

/// Creates the user `admin` with `Postern.Admin` when no user holds that role. Uses `password`
/// when given, otherwise generates one and returns it (to be shown once).
pub async fn ensure_admin(store: &dyn Store, password: Option<&str>, now: i64) -> Result<Option<String>> {
    let users = store.users().await?;
    if users
        .iter()
        .any(|u| u.roles.iter().any(|r| r.as_str() == ROLE_ADMIN))
    {
        return Ok(None);
    }
    let (password, generated) = match password {
        Some(p) => (p.to_owned(), false),
        None => (new_password(), true),
    };
    let ctx = Ctx {
        store,
        actor: "bootstrap",
        source: "-",
        now,
    };
    if users.iter().any(|u| u.name.as_str() == ADMIN_USER) {
        postern_auth::admin::update_user(&ctx, ADMIN_USER, Some(&password), Some(&[ROLE_ADMIN.to_owned()]))
            .await?;
    } else {
        create_user(&ctx, ADMIN_USER, &password, &[ROLE_ADMIN.to_owned()]).await?;
    }
    Ok(generated.then_some(password))
}
