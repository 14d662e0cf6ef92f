//! The hot reads (membership lookups and permission checks) with their consistency: from the
//! cache, from the cache once it has caught up with a revision, or from the database.

mod lookups;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::cache::AccessCache;
use crate::domain::access::{Decision, Effective, check_memberships, counts_for_permissions};
use crate::domain::catalog::PermissionSet;
use crate::domain::memberships::{MembershipAddress, MembershipTarget};
use crate::domain::model::{Consistency, Membership, MembershipView};
use crate::domain::{DomainError, DomainResult};
use crate::feed::Feed;
use crate::storage::Store;

/// How long an `at_least_as_fresh` read waits for the cache before reading the database.
const CATCH_UP_WAIT: Duration = Duration::from_millis(50);

/// A user's standing in a team, ready to decide checks (`Reads::judge`).
pub enum Judge {
    Cached { team_id: i64, inputs: CachedInputs },
    Stored(Effective),
}

impl Judge {
    pub fn check(&self, reads: &Reads, permission: &str) -> Decision {
        match self {
            Judge::Stored(effective) => effective.check(permission),
            Judge::Cached { team_id, inputs } => check_memberships(
                *team_id,
                inputs.organization_id,
                inputs.now,
                inputs.memberships.iter(),
                |role_id| reads.role_set(&inputs.custom, role_id),
                permission,
            ),
        }
    }
}

pub struct CachedInputs {
    /// The instant the evaluation judges expiry at: the same for choosing the custom roles and
    /// for the decision.
    now: DateTime<Utc>,
    organization_id: i64,
    memberships: Arc<Vec<Membership>>,
    custom: Vec<(String, Arc<PermissionSet>)>,
}

#[derive(Clone)]
pub struct Reads {
    store: Store,
    cache: Arc<AccessCache>,
    feed: Arc<Feed>,
}

/// Where a read is answered from, and the revision the answer reflects at least.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache(i64),
    Database(i64),
}

impl Source {
    pub fn revision(self) -> i64 {
        match self {
            Source::Cache(r) | Source::Database(r) => r,
        }
    }
}

impl Reads {
    pub fn new(store: Store, cache: Arc<AccessCache>, feed: Arc<Feed>) -> Self {
        Self { store, cache, feed }
    }

    /// Picks the source for a consistency requirement.
    pub async fn source(&self, consistency: Consistency) -> DomainResult<Source> {
        match consistency {
            Consistency::MinimizeLatency => Ok(Source::Cache(self.feed.head())),
            Consistency::AtLeastAsFresh(revision) => {
                if self.feed.head() >= revision {
                    return Ok(Source::Cache(self.feed.head()));
                }
                // Another replica wrote it: have the feed look now rather than at its next poll.
                self.store.committed().notify_one();
                let mut head = self.feed.watch_head();
                let caught_up =
                    tokio::time::timeout(CATCH_UP_WAIT, head.wait_for(|h| *h >= revision))
                        .await
                        .ok()
                        .and_then(|r| r.ok().map(|h| *h));
                Ok(match caught_up {
                    Some(h) => Source::Cache(h),
                    // The database holds the write the caller named: it committed before the
                    // caller could learn its revision — unless no write has that revision yet.
                    None => Source::Database(self.known_revision(revision).await?),
                })
            }
            // A database read reflects every commit before it, which includes everything this
            // replica's feed has delivered: the head is a lower bound that costs no query.
            Consistency::FullyConsistent => Ok(Source::Database(self.feed.head())),
        }
    }

    /// Waits (briefly) until this replica's cache reflects a write of its own, so that a caller
    /// reads its own writes here even with `minimize_latency`. The commit wakes the feed, so
    /// this is one feed read; if the feed is slow the answer goes out anyway.
    pub async fn settle(&self, revision: i64) {
        if revision <= 0 || self.feed.head() >= revision {
            return;
        }
        let mut head = self.feed.watch_head();
        let _ =
            tokio::time::timeout(Duration::from_secs(1), head.wait_for(|h| *h >= revision)).await;
    }

    /// The revision a list answer reflects: lists always read the database, which holds every
    /// committed write, so a lower bound that costs no query will do.
    pub async fn list_revision(&self, consistency: Consistency) -> DomainResult<i64> {
        Ok(match consistency {
            Consistency::MinimizeLatency => self.feed.head(),
            Consistency::AtLeastAsFresh(revision) if revision <= self.feed.head() => {
                self.feed.head()
            }
            Consistency::AtLeastAsFresh(revision) => self.known_revision(revision).await?,
            Consistency::FullyConsistent => self.feed.head(),
        })
    }

    /// `revision` itself once the database's sequence has reached it; a revision no write has
    /// had is not believed (and echoed back as if the answer reflected it) but refused.
    async fn known_revision(&self, revision: i64) -> DomainResult<i64> {
        let head = self.store.feed_head().await?.last;
        if revision > head {
            return Err(DomainError::RevisionUnknown {
                field: "consistency.at_least_as_fresh".into(),
                requested: revision,
                head,
            });
        }
        Ok(revision.max(self.feed.head()))
    }

    pub async fn effective(
        &self,
        source: Source,
        user_id: i64,
        team_id: i64,
    ) -> DomainResult<Effective> {
        match source {
            Source::Database(_) => self.store.effective_permissions(user_id, team_id).await,
            Source::Cache(_) => self.cached_effective(user_id, team_id).await,
        }
    }

    /// The organization of a team (itself for an organization), from the cache when it has it.
    /// NOT_FOUND for an absent team.
    pub async fn organization_of(&self, team_id: i64) -> DomainResult<i64> {
        let seen = self.cache.generation();
        match self.cache.organization_of(team_id) {
            Some(org) => Ok(org),
            None => {
                let org = self.store.organization_of(team_id).await?;
                self.cache.fill_organization_of(seen, team_id, org);
                Ok(org)
            }
        }
    }

    async fn cached_effective(&self, user_id: i64, team_id: i64) -> DomainResult<Effective> {
        let inputs = self.cached_inputs(user_id, team_id).await?;
        Ok(Effective::from_memberships(
            team_id,
            inputs.organization_id,
            inputs.now,
            inputs.memberships.iter(),
            |role_id| self.role_set(&inputs.custom, role_id),
        ))
    }

    /// What deciding checks of one user in one team needs, read once for all the permissions a
    /// batch asks about.
    pub async fn judge(&self, source: Source, user_id: i64, team_id: i64) -> DomainResult<Judge> {
        Ok(match source {
            Source::Database(_) => {
                Judge::Stored(self.store.effective_permissions(user_id, team_id).await?)
            }
            Source::Cache(_) => Judge::Cached {
                team_id,
                inputs: self.cached_inputs(user_id, team_id).await?,
            },
        })
    }

    /// What a cached evaluation of a user in a team reads: the team's organization, the user's
    /// memberships, and the permissions of the custom roles among those that count (from the
    /// cache, or read and cached now).
    async fn cached_inputs(&self, user_id: i64, team_id: i64) -> DomainResult<CachedInputs> {
        let seen = self.cache.generation();
        let organization_id = self.organization_of(team_id).await?;
        let memberships = self.cached_user_memberships(seen, user_id).await?;
        let policy = self.store.policy();
        // The cached memberships carry their expiry: judged at this instant, an expired one
        // counts for nothing whether or not its `membership.expired` event has arrived.
        let now = Utc::now();
        let mut custom = Vec::new();
        for m in memberships.iter() {
            if !counts_for_permissions(m, team_id, organization_id, now)
                || policy.system_permissions(&m.role_id).is_some()
            {
                continue;
            }
            let set = match self.cache.role_permissions(&m.role_id) {
                Some(set) => set,
                None => {
                    let stored = self.store.custom_role_permissions(&m.role_id).await?;
                    let set = policy.role_permissions(&m.role_id, stored.as_deref());
                    self.cache
                        .fill_role_permissions(seen, &m.role_id, Arc::clone(&set));
                    set
                }
            };
            custom.push((m.role_id.clone(), set));
        }
        Ok(CachedInputs {
            now,
            organization_id,
            memberships,
            custom,
        })
    }

    /// A role's permissions: a system role's from the policy, a custom one's from `custom`.
    fn role_set(
        &self,
        custom: &[(String, Arc<PermissionSet>)],
        role_id: &str,
    ) -> Arc<PermissionSet> {
        if let Some(system) = self.store.policy().system_permissions(role_id) {
            return Arc::clone(system);
        }
        custom
            .iter()
            .find(|(id, _)| id == role_id)
            .map(|(_, set)| Arc::clone(set))
            .unwrap_or_default()
    }

    /// Every membership of a user (pending ones too), from the cache when it has them.
    async fn cached_user_memberships(
        &self,
        seen: u64,
        user_id: i64,
    ) -> DomainResult<Arc<Vec<Membership>>> {
        if let Some(m) = self.cache.user_memberships(user_id) {
            return Ok(m);
        }
        let m = Arc::new(self.store.memberships_of_user(user_id).await?);
        self.cache
            .fill_user_memberships(seen, user_id, Arc::clone(&m));
        Ok(m)
    }

    pub async fn membership(
        &self,
        source: Source,
        address: &MembershipAddress,
    ) -> DomainResult<Arc<MembershipView>> {
        if let Source::Database(_) = source {
            return Ok(Arc::new(self.store.get_membership(address).await?));
        }
        let id = match (address.target, address.team_id) {
            (MembershipTarget::MembershipId(id), _) => Some(id),
            (MembershipTarget::UserId(user), Some(team)) => self.cache.view_id(team, user),
            (MembershipTarget::UserId(_), None) => None,
        };
        if let Some(view) = id.and_then(|id| self.cache.view(id))
            && address.matches(&view.membership)
        {
            return Ok(view);
        }
        let seen = self.cache.generation();
        let view = Arc::new(self.store.get_membership(address).await?);
        self.cache.fill_view(seen, Arc::clone(&view));
        Ok(view)
    }
}
