//! ApiKeyService: keys are managed by services, never by an end user acting through one.

use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};

use super::idempotency::{answer, once, retry_key};
use super::{Context, caller, convert, trace_ids};
use crate::auth::{self, Caller};
use crate::domain::api_keys::{self, ApiKey, NewApiKey};
use crate::domain::page::{KeyedPageRequest, encode_keyed_token};
use crate::domain::policy::Rule;
use crate::domain::retries;
use crate::domain::{DomainError, Violations};
use crate::pb;
use crate::pb::api_key_service_server::ApiKeyService;
use crate::storage::idempotency::Outcome;
use crate::storage::shared::Written;

pub struct ApiKeyApi(pub Context);

fn api_key(key: ApiKey, revision: i64) -> pb::ApiKey {
    pb::ApiKey {
        id: key.id,
        name: key.name,
        scopes: key.scopes,
        organization_id: key.organization_id,
        created_at: convert::timestamp(key.created_at),
        expires_at: key.expires_at.and_then(convert::timestamp),
        revoked_at: key.revoked_at.and_then(convert::timestamp),
        last_used_at: key.last_used_at.and_then(convert::timestamp),
        created_by_key_id: key.created_by_key_id.unwrap_or_default(),
        revision,
        rate_limit_per_second: key.rate_limit_per_second,
    }
}

/// Reads of keys refuse an actor like the key writes do (the policy's `NOT_WITH_ACTOR`).
fn refuse_actor(caller: &Caller) -> Result<(), Status> {
    match caller.actor_user_id {
        Some(_) => Err(Rule::NotWithActor
            .refuse("API keys are managed by services, not by an end user acting through one")
            .into()),
        None => Ok(()),
    }
}

fn key_id(v: &mut Violations, key_id: &str) -> String {
    let key_id = key_id.trim();
    if key_id.is_empty() {
        v.add("key_id", "is required");
    }
    key_id.to_string()
}

fn instant(field: &str, t: &prost_types::Timestamp) -> Result<DateTime<Utc>, DomainError> {
    DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .ok_or_else(|| DomainError::invalid(field, "is not a valid timestamp"))
}

#[tonic::async_trait]
impl ApiKeyService for ApiKeyApi {
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let caller = caller(&request)?;
        // A remembered answer holds the new key's secret sealed with the caller's own key, which
        // the auth layer has just accepted from these headers.
        let presented = auth::bearer_key(request.metadata().as_ref())?;
        let r = request.into_inner();
        let actor = caller.actor();
        let mut v = Violations::new();
        let retry = retry_key(&mut v, "CreateApiKey", &actor, &r, &r.request_id);
        v.into_result()?;
        let expires_at = r
            .expires_at
            .as_ref()
            .map(|t| instant("expires_at", t))
            .transpose()?;
        let organization_id =
            api_keys::binding_of_new_key(caller.organization_id, r.organization_id)?;
        let new = NewApiKey::validate(
            &r.name,
            auth::parse_scopes(&r.scopes),
            organization_id,
            expires_at,
            r.rate_limit_per_second,
            Utc::now(),
        )?;
        let (id, secret) = auth::generate_key();
        let respond = |w: &Written<ApiKey>, secret: String| pb::CreateApiKeyResponse {
            api_key: Some(api_key(w.value.clone(), w.revision)),
            secret,
        };
        let remembered =
            |w: &Written<ApiKey>| respond(w, retries::seal(&presented, &w.value.id, &secret));
        let outcome = (self.0.store)
            .create_api_key_once(
                &actor,
                &id,
                &auth::hash_key(&secret),
                &new,
                once(retry, remembered),
            )
            .await?;
        let replayed = matches!(outcome, Outcome::Replayed(_));
        let mut response = answer(outcome, |w| respond(w, secret.clone()))?;
        if replayed {
            let key_id = response
                .api_key
                .as_ref()
                .map(|k| k.id.as_str())
                .unwrap_or("");
            response.secret = retries::unseal(&presented, key_id, &response.secret)
                .ok_or_else(|| DomainError::Internal("a sealed secret does not unseal".into()))?;
        }
        self.0
            .reads
            .settle(response.api_key.as_ref().map_or(0, |k| k.revision))
            .await;
        trace_ids!(key_id = response.api_key.as_ref().map_or("", |k| k.id.as_str()));
        Ok(Response::new(response))
    }

    async fn get_api_key(
        &self,
        request: Request<pb::GetApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let caller = caller(&request)?;
        refuse_actor(&caller)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let id = key_id(&mut v, &r.key_id);
        v.into_result()?;
        trace_ids!(key_id = id.as_str());
        let key = self
            .0
            .store
            .get_api_key(&id, caller.organization_id)
            .await?;
        Ok(Response::new(api_key(key, 0)))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let caller = caller(&request)?;
        refuse_actor(&caller)?;
        let r = request.into_inner();
        let page = KeyedPageRequest::parse(r.page_size, &r.page_token)
            .map_err(DomainError::InvalidArgument)?;
        let page = self
            .0
            .store
            .list_api_keys(&page, caller.organization_id)
            .await?;
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: page.items.into_iter().map(|k| api_key(k, 0)).collect(),
            next_page_token: page.next_after.map(encode_keyed_token).unwrap_or_default(),
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let id = key_id(&mut v, &r.key_id);
        v.into_result()?;
        trace_ids!(key_id = id.as_str());
        let written = self
            .0
            .store
            .revoke_api_key(&caller.actor(), &id, caller.organization_id)
            .await?;
        self.0.reads.settle(written.revision).await;
        Ok(Response::new(api_key(written.value, written.revision)))
    }
}
