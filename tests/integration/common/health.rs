//! `grpc.health.v1` as a client sees it: a `Watch` stream per service, recorded, and waits for a
//! status with a generous deadline (never a sleep and an assert).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::server::TestServer;

/// The overall server ("") and every service the server registers.
pub const HEALTH_SERVICES: [&str; 9] = [
    "",
    "membership.v1.DirectoryService",
    "membership.v1.MembershipService",
    "membership.v1.EventService",
    "membership.v1.RoleService",
    "membership.v1.AccessService",
    "membership.v1.AttributeService",
    "membership.v1.ApiKeyService",
    "membership.v1.InvitationService",
];

/// How long a health transition may take on a busy machine. The probes run about every second;
/// this only bounds a test whose server never makes the transition.
pub const HEALTH_DEADLINE: Duration = Duration::from_secs(60);

/// Every status one `Health/Watch` stream delivered, in order. The stream is opened again if it
/// ends (a server that is stopping ends it).
pub struct HealthLog {
    pub service: String,
    seen: Arc<Mutex<Vec<ServingStatus>>>,
    task: JoinHandle<()>,
}

impl HealthLog {
    pub fn open(srv: &TestServer, service: &str) -> HealthLog {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (channel, name, record) = (srv.channel(), service.to_owned(), Arc::clone(&seen));
        let task = tokio::spawn(async move {
            let mut client = HealthClient::new(channel);
            loop {
                let stream = client
                    .watch(HealthCheckRequest {
                        service: name.clone(),
                    })
                    .await;
                if let Ok(stream) = stream {
                    let mut stream = stream.into_inner();
                    while let Ok(Some(answer)) = stream.message().await {
                        record.lock().unwrap().push(answer.status());
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        HealthLog {
            service: service.to_owned(),
            seen,
            task,
        }
    }

    /// One log per entry of `HEALTH_SERVICES`.
    pub fn open_all(srv: &TestServer) -> Vec<HealthLog> {
        HEALTH_SERVICES
            .iter()
            .map(|service| HealthLog::open(srv, service))
            .collect()
    }

    /// The statuses seen so far.
    pub fn seen(&self) -> Vec<ServingStatus> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until a status at position `from` or later is `status`; its position.
    pub async fn wait_for(&self, status: ServingStatus, from: usize) -> usize {
        let deadline = tokio::time::Instant::now() + HEALTH_DEADLINE;
        loop {
            if let Some(at) = self
                .seen
                .lock()
                .unwrap()
                .iter()
                .skip(from)
                .position(|s| *s == status)
            {
                return from + at;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "health of {:?}: no {status:?} after position {from} within {HEALTH_DEADLINE:?}; \
                 seen {:?}",
                self.service,
                self.seen()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl HealthLog {
    /// Waits until the latest status is `status`; its position. For a status that, once
    /// reached, stays until the test changes something.
    pub async fn wait_until_last(&self, status: ServingStatus) -> usize {
        let deadline = tokio::time::Instant::now() + HEALTH_DEADLINE;
        loop {
            {
                let seen = self.seen.lock().unwrap();
                if seen.last() == Some(&status) {
                    return seen.len() - 1;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "health of {:?}: not {status:?} within {HEALTH_DEADLINE:?}; seen {:?}",
                self.service,
                self.seen()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for HealthLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits for `status` on every log, at or after its position in `from` (one per log); the
/// positions where each saw it.
pub async fn wait_all(logs: &[HealthLog], status: ServingStatus, from: &[usize]) -> Vec<usize> {
    let mut at = Vec::new();
    for (log, from) in logs.iter().zip(from) {
        at.push(log.wait_for(status, *from).await);
    }
    at
}

/// One `Health/Check` of `service`.
pub async fn check_health(srv: &TestServer, service: &str) -> ServingStatus {
    HealthClient::new(srv.channel())
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .unwrap_or_else(|s| panic!("health check of {service:?}: {s:?}"))
        .into_inner()
        .status()
}
