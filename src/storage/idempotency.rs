//! Safe retries. A create sent with a `request_id` claims (calling key, request id) in its own
//! transaction, after the actor check and before any invariant, and stores its encoded answer
//! there before committing: the answer is remembered exactly when the create committed, also
//! when the response never reached the client. A retry within `REMEMBERED_FOR` gets that answer
//! back; a failed create leaves nothing behind, so its retry runs again.
//!
//! Concurrent duplicates meet on the table's primary key: the second claim waits for the first
//! transaction (PostgreSQL, MariaDB) or runs after it (SQLite's single writer), then reads the
//! first answer instead of creating again.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, SqlErr,
    TransactionTrait,
};

use super::entities::request_id;
use super::{Store, WriteTx, convert, db_error};
use crate::domain::model::Actor;
use crate::domain::retries::{REMEMBERED_FOR, RetryKey};
use crate::domain::{DomainError, DomainResult};

/// How a create with a retry key encodes its answer, so that a retry gets the same bytes.
pub type Encode<'a, T> = Box<dyn Fn(&T) -> Vec<u8> + Send + Sync + 'a>;

/// A create's retry key with the encoding of its answer (the api's response message: storage
/// keeps bytes and never needs to know the message).
pub struct Once<'a, T> {
    pub key: RetryKey,
    encode: Encode<'a, T>,
}

impl<'a, T> Once<'a, T> {
    pub fn new(key: RetryKey, encode: impl Fn(&T) -> Vec<u8> + Send + Sync + 'a) -> Self {
        Self {
            key,
            encode: Box::new(encode),
        }
    }
}

/// What a create with an optional retry key did.
#[derive(Debug)]
pub enum Outcome<T> {
    Created(T),
    /// A retry: the encoded answer of the create that committed first; nothing was written.
    Replayed(Vec<u8>),
}

impl<T> Outcome<T> {
    /// The new resource of a create sent without a retry key, which always creates.
    pub fn created(self) -> DomainResult<T> {
        match self {
            Outcome::Created(value) => Ok(value),
            Outcome::Replayed(_) => Err(DomainError::Internal(
                "a create without a request id was answered from memory".into(),
            )),
        }
    }
}

/// The caller's claim: the key it is filed under. Writes without an API key (the CLI, the
/// bootstrap) have nothing to file it under and are not retried through this path.
fn filed<'k, T>(
    actor: &'k Actor,
    once: Option<&'k Once<'_, T>>,
) -> Option<(&'k str, &'k RetryKey)> {
    Some((actor.key_id.as_deref()?, &once?.key))
}

/// The committed answer to (key, request id), if one is still honoured; a different request
/// under the same id is refused. A stale entry is removed so the id can be claimed again.
async fn remembered<C: ConnectionTrait>(
    conn: &C,
    key_id: &str,
    key: &RetryKey,
) -> DomainResult<Option<Vec<u8>>> {
    let Some(row) = request_id::Entity::find_by_id((key_id.to_string(), key.request_id.clone()))
        .one(conn)
        .await
        .map_err(db_error)?
    else {
        return Ok(None);
    };
    if row.created_at < honoured_since() {
        request_id::Entity::delete_by_id((row.key_id, row.request_id))
            .exec(conn)
            .await
            .map_err(db_error)?;
        return Ok(None);
    }
    key.check_same(&row.fingerprint)?;
    Ok(Some(row.response))
}

fn honoured_since() -> i64 {
    convert::now_micros() - REMEMBERED_FOR.num_microseconds().unwrap_or(i64::MAX)
}

/// Claims the request id for this transaction, or returns the answer a retry gets. Called after
/// the actor check (a retry is authorized like the first attempt) and before the invariants (a
/// retry of a committed create must not fail on the resource it created itself).
pub(crate) async fn claim<T>(
    tx: &WriteTx,
    actor: &Actor,
    once: Option<&Once<'_, T>>,
) -> DomainResult<Option<Vec<u8>>> {
    let Some((key_id, key)) = filed(actor, once) else {
        return Ok(None);
    };
    if let Some(answer) = remembered(&**tx, key_id, key).await? {
        return Ok(Some(answer));
    }
    // In a savepoint: on PostgreSQL a failed statement would otherwise poison the transaction.
    let savepoint = tx.begin().await.map_err(db_error)?;
    let inserted = request_id::Entity::insert(request_id::ActiveModel {
        key_id: Set(key_id.to_string()),
        request_id: Set(key.request_id.clone()),
        fingerprint: Set(key.fingerprint.clone()),
        response: Set(Vec::new()),
        created_at: Set(convert::now_micros()),
    })
    .exec(&savepoint)
    .await;
    match inserted {
        Ok(_) => {
            savepoint.commit().await.map_err(db_error)?;
            Ok(None)
        }
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            savepoint.rollback().await.map_err(db_error)?;
            // A concurrent duplicate committed while this claim waited on its key: its answer.
            match remembered(&**tx, key_id, key).await? {
                Some(answer) => Ok(Some(answer)),
                None => {
                    tracing::warn!(
                        key_id,
                        "a claimed request id vanished under a concurrent retry"
                    );
                    Err(DomainError::Unavailable)
                }
            }
        }
        Err(e) => Err(db_error(e)),
    }
}

/// Stores the answer of a create that claimed its request id, in its transaction.
pub(crate) async fn remember<T>(
    tx: &WriteTx,
    actor: &Actor,
    once: Option<&Once<'_, T>>,
    answer: &T,
) -> DomainResult<()> {
    let (Some((key_id, key)), Some(once)) = (filed(actor, once), once) else {
        return Ok(());
    };
    request_id::Entity::update_many()
        .col_expr(
            request_id::Column::Response,
            Expr::value((once.encode)(answer)),
        )
        .filter(request_id::Column::KeyId.eq(key_id))
        .filter(request_id::Column::RequestId.eq(key.request_id.as_str()))
        .exec(&**tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

impl Store {
    /// Removes the answers older than the retry window (microseconds since the epoch before
    /// `cutoff`); returns how many. They are ignored already: this only keeps the table small.
    pub async fn prune_request_ids(&self, cutoff: i64) -> DomainResult<u64> {
        let deleted = request_id::Entity::delete_many()
            .filter(request_id::Column::CreatedAt.lt(cutoff))
            .exec(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?;
        Ok(deleted.rows_affected)
    }
}
