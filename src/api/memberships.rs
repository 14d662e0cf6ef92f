//! MembershipService.

use tonic::{Request, Response, Status};

use super::convert;
use super::idempotency::{answer, once, retry_key};
use super::{Context, actor, binding, extend_entry, trace_ids};
use crate::domain::memberships::{
    self, MembershipAddress, MembershipFilter, MembershipPatch, MembershipTarget, NewMembership,
};
use crate::domain::page::PageRequest;
use crate::domain::teams::TeamKind;
use crate::domain::validate;
use crate::domain::{DomainError, Violations};
use crate::pb::membership_service_server::MembershipService;
use crate::pb::*;
use crate::storage::shared::Written;

pub struct MembershipApi(pub Context);

fn positive(id: i64) -> Option<i64> {
    (id > 0).then_some(id)
}

/// The address of Get/Update/Delete: `membership_id` alone, or `team_id` with `membership_id` or
/// `user_id`; an optional `organization_id` the team must belong to.
pub(crate) fn address(
    v: &mut Violations,
    team_id: i64,
    member: Option<&get_membership_request::Member>,
    organization_id: i64,
) -> MembershipAddress {
    use get_membership_request::Member;
    if team_id < 0 {
        v.add("team_id", "must be a positive id");
    }
    if organization_id < 0 {
        v.add("organization_id", "must be a positive id");
    }
    let target = match member {
        Some(Member::MembershipId(id)) => {
            v.check(validate::id("membership_id", *id));
            MembershipTarget::MembershipId(*id)
        }
        Some(Member::UserId(id)) => {
            v.check(validate::id("user_id", *id));
            MembershipTarget::UserId(*id)
        }
        None => {
            v.add(
                "membership_id",
                "set membership_id, or team_id with user_id",
            );
            MembershipTarget::MembershipId(0)
        }
    };
    let address = MembershipAddress {
        team_id: positive(team_id),
        target,
        organization_id: positive(organization_id),
    };
    v.check(address.check());
    address
}

pub(crate) fn update_member(
    m: Option<update_membership_request::Member>,
) -> Option<get_membership_request::Member> {
    m.map(|m| match m {
        update_membership_request::Member::MembershipId(id) => {
            get_membership_request::Member::MembershipId(id)
        }
        update_membership_request::Member::UserId(id) => get_membership_request::Member::UserId(id),
    })
}

fn delete_member(
    m: Option<delete_membership_request::Member>,
) -> Option<get_membership_request::Member> {
    m.map(|m| match m {
        delete_membership_request::Member::MembershipId(id) => {
            get_membership_request::Member::MembershipId(id)
        }
        delete_membership_request::Member::UserId(id) => get_membership_request::Member::UserId(id),
    })
}

fn trace_address(a: &MembershipAddress) {
    if let Some(team) = a.team_id {
        trace_ids!(team_id = team);
    }
    match a.target {
        MembershipTarget::MembershipId(id) => trace_ids!(membership_id = id),
        MembershipTarget::UserId(id) => trace_ids!(user_id = id),
    }
}

/// A requested `expires_at`, when present: a valid instant.
fn requested_expiry(
    v: &mut Violations,
    t: Option<&prost_types::Timestamp>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    v.check(convert::instant("expires_at", t?))
}

/// A role reference: trimmed, non-empty when present.
pub(crate) fn role_reference(v: &mut Violations, value: Option<String>) -> Option<String> {
    v.check(validate::reference("role_id", &value?, 100))
}

/// A new membership from CreateMembership's fields (all but `request_id`), its bad fields added
/// to `v`.
fn new_membership(v: &mut Violations, r: CreateMembershipRequest) -> NewMembership {
    if r.organization_id < 0 {
        v.add("organization_id", "must be a positive id");
    }
    NewMembership {
        team_id: v
            .check(validate::id("team_id", r.team_id))
            .unwrap_or_default(),
        organization_id: positive(r.organization_id),
        user_id: v
            .check(validate::id("user_id", r.user_id))
            .unwrap_or_default(),
        role: v.check(convert::request_role("role", r.role)).flatten(),
        role_id: role_reference(v, (!r.role_id.is_empty()).then_some(r.role_id)),
        accepted: r.accepted,
        disable_impersonation: r.disable_impersonation,
        auto_record_calls: v
            .check(convert::request_auto_record_calls(
                "auto_record_calls",
                r.auto_record_calls,
            ))
            .flatten(),
        public_metadata: v
            .check(convert::metadata("public_metadata", r.public_metadata))
            .flatten()
            .unwrap_or_default(),
        private_metadata: v
            .check(convert::metadata("private_metadata", r.private_metadata))
            .flatten()
            .unwrap_or_default(),
        expires_at: requested_expiry(v, r.expires_at.as_ref())
            .and_then(|at| v.check(memberships::expiry("expires_at", at, chrono::Utc::now()))),
    }
}

#[tonic::async_trait]
impl MembershipService for MembershipApi {
    async fn create_membership(
        &self,
        request: Request<CreateMembershipRequest>,
    ) -> Result<Response<Membership>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(team_id = r.team_id, user_id = r.user_id);
        let mut v = Violations::new();
        let retry = retry_key(&mut v, "CreateMembership", &actor, &r, &r.request_id);
        let new = new_membership(&mut v, r);
        v.into_result()?;
        self.0
            .sees_team(binding, new.team_id, TeamKind::Any)
            .await?;
        self.0.sees_user(binding, new.user_id).await?;
        let respond = |w: &Written<crate::domain::model::MembershipView>| {
            convert::membership(w.value.clone(), w.revision)
        };
        let outcome = (self.0.store)
            .create_membership_once(&actor, new, once(retry, respond))
            .await?;
        let membership = answer(outcome, respond)?;
        self.0.reads.settle(membership.revision).await;
        trace_ids!(
            membership_id = membership.id,
            role_id = membership.role_id.as_str()
        );
        Ok(Response::new(membership))
    }

    async fn get_membership(
        &self,
        request: Request<GetMembershipRequest>,
    ) -> Result<Response<Membership>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let address = address(&mut v, r.team_id, r.member.as_ref(), r.organization_id);
        trace_address(&address);
        let consistency = v
            .check(convert::consistency("consistency", r.consistency))
            .unwrap_or_default();
        v.into_result()?;
        let address = address.within(binding)?;
        let source = self.0.reads.source(consistency).await?;
        let view = self.0.reads.membership(source, &address).await?;
        Ok(Response::new(convert::membership(
            (*view).clone(),
            source.revision(),
        )))
    }

    async fn update_membership(
        &self,
        request: Request<UpdateMembershipRequest>,
    ) -> Result<Response<Membership>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let address = address(
            &mut v,
            r.team_id,
            update_member(r.member).as_ref(),
            r.organization_id,
        );
        trace_address(&address);
        let patch = MembershipPatch {
            accepted: r.accepted,
            role: r
                .role
                .and_then(|role| v.check(convert::request_role("role", role)).flatten()),
            role_id: role_reference(&mut v, r.role_id),
            disable_impersonation: r.disable_impersonation,
            auto_record_calls: r.auto_record_calls.and_then(|a| {
                v.check(convert::request_auto_record_calls("auto_record_calls", a))
                    .flatten()
            }),
            public_metadata: v
                .check(convert::metadata("public_metadata", r.public_metadata))
                .flatten(),
            private_metadata: v
                .check(convert::metadata("private_metadata", r.private_metadata))
                .flatten(),
            expires_at: {
                let at = requested_expiry(&mut v, r.expires_at.as_ref());
                v.check(memberships::expiry_change(
                    at,
                    r.clear_expires_at,
                    chrono::Utc::now(),
                ))
                .flatten()
            },
            etag: r.etag,
        };
        v.into_result()?;
        let address = address.within(binding)?;
        let written = self
            .0
            .store
            .update_membership(&actor, &address, patch)
            .await?;
        self.0.reads.settle(written.revision).await;
        trace_ids!(
            membership_id = written.value.membership.id,
            role_id = written.value.membership.role_id.as_str()
        );
        Ok(Response::new(convert::membership(
            written.value,
            written.revision,
        )))
    }

    async fn delete_membership(
        &self,
        request: Request<DeleteMembershipRequest>,
    ) -> Result<Response<DeleteMembershipResponse>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let address = address(
            &mut v,
            r.team_id,
            delete_member(r.member).as_ref(),
            r.organization_id,
        );
        trace_address(&address);
        v.into_result()?;
        let address = address.within(binding)?;
        let revision = self
            .0
            .store
            .delete_membership(&actor, &address, r.etag.as_deref())
            .await?;
        self.0.reads.settle(revision).await;
        Ok(Response::new(DeleteMembershipResponse { revision }))
    }

    async fn list_memberships(
        &self,
        request: Request<ListMembershipsRequest>,
    ) -> Result<Response<ListMembershipsResponse>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(team_id = r.team_id);
        let mut v = Violations::new();
        let team_id = v
            .check(validate::id("team_id", r.team_id))
            .unwrap_or_default();
        if r.organization_id < 0 {
            v.add("organization_id", "must be a positive id");
        }
        let filter = MembershipFilter {
            role: v.check(convert::request_role("role", r.role)).flatten(),
            accepted: r.accepted,
        };
        let page = v.page(PageRequest::parse(r.page_size, &r.page_token));
        let consistency = v
            .check(convert::consistency("consistency", r.consistency))
            .unwrap_or_default();
        v.into_result()?;
        let organization_id = binding.narrow(positive(r.organization_id), || {
            DomainError::not_found(format_args!("team {team_id}"))
        })?;
        let revision = self.0.reads.list_revision(consistency).await?;
        let result = self
            .0
            .store
            .list_memberships(team_id, organization_id, filter, page)
            .await?;
        Ok(Response::new(ListMembershipsResponse {
            memberships: result
                .items
                .into_iter()
                .map(|m| convert::membership(m, revision))
                .collect(),
            next_page_token: convert::page_token(result.next_after),
            revision,
        }))
    }

    async fn list_user_memberships(
        &self,
        request: Request<ListUserMembershipsRequest>,
    ) -> Result<Response<ListUserMembershipsResponse>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(user_id = r.user_id);
        let mut v = Violations::new();
        let user_id = v
            .check(validate::id("user_id", r.user_id))
            .unwrap_or_default();
        let page = v.page(PageRequest::parse(r.page_size, &r.page_token));
        let consistency = v
            .check(convert::consistency("consistency", r.consistency))
            .unwrap_or_default();
        v.into_result()?;
        let revision = self.0.reads.list_revision(consistency).await?;
        self.0.sees_user(binding, user_id).await?;
        let result = self
            .0
            .store
            .list_user_memberships(user_id, binding.organization(), page)
            .await?;
        Ok(Response::new(ListUserMembershipsResponse {
            memberships: result
                .items
                .into_iter()
                .map(|m| convert::membership(m, revision))
                .collect(),
            next_page_token: convert::page_token(result.next_after),
            revision,
        }))
    }

    async fn import_memberships(
        &self,
        request: Request<ImportMembershipsRequest>,
    ) -> Result<Response<ImportMembershipsResponse>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(team_id = r.team_id);
        let mut v = Violations::new();
        let team_id = v.check(validate::id("team_id", r.team_id));
        v.extend(
            validate::batch_size("memberships", r.memberships.len())
                .into_iter()
                .collect(),
        );
        let mut new = Vec::new();
        if r.memberships.len() <= validate::MAX_BATCH_ENTRIES {
            for (i, mut entry) in r.memberships.into_iter().enumerate() {
                let mut entry_v = Violations::new();
                if !entry.request_id.is_empty() {
                    entry_v.add("request_id", "is not supported per entry");
                }
                if entry.team_id != 0 && entry.team_id != r.team_id {
                    entry_v.add("team_id", "must be 0 or the request's team_id");
                }
                // A bad request team_id is reported once, at the top.
                entry.team_id = team_id.unwrap_or(1);
                new.push(new_membership(&mut entry_v, entry));
                extend_entry(&mut v, "memberships", i, entry_v);
            }
            v.extend(validate::repeated(
                "memberships",
                "user_id",
                new.iter().map(|m| Some(m.user_id).filter(|id| *id > 0)),
            ));
        }
        v.into_result()?;
        let team_id = team_id.unwrap_or_default();
        self.0.sees_team(binding, team_id, TeamKind::Any).await?;
        if let Some(organization_id) = binding.organization() {
            let user_ids: Vec<i64> = new.iter().map(|m| m.user_id).collect();
            let unseen = (self.0.store)
                .users_unseen_by(organization_id, &user_ids)
                .await?;
            if let Some(user_id) = unseen.first() {
                let i = user_ids
                    .iter()
                    .position(|id| id == user_id)
                    .unwrap_or_default();
                return Err(DomainError::not_found(format_args!("user {user_id}"))
                    .in_entry("memberships", i)
                    .into());
            }
        }
        let imported = (self.0.store)
            .import_memberships(&actor, team_id, new)
            .await?;
        self.0.reads.settle(imported.revision).await;
        Ok(Response::new(ImportMembershipsResponse {
            memberships: imported
                .values
                .into_iter()
                .map(|w| convert::membership(w.value, w.revision))
                .collect(),
            revision: imported.revision,
        }))
    }
}
