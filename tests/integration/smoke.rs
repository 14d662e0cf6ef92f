//! Basic calls through the harness on every engine: proves the harness and the wiring.

use crate::common::{
    Engine, TestServer, auth, create_org, create_user, expect_err, field_violations, pb,
};
use pb::MembershipRole;
use pb::directory_service_client::DirectoryServiceClient;
use pb::update_membership_request::Member;
use tonic::Code;

engine_tests!(
    creates_and_gets_user,
    creates_and_gets_organization,
    owner_membership_update_and_list,
    bad_email_is_invalid_argument,
    missing_or_unknown_key_is_unauthenticated,
    second_instance_shares_the_database,
);

async fn creates_and_gets_user(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let created = create_user(&srv, "Ada@Example.com").await;
    assert!(created.id > 0);
    assert_eq!(
        created.email, "ada@example.com",
        "email is stored lower-case"
    );
    assert!(!created.etag.is_empty());
    assert!(created.created_at.is_some());

    let got = srv
        .directory()
        .get_user(pb::GetUserRequest {
            user_id: created.id,
        })
        .await
        .expect("get user")
        .into_inner();
    assert_eq!(got.id, created.id);
    assert_eq!(got.email, "ada@example.com");
    assert_eq!(got.name, "User Ada@Example.com", "the name as given");

    let missing = expect_err(
        srv.directory()
            .get_user(pb::GetUserRequest {
                user_id: created.id + 1000,
            })
            .await,
    );
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    srv.stop().await;
}

async fn creates_and_gets_organization(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    assert!(org.id > 0);
    assert_eq!(org.slug, "acme");
    assert_eq!(org.name, "Org acme");

    let got = srv
        .directory()
        .get_organization(pb::GetOrganizationRequest {
            organization_id: org.id,
        })
        .await
        .expect("get organization")
        .into_inner();
    assert_eq!(got.id, org.id);
    assert_eq!(got.slug, "acme");
}

async fn owner_membership_update_and_list(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "initech").await;
    let owner = create_user(&srv, "owner@initech.test").await;
    let member = create_user(&srv, "member@initech.test").await;
    let mut memberships = srv.memberships();

    let owner_m = memberships
        .create_membership(pb::CreateMembershipRequest {
            team_id: org.id,
            user_id: owner.id,
            role: MembershipRole::Owner as i32,
            accepted: true,
            ..Default::default()
        })
        .await
        .expect("create owner membership")
        .into_inner();
    assert_eq!(owner_m.role(), MembershipRole::Owner);
    assert_eq!(owner_m.role_id, "owner_role");
    assert_eq!(owner_m.team_id, org.id);
    assert_eq!(owner_m.organization_id, org.id);
    assert!(owner_m.accepted);

    let member_m = memberships
        .create_membership(pb::CreateMembershipRequest {
            team_id: org.id,
            user_id: member.id,
            role: MembershipRole::Member as i32,
            accepted: true,
            ..Default::default()
        })
        .await
        .expect("create member membership")
        .into_inner();
    assert_eq!(member_m.role(), MembershipRole::Member);
    assert_eq!(member_m.role_id, "member_role");
    assert_eq!(member_m.auto_record_calls(), pb::AutoRecordCalls::Unset);

    let updated = memberships
        .update_membership(pb::UpdateMembershipRequest {
            team_id: org.id,
            member: Some(Member::MembershipId(member_m.id)),
            role_id: Some("org:admin".into()),
            ..Default::default()
        })
        .await
        .expect("update membership role")
        .into_inner();
    assert_eq!(updated.id, member_m.id);
    assert_eq!(updated.role(), MembershipRole::Admin);
    assert_eq!(updated.role_id, "admin_role");
    assert_ne!(updated.etag, member_m.etag, "etag changes on write");

    let list = memberships
        .list_memberships(pb::ListMembershipsRequest {
            team_id: org.id,
            ..Default::default()
        })
        .await
        .expect("list memberships")
        .into_inner();
    let mut users: Vec<i64> = list.memberships.iter().map(|m| m.user_id).collect();
    users.sort_unstable();
    let mut expected = vec![owner.id, member.id];
    expected.sort_unstable();
    assert_eq!(users, expected);
    assert!(list.next_page_token.is_empty());
}

async fn bad_email_is_invalid_argument(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let status = expect_err(
        srv.directory()
            .create_user(pb::CreateUserRequest {
                email: "not-an-email".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        field_violations(&status).iter().any(|f| f == "email"),
        "field violations {:?} name email",
        field_violations(&status)
    );
}

async fn missing_or_unknown_key_is_unauthenticated(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let request = || pb::ListOrganizationsRequest::default();

    let status = expect_err(
        srv.anonymous(DirectoryServiceClient::new)
            .list_organizations(request())
            .await,
    );
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    let status = expect_err(
        srv.client_with_key("mk_not_a_key", DirectoryServiceClient::new)
            .list_organizations(request())
            .await,
    );
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // The admin key, through the generic constructor, works.
    srv.client_with(auth(&srv.admin_key), DirectoryServiceClient::new)
        .list_organizations(request())
        .await
        .expect("admin key lists organizations");
}

async fn second_instance_shares_the_database(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let second = srv.second_instance().await;
    assert_ne!(srv.addr, second.addr);
    let user = create_user(&srv, "shared@example.com").await;
    let got = second
        .directory()
        .get_user(pb::GetUserRequest { user_id: user.id })
        .await
        .expect("second instance reads what the first wrote")
        .into_inner();
    assert_eq!(got.email, "shared@example.com");
    second.stop().await;
    // The database outlives the second instance while the first still runs.
    srv.directory()
        .get_user(pb::GetUserRequest { user_id: user.id })
        .await
        .expect("first instance still works");
    srv.stop().await;
}
