//! cal.com API v2: organization and team memberships, team roles. camelCase bodies in the
//! `{"status": "success", "data": …}` envelope; `Authorization: Bearer <key>`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Authorized, authorize};
use super::errors::{CalError, RestError, Vendor};
use super::{Rest, if_match, json_body, object, path_id, rfc3339};
use crate::pb;
use crate::pb::directory_service_server::DirectoryService;
use crate::pb::membership_service_server::MembershipService;
use crate::pb::role_service_server::RoleService;

const V: Vendor = Vendor::CalCom;
const CREATE_MEMBERSHIP: &str = "/membership.v1.MembershipService/CreateMembership";
const GET_MEMBERSHIP: &str = "/membership.v1.MembershipService/GetMembership";
const UPDATE_MEMBERSHIP: &str = "/membership.v1.MembershipService/UpdateMembership";
const DELETE_MEMBERSHIP: &str = "/membership.v1.MembershipService/DeleteMembership";
const LIST_MEMBERSHIPS: &str = "/membership.v1.MembershipService/ListMemberships";
const CREATE_ROLE: &str = "/membership.v1.RoleService/CreateRole";
const GET_ROLE: &str = "/membership.v1.RoleService/GetRole";
const UPDATE_ROLE: &str = "/membership.v1.RoleService/UpdateRole";
const DELETE_ROLE: &str = "/membership.v1.RoleService/DeleteRole";
const LIST_ROLES: &str = "/membership.v1.RoleService/ListRoles";

type Answer = Result<Response, RestError>;

fn fail(status: tonic::Status) -> RestError {
    RestError(V, status)
}

/// cal.com's membership role.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum CalRole {
    Member,
    Owner,
    Admin,
}

impl CalRole {
    fn pb(self) -> pb::MembershipRole {
        match self {
            CalRole::Member => pb::MembershipRole::Member,
            CalRole::Owner => pb::MembershipRole::Owner,
            CalRole::Admin => pb::MembershipRole::Admin,
        }
    }

    fn of(role: i32) -> CalRole {
        match pb::MembershipRole::try_from(role) {
            Ok(pb::MembershipRole::Owner) => CalRole::Owner,
            Ok(pb::MembershipRole::Admin) => CalRole::Admin,
            _ => CalRole::Member,
        }
    }
}

/// MembershipUserOutputDto.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MembershipUserOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bio: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// Text, number and single-select attributes (`option` is a number for numbers).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OptionAttribute {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = Object)]
    pub option: Value,
    pub option_id: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MultiSelectAttributeOption {
    pub option_id: String,
    pub option: String,
}

#[derive(Serialize, ToSchema)]
pub struct MultiSelectAttribute {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub options: Vec<MultiSelectAttributeOption>,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum CalAttribute {
    Option(OptionAttribute),
    MultiSelect(MultiSelectAttribute),
}

/// OrganizationMembershipOutput (with `attributes`) and the team membership output (without).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MembershipOutput {
    pub id: i64,
    pub user_id: i64,
    pub team_id: i64,
    pub accepted: bool,
    pub role: CalRole,
    pub disable_impersonation: bool,
    pub user: MembershipUserOutput,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Vec<CalAttribute>>,
}

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn attribute(a: pb::MembershipAttribute) -> Option<CalAttribute> {
    use pb::membership_attribute::Value as A;
    let option = |id, name, kind, option, option_id| {
        CalAttribute::Option(OptionAttribute {
            id,
            name,
            kind,
            option,
            option_id,
        })
    };
    Some(match a.value? {
        A::Text(t) => option(t.id, t.name, t.r#type, Value::from(t.option), t.option_id),
        A::Number(n) => option(n.id, n.name, n.r#type, Value::from(n.option), n.option_id),
        A::SingleSelect(s) => option(s.id, s.name, s.r#type, Value::from(s.option), s.option_id),
        A::MultiSelect(m) => CalAttribute::MultiSelect(MultiSelectAttribute {
            id: m.id,
            name: m.name,
            kind: m.r#type,
            options: m
                .options
                .into_iter()
                .map(|o| MultiSelectAttributeOption {
                    option_id: o.option_id,
                    option: o.option,
                })
                .collect(),
        }),
    })
}

fn membership(m: pb::Membership, with_attributes: bool) -> MembershipOutput {
    let user = m.user.unwrap_or_default();
    let metadata = object(user.metadata);
    MembershipOutput {
        id: m.id,
        user_id: m.user_id,
        team_id: m.team_id,
        accepted: m.accepted,
        role: CalRole::of(m.role),
        disable_impersonation: m.disable_impersonation,
        user: MembershipUserOutput {
            avatar_url: some(user.avatar_url),
            username: some(user.username),
            name: some(user.name),
            email: user.email,
            bio: some(user.bio),
            metadata: (!metadata.is_empty()).then_some(metadata),
        },
        attributes: with_attributes
            .then(|| m.attributes.into_iter().filter_map(attribute).collect()),
    }
}

/// TeamRoleOutput.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamRoleOutput {
    pub id: String,
    pub name: String,
    pub color: Option<String>,
    pub description: Option<String>,
    pub team_id: Option<i64>,
    /// `SYSTEM` or `CUSTOM`.
    #[serde(rename = "type")]
    pub kind: String,
    pub permissions: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn role(r: pb::Role) -> TeamRoleOutput {
    TeamRoleOutput {
        kind: if r.r#type == pb::RoleType::System as i32 {
            "SYSTEM"
        } else {
            "CUSTOM"
        }
        .into(),
        created_at: rfc3339(&r.created_at),
        updated_at: rfc3339(&r.updated_at),
        id: r.id,
        name: r.name,
        color: r.color,
        description: r.description,
        team_id: r.team_id,
        permissions: r.permissions,
    }
}

macro_rules! envelope {
    ($name:ident, $data:ty) => {
        #[derive(Serialize, ToSchema)]
        pub struct $name {
            /// Always `success`.
            pub status: String,
            pub data: $data,
        }

        impl $name {
            fn answer(code: StatusCode, data: $data) -> Response {
                (
                    code,
                    Json($name {
                        status: "success".into(),
                        data,
                    }),
                )
                    .into_response()
            }
        }
    };
}

envelope!(MembershipEnvelope, MembershipOutput);
envelope!(MembershipListEnvelope, Vec<MembershipOutput>);
envelope!(RoleEnvelope, TeamRoleOutput);
envelope!(RoleListEnvelope, Vec<TeamRoleOutput>);

/// CreateOrgMembershipDto.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrgMembershipDto {
    pub user_id: i64,
    #[serde(default)]
    pub accepted: Option<bool>,
    /// Defaults to MEMBER.
    #[serde(default)]
    pub role: Option<CalRole>,
    #[serde(default)]
    pub disable_impersonation: Option<bool>,
}

/// UpdateOrgMembershipDto: absent fields are left alone.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateOrgMembershipDto {
    #[serde(default)]
    pub accepted: Option<bool>,
    #[serde(default)]
    pub role: Option<CalRole>,
    #[serde(default)]
    pub disable_impersonation: Option<bool>,
}

/// CreateTeamRoleInput.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateTeamRoleInput {
    pub name: String,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// UpdateTeamRoleInput: `permissions`, when present, replaces the whole set.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateTeamRoleInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
}

/// cal.com's offset pagination.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Pagination {
    /// How many to return (default 250, at most 1000).
    pub take: Option<u32>,
    /// How many to skip.
    pub skip: Option<u32>,
}

const DEFAULT_TAKE: usize = 250;
const MAX_PAGE: usize = 1000;

fn window(
    q: &Result<Query<Pagination>, axum::extract::rejection::QueryRejection>,
) -> Result<(usize, usize), RestError> {
    match q {
        Ok(Query(p)) => Ok((
            p.skip.unwrap_or(0) as usize,
            p.take.map_or(DEFAULT_TAKE, |t| t as usize).min(MAX_PAGE),
        )),
        Err(e) => Err(super::errors::invalid(V, "take", e.body_text())),
    }
}

/// Walks the pages of a list until `skip + take` items are in hand.
async fn collect<T, F, Fut>(skip: usize, take: usize, mut page: F) -> Result<Vec<T>, RestError>
where
    F: FnMut(String, i32) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let want = skip + take;
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let size = (want - items.len()).clamp(1, MAX_PAGE) as i32;
        let (more, next) = page(token, size).await.map_err(fail)?;
        items.extend(more);
        if next.is_empty() || items.len() >= want {
            break;
        }
        token = next;
    }
    Ok(items.into_iter().skip(skip).take(take).collect())
}

fn num(name: &str, value: &str) -> Result<i64, RestError> {
    path_id(V, name, value)
}

/// Team routes name the organization too: the team must be one of its sub-teams (or the
/// organization itself), else the team is not found.
async fn check_team(
    rest: &Rest,
    auth: &Authorized,
    org_id: i64,
    team_id: i64,
) -> Result<(), RestError> {
    if org_id == team_id {
        return Ok(());
    }
    rest.directory()
        .get_team(
            auth.request(pb::GetTeamRequest {
                team_id,
                organization_id: org_id,
            })
            .map_err(fail)?,
        )
        .await
        .map_err(fail)?;
    Ok(())
}

async fn get_org_membership(
    rest: &Rest,
    auth: &Authorized,
    org: i64,
    id: i64,
) -> Result<pb::Membership, RestError> {
    Ok(rest
        .memberships()
        .get_membership(
            auth.request(pb::GetMembershipRequest {
                team_id: org,
                organization_id: org,
                member: Some(pb::get_membership_request::Member::MembershipId(id)),
                consistency: None,
            })
            .map_err(fail)?,
        )
        .await
        .map_err(fail)?
        .into_inner())
}

#[utoipa::path(get, path = "/v2/organizations/{orgId}/memberships", tag = "cal.com",
    params(("orgId" = i64, Path, minimum = 1), Pagination),
    responses((status = 200, body = MembershipListEnvelope), (status = "4XX", body = CalError)),
    security(("bearer" = [])))]
pub async fn list_memberships(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path(org): Path<String>,
    q: Result<Query<Pagination>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let auth = authorize(&rest, &headers, LIST_MEMBERSHIPS)
        .await
        .map_err(fail)?;
    let org = num("orgId", &org)?;
    let (skip, take) = window(&q)?;
    let api = rest.memberships();
    let items = collect(skip, take, |page_token, page_size| {
        let request = auth.request(pb::ListMembershipsRequest {
            team_id: org,
            organization_id: org,
            page_size,
            page_token,
            ..Default::default()
        });
        let api = &api;
        async move {
            let r = api.list_memberships(request?).await?.into_inner();
            Ok((r.memberships, r.next_page_token))
        }
    })
    .await?;
    Ok(MembershipListEnvelope::answer(
        StatusCode::OK,
        items.into_iter().map(|m| membership(m, true)).collect(),
    ))
}

#[utoipa::path(post, path = "/v2/organizations/{orgId}/memberships", tag = "cal.com",
    params(("orgId" = i64, Path, minimum = 1)), request_body = CreateOrgMembershipDto,
    responses((status = 201, body = MembershipEnvelope), (status = "4XX", body = CalError)),
    security(("bearer" = [])))]
pub async fn create_membership(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path(org): Path<String>,
    body: Bytes,
) -> Answer {
    let auth = authorize(&rest, &headers, CREATE_MEMBERSHIP)
        .await
        .map_err(fail)?;
    let org = num("orgId", &org)?;
    let dto: CreateOrgMembershipDto = json_body(V, &body)?;
    let m = rest
        .memberships()
        .create_membership(
            auth.request(pb::CreateMembershipRequest {
                team_id: org,
                organization_id: org,
                user_id: dto.user_id,
                role: dto.role.unwrap_or(CalRole::Member).pb() as i32,
                accepted: dto.accepted.unwrap_or(false),
                disable_impersonation: dto.disable_impersonation.unwrap_or(false),
                ..Default::default()
            })
            .map_err(fail)?,
        )
        .await
        .map_err(fail)?
        .into_inner();
    Ok(MembershipEnvelope::answer(
        StatusCode::CREATED,
        membership(m, true),
    ))
}

#[utoipa::path(get, path = "/v2/organizations/{orgId}/memberships/{membershipId}", tag = "cal.com",
    params(("orgId" = i64, Path, minimum = 1), ("membershipId" = i64, Path, minimum = 1)),
    responses((status = 200, body = MembershipEnvelope), (status = "4XX", body = CalError)),
    security(("bearer" = [])))]
pub async fn get_membership(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path((org, id)): Path<(String, String)>,
) -> Answer {
    let auth = authorize(&rest, &headers, GET_MEMBERSHIP)
        .await
        .map_err(fail)?;
    let org = num("orgId", &org)?;
    let id = num("membershipId", &id)?;
    let m = get_org_membership(&rest, &auth, org, id).await?;
    Ok(MembershipEnvelope::answer(
        StatusCode::OK,
        membership(m, true),
    ))
}

#[utoipa::path(patch, path = "/v2/organizations/{orgId}/memberships/{membershipId}", tag = "cal.com",
    params(("orgId" = i64, Path, minimum = 1), ("membershipId" = i64, Path, minimum = 1)), request_body = UpdateOrgMembershipDto,
    responses((status = 200, body = MembershipEnvelope), (status = "4XX", body = CalError)),
    security(("bearer" = [])))]
pub async fn update_membership(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path((org, id)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let auth = authorize(&rest, &headers, UPDATE_MEMBERSHIP)
        .await
        .map_err(fail)?;
    let org = num("orgId", &org)?;
    let id = num("membershipId", &id)?;
    let dto: UpdateOrgMembershipDto = json_body(V, &body)?;
    let m = rest
        .memberships()
        .update_membership(
            auth.request(pb::UpdateMembershipRequest {
                team_id: org,
                organization_id: org,
                member: Some(pb::update_membership_request::Member::MembershipId(id)),
                accepted: dto.accepted,
                role: dto.role.map(|r| r.pb() as i32),
                disable_impersonation: dto.disable_impersonation,
                etag: if_match(&headers),
                ..Default::default()
            })
            .map_err(fail)?,
        )
        .await
        .map_err(fail)?
        .into_inner();
    Ok(MembershipEnvelope::answer(
        StatusCode::OK,
        membership(m, true),
    ))
}

#[utoipa::path(delete, path = "/v2/organizations/{orgId}/memberships/{membershipId}", tag = "cal.com",
    params(("orgId" = i64, Path, minimum = 1), ("membershipId" = i64, Path, minimum = 1)),
    responses((status = 200, description = "The deleted membership", body = MembershipEnvelope), (status = "4XX", body = CalError)),
    security(("bearer" = [])))]
pub async fn delete_membership(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path((org, id)): Path<(String, String)>,
) -> Answer {
    let auth = authorize(&rest, &headers, DELETE_MEMBERSHIP)
        .await
        .map_err(fail)?;
    let org = num("orgId", &org)?;
    let id = num("membershipId", &id)?;
    // cal.com answers with the deleted membership: the state the delete removed (its etag makes
    // the delete refuse a membership changed in between).
    let m = get_org_membership(&rest, &auth, org, id).await?;
    rest.memberships()
        .delete_membership(
            auth.request(pb::DeleteMembershipRequest {
                team_id: org,
                organization_id: org,
                member: Some(pb::delete_membership_request::Member::MembershipId(id)),
                etag: Some(m.etag.clone()),
            })
            .map_err(fail)?,
        )
        .await
        .map_err(fail)?;
    Ok(MembershipEnvelope::answer(
        StatusCode::OK,
        membership(m, true),
    ))
}

#[utoipa::path(get, path = "/v2/organizations/{orgId}/teams/{teamId}/memberships/{membershipId}", tag = "cal.com",
    params(("orgId" = i64, Path, minimum = 1), ("teamId" = i64, Path, minimum = 1), ("membershipId" = i64, Path, minimum = 1)),
    responses((status = 200, body = MembershipEnvelope), (status = "4XX", body = CalError)),
    security(("bearer" = [])))]
pub async fn get_team_membership(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path((org, team, id)): Path<(String, String, String)>,
) -> Answer {
    let auth = authorize(&rest, &headers, GET_MEMBERSHIP)
        .await
        .map_err(fail)?;
    let org = num("orgId", &org)?;
    let team = num("teamId", &team)?;
    let id = num("membershipId", &id)?;
    let m = rest
        .memberships()
        .get_membership(
            auth.request(pb::GetMembershipRequest {
                team_id: team,
                organization_id: org,
                member: Some(pb::get_membership_request::Member::MembershipId(id)),
                consistency: None,
            })
            .map_err(fail)?,
        )
        .await
        .map_err(fail)?
        .into_inner();
    Ok(MembershipEnvelope::answer(
        StatusCode::OK,
        membership(m, false),
    ))
}

#[utoipa::path(get, path = "/v2/organizations/{orgId}/teams/{teamId}/roles", tag = "cal.com",
    params(("orgId" = i64, Path, minimum = 1), ("teamId" = i64, Path, minimum = 1), Pagination),
    responses((status = 200, body = RoleListEnvelope), (status = "4XX", body = CalError)),
    security(("bearer" = [])))]
pub async fn list_roles(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path((org, team)): Path<(String, String)>,
    q: Result<Query<Pagination>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let auth = authorize(&rest, &headers, LIST_ROLES).await.map_err(fail)?;
    let org = num("orgId", &org)?;
    let team = num("teamId", &team)?;
    let (skip, take) = window(&q)?;
    check_team(&rest, &auth, org, team).await?;
    let api = rest.roles();
    let items = collect(skip, take, |page_token, page_size| {
        let request = auth.request(pb::ListRolesRequest {
            team_id: team,
            page_size,
            page_token,
        });
        let api = &api;
        async move {
            let r = api.list_roles(request?).await?.into_inner();
            Ok((r.roles, r.next_page_token))
        }
    })
    .await?;
    Ok(RoleListEnvelope::answer(
        StatusCode::OK,
        items.into_iter().map(role).collect(),
    ))
}

#[utoipa::path(post, path = "/v2/organizations/{orgId}/teams/{teamId}/roles", tag = "cal.com",
    params(("orgId" = i64, Path, minimum = 1), ("teamId" = i64, Path, minimum = 1)), request_body = CreateTeamRoleInput,
    responses((status = 201, body = RoleEnvelope), (status = "4XX", body = CalError)),
    security(("bearer" = [])))]
pub async fn create_role(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path((org, team)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let auth = authorize(&rest, &headers, CREATE_ROLE)
        .await
        .map_err(fail)?;
    let org = num("orgId", &org)?;
    let team = num("teamId", &team)?;
    let input: CreateTeamRoleInput = json_body(V, &body)?;
    check_team(&rest, &auth, org, team).await?;
    let r = rest
        .roles()
        .create_role(
            auth.request(pb::CreateRoleRequest {
                team_id: team,
                name: input.name,
                color: input.color.unwrap_or_default(),
                description: input.description.unwrap_or_default(),
                permissions: input.permissions,
                ..Default::default()
            })
            .map_err(fail)?,
        )
        .await
        .map_err(fail)?
        .into_inner();
    Ok(RoleEnvelope::answer(StatusCode::CREATED, role(r)))
}

async fn fetch_role(
    rest: &Rest,
    auth: &Authorized,
    team: i64,
    id: &str,
) -> Result<pb::Role, RestError> {
    Ok(rest
        .roles()
        .get_role(
            auth.request(pb::GetRoleRequest {
                team_id: team,
                role_id: id.to_string(),
            })
            .map_err(fail)?,
        )
        .await
        .map_err(fail)?
        .into_inner())
}

#[utoipa::path(get, path = "/v2/organizations/{orgId}/teams/{teamId}/roles/{roleId}", tag = "cal.com",
    params(("orgId" = i64, Path, minimum = 1), ("teamId" = i64, Path, minimum = 1), ("roleId" = String, Path)),
    responses((status = 200, body = RoleEnvelope), (status = "4XX", body = CalError)),
    security(("bearer" = [])))]
pub async fn get_role(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path((org, team, id)): Path<(String, String, String)>,
) -> Answer {
    let auth = authorize(&rest, &headers, GET_ROLE).await.map_err(fail)?;
    let org = num("orgId", &org)?;
    let team = num("teamId", &team)?;
    check_team(&rest, &auth, org, team).await?;
    let r = fetch_role(&rest, &auth, team, &id).await?;
    Ok(RoleEnvelope::answer(StatusCode::OK, role(r)))
}

#[utoipa::path(patch, path = "/v2/organizations/{orgId}/teams/{teamId}/roles/{roleId}", tag = "cal.com",
    params(("orgId" = i64, Path, minimum = 1), ("teamId" = i64, Path, minimum = 1), ("roleId" = String, Path)), request_body = UpdateTeamRoleInput,
    responses((status = 200, body = RoleEnvelope), (status = "4XX", body = CalError)),
    security(("bearer" = [])))]
pub async fn update_role(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path((org, team, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Answer {
    let auth = authorize(&rest, &headers, UPDATE_ROLE)
        .await
        .map_err(fail)?;
    let org = num("orgId", &org)?;
    let team = num("teamId", &team)?;
    let input: UpdateTeamRoleInput = json_body(V, &body)?;
    check_team(&rest, &auth, org, team).await?;
    let r = rest
        .roles()
        .update_role(
            auth.request(pb::UpdateRoleRequest {
                team_id: team,
                role_id: id,
                name: input.name,
                color: input.color,
                description: input.description,
                permissions: input
                    .permissions
                    .map(|permissions| pb::PermissionList { permissions }),
                etag: if_match(&headers),
            })
            .map_err(fail)?,
        )
        .await
        .map_err(fail)?
        .into_inner();
    Ok(RoleEnvelope::answer(StatusCode::OK, role(r)))
}

#[utoipa::path(delete, path = "/v2/organizations/{orgId}/teams/{teamId}/roles/{roleId}", tag = "cal.com",
    params(("orgId" = i64, Path, minimum = 1), ("teamId" = i64, Path, minimum = 1), ("roleId" = String, Path)),
    responses((status = 200, description = "The deleted role", body = RoleEnvelope), (status = "4XX", body = CalError)),
    security(("bearer" = [])))]
pub async fn delete_role(
    State(rest): State<Rest>,
    headers: HeaderMap,
    Path((org, team, id)): Path<(String, String, String)>,
) -> Answer {
    let auth = authorize(&rest, &headers, DELETE_ROLE)
        .await
        .map_err(fail)?;
    let org = num("orgId", &org)?;
    let team = num("teamId", &team)?;
    check_team(&rest, &auth, org, team).await?;
    let r = fetch_role(&rest, &auth, team, &id).await?;
    rest.roles()
        .delete_role(
            auth.request(pb::DeleteRoleRequest {
                team_id: team,
                role_id: r.id.clone(),
                reassign_role_id: String::new(),
                etag: Some(r.etag.clone()),
            })
            .map_err(fail)?,
        )
        .await
        .map_err(fail)?;
    Ok(RoleEnvelope::answer(StatusCode::OK, role(r)))
}
