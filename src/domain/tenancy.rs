//! Organization-bound API keys: what a key bound to one organization may see and touch.
//!
//! A bound key sees its organization, its sub-teams and what hangs off them; everything else
//! answers exactly as if it did not exist (the same NOT_FOUND an absent id gets, left out of
//! lists). Creating what no organization contains (an organization) is PERMISSION_DENIED
//! `KEY_BOUND_TO_ORGANIZATION`. The api layer asks these predicates; storage filters lists by
//! `organization()`.

use super::errors::{DomainError, DomainResult, Reason};

/// The organization a caller's key is bound to, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Binding(pub Option<i64>);

impl Binding {
    pub const UNBOUND: Binding = Binding(None);

    /// The organization the key is bound to; None for an unbound key, which sees everything.
    pub fn organization(self) -> Option<i64> {
        self.0
    }

    /// Whether something of organization `organization_id` exists for this key.
    pub fn sees_organization(self, organization_id: i64) -> bool {
        self.0.is_none_or(|own| own == organization_id)
    }

    /// Ok when the key sees `organization_id`; otherwise `absent()`, the very error an absent
    /// resource gets, so that a bound key cannot tell another organization's ids from unused ones.
    pub fn check(
        self,
        organization_id: i64,
        absent: impl FnOnce() -> DomainError,
    ) -> DomainResult<()> {
        if self.sees_organization(organization_id) {
            Ok(())
        } else {
            Err(absent())
        }
    }

    /// The organization a request names, narrowed to the key's: none named becomes its own, its
    /// own stays, another one is `absent()`.
    pub fn narrow(
        self,
        requested: Option<i64>,
        absent: impl FnOnce() -> DomainError,
    ) -> DomainResult<Option<i64>> {
        match (self.0, requested) {
            (None, requested) => Ok(requested),
            (Some(own), None) => Ok(Some(own)),
            (Some(own), Some(requested)) if requested == own => Ok(Some(own)),
            (Some(_), Some(_)) => Err(absent()),
        }
    }

    /// Deleting a user takes all their memberships with them: a bound key may delete a user of
    /// its organization only when they belong to no other (`organizations`: those they have
    /// memberships in), since the deletion would reach into the others.
    pub fn may_delete_user(self, user_id: i64, organizations: &[i64]) -> DomainResult<()> {
        match self.0 {
            Some(own) if organizations.iter().any(|&org| org != own) => {
                Err(DomainError::PermissionDenied {
                    reason: Reason::KeyBoundToOrganization,
                    message: format!(
                        "this API key is bound to organization {own}: user {user_id} belongs to \
                         other organizations too, so only an unbound key may delete them"
                    ),
                    metadata: Default::default(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Creating an organization: no organization contains the new one, so a bound key may not.
    pub fn may_create_organization(self) -> DomainResult<()> {
        match self.0 {
            None => Ok(()),
            Some(own) => Err(DomainError::PermissionDenied {
                reason: Reason::KeyBoundToOrganization,
                message: format!(
                    "this API key is bound to organization {own}: it cannot create organizations"
                ),
                metadata: Default::default(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn absent() -> DomainError {
        DomainError::not_found("team 9")
    }

    fn is_not_found(e: &DomainError, message: &str) -> bool {
        matches!(e, DomainError::NotFound { reason: Reason::NotFound, message: m } if m == message)
    }

    #[test]
    fn an_unbound_key_sees_every_organization() {
        assert!(Binding::UNBOUND.sees_organization(1));
        assert!(Binding::UNBOUND.check(7, absent).is_ok());
        assert_eq!(Binding::UNBOUND.narrow(None, absent).unwrap(), None);
        assert_eq!(Binding::UNBOUND.narrow(Some(3), absent).unwrap(), Some(3));
        assert!(Binding::UNBOUND.may_create_organization().is_ok());
    }

    #[test]
    fn a_bound_key_sees_its_own_organization_only() {
        let bound = Binding(Some(1));
        assert!(bound.sees_organization(1));
        assert!(!bound.sees_organization(2));
        assert!(bound.check(1, absent).is_ok());
        assert!(is_not_found(
            &bound.check(2, absent).unwrap_err(),
            "team 9 not found"
        ));
        assert_eq!(bound.narrow(None, absent).unwrap(), Some(1));
        assert_eq!(bound.narrow(Some(1), absent).unwrap(), Some(1));
        assert!(is_not_found(
            &bound.narrow(Some(2), absent).unwrap_err(),
            "team 9 not found"
        ));
    }

    #[test]
    fn a_bound_key_creates_no_organization() {
        let e = Binding(Some(4)).may_create_organization().unwrap_err();
        assert!(matches!(
            e,
            DomainError::PermissionDenied {
                reason: Reason::KeyBoundToOrganization,
                ..
            }
        ));
    }

    #[test]
    fn a_bound_key_deletes_only_users_of_its_organization_alone() {
        assert!(Binding(Some(1)).may_delete_user(5, &[]).is_ok());
        assert!(Binding(Some(1)).may_delete_user(5, &[1]).is_ok());
        assert!(matches!(
            Binding(Some(1)).may_delete_user(5, &[1, 2]),
            Err(DomainError::PermissionDenied {
                reason: Reason::KeyBoundToOrganization,
                ..
            })
        ));
        assert!(Binding::UNBOUND.may_delete_user(5, &[1, 2]).is_ok());
    }
}
