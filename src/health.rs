//! Honest health: `grpc.health.v1` reports the overall server ("") and every service
//! NOT_SERVING while the database cannot be reached or the storage refuses writes, and SERVING
//! again once a probe shows it recovered, without a restart.
//!
//! Two probes run side by side, because they fail differently:
//! - reachability, every `READ_EVERY`: one small read on a connection of its own, so a pool
//!   that load keeps busy is never mistaken for an outage, and bounded by `READ_TIMEOUT`, so a
//!   database that hangs counts as down;
//! - writability, every `WRITE_EVERY`: a real write through the pool every use case uses
//!   (`Store::probe_write`), so whatever refuses their writes refuses it. A probe that only
//!   waited for a pooled connection proves nothing either way and changes nothing.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::storage::{ProbeError, Store, is_in_memory};

const READ_EVERY: Duration = Duration::from_millis(500);
/// Generous for one indexed read on a busy machine; a database slower than this is not one a
/// load balancer should send traffic to.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
const WRITE_EVERY: Duration = Duration::from_secs(1);
/// Past the pool's acquire timeout (5 s), so a probe that waited for a busy pool ends as
/// `PoolBusy` before this: only a write the database itself holds up runs into it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long stopping waits for the probe connection to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the probes last found; `Err` holds why, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    reachable: Result<(), String>,
    writable: Result<(), String>,
}

impl Condition {
    fn status(&self) -> ServingStatus {
        if self.reachable.is_ok() && self.writable.is_ok() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }
    }

    /// Why it is not serving.
    fn cause(&self) -> String {
        match (&self.reachable, &self.writable) {
            (Err(e), _) => format!("the database is unreachable: {e}"),
            (Ok(()), Err(e)) => format!("the storage refuses writes: {e}"),
            (Ok(()), Ok(())) => String::new(),
        }
    }
}

/// The writability verdict after one write probe; `None`: the probe proved nothing.
fn write_verdict(
    outcome: Result<Result<(), ProbeError>, tokio::time::error::Elapsed>,
) -> Option<Result<(), String>> {
    match outcome {
        Ok(Ok(())) => Some(Ok(())),
        Ok(Err(ProbeError::PoolBusy)) => None,
        Ok(Err(ProbeError::Failed(cause))) => Some(Err(cause)),
        Err(_) => Some(Err(format!(
            "a write did not finish within {WRITE_TIMEOUT:?}"
        ))),
    }
}

/// The reachability probe's own connection (opened on first use, and again after a failure
/// that closed it).
struct ReadProbe {
    main: Store,
    url: String,
    own: Option<Store>,
}

impl ReadProbe {
    async fn probe(&mut self) -> Result<(), String> {
        let probing = async {
            // An in-memory database cannot be opened twice: its one connection has to do.
            if is_in_memory(&self.url) {
                return self.main.probe_read().await.map_err(|e| e.to_string());
            }
            let store = match &self.own {
                Some(store) => store,
                None => self
                    .own
                    .insert(Store::connect(&self.url, 1).await.map_err(|e| e.cause)?),
            };
            store.probe_read().await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(READ_TIMEOUT, probing).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {READ_TIMEOUT:?}")),
        }
    }

    async fn close(self) {
        if let Some(store) = self.own {
            // On SQLite the last connection to close checkpoints the WAL: this one must not
            // outlive the pool's.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, store.close()).await;
        }
    }
}

/// The running monitor: the reporter the health service reads, and the task that drives it.
pub struct HealthMonitor {
    reporter: HealthReporter,
    task: JoinHandle<()>,
}

impl HealthMonitor {
    /// Probes once, publishes the result for "" and each of `services`, then keeps probing
    /// until `stopping` turns true: then everything goes NOT_SERVING and open `Watch` streams
    /// end, so they do not hold up the drain.
    pub async fn start(
        store: Store,
        database_url: &str,
        services: Vec<&'static str>,
        stopping: watch::Receiver<bool>,
    ) -> HealthMonitor {
        let reporter = HealthReporter::new();
        let mut read = ReadProbe {
            main: store.clone(),
            url: database_url.to_owned(),
            own: None,
        };
        let (reachable, written) = tokio::join!(
            read.probe(),
            tokio::time::timeout(WRITE_TIMEOUT, store.probe_write())
        );
        let first = Condition {
            reachable,
            // The pool is idle at start: a busy one still proves nothing, but is not held
            // against the server.
            writable: write_verdict(written).unwrap_or(Ok(())),
        };
        let mut published = Published {
            reporter: reporter.clone(),
            services,
            status: None,
        };
        published.publish(&first).await;
        let task = tokio::spawn(run(store, read, published, first, stopping));
        HealthMonitor { reporter, task }
    }

    pub fn reporter(&self) -> HealthReporter {
        self.reporter.clone()
    }

    /// Waits for the monitor to finish after `stopping` turned true (it closes its own
    /// connection first); ends it if that takes too long.
    pub async fn stopped(mut self) {
        // On a timeout, Drop ends the task.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT * 2, &mut self.task).await;
    }
}

impl Drop for HealthMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The statuses as last published.
struct Published {
    reporter: HealthReporter,
    services: Vec<&'static str>,
    status: Option<ServingStatus>,
}

impl Published {
    /// Publishes a change only: every publication wakes every `Watch` stream.
    async fn publish(&mut self, condition: &Condition) {
        let status = condition.status();
        if self.status == Some(status) {
            return;
        }
        match (self.status, status) {
            (_, ServingStatus::NotServing) => {
                tracing::warn!(cause = %condition.cause(), "health: NOT_SERVING");
            }
            (Some(_), _) => tracing::info!("health: SERVING again, the database recovered"),
            (None, _) => tracing::debug!("health: SERVING"),
        }
        self.set_all(status).await;
        self.status = Some(status);
    }

    async fn set_all(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        for service in &self.services {
            self.reporter.set_service_status(service, status).await;
        }
    }

    /// NOT_SERVING, then forgets every status: a `Watch` stream ends when its status goes.
    async fn stop(mut self) {
        self.set_all(ServingStatus::NotServing).await;
        self.reporter.clear_service_status("").await;
        for service in &self.services {
            self.reporter.clear_service_status(service).await;
        }
    }
}

async fn run(
    store: Store,
    mut read: ReadProbe,
    mut published: Published,
    first: Condition,
    mut stopping: watch::Receiver<bool>,
) {
    let (condition, mut changed) = watch::channel(first);
    let reads = async {
        loop {
            tokio::time::sleep(READ_EVERY).await;
            let reachable = read.probe().await;
            condition.send_if_modified(|c| {
                let modified = c.reachable != reachable;
                c.reachable = reachable;
                modified
            });
        }
    };
    let writes = async {
        loop {
            tokio::time::sleep(WRITE_EVERY).await;
            let outcome = tokio::time::timeout(WRITE_TIMEOUT, store.probe_write()).await;
            if let Some(writable) = write_verdict(outcome) {
                condition.send_if_modified(|c| {
                    let modified = c.writable != writable;
                    c.writable = writable;
                    modified
                });
            }
        }
    };
    let publish = async {
        while changed.changed().await.is_ok() {
            let now = changed.borrow_and_update().clone();
            published.publish(&now).await;
        }
    };
    let stop = async {
        while !*stopping.borrow_and_update() {
            if stopping.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = reads => {}
        _ = writes => {}
        _ = publish => {}
        _ = stop => {}
    }
    published.stop().await;
    read.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(reachable: Result<(), &str>, writable: Result<(), &str>) -> Condition {
        Condition {
            reachable: reachable.map_err(str::to_owned),
            writable: writable.map_err(str::to_owned),
        }
    }

    #[test]
    fn serving_needs_both_probes() {
        assert_eq!(condition(Ok(()), Ok(())).status(), ServingStatus::Serving);
        let down = condition(Err("refused"), Ok(()));
        assert_eq!(down.status(), ServingStatus::NotServing);
        assert!(down.cause().contains("unreachable: refused"));
        let full = condition(Ok(()), Err("disk full"));
        assert_eq!(full.status(), ServingStatus::NotServing);
        assert!(full.cause().contains("refuses writes: disk full"));
    }

    #[tokio::test]
    async fn a_busy_pool_proves_nothing_but_a_hang_does() {
        assert_eq!(write_verdict(Ok(Ok(()))), Some(Ok(())));
        assert_eq!(write_verdict(Ok(Err(ProbeError::PoolBusy))), None);
        assert_eq!(
            write_verdict(Ok(Err(ProbeError::Failed("read-only".into())))),
            Some(Err("read-only".into()))
        );
        let elapsed = tokio::time::timeout(Duration::ZERO, std::future::pending::<()>())
            .await
            .unwrap_err();
        assert!(matches!(write_verdict(Err(elapsed)), Some(Err(_))));
    }
}
