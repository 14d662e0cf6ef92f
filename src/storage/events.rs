//! The event rows every write records in its own transaction, and the audit-log reads.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};
use serde::Serialize;
use serde_json::Value;

use super::convert;
use super::entities::{event, event_sequence};
use super::{Store, db_error};
use crate::domain::events::{EventFilter, EventKind};
use crate::domain::model::{Actor, Event, JsonObject};
use crate::domain::page::{Page, PageRequest, PagedList};
use crate::domain::{DomainError, DomainResult};

/// What a write records; the sequence and time are assigned on insert.
#[derive(Debug)]
pub struct EventDraft {
    pub kind: EventKind,
    pub organization_id: Option<i64>,
    pub team_id: Option<i64>,
    pub user_id: Option<i64>,
    pub membership_id: Option<i64>,
    pub role_id: Option<String>,
    pub before: Option<JsonObject>,
    pub after: Option<JsonObject>,
}

impl EventDraft {
    /// An event of `kind` that names nothing yet.
    pub fn new(kind: EventKind) -> Self {
        Self {
            kind,
            organization_id: None,
            team_id: None,
            user_id: None,
            membership_id: None,
            role_id: None,
            before: None,
            after: None,
        }
    }
}

/// A snapshot of a domain value for `before` / `after`, spelled as its `Serialize` says (the
/// API's JSON spelling, see `domain::model`).
pub fn snapshot<T: Serialize>(value: &T) -> Option<JsonObject> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// Takes the next `count` event sequences and returns the last. The counter row stays locked
/// until the caller's transaction ends, so transactions commit in sequence order and a
/// rolled-back one gives its numbers back: sequences are contiguous and never become visible out
/// of order.
async fn next_sequences<C: ConnectionTrait>(conn: &C, count: u64) -> DomainResult<i64> {
    let backend = conn.get_database_backend();
    let row = match backend {
        DbBackend::MySql => {
            conn.execute_unprepared(&format!(
                "UPDATE event_sequence SET value = LAST_INSERT_ID(value + {count}) WHERE id = 1"
            ))
            .await
            .map_err(db_error)?;
            conn.query_one_raw(Statement::from_string(
                backend,
                "SELECT CAST(LAST_INSERT_ID() AS SIGNED) AS value",
            ))
            .await
        }
        _ => {
            conn.query_one_raw(Statement::from_string(
                backend,
                format!(
                    "UPDATE event_sequence SET value = value + {count} WHERE id = 1 RETURNING value"
                ),
            ))
            .await
        }
    }
    .map_err(db_error)?
    .ok_or_else(|| DomainError::Internal("the event_sequence row is missing".into()))?;
    row.try_get::<i64>("", "value").map_err(db_error)
}

/// The last sequence handed out: what a write that changed nothing reports as its revision.
pub async fn current_revision<C: ConnectionTrait>(conn: &C) -> DomainResult<i64> {
    Ok(event_sequence::Entity::find_by_id(1)
        .one(conn)
        .await
        .map_err(db_error)?
        .map(|row| row.value)
        .unwrap_or_default())
}

/// Inserts the event inside the caller's transaction and returns its sequence.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    draft: EventDraft,
) -> DomainResult<i64> {
    let sequence = next_sequences(conn, 1).await?;
    event::Entity::insert(event_row(sequence, convert::now_micros(), actor, draft))
        .exec_without_returning(conn)
        .await
        .map_err(db_error)?;
    notify(conn).await?;
    Ok(sequence)
}

/// Events per multi-row INSERT: 12 columns each, well under SQLite's 32,766 bind parameters
/// (PostgreSQL and MariaDB allow 65,535).
const EVENTS_PER_INSERT: usize = 1_000;

/// Inserts the events in order inside the caller's transaction, as `record` would one by one,
/// with one sequence range taken once; returns their sequences.
pub async fn record_many<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    drafts: Vec<EventDraft>,
) -> DomainResult<Vec<i64>> {
    if drafts.is_empty() {
        return Ok(Vec::new());
    }
    let count = drafts.len() as i64;
    let last = next_sequences(conn, count as u64).await?;
    let sequences: Vec<i64> = (last - count + 1..=last).collect();
    let now = convert::now_micros();
    let mut rows: Vec<event::ActiveModel> = sequences
        .iter()
        .zip(drafts)
        .map(|(sequence, draft)| event_row(*sequence, now, actor, draft))
        .collect();
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(EVENTS_PER_INSERT));
        let chunk = std::mem::replace(&mut rows, rest);
        event::Entity::insert_many(chunk)
            .exec_without_returning(conn)
            .await
            .map_err(db_error)?;
    }
    notify(conn).await?;
    Ok(sequences)
}

fn event_row(
    sequence: i64,
    occurred_at: i64,
    actor: &Actor,
    draft: EventDraft,
) -> event::ActiveModel {
    let text = |o: Option<JsonObject>| o.map(|o| convert::object_text(&o));
    event::ActiveModel {
        sequence: Set(sequence),
        occurred_at: Set(occurred_at),
        kind: Set(draft.kind.as_str().to_string()),
        actor_key_id: Set(actor.key_id.clone()),
        actor_user_id: Set(actor.user_id),
        organization_id: Set(draft.organization_id),
        team_id: Set(draft.team_id),
        user_id: Set(draft.user_id),
        membership_id: Set(draft.membership_id),
        role_id: Set(draft.role_id),
        before: Set(text(draft.before)),
        after: Set(text(draft.after)),
    }
}

/// Wakes PostgreSQL listeners at commit, once per transaction (equal payloads are folded).
async fn notify<C: ConnectionTrait>(conn: &C) -> DomainResult<()> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_unprepared("SELECT pg_notify('membership_events', '')")
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// Where the feed stands: the last sequence handed out, and how far retention has removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedHead {
    pub last: i64,
    pub pruned_through: i64,
}

impl Store {
    /// Events after `after` (ascending), at most `limit`, with the filter applied in the query.
    pub async fn events_after(
        &self,
        filter: &EventFilter,
        after: i64,
        limit: u64,
    ) -> DomainResult<Vec<Event>> {
        let mut query = event::Entity::find()
            .filter(event::Column::Sequence.gt(std::cmp::max(after, filter.after_sequence)))
            .order_by_asc(event::Column::Sequence)
            .limit(limit);
        if let Some(up_to) = filter.up_to {
            query = query.filter(event::Column::Sequence.lte(up_to));
        }
        if let Some(team_id) = filter.team_id {
            query = query.filter(
                event::Column::TeamId
                    .eq(team_id)
                    .or(event::Column::OrganizationId.eq(team_id)),
            );
        }
        if let Some(organization_id) = filter.organization_id {
            query = query.filter(event::Column::OrganizationId.eq(organization_id));
        }
        if !filter.kinds.is_empty() {
            query =
                query.filter(event::Column::Kind.is_in(filter.kinds.iter().map(String::as_str)));
        }
        if let Some(key) = &filter.actor_key_id {
            query = query.filter(event::Column::ActorKeyId.eq(key.as_str()));
        }
        if let Some(user) = filter.actor_user_id {
            query = query.filter(event::Column::ActorUserId.eq(user));
        }
        if let Some(t) = filter.occurred_after {
            query = query.filter(event::Column::OccurredAt.gte(t));
        }
        if let Some(t) = filter.occurred_before {
            query = query.filter(event::Column::OccurredAt.lt(t));
        }
        let rows = query
            .all(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?;
        Ok(rows.into_iter().map(convert::event).collect())
    }

    pub async fn list_events(
        &self,
        filter: &EventFilter,
        page: PageRequest,
    ) -> DomainResult<Page<Event>> {
        let page = page.of(PagedList::Events)?;
        let rows = self.events_after(filter, page.after, page.fetch()).await?;
        Ok(page.cut(rows, |e| e.sequence, |e| e))
    }

    pub async fn feed_head(&self) -> DomainResult<FeedHead> {
        let row = event_sequence::Entity::find_by_id(1)
            .one(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?
            .ok_or_else(|| DomainError::Internal("the event_sequence row is missing".into()))?;
        Ok(FeedHead {
            last: row.value,
            pruned_through: row.pruned_through,
        })
    }

    /// Removes events that occurred before `cutoff` (microseconds since the epoch). Watchers
    /// asking for them afterwards get EVENTS_EXPIRED. Returns how many were removed.
    pub async fn prune_events(&self, cutoff: i64) -> DomainResult<u64> {
        let newest_expired = event::Entity::find()
            .filter(event::Column::OccurredAt.lt(cutoff))
            .order_by_desc(event::Column::Sequence)
            .one(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?;
        let Some(newest_expired) = newest_expired else {
            return Ok(0);
        };
        let through = newest_expired.sequence;
        // Mark first, so that no watcher starts a replay that the delete then cuts short.
        event_sequence::Entity::update_many()
            .col_expr(event_sequence::Column::PrunedThrough, Expr::value(through))
            .filter(event_sequence::Column::Id.eq(1))
            .filter(event_sequence::Column::PrunedThrough.lt(through))
            .exec(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?;
        let deleted = event::Entity::delete_many()
            .filter(event::Column::Sequence.lte(through))
            .exec(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?;
        Ok(deleted.rows_affected)
    }
}
