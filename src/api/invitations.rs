//! InvitationService.

use chrono::Utc;
use tonic::{Request, Response, Status};

use super::convert;
use super::idempotency::{answer, once, retry_key};
use super::memberships::role_reference;
use super::{Context, actor, binding, trace_ids};
use crate::domain::invitations::{self, Invitation, InvitationFilter, InvitationStatus};
use crate::domain::model;
use crate::domain::page::PageRequest;
use crate::domain::teams::TeamKind;
use crate::domain::validate;
use crate::domain::{DomainError, FieldViolation, Violations};
use crate::pb;
use crate::pb::invitation_service_server::InvitationService;
use crate::storage::shared::Written;

pub struct InvitationApi(pub Context);

fn status(s: InvitationStatus) -> pb::InvitationStatus {
    match s {
        InvitationStatus::Pending => pb::InvitationStatus::Pending,
        InvitationStatus::Accepted => pb::InvitationStatus::Accepted,
        InvitationStatus::Revoked => pb::InvitationStatus::Revoked,
        InvitationStatus::Expired => pb::InvitationStatus::Expired,
    }
}

/// A request's status filter: UNSPECIFIED means every status; unknown numbers are refused.
fn request_status(field: &str, value: i32) -> Result<Option<InvitationStatus>, FieldViolation> {
    match pb::InvitationStatus::try_from(value) {
        Ok(pb::InvitationStatus::Unspecified) => Ok(None),
        Ok(pb::InvitationStatus::Pending) => Ok(Some(InvitationStatus::Pending)),
        Ok(pb::InvitationStatus::Accepted) => Ok(Some(InvitationStatus::Accepted)),
        Ok(pb::InvitationStatus::Revoked) => Ok(Some(InvitationStatus::Revoked)),
        Ok(pb::InvitationStatus::Expired) => Ok(Some(InvitationStatus::Expired)),
        Err(_) => Err(FieldViolation::new(
            field,
            format!("{value} is not an InvitationStatus"),
        )),
    }
}

/// `revision`: the sequence a write committed; reads answer 0.
fn invitation(i: Invitation, revision: i64) -> pb::Invitation {
    pb::Invitation {
        id: i.id,
        organization_id: i.organization_id,
        email: i.email,
        role_id: i.role_id,
        status: status(i.status) as i32,
        inviter_user_id: i.inviter_user_id.unwrap_or_default(),
        created_at: convert::timestamp(i.created_at),
        expires_at: convert::timestamp(i.expires_at),
        etag: model::etag(i.version),
        revision,
        role: convert::base_role(i.role) as i32,
        role_key: i.role_key,
    }
}

fn invitation_not_found(id: i64) -> DomainError {
    DomainError::not_found(format_args!("invitation {id}"))
}

#[tonic::async_trait]
impl InvitationService for InvitationApi {
    async fn create_invitation(
        &self,
        request: Request<pb::CreateInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(organization_id = r.organization_id);
        let mut v = Violations::new();
        let retry = retry_key(&mut v, "CreateInvitation", &actor, &r, &r.request_id);
        let organization_id = v
            .check(validate::id("organization_id", r.organization_id))
            .unwrap_or_default();
        let email = v
            .check(invitations::email("email", &r.email))
            .unwrap_or_default();
        let role = v.check(convert::request_role("role", r.role)).flatten();
        let role_id = role_reference(&mut v, (!r.role_id.is_empty()).then_some(r.role_id));
        let requested_expiry = r
            .expires_at
            .as_ref()
            .and_then(|t| v.check(convert::instant("expires_at", t)));
        let expires_at = if r.expires_at.is_some() && requested_expiry.is_none() {
            // Already refused as malformed; the default stands in until `into_result`.
            Utc::now()
        } else {
            v.check(invitations::expiry(
                "expires_at",
                requested_expiry,
                Utc::now(),
            ))
            .unwrap_or_default()
        };
        v.into_result()?;
        self.0
            .sees_team(binding, organization_id, TeamKind::Organization)
            .await?;
        let new = invitations::NewInvitation {
            organization_id,
            email,
            role,
            role_id,
            expires_at,
        };
        let respond = |w: &Written<Invitation>| invitation(w.value.clone(), w.revision);
        let outcome = (self.0.store)
            .create_invitation_once(&actor, new, once(retry, respond))
            .await?;
        let created = answer(outcome, respond)?;
        self.0.reads.settle(created.revision).await;
        trace_ids!(
            invitation_id = created.id,
            role_id = created.role_id.as_str()
        );
        Ok(Response::new(created))
    }

    async fn get_invitation(
        &self,
        request: Request<pb::GetInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(invitation_id = r.invitation_id);
        let mut v = Violations::new();
        let id = v
            .check(validate::id("invitation_id", r.invitation_id))
            .unwrap_or_default();
        v.into_result()?;
        let found = self.0.store.get_invitation(id).await?;
        binding.check(found.organization_id, || invitation_not_found(id))?;
        trace_ids!(organization_id = found.organization_id);
        Ok(Response::new(invitation(found, 0)))
    }

    async fn list_invitations(
        &self,
        request: Request<pb::ListInvitationsRequest>,
    ) -> Result<Response<pb::ListInvitationsResponse>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(organization_id = r.organization_id);
        let mut v = Violations::new();
        let organization_id = v
            .check(validate::id("organization_id", r.organization_id))
            .unwrap_or_default();
        let filter = InvitationFilter {
            status: v.check(request_status("status", r.status)).flatten(),
        };
        let page = v.page(PageRequest::parse(r.page_size, &r.page_token));
        v.into_result()?;
        binding.check(organization_id, || {
            TeamKind::Organization.not_found(organization_id)
        })?;
        let result = self
            .0
            .store
            .list_invitations(organization_id, filter, page)
            .await?;
        Ok(Response::new(pb::ListInvitationsResponse {
            invitations: result.items.into_iter().map(|i| invitation(i, 0)).collect(),
            next_page_token: convert::page_token(result.next_after),
        }))
    }

    async fn revoke_invitation(
        &self,
        request: Request<pb::RevokeInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(invitation_id = r.invitation_id);
        let mut v = Violations::new();
        let id = v
            .check(validate::id("invitation_id", r.invitation_id))
            .unwrap_or_default();
        v.into_result()?;
        let written = self
            .0
            .store
            .revoke_invitation(&actor, id, binding.organization(), r.etag.as_deref())
            .await?;
        self.0.reads.settle(written.revision).await;
        trace_ids!(organization_id = written.value.organization_id);
        Ok(Response::new(invitation(written.value, written.revision)))
    }

    async fn accept_invitation(
        &self,
        request: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::Membership>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(invitation_id = r.invitation_id, user_id = r.user_id);
        let mut v = Violations::new();
        let id = v
            .check(validate::id("invitation_id", r.invitation_id))
            .unwrap_or_default();
        let user_id = v
            .check(validate::id("user_id", r.user_id))
            .unwrap_or_default();
        v.into_result()?;
        let written = self
            .0
            .store
            .accept_invitation(&actor, id, user_id, binding.organization())
            .await?;
        self.0.reads.settle(written.revision).await;
        trace_ids!(
            organization_id = written.value.membership.organization_id,
            membership_id = written.value.membership.id,
            role_id = written.value.membership.role_id.as_str()
        );
        Ok(Response::new(convert::membership(
            written.value,
            written.revision,
        )))
    }
}
