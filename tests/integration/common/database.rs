//! One test's database: a SQLite file in a temp dir, or a fresh `t_…` database on the
//! PostgreSQL or MariaDB server, created for the test and dropped after it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";
/// `t_<unix secs>_…` databases older than this are left-overs of killed runs: dropped.
const STALE_DATABASE_SECS: u64 = 3 * 3600;

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

pub(super) fn engines_required() -> bool {
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
pub(super) struct TestDb {
    engine: Engine,
    pub(super) url: String,
    location: DbLocation,
    cleaned: AtomicBool,
}

#[derive(Clone)]
enum DbLocation {
    SqliteDir(PathBuf),
    Server {
        admin_url: String,
        name: String,
    },
    /// A database the test made and removes itself (on a server of its own).
    External,
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
            DbLocation::External => {}
        }
    }
}

impl TestDb {
    /// `None`: the engine is not listed in `TEST_ENGINES`, or unreachable and not required.
    pub(super) async fn create(engine: Engine) -> Option<TestDb> {
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

    /// The database at `url`, which the test created and removes itself.
    pub(super) fn external(engine: Engine, url: &str) -> TestDb {
        TestDb {
            engine,
            url: url.to_owned(),
            location: DbLocation::External,
            cleaned: AtomicBool::new(true),
        }
    }

    pub(super) async fn cleanup(&self) {
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

/// The one number a statement answers (`SELECT COUNT(*) …`, `PRAGMA page_count`, or a pragma
/// that sets and echoes), read straight from the store's database.
pub async fn query_number(store: &membership_service::storage::Store, sql: &str) -> i64 {
    use sea_orm::ConnectionTrait;
    store
        .conn()
        .query_one_raw(sea_orm::Statement::from_string(
            store.conn().get_database_backend(),
            sql,
        ))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("a row")
        .try_get_by_index::<i64>(0)
        .expect("a number")
}
