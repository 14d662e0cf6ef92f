//! The sweep of expired memberships. Expiry itself needs no sweep: every read judges a
//! membership's `expires_at` at its own instant (`domain::access::counts_for_permissions`). The
//! sweep only deletes what already grants nothing, and records `membership.expired` for it.
//!
//! Several replicas sweep the same database: each membership is deleted in a transaction of its
//! own under its organization's lock, after reading it again there, so exactly one replica
//! deletes it and records its event; the others find it gone and move on.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::membership;
use super::shared::{lock_organization, remove_membership};
use super::{Store, convert, db_error};
use crate::domain::events::EventKind;
use crate::domain::model::{Actor, Membership};
use crate::domain::{DomainError, DomainResult};

/// Memberships one sweep reads at a time.
const SWEEP_BATCH: u64 = 500;

impl Store {
    /// Deletes memberships expired at `now`, a batch at a time by id, each with a
    /// `membership.expired` event. An organization membership takes the user's sub-team
    /// memberships in it along, as DeleteMembership does: each records `membership.expired` when
    /// it had expired itself, `membership.deleted` otherwise. Returns how many expired
    /// memberships this call deleted. One that cannot go yet is passed over (the cursor moves
    /// on), so it never holds up the others.
    pub async fn sweep_expired_memberships(&self, now: DateTime<Utc>) -> DomainResult<u64> {
        let mut swept = 0;
        let mut after = 0;
        loop {
            let due: Vec<(i64, i64)> = membership::Entity::find()
                .select_only()
                .column(membership::Column::Id)
                .column(membership::Column::OrganizationId)
                .filter(membership::Column::ExpiresAt.lte(now.timestamp_micros()))
                .filter(membership::Column::Id.gt(after))
                .order_by_asc(membership::Column::Id)
                .limit(SWEEP_BATCH)
                .into_tuple()
                .all(self.conn())
                .await
                .map_err(|e| self.pool_error(e))?;
            let Some(&(last, _)) = due.last() else {
                return Ok(swept);
            };
            after = last;
            for (id, organization_id) in due {
                match self.expire_membership(id, organization_id, now).await {
                    Ok(true) => swept += 1,
                    Ok(false) => {}
                    // The owner rule of a cascaded sub-team membership (the API keeps sub-team
                    // owners from expiring with their organization membership, so only rows
                    // written otherwise get here): it already grants nothing, and stays until
                    // that sub-team has another owner.
                    Err(DomainError::FailedPrecondition { reason, message }) => {
                        tracing::warn!(
                            membership_id = id,
                            reason = reason.as_str(),
                            "cannot remove an expired membership yet: {message}"
                        );
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Deletes membership `id` of `organization_id` if it still exists and has expired at `now`.
    async fn expire_membership(
        &self,
        id: i64,
        organization_id: i64,
        now: DateTime<Utc>,
    ) -> DomainResult<bool> {
        let tx = self.begin_write().await?;
        match lock_organization(&*tx, organization_id).await {
            Ok(_) => {}
            // Deleting the organization took its memberships along.
            Err(DomainError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
        // Read again under the lock: another replica may have deleted it, or a write moved or
        // cleared its expiry, since the sweep listed it.
        let Some(row) = membership::Entity::find_by_id(id)
            .one(&*tx)
            .await
            .map_err(db_error)?
        else {
            return Ok(false);
        };
        let target = convert::membership(row)?;
        if !target.is_expired(now) {
            return Ok(false);
        }
        // The sweep acts for no API key and no end user.
        let actor = Actor::default();
        if target.team_id == target.organization_id {
            let sub_team_rows = membership::Entity::find()
                .filter(membership::Column::OrganizationId.eq(target.organization_id))
                .filter(membership::Column::UserId.eq(target.user_id))
                .filter(membership::Column::Id.ne(target.id))
                .order_by_asc(membership::Column::Id)
                .all(&*tx)
                .await
                .map_err(db_error)?;
            for row in sub_team_rows {
                let cascaded = convert::membership(row)?;
                remove_membership(&tx, &actor, &cascaded, kind_at(&cascaded, now)).await?;
            }
        }
        remove_membership(&tx, &actor, &target, EventKind::MembershipExpired).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// What removing a membership records: whether it had expired itself.
fn kind_at(m: &Membership, now: DateTime<Utc>) -> EventKind {
    if m.is_expired(now) {
        EventKind::MembershipExpired
    } else {
        EventKind::MembershipDeleted
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::events::EventFilter;
    use crate::domain::memberships::NewMembership;
    use crate::domain::page::PageRequest;
    use crate::domain::roles::BaseRole;
    use crate::domain::teams::NewTeam;
    use crate::domain::users::NewUser;

    /// (kind, membership id) of every event after `after`.
    async fn events(store: &Store, after: i64) -> Vec<(String, i64)> {
        let filter = EventFilter {
            after_sequence: after,
            ..Default::default()
        };
        store
            .list_events(&filter, PageRequest::parse(1000, "").unwrap())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|e| (e.kind, e.membership_id.unwrap_or_default()))
            .collect()
    }

    #[tokio::test]
    async fn sweeps_what_expired_at_now_once_with_its_cascade() {
        // Instants `secs` after one a day ahead (in the future when the memberships are made),
        // whole seconds as stored.
        let base = DateTime::from_timestamp(Utc::now().timestamp() + 86_400, 0).unwrap();
        let at = |secs| base + Duration::seconds(secs);
        let store = Store::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        let actor = Actor::default();
        let team = |organization_id: Option<i64>, slug: &str| NewTeam {
            organization_id,
            name: slug.into(),
            slug: slug.into(),
            ..Default::default()
        };
        let org = store.create_team(&actor, team(None, "acme")).await.unwrap();
        let org = org.value.id;
        let eng = store.create_team(&actor, team(Some(org), "eng")).await;
        let eng = eng.unwrap().value.id;
        let mut users = Vec::new();
        for email in ["ada@x.test", "bob@x.test", "cy@x.test"] {
            let new = NewUser {
                email: email.into(),
                ..Default::default()
            };
            users.push(store.create_user(&actor, new).await.unwrap().value.id);
        }
        let join = |team_id, user_id, expires_at| NewMembership {
            team_id,
            user_id,
            role: Some(BaseRole::Member),
            accepted: true,
            expires_at,
            ..Default::default()
        };
        let mut ids = Vec::new();
        // Ada's organization membership expires at 1000 and takes her eng membership along;
        // bob's at 2000; cy's never. The sweeps below are told the instant.
        for (team_id, user_id, expires_at) in [
            (org, users[0], Some(at(1_000))),
            (eng, users[0], None),
            (org, users[1], Some(at(2_000))),
            (org, users[2], None),
        ] {
            let written = store
                .create_membership(&actor, join(team_id, user_id, expires_at))
                .await
                .unwrap();
            ids.push(written.value.membership.id);
        }
        let before = store.feed_head().await.unwrap().last;

        assert_eq!(store.sweep_expired_memberships(at(999)).await.unwrap(), 0);
        let (first, second) = tokio::join!(
            store.sweep_expired_memberships(at(1_000)),
            store.sweep_expired_memberships(at(1_000)),
        );
        assert_eq!(first.unwrap() + second.unwrap(), 1, "swept once");
        assert_eq!(store.sweep_expired_memberships(at(1_500)).await.unwrap(), 0);
        assert_eq!(
            events(&store, before).await,
            [
                ("membership.deleted".to_string(), ids[1]),
                ("membership.expired".to_string(), ids[0]),
            ]
        );
        let left: Vec<i64> = store
            .memberships_of_user(users[1])
            .await
            .unwrap()
            .iter()
            .chain(store.memberships_of_user(users[2]).await.unwrap().iter())
            .map(|m| m.id)
            .collect();
        assert_eq!(left, [ids[2], ids[3]]);
        assert!(
            store
                .memberships_of_user(users[0])
                .await
                .unwrap()
                .is_empty()
        );

        let later = at(2_000) + Duration::days(1);
        assert_eq!(store.sweep_expired_memberships(later).await.unwrap(), 1);
        assert_eq!(store.memberships_of_user(users[1]).await.unwrap(), []);
        assert_eq!(store.memberships_of_user(users[2]).await.unwrap().len(), 1);
    }
}
