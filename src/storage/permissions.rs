//! The permission read model: what a user's memberships grant in a team, read from the database
//! for the actor checks of writes and for fully consistent reads, and the rows the cached
//! evaluation (`reads`) is filled from. Which memberships count is the domain's
//! `counts_for_permissions`, judged at the instant of the read (an expired membership counts for
//! nothing though the sweep has not deleted it yet); the SQL filters here only keep the rows few.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::{membership, role, team};
use super::shared::find_team;
use super::{Store, convert, db_error};
use crate::domain::DomainResult;
use crate::domain::access::{Effective, Policy};
use crate::domain::catalog::PermissionSet;
use crate::domain::model::Membership;
use crate::domain::teams::TeamKind;

/// A custom role row's permissions as stored.
pub(crate) fn stored_permissions(row: &role::Model) -> Vec<String> {
    serde_json::from_str(&row.permissions).unwrap_or_default()
}

/// The permissions a role holds, for a membership that uses it.
pub(crate) async fn role_permissions<C: ConnectionTrait>(
    conn: &C,
    policy: &Policy,
    role_id: &str,
) -> DomainResult<Arc<PermissionSet>> {
    if let Some(system) = policy.system_permissions(role_id) {
        return Ok(Arc::clone(system));
    }
    let row = role::Entity::find_by_id(role_id)
        .one(conn)
        .await
        .map_err(db_error)?;
    Ok(policy.role_permissions(role_id, row.as_ref().map(stored_permissions).as_deref()))
}

/// A user's grants in team `team_id` of `organization_id` (the same id for the organization
/// itself): the team membership's role, then the organization's.
pub(crate) async fn effective<C: ConnectionTrait>(
    conn: &C,
    policy: &Policy,
    user_id: i64,
    team_id: i64,
    organization_id: i64,
) -> DomainResult<Effective> {
    // A pre-filter only (fewer rows): `Effective::from_memberships` applies the rule.
    let rows = membership::Entity::find()
        .filter(membership::Column::UserId.eq(user_id))
        .filter(membership::Column::TeamId.is_in([team_id, organization_id]))
        .all(conn)
        .await
        .map_err(db_error)?;
    grants_of(conn, policy, team_id, organization_id, rows).await
}

/// The grants of a user's memberships in a team and its organization, with the custom roles'
/// permissions read in one query.
async fn grants_of<C: ConnectionTrait>(
    conn: &C,
    policy: &Policy,
    team_id: i64,
    organization_id: i64,
    rows: Vec<membership::Model>,
) -> DomainResult<Effective> {
    let memberships = rows
        .into_iter()
        .map(convert::membership)
        .collect::<DomainResult<Vec<_>>>()?;
    let custom: Vec<&str> = memberships
        .iter()
        .filter(|m| policy.system_permissions(&m.role_id).is_none())
        .map(|m| m.role_id.as_str())
        .collect();
    let custom_rows = if custom.is_empty() {
        Vec::new()
    } else {
        role::Entity::find()
            .filter(role::Column::Id.is_in(custom))
            .all(conn)
            .await
            .map_err(db_error)?
    };
    Ok(Effective::from_memberships(
        team_id,
        organization_id,
        Utc::now(),
        &memberships,
        |role_id| {
            let stored = custom_rows
                .iter()
                .find(|r| r.id == role_id)
                .map(stored_permissions);
            policy.role_permissions(role_id, stored.as_deref())
        },
    ))
}

impl Store {
    /// Effective permissions of a user in a team, read from the database: one query in the
    /// common case (the organization comes from a subquery); the team is read only when the user
    /// has no accepted membership there, to tell an unknown team (NOT_FOUND) from no access.
    pub async fn effective_permissions(
        &self,
        user_id: i64,
        team_id: i64,
    ) -> DomainResult<Effective> {
        let organization_of_team = Query::select()
            .expr(Expr::cust("COALESCE(parent_id, id)"))
            .from(team::Entity)
            .and_where(team::Column::Id.eq(team_id))
            .to_owned();
        // A pre-filter only (fewer rows): `Effective::from_memberships` applies the rule.
        let rows = membership::Entity::find()
            .filter(membership::Column::UserId.eq(user_id))
            .filter(
                Condition::any()
                    .add(membership::Column::TeamId.eq(team_id))
                    .add(membership::Column::TeamId.in_subquery(organization_of_team)),
            )
            .all(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?;
        let Some(organization_id) = rows.first().map(|m| m.organization_id) else {
            find_team(self.conn(), team_id, TeamKind::Any).await?;
            return Ok(Effective::default());
        };
        grants_of(self.conn(), self.policy(), team_id, organization_id, rows).await
    }

    /// A custom role's stored permissions; None when there is no such role.
    pub async fn custom_role_permissions(
        &self,
        role_id: &str,
    ) -> DomainResult<Option<Vec<String>>> {
        Ok(role::Entity::find_by_id(role_id)
            .one(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?
            .map(|row| stored_permissions(&row)))
    }

    /// Every membership of a user, pending ones included.
    pub async fn memberships_of_user(&self, user_id: i64) -> DomainResult<Vec<Membership>> {
        membership::Entity::find()
            .filter(membership::Column::UserId.eq(user_id))
            .order_by_asc(membership::Column::Id)
            .all(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?
            .into_iter()
            .map(convert::membership)
            .collect()
    }

    /// The memberships of `teams` (pending ones too: an expired pending organization membership
    /// still ends its sub-team memberships) with user id above `after`, by ascending user id, at
    /// most `limit` rows (every one when None): the rows the lookups judge.
    pub async fn members_of(
        &self,
        teams: &[i64],
        after: i64,
        limit: Option<u64>,
    ) -> DomainResult<Vec<Membership>> {
        membership::Entity::find()
            .filter(membership::Column::TeamId.is_in(teams.iter().copied()))
            .filter(membership::Column::UserId.gt(after))
            .order_by_asc(membership::Column::UserId)
            .order_by_asc(membership::Column::TeamId)
            .limit(limit)
            .all(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?
            .into_iter()
            .map(convert::membership)
            .collect()
    }

    /// Custom roles' stored permissions, by role id, in one query; absent roles are left out.
    pub async fn custom_roles_permissions(
        &self,
        role_ids: &[&str],
    ) -> DomainResult<HashMap<String, Vec<String>>> {
        if role_ids.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(role::Entity::find()
            .filter(role::Column::Id.is_in(role_ids.iter().copied()))
            .all(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?
            .into_iter()
            .map(|row| (row.id.clone(), stored_permissions(&row)))
            .collect())
    }

    /// An organization's sub-teams, ascending.
    pub async fn sub_teams(&self, organization_id: i64) -> DomainResult<Vec<i64>> {
        team::Entity::find()
            .select_only()
            .column(team::Column::Id)
            .filter(team::Column::ParentId.eq(organization_id))
            .order_by_asc(team::Column::Id)
            .into_tuple::<i64>()
            .all(self.conn())
            .await
            .map_err(|e| self.pool_error(e))
    }

    /// The organization a team belongs to (itself for an organization); NOT_FOUND for no team.
    pub async fn organization_of(&self, team_id: i64) -> DomainResult<i64> {
        Ok(find_team(self.conn(), team_id, TeamKind::Any)
            .await?
            .organization_id())
    }
}
