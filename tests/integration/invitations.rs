//! InvitationService on every engine: creating, reading, listing, revoking and accepting
//! invitations; the seats pending invitations hold under `max_allowed_memberships`; the actor
//! rules, bound keys, the events written, and the sweep that expires them exactly once.

use chrono::{Duration, Utc};
use membership_service::config::Period;
use pb::InvitationStatus;
use pb::MembershipRole;
use pb::api_key_service_client::ApiKeyServiceClient;
use pb::invitation_service_client::InvitationServiceClient;
use sea_orm::ConnectionTrait;
use tonic::Code;

use crate::common::{
    AuthChannel, Engine, TestServer, add_member, add_pending_member, all_events, assert_invalid,
    create_org, create_org_with, create_role, create_user, error_info, events_after, expect_err,
    last_sequence, new_membership, pb, reason,
};

engine_tests!(
    creates_gets_and_lists_invitations,
    revokes_a_pending_invitation_only,
    accepting_makes_the_invited_user_a_member,
    expired_and_revoked_invitations_cannot_be_accepted,
    pending_invitations_hold_seats_under_the_limit,
    one_pending_invitation_per_email_and_none_for_members,
    bad_input_names_each_field,
    invitations_check_the_actor,
    a_bound_key_sees_its_organization_invitations_only,
    the_sweep_expires_each_invitation_exactly_once,
    the_sweeper_marks_expired_invitations,
);

/// A server whose own sweeper stays out of the way: these tests sweep when they choose to.
async fn start(engine: Engine) -> Option<TestServer> {
    TestServer::start_with(engine, |cfg| {
        cfg.sweep_interval = Period(std::time::Duration::from_secs(3600))
    })
    .await
}

fn invitations_as(srv: &TestServer, actor: i64) -> InvitationServiceClient<AuthChannel> {
    srv.client_with(srv.auth().actor(actor), InvitationServiceClient::new)
}

fn invite(organization_id: i64, email: &str) -> pb::CreateInvitationRequest {
    pb::CreateInvitationRequest {
        organization_id,
        email: email.into(),
        ..Default::default()
    }
}

async fn create(srv: &TestServer, organization_id: i64, email: &str) -> pb::Invitation {
    srv.invitations()
        .create_invitation(invite(organization_id, email))
        .await
        .unwrap_or_else(|s| panic!("invite {email} to {organization_id}: {s:?}"))
        .into_inner()
}

async fn get(srv: &TestServer, id: i64) -> pb::Invitation {
    srv.invitations()
        .get_invitation(pb::GetInvitationRequest { invitation_id: id })
        .await
        .unwrap_or_else(|s| panic!("get invitation {id}: {s:?}"))
        .into_inner()
}

async fn revoke(srv: &TestServer, id: i64) -> pb::Invitation {
    srv.invitations()
        .revoke_invitation(pb::RevokeInvitationRequest {
            invitation_id: id,
            etag: None,
        })
        .await
        .unwrap_or_else(|s| panic!("revoke invitation {id}: {s:?}"))
        .into_inner()
}

fn accept(id: i64, user_id: i64) -> pb::AcceptInvitationRequest {
    pb::AcceptInvitationRequest {
        invitation_id: id,
        user_id,
    }
}

/// The ids of the organization's invitations with this status filter, every page followed
/// (pages of `page_size`), and how many pages it took.
async fn list_ids(
    srv: &TestServer,
    organization_id: i64,
    status: InvitationStatus,
    page_size: i32,
) -> (Vec<i64>, usize) {
    let mut ids = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = srv
            .invitations()
            .list_invitations(pb::ListInvitationsRequest {
                organization_id,
                status: status as i32,
                page_size,
                page_token: token.clone(),
            })
            .await
            .unwrap_or_else(|s| panic!("list invitations of {organization_id}: {s:?}"))
            .into_inner();
        pages += 1;
        for i in &page.invitations {
            if status != InvitationStatus::Unspecified {
                assert_eq!(i.status, status as i32, "{i:?}");
            }
        }
        ids.extend(page.invitations.iter().map(|i| i.id));
        if page.next_page_token.is_empty() {
            return (ids, pages);
        }
        token = page.next_page_token;
    }
}

/// Moves an invitation's expiry an hour into the past, as the passing of time would: the
/// sweeper has not run.
async fn expire_by_hand(srv: &TestServer, id: i64) {
    let past = (Utc::now() - Duration::hours(1)).timestamp_micros();
    srv.store()
        .conn()
        .execute_unprepared(&format!(
            "UPDATE invitations SET expires_at = {past} WHERE id = {id}"
        ))
        .await
        .unwrap_or_else(|e| panic!("expire invitation {id}: {e}"));
}

#[track_caller]
fn assert_precondition(status: &tonic::Status, want: &str) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(reason(status).as_deref(), Some(want), "{status:?}");
}

#[track_caller]
fn assert_rule(status: &tonic::Status, key: &str, value: &str) {
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let info = error_info(status).unwrap_or_else(|| panic!("ErrorInfo in {status:?}"));
    assert_eq!(info.reason, "ACTOR_LACKS_PERMISSION", "{status:?}");
    assert_eq!(
        info.metadata.get(key).map(String::as_str),
        Some(value),
        "{status:?}"
    );
}

async fn creates_gets_and_lists_invitations(engine: Engine) {
    let Some(srv) = start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let before = last_sequence(&srv).await;

    let created = create(&srv, org.id, "  NewComer@Acme.TEST ").await;
    assert!(created.id > 0);
    assert_eq!(created.organization_id, org.id);
    assert_eq!(created.email, "newcomer@acme.test");
    assert_eq!(created.status, InvitationStatus::Pending as i32);
    assert_eq!(created.role, MembershipRole::Member as i32);
    assert_eq!(created.role_id, "member_role");
    assert_eq!(created.inviter_user_id, 0, "a service invited");
    assert!(!created.etag.is_empty());
    // The default expiry is seven days after creation.
    let created_at = created.created_at.unwrap().seconds;
    let validity = created.expires_at.unwrap().seconds - created_at;
    let week = 7 * 24 * 3600;
    assert!(
        (week - 60..=week).contains(&validity),
        "expires {validity}s after creation"
    );

    // The event, with the invitation as its `after`.
    let events = events_after(&srv, before).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.kind, "invitation.created");
    assert_eq!(event.sequence, created.revision);
    assert_eq!(event.organization_id, Some(org.id));
    let after = event.after.as_ref().expect("after snapshot");
    assert_eq!(
        after.fields["email"].kind,
        Some(prost_types::value::Kind::StringValue(
            "newcomer@acme.test".into()
        ))
    );
    assert!(event.before.is_none());

    let mut fetched = get(&srv, created.id).await;
    assert_eq!(fetched.revision, 0);
    fetched.revision = created.revision;
    assert_eq!(fetched, created);

    // An explicit expiry and a role by reference.
    let expires = Utc::now() + Duration::days(2);
    let admin_invite = srv
        .invitations()
        .create_invitation(pb::CreateInvitationRequest {
            role_id: "org:admin".into(),
            expires_at: Some(prost_types::Timestamp {
                seconds: expires.timestamp(),
                nanos: 0,
            }),
            ..invite(org.id, "second@acme.test")
        })
        .await
        .expect("invite with a role and an expiry")
        .into_inner();
    assert_eq!(admin_invite.role, MembershipRole::Admin as i32);
    assert_eq!(admin_invite.role_id, "admin_role");
    assert_eq!(
        admin_invite.expires_at.unwrap().seconds,
        expires.timestamp()
    );

    // A retry with the same request id gets the first answer and writes nothing.
    let retried = pb::CreateInvitationRequest {
        request_id: "invite-third".into(),
        ..invite(org.id, "third@acme.test")
    };
    let third = srv
        .invitations()
        .create_invitation(retried.clone())
        .await
        .expect("invite with a request id")
        .into_inner();
    let sequence = last_sequence(&srv).await;
    let again = srv
        .invitations()
        .create_invitation(retried)
        .await
        .expect("the retry")
        .into_inner();
    assert_eq!(again, third);
    assert_eq!(
        last_sequence(&srv).await,
        sequence,
        "the retry wrote nothing"
    );
    revoke(&srv, third.id).await;

    // Deleting an organization deletes its invitations.
    let other_org = create_org(&srv, "globex").await;
    let gone = create(&srv, other_org.id, "newcomer@acme.test").await;
    srv.directory()
        .delete_organization(pb::DeleteOrganizationRequest {
            organization_id: other_org.id,
            etag: None,
        })
        .await
        .expect("delete globex");
    let status = expect_err(
        srv.invitations()
            .get_invitation(pb::GetInvitationRequest {
                invitation_id: gone.id,
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    let all = vec![created.id, admin_invite.id, third.id];
    assert_eq!(
        list_ids(&srv, org.id, InvitationStatus::Unspecified, 2).await,
        (all.clone(), 2)
    );
    assert_eq!(
        list_ids(&srv, org.id, InvitationStatus::Unspecified, 0).await,
        (all, 1)
    );
    assert_eq!(
        list_ids(&srv, org.id, InvitationStatus::Pending, 1).await.0,
        vec![created.id, admin_invite.id]
    );
    assert_eq!(
        list_ids(&srv, org.id, InvitationStatus::Revoked, 0).await.0,
        vec![third.id]
    );
    assert!(
        list_ids(&srv, org.id, InvitationStatus::Accepted, 0)
            .await
            .0
            .is_empty()
    );

    // Unknown ids, and an id that is a team rather than an organization.
    let missing = expect_err(
        srv.invitations()
            .get_invitation(pb::GetInvitationRequest {
                invitation_id: 999_999,
            })
            .await,
    );
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    let team = crate::common::create_team(&srv, org.id, "eng").await;
    for organization_id in [team.id, 999_999] {
        let status = expect_err(
            srv.invitations()
                .list_invitations(pb::ListInvitationsRequest {
                    organization_id,
                    ..Default::default()
                })
                .await,
        );
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let status = expect_err(
            srv.invitations()
                .create_invitation(invite(organization_id, "x@acme.test"))
                .await,
        );
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
}

async fn revokes_a_pending_invitation_only(engine: Engine) {
    let Some(srv) = start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let pending = create(&srv, org.id, "newcomer@acme.test").await;

    let stale = expect_err(
        srv.invitations()
            .revoke_invitation(pb::RevokeInvitationRequest {
                invitation_id: pending.id,
                etag: Some("v99".into()),
            })
            .await,
    );
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");

    let before = last_sequence(&srv).await;
    let revoked = srv
        .invitations()
        .revoke_invitation(pb::RevokeInvitationRequest {
            invitation_id: pending.id,
            etag: Some(pending.etag.clone()),
        })
        .await
        .expect("revoke")
        .into_inner();
    assert_eq!(revoked.status, InvitationStatus::Revoked as i32);
    assert_ne!(revoked.etag, pending.etag);
    let events = events_after(&srv, before).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, "invitation.revoked");
    assert_eq!(events[0].sequence, revoked.revision);
    assert!(events[0].before.is_some() && events[0].after.is_some());
    assert_eq!(
        get(&srv, pending.id).await.status,
        InvitationStatus::Revoked as i32
    );

    let again = expect_err(
        srv.invitations()
            .revoke_invitation(pb::RevokeInvitationRequest {
                invitation_id: pending.id,
                etag: None,
            })
            .await,
    );
    assert_precondition(&again, "INVITATION_NOT_PENDING");

    // An expired one is not pending either, swept or not.
    let lapsed = create(&srv, org.id, "lapsed@acme.test").await;
    expire_by_hand(&srv, lapsed.id).await;
    let status = expect_err(
        srv.invitations()
            .revoke_invitation(pb::RevokeInvitationRequest {
                invitation_id: lapsed.id,
                etag: None,
            })
            .await,
    );
    assert_precondition(&status, "INVITATION_NOT_PENDING");
    assert_eq!(
        last_sequence(&srv).await,
        lapsed.revision,
        "nothing written"
    );
}

async fn accepting_makes_the_invited_user_a_member(engine: Engine) {
    let Some(srv) = start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let newcomer = create_user(&srv, "newcomer@acme.test").await;
    let stranger = create_user(&srv, "stranger@acme.test").await;
    // Sent to the address in other case: the match ignores it.
    let invitation = srv
        .invitations()
        .create_invitation(pb::CreateInvitationRequest {
            role: MembershipRole::Admin as i32,
            ..invite(org.id, "NEWCOMER@ACME.TEST")
        })
        .await
        .expect("invite")
        .into_inner();

    let mismatch = expect_err(
        srv.invitations()
            .accept_invitation(accept(invitation.id, stranger.id))
            .await,
    );
    assert_precondition(&mismatch, "INVITATION_EMAIL_MISMATCH");

    let before = last_sequence(&srv).await;
    let membership = srv
        .invitations()
        .accept_invitation(accept(invitation.id, newcomer.id))
        .await
        .expect("accept")
        .into_inner();
    assert_eq!(membership.user_id, newcomer.id);
    assert_eq!(membership.team_id, org.id);
    assert_eq!(membership.organization_id, org.id);
    assert!(membership.accepted);
    assert_eq!(membership.role, MembershipRole::Admin as i32);
    assert_eq!(membership.role_id, "admin_role");
    let events = events_after(&srv, before).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["membership.created", "invitation.accepted"]);
    assert_eq!(membership.revision, events[1].sequence);
    assert_eq!(events[0].membership_id, Some(membership.id));
    assert_eq!(events[1].membership_id, Some(membership.id));
    assert_eq!(events[1].user_id, Some(newcomer.id));

    // The membership is there for every reader, and the invitation is spent.
    let read = crate::common::get_membership_of(&srv, org.id, newcomer.id).await;
    assert_eq!(read.id, membership.id);
    assert!(read.accepted);
    assert_eq!(
        get(&srv, invitation.id).await.status,
        InvitationStatus::Accepted as i32
    );
    let twice = expect_err(
        srv.invitations()
            .accept_invitation(accept(invitation.id, newcomer.id))
            .await,
    );
    assert_precondition(&twice, "INVITATION_NOT_PENDING");

    // A user who became a member meanwhile cannot accept.
    let late = create_user(&srv, "late@acme.test").await;
    let late_invite = create(&srv, org.id, "late@acme.test").await;
    add_pending_member(&srv, org.id, late.id, MembershipRole::Member).await;
    let status = expect_err(
        srv.invitations()
            .accept_invitation(accept(late_invite.id, late.id))
            .await,
    );
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    let status = expect_err(
        srv.invitations()
            .accept_invitation(accept(late_invite.id, 999_999))
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

async fn expired_and_revoked_invitations_cannot_be_accepted(engine: Engine) {
    let Some(srv) = start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let ada = create_user(&srv, "ada@acme.test").await;
    let revoked = create(&srv, org.id, "ada@acme.test").await;
    revoke(&srv, revoked.id).await;
    let status = expect_err(
        srv.invitations()
            .accept_invitation(accept(revoked.id, ada.id))
            .await,
    );
    assert_precondition(&status, "INVITATION_NOT_PENDING");

    let lapsed = create(&srv, org.id, "ada@acme.test").await;
    expire_by_hand(&srv, lapsed.id).await;
    // Expired on every read the instant it passed, before any sweep.
    assert_eq!(
        get(&srv, lapsed.id).await.status,
        InvitationStatus::Expired as i32
    );
    assert_eq!(
        list_ids(&srv, org.id, InvitationStatus::Expired, 0).await.0,
        vec![lapsed.id]
    );
    assert!(
        list_ids(&srv, org.id, InvitationStatus::Pending, 0)
            .await
            .0
            .is_empty()
    );
    let sequence = last_sequence(&srv).await;
    let status = expect_err(
        srv.invitations()
            .accept_invitation(accept(lapsed.id, ada.id))
            .await,
    );
    assert_precondition(&status, "INVITATION_NOT_PENDING");
    assert_eq!(last_sequence(&srv).await, sequence, "nothing written");
    let status = expect_err(
        srv.memberships()
            .get_membership(pb::GetMembershipRequest {
                team_id: org.id,
                member: Some(pb::get_membership_request::Member::UserId(ada.id)),
                consistency: Some(pb::Consistency {
                    requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
                }),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    // An expired invitation no longer blocks a new one to the same address.
    let fresh = create(&srv, org.id, "ada@acme.test").await;
    srv.invitations()
        .accept_invitation(accept(fresh.id, ada.id))
        .await
        .expect("accept the fresh invitation");
}

async fn pending_invitations_hold_seats_under_the_limit(engine: Engine) {
    let Some(srv) = start(engine).await else {
        return;
    };
    let org = create_org_with(
        &srv,
        pb::CreateOrganizationRequest {
            slug: "small".into(),
            max_allowed_memberships: 2,
            ..Default::default()
        },
    )
    .await;
    let owner = create_user(&srv, "owner@small.test").await;
    let bob = create_user(&srv, "bob@small.test").await;
    let cy = create_user(&srv, "cy@small.test").await;
    add_member(&srv, org.id, owner.id, MembershipRole::Owner).await;
    let held = create(&srv, org.id, "bob@small.test").await;

    // One membership and one pending invitation fill two seats: no membership, no invitation.
    let status = expect_err(
        srv.memberships()
            .create_membership(new_membership(org.id, cy.id, MembershipRole::Member, false))
            .await,
    );
    assert_precondition(&status, "MEMBERSHIP_LIMIT_REACHED");
    let status = expect_err(
        srv.invitations()
            .create_invitation(invite(org.id, "cy@small.test"))
            .await,
    );
    assert_precondition(&status, "MEMBERSHIP_LIMIT_REACHED");

    // Accepting trades the invitation's seat for the membership: not refused.
    srv.invitations()
        .accept_invitation(accept(held.id, bob.id))
        .await
        .expect("accept in a full organization");
    let status = expect_err(
        srv.invitations()
            .create_invitation(invite(org.id, "cy@small.test"))
            .await,
    );
    assert_precondition(&status, "MEMBERSHIP_LIMIT_REACHED");

    // The other direction: memberships fill the seats an invitation would take, and a revoked
    // or expired invitation gives its seat back.
    let roomy = create_org_with(
        &srv,
        pb::CreateOrganizationRequest {
            slug: "roomy".into(),
            max_allowed_memberships: 2,
            ..Default::default()
        },
    )
    .await;
    let first = create(&srv, roomy.id, "first@roomy.test").await;
    let second = create(&srv, roomy.id, "second@roomy.test").await;
    let status = expect_err(
        srv.memberships()
            .create_membership(new_membership(
                roomy.id,
                cy.id,
                MembershipRole::Member,
                false,
            ))
            .await,
    );
    assert_precondition(&status, "MEMBERSHIP_LIMIT_REACHED");
    revoke(&srv, first.id).await;
    expire_by_hand(&srv, second.id).await;
    add_member(&srv, roomy.id, cy.id, MembershipRole::Member).await;
    add_member(&srv, roomy.id, owner.id, MembershipRole::Owner).await;
    let status = expect_err(
        srv.invitations()
            .create_invitation(invite(roomy.id, "third@roomy.test"))
            .await,
    );
    assert_precondition(&status, "MEMBERSHIP_LIMIT_REACHED");
}

async fn one_pending_invitation_per_email_and_none_for_members(engine: Engine) {
    let Some(srv) = start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let first = create(&srv, org.id, "ada@acme.test").await;
    let status = expect_err(
        srv.invitations()
            .create_invitation(invite(org.id, "ADA@acme.test"))
            .await,
    );
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    // Another organization may invite the same address.
    let other = create_org(&srv, "globex").await;
    create(&srv, other.id, "ada@acme.test").await;
    // Once revoked, the address may be invited again.
    revoke(&srv, first.id).await;
    create(&srv, org.id, "ada@acme.test").await;

    // Members, pending ones included, are not invited.
    let bob = create_user(&srv, "bob@acme.test").await;
    let cy = create_user(&srv, "cy@acme.test").await;
    add_member(&srv, org.id, bob.id, MembershipRole::Member).await;
    add_pending_member(&srv, org.id, cy.id, MembershipRole::Member).await;
    for email in ["bob@acme.test", "Cy@Acme.test"] {
        let status = expect_err(
            srv.invitations()
                .create_invitation(invite(org.id, email))
                .await,
        );
        assert_eq!(status.code(), Code::AlreadyExists, "{email}: {status:?}");
    }
    // A member of one organization may be invited to another.
    create(&srv, other.id, "bob@acme.test").await;

    // Two invitations to one address at once: the organization lock lets one through.
    let (mut one, mut two) = (srv.invitations(), srv.invitations());
    let (first, second) = tokio::join!(
        one.create_invitation(invite(org.id, "dee@acme.test")),
        two.create_invitation(invite(org.id, "DEE@acme.test")),
    );
    let codes = [&first, &second].map(|r| r.as_ref().map(|_| ()).map_err(|s| s.code()));
    assert!(
        codes.contains(&Ok(())) && codes.contains(&Err(Code::AlreadyExists)),
        "{first:?} {second:?}"
    );
    let (pending, _) = list_ids(&srv, org.id, InvitationStatus::Pending, 0).await;
    let dee: Vec<i64> = [first, second]
        .into_iter()
        .filter_map(|r| r.ok().map(|i| i.into_inner().id))
        .collect();
    assert!(pending.contains(&dee[0]));
}

async fn bad_input_names_each_field(engine: Engine) {
    let Some(srv) = start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let status = expect_err(
        srv.invitations()
            .create_invitation(pb::CreateInvitationRequest {
                organization_id: 0,
                email: "not-an-email".into(),
                role: 42,
                role_id: "   ".into(),
                expires_at: Some(prost_types::Timestamp {
                    seconds: (Utc::now() - Duration::minutes(1)).timestamp(),
                    nanos: 0,
                }),
                request_id: "bad\nid".into(),
            })
            .await,
    );
    for field in [
        "organization_id",
        "email",
        "role",
        "role_id",
        "expires_at",
        "request_id",
    ] {
        assert_invalid(&status, field);
    }
    let status = expect_err(
        srv.invitations()
            .create_invitation(pb::CreateInvitationRequest {
                email: String::new(),
                expires_at: Some(prost_types::Timestamp {
                    seconds: Utc::now().timestamp() + 60,
                    nanos: -1,
                }),
                ..invite(org.id, "")
            })
            .await,
    );
    assert_invalid(&status, "email");
    assert_invalid(&status, "expires_at");
    // A system role that disagrees with the level.
    let status = expect_err(
        srv.invitations()
            .create_invitation(pb::CreateInvitationRequest {
                role: MembershipRole::Owner as i32,
                role_id: "admin".into(),
                ..invite(org.id, "ada@acme.test")
            })
            .await,
    );
    assert_invalid(&status, "role");
    let status = expect_err(
        srv.invitations()
            .create_invitation(pb::CreateInvitationRequest {
                role_id: "no-such-role".into(),
                ..invite(org.id, "ada@acme.test")
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(reason(&status).as_deref(), Some("ROLE_NOT_FOUND"));

    let status = expect_err(
        srv.invitations()
            .get_invitation(pb::GetInvitationRequest { invitation_id: -1 })
            .await,
    );
    assert_invalid(&status, "invitation_id");
    let status = expect_err(
        srv.invitations()
            .list_invitations(pb::ListInvitationsRequest {
                organization_id: 0,
                status: 42,
                page_size: -1,
                page_token: "nonsense".into(),
            })
            .await,
    );
    for field in ["organization_id", "status", "page_size", "page_token"] {
        assert_invalid(&status, field);
    }
    let status = expect_err(
        srv.invitations()
            .revoke_invitation(pb::RevokeInvitationRequest {
                invitation_id: 0,
                etag: None,
            })
            .await,
    );
    assert_invalid(&status, "invitation_id");
    let status = expect_err(srv.invitations().accept_invitation(accept(0, 0)).await);
    assert_invalid(&status, "invitation_id");
    assert_invalid(&status, "user_id");
    assert_eq!(last_sequence(&srv).await, org.revision, "nothing written");
}

async fn invitations_check_the_actor(engine: Engine) {
    let Some(srv) = start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let owner = create_user(&srv, "owner@acme.test").await;
    let admin = create_user(&srv, "admin@acme.test").await;
    let member = create_user(&srv, "member@acme.test").await;
    let inviter = create_user(&srv, "inviter@acme.test").await;
    let newcomer = create_user(&srv, "newcomer@acme.test").await;
    add_member(&srv, org.id, owner.id, MembershipRole::Owner).await;
    add_member(&srv, org.id, admin.id, MembershipRole::Admin).await;
    add_member(&srv, org.id, member.id, MembershipRole::Member).await;
    let invite_only = create_role(&srv, org.id, "Recruiter", &["organization.invite"]).await;
    add_member(&srv, org.id, inviter.id, &invite_only.id).await;
    let sequence = last_sequence(&srv).await;

    // A member lacks organization.invite.
    let status = expect_err(
        invitations_as(&srv, member.id)
            .create_invitation(invite(org.id, "newcomer@acme.test"))
            .await,
    );
    assert_rule(&status, "permission", "organization.invite");
    // OWNER comes from an OWNER only.
    let status = expect_err(
        invitations_as(&srv, admin.id)
            .create_invitation(pb::CreateInvitationRequest {
                role: MembershipRole::Owner as i32,
                ..invite(org.id, "newcomer@acme.test")
            })
            .await,
    );
    assert_rule(&status, "rule", "OWNER_ONLY");
    // Nobody invites with a role beyond their own permissions.
    let status = expect_err(
        invitations_as(&srv, inviter.id)
            .create_invitation(pb::CreateInvitationRequest {
                role_id: "admin".into(),
                ..invite(org.id, "newcomer@acme.test")
            })
            .await,
    );
    assert_rule(&status, "rule", "NO_ESCALATION");
    assert_eq!(last_sequence(&srv).await, sequence, "nothing written");

    // The owner invites as OWNER; the admin and the recruiter within their own permissions.
    let as_owner = invitations_as(&srv, owner.id)
        .create_invitation(pb::CreateInvitationRequest {
            role: MembershipRole::Owner as i32,
            ..invite(org.id, "newcomer@acme.test")
        })
        .await
        .expect("the owner invites an owner")
        .into_inner();
    assert_eq!(as_owner.inviter_user_id, owner.id);
    let recruited = invitations_as(&srv, inviter.id)
        .create_invitation(pb::CreateInvitationRequest {
            role_id: invite_only.id.clone(),
            ..invite(org.id, "recruit@acme.test")
        })
        .await
        .expect("the recruiter invites with their own role")
        .into_inner();
    assert_eq!(recruited.inviter_user_id, inviter.id);
    let created_event = events_after(&srv, sequence)
        .await
        .into_iter()
        .find(|e| e.kind == "invitation.created")
        .expect("invitation.created");
    assert_eq!(created_event.actor_user_id, Some(owner.id));

    // Revoking needs organization.invite.
    let sequence = last_sequence(&srv).await;
    let status = expect_err(
        invitations_as(&srv, member.id)
            .revoke_invitation(pb::RevokeInvitationRequest {
                invitation_id: recruited.id,
                etag: None,
            })
            .await,
    );
    assert_rule(&status, "permission", "organization.invite");
    assert_eq!(last_sequence(&srv).await, sequence, "nothing written");
    assert_eq!(
        get(&srv, recruited.id).await.status,
        InvitationStatus::Pending as i32
    );
    invitations_as(&srv, admin.id)
        .revoke_invitation(pb::RevokeInvitationRequest {
            invitation_id: recruited.id,
            etag: None,
        })
        .await
        .expect("the admin revokes");

    // Only the invited user accepts, for themselves.
    let sequence = last_sequence(&srv).await;
    let status = expect_err(
        invitations_as(&srv, admin.id)
            .accept_invitation(accept(as_owner.id, newcomer.id))
            .await,
    );
    assert_rule(&status, "rule", "SELF_ONLY");
    let status = expect_err(
        invitations_as(&srv, member.id)
            .accept_invitation(accept(as_owner.id, newcomer.id))
            .await,
    );
    assert_rule(&status, "rule", "SELF_ONLY");
    assert_eq!(last_sequence(&srv).await, sequence, "nothing written");
    assert_eq!(
        get(&srv, as_owner.id).await.status,
        InvitationStatus::Pending as i32
    );
    let membership = invitations_as(&srv, newcomer.id)
        .accept_invitation(accept(as_owner.id, newcomer.id))
        .await
        .expect("the invited user accepts")
        .into_inner();
    assert_eq!(membership.role, MembershipRole::Owner as i32);
    assert!(membership.accepted);
}

async fn a_bound_key_sees_its_organization_invitations_only(engine: Engine) {
    let Some(srv) = start(engine).await else {
        return;
    };
    let a = create_org(&srv, "alpha").await;
    let b = create_org(&srv, "beta").await;
    let ada = create_user(&srv, "ada@beta.test").await;
    let mine = create(&srv, a.id, "one@alpha.test").await;
    let theirs = create(&srv, b.id, "ada@beta.test").await;
    let bound = srv
        .client(ApiKeyServiceClient::new)
        .create_api_key(pb::CreateApiKeyRequest {
            name: "alpha".into(),
            scopes: vec!["memberships.read".into(), "memberships.write".into()],
            organization_id: Some(a.id),
            ..Default::default()
        })
        .await
        .expect("a key bound to alpha")
        .into_inner()
        .secret;
    let mut k = srv.client_with_key(&bound, InvitationServiceClient::new);

    // Its own organization's invitations, as the admin key sees them.
    let got = k
        .get_invitation(pb::GetInvitationRequest {
            invitation_id: mine.id,
        })
        .await
        .expect("get its own")
        .into_inner();
    assert_eq!(got.id, mine.id);
    let listed = k
        .list_invitations(pb::ListInvitationsRequest {
            organization_id: a.id,
            ..Default::default()
        })
        .await
        .expect("list its own")
        .into_inner();
    assert_eq!(
        listed.invitations.iter().map(|i| i.id).collect::<Vec<_>>(),
        [mine.id]
    );
    k.create_invitation(invite(a.id, "two@alpha.test"))
        .await
        .expect("invite to its own");

    // The other organization's are absent: NOT_FOUND, as for an unknown id.
    let sequence = last_sequence(&srv).await;
    let absent = [
        expect_err(
            k.get_invitation(pb::GetInvitationRequest {
                invitation_id: theirs.id,
            })
            .await,
        ),
        expect_err(
            k.list_invitations(pb::ListInvitationsRequest {
                organization_id: b.id,
                ..Default::default()
            })
            .await,
        ),
        expect_err(k.create_invitation(invite(b.id, "x@beta.test")).await),
        expect_err(
            k.revoke_invitation(pb::RevokeInvitationRequest {
                invitation_id: theirs.id,
                etag: None,
            })
            .await,
        ),
        expect_err(k.accept_invitation(accept(theirs.id, ada.id)).await),
    ];
    for status in absent {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    let unknown = expect_err(
        k.get_invitation(pb::GetInvitationRequest {
            invitation_id: 999_999,
        })
        .await,
    );
    let other = expect_err(
        k.get_invitation(pb::GetInvitationRequest {
            invitation_id: theirs.id,
        })
        .await,
    );
    assert_eq!(
        other.message().replace(&theirs.id.to_string(), "#"),
        unknown.message().replace("999999", "#")
    );
    assert_eq!(last_sequence(&srv).await, sequence, "nothing written");
    assert_eq!(
        get(&srv, theirs.id).await.status,
        InvitationStatus::Pending as i32
    );

    // It accepts for the invited user, who is not a member yet; another organization's user
    // with another address is as absent to it as an unknown id.
    let outsider = create_user(&srv, "outsider@beta.test").await;
    crate::common::add_member(&srv, b.id, outsider.id, MembershipRole::Member).await;
    for user_id in [outsider.id, 999_999] {
        let status = expect_err(k.accept_invitation(accept(mine.id, user_id)).await);
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(status.message(), format!("user {user_id} not found"));
    }
    let status = expect_err(
        srv.invitations()
            .accept_invitation(accept(mine.id, outsider.id))
            .await,
    );
    assert_precondition(&status, "INVITATION_EMAIL_MISMATCH");
    let one = create_user(&srv, "one@alpha.test").await;
    let joined = k
        .accept_invitation(accept(mine.id, one.id))
        .await
        .expect("the bound key accepts for the invited user")
        .into_inner();
    assert_eq!(joined.organization_id, a.id);

    // A read-only key may read but not write.
    let reader = crate::common::scoped_key(&srv, &["memberships.read"]).await;
    let mut r = srv.client_with_key(&reader, InvitationServiceClient::new);
    r.get_invitation(pb::GetInvitationRequest {
        invitation_id: mine.id,
    })
    .await
    .expect("read with memberships.read");
    let status = expect_err(r.create_invitation(invite(a.id, "three@alpha.test")).await);
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
}

async fn the_sweep_expires_each_invitation_exactly_once(engine: Engine) {
    let Some(srv) = start(engine).await else {
        return;
    };
    // Started first: a server sweeps once as it starts.
    let second = srv.second_instance().await;
    let org = create_org(&srv, "acme").await;
    let mut lapsed = Vec::new();
    for n in 0..4 {
        let i = create(&srv, org.id, &format!("lapsed{n}@acme.test")).await;
        expire_by_hand(&srv, i.id).await;
        lapsed.push(i.id);
    }
    let open = create(&srv, org.id, "open@acme.test").await;
    let revoked = create(&srv, org.id, "revoked@acme.test").await;
    revoke(&srv, revoked.id).await;
    expire_by_hand(&srv, revoked.id).await;
    let before = last_sequence(&srv).await;

    // Two replicas sweep at once.
    let now = Utc::now();
    let (one, two) = tokio::join!(
        srv.store().sweep_expired_invitations(now),
        second.store().sweep_expired_invitations(now),
    );
    let (one, two) = (one.expect("sweep one"), two.expect("sweep two"));
    assert_eq!(one + two, lapsed.len() as u64, "{one} + {two}");

    let events = events_after(&srv, before).await;
    let mut expired: Vec<i64> = events
        .iter()
        .map(|e| {
            assert_eq!(e.kind, "invitation.expired", "{e:?}");
            assert_eq!(e.organization_id, Some(org.id));
            match e.after.as_ref().and_then(|a| a.fields["id"].kind.clone()) {
                Some(prost_types::value::Kind::NumberValue(id)) => id as i64,
                other => panic!("after.id of {e:?}: {other:?}"),
            }
        })
        .collect();
    expired.sort_unstable();
    assert_eq!(expired, lapsed, "one event per invitation");
    for id in &lapsed {
        let i = get(&srv, *id).await;
        assert_eq!(i.status, InvitationStatus::Expired as i32);
        assert_eq!(i.etag, "v2", "marked once");
    }
    assert_eq!(
        get(&srv, open.id).await.status,
        InvitationStatus::Pending as i32
    );
    assert_eq!(
        get(&srv, revoked.id).await.status,
        InvitationStatus::Revoked as i32
    );

    // Nothing is left to sweep.
    assert_eq!(
        srv.store()
            .sweep_expired_invitations(Utc::now())
            .await
            .unwrap(),
        0
    );
    assert_eq!(events_after(&srv, before).await.len(), lapsed.len());
    let kinds: Vec<String> = all_events(&srv).await.into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "invitation.expired").count(),
        lapsed.len()
    );
    second.stop().await;
}

/// The server's own sweeper (every 100 ms here) marks an invitation past its expiry EXPIRED with
/// one event, without anyone calling it.
async fn the_sweeper_marks_expired_invitations(engine: Engine) {
    let Some(srv) = TestServer::start_with(engine, |cfg| {
        cfg.sweep_interval = Period(std::time::Duration::from_millis(100))
    })
    .await
    else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let lapsing = create(&srv, org.id, "lapsing@acme.test").await;
    let open = create(&srv, org.id, "open@acme.test").await;
    expire_by_hand(&srv, lapsing.id).await;
    let expired_events = || async {
        all_events(&srv)
            .await
            .into_iter()
            .filter(|e| e.kind == "invitation.expired")
            .count()
    };
    // Bounded by the test's own deadline; the sweep runs every 100 ms.
    while expired_events().await == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        get(&srv, lapsing.id).await.etag,
        "v2",
        "marked, not just read as expired"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(expired_events().await, 1, "once");
    assert_eq!(
        get(&srv, open.id).await.status,
        InvitationStatus::Pending as i32
    );
    srv.stop().await;
}
