//! Expiring memberships on every engine: `expires_at` set, moved and cleared through the API,
//! refused in the past, together with `clear_expires_at`, on an OWNER, and without
//! `changeMemberRole`; from its instant an expired membership grants nothing on every read path
//! (cached, fully consistent, batch, effective permissions, an actor's write), on both replicas,
//! before any sweep, nor counts as an organization membership for a new sub-team one; and the sweep of two replicas deletes each expired membership once, with
//! one `membership.expired` event, taking an organization membership's sub-team memberships
//! along.

// Request literals end in `..Default::default()` even when they name every field today.
#![allow(clippy::needless_update)]

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use membership_service::config::Period;
use pb::MembershipRole;
use pb::access_service_client::AccessServiceClient;
use pb::membership_service_client::MembershipServiceClient;
use prost_types::Timestamp;
use tonic::Code;

use crate::common::{
    AuthChannel, Engine, TestServer, add_member, assert_invalid, create_org, create_team,
    create_user, error_info, expect_err, last_sequence, list_events, new_membership, pb, reason,
    to_struct,
};

engine_tests!(
    expires_at_round_trips_and_is_validated,
    owners_never_expire,
    expiry_needs_change_member_role,
    an_expired_membership_grants_nothing_on_any_path_or_replica,
    two_replicas_sweep_each_expired_membership_once,
    a_sub_team_membership_ends_with_its_organization_membership,
);

type UMember = pb::update_membership_request::Member;
type GMember = pb::get_membership_request::Member;

/// The permission checked below: admins hold it, members do not.
const CHANGE_ROLE: &str = "organization.changeMemberRole";

fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn instant(t: &Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.seconds, t.nanos as u32).expect("a valid timestamp")
}

fn in_secs(secs: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(secs)
}

/// An update of membership `id` by id alone.
fn update_of(id: i64) -> pb::UpdateMembershipRequest {
    pb::UpdateMembershipRequest {
        member: Some(UMember::MembershipId(id)),
        ..Default::default()
    }
}

fn set_expiry(id: i64, at: DateTime<Utc>) -> pb::UpdateMembershipRequest {
    pb::UpdateMembershipRequest {
        expires_at: Some(timestamp(at)),
        ..update_of(id)
    }
}

async fn update(srv: &TestServer, request: pb::UpdateMembershipRequest) -> pb::Membership {
    srv.memberships()
        .update_membership(request.clone())
        .await
        .unwrap_or_else(|s| panic!("update {request:?}: {s:?}"))
        .into_inner()
}

/// Makes membership `id` expire `lead_ms` from now; a machine so slow that the instant passed
/// before the server saw it (INVALID_ARGUMENT) gets a longer lead. Returns the instant and the
/// updated membership.
async fn expire_soon(
    srv: &TestServer,
    id: i64,
    mut lead_ms: i64,
) -> (DateTime<Utc>, pb::Membership) {
    loop {
        let at = Utc::now() + chrono::Duration::milliseconds(lead_ms);
        match srv
            .memberships()
            .update_membership(set_expiry(id, at))
            .await
        {
            Ok(r) => return (at, r.into_inner()),
            Err(s) if s.code() == Code::InvalidArgument && lead_ms < 60_000 => lead_ms *= 4,
            Err(s) => panic!("expire membership {id} in {lead_ms} ms: {s:?}"),
        }
    }
}

/// An accepted membership that expires at `at`.
async fn add_expiring(
    srv: &TestServer,
    team_id: i64,
    user_id: i64,
    role: MembershipRole,
    at: DateTime<Utc>,
) -> pb::Membership {
    srv.memberships()
        .create_membership(pb::CreateMembershipRequest {
            team_id,
            user_id,
            role: role as i32,
            accepted: true,
            expires_at: Some(timestamp(at)),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("expiring membership of {user_id} in {team_id}: {s:?}"))
        .into_inner()
}

#[track_caller]
fn assert_owner_cannot_expire(status: &tonic::Status) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        reason(status).as_deref(),
        Some("OWNER_CANNOT_EXPIRE"),
        "{status:?}"
    );
}

/// The string value of a snapshot field (RFC 3339 for an instant), `None` for null or absent.
fn snapshot_text(s: Option<&prost_types::Struct>, field: &str) -> Option<String> {
    match s?.fields.get(field)?.kind.as_ref()? {
        prost_types::value::Kind::StringValue(v) => Some(v.clone()),
        _ => None,
    }
}

async fn expires_at_round_trips_and_is_validated(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "expiry-io").await;
    let ada = create_user(&srv, "ada@expiry-io.test").await;
    let bob = create_user(&srv, "bob@expiry-io.test").await;
    add_member(&srv, org.id, ada.id, MembershipRole::Owner).await;

    // Created with an expiry: answered and read back to the microsecond.
    let at = in_secs(3600);
    let created = add_expiring(&srv, org.id, bob.id, MembershipRole::Member, at).await;
    let answered = instant(created.expires_at.as_ref().expect("expires_at answered"));
    assert_eq!(answered.timestamp_micros(), at.timestamp_micros());
    let read = srv
        .memberships()
        .get_membership(pb::GetMembershipRequest {
            member: Some(GMember::MembershipId(created.id)),
            consistency: Some(pb::Consistency {
                requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
            }),
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(read.expires_at, created.expires_at);

    // Moved: the event's snapshots carry both instants.
    let later = in_secs(7200);
    let moved = update(&srv, set_expiry(created.id, later)).await;
    assert_eq!(
        instant(moved.expires_at.as_ref().expect("moved")).timestamp_micros(),
        later.timestamp_micros()
    );
    let events = list_events(
        &srv,
        pb::ListEventsRequest {
            kind: "membership.updated".into(),
            ..Default::default()
        },
    )
    .await;
    let event = events.last().expect("membership.updated recorded");
    assert_eq!(event.membership_id, Some(created.id));
    let before = snapshot_text(event.before.as_ref(), "expiresAt").expect("before.expiresAt");
    let after = snapshot_text(event.after.as_ref(), "expiresAt").expect("after.expiresAt");
    assert_eq!(
        DateTime::parse_from_rfc3339(&before)
            .unwrap()
            .timestamp_micros(),
        at.timestamp_micros()
    );
    assert_eq!(
        DateTime::parse_from_rfc3339(&after)
            .unwrap()
            .timestamp_micros(),
        later.timestamp_micros()
    );

    // Cleared.
    let cleared = update(
        &srv,
        pb::UpdateMembershipRequest {
            clear_expires_at: true,
            ..update_of(created.id)
        },
    )
    .await;
    assert_eq!(cleared.expires_at, None);
    assert_ne!(cleared.etag, moved.etag, "clearing is a write");

    // Bad input: a past (or present) instant, or setting and clearing at once.
    let carol = create_user(&srv, "carol@expiry-io.test").await;
    let past = expect_err(
        srv.memberships()
            .create_membership(pb::CreateMembershipRequest {
                team_id: org.id,
                user_id: carol.id,
                expires_at: Some(timestamp(in_secs(-60))),
                ..Default::default()
            })
            .await,
    );
    assert_invalid(&past, "expires_at");
    let past = expect_err(
        srv.memberships()
            .update_membership(set_expiry(created.id, in_secs(-1)))
            .await,
    );
    assert_invalid(&past, "expires_at");
    let both = expect_err(
        srv.memberships()
            .update_membership(pb::UpdateMembershipRequest {
                clear_expires_at: true,
                ..set_expiry(created.id, in_secs(60))
            })
            .await,
    );
    assert_invalid(&both, "clear_expires_at");
    // Nothing of that was written.
    let unchanged = update(&srv, update_of(created.id)).await;
    assert_eq!(unchanged.expires_at, None);
    srv.stop().await;
}

async fn owners_never_expire(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "expiry-owner").await;
    let ada = create_user(&srv, "ada@expiry-owner.test").await;
    let bob = create_user(&srv, "bob@expiry-owner.test").await;
    let cy = create_user(&srv, "cy@expiry-owner.test").await;
    let owner = add_member(&srv, org.id, ada.id, MembershipRole::Owner).await;

    // Set on an owner.
    let status = expect_err(
        srv.memberships()
            .update_membership(set_expiry(owner.id, in_secs(3600)))
            .await,
    );
    assert_owner_cannot_expire(&status);
    // Created as an owner with an expiry.
    let status = expect_err(
        srv.memberships()
            .create_membership(pb::CreateMembershipRequest {
                team_id: org.id,
                user_id: cy.id,
                role: MembershipRole::Owner as i32,
                accepted: true,
                expires_at: Some(timestamp(in_secs(3600))),
                ..Default::default()
            })
            .await,
    );
    assert_owner_cannot_expire(&status);
    // An expiring member promoted, by the enum or by a role reference.
    let expiring = add_expiring(&srv, org.id, bob.id, MembershipRole::Admin, in_secs(3600)).await;
    let promote = [
        pb::UpdateMembershipRequest {
            role: Some(MembershipRole::Owner as i32),
            ..update_of(expiring.id)
        },
        pb::UpdateMembershipRequest {
            role_id: Some("owner".into()),
            ..update_of(expiring.id)
        },
    ];
    for request in promote {
        let status = expect_err(srv.memberships().update_membership(request).await);
        assert_owner_cannot_expire(&status);
    }
    // Promoted while clearing the expiry in the same write: allowed.
    let promoted = update(
        &srv,
        pb::UpdateMembershipRequest {
            role: Some(MembershipRole::Owner as i32),
            clear_expires_at: true,
            ..update_of(expiring.id)
        },
    )
    .await;
    assert_eq!(promoted.role, MembershipRole::Owner as i32);
    assert_eq!(promoted.expires_at, None);
    // Owner and expiry as they were.
    let owner_now = update(&srv, update_of(owner.id)).await;
    assert_eq!(owner_now.expires_at, None);

    // A sub-team OWNER would expire with their organization membership (the sweep takes it
    // along): not made of an expiring organization member, by creation or promotion, ...
    let team = create_team(&srv, org.id, "owner-sub").await;
    let dan = create_user(&srv, "dan@expiry-owner.test").await;
    add_expiring(&srv, org.id, dan.id, MembershipRole::Member, in_secs(3600)).await;
    let status = expect_err(
        srv.memberships()
            .create_membership(new_membership(team.id, dan.id, MembershipRole::Owner, true))
            .await,
    );
    assert_owner_cannot_expire(&status);
    let dan_sub = add_member(&srv, team.id, dan.id, MembershipRole::Member).await;
    let status = expect_err(
        srv.memberships()
            .update_membership(pb::UpdateMembershipRequest {
                role: Some(MembershipRole::Owner as i32),
                ..update_of(dan_sub.id)
            })
            .await,
    );
    assert_owner_cannot_expire(&status);
    // ... nor does a sub-team owner's organization membership get an expiry.
    let eve = create_user(&srv, "eve@expiry-owner.test").await;
    let eve_org = add_member(&srv, org.id, eve.id, MembershipRole::Member).await;
    add_member(&srv, team.id, eve.id, MembershipRole::Owner).await;
    let status = expect_err(
        srv.memberships()
            .update_membership(set_expiry(eve_org.id, in_secs(3600)))
            .await,
    );
    assert_owner_cannot_expire(&status);
    srv.stop().await;
}

async fn expiry_needs_change_member_role(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "expiry-actor").await;
    let ada = create_user(&srv, "ada@expiry-actor.test").await;
    let max = create_user(&srv, "max@expiry-actor.test").await;
    let bob = create_user(&srv, "bob@expiry-actor.test").await;
    let cy = create_user(&srv, "cy@expiry-actor.test").await;
    add_member(&srv, org.id, ada.id, MembershipRole::Owner).await;
    let own = add_member(&srv, org.id, max.id, MembershipRole::Member).await;
    add_member(&srv, org.id, bob.id, MembershipRole::Admin).await;
    let target = add_member(&srv, org.id, cy.id, MembershipRole::Member).await;
    let acting = |user_id: i64| -> MembershipServiceClient<AuthChannel> {
        srv.client_with(srv.auth().actor(user_id), MembershipServiceClient::new)
    };
    let clear = pb::UpdateMembershipRequest {
        clear_expires_at: true,
        ..update_of(target.id)
    };
    // A member may neither set nor clear anyone's expiry, not even their own.
    let requests = [
        set_expiry(target.id, in_secs(3600)),
        clear.clone(),
        set_expiry(own.id, in_secs(3600)),
    ];
    let sequence = last_sequence(&srv).await;
    for request in requests {
        let status = expect_err(acting(max.id).update_membership(request).await);
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        let info = error_info(&status).expect("ErrorInfo");
        assert_eq!(info.reason, "ACTOR_LACKS_PERMISSION");
        assert_eq!(
            info.metadata.get("permission").map(String::as_str),
            Some(CHANGE_ROLE)
        );
    }
    // Nothing changed: no event, the same versions.
    assert_eq!(last_sequence(&srv).await, sequence, "nothing written");
    for before in [&target, &own] {
        let now = get(&srv, before.id, true).await.expect("get");
        assert_eq!(
            (now.etag.as_str(), now.expires_at),
            (before.etag.as_str(), None)
        );
    }
    // An admin may.
    let set = acting(bob.id)
        .update_membership(set_expiry(target.id, in_secs(3600)))
        .await
        .expect("an admin sets an expiry")
        .into_inner();
    assert!(set.expires_at.is_some());
    let cleared = acting(bob.id)
        .update_membership(clear)
        .await
        .expect("an admin clears it")
        .into_inner();
    assert_eq!(cleared.expires_at, None);
    srv.stop().await;
}

fn consistency(fully: bool) -> Option<pb::Consistency> {
    use pb::consistency::Requirement;
    Some(pb::Consistency {
        requirement: Some(if fully {
            Requirement::FullyConsistent(true)
        } else {
            Requirement::MinimizeLatency(true)
        }),
    })
}

/// Whether `user_id` holds CHANGE_ROLE in `team_id`, asked on every read path of `srv`: by path
/// name. `minimize_latency` answers from the cache, `fully_consistent` from the database.
async fn answers(srv: &TestServer, user_id: i64, team_id: i64) -> BTreeMap<&'static str, bool> {
    answers_for(srv, user_id, team_id, CHANGE_ROLE).await
}

async fn answers_for(
    srv: &TestServer,
    user_id: i64,
    team_id: i64,
    permission: &str,
) -> BTreeMap<&'static str, bool> {
    let mut access: AccessServiceClient<AuthChannel> = srv.access();
    let mut out = BTreeMap::new();
    for (fully, check, batch, effective) in [
        (false, "check cached", "batch cached", "effective cached"),
        (
            true,
            "check database",
            "batch database",
            "effective database",
        ),
    ] {
        let request = pb::CheckPermissionRequest {
            user_id,
            team_id,
            permission: permission.into(),
            consistency: consistency(fully),
            ..Default::default()
        };
        let single = access
            .check_permission(request.clone())
            .await
            .unwrap_or_else(|s| panic!("{check}: {s:?}"))
            .into_inner();
        out.insert(check, single.allowed);
        let batched = access
            .batch_check_permissions(pb::BatchCheckPermissionsRequest {
                checks: vec![pb::CheckPermissionRequest {
                    consistency: None,
                    ..request
                }],
                consistency: consistency(fully),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("{batch}: {s:?}"))
            .into_inner();
        out.insert(batch, batched.results[0].allowed);
        let listed = access
            .list_effective_permissions(pb::ListEffectivePermissionsRequest {
                user_id,
                team_id,
                consistency: consistency(fully),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("{effective}: {s:?}"))
            .into_inner();
        out.insert(
            effective,
            listed.permissions.iter().any(|p| p == permission) && !listed.roles.is_empty(),
        );
    }
    out
}

/// A write `actor` may make only while they hold CHANGE_ROLE: a metadata change of `target`.
async fn actor_write(
    srv: &TestServer,
    actor: i64,
    target: i64,
    note: &str,
) -> Result<pb::Membership, tonic::Status> {
    srv.client_with(srv.auth().actor(actor), MembershipServiceClient::new)
        .update_membership(pb::UpdateMembershipRequest {
            public_metadata: Some(to_struct(serde_json::json!({ "note": note }))),
            ..update_of(target)
        })
        .await
        .map(|r| r.into_inner())
}

async fn get(srv: &TestServer, id: i64, fully: bool) -> Result<pb::Membership, tonic::Status> {
    srv.memberships()
        .get_membership(pb::GetMembershipRequest {
            member: Some(GMember::MembershipId(id)),
            consistency: consistency(fully),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

/// Polls `done` every 20 ms until it holds; a generous deadline only catches a hang.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn an_expired_membership_grants_nothing_on_any_path_or_replica(engine: Engine) {
    // The sweep runs at start and then hourly: it cannot be what ends the grants below.
    let Some(srv) = TestServer::start_with(engine, |cfg| {
        cfg.sweep_interval = Period(Duration::from_secs(3600));
    })
    .await
    else {
        return;
    };
    let replica = srv.second_instance().await;
    let org = create_org(&srv, "expiry-exact").await;
    let ada = create_user(&srv, "ada@expiry-exact.test").await;
    let bob = create_user(&srv, "bob@expiry-exact.test").await;
    let cy = create_user(&srv, "cy@expiry-exact.test").await;
    add_member(&srv, org.id, ada.id, MembershipRole::Owner).await;
    let target = add_member(&srv, org.id, cy.id, MembershipRole::Member).await;
    let bob_admin = add_expiring(&srv, org.id, bob.id, MembershipRole::Admin, in_secs(3600)).await;

    // An hour from its expiry it grants on every path of both replicas.
    for (name, server) in [("first", &srv), ("second", &replica)] {
        let got = answers(server, bob.id, org.id).await;
        assert!(got.values().all(|a| *a), "{name} replica before: {got:?}");
        actor_write(server, bob.id, target.id, name)
            .await
            .unwrap_or_else(|s| panic!("{name} replica: bob acts before expiry: {s:?}"));
    }

    // Now it expires in 1.5 s. Both replicas see the move (their caches dropped the old
    // membership), then cache it again with its new instant.
    let (at, moved) = expire_soon(&srv, bob_admin.id, 1500).await;
    for server in [&srv, &replica] {
        eventually("the replica's cache reflects the new expiry", || async {
            get(server, bob_admin.id, false)
                .await
                .expect("get")
                .expires_at
                == moved.expires_at
        })
        .await;
        let got = answers(server, bob.id, org.id).await;
        // An answer given before the instant must allow; a slow machine may be past it already.
        if Utc::now() < at {
            assert!(got.values().all(|a| *a), "before the instant: {got:?}");
        }
    }

    // From the instant on, nothing grants: cached (without any event since it was cached),
    // database, batch, effective permissions, and the actor check of a write, on both replicas.
    while Utc::now() <= at {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (name, server) in [("first", &srv), ("second", &replica)] {
        let got = answers(server, bob.id, org.id).await;
        assert!(got.values().all(|a| !a), "{name} replica after: {got:?}");
        let status = expect_err(
            actor_write(server, bob.id, target.id, "after")
                .await
                .map(tonic::Response::new),
        );
        assert_eq!(status.code(), Code::PermissionDenied, "{name}: {status:?}");
        assert_eq!(
            reason(&status).as_deref(),
            Some("ACTOR_LACKS_PERMISSION"),
            "{name}: {status:?}"
        );
    }
    // It was not swept: the membership is still there, expired, and no longer makes bob an
    // organization member a sub-team membership could be added for.
    let still = get(&srv, bob_admin.id, true).await.expect("not swept");
    assert_eq!(still.expires_at, moved.expires_at);
    let team = create_team(&srv, org.id, "exact-a").await;
    let status = expect_err(
        srv.memberships()
            .create_membership(new_membership(
                team.id,
                bob.id,
                MembershipRole::Member,
                true,
            ))
            .await,
    );
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        reason(&status).as_deref(),
        Some("NOT_AN_ORGANIZATION_MEMBER")
    );
    replica.stop().await;
    srv.stop().await;
}

async fn two_replicas_sweep_each_expired_membership_once(engine: Engine) {
    let Some(srv) = TestServer::start_with(engine, |cfg| {
        cfg.sweep_interval = Period(Duration::from_millis(100));
    })
    .await
    else {
        return;
    };
    let replica = srv.second_instance().await;
    let org = create_org(&srv, "expiry-sweep").await;
    let team_a = create_team(&srv, org.id, "sweep-a").await;
    let team_b = create_team(&srv, org.id, "sweep-b").await;
    let ada = create_user(&srv, "ada@expiry-sweep.test").await;
    let mut users = Vec::new();
    for name in ["u1", "u2", "u3", "u4"] {
        users.push(create_user(&srv, &format!("{name}@expiry-sweep.test")).await);
    }
    let owner = add_member(&srv, org.id, ada.id, MembershipRole::Owner).await;
    let far = in_secs(3600);
    // u1 leaves the organization and with it both sub-teams; u2 leaves the organization; u3
    // leaves sub-team A only; u4 stays.
    let u1_org = add_expiring(&srv, org.id, users[0].id, MembershipRole::Member, far).await;
    let u1_a = add_member(&srv, team_a.id, users[0].id, MembershipRole::Member).await;
    let u1_b = add_member(&srv, team_b.id, users[0].id, MembershipRole::Admin).await;
    let u2_org = add_expiring(&srv, org.id, users[1].id, MembershipRole::Admin, far).await;
    let u3_org = add_member(&srv, org.id, users[2].id, MembershipRole::Member).await;
    let u3_a = add_expiring(&srv, team_a.id, users[2].id, MembershipRole::Member, far).await;
    let u4_org = add_expiring(&srv, org.id, users[3].id, MembershipRole::Member, far).await;
    let got = answers_for(&replica, users[0].id, team_b.id, "team.changeMemberRole").await;
    assert!(got.values().all(|a| *a), "u1 in team B before: {got:?}");
    let expiring = [u1_org.id, u2_org.id, u3_a.id];
    for id in expiring {
        expire_soon(&srv, id, 1000).await;
    }
    let gone = [u1_org.id, u1_a.id, u1_b.id, u2_org.id, u3_a.id];
    for id in gone {
        eventually(&format!("membership {id} is swept"), || async {
            matches!(get(&srv, id, true).await, Err(s) if s.code() == Code::NotFound)
        })
        .await;
    }
    for id in [owner.id, u3_org.id, u4_org.id] {
        get(&srv, id, true)
            .await
            .unwrap_or_else(|s| panic!("membership {id} stays: {s:?}"));
    }

    let per_membership = |events: Vec<pb::Event>| {
        let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
        for e in events {
            assert!(e.before.is_some() && e.after.is_none(), "{e:?}");
            assert!(e.actor_key_id.is_empty(), "the sweep has no key: {e:?}");
            *counts
                .entry(e.membership_id.expect("membership id"))
                .or_default() += 1;
        }
        counts
    };
    let of_kind = |kind: &str| pb::ListEventsRequest {
        kind: kind.into(),
        ..Default::default()
    };
    let expired = list_events(&srv, of_kind("membership.expired")).await;
    assert!(
        expired
            .iter()
            .all(|e| snapshot_text(e.before.as_ref(), "expiresAt").is_some()),
        "expired snapshots carry expiresAt: {expired:?}"
    );
    assert_eq!(
        per_membership(expired),
        expiring
            .iter()
            .map(|id| (*id, 1))
            .collect::<BTreeMap<_, _>>(),
        "one membership.expired per expired membership"
    );
    assert_eq!(
        per_membership(list_events(&srv, of_kind("membership.deleted")).await),
        BTreeMap::from([(u1_a.id, 1), (u1_b.id, 1)]),
        "the cascade deleted u1's sub-team memberships, once each"
    );
    // The replica saw the same: its cache dropped what the sweep removed.
    let got = answers_for(&replica, users[0].id, team_b.id, "team.changeMemberRole").await;
    assert!(got.values().all(|a| !a), "u1 in team B: {got:?}");
    replica.stop().await;
    srv.stop().await;
}

/// Who LookupUsers says holds `permission` in `team_id`, from the cache or the database.
async fn looked_up(srv: &TestServer, team_id: i64, permission: &str, fully: bool) -> Vec<i64> {
    srv.access()
        .lookup_users(pb::LookupUsersRequest {
            team_id,
            permission: permission.into(),
            consistency: consistency(fully),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("lookup users: {s:?}"))
        .into_inner()
        .users
        .iter()
        .map(|u| u.user_id)
        .collect()
}

/// The sweep deletes a sub-team membership along with its expired organization membership; the
/// reads do not wait for it: the sub-team membership grants nothing from the organization
/// membership's instant on, on every path, the lookups included.
async fn a_sub_team_membership_ends_with_its_organization_membership(engine: Engine) {
    let Some(srv) = TestServer::start_with(engine, |cfg| {
        cfg.sweep_interval = Period(Duration::from_secs(3600));
    })
    .await
    else {
        return;
    };
    let org = create_org(&srv, "expiry-cascade").await;
    let team = create_team(&srv, org.id, "cascade-a").await;
    let ada = create_user(&srv, "ada@expiry-cascade.test").await;
    let bob = create_user(&srv, "bob@expiry-cascade.test").await;
    add_member(&srv, org.id, ada.id, MembershipRole::Owner).await;
    let bob_member =
        add_expiring(&srv, org.id, bob.id, MembershipRole::Member, in_secs(3600)).await;
    add_member(&srv, team.id, bob.id, MembershipRole::Admin).await;
    const UPDATE: &str = "team.update";
    let got = answers_for(&srv, bob.id, team.id, UPDATE).await;
    assert!(got.values().all(|a| *a), "before: {got:?}");
    for fully in [false, true] {
        assert!(
            looked_up(&srv, team.id, UPDATE, fully)
                .await
                .contains(&bob.id)
        );
    }

    let (at, _) = expire_soon(&srv, bob_member.id, 1500).await;
    while Utc::now() <= at {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = answers_for(&srv, bob.id, team.id, UPDATE).await;
    assert!(got.values().all(|a| !a), "after: {got:?}");
    for fully in [false, true] {
        assert_eq!(
            looked_up(&srv, team.id, UPDATE, fully).await,
            [ada.id],
            "fully_consistent: {fully}"
        );
    }
    srv.stop().await;
}
