//! Bulk imports on every engine: ImportUsers and ImportMemberships create every entry or none,
//! under the rules of the single creates (validation, uniqueness also within the batch, the
//! membership limit counting the batch, organization membership for a sub-team, the
//! auto-accepted domain, the actor policy, organization-bound keys), with one event per entry in
//! entry order.

use membership_service::pb;
use pb::MembershipRole;
use pb::api_key_service_client::ApiKeyServiceClient;
use pb::directory_service_client::DirectoryServiceClient;
use pb::membership_service_client::MembershipServiceClient;
use tonic::Code;

use crate::common::{
    Engine, TestServer, add_member, assert_invalid, auth, create_org, create_org_with, create_role,
    create_team, create_user, error_info, event_count, events_after, expect_err, last_sequence,
    new_membership, new_user, reason,
};

engine_tests!(
    imports_users_and_memberships_with_one_event_each,
    one_bad_entry_writes_nothing,
    the_rules_of_the_single_create_hold_for_every_entry,
    an_actor_is_judged_for_every_entry,
    a_bound_key_imports_into_its_organization_only,
    batch_sizes_are_bounded,
    imported_memberships_expire_like_created_ones,
);

fn users(prefix: &str, n: usize) -> Vec<pb::CreateUserRequest> {
    (0..n)
        .map(|i| new_user(&format!("{prefix}{i}@import.test")))
        .collect()
}

async fn import_users(srv: &TestServer, users: Vec<pb::CreateUserRequest>) -> Vec<pb::User> {
    srv.directory()
        .import_users(pb::ImportUsersRequest { users })
        .await
        .unwrap_or_else(|s| panic!("import users: {s:?}"))
        .into_inner()
        .users
}

fn entries(user_ids: &[i64]) -> Vec<pb::CreateMembershipRequest> {
    user_ids
        .iter()
        .map(|id| new_membership(0, *id, MembershipRole::Member, false))
        .collect()
}

fn import(
    team_id: i64,
    memberships: Vec<pb::CreateMembershipRequest>,
) -> pb::ImportMembershipsRequest {
    pb::ImportMembershipsRequest {
        team_id,
        memberships,
    }
}

/// The count SQLite imports in the happy path; the servers' engines import fewer (slower
/// set-up, same code).
fn happy_count(engine: Engine) -> usize {
    if engine.name() == "sqlite" {
        1_000
    } else {
        120
    }
}

async fn imports_users_and_memberships_with_one_event_each(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let n = happy_count(engine);
    let before = last_sequence(&srv).await;
    let mut requests = users("u", n);
    requests[1].username = Some("second".into());
    let imported = srv
        .directory()
        .import_users(pb::ImportUsersRequest { users: requests })
        .await
        .expect("import users")
        .into_inner();
    assert_eq!(imported.users.len(), n);
    assert_eq!(imported.users[0].email, "u0@import.test");
    assert_eq!(imported.users[1].username.as_deref(), Some("second"));
    assert_eq!(
        imported.users[n - 1].email,
        format!("u{}@import.test", n - 1)
    );
    assert_eq!(imported.revision, before + n as i64);
    let events = events_after(&srv, before).await;
    assert_eq!(events.len(), n, "one event per user");
    for (i, (event, user)) in events.iter().zip(&imported.users).enumerate() {
        assert_eq!(event.kind, "user.created", "event {i}");
        assert_eq!(event.user_id, Some(user.id), "event {i} in entry order");
        assert_eq!(
            event.sequence, user.revision,
            "entry {i}'s revision is its event"
        );
    }
    let fetched = srv
        .directory()
        .get_user(pb::GetUserRequest {
            user_id: imported.users[7].id,
        })
        .await
        .expect("an imported user reads back")
        .into_inner();
    assert_eq!(fetched.email, "u7@import.test");

    let ids: Vec<i64> = imported.users.iter().map(|u| u.id).collect();
    let before = last_sequence(&srv).await;
    let mut memberships = entries(&ids);
    memberships[0].role = MembershipRole::Admin as i32;
    memberships[1].team_id = org.id;
    memberships[2].role_id = "owner_role".into();
    memberships[2].role = 0;
    memberships[3].accepted = true;
    let answer = srv
        .memberships()
        .import_memberships(import(org.id, memberships))
        .await
        .expect("import memberships")
        .into_inner();
    assert_eq!(answer.memberships.len(), n);
    assert_eq!(answer.revision, before + n as i64);
    let m = &answer.memberships;
    assert_eq!(m[0].role, MembershipRole::Admin as i32);
    assert_eq!(m[1].role, MembershipRole::Member as i32);
    assert_eq!(m[2].role, MembershipRole::Owner as i32);
    assert!(m[3].accepted && !m[4].accepted);
    assert_eq!(
        m[5].user.as_ref().map(|u| u.email.as_str()),
        Some("u5@import.test")
    );
    let events = events_after(&srv, before).await;
    assert_eq!(events.len(), n, "one event per membership");
    for (i, (event, membership)) in events.iter().zip(m).enumerate() {
        assert_eq!(event.kind, "membership.created", "event {i}");
        assert_eq!(
            event.membership_id,
            Some(membership.id),
            "event {i} in entry order"
        );
        assert_eq!(event.user_id, Some(ids[i]));
        assert_eq!(event.team_id, Some(org.id));
    }
    let read = srv
        .memberships()
        .get_membership(pb::GetMembershipRequest {
            team_id: org.id,
            member: Some(pb::get_membership_request::Member::UserId(ids[n - 1])),
            consistency: Some(pb::Consistency {
                requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
            }),
            ..Default::default()
        })
        .await
        .expect("an imported membership reads back")
        .into_inner();
    assert_eq!(read.id, m[n - 1].id);
    srv.stop().await;
}

async fn one_bad_entry_writes_nothing(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let ids: Vec<i64> = import_users(&srv, users("u", 12))
        .await
        .iter()
        .map(|u| u.id)
        .collect();
    let events = event_count(&srv).await;

    // Field violations name every bad entry.
    let mut bad_users = users("v", 10);
    bad_users[3].email = "not-an-email".into();
    bad_users[7].avatar_url = "ftp://x".into();
    bad_users[8].request_id = "r-1".into();
    bad_users[9].email = "v0@import.test".into();
    let status = expect_err(
        srv.directory()
            .import_users(pb::ImportUsersRequest { users: bad_users })
            .await,
    );
    for field in [
        "users[3].email",
        "users[7].avatar_url",
        "users[8].request_id",
        "users[9].email",
    ] {
        assert_invalid(&status, field);
    }

    let mut memberships = entries(&ids);
    memberships[7].role_id = " ".into();
    memberships[9].team_id = org.id + 100;
    memberships[10].user_id = ids[2];
    let status = expect_err(
        srv.memberships()
            .import_memberships(import(org.id, memberships))
            .await,
    );
    for field in [
        "memberships[7].role_id",
        "memberships[9].team_id",
        "memberships[10].user_id",
    ] {
        assert_invalid(&status, field);
    }

    // A rule broken in the middle (an unknown role): nothing before it was kept.
    let mut memberships = entries(&ids);
    memberships[5].role_id = "no-such-role".into();
    let status = expect_err(
        srv.memberships()
            .import_memberships(import(org.id, memberships))
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(reason(&status).as_deref(), Some("ROLE_NOT_FOUND"));
    assert!(status.message().contains("memberships[5]"), "{status:?}");

    // An email already taken by an earlier import.
    let mut taken = users("w", 5);
    taken[4].email = "u3@import.test".into();
    let status = expect_err(
        srv.directory()
            .import_users(pb::ImportUsersRequest { users: taken })
            .await,
    );
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert!(status.message().contains("users[4]"), "{status:?}");

    assert_eq!(event_count(&srv).await, events, "nothing was written");
    let listed = srv
        .memberships()
        .list_memberships(pb::ListMembershipsRequest {
            team_id: org.id,
            consistency: Some(pb::Consistency {
                requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
            }),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(listed.memberships.is_empty(), "{listed:?}");
    let w0 = srv
        .directory()
        .list_users(pb::ListUsersRequest {
            email: "w0@import.test".into(),
            ..Default::default()
        })
        .await
        .expect("list users")
        .into_inner();
    assert!(w0.users.is_empty(), "no user of the refused import exists");
    srv.stop().await;
}

async fn the_rules_of_the_single_create_hold_for_every_entry(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let limited = create_org_with(
        &srv,
        pb::CreateOrganizationRequest {
            slug: "limited".into(),
            max_allowed_memberships: 5,
            auto_accept_email_domain: "import.test".into(),
            ..Default::default()
        },
    )
    .await;
    let ids: Vec<i64> = import_users(&srv, users("u", 8))
        .await
        .iter()
        .map(|u| u.id)
        .collect();
    let outsider = create_user(&srv, "outsider@elsewhere.test").await.id;
    add_member(&srv, limited.id, ids[0], MembershipRole::Owner).await;
    let events = event_count(&srv).await;

    // The limit counts the batch: 1 member + 5 entries > 5.
    let status = expect_err(
        srv.memberships()
            .import_memberships(import(limited.id, entries(&ids[1..6])))
            .await,
    );
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(reason(&status).as_deref(), Some("MEMBERSHIP_LIMIT_REACHED"));
    assert!(status.message().contains("memberships[4]"), "{status:?}");
    // Already a member.
    let status = expect_err(
        srv.memberships()
            .import_memberships(import(limited.id, entries(&[ids[1], ids[0]])))
            .await,
    );
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert!(status.message().contains("memberships[1]"), "{status:?}");
    // A missing user.
    let status = expect_err(
        srv.memberships()
            .import_memberships(import(limited.id, entries(&[ids[1], 999_999])))
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("memberships[1]"), "{status:?}");
    assert_eq!(event_count(&srv).await, events);

    // Up to the limit it goes, and the auto-accepted domain applies per entry.
    let mut batch = entries(&[ids[1], ids[2], outsider]);
    batch[2].accepted = false;
    let answer = srv
        .memberships()
        .import_memberships(import(limited.id, batch))
        .await
        .expect("within the limit")
        .into_inner();
    let accepted: Vec<bool> = answer.memberships.iter().map(|m| m.accepted).collect();
    assert_eq!(
        accepted,
        [true, true, false],
        "auto-accepted by domain only"
    );

    // A sub-team needs organization memberships from before the call.
    let team = create_team(&srv, limited.id, "eng").await;
    let status = expect_err(
        srv.memberships()
            .import_memberships(import(team.id, entries(&[ids[1], ids[3]])))
            .await,
    );
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        reason(&status).as_deref(),
        Some("NOT_AN_ORGANIZATION_MEMBER")
    );
    assert!(status.message().contains("memberships[1]"), "{status:?}");
    let answer = srv
        .memberships()
        .import_memberships(import(team.id, entries(&[ids[1], ids[2]])))
        .await
        .expect("organization members join the sub-team")
        .into_inner();
    assert!(answer.memberships.iter().all(|m| m.team_id == team.id));
    assert!(
        answer
            .memberships
            .iter()
            .all(|m| m.organization_id == limited.id)
    );

    // Duplicates within one ImportUsers batch.
    let mut twice = users("d", 3);
    twice[2].email = "D0@import.test".into();
    twice[0].username = Some("dup".into());
    twice[1].username = Some("dup".into());
    let status = expect_err(
        srv.directory()
            .import_users(pb::ImportUsersRequest { users: twice })
            .await,
    );
    assert_invalid(&status, "users[2].email");
    assert_invalid(&status, "users[1].username");
    srv.stop().await;
}

async fn an_actor_is_judged_for_every_entry(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let admin = create_user(&srv, "admin@acme.test").await.id;
    add_member(&srv, org.id, admin, MembershipRole::Admin).await;
    let ids: Vec<i64> = import_users(&srv, users("u", 4))
        .await
        .iter()
        .map(|u| u.id)
        .collect();
    let billing = create_role(&srv, org.id, "Billing", &["organization.manageBilling"]).await;
    let events = event_count(&srv).await;
    let as_admin = srv.client_with(srv.auth().actor(admin), MembershipServiceClient::new);

    // The third entry grants a permission the admin lacks: nothing is written.
    let mut batch = entries(&ids);
    batch[2].role_id = billing.id.clone();
    let status = expect_err(
        as_admin
            .clone()
            .import_memberships(import(org.id, batch))
            .await,
    );
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let info = error_info(&status).expect("error info");
    assert_eq!(
        info.metadata.get("rule").map(String::as_str),
        Some("NO_ESCALATION")
    );
    assert!(status.message().contains("memberships[2]"), "{status:?}");
    assert_eq!(event_count(&srv).await, events, "nothing written");

    // Entries the admin may create each go through.
    let answer = as_admin
        .clone()
        .import_memberships(import(org.id, entries(&ids)))
        .await
        .expect("an admin invites members")
        .into_inner();
    assert_eq!(answer.memberships.len(), ids.len());
    let events_after_import = events_after(&srv, answer.revision - ids.len() as i64).await;
    assert!(
        events_after_import
            .iter()
            .all(|e| e.actor_user_id == Some(admin)),
        "the events name the actor"
    );

    // ImportUsers refuses an actor, like CreateUser.
    let before_refusal = event_count(&srv).await;
    let status = expect_err(
        srv.client_with(srv.auth().actor(admin), DirectoryServiceClient::new)
            .import_users(pb::ImportUsersRequest {
                users: users("x", 2),
            })
            .await,
    );
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let info = error_info(&status).expect("error info");
    assert_eq!(
        info.metadata.get("rule").map(String::as_str),
        Some("NOT_WITH_ACTOR")
    );
    assert_eq!(event_count(&srv).await, before_refusal, "nothing written");
    srv.stop().await;
}

async fn a_bound_key_imports_into_its_organization_only(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let a = create_org(&srv, "alpha").await.id;
    let b = create_org(&srv, "beta").await.id;
    let stranger = create_user(&srv, "stranger@beta.test").await.id;
    add_member(&srv, b, stranger, MembershipRole::Member).await;
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
    let directory = srv.client_with(auth(&bound), DirectoryServiceClient::new);
    let memberships = srv.client_with(auth(&bound), MembershipServiceClient::new);

    // Users a bound key imports are its organization's, as with CreateUser.
    let created = directory
        .clone()
        .import_users(pb::ImportUsersRequest {
            users: users("a", 3),
        })
        .await
        .expect("a bound key imports users")
        .into_inner();
    let ids: Vec<i64> = created.users.iter().map(|u| u.id).collect();
    let events = events_after(&srv, created.revision - 3).await;
    assert!(
        events.iter().all(|e| e.organization_id == Some(a)),
        "{events:?}"
    );

    let status = expect_err(
        memberships
            .clone()
            .import_memberships(import(b, entries(&ids)))
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = expect_err(
        memberships
            .clone()
            .import_memberships(import(a, entries(&[ids[0], stranger])))
            .await,
    );
    assert_eq!(
        status.code(),
        Code::NotFound,
        "a user it does not see: {status:?}"
    );
    assert!(status.message().contains("memberships[1]"), "{status:?}");
    let answer = memberships
        .clone()
        .import_memberships(import(a, entries(&ids)))
        .await
        .expect("into its organization")
        .into_inner();
    assert_eq!(answer.memberships.len(), 3);
    srv.stop().await;
}

async fn batch_sizes_are_bounded(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let status = expect_err(
        srv.directory()
            .import_users(pb::ImportUsersRequest { users: vec![] })
            .await,
    );
    assert_invalid(&status, "users");
    let status = expect_err(
        srv.directory()
            .import_users(pb::ImportUsersRequest {
                users: users("u", 1_001),
            })
            .await,
    );
    assert_invalid(&status, "users");
    let status = expect_err(
        srv.memberships()
            .import_memberships(import(org.id, vec![]))
            .await,
    );
    assert_invalid(&status, "memberships");
    let too_many: Vec<i64> = (1..=1_001).collect();
    let status = expect_err(
        srv.memberships()
            .import_memberships(import(org.id, entries(&too_many)))
            .await,
    );
    assert_invalid(&status, "memberships");
    let status = expect_err(
        srv.memberships()
            .import_memberships(import(0, entries(&[1])))
            .await,
    );
    assert_invalid(&status, "team_id");
    assert_eq!(
        srv.memberships()
            .import_memberships(import(org.id, entries(&[1])))
            .await
            .map(|_| ())
            .map_err(|s| s.code()),
        Err(Code::NotFound),
        "user 1 does not exist"
    );
    srv.stop().await;
}

/// `expires_at` in an entry is kept, checked like CreateMembership's (in the future, never on an
/// OWNER, an expiring organization membership limits its sub-team memberships), and refused
/// per entry.
async fn imported_memberships_expire_like_created_ones(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await.id;
    let team = create_team(&srv, org, "sales").await.id;
    let ids: Vec<i64> = import_users(&srv, users("exp", 3))
        .await
        .iter()
        .map(|u| u.id)
        .collect();
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let at = prost_types::Timestamp {
        seconds: later.timestamp(),
        nanos: 0,
    };
    let mut org_entries = entries(&ids);
    org_entries[0].expires_at = Some(at);
    let imported = srv
        .memberships()
        .import_memberships(import(org, org_entries))
        .await
        .expect("import with an expiry")
        .into_inner()
        .memberships;
    assert_eq!(imported[0].expires_at, Some(at));
    assert_eq!(imported[1].expires_at, None);

    // An OWNER never expires: refused, naming the entry, nothing written.
    let before = last_sequence(&srv).await;
    let mut owner = entries(&ids[1..2]);
    owner[0].role = MembershipRole::Owner as i32;
    owner[0].expires_at = Some(at);
    let status = expect_err(
        srv.memberships()
            .import_memberships(import(team, owner))
            .await,
    );
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(reason(&status).as_deref(), Some("OWNER_CANNOT_EXPIRE"));
    // Nor through an expiring organization membership (user 0's).
    let mut lapsing = entries(&ids[..1]);
    lapsing[0].role = MembershipRole::Owner as i32;
    let status = expect_err(
        srv.memberships()
            .import_memberships(import(team, lapsing))
            .await,
    );
    assert_eq!(
        reason(&status).as_deref(),
        Some("OWNER_CANNOT_EXPIRE"),
        "{status:?}"
    );
    // A past instant is bad input on the entry's field.
    let mut past = entries(&ids[2..3]);
    past[0].expires_at = Some(prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() - 60,
        nanos: 0,
    });
    let status = expect_err(
        srv.memberships()
            .import_memberships(import(team, past))
            .await,
    );
    assert_invalid(&status, "memberships[0].expires_at");
    assert_eq!(last_sequence(&srv).await, before, "nothing written");
    srv.stop().await;
}
