//! Load generator: seeds a realistic data set straight into the database, starts two
//! `membership-service serve` processes on it, and drives a mix of RPCs over C concurrent streams
//! for D seconds each, printing throughput, latency percentiles and each RPC's throughput as a
//! ratio of the empty-RPC baseline (`grpc.health.v1.Health/Check`) measured in the same run.
//!
//! `--scenario overload` starts one server with a small `--max-in-flight` and a
//! `--request-timeout-ms`, measures what it sustains closed-loop, then offers a multiple of that
//! at a fixed arrival rate (open-loop), and reports what was admitted, shed and timed out, the
//! admitted calls' latency, the server's RSS, and whether every acknowledged create is stored.
//!
//! `--scenario import` starts one server on an empty database and imports
//! `--import-memberships` users with ImportUsers, then as many memberships of one organization
//! with ImportMemberships, 1,000 entries a call, and prints users/s and memberships/s.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use membership_service::domain::page::{PageCursor, PagedList, encode_token};
use membership_service::pb;
use membership_service::pb::consistency::Requirement;
use membership_service::storage::Store;
use membership_service::storage::entities::{membership, role, team, user};
use rand::Rng;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect, TransactionTrait,
};
use tonic::Status;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

const KEY: &str = "mk_bench_admin_key";

#[derive(Debug, Parser)]
#[command(about = "Seeds a data set and measures the service's hot paths")]
struct Args {
    /// Database to seed and serve (must be empty; SQLite default: a fresh temp file).
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long, default_value_t = 10_000)]
    users: i64,
    #[arg(long, default_value_t = 200)]
    organizations: i64,
    #[arg(long, default_value_t = 2_000)]
    teams: i64,
    #[arg(long, default_value_t = 50_000)]
    memberships: i64,
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Concurrency of the read measurements.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Concurrency of the write measurement.
    #[arg(long, default_value_t = 32)]
    write_concurrency: usize,
    /// The server binary (default: `membership-service` beside this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Tries of the write-then-read-on-the-other-instance measurement.
    #[arg(long, default_value_t = 2_000)]
    fresh_tries: usize,
    /// Members of one extra organization, for the first-page/last-page pagination measurement.
    #[arg(long, default_value_t = 5_000)]
    big_team: i64,
    #[arg(long, value_enum, default_value_t = Scenario::HotPaths)]
    scenario: Scenario,
    /// Overload: the server's `--max-in-flight`.
    #[arg(long, default_value_t = 64)]
    max_in_flight: u32,
    /// Overload: the server's `--request-timeout-ms`.
    #[arg(long, default_value_t = 100)]
    request_timeout_ms: u64,
    /// Overload: the open-loop arrival rate, as a multiple of the closed-loop rate.
    #[arg(long, default_value_t = 10.0)]
    overload_factor: f64,
    /// Overload: streams of the closed-loop measurement of what the server sustains.
    #[arg(long, default_value_t = 16)]
    sustain_concurrency: usize,
    /// Overload: HTTP/2 connections the open-loop arrivals are spread over.
    #[arg(long, default_value_t = 8)]
    overload_connections: usize,
    /// Import: how many memberships (and users) to import.
    #[arg(long, default_value_t = 100_000)]
    import_memberships: usize,
    /// Import: calls in flight (they queue on the organization lock; two overlap the transfer of
    /// one call with the transaction of the other).
    #[arg(long, default_value_t = 2)]
    import_in_flight: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Each hot path as a ratio of the empty RPC, two instances, freshness and the feed.
    HotPaths,
    /// One instance with a small admission limit, offered several times what it sustains.
    Overload,
    /// Bulk imports of users, then of memberships of one organization, into an empty database.
    Import,
}

#[derive(Clone)]
struct Auth;

impl Interceptor for Auth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert(
            "authorization",
            MetadataValue::from_static("Bearer mk_bench_admin_key"),
        );
        Ok(request)
    }
}

/// The seeded data the workloads pick from.
struct DataSet {
    /// (membership id, user id, team id, organization id, is owner)
    memberships: Vec<(i64, i64, i64, i64, bool)>,
    largest_team: i64,
}

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn rss_mb(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    }
}

async fn start_server(bin: &PathBuf, database_url: &str, extra: &[String]) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(bin)
        .args(["serve", "--listen", &addr, "--database-url", database_url])
        .args(extra)
        .env("MEMBERSHIP_BOOTSTRAP_KEY", KEY)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the server binary");
    let server = Server { child, addr };
    for _ in 0..200 {
        if let Ok(channel) = Channel::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect()
            .await
            && HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await
                .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server at {} did not start", server.addr);
}

async fn channels(addr: &str, n: usize) -> Vec<Channel> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            Channel::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
                .expect("connect"),
        );
    }
    out
}

async fn seed(store: &Store, args: &Args) -> DataSet {
    let db = store.conn();
    let now = chrono::Utc::now().timestamp_micros();
    let txn = db.begin().await.expect("begin");
    for chunk in (1..=args.users).collect::<Vec<_>>().chunks(1000) {
        let rows = chunk.iter().map(|i| user::ActiveModel {
            id: Set(*i),
            email: Set(format!("user{i}@example.com")),
            username: Set(Some(format!("user{i}"))),
            name: Set(format!("User {i}")),
            first_name: Set("User".into()),
            last_name: Set(format!("{i}")),
            avatar_url: Set(String::new()),
            bio: Set(String::new()),
            metadata: Set("{}".into()),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        });
        user::Entity::insert_many(rows)
            .exec(&txn)
            .await
            .expect("users");
    }
    let teams_per_org = (args.teams / args.organizations).max(1);
    let mut team_rows = Vec::new();
    let mut next_team = 1;
    let mut org_teams: Vec<(i64, Vec<i64>)> = Vec::new();
    for o in 0..args.organizations {
        let org_id = next_team;
        next_team += 1;
        team_rows.push((org_id, None, format!("org-{o}")));
        let mut subs = Vec::new();
        for t in 0..teams_per_org {
            subs.push(next_team);
            team_rows.push((next_team, Some(org_id), format!("team-{t}")));
            next_team += 1;
        }
        org_teams.push((org_id, subs));
    }
    let big_org = next_team;
    team_rows.push((big_org, None, "big-org".to_string()));
    for chunk in team_rows.chunks(1000) {
        let rows = chunk.iter().map(|(id, parent, slug)| team::ActiveModel {
            id: Set(*id),
            parent_id: Set(*parent),
            scope_id: Set(parent.unwrap_or(0)),
            name: Set(slug.clone()),
            slug: Set(slug.clone()),
            image_url: Set(String::new()),
            max_allowed_memberships: Set(0),
            auto_accept_email_domain: Set(None),
            admin_delete_enabled: Set(true),
            public_metadata: Set("{}".into()),
            private_metadata: Set("{}".into()),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        });
        team::Entity::insert_many(rows)
            .exec(&txn)
            .await
            .expect("teams");
    }
    // Two custom roles per organization.
    let mut role_rows = Vec::new();
    for (org_id, _) in &org_teams {
        for (key, perms) in [
            ("booking-manager", r#"["booking.*","eventType.read"]"#),
            ("auditor", r#"["*.read"]"#),
        ] {
            role_rows.push(role::ActiveModel {
                id: Set(format!("role_{org_id}_{key}")),
                key: Set(key.into()),
                team_id: Set(Some(*org_id)),
                scope_id: Set(*org_id),
                name: Set(key.into()),
                color: Set(None),
                description: Set(None),
                role_type: Set("CUSTOM".into()),
                base_role: Set(None),
                permissions: Set(perms.into()),
                created_at: Set(now),
                updated_at: Set(now),
                version: Set(1),
            });
        }
    }
    for chunk in role_rows.chunks(500) {
        role::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await
            .expect("roles");
    }
    // Every user joins one organization; the rest of the memberships go to that organization's
    // sub-teams. The first member of each organization owns it.
    let mut rng = rand::rng();
    let mut rows = Vec::new();
    let mut next_id = 1;
    let per_user_subs = ((args.memberships - args.users).max(0) / args.users.max(1)) as usize;
    let mut owners = std::collections::HashSet::new();
    for u in 1..=args.users {
        let (org_id, subs) = &org_teams[((u - 1) % args.organizations) as usize];
        let owner = owners.insert(*org_id);
        let (role, role_id, role_key) = if owner {
            ("OWNER", "owner_role".to_string(), "owner".to_string())
        } else {
            match rng.random_range(0..10) {
                0 => ("ADMIN", "admin_role".to_string(), "admin".to_string()),
                1 => (
                    "MEMBER",
                    format!("role_{org_id}_booking-manager"),
                    "booking-manager".to_string(),
                ),
                2 => (
                    "MEMBER",
                    format!("role_{org_id}_auditor"),
                    "auditor".to_string(),
                ),
                _ => ("MEMBER", "member_role".to_string(), "member".to_string()),
            }
        };
        rows.push((next_id, u, *org_id, *org_id, role, role_id, role_key, owner));
        next_id += 1;
        for s in 0..per_user_subs.min(subs.len()) {
            let team_id = subs[(u as usize + s) % subs.len()];
            rows.push((
                next_id,
                u,
                team_id,
                *org_id,
                "MEMBER",
                "member_role".into(),
                "member".into(),
                false,
            ));
            next_id += 1;
        }
    }
    for u in 1..=args.big_team.min(args.users) {
        let (role, role_id, role_key) = if u == 1 {
            ("OWNER", "owner_role", "owner")
        } else {
            ("MEMBER", "member_role", "member")
        };
        rows.push((
            next_id,
            u,
            big_org,
            big_org,
            role,
            role_id.into(),
            role_key.into(),
            u == 1,
        ));
        next_id += 1;
    }
    for chunk in rows.chunks(1000) {
        let models =
            chunk.iter().map(
                |(id, u, t, o, role, role_id, role_key, _)| membership::ActiveModel {
                    id: Set(*id),
                    team_id: Set(*t),
                    organization_id: Set(*o),
                    user_id: Set(*u),
                    accepted: Set(true),
                    role: Set(role.to_string()),
                    role_id: Set(role_id.clone()),
                    role_key: Set(role_key.clone()),
                    disable_impersonation: Set(false),
                    auto_record_calls: Set("UNSET".into()),
                    public_metadata: Set("{}".into()),
                    private_metadata: Set("{}".into()),
                    expires_at: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                    version: Set(1),
                },
            );
        membership::Entity::insert_many(models)
            .exec(&txn)
            .await
            .expect("memberships");
    }
    txn.commit().await.expect("commit");
    if store.backend() == sea_orm::DbBackend::Postgres {
        // Explicit ids leave the sequences behind; later creates need them past the seed.
        for table in ["users", "teams", "memberships"] {
            db.execute_unprepared(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
            ))
            .await
            .expect("setval");
        }
    }
    let mut per_team = std::collections::HashMap::new();
    for r in &rows {
        *per_team.entry(r.2).or_insert(0) += 1;
    }
    let largest_team = per_team
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(t, _)| t)
        .unwrap_or(1);
    DataSet {
        memberships: rows.iter().map(|r| (r.0, r.1, r.2, r.3, r.7)).collect(),
        largest_team,
    }
}

/// Latencies in microseconds, sorted.
struct Measured {
    name: String,
    requests: usize,
    items_per_request: usize,
    seconds: f64,
    latencies: Vec<u64>,
    errors: usize,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i] as f64 / 1000.0
    }
}

/// What a workload's call returns: a bare verdict (the hot paths), or the answer with the id a
/// create returned (0 for other calls), so that the overload scenario can classify refusals and
/// check acknowledged writes.
trait Answer {
    fn succeeded(&self) -> bool;
}

impl Answer for bool {
    fn succeeded(&self) -> bool {
        *self
    }
}

impl Answer for Result<i64, Status> {
    fn succeeded(&self) -> bool {
        self.is_ok()
    }
}

/// Runs `call` from `concurrency` tasks for `duration`, spread over the channels.
async fn drive<F, Fut>(
    name: &str,
    channels: &[Channel],
    concurrency: usize,
    duration: Duration,
    items_per_request: usize,
    call: F,
) -> Measured
where
    F: Fn(Channel, u64) -> Fut + Send + Sync + 'static,
    Fut: Future + Send,
    Fut::Output: Answer,
{
    let call = Arc::new(call);
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let channel = channels[t % channels.len()].clone();
        let call = Arc::clone(&call);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut i = t as u64 * 1_000_003;
            while Instant::now() < deadline {
                let at = Instant::now();
                if call(channel.clone(), i).await.succeeded() {
                    latencies.push(at.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
                i += 1;
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await.expect("task");
        latencies.extend(l);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Measured {
        name: name.to_string(),
        requests: latencies.len(),
        items_per_request,
        seconds,
        latencies,
        errors,
    }
}

fn print_row(m: &Measured, baseline: f64) {
    println!(
        "| {:<44} | {:>9.0} | {:>9.0} | {:>5.2} | {:>7.3} | {:>7.3} | {:>7.3} | {:>6} |",
        m.name,
        m.rate(),
        m.rate() * m.items_per_request as f64,
        m.rate() / baseline,
        m.pct(0.5),
        m.pct(0.99),
        m.pct(0.999),
        m.errors
    );
}

fn header() {
    println!(
        "| {:<44} | {:>9} | {:>9} | {:>5} | {:>7} | {:>7} | {:>7} | {:>6} |",
        "workload", "req/s", "items/s", "x E", "p50 ms", "p99 ms", "p999 ms", "errors"
    );
    println!(
        "|{:-<46}|{:-<11}|{:-<11}|{:-<7}|{:-<9}|{:-<9}|{:-<9}|{:-<8}|",
        "", "", "", "", "", "", "", ""
    );
}

fn consistency(fully: bool) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(if fully {
            Requirement::FullyConsistent(true)
        } else {
            Requirement::MinimizeLatency(true)
        }),
    })
}

const PERMISSIONS: [&str; 6] = [
    "booking.read",
    "team.update",
    "eventType.delete",
    "organization.read",
    "role.create",
    "team.listMembers",
];

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let temp = std::env::temp_dir().join(format!("membership-bench-{}.db", std::process::id()));
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", temp.display()));
    let server_bin = args.server_bin.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .expect("own path")
            .with_file_name("membership-service")
    });

    let store = Store::connect(&database_url, 4).await.expect("connect");
    store.migrate().await.expect("migrate");
    if args.scenario == Scenario::Import {
        import(&args, &store, &server_bin, &database_url).await;
        drop(store);
        remove_sqlite_file(&args, &temp);
        return;
    }
    let seeding = Instant::now();
    let data = Arc::new(seed(&store, &args).await);
    eprintln!(
        "seeded {} users, {} organizations, {} teams, {} memberships in {:.1}s",
        args.users,
        args.organizations,
        args.teams,
        data.memberships.len(),
        seeding.elapsed().as_secs_f64()
    );

    if args.scenario == Scenario::Overload {
        overload(&args, &store, &data, &server_bin, &database_url).await;
        drop(store);
        remove_sqlite_file(&args, &temp);
        return;
    }

    let a = start_server(&server_bin, &database_url, &[]).await;
    let b = start_server(&server_bin, &database_url, &[]).await;
    let chans = channels(&a.addr, 4).await;
    let single = channels(&a.addr, 1).await;
    let d = Duration::from_secs(args.duration);
    let c = args.concurrency;

    let health = |ch: Channel, _| async move {
        HealthClient::new(ch)
            .check(HealthCheckRequest::default())
            .await
            .is_ok()
    };
    let check = |fully: bool| {
        let data = Arc::clone(&data);
        move |ch: Channel, i: u64| {
            let (_, user, team, _, _) =
                data.memberships[(i as usize * 7919) % data.memberships.len()];
            let permission = PERMISSIONS[(i % PERMISSIONS.len() as u64) as usize];
            async move {
                pb::access_service_client::AccessServiceClient::with_interceptor(ch, Auth)
                    .check_permission(pb::CheckPermissionRequest {
                        user_id: user,
                        team_id: team,
                        permission: permission.into(),
                        consistency: consistency(fully),
                    })
                    .await
                    .is_ok()
            }
        }
    };
    let get = |fully: bool| {
        let data = Arc::clone(&data);
        move |ch: Channel, i: u64| {
            let (id, _, _, _, _) = data.memberships[(i as usize * 7919) % data.memberships.len()];
            async move {
                pb::membership_service_client::MembershipServiceClient::with_interceptor(ch, Auth)
                    .get_membership(pb::GetMembershipRequest {
                        member: Some(pb::get_membership_request::Member::MembershipId(id)),
                        consistency: consistency(fully),
                        ..Default::default()
                    })
                    .await
                    .is_ok()
            }
        }
    };

    // Warm the caches with every membership once, so that the cached rows measure the hit path.
    let warming = Instant::now();
    warm(&chans, &data).await;
    eprintln!(
        "warmed the caches in {:.1}s",
        warming.elapsed().as_secs_f64()
    );

    println!("\n## Reads at {c} in flight (E = empty RPC)\n");
    header();
    let baseline = drive("grpc.health.v1.Health/Check (E)", &chans, c, d, 1, health).await;
    let e = baseline.rate();
    print_row(&baseline, e);
    for (name, fully) in [
        ("CheckPermission minimize_latency", false),
        ("CheckPermission fully_consistent", true),
    ] {
        print_row(&drive(name, &chans, c, d, 1, check(fully)).await, e);
    }
    for (name, fully) in [
        ("GetMembership minimize_latency", false),
        ("GetMembership fully_consistent", true),
    ] {
        print_row(&drive(name, &chans, c, d, 1, get(fully)).await, e);
    }
    let batch = {
        let data = Arc::clone(&data);
        move |ch: Channel, i: u64| {
            let checks = (0..100u64)
                .map(|k| {
                    let (_, user, team, _, _) =
                        data.memberships[((i * 100 + k) as usize * 7919) % data.memberships.len()];
                    pb::CheckPermissionRequest {
                        user_id: user,
                        team_id: team,
                        permission: PERMISSIONS[(k % 6) as usize].into(),
                        consistency: None,
                    }
                })
                .collect();
            async move {
                pb::access_service_client::AccessServiceClient::with_interceptor(ch, Auth)
                    .batch_check_permissions(pb::BatchCheckPermissionsRequest {
                        checks,
                        consistency: None,
                    })
                    .await
                    .is_ok()
            }
        }
    };
    print_row(
        &drive(
            "BatchCheckPermissions x100 (items = checks)",
            &chans,
            c,
            d,
            100,
            batch,
        )
        .await,
        e,
    );

    // Pages of 100 of LookupUsers over the big organization's members, from spread-out places.
    let lookup = |fully: bool| {
        let team_id = data.largest_team;
        let span = (args.big_team as u64).saturating_sub(100).max(1);
        move |ch: Channel, i: u64| {
            let after = (i * 7919) % span;
            let page_token = if after == 0 {
                String::new()
            } else {
                encode_token(PageCursor {
                    list: PagedList::PermittedUsers,
                    after: after as i64,
                })
            };
            async move {
                pb::access_service_client::AccessServiceClient::with_interceptor(ch, Auth)
                    .lookup_users(pb::LookupUsersRequest {
                        team_id,
                        permission: "team.read".into(),
                        page_size: 100,
                        page_token,
                        consistency: consistency(fully),
                    })
                    .await
                    .is_ok()
            }
        }
    };
    for (name, fully) in [
        ("LookupUsers page of 100 minimize_latency", false),
        ("LookupUsers page of 100 fully_consistent", true),
    ] {
        print_row(&drive(name, &chans, c, d, 100, lookup(fully)).await, e);
    }

    println!("\n## One request in flight\n");
    header();
    let baseline1 = drive("grpc.health.v1.Health/Check (E)", &single, 1, d, 1, health).await;
    print_row(&baseline1, baseline1.rate());
    print_row(
        &drive(
            "CheckPermission minimize_latency",
            &single,
            1,
            d,
            1,
            check(false),
        )
        .await,
        baseline1.rate(),
    );
    print_row(
        &drive(
            "GetMembership minimize_latency",
            &single,
            1,
            d,
            1,
            get(false),
        )
        .await,
        baseline1.rate(),
    );

    println!("\n## Writes at {} in flight\n", args.write_concurrency);
    header();
    let non_owners: Arc<Vec<i64>> = Arc::new(
        data.memberships
            .iter()
            .filter(|m| !m.4)
            .map(|m| m.0)
            .collect(),
    );
    let update = {
        let ids = Arc::clone(&non_owners);
        move |ch: Channel, i: u64| {
            let id = ids[(i as usize * 7919) % ids.len()];
            async move {
                pb::membership_service_client::MembershipServiceClient::with_interceptor(ch, Auth)
                    .update_membership(pb::UpdateMembershipRequest {
                        member: Some(pb::update_membership_request::Member::MembershipId(id)),
                        disable_impersonation: Some(i.is_multiple_of(2)),
                        ..Default::default()
                    })
                    .await
                    .is_ok()
            }
        }
    };
    print_row(
        &drive(
            "UpdateMembership",
            &chans,
            args.write_concurrency,
            d,
            1,
            update,
        )
        .await,
        e,
    );

    println!("\n## Freshness and the feed across two instances\n");
    fresh_and_feed(&a, &b, &non_owners, args.fresh_tries).await;

    println!(
        "\n## ListMemberships pages (team {}, page_size 50)\n",
        data.largest_team
    );
    list_pages(&a, data.largest_team).await;

    println!(
        "\nServer RSS after the run: A {:.0} MB, B {:.0} MB",
        a.rss_mb().unwrap_or(f64::NAN),
        b.rss_mb().unwrap_or(f64::NAN)
    );
    drop(a);
    drop(b);
    remove_sqlite_file(&args, &temp);
}

/// The temp file the bench made when no `--database-url` was given.
fn remove_sqlite_file(args: &Args, temp: &std::path::Path) {
    if args.database_url.is_none() {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", temp.display()));
        }
    }
}

/// Reads every membership and checks one permission of each once, from 64 tasks.
async fn warm(channels: &[Channel], data: &Arc<DataSet>) {
    let tasks = 64;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let channel = channels[t % channels.len()].clone();
        let data = Arc::clone(data);
        handles.push(tokio::spawn(async move {
            let mut members =
                pb::membership_service_client::MembershipServiceClient::with_interceptor(
                    channel.clone(),
                    Auth,
                );
            let mut access =
                pb::access_service_client::AccessServiceClient::with_interceptor(channel, Auth);
            for &(id, user, team, _, _) in data.memberships.iter().skip(t).step_by(tasks) {
                let _ = members
                    .get_membership(pb::GetMembershipRequest {
                        member: Some(pb::get_membership_request::Member::MembershipId(id)),
                        ..Default::default()
                    })
                    .await;
                let _ = access
                    .check_permission(pb::CheckPermissionRequest {
                        user_id: user,
                        team_id: team,
                        permission: "booking.read".into(),
                        consistency: None,
                    })
                    .await;
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
}

/// Writes through instance A and reads `at_least_as_fresh` through instance B; also how long
/// B's WatchEvents takes to deliver A's commit.
async fn fresh_and_feed(a: &Server, b: &Server, ids: &[i64], tries: usize) {
    let ch_a = channels(&a.addr, 1).await.remove(0);
    let ch_b = channels(&b.addr, 1).await.remove(0);
    let mut writer =
        pb::membership_service_client::MembershipServiceClient::with_interceptor(ch_a, Auth);
    let mut reader = pb::membership_service_client::MembershipServiceClient::with_interceptor(
        ch_b.clone(),
        Auth,
    );
    let mut watcher = pb::event_service_client::EventServiceClient::with_interceptor(ch_b, Auth);
    let mut read_latencies = Vec::new();
    let mut delivery = Vec::new();
    let mut stale = 0;
    let mut rng = rand::rng();
    for i in 0..tries {
        let id = ids[rng.random_range(0..ids.len())];
        let wanted = i.is_multiple_of(2);
        let Ok(written) = writer
            .update_membership(pb::UpdateMembershipRequest {
                member: Some(pb::update_membership_request::Member::MembershipId(id)),
                disable_impersonation: Some(wanted),
                ..Default::default()
            })
            .await
        else {
            continue;
        };
        let revision = written.into_inner().revision;
        let read_at = Instant::now();
        let read = reader
            .get_membership(pb::GetMembershipRequest {
                member: Some(pb::get_membership_request::Member::MembershipId(id)),
                consistency: Some(pb::Consistency {
                    requirement: Some(Requirement::AtLeastAsFresh(revision)),
                }),
                ..Default::default()
            })
            .await;
        read_latencies.push(read_at.elapsed().as_micros() as u64);
        if read.map(|r| r.into_inner().disable_impersonation).ok() != Some(wanted) {
            stale += 1;
        }
    }
    // Commit-to-delivery: a watcher on B from the current end of the feed, writes on A, one at
    // a time.
    let start = writer
        .update_membership(pb::UpdateMembershipRequest {
            member: Some(pb::update_membership_request::Member::MembershipId(ids[0])),
            disable_impersonation: Some(true),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().revision)
        .unwrap_or(0);
    let mut stream = watcher
        .watch_events(pb::WatchEventsRequest {
            after_sequence: start,
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    let mut last = start;
    for _ in 0..200u32 {
        let id = ids[rng.random_range(0..ids.len())];
        // The current value, flipped: every write records an event.
        let Ok(current) = reader
            .get_membership(pb::GetMembershipRequest {
                member: Some(pb::get_membership_request::Member::MembershipId(id)),
                consistency: Some(pb::Consistency {
                    requirement: Some(Requirement::FullyConsistent(true)),
                }),
                ..Default::default()
            })
            .await
        else {
            continue;
        };
        let Ok(written) = writer
            .update_membership(pb::UpdateMembershipRequest {
                member: Some(pb::update_membership_request::Member::MembershipId(id)),
                disable_impersonation: Some(!current.into_inner().disable_impersonation),
                ..Default::default()
            })
            .await
        else {
            continue;
        };
        let committed = Instant::now();
        let revision = written.into_inner().revision;
        if revision <= last {
            continue;
        }
        last = revision;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
                Ok(Ok(Some(msg))) if msg.event.as_ref().is_some_and(|e| e.sequence >= revision) => {
                    delivery.push(committed.elapsed().as_micros() as u64);
                    break;
                }
                Ok(Ok(Some(_))) => continue,
                _ => break,
            }
        }
    }
    read_latencies.sort_unstable();
    delivery.sort_unstable();
    let pct = |v: &Vec<u64>, p: f64| {
        if v.is_empty() {
            f64::NAN
        } else {
            v[((v.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
        }
    };
    println!(
        "at_least_as_fresh read on B right after a write on A: {} tries, {} stale, p50 {:.3} ms, p99 {:.3} ms",
        read_latencies.len(),
        stale,
        pct(&read_latencies, 0.5),
        pct(&read_latencies, 0.99)
    );
    println!(
        "WatchEvents on B, from A's write response to delivery: {} events, p50 {:.3} ms, p99 {:.3} ms",
        delivery.len(),
        pct(&delivery, 0.5),
        pct(&delivery, 0.99)
    );
}

async fn list_pages(a: &Server, team_id: i64) {
    let ch = channels(&a.addr, 1).await.remove(0);
    let mut client =
        pb::membership_service_client::MembershipServiceClient::with_interceptor(ch, Auth);
    let mut token = String::new();
    let mut pages = Vec::new();
    loop {
        let at = Instant::now();
        let Ok(page) = client
            .list_memberships(pb::ListMembershipsRequest {
                team_id,
                page_size: 50,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
        else {
            break;
        };
        pages.push(at.elapsed().as_micros() as f64 / 1000.0);
        token = page.into_inner().next_page_token;
        if token.is_empty() {
            break;
        }
    }
    println!(
        "{} pages; first page {:.3} ms, last page {:.3} ms",
        pages.len(),
        pages.first().copied().unwrap_or(f64::NAN),
        pages.last().copied().unwrap_or(f64::NAN)
    );
}

/// What one open-loop period saw. Latencies in microseconds.
struct Offered {
    sent: usize,
    seconds: f64,
    ok: Vec<u64>,
    shed: usize,
    /// Every other outcome, by code and ErrorInfo reason, with its latencies.
    errors: BTreeMap<String, Vec<u64>>,
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

/// Offers `call` at a fixed arrival rate for `duration`, whatever the answers do: each arrival is
/// its own task, so a slow or refused call never delays the next one (unlike `drive`). Arrivals
/// are spread round-robin over the channels; a call unanswered after `patience` counts as such.
async fn open_loop<F, Fut>(
    channels: &[Channel],
    rate: f64,
    duration: Duration,
    patience: Duration,
    call: F,
) -> Offered
where
    F: Fn(Channel, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<i64, Status>> + Send + 'static,
{
    let call = Arc::new(call);
    let mut tasks = Vec::new();
    let started = Instant::now();
    let mut sent = 0u64;
    loop {
        let elapsed = started.elapsed();
        if elapsed >= duration {
            break;
        }
        // The arrivals due by now, including any the generator fell behind on (bounded per
        // tick, so that it still yields to the tasks it spawned).
        let due = ((elapsed.as_secs_f64() * rate) as u64).min(sent + 5_000);
        while sent < due {
            let channel = channels[sent as usize % channels.len()].clone();
            let call = Arc::clone(&call);
            let i = sent;
            tasks.push(tokio::spawn(async move {
                let at = Instant::now();
                let answer = tokio::time::timeout(patience, call(channel, i)).await;
                (at.elapsed().as_micros() as u64, answer)
            }));
            sent += 1;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut out = Offered {
        sent: sent as usize,
        seconds,
        ok: Vec::new(),
        shed: 0,
        errors: BTreeMap::new(),
    };
    for task in tasks {
        let (latency, answer) = task.await.expect("task");
        match answer {
            Ok(Ok(_)) => out.ok.push(latency),
            Ok(Err(status)) => {
                let reason = status
                    .get_error_details()
                    .error_info()
                    .map(|i| i.reason.clone())
                    .unwrap_or_else(|| "no ErrorInfo".into());
                if status.code() == tonic::Code::ResourceExhausted && reason == "OVERLOADED" {
                    out.shed += 1;
                } else {
                    out.errors
                        .entry(format!("{:?} {reason}", status.code()))
                        .or_default()
                        .push(latency);
                }
            }
            Err(_) => out
                .errors
                .entry(format!("no answer in {} s", patience.as_secs()))
                .or_default()
                .push(latency),
        }
    }
    out.ok.sort_unstable();
    for latencies in out.errors.values_mut() {
        latencies.sort_unstable();
    }
    out
}

/// Connections for the open-loop arrivals, with a client-side buffer large enough that the
/// channel's own queue never holds an arrival back.
async fn wide_channels(addr: &str, n: usize) -> Vec<Channel> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .buffer_size(1 << 16)
                .connect()
                .await
                .expect("connect"),
        );
    }
    out
}

/// Closed-loop at `--sustain-concurrency`, then open-loop at `--overload-factor` times the rate
/// it reached; prints the table row and returns the breakdown of the other errors.
async fn overload_phase<F, Fut>(
    name: &str,
    args: &Args,
    server: &Server,
    closed: &[Channel],
    open: &[Channel],
    call: F,
) -> String
where
    F: Fn(Channel, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<i64, Status>> + Send + 'static,
{
    let d = Duration::from_secs(args.duration);
    let deadline_us = args.request_timeout_ms * 1000;
    // Long enough that only a call the server never answers ends here, not one it answers late.
    let patience = Duration::from_secs(5).max(Duration::from_millis(args.request_timeout_ms * 20));
    let sustained = drive(name, closed, args.sustain_concurrency, d, 1, call.clone()).await;
    // Let the closed loop's last calls finish before the arrivals start.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let target = sustained.rate() * args.overload_factor;
    let offered = open_loop(open, target, d, patience, call).await;
    let sent = offered.sent.max(1) as f64;
    let other: usize = offered.errors.values().map(Vec::len).sum();
    println!(
        "| {name} | {:.0}{} | {:.1} / {:.1} | {:.0} ({:.0}) | {:.0} | {:.2} | {:.1}% | {} ({:.1}%) | {:.1} / {:.1} | {} | {:.0} |",
        sustained.rate(),
        if sustained.errors > 0 {
            format!(" ({} errors)", sustained.errors)
        } else {
            String::new()
        },
        sustained.pct(0.5),
        sustained.pct(0.99),
        offered.sent as f64 / offered.seconds,
        target,
        offered.ok.len() as f64 / offered.seconds,
        offered.ok.len() as f64 / offered.seconds / sustained.rate(),
        offered.shed as f64 * 100.0 / sent,
        other,
        other as f64 * 100.0 / sent,
        pct(&offered.ok, 0.5),
        pct(&offered.ok, 0.99),
        offered.ok.iter().filter(|&&l| l > deadline_us).count(),
        server.rss_mb().unwrap_or(f64::NAN),
    );
    let mut breakdown = format!(
        "{name}: {} offered, {} OK, {} shed (RESOURCE_EXHAUSTED OVERLOADED)",
        offered.sent,
        offered.ok.len(),
        offered.shed
    );
    for (what, latencies) in &offered.errors {
        breakdown.push_str(&format!(
            ", {} {what} (p50 {:.1} ms, max {:.1} ms)",
            latencies.len(),
            pct(latencies, 0.5),
            pct(latencies, 1.0)
        ));
    }
    breakdown
}

/// One server with `--max-in-flight` and `--request-timeout-ms`, each workload closed-loop then
/// overloaded open-loop; every create the server acknowledged must be in the database after the
/// server is killed.
async fn overload(
    args: &Args,
    store: &Store,
    data: &Arc<DataSet>,
    server_bin: &PathBuf,
    database_url: &str,
) {
    let server = start_server(
        server_bin,
        database_url,
        &[
            "--max-in-flight".into(),
            args.max_in_flight.to_string(),
            "--request-timeout-ms".into(),
            args.request_timeout_ms.to_string(),
        ],
    )
    .await;
    let closed = channels(&server.addr, 4).await;
    let open = wide_channels(&server.addr, args.overload_connections.max(1)).await;
    let rss_started = server.rss_mb().unwrap_or(f64::NAN);
    let warming = Instant::now();
    warm(&closed, data).await;
    eprintln!(
        "warmed the caches in {:.1}s",
        warming.elapsed().as_secs_f64()
    );
    let rss_warm = server.rss_mb().unwrap_or(f64::NAN);

    let check = {
        let data = Arc::clone(data);
        move |ch: Channel, i: u64| {
            let (_, user, team, _, _) =
                data.memberships[(i as usize * 7919) % data.memberships.len()];
            let permission = PERMISSIONS[(i % PERMISSIONS.len() as u64) as usize];
            async move {
                pb::access_service_client::AccessServiceClient::with_interceptor(ch, Auth)
                    .check_permission(pb::CheckPermissionRequest {
                        user_id: user,
                        team_id: team,
                        permission: permission.into(),
                        consistency: consistency(false),
                    })
                    .await
                    .map(|_| 0)
            }
        }
    };
    let get = {
        let data = Arc::clone(data);
        move |ch: Channel, i: u64| {
            let (id, _, _, _, _) = data.memberships[(i as usize * 7919) % data.memberships.len()];
            async move {
                pb::membership_service_client::MembershipServiceClient::with_interceptor(ch, Auth)
                    .get_membership(pb::GetMembershipRequest {
                        member: Some(pb::get_membership_request::Member::MembershipId(id)),
                        consistency: consistency(true),
                        ..Default::default()
                    })
                    .await
                    .map(|_| 0)
            }
        }
    };
    let non_owners: Arc<Vec<i64>> = Arc::new(
        data.memberships
            .iter()
            .filter(|m| !m.4)
            .map(|m| m.0)
            .collect(),
    );
    let update = move |ch: Channel, i: u64| {
        let id = non_owners[(i as usize * 7919) % non_owners.len()];
        async move {
            pb::membership_service_client::MembershipServiceClient::with_interceptor(ch, Auth)
                .update_membership(pb::UpdateMembershipRequest {
                    member: Some(pb::update_membership_request::Member::MembershipId(id)),
                    disable_impersonation: Some(i.is_multiple_of(2)),
                    ..Default::default()
                })
                .await
                .map(|_| 0)
        }
    };
    // Creates number their emails from one counter (the closed and open loops' call numbers
    // overlap) and keep the id of every one the server acknowledged.
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let create = {
        let acknowledged = Arc::clone(&acknowledged);
        let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
        move |ch: Channel, _: u64| {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let acknowledged = Arc::clone(&acknowledged);
            async move {
                let answer =
                    pb::directory_service_client::DirectoryServiceClient::with_interceptor(
                        ch, Auth,
                    )
                    .create_user(pb::CreateUserRequest {
                        email: format!("overload-{n}@example.com"),
                        name: format!("Overload {n}"),
                        first_name: "Overload".into(),
                        last_name: format!("{n}"),
                        ..Default::default()
                    })
                    .await
                    .map(|r| r.into_inner().id);
                if let Ok(id) = answer {
                    acknowledged.lock().unwrap().push(id);
                }
                answer
            }
        }
    };

    println!(
        "\n## Overload: --max-in-flight {}, --request-timeout-ms {}, {}x the closed-loop rate for {} s over {} connections\n",
        args.max_in_flight,
        args.request_timeout_ms,
        args.overload_factor,
        args.duration,
        args.overload_connections
    );
    println!(
        "| workload | closed-loop req/s ({} streams) | closed p50 / p99 ms | offered req/s (target) | OK req/s | OK ÷ closed | shed | other errors | OK p50 / p99 ms | OK > {} ms | RSS MB after |",
        args.sustain_concurrency, args.request_timeout_ms
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let (s, c, o) = (&server, &closed[..], &open[..]);
    let breakdowns = [
        overload_phase("CheckPermission minimize_latency", args, s, c, o, check).await,
        overload_phase("GetMembership fully_consistent", args, s, c, o, get).await,
        overload_phase("UpdateMembership", args, s, c, o, update).await,
        overload_phase("CreateUser", args, s, c, o, create).await,
    ];
    println!();
    for b in breakdowns {
        println!("{b}  ");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let healthy = HealthClient::new(closed[0].clone())
        .check(HealthCheckRequest::default())
        .await
        .is_ok();
    println!(
        "\nServer RSS: {rss_started:.0} MB at start, {rss_warm:.0} MB with warm caches, {:.0} MB 2 s after the last phase; health check then: {}",
        server.rss_mb().unwrap_or(f64::NAN),
        if healthy { "SERVING" } else { "failed" }
    );

    // SIGKILL: what the database holds now is what a crash would leave.
    drop(open);
    drop(closed);
    drop(server);
    let stored: HashSet<i64> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::Email.starts_with("overload-"))
        .into_tuple::<i64>()
        .all(store.conn())
        .await
        .expect("read the created users")
        .into_iter()
        .collect();
    let acknowledged = acknowledged.lock().unwrap();
    let missing = acknowledged
        .iter()
        .filter(|id| !stored.contains(id))
        .count();
    println!(
        "Acknowledged creates: {} CreateUser calls answered OK (both loops); after SIGKILL of the server {} of them are in the database, {missing} missing; {} more rows were committed for calls not answered OK (DEADLINE_EXCEEDED after the commit, or no answer)",
        acknowledged.len(),
        acknowledged.len() - missing,
        stored.len() - (acknowledged.len() - missing)
    );
}

/// Entries per import call: the most one call takes.
const IMPORT_BATCH: usize = 1_000;

/// Sends `requests` with at most `in_flight` calls at a time; returns the seconds it took and
/// each answer, in request order.
async fn import_calls<Req, Resp, F, Fut>(
    requests: Vec<Req>,
    in_flight: usize,
    call: F,
) -> (f64, Vec<Resp>)
where
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(Req) -> Fut,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
{
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    let mut answers: Vec<Option<Resp>> = (0..requests.len()).map(|_| None).collect();
    for (i, request) in requests.into_iter().enumerate() {
        if running.len() >= in_flight.max(1) {
            let (j, answer) = running.join_next().await.expect("a call").expect("join");
            answers[j] = Some(answer);
        }
        let fut = call(request);
        running.spawn(async move {
            (
                i,
                fut.await
                    .unwrap_or_else(|s| panic!("import call {i}: {s:?}")),
            )
        });
    }
    while let Some(done) = running.join_next().await {
        let (j, answer) = done.expect("join");
        answers[j] = Some(answer);
    }
    let seconds = started.elapsed().as_secs_f64();
    (
        seconds,
        answers
            .into_iter()
            .map(|a| a.expect("every call answered"))
            .collect(),
    )
}

/// Imports `--import-memberships` users, then their memberships of one new organization.
async fn import(args: &Args, store: &Store, server_bin: &PathBuf, database_url: &str) {
    let server = start_server(server_bin, database_url, &[]).await;
    let channel = channels(&server.addr, 1).await.remove(0);
    let directory = pb::directory_service_client::DirectoryServiceClient::with_interceptor(
        channel.clone(),
        Auth,
    );
    let memberships =
        pb::membership_service_client::MembershipServiceClient::with_interceptor(channel, Auth);
    let organization = directory
        .clone()
        .create_organization(pb::CreateOrganizationRequest {
            name: "Import".into(),
            slug: "import".into(),
            ..Default::default()
        })
        .await
        .expect("create the organization")
        .into_inner();
    let n = args.import_memberships;
    let user_batches: Vec<pb::ImportUsersRequest> = (0..n)
        .collect::<Vec<_>>()
        .chunks(IMPORT_BATCH)
        .map(|chunk| pb::ImportUsersRequest {
            users: chunk
                .iter()
                .map(|i| pb::CreateUserRequest {
                    email: format!("import{i}@example.com"),
                    username: Some(format!("import{i}")),
                    name: format!("Import {i}"),
                    ..Default::default()
                })
                .collect(),
        })
        .collect();
    let (user_seconds, answers) = import_calls(user_batches, args.import_in_flight, |r| {
        let mut client = directory.clone();
        async move { client.import_users(r).await.map(|a| a.into_inner()) }
    })
    .await;
    let user_ids: Vec<i64> = answers
        .iter()
        .flat_map(|a| a.users.iter().map(|u| u.id))
        .collect();
    let membership_batches: Vec<pb::ImportMembershipsRequest> = user_ids
        .chunks(IMPORT_BATCH)
        .map(|chunk| pb::ImportMembershipsRequest {
            team_id: organization.id,
            memberships: chunk
                .iter()
                .map(|user_id| pb::CreateMembershipRequest {
                    user_id: *user_id,
                    role: pb::MembershipRole::Member as i32,
                    ..Default::default()
                })
                .collect(),
        })
        .collect();
    let (membership_seconds, answers) =
        import_calls(membership_batches, args.import_in_flight, |r| {
            let mut client = memberships.clone();
            async move { client.import_memberships(r).await.map(|a| a.into_inner()) }
        })
        .await;
    let imported: usize = answers.iter().map(|a| a.memberships.len()).sum();
    let stored = membership::Entity::find()
        .filter(membership::Column::TeamId.eq(organization.id))
        .count(store.conn())
        .await
        .expect("count the memberships");
    assert_eq!(imported, n, "every membership answered");
    assert_eq!(stored, n as u64, "every membership stored");
    let engine = database_url.split(':').next().unwrap_or_default();
    println!(
        "\n## Bulk import: {n} users, then {n} memberships of one organization, {IMPORT_BATCH} entries a call, {} calls in flight ({engine})\n",
        args.import_in_flight
    );
    println!("| import | seconds | entries/s |");
    println!("| --- | --- | --- |");
    println!(
        "| ImportUsers | {user_seconds:.1} | {:.0} |",
        n as f64 / user_seconds
    );
    println!(
        "| ImportMemberships | {membership_seconds:.1} | {:.0} |",
        n as f64 / membership_seconds
    );
    println!(
        "\nServer RSS after the run: {:.0} MB",
        server.rss_mb().unwrap_or(f64::NAN)
    );
}
