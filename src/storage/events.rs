//! The event rows every write records in its own transaction, and the audit-log reads.

use sea_orm::sea_query::ExprTrait;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;
use serde_json::Value;

use super::convert;
use super::entities::event;
use super::{Store, db_error};
use crate::domain::model::{Actor, Event, JsonObject, Page};
use crate::domain::page::PageRequest;
use crate::domain::{DomainError, DomainResult};

/// What a write records; the sequence and time are assigned on insert.
#[derive(Debug, Default)]
pub struct EventDraft {
    pub kind: &'static str,
    pub organization_id: Option<i64>,
    pub team_id: Option<i64>,
    pub user_id: Option<i64>,
    pub membership_id: Option<i64>,
    pub role_id: Option<String>,
    pub before: Option<JsonObject>,
    pub after: Option<JsonObject>,
}

/// A snapshot of a domain value for `before` / `after`.
pub fn snapshot<T: Serialize>(value: &T) -> Option<JsonObject> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// Inserts the event inside the caller's transaction and returns its sequence.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    draft: EventDraft,
) -> DomainResult<i64> {
    let text = |o: Option<JsonObject>| o.map(|o| convert::object_text(&o));
    let result = event::Entity::insert(event::ActiveModel {
        occurred_at: Set(convert::now_micros()),
        kind: Set(draft.kind.to_string()),
        actor_key_id: Set(actor.key_id.clone()),
        actor_user_id: Set(actor.user_id),
        organization_id: Set(draft.organization_id),
        team_id: Set(draft.team_id),
        user_id: Set(draft.user_id),
        membership_id: Set(draft.membership_id),
        role_id: Set(draft.role_id),
        before: Set(text(draft.before)),
        after: Set(text(draft.after)),
        ..Default::default()
    })
    .exec(conn)
    .await
    .map_err(db_error)?;
    Ok(result.last_insert_id)
}

#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub after_sequence: i64,
    /// Events of this team, or of this organization and its teams.
    pub team_id: Option<i64>,
    pub kind: Option<String>,
    pub actor_key_id: Option<String>,
    pub actor_user_id: Option<i64>,
}

impl Store {
    pub async fn list_events(
        &self,
        filter: &EventFilter,
        page: PageRequest,
    ) -> DomainResult<Page<Event>> {
        let mut query = event::Entity::find()
            .filter(event::Column::Sequence.gt(std::cmp::max(page.after, filter.after_sequence)))
            .order_by_asc(event::Column::Sequence)
            .limit(page.size + 1);
        if let Some(team_id) = filter.team_id {
            query = query.filter(
                event::Column::TeamId
                    .eq(team_id)
                    .or(event::Column::OrganizationId.eq(team_id)),
            );
        }
        if let Some(kind) = &filter.kind {
            query = query.filter(event::Column::Kind.eq(kind.as_str()));
        }
        if let Some(key) = &filter.actor_key_id {
            query = query.filter(event::Column::ActorKeyId.eq(key.as_str()));
        }
        if let Some(user) = filter.actor_user_id {
            query = query.filter(event::Column::ActorUserId.eq(user));
        }
        let rows = query.all(self.conn()).await.map_err(db_error)?;
        Ok(page_of(rows, page.size, |r| r.sequence, convert::event))
    }
}

/// Cuts the extra row a keyset query fetched to learn whether another page exists.
pub(crate) fn page_of<R, T>(
    mut rows: Vec<R>,
    size: u64,
    key: impl Fn(&R) -> i64,
    map: impl Fn(R) -> T,
) -> Page<T> {
    let more = rows.len() as u64 > size;
    rows.truncate(size as usize);
    let next_after = if more { rows.last().map(&key) } else { None };
    Page {
        items: rows.into_iter().map(map).collect(),
        next_after,
    }
}

/// Like `page_of` for conversions that can fail.
pub(crate) fn try_page_of<R, T>(
    rows: Vec<R>,
    size: u64,
    key: impl Fn(&R) -> i64,
    map: impl Fn(R) -> DomainResult<T>,
) -> DomainResult<Page<T>> {
    let page = page_of(rows, size, key, map);
    let items = page
        .items
        .into_iter()
        .collect::<Result<Vec<T>, DomainError>>()?;
    Ok(Page {
        items,
        next_after: page.next_after,
    })
}
