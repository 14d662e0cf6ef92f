//! The database goes away under load, twice, and comes back: a PostgreSQL server of the test's
//! own is stopped (`pg_ctl stop -m immediate`), started, killed (SIGKILL to the postmaster) and
//! started again while a few writers, readers and an event watcher keep calling. Every call ends
//! within its deadline; writes fail UNAVAILABLE with RetryInfo while the database is down;
//! health goes NOT_SERVING and back; nothing is half-written; the event stream resumes with no
//! gap and no duplicate.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use membership_service::pb;
use tokio::task::JoinHandle;
use tonic::{Code, Request, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;

use crate::common::*;

const WRITERS: usize = 3;
const READERS: usize = 2;
/// Each call's own deadline (`grpc-timeout`): past the pool's acquire timeout (5 s), so a write
/// while the database is down ends as UNAVAILABLE, not as DEADLINE_EXCEEDED.
const CALL_DEADLINE: Duration = Duration::from_secs(20);
/// What a busy machine may add to a call's deadline before the test calls it hung. It only
/// bounds the wait; no verdict depends on how fast a call was.
const GRACE: Duration = Duration::from_secs(20);
/// A pause between a client's calls: a light load, and a few hundred writes in all.
const PAUSE: Duration = Duration::from_millis(50);
/// How long the test waits for the calls to show a phase's effect.
const PHASE_DEADLINE: Duration = Duration::from_secs(60);

/// Where the database is; each value lasts from the moment the test starts the step until the
/// next. `STOPPED` and `KILLED` begin once the server is wholly gone.
mod phase {
    pub const UP: u8 = 0;
    pub const STOPPING: u8 = 1;
    pub const STOPPED: u8 = 2;
    pub const RESTARTING: u8 = 3;
    pub const UP_AGAIN: u8 = 4;
    pub const KILLING: u8 = 5;
    pub const KILLED: u8 = 6;
    pub const RESTARTING_AGAIN: u8 = 7;
    pub const UP_AT_LAST: u8 = 8;
}

/// One write: the user it tried to create, the phases it started and ended in, and what it got.
#[derive(Debug)]
struct Write {
    email: String,
    began: u8,
    ended: u8,
    result: Result<i64, Status>,
}

impl Write {
    /// Began and ended while the database was wholly gone.
    fn while_down(&self) -> bool {
        self.began == self.ended && matches!(self.began, phase::STOPPED | phase::KILLED)
    }
}

#[derive(Default)]
struct Record {
    writes: Mutex<Vec<Write>>,
    /// Events the watcher received, in order.
    watched: Mutex<Vec<i64>>,
    /// Times the watcher had to open its stream again.
    resumed: Mutex<usize>,
}

struct Load {
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    record: Arc<Record>,
}

impl Load {
    fn set(&self, phase: u8) {
        self.phase.store(phase, Ordering::SeqCst);
    }

    /// Waits until every writer has `n` writes that began in `phase` and match `wanted`.
    async fn wait_writes(&self, phase: u8, n: usize, wanted: fn(&Write) -> bool, what: &str) {
        let deadline = tokio::time::Instant::now() + PHASE_DEADLINE;
        loop {
            let done = {
                let writes = self.record.writes.lock().unwrap();
                (0..WRITERS).all(|w| {
                    let prefix = format!("w{w}-");
                    writes
                        .iter()
                        .filter(|x| x.email.starts_with(&prefix) && x.began == phase && wanted(x))
                        .count()
                        >= n
                })
            };
            if done {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not every writer had {n} {what} in phase {phase} within {PHASE_DEADLINE:?}: {:#?}",
                self.record.writes.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A call with its deadline, which must end (with whatever result) within it plus `GRACE`.
async fn bounded<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(CALL_DEADLINE + GRACE, call).await {
        Ok(result) => result.map(tonic::Response::into_inner),
        Err(_) => panic!("{what} did not end within its deadline of {CALL_DEADLINE:?}"),
    }
}

fn with_deadline_of<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(CALL_DEADLINE);
    request
}

/// UNAVAILABLE with RetryInfo: the database is down, try again later.
#[track_caller]
fn assert_unavailable(status: &Status, what: &str) {
    assert_eq!(status.code(), Code::Unavailable, "{what}: {status:?}");
    assert!(
        status.get_error_details().retry_info().is_some(),
        "{what}: UNAVAILABLE without RetryInfo: {status:?}"
    );
}

fn spawn_writer(srv: &TestServer, load: &Load, writer: usize) -> JoinHandle<()> {
    let mut client = srv.directory();
    let (phase, stop, record) = (
        Arc::clone(&load.phase),
        Arc::clone(&load.stop),
        Arc::clone(&load.record),
    );
    tokio::spawn(async move {
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let email = format!("w{writer}-{i}@fault.test");
            i += 1;
            let began = phase.load(Ordering::SeqCst);
            let result = bounded(
                &format!("CreateUser {email}"),
                client.create_user(with_deadline_of(new_user(&email))),
            )
            .await
            .map(|user| user.id);
            let ended = phase.load(Ordering::SeqCst);
            if let Err(status) = &result {
                assert_unavailable(status, &format!("CreateUser {email}"));
            }
            record.writes.lock().unwrap().push(Write {
                email,
                began,
                ended,
                result,
            });
            tokio::time::sleep(PAUSE).await;
        }
    })
}

/// Reads may be served from the cache while the database is down: OK or UNAVAILABLE, never
/// anything else, and never a hang.
fn spawn_reader(srv: &TestServer, load: &Load, user_id: i64) -> JoinHandle<()> {
    let mut client = srv.directory();
    let stop = Arc::clone(&load.stop);
    tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            let got = bounded(
                "GetUser",
                client.get_user(with_deadline_of(pb::GetUserRequest { user_id })),
            )
            .await;
            if let Err(status) = &got {
                assert_unavailable(status, "GetUser");
            }
            let listed = bounded(
                "ListUsers",
                client.list_users(with_deadline_of(pb::ListUsersRequest {
                    page_size: 5,
                    ..Default::default()
                })),
            )
            .await;
            if let Err(status) = &listed {
                assert_unavailable(status, "ListUsers");
            }
            tokio::time::sleep(PAUSE).await;
        }
    })
}

/// Follows WatchEvents from `after`, opening it again from the last sequence received whenever
/// it ends or cannot be opened, until told to stop.
fn spawn_watcher(srv: &TestServer, load: &Load, after: i64) -> JoinHandle<()> {
    let mut client = srv.events();
    let (stop, record) = (Arc::clone(&load.stop), Arc::clone(&load.record));
    tokio::spawn(async move {
        let mut last = after;
        let mut first = true;
        while !stop.load(Ordering::SeqCst) {
            if !first {
                *record.resumed.lock().unwrap() += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            first = false;
            let opened = client
                .watch_events(pb::WatchEventsRequest {
                    after_sequence: last,
                    ..Default::default()
                })
                .await;
            let mut stream = match opened {
                Ok(stream) => stream.into_inner(),
                Err(status) => {
                    assert_unavailable(&status, "WatchEvents");
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    next = stream.message() => next,
                    // Nothing more will come once the writers stopped; check the stop flag.
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        continue;
                    }
                };
                match next {
                    Ok(Some(message)) => {
                        let event = message.event.expect("an event");
                        last = event.sequence;
                        record.watched.lock().unwrap().push(event.sequence);
                    }
                    Ok(None) => break,
                    Err(status) => {
                        assert_unavailable(&status, "WatchEvents stream");
                        break;
                    }
                }
            }
        }
    })
}

/// Every user, through ListUsers: email → id.
async fn all_users(srv: &TestServer) -> BTreeMap<String, i64> {
    let mut users = BTreeMap::new();
    let mut token = String::new();
    loop {
        let page = srv
            .directory()
            .list_users(pb::ListUsersRequest {
                page_size: 1000,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("list users after recovery")
            .into_inner();
        users.extend(page.users.into_iter().map(|u| (u.email, u.id)));
        if page.next_page_token.is_empty() {
            return users;
        }
        token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_killed_under_load() {
    with_deadline(async {
        let Some(pg) = PrivatePostgres::start().await else {
            return;
        };
        let srv = TestServer::start_on(Engine::Postgres, &pg.url(), |_| {}).await;
        let reader = create_user(&srv, "reader@fault.test").await;
        let before = last_sequence(&srv).await;
        let health = HealthLog::open(&srv, "");
        let serving = health.wait_for(ServingStatus::Serving, 0).await;

        let load = Load {
            phase: Arc::new(AtomicU8::new(phase::UP)),
            stop: Arc::new(AtomicBool::new(false)),
            record: Arc::new(Record::default()),
        };
        let watcher = spawn_watcher(&srv, &load, before);
        let mut clients: Vec<JoinHandle<()>> = (0..WRITERS)
            .map(|w| spawn_writer(&srv, &load, w))
            .collect();
        clients.extend((0..READERS).map(|_| spawn_reader(&srv, &load, reader.id)));
        let ok = |w: &Write| w.result.is_ok();
        let refused = |w: &Write| w.while_down();
        load.wait_writes(phase::UP, 2, ok, "acknowledged writes").await;

        // Stopped: every backend quits at once.
        load.set(phase::STOPPING);
        pg.stop_immediate().await;
        load.set(phase::STOPPED);
        let down = health.wait_for(ServingStatus::NotServing, serving).await;
        load.wait_writes(phase::STOPPED, 1, refused, "refused writes").await;

        load.set(phase::RESTARTING);
        pg.start_again().await;
        load.set(phase::UP_AGAIN);
        let up = health.wait_for(ServingStatus::Serving, down).await;
        load.wait_writes(phase::UP_AGAIN, 2, ok, "acknowledged writes").await;

        // Killed: the postmaster first, its backends on their own once they see it gone.
        load.set(phase::KILLING);
        pg.kill().await;
        load.set(phase::KILLED);
        let down = health.wait_for(ServingStatus::NotServing, up).await;
        load.wait_writes(phase::KILLED, 1, refused, "refused writes").await;

        load.set(phase::RESTARTING_AGAIN);
        pg.start_again().await;
        load.set(phase::UP_AT_LAST);
        health.wait_for(ServingStatus::Serving, down).await;
        load.wait_writes(phase::UP_AT_LAST, 2, ok, "acknowledged writes").await;

        load.stop.store(true, Ordering::SeqCst);
        for client in clients {
            client.await.expect("a client task failed");
        }

        // Nothing half-written: what was acknowledged is there, what failed while the
        // database was gone is not, and each user that is there came with its event. A write
        // that failed across a stop or a kill may have committed first (its answer was lost):
        // present or absent, but whole.
        let users = all_users(&srv).await;
        let writes = std::mem::take(&mut *load.record.writes.lock().unwrap());
        let events = events_after(&srv, before).await;
        let created: BTreeMap<i64, usize> =
            events
                .iter()
                .filter(|e| e.kind == "user.created")
                .fold(BTreeMap::new(), |mut n, e| {
                    *n.entry(e.user_id.expect("a user event names its user")).or_default() += 1;
                    n
                });
        let mut failed_but_present = 0;
        for write in &writes {
            match (&write.result, users.get(&write.email)) {
                (Ok(id), Some(stored)) => assert_eq!(id, stored, "{write:?}"),
                (Ok(_), None) => panic!("an acknowledged write is gone: {write:?}"),
                (Err(_), None) => {}
                (Err(_), Some(_)) if write.while_down() => {
                    panic!("a write refused while the database was down is stored: {write:?}")
                }
                (Err(_), Some(_)) => failed_but_present += 1,
            }
            if let Some(id) = users.get(&write.email) {
                assert_eq!(created.get(id), Some(&1), "one user.created event for {write:?}");
            }
        }
        let tried: BTreeSet<&str> = writes.iter().map(|w| w.email.as_str()).collect();
        for email in users.keys().filter(|e| e.ends_with("@fault.test")) {
            assert!(
                tried.contains(email.as_str()) || email == "reader@fault.test",
                "a user nobody wrote: {email}"
            );
        }
        assert!(
            failed_but_present <= 2 * WRITERS,
            "only a write in flight at a stop or a kill may be in doubt: {failed_but_present}"
        );
        assert_eq!(
            created.values().sum::<usize>(),
            users.len() - 1,
            "a user.created event for each user the writers stored, and no other"
        );

        // The watcher saw every event after `before` exactly once, in order, across both
        // outages (resuming from its last sequence where the stream ended).
        let last = events.last().map_or(before, |e| e.sequence);
        let deadline = tokio::time::Instant::now() + PHASE_DEADLINE;
        while load.record.watched.lock().unwrap().last() != Some(&last) && !watcher.is_finished()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the watcher did not reach sequence {last}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        watcher.await.expect("the watcher failed");
        let watched = load.record.watched.lock().unwrap().clone();
        let expected: Vec<i64> = ((before + 1)..=last).collect();
        assert_eq!(watched, expected, "no gap and no duplicate in the watched sequences");
        assert_eq!(
            events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            expected,
            "sequences are contiguous"
        );
        eprintln!(
            "faults: {} writes ({} acknowledged, {} in doubt and stored), the watcher resumed {} times",
            writes.len(),
            writes.iter().filter(|w| w.result.is_ok()).count(),
            failed_but_present,
            *load.record.resumed.lock().unwrap()
        );
        srv.stop().await;
        drop(pg);
    })
    .await
}
