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

/// `resolve_role_reference` against the design's order, written out over generated teams and
/// custom roles.
#[cfg(test)]
mod properties {
    use chrono::Utc;
    use proptest::prelude::*;

    use super::*;
    use crate::domain::Reason;
    use crate::domain::model::JsonObject;
    use crate::domain::roles::BaseRole;

    // Organization 1 with sub-teams 2 and 3; organization 4 elsewhere.
    const TEAMS: &[(i64, Option<i64>)] = &[(1, None), (2, Some(1)), (3, Some(1)), (4, None)];

    /// System ids, keys and aliases from the design table: (name, id, base).
    const SYSTEM_IDS: &[(&str, BaseRole)] = &[
        ("owner_role", BaseRole::Owner),
        ("admin_role", BaseRole::Admin),
        ("member_role", BaseRole::Member),
        ("superuser_role", BaseRole::Admin),
        ("restricteduser_role", BaseRole::Member),
    ];
    const SYSTEM_KEYS: &[(&str, &str)] = &[
        ("owner", "owner_role"),
        ("admin", "admin_role"),
        ("member", "member_role"),
        ("superuser", "superuser_role"),
        ("restricteduser", "restricteduser_role"),
    ];
    const ALIASES: &[(&str, &str)] = &[
        ("OWNER", "owner_role"),
        ("org:owner", "owner_role"),
        ("ADMIN", "admin_role"),
        ("org:admin", "admin_role"),
        ("MEMBER", "member_role"),
        ("org:member", "member_role"),
        ("user", "member_role"),
    ];

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

    /// Names that collide on purpose: custom ids, custom keys, system keys and aliases (storage
    /// may still hold a key that shadows one), and custom keys spelling another role's id.
    const NAMES: &[&str] = &[
        "role_a",
        "role_b",
        "role_c",
        "reviewer",
        "auditor",
        "admin",
        "ADMIN",
        "user",
        "member",
        "owner_role",
    ];

    /// Custom roles with unique ids (as stored) and keys unique within their team.
    fn candidates() -> impl Strategy<Value = Vec<RoleCandidate>> {
        prop::collection::vec(
            (
                prop::sample::select(&["role_a", "role_b", "role_c", "role_d"][..]),
                prop::sample::select(NAMES),
                prop::sample::select(TEAMS).prop_map(|(id, _)| id),
            ),
            0..6,
        )
        .prop_map(|rows| {
            let mut out: Vec<RoleCandidate> = Vec::new();
            for (id, key, team_id) in rows {
                let taken = out
                    .iter()
                    .any(|c| c.id == id || (c.team_id == team_id && c.key == key));
                if !taken {
                    out.push(RoleCandidate {
                        id: id.to_string(),
                        key: key.to_string(),
                        team_id,
                    });
                }
            }
            out
        })
    }

    fn reference() -> impl Strategy<Value = String> {
        let names: Vec<&str> = NAMES
            .iter()
            .copied()
            .chain(SYSTEM_IDS.iter().map(|(n, _)| *n))
            .chain(SYSTEM_KEYS.iter().map(|(n, _)| *n))
            .chain(ALIASES.iter().map(|(n, _)| *n))
            .chain(["role_d", "Admin", ""])
            .collect();
        prop_oneof![
            8 => prop::sample::select(names).prop_map(str::to_string),
            1 => any::<String>(),
        ]
    }

    /// The design's order: an exact id (a custom role elsewhere ends the search), then a key of
    /// the team's, the organization's, the system's roles, then the aliases. `Some((id, base))`:
    /// a system role carries its base level, a custom role none.
    fn model(
        team_id: i64,
        organization_id: i64,
        reference: &str,
        candidates: &[RoleCandidate],
    ) -> Option<(String, Option<BaseRole>)> {
        let ours = |c: &RoleCandidate| c.team_id == team_id || c.team_id == organization_id;
        let system = |id: &str| {
            SYSTEM_IDS
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(i, base)| (i.to_string(), Some(*base)))
        };
        if let Some(c) = candidates.iter().find(|c| c.id == reference) {
            return ours(c).then(|| (c.id.clone(), None));
        }
        if let Some(found) = system(reference) {
            return Some(found);
        }
        for owner in [team_id, organization_id] {
            if let Some(c) = candidates
                .iter()
                .find(|c| c.team_id == owner && c.key == reference)
            {
                return Some((c.id.clone(), None));
            }
        }
        SYSTEM_KEYS
            .iter()
            .chain(ALIASES)
            .find(|(name, _)| *name == reference)
            .and_then(|(_, id)| system(id))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn resolution_agrees_with_the_model(
            (team_id, parent_id) in prop::sample::select(TEAMS),
            reference in reference(),
            candidates in candidates(),
        ) {
            let team = team(team_id, parent_id);
            let expected = model(team_id, team.organization_id(), &reference, &candidates);
            match resolve_role_reference(&team, &reference, &candidates) {
                Ok(found) => {
                    prop_assert_eq!(Some((found.id.clone(), found.base)), expected);
                    let key = candidates
                        .iter()
                        .find(|c| c.id == found.id)
                        .map(|c| c.key.clone())
                        .or_else(|| SYSTEM_KEYS.iter().find(|(_, id)| *id == found.id).map(|(k, _)| k.to_string()));
                    prop_assert_eq!(Some(found.key), key);
                }
                Err(DomainError::NotFound { reason: Reason::RoleNotFound, .. }) => {
                    prop_assert_eq!(None, expected);
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        /// Custom roles of other teams and organizations never change what a team resolves,
        /// except that their ids are never taken for keys.
        #[test]
        fn other_teams_roles_answer_only_as_refusals(
            (team_id, parent_id) in prop::sample::select(TEAMS),
            reference in reference(),
            candidates in candidates(),
        ) {
            let team = team(team_id, parent_id);
            let (ours, theirs): (Vec<_>, Vec<_>) = candidates
                .into_iter()
                .partition(|c| c.team_id == team.id || c.team_id == team.organization_id());
            let alone = resolve_role_reference(&team, &reference, &ours);
            let all: Vec<RoleCandidate> = ours.iter().chain(&theirs).cloned().collect();
            let with_theirs = resolve_role_reference(&team, &reference, &all);
            if theirs.iter().any(|c| c.id == reference) {
                prop_assert!(with_theirs.is_err());
            } else {
                prop_assert_eq!(alone.ok(), with_theirs.ok());
            }
        }
    }
}
