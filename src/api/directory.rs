//! DirectoryService: users, organizations, sub-teams.

use tonic::{Request, Response, Status};

use super::convert;
use super::idempotency::{answer, once, retry_key};
use super::{Context, actor, binding, extend_entry, trace_ids};
use crate::domain::model;
use crate::domain::page::PageRequest;
use crate::domain::teams::{NewTeam, TeamKind, TeamPatch};
use crate::domain::users::{NewUser, UserPatch};
use crate::domain::validate::{self, MAX_BIO_CHARS, MAX_NAME_CHARS};
use crate::domain::{DomainError, Violations};
use crate::pb::directory_service_server::DirectoryService;
use crate::pb::*;
use crate::storage::shared::Written;

pub struct DirectoryApi(pub Context);

fn page(page_size: i32, page_token: &str) -> Result<PageRequest, DomainError> {
    PageRequest::parse(page_size, page_token).map_err(DomainError::InvalidArgument)
}

fn optional_org(id: i64) -> Option<i64> {
    (id > 0).then_some(id)
}

fn sub_team_kind(organization_id: i64) -> TeamKind {
    TeamKind::SubTeam(optional_org(organization_id))
}

/// A new user from CreateUser's fields (all but `request_id`), its bad fields added to `v`.
fn new_user(v: &mut Violations, r: CreateUserRequest) -> NewUser {
    NewUser {
        email: v
            .check(validate::email("email", &r.email))
            .unwrap_or_default(),
        username: v
            .check(validate::optional_username(
                "username",
                r.username.as_deref().unwrap_or(""),
            ))
            .flatten(),
        name: v
            .check(validate::optional_text(
                "name",
                r.name.trim(),
                MAX_NAME_CHARS,
            ))
            .unwrap_or_default(),
        first_name: v
            .check(validate::optional_text(
                "first_name",
                r.first_name.trim(),
                MAX_NAME_CHARS,
            ))
            .unwrap_or_default(),
        last_name: v
            .check(validate::optional_text(
                "last_name",
                r.last_name.trim(),
                MAX_NAME_CHARS,
            ))
            .unwrap_or_default(),
        avatar_url: v
            .check(validate::optional_url("avatar_url", &r.avatar_url))
            .unwrap_or_default(),
        bio: v
            .check(validate::optional_text("bio", &r.bio, MAX_BIO_CHARS))
            .unwrap_or_default(),
        metadata: v
            .check(convert::metadata("metadata", r.metadata))
            .flatten()
            .unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl DirectoryService for DirectoryApi {
    async fn create_user(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<User>, Status> {
        let actor = actor(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let retry = retry_key(&mut v, "CreateUser", &actor, &r, &r.request_id);
        let new = new_user(&mut v, r);
        v.into_result()?;
        let respond = |w: &Written<model::User>| convert::user(w.value.clone(), w.revision);
        let outcome = (self.0.store)
            .create_user_once(&actor, new, once(retry, respond))
            .await?;
        let user = answer(outcome, respond)?;
        self.0.reads.settle(user.revision).await;
        trace_ids!(user_id = user.id);
        Ok(Response::new(user))
    }

    async fn get_user(&self, request: Request<GetUserRequest>) -> Result<Response<User>, Status> {
        let binding = binding(&request)?;
        let id = validate::id("user_id", request.get_ref().user_id)
            .map_err(|v| DomainError::InvalidArgument(vec![v]))?;
        trace_ids!(user_id = id);
        self.0.sees_user(binding, id).await?;
        Ok(Response::new(convert::user(
            self.0.store.get_user(id).await?,
            0,
        )))
    }

    async fn update_user(
        &self,
        request: Request<UpdateUserRequest>,
    ) -> Result<Response<User>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(user_id = r.user_id);
        let mut v = Violations::new();
        let id = v
            .check(validate::id("user_id", r.user_id))
            .unwrap_or_default();
        let text = |v: &mut Violations, field: &str, value: Option<String>, max: usize| {
            value.and_then(|s| v.check(validate::optional_text(field, s.trim(), max)))
        };
        let patch = UserPatch {
            email: r.email.and_then(|e| v.check(validate::email("email", &e))),
            username: r
                .username
                .and_then(|u| v.check(validate::optional_username("username", &u))),
            name: text(&mut v, "name", r.name, MAX_NAME_CHARS),
            first_name: text(&mut v, "first_name", r.first_name, MAX_NAME_CHARS),
            last_name: text(&mut v, "last_name", r.last_name, MAX_NAME_CHARS),
            avatar_url: r
                .avatar_url
                .and_then(|u| v.check(validate::optional_url("avatar_url", &u))),
            bio: r
                .bio
                .and_then(|b| v.check(validate::optional_text("bio", &b, MAX_BIO_CHARS))),
            metadata: v.check(convert::metadata("metadata", r.metadata)).flatten(),
            etag: r.etag,
        };
        v.into_result()?;
        self.0.sees_user(binding, id).await?;
        let written = self.0.store.update_user(&actor, id, patch).await?;
        self.0.reads.settle(written.revision).await;
        Ok(Response::new(convert::user(
            written.value,
            written.revision,
        )))
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let page = v.page(PageRequest::parse(r.page_size, &r.page_token));
        let email = if r.email.trim().is_empty() {
            None
        } else {
            v.check(validate::email("email", &r.email))
        };
        v.into_result()?;
        let result = self
            .0
            .store
            .list_users(email.as_deref(), binding.organization(), page)
            .await?;
        Ok(Response::new(ListUsersResponse {
            users: result
                .items
                .into_iter()
                .map(|u| convert::user(u, 0))
                .collect(),
            next_page_token: convert::page_token(result.next_after),
        }))
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        let id = validate::id("user_id", r.user_id)
            .map_err(|v| DomainError::InvalidArgument(vec![v]))?;
        trace_ids!(user_id = id);
        self.0.sees_user(binding, id).await?;
        let revision = self
            .0
            .store
            .delete_user(&actor, id, r.etag.as_deref())
            .await?;
        self.0.reads.settle(revision).await;
        Ok(Response::new(DeleteUserResponse { revision }))
    }

    async fn create_organization(
        &self,
        request: Request<CreateOrganizationRequest>,
    ) -> Result<Response<Organization>, Status> {
        let actor = actor(&request)?;
        binding(&request)?.may_create_organization()?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let retry = retry_key(&mut v, "CreateOrganization", &actor, &r, &r.request_id);
        let name = v
            .check(validate::name("name", &r.name, MAX_NAME_CHARS))
            .unwrap_or_default();
        let slug = if r.slug.is_empty() {
            validate::slugify(&name)
        } else {
            r.slug
        };
        if r.max_allowed_memberships < 0 {
            v.add("max_allowed_memberships", "must be 0 (unlimited) or more");
        }
        let new = NewTeam {
            organization_id: None,
            slug: v.check(validate::slug("slug", &slug)).unwrap_or_default(),
            name,
            image_url: v
                .check(validate::optional_url("image_url", &r.image_url))
                .unwrap_or_default(),
            max_allowed_memberships: r.max_allowed_memberships,
            auto_accept_email_domain: v
                .check(validate::optional_domain(
                    "auto_accept_email_domain",
                    &r.auto_accept_email_domain,
                ))
                .flatten(),
            admin_delete_enabled: r.admin_delete_enabled,
            public_metadata: v
                .check(convert::metadata("public_metadata", r.public_metadata))
                .flatten()
                .unwrap_or_default(),
            private_metadata: v
                .check(convert::metadata("private_metadata", r.private_metadata))
                .flatten()
                .unwrap_or_default(),
        };
        v.into_result()?;
        // An end user who creates an organization is its first member (its OWNER), made in the
        // same transaction: the count the answer (also a remembered one) reports.
        let members = i64::from(actor.user_id.is_some());
        let respond =
            |w: &Written<model::Team>| convert::organization(w.value.clone(), members, w.revision);
        let outcome = (self.0.store)
            .create_team_once(&actor, new, once(retry, respond))
            .await?;
        let organization = answer(outcome, respond)?;
        self.0.reads.settle(organization.revision).await;
        trace_ids!(organization_id = organization.id);
        Ok(Response::new(organization))
    }

    async fn get_organization(
        &self,
        request: Request<GetOrganizationRequest>,
    ) -> Result<Response<Organization>, Status> {
        let binding = binding(&request)?;
        let id = validate::id("organization_id", request.get_ref().organization_id)
            .map_err(|v| DomainError::InvalidArgument(vec![v]))?;
        trace_ids!(organization_id = id);
        binding.check(id, || TeamKind::Organization.not_found(id))?;
        let org = self.0.store.get_team(id, TeamKind::Organization).await?;
        let counts = self.0.store.members_counts(&[id]).await?;
        Ok(Response::new(convert::organization(
            org,
            counts.get(&id).copied().unwrap_or_default(),
            0,
        )))
    }

    async fn update_organization(
        &self,
        request: Request<UpdateOrganizationRequest>,
    ) -> Result<Response<Organization>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(organization_id = r.organization_id);
        let mut v = Violations::new();
        let id = v
            .check(validate::id("organization_id", r.organization_id))
            .unwrap_or_default();
        if r.max_allowed_memberships.is_some_and(|m| m < 0) {
            v.add("max_allowed_memberships", "must be 0 (unlimited) or more");
        }
        let patch = TeamPatch {
            name: r
                .name
                .and_then(|n| v.check(validate::name("name", &n, MAX_NAME_CHARS))),
            slug: r.slug.and_then(|s| v.check(validate::slug("slug", &s))),
            image_url: r
                .image_url
                .and_then(|u| v.check(validate::optional_url("image_url", &u))),
            max_allowed_memberships: r.max_allowed_memberships,
            auto_accept_email_domain: r
                .auto_accept_email_domain
                .and_then(|d| v.check(validate::optional_domain("auto_accept_email_domain", &d))),
            admin_delete_enabled: r.admin_delete_enabled,
            public_metadata: v
                .check(convert::metadata("public_metadata", r.public_metadata))
                .flatten(),
            private_metadata: v
                .check(convert::metadata("private_metadata", r.private_metadata))
                .flatten(),
            etag: r.etag,
        };
        v.into_result()?;
        binding.check(id, || TeamKind::Organization.not_found(id))?;
        let written = self
            .0
            .store
            .update_team(&actor, id, TeamKind::Organization, patch)
            .await?;
        self.0.reads.settle(written.revision).await;
        let counts = self.0.store.members_counts(&[id]).await?;
        Ok(Response::new(convert::organization(
            written.value,
            counts.get(&id).copied().unwrap_or_default(),
            written.revision,
        )))
    }

    async fn list_organizations(
        &self,
        request: Request<ListOrganizationsRequest>,
    ) -> Result<Response<ListOrganizationsResponse>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        let page = page(r.page_size, &r.page_token)?;
        let result = self.0.store.list_teams(None, binding, page).await?;
        let ids: Vec<i64> = result.items.iter().map(|t| t.id).collect();
        let counts = self.0.store.members_counts(&ids).await?;
        Ok(Response::new(ListOrganizationsResponse {
            organizations: result
                .items
                .into_iter()
                .map(|t| {
                    let count = counts.get(&t.id).copied().unwrap_or_default();
                    convert::organization(t, count, 0)
                })
                .collect(),
            next_page_token: convert::page_token(result.next_after),
        }))
    }

    async fn delete_organization(
        &self,
        request: Request<DeleteOrganizationRequest>,
    ) -> Result<Response<DeleteOrganizationResponse>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        let id = validate::id("organization_id", r.organization_id)
            .map_err(|v| DomainError::InvalidArgument(vec![v]))?;
        trace_ids!(organization_id = id);
        binding.check(id, || TeamKind::Organization.not_found(id))?;
        let revision = self
            .0
            .store
            .delete_team(&actor, id, TeamKind::Organization, r.etag.as_deref())
            .await?;
        self.0.reads.settle(revision).await;
        Ok(Response::new(DeleteOrganizationResponse { revision }))
    }

    async fn create_team(
        &self,
        request: Request<CreateTeamRequest>,
    ) -> Result<Response<Team>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(organization_id = r.organization_id);
        let mut v = Violations::new();
        let retry = retry_key(&mut v, "CreateTeam", &actor, &r, &r.request_id);
        let organization_id = v.check(validate::id("organization_id", r.organization_id));
        let name = v
            .check(validate::name("name", &r.name, MAX_NAME_CHARS))
            .unwrap_or_default();
        let slug = if r.slug.is_empty() {
            validate::slugify(&name)
        } else {
            r.slug
        };
        let new = NewTeam {
            organization_id,
            slug: v.check(validate::slug("slug", &slug)).unwrap_or_default(),
            name,
            image_url: v
                .check(validate::optional_url("image_url", &r.image_url))
                .unwrap_or_default(),
            public_metadata: v
                .check(convert::metadata("public_metadata", r.public_metadata))
                .flatten()
                .unwrap_or_default(),
            private_metadata: v
                .check(convert::metadata("private_metadata", r.private_metadata))
                .flatten()
                .unwrap_or_default(),
            ..Default::default()
        };
        v.into_result()?;
        let org = new.organization_id.unwrap_or_default();
        binding.check(org, || TeamKind::Organization.not_found(org))?;
        let respond = |w: &Written<model::Team>| convert::team(w.value.clone(), w.revision);
        let outcome = (self.0.store)
            .create_team_once(&actor, new, once(retry, respond))
            .await?;
        let team = answer(outcome, respond)?;
        self.0.reads.settle(team.revision).await;
        trace_ids!(team_id = team.id);
        Ok(Response::new(team))
    }

    async fn get_team(&self, request: Request<GetTeamRequest>) -> Result<Response<Team>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        let id = validate::id("team_id", r.team_id)
            .map_err(|v| DomainError::InvalidArgument(vec![v]))?;
        trace_ids!(team_id = id);
        let kind = sub_team_kind(r.organization_id);
        self.0.sees_team(binding, id, kind).await?;
        let team = self.0.store.get_team(id, kind).await?;
        Ok(Response::new(convert::team(team, 0)))
    }

    async fn update_team(
        &self,
        request: Request<UpdateTeamRequest>,
    ) -> Result<Response<Team>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(team_id = r.team_id);
        let mut v = Violations::new();
        let id = v
            .check(validate::id("team_id", r.team_id))
            .unwrap_or_default();
        let patch = TeamPatch {
            name: r
                .name
                .and_then(|n| v.check(validate::name("name", &n, MAX_NAME_CHARS))),
            slug: r.slug.and_then(|s| v.check(validate::slug("slug", &s))),
            image_url: r
                .image_url
                .and_then(|u| v.check(validate::optional_url("image_url", &u))),
            public_metadata: v
                .check(convert::metadata("public_metadata", r.public_metadata))
                .flatten(),
            private_metadata: v
                .check(convert::metadata("private_metadata", r.private_metadata))
                .flatten(),
            etag: r.etag,
            ..Default::default()
        };
        v.into_result()?;
        let kind = sub_team_kind(r.organization_id);
        self.0.sees_team(binding, id, kind).await?;
        let written = self.0.store.update_team(&actor, id, kind, patch).await?;
        self.0.reads.settle(written.revision).await;
        Ok(Response::new(convert::team(
            written.value,
            written.revision,
        )))
    }

    async fn list_teams(
        &self,
        request: Request<ListTeamsRequest>,
    ) -> Result<Response<ListTeamsResponse>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(organization_id = r.organization_id);
        let mut v = Violations::new();
        let org = v
            .check(validate::id("organization_id", r.organization_id))
            .unwrap_or_default();
        let page = v.page(PageRequest::parse(r.page_size, &r.page_token));
        v.into_result()?;
        binding.check(org, || TeamKind::Organization.not_found(org))?;
        let result = self.0.store.list_teams(Some(org), binding, page).await?;
        Ok(Response::new(ListTeamsResponse {
            teams: result
                .items
                .into_iter()
                .map(|t| convert::team(t, 0))
                .collect(),
            next_page_token: convert::page_token(result.next_after),
        }))
    }

    async fn delete_team(
        &self,
        request: Request<DeleteTeamRequest>,
    ) -> Result<Response<DeleteTeamResponse>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        let id = validate::id("team_id", r.team_id)
            .map_err(|v| DomainError::InvalidArgument(vec![v]))?;
        trace_ids!(team_id = id);
        let kind = sub_team_kind(r.organization_id);
        self.0.sees_team(binding, id, kind).await?;
        let revision = self
            .0
            .store
            .delete_team(&actor, id, kind, r.etag.as_deref())
            .await?;
        self.0.reads.settle(revision).await;
        Ok(Response::new(DeleteTeamResponse { revision }))
    }

    async fn import_users(
        &self,
        request: Request<ImportUsersRequest>,
    ) -> Result<Response<ImportUsersResponse>, Status> {
        let actor = actor(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        v.extend(
            validate::batch_size("users", r.users.len())
                .into_iter()
                .collect(),
        );
        let mut new = Vec::new();
        if r.users.len() <= validate::MAX_BATCH_ENTRIES {
            for (i, entry) in r.users.into_iter().enumerate() {
                let mut entry_v = Violations::new();
                if !entry.request_id.is_empty() {
                    entry_v.add("request_id", "is not supported per entry");
                }
                new.push(new_user(&mut entry_v, entry));
                extend_entry(&mut v, "users", i, entry_v);
            }
            v.extend(validate::repeated(
                "users",
                "email",
                // An invalid email is reported once, as invalid.
                new.iter()
                    .map(|u| Some(u.email.as_str()).filter(|e| !e.is_empty())),
            ));
            v.extend(validate::repeated(
                "users",
                "username",
                new.iter().map(|u| u.username.as_deref()),
            ));
        }
        v.into_result()?;
        let imported = self.0.store.import_users(&actor, new).await?;
        self.0.reads.settle(imported.revision).await;
        Ok(Response::new(ImportUsersResponse {
            users: imported
                .values
                .into_iter()
                .map(|w| convert::user(w.value, w.revision))
                .collect(),
            revision: imported.revision,
        }))
    }
}
