//! The actor rules (`x-actor-user-id`: the end user a request acts for) through the real server
//! on every engine: who may change a membership's role, grant or touch OWNER, raise their own
//! role, write roles, and hand out permissions. Each denial names the missing `permission` or
//! the `rule` (`OWNER_ONLY`, `NO_SELF_RAISE`, `NO_ESCALATION`, …) and nothing else.

use crate::common::{
    AuthChannel, Engine, TestServer, add_member, all_events, auth, create_org, create_role,
    create_team, create_user, error_info, expect_err, get_membership_of, last_sequence,
    new_membership, pb, reason, strings,
};
use pb::membership_service_client::MembershipServiceClient;
use pb::role_service_client::RoleServiceClient;
use pb::{MembershipRole, Role};
use std::collections::HashMap;

use tonic::{Code, Status};

engine_tests!(
    admin_changes_a_member_to_superuser,
    members_cannot_change_roles,
    only_owners_grant_or_change_owner,
    organization_owner_counts_for_sub_teams,
    nobody_raises_their_own_role,
    no_escalation_through_a_granted_role,
    role_writes_need_role_permissions,
    permission_denied_wins_over_last_owner,
    permission_denied_wins_over_role_name_conflicts,
    malformed_actor_header_is_invalid,
    denied_writes_change_nothing,
);

// ---------------------------------------------------------------------------------------------
// Acting for an end user (the shared fixtures are in `common`)

/// MembershipService acting for `actor`.
fn memberships_as(srv: &TestServer, actor: i64) -> MembershipServiceClient<AuthChannel> {
    srv.client_with(
        auth(&srv.admin_key).actor(actor),
        MembershipServiceClient::new,
    )
}

/// RoleService acting for `actor`.
fn roles_as(srv: &TestServer, actor: i64) -> RoleServiceClient<AuthChannel> {
    srv.client_with(auth(&srv.admin_key).actor(actor), RoleServiceClient::new)
}

/// `actor` changes `user_id`'s membership in `team_id` to the role reference `role_id`.
async fn set_role_as(
    srv: &TestServer,
    actor: i64,
    team_id: i64,
    user_id: i64,
    role_id: &str,
) -> Result<pb::Membership, Status> {
    memberships_as(srv, actor)
        .update_membership(pb::UpdateMembershipRequest {
            team_id,
            member: Some(pb::update_membership_request::Member::UserId(user_id)),
            role_id: Some(role_id.into()),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

/// `actor` invites `user_id` into `team_id` with `role_id`: a pending membership, since only
/// its user accepts it.
async fn add_member_as(
    srv: &TestServer,
    actor: i64,
    team_id: i64,
    user_id: i64,
    role_id: &str,
) -> Result<pb::Membership, Status> {
    memberships_as(srv, actor)
        .create_membership(new_membership(team_id, user_id, role_id, false))
        .await
        .map(|r| r.into_inner())
}

fn denied<T: std::fmt::Debug>(result: Result<T, Status>) -> Status {
    match result {
        Ok(value) => panic!("expected PERMISSION_DENIED, got {value:?}"),
        Err(status) => status,
    }
}

/// PERMISSION_DENIED, ACTOR_LACKS_PERMISSION, with exactly this ErrorInfo metadata.
#[track_caller]
fn assert_denied(status: &Status, metadata: &[(&str, &str)]) {
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let info = error_info(status).unwrap_or_else(|| panic!("ErrorInfo in {status:?}"));
    assert_eq!(info.reason, "ACTOR_LACKS_PERMISSION", "{status:?}");
    assert_eq!(info.domain, "membership.v1");
    let want: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(info.metadata, want, "{status:?}");
}

/// Denied for lacking the catalog `permission` (and no rule).
#[track_caller]
fn assert_lacks(status: &Status, permission: &str) {
    assert_denied(status, &[("permission", permission)]);
}

/// Denied by an actor rule (`OWNER_ONLY`, `NO_SELF_RAISE`, …).
#[track_caller]
fn assert_rule(status: &Status, rule: &str) {
    assert_denied(status, &[("rule", rule)]);
}

/// Denied for handing out `permission`, which the actor lacks.
#[track_caller]
fn assert_escalation(status: &Status, permission: &str) {
    assert_denied(
        status,
        &[("rule", "NO_ESCALATION"), ("permission", permission)],
    );
}

/// An organization with an owner, a second owner, an admin, a member, a superuser and a plain
/// target member.
struct Org {
    id: i64,
    owner: i64,
    owner2: i64,
    admin: i64,
    member: i64,
    superuser: i64,
    target: i64,
}

async fn setup(srv: &TestServer, slug: &str) -> Org {
    let id = create_org(srv, slug).await.id;
    let mut users = Vec::new();
    for (name, role) in [
        ("owner", "owner"),
        ("owner2", "owner"),
        ("admin", "admin"),
        ("member", "member"),
        ("superuser", "superuser"),
        ("target", "member"),
    ] {
        let u = create_user(srv, &format!("{name}@{slug}.test")).await.id;
        add_member(srv, id, u, role).await;
        users.push(u);
    }
    Org {
        id,
        owner: users[0],
        owner2: users[1],
        admin: users[2],
        member: users[3],
        superuser: users[4],
        target: users[5],
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

async fn admin_changes_a_member_to_superuser(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let o = setup(&srv, "acme").await;
    let before = last_sequence(&srv).await;
    let changed = set_role_as(&srv, o.admin, o.id, o.target, "superuser")
        .await
        .expect("an ADMIN makes a MEMBER superuser");
    assert_eq!(changed.role_id, "superuser_role");
    assert_eq!(changed.role(), MembershipRole::Admin);
    let events = all_events(&srv).await;
    let event = events
        .iter()
        .find(|e| e.sequence > before && e.kind == "membership.updated")
        .expect("a membership.updated event");
    assert_eq!(
        event.actor_user_id,
        Some(o.admin),
        "the event records the actor"
    );

    // And back down, and to a custom role the admin's permissions cover.
    set_role_as(&srv, o.admin, o.id, o.target, "member")
        .await
        .expect("back to member");
    let custom = create_role(&srv, o.id, "Booker", &["booking.*", "team.read"]).await;
    let m = set_role_as(&srv, o.admin, o.id, o.target, &custom.key)
        .await
        .expect("a custom role within the admin's permissions");
    assert_eq!(m.role_id, custom.id);
    srv.stop().await;
}

async fn members_cannot_change_roles(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let o = setup(&srv, "acme").await;
    let sub = create_team(&srv, o.id, "sales").await.id;

    let status = denied(set_role_as(&srv, o.member, o.id, o.target, "restricteduser").await);
    assert_lacks(&status, "organization.changeMemberRole");
    // Also with the enum instead of role_id.
    let status = denied(
        memberships_as(&srv, o.member)
            .update_membership(pb::UpdateMembershipRequest {
                team_id: o.id,
                member: Some(pb::update_membership_request::Member::UserId(o.target)),
                role: Some(MembershipRole::Admin as i32),
                ..Default::default()
            })
            .await,
    );
    assert_lacks(&status, "organization.changeMemberRole");
    // The superuser lacks it too.
    let status = denied(set_role_as(&srv, o.superuser, o.id, o.target, "restricteduser").await);
    assert_lacks(&status, "organization.changeMemberRole");

    // In a sub-team, where the actor is a plain member of both, the team permission is named.
    add_member(&srv, sub, o.member, "member").await;
    add_member(&srv, sub, o.target, "member").await;
    let status = denied(set_role_as(&srv, o.member, sub, o.target, "restricteduser").await);
    assert_lacks(&status, "team.changeMemberRole");

    // An actor with no membership at all.
    let stranger = create_user(&srv, "stranger@acme.test").await.id;
    let status = denied(set_role_as(&srv, stranger, o.id, o.target, "restricteduser").await);
    assert_lacks(&status, "organization.changeMemberRole");

    assert_eq!(
        get_membership_of(&srv, o.id, o.target).await.role_id,
        "member_role"
    );
    assert_eq!(
        get_membership_of(&srv, sub, o.target).await.role_id,
        "member_role"
    );
    srv.stop().await;
}

async fn only_owners_grant_or_change_owner(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let o = setup(&srv, "acme").await;

    let status = denied(set_role_as(&srv, o.admin, o.id, o.target, "owner").await);
    assert_rule(&status, "OWNER_ONLY");
    let status = denied(
        memberships_as(&srv, o.admin)
            .update_membership(pb::UpdateMembershipRequest {
                team_id: o.id,
                member: Some(pb::update_membership_request::Member::UserId(o.target)),
                role: Some(MembershipRole::Owner as i32),
                ..Default::default()
            })
            .await,
    );
    assert_rule(&status, "OWNER_ONLY");
    let status = denied(set_role_as(&srv, o.admin, o.id, o.owner2, "member").await);
    assert_rule(&status, "OWNER_ONLY");
    let status = denied(set_role_as(&srv, o.admin, o.id, o.owner2, "admin").await);
    assert_rule(&status, "OWNER_ONLY");
    // Creating an OWNER membership is granting OWNER too.
    let newcomer = create_user(&srv, "newcomer@acme.test").await.id;
    let status = denied(add_member_as(&srv, o.admin, o.id, newcomer, "owner_role").await);
    assert_rule(&status, "OWNER_ONLY");

    // An OWNER can do all of it.
    let promoted = set_role_as(&srv, o.owner, o.id, o.target, "owner")
        .await
        .expect("an OWNER grants OWNER");
    assert_eq!(promoted.role(), MembershipRole::Owner);
    let demoted = set_role_as(&srv, o.owner, o.id, o.owner2, "admin")
        .await
        .expect("an OWNER demotes another OWNER");
    assert_eq!(demoted.role(), MembershipRole::Admin);
    add_member_as(&srv, o.owner, o.id, newcomer, "owner")
        .await
        .expect("an OWNER creates an OWNER membership");
    srv.stop().await;
}

async fn organization_owner_counts_for_sub_teams(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let o = setup(&srv, "acme").await;
    let sub = create_team(&srv, o.id, "sales").await.id;
    add_member(&srv, sub, o.target, "member").await;
    // The member is a sub-team ADMIN: enough to change roles there, not to grant OWNER.
    add_member(&srv, sub, o.member, "admin").await;

    let status = denied(set_role_as(&srv, o.member, sub, o.target, "owner").await);
    assert_rule(&status, "OWNER_ONLY");
    let status = denied(set_role_as(&srv, o.admin, sub, o.target, "owner").await);
    assert_rule(&status, "OWNER_ONLY");
    set_role_as(&srv, o.member, sub, o.target, "superuser")
        .await
        .expect("a sub-team ADMIN changes a sub-team role");

    // The organization OWNER, with no sub-team membership, is an OWNER of the sub-team.
    let promoted = set_role_as(&srv, o.owner, sub, o.target, "owner")
        .await
        .expect("an org OWNER grants OWNER in a sub-team");
    assert_eq!(promoted.role(), MembershipRole::Owner);
    let status = denied(set_role_as(&srv, o.member, sub, o.target, "member").await);
    assert_rule(&status, "OWNER_ONLY");
    // A second sub-team OWNER, so that demoting the first keeps the sub-team's last owner.
    set_role_as(&srv, o.owner, sub, o.member, "owner")
        .await
        .expect("an org OWNER grants OWNER in a sub-team again");
    let demoted = set_role_as(&srv, o.owner, sub, o.target, "member")
        .await
        .expect("an org OWNER demotes a sub-team OWNER");
    assert_eq!(demoted.role(), MembershipRole::Member);
    // Now a sub-team OWNER (an org MEMBER) counts as OWNER there.
    set_role_as(&srv, o.member, sub, o.target, "owner")
        .await
        .expect("a sub-team OWNER grants OWNER in the sub-team");
    srv.stop().await;
}

async fn nobody_raises_their_own_role(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let o = setup(&srv, "acme").await;
    let sub = create_team(&srv, o.id, "sales").await.id;

    let status = denied(set_role_as(&srv, o.admin, o.id, o.admin, "owner").await);
    assert_rule(&status, "OWNER_ONLY");
    // The superuser may not change roles at all: that answers first.
    let status = denied(set_role_as(&srv, o.superuser, o.id, o.superuser, "admin").await);
    assert_lacks(&status, "organization.changeMemberRole");
    assert_eq!(
        get_membership_of(&srv, o.id, o.superuser).await.role_id,
        "superuser_role"
    );

    // The self rule on its own: an org ADMIN (who may change sub-team roles and holds every
    // admin permission) cannot raise their own sub-team membership.
    add_member(&srv, sub, o.admin, "member").await;
    let status = denied(set_role_as(&srv, o.admin, sub, o.admin, "admin").await);
    assert_rule(&status, "NO_SELF_RAISE");
    let status = denied(set_role_as(&srv, o.admin, sub, o.admin, "superuser").await);
    assert_rule(&status, "NO_SELF_RAISE");
    assert_eq!(
        get_membership_of(&srv, sub, o.admin).await.role_id,
        "member_role"
    );
    // ... while raising somebody else's is fine.
    add_member(&srv, sub, o.target, "member").await;
    set_role_as(&srv, o.admin, sub, o.target, "admin")
        .await
        .expect("an org ADMIN raises another sub-team member");

    // Lowering one's own role is fine.
    let lowered = set_role_as(&srv, o.admin, o.id, o.admin, "superuser")
        .await
        .expect("an ADMIN lowers their own role");
    assert_eq!(lowered.role_id, "superuser_role");
    let lowered = set_role_as(&srv, o.owner2, o.id, o.owner2, "admin")
        .await
        .expect("an OWNER steps down while another OWNER remains");
    assert_eq!(lowered.role(), MembershipRole::Admin);
    srv.stop().await;
}

async fn no_escalation_through_a_granted_role(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let o = setup(&srv, "acme").await;
    let updater = create_role(&srv, o.id, "Updater", &["organization.update"]).await;
    let reader = create_role(&srv, o.id, "Reader", &["booking.read", "team.read"]).await;
    let billing = create_role(&srv, o.id, "Billing", &["organization.manageBilling"]).await;
    let everything = create_role(&srv, o.id, "Everything", &["*.*"]).await;

    // The superuser invites into sub-teams (team.invite), not into the organization; and it
    // lacks organization.update, so it cannot hand that out through a new membership.
    let sub = create_team(&srv, o.id, "sales").await.id;
    let newcomer = create_user(&srv, "newcomer@acme.test").await.id;
    add_member(&srv, o.id, newcomer, "member").await;
    let status = denied(add_member_as(&srv, o.superuser, sub, newcomer, &updater.id).await);
    assert_escalation(&status, "organization.update");
    let outsider = create_user(&srv, "outsider@acme.test").await.id;
    let status = denied(add_member_as(&srv, o.superuser, o.id, outsider, &reader.key).await);
    assert_lacks(&status, "organization.invite");
    let m = add_member_as(&srv, o.superuser, sub, newcomer, &reader.key)
        .await
        .expect("a role within the superuser's permissions");
    assert_eq!(m.role_id, reader.id);
    assert!(!m.accepted, "pending until the newcomer accepts");

    // The admin lacks manageBilling: not through a custom role, nor through `*.*`.
    let status = denied(set_role_as(&srv, o.admin, o.id, o.target, &billing.id).await);
    assert_escalation(&status, "organization.manageBilling");
    let status = denied(set_role_as(&srv, o.admin, o.id, o.target, &everything.id).await);
    let missing = error_info(&status).unwrap().metadata["permission"].clone();
    assert!(missing.ends_with(".manageBilling"), "{missing}");
    assert_escalation(&status, &missing);
    assert_eq!(
        get_membership_of(&srv, o.id, o.target).await.role_id,
        "member_role"
    );

    // The owner holds everything.
    set_role_as(&srv, o.owner, o.id, o.target, &billing.id)
        .await
        .expect("an OWNER grants a billing role");
    srv.stop().await;
}

async fn role_writes_need_role_permissions(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let o = setup(&srv, "acme").await;
    let sub = create_team(&srv, o.id, "sales").await.id;
    let existing = create_role(&srv, o.id, "Existing", &["team.read"]).await;
    let new = |name: &str, permissions: &[&str]| pb::CreateRoleRequest {
        team_id: o.id,
        name: name.into(),
        permissions: strings(permissions),
        ..Default::default()
    };

    // The superuser holds no role.* permission.
    let mut su = roles_as(&srv, o.superuser);
    let status = denied(su.create_role(new("By superuser", &["team.read"])).await);
    assert_lacks(&status, "role.create");
    let status = denied(
        su.update_role(pb::UpdateRoleRequest {
            team_id: o.id,
            role_id: existing.id.clone(),
            name: Some("Renamed".into()),
            ..Default::default()
        })
        .await,
    );
    assert_lacks(&status, "role.update");
    let status = denied(
        su.add_role_permissions(pb::AddRolePermissionsRequest {
            team_id: o.id,
            role_id: existing.id.clone(),
            permissions: strings(&["booking.read"]),
        })
        .await,
    );
    assert_lacks(&status, "role.update");
    let status = denied(
        su.remove_role_permissions(pb::RemoveRolePermissionsRequest {
            team_id: o.id,
            role_id: existing.id.clone(),
            permissions: strings(&["team.read"]),
        })
        .await,
    );
    assert_lacks(&status, "role.update");
    let status = denied(
        su.delete_role(pb::DeleteRoleRequest {
            team_id: o.id,
            role_id: existing.id.clone(),
            ..Default::default()
        })
        .await,
    );
    assert_lacks(&status, "role.delete");
    let status = denied(
        roles_as(&srv, o.member)
            .create_role(new("By member", &[]))
            .await,
    );
    assert_lacks(&status, "role.create");

    // The admin writes roles, but cannot hand out what it lacks.
    let mut admin = roles_as(&srv, o.admin);
    let status = denied(
        admin
            .create_role(new("Billing", &["team.read", "organization.manageBilling"]))
            .await,
    );
    assert_escalation(&status, "organization.manageBilling");
    let status = denied(admin.create_role(new("All", &["*.*"])).await);
    let missing = error_info(&status).unwrap().metadata["permission"].clone();
    assert!(missing.ends_with(".manageBilling"), "{missing}");
    assert_escalation(&status, &missing);
    let status = denied(
        admin
            .add_role_permissions(pb::AddRolePermissionsRequest {
                team_id: o.id,
                role_id: existing.id.clone(),
                permissions: strings(&["team.manageBilling"]),
            })
            .await,
    );
    assert_escalation(&status, "team.manageBilling");
    let status = denied(
        admin
            .update_role(pb::UpdateRoleRequest {
                team_id: o.id,
                role_id: existing.id.clone(),
                permissions: Some(pb::PermissionList {
                    permissions: strings(&["team.read", "organization.manageBilling"]),
                }),
                ..Default::default()
            })
            .await,
    );
    assert_escalation(&status, "organization.manageBilling");
    let created = admin
        .create_role(new("Bookings", &["booking.*", "team.read"]))
        .await
        .expect("an ADMIN creates a role within its permissions")
        .into_inner();
    admin
        .update_role(pb::UpdateRoleRequest {
            team_id: o.id,
            role_id: created.id.clone(),
            name: Some("Bookings 2".into()),
            ..Default::default()
        })
        .await
        .expect("an ADMIN updates a role");
    admin
        .delete_role(pb::DeleteRoleRequest {
            team_id: o.id,
            role_id: created.id.clone(),
            ..Default::default()
        })
        .await
        .expect("an ADMIN deletes a role");

    // The owner may hand out billing.
    roles_as(&srv, o.owner)
        .create_role(new("Billing", &["organization.manageBilling"]))
        .await
        .expect("an OWNER creates a billing role");

    // In a sub-team, a sub-team ADMIN (org MEMBER) writes the sub-team's roles only.
    add_member(&srv, sub, o.member, "admin").await;
    let mut sub_admin = roles_as(&srv, o.member);
    sub_admin
        .create_role(pb::CreateRoleRequest {
            team_id: sub,
            name: "Sub role".into(),
            permissions: strings(&["booking.update"]),
            ..Default::default()
        })
        .await
        .expect("a sub-team ADMIN creates a sub-team role");
    let status = denied(sub_admin.create_role(new("Org role", &["team.read"])).await);
    assert_lacks(&status, "role.create");
    srv.stop().await;
}

async fn permission_denied_wins_over_last_owner(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "solo").await.id;
    let owner = create_user(&srv, "owner@solo.test").await.id;
    let plain = create_user(&srv, "plain@solo.test").await.id;
    let admin = create_user(&srv, "admin@solo.test").await.id;
    add_member(&srv, org_id, owner, "owner").await;
    add_member(&srv, org_id, plain, "member").await;
    add_member(&srv, org_id, admin, "admin").await;

    // Without an actor, the invariant answers.
    let status = expect_err(
        srv.memberships()
            .update_membership(pb::UpdateMembershipRequest {
                team_id: org_id,
                member: Some(pb::update_membership_request::Member::UserId(owner)),
                role_id: Some("member".into()),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(reason(&status).as_deref(), Some("LAST_OWNER"));

    // Both fail: PERMISSION_DENIED wins.
    let status = denied(set_role_as(&srv, plain, org_id, owner, "member").await);
    assert_lacks(&status, "organization.changeMemberRole");
    let status = denied(set_role_as(&srv, admin, org_id, owner, "admin").await);
    assert_rule(&status, "OWNER_ONLY");
    assert_eq!(
        get_membership_of(&srv, org_id, owner).await.role(),
        MembershipRole::Owner
    );
    srv.stop().await;
}

/// Role names are unique within a team (a section 3 rule): an actor who may not write roles at
/// all is told so, not that the name is taken.
async fn permission_denied_wins_over_role_name_conflicts(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let o = setup(&srv, "acme").await;
    create_role(&srv, o.id, "Taken", &["team.read"]).await;
    let other = create_role(&srv, o.id, "Other", &["team.read"]).await;
    let mut su = roles_as(&srv, o.superuser);

    let status = denied(
        su.create_role(pb::CreateRoleRequest {
            team_id: o.id,
            name: "Taken".into(),
            ..Default::default()
        })
        .await,
    );
    assert_lacks(&status, "role.create");
    let status = denied(
        su.update_role(pb::UpdateRoleRequest {
            team_id: o.id,
            role_id: other.id.clone(),
            name: Some("Taken".into()),
            ..Default::default()
        })
        .await,
    );
    assert_lacks(&status, "role.update");
    srv.stop().await;
}

async fn malformed_actor_header_is_invalid(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let o = setup(&srv, "acme").await;
    for bad in ["abc", "0", "-3", ""] {
        let mut client = srv.client_with(
            auth(&srv.admin_key).header("x-actor-user-id", bad),
            MembershipServiceClient::new,
        );
        let status = expect_err(
            client
                .update_membership(pb::UpdateMembershipRequest {
                    team_id: o.id,
                    member: Some(pb::update_membership_request::Member::UserId(o.target)),
                    role_id: Some("admin".into()),
                    ..Default::default()
                })
                .await,
        );
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
    }
    assert_eq!(
        get_membership_of(&srv, o.id, o.target).await.role_id,
        "member_role"
    );
    srv.stop().await;
}

async fn denied_writes_change_nothing(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let o = setup(&srv, "acme").await;
    let role = create_role(&srv, o.id, "Kept", &["team.read"]).await;
    let target_before = get_membership_of(&srv, o.id, o.target).await;
    let before = all_events(&srv).await;

    denied(set_role_as(&srv, o.member, o.id, o.target, "admin").await);
    denied(set_role_as(&srv, o.admin, o.id, o.target, "owner").await);
    denied(
        memberships_as(&srv, o.member)
            .update_membership(pb::UpdateMembershipRequest {
                team_id: o.id,
                member: Some(pb::update_membership_request::Member::UserId(o.target)),
                role_id: Some("admin".into()),
                disable_impersonation: Some(true),
                public_metadata: Some(crate::common::to_struct(serde_json::json!({"x": 1}))),
                ..Default::default()
            })
            .await,
    );
    let newcomer = create_user(&srv, "newcomer@acme.test").await.id;
    let after_user = all_events(&srv).await;
    denied(add_member_as(&srv, o.admin, o.id, newcomer, "owner").await);
    let mut su = roles_as(&srv, o.superuser);
    denied(
        su.create_role(pb::CreateRoleRequest {
            team_id: o.id,
            name: "Sneaky".into(),
            ..Default::default()
        })
        .await,
    );
    denied(
        su.update_role(pb::UpdateRoleRequest {
            team_id: o.id,
            role_id: role.id.clone(),
            name: Some("Changed".into()),
            ..Default::default()
        })
        .await,
    );
    denied(
        su.delete_role(pb::DeleteRoleRequest {
            team_id: o.id,
            role_id: role.id.clone(),
            ..Default::default()
        })
        .await,
    );
    denied(
        roles_as(&srv, o.admin)
            .add_role_permissions(pb::AddRolePermissionsRequest {
                team_id: o.id,
                role_id: role.id.clone(),
                permissions: strings(&["organization.manageBilling"]),
            })
            .await,
    );

    let target_after = get_membership_of(&srv, o.id, o.target).await;
    assert_eq!(target_after.etag, target_before.etag, "etag unchanged");
    assert_eq!(
        pb::Membership {
            revision: 0,
            ..target_after
        },
        pb::Membership {
            revision: 0,
            ..target_before
        },
        "membership unchanged"
    );
    let role_after = srv
        .roles()
        .get_role(pb::GetRoleRequest {
            team_id: o.id,
            role_id: role.id.clone(),
        })
        .await
        .expect("role still there")
        .into_inner();
    assert_eq!(
        Role {
            revision: 0,
            ..role_after
        },
        Role {
            revision: 0,
            ..role
        },
        "role unchanged"
    );
    let status = expect_err(
        srv.memberships()
            .get_membership(pb::GetMembershipRequest {
                team_id: o.id,
                member: Some(pb::get_membership_request::Member::UserId(newcomer)),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "no membership was created");
    let roles = srv
        .roles()
        .list_roles(pb::ListRolesRequest {
            team_id: o.id,
            ..Default::default()
        })
        .await
        .expect("list roles")
        .into_inner()
        .roles;
    assert!(
        !roles.iter().any(|r| r.name == "Sneaky"),
        "no role was created"
    );

    let after = all_events(&srv).await;
    assert_eq!(
        after_user.len(),
        before.len() + 1,
        "only user.created in between"
    );
    assert_eq!(
        after.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        after_user.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        "no event for a denied write"
    );
    srv.stop().await;
}
