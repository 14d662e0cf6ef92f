//! Hunting escalation through the real server: random sequences of writes by random actors
//! (`x-actor-user-id`) on a small organization with sub-teams and custom roles, biased toward
//! the writes that decide who holds which role. After every operation the invariants of
//! `invariants` must hold; a failing sequence is shrunk (proptest) and printed one operation a
//! line, with the invariant it broke and the seed that finds it again.
//!
//! Each sequence runs on a fresh organization (a "world") of the one test server, several at once
//! (`ESCALATION_WORLDS`). After each operation the part of the world it may write is read back
//! (`reads::Area`), the rest carried over; at the end of the sequence the whole world is read
//! again and must agree, so a write outside its area fails too (and shrinks to the operation
//! that did it). Effective permissions are derived from the reads; one world in four also
//! compares them with ListEffectivePermissions.
//!
//! Cost: about 12 ms of CPU per operation (debug build, server and test together), so 10,000
//! operations need a minute of two idle cores. They are split into four tests so each stays
//! well inside the per-test deadline on a loaded machine. A longer hunt: `ESCALATION_OPS=25000
//! TEST_ENGINES=sqlite cargo test --test integration -- escalation::`.
//!
//! Environment:
//! - `ESCALATION_OPS`: operations each of the four parts runs (default 2,500 on SQLite, 10,000
//!   in all; 250 on PostgreSQL and MariaDB);
//! - `ESCALATION_SEED`: the seed (default random; printed on failure);
//! - `ESCALATION_WORLDS`: sequences run at once (default 4);
//! - `ESCALATION_MAX_LEN`: longest sequence (default 60);
//! - `ESCALATION_SHRINK_SECS`: how long shrinking a failure may take (default 60).

mod calls;
mod invariants;
mod ops;
mod reads;
mod snapshot;
mod world;

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use tonic::{Code, Status};

use crate::common::{Engine, TestServer, error_info, pb};
use pb::consistency::Requirement;
use snapshot::Catalog;
use world::World;

// The hunt is split into parts, each its own test with its own server, seed and deadline, so
// that 10,000 operations on SQLite fit CI without any one test nearing its deadline.
engine_tests!(
    random_writes_never_escalate_1,
    random_writes_never_escalate_2,
    random_writes_never_escalate_3,
    random_writes_never_escalate_4
);

const PARTS: usize = 4;

async fn random_writes_never_escalate_1(engine: Engine) {
    random_writes_never_escalate(engine).await
}

async fn random_writes_never_escalate_2(engine: Engine) {
    random_writes_never_escalate(engine).await
}

async fn random_writes_never_escalate_3(engine: Engine) {
    random_writes_never_escalate(engine).await
}

async fn random_writes_never_escalate_4(engine: Engine) {
    random_writes_never_escalate(engine).await
}

async fn random_writes_never_escalate(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let settings = Settings::from_env(engine);
    let catalog = load_catalog(&srv).await;
    let hunt = Arc::new(Hunt {
        srv,
        catalog,
        settings,
        spent: AtomicUsize::new(0),
        found: AtomicBool::new(false),
        abandoned: AtomicBool::new(false),
        next_world: AtomicU64::new(0),
    });
    // A test that times out drops this future: the explorers then stop at their next case.
    let _abandon = AbandonOnDrop(Arc::clone(&hunt));
    let started = Instant::now();
    let explorers: Vec<_> = (0..settings.worlds)
        .map(|explorer| {
            let hunt = Arc::clone(&hunt);
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || explore(&runtime, &hunt, explorer))
        })
        .collect();
    let mut failures = Vec::new();
    for explorer in explorers {
        if let Err(failure) = explorer.await.expect("explorer thread") {
            failures.push(failure);
        }
    }
    let spent = hunt.spent.load(Ordering::SeqCst);
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "escalation on {}: {spent} operations in {} worlds, {secs:.1}s (seed {})",
        engine.name(),
        hunt.next_world.load(Ordering::SeqCst),
        settings.seed
    );
    if !failures.is_empty() {
        panic!("{}", failures.join("\n\n"));
    }
    assert!(
        spent >= settings.ops,
        "ran {spent} operations, fewer than the {} asked for",
        settings.ops
    );
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    engine: Engine,
    ops: usize,
    seed: u64,
    worlds: usize,
    max_len: usize,
    shrink_secs: u32,
}

impl Settings {
    fn from_env(engine: Engine) -> Settings {
        fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
            let value = std::env::var(name).ok()?;
            Some(
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
            )
        }
        let default_ops = match engine {
            Engine::Sqlite => 10_000,
            Engine::Postgres | Engine::Mysql => 1_000,
        } / PARTS;
        Settings {
            engine,
            ops: var("ESCALATION_OPS").unwrap_or(default_ops),
            seed: var("ESCALATION_SEED").unwrap_or_else(rand::random),
            worlds: var::<usize>("ESCALATION_WORLDS").unwrap_or(4).max(1),
            max_len: var::<usize>("ESCALATION_MAX_LEN").unwrap_or(60).max(1),
            shrink_secs: var("ESCALATION_SHRINK_SECS").unwrap_or(60),
        }
    }
}

/// What the explorers share.
struct Hunt {
    srv: TestServer,
    catalog: Catalog,
    settings: Settings,
    /// Operations handed out so far.
    spent: AtomicUsize,
    /// Some explorer found a failure: the others stop, so that it shrinks alone.
    found: AtomicBool,
    /// The test is over (timed out): everyone stops, shrinking included.
    abandoned: AtomicBool,
    next_world: AtomicU64,
}

impl Hunt {
    /// Claims `ops` operations of the budget; `false` once it is spent.
    fn claim(&self, ops: usize) -> bool {
        self.spent
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |spent| {
                (spent < self.settings.ops).then_some(spent + ops)
            })
            .is_ok()
    }
}

struct AbandonOnDrop(Arc<Hunt>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.abandoned.store(true, Ordering::SeqCst);
    }
}

/// One explorer: a proptest runner of its own (seeded from the hunt's seed and its number) that
/// runs sequences until the budget is spent, and shrinks the first one that fails.
fn explore(runtime: &tokio::runtime::Handle, hunt: &Hunt, explorer: usize) -> Result<(), String> {
    let settings = hunt.settings;
    let average_len = settings.max_len.div_ceil(2);
    // Cases beyond the budget pass at once; enough of them that the budget is always spent.
    let cases = settings.ops.div_ceil(settings.worlds * average_len) * 3 + 10;
    let config = Config {
        cases: cases as u32,
        failure_persistence: None,
        max_shrink_time: settings.shrink_secs * 1000,
        max_shrink_iters: u32::MAX,
        verbose: 0,
        ..Config::default()
    };
    let mut seed = [0u8; 16];
    seed[..8].copy_from_slice(&settings.seed.to_le_bytes());
    seed[8..].copy_from_slice(&(explorer as u64).to_le_bytes());
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::XorShift, &seed));
    let failing = Cell::new(false);
    let result = runner.run(&ops::sequences(settings.max_len), |ops| {
        if hunt.abandoned.load(Ordering::SeqCst) {
            return Ok(());
        }
        if !failing.get() && (hunt.found.load(Ordering::SeqCst) || !hunt.claim(ops.len())) {
            return Ok(());
        }
        let world = hunt.next_world.fetch_add(1, Ordering::SeqCst);
        let slug = format!("esc-{world}");
        // The model check costs as much as a dozen operations: one world in four does it, and
        // every world while shrinking (so that a failing check fails again).
        let check_model = failing.get() || world.is_multiple_of(4);
        match runtime.block_on(run_sequence(
            &hunt.srv,
            &hunt.catalog,
            slug,
            &ops,
            check_model,
        )) {
            Ok(()) => Ok(()),
            Err(report) => {
                failing.set(true);
                hunt.found.store(true, Ordering::SeqCst);
                Err(TestCaseError::fail(report))
            }
        }
    });
    match result {
        Ok(()) => Ok(()),
        Err(TestError::Fail(report, minimal)) => Err(format!(
            "escalation hunt failed on {} (seed {}, explorer {explorer} of {}; again with \
             ESCALATION_SEED={} ESCALATION_OPS={} ESCALATION_WORLDS={} ESCALATION_MAX_LEN={})\n\
             {}\nminimal input: {minimal:?}",
            settings.engine.name(),
            settings.seed,
            settings.worlds,
            settings.seed,
            settings.ops,
            settings.worlds,
            settings.max_len,
            report.message(),
        )),
        Err(TestError::Abort(reason)) => Err(format!("proptest gave up: {reason}")),
    }
}

/// Runs `ops` on a new world `slug`, checking the invariants after each; the error is the
/// report: what broke, after which operation, and the sequence up to it.
async fn run_sequence(
    srv: &TestServer,
    catalog: &Catalog,
    slug: String,
    ops: &[ops::Op],
    check_model_too: bool,
) -> Result<(), String> {
    let mut world = World::seed(srv, slug).await;
    let mut trace = Vec::new();
    let fail = |trace: &[String], what: String| {
        format!(
            "{what}\nsequence ({} operations: actor, write, arguments -> outcome):\n{}",
            trace.len(),
            trace.join("\n")
        )
    };
    let read_failed = |trace: &[String], status: Status| {
        fail(trace, format!("reading the world back failed: {status:?}"))
    };
    let mut now = world
        .reader()
        .all([])
        .await
        .map_err(|s| read_failed(&trace, s))?;
    for (index, op) in ops.iter().enumerate() {
        let call = calls::resolve(&world, index, op, &now);
        world
            .reader()
            .prepare(&mut now, call.area)
            .await
            .map_err(|s| read_failed(&trace, s))?;
        let result = world.send(&call).await;
        trace.push(format!("  #{index} {} -> {}", call.text, outcome(&result)));
        if let Err(status) = &result
            && matches!(status.code(), Code::Internal | Code::Unknown)
        {
            return Err(fail(&trace, format!("server error: {status:?}")));
        }
        let mut after = now.clone();
        world
            .reader()
            .refresh(&mut after, call.area)
            .await
            .map_err(|s| read_failed(&trace, s))?;
        let broken = invariants::check(&world, catalog, call.actor, result.is_err(), &now, &after);
        if !broken.is_empty() {
            let what = format!(
                "invariant broken by operation #{index}:\n{}",
                broken
                    .iter()
                    .map(|b| format!("  - {b}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            return Err(fail(&trace, what));
        }
        now = after;
    }
    // Each operation re-read only what it may write: the whole world must agree.
    let whole = world
        .reader()
        .all(now.users.keys().copied())
        .await
        .map_err(|s| read_failed(&trace, s))?;
    if whole != now {
        return Err(fail(
            &trace,
            format!(
                "the world changed outside what its operations may write:\n{}",
                now.diff(&whole)
            ),
        ));
    }
    if check_model_too {
        check_model(srv, &world, catalog, &now)
            .await
            .map_err(|what| fail(&trace, what))?;
    }
    Ok(())
}

/// The effective permissions the invariants derive from the snapshot are the server's own.
async fn check_model(
    srv: &TestServer,
    world: &World<'_>,
    catalog: &Catalog,
    now: &snapshot::Snapshot,
) -> Result<(), String> {
    let mut access = srv.access();
    let holdings = now.holdings(catalog);
    for &team in &now.teams {
        for &user in &world.users {
            let served = match access
                .list_effective_permissions(pb::ListEffectivePermissionsRequest {
                    user_id: user,
                    team_id: team,
                    consistency: Some(pb::Consistency {
                        requirement: Some(Requirement::FullyConsistent(true)),
                    }),
                })
                .await
            {
                Ok(response) => response.into_inner().permissions,
                Err(status) if status.code() == Code::NotFound => Vec::new(),
                Err(status) => return Err(format!("ListEffectivePermissions: {status:?}")),
            };
            let derived = catalog.names(holdings.of(user, team, false).perms);
            if served != derived {
                return Err(format!(
                    "the test's model is wrong: {} in {} holds {served:?} by \
                     ListEffectivePermissions, {derived:?} by the snapshot",
                    world.user_name(user),
                    world.team_name(team)
                ));
            }
        }
    }
    Ok(())
}

fn outcome(result: &Result<(), Status>) -> String {
    match result {
        Ok(()) => "OK".into(),
        Err(status) => match error_info(status) {
            Some(info) => {
                let detail = ["permission", "rule"]
                    .iter()
                    .filter_map(|key| info.metadata.get(*key).map(|v| format!(" {key}={v}")))
                    .collect::<String>();
                format!("{:?} {}{detail}", status.code(), info.reason)
            }
            None => format!("{:?} {}", status.code(), status.message()),
        },
    }
}

async fn load_catalog(srv: &TestServer) -> Catalog {
    let listed = srv
        .roles()
        .list_permission_catalog(pb::ListPermissionCatalogRequest {})
        .await
        .expect("ListPermissionCatalog")
        .into_inner();
    Catalog::new(
        listed
            .permissions
            .into_iter()
            .map(|e| e.permission)
            .collect(),
    )
}
