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

/// Memberships one sweep looks at; the rest wait for the next round.
const SWEEP_BATCH: u64 = 500;

impl Store {
    /// Deletes memberships expired at `now` (at most a batch of them, earliest first), each with
    /// a `membership.expired` event. An organization membership takes the user's sub-team
    /// memberships in it along, as DeleteMembership does: each records `membership.expired` when
    /// it had expired itself, `membership.deleted` otherwise. Returns how many expired
    /// memberships this call deleted.
    pub async fn sweep_expired_memberships(&self, now: DateTime<Utc>) -> DomainResult<u64> {
        let due: Vec<(i64, i64)> = membership::Entity::find()
            .select_only()
            .column(membership::Column::Id)
            .column(membership::Column::OrganizationId)
            .filter(membership::Column::ExpiresAt.lte(now.timestamp_micros()))
            .order_by_asc(membership::Column::ExpiresAt)
            .order_by_asc(membership::Column::Id)
            .limit(SWEEP_BATCH)
            .into_tuple()
            .all(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?;
        let mut swept = 0;
        for (id, organization_id) in due {
            match self.expire_membership(id, organization_id, now).await {
                Ok(true) => swept += 1,
                Ok(false) => {}
                // The owner rule of a cascaded sub-team membership: the membership already
                // grants nothing; it stays until that sub-team has another owner.
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
        Ok(swept)
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
