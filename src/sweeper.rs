//! Background sweeps: each round deletes what has expired (a bounded batch per sweep), on every
//! replica; the store makes each deletion happen once across replicas. Correctness never waits
//! for a sweep (reads judge expiry themselves): a sweep keeps tables small and records the event.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::{DomainError, DomainResult};
use crate::storage::Store;

type SweepFuture = Pin<Box<dyn Future<Output = DomainResult<u64>> + Send>>;

/// One kind of expired thing: its name for the log, and the store method that removes it.
struct Sweep {
    what: &'static str,
    run: fn(Store, DateTime<Utc>) -> SweepFuture,
}

/// A sweep calling `Store::$method(now) -> DomainResult<u64>`.
macro_rules! sweep {
    ($what:literal, $method:ident) => {
        Sweep {
            what: $what,
            run: |store, now| Box::pin(async move { store.$method(now).await }),
        }
    };
}

/// Every sweep, run in this order each round.
const SWEEPS: &[Sweep] = &[
    sweep!("memberships", sweep_expired_memberships),
    sweep!("invitations", sweep_expired_invitations),
];

/// The longest wait between rounds while sweeps fail (the database is down, say).
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Runs every sweep each `every`, until the task is aborted. While rounds fail, the wait doubles
/// up to `MAX_BACKOFF` and only the first failure is a warning, so an outage neither keeps the
/// database busy nor floods the log.
pub async fn run(store: Store, every: Duration) {
    let mut failing = false;
    let mut wait = every;
    loop {
        match sweep_once(&store).await {
            Ok(()) => {
                if failing {
                    tracing::info!("expired rows are swept again");
                }
                failing = false;
                wait = every;
            }
            Err((what, e)) => {
                if failing {
                    tracing::debug!(error = %e, what, "cannot remove expired {what}");
                } else {
                    tracing::warn!(error = %e, what, "cannot remove expired {what}; retrying with backoff");
                }
                failing = true;
                wait = (wait * 2).min(MAX_BACKOFF.max(every));
            }
        }
        tokio::time::sleep(wait).await;
    }
}

/// One round: every sweep at the same instant; the first failure ends the round.
async fn sweep_once(store: &Store) -> Result<(), (&'static str, DomainError)> {
    let now = Utc::now();
    for sweep in SWEEPS {
        match (sweep.run)(store.clone(), now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                removed = n,
                what = sweep.what,
                "removed expired {}",
                sweep.what
            ),
            Err(e) => return Err((sweep.what, e)),
        }
    }
    Ok(())
}
