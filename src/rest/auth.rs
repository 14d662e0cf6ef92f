//! Who calls a REST route: the same authentication and scope check as the gRPC method the route
//! calls (`api::auth_layer`), so a key that may not call `UpdateMembership` over gRPC may not
//! PATCH a membership either.

use http::HeaderMap;
use tonic::Status;

use crate::api::auth_layer;
use crate::api::scopes::{self, Access};
use crate::auth::Caller;
use crate::pb;

use super::Rest;

/// The authenticated caller of one REST call, handed to every in-process gRPC call it makes.
pub struct Authorized(Option<Caller>);

/// A request message of the gRPC method it is sent to, for that method's scope.
pub trait Method {
    const PATH: &'static str;
}

macro_rules! methods {
    ($($message:ident => $path:literal),+ $(,)?) => {$(
        impl Method for pb::$message {
            const PATH: &'static str = $path;
        }
    )+};
}

methods! {
    GetOrganizationRequest => "/membership.v1.DirectoryService/GetOrganization",
    GetTeamRequest => "/membership.v1.DirectoryService/GetTeam",
    GetMembershipRequest => "/membership.v1.MembershipService/GetMembership",
    ListMembershipsRequest => "/membership.v1.MembershipService/ListMemberships",
    CreateMembershipRequest => "/membership.v1.MembershipService/CreateMembership",
    UpdateMembershipRequest => "/membership.v1.MembershipService/UpdateMembership",
    DeleteMembershipRequest => "/membership.v1.MembershipService/DeleteMembership",
    GetRoleRequest => "/membership.v1.RoleService/GetRole",
    ListRolesRequest => "/membership.v1.RoleService/ListRoles",
    CreateRoleRequest => "/membership.v1.RoleService/CreateRole",
    UpdateRoleRequest => "/membership.v1.RoleService/UpdateRole",
    DeleteRoleRequest => "/membership.v1.RoleService/DeleteRole",
}

impl Authorized {
    /// A request to the in-process service, carrying the caller as `AuthLayer` hands it over.
    /// Every in-process call is held to its own method's scope, as `AuthLayer` holds a gRPC
    /// call: a route that reads beside its write needs the read scope too.
    pub fn request<T: Method>(&self, message: T) -> Result<tonic::Request<T>, Status> {
        self.require::<T>()?;
        let mut request = tonic::Request::new(message);
        if let Some(caller) = &self.0 {
            request.extensions_mut().insert(caller.clone());
        }
        Ok(request)
    }

    /// PERMISSION_DENIED unless the caller may call method `T`: for a route to check, before it
    /// writes, the scopes of what it reads after the write.
    pub fn require<T: Method>(&self) -> Result<(), Status> {
        if let (Some(caller), Access::Scoped(scope)) = (&self.0, scopes::access(T::PATH)) {
            caller.require(scope)?;
        }
        Ok(())
    }
}

/// Authenticates the headers (Bearer, or Basic with the key as the user name; and
/// `x-actor-user-id`) and checks the scope of the gRPC method `path` (`/package.Service/Method`).
pub async fn authorize(rest: &Rest, headers: &HeaderMap, path: &str) -> Result<Authorized, Status> {
    auth_layer::authorize(&rest.context.auth, path, headers)
        .await
        .map(Authorized)
}
