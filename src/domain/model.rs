//! The entities as the domain sees them, independent of their storage rows and wire messages.
//!
//! `Serialize` gives an entity's event snapshot (`Event.before` / `after`), spelled as the API's
//! JSON spells the resource: lowerCamelCase field names, enum values by their proto names.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::roles::BaseRole;

/// A JSON object (metadata, snapshots).
pub type JsonObject = Map<String, Value>;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: i64,
    pub email: String,
    pub username: Option<String>,
    pub name: String,
    pub first_name: String,
    pub last_name: String,
    pub avatar_url: String,
    pub bio: String,
    pub metadata: JsonObject,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

/// An organization (no parent) or one of its sub-teams.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub name: String,
    pub slug: String,
    pub image_url: String,
    pub max_allowed_memberships: i32,
    pub auto_accept_email_domain: Option<String>,
    pub admin_delete_enabled: bool,
    pub public_metadata: JsonObject,
    pub private_metadata: JsonObject,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl Team {
    pub fn is_organization(&self) -> bool {
        self.parent_id.is_none()
    }

    pub fn organization_id(&self) -> i64 {
        self.parent_id.unwrap_or(self.id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AutoRecordCalls {
    #[serde(rename = "AUTO_RECORD_CALLS_UNSET")]
    Unset,
    #[serde(rename = "AUTO_RECORD_CALLS_DISABLED")]
    Disabled,
    #[serde(rename = "AUTO_RECORD_CALLS_ENABLED")]
    Enabled,
}

impl AutoRecordCalls {
    pub fn as_str(self) -> &'static str {
        match self {
            AutoRecordCalls::Unset => "UNSET",
            AutoRecordCalls::Disabled => "DISABLED",
            AutoRecordCalls::Enabled => "ENABLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "UNSET" => Some(AutoRecordCalls::Unset),
            "DISABLED" => Some(AutoRecordCalls::Disabled),
            "ENABLED" => Some(AutoRecordCalls::Enabled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub id: i64,
    pub team_id: i64,
    pub organization_id: i64,
    pub user_id: i64,
    pub accepted: bool,
    pub role: BaseRole,
    pub role_id: String,
    pub role_key: String,
    pub disable_impersonation: bool,
    pub auto_record_calls: AutoRecordCalls,
    pub public_metadata: JsonObject,
    pub private_metadata: JsonObject,
    /// From this instant on the membership grants nothing; `None`: it never expires.
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl Membership {
    pub fn is_accepted_owner(&self) -> bool {
        self.accepted && self.role == BaseRole::Owner
    }

    /// Whether it has expired at `now` (the instant itself included).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A membership with what its readers want beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipView {
    pub membership: Membership,
    pub user: User,
    /// The organization attributes assigned to it (organization memberships only).
    pub attributes: Vec<AssignedAttribute>,
}

/// An organization attribute as one membership holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedAttribute {
    pub attribute_id: String,
    pub name: String,
    pub value: AssignedValue,
}

/// The value by type; `type` in snapshots uses cal.com's names (`text`, `singleSelect`, …).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum AssignedValue {
    /// `assignment_id` names the free value itself, as cal.com's `optionId` does.
    Text {
        assignment_id: String,
        text: String,
    },
    Number {
        assignment_id: String,
        number: f64,
    },
    SingleSelect {
        option: ChosenOption,
    },
    MultiSelect {
        options: Vec<ChosenOption>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChosenOption {
    pub id: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RoleType {
    #[serde(rename = "ROLE_TYPE_SYSTEM")]
    System,
    #[serde(rename = "ROLE_TYPE_CUSTOM")]
    Custom,
}

/// A PBAC role: a system role (no team) or a team's custom role.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    pub id: String,
    pub key: String,
    pub name: String,
    pub color: Option<String>,
    pub description: Option<String>,
    pub team_id: Option<i64>,
    /// `type`, as the API names it.
    #[serde(rename = "type")]
    pub role_type: RoleType,
    /// The base level a system role implies.
    pub base: Option<BaseRole>,
    pub permissions: std::collections::BTreeSet<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

/// A role as a membership refers to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRef {
    pub id: String,
    pub key: String,
    /// The base level a system role implies; custom roles imply none.
    pub base: Option<BaseRole>,
}

/// Who made a write: the API key, and the end user it acts for, when one was named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    pub key_id: Option<String>,
    pub user_id: Option<i64>,
    /// The organization the key is bound to: what it writes is recorded as that organization's.
    pub organization_id: Option<i64>,
}

impl Actor {
    /// What the writing key may touch (`domain::tenancy`).
    pub fn binding(&self) -> super::tenancy::Binding {
        super::tenancy::Binding(self.organization_id)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub sequence: i64,
    /// The wire name of its `EventKind`.
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub actor_key_id: Option<String>,
    pub actor_user_id: Option<i64>,
    pub organization_id: Option<i64>,
    pub team_id: Option<i64>,
    pub user_id: Option<i64>,
    pub membership_id: Option<i64>,
    pub role_id: Option<String>,
    pub before: Option<JsonObject>,
    pub after: Option<JsonObject>,
}

/// The opaque version tag of a row; it changes on every write of the row.
pub fn etag(version: i64) -> String {
    format!("v{version}")
}

/// How fresh a read must be (docs/design.md section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// From this replica's cache.
    #[default]
    MinimizeLatency,
    /// Reflecting at least this revision.
    AtLeastAsFresh(i64),
    /// From the database.
    FullyConsistent,
}
