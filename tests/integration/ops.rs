//! The built binary as an operator runs it: start-up messages, shutdown, and the CLI.
//!
//! Each test runs `membership-service` as a child process in a temp dir of its own, on SQLite,
//! with JSON logs so that the log lines can be checked field by field.

use crate::common::TempDir;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use membership_service::pb;
use pb::directory_service_client::DirectoryServiceClient;
use serde_json::Value;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const BINARY: &str = env!("CARGO_BIN_EXE_membership-service");
const KEY: &str = "mk_ops_admin_key_0123456789";

/// The binary, run in `dir`, with none of the service's variables inherited from the test's
/// environment, and JSON logs.
fn command(dir: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command.current_dir(dir).stdin(Stdio::null());
    for name in [
        "DATABASE_URL",
        "MEMBERSHIP_LISTEN",
        "MEMBERSHIP_BOOTSTRAP_KEY",
        "MEMBERSHIP_TLS_CERT",
        "MEMBERSHIP_TLS_KEY",
        "MEMBERSHIP_TLS_CLIENT_CA",
        "RUST_LOG",
    ] {
        command.env_remove(name);
    }
    command.env("MEMBERSHIP_LOG_FORMAT", "json");
    command
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The JSON log lines of a log; other lines (plain output) are skipped.
fn log_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v.is_object())
        .collect()
}

/// The log lines whose message contains `needle`.
fn lines_with(log: &str, needle: &str) -> Vec<Value> {
    log_lines(log)
        .into_iter()
        .filter(|v| v["message"].as_str().is_some_and(|m| m.contains(needle)))
        .collect()
}

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
struct Bearer(tonic::metadata::AsciiMetadataValue);

impl Bearer {
    fn new(key: &str) -> Bearer {
        Bearer(format!("Bearer {key}").parse().expect("ASCII key"))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type KeyedChannel = tonic::service::interceptor::InterceptedService<Channel, Bearer>;

/// `serve` as a child process; its stdout and stderr go to files in its dir.
struct Service {
    child: Child,
    addr: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// `serve --listen 127.0.0.1:<free port> <args>` in `dir`, with `env`; waits until health
    /// reports SERVING.
    async fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Service {
        Self::start_on("127.0.0.1", dir, args, env).await
    }

    /// Like `start`, with `--listen <host>:<free port>` (the clients use 127.0.0.1).
    async fn start_on(host: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Service {
        Self::try_start(host, dir, args, env)
            .await
            .unwrap_or_else(|log| panic!("membership-service never served; its output:\n{log}"))
    }

    /// Like `start_on`, or the output of a child that exited (or never served).
    async fn try_start(
        host: &str,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Service, String> {
        static RUN: AtomicU32 = AtomicU32::new(0);
        let run = RUN.fetch_add(1, Ordering::Relaxed);
        let mut last = String::new();
        // The port is free when picked but could be taken before the child binds it.
        for _attempt in 0..3 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let stdout = dir.join(format!("stdout-{run}.log"));
            let stderr = dir.join(format!("stderr-{run}.log"));
            let child = command(dir)
                .args(["serve", "--listen", &format!("{host}:{port}")])
                .args(args)
                .envs(env.iter().copied())
                .stdout(std::fs::File::create(&stdout).expect("stdout file"))
                .stderr(std::fs::File::create(&stderr).expect("stderr file"))
                .spawn()
                .expect("spawn membership-service");
            let mut service = Service {
                child,
                addr,
                stdout,
                stderr,
            };
            if service.wait_serving(Duration::from_secs(60)).await {
                return Ok(service);
            }
            let exited = matches!(service.child.try_wait(), Ok(Some(_)));
            last = format!("{}{}", service.stdout(), service.stderr());
            drop(service);
            if !exited || !last.contains("cannot listen") {
                break;
            }
        }
        Err(last)
    }

    async fn wait_serving(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(channel) = self.endpoint().connect().await
                && let Ok(answer) = HealthClient::new(channel)
                    .check(HealthCheckRequest::default())
                    .await
                && answer.into_inner().status == 1
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn endpoint(&self) -> tonic::transport::Endpoint {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// A directory client with `key`.
    async fn directory(&self, key: &str) -> DirectoryServiceClient<KeyedChannel> {
        let channel = self.endpoint().connect().await.expect("connect");
        DirectoryServiceClient::with_interceptor(channel, Bearer::new(key))
    }

    async fn create_user(&self, key: &str, email: &str) -> Result<pb::User, tonic::Status> {
        self.directory(key)
            .await
            .create_user(pb::CreateUserRequest {
                email: email.into(),
                name: "Ops Test".into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Sends SIGTERM and waits for the exit; the time it took.
    fn terminate(&mut self) -> Duration {
        let began = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = began + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "exit status {status} after SIGTERM; stderr:\n{}",
                    self.stderr()
                );
                return began.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "still running 30 s after SIGTERM; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Start-up messages

/// `keys create` before the first `serve` fills the key table, so the bootstrap key is never
/// stored: the start-up log says so, once, and names the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_bootstrap_key_is_reported_once() {
    let dir = TempDir::new("bootstrap");
    let url = dir.sqlite_url("m.db");
    let created = command(dir.path())
        .args(["keys", "create", "--scopes", "directory.read"])
        .args(["--database-url", &url])
        .output()
        .expect("run keys create");
    assert!(created.status.success(), "{}", text(&created.stderr));

    let mut svc = Service::start(
        dir.path(),
        &["--database-url", &url],
        &[("MEMBERSHIP_BOOTSTRAP_KEY", KEY)],
    )
    .await;
    let refused = svc.create_user(KEY, "nobody@ops.test").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    svc.terminate();
    let log = svc.stderr();
    let warnings = lines_with(&log, "bootstrap key");
    assert_eq!(warnings.len(), 1, "one warning:\n{log}");
    assert_eq!(warnings[0]["level"], "WARN", "{log}");
    let database = dir.path().join("m.db").display().to_string();
    assert_eq!(warnings[0]["database"], database.as_str(), "{log}");
    let serving = lines_with(&log, "serving");
    assert_eq!(serving.len(), 1, "{log}");
    assert_eq!(serving[0]["database"], database.as_str(), "{log}");
}

/// A bootstrap key on an empty database is stored, and on the next start it is a known key:
/// no warning either time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_bootstrap_key_is_not_reported() {
    let dir = TempDir::new("bootstrap-ok");
    let url = dir.sqlite_url("m.db");
    for round in 0..2 {
        let mut svc = Service::start(
            dir.path(),
            &["--database-url", &url],
            &[("MEMBERSHIP_BOOTSTRAP_KEY", KEY)],
        )
        .await;
        svc.create_user(KEY, &format!("user{round}@ops.test"))
            .await
            .expect("the bootstrap key works");
        svc.terminate();
        let log = svc.stderr();
        assert!(lines_with(&log, "bootstrap key").is_empty(), "{log}");
    }
}

/// `--listen` takes a host name; the default is loopback only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listens_on_a_host_name() {
    let dir = TempDir::new("listen");
    let mut svc = Service::start_on(
        "localhost",
        dir.path(),
        &["--database-url", &dir.sqlite_url("m.db")],
        &[("MEMBERSHIP_BOOTSTRAP_KEY", KEY)],
    )
    .await;
    svc.create_user(KEY, "host@ops.test")
        .await
        .expect("a call through localhost");
    svc.terminate();

    let help = command(dir.path())
        .args(["serve", "--help"])
        .output()
        .expect("serve --help");
    assert!(
        text(&help.stdout).contains("[default: 127.0.0.1:50051]"),
        "{}",
        text(&help.stdout)
    );
}

/// A SQLite URL without `?mode=rwc` creates the file on the first start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sqlite_file_is_created_without_mode_rwc() {
    let dir = TempDir::new("create");
    let file = dir.path().join("new.db");
    let url = format!("sqlite://{}", file.display());
    let mut svc = Service::start(
        dir.path(),
        &["--database-url", &url],
        &[("MEMBERSHIP_BOOTSTRAP_KEY", KEY)],
    )
    .await;
    svc.create_user(KEY, "new@ops.test").await.expect("a write");
    svc.terminate();
    assert!(file.exists(), "{url} was created");
}

// ---------------------------------------------------------------------------------------------
// The CLI

fn keys_create(dir: &Path, args: &[&str]) -> Output {
    command(dir)
        .args(["keys", "create"])
        .args(args)
        .output()
        .expect("run keys create")
}

/// An error of a command run by hand is a plain `error: …` line on stderr (no log lines), and
/// the exit status says it failed.
fn assert_plain_error(out: &Output, needle: &str) {
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "should fail:\n{stderr}");
    assert!(out.stdout.is_empty(), "no output: {}", text(&out.stdout));
    assert!(
        stderr.starts_with("error: ") && stderr.contains(needle),
        "a plain error naming {needle:?}:\n{stderr}"
    );
    assert!(log_lines(&stderr).is_empty(), "no log lines:\n{stderr}");
}

#[test]
fn keys_create_prints_the_key_alone() {
    let dir = TempDir::new("keys");
    let file = dir.path().join("membership.db");
    let out = keys_create(dir.path(), &["--scopes", "directory.read,access.check"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the key on stdout: {stdout}");
    assert!(lines[0].starts_with("mk_"), "{stdout}");
    // No migration log; one line naming the database (the default path, in the working dir).
    assert!(log_lines(&stderr).is_empty(), "{stderr}");
    assert!(
        stderr.contains(&file.display().to_string()),
        "names the database:\n{stderr}"
    );
    assert!(!stderr.contains(lines[0]), "the key only on stdout");
    assert!(file.exists());
}

/// `keys list` shows every key without its secret; `keys revoke` revokes one by id, and the
/// list says so.
#[test]
fn keys_list_and_revoke() {
    let dir = TempDir::new("keys-list");
    let created = keys_create(
        dir.path(),
        &["--scopes", "directory.read", "--name", "billing"],
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let secret = text(&created.stdout).trim().to_string();
    let list = || {
        let out = command(dir.path())
            .args(["keys", "list"])
            .output()
            .expect("keys list");
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let listed = list();
    assert!(!listed.contains(&secret[10..]), "no secret in the list");
    let line = listed
        .lines()
        .find(|l| l.contains("\tbilling\t"))
        .unwrap_or_else(|| panic!("the key is listed: {listed}"));
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields.len(), 8, "{line}");
    let (id, revoked) = (fields[0], fields[6]);
    assert!(id.starts_with("key_") && revoked == "-", "{line}");

    let out = command(dir.path())
        .args(["keys", "revoke", id])
        .output()
        .expect("keys revoke");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = list()
        .lines()
        .find(|l| l.starts_with(id))
        .map(str::to_string);
    let revoked = line
        .as_deref()
        .map(|l| l.split('\t').nth(6).unwrap_or_default());
    assert!(revoked.is_some_and(|r| r != "-"), "{line:?}");

    let unknown = command(dir.path())
        .args(["keys", "revoke", "key_000000000000"])
        .output()
        .expect("keys revoke");
    assert_plain_error(&unknown, "not found");
}

#[test]
fn keys_create_errors_are_plain() {
    let dir = TempDir::new("keys-errors");
    let out = keys_create(dir.path(), &["--scopes", "memberships.read,nope"]);
    assert_plain_error(&out, "unknown scope \"nope\"");
    assert!(
        !dir.path().join("membership.db").exists(),
        "a bad scope creates no database"
    );

    let missing = dir.path().join("no-such-dir").join("m.db");
    let url = format!("sqlite://{}", missing.display());
    let out = keys_create(dir.path(), &["--scopes", "admin", "--database-url", &url]);
    assert_plain_error(&out, &missing.display().to_string());
}

// ---------------------------------------------------------------------------------------------
// Secrets

const PASSWORD: &str = "hunter22secret";

#[test]
fn help_hides_the_values_of_secrets() {
    let dir = TempDir::new("help");
    let bootstrap = "mk_bootstrap_from_the_environment";
    for args in [
        &["serve", "--help"][..],
        &["migrate", "--help"],
        &["keys", "create", "--help"],
    ] {
        let out = command(dir.path())
            .args(args)
            .env("DATABASE_URL", format!("postgres://app:{PASSWORD}@db/m"))
            .env("MEMBERSHIP_BOOTSTRAP_KEY", bootstrap)
            .output()
            .expect("--help");
        let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{args:?}: {shown}");
        assert!(shown.contains("DATABASE_URL"), "{args:?}: {shown}");
        assert!(
            !shown.contains(PASSWORD),
            "{args:?} shows the password:\n{shown}"
        );
        assert!(
            !shown.contains(bootstrap),
            "{args:?} shows the key:\n{shown}"
        );
    }
}

/// Limits that would refuse every call are refused at start-up, naming the flag.
#[test]
fn zero_limits_are_refused_at_start_up() {
    let dir = TempDir::new("zero");
    for flag in ["--request-timeout-ms", "--max-in-flight", "--feed-buffer"] {
        let out = command(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0", flag, "0"])
            .output()
            .expect("serve");
        let shown = text(&out.stderr);
        assert!(!out.status.success(), "{flag} 0 is refused: {shown}");
        assert!(shown.contains(flag), "{flag}: {shown}");
    }
}

/// Database URLs that fail, malformed or unreachable, are reported without their password.
#[test]
fn failing_database_urls_are_reported_without_the_password() {
    let dir = TempDir::new("redact");
    for url in [
        format!("postgres//app:{PASSWORD}@db/m"),
        // Refused: the pool gives up after its connect timeout (5 s).
        format!("mysql://app:{PASSWORD}@127.0.0.1:1/m"),
    ] {
        let serve = command(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &url])
            .output()
            .expect("serve");
        let keys = keys_create(dir.path(), &["--scopes", "admin", "--database-url", &url]);
        for (what, out) in [("serve", serve), ("keys create", keys)] {
            let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
            assert!(!out.status.success(), "{what} {url}: {shown}");
            assert!(
                !shown.contains(PASSWORD),
                "{what} shows the password:\n{shown}"
            );
            assert!(
                shown.contains("app:***@"),
                "{what} names the database:\n{shown}"
            );
        }
    }
}

/// A generated bootstrap key is printed once, alone on stdout, and never logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_bootstrap_key_goes_to_stdout_once() {
    let dir = TempDir::new("generated");
    let url = dir.sqlite_url("m.db");
    let mut svc = Service::start(dir.path(), &["--database-url", &url], &[]).await;
    let stdout = svc.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "the key alone on stdout: {stdout:?}");
    let key = lines[0];
    assert!(key.starts_with("mk_"), "{stdout}");
    svc.create_user(key, "first@ops.test")
        .await
        .expect("the generated key is an admin key");
    svc.terminate();
    let log = svc.stderr();
    assert!(!log.contains(key), "the key is in the log:\n{log}");
    assert_eq!(lines_with(&log, "stdout").len(), 1, "{log}");

    let mut again = Service::start(dir.path(), &["--database-url", &url], &[]).await;
    again.terminate();
    assert_eq!(again.stdout(), "", "no second key");
}

// ---------------------------------------------------------------------------------------------
// Idle

/// CPU time (user + system) a process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // After the parenthesised command name: state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

fn ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| text(&out.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// An idle server hardly uses the CPU: the feed's poll of SQLite backs off while nothing
/// happens (at a fixed 10 ms it cost ~5% of a core).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_stays_idle() {
    let dir = TempDir::new("idle");
    let mut svc = Service::start(
        dir.path(),
        &["--database-url", &dir.sqlite_url("m.db")],
        &[("MEMBERSHIP_BOOTSTRAP_KEY", KEY)],
    )
    .await;
    svc.create_user(KEY, "idle@ops.test")
        .await
        .expect("a write");
    // Let the poll reach its ceiling.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = svc.child.id();
    let (before, began) = (cpu_ticks(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let used = (cpu_ticks(pid) - before) as f64 / ticks_per_second() as f64;
    let share = used / began.elapsed().as_secs_f64();
    eprintln!("idle CPU: {:.2}% of a core", share * 100.0);
    svc.terminate();
    assert!(
        share < 0.02,
        "an idle server used {:.2}% of a core",
        share * 100.0
    );
}

/// Out of file descriptors the server does not spin on its failing `accept`: it backs off, says
/// so once, and serves again once descriptors are free.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_server_backs_off() {
    let dir = TempDir::new("fds");
    let mut svc = Service::start(
        dir.path(),
        &["--database-url", &dir.sqlite_url("m.db")],
        &[("MEMBERSHIP_BOOTSTRAP_KEY", KEY)],
    )
    .await;
    svc.create_user(KEY, "fds@ops.test").await.expect("a write");
    let pid = svc.child.id();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/<pid>/fd")
        .count();
    // A few descriptors to spare, then many more connections than that.
    let limit = open + 4;
    let set = Command::new("prlimit")
        .args([format!("--pid={pid}"), format!("--nofile={limit}:{limit}")])
        .output()
        .expect("run prlimit");
    assert!(set.status.success(), "prlimit: {}", text(&set.stderr));
    let mut hogs = Vec::new();
    for _ in 0..24 {
        hogs.push(
            tokio::net::TcpStream::connect(&svc.addr)
                .await
                .expect("connect"),
        );
    }
    // The backlog holds connections the server cannot accept: let it try for a while.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (before, began) = (cpu_ticks(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let share = (cpu_ticks(pid) - before) as f64
        / ticks_per_second() as f64
        / began.elapsed().as_secs_f64();
    drop(hogs);
    // Descriptors come back as the server sees the hogs close; then it serves again.
    let deadline = Instant::now() + Duration::from_secs(60);
    for attempt in 0.. {
        if svc
            .create_user(KEY, &format!("again{attempt}@ops.test"))
            .await
            .is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "never served again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    svc.terminate();
    let log = svc.stderr();
    let starved = lines_with(&log, "cannot accept connections");
    assert_eq!(starved.len(), 1, "said once per episode:\n{log}");
    assert_eq!(starved[0]["level"], "ERROR", "{log}");
    assert!(
        share < 0.5,
        "the accept loop spun: {:.0}% of a core while out of descriptors",
        share * 100.0
    );
}

// ---------------------------------------------------------------------------------------------
// Shutdown

/// After SIGTERM the SQLite file alone holds every write (the pool is closed, so SQLite
/// checkpoints the WAL into it), and the process exits promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_a_complete_sqlite_file() {
    use membership_service::storage::{Store, entities::user};
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

    let dir = TempDir::new("sigterm");
    let mut svc = Service::start(
        dir.path(),
        &["--database-url", &dir.sqlite_url("m.db")],
        &[("MEMBERSHIP_BOOTSTRAP_KEY", KEY)],
    )
    .await;
    // Enough concurrent writes to use several pooled connections; the clients stay connected.
    let mut writers = Vec::new();
    for w in 0..8 {
        let mut client = svc.directory(KEY).await;
        writers.push(tokio::spawn(async move {
            for i in 0..25 {
                client
                    .create_user(pb::CreateUserRequest {
                        email: format!("user{w}-{i}@sigterm.test"),
                        name: "x".repeat(200),
                        ..Default::default()
                    })
                    .await
                    .expect("create user");
            }
            client
        }));
    }
    let mut clients = Vec::new();
    for writer in writers {
        clients.push(writer.await.expect("writer"));
    }
    let wal = dir.path().join("m.db-wal");
    assert!(
        wal.metadata().map(|m| m.len()).unwrap_or(0) > 0,
        "the writes are in the WAL while serving"
    );
    let took = svc.terminate();
    let log = svc.stderr();
    eprintln!("SIGTERM to exit: {took:?}");
    let wal_len = wal.metadata().map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "the WAL is checkpointed on shutdown:\n{log}");

    let copy = TempDir::new("sigterm-copy");
    std::fs::copy(dir.path().join("m.db"), copy.path().join("m.db")).expect("copy the .db");
    let store = Store::connect(&copy.sqlite_url("m.db"), 1)
        .await
        .expect("open the copy");
    let users = user::Entity::find()
        .filter(user::Column::Email.like("%@sigterm.test"))
        .count(store.conn())
        .await
        .expect("count users");
    assert_eq!(users, 200, "the copied .db alone holds the writes");
    drop(clients);
    // A hang, not a speed check: the deadline is far above the ~0.1 s it takes.
    assert!(
        took < Duration::from_secs(20),
        "SIGTERM to exit took {took:?}:\n{log}"
    );
}
