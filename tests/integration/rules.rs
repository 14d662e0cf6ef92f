//! The foundation's rules end to end through the real server, on every engine: the last owner,
//! the membership limit, sub-team membership, cascades, auto-accept, addressing and cross-parent
//! NOT_FOUND, etags, role references, input validation, duplicates, pagination, events and API
//! key scopes.

// Request literals end in `..Default::default()` even when they name every field today, so
// that fields the contract adds later (consistency, …) do not break these tests.
#![allow(clippy::needless_update)]

use std::collections::BTreeSet;

use crate::common::{
    Engine, TestServer, add_member, add_pending_member, all_events, create_org, create_org_with,
    create_team, create_user, event_count, events_after, expect_err, field_violations,
    get_membership, last_sequence, list_events, pb, reason, scoped_key, set, to_struct,
};
use pb::directory_service_client::DirectoryServiceClient;
use pb::membership_service_client::MembershipServiceClient;
use pb::{AutoRecordCalls, MembershipRole};
use serde_json::json;
use tonic::{Code, Status};

engine_tests!(
    last_owner_cannot_be_demoted_unaccepted_or_deleted,
    delete_user_of_the_last_owner_is_refused,
    membership_limit_counts_pending_memberships,
    sub_team_membership_needs_an_organization_membership,
    deleting_an_organization_membership_deletes_sub_team_memberships,
    auto_accept_email_domain,
    addressing_through_another_parent_is_not_found,
    membership_addressing_forms_agree,
    stale_etags_are_aborted,
    role_references_resolve,
    role_references_are_exact,
    bad_input_names_every_bad_field,
    odd_input_is_never_internal,
    duplicates_already_exist,
    pagination_is_keyset_and_stable,
    every_write_records_one_event,
    api_key_scopes_are_enforced,
);

// ---------------------------------------------------------------------------------------------
// Helpers

type UMember = pb::update_membership_request::Member;
type GMember = pb::get_membership_request::Member;
type DMember = pb::delete_membership_request::Member;

async fn membership_missing(srv: &TestServer, id: i64) -> bool {
    match srv
        .memberships()
        .get_membership(pb::GetMembershipRequest {
            member: Some(GMember::MembershipId(id)),
            ..Default::default()
        })
        .await
    {
        Ok(_) => false,
        Err(s) if s.code() == Code::NotFound => true,
        Err(s) => panic!("get membership {id}: {s:?}"),
    }
}

/// An update of the membership with this id; fill the rest with `..update(id)`.
fn update(id: i64) -> pb::UpdateMembershipRequest {
    pb::UpdateMembershipRequest {
        member: Some(UMember::MembershipId(id)),
        ..Default::default()
    }
}

fn delete(id: i64) -> pb::DeleteMembershipRequest {
    pb::DeleteMembershipRequest {
        member: Some(DMember::MembershipId(id)),
        ..Default::default()
    }
}

#[track_caller]
fn assert_code(status: &Status, code: Code, want_reason: Option<&str>, what: &str) {
    assert_eq!(status.code(), code, "{what}: {status:?}");
    if let Some(want) = want_reason {
        assert_eq!(
            reason(status).as_deref(),
            Some(want),
            "{what}: reason of {status:?}"
        );
    }
}

fn violation_set(status: &Status) -> BTreeSet<String> {
    field_violations(status).into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// The last-owner rule

async fn last_owner_cannot_be_demoted_unaccepted_or_deleted(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let ada = create_user(&srv, "ada@acme.test").await;
    let pat = create_user(&srv, "pat@acme.test").await;
    let owner = add_member(&srv, org.id, ada.id, MembershipRole::Owner).await;
    // A pending OWNER is not a second owner.
    let pending = add_pending_member(&srv, org.id, pat.id, MembershipRole::Owner).await;
    assert!(!pending.accepted);

    let attempts: Vec<(&str, pb::UpdateMembershipRequest)> = vec![
        (
            "role ADMIN",
            pb::UpdateMembershipRequest {
                role: Some(MembershipRole::Admin as i32),
                ..update(owner.id)
            },
        ),
        (
            "role_id admin",
            pb::UpdateMembershipRequest {
                role_id: Some("admin".into()),
                ..update(owner.id)
            },
        ),
        (
            "role MEMBER addressed by (team_id, user_id)",
            pb::UpdateMembershipRequest {
                team_id: org.id,
                member: Some(UMember::UserId(ada.id)),
                role: Some(MembershipRole::Member as i32),
                ..Default::default()
            },
        ),
        (
            "accepted = false",
            pb::UpdateMembershipRequest {
                accepted: Some(false),
                ..update(owner.id)
            },
        ),
        (
            "accepted = false with metadata",
            pb::UpdateMembershipRequest {
                accepted: Some(false),
                public_metadata: Some(to_struct(json!({"x": 1}))),
                ..update(owner.id)
            },
        ),
    ];
    for (what, request) in attempts {
        let events_before = event_count(&srv).await;
        let status = expect_err(srv.memberships().update_membership(request).await);
        assert_code(&status, Code::FailedPrecondition, Some("LAST_OWNER"), what);
        let now = get_membership(&srv, owner.id).await;
        assert_eq!(now.etag, owner.etag, "{what}: membership unchanged");
        assert_eq!(now.role(), MembershipRole::Owner, "{what}");
        assert_eq!(now.role_id, "owner_role", "{what}");
        assert!(now.accepted, "{what}");
        assert_eq!(now.public_metadata, owner.public_metadata, "{what}");
        assert_eq!(event_count(&srv).await, events_before, "{what}: no event");
    }

    for (what, request) in [
        ("delete by id", delete(owner.id)),
        (
            "delete by (team_id, user_id)",
            pb::DeleteMembershipRequest {
                team_id: org.id,
                member: Some(DMember::UserId(ada.id)),
                ..Default::default()
            },
        ),
    ] {
        let events_before = event_count(&srv).await;
        let status = expect_err(srv.memberships().delete_membership(request).await);
        assert_code(&status, Code::FailedPrecondition, Some("LAST_OWNER"), what);
        assert_eq!(get_membership(&srv, owner.id).await.etag, owner.etag);
        assert_eq!(event_count(&srv).await, events_before, "{what}: no event");
    }

    // Accepting the pending owner makes a second accepted owner: now the demotion succeeds.
    let accepted = srv
        .memberships()
        .update_membership(pb::UpdateMembershipRequest {
            accepted: Some(true),
            ..update(pending.id)
        })
        .await
        .expect("accept the pending owner")
        .into_inner();
    assert!(accepted.accepted);
    let events_before = event_count(&srv).await;
    let demoted = srv
        .memberships()
        .update_membership(pb::UpdateMembershipRequest {
            role: Some(MembershipRole::Admin as i32),
            ..update(owner.id)
        })
        .await
        .expect("demote one of two owners")
        .into_inner();
    assert_eq!(demoted.role(), MembershipRole::Admin);
    assert_eq!(demoted.role_id, "admin_role");
    assert_ne!(demoted.etag, owner.etag);
    assert_eq!(event_count(&srv).await, events_before + 1);

    // The remaining owner is now the last one.
    for request in [
        pb::UpdateMembershipRequest {
            accepted: Some(false),
            ..update(pending.id)
        },
        pb::UpdateMembershipRequest {
            role_id: Some("member_role".into()),
            ..update(pending.id)
        },
    ] {
        let status = expect_err(srv.memberships().update_membership(request).await);
        assert_code(
            &status,
            Code::FailedPrecondition,
            Some("LAST_OWNER"),
            "the new last owner",
        );
    }
    // A non-owner can be deleted freely; an OWNER keeping its role is not a demotion.
    srv.memberships()
        .update_membership(pb::UpdateMembershipRequest {
            role: Some(MembershipRole::Owner as i32),
            disable_impersonation: Some(true),
            ..update(pending.id)
        })
        .await
        .expect("an owner update that keeps OWNER");
    srv.memberships()
        .delete_membership(delete(owner.id))
        .await
        .expect("delete the ADMIN");
    srv.stop().await;
}

async fn delete_user_of_the_last_owner_is_refused(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let acme = create_org(&srv, "acme").await;
    let globex = create_org(&srv, "globex").await;
    let ada = create_user(&srv, "ada@acme.test").await;
    let bob = create_user(&srv, "bob@acme.test").await;
    let ada_acme = add_member(&srv, acme.id, ada.id, MembershipRole::Owner).await;
    // In globex ada is one of two owners; in acme she is the only one.
    let ada_globex = add_member(&srv, globex.id, ada.id, MembershipRole::Owner).await;
    add_member(&srv, globex.id, bob.id, MembershipRole::Owner).await;
    add_member(&srv, acme.id, bob.id, MembershipRole::Admin).await;

    let events_before = event_count(&srv).await;
    let status = expect_err(
        srv.directory()
            .delete_user(pb::DeleteUserRequest {
                user_id: ada.id,
                etag: None,
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::FailedPrecondition,
        Some("LAST_OWNER"),
        "DeleteUser",
    );
    let still = srv
        .directory()
        .get_user(pb::GetUserRequest {
            user_id: ada.id,
            ..Default::default()
        })
        .await
        .expect("the user is still there")
        .into_inner();
    assert_eq!(still.etag, ada.etag);
    assert_eq!(get_membership(&srv, ada_acme.id).await.etag, ada_acme.etag);
    assert_eq!(
        get_membership(&srv, ada_globex.id).await.etag,
        ada_globex.etag,
        "nothing of the refused delete was kept"
    );
    assert_eq!(event_count(&srv).await, events_before, "no event");

    // With a second owner in acme the user can go, with every membership of hers.
    srv.memberships()
        .update_membership(pb::UpdateMembershipRequest {
            team_id: acme.id,
            member: Some(UMember::UserId(bob.id)),
            role: Some(MembershipRole::Owner as i32),
            ..Default::default()
        })
        .await
        .expect("promote bob");
    let seq = last_sequence(&srv).await;
    srv.directory()
        .delete_user(pb::DeleteUserRequest {
            user_id: ada.id,
            etag: None,
            ..Default::default()
        })
        .await
        .expect("delete ada");
    let status = expect_err(
        srv.directory()
            .get_user(pb::GetUserRequest {
                user_id: ada.id,
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::NotFound, None, "deleted user");
    assert!(membership_missing(&srv, ada_acme.id).await);
    assert!(membership_missing(&srv, ada_globex.id).await);
    let kinds: Vec<String> = events_after(&srv, seq)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        ["membership.deleted", "membership.deleted", "user.deleted"]
    );
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Membership limit, sub-teams, cascade, auto-accept

async fn membership_limit_counts_pending_memberships(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
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
    assert_eq!(org.max_allowed_memberships, 2);
    let users = [
        create_user(&srv, "u1@small.test").await,
        create_user(&srv, "u2@small.test").await,
        create_user(&srv, "u3@small.test").await,
        create_user(&srv, "u4@small.test").await,
    ];
    add_member(&srv, org.id, users[0].id, MembershipRole::Owner).await;
    // Pending: counts all the same.
    add_pending_member(&srv, org.id, users[1].id, MembershipRole::Member).await;

    let third = || pb::CreateMembershipRequest {
        team_id: org.id,
        user_id: users[2].id,
        role: MembershipRole::Member as i32,
        ..Default::default()
    };
    let events_before = event_count(&srv).await;
    let status = expect_err(srv.memberships().create_membership(third()).await);
    assert_code(
        &status,
        Code::FailedPrecondition,
        Some("MEMBERSHIP_LIMIT_REACHED"),
        "third membership",
    );
    assert_eq!(event_count(&srv).await, events_before, "no event");
    let listed = srv
        .memberships()
        .list_memberships(pb::ListMembershipsRequest {
            team_id: org.id,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.memberships.len(), 2);

    let raised = srv
        .directory()
        .update_organization(pb::UpdateOrganizationRequest {
            organization_id: org.id,
            max_allowed_memberships: Some(3),
            ..Default::default()
        })
        .await
        .expect("raise the limit")
        .into_inner();
    assert_eq!(raised.max_allowed_memberships, 3);
    assert_eq!(raised.members_count, 2);
    srv.memberships()
        .create_membership(third())
        .await
        .expect("third membership under the raised limit");

    let fourth = || pb::CreateMembershipRequest {
        team_id: org.id,
        user_id: users[3].id,
        ..Default::default()
    };
    let status = expect_err(srv.memberships().create_membership(fourth()).await);
    assert_code(
        &status,
        Code::FailedPrecondition,
        Some("MEMBERSHIP_LIMIT_REACHED"),
        "fourth membership",
    );
    // 0 = unlimited.
    srv.directory()
        .update_organization(pb::UpdateOrganizationRequest {
            organization_id: org.id,
            max_allowed_memberships: Some(0),
            ..Default::default()
        })
        .await
        .expect("remove the limit");
    srv.memberships()
        .create_membership(fourth())
        .await
        .expect("fourth membership without a limit");
    srv.stop().await;
}

async fn sub_team_membership_needs_an_organization_membership(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let acme = create_org(&srv, "acme").await;
    let globex = create_org(&srv, "globex").await;
    let team = create_team(&srv, acme.id, "eng").await;
    let ada = create_user(&srv, "ada@acme.test").await;
    // A membership of another organization does not count.
    add_member(&srv, globex.id, ada.id, MembershipRole::Owner).await;

    let request = || pb::CreateMembershipRequest {
        team_id: team.id,
        user_id: ada.id,
        role: MembershipRole::Member as i32,
        accepted: true,
        ..Default::default()
    };
    let events_before = event_count(&srv).await;
    let status = expect_err(srv.memberships().create_membership(request()).await);
    assert_code(
        &status,
        Code::FailedPrecondition,
        Some("NOT_AN_ORGANIZATION_MEMBER"),
        "sub-team membership without an org membership",
    );
    assert_eq!(event_count(&srv).await, events_before, "no event");

    add_member(&srv, acme.id, ada.id, MembershipRole::Member).await;
    let m = srv
        .memberships()
        .create_membership(request())
        .await
        .expect("sub-team membership with an org membership")
        .into_inner();
    assert_eq!(m.team_id, team.id);
    assert_eq!(m.organization_id, acme.id);
    assert_eq!(m.role(), MembershipRole::Member);
    srv.stop().await;
}

async fn deleting_an_organization_membership_deletes_sub_team_memberships(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let other_org = create_org(&srv, "globex").await;
    let eng = create_team(&srv, org.id, "eng").await;
    let ops = create_team(&srv, org.id, "ops").await;
    let boss = create_user(&srv, "boss@acme.test").await;
    let ada = create_user(&srv, "ada@acme.test").await;
    add_member(&srv, org.id, boss.id, MembershipRole::Owner).await;
    let boss_eng = add_member(&srv, eng.id, boss.id, MembershipRole::Owner).await;
    let ada_org = add_member(&srv, org.id, ada.id, MembershipRole::Member).await;
    let ada_eng = add_member(&srv, eng.id, ada.id, MembershipRole::Admin).await;
    let ada_ops = add_pending_member(&srv, ops.id, ada.id, MembershipRole::Member).await;
    add_member(&srv, other_org.id, ada.id, MembershipRole::Owner).await;
    let boss_other = add_member(&srv, other_org.id, boss.id, MembershipRole::Member).await;

    let seq = last_sequence(&srv).await;
    srv.memberships()
        .delete_membership(delete(ada_org.id))
        .await
        .expect("delete the org membership");

    let left = srv
        .memberships()
        .list_user_memberships(pb::ListUserMembershipsRequest {
            user_id: ada.id,
            ..Default::default()
        })
        .await
        .expect("list user memberships")
        .into_inner();
    assert!(
        left.memberships
            .iter()
            .all(|m| m.organization_id == other_org.id),
        "no membership in the organization is left: {:?}",
        left.memberships
    );
    assert_eq!(left.memberships.len(), 1, "the other organization's stays");
    for id in [ada_org.id, ada_eng.id, ada_ops.id] {
        assert!(membership_missing(&srv, id).await, "membership {id} gone");
    }
    assert_eq!(get_membership(&srv, boss_eng.id).await.etag, boss_eng.etag);
    assert_eq!(
        get_membership(&srv, boss_other.id).await.etag,
        boss_other.etag
    );

    let events = events_after(&srv, seq).await;
    assert!(
        events.iter().all(|e| e.kind == "membership.deleted"),
        "{events:?}"
    );
    let deleted: BTreeSet<i64> = events.iter().filter_map(|e| e.membership_id).collect();
    assert_eq!(
        deleted,
        BTreeSet::from([ada_org.id, ada_eng.id, ada_ops.id])
    );
    assert_eq!(events.len(), 3, "one event per deleted membership");
    for e in &events {
        assert!(e.before.is_some() && e.after.is_none(), "{e:?}");
        assert_eq!(e.user_id, Some(ada.id));
        assert_eq!(e.organization_id, Some(org.id));
    }

    // The last-owner rule holds in each sub-team: the last OWNER of `eng` keeps their org
    // membership as long as they own `eng`.
    add_member(&srv, org.id, ada.id, MembershipRole::Owner).await;
    let boss_org = srv
        .memberships()
        .get_membership(pb::GetMembershipRequest {
            team_id: org.id,
            member: Some(GMember::UserId(boss.id)),
            ..Default::default()
        })
        .await
        .expect("boss org membership")
        .into_inner();
    let events_before = event_count(&srv).await;
    let status = expect_err(
        srv.memberships()
            .delete_membership(delete(boss_org.id))
            .await,
    );
    assert_code(
        &status,
        Code::FailedPrecondition,
        Some("LAST_OWNER"),
        "org membership of a sub-team's last owner",
    );
    assert_eq!(event_count(&srv).await, events_before);
    assert_eq!(get_membership(&srv, boss_eng.id).await.etag, boss_eng.etag);
    assert_eq!(get_membership(&srv, boss_org.id).await.etag, boss_org.etag);
    srv.stop().await;
}

async fn auto_accept_email_domain(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org_with(
        &srv,
        pb::CreateOrganizationRequest {
            slug: "acme".into(),
            auto_accept_email_domain: "acme.com".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(org.auto_accept_email_domain, "acme.com");
    let team = create_team(&srv, org.id, "eng").await;
    let ada = create_user(&srv, "ada@ACME.com").await;
    let bob = create_user(&srv, "bob@other.com").await;
    let eve = create_user(&srv, "eve@notacme.com").await;

    let ada_m = add_pending_member(&srv, org.id, ada.id, MembershipRole::Member).await;
    assert!(ada_m.accepted, "ada@ACME.com is auto-accepted");
    let bob_m = add_pending_member(&srv, org.id, bob.id, MembershipRole::Member).await;
    assert!(!bob_m.accepted, "bob@other.com stays pending");
    let eve_m = add_pending_member(&srv, org.id, eve.id, MembershipRole::Member).await;
    assert!(!eve_m.accepted, "notacme.com is not acme.com");
    let bob_accepted = add_member(&srv, team.id, bob.id, MembershipRole::Member).await;
    assert!(bob_accepted.accepted, "asking for accepted still works");
    assert!(get_membership(&srv, ada_m.id).await.accepted);

    // Turning auto-accept off (present and empty).
    let updated = srv
        .directory()
        .update_organization(pb::UpdateOrganizationRequest {
            organization_id: org.id,
            auto_accept_email_domain: Some(String::new()),
            ..Default::default()
        })
        .await
        .expect("turn auto-accept off")
        .into_inner();
    assert_eq!(updated.auto_accept_email_domain, "");
    let cyd = create_user(&srv, "cyd@acme.com").await;
    let cyd_m = add_pending_member(&srv, org.id, cyd.id, MembershipRole::Member).await;
    assert!(!cyd_m.accepted, "auto-accept is off");
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Addressing

async fn addressing_through_another_parent_is_not_found(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let acme = create_org(&srv, "acme").await;
    let globex = create_org(&srv, "globex").await;
    let eng = create_team(&srv, acme.id, "eng").await;
    let ops = create_team(&srv, acme.id, "ops").await;
    let ada = create_user(&srv, "ada@acme.test").await;
    let acme_m = add_member(&srv, acme.id, ada.id, MembershipRole::Owner).await;
    let eng_m = add_member(&srv, eng.id, ada.id, MembershipRole::Member).await;
    let events_before = event_count(&srv).await;

    let gets: Vec<(&str, pb::GetMembershipRequest)> = vec![
        (
            "membership of eng through ops",
            pb::GetMembershipRequest {
                team_id: ops.id,
                member: Some(GMember::MembershipId(eng_m.id)),
                ..Default::default()
            },
        ),
        (
            "user of eng through ops",
            pb::GetMembershipRequest {
                team_id: ops.id,
                member: Some(GMember::UserId(ada.id)),
                ..Default::default()
            },
        ),
        (
            "org membership through a sub-team",
            pb::GetMembershipRequest {
                team_id: eng.id,
                member: Some(GMember::MembershipId(acme_m.id)),
                ..Default::default()
            },
        ),
        (
            "membership of eng through another organization",
            pb::GetMembershipRequest {
                team_id: eng.id,
                member: Some(GMember::MembershipId(eng_m.id)),
                organization_id: globex.id,
                ..Default::default()
            },
        ),
        (
            "membership id alone through another organization",
            pb::GetMembershipRequest {
                member: Some(GMember::MembershipId(eng_m.id)),
                organization_id: globex.id,
                ..Default::default()
            },
        ),
        (
            "org membership through another organization",
            pb::GetMembershipRequest {
                team_id: acme.id,
                member: Some(GMember::UserId(ada.id)),
                organization_id: globex.id,
                ..Default::default()
            },
        ),
        (
            "membership through another organization's id as team",
            pb::GetMembershipRequest {
                team_id: globex.id,
                member: Some(GMember::MembershipId(acme_m.id)),
                ..Default::default()
            },
        ),
    ];
    for (what, request) in gets {
        let status = expect_err(srv.memberships().get_membership(request).await);
        assert_code(&status, Code::NotFound, None, what);
    }
    // The right parents work.
    let ok = srv
        .memberships()
        .get_membership(pb::GetMembershipRequest {
            team_id: eng.id,
            member: Some(GMember::MembershipId(eng_m.id)),
            organization_id: acme.id,
            ..Default::default()
        })
        .await
        .expect("through the right parents")
        .into_inner();
    assert_eq!(ok.id, eng_m.id);

    let status = expect_err(
        srv.directory()
            .get_team(pb::GetTeamRequest {
                team_id: eng.id,
                organization_id: globex.id,
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::NotFound,
        None,
        "team of another organization",
    );
    srv.directory()
        .get_team(pb::GetTeamRequest {
            team_id: eng.id,
            organization_id: acme.id,
            ..Default::default()
        })
        .await
        .expect("team of its own organization");
    let status = expect_err(
        srv.directory()
            .get_team(pb::GetTeamRequest {
                team_id: acme.id,
                organization_id: 0,
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::NotFound, None, "GetTeam on an organization");
    let status = expect_err(
        srv.directory()
            .get_organization(pb::GetOrganizationRequest {
                organization_id: eng.id,
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::NotFound,
        None,
        "GetOrganization on a sub-team",
    );
    let status = expect_err(
        srv.directory()
            .list_teams(pb::ListTeamsRequest {
                organization_id: eng.id,
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::NotFound, None, "ListTeams of a sub-team");
    let status = expect_err(
        srv.directory()
            .update_team(pb::UpdateTeamRequest {
                team_id: eng.id,
                organization_id: globex.id,
                name: Some("Hijacked".into()),
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::NotFound, None, "UpdateTeam via another org");
    let status = expect_err(
        srv.directory()
            .delete_team(pb::DeleteTeamRequest {
                team_id: eng.id,
                organization_id: globex.id,
                etag: None,
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::NotFound, None, "DeleteTeam via another org");
    let status = expect_err(
        srv.directory()
            .update_organization(pb::UpdateOrganizationRequest {
                organization_id: eng.id,
                name: Some("Not an org".into()),
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::NotFound,
        None,
        "UpdateOrganization on a team",
    );
    let status = expect_err(
        srv.directory()
            .delete_organization(pb::DeleteOrganizationRequest {
                organization_id: eng.id,
                etag: None,
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::NotFound,
        None,
        "DeleteOrganization on a team",
    );

    let status = expect_err(
        srv.memberships()
            .update_membership(pb::UpdateMembershipRequest {
                team_id: ops.id,
                role: Some(MembershipRole::Admin as i32),
                accepted: Some(false),
                ..update(eng_m.id)
            })
            .await,
    );
    assert_code(&status, Code::NotFound, None, "UpdateMembership via ops");
    let status = expect_err(
        srv.memberships()
            .update_membership(pb::UpdateMembershipRequest {
                organization_id: globex.id,
                role: Some(MembershipRole::Admin as i32),
                ..update(eng_m.id)
            })
            .await,
    );
    assert_code(&status, Code::NotFound, None, "UpdateMembership via globex");
    let status = expect_err(
        srv.memberships()
            .delete_membership(pb::DeleteMembershipRequest {
                team_id: ops.id,
                ..delete(eng_m.id)
            })
            .await,
    );
    assert_code(&status, Code::NotFound, None, "DeleteMembership via ops");
    let status = expect_err(
        srv.memberships()
            .delete_membership(pb::DeleteMembershipRequest {
                organization_id: globex.id,
                ..delete(eng_m.id)
            })
            .await,
    );
    assert_code(&status, Code::NotFound, None, "DeleteMembership via globex");
    let status = expect_err(
        srv.memberships()
            .list_memberships(pb::ListMembershipsRequest {
                team_id: eng.id,
                organization_id: globex.id,
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::NotFound, None, "ListMemberships via globex");
    let status = expect_err(
        srv.memberships()
            .create_membership(pb::CreateMembershipRequest {
                team_id: ops.id,
                user_id: ada.id,
                organization_id: globex.id,
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::NotFound, None, "CreateMembership via globex");

    // Nothing changed.
    assert_eq!(get_membership(&srv, eng_m.id).await.etag, eng_m.etag);
    assert_eq!(get_membership(&srv, acme_m.id).await.etag, acme_m.etag);
    let team_now = srv
        .directory()
        .get_team(pb::GetTeamRequest {
            team_id: eng.id,
            organization_id: 0,
            ..Default::default()
        })
        .await
        .expect("eng")
        .into_inner();
    assert_eq!(team_now.etag, eng.etag);
    assert_eq!(team_now.name, eng.name);
    assert_eq!(event_count(&srv).await, events_before, "no event");
    srv.stop().await;
}

async fn membership_addressing_forms_agree(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let team = create_team(&srv, org.id, "eng").await;
    let ada = create_user(&srv, "ada@acme.test").await;
    let org_m = add_member(&srv, org.id, ada.id, MembershipRole::Owner).await;
    let team_m = add_member(&srv, team.id, ada.id, MembershipRole::Member).await;

    for (team_id, m) in [(org.id, &org_m), (team.id, &team_m)] {
        let forms = [
            pb::GetMembershipRequest {
                member: Some(GMember::MembershipId(m.id)),
                ..Default::default()
            },
            pb::GetMembershipRequest {
                team_id,
                member: Some(GMember::MembershipId(m.id)),
                ..Default::default()
            },
            pb::GetMembershipRequest {
                team_id,
                member: Some(GMember::UserId(ada.id)),
                ..Default::default()
            },
            pb::GetMembershipRequest {
                team_id,
                member: Some(GMember::UserId(ada.id)),
                organization_id: org.id,
                ..Default::default()
            },
        ];
        for request in forms {
            let what = format!("{request:?}");
            let got = srv
                .memberships()
                .get_membership(request)
                .await
                .unwrap_or_else(|s| panic!("{what}: {s:?}"))
                .into_inner();
            assert_eq!(got.id, m.id, "{what}");
            assert_eq!(got.etag, m.etag);
            assert_eq!(got.team_id, team_id);
            assert_eq!(got.organization_id, org.id);
            assert_eq!(
                got.user.as_ref().map(|u| u.email.as_str()),
                Some(ada.email.as_str())
            );
        }
    }

    // user_id without team_id.
    let status = expect_err(
        srv.memberships()
            .get_membership(pb::GetMembershipRequest {
                member: Some(GMember::UserId(ada.id)),
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::InvalidArgument, None, "get by user_id alone");
    assert!(
        field_violations(&status).iter().any(|f| f == "team_id"),
        "{:?}",
        field_violations(&status)
    );
    let events_before = event_count(&srv).await;
    let status = expect_err(
        srv.memberships()
            .update_membership(pb::UpdateMembershipRequest {
                member: Some(UMember::UserId(ada.id)),
                disable_impersonation: Some(true),
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::InvalidArgument,
        None,
        "update by user_id alone",
    );
    assert!(field_violations(&status).iter().any(|f| f == "team_id"));
    let status = expect_err(
        srv.memberships()
            .delete_membership(pb::DeleteMembershipRequest {
                member: Some(DMember::UserId(ada.id)),
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::InvalidArgument,
        None,
        "delete by user_id alone",
    );
    assert!(field_violations(&status).iter().any(|f| f == "team_id"));
    // Neither membership_id nor user_id.
    let status = expect_err(
        srv.memberships()
            .get_membership(pb::GetMembershipRequest {
                team_id: org.id,
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::InvalidArgument, None, "no member");
    assert_eq!(event_count(&srv).await, events_before);

    // Update and delete by (team_id, user_id).
    let updated = srv
        .memberships()
        .update_membership(pb::UpdateMembershipRequest {
            team_id: team.id,
            member: Some(UMember::UserId(ada.id)),
            disable_impersonation: Some(true),
            ..Default::default()
        })
        .await
        .expect("update by (team_id, user_id)")
        .into_inner();
    assert_eq!(updated.id, team_m.id);
    assert!(updated.disable_impersonation);
    srv.memberships()
        .delete_membership(pb::DeleteMembershipRequest {
            team_id: team.id,
            member: Some(DMember::UserId(ada.id)),
            ..Default::default()
        })
        .await
        .expect("delete by (team_id, user_id)");
    assert!(membership_missing(&srv, team_m.id).await);
    assert!(!membership_missing(&srv, org_m.id).await);
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Etags

async fn stale_etags_are_aborted(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let ada = create_user(&srv, "ada@acme.test").await;
    let bob = create_user(&srv, "bob@acme.test").await;
    add_member(&srv, org.id, ada.id, MembershipRole::Owner).await;
    let m = add_member(&srv, org.id, bob.id, MembershipRole::Member).await;

    // Membership.
    let m2 = srv
        .memberships()
        .update_membership(pb::UpdateMembershipRequest {
            disable_impersonation: Some(true),
            etag: Some(m.etag.clone()),
            ..update(m.id)
        })
        .await
        .expect("update with the current etag")
        .into_inner();
    assert_ne!(m2.etag, m.etag, "etag changes on write");
    let events_before = event_count(&srv).await;
    let status = expect_err(
        srv.memberships()
            .update_membership(pb::UpdateMembershipRequest {
                role: Some(MembershipRole::Admin as i32),
                etag: Some(m.etag.clone()),
                ..update(m.id)
            })
            .await,
    );
    assert_code(
        &status,
        Code::Aborted,
        Some("ETAG_MISMATCH"),
        "stale membership etag",
    );
    let status = expect_err(
        srv.memberships()
            .delete_membership(pb::DeleteMembershipRequest {
                etag: Some(m.etag.clone()),
                ..delete(m.id)
            })
            .await,
    );
    assert_code(
        &status,
        Code::Aborted,
        Some("ETAG_MISMATCH"),
        "stale delete etag",
    );
    assert_eq!(event_count(&srv).await, events_before, "no event");
    let now = get_membership(&srv, m.id).await;
    assert_eq!(now.etag, m2.etag);
    assert_eq!(now.role(), MembershipRole::Member);
    let m3 = srv
        .memberships()
        .update_membership(pb::UpdateMembershipRequest {
            role: Some(MembershipRole::Admin as i32),
            etag: Some(m2.etag.clone()),
            ..update(m.id)
        })
        .await
        .expect("update with the current etag")
        .into_inner();
    assert_ne!(m3.etag, m2.etag);
    assert_eq!(m3.role(), MembershipRole::Admin);

    // User.
    let status = expect_err(
        srv.directory()
            .update_user(pb::UpdateUserRequest {
                user_id: ada.id,
                name: Some("Ada L.".into()),
                etag: Some("v999".into()),
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::Aborted,
        Some("ETAG_MISMATCH"),
        "stale user etag",
    );
    let ada2 = srv
        .directory()
        .update_user(pb::UpdateUserRequest {
            user_id: ada.id,
            name: Some("Ada L.".into()),
            etag: Some(ada.etag.clone()),
            ..Default::default()
        })
        .await
        .expect("update user with the current etag")
        .into_inner();
    assert_eq!(ada2.name, "Ada L.");
    assert_ne!(ada2.etag, ada.etag);
    let status = expect_err(
        srv.directory()
            .update_user(pb::UpdateUserRequest {
                user_id: ada.id,
                bio: Some("late".into()),
                etag: Some(ada.etag.clone()),
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::Aborted,
        Some("ETAG_MISMATCH"),
        "user etag, second writer",
    );
    let status = expect_err(
        srv.directory()
            .delete_user(pb::DeleteUserRequest {
                user_id: bob.id,
                etag: Some("v999".into()),
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::Aborted,
        Some("ETAG_MISMATCH"),
        "stale DeleteUser etag",
    );

    // Organization.
    let org2 = srv
        .directory()
        .update_organization(pb::UpdateOrganizationRequest {
            organization_id: org.id,
            name: Some("Acme Two".into()),
            etag: Some(org.etag.clone()),
            ..Default::default()
        })
        .await
        .expect("update org with the current etag")
        .into_inner();
    assert_ne!(org2.etag, org.etag);
    assert_eq!(org2.name, "Acme Two");
    let status = expect_err(
        srv.directory()
            .update_organization(pb::UpdateOrganizationRequest {
                organization_id: org.id,
                name: Some("Acme Three".into()),
                etag: Some(org.etag.clone()),
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::Aborted,
        Some("ETAG_MISMATCH"),
        "stale org etag",
    );
    let status = expect_err(
        srv.directory()
            .delete_organization(pb::DeleteOrganizationRequest {
                organization_id: org.id,
                etag: Some(org.etag.clone()),
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::Aborted,
        Some("ETAG_MISMATCH"),
        "stale org delete etag",
    );
    let got = srv
        .directory()
        .get_organization(pb::GetOrganizationRequest {
            organization_id: org.id,
            ..Default::default()
        })
        .await
        .expect("org")
        .into_inner();
    assert_eq!(got.name, "Acme Two");
    assert_eq!(got.etag, org2.etag);
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Role references and membership fields

async fn role_references_resolve(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let boss = create_user(&srv, "boss@acme.test").await;
    add_member(&srv, org.id, boss.id, MembershipRole::Owner).await;

    let cases: [(&str, &str, &str, MembershipRole); 10] = [
        (
            "superuser",
            "superuser_role",
            "superuser",
            MembershipRole::Admin,
        ),
        ("org:admin", "admin_role", "admin", MembershipRole::Admin),
        ("ADMIN", "admin_role", "admin", MembershipRole::Admin),
        ("admin_role", "admin_role", "admin", MembershipRole::Admin),
        ("user", "member_role", "member", MembershipRole::Member),
        (
            "restricteduser",
            "restricteduser_role",
            "restricteduser",
            MembershipRole::Member,
        ),
        ("org:owner", "owner_role", "owner", MembershipRole::Owner),
        ("OWNER", "owner_role", "owner", MembershipRole::Owner),
        (
            "org:member",
            "member_role",
            "member",
            MembershipRole::Member,
        ),
        ("admin", "admin_role", "admin", MembershipRole::Admin),
    ];
    // On create.
    for (i, (reference, id, key, role)) in cases.iter().enumerate() {
        let u = create_user(&srv, &format!("c{i}@acme.test")).await;
        let m = srv
            .memberships()
            .create_membership(pb::CreateMembershipRequest {
                team_id: org.id,
                user_id: u.id,
                role_id: reference.to_string(),
                accepted: true,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("create with role_id {reference}: {s:?}"))
            .into_inner();
        assert_eq!(
            (m.role_id.as_str(), m.role_key.as_str(), m.role()),
            (*id, *key, *role),
            "create with role_id {reference:?}"
        );
    }

    // On update, one membership walking through every reference.
    let ada = create_user(&srv, "ada@acme.test").await;
    let m = srv
        .memberships()
        .create_membership(pb::CreateMembershipRequest {
            team_id: org.id,
            user_id: ada.id,
            accepted: true,
            public_metadata: Some(to_struct(json!({"team": "blue", "level": 3}))),
            private_metadata: Some(to_struct(json!({"note": "vip", "tags": ["a", "b"]}))),
            disable_impersonation: true,
            ..Default::default()
        })
        .await
        .expect("create plain membership")
        .into_inner();
    assert_eq!(m.role(), MembershipRole::Member, "default role");
    assert_eq!(m.role_id, "member_role");
    assert_eq!(m.role_key, "member");
    assert_eq!(m.auto_record_calls(), AutoRecordCalls::Unset);
    assert!(m.disable_impersonation);
    assert_eq!(
        m.public_metadata,
        Some(to_struct(json!({"team": "blue", "level": 3})))
    );
    assert_eq!(
        m.private_metadata,
        Some(to_struct(json!({"note": "vip", "tags": ["a", "b"]})))
    );
    for (reference, id, key, role) in cases {
        let u = srv
            .memberships()
            .update_membership(pb::UpdateMembershipRequest {
                role_id: Some(reference.into()),
                ..update(m.id)
            })
            .await
            .unwrap_or_else(|s| panic!("update to role_id {reference}: {s:?}"))
            .into_inner();
        assert_eq!(
            (u.role_id.as_str(), u.role_key.as_str(), u.role()),
            (id, key, role),
            "update to role_id {reference:?}"
        );
        // Partial updates leave the rest alone.
        assert!(u.accepted && u.disable_impersonation, "{reference}");
        assert_eq!(u.public_metadata, m.public_metadata, "{reference}");
        assert_eq!(u.private_metadata, m.private_metadata, "{reference}");
        assert_eq!(u.auto_record_calls(), AutoRecordCalls::Unset);
    }

    // Unknown references.
    for reference in ["nope", "owner_rolex"] {
        let status = expect_err(
            srv.memberships()
                .update_membership(pb::UpdateMembershipRequest {
                    role_id: Some(reference.into()),
                    ..update(m.id)
                })
                .await,
        );
        assert_code(&status, Code::NotFound, Some("ROLE_NOT_FOUND"), reference);
    }
    let u = create_user(&srv, "nope@acme.test").await;
    let status = expect_err(
        srv.memberships()
            .create_membership(pb::CreateMembershipRequest {
                team_id: org.id,
                user_id: u.id,
                role_id: "nope".into(),
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::NotFound,
        Some("ROLE_NOT_FOUND"),
        "create nope",
    );

    // role and role_id must agree.
    let events_before = event_count(&srv).await;
    let status = expect_err(
        srv.memberships()
            .update_membership(pb::UpdateMembershipRequest {
                role: Some(MembershipRole::Owner as i32),
                role_id: Some("admin".into()),
                ..update(m.id)
            })
            .await,
    );
    assert_code(&status, Code::InvalidArgument, None, "OWNER with admin");
    let status = expect_err(
        srv.memberships()
            .create_membership(pb::CreateMembershipRequest {
                team_id: org.id,
                user_id: u.id,
                role: MembershipRole::Member as i32,
                role_id: "org:owner".into(),
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::InvalidArgument,
        None,
        "MEMBER with org:owner on create",
    );
    assert_eq!(event_count(&srv).await, events_before);
    // Agreeing ones are fine.
    let both = srv
        .memberships()
        .update_membership(pb::UpdateMembershipRequest {
            role: Some(MembershipRole::Admin as i32),
            role_id: Some("org:admin".into()),
            ..update(m.id)
        })
        .await
        .expect("role and role_id agreeing")
        .into_inner();
    assert_eq!(
        (both.role(), both.role_id.as_str()),
        (MembershipRole::Admin, "admin_role")
    );

    // The enum alone sets role_id to the system role.
    for (role, id, key) in [
        (MembershipRole::Member, "member_role", "member"),
        (MembershipRole::Owner, "owner_role", "owner"),
        (MembershipRole::Admin, "admin_role", "admin"),
    ] {
        let u = srv
            .memberships()
            .update_membership(pb::UpdateMembershipRequest {
                role: Some(role as i32),
                ..update(m.id)
            })
            .await
            .unwrap_or_else(|s| panic!("role {role:?}: {s:?}"))
            .into_inner();
        assert_eq!(
            (u.role(), u.role_id.as_str(), u.role_key.as_str()),
            (role, id, key)
        );
    }
    // From superuser (ADMIN level) the enum ADMIN picks admin_role.
    srv.memberships()
        .update_membership(pb::UpdateMembershipRequest {
            role_id: Some("superuser".into()),
            ..update(m.id)
        })
        .await
        .expect("superuser");
    let u = srv
        .memberships()
        .update_membership(pb::UpdateMembershipRequest {
            role: Some(MembershipRole::Admin as i32),
            ..update(m.id)
        })
        .await
        .expect("ADMIN over superuser")
        .into_inner();
    assert_eq!(
        u.role_id, "admin_role",
        "the enum alone sets the system role"
    );

    // auto_record_calls: UNSET → ENABLED → DISABLED; UNSPECIFIED is "absent".
    let before = get_membership(&srv, m.id).await;
    let u = srv
        .memberships()
        .update_membership(pb::UpdateMembershipRequest {
            auto_record_calls: Some(AutoRecordCalls::Enabled as i32),
            ..update(m.id)
        })
        .await
        .expect("auto_record_calls ENABLED")
        .into_inner();
    assert_eq!(u.auto_record_calls(), AutoRecordCalls::Enabled);
    assert_eq!(
        (
            u.role(),
            u.role_id.as_str(),
            u.accepted,
            u.disable_impersonation
        ),
        (
            before.role(),
            before.role_id.as_str(),
            before.accepted,
            before.disable_impersonation
        ),
        "partial update leaves the rest alone"
    );
    assert_eq!(u.public_metadata, before.public_metadata);
    assert_eq!(u.private_metadata, before.private_metadata);
    let u = srv
        .memberships()
        .update_membership(pb::UpdateMembershipRequest {
            auto_record_calls: Some(AutoRecordCalls::Unspecified as i32),
            disable_impersonation: Some(false),
            public_metadata: Some(to_struct(json!({"team": "red"}))),
            ..update(m.id)
        })
        .await
        .expect("metadata replace")
        .into_inner();
    assert_eq!(
        u.auto_record_calls(),
        AutoRecordCalls::Enabled,
        "UNSPECIFIED is absent"
    );
    assert!(!u.disable_impersonation);
    assert_eq!(u.public_metadata, Some(to_struct(json!({"team": "red"}))));
    assert_eq!(u.private_metadata, before.private_metadata, "untouched");
    let got = get_membership(&srv, m.id).await;
    assert_eq!(
        got.public_metadata, u.public_metadata,
        "round-trips through storage"
    );
    assert_eq!(got.private_metadata, before.private_metadata);
    assert_eq!(got.auto_record_calls(), AutoRecordCalls::Enabled);

    // Created with auto_record_calls set.
    let v = create_user(&srv, "rec@acme.test").await;
    let rec = srv
        .memberships()
        .create_membership(pb::CreateMembershipRequest {
            team_id: org.id,
            user_id: v.id,
            auto_record_calls: AutoRecordCalls::Disabled as i32,
            ..Default::default()
        })
        .await
        .expect("create with auto_record_calls")
        .into_inner();
    assert_eq!(rec.auto_record_calls(), AutoRecordCalls::Disabled);
    srv.stop().await;
}

/// References are exact (an exact role id, a role key, or one of the system aliases) on every
/// engine: other spellings of ids, keys and aliases are unknown, as they are on PostgreSQL and
/// SQLite.
async fn role_references_are_exact(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let boss = create_user(&srv, "boss@acme.test").await;
    add_member(&srv, org.id, boss.id, MembershipRole::Owner).await;
    let ada = create_user(&srv, "ada@acme.test").await;
    let m = add_member(&srv, org.id, ada.id, MembershipRole::Member).await;
    let mut wrongly_resolved = Vec::new();
    for reference in [
        "Admin ",
        "Admin",
        "SUPERUSER",
        "Owner_Role",
        "Org:Admin",
        "Member",
    ] {
        let result = srv
            .memberships()
            .update_membership(pb::UpdateMembershipRequest {
                role_id: Some(reference.into()),
                ..update(m.id)
            })
            .await;
        match result {
            // ("Admin " is trimmed to "Admin".)
            Err(status) => assert_code(&status, Code::NotFound, Some("ROLE_NOT_FOUND"), reference),
            Ok(resolved) => wrongly_resolved.push(format!(
                "{reference:?} -> {:?}",
                resolved.into_inner().role_id
            )),
        }
    }
    assert!(
        wrongly_resolved.is_empty(),
        "references that are no exact id, key or alias resolved: {wrongly_resolved:?}"
    );
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Bad input

async fn bad_input_names_every_bad_field(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let ada = create_user(&srv, "ada@acme.test").await;
    let m = add_member(&srv, org.id, ada.id, MembershipRole::Owner).await;
    let events_before = event_count(&srv).await;

    let status = expect_err(
        srv.directory()
            .create_user(pb::CreateUserRequest {
                email: "not-an-email".into(),
                avatar_url: "ftp://example.com/a.png".into(),
                name: "x".repeat(256),
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::InvalidArgument,
        Some("INVALID_ARGUMENT"),
        "CreateUser",
    );
    assert_eq!(
        violation_set(&status),
        set(&["email", "avatar_url", "name"])
    );

    let status = expect_err(
        srv.directory()
            .create_organization(pb::CreateOrganizationRequest {
                name: String::new(),
                slug: "Bad Slug".into(),
                max_allowed_memberships: -1,
                auto_accept_email_domain: "not a domain".into(),
                image_url: "javascript:alert(1)".into(),
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::InvalidArgument, None, "CreateOrganization");
    assert_eq!(
        violation_set(&status),
        set(&[
            "name",
            "slug",
            "max_allowed_memberships",
            "auto_accept_email_domain",
            "image_url"
        ])
    );

    let status = expect_err(
        srv.directory()
            .update_organization(pb::UpdateOrganizationRequest {
                organization_id: org.id,
                name: Some("   ".into()),
                slug: Some("-bad-".into()),
                max_allowed_memberships: Some(-5),
                auto_accept_email_domain: Some("acme".into()),
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::InvalidArgument, None, "UpdateOrganization");
    assert_eq!(
        violation_set(&status),
        set(&[
            "name",
            "slug",
            "max_allowed_memberships",
            "auto_accept_email_domain"
        ])
    );

    let status = expect_err(
        srv.directory()
            .update_user(pb::UpdateUserRequest {
                user_id: ada.id,
                email: Some("@@".into()),
                username: Some("has space".into()),
                avatar_url: Some("notaurl".into()),
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::InvalidArgument, None, "UpdateUser");
    assert_eq!(
        violation_set(&status),
        set(&["email", "username", "avatar_url"])
    );

    let status = expect_err(
        srv.directory()
            .create_team(pb::CreateTeamRequest {
                organization_id: 0,
                name: "x".repeat(300),
                slug: "UPPER".into(),
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::InvalidArgument, None, "CreateTeam");
    assert_eq!(
        violation_set(&status),
        set(&["organization_id", "name", "slug"])
    );

    // Unknown enum values.
    let status = expect_err(
        srv.memberships()
            .create_membership(pb::CreateMembershipRequest {
                team_id: org.id,
                user_id: ada.id,
                role: 99,
                auto_record_calls: 99,
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::InvalidArgument,
        None,
        "CreateMembership enums",
    );
    assert_eq!(violation_set(&status), set(&["role", "auto_record_calls"]));
    let status = expect_err(
        srv.memberships()
            .create_membership(pb::CreateMembershipRequest {
                team_id: 0,
                user_id: -3,
                role: -1,
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::InvalidArgument, None, "CreateMembership ids");
    assert_eq!(violation_set(&status), set(&["team_id", "user_id", "role"]));
    let status = expect_err(
        srv.memberships()
            .update_membership(pb::UpdateMembershipRequest {
                role: Some(99),
                auto_record_calls: Some(99),
                role_id: Some("   ".into()),
                ..update(m.id)
            })
            .await,
    );
    assert_code(
        &status,
        Code::InvalidArgument,
        None,
        "UpdateMembership enums",
    );
    assert_eq!(
        violation_set(&status),
        set(&["role", "auto_record_calls", "role_id"])
    );
    let status = expect_err(
        srv.memberships()
            .list_memberships(pb::ListMembershipsRequest {
                team_id: org.id,
                role: 42,
                page_size: 5000,
                page_token: "garbage".into(),
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::InvalidArgument, None, "ListMemberships");
    assert_eq!(
        violation_set(&status),
        set(&["role", "page_size", "page_token"])
    );

    // Page sizes and tokens on every list.
    for (page_size, page_token, fields) in [
        (5000, "", &["page_size"][..]),
        (-1, "", &["page_size"][..]),
        (1001, "", &["page_size"][..]),
        (10, "garbage", &["page_token"][..]),
        (5000, "garbage", &["page_size", "page_token"][..]),
    ] {
        let what = format!("page_size {page_size}, page_token {page_token:?}");
        let status = expect_err(
            srv.directory()
                .list_users(pb::ListUsersRequest {
                    page_size,
                    page_token: page_token.into(),
                    ..Default::default()
                })
                .await,
        );
        assert_code(
            &status,
            Code::InvalidArgument,
            None,
            &format!("ListUsers {what}"),
        );
        assert_eq!(violation_set(&status), set(fields), "ListUsers {what}");
        let status = expect_err(
            srv.directory()
                .list_organizations(pb::ListOrganizationsRequest {
                    page_size,
                    page_token: page_token.into(),
                    ..Default::default()
                })
                .await,
        );
        assert_eq!(
            violation_set(&status),
            set(fields),
            "ListOrganizations {what}"
        );
        let status = expect_err(
            srv.memberships()
                .list_user_memberships(pb::ListUserMembershipsRequest {
                    user_id: ada.id,
                    page_size,
                    page_token: page_token.into(),
                    ..Default::default()
                })
                .await,
        );
        assert_eq!(
            violation_set(&status),
            set(fields),
            "ListUserMemberships {what}"
        );
        let status = expect_err(
            srv.events()
                .list_events(pb::ListEventsRequest {
                    page_size,
                    page_token: page_token.into(),
                    ..Default::default()
                })
                .await,
        );
        assert_eq!(violation_set(&status), set(fields), "ListEvents {what}");
        let status = expect_err(
            srv.directory()
                .list_teams(pb::ListTeamsRequest {
                    organization_id: org.id,
                    page_size,
                    page_token: page_token.into(),
                    ..Default::default()
                })
                .await,
        );
        assert_eq!(violation_set(&status), set(fields), "ListTeams {what}");
    }
    // The largest page is allowed.
    srv.directory()
        .list_users(pb::ListUsersRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("page_size 1000 is allowed");

    // Error messages carry no SQL.
    assert!(!status_mentions_sql(&status));

    assert_eq!(
        event_count(&srv).await,
        events_before,
        "the database is unchanged"
    );
    let still = get_membership(&srv, m.id).await;
    assert_eq!(still.etag, m.etag);
    srv.stop().await;
}

fn status_mentions_sql(status: &Status) -> bool {
    let m = status.message().to_ascii_uppercase();
    [
        "SELECT ",
        "INSERT ",
        "UPDATE ",
        "DELETE FROM",
        "SQLX",
        "SQLSTATE",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// Strings that reach a query unvalidated (role references, list filters) with a NUL byte, and
/// ids far out of range, are client errors or empty answers on every engine, never INTERNAL
/// (nothing a client can cause is INTERNAL).
async fn odd_input_is_never_internal(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let ada = create_user(&srv, "ada@acme.test").await;
    let bob = create_user(&srv, "bob@acme.test").await;
    add_member(&srv, org.id, ada.id, MembershipRole::Owner).await;
    let m = add_member(&srv, org.id, bob.id, MembershipRole::Member).await;
    let events_before = event_count(&srv).await;
    let mut internal = Vec::new();
    let mut note = |what: &str, status: &Status| {
        if matches!(status.code(), Code::Internal | Code::Unknown) {
            internal.push(format!(
                "{what}: {:?} {:?}",
                status.code(),
                status.message()
            ));
        }
    };

    let nul_role = "ad\0min";
    match srv
        .memberships()
        .update_membership(pb::UpdateMembershipRequest {
            role_id: Some(nul_role.into()),
            ..update(m.id)
        })
        .await
    {
        Ok(r) => panic!("role_id with NUL resolved to {:?}", r.into_inner().role_id),
        Err(s) => note("UpdateMembership role_id with NUL", &s),
    }
    let carl = create_user(&srv, "carl@acme.test").await;
    let events_before = events_before + 1;
    if let Err(s) = srv
        .memberships()
        .create_membership(pb::CreateMembershipRequest {
            team_id: org.id,
            user_id: carl.id,
            role_id: nul_role.into(),
            ..Default::default()
        })
        .await
    {
        note("CreateMembership role_id with NUL", &s);
    } else {
        panic!("CreateMembership with a NUL role_id succeeded");
    }
    match srv
        .directory()
        .list_users(pb::ListUsersRequest {
            email: "ada\0@acme.test".into(),
            ..Default::default()
        })
        .await
    {
        Ok(r) => assert!(r.into_inner().users.is_empty()),
        Err(s) => note("ListUsers email filter with NUL", &s),
    }
    for (what, request) in [
        (
            "ListEvents kind with NUL",
            pb::ListEventsRequest {
                kind: "membership\0.created".into(),
                ..Default::default()
            },
        ),
        (
            "ListEvents actor_key_id with NUL",
            pb::ListEventsRequest {
                actor_key_id: "key_\0".into(),
                ..Default::default()
            },
        ),
    ] {
        match srv.events().list_events(request).await {
            Ok(r) => assert!(r.into_inner().events.is_empty(), "{what}"),
            Err(s) => note(what, &s),
        }
    }

    // Ids far out of range are NOT_FOUND.
    let far = i64::MAX;
    let status = expect_err(
        srv.directory()
            .get_user(pb::GetUserRequest {
                user_id: far,
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::NotFound, None, "GetUser i64::MAX");
    let status = expect_err(
        srv.memberships()
            .create_membership(pb::CreateMembershipRequest {
                team_id: org.id,
                user_id: far,
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::NotFound,
        None,
        "CreateMembership of user i64::MAX",
    );
    let status = expect_err(
        srv.memberships()
            .create_membership(pb::CreateMembershipRequest {
                team_id: far,
                user_id: carl.id,
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::NotFound,
        None,
        "CreateMembership in team i64::MAX",
    );
    let status = expect_err(
        srv.memberships()
            .get_membership(pb::GetMembershipRequest {
                member: Some(GMember::MembershipId(far)),
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::NotFound, None, "GetMembership i64::MAX");

    // Oversized metadata names the field.
    let status = expect_err(
        srv.memberships()
            .update_membership(pb::UpdateMembershipRequest {
                public_metadata: Some(to_struct(json!({"blob": "x".repeat(10_000)}))),
                ..update(m.id)
            })
            .await,
    );
    assert_code(&status, Code::InvalidArgument, None, "oversized metadata");
    assert_eq!(violation_set(&status), set(&["public_metadata"]));

    assert!(
        internal.is_empty(),
        "client input gave INTERNAL: {internal:#?}"
    );
    assert_eq!(
        event_count(&srv).await,
        events_before,
        "nothing was written"
    );
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Duplicates

async fn duplicates_already_exist(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let ada = create_user(&srv, "Dup@Example.com").await;
    let events_before = event_count(&srv).await;
    let status = expect_err(
        srv.directory()
            .create_user(pb::CreateUserRequest {
                email: "dup@EXAMPLE.com".into(),
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::AlreadyExists, None, "same email, other case");
    assert!(!status_mentions_sql(&status), "{status:?}");

    let with_name = |email: &str, username: &str| pb::CreateUserRequest {
        email: email.into(),
        username: Some(username.into()),
        ..Default::default()
    };
    srv.directory()
        .create_user(with_name("one@example.com", "ada"))
        .await
        .expect("username ada");
    let status = expect_err(
        srv.directory()
            .create_user(with_name("two@example.com", "ada"))
            .await,
    );
    assert_code(&status, Code::AlreadyExists, None, "same username");
    let status = expect_err(
        srv.directory()
            .update_user(pb::UpdateUserRequest {
                user_id: ada.id,
                email: Some("ONE@example.com".into()),
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::AlreadyExists,
        None,
        "update to a taken email",
    );

    let org = create_org(&srv, "acme").await;
    let status = expect_err(
        srv.directory()
            .create_organization(pb::CreateOrganizationRequest {
                name: "Another Acme".into(),
                slug: "acme".into(),
                ..Default::default()
            })
            .await,
    );
    assert_code(&status, Code::AlreadyExists, None, "same org slug");
    let globex = create_org(&srv, "globex").await;
    let status = expect_err(
        srv.directory()
            .update_organization(pb::UpdateOrganizationRequest {
                organization_id: globex.id,
                slug: Some("acme".into()),
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::AlreadyExists,
        None,
        "rename to a taken org slug",
    );

    // Team slugs are unique within their organization only.
    create_team(&srv, org.id, "eng").await;
    let status = expect_err(
        srv.directory()
            .create_team(pb::CreateTeamRequest {
                organization_id: org.id,
                name: "Eng again".into(),
                slug: "eng".into(),
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::AlreadyExists,
        None,
        "same team slug in one org",
    );
    create_team(&srv, globex.id, "eng").await;
    create_team(&srv, org.id, "globex").await;

    let m = add_member(&srv, org.id, ada.id, MembershipRole::Owner).await;
    let status = expect_err(
        srv.memberships()
            .create_membership(pb::CreateMembershipRequest {
                team_id: org.id,
                user_id: ada.id,
                role: MembershipRole::Member as i32,
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::AlreadyExists,
        None,
        "same (team, user) membership",
    );
    assert_eq!(get_membership(&srv, m.id).await.etag, m.etag);

    // Refused writes recorded nothing: 1 username user + 2 orgs + 3 teams + 1 membership.
    assert_eq!(event_count(&srv).await, events_before + 7);
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Pagination

async fn pagination_is_keyset_and_stable(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(create_user(&srv, &format!("p{i}@page.test")).await.id);
    }
    let page = |token: String| {
        let mut client = srv.directory();
        async move {
            client
                .list_users(pb::ListUsersRequest {
                    page_size: 3,
                    page_token: token,
                    ..Default::default()
                })
                .await
                .expect("list users")
                .into_inner()
        }
    };
    let p1 = page(String::new()).await;
    assert_eq!(p1.users.len(), 3);
    assert!(!p1.next_page_token.is_empty());
    let p2 = page(p1.next_page_token.clone()).await;
    assert_eq!(p2.users.len(), 3);
    assert!(!p2.next_page_token.is_empty());
    let p3 = page(p2.next_page_token.clone()).await;
    assert_eq!(p3.users.len(), 1);
    assert!(p3.next_page_token.is_empty(), "the last page has no token");
    let seen: Vec<i64> = [&p1, &p2, &p3]
        .iter()
        .flat_map(|p| p.users.iter().map(|u| u.id))
        .collect();
    assert_eq!(seen, ids, "every user once, ascending ids");

    // Stable under inserts: one written between reading page 1 and page 2 shows up later.
    let p1 = page(String::new()).await;
    let late = create_user(&srv, "late@page.test").await;
    let mut token = p1.next_page_token.clone();
    let mut rest = Vec::new();
    while !token.is_empty() {
        let p = page(token).await;
        assert!(p.users.len() <= 3);
        rest.extend(p.users.iter().map(|u| u.id));
        token = p.next_page_token;
    }
    let mut all: Vec<i64> = p1.users.iter().map(|u| u.id).collect();
    all.extend(rest);
    let mut expected = ids.clone();
    expected.push(late.id);
    assert_eq!(
        all, expected,
        "no duplicates, nothing skipped, the new one last"
    );

    // A page size exactly covering the rest ends without a token or with an empty last page.
    let p = srv
        .directory()
        .list_users(pb::ListUsersRequest {
            page_size: 8,
            ..Default::default()
        })
        .await
        .expect("list 8")
        .into_inner();
    assert_eq!(p.users.len(), 8);
    if !p.next_page_token.is_empty() {
        let next = page(p.next_page_token).await;
        assert!(next.users.is_empty());
    }

    // Memberships page the same way.
    let org = create_org(&srv, "paged").await;
    for (i, id) in ids.iter().enumerate() {
        let role = if i == 0 {
            MembershipRole::Owner
        } else {
            MembershipRole::Member
        };
        if i % 2 == 0 {
            add_member(&srv, org.id, *id, role).await;
        } else {
            add_pending_member(&srv, org.id, *id, role).await;
        }
    }
    let mut token = String::new();
    let mut users = Vec::new();
    let mut pages = 0;
    loop {
        let p = srv
            .memberships()
            .list_memberships(pb::ListMembershipsRequest {
                team_id: org.id,
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list memberships")
            .into_inner();
        pages += 1;
        assert!(p.memberships.len() <= 2);
        users.extend(p.memberships.iter().map(|m| m.user_id));
        token = p.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(users, ids);
    assert_eq!(pages, 4);
    // Filters: accepted and role.
    let accepted = srv
        .memberships()
        .list_memberships(pb::ListMembershipsRequest {
            team_id: org.id,
            accepted: Some(true),
            ..Default::default()
        })
        .await
        .expect("accepted filter")
        .into_inner();
    assert_eq!(accepted.memberships.len(), 4);
    assert!(accepted.memberships.iter().all(|m| m.accepted));
    let owners = srv
        .memberships()
        .list_memberships(pb::ListMembershipsRequest {
            team_id: org.id,
            role: MembershipRole::Owner as i32,
            ..Default::default()
        })
        .await
        .expect("role filter")
        .into_inner();
    assert_eq!(owners.memberships.len(), 1);
    assert_eq!(owners.memberships[0].user_id, ids[0]);
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Events

/// The one event a write recorded after `seq`.
async fn one_event(srv: &TestServer, seq: i64, kind: &str) -> pb::Event {
    let events = events_after(srv, seq).await;
    assert_eq!(events.len(), 1, "exactly one event for {kind}: {events:?}");
    let e = events.into_iter().next().expect("one event");
    assert_eq!(e.kind, kind);
    assert!(e.sequence > seq, "sequences increase");
    assert!(e.occurred_at.is_some());
    assert_eq!(e.actor_key_id, "key_bootstrap", "the admin key wrote it");
    e
}

fn shape(e: &pb::Event) -> (bool, bool) {
    (e.before.is_some(), e.after.is_some())
}

fn field<'a>(s: &'a Option<prost_types::Struct>, name: &str) -> Option<&'a prost_types::Value> {
    s.as_ref().and_then(|s| s.fields.get(name))
}

async fn every_write_records_one_event(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let mut dir = srv.directory();
    let mut mem = srv.memberships();

    let seq = last_sequence(&srv).await;
    let ada = create_user(&srv, "ada@events.test").await;
    let e = one_event(&srv, seq, "user.created").await;
    assert_eq!(shape(&e), (false, true));
    assert_eq!(e.user_id, Some(ada.id));

    let seq = e.sequence;
    dir.update_user(pb::UpdateUserRequest {
        user_id: ada.id,
        name: Some("Ada".into()),
        ..Default::default()
    })
    .await
    .expect("update user");
    let e = one_event(&srv, seq, "user.updated").await;
    assert_eq!(shape(&e), (true, true));
    assert_ne!(field(&e.before, "name"), field(&e.after, "name"));

    let seq = e.sequence;
    let org = create_org(&srv, "events").await;
    let e = one_event(&srv, seq, "organization.created").await;
    assert_eq!(shape(&e), (false, true));
    assert_eq!(e.organization_id, Some(org.id));

    let seq = e.sequence;
    dir.update_organization(pb::UpdateOrganizationRequest {
        organization_id: org.id,
        name: Some("Events Inc".into()),
        ..Default::default()
    })
    .await
    .expect("update org");
    let e = one_event(&srv, seq, "organization.updated").await;
    assert_eq!(shape(&e), (true, true));

    let seq = e.sequence;
    let team = create_team(&srv, org.id, "eng").await;
    let e = one_event(&srv, seq, "team.created").await;
    assert_eq!(shape(&e), (false, true));
    assert_eq!(
        (e.organization_id, e.team_id),
        (Some(org.id), Some(team.id))
    );

    let seq = e.sequence;
    dir.update_team(pb::UpdateTeamRequest {
        team_id: team.id,
        name: Some("Engineering".into()),
        ..Default::default()
    })
    .await
    .expect("update team");
    let e = one_event(&srv, seq, "team.updated").await;
    assert_eq!(shape(&e), (true, true));
    assert_eq!(e.team_id, Some(team.id));

    let seq = e.sequence;
    let owner = add_member(&srv, org.id, ada.id, MembershipRole::Owner).await;
    let e = one_event(&srv, seq, "membership.created").await;
    assert_eq!(shape(&e), (false, true));
    assert_eq!(
        (e.organization_id, e.team_id, e.user_id, e.membership_id),
        (Some(org.id), Some(org.id), Some(ada.id), Some(owner.id))
    );
    assert_eq!(e.role_id.as_deref(), Some("owner_role"));

    let seq = e.sequence;
    let team_m = add_member(&srv, team.id, ada.id, MembershipRole::Member).await;
    let e = one_event(&srv, seq, "membership.created").await;
    assert_eq!(
        (e.team_id, e.organization_id),
        (Some(team.id), Some(org.id))
    );

    let seq = e.sequence;
    mem.update_membership(pb::UpdateMembershipRequest {
        role: Some(MembershipRole::Admin as i32),
        ..update(team_m.id)
    })
    .await
    .expect("update membership");
    let e = one_event(&srv, seq, "membership.updated").await;
    assert_eq!(shape(&e), (true, true));
    assert_eq!(e.membership_id, Some(team_m.id));
    assert_ne!(field(&e.before, "roleId"), field(&e.after, "roleId"));

    // A failed write records nothing.
    let seq = e.sequence;
    let _ = expect_err(
        mem.update_membership(pb::UpdateMembershipRequest {
            role: Some(MembershipRole::Member as i32),
            ..update(owner.id)
        })
        .await,
    );
    assert!(events_after(&srv, seq).await.is_empty());

    mem.delete_membership(delete(team_m.id))
        .await
        .expect("delete membership");
    let e = one_event(&srv, seq, "membership.deleted").await;
    assert_eq!(shape(&e), (true, false));
    assert_eq!(e.membership_id, Some(team_m.id));

    let seq = e.sequence;
    dir.delete_team(pb::DeleteTeamRequest {
        team_id: team.id,
        organization_id: org.id,
        etag: None,
        ..Default::default()
    })
    .await
    .expect("delete team");
    let e = one_event(&srv, seq, "team.deleted").await;
    assert_eq!(shape(&e), (true, false));

    let seq = e.sequence;
    let bob = create_user(&srv, "bob@events.test").await;
    let seq2 = one_event(&srv, seq, "user.created").await.sequence;
    dir.delete_user(pb::DeleteUserRequest {
        user_id: bob.id,
        etag: None,
        ..Default::default()
    })
    .await
    .expect("delete user");
    let e = one_event(&srv, seq2, "user.deleted").await;
    assert_eq!(shape(&e), (true, false));
    assert_eq!(e.user_id, Some(bob.id));

    // Filters.
    let other = create_org(&srv, "other").await;
    let other_team = create_team(&srv, other.id, "ops").await;
    let by_team = list_events(
        &srv,
        pb::ListEventsRequest {
            team_id: Some(team.id),
            ..Default::default()
        },
    )
    .await;
    let kinds: Vec<&str> = by_team.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "team.created",
            "team.updated",
            "membership.created",
            "membership.updated",
            "membership.deleted",
            "team.deleted"
        ]
    );
    let by_org = list_events(
        &srv,
        pb::ListEventsRequest {
            team_id: Some(org.id),
            ..Default::default()
        },
    )
    .await;
    assert!(
        by_org
            .iter()
            .all(|e| e.organization_id == Some(org.id) || e.team_id == Some(org.id)),
        "{by_org:?}"
    );
    assert!(by_org.iter().all(|e| e.team_id != Some(other_team.id)));
    assert_eq!(by_org.len(), 9, "org: 2 + team: 3 + memberships: 4");
    let created = list_events(
        &srv,
        pb::ListEventsRequest {
            kind: "membership.created".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(created.len(), 2);
    assert!(created.iter().all(|e| e.kind == "membership.created"));
    let both = list_events(
        &srv,
        pb::ListEventsRequest {
            kind: "team.created".into(),
            team_id: Some(other.id),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(both.len(), 1);
    assert_eq!(both[0].team_id, Some(other_team.id));

    // Sequences strictly increase over the whole log; pages of 2 see every event once.
    let all = all_events(&srv).await;
    assert!(all.windows(2).all(|w| w[0].sequence < w[1].sequence));
    let mut token = String::new();
    let mut paged = Vec::new();
    loop {
        let p = srv
            .events()
            .list_events(pb::ListEventsRequest {
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("page of events")
            .into_inner();
        paged.extend(p.events.iter().map(|e| e.sequence));
        token = p.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(paged, all.iter().map(|e| e.sequence).collect::<Vec<_>>());

    // DeleteOrganization: one event for the whole organization.
    let seq = all.last().map_or(0, |e| e.sequence);
    dir.delete_organization(pb::DeleteOrganizationRequest {
        organization_id: other.id,
        etag: None,
        ..Default::default()
    })
    .await
    .expect("delete org");
    let e = one_event(&srv, seq, "organization.deleted").await;
    assert_eq!(shape(&e), (true, false));
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// API keys

async fn api_key_scopes_are_enforced(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "acme").await;
    let ada = create_user(&srv, "ada@acme.test").await;
    let bob = create_user(&srv, "bob@acme.test").await;
    add_member(&srv, org.id, ada.id, MembershipRole::Owner).await;
    let m = add_member(&srv, org.id, bob.id, MembershipRole::Member).await;

    let key = scoped_key(&srv, &["memberships.read"]).await;
    let mut reader = srv.client_with_key(&key, MembershipServiceClient::new);
    let got = reader
        .get_membership(pb::GetMembershipRequest {
            member: Some(GMember::MembershipId(m.id)),
            ..Default::default()
        })
        .await
        .expect("memberships.read may read")
        .into_inner();
    assert_eq!(got.id, m.id);
    reader
        .list_memberships(pb::ListMembershipsRequest {
            team_id: org.id,
            ..Default::default()
        })
        .await
        .expect("memberships.read may list");

    let events_before = event_count(&srv).await;
    let status = expect_err(
        reader
            .update_membership(pb::UpdateMembershipRequest {
                role: Some(MembershipRole::Admin as i32),
                ..update(m.id)
            })
            .await,
    );
    assert_code(
        &status,
        Code::PermissionDenied,
        None,
        "update with memberships.read",
    );
    let status = expect_err(reader.delete_membership(delete(m.id)).await);
    assert_code(
        &status,
        Code::PermissionDenied,
        None,
        "delete with memberships.read",
    );
    let status = expect_err(
        srv.client_with_key(&key, DirectoryServiceClient::new)
            .get_user(pb::GetUserRequest {
                user_id: ada.id,
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::PermissionDenied,
        None,
        "directory with memberships.read",
    );
    assert_eq!(event_count(&srv).await, events_before);
    assert_eq!(get_membership(&srv, m.id).await.etag, m.etag);

    // A writer key writes; the key id is recorded as the actor.
    let writer_key = scoped_key(&srv, &["memberships.write"]).await;
    srv.client_with_key(&writer_key, MembershipServiceClient::new)
        .update_membership(pb::UpdateMembershipRequest {
            role: Some(MembershipRole::Admin as i32),
            ..update(m.id)
        })
        .await
        .expect("memberships.write may write");
    let last = all_events(&srv).await.pop().expect("an event");
    assert_eq!(last.kind, "membership.updated");
    assert!(
        last.actor_key_id.starts_with("key_"),
        "{}",
        last.actor_key_id
    );
    assert_ne!(last.actor_key_id, "key_bootstrap");
    assert!(
        writer_key.contains(last.actor_key_id.trim_start_matches("key_")),
        "the event names the writer key"
    );

    // Unauthenticated callers: unknown keys and none.
    let status = expect_err(
        srv.anonymous(MembershipServiceClient::new)
            .get_membership(pb::GetMembershipRequest {
                member: Some(GMember::MembershipId(m.id)),
                ..Default::default()
            })
            .await,
    );
    assert_code(
        &status,
        Code::Unauthenticated,
        Some("API_KEY_UNKNOWN"),
        "no key",
    );

    // Health needs no key.
    let mut health = tonic_health::pb::health_client::HealthClient::new(srv.channel());
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health without a key")
        .into_inner();
    assert_eq!(
        answer.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "membership.v1.MembershipService".into(),
        })
        .await
        .expect("health of the membership service")
        .into_inner();
    assert_eq!(
        answer.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    srv.stop().await;
}
