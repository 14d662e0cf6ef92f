//! The concurrency proof of the rules that span rows: two requests that each demote one of an
//! organization's two owners at the same moment must never leave it with none. Every race is fired many times, on every engine, with the two requests going to two
//! server instances (two processes' worth of pools) over one database, released together by a
//! barrier.

// Request literals end in `..Default::default()` even when they name every field today, so
// that fields the contract adds later (consistency, …) do not break these tests.
#![allow(clippy::needless_update)]

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use crate::common::{
    Engine, TestServer, add_member, create_org, create_org_with, create_team, create_user,
    last_sequence, list_events, pb, reason,
};
use pb::MembershipRole;
use pb::directory_service_client::DirectoryServiceClient;
use pb::membership_service_client::MembershipServiceClient;
use tokio::sync::Barrier;
use tonic::{Code, Status};

engine_tests!(
    concurrent_demotions_leave_one_owner,
    concurrent_deletions_leave_one_owner,
    demotion_racing_deletion_leaves_one_owner,
    mixed_owner_removals_leave_one_owner,
    concurrent_creates_respect_the_membership_limit,
    sub_team_membership_racing_org_membership_deletion,
    create_membership_racing_delete_user,
    concurrent_duplicate_creates_are_already_exists,
);

/// Rounds of the headline race (two demotions).
const DEMOTION_ROUNDS: usize = 50;
/// Rounds of each other race.
const ROUNDS: usize = 30;

type Memberships = MembershipServiceClient<crate::common::AuthChannel>;
type Directory = DirectoryServiceClient<crate::common::AuthChannel>;

/// A server and a second instance on the same database.
struct Replicas {
    first: TestServer,
    second: TestServer,
}

impl Replicas {
    async fn start(engine: Engine) -> Option<Replicas> {
        let first = TestServer::start(engine).await?;
        let second = first.second_instance().await;
        Some(Replicas { first, second })
    }

    /// The server that request number `i` (0 or 1) of a race goes to.
    fn server(&self, i: usize) -> &TestServer {
        if i == 0 { &self.first } else { &self.second }
    }

    async fn stop(self) {
        self.second.stop().await;
        self.first.stop().await;
    }
}

/// An organization with two accepted OWNERs; both instances have read it (warm pools and
/// channels, so the race is not decided by connection setup).
async fn two_owner_org(
    r: &Replicas,
    slug: &str,
    users: [i64; 2],
) -> (pb::Organization, [pb::Membership; 2]) {
    let org = create_org(&r.first, slug).await;
    let a = add_member(&r.first, org.id, users[0], MembershipRole::Owner).await;
    let b = add_member(&r.first, org.id, users[1], MembershipRole::Owner).await;
    for i in 0..2 {
        r.server(i)
            .memberships()
            .list_memberships(pb::ListMembershipsRequest {
                team_id: org.id,
                ..Default::default()
            })
            .await
            .expect("warm-up read");
    }
    (org, [a, b])
}

/// Runs two requests at the same moment, each on its own task, and returns both results.
async fn race<A, B>(a: A, b: B) -> (Result<(), Status>, Result<(), Status>)
where
    A: Future<Output = Result<(), Status>> + Send + 'static,
    B: Future<Output = Result<(), Status>> + Send + 'static,
{
    race_timed(a, b).await.0
}

/// Like `race`, and whether the two calls were in flight at the same time (each started before
/// the other returned): evidence that the server, not the client, had to decide the race.
async fn race_timed<A, B>(a: A, b: B) -> ((Result<(), Status>, Result<(), Status>), bool)
where
    A: Future<Output = Result<(), Status>> + Send + 'static,
    B: Future<Output = Result<(), Status>> + Send + 'static,
{
    async fn timed<F: Future<Output = Result<(), Status>>>(
        barrier: Arc<Barrier>,
        call: F,
    ) -> (Result<(), Status>, Instant, Instant) {
        barrier.wait().await;
        let start = Instant::now();
        let result = call.await;
        (result, start, Instant::now())
    }
    let barrier = Arc::new(Barrier::new(2));
    let ta = tokio::spawn(timed(barrier.clone(), a));
    let tb = tokio::spawn(timed(barrier, b));
    let (ra, rb) = tokio::join!(ta, tb);
    let (ra, a_start, a_end) = ra.expect("task a");
    let (rb, b_start, b_end) = rb.expect("task b");
    ((ra, rb), a_start < b_end && b_start < a_end)
}

/// The ways a request can take an owner away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// `role = ADMIN`.
    DemoteToAdmin,
    /// `role_id = "member"`.
    DemoteByRoleId,
    /// `accepted = false`.
    Unaccept,
    DeleteMembership,
    /// `DeleteUser` of the owner (refused while they are the last owner).
    DeleteUser,
}

const REMOVALS: [Removal; 5] = [
    Removal::DemoteToAdmin,
    Removal::DemoteByRoleId,
    Removal::Unaccept,
    Removal::DeleteMembership,
    Removal::DeleteUser,
];

fn removal(
    srv: &TestServer,
    kind: Removal,
    m: &pb::Membership,
) -> impl Future<Output = Result<(), Status>> + Send + 'static {
    let mut memberships: Memberships = srv.memberships();
    let mut directory: Directory = srv.directory();
    let (id, user_id) = (m.id, m.user_id);
    let update = move |r: pb::UpdateMembershipRequest| pb::UpdateMembershipRequest {
        member: Some(pb::update_membership_request::Member::MembershipId(id)),
        ..r
    };
    async move {
        match kind {
            Removal::DemoteToAdmin => memberships
                .update_membership(update(pb::UpdateMembershipRequest {
                    role: Some(MembershipRole::Admin as i32),
                    ..Default::default()
                }))
                .await
                .map(drop),
            Removal::DemoteByRoleId => memberships
                .update_membership(update(pb::UpdateMembershipRequest {
                    role_id: Some("member".into()),
                    ..Default::default()
                }))
                .await
                .map(drop),
            Removal::Unaccept => memberships
                .update_membership(update(pb::UpdateMembershipRequest {
                    accepted: Some(false),
                    ..Default::default()
                }))
                .await
                .map(drop),
            Removal::DeleteMembership => memberships
                .delete_membership(pb::DeleteMembershipRequest {
                    member: Some(pb::delete_membership_request::Member::MembershipId(id)),
                    ..Default::default()
                })
                .await
                .map(drop),
            Removal::DeleteUser => directory
                .delete_user(pb::DeleteUserRequest {
                    user_id,
                    etag: None,
                    ..Default::default()
                })
                .await
                .map(drop),
        }
    }
}

fn is_last_owner(status: &Status) -> bool {
    status.code() == Code::FailedPrecondition && reason(status).as_deref() == Some("LAST_OWNER")
}

/// Exactly one of the two succeeded and the other was refused with LAST_OWNER; returns which
/// one won (0 or 1).
#[track_caller]
fn one_won(what: &str, results: &(Result<(), Status>, Result<(), Status>)) -> usize {
    match results {
        (Ok(()), Err(s)) if is_last_owner(s) => 0,
        (Err(s), Ok(())) if is_last_owner(s) => 1,
        other => panic!(
            "{what}: expected exactly one success and one FAILED_PRECONDITION LAST_OWNER, got {other:?}"
        ),
    }
}

/// The organization's accepted OWNER memberships, read through the first instance.
async fn accepted_owners(r: &Replicas, org_id: i64) -> Vec<pb::Membership> {
    r.first
        .memberships()
        .list_memberships(pb::ListMembershipsRequest {
            team_id: org_id,
            role: MembershipRole::Owner as i32,
            accepted: Some(true),
            ..Default::default()
        })
        .await
        .expect("list owners")
        .into_inner()
        .memberships
}

async fn events_of(r: &Replicas, org_id: i64, after_sequence: i64) -> Vec<pb::Event> {
    list_events(
        &r.second,
        pb::ListEventsRequest {
            team_id: Some(org_id),
            after_sequence,
            ..Default::default()
        },
    )
    .await
}

/// One round: an org with two owners, `kinds[i]` sent to instance `i` against owner `i` at the
/// same moment. Checks that exactly one won, that one accepted OWNER is left (the loser's), and
/// that only the winner's write recorded events.
/// Returns whether the two calls overlapped in time.
async fn owner_round(r: &Replicas, round: usize, kinds: [Removal; 2], users: [i64; 2]) -> bool {
    let what = format!(
        "{} round {round}: {:?} vs {:?}",
        r.first.engine.name(),
        kinds[0],
        kinds[1]
    );
    let (org, owners) = two_owner_org(r, &format!("race-{round}"), users).await;
    let seq = last_sequence(&r.first).await;
    let (results, overlapped) = race_timed(
        removal(r.server(0), kinds[0], &owners[0]),
        removal(r.server(1), kinds[1], &owners[1]),
    )
    .await;
    let winner = one_won(&what, &results);
    let loser = 1 - winner;

    let left = accepted_owners(r, org.id).await;
    assert_eq!(
        left.iter().map(|m| m.id).collect::<Vec<_>>(),
        [owners[loser].id],
        "{what}: exactly the loser is still an accepted OWNER"
    );
    assert_eq!(
        left[0].etag, owners[loser].etag,
        "{what}: the refused write changed nothing"
    );

    let events = events_of(r, org.id, seq).await;
    assert!(
        !events.is_empty()
            && events
                .iter()
                .all(|e| e.membership_id == Some(owners[winner].id)),
        "{what}: only the winner's write is recorded: {events:?}"
    );
    overlapped
}

async fn fresh_users(r: &Replicas, tag: &str) -> [i64; 2] {
    [
        create_user(&r.first, &format!("a-{tag}@race.test"))
            .await
            .id,
        create_user(&r.first, &format!("b-{tag}@race.test"))
            .await
            .id,
    ]
}

async fn concurrent_demotions_leave_one_owner(engine: Engine) {
    let Some(r) = Replicas::start(engine).await else {
        return;
    };
    let started = Instant::now();
    let users = fresh_users(&r, "demote").await;
    let mut overlapped = 0;
    for round in 0..DEMOTION_ROUNDS {
        let both_in_flight = owner_round(
            &r,
            round,
            [Removal::DemoteToAdmin, Removal::DemoteToAdmin],
            users,
        )
        .await;
        overlapped += usize::from(both_in_flight);
    }
    eprintln!(
        "{}: {DEMOTION_ROUNDS} demotion races in {:?}, both calls in flight together in {overlapped}",
        engine.name(),
        started.elapsed()
    );
    // Guards the test itself: a harness change that serialised the calls would prove nothing.
    assert!(
        overlapped >= DEMOTION_ROUNDS / 2,
        "only {overlapped} of {DEMOTION_ROUNDS} rounds had both demotions in flight together"
    );
    r.stop().await;
}

async fn concurrent_deletions_leave_one_owner(engine: Engine) {
    let Some(r) = Replicas::start(engine).await else {
        return;
    };
    let users = fresh_users(&r, "delete").await;
    for round in 0..ROUNDS {
        owner_round(
            &r,
            round,
            [Removal::DeleteMembership, Removal::DeleteMembership],
            users,
        )
        .await;
    }
    r.stop().await;
}

async fn demotion_racing_deletion_leaves_one_owner(engine: Engine) {
    let Some(r) = Replicas::start(engine).await else {
        return;
    };
    let users = fresh_users(&r, "mixed").await;
    for round in 0..ROUNDS {
        // Alternate which instance demotes and which deletes.
        let kinds = if round % 2 == 0 {
            [Removal::DemoteToAdmin, Removal::DeleteMembership]
        } else {
            [Removal::DeleteMembership, Removal::DemoteToAdmin]
        };
        owner_round(&r, round, kinds, users).await;
    }
    r.stop().await;
}

/// Every pair of removal kinds (unaccepting, demoting by role_id, DeleteUser too); fresh users
/// each round, since DeleteUser takes one away.
async fn mixed_owner_removals_leave_one_owner(engine: Engine) {
    let Some(r) = Replicas::start(engine).await else {
        return;
    };
    let mut round = 0;
    for a in REMOVALS {
        for b in REMOVALS {
            let users = fresh_users(&r, &format!("m{round}")).await;
            owner_round(&r, round, [a, b], users).await;
            round += 1;
        }
    }
    r.stop().await;
}

/// Two memberships created at once in an organization with room for one more: exactly one
/// gets in.
async fn concurrent_creates_respect_the_membership_limit(engine: Engine) {
    let Some(r) = Replicas::start(engine).await else {
        return;
    };
    let owner = create_user(&r.first, "owner@limit.test").await;
    let users = fresh_users(&r, "limit").await;
    for round in 0..ROUNDS {
        let what = format!("{} limit round {round}", engine.name());
        let org = create_org_with(
            &r.first,
            pb::CreateOrganizationRequest {
                slug: format!("limit-{round}"),
                max_allowed_memberships: 2,
                ..Default::default()
            },
        )
        .await;
        add_member(&r.first, org.id, owner.id, MembershipRole::Owner).await;
        let create = |i: usize| {
            let mut client = r.server(i).memberships();
            let request = pb::CreateMembershipRequest {
                team_id: org.id,
                user_id: users[i],
                ..Default::default()
            };
            async move { client.create_membership(request).await.map(drop) }
        };
        let results = race(create(0), create(1)).await;
        let limited = |s: &Status| {
            s.code() == Code::FailedPrecondition
                && reason(s).as_deref() == Some("MEMBERSHIP_LIMIT_REACHED")
        };
        match &results {
            (Ok(()), Err(s)) | (Err(s), Ok(())) if limited(s) => {}
            other => panic!(
                "{what}: expected one success and one MEMBERSHIP_LIMIT_REACHED, got {other:?}"
            ),
        }
        let all = r
            .second
            .memberships()
            .list_memberships(pb::ListMembershipsRequest {
                team_id: org.id,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner()
            .memberships;
        assert_eq!(all.len(), 2, "{what}: the limit holds");
    }
    r.stop().await;
}

/// Creating a user's sub-team membership while their organization membership is deleted must
/// never leave a sub-team membership without an organization membership.
async fn sub_team_membership_racing_org_membership_deletion(engine: Engine) {
    let Some(r) = Replicas::start(engine).await else {
        return;
    };
    let owner = create_user(&r.first, "owner@orphan.test").await;
    let ada = create_user(&r.first, "ada@orphan.test").await;
    let mut both_ok = 0;
    for round in 0..ROUNDS {
        let what = format!("{} orphan round {round}", engine.name());
        let org = create_org(&r.first, &format!("orphan-{round}")).await;
        add_member(&r.first, org.id, owner.id, MembershipRole::Owner).await;
        let team = create_team(&r.first, org.id, "eng").await;
        let ada_org = add_member(&r.first, org.id, ada.id, MembershipRole::Member).await;

        let mut creator = r.server(round % 2).memberships();
        let create = async move {
            creator
                .create_membership(pb::CreateMembershipRequest {
                    team_id: team.id,
                    user_id: ada.id,
                    accepted: true,
                    ..Default::default()
                })
                .await
                .map(drop)
        };
        let mut deleter = r.server(1 - round % 2).memberships();
        let delete = async move {
            deleter
                .delete_membership(pb::DeleteMembershipRequest {
                    member: Some(pb::delete_membership_request::Member::MembershipId(
                        ada_org.id,
                    )),
                    ..Default::default()
                })
                .await
                .map(drop)
        };
        let (created, deleted) = race(create, delete).await;
        deleted.unwrap_or_else(|s| panic!("{what}: the org membership delete failed: {s:?}"));
        match &created {
            Ok(()) => both_ok += 1,
            Err(s)
                if s.code() == Code::FailedPrecondition
                    && reason(s).as_deref() == Some("NOT_AN_ORGANIZATION_MEMBER") => {}
            Err(s) => panic!("{what}: unexpected create failure {s:?}"),
        }
        let left = r
            .first
            .memberships()
            .list_user_memberships(pb::ListUserMembershipsRequest {
                user_id: ada.id,
                ..Default::default()
            })
            .await
            .expect("list user memberships")
            .into_inner()
            .memberships;
        assert!(
            left.iter().all(|m| m.organization_id != org.id),
            "{what}: an orphan sub-team membership is left: {left:?}"
        );
    }
    eprintln!(
        "{}: the create came first in {both_ok} of {ROUNDS} rounds",
        engine.name()
    );
    r.stop().await;
}

/// Adding a user to an organization while the user is deleted must never leave a membership of a
/// user that no longer exists (an orphan would even count as an accepted OWNER for the last-owner
/// rule).
async fn create_membership_racing_delete_user(engine: Engine) {
    let Some(r) = Replicas::start(engine).await else {
        return;
    };
    let mut created_first = 0;
    for round in 0..ROUNDS {
        let what = format!("{} delete-user round {round}", engine.name());
        let org = create_org(&r.first, &format!("gone-{round}")).await;
        let user = create_user(&r.first, &format!("gone-{round}@race.test")).await;
        let mut creator = r.server(round % 2).memberships();
        let create = async move {
            creator
                .create_membership(pb::CreateMembershipRequest {
                    team_id: org.id,
                    user_id: user.id,
                    role: MembershipRole::Owner as i32,
                    accepted: true,
                    ..Default::default()
                })
                .await
                .map(drop)
        };
        let mut deleter = r.server(1 - round % 2).directory();
        let delete = async move {
            deleter
                .delete_user(pb::DeleteUserRequest {
                    user_id: user.id,
                    ..Default::default()
                })
                .await
                .map(drop)
        };
        let (created, deleted) = race(create, delete).await;
        match (&created, &deleted) {
            // Created first: the user is now the only OWNER, so the delete must be refused; a
            // successful delete after it is checked below (no membership may survive the user).
            (Ok(()), Ok(())) => created_first += 1,
            (Ok(()), Err(s)) if is_last_owner(s) => created_first += 1,
            (Err(s), Ok(())) if s.code() == Code::NotFound => {}
            other => panic!("{what}: unexpected outcome {other:?}"),
        }
        let user_exists = match r
            .first
            .directory()
            .get_user(pb::GetUserRequest {
                user_id: user.id,
                ..Default::default()
            })
            .await
        {
            Ok(_) => true,
            Err(s) if s.code() == Code::NotFound => false,
            Err(s) => panic!("{what}: get user: {s:?}"),
        };
        let count = r
            .first
            .directory()
            .get_organization(pb::GetOrganizationRequest {
                organization_id: org.id,
                ..Default::default()
            })
            .await
            .expect("get organization")
            .into_inner()
            .members_count;
        if user_exists {
            assert!(
                deleted.is_err(),
                "{what}: the user survived a successful delete"
            );
            assert_eq!(count, 1, "{what}: the membership of the kept user");
        } else {
            assert_eq!(
                count, 0,
                "{what}: the organization holds a membership of deleted user {}",
                user.id
            );
        }
    }
    eprintln!(
        "{}: the create came first in {created_first} of {ROUNDS} rounds",
        engine.name()
    );
    r.stop().await;
}

/// The same unique thing created twice at once, through two instances: one succeeds, the other
/// is ALREADY_EXISTS (never INTERNAL or UNAVAILABLE).
async fn concurrent_duplicate_creates_are_already_exists(engine: Engine) {
    let Some(r) = Replicas::start(engine).await else {
        return;
    };
    let owner = create_user(&r.first, "owner@dup.test").await;
    #[track_caller]
    fn one_exists(what: &str, results: &(Result<(), Status>, Result<(), Status>)) {
        match results {
            (Ok(()), Err(s)) | (Err(s), Ok(())) if s.code() == Code::AlreadyExists => {}
            other => panic!("{what}: expected one success and one ALREADY_EXISTS, got {other:?}"),
        }
    }
    for round in 0..ROUNDS / 2 {
        let what = format!("{} duplicate round {round}", engine.name());
        let user = |i: usize| {
            let mut client = r.server(i).directory();
            let email = format!("Dup-{round}@Race.test");
            let email = if i == 0 { email } else { email.to_lowercase() };
            async move {
                client
                    .create_user(pb::CreateUserRequest {
                        email,
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            }
        };
        one_exists(&format!("{what}: user"), &race(user(0), user(1)).await);

        let org = |i: usize| {
            let mut client = r.server(i).directory();
            let slug = format!("dup-{round}");
            async move {
                client
                    .create_organization(pb::CreateOrganizationRequest {
                        name: format!("Org {slug}"),
                        slug,
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            }
        };
        one_exists(
            &format!("{what}: organization"),
            &race(org(0), org(1)).await,
        );

        let org_id = r
            .first
            .directory()
            .list_organizations(pb::ListOrganizationsRequest {
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("list organizations")
            .into_inner()
            .organizations
            .into_iter()
            .find(|o| o.slug == format!("dup-{round}"))
            .expect("the organization that won")
            .id;
        let member = |i: usize| {
            let mut client = r.server(i).memberships();
            async move {
                client
                    .create_membership(pb::CreateMembershipRequest {
                        team_id: org_id,
                        user_id: owner.id,
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            }
        };
        one_exists(
            &format!("{what}: membership"),
            &race(member(0), member(1)).await,
        );
    }
    r.stop().await;
}
