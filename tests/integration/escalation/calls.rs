//! An operation made concrete: the request its actor sends against the world as it is now, the
//! part of the world it may write, and how it reads in a trace.

use serde_json::json;

use super::ops::{
    Grant, Level, MembershipChange, Op, OrganizationChange, PERMISSIONS, RoleRef, SYSTEM_ROLES,
    Write,
};
use super::reads::{Area, Teams};
use super::snapshot::Snapshot;
use super::world::World;
use crate::common::{pb, to_struct};
use pb::MembershipRole;

/// A role id no world holds: what a reference to a custom role resolves to when there is none.
const MISSING_ROLE: &str = "role_00000000000000000000000000000000";
const MISSING_ATTRIBUTE: &str = "attr_00000000000000000000000000000000";

/// An operation made concrete: who sends which request, and how it reads in a trace.
pub struct Call {
    pub actor: i64,
    pub text: String,
    pub area: Area,
    pub request: Request,
}

pub enum Request {
    CreateMembership(pb::CreateMembershipRequest),
    UpdateMembership(pb::UpdateMembershipRequest),
    DeleteMembership(pb::DeleteMembershipRequest),
    CreateRole(pb::CreateRoleRequest),
    UpdateRole(pb::UpdateRoleRequest),
    AddRolePermissions(pb::AddRolePermissionsRequest),
    RemoveRolePermissions(pb::RemoveRolePermissionsRequest),
    DeleteRole(pb::DeleteRoleRequest),
    UpdateOrganization(pb::UpdateOrganizationRequest),
    CreateTeam(pb::CreateTeamRequest),
    UpdateTeam(pb::UpdateTeamRequest),
    DeleteTeam(pb::DeleteTeamRequest),
    UpdateUser(pb::UpdateUserRequest),
    DeleteUser(pb::DeleteUserRequest),
    CreateAttribute(pb::CreateAttributeRequest),
    AssignAttribute(pb::AssignAttributeRequest),
}

/// `op` (the `index`-th of its sequence) against the world as `now` shows it.
pub fn resolve(world: &World<'_>, index: usize, op: &Op, now: &Snapshot) -> Call {
    let actor = world.users[op.actor % world.users.len()];
    let org = now.organization_id();
    let team = |i: usize| now.teams[i % now.teams.len()];
    let sub_team = |i: usize| match now.teams.len() {
        1 => org,
        n => now.teams[1 + i % (n - 1)],
    };
    let user = |i: usize| world.users[i % world.users.len()];
    let customs = world.custom_roles(now);
    let custom = |k: usize| -> (String, i64, String) {
        match customs.len() {
            0 => (MISSING_ROLE.into(), org, "(no custom role)".into()),
            n => {
                let r = customs[k % n];
                let team = r.team_id.unwrap_or(org);
                let label = format!("{}@{}", r.name, world.team_name(team));
                (r.id.clone(), team, label)
            }
        }
    };
    let role_ref = |r: RoleRef| -> (String, String) {
        match r {
            RoleRef::System(i) => {
                let id = SYSTEM_ROLES[i % SYSTEM_ROLES.len()];
                (id.into(), id.into())
            }
            RoleRef::Custom(k) => {
                let (id, _, label) = custom(k);
                (id, label)
            }
        }
    };
    let permissions = |list: &[usize]| -> Vec<String> {
        list.iter()
            .map(|p| PERMISSIONS[p % PERMISSIONS.len()].to_string())
            .collect()
    };
    let mut area = Area::default();
    let (text, request) = match &op.write {
        Write::CreateMembership {
            team: t,
            user: u,
            grant,
            accepted,
        } => {
            let (team_id, user_id) = (team(*t), user(*u));
            area.memberships = Teams::One(team_id);
            let mut request = pb::CreateMembershipRequest {
                team_id,
                user_id,
                accepted: *accepted,
                ..Default::default()
            };
            let granted = apply_grant(*grant, &role_ref, |level, role_id| {
                if let Some(level) = level {
                    request.role = level as i32;
                }
                if let Some(role_id) = role_id {
                    request.role_id = role_id;
                }
            });
            (
                format!(
                    "CreateMembership team={} user={} {granted} accepted={accepted}",
                    world.team_name(team_id),
                    world.user_name(user_id)
                ),
                Request::CreateMembership(request),
            )
        }
        Write::UpdateMembership {
            team: t,
            user: u,
            change,
        } => {
            let (team_id, user_id) = (team(*t), user(*u));
            area.memberships = Teams::One(team_id);
            let mut request = pb::UpdateMembershipRequest {
                team_id,
                member: Some(pb::update_membership_request::Member::UserId(user_id)),
                ..Default::default()
            };
            let what = match *change {
                MembershipChange::Accepted(accepted) => {
                    request.accepted = Some(accepted);
                    format!("accepted={accepted}")
                }
                MembershipChange::Grant(grant) => {
                    apply_grant(grant, &role_ref, |level, role_id| {
                        request.role = level.map(|l| l as i32);
                        request.role_id = role_id;
                    })
                }
                MembershipChange::Metadata => {
                    request.public_metadata = Some(to_struct(json!({ "op": index })));
                    format!("public_metadata={{op:{index}}}")
                }
                MembershipChange::DisableImpersonation(on) => {
                    request.disable_impersonation = Some(on);
                    format!("disable_impersonation={on}")
                }
                MembershipChange::AutoRecordCalls(on) => {
                    let value = if on {
                        pb::AutoRecordCalls::Enabled
                    } else {
                        pb::AutoRecordCalls::Disabled
                    };
                    request.auto_record_calls = Some(value as i32);
                    format!("auto_record_calls={value:?}")
                }
            };
            (
                format!(
                    "UpdateMembership team={} user={} {what}",
                    world.team_name(team_id),
                    world.user_name(user_id)
                ),
                Request::UpdateMembership(request),
            )
        }
        Write::DeleteMembership { team: t, user: u } => {
            let (team_id, user_id) = (team(*t), user(*u));
            area.memberships = Teams::reached_from(team_id, org);
            (
                format!(
                    "DeleteMembership team={} user={}",
                    world.team_name(team_id),
                    world.user_name(user_id)
                ),
                Request::DeleteMembership(pb::DeleteMembershipRequest {
                    team_id,
                    member: Some(pb::delete_membership_request::Member::UserId(user_id)),
                    ..Default::default()
                }),
            )
        }
        Write::CreateRole {
            team: t,
            permissions: p,
        } => {
            let (team_id, permissions) = (team(*t), permissions(p));
            area.roles = true;
            let name = format!("r{index}");
            (
                format!(
                    "CreateRole team={} name={name} permissions={permissions:?}",
                    world.team_name(team_id)
                ),
                Request::CreateRole(pb::CreateRoleRequest {
                    team_id,
                    name,
                    permissions,
                    ..Default::default()
                }),
            )
        }
        Write::UpdateRole {
            role,
            permissions: p,
        } => {
            let ((role_id, team_id, label), permissions) = (custom(*role), permissions(p));
            area.roles = true;
            (
                format!("UpdateRole role={label} permissions={permissions:?}"),
                Request::UpdateRole(pb::UpdateRoleRequest {
                    team_id,
                    role_id,
                    permissions: Some(pb::PermissionList { permissions }),
                    ..Default::default()
                }),
            )
        }
        Write::AddRolePermissions {
            role,
            permissions: p,
        } => {
            let ((role_id, team_id, label), permissions) = (custom(*role), permissions(p));
            area.roles = true;
            (
                format!("AddRolePermissions role={label} permissions={permissions:?}"),
                Request::AddRolePermissions(pb::AddRolePermissionsRequest {
                    team_id,
                    role_id,
                    permissions,
                }),
            )
        }
        Write::RemoveRolePermissions {
            role,
            permissions: p,
        } => {
            let ((role_id, team_id, label), permissions) = (custom(*role), permissions(p));
            area.roles = true;
            (
                format!("RemoveRolePermissions role={label} permissions={permissions:?}"),
                Request::RemoveRolePermissions(pb::RemoveRolePermissionsRequest {
                    team_id,
                    role_id,
                    permissions,
                }),
            )
        }
        Write::DeleteRole { role, reassign } => {
            let (role_id, team_id, label) = custom(*role);
            area.roles = true;
            area.memberships = Teams::reached_from(team_id, org);
            let (reassign_role_id, reassign_label) = match reassign {
                Some(r) => role_ref(*r),
                None => (String::new(), "(default)".into()),
            };
            (
                format!("DeleteRole role={label} reassign={reassign_label}"),
                Request::DeleteRole(pb::DeleteRoleRequest {
                    team_id,
                    role_id,
                    reassign_role_id,
                    ..Default::default()
                }),
            )
        }
        Write::UpdateOrganization(change) => {
            area.organization = true;
            let mut request = pb::UpdateOrganizationRequest {
                organization_id: org,
                ..Default::default()
            };
            match *change {
                OrganizationChange::Name => request.name = Some(format!("Org {index}")),
                OrganizationChange::MaxAllowedMemberships(n) => {
                    request.max_allowed_memberships = Some(n)
                }
                OrganizationChange::AutoAccept(on) => {
                    request.auto_accept_email_domain = Some(if on {
                        format!("{}.test", world.slug)
                    } else {
                        String::new()
                    })
                }
                OrganizationChange::AdminDeleteEnabled(on) => {
                    request.admin_delete_enabled = Some(on)
                }
            }
            (
                format!("UpdateOrganization {change:?}"),
                Request::UpdateOrganization(request),
            )
        }
        Write::CreateTeam => {
            area.teams = true;
            let slug = format!("t-{index}");
            (
                format!("CreateTeam slug={slug}"),
                Request::CreateTeam(pb::CreateTeamRequest {
                    organization_id: org,
                    name: format!("Team {slug}"),
                    slug,
                    ..Default::default()
                }),
            )
        }
        Write::UpdateTeam { team: t } => {
            area.teams = true;
            let team_id = sub_team(*t);
            (
                format!("UpdateTeam team={}", world.team_name(team_id)),
                Request::UpdateTeam(pb::UpdateTeamRequest {
                    team_id,
                    name: Some(format!("Team renamed {index}")),
                    ..Default::default()
                }),
            )
        }
        Write::DeleteTeam { team: t } => {
            area.teams = true;
            area.roles = true;
            let team_id = sub_team(*t);
            (
                format!("DeleteTeam team={}", world.team_name(team_id)),
                Request::DeleteTeam(pb::DeleteTeamRequest {
                    team_id,
                    ..Default::default()
                }),
            )
        }
        Write::UpdateUser { user: u } => {
            let user_id = user(*u);
            area.user = Some(user_id);
            area.memberships = Teams::All;
            (
                format!("UpdateUser user={}", world.user_name(user_id)),
                Request::UpdateUser(pb::UpdateUserRequest {
                    user_id,
                    name: Some(format!("Renamed {index}")),
                    ..Default::default()
                }),
            )
        }
        Write::DeleteUser { user: u } => {
            let user_id = user(*u);
            area.user = Some(user_id);
            area.memberships = Teams::All;
            (
                format!("DeleteUser user={}", world.user_name(user_id)),
                Request::DeleteUser(pb::DeleteUserRequest {
                    user_id,
                    ..Default::default()
                }),
            )
        }
        Write::CreateAttribute => {
            area.attributes = true;
            let name = format!("a{index}");
            (
                format!("CreateAttribute name={name}"),
                Request::CreateAttribute(pb::CreateAttributeRequest {
                    organization_id: org,
                    name,
                    r#type: pb::AttributeType::Text as i32,
                    ..Default::default()
                }),
            )
        }
        Write::AssignAttribute { user: u } => {
            area.attributes = true;
            area.memberships = Teams::One(org);
            let user_id = user(*u);
            let attribute_id = world
                .attributes
                .first()
                .cloned()
                .unwrap_or_else(|| MISSING_ATTRIBUTE.into());
            (
                format!("AssignAttribute user={}", world.user_name(user_id)),
                Request::AssignAttribute(pb::AssignAttributeRequest {
                    organization_id: org,
                    attribute_id,
                    member: Some(pb::assign_attribute_request::Member::UserId(user_id)),
                    value: Some(pb::assign_attribute_request::Value::Text(format!(
                        "v{index}"
                    ))),
                }),
            )
        }
    };
    Call {
        actor,
        text: format!("{} {text}", world.user_name(actor)),
        area,
        request,
    }
}

/// Sets a grant on a request through `set(level, role_id)`; returns how it reads in a trace.
fn apply_grant(
    grant: Grant,
    role_ref: &impl Fn(RoleRef) -> (String, String),
    set: impl FnOnce(Option<MembershipRole>, Option<String>),
) -> String {
    let level = |l: Level| match l {
        Level::Member => MembershipRole::Member,
        Level::Admin => MembershipRole::Admin,
        Level::Owner => MembershipRole::Owner,
    };
    match grant {
        Grant::Level(l) => {
            set(Some(level(l)), None);
            format!("role={:?}", level(l))
        }
        Grant::Role(r) => {
            let (id, label) = role_ref(r);
            set(None, Some(id));
            format!("role_id={label}")
        }
        Grant::LevelAndRole(l, r) => {
            let (id, label) = role_ref(r);
            set(Some(level(l)), Some(id));
            format!("role={:?} role_id={label}", level(l))
        }
    }
}
