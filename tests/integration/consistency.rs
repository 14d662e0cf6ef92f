//! Every consistency level answers the same question the same way: the cache and the database
//! agree on grants, inheritance, pending memberships and unknown teams.

use crate::common::*;
use pb::consistency::Requirement;
use tonic::Code;

const LEVELS: [Requirement; 3] = [
    Requirement::MinimizeLatency(true),
    Requirement::FullyConsistent(true),
    Requirement::AtLeastAsFresh(1),
];

async fn check(
    srv: &TestServer,
    user_id: i64,
    team_id: i64,
    permission: &str,
    level: Requirement,
) -> Result<pb::CheckPermissionResponse, tonic::Status> {
    srv.access()
        .check_permission(pb::CheckPermissionRequest {
            user_id,
            team_id,
            permission: permission.into(),
            consistency: Some(pb::Consistency {
                requirement: Some(level),
            }),
        })
        .await
        .map(|r| r.into_inner())
}

async fn levels_agree(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "agree").await;
    let team = create_team(&srv, org.id, "sub").await;
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(create_user(&srv, &format!("agree{i}@example.com")).await.id);
    }
    add_member(&srv, org.id, users[0], "owner_role").await;
    add_member(&srv, org.id, users[1], "admin_role").await;
    add_member(&srv, org.id, users[2], "member_role").await;
    add_member(&srv, team.id, users[2], "restricteduser_role").await;
    add_pending_member(&srv, org.id, users[3], "admin_role").await;
    // (user, team, permission) → (allowed, role_id, reason)
    let cases = [
        (
            users[1],
            team.id,
            "team.update",
            (true, "admin_role", "GRANTED_BY_ORGANIZATION_ROLE"),
        ),
        (
            users[2],
            team.id,
            "team.read",
            (true, "restricteduser_role", "GRANTED_BY_TEAM_ROLE"),
        ),
        (
            users[2],
            team.id,
            "organization.read",
            (true, "member_role", "GRANTED_BY_ORGANIZATION_ROLE"),
        ),
        (users[2], team.id, "team.update", (false, "", "NOT_GRANTED")),
        (
            users[3],
            org.id,
            "team.read",
            (false, "", "NO_ACCEPTED_MEMBERSHIP"),
        ),
        (
            users[0],
            team.id,
            "organization.manageBilling",
            (true, "owner_role", "GRANTED_BY_ORGANIZATION_ROLE"),
        ),
        (
            9_999,
            org.id,
            "team.read",
            (false, "", "NO_ACCEPTED_MEMBERSHIP"),
        ),
    ];
    for level in LEVELS {
        for (user, team_id, permission, (allowed, role_id, reason)) in cases {
            let got = check(&srv, user, team_id, permission, level)
                .await
                .expect("check");
            assert_eq!(
                (got.allowed, got.role_id.as_str(), got.reason.as_str()),
                (allowed, role_id, reason),
                "{level:?}: user {user} team {team_id} {permission}"
            );
        }
        let unknown = check(&srv, users[0], 987_654, "team.read", level)
            .await
            .expect_err("unknown team");
        assert_eq!(unknown.code(), Code::NotFound, "{level:?}");
    }
    srv.stop().await;
}

engine_tests!(levels_agree);
