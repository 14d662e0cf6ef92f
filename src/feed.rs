//! This replica's view of the change feed: one follower reads committed events in sequence order
//! (woken by this process's own commits, by PostgreSQL's LISTEN/NOTIFY for other replicas', or
//! by a short poll) and
//! fans them out to watchers. Event sequences are contiguous and become visible in order (see
//! `storage::events`), so following "everything after the last sequence seen" never skips one.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DbBackend;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::cache::AccessCache;
use crate::domain::events::EventFilter;
use crate::domain::model::Event;
use crate::storage::Store;

/// Events a slow watcher may fall behind before it re-reads from the database instead.
const BROADCAST_CAPACITY: usize = 4096;
const BATCH: u64 = 1000;
const NOTIFY_CHANNEL: &str = "membership_events";

pub struct Feed {
    store: Store,
    cache: Arc<AccessCache>,
    sender: broadcast::Sender<Arc<Event>>,
    head: watch::Sender<i64>,
    poll_interval: Duration,
}

impl Feed {
    /// Starts following from the current end of the feed. The handle stops the follower.
    pub async fn start(
        store: Store,
        cache: Arc<AccessCache>,
    ) -> Result<(Arc<Feed>, JoinHandle<()>), crate::domain::DomainError> {
        let last = store.feed_head().await?.last;
        let poll_interval = match store.backend() {
            // NOTIFY wakes the follower; the poll only covers a lost listener connection.
            DbBackend::Postgres => Duration::from_millis(500),
            _ => Duration::from_millis(10),
        };
        let feed = Arc::new(Feed {
            store,
            cache,
            sender: broadcast::channel(BROADCAST_CAPACITY).0,
            head: watch::channel(last).0,
            poll_interval,
        });
        let follower = tokio::spawn(Arc::clone(&feed).follow(last));
        Ok((feed, follower))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    /// The last sequence this replica has read and delivered.
    pub fn head(&self) -> i64 {
        *self.head.borrow()
    }

    /// A receiver of the head, to wait until it reaches a revision.
    pub fn watch_head(&self) -> watch::Receiver<i64> {
        self.head.subscribe()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn follow(self: Arc<Self>, mut last: i64) {
        let mut listener = None;
        loop {
            if self.store.backend() == DbBackend::Postgres && listener.is_none() {
                listener = self.listen().await;
            }
            match self.read_new(&mut last).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the event feed cannot read new events; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
            let wait = tokio::time::sleep(self.poll_interval);
            match listener.as_mut() {
                Some(l) => {
                    tokio::select! {
                        received = l.recv() => if let Err(e) = received {
                            tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting");
                            listener = None;
                        },
                        _ = self.store.committed().notified() => {},
                        _ = wait => {},
                    }
                }
                None => {
                    tokio::select! {
                        _ = self.store.committed().notified() => {},
                        _ = wait => {},
                    }
                }
            }
        }
    }

    async fn listen(&self) -> Option<sea_orm::sqlx::postgres::PgListener> {
        let pool = self.store.conn().get_postgres_connection_pool();
        let result = async {
            let mut l = sea_orm::sqlx::postgres::PgListener::connect_with(pool).await?;
            l.listen(NOTIFY_CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(l)
        }
        .await;
        result
            .map_err(|e| tracing::warn!(error = %e, "cannot LISTEN; polling instead"))
            .ok()
    }

    async fn read_new(&self, last: &mut i64) -> Result<(), crate::domain::DomainError> {
        let all = EventFilter::default();
        loop {
            let batch = self.store.events_after(&all, *last, BATCH).await?;
            let full = batch.len() as u64 == BATCH;
            for event in batch {
                if event.sequence != *last + 1 {
                    // Retention removed events this replica never read: trust nothing cached.
                    self.cache.clear();
                }
                self.cache.apply(&event);
                *last = event.sequence;
                // No receiver is fine: nobody is watching.
                let _ = self.sender.send(Arc::new(event));
            }
            self.head.send_if_modified(|head| {
                let moved = *head != *last;
                *head = *last;
                moved
            });
            if !full {
                return Ok(());
            }
        }
    }
}
