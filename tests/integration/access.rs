//! AccessService through the real server on every engine: single and batch checks, organization
//! inheritance, pending memberships, effective permissions, and freshness after writes.

use std::collections::BTreeSet;

use crate::common::{
    Engine, TestServer, add_member, add_pending_member, assert_invalid, create_org, create_role,
    create_team, create_user, effective_permissions, expect_err, field_violations, pb, strings,
};
use pb::{CheckPermissionRequest, CheckPermissionResponse, MembershipRole, PermissionList};
use tonic::Code;

engine_tests!(
    check_granted_by_team_role,
    organization_roles_reach_sub_teams,
    pending_or_missing_memberships_grant_nothing,
    union_of_sub_team_and_organization_roles,
    check_validates_its_request,
    batch_checks_in_request_order,
    lists_effective_permissions_and_roles,
    checks_follow_writes,
);

// ---------------------------------------------------------------------------------------------
// Checks and their answers

fn req(user_id: i64, team_id: i64, permission: &str) -> CheckPermissionRequest {
    CheckPermissionRequest {
        user_id,
        team_id,
        permission: permission.into(),
        ..Default::default()
    }
}

/// (allowed, role_id, reason) of a check, whatever else the response carries.
type Answer = (bool, String, String);

fn answer(r: &CheckPermissionResponse) -> Answer {
    (r.allowed, r.role_id.clone(), r.reason.clone())
}

async fn check(srv: &TestServer, user_id: i64, team_id: i64, permission: &str) -> Answer {
    let response = srv
        .access()
        .check_permission(req(user_id, team_id, permission))
        .await
        .unwrap_or_else(|s| panic!("check {permission} of {user_id} in {team_id}: {s:?}"))
        .into_inner();
    answer(&response)
}

fn allowed(role_id: &str, reason: &str) -> Answer {
    (true, role_id.into(), reason.into())
}

fn denied(reason: &str) -> Answer {
    (false, String::new(), reason.into())
}

const BY_TEAM: &str = "GRANTED_BY_TEAM_ROLE";
const BY_ORG: &str = "GRANTED_BY_ORGANIZATION_ROLE";
const NO_MEMBERSHIP: &str = "NO_ACCEPTED_MEMBERSHIP";
const NOT_GRANTED: &str = "NOT_GRANTED";

// ---------------------------------------------------------------------------------------------
// Tests

async fn check_granted_by_team_role(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let admin = create_user(&srv, "admin@acme.test").await.id;
    let plain = create_user(&srv, "plain@acme.test").await.id;
    add_member(&srv, org_id, admin, "admin").await;
    add_member(&srv, org_id, plain, "member").await;

    assert_eq!(
        check(&srv, admin, org_id, "team.update").await,
        allowed("admin_role", BY_TEAM)
    );
    assert_eq!(
        check(&srv, admin, org_id, "organization.attributes.editUsers").await,
        allowed("admin_role", BY_TEAM)
    );
    assert_eq!(
        check(&srv, admin, org_id, "organization.manageBilling").await,
        denied(NOT_GRANTED)
    );
    assert_eq!(
        check(&srv, plain, org_id, "booking.read").await,
        allowed("member_role", BY_TEAM)
    );
    assert_eq!(
        check(&srv, plain, org_id, "team.update").await,
        denied(NOT_GRANTED)
    );
    assert_eq!(
        check(&srv, plain, org_id, "booking.readTeamBookings").await,
        denied(NOT_GRANTED)
    );
    srv.stop().await;
}

async fn organization_roles_reach_sub_teams(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let sub = create_team(&srv, org_id, "sales").await.id;
    let org_admin = create_user(&srv, "orgadmin@acme.test").await.id;
    let team_admin = create_user(&srv, "teamadmin@acme.test").await.id;
    let org_owner = create_user(&srv, "owner@acme.test").await.id;
    add_member(&srv, org_id, org_admin, "admin").await;
    add_member(&srv, org_id, org_owner, "owner").await;
    add_member(&srv, org_id, team_admin, "member").await;
    add_member(&srv, sub, team_admin, "admin").await;

    // No sub-team membership at all: the organization's role reaches the sub-team.
    assert_eq!(
        check(&srv, org_admin, sub, "team.update").await,
        allowed("admin_role", BY_ORG)
    );
    assert_eq!(
        check(&srv, org_owner, sub, "team.manageBilling").await,
        allowed("owner_role", BY_ORG)
    );
    assert_eq!(
        check(&srv, org_admin, sub, "team.manageBilling").await,
        denied(NOT_GRANTED)
    );
    // A sub-team role reaches only its own team, never up to the organization.
    assert_eq!(
        check(&srv, team_admin, sub, "team.update").await,
        allowed("admin_role", BY_TEAM)
    );
    assert_eq!(
        check(&srv, team_admin, org_id, "team.update").await,
        denied(NOT_GRANTED)
    );
    assert_eq!(
        check(&srv, team_admin, sub, "team.read").await.2,
        BY_TEAM,
        "the team's own role first"
    );
    srv.stop().await;
}

async fn pending_or_missing_memberships_grant_nothing(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let sub = create_team(&srv, org_id, "sales").await.id;
    let invited = create_user(&srv, "invited@acme.test").await.id;
    let stranger = create_user(&srv, "stranger@acme.test").await.id;
    let half = create_user(&srv, "half@acme.test").await.id;
    let pending = add_pending_member(&srv, org_id, invited, "admin").await;
    assert!(!pending.accepted);
    add_member(&srv, org_id, half, "restricteduser").await;
    add_pending_member(&srv, sub, half, "admin").await;

    assert_eq!(
        check(&srv, invited, org_id, "team.read").await,
        denied(NO_MEMBERSHIP)
    );
    assert_eq!(
        check(&srv, invited, sub, "team.read").await,
        denied(NO_MEMBERSHIP)
    );
    assert_eq!(
        check(&srv, stranger, org_id, "team.read").await,
        denied(NO_MEMBERSHIP)
    );
    assert_eq!(
        check(&srv, stranger, sub, "booking.read").await,
        denied(NO_MEMBERSHIP)
    );
    // A pending sub-team membership adds nothing to an accepted organization one.
    assert_eq!(
        check(&srv, half, sub, "team.read").await,
        allowed("restricteduser_role", BY_ORG)
    );
    assert_eq!(
        check(&srv, half, sub, "team.update").await,
        denied(NOT_GRANTED)
    );

    let listed = effective_permissions(&srv, invited, org_id).await;
    assert!(
        listed.permissions.is_empty() && listed.roles.is_empty(),
        "{listed:?}"
    );
    let listed = effective_permissions(&srv, stranger, sub).await;
    assert!(
        listed.permissions.is_empty() && listed.roles.is_empty(),
        "{listed:?}"
    );
    srv.stop().await;
}

async fn union_of_sub_team_and_organization_roles(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let sub = create_team(&srv, org_id, "sales").await.id;
    let closer = create_role(&srv, sub, "Closer", &["booking.update", "workflow.create"]).await;
    let u = create_user(&srv, "u@acme.test").await.id;
    add_member(&srv, org_id, u, "member").await;
    add_member(&srv, sub, u, &closer.id).await;

    assert_eq!(
        check(&srv, u, sub, "booking.update").await,
        allowed(&closer.id, BY_TEAM)
    );
    assert_eq!(
        check(&srv, u, sub, "workflow.create").await,
        allowed(&closer.id, BY_TEAM)
    );
    assert_eq!(
        check(&srv, u, sub, "workflow.read").await,
        allowed("member_role", BY_ORG)
    );
    assert_eq!(
        check(&srv, u, sub, "organization.listMembers").await,
        allowed("member_role", BY_ORG)
    );
    assert_eq!(
        check(&srv, u, sub, "workflow.delete").await,
        denied(NOT_GRANTED)
    );
    // In the organization itself only the org membership counts.
    assert_eq!(
        check(&srv, u, org_id, "booking.update").await,
        denied(NOT_GRANTED)
    );

    // An organization custom role with wildcards.
    let wild = create_role(&srv, org_id, "Wild", &["webhook.*", "*.delete"]).await;
    let w = create_user(&srv, "w@acme.test").await.id;
    add_member(&srv, org_id, w, &wild.id).await;
    for p in [
        "webhook.create",
        "webhook.read",
        "eventType.delete",
        "ooo.delete",
    ] {
        assert_eq!(
            check(&srv, w, sub, p).await,
            allowed(&wild.id, BY_ORG),
            "{p}"
        );
        assert_eq!(
            check(&srv, w, org_id, p).await,
            allowed(&wild.id, BY_TEAM),
            "{p}"
        );
    }
    assert_eq!(check(&srv, w, sub, "team.read").await, denied(NOT_GRANTED));
    srv.stop().await;
}

async fn check_validates_its_request(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let u = create_user(&srv, "u@acme.test").await.id;
    add_member(&srv, org_id, u, "owner").await;
    let mut access = srv.access();
    for bad in ["foo.bar", "", "booking.*", "*.*", "team"] {
        let status = expect_err(access.check_permission(req(u, org_id, bad)).await);
        assert_invalid(&status, "permission");
    }
    let status = expect_err(access.check_permission(req(0, org_id, "team.read")).await);
    assert_invalid(&status, "user_id");
    let status = expect_err(access.check_permission(req(u, 0, "team.read")).await);
    assert_invalid(&status, "team_id");
    let status = expect_err(
        access
            .check_permission(req(u, org_id + 999, "team.read"))
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = expect_err(
        access
            .list_effective_permissions(pb::ListEffectivePermissionsRequest {
                user_id: u,
                team_id: org_id + 999,
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    srv.stop().await;
}

async fn batch_checks_in_request_order(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let sub = create_team(&srv, org_id, "sales").await.id;
    let admin = create_user(&srv, "admin@acme.test").await.id;
    let plain = create_user(&srv, "plain@acme.test").await.id;
    let stranger = create_user(&srv, "stranger@acme.test").await.id;
    add_member(&srv, org_id, admin, "admin").await;
    add_member(&srv, org_id, plain, "member").await;
    let mut access = srv.access();

    let checks = vec![
        req(admin, org_id, "team.update"),
        req(plain, org_id, "team.update"),
        req(plain, sub, "booking.read"),
        req(stranger, org_id, "team.read"),
        req(admin, org_id + 999, "team.read"),
        req(admin, sub, "team.delete"),
        req(admin, org_id, "organization.manageBilling"),
    ];
    let results = access
        .batch_check_permissions(pb::BatchCheckPermissionsRequest {
            checks,
            ..Default::default()
        })
        .await
        .expect("batch")
        .into_inner()
        .results;
    assert_eq!(
        results.iter().map(answer).collect::<Vec<_>>(),
        vec![
            allowed("admin_role", BY_TEAM),
            denied(NOT_GRANTED),
            allowed("member_role", BY_ORG),
            denied(NO_MEMBERSHIP),
            denied("TEAM_NOT_FOUND"),
            allowed("admin_role", BY_ORG),
            denied(NOT_GRANTED),
        ]
    );

    // Exactly 100 is fine; 101 and 0 are not.
    let hundred: Vec<_> = (0..100)
        .map(|i| {
            req(
                if i % 2 == 0 { admin } else { plain },
                org_id,
                "team.update",
            )
        })
        .collect();
    let results = access
        .batch_check_permissions(pb::BatchCheckPermissionsRequest {
            checks: hundred,
            ..Default::default()
        })
        .await
        .expect("100 checks")
        .into_inner()
        .results;
    assert_eq!(results.len(), 100);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.allowed, i % 2 == 0, "result {i} in order");
    }
    let status = expect_err(
        access
            .batch_check_permissions(pb::BatchCheckPermissionsRequest {
                checks: (0..101).map(|_| req(admin, org_id, "team.read")).collect(),
                ..Default::default()
            })
            .await,
    );
    assert_invalid(&status, "checks");
    let status = expect_err(
        access
            .batch_check_permissions(pb::BatchCheckPermissionsRequest {
                checks: vec![],
                ..Default::default()
            })
            .await,
    );
    assert_invalid(&status, "checks");

    // A bad entry is named by its position.
    let status = expect_err(
        access
            .batch_check_permissions(pb::BatchCheckPermissionsRequest {
                checks: vec![
                    req(admin, org_id, "team.read"),
                    req(admin, org_id, "team.update"),
                    req(admin, org_id, "foo.bar"),
                    req(0, org_id, "team.read"),
                ],
                ..Default::default()
            })
            .await,
    );
    assert_invalid(&status, "checks[2].permission");
    assert_invalid(&status, "checks[3].user_id");
    assert!(!field_violations(&status).contains(&"checks[0].permission".to_string()));
    srv.stop().await;
}

async fn lists_effective_permissions_and_roles(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let sub = create_team(&srv, org_id, "sales").await.id;
    let closer = create_role(&srv, sub, "Closer", &["booking.update", "team.read"]).await;
    let wild = create_role(&srv, org_id, "Wild", &["webhook.*", "availability.read"]).await;
    let u = create_user(&srv, "u@acme.test").await.id;
    add_member(&srv, org_id, u, &wild.id).await;
    add_member(&srv, sub, u, &closer.id).await;

    let listed = effective_permissions(&srv, u, sub).await;
    let expected: Vec<String> = strings(&[
        "availability.read",
        "booking.update",
        "team.read",
        "webhook.create",
        "webhook.delete",
        "webhook.read",
        "webhook.update",
    ]);
    assert_eq!(listed.permissions, expected, "concrete, sorted, the union");
    assert_eq!(
        listed.roles,
        vec![
            pb::EffectiveRole {
                role_id: closer.id.clone(),
                role_key: closer.key.clone(),
                team_id: sub,
                inherited_from_organization: false,
            },
            pb::EffectiveRole {
                role_id: wild.id.clone(),
                role_key: wild.key.clone(),
                team_id: org_id,
                inherited_from_organization: true,
            },
        ]
    );

    let in_org = effective_permissions(&srv, u, org_id).await;
    assert_eq!(
        in_org.permissions,
        strings(&[
            "availability.read",
            "webhook.create",
            "webhook.delete",
            "webhook.read",
            "webhook.update"
        ])
    );
    assert_eq!(in_org.roles.len(), 1);
    assert!(!in_org.roles[0].inherited_from_organization);
    assert_eq!(in_org.roles[0].team_id, org_id);

    // An organization member without a sub-team membership: one inherited role.
    let v = create_user(&srv, "v@acme.test").await.id;
    add_member(&srv, org_id, v, "restricteduser").await;
    let inherited = effective_permissions(&srv, v, sub).await;
    assert_eq!(
        inherited.permissions,
        strings(&["booking.read", "eventType.read", "team.read"])
    );
    assert_eq!(
        inherited.roles,
        vec![pb::EffectiveRole {
            role_id: "restricteduser_role".into(),
            role_key: "restricteduser".into(),
            team_id: org_id,
            inherited_from_organization: true,
        }]
    );
    let permissions: BTreeSet<&String> = listed.permissions.iter().collect();
    assert_eq!(permissions.len(), listed.permissions.len(), "no duplicates");
    srv.stop().await;
}

async fn checks_follow_writes(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let sub = create_team(&srv, org_id, "sales").await.id;
    let owner = create_user(&srv, "owner@acme.test").await.id;
    let u = create_user(&srv, "u@acme.test").await.id;
    add_member(&srv, org_id, owner, "owner").await;
    let m = add_pending_member(&srv, org_id, u, "member").await;
    let mut memberships = srv.memberships();
    let mut roles = srv.roles();
    let update = |patch: pb::UpdateMembershipRequest| pb::UpdateMembershipRequest {
        team_id: org_id,
        member: Some(pb::update_membership_request::Member::MembershipId(m.id)),
        ..patch
    };

    assert_eq!(
        check(&srv, u, org_id, "team.read").await,
        denied(NO_MEMBERSHIP)
    );
    memberships
        .update_membership(update(pb::UpdateMembershipRequest {
            accepted: Some(true),
            ..Default::default()
        }))
        .await
        .expect("accept");
    assert_eq!(
        check(&srv, u, org_id, "team.read").await,
        allowed("member_role", BY_TEAM)
    );
    assert_eq!(
        check(&srv, u, sub, "team.update").await,
        denied(NOT_GRANTED)
    );

    memberships
        .update_membership(update(pb::UpdateMembershipRequest {
            role: Some(MembershipRole::Admin as i32),
            ..Default::default()
        }))
        .await
        .expect("to ADMIN");
    assert_eq!(
        check(&srv, u, sub, "team.update").await,
        allowed("admin_role", BY_ORG)
    );

    let custom = create_role(&srv, org_id, "Custom", &["team.read"]).await;
    memberships
        .update_membership(update(pb::UpdateMembershipRequest {
            role_id: Some(custom.id.clone()),
            ..Default::default()
        }))
        .await
        .expect("to the custom role");
    assert_eq!(
        check(&srv, u, sub, "team.update").await,
        denied(NOT_GRANTED)
    );
    assert_eq!(
        check(&srv, u, sub, "team.read").await,
        allowed(&custom.id, BY_ORG)
    );

    roles
        .update_role(pb::UpdateRoleRequest {
            team_id: org_id,
            role_id: custom.id.clone(),
            permissions: Some(PermissionList {
                permissions: strings(&["team.update"]),
            }),
            ..Default::default()
        })
        .await
        .expect("replace the role's permissions");
    assert_eq!(
        check(&srv, u, sub, "team.update").await,
        allowed(&custom.id, BY_ORG)
    );
    assert_eq!(check(&srv, u, sub, "team.read").await, denied(NOT_GRANTED));

    roles
        .add_role_permissions(pb::AddRolePermissionsRequest {
            team_id: org_id,
            role_id: custom.id.clone(),
            permissions: strings(&["booking.read"]),
        })
        .await
        .expect("add");
    assert_eq!(
        check(&srv, u, org_id, "booking.read").await,
        allowed(&custom.id, BY_TEAM)
    );
    roles
        .remove_role_permissions(pb::RemoveRolePermissionsRequest {
            team_id: org_id,
            role_id: custom.id.clone(),
            permissions: strings(&["booking.read"]),
        })
        .await
        .expect("remove");
    assert_eq!(
        check(&srv, u, org_id, "booking.read").await,
        denied(NOT_GRANTED)
    );

    roles
        .delete_role(pb::DeleteRoleRequest {
            team_id: org_id,
            role_id: custom.id.clone(),
            ..Default::default()
        })
        .await
        .expect("delete the role");
    assert_eq!(
        check(&srv, u, org_id, "booking.read").await,
        allowed("member_role", BY_TEAM)
    );
    assert_eq!(
        check(&srv, u, org_id, "team.update").await,
        denied(NOT_GRANTED)
    );

    memberships
        .update_membership(update(pb::UpdateMembershipRequest {
            accepted: Some(false),
            ..Default::default()
        }))
        .await
        .expect("back to pending");
    assert_eq!(
        check(&srv, u, org_id, "booking.read").await,
        denied(NO_MEMBERSHIP)
    );

    memberships
        .delete_membership(pb::DeleteMembershipRequest {
            team_id: org_id,
            member: Some(pb::delete_membership_request::Member::UserId(owner)),
            ..Default::default()
        })
        .await
        .expect_err("the last owner stays");
    assert_eq!(
        check(&srv, owner, sub, "team.delete").await,
        allowed("owner_role", BY_ORG)
    );
    memberships
        .delete_membership(pb::DeleteMembershipRequest {
            team_id: org_id,
            member: Some(pb::delete_membership_request::Member::MembershipId(m.id)),
            ..Default::default()
        })
        .await
        .expect("delete the membership");
    assert_eq!(
        check(&srv, u, org_id, "booking.read").await,
        denied(NO_MEMBERSHIP)
    );
    srv.stop().await;
}
