//! Bulk imports: up to `validate::MAX_BATCH_ENTRIES` users, or memberships of one team, in one
//! transaction, all or nothing. Each entry follows the rules its single create follows (the same
//! domain functions, called per entry; an error names the entry), while what a write pays once
//! (the organization lock, the event-sequence row, the role resolution, the limit count) is paid
//! once per call, and rows and events go in with multi-row INSERTs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};

use super::actor::authorize;
use super::entities::{membership, user};
use super::events::{self, EventDraft};
use super::permissions::role_permissions;
use super::shared::{
    Written, find_team, lock_organization, membership_event, membership_row, pending_invitations,
    resolve_role, taken_email_and_username, user_created_event, user_row, users_seen_by,
};
use super::{Store, convert, db_error};
use crate::domain::catalog::PermissionSet;
use crate::domain::errors::FieldViolation;
use crate::domain::events::EventKind;
use crate::domain::memberships::NewMembership;
use crate::domain::model::{Actor, Membership, MembershipView, RoleRef, User};
use crate::domain::policy::{MemberRole, NewMember, RoleFacts, Write};
use crate::domain::roles::BaseRole;
use crate::domain::teams::TeamKind;
use crate::domain::users::{self, NewUser};
use crate::domain::{DomainError, DomainResult, rules, validate};

/// Rows per multi-row INSERT: at most 14 columns each, well under SQLite's 32,766 bind
/// parameters (PostgreSQL and MariaDB allow 65,535).
const ROWS_PER_INSERT: usize = 1_000;

/// What an import wrote: the created values in entry order, each with the sequence of its own
/// event; `revision` is the last of them.
#[derive(Debug, Clone)]
pub struct Imported<T> {
    pub values: Vec<Written<T>>,
    pub revision: i64,
}

fn imported<T>(values: Vec<T>, sequences: Vec<i64>) -> Imported<T> {
    let revision = sequences.last().copied().unwrap_or_default();
    Imported {
        values: values
            .into_iter()
            .zip(sequences)
            .map(|(value, revision)| Written { value, revision })
            .collect(),
        revision,
    }
}

/// Inserts `rows` in chunks of `ROWS_PER_INSERT`, without reading anything back.
async fn insert_rows<E, C>(conn: &C, rows: Vec<E::ActiveModel>) -> DomainResult<()>
where
    E: EntityTrait,
    C: sea_orm::ConnectionTrait,
{
    let mut rows = rows;
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(ROWS_PER_INSERT));
        let chunk = std::mem::replace(&mut rows, rest);
        E::insert_many(chunk)
            .exec_without_returning(conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// Which of `user_ids` have a membership in team `team_id`. The query names the users only
/// (the user index leads with them): PostgreSQL's plan for `team_id = $1 AND user_id IN (…)`
/// scanned the whole team once it had grown, taking about a second per call at 100,000 members.
async fn members_among<C: sea_orm::ConnectionTrait>(
    conn: &C,
    team_id: i64,
    user_ids: &[i64],
) -> DomainResult<HashSet<i64>> {
    let found: Vec<(i64, i64)> = membership::Entity::find()
        .select_only()
        .column(membership::Column::UserId)
        .column(membership::Column::TeamId)
        .filter(membership::Column::UserId.is_in(user_ids.to_vec()))
        .into_tuple()
        .all(conn)
        .await
        .map_err(db_error)?;
    Ok(found
        .into_iter()
        .filter(|(_, team)| *team == team_id)
        .map(|(user, _)| user)
        .collect())
}

/// The unexpired memberships of `user_ids` in an organization: user → its expiry, if any.
async fn organization_members_among<C: sea_orm::ConnectionTrait>(
    conn: &C,
    organization_id: i64,
    user_ids: &[i64],
) -> DomainResult<HashMap<i64, Option<DateTime<Utc>>>> {
    let now = Utc::now();
    let rows = membership::Entity::find()
        .filter(membership::Column::UserId.is_in(user_ids.to_vec()))
        .all(conn)
        .await
        .map_err(db_error)?;
    let mut members = HashMap::new();
    for row in rows.into_iter().filter(|r| r.team_id == organization_id) {
        let m = convert::membership(row)?;
        if !m.is_expired(now) {
            members.insert(m.user_id, m.expires_at);
        }
    }
    Ok(members)
}

impl Store {
    /// Users an organization-bound key does not see among `user_ids` (in their order): the
    /// batch form of the check a single create makes on its one user.
    pub async fn users_unseen_by(
        &self,
        organization_id: i64,
        user_ids: &[i64],
    ) -> DomainResult<Vec<i64>> {
        let seen: HashSet<i64> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::Id.is_in(user_ids.iter().copied()))
            .filter(users_seen_by(organization_id))
            .into_tuple()
            .all(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?
            .into_iter()
            .collect();
        Ok(user_ids
            .iter()
            .copied()
            .filter(|id| !seen.contains(id))
            .collect())
    }

    /// Creates every user of `new` (validated, unique within the batch) or none.
    pub async fn import_users(
        &self,
        actor: &Actor,
        new: Vec<NewUser>,
    ) -> DomainResult<Imported<User>> {
        let mut bad: Vec<FieldViolation> = validate::batch_size("users", new.len())
            .into_iter()
            .collect();
        bad.extend(validate::repeated(
            "users",
            "email",
            new.iter().map(|u| Some(u.email.as_str())),
        ));
        bad.extend(validate::repeated(
            "users",
            "username",
            new.iter().map(|u| u.username.as_deref()),
        ));
        if !bad.is_empty() {
            return Err(DomainError::InvalidArgument(bad));
        }
        let tx = self.begin_write().await?;
        authorize(&*tx, self.policy(), actor, None, &Write::ImportUsers).await?;
        let emails: Vec<String> = new.iter().map(|u| u.email.clone()).collect();
        let email_refs: Vec<&str> = emails.iter().map(String::as_str).collect();
        let usernames: Vec<&str> = new.iter().filter_map(|u| u.username.as_deref()).collect();
        let (email, username) =
            taken_email_and_username(&*tx, None, &email_refs, &usernames).await?;
        if let Some(email) = email {
            let i = new
                .iter()
                .position(|u| u.email == email)
                .unwrap_or_default();
            return Err(users::email_taken(&email).in_entry("users", i));
        }
        if let Some(username) = username {
            let i = (new.iter())
                .position(|u| u.username.as_deref() == Some(username.as_str()))
                .unwrap_or_default();
            return Err(users::username_taken(&username).in_entry("users", i));
        }
        let now = convert::now_micros();
        let rows = new.into_iter().map(|u| user_row(u, now)).collect();
        insert_rows::<user::Entity, _>(&*tx, rows).await?;
        // Read back by the unique email: the ids the database gave, on every engine.
        let mut by_email: HashMap<String, User> = user::Entity::find()
            .filter(user::Column::Email.is_in(email_refs))
            .all(&*tx)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|row| (row.email.clone(), convert::user(row)))
            .collect();
        let created: Vec<User> = emails
            .iter()
            .map(|email| {
                by_email.remove(email).ok_or_else(|| {
                    DomainError::Internal(format!("imported user {email:?} not read back"))
                })
            })
            .collect::<DomainResult<_>>()?;
        let drafts = created
            .iter()
            .map(|u| user_created_event(actor, u))
            .collect();
        let sequences = events::record_many(&*tx, actor, drafts).await?;
        tx.commit().await?;
        Ok(imported(created, sequences))
    }

    /// Creates every membership of `new` in team `team_id` (each entry validated, its `team_id`
    /// the team's, no user twice) or none.
    pub async fn import_memberships(
        &self,
        actor: &Actor,
        team_id: i64,
        new: Vec<NewMembership>,
    ) -> DomainResult<Imported<MembershipView>> {
        let mut bad: Vec<FieldViolation> = validate::batch_size("memberships", new.len())
            .into_iter()
            .collect();
        bad.extend(validate::repeated(
            "memberships",
            "user_id",
            new.iter().map(|m| Some(m.user_id)),
        ));
        if let Some(i) = new.iter().position(|m| m.team_id != team_id) {
            bad.push(FieldViolation::new(
                format!("memberships[{i}].team_id"),
                "must be 0 or the request's team_id",
            ));
        }
        if !bad.is_empty() {
            return Err(DomainError::InvalidArgument(bad));
        }
        let tx = self.begin_write().await?;
        let team = find_team(&*tx, team_id, TeamKind::Any).await?;
        if let Some(i) = new.iter().position(|m| {
            m.organization_id
                .is_some_and(|org| org != team.organization_id())
        }) {
            return Err(
                DomainError::not_found(format_args!("team {team_id}")).in_entry("memberships", i)
            );
        }
        let organization = lock_organization(&*tx, team.organization_id()).await?;
        let user_ids: Vec<i64> = new.iter().map(|m| m.user_id).collect();
        // Locked so that a concurrent DeleteUser cannot remove a user under a new membership.
        let mut users: HashMap<i64, User> = user::Entity::find()
            .filter(user::Column::Id.is_in(user_ids.iter().copied()))
            .lock_exclusive()
            .all(&*tx)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|row| (row.id, convert::user(row)))
            .collect();
        if let Some(i) = user_ids.iter().position(|id| !users.contains_key(id)) {
            let missing = user_ids[i];
            return Err(
                DomainError::not_found(format_args!("user {missing}")).in_entry("memberships", i)
            );
        }
        // Each distinct reference is resolved once.
        let mut references: HashMap<&str, RoleRef> = HashMap::new();
        for (i, m) in new.iter().enumerate() {
            if let Some(r) = m.role_id.as_deref()
                && !references.contains_key(r)
            {
                let resolved = (resolve_role(&*tx, &team, r).await)
                    .map_err(|e| e.in_entry("memberships", i))?;
                references.insert(r, resolved);
            }
        }
        let mut roles: Vec<(BaseRole, RoleRef)> = Vec::with_capacity(new.len());
        for (i, m) in new.iter().enumerate() {
            let reference = m.role_id.as_deref().map(|r| references[r].clone());
            roles.push(
                rules::choose_role(m.role, reference, None)
                    .map_err(|e| e.in_entry("memberships", i))?,
            );
        }
        drop(references);
        if actor.user_id.is_some() {
            let mut permissions: HashMap<&str, Arc<PermissionSet>> = HashMap::new();
            for (_, role_ref) in &roles {
                if !permissions.contains_key(role_ref.id.as_str()) {
                    let held = role_permissions(&*tx, self.policy(), &role_ref.id).await?;
                    permissions.insert(&role_ref.id, held);
                }
            }
            let entries: Vec<NewMember<'_>> = new
                .iter()
                .zip(&roles)
                .map(|(m, (level, role_ref))| NewMember {
                    user_id: m.user_id,
                    granted: MemberRole {
                        level: *level,
                        role: RoleFacts {
                            role_id: &role_ref.id,
                            permissions: &permissions[role_ref.id.as_str()],
                        },
                    },
                    accepted: m.accepted,
                    auto_accept_applies: rules::accepted_on_create(
                        false,
                        &organization,
                        &users[&m.user_id].email,
                    ),
                })
                .collect();
            let write = Write::ImportMemberships {
                team_is_organization: team.is_organization(),
                entries: &entries,
            };
            authorize(&*tx, self.policy(), actor, Some(&team), &write).await?;
        }
        for (i, (m, (role, _))) in new.iter().zip(&roles).enumerate() {
            rules::check_owner_expiry(*role, m.expires_at)
                .map_err(|e| e.in_entry("memberships", i))?;
        }
        let existing = members_among(&*tx, team.id, &user_ids).await?;
        for (i, user_id) in user_ids.iter().enumerate() {
            rules::check_not_yet_member(existing.contains(user_id), *user_id, team.id)
                .map_err(|e| e.in_entry("memberships", i))?;
        }
        if team.is_organization() && rules::limits_memberships(&organization) {
            let count = membership::Entity::find()
                .filter(membership::Column::TeamId.eq(organization.id))
                .count(&*tx)
                .await
                .map_err(db_error)?;
            let invited = pending_invitations(&*tx, organization.id, convert::now_micros()).await?;
            // Every entry counts the ones before it, as if they had been created one by one.
            for i in 0..new.len() {
                rules::check_membership_limit(&organization, count + i as u64, invited)
                    .map_err(|e| e.in_entry("memberships", i))?;
            }
        } else if !team.is_organization() {
            let members = organization_members_among(&*tx, organization.id, &user_ids).await?;
            for (i, (m, (role, _))) in new.iter().zip(&roles).enumerate() {
                // An expired one is on its way out: the sweep would take the new one along.
                let membership = members.get(&m.user_id);
                rules::check_organization_member(membership.is_some(), m.user_id, organization.id)
                    .map_err(|e| e.in_entry("memberships", i))?;
                let organization_expiry = membership.copied().flatten();
                rules::check_owner_expiry(
                    *role,
                    rules::lapses_at(m.expires_at, organization_expiry),
                )
                .map_err(|e| e.in_entry("memberships", i))?;
            }
        }
        let now = convert::now_micros();
        let rows = new
            .into_iter()
            .zip(roles)
            .map(|(m, (role, role_ref))| {
                let email = &users[&m.user_id].email;
                let accepted = rules::accepted_on_create(m.accepted, &organization, email);
                membership_row(&team, m, accepted, role, role_ref, now)
            })
            .collect();
        insert_rows::<membership::Entity, _>(&*tx, rows).await?;
        // Read back by (team, user), unique: the ids the database gave, on every engine. By
        // user alone in SQL, as in `members_among`.
        let mut by_user: HashMap<i64, Membership> = HashMap::with_capacity(user_ids.len());
        for row in membership::Entity::find()
            .filter(membership::Column::UserId.is_in(user_ids.iter().copied()))
            .all(&*tx)
            .await
            .map_err(db_error)?
        {
            if row.team_id == team.id {
                by_user.insert(row.user_id, convert::membership(row)?);
            }
        }
        let mut created = Vec::with_capacity(user_ids.len());
        let mut drafts: Vec<EventDraft> = Vec::with_capacity(user_ids.len());
        for user_id in &user_ids {
            let membership = by_user.remove(user_id).ok_or_else(|| {
                DomainError::Internal(format!(
                    "imported membership of user {user_id} not read back"
                ))
            })?;
            drafts.push(membership_event(
                EventKind::MembershipCreated,
                &membership,
                None,
                Some(&membership),
            ));
            let user = users
                .remove(user_id)
                .ok_or_else(|| DomainError::Internal(format!("user {user_id} imported twice")))?;
            created.push(MembershipView {
                membership,
                user,
                attributes: Vec::new(),
            });
        }
        let sequences = events::record_many(&*tx, actor, drafts).await?;
        tx.commit().await?;
        Ok(imported(created, sequences))
    }
}
