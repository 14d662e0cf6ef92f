//! The actor policy: what the end user a calling service acts for (`x-actor-user-id`) may write.
//!
//! One pure decision, [`authorize`], over the actor's accepted grants in the target team and the
//! facts of the write. The storage loads those facts inside the write's transaction and asks
//! after the target was found (NOT_FOUND comes first) and before any invariant or "nothing
//! changed" shortcut: an unchanged value is checked like a changed one.
//!
//! Denials are PERMISSION_DENIED `ACTOR_LACKS_PERMISSION`, naming either the missing catalog
//! `permission` or the `rule` ([`Rule`]) that refused the write.

use super::access::Effective;
use super::catalog::{PermissionCatalog, PermissionSet};
use super::errors::{DomainError, DomainResult};
use super::roles::BaseRole;

/// The system role that holds everything; granting it is granting OWNER.
const OWNER_ROLE_ID: &str = "owner_role";

/// The end user a write is done for.
#[derive(Debug, Clone, Copy)]
pub struct ActorFacts<'a> {
    pub user_id: i64,
    /// The actor's email; `None` when the id names no user (who then holds no permission).
    pub email: Option<&'a str>,
    /// The actor's accepted grants where [`Write::grants_in`] says: for a sub-team, its own
    /// memberships' and the organization's.
    pub effective: &'a Effective,
}

/// A role as the policy sees it: its id and the permissions it holds (a system role's from the
/// catalog, a custom role's as stored).
#[derive(Debug, Clone, Copy)]
pub struct RoleFacts<'a> {
    pub role_id: &'a str,
    pub permissions: &'a PermissionSet,
}

/// What a membership holds, or is given: a base level and a role.
#[derive(Debug, Clone, Copy)]
pub struct MemberRole<'a> {
    pub level: BaseRole,
    pub role: RoleFacts<'a>,
}

impl MemberRole<'_> {
    fn is_owner(&self) -> bool {
        self.level == BaseRole::Owner || self.role.role_id == OWNER_ROLE_ID
    }
}

/// The existing membership an UpdateMembership or DeleteMembership addresses.
#[derive(Debug, Clone, Copy)]
pub struct TargetMembership<'a> {
    pub user_id: i64,
    pub team_is_organization: bool,
    pub current: MemberRole<'a>,
}

/// Which fields of an UpdateMembership are present (present means checked, changed or not).
#[derive(Debug, Clone, Copy, Default)]
pub struct MembershipFields<'a> {
    pub accepted: Option<bool>,
    /// `role` and/or `role_id` present: the level and role the membership ends up with.
    pub role: Option<MemberRole<'a>>,
    /// `public_metadata` or `private_metadata` present.
    pub metadata: bool,
    pub expires_at: bool,
    pub disable_impersonation: bool,
    pub auto_record_calls: bool,
}

impl MembershipFields<'_> {
    fn is_empty(&self) -> bool {
        self.accepted.is_none()
            && self.role.is_none()
            && !self.metadata
            && !self.expires_at
            && !self.disable_impersonation
            && !self.auto_record_calls
    }
}

/// A membership that holds a role being deleted.
#[derive(Debug, Clone, Copy)]
pub struct RoleHolder {
    pub user_id: i64,
    pub level: BaseRole,
}

/// One entry of an import, judged as its own CreateMembership would be.
#[derive(Debug, Clone, Copy)]
pub struct NewMember<'a> {
    pub user_id: i64,
    /// The level and role the new membership gets.
    pub granted: MemberRole<'a>,
    /// The entry's `accepted`.
    pub accepted: bool,
    /// The organization auto-accepts the user's email domain.
    pub auto_accept_applies: bool,
}

/// Every write RPC, with exactly the facts its rule needs.
#[derive(Debug, Clone, Copy)]
pub enum Write<'a> {
    /// Needs nothing: the actor becomes its first accepted OWNER in the same transaction.
    CreateOrganization,
    UpdateOrganization {
        /// `max_allowed_memberships` is present.
        sets_max_allowed_memberships: bool,
    },
    DeleteOrganization,
    /// Grants are read in the organization the team is created in.
    CreateTeam,
    UpdateTeam,
    DeleteTeam,
    CreateUser,
    UpdateUser {
        user_id: i64,
    },
    DeleteUser {
        user_id: i64,
    },
    CreateMembership {
        user_id: i64,
        team_is_organization: bool,
        /// The level and role the new membership gets.
        granted: MemberRole<'a>,
        /// The request's `accepted`.
        accepted: bool,
        /// The organization auto-accepts the user's email domain.
        auto_accept_applies: bool,
    },
    UpdateMembership {
        target: TargetMembership<'a>,
        fields: MembershipFields<'a>,
    },
    DeleteMembership {
        target: TargetMembership<'a>,
    },
    CreateRole {
        permissions: &'a PermissionSet,
    },
    /// `permissions`: what the role holds after the update.
    UpdateRole {
        permissions: &'a PermissionSet,
    },
    /// `permissions`: what the role holds after the addition.
    AddRolePermissions {
        permissions: &'a PermissionSet,
    },
    /// `permissions`: what the role holds after the removal.
    RemoveRolePermissions {
        permissions: &'a PermissionSet,
    },
    DeleteRole {
        role: RoleFacts<'a>,
        reassign_to: RoleFacts<'a>,
        /// The level the reassignment sets; `None` keeps each holder's, which is what deleting
        /// a role does (it never changes a membership's level, so never who owns a team).
        reassign_level: Option<BaseRole>,
        holders: &'a [RoleHolder],
    },
    CreateAttribute,
    AddAttributeOption,
    DeleteAttribute,
    AssignAttribute,
    UnassignAttribute,
    CreateApiKey,
    RevokeApiKey,
    CreateInvitation {
        invited_email: &'a str,
        granted: MemberRole<'a>,
    },
    RevokeInvitation,
    AcceptInvitation {
        invited_email: &'a str,
    },
    /// Refused with an actor, like CreateUser.
    ImportUsers,
    /// Every entry as CreateMembership; an entry's denial names its index.
    ImportMemberships {
        team_is_organization: bool,
        entries: &'a [NewMember<'a>],
    },
}

/// Where the storage reads the actor's grants ([`ActorFacts::effective`]) for a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantsIn {
    /// The write needs none (the rule is about who the actor is, or refuses every actor).
    Nowhere,
    /// The organization itself (its memberships only).
    Organization,
    /// The team the write targets (a membership's or role's team): its own memberships and,
    /// for a sub-team, the organization's.
    TargetTeam,
}

/// A gRPC method of `membership.v1` that writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct WriteRpc {
    pub service: &'static str,
    pub method: &'static str,
}

impl WriteRpc {
    const fn new(service: &'static str, method: &'static str) -> Self {
        Self { service, method }
    }

    /// The gRPC path, e.g. `/membership.v1.MembershipService/UpdateMembership`.
    pub fn path(&self) -> String {
        format!("/membership.v1.{}/{}", self.service, self.method)
    }
}

/// Every write RPC the policy covers, one per [`Write`] variant.
pub const WRITE_RPCS: &[WriteRpc] = &[
    WriteRpc::new("DirectoryService", "CreateOrganization"),
    WriteRpc::new("DirectoryService", "UpdateOrganization"),
    WriteRpc::new("DirectoryService", "DeleteOrganization"),
    WriteRpc::new("DirectoryService", "CreateTeam"),
    WriteRpc::new("DirectoryService", "UpdateTeam"),
    WriteRpc::new("DirectoryService", "DeleteTeam"),
    WriteRpc::new("DirectoryService", "CreateUser"),
    WriteRpc::new("DirectoryService", "UpdateUser"),
    WriteRpc::new("DirectoryService", "DeleteUser"),
    WriteRpc::new("MembershipService", "CreateMembership"),
    WriteRpc::new("MembershipService", "UpdateMembership"),
    WriteRpc::new("MembershipService", "DeleteMembership"),
    WriteRpc::new("RoleService", "CreateRole"),
    WriteRpc::new("RoleService", "UpdateRole"),
    WriteRpc::new("RoleService", "AddRolePermissions"),
    WriteRpc::new("RoleService", "RemoveRolePermissions"),
    WriteRpc::new("RoleService", "DeleteRole"),
    WriteRpc::new("AttributeService", "CreateAttribute"),
    WriteRpc::new("AttributeService", "AddAttributeOption"),
    WriteRpc::new("AttributeService", "DeleteAttribute"),
    WriteRpc::new("AttributeService", "AssignAttribute"),
    WriteRpc::new("AttributeService", "UnassignAttribute"),
    WriteRpc::new("ApiKeyService", "CreateApiKey"),
    WriteRpc::new("ApiKeyService", "RevokeApiKey"),
    WriteRpc::new("InvitationService", "CreateInvitation"),
    WriteRpc::new("InvitationService", "RevokeInvitation"),
    WriteRpc::new("InvitationService", "AcceptInvitation"),
    WriteRpc::new("DirectoryService", "ImportUsers"),
    WriteRpc::new("MembershipService", "ImportMemberships"),
];

impl Write<'_> {
    /// The gRPC method this write is.
    pub fn method(&self) -> &'static str {
        match self {
            Write::CreateOrganization => "CreateOrganization",
            Write::UpdateOrganization { .. } => "UpdateOrganization",
            Write::DeleteOrganization => "DeleteOrganization",
            Write::CreateTeam => "CreateTeam",
            Write::UpdateTeam => "UpdateTeam",
            Write::DeleteTeam => "DeleteTeam",
            Write::CreateUser => "CreateUser",
            Write::UpdateUser { .. } => "UpdateUser",
            Write::DeleteUser { .. } => "DeleteUser",
            Write::CreateMembership { .. } => "CreateMembership",
            Write::UpdateMembership { .. } => "UpdateMembership",
            Write::DeleteMembership { .. } => "DeleteMembership",
            Write::CreateRole { .. } => "CreateRole",
            Write::UpdateRole { .. } => "UpdateRole",
            Write::AddRolePermissions { .. } => "AddRolePermissions",
            Write::RemoveRolePermissions { .. } => "RemoveRolePermissions",
            Write::DeleteRole { .. } => "DeleteRole",
            Write::CreateAttribute => "CreateAttribute",
            Write::AddAttributeOption => "AddAttributeOption",
            Write::DeleteAttribute => "DeleteAttribute",
            Write::AssignAttribute => "AssignAttribute",
            Write::UnassignAttribute => "UnassignAttribute",
            Write::CreateApiKey => "CreateApiKey",
            Write::RevokeApiKey => "RevokeApiKey",
            Write::CreateInvitation { .. } => "CreateInvitation",
            Write::RevokeInvitation => "RevokeInvitation",
            Write::AcceptInvitation { .. } => "AcceptInvitation",
            Write::ImportUsers => "ImportUsers",
            Write::ImportMemberships { .. } => "ImportMemberships",
        }
    }

    /// Where [`ActorFacts::effective`] is read for this write.
    pub fn grants_in(&self) -> GrantsIn {
        match self {
            Write::CreateOrganization
            | Write::CreateUser
            | Write::UpdateUser { .. }
            | Write::DeleteUser { .. }
            | Write::CreateApiKey
            | Write::RevokeApiKey
            | Write::AcceptInvitation { .. }
            | Write::ImportUsers => GrantsIn::Nowhere,
            Write::UpdateOrganization { .. }
            | Write::DeleteOrganization
            | Write::CreateTeam
            | Write::CreateAttribute
            | Write::AddAttributeOption
            | Write::DeleteAttribute
            | Write::AssignAttribute
            | Write::UnassignAttribute
            | Write::CreateInvitation { .. }
            | Write::RevokeInvitation => GrantsIn::Organization,
            Write::UpdateTeam
            | Write::DeleteTeam
            | Write::CreateMembership { .. }
            | Write::ImportMemberships { .. }
            | Write::UpdateMembership { .. }
            | Write::DeleteMembership { .. }
            | Write::CreateRole { .. }
            | Write::UpdateRole { .. }
            | Write::AddRolePermissions { .. }
            | Write::RemoveRolePermissions { .. }
            | Write::DeleteRole { .. } => GrantsIn::TargetTeam,
        }
    }
}

/// The rules that refuse a write whatever permission names (ErrorInfo metadata `rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Only an accepted OWNER (of the team or its organization) touches OWNER.
    OwnerOnly,
    /// Nobody raises their own level or role.
    NoSelfRaise,
    /// Nobody hands out a permission they do not hold.
    NoEscalation,
    /// Only the user themselves.
    SelfOnly,
    /// Nobody creates their own membership.
    NoSelfJoin,
    /// Services do this, not end users.
    NotWithActor,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::OwnerOnly => "OWNER_ONLY",
            Rule::NoSelfRaise => "NO_SELF_RAISE",
            Rule::NoEscalation => "NO_ESCALATION",
            Rule::SelfOnly => "SELF_ONLY",
            Rule::NoSelfJoin => "NO_SELF_JOIN",
            Rule::NotWithActor => "NOT_WITH_ACTOR",
        }
    }

    /// The denial naming this rule.
    pub fn refuse(self, message: impl Into<String>) -> DomainError {
        DomainError::actor_breaks(self.as_str(), message)
    }
}

/// Whether `actor` may do `write`. Pure: every fact comes in as an argument.
pub fn authorize(
    actor: &ActorFacts<'_>,
    catalog: &PermissionCatalog,
    write: &Write<'_>,
) -> DomainResult<()> {
    let check = Check { actor, catalog };
    match *write {
        Write::CreateOrganization => Ok(()),
        Write::UpdateOrganization {
            sets_max_allowed_memberships,
        } => {
            check.require("organization.update")?;
            if sets_max_allowed_memberships {
                check.require("organization.manageBilling")?;
            }
            Ok(())
        }
        Write::DeleteOrganization => {
            if actor.effective.is_owner() {
                Ok(())
            } else {
                Err(Rule::OwnerOnly.refuse("only an accepted OWNER of the organization deletes it"))
            }
        }
        Write::CreateTeam => check.require("team.create"),
        Write::UpdateTeam => check.require("team.update"),
        Write::DeleteTeam => check.require("team.delete"),
        Write::CreateUser | Write::CreateApiKey | Write::RevokeApiKey | Write::ImportUsers => {
            let method = write.method();
            Err(Rule::NotWithActor.refuse(format!(
                "{method} is done by calling services, not for an end user"
            )))
        }
        Write::UpdateUser { user_id } => check.self_only(user_id, "change a user"),
        Write::DeleteUser { user_id } => check.self_only(user_id, "delete a user"),
        Write::CreateMembership {
            user_id,
            team_is_organization,
            granted,
            accepted,
            auto_accept_applies,
        } => {
            let new = NewMember {
                user_id,
                granted,
                accepted,
                auto_accept_applies,
            };
            check.create_membership(&new, team_is_organization)?;
            check.grant(user_id, None, granted)
        }
        Write::ImportMemberships {
            team_is_organization,
            entries,
        } => {
            // The grant rules look at the role only (an entry for the actor is refused first),
            // so each distinct role is judged once.
            let mut judged: Vec<(BaseRole, &str)> = Vec::new();
            for (i, new) in entries.iter().enumerate() {
                let at_entry = |e: DomainError| e.in_entry("memberships", i);
                check
                    .create_membership(new, team_is_organization)
                    .map_err(at_entry)?;
                let role = (new.granted.level, new.granted.role.role_id);
                if !judged.contains(&role) {
                    check
                        .grant(new.user_id, None, new.granted)
                        .map_err(at_entry)?;
                    judged.push(role);
                }
            }
            Ok(())
        }
        Write::UpdateMembership { target, fields } => check.update_membership(&target, &fields),
        Write::DeleteMembership { target } => {
            // Leaving (or declining an invitation) is always the member's own choice.
            if target.user_id == actor.user_id {
                return Ok(());
            }
            check.require(MemberAction::Remove.permission(target.team_is_organization))?;
            check.owner_rule(&target.current)
        }
        Write::CreateRole { permissions } => check.role_write("role.create", permissions),
        Write::UpdateRole { permissions }
        | Write::AddRolePermissions { permissions }
        | Write::RemoveRolePermissions { permissions } => {
            check.role_write("role.update", permissions)
        }
        Write::DeleteRole {
            role,
            reassign_to,
            reassign_level,
            holders,
        } => {
            check.require("role.delete")?;
            for holder in holders {
                let before = MemberRole {
                    level: holder.level,
                    role,
                };
                let after = MemberRole {
                    level: reassign_level.unwrap_or(holder.level),
                    role: reassign_to,
                };
                check.owner_grant(Some(&before), &after)?;
                check.no_self_raise(holder.user_id, Some(&before), &after)?;
            }
            if holders.is_empty() {
                Ok(())
            } else {
                check.no_escalation(reassign_to.permissions, "reassign members to a role")
            }
        }
        Write::CreateAttribute => check.require("organization.attributes.create"),
        Write::AddAttributeOption => check.require("organization.attributes.update"),
        Write::DeleteAttribute => check.require("organization.attributes.delete"),
        Write::AssignAttribute | Write::UnassignAttribute => {
            check.require("organization.attributes.editUsers")
        }
        Write::CreateInvitation {
            invited_email,
            granted,
        } => {
            if actor
                .email
                .is_some_and(|own| same_email(own, invited_email))
            {
                return Err(Rule::NoSelfJoin.refuse("nobody invites themselves"));
            }
            check.require("organization.invite")?;
            check.owner_grant(None, &granted)?;
            check.no_escalation(granted.role.permissions, "invite with a role")
        }
        Write::RevokeInvitation => check.require("organization.invite"),
        Write::AcceptInvitation { invited_email } => {
            if actor
                .email
                .is_some_and(|own| same_email(own, invited_email))
            {
                Ok(())
            } else {
                Err(Rule::SelfOnly.refuse("only the invited user accepts an invitation"))
            }
        }
    }
}

/// The membership permissions, named by the kind of team they are checked in.
#[derive(Debug, Clone, Copy)]
enum MemberAction {
    Invite,
    Remove,
    ChangeRole,
}

impl MemberAction {
    fn permission(self, team_is_organization: bool) -> &'static str {
        match (self, team_is_organization) {
            (MemberAction::Invite, true) => "organization.invite",
            (MemberAction::Invite, false) => "team.invite",
            (MemberAction::Remove, true) => "organization.remove",
            (MemberAction::Remove, false) => "team.remove",
            (MemberAction::ChangeRole, true) => "organization.changeMemberRole",
            (MemberAction::ChangeRole, false) => "team.changeMemberRole",
        }
    }
}

/// Emails are stored lower-case; comparing without case keeps a stray capital from mattering.
fn same_email(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

struct Check<'c> {
    actor: &'c ActorFacts<'c>,
    catalog: &'c PermissionCatalog,
}

impl Check<'_> {
    fn require(&self, permission: &str) -> DomainResult<()> {
        if self.actor.effective.grants(permission) {
            Ok(())
        } else {
            Err(DomainError::actor_lacks(
                permission,
                format!("the actor needs {permission:?}"),
            ))
        }
    }

    fn self_only(&self, user_id: i64, what: &str) -> DomainResult<()> {
        if user_id == self.actor.user_id {
            Ok(())
        } else {
            Err(Rule::SelfOnly.refuse(format!("only the user themselves may {what}")))
        }
    }

    /// The owner rule: an OWNER membership is changed, deactivated or deleted by an OWNER only.
    fn owner_rule(&self, membership: &MemberRole<'_>) -> DomainResult<()> {
        if membership.is_owner() && !self.actor.effective.is_owner() {
            Err(Rule::OwnerOnly.refuse(
                "only an accepted OWNER changes, deactivates or deletes an OWNER membership",
            ))
        } else {
            Ok(())
        }
    }

    /// The owner rule for a grant: OWNER level or `owner_role` comes from an OWNER only, and an
    /// OWNER membership's role is changed by an OWNER only.
    fn owner_grant(
        &self,
        before: Option<&MemberRole<'_>>,
        after: &MemberRole<'_>,
    ) -> DomainResult<()> {
        if let Some(before) = before {
            self.owner_rule(before)?;
        }
        if after.is_owner() && !self.actor.effective.is_owner() {
            return Err(Rule::OwnerOnly.refuse("only an accepted OWNER grants OWNER"));
        }
        Ok(())
    }

    /// Lowering one's own level or role is fine; a higher level, or any permission the
    /// membership did not hold, is not (and nothing, from no membership, is a raise).
    fn no_self_raise(
        &self,
        target_user_id: i64,
        before: Option<&MemberRole<'_>>,
        after: &MemberRole<'_>,
    ) -> DomainResult<()> {
        if target_user_id != self.actor.user_id {
            return Ok(());
        }
        let raised = before.is_none_or(|before| {
            after.level > before.level
                || after
                    .role
                    .permissions
                    .expand(self.catalog)
                    .iter()
                    .any(|p| !before.role.permissions.grants(p))
        });
        if raised {
            Err(Rule::NoSelfRaise.refuse("nobody raises their own level or role"))
        } else {
            Ok(())
        }
    }

    /// Every permission `granted` holds (wildcards expanded) is one the actor holds. The denial
    /// also names the first such permission the actor lacks.
    fn no_escalation(&self, granted: &PermissionSet, what: &str) -> DomainResult<()> {
        let Some(missing) = granted
            .expand(self.catalog)
            .into_iter()
            .find(|p| !self.actor.effective.grants(p))
        else {
            return Ok(());
        };
        let mut denial = Rule::NoEscalation.refuse(format!(
            "the actor cannot {what} holding {missing:?}, which the actor lacks"
        ));
        if let DomainError::PermissionDenied { metadata, .. } = &mut denial {
            metadata.insert("permission".to_string(), missing);
        }
        Err(denial)
    }

    /// The grant rules, for every path that gives a membership a role.
    /// What a new membership needs besides the grant of its role.
    fn create_membership(
        &self,
        new: &NewMember<'_>,
        team_is_organization: bool,
    ) -> DomainResult<()> {
        if new.user_id == self.actor.user_id {
            return Err(Rule::NoSelfJoin.refuse("nobody creates their own membership"));
        }
        if new.accepted && !new.auto_accept_applies {
            return Err(Rule::SelfOnly.refuse(
                "a membership created for another user is pending until that user accepts it",
            ));
        }
        self.require(MemberAction::Invite.permission(team_is_organization))
    }

    fn grant(
        &self,
        target_user_id: i64,
        before: Option<&MemberRole<'_>>,
        after: MemberRole<'_>,
    ) -> DomainResult<()> {
        self.owner_grant(before, &after)?;
        self.no_self_raise(target_user_id, before, &after)?;
        self.no_escalation(after.role.permissions, "grant a role")
    }

    fn role_write(&self, permission: &str, resulting: &PermissionSet) -> DomainResult<()> {
        self.require(permission)?;
        self.no_escalation(resulting, "give a role permissions")
    }

    /// Each present field needs its own right; every one must pass.
    fn update_membership(
        &self,
        target: &TargetMembership<'_>,
        fields: &MembershipFields<'_>,
    ) -> DomainResult<()> {
        let is_member = target.user_id == self.actor.user_id;
        let change_role = MemberAction::ChangeRole.permission(target.team_is_organization);
        // The member's own settings: theirs, or a role manager's (who must respect OWNERs).
        let members_setting = |check: &Self| {
            if is_member {
                return Ok(());
            }
            check.require(change_role)?;
            check.owner_rule(&target.current)
        };
        // A write of no field still writes the membership: the weakest right applies.
        if fields.is_empty() {
            return members_setting(self);
        }
        match fields.accepted {
            Some(true) => self.self_only(target.user_id, "accept a membership")?,
            Some(false) => {
                self.require(MemberAction::Remove.permission(target.team_is_organization))?;
                self.owner_rule(&target.current)?;
            }
            None => {}
        }
        if let Some(after) = fields.role {
            self.require(change_role)?;
            self.grant(target.user_id, Some(&target.current), after)?;
        }
        if fields.metadata || fields.expires_at {
            self.require(change_role)?;
            self.owner_rule(&target.current)?;
        }
        if fields.disable_impersonation || fields.auto_record_calls {
            members_setting(self)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prost::Message;

    use super::*;
    use crate::domain::access::{Grant, Policy};
    use crate::domain::errors::Reason;
    use crate::domain::roles::system_role_by_id;

    const ACTOR: i64 = 1;
    const OTHER: i64 = 9;
    const ACTOR_EMAIL: &str = "actor@acme.test";

    /// An actor's grants: (role id, level, held through the organization).
    fn grants(p: &Policy, held: &[(&str, BaseRole, bool)]) -> Effective {
        Effective {
            grants: held
                .iter()
                .map(|&(role_id, role, from_organization)| Grant {
                    role_id: role_id.into(),
                    role_key: role_id.into(),
                    role,
                    team_id: if from_organization { 1 } else { 2 },
                    from_organization,
                    permissions: p.role_permissions(role_id, None),
                })
                .collect(),
        }
    }

    /// The grants of a single role held in the target team itself.
    fn holding(p: &Policy, role_id: &str) -> Effective {
        let level = system_role_by_id(role_id).unwrap().base;
        grants(p, &[(role_id, level, false)])
    }

    fn actor(effective: &Effective) -> ActorFacts<'_> {
        ActorFacts {
            user_id: ACTOR,
            email: Some(ACTOR_EMAIL),
            effective,
        }
    }

    fn system<'a>(p: &'a Policy, role_id: &'a str) -> MemberRole<'a> {
        MemberRole {
            level: system_role_by_id(role_id).unwrap().base,
            role: RoleFacts {
                role_id,
                permissions: p.system_permissions(role_id).unwrap(),
            },
        }
    }

    fn custom<'a>(level: BaseRole, permissions: &'a PermissionSet) -> MemberRole<'a> {
        MemberRole {
            level,
            role: RoleFacts {
                role_id: "role_custom",
                permissions,
            },
        }
    }

    fn set(permissions: &[&str]) -> PermissionSet {
        PermissionSet::new(permissions.iter().map(|p| p.to_string()))
    }

    fn target<'a>(
        p: &'a Policy,
        user_id: i64,
        org: bool,
        role_id: &'a str,
    ) -> TargetMembership<'a> {
        TargetMembership {
            user_id,
            team_is_organization: org,
            current: system(p, role_id),
        }
    }

    fn run(p: &Policy, effective: &Effective, write: Write<'_>) -> DomainResult<()> {
        authorize(&actor(effective), &p.catalog, &write)
    }

    fn metadata(result: DomainResult<()>) -> std::collections::BTreeMap<String, String> {
        match result {
            Err(DomainError::PermissionDenied {
                reason: Reason::ActorLacksPermission,
                metadata,
                ..
            }) => metadata,
            other => panic!("expected ACTOR_LACKS_PERMISSION, got {other:?}"),
        }
    }

    /// The denial names a missing catalog permission (and no rule).
    #[track_caller]
    fn assert_lacks(result: DomainResult<()>, permission: &str) {
        let metadata = metadata(result);
        assert_eq!(
            metadata.get("permission").map(String::as_str),
            Some(permission)
        );
        assert_eq!(metadata.get("rule"), None);
    }

    /// The denial names a rule.
    #[track_caller]
    fn assert_rule(result: DomainResult<()>, rule: Rule) {
        assert_eq!(
            metadata(result).get("rule").map(String::as_str),
            Some(rule.as_str())
        );
    }

    #[track_caller]
    fn assert_ok(result: DomainResult<()>) {
        if let Err(e) = result {
            panic!("expected the write to be allowed, got {e:?}");
        }
    }

    fn update<'a>(target: TargetMembership<'a>, fields: MembershipFields<'a>) -> Write<'a> {
        Write::UpdateMembership { target, fields }
    }

    fn create_membership<'a>(user_id: i64, org: bool, granted: MemberRole<'a>) -> Write<'a> {
        Write::CreateMembership {
            user_id,
            team_is_organization: org,
            granted,
            accepted: false,
            auto_accept_applies: false,
        }
    }

    const ONE_MEMBER: &[RoleHolder] = &[RoleHolder {
        user_id: OTHER,
        level: BaseRole::Member,
    }];

    /// One write of every kind, aimed at `OTHER` (or at nobody in particular).
    fn every_write(p: &Policy) -> Vec<Write<'_>> {
        let member = system(p, "member_role");
        let member_permissions = member.role.permissions;
        vec![
            Write::CreateOrganization,
            Write::UpdateOrganization {
                sets_max_allowed_memberships: false,
            },
            Write::DeleteOrganization,
            Write::CreateTeam,
            Write::UpdateTeam,
            Write::DeleteTeam,
            Write::CreateUser,
            Write::UpdateUser { user_id: OTHER },
            Write::DeleteUser { user_id: OTHER },
            create_membership(OTHER, true, member),
            update(
                target(p, OTHER, true, "member_role"),
                MembershipFields {
                    disable_impersonation: true,
                    ..Default::default()
                },
            ),
            Write::DeleteMembership {
                target: target(p, OTHER, true, "member_role"),
            },
            Write::CreateRole {
                permissions: member_permissions,
            },
            Write::UpdateRole {
                permissions: member_permissions,
            },
            Write::AddRolePermissions {
                permissions: member_permissions,
            },
            Write::RemoveRolePermissions {
                permissions: member_permissions,
            },
            Write::DeleteRole {
                role: member.role,
                reassign_to: member.role,
                reassign_level: Some(BaseRole::Member),
                holders: ONE_MEMBER,
            },
            Write::CreateAttribute,
            Write::AddAttributeOption,
            Write::DeleteAttribute,
            Write::AssignAttribute,
            Write::UnassignAttribute,
            Write::CreateApiKey,
            Write::RevokeApiKey,
            Write::CreateInvitation {
                invited_email: "newcomer@acme.test",
                granted: member,
            },
            Write::RevokeInvitation,
            Write::AcceptInvitation {
                invited_email: "newcomer@acme.test",
            },
            Write::ImportUsers,
            Write::ImportMemberships {
                team_is_organization: true,
                entries: Vec::leak(vec![new_member(OTHER, member)]),
            },
        ]
    }

    fn new_member(user_id: i64, granted: MemberRole<'_>) -> NewMember<'_> {
        NewMember {
            user_id,
            granted,
            accepted: false,
            auto_accept_applies: false,
        }
    }

    #[test]
    fn an_import_judges_every_entry_and_names_the_one_refused() {
        let p = Policy::default();
        let admin = holding(&p, "admin_role");
        let member = system(&p, "member_role");
        let owner = system(&p, "owner_role");
        let import = |entries| Write::ImportMemberships {
            team_is_organization: true,
            entries,
        };
        let fine = [new_member(OTHER, member), new_member(OTHER + 1, member)];
        assert_ok(run(&p, &admin, import(&fine)));
        // An admin grants no OWNER: the second entry is refused and named.
        let owner_grant = [new_member(OTHER, member), new_member(OTHER + 1, owner)];
        let denied = run(&p, &admin, import(&owner_grant));
        assert_rule(denied.clone(), Rule::OwnerOnly);
        assert!(
            denied
                .unwrap_err()
                .to_string()
                .starts_with("memberships[1]: "),
            "the entry is named"
        );
        // The same role a second time is not judged again, but the per-user rules are.
        let self_join = [new_member(OTHER, member), new_member(ACTOR, member)];
        assert_rule(run(&p, &admin, import(&self_join)), Rule::NoSelfJoin);
        let mut accepted = new_member(OTHER + 1, member);
        accepted.accepted = true;
        let pending_only = [new_member(OTHER, member), accepted];
        assert_rule(run(&p, &admin, import(&pending_only)), Rule::SelfOnly);
        assert_rule(run(&p, &admin, Write::ImportUsers), Rule::NotWithActor);
    }

    // --- Coverage of the RPCs -------------------------------------------------------------

    /// Services and methods the policy covers that `proto/` does not define yet.
    const NOT_IN_PROTO_YET: &[WriteRpc] = &[];

    const WRITE_PREFIXES: &[&str] = &[
        "Create", "Update", "Delete", "Add", "Remove", "Assign", "Unassign", "Revoke", "Accept",
        "Import",
    ];

    #[test]
    fn every_write_rpc_of_the_proto_has_a_policy() {
        let descriptors = prost_types::FileDescriptorSet::decode(crate::pb::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set decodes");
        let in_proto: BTreeSet<(String, String)> = descriptors
            .file
            .iter()
            .filter(|file| file.package() == "membership.v1")
            .flat_map(|file| &file.service)
            .flat_map(|service| {
                service
                    .method
                    .iter()
                    .map(|m| (service.name().to_string(), m.name().to_string()))
            })
            .collect();
        assert!(in_proto.len() > 20, "{in_proto:?}");
        let covered: BTreeSet<(String, String)> = WRITE_RPCS
            .iter()
            .map(|rpc| (rpc.service.to_string(), rpc.method.to_string()))
            .collect();
        let writes: Vec<_> = in_proto
            .iter()
            .filter(|(_, method)| WRITE_PREFIXES.iter().any(|p| method.starts_with(p)))
            .collect();
        assert!(writes.len() >= 22, "{writes:?}");
        for write in writes {
            assert!(covered.contains(write), "{write:?} has no policy entry");
        }
        for rpc in WRITE_RPCS {
            let key = (rpc.service.to_string(), rpc.method.to_string());
            assert!(
                in_proto.contains(&key) || NOT_IN_PROTO_YET.contains(rpc),
                "{} is in neither the proto nor the allowance",
                rpc.path()
            );
        }
        for rpc in NOT_IN_PROTO_YET {
            let key = (rpc.service.to_string(), rpc.method.to_string());
            assert!(
                !in_proto.contains(&key),
                "{} is in the proto now: drop it from NOT_IN_PROTO_YET",
                rpc.path()
            );
            assert!(WRITE_RPCS.contains(rpc), "{}", rpc.path());
        }
    }

    #[test]
    fn one_variant_per_write_rpc() {
        let p = Policy::default();
        let methods: Vec<&str> = every_write(&p).iter().map(Write::method).collect();
        let listed: Vec<&str> = WRITE_RPCS.iter().map(|rpc| rpc.method).collect();
        assert_eq!(methods, listed);
        let unique: BTreeSet<&str> = listed.iter().copied().collect();
        assert_eq!(unique.len(), listed.len(), "method names are unique");
        assert_eq!(
            WriteRpc::new("MembershipService", "UpdateMembership").path(),
            "/membership.v1.MembershipService/UpdateMembership"
        );
    }

    #[test]
    fn grants_are_read_where_the_rule_looks() {
        let p = Policy::default();
        let scope = |method: &str| {
            every_write(&p)
                .into_iter()
                .find(|w| w.method() == method)
                .unwrap()
                .grants_in()
        };
        assert_eq!(scope("CreateOrganization"), GrantsIn::Nowhere);
        assert_eq!(scope("UpdateUser"), GrantsIn::Nowhere);
        assert_eq!(scope("AcceptInvitation"), GrantsIn::Nowhere);
        assert_eq!(scope("DeleteOrganization"), GrantsIn::Organization);
        assert_eq!(scope("CreateTeam"), GrantsIn::Organization);
        assert_eq!(scope("AssignAttribute"), GrantsIn::Organization);
        assert_eq!(scope("CreateInvitation"), GrantsIn::Organization);
        assert_eq!(scope("UpdateTeam"), GrantsIn::TargetTeam);
        assert_eq!(scope("UpdateMembership"), GrantsIn::TargetTeam);
        assert_eq!(scope("DeleteRole"), GrantsIn::TargetTeam);
    }

    #[test]
    fn rule_names_and_denials() {
        let names: Vec<&str> = [
            Rule::OwnerOnly,
            Rule::NoSelfRaise,
            Rule::NoEscalation,
            Rule::SelfOnly,
            Rule::NoSelfJoin,
            Rule::NotWithActor,
        ]
        .into_iter()
        .map(Rule::as_str)
        .collect();
        assert_eq!(
            names,
            [
                "OWNER_ONLY",
                "NO_SELF_RAISE",
                "NO_ESCALATION",
                "SELF_ONLY",
                "NO_SELF_JOIN",
                "NOT_WITH_ACTOR"
            ]
        );
        match Rule::SelfOnly.refuse("why") {
            DomainError::PermissionDenied {
                reason,
                message,
                metadata,
            } => {
                assert_eq!(reason, Reason::ActorLacksPermission);
                assert_eq!(message, "why");
                assert_eq!(metadata.len(), 1);
                assert_eq!(metadata["rule"], "SELF_ONLY");
            }
            other => panic!("{other:?}"),
        }
    }

    // --- Directory ------------------------------------------------------------------------

    #[test]
    fn anybody_creates_an_organization() {
        let p = Policy::default();
        assert_ok(run(&p, &Effective::default(), Write::CreateOrganization));
        let nobody = ActorFacts {
            user_id: 404,
            email: None,
            effective: &Effective::default(),
        };
        assert_ok(authorize(&nobody, &p.catalog, &Write::CreateOrganization));
    }

    #[test]
    fn update_organization_and_its_billing_limit() {
        let p = Policy::default();
        let settings = Write::UpdateOrganization {
            sets_max_allowed_memberships: false,
        };
        let limit = Write::UpdateOrganization {
            sets_max_allowed_memberships: true,
        };
        assert_ok(run(&p, &holding(&p, "admin_role"), settings));
        assert_lacks(
            run(&p, &holding(&p, "admin_role"), limit),
            "organization.manageBilling",
        );
        assert_ok(run(&p, &holding(&p, "owner_role"), limit));
        assert_lacks(
            run(&p, &holding(&p, "member_role"), settings),
            "organization.update",
        );
        // Update comes first when both are missing.
        assert_lacks(
            run(&p, &holding(&p, "superuser_role"), limit),
            "organization.update",
        );
        // Billing alone is not enough.
        let billing = Effective {
            grants: vec![Grant {
                permissions: std::sync::Arc::new(set(&["organization.manageBilling"])),
                ..holding(&p, "member_role").grants[0].clone()
            }],
        };
        assert_lacks(run(&p, &billing, limit), "organization.update");
    }

    #[test]
    fn only_an_owner_deletes_the_organization() {
        let p = Policy::default();
        assert_ok(run(
            &p,
            &holding(&p, "owner_role"),
            Write::DeleteOrganization,
        ));
        for role_id in ["admin_role", "member_role", "superuser_role"] {
            assert_rule(
                run(&p, &holding(&p, role_id), Write::DeleteOrganization),
                Rule::OwnerOnly,
            );
        }
        // A custom role holding everything is still no OWNER.
        let everything = set(&["*.*"]);
        let custom_admin = Effective {
            grants: vec![Grant {
                permissions: std::sync::Arc::new(everything),
                ..holding(&p, "admin_role").grants[0].clone()
            }],
        };
        assert_rule(
            run(&p, &custom_admin, Write::DeleteOrganization),
            Rule::OwnerOnly,
        );
    }

    #[test]
    fn team_writes_need_team_permissions() {
        let p = Policy::default();
        let superuser = holding(&p, "superuser_role");
        assert_ok(run(&p, &superuser, Write::CreateTeam));
        assert_ok(run(&p, &superuser, Write::UpdateTeam));
        assert_lacks(run(&p, &superuser, Write::DeleteTeam), "team.delete");
        assert_ok(run(&p, &holding(&p, "admin_role"), Write::DeleteTeam));
        let member = holding(&p, "member_role");
        assert_lacks(run(&p, &member, Write::CreateTeam), "team.create");
        assert_lacks(run(&p, &member, Write::UpdateTeam), "team.update");
        assert_lacks(run(&p, &member, Write::DeleteTeam), "team.delete");
        // A sub-team's check includes the organization's roles.
        let org_admin = grants(
            &p,
            &[
                ("member_role", BaseRole::Member, false),
                ("admin_role", BaseRole::Admin, true),
            ],
        );
        assert_ok(run(&p, &org_admin, Write::DeleteTeam));
    }

    #[test]
    fn services_alone_create_users_and_keys() {
        let p = Policy::default();
        let owner = holding(&p, "owner_role");
        for write in [Write::CreateUser, Write::CreateApiKey, Write::RevokeApiKey] {
            assert_rule(run(&p, &owner, write), Rule::NotWithActor);
        }
    }

    #[test]
    fn users_change_and_delete_only_themselves() {
        let p = Policy::default();
        let owner = holding(&p, "owner_role");
        let nothing = Effective::default();
        assert_ok(run(&p, &nothing, Write::UpdateUser { user_id: ACTOR }));
        assert_ok(run(&p, &nothing, Write::DeleteUser { user_id: ACTOR }));
        assert_rule(
            run(&p, &owner, Write::UpdateUser { user_id: OTHER }),
            Rule::SelfOnly,
        );
        assert_rule(
            run(&p, &owner, Write::DeleteUser { user_id: OTHER }),
            Rule::SelfOnly,
        );
    }

    // --- CreateMembership ------------------------------------------------------------------

    #[test]
    fn create_membership_needs_invite_and_starts_pending() {
        let p = Policy::default();
        let admin = holding(&p, "admin_role");
        let member = system(&p, "member_role");
        assert_ok(run(&p, &admin, create_membership(OTHER, true, member)));
        assert_ok(run(&p, &admin, create_membership(OTHER, false, member)));
        let accepted = Write::CreateMembership {
            user_id: OTHER,
            team_is_organization: true,
            granted: member,
            accepted: true,
            auto_accept_applies: false,
        };
        assert_rule(run(&p, &admin, accepted), Rule::SelfOnly);
        assert_rule(
            run(&p, &holding(&p, "owner_role"), accepted),
            Rule::SelfOnly,
        );
        // The organization's auto-accept domain accepts it anyway.
        let auto = Write::CreateMembership {
            user_id: OTHER,
            team_is_organization: true,
            granted: member,
            accepted: true,
            auto_accept_applies: true,
        };
        assert_ok(run(&p, &admin, auto));

        let plain = holding(&p, "member_role");
        assert_lacks(
            run(&p, &plain, create_membership(OTHER, true, member)),
            "organization.invite",
        );
        assert_lacks(
            run(&p, &plain, create_membership(OTHER, false, member)),
            "team.invite",
        );
        // The superuser invites into sub-teams, not into the organization; and only with a role
        // within its own permissions (member_role holds `organization.read`, which it lacks).
        let superuser = holding(&p, "superuser_role");
        let restricted = system(&p, "restricteduser_role");
        assert_ok(run(
            &p,
            &superuser,
            create_membership(OTHER, false, restricted),
        ));
        assert_lacks(
            run(&p, &superuser, create_membership(OTHER, true, restricted)),
            "organization.invite",
        );
        assert_rule(
            run(&p, &superuser, create_membership(OTHER, false, member)),
            Rule::NoEscalation,
        );
    }

    #[test]
    fn nobody_creates_their_own_membership() {
        let p = Policy::default();
        // An org MEMBER cannot make themselves a sub-team ADMIN...
        let org_member = grants(&p, &[("member_role", BaseRole::Member, true)]);
        let as_admin = create_membership(ACTOR, false, system(&p, "admin_role"));
        assert_rule(run(&p, &org_member, as_admin), Rule::NoSelfJoin);
        // ... nor can an org ADMIN (who holds team.invite) or an OWNER, even as a MEMBER.
        let org_admin = grants(&p, &[("admin_role", BaseRole::Admin, true)]);
        assert_rule(run(&p, &org_admin, as_admin), Rule::NoSelfJoin);
        let as_member = create_membership(ACTOR, false, system(&p, "member_role"));
        let owner = grants(&p, &[("owner_role", BaseRole::Owner, true)]);
        assert_rule(run(&p, &owner, as_member), Rule::NoSelfJoin);
    }

    #[test]
    fn create_membership_follows_the_grant_rules() {
        let p = Policy::default();
        let admin = holding(&p, "admin_role");
        let owner = holding(&p, "owner_role");
        let owner_role = system(&p, "owner_role");
        assert_rule(
            run(&p, &admin, create_membership(OTHER, true, owner_role)),
            Rule::OwnerOnly,
        );
        assert_ok(run(&p, &owner, create_membership(OTHER, true, owner_role)));
        // OWNER level through a custom role is OWNER too.
        let reader = set(&["booking.read"]);
        let owner_level = custom(BaseRole::Owner, &reader);
        assert_rule(
            run(&p, &admin, create_membership(OTHER, true, owner_level)),
            Rule::OwnerOnly,
        );
        // No permission handed out that the actor lacks.
        let superuser = holding(&p, "superuser_role");
        let updater = set(&["organization.update"]);
        let escalation = run(
            &p,
            &superuser,
            create_membership(OTHER, false, custom(BaseRole::Member, &updater)),
        );
        let metadata = metadata(escalation);
        assert_eq!(metadata["rule"], "NO_ESCALATION");
        assert_eq!(metadata["permission"], "organization.update");
        assert_ok(run(
            &p,
            &superuser,
            create_membership(OTHER, false, custom(BaseRole::Member, &reader)),
        ));
        // ADMIN (a level and permissions the superuser lacks: role.*) is an escalation too.
        assert_rule(
            run(
                &p,
                &superuser,
                create_membership(OTHER, false, system(&p, "admin_role")),
            ),
            Rule::NoEscalation,
        );
    }

    // --- UpdateMembership -------------------------------------------------------------------

    fn accepting(accepted: bool) -> MembershipFields<'static> {
        MembershipFields {
            accepted: Some(accepted),
            ..Default::default()
        }
    }

    fn setting_role(role: MemberRole<'_>) -> MembershipFields<'_> {
        MembershipFields {
            role: Some(role),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_member_accepts() {
        let p = Policy::default();
        // A pending member holds nothing yet, and needs nothing.
        let pending = Effective::default();
        let own = target(&p, ACTOR, true, "member_role");
        assert_ok(run(&p, &pending, update(own, accepting(true))));
        // An invitation as OWNER is accepted by its member, who is no OWNER yet.
        let own_owner = target(&p, ACTOR, true, "owner_role");
        assert_ok(run(&p, &pending, update(own_owner, accepting(true))));
        // Nobody accepts for somebody else, whatever they hold; unchanged values included.
        let other = target(&p, OTHER, true, "member_role");
        assert_rule(
            run(
                &p,
                &holding(&p, "owner_role"),
                update(other, accepting(true)),
            ),
            Rule::SelfOnly,
        );
    }

    #[test]
    fn deactivating_needs_remove_and_respects_owners() {
        let p = Policy::default();
        let admin = holding(&p, "admin_role");
        let member = holding(&p, "member_role");
        let plain = target(&p, OTHER, true, "member_role");
        let an_admin = target(&p, OTHER, true, "admin_role");
        let an_owner = target(&p, OTHER, true, "owner_role");
        assert_ok(run(&p, &admin, update(plain, accepting(false))));
        assert_ok(run(&p, &admin, update(an_admin, accepting(false))));
        assert_rule(
            run(&p, &admin, update(an_owner, accepting(false))),
            Rule::OwnerOnly,
        );
        assert_ok(run(
            &p,
            &holding(&p, "owner_role"),
            update(an_owner, accepting(false)),
        ));
        // A member deactivates neither an OWNER nor an ADMIN (nor anybody).
        for t in [an_owner, an_admin, plain] {
            assert_lacks(
                run(&p, &member, update(t, accepting(false))),
                "organization.remove",
            );
        }
        let sub_admin = target(&p, OTHER, false, "admin_role");
        assert_lacks(
            run(&p, &member, update(sub_admin, accepting(false))),
            "team.remove",
        );
        // Not even oneself: leaving is DeleteMembership.
        let own = target(&p, ACTOR, true, "member_role");
        assert_lacks(
            run(&p, &member, update(own, accepting(false))),
            "organization.remove",
        );
    }

    #[test]
    fn changing_a_role_needs_change_member_role() {
        let p = Policy::default();
        let admin = holding(&p, "admin_role");
        let plain = target(&p, OTHER, true, "member_role");
        let superuser_role = system(&p, "superuser_role");
        assert_ok(run(&p, &admin, update(plain, setting_role(superuser_role))));
        for role_id in ["member_role", "superuser_role", "restricteduser_role"] {
            assert_lacks(
                run(
                    &p,
                    &holding(&p, role_id),
                    update(plain, setting_role(superuser_role)),
                ),
                "organization.changeMemberRole",
            );
        }
        let sub = target(&p, OTHER, false, "member_role");
        assert_lacks(
            run(
                &p,
                &holding(&p, "member_role"),
                update(sub, setting_role(superuser_role)),
            ),
            "team.changeMemberRole",
        );
        // Unchanged values are checked like changed ones.
        let same = setting_role(system(&p, "member_role"));
        assert_lacks(
            run(&p, &holding(&p, "member_role"), update(plain, same)),
            "organization.changeMemberRole",
        );
        let an_owner = target(&p, OTHER, true, "owner_role");
        assert_rule(
            run(
                &p,
                &admin,
                update(an_owner, setting_role(system(&p, "owner_role"))),
            ),
            Rule::OwnerOnly,
        );
    }

    #[test]
    fn only_owners_grant_or_change_owner() {
        let p = Policy::default();
        let admin = holding(&p, "admin_role");
        let owner = holding(&p, "owner_role");
        let plain = target(&p, OTHER, true, "member_role");
        let an_owner = target(&p, OTHER, true, "owner_role");
        let to_owner = setting_role(system(&p, "owner_role"));
        let to_admin = setting_role(system(&p, "admin_role"));
        assert_rule(run(&p, &admin, update(plain, to_owner)), Rule::OwnerOnly);
        assert_rule(run(&p, &admin, update(an_owner, to_admin)), Rule::OwnerOnly);
        assert_ok(run(&p, &owner, update(plain, to_owner)));
        assert_ok(run(&p, &owner, update(an_owner, to_admin)));
        // A sub-team: an organization OWNER counts, a sub-team ADMIN does not.
        let sub = target(&p, OTHER, false, "member_role");
        let org_owner = grants(&p, &[("owner_role", BaseRole::Owner, true)]);
        assert_ok(run(&p, &org_owner, update(sub, to_owner)));
        let sub_admin = grants(
            &p,
            &[
                ("admin_role", BaseRole::Admin, false),
                ("member_role", BaseRole::Member, true),
            ],
        );
        assert_ok(run(&p, &sub_admin, update(sub, to_admin)));
        assert_rule(run(&p, &sub_admin, update(sub, to_owner)), Rule::OwnerOnly);
        // A sub-team OWNER is an OWNER there.
        let sub_owner = grants(
            &p,
            &[
                ("owner_role", BaseRole::Owner, false),
                ("member_role", BaseRole::Member, true),
            ],
        );
        assert_ok(run(&p, &sub_owner, update(sub, to_owner)));
    }

    #[test]
    fn nobody_raises_their_own_role() {
        let p = Policy::default();
        let superuser = holding(&p, "superuser_role");
        let admin = holding(&p, "admin_role");
        // The superuser lacks changeMemberRole: that answers first.
        let own_superuser = target(&p, ACTOR, true, "superuser_role");
        let to_admin = setting_role(system(&p, "admin_role"));
        assert_lacks(
            run(&p, &superuser, update(own_superuser, to_admin)),
            "organization.changeMemberRole",
        );
        // An org ADMIN (who changes sub-team roles and holds every admin permission) still
        // cannot raise their own sub-team membership, by level or by permissions.
        let org_admin = grants(
            &p,
            &[
                ("member_role", BaseRole::Member, false),
                ("admin_role", BaseRole::Admin, true),
            ],
        );
        let own_sub = target(&p, ACTOR, false, "member_role");
        assert_rule(
            run(&p, &org_admin, update(own_sub, to_admin)),
            Rule::NoSelfRaise,
        );
        let to_superuser = setting_role(system(&p, "superuser_role"));
        assert_rule(
            run(&p, &org_admin, update(own_sub, to_superuser)),
            Rule::NoSelfRaise,
        );
        let booking = set(&["booking.readTeamBookings"]);
        assert_rule(
            run(
                &p,
                &org_admin,
                update(own_sub, setting_role(custom(BaseRole::Member, &booking))),
            ),
            Rule::NoSelfRaise,
        );
        // ... while raising somebody else's is fine.
        let other_sub = target(&p, OTHER, false, "member_role");
        assert_ok(run(&p, &org_admin, update(other_sub, to_admin)));
        // The OWNER rule answers first for OWNER.
        let own_admin = target(&p, ACTOR, true, "admin_role");
        assert_rule(
            run(
                &p,
                &admin,
                update(own_admin, setting_role(system(&p, "owner_role"))),
            ),
            Rule::OwnerOnly,
        );
        // Lowering one's own role is fine, and so is keeping it.
        assert_ok(run(&p, &admin, update(own_admin, to_superuser)));
        assert_ok(run(&p, &admin, update(own_admin, to_admin)));
        let own_owner = target(&p, ACTOR, true, "owner_role");
        assert_ok(run(
            &p,
            &holding(&p, "owner_role"),
            update(own_owner, to_admin),
        ));
    }

    #[test]
    fn no_escalation_through_a_role_change() {
        let p = Policy::default();
        let admin = holding(&p, "admin_role");
        let plain = target(&p, OTHER, true, "member_role");
        let billing = set(&["organization.manageBilling"]);
        let everything = set(&["*.*"]);
        let metadata_of = |granted: &PermissionSet| {
            metadata(run(
                &p,
                &admin,
                update(plain, setting_role(custom(BaseRole::Member, granted))),
            ))
        };
        let denial = metadata_of(&billing);
        assert_eq!(denial["rule"], "NO_ESCALATION");
        assert_eq!(denial["permission"], "organization.manageBilling");
        let denial = metadata_of(&everything);
        assert_eq!(denial["rule"], "NO_ESCALATION");
        assert!(denial["permission"].ends_with(".manageBilling"));
        assert_ok(run(
            &p,
            &holding(&p, "owner_role"),
            update(plain, setting_role(custom(BaseRole::Member, &billing))),
        ));
    }

    #[test]
    fn metadata_and_expiry_need_change_member_role_and_respect_owners() {
        let p = Policy::default();
        let admin = holding(&p, "admin_role");
        let member = holding(&p, "member_role");
        let plain = target(&p, OTHER, true, "member_role");
        let an_owner = target(&p, OTHER, true, "owner_role");
        let metadata_fields = MembershipFields {
            metadata: true,
            ..Default::default()
        };
        let expiry = MembershipFields {
            expires_at: true,
            ..Default::default()
        };
        for fields in [metadata_fields, expiry] {
            assert_ok(run(&p, &admin, update(plain, fields)));
            assert_rule(run(&p, &admin, update(an_owner, fields)), Rule::OwnerOnly);
            assert_ok(run(
                &p,
                &holding(&p, "owner_role"),
                update(an_owner, fields),
            ));
            assert_lacks(
                run(&p, &member, update(plain, fields)),
                "organization.changeMemberRole",
            );
            // Not even on one's own membership.
            let own = target(&p, ACTOR, true, "member_role");
            assert_lacks(
                run(&p, &member, update(own, fields)),
                "organization.changeMemberRole",
            );
        }
    }

    #[test]
    fn member_settings_are_the_members_or_a_role_managers() {
        let p = Policy::default();
        let member = holding(&p, "member_role");
        let admin = holding(&p, "admin_role");
        let impersonation = MembershipFields {
            disable_impersonation: true,
            ..Default::default()
        };
        let recording = MembershipFields {
            auto_record_calls: true,
            ..Default::default()
        };
        for fields in [impersonation, recording] {
            let own = target(&p, ACTOR, true, "member_role");
            assert_ok(run(&p, &member, update(own, fields)));
            assert_ok(run(&p, &Effective::default(), update(own, fields)));
            let other = target(&p, OTHER, true, "member_role");
            assert_ok(run(&p, &admin, update(other, fields)));
            // Neither: the permission is named.
            assert_lacks(
                run(&p, &member, update(other, fields)),
                "organization.changeMemberRole",
            );
            let sub_other = target(&p, OTHER, false, "member_role");
            assert_lacks(
                run(&p, &member, update(sub_other, fields)),
                "team.changeMemberRole",
            );
            // A role manager still respects OWNER memberships.
            let an_owner = target(&p, OTHER, true, "owner_role");
            assert_rule(run(&p, &admin, update(an_owner, fields)), Rule::OwnerOnly);
        }
    }

    #[test]
    fn every_field_of_an_update_must_pass() {
        let p = Policy::default();
        let pending = Effective::default();
        // Accepting one's invitation is the member's; changing its role is not.
        let own = target(&p, ACTOR, true, "member_role");
        let accept_as_admin = MembershipFields {
            accepted: Some(true),
            role: Some(system(&p, "admin_role")),
            ..Default::default()
        };
        assert_lacks(
            run(&p, &pending, update(own, accept_as_admin)),
            "organization.changeMemberRole",
        );
        // The admin may change the role, not accept for the member.
        let other = target(&p, OTHER, true, "member_role");
        let admin = holding(&p, "admin_role");
        let admin_accepts = MembershipFields {
            accepted: Some(true),
            role: Some(system(&p, "superuser_role")),
            ..Default::default()
        };
        assert_rule(
            run(&p, &admin, update(other, admin_accepts)),
            Rule::SelfOnly,
        );
        // The superuser (team.remove but no team.changeMemberRole) deactivates in a sub-team,
        // but not together with a metadata change.
        let superuser = holding(&p, "superuser_role");
        let sub_other = target(&p, OTHER, false, "member_role");
        assert_ok(run(&p, &superuser, update(sub_other, accepting(false))));
        let with_metadata = MembershipFields {
            accepted: Some(false),
            metadata: true,
            ..Default::default()
        };
        assert_lacks(
            run(&p, &superuser, update(sub_other, with_metadata)),
            "team.changeMemberRole",
        );
        // The member's own setting is fine, the role change in the same update is not.
        let own_settings_and_role = MembershipFields {
            disable_impersonation: true,
            role: Some(system(&p, "member_role")),
            ..Default::default()
        };
        assert_lacks(
            run(
                &p,
                &holding(&p, "member_role"),
                update(own, own_settings_and_role),
            ),
            "organization.changeMemberRole",
        );
    }

    #[test]
    fn an_update_of_no_field_is_still_checked() {
        let p = Policy::default();
        let empty = MembershipFields::default();
        let own = target(&p, ACTOR, true, "member_role");
        assert_ok(run(&p, &Effective::default(), update(own, empty)));
        let other = target(&p, OTHER, true, "member_role");
        assert_lacks(
            run(&p, &holding(&p, "member_role"), update(other, empty)),
            "organization.changeMemberRole",
        );
        assert_ok(run(&p, &holding(&p, "admin_role"), update(other, empty)));
        let an_owner = target(&p, OTHER, true, "owner_role");
        assert_rule(
            run(&p, &holding(&p, "admin_role"), update(an_owner, empty)),
            Rule::OwnerOnly,
        );
    }

    // --- DeleteMembership -------------------------------------------------------------------

    #[test]
    fn delete_membership_is_leaving_or_removing() {
        let p = Policy::default();
        let member = holding(&p, "member_role");
        let admin = holding(&p, "admin_role");
        let delete = |t| Write::DeleteMembership { target: t };
        // Leaving needs nothing, declining an OWNER invitation included.
        assert_ok(run(
            &p,
            &member,
            delete(target(&p, ACTOR, true, "member_role")),
        ));
        assert_ok(run(
            &p,
            &Effective::default(),
            delete(target(&p, ACTOR, false, "owner_role")),
        ));
        // Removing somebody else.
        assert_ok(run(
            &p,
            &admin,
            delete(target(&p, OTHER, true, "admin_role")),
        ));
        assert_rule(
            run(&p, &admin, delete(target(&p, OTHER, true, "owner_role"))),
            Rule::OwnerOnly,
        );
        assert_ok(run(
            &p,
            &holding(&p, "owner_role"),
            delete(target(&p, OTHER, true, "owner_role")),
        ));
        // A member deletes neither an OWNER nor an ADMIN: the permission is named.
        for role_id in ["owner_role", "admin_role"] {
            assert_lacks(
                run(&p, &member, delete(target(&p, OTHER, true, role_id))),
                "organization.remove",
            );
            assert_lacks(
                run(&p, &member, delete(target(&p, OTHER, false, role_id))),
                "team.remove",
            );
        }
        // The superuser removes sub-team members, but not a sub-team OWNER.
        let superuser = holding(&p, "superuser_role");
        assert_ok(run(
            &p,
            &superuser,
            delete(target(&p, OTHER, false, "admin_role")),
        ));
        assert_rule(
            run(
                &p,
                &superuser,
                delete(target(&p, OTHER, false, "owner_role")),
            ),
            Rule::OwnerOnly,
        );
    }

    // --- Roles ------------------------------------------------------------------------------

    #[test]
    fn role_writes_need_role_permissions_and_no_escalation() {
        let p = Policy::default();
        let admin = holding(&p, "admin_role");
        let superuser = holding(&p, "superuser_role");
        let reader = set(&["booking.read", "team.read"]);
        let billing = set(&["team.read", "organization.manageBilling"]);
        let everything = set(&["*.*"]);
        let writes = |permissions| {
            [
                (Write::CreateRole { permissions }, "role.create"),
                (Write::UpdateRole { permissions }, "role.update"),
                (Write::AddRolePermissions { permissions }, "role.update"),
                (Write::RemoveRolePermissions { permissions }, "role.update"),
            ]
        };
        for (write, needed) in writes(&reader) {
            assert_ok(run(&p, &admin, write));
            assert_lacks(run(&p, &superuser, write), needed);
            assert_lacks(run(&p, &holding(&p, "member_role"), write), needed);
        }
        // The resulting permissions, unchanged ones included, stay within the actor's.
        for (write, _) in writes(&billing) {
            let denial = metadata(run(&p, &admin, write));
            assert_eq!(denial["rule"], "NO_ESCALATION");
            assert_eq!(denial["permission"], "organization.manageBilling");
            assert_ok(run(&p, &holding(&p, "owner_role"), write));
        }
        for (write, _) in writes(&everything) {
            assert_rule(run(&p, &admin, write), Rule::NoEscalation);
        }
        // A sub-team ADMIN writes the sub-team's roles within what it holds there.
        let sub_admin = grants(
            &p,
            &[
                ("admin_role", BaseRole::Admin, false),
                ("member_role", BaseRole::Member, true),
            ],
        );
        assert_ok(run(
            &p,
            &sub_admin,
            Write::CreateRole {
                permissions: &reader,
            },
        ));
    }

    fn delete_role<'a>(
        deleted: RoleFacts<'a>,
        reassign: MemberRole<'a>,
        system_target: bool,
        holders: &'a [RoleHolder],
    ) -> Write<'a> {
        Write::DeleteRole {
            role: deleted,
            reassign_to: reassign.role,
            reassign_level: system_target.then_some(reassign.level),
            holders,
        }
    }

    #[test]
    fn delete_role_reassigns_under_the_grant_rules() {
        let p = Policy::default();
        let admin = holding(&p, "admin_role");
        let owner = holding(&p, "owner_role");
        let reader = set(&["booking.read"]);
        let deleted = custom(BaseRole::Member, &reader).role;
        let member_role = system(&p, "member_role");
        let owner_role = system(&p, "owner_role");

        assert_ok(run(
            &p,
            &admin,
            delete_role(deleted, member_role, true, ONE_MEMBER),
        ));
        assert_lacks(
            run(
                &p,
                &holding(&p, "superuser_role"),
                delete_role(deleted, member_role, true, ONE_MEMBER),
            ),
            "role.delete",
        );
        // An ADMIN cannot reassign the holders to owner_role...
        assert_rule(
            run(
                &p,
                &admin,
                delete_role(deleted, owner_role, true, ONE_MEMBER),
            ),
            Rule::OwnerOnly,
        );
        assert_ok(run(
            &p,
            &owner,
            delete_role(deleted, owner_role, true, ONE_MEMBER),
        ));
        // ... nor to a role with permissions it lacks.
        let billing = set(&["organization.manageBilling"]);
        let billing_role = custom(BaseRole::Member, &billing);
        let denial = metadata(run(
            &p,
            &admin,
            delete_role(deleted, billing_role, false, ONE_MEMBER),
        ));
        assert_eq!(denial["rule"], "NO_ESCALATION");
        assert_eq!(denial["permission"], "organization.manageBilling");
        // Nor touch an OWNER-level holder of a custom role.
        let owner_holder = [RoleHolder {
            user_id: OTHER,
            level: BaseRole::Owner,
        }];
        assert_rule(
            run(
                &p,
                &admin,
                delete_role(deleted, member_role, true, &owner_holder),
            ),
            Rule::OwnerOnly,
        );
        assert_rule(
            run(
                &p,
                &admin,
                delete_role(
                    deleted,
                    custom(BaseRole::Member, &reader),
                    false,
                    &owner_holder,
                ),
            ),
            Rule::OwnerOnly,
        );
        // With no holders, nothing is granted: role.delete alone.
        assert_ok(run(&p, &admin, delete_role(deleted, owner_role, true, &[])));
        // An actor holding the role is not raised by the reassignment.
        let own = [RoleHolder {
            user_id: ACTOR,
            level: BaseRole::Admin,
        }];
        let reads = set(&["*.read", "team.listMembers", "organization.listMembers"]);
        let held = custom(BaseRole::Admin, &reads).role;
        let superuser_role = system(&p, "superuser_role");
        assert_rule(
            run(&p, &admin, delete_role(held, superuser_role, true, &own)),
            Rule::NoSelfRaise,
        );
        assert_rule(
            run(&p, &admin, delete_role(deleted, member_role, true, &own)),
            Rule::NoSelfRaise,
        );
        assert_ok(run(&p, &admin, delete_role(held, member_role, true, &own)));
    }

    // --- Attributes -------------------------------------------------------------------------

    #[test]
    fn attribute_writes_need_attribute_permissions() {
        let p = Policy::default();
        let superuser = holding(&p, "superuser_role");
        let member = holding(&p, "member_role");
        for (write, needed) in [
            (Write::CreateAttribute, "organization.attributes.create"),
            (Write::AddAttributeOption, "organization.attributes.update"),
            (Write::DeleteAttribute, "organization.attributes.delete"),
            (Write::AssignAttribute, "organization.attributes.editUsers"),
            (
                Write::UnassignAttribute,
                "organization.attributes.editUsers",
            ),
        ] {
            assert_ok(run(&p, &superuser, write));
            assert_lacks(run(&p, &member, write), needed);
        }
    }

    // --- Invitations ------------------------------------------------------------------------

    #[test]
    fn invitations() {
        let p = Policy::default();
        let admin = holding(&p, "admin_role");
        let member = holding(&p, "member_role");
        let invite = |granted| Write::CreateInvitation {
            invited_email: "newcomer@acme.test",
            granted,
        };
        assert_ok(run(&p, &admin, invite(system(&p, "admin_role"))));
        assert_lacks(
            run(&p, &member, invite(system(&p, "member_role"))),
            "organization.invite",
        );
        assert_rule(
            run(&p, &admin, invite(system(&p, "owner_role"))),
            Rule::OwnerOnly,
        );
        assert_ok(run(
            &p,
            &holding(&p, "owner_role"),
            invite(system(&p, "owner_role")),
        ));
        let billing = set(&["organization.manageBilling"]);
        assert_rule(
            run(&p, &admin, invite(custom(BaseRole::Member, &billing))),
            Rule::NoEscalation,
        );
        // Inviting oneself is creating one's own membership.
        let self_invite = Write::CreateInvitation {
            invited_email: "Actor@Acme.test",
            granted: system(&p, "member_role"),
        };
        assert_rule(run(&p, &admin, self_invite), Rule::NoSelfJoin);

        assert_ok(run(&p, &admin, Write::RevokeInvitation));
        assert_lacks(
            run(&p, &member, Write::RevokeInvitation),
            "organization.invite",
        );

        let nothing = Effective::default();
        let accept = |invited_email| Write::AcceptInvitation { invited_email };
        assert_ok(run(&p, &nothing, accept(ACTOR_EMAIL)));
        assert_ok(run(&p, &nothing, accept("ACTOR@acme.test")));
        assert_rule(
            run(&p, &holding(&p, "owner_role"), accept("newcomer@acme.test")),
            Rule::SelfOnly,
        );
        let nobody = ActorFacts {
            user_id: 404,
            email: None,
            effective: &nothing,
        };
        assert_rule(
            authorize(&nobody, &p.catalog, &accept("newcomer@acme.test")),
            Rule::SelfOnly,
        );
    }

    // --- No memberships at all --------------------------------------------------------------

    #[test]
    fn an_actor_without_memberships_only_creates_organizations_and_acts_on_themselves() {
        let p = Policy::default();
        let nothing = Effective::default();
        for write in every_write(&p) {
            let result = run(&p, &nothing, write);
            if matches!(write, Write::CreateOrganization) {
                assert_ok(result);
            } else {
                assert!(
                    matches!(result, Err(DomainError::PermissionDenied { .. })),
                    "{} allowed: {result:?}",
                    write.method()
                );
            }
        }
        // The self-only actions.
        let own = target(&p, ACTOR, true, "member_role");
        let own_settings = MembershipFields {
            disable_impersonation: true,
            auto_record_calls: true,
            ..Default::default()
        };
        for write in [
            Write::UpdateUser { user_id: ACTOR },
            Write::DeleteUser { user_id: ACTOR },
            update(own, accepting(true)),
            update(own, own_settings),
            Write::DeleteMembership { target: own },
            Write::AcceptInvitation {
                invited_email: ACTOR_EMAIL,
            },
        ] {
            assert_ok(run(&p, &nothing, write));
        }
        // An id of no user is a user with no permissions.
        let nobody = ActorFacts {
            user_id: 404,
            email: None,
            effective: &nothing,
        };
        for write in every_write(&p)
            .into_iter()
            .filter(|w| !matches!(w, Write::CreateOrganization))
        {
            assert!(authorize(&nobody, &p.catalog, &write).is_err());
        }
    }
}
