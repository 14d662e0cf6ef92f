//! Clerk Backend API: organization memberships addressed by (organization, user), snake_case
//! `OrganizationMembership` bodies, times in Unix milliseconds, lists as
//! `{"data": […], "total_count": N}`. Our ids are int64; Clerk's are strings, so they are
//! rendered as strings and accepted as strings.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use tonic::Code;
use utoipa::{IntoParams, ToSchema};

use super::auth::{Authorized, authorize};
use super::errors::{ClerkErrors, RestError, Vendor};
use super::{Rest, json_body, millis, object, path_id};
use crate::pb;
use crate::pb::directory_service_server::DirectoryService;
use crate::pb::membership_service_server::MembershipService;
use crate::pb::role_service_server::RoleService;

const V: Vendor = Vendor::Clerk;
const CREATE_MEMBERSHIP: &str = "/membership.v1.MembershipService/CreateMembership";
const UPDATE_MEMBERSHIP: &str = "/membership.v1.MembershipService/UpdateMembership";
const DELETE_MEMBERSHIP: &str = "/membership.v1.MembershipService/DeleteMembership";
const LIST_MEMBERSHIPS: &str = "/membership.v1.MembershipService/ListMemberships";

/// How often a metadata merge is retried when another write changed the membership between
/// its read and its write.
const MERGE_ATTEMPTS: usize = 5;

fn fail(status: tonic::Status) -> RestError {
    RestError(V, status)
}

/// Every Clerk answer embeds the organization and the role's permissions: the key must also
/// read them, checked before the route writes anything.
async fn authorize_clerk(
    rest: &Rest,
    headers: &HeaderMap,
    path: &str,
) -> Result<Authorized, RestError> {
    let auth = authorize(rest, headers, path).await.map_err(fail)?;
    auth.require::<pb::GetOrganizationRequest>().map_err(fail)?;
    auth.require::<pb::GetRoleRequest>().map_err(fail)?;
    Ok(auth)
}

/// Clerk's Organization object.
#[derive(Serialize, ToSchema, Clone)]
pub struct Organization {
    /// Always `organization`.
    pub object: String,
    pub id: String,
    pub name: String,
    pub slug: String,
    pub image_url: String,
    pub has_image: bool,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub public_metadata: Map<String, Value>,
    pub private_metadata: Map<String, Value>,
    /// 0 = unlimited.
    pub max_allowed_memberships: i32,
    pub admin_delete_enabled: bool,
    pub members_count: i64,
}

/// OrganizationMembershipPublicUserData.
#[derive(Serialize, ToSchema)]
pub struct PublicUserData {
    pub user_id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub image_url: String,
    pub has_image: bool,
    /// The user's email address.
    pub identifier: String,
}

/// Clerk's OrganizationMembership object.
#[derive(Serialize, ToSchema)]
pub struct OrganizationMembership {
    /// Always `organization_membership`.
    pub object: String,
    pub id: String,
    /// A role key such as `org:admin`, `org:member` or a custom role's key.
    pub role: String,
    pub permissions: Vec<String>,
    pub public_metadata: Map<String, Value>,
    pub private_metadata: Map<String, Value>,
    pub created_at: i64,
    pub updated_at: i64,
    pub organization: Organization,
    pub public_user_data: PublicUserData,
}

#[derive(Serialize, ToSchema)]
pub struct OrganizationMembershipList {
    pub data: Vec<OrganizationMembership>,
    pub total_count: i64,
}

/// Clerk's key of a role: the three base system roles as `org:…`, others by their key.
pub fn clerk_role(role_id: &str, role_key: &str) -> String {
    match role_id {
        "owner_role" => "org:owner".into(),
        "admin_role" => "org:admin".into(),
        "member_role" => "org:member".into(),
        _ => role_key.into(),
    }
}

/// A Clerk id: a string (or a number) holding one of our int64 ids.
fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let value = Value::deserialize(d)?;
    let id = match &value {
        Value::String(s) => s.parse::<i64>().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    };
    id.filter(|id| *id > 0)
        .ok_or_else(|| serde::de::Error::custom("must be a user id"))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateMembership {
    #[serde(deserialize_with = "id_string")]
    #[schema(value_type = String)]
    pub user_id: i64,
    pub role: String,
    #[serde(default)]
    pub public_metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub private_metadata: Option<Map<String, Value>>,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateMembership {
    #[serde(default)]
    pub role: Option<String>,
}

/// Deep-merged into the metadata; a `null` value deletes the key.
#[derive(Deserialize, ToSchema)]
pub struct UpdateMetadata {
    #[serde(default)]
    pub public_metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub private_metadata: Option<Map<String, Value>>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many to return (default 10, at most 500).
    pub limit: Option<u32>,
    /// How many to skip.
    pub offset: Option<u32>,
}

const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 500;
const PAGE: i32 = 1000;

/// Clerk's merge of metadata: objects merge key by key, all the way down; `null` deletes.
pub fn deep_merge(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(&key);
            }
            Value::Object(patch) => match target.get_mut(&key) {
                Some(Value::Object(existing)) => deep_merge(existing, patch),
                _ => {
                    let mut fresh = Map::new();
                    deep_merge(&mut fresh, patch);
                    target.insert(key, Value::Object(fresh));
                }
            },
            other => {
                target.insert(key, other);
            }
        }
    }
}

fn to_struct(object: &Map<String, Value>) -> Option<prost_types::Struct> {
    crate::api::convert::to_struct(object)
}

fn organization(o: pb::Organization) -> Organization {
    Organization {
        object: "organization".into(),
        id: o.id.to_string(),
        name: o.name,
        slug: o.slug,
        image_url: o.image_url,
        has_image: o.has_image,
        created_by: String::new(),
        created_at: millis(&o.created_at),
        updated_at: millis(&o.updated_at),
        public_metadata: object(o.public_metadata),
        private_metadata: object(o.private_metadata),
        max_allowed_memberships: o.max_allowed_memberships,
        admin_delete_enabled: o.admin_delete_enabled,
        members_count: o.members_count,
    }
}

async fn get_organization(
    rest: &Rest,
    auth: &Authorized,
    org: i64,
) -> Result<Organization, RestError> {
    let o = rest
        .directory()
        .get_organization(
            auth.request(pb::GetOrganizationRequest {
                organization_id: org,
            })
            .map_err(fail)?,
        )
        .await
        .map_err(fail)?
        .into_inner();
    Ok(organization(o))
}

/// The membership in Clerk's shape, with its organization (read once per answer) and its role's
/// permissions.
async fn render(
    rest: &Rest,
    auth: &Authorized,
    m: pb::Membership,
    organization: Organization,
) -> Result<OrganizationMembership, RestError> {
    let permissions = match rest
        .roles()
        .get_role(
            auth.request(pb::GetRoleRequest {
                team_id: m.team_id,
                role_id: m.role_id.clone(),
            })
            .map_err(fail)?,
        )
        .await
    {
        Ok(role) => role.into_inner().permissions,
        // Deleted since: its memberships were reassigned; the next read shows the new role.
        Err(s) if s.code() == Code::NotFound => Vec::new(),
        Err(s) => return Err(fail(s)),
    };
    let user = m.user.unwrap_or_default();
    let some = |s: String| (!s.is_empty()).then_some(s);
    Ok(OrganizationMembership {
        object: "organization_membership".into(),
        id: m.id.to_string(),
        role: clerk_role(&m.role_id, &m.role_key),
        permissions,
        public_metadata: object(m.public_metadata),
        private_metadata: object(m.private_metadata),
        created_at: millis(&m.created_at),
        updated_at: millis(&m.updated_at),
        organization,
        public_user_data: PublicUserData {
            user_id: m.user_id.to_string(),
            first_name: some(user.first_name),
            last_name: some(user.last_name),
            image_url: user.avatar_url,
            has_image: user.has_image,
            identifier: user.email,
        },
    })
}

async fn answer(
    rest: &Rest,
    auth: &Authorized,
    org: i64,
    m: pb::Membership,
) -> Result<Response, RestError> {
    let organization = get_organization(rest, auth, org).await?;
    Ok(Json(render(rest, auth, m, organization).await?).into_response())
}

async fn fetch(
    rest: &Rest,
    auth: &Authorized,
    org: i64,
    user: i64,
) -> Result<pb::Membership, RestError> {
    Ok(rest
        .memberships()
        .get_membership(
            auth.request(pb::GetMembershipRequest {
                team_id: org,
                organization_id: org,
                member: Some(pb::get_membership_request::Member::UserId(user)),
                consistency: Some(pb::Consistency {
                    requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
                }),
            })
            .map_err(fail)?,
        )
        .await
        .map_err(fail)?
        .into_inner())
}

#[utoipa::path(get, path = "/v1/organizations/{organization_id}/memberships", tag = "Clerk",
    params(("organization_id" = String, Path), ListQuery),
    responses((status = 200, body = OrganizationMembershipList), (status = "4XX", body = ClerkErrors)),
    security(("bearer" = [])))]
pub async fn list_memberships(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path(org): Path<String>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, RestError> {
    let auth = authorize_clerk(&rest, &headers, LIST_MEMBERSHIPS).await?;
    let org = path_id(V, "organization_id", &org)?;
    let (offset, limit) = match q {
        Ok(Query(q)) => (
            q.offset.unwrap_or(0) as usize,
            q.limit.map_or(DEFAULT_LIMIT, |l| l as usize).min(MAX_LIMIT),
        ),
        Err(e) => return Err(super::errors::invalid(V, "limit", e.body_text())),
    };
    // total_count is the whole list's length: every page is read.
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = rest
            .memberships()
            .list_memberships(
                auth.request(pb::ListMembershipsRequest {
                    team_id: org,
                    organization_id: org,
                    page_size: PAGE,
                    page_token,
                    ..Default::default()
                })
                .map_err(fail)?,
            )
            .await
            .map_err(fail)?
            .into_inner();
        all.extend(page.memberships);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let total_count = all.len() as i64;
    let organization = get_organization(&rest, &auth, org).await?;
    let mut data = Vec::new();
    for m in all.into_iter().skip(offset).take(limit) {
        data.push(render(&rest, &auth, m, organization.clone()).await?);
    }
    Ok(Json(OrganizationMembershipList { data, total_count }).into_response())
}

#[utoipa::path(post, path = "/v1/organizations/{organization_id}/memberships", tag = "Clerk",
    params(("organization_id" = String, Path)), request_body = CreateMembership,
    responses((status = 200, body = OrganizationMembership), (status = "4XX", body = ClerkErrors)),
    security(("bearer" = [])))]
pub async fn create_membership(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Response, RestError> {
    let auth = authorize_clerk(&rest, &headers, CREATE_MEMBERSHIP).await?;
    let org = path_id(V, "organization_id", &org)?;
    let create: CreateMembership = json_body(V, &body)?;
    let m = rest
        .memberships()
        .create_membership(
            auth.request(pb::CreateMembershipRequest {
                team_id: org,
                organization_id: org,
                user_id: create.user_id,
                role_id: create.role,
                // Clerk adds members directly: there is no invitation step on this endpoint.
                accepted: true,
                public_metadata: create.public_metadata.as_ref().and_then(to_struct),
                private_metadata: create.private_metadata.as_ref().and_then(to_struct),
                ..Default::default()
            })
            .map_err(fail)?,
        )
        .await
        .map_err(fail)?
        .into_inner();
    answer(&rest, &auth, org, m).await
}

#[utoipa::path(patch, path = "/v1/organizations/{organization_id}/memberships/{user_id}", tag = "Clerk",
    params(("organization_id" = String, Path), ("user_id" = String, Path)), request_body = UpdateMembership,
    responses((status = 200, body = OrganizationMembership), (status = "4XX", body = ClerkErrors)),
    security(("bearer" = [])))]
pub async fn update_membership(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path((org, user)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, RestError> {
    let auth = authorize_clerk(&rest, &headers, UPDATE_MEMBERSHIP).await?;
    let org = path_id(V, "organization_id", &org)?;
    let user = path_id(V, "user_id", &user)?;
    let update: UpdateMembership = json_body(V, &body)?;
    let m = rest
        .memberships()
        .update_membership(
            auth.request(pb::UpdateMembershipRequest {
                team_id: org,
                organization_id: org,
                member: Some(pb::update_membership_request::Member::UserId(user)),
                role_id: update.role,
                ..Default::default()
            })
            .map_err(fail)?,
        )
        .await
        .map_err(fail)?
        .into_inner();
    answer(&rest, &auth, org, m).await
}

#[utoipa::path(patch, path = "/v1/organizations/{organization_id}/memberships/{user_id}/metadata", tag = "Clerk",
    params(("organization_id" = String, Path), ("user_id" = String, Path)), request_body = UpdateMetadata,
    responses((status = 200, body = OrganizationMembership), (status = "4XX", body = ClerkErrors)),
    security(("bearer" = [])))]
pub async fn update_metadata(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path((org, user)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, RestError> {
    let auth = authorize_clerk(&rest, &headers, UPDATE_MEMBERSHIP).await?;
    let org = path_id(V, "organization_id", &org)?;
    let user = path_id(V, "user_id", &user)?;
    let patch: UpdateMetadata = json_body(V, &body)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = fetch(&rest, &auth, org, user).await?;
        let merged = |now: Option<prost_types::Struct>, patch: &Option<Map<String, Value>>| {
            patch.as_ref().map(|patch| {
                let mut now = object(now);
                deep_merge(&mut now, patch.clone());
                to_struct(&now).unwrap_or_default()
            })
        };
        let request = pb::UpdateMembershipRequest {
            team_id: org,
            organization_id: org,
            member: Some(pb::update_membership_request::Member::UserId(user)),
            public_metadata: merged(current.public_metadata, &patch.public_metadata),
            private_metadata: merged(current.private_metadata, &patch.private_metadata),
            // The merge is of what was read: a write in between is merged again, not lost.
            etag: Some(current.etag),
            ..Default::default()
        };
        match rest
            .memberships()
            .update_membership(auth.request(request).map_err(fail)?)
            .await
        {
            Ok(m) => return answer(&rest, &auth, org, m.into_inner()).await,
            Err(s) if s.code() == Code::Aborted && attempt < MERGE_ATTEMPTS => continue,
            Err(s) => return Err(fail(s)),
        }
    }
}

#[utoipa::path(delete, path = "/v1/organizations/{organization_id}/memberships/{user_id}", tag = "Clerk",
    params(("organization_id" = String, Path), ("user_id" = String, Path)),
    responses((status = 200, description = "The deleted membership", body = OrganizationMembership), (status = "4XX", body = ClerkErrors)),
    security(("bearer" = [])))]
pub async fn delete_membership(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path((org, user)): Path<(String, String)>,
) -> Result<Response, RestError> {
    let auth = authorize_clerk(&rest, &headers, DELETE_MEMBERSHIP).await?;
    let org = path_id(V, "organization_id", &org)?;
    let user = path_id(V, "user_id", &user)?;
    // Clerk answers with the deleted membership: the state the delete removed.
    let m = fetch(&rest, &auth, org, user).await?;
    let organization = get_organization(&rest, &auth, org).await?;
    rest.memberships()
        .delete_membership(
            auth.request(pb::DeleteMembershipRequest {
                team_id: org,
                organization_id: org,
                member: Some(pb::delete_membership_request::Member::UserId(user)),
                etag: Some(m.etag.clone()),
            })
            .map_err(fail)?,
        )
        .await
        .map_err(fail)?;
    Ok(Json(render(&rest, &auth, m, organization).await?).into_response())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn metadata_merges_deeply_and_null_deletes() {
        let mut now = json!({"a": 1, "nested": {"x": 1, "y": 2}, "gone": true})
            .as_object()
            .unwrap()
            .clone();
        let patch = json!({"b": 2, "nested": {"y": null, "z": 3}, "gone": null, "new": {"k": null, "v": 1}});
        deep_merge(&mut now, patch.as_object().unwrap().clone());
        assert_eq!(
            Value::Object(now),
            json!({"a": 1, "b": 2, "nested": {"x": 1, "z": 3}, "new": {"v": 1}})
        );
    }
}
