//! Effective permissions: what a user may do in a team, and which role says so.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::catalog::{PermissionCatalog, PermissionSet};
use super::model::Membership;
use super::roles::{BaseRole, SYSTEM_ROLES, system_role_permissions};

/// The permission catalog in force and the system roles' permission sets derived from it.
#[derive(Debug)]
pub struct Policy {
    pub catalog: PermissionCatalog,
    system: HashMap<&'static str, Arc<PermissionSet>, foldhash::fast::RandomState>,
}

impl Policy {
    pub fn new(catalog: PermissionCatalog) -> Self {
        let system = SYSTEM_ROLES
            .iter()
            .map(|role| {
                (
                    role.id,
                    Arc::new(PermissionSet::new(system_role_permissions(role, &catalog))),
                )
            })
            .collect();
        Self { catalog, system }
    }

    /// The permissions of a system role, by id.
    pub fn system_permissions(&self, role_id: &str) -> Option<&Arc<PermissionSet>> {
        self.system.get(role_id)
    }

    /// The permissions a membership's role holds: a system role's from the catalog, a custom
    /// role's as stored.
    pub fn role_permissions(&self, role_id: &str, custom: Option<&[String]>) -> Arc<PermissionSet> {
        match (self.system.get(role_id), custom) {
            (Some(system), _) => Arc::clone(system),
            (None, Some(held)) => Arc::new(PermissionSet::new(held.iter().cloned())),
            (None, None) => Arc::new(PermissionSet::default()),
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::new(PermissionCatalog::default_catalog())
    }
}

/// Whether a membership counts for its user's permissions in `team_id` (of `organization_id`) at
/// the instant `now`: accepted, not expired at `now`, and in the team itself or in the team's
/// organization. The one definition, used by every evaluation (database and cache); pending
/// memberships never count, nor do expired ones, whether or not the sweep has deleted them yet.
pub fn counts_for_permissions(
    m: &Membership,
    team_id: i64,
    organization_id: i64,
    now: DateTime<Utc>,
) -> bool {
    m.accepted && !m.is_expired(now) && (m.team_id == team_id || m.team_id == organization_id)
}

/// The memberships that count for a user's permissions in `team_id` (of `organization_id`): the
/// team's own, then the organization's. A user has at most one membership per team, so there are
/// at most these two. A sub-team membership ends with its organization membership (the sweep
/// deletes it along), so from the instant that one expires, pending or not, the sub-team one
/// grants nothing either; `memberships` must include the organization membership, whatever its
/// state.
fn counting<'a>(
    team_id: i64,
    organization_id: i64,
    now: DateTime<Utc>,
    memberships: impl IntoIterator<Item = &'a Membership>,
) -> [Option<&'a Membership>; 2] {
    let mut own = None;
    let mut inherited = None;
    let mut organization_lapsed = false;
    for m in memberships {
        if team_id != organization_id && m.team_id == organization_id && m.is_expired(now) {
            organization_lapsed = true;
        }
        if !counts_for_permissions(m, team_id, organization_id, now) {
            continue;
        }
        if m.team_id == team_id {
            own = own.or(Some(m));
        } else {
            inherited = inherited.or(Some(m));
        }
    }
    if organization_lapsed {
        own = None;
    }
    [own, inherited]
}

/// CheckPermission's answer: the first grant (the team's own first) whose role holds the
/// permission decides; no grant at all is NO_ACCEPTED_MEMBERSHIP. Grants are (role id, whether
/// inherited from the organization, the role's permissions).
fn decide<'a>(
    grants: impl IntoIterator<Item = (&'a str, bool, Arc<PermissionSet>)>,
    permission: &str,
) -> Decision {
    let mut any = false;
    for (role_id, from_organization, permissions) in grants {
        any = true;
        if permissions.grants(permission) {
            return Decision {
                allowed: true,
                role_id: role_id.to_string(),
                reason: if from_organization {
                    DecisionReason::GrantedByOrganizationRole
                } else {
                    DecisionReason::GrantedByTeamRole
                },
            };
        }
    }
    Decision {
        allowed: false,
        role_id: String::new(),
        reason: if any {
            DecisionReason::NotGranted
        } else {
            DecisionReason::NoAcceptedMembership
        },
    }
}

/// `Effective::from_memberships(…).check(permission)` without assembling the grants: the hot
/// path of CheckPermission, BatchCheckPermissions and the lookups.
pub fn check_memberships<'a>(
    team_id: i64,
    organization_id: i64,
    now: DateTime<Utc>,
    memberships: impl IntoIterator<Item = &'a Membership>,
    mut permissions: impl FnMut(&str) -> Arc<PermissionSet>,
    permission: &str,
) -> Decision {
    decide(
        counting(team_id, organization_id, now, memberships)
            .into_iter()
            .flatten()
            .map(|m| {
                (
                    m.role_id.as_str(),
                    m.team_id != team_id,
                    permissions(&m.role_id),
                )
            }),
        permission,
    )
}

/// One accepted membership's contribution to a user's permissions in a team.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub role_id: String,
    pub role_key: String,
    pub role: BaseRole,
    /// The team whose membership holds the role (the organization for an inherited grant).
    pub team_id: i64,
    pub from_organization: bool,
    pub permissions: Arc<PermissionSet>,
}

/// A user's accepted grants in one team: the team's own membership first, then the
/// organization's. Pending memberships never appear here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effective {
    pub grants: Vec<Grant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionReason {
    GrantedByTeamRole,
    GrantedByOrganizationRole,
    NoAcceptedMembership,
    NotGranted,
}

impl DecisionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionReason::GrantedByTeamRole => "GRANTED_BY_TEAM_ROLE",
            DecisionReason::GrantedByOrganizationRole => "GRANTED_BY_ORGANIZATION_ROLE",
            DecisionReason::NoAcceptedMembership => "NO_ACCEPTED_MEMBERSHIP",
            DecisionReason::NotGranted => "NOT_GRANTED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub role_id: String,
    pub reason: DecisionReason,
}

impl Effective {
    /// The grants a user's memberships give in `team_id` (of `organization_id`) at `now`: those
    /// that [`counts_for_permissions`], the team's own first, then its organization's.
    pub fn from_memberships<'a>(
        team_id: i64,
        organization_id: i64,
        now: DateTime<Utc>,
        memberships: impl IntoIterator<Item = &'a Membership>,
        mut permissions: impl FnMut(&str) -> Arc<PermissionSet>,
    ) -> Effective {
        let grants = counting(team_id, organization_id, now, memberships)
            .into_iter()
            .flatten()
            .map(|m| Grant {
                role_id: m.role_id.clone(),
                role_key: m.role_key.clone(),
                role: m.role,
                team_id: m.team_id,
                from_organization: m.team_id != team_id,
                permissions: permissions(&m.role_id),
            })
            .collect();
        Effective { grants }
    }

    pub fn check(&self, permission: &str) -> Decision {
        decide(
            self.grants.iter().map(|g| {
                (
                    g.role_id.as_str(),
                    g.from_organization,
                    Arc::clone(&g.permissions),
                )
            }),
            permission,
        )
    }

    pub fn grants(&self, permission: &str) -> bool {
        self.grants.iter().any(|g| g.permissions.grants(permission))
    }

    /// The concrete catalog permissions granted, sorted.
    pub fn permissions(&self, catalog: &PermissionCatalog) -> Vec<String> {
        let all: BTreeSet<String> = self
            .grants
            .iter()
            .flat_map(|g| g.permissions.expand(catalog))
            .collect();
        all.into_iter().collect()
    }

    /// An accepted OWNER of the team or, for a sub-team, of its organization.
    pub fn is_owner(&self) -> bool {
        self.grants.iter().any(|g| g.role == BaseRole::Owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(policy: &Policy, role_id: &str, role: BaseRole, from_organization: bool) -> Grant {
        Grant {
            role_id: role_id.into(),
            role_key: role_id.into(),
            role,
            team_id: if from_organization { 1 } else { 2 },
            from_organization,
            permissions: policy.role_permissions(role_id, None),
        }
    }

    fn membership(team_id: i64, accepted: bool) -> Membership {
        Membership {
            id: team_id * 10,
            team_id,
            organization_id: 1,
            user_id: 3,
            accepted,
            role: BaseRole::Member,
            role_id: "member_role".into(),
            role_key: "member".into(),
            disable_impersonation: false,
            auto_record_calls: crate::domain::model::AutoRecordCalls::Unset,
            public_metadata: Default::default(),
            private_metadata: Default::default(),
            expires_at: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            version: 1,
        }
    }

    #[test]
    fn what_counts_for_permissions_in_a_team() {
        let now = chrono::Utc::now();
        // Organization 1, sub-teams 2 and 3.
        assert!(counts_for_permissions(&membership(2, true), 2, 1, now));
        assert!(counts_for_permissions(&membership(1, true), 2, 1, now));
        assert!(counts_for_permissions(&membership(1, true), 1, 1, now));
        assert!(
            !counts_for_permissions(&membership(3, true), 2, 1, now),
            "a sibling"
        );
        assert!(
            !counts_for_permissions(&membership(2, true), 1, 1, now),
            "a sub-team"
        );
        assert!(
            !counts_for_permissions(&membership(2, false), 2, 1, now),
            "pending"
        );
        assert!(
            !counts_for_permissions(&membership(1, false), 2, 1, now),
            "pending"
        );
        let effective = Effective::from_memberships(
            2,
            1,
            now,
            &[
                membership(3, true),
                membership(1, true),
                membership(2, true),
            ],
            |id| Policy::default().role_permissions(id, None),
        );
        let teams: Vec<i64> = effective.grants.iter().map(|g| g.team_id).collect();
        assert_eq!(teams, [2, 1], "the team's own grant first");
    }

    #[test]
    fn the_fast_check_decides_as_the_assembled_grants_do() {
        let policy = Policy::default();
        let held = vec!["booking.read".to_string(), "team.*".to_string()];
        let custom = policy.role_permissions("custom_x", Some(&held));
        let permissions = |id: &str| match id {
            "custom_x" => Arc::clone(&custom),
            other => policy.role_permissions(other, None),
        };
        let roles = [
            "owner_role",
            "admin_role",
            "restricteduser_role",
            "custom_x",
        ];
        let now = chrono::Utc::now();
        let mut options = vec![None];
        for team in [1, 2, 3] {
            for (accepted, expired) in [(true, false), (false, false), (true, true)] {
                for role in roles {
                    let mut m = membership(team, accepted);
                    m.role_id = role.into();
                    if expired {
                        m.expires_at = Some(now);
                    }
                    options.push(Some(m));
                }
            }
        }
        let mut compared = 0;
        for a in &options {
            for b in &options {
                let held: Vec<&Membership> = [a, b].into_iter().flatten().collect();
                if held.len() == 2 && held[0].team_id == held[1].team_id {
                    continue; // one membership per team
                }
                for team_id in [1, 2] {
                    for wanted in ["team.update", "booking.read", "organization.manageBilling"] {
                        let assembled = Effective::from_memberships(
                            team_id,
                            1,
                            now,
                            held.iter().copied(),
                            permissions,
                        )
                        .check(wanted);
                        let fast = check_memberships(
                            team_id,
                            1,
                            now,
                            held.iter().copied(),
                            permissions,
                            wanted,
                        );
                        assert_eq!(fast, assembled, "{held:?} in {team_id}: {wanted}");
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared > 1000);
    }

    #[test]
    fn an_expired_membership_counts_until_its_instant_only() {
        let at = |secs| DateTime::from_timestamp(secs, 0).unwrap();
        let expiring = |team_id| Membership {
            expires_at: Some(at(1_000)),
            ..membership(team_id, true)
        };
        for team in [2, 1] {
            assert!(counts_for_permissions(&expiring(team), 2, 1, at(999)));
            assert!(
                !counts_for_permissions(&expiring(team), 2, 1, at(1_000)),
                "at the instant itself"
            );
            assert!(!counts_for_permissions(&expiring(team), 2, 1, at(5_000)));
        }
        assert!(counts_for_permissions(
            &membership(2, true),
            2,
            1,
            at(5_000)
        ));
        let grants_at = |now| {
            Effective::from_memberships(2, 1, now, &[expiring(2), membership(1, true)], |id| {
                Policy::default().role_permissions(id, None)
            })
            .grants
            .iter()
            .map(|g| g.team_id)
            .collect::<Vec<_>>()
        };
        assert_eq!(grants_at(at(999)), [2, 1]);
        assert_eq!(grants_at(at(1_000)), [1], "the organization's grant alone");
    }

    #[test]
    fn a_sub_team_membership_ends_with_its_organization_membership() {
        let at = |secs| DateTime::from_timestamp(secs, 0).unwrap();
        for accepted in [true, false] {
            let organization = Membership {
                expires_at: Some(at(1_000)),
                ..membership(1, accepted)
            };
            let team = membership(2, true);
            let grants_at = |now| {
                Effective::from_memberships(2, 1, now, [&organization, &team], |id| {
                    Policy::default().role_permissions(id, None)
                })
                .grants
                .len()
            };
            assert_eq!(grants_at(at(999)), if accepted { 2 } else { 1 });
            assert_eq!(grants_at(at(1_000)), 0, "accepted: {accepted}");
            // The organization itself is judged by its own membership only.
            let own = check_memberships(
                1,
                1,
                at(999),
                [&organization, &team],
                |id| Policy::default().role_permissions(id, None),
                "team.read",
            );
            assert_eq!(own.allowed, accepted);
        }
    }

    #[test]
    fn no_grant_no_permission() {
        let d = Effective::default().check("team.read");
        assert!(!d.allowed);
        assert_eq!(d.reason, DecisionReason::NoAcceptedMembership);
    }

    #[test]
    fn union_of_team_and_organization_roles() {
        let policy = Policy::default();
        let effective = Effective {
            grants: vec![
                grant(&policy, "restricteduser_role", BaseRole::Member, false),
                grant(&policy, "admin_role", BaseRole::Admin, true),
            ],
        };
        let team_read = effective.check("team.read");
        assert_eq!(
            (team_read.allowed, team_read.role_id.as_str()),
            (true, "restricteduser_role")
        );
        assert_eq!(team_read.reason, DecisionReason::GrantedByTeamRole);
        let update = effective.check("team.update");
        assert_eq!(
            (update.allowed, update.role_id.as_str()),
            (true, "admin_role")
        );
        assert_eq!(update.reason, DecisionReason::GrantedByOrganizationRole);
        let billing = effective.check("organization.manageBilling");
        assert_eq!(
            (billing.allowed, billing.reason),
            (false, DecisionReason::NotGranted)
        );
        assert!(!effective.is_owner());
    }

    #[test]
    fn owner_holds_everything_and_lists_the_whole_catalog() {
        let policy = Policy::default();
        let effective = Effective {
            grants: vec![grant(&policy, "owner_role", BaseRole::Owner, true)],
        };
        assert!(effective.grants("organization.manageBilling"));
        assert!(effective.is_owner());
        assert_eq!(
            effective.permissions(&policy.catalog).len(),
            policy.catalog.entries().len()
        );
    }

    #[test]
    fn custom_role_permissions_come_from_storage() {
        let policy = Policy::default();
        let held = vec!["booking.read".to_string(), "eventType.*".to_string()];
        let set = policy.role_permissions("role_x", Some(&held));
        assert!(set.grants("eventType.delete"));
        assert!(!set.grants("team.read"));
        // A system id always means the system role, whatever is stored.
        assert!(
            policy
                .role_permissions("owner_role", Some(&[]))
                .grants("team.delete")
        );
    }
}
