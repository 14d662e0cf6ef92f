//! Memberships, and the organization lock that every membership write takes first.
//!
//! Rules that span rows (the last owner, the membership limit) are checked after locking the
//! organization's row, which every competing writer of that organization must lock too; at READ
//! COMMITTED every read after the lock sees what the previous holder committed.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{Set, Unchanged},
    ColumnTrait, ConnectionTrait, EntityTrait, JoinType, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};

use super::entities::{membership, team, user};
use super::events::{self, EventDraft, snapshot};
use super::organizations::TeamKind;
use super::organizations::find_team;
use super::users::{Written, find_user};
use super::{Store, WriteTx, attributes, convert, db_error, roles};
use crate::domain::actor::{self, RoleChange, RoleSide};
use crate::domain::model::{
    Actor, AutoRecordCalls, JsonObject, Membership, MembershipView, Page, RoleRef, Team,
};
use crate::domain::page::PageRequest;
use crate::domain::roles::BaseRole;
use crate::domain::{DomainError, DomainResult, Reason, rules};

/// How a request names a membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MembershipAddress {
    /// The team (the organization for organization memberships); optional with `MembershipId`.
    pub team_id: Option<i64>,
    pub target: MembershipTarget,
    /// When set, the team must belong to this organization.
    pub organization_id: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipTarget {
    MembershipId(i64),
    /// Needs `team_id`.
    UserId(i64),
}

#[derive(Debug, Clone, Default)]
pub struct NewMembership {
    pub team_id: i64,
    pub organization_id: Option<i64>,
    pub user_id: i64,
    pub role: Option<BaseRole>,
    pub role_id: Option<String>,
    pub accepted: bool,
    pub disable_impersonation: bool,
    pub auto_record_calls: Option<AutoRecordCalls>,
    pub public_metadata: JsonObject,
    pub private_metadata: JsonObject,
}

#[derive(Debug, Clone, Default)]
pub struct MembershipPatch {
    pub accepted: Option<bool>,
    pub role: Option<BaseRole>,
    pub role_id: Option<String>,
    pub disable_impersonation: Option<bool>,
    pub auto_record_calls: Option<AutoRecordCalls>,
    pub public_metadata: Option<JsonObject>,
    pub private_metadata: Option<JsonObject>,
    pub etag: Option<String>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct MembershipFilter {
    pub role: Option<BaseRole>,
    pub accepted: Option<bool>,
}

/// Locks the organization's row for the rest of the transaction (SQLite: writers are already
/// serialised) and returns it. NOT_FOUND when there is no such organization.
pub(crate) async fn lock_organization<C: ConnectionTrait>(
    conn: &C,
    organization_id: i64,
) -> DomainResult<Team> {
    team::Entity::find_by_id(organization_id)
        .filter(team::Column::ParentId.is_null())
        .lock_exclusive()
        .one(conn)
        .await
        .map_err(db_error)?
        .map(convert::team)
        .ok_or_else(|| DomainError::not_found(format_args!("organization {organization_id}")))
}

fn membership_not_found(address: &MembershipAddress) -> DomainError {
    match (address.target, address.team_id) {
        (MembershipTarget::MembershipId(id), _) => {
            DomainError::not_found(format_args!("membership {id}"))
        }
        (MembershipTarget::UserId(user), Some(team)) => {
            DomainError::not_found(format_args!("membership of user {user} in team {team}"))
        }
        (MembershipTarget::UserId(user), None) => {
            DomainError::not_found(format_args!("membership of user {user}"))
        }
    }
}

/// Finds the membership an address names and locks its organization for the rest of the
/// transaction. SQLite serialises writers already; elsewhere the membership is read again under
/// the lock, since a competing writer may have changed it meanwhile.
async fn locate_locked(tx: &WriteTx, address: &MembershipAddress) -> DomainResult<Membership> {
    let found = locate(&**tx, address).await?;
    if tx.get_database_backend() == sea_orm::DbBackend::Sqlite {
        return Ok(found);
    }
    lock_organization(&**tx, found.organization_id).await?;
    locate(&**tx, address).await
}

/// The query for the membership an address names.
fn address_query(address: &MembershipAddress) -> DomainResult<Select<membership::Entity>> {
    Ok(match (address.target, address.team_id) {
        (MembershipTarget::MembershipId(id), team) => {
            let q = membership::Entity::find_by_id(id);
            match team {
                Some(team) => q.filter(membership::Column::TeamId.eq(team)),
                None => q,
            }
        }
        (MembershipTarget::UserId(user), Some(team)) => membership::Entity::find()
            .filter(membership::Column::TeamId.eq(team))
            .filter(membership::Column::UserId.eq(user)),
        (MembershipTarget::UserId(_), None) => {
            return Err(DomainError::invalid(
                "team_id",
                "is required when addressing a membership by user_id",
            ));
        }
    })
}

/// A found membership outside the named organization is NOT_FOUND like a missing one.
fn in_organization(
    address: &MembershipAddress,
    row: Option<membership::Model>,
) -> DomainResult<membership::Model> {
    row.filter(|row| {
        address
            .organization_id
            .is_none_or(|org| org == row.organization_id)
    })
    .ok_or_else(|| membership_not_found(address))
}

/// Finds the membership an address names. A membership outside the named team, or a team outside
/// the named organization, is NOT_FOUND like a missing one.
async fn locate<C: ConnectionTrait>(
    conn: &C,
    address: &MembershipAddress,
) -> DomainResult<Membership> {
    let row = address_query(address)?.one(conn).await.map_err(db_error)?;
    let row = in_organization(address, row)?;
    convert::membership(row)
}

async fn other_accepted_owners<C: ConnectionTrait>(conn: &C, m: &Membership) -> DomainResult<u64> {
    membership::Entity::find()
        .filter(membership::Column::TeamId.eq(m.team_id))
        .filter(membership::Column::Accepted.eq(true))
        .filter(membership::Column::Role.eq(BaseRole::Owner.as_str()))
        .filter(membership::Column::Id.ne(m.id))
        .count(conn)
        .await
        .map_err(db_error)
}

pub(crate) fn membership_event(
    kind: &'static str,
    m: &Membership,
    before: Option<&Membership>,
    after: Option<&Membership>,
) -> EventDraft {
    EventDraft {
        kind,
        organization_id: Some(m.organization_id),
        team_id: Some(m.team_id),
        user_id: Some(m.user_id),
        membership_id: Some(m.id),
        role_id: Some(m.role_id.clone()),
        before: before.and_then(snapshot),
        after: after.and_then(snapshot),
    }
}

/// Deletes one membership under the caller's organization lock, after the last-owner check, and
/// records its event.
pub(crate) async fn delete_one(tx: &WriteTx, actor: &Actor, m: &Membership) -> DomainResult<i64> {
    rules::check_last_owner(m, None, other_accepted_owners(&**tx, m).await?)?;
    attributes::delete_assignments_of(&**tx, m.id).await?;
    membership::Entity::delete_by_id(m.id)
        .exec(&**tx)
        .await
        .map_err(db_error)?;
    events::record(
        &**tx,
        actor,
        membership_event("membership.deleted", m, Some(m), None),
    )
    .await
}

impl Store {
    /// The actor rules for giving a membership a role (DESIGN.md section 4), when the call names
    /// an end user; read under the organization's lock like the write itself.
    async fn check_actor_role_change(
        &self,
        tx: &WriteTx,
        actor: &Actor,
        team: &Team,
        target_user_id: i64,
        before: Option<(BaseRole, &str)>,
        after: (BaseRole, &str),
    ) -> DomainResult<()> {
        let Some(actor_user_id) = actor.user_id else {
            return Ok(());
        };
        let policy = self.policy();
        let grants = roles::effective(&**tx, policy, actor_user_id, team).await?;
        let before_permissions = match before {
            Some((_, role_id)) => Some(roles::role_permissions(&**tx, policy, role_id).await?),
            None => None,
        };
        let after_permissions = roles::role_permissions(&**tx, policy, after.1).await?;
        let change = RoleChange {
            target_user_id,
            team_is_organization: team.is_organization(),
            before: before.zip(before_permissions.as_deref()).map(
                |((role, role_id), permissions)| RoleSide {
                    role,
                    role_id,
                    permissions,
                },
            ),
            after: RoleSide {
                role: after.0,
                role_id: after.1,
                permissions: &after_permissions,
            },
        };
        actor::check_role_change(actor_user_id, &grants, &policy.catalog, &change)
    }

    pub async fn create_membership(
        &self,
        actor: &Actor,
        new: NewMembership,
    ) -> DomainResult<Written<MembershipView>> {
        let tx = self.begin_write().await?;
        let team = find_team(&*tx, new.team_id, TeamKind::Any).await?;
        if new
            .organization_id
            .is_some_and(|org| org != team.organization_id())
        {
            return Err(DomainError::not_found(format_args!("team {}", new.team_id)));
        }
        let organization = lock_organization(&*tx, team.organization_id()).await?;
        // Locked so that a concurrent DeleteUser cannot remove the user under the new membership.
        let user = user::Entity::find_by_id(new.user_id)
            .lock_exclusive()
            .one(&*tx)
            .await
            .map_err(db_error)?
            .map(convert::user)
            .ok_or_else(|| DomainError::not_found(format_args!("user {}", new.user_id)))?;
        let reference = match &new.role_id {
            Some(r) => Some(roles::resolve_reference(&*tx, &team, r).await?),
            None => None,
        };
        let (role, role_ref) = rules::choose_role(new.role, reference, None)?;
        // Actor rules come before the invariants: PERMISSION_DENIED wins.
        self.check_actor_role_change(&tx, actor, &team, new.user_id, None, (role, &role_ref.id))
            .await?;
        let exists = |team_id: i64| {
            membership::Entity::find()
                .filter(membership::Column::TeamId.eq(team_id))
                .filter(membership::Column::UserId.eq(new.user_id))
                .one(&*tx)
        };
        if exists(team.id).await.map_err(db_error)?.is_some() {
            return Err(DomainError::AlreadyExists(format!(
                "user {} already has a membership in team {}",
                new.user_id, team.id
            )));
        }
        if team.is_organization() {
            let count = membership::Entity::find()
                .filter(membership::Column::TeamId.eq(organization.id))
                .count(&*tx)
                .await
                .map_err(db_error)?;
            rules::check_membership_limit(&organization, count)?;
        } else if exists(organization.id).await.map_err(db_error)?.is_none() {
            return Err(DomainError::precondition(
                Reason::NotAnOrganizationMember,
                format!(
                    "user {} is not a member of organization {}",
                    new.user_id, organization.id
                ),
            ));
        }
        let accepted = rules::accepted_on_create(new.accepted, &organization, &user.email);
        let now = convert::now_micros();
        let row = membership::ActiveModel {
            team_id: Set(team.id),
            organization_id: Set(organization.id),
            user_id: Set(user.id),
            accepted: Set(accepted),
            role: Set(role.as_str().to_string()),
            role_id: Set(role_ref.id),
            role_key: Set(role_ref.key),
            disable_impersonation: Set(new.disable_impersonation),
            auto_record_calls: Set(new
                .auto_record_calls
                .unwrap_or(AutoRecordCalls::Unset)
                .as_str()
                .to_string()),
            public_metadata: Set(convert::object_text(&new.public_metadata)),
            private_metadata: Set(convert::object_text(&new.private_metadata)),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
            ..Default::default()
        }
        .insert(&*tx)
        .await
        .map_err(db_error)?;
        let created = convert::membership(row)?;
        let revision = events::record(
            &*tx,
            actor,
            membership_event("membership.created", &created, None, Some(&created)),
        )
        .await?;
        tx.commit().await?;
        Ok(Written {
            value: MembershipView {
                membership: created,
                user,
                attributes: Vec::new(),
            },
            revision,
        })
    }

    pub async fn get_membership(
        &self,
        address: &MembershipAddress,
    ) -> DomainResult<MembershipView> {
        // The membership and its user in one query: this is the fully consistent read path.
        let found = address_query(address)?
            .select_also(user::Entity)
            .join(
                JoinType::InnerJoin,
                membership::Entity::belongs_to(user::Entity)
                    .from(membership::Column::UserId)
                    .to(user::Column::Id)
                    .into(),
            )
            .one(self.conn())
            .await
            .map_err(db_error)?;
        let (row, user) = match found {
            Some((row, Some(user))) => (Some(row), user),
            _ => return Err(membership_not_found(address)),
        };
        let membership = convert::membership(in_organization(address, row)?)?;
        let attributes = self.attributes_of_one(&membership).await?;
        Ok(MembershipView {
            membership,
            user: convert::user(user),
            attributes,
        })
    }

    pub async fn update_membership(
        &self,
        actor: &Actor,
        address: &MembershipAddress,
        patch: MembershipPatch,
    ) -> DomainResult<Written<MembershipView>> {
        let tx = self.begin_write().await?;
        let before = locate_locked(&tx, address).await?;
        rules::check_etag(patch.etag.as_deref(), before.version)?;
        // The team is needed only to resolve a role reference or to judge an actor.
        let team = if patch.role_id.is_some() || actor.user_id.is_some() {
            Some(find_team(&*tx, before.team_id, TeamKind::Any).await?)
        } else {
            None
        };
        let reference = match (&patch.role_id, &team) {
            (Some(r), Some(team)) => Some(roles::resolve_reference(&*tx, team, r).await?),
            _ => None,
        };
        let current_ref = RoleRef {
            id: before.role_id.clone(),
            key: before.role_key.clone(),
            base: None,
        };
        let (role, role_ref) =
            rules::choose_role(patch.role, reference, Some((before.role, current_ref)))?;
        let mut after = before.clone();
        after.role = role;
        after.role_id = role_ref.id;
        after.role_key = role_ref.key;
        if let Some(v) = patch.accepted {
            after.accepted = v;
        }
        if let Some(v) = patch.disable_impersonation {
            after.disable_impersonation = v;
        }
        if let Some(v) = patch.auto_record_calls {
            after.auto_record_calls = v;
        }
        if let Some(v) = patch.public_metadata {
            after.public_metadata = v;
        }
        if let Some(v) = patch.private_metadata {
            after.private_metadata = v;
        }
        if after == before {
            let revision = events::current_revision(&*tx).await?;
            tx.commit().await?;
            let view = self.view_of(before).await?;
            return Ok(Written {
                value: view,
                revision,
            });
        }
        if let Some(team) = &team {
            self.check_actor_role_change(
                &tx,
                actor,
                team,
                before.user_id,
                Some((before.role, &before.role_id)),
                (after.role, &after.role_id),
            )
            .await?;
        }
        if before.is_accepted_owner() && !after.is_accepted_owner() {
            rules::check_last_owner(
                &before,
                Some(&after),
                other_accepted_owners(&*tx, &before).await?,
            )?;
        }
        let active = membership::ActiveModel {
            id: Unchanged(before.id),
            accepted: Set(after.accepted),
            role: Set(after.role.as_str().to_string()),
            role_id: Set(after.role_id.clone()),
            role_key: Set(after.role_key.clone()),
            disable_impersonation: Set(after.disable_impersonation),
            auto_record_calls: Set(after.auto_record_calls.as_str().to_string()),
            public_metadata: Set(convert::object_text(&after.public_metadata)),
            private_metadata: Set(convert::object_text(&after.private_metadata)),
            updated_at: Set(convert::now_micros()),
            version: Set(before.version + 1),
            ..Default::default()
        };
        let updated = convert::membership(active.update(&*tx).await.map_err(db_error)?)?;
        let revision = events::record(
            &*tx,
            actor,
            membership_event(
                "membership.updated",
                &updated,
                Some(&before),
                Some(&updated),
            ),
        )
        .await?;
        tx.commit().await?;
        // The profile and attributes beside it are read after the commit, outside the writers'
        // critical section.
        Ok(Written {
            value: self.view_of(updated).await?,
            revision,
        })
    }

    /// Attributes belong to organization memberships only: sub-team ones skip the query.
    async fn attributes_of_one(
        &self,
        m: &Membership,
    ) -> DomainResult<Vec<crate::domain::model::AssignedAttribute>> {
        if m.team_id != m.organization_id {
            return Ok(Vec::new());
        }
        Ok(attributes::attributes_of(self.conn(), &[m.id])
            .await?
            .remove(&m.id)
            .unwrap_or_default())
    }

    /// A membership with its user's profile and its attributes.
    async fn view_of(&self, membership: Membership) -> DomainResult<MembershipView> {
        let user = find_user(self.conn(), membership.user_id).await?;
        let attributes = self.attributes_of_one(&membership).await?;
        Ok(MembershipView {
            membership,
            user,
            attributes,
        })
    }

    /// Deletes a membership; an organization membership takes the user's sub-team memberships in
    /// that organization with it, each subject to the last-owner rule.
    pub async fn delete_membership(
        &self,
        actor: &Actor,
        address: &MembershipAddress,
        etag: Option<&str>,
    ) -> DomainResult<i64> {
        let tx = self.begin_write().await?;
        let target = locate_locked(&tx, address).await?;
        rules::check_etag(etag, target.version)?;
        let mut revision = 0;
        if target.team_id == target.organization_id {
            let sub_team_rows = membership::Entity::find()
                .filter(membership::Column::OrganizationId.eq(target.organization_id))
                .filter(membership::Column::UserId.eq(target.user_id))
                .filter(membership::Column::Id.ne(target.id))
                .order_by_asc(membership::Column::Id)
                .all(&*tx)
                .await
                .map_err(db_error)?;
            for row in sub_team_rows {
                revision = delete_one(&tx, actor, &convert::membership(row)?).await?;
            }
        }
        revision = revision.max(delete_one(&tx, actor, &target).await?);
        tx.commit().await?;
        Ok(revision)
    }

    pub async fn list_memberships(
        &self,
        team_id: i64,
        organization_id: Option<i64>,
        filter: MembershipFilter,
        page: PageRequest,
    ) -> DomainResult<Page<MembershipView>> {
        let team = find_team(self.conn(), team_id, TeamKind::Any).await?;
        if organization_id.is_some_and(|org| org != team.organization_id()) {
            return Err(DomainError::not_found(format_args!("team {team_id}")));
        }
        let mut query = membership::Entity::find()
            .filter(membership::Column::TeamId.eq(team_id))
            .filter(membership::Column::Id.gt(page.after))
            .order_by_asc(membership::Column::Id)
            .limit(page.size + 1);
        if let Some(role) = filter.role {
            query = query.filter(membership::Column::Role.eq(role.as_str()));
        }
        if let Some(accepted) = filter.accepted {
            query = query.filter(membership::Column::Accepted.eq(accepted));
        }
        let rows = query.all(self.conn()).await.map_err(db_error)?;
        self.with_users(events::try_page_of(
            rows,
            page.size,
            |r| r.id,
            convert::membership,
        )?)
        .await
    }

    pub async fn list_user_memberships(
        &self,
        user_id: i64,
        page: PageRequest,
    ) -> DomainResult<Page<MembershipView>> {
        find_user(self.conn(), user_id).await?;
        let rows = membership::Entity::find()
            .filter(membership::Column::UserId.eq(user_id))
            .filter(membership::Column::Id.gt(page.after))
            .order_by_asc(membership::Column::Id)
            .limit(page.size + 1)
            .all(self.conn())
            .await
            .map_err(db_error)?;
        self.with_users(events::try_page_of(
            rows,
            page.size,
            |r| r.id,
            convert::membership,
        )?)
        .await
    }

    async fn with_users(&self, page: Page<Membership>) -> DomainResult<Page<MembershipView>> {
        let mut ids: Vec<i64> = page.items.iter().map(|m| m.user_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let users: HashMap<i64, _> = if ids.is_empty() {
            HashMap::new()
        } else {
            user::Entity::find()
                .filter(user::Column::Id.is_in(ids))
                .all(self.conn())
                .await
                .map_err(db_error)?
                .into_iter()
                .map(|row| (row.id, convert::user(row)))
                .collect()
        };
        let membership_ids: Vec<i64> = page.items.iter().map(|m| m.id).collect();
        let mut attributes = attributes::attributes_of(self.conn(), &membership_ids).await?;
        let items = page
            .items
            .into_iter()
            // A user deleted between the two reads took the membership with it.
            .filter_map(|membership| {
                let user = users.get(&membership.user_id).cloned()?;
                let attributes = attributes.remove(&membership.id).unwrap_or_default();
                Some(MembershipView {
                    membership,
                    user,
                    attributes,
                })
            })
            .collect();
        Ok(Page {
            items,
            next_after: page.next_after,
        })
    }
}

impl MembershipAddress {
    /// Whether `m` is the membership this address names (the checks `locate` makes in SQL).
    pub fn matches(&self, m: &Membership) -> bool {
        let target = match self.target {
            MembershipTarget::MembershipId(id) => m.id == id,
            MembershipTarget::UserId(user) => m.user_id == user && self.team_id.is_some(),
        };
        target
            && self.team_id.is_none_or(|t| t == m.team_id)
            && self.organization_id.is_none_or(|o| o == m.organization_id)
    }
}

impl Store {
    /// Every membership of a user, pending ones included.
    pub async fn memberships_of_user(&self, user_id: i64) -> DomainResult<Vec<Membership>> {
        membership::Entity::find()
            .filter(membership::Column::UserId.eq(user_id))
            .order_by_asc(membership::Column::Id)
            .all(self.conn())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(convert::membership)
            .collect()
    }

    /// The organization a team belongs to (itself for an organization); NOT_FOUND for no team.
    pub async fn organization_of(&self, team_id: i64) -> DomainResult<i64> {
        Ok(find_team(self.conn(), team_id, TeamKind::Any)
            .await?
            .organization_id())
    }
}
