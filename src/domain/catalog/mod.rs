//! The permission catalog (docs/design.md section 2, "Permissions"), validation of custom roles'
//! permission lists, and wildcard-aware permission checks.
//!
//! The catalog itself is data: the default is `default_catalog.toml`, compiled in, and an operator
//! may replace it with a file of the same shape (`file.rs`).

mod file;

use std::collections::{BTreeSet, HashMap};

use crate::domain::errors::FieldViolation;

pub use file::CatalogFormat;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub permission: String,
    pub resource: String,
    pub action: String,
    pub organization_only: bool,
    pub description: String,
}

/// The built-in catalog, parsed by the same code as an operator's `--permissions-file`.
const DEFAULT_CATALOG: &str = include_str!("default_catalog.toml");

#[derive(Debug, Clone)]
pub struct PermissionCatalog {
    entries: Vec<CatalogEntry>,
    index: HashMap<String, usize, foldhash::fast::RandomState>,
    /// Kept so wildcard validation (`resource.*`, `*.action`) needs no scan of the entries.
    resources: BTreeSet<String>,
    actions: BTreeSet<String>,
}

impl PermissionCatalog {
    /// The default catalog of docs/design.md section 2 (69 entries), in the design's order so
    /// that `ListPermissionCatalog` is stable and reads like the design.
    pub fn default_catalog() -> Self {
        Self::parse(DEFAULT_CATALOG, CatalogFormat::Toml)
            .expect("the built-in default_catalog.toml is a valid catalog")
    }

    /// Builds a catalog, keeping the given order. Each entry's `resource`/`action` must be the
    /// split of its `permission` at the last dot, so callers cannot build an inconsistent index.
    pub fn from_entries(entries: Vec<CatalogEntry>) -> Result<Self, String> {
        if entries.is_empty() {
            return Err("the permission catalog is empty".to_string());
        }
        let mut index = HashMap::with_capacity_and_hasher(
            entries.len(),
            foldhash::fast::RandomState::default(),
        );
        let mut resources = BTreeSet::new();
        let mut actions = BTreeSet::new();
        for (i, entry) in entries.iter().enumerate() {
            check_concrete_permission(&entry.permission)?;
            let (resource, action) = split_permission(&entry.permission).ok_or_else(|| {
                format!("{:?} is not a resource.action permission", entry.permission)
            })?;
            if entry.resource != resource || entry.action != action {
                return Err(format!(
                    "{:?}: resource {:?} and action {:?} do not match the permission",
                    entry.permission, entry.resource, entry.action
                ));
            }
            if let Some(first) = index.insert(entry.permission.clone(), i) {
                return Err(format!(
                    "{:?} appears twice in the permission catalog (positions {first} and {i})",
                    entry.permission
                ));
            }
            resources.insert(entry.resource.clone());
            actions.insert(entry.action.clone());
        }
        Ok(Self {
            entries,
            index,
            resources,
            actions,
        })
    }

    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    pub fn get(&self, permission: &str) -> Option<&CatalogEntry> {
        self.index.get(permission).map(|&i| &self.entries[i])
    }

    /// Validates a custom role's permission list.
    ///
    /// Organization roles may hold any entry and the wildcards `resource.*`, `*.action`, `*.*`
    /// (naming a resource/action of the catalog); sub-team roles only team-scope entries. Every
    /// offending position gets its own violation so a client can fix them all in one round.
    pub fn validate_role_permissions(
        &self,
        field: &str,
        permissions: &[String],
        organization_role: bool,
    ) -> Result<BTreeSet<String>, Vec<FieldViolation>> {
        let mut valid = BTreeSet::new();
        let mut violations = Vec::new();
        for (i, p) in permissions.iter().enumerate() {
            match self.check_role_permission(p, organization_role) {
                Ok(()) => {
                    valid.insert(p.clone());
                }
                Err(description) => {
                    violations.push(FieldViolation::new(format!("{field}[{i}]"), description))
                }
            }
        }
        if violations.is_empty() {
            Ok(valid)
        } else {
            Err(violations)
        }
    }

    fn check_role_permission(&self, p: &str, organization_role: bool) -> Result<(), String> {
        if let Some(entry) = self.get(p) {
            return if entry.organization_only && !organization_role {
                Err(format!(
                    "{p:?} is an organization-only permission; a sub-team role cannot hold it"
                ))
            } else {
                Ok(())
            };
        }
        let Some((resource, action)) = split_permission(p) else {
            return Err(format!(
                "{p:?} is not in the permission catalog (expected resource.action)"
            ));
        };
        if resource != "*" && action != "*" {
            return Err(format!("{p:?} is not in the permission catalog"));
        }
        if !organization_role {
            return Err(format!(
                "{p:?} is a wildcard; only organization roles may hold wildcards"
            ));
        }
        match (resource, action) {
            ("*", "*") => Ok(()),
            ("*", action) if self.actions.contains(action) => Ok(()),
            ("*", _) => Err(format!("{p:?} names no action of the permission catalog")),
            (resource, _) if self.resources.contains(resource) => Ok(()),
            _ => Err(format!("{p:?} names no resource of the permission catalog")),
        }
    }
}

impl CatalogEntry {
    /// An entry with `resource` and `action` derived from `permission`.
    pub fn new(
        permission: &str,
        organization_only: bool,
        description: &str,
    ) -> Result<Self, String> {
        check_concrete_permission(permission)?;
        let (resource, action) = split_permission(permission)
            .ok_or_else(|| format!("{permission:?} is not a resource.action permission"))?;
        Ok(Self {
            permission: permission.to_string(),
            resource: resource.to_string(),
            action: action.to_string(),
            organization_only,
            description: description.to_string(),
        })
    }
}

/// Catalog entries are concrete names: identifier segments only, so they can never be mistaken
/// for wildcards or smuggle whitespace into comparisons.
fn check_concrete_permission(p: &str) -> Result<(), String> {
    let well_formed = p.split('.').count() >= 2
        && p.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "{p:?} is not a well-formed permission (expected resource.action with letters, digits, '_' or '-')"
        ))
    }
}

/// Splits `resource.action` at the last dot. `None` if there is no dot or any dot-separated
/// segment is empty (`"a..b"`, `".a"`, `"a."`).
pub fn split_permission(p: &str) -> Option<(&str, &str)> {
    let (resource, action) = p.rsplit_once('.')?;
    if action.is_empty() || resource.split('.').any(str::is_empty) {
        return None;
    }
    Some((resource, action))
}

/// Whether a held permission (exact or wildcard `resource.*`, `*.action`, `*.*`) grants the
/// wanted concrete permission.
///
/// A wildcard resource matches the whole resource only: `organization.*` does not reach
/// `organization.attributes.read`, whose resource is `organization.attributes`.
pub fn permission_matches(held: &str, wanted: &str) -> bool {
    if held == wanted {
        return true;
    }
    let (Some((held_resource, held_action)), Some((resource, action))) =
        (split_permission(held), split_permission(wanted))
    else {
        return false;
    };
    (held_resource == "*" || held_resource == resource)
        && (held_action == "*" || held_action == action)
}

/// A role's set of held permissions with fast checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet {
    held: BTreeSet<String>,
    /// `*.*` is held: short-circuits every check (the owner case, the hottest one).
    all: bool,
    /// Resources held as `resource.*` and actions held as `*.action`, so `grants` looks them up
    /// by borrowed `&str` without building `format!` keys.
    any_action_of: BTreeSet<String>,
    any_resource_with: BTreeSet<String>,
}

impl PermissionSet {
    pub fn new(held: impl IntoIterator<Item = String>) -> Self {
        let held: BTreeSet<String> = held.into_iter().collect();
        let mut set = Self {
            all: false,
            any_action_of: BTreeSet::new(),
            any_resource_with: BTreeSet::new(),
            held,
        };
        for p in &set.held {
            match split_permission(p) {
                Some(("*", "*")) => set.all = true,
                Some(("*", action)) => {
                    set.any_resource_with.insert(action.to_string());
                }
                Some((resource, "*")) => {
                    set.any_action_of.insert(resource.to_string());
                }
                _ => {}
            }
        }
        set
    }

    /// Same answer as [`permission_matches`] against every held string, in O(log n).
    pub fn grants(&self, wanted: &str) -> bool {
        if self.held.contains(wanted) {
            return true;
        }
        let Some((resource, action)) = split_permission(wanted) else {
            return false;
        };
        self.all || self.any_action_of.contains(resource) || self.any_resource_with.contains(action)
    }

    pub fn held(&self) -> &BTreeSet<String> {
        &self.held
    }

    /// The concrete catalog permissions granted (wildcards expanded against the catalog), sorted.
    /// Held strings outside the catalog are left out: they name nothing an RPC can check.
    pub fn expand(&self, catalog: &PermissionCatalog) -> Vec<String> {
        let mut granted: Vec<String> = catalog
            .entries()
            .iter()
            .filter(|e| self.grants(&e.permission))
            .map(|e| e.permission.clone())
            .collect();
        granted.sort();
        granted
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

impl FromIterator<String> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        Self::new(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// The `permissions` enum of seed 001 (cal.com's team role API), in the seed's order.
    const SEED_001_ENUM: &[&str] = &[
        "role.create",
        "role.read",
        "role.update",
        "role.delete",
        "eventType.create",
        "eventType.read",
        "eventType.update",
        "eventType.delete",
        "team.read",
        "team.update",
        "team.delete",
        "team.invite",
        "team.remove",
        "team.listMembers",
        "team.listMembersPrivate",
        "team.changeMemberRole",
        "team.impersonate",
        "booking.read",
        "booking.readTeamBookings",
        "booking.readRecordings",
        "booking.update",
        "booking.updateTeamBookings",
        "booking.readTeamAuditLogs",
        "insights.read",
        "workflow.create",
        "workflow.read",
        "workflow.update",
        "workflow.delete",
        "routingForm.create",
        "routingForm.read",
        "routingForm.update",
        "routingForm.delete",
        "webhook.create",
        "webhook.read",
        "webhook.update",
        "webhook.delete",
        "featureOptIn.read",
        "featureOptIn.update",
    ];

    #[test]
    fn default_catalog_has_69_entries() {
        let catalog = PermissionCatalog::default_catalog();
        assert_eq!(catalog.entries().len(), 69);
        let team_scope: Vec<&str> = catalog
            .entries()
            .iter()
            .filter(|e| !e.organization_only)
            .map(|e| e.permission.as_str())
            .collect();
        assert_eq!(team_scope, SEED_001_ENUM);
        let org_only: BTreeSet<&str> = catalog
            .entries()
            .iter()
            .filter(|e| e.organization_only)
            .map(|e| e.permission.as_str())
            .collect();
        let mut expected_org_only = BTreeSet::from(["team.create", "team.manageBilling"]);
        for action in [
            "create",
            "read",
            "update",
            "listMembers",
            "listMembersPrivate",
            "invite",
            "remove",
            "changeMemberRole",
            "impersonate",
            "manageBilling",
        ] {
            expected_org_only.insert(Box::leak(format!("organization.{action}").into_boxed_str()));
        }
        for action in ["create", "read", "update", "delete", "editUsers"] {
            expected_org_only.insert(Box::leak(
                format!("organization.attributes.{action}").into_boxed_str(),
            ));
        }
        expected_org_only.extend(["booking.readOrgBookings", "booking.readOrgAuditLogs"]);
        for resource in ["availability", "ooo", "watchlist"] {
            for action in ["create", "read", "update", "delete"] {
                expected_org_only
                    .insert(Box::leak(format!("{resource}.{action}").into_boxed_str()));
            }
        }
        assert_eq!(org_only, expected_org_only);
        assert_eq!(org_only.len(), 31);
    }

    #[test]
    fn default_entries_are_consistent() {
        let catalog = PermissionCatalog::default_catalog();
        for (i, e) in catalog.entries().iter().enumerate() {
            assert_eq!(format!("{}.{}", e.resource, e.action), e.permission);
            assert!(!e.description.is_empty(), "{}", e.permission);
            assert_eq!(catalog.get(&e.permission), Some(&catalog.entries()[i]));
        }
        let attrs = catalog.get("organization.attributes.read").unwrap();
        assert_eq!(
            (attrs.resource.as_str(), attrs.action.as_str()),
            ("organization.attributes", "read")
        );
        assert!(attrs.organization_only);
        // The data file carries the descriptions through unchanged.
        assert_eq!(catalog.entries()[0].description, "Create roles");
        assert_eq!(
            catalog
                .get("organization.attributes.editUsers")
                .unwrap()
                .description,
            "Edit the attribute values of members"
        );
        assert_eq!(
            catalog.entries().last().unwrap().description,
            "Delete watchlist entries"
        );
        assert!(!catalog.get("team.read").unwrap().organization_only);
        assert!(catalog.get("team.create").unwrap().organization_only);
        assert_eq!(catalog.get("*.*"), None);
        assert_eq!(catalog.get("team.*"), None);
        assert_eq!(catalog.get("nosuch.read"), None);
        // Stable order: the same catalog twice lists the same sequence.
        assert_eq!(
            PermissionCatalog::default_catalog().entries(),
            catalog.entries()
        );
    }

    #[test]
    fn split_permission_cases() {
        assert_eq!(split_permission("team.read"), Some(("team", "read")));
        assert_eq!(
            split_permission("organization.attributes.read"),
            Some(("organization.attributes", "read"))
        );
        assert_eq!(split_permission("*.*"), Some(("*", "*")));
        assert_eq!(split_permission("team.*"), Some(("team", "*")));
        for bad in [
            "", "team", ".", "team.", ".read", "a..b", ".a.b", "a.b.", "..", "a.b..c",
        ] {
            assert_eq!(split_permission(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn permission_matches_cases() {
        let yes = [
            ("team.read", "team.read"),
            ("team.*", "team.read"),
            ("*.read", "team.read"),
            ("*.*", "team.read"),
            ("*.read", "organization.attributes.read"),
            ("organization.attributes.*", "organization.attributes.read"),
            ("*.*", "organization.attributes.editUsers"),
        ];
        let no = [
            ("team.read", "team.update"),
            ("team.*", "teams.read"),
            ("organization.*", "organization.attributes.read"),
            ("organization.*", "organization.attributes.editUsers"),
            ("*.read", "team.readAll"),
            ("*.read", "booking.readTeamBookings"),
            ("team.read", "team.read.extra"),
            ("*.*", "team"),
            ("*.*", ""),
            ("team.*", "team"),
            ("attributes.*", "organization.attributes.read"),
            ("", "team.read"),
        ];
        for (held, wanted) in yes {
            assert!(
                permission_matches(held, wanted),
                "{held} should grant {wanted}"
            );
        }
        for (held, wanted) in no {
            assert!(
                !permission_matches(held, wanted),
                "{held} should not grant {wanted}"
            );
        }
    }

    #[test]
    fn permission_set_agrees_with_permission_matches() {
        let catalog = PermissionCatalog::default_catalog();
        let helds: Vec<Vec<&str>> = vec![
            vec![],
            vec!["*.*"],
            vec!["team.read"],
            vec!["team.*", "booking.read"],
            vec!["*.read"],
            vec!["organization.*"],
            vec!["organization.attributes.*", "*.delete"],
            vec!["*.manageBilling", "role.*", "eventType.create"],
        ];
        let mut wanted: Vec<String> = catalog
            .entries()
            .iter()
            .map(|e| e.permission.clone())
            .collect();
        wanted.extend(strings(&[
            "",
            "team",
            "nosuch.read",
            "team.nosuch",
            "a..read",
            "organization.attributes",
        ]));
        for held in helds {
            let set = PermissionSet::new(strings(&held));
            for w in &wanted {
                let expected = held.iter().any(|h| permission_matches(h, w));
                assert_eq!(set.grants(w), expected, "held {held:?}, wanted {w:?}");
            }
        }
    }

    #[test]
    fn permission_set_basics() {
        let set: PermissionSet = strings(&["team.read", "team.read", "organization.*"])
            .into_iter()
            .collect();
        assert_eq!(
            set.held(),
            &strings(&["organization.*", "team.read"])
                .into_iter()
                .collect::<BTreeSet<_>>()
        );
        assert!(set.grants("organization.read"));
        assert!(!set.grants("organization.attributes.read"));
        assert!(!set.is_empty());
        let empty = PermissionSet::default();
        assert!(empty.is_empty());
        assert!(!empty.grants("team.read"));
        assert_eq!(empty, PermissionSet::new(Vec::new()));
        assert_eq!(
            PermissionSet::new(strings(&["a.b", "*.*"])),
            PermissionSet::new(strings(&["*.*", "a.b"]))
        );
    }

    #[test]
    fn expand_against_the_catalog() {
        let catalog = PermissionCatalog::default_catalog();
        let all: Vec<String> = {
            let mut v: Vec<String> = catalog
                .entries()
                .iter()
                .map(|e| e.permission.clone())
                .collect();
            v.sort();
            v
        };
        assert_eq!(PermissionSet::new(strings(&["*.*"])).expand(&catalog), all);
        assert_eq!(
            PermissionSet::new(strings(&["organization.*"])).expand(&catalog),
            strings(&[
                "organization.changeMemberRole",
                "organization.create",
                "organization.impersonate",
                "organization.invite",
                "organization.listMembers",
                "organization.listMembersPrivate",
                "organization.manageBilling",
                "organization.read",
                "organization.remove",
                "organization.update",
            ])
        );
        assert_eq!(
            PermissionSet::new(strings(&["*.manageBilling", "team.read", "not.inCatalog"]))
                .expand(&catalog),
            strings(&[
                "organization.manageBilling",
                "team.manageBilling",
                "team.read"
            ])
        );
        let reads = PermissionSet::new(strings(&["*.read"])).expand(&catalog);
        assert_eq!(reads.len(), 14);
        assert!(reads.contains(&"organization.attributes.read".to_string()));
        assert!(PermissionSet::default().expand(&catalog).is_empty());
    }

    fn violations(result: Result<BTreeSet<String>, Vec<FieldViolation>>) -> Vec<(String, String)> {
        result
            .unwrap_err()
            .into_iter()
            .map(|v| (v.field, v.description))
            .collect()
    }

    #[test]
    fn organization_role_accepts_entries_and_wildcards() {
        let catalog = PermissionCatalog::default_catalog();
        let input = strings(&[
            "team.read",
            "*.*",
            "team.create",
            "organization.*",
            "organization.attributes.*",
            "*.read",
            "*.manageBilling",
            "*.editUsers",
            "team.read",
            "booking.readOrgBookings",
        ]);
        let got = catalog
            .validate_role_permissions("permissions", &input, true)
            .unwrap();
        let expected: BTreeSet<String> = strings(&[
            "*.*",
            "*.editUsers",
            "*.manageBilling",
            "*.read",
            "booking.readOrgBookings",
            "organization.*",
            "organization.attributes.*",
            "team.create",
            "team.read",
        ])
        .into_iter()
        .collect();
        assert_eq!(got, expected);
        assert_eq!(
            catalog.validate_role_permissions("p", &[], true).unwrap(),
            BTreeSet::new()
        );
    }

    #[test]
    fn team_role_accepts_team_scope_dedup_sorted() {
        let catalog = PermissionCatalog::default_catalog();
        let input = strings(&[
            "webhook.read",
            "booking.read",
            "webhook.read",
            "team.listMembers",
        ]);
        let got = catalog
            .validate_role_permissions("permissions", &input, false)
            .unwrap();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            strings(&["booking.read", "team.listMembers", "webhook.read"])
        );
        let every_team_scope: Vec<String> = SEED_001_ENUM.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            catalog
                .validate_role_permissions("p", &every_team_scope, false)
                .unwrap()
                .len(),
            38
        );
    }

    #[test]
    fn team_role_rejects_org_only_and_wildcards() {
        let catalog = PermissionCatalog::default_catalog();
        let input = strings(&[
            "team.read",
            "team.create",
            "team.*",
            "*.read",
            "*.*",
            "organization.attributes.read",
            "booking.readOrgBookings",
            "*.nosuchaction",
        ]);
        let got = violations(catalog.validate_role_permissions("role.permissions", &input, false));
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "role.permissions[1]",
                "role.permissions[2]",
                "role.permissions[3]",
                "role.permissions[4]",
                "role.permissions[5]",
                "role.permissions[6]",
                "role.permissions[7]",
            ]
        );
        assert_eq!(
            got[0].1,
            "\"team.create\" is an organization-only permission; a sub-team role cannot hold it"
        );
        for (i, (_, description)) in got.iter().enumerate() {
            let offending = &input[i + 1];
            assert!(
                description.contains(&format!("\"{offending}\"")),
                "{description}"
            );
        }
        assert!(got[1].1.contains("wildcard"));
        assert!(got[4].1.contains("organization-only"));
    }

    #[test]
    fn unknown_and_malformed_strings_are_rejected() {
        let catalog = PermissionCatalog::default_catalog();
        let input = strings(&[
            "foo.bar",
            "*.nosuchaction",
            "nosuch.*",
            "organization.attributes",
            "",
            "team",
            "team.",
            ".read",
            "Team.read",
            "team.read ",
            "team..read",
            "**.read",
            "team.re*",
            "*",
            "booking.readTeamBookings",
        ]);
        let got = violations(catalog.validate_role_permissions("permissions", &input, true));
        assert_eq!(got.len(), input.len() - 1);
        for (i, (field, description)) in got.iter().enumerate() {
            assert_eq!(field, &format!("permissions[{i}]"));
            assert!(
                description.contains(&format!("{:?}", input[i])),
                "{description}"
            );
        }
        assert_eq!(got[0].1, "\"foo.bar\" is not in the permission catalog");
        assert_eq!(
            got[1].1,
            "\"*.nosuchaction\" names no action of the permission catalog"
        );
        assert_eq!(
            got[2].1,
            "\"nosuch.*\" names no resource of the permission catalog"
        );
        // A team role gets the same answer for strings that are not wildcards.
        let got = violations(catalog.validate_role_permissions("p", &strings(&["foo.bar"]), false));
        assert_eq!(
            got,
            vec![(
                "p[0]".to_string(),
                "\"foo.bar\" is not in the permission catalog".to_string()
            )]
        );
    }

    #[test]
    fn duplicates_of_an_offending_string_are_each_reported() {
        let catalog = PermissionCatalog::default_catalog();
        let got = violations(catalog.validate_role_permissions(
            "p",
            &strings(&["x.y", "team.read", "x.y"]),
            true,
        ));
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["p[0]", "p[2]"]);
    }

    fn entry(p: &str, org: bool) -> CatalogEntry {
        CatalogEntry::new(p, org, "").unwrap()
    }

    #[test]
    fn from_entries_validates() {
        let ok =
            PermissionCatalog::from_entries(vec![entry("b.read", false), entry("a.x.read", true)])
                .unwrap();
        let order: Vec<&str> = ok.entries().iter().map(|e| e.permission.as_str()).collect();
        assert_eq!(order, ["b.read", "a.x.read"]);

        let dup =
            PermissionCatalog::from_entries(vec![entry("a.read", false), entry("a.read", true)]);
        assert!(dup.unwrap_err().contains("\"a.read\" appears twice"));
        assert!(PermissionCatalog::from_entries(Vec::new()).is_err());

        let mut inconsistent = entry("a.read", false);
        inconsistent.action = "write".to_string();
        assert!(PermissionCatalog::from_entries(vec![inconsistent]).is_err());

        for bad in [
            "a", "a.", ".a", "a..b", "*.read", "a.*", "a.re ad", "a.read\n", "a/b.read", "",
        ] {
            assert!(CatalogEntry::new(bad, false, "").is_err(), "{bad:?}");
            let forged = CatalogEntry {
                permission: bad.to_string(),
                resource: String::new(),
                action: String::new(),
                organization_only: false,
                description: String::new(),
            };
            assert!(
                PermissionCatalog::from_entries(vec![forged]).is_err(),
                "{bad:?}"
            );
        }
    }
}

/// Permission matching against a model of the design's rules over structured permissions.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A concrete permission: a resource of one or more segments and an action.
    #[derive(Debug, Clone)]
    struct Wanted {
        resource: Vec<&'static str>,
        action: &'static str,
    }

    /// What a role may hold.
    #[derive(Debug, Clone)]
    enum Held {
        Exact(Wanted),
        AnyActionOf(Vec<&'static str>),
        AnyResourceWith(&'static str),
        All,
    }

    impl Wanted {
        fn text(&self) -> String {
            format!("{}.{}", self.resource.join("."), self.action)
        }
    }

    impl Held {
        fn text(&self) -> String {
            match self {
                Held::Exact(w) => w.text(),
                Held::AnyActionOf(resource) => format!("{}.*", resource.join(".")),
                Held::AnyResourceWith(action) => format!("*.{action}"),
                Held::All => "*.*".to_string(),
            }
        }

        /// The design's rule: a wildcard resource stands for one whole resource, never a prefix
        /// of a longer one (`organization.*` does not reach `organization.attributes.read`).
        fn grants(&self, wanted: &Wanted) -> bool {
            match self {
                Held::Exact(w) => w.resource == wanted.resource && w.action == wanted.action,
                Held::AnyActionOf(resource) => *resource == wanted.resource,
                Held::AnyResourceWith(action) => *action == wanted.action,
                Held::All => true,
            }
        }
    }

    // Few names, so that generated grants and wants often meet.
    const SEGMENTS: &[&str] = &["team", "organization", "attributes", "booking", "x"];
    const ACTIONS: &[&str] = &["read", "update", "readAll", "manageBilling", "x"];

    fn wanted() -> impl Strategy<Value = Wanted> {
        (
            prop::collection::vec(prop::sample::select(SEGMENTS), 1..=3),
            prop::sample::select(ACTIONS),
        )
            .prop_map(|(resource, action)| Wanted { resource, action })
    }

    fn held() -> impl Strategy<Value = Held> {
        prop_oneof![
            4 => wanted().prop_map(Held::Exact),
            2 => prop::collection::vec(prop::sample::select(SEGMENTS), 1..=3)
                .prop_map(Held::AnyActionOf),
            2 => prop::sample::select(ACTIONS).prop_map(Held::AnyResourceWith),
            1 => Just(Held::All),
        ]
    }

    /// Strings near the permission syntax: dots, stars, empty segments, spaces.
    fn near_permission() -> impl Strategy<Value = String> {
        "[a-c*. ]{0,8}"
    }

    fn catalog_permission() -> impl Strategy<Value = String> {
        let all: Vec<String> = PermissionCatalog::default_catalog()
            .entries()
            .iter()
            .map(|e| e.permission.clone())
            .collect();
        prop::sample::select(all)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn an_exact_grant_matches_itself(p in prop_oneof![
            wanted().prop_map(|w| w.text()),
            held().prop_map(|h| h.text()),
            near_permission(),
        ]) {
            prop_assert!(permission_matches(&p, &p));
            prop_assert!(PermissionSet::new([p.clone()]).grants(&p));
        }

        #[test]
        fn matching_agrees_with_the_model(h in held(), w in wanted()) {
            prop_assert_eq!(permission_matches(&h.text(), &w.text()), h.grants(&w));
        }

        #[test]
        fn a_set_grants_what_one_of_its_members_grants(
            held in prop::collection::vec(held(), 0..6),
            w in wanted(),
        ) {
            let set = PermissionSet::new(held.iter().map(Held::text));
            prop_assert_eq!(set.grants(&w.text()), held.iter().any(|h| h.grants(&w)));
        }

        /// On malformed text too, the set's fast path says what `permission_matches` says.
        #[test]
        fn a_set_agrees_with_permission_matches_on_any_text(
            held in prop::collection::vec(prop_oneof![held().prop_map(|h| h.text()), near_permission()], 0..6),
            w in prop_oneof![wanted().prop_map(|w| w.text()), near_permission()],
        ) {
            let set = PermissionSet::new(held.iter().cloned());
            prop_assert_eq!(set.grants(&w), held.iter().any(|h| permission_matches(h, &w)));
        }

        #[test]
        fn expanding_lists_the_granted_catalog_entries(held in prop::collection::vec(prop_oneof![
            catalog_permission(),
            catalog_permission().prop_map(|p| format!("{}.*", split_permission(&p).unwrap().0)),
            catalog_permission().prop_map(|p| format!("*.{}", split_permission(&p).unwrap().1)),
            Just("*.*".to_string()),
        ], 0..5)) {
            let catalog = PermissionCatalog::default_catalog();
            let set = PermissionSet::new(held.iter().cloned());
            let mut expected: Vec<String> = catalog
                .entries()
                .iter()
                .filter(|e| held.iter().any(|h| {
                    let (resource, action) = split_permission(h).unwrap();
                    (resource == "*" || resource == e.resource)
                        && (action == "*" || action == e.action)
                }))
                .map(|e| e.permission.clone())
                .collect();
            expected.sort();
            prop_assert_eq!(set.expand(&catalog), expected);
        }

        /// Which strings a custom role may hold: catalog entries in the role's scope, and for
        /// organization roles the wildcards naming a catalog resource or action.
        #[test]
        fn role_permission_validation_agrees_with_the_model(
            list in prop::collection::vec(prop_oneof![
                3 => catalog_permission(),
                2 => held().prop_map(|h| h.text()),
                1 => catalog_permission().prop_map(|p| format!("{}.*", split_permission(&p).unwrap().0)),
                1 => catalog_permission().prop_map(|p| format!("*.{}", split_permission(&p).unwrap().1)),
                1 => near_permission(),
            ], 0..8),
            organization_role in any::<bool>(),
        ) {
            let catalog = PermissionCatalog::default_catalog();
            let may_hold = |p: &str| -> bool {
                if let Some(e) = catalog.entries().iter().find(|e| e.permission == p) {
                    return organization_role || !e.organization_only;
                }
                if !organization_role {
                    return false;
                }
                match p.rsplit_once('.') {
                    Some(("*", "*")) => true,
                    Some(("*", action)) => catalog.entries().iter().any(|e| e.action == action),
                    Some((resource, "*")) => catalog.entries().iter().any(|e| e.resource == resource),
                    _ => false,
                }
            };
            let refused: Vec<String> = list
                .iter()
                .enumerate()
                .filter(|(_, p)| !may_hold(p))
                .map(|(i, _)| format!("permissions[{i}]"))
                .collect();
            match catalog.validate_role_permissions("permissions", &list, organization_role) {
                Ok(valid) => {
                    prop_assert!(refused.is_empty());
                    prop_assert_eq!(valid, list.iter().cloned().collect::<BTreeSet<_>>());
                }
                Err(violations) => {
                    let fields: Vec<String> = violations.into_iter().map(|v| v.field).collect();
                    prop_assert_eq!(fields, refused);
                }
            }
        }
    }
}
