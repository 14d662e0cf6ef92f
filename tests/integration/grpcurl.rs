//! The real `grpcurl` against the built binary: reflection, health, JSON names and readable
//! error details, as an operator sees them.
//!
//! `grpcurl` is looked up as `$GRPCURL`, then on `PATH`. Missing: the tests are skipped with a
//! note, or fail when `REQUIRE_GRPCURL=1`.

use crate::common::grpcurl;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

const KEY: &str = "mk_grpcurl_admin_key_0123456789";
const BINARY: &str = env!("CARGO_BIN_EXE_membership-service");

/// A `membership-service serve` child process on a SQLite file in its own temp dir.
struct Service {
    child: Child,
    addr: String,
    dir: PathBuf,
    grpcurl: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Service {
    /// Starts the service and waits until health reports SERVING; `None` when grpcurl is missing.
    fn start() -> Option<Service> {
        let grpcurl = grpcurl()?;
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "membership-grpcurl-{}-{}-{:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        ));
        // The port is free when picked but could be taken before the child binds it: a child
        // that exits before serving is retried on another port.
        let mut last_log = String::new();
        for attempt in 0..3 {
            std::fs::create_dir_all(&dir).expect("temp dir");
            let addr = format!("127.0.0.1:{}", free_port());
            let log_path = dir.join("service.log");
            let log = std::fs::File::create(&log_path).expect("log file");
            let child = Command::new(BINARY)
                .args(["serve", "--listen", &addr, "--database-url"])
                .arg(format!("sqlite://{}?mode=rwc", dir.join("m.db").display()))
                .env("MEMBERSHIP_BOOTSTRAP_KEY", KEY)
                .env_remove("DATABASE_URL")
                .env_remove("MEMBERSHIP_LISTEN")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("spawn membership-service");
            let mut service = Service {
                child,
                addr,
                dir: dir.clone(),
                grpcurl: grpcurl.clone(),
            };
            let serving = service.wait_serving(Duration::from_secs(60));
            if serving {
                return Some(service);
            }
            let exited = matches!(service.child.try_wait(), Ok(Some(_)));
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
            drop(service);
            if !exited {
                break;
            }
            eprintln!("membership-service exited before serving (attempt {attempt}), retrying");
        }
        panic!("membership-service never reported SERVING; its output:\n{last_log}");
    }

    fn wait_serving(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let out = self.grpcurl_raw(&[
                "-plaintext",
                "-max-time",
                "5",
                &self.addr,
                "grpc.health.v1.Health/Check",
            ]);
            if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("\"SERVING\"")
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    fn grpcurl_raw(&self, args: &[&str]) -> Output {
        Command::new(&self.grpcurl)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run grpcurl")
    }

    /// `grpcurl -plaintext -H 'authorization: Bearer …' -d '<json>' <addr> <method>`.
    fn call(&self, method: &str, json: &str) -> Output {
        let header = format!("authorization: Bearer {KEY}");
        self.grpcurl_raw(&[
            "-plaintext",
            "-max-time",
            "20",
            "-H",
            &header,
            "-d",
            json,
            &self.addr,
            method,
        ])
    }

    /// A call that must succeed; its JSON output, parsed.
    fn ok(&self, method: &str, json: &str) -> (String, Value) {
        let out = self.call(method, json);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "grpcurl {method} {json} failed ({}):\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("grpcurl {method} printed no JSON ({e}): {stdout}"));
        (stdout, value)
    }

    /// A call that must fail; grpcurl's stdout and stderr together.
    fn fails(&self, method: &str, json: &str) -> String {
        let out = self.call(method, json);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "grpcurl {method} {json} should have failed:\n{text}"
        );
        text
    }
}

/// int64 fields are JSON strings in proto3 JSON; accept numbers too.
fn id(value: &Value) -> i64 {
    let field = &value["id"];
    field
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| field.as_i64())
        .unwrap_or_else(|| panic!("no id in {value}"))
}

#[test]
fn health_and_reflection_need_no_key() {
    let Some(svc) = Service::start() else { return };
    let out = svc.grpcurl_raw(&["-plaintext", &svc.addr, "list"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "list failed: {listed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for service in [
        "membership.v1.DirectoryService",
        "membership.v1.MembershipService",
        "membership.v1.EventService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            listed.lines().any(|l| l.trim() == service),
            "`list` lacks {service}:\n{listed}"
        );
    }

    let out = svc.grpcurl_raw(&[
        "-plaintext",
        &svc.addr,
        "describe",
        "membership.v1.Membership",
    ]);
    assert!(
        out.status.success(),
        "describe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("role_id"));

    // Without a key, a real RPC is refused.
    let out = svc.grpcurl_raw(&[
        "-plaintext",
        "-d",
        "{}",
        &svc.addr,
        "membership.v1.DirectoryService/ListOrganizations",
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() && text.contains("Unauthenticated"),
        "{text}"
    );
}

#[test]
fn memberships_through_grpcurl() {
    let Some(svc) = Service::start() else { return };
    let (_, org) = svc.ok(
        "membership.v1.DirectoryService/CreateOrganization",
        r#"{"name": "Acme", "slug": "acme"}"#,
    );
    let org_id = id(&org);
    let (_, alice) = svc.ok(
        "membership.v1.DirectoryService/CreateUser",
        r#"{"email": "alice@acme.test", "firstName": "Alice"}"#,
    );
    let (text, bob) = svc.ok(
        "membership.v1.DirectoryService/CreateUser",
        r#"{"email": "bob@acme.test"}"#,
    );
    assert!(
        text.contains("\"createdAt\""),
        "lowerCamelCase JSON names: {text}"
    );
    assert_eq!(alice["firstName"], "Alice", "{alice}");

    let (text, owner) = svc.ok(
        "membership.v1.MembershipService/CreateMembership",
        &format!(r#"{{"teamId": "{org_id}", "userId": "{}", "role": "MEMBERSHIP_ROLE_OWNER", "accepted": true}}"#, id(&alice)),
    );
    assert_eq!(owner["role"], "MEMBERSHIP_ROLE_OWNER", "{text}");
    assert_eq!(owner["roleId"], "owner_role", "{text}");
    assert!(
        text.contains("\"roleId\"") && !text.contains("\"role_id\""),
        "lowerCamelCase: {text}"
    );

    let (_, member) = svc.ok(
        "membership.v1.MembershipService/CreateMembership",
        &format!(
            r#"{{"teamId": "{org_id}", "userId": "{}", "role": "MEMBERSHIP_ROLE_MEMBER", "accepted": true}}"#,
            id(&bob)
        ),
    );
    let (text, updated) = svc.ok(
        "membership.v1.MembershipService/UpdateMembership",
        &format!(
            r#"{{"teamId": "{org_id}", "membershipId": "{}", "roleId": "org:admin"}}"#,
            id(&member)
        ),
    );
    assert_eq!(updated["roleId"], "admin_role", "{text}");
    assert_eq!(updated["role"], "MEMBERSHIP_ROLE_ADMIN", "{text}");

    let (text, list) = svc.ok(
        "membership.v1.MembershipService/ListMemberships",
        &format!(r#"{{"teamId": "{org_id}"}}"#),
    );
    assert_eq!(
        list["memberships"].as_array().map(Vec::len),
        Some(2),
        "{text}"
    );

    // Demoting the only owner: FAILED_PRECONDITION with a readable LAST_OWNER detail.
    let text = svc.fails(
        "membership.v1.MembershipService/UpdateMembership",
        &format!(
            r#"{{"teamId": "{org_id}", "userId": "{}", "roleId": "org:admin"}}"#,
            id(&alice)
        ),
    );
    assert!(text.contains("FailedPrecondition"), "{text}");
    assert!(
        text.contains("google.rpc.ErrorInfo") && text.contains("LAST_OWNER"),
        "grpcurl decodes the ErrorInfo detail (needs its descriptor in reflection):\n{text}"
    );
}
