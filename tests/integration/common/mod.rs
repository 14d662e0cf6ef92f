//! What every integration test shares, re-exported here (`use crate::common::*;`, or name what
//! a module needs):
//! - `database`: one fresh database per test on the chosen engine;
//! - `server`: a real server on `127.0.0.1:0` over it, and clients that carry an API key;
//! - `fixtures`: the users, organizations, teams, memberships, roles and keys a test starts from;
//! - `events`: the event log, read back;
//! - `status` and `values`: the error details to check, the request values to build;
//! - `health`: `grpc.health.v1` watched per service, and waits for a status;
//! - `private_postgres`: a PostgreSQL server of the test's own, to stop, kill and restart;
//! - `engine_tests!`: one test per engine for each test body.
//!
//! Environment:
//! - `TEST_ENGINES`: comma list of engines to run (default `sqlite,postgres,mysql`).
//! - `REQUIRE_ENGINES=1`: an unreachable listed engine fails the test instead of skipping it.
//! - `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`) and
//!   `TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`): a database on the server
//!   that the harness connects to in order to create and drop one `t_…` database per test.
//! - `TEST_TIMEOUT_SECS`: per-test deadline of `engine_tests!` tests (default 180).

mod database;
mod events;
mod files;
mod fixtures;
mod health;
mod private_postgres;
mod server;
mod status;
mod values;

use std::future::Future;
use std::time::Duration;

pub use database::{Engine, query_number};
pub use events::*;
pub use files::{TempDir, grpcurl};
pub use fixtures::*;
pub use health::*;
pub use membership_service::pb;
pub use private_postgres::PrivatePostgres;
pub use server::{ADMIN_KEY, Auth, AuthChannel, TestServer, auth};
pub use status::*;
pub use values::*;

/// Generates one test per engine for each named `async fn name(engine: Engine)`:
/// `engine_tests!(a, b);` gives `a::sqlite`, `a::postgres`, `a::mysql`, `b::sqlite`, ….
#[macro_export]
macro_rules! engine_tests {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::common::with_deadline(super::$name($crate::common::Engine::Sqlite)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::common::with_deadline(super::$name($crate::common::Engine::Postgres)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() {
                $crate::common::with_deadline(super::$name($crate::common::Engine::Mysql)).await
            }
        }
    )+};
}

/// Runs a test body with the `TEST_TIMEOUT_SECS` deadline, so a hung test fails instead of
/// stalling the whole run.
pub async fn with_deadline(test: impl Future<Output = ()>) {
    let secs = std::env::var("TEST_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    if tokio::time::timeout(Duration::from_secs(secs), test)
        .await
        .is_err()
    {
        panic!("test did not finish within {secs}s (TEST_TIMEOUT_SECS)");
    }
}
