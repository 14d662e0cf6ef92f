//! Shared harness for the integration tests: a real server on `127.0.0.1:0` over a fresh
//! database of the chosen engine, and clients that carry an API key.
//!
//! Environment:
//! - `TEST_ENGINES`: comma list of engines to run (default `sqlite,postgres,mysql`).
//! - `REQUIRE_ENGINES=1`: an unreachable listed engine fails the test instead of skipping it.
//! - `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`) and
//!   `TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`): a database on the server
//!   that the harness connects to in order to create and drop one `t_…` database per test.
//! - `TEST_TIMEOUT_SECS`: per-test deadline of `engine_tests!` tests (default 180).

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use membership_service::config::ServeConfig;
use membership_service::server::App;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::{AsciiMetadataValue, MetadataKey};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};
use tonic_types::StatusExt;

pub use membership_service::pb;
use pb::access_service_client::AccessServiceClient;
use pb::attribute_service_client::AttributeServiceClient;
use pb::directory_service_client::DirectoryServiceClient;
use pb::event_service_client::EventServiceClient;
use pb::membership_service_client::MembershipServiceClient;
use pb::role_service_client::RoleServiceClient;

/// The bootstrap key every test server starts with: an `admin` key (every scope).
pub const ADMIN_KEY: &str = "mk_test_admin_key_0123456789";

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";
/// Pool size of each test App: enough to race, small enough that parallel tests (and second
/// instances) stay well under PostgreSQL's default `max_connections` of 100.
const TEST_DB_MAX_CONNECTIONS: u32 = 8;
/// `t_<unix secs>_…` databases older than this are left-overs of killed runs: dropped.
const STALE_DATABASE_SECS: u64 = 3 * 3600;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    Mysql,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        }
    }

    /// Listed in `TEST_ENGINES` (default: all three). `mariadb` is accepted for `mysql`.
    pub fn enabled(self) -> bool {
        let list = std::env::var("TEST_ENGINES").unwrap_or_else(|_| "sqlite,postgres,mysql".into());
        list.split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .any(|s| s == self.name() || (self == Engine::Mysql && s == "mariadb"))
    }

    /// The URL of an existing database on the server, used to create and drop test databases.
    fn admin_url(self) -> Option<String> {
        match self {
            Engine::Sqlite => None,
            Engine::Postgres => Some(
                std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into()),
            ),
            Engine::Mysql => {
                Some(std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_MYSQL_URL.into()))
            }
        }
    }
}

fn engines_required() -> bool {
    matches!(
        std::env::var("REQUIRE_ENGINES").as_deref(),
        Ok("1") | Ok("true")
    )
}

/// A name no other test, process or earlier run uses: creation time, pid, counter, random.
fn unique_suffix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{secs}_{}_{}_{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

/// Replaces the database name (the last path segment) of a URL, keeping any query string.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

async fn connect_admin(url: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(1)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(options).await
}

fn quote_ident(engine: Engine, name: &str) -> String {
    match engine {
        Engine::Mysql => format!("`{name}`"),
        _ => format!("\"{name}\""),
    }
}

async fn drop_database(
    conn: &DatabaseConnection,
    engine: Engine,
    name: &str,
) -> Result<(), sea_orm::DbErr> {
    let sql = match engine {
        // FORCE ends the connections a server that is still shutting down may hold.
        Engine::Postgres => format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(engine, name)
        ),
        _ => format!("DROP DATABASE IF EXISTS {}", quote_ident(engine, name)),
    };
    conn.execute_unprepared(&sql).await.map(|_| ())
}

/// Drops `t_<secs>_…` databases left behind by killed runs (older than a few hours), once per
/// process. Best-effort: errors are ignored.
async fn sweep_stale_databases(conn: &DatabaseConnection, engine: Engine) {
    static DONE: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];
    let slot = if engine == Engine::Postgres { 0 } else { 1 };
    if DONE[slot].swap(true, Ordering::SeqCst) {
        return;
    }
    let sql = match engine {
        Engine::Postgres => "SELECT datname FROM pg_database WHERE datname LIKE 't\\_%'",
        _ => {
            "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata WHERE schema_name LIKE 't\\_%'"
        }
    };
    let backend = conn.get_database_backend();
    let Ok(rows) = conn
        .query_all_raw(Statement::from_string(backend, sql))
        .await
    else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for row in rows {
        let Ok(name) = row.try_get_by_index::<String>(0) else {
            continue;
        };
        let created = name
            .strip_prefix("t_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if let Some(created) = created
            && now.saturating_sub(created) > STALE_DATABASE_SECS
        {
            let _ = drop_database(conn, engine, &name).await;
        }
    }
}

/// One test's database: a SQLite file in a temp dir, or a `t_…` database on a server.
/// Removed when the last server using it is dropped (or stopped).
struct TestDb {
    engine: Engine,
    url: String,
    location: DbLocation,
    cleaned: AtomicBool,
}

#[derive(Clone)]
enum DbLocation {
    SqliteDir(PathBuf),
    Server { admin_url: String, name: String },
}

impl DbLocation {
    async fn remove(&self, engine: Engine) {
        match self {
            DbLocation::SqliteDir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            DbLocation::Server { admin_url, name } => {
                if let Ok(conn) = connect_admin(admin_url).await {
                    if engine == Engine::Mysql {
                        // Never wait long on a metadata lock a dying connection still holds.
                        let _ = conn
                            .execute_unprepared("SET SESSION lock_wait_timeout = 10")
                            .await;
                    }
                    let _ = drop_database(&conn, engine, name).await;
                    let _ = conn.close().await;
                }
            }
        }
    }
}

impl TestDb {
    /// `None`: the engine is not listed in `TEST_ENGINES`, or unreachable and not required.
    async fn create(engine: Engine) -> Option<TestDb> {
        if !engine.enabled() {
            eprintln!("skipped: engine {} is not in TEST_ENGINES", engine.name());
            return None;
        }
        let (url, location) = match engine.admin_url() {
            None => {
                let dir = std::env::temp_dir().join(format!("membership-test-{}", unique_suffix()));
                std::fs::create_dir_all(&dir).expect("create temp dir for SQLite");
                let url = format!("sqlite://{}?mode=rwc", dir.join("m.db").display());
                (url, DbLocation::SqliteDir(dir))
            }
            Some(admin_url) => {
                // Once an engine was found unreachable, later tests skip it without waiting.
                static UNREACHABLE: [AtomicBool; 3] = [
                    AtomicBool::new(false),
                    AtomicBool::new(false),
                    AtomicBool::new(false),
                ];
                let unreachable = &UNREACHABLE[engine as usize];
                let connected = if unreachable.load(Ordering::SeqCst) {
                    Err(sea_orm::DbErr::Custom(
                        "unreachable earlier in this run".into(),
                    ))
                } else {
                    connect_admin(&admin_url).await
                };
                let conn = match connected {
                    Ok(conn) => conn,
                    Err(err) => {
                        unreachable.store(true, Ordering::SeqCst);
                        let msg =
                            format!("engine {} unreachable at {admin_url}: {err}", engine.name());
                        if engines_required() {
                            panic!("REQUIRE_ENGINES=1 and {msg}");
                        }
                        eprintln!("skipped: {msg} (REQUIRE_ENGINES=1 makes this fail)");
                        return None;
                    }
                };
                sweep_stale_databases(&conn, engine).await;
                let name = format!("t_{}", unique_suffix());
                let sql = format!("CREATE DATABASE {}", quote_ident(engine, &name));
                if let Err(err) = conn.execute_unprepared(&sql).await {
                    panic!("{}: {sql}: {err}", engine.name());
                }
                let _ = conn.close().await;
                (
                    with_database(&admin_url, &name),
                    DbLocation::Server { admin_url, name },
                )
            }
        };
        Some(TestDb {
            engine,
            url,
            location,
            cleaned: AtomicBool::new(false),
        })
    }

    async fn cleanup(&self) {
        if !self.cleaned.swap(true, Ordering::SeqCst) {
            self.location.remove(self.engine).await;
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.cleaned.swap(true, Ordering::SeqCst) {
            return;
        }
        if let DbLocation::SqliteDir(dir) = &self.location {
            let _ = std::fs::remove_dir_all(dir);
            return;
        }
        // Drop may run inside the test's runtime, which cannot be blocked on: use a thread with
        // a runtime of its own, bounded in time.
        let (engine, location) = (self.engine, self.location.clone());
        let thread = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    let _ = tokio::time::timeout(Duration::from_secs(20), location.remove(engine))
                        .await;
                });
            }
        });
        let _ = thread.join();
    }
}

/// Adds `authorization: Bearer <key>` (and optionally `x-actor-user-id`) to every request.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    headers: Vec<(MetadataKey<tonic::metadata::Ascii>, AsciiMetadataValue)>,
}

/// The interceptor for a key: `auth(key)`, or `auth(key).actor(user_id)`.
pub fn auth(key: &str) -> Auth {
    Auth::default().header("authorization", &format!("Bearer {key}"))
}

impl Auth {
    /// No headers at all (for UNAUTHENTICATED checks).
    pub fn none() -> Auth {
        Auth::default()
    }

    /// Acts for this end user (`x-actor-user-id`).
    pub fn actor(self, user_id: i64) -> Auth {
        self.header("x-actor-user-id", &user_id.to_string())
    }

    /// Any other ASCII header.
    pub fn header(mut self, name: &str, value: &str) -> Auth {
        let key = MetadataKey::from_bytes(name.as_bytes()).expect("valid metadata key");
        let value = value.parse().expect("ASCII metadata value");
        self.headers.retain(|(k, _)| *k != key);
        self.headers.push((key, value));
        self
    }
}

impl Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        for (key, value) in &self.headers {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
        Ok(request)
    }
}

/// The channel type every harness client is built on.
pub type AuthChannel = InterceptedService<Channel, Auth>;

/// A running server on a fresh database. Dropping it shuts the server down and drops the
/// database (once no second instance uses it any more); `stop()` does the same and waits.
pub struct TestServer {
    pub engine: Engine,
    pub addr: SocketAddr,
    pub admin_key: String,
    pub database_url: String,
    pub config: ServeConfig,
    channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    db: Option<Arc<TestDb>>,
}

impl TestServer {
    /// A server on a fresh database, or `None` when the engine is skipped.
    pub async fn start(engine: Engine) -> Option<TestServer> {
        Self::start_with(engine, |_| {}).await
    }

    /// Like `start`, with the config adjusted by `tweak` before the App is prepared.
    pub async fn start_with(
        engine: Engine,
        tweak: impl FnOnce(&mut ServeConfig),
    ) -> Option<TestServer> {
        let db = Arc::new(TestDb::create(engine).await?);
        let mut config = ServeConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), db.url.clone());
        config.bootstrap_key = Some(ADMIN_KEY.to_owned());
        config.db_max_connections = TEST_DB_MAX_CONNECTIONS;
        tweak(&mut config);
        Some(Self::launch(engine, config, db).await)
    }

    /// Another App (another "replica") on the same database, with the same config.
    pub async fn second_instance(&self) -> TestServer {
        let db = self.db.clone().expect("database of a running server");
        let mut config = self.config.clone();
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::launch(self.engine, config, db).await
    }

    async fn launch(engine: Engine, mut config: ServeConfig, db: Arc<TestDb>) -> TestServer {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .expect("bind test listener");
        let addr = listener.local_addr().expect("local addr");
        config.listen = addr;
        let app = match App::prepare(&config).await {
            Ok(app) => app,
            Err(err) => panic!("{}: App::prepare on {}: {err}", engine.name(), db.url),
        };
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let task = tokio::spawn(async move {
            if let Err(err) = app.serve(listener, shutdown).await {
                eprintln!("test server on {addr} failed: {err}");
            }
        });
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        TestServer {
            engine,
            addr,
            admin_key: config
                .bootstrap_key
                .clone()
                .unwrap_or_else(|| ADMIN_KEY.to_owned()),
            database_url: db.url.clone(),
            config,
            channel,
            shutdown: Some(tx),
            task: Some(task),
            db: Some(db),
        }
    }

    /// Shuts the server down, waits for it, and drops the database if no other instance uses it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
        {
            eprintln!("test server on {} did not stop within 10s", self.addr);
        }
        if let Some(db) = self.db.take()
            && let Ok(db) = Arc::try_unwrap(db)
        {
            db.cleanup().await;
        }
    }

    /// A plain channel to the server (no headers added).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The admin key's interceptor; `.actor(id)` adds `x-actor-user-id`.
    pub fn auth(&self) -> Auth {
        auth(&self.admin_key)
    }

    /// Any generated client with the given interceptor: `srv.client_with(auth(key),
    /// RoleServiceClient::new)`.
    pub fn client_with<C>(&self, auth: Auth, make: impl FnOnce(AuthChannel) -> C) -> C {
        make(InterceptedService::new(self.channel(), auth))
    }

    /// Any generated client with the admin key: `srv.client(RoleServiceClient::new)`.
    pub fn client<C>(&self, make: impl FnOnce(AuthChannel) -> C) -> C {
        self.client_with(self.auth(), make)
    }

    /// Any generated client with this key.
    pub fn client_with_key<C>(&self, key: &str, make: impl FnOnce(AuthChannel) -> C) -> C {
        self.client_with(auth(key), make)
    }

    /// Any generated client without an `authorization` header.
    pub fn anonymous<C>(&self, make: impl FnOnce(AuthChannel) -> C) -> C {
        self.client_with(Auth::none(), make)
    }

    pub fn directory(&self) -> DirectoryServiceClient<AuthChannel> {
        self.client(DirectoryServiceClient::new)
    }

    pub fn memberships(&self) -> MembershipServiceClient<AuthChannel> {
        self.client(MembershipServiceClient::new)
    }

    pub fn events(&self) -> EventServiceClient<AuthChannel> {
        self.client(EventServiceClient::new)
    }

    pub fn roles(&self) -> RoleServiceClient<AuthChannel> {
        self.client(RoleServiceClient::new)
    }

    pub fn access(&self) -> AccessServiceClient<AuthChannel> {
        self.client(AccessServiceClient::new)
    }

    pub fn attributes(&self) -> AttributeServiceClient<AuthChannel> {
        self.client(AttributeServiceClient::new)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
        // The last holder's drop removes the database (TestDb's Drop).
        self.db.take();
    }
}

/// The `google.rpc.ErrorInfo` of a status, if it has one.
pub fn error_info(status: &Status) -> Option<tonic_types::ErrorInfo> {
    status.get_error_details().error_info().cloned()
}

/// The `google.rpc.ErrorInfo` reason of a status (`LAST_OWNER`, `ROLE_NOT_FOUND`, …).
pub fn reason(status: &Status) -> Option<String> {
    error_info(status).map(|info| info.reason)
}

/// The field names of a status's `google.rpc.BadRequest` violations.
pub fn field_violations(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Unwraps the error of a call that must fail, with a readable panic otherwise.
pub fn expect_err<T: std::fmt::Debug>(result: Result<tonic::Response<T>, Status>) -> Status {
    match result {
        Ok(response) => panic!("expected an error, got {:?}", response.into_inner()),
        Err(status) => status,
    }
}

/// A `google.protobuf.Struct` from a `serde_json` object (`json!({...})`).
pub fn to_struct(value: serde_json::Value) -> prost_types::Struct {
    fn to_value(value: serde_json::Value) -> prost_types::Value {
        use prost_types::value::Kind;
        let kind = match value {
            serde_json::Value::Null => Kind::NullValue(0),
            serde_json::Value::Bool(b) => Kind::BoolValue(b),
            serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
            serde_json::Value::String(s) => Kind::StringValue(s),
            serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
                values: items.into_iter().map(to_value).collect(),
            }),
            serde_json::Value::Object(_) => Kind::StructValue(to_struct(value)),
        };
        prost_types::Value { kind: Some(kind) }
    }
    match value {
        serde_json::Value::Object(map) => prost_types::Struct {
            fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
        },
        other => panic!("to_struct needs a JSON object, got {other}"),
    }
}
