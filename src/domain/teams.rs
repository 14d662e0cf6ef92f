//! Organization and team requests, and which kind of team a request may name.

use super::errors::DomainError;
use super::model::{JsonObject, Team};

#[derive(Debug, Clone, Default)]
pub struct NewTeam {
    /// None creates an organization.
    pub organization_id: Option<i64>,
    pub name: String,
    pub slug: String,
    pub image_url: String,
    pub max_allowed_memberships: i32,
    pub auto_accept_email_domain: Option<String>,
    pub admin_delete_enabled: bool,
    pub public_metadata: JsonObject,
    pub private_metadata: JsonObject,
}

/// Present fields are set; `auto_accept_email_domain: Some(None)` turns auto-accept off.
#[derive(Debug, Clone, Default)]
pub struct TeamPatch {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub image_url: Option<String>,
    pub max_allowed_memberships: Option<i32>,
    pub auto_accept_email_domain: Option<Option<String>>,
    pub admin_delete_enabled: Option<bool>,
    pub public_metadata: Option<JsonObject>,
    pub private_metadata: Option<JsonObject>,
    pub etag: Option<String>,
}

/// Which kind of team an id must name; the other kind is NOT_FOUND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamKind {
    Organization,
    /// A sub-team, of this organization when one is given.
    SubTeam(Option<i64>),
    Any,
}

impl TeamKind {
    pub fn admits(self, team: &Team) -> bool {
        match self {
            TeamKind::Organization => team.is_organization(),
            TeamKind::SubTeam(None) => !team.is_organization(),
            TeamKind::SubTeam(Some(org)) => team.parent_id == Some(org),
            TeamKind::Any => true,
        }
    }

    /// NOT_FOUND for an id that names no team of this kind.
    pub fn not_found(self, id: i64) -> DomainError {
        let noun = match self {
            TeamKind::Organization => "organization",
            _ => "team",
        };
        DomainError::not_found(format_args!("{noun} {id}"))
    }
}
