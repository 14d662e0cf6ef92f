//! Health follows the database: `grpc.health.v1` reports the overall server and every service
//! NOT_SERVING while the storage refuses writes or the database cannot be reached, and SERVING
//! again once it recovers, without a restart. Seen through `Watch` streams opened before the
//! fault, so every transition is on record.

use membership_service::pb;
use membership_service::storage::Store;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::common::*;

/// A user whose row needs pages of its own (its bio is larger than a SQLite page).
fn big_user(i: usize) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        bio: "x".repeat(5000),
        ..new_user(&format!("big{i}@full.test"))
    }
}

/// Caps the file at the pages it has: no write that needs a new page fits any more. The pragma
/// holds for one connection: the server runs on a pool of exactly one.
async fn fill_up(store: &Store) {
    let pages = query_number(store, "PRAGMA page_count").await;
    query_number(store, &format!("PRAGMA max_page_count = {pages}")).await;
}

async fn make_room(store: &Store) {
    query_number(store, "PRAGMA max_page_count = 1073741823").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_storage_is_not_serving_until_it_has_room_again() {
    with_deadline(async {
        let Some(srv) = TestServer::start_with(Engine::Sqlite, |c| c.db_max_connections = 1).await
        else {
            return;
        };
        let logs = HealthLog::open_all(&srv);
        wait_all(&logs, ServingStatus::Serving, &[0; 8]).await;
        assert_eq!(
            query_number(srv.store(), "PRAGMA freelist_count").await,
            0,
            "a new database has no free pages, so a cap at its size leaves no room"
        );

        // The service refuses the writes that need room, as STORAGE_FULL. (SQLite rolls back
        // the refused transaction and the pool replaces that connection, cap and all.)
        fill_up(srv.store()).await;
        let refused = expect_err(srv.directory().create_user(big_user(0)).await);
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert_eq!(reason(&refused).as_deref(), Some("STORAGE_FULL"));

        // Full, and health says so, for the server and every service, and keeps saying so
        // while nothing changes.
        fill_up(srv.store()).await;
        let mut down = Vec::new();
        for log in &logs {
            down.push(log.wait_until_last(ServingStatus::NotServing).await);
        }
        for service in HEALTH_SERVICES {
            assert_eq!(
                check_health(&srv, service).await,
                ServingStatus::NotServing,
                "{service:?}"
            );
        }
        for (log, down) in logs.iter().zip(&down) {
            assert_eq!(
                log.seen().len(),
                down + 1,
                "{}: {:?}",
                log.service,
                log.seen()
            );
        }

        make_room(srv.store()).await;
        wait_all(&logs, ServingStatus::Serving, &down).await;
        srv.directory()
            .create_user(big_user(1))
            .await
            .expect("a write once there is room again");
        assert_eq!(check_health(&srv, "").await, ServingStatus::Serving);
        srv.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_not_serving_until_it_is_back() {
    with_deadline(async {
        let Some(pg) = PrivatePostgres::start().await else {
            return;
        };
        let srv = TestServer::start_on(Engine::Postgres, &pg.url(), |_| {}).await;
        let logs = HealthLog::open_all(&srv);
        let start = wait_all(&logs, ServingStatus::Serving, &[0; 8]).await;

        pg.stop_immediate().await;
        let down = wait_all(&logs, ServingStatus::NotServing, &start).await;
        for service in HEALTH_SERVICES {
            assert_eq!(
                check_health(&srv, service).await,
                ServingStatus::NotServing,
                "{service:?}"
            );
        }

        pg.start_again().await;
        wait_all(&logs, ServingStatus::Serving, &down).await;
        create_user(&srv, "back@health.test").await;
        srv.stop().await;
    })
    .await
}
