//! Custom roles: the requests that write them, and the one resolution of the role reference a
//! membership makes, over the custom roles storage found for it.

use super::errors::{DomainError, DomainResult};
use super::model::{RoleRef, Team};
use super::roles::{SYSTEM_ROLES, SystemRole, system_role_by_id};

#[derive(Debug, Clone, Default)]
pub struct NewRole {
    pub team_id: i64,
    /// Derived from the name when None.
    pub key: Option<String>,
    pub name: String,
    pub color: Option<String>,
    pub description: Option<String>,
    pub permissions: Vec<String>,
}

/// Present fields are set; `color`/`description: Some(None)` clear them; `permissions` replaces
/// the whole set.
#[derive(Debug, Clone, Default)]
pub struct RolePatch {
    pub name: Option<String>,
    pub color: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub permissions: Option<Vec<String>>,
    pub etag: Option<String>,
}

/// How a request names a role: an id, or a key within `team_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAddress {
    pub team_id: Option<i64>,
    pub role: String,
}

/// A custom role that may answer a reference: its id or its key is the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleCandidate {
    pub id: String,
    pub key: String,
    /// The team (or organization) that owns it.
    pub team_id: i64,
}

/// Resolves the role reference of a membership of `team`, in this order:
///
/// 1. an exact role id: a system role, or a custom role of the team or of its organization (a
///    custom role of another organization or sub-team is ROLE_NOT_FOUND, not a key to try next);
/// 2. a key among the team's custom roles, then its organization's, then the system roles;
/// 3. the system aliases (`ADMIN`, `org:admin`, …).
///
/// Anything else is NOT_FOUND `ROLE_NOT_FOUND`. `candidates` are the custom roles whose id or key
/// is the reference, of any team (storage may pass more; the rest are ignored); system roles come
/// from [`SYSTEM_ROLES`].
pub fn resolve_role_reference(
    team: &Team,
    reference: &str,
    candidates: &[RoleCandidate],
) -> DomainResult<RoleRef> {
    let custom = |c: &RoleCandidate| RoleRef {
        id: c.id.clone(),
        key: c.key.clone(),
        base: None,
    };
    let usable = |c: &RoleCandidate| c.team_id == team.id || c.team_id == team.organization_id();
    if let Some(by_id) = candidates.iter().find(|c| c.id == reference) {
        return if usable(by_id) {
            Ok(custom(by_id))
        } else {
            Err(DomainError::role_not_found(reference))
        };
    }
    if let Some(system) = system_role_by_id(reference) {
        return Ok(system_ref(system));
    }
    let key_of = |owner: i64| {
        candidates
            .iter()
            .find(|c| c.team_id == owner && c.key == reference)
    };
    if let Some(found) = key_of(team.id).or_else(|| key_of(team.organization_id())) {
        return Ok(custom(found));
    }
    SYSTEM_ROLES
        .iter()
        .find(|r| r.key == reference)
        .or_else(|| SYSTEM_ROLES.iter().find(|r| r.aliases.contains(&reference)))
        .map(system_ref)
        .ok_or_else(|| DomainError::role_not_found(reference))
}

fn system_ref(role: &SystemRole) -> RoleRef {
    RoleRef {
        id: role.id.to_string(),
        key: role.key.to_string(),
        base: Some(role.base),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::Reason;
    use crate::domain::model::JsonObject;
    use crate::domain::roles::BaseRole;

    fn team(id: i64, parent_id: Option<i64>) -> Team {
        Team {
            id,
            parent_id,
            name: format!("team {id}"),
            slug: format!("team-{id}"),
            image_url: String::new(),
            max_allowed_memberships: 0,
            auto_accept_email_domain: None,
            admin_delete_enabled: true,
            public_metadata: JsonObject::new(),
            private_metadata: JsonObject::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version: 1,
        }
    }

    fn role(id: &str, key: &str, team_id: i64) -> RoleCandidate {
        RoleCandidate {
            id: id.into(),
            key: key.into(),
            team_id,
        }
    }

    fn resolved(team: &Team, reference: &str, candidates: &[RoleCandidate]) -> String {
        resolve_role_reference(team, reference, candidates)
            .unwrap_or_else(|e| panic!("{reference:?}: {e:?}"))
            .id
    }

    fn is_role_not_found(result: DomainResult<RoleRef>) -> bool {
        matches!(
            result,
            Err(DomainError::NotFound {
                reason: Reason::RoleNotFound,
                ..
            })
        )
    }

    // Organization 1 with sub-teams 2 and 3; organization 9 elsewhere.
    fn candidates() -> Vec<RoleCandidate> {
        vec![
            role("role_team", "reviewer", 2),
            role("role_org", "reviewer", 1),
            role("role_org_only", "auditor", 1),
            role("role_sibling", "sibling", 3),
            role("role_other_org", "outsider", 9),
            // Keys that shadow system keys and aliases within their team.
            role("role_admin_key", "admin", 2),
            role("role_alias_key", "ADMIN", 1),
        ]
    }

    #[test]
    fn exact_ids_first() {
        let sub_team = team(2, Some(1));
        let all = candidates();
        assert_eq!(resolved(&sub_team, "role_team", &all), "role_team");
        assert_eq!(resolved(&sub_team, "role_org", &all), "role_org");
        assert_eq!(resolved(&sub_team, "owner_role", &all), "owner_role");
        let system = resolve_role_reference(&sub_team, "admin_role", &all).unwrap();
        assert_eq!(
            system,
            RoleRef {
                id: "admin_role".into(),
                key: "admin".into(),
                base: Some(BaseRole::Admin)
            }
        );
        // A custom role is a custom role: no base level.
        assert_eq!(
            resolve_role_reference(&sub_team, "role_team", &all)
                .unwrap()
                .base,
            None
        );
    }

    #[test]
    fn keys_of_the_team_then_its_organization_then_the_system() {
        let sub_team = team(2, Some(1));
        let organization = team(1, None);
        let all = candidates();
        assert_eq!(resolved(&sub_team, "reviewer", &all), "role_team");
        assert_eq!(resolved(&organization, "reviewer", &all), "role_org");
        assert_eq!(resolved(&sub_team, "auditor", &all), "role_org_only");
        // The team's own key shadows the system key; elsewhere the system key answers.
        assert_eq!(resolved(&sub_team, "admin", &all), "role_admin_key");
        assert_eq!(resolved(&team(3, Some(1)), "admin", &all), "admin_role");
        assert_eq!(resolved(&sub_team, "member", &all), "member_role");
    }

    #[test]
    fn aliases_last() {
        let sub_team = team(2, Some(1));
        let all = candidates();
        // The organization's key `ADMIN` comes before the alias `ADMIN`.
        assert_eq!(resolved(&sub_team, "ADMIN", &all), "role_alias_key");
        assert_eq!(resolved(&team(5, None), "ADMIN", &all), "admin_role");
        assert_eq!(resolved(&sub_team, "org:owner", &all), "owner_role");
        assert_eq!(resolved(&sub_team, "user", &all), "member_role");
    }

    #[test]
    fn other_teams_roles_and_unknowns_are_role_not_found() {
        let sub_team = team(2, Some(1));
        let all = candidates();
        for reference in [
            "role_sibling",
            "role_other_org",
            "sibling",
            "outsider",
            "Admin",
            "",
            "nope",
        ] {
            assert!(
                is_role_not_found(resolve_role_reference(&sub_team, reference, &all)),
                "{reference:?}"
            );
        }
        // An organization does not see its sub-teams' roles.
        assert!(is_role_not_found(resolve_role_reference(
            &team(1, None),
            "role_team",
            &all
        )));
    }

    #[test]
    fn an_id_of_another_team_is_not_tried_as_a_key() {
        let sub_team = team(2, Some(1));
        let all = vec![
            role("role_x", "x", 9),
            // A key in the team that spells the other team's id.
            role("role_y", "role_x", 2),
        ];
        assert!(is_role_not_found(resolve_role_reference(
            &sub_team, "role_x", &all
        )));
    }
}
