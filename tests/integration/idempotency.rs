//! Safe retries on every engine: a create sent again with the same `request_id` by the same API
//! key gets its first answer back (same resource, same revision, nothing new written), also when
//! the first response was lost and when the duplicates arrive at once; another key, another
//! request, a failed first attempt or a day-old answer do not get it; the actor rules still
//! apply to a retry.

use std::sync::Arc;
use std::time::Duration;

use membership_service::storage::Store;
use pb::MembershipRole;
use pb::api_key_service_client::ApiKeyServiceClient;
use pb::directory_service_client::DirectoryServiceClient;
use sea_orm::ConnectionTrait;
use tokio::sync::Barrier;
use tonic::Code;

use crate::common::{
    Engine, TestServer, add_member, assert_invalid, auth, create_org, create_user, event_count,
    expect_err, new_membership, new_role, new_user, pb, reason, scoped_key,
};

engine_tests!(
    every_create_answers_a_retry_with_its_first_answer,
    a_lost_response_is_answered_by_the_retry,
    request_ids_belong_to_one_key_and_one_request,
    concurrent_duplicates_create_once,
    a_failed_create_is_not_remembered,
    an_answer_older_than_a_day_is_not_honoured,
    a_retry_is_authorized_like_the_first_attempt,
);

fn keys(srv: &TestServer, key: &str) -> ApiKeyServiceClient<crate::common::AuthChannel> {
    srv.client_with_key(key, ApiKeyServiceClient::new)
}

fn new_key(name: &str, request_id: &str) -> pb::CreateApiKeyRequest {
    pb::CreateApiKeyRequest {
        name: name.into(),
        scopes: vec!["directory.read".into()],
        request_id: request_id.into(),
        ..Default::default()
    }
}

/// Sends `$call` twice with the same request: the answers are equal and the retry wrote no
/// event. Returns the first answer.
macro_rules! twice {
    ($srv:expr, $client:expr, $method:ident, $request:expr) => {{
        let request = $request;
        let first = $client
            .$method(request.clone())
            .await
            .unwrap_or_else(|s| panic!("{}: {s:?}", stringify!($method)))
            .into_inner();
        let events = event_count($srv).await;
        let again = $client
            .$method(request)
            .await
            .unwrap_or_else(|s| panic!("retry of {}: {s:?}", stringify!($method)))
            .into_inner();
        assert_eq!(first, again, "{}: the retry's answer", stringify!($method));
        assert_eq!(
            event_count($srv).await,
            events,
            "{}: the retry wrote nothing",
            stringify!($method)
        );
        first
    }};
}

/// Runs SQL on the test's database, as an operator with a shell would.
async fn sql(srv: &TestServer, statement: &str) {
    let store = Store::connect(&srv.database_url, 1).await.expect("connect");
    store
        .conn()
        .execute_unprepared(statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    store.close().await.ok();
}

async fn every_create_answers_a_retry_with_its_first_answer(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let ada = create_user(&srv, "ada@acme.test").await;

    let user = twice!(&srv, srv.directory(), create_user, {
        let mut r = new_user("bob@acme.test");
        r.request_id = "user-1".into();
        r
    });
    let created_org = twice!(
        &srv,
        srv.directory(),
        create_organization,
        pb::CreateOrganizationRequest {
            name: "Globex".into(),
            request_id: "org-1".into(),
            ..Default::default()
        }
    );
    let team = twice!(
        &srv,
        srv.directory(),
        create_team,
        pb::CreateTeamRequest {
            organization_id: org.id,
            name: "Eng".into(),
            request_id: "team-1".into(),
            ..Default::default()
        }
    );
    let membership = twice!(&srv, srv.memberships(), create_membership, {
        let mut r = new_membership(org.id, ada.id, MembershipRole::Member, true);
        r.request_id = "membership-1".into();
        r
    });
    let role = twice!(&srv, srv.roles(), create_role, {
        let mut r = new_role(org.id, "Auditor", &["team.listMembers"]);
        r.request_id = "role-1".into();
        r
    });
    let attribute = twice!(
        &srv,
        srv.attributes(),
        create_attribute,
        pb::CreateAttributeRequest {
            organization_id: org.id,
            name: "Department".into(),
            r#type: pb::AttributeType::SingleSelect as i32,
            options: vec!["Sales".into()],
            request_id: "attribute-1".into(),
            ..Default::default()
        }
    );
    let key = twice!(
        &srv,
        keys(&srv, &srv.admin_key),
        create_api_key,
        new_key("reader", "key-1")
    );
    for revision in [
        user.revision,
        created_org.revision,
        team.revision,
        membership.revision,
        role.revision,
        attribute.revision,
        key.api_key.as_ref().expect("api_key").revision,
    ] {
        assert!(revision > 0, "a create's answer carries its revision");
    }
    // The remembered secret is the key's: it works, once the retry has handed it out again.
    srv.client_with_key(&key.secret, DirectoryServiceClient::new)
        .list_users(pb::ListUsersRequest::default())
        .await
        .expect("the replayed secret authenticates");

    // Nothing was created twice.
    let users = srv
        .directory()
        .list_users(pb::ListUsersRequest::default())
        .await
        .expect("list users")
        .into_inner()
        .users;
    assert_eq!(users.len(), 2, "{users:?}");
    let listed_keys = keys(&srv, &srv.admin_key)
        .list_api_keys(pb::ListApiKeysRequest::default())
        .await
        .expect("list keys")
        .into_inner()
        .api_keys;
    assert_eq!(
        listed_keys.iter().filter(|k| k.name == "reader").count(),
        1,
        "{listed_keys:?}"
    );
    srv.stop().await;
}

async fn a_lost_response_is_answered_by_the_retry(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let request = pb::CreateOrganizationRequest {
        name: "Initech".into(),
        request_id: "lost-1".into(),
        ..Default::default()
    };
    // The first answer is lost: whether the write committed before the deadline or not, the
    // retry must end with exactly one organization, and tell its id.
    let mut hurried = tonic::Request::new(request.clone());
    hurried.set_timeout(Duration::from_millis(1));
    let _ = srv.directory().create_organization(hurried).await;
    let retried = srv
        .directory()
        .create_organization(request.clone())
        .await
        .expect("the retry")
        .into_inner();
    let again = srv
        .directory()
        .create_organization(request)
        .await
        .expect("another retry")
        .into_inner();
    assert_eq!(retried, again);
    let orgs = srv
        .directory()
        .list_organizations(pb::ListOrganizationsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .organizations;
    let ids: Vec<i64> = orgs.iter().map(|o| o.id).collect();
    assert_eq!(ids, vec![retried.id], "{orgs:?}");
    srv.stop().await;
}

async fn request_ids_belong_to_one_key_and_one_request(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let other_admin = scoped_key(&srv, &["admin"]).await;
    let first = keys(&srv, &srv.admin_key)
        .create_api_key(new_key("reader", "shared-id"))
        .await
        .expect("first key")
        .into_inner();
    // Another key's request id is its own: the same request makes a new key.
    let theirs = keys(&srv, &other_admin)
        .create_api_key(new_key("reader", "shared-id"))
        .await
        .expect("other caller's key")
        .into_inner();
    assert_ne!(first.api_key, theirs.api_key);
    assert_ne!(first.secret, theirs.secret);

    // The same id with another request, or on another method, is refused; nothing is written.
    let events = event_count(&srv).await;
    let status = expect_err(
        keys(&srv, &srv.admin_key)
            .create_api_key(new_key("writer", "shared-id"))
            .await,
    );
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(reason(&status).as_deref(), Some("REQUEST_ID_REUSED"));
    let mut user = new_user("ada@acme.test");
    user.request_id = "shared-id".into();
    let status = expect_err(srv.directory().create_user(user).await);
    assert_eq!(reason(&status).as_deref(), Some("REQUEST_ID_REUSED"));
    assert_eq!(event_count(&srv).await, events);

    // Empty is absent: every such create creates.
    let a = keys(&srv, &srv.admin_key)
        .create_api_key(new_key("plain", ""))
        .await
        .expect("without an id")
        .into_inner();
    let b = keys(&srv, &srv.admin_key)
        .create_api_key(new_key("plain", ""))
        .await
        .expect("again without an id")
        .into_inner();
    assert_ne!(a.api_key, b.api_key);

    // Long or unprintable ids are refused naming the field; 128 characters are fine.
    for bad in ["x".repeat(129), "two words".into(), "naïve".into()] {
        let status = expect_err(
            keys(&srv, &srv.admin_key)
                .create_api_key(new_key("bad", &bad))
                .await,
        );
        assert_invalid(&status, "request_id");
    }
    keys(&srv, &srv.admin_key)
        .create_api_key(new_key("long", &"x".repeat(128)))
        .await
        .expect("a 128-character id");
    srv.stop().await;
}

async fn concurrent_duplicates_create_once(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    const AT_ONCE: usize = 8;
    for round in 0..3 {
        let request = pb::CreateOrganizationRequest {
            name: format!("Race {round}"),
            request_id: format!("race-{round}"),
            ..Default::default()
        };
        let barrier = Arc::new(Barrier::new(AT_ONCE));
        let calls: Vec<_> = (0..AT_ONCE)
            .map(|_| {
                let mut client = srv.directory();
                let request = request.clone();
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    client.create_organization(request).await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            let answer = call.await.expect("task").unwrap_or_else(|s| {
                panic!("round {round}: every duplicate gets the answer: {s:?}")
            });
            answers.push(answer.into_inner());
        }
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "round {round}: one answer for all: {answers:?}"
        );
    }
    let orgs = srv
        .directory()
        .list_organizations(pb::ListOrganizationsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .organizations;
    assert_eq!(orgs.len(), 3, "one organization per round: {orgs:?}");
    srv.stop().await;
}

async fn a_failed_create_is_not_remembered(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let taken = create_user(&srv, "ada@acme.test").await;
    let mut request = new_user("ada@acme.test");
    request.request_id = "retry-after-failure".into();
    for attempt in 0..2 {
        let status = expect_err(srv.directory().create_user(request.clone()).await);
        assert_eq!(status.code(), Code::AlreadyExists, "attempt {attempt}");
    }
    // Once the conflict is gone, the same retry creates: nothing of the failures was kept.
    srv.directory()
        .delete_user(pb::DeleteUserRequest {
            user_id: taken.id,
            ..Default::default()
        })
        .await
        .expect("delete");
    let created = srv
        .directory()
        .create_user(request.clone())
        .await
        .expect("the retry after the conflict")
        .into_inner();
    assert_ne!(created.id, taken.id);
    let again = srv
        .directory()
        .create_user(request)
        .await
        .expect("a retry of the success")
        .into_inner();
    assert_eq!(again, created);
    srv.stop().await;
}

async fn an_answer_older_than_a_day_is_not_honoured(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let first = keys(&srv, &srv.admin_key)
        .create_api_key(new_key("reader", "daily"))
        .await
        .expect("first")
        .into_inner();
    // 25 hours ago.
    sql(
        &srv,
        "UPDATE request_ids SET created_at = created_at - 90000000000",
    )
    .await;
    let later = keys(&srv, &srv.admin_key)
        .create_api_key(new_key("reader", "daily"))
        .await
        .expect("a day later")
        .into_inner();
    assert_ne!(
        first.api_key.as_ref().map(|k| &k.id),
        later.api_key.as_ref().map(|k| &k.id),
        "a day-old answer is not given again"
    );
    // The new answer is remembered in its place.
    let again = keys(&srv, &srv.admin_key)
        .create_api_key(new_key("reader", "daily"))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(again, later);

    // Pruning removes what is past the window and keeps the rest.
    let store = Store::connect(&srv.database_url, 1).await.expect("connect");
    let window = chrono::Duration::hours(24);
    let cutoff = (chrono::Utc::now() - window).timestamp_micros();
    assert_eq!(store.prune_request_ids(cutoff).await.expect("prune"), 0);
    sql(
        &srv,
        "UPDATE request_ids SET created_at = created_at - 90000000000",
    )
    .await;
    assert_eq!(store.prune_request_ids(cutoff).await.expect("prune"), 1);
    store.close().await.ok();
    srv.stop().await;
}

async fn a_retry_is_authorized_like_the_first_attempt(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let owner = create_user(&srv, "owner@acme.test").await;
    let member = create_user(&srv, "member@acme.test").await;
    add_member(&srv, org.id, owner.id, MembershipRole::Owner).await;
    add_member(&srv, org.id, member.id, MembershipRole::Member).await;
    let request = pb::CreateTeamRequest {
        organization_id: org.id,
        name: "Eng".into(),
        request_id: "team-by-actor".into(),
        ..Default::default()
    };
    let as_actor =
        |user_id: i64| srv.client_with(srv.auth().actor(user_id), DirectoryServiceClient::new);
    let created = as_actor(owner.id)
        .create_team(request.clone())
        .await
        .expect("the owner creates")
        .into_inner();
    // Through the same key, an actor who may not create a team is refused as on a first
    // attempt, not handed the owner's answer.
    let status = expect_err(as_actor(member.id).create_team(request.clone()).await);
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(reason(&status).as_deref(), Some("ACTOR_LACKS_PERMISSION"));
    // A key without the scope is refused before anything else.
    let reader = scoped_key(&srv, &["directory.read"]).await;
    let status = expect_err(
        srv.client_with(auth(&reader), DirectoryServiceClient::new)
            .create_team(request.clone())
            .await,
    );
    assert_eq!(reason(&status).as_deref(), Some("MISSING_SCOPE"));
    let again = as_actor(owner.id)
        .create_team(request)
        .await
        .expect("the owner's retry")
        .into_inner();
    assert_eq!(again, created);
    srv.stop().await;
}
