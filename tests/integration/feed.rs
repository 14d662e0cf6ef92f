//! The change feed end to end: WatchEvents replays and follows, resumes from a cursor, filters,
//! reports EVENTS_EXPIRED after retention, and — the headline — never misses, repeats or reorders
//! an event written through any replica, even with many concurrent writers on several instances
//! over one database and a watcher that falls far behind. ListEvents filters and keyset
//! pagination are checked here too. Every engine.

// Request literals end in `..Default::default()` even when they name every field today, so
// that fields the contract adds later do not break these tests.
#![allow(clippy::needless_update)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{
    AuthChannel, Engine, TestServer, add_member, create_org, create_team, create_user,
    events_after, expect_err, field_violations, last_sequence, list_events, new_user, pb, reason,
    scoped_key, to_struct,
};
use pb::MembershipRole;
use pb::directory_service_client::DirectoryServiceClient;
use pb::event_service_client::EventServiceClient;
use pb::membership_service_client::MembershipServiceClient;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::timeout;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Endpoint;
use tonic::{Code, Status, Streaming};

engine_tests!(
    replays_then_follows,
    resumes_from_a_cursor,
    watch_filters_by_team_and_kind,
    list_events_filters_and_pages,
    bad_kinds_are_invalid_arguments,
    expired_events_are_reported,
    many_writers_through_three_instances_leave_no_gap,
    slow_watcher_misses_nothing,
    watch_outlives_the_request_timeout,
    shutdown_ends_open_watches,
);

// ---------------------------------------------------------------------------------------------
// Helpers

type UMember = pb::update_membership_request::Member;
type DMember = pb::delete_membership_request::Member;
type Events = EventServiceClient<AuthChannel>;
type Directory = DirectoryServiceClient<AuthChannel>;
type Memberships = MembershipServiceClient<AuthChannel>;
type EventStream = Streaming<pb::WatchEventsResponse>;

/// How long one expected message may take: generous, this is about correctness, not speed.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stream must stay silent to count as "nothing more was sent".
const QUIET: Duration = Duration::from_millis(400);

fn after(sequence: i64) -> pb::WatchEventsRequest {
    pb::WatchEventsRequest {
        after_sequence: sequence,
        ..Default::default()
    }
}

async fn watch_on(events: &mut Events, request: pb::WatchEventsRequest) -> EventStream {
    events
        .watch_events(request.clone())
        .await
        .unwrap_or_else(|s| panic!("watch events {request:?}: {s:?}"))
        .into_inner()
}

async fn watch(srv: &TestServer, request: pb::WatchEventsRequest) -> EventStream {
    watch_on(&mut srv.events(), request).await
}

/// The error a watch must end with, whether it arrives as the call's status or as the stream's
/// first item.
async fn watch_error(srv: &TestServer, request: pb::WatchEventsRequest) -> Status {
    let mut stream = match srv.events().watch_events(request.clone()).await {
        Err(status) => return status,
        Ok(response) => response.into_inner(),
    };
    match timeout(MESSAGE_TIMEOUT, stream.message()).await {
        Err(_) => panic!("watch {request:?}: expected an error, got a silent stream"),
        Ok(Err(status)) => status,
        Ok(Ok(None)) => panic!("watch {request:?}: expected an error, the stream just ended"),
        Ok(Ok(Some(item))) => panic!("watch {request:?}: expected an error, got {item:?}"),
    }
}

async fn next_event(stream: &mut EventStream, what: &str) -> pb::Event {
    match timeout(MESSAGE_TIMEOUT, stream.message()).await {
        Err(_) => panic!("{what}: no event within {MESSAGE_TIMEOUT:?}"),
        Ok(Err(status)) => panic!("{what}: the stream failed: {status:?}"),
        Ok(Ok(None)) => panic!("{what}: the stream ended"),
        Ok(Ok(Some(item))) => item
            .event
            .unwrap_or_else(|| panic!("{what}: a response without an event")),
    }
}

async fn next_events(stream: &mut EventStream, n: usize, what: &str) -> Vec<pb::Event> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(next_event(stream, &format!("{what} (event {} of {n})", i + 1)).await);
    }
    out
}

/// Nothing more arrives for a while: no duplicate, no event the filter should have dropped.
async fn assert_quiet(stream: &mut EventStream, what: &str) {
    if let Ok(item) = timeout(QUIET, stream.message()).await {
        panic!("{what}: expected nothing more, got {item:?}");
    }
}

fn seqs(events: &[pb::Event]) -> Vec<i64> {
    events.iter().map(|e| e.sequence).collect()
}

fn keys(events: &[pb::Event]) -> Vec<(i64, String)> {
    events
        .iter()
        .map(|e| (e.sequence, e.kind.clone()))
        .collect()
}

#[track_caller]
fn assert_contiguous(events: &[pb::Event], first: i64, last: i64, what: &str) {
    let got = seqs(events);
    let want: Vec<i64> = (first..=last).collect();
    assert_eq!(
        got, want,
        "{what}: every sequence {first}..={last} once, in order"
    );
}

#[track_caller]
fn assert_ascending(events: &[pb::Event], what: &str) {
    for pair in events.windows(2) {
        assert!(
            pair[0].sequence < pair[1].sequence,
            "{what}: sequences ascend, got {} then {}",
            pair[0].sequence,
            pair[1].sequence
        );
    }
}

fn micros(t: &Option<prost_types::Timestamp>) -> i64 {
    let t = t.as_ref().expect("occurred_at is set");
    t.seconds * 1_000_000 + i64::from(t.nanos / 1000)
}

fn timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

/// The server side of the `team_id` filter: events of the team, or of the organization and its
/// teams.
fn of_team(e: &pb::Event, team_id: i64) -> bool {
    e.team_id == Some(team_id) || e.organization_id == Some(team_id)
}

/// An EventService client on its own connection with the smallest HTTP/2 windows, so that a
/// watcher that does not read backs up into the server quickly instead of into client buffers.
async fn tight_events_client(srv: &TestServer) -> Events {
    let channel = Endpoint::from_shared(format!("http://{}", srv.addr))
        .expect("endpoint")
        .initial_stream_window_size(Some(65_535))
        .initial_connection_window_size(Some(65_535))
        .connect()
        .await
        .expect("connect");
    EventServiceClient::new(InterceptedService::new(channel, srv.auth()))
}

// ---------------------------------------------------------------------------------------------
// 1. Replay, then follow

async fn replays_then_follows(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let start = last_sequence(&srv).await;
    let mut users = Vec::new();
    for i in 0..12 {
        users.push(create_user(&srv, &format!("replay{i}@feed.test")).await);
    }
    let stored = events_after(&srv, 0).await;
    assert_eq!(stored.len() as i64 - start, 12, "one event per write");

    let mut stream = watch(&srv, after(0)).await;
    let replayed = next_events(&mut stream, stored.len(), "replay").await;
    assert_eq!(
        keys(&replayed),
        keys(&stored),
        "the replay is the stored log"
    );
    let first = stored.first().map_or(0, |e| e.sequence);
    let last = stored.last().map_or(0, |e| e.sequence);
    assert_contiguous(&replayed, first, last, "replay");
    let ours = &replayed[replayed.len() - 12..];
    assert_eq!(ours[0].sequence, start + 1);
    let created: Vec<Option<i64>> = ours.iter().map(|e| e.user_id).collect();
    let want: Vec<Option<i64>> = users.iter().map(|u| Some(u.id)).collect();
    assert_eq!(created, want, "the users' events, in write order");
    assert!(ours.iter().all(|e| e.kind == "user.created"));
    assert_quiet(&mut stream, "after the replay").await;

    // Live: each write arrives once, in order, and nothing else.
    let mut live_users = Vec::new();
    for i in 0..8 {
        let user = create_user(&srv, &format!("live{i}@feed.test")).await;
        let e = next_event(&mut stream, &format!("live event {i}")).await;
        assert_eq!(e.sequence, last + 1 + i, "live event {i}");
        assert_eq!(e.kind, "user.created");
        assert_eq!(e.user_id, Some(user.id));
        assert!(e.occurred_at.is_some());
        assert!(
            e.after.is_some(),
            "a created event carries the after snapshot"
        );
        live_users.push(user);
    }
    // A burst written while the watcher does not read: still every one, in order.
    for i in 0..20 {
        create_user(&srv, &format!("burst{i}@feed.test")).await;
    }
    let burst = next_events(&mut stream, 20, "burst").await;
    assert_contiguous(&burst, last + 9, last + 28, "burst");
    assert_quiet(&mut stream, "after the burst").await;
    assert_eq!(
        keys(&events_after(&srv, last + 8).await),
        keys(&burst),
        "the watcher saw what ListEvents stores"
    );

    // A watcher on a second instance follows writes made through the first.
    let second = srv.second_instance().await;
    let mut remote = watch(&second, after(last + 28)).await;
    let user = create_user(&srv, "remote@feed.test").await;
    let e = next_event(&mut remote, "a write through the other instance").await;
    assert_eq!((e.sequence, e.user_id), (last + 29, Some(user.id)));
    let e = next_event(&mut stream, "the same write, local watcher").await;
    assert_eq!((e.sequence, e.user_id), (last + 29, Some(user.id)));
    drop(remote);
    drop(stream);
    second.stop().await;
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Resume from a cursor

async fn resumes_from_a_cursor(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let start = last_sequence(&srv).await;
    for i in 0..10 {
        create_user(&srv, &format!("resume{i}@feed.test")).await;
    }
    let ours = events_after(&srv, start).await;
    assert_eq!(ours.len(), 10);

    // Resuming after the k-th event gives exactly the events after it, for several k.
    for k in [0usize, 1, 4, 9, 10] {
        let cursor = if k == 0 { start } else { ours[k - 1].sequence };
        let mut stream = watch(&srv, after(cursor)).await;
        let got = next_events(&mut stream, 10 - k, &format!("resume after event {k}")).await;
        assert_eq!(
            keys(&got),
            keys(&ours[k..]),
            "resume after event {k} (sequence {cursor})"
        );
        assert_quiet(&mut stream, &format!("resume after event {k}")).await;
    }

    // Resumed, then following: the next write arrives once.
    let cursor = ours[6].sequence;
    let mut stream = watch(&srv, after(cursor)).await;
    let replayed = next_events(&mut stream, 3, "resume after event 7").await;
    assert_eq!(keys(&replayed), keys(&ours[7..]));
    let user = create_user(&srv, "resume-live@feed.test").await;
    let e = next_event(&mut stream, "live after a resume").await;
    assert_eq!(
        (e.sequence, e.user_id),
        (ours[9].sequence + 1, Some(user.id))
    );
    assert_quiet(&mut stream, "live after a resume").await;

    // A cursor past the head is accepted: the watch waits, then delivers only the events after
    // the cursor.
    let now = last_sequence(&srv).await;
    let mut ahead = watch(&srv, after(now + 3)).await;
    assert_quiet(&mut ahead, "a cursor past the head, before any write").await;
    for i in 0..5 {
        create_user(&srv, &format!("ahead{i}@feed.test")).await;
    }
    let got = next_events(&mut ahead, 2, "a cursor past the head").await;
    assert_contiguous(&got, now + 4, now + 5, "a cursor past the head");
    assert_quiet(&mut ahead, "a cursor past the head").await;
    // The stream stays live.
    create_user(&srv, "ahead-last@feed.test").await;
    let e = next_event(&mut ahead, "a cursor past the head, later").await;
    assert_eq!(e.sequence, now + 6);

    // A cursor far in the future is not an error either.
    let mut far = watch(&srv, after(now + 1_000_000)).await;
    assert_quiet(&mut far, "a cursor far past the head").await;
    // Closed streams let the server stop promptly (see `shutdown_ends_open_watches`).
    drop((stream, ahead, far));
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Filters

/// Organization A with sub-team A1, organization B, and memberships in each.
struct Tenants {
    org_a: i64,
    team_a1: i64,
    org_b: i64,
    owner_a: pb::User,
    owner_b: pb::User,
    other: pb::User,
    member_in_a: pb::Membership,
}

async fn tenants(srv: &TestServer) -> Tenants {
    let mut dir = srv.directory();
    let mut mem = srv.memberships();
    let owner_a = create_user(srv, "owner-a@feed.test").await;
    let member = create_user(srv, "member@feed.test").await;
    let owner_b = create_user(srv, "owner-b@feed.test").await;
    let other = create_user(srv, "other@feed.test").await;
    let org_a = create_org(srv, "feed-a").await.id;
    let team_a1 = create_team(srv, org_a, "a1").await.id;
    let org_b = create_org(srv, "feed-b").await.id;
    add_member(srv, org_a, owner_a.id, MembershipRole::Owner).await;
    let member_in_a = add_member(srv, org_a, member.id, MembershipRole::Member).await;
    add_member(srv, team_a1, member.id, MembershipRole::Member).await;
    add_member(srv, org_b, owner_b.id, MembershipRole::Owner).await;
    mem.update_membership(pb::UpdateMembershipRequest {
        team_id: org_a,
        member: Some(UMember::MembershipId(member_in_a.id)),
        role: Some(MembershipRole::Admin as i32),
        ..Default::default()
    })
    .await
    .expect("promote the member in A");
    dir.update_organization(pb::UpdateOrganizationRequest {
        organization_id: org_b,
        name: Some("Org B renamed".into()),
        ..Default::default()
    })
    .await
    .expect("rename B");
    Tenants {
        org_a,
        team_a1,
        org_b,
        owner_a,
        owner_b,
        other,
        member_in_a,
    }
}

const MEMBERSHIP_KINDS: [&str; 2] = ["membership.created", "membership.updated"];

async fn watch_filters_by_team_and_kind(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let t = tenants(&srv).await;
    let all = events_after(&srv, 0).await;

    let by_team = |team: i64| move |e: &pb::Event| of_team(e, team);
    let by_kind = |e: &pb::Event| MEMBERSHIP_KINDS.contains(&e.kind.as_str());

    // The organization's own events and its sub-team's; nothing of B, no user events.
    let want_a: Vec<pb::Event> = all
        .iter()
        .filter(|e| by_team(t.org_a)(e))
        .cloned()
        .collect();
    assert!(
        want_a
            .iter()
            .any(|e| e.kind == "team.created" && e.team_id == Some(t.team_a1)),
        "A's log includes its sub-team's creation: {want_a:?}"
    );
    assert!(
        want_a
            .iter()
            .any(|e| e.kind == "membership.created" && e.team_id == Some(t.team_a1)),
        "A's log includes the sub-team membership: {want_a:?}"
    );
    let want_a1: Vec<pb::Event> = all
        .iter()
        .filter(|e| by_team(t.team_a1)(e))
        .cloned()
        .collect();
    assert!(want_a1.len() >= 2 && want_a1.len() < want_a.len());
    let want_kinds: Vec<pb::Event> = all.iter().filter(|e| by_kind(e)).cloned().collect();
    assert_eq!(
        want_kinds.len(),
        5,
        "four memberships and one update: {want_kinds:?}"
    );

    let mut w_a = watch(
        &srv,
        pb::WatchEventsRequest {
            team_id: Some(t.org_a),
            ..Default::default()
        },
    )
    .await;
    let mut w_a1 = watch(
        &srv,
        pb::WatchEventsRequest {
            team_id: Some(t.team_a1),
            ..Default::default()
        },
    )
    .await;
    let mut w_kinds = watch(
        &srv,
        pb::WatchEventsRequest {
            kinds: MEMBERSHIP_KINDS.iter().map(|k| k.to_string()).collect(),
            ..Default::default()
        },
    )
    .await;
    let mut w_both = watch(
        &srv,
        pb::WatchEventsRequest {
            team_id: Some(t.team_a1),
            kinds: vec!["membership.updated".into()],
            ..Default::default()
        },
    )
    .await;

    let got = next_events(&mut w_a, want_a.len(), "team A replay").await;
    assert_eq!(keys(&got), keys(&want_a), "team A replay");
    assert!(got.iter().all(|e| e.organization_id != Some(t.org_b)));
    let got = next_events(&mut w_a1, want_a1.len(), "team A1 replay").await;
    assert_eq!(keys(&got), keys(&want_a1), "team A1 replay");
    let got = next_events(&mut w_kinds, want_kinds.len(), "kinds replay").await;
    assert_eq!(keys(&got), keys(&want_kinds), "kinds replay");
    assert_quiet(&mut w_a, "team A replay").await;
    assert_quiet(&mut w_a1, "team A1 replay").await;
    assert_quiet(&mut w_kinds, "kinds replay").await;
    assert_quiet(&mut w_both, "A1 membership.updated replay (none yet)").await;

    // Live writes in A, A1, B and outside any team.
    let mark = all.last().map_or(0, |e| e.sequence);
    let mut dir = srv.directory();
    let mut mem = srv.memberships();
    add_member(&srv, t.org_a, t.other.id, MembershipRole::Member).await;
    create_user(&srv, "live-filter@feed.test").await;
    let in_a1 = add_member(&srv, t.team_a1, t.other.id, MembershipRole::Member).await;
    dir.update_organization(pb::UpdateOrganizationRequest {
        organization_id: t.org_b,
        name: Some("Org B again".into()),
        ..Default::default()
    })
    .await
    .expect("rename B again");
    mem.update_membership(pb::UpdateMembershipRequest {
        team_id: t.team_a1,
        member: Some(UMember::MembershipId(in_a1.id)),
        role: Some(MembershipRole::Admin as i32),
        ..Default::default()
    })
    .await
    .expect("promote in A1");
    dir.update_team(pb::UpdateTeamRequest {
        team_id: t.team_a1,
        name: Some("A1 renamed".into()),
        ..Default::default()
    })
    .await
    .expect("rename A1");
    mem.delete_membership(pb::DeleteMembershipRequest {
        team_id: t.team_a1,
        member: Some(DMember::MembershipId(in_a1.id)),
        ..Default::default()
    })
    .await
    .expect("delete in A1");
    dir.update_organization(pb::UpdateOrganizationRequest {
        organization_id: t.org_a,
        name: Some("Org A renamed".into()),
        ..Default::default()
    })
    .await
    .expect("rename A");

    let live = events_after(&srv, mark).await;
    assert_eq!(live.len(), 8, "one event per live write: {live:?}");
    for (stream, want, what) in [
        (
            &mut w_a,
            live.iter()
                .filter(|e| by_team(t.org_a)(e))
                .cloned()
                .collect::<Vec<_>>(),
            "team A live",
        ),
        (
            &mut w_a1,
            live.iter()
                .filter(|e| by_team(t.team_a1)(e))
                .cloned()
                .collect(),
            "team A1 live",
        ),
        (
            &mut w_kinds,
            live.iter().filter(|e| by_kind(e)).cloned().collect(),
            "kinds live",
        ),
        (
            &mut w_both,
            live.iter()
                .filter(|e| by_team(t.team_a1)(e) && e.kind == "membership.updated")
                .cloned()
                .collect(),
            "A1 membership.updated live",
        ),
    ] {
        assert!(!want.is_empty(), "{what}: the live writes include matches");
        let got = next_events(stream, want.len(), what).await;
        assert_eq!(keys(&got), keys(&want), "{what}");
        assert_quiet(stream, what).await;
    }
    // Spot checks of what the filters mean.
    let a_live: Vec<&pb::Event> = live.iter().filter(|e| by_team(t.org_a)(e)).collect();
    assert_eq!(
        a_live.len(),
        6,
        "A's live events: all but B's rename and the user: {a_live:?}"
    );
    let kinds_live: Vec<&str> = live
        .iter()
        .filter(|e| by_kind(e))
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(
        kinds_live,
        [
            "membership.created",
            "membership.created",
            "membership.updated"
        ],
        "membership.deleted is not among the kinds asked for"
    );
    drop((w_a, w_a1, w_kinds, w_both));
    srv.stop().await;
}

async fn list_events_filters_and_pages(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let t = tenants(&srv).await;

    // Writes with another key and on behalf of an end user.
    let writer_key = scoped_key(&srv, &["directory.write", "memberships.write"]).await;
    let mut keyed = srv.client_with_key(&writer_key, DirectoryServiceClient::new);
    let keyed_user = keyed
        .create_user(new_user("keyed@feed.test"))
        .await
        .unwrap_or_else(|s| panic!("create user through keyed: {s:?}"))
        .into_inner();
    let mut acting_dir =
        srv.client_with(srv.auth().actor(t.owner_a.id), DirectoryServiceClient::new);
    let mut acting_mem =
        srv.client_with(srv.auth().actor(t.owner_a.id), MembershipServiceClient::new);
    // An end user changes only their own profile (creating users is for services).
    acting_dir
        .update_user(pb::UpdateUserRequest {
            user_id: t.owner_a.id,
            name: Some("Owner A, renamed by themselves".into()),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("update own user through acting_dir: {s:?}"));
    acting_mem
        .update_membership(pb::UpdateMembershipRequest {
            team_id: t.org_a,
            member: Some(UMember::MembershipId(t.member_in_a.id)),
            public_metadata: Some(to_struct(json!({"touched": true}))),
            ..Default::default()
        })
        .await
        .expect("update acting for the owner");
    create_user(&srv, "after-actors@feed.test").await;

    let all = events_after(&srv, 0).await;
    assert!(all.len() >= 15, "{all:?}");
    assert_contiguous(
        &all,
        all[0].sequence,
        all[all.len() - 1].sequence,
        "the whole log",
    );

    // team_id: the organization with its sub-teams.
    for team in [t.org_a, t.team_a1, t.org_b] {
        let got = list_events(
            &srv,
            pb::ListEventsRequest {
                team_id: Some(team),
                ..Default::default()
            },
        )
        .await;
        let want: Vec<pb::Event> = all.iter().filter(|e| of_team(e, team)).cloned().collect();
        assert!(!want.is_empty());
        assert_eq!(keys(&got), keys(&want), "ListEvents team_id={team}");
    }
    let a = list_events(
        &srv,
        pb::ListEventsRequest {
            team_id: Some(t.org_a),
            ..Default::default()
        },
    )
    .await;
    assert!(a.iter().any(|e| e.team_id == Some(t.team_a1)));
    assert!(a.iter().all(|e| e.organization_id != Some(t.org_b)));

    // kind.
    for kind in [
        "membership.created",
        "membership.updated",
        "user.created",
        "team.deleted",
    ] {
        let got = list_events(
            &srv,
            pb::ListEventsRequest {
                kind: kind.into(),
                ..Default::default()
            },
        )
        .await;
        let want: Vec<pb::Event> = all.iter().filter(|e| e.kind == kind).cloned().collect();
        assert_eq!(keys(&got), keys(&want), "ListEvents kind={kind}");
    }

    // actor_key_id.
    let keyed_event = all
        .iter()
        .find(|e| e.kind == "user.created" && e.user_id == Some(keyed_user.id))
        .expect("the keyed write's event");
    assert!(!keyed_event.actor_key_id.is_empty());
    assert_ne!(keyed_event.actor_key_id, "key_bootstrap");
    let got = list_events(
        &srv,
        pb::ListEventsRequest {
            actor_key_id: keyed_event.actor_key_id.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        keys(&got),
        keys(std::slice::from_ref(keyed_event)),
        "actor_key_id"
    );
    let got = list_events(
        &srv,
        pb::ListEventsRequest {
            actor_key_id: "key_bootstrap".into(),
            ..Default::default()
        },
    )
    .await;
    let want: Vec<pb::Event> = all
        .iter()
        .filter(|e| e.actor_key_id == "key_bootstrap")
        .cloned()
        .collect();
    // Every write but the keyed one, and the keys' own creation (made without a calling key).
    let keys_made = all.iter().filter(|e| e.kind == "api_key.created").count();
    assert_eq!(want.len(), all.len() - 1 - keys_made);
    assert_eq!(keys(&got), keys(&want), "actor_key_id=key_bootstrap");

    // actor_user_id.
    let got = list_events(
        &srv,
        pb::ListEventsRequest {
            actor_user_id: Some(t.owner_a.id),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(got.len(), 2, "the two writes made for the owner: {got:?}");
    assert_eq!(
        (got[0].kind.as_str(), got[0].user_id),
        ("user.updated", Some(t.owner_a.id))
    );
    assert_eq!(
        (got[1].kind.as_str(), got[1].membership_id),
        ("membership.updated", Some(t.member_in_a.id))
    );
    assert!(got.iter().all(|e| e.actor_user_id == Some(t.owner_a.id)));
    assert!(
        all.iter().filter(|e| e.actor_user_id.is_some()).count() == 2,
        "no other event names an actor user"
    );
    let got = list_events(
        &srv,
        pb::ListEventsRequest {
            actor_user_id: Some(t.owner_b.id),
            ..Default::default()
        },
    )
    .await;
    assert!(got.is_empty(), "{got:?}");

    // Filters combine.
    let got = list_events(
        &srv,
        pb::ListEventsRequest {
            team_id: Some(t.org_a),
            kind: "membership.updated".into(),
            actor_user_id: Some(t.owner_a.id),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        seqs(&got),
        seqs(
            &all.iter()
                .filter(|e| e.kind == "membership.updated" && e.actor_user_id == Some(t.owner_a.id))
                .cloned()
                .collect::<Vec<_>>()
        )
    );
    assert_eq!(got.len(), 1);

    // occurred_after (inclusive) and occurred_before (exclusive), alone and together.
    let t1 = micros(&all[3].occurred_at);
    let t2 = micros(&all[all.len() - 3].occurred_at);
    assert!(t1 < t2, "events are spread over time");
    for (lower, upper) in [
        (Some(t1), None),
        (None, Some(t2)),
        (Some(t1), Some(t2)),
        (Some(t2), Some(t1)),
    ] {
        let got = list_events(
            &srv,
            pb::ListEventsRequest {
                occurred_after: lower.map(timestamp),
                occurred_before: upper.map(timestamp),
                ..Default::default()
            },
        )
        .await;
        let want: Vec<pb::Event> = all
            .iter()
            .filter(|e| {
                let at = micros(&e.occurred_at);
                lower.is_none_or(|l| at >= l) && upper.is_none_or(|u| at < u)
            })
            .cloned()
            .collect();
        assert_eq!(
            keys(&got),
            keys(&want),
            "occurred_after={lower:?} occurred_before={upper:?}"
        );
        if lower == Some(t1) && upper.is_none() {
            assert!(
                got.iter().any(|e| e.sequence == all[3].sequence),
                "at t1 is included"
            );
        }
        if upper == Some(t2) && lower.is_none() {
            assert!(
                got.iter().all(|e| e.sequence < all[all.len() - 3].sequence),
                "at t2 is excluded"
            );
        }
    }
    // A range in the future is empty; combined with a kind it narrows further.
    let future = micros(&all[all.len() - 1].occurred_at) + 3_600_000_000;
    let got = list_events(
        &srv,
        pb::ListEventsRequest {
            occurred_after: Some(timestamp(future)),
            ..Default::default()
        },
    )
    .await;
    assert!(got.is_empty(), "{got:?}");
    let got = list_events(
        &srv,
        pb::ListEventsRequest {
            occurred_after: Some(timestamp(t1)),
            kind: "user.created".into(),
            ..Default::default()
        },
    )
    .await;
    let want: Vec<pb::Event> = all
        .iter()
        .filter(|e| e.kind == "user.created" && micros(&e.occurred_at) >= t1)
        .cloned()
        .collect();
    assert_eq!(keys(&got), keys(&want), "time range and kind");

    // Keyset pagination: small pages, ascending, no duplicates, nothing missed, and stable when
    // events are added between pages.
    for (filter, what) in [
        (pb::ListEventsRequest::default(), "everything"),
        (
            pb::ListEventsRequest {
                team_id: Some(t.org_a),
                ..Default::default()
            },
            "team A",
        ),
    ] {
        let want = list_events(&srv, filter.clone()).await;
        let mut got = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        let mut added = 0;
        loop {
            let page = srv
                .events()
                .list_events(pb::ListEventsRequest {
                    page_size: 3,
                    page_token: token.clone(),
                    ..filter.clone()
                })
                .await
                .unwrap_or_else(|s| panic!("{what}: page {pages}: {s:?}"))
                .into_inner();
            pages += 1;
            assert!(page.events.len() <= 3, "{what}: page size is honoured");
            got.extend(page.events);
            if page.next_page_token.is_empty() {
                break;
            }
            if pages == 2 {
                // An insert between pages lands at the end, never shifts what follows.
                create_user(
                    &srv,
                    &format!("between-{pages}-{what}@feed.test").replace(' ', "-"),
                )
                .await;
                added += 1;
            }
            token = page.next_page_token;
        }
        assert!(pages > 2, "{what}: several pages");
        assert_ascending(&got, what);
        let unique: HashSet<i64> = seqs(&got).into_iter().collect();
        assert_eq!(unique.len(), got.len(), "{what}: no duplicates");
        let now = list_events(&srv, filter.clone()).await;
        assert_eq!(
            keys(&got),
            keys(&now),
            "{what}: the pages are the whole log"
        );
        assert!(now.len() >= want.len() && now.len() <= want.len() + added);
        assert_eq!(
            keys(&now[..want.len()]),
            keys(&want),
            "{what}: earlier pages unchanged"
        );
    }
    // after_sequence with paging.
    let mid = all[all.len() / 2].sequence;
    let got = list_events(
        &srv,
        pb::ListEventsRequest {
            after_sequence: mid,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(got.first().map(|e| e.sequence), Some(mid + 1));
    srv.stop().await;
}

async fn bad_kinds_are_invalid_arguments(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let status = watch_error(
        &srv,
        pb::WatchEventsRequest {
            kinds: vec!["foo".into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(field_violations(&status), ["kinds[0]"], "{status:?}");

    let status = watch_error(
        &srv,
        pb::WatchEventsRequest {
            kinds: vec![
                "membership.updated".into(),
                "membership".into(),
                "user.created".into(),
            ],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(field_violations(&status), ["kinds[1]"], "{status:?}");

    let status = watch_error(
        &srv,
        pb::WatchEventsRequest {
            after_sequence: -1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(field_violations(&status).contains(&"after_sequence".to_string()));

    let status = expect_err(
        srv.events()
            .list_events(pb::ListEventsRequest {
                kind: "foo".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(field_violations(&status), ["kind"], "{status:?}");
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Expiry

/// Waits until retention has removed every event up to `through`.
async fn wait_pruned(srv: &TestServer, through: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let oldest = events_after(srv, 0).await.first().map(|e| e.sequence);
        if oldest.is_none_or(|s| s > through) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "retention did not remove events through {through} within 20s (oldest {oldest:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[track_caller]
fn assert_expired(status: &Status, what: &str) {
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "{what}: {status:?}"
    );
    assert_eq!(
        reason(status).as_deref(),
        Some("EVENTS_EXPIRED"),
        "{what}: {status:?}"
    );
}

async fn expired_events_are_reported(engine: Engine) {
    // A retention of 2 s (pruning every second): old events go within ~3 s, while new ones live
    // long enough to be replayed.
    let Some(srv) = TestServer::start_with(engine, |cfg| {
        cfg.event_retention = membership_service::config::Period(Duration::from_secs(2));
    })
    .await
    else {
        return;
    };
    for i in 0..4 {
        create_user(&srv, &format!("old{i}@feed.test")).await;
    }
    let old = events_after(&srv, 0).await;
    let old_last = old.last().expect("old events").sequence;
    assert!(old_last >= 4);
    // A watcher that keeps up is not affected by retention.
    let mut keeping_up = watch(&srv, after(old_last)).await;

    wait_pruned(&srv, old_last).await;
    assert!(events_after(&srv, 0).await.is_empty(), "everything was old");

    // Resuming inside the removed range: EVENTS_EXPIRED.
    for cursor in [1, old_last - 1] {
        let status = watch_error(&srv, after(cursor)).await;
        assert_expired(&status, &format!("resume after {cursor}"));
    }
    // Resuming at the last removed sequence loses nothing: accepted, and it follows.
    let mut at_edge = watch(&srv, after(old_last)).await;
    // From the oldest retained (none yet): accepted, and it follows.
    let mut from_oldest = watch(&srv, after(0)).await;
    assert_quiet(
        &mut from_oldest,
        "from the oldest retained, nothing retained",
    )
    .await;

    let mut users = Vec::new();
    for i in 0..3 {
        users.push(create_user(&srv, &format!("new{i}@feed.test")).await);
    }
    for (stream, what) in [
        (&mut at_edge, "resume at the pruned edge"),
        (&mut from_oldest, "from the oldest retained"),
        (&mut keeping_up, "a watcher that kept up"),
    ] {
        let got = next_events(stream, 3, what).await;
        assert_contiguous(&got, old_last + 1, old_last + 3, what);
        let ids: Vec<Option<i64>> = got.iter().map(|e| e.user_id).collect();
        assert_eq!(
            ids,
            users.iter().map(|u| Some(u.id)).collect::<Vec<_>>(),
            "{what}"
        );
    }

    // ListEvents no longer returns the removed events; after_sequence=0 replays from the oldest
    // retained one (these may themselves expire on a very slow machine: only the shape is
    // asserted then).
    let retained = events_after(&srv, 0).await;
    assert!(
        retained.iter().all(|e| e.sequence > old_last),
        "no removed event is listed: {retained:?}"
    );
    let listed_old = list_events(
        &srv,
        pb::ListEventsRequest {
            kind: "user.created".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(listed_old.iter().all(|e| e.sequence > old_last));
    let mut replay = watch(&srv, after(0)).await;
    create_user(&srv, "newest@feed.test").await;
    let newest = old_last + 4;
    let mut got = Vec::new();
    while got.last().is_none_or(|e: &pb::Event| e.sequence < newest) {
        got.push(next_event(&mut replay, "from the oldest retained, replay").await);
    }
    let first = got[0].sequence;
    assert!(first > old_last, "nothing removed is replayed: {got:?}");
    if let Some(oldest) = retained.first() {
        assert!(first >= oldest.sequence, "{got:?}");
    }
    assert_contiguous(&got, first, newest, "from the oldest retained, replay");
    if first != old_last + 1 {
        eprintln!(
            "note: the new events expired before the replay started (machine slow); replay began at {first}"
        );
    }
    // Still expired for the old cursor, once everything expires too: after the newest event's
    // retention, resuming before it is refused as well.
    wait_pruned(&srv, newest).await;
    let status = watch_error(&srv, after(old_last + 1)).await;
    assert_expired(&status, "resume after a sequence removed later");
    drop((keeping_up, at_edge, from_oldest, replay));
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Many writers, three instances, one database: no gap, no duplicate, no reordering

const INSTANCES: usize = 3;
const WRITERS: usize = 8;
const WRITES_PER_WRITER: usize = 40;

/// What one writer achieved.
#[derive(Default, Debug)]
struct WriterReport {
    /// Successful writes: each recorded exactly one event.
    events: usize,
    /// Writes refused with LAST_OWNER: none recorded an event.
    refused: usize,
}

/// One writer: cycles of create user → create membership → promote → try to demote the
/// organization's only owner (refused, LAST_OWNER) → update the user or delete the membership.
async fn writer(
    w: usize,
    mut dir: Directory,
    mut mem: Memberships,
    org_id: i64,
    owner_membership_id: i64,
    written: Arc<AtomicUsize>,
) -> WriterReport {
    let mut report = WriterReport::default();
    let mut user_id = 0;
    let mut membership_id = 0;
    for i in 0..WRITES_PER_WRITER {
        let what = format!("writer {w}, write {i}");
        let result: Result<(), Status> = match i % 5 {
            0 => dir
                .create_user(pb::CreateUserRequest {
                    email: format!("w{w}-{i}@nogap.test"),
                    ..Default::default()
                })
                .await
                .map(|r| user_id = r.into_inner().id),
            1 => mem
                .create_membership(pb::CreateMembershipRequest {
                    team_id: org_id,
                    user_id,
                    role: MembershipRole::Member as i32,
                    accepted: true,
                    ..Default::default()
                })
                .await
                .map(|r| membership_id = r.into_inner().id),
            2 => mem
                .update_membership(pb::UpdateMembershipRequest {
                    team_id: org_id,
                    member: Some(UMember::MembershipId(membership_id)),
                    role: Some(MembershipRole::Admin as i32),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            3 => match mem
                .update_membership(pb::UpdateMembershipRequest {
                    team_id: org_id,
                    member: Some(UMember::MembershipId(owner_membership_id)),
                    role: Some(MembershipRole::Member as i32),
                    ..Default::default()
                })
                .await
            {
                Ok(r) => panic!(
                    "{what}: demoting the only owner succeeded: {:?}",
                    r.into_inner()
                ),
                Err(s) => {
                    assert_eq!(s.code(), Code::FailedPrecondition, "{what}: {s:?}");
                    assert_eq!(reason(&s).as_deref(), Some("LAST_OWNER"), "{what}: {s:?}");
                    report.refused += 1;
                    continue;
                }
            },
            _ if (i / 5) % 2 == 0 => dir
                .update_user(pb::UpdateUserRequest {
                    user_id,
                    name: Some(format!("Writer {w} #{i}")),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            _ => mem
                .delete_membership(pb::DeleteMembershipRequest {
                    team_id: org_id,
                    member: Some(DMember::MembershipId(membership_id)),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        };
        if let Err(s) = result {
            panic!("{what}: {s:?}");
        }
        report.events += 1;
        written.fetch_add(1, Ordering::Relaxed);
    }
    report
}

/// Reads a watch until it has delivered `target` (known only once the writers are done).
async fn follow_until(
    mut stream: EventStream,
    mut target: watch::Receiver<Option<i64>>,
    what: String,
) -> Vec<pb::Event> {
    let mut seen: Vec<pb::Event> = Vec::new();
    loop {
        let goal = *target.borrow_and_update();
        if let Some(goal) = goal {
            if seen.last().is_some_and(|e| e.sequence >= goal) {
                return seen;
            }
            seen.push(
                next_event(
                    &mut stream,
                    &format!(
                        "{what} (reached {:?} of {goal})",
                        seen.last().map(|e| e.sequence)
                    ),
                )
                .await,
            );
            continue;
        }
        tokio::select! {
            item = stream.message() => match item {
                Ok(Some(item)) => seen.push(item.event.expect("an event")),
                Ok(None) => panic!("{what}: the stream ended"),
                Err(s) => panic!("{what}: the stream failed: {s:?}"),
            },
            changed = target.changed() => changed.expect("the target sender lives"),
        }
    }
}

async fn many_writers_through_three_instances_leave_no_gap(engine: Engine) {
    let Some(first) = TestServer::start(engine).await else {
        return;
    };
    let mut servers = vec![first];
    for _ in 1..INSTANCES {
        let next = servers[0].second_instance().await;
        servers.push(next);
    }

    // Three organizations, each with exactly one owner (so demoting it is always refused).
    let mut orgs = Vec::new();
    for o in 0..3 {
        let srv = &servers[o % INSTANCES];
        let org = create_org(srv, &format!("nogap-{o}")).await;
        let owner = create_user(srv, &format!("owner{o}@nogap.test")).await;
        let owner_m = add_member(srv, org.id, owner.id, MembershipRole::Owner).await;
        orgs.push((org.id, owner_m.id));
    }

    let start = last_sequence(&servers[0]).await;
    let (target_tx, target_rx) = watch::channel(None::<i64>);
    // One watcher per instance, from the current head.
    let mut watchers = Vec::new();
    for (i, srv) in servers.iter().enumerate() {
        let stream = watch(srv, after(start)).await;
        watchers.push(tokio::spawn(follow_until(
            stream,
            target_rx.clone(),
            format!("watcher on instance {i}"),
        )));
    }

    let began = Instant::now();
    let written = Arc::new(AtomicUsize::new(0));
    // A late watcher that starts from the same cursor while the writers are busy: its replay
    // races the live feed.
    {
        let mut events = servers[INSTANCES - 1].events();
        let written = Arc::clone(&written);
        let target = target_rx.clone();
        watchers.push(tokio::spawn(async move {
            while written.load(Ordering::Relaxed) < WRITERS * WRITES_PER_WRITER / 4 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let stream = watch_on(&mut events, after(start)).await;
            follow_until(stream, target, "late watcher".into()).await
        }));
    }

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let srv = &servers[w % INSTANCES];
        let (org_id, owner_m) = orgs[(w / INSTANCES) % orgs.len()];
        writers.push(tokio::spawn(writer(
            w,
            srv.directory(),
            srv.memberships(),
            org_id,
            owner_m,
            Arc::clone(&written),
        )));
    }
    let mut events_written = 0;
    let mut refused = 0;
    for w in writers {
        let report = w.await.expect("writer task");
        events_written += report.events;
        refused += report.refused;
    }
    let writing = began.elapsed();
    assert!(refused > 0);

    let stored = events_after(&servers[0], start).await;
    let last = stored.last().map_or(start, |e| e.sequence);
    assert_eq!(
        last - start,
        events_written as i64,
        "one sequence per successful write; the {refused} refused writes took none"
    );
    assert_contiguous(&stored, start + 1, last, "ListEvents after the writers");
    for (i, srv) in servers.iter().enumerate().skip(1) {
        assert_eq!(
            keys(&events_after(srv, start).await),
            keys(&stored),
            "instance {i} lists the same log"
        );
    }

    target_tx.send(Some(last)).expect("watchers listen");
    let mut seen = Vec::new();
    for (i, w) in watchers.into_iter().enumerate() {
        let got = w.await.unwrap_or_else(|e| panic!("watcher {i}: {e}"));
        assert_contiguous(&got, start + 1, last, &format!("watcher {i}"));
        assert_eq!(keys(&got), keys(&stored), "watcher {i} saw the stored log");
        seen.push(got);
    }
    for (i, got) in seen.iter().enumerate().skip(1) {
        assert_eq!(keys(got), keys(&seen[0]), "watchers 0 and {i} agree");
    }
    eprintln!(
        "{}: {events_written} events + {refused} refused writes from {WRITERS} writers over \
         {INSTANCES} instances in {writing:?}; {} watchers saw all {} in order",
        engine.name(),
        seen.len(),
        last - start
    );
    drop(target_tx);
    for srv in servers.into_iter().rev() {
        srv.stop().await;
    }
}

// ---------------------------------------------------------------------------------------------
// 6. A watcher far behind the feed

const SLOW_WRITERS: usize = 8;
/// Each pair is a create and an update: 2 × 8 × 100 = 1600 events. The updates carry a long
/// bio, so that the HTTP/2 buffers (the client's 64 KiB window, hyper's 400 KiB send buffer)
/// and the watch's queue (256) absorb only a few hundred events: the rest, well over this
/// server's feed buffer (`SLOW_FEED_BUFFER`), makes the stuck watch lag and re-read from the
/// database. The default buffer (4096) would need four times the writes for the same path.
const SLOW_PAIRS_PER_WRITER: usize = 100;
const SLOW_FEED_BUFFER: u32 = 256;
const LONG_BIO_CHARS: usize = 3000;

async fn slow_watcher_misses_nothing(engine: Engine) {
    let Some(srv) = TestServer::start_with(engine, |config| {
        config.feed_buffer = SLOW_FEED_BUFFER;
    })
    .await
    else {
        return;
    };
    let start = last_sequence(&srv).await;
    // Two watchers that do not read, on connections with small HTTP/2 windows: one for
    // everything, one for the updates only.
    let mut everything = watch_on(&mut tight_events_client(&srv).await, after(start)).await;
    let mut updates = watch_on(
        &mut tight_events_client(&srv).await,
        pb::WatchEventsRequest {
            after_sequence: start,
            kinds: vec!["user.updated".into()],
            ..Default::default()
        },
    )
    .await;
    // Take the first event of each, so both are surely past their (empty) replay and following.
    let mut dir = srv.directory();
    let user = create_user(&srv, "first@slow.test").await;
    dir.update_user(pb::UpdateUserRequest {
        user_id: user.id,
        name: Some("First".into()),
        ..Default::default()
    })
    .await
    .expect("first update");
    let e = next_event(&mut everything, "slow watcher, first event").await;
    assert_eq!(e.sequence, start + 1);
    let e = next_event(&mut updates, "slow update watcher, first event").await;
    assert_eq!((e.sequence, e.kind.as_str()), (start + 2, "user.updated"));

    let began = Instant::now();
    let mut writers = Vec::new();
    for w in 0..SLOW_WRITERS {
        let mut dir = srv.directory();
        writers.push(tokio::spawn(async move {
            for i in 0..SLOW_PAIRS_PER_WRITER {
                let user = dir
                    .create_user(new_user(&format!("s{w}-{i}@slow.test")))
                    .await
                    .unwrap_or_else(|s| panic!("writer {w}: create user {i}: {s:?}"))
                    .into_inner();
                dir.update_user(pb::UpdateUserRequest {
                    user_id: user.id,
                    bio: Some(format!("writer {w}, pair {i} ").repeat(LONG_BIO_CHARS / 20)),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|s| panic!("writer {w}, update {i}: {s:?}"));
            }
        }));
    }
    for w in writers {
        w.await.expect("writer task");
    }
    let writing = began.elapsed();
    let total = 2 + 2 * SLOW_WRITERS * SLOW_PAIRS_PER_WRITER;
    let stored = events_after(&srv, start).await;
    assert_eq!(stored.len(), total);
    let last = start + total as i64;
    assert_contiguous(&stored, start + 1, last, "ListEvents");

    let read_began = Instant::now();
    let rest = next_events(&mut everything, total - 1, "slow watcher").await;
    assert_contiguous(&rest, start + 2, last, "slow watcher");
    assert_eq!(
        keys(&rest),
        keys(&stored[1..]),
        "slow watcher saw the stored log"
    );
    assert_quiet(&mut everything, "slow watcher").await;

    let want: Vec<pb::Event> = stored[2..]
        .iter()
        .filter(|e| e.kind == "user.updated")
        .cloned()
        .collect();
    assert_eq!(want.len(), SLOW_WRITERS * SLOW_PAIRS_PER_WRITER);
    let got = next_events(&mut updates, want.len(), "slow update watcher").await;
    assert_eq!(keys(&got), keys(&want), "slow update watcher");
    assert_quiet(&mut updates, "slow update watcher").await;
    eprintln!(
        "{}: {total} events written in {writing:?}, read back by the slow watchers in {:?}",
        engine.name(),
        read_began.elapsed()
    );
    // The feed still follows afterwards.
    let user = create_user(&srv, "after@slow.test").await;
    let e = next_event(&mut everything, "slow watcher, afterwards").await;
    assert_eq!((e.sequence, e.user_id), (last + 1, Some(user.id)));
    drop((everything, updates));
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 7. Lifetime of a watch

/// A watch is a long-lived call: the per-request timeout bounds producing the response, not
/// the stream that follows.
async fn watch_outlives_the_request_timeout(engine: Engine) {
    let Some(srv) = TestServer::start_with(engine, |cfg| cfg.request_timeout_ms = 1000).await
    else {
        return;
    };
    let start = last_sequence(&srv).await;
    let mut stream = watch(&srv, after(start)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let user = create_user(&srv, "late@feed.test").await;
    let e = next_event(
        &mut stream,
        "a watch idle for longer than the request timeout",
    )
    .await;
    assert_eq!((e.sequence, e.user_id), (start + 1, Some(user.id)));
    drop(stream);
    srv.stop().await;
}

/// Stopping a server (SIGTERM: "graceful shutdown drains in-flight calls") must end the open
/// watches, which never end by themselves: otherwise the drain waits for them forever and the
/// replica never exits while anyone watches.
async fn shutdown_ends_open_watches(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let start = last_sequence(&srv).await;
    let mut stream = watch(&srv, after(start)).await;
    create_user(&srv, "before-stop@feed.test").await;
    next_event(&mut stream, "before the stop").await;

    let began = Instant::now();
    let stopping = tokio::spawn(srv.stop());
    // The watcher learns that the stream is over: it ends, or fails (UNAVAILABLE, say).
    let ended = timeout(Duration::from_secs(8), stream.message()).await;
    let waited = began.elapsed();
    stopping.await.expect("stop task");
    let stopped_in = began.elapsed();
    match ended {
        Err(_) => panic!(
            "an open watch was still open {waited:?} after the server began to stop \
             (the server took {stopped_in:?} to stop)"
        ),
        Ok(Ok(Some(item))) => panic!("an event after the stop began: {item:?}"),
        Ok(Ok(None)) | Ok(Err(_)) => {}
    }
    assert!(
        stopped_in < Duration::from_secs(8),
        "the server took {stopped_in:?} to stop with a watch open"
    );
}
