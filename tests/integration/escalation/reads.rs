//! Reading a world back through the API (with the admin key; lists read the database, and
//! memberships are asked for `fully_consistent`): all of it, or only the part an operation may
//! have written, the rest carried over from the snapshot before it. What the partial reads
//! could miss, the full read at the end of every sequence finds.

use std::collections::BTreeMap;

use tonic::{Code, Status};

use super::snapshot::Snapshot;
use crate::common::{TestServer, pb};
use pb::consistency::Requirement;

const LIST_PAGE: i32 = 1000;

/// The part of a world an operation may write.
#[derive(Debug, Clone, Copy, Default)]
pub struct Area {
    pub memberships: Teams,
    pub roles: bool,
    pub organization: bool,
    /// The sub-teams (a deleted one takes its memberships and roles with it).
    pub teams: bool,
    pub attributes: bool,
    pub user: Option<i64>,
}

/// Whose memberships an operation may write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Teams {
    #[default]
    None,
    One(i64),
    All,
}

impl Teams {
    /// The memberships of `team` (and, for the organization, of its sub-teams: deleting an
    /// organization membership or an organization role reaches them).
    pub fn reached_from(team: i64, organization: i64) -> Teams {
        if team == organization {
            Teams::All
        } else {
            Teams::One(team)
        }
    }
}

pub struct Reader<'a> {
    pub srv: &'a TestServer,
    pub organization: i64,
}

impl Reader<'_> {
    /// The whole world; of the users, those named (the others are read the first time an
    /// operation addresses them, see `prepare`).
    pub async fn all(&self, users: impl IntoIterator<Item = i64>) -> Result<Snapshot, Status> {
        let mut snapshot = Snapshot {
            teams: vec![self.organization],
            ..Default::default()
        };
        let area = Area {
            memberships: Teams::All,
            roles: true,
            organization: true,
            teams: true,
            attributes: true,
            user: None,
        };
        self.refresh(&mut snapshot, area).await?;
        for user in users {
            snapshot.users.insert(user, self.user(user).await?);
        }
        Ok(snapshot)
    }

    /// Reads into `snapshot`, before an operation, what it lacks of the operation's `area`.
    pub async fn prepare(&self, snapshot: &mut Snapshot, area: Area) -> Result<(), Status> {
        if let Some(user) = area.user
            && !snapshot.users.contains_key(&user)
        {
            snapshot.users.insert(user, self.user(user).await?);
        }
        Ok(())
    }

    /// Re-reads the `area` of `snapshot`.
    pub async fn refresh(&self, snapshot: &mut Snapshot, area: Area) -> Result<(), Status> {
        if area.teams {
            snapshot.team_rows = self.team_rows().await?;
            snapshot.teams = std::iter::once(self.organization)
                .chain(snapshot.team_rows.keys().copied())
                .collect();
            let teams = snapshot.teams.clone();
            snapshot
                .memberships
                .retain(|(team, _), _| teams.contains(team));
        }
        let teams: Vec<i64> = match area.memberships {
            Teams::None => Vec::new(),
            Teams::One(team) => vec![team],
            Teams::All => snapshot.teams.clone(),
        };
        for team in teams {
            snapshot.memberships.retain(|(t, _), _| *t != team);
            match self.memberships(team).await {
                Ok(listed) => snapshot.memberships.extend(listed),
                // A sub-team that is gone shows as missing from `teams`.
                Err(status) if status.code() == Code::NotFound && team != self.organization => {
                    snapshot.teams.retain(|t| *t != team);
                }
                Err(status) => return Err(status),
            }
        }
        if area.roles {
            snapshot.roles = self.roles(&snapshot.teams).await?;
        }
        if area.organization {
            snapshot.organization = self.organization().await?;
        }
        if area.attributes {
            snapshot.attributes = self.attributes().await?;
        }
        if let Some(user) = area.user {
            snapshot.users.insert(user, self.user(user).await?);
        }
        Ok(())
    }

    async fn memberships(&self, team_id: i64) -> Result<Vec<((i64, i64), pb::Membership)>, Status> {
        let listed = self
            .srv
            .memberships()
            .list_memberships(pb::ListMembershipsRequest {
                team_id,
                page_size: LIST_PAGE,
                consistency: Some(pb::Consistency {
                    requirement: Some(Requirement::FullyConsistent(true)),
                }),
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok(listed
            .memberships
            .into_iter()
            .map(|m| ((m.team_id, m.user_id), pb::Membership { revision: 0, ..m }))
            .collect())
    }

    /// Every role of the teams: a sub-team lists its organization's and the system roles too,
    /// so the organization's own list is needed only when it has no sub-team.
    async fn roles(&self, teams: &[i64]) -> Result<BTreeMap<String, pb::Role>, Status> {
        let listed_teams = if teams.len() > 1 { &teams[1..] } else { teams };
        let mut roles = BTreeMap::new();
        for &team_id in listed_teams {
            let listed = self
                .srv
                .roles()
                .list_roles(pb::ListRolesRequest {
                    team_id,
                    page_size: LIST_PAGE,
                    ..Default::default()
                })
                .await?
                .into_inner();
            for r in listed.roles {
                roles.insert(r.id.clone(), pb::Role { revision: 0, ..r });
            }
        }
        Ok(roles)
    }

    async fn team_rows(&self) -> Result<BTreeMap<i64, pb::Team>, Status> {
        let listed = self
            .srv
            .directory()
            .list_teams(pb::ListTeamsRequest {
                organization_id: self.organization,
                page_size: LIST_PAGE,
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok(listed
            .teams
            .into_iter()
            .map(|t| (t.id, pb::Team { revision: 0, ..t }))
            .collect())
    }

    async fn organization(&self) -> Result<pb::Organization, Status> {
        let org = self
            .srv
            .directory()
            .get_organization(pb::GetOrganizationRequest {
                organization_id: self.organization,
            })
            .await?
            .into_inner();
        Ok(pb::Organization {
            revision: 0,
            members_count: 0,
            ..org
        })
    }

    async fn attributes(&self) -> Result<Vec<pb::Attribute>, Status> {
        let listed = self
            .srv
            .attributes()
            .list_attributes(pb::ListAttributesRequest {
                organization_id: self.organization,
                page_size: LIST_PAGE,
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok(listed
            .attributes
            .into_iter()
            .map(|a| pb::Attribute { revision: 0, ..a })
            .collect())
    }

    async fn user(&self, user_id: i64) -> Result<Option<pb::User>, Status> {
        match self
            .srv
            .directory()
            .get_user(pb::GetUserRequest { user_id })
            .await
        {
            Ok(user) => Ok(Some(pb::User {
                revision: 0,
                ..user.into_inner()
            })),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(status),
        }
    }
}
