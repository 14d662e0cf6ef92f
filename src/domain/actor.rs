//! What an end user (the `x-actor-user-id` a calling service acts for) may change. One place
//! answers "who may change a role".

use super::access::Effective;
use super::catalog::{PermissionCatalog, PermissionSet};
use super::errors::{DomainError, DomainResult};
use super::roles::BaseRole;

/// A membership's role on one side of a change.
#[derive(Debug, Clone, Copy)]
pub struct RoleSide<'a> {
    pub role: BaseRole,
    pub role_id: &'a str,
    pub permissions: &'a PermissionSet,
}

/// A membership being created (`before` = None) or having its role changed.
#[derive(Debug, Clone, Copy)]
pub struct RoleChange<'a> {
    pub target_user_id: i64,
    pub team_is_organization: bool,
    pub before: Option<RoleSide<'a>>,
    pub after: RoleSide<'a>,
}

/// Checks an actor's right to give a membership its (new) role:
/// - changing an existing membership's role needs `organization.changeMemberRole` (organization)
///   or `team.changeMemberRole` (sub-team);
/// - only an OWNER (of the team or its organization) grants OWNER or changes an OWNER;
/// - nobody raises their own role (a higher level, or any permission they did not hold);
/// - nobody grants a role holding a permission they do not hold themselves.
pub fn check_role_change(
    actor_user_id: i64,
    actor: &Effective,
    catalog: &PermissionCatalog,
    change: &RoleChange<'_>,
) -> DomainResult<()> {
    let role_changes = change
        .before
        .is_none_or(|b| b.role != change.after.role || b.role_id != change.after.role_id);
    if !role_changes {
        return Ok(());
    }
    if change.before.is_some() {
        let needed = if change.team_is_organization {
            "organization.changeMemberRole"
        } else {
            "team.changeMemberRole"
        };
        require(actor, needed, "change a member's role")?;
    }
    let touches_owner = change.after.role == BaseRole::Owner
        || change.before.is_some_and(|b| b.role == BaseRole::Owner);
    if touches_owner && !actor.is_owner() {
        return Err(DomainError::actor_lacks(
            BaseRole::Owner.as_str(),
            "only an OWNER may grant the OWNER role or change an OWNER",
        ));
    }
    if actor_user_id == change.target_user_id
        && let Some(before) = change.before
    {
        let raised_level = change.after.role > before.role;
        let gained = change
            .after
            .permissions
            .expand(catalog)
            .into_iter()
            .find(|p| !before.permissions.grants(p));
        if raised_level || gained.is_some() {
            let permission = gained.unwrap_or_else(|| change.after.role.as_str().to_string());
            return Err(DomainError::actor_lacks(
                &permission,
                "nobody may raise their own role",
            ));
        }
    }
    check_no_escalation(actor, catalog, change.after.permissions, "grant a role")
}

/// Role writes need `role.create`, `role.update` or `role.delete` in the role's team.
pub fn check_role_write(actor: &Effective, action: &str) -> DomainResult<()> {
    require(actor, &format!("role.{action}"), "write roles")
}

/// Nobody hands out (to a role, or through one) a permission they do not hold.
pub fn check_no_escalation(
    actor: &Effective,
    catalog: &PermissionCatalog,
    granted: &PermissionSet,
    what: &str,
) -> DomainResult<()> {
    match granted
        .expand(catalog)
        .into_iter()
        .find(|p| !actor.grants(p))
    {
        Some(missing) => Err(DomainError::actor_lacks(
            &missing,
            format!("the actor cannot {what} holding {missing:?}, which the actor lacks"),
        )),
        None => Ok(()),
    }
}

fn require(actor: &Effective, permission: &str, what: &str) -> DomainResult<()> {
    if actor.grants(permission) {
        Ok(())
    } else {
        Err(DomainError::actor_lacks(
            permission,
            format!("the actor needs {permission:?} to {what}"),
        ))
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::domain::access::{Grant, Policy};
    use crate::domain::errors::Reason;

    fn actor(policy: &Policy, role_id: &str, role: BaseRole) -> Effective {
        Effective {
            grants: vec![Grant {
                role_id: role_id.into(),
                role_key: role_id.into(),
                role,
                team_id: 1,
                from_organization: false,
                permissions: policy.role_permissions(role_id, None),
            }],
        }
    }

    fn side<'a>(policy: &'a Policy, role_id: &'a str, role: BaseRole) -> RoleSide<'a> {
        RoleSide {
            role,
            role_id,
            permissions: policy.system_permissions(role_id).unwrap(),
        }
    }

    fn denied_permission(result: DomainResult<()>) -> String {
        match result {
            Err(DomainError::PermissionDenied {
                reason: Reason::ActorLacksPermission,
                metadata,
                ..
            }) => metadata["permission"].clone(),
            other => panic!("expected ACTOR_LACKS_PERMISSION, got {other:?}"),
        }
    }

    #[test]
    fn admin_changes_member_roles_but_not_owners() {
        let p = Policy::default();
        let admin = actor(&p, "admin_role", BaseRole::Admin);
        let promote = RoleChange {
            target_user_id: 9,
            team_is_organization: true,
            before: Some(side(&p, "member_role", BaseRole::Member)),
            after: side(&p, "superuser_role", BaseRole::Admin),
        };
        assert!(check_role_change(1, &admin, &p.catalog, &promote).is_ok());
        let to_owner = RoleChange {
            after: side(&p, "owner_role", BaseRole::Owner),
            ..promote
        };
        assert_eq!(
            denied_permission(check_role_change(1, &admin, &p.catalog, &to_owner)),
            "OWNER"
        );
        let owner = actor(&p, "owner_role", BaseRole::Owner);
        assert!(check_role_change(1, &owner, &p.catalog, &to_owner).is_ok());
    }

    #[test]
    fn member_cannot_change_roles() {
        let p = Policy::default();
        let member = actor(&p, "member_role", BaseRole::Member);
        let change = RoleChange {
            target_user_id: 9,
            team_is_organization: false,
            before: Some(side(&p, "member_role", BaseRole::Member)),
            after: side(&p, "restricteduser_role", BaseRole::Member),
        };
        assert_eq!(
            denied_permission(check_role_change(1, &member, &p.catalog, &change)),
            "team.changeMemberRole"
        );
    }

    #[test]
    fn nobody_raises_their_own_role() {
        let p = Policy::default();
        let admin = actor(&p, "admin_role", BaseRole::Admin);
        let own = RoleChange {
            target_user_id: 1,
            team_is_organization: true,
            before: Some(side(&p, "superuser_role", BaseRole::Admin)),
            after: side(&p, "admin_role", BaseRole::Admin),
        };
        assert!(matches!(
            check_role_change(1, &admin, &p.catalog, &own),
            Err(DomainError::PermissionDenied { .. })
        ));
        // Lowering one's own role is fine.
        let lower = RoleChange {
            before: Some(side(&p, "admin_role", BaseRole::Admin)),
            after: side(&p, "member_role", BaseRole::Member),
            ..own
        };
        assert!(check_role_change(1, &admin, &p.catalog, &lower).is_ok());
    }

    #[test]
    fn no_escalation_through_a_custom_role() {
        let p = Policy::default();
        let superuser = actor(&p, "superuser_role", BaseRole::Admin);
        let custom = PermissionSet::new(["organization.update".to_string()]);
        let granted = RoleSide {
            role: BaseRole::Member,
            role_id: "role_x",
            permissions: &custom,
        };
        let change = RoleChange {
            target_user_id: 9,
            team_is_organization: true,
            before: None,
            after: granted,
        };
        assert_eq!(
            denied_permission(check_role_change(1, &superuser, &p.catalog, &change)),
            "organization.update"
        );
        let fine = PermissionSet::new(["booking.read".to_string()]);
        let ok = RoleChange {
            after: RoleSide {
                permissions: &fine,
                ..granted
            },
            ..change
        };
        assert!(check_role_change(1, &superuser, &p.catalog, &ok).is_ok());
    }

    #[test]
    fn role_writes_need_role_permissions() {
        let p = Policy::default();
        assert!(check_role_write(&actor(&p, "admin_role", BaseRole::Admin), "create").is_ok());
        assert_eq!(
            denied_permission(check_role_write(
                &actor(&p, "superuser_role", BaseRole::Admin),
                "update"
            )),
            "role.update"
        );
    }
}
