//! SeaORM storage: entities, migrations, and the use cases. Every write runs in one
//! transaction: it reads what the domain rules need, calls them, and records its event.
//!
//! The entity modules (users, organizations, memberships, roles, attributes) never import each
//! other: what several need is in `shared`, what a user's roles grant in `permissions`, the
//! actor check every write makes in `actor`, and `events` records the event of every write.

mod actor;
pub mod api_keys;
pub mod attributes;
mod convert;
pub mod entities;
pub mod events;
mod expiry;
pub mod idempotency;
pub mod imports;
pub mod invitations;
pub mod memberships;
pub mod migration;
pub mod organizations;
pub mod permissions;
pub mod roles;
pub mod shared;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sea_query::{Alias, Expr, OnConflict, Query};
use sea_orm::{
    ConnAcquireErr, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, IsolationLevel, SqlErr, SqliteTransactionMode,
    Statement, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use tokio::sync::{Mutex, Notify, OwnedMutexGuard};

use crate::config;
use crate::domain::access::Policy;
use crate::domain::{DomainError, DomainResult};

/// The database handle the services share.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// SQLite allows one writer at a time; queueing writers here is cheaper than SQLite's
    /// sleep-and-retry busy handler.
    sqlite_writer: Option<Arc<Mutex<()>>>,
    policy: Arc<Policy>,
    /// Signalled after each commit of this process, so the feed reads it without waiting a poll.
    committed: Arc<Notify>,
    max_connections: u32,
}

/// The connection pool's state at one instant (read one after the other, the counts may
/// disagree for a moment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections open, in use or idle.
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

impl PoolUse {
    pub fn in_use(&self) -> u64 {
        u64::from(self.open.saturating_sub(self.idle))
    }

    /// Every connection the pool may open is open and in use: waiting for one is load, not an
    /// outage.
    pub fn exhausted(&self) -> bool {
        self.open >= self.max && self.idle == 0
    }
}

/// A write transaction: commit it, or drop it to roll back.
pub struct WriteTx {
    pub txn: DatabaseTransaction,
    _writer: Option<OwnedMutexGuard<()>>,
    committed: Arc<Notify>,
}

impl std::ops::Deref for WriteTx {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl WriteTx {
    pub async fn commit(self) -> DomainResult<()> {
        self.txn.commit().await.map_err(db_error)?;
        self.committed.notify_one();
        Ok(())
    }
}

/// The database cannot be opened: which one (without its password) and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to the database {database}: {cause}")]
pub struct ConnectError {
    pub database: String,
    pub cause: String,
}

impl Store {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, ConnectError> {
        let mut options = ConnectOptions::new(url.to_string());
        let in_memory = is_in_memory(url);
        // On PostgreSQL the feed's LISTEN holds one pooled connection for good: one more, so
        // the calls still have `max_connections` (with one, they would have none).
        let max_connections = if in_memory {
            1
        } else if url.starts_with("postgres") {
            max_connections.max(1) + 1
        } else {
            max_connections.max(1)
        };
        options
            .max_connections(max_connections)
            .min_connections(if in_memory { 1 } else { 0 })
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|opts| {
                // A new file without `?mode=rwc`: a first start creates its database. (A
                // `mode=ro` URL stays read-only.)
                opts.create_if_missing(true)
                    .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            })
            // A COMMIT that fails (disk full, I/O error) can leave the connection inside its
            // transaction: SQLite rolls back by itself, the driver's ROLLBACK then fails and it
            // still counts one open transaction, so the next "BEGIN" would be a SAVEPOINT and
            // its "COMMIT" a RELEASE that commits nothing. Such a connection is discarded, never
            // reused. (The same guard on every engine: a connection is clean or it goes.)
            .map_sqlx_sqlite_before_acquire(|conn, _| {
                Box::pin(async move { Ok(!sea_orm::sqlx::Connection::is_in_transaction(conn)) })
            })
            .map_sqlx_postgres_before_acquire(|conn, _| {
                Box::pin(async move { Ok(!sea_orm::sqlx::Connection::is_in_transaction(conn)) })
            })
            .map_sqlx_mysql_before_acquire(|conn, _| {
                Box::pin(async move { Ok(!sea_orm::sqlx::Connection::is_in_transaction(conn)) })
            });
        // The error may quote the URL (an unknown scheme does): never with its password.
        let db = Database::connect(options).await.map_err(|e| ConnectError {
            database: config::describe_database(url),
            cause: config::redact_in(&e.to_string(), url),
        })?;
        let sqlite_writer =
            (db.get_database_backend() == DbBackend::Sqlite).then(|| Arc::new(Mutex::new(())));
        Ok(Self {
            db,
            sqlite_writer,
            policy: Arc::new(Policy::default()),
            committed: Arc::new(Notify::new()),
            max_connections,
        })
    }

    pub fn pool_use(&self) -> PoolUse {
        let (open, idle) = match self.backend() {
            DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            DbBackend::MySql => {
                let pool = self.db.get_mysql_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => {
                let pool = self.db.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
        };
        PoolUse {
            open,
            idle: idle as u32,
            max: self.max_connections,
        }
    }

    /// The error of a statement that took its own connection from the pool: one that could not
    /// be had in time is an outage unless every connection is busy.
    pub(crate) fn pool_error(&self, err: DbErr) -> DomainError {
        if matches!(err, DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))
            && self.pool_use().exhausted()
        {
            tracing::warn!("every database connection stayed busy until the acquire timeout");
            crate::metrics::shed(crate::metrics::Shed::Overloaded);
            return DomainError::Overloaded;
        }
        db_error(err)
    }

    /// Closes the pool: waits for the connections in use to come back, then closes them all.
    /// On SQLite closing the last connection checkpoints the WAL into the database file, so the
    /// `.db` alone is the whole database again.
    pub async fn close(&self) -> Result<(), DbErr> {
        self.db.close_by_ref().await
    }

    /// Uses this catalog (and the system role permissions derived from it).
    pub fn with_policy(mut self, policy: Arc<Policy>) -> Self {
        self.policy = policy;
        self
    }

    /// Notified after each commit of this process, and when a read needs a newer revision: the
    /// feed reads new events right away instead of at its next poll.
    pub fn committed(&self) -> &Arc<Notify> {
        &self.committed
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    pub async fn migrate(&self) -> Result<(), DbErr> {
        migration::Migrator::up(&self.db, None).await
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Begins a write transaction. On PostgreSQL and MariaDB it runs at READ COMMITTED: the
    /// invariants are protected by row locks (see `shared::lock_organization`), and every read
    /// after a lock sees what the previous holder committed. On SQLite writers are serialised.
    pub async fn begin_write(&self) -> DomainResult<WriteTx> {
        let asked = std::time::Instant::now();
        let (writer, txn) = self
            .begin_write_txn()
            .await
            .map_err(|e| self.pool_error(e))?;
        crate::metrics::pool_waited(asked.elapsed());
        Ok(WriteTx {
            txn,
            _writer: writer,
            committed: Arc::clone(&self.committed),
        })
    }

    async fn begin_write_txn(
        &self,
    ) -> Result<(Option<OwnedMutexGuard<()>>, DatabaseTransaction), DbErr> {
        let writer = match &self.sqlite_writer {
            Some(lock) => Some(Arc::clone(lock).lock_owned().await),
            None => None,
        };
        let options = match self.backend() {
            DbBackend::Sqlite => TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            },
            _ => TransactionOptions {
                isolation_level: Some(IsolationLevel::ReadCommitted),
                ..Default::default()
            },
        };
        let txn = self.db.begin_with_options(options).await?;
        Ok((writer, txn))
    }

    /// The health monitor's read: one row of a table the migrations made, so the database is
    /// reachable, answers, and still has this service's schema.
    pub async fn probe_read(&self) -> Result<(), ProbeError> {
        use sea_orm::sea_query::ExprTrait as _;
        let sql = Query::select()
            .column(Alias::new("checked_at"))
            .from(Alias::new(PROBE_TABLE))
            .and_where(Expr::col(Alias::new("id")).eq(1))
            .to_owned();
        self.db
            .query_one(&sql)
            .await
            .map(|_| ())
            .map_err(ProbeError::from)
    }

    /// The health monitor's write: a committed update of the probe row, through the same pool,
    /// writer queue and transaction options as every use case, so what refuses their writes
    /// (a read-only file or database, an I/O error, a commit that hangs) refuses this one. Not
    /// through `db_error`: a probe failing every second during an outage must not flood the log.
    ///
    /// On SQLite an update rewrites a page the file already has, so it still succeeds when the
    /// file may not grow (`max_page_count`) while inserts fail: the probe also asks SQLite how
    /// many pages the file may still take. (Not by trying to grow it: a write SQLite refuses as
    /// full rolls back its whole transaction and costs the pool that connection.) A full disk
    /// fails the commit itself once the log must grow, as it does on PostgreSQL and MariaDB.
    pub async fn probe_write(&self) -> Result<(), ProbeError> {
        use sea_orm::sea_query::ExprTrait as _;
        let (writer, txn) = self.begin_write_txn().await?;
        let backend = self.backend();
        let touch = Query::update()
            .table(Alias::new(PROBE_TABLE))
            .value(Alias::new("checked_at"), convert::now_micros())
            .and_where(Expr::col(Alias::new("id")).eq(1))
            .to_owned();
        if txn.execute(&touch).await?.rows_affected() == 0 {
            // The row was removed by hand: put it back.
            let insert = Query::insert()
                .into_table(Alias::new(PROBE_TABLE))
                .columns([Alias::new("id"), Alias::new("checked_at")])
                .values_panic([1.into(), convert::now_micros().into()])
                .on_conflict(OnConflict::column(Alias::new("id")).do_nothing().to_owned())
                .to_owned();
            txn.execute(&insert).await?;
        }
        if backend == DbBackend::Sqlite {
            let room = txn
                .query_one_raw(Statement::from_string(
                    backend,
                    "SELECT (SELECT max_page_count FROM pragma_max_page_count()) \
                     - (SELECT page_count FROM pragma_page_count()) \
                     + (SELECT freelist_count FROM pragma_freelist_count())",
                ))
                .await?
                .and_then(|row| row.try_get_by_index::<i64>(0).ok())
                .unwrap_or(i64::MAX);
            if room < PROBE_ROOM_PAGES {
                return Err(ProbeError::Failed(format!(
                    "the database or disk is full: room for {room} more pages"
                )));
            }
        }
        txn.commit().await?;
        drop(writer);
        Ok(())
    }
}

/// The table of `migration::m0008_health_probe`.
const PROBE_TABLE: &str = "health_probe";
/// The fewest free pages a SQLite file may have left and still count as taking writes: a write
/// touches a table page and an index page or two.
const PROBE_ROOM_PAGES: i64 = 2;

/// Why a health probe failed.
#[derive(Debug)]
pub enum ProbeError {
    /// No pooled connection came free within the pool's acquire timeout. While the database
    /// is down this is what every acquire ends with, but so it is when load holds every
    /// connection: on its own it says nothing about the database.
    PoolBusy,
    /// The database refused, failed, or could not be reached.
    Failed(String),
}

impl From<DbErr> for ProbeError {
    fn from(err: DbErr) -> Self {
        match err {
            DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout) => ProbeError::PoolBusy,
            other => ProbeError::Failed(other.to_string()),
        }
    }
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::PoolBusy => f.write_str("no database connection came free in time"),
            ProbeError::Failed(cause) => f.write_str(cause),
        }
    }
}

/// An in-memory SQLite database lives in its one connection: it cannot have a second.
pub fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// The one mapping of database errors to domain errors: constraint violations become client
/// errors, lost connections UNAVAILABLE, the rest INTERNAL with the detail in the log only.
pub fn db_error(err: DbErr) -> DomainError {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            return DomainError::AlreadyExists(
                "a resource with these unique fields already exists".into(),
            );
        }
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
            return DomainError::precondition(
                crate::domain::Reason::NotFound,
                "a resource this write refers to does not exist",
            );
        }
        _ => {}
    }
    match &err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
            tracing::warn!(error = %err, "database unavailable");
            DomainError::Unavailable
        }
        DbErr::Exec(e) | DbErr::Query(e) if is_storage_full(&e.to_string()) => {
            tracing::error!(error = %err, "the database storage is full");
            DomainError::StorageFull
        }
        DbErr::Exec(e) | DbErr::Query(e) if is_connection_error(&e.to_string()) => {
            tracing::warn!(error = %err, "database unavailable");
            DomainError::Unavailable
        }
        _ if is_server_going_away(&err) => {
            tracing::warn!(error = %err, "database unavailable");
            DomainError::Unavailable
        }
        _ => {
            tracing::error!(error = %err, "database error");
            DomainError::Internal(err.to_string())
        }
    }
}

/// The server ended the session or refuses new ones: SQLSTATE class 08 (connection exception)
/// and 57P01-57P03 (PostgreSQL shutting down, restarting after a crash, or starting up). A call
/// in flight when the database stops gets one of these instead of a broken connection.
fn is_server_going_away(err: &DbErr) -> bool {
    let (DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
    | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e))) = err
    else {
        return false;
    };
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03"))
}

/// SQLITE_FULL, PostgreSQL's disk full (53100) and MariaDB's "table is full" / out of space.
fn is_storage_full(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "database or disk is full",
        "could not extend file",
        "no space left on device",
        "the table is full",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

fn is_connection_error(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "connection refused",
        "broken pipe",
        "connection reset",
        "pool timed out",
        "io error",
        "error communicating",
        "database is locked",
        "deadlock",
        // A read-only or failing file: unavailable until the operator mends it.
        "readonly database",
        "disk i/o error",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}
