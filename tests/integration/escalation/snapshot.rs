//! What a world looks like between two operations, read through the API, and what follows from
//! it: who holds which permissions in which team, and whether they are an OWNER there.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use crate::common::pb;
use pb::MembershipRole;

/// The permission catalog, to expand a role's held strings (wildcards included) the way the
/// service does: a catalog entry is held when the role holds it, `*.*`, `resource.*` or
/// `*.action` (split at the last dot).
pub struct Catalog {
    /// Each entry with the two wildcards that also grant it.
    entries: Vec<(String, String, String)>,
}

impl Catalog {
    pub fn new(entries: Vec<String>) -> Catalog {
        assert!(
            entries.len() <= 128,
            "the permission sets here hold at most 128 catalog entries, the catalog has {}",
            entries.len()
        );
        let entries = entries
            .into_iter()
            .map(|entry| {
                let (resource, action) = entry.rsplit_once('.').unwrap_or((&entry, ""));
                let wildcards = (format!("{resource}.*"), format!("*.{action}"));
                (entry, wildcards.0, wildcards.1)
            })
            .collect();
        Catalog { entries }
    }

    pub fn expand(&self, held: &[String]) -> Perms {
        let held: HashSet<&str> = held.iter().map(String::as_str).collect();
        let all = held.contains("*.*");
        let mut bits = 0u128;
        for (i, (entry, any_action, any_resource)) in self.entries.iter().enumerate() {
            if all
                || held.contains(entry.as_str())
                || held.contains(any_action.as_str())
                || held.contains(any_resource.as_str())
            {
                bits |= 1 << i;
            }
        }
        Perms(bits)
    }

    /// The permissions of the set, sorted.
    pub fn names(&self, perms: Perms) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(i, _)| perms.0 & (1 << i) != 0)
            .map(|(_, (entry, _, _))| entry.as_str())
            .collect();
        names.sort_unstable();
        names
    }
}

/// A set of catalog permissions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Perms(u128);

impl Perms {
    pub fn union(self, other: Perms) -> Perms {
        Perms(self.0 | other.0)
    }

    pub fn minus(self, other: Perms) -> Perms {
        Perms(self.0 & !other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// What a user holds in a team: the permissions, the highest base level, and whether that is
/// OWNER (the OWNER level or `owner_role`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holding {
    pub perms: Perms,
    pub level: i32,
    pub owner: bool,
}

/// The world as read through the API. `teams` is the organization first, then its sub-teams by
/// id. Derived values (the organization's `members_count`, every `revision`) are left out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    pub teams: Vec<i64>,
    /// By (team, user).
    pub memberships: BTreeMap<(i64, i64), pb::Membership>,
    /// Every role the teams list, system roles included, by id.
    pub roles: BTreeMap<String, pb::Role>,
    pub organization: pb::Organization,
    /// The sub-teams, by id.
    pub team_rows: BTreeMap<i64, pb::Team>,
    pub attributes: Vec<pb::Attribute>,
    /// The world's users (`None`: deleted).
    pub users: BTreeMap<i64, Option<pb::User>>,
}

impl Snapshot {
    pub fn organization_id(&self) -> i64 {
        self.teams[0]
    }

    pub fn has_accepted_owner(&self) -> bool {
        let org = self.organization_id();
        self.memberships.iter().any(|((team, _), m)| {
            *team == org && m.accepted && m.role == MembershipRole::Owner as i32
        })
    }

    /// What the memberships give, with every role expanded once.
    pub fn holdings(&self, catalog: &Catalog) -> Holdings<'_> {
        Holdings {
            snapshot: self,
            roles: self
                .roles
                .iter()
                .map(|(id, role)| (id.as_str(), catalog.expand(&role.permissions)))
                .collect(),
        }
    }

    /// A readable list of what differs from `other` (empty when equal).
    pub fn diff(&self, other: &Snapshot) -> String {
        let mut out = String::new();
        if self.teams != other.teams {
            let _ = writeln!(out, "    teams {:?} -> {:?}", self.teams, other.teams);
        }
        diff_maps(
            &mut out,
            "membership",
            &self.memberships,
            &other.memberships,
        );
        diff_maps(&mut out, "role", &self.roles, &other.roles);
        if self.organization != other.organization {
            let _ = writeln!(
                out,
                "    organization: {:?}\n      -> {:?}",
                self.organization, other.organization
            );
        }
        diff_maps(&mut out, "team", &self.team_rows, &other.team_rows);
        if self.attributes != other.attributes {
            let _ = writeln!(
                out,
                "    attributes: {:?}\n      -> {:?}",
                self.attributes, other.attributes
            );
        }
        diff_maps(&mut out, "user", &self.users, &other.users);
        out
    }
}

/// Who holds what in a snapshot.
pub struct Holdings<'s> {
    snapshot: &'s Snapshot,
    roles: HashMap<&'s str, Perms>,
}

impl Holdings<'_> {
    /// What `user` holds in `team`: from their memberships in the team and in the organization,
    /// the accepted ones only, or (`with_pending`) the invitations too — an invitation is a grant
    /// already made, which its user completes alone by accepting it.
    pub fn of(&self, user: i64, team: i64, with_pending: bool) -> Holding {
        let org = self.snapshot.organization_id();
        let mut holding = Holding::default();
        for t in [team, org] {
            let Some(m) = self.snapshot.memberships.get(&(t, user)) else {
                continue;
            };
            if !(m.accepted || with_pending) {
                continue;
            }
            if let Some(perms) = self.roles.get(m.role_id.as_str()) {
                holding.perms = holding.perms.union(*perms);
            }
            holding.level = holding.level.max(m.role);
            holding.owner |= is_owner(m);
        }
        holding
    }
}

/// OWNER as the owner rule means it: the OWNER level, or `owner_role`.
pub fn is_owner(m: &pb::Membership) -> bool {
    m.role == MembershipRole::Owner as i32 || m.role_id == "owner_role"
}

/// The fields the owner rule protects: whether the membership counts, its level and role, its
/// metadata.
pub fn owner_rule_fields_differ(a: &pb::Membership, b: &pb::Membership) -> bool {
    a.accepted != b.accepted
        || a.role != b.role
        || a.role_id != b.role_id
        || a.public_metadata != b.public_metadata
        || a.private_metadata != b.private_metadata
}

fn diff_maps<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    out: &mut String,
    what: &str,
    before: &BTreeMap<K, V>,
    after: &BTreeMap<K, V>,
) {
    for (key, value) in before {
        match after.get(key) {
            None => {
                let _ = writeln!(out, "    {what} {key:?} removed: {value:?}");
            }
            Some(now) if now != value => {
                let _ = writeln!(out, "    {what} {key:?}: {value:?}\n      -> {now:?}");
            }
            Some(_) => {}
        }
    }
    for (key, value) in after {
        if !before.contains_key(key) {
            let _ = writeln!(out, "    {what} {key:?} added: {value:?}");
        }
    }
}
