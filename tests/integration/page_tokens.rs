//! Page tokens name the list that handed them out: every list takes its own tokens and refuses
//! every other list's with INVALID_ARGUMENT on `page_token`, on every engine.

use crate::common::{Engine, TestServer, field_violations, pb};
use pb::MembershipRole;
use tonic::{Code, Status};

engine_tests!(a_page_token_pages_only_its_own_list);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Users,
    Organizations,
    Teams,
    Memberships,
    UserMemberships,
    Events,
    Roles,
    Attributes,
}

const LISTS: [List; 8] = [
    List::Users,
    List::Organizations,
    List::Teams,
    List::Memberships,
    List::UserMemberships,
    List::Events,
    List::Roles,
    List::Attributes,
];

/// What the lists page: an organization with two teams, two members (one also in a team) and
/// two attributes.
struct Fixture {
    organization: i64,
    user: i64,
}

/// One page of one item of `list` from `page_token`; the next page's token.
async fn next_token(
    srv: &TestServer,
    fx: &Fixture,
    list: List,
    page_token: &str,
) -> Result<String, Status> {
    let page_token = page_token.to_string();
    Ok(match list {
        List::Users => {
            srv.directory()
                .list_users(pb::ListUsersRequest {
                    page_size: 1,
                    page_token,
                    ..Default::default()
                })
                .await?
                .into_inner()
                .next_page_token
        }
        List::Organizations => {
            srv.directory()
                .list_organizations(pb::ListOrganizationsRequest {
                    page_size: 1,
                    page_token,
                })
                .await?
                .into_inner()
                .next_page_token
        }
        List::Teams => {
            srv.directory()
                .list_teams(pb::ListTeamsRequest {
                    organization_id: fx.organization,
                    page_size: 1,
                    page_token,
                })
                .await?
                .into_inner()
                .next_page_token
        }
        List::Memberships => {
            srv.memberships()
                .list_memberships(pb::ListMembershipsRequest {
                    team_id: fx.organization,
                    page_size: 1,
                    page_token,
                    ..Default::default()
                })
                .await?
                .into_inner()
                .next_page_token
        }
        List::UserMemberships => {
            srv.memberships()
                .list_user_memberships(pb::ListUserMembershipsRequest {
                    user_id: fx.user,
                    page_size: 1,
                    page_token,
                    ..Default::default()
                })
                .await?
                .into_inner()
                .next_page_token
        }
        List::Events => {
            srv.events()
                .list_events(pb::ListEventsRequest {
                    page_size: 1,
                    page_token,
                    ..Default::default()
                })
                .await?
                .into_inner()
                .next_page_token
        }
        List::Roles => {
            srv.roles()
                .list_roles(pb::ListRolesRequest {
                    team_id: fx.organization,
                    page_size: 1,
                    page_token,
                })
                .await?
                .into_inner()
                .next_page_token
        }
        List::Attributes => {
            srv.attributes()
                .list_attributes(pb::ListAttributesRequest {
                    organization_id: fx.organization,
                    page_size: 1,
                    page_token,
                })
                .await?
                .into_inner()
                .next_page_token
        }
    })
}

async fn fixture(srv: &TestServer) -> Fixture {
    let mut dir = srv.directory();
    let mut users = Vec::new();
    for email in ["ada@tokens.test", "bob@tokens.test"] {
        let user = dir
            .create_user(pb::CreateUserRequest {
                email: email.into(),
                name: email.into(),
                ..Default::default()
            })
            .await
            .expect("create user")
            .into_inner();
        users.push(user.id);
    }
    let mut organizations = Vec::new();
    for slug in ["tokens", "other-tokens"] {
        let org = dir
            .create_organization(pb::CreateOrganizationRequest {
                name: slug.into(),
                slug: slug.into(),
                ..Default::default()
            })
            .await
            .expect("create organization")
            .into_inner();
        organizations.push(org.id);
    }
    let organization = organizations[0];
    let mut teams = Vec::new();
    for slug in ["eng", "ops"] {
        let team = dir
            .create_team(pb::CreateTeamRequest {
                organization_id: organization,
                name: slug.into(),
                slug: slug.into(),
                ..Default::default()
            })
            .await
            .expect("create team")
            .into_inner();
        teams.push(team.id);
    }
    for (team_id, user_id) in [
        (organization, users[0]),
        (organization, users[1]),
        (teams[0], users[0]),
    ] {
        srv.memberships()
            .create_membership(pb::CreateMembershipRequest {
                team_id,
                user_id,
                role: MembershipRole::Owner as i32,
                accepted: true,
                ..Default::default()
            })
            .await
            .expect("create membership");
    }
    for name in ["Location", "Floor"] {
        srv.attributes()
            .create_attribute(pb::CreateAttributeRequest {
                organization_id: organization,
                name: name.into(),
                r#type: pb::AttributeType::Text as i32,
                ..Default::default()
            })
            .await
            .expect("create attribute");
    }
    Fixture {
        organization,
        user: users[0],
    }
}

async fn a_page_token_pages_only_its_own_list(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let fx = fixture(&srv).await;
    for issued in LISTS {
        let token = next_token(&srv, &fx, issued, "")
            .await
            .unwrap_or_else(|s| panic!("first page of {issued:?}: {s:?}"));
        assert!(!token.is_empty(), "{issued:?} has a second page");
        for used in LISTS {
            let result = next_token(&srv, &fx, used, &token).await;
            if used == issued {
                result.unwrap_or_else(|s| panic!("{issued:?} takes its own token: {s:?}"));
                continue;
            }
            let status = result.expect_err(&format!("a {issued:?} token in {used:?}"));
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "a {issued:?} token in {used:?}: {status:?}"
            );
            assert_eq!(
                field_violations(&status),
                ["page_token"],
                "a {issued:?} token in {used:?}"
            );
        }
    }
    srv.stop().await;
}
