//! The data a test starts from, written through the public API with the admin key (no actor):
//! users, organizations, teams, memberships, roles, and API keys with chosen scopes. Each
//! fixture panics with what it tried when the server refuses, so a broken setup reads as such.
//!
//! The `new_…` builders give the request a fixture sends, for the few tests that send it through
//! another client (another key, an actor, a spawned task).

use membership_service::pb;
use pb::MembershipRole;

use super::server::TestServer;
use super::values::strings;

/// The request `create_user` sends: the email, and the name `User <email>`.
pub fn new_user(email: &str) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        email: email.into(),
        name: format!("User {email}"),
        ..Default::default()
    }
}

pub async fn create_user(srv: &TestServer, email: &str) -> pb::User {
    srv.directory()
        .create_user(new_user(email))
        .await
        .unwrap_or_else(|s| panic!("create user {email}: {s:?}"))
        .into_inner()
}

/// An organization with this slug, named `Org <slug>`.
pub async fn create_org(srv: &TestServer, slug: &str) -> pb::Organization {
    create_org_with(
        srv,
        pb::CreateOrganizationRequest {
            slug: slug.into(),
            ..Default::default()
        },
    )
    .await
}

/// An organization from a full request; an empty name becomes `Org <slug>`.
pub async fn create_org_with(
    srv: &TestServer,
    mut request: pb::CreateOrganizationRequest,
) -> pb::Organization {
    if request.name.is_empty() {
        request.name = format!("Org {}", request.slug);
    }
    let slug = request.slug.clone();
    srv.directory()
        .create_organization(request)
        .await
        .unwrap_or_else(|s| panic!("create organization {slug}: {s:?}"))
        .into_inner()
}

/// A sub-team of the organization with this slug, named `Team <slug>`.
pub async fn create_team(srv: &TestServer, organization_id: i64, slug: &str) -> pb::Team {
    srv.directory()
        .create_team(pb::CreateTeamRequest {
            organization_id,
            name: format!("Team {slug}"),
            slug: slug.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("create team {slug}: {s:?}"))
        .into_inner()
}

/// How a fixture membership names its role: a `MembershipRole`, or a role reference (`"admin"`,
/// `"owner_role"`, `"org:admin"`, a custom role's id or key).
pub trait MemberRole: std::fmt::Debug {
    fn set_on(&self, request: &mut pb::CreateMembershipRequest);
}

impl MemberRole for MembershipRole {
    fn set_on(&self, request: &mut pb::CreateMembershipRequest) {
        request.role = *self as i32;
    }
}

impl MemberRole for &str {
    fn set_on(&self, request: &mut pb::CreateMembershipRequest) {
        request.role_id = (*self).into();
    }
}

impl MemberRole for &String {
    fn set_on(&self, request: &mut pb::CreateMembershipRequest) {
        request.role_id = (*self).clone();
    }
}

/// The request `add_member` (accepted) or `add_pending_member` sends.
pub fn new_membership(
    team_id: i64,
    user_id: i64,
    role: impl MemberRole,
    accepted: bool,
) -> pb::CreateMembershipRequest {
    let mut request = pb::CreateMembershipRequest {
        team_id,
        user_id,
        accepted,
        ..Default::default()
    };
    role.set_on(&mut request);
    request
}

async fn create_membership(
    srv: &TestServer,
    team_id: i64,
    user_id: i64,
    role: impl MemberRole,
    accepted: bool,
) -> pb::Membership {
    let what = format!("membership of user {user_id} in team {team_id} as {role:?}");
    srv.memberships()
        .create_membership(new_membership(team_id, user_id, role, accepted))
        .await
        .unwrap_or_else(|s| panic!("{what}: {s:?}"))
        .into_inner()
}

/// An accepted membership: `add_member(&srv, org.id, user.id, MembershipRole::Owner)` or
/// `add_member(&srv, team_id, user_id, "admin")`.
pub async fn add_member(
    srv: &TestServer,
    team_id: i64,
    user_id: i64,
    role: impl MemberRole,
) -> pb::Membership {
    create_membership(srv, team_id, user_id, role, true).await
}

/// A membership not accepted yet (an invitation): it grants nothing.
pub async fn add_pending_member(
    srv: &TestServer,
    team_id: i64,
    user_id: i64,
    role: impl MemberRole,
) -> pb::Membership {
    create_membership(srv, team_id, user_id, role, false).await
}

/// The membership with this id.
pub async fn get_membership(srv: &TestServer, id: i64) -> pb::Membership {
    srv.memberships()
        .get_membership(pb::GetMembershipRequest {
            member: Some(pb::get_membership_request::Member::MembershipId(id)),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("get membership {id}: {s:?}"))
        .into_inner()
}

/// The membership of this user in this team.
pub async fn get_membership_of(srv: &TestServer, team_id: i64, user_id: i64) -> pb::Membership {
    srv.memberships()
        .get_membership(pb::GetMembershipRequest {
            team_id,
            member: Some(pb::get_membership_request::Member::UserId(user_id)),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("get membership of {user_id} in {team_id}: {s:?}"))
        .into_inner()
}

/// The request `create_role` sends.
pub fn new_role(team_id: i64, name: &str, permissions: &[&str]) -> pb::CreateRoleRequest {
    pb::CreateRoleRequest {
        team_id,
        name: name.into(),
        permissions: strings(permissions),
        ..Default::default()
    }
}

/// A custom role of the team (an organization or a sub-team) with these permissions.
pub async fn create_role(
    srv: &TestServer,
    team_id: i64,
    name: &str,
    permissions: &[&str],
) -> pb::Role {
    srv.roles()
        .create_role(new_role(team_id, name, permissions))
        .await
        .unwrap_or_else(|s| panic!("create role {name} in {team_id}: {s:?}"))
        .into_inner()
}

/// What the user may do in the team, with the roles that grant it.
pub async fn effective_permissions(
    srv: &TestServer,
    user_id: i64,
    team_id: i64,
) -> pb::ListEffectivePermissionsResponse {
    srv.access()
        .list_effective_permissions(pb::ListEffectivePermissionsRequest {
            user_id,
            team_id,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("effective permissions of {user_id} in {team_id}: {s:?}"))
        .into_inner()
}

/// A new API key with these scopes, made straight in the database as `membership-service keys
/// create` does (ApiKeyService is tested on its own, in `api_keys`).
pub async fn scoped_key(srv: &TestServer, scopes: &[&str]) -> String {
    let store = membership_service::storage::Store::connect(&srv.database_url, 1)
        .await
        .expect("connect to the test database");
    let key = membership_service::auth::create_key(&store, "test-scoped", &strings(scopes))
        .await
        .unwrap_or_else(|e| panic!("create a key with scopes {scopes:?}: {e}"));
    store.conn().clone().close().await.ok();
    key
}
