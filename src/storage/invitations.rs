//! Invitations: their writes under the organization lock (see `shared::lock_organization`), the
//! acceptance that turns one into a membership in the same transaction, and the sweep that marks
//! the expired ones.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{Set, Unchanged},
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::actor::authorize;
use super::entities::{invitation, membership, user};
use super::events::{self, EventDraft, snapshot};
use super::idempotency::{self, Once, Outcome};
use super::permissions::role_permissions;
use super::shared::{
    Written, find_team, insert_membership, lock_organization, pending_invitations, resolve_role,
    users_seen_by,
};
use super::{Store, WriteTx, convert, db_error};
use crate::domain::events::EventKind;
use crate::domain::invitations::{Invitation, InvitationFilter, InvitationStatus, NewInvitation};
use crate::domain::memberships::NewMembership;
use crate::domain::model::{Actor, MembershipView, Team};
use crate::domain::page::{Page, PageRequest, PagedList};
use crate::domain::policy::{MemberRole, RoleFacts, Write};
use crate::domain::roles::BaseRole;
use crate::domain::teams::TeamKind;
use crate::domain::{DomainError, DomainResult, rules};

/// How many expired invitations one sweep marks at most per query.
const SWEEP_BATCH: u64 = 500;

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn invitation_of(row: invitation::Model) -> DomainResult<Invitation> {
    Ok(Invitation {
        id: row.id,
        organization_id: row.organization_id,
        email: row.email,
        role: BaseRole::parse(&row.role).ok_or_else(|| convert::corrupt("role", &row.role))?,
        role_id: row.role_id,
        role_key: row.role_key,
        status: InvitationStatus::parse(&row.status)
            .ok_or_else(|| convert::corrupt("invitation status", &row.status))?,
        inviter_user_id: row.inviter_user_id,
        created_at: convert::time(row.created_at),
        updated_at: convert::time(row.updated_at),
        expires_at: convert::time(row.expires_at),
        version: row.version,
    })
}

fn not_found(id: i64) -> DomainError {
    DomainError::not_found(format_args!("invitation {id}"))
}

/// The event of an invitation write; the organization is its team, so that the `team_id`
/// filters of the log find it.
fn invitation_event(
    kind: EventKind,
    inv: &Invitation,
    before: Option<&Invitation>,
    after: Option<&Invitation>,
) -> EventDraft {
    EventDraft {
        organization_id: Some(inv.organization_id),
        team_id: Some(inv.organization_id),
        role_id: Some(inv.role_id.clone()),
        before: before.and_then(snapshot),
        after: after.and_then(snapshot),
        ..EventDraft::new(kind)
    }
}

/// The invitation `id` names, if it is of `organization` (a bound key's) when one is given.
async fn find<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    organization: Option<i64>,
    lock: bool,
) -> DomainResult<Invitation> {
    let mut query = invitation::Entity::find_by_id(id);
    if let Some(organization) = organization {
        query = query.filter(invitation::Column::OrganizationId.eq(organization));
    }
    if lock {
        query = query.lock_exclusive();
    }
    let row = query
        .one(conn)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found(id))?;
    invitation_of(row)
}

/// Finds the invitation, locks its organization, then reads and locks the invitation again: a
/// competing writer may have changed it meanwhile, and the sweeper updates it without the
/// organization lock. Locking the row before any event is recorded keeps the sweeper (which
/// takes the row, then the event sequence) from deadlocking with this writer.
async fn locate_locked(
    tx: &WriteTx,
    id: i64,
    organization: Option<i64>,
) -> DomainResult<(Invitation, Team)> {
    let found = find(&**tx, id, organization, false).await?;
    let org = lock_organization(&**tx, found.organization_id).await?;
    let invitation = find(&**tx, id, organization, true).await?;
    Ok((invitation, org))
}

/// Whether a key bound to `organization_id` sees user `user_id` (`shared::users_seen_by`).
async fn seen_by<C: ConnectionTrait>(
    conn: &C,
    organization_id: i64,
    user_id: i64,
) -> DomainResult<bool> {
    let found = user::Entity::find_by_id(user_id)
        .filter(users_seen_by(organization_id))
        .count(conn)
        .await
        .map_err(db_error)?;
    Ok(found > 0)
}

/// Writes the invitation's new status (one version up) and records its event.
async fn set_status(
    tx: &WriteTx,
    actor: &Actor,
    before: &Invitation,
    status: InvitationStatus,
    kind: EventKind,
    accepted_by: Option<(i64, i64)>,
) -> DomainResult<Written<Invitation>> {
    let now = convert::now_micros();
    let row = invitation::ActiveModel {
        id: Unchanged(before.id),
        status: Set(status.as_str().to_string()),
        updated_at: Set(now),
        version: Set(before.version + 1),
        ..Default::default()
    }
    .update(&**tx)
    .await
    .map_err(db_error)?;
    let after = invitation_of(row)?;
    let mut draft = invitation_event(kind, &after, Some(before), Some(&after));
    if let Some((user_id, membership_id)) = accepted_by {
        draft.user_id = Some(user_id);
        draft.membership_id = Some(membership_id);
    }
    let revision = events::record(&**tx, actor, draft).await?;
    Ok(Written {
        value: after,
        revision,
    })
}

impl Store {
    pub async fn create_invitation(
        &self,
        actor: &Actor,
        new: NewInvitation,
    ) -> DomainResult<Written<Invitation>> {
        self.create_invitation_once(actor, new, None)
            .await?
            .created()
    }

    /// `create_invitation`, done once per request id (`idempotency`).
    pub async fn create_invitation_once(
        &self,
        actor: &Actor,
        new: NewInvitation,
        once: Option<Once<'_, Written<Invitation>>>,
    ) -> DomainResult<Outcome<Written<Invitation>>> {
        let tx = self.begin_write().await?;
        let org = lock_organization(&*tx, new.organization_id).await?;
        let reference = match &new.role_id {
            Some(r) => Some(resolve_role(&*tx, &org, r).await?),
            None => None,
        };
        let (role, role_ref) = rules::choose_role(new.role, reference, None)?;
        if actor.user_id.is_some() {
            let permissions = role_permissions(&*tx, self.policy(), &role_ref.id).await?;
            let write = Write::CreateInvitation {
                invited_email: &new.email,
                granted: MemberRole {
                    level: role,
                    role: RoleFacts {
                        role_id: &role_ref.id,
                        permissions: &permissions,
                    },
                },
            };
            authorize(&*tx, self.policy(), actor, Some(&org), &write).await?;
        }
        if let Some(answer) = idempotency::claim(&tx, actor, once.as_ref()).await? {
            return Ok(Outcome::Replayed(answer));
        }
        let now = convert::now_micros();
        let open = invitation::Entity::find()
            .filter(invitation::Column::OrganizationId.eq(org.id))
            .filter(invitation::Column::Email.eq(new.email.as_str()))
            .filter(invitation::Column::Status.eq(InvitationStatus::Pending.as_str()))
            .filter(invitation::Column::ExpiresAt.gt(now))
            .one(&*tx)
            .await
            .map_err(db_error)?;
        if let Some(open) = open {
            return Err(DomainError::AlreadyExists(format!(
                "invitation {} to {} is pending already",
                open.id, new.email
            )));
        }
        let invited_user: Option<i64> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::Email.eq(new.email.as_str()))
            .into_tuple()
            .one(&*tx)
            .await
            .map_err(db_error)?;
        let member = match invited_user {
            Some(user_id) => membership::Entity::find()
                .filter(membership::Column::TeamId.eq(org.id))
                .filter(membership::Column::UserId.eq(user_id))
                .one(&*tx)
                .await
                .map_err(db_error)?,
            None => None,
        };
        if member.is_some() {
            return Err(DomainError::AlreadyExists(format!(
                "the user with email {} is a member of organization {} already",
                new.email, org.id
            )));
        }
        let memberships = membership::Entity::find()
            .filter(membership::Column::TeamId.eq(org.id))
            .count(&*tx)
            .await
            .map_err(db_error)?;
        let invited = pending_invitations(&*tx, org.id, now).await?;
        rules::check_membership_limit(&org, memberships, invited)?;
        let row = invitation::ActiveModel {
            organization_id: Set(org.id),
            email: Set(new.email.clone()),
            role: Set(role.as_str().to_string()),
            role_id: Set(role_ref.id),
            role_key: Set(role_ref.key),
            status: Set(InvitationStatus::Pending.as_str().to_string()),
            inviter_user_id: Set(actor.user_id),
            created_at: Set(now),
            updated_at: Set(now),
            expires_at: Set(micros(new.expires_at)),
            version: Set(1),
            ..Default::default()
        }
        .insert(&*tx)
        .await
        .map_err(db_error)?;
        let created = invitation_of(row)?;
        let revision = events::record(
            &*tx,
            actor,
            invitation_event(EventKind::InvitationCreated, &created, None, Some(&created)),
        )
        .await?;
        let written = Written {
            value: created,
            revision,
        };
        idempotency::remember(&tx, actor, once.as_ref(), &written).await?;
        tx.commit().await?;
        Ok(Outcome::Created(written))
    }

    /// The invitation with the status it has now.
    pub async fn get_invitation(&self, id: i64) -> DomainResult<Invitation> {
        let invitation = find(self.conn(), id, None, false).await?;
        Ok(invitation.as_seen_at(Utc::now()))
    }

    /// An organization's invitations in id order; the status filter applies to the status each
    /// has now (a pending one past its expiry is expired).
    pub async fn list_invitations(
        &self,
        organization_id: i64,
        filter: InvitationFilter,
        page: PageRequest,
    ) -> DomainResult<Page<Invitation>> {
        let page = page.of(PagedList::Invitations)?;
        find_team(self.conn(), organization_id, TeamKind::Organization).await?;
        let now = Utc::now();
        let status = |s: InvitationStatus| invitation::Column::Status.eq(s.as_str());
        let mut query = invitation::Entity::find()
            .filter(invitation::Column::OrganizationId.eq(organization_id))
            .filter(invitation::Column::Id.gt(page.after))
            .order_by_asc(invitation::Column::Id)
            .limit(page.fetch());
        query = match filter.status {
            None => query,
            Some(InvitationStatus::Pending) => query
                .filter(status(InvitationStatus::Pending))
                .filter(invitation::Column::ExpiresAt.gt(micros(now))),
            Some(InvitationStatus::Expired) => query.filter(
                Condition::any().add(status(InvitationStatus::Expired)).add(
                    Condition::all()
                        .add(status(InvitationStatus::Pending))
                        .add(invitation::Column::ExpiresAt.lte(micros(now))),
                ),
            ),
            Some(other) => query.filter(status(other)),
        };
        let rows = query
            .all(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?;
        page.try_cut(
            rows,
            |r| r.id,
            |row| invitation_of(row).map(|i| i.as_seen_at(now)),
        )
    }

    /// PENDING to REVOKED. `organization`: a bound key's, whose other invitations are absent.
    pub async fn revoke_invitation(
        &self,
        actor: &Actor,
        id: i64,
        organization: Option<i64>,
        etag: Option<&str>,
    ) -> DomainResult<Written<Invitation>> {
        let tx = self.begin_write().await?;
        let (before, org) = locate_locked(&tx, id, organization).await?;
        authorize(
            &*tx,
            self.policy(),
            actor,
            Some(&org),
            &Write::RevokeInvitation,
        )
        .await?;
        rules::check_etag(etag, before.version)?;
        before.check_pending(Utc::now())?;
        let written = set_status(
            &tx,
            actor,
            &before,
            InvitationStatus::Revoked,
            EventKind::InvitationRevoked,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(written)
    }

    /// Makes `user_id` an accepted member of the invitation's organization with its role, and
    /// marks it ACCEPTED, in one transaction (events `membership.created`, then
    /// `invitation.accepted`, whose sequence is the revision). The membership limit is not
    /// checked: the invitation's seat becomes the membership's.
    pub async fn accept_invitation(
        &self,
        actor: &Actor,
        id: i64,
        user_id: i64,
        organization: Option<i64>,
    ) -> DomainResult<Written<MembershipView>> {
        let tx = self.begin_write().await?;
        let (before, org) = locate_locked(&tx, id, organization).await?;
        // Locked so that a concurrent DeleteUser cannot remove the user under the new membership.
        let user = user::Entity::find_by_id(user_id)
            .lock_exclusive()
            .one(&*tx)
            .await
            .map_err(db_error)?
            .map(convert::user)
            .ok_or_else(|| DomainError::not_found(format_args!("user {user_id}")))?;
        // A bound key sees the users of its organization, and the one its invitation names; any
        // other is absent, so that it cannot probe the ids of other organizations' users.
        if let Some(organization) = organization
            && before.check_email(&user.email).is_err()
            && !seen_by(&*tx, organization, user_id).await?
        {
            return Err(DomainError::not_found(format_args!("user {user_id}")));
        }
        let write = Write::AcceptInvitation {
            invited_email: &before.email,
        };
        authorize(&*tx, self.policy(), actor, Some(&org), &write).await?;
        before.check_pending(Utc::now())?;
        before.check_email(&user.email)?;
        let existing = membership::Entity::find()
            .filter(membership::Column::TeamId.eq(org.id))
            .filter(membership::Column::UserId.eq(user_id))
            .one(&*tx)
            .await
            .map_err(db_error)?;
        if existing.is_some() {
            return Err(DomainError::AlreadyExists(format!(
                "user {user_id} already has a membership in organization {}",
                org.id
            )));
        }
        // Resolved again: a custom role deleted since the invitation was sent is ROLE_NOT_FOUND
        // rather than a membership holding a role that no longer exists.
        let role_ref = resolve_role(&*tx, &org, &before.role_id).await?;
        let new = NewMembership {
            team_id: org.id,
            organization_id: Some(org.id),
            user_id,
            role: Some(before.role),
            role_id: Some(role_ref.id.clone()),
            accepted: true,
            ..Default::default()
        };
        let (membership, _) =
            insert_membership(&tx, actor, &org, new, true, before.role, role_ref).await?;
        let accepted = set_status(
            &tx,
            actor,
            &before,
            InvitationStatus::Accepted,
            EventKind::InvitationAccepted,
            Some((user_id, membership.id)),
        )
        .await?;
        tx.commit().await?;
        Ok(Written {
            value: MembershipView {
                membership,
                user,
                attributes: Vec::new(),
            },
            revision: accepted.revision,
        })
    }

    /// Marks every PENDING invitation whose `expires_at` is at or before `now` as EXPIRED, with
    /// one `invitation.expired` event each; returns how many this call marked. Each invitation
    /// is marked in its own transaction by a conditional UPDATE: when several replicas sweep at
    /// once, only the transaction whose UPDATE changed the row records the event, so each
    /// invitation expires exactly once.
    pub async fn sweep_expired_invitations(&self, now: DateTime<Utc>) -> DomainResult<u64> {
        let now = micros(now);
        let mut marked = 0;
        let mut after = 0;
        loop {
            let candidates: Vec<i64> = invitation::Entity::find()
                .select_only()
                .column(invitation::Column::Id)
                .filter(invitation::Column::Status.eq(InvitationStatus::Pending.as_str()))
                .filter(invitation::Column::ExpiresAt.lte(now))
                .filter(invitation::Column::Id.gt(after))
                .order_by_asc(invitation::Column::Id)
                .limit(SWEEP_BATCH)
                .into_tuple()
                .all(self.conn())
                .await
                .map_err(|e| self.pool_error(e))?;
            let Some(&last) = candidates.last() else {
                return Ok(marked);
            };
            after = last;
            for id in candidates {
                if self.expire_one(id, now).await? {
                    marked += 1;
                }
            }
        }
    }

    /// Expires one invitation if it is still pending and past `now`; whether this call did.
    async fn expire_one(&self, id: i64, now: i64) -> DomainResult<bool> {
        let tx = self.begin_write().await?;
        let changed = invitation::Entity::update_many()
            .col_expr(
                invitation::Column::Status,
                Expr::value(InvitationStatus::Expired.as_str()),
            )
            .col_expr(
                invitation::Column::Version,
                Expr::col(invitation::Column::Version).add(1),
            )
            .col_expr(invitation::Column::UpdatedAt, Expr::value(now))
            .filter(invitation::Column::Id.eq(id))
            .filter(invitation::Column::Status.eq(InvitationStatus::Pending.as_str()))
            .filter(invitation::Column::ExpiresAt.lte(now))
            .exec(&*tx)
            .await
            .map_err(db_error)?
            .rows_affected;
        if changed == 0 {
            // Another replica's sweep, or an accept or revoke, got there first.
            return Ok(false);
        }
        let after = find(&*tx, id, None, false).await?;
        let before = Invitation {
            status: InvitationStatus::Pending,
            version: after.version - 1,
            ..after.clone()
        };
        events::record(
            &*tx,
            &Actor::default(),
            invitation_event(
                EventKind::InvitationExpired,
                &after,
                Some(&before),
                Some(&after),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
