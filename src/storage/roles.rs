//! Roles: the custom roles' writes and the reads of roles by address or team. What a user's
//! roles grant is `permissions`; how a membership's reference finds a role is
//! `shared::resolve_role`.

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};

use super::actor::authorize;
use super::entities::{membership, role};
use super::events::{self, EventDraft, snapshot};
use super::idempotency::{self, Once, Outcome};
use super::permissions::{role_permissions, stored_permissions};
use super::shared::{Written, find_team, lock_organization, membership_event, resolve_role};
use super::{Store, convert, db_error};
use crate::domain::access::Policy;
use crate::domain::catalog::PermissionSet;
use crate::domain::custom_roles::{NewRole, RoleAddress, RolePatch};
use crate::domain::events::EventKind;
use crate::domain::model::{Actor, Role, RoleType, Team};
use crate::domain::page::{KeyedCursor, KeyedPageRequest, PagedList};
use crate::domain::policy::{RoleFacts, RoleHolder, Write};
use crate::domain::roles::{BaseRole, resolve_system_reference};
use crate::domain::teams::TeamKind;
use crate::domain::{DomainError, DomainResult, Reason, rules};

/// A role row as the domain sees it; system roles hold what the catalog in force gives them.
fn to_role(row: role::Model, policy: &Policy) -> Role {
    let permissions: BTreeSet<String> = match policy.system_permissions(&row.id) {
        Some(system) => system.held().clone(),
        None => stored_permissions(&row).into_iter().collect(),
    };
    Role {
        role_type: if row.team_id.is_none() {
            RoleType::System
        } else {
            RoleType::Custom
        },
        base: row.base_role.as_deref().and_then(BaseRole::parse),
        id: row.id,
        key: row.key,
        name: row.name,
        color: row.color,
        description: row.description,
        team_id: row.team_id,
        permissions,
        created_at: convert::time(row.created_at),
        updated_at: convert::time(row.updated_at),
        version: row.version,
    }
}

fn role_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    format!("role_{}", hex::encode(bytes))
}

/// A key from a name: `"Booking Manager"` → `"booking-manager"`.
fn derived_key(name: &str) -> String {
    let key = crate::domain::validate::slugify(name);
    if key.is_empty() || resolve_system_reference(&key).is_some() {
        format!("custom-{key}")
    } else {
        key
    }
}

async fn find_role<C: ConnectionTrait>(
    conn: &C,
    address: &RoleAddress,
) -> DomainResult<role::Model> {
    let not_found = || DomainError::role_not_found(&address.role);
    if let Some(row) = role::Entity::find_by_id(address.role.as_str())
        .one(conn)
        .await
        .map_err(db_error)?
    {
        return match (row.team_id, address.team_id) {
            (Some(owner), Some(team)) if owner != team => Err(not_found()),
            _ => Ok(row),
        };
    }
    let mut scopes = Vec::new();
    if let Some(team) = address.team_id {
        scopes.push(team);
    }
    scopes.push(0);
    let found = role::Entity::find()
        .filter(role::Column::ScopeId.is_in(scopes))
        .filter(role::Column::Key.eq(address.role.as_str()))
        .order_by_desc(role::Column::ScopeId)
        .one(conn)
        .await
        .map_err(db_error)?;
    match found {
        Some(row) => Ok(row),
        None => match resolve_system_reference(&address.role) {
            Some(system) => role::Entity::find_by_id(system.id)
                .one(conn)
                .await
                .map_err(db_error)?
                .ok_or_else(not_found),
            None => Err(not_found()),
        },
    }
}

/// A system role belongs to no team, so there are no grants to judge an actor by: it is refused
/// to every caller alike, as part of resolving the address, before the actor check.
fn immutable(row: &role::Model) -> DomainResult<()> {
    if row.team_id.is_none() {
        return Err(DomainError::precondition(
            Reason::SystemRoleImmutable,
            format!(
                "{} is a system role and cannot be changed or deleted",
                row.id
            ),
        ));
    }
    Ok(())
}

async fn ensure_name_free<C: ConnectionTrait>(
    conn: &C,
    team_id: i64,
    name: &str,
    except: Option<&str>,
) -> DomainResult<()> {
    let mut q = role::Entity::find()
        .filter(role::Column::ScopeId.eq(team_id))
        .filter(role::Column::Name.eq(name));
    if let Some(id) = except {
        q = q.filter(role::Column::Id.ne(id));
    }
    if q.one(conn).await.map_err(db_error)?.is_some() {
        return Err(DomainError::AlreadyExists(format!(
            "team {team_id} already has a role named {name:?}"
        )));
    }
    Ok(())
}

/// Which RPC a change of a custom role is: they share one path and differ in their write.
#[derive(Debug, Clone, Copy)]
enum RoleWrite {
    Update,
    Add,
    Remove,
}

impl RoleWrite {
    /// The write, with what the role holds once it is done.
    fn write(self, permissions: &PermissionSet) -> Write<'_> {
        match self {
            RoleWrite::Update => Write::UpdateRole { permissions },
            RoleWrite::Add => Write::AddRolePermissions { permissions },
            RoleWrite::Remove => Write::RemoveRolePermissions { permissions },
        }
    }
}

fn role_event(
    kind: EventKind,
    team: &Team,
    role_id: &str,
    before: Option<&Role>,
    after: Option<&Role>,
) -> EventDraft {
    EventDraft {
        organization_id: Some(team.organization_id()),
        team_id: Some(team.id),
        role_id: Some(role_id.to_string()),
        before: before.and_then(snapshot),
        after: after.and_then(snapshot),
        ..EventDraft::new(kind)
    }
}

impl Store {
    fn validate_permissions(
        &self,
        field: &str,
        team: &Team,
        permissions: &[String],
    ) -> DomainResult<BTreeSet<String>> {
        self.policy()
            .catalog
            .validate_role_permissions(field, permissions, team.is_organization())
            .map_err(DomainError::InvalidArgument)
    }

    pub async fn create_role(&self, actor: &Actor, new: NewRole) -> DomainResult<Written<Role>> {
        self.create_role_once(actor, new, None).await?.created()
    }

    /// `create_role`, done once per request id (`idempotency`).
    pub async fn create_role_once(
        &self,
        actor: &Actor,
        new: NewRole,
        once: Option<Once<'_, Written<Role>>>,
    ) -> DomainResult<Outcome<Written<Role>>> {
        let tx = self.begin_write().await?;
        let existing = find_team(&*tx, new.team_id, TeamKind::Any).await?;
        lock_organization(&*tx, existing.organization_id()).await?;
        let team = find_team(&*tx, new.team_id, TeamKind::Any).await?;
        let permissions = self.validate_permissions("permissions", &team, &new.permissions)?;
        let held = PermissionSet::new(permissions.iter().cloned());
        let write = Write::CreateRole { permissions: &held };
        authorize(&*tx, self.policy(), actor, Some(&team), &write).await?;
        if let Some(answer) = idempotency::claim(&tx, actor, once.as_ref()).await? {
            return Ok(Outcome::Replayed(answer));
        }
        let key = new.key.unwrap_or_else(|| derived_key(&new.name));
        let key_taken = role::Entity::find()
            .filter(role::Column::ScopeId.eq(team.id))
            .filter(role::Column::Key.eq(key.as_str()))
            .one(&*tx)
            .await
            .map_err(db_error)?;
        if key_taken.is_some() {
            return Err(DomainError::AlreadyExists(format!(
                "team {} already has a role with key {key:?}",
                team.id
            )));
        }
        ensure_name_free(&*tx, team.id, &new.name, None).await?;
        let now = convert::now_micros();
        let held: Vec<&String> = permissions.iter().collect();
        let row = role::ActiveModel {
            id: Set(role_id()),
            key: Set(key),
            team_id: Set(Some(team.id)),
            scope_id: Set(team.id),
            name: Set(new.name),
            color: Set(new.color),
            description: Set(new.description),
            role_type: Set("CUSTOM".to_string()),
            base_role: Set(None),
            permissions: Set(serde_json::to_string(&held).unwrap_or_else(|_| "[]".into())),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        }
        .insert(&*tx)
        .await
        .map_err(db_error)?;
        let created = to_role(row, self.policy());
        let revision = events::record(
            &*tx,
            actor,
            role_event(
                EventKind::RoleCreated,
                &team,
                &created.id,
                None,
                Some(&created),
            ),
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

    pub async fn get_role(&self, address: &RoleAddress) -> DomainResult<Role> {
        if let Some(team) = address.team_id {
            find_team(self.conn(), team, TeamKind::Any).await?;
        }
        Ok(to_role(
            find_role(self.conn(), address).await?,
            self.policy(),
        ))
    }

    /// Applies a patch to a custom role: the shared path of Update, Add and Remove.
    async fn write_role(
        &self,
        actor: &Actor,
        address: &RoleAddress,
        kind: RoleWrite,
        change: impl FnOnce(&Team, &BTreeSet<String>) -> DomainResult<RolePatch>,
    ) -> DomainResult<Written<Role>> {
        let tx = self.begin_write().await?;
        let found = find_role(&*tx, address).await?;
        immutable(&found)?;
        let team_id = found.team_id.unwrap_or_default();
        let existing = find_team(&*tx, team_id, TeamKind::Any).await?;
        lock_organization(&*tx, existing.organization_id()).await?;
        let row = find_role(&*tx, address).await?;
        let team = find_team(&*tx, team_id, TeamKind::Any).await?;
        let before = to_role(row.clone(), self.policy());
        let patch = change(&team, &before.permissions)?;
        let mut after = before.clone();
        if let Some(permissions) = &patch.permissions {
            after.permissions = self.validate_permissions("permissions", &team, permissions)?;
        }
        let resulting = PermissionSet::new(after.permissions.iter().cloned());
        authorize(
            &*tx,
            self.policy(),
            actor,
            Some(&team),
            &kind.write(&resulting),
        )
        .await?;
        rules::check_etag(patch.etag.as_deref(), row.version)?;
        if let Some(name) = patch.name {
            ensure_name_free(&*tx, team.id, &name, Some(&row.id)).await?;
            after.name = name;
        }
        if let Some(color) = patch.color {
            after.color = color;
        }
        if let Some(description) = patch.description {
            after.description = description;
        }
        if after == before {
            let revision = events::current_revision(&*tx).await?;
            tx.commit().await?;
            return Ok(Written {
                value: before,
                revision,
            });
        }
        let mut active = row.into_active_model();
        active.name = Set(after.name.clone());
        active.color = Set(after.color.clone());
        active.description = Set(after.description.clone());
        let held: Vec<&String> = after.permissions.iter().collect();
        active.permissions = Set(serde_json::to_string(&held).unwrap_or_else(|_| "[]".into()));
        active.updated_at = Set(convert::now_micros());
        active.version = Set(before.version + 1);
        let updated = to_role(active.update(&*tx).await.map_err(db_error)?, self.policy());
        let revision = events::record(
            &*tx,
            actor,
            role_event(
                EventKind::RoleUpdated,
                &team,
                &updated.id,
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

    pub async fn update_role(
        &self,
        actor: &Actor,
        address: &RoleAddress,
        patch: RolePatch,
    ) -> DomainResult<Written<Role>> {
        self.write_role(actor, address, RoleWrite::Update, |_, _| Ok(patch))
            .await
    }

    /// Adds permissions (idempotent); each is validated against the catalog and the role's scope.
    pub async fn add_role_permissions(
        &self,
        actor: &Actor,
        address: &RoleAddress,
        permissions: Vec<String>,
    ) -> DomainResult<Written<Role>> {
        let policy = Arc::clone(self.policy());
        self.write_role(actor, address, RoleWrite::Add, move |team, held| {
            let added = policy
                .catalog
                .validate_role_permissions("permissions", &permissions, team.is_organization())
                .map_err(DomainError::InvalidArgument)?;
            Ok(RolePatch {
                permissions: Some(held.union(&added).cloned().collect()),
                ..Default::default()
            })
        })
        .await
    }

    /// Removes permissions (idempotent: strings the role does not hold are ignored).
    pub async fn remove_role_permissions(
        &self,
        actor: &Actor,
        address: &RoleAddress,
        permissions: Vec<String>,
    ) -> DomainResult<Written<Role>> {
        self.write_role(actor, address, RoleWrite::Remove, move |_, held| {
            let remaining = held
                .iter()
                .filter(|p| !permissions.contains(p))
                .cloned()
                .collect();
            Ok(RolePatch {
                permissions: Some(remaining),
                ..Default::default()
            })
        })
        .await
    }

    /// Deletes a custom role, moving its memberships to `reassign_to` (default `member_role`) in
    /// the same transaction. Their base level stays: deleting a role never changes who owns a
    /// team. Returns how many memberships moved and the last event's sequence.
    pub async fn delete_role(
        &self,
        actor: &Actor,
        address: &RoleAddress,
        reassign_to: Option<&str>,
        etag: Option<&str>,
    ) -> DomainResult<(u64, i64)> {
        let tx = self.begin_write().await?;
        let found = find_role(&*tx, address).await?;
        immutable(&found)?;
        let team_id = found.team_id.unwrap_or_default();
        let existing = find_team(&*tx, team_id, TeamKind::Any).await?;
        lock_organization(&*tx, existing.organization_id()).await?;
        let row = find_role(&*tx, address).await?;
        let team = find_team(&*tx, team_id, TeamKind::Any).await?;
        let target = resolve_role(&*tx, &team, reassign_to.unwrap_or("member_role"))
            .await
            .map_err(|_| {
                DomainError::invalid(
                    "reassign_role_id",
                    "must name a system role or another role of this team",
                )
            })?;
        if target.id == row.id {
            return Err(DomainError::invalid(
                "reassign_role_id",
                "must differ from the role being deleted",
            ));
        }
        let users = membership::Entity::find()
            .filter(membership::Column::RoleId.eq(row.id.as_str()))
            .order_by_asc(membership::Column::Id)
            .all(&*tx)
            .await
            .map_err(db_error)?;
        if actor.user_id.is_some() {
            let deleted = PermissionSet::new(stored_permissions(&row));
            let heir = role_permissions(&*tx, self.policy(), &target.id).await?;
            let holders = users
                .iter()
                .map(|m| {
                    let level = BaseRole::parse(&m.role)
                        .ok_or_else(|| convert::corrupt("membership role", &m.role))?;
                    Ok(RoleHolder {
                        user_id: m.user_id,
                        level,
                    })
                })
                .collect::<DomainResult<Vec<_>>>()?;
            let write = Write::DeleteRole {
                role: RoleFacts {
                    role_id: &row.id,
                    permissions: &deleted,
                },
                reassign_to: RoleFacts {
                    role_id: &target.id,
                    permissions: &heir,
                },
                // Every holder keeps their level: deleting a role never changes who owns a team.
                reassign_level: None,
                holders: &holders,
            };
            authorize(&*tx, self.policy(), actor, Some(&team), &write).await?;
        }
        rules::check_etag(etag, row.version)?;
        let moved = users.len() as u64;
        let now = convert::now_micros();
        for m in users {
            let before = convert::membership(m.clone())?;
            let mut active = m.into_active_model();
            active.role_id = Set(target.id.clone());
            active.role_key = Set(target.key.clone());
            active.updated_at = Set(now);
            active.version = Set(before.version + 1);
            let after = convert::membership(active.update(&*tx).await.map_err(db_error)?)?;
            events::record(
                &*tx,
                actor,
                membership_event(
                    EventKind::MembershipUpdated,
                    &after,
                    Some(&before),
                    Some(&after),
                ),
            )
            .await?;
        }
        role::Entity::delete_by_id(row.id.as_str())
            .exec(&*tx)
            .await
            .map_err(db_error)?;
        let deleted = to_role(row, self.policy());
        let revision = events::record(
            &*tx,
            actor,
            role_event(
                EventKind::RoleDeleted,
                &team,
                &deleted.id,
                Some(&deleted),
                None,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok((moved, revision))
    }

    /// The system roles, the team's custom roles and, for a sub-team, its organization's; by id.
    /// Returns the page and where the next page starts.
    pub async fn list_roles(
        &self,
        team_id: i64,
        page: &KeyedPageRequest,
    ) -> DomainResult<(Vec<Role>, Option<KeyedCursor>)> {
        let page = page.of(PagedList::Roles)?;
        let team = find_team(self.conn(), team_id, TeamKind::Any).await?;
        let mut scopes = Condition::any()
            .add(role::Column::TeamId.is_null())
            .add(role::Column::TeamId.eq(team.id));
        if !team.is_organization() {
            scopes = scopes.add(role::Column::TeamId.eq(team.organization_id()));
        }
        let rows = role::Entity::find()
            .filter(scopes)
            .filter(role::Column::Id.gt(page.after.as_str()))
            .order_by_asc(role::Column::Id)
            .limit(page.fetch())
            .all(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?;
        let roles = rows
            .into_iter()
            .map(|r| to_role(r, self.policy()))
            .collect();
        let page = page.cut(roles, |r: &Role| r.id.clone());
        Ok((page.items, page.next_after))
    }
}
