//! The one error type of the domain; `api::errors` maps it to gRPC statuses.

use std::collections::BTreeMap;

/// A bad field of a request: the `google.rpc.BadRequest` field violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Machine-readable reasons (`google.rpc.ErrorInfo.reason`, domain `membership.v1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    LastOwner,
    OwnerCannotExpire,
    MembershipLimitReached,
    NotAnOrganizationMember,
    SystemRoleImmutable,
    EtagMismatch,
    EventsExpired,
    RoleNotFound,
    ActorLacksPermission,
    NotFound,
    AlreadyExists,
    InvalidArgument,
    ApiKeyUnknown,
    ApiKeyRevoked,
    ApiKeyExpired,
    KeyBoundToOrganization,
    StorageFull,
    MalformedRequest,
    Overloaded,
    RateLimited,
    MessageTooLarge,
    RevisionUnknown,
    DeadlineExceeded,
    MissingScope,
    RequestIdReused,
    InvitationNotPending,
    InvitationEmailMismatch,
    Unavailable,
    Internal,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::LastOwner => "LAST_OWNER",
            Reason::OwnerCannotExpire => "OWNER_CANNOT_EXPIRE",
            Reason::MembershipLimitReached => "MEMBERSHIP_LIMIT_REACHED",
            Reason::NotAnOrganizationMember => "NOT_AN_ORGANIZATION_MEMBER",
            Reason::SystemRoleImmutable => "SYSTEM_ROLE_IMMUTABLE",
            Reason::EtagMismatch => "ETAG_MISMATCH",
            Reason::EventsExpired => "EVENTS_EXPIRED",
            Reason::RoleNotFound => "ROLE_NOT_FOUND",
            Reason::ActorLacksPermission => "ACTOR_LACKS_PERMISSION",
            Reason::NotFound => "NOT_FOUND",
            Reason::AlreadyExists => "ALREADY_EXISTS",
            Reason::InvalidArgument => "INVALID_ARGUMENT",
            Reason::ApiKeyUnknown => "API_KEY_UNKNOWN",
            Reason::ApiKeyRevoked => "API_KEY_REVOKED",
            Reason::ApiKeyExpired => "API_KEY_EXPIRED",
            Reason::KeyBoundToOrganization => "KEY_BOUND_TO_ORGANIZATION",
            Reason::StorageFull => "STORAGE_FULL",
            Reason::MalformedRequest => "MALFORMED_REQUEST",
            Reason::Overloaded => "OVERLOADED",
            Reason::RateLimited => "RATE_LIMITED",
            Reason::MessageTooLarge => "MESSAGE_TOO_LARGE",
            Reason::RevisionUnknown => "REVISION_UNKNOWN",
            Reason::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Reason::MissingScope => "MISSING_SCOPE",
            Reason::RequestIdReused => "REQUEST_ID_REUSED",
            Reason::InvitationNotPending => "INVITATION_NOT_PENDING",
            Reason::InvitationEmailMismatch => "INVITATION_EMAIL_MISMATCH",
            Reason::Unavailable => "UNAVAILABLE",
            Reason::Internal => "INTERNAL",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum DomainError {
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{message}")]
    NotFound { reason: Reason, message: String },
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{message}")]
    FailedPrecondition { reason: Reason, message: String },
    #[error("{0}")]
    EtagMismatch(String),
    #[error("{message}")]
    PermissionDenied {
        reason: Reason,
        message: String,
        metadata: BTreeMap<String, String>,
    },
    #[error("{message}")]
    Unauthenticated { reason: Reason, message: String },
    /// The server has as many calls in flight as it admits.
    #[error("the server is at its limit of calls in flight")]
    Overloaded,
    /// The calling key used up its `rate_limit_per_second`; a token is back after `retry_after`.
    #[error("the API key's rate limit is reached")]
    RateLimited { retry_after: std::time::Duration },
    /// A request body larger than the server accepts.
    #[error("{0}")]
    MessageTooLarge(String),
    /// A consistency token names a revision the database has not reached: it was not issued by
    /// this service (or belongs to another database).
    #[error("revision {requested} is newer than the newest ({head})")]
    RevisionUnknown {
        field: String,
        requested: i64,
        head: i64,
    },
    /// The call's deadline passed before it was answered.
    #[error("the deadline passed")]
    DeadlineExceeded,
    /// A request body that is not a valid message of its method's type.
    #[error("{0}")]
    Malformed(String),
    #[error("the database is unavailable")]
    Unavailable,
    /// The database refused a write for lack of space; nothing of the write was kept.
    #[error("the database storage is full")]
    StorageFull,
    /// Details go to the log, never to the client.
    #[error("internal error")]
    Internal(String),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        DomainError::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        DomainError::NotFound {
            reason: Reason::NotFound,
            message: format!("{what} not found"),
        }
    }

    pub fn role_not_found(reference: &str) -> Self {
        DomainError::NotFound {
            reason: Reason::RoleNotFound,
            message: format!("role {reference:?} not found"),
        }
    }

    pub fn precondition(reason: Reason, message: impl Into<String>) -> Self {
        DomainError::FailedPrecondition {
            reason,
            message: message.into(),
        }
    }

    pub fn actor_lacks(permission: &str, message: impl Into<String>) -> Self {
        let mut metadata = BTreeMap::new();
        metadata.insert("permission".to_string(), permission.to_string());
        DomainError::PermissionDenied {
            reason: Reason::ActorLacksPermission,
            message: message.into(),
            metadata,
        }
    }

    /// The error of entry `index` of a batch's `list` (`memberships[3]`): field violations and
    /// messages name the entry; the code and reason stay the entry's own.
    pub fn in_entry(self, list: &str, index: usize) -> Self {
        let at = format!("{list}[{index}]");
        match self {
            DomainError::InvalidArgument(violations) => DomainError::InvalidArgument(
                violations
                    .into_iter()
                    .map(|v| FieldViolation::new(format!("{at}.{}", v.field), v.description))
                    .collect(),
            ),
            DomainError::NotFound { reason, message } => DomainError::NotFound {
                reason,
                message: format!("{at}: {message}"),
            },
            DomainError::AlreadyExists(message) => {
                DomainError::AlreadyExists(format!("{at}: {message}"))
            }
            DomainError::FailedPrecondition { reason, message } => {
                DomainError::FailedPrecondition {
                    reason,
                    message: format!("{at}: {message}"),
                }
            }
            DomainError::PermissionDenied {
                reason,
                message,
                metadata,
            } => DomainError::PermissionDenied {
                reason,
                message: format!("{at}: {message}"),
                metadata,
            },
            other => other,
        }
    }

    /// An actor rule (`OWNER_ONLY`, `SELF_ONLY`, …) refused the write: metadata `rule` names it.
    pub fn actor_breaks(rule: &str, message: impl Into<String>) -> Self {
        let metadata = BTreeMap::from([("rule".to_string(), rule.to_string())]);
        DomainError::PermissionDenied {
            reason: Reason::ActorLacksPermission,
            message: message.into(),
            metadata,
        }
    }
}

/// Collects every bad field of a request before failing, so one answer names them all.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Records the error of a field check, keeping its value when it passed.
    pub fn check<T>(&mut self, result: Result<T, FieldViolation>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(v) => {
                self.0.push(v);
                None
            }
        }
    }

    pub fn extend(&mut self, violations: Vec<FieldViolation>) {
        self.0.extend(violations);
    }

    pub fn into_result(self) -> Result<(), DomainError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DomainError::InvalidArgument(self.0))
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
