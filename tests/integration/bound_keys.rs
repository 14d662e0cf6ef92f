//! Organization-bound API keys on every engine: a key bound to organization A runs the whole
//! read surface against A (it works) and against organization B (NOT_FOUND, or left out of
//! lists, exactly as an absent id: same code, reason and message), and the write surface against
//! B (NOT_FOUND / KEY_BOUND_TO_ORGANIZATION, nothing written).

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::timeout;
use tonic::{Code, Status};

use crate::common::{
    ADMIN_KEY, AuthChannel, Engine, TestServer, add_member, add_pending_member, all_events, auth,
    create_org, create_role, create_team, create_user, expect_err, last_sequence, pb, reason,
};
use pb::access_service_client::AccessServiceClient;
use pb::api_key_service_client::ApiKeyServiceClient;
use pb::attribute_service_client::AttributeServiceClient;
use pb::directory_service_client::DirectoryServiceClient;
use pb::event_service_client::EventServiceClient;
use pb::membership_service_client::MembershipServiceClient;
use pb::role_service_client::RoleServiceClient;
use pb::{MembershipRole, get_membership_request::Member};

engine_tests!(
    a_bound_key_reads_its_organization_only,
    a_bound_key_writes_its_organization_only
);

/// An id no row has.
const ABSENT: i64 = 987_654_321;
const ABSENT_REF: &str = "role_absent0000";
const PERMISSION: &str = "booking.read";

/// Two organizations with sub-teams, members (one pending, one in both), custom roles and
/// attributes, made with the harness admin key; and an admin key bound to A.
struct World {
    a: i64,
    b: i64,
    team_a: i64,
    team_b: i64,
    /// Member of A and its sub-team, pending member of A, member of B, member of both.
    user_a: i64,
    user_pending: i64,
    user_b: i64,
    user_both: i64,
    membership_a: i64,
    membership_b: i64,
    role_a: String,
    role_b: String,
    attribute_a: String,
    attribute_b: String,
    bound: String,
}

async fn attribute(srv: &TestServer, organization_id: i64, name: &str) -> String {
    srv.attributes()
        .create_attribute(pb::CreateAttributeRequest {
            organization_id,
            name: name.into(),
            r#type: pb::AttributeType::Text as i32,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("create attribute {name}: {s:?}"))
        .into_inner()
        .id
}

async fn world(srv: &TestServer) -> World {
    let a = create_org(srv, "alpha").await.id;
    let b = create_org(srv, "beta").await.id;
    let team_a = create_team(srv, a, "alpha-sales").await.id;
    let team_b = create_team(srv, b, "beta-sales").await.id;
    let user_a = create_user(srv, "a@bound.test").await.id;
    let user_pending = create_user(srv, "pending@bound.test").await.id;
    let user_b = create_user(srv, "b@bound.test").await.id;
    let user_both = create_user(srv, "both@bound.test").await.id;
    let membership_a = add_member(srv, a, user_a, MembershipRole::Owner).await.id;
    add_member(srv, team_a, user_a, MembershipRole::Member).await;
    add_pending_member(srv, a, user_pending, MembershipRole::Member).await;
    let membership_b = add_member(srv, b, user_b, MembershipRole::Owner).await.id;
    add_member(srv, team_b, user_b, MembershipRole::Member).await;
    add_member(srv, a, user_both, MembershipRole::Member).await;
    add_member(srv, b, user_both, MembershipRole::Member).await;
    let role_a = create_role(srv, a, "Alpha desk", &[PERMISSION]).await.id;
    let role_b = create_role(srv, b, "Beta desk", &[PERMISSION]).await.id;
    create_role(srv, team_b, "Beta team desk", &[PERMISSION]).await;
    let attribute_a = attribute(srv, a, "Alpha level").await;
    let attribute_b = attribute(srv, b, "Beta level").await;
    let bound = srv
        .client(ApiKeyServiceClient::new)
        .create_api_key(pb::CreateApiKeyRequest {
            name: "alpha-admin".into(),
            scopes: vec!["admin".into()],
            organization_id: Some(a),
            ..Default::default()
        })
        .await
        .expect("a key bound to A")
        .into_inner()
        .secret;
    World {
        a,
        b,
        team_a,
        team_b,
        user_a,
        user_pending,
        user_b,
        user_both,
        membership_a,
        membership_b,
        role_a,
        role_b,
        attribute_a,
        attribute_b,
        bound,
    }
}

/// The services as a key sees them.
struct As {
    directory: DirectoryServiceClient<AuthChannel>,
    memberships: MembershipServiceClient<AuthChannel>,
    roles: RoleServiceClient<AuthChannel>,
    attributes: AttributeServiceClient<AuthChannel>,
    access: AccessServiceClient<AuthChannel>,
    events: EventServiceClient<AuthChannel>,
}

fn as_key(srv: &TestServer, key: &str) -> As {
    As {
        directory: srv.client_with(auth(key), DirectoryServiceClient::new),
        memberships: srv.client_with(auth(key), MembershipServiceClient::new),
        roles: srv.client_with(auth(key), RoleServiceClient::new),
        attributes: srv.client_with(auth(key), AttributeServiceClient::new),
        access: srv.client_with(auth(key), AccessServiceClient::new),
        events: srv.client_with(auth(key), EventServiceClient::new),
    }
}

/// `text` with every whole word `from` replaced by `to` (ids inside messages).
fn replace_words(text: &str, pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let replaced = pairs
            .iter()
            .find(|(from, _)| from == word)
            .map(|(_, to)| to.clone());
        out.push_str(replaced.as_deref().unwrap_or(word));
        word.clear();
    };
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// `elsewhere` (a call naming B's ids with the bound key) reads exactly like `absent` (the same
/// call naming ids that do not exist): code, reason, and the message once the ids are swapped.
#[track_caller]
fn same_as_absent<T: std::fmt::Debug, U: std::fmt::Debug>(
    what: &str,
    elsewhere: Result<tonic::Response<T>, Status>,
    absent: Result<tonic::Response<U>, Status>,
    ids: &[(&dyn ToString, &dyn ToString)],
) {
    let elsewhere = expect_err(elsewhere);
    let absent = expect_err(absent);
    assert_eq!(elsewhere.code(), Code::NotFound, "{what}: {elsewhere:?}");
    assert_eq!(
        elsewhere.code(),
        absent.code(),
        "{what}: {elsewhere:?} / {absent:?}"
    );
    assert_eq!(
        reason(&elsewhere),
        reason(&absent),
        "{what}: {elsewhere:?} / {absent:?}"
    );
    let pairs: Vec<(String, String)> = ids
        .iter()
        .map(|(from, to)| (from.to_string(), to.to_string()))
        .collect();
    assert_eq!(
        replace_words(elsewhere.message(), &pairs),
        absent.message(),
        "{what}: the message gives the other organization away"
    );
}

fn get_membership(member: Member, team_id: i64) -> pb::GetMembershipRequest {
    pb::GetMembershipRequest {
        team_id,
        member: Some(member),
        ..Default::default()
    }
}

async fn a_bound_key_reads_its_organization_only(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let w = world(&srv).await;
    let mut k = as_key(&srv, &w.bound);
    let mut admin = as_key(&srv, ADMIN_KEY);

    // Organizations and teams.
    k.directory
        .get_organization(pb::GetOrganizationRequest {
            organization_id: w.a,
        })
        .await
        .expect("its own organization");
    same_as_absent(
        "GetOrganization",
        k.directory
            .get_organization(pb::GetOrganizationRequest {
                organization_id: w.b,
            })
            .await,
        admin
            .directory
            .get_organization(pb::GetOrganizationRequest {
                organization_id: ABSENT,
            })
            .await,
        &[(&w.b, &ABSENT)],
    );
    let orgs = k
        .directory
        .list_organizations(pb::ListOrganizationsRequest::default())
        .await
        .expect("list organizations")
        .into_inner()
        .organizations;
    assert_eq!(orgs.iter().map(|o| o.id).collect::<Vec<_>>(), vec![w.a]);
    k.directory
        .get_team(pb::GetTeamRequest {
            team_id: w.team_a,
            ..Default::default()
        })
        .await
        .expect("its sub-team");
    same_as_absent(
        "GetTeam",
        k.directory
            .get_team(pb::GetTeamRequest {
                team_id: w.team_b,
                ..Default::default()
            })
            .await,
        admin
            .directory
            .get_team(pb::GetTeamRequest {
                team_id: ABSENT,
                ..Default::default()
            })
            .await,
        &[(&w.team_b, &ABSENT)],
    );
    let teams = k
        .directory
        .list_teams(pb::ListTeamsRequest {
            organization_id: w.a,
            ..Default::default()
        })
        .await
        .expect("its sub-teams")
        .into_inner()
        .teams;
    assert_eq!(
        teams.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![w.team_a]
    );
    same_as_absent(
        "ListTeams",
        k.directory
            .list_teams(pb::ListTeamsRequest {
                organization_id: w.b,
                ..Default::default()
            })
            .await,
        admin
            .directory
            .list_teams(pb::ListTeamsRequest {
                organization_id: ABSENT,
                ..Default::default()
            })
            .await,
        &[(&w.b, &ABSENT)],
    );

    // Users: members of A or its sub-teams, pending ones too.
    for user_id in [w.user_a, w.user_pending, w.user_both] {
        k.directory
            .get_user(pb::GetUserRequest { user_id })
            .await
            .unwrap_or_else(|s| panic!("user {user_id} is a member: {s:?}"));
    }
    same_as_absent(
        "GetUser",
        k.directory
            .get_user(pb::GetUserRequest { user_id: w.user_b })
            .await,
        admin
            .directory
            .get_user(pb::GetUserRequest { user_id: ABSENT })
            .await,
        &[(&w.user_b, &ABSENT)],
    );
    let users: BTreeSet<i64> = k
        .directory
        .list_users(pb::ListUsersRequest::default())
        .await
        .expect("list users")
        .into_inner()
        .users
        .iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(
        users,
        BTreeSet::from([w.user_a, w.user_pending, w.user_both])
    );
    let by_email = k
        .directory
        .list_users(pb::ListUsersRequest {
            email: "b@bound.test".into(),
            ..Default::default()
        })
        .await
        .expect("list users by email")
        .into_inner()
        .users;
    assert!(by_email.is_empty(), "B's member is left out: {by_email:?}");

    // Memberships.
    k.memberships
        .get_membership(get_membership(Member::MembershipId(w.membership_a), 0))
        .await
        .expect("its membership");
    k.memberships
        .get_membership(get_membership(Member::UserId(w.user_both), w.a))
        .await
        .expect("its membership, by user");
    same_as_absent(
        "GetMembership by id",
        k.memberships
            .get_membership(get_membership(Member::MembershipId(w.membership_b), 0))
            .await,
        admin
            .memberships
            .get_membership(get_membership(Member::MembershipId(ABSENT), 0))
            .await,
        &[(&w.membership_b, &ABSENT)],
    );
    same_as_absent(
        "GetMembership by user",
        k.memberships
            .get_membership(get_membership(Member::UserId(w.user_both), w.b))
            .await,
        admin
            .memberships
            .get_membership(get_membership(Member::UserId(w.user_both), ABSENT))
            .await,
        &[(&w.b, &ABSENT)],
    );
    same_as_absent(
        "GetMembership naming B",
        k.memberships
            .get_membership(pb::GetMembershipRequest {
                organization_id: w.b,
                ..get_membership(Member::MembershipId(w.membership_b), 0)
            })
            .await,
        admin
            .memberships
            .get_membership(get_membership(Member::MembershipId(ABSENT), 0))
            .await,
        &[(&w.membership_b, &ABSENT)],
    );
    let listed = k
        .memberships
        .list_memberships(pb::ListMembershipsRequest {
            team_id: w.a,
            ..Default::default()
        })
        .await
        .expect("its memberships")
        .into_inner()
        .memberships;
    assert_eq!(listed.len(), 3, "{listed:?}");
    same_as_absent(
        "ListMemberships",
        k.memberships
            .list_memberships(pb::ListMembershipsRequest {
                team_id: w.b,
                ..Default::default()
            })
            .await,
        admin
            .memberships
            .list_memberships(pb::ListMembershipsRequest {
                team_id: ABSENT,
                ..Default::default()
            })
            .await,
        &[(&w.b, &ABSENT)],
    );
    let of_both = k
        .memberships
        .list_user_memberships(pb::ListUserMembershipsRequest {
            user_id: w.user_both,
            ..Default::default()
        })
        .await
        .expect("a shared user's memberships")
        .into_inner()
        .memberships;
    assert_eq!(
        of_both
            .iter()
            .map(|m| m.organization_id)
            .collect::<Vec<_>>(),
        vec![w.a],
        "B's membership is left out"
    );
    same_as_absent(
        "ListUserMemberships",
        k.memberships
            .list_user_memberships(pb::ListUserMembershipsRequest {
                user_id: w.user_b,
                ..Default::default()
            })
            .await,
        admin
            .memberships
            .list_user_memberships(pb::ListUserMembershipsRequest {
                user_id: ABSENT,
                ..Default::default()
            })
            .await,
        &[(&w.user_b, &ABSENT)],
    );

    // Roles: A's custom roles and the system roles.
    k.roles
        .get_role(pb::GetRoleRequest {
            role_id: w.role_a.clone(),
            ..Default::default()
        })
        .await
        .expect("its custom role");
    k.roles
        .get_role(pb::GetRoleRequest {
            role_id: "owner".into(),
            team_id: w.a,
        })
        .await
        .expect("a system role");
    same_as_absent(
        "GetRole",
        k.roles
            .get_role(pb::GetRoleRequest {
                role_id: w.role_b.clone(),
                ..Default::default()
            })
            .await,
        admin
            .roles
            .get_role(pb::GetRoleRequest {
                role_id: ABSENT_REF.into(),
                ..Default::default()
            })
            .await,
        &[(&w.role_b, &ABSENT_REF)],
    );
    let roles = k
        .roles
        .list_roles(pb::ListRolesRequest {
            team_id: w.team_a,
            ..Default::default()
        })
        .await
        .expect("roles of its sub-team")
        .into_inner()
        .roles;
    assert!(roles.iter().any(|r| r.id == w.role_a), "{roles:?}");
    assert!(
        roles
            .iter()
            .any(|r| r.r#type == pb::RoleType::System as i32)
    );
    assert!(roles.iter().all(|r| r.id != w.role_b));
    same_as_absent(
        "ListRoles",
        k.roles
            .list_roles(pb::ListRolesRequest {
                team_id: w.team_b,
                ..Default::default()
            })
            .await,
        admin
            .roles
            .list_roles(pb::ListRolesRequest {
                team_id: ABSENT,
                ..Default::default()
            })
            .await,
        &[(&w.team_b, &ABSENT)],
    );

    // Attributes.
    let attributes = k
        .attributes
        .list_attributes(pb::ListAttributesRequest {
            organization_id: w.a,
            ..Default::default()
        })
        .await
        .expect("its attributes")
        .into_inner()
        .attributes;
    assert_eq!(
        attributes.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        vec![w.attribute_a.clone()]
    );
    same_as_absent(
        "ListAttributes",
        k.attributes
            .list_attributes(pb::ListAttributesRequest {
                organization_id: w.b,
                ..Default::default()
            })
            .await,
        admin
            .attributes
            .list_attributes(pb::ListAttributesRequest {
                organization_id: ABSENT,
                ..Default::default()
            })
            .await,
        &[(&w.b, &ABSENT)],
    );

    // Access checks.
    let check = |user_id, team_id| pb::CheckPermissionRequest {
        user_id,
        team_id,
        permission: PERMISSION.into(),
        ..Default::default()
    };
    let allowed = k
        .access
        .check_permission(check(w.user_a, w.a))
        .await
        .expect("a check in its organization")
        .into_inner();
    assert!(allowed.allowed, "an owner may: {allowed:?}");
    same_as_absent(
        "CheckPermission",
        k.access.check_permission(check(w.user_b, w.b)).await,
        admin.access.check_permission(check(w.user_b, ABSENT)).await,
        &[(&w.b, &ABSENT)],
    );
    let effective = |user_id, team_id| pb::ListEffectivePermissionsRequest {
        user_id,
        team_id,
        ..Default::default()
    };
    k.access
        .list_effective_permissions(effective(w.user_a, w.team_a))
        .await
        .expect("effective permissions in its sub-team");
    same_as_absent(
        "ListEffectivePermissions",
        k.access
            .list_effective_permissions(effective(w.user_b, w.team_b))
            .await,
        admin
            .access
            .list_effective_permissions(effective(w.user_b, ABSENT))
            .await,
        &[(&w.team_b, &ABSENT)],
    );
    let batch = pb::BatchCheckPermissionsRequest {
        checks: vec![check(w.user_a, w.a), check(w.user_b, w.b)],
        ..Default::default()
    };
    let results = k
        .access
        .batch_check_permissions(batch)
        .await
        .expect("a batch")
        .into_inner()
        .results;
    let absent = admin
        .access
        .batch_check_permissions(pb::BatchCheckPermissionsRequest {
            checks: vec![check(w.user_b, ABSENT)],
            ..Default::default()
        })
        .await
        .expect("a batch naming an absent team")
        .into_inner()
        .results;
    assert!(results[0].allowed);
    assert_eq!(
        (results[1].allowed, &results[1].reason),
        (absent[0].allowed, &absent[0].reason),
        "B's team reads as an absent one"
    );

    // Events: A's only, listed and replayed alike.
    let expected: Vec<i64> = all_events(&srv)
        .await
        .iter()
        .filter(|e| e.organization_id == Some(w.a))
        .map(|e| e.sequence)
        .collect();
    assert!(
        expected.len() >= 8,
        "A's writes recorded events: {expected:?}"
    );
    let listed = k
        .events
        .list_events(pb::ListEventsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list events")
        .into_inner()
        .events;
    assert_eq!(
        listed.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        expected
    );
    let of_b = k
        .events
        .list_events(pb::ListEventsRequest {
            team_id: Some(w.b),
            ..Default::default()
        })
        .await
        .expect("list events of B")
        .into_inner()
        .events;
    assert!(of_b.is_empty(), "{of_b:?}");
    let mut stream = k
        .events
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let mut replayed = Vec::new();
    while replayed.len() < expected.len() {
        let item = timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the replay goes on")
            .expect("the stream works")
            .expect("the stream goes on");
        replayed.push(item.event.expect("an event").sequence);
    }
    assert_eq!(replayed, expected);
    // A write in B after the replay is not delivered; one in A is.
    create_team(&srv, w.b, "beta-late").await;
    let late = create_team(&srv, w.a, "alpha-late").await;
    let item = timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the live event")
        .expect("the stream works")
        .expect("the stream goes on")
        .event
        .expect("an event");
    assert_eq!(item.team_id, Some(late.id), "B's team.created is left out");
}

async fn a_bound_key_writes_its_organization_only(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let w = world(&srv).await;
    let mut k = as_key(&srv, &w.bound);
    let mut admin = as_key(&srv, ADMIN_KEY);
    let before = last_sequence(&srv).await;

    let refused = expect_err(
        k.directory
            .create_organization(pb::CreateOrganizationRequest {
                name: "Gamma".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(
        reason(&refused).as_deref(),
        Some("KEY_BOUND_TO_ORGANIZATION")
    );

    let rename = |organization_id| pb::UpdateOrganizationRequest {
        organization_id,
        name: Some("Renamed".into()),
        ..Default::default()
    };
    same_as_absent(
        "UpdateOrganization",
        k.directory.update_organization(rename(w.b)).await,
        admin.directory.update_organization(rename(ABSENT)).await,
        &[(&w.b, &ABSENT)],
    );
    same_as_absent(
        "DeleteOrganization",
        k.directory
            .delete_organization(pb::DeleteOrganizationRequest {
                organization_id: w.b,
                ..Default::default()
            })
            .await,
        admin
            .directory
            .delete_organization(pb::DeleteOrganizationRequest {
                organization_id: ABSENT,
                ..Default::default()
            })
            .await,
        &[(&w.b, &ABSENT)],
    );
    let new_team = |organization_id| pb::CreateTeamRequest {
        organization_id,
        name: "Intruders".into(),
        ..Default::default()
    };
    same_as_absent(
        "CreateTeam",
        k.directory.create_team(new_team(w.b)).await,
        admin.directory.create_team(new_team(ABSENT)).await,
        &[(&w.b, &ABSENT)],
    );
    let rename_team = |team_id| pb::UpdateTeamRequest {
        team_id,
        name: Some("Renamed".into()),
        ..Default::default()
    };
    same_as_absent(
        "UpdateTeam",
        k.directory.update_team(rename_team(w.team_b)).await,
        admin.directory.update_team(rename_team(ABSENT)).await,
        &[(&w.team_b, &ABSENT)],
    );
    same_as_absent(
        "DeleteTeam",
        k.directory
            .delete_team(pb::DeleteTeamRequest {
                team_id: w.team_b,
                ..Default::default()
            })
            .await,
        admin
            .directory
            .delete_team(pb::DeleteTeamRequest {
                team_id: ABSENT,
                ..Default::default()
            })
            .await,
        &[(&w.team_b, &ABSENT)],
    );
    let rename_user = |user_id| pb::UpdateUserRequest {
        user_id,
        name: Some("Renamed".into()),
        ..Default::default()
    };
    same_as_absent(
        "UpdateUser",
        k.directory.update_user(rename_user(w.user_b)).await,
        admin.directory.update_user(rename_user(ABSENT)).await,
        &[(&w.user_b, &ABSENT)],
    );
    same_as_absent(
        "DeleteUser",
        k.directory
            .delete_user(pb::DeleteUserRequest {
                user_id: w.user_b,
                ..Default::default()
            })
            .await,
        admin
            .directory
            .delete_user(pb::DeleteUserRequest {
                user_id: ABSENT,
                ..Default::default()
            })
            .await,
        &[(&w.user_b, &ABSENT)],
    );

    let join = |team_id, user_id| pb::CreateMembershipRequest {
        team_id,
        user_id,
        role: MembershipRole::Member as i32,
        accepted: true,
        ..Default::default()
    };
    same_as_absent(
        "CreateMembership in B",
        k.memberships
            .create_membership(join(w.team_b, w.user_a))
            .await,
        admin
            .memberships
            .create_membership(join(ABSENT, w.user_a))
            .await,
        &[(&w.team_b, &ABSENT)],
    );
    same_as_absent(
        "CreateMembership of B's user",
        k.memberships
            .create_membership(join(w.team_a, w.user_b))
            .await,
        admin
            .memberships
            .create_membership(join(w.team_a, ABSENT))
            .await,
        &[(&w.user_b, &ABSENT)],
    );
    let demote = |membership_id| pb::UpdateMembershipRequest {
        member: Some(pb::update_membership_request::Member::MembershipId(
            membership_id,
        )),
        role: Some(MembershipRole::Member as i32),
        ..Default::default()
    };
    same_as_absent(
        "UpdateMembership",
        k.memberships
            .update_membership(demote(w.membership_b))
            .await,
        admin.memberships.update_membership(demote(ABSENT)).await,
        &[(&w.membership_b, &ABSENT)],
    );
    let remove = |membership_id| pb::DeleteMembershipRequest {
        member: Some(pb::delete_membership_request::Member::MembershipId(
            membership_id,
        )),
        ..Default::default()
    };
    same_as_absent(
        "DeleteMembership",
        k.memberships
            .delete_membership(remove(w.membership_b))
            .await,
        admin.memberships.delete_membership(remove(ABSENT)).await,
        &[(&w.membership_b, &ABSENT)],
    );

    same_as_absent(
        "CreateRole",
        k.roles
            .create_role(crate::common::new_role(w.b, "Intruder", &[PERMISSION]))
            .await,
        admin
            .roles
            .create_role(crate::common::new_role(ABSENT, "Intruder", &[PERMISSION]))
            .await,
        &[(&w.b, &ABSENT)],
    );
    let rename_role = |role_id: &str| pb::UpdateRoleRequest {
        role_id: role_id.into(),
        name: Some("Renamed".into()),
        ..Default::default()
    };
    same_as_absent(
        "UpdateRole",
        k.roles.update_role(rename_role(&w.role_b)).await,
        admin.roles.update_role(rename_role(ABSENT_REF)).await,
        &[(&w.role_b, &ABSENT_REF)],
    );
    let grant = |role_id: &str| pb::AddRolePermissionsRequest {
        role_id: role_id.into(),
        permissions: vec!["booking.update".into()],
        ..Default::default()
    };
    same_as_absent(
        "AddRolePermissions",
        k.roles.add_role_permissions(grant(&w.role_b)).await,
        admin.roles.add_role_permissions(grant(ABSENT_REF)).await,
        &[(&w.role_b, &ABSENT_REF)],
    );
    let revoke = |role_id: &str| pb::RemoveRolePermissionsRequest {
        role_id: role_id.into(),
        permissions: vec![PERMISSION.into()],
        ..Default::default()
    };
    same_as_absent(
        "RemoveRolePermissions",
        k.roles.remove_role_permissions(revoke(&w.role_b)).await,
        admin
            .roles
            .remove_role_permissions(revoke(ABSENT_REF))
            .await,
        &[(&w.role_b, &ABSENT_REF)],
    );
    let drop_role = |role_id: &str| pb::DeleteRoleRequest {
        role_id: role_id.into(),
        ..Default::default()
    };
    same_as_absent(
        "DeleteRole",
        k.roles.delete_role(drop_role(&w.role_b)).await,
        admin.roles.delete_role(drop_role(ABSENT_REF)).await,
        &[(&w.role_b, &ABSENT_REF)],
    );

    let new_attribute = |organization_id| pb::CreateAttributeRequest {
        organization_id,
        name: "Intruder".into(),
        r#type: pb::AttributeType::Text as i32,
        ..Default::default()
    };
    same_as_absent(
        "CreateAttribute",
        k.attributes.create_attribute(new_attribute(w.b)).await,
        admin
            .attributes
            .create_attribute(new_attribute(ABSENT))
            .await,
        &[(&w.b, &ABSENT)],
    );
    let drop_attribute = |organization_id, attribute_id: &str| pb::DeleteAttributeRequest {
        organization_id,
        attribute_id: attribute_id.into(),
    };
    same_as_absent(
        "DeleteAttribute",
        k.attributes
            .delete_attribute(drop_attribute(w.b, &w.attribute_b))
            .await,
        admin
            .attributes
            .delete_attribute(drop_attribute(ABSENT, &w.attribute_b))
            .await,
        &[(&w.b, &ABSENT)],
    );
    let option = |organization_id, attribute_id: &str| pb::AddAttributeOptionRequest {
        organization_id,
        attribute_id: attribute_id.into(),
        value: "gold".into(),
    };
    same_as_absent(
        "AddAttributeOption",
        k.attributes
            .add_attribute_option(option(w.b, &w.attribute_b))
            .await,
        admin
            .attributes
            .add_attribute_option(option(ABSENT, &w.attribute_b))
            .await,
        &[(&w.b, &ABSENT)],
    );
    let assign = |organization_id, attribute_id: &str| pb::AssignAttributeRequest {
        organization_id,
        attribute_id: attribute_id.into(),
        member: Some(pb::assign_attribute_request::Member::UserId(w.user_b)),
        value: Some(pb::assign_attribute_request::Value::Text("x".into())),
    };
    same_as_absent(
        "AssignAttribute",
        k.attributes
            .assign_attribute(assign(w.b, &w.attribute_b))
            .await,
        admin
            .attributes
            .assign_attribute(assign(ABSENT, &w.attribute_b))
            .await,
        &[(&w.b, &ABSENT)],
    );
    let unassign = |organization_id, attribute_id: &str| pb::UnassignAttributeRequest {
        organization_id,
        attribute_id: attribute_id.into(),
        member: Some(pb::unassign_attribute_request::Member::UserId(w.user_b)),
    };
    same_as_absent(
        "UnassignAttribute",
        k.attributes
            .unassign_attribute(unassign(w.b, &w.attribute_b))
            .await,
        admin
            .attributes
            .unassign_attribute(unassign(ABSENT, &w.attribute_b))
            .await,
        &[(&w.b, &ABSENT)],
    );
    // A user of A who belongs to B too: deleting them would reach into B.
    let shared = expect_err(
        k.directory
            .delete_user(pb::DeleteUserRequest {
                user_id: w.user_both,
                ..Default::default()
            })
            .await,
    );
    assert_eq!(shared.code(), Code::PermissionDenied, "{shared:?}");
    assert_eq!(
        reason(&shared).as_deref(),
        Some("KEY_BOUND_TO_ORGANIZATION")
    );
    // Acting for B's user is acting for a user that does not exist.
    let acting =
        |user_id| srv.client_with(auth(&w.bound).actor(user_id), DirectoryServiceClient::new);
    let as_b_user = expect_err(acting(w.user_b).create_team(new_team(w.a)).await);
    let as_absent = expect_err(acting(ABSENT).create_team(new_team(w.a)).await);
    assert_eq!(
        (as_b_user.code(), reason(&as_b_user)),
        (as_absent.code(), reason(&as_absent)),
        "{as_b_user:?} / {as_absent:?}"
    );
    assert_eq!(last_sequence(&srv).await, before, "nothing was written");

    // In its own organization it writes; a user it creates stays visible to it, and the
    // creation is among its organization's events.
    let created = k
        .directory
        .create_user(crate::common::new_user("new@bound.test"))
        .await
        .expect("a bound key creates a user")
        .into_inner();
    k.directory
        .get_user(pb::GetUserRequest {
            user_id: created.id,
        })
        .await
        .expect("the user it created");
    let event = k
        .events
        .list_events(pb::ListEventsRequest {
            kind: "user.created".into(),
            ..Default::default()
        })
        .await
        .expect("its events")
        .into_inner()
        .events;
    assert_eq!(event.len(), 1, "{event:?}");
    assert_eq!(event[0].user_id, Some(created.id));
    assert_eq!(event[0].organization_id, Some(w.a));
    let team = k
        .directory
        .create_team(new_team(w.a))
        .await
        .expect("a sub-team of its organization")
        .into_inner();
    k.memberships
        .create_membership(join(w.a, created.id))
        .await
        .expect("its user joins its organization");
    k.memberships
        .create_membership(join(team.id, created.id))
        .await
        .expect("its user joins its team");
    k.roles
        .add_role_permissions(grant(&w.role_a))
        .await
        .expect("its custom role changes");
    k.directory
        .delete_user(pb::DeleteUserRequest {
            user_id: w.user_pending,
            ..Default::default()
        })
        .await
        .expect("a user of its organization alone");
    let deleted = k
        .events
        .list_events(pb::ListEventsRequest {
            kind: "user.deleted".into(),
            ..Default::default()
        })
        .await
        .expect("its events")
        .into_inner()
        .events;
    assert_eq!(
        deleted.len(),
        1,
        "its own user writes are its organization's events"
    );
    assert_eq!(deleted[0].user_id, Some(w.user_pending));
    // What the bound key could not touch is as it was.
    let b_org = admin
        .directory
        .get_organization(pb::GetOrganizationRequest {
            organization_id: w.b,
        })
        .await
        .expect("B")
        .into_inner();
    assert_eq!(b_org.name, "Org beta");
    admin
        .memberships
        .get_membership(get_membership(Member::MembershipId(w.membership_b), 0))
        .await
        .expect("B's membership stays");
}
