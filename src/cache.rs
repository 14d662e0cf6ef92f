//! This replica's in-memory copy of what the hot reads need: a user's memberships, the
//! organization of each team, custom roles' permissions, and membership views. It follows the
//! event feed: every event invalidates what it touched before the feed's head moves past it, so
//! once the head has reached a revision, nothing in here is older than that revision.

use std::sync::{Arc, RwLock};

use moka::sync::Cache;

use crate::domain::catalog::PermissionSet;
use crate::domain::model::{Event, Membership, MembershipView};

pub struct AccessCache {
    /// Every membership of a user (pending ones too).
    users: Cache<i64, Arc<Vec<Membership>>>,
    /// team → its organization; a team never moves.
    team_org: Cache<i64, i64>,
    /// Custom roles' permissions (system roles come from the policy).
    roles: Cache<String, Arc<PermissionSet>>,
    views: Cache<i64, Arc<MembershipView>>,
    /// (team, user) → membership id.
    view_ids: Cache<(i64, i64), i64>,
    /// Bumped by every invalidation. A fill that read the database under an older generation
    /// is dropped: it may predate the change that invalidated its key.
    generation: RwLock<u64>,
}

impl AccessCache {
    pub fn new(capacity: u64) -> Self {
        Self {
            users: Cache::new(capacity),
            team_org: Cache::new(capacity),
            roles: Cache::new(capacity),
            views: Cache::new(capacity),
            view_ids: Cache::new(capacity),
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

    pub fn user_memberships(&self, user_id: i64) -> Option<Arc<Vec<Membership>>> {
        self.users.get(&user_id)
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
        self.team_org.get(&team_id)
    }

    pub fn fill_organization_of(&self, seen: u64, team_id: i64, organization_id: i64) {
        self.fill(seen, || self.team_org.insert(team_id, organization_id));
    }

    pub fn role_permissions(&self, role_id: &str) -> Option<Arc<PermissionSet>> {
        self.roles.get(role_id)
    }

    pub fn fill_role_permissions(&self, seen: u64, role_id: &str, permissions: Arc<PermissionSet>) {
        self.fill(seen, || self.roles.insert(role_id.to_string(), permissions));
    }

    pub fn view(&self, membership_id: i64) -> Option<Arc<MembershipView>> {
        self.views.get(&membership_id)
    }

    pub fn view_id(&self, team_id: i64, user_id: i64) -> Option<i64> {
        self.view_ids.get(&(team_id, user_id))
    }

    pub fn fill_view(&self, seen: u64, view: Arc<MembershipView>) {
        self.fill(seen, || {
            let m = &view.membership;
            self.view_ids.insert((m.team_id, m.user_id), m.id);
            self.views.insert(m.id, Arc::clone(&view));
        });
    }

    /// Forgets what `event` changed. Called by the feed, in sequence order, before its head
    /// moves past the event.
    pub fn apply(&self, event: &Event) {
        let mut generation = self.generation.write().unwrap_or_else(|e| e.into_inner());
        *generation += 1;
        let (resource, action) = event
            .kind
            .split_once('.')
            .unwrap_or((event.kind.as_str(), ""));
        match (resource, action) {
            ("membership", _) => {
                if let Some(user) = event.user_id {
                    self.users.invalidate(&user);
                    if let Some(team) = event.team_id {
                        self.view_ids.invalidate(&(team, user));
                    }
                }
                if let Some(id) = event.membership_id {
                    self.views.invalidate(&id);
                }
            }
            ("user", "updated" | "deleted") => {
                if let Some(user) = event.user_id {
                    self.users.invalidate(&user);
                }
                // Views embed the user's profile.
                self.views.invalidate_all();
            }
            ("role", "updated" | "deleted") => {
                if let Some(role) = &event.role_id {
                    self.roles.invalidate(role);
                }
            }
            // Deleting a team removes its memberships and roles without an event each.
            ("team" | "organization", "deleted") => self.clear_all(),
            // Views embed attribute names, options and values.
            ("attribute", _) => self.views.invalidate_all(),
            _ => {}
        }
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
    }
}
