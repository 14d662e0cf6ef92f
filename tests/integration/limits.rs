//! What bounds a caller: a key's rate limit, a revision the database never reached, a body over
//! the size limit, the per-connection call limit within the deadline, the connection cap and the
//! idle timeout.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::common::*;
use pb::api_key_service_client::ApiKeyServiceClient;
use pb::consistency::Requirement;
use pb::directory_service_client::DirectoryServiceClient;

engine_tests!(
    a_key_over_its_rate_is_refused_with_retry_info,
    a_revision_beyond_the_head_is_unknown,
    an_oversized_body_is_resource_exhausted,
    queueing_on_a_connection_counts_against_the_deadline,
    connections_beyond_the_cap_are_closed_and_idle_ones_too
);

fn at_least(revision: i64) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(Requirement::AtLeastAsFresh(revision)),
    })
}

/// A channel of its own: one more TCP connection to the server.
async fn connect(srv: &TestServer) -> Channel {
    Channel::from_shared(format!("http://{}", srv.addr))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect")
}

async fn a_key_over_its_rate_is_refused_with_retry_info(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let created = srv
        .client(ApiKeyServiceClient::new)
        .create_api_key(pb::CreateApiKeyRequest {
            name: "slow".into(),
            scopes: strings(&["directory.read"]),
            rate_limit_per_second: Some(1),
            ..Default::default()
        })
        .await
        .expect("create a limited key")
        .into_inner();
    let key = created.api_key.expect("api_key");
    assert_eq!(key.rate_limit_per_second, Some(1));
    let listed = srv
        .client(ApiKeyServiceClient::new)
        .get_api_key(pb::GetApiKeyRequest {
            key_id: key.id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(listed.rate_limit_per_second, Some(1), "the limit is stored");

    let mut limited = srv.client_with_key(&created.secret, DirectoryServiceClient::new);
    // A bucket of one token refilled once a second: of a quick burst of five, at most the
    // first (and one more per second the burst took) pass; the others are refused.
    let mut refused = Vec::new();
    let mut passed = 0;
    for _ in 0..5 {
        match limited.list_users(pb::ListUsersRequest::default()).await {
            Ok(_) => passed += 1,
            Err(status) => refused.push(status),
        }
    }
    assert!(passed >= 1, "the first call has its token");
    let status = refused.first().expect("a burst over the rate is refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(status).as_deref(), Some("RATE_LIMITED"));
    let delay = status
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(delay <= Duration::from_secs(1), "{delay:?}");
    // After the delay a token is back.
    tokio::time::sleep(delay + Duration::from_millis(50)).await;
    limited
        .list_users(pb::ListUsersRequest::default())
        .await
        .expect("a token is back after RetryInfo's delay");
    // A key without a limit is never refused for its rate.
    let mut unlimited = srv.directory();
    for _ in 0..20 {
        unlimited
            .list_users(pb::ListUsersRequest::default())
            .await
            .expect("unlimited key");
    }
    // 0 is not a rate.
    let status = expect_err(
        srv.client(ApiKeyServiceClient::new)
            .create_api_key(pb::CreateApiKeyRequest {
                name: "zero".into(),
                scopes: strings(&["directory.read"]),
                rate_limit_per_second: Some(0),
                ..Default::default()
            })
            .await,
    );
    assert_invalid(&status, "rate_limit_per_second");
    srv.stop().await;
}

async fn a_revision_beyond_the_head_is_unknown(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "revisions").await;
    let user = create_user(&srv, "rev@example.com").await;
    let member = add_member(&srv, org.id, user.id, pb::MembershipRole::Member).await;
    let head = member.revision;
    let check = |revision| pb::CheckPermissionRequest {
        user_id: user.id,
        team_id: org.id,
        permission: "booking.read".into(),
        consistency: at_least(revision),
    };
    srv.access()
        .check_permission(check(head))
        .await
        .expect("a revision a response returned is known");
    for beyond in [head + 1_000, i64::MAX] {
        let status = expect_err(srv.access().check_permission(check(beyond)).await);
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(reason(&status).as_deref(), Some("REVISION_UNKNOWN"));
        assert_invalid(&status, "consistency.at_least_as_fresh");
        let status = expect_err(
            srv.memberships()
                .list_memberships(pb::ListMembershipsRequest {
                    team_id: org.id,
                    consistency: at_least(beyond),
                    ..Default::default()
                })
                .await,
        );
        assert_eq!(reason(&status).as_deref(), Some("REVISION_UNKNOWN"));
    }
    srv.stop().await;
}

async fn an_oversized_body_is_resource_exhausted(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let status = expect_err(
        srv.directory()
            .create_user(pb::CreateUserRequest {
                email: "big@example.com".into(),
                name: "x".repeat(5 * 1024 * 1024),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(&status).as_deref(), Some("MESSAGE_TOO_LARGE"));
    let users = srv
        .directory()
        .list_users(pb::ListUsersRequest::default())
        .await
        .expect("list")
        .into_inner()
        .users;
    assert!(users.is_empty(), "nothing was stored");
    srv.stop().await;
}

/// Holds the database's write lock from outside the server until dropped: a transaction that
/// has written (SQLite) or locked (PostgreSQL, MariaDB) the event-sequence row every write
/// updates.
async fn hold_the_write_lock(srv: &TestServer) -> sea_orm::DatabaseTransaction {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let store = membership_service::storage::Store::connect(&srv.database_url, 1)
        .await
        .expect("connect");
    let txn = store.conn().begin().await.expect("begin");
    let sql = match srv.engine {
        Engine::Sqlite => "UPDATE event_sequence SET value = value WHERE id = 1",
        _ => "SELECT value FROM event_sequence WHERE id = 1 FOR UPDATE",
    };
    txn.execute_unprepared(sql).await.expect("lock");
    txn
}

async fn queueing_on_a_connection_counts_against_the_deadline(engine: Engine) {
    let Some(srv) = TestServer::start_with(engine, |c| {
        c.concurrency_limit = 1;
        c.request_timeout_ms = 1_000;
    })
    .await
    else {
        return;
    };
    let lock = hold_the_write_lock(&srv).await;
    // Six writes on one connection that serves one call at once: each waits for the lock or
    // for its turn, and every one must end at its deadline — none may be answered later.
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let mut dir = srv.directory();
            tokio::spawn(async move {
                dir.create_user(new_user(&format!("queued{i}@example.com")))
                    .await
                    .map(|_| ())
            })
        })
        .collect();
    // Longer than all six deadlines back to back would be on the old per-connection queue.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    lock.rollback().await.expect("release the lock");
    for call in calls {
        let status = call
            .await
            .expect("join")
            .expect_err("no write could commit");
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        assert_eq!(reason(&status).as_deref(), Some("DEADLINE_EXCEEDED"));
    }
    // With the lock gone the connection serves again.
    srv.directory()
        .create_user(new_user("after@example.com"))
        .await
        .expect("a write after the lock");
    srv.stop().await;
}

async fn connections_beyond_the_cap_are_closed_and_idle_ones_too(engine: Engine) {
    let Some(srv) = TestServer::start_with(engine, |c| {
        c.max_connections = 2;
        c.idle_timeout = membership_service::config::Period(Duration::from_secs(3));
    })
    .await
    else {
        return;
    };
    // An open watch keeps its connection busy, however long no event comes.
    let mut watch = pb::event_service_client::EventServiceClient::with_interceptor(
        connect(&srv).await,
        srv.auth(),
    )
    .watch_events(pb::WatchEventsRequest::default())
    .await
    .expect("watch")
    .into_inner();
    // The second slot: a connection that makes a call and then stays open, quiet.
    let quiet = connect(&srv).await;
    DirectoryServiceClient::with_interceptor(quiet.clone(), srv.auth())
        .list_users(pb::ListUsersRequest::default())
        .await
        .expect("second connection");
    // A third waits: it is not served while both slots are taken …
    let third = Channel::from_shared(format!("http://{}", srv.addr))
        .expect("endpoint")
        .connect_lazy();
    let mut third = DirectoryServiceClient::with_interceptor(third, srv.auth());
    let waiting = tokio::spawn(async move {
        third
            .list_users(pb::ListUsersRequest::default())
            .await
            .map(|_| third)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a connection over the cap was served"
    );
    // … until the quiet connection, still open on the client's side, is closed by the server's
    // idle timeout and frees its slot.
    let third = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the waiting connection is served once a slot frees")
        .expect("join")
        .expect("the waiting call succeeds");
    // A raw connection that never sends a byte is closed once idle.
    let mut raw = tokio::net::TcpStream::connect(srv.addr)
        .await
        .expect("connect");
    // The server speaks first (its HTTP/2 settings), then closes: read to the end.
    let mut sent = Vec::new();
    match tokio::time::timeout(Duration::from_secs(30), raw.read_to_end(&mut sent)).await {
        Ok(_) => {}
        Err(_) => panic!("the server kept a silent connection open"),
    }
    // The watch outlived idle timeouts and still delivers.
    let mut third = third;
    third
        .create_user(new_user("watched@example.com"))
        .await
        .expect("a write for the watch");
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), watch.message())
            .await
            .expect("the watch delivers")
            .expect("the watch is still open")
            .expect("an event");
        if event.event.is_some_and(|e| e.kind == "user.created") {
            break;
        }
    }
    drop(quiet);
    srv.stop().await;
}

engine_tests!(an_exhausted_pool_is_overload_not_an_outage);

/// Every pool connection busy until the acquire timeout is load: RESOURCE_EXHAUSTED
/// `OVERLOADED` with RetryInfo, never UNAVAILABLE (the database is up). On SQLite writes queue
/// for the one writer before they take a connection, so there the pool never runs dry. (On
/// PostgreSQL a pool of one used to be starved for good by the feed's LISTEN connection.)
async fn an_exhausted_pool_is_overload_not_an_outage(engine: Engine) {
    if engine == Engine::Sqlite {
        return;
    }
    let Some(srv) = TestServer::start_with(engine, |c| {
        c.db_max_connections = 1;
        c.request_timeout_ms = 60_000;
    })
    .await
    else {
        return;
    };
    let lock = hold_the_write_lock(&srv).await;
    // This write takes the pool's only connection and waits on the lock …
    let mut first = srv.directory();
    let holding =
        tokio::spawn(async move { first.create_user(new_user("holder@example.com")).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // … so this one finds no connection until the pool's acquire timeout.
    let mut tries = 0;
    let status = loop {
        tries += 1;
        let status = expect_err(
            srv.directory()
                .create_user(new_user(&format!("starved{tries}@example.com")))
                .await,
        );
        // Until the first write holds the connection, the second may get it and block too:
        // then it is the one answered late; try again.
        if status.code() != Code::DeadlineExceeded || tries > 5 {
            break status;
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(&status).as_deref(), Some("OVERLOADED"));
    assert!(status.get_error_details().retry_info().is_some());
    lock.rollback().await.expect("release the lock");
    // The holder commits once the lock is gone, unless the health probe or the feed had the
    // connection when it asked: then it was refused the same way.
    if let Err(status) = holding.await.expect("join") {
        assert_eq!(reason(&status).as_deref(), Some("OVERLOADED"), "{status:?}");
    }
    // Writes work again once the pool has a free connection.
    let mut attempt = 0;
    while let Err(status) = srv
        .directory()
        .create_user(new_user(&format!("after{attempt}@example.com")))
        .await
    {
        assert_eq!(reason(&status).as_deref(), Some("OVERLOADED"), "{status:?}");
        attempt += 1;
        assert!(attempt < 10, "the pool never came free");
    }
    srv.stop().await;
}
