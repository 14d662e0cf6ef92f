//! The actor check every write makes: when the call acts for an end user (`x-actor-user-id`), the
//! facts the policy needs about that user are read inside the write's transaction and
//! `policy::authorize` decides. Each use case calls [`authorize`] once, after its address was
//! resolved (NOT_FOUND first) and before any invariant, etag check or "nothing changed" return.

use sea_orm::{ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use super::db_error;
use super::entities::user;
use super::permissions::effective;
use super::shared::users_seen_by;
use crate::domain::access::{Effective, Policy};
use crate::domain::model::{Actor, Team};
use crate::domain::policy::{self, ActorFacts, GrantsIn, Write};
use crate::domain::{DomainError, DomainResult};

/// Whether `actor` may do `write`; `team` is the team the write targets (the organization for
/// organization-wide writes), `None` for writes outside any team. Without an end user there is
/// nothing to check: the API key's scope already allowed the call.
pub(crate) async fn authorize<C: ConnectionTrait>(
    conn: &C,
    policy: &Policy,
    actor: &Actor,
    team: Option<&Team>,
    write: &Write<'_>,
) -> DomainResult<()> {
    let Some(user_id) = actor.user_id else {
        return Ok(());
    };
    let mut actor_user = user::Entity::find_by_id(user_id);
    if let Some(organization_id) = actor.organization_id {
        // A key bound to an organization acts for its users only: any other is as if absent.
        actor_user = actor_user.filter(users_seen_by(organization_id));
    }
    let email: Option<String> = actor_user
        .select_only()
        .column(user::Column::Email)
        .into_tuple()
        .one(conn)
        .await
        .map_err(db_error)?;
    let grants = match (write.grants_in(), team) {
        (GrantsIn::Nowhere, _) => Effective::default(),
        (GrantsIn::Organization, Some(team)) => {
            let organization_id = team.organization_id();
            effective(conn, policy, user_id, organization_id, organization_id).await?
        }
        (GrantsIn::TargetTeam, Some(team)) => {
            effective(conn, policy, user_id, team.id, team.organization_id()).await?
        }
        (_, None) => {
            return Err(DomainError::Internal(format!(
                "{} reads the actor's grants in a team but none was given",
                write.method()
            )));
        }
    };
    let facts = ActorFacts {
        user_id,
        email: email.as_deref(),
        effective: &grants,
    };
    policy::authorize(&facts, &policy.catalog, write)
}
