//! The Clerk Backend SDK (`@clerk/backend`, tests/sdk/clerk), unchanged but for its base URL,
//! against a real server: create, list, update, metadata merge and delete of memberships.
//! Needs `npm ci` in tests/sdk/clerk (scripts/test.sh runs it and sets `REQUIRE_SDK=1`);
//! without node_modules and without `REQUIRE_SDK` it is skipped with a message.

use std::path::PathBuf;

use crate::common::pb::MembershipRole;
use crate::common::{
    ADMIN_KEY, Engine, TestServer, add_member, create_org, create_user, with_deadline,
};

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/clerk")
}

async fn clerk_sdk(engine: Engine) {
    let dir = sdk_dir();
    if !dir.join("node_modules/@clerk/backend").exists() {
        assert!(
            std::env::var_os("REQUIRE_SDK").is_none(),
            "REQUIRE_SDK is set but {} has no node_modules: run `npm ci` there",
            dir.display()
        );
        eprintln!(
            "skipping the Clerk SDK test: run `npm ci` in {} (or set REQUIRE_SDK=1 to fail)",
            dir.display()
        );
        return;
    }
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "sdk").await;
    let owner = create_user(&srv, "owner@sdk.dev").await;
    add_member(&srv, org.id, owner.id, MembershipRole::Owner).await;
    let user = create_user(&srv, "alexis@sdk.dev").await;
    let output = tokio::process::Command::new("node")
        .arg("run.mjs")
        .current_dir(&dir)
        .env("CLERK_API_URL", format!("http://{}", srv.addr))
        .env("CLERK_SECRET_KEY", ADMIN_KEY)
        .env("ORG_ID", org.id.to_string())
        .env("USER_ID", user.id.to_string())
        .output()
        .await
        .expect("run node (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("clerk sdk ok"), "{stdout}\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clerk_sdk_sqlite() {
    with_deadline(clerk_sdk(Engine::Sqlite)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clerk_sdk_postgres() {
    with_deadline(clerk_sdk(Engine::Postgres)).await
}
