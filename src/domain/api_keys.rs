//! API keys as the domain sees them: what a key is, when it may be used, and which keys a bound
//! key may manage.

use chrono::{DateTime, Utc};

use super::errors::{DomainError, DomainResult, Reason, Violations};

pub const MAX_KEY_NAME_CHARS: usize = 100;
/// The largest `rate_limit_per_second` a key may carry (more is no limit at all).
pub const MAX_RATE_LIMIT_PER_SECOND: u32 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub organization_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_by_key_id: Option<String>,
    /// Calls a second (a token bucket of as many); `None`: unlimited.
    pub rate_limit_per_second: Option<u32>,
}

/// What authenticating a request needs to know of a stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCredentials {
    pub id: String,
    pub scopes: Vec<String>,
    pub organization_id: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked: bool,
    pub rate_limit_per_second: Option<u32>,
}

/// Why a known key is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    Revoked,
    Expired,
}

/// A key may be used until it is revoked or its expiry instant is reached.
pub fn usable(
    revoked: bool,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), KeyRefusal> {
    if revoked {
        Err(KeyRefusal::Revoked)
    } else if expires_at.is_some_and(|at| at <= now) {
        Err(KeyRefusal::Expired)
    } else {
        Ok(())
    }
}

/// A key bound to an organization manages only keys bound to the same organization; an unbound
/// key manages every key.
pub fn manages(caller_organization: Option<i64>, key_organization: Option<i64>) -> bool {
    caller_organization.is_none_or(|org| key_organization == Some(org))
}

/// The organization a new key is bound to. A bound caller makes keys of its own organization
/// only: an unbound key is PERMISSION_DENIED `KEY_BOUND_TO_ORGANIZATION`, another organization
/// is NOT_FOUND as if it did not exist.
pub fn binding_of_new_key(
    caller_organization: Option<i64>,
    requested: Option<i64>,
) -> DomainResult<Option<i64>> {
    match (caller_organization, requested) {
        (None, requested) => Ok(requested),
        (Some(own), Some(requested)) if requested == own => Ok(Some(own)),
        (Some(_), Some(other)) => Err(DomainError::not_found(format_args!("organization {other}"))),
        (Some(own), None) => Err(DomainError::PermissionDenied {
            reason: Reason::KeyBoundToOrganization,
            message: format!(
                "this API key is bound to organization {own}: set organization_id to {own}"
            ),
            metadata: Default::default(),
        }),
    }
}

/// A key to create, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    pub name: String,
    pub scopes: Vec<String>,
    pub organization_id: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit_per_second: Option<u32>,
}

impl NewApiKey {
    /// Checks the fields; `scopes` are parsed by the caller's scope table, which reports what is
    /// wrong with them (named `scopes` among the other violations).
    pub fn validate(
        name: &str,
        scopes: Result<Vec<String>, String>,
        organization_id: Option<i64>,
        expires_at: Option<DateTime<Utc>>,
        rate_limit_per_second: Option<u32>,
        now: DateTime<Utc>,
    ) -> DomainResult<Self> {
        let mut v = Violations::default();
        let name = name.trim();
        if name.chars().count() > MAX_KEY_NAME_CHARS {
            v.add(
                "name",
                format!("must be at most {MAX_KEY_NAME_CHARS} characters"),
            );
        }
        let scopes = scopes.unwrap_or_else(|problem| {
            v.add("scopes", problem);
            Vec::new()
        });
        if organization_id.is_some_and(|id| id <= 0) {
            v.add("organization_id", "must be a positive id");
        }
        if expires_at.is_some_and(|at| at <= now) {
            v.add("expires_at", "must be in the future");
        }
        if rate_limit_per_second.is_some_and(|r| r == 0 || r > MAX_RATE_LIMIT_PER_SECOND) {
            v.add(
                "rate_limit_per_second",
                format!("must be 1 to {MAX_RATE_LIMIT_PER_SECOND} (absent: unlimited)"),
            );
        }
        v.into_result()?;
        Ok(Self {
            name: name.to_string(),
            scopes,
            organization_id,
            expires_at,
            rate_limit_per_second,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn a_key_is_usable_until_revoked_or_expired() {
        assert_eq!(usable(false, None, at(100)), Ok(()));
        assert_eq!(usable(false, Some(at(101)), at(100)), Ok(()));
        assert_eq!(
            usable(false, Some(at(100)), at(100)),
            Err(KeyRefusal::Expired)
        );
        assert_eq!(
            usable(true, Some(at(50)), at(100)),
            Err(KeyRefusal::Revoked)
        );
    }

    #[test]
    fn bound_keys_manage_their_organization_only() {
        assert!(manages(None, None));
        assert!(manages(None, Some(3)));
        assert!(manages(Some(3), Some(3)));
        assert!(!manages(Some(3), Some(4)));
        assert!(!manages(Some(3), None));
    }

    #[test]
    fn bound_callers_make_keys_of_their_organization() {
        assert_eq!(binding_of_new_key(None, None).unwrap(), None);
        assert_eq!(binding_of_new_key(None, Some(4)).unwrap(), Some(4));
        assert_eq!(binding_of_new_key(Some(4), Some(4)).unwrap(), Some(4));
        assert!(matches!(
            binding_of_new_key(Some(4), Some(5)),
            Err(DomainError::NotFound { .. })
        ));
        assert!(matches!(
            binding_of_new_key(Some(4), None),
            Err(DomainError::PermissionDenied {
                reason: Reason::KeyBoundToOrganization,
                ..
            })
        ));
    }

    #[test]
    fn new_keys_are_validated() {
        let ok = NewApiKey::validate(
            " billing ",
            Ok(vec!["admin".into()]),
            Some(1),
            Some(at(10)),
            Some(MAX_RATE_LIMIT_PER_SECOND),
            at(0),
        )
        .unwrap();
        assert_eq!(ok.name, "billing");
        assert_eq!(ok.rate_limit_per_second, Some(MAX_RATE_LIMIT_PER_SECOND));
        let long = "n".repeat(MAX_KEY_NAME_CHARS + 1);
        let err = NewApiKey::validate(
            &long,
            Err("name one".into()),
            Some(0),
            Some(at(0)),
            Some(0),
            at(0),
        )
        .unwrap_err();
        let text = err.to_string();
        for field in [
            "name",
            "scopes",
            "organization_id",
            "expires_at",
            "rate_limit_per_second",
        ] {
            assert!(text.contains(field), "{text} names {field}");
        }
    }
}
