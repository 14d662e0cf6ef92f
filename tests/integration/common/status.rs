//! Reading the error details a failed call carries.

use tonic::Code;
use tonic::Status;
use tonic_types::StatusExt;

/// The `google.rpc.ErrorInfo` of a status, if it has one.
pub fn error_info(status: &Status) -> Option<tonic_types::ErrorInfo> {
    status.get_error_details().error_info().cloned()
}

/// The `google.rpc.ErrorInfo` reason of a status (`LAST_OWNER`, `ROLE_NOT_FOUND`, …).
pub fn reason(status: &Status) -> Option<String> {
    error_info(status).map(|info| info.reason)
}

/// The field names of a status's `google.rpc.BadRequest` violations.
pub fn field_violations(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Unwraps the error of a call that must fail, with a readable panic otherwise.
pub fn expect_err<T: std::fmt::Debug>(result: Result<tonic::Response<T>, Status>) -> Status {
    match result {
        Ok(response) => panic!("expected an error, got {:?}", response.into_inner()),
        Err(status) => status,
    }
}

/// INVALID_ARGUMENT with a `BadRequest` violation of `field` (among any others).
#[track_caller]
pub fn assert_invalid(status: &Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let fields = field_violations(status);
    assert!(
        fields.iter().any(|f| f == field),
        "violations {fields:?} name {field:?}: {status:?}"
    );
}
