//! An OK means committed, also when the disk fills: on SQLite, `PRAGMA max_page_count` makes the
//! database "full" on demand (no root, no tmpfs). Every write acknowledged before, during and
//! after the full spell is in the file after a restart; every refused one is absent; writes work
//! again once the limit is raised, without restarting.

use membership_service::domain::DomainError;
use membership_service::domain::model::Actor;
use membership_service::domain::users::NewUser;
use membership_service::storage::Store;
use sea_orm::ConnectionTrait;

use crate::common::{TempDir, query_number};

/// A user with a bio large enough that a few writes need new pages.
fn user(i: usize) -> NewUser {
    NewUser {
        email: format!("u{i}@full.test"),
        username: None,
        name: format!("User {i}"),
        first_name: String::new(),
        last_name: String::new(),
        avatar_url: String::new(),
        bio: "x".repeat(3000),
        metadata: Default::default(),
    }
}

async fn page_count(store: &Store) -> i64 {
    query_number(store, "PRAGMA page_count").await
}

async fn user_count(store: &Store) -> i64 {
    query_number(store, "SELECT COUNT(*) FROM users").await
}

/// Caps the file at its current size plus `spare` pages, on the pool's only connection (the
/// pragma is per connection; a discarded connection's replacement starts without it).
async fn cap(store: &Store, spare: i64) {
    let pages = page_count(store).await;
    store
        .conn()
        .execute_unprepared(&format!("PRAGMA max_page_count = {}", pages + spare))
        .await
        .expect("max_page_count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_no_acknowledged_write() {
    let dir = TempDir::new("full-disk");
    let url = dir.sqlite_url("m.db");
    let store = Store::connect(&url, 1).await.expect("connect");
    store.migrate().await.expect("migrate");
    let actor = Actor::default();
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    let mut next = 0;

    // Fill up: writes succeed until the cap, then each is refused as STORAGE_FULL. The cap is
    // put back after every refusal, so the database stays "full" for the whole spell.
    cap(&store, 4).await;
    while refused.len() < 5 {
        assert!(next < 500, "the cap never filled the database");
        let email = format!("u{next}@full.test");
        match store.create_user(&actor, user(next)).await {
            Ok(written) => acknowledged.push((written.value.id, email)),
            Err(DomainError::StorageFull) => {
                refused.push(email);
                cap(&store, 0).await;
            }
            Err(other) => panic!("write {next}: expected STORAGE_FULL, got {other:?}"),
        }
        next += 1;
    }
    assert!(!acknowledged.is_empty(), "some writes fit before the cap");

    // The limit is raised: writes work again, on the same store.
    store
        .conn()
        .execute_unprepared("PRAGMA max_page_count = 1073741823")
        .await
        .expect("raise the cap");
    for _ in 0..3 {
        let email = format!("u{next}@full.test");
        let written = store
            .create_user(&actor, user(next))
            .await
            .unwrap_or_else(|e| panic!("write {next} after the cap was raised: {e:?}"));
        acknowledged.push((written.value.id, email));
        next += 1;
    }
    store.close().await.expect("close");

    // A restart: what was acknowledged is there, what was refused is not.
    let reopened = Store::connect(&url, 1).await.expect("reopen");
    for (id, email) in &acknowledged {
        let user = reopened
            .get_user(*id)
            .await
            .unwrap_or_else(|e| panic!("acknowledged user {id} ({email}) is gone: {e:?}"));
        assert_eq!(&user.email, email);
    }
    let count = user_count(&reopened).await;
    assert_eq!(
        count as usize,
        acknowledged.len(),
        "exactly the acknowledged users are stored (refused: {refused:?})"
    );
    reopened.close().await.expect("close");
}

/// A database that refuses writes (SQLite's `query_only`, as a read-only file would: root, who
/// runs CI, may write any file) makes writes UNAVAILABLE, keeps nothing of them, and the same
/// store writes again once the file takes writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_is_unavailable_then_recovers() {
    let dir = TempDir::new("read-only");
    let url = dir.sqlite_url("m.db");
    let store = Store::connect(&url, 1).await.expect("connect");
    store.migrate().await.expect("migrate");
    let actor = Actor::default();
    store
        .conn()
        .execute_unprepared("PRAGMA query_only = 1")
        .await
        .expect("query_only");
    for i in 0..3 {
        match store.create_user(&actor, user(i)).await {
            Err(DomainError::Unavailable) => {}
            other => panic!("write {i} on a read-only database: {other:?}"),
        }
    }
    store
        .conn()
        .execute_unprepared("PRAGMA query_only = 0")
        .await
        .expect("writable again");
    let written = store
        .create_user(&actor, user(10))
        .await
        .expect("a write once the database takes writes");
    assert_eq!(
        user_count(&store).await,
        1,
        "only the write after recovery was kept"
    );
    assert_eq!(written.value.email, "u10@full.test");
    store.close().await.expect("close");
}
