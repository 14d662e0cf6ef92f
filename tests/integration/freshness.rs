//! `at_least_as_fresh` right after a write through another server instance: the answer must
//! reflect the write, every time.

use crate::common::*;
use pb::consistency::Requirement;
use pb::{get_membership_request, update_membership_request};

fn at_least(revision: i64) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(Requirement::AtLeastAsFresh(revision)),
    })
}

/// Tries per engine, each a write on A and a read on B: any one of them fails if B answers from a
/// cache that A's write did not reach. Few enough to take seconds in a debug build, so that the
/// deadline only ever catches a hang; the heavy loop (10,000 tries in a release build) is
/// `membership-bench --fresh-tries`.
const TRIES: usize = 400;

async fn reads_on_another_instance_reflect_the_write(engine: Engine) {
    let Some(a) = TestServer::start(engine).await else {
        return;
    };
    let b = a.second_instance().await;
    let org = create_org(&a, "fresh").await;
    let owner = create_user(&a, "fresh0@example.com").await;
    let user = create_user(&a, "fresh1@example.com").await;
    add_member(&a, org.id, owner.id, pb::MembershipRole::Owner).await;
    let member = add_member(&a, org.id, user.id, pb::MembershipRole::Member).await;
    let mut writer = a.memberships();
    let mut reader = b.memberships();
    let mut checker = b.client(pb::access_service_client::AccessServiceClient::new);
    // Warm B's cache with the old state, so that a stale answer is possible.
    reader
        .get_membership(pb::GetMembershipRequest {
            member: Some(get_membership_request::Member::MembershipId(member.id)),
            ..Default::default()
        })
        .await
        .expect("warm get");
    for i in 0..TRIES {
        let admin = i % 2 == 0;
        let written = writer
            .update_membership(pb::UpdateMembershipRequest {
                member: Some(update_membership_request::Member::MembershipId(member.id)),
                role_id: Some(if admin { "admin_role" } else { "member_role" }.into()),
                disable_impersonation: Some(admin),
                ..Default::default()
            })
            .await
            .expect("update")
            .into_inner();
        assert!(written.revision > 0, "a write carries its revision");
        if i % 2 == 0 {
            let read = reader
                .get_membership(pb::GetMembershipRequest {
                    member: Some(get_membership_request::Member::MembershipId(member.id)),
                    consistency: at_least(written.revision),
                    ..Default::default()
                })
                .await
                .expect("get")
                .into_inner();
            assert_eq!(
                (read.disable_impersonation, read.role_id.as_str()),
                (admin, "admin_role"),
                "try {i}: GetMembership on B is older than revision {}",
                written.revision
            );
            assert!(
                read.revision >= written.revision,
                "try {i}: revision {}",
                read.revision
            );
        } else {
            let check = checker
                .check_permission(pb::CheckPermissionRequest {
                    user_id: member.user_id,
                    team_id: org.id,
                    permission: "team.update".into(),
                    consistency: at_least(written.revision),
                })
                .await
                .expect("check")
                .into_inner();
            assert!(
                !check.allowed,
                "try {i}: CheckPermission on B still sees admin_role after revision {}",
                written.revision
            );
            assert!(
                check.revision >= written.revision,
                "try {i}: revision {}",
                check.revision
            );
        }
    }
    b.stop().await;
    a.stop().await;
}

engine_tests!(reads_on_another_instance_reflect_the_write);
