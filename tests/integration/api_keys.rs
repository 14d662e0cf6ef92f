//! ApiKeyService through the real server on every engine: keys are created with a secret shown
//! once, listed without it, revoked on one replica and refused on every other within the feed's
//! delivery time, refused after their expiry, bound to one organization, and never managed by an
//! end user acting through a service.

use std::time::Duration;

use prost_types::Timestamp;
use tonic::Code;

use crate::common::{
    ADMIN_KEY, Engine, TestServer, assert_invalid, auth, create_org, create_user, error_info,
    expect_err, list_events, pb, reason, scoped_key,
};
use pb::api_key_service_client::ApiKeyServiceClient;
use pb::directory_service_client::DirectoryServiceClient;

engine_tests!(
    keys_have_a_lifecycle,
    a_revocation_reaches_every_replica,
    an_expired_key_is_refused,
    keys_are_managed_by_admins_not_actors,
    bad_key_requests_name_their_fields,
    bound_admin_keys_manage_their_organization_only
);

fn keys(srv: &TestServer) -> ApiKeyServiceClient<crate::common::AuthChannel> {
    srv.client(ApiKeyServiceClient::new)
}

fn create(name: &str, scopes: &[&str]) -> pb::CreateApiKeyRequest {
    pb::CreateApiKeyRequest {
        name: name.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn in_seconds(seconds: i64) -> Timestamp {
    let at = chrono::Utc::now() + chrono::Duration::seconds(seconds);
    Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    }
}

/// A call that needs `directory.read`, made with `key`.
async fn list_users(srv: &TestServer, key: &str) -> Result<(), tonic::Status> {
    srv.client_with(auth(key), DirectoryServiceClient::new)
        .list_users(pb::ListUsersRequest::default())
        .await
        .map(|_| ())
}

#[track_caller]
fn assert_unauthenticated(result: Result<(), tonic::Status>, want: &str) {
    let status = result.expect_err("the key must be refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(reason(&status).as_deref(), Some(want), "{status:?}");
}

async fn keys_have_a_lifecycle(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let created = keys(&srv)
        .create_api_key(create("billing", &["directory.read"]))
        .await
        .expect("create a key")
        .into_inner();
    let key = created.api_key.expect("the key");
    assert!(created.secret.starts_with("mk_"), "a secret is shown once");
    assert_eq!(key.name, "billing");
    assert_eq!(key.scopes, vec!["directory.read".to_string()]);
    assert!(key.created_at.is_some() && key.revoked_at.is_none());
    assert!(
        !key.created_by_key_id.is_empty(),
        "names the key that made it"
    );
    assert!(key.revision > 0);

    list_users(&srv, &created.secret)
        .await
        .expect("the new key works");
    let missing_scope = expect_err(
        srv.client_with(auth(&created.secret), DirectoryServiceClient::new)
            .create_user(pb::CreateUserRequest {
                email: "x@keys.test".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(missing_scope.code(), Code::PermissionDenied);
    assert_eq!(reason(&missing_scope).as_deref(), Some("MISSING_SCOPE"));

    // Get and List never carry the secret; the use was recorded.
    let got = keys(&srv)
        .get_api_key(pb::GetApiKeyRequest {
            key_id: key.id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.id, key.id);
    let listed = keys(&srv)
        .list_api_keys(pb::ListApiKeysRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.api_keys.iter().any(|k| k.id == key.id));
    assert!(listed.api_keys.len() >= 2, "the bootstrap key too");
    let mut last_used = None;
    for _ in 0..100 {
        last_used = keys(&srv)
            .get_api_key(pb::GetApiKeyRequest {
                key_id: key.id.clone(),
            })
            .await
            .expect("get")
            .into_inner()
            .last_used_at;
        if last_used.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(last_used.is_some(), "last_used_at is recorded");

    // Paging: one key a page, every key once.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = keys(&srv)
            .list_api_keys(pb::ListApiKeysRequest {
                page_size: 1,
                page_token: token.clone(),
            })
            .await
            .expect("page")
            .into_inner();
        seen.extend(page.api_keys.into_iter().map(|k| k.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), listed.api_keys.len());

    let revoked = keys(&srv)
        .revoke_api_key(pb::RevokeApiKeyRequest {
            key_id: key.id.clone(),
        })
        .await
        .expect("revoke")
        .into_inner();
    assert!(revoked.revoked_at.is_some());
    assert_unauthenticated(list_users(&srv, &created.secret).await, "API_KEY_REVOKED");
    // Revoking again changes nothing.
    let again = keys(&srv)
        .revoke_api_key(pb::RevokeApiKeyRequest {
            key_id: key.id.clone(),
        })
        .await
        .expect("revoke again")
        .into_inner();
    assert_eq!(again.revoked_at, revoked.revoked_at);

    // The audit log has both, without the secret.
    let events = list_events(
        &srv,
        pb::ListEventsRequest {
            kind: "api_key.created".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(events.iter().any(|e| {
        e.after
            .as_ref()
            .is_some_and(|a| a.fields.contains_key("id"))
    }));
    let revocations = list_events(
        &srv,
        pb::ListEventsRequest {
            kind: "api_key.revoked".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(revocations.len(), 1, "one revocation event");
    let text = format!("{events:?}{revocations:?}");
    // `mk_<12 hex id>_<secret>`: the secret itself may contain `_`, so split twice only.
    let secret_part = created.secret.splitn(3, '_').nth(2).expect("secret part");
    assert!(secret_part.len() >= 40, "{secret_part}");
    assert!(!text.contains(secret_part), "no secret in events");

    assert_unauthenticated(list_users(&srv, "mk_unknown_key").await, "API_KEY_UNKNOWN");
    srv.stop().await;
}

async fn a_revocation_reaches_every_replica(engine: Engine) {
    let Some(a) = TestServer::start(engine).await else {
        return;
    };
    let b = a.second_instance().await;
    let secret = keys(&a)
        .create_api_key(create("replicated", &["directory.read"]))
        .await
        .expect("create on A")
        .into_inner();
    let key_id = secret.api_key.expect("key").id;
    // B knows the key (and caches it).
    list_users(&b, &secret.secret)
        .await
        .expect("B accepts the key");
    keys(&a)
        .revoke_api_key(pb::RevokeApiKeyRequest { key_id })
        .await
        .expect("revoke on A");
    // B follows the feed: within its delivery time the cached key is refused. The loop bounds
    // the wait; it does not time the delivery.
    let mut outcome = Ok(());
    for _ in 0..200 {
        outcome = list_users(&b, &secret.secret).await;
        if outcome.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_unauthenticated(outcome, "API_KEY_REVOKED");
    b.stop().await;
    a.stop().await;
}

async fn an_expired_key_is_refused(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let created = keys(&srv)
        .create_api_key(pb::CreateApiKeyRequest {
            expires_at: Some(in_seconds(2)),
            ..create("short-lived", &["directory.read"])
        })
        .await
        .expect("create")
        .into_inner();
    let key = created.api_key.expect("key");
    assert!(key.expires_at.is_some());
    list_users(&srv, &created.secret)
        .await
        .expect("works before its expiry");
    let expires = key.expires_at.expect("expiry").seconds;
    while chrono::Utc::now().timestamp() <= expires {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_unauthenticated(list_users(&srv, &created.secret).await, "API_KEY_EXPIRED");
    srv.stop().await;
}

async fn keys_are_managed_by_admins_not_actors(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let owner = create_user(&srv, "owner@keys.test").await;
    let mut acting = srv.client_with(auth(ADMIN_KEY).actor(owner.id), ApiKeyServiceClient::new);
    let refused = expect_err(acting.create_api_key(create("mine", &["admin"])).await);
    assert_eq!(refused.code(), Code::PermissionDenied);
    let info = error_info(&refused).expect("ErrorInfo");
    assert_eq!(info.reason, "ACTOR_LACKS_PERMISSION");
    assert_eq!(
        info.metadata.get("rule").map(String::as_str),
        Some("NOT_WITH_ACTOR")
    );
    let refused = expect_err(
        acting
            .list_api_keys(pb::ListApiKeysRequest::default())
            .await,
    );
    assert_eq!(refused.code(), Code::PermissionDenied);

    let writer = scoped_key(&srv, &["directory.write", "memberships.write"]).await;
    let refused = expect_err(
        srv.client_with(auth(&writer), ApiKeyServiceClient::new)
            .list_api_keys(pb::ListApiKeysRequest::default())
            .await,
    );
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused).as_deref(), Some("MISSING_SCOPE"));
    let listed = keys(&srv)
        .list_api_keys(pb::ListApiKeysRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(
        listed.api_keys.iter().all(|k| k.name != "mine"),
        "nothing was created"
    );
    srv.stop().await;
}

async fn bad_key_requests_name_their_fields(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let status = expect_err(
        keys(&srv)
            .create_api_key(pb::CreateApiKeyRequest {
                name: "x".repeat(101),
                scopes: vec!["everything".into()],
                ..Default::default()
            })
            .await,
    );
    assert_invalid(&status, "scopes");
    let status = expect_err(
        keys(&srv)
            .create_api_key(pb::CreateApiKeyRequest {
                name: "x".repeat(101),
                scopes: vec![],
                organization_id: Some(0),
                expires_at: Some(in_seconds(-60)),
                rate_limit_per_second: Some(0),
                ..Default::default()
            })
            .await,
    );
    for field in [
        "name",
        "scopes",
        "organization_id",
        "expires_at",
        "rate_limit_per_second",
    ] {
        assert_invalid(&status, field);
    }
    let status = expect_err(
        keys(&srv)
            .create_api_key(pb::CreateApiKeyRequest {
                organization_id: Some(999_999),
                ..create("nowhere", &["admin"])
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = expect_err(
        keys(&srv)
            .get_api_key(pb::GetApiKeyRequest {
                key_id: String::new(),
            })
            .await,
    );
    assert_invalid(&status, "key_id");
    let status = expect_err(
        keys(&srv)
            .revoke_api_key(pb::RevokeApiKeyRequest {
                key_id: "key_000000000000".into(),
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound);
    let status = expect_err(
        keys(&srv)
            .list_api_keys(pb::ListApiKeysRequest {
                page_size: -1,
                page_token: "nope".into(),
            })
            .await,
    );
    assert_invalid(&status, "page_size");
    assert_invalid(&status, "page_token");
    srv.stop().await;
}

async fn bound_admin_keys_manage_their_organization_only(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let acme = create_org(&srv, "acme").await;
    let other = create_org(&srv, "other").await;
    let bound = keys(&srv)
        .create_api_key(pb::CreateApiKeyRequest {
            organization_id: Some(acme.id),
            ..create("acme-admin", &["admin"])
        })
        .await
        .expect("a bound admin key")
        .into_inner();
    let other_key = keys(&srv)
        .create_api_key(pb::CreateApiKeyRequest {
            organization_id: Some(other.id),
            ..create("other-admin", &["admin"])
        })
        .await
        .expect("another organization's key")
        .into_inner()
        .api_key
        .expect("key");
    assert_eq!(
        bound.api_key.as_ref().and_then(|k| k.organization_id),
        Some(acme.id)
    );
    let mut as_bound = srv.client_with(auth(&bound.secret), ApiKeyServiceClient::new);

    let unbound = expect_err(as_bound.create_api_key(create("free", &["admin"])).await);
    assert_eq!(unbound.code(), Code::PermissionDenied);
    assert_eq!(
        reason(&unbound).as_deref(),
        Some("KEY_BOUND_TO_ORGANIZATION")
    );
    let elsewhere = expect_err(
        as_bound
            .create_api_key(pb::CreateApiKeyRequest {
                organization_id: Some(other.id),
                ..create("elsewhere", &["admin"])
            })
            .await,
    );
    assert_eq!(elsewhere.code(), Code::NotFound);
    let own = as_bound
        .create_api_key(pb::CreateApiKeyRequest {
            organization_id: Some(acme.id),
            ..create("acme-reader", &["directory.read"])
        })
        .await
        .expect("a key of its own organization")
        .into_inner()
        .api_key
        .expect("key");
    assert_eq!(own.created_by_key_id, bound.api_key.expect("key").id);

    let listed = as_bound
        .list_api_keys(pb::ListApiKeysRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(
        listed
            .api_keys
            .iter()
            .all(|k| k.organization_id == Some(acme.id)),
        "{listed:?}"
    );
    for hidden in [other_key.id.clone(), "key_bootstrap".to_string()] {
        let status = expect_err(
            as_bound
                .get_api_key(pb::GetApiKeyRequest {
                    key_id: hidden.clone(),
                })
                .await,
        );
        assert_eq!(status.code(), Code::NotFound, "{hidden}");
        let status = expect_err(
            as_bound
                .revoke_api_key(pb::RevokeApiKeyRequest { key_id: hidden })
                .await,
        );
        assert_eq!(status.code(), Code::NotFound);
    }
    srv.stop().await;
}
