//! The api side of safe retries (`storage::idempotency`): a create's `request_id` becomes a retry
//! key over the whole request, the storage remembers the encoded response message, and a retry
//! decodes that message again, byte for byte the first answer.

use prost::Message;

use crate::domain::model::Actor;
use crate::domain::retries::RetryKey;
use crate::domain::{DomainError, Violations};
use crate::storage::idempotency::{Once, Outcome};

/// The retry key of a create request (`None` without a `request_id`); a bad id joins `v`.
pub(crate) fn retry_key<M: Message>(
    v: &mut Violations,
    method: &str,
    actor: &Actor,
    request: &M,
    request_id: &str,
) -> Option<RetryKey> {
    v.check(RetryKey::parse(
        "request_id",
        request_id,
        method,
        actor.user_id,
        || request.encode_to_vec(),
    ))
    .flatten()
}

/// What the storage needs to remember a create's answer: `respond` builds the response.
pub(crate) fn once<'a, T, R: Message>(
    key: Option<RetryKey>,
    respond: impl Fn(&T) -> R + Send + Sync + 'a,
) -> Option<Once<'a, T>> {
    key.map(|key| Once::new(key, move |written| respond(written).encode_to_vec()))
}

/// The response: built from the new resource, or the first answer decoded again.
pub(crate) fn answer<T, R: Message + Default>(
    outcome: Outcome<T>,
    respond: impl FnOnce(&T) -> R,
) -> Result<R, DomainError> {
    match outcome {
        Outcome::Created(written) => Ok(respond(&written)),
        Outcome::Replayed(bytes) => R::decode(bytes.as_slice()).map_err(|e| {
            DomainError::Internal(format!("a remembered answer does not decode: {e}"))
        }),
    }
}
