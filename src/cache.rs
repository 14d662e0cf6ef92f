//! This replica's in-memory copy of what the hot reads need: a user's memberships, the
//! organization of each team, custom roles' permissions, and membership views. It follows the
//! event feed: every event invalidates what it touched before the feed's head moves past it, so
//! once the head has reached a revision, nothing in here is older than that revision.

use std::sync::{Arc, RwLock};

use moka::sync::Cache;

use crate::domain::api_keys::KeyCredentials;
use crate::domain::catalog::PermissionSet;
use crate::domain::events::EventKind;
use crate::domain::model::{Event, Membership, MembershipView};
use crate::metrics::{self, CacheKind};

/// moka's default hasher is SipHash; the keys here are ids, role ids and secret digests.
type Hasher = foldhash::fast::RandomState;

fn cache<K, V>(capacity: u64) -> Cache<K, V, Hasher>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(capacity)
        .build_with_hasher(Hasher::default())
}

pub struct AccessCache {
    /// Every membership of a user (pending ones too).
    users: Cache<i64, Arc<Vec<Membership>>, Hasher>,
    /// team → its organization; a team never moves.
    team_org: Cache<i64, i64, Hasher>,
    /// Custom roles' permissions (system roles come from the policy).
    roles: Cache<String, Arc<PermissionSet>, Hasher>,
    views: Cache<i64, Arc<MembershipView>, Hasher>,
    /// (team, user) → membership id.
    view_ids: Cache<(i64, i64), i64, Hasher>,
    /// The SHA-256 of a key's secret → what authenticating with it needs.
    keys: Cache<String, Arc<KeyCredentials>, Hasher>,
    /// A team's memberships, by ascending user id (LookupUsers).
    team_members: Cache<i64, Arc<Vec<Membership>>, Hasher>,
    /// An organization's sub-teams, ascending (LookupTeams).
    sub_teams: Cache<i64, Arc<Vec<i64>>, Hasher>,
    /// Bumped by every invalidation. A fill that read the database under an older generation
    /// is dropped: it may predate the change that invalidated its key.
    generation: RwLock<u64>,
}

impl AccessCache {
    pub fn new(capacity: u64) -> Self {
        Self {
            users: cache(capacity),
            team_org: cache(capacity),
            roles: cache(capacity),
            views: cache(capacity),
            view_ids: cache(capacity),
            keys: cache(capacity),
            team_members: cache(capacity),
            sub_teams: cache(capacity),
            generation: RwLock::new(0),
        }
    }

    /// Read before a database read whose result may be cached.
    pub fn generation(&self) -> u64 {
        *self.generation.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `insert` unless an invalidation happened since `seen`; the read lock keeps an
    /// invalidation from slipping between the check and the insert.
    fn fill(&self, seen: u64, insert: impl FnOnce()) {
        let generation = self.generation.read().unwrap_or_else(|e| e.into_inner());
        if *generation == seen {
            insert();
        }
    }

    pub fn key(&self, secret_hash: &str) -> Option<Arc<KeyCredentials>> {
        metrics::cache_lookup(CacheKind::ApiKeys, self.keys.get(secret_hash))
    }

    pub fn fill_key(&self, seen: u64, secret_hash: String, key: Arc<KeyCredentials>) {
        self.fill(seen, || self.keys.insert(secret_hash, key));
    }

    pub fn user_memberships(&self, user_id: i64) -> Option<Arc<Vec<Membership>>> {
        metrics::cache_lookup(CacheKind::UserMemberships, self.users.get(&user_id))
    }

    pub fn fill_user_memberships(
        &self,
        seen: u64,
        user_id: i64,
        memberships: Arc<Vec<Membership>>,
    ) {
        self.fill(seen, || self.users.insert(user_id, memberships));
    }

    pub fn organization_of(&self, team_id: i64) -> Option<i64> {
        metrics::cache_lookup(CacheKind::TeamOrganizations, self.team_org.get(&team_id))
    }

    pub fn fill_organization_of(&self, seen: u64, team_id: i64, organization_id: i64) {
        self.fill(seen, || self.team_org.insert(team_id, organization_id));
    }

    pub fn role_permissions(&self, role_id: &str) -> Option<Arc<PermissionSet>> {
        metrics::cache_lookup(CacheKind::RolePermissions, self.roles.get(role_id))
    }

    pub fn fill_role_permissions(&self, seen: u64, role_id: &str, permissions: Arc<PermissionSet>) {
        self.fill(seen, || self.roles.insert(role_id.to_string(), permissions));
    }

    pub fn view(&self, membership_id: i64) -> Option<Arc<MembershipView>> {
        metrics::cache_lookup(CacheKind::MembershipViews, self.views.get(&membership_id))
    }

    pub fn view_id(&self, team_id: i64, user_id: i64) -> Option<i64> {
        metrics::cache_lookup(
            CacheKind::MembershipIds,
            self.view_ids.get(&(team_id, user_id)),
        )
    }

    pub fn fill_view(&self, seen: u64, view: Arc<MembershipView>) {
        self.fill(seen, || {
            let m = &view.membership;
            self.view_ids.insert((m.team_id, m.user_id), m.id);
            self.views.insert(m.id, Arc::clone(&view));
        });
    }

    pub fn team_members(&self, team_id: i64) -> Option<Arc<Vec<Membership>>> {
        metrics::cache_lookup(CacheKind::TeamMembers, self.team_members.get(&team_id))
    }

    pub fn fill_team_members(&self, seen: u64, team_id: i64, members: Arc<Vec<Membership>>) {
        self.fill(seen, || self.team_members.insert(team_id, members));
    }

    pub fn sub_teams(&self, organization_id: i64) -> Option<Arc<Vec<i64>>> {
        metrics::cache_lookup(CacheKind::SubTeams, self.sub_teams.get(&organization_id))
    }

    pub fn fill_sub_teams(&self, seen: u64, organization_id: i64, teams: Arc<Vec<i64>>) {
        self.fill(seen, || self.sub_teams.insert(organization_id, teams));
    }

    /// Forgets what `event` changed. Called by the feed, in sequence order, before its head
    /// moves past the event.
    pub fn apply(&self, event: &Event) {
        let mut generation = self.generation.write().unwrap_or_else(|e| e.into_inner());
        *generation += 1;
        let Some(kind) = EventKind::parse(&event.kind) else {
            // A kind this build does not know (a newer replica wrote it): what it touched is
            // unknown, so nothing cached is trusted.
            tracing::warn!(kind = %event.kind, "unknown event kind; clearing the access cache");
            self.clear_all();
            return;
        };
        match kind {
            EventKind::MembershipCreated
            | EventKind::MembershipUpdated
            | EventKind::MembershipDeleted
            | EventKind::MembershipExpired => {
                if let Some(user) = event.user_id {
                    self.users.invalidate(&user);
                    if let Some(team) = event.team_id {
                        self.view_ids.invalidate(&(team, user));
                    }
                }
                if let Some(id) = event.membership_id {
                    self.views.invalidate(&id);
                }
                match event.team_id {
                    Some(team) => self.team_members.invalidate(&team),
                    None => self.team_members.invalidate_all(),
                }
            }
            // Nothing cached refers to a user before their first membership.
            EventKind::UserCreated => {}
            EventKind::UserUpdated | EventKind::UserDeleted => {
                if let Some(user) = event.user_id {
                    self.users.invalidate(&user);
                }
                // Views embed the user's profile. (A deleted user's memberships have their own
                // membership.deleted events.)
                self.views.invalidate_all();
            }
            // No membership uses a new role yet.
            EventKind::RoleCreated => {}
            EventKind::RoleUpdated | EventKind::RoleDeleted => {
                if let Some(role) = &event.role_id {
                    self.roles.invalidate(role);
                }
            }
            // A new sub-team joins its organization's list.
            EventKind::TeamCreated => match event.organization_id {
                Some(org) => self.sub_teams.invalidate(&org),
                None => self.sub_teams.invalidate_all(),
            },
            // A team never moves to another organization, and views do not embed teams.
            EventKind::OrganizationCreated
            | EventKind::OrganizationUpdated
            | EventKind::TeamUpdated => {}
            // Deleting a team removes its memberships and roles without an event each.
            EventKind::OrganizationDeleted | EventKind::TeamDeleted => self.clear_all(),
            // Views embed attribute names, options and values.
            EventKind::AttributeCreated
            | EventKind::AttributeUpdated
            | EventKind::AttributeDeleted => self.views.invalidate_all(),
            // A new key is read when first used.
            EventKind::ApiKeyCreated => {}
            // Keys are cached by the hash of their secret, which the event does not carry.
            EventKind::ApiKeyRevoked => self.keys.invalidate_all(),
            // Invitations are not cached; an accepted one records `membership.created` too.
            EventKind::InvitationCreated
            | EventKind::InvitationAccepted
            | EventKind::InvitationRevoked
            | EventKind::InvitationExpired => {}
        }
    }

    /// Entries per cache, for the metrics. Exact: pending inserts and evictions are applied
    /// first (a scrape's cost, not a lookup's).
    pub fn entry_counts(&self) -> [(CacheKind, u64); CacheKind::ALL.len()] {
        CacheKind::ALL.map(|kind| {
            let count = match kind {
                CacheKind::UserMemberships => entries(&self.users),
                CacheKind::TeamOrganizations => entries(&self.team_org),
                CacheKind::RolePermissions => entries(&self.roles),
                CacheKind::MembershipViews => entries(&self.views),
                CacheKind::MembershipIds => entries(&self.view_ids),
                CacheKind::ApiKeys => entries(&self.keys),
                CacheKind::TeamMembers => entries(&self.team_members),
                CacheKind::SubTeams => entries(&self.sub_teams),
            };
            (kind, count)
        })
    }

    /// After a gap in the feed nothing cached can be trusted.
    pub fn clear(&self) {
        let mut generation = self.generation.write().unwrap_or_else(|e| e.into_inner());
        *generation += 1;
        self.clear_all();
    }

    fn clear_all(&self) {
        self.users.invalidate_all();
        self.team_org.invalidate_all();
        self.roles.invalidate_all();
        self.views.invalidate_all();
        self.view_ids.invalidate_all();
        self.keys.invalidate_all();
        self.team_members.invalidate_all();
        self.sub_teams.invalidate_all();
    }
}

fn entries<K, V>(cache: &Cache<K, V, Hasher>) -> u64
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    cache.run_pending_tasks();
    cache.entry_count()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::Utc;

    use super::*;
    use crate::domain::model::{AutoRecordCalls, JsonObject, User};
    use crate::domain::roles::BaseRole;

    const USER: i64 = 3;
    const OTHER_USER: i64 = 4;
    const TEAM: i64 = 2;
    const MEMBERSHIP: i64 = 20;
    const OTHER_MEMBERSHIP: i64 = 21;

    fn membership(id: i64, user_id: i64) -> Membership {
        Membership {
            id,
            team_id: TEAM,
            organization_id: 1,
            user_id,
            accepted: true,
            role: BaseRole::Member,
            role_id: "role_a".into(),
            role_key: "a".into(),
            disable_impersonation: false,
            auto_record_calls: AutoRecordCalls::Unset,
            public_metadata: JsonObject::new(),
            private_metadata: JsonObject::new(),
            expires_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version: 1,
        }
    }

    fn view(id: i64, user_id: i64) -> Arc<MembershipView> {
        Arc::new(MembershipView {
            membership: membership(id, user_id),
            user: User {
                id: user_id,
                email: format!("{user_id}@cache.test"),
                username: None,
                name: String::new(),
                first_name: String::new(),
                last_name: String::new(),
                avatar_url: String::new(),
                bio: String::new(),
                metadata: JsonObject::new(),
                created_at: Utc::now(),
                updated_at: Utc::now(),
                version: 1,
            },
            attributes: Vec::new(),
        })
    }

    /// A cache holding one entry of each kind for `USER` and one for `OTHER_USER`.
    fn filled() -> AccessCache {
        let cache = AccessCache::new(100);
        let seen = cache.generation();
        for (user, id) in [(USER, MEMBERSHIP), (OTHER_USER, OTHER_MEMBERSHIP)] {
            cache.fill_user_memberships(seen, user, Arc::new(vec![membership(id, user)]));
            cache.fill_view(seen, view(id, user));
        }
        cache.fill_organization_of(seen, TEAM, 1);
        for role in ["role_a", "role_b"] {
            cache.fill_role_permissions(seen, role, Arc::new(PermissionSet::default()));
        }
        let key = KeyCredentials {
            id: "key_1".into(),
            scopes: vec!["admin".into()],
            organization_id: None,
            expires_at: None,
            revoked: false,
            rate_limit_per_second: None,
        };
        cache.fill_key(seen, "hash".into(), Arc::new(key));
        cache
    }

    /// What is still cached, by name.
    fn remaining(cache: &AccessCache) -> BTreeSet<&'static str> {
        let mut left = BTreeSet::new();
        let mut note = |present: bool, name| {
            if present {
                left.insert(name);
            }
        };
        note(cache.user_memberships(USER).is_some(), "user");
        note(cache.user_memberships(OTHER_USER).is_some(), "other user");
        note(cache.organization_of(TEAM).is_some(), "team org");
        note(cache.role_permissions("role_a").is_some(), "role");
        note(cache.role_permissions("role_b").is_some(), "other role");
        note(cache.view(MEMBERSHIP).is_some(), "view");
        note(cache.view(OTHER_MEMBERSHIP).is_some(), "other view");
        note(cache.view_id(TEAM, USER).is_some(), "view id");
        note(cache.view_id(TEAM, OTHER_USER).is_some(), "other view id");
        note(cache.key("hash").is_some(), "key");
        left
    }

    fn event(kind: &str) -> Event {
        Event {
            sequence: 1,
            kind: kind.into(),
            occurred_at: Utc::now(),
            actor_key_id: None,
            actor_user_id: None,
            organization_id: Some(1),
            team_id: Some(TEAM),
            user_id: Some(USER),
            membership_id: Some(MEMBERSHIP),
            role_id: Some("role_a".into()),
            before: None,
            after: None,
        }
    }

    const EVERYTHING: [&str; 10] = [
        "user",
        "other user",
        "team org",
        "role",
        "other role",
        "view",
        "other view",
        "view id",
        "other view id",
        "key",
    ];

    fn all_but(gone: &[&str]) -> BTreeSet<&'static str> {
        EVERYTHING
            .into_iter()
            .filter(|name| !gone.contains(name))
            .collect()
    }

    #[test]
    fn each_event_kind_invalidates_what_it_touched() {
        let views = ["view", "other view"];
        for kind in EventKind::ALL {
            let expected = match kind {
                EventKind::MembershipCreated
                | EventKind::MembershipUpdated
                | EventKind::MembershipDeleted
                | EventKind::MembershipExpired => all_but(&["user", "view", "view id"]),
                EventKind::UserUpdated | EventKind::UserDeleted => {
                    all_but(&["user", "view", "other view"])
                }
                EventKind::RoleUpdated | EventKind::RoleDeleted => all_but(&["role"]),
                EventKind::OrganizationDeleted | EventKind::TeamDeleted => BTreeSet::new(),
                EventKind::AttributeCreated
                | EventKind::AttributeUpdated
                | EventKind::AttributeDeleted => all_but(&views),
                EventKind::ApiKeyRevoked => all_but(&["key"]),
                EventKind::UserCreated
                | EventKind::ApiKeyCreated
                | EventKind::RoleCreated
                | EventKind::OrganizationCreated
                | EventKind::OrganizationUpdated
                | EventKind::TeamCreated
                | EventKind::TeamUpdated
                | EventKind::InvitationCreated
                | EventKind::InvitationAccepted
                | EventKind::InvitationRevoked
                | EventKind::InvitationExpired => all_but(&[]),
            };
            let cache = filled();
            assert_eq!(remaining(&cache), all_but(&[]), "filled");
            cache.apply(&event(kind.as_str()));
            assert_eq!(remaining(&cache), expected, "{kind}");
        }
    }

    #[test]
    fn entries_are_counted_per_cache() {
        let counts = filled().entry_counts();
        let count = |kind| counts.iter().find(|(k, _)| *k == kind).unwrap().1;
        assert_eq!(count(CacheKind::UserMemberships), 2);
        assert_eq!(count(CacheKind::TeamOrganizations), 1);
        assert_eq!(count(CacheKind::RolePermissions), 2);
        assert_eq!(count(CacheKind::MembershipViews), 2);
        assert_eq!(count(CacheKind::MembershipIds), 2);
        assert_eq!(count(CacheKind::ApiKeys), 1);
    }

    #[test]
    fn an_unknown_kind_clears_everything() {
        let cache = filled();
        cache.apply(&event("membership.moved"));
        assert_eq!(remaining(&cache), BTreeSet::new());
    }

    #[test]
    fn a_fill_from_before_an_invalidation_is_dropped() {
        let cache = AccessCache::new(100);
        let seen = cache.generation();
        cache.apply(&event("membership.updated"));
        cache.fill_user_memberships(seen, USER, Arc::new(vec![membership(MEMBERSHIP, USER)]));
        assert!(cache.user_memberships(USER).is_none());
    }
}
