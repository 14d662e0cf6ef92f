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
pub mod idempotency;
pub mod memberships;
pub mod migration;
pub mod organizations;
pub mod permissions;
pub mod roles;
pub mod shared;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    IsolationLevel, SqlErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
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
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        options
            .max_connections(if in_memory { 1 } else { max_connections.max(1) })
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
        })
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
        let txn = self
            .db
            .begin_with_options(options)
            .await
            .map_err(db_error)?;
        Ok(WriteTx {
            txn,
            _writer: writer,
            committed: Arc::clone(&self.committed),
        })
    }
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
        _ => {
            tracing::error!(error = %err, "database error");
            DomainError::Internal(err.to_string())
        }
    }
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
