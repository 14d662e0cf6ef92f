//! Rows to domain values and back.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::entities::{event, membership, team, user};
use crate::domain::model::{AutoRecordCalls, Event, JsonObject, Membership, Team, User};
use crate::domain::roles::BaseRole;
use crate::domain::{DomainError, DomainResult};

pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

pub fn time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

pub fn object(text: &str) -> JsonObject {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => JsonObject::new(),
    }
}

pub fn object_text(object: &JsonObject) -> String {
    Value::Object(object.clone()).to_string()
}

/// A stored value this build cannot read: INTERNAL, never the client's fault.
pub(crate) fn corrupt(what: &str, value: &str) -> DomainError {
    DomainError::Internal(format!("stored {what} {value:?} is not valid"))
}

pub fn user(row: user::Model) -> User {
    User {
        id: row.id,
        email: row.email,
        username: row.username,
        name: row.name,
        first_name: row.first_name,
        last_name: row.last_name,
        avatar_url: row.avatar_url,
        bio: row.bio,
        metadata: object(&row.metadata),
        created_at: time(row.created_at),
        updated_at: time(row.updated_at),
        version: row.version,
    }
}

pub fn team(row: team::Model) -> Team {
    Team {
        id: row.id,
        parent_id: row.parent_id,
        name: row.name,
        slug: row.slug,
        image_url: row.image_url,
        max_allowed_memberships: row.max_allowed_memberships,
        auto_accept_email_domain: row.auto_accept_email_domain,
        admin_delete_enabled: row.admin_delete_enabled,
        public_metadata: object(&row.public_metadata),
        private_metadata: object(&row.private_metadata),
        created_at: time(row.created_at),
        updated_at: time(row.updated_at),
        version: row.version,
    }
}

pub fn membership(row: membership::Model) -> DomainResult<Membership> {
    Ok(Membership {
        id: row.id,
        team_id: row.team_id,
        organization_id: row.organization_id,
        user_id: row.user_id,
        accepted: row.accepted,
        role: BaseRole::parse(&row.role).ok_or_else(|| corrupt("role", &row.role))?,
        role_id: row.role_id,
        role_key: row.role_key,
        disable_impersonation: row.disable_impersonation,
        auto_record_calls: AutoRecordCalls::parse(&row.auto_record_calls)
            .ok_or_else(|| corrupt("auto_record_calls", &row.auto_record_calls))?,
        public_metadata: object(&row.public_metadata),
        private_metadata: object(&row.private_metadata),
        expires_at: row.expires_at.map(time),
        created_at: time(row.created_at),
        updated_at: time(row.updated_at),
        version: row.version,
    })
}

pub fn event(row: event::Model) -> Event {
    Event {
        sequence: row.sequence,
        kind: row.kind,
        occurred_at: time(row.occurred_at),
        actor_key_id: row.actor_key_id,
        actor_user_id: row.actor_user_id,
        organization_id: row.organization_id,
        team_id: row.team_id,
        user_id: row.user_id,
        membership_id: row.membership_id,
        role_id: row.role_id,
        before: row.before.as_deref().map(object),
        after: row.after.as_deref().map(object),
    }
}
