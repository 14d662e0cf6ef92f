//! The actor policy against a hostile caller, through the real server on every engine: each
//! test is one way an end user (`x-actor-user-id`, acting as themselves) got past the old checks.
//! Every refusal names the missing `permission` or the `rule`, and changes nothing: the whole
//! directory reads back the same and no event was recorded.

use std::collections::HashMap;

use crate::common::{
    AuthChannel, Engine, TestServer, add_member, add_pending_member, all_events, create_org,
    create_role, create_team, create_user, error_info, expect_err, get_membership_of,
    last_sequence, new_membership, new_role, new_user, pb, to_struct,
};
use pb::attribute_service_client::AttributeServiceClient;
use pb::directory_service_client::DirectoryServiceClient;
use pb::membership_service_client::MembershipServiceClient;
use pb::role_service_client::RoleServiceClient;
use pb::{AttributeType, AutoRecordCalls, MembershipRole};
use tonic::{Code, Status};

engine_tests!(
    delete_role_cannot_reassign_its_holders_to_owner,
    members_cannot_remove_owners_or_admins,
    nobody_creates_their_own_membership,
    directory_writes_check_the_actor,
    create_organization_makes_the_actor_its_owner,
    membership_writes_check_the_actor,
    attribute_writes_check_the_actor,
    an_unchanged_update_is_checked_like_a_change,
    removing_an_organization_member_keeps_the_owner_rule_in_sub_teams,
);

// ---------------------------------------------------------------------------------------------
// Acting for an end user

fn directory_as(srv: &TestServer, actor: i64) -> DirectoryServiceClient<AuthChannel> {
    srv.client_with(srv.auth().actor(actor), DirectoryServiceClient::new)
}

fn memberships_as(srv: &TestServer, actor: i64) -> MembershipServiceClient<AuthChannel> {
    srv.client_with(srv.auth().actor(actor), MembershipServiceClient::new)
}

fn roles_as(srv: &TestServer, actor: i64) -> RoleServiceClient<AuthChannel> {
    srv.client_with(srv.auth().actor(actor), RoleServiceClient::new)
}

fn attributes_as(srv: &TestServer, actor: i64) -> AttributeServiceClient<AuthChannel> {
    srv.client_with(srv.auth().actor(actor), AttributeServiceClient::new)
}

/// PERMISSION_DENIED, ACTOR_LACKS_PERMISSION, with exactly this ErrorInfo metadata.
#[track_caller]
fn assert_denied<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, Status>,
    metadata: &[(&str, &str)],
) -> Status {
    let status = expect_err(result);
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let info = error_info(&status).unwrap_or_else(|| panic!("ErrorInfo in {status:?}"));
    assert_eq!(info.reason, "ACTOR_LACKS_PERMISSION", "{status:?}");
    assert_eq!(info.domain, "membership.v1");
    let want: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(info.metadata, want, "{status:?}");
    status
}

/// Denied for lacking the catalog `permission`.
#[track_caller]
fn lacks<T: std::fmt::Debug>(result: Result<tonic::Response<T>, Status>, permission: &str) {
    assert_denied(result, &[("permission", permission)]);
}

/// Denied by an actor rule.
#[track_caller]
fn breaks<T: std::fmt::Debug>(result: Result<tonic::Response<T>, Status>, rule: &str) {
    assert_denied(result, &[("rule", rule)]);
}

// ---------------------------------------------------------------------------------------------
// The world the tests start from, and the whole of it read back

/// `acme` (two owners, an admin, two members, a sub-team `sales`) and `globex` (two owners, an
/// admin), where acme's member has no membership at all.
struct World {
    acme: i64,
    sales: i64,
    owner: i64,
    owner2: i64,
    admin: i64,
    member: i64,
    target: i64,
    globex: i64,
    globex_owner: i64,
    globex_admin: i64,
}

async fn world(srv: &TestServer) -> World {
    let acme = create_org(srv, "acme").await.id;
    let sales = create_team(srv, acme, "sales").await.id;
    let mut users = Vec::new();
    for (name, role) in [
        ("owner", "owner"),
        ("owner2", "owner"),
        ("admin", "admin"),
        ("member", "member"),
        ("target", "member"),
    ] {
        let u = create_user(srv, &format!("{name}@acme.test")).await.id;
        add_member(srv, acme, u, role).await;
        users.push(u);
    }
    let globex = create_org(srv, "globex").await.id;
    let mut globex_users = Vec::new();
    for (name, role) in [("owner", "owner"), ("owner2", "owner"), ("admin", "admin")] {
        let u = create_user(srv, &format!("{name}@globex.test")).await.id;
        add_member(srv, globex, u, role).await;
        globex_users.push(u);
    }
    World {
        acme,
        sales,
        owner: users[0],
        owner2: users[1],
        admin: users[2],
        member: users[3],
        target: users[4],
        globex,
        globex_owner: globex_users[0],
        globex_admin: globex_users[2],
    }
}

/// Everything the service holds, as its reads show it (write revisions zeroed), and the event
/// log's last sequence.
#[derive(Debug, PartialEq)]
struct State {
    users: Vec<pb::User>,
    organizations: Vec<pb::Organization>,
    teams: Vec<pb::Team>,
    memberships: Vec<pb::Membership>,
    roles: Vec<pb::Role>,
    attributes: Vec<pb::Attribute>,
    last_event: i64,
}

const ALL: i32 = 1000;

impl State {
    async fn read(srv: &TestServer) -> State {
        let mut directory = srv.directory();
        let users = directory
            .list_users(pb::ListUsersRequest {
                page_size: ALL,
                ..Default::default()
            })
            .await
            .expect("list users")
            .into_inner()
            .users;
        let organizations = directory
            .list_organizations(pb::ListOrganizationsRequest {
                page_size: ALL,
                ..Default::default()
            })
            .await
            .expect("list organizations")
            .into_inner()
            .organizations;
        let mut state = State {
            users: users
                .into_iter()
                .map(|u| pb::User { revision: 0, ..u })
                .collect(),
            organizations: Vec::new(),
            teams: Vec::new(),
            memberships: Vec::new(),
            roles: Vec::new(),
            attributes: Vec::new(),
            last_event: last_sequence(srv).await,
        };
        for organization in organizations {
            let teams = directory
                .list_teams(pb::ListTeamsRequest {
                    organization_id: organization.id,
                    page_size: ALL,
                    ..Default::default()
                })
                .await
                .expect("list teams")
                .into_inner()
                .teams;
            let mut team_ids = vec![organization.id];
            team_ids.extend(teams.iter().map(|t| t.id));
            for team_id in team_ids {
                state.memberships.extend(
                    srv.memberships()
                        .list_memberships(pb::ListMembershipsRequest {
                            team_id,
                            page_size: ALL,
                            ..Default::default()
                        })
                        .await
                        .expect("list memberships")
                        .into_inner()
                        .memberships
                        .into_iter()
                        .map(|m| pb::Membership { revision: 0, ..m }),
                );
                state.roles.extend(
                    srv.roles()
                        .list_roles(pb::ListRolesRequest {
                            team_id,
                            page_size: ALL,
                            ..Default::default()
                        })
                        .await
                        .expect("list roles")
                        .into_inner()
                        .roles
                        .into_iter()
                        .map(|r| pb::Role { revision: 0, ..r }),
                );
            }
            state.attributes.extend(
                srv.attributes()
                    .list_attributes(pb::ListAttributesRequest {
                        organization_id: organization.id,
                        page_size: ALL,
                        ..Default::default()
                    })
                    .await
                    .expect("list attributes")
                    .into_inner()
                    .attributes
                    .into_iter()
                    .map(|a| pb::Attribute { revision: 0, ..a }),
            );
            state
                .teams
                .extend(teams.into_iter().map(|t| pb::Team { revision: 0, ..t }));
            state.organizations.push(pb::Organization {
                revision: 0,
                ..organization
            });
        }
        state
    }

    /// Fails unless the service reads back exactly as `self`.
    async fn assert_unchanged(&self, srv: &TestServer, what: &str) {
        let now = State::read(srv).await;
        assert_eq!(
            now.last_event, self.last_event,
            "{what}: a refused write recorded no event"
        );
        assert_eq!(&now, self, "{what}: a refused write changed nothing");
    }
}

/// An UpdateMembership address by user (with the request's `team_id`).
fn user(user_id: i64) -> Option<pb::update_membership_request::Member> {
    Some(pb::update_membership_request::Member::UserId(user_id))
}

fn delete_of(team_id: i64, user_id: i64) -> pb::DeleteMembershipRequest {
    pb::DeleteMembershipRequest {
        team_id,
        member: Some(pb::delete_membership_request::Member::UserId(user_id)),
        ..Default::default()
    }
}

fn deactivate(team_id: i64, user_id: i64) -> pb::UpdateMembershipRequest {
    pb::UpdateMembershipRequest {
        team_id,
        member: user(user_id),
        accepted: Some(false),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

/// An ADMIN gave themselves a custom role holding `role.delete`, then deleted it reassigning its
/// holders (themselves) to `owner_role`, and so held owner_role. Granting owner_role this way is
/// granting OWNER.
async fn delete_role_cannot_reassign_its_holders_to_owner(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let w = world(&srv).await;
    let mut roles = roles_as(&srv, w.admin);
    let deleter = roles
        .create_role(new_role(w.acme, "Deleter", &["role.delete"]))
        .await
        .expect("an ADMIN creates a role within its permissions")
        .into_inner();
    let own = memberships_as(&srv, w.admin)
        .update_membership(pb::UpdateMembershipRequest {
            team_id: w.acme,
            member: user(w.admin),
            role_id: Some(deleter.id.clone()),
            ..Default::default()
        })
        .await
        .expect("an ADMIN lowers their own role to the custom one")
        .into_inner();
    assert_eq!(own.role_id, deleter.id);
    assert_eq!(own.role(), MembershipRole::Admin);

    let before = State::read(&srv).await;
    for heir in ["owner_role", "owner", "OWNER"] {
        breaks(
            roles
                .delete_role(pb::DeleteRoleRequest {
                    team_id: w.acme,
                    role_id: deleter.id.clone(),
                    reassign_role_id: heir.into(),
                    ..Default::default()
                })
                .await,
            "OWNER_ONLY",
        );
    }
    before
        .assert_unchanged(&srv, "DeleteRole to owner_role")
        .await;
    assert_eq!(
        get_membership_of(&srv, w.acme, w.admin).await.role_id,
        deleter.id,
        "the ADMIN still holds the custom role, not owner_role"
    );

    // An OWNER may reassign to owner_role.
    let deleted = roles_as(&srv, w.owner)
        .delete_role(pb::DeleteRoleRequest {
            team_id: w.acme,
            role_id: deleter.id.clone(),
            reassign_role_id: "owner_role".into(),
            ..Default::default()
        })
        .await
        .expect("an OWNER reassigns to owner_role")
        .into_inner();
    assert_eq!(deleted.reassigned_memberships, 1);
    srv.stop().await;
}

/// A MEMBER deactivated or deleted an OWNER's or an ADMIN's membership, in their own
/// organization and in one they do not belong to.
async fn members_cannot_remove_owners_or_admins(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let w = world(&srv).await;
    let before = State::read(&srv).await;
    let mut member = memberships_as(&srv, w.member);
    for (org, victim) in [
        (w.acme, w.owner2),
        (w.acme, w.admin),
        (w.globex, w.globex_owner),
        (w.globex, w.globex_admin),
    ] {
        lacks(
            member.update_membership(deactivate(org, victim)).await,
            "organization.remove",
        );
        lacks(
            member.delete_membership(delete_of(org, victim)).await,
            "organization.remove",
        );
    }
    before
        .assert_unchanged(&srv, "a MEMBER removing an OWNER or ADMIN")
        .await;

    // An ADMIN removes an ADMIN but not an OWNER; an OWNER removes an OWNER.
    let mut admin = memberships_as(&srv, w.admin);
    breaks(
        admin.update_membership(deactivate(w.acme, w.owner2)).await,
        "OWNER_ONLY",
    );
    breaks(
        admin.delete_membership(delete_of(w.acme, w.owner2)).await,
        "OWNER_ONLY",
    );
    before
        .assert_unchanged(&srv, "an ADMIN removing an OWNER")
        .await;
    memberships_as(&srv, w.owner)
        .delete_membership(delete_of(w.acme, w.owner2))
        .await
        .expect("an OWNER removes another OWNER");
    srv.stop().await;
}

/// A member created their own sub-team membership as ADMIN. Nobody creates their own
/// membership, whatever its role.
async fn nobody_creates_their_own_membership(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let w = world(&srv).await;
    let before = State::read(&srv).await;
    let own = |role: MembershipRole, accepted: bool| pb::CreateMembershipRequest {
        team_id: w.sales,
        user_id: w.member,
        role: role as i32,
        accepted,
        ..Default::default()
    };
    let mut member = memberships_as(&srv, w.member);
    for role in [MembershipRole::Admin, MembershipRole::Member] {
        for accepted in [true, false] {
            breaks(
                member.create_membership(own(role, accepted)).await,
                "NO_SELF_JOIN",
            );
        }
    }
    // Not even an OWNER joins a sub-team by themselves.
    breaks(
        memberships_as(&srv, w.owner)
            .create_membership(pb::CreateMembershipRequest {
                user_id: w.owner,
                ..own(MembershipRole::Member, false)
            })
            .await,
        "NO_SELF_JOIN",
    );
    before.assert_unchanged(&srv, "joining by oneself").await;
    let status = expect_err(
        srv.memberships()
            .get_membership(pb::GetMembershipRequest {
                team_id: w.sales,
                member: Some(pb::get_membership_request::Member::UserId(w.member)),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    srv.stop().await;
}

/// Users, organizations and sub-teams were written by any actor: a MEMBER changed the
/// organization's auto-accept domain and the owner's email, and deleted another organization.
async fn directory_writes_check_the_actor(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let w = world(&srv).await;
    let before = State::read(&srv).await;
    let mut member = directory_as(&srv, w.member);

    breaks(
        member.create_user(new_user("sneaky@acme.test")).await,
        "NOT_WITH_ACTOR",
    );
    breaks(
        member
            .update_user(pb::UpdateUserRequest {
                user_id: w.owner,
                email: Some("attacker@evil.com".into()),
                ..Default::default()
            })
            .await,
        "SELF_ONLY",
    );
    breaks(
        member
            .delete_user(pb::DeleteUserRequest {
                user_id: w.target,
                ..Default::default()
            })
            .await,
        "SELF_ONLY",
    );
    lacks(
        member
            .update_organization(pb::UpdateOrganizationRequest {
                organization_id: w.acme,
                auto_accept_email_domain: Some("evil.com".into()),
                ..Default::default()
            })
            .await,
        "organization.update",
    );
    // The membership limit is billing: an ADMIN (no manageBilling) may not set it.
    lacks(
        directory_as(&srv, w.admin)
            .update_organization(pb::UpdateOrganizationRequest {
                organization_id: w.acme,
                max_allowed_memberships: Some(1),
                ..Default::default()
            })
            .await,
        "organization.manageBilling",
    );
    for (org, actor) in [(w.globex, w.member), (w.acme, w.member), (w.acme, w.admin)] {
        breaks(
            directory_as(&srv, actor)
                .delete_organization(pb::DeleteOrganizationRequest {
                    organization_id: org,
                    ..Default::default()
                })
                .await,
            "OWNER_ONLY",
        );
    }
    lacks(
        member
            .create_team(pb::CreateTeamRequest {
                organization_id: w.acme,
                name: "Shadow".into(),
                slug: "shadow".into(),
                ..Default::default()
            })
            .await,
        "team.create",
    );
    lacks(
        member
            .update_team(pb::UpdateTeamRequest {
                team_id: w.sales,
                name: Some("Renamed".into()),
                ..Default::default()
            })
            .await,
        "team.update",
    );
    lacks(
        member
            .delete_team(pb::DeleteTeamRequest {
                team_id: w.sales,
                ..Default::default()
            })
            .await,
        "team.delete",
    );
    before.assert_unchanged(&srv, "directory writes").await;

    // What the actor may do: change and delete themselves.
    let renamed = member
        .update_user(pb::UpdateUserRequest {
            user_id: w.member,
            name: Some("Me".into()),
            ..Default::default()
        })
        .await
        .expect("a user changes themselves")
        .into_inner();
    assert_eq!(renamed.name, "Me");
    srv.stop().await;
}

/// An end user who creates an organization becomes its first accepted OWNER in the same
/// transaction; an actor naming no user creates nothing.
async fn create_organization_makes_the_actor_its_owner(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let w = world(&srv).await;
    let start = last_sequence(&srv).await;
    let created = directory_as(&srv, w.member)
        .create_organization(pb::CreateOrganizationRequest {
            name: "Mine".into(),
            slug: "mine".into(),
            ..Default::default()
        })
        .await
        .expect("anybody creates an organization")
        .into_inner();
    assert_eq!(created.members_count, 1);
    let owner = get_membership_of(&srv, created.id, w.member).await;
    assert!(owner.accepted);
    assert_eq!(owner.role(), MembershipRole::Owner);
    assert_eq!(owner.role_id, "owner_role");
    let events: Vec<pb::Event> = all_events(&srv)
        .await
        .into_iter()
        .filter(|e| e.sequence > start)
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["organization.created", "membership.created"]);
    assert!(events.iter().all(|e| e.actor_user_id == Some(w.member)));
    assert_eq!(events[1].membership_id, Some(owner.id));
    assert_eq!(
        created.revision, events[1].sequence,
        "the response's revision covers the owner's membership"
    );
    // As its OWNER, the creator runs it.
    directory_as(&srv, w.member)
        .update_organization(pb::UpdateOrganizationRequest {
            organization_id: created.id,
            max_allowed_memberships: Some(10),
            ..Default::default()
        })
        .await
        .expect("the creator sets the organization's limit");

    let before = State::read(&srv).await;
    let status = expect_err(
        directory_as(&srv, 999_999)
            .create_organization(pb::CreateOrganizationRequest {
                name: "Nobody's".into(),
                slug: "nobodys".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    before
        .assert_unchanged(&srv, "an actor naming no user")
        .await;
    srv.stop().await;
}

/// CreateMembership never checked invite permissions, and UpdateMembership ignored the actor for
/// `accepted`, metadata, `disable_impersonation` and `auto_record_calls`; DeleteMembership
/// ignored it altogether.
async fn membership_writes_check_the_actor(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let w = world(&srv).await;
    let newcomer = create_user(&srv, "newcomer@acme.test").await.id;
    let invited = create_user(&srv, "invited@acme.test").await.id;
    add_pending_member(&srv, w.acme, invited, "member").await;
    let before = State::read(&srv).await;
    let mut member = memberships_as(&srv, w.member);

    lacks(
        member
            .create_membership(new_membership(w.acme, newcomer, "member", false))
            .await,
        "organization.invite",
    );
    // A membership made for somebody else waits for them to accept it.
    breaks(
        memberships_as(&srv, w.admin)
            .create_membership(new_membership(w.acme, newcomer, "member", true))
            .await,
        "SELF_ONLY",
    );
    breaks(
        memberships_as(&srv, w.owner)
            .update_membership(pb::UpdateMembershipRequest {
                team_id: w.acme,
                member: user(invited),
                accepted: Some(true),
                ..Default::default()
            })
            .await,
        "SELF_ONLY",
    );
    let settings = [
        pb::UpdateMembershipRequest {
            public_metadata: Some(to_struct(serde_json::json!({"badge": "gold"}))),
            ..Default::default()
        },
        pb::UpdateMembershipRequest {
            private_metadata: Some(to_struct(serde_json::json!({"salary": 1}))),
            ..Default::default()
        },
        pb::UpdateMembershipRequest {
            disable_impersonation: Some(true),
            ..Default::default()
        },
        pb::UpdateMembershipRequest {
            auto_record_calls: Some(AutoRecordCalls::Enabled as i32),
            ..Default::default()
        },
    ];
    for setting in settings {
        lacks(
            member
                .update_membership(pb::UpdateMembershipRequest {
                    team_id: w.acme,
                    member: user(w.target),
                    ..setting
                })
                .await,
            "organization.changeMemberRole",
        );
    }
    lacks(
        member.delete_membership(delete_of(w.acme, w.target)).await,
        "organization.remove",
    );
    before.assert_unchanged(&srv, "membership writes").await;

    // The member's own settings are theirs; accepting is the invited user's.
    let own = member
        .update_membership(pb::UpdateMembershipRequest {
            team_id: w.acme,
            member: user(w.member),
            disable_impersonation: Some(true),
            ..Default::default()
        })
        .await
        .expect("a member changes their own setting")
        .into_inner();
    assert!(own.disable_impersonation);
    let accepted = memberships_as(&srv, invited)
        .update_membership(pb::UpdateMembershipRequest {
            team_id: w.acme,
            member: user(invited),
            accepted: Some(true),
            ..Default::default()
        })
        .await
        .expect("the invited user accepts")
        .into_inner();
    assert!(accepted.accepted);
    srv.stop().await;
}

/// Attribute definitions and assignments were written by any actor.
async fn attribute_writes_check_the_actor(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let w = world(&srv).await;
    let level = srv
        .attributes()
        .create_attribute(pb::CreateAttributeRequest {
            organization_id: w.acme,
            name: "Level".into(),
            r#type: AttributeType::SingleSelect as i32,
            options: vec!["Junior".into(), "Senior".into()],
            ..Default::default()
        })
        .await
        .expect("create attribute")
        .into_inner();
    let assign = |option: usize| pb::AssignAttributeRequest {
        organization_id: w.acme,
        attribute_id: level.id.clone(),
        member: Some(pb::assign_attribute_request::Member::UserId(w.target)),
        value: Some(pb::assign_attribute_request::Value::OptionId(
            level.options[option].id.clone(),
        )),
    };
    srv.attributes()
        .assign_attribute(assign(0))
        .await
        .expect("assign the attribute");
    let before = State::read(&srv).await;
    let mut member = attributes_as(&srv, w.member);

    lacks(
        member
            .create_attribute(pb::CreateAttributeRequest {
                organization_id: w.acme,
                name: "Shadow".into(),
                r#type: AttributeType::Text as i32,
                ..Default::default()
            })
            .await,
        "organization.attributes.create",
    );
    lacks(
        member
            .add_attribute_option(pb::AddAttributeOptionRequest {
                organization_id: w.acme,
                attribute_id: level.id.clone(),
                value: "Principal".into(),
            })
            .await,
        "organization.attributes.update",
    );
    lacks(
        member
            .delete_attribute(pb::DeleteAttributeRequest {
                organization_id: w.acme,
                attribute_id: level.id.clone(),
            })
            .await,
        "organization.attributes.delete",
    );
    lacks(
        member.assign_attribute(assign(1)).await,
        "organization.attributes.editUsers",
    );
    lacks(
        member
            .unassign_attribute(pb::UnassignAttributeRequest {
                organization_id: w.acme,
                attribute_id: level.id.clone(),
                member: Some(pb::unassign_attribute_request::Member::UserId(w.target)),
            })
            .await,
        "organization.attributes.editUsers",
    );
    before.assert_unchanged(&srv, "attribute writes").await;
    srv.stop().await;
}

/// An update that changes nothing answered OK before the actor was checked, while the same
/// update as a real change was PERMISSION_DENIED: the answer told the caller the current value.
/// Now both get the same denial.
async fn an_unchanged_update_is_checked_like_a_change(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let w = world(&srv).await;
    let team_role = create_role(&srv, w.acme, "Booker", &["booking.read"]).await;
    let before = State::read(&srv).await;
    let mut member = memberships_as(&srv, w.member);
    let set_owner_role = |role_id: &str| pb::UpdateMembershipRequest {
        team_id: w.acme,
        member: user(w.owner),
        role_id: Some(role_id.into()),
        ..Default::default()
    };
    // The owner's role as it is, and as a change: the same answer.
    for role_id in ["owner", "owner_role", "member"] {
        lacks(
            member.update_membership(set_owner_role(role_id)).await,
            "organization.changeMemberRole",
        );
    }
    let unchanged = memberships_as(&srv, w.admin)
        .update_membership(set_owner_role("owner"))
        .await;
    breaks(unchanged, "OWNER_ONLY");
    // Every kind of write, with the values it already has.
    breaks(
        member
            .update_membership(pb::UpdateMembershipRequest {
                team_id: w.acme,
                member: user(w.target),
                accepted: Some(true),
                ..Default::default()
            })
            .await,
        "SELF_ONLY",
    );
    breaks(
        directory_as(&srv, w.member)
            .update_user(pb::UpdateUserRequest {
                user_id: w.owner,
                email: Some("owner@acme.test".into()),
                ..Default::default()
            })
            .await,
        "SELF_ONLY",
    );
    lacks(
        directory_as(&srv, w.member)
            .update_organization(pb::UpdateOrganizationRequest {
                organization_id: w.acme,
                name: Some("Org acme".into()),
                ..Default::default()
            })
            .await,
        "organization.update",
    );
    lacks(
        directory_as(&srv, w.admin)
            .update_organization(pb::UpdateOrganizationRequest {
                organization_id: w.acme,
                max_allowed_memberships: Some(0),
                ..Default::default()
            })
            .await,
        "organization.manageBilling",
    );
    lacks(
        directory_as(&srv, w.member)
            .update_team(pb::UpdateTeamRequest {
                team_id: w.sales,
                name: Some("Team sales".into()),
                ..Default::default()
            })
            .await,
        "team.update",
    );
    lacks(
        roles_as(&srv, w.member)
            .update_role(pb::UpdateRoleRequest {
                team_id: w.acme,
                role_id: team_role.id.clone(),
                name: Some(team_role.name.clone()),
                ..Default::default()
            })
            .await,
        "role.update",
    );
    before.assert_unchanged(&srv, "unchanged updates").await;
    srv.stop().await;
}

/// Deleting an organization membership also deletes the user's sub-team memberships: an ADMIN
/// removing a MEMBER of the organization who OWNS a sub-team would delete that OWNER membership,
/// so the owner rule applies to every cascaded membership too.
async fn removing_an_organization_member_keeps_the_owner_rule_in_sub_teams(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let w = world(&srv).await;
    add_member(&srv, w.sales, w.target, "owner").await;
    // A second sub-team OWNER, so that the last-owner rule is not what stops the removal.
    add_member(&srv, w.sales, w.member, "owner").await;
    let before = State::read(&srv).await;
    breaks(
        memberships_as(&srv, w.admin)
            .delete_membership(delete_of(w.acme, w.target))
            .await,
        "OWNER_ONLY",
    );
    before
        .assert_unchanged(&srv, "an ADMIN cascading into a sub-team OWNER membership")
        .await;
    memberships_as(&srv, w.owner)
        .delete_membership(delete_of(w.acme, w.target))
        .await
        .expect("an OWNER of the organization removes them, sub-teams included");
    let gone = expect_err(
        srv.memberships()
            .get_membership(pb::GetMembershipRequest {
                team_id: w.sales,
                member: Some(pb::get_membership_request::Member::UserId(w.target)),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(gone.code(), Code::NotFound);
    srv.stop().await;
}
