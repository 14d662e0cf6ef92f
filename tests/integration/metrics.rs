//! Prometheus metrics at `--metrics-listen`: a real server is called (an OK, a NOT_FOUND, a
//! refusal, a watch, calls shed for their deadline and for overload) and `/metrics`, scraped
//! over plain HTTP, must show each series moving with its labels. Every engine.
//!
//! The call, shed and cache series are per process, and other tests' servers run in this
//! process too: those are checked to move by at least what this test did. The levels (pool,
//! cache entries, feed) are read from the scraped server alone, and checked exactly.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use membership_service::config::ServeConfig;
use membership_service::server::{App, StartupError};
use sea_orm::{ConnectionTrait, Database, TransactionTrait};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tonic::Code;

use crate::common::{Engine, TempDir, TestServer, create_user, expect_err, new_user, pb, reason};
use pb::directory_service_client::DirectoryServiceClient;

engine_tests!(
    calls_move_their_series,
    calls_past_their_deadline_are_counted,
    overloaded_calls_are_counted,
);

const ANY_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);
const DIRECTORY: &str = "membership.v1.DirectoryService";

/// One sample line: its name, its labels and its value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition.
#[derive(Debug)]
struct Scrape {
    samples: Vec<Sample>,
    /// Metric family → its `# TYPE`.
    types: HashMap<String, String>,
}

impl Scrape {
    /// The sample with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }

    /// A counter's value; one never incremented is not listed yet, which is zero.
    fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// A level that must be listed.
    fn level(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in the scrape: {self:#?}"))
    }
}

/// `name{a="x",b="y"} value`, with `\"`, `\\` and `\n` escapes in label values.
fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').expect("a value after the series");
    let value = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
    let Some((name, rest)) = series.split_once('{') else {
        return Sample {
            name: series.to_string(),
            labels: BTreeMap::new(),
            value,
        };
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest.strip_suffix('}').expect("labels end with }").chars();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "a quoted label value: {line}");
        let mut label_value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => label_value.push('\n'),
                    Some(other) => label_value.push(other),
                    None => panic!("a dangling escape: {line}"),
                },
                c => label_value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_string(), label_value);
    }
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

fn parse(text: &str) -> Scrape {
    let mut types = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let (family, kind) = declared.split_once(' ').expect("# TYPE name kind");
            types.insert(family.to_string(), kind.to_string());
        } else if !line.starts_with('#') {
            samples.push(parse_sample(line));
        }
    }
    // Every sample belongs to a declared family (a histogram's lines carry suffixes).
    for sample in &samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| sample.name.strip_suffix(suffix))
            .filter(|base| types.get(*base).is_some_and(|t| t == "histogram"))
            .unwrap_or(&sample.name);
        assert!(
            types.contains_key(family),
            "{} has no # TYPE line",
            sample.name
        );
    }
    Scrape { samples, types }
}

/// A plain HTTP/1.1 GET: status, headers, body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the metrics listener");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read the answer");
    let text = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers, then a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    assert!(
        !head.to_ascii_lowercase().contains("chunked"),
        "a sized body: {head}"
    );
    (status, head.to_ascii_lowercase(), body.to_string())
}

async fn scrape(srv: &TestServer) -> Scrape {
    let addr = srv.metrics_addr.expect("the server serves metrics");
    let (status, head, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    parse(&body)
}

async fn start(engine: Engine, tweak: impl FnOnce(&mut ServeConfig)) -> Option<TestServer> {
    TestServer::start_with(engine, |config| {
        config.metrics_listen = Some(ANY_PORT);
        tweak(config);
    })
    .await
}

fn get_user(user_id: i64) -> pb::GetUserRequest {
    pb::GetUserRequest { user_id }
}

async fn calls_move_their_series(engine: Engine) {
    let Some(srv) = start(engine, |_| {}).await else {
        return;
    };
    let before = scrape(&srv).await;
    let user = create_user(&srv, "metrics@example.test").await;
    let missing = expect_err(srv.directory().get_user(get_user(user.id + 1000)).await);
    assert_eq!(missing.code(), Code::NotFound);
    let refused = expect_err(
        srv.anonymous(DirectoryServiceClient::new)
            .get_user(get_user(user.id))
            .await,
    );
    assert_eq!(refused.code(), Code::Unauthenticated);
    // A watch from the start, read up to the user's event: the feed has applied it by then.
    let mut watch = srv
        .events()
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let mut received = 0.0;
    loop {
        let event = timeout(Duration::from_secs(30), watch.message())
            .await
            .expect("the next event in time")
            .expect("a message")
            .expect("the stream is open")
            .event
            .expect("an event");
        received += 1.0;
        if event.sequence >= user.revision {
            break;
        }
    }
    let after = scrape(&srv).await;

    let moved = |name: &str, labels: &[(&str, &str)]| moved(&before, &after, name, labels);
    let calls = CALLS;
    let rpc = directory_call;
    assert!(moved(calls, &rpc("CreateUser", "OK")) >= 1.0, "{after:#?}");
    assert!(moved(calls, &rpc("GetUser", "NOT_FOUND")) >= 1.0);
    assert!(moved(calls, &rpc("GetUser", "UNAUTHENTICATED")) >= 1.0);
    let watches = [
        ("service", "membership.v1.EventService"),
        ("method", "WatchEvents"),
        ("code", "OK"),
    ];
    assert!(moved(calls, &watches) >= 1.0);
    assert_eq!(after.types[calls], "counter");

    // Latency: a histogram per method, its buckets cumulative up to +Inf = count.
    let get_user_labels = [("service", DIRECTORY), ("method", "GetUser")];
    let duration = "membership_rpc_duration_seconds";
    assert_eq!(after.types[duration], "histogram");
    let count = after.level(&format!("{duration}_count"), &get_user_labels);
    let before_count = before
        .get(&format!("{duration}_count"), &get_user_labels)
        .unwrap_or(0.0);
    assert!(count - before_count >= 2.0, "{count} after {before_count}");
    let buckets: Vec<(f64, f64)> = after
        .samples
        .iter()
        .filter(|s| {
            s.name == format!("{duration}_bucket")
                && s.labels.get("method").map(String::as_str) == Some("GetUser")
                && s.labels.get("service").map(String::as_str) == Some(DIRECTORY)
        })
        .map(|s| {
            let le = &s.labels["le"];
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("a bucket bound")
            };
            (bound, s.value)
        })
        .collect();
    assert!(buckets.len() > 5, "{buckets:?}");
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "{buckets:?}"
    );
    assert_eq!(
        buckets.last().map(|b| (b.0, b.1)),
        Some((f64::INFINITY, count))
    );
    assert!(after.get("membership_rpc_in_flight", &[]).is_some());

    // The key was looked up: a miss on this server's first call, hits after it.
    let keys = [("cache", "api_keys")];
    assert!(moved("membership_cache_misses_total", &keys) >= 1.0);
    assert!(moved("membership_cache_hits_total", &keys) >= 2.0);
    assert_eq!(after.level("membership_cache_entries", &keys), 1.0);
    for cache in [
        "user_memberships",
        "team_organizations",
        "role_permissions",
        "membership_views",
        "membership_ids",
    ] {
        assert!(
            after
                .get("membership_cache_entries", &[("cache", cache)])
                .is_some()
        );
        assert!(
            after
                .get("membership_cache_hits_total", &[("cache", cache)])
                .is_some()
        );
    }

    // The watch: open now, and it was sent every event it received.
    assert!(after.level("membership_watches_open", &[]) >= 1.0);
    assert!(moved("membership_events_delivered_total", &[]) >= received);

    // This server's levels, exactly.
    let head = after.level("membership_feed_head_sequence", &[]);
    let applied = after.level("membership_feed_applied_sequence", &[]);
    assert!(
        applied >= user.revision as f64,
        "{applied} < {}",
        user.revision
    );
    assert!(head >= applied, "head {head} < applied {applied}");
    let pool = |state| after.level("membership_db_pool_connections", &[("state", state)]);
    // On PostgreSQL the pool holds one more: the feed's LISTEN connection.
    let listener = u32::from(srv.engine == Engine::Postgres);
    assert_eq!(
        pool("max"),
        f64::from(srv.config.db_max_connections + listener)
    );
    assert!(pool("in_use") + pool("idle") <= pool("max"));
    assert!(
        pool("in_use") + pool("idle") >= 1.0,
        "the pool has opened a connection"
    );

    // Only /metrics is served.
    let (status, _, _) = get(srv.metrics_addr.unwrap(), "/").await;
    assert_eq!(status, 404);
    drop(watch);
    srv.stop().await;
}

/// Holds the row every write updates (the event sequence), so that writes wait for it.
async fn block_writes(url: &str) -> (sea_orm::DatabaseConnection, sea_orm::DatabaseTransaction) {
    let db = Database::connect(url)
        .await
        .expect("a connection of the test's own");
    let txn = db.begin().await.expect("begin");
    txn.execute_unprepared("UPDATE event_sequence SET value = value WHERE id = 1")
        .await
        .expect("lock the event sequence");
    (db, txn)
}

/// The shed and call counters' moves from `before` to `after`.
fn moved(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.count(name, labels) - before.count(name, labels)
}

fn directory_call(method: &'static str, code: &'static str) -> [(&'static str, &'static str); 3] {
    [("service", DIRECTORY), ("method", method), ("code", code)]
}

const SHED: &str = "membership_rpc_shed_total";
const CALLS: &str = "membership_rpc_requests_total";

/// A write waiting on a lock past the server's deadline ends DEADLINE_EXCEEDED, counted as shed.
/// (The server's `--request-timeout-ms`, not the client's `grpc-timeout`: tonic's client enforces
/// that one too, and would cancel the call first.)
async fn calls_past_their_deadline_are_counted(engine: Engine) {
    let Some(srv) = start(engine, |config| config.request_timeout_ms = 300).await else {
        return;
    };
    let before = scrape(&srv).await;
    let (db, lock) = block_writes(&srv.database_url).await;
    let status = expect_err(
        srv.directory()
            .create_user(new_user("late@example.test"))
            .await,
    );
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    lock.rollback().await.expect("release the lock");
    db.close().await.expect("close");
    let after = scrape(&srv).await;
    let deadline = [("reason", "DEADLINE_EXCEEDED")];
    assert!(moved(&before, &after, SHED, &deadline) >= 1.0, "{after:#?}");
    let late = directory_call("CreateUser", "DEADLINE_EXCEEDED");
    assert!(moved(&before, &after, CALLS, &late) >= 1.0);
    assert!(after.get(SHED, &[("reason", "RATE_LIMITED")]).is_some());
    srv.stop().await;
}

/// With `--max-in-flight 1` and a write waiting on a lock, other calls are shed OVERLOADED.
async fn overloaded_calls_are_counted(engine: Engine) {
    let Some(srv) = start(engine, |config| {
        config.max_in_flight = 1;
        // Nothing but the lock's release ends the held write.
        config.request_timeout_ms = 3_600_000;
    })
    .await
    else {
        return;
    };
    let before = scrape(&srv).await;
    // A write that got its connection, and warms the key cache.
    create_user(&srv, "first@example.test").await;
    let (db, lock) = block_writes(&srv.database_url).await;

    // Until the held write has arrived a read may still be admitted: probe until one is shed.
    // A held write that ended anyway (the engine's lock wait timeout) is sent again.
    let send_held = || {
        let mut directory = srv.directory();
        tokio::spawn(async move {
            directory
                .create_user(new_user("held@example.test"))
                .await
                .map(|_| ())
        })
    };
    let mut held = send_held();
    let overloaded = loop {
        if held.is_finished() {
            held = send_held();
        }
        match srv.directory().get_user(get_user(1_000_000)).await {
            Err(status) if status.code() == Code::ResourceExhausted => break status,
            Err(status) if status.code() == Code::NotFound => {}
            other => panic!("a read while writes wait: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(reason(&overloaded).as_deref(), Some("OVERLOADED"));
    let during = scrape(&srv).await;
    assert!(during.level("membership_rpc_in_flight", &[]) >= 1.0);
    assert!(
        during.level("membership_db_pool_connections", &[("state", "in_use")]) >= 1.0,
        "the held write has its connection"
    );
    lock.rollback().await.expect("release the lock");
    let _ = timeout(Duration::from_secs(60), held).await;
    db.close().await.expect("close");

    let after = scrape(&srv).await;
    let overloaded = [("reason", "OVERLOADED")];
    assert!(
        moved(&before, &after, SHED, &overloaded) >= 1.0,
        "{after:#?}"
    );
    let shed_read = directory_call("GetUser", "RESOURCE_EXHAUSTED");
    assert!(moved(&before, &after, CALLS, &shed_read) >= 1.0);
    // Write transactions waited for their connections, and were timed.
    let waits = "membership_db_pool_wait_seconds_count";
    assert!(moved(&before, &after, waits, &[]) >= 1.0);
    srv.stop().await;
}

/// A metrics port that is taken fails the start-up, before the database is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_metrics_port_fails_start_up() {
    let taken = tokio::net::TcpListener::bind(ANY_PORT).await.expect("bind");
    let dir = TempDir::new("metrics-port");
    let mut config = ServeConfig::new(ANY_PORT, dir.sqlite_url("m.db"));
    config.metrics_listen = Some(taken.local_addr().unwrap());
    match App::prepare(&config).await {
        Err(StartupError::Listen(message)) => {
            assert!(message.contains("--metrics-listen"), "{message}");
        }
        Err(other) => panic!("expected a listen error, got {other}"),
        Ok(_) => panic!("started on a taken port"),
    }
    assert!(!dir.path().join("m.db").exists(), "no database was created");
}
