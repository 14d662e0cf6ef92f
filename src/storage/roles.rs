//! Roles: resolution of the references memberships make, the custom roles' writes, and the
//! effective permissions a user's accepted memberships give in a team.

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::RngCore;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::{membership, role, team};
use super::events::{self, EventDraft, snapshot};
use super::organizations::{TeamKind, find_team};
use super::users::Written;
use super::{Store, WriteTx, convert, db_error, memberships};
use crate::domain::access::{Effective, Policy};
use crate::domain::actor;
use crate::domain::catalog::PermissionSet;
use crate::domain::model::{Actor, Role, RoleRef, RoleType, Team};
use crate::domain::page::KeyedPageRequest;
use crate::domain::roles::{BaseRole, resolve_system_reference};
use crate::domain::{DomainError, DomainResult, Reason, rules};

fn role_ref(row: &role::Model) -> RoleRef {
    RoleRef {
        id: row.id.clone(),
        key: row.key.clone(),
        base: row.base_role.as_deref().and_then(BaseRole::parse),
    }
}

fn stored_permissions(row: &role::Model) -> Vec<String> {
    serde_json::from_str(&row.permissions).unwrap_or_default()
}

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
            Ok(role_ref(&row))
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
            return Ok(role_ref(&row));
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

/// A user's accepted grants in `team`: the team membership's role, then the organization's.
pub(crate) async fn effective<C: ConnectionTrait>(
    conn: &C,
    policy: &Policy,
    user_id: i64,
    team: &Team,
) -> DomainResult<Effective> {
    let organization_id = team.organization_id();
    let rows = membership::Entity::find()
        .filter(membership::Column::UserId.eq(user_id))
        .filter(membership::Column::TeamId.is_in([team.id, organization_id]))
        .filter(membership::Column::Accepted.eq(true))
        .all(conn)
        .await
        .map_err(db_error)?;
    grants_of(conn, policy, team.id, organization_id, rows).await
}

/// The grants of a user's accepted memberships in a team and its organization, with the custom
/// roles' permissions read in one query.
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

#[derive(Debug, Clone, Default)]
pub struct NewRole {
    pub team_id: i64,
    /// Derived from the name when None.
    pub key: Option<String>,
    pub name: String,
    pub color: Option<String>,
    pub description: Option<String>,
    pub permissions: Vec<String>,
}

/// Present fields are set; `color`/`description: Some(None)` clear them; `permissions` replaces
/// the whole set.
#[derive(Debug, Clone, Default)]
pub struct RolePatch {
    pub name: Option<String>,
    pub color: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub permissions: Option<Vec<String>>,
    pub etag: Option<String>,
}

/// How a request names a role: an id, or a key within `team_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAddress {
    pub team_id: Option<i64>,
    pub role: String,
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

fn role_event(
    kind: &'static str,
    team: &Team,
    role_id: &str,
    before: Option<&Role>,
    after: Option<&Role>,
) -> EventDraft {
    EventDraft {
        kind,
        organization_id: Some(team.organization_id()),
        team_id: Some(team.id),
        role_id: Some(role_id.to_string()),
        before: before.and_then(snapshot),
        after: after.and_then(snapshot),
        ..Default::default()
    }
}

impl Store {
    /// The actor's grants in `team`, read inside the write's transaction.
    async fn actor_effective(
        &self,
        tx: &WriteTx,
        actor: &Actor,
        team: &Team,
    ) -> DomainResult<Option<Effective>> {
        match actor.user_id {
            Some(user_id) => Ok(Some(effective(&**tx, self.policy(), user_id, team).await?)),
            None => Ok(None),
        }
    }

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

    /// Checks what an actor may do to a role: the role write itself, and no permission handed
    /// out that the actor lacks.
    fn check_actor_role_write(
        &self,
        actor_grants: Option<&Effective>,
        action: &str,
        granted: &BTreeSet<String>,
    ) -> DomainResult<()> {
        let Some(grants) = actor_grants else {
            return Ok(());
        };
        actor::check_role_write(grants, action)?;
        let granted = PermissionSet::new(granted.iter().cloned());
        actor::check_no_escalation(
            grants,
            &self.policy().catalog,
            &granted,
            "give a role permissions",
        )
    }

    pub async fn create_role(&self, actor: &Actor, new: NewRole) -> DomainResult<Written<Role>> {
        let tx = self.begin_write().await?;
        let existing = find_team(&*tx, new.team_id, TeamKind::Any).await?;
        memberships::lock_organization(&*tx, existing.organization_id()).await?;
        let team = find_team(&*tx, new.team_id, TeamKind::Any).await?;
        let permissions = self.validate_permissions("permissions", &team, &new.permissions)?;
        let grants = self.actor_effective(&tx, actor, &team).await?;
        self.check_actor_role_write(grants.as_ref(), "create", &permissions)?;
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
            role_event("role.created", &team, &created.id, None, Some(&created)),
        )
        .await?;
        tx.commit().await?;
        Ok(Written {
            value: created,
            revision,
        })
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
        change: impl FnOnce(&Team, &BTreeSet<String>) -> DomainResult<RolePatch>,
    ) -> DomainResult<Written<Role>> {
        let tx = self.begin_write().await?;
        let found = find_role(&*tx, address).await?;
        immutable(&found)?;
        let team_id = found.team_id.unwrap_or_default();
        let existing = find_team(&*tx, team_id, TeamKind::Any).await?;
        memberships::lock_organization(&*tx, existing.organization_id()).await?;
        let row = find_role(&*tx, address).await?;
        let team = find_team(&*tx, team_id, TeamKind::Any).await?;
        let before = to_role(row.clone(), self.policy());
        let patch = change(&team, &before.permissions)?;
        let mut after = before.clone();
        if let Some(permissions) = &patch.permissions {
            after.permissions = self.validate_permissions("permissions", &team, permissions)?;
        }
        // Actor rules come before the invariants: PERMISSION_DENIED wins.
        let grants = self.actor_effective(&tx, actor, &team).await?;
        let added: BTreeSet<String> = after
            .permissions
            .difference(&before.permissions)
            .cloned()
            .collect();
        self.check_actor_role_write(grants.as_ref(), "update", &added)?;
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
                "role.updated",
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
        self.write_role(actor, address, |_, _| Ok(patch)).await
    }

    /// Adds permissions (idempotent); each is validated against the catalog and the role's scope.
    pub async fn add_role_permissions(
        &self,
        actor: &Actor,
        address: &RoleAddress,
        permissions: Vec<String>,
    ) -> DomainResult<Written<Role>> {
        let policy = Arc::clone(self.policy());
        self.write_role(actor, address, move |team, held| {
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
        self.write_role(actor, address, move |_, held| {
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
        memberships::lock_organization(&*tx, existing.organization_id()).await?;
        let row = find_role(&*tx, address).await?;
        rules::check_etag(etag, row.version)?;
        let team = find_team(&*tx, team_id, TeamKind::Any).await?;
        if let Some(grants) = self.actor_effective(&tx, actor, &team).await? {
            actor::check_role_write(&grants, "delete")?;
        }
        let target = resolve_reference(&*tx, &team, reassign_to.unwrap_or("member_role"))
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
                memberships::membership_event(
                    "membership.updated",
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
            role_event("role.deleted", &team, &deleted.id, Some(&deleted), None),
        )
        .await?;
        tx.commit().await?;
        Ok((moved, revision))
    }

    /// The system roles, the team's custom roles and, for a sub-team, its organization's; by id.
    /// Returns the page and the key the next page starts after.
    pub async fn list_roles(
        &self,
        team_id: i64,
        page: &KeyedPageRequest,
    ) -> DomainResult<(Vec<Role>, Option<String>)> {
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
            .limit(page.size + 1)
            .all(self.conn())
            .await
            .map_err(db_error)?;
        let more = rows.len() as u64 > page.size;
        let roles: Vec<Role> = rows
            .into_iter()
            .take(page.size as usize)
            .map(|r| to_role(r, self.policy()))
            .collect();
        let next = if more {
            roles.last().map(|r| r.id.clone())
        } else {
            None
        };
        Ok((roles, next))
    }

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
        let rows = membership::Entity::find()
            .filter(membership::Column::UserId.eq(user_id))
            .filter(membership::Column::Accepted.eq(true))
            .filter(
                Condition::any()
                    .add(membership::Column::TeamId.eq(team_id))
                    .add(membership::Column::TeamId.in_subquery(organization_of_team)),
            )
            .all(self.conn())
            .await
            .map_err(db_error)?;
        let Some(organization_id) = rows.first().map(|m| m.organization_id) else {
            find_team(self.conn(), team_id, TeamKind::Any).await?;
            return Ok(Effective::default());
        };
        grants_of(self.conn(), self.policy(), team_id, organization_id, rows).await
    }
}

impl Store {
    /// A custom role's stored permissions; None when there is no such role.
    pub async fn custom_role_permissions(
        &self,
        role_id: &str,
    ) -> DomainResult<Option<Vec<String>>> {
        Ok(role::Entity::find_by_id(role_id)
            .one(self.conn())
            .await
            .map_err(db_error)?
            .map(|row| stored_permissions(&row)))
    }
}
