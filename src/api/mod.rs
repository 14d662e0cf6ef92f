//! gRPC services: decode and validate the request, call the storage/domain, encode the answer.
//! Who may call what is settled before any handler runs: `auth_layer` applies the `scopes`
//! table and hands the authenticated caller on; domain errors become statuses in `errors`.

pub mod access;
pub mod admission;
pub mod api_keys;
pub mod attributes;
pub mod auth_layer;
pub mod convert;
pub mod directory;
pub mod errors;
pub mod events;
mod idempotency;
pub mod invitations;
pub mod malformed;
pub mod memberships;
pub mod roles;
pub mod scopes;

use std::sync::Arc;

use tonic::{Request, Status};

use crate::auth::{Authenticator, Caller};
use crate::domain::model::Actor;
use crate::domain::teams::TeamKind;
use crate::domain::tenancy::Binding;
use crate::domain::{DomainError, Violations};
use crate::feed::Feed;
use crate::reads::Reads;
use crate::storage::Store;

/// What every service needs.
#[derive(Clone)]
pub struct Context {
    pub store: Store,
    /// Used by the auth layer (`auth_layer`), not by handlers.
    pub auth: Arc<Authenticator>,
    pub feed: Arc<Feed>,
    pub reads: Reads,
    /// Turns true when the server begins to stop: open streams end so that draining finishes.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// Records ids on the current RPC span (declared by the tracing layer).
macro_rules! trace_ids {
    ($($name:ident = $value:expr),+ $(,)?) => {{
        let span = tracing::Span::current();
        $( span.record(stringify!($name), $value); )+
    }};
}
pub(crate) use trace_ids;

/// Adds the bad fields of entry `index` of a batch's `list` to `v`, named `list[index].field`.
pub(crate) fn extend_entry(v: &mut Violations, list: &str, index: usize, entry: Violations) {
    if let Err(DomainError::InvalidArgument(bad)) =
        entry.into_result().map_err(|e| e.in_entry(list, index))
    {
        v.extend(bad);
    }
}

/// Who makes a write: the caller the auth layer authenticated before the handler ran.
pub(crate) fn actor<T>(request: &Request<T>) -> Result<Actor, Status> {
    authenticated(request).map(Caller::actor)
}

/// The caller the auth layer authenticated before the handler ran.
pub(crate) fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    authenticated(request).cloned()
}

/// What the caller's key may see (`domain::tenancy`).
pub(crate) fn binding<T>(request: &Request<T>) -> Result<Binding, Status> {
    authenticated(request).map(Caller::binding)
}

fn authenticated<T>(request: &Request<T>) -> Result<&Caller, Status> {
    request.extensions().get::<Caller>().ok_or_else(|| {
        // Only a server built without `AuthLayer` gets here; refuse rather than act anonymously.
        tracing::error!("a handler ran without an authenticated caller: is AuthLayer applied?");
        DomainError::Internal("no authenticated caller".into()).into()
    })
}

impl Context {
    /// Ok when the key sees team `team_id`; otherwise the NOT_FOUND an absent team of `kind`
    /// gets. The team's organization comes from the cache (a team never changes organization),
    /// so this costs nothing for an unbound key and rarely a query for a bound one.
    pub(crate) async fn sees_team(
        &self,
        binding: Binding,
        team_id: i64,
        kind: TeamKind,
    ) -> Result<(), DomainError> {
        if binding.organization().is_none() {
            return Ok(());
        }
        let organization_id = match self.reads.organization_of(team_id).await {
            Ok(org) => org,
            Err(DomainError::NotFound { .. }) => return Err(kind.not_found(team_id)),
            Err(e) => return Err(e),
        };
        binding.check(organization_id, || kind.not_found(team_id))
    }

    /// Ok when the key sees user `user_id`: a member (pending too) of its organization or of one
    /// of its sub-teams, or a user a key of its organization created. Otherwise the NOT_FOUND an
    /// absent user gets.
    pub(crate) async fn sees_user(
        &self,
        binding: Binding,
        user_id: i64,
    ) -> Result<(), DomainError> {
        let Some(organization_id) = binding.organization() else {
            return Ok(());
        };
        if self.store.user_seen_by(organization_id, user_id).await? {
            Ok(())
        } else {
            Err(DomainError::not_found(format_args!("user {user_id}")))
        }
    }
}
