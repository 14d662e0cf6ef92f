//! Organizations and their sub-teams: one `teams` table, an organization being a team without a
//! parent.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect,
};

use super::actor::authorize;
use super::entities::{invitation, membership, role, team, user};
use super::events::{self, EventDraft, snapshot};
use super::idempotency::{self, Once, Outcome};
use super::shared::{
    Written, delete_attributes_of_teams, find_team, insert_membership, lock_organization,
};
use super::{Store, WriteTx, convert, db_error};
use crate::domain::events::EventKind;
use crate::domain::memberships::NewMembership;
use crate::domain::model::{Actor, Team};
use crate::domain::page::{Page, PageRequest, PagedList};
use crate::domain::policy::Write;
use crate::domain::roles::BaseRole;
use crate::domain::teams::{NewTeam, TeamKind, TeamPatch};
use crate::domain::tenancy::Binding;
use crate::domain::{DomainError, DomainResult, rules};

async fn ensure_slug_free<C: ConnectionTrait>(
    conn: &C,
    scope_id: i64,
    slug: &str,
    except: Option<i64>,
) -> DomainResult<()> {
    let mut q = team::Entity::find()
        .filter(team::Column::ScopeId.eq(scope_id))
        .filter(team::Column::Slug.eq(slug));
    if let Some(id) = except {
        q = q.filter(team::Column::Id.ne(id));
    }
    if q.one(conn).await.map_err(db_error)?.is_some() {
        let within = if scope_id == 0 {
            "among organizations".to_string()
        } else {
            format!("in organization {scope_id}")
        };
        return Err(DomainError::AlreadyExists(format!(
            "the slug {slug:?} is taken {within}"
        )));
    }
    Ok(())
}

/// The write an update or deletion of `team` is: the organization's or the sub-team's.
fn team_write(
    team: &Team,
    organization: Write<'static>,
    sub_team: Write<'static>,
) -> Write<'static> {
    if team.is_organization() {
        organization
    } else {
        sub_team
    }
}

/// Makes the end user who created an organization its first accepted OWNER, in the creating
/// transaction, and records `membership.created`. Returns that event's sequence.
async fn first_owner(
    tx: &WriteTx,
    actor: &Actor,
    organization: &Team,
) -> DomainResult<Option<i64>> {
    let Some(user_id) = actor.user_id else {
        return Ok(None);
    };
    // Locked so that a concurrent DeleteUser cannot remove the user under the new membership.
    user::Entity::find_by_id(user_id)
        .lock_exclusive()
        .one(&**tx)
        .await
        .map_err(db_error)?
        .ok_or_else(|| DomainError::not_found(format_args!("user {user_id}")))?;
    let (role, role_ref) = rules::choose_role(Some(BaseRole::Owner), None, None)?;
    let new = NewMembership {
        team_id: organization.id,
        user_id,
        ..Default::default()
    };
    let (_, revision) =
        insert_membership(tx, actor, organization, new, true, role, role_ref).await?;
    Ok(Some(revision))
}

/// Organizations and sub-teams share a table, not their event kinds: `organization` names the
/// kind for an organization, `sub_team` for a sub-team.
fn team_event(
    organization: EventKind,
    sub_team: EventKind,
    team: &Team,
    before: Option<&Team>,
    after: Option<&Team>,
) -> EventDraft {
    let kind = if team.is_organization() {
        organization
    } else {
        sub_team
    };
    EventDraft {
        organization_id: Some(team.organization_id()),
        team_id: Some(team.id),
        before: before.and_then(snapshot),
        after: after.and_then(snapshot),
        ..EventDraft::new(kind)
    }
}

impl Store {
    pub async fn create_team(&self, actor: &Actor, new: NewTeam) -> DomainResult<Written<Team>> {
        self.create_team_once(actor, new, None).await?.created()
    }

    /// `create_team` (an organization without `organization_id`), done once per request id.
    pub async fn create_team_once(
        &self,
        actor: &Actor,
        new: NewTeam,
        once: Option<Once<'_, Written<Team>>>,
    ) -> DomainResult<Outcome<Written<Team>>> {
        let tx = self.begin_write().await?;
        match new.organization_id {
            Some(org) => {
                // The lock keeps the organization from being deleted under its new team.
                let organization = lock_organization(&*tx, org).await?;
                authorize(
                    &*tx,
                    self.policy(),
                    actor,
                    Some(&organization),
                    &Write::CreateTeam,
                )
                .await?;
            }
            None => {
                authorize(&*tx, self.policy(), actor, None, &Write::CreateOrganization).await?;
            }
        }
        if let Some(answer) = idempotency::claim(&tx, actor, once.as_ref()).await? {
            return Ok(Outcome::Replayed(answer));
        }
        let scope_id = new.organization_id.unwrap_or(0);
        ensure_slug_free(&*tx, scope_id, &new.slug, None).await?;
        let now = convert::now_micros();
        let row = team::ActiveModel {
            parent_id: Set(new.organization_id),
            scope_id: Set(scope_id),
            name: Set(new.name),
            slug: Set(new.slug),
            image_url: Set(new.image_url),
            max_allowed_memberships: Set(new.max_allowed_memberships),
            auto_accept_email_domain: Set(new.auto_accept_email_domain),
            admin_delete_enabled: Set(new.admin_delete_enabled),
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
        let created = convert::team(row);
        let mut revision = events::record(
            &*tx,
            actor,
            team_event(
                EventKind::OrganizationCreated,
                EventKind::TeamCreated,
                &created,
                None,
                Some(&created),
            ),
        )
        .await?;
        if created.is_organization()
            && let Some(owner_revision) = first_owner(&tx, actor, &created).await?
        {
            revision = owner_revision;
        }
        let written = Written {
            value: created,
            revision,
        };
        idempotency::remember(&tx, actor, once.as_ref(), &written).await?;
        tx.commit().await?;
        Ok(Outcome::Created(written))
    }

    pub async fn get_team(&self, id: i64, kind: TeamKind) -> DomainResult<Team> {
        find_team(self.conn(), id, kind).await
    }

    pub async fn update_team(
        &self,
        actor: &Actor,
        id: i64,
        kind: TeamKind,
        patch: TeamPatch,
    ) -> DomainResult<Written<Team>> {
        let tx = self.begin_write().await?;
        let row = team::Entity::find_by_id(id)
            .lock_exclusive()
            .one(&*tx)
            .await
            .map_err(db_error)?
            .filter(|row| kind.admits(&convert::team(row.clone())))
            .ok_or_else(|| kind.not_found(id))?;
        let before = convert::team(row.clone());
        let write = team_write(
            &before,
            Write::UpdateOrganization {
                sets_max_allowed_memberships: patch.max_allowed_memberships.is_some(),
            },
            Write::UpdateTeam,
        );
        authorize(&*tx, self.policy(), actor, Some(&before), &write).await?;
        rules::check_etag(patch.etag.as_deref(), before.version)?;
        if let Some(slug) = &patch.slug {
            ensure_slug_free(&*tx, before.parent_id.unwrap_or(0), slug, Some(id)).await?;
        }
        let mut after = before.clone();
        let mut active = row.into_active_model();
        macro_rules! apply {
            ($field:ident) => {
                if let Some(value) = patch.$field {
                    after.$field = value.clone();
                    active.$field = Set(value);
                }
            };
        }
        apply!(name);
        apply!(slug);
        apply!(image_url);
        apply!(max_allowed_memberships);
        apply!(auto_accept_email_domain);
        apply!(admin_delete_enabled);
        if let Some(m) = patch.public_metadata {
            active.public_metadata = Set(convert::object_text(&m));
            after.public_metadata = m;
        }
        if let Some(m) = patch.private_metadata {
            active.private_metadata = Set(convert::object_text(&m));
            after.private_metadata = m;
        }
        if after == before {
            let revision = events::current_revision(&*tx).await?;
            tx.commit().await?;
            return Ok(Written {
                value: before,
                revision,
            });
        }
        active.updated_at = Set(convert::now_micros());
        active.version = Set(before.version + 1);
        let updated = convert::team(active.update(&*tx).await.map_err(db_error)?);
        let revision = events::record(
            &*tx,
            actor,
            team_event(
                EventKind::OrganizationUpdated,
                EventKind::TeamUpdated,
                &updated,
                Some(&before),
                Some(&updated),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(Written {
            value: updated,
            revision,
        })
    }

    /// The sub-teams of an organization, or (None) the organizations `binding` sees.
    pub async fn list_teams(
        &self,
        organization_id: Option<i64>,
        binding: Binding,
        page: PageRequest,
    ) -> DomainResult<Page<Team>> {
        let list = match organization_id {
            Some(_) => PagedList::Teams,
            None => PagedList::Organizations,
        };
        let page = page.of(list)?;
        let mut query = team::Entity::find()
            .filter(team::Column::Id.gt(page.after))
            .order_by_asc(team::Column::Id)
            .limit(page.fetch());
        query = match organization_id {
            Some(org) => {
                find_team(self.conn(), org, TeamKind::Organization).await?;
                query.filter(team::Column::ParentId.eq(org))
            }
            None => query.filter(team::Column::ParentId.is_null()),
        };
        if let (None, Some(own)) = (organization_id, binding.organization()) {
            // A bound key's organization list holds its own organization only; the sub-teams of
            // another organization it never gets this far for (the api checks it first).
            query = query.filter(team::Column::Id.eq(own));
        }
        let rows = query
            .all(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?;
        Ok(page.cut(rows, |r| r.id, convert::team))
    }

    /// Organization-level membership counts (members_count) for a page of organizations, in
    /// one grouped query; organizations without members are absent (0).
    pub async fn members_counts(
        &self,
        organization_ids: &[i64],
    ) -> DomainResult<HashMap<i64, i64>> {
        if organization_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(i64, i64)> = membership::Entity::find()
            .select_only()
            .column(membership::Column::TeamId)
            .column_as(membership::Column::Id.count(), "members")
            .filter(membership::Column::TeamId.is_in(organization_ids.iter().copied()))
            .group_by(membership::Column::TeamId)
            .into_tuple()
            .all(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?;
        Ok(rows.into_iter().collect())
    }

    /// Deletes a team with its memberships and custom roles; an organization also loses its
    /// sub-teams. One event records it.
    pub async fn delete_team(
        &self,
        actor: &Actor,
        id: i64,
        kind: TeamKind,
        etag: Option<&str>,
    ) -> DomainResult<i64> {
        let tx = self.begin_write().await?;
        let existing = find_team(&*tx, id, kind).await?;
        lock_organization(&*tx, existing.organization_id()).await?;
        let team = find_team(&*tx, id, kind).await?;
        let write = team_write(&team, Write::DeleteOrganization, Write::DeleteTeam);
        authorize(&*tx, self.policy(), actor, Some(&team), &write).await?;
        rules::check_etag(etag, team.version)?;
        let mut team_ids = vec![id];
        if team.is_organization() {
            let children = team::Entity::find()
                .filter(team::Column::ParentId.eq(id))
                .all(&*tx)
                .await
                .map_err(db_error)?;
            team_ids.extend(children.into_iter().map(|t| t.id));
        }
        delete_attributes_of_teams(&*tx, &team_ids).await?;
        membership::Entity::delete_many()
            .filter(membership::Column::TeamId.is_in(team_ids.clone()))
            .exec(&*tx)
            .await
            .map_err(db_error)?;
        // Only organizations have invitations; a sub-team's id matches none.
        invitation::Entity::delete_many()
            .filter(invitation::Column::OrganizationId.is_in(team_ids.clone()))
            .exec(&*tx)
            .await
            .map_err(db_error)?;
        role::Entity::delete_many()
            .filter(role::Column::TeamId.is_in(team_ids.clone()))
            .exec(&*tx)
            .await
            .map_err(db_error)?;
        // Children first: their parent_id points at the organization.
        for team_id in team_ids.iter().rev() {
            team::Entity::delete_by_id(*team_id)
                .exec(&*tx)
                .await
                .map_err(db_error)?;
        }
        let revision = events::record(
            &*tx,
            actor,
            team_event(
                EventKind::OrganizationDeleted,
                EventKind::TeamDeleted,
                &team,
                Some(&team),
                None,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(revision)
    }
}
