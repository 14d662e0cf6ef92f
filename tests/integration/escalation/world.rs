//! One world: an organization of its own on the shared server, seeded with the admin key, then
//! written to by its users as actors.

use std::collections::BTreeMap;

use tonic::Status;

use super::calls::{Call, Request};
use super::ops::USERS;
use super::reads::Reader;
use super::snapshot::Snapshot;
use crate::common::{
    TestServer, add_member, add_pending_member, create_org, create_role, create_team, create_user,
    pb,
};
use pb::MembershipRole;
use pb::attribute_service_client::AttributeServiceClient;
use pb::directory_service_client::DirectoryServiceClient;
use pb::membership_service_client::MembershipServiceClient;
use pb::role_service_client::RoleServiceClient;

pub struct World<'a> {
    srv: &'a TestServer,
    pub slug: String,
    pub organization: i64,
    /// By [`USERS`] index.
    pub users: Vec<i64>,
    team_names: BTreeMap<i64, String>,
    /// Custom role ids in the order they were created (their timestamps may tie).
    role_order: Vec<String>,
    /// Created attributes, in order.
    pub attributes: Vec<String>,
}

impl<'a> World<'a> {
    /// A new organization `slug` with two sub-teams, three custom roles and the users of
    /// [`USERS`]:
    /// - organization: owner OWNER, admin `admin_role`, member `member_role`, pending an
    ///   invitation as `admin_role`, custom the custom `org-inviter`; outsider nothing;
    /// - t1: member `admin_role`, custom the sub-team's custom `t1-lead`;
    /// - t2: admin OWNER, member invited as `member_role`, custom `member_role`;
    /// - `org-billing`, an organization role nobody holds yet.
    pub async fn seed(srv: &'a TestServer, slug: String) -> World<'a> {
        let org = create_org(srv, &slug).await.id;
        let mut users = Vec::new();
        for name in USERS {
            users.push(create_user(srv, &format!("{name}@{slug}.test")).await.id);
        }
        let [owner, admin, member, pending, _outsider, custom] = users[..] else {
            unreachable!("six users")
        };
        let mut role_order = Vec::new();
        let inviter = create_role(
            srv,
            org,
            "org-inviter",
            &[
                "organization.invite",
                "organization.listMembers",
                "team.invite",
                "team.changeMemberRole",
                "role.create",
                "role.read",
                "booking.read",
            ],
        )
        .await;
        let billing = create_role(
            srv,
            org,
            "org-billing",
            &[
                "organization.read",
                "organization.update",
                "organization.manageBilling",
            ],
        )
        .await;
        add_member(srv, org, owner, MembershipRole::Owner).await;
        add_member(srv, org, admin, "admin_role").await;
        add_member(srv, org, member, "member_role").await;
        add_pending_member(srv, org, pending, "admin_role").await;
        add_member(srv, org, custom, inviter.id.as_str()).await;
        let t1 = create_team(srv, org, "t1").await.id;
        let t2 = create_team(srv, org, "t2").await.id;
        let lead = create_role(
            srv,
            t1,
            "t1-lead",
            &[
                "team.invite",
                "team.remove",
                "team.changeMemberRole",
                "role.create",
                "role.update",
                "role.delete",
                "eventType.create",
                "team.read",
            ],
        )
        .await;
        role_order.extend([inviter.id.clone(), billing.id, lead.id.clone()]);
        add_member(srv, t1, member, "admin_role").await;
        add_member(srv, t1, custom, lead.id.as_str()).await;
        add_member(srv, t2, admin, MembershipRole::Owner).await;
        add_pending_member(srv, t2, member, "member_role").await;
        add_member(srv, t2, custom, "member_role").await;
        World {
            srv,
            slug,
            organization: org,
            users,
            team_names: BTreeMap::from([(org, "org".into()), (t1, "t1".into()), (t2, "t2".into())]),
            role_order,
            attributes: Vec::new(),
        }
    }

    /// Reads the world back.
    pub fn reader(&self) -> Reader<'_> {
        Reader {
            srv: self.srv,
            organization: self.organization,
        }
    }

    pub fn user_name(&self, id: i64) -> String {
        match self.users.iter().position(|u| *u == id) {
            Some(i) => format!("u{i}.{}", USERS[i]),
            None => format!("user#{id}"),
        }
    }

    pub fn team_name(&self, id: i64) -> String {
        self.team_names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("team#{id}"))
    }

    /// The world's custom roles in the order they were created; any the world does not know of
    /// (created by a refused write) last, by name.
    pub fn custom_roles<'s>(&self, now: &'s Snapshot) -> Vec<&'s pb::Role> {
        let mut roles: Vec<&pb::Role> = self
            .role_order
            .iter()
            .filter_map(|id| now.roles.get(id))
            .collect();
        let mut unknown: Vec<&pb::Role> = now
            .roles
            .values()
            .filter(|r| r.team_id.is_some() && !self.role_order.contains(&r.id))
            .collect();
        unknown.sort_by(|a, b| a.name.cmp(&b.name));
        roles.extend(unknown);
        roles
    }

    /// Sends the call as its actor; `Ok` when the server did the write.
    pub async fn send(&mut self, call: &Call) -> Result<(), Status> {
        let auth = self.srv.auth().actor(call.actor);
        let srv = self.srv;
        let memberships = || srv.client_with(auth.clone(), MembershipServiceClient::new);
        let roles = || srv.client_with(auth.clone(), RoleServiceClient::new);
        let directory = || srv.client_with(auth.clone(), DirectoryServiceClient::new);
        match &call.request {
            Request::CreateMembership(r) => {
                memberships().create_membership(r.clone()).await.map(drop)
            }
            Request::UpdateMembership(r) => {
                memberships().update_membership(r.clone()).await.map(drop)
            }
            Request::DeleteMembership(r) => {
                memberships().delete_membership(r.clone()).await.map(drop)
            }
            Request::CreateRole(r) => {
                let role = roles().create_role(r.clone()).await?.into_inner();
                self.role_order.push(role.id);
                Ok(())
            }
            Request::UpdateRole(r) => roles().update_role(r.clone()).await.map(drop),
            Request::AddRolePermissions(r) => {
                roles().add_role_permissions(r.clone()).await.map(drop)
            }
            Request::RemoveRolePermissions(r) => {
                roles().remove_role_permissions(r.clone()).await.map(drop)
            }
            Request::DeleteRole(r) => roles().delete_role(r.clone()).await.map(drop),
            Request::UpdateOrganization(r) => {
                directory().update_organization(r.clone()).await.map(drop)
            }
            Request::CreateTeam(r) => {
                let team = directory().create_team(r.clone()).await?.into_inner();
                self.team_names.insert(team.id, team.slug);
                Ok(())
            }
            Request::UpdateTeam(r) => directory().update_team(r.clone()).await.map(drop),
            Request::DeleteTeam(r) => directory().delete_team(r.clone()).await.map(drop),
            Request::UpdateUser(r) => directory().update_user(r.clone()).await.map(drop),
            Request::DeleteUser(r) => directory().delete_user(r.clone()).await.map(drop),
            Request::CreateAttribute(r) => {
                let attribute = srv
                    .client_with(auth.clone(), AttributeServiceClient::new)
                    .create_attribute(r.clone())
                    .await?
                    .into_inner();
                self.attributes.push(attribute.id);
                Ok(())
            }
            Request::AssignAttribute(r) => srv
                .client_with(auth.clone(), AttributeServiceClient::new)
                .assign_attribute(r.clone())
                .await
                .map(drop),
        }
    }
}
