//! gRPC services: decode and validate the request, call the storage/domain, encode the answer.

pub mod access;
pub mod attributes;
pub mod convert;
pub mod directory;
pub mod errors;
pub mod events;
pub mod memberships;
pub mod roles;

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::feed::Feed;
use crate::reads::Reads;
use crate::storage::Store;

/// What every service needs.
#[derive(Clone)]
pub struct Context {
    pub store: Store,
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
