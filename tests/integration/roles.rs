//! RoleService through the real server on every engine: custom roles' validation and writes,
//! the immutable system roles and their exact permission sets, the permission catalog, and
//! custom roles assigned to memberships.

use std::collections::{BTreeSet, HashSet};

use crate::common::{
    Engine, TestServer, add_member, assert_invalid, create_org, create_role, create_team,
    create_user, effective_permissions, expect_err, get_membership_of, new_role, pb, reason, set,
    strings,
};
use pb::{MembershipRole, PermissionList, PermissionScope, Role, RoleType};
use tonic::{Code, Status};
use tonic_types::StatusExt;

engine_tests!(
    creates_a_custom_role,
    create_role_validates_fields,
    create_role_validates_permissions_per_scope,
    duplicate_names_and_keys_already_exist,
    update_role_replaces_and_clears,
    system_roles_are_immutable,
    gets_roles_by_id_and_key_within_their_team,
    lists_roles_with_system_and_organization_roles,
    add_and_remove_permissions_are_idempotent,
    delete_role_reassigns_memberships,
    lists_the_permission_catalog,
    system_roles_hold_exactly_the_designed_permissions,
    custom_roles_on_memberships,
    role_references_are_exact,
);

// ---------------------------------------------------------------------------------------------
// Helpers (the shared fixtures are in `common`)

/// (field, description) of every `google.rpc.BadRequest` violation.
fn violations(status: &Status) -> Vec<(String, String)> {
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.description.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// INVALID_ARGUMENT with a violation whose description names `text`.
#[track_caller]
fn assert_invalid_naming(status: &Status, text: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let found = violations(status);
    assert!(
        found
            .iter()
            .any(|(_, description)| description.contains(text)),
        "a violation names {text:?}: {found:?}"
    );
}

#[track_caller]
fn assert_code_reason(status: &Status, code: Code, expected: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(status).as_deref(), Some(expected), "{status:?}");
}

async fn get_role(srv: &TestServer, team_id: i64, role_id: &str) -> Result<Role, Status> {
    srv.roles()
        .get_role(pb::GetRoleRequest {
            team_id,
            role_id: role_id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn catalog(srv: &TestServer) -> Vec<pb::PermissionCatalogEntry> {
    srv.roles()
        .list_permission_catalog(pb::ListPermissionCatalogRequest {})
        .await
        .expect("list permission catalog")
        .into_inner()
        .permissions
}

/// The permissions the user holds in the team.
async fn effective(srv: &TestServer, user_id: i64, team_id: i64) -> BTreeSet<String> {
    effective_permissions(srv, user_id, team_id)
        .await
        .permissions
        .into_iter()
        .collect()
}

/// The default permission catalog, written out: 38 team-and-organization entries, then
/// 31 organization-only ones.
const TEAM_SCOPE: &[&str] = &[
    "role.create",
    "role.read",
    "role.update",
    "role.delete",
    "eventType.create",
    "eventType.read",
    "eventType.update",
    "eventType.delete",
    "team.read",
    "team.update",
    "team.delete",
    "team.invite",
    "team.remove",
    "team.listMembers",
    "team.listMembersPrivate",
    "team.changeMemberRole",
    "team.impersonate",
    "booking.read",
    "booking.readTeamBookings",
    "booking.readRecordings",
    "booking.update",
    "booking.updateTeamBookings",
    "booking.readTeamAuditLogs",
    "insights.read",
    "workflow.create",
    "workflow.read",
    "workflow.update",
    "workflow.delete",
    "routingForm.create",
    "routingForm.read",
    "routingForm.update",
    "routingForm.delete",
    "webhook.create",
    "webhook.read",
    "webhook.update",
    "webhook.delete",
    "featureOptIn.read",
    "featureOptIn.update",
];

const ORGANIZATION_ONLY: &[&str] = &[
    "team.create",
    "team.manageBilling",
    "organization.create",
    "organization.read",
    "organization.update",
    "organization.listMembers",
    "organization.listMembersPrivate",
    "organization.invite",
    "organization.remove",
    "organization.changeMemberRole",
    "organization.impersonate",
    "organization.manageBilling",
    "organization.attributes.create",
    "organization.attributes.read",
    "organization.attributes.update",
    "organization.attributes.delete",
    "organization.attributes.editUsers",
    "booking.readOrgBookings",
    "booking.readOrgAuditLogs",
    "availability.create",
    "availability.read",
    "availability.update",
    "availability.delete",
    "ooo.create",
    "ooo.read",
    "ooo.update",
    "ooo.delete",
    "watchlist.create",
    "watchlist.read",
    "watchlist.update",
    "watchlist.delete",
];

fn whole_catalog() -> BTreeSet<String> {
    TEAM_SCOPE
        .iter()
        .chain(ORGANIZATION_ONLY)
        .map(|s| s.to_string())
        .collect()
}

fn resource_of(p: &str) -> &str {
    p.rsplit_once('.').map(|(r, _)| r).unwrap_or(p)
}

fn action_of(p: &str) -> &str {
    p.rsplit_once('.').map(|(_, a)| a).unwrap_or(p)
}

/// The system roles' permissions as designed, derived from the written-out catalog.
fn expected_system_permissions(role_id: &str) -> BTreeSet<String> {
    let all = whole_catalog();
    let admin: BTreeSet<String> = all
        .iter()
        .filter(|p| *p != "team.manageBilling" && *p != "organization.manageBilling")
        .cloned()
        .collect();
    match role_id {
        "owner_role" => set(&["*.*"]),
        "admin_role" => admin,
        "member_role" => all
            .iter()
            .filter(|p| {
                action_of(p) == "read"
                    || *p == "team.listMembers"
                    || *p == "organization.listMembers"
            })
            .cloned()
            .collect(),
        "superuser_role" => admin
            .iter()
            .filter(|p| {
                let resource = resource_of(p);
                resource != "role"
                    && resource != "organization"
                    && *p != "team.delete"
                    && *p != "team.changeMemberRole"
            })
            .cloned()
            .collect(),
        "restricteduser_role" => set(&["team.read", "eventType.read", "booking.read"]),
        other => panic!("not a system role: {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

async fn creates_a_custom_role(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let created = srv
        .roles()
        .create_role(pb::CreateRoleRequest {
            team_id: org_id,
            name: "  Booking Manager  ".into(),
            color: "#abc".into(),
            description: "Manages bookings".into(),
            permissions: strings(&[
                "team.read",
                "booking.update",
                "booking.read",
                "eventType.read",
            ]),
            ..Default::default()
        })
        .await
        .expect("create role")
        .into_inner();
    assert!(!created.id.is_empty());
    assert_eq!(created.r#type(), RoleType::Custom);
    assert_eq!(created.name, "Booking Manager", "the name is trimmed");
    assert_eq!(
        created.key, "booking-manager",
        "the key derives from the name"
    );
    assert_eq!(created.team_id, Some(org_id));
    assert_eq!(created.color.as_deref(), Some("#abc"));
    assert_eq!(created.description.as_deref(), Some("Manages bookings"));
    assert_eq!(
        created.permissions,
        strings(&[
            "booking.read",
            "booking.update",
            "eventType.read",
            "team.read"
        ]),
        "permissions come back sorted"
    );
    assert!(!created.etag.is_empty());
    assert!(created.created_at.is_some() && created.updated_at.is_some());

    let got = get_role(&srv, org_id, &created.id).await.expect("get role");
    assert_eq!(stored(&got), stored(&created));

    // An explicit key is kept; `#AABBCC` is a color too; duplicates in the list collapse.
    let explicit = srv
        .roles()
        .create_role(pb::CreateRoleRequest {
            team_id: org_id,
            key: "ops.lead".into(),
            name: "Ops lead".into(),
            color: "#AABBCC".into(),
            permissions: strings(&["team.read", "team.read"]),
            ..Default::default()
        })
        .await
        .expect("create role with key")
        .into_inner();
    assert_eq!(explicit.key, "ops.lead");
    assert_eq!(explicit.color.as_deref(), Some("#AABBCC"));
    assert_eq!(explicit.description, None, "no description is absent");
    assert_eq!(explicit.permissions, strings(&["team.read"]));
    assert_ne!(explicit.id, created.id);

    // A role with no permissions at all.
    let empty = create_role(&srv, org_id, "Nobody", &[]).await;
    assert!(empty.permissions.is_empty());
    assert_eq!(empty.color, None);
    srv.stop().await;
}

async fn create_role_validates_fields(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let mut roles = srv.roles();

    for bad_name in ["", "   ", &"x".repeat(101)] {
        let status = expect_err(roles.create_role(new_role(org_id, bad_name, &[])).await);
        assert_invalid(&status, "name");
    }
    let longest = create_role(&srv, org_id, &"n".repeat(100), &[]).await;
    assert_eq!(longest.name.chars().count(), 100);

    for bad_color in ["red", "#abcd", "abc", "#ggg", "#AABBC"] {
        let status = expect_err(
            roles
                .create_role(pb::CreateRoleRequest {
                    color: bad_color.into(),
                    ..new_role(org_id, &format!("Color {bad_color}"), &[])
                })
                .await,
        );
        assert_invalid(&status, "color");
    }

    let status = expect_err(
        roles
            .create_role(pb::CreateRoleRequest {
                description: "d".repeat(1001),
                ..new_role(org_id, "Too long", &[])
            })
            .await,
    );
    assert_invalid(&status, "description");
    let described = roles
        .create_role(pb::CreateRoleRequest {
            description: "d".repeat(1000),
            ..new_role(org_id, "Long enough", &[])
        })
        .await
        .expect("a 1000-character description")
        .into_inner();
    assert_eq!(described.description.map(|d| d.chars().count()), Some(1000));

    let status = expect_err(
        roles
            .create_role(new_role(org_id, "Unknown", &["team.read", "foo.bar"]))
            .await,
    );
    assert_invalid_naming(&status, "foo.bar");

    for reserved in [
        "admin",
        "owner_role",
        "org:admin",
        "MEMBER",
        "user",
        "superuser",
    ] {
        let status = expect_err(
            roles
                .create_role(pb::CreateRoleRequest {
                    key: reserved.into(),
                    ..new_role(org_id, &format!("Reserved {reserved}"), &[])
                })
                .await,
        );
        assert_invalid(&status, "key");
    }

    // Every bad field is named in one answer.
    let status = expect_err(
        roles
            .create_role(pb::CreateRoleRequest {
                team_id: org_id,
                name: String::new(),
                color: "red".into(),
                description: "d".repeat(1001),
                ..Default::default()
            })
            .await,
    );
    for field in ["name", "color", "description"] {
        assert_invalid(&status, field);
    }

    let status = expect_err(
        roles
            .create_role(new_role(org_id + 999, "Nowhere", &[]))
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    srv.stop().await;
}

async fn create_role_validates_permissions_per_scope(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let sub = create_team(&srv, org_id, "sales").await.id;
    let mut roles = srv.roles();

    for (i, bad) in [
        "team.create",
        "organization.read",
        "organization.attributes.read",
        "booking.readOrgBookings",
        "booking.*",
        "*.read",
        "*.*",
    ]
    .into_iter()
    .enumerate()
    {
        let status = expect_err(
            roles
                .create_role(new_role(sub, &format!("Sub {i}"), &["team.read", bad]))
                .await,
        );
        assert_invalid_naming(&status, bad);
    }
    let fine = create_role(&srv, sub, "Sub fine", &["booking.update", "team.read"]).await;
    assert_eq!(fine.team_id, Some(sub));
    assert_eq!(fine.permissions, strings(&["booking.update", "team.read"]));

    let wildcards = create_role(
        &srv,
        org_id,
        "Org wildcards",
        &[
            "booking.*",
            "*.read",
            "organization.attributes.*",
            "team.create",
        ],
    )
    .await;
    assert_eq!(
        wildcards.permissions,
        strings(&[
            "*.read",
            "booking.*",
            "organization.attributes.*",
            "team.create"
        ])
    );
    let everything = create_role(&srv, org_id, "Org everything", &["*.*"]).await;
    assert_eq!(everything.permissions, strings(&["*.*"]));

    for (i, bad) in [
        "nope.*", "*.nope", "foo.bar", "booking", "booking.", ".read", "*",
    ]
    .into_iter()
    .enumerate()
    {
        let status = expect_err(
            roles
                .create_role(new_role(org_id, &format!("Org bad {i}"), &[bad]))
                .await,
        );
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
        if !bad.is_empty() {
            assert_invalid_naming(&status, bad);
        }
    }
    srv.stop().await;
}

async fn duplicate_names_and_keys_already_exist(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let sub = create_team(&srv, org_id, "sales").await.id;
    let mut roles = srv.roles();
    let first = create_role(&srv, org_id, "Dispatcher", &["team.read"]).await;

    let status = expect_err(roles.create_role(new_role(org_id, "Dispatcher", &[])).await);
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    let status = expect_err(
        roles
            .create_role(new_role(org_id, "  Dispatcher ", &[]))
            .await,
    );
    assert_eq!(
        status.code(),
        Code::AlreadyExists,
        "the trimmed name is compared: {status:?}"
    );

    // The same name in another team is fine.
    let other = create_role(&srv, sub, "Dispatcher", &["team.read"]).await;
    assert_eq!(other.key, first.key);

    let status = expect_err(
        roles
            .create_role(pb::CreateRoleRequest {
                key: first.key.clone(),
                ..new_role(org_id, "Another name", &[])
            })
            .await,
    );
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");

    // Renaming onto a taken name is ALREADY_EXISTS too; renaming to itself is fine.
    let second = create_role(&srv, org_id, "Planner", &[]).await;
    let status = expect_err(
        roles
            .update_role(pb::UpdateRoleRequest {
                team_id: org_id,
                role_id: second.id.clone(),
                name: Some("Dispatcher".into()),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    roles
        .update_role(pb::UpdateRoleRequest {
            team_id: org_id,
            role_id: second.id.clone(),
            name: Some("Planner".into()),
            ..Default::default()
        })
        .await
        .expect("renaming to its own name");
    srv.stop().await;
}

async fn update_role_replaces_and_clears(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let mut roles = srv.roles();
    let created = roles
        .create_role(pb::CreateRoleRequest {
            color: "#123456".into(),
            description: "First".into(),
            ..new_role(org_id, "Editor", &["team.read", "booking.read"])
        })
        .await
        .expect("create role")
        .into_inner();
    let update = |req: pb::UpdateRoleRequest| pb::UpdateRoleRequest {
        team_id: org_id,
        role_id: created.id.clone(),
        ..req
    };

    // Present permissions replace the whole set.
    let replaced = roles
        .update_role(update(pb::UpdateRoleRequest {
            permissions: Some(PermissionList {
                permissions: strings(&["workflow.read", "eventType.update"]),
            }),
            ..Default::default()
        }))
        .await
        .expect("replace permissions")
        .into_inner();
    assert_eq!(
        replaced.permissions,
        strings(&["eventType.update", "workflow.read"])
    );
    assert_ne!(replaced.etag, created.etag, "etag changes on write");
    assert_eq!(replaced.name, "Editor");
    assert_eq!(replaced.color.as_deref(), Some("#123456"));
    assert_eq!(replaced.description.as_deref(), Some("First"));

    // Absent permissions are left alone.
    let renamed = roles
        .update_role(update(pb::UpdateRoleRequest {
            name: Some("  Senior editor ".into()),
            description: Some("Second".into()),
            ..Default::default()
        }))
        .await
        .expect("rename")
        .into_inner();
    assert_eq!(renamed.name, "Senior editor");
    assert_eq!(renamed.description.as_deref(), Some("Second"));
    assert_eq!(renamed.permissions, replaced.permissions);
    assert_eq!(renamed.key, created.key, "renaming keeps the key");

    // Present and empty clears: permissions, color, description.
    let cleared = roles
        .update_role(update(pb::UpdateRoleRequest {
            color: Some(String::new()),
            description: Some(String::new()),
            permissions: Some(PermissionList {
                permissions: vec![],
            }),
            ..Default::default()
        }))
        .await
        .expect("clear")
        .into_inner();
    assert!(cleared.permissions.is_empty(), "{cleared:?}");
    assert_eq!(cleared.color, None);
    assert_eq!(cleared.description, None);
    assert_eq!(cleared.name, "Senior editor");
    let got = get_role(&srv, org_id, &created.id).await.expect("get role");
    assert_eq!(
        stored(&got),
        stored(&cleared),
        "the stored role is the returned one"
    );

    // A stale etag is ABORTED, the current one works.
    let status = expect_err(
        roles
            .update_role(update(pb::UpdateRoleRequest {
                name: Some("Stale".into()),
                etag: Some(created.etag.clone()),
                ..Default::default()
            }))
            .await,
    );
    assert_code_reason(&status, Code::Aborted, "ETAG_MISMATCH");
    assert_eq!(
        get_role(&srv, org_id, &created.id).await.unwrap().name,
        "Senior editor"
    );
    let fresh = roles
        .update_role(update(pb::UpdateRoleRequest {
            color: Some("#fff".into()),
            etag: Some(cleared.etag.clone()),
            ..Default::default()
        }))
        .await
        .expect("update with the current etag")
        .into_inner();
    assert_eq!(fresh.color.as_deref(), Some("#fff"));

    // Bad fields on update.
    let status = expect_err(
        roles
            .update_role(update(pb::UpdateRoleRequest {
                name: Some(" ".into()),
                color: Some("blue".into()),
                description: Some("d".repeat(1001)),
                ..Default::default()
            }))
            .await,
    );
    for field in ["name", "color", "description"] {
        assert_invalid(&status, field);
    }
    let status = expect_err(
        roles
            .update_role(update(pb::UpdateRoleRequest {
                permissions: Some(PermissionList {
                    permissions: strings(&["team.read", "foo.bar"]),
                }),
                ..Default::default()
            }))
            .await,
    );
    assert_invalid_naming(&status, "foo.bar");
    srv.stop().await;
}

async fn system_roles_are_immutable(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let mut roles = srv.roles();
    for (team_id, role_id) in [(0, "admin_role"), (org_id, "admin_role"), (org_id, "admin")] {
        let status = expect_err(
            roles
                .update_role(pb::UpdateRoleRequest {
                    team_id,
                    role_id: role_id.into(),
                    name: Some("Boss".into()),
                    ..Default::default()
                })
                .await,
        );
        assert_code_reason(&status, Code::FailedPrecondition, "SYSTEM_ROLE_IMMUTABLE");
        let status = expect_err(
            roles
                .delete_role(pb::DeleteRoleRequest {
                    team_id,
                    role_id: role_id.into(),
                    ..Default::default()
                })
                .await,
        );
        assert_code_reason(&status, Code::FailedPrecondition, "SYSTEM_ROLE_IMMUTABLE");
        let status = expect_err(
            roles
                .add_role_permissions(pb::AddRolePermissionsRequest {
                    team_id,
                    role_id: role_id.into(),
                    permissions: strings(&["team.manageBilling"]),
                })
                .await,
        );
        assert_code_reason(&status, Code::FailedPrecondition, "SYSTEM_ROLE_IMMUTABLE");
        let status = expect_err(
            roles
                .remove_role_permissions(pb::RemoveRolePermissionsRequest {
                    team_id,
                    role_id: role_id.into(),
                    permissions: strings(&["team.read"]),
                })
                .await,
        );
        assert_code_reason(&status, Code::FailedPrecondition, "SYSTEM_ROLE_IMMUTABLE");
    }
    for role_id in [
        "owner_role",
        "member_role",
        "superuser_role",
        "restricteduser_role",
    ] {
        let status = expect_err(
            roles
                .delete_role(pb::DeleteRoleRequest {
                    role_id: role_id.into(),
                    ..Default::default()
                })
                .await,
        );
        assert_code_reason(&status, Code::FailedPrecondition, "SYSTEM_ROLE_IMMUTABLE");
    }
    let admin = get_role(&srv, 0, "admin_role").await.expect("admin_role");
    assert_eq!(admin.name, "Admin");
    assert_eq!(
        admin.permissions,
        expected_system_permissions("admin_role")
            .into_iter()
            .collect::<Vec<_>>()
    );
    srv.stop().await;
}

async fn gets_roles_by_id_and_key_within_their_team(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let sub = create_team(&srv, org_id, "sales").await.id;
    let other_org = create_org(&srv, "globex").await.id;
    let role = create_role(&srv, org_id, "Reviewer", &["booking.read"]).await;
    let sub_role = create_role(&srv, sub, "Seller", &["booking.update"]).await;

    assert_eq!(
        stored(&get_role(&srv, org_id, &role.id).await.unwrap()),
        stored(&role)
    );
    assert_eq!(
        stored(&get_role(&srv, 0, &role.id).await.unwrap()),
        stored(&role),
        "an id alone works"
    );
    assert_eq!(
        stored(&get_role(&srv, org_id, "reviewer").await.unwrap()),
        stored(&role),
        "a key within the team"
    );
    assert_eq!(
        stored(&get_role(&srv, sub, "seller").await.unwrap()),
        stored(&sub_role)
    );

    // Another team's id: NOT_FOUND, by id and by key.
    for (team_id, reference) in [
        (other_org, role.id.as_str()),
        (other_org, "reviewer"),
        (org_id, sub_role.id.as_str()),
        (org_id, "seller"),
    ] {
        let status = expect_err_role(get_role(&srv, team_id, reference).await);
        assert_code_reason(&status, Code::NotFound, "ROLE_NOT_FOUND");
    }
    let status = expect_err_role(get_role(&srv, org_id, "no-such-role").await);
    assert_code_reason(&status, Code::NotFound, "ROLE_NOT_FOUND");
    let status = expect_err_role(get_role(&srv, org_id + 999, &role.id).await);
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = expect_err_role(get_role(&srv, org_id, "").await);
    assert_invalid(&status, "role_id");

    // Writes through another team's id are NOT_FOUND too, and change nothing.
    let mut roles = srv.roles();
    let status = expect_err(
        roles
            .update_role(pb::UpdateRoleRequest {
                team_id: other_org,
                role_id: role.id.clone(),
                name: Some("Hijacked".into()),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = expect_err(
        roles
            .delete_role(pb::DeleteRoleRequest {
                team_id: other_org,
                role_id: role.id.clone(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = expect_err(
        roles
            .add_role_permissions(pb::AddRolePermissionsRequest {
                team_id: other_org,
                role_id: role.id.clone(),
                permissions: strings(&["team.read"]),
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(
        stored(&get_role(&srv, org_id, &role.id).await.unwrap()),
        stored(&role)
    );

    // System roles: by id, key or alias, with or without a team.
    for (team_id, reference, id) in [
        (0, "owner_role", "owner_role"),
        (org_id, "owner_role", "owner_role"),
        (0, "member", "member_role"),
        (sub, "superuser", "superuser_role"),
        (org_id, "restricteduser_role", "restricteduser_role"),
    ] {
        let got = get_role(&srv, team_id, reference)
            .await
            .unwrap_or_else(|s| panic!("{reference} in {team_id}: {s:?}"));
        assert_eq!(got.id, id);
        assert_eq!(got.r#type(), RoleType::System);
        assert_eq!(got.team_id, None);
        assert!(!got.etag.is_empty());
    }
    srv.stop().await;
}

/// A role as stored: without the `revision` a write response carries.
fn stored(role: &Role) -> Role {
    Role {
        revision: 0,
        ..role.clone()
    }
}

fn expect_err_role(result: Result<Role, Status>) -> Status {
    match result {
        Ok(role) => panic!("expected an error, got {role:?}"),
        Err(status) => status,
    }
}

async fn list_all_roles(srv: &TestServer, team_id: i64, page_size: i32) -> Vec<Role> {
    let mut out = Vec::new();
    let mut token = String::new();
    for _ in 0..100 {
        let page = srv
            .roles()
            .list_roles(pb::ListRolesRequest {
                team_id,
                page_size,
                page_token: token.clone(),
            })
            .await
            .unwrap_or_else(|s| panic!("list roles of {team_id}: {s:?}"))
            .into_inner();
        if page_size > 0 {
            assert!(page.roles.len() <= page_size as usize);
        }
        out.extend(page.roles);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
    panic!("ListRoles did not finish in 100 pages");
}

async fn lists_roles_with_system_and_organization_roles(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let sub = create_team(&srv, org_id, "sales").await.id;
    let sibling = create_team(&srv, org_id, "support").await.id;
    let other_org = create_org(&srv, "globex").await.id;
    let org_a = create_role(&srv, org_id, "Org A", &["team.read"]).await;
    let org_b = create_role(&srv, org_id, "Org B", &["team.read"]).await;
    let sub_role = create_role(&srv, sub, "Sub", &["team.read"]).await;
    let _sibling_role = create_role(&srv, sibling, "Sibling", &["team.read"]).await;
    let _foreign = create_role(&srv, other_org, "Foreign", &["team.read"]).await;
    let system: BTreeSet<String> = set(&[
        "owner_role",
        "admin_role",
        "member_role",
        "superuser_role",
        "restricteduser_role",
    ]);

    let ids = |roles: &[Role]| -> BTreeSet<String> { roles.iter().map(|r| r.id.clone()).collect() };

    let of_org = list_all_roles(&srv, org_id, 0).await;
    let mut expected = system.clone();
    expected.extend([org_a.id.clone(), org_b.id.clone()]);
    assert_eq!(ids(&of_org), expected);
    assert_eq!(of_org.len(), 7);
    for r in &of_org {
        let expected_type = if system.contains(&r.id) {
            RoleType::System
        } else {
            RoleType::Custom
        };
        assert_eq!(r.r#type(), expected_type, "{r:?}");
    }

    let of_sub = list_all_roles(&srv, sub, 0).await;
    expected.insert(sub_role.id.clone());
    assert_eq!(ids(&of_sub), expected);
    assert_eq!(of_sub.len(), 8);

    // Pages of 2: every role exactly once, in the same order as one page.
    let paged = list_all_roles(&srv, sub, 2).await;
    let paged_ids: Vec<String> = paged.iter().map(|r| r.id.clone()).collect();
    let unique: HashSet<&String> = paged_ids.iter().collect();
    assert_eq!(
        unique.len(),
        paged_ids.len(),
        "no duplicates: {paged_ids:?}"
    );
    assert_eq!(ids(&paged), expected);
    let whole: Vec<String> = of_sub.iter().map(|r| r.id.clone()).collect();
    assert_eq!(paged_ids, whole);

    let status = expect_err(
        srv.roles()
            .list_roles(pb::ListRolesRequest {
                team_id: org_id + 999,
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = expect_err(
        srv.roles()
            .list_roles(pb::ListRolesRequest {
                team_id: org_id,
                page_token: "garbage!".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    srv.stop().await;
}

async fn add_and_remove_permissions_are_idempotent(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let sub = create_team(&srv, org_id, "sales").await.id;
    let role = create_role(&srv, org_id, "Grower", &["team.read"]).await;
    let mut roles = srv.roles();
    let add = |permissions: &[&str]| pb::AddRolePermissionsRequest {
        team_id: org_id,
        role_id: role.id.clone(),
        permissions: strings(permissions),
    };
    let remove = |permissions: &[&str]| pb::RemoveRolePermissionsRequest {
        team_id: org_id,
        role_id: role.id.clone(),
        permissions: strings(permissions),
    };

    let once = roles
        .add_role_permissions(add(&["booking.read", "organization.read"]))
        .await
        .expect("add")
        .into_inner();
    assert_eq!(
        once.permissions,
        strings(&["booking.read", "organization.read", "team.read"])
    );
    assert_ne!(once.etag, role.etag);
    let twice = roles
        .add_role_permissions(add(&["booking.read", "organization.read"]))
        .await
        .expect("add again")
        .into_inner();
    assert_eq!(
        twice.permissions, once.permissions,
        "adding twice gives the same set"
    );

    let removed = roles
        .remove_role_permissions(remove(&["organization.read"]))
        .await
        .expect("remove")
        .into_inner();
    assert_eq!(removed.permissions, strings(&["booking.read", "team.read"]));
    let absent = roles
        .remove_role_permissions(remove(&["organization.read", "webhook.delete"]))
        .await
        .expect("remove absent")
        .into_inner();
    assert_eq!(
        absent.permissions, removed.permissions,
        "removing absent ones changes nothing"
    );
    assert_eq!(
        get_role(&srv, org_id, &role.id).await.unwrap().permissions,
        removed.permissions
    );

    let status = expect_err(roles.add_role_permissions(add(&["foo.bar"])).await);
    assert_invalid_naming(&status, "foo.bar");
    let status = expect_err(roles.add_role_permissions(add(&[])).await);
    assert_invalid(&status, "permissions");
    let status = expect_err(roles.remove_role_permissions(remove(&[])).await);
    assert_invalid(&status, "permissions");

    // A sub-team role's scope holds on Add too.
    let sub_role = create_role(&srv, sub, "Sub grower", &["team.read"]).await;
    for bad in ["team.create", "booking.*"] {
        let status = expect_err(
            roles
                .add_role_permissions(pb::AddRolePermissionsRequest {
                    team_id: sub,
                    role_id: sub_role.id.clone(),
                    permissions: strings(&[bad]),
                })
                .await,
        );
        assert_invalid_naming(&status, bad);
    }
    let wild = roles
        .add_role_permissions(add(&["workflow.*"]))
        .await
        .expect("an org role takes a wildcard")
        .into_inner();
    assert!(wild.permissions.contains(&"workflow.*".to_string()));
    srv.stop().await;
}

async fn delete_role_reassigns_memberships(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let sub = create_team(&srv, org_id, "sales").await.id;
    let owner = create_user(&srv, "owner@acme.test").await.id;
    let alice = create_user(&srv, "alice@acme.test").await.id;
    let bob = create_user(&srv, "bob@acme.test").await.id;
    add_member(&srv, org_id, owner, "owner_role").await;
    let doomed = create_role(&srv, org_id, "Doomed", &["booking.read"]).await;
    let heir = create_role(&srv, org_id, "Heir", &["team.read"]).await;

    // Alice is an ADMIN through the custom role; Bob uses it in the org and in a sub-team.
    let alice_m = srv
        .memberships()
        .create_membership(pb::CreateMembershipRequest {
            team_id: org_id,
            user_id: alice,
            role: MembershipRole::Admin as i32,
            role_id: doomed.id.clone(),
            accepted: true,
            ..Default::default()
        })
        .await
        .expect("alice with the custom role")
        .into_inner();
    assert_eq!(alice_m.role(), MembershipRole::Admin);
    assert_eq!(alice_m.role_id, doomed.id);
    add_member(&srv, org_id, bob, &doomed.id).await;
    add_member(&srv, sub, bob, &doomed.key).await;

    let mut roles = srv.roles();
    let status = expect_err(
        roles
            .delete_role(pb::DeleteRoleRequest {
                team_id: org_id,
                role_id: doomed.id.clone(),
                etag: Some("stale".into()),
                ..Default::default()
            })
            .await,
    );
    assert_code_reason(&status, Code::Aborted, "ETAG_MISMATCH");
    for bad in [doomed.id.as_str(), "no-such-role"] {
        let status = expect_err(
            roles
                .delete_role(pb::DeleteRoleRequest {
                    team_id: org_id,
                    role_id: doomed.id.clone(),
                    reassign_role_id: bad.into(),
                    ..Default::default()
                })
                .await,
        );
        assert_invalid(&status, "reassign_role_id");
    }
    assert_eq!(
        get_membership_of(&srv, org_id, alice).await.role_id,
        doomed.id,
        "nothing moved yet"
    );

    let deleted = roles
        .delete_role(pb::DeleteRoleRequest {
            team_id: org_id,
            role_id: doomed.id.clone(),
            etag: Some(doomed.etag.clone()),
            ..Default::default()
        })
        .await
        .expect("delete role")
        .into_inner();
    assert_eq!(deleted.reassigned_memberships, 3);
    let status = expect_err_role(get_role(&srv, org_id, &doomed.id).await);
    assert_code_reason(&status, Code::NotFound, "ROLE_NOT_FOUND");

    let alice_after = get_membership_of(&srv, org_id, alice).await;
    assert_eq!(alice_after.role_id, "member_role");
    assert_eq!(alice_after.role_key, "member");
    assert_eq!(
        alice_after.role(),
        MembershipRole::Admin,
        "the base level stays"
    );
    assert_ne!(alice_after.etag, alice_m.etag);
    for team_id in [org_id, sub] {
        let m = get_membership_of(&srv, team_id, bob).await;
        assert_eq!(m.role_id, "member_role", "team {team_id}");
        assert_eq!(m.role(), MembershipRole::Member);
    }
    let owner_m = get_membership_of(&srv, org_id, owner).await;
    assert_eq!(
        owner_m.role_id, "owner_role",
        "other memberships are untouched"
    );

    // An explicit heir; a role nobody uses moves nothing.
    let second = create_role(&srv, org_id, "Second", &["booking.read"]).await;
    add_member(&srv, sub, alice, &second.id).await;
    let deleted = roles
        .delete_role(pb::DeleteRoleRequest {
            team_id: org_id,
            role_id: second.key.clone(),
            reassign_role_id: heir.id.clone(),
            ..Default::default()
        })
        .await
        .expect("delete with reassign_role_id")
        .into_inner();
    assert_eq!(deleted.reassigned_memberships, 1);
    let m = get_membership_of(&srv, sub, alice).await;
    assert_eq!(m.role_id, heir.id);
    assert_eq!(m.role_key, heir.key);

    let unused = create_role(&srv, org_id, "Unused", &[]).await;
    let deleted = roles
        .delete_role(pb::DeleteRoleRequest {
            team_id: org_id,
            role_id: unused.id.clone(),
            reassign_role_id: "superuser".into(),
            ..Default::default()
        })
        .await
        .expect("delete an unused role")
        .into_inner();
    assert_eq!(deleted.reassigned_memberships, 0);
    let status = expect_err(
        roles
            .delete_role(pb::DeleteRoleRequest {
                team_id: org_id,
                role_id: unused.id.clone(),
                ..Default::default()
            })
            .await,
    );
    assert_code_reason(&status, Code::NotFound, "ROLE_NOT_FOUND");
    srv.stop().await;
}

async fn lists_the_permission_catalog(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let entries = catalog(&srv).await;
    assert_eq!(entries.len(), 69);
    let names: BTreeSet<String> = entries.iter().map(|e| e.permission.clone()).collect();
    assert_eq!(names.len(), 69, "no duplicates");
    assert_eq!(names, whole_catalog(), "exactly the designed catalog");
    let team_and_org = vec![PermissionScope::Team, PermissionScope::Organization];
    for e in &entries {
        let (resource, action) = e.permission.rsplit_once('.').unwrap();
        assert_eq!(
            (e.resource.as_str(), e.action.as_str()),
            (resource, action),
            "{e:?}"
        );
        assert!(!e.description.is_empty(), "{e:?}");
        let mut scopes: Vec<PermissionScope> = e.scopes().collect();
        scopes.sort();
        if TEAM_SCOPE.contains(&e.permission.as_str()) {
            assert_eq!(scopes, team_and_org, "{}", e.permission);
        } else {
            assert_eq!(
                scopes,
                vec![PermissionScope::Organization],
                "{}",
                e.permission
            );
        }
    }
    let find = |p: &str| entries.iter().find(|e| e.permission == p).unwrap().clone();
    assert_eq!(
        find("team.create").scopes().collect::<Vec<_>>(),
        vec![PermissionScope::Organization]
    );
    let mut booking_read: Vec<_> = find("booking.read").scopes().collect();
    booking_read.sort();
    assert_eq!(booking_read, team_and_org);
    let attributes = find("organization.attributes.read");
    assert_eq!(attributes.resource, "organization.attributes");
    assert_eq!(attributes.action, "read");
    srv.stop().await;
}

async fn system_roles_hold_exactly_the_designed_permissions(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let sub = create_team(&srv, org_id, "sales").await.id;
    let all = whole_catalog();

    // Spot checks of the derivation itself, so a mistake here cannot hide one in the server.
    assert_eq!(expected_system_permissions("admin_role").len(), 67);
    assert_eq!(
        expected_system_permissions("member_role"),
        set(&[
            "role.read",
            "eventType.read",
            "team.read",
            "team.listMembers",
            "booking.read",
            "insights.read",
            "workflow.read",
            "routingForm.read",
            "webhook.read",
            "featureOptIn.read",
            "organization.read",
            "organization.listMembers",
            "organization.attributes.read",
            "availability.read",
            "ooo.read",
            "watchlist.read",
        ])
    );
    let superuser = expected_system_permissions("superuser_role");
    assert_eq!(superuser.len(), 52);
    assert!(superuser.contains("organization.attributes.editUsers"));
    assert!(superuser.contains("team.create"));
    assert!(!superuser.contains("organization.read"));

    for (i, (id, key, base)) in [
        ("owner_role", "owner", MembershipRole::Owner),
        ("admin_role", "admin", MembershipRole::Admin),
        ("member_role", "member", MembershipRole::Member),
        ("superuser_role", "superuser", MembershipRole::Admin),
        (
            "restricteduser_role",
            "restricteduser",
            MembershipRole::Member,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let role = get_role(&srv, 0, id)
            .await
            .unwrap_or_else(|s| panic!("{id}: {s:?}"));
        assert_eq!(role.key, key);
        assert_eq!(role.r#type(), RoleType::System);
        let held: BTreeSet<String> = role.permissions.iter().cloned().collect();
        assert_eq!(held, expected_system_permissions(id), "{id} via GetRole");
        assert_eq!(role.permissions.len(), held.len(), "{id}: no duplicates");

        // A member holding it: the org membership, and a sub-team membership.
        let holder = create_user(&srv, &format!("holder{i}@acme.test")).await.id;
        let m = add_member(&srv, org_id, holder, id).await;
        assert_eq!(m.role_id, id);
        assert_eq!(m.role_key, key);
        assert_eq!(m.role(), base, "{id} sets the base level");
        let expected_effective = if id == "owner_role" {
            all.clone()
        } else {
            expected_system_permissions(id)
        };
        assert_eq!(
            effective(&srv, holder, org_id).await,
            expected_effective,
            "{id} via ListEffectivePermissions"
        );
        if id == "owner_role" {
            assert_eq!(effective(&srv, holder, org_id).await.len(), 69);
        }

        // In a sub-team, as the only grant (the org membership restricted to nothing useful
        // would still add its own): check the sub-team role alone with a restricted org role.
        let sub_holder = create_user(&srv, &format!("subholder{i}@acme.test"))
            .await
            .id;
        add_member(&srv, org_id, sub_holder, "restricteduser_role").await;
        add_member(&srv, sub, sub_holder, id).await;
        let mut expected_sub = expected_effective.clone();
        expected_sub.extend(expected_system_permissions("restricteduser_role"));
        assert_eq!(
            effective(&srv, sub_holder, sub).await,
            expected_sub,
            "{id} in a sub-team (plus restricteduser from the organization)"
        );
    }
    srv.stop().await;
}

async fn custom_roles_on_memberships(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let sub = create_team(&srv, org_id, "sales").await.id;
    let sibling = create_team(&srv, org_id, "support").await.id;
    let other_org = create_org(&srv, "globex").await.id;
    let org_role = create_role(&srv, org_id, "Coordinator", &["booking.read", "team.read"]).await;
    let sub_role = create_role(&srv, sub, "Closer", &["booking.update"]).await;
    let foreign = create_role(&srv, other_org, "Foreign", &["team.read"]).await;
    let ann = create_user(&srv, "ann@acme.test").await.id;
    let ben = create_user(&srv, "ben@acme.test").await.id;
    let mut memberships = srv.memberships();

    // By id on create, by key on update; role_key reported.
    let created = add_member(&srv, org_id, ann, &org_role.id).await;
    assert_eq!(created.role_id, org_role.id);
    assert_eq!(created.role_key, "coordinator");
    assert_eq!(
        created.role(),
        MembershipRole::Member,
        "a custom role alone keeps MEMBER"
    );
    let by_key = add_member(&srv, org_id, ben, "coordinator").await;
    assert_eq!(by_key.role_id, org_role.id);

    let updated = memberships
        .update_membership(pb::UpdateMembershipRequest {
            team_id: org_id,
            member: Some(pb::update_membership_request::Member::UserId(ben)),
            role: Some(MembershipRole::Admin as i32),
            ..Default::default()
        })
        .await
        .expect("to ADMIN")
        .into_inner();
    assert_eq!(updated.role_id, "admin_role");
    let updated = memberships
        .update_membership(pb::UpdateMembershipRequest {
            team_id: org_id,
            member: Some(pb::update_membership_request::Member::UserId(ben)),
            role_id: Some("coordinator".into()),
            ..Default::default()
        })
        .await
        .expect("to the custom role by key")
        .into_inner();
    assert_eq!(updated.role_id, org_role.id);
    assert_eq!(updated.role_key, org_role.key);
    assert_eq!(
        updated.role(),
        MembershipRole::Admin,
        "a custom role leaves the level alone"
    );
    assert_eq!(
        get_membership_of(&srv, org_id, ben).await.role_id,
        org_role.id
    );

    // An org role in a sub-team: fine, by id and key; the sub-team's own role there too.
    let in_sub = add_member(&srv, sub, ann, &org_role.id).await;
    assert_eq!(in_sub.role_id, org_role.id);
    let in_sub = add_member(&srv, sub, ben, "closer").await;
    assert_eq!(in_sub.role_id, sub_role.id);
    assert_eq!(in_sub.role_key, "closer");

    // Another organization's role, another sub-team's role, a sub-team role in the org:
    // NOT_FOUND ROLE_NOT_FOUND, by id and by key.
    add_member(&srv, sibling, ann, "member").await;
    let cases = [
        (org_id, ann, foreign.id.clone()),
        (org_id, ann, foreign.key.clone()),
        (sibling, ann, sub_role.id.clone()),
        (sibling, ann, sub_role.key.clone()),
        (org_id, ann, sub_role.id.clone()),
        (org_id, ann, "no-such-role".to_string()),
    ];
    for (team_id, user_id, reference) in &cases {
        let status = expect_err(
            memberships
                .update_membership(pb::UpdateMembershipRequest {
                    team_id: *team_id,
                    member: Some(pb::update_membership_request::Member::UserId(*user_id)),
                    role_id: Some(reference.clone()),
                    ..Default::default()
                })
                .await,
        );
        assert_code_reason(&status, Code::NotFound, "ROLE_NOT_FOUND");
    }
    let carl = create_user(&srv, "carl@acme.test").await.id;
    for (team_id, reference) in [(org_id, foreign.id.clone()), (org_id, sub_role.id.clone())] {
        let status = expect_err(
            memberships
                .create_membership(pb::CreateMembershipRequest {
                    team_id,
                    user_id: carl,
                    role_id: reference,
                    accepted: true,
                    ..Default::default()
                })
                .await,
        );
        assert_code_reason(&status, Code::NotFound, "ROLE_NOT_FOUND");
    }
    add_member(&srv, org_id, carl, "member").await;
    let status = expect_err(
        memberships
            .create_membership(pb::CreateMembershipRequest {
                team_id: sibling,
                user_id: carl,
                role_id: sub_role.id.clone(),
                accepted: true,
                ..Default::default()
            })
            .await,
    );
    assert_code_reason(&status, Code::NotFound, "ROLE_NOT_FOUND");
    assert_eq!(
        get_membership_of(&srv, sibling, ann).await.role_id,
        "member_role"
    );
    srv.stop().await;
}

/// "An exact role id": references are case-sensitive on every engine, as the system ids, keys
/// and aliases are (a collation that folds case must not make `OWNER_ROLE` mean `owner_role`).
async fn role_references_are_exact(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org_id = create_org(&srv, "acme").await.id;
    let owner = create_user(&srv, "owner@acme.test").await.id;
    add_member(&srv, org_id, owner, "owner").await;
    let custom = create_role(&srv, org_id, "Planner", &["team.read"]).await;
    let someone = create_user(&srv, "someone@acme.test").await.id;
    let upper_id = custom.id.to_uppercase();
    // Every reference is tried before failing, so the report lists all that resolved.
    let mut resolved = Vec::new();
    for reference in [
        "OWNER_ROLE",
        "Admin_role",
        "Owner",
        "PLANNER",
        upper_id.as_str(),
    ] {
        match srv
            .memberships()
            .create_membership(pb::CreateMembershipRequest {
                team_id: org_id,
                user_id: someone,
                role_id: reference.into(),
                accepted: true,
                ..Default::default()
            })
            .await
        {
            Err(status) => assert_code_reason(&status, Code::NotFound, "ROLE_NOT_FOUND"),
            Ok(m) => {
                let m = m.into_inner();
                resolved.push(format!(
                    "CreateMembership role_id {reference:?} -> {} ({:?})",
                    m.role_id,
                    m.role()
                ));
                srv.memberships()
                    .delete_membership(pb::DeleteMembershipRequest {
                        team_id: org_id,
                        member: Some(pb::delete_membership_request::Member::MembershipId(m.id)),
                        ..Default::default()
                    })
                    .await
                    .expect("clean up the wrongly created membership");
            }
        }
        match get_role(&srv, org_id, reference).await {
            Err(status) => assert_code_reason(&status, Code::NotFound, "ROLE_NOT_FOUND"),
            Ok(role) => resolved.push(format!("GetRole {reference:?} -> {}", role.id)),
        }
    }
    assert!(
        resolved.is_empty(),
        "references that differ in case only must not resolve:\n{}",
        resolved.join("\n")
    );
    srv.stop().await;
}
