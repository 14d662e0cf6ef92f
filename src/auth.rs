//! Callers: API keys with scopes (Bearer, or HTTP Basic with the key as user name), and the
//! optional end user a calling service acts for (`x-actor-user-id`).

use std::sync::Arc;

use chrono::Utc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::HeaderMap;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::cache::AccessCache;
use crate::domain::api_keys::{self, ApiKey, KeyRefusal, NewApiKey};
use crate::domain::model::Actor;
use crate::domain::tenancy::Binding;
use crate::domain::{DomainError, DomainResult, Reason};
use crate::storage::Store;
use crate::storage::shared::Written;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    DirectoryRead,
    DirectoryWrite,
    MembershipsRead,
    MembershipsWrite,
    RolesRead,
    RolesWrite,
    AccessCheck,
    EventsRead,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 9] = [
        Scope::DirectoryRead,
        Scope::DirectoryWrite,
        Scope::MembershipsRead,
        Scope::MembershipsWrite,
        Scope::RolesRead,
        Scope::RolesWrite,
        Scope::AccessCheck,
        Scope::EventsRead,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::DirectoryRead => "directory.read",
            Scope::DirectoryWrite => "directory.write",
            Scope::MembershipsRead => "memberships.read",
            Scope::MembershipsWrite => "memberships.write",
            Scope::RolesRead => "roles.read",
            Scope::RolesWrite => "roles.write",
            Scope::AccessCheck => "access.check",
            Scope::EventsRead => "events.read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// Checks an operator's scope list, naming the first unknown one.
pub fn parse_scopes(scopes: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for s in scopes.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let scope = Scope::parse(s).ok_or_else(|| {
            let known: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown scope {s:?}; known scopes: {}", known.join(", "))
        })?;
        if !out.iter().any(|o: &String| o == scope.as_str()) {
            out.push(scope.as_str().to_string());
        }
    }
    if out.is_empty() {
        return Err("at least one scope is required".into());
    }
    Ok(out)
}

/// The header naming the end user a calling service acts for.
pub const ACTOR_HEADER: &str = "x-actor-user-id";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    scopes: u16,
    /// A bound key sees this organization only.
    pub organization_id: Option<i64>,
    pub actor_user_id: Option<i64>,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor {
            key_id: Some(self.key_id.clone()),
            user_id: self.actor_user_id,
            organization_id: self.organization_id,
        }
    }

    /// What the key may see: its organization only when it is bound to one.
    pub fn binding(&self) -> Binding {
        Binding(self.organization_id)
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes & (scope.bit() | Scope::Admin.bit()) != 0
    }

    /// PERMISSION_DENIED (`MISSING_SCOPE`, naming the scope) unless the key holds `scope`.
    pub fn require(&self, scope: Scope) -> DomainResult<()> {
        if self.has(scope) {
            return Ok(());
        }
        Err(DomainError::PermissionDenied {
            reason: Reason::MissingScope,
            message: format!("the API key lacks the scope {:?}", scope.as_str()),
            metadata: [("scope".to_string(), scope.as_str().to_string())]
                .into_iter()
                .collect(),
        })
    }
}

/// SHA-256 of the whole key, hex: what the database keeps.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new key: `mk_<id>_<secret>`, where the id is public (it names the key in events).
pub fn generate_key() -> (String, String) {
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut id);
    rand::rng().fill_bytes(&mut secret);
    let id = format!("key_{}", hex::encode(id));
    let key = format!("mk_{}_{}", &id[4..], URL_SAFE_NO_PAD.encode(secret));
    (id, key)
}

/// Creates an unbound, never-expiring key (the CLI's and the tests' way) and returns its secret.
pub async fn create_key(store: &Store, name: &str, scopes: &[String]) -> DomainResult<String> {
    let (_, secret) = issue_key(store, &Actor::default(), name, scopes, None, None, None).await?;
    Ok(secret)
}

/// Creates a key and returns it with its secret, which is never readable again.
pub async fn issue_key(
    store: &Store,
    actor: &Actor,
    name: &str,
    scopes: &[String],
    organization_id: Option<i64>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    rate_limit_per_second: Option<u32>,
) -> DomainResult<(Written<ApiKey>, String)> {
    let new = NewApiKey::validate(
        name,
        parse_scopes(scopes),
        organization_id,
        expires_at,
        rate_limit_per_second,
        chrono::Utc::now(),
    )?;
    let (id, key) = generate_key();
    let written = store
        .create_api_key(actor, &id, &hash_key(&key), &new)
        .await?;
    Ok((written, key))
}

/// On an empty key table, creates an `admin` key: the configured one, or a generated one that is
/// returned so it can be shown once.
pub async fn bootstrap(store: &Store, configured: Option<&str>) -> DomainResult<Option<String>> {
    if store.count_api_keys().await? > 0 {
        return Ok(None);
    }
    let admin = [Scope::Admin.as_str().to_string()];
    match configured.filter(|k| !k.is_empty()) {
        Some(key) => {
            let new = NewApiKey {
                name: "bootstrap".into(),
                scopes: admin.to_vec(),
                organization_id: None,
                expires_at: None,
                rate_limit_per_second: None,
            };
            store
                .create_api_key(&Actor::default(), "key_bootstrap", &hash_key(key), &new)
                .await?;
            Ok(None)
        }
        None => Ok(Some(create_key(store, "bootstrap", &admin).await?)),
    }
}

/// Authenticates requests. Keys are remembered in the access cache, which follows the change
/// feed: a revocation on any replica reaches this one within the feed's delivery time, and an
/// expiry is checked against the clock on every call.
pub struct Authenticator {
    store: Store,
    cache: Arc<AccessCache>,
    /// Keys whose use this replica recorded within the last minute (`last_used_at` is written
    /// at most once a minute per key; a concurrent map, so the hot path takes no lock).
    recently_recorded: moka::sync::Cache<String, ()>,
    /// The token bucket of each key with a `rate_limit_per_second`, by key id. Per replica: N
    /// replicas admit up to N times the rate, which is the price of never asking a shared store
    /// on the hot path. A bucket idle for a while is dropped, and comes back full.
    buckets: moka::sync::Cache<String, Arc<RateLimiter>>,
}

type RateLimiter = governor::DefaultDirectRateLimiter;

/// How long a key's unused bucket is kept: long enough that it refills completely anyway.
const BUCKET_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

impl Authenticator {
    pub fn new(store: Store, cache: Arc<AccessCache>) -> Arc<Self> {
        Arc::new(Self {
            store,
            cache,
            recently_recorded: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(60))
                .build(),
            buckets: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(BUCKET_IDLE)
                .build(),
        })
    }

    /// The caller of a request: its API key and the end user it acts for. Which scope the
    /// method needs is the auth layer's business (`api::scopes`).
    pub async fn authenticate(&self, headers: &HeaderMap) -> DomainResult<Caller> {
        let key = bearer_key(headers)?;
        // Read now, reported after the key: an unknown key is UNAUTHENTICATED whatever else.
        let actor_user_id = actor_user_id(headers);
        let hash = hash_key(&key);
        let credentials = match self.cache.key(&hash) {
            Some(known) => known,
            None => {
                let seen = self.cache.generation();
                let stored = Arc::new(self.store.find_api_key(&hash).await?.ok_or_else(|| {
                    DomainError::Unauthenticated {
                        reason: Reason::ApiKeyUnknown,
                        message: "unknown API key".into(),
                    }
                })?);
                self.cache.fill_key(seen, hash, Arc::clone(&stored));
                stored
            }
        };
        let now = Utc::now();
        api_keys::usable(credentials.revoked, credentials.expires_at, now).map_err(|refusal| {
            let (reason, message) = match refusal {
                KeyRefusal::Revoked => (Reason::ApiKeyRevoked, "the API key was revoked"),
                KeyRefusal::Expired => (Reason::ApiKeyExpired, "the API key has expired"),
            };
            DomainError::Unauthenticated {
                reason,
                message: message.into(),
            }
        })?;
        if let Some(rate) = credentials.rate_limit_per_second {
            self.take_token(&credentials.id, rate)?;
        }
        self.record_use(&credentials.id);
        Ok(Caller {
            key_id: credentials.id.clone(),
            scopes: credentials
                .scopes
                .iter()
                .filter_map(|s| Scope::parse(s))
                .fold(0, |acc, s| acc | s.bit()),
            organization_id: credentials.organization_id,
            actor_user_id: actor_user_id?,
        })
    }

    /// One call of the key's rate: RESOURCE_EXHAUSTED `RATE_LIMITED` when its bucket is empty,
    /// with the time until the next token as RetryInfo.
    fn take_token(&self, key_id: &str, rate: u32) -> DomainResult<()> {
        let bucket = self.buckets.get_with_by_ref(key_id, || {
            let rate = std::num::NonZeroU32::new(rate).unwrap_or(std::num::NonZeroU32::MIN);
            Arc::new(RateLimiter::direct(governor::Quota::per_second(rate)))
        });
        bucket.check().map_err(|not_until| {
            use governor::clock::Clock;
            crate::metrics::shed(crate::metrics::Shed::RateLimited);
            DomainError::RateLimited {
                retry_after: not_until
                    .wait_time_from(governor::clock::DefaultClock::default().now()),
            }
        })
    }

    /// Writes `last_used_at` in the background when this replica has not for a minute; the
    /// request never waits for it, and a failure only delays the next record.
    fn record_use(&self, key_id: &str) {
        if self.recently_recorded.contains_key(key_id) {
            return;
        }
        self.recently_recorded.insert(key_id.to_string(), ());
        let store = self.store.clone();
        let key_id = key_id.to_string();
        tokio::spawn(async move {
            if let Err(error) = store.touch_api_key(&key_id).await {
                tracing::debug!(%error, key_id, "could not record the key's last use");
            }
        });
    }
}

pub(crate) fn bearer_key(headers: &HeaderMap) -> DomainResult<String> {
    let missing = || DomainError::Unauthenticated {
        reason: Reason::ApiKeyUnknown,
        message: "send `authorization: Bearer <api key>`".into(),
    };
    let value = headers
        .get("authorization")
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?
        .trim();
    let (scheme, rest) = value.split_once(' ').ok_or_else(missing)?;
    let rest = rest.trim();
    let key = if scheme.eq_ignore_ascii_case("bearer") {
        rest.to_string()
    } else if scheme.eq_ignore_ascii_case("basic") {
        // Close-style: the key is the user name, the password is empty.
        let decoded = STANDARD.decode(rest).map_err(|_| missing())?;
        let text = String::from_utf8(decoded).map_err(|_| missing())?;
        text.split_once(':')
            .map(|(user, _)| user.to_string())
            .unwrap_or(text)
    } else {
        return Err(missing());
    };
    if key.is_empty() {
        Err(missing())
    } else {
        Ok(key)
    }
}

/// The end user a calling service acts for, if it names one. Sent twice, the header is refused
/// rather than one copy picked: two proxies disagreeing about the actor must not pass silently.
fn actor_user_id(headers: &HeaderMap) -> DomainResult<Option<i64>> {
    let mut values = headers.get_all(ACTOR_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(DomainError::invalid(
            ACTOR_HEADER,
            "must be sent at most once",
        ));
    }
    let bad = || DomainError::invalid(ACTOR_HEADER, "must be a positive user id");
    let id: i64 = value
        .to_str()
        .map_err(|_| bad())?
        .trim()
        .parse()
        .map_err(|_| bad())?;
    if id > 0 { Ok(Some(id)) } else { Err(bad()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers in order; a name given twice is sent twice.
    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn keys_from_bearer_and_basic() {
        assert_eq!(
            bearer_key(&headers(&[("authorization", "Bearer abc")])).unwrap(),
            "abc"
        );
        let basic = STANDARD.encode("abc:");
        assert_eq!(
            bearer_key(&headers(&[("authorization", &format!("Basic {basic}"))])).unwrap(),
            "abc"
        );
        assert!(bearer_key(&headers(&[])).is_err());
        assert!(bearer_key(&headers(&[("authorization", "Token abc")])).is_err());
    }

    #[test]
    fn actor_header() {
        assert_eq!(actor_user_id(&headers(&[])).unwrap(), None);
        assert_eq!(
            actor_user_id(&headers(&[(ACTOR_HEADER, " 42 ")])).unwrap(),
            Some(42)
        );
        for bad in ["abc", "0", "-3", ""] {
            assert!(
                actor_user_id(&headers(&[(ACTOR_HEADER, bad)])).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn repeated_actor_header_is_refused() {
        // Even two copies of the same id: which one a proxy meant is not ours to guess.
        for (first, second) in [("7", "8"), ("7", "7")] {
            let err = actor_user_id(&headers(&[(ACTOR_HEADER, first), (ACTOR_HEADER, second)]))
                .unwrap_err();
            match err {
                DomainError::InvalidArgument(violations) => {
                    assert_eq!(violations.len(), 1);
                    assert_eq!(violations[0].field, ACTOR_HEADER);
                }
                other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
            }
        }
    }

    #[test]
    fn missing_scope_names_it() {
        let caller = Caller {
            key_id: "k".into(),
            organization_id: None,
            scopes: Scope::RolesRead.bit(),
            actor_user_id: None,
        };
        assert!(caller.require(Scope::RolesRead).is_ok());
        match caller.require(Scope::RolesWrite).unwrap_err() {
            DomainError::PermissionDenied {
                reason, metadata, ..
            } => {
                assert_eq!(reason, Reason::MissingScope);
                assert_eq!(
                    metadata.get("scope").map(String::as_str),
                    Some("roles.write")
                );
            }
            other => panic!("expected PERMISSION_DENIED, got {other:?}"),
        }
    }

    #[test]
    fn scopes() {
        assert_eq!(
            parse_scopes(&["admin".into(), "admin".into()]).unwrap(),
            ["admin"]
        );
        assert!(parse_scopes(&["nope".into()]).is_err());
        let caller = Caller {
            key_id: "k".into(),
            organization_id: None,
            scopes: Scope::MembershipsRead.bit(),
            actor_user_id: None,
        };
        assert!(caller.has(Scope::MembershipsRead));
        assert!(!caller.has(Scope::MembershipsWrite));
        let admin = Caller {
            key_id: "k".into(),
            organization_id: None,
            scopes: Scope::Admin.bit(),
            actor_user_id: None,
        };
        assert!(admin.has(Scope::EventsRead));
    }

    #[test]
    fn generated_keys_are_distinct() {
        let (id1, k1) = generate_key();
        let (id2, k2) = generate_key();
        assert_ne!(k1, k2);
        assert_ne!(id1, id2);
        assert!(k1.starts_with("mk_"));
    }
}
