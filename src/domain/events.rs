//! What every write records: the event kinds, and the filters readers of the log apply.

use super::model::Event;

/// The kind of an event. The wire name (`Event.kind`, the `kind` filters) is
/// `resource.change`, e.g. `membership.updated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    UserCreated,
    UserUpdated,
    UserDeleted,
    OrganizationCreated,
    OrganizationUpdated,
    OrganizationDeleted,
    TeamCreated,
    TeamUpdated,
    TeamDeleted,
    MembershipCreated,
    MembershipUpdated,
    MembershipDeleted,
    RoleCreated,
    RoleUpdated,
    RoleDeleted,
    AttributeCreated,
    AttributeUpdated,
    AttributeDeleted,
    ApiKeyCreated,
    ApiKeyRevoked,
    InvitationCreated,
    InvitationAccepted,
    InvitationRevoked,
    InvitationExpired,
}

impl EventKind {
    pub const ALL: [EventKind; 24] = [
        EventKind::UserCreated,
        EventKind::UserUpdated,
        EventKind::UserDeleted,
        EventKind::OrganizationCreated,
        EventKind::OrganizationUpdated,
        EventKind::OrganizationDeleted,
        EventKind::TeamCreated,
        EventKind::TeamUpdated,
        EventKind::TeamDeleted,
        EventKind::MembershipCreated,
        EventKind::MembershipUpdated,
        EventKind::MembershipDeleted,
        EventKind::RoleCreated,
        EventKind::RoleUpdated,
        EventKind::RoleDeleted,
        EventKind::AttributeCreated,
        EventKind::AttributeUpdated,
        EventKind::AttributeDeleted,
        EventKind::ApiKeyCreated,
        EventKind::ApiKeyRevoked,
        EventKind::InvitationCreated,
        EventKind::InvitationAccepted,
        EventKind::InvitationRevoked,
        EventKind::InvitationExpired,
    ];

    /// The wire name, stored in the event row as it is.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::UserCreated => "user.created",
            EventKind::UserUpdated => "user.updated",
            EventKind::UserDeleted => "user.deleted",
            EventKind::OrganizationCreated => "organization.created",
            EventKind::OrganizationUpdated => "organization.updated",
            EventKind::OrganizationDeleted => "organization.deleted",
            EventKind::TeamCreated => "team.created",
            EventKind::TeamUpdated => "team.updated",
            EventKind::TeamDeleted => "team.deleted",
            EventKind::MembershipCreated => "membership.created",
            EventKind::MembershipUpdated => "membership.updated",
            EventKind::MembershipDeleted => "membership.deleted",
            EventKind::RoleCreated => "role.created",
            EventKind::RoleUpdated => "role.updated",
            EventKind::RoleDeleted => "role.deleted",
            EventKind::AttributeCreated => "attribute.created",
            EventKind::AttributeUpdated => "attribute.updated",
            EventKind::AttributeDeleted => "attribute.deleted",
            EventKind::ApiKeyCreated => "api_key.created",
            EventKind::ApiKeyRevoked => "api_key.revoked",
            EventKind::InvitationCreated => "invitation.created",
            EventKind::InvitationAccepted => "invitation.accepted",
            EventKind::InvitationRevoked => "invitation.revoked",
            EventKind::InvitationExpired => "invitation.expired",
        }
    }

    /// Exact, case-sensitive, like the filters that name kinds.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `kind` is one of the event kinds writes record.
pub fn is_event_kind(kind: &str) -> bool {
    EventKind::parse(kind).is_some()
}

/// Which events a reader of the log wants (ListEvents, a watcher, the feed's follower).
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub after_sequence: i64,
    /// Events up to this sequence only.
    pub up_to: Option<i64>,
    /// Events of this team, or of this organization and its teams.
    pub team_id: Option<i64>,
    /// Events recorded as this organization's only: a bound key's view (`domain::tenancy`).
    /// Events that record no organization (a user's own updates) are left out.
    pub organization_id: Option<i64>,
    /// Any of these kinds (wire names); empty: every kind.
    pub kinds: Vec<String>,
    pub actor_key_id: Option<String>,
    pub actor_user_id: Option<i64>,
    /// Microseconds since the epoch: at or after.
    pub occurred_after: Option<i64>,
    /// Microseconds since the epoch: strictly before.
    pub occurred_before: Option<i64>,
}

impl EventFilter {
    /// Whether an event passes the filters a watcher gives (team, kinds and actors).
    pub fn matches(&self, e: &Event) -> bool {
        self.team_id
            .is_none_or(|t| e.team_id == Some(t) || e.organization_id == Some(t))
            && self
                .organization_id
                .is_none_or(|o| e.organization_id == Some(o))
            && (self.kinds.is_empty() || self.kinds.contains(&e.kind))
            && self
                .actor_key_id
                .as_ref()
                .is_none_or(|k| e.actor_key_id.as_ref() == Some(k))
            && self
                .actor_user_id
                .is_none_or(|u| e.actor_user_id == Some(u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_the_documented_ones() {
        let mut names = Vec::new();
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(kind.to_string(), kind.as_str());
            names.push(kind.as_str());
        }
        let mut expected = Vec::new();
        for resource in [
            "user",
            "organization",
            "team",
            "membership",
            "role",
            "attribute",
        ] {
            for change in ["created", "updated", "deleted"] {
                expected.push(format!("{resource}.{change}"));
            }
        }
        expected.extend(["api_key.created".into(), "api_key.revoked".into()]);
        for change in ["created", "accepted", "revoked", "expired"] {
            expected.push(format!("invitation.{change}"));
        }
        assert_eq!(names, expected);
    }

    #[test]
    fn unknown_kinds() {
        for name in [
            "",
            "user",
            "user.",
            "User.created",
            "membership.moved",
            "event.created",
            "user.created ",
        ] {
            assert!(!is_event_kind(name), "{name:?}");
        }
        assert!(is_event_kind("membership.updated"));
    }
}
