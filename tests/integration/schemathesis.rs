//! schemathesis against `/openapi.json` of a real server: generated requests to every route
//! (valid and invalid), and no answer may be a 5xx or fall outside its documented schema.
//! Needs `target/venv/bin/schemathesis` (scripts/test.sh installs it and sets
//! `REQUIRE_SCHEMATHESIS=1`); without it and without that variable it is skipped with a message.

use std::path::PathBuf;

use crate::common::pb::MembershipRole;
use crate::common::{
    ADMIN_KEY, Engine, TestServer, add_member, create_org, create_team, create_user, with_deadline,
};

fn schemathesis() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/venv/bin/schemathesis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_routes_hold_their_schema() {
    with_deadline(async {
        let bin = schemathesis();
        if !bin.exists() {
            assert!(
                std::env::var_os("REQUIRE_SCHEMATHESIS").is_none(),
                "REQUIRE_SCHEMATHESIS is set but {} is missing",
                bin.display()
            );
            eprintln!(
                "skipping schemathesis: install it with `target/venv/bin/pip install \
                 schemathesis` (or set REQUIRE_SCHEMATHESIS=1 to fail)"
            );
            return;
        }
        let Some(srv) = TestServer::start(Engine::Sqlite).await else {
            return;
        };
        // Some data for the generated ids to hit now and then (ids are small integers).
        let org = create_org(&srv, "fuzz").await;
        let team = create_team(&srv, org.id, "fuzz-team").await;
        for n in 0..3 {
            let user = create_user(&srv, &format!("u{n}@fuzz.dev")).await;
            add_member(&srv, org.id, user.id, MembershipRole::Owner).await;
            add_member(&srv, team.id, user.id, MembershipRole::Member).await;
        }
        let output = tokio::process::Command::new(&bin)
            .args([
                "run",
                &format!("http://{}/openapi.json", srv.addr),
                "--checks",
                "not_a_server_error,response_schema_conformance",
                "-H",
                &format!("Authorization: Bearer {ADMIN_KEY}"),
                "--max-examples",
                "20",
                "--seed",
                "1",
                "--phases",
                "examples,coverage,fuzzing",
            ])
            .env("NO_COLOR", "1")
            // It keeps a cache folder in its working directory: not in the checkout.
            .current_dir(std::env::temp_dir())
            .output()
            .await
            .expect("run schemathesis");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "schemathesis found failures ({}):\n{stdout}\n{stderr}",
            output.status
        );
        // Every route was exercised (the document lists 18 operations).
        assert!(stdout.contains("Tested: 18"), "{stdout}");
    })
    .await
}
