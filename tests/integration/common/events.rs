//! The event log read back through ListEvents, every page followed.

use membership_service::pb;

use super::server::TestServer;

/// Every event matching the request's filters, following page tokens (pages of 1000).
pub async fn list_events(srv: &TestServer, filter: pb::ListEventsRequest) -> Vec<pb::Event> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = srv
            .events()
            .list_events(pb::ListEventsRequest {
                page_size: 1000,
                page_token: token.clone(),
                ..filter.clone()
            })
            .await
            .unwrap_or_else(|s| panic!("list events {filter:?}: {s:?}"))
            .into_inner();
        out.extend(page.events);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

pub async fn all_events(srv: &TestServer) -> Vec<pb::Event> {
    list_events(srv, pb::ListEventsRequest::default()).await
}

/// The events recorded after `sequence`, oldest first.
pub async fn events_after(srv: &TestServer, sequence: i64) -> Vec<pb::Event> {
    list_events(
        srv,
        pb::ListEventsRequest {
            after_sequence: sequence,
            ..Default::default()
        },
    )
    .await
}

pub async fn event_count(srv: &TestServer) -> usize {
    all_events(srv).await.len()
}

/// The sequence of the newest stored event (0 when there is none).
pub async fn last_sequence(srv: &TestServer) -> i64 {
    all_events(srv).await.last().map_or(0, |e| e.sequence)
}
