//! AccessService: the permission checks other services make on their hot paths.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use tonic::{Request, Response, Status};

use super::{Context, binding, convert, trace_ids};
use crate::domain::access::{Decision, Effective};
use crate::domain::catalog::PermissionCatalog;
use crate::domain::page::{PageRequest, PagedList};
use crate::domain::teams::TeamKind;
use crate::domain::tenancy::Binding;
use crate::domain::validate;
use crate::domain::{DomainError, Violations};
use crate::pb::access_service_server::AccessService;
use crate::pb::*;
use crate::reads::{Judge, Source};

pub struct AccessApi(pub Context);

pub const MAX_BATCH_CHECKS: usize = 100;

fn decision(d: Decision, revision: i64) -> CheckPermissionResponse {
    CheckPermissionResponse {
        allowed: d.allowed,
        role_id: d.role_id,
        reason: d.reason.as_str().to_string(),
        revision,
    }
}

/// Validates one check; `index` is its place in a batch (`checks[3].user_id`). Field names are
/// only spelled out for a violation: a batch of valid checks allocates nothing here.
pub(crate) fn validate_check(
    catalog: &PermissionCatalog,
    v: &mut Violations,
    index: Option<usize>,
    check: &CheckPermissionRequest,
) {
    let field = |name: &str| match index {
        Some(i) => format!("checks[{i}].{name}"),
        None => name.to_string(),
    };
    for (name, id) in [("user_id", check.user_id), ("team_id", check.team_id)] {
        v.check(validate::id(name, id).map_err(|mut e| {
            e.field = field(name);
            e
        }));
    }
    if catalog.get(&check.permission).is_none() {
        v.add(
            field("permission"),
            format!("{:?} is not in the permission catalog", check.permission),
        );
    }
}

/// A lookup's permission: one of the catalog, like a check's.
fn validate_permission(catalog: &PermissionCatalog, v: &mut Violations, permission: &str) {
    if catalog.get(permission).is_none() {
        v.add(
            "permission",
            format!("{permission:?} is not in the permission catalog"),
        );
    }
}

impl AccessApi {
    fn validate_check(
        &self,
        v: &mut Violations,
        index: Option<usize>,
        check: &CheckPermissionRequest,
    ) {
        validate_check(&self.0.store.policy().catalog, v, index, check);
    }
}

impl AccessApi {
    /// What deciding a user's checks on a team the key sees needs; a team of another
    /// organization is NOT_FOUND like a missing one.
    async fn judge(
        &self,
        binding: Binding,
        source: Source,
        user_id: i64,
        team_id: i64,
    ) -> Result<Judge, DomainError> {
        self.0.sees_team(binding, team_id, TeamKind::Any).await?;
        self.0.reads.judge(source, user_id, team_id).await
    }

    /// A user's grants on a team the key sees; a team of another organization is NOT_FOUND (in a
    /// batch, TEAM_NOT_FOUND) like a missing one.
    async fn effective(
        &self,
        binding: Binding,
        source: Source,
        user_id: i64,
        team_id: i64,
    ) -> Result<Effective, DomainError> {
        self.0.sees_team(binding, team_id, TeamKind::Any).await?;
        self.0.reads.effective(source, user_id, team_id).await
    }
}

#[tonic::async_trait]
impl AccessService for AccessApi {
    async fn check_permission(
        &self,
        request: Request<CheckPermissionRequest>,
    ) -> Result<Response<CheckPermissionResponse>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(user_id = r.user_id, team_id = r.team_id);
        let mut v = Violations::new();
        self.validate_check(&mut v, None, &r);
        let consistency = v
            .check(convert::consistency("consistency", r.consistency))
            .unwrap_or_default();
        v.into_result()?;
        let source = self.0.reads.source(consistency).await?;
        let decided = self
            .judge(binding, source, r.user_id, r.team_id)
            .await?
            .check(&self.0.reads, &r.permission);
        Ok(Response::new(decision(decided, source.revision())))
    }

    async fn batch_check_permissions(
        &self,
        request: Request<BatchCheckPermissionsRequest>,
    ) -> Result<Response<BatchCheckPermissionsResponse>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        if r.checks.is_empty() || r.checks.len() > MAX_BATCH_CHECKS {
            v.add(
                "checks",
                format!(
                    "must hold 1 to {MAX_BATCH_CHECKS} checks (got {})",
                    r.checks.len()
                ),
            );
        }
        for (i, check) in r.checks.iter().enumerate() {
            self.validate_check(&mut v, Some(i), check);
        }
        let consistency = v
            .check(convert::consistency("consistency", r.consistency))
            .unwrap_or_default();
        v.into_result()?;
        let source = self.0.reads.source(consistency).await?;
        // Checks of one user in one team share what deciding them reads; an absent team is
        // answered TEAM_NOT_FOUND in the batch.
        let mut judges: HashMap<(i64, i64), Option<Judge>, foldhash::fast::RandomState> =
            HashMap::default();
        let mut results = Vec::with_capacity(r.checks.len());
        for check in &r.checks {
            let key = (check.user_id, check.team_id);
            if let Entry::Vacant(slot) = judges.entry(key) {
                let judge = match self
                    .judge(binding, source, check.user_id, check.team_id)
                    .await
                {
                    Ok(judge) => Some(judge),
                    Err(DomainError::NotFound { .. }) => None,
                    Err(e) => return Err(Status::from(e)),
                };
                slot.insert(judge);
            }
            results.push(match &judges[&key] {
                Some(judge) => decision(
                    judge.check(&self.0.reads, &check.permission),
                    source.revision(),
                ),
                None => CheckPermissionResponse {
                    allowed: false,
                    role_id: String::new(),
                    reason: "TEAM_NOT_FOUND".to_string(),
                    revision: source.revision(),
                },
            });
        }
        Ok(Response::new(BatchCheckPermissionsResponse {
            results,
            revision: source.revision(),
        }))
    }

    async fn list_effective_permissions(
        &self,
        request: Request<ListEffectivePermissionsRequest>,
    ) -> Result<Response<ListEffectivePermissionsResponse>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(user_id = r.user_id, team_id = r.team_id);
        let mut v = Violations::new();
        v.check(validate::id("user_id", r.user_id));
        v.check(validate::id("team_id", r.team_id));
        let consistency = v
            .check(convert::consistency("consistency", r.consistency))
            .unwrap_or_default();
        v.into_result()?;
        let source = self.0.reads.source(consistency).await?;
        let effective = self
            .effective(binding, source, r.user_id, r.team_id)
            .await?;
        Ok(Response::new(ListEffectivePermissionsResponse {
            permissions: effective.permissions(&self.0.store.policy().catalog),
            roles: effective
                .grants
                .into_iter()
                .map(|g| EffectiveRole {
                    role_id: g.role_id,
                    role_key: g.role_key,
                    team_id: g.team_id,
                    inherited_from_organization: g.from_organization,
                })
                .collect(),
            revision: source.revision(),
        }))
    }

    async fn lookup_users(
        &self,
        request: Request<LookupUsersRequest>,
    ) -> Result<Response<LookupUsersResponse>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(team_id = r.team_id);
        let mut v = Violations::new();
        v.check(validate::id("team_id", r.team_id));
        validate_permission(&self.0.store.policy().catalog, &mut v, &r.permission);
        let page = v.page(PageRequest::parse(r.page_size, &r.page_token));
        let consistency = v
            .check(convert::consistency("consistency", r.consistency))
            .unwrap_or_default();
        v.into_result()?;
        let page = page.of(PagedList::PermittedUsers)?;
        let source = self.0.reads.source(consistency).await?;
        self.0.sees_team(binding, r.team_id, TeamKind::Any).await?;
        let found = self
            .0
            .reads
            .permitted_users(source, r.team_id, &r.permission, page)
            .await?;
        Ok(Response::new(LookupUsersResponse {
            next_page_token: convert::page_token(found.next_after),
            users: found
                .items
                .into_iter()
                .map(|p| PermittedUser {
                    user_id: p.id,
                    role_id: p.decision.role_id,
                    reason: p.decision.reason.as_str().to_string(),
                })
                .collect(),
            revision: source.revision(),
        }))
    }

    async fn lookup_teams(
        &self,
        request: Request<LookupTeamsRequest>,
    ) -> Result<Response<LookupTeamsResponse>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        trace_ids!(user_id = r.user_id, organization_id = r.organization_id);
        let mut v = Violations::new();
        v.check(validate::id("user_id", r.user_id));
        if r.organization_id != 0 {
            v.check(validate::id("organization_id", r.organization_id));
        }
        validate_permission(&self.0.store.policy().catalog, &mut v, &r.permission);
        let page = v.page(PageRequest::parse(r.page_size, &r.page_token));
        let consistency = v
            .check(convert::consistency("consistency", r.consistency))
            .unwrap_or_default();
        v.into_result()?;
        let page = page.of(PagedList::PermittedTeams)?;
        let source = self.0.reads.source(consistency).await?;
        let organization = match r.organization_id {
            0 => binding.organization(),
            org => {
                let not_found = || TeamKind::Organization.not_found(org);
                let of = match self.0.reads.organization_of(org).await {
                    Err(DomainError::NotFound { .. }) => return Err(not_found().into()),
                    other => other?,
                };
                if of != org {
                    return Err(not_found().into());
                }
                binding.check(org, not_found)?;
                Some(org)
            }
        };
        let found = self
            .0
            .reads
            .permitted_teams(source, r.user_id, organization, &r.permission, page)
            .await?;
        Ok(Response::new(LookupTeamsResponse {
            next_page_token: convert::page_token(found.next_after),
            teams: found
                .items
                .into_iter()
                .map(|p| PermittedTeam {
                    team_id: p.id,
                    organization_id: p.organization_id,
                    role_id: p.decision.role_id,
                    reason: p.decision.reason.as_str().to_string(),
                })
                .collect(),
            revision: source.revision(),
        }))
    }
}
