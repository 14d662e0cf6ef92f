//! Memberships: their writes under the organization lock (see `shared::lock_organization`), and
//! their reads with the user's profile and attributes beside them.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{Set, Unchanged},
    ColumnTrait, ConnectionTrait, EntityTrait, JoinType, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::actor::authorize;
use super::entities::{membership, user};
use super::events;
use super::idempotency::{self, Once, Outcome};
use super::permissions::role_permissions;
use super::shared::{
    Written, attributes_of, delete_membership, find_team, find_user, insert_membership,
    lock_organization, membership_event, membership_query, other_accepted_owners,
    pending_invitations, resolve_role,
};
use super::{Store, WriteTx, convert, db_error};
use crate::domain::catalog::PermissionSet;
use crate::domain::events::EventKind;
use crate::domain::memberships::{
    MembershipAddress, MembershipFilter, MembershipPatch, NewMembership,
};
use crate::domain::model::{Actor, AssignedAttribute, Membership, MembershipView, RoleRef, Team};
use crate::domain::page::{Page, PageRequest, PagedList};
use crate::domain::policy::{MemberRole, MembershipFields, RoleFacts, TargetMembership, Write};
use crate::domain::roles::BaseRole;
use crate::domain::teams::TeamKind;
use crate::domain::{DomainError, DomainResult, rules};

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

/// Finds the membership an address names. A membership outside the named team, or a team outside
/// the named organization, is NOT_FOUND like a missing one.
async fn locate<C: ConnectionTrait>(
    conn: &C,
    address: &MembershipAddress,
) -> DomainResult<Membership> {
    let row = membership_query(address)?
        .one(conn)
        .await
        .map_err(db_error)?
        .ok_or_else(|| address.not_found())?;
    convert::membership(row)
}

/// The user's membership in the organization of sub-team membership `m`.
async fn organization_membership_of<C: ConnectionTrait>(
    conn: &C,
    m: &Membership,
) -> DomainResult<Option<Membership>> {
    membership::Entity::find()
        .filter(membership::Column::TeamId.eq(m.organization_id))
        .filter(membership::Column::UserId.eq(m.user_id))
        .one(conn)
        .await
        .map_err(db_error)?
        .map(convert::membership)
        .transpose()
}

/// Whether the user of organization membership `m` is OWNER of one of its sub-teams.
async fn owns_a_sub_team<C: ConnectionTrait>(conn: &C, m: &Membership) -> DomainResult<bool> {
    Ok(membership::Entity::find()
        .filter(membership::Column::OrganizationId.eq(m.organization_id))
        .filter(membership::Column::UserId.eq(m.user_id))
        .filter(membership::Column::TeamId.ne(m.organization_id))
        .filter(membership::Column::Role.eq(BaseRole::Owner.as_str()))
        .count(conn)
        .await
        .map_err(db_error)?
        > 0)
}

/// The membership an update or deletion addresses, as the actor policy sees it.
fn target_of<'a>(
    m: &'a Membership,
    team: &Team,
    permissions: &'a PermissionSet,
) -> TargetMembership<'a> {
    TargetMembership {
        user_id: m.user_id,
        team_is_organization: team.is_organization(),
        current: MemberRole {
            level: m.role,
            role: RoleFacts {
                role_id: &m.role_id,
                permissions,
            },
        },
    }
}

impl Store {
    pub async fn create_membership(
        &self,
        actor: &Actor,
        new: NewMembership,
    ) -> DomainResult<Written<MembershipView>> {
        self.create_membership_once(actor, new, None)
            .await?
            .created()
    }

    /// `create_membership`, done once per request id (`idempotency`).
    pub async fn create_membership_once(
        &self,
        actor: &Actor,
        new: NewMembership,
        once: Option<Once<'_, Written<MembershipView>>>,
    ) -> DomainResult<Outcome<Written<MembershipView>>> {
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
            Some(r) => Some(resolve_role(&*tx, &team, r).await?),
            None => None,
        };
        let (role, role_ref) = rules::choose_role(new.role, reference, None)?;
        if actor.user_id.is_some() {
            let permissions = role_permissions(&*tx, self.policy(), &role_ref.id).await?;
            let write = Write::CreateMembership {
                user_id: user.id,
                team_is_organization: team.is_organization(),
                granted: MemberRole {
                    level: role,
                    role: RoleFacts {
                        role_id: &role_ref.id,
                        permissions: &permissions,
                    },
                },
                accepted: new.accepted,
                auto_accept_applies: rules::accepted_on_create(false, &organization, &user.email),
            };
            authorize(&*tx, self.policy(), actor, Some(&team), &write).await?;
        }
        rules::check_owner_expiry(role, new.expires_at)?;
        if let Some(answer) = idempotency::claim(&tx, actor, once.as_ref()).await? {
            return Ok(Outcome::Replayed(answer));
        }
        let exists = |team_id: i64| {
            membership::Entity::find()
                .filter(membership::Column::TeamId.eq(team_id))
                .filter(membership::Column::UserId.eq(new.user_id))
                .one(&*tx)
        };
        let already = exists(team.id).await.map_err(db_error)?.is_some();
        rules::check_not_yet_member(already, new.user_id, team.id)?;
        if team.is_organization() {
            let count = membership::Entity::find()
                .filter(membership::Column::TeamId.eq(organization.id))
                .count(&*tx)
                .await
                .map_err(db_error)?;
            let invited = pending_invitations(&*tx, organization.id, convert::now_micros()).await?;
            rules::check_membership_limit(&organization, count, invited)?;
        } else {
            // An expired one is on its way out: the sweep would take the new one along.
            let organization_membership = exists(organization.id)
                .await
                .map_err(db_error)?
                .map(convert::membership)
                .transpose()?
                .filter(|m| !m.is_expired(chrono::Utc::now()));
            rules::check_organization_member(
                organization_membership.is_some(),
                new.user_id,
                organization.id,
            )?;
            rules::check_owner_expiry(
                role,
                rules::lapses_at(
                    new.expires_at,
                    organization_membership.and_then(|m| m.expires_at),
                ),
            )?;
        }
        let accepted = rules::accepted_on_create(new.accepted, &organization, &user.email);
        let (created, revision) =
            insert_membership(&tx, actor, &team, new, accepted, role, role_ref).await?;
        let written = Written {
            value: MembershipView {
                membership: created,
                user,
                attributes: Vec::new(),
            },
            revision,
        };
        idempotency::remember(&tx, actor, once.as_ref(), &written).await?;
        tx.commit().await?;
        Ok(Outcome::Created(written))
    }

    pub async fn get_membership(
        &self,
        address: &MembershipAddress,
    ) -> DomainResult<MembershipView> {
        // The membership and its user in one query: this is the fully consistent read path.
        let found = membership_query(address)?
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
            .map_err(|e| self.pool_error(e))?;
        let (row, user) = match found {
            Some((row, Some(user))) => (row, user),
            _ => return Err(address.not_found()),
        };
        let membership = convert::membership(row)?;
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
        // The team is needed only to resolve a role reference or to judge an actor.
        let team = if patch.role_id.is_some() || actor.user_id.is_some() {
            Some(find_team(&*tx, before.team_id, TeamKind::Any).await?)
        } else {
            None
        };
        let reference = match (&patch.role_id, &team) {
            (Some(r), Some(team)) => Some(resolve_role(&*tx, team, r).await?),
            _ => None,
        };
        let current_ref = RoleRef {
            id: before.role_id.clone(),
            key: before.role_key.clone(),
            base: None,
        };
        let (role, role_ref) =
            rules::choose_role(patch.role, reference, Some((before.role, current_ref)))?;
        if let (Some(_), Some(team)) = (actor.user_id, &team) {
            let policy = self.policy();
            let current = role_permissions(&*tx, policy, &before.role_id).await?;
            let granted = role_permissions(&*tx, policy, &role_ref.id).await?;
            let sets_role = patch.role.is_some() || patch.role_id.is_some();
            let write = Write::UpdateMembership {
                target: target_of(&before, team, &current),
                fields: MembershipFields {
                    accepted: patch.accepted,
                    role: sets_role.then_some(MemberRole {
                        level: role,
                        role: RoleFacts {
                            role_id: &role_ref.id,
                            permissions: &granted,
                        },
                    }),
                    metadata: patch.public_metadata.is_some() || patch.private_metadata.is_some(),
                    expires_at: patch.expires_at.is_some(),
                    disable_impersonation: patch.disable_impersonation.is_some(),
                    auto_record_calls: patch.auto_record_calls.is_some(),
                },
            };
            authorize(&*tx, policy, actor, Some(team), &write).await?;
        }
        rules::check_etag(patch.etag.as_deref(), before.version)?;
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
        if let Some(v) = patch.expires_at {
            after.expires_at = v;
        }
        rules::check_owner_expiry(after.role, after.expires_at)?;
        if after.team_id != after.organization_id {
            if after.role == BaseRole::Owner {
                let organization = organization_membership_of(&*tx, &after).await?;
                rules::check_owner_expiry(
                    after.role,
                    rules::lapses_at(after.expires_at, organization.and_then(|m| m.expires_at)),
                )?;
            }
        } else if matches!(patch.expires_at, Some(Some(_))) {
            rules::check_organization_expiry(
                after.expires_at,
                owns_a_sub_team(&*tx, &after).await?,
            )?;
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
            expires_at: Set(after.expires_at.map(|at| at.timestamp_micros())),
            updated_at: Set(convert::now_micros()),
            version: Set(before.version + 1),
            ..Default::default()
        };
        let updated = convert::membership(active.update(&*tx).await.map_err(db_error)?)?;
        let revision = events::record(
            &*tx,
            actor,
            membership_event(
                EventKind::MembershipUpdated,
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
    async fn attributes_of_one(&self, m: &Membership) -> DomainResult<Vec<AssignedAttribute>> {
        if m.team_id != m.organization_id {
            return Ok(Vec::new());
        }
        Ok(attributes_of(self.conn(), &[m.id])
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
        if actor.user_id.is_some() {
            let team = find_team(&*tx, target.team_id, TeamKind::Any).await?;
            let current = role_permissions(&*tx, self.policy(), &target.role_id).await?;
            let write = Write::DeleteMembership {
                target: target_of(&target, &team, &current),
            };
            authorize(&*tx, self.policy(), actor, Some(&team), &write).await?;
        }
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
                let cascaded = convert::membership(row)?;
                // The cascade deletes each sub-team membership as if addressed: the owner rule
                // holds for every one of them, not only the organization membership.
                if actor.user_id.is_some() {
                    let sub_team = find_team(&*tx, cascaded.team_id, TeamKind::Any).await?;
                    let current = role_permissions(&*tx, self.policy(), &cascaded.role_id).await?;
                    let write = Write::DeleteMembership {
                        target: target_of(&cascaded, &sub_team, &current),
                    };
                    authorize(&*tx, self.policy(), actor, Some(&sub_team), &write).await?;
                }
                revision = delete_membership(&tx, actor, &cascaded).await?;
            }
        }
        revision = revision.max(delete_membership(&tx, actor, &target).await?);
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
        let page = page.of(PagedList::Memberships)?;
        let team = find_team(self.conn(), team_id, TeamKind::Any).await?;
        if organization_id.is_some_and(|org| org != team.organization_id()) {
            return Err(DomainError::not_found(format_args!("team {team_id}")));
        }
        let mut query = membership::Entity::find()
            .filter(membership::Column::TeamId.eq(team_id))
            .filter(membership::Column::Id.gt(page.after))
            .order_by_asc(membership::Column::Id)
            .limit(page.fetch());
        if let Some(role) = filter.role {
            query = query.filter(membership::Column::Role.eq(role.as_str()));
        }
        if let Some(accepted) = filter.accepted {
            query = query.filter(membership::Column::Accepted.eq(accepted));
        }
        let rows = query
            .all(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?;
        self.with_users(page.try_cut(rows, |r| r.id, convert::membership)?)
            .await
    }

    /// A user's memberships; those in `organization_id` only when it is given (a bound key's).
    pub async fn list_user_memberships(
        &self,
        user_id: i64,
        organization_id: Option<i64>,
        page: PageRequest,
    ) -> DomainResult<Page<MembershipView>> {
        let page = page.of(PagedList::UserMemberships)?;
        find_user(self.conn(), user_id).await?;
        let mut query = membership::Entity::find().filter(membership::Column::UserId.eq(user_id));
        if let Some(organization_id) = organization_id {
            query = query.filter(membership::Column::OrganizationId.eq(organization_id));
        }
        let rows = query
            .filter(membership::Column::Id.gt(page.after))
            .order_by_asc(membership::Column::Id)
            .limit(page.fetch())
            .all(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?;
        self.with_users(page.try_cut(rows, |r| r.id, convert::membership)?)
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
                .map_err(|e| self.pool_error(e))?
                .into_iter()
                .map(|row| (row.id, convert::user(row)))
                .collect()
        };
        let membership_ids: Vec<i64> = page.items.iter().map(|m| m.id).collect();
        let mut attributes = attributes_of(self.conn(), &membership_ids).await?;
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
