//! The invariants of docs/design.md section 3, as decisions over data the storage layer loaded
//! inside the write's transaction.

use chrono::{DateTime, Utc};

use super::errors::{DomainError, DomainResult, Reason};
use super::model::{Membership, RoleRef, Team, etag};
use super::roles::{BaseRole, system_role_for_base};
use super::validate::email_in_domain;

/// A team keeps at least one accepted OWNER: a write that takes the last one away (demotion,
/// un-accepting, deletion when `after` is `None`) is refused. `other_accepted_owners` counts the
/// team's accepted owners other than this membership, read under the organization's lock.
pub fn check_last_owner(
    before: &Membership,
    after: Option<&Membership>,
    other_accepted_owners: u64,
) -> DomainResult<()> {
    let loses_owner =
        before.is_accepted_owner() && !after.is_some_and(Membership::is_accepted_owner);
    if loses_owner && other_accepted_owners == 0 {
        return Err(DomainError::precondition(
            Reason::LastOwner,
            format!(
                "membership {} is the last accepted OWNER of team {}; make another member OWNER first",
                before.id, before.team_id
            ),
        ));
    }
    Ok(())
}

/// OWNER memberships never expire: a membership that would end up OWNER with an expiry (created
/// so, given one as an owner, or promoted while expiring) is refused. So a team's last owner can
/// never vanish by expiring.
pub fn check_owner_expiry(role: BaseRole, expires_at: Option<DateTime<Utc>>) -> DomainResult<()> {
    if role == BaseRole::Owner && expires_at.is_some() {
        return Err(DomainError::precondition(
            Reason::OwnerCannotExpire,
            "an OWNER membership cannot expire: clear expires_at or choose another role",
        ));
    }
    Ok(())
}

/// A user has at most one membership per team.
pub fn check_not_yet_member(already: bool, user_id: i64, team_id: i64) -> DomainResult<()> {
    if already {
        return Err(DomainError::AlreadyExists(format!(
            "user {user_id} already has a membership in team {team_id}"
        )));
    }
    Ok(())
}

/// A sub-team's members are members of its organization first.
pub fn check_organization_member(
    is_member: bool,
    user_id: i64,
    organization_id: i64,
) -> DomainResult<()> {
    if !is_member {
        return Err(DomainError::precondition(
            Reason::NotAnOrganizationMember,
            format!("user {user_id} is not a member of organization {organization_id}"),
        ));
    }
    Ok(())
}

/// When a membership ends by expiry: its own `expires_at` or, for a sub-team membership, its
/// organization membership's (the sweep takes sub-team memberships along), whichever is first.
/// This is what [`check_owner_expiry`] judges for a sub-team membership.
pub fn lapses_at(
    own: Option<DateTime<Utc>>,
    organization_membership: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match (own, organization_membership) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// An organization membership whose user is OWNER of one of its sub-teams cannot get an expiry
/// either: expiring, it would take that ownership along.
pub fn check_organization_expiry(
    expires_at: Option<DateTime<Utc>>,
    owns_a_sub_team: bool,
) -> DomainResult<()> {
    if expires_at.is_some() && owns_a_sub_team {
        return Err(DomainError::precondition(
            Reason::OwnerCannotExpire,
            "the user is OWNER of a sub-team, which their organization membership's expiry would \
             end: make them another role there first",
        ));
    }
    Ok(())
}

/// Whether `check_membership_limit` can refuse anything in this organization (0 is unlimited),
/// so that a batch skips counting when it cannot.
pub fn limits_memberships(organization: &Team) -> bool {
    organization.max_allowed_memberships > 0
}

/// `max_allowed_memberships` > 0 caps an organization's memberships, pending ones included, and
/// its pending invitations, each a seat held for the invited user. Checked before a new
/// membership or invitation; accepting an invitation trades its seat for the membership and is
/// not checked.
pub fn check_membership_limit(
    organization: &Team,
    current_memberships: u64,
    pending_invitations: u64,
) -> DomainResult<()> {
    let limit = organization.max_allowed_memberships;
    if limit > 0 && current_memberships + pending_invitations >= limit as u64 {
        return Err(DomainError::precondition(
            Reason::MembershipLimitReached,
            format!(
                "organization {} allows at most {limit} memberships",
                organization.id
            ),
        ));
    }
    Ok(())
}

/// An update or delete carrying an etag applies only to the version it names.
pub fn check_etag(expected: Option<&str>, version: i64) -> DomainResult<()> {
    match expected {
        Some(expected) if !expected.is_empty() && expected != etag(version) => {
            Err(DomainError::EtagMismatch(format!(
                "etag {expected:?} does not match the current {:?}; read the resource again",
                etag(version)
            )))
        }
        _ => Ok(()),
    }
}

/// A new membership is accepted when asked, or when the organization auto-accepts the user's
/// email domain, whatever the request said.
pub fn accepted_on_create(requested: bool, organization: &Team, user_email: &str) -> bool {
    requested
        || organization
            .auto_accept_email_domain
            .as_deref()
            .is_some_and(|domain| email_in_domain(user_email, domain))
}

/// The base level and PBAC role a membership ends up with, from the request's `role` (enum) and
/// resolved `role_id`, over the current values (`None` on create).
///
/// - `role` alone picks the matching system role;
/// - a system `role_id` sets `role` to its base level, a custom one leaves `role` alone;
/// - both sent must agree when `role_id` is a system role.
pub fn choose_role(
    requested_role: Option<BaseRole>,
    requested_ref: Option<RoleRef>,
    current: Option<(BaseRole, RoleRef)>,
) -> DomainResult<(BaseRole, RoleRef)> {
    let system_ref = |base: BaseRole| {
        let role = system_role_for_base(base);
        RoleRef {
            id: role.id.to_string(),
            key: role.key.to_string(),
            base: Some(role.base),
        }
    };
    let current_base = current.as_ref().map(|(base, _)| *base);
    match (requested_role, requested_ref) {
        (Some(role), Some(reference)) => match reference.base {
            Some(base) if base != role => Err(DomainError::invalid(
                "role",
                format!(
                    "{} does not match role_id {:?} (whose level is {})",
                    role.as_str(),
                    reference.id,
                    base.as_str()
                ),
            )),
            _ => Ok((role, reference)),
        },
        (None, Some(reference)) => {
            let base = reference.base.or(current_base).unwrap_or(BaseRole::Member);
            Ok((base, reference))
        }
        (Some(role), None) => Ok((role, system_ref(role))),
        (None, None) => {
            Ok(current.unwrap_or_else(|| (BaseRole::Member, system_ref(BaseRole::Member))))
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::model::{AutoRecordCalls, JsonObject};

    fn membership(role: BaseRole, accepted: bool) -> Membership {
        Membership {
            id: 7,
            team_id: 1,
            organization_id: 1,
            user_id: 3,
            accepted,
            role,
            role_id: system_role_for_base(role).id.into(),
            role_key: system_role_for_base(role).key.into(),
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

    fn org(limit: i32, domain: Option<&str>) -> Team {
        Team {
            id: 1,
            parent_id: None,
            name: "Acme".into(),
            slug: "acme".into(),
            image_url: String::new(),
            max_allowed_memberships: limit,
            auto_accept_email_domain: domain.map(str::to_string),
            admin_delete_enabled: true,
            public_metadata: JsonObject::new(),
            private_metadata: JsonObject::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version: 1,
        }
    }

    fn reason(err: DomainError) -> Reason {
        match err {
            DomainError::FailedPrecondition { reason, .. } => reason,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn last_owner_cannot_be_demoted_unaccepted_or_deleted() {
        let owner = membership(BaseRole::Owner, true);
        let demoted = membership(BaseRole::Admin, true);
        let pending = membership(BaseRole::Owner, false);
        assert_eq!(
            reason(check_last_owner(&owner, Some(&demoted), 0).unwrap_err()),
            Reason::LastOwner
        );
        assert_eq!(
            reason(check_last_owner(&owner, Some(&pending), 0).unwrap_err()),
            Reason::LastOwner
        );
        assert_eq!(
            reason(check_last_owner(&owner, None, 0).unwrap_err()),
            Reason::LastOwner
        );
        assert!(check_last_owner(&owner, Some(&demoted), 1).is_ok());
        assert!(check_last_owner(&owner, Some(&owner), 0).is_ok());
        // A pending owner or a member was never the guarantee.
        assert!(check_last_owner(&pending, None, 0).is_ok());
        assert!(check_last_owner(&demoted, None, 0).is_ok());
    }

    #[test]
    fn owners_never_expire() {
        let soon = Some(Utc::now() + chrono::Duration::hours(1));
        assert_eq!(
            reason(check_owner_expiry(BaseRole::Owner, soon).unwrap_err()),
            Reason::OwnerCannotExpire
        );
        assert!(check_owner_expiry(BaseRole::Owner, None).is_ok());
        for role in [BaseRole::Admin, BaseRole::Member] {
            assert!(check_owner_expiry(role, soon).is_ok());
            assert!(check_owner_expiry(role, None).is_ok());
        }
    }

    #[test]
    fn a_sub_team_owner_does_not_lapse_with_the_organization_membership() {
        let one = Utc::now() + chrono::Duration::hours(1);
        let two = one + chrono::Duration::hours(1);
        assert_eq!(lapses_at(None, None), None);
        assert_eq!(lapses_at(Some(two), None), Some(two));
        assert_eq!(lapses_at(None, Some(one)), Some(one));
        assert_eq!(lapses_at(Some(two), Some(one)), Some(one));
        assert_eq!(
            reason(check_owner_expiry(BaseRole::Owner, lapses_at(None, Some(one))).unwrap_err()),
            Reason::OwnerCannotExpire
        );
        assert_eq!(
            reason(check_organization_expiry(Some(one), true).unwrap_err()),
            Reason::OwnerCannotExpire
        );
        assert!(check_organization_expiry(Some(one), false).is_ok());
        assert!(check_organization_expiry(None, true).is_ok());
    }

    #[test]
    fn membership_limit() {
        assert!(check_membership_limit(&org(0, None), 10_000, 10_000).is_ok());
        assert!(check_membership_limit(&org(3, None), 2, 0).is_ok());
        assert!(check_membership_limit(&org(3, None), 0, 2).is_ok());
        assert_eq!(
            reason(check_membership_limit(&org(3, None), 3, 0).unwrap_err()),
            Reason::MembershipLimitReached
        );
        // Pending invitations hold seats too.
        assert_eq!(
            reason(check_membership_limit(&org(3, None), 2, 1).unwrap_err()),
            Reason::MembershipLimitReached
        );
        assert_eq!(
            reason(check_membership_limit(&org(3, None), 0, 3).unwrap_err()),
            Reason::MembershipLimitReached
        );
    }

    #[test]
    fn etags() {
        assert!(check_etag(None, 4).is_ok());
        assert!(check_etag(Some(""), 4).is_ok());
        assert!(check_etag(Some(&etag(4)), 4).is_ok());
        assert!(matches!(
            check_etag(Some(&etag(3)), 4),
            Err(DomainError::EtagMismatch(_))
        ));
    }

    #[test]
    fn auto_accept_by_domain() {
        let acme = org(0, Some("acme.com"));
        assert!(accepted_on_create(
            false,
            &acme,
            "ada@ACME.com".to_lowercase().as_str()
        ));
        assert!(!accepted_on_create(false, &acme, "ada@other.com"));
        assert!(accepted_on_create(true, &org(0, None), "ada@other.com"));
    }

    #[test]
    fn role_choice() {
        let custom = RoleRef {
            id: "r1".into(),
            key: "reviewer".into(),
            base: None,
        };
        let admin = RoleRef {
            id: "admin_role".into(),
            key: "admin".into(),
            base: Some(BaseRole::Admin),
        };
        // Nothing asked: member.
        let (base, r) = choose_role(None, None, None).unwrap();
        assert_eq!((base, r.id.as_str()), (BaseRole::Member, "member_role"));
        // The enum alone picks the system role.
        let (base, r) = choose_role(Some(BaseRole::Owner), None, None).unwrap();
        assert_eq!((base, r.id.as_str()), (BaseRole::Owner, "owner_role"));
        // A system role id sets the level.
        let (base, _) = choose_role(
            None,
            Some(admin.clone()),
            Some((BaseRole::Member, custom.clone())),
        )
        .unwrap();
        assert_eq!(base, BaseRole::Admin);
        // A custom role keeps the level.
        let (base, r) = choose_role(
            None,
            Some(custom.clone()),
            Some((BaseRole::Owner, admin.clone())),
        )
        .unwrap();
        assert_eq!((base, r.id.as_str()), (BaseRole::Owner, "r1"));
        // Disagreeing enum and system role id.
        assert!(matches!(
            choose_role(Some(BaseRole::Owner), Some(admin), None),
            Err(DomainError::InvalidArgument(_))
        ));
        // Enum with a custom role sets the level.
        let (base, r) = choose_role(Some(BaseRole::Admin), Some(custom), None).unwrap();
        assert_eq!((base, r.id.as_str()), (BaseRole::Admin, "r1"));
    }

    #[test]
    fn one_membership_per_team_and_sub_teams_need_the_organization() {
        assert!(check_not_yet_member(false, 7, 1).is_ok());
        let taken = check_not_yet_member(true, 7, 1).unwrap_err();
        assert!(matches!(taken, DomainError::AlreadyExists(_)), "{taken:?}");
        assert_eq!(
            taken.in_entry("memberships", 3).to_string(),
            "memberships[3]: user 7 already has a membership in team 1"
        );
        assert!(check_organization_member(true, 7, 1).is_ok());
        assert!(matches!(
            check_organization_member(false, 7, 1),
            Err(DomainError::FailedPrecondition {
                reason: Reason::NotAnOrganizationMember,
                ..
            })
        ));
    }
}
