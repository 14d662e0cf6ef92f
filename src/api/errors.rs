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
            let message = format!(
                "invalid {}",
                violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            for v in &violations {
                details.add_bad_request_violation(v.field.clone(), v.description.clone());
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
