//! EventService: the audit log.

use tonic::{Request, Response, Status};

use super::Context;
use super::convert;
use super::errors::IntoStatus;
use crate::auth::Scope;
use crate::domain::Violations;
use crate::domain::page::PageRequest;
use crate::pb::event_service_server::EventService;
use crate::pb::*;
use crate::storage::events::EventFilter;

pub struct EventApi(pub Context);

#[tonic::async_trait]
impl EventService for EventApi {
    async fn list_events(
        &self,
        request: Request<ListEventsRequest>,
    ) -> Result<Response<ListEventsResponse>, Status> {
        self.0
            .auth
            .authorize(request.metadata(), Scope::EventsRead)
            .await
            .status()?;
        let r = request.into_inner();
        let mut v = Violations::new();
        if r.after_sequence < 0 {
            v.add("after_sequence", "must not be negative");
        }
        if r.team_id.is_some_and(|t| t <= 0) {
            v.add("team_id", "must be a positive id");
        }
        if r.actor_user_id.is_some_and(|u| u <= 0) {
            v.add("actor_user_id", "must be a positive id");
        }
        let page = v.page(PageRequest::parse(r.page_size, &r.page_token));
        v.into_result().status()?;
        let filter = EventFilter {
            after_sequence: r.after_sequence,
            team_id: r.team_id,
            kind: (!r.kind.is_empty()).then_some(r.kind),
            actor_key_id: (!r.actor_key_id.is_empty()).then_some(r.actor_key_id),
            actor_user_id: r.actor_user_id,
        };
        let result = self.0.store.list_events(&filter, page).await.status()?;
        Ok(Response::new(ListEventsResponse {
            events: result.items.into_iter().map(convert::event).collect(),
            next_page_token: convert::page_token(result.next_after),
        }))
    }
}
