//! The REST front door through the real server on every engine: cal.com, Close and Clerk routes
//! with whole-body comparisons against the vendors' shapes, the status mapping of errors, the
//! actor header, Close's Basic auth and Clerk's metadata merge.

use std::net::SocketAddr;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::common::{
    ADMIN_KEY, Engine, TestServer, add_member, create_org, create_team, create_user, pb, scoped_key,
};
use pb::MembershipRole;

engine_tests!(
    calcom_memberships,
    calcom_team_memberships_and_roles,
    calcom_errors,
    close_memberships,
    clerk_memberships,
    clerk_errors,
    openapi_document,
    grpc_web_get_user,
);

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
}

/// One HTTP/1.1 request; `auth` is the whole `Authorization` value.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let bytes = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    let response = client
        .request(request.body(Full::new(bytes)).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let raw = response.into_body().collect().await.unwrap().to_bytes();
    let body = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: not JSON ({e}): {}",
                String::from_utf8_lossy(&raw)
            )
        })
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// As the admin key, Bearer.
async fn admin(srv: &TestServer, method: &str, path: &str, body: Option<Value>) -> Answer {
    let auth = bearer(ADMIN_KEY);
    call(srv.addr, method, path, &[("authorization", &auth)], body).await
}

/// Times differ per run: each must be present (a non-empty string or a positive number) and is
/// replaced by `"<time>"` so whole bodies compare.
fn scrub_times(value: &mut Value) {
    const TIMES: [&str; 6] = [
        "createdAt",
        "updatedAt",
        "created_at",
        "updated_at",
        "date_created",
        "date_updated",
    ];
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if TIMES.contains(&key.as_str()) {
                    let present = v.as_str().is_some_and(|s| s.len() >= 20)
                        || v.as_i64().is_some_and(|n| n > 1_600_000_000_000);
                    assert!(present, "{key} = {v}");
                    *v = json!("<time>");
                } else {
                    scrub_times(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub_times),
        _ => {}
    }
}

fn assert_ok(answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.headers["content-type"], "application/json");
}

/// A cal.com error: the HTTP status and the reason code.
fn assert_cal_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body["status"], "error", "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], code, "{}", answer.body);
    assert!(answer.body["error"]["message"].is_string());
}

struct World {
    org: pb::Organization,
    owner: pb::User,
    bob: pb::User,
}

async fn world(srv: &TestServer) -> World {
    let org = create_org(srv, "acme").await;
    let owner = create_user(srv, "ada@acme.com").await;
    let bob = create_user(srv, "bob@acme.com").await;
    add_member(srv, org.id, owner.id, MembershipRole::Owner).await;
    World { org, owner, bob }
}

fn cal_user(u: &pb::User) -> Value {
    json!({"name": u.name, "email": u.email})
}

async fn calcom_memberships(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let w = world(&srv).await;
    let base = format!("/v2/organizations/{}/memberships", w.org.id);

    let created = admin(
        &srv,
        "POST",
        &base,
        Some(json!({"userId": w.bob.id, "role": "ADMIN", "accepted": true})),
    )
    .await;
    assert_ok(&created, 201);
    let id = created.body["data"]["id"].as_i64().expect("an id");
    let mut expected = json!({
        "status": "success",
        "data": {
            "id": id,
            "userId": w.bob.id,
            "teamId": w.org.id,
            "accepted": true,
            "role": "ADMIN",
            "disableImpersonation": false,
            "user": cal_user(&w.bob),
            "attributes": []
        }
    });
    assert_eq!(created.body, expected);

    let got = admin(&srv, "GET", &format!("{base}/{id}"), None).await;
    assert_ok(&got, 200);
    assert_eq!(got.body, expected);

    let patched = admin(
        &srv,
        "PATCH",
        &format!("{base}/{id}"),
        Some(json!({"role": "MEMBER", "disableImpersonation": true})),
    )
    .await;
    assert_ok(&patched, 200);
    expected["data"]["role"] = json!("MEMBER");
    expected["data"]["disableImpersonation"] = json!(true);
    assert_eq!(patched.body, expected);

    let listed = admin(&srv, "GET", &format!("{base}?take=1&skip=1"), None).await;
    assert_ok(&listed, 200);
    assert_eq!(
        listed.body,
        json!({"status": "success", "data": [expected["data"].clone()]})
    );
    let all = admin(&srv, "GET", &base, None).await;
    assert_eq!(
        all.body["data"].as_array().unwrap().len(),
        2,
        "{}",
        all.body
    );
    assert_eq!(all.body["data"][0]["userId"], w.owner.id);
    assert_eq!(all.body["data"][0]["role"], "OWNER");

    let deleted = admin(&srv, "DELETE", &format!("{base}/{id}"), None).await;
    assert_ok(&deleted, 200);
    assert_eq!(deleted.body, expected);
    let gone = admin(&srv, "GET", &format!("{base}/{id}"), None).await;
    assert_cal_error(&gone, 404, "NOT_FOUND");
}

async fn calcom_team_memberships_and_roles(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let w = world(&srv).await;
    let team = create_team(&srv, w.org.id, "sales").await;
    add_member(&srv, w.org.id, w.bob.id, MembershipRole::Member).await;
    let m = add_member(&srv, team.id, w.bob.id, MembershipRole::Admin).await;

    let got = admin(
        &srv,
        "GET",
        &format!(
            "/v2/organizations/{}/teams/{}/memberships/{}",
            w.org.id, team.id, m.id
        ),
        None,
    )
    .await;
    assert_ok(&got, 200);
    assert_eq!(
        got.body,
        json!({"status": "success", "data": {
            "id": m.id, "userId": w.bob.id, "teamId": team.id, "accepted": true,
            "role": "ADMIN", "disableImpersonation": false, "user": cal_user(&w.bob)
        }})
    );
    // The team of another organization is not found through this one.
    let other = create_org(&srv, "other").await;
    let wrong = admin(
        &srv,
        "GET",
        &format!(
            "/v2/organizations/{}/teams/{}/memberships/{}",
            other.id, team.id, m.id
        ),
        None,
    )
    .await;
    assert_eq!(wrong.status, 404, "{}", wrong.body);

    let roles = format!("/v2/organizations/{}/teams/{}/roles", w.org.id, team.id);
    let created = admin(
        &srv,
        "POST",
        &roles,
        Some(
            json!({"name": "Booking manager", "color": "#3366ff", "permissions": ["booking.read"]}),
        ),
    )
    .await;
    assert_ok(&created, 201);
    let role_id = created.body["data"]["id"]
        .as_str()
        .expect("a role id")
        .to_string();
    let mut body = created.body.clone();
    scrub_times(&mut body);
    let mut expected = json!({"status": "success", "data": {
        "id": role_id, "name": "Booking manager", "color": "#3366ff", "description": null,
        "teamId": team.id, "type": "CUSTOM", "permissions": ["booking.read"],
        "createdAt": "<time>", "updatedAt": "<time>"
    }});
    assert_eq!(body, expected);

    let patched = admin(
        &srv,
        "PATCH",
        &format!("{roles}/{role_id}"),
        Some(json!({"description": "Bookings", "permissions": ["booking.read", "booking.update"]})),
    )
    .await;
    assert_ok(&patched, 200);
    let mut body = patched.body.clone();
    scrub_times(&mut body);
    expected["data"]["description"] = json!("Bookings");
    expected["data"]["permissions"] = json!(["booking.read", "booking.update"]);
    assert_eq!(body, expected);

    let mut got = admin(&srv, "GET", &format!("{roles}/{role_id}"), None).await;
    assert_ok(&got, 200);
    scrub_times(&mut got.body);
    assert_eq!(got.body, expected);

    let listed = admin(&srv, "GET", &roles, None).await;
    assert_ok(&listed, 200);
    let kinds: Vec<(&str, &str)> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["type"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&(role_id.as_str(), "CUSTOM")), "{kinds:?}");
    assert!(kinds.contains(&("admin_role", "SYSTEM")), "{kinds:?}");

    let mut deleted = admin(&srv, "DELETE", &format!("{roles}/{role_id}"), None).await;
    assert_ok(&deleted, 200);
    scrub_times(&mut deleted.body);
    assert_eq!(deleted.body, expected);
    let gone = admin(&srv, "GET", &format!("{roles}/{role_id}"), None).await;
    assert_eq!(gone.status, 404, "{}", gone.body);
}

async fn calcom_errors(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let w = world(&srv).await;
    let base = format!("/v2/organizations/{}/memberships", w.org.id);
    let owner_membership = crate::common::get_membership_of(&srv, w.org.id, w.owner.id).await;
    let owner_path = format!("{base}/{}", owner_membership.id);

    // 401: no key, an unknown key.
    let none = call(srv.addr, "GET", &owner_path, &[], None).await;
    assert_cal_error(&none, 401, "API_KEY_UNKNOWN");
    let unknown = call(
        srv.addr,
        "GET",
        &owner_path,
        &[("authorization", "Bearer mk_nobody")],
        None,
    )
    .await;
    assert_eq!(unknown.status, 401);

    // 403: a read key writing.
    let reader = scoped_key(&srv, &["memberships.read"]).await;
    let read = call(
        srv.addr,
        "GET",
        &owner_path,
        &[("authorization", &bearer(&reader))],
        None,
    )
    .await;
    assert_ok(&read, 200);
    let write = call(
        srv.addr,
        "PATCH",
        &owner_path,
        &[("authorization", &bearer(&reader))],
        Some(json!({"accepted": true})),
    )
    .await;
    assert_cal_error(&write, 403, "MISSING_SCOPE");

    // 400: bad JSON, a bad enum, a bad path id, a field the service refuses.
    let bad = admin(&srv, "PATCH", &owner_path, Some(json!({"role": "KING"}))).await;
    assert_cal_error(&bad, 400, "INVALID_ARGUMENT");
    assert_eq!(
        bad.body["error"]["details"]["fieldViolations"][0]["field"],
        "body"
    );
    let bad_id = admin(&srv, "GET", &format!("{base}/abc"), None).await;
    assert_cal_error(&bad_id, 400, "INVALID_ARGUMENT");
    assert_eq!(
        bad_id.body["error"]["details"]["fieldViolations"][0]["field"],
        "membershipId"
    );
    let bad_user = admin(&srv, "POST", &base, Some(json!({"userId": -4}))).await;
    assert_cal_error(&bad_user, 400, "INVALID_ARGUMENT");
    assert!(
        !bad_user.body["error"]["details"]["fieldViolations"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{}",
        bad_user.body
    );

    // 404: an unknown membership, an unknown route.
    let missing = admin(&srv, "GET", &format!("{base}/999999"), None).await;
    assert_cal_error(&missing, 404, "NOT_FOUND");
    let no_route = admin(&srv, "GET", "/v2/nothing", None).await;
    assert_eq!(no_route.status, 404);

    // 409: the last owner cannot be demoted; a second membership of the same user.
    let demote = admin(&srv, "PATCH", &owner_path, Some(json!({"role": "ADMIN"}))).await;
    assert_cal_error(&demote, 409, "LAST_OWNER");
    let again = admin(&srv, "POST", &base, Some(json!({"userId": w.owner.id}))).await;
    assert_eq!(again.status, 409, "{}", again.body);

    // 412: If-Match with a stale etag.
    let stale = call(
        srv.addr,
        "PATCH",
        &owner_path,
        &[
            ("authorization", &bearer(ADMIN_KEY)),
            ("if-match", "\"not-the-etag\""),
        ],
        Some(json!({"disableImpersonation": true})),
    )
    .await;
    assert_cal_error(&stale, 412, "ETAG_MISMATCH");

    // The actor header: Bob, a plain member, may not change the owner's membership.
    add_member(&srv, w.org.id, w.bob.id, MembershipRole::Member).await;
    let bob = w.bob.id.to_string();
    let denied = call(
        srv.addr,
        "PATCH",
        &owner_path,
        &[
            ("authorization", &bearer(ADMIN_KEY)),
            ("x-actor-user-id", &bob),
        ],
        Some(json!({"disableImpersonation": true})),
    )
    .await;
    assert_cal_error(&denied, 403, "ACTOR_LACKS_PERMISSION");
    let unchanged = crate::common::get_membership(&srv, owner_membership.id).await;
    assert!(!unchanged.disable_impersonation);
}

async fn close_memberships(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let w = world(&srv).await;
    let m = add_member(&srv, w.org.id, w.bob.id, "user").await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN_KEY}:"))
    );
    let path = format!("/api/v1/membership/{}/", m.id);
    let auth = [("authorization", basic.as_str())];

    let mut got = call(srv.addr, "GET", &path, &auth, None).await;
    assert_ok(&got, 200);
    scrub_times(&mut got.body);
    let mut expected = json!({
        "id": m.id.to_string(), "organization_id": w.org.id.to_string(),
        "user_id": w.bob.id.to_string(), "role_id": "user", "auto_record_calls": "unset",
        "user_email": w.bob.email, "user_full_name": w.bob.name,
        "date_created": "<time>", "date_updated": "<time>"
    });
    assert_eq!(got.body, expected);

    let put = call(
        srv.addr,
        "PUT",
        &path,
        &auth,
        Some(json!({"role_id": "superuser", "auto_record_calls": "enabled"})),
    )
    .await;
    assert_ok(&put, 200);
    assert_eq!(put.body, json!({}));
    let mut got = call(srv.addr, "GET", &path, &auth, None).await;
    scrub_times(&mut got.body);
    expected["role_id"] = json!("superuser");
    expected["auto_record_calls"] = json!("enabled");
    assert_eq!(got.body, expected);

    // Close's error shape: a bad value, an unknown membership, no key.
    let bad = call(
        srv.addr,
        "PUT",
        &path,
        &auth,
        Some(json!({"auto_record_calls": "always"})),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.body["code"], "INVALID_ARGUMENT");
    assert!(bad.body["field-errors"]["body"].is_string(), "{}", bad.body);
    let unknown_role = call(
        srv.addr,
        "PUT",
        &path,
        &auth,
        Some(json!({"role_id": "nope"})),
    )
    .await;
    assert!(
        [400, 404].contains(&unknown_role.status),
        "{}",
        unknown_role.body
    );
    assert!(unknown_role.body["error"].is_string());
    let missing = call(srv.addr, "GET", "/api/v1/membership/999999/", &auth, None).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(missing.body["code"], "NOT_FOUND");
    let anonymous = call(srv.addr, "GET", &path, &[], None).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
}

async fn clerk_membership_json(srv: &TestServer, m: &pb::Membership, user: &pb::User) -> Value {
    let org = srv
        .directory()
        .get_organization(pb::GetOrganizationRequest {
            organization_id: m.organization_id,
        })
        .await
        .unwrap()
        .into_inner();
    let role = srv
        .roles()
        .get_role(pb::GetRoleRequest {
            team_id: m.team_id,
            role_id: m.role_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    json!({
        "object": "organization_membership",
        "id": m.id.to_string(),
        "role": match m.role_id.as_str() {
            "admin_role" => "org:admin".to_string(),
            "member_role" => "org:member".to_string(),
            "owner_role" => "org:owner".to_string(),
            _ => m.role_key.clone(),
        },
        "permissions": role.permissions,
        "public_metadata": {},
        "private_metadata": {},
        "created_at": "<time>",
        "updated_at": "<time>",
        "organization": {
            "object": "organization",
            "id": org.id.to_string(),
            "name": org.name,
            "slug": org.slug,
            "image_url": "",
            "has_image": false,
            "created_by": "",
            "created_at": "<time>",
            "updated_at": "<time>",
            "public_metadata": {},
            "private_metadata": {},
            "max_allowed_memberships": 0,
            "admin_delete_enabled": org.admin_delete_enabled,
            "members_count": org.members_count,
        },
        "public_user_data": {
            "user_id": user.id.to_string(),
            "first_name": null,
            "last_name": null,
            "image_url": "",
            "has_image": false,
            "identifier": user.email,
        }
    })
}

async fn clerk_memberships(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let w = world(&srv).await;
    let base = format!("/v1/organizations/{}/memberships", w.org.id);

    let mut created = admin(
        &srv,
        "POST",
        &base,
        Some(json!({"user_id": w.bob.id.to_string(), "role": "org:admin"})),
    )
    .await;
    assert_ok(&created, 200);
    scrub_times(&mut created.body);
    let m = crate::common::get_membership_of(&srv, w.org.id, w.bob.id).await;
    assert_eq!(created.body, clerk_membership_json(&srv, &m, &w.bob).await);
    assert_eq!(created.body["role"], "org:admin");

    let mut patched = admin(
        &srv,
        "PATCH",
        &format!("{base}/{}", w.bob.id),
        Some(json!({"role": "org:member"})),
    )
    .await;
    assert_ok(&patched, 200);
    scrub_times(&mut patched.body);
    let m = crate::common::get_membership_of(&srv, w.org.id, w.bob.id).await;
    assert_eq!(patched.body["role"], "org:member");
    assert_eq!(patched.body, clerk_membership_json(&srv, &m, &w.bob).await);

    // Metadata: deep merge, null deletes.
    let meta = format!("{base}/{}/metadata", w.bob.id);
    let first = admin(
        &srv,
        "PATCH",
        &meta,
        Some(json!({
            "public_metadata": {"plan": "pro", "limits": {"seats": 5, "projects": 2}},
            "private_metadata": {"crm": "42"}
        })),
    )
    .await;
    assert_ok(&first, 200);
    let second = admin(
        &srv,
        "PATCH",
        &meta,
        Some(json!({"public_metadata": {"limits": {"projects": null, "storage": 10}, "plan": null, "tier": 1}})),
    )
    .await;
    assert_ok(&second, 200);
    assert_eq!(
        second.body["public_metadata"],
        json!({"limits": {"seats": 5, "storage": 10}, "tier": 1})
    );
    assert_eq!(second.body["private_metadata"], json!({"crm": "42"}));

    let mut listed = admin(&srv, "GET", &format!("{base}?limit=1&offset=1"), None).await;
    assert_ok(&listed, 200);
    scrub_times(&mut listed.body);
    let m = crate::common::get_membership_of(&srv, w.org.id, w.bob.id).await;
    let mut expected = clerk_membership_json(&srv, &m, &w.bob).await;
    expected["public_metadata"] = json!({"limits": {"seats": 5, "storage": 10}, "tier": 1});
    expected["private_metadata"] = json!({"crm": "42"});
    assert_eq!(
        listed.body,
        json!({"data": [expected.clone()], "total_count": 2})
    );

    let mut deleted = admin(&srv, "DELETE", &format!("{base}/{}", w.bob.id), None).await;
    assert_ok(&deleted, 200);
    scrub_times(&mut deleted.body);
    assert_eq!(deleted.body, expected);
    let listed = admin(&srv, "GET", &base, None).await;
    assert_eq!(listed.body["total_count"], 1, "{}", listed.body);
}

async fn clerk_errors(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let w = world(&srv).await;
    let base = format!("/v1/organizations/{}/memberships", w.org.id);
    let bad = admin(
        &srv,
        "POST",
        &base,
        Some(json!({"user_id": "x", "role": "org:admin"})),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.body["errors"][0]["code"], "invalid_argument");
    assert_eq!(bad.body["errors"][0]["meta"]["param_name"], "body");
    assert!(bad.body["errors"][0]["long_message"].is_string());
    let missing = admin(
        &srv,
        "PATCH",
        &format!("{base}/999999"),
        Some(json!({"role": "org:admin"})),
    )
    .await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(
        missing.body["errors"][0]["code"]
            .as_str()
            .is_some_and(|c| c.ends_with("not_found")),
        "{}",
        missing.body
    );
    let last_owner = admin(
        &srv,
        "PATCH",
        &format!("{base}/{}", w.owner.id),
        Some(json!({"role": "org:member"})),
    )
    .await;
    assert_eq!(last_owner.status, 409, "{}", last_owner.body);
    assert_eq!(last_owner.body["errors"][0]["code"], "last_owner");
    let anonymous = call(srv.addr, "GET", &base, &[], None).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert_eq!(anonymous.body["errors"][0]["code"], "api_key_unknown");

    // A Clerk membership answer embeds the organization and the role's permissions: a key that
    // may write memberships but not read the directory or roles gets 403 and writes nothing.
    let writer = crate::common::scoped_key(&srv, &["memberships.write", "memberships.read"]).await;
    let auth = bearer(&writer);
    let sequence = crate::common::last_sequence(&srv).await;
    let denied = call(
        srv.addr,
        "POST",
        &base,
        &[("authorization", &auth)],
        Some(json!({"user_id": w.bob.id.to_string(), "role": "org:member"})),
    )
    .await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(denied.body["errors"][0]["code"], "missing_scope");
    assert_eq!(
        crate::common::last_sequence(&srv).await,
        sequence,
        "nothing written"
    );
}

async fn openapi_document(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let doc = call(srv.addr, "GET", "/openapi.json", &[], None).await;
    assert_ok(&doc, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc.body["paths"].as_object().unwrap();
    for (path, methods) in [
        (
            "/v2/organizations/{orgId}/memberships",
            &["get", "post"][..],
        ),
        (
            "/v2/organizations/{orgId}/memberships/{membershipId}",
            &["get", "patch", "delete"],
        ),
        (
            "/v2/organizations/{orgId}/teams/{teamId}/memberships/{membershipId}",
            &["get"],
        ),
        (
            "/v2/organizations/{orgId}/teams/{teamId}/roles",
            &["get", "post"],
        ),
        (
            "/v2/organizations/{orgId}/teams/{teamId}/roles/{roleId}",
            &["get", "patch", "delete"],
        ),
        ("/api/v1/membership/{id}/", &["get", "put"]),
        (
            "/v1/organizations/{organization_id}/memberships",
            &["get", "post"],
        ),
        (
            "/v1/organizations/{organization_id}/memberships/{user_id}",
            &["patch", "delete"],
        ),
        (
            "/v1/organizations/{organization_id}/memberships/{user_id}/metadata",
            &["patch"],
        ),
    ] {
        for method in methods {
            assert!(
                paths[path][method]["responses"]["4XX"].is_object(),
                "{method} {path}"
            );
        }
    }
    let schemes = &doc.body["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");
}

/// gRPC-web over HTTP/1.1: one framed message in, the answer frame and the trailer frame out.
async fn grpc_web_get_user(engine: Engine) {
    use prost::Message;
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let user = create_user(&srv, "web@acme.com").await;
    let message = pb::GetUserRequest { user_id: user.id }.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{}/membership.v1.DirectoryService/GetUser",
            srv.addr
        ))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("authorization", bearer(ADMIN_KEY))
        .body(Full::new(Bytes::from(frame)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/grpc-web+proto"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    // Data frame (flag 0), then the trailers frame (flag 0x80).
    assert_eq!(body[0], 0, "{body:?}");
    let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    let got = pb::User::decode(&body[5..5 + len]).unwrap();
    assert_eq!(got.id, user.id);
    assert_eq!(got.email, "web@acme.com");
    let trailer = &body[5 + len..];
    assert_eq!(trailer[0], 0x80);
    let text = String::from_utf8_lossy(&trailer[5..]).to_lowercase();
    assert!(text.contains("grpc-status:0"), "{text}");
}
