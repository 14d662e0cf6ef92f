//! Membership requests, and how a request names a membership.

use chrono::{DateTime, Utc};

use super::errors::{DomainError, FieldViolation};
use super::model::{AutoRecordCalls, JsonObject, Membership};
use super::roles::BaseRole;
use super::tenancy::Binding;

#[derive(Debug, Clone, Default)]
pub struct NewMembership {
    pub team_id: i64,
    pub organization_id: Option<i64>,
    pub user_id: i64,
    pub role: Option<BaseRole>,
    pub role_id: Option<String>,
    pub accepted: bool,
    pub disable_impersonation: bool,
    pub auto_record_calls: Option<AutoRecordCalls>,
    pub public_metadata: JsonObject,
    pub private_metadata: JsonObject,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct MembershipPatch {
    pub accepted: Option<bool>,
    pub role: Option<BaseRole>,
    pub role_id: Option<String>,
    pub disable_impersonation: Option<bool>,
    pub auto_record_calls: Option<AutoRecordCalls>,
    pub public_metadata: Option<JsonObject>,
    pub private_metadata: Option<JsonObject>,
    /// `Some(Some(at))` sets the expiry, `Some(None)` clears it.
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub etag: Option<String>,
}

/// A requested expiry instant: it must be in the future at `now`. Kept to the microsecond, as
/// stored, so that what a write answers is what later reads return.
pub fn expiry(
    field: &str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, FieldViolation> {
    let at = DateTime::from_timestamp_micros(at.timestamp_micros())
        .ok_or_else(|| FieldViolation::new(field, "is not a valid timestamp"))?;
    if at <= now {
        return Err(FieldViolation::new(field, "must be in the future"));
    }
    Ok(at)
}

/// What an update asks of the expiry: `expires_at` sets it (in the future), `clear_expires_at`
/// removes it, never both.
pub fn expiry_change(
    expires_at: Option<DateTime<Utc>>,
    clear: bool,
    now: DateTime<Utc>,
) -> Result<Option<Option<DateTime<Utc>>>, FieldViolation> {
    match (expires_at, clear) {
        (Some(_), true) => Err(FieldViolation::new(
            "clear_expires_at",
            "cannot be set together with expires_at",
        )),
        (Some(at), false) => Ok(Some(Some(expiry("expires_at", at, now)?))),
        (None, true) => Ok(Some(None)),
        (None, false) => Ok(None),
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct MembershipFilter {
    pub role: Option<BaseRole>,
    pub accepted: Option<bool>,
}

/// How a request names a membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MembershipAddress {
    /// The team (the organization for organization memberships); optional with `MembershipId`.
    pub team_id: Option<i64>,
    pub target: MembershipTarget,
    /// When set, the team must belong to this organization.
    pub organization_id: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipTarget {
    MembershipId(i64),
    /// Needs `team_id`.
    UserId(i64),
}

impl MembershipAddress {
    /// An address is well formed when it can name at most one membership: a user has one
    /// membership per team, so `user_id` needs `team_id`.
    pub fn check(&self) -> Result<(), FieldViolation> {
        match (self.target, self.team_id) {
            (MembershipTarget::UserId(_), None) => Err(FieldViolation::new(
                "team_id",
                "is required when addressing a membership by user_id",
            )),
            _ => Ok(()),
        }
    }

    /// Whether `m` is the membership this address names: the target, within the named team and
    /// organization. A membership outside them is not named, like a missing one. Storage builds
    /// its query from the same address (`storage::shared::membership_query`); a test holds the
    /// two to the same answers.
    pub fn matches(&self, m: &Membership) -> bool {
        let target = match self.target {
            MembershipTarget::MembershipId(id) => m.id == id,
            MembershipTarget::UserId(user) => m.user_id == user,
        };
        self.check().is_ok()
            && target
            && self.team_id.is_none_or(|t| t == m.team_id)
            && self.organization_id.is_none_or(|o| o == m.organization_id)
    }

    /// What a request gets when no membership matches.
    /// This address confined to what a key bound to an organization sees: a membership
    /// elsewhere then matches nothing and gets the address's own NOT_FOUND.
    pub fn within(self, binding: Binding) -> Result<MembershipAddress, DomainError> {
        let organization_id = binding.narrow(self.organization_id, || self.not_found())?;
        Ok(MembershipAddress {
            organization_id,
            ..self
        })
    }

    pub fn not_found(&self) -> DomainError {
        match (self.target, self.team_id) {
            (MembershipTarget::MembershipId(id), _) => {
                DomainError::not_found(format_args!("membership {id}"))
            }
            (MembershipTarget::UserId(user), Some(team)) => {
                DomainError::not_found(format_args!("membership of user {user} in team {team}"))
            }
            (MembershipTarget::UserId(user), None) => {
                DomainError::not_found(format_args!("membership of user {user}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn membership(id: i64, team_id: i64, organization_id: i64, user_id: i64) -> Membership {
        Membership {
            id,
            team_id,
            organization_id,
            user_id,
            accepted: true,
            role: BaseRole::Member,
            role_id: "member_role".into(),
            role_key: "member".into(),
            disable_impersonation: false,
            auto_record_calls: AutoRecordCalls::Unset,
            public_metadata: JsonObject::new(),
            private_metadata: JsonObject::new(),
            expires_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version: 1,
        }
    }

    fn address(
        team_id: Option<i64>,
        target: MembershipTarget,
        organization_id: Option<i64>,
    ) -> MembershipAddress {
        MembershipAddress {
            team_id,
            target,
            organization_id,
        }
    }

    #[test]
    fn expiry_must_be_in_the_future_and_not_cleared_at_once() {
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        let later = DateTime::from_timestamp(1_001, 0).unwrap();
        assert_eq!(expiry_change(None, false, now), Ok(None));
        assert_eq!(expiry_change(None, true, now), Ok(Some(None)));
        assert_eq!(
            expiry_change(Some(later), false, now),
            Ok(Some(Some(later)))
        );
        assert_eq!(
            expiry_change(Some(now), false, now).unwrap_err().field,
            "expires_at"
        );
        assert_eq!(
            expiry_change(Some(later), true, now).unwrap_err().field,
            "clear_expires_at"
        );
        let nanos = DateTime::from_timestamp(1_001, 1_234_567).unwrap();
        assert_eq!(
            expiry("expires_at", nanos, now)
                .unwrap()
                .timestamp_subsec_nanos(),
            1_234_000,
            "kept to the microsecond"
        );
    }

    #[test]
    fn user_id_needs_team_id() {
        let by_user = address(None, MembershipTarget::UserId(3), Some(1));
        assert_eq!(by_user.check().unwrap_err().field, "team_id");
        // Malformed addresses name nothing, even a membership of that user.
        assert!(!by_user.matches(&membership(7, 1, 1, 3)));
        assert!(
            address(None, MembershipTarget::MembershipId(7), None)
                .check()
                .is_ok()
        );
        assert!(
            address(Some(1), MembershipTarget::UserId(3), None)
                .check()
                .is_ok()
        );
    }

    #[test]
    fn matches_within_the_named_team_and_organization() {
        let m = membership(7, 2, 1, 3);
        let id = MembershipTarget::MembershipId(7);
        let user = MembershipTarget::UserId(3);
        assert!(address(None, id, None).matches(&m));
        assert!(address(Some(2), id, Some(1)).matches(&m));
        assert!(address(Some(2), user, None).matches(&m));
        assert!(!address(Some(1), id, None).matches(&m), "another team");
        assert!(
            !address(None, id, Some(5)).matches(&m),
            "another organization"
        );
        assert!(!address(Some(2), MembershipTarget::UserId(4), None).matches(&m));
        assert!(!address(None, MembershipTarget::MembershipId(8), None).matches(&m));
    }

    #[test]
    fn addresses_are_confined_to_the_keys_organization() {
        let address = MembershipAddress {
            team_id: Some(5),
            target: MembershipTarget::UserId(3),
            organization_id: None,
        };
        let narrowed = address.within(Binding(Some(1))).unwrap();
        assert_eq!(narrowed.organization_id, Some(1));
        let elsewhere = MembershipAddress {
            organization_id: Some(2),
            ..address
        };
        let e = elsewhere.within(Binding(Some(1))).unwrap_err();
        assert!(
            matches!(&e, DomainError::NotFound { message, .. } if message == "membership of user 3 in team 5 not found"),
            "{e:?}"
        );
        assert_eq!(elsewhere.within(Binding::UNBOUND).unwrap(), elsewhere);
    }
}
