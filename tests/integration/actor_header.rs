//! The `x-actor-user-id` header through the real server on every engine: sent more than once it
//! is refused (INVALID_ARGUMENT naming the header) instead of one copy silently winning, and the
//! refused call changes nothing.

use crate::common::{
    Auth, AuthChannel, Engine, TestServer, error_info, expect_err, field_violations, pb,
};
use pb::membership_service_client::MembershipServiceClient;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::{Code, Request, Status};

engine_tests!(
    repeated_actor_header_is_invalid,
    single_actor_header_still_acts
);

const ACTOR_HEADER: &str = "x-actor-user-id";

/// The admin key, with `x-actor-user-id` sent once per value (the harness's `Auth` keeps one).
#[derive(Clone)]
struct Actors {
    auth: Auth,
    ids: Vec<i64>,
}

impl Interceptor for Actors {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let mut request = self.auth.call(request)?;
        for id in &self.ids {
            request
                .metadata_mut()
                .append(ACTOR_HEADER, id.to_string().parse().expect("ASCII id"));
        }
        Ok(request)
    }
}

fn memberships_as(
    srv: &TestServer,
    ids: &[i64],
) -> MembershipServiceClient<InterceptedService<tonic::transport::Channel, Actors>> {
    MembershipServiceClient::new(InterceptedService::new(
        srv.channel(),
        Actors {
            auth: srv.auth(),
            ids: ids.to_vec(),
        },
    ))
}

struct Fixture {
    org: i64,
    owner: i64,
    target: i64,
    target_membership: pb::Membership,
}

async fn user(srv: &TestServer, email: &str) -> i64 {
    srv.directory()
        .create_user(pb::CreateUserRequest {
            email: email.into(),
            name: email.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("create user {email}: {s:?}"))
        .into_inner()
        .id
}

async fn member(
    memberships: &mut MembershipServiceClient<AuthChannel>,
    org: i64,
    user_id: i64,
    role_id: &str,
) -> pb::Membership {
    memberships
        .create_membership(pb::CreateMembershipRequest {
            team_id: org,
            user_id,
            role_id: role_id.into(),
            accepted: true,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("membership of {user_id} as {role_id}: {s:?}"))
        .into_inner()
}

async fn fixture(srv: &TestServer) -> Fixture {
    let org = srv
        .directory()
        .create_organization(pb::CreateOrganizationRequest {
            name: "Acme".into(),
            slug: "acme".into(),
            ..Default::default()
        })
        .await
        .expect("create organization")
        .into_inner()
        .id;
    let owner = user(srv, "owner@acme.test").await;
    let target = user(srv, "target@acme.test").await;
    let mut memberships = srv.memberships();
    member(&mut memberships, org, owner, "owner").await;
    let target_membership = member(&mut memberships, org, target, "member").await;
    Fixture {
        org,
        owner,
        target,
        target_membership,
    }
}

fn promote(f: &Fixture) -> pb::UpdateMembershipRequest {
    pb::UpdateMembershipRequest {
        team_id: f.org,
        member: Some(pb::update_membership_request::Member::UserId(f.target)),
        role_id: Some("admin".into()),
        ..Default::default()
    }
}

async fn last_sequence(srv: &TestServer) -> i64 {
    let mut last = 0;
    let mut token = String::new();
    loop {
        let page = srv
            .events()
            .list_events(pb::ListEventsRequest {
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list events")
            .into_inner();
        last = page.events.last().map_or(last, |e| e.sequence);
        if page.next_page_token.is_empty() {
            return last;
        }
        token = page.next_page_token;
    }
}

fn assert_actor_header_refused(status: &Status, what: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    assert_eq!(
        field_violations(status),
        [ACTOR_HEADER],
        "{what}: {status:?}"
    );
    let info = error_info(status).unwrap_or_else(|| panic!("{what}: no ErrorInfo: {status:?}"));
    assert_eq!(info.reason, "INVALID_ARGUMENT", "{what}");
    assert_eq!(info.domain, "membership.v1", "{what}");
}

async fn repeated_actor_header_is_invalid(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let f = fixture(&srv).await;
    let before = last_sequence(&srv).await;

    // Two different actors, and even the same actor twice: neither copy is picked.
    for ids in [vec![f.owner, f.target], vec![f.owner, f.owner]] {
        let status = expect_err(
            memberships_as(&srv, &ids)
                .update_membership(promote(&f))
                .await,
        );
        assert_actor_header_refused(&status, &format!("update with actors {ids:?}"));
    }
    // Reads look at the header too.
    let status = expect_err(
        memberships_as(&srv, &[f.owner, f.target])
            .get_membership(pb::GetMembershipRequest {
                member: Some(pb::get_membership_request::Member::MembershipId(
                    f.target_membership.id,
                )),
                ..Default::default()
            })
            .await,
    );
    assert_actor_header_refused(&status, "get");

    // Nothing was written.
    assert_eq!(last_sequence(&srv).await, before);
    let after = srv
        .memberships()
        .get_membership(pb::GetMembershipRequest {
            member: Some(pb::get_membership_request::Member::MembershipId(
                f.target_membership.id,
            )),
            ..Default::default()
        })
        .await
        .expect("get membership")
        .into_inner();
    assert_eq!(after.role_id, "member_role");
    assert_eq!(after.etag, f.target_membership.etag);
    srv.stop().await;
}

async fn single_actor_header_still_acts(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let f = fixture(&srv).await;
    let changed = memberships_as(&srv, &[f.owner])
        .update_membership(promote(&f))
        .await
        .expect("the owner promotes a member")
        .into_inner();
    assert_eq!(changed.role_id, "admin_role");
    srv.stop().await;
}
