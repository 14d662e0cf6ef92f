//! Background sweeps: each round deletes what has expired (a bounded batch per sweep), on every
//! replica; the store makes each deletion happen once across replicas. Correctness never waits
//! for a sweep (reads judge expiry themselves): a sweep keeps tables small and records the event.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::DomainResult;
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

/// Runs every sweep each `every`, until the task is aborted.
pub async fn run(store: Store, every: Duration) {
    loop {
        sweep_once(&store).await;
        tokio::time::sleep(every).await;
    }
}

/// One round: every sweep at the same instant. A failing sweep is logged and tried next round.
async fn sweep_once(store: &Store) {
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
            Err(e) => {
                tracing::warn!(error = %e, what = sweep.what, "cannot remove expired {}", sweep.what)
            }
        }
    }
}
