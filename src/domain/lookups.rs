//! Access queries: who may do something in a team (LookupUsers) and where a user may do it
//! (LookupTeams). Each candidate is judged by CheckPermission's own rule
//! (`access::check_memberships`), so a lookup cannot disagree with a check; these functions only
//! choose the candidates and walk them in key order.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::access::{Decision, check_memberships};
use super::catalog::PermissionSet;
use super::model::Membership;

/// A user (LookupUsers) or a team (LookupTeams) that holds the permission, with the decision
/// CheckPermission gives for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Permitted {
    /// The user id, or the team id.
    pub id: i64,
    /// The team's organization (LookupTeams); the looked-up team's organization (LookupUsers).
    pub organization_id: i64,
    pub decision: Decision,
}

/// The users of `members` (memberships of team `team_id` and of its organization, each slice
/// sorted by user id) who hold `permission` in the team, with user id above `after`, ascending,
/// at most `limit`.
pub fn permitted_users(
    team_id: i64,
    organization_id: i64,
    members: [&[Membership]; 2],
    permission: &str,
    mut permissions: impl FnMut(&str) -> Arc<PermissionSet>,
    after: i64,
    limit: usize,
) -> Vec<Permitted> {
    let mut found = Vec::new();
    let [mut a, mut b] = members.map(|list| {
        let start = list.partition_point(|m| m.user_id <= after);
        &list[start..]
    });
    while found.len() < limit {
        let user = match (a.first(), b.first()) {
            (Some(x), Some(y)) => x.user_id.min(y.user_id),
            (Some(x), None) => x.user_id,
            (None, Some(y)) => y.user_id,
            (None, None) => break,
        };
        let (of_a, rest_a) = a.split_at(a.partition_point(|m| m.user_id == user));
        let (of_b, rest_b) = b.split_at(b.partition_point(|m| m.user_id == user));
        (a, b) = (rest_a, rest_b);
        let decision = check_memberships(
            team_id,
            organization_id,
            of_a.iter().chain(of_b),
            &mut permissions,
            permission,
        );
        if decision.allowed {
            found.push(Permitted {
                id: user,
                organization_id,
                decision,
            });
        }
    }
    found
}

/// The teams where a user's memberships could grant anything, team id → organization id: the
/// teams and organizations of the user's accepted memberships, and every sub-team of an
/// organization the user is an accepted member of (organization roles reach them all).
/// `sub_teams` gives an organization's sub-teams; `organization` keeps one organization only.
pub fn candidate_teams<'a>(
    memberships: &[Membership],
    organization: Option<i64>,
    mut sub_teams: impl FnMut(i64) -> &'a [i64],
) -> BTreeMap<i64, i64> {
    let mut candidates = BTreeMap::new();
    for m in memberships.iter().filter(|m| m.accepted) {
        if organization.is_some_and(|org| org != m.organization_id) {
            continue;
        }
        candidates.insert(m.team_id, m.organization_id);
        candidates.insert(m.organization_id, m.organization_id);
        if m.team_id == m.organization_id {
            for team in sub_teams(m.organization_id) {
                candidates.insert(*team, m.organization_id);
            }
        }
    }
    candidates
}

/// The `candidates` (team id → organization id, from [`candidate_teams`]) where the user of
/// `memberships` holds `permission`, with team id above `after`, ascending, at most `limit`.
pub fn permitted_teams(
    memberships: &[Membership],
    candidates: &BTreeMap<i64, i64>,
    permission: &str,
    mut permissions: impl FnMut(&str) -> Arc<PermissionSet>,
    after: i64,
    limit: usize,
) -> Vec<Permitted> {
    let mut found = Vec::new();
    for (&team_id, &organization_id) in candidates.range(after.saturating_add(1)..) {
        if found.len() == limit {
            break;
        }
        let decision = check_memberships(
            team_id,
            organization_id,
            memberships,
            &mut permissions,
            permission,
        );
        if decision.allowed {
            found.push(Permitted {
                id: team_id,
                organization_id,
                decision,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::access::{DecisionReason, Policy};
    use crate::domain::model::AutoRecordCalls;
    use crate::domain::roles::BaseRole;

    const ORG: i64 = 1;
    const TEAM: i64 = 2;
    const OTHER_TEAM: i64 = 3;

    fn membership(user_id: i64, team_id: i64, role_id: &str, accepted: bool) -> Membership {
        Membership {
            id: user_id * 100 + team_id,
            team_id,
            organization_id: ORG,
            user_id,
            accepted,
            role: BaseRole::Member,
            role_id: role_id.into(),
            role_key: role_id.into(),
            disable_impersonation: false,
            auto_record_calls: AutoRecordCalls::Unset,
            public_metadata: Default::default(),
            private_metadata: Default::default(),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            version: 1,
        }
    }

    fn system(policy: &Policy) -> impl FnMut(&str) -> Arc<PermissionSet> + '_ {
        |role_id| policy.role_permissions(role_id, None)
    }

    #[test]
    fn users_through_the_team_or_the_organization() {
        let policy = Policy::default();
        let team = [
            membership(2, TEAM, "admin_role", true),
            membership(4, TEAM, "member_role", true),
            membership(5, TEAM, "admin_role", false),
        ];
        let org = [
            membership(1, ORG, "admin_role", true),
            membership(4, ORG, "admin_role", true),
            membership(6, ORG, "member_role", true),
        ];
        let found = permitted_users(
            TEAM,
            ORG,
            [&team, &org],
            "team.update",
            system(&policy),
            0,
            10,
        );
        let users: Vec<(i64, DecisionReason)> =
            found.iter().map(|p| (p.id, p.decision.reason)).collect();
        assert_eq!(
            users,
            [
                (1, DecisionReason::GrantedByOrganizationRole),
                (2, DecisionReason::GrantedByTeamRole),
                (4, DecisionReason::GrantedByOrganizationRole),
            ],
            "pending (5) and member-only (6) users hold no team.update"
        );
        // Keyset: after user 1, at most one.
        let page = permitted_users(
            TEAM,
            ORG,
            [&team, &org],
            "team.update",
            system(&policy),
            1,
            1,
        );
        assert_eq!(page.iter().map(|p| p.id).collect::<Vec<_>>(), [2]);
        let rest = permitted_users(
            TEAM,
            ORG,
            [&team, &org],
            "team.update",
            system(&policy),
            2,
            5,
        );
        assert_eq!(rest.iter().map(|p| p.id).collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn an_organization_is_looked_up_through_its_own_memberships() {
        let policy = Policy::default();
        let org = [membership(1, ORG, "member_role", true)];
        let found = permitted_users(ORG, ORG, [&org, &[]], "team.read", system(&policy), 0, 10);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].decision.reason, DecisionReason::GrantedByTeamRole);
    }

    #[test]
    fn teams_reached_by_an_organization_role_and_by_team_roles() {
        let policy = Policy::default();
        let subs = [TEAM, OTHER_TEAM];
        let admin_of_org = [membership(1, ORG, "admin_role", true)];
        let candidates = candidate_teams(&admin_of_org, None, |_| &subs);
        assert_eq!(
            candidates.keys().copied().collect::<Vec<_>>(),
            [ORG, TEAM, OTHER_TEAM]
        );
        let found = permitted_teams(
            &admin_of_org,
            &candidates,
            "team.update",
            system(&policy),
            0,
            10,
        );
        assert_eq!(found.len(), 3);

        // A member of the organization, admin of one team: team.update there only.
        let mixed = [
            membership(1, ORG, "member_role", true),
            membership(1, OTHER_TEAM, "admin_role", true),
        ];
        let candidates = candidate_teams(&mixed, None, |_| &subs);
        let found = permitted_teams(&mixed, &candidates, "team.update", system(&policy), 0, 10);
        assert_eq!(found.iter().map(|p| p.id).collect::<Vec<_>>(), [OTHER_TEAM]);
        assert_eq!(found[0].decision.reason, DecisionReason::GrantedByTeamRole);
        // Keyset.
        let after = permitted_teams(&mixed, &candidates, "team.read", system(&policy), TEAM, 10);
        assert_eq!(after.iter().map(|p| p.id).collect::<Vec<_>>(), [OTHER_TEAM]);

        // Pending memberships make no candidates; another organization is filtered out.
        let pending = [membership(1, ORG, "owner_role", false)];
        assert!(candidate_teams(&pending, None, |_| &subs).is_empty());
        assert!(candidate_teams(&admin_of_org, Some(99), |_| &subs).is_empty());
    }
}
