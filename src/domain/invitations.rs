//! Invitations: an organization's offer of a membership to an email address, accepted by the
//! user who owns that address. Their rules: the address, the expiry, the status a reader sees,
//! and what accepting or revoking one requires.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::errors::{DomainError, DomainResult, FieldViolation, Reason};
use super::roles::BaseRole;
use super::validate;

/// How long an invitation stays open when the request names no `expires_at`.
pub const DEFAULT_VALIDITY: Duration = Duration::days(7);

/// Where an invitation stands. Stored as `PENDING` / `ACCEPTED` / `REVOKED` / `EXPIRED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum InvitationStatus {
    #[serde(rename = "INVITATION_STATUS_PENDING")]
    Pending,
    #[serde(rename = "INVITATION_STATUS_ACCEPTED")]
    Accepted,
    #[serde(rename = "INVITATION_STATUS_REVOKED")]
    Revoked,
    #[serde(rename = "INVITATION_STATUS_EXPIRED")]
    Expired,
}

impl InvitationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "PENDING",
            InvitationStatus::Accepted => "ACCEPTED",
            InvitationStatus::Revoked => "REVOKED",
            InvitationStatus::Expired => "EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(InvitationStatus::Pending),
            "ACCEPTED" => Some(InvitationStatus::Accepted),
            "REVOKED" => Some(InvitationStatus::Revoked),
            "EXPIRED" => Some(InvitationStatus::Expired),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    pub id: i64,
    pub organization_id: i64,
    /// Lower-case.
    pub email: String,
    pub role: BaseRole,
    pub role_id: String,
    pub role_key: String,
    /// As stored: a pending invitation past its expiry is still `Pending` here until the sweeper
    /// marks it; readers use [`Invitation::status_at`].
    pub status: InvitationStatus,
    pub inviter_user_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub version: i64,
}

impl Invitation {
    /// The status at `now`: a pending invitation is expired the instant its expiry passes,
    /// whether or not the sweeper has marked it yet.
    pub fn status_at(&self, now: DateTime<Utc>) -> InvitationStatus {
        match self.status {
            InvitationStatus::Pending if self.expires_at <= now => InvitationStatus::Expired,
            status => status,
        }
    }

    /// Accepting or revoking needs a pending invitation: FAILED_PRECONDITION
    /// `INVITATION_NOT_PENDING` otherwise.
    pub fn check_pending(&self, now: DateTime<Utc>) -> DomainResult<()> {
        match self.status_at(now) {
            InvitationStatus::Pending => Ok(()),
            status => Err(DomainError::precondition(
                Reason::InvitationNotPending,
                format!(
                    "invitation {} is {}, not pending",
                    self.id,
                    status.as_str().to_ascii_lowercase()
                ),
            )),
        }
    }

    /// The accepting user's email must be the invited one (case does not matter).
    pub fn check_email(&self, user_email: &str) -> DomainResult<()> {
        if user_email.trim().eq_ignore_ascii_case(self.email.trim()) {
            Ok(())
        } else {
            Err(DomainError::precondition(
                Reason::InvitationEmailMismatch,
                format!(
                    "invitation {} was sent to another email address than the user's",
                    self.id
                ),
            ))
        }
    }

    /// The same invitation with the status it has at `now` (what every read answers).
    pub fn as_seen_at(mut self, now: DateTime<Utc>) -> Self {
        self.status = self.status_at(now);
        self
    }
}

/// A CreateInvitation request, validated.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub organization_id: i64,
    pub email: String,
    pub role: Option<BaseRole>,
    pub role_id: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// The invited address: required, a valid email, stored lower-case.
pub fn email(field: &str, value: &str) -> Result<String, FieldViolation> {
    validate::email(field, value)
}

/// The expiry of a new invitation: the requested instant, which must be in the future, or
/// [`DEFAULT_VALIDITY`] from `now`.
pub fn expiry(
    field: &str,
    requested: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, FieldViolation> {
    match requested {
        None => Ok(now + DEFAULT_VALIDITY),
        Some(at) if at > now => Ok(at),
        Some(_) => Err(FieldViolation::new(field, "must be in the future")),
    }
}

/// ListInvitations' filter: one status (as readers see it), or every invitation.
#[derive(Debug, Clone, Copy, Default)]
pub struct InvitationFilter {
    pub status: Option<InvitationStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitation(status: InvitationStatus, expires_in: Duration) -> (Invitation, DateTime<Utc>) {
        let now = Utc::now();
        let invitation = Invitation {
            id: 4,
            organization_id: 1,
            email: "ada@acme.test".into(),
            role: BaseRole::Member,
            role_id: "member_role".into(),
            role_key: "member".into(),
            status,
            inviter_user_id: Some(2),
            created_at: now,
            updated_at: now,
            expires_at: now + expires_in,
            version: 1,
        };
        (invitation, now)
    }

    fn reason(e: DomainError) -> Reason {
        match e {
            DomainError::FailedPrecondition { reason, .. } => reason,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn statuses_round_trip() {
        for status in [
            InvitationStatus::Pending,
            InvitationStatus::Accepted,
            InvitationStatus::Revoked,
            InvitationStatus::Expired,
        ] {
            assert_eq!(InvitationStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(InvitationStatus::parse("pending"), None);
    }

    #[test]
    fn a_pending_invitation_expires_the_instant_its_expiry_passes() {
        let (open, now) = invitation(InvitationStatus::Pending, Duration::seconds(1));
        assert_eq!(open.status_at(now), InvitationStatus::Pending);
        assert!(open.check_pending(now).is_ok());
        let at_expiry = open.expires_at;
        assert_eq!(open.status_at(at_expiry), InvitationStatus::Expired);
        assert_eq!(
            reason(open.check_pending(at_expiry).unwrap_err()),
            Reason::InvitationNotPending
        );
        assert_eq!(
            open.clone().as_seen_at(at_expiry).status,
            InvitationStatus::Expired
        );
        // Revoked and accepted ones stay what they are after their expiry.
        for status in [InvitationStatus::Revoked, InvitationStatus::Accepted] {
            let (closed, now) = invitation(status, Duration::seconds(-5));
            assert_eq!(closed.status_at(now), status);
            assert_eq!(
                reason(closed.check_pending(now).unwrap_err()),
                Reason::InvitationNotPending
            );
        }
    }

    #[test]
    fn the_accepting_user_owns_the_invited_email() {
        let (open, _) = invitation(InvitationStatus::Pending, Duration::days(1));
        assert!(open.check_email("ada@acme.test").is_ok());
        assert!(open.check_email("Ada@ACME.test").is_ok());
        assert_eq!(
            reason(open.check_email("bob@acme.test").unwrap_err()),
            Reason::InvitationEmailMismatch
        );
    }

    #[test]
    fn emails_are_required_valid_and_lower_case() {
        assert_eq!(email("email", " Ada@Acme.TEST ").unwrap(), "ada@acme.test");
        for bad in ["", "   ", "ada", "ada@", "@acme.test", "ada@acme"] {
            assert_eq!(email("email", bad).unwrap_err().field, "email", "{bad:?}");
        }
    }

    #[test]
    fn expiry_defaults_to_seven_days_and_must_be_in_the_future() {
        let now = Utc::now();
        assert_eq!(
            expiry("expires_at", None, now).unwrap(),
            now + Duration::days(7)
        );
        let later = now + Duration::hours(1);
        assert_eq!(expiry("expires_at", Some(later), now).unwrap(), later);
        for past in [now, now - Duration::seconds(1)] {
            assert_eq!(
                expiry("expires_at", Some(past), now).unwrap_err().field,
                "expires_at"
            );
        }
    }
}
