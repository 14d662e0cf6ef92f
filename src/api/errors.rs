//! The single mapping of domain errors to gRPC statuses with `google.rpc` details.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::{DomainError, Reason};

pub const ERROR_DOMAIN: &str = "membership.v1";

fn info(
    details: &mut ErrorDetails,
    reason: Reason,
    metadata: impl IntoIterator<Item = (String, String)>,
) {
    details.set_error_info(
        reason.as_str(),
        ERROR_DOMAIN,
        metadata
            .into_iter()
            .collect::<std::collections::HashMap<String, String>>(),
    );
}

/// At most this many field violations go back in one `BadRequest`.
const MAX_VIOLATIONS: usize = 100;
/// Longer field names and descriptions (which may echo a value) are cut to this many chars.
const MAX_DETAIL_CHARS: usize = 80;
/// The status message names the first few; `BadRequest` carries them all.
const MAX_MESSAGE_VIOLATIONS: usize = 5;

fn short(text: &str) -> String {
    match text.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Handlers return domain errors with `?`; this is the only place they become statuses.
impl From<DomainError> for Status {
    fn from(err: DomainError) -> Status {
        status(err)
    }
}

fn status(err: DomainError) -> Status {
    let mut details = ErrorDetails::new();
    let (code, message) = match err {
        DomainError::InvalidArgument(violations) => {
            // Trailers are small (clients refuse a few KiB): a bounded number of violations,
            // each with a bounded text, whatever a hostile request echoed into them.
            let shown: Vec<(String, String)> = violations
                .iter()
                .take(MAX_VIOLATIONS)
                .map(|v| (short(&v.field), short(&v.description)))
                .collect();
            let mut message = format!(
                "invalid {}",
                shown
                    .iter()
                    .take(MAX_MESSAGE_VIOLATIONS)
                    .map(|(field, description)| format!("{field}: {description}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            if violations.len() > MAX_MESSAGE_VIOLATIONS {
                message.push_str(&format!(
                    "; and {} more",
                    violations.len() - MAX_MESSAGE_VIOLATIONS
                ));
            }
            for (field, description) in shown {
                details.add_bad_request_violation(field, description);
            }
            info(&mut details, Reason::InvalidArgument, []);
            (Code::InvalidArgument, message)
        }
        DomainError::NotFound { reason, message } => {
            info(&mut details, reason, []);
            (Code::NotFound, message)
        }
        DomainError::AlreadyExists(message) => {
            info(&mut details, Reason::AlreadyExists, []);
            (Code::AlreadyExists, message)
        }
        DomainError::FailedPrecondition { reason, message } => {
            info(&mut details, reason, []);
            (Code::FailedPrecondition, message)
        }
        DomainError::EtagMismatch(message) => {
            info(&mut details, Reason::EtagMismatch, []);
            (Code::Aborted, message)
        }
        DomainError::PermissionDenied {
            reason,
            message,
            metadata,
        } => {
            info(&mut details, reason, metadata);
            (Code::PermissionDenied, message)
        }
        DomainError::Unauthenticated { reason, message } => {
            info(&mut details, reason, []);
            (Code::Unauthenticated, message)
        }
        DomainError::Unavailable => {
            info(&mut details, Reason::Unavailable, []);
            details.set_retry_info(Some(Duration::from_secs(1)));
            (
                Code::Unavailable,
                "the database is unavailable; retry shortly".to_string(),
            )
        }
        DomainError::Overloaded => {
            info(&mut details, Reason::Overloaded, []);
            details.set_retry_info(Some(Duration::from_millis(100)));
            (
                Code::ResourceExhausted,
                "the server is at its limit of calls in flight or database connections; retry shortly"
                    .to_string(),
            )
        }
        DomainError::RateLimited { retry_after } => {
            info(&mut details, Reason::RateLimited, []);
            details.set_retry_info(Some(retry_after));
            (
                Code::ResourceExhausted,
                "the API key's rate limit is reached; retry after the delay in RetryInfo"
                    .to_string(),
            )
        }
        DomainError::MessageTooLarge(message) => {
            info(&mut details, Reason::MessageTooLarge, []);
            (Code::ResourceExhausted, message)
        }
        DomainError::RevisionUnknown {
            field,
            requested,
            head,
        } => {
            let description = format!(
                "revision {requested} is newer than any this database has recorded ({head}); \
                 use a revision a response returned"
            );
            details.add_bad_request_violation(field, description.clone());
            info(
                &mut details,
                Reason::RevisionUnknown,
                [
                    ("requested".to_string(), requested.to_string()),
                    ("head".to_string(), head.to_string()),
                ],
            );
            (Code::InvalidArgument, description)
        }
        DomainError::DeadlineExceeded => {
            info(&mut details, Reason::DeadlineExceeded, []);
            (
                Code::DeadlineExceeded,
                "the call's deadline passed before it was answered".to_string(),
            )
        }
        DomainError::Malformed(message) => {
            info(&mut details, Reason::MalformedRequest, []);
            (Code::InvalidArgument, message)
        }
        DomainError::StorageFull => {
            info(&mut details, Reason::StorageFull, []);
            details.set_retry_info(Some(Duration::from_secs(5)));
            (
                Code::ResourceExhausted,
                "the database storage is full; nothing of this write was kept".to_string(),
            )
        }
        DomainError::Internal(_) => {
            info(&mut details, Reason::Internal, []);
            (Code::Internal, "internal error".to_string())
        }
    };
    Status::with_error_details(code, message, details)
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt;

    use super::*;
    use crate::domain::FieldViolation;

    #[test]
    fn bad_requests_stay_small_whatever_they_echo() {
        let huge = "x".repeat(100_000);
        let violations = (0..1000)
            .map(|i| {
                FieldViolation::new(format!("permissions[{i}]"), format!("{huge:?} is unknown"))
            })
            .collect();
        let status = Status::from(DomainError::InvalidArgument(violations));
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status
            .get_error_details()
            .bad_request()
            .cloned()
            .expect("BadRequest");
        assert_eq!(bad.field_violations.len(), MAX_VIOLATIONS);
        assert!(
            bad.field_violations
                .iter()
                .all(|v| v.description.chars().count() <= MAX_DETAIL_CHARS + 1)
        );
        assert!(status.message().len() < 1000, "{}", status.message().len());
        assert!(status.message().ends_with("and 995 more"));
        assert!(
            status.details().len() < 16 * 1024,
            "{}",
            status.details().len()
        );
    }
}
