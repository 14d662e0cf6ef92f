//! Who calls a REST route: the same authentication and scope check as the gRPC method the route
//! calls (`api::auth_layer`), so a key that may not call `UpdateMembership` over gRPC may not
//! PATCH a membership either.

use http::HeaderMap;
use tonic::Status;

use crate::api::auth_layer;
use crate::auth::Caller;

use super::Rest;

/// The authenticated caller of one REST call, handed to every in-process gRPC call it makes.
pub struct Authorized(Option<Caller>);

impl Authorized {
    /// A request to the in-process service, carrying the caller as `AuthLayer` hands it over.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(caller) = &self.0 {
            request.extensions_mut().insert(caller.clone());
        }
        request
    }
}

/// Authenticates the headers (Bearer, or Basic with the key as the user name; and
/// `x-actor-user-id`) and checks the scope of the gRPC method `path` (`/package.Service/Method`).
pub async fn authorize(rest: &Rest, headers: &HeaderMap, path: &str) -> Result<Authorized, Status> {
    auth_layer::authorize(&rest.context.auth, path, headers)
        .await
        .map(Authorized)
}
