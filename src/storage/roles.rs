//! Roles as memberships refer to them.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::db_error;
use super::entities::role;
use crate::domain::model::{RoleRef, Team};
use crate::domain::roles::{BaseRole, resolve_system_reference};
use crate::domain::{DomainError, DomainResult};

fn role_ref(row: role::Model) -> RoleRef {
    RoleRef {
        id: row.id,
        key: row.key,
        base: row.base_role.as_deref().and_then(BaseRole::parse),
    }
}

/// Resolves a role reference for a membership of `team`, in DESIGN.md's order: an exact role id;
/// a key among the team's custom roles, then its organization's, then the system roles; the
/// system aliases. A custom role of another team or organization is ROLE_NOT_FOUND.
pub async fn resolve_reference<C: ConnectionTrait>(
    conn: &C,
    team: &Team,
    reference: &str,
) -> DomainResult<RoleRef> {
    let usable = |row: &role::Model| match row.team_id {
        None => true,
        Some(owner) => owner == team.id || owner == team.organization_id(),
    };
    if let Some(row) = role::Entity::find_by_id(reference)
        .one(conn)
        .await
        .map_err(db_error)?
    {
        return if usable(&row) {
            Ok(role_ref(row))
        } else {
            Err(DomainError::role_not_found(reference))
        };
    }
    let mut scopes = vec![team.id];
    if !team.is_organization() {
        scopes.push(team.organization_id());
    }
    scopes.push(0);
    for scope in scopes {
        let found = role::Entity::find()
            .filter(role::Column::ScopeId.eq(scope))
            .filter(role::Column::Key.eq(reference))
            .one(conn)
            .await
            .map_err(db_error)?;
        if let Some(row) = found {
            return Ok(role_ref(row));
        }
    }
    match resolve_system_reference(reference) {
        Some(system) => Ok(RoleRef {
            id: system.id.to_string(),
            key: system.key.to_string(),
            base: Some(system.base),
        }),
        None => Err(DomainError::role_not_found(reference)),
    }
}
