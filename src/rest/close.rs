//! Close: `GET|PUT /api/v1/membership/{id}/`, HTTP Basic with the API key as the user name.
//! `role_id` is a predefined role (`admin`, `superuser`, `user`, `restricteduser`) or a role id;
//! `auto_record_calls` is `unset`, `disabled` or `enabled`. A successful PUT answers `{}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::auth::authorize;
use super::errors::{CloseError, RestError, Vendor};
use super::{Rest, if_match, json_body, path_id, rfc3339};
use crate::pb;
use crate::pb::membership_service_server::MembershipService;

const V: Vendor = Vendor::Close;
const GET_MEMBERSHIP: &str = "/membership.v1.MembershipService/GetMembership";
const UPDATE_MEMBERSHIP: &str = "/membership.v1.MembershipService/UpdateMembership";

fn fail(status: tonic::Status) -> RestError {
    RestError(V, status)
}

/// Close's `auto_record_calls`.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AutoRecordCalls {
    Unset,
    Disabled,
    Enabled,
}

impl AutoRecordCalls {
    fn pb(self) -> pb::AutoRecordCalls {
        match self {
            AutoRecordCalls::Unset => pb::AutoRecordCalls::Unset,
            AutoRecordCalls::Disabled => pb::AutoRecordCalls::Disabled,
            AutoRecordCalls::Enabled => pb::AutoRecordCalls::Enabled,
        }
    }

    fn of(value: i32) -> AutoRecordCalls {
        match pb::AutoRecordCalls::try_from(value) {
            Ok(pb::AutoRecordCalls::Disabled) => AutoRecordCalls::Disabled,
            Ok(pb::AutoRecordCalls::Enabled) => AutoRecordCalls::Enabled,
            _ => AutoRecordCalls::Unset,
        }
    }
}

/// Close's name of a role: its predefined role names, else the role's id.
pub fn close_role(role_id: &str) -> String {
    match role_id {
        "admin_role" => "admin",
        "superuser_role" => "superuser",
        "member_role" => "user",
        "restricteduser_role" => "restricteduser",
        other => other,
    }
    .to_string()
}

/// A Close membership.
#[derive(Serialize, ToSchema)]
pub struct Membership {
    pub id: String,
    pub organization_id: String,
    pub user_id: String,
    pub role_id: String,
    pub auto_record_calls: AutoRecordCalls,
    pub user_email: String,
    pub user_full_name: String,
    pub date_created: String,
    pub date_updated: String,
}

/// The fields a PUT may set; absent ones are left alone.
#[derive(Deserialize, ToSchema)]
pub struct UpdateMembership {
    #[serde(default)]
    pub role_id: Option<String>,
    #[serde(default)]
    pub auto_record_calls: Option<AutoRecordCalls>,
}

/// Close answers a successful update with an empty object.
#[derive(Serialize, ToSchema)]
pub struct Empty {}

#[utoipa::path(get, path = "/api/v1/membership/{id}/", tag = "Close",
    params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = Membership), (status = "4XX", body = CloseError)),
    security(("basic" = [])))]
pub async fn get_membership(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, RestError> {
    let auth = authorize(&rest, &headers, GET_MEMBERSHIP)
        .await
        .map_err(fail)?;
    let id = path_id(V, "id", &id)?;
    let m = rest
        .memberships()
        .get_membership(
            auth.request(pb::GetMembershipRequest {
                member: Some(pb::get_membership_request::Member::MembershipId(id)),
                ..Default::default()
            })
            .map_err(fail)?,
        )
        .await
        .map_err(fail)?
        .into_inner();
    let user = m.user.unwrap_or_default();
    Ok(Json(Membership {
        id: m.id.to_string(),
        organization_id: m.organization_id.to_string(),
        user_id: m.user_id.to_string(),
        role_id: close_role(&m.role_id),
        auto_record_calls: AutoRecordCalls::of(m.auto_record_calls),
        user_email: user.email,
        user_full_name: user.name,
        date_created: rfc3339(&m.created_at),
        date_updated: rfc3339(&m.updated_at),
    })
    .into_response())
}

#[utoipa::path(put, path = "/api/v1/membership/{id}/", tag = "Close",
    params(("id" = i64, Path, minimum = 1)), request_body = UpdateMembership,
    responses((status = 200, body = Empty), (status = "4XX", body = CloseError)),
    security(("basic" = [])))]
pub async fn update_membership(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, RestError> {
    let auth = authorize(&rest, &headers, UPDATE_MEMBERSHIP)
        .await
        .map_err(fail)?;
    let id = path_id(V, "id", &id)?;
    let update: UpdateMembership = json_body(V, &body)?;
    rest.memberships()
        .update_membership(
            auth.request(pb::UpdateMembershipRequest {
                member: Some(pb::update_membership_request::Member::MembershipId(id)),
                role_id: update.role_id,
                auto_record_calls: update.auto_record_calls.map(|a| a.pb() as i32),
                etag: if_match(&headers),
                ..Default::default()
            })
            .map_err(fail)?,
        )
        .await
        .map_err(fail)?;
    Ok(Json(json!({})).into_response())
}
