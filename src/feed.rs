//! This replica's view of the change feed: one follower reads committed events in sequence order
//! (woken by this process's own commits, by PostgreSQL's LISTEN/NOTIFY for other replicas', or
//! by a poll that slows down while nothing happens) and fans them out to watchers. Event sequences are contiguous and become visible in order (see
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
const BATCH: u64 = 1000;
const NOTIFY_CHANNEL: &str = "membership_events";

/// The poll right after events arrived: more tend to follow.
const POLL_FLOOR: Duration = Duration::from_millis(10);
/// The poll of an idle replica on SQLite and MariaDB, which cannot notify. This process's own
/// commits, and `at_least_as_fresh` reads ahead of the feed (`reads`), wake the follower at
/// once; what waits up to this long is a write through *another* replica reaching this one's
/// cache (`minimize_latency` reads) and watchers. Small, so that stays well under a second; large
/// enough that an idle server costs next to nothing (at 10 ms it used ~5% of a core).
const POLL_CEILING: Duration = Duration::from_millis(200);
/// On PostgreSQL NOTIFY wakes the follower; the poll only covers a lost listener connection.
const POSTGRES_POLL: Duration = Duration::from_millis(500);

/// The wait between polls: back to the floor after a poll that found events, doubled (up to the
/// ceiling) after one that found none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PollInterval {
    floor: Duration,
    ceiling: Duration,
    current: Duration,
}

impl PollInterval {
    fn new(floor: Duration, ceiling: Duration) -> Self {
        Self {
            floor,
            ceiling,
            current: floor,
        }
    }

    /// The wait after a poll that found events, or not.
    fn after_poll(&mut self, found_events: bool) -> Duration {
        self.current = if found_events {
            self.floor
        } else {
            (self.current * 2).min(self.ceiling)
        };
        self.current
    }
}

pub struct Feed {
    store: Store,
    cache: Arc<AccessCache>,
    sender: broadcast::Sender<Arc<Event>>,
    head: watch::Sender<i64>,
    poll: PollInterval,
}

impl Feed {
    /// Starts following from the current end of the feed. The handle stops the follower.
    /// `buffer`: events held for watchers that have not taken them yet.
    pub async fn start(
        store: Store,
        cache: Arc<AccessCache>,
        buffer: usize,
    ) -> Result<(Arc<Feed>, JoinHandle<()>), crate::domain::DomainError> {
        let last = store.feed_head().await?.last;
        let poll = match store.backend() {
            DbBackend::Postgres => PollInterval::new(POSTGRES_POLL, POSTGRES_POLL),
            _ => PollInterval::new(POLL_FLOOR, POLL_CEILING),
        };
        let feed = Arc::new(Feed {
            store,
            cache,
            sender: broadcast::channel(buffer.max(1)).0,
            head: watch::channel(last).0,
            poll,
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
        let mut poll = self.poll;
        loop {
            if self.store.backend() == DbBackend::Postgres && listener.is_none() {
                listener = self.listen().await;
            }
            let found_events = match self.read_new(&mut last).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "the event feed cannot read new events; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let wait = tokio::time::sleep(poll.after_poll(found_events));
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

    /// Reads and delivers the events after `last`; whether there were any.
    async fn read_new(&self, last: &mut i64) -> Result<bool, crate::domain::DomainError> {
        let all = EventFilter::default();
        let start = *last;
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
                return Ok(*last != start);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_polls_back_off_and_events_reset_them() {
        let ms = Duration::from_millis;
        let mut poll = PollInterval::new(ms(10), ms(200));
        let idle: Vec<Duration> = (0..7).map(|_| poll.after_poll(false)).collect();
        assert_eq!(
            idle,
            [ms(20), ms(40), ms(80), ms(160), ms(200), ms(200), ms(200)]
        );
        assert_eq!(poll.after_poll(true), ms(10));
        assert_eq!(poll.after_poll(false), ms(20));
        let mut fixed = PollInterval::new(ms(500), ms(500));
        assert_eq!(fixed.after_poll(false), ms(500));
        assert_eq!(fixed.after_poll(true), ms(500));
    }
}
