//! The five global system roles (docs/design.md section 2, "System roles") and how a role
//! reference names one of them.

use std::collections::BTreeSet;

use crate::domain::catalog::{PermissionCatalog, split_permission};

/// The base level of a membership (`Membership.role`).
///
/// The derived ordering (Member < Admin < Owner) is relied upon for "at least ADMIN" checks,
/// so the variant order must not change. Event snapshots spell it as the API's JSON does, with
/// the `MembershipRole` value names (`MEMBERSHIP_ROLE_ADMIN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum BaseRole {
    #[serde(rename = "MEMBERSHIP_ROLE_MEMBER")]
    Member,
    #[serde(rename = "MEMBERSHIP_ROLE_ADMIN")]
    Admin,
    #[serde(rename = "MEMBERSHIP_ROLE_OWNER")]
    Owner,
}

impl BaseRole {
    pub fn as_str(self) -> &'static str {
        match self {
            BaseRole::Member => "MEMBER",
            BaseRole::Admin => "ADMIN",
            BaseRole::Owner => "OWNER",
        }
    }

    /// Exact, case-sensitive: these are wire/storage values, not user input to be guessed at.
    pub fn parse(s: &str) -> Option<BaseRole> {
        match s {
            "MEMBER" => Some(BaseRole::Member),
            "ADMIN" => Some(BaseRole::Admin),
            "OWNER" => Some(BaseRole::Owner),
            _ => None,
        }
    }
}

impl std::fmt::Display for BaseRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct SystemRole {
    pub id: &'static str,
    pub key: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub aliases: &'static [&'static str],
    pub base: BaseRole,
}

/// The ids are cal.com's own default role ids, so clients migrating from cal.com keep working.
pub static SYSTEM_ROLES: [SystemRole; 5] = [
    SystemRole {
        id: "owner_role",
        key: "owner",
        name: "Owner",
        description: "Full control of the organization or team, including billing.",
        aliases: &["OWNER", "org:owner"],
        base: BaseRole::Owner,
    },
    SystemRole {
        id: "admin_role",
        key: "admin",
        name: "Admin",
        description: "Manages the organization or team and its members, except billing.",
        aliases: &["ADMIN", "org:admin"],
        base: BaseRole::Admin,
    },
    SystemRole {
        id: "member_role",
        key: "member",
        name: "Member",
        description: "Reads everything and lists members.",
        aliases: &["MEMBER", "org:member", "user"],
        base: BaseRole::Member,
    },
    SystemRole {
        id: "superuser_role",
        key: "superuser",
        name: "Superuser",
        description: "Admin without control of roles, the organization itself, team deletion and member roles.",
        aliases: &[],
        base: BaseRole::Admin,
    },
    SystemRole {
        id: "restricteduser_role",
        key: "restricteduser",
        name: "Restricted user",
        description: "Reads teams, event types and bookings only.",
        aliases: &[],
        base: BaseRole::Member,
    },
];

const OWNER_ROLE: usize = 0;
const ADMIN_ROLE: usize = 1;
const MEMBER_ROLE: usize = 2;

pub fn system_role_by_id(id: &str) -> Option<&'static SystemRole> {
    SYSTEM_ROLES.iter().find(|r| r.id == id)
}

/// The system role that setting only the `role` enum assigns.
pub fn system_role_for_base(base: BaseRole) -> &'static SystemRole {
    match base {
        BaseRole::Owner => &SYSTEM_ROLES[OWNER_ROLE],
        BaseRole::Admin => &SYSTEM_ROLES[ADMIN_ROLE],
        BaseRole::Member => &SYSTEM_ROLES[MEMBER_ROLE],
    }
}

/// The system role a reference names by id, key or alias (exact, case-sensitive), ignoring custom
/// roles: what a custom role key must not shadow, and how a role request may name a system role.
/// A membership's role reference resolves with `custom_roles::resolve_role_reference`.
pub fn resolve_system_reference(reference: &str) -> Option<&'static SystemRole> {
    system_role_by_id(reference)
        .or_else(|| SYSTEM_ROLES.iter().find(|r| r.key == reference))
        .or_else(|| SYSTEM_ROLES.iter().find(|r| r.aliases.contains(&reference)))
}

/// The permission set of a system role, computed from the given catalog per the design table.
///
/// Computed rather than stored so that an operator catalog (`--permissions-file`) changes what
/// admin/member/superuser hold without a migration. Only catalog entries are returned (apart from
/// owner's `*.*`): a named permission missing from an operator catalog is simply not held.
pub fn system_role_permissions(role: &SystemRole, catalog: &PermissionCatalog) -> BTreeSet<String> {
    match role.id {
        "owner_role" => BTreeSet::from(["*.*".to_string()]),
        "admin_role" => admin_permissions(catalog),
        "member_role" => catalog
            .entries()
            .iter()
            .filter(|e| {
                e.action == "read"
                    || e.permission == "team.listMembers"
                    || e.permission == "organization.listMembers"
            })
            .map(|e| e.permission.clone())
            .collect(),
        "superuser_role" => admin_permissions(catalog)
            .into_iter()
            .filter(|p| {
                // `organization` is matched as a whole resource so `organization.attributes.*`
                // stays with the superuser, as Close's superuser keeps attribute management.
                let resource = split_permission(p).map(|(r, _)| r);
                !matches!(resource, Some("role") | Some("organization"))
                    && p != "team.delete"
                    && p != "team.changeMemberRole"
            })
            .collect(),
        "restricteduser_role" => ["team.read", "eventType.read", "booking.read"]
            .into_iter()
            .filter(|p| catalog.get(p).is_some())
            .map(str::to_string)
            .collect(),
        _ => BTreeSet::new(),
    }
}

fn admin_permissions(catalog: &PermissionCatalog) -> BTreeSet<String> {
    catalog
        .entries()
        .iter()
        .filter(|e| e.action != "manageBilling")
        .map(|e| e.permission.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn perms(id: &str) -> BTreeSet<String> {
        let catalog = PermissionCatalog::default_catalog();
        system_role_permissions(system_role_by_id(id).unwrap(), &catalog)
    }

    #[test]
    fn base_role_order_and_strings() {
        assert!(BaseRole::Member < BaseRole::Admin);
        assert!(BaseRole::Admin < BaseRole::Owner);
        for b in [BaseRole::Member, BaseRole::Admin, BaseRole::Owner] {
            assert_eq!(BaseRole::parse(b.as_str()), Some(b));
            assert_eq!(b.to_string(), b.as_str());
        }
        for bad in ["member", "Admin", "", " OWNER", "OWNER ", "SUPERUSER"] {
            assert_eq!(BaseRole::parse(bad), None, "{bad:?}");
        }
        for b in [BaseRole::Member, BaseRole::Admin, BaseRole::Owner] {
            let json = serde_json::to_string(&b).unwrap();
            assert_eq!(json, format!("\"MEMBERSHIP_ROLE_{}\"", b.as_str()));
        }
    }

    #[test]
    fn system_role_table() {
        let rows: Vec<_> = SYSTEM_ROLES
            .iter()
            .map(|r| (r.id, r.key, r.name, r.aliases, r.base))
            .collect();
        let expected: Vec<(&str, &str, &str, &[&str], BaseRole)> = vec![
            (
                "owner_role",
                "owner",
                "Owner",
                &["OWNER", "org:owner"],
                BaseRole::Owner,
            ),
            (
                "admin_role",
                "admin",
                "Admin",
                &["ADMIN", "org:admin"],
                BaseRole::Admin,
            ),
            (
                "member_role",
                "member",
                "Member",
                &["MEMBER", "org:member", "user"],
                BaseRole::Member,
            ),
            (
                "superuser_role",
                "superuser",
                "Superuser",
                &[],
                BaseRole::Admin,
            ),
            (
                "restricteduser_role",
                "restricteduser",
                "Restricted user",
                &[],
                BaseRole::Member,
            ),
        ];
        assert_eq!(rows, expected);
        for r in &SYSTEM_ROLES {
            assert!(!r.description.is_empty());
        }
    }

    #[test]
    fn every_reference_is_unambiguous() {
        let mut seen = BTreeSet::new();
        for r in &SYSTEM_ROLES {
            for name in std::iter::once(r.id)
                .chain(std::iter::once(r.key))
                .chain(r.aliases.iter().copied())
            {
                assert!(seen.insert(name), "{name} used twice");
            }
        }
    }

    #[test]
    fn by_id_and_for_base() {
        for r in &SYSTEM_ROLES {
            assert_eq!(system_role_by_id(r.id), Some(r));
        }
        assert_eq!(system_role_by_id("owner"), None);
        assert_eq!(system_role_for_base(BaseRole::Owner).id, "owner_role");
        assert_eq!(system_role_for_base(BaseRole::Admin).id, "admin_role");
        assert_eq!(system_role_for_base(BaseRole::Member).id, "member_role");
    }

    #[test]
    fn resolve_every_id_key_and_alias() {
        let cases = [
            ("owner_role", "owner_role"),
            ("owner", "owner_role"),
            ("OWNER", "owner_role"),
            ("org:owner", "owner_role"),
            ("admin_role", "admin_role"),
            ("admin", "admin_role"),
            ("ADMIN", "admin_role"),
            ("org:admin", "admin_role"),
            ("member_role", "member_role"),
            ("member", "member_role"),
            ("MEMBER", "member_role"),
            ("org:member", "member_role"),
            ("user", "member_role"),
            ("superuser_role", "superuser_role"),
            ("superuser", "superuser_role"),
            ("restricteduser_role", "restricteduser_role"),
            ("restricteduser", "restricteduser_role"),
        ];
        for (reference, id) in cases {
            assert_eq!(
                resolve_system_reference(reference).map(|r| r.id),
                Some(id),
                "{reference:?}"
            );
        }
    }

    #[test]
    fn resolve_unknowns() {
        for reference in [
            "",
            "Admin",
            "Owner",
            "Member",
            "org:Admin",
            "ORG:ADMIN",
            "admin ",
            " admin",
            "User",
            "SUPERUSER",
            "org:superuser",
            "restricted_user",
            "Restricted user",
            "owner_role ",
            "role",
        ] {
            assert_eq!(resolve_system_reference(reference), None, "{reference:?}");
        }
    }

    #[test]
    fn owner_holds_everything() {
        assert_eq!(perms("owner_role"), set(&["*.*"]));
    }

    #[test]
    fn admin_exact() {
        let catalog = PermissionCatalog::default_catalog();
        let expected: BTreeSet<String> = catalog
            .entries()
            .iter()
            .map(|e| e.permission.clone())
            .filter(|p| p != "team.manageBilling" && p != "organization.manageBilling")
            .collect();
        let admin = perms("admin_role");
        assert_eq!(admin, expected);
        assert_eq!(admin.len(), 67);
        assert!(!admin.contains("*.*"));
        assert!(!admin.contains("team.manageBilling"));
        assert!(!admin.contains("organization.manageBilling"));
        assert!(admin.contains("organization.attributes.editUsers"));
        assert!(admin.contains("role.delete"));
    }

    #[test]
    fn member_exact() {
        let expected = set(&[
            "role.read",
            "eventType.read",
            "team.read",
            "team.listMembers",
            "booking.read",
            "insights.read",
            "workflow.read",
            "routingForm.read",
            "webhook.read",
            "featureOptIn.read",
            "organization.read",
            "organization.listMembers",
            "organization.attributes.read",
            "availability.read",
            "ooo.read",
            "watchlist.read",
        ]);
        let member = perms("member_role");
        assert_eq!(member, expected);
        assert!(!member.contains("booking.readTeamBookings"));
        assert!(!member.contains("booking.readRecordings"));
        assert!(!member.contains("team.listMembersPrivate"));
    }

    #[test]
    fn superuser_exact() {
        let removed = set(&[
            "role.create",
            "role.read",
            "role.update",
            "role.delete",
            "organization.create",
            "organization.read",
            "organization.update",
            "organization.listMembers",
            "organization.listMembersPrivate",
            "organization.invite",
            "organization.remove",
            "organization.changeMemberRole",
            "organization.impersonate",
            "team.delete",
            "team.changeMemberRole",
        ]);
        let expected: BTreeSet<String> =
            perms("admin_role").difference(&removed).cloned().collect();
        let superuser = perms("superuser_role");
        assert_eq!(superuser, expected);
        assert_eq!(superuser.len(), 67 - 15);
        for kept in [
            "organization.attributes.create",
            "organization.attributes.read",
            "organization.attributes.update",
            "organization.attributes.delete",
            "organization.attributes.editUsers",
            "team.create",
            "team.invite",
            "team.remove",
        ] {
            assert!(superuser.contains(kept), "{kept}");
        }
        for gone in [
            "organization.read",
            "role.read",
            "team.delete",
            "team.changeMemberRole",
            "team.manageBilling",
        ] {
            assert!(!superuser.contains(gone), "{gone}");
        }
    }

    #[test]
    fn restricteduser_exact() {
        assert_eq!(
            perms("restricteduser_role"),
            set(&["team.read", "eventType.read", "booking.read"])
        );
    }

    #[test]
    fn permissions_follow_an_operator_catalog() {
        use crate::domain::catalog::CatalogEntry;
        let entry = |p: &str, org: bool| {
            let (r, a) = split_permission(p).unwrap();
            CatalogEntry {
                permission: p.to_string(),
                resource: r.to_string(),
                action: a.to_string(),
                organization_only: org,
                description: String::new(),
            }
        };
        let catalog = PermissionCatalog::from_entries(vec![
            entry("team.read", false),
            entry("report.read", false),
            entry("report.export", false),
            entry("team.manageBilling", true),
        ])
        .unwrap();
        let of = |id: &str| system_role_permissions(system_role_by_id(id).unwrap(), &catalog);
        assert_eq!(
            of("admin_role"),
            set(&["team.read", "report.read", "report.export"])
        );
        assert_eq!(of("member_role"), set(&["team.read", "report.read"]));
        assert_eq!(of("restricteduser_role"), set(&["team.read"]));
        assert_eq!(of("owner_role"), set(&["*.*"]));
    }
}

/// System role references and permissions against the design's table, written out here.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::catalog::CatalogEntry;

    /// Every name of a system role (id, key, aliases) and the role's id, from the design table.
    const NAMES: &[(&str, &str)] = &[
        ("owner_role", "owner_role"),
        ("owner", "owner_role"),
        ("OWNER", "owner_role"),
        ("org:owner", "owner_role"),
        ("admin_role", "admin_role"),
        ("admin", "admin_role"),
        ("ADMIN", "admin_role"),
        ("org:admin", "admin_role"),
        ("member_role", "member_role"),
        ("member", "member_role"),
        ("MEMBER", "member_role"),
        ("org:member", "member_role"),
        ("user", "member_role"),
        ("superuser_role", "superuser_role"),
        ("superuser", "superuser_role"),
        ("restricteduser_role", "restricteduser_role"),
        ("restricteduser", "restricteduser_role"),
    ];

    /// A name, or a near miss of one (case, spaces, a prefix or a suffix), or anything.
    fn reference() -> impl Strategy<Value = String> {
        let name = || prop::sample::select(NAMES).prop_map(|(n, _)| n.to_string());
        prop_oneof![
            3 => name(),
            1 => name().prop_map(|n| n.to_lowercase()),
            1 => name().prop_map(|n| n.to_uppercase()),
            1 => (name(), "[ :_a-zA-Z]{1,3}").prop_map(|(n, s)| format!("{n}{s}")),
            1 => (name(), "[ :_a-zA-Z]{1,3}").prop_map(|(n, s)| format!("{s}{n}")),
            1 => any::<String>(),
        ]
    }

    /// A catalog of some default entries and some made up, as an operator file may hold.
    fn catalog() -> impl Strategy<Value = PermissionCatalog> {
        let defaults = PermissionCatalog::default_catalog().entries().to_vec();
        let made_up = (
            "[a-z]{1,3}(\\.[a-z]{1,3})?",
            prop::sample::select(vec!["read", "write", "manageBilling", "listMembers"]),
            any::<bool>(),
        )
            .prop_map(|(resource, action, org)| {
                CatalogEntry::new(&format!("{resource}.{action}"), org, "").unwrap()
            });
        (
            prop::sample::subsequence(defaults.clone(), 0..=defaults.len()),
            prop::collection::vec(made_up, 0..6),
        )
            .prop_filter_map(
                "a catalog needs entries, each once",
                |(mut entries, extra)| {
                    for e in extra {
                        if !entries.iter().any(|known| known.permission == e.permission) {
                            entries.push(e);
                        }
                    }
                    PermissionCatalog::from_entries(entries).ok()
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn system_references_resolve_as_the_table_says(reference in reference()) {
            let expected = NAMES.iter().find(|(n, _)| *n == reference).map(|(_, id)| *id);
            prop_assert_eq!(resolve_system_reference(&reference).map(|r| r.id), expected);
        }

        #[test]
        fn a_base_level_assigns_the_role_of_that_level(
            base in prop::sample::select(vec![BaseRole::Member, BaseRole::Admin, BaseRole::Owner]),
        ) {
            let role = system_role_for_base(base);
            prop_assert_eq!(role.base, base);
            prop_assert_eq!(resolve_system_reference(base.as_str()), Some(role));
        }

        /// The design's table of system permissions, over any catalog.
        #[test]
        fn system_permissions_follow_the_table(catalog in catalog()) {
            let entries = catalog.entries();
            let of = |id: &str| system_role_permissions(system_role_by_id(id).unwrap(), &catalog);
            let all = |keep: &dyn Fn(&CatalogEntry) -> bool| -> BTreeSet<String> {
                entries.iter().filter(|e| keep(e)).map(|e| e.permission.clone()).collect()
            };
            prop_assert_eq!(of("owner_role"), BTreeSet::from(["*.*".to_string()]));
            let admin = all(&|e| e.action != "manageBilling");
            prop_assert_eq!(&of("admin_role"), &admin);
            prop_assert_eq!(
                of("member_role"),
                all(&|e| e.action == "read"
                    || e.permission == "team.listMembers"
                    || e.permission == "organization.listMembers")
            );
            let superuser: BTreeSet<String> = admin
                .iter()
                .filter(|p| {
                    let resource = p.rsplit_once('.').unwrap().0;
                    resource != "role"
                        && resource != "organization"
                        && *p != "team.delete"
                        && *p != "team.changeMemberRole"
                })
                .cloned()
                .collect();
            prop_assert_eq!(of("superuser_role"), superuser);
            prop_assert_eq!(
                of("restricteduser_role"),
                all(&|e| ["team.read", "eventType.read", "booking.read"].contains(&e.permission.as_str()))
            );
        }
    }
}
