//! The access queries' reads: the candidates' memberships and roles, from the cache (which
//! follows the feed like the other hot reads) or from the database, judged by
//! `domain::lookups`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;

use super::{Reads, Source};
use crate::domain::DomainResult;
use crate::domain::catalog::PermissionSet;
use crate::domain::lookups::{self, Permitted, Window};
use crate::domain::model::Membership;
use crate::domain::page::{ListPage, Page};

/// Rows a database lookup reads at a time: enough for a page of users with two memberships each
/// (team and organization), so that a page rarely needs a second round.
fn chunk_rows(page: &ListPage) -> u64 {
    (page.fetch() * 2).max(256)
}

impl Reads {
    /// The users who hold `permission` in team `team_id`, one page of them by user id.
    /// NOT_FOUND for an absent team.
    pub async fn permitted_users(
        &self,
        source: Source,
        team_id: i64,
        permission: &str,
        page: ListPage,
    ) -> DomainResult<Page<Permitted>> {
        let found = match source {
            Source::Cache(_) => {
                self.cached_permitted_users(team_id, permission, &page)
                    .await?
            }
            Source::Database(_) => {
                self.stored_permitted_users(team_id, permission, &page)
                    .await?
            }
        };
        Ok(page.cut(found, |p| p.id, |p| p))
    }

    async fn cached_permitted_users(
        &self,
        team_id: i64,
        permission: &str,
        page: &ListPage,
    ) -> DomainResult<Vec<Permitted>> {
        let seen = self.cache.generation();
        let organization_id = self.organization_of(team_id).await?;
        let team = self.team_members(seen, team_id).await?;
        let organization = if organization_id == team_id {
            Arc::new(Vec::new())
        } else {
            self.team_members(seen, organization_id).await?
        };
        let roles = self
            .cached_roles(seen, team.iter().chain(organization.iter()))
            .await?;
        Ok(lookups::permitted_users(
            team_id,
            organization_id,
            Utc::now(),
            [&team, &organization],
            permission,
            |role_id| self.permissions_of(&roles, role_id),
            Window {
                after: page.after,
                limit: page.fetch() as usize,
            },
        ))
    }

    /// Walks the database in chunks of users until the page is full or the users run out.
    async fn stored_permitted_users(
        &self,
        team_id: i64,
        permission: &str,
        page: &ListPage,
    ) -> DomainResult<Vec<Permitted>> {
        let organization_id = self.store.organization_of(team_id).await?;
        let teams: &[i64] = if organization_id == team_id {
            &[team_id]
        } else {
            &[team_id, organization_id]
        };
        let want = page.fetch() as usize;
        let chunk = chunk_rows(page);
        let now = Utc::now();
        let mut after = page.after;
        let mut found = Vec::new();
        loop {
            let mut rows = self.store.members_of(teams, after, Some(chunk)).await?;
            let last_chunk = (rows.len() as u64) < chunk;
            if !last_chunk {
                // The last user's other membership may be in the next chunk: judge them there.
                let last = rows.last().map_or(after, |m| m.user_id);
                rows.retain(|m| m.user_id != last);
            }
            let roles = self.stored_roles(rows.iter()).await?;
            let judged_up_to = rows.last().map(|m| m.user_id);
            let (team, organization): (Vec<Membership>, Vec<Membership>) =
                rows.into_iter().partition(|m| m.team_id == team_id);
            found.extend(lookups::permitted_users(
                team_id,
                organization_id,
                now,
                [&team, &organization],
                permission,
                |role_id| self.permissions_of(&roles, role_id),
                Window {
                    after,
                    limit: want - found.len(),
                },
            ));
            match judged_up_to {
                Some(user) if !last_chunk && found.len() < want => after = user,
                _ => return Ok(found),
            }
        }
    }

    /// The organizations and teams where user `user_id` holds `permission` (only
    /// `organization`'s when given), one page of them by team id.
    pub async fn permitted_teams(
        &self,
        source: Source,
        user_id: i64,
        organization: Option<i64>,
        permission: &str,
        page: ListPage,
    ) -> DomainResult<Page<Permitted>> {
        let seen = self.cache.generation();
        let memberships = match source {
            Source::Cache(_) => self.cached_user_memberships(seen, user_id).await?,
            Source::Database(_) => Arc::new(self.store.memberships_of_user(user_id).await?),
        };
        let mut sub_teams = HashMap::new();
        for m in memberships.iter() {
            let reaches_sub_teams = m.accepted
                && m.team_id == m.organization_id
                && organization.is_none_or(|org| org == m.organization_id);
            if reaches_sub_teams && !sub_teams.contains_key(&m.organization_id) {
                let teams = match source {
                    Source::Cache(_) => self.cached_sub_teams(seen, m.organization_id).await?,
                    Source::Database(_) => Arc::new(self.store.sub_teams(m.organization_id).await?),
                };
                sub_teams.insert(m.organization_id, teams);
            }
        }
        let candidates = lookups::candidate_teams(&memberships, organization, |org| {
            sub_teams.get(&org).map_or(&[][..], |teams| &teams[..])
        });
        let roles = match source {
            Source::Cache(_) => self.cached_roles(seen, memberships.iter()).await?,
            Source::Database(_) => self.stored_roles(memberships.iter()).await?,
        };
        let found = lookups::permitted_teams(
            Utc::now(),
            &memberships,
            &candidates,
            permission,
            |role_id| self.permissions_of(&roles, role_id),
            Window {
                after: page.after,
                limit: page.fetch() as usize,
            },
        );
        Ok(page.cut(found, |p| p.id, |p| p))
    }

    /// A role's permissions: a system role's from the policy, a custom role's from `custom`
    /// (none when it no longer exists).
    fn permissions_of(
        &self,
        custom: &HashMap<String, Arc<PermissionSet>>,
        role_id: &str,
    ) -> Arc<PermissionSet> {
        match self.store.policy().system_permissions(role_id) {
            Some(system) => Arc::clone(system),
            None => custom.get(role_id).cloned().unwrap_or_default(),
        }
    }

    /// The custom roles these memberships use (system roles come from the policy).
    fn custom_role_ids<'a>(
        &self,
        memberships: impl Iterator<Item = &'a Membership>,
    ) -> Vec<&'a str> {
        let policy = self.store.policy();
        let mut seen = HashSet::new();
        memberships
            .map(|m| m.role_id.as_str())
            .filter(|id| policy.system_permissions(id).is_none() && seen.insert(*id))
            .collect()
    }

    async fn stored_roles<'a>(
        &self,
        memberships: impl Iterator<Item = &'a Membership>,
    ) -> DomainResult<HashMap<String, Arc<PermissionSet>>> {
        let ids = self.custom_role_ids(memberships);
        let policy = self.store.policy();
        Ok(self
            .store
            .custom_roles_permissions(&ids)
            .await?
            .into_iter()
            .map(|(id, held)| {
                let set = policy.role_permissions(&id, Some(&held));
                (id, set)
            })
            .collect())
    }

    /// From the cache; the roles it lacks are read in one query and cached.
    async fn cached_roles<'a>(
        &self,
        seen: u64,
        memberships: impl Iterator<Item = &'a Membership>,
    ) -> DomainResult<HashMap<String, Arc<PermissionSet>>> {
        let mut roles = HashMap::new();
        let mut missing = Vec::new();
        for id in self.custom_role_ids(memberships) {
            match self.cache.role_permissions(id) {
                Some(set) => {
                    roles.insert(id.to_string(), set);
                }
                None => missing.push(id),
            }
        }
        if !missing.is_empty() {
            let policy = self.store.policy();
            for (id, held) in self.store.custom_roles_permissions(&missing).await? {
                let set = policy.role_permissions(&id, Some(&held));
                self.cache
                    .fill_role_permissions(seen, &id, Arc::clone(&set));
                roles.insert(id, set);
            }
        }
        Ok(roles)
    }

    async fn team_members(&self, seen: u64, team_id: i64) -> DomainResult<Arc<Vec<Membership>>> {
        if let Some(members) = self.cache.team_members(team_id) {
            return Ok(members);
        }
        let members = Arc::new(self.store.members_of(&[team_id], 0, None).await?);
        self.cache
            .fill_team_members(seen, team_id, Arc::clone(&members));
        Ok(members)
    }

    async fn cached_sub_teams(
        &self,
        seen: u64,
        organization_id: i64,
    ) -> DomainResult<Arc<Vec<i64>>> {
        if let Some(teams) = self.cache.sub_teams(organization_id) {
            return Ok(teams);
        }
        let teams = Arc::new(self.store.sub_teams(organization_id).await?);
        self.cache
            .fill_sub_teams(seen, organization_id, Arc::clone(&teams));
        Ok(teams)
    }
}
