//! Safe retries: a create that carries a `request_id` is done once per (API key, request id)
//! within [`REMEMBERED_FOR`]; a retry gets the first answer back. What "the same request" means,
//! which ids are acceptable, and how a secret in a remembered answer is kept unreadable to anyone
//! but the key that asked for it.

use sha2::{Digest, Sha256};

use super::errors::FieldViolation;
use super::{DomainError, Reason};

pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// How long an answer is honoured (and kept) after its create committed.
pub const REMEMBERED_FOR: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A create's retry key: the client's request id and a fingerprint of what it asked for. The
/// API key it is remembered under is the caller's, taken from the write's actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryKey {
    pub request_id: String,
    /// SHA-256 (hex) of the method, the acting end user and the encoded request.
    pub fingerprint: String,
}

impl RetryKey {
    /// `None` for an empty request id (proto3's "absent"). `body` is the encoded request; it is
    /// only encoded when there is a request id. The actor is part of the request: the same body
    /// on behalf of another end user is another write (another owner, another event).
    pub fn parse(
        field: &str,
        request_id: &str,
        method: &str,
        actor_user_id: Option<i64>,
        body: impl FnOnce() -> Vec<u8>,
    ) -> Result<Option<RetryKey>, FieldViolation> {
        if request_id.is_empty() {
            return Ok(None);
        }
        let count = request_id.chars().count();
        if count > MAX_REQUEST_ID_CHARS {
            return Err(FieldViolation::new(
                field,
                format!("must be at most {MAX_REQUEST_ID_CHARS} characters (got {count})"),
            ));
        }
        // Printable ASCII compares the same on every engine and collation, and shows in a log.
        if !request_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FieldViolation::new(
                field,
                "must be printable ASCII without spaces (a UUID, for example)",
            ));
        }
        let mut hash = Sha256::new();
        for part in [
            method.as_bytes(),
            actor_user_id
                .map(|id| id.to_string())
                .unwrap_or_default()
                .as_bytes(),
        ] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.update(body());
        Ok(Some(RetryKey {
            request_id: request_id.to_string(),
            fingerprint: hex::encode(hash.finalize()),
        }))
    }

    /// Ok when a remembered answer was given to this very request; the same id sent with
    /// another request is refused rather than answered with a result it did not ask for.
    pub fn check_same(&self, remembered_fingerprint: &str) -> Result<(), DomainError> {
        if self.fingerprint == remembered_fingerprint {
            return Ok(());
        }
        Err(DomainError::precondition(
            Reason::RequestIdReused,
            format!(
                "request_id {:?} was used with a different request within the last {} hours; \
                 use a new request_id for a new request",
                self.request_id,
                REMEMBERED_FOR.num_hours()
            ),
        ))
    }
}

/// A keystream only the holder of `caller_key` can compute: SHA-256 over the caller's whole API
/// key, a label and a counter. `salt` (the new key's id) makes each sealed value's stream its own.
fn keystream(caller_key: &str, salt: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter: u32 = 0;
    while out.len() < len {
        let mut hash = Sha256::new();
        for part in [
            b"membership.v1 sealed retry answer".as_slice(),
            caller_key.as_bytes(),
            salt.as_bytes(),
        ] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.update(counter.to_be_bytes());
        out.extend_from_slice(&hash.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// Seals a secret (a new API key) for storage in a remembered answer: the database keeps only
/// hashes of keys, so the plain secret must not sit in it either. Only the caller, who presents
/// `caller_key` again on the retry, can unseal it. Hex, so it stays a valid proto string.
pub fn seal(caller_key: &str, salt: &str, secret: &str) -> String {
    let stream = keystream(caller_key, salt, secret.len());
    hex::encode(
        secret
            .bytes()
            .zip(stream)
            .map(|(b, k)| b ^ k)
            .collect::<Vec<_>>(),
    )
}

/// The secret `seal` sealed, given the same caller key and salt; `None` if it is not one.
pub fn unseal(caller_key: &str, salt: &str, sealed: &str) -> Option<String> {
    let bytes = hex::decode(sealed).ok()?;
    let stream = keystream(caller_key, salt, bytes.len());
    String::from_utf8(bytes.into_iter().zip(stream).map(|(b, k)| b ^ k).collect()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(request_id: &str, method: &str, actor: Option<i64>, body: &[u8]) -> RetryKey {
        RetryKey::parse("request_id", request_id, method, actor, || body.to_vec())
            .expect("valid")
            .expect("present")
    }

    #[test]
    fn empty_is_absent_and_the_body_is_not_encoded() {
        let parsed = RetryKey::parse("request_id", "", "CreateUser", None, || {
            panic!("encoded without a request id")
        });
        assert_eq!(parsed, Ok(None));
    }

    #[test]
    fn length_and_characters_are_checked() {
        let longest = "a".repeat(MAX_REQUEST_ID_CHARS);
        assert!(RetryKey::parse("request_id", &longest, "M", None, Vec::new).is_ok());
        let too_long = "a".repeat(MAX_REQUEST_ID_CHARS + 1);
        let err = RetryKey::parse("request_id", &too_long, "M", None, Vec::new).unwrap_err();
        assert_eq!(err.field, "request_id");
        for bad in ["with space", "tab\t", "é", "nul\0"] {
            assert!(
                RetryKey::parse("request_id", bad, "M", None, Vec::new).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn the_fingerprint_covers_method_actor_and_body() {
        let base = key("r1", "CreateUser", None, b"body");
        assert_eq!(base, key("r1", "CreateUser", None, b"body"));
        assert!(
            base.check_same(&key("r1", "CreateUser", None, b"body").fingerprint)
                .is_ok()
        );
        for other in [
            key("r1", "CreateTeam", None, b"body"),
            key("r1", "CreateUser", Some(7), b"body"),
            key("r1", "CreateUser", None, b"bodY"),
        ] {
            let err = base.check_same(&other.fingerprint).unwrap_err();
            assert!(matches!(
                err,
                DomainError::FailedPrecondition {
                    reason: Reason::RequestIdReused,
                    ..
                }
            ));
        }
        // Length-prefixed parts: moving bytes between the method and the body changes it.
        assert_ne!(
            key("r1", "Create", None, b"Userbody").fingerprint,
            base.fingerprint
        );
    }

    #[test]
    fn sealing_round_trips_only_with_the_same_caller_key_and_salt() {
        let secret = format!("mk_0123456789ab_{}", "x".repeat(43));
        let sealed = seal("mk_caller_secret", "key_0123456789ab", &secret);
        assert!(!sealed.contains(&secret));
        assert_eq!(
            unseal("mk_caller_secret", "key_0123456789ab", &sealed).as_deref(),
            Some(secret.as_str())
        );
        assert_ne!(
            unseal("mk_other_secret", "key_0123456789ab", &sealed).as_deref(),
            Some(secret.as_str())
        );
        assert_ne!(
            seal("mk_caller_secret", "key_ffffffffffff", &secret),
            sealed,
            "each salt has its own stream"
        );
        assert_eq!(unseal("mk_caller_secret", "s", "not hex"), None);
    }
}
