//! The random operations: one actor, one write, its arguments as indices into the world (its
//! users, teams and custom roles at the time the operation runs), so that a shrunk sequence
//! still means something on a fresh world.

use proptest::collection::vec;
use proptest::prelude::*;

/// The users of a world, by index (see `world::seed`).
pub const USERS: [&str; 6] = ["owner", "admin", "member", "pending", "outsider", "custom"];

/// The system roles a grant may name.
pub const SYSTEM_ROLES: [&str; 5] = [
    "owner_role",
    "admin_role",
    "member_role",
    "superuser_role",
    "restricteduser_role",
];

/// The permissions a role write may name: the ones that guard writes (so that a role gaining
/// them opens new writes), a few harmless ones, and wildcards (organization roles only; a
/// sub-team's role holding one, or an organization-only permission, is refused).
pub const PERMISSIONS: [&str; 27] = [
    "role.create",
    "role.read",
    "role.update",
    "role.delete",
    "team.invite",
    "team.remove",
    "team.changeMemberRole",
    "team.update",
    "team.delete",
    "team.read",
    "team.listMembers",
    "organization.invite",
    "organization.remove",
    "organization.changeMemberRole",
    "organization.update",
    "organization.manageBilling",
    "organization.listMembers",
    "organization.attributes.create",
    "organization.attributes.editUsers",
    "team.create",
    "booking.read",
    "eventType.create",
    "*.*",
    "team.*",
    "role.*",
    "organization.*",
    "*.read",
];

/// One step of a sequence: `actor` (an index into [`USERS`]) does `write`.
#[derive(Debug, Clone)]
pub struct Op {
    pub actor: usize,
    pub write: Write,
}

/// A role a grant names: a system role, or the world's n-th custom role (modulo how many exist).
#[derive(Debug, Clone, Copy)]
pub enum RoleRef {
    System(usize),
    Custom(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Member,
    Admin,
    Owner,
}

/// What a membership is given: the base level, a role, or both.
#[derive(Debug, Clone, Copy)]
pub enum Grant {
    Level(Level),
    Role(RoleRef),
    LevelAndRole(Level, RoleRef),
}

/// The one field group an UpdateMembership sets.
#[derive(Debug, Clone, Copy)]
pub enum MembershipChange {
    Accepted(bool),
    Grant(Grant),
    Metadata,
    DisableImpersonation(bool),
    AutoRecordCalls(bool),
}

#[derive(Debug, Clone, Copy)]
pub enum OrganizationChange {
    Name,
    MaxAllowedMemberships(i32),
    /// `true`: auto-accept the world's email domain; `false`: turn it off.
    AutoAccept(bool),
    AdminDeleteEnabled(bool),
}

/// A write; `team` indexes the world's teams (0 is the organization), `user` [`USERS`], `role`
/// its custom roles, `permissions` [`PERMISSIONS`] — all modulo their length.
#[derive(Debug, Clone)]
pub enum Write {
    CreateMembership {
        team: usize,
        user: usize,
        grant: Grant,
        accepted: bool,
    },
    UpdateMembership {
        team: usize,
        user: usize,
        change: MembershipChange,
    },
    DeleteMembership {
        team: usize,
        user: usize,
    },
    CreateRole {
        team: usize,
        permissions: Vec<usize>,
    },
    UpdateRole {
        role: usize,
        permissions: Vec<usize>,
    },
    AddRolePermissions {
        role: usize,
        permissions: Vec<usize>,
    },
    RemoveRolePermissions {
        role: usize,
        permissions: Vec<usize>,
    },
    /// `reassign`: `None` leaves `reassign_role_id` empty (the default, `member_role`).
    DeleteRole {
        role: usize,
        reassign: Option<RoleRef>,
    },
    UpdateOrganization(OrganizationChange),
    CreateTeam,
    UpdateTeam {
        team: usize,
    },
    DeleteTeam {
        team: usize,
    },
    UpdateUser {
        user: usize,
    },
    DeleteUser {
        user: usize,
    },
    CreateAttribute,
    AssignAttribute {
        user: usize,
    },
}

/// A sequence of 1..=`max_len` operations.
pub fn sequences(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    vec(op(), 1..=max_len)
}

fn op() -> impl Strategy<Value = Op> {
    (0..USERS.len(), write()).prop_map(|(actor, write)| Op { actor, write })
}

fn user() -> impl Strategy<Value = usize> {
    0..USERS.len()
}

/// A team index: more often the organization and the two seeded sub-teams than a created one.
fn team() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0..3usize, 1 => 3..6usize]
}

fn custom_role() -> impl Strategy<Value = usize> {
    0..8usize
}

fn level() -> impl Strategy<Value = Level> {
    prop_oneof![Just(Level::Member), Just(Level::Admin), Just(Level::Owner)]
}

/// System roles half the time, owner_role and admin_role most often among them.
fn role_ref() -> impl Strategy<Value = RoleRef> {
    prop_oneof![
        2 => Just(RoleRef::System(0)),
        2 => Just(RoleRef::System(1)),
        1 => (2..SYSTEM_ROLES.len()).prop_map(RoleRef::System),
        5 => custom_role().prop_map(RoleRef::Custom),
    ]
}

fn grant() -> impl Strategy<Value = Grant> {
    prop_oneof![
        2 => level().prop_map(Grant::Level),
        5 => role_ref().prop_map(Grant::Role),
        1 => (level(), role_ref()).prop_map(|(l, r)| Grant::LevelAndRole(l, r)),
    ]
}

fn permissions() -> impl Strategy<Value = Vec<usize>> {
    vec(0..PERMISSIONS.len(), 0..5)
}

fn membership_change() -> impl Strategy<Value = MembershipChange> {
    prop_oneof![
        3 => any::<bool>().prop_map(MembershipChange::Accepted),
        8 => grant().prop_map(MembershipChange::Grant),
        1 => Just(MembershipChange::Metadata),
        1 => any::<bool>().prop_map(MembershipChange::DisableImpersonation),
        1 => any::<bool>().prop_map(MembershipChange::AutoRecordCalls),
    ]
}

fn organization_change() -> impl Strategy<Value = OrganizationChange> {
    prop_oneof![
        Just(OrganizationChange::Name),
        prop_oneof![Just(0), Just(100)].prop_map(OrganizationChange::MaxAllowedMemberships),
        any::<bool>().prop_map(OrganizationChange::AutoAccept),
        any::<bool>().prop_map(OrganizationChange::AdminDeleteEnabled),
    ]
}

/// Biased toward the writes that change who holds which role.
fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        14 => (team(), user(), grant(), prop::bool::weighted(0.2)).prop_map(
            |(team, user, grant, accepted)| Write::CreateMembership { team, user, grant, accepted }
        ),
        20 => (team(), user(), membership_change())
            .prop_map(|(team, user, change)| Write::UpdateMembership { team, user, change }),
        8 => (team(), user()).prop_map(|(team, user)| Write::DeleteMembership { team, user }),
        6 => (team(), permissions())
            .prop_map(|(team, permissions)| Write::CreateRole { team, permissions }),
        5 => (custom_role(), permissions())
            .prop_map(|(role, permissions)| Write::UpdateRole { role, permissions }),
        6 => (custom_role(), permissions())
            .prop_map(|(role, permissions)| Write::AddRolePermissions { role, permissions }),
        3 => (custom_role(), permissions())
            .prop_map(|(role, permissions)| Write::RemoveRolePermissions { role, permissions }),
        7 => (custom_role(), prop::option::weighted(0.8, role_ref()))
            .prop_map(|(role, reassign)| Write::DeleteRole { role, reassign }),
        2 => organization_change().prop_map(Write::UpdateOrganization),
        1 => Just(Write::CreateTeam),
        1 => team().prop_map(|team| Write::UpdateTeam { team }),
        1 => team().prop_map(|team| Write::DeleteTeam { team }),
        1 => user().prop_map(|user| Write::UpdateUser { user }),
        1 => user().prop_map(|user| Write::DeleteUser { user }),
        1 => Just(Write::CreateAttribute),
        1 => user().prop_map(|user| Write::AssignAttribute { user }),
    ]
}
