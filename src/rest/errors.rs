//! The one mapping of a gRPC status (what the in-process service answered) to each vendor's
//! HTTP status and error body. The reason code (`ErrorInfo`) and the field violations
//! (`BadRequest`) travel into the body, so a REST client sees what a gRPC client sees.

use std::collections::BTreeMap;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};
use tonic::{Code, Status};
use tonic_types::StatusExt;
use utoipa::ToSchema;

use crate::domain::DomainError;

/// Whose error shape a route answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    CalCom,
    Close,
    Clerk,
}

impl Vendor {
    /// The vendor of a request path (for answers given before a handler runs).
    pub fn of(path: &str) -> Vendor {
        if path.starts_with("/api/v1/") {
            Vendor::Close
        } else if path.starts_with("/v1/") {
            Vendor::Clerk
        } else {
            Vendor::CalCom
        }
    }
}

/// The HTTP status of a gRPC code. Client input never gets a 5xx.
pub fn http_status(code: Code, vendor: Vendor) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange if vendor == Vendor::Clerk => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::FailedPrecondition => StatusCode::CONFLICT,
        Code::Aborted => StatusCode::PRECONDITION_FAILED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Cancelled | Code::Unknown | Code::Internal | Code::DataLoss => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// What a status carries, whatever the vendor.
struct Parts {
    reason: String,
    message: String,
    metadata: BTreeMap<String, String>,
    violations: Vec<(String, String)>,
    retry_after: Option<u64>,
}

fn parts(status: &Status) -> Parts {
    let details = status.get_error_details();
    let (reason, metadata) = match details.error_info() {
        Some(info) => (
            info.reason.clone(),
            info.metadata.clone().into_iter().collect(),
        ),
        None => (
            format!("{:?}", status.code()).to_uppercase(),
            BTreeMap::new(),
        ),
    };
    let violations = details
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.description.clone()))
                .collect()
        })
        .unwrap_or_default();
    let retry_after = details
        .retry_info()
        .and_then(|r| r.retry_delay)
        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
        .or(matches!(status.code(), Code::ResourceExhausted | Code::Unavailable).then_some(1))
        .map(|s| s.max(1));
    Parts {
        reason,
        message: status.message().to_string(),
        metadata,
        violations,
        retry_after,
    }
}

/// cal.com's error body.
#[derive(Serialize, ToSchema)]
pub struct CalError {
    /// Always `error`.
    pub status: String,
    pub error: CalErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct CalErrorDetail {
    /// The reason code, e.g. `LAST_OWNER`, `ROLE_NOT_FOUND`, `INVALID_ARGUMENT`.
    pub code: String,
    pub message: String,
    pub details: CalErrorDetails,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalErrorDetails {
    pub metadata: BTreeMap<String, String>,
    pub field_violations: Vec<FieldViolation>,
}

#[derive(Serialize, ToSchema)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// Clerk's error body.
#[derive(Serialize, ToSchema)]
pub struct ClerkErrors {
    pub errors: Vec<ClerkError>,
}

#[derive(Serialize, ToSchema)]
pub struct ClerkError {
    /// The reason code in lower case, e.g. `not_found`, `last_owner`.
    pub code: String,
    pub message: String,
    pub long_message: String,
    /// The reason's metadata; `param_name` names the bad field of a field violation.
    pub meta: BTreeMap<String, String>,
}

/// Close's error body.
#[derive(Serialize, ToSchema)]
pub struct CloseError {
    pub error: String,
    /// The reason code, e.g. `NOT_FOUND`.
    pub code: String,
    pub errors: Vec<String>,
    #[serde(rename = "field-errors")]
    pub field_errors: BTreeMap<String, String>,
}

fn body(vendor: Vendor, p: Parts) -> Value {
    match vendor {
        Vendor::CalCom => json!(CalError {
            status: "error".into(),
            error: CalErrorDetail {
                code: p.reason,
                message: p.message,
                details: CalErrorDetails {
                    metadata: p.metadata,
                    field_violations: p
                        .violations
                        .into_iter()
                        .map(|(field, description)| FieldViolation { field, description })
                        .collect(),
                },
            },
        }),
        Vendor::Clerk => {
            let code = p.reason.to_lowercase();
            let errors = if p.violations.is_empty() {
                vec![ClerkError {
                    code,
                    long_message: p.message.clone(),
                    message: p.message,
                    meta: p.metadata,
                }]
            } else {
                p.violations
                    .into_iter()
                    .map(|(field, description)| {
                        let mut meta = p.metadata.clone();
                        meta.insert("param_name".into(), field.clone());
                        ClerkError {
                            code: code.clone(),
                            long_message: format!("{field}: {description}"),
                            message: description,
                            meta,
                        }
                    })
                    .collect()
            };
            json!(ClerkErrors { errors })
        }
        Vendor::Close => json!(CloseError {
            errors: p
                .violations
                .iter()
                .map(|(f, d)| format!("{f}: {d}"))
                .collect(),
            field_errors: p.violations.into_iter().collect(),
            error: p.message,
            code: p.reason,
        }),
    }
}

/// The vendor's answer to a failed call.
pub fn response(vendor: Vendor, status: &Status) -> Response {
    let p = parts(status);
    let retry_after = p.retry_after;
    let mut response = (http_status(status.code(), vendor), Json(body(vendor, p))).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// A failed REST call: the status, answered in the vendor's shape.
pub struct RestError(pub Vendor, pub Status);

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        response(self.0, &self.1)
    }
}

/// Bad input found by the REST layer itself (a path or body that does not parse): the same
/// INVALID_ARGUMENT with a field violation the service gives.
pub fn invalid(vendor: Vendor, field: &str, description: impl Into<String>) -> RestError {
    RestError(vendor, DomainError::invalid(field, description).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_its_status() {
        use Vendor::*;
        for (code, want) in [
            (Code::InvalidArgument, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::FailedPrecondition, 409),
            (Code::Aborted, 412),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
        ] {
            assert_eq!(http_status(code, CalCom).as_u16(), want, "{code:?}");
            assert_eq!(http_status(code, Close).as_u16(), want, "{code:?}");
        }
        assert_eq!(http_status(Code::InvalidArgument, Clerk).as_u16(), 422);
    }

    #[test]
    fn overload_says_when_to_retry() {
        let status: Status = DomainError::Overloaded.into();
        let r = response(Vendor::CalCom, &status);
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let after: u64 = r.headers()[http::header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(after >= 1);
    }

    #[test]
    fn violations_reach_every_vendor_body() {
        let status: Status = DomainError::invalid("role", "unknown role").into();
        let cal = body(Vendor::CalCom, parts(&status));
        assert_eq!(cal["error"]["code"], "INVALID_ARGUMENT");
        assert_eq!(
            cal["error"]["details"]["fieldViolations"][0],
            json!({"field": "role", "description": "unknown role"})
        );
        let clerk = body(Vendor::Clerk, parts(&status));
        assert_eq!(clerk["errors"][0]["code"], "invalid_argument");
        assert_eq!(clerk["errors"][0]["meta"]["param_name"], "role");
        let close = body(Vendor::Close, parts(&status));
        assert_eq!(close["field-errors"]["role"], "unknown role");
    }
}
