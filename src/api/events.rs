//! EventService: the audit log and the change feed.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{Context, binding, convert};
use crate::domain::events::{EventFilter, is_event_kind};
use crate::domain::model::Event as DomainEvent;
use crate::domain::page::PageRequest;
use crate::domain::{DomainError, Reason, Violations, validate};
use crate::feed::Feed;
use crate::pb::event_service_server::EventService;
use crate::pb::*;

pub struct EventApi(pub Context);

/// Messages queued for one watcher; past this the replay waits for the client to read.
const WATCH_BUFFER: usize = 256;
const REPLAY_BATCH: u64 = 500;

fn micros(t: &prost_types::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(t.nanos / 1000))
}

fn expired(after: i64, pruned_through: i64) -> DomainError {
    DomainError::precondition(
        Reason::EventsExpired,
        format!(
            "events after {after} are no longer retained (removed through {pruned_through}); \
             resume from {pruned_through} or later"
        ),
    )
}

#[tonic::async_trait]
impl EventService for EventApi {
    async fn list_events(
        &self,
        request: Request<ListEventsRequest>,
    ) -> Result<Response<ListEventsResponse>, Status> {
        let binding = binding(&request)?;
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
        if !r.kind.is_empty() && !is_event_kind(&r.kind) {
            v.add(
                "kind",
                format!(
                    "{:?} is not an event kind (e.g. membership.updated)",
                    r.kind
                ),
            );
        }
        if !r.actor_key_id.is_empty() {
            v.check(validate::reference("actor_key_id", &r.actor_key_id, 100));
        }
        let page = v.page(PageRequest::parse(r.page_size, &r.page_token));
        v.into_result()?;
        let filter = EventFilter {
            after_sequence: r.after_sequence,
            team_id: r.team_id,
            organization_id: binding.organization(),
            kinds: if r.kind.is_empty() {
                Vec::new()
            } else {
                vec![r.kind]
            },
            actor_key_id: (!r.actor_key_id.is_empty()).then_some(r.actor_key_id),
            actor_user_id: r.actor_user_id,
            occurred_after: r.occurred_after.as_ref().map(micros),
            occurred_before: r.occurred_before.as_ref().map(micros),
            up_to: None,
        };
        let result = self.0.store.list_events(&filter, page).await?;
        Ok(Response::new(ListEventsResponse {
            events: result.items.into_iter().map(convert::event).collect(),
            next_page_token: convert::page_token(result.next_after),
        }))
    }

    type WatchEventsStream = ReceiverStream<Result<WatchEventsResponse, Status>>;

    async fn watch_events(
        &self,
        request: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        if r.after_sequence < 0 {
            v.add("after_sequence", "must not be negative");
        }
        if r.team_id.is_some_and(|t| t <= 0) {
            v.add("team_id", "must be a positive id");
        }
        for (i, kind) in r.kinds.iter().enumerate() {
            if !is_event_kind(kind) {
                v.add(
                    format!("kinds[{i}]"),
                    format!("{kind:?} is not an event kind"),
                );
            }
        }
        v.into_result()?;
        let head = self.0.store.feed_head().await?;
        if r.after_sequence > 0 && r.after_sequence < head.pruned_through {
            return Err(Status::from(expired(r.after_sequence, head.pruned_through)));
        }
        let filter = EventFilter {
            team_id: r.team_id,
            organization_id: binding.organization(),
            kinds: r.kinds,
            ..Default::default()
        };
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        // Subscribe before replaying, so nothing committed meanwhile falls between the two.
        let subscription = self.0.feed.subscribe();
        let start = r.after_sequence.max(head.pruned_through);
        let from_oldest = r.after_sequence == 0;
        let stopping = self.0.stopping.clone();
        let feed = Arc::clone(&self.0.feed);
        tokio::spawn(async move {
            let _open = crate::metrics::watch_opened();
            let closing = sender.clone();
            tokio::select! {
                _ = watch(feed, filter, from_oldest, start, subscription, sender) => {}
                // The stream must end for the server to finish draining; the client resumes
                // from its last sequence on another replica or after the restart.
                _ = stopped(stopping) => {
                    let _ = closing
                        .send(Err(Status::unavailable("the server is shutting down; resume from the last sequence")))
                        .await;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

/// Completes when the server begins to stop.
async fn stopped(mut stopping: tokio::sync::watch::Receiver<bool>) {
    loop {
        if *stopping.borrow_and_update() {
            return;
        }
        if stopping.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

type Sink = mpsc::Sender<Result<WatchEventsResponse, Status>>;

/// Sends one event; false when the client has gone.
async fn send(sink: &Sink, event: DomainEvent) -> bool {
    let sent = sink
        .send(Ok(WatchEventsResponse {
            event: Some(convert::event(event)),
        }))
        .await
        .is_ok();
    if sent {
        crate::metrics::event_delivered();
    }
    sent
}

/// Replays from the database up to what the feed has delivered, then follows the feed. A watcher
/// that falls behind the broadcast (or sees a jump) re-reads from the database: memory stays
/// bounded and no event is skipped.
async fn watch(
    feed: Arc<Feed>,
    filter: EventFilter,
    from_oldest: bool,
    mut cursor: i64,
    mut subscription: broadcast::Receiver<Arc<DomainEvent>>,
    sink: Sink,
) {
    loop {
        let target = feed.head();
        while cursor < target {
            let page = EventFilter {
                up_to: Some(target),
                ..filter.clone()
            };
            let batch = match feed.store().events_after(&page, cursor, REPLAY_BATCH).await {
                Ok(batch) => batch,
                Err(e) => {
                    let _ = sink.send(Err(Status::from(e))).await;
                    return;
                }
            };
            match feed.store().feed_head().await {
                // "From the oldest retained" moves along with retention.
                Ok(head) if cursor < head.pruned_through && from_oldest => {
                    cursor = head.pruned_through;
                    continue;
                }
                Ok(head) if cursor < head.pruned_through => {
                    let _ = sink
                        .send(Err(Status::from(expired(cursor, head.pruned_through))))
                        .await;
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = sink.send(Err(Status::from(e))).await;
                    return;
                }
            }
            let done = (batch.len() as u64) < REPLAY_BATCH;
            for event in batch {
                cursor = event.sequence;
                if !send(&sink, event).await {
                    return;
                }
            }
            if done {
                cursor = target;
            }
        }
        loop {
            let received = tokio::select! {
                received = subscription.recv() => received,
                // The client went away while nothing happened.
                _ = sink.closed() => return,
            };
            match received {
                Ok(event) if event.sequence <= cursor => continue,
                Ok(event) if event.sequence == cursor + 1 => {
                    cursor = event.sequence;
                    if filter.matches(&event) && !send(&sink, (*event).clone()).await {
                        return;
                    }
                }
                // A jump or a lag: catch up from the database.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    subscription = subscription.resubscribe();
                    break;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
