//! RoleService.

use tonic::{Request, Response, Status};

use super::idempotency::{answer, once, retry_key};
use super::{Context, actor, binding, convert, trace_ids};
use crate::domain::custom_roles::{NewRole, RoleAddress, RolePatch};
use crate::domain::model::{self, RoleType as DomainRoleType};
use crate::domain::page::{KeyedPageRequest, encode_keyed_token};
use crate::domain::teams::TeamKind;
use crate::domain::tenancy::Binding;
use crate::domain::validate::{self, MAX_ROLE_DESCRIPTION_CHARS, MAX_ROLE_NAME_CHARS};
use crate::domain::{DomainError, Violations};
use crate::pb::role_service_server::RoleService;
use crate::pb::*;
use crate::storage::shared::Written;

pub struct RoleApi(pub Context);

pub fn role(r: model::Role, revision: i64) -> Role {
    Role {
        id: r.id,
        key: r.key,
        name: r.name,
        color: r.color,
        description: r.description,
        team_id: r.team_id,
        r#type: match r.role_type {
            DomainRoleType::System => RoleType::System,
            DomainRoleType::Custom => RoleType::Custom,
        } as i32,
        permissions: r.permissions.into_iter().collect(),
        created_at: convert::timestamp(r.created_at),
        updated_at: convert::timestamp(r.updated_at),
        etag: model::etag(r.version),
        revision,
    }
}

/// `role_id` (an id, or a key within `team_id`) and the optional `team_id`.
pub(crate) fn address(v: &mut Violations, team_id: i64, role_id: &str) -> RoleAddress {
    if team_id < 0 {
        v.add("team_id", "must be a positive id");
    }
    let role = v
        .check(validate::reference("role_id", role_id, 100))
        .unwrap_or_default();
    trace_ids!(role_id = role.as_str());
    if team_id > 0 {
        trace_ids!(team_id = team_id);
    }
    RoleAddress {
        team_id: (team_id > 0).then_some(team_id),
        role,
    }
}

pub(crate) fn name(v: &mut Violations, value: &str) -> String {
    v.check(validate::name("name", value, MAX_ROLE_NAME_CHARS))
        .unwrap_or_default()
}

pub(crate) fn description(v: &mut Violations, value: &str) -> Option<String> {
    let text = v.check(validate::optional_text(
        "description",
        value,
        MAX_ROLE_DESCRIPTION_CHARS,
    ))?;
    (!text.is_empty()).then_some(text)
}

pub(crate) fn permissions_list(v: &mut Violations, permissions: Vec<String>) -> Vec<String> {
    if permissions.len() > 1000 {
        v.add("permissions", "at most 1000 permissions");
    }
    permissions
        .into_iter()
        .map(|p| p.trim().to_string())
        .collect()
}

/// The request of AddRolePermissions and RemoveRolePermissions: the role and at least one
/// permission.
fn granular_change(
    team_id: i64,
    role_id: &str,
    permissions: Vec<String>,
) -> Result<(RoleAddress, Vec<String>), Status> {
    let mut v = Violations::new();
    let address = address(&mut v, team_id, role_id);
    if permissions.is_empty() {
        v.add("permissions", "name at least one permission");
    }
    let permissions = permissions_list(&mut v, permissions);
    v.into_result()?;
    Ok((address, permissions))
}

impl RoleApi {
    /// The role an address names, when the key sees it: a system role, or a custom role of a
    /// team of its organization. Another organization's role is ROLE_NOT_FOUND like a missing
    /// one. A write resolves it here first; a role never changes team, so the write that follows
    /// addresses the same role.
    async fn seen_role(
        &self,
        binding: Binding,
        address: &RoleAddress,
    ) -> Result<model::Role, DomainError> {
        let role = self.0.store.get_role(address).await?;
        let absent = || DomainError::role_not_found(&address.role);
        if let Some(team_id) = role.team_id
            && binding.organization().is_some()
        {
            match self.0.reads.organization_of(team_id).await {
                Ok(organization_id) => binding.check(organization_id, absent)?,
                Err(DomainError::NotFound { .. }) => return Err(absent()),
                Err(e) => return Err(e),
            }
        }
        Ok(role)
    }

    /// Before a write: Ok when the key sees the role (an unbound key sees every role, and the
    /// write itself reports a missing one).
    async fn sees_role(&self, binding: Binding, address: &RoleAddress) -> Result<(), DomainError> {
        if binding.organization().is_some() {
            self.seen_role(binding, address).await?;
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl RoleService for RoleApi {
    async fn create_role(
        &self,
        request: Request<CreateRoleRequest>,
    ) -> Result<Response<Role>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(team_id = r.team_id);
        let mut v = Violations::new();
        let retry = retry_key(&mut v, "CreateRole", &actor, &r, &r.request_id);
        let new = NewRole {
            team_id: v
                .check(validate::id("team_id", r.team_id))
                .unwrap_or_default(),
            key: if r.key.is_empty() {
                None
            } else {
                v.check(validate::role_key("key", &r.key))
            },
            name: name(&mut v, &r.name),
            color: v
                .check(validate::optional_color("color", &r.color))
                .flatten(),
            description: description(&mut v, &r.description),
            permissions: permissions_list(&mut v, r.permissions),
        };
        v.into_result()?;
        self.0
            .sees_team(binding, new.team_id, TeamKind::Any)
            .await?;
        let respond = |w: &Written<model::Role>| role(w.value.clone(), w.revision);
        let outcome = (self.0.store)
            .create_role_once(&actor, new, once(retry, respond))
            .await?;
        let created = answer(outcome, respond)?;
        self.0.reads.settle(created.revision).await;
        trace_ids!(role_id = created.id.as_str());
        Ok(Response::new(created))
    }

    async fn get_role(&self, request: Request<GetRoleRequest>) -> Result<Response<Role>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let address = address(&mut v, r.team_id, &r.role_id);
        v.into_result()?;
        Ok(Response::new(role(
            self.seen_role(binding, &address).await?,
            0,
        )))
    }

    async fn update_role(
        &self,
        request: Request<UpdateRoleRequest>,
    ) -> Result<Response<Role>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let address = address(&mut v, r.team_id, &r.role_id);
        let patch = RolePatch {
            name: r.name.map(|n| name(&mut v, &n)),
            color: r
                .color
                .map(|c| v.check(validate::optional_color("color", &c)).flatten()),
            description: r.description.map(|d| description(&mut v, &d)),
            permissions: r
                .permissions
                .map(|list| permissions_list(&mut v, list.permissions)),
            etag: r.etag,
        };
        v.into_result()?;
        self.sees_role(binding, &address).await?;
        let written = self.0.store.update_role(&actor, &address, patch).await?;
        self.0.reads.settle(written.revision).await;
        Ok(Response::new(role(written.value, written.revision)))
    }

    async fn delete_role(
        &self,
        request: Request<DeleteRoleRequest>,
    ) -> Result<Response<DeleteRoleResponse>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let address = address(&mut v, r.team_id, &r.role_id);
        let reassign = if r.reassign_role_id.is_empty() {
            None
        } else {
            v.check(validate::reference(
                "reassign_role_id",
                &r.reassign_role_id,
                100,
            ))
        };
        v.into_result()?;
        self.sees_role(binding, &address).await?;
        let (moved, revision) = self
            .0
            .store
            .delete_role(&actor, &address, reassign.as_deref(), r.etag.as_deref())
            .await?;
        self.0.reads.settle(revision).await;
        Ok(Response::new(DeleteRoleResponse {
            reassigned_memberships: moved as i64,
            revision,
        }))
    }

    async fn list_roles(
        &self,
        request: Request<ListRolesRequest>,
    ) -> Result<Response<ListRolesResponse>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(team_id = r.team_id);
        let mut v = Violations::new();
        let team_id = v
            .check(validate::id("team_id", r.team_id))
            .unwrap_or_default();
        let page = KeyedPageRequest::parse(r.page_size, &r.page_token).unwrap_or_else(|errs| {
            v.extend(errs);
            KeyedPageRequest::default()
        });
        v.into_result()?;
        self.0.sees_team(binding, team_id, TeamKind::Any).await?;
        let (roles, next) = self.0.store.list_roles(team_id, &page).await?;
        Ok(Response::new(ListRolesResponse {
            roles: roles.into_iter().map(|r| role(r, 0)).collect(),
            next_page_token: next.map(encode_keyed_token).unwrap_or_default(),
        }))
    }

    async fn add_role_permissions(
        &self,
        request: Request<AddRolePermissionsRequest>,
    ) -> Result<Response<Role>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        let (address, permissions) = granular_change(r.team_id, &r.role_id, r.permissions)?;
        self.sees_role(binding, &address).await?;
        let written = self
            .0
            .store
            .add_role_permissions(&actor, &address, permissions)
            .await?;
        self.0.reads.settle(written.revision).await;
        Ok(Response::new(role(written.value, written.revision)))
    }

    async fn remove_role_permissions(
        &self,
        request: Request<RemoveRolePermissionsRequest>,
    ) -> Result<Response<Role>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        let (address, permissions) = granular_change(r.team_id, &r.role_id, r.permissions)?;
        self.sees_role(binding, &address).await?;
        let written = self
            .0
            .store
            .remove_role_permissions(&actor, &address, permissions)
            .await?;
        self.0.reads.settle(written.revision).await;
        Ok(Response::new(role(written.value, written.revision)))
    }

    async fn list_permission_catalog(
        &self,
        _request: Request<ListPermissionCatalogRequest>,
    ) -> Result<Response<ListPermissionCatalogResponse>, Status> {
        let permissions = self
            .0
            .store
            .policy()
            .catalog
            .entries()
            .iter()
            .map(|e| PermissionCatalogEntry {
                permission: e.permission.clone(),
                resource: e.resource.clone(),
                action: e.action.clone(),
                scopes: if e.organization_only {
                    vec![PermissionScope::Organization as i32]
                } else {
                    vec![
                        PermissionScope::Team as i32,
                        PermissionScope::Organization as i32,
                    ]
                },
                description: e.description.clone(),
            })
            .collect();
        Ok(Response::new(ListPermissionCatalogResponse { permissions }))
    }
}
