//! Which API key scope each RPC needs: the one table the auth layer consults before any handler
//! runs. A method missing here is refused, so a new RPC cannot ship unchecked; the tests below
//! hold the table and the proto services to each other.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::auth::Scope;
use crate::pb::{
    access_service_server, api_key_service_server, attribute_service_server,
    directory_service_server, event_service_server, invitation_service_server,
    membership_service_server, role_service_server,
};

/// Services any caller may use without a key: health checks and server reflection.
const OPEN_SERVICES: &[&str] = &[
    tonic_health::pb::health_server::SERVICE_NAME,
    tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME,
    tonic_reflection::pb::v1alpha::server_reflection_server::SERVICE_NAME,
];

/// Per service, each method and the scope it needs.
const SCOPED_SERVICES: &[(&str, &[(&str, Scope)])] = &[
    (
        directory_service_server::SERVICE_NAME,
        &[
            ("CreateUser", Scope::DirectoryWrite),
            ("GetUser", Scope::DirectoryRead),
            ("UpdateUser", Scope::DirectoryWrite),
            ("ListUsers", Scope::DirectoryRead),
            ("DeleteUser", Scope::DirectoryWrite),
            ("CreateOrganization", Scope::DirectoryWrite),
            ("GetOrganization", Scope::DirectoryRead),
            ("UpdateOrganization", Scope::DirectoryWrite),
            ("ListOrganizations", Scope::DirectoryRead),
            ("DeleteOrganization", Scope::DirectoryWrite),
            ("CreateTeam", Scope::DirectoryWrite),
            ("GetTeam", Scope::DirectoryRead),
            ("UpdateTeam", Scope::DirectoryWrite),
            ("ListTeams", Scope::DirectoryRead),
            ("DeleteTeam", Scope::DirectoryWrite),
            ("ImportUsers", Scope::DirectoryWrite),
        ],
    ),
    (
        membership_service_server::SERVICE_NAME,
        &[
            ("CreateMembership", Scope::MembershipsWrite),
            ("GetMembership", Scope::MembershipsRead),
            ("UpdateMembership", Scope::MembershipsWrite),
            ("DeleteMembership", Scope::MembershipsWrite),
            ("ListMemberships", Scope::MembershipsRead),
            ("ListUserMemberships", Scope::MembershipsRead),
            ("ImportMemberships", Scope::MembershipsWrite),
        ],
    ),
    (
        event_service_server::SERVICE_NAME,
        &[
            ("ListEvents", Scope::EventsRead),
            ("WatchEvents", Scope::EventsRead),
        ],
    ),
    (
        role_service_server::SERVICE_NAME,
        &[
            ("CreateRole", Scope::RolesWrite),
            ("GetRole", Scope::RolesRead),
            ("UpdateRole", Scope::RolesWrite),
            ("DeleteRole", Scope::RolesWrite),
            ("ListRoles", Scope::RolesRead),
            ("AddRolePermissions", Scope::RolesWrite),
            ("RemoveRolePermissions", Scope::RolesWrite),
            ("ListPermissionCatalog", Scope::RolesRead),
        ],
    ),
    (
        access_service_server::SERVICE_NAME,
        &[
            ("CheckPermission", Scope::AccessCheck),
            ("BatchCheckPermissions", Scope::AccessCheck),
            ("ListEffectivePermissions", Scope::AccessCheck),
            ("LookupUsers", Scope::AccessCheck),
            ("LookupTeams", Scope::AccessCheck),
        ],
    ),
    (
        attribute_service_server::SERVICE_NAME,
        &[
            ("CreateAttribute", Scope::DirectoryWrite),
            ("ListAttributes", Scope::DirectoryRead),
            ("DeleteAttribute", Scope::DirectoryWrite),
            ("AddAttributeOption", Scope::DirectoryWrite),
            // Assignments change memberships, so they need the memberships scope.
            ("AssignAttribute", Scope::MembershipsWrite),
            ("UnassignAttribute", Scope::MembershipsWrite),
        ],
    ),
    (
        api_key_service_server::SERVICE_NAME,
        &[
            ("CreateApiKey", Scope::Admin),
            ("GetApiKey", Scope::Admin),
            ("ListApiKeys", Scope::Admin),
            ("RevokeApiKey", Scope::Admin),
        ],
    ),
    (
        invitation_service_server::SERVICE_NAME,
        &[
            ("CreateInvitation", Scope::MembershipsWrite),
            ("GetInvitation", Scope::MembershipsRead),
            ("ListInvitations", Scope::MembershipsRead),
            ("RevokeInvitation", Scope::MembershipsWrite),
            ("AcceptInvitation", Scope::MembershipsWrite),
        ],
    ),
];

/// What a call needs before it reaches its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Served without a key.
    Open,
    /// An API key holding this scope.
    Scoped(Scope),
    /// Not in the table: refused.
    Unlisted,
}

/// `/package.Service/Method` → scope, built once from the table.
static METHOD_SCOPES: LazyLock<HashMap<String, Scope>> = LazyLock::new(|| {
    SCOPED_SERVICES
        .iter()
        .flat_map(|(service, methods)| {
            methods
                .iter()
                .map(move |(method, scope)| (format!("/{service}/{method}"), *scope))
        })
        .collect()
});

/// The access rule of a gRPC request path (`/membership.v1.MembershipService/UpdateMembership`).
pub fn access(path: &str) -> Access {
    if let Some(scope) = METHOD_SCOPES.get(path) {
        return Access::Scoped(*scope);
    }
    let service = path
        .strip_prefix('/')
        .and_then(|rest| rest.split_once('/'))
        .map(|(service, _)| service);
    match service {
        Some(service) if OPEN_SERVICES.contains(&service) => Access::Open,
        _ => Access::Unlisted,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prost::Message;

    use super::*;

    /// Every `/membership.v1.Service/Method` the proto files declare.
    fn declared_methods() -> BTreeSet<String> {
        let set = prost_types::FileDescriptorSet::decode(crate::pb::FILE_DESCRIPTOR_SET)
            .expect("the compiled descriptor set decodes");
        set.file
            .iter()
            .filter(|file| file.package() == "membership.v1")
            .flat_map(|file| {
                file.service.iter().flat_map(move |service| {
                    service.method.iter().map(move |method| {
                        format!("/{}.{}/{}", file.package(), service.name(), method.name())
                    })
                })
            })
            .collect()
    }

    #[test]
    fn every_declared_method_has_a_scope() {
        let declared = declared_methods();
        assert!(declared.len() >= 40, "{} methods declared", declared.len());
        let missing: Vec<_> = declared
            .iter()
            .filter(|path| !matches!(access(path), Access::Scoped(_)))
            .collect();
        assert!(missing.is_empty(), "methods without a scope: {missing:?}");
    }

    #[test]
    fn every_table_entry_is_a_declared_method() {
        let declared = declared_methods();
        let stale: Vec<_> = METHOD_SCOPES
            .keys()
            .filter(|path| !declared.contains(*path))
            .collect();
        assert!(
            stale.is_empty(),
            "table entries no proto declares: {stale:?}"
        );
        let listed: usize = SCOPED_SERVICES.iter().map(|(_, m)| m.len()).sum();
        assert_eq!(listed, METHOD_SCOPES.len(), "a method is listed twice");
    }

    /// Method names that only read, for the `admin` scope, which covers reads and writes alike.
    const READ_VERBS: &[&str] = &["Get", "List", "Watch", "Check", "BatchCheck", "Lookup"];

    /// Whether a key scope lets a method write: every `*.write` scope, and `admin` unless the
    /// method's name says it reads.
    fn writes(scope: Scope, method: &str) -> bool {
        match scope {
            Scope::Admin => !READ_VERBS.iter().any(|verb| method.starts_with(verb)),
            other => other.as_str().ends_with(".write"),
        }
    }

    /// The scope table, not the method names, says what writes: a write RPC named anyhow (say
    /// `SetFoo`) has an actor policy entry, or this fails.
    #[test]
    fn every_write_scoped_method_has_an_actor_policy() {
        use crate::domain::policy::WRITE_RPCS;
        let covered: BTreeSet<String> = WRITE_RPCS.iter().map(|rpc| rpc.path()).collect();
        let mut write_methods = 0;
        for (service, methods) in SCOPED_SERVICES {
            for (method, scope) in *methods {
                if !writes(*scope, method) {
                    continue;
                }
                write_methods += 1;
                let path = format!("/{service}/{method}");
                assert!(
                    covered.contains(&path),
                    "{path} needs {} but has no actor policy entry (domain::policy::Write)",
                    scope.as_str()
                );
            }
        }
        assert!(write_methods >= 22, "{write_methods} write methods");
        // And the other way: what the policy calls a write needs a write scope.
        for rpc in WRITE_RPCS {
            if let Some(scope) = METHOD_SCOPES.get(&rpc.path()) {
                assert!(writes(*scope, rpc.method), "{} is a write", rpc.path());
            }
        }
        assert!(writes(Scope::Admin, "SetFoo"));
        assert!(writes(Scope::DirectoryWrite, "SetFoo"));
        assert!(!writes(Scope::Admin, "ListApiKeys"));
        assert!(!writes(Scope::DirectoryRead, "SetFoo"));
    }

    #[test]
    fn lookups() {
        assert_eq!(
            access("/membership.v1.MembershipService/UpdateMembership"),
            Access::Scoped(Scope::MembershipsWrite)
        );
        assert_eq!(
            access("/membership.v1.EventService/WatchEvents"),
            Access::Scoped(Scope::EventsRead)
        );
        assert_eq!(access("/grpc.health.v1.Health/Check"), Access::Open);
        assert_eq!(access("/grpc.health.v1.Health/Watch"), Access::Open);
        assert_eq!(
            access("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Access::Open
        );
        assert_eq!(
            access("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            Access::Open
        );
        for refused in [
            "/membership.v1.MembershipService/DropEverything",
            "/membership.v1.MembershipService",
            "/membership.v1.NoSuchService/GetMembership",
            "/grpc.health.v1.Healthy/Check",
            "",
            "/",
        ] {
            assert_eq!(access(refused), Access::Unlisted, "{refused:?}");
        }
    }
}
