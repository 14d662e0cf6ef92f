//! Prometheus metrics, served as text at `--metrics-listen` (`GET /metrics`).
//!
//! Two kinds of series:
//! - Events, counted where they happen (calls, sheds, cache lookups, pool waits, deliveries).
//!   They go to one process-wide recorder through handles registered once, so the hot path pays
//!   an atomic add and never a registry lookup or an allocation. With metrics off nothing is
//!   registered and every hook is one load of an empty `OnceLock`.
//! - Levels (pool connections, cache entries, feed sequences), read from the answering server's
//!   own pool, cache and feed when it is scraped: free between scrapes, and never mixed up with
//!   another server in the same process (the tests run several).
//!
//! The recorder is deliberately not installed as the `metrics` facade's global recorder: nothing
//! here goes through the facade's macros, and an embedding program keeps that slot for its own.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use prost::Message;

const RPC_REQUESTS: &str = "membership_rpc_requests_total";
const RPC_DURATION: &str = "membership_rpc_duration_seconds";
const RPC_IN_FLIGHT: &str = "membership_rpc_in_flight";
const RPC_SHED: &str = "membership_rpc_shed_total";
pub(crate) const POOL_CONNECTIONS: &str = "membership_db_pool_connections";
const POOL_WAIT: &str = "membership_db_pool_wait_seconds";
const CACHE_HITS: &str = "membership_cache_hits_total";
const CACHE_MISSES: &str = "membership_cache_misses_total";
pub(crate) const CACHE_ENTRIES: &str = "membership_cache_entries";
pub(crate) const FEED_HEAD: &str = "membership_feed_head_sequence";
pub(crate) const FEED_APPLIED: &str = "membership_feed_applied_sequence";
const WATCHES_OPEN: &str = "membership_watches_open";
const EVENTS_DELIVERED: &str = "membership_events_delivered_total";

/// From a cache hit (tens of microseconds) to a call that used up a generous deadline.
const RPC_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// An idle pool answers in microseconds; a starved one up to its 5 s acquire timeout.
const POOL_WAIT_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
];

/// How long a scrape waits for the database's head sequence before leaving it out.
pub(crate) const HEAD_QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Histogram samples are buffered until drained: by a scrape, or by this upkeep.
pub(crate) const UPKEEP_EVERY: Duration = Duration::from_secs(5);

pub(crate) static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// gRPC status codes by number, as Prometheus label values.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Where a `grpc-status` value is in [`CODES`]; a number outside it is UNKNOWN.
fn code_index(code: i32) -> usize {
    usize::try_from(code)
        .ok()
        .filter(|i| *i < CODES.len())
        .unwrap_or(tonic::Code::Unknown as usize)
}

/// Why a call was refused without being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// `--max-in-flight` calls were already in flight.
    Overloaded,
    /// The key's `rate_limit_per_second` was used up.
    RateLimited,
    /// The call's deadline passed before it was answered.
    DeadlineExceeded,
}

impl Shed {
    const ALL: [Shed; 3] = [Shed::Overloaded, Shed::RateLimited, Shed::DeadlineExceeded];

    fn as_str(self) -> &'static str {
        match self {
            Shed::Overloaded => "OVERLOADED",
            Shed::RateLimited => "RATE_LIMITED",
            Shed::DeadlineExceeded => "DEADLINE_EXCEEDED",
        }
    }
}

/// The caches of `AccessCache`, by the label they carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheKind {
    /// A user's memberships.
    UserMemberships,
    /// A team's organization.
    TeamOrganizations,
    /// A custom role's permissions.
    RolePermissions,
    /// A membership with its user and attributes.
    MembershipViews,
    /// (team, user) → membership id.
    MembershipIds,
    /// The hash of an API key → its credentials.
    ApiKeys,
    /// A team's memberships (for LookupUsers).
    TeamMembers,
    /// An organization's sub-teams (for LookupTeams).
    SubTeams,
}

impl CacheKind {
    pub const ALL: [CacheKind; 8] = [
        CacheKind::UserMemberships,
        CacheKind::TeamOrganizations,
        CacheKind::RolePermissions,
        CacheKind::MembershipViews,
        CacheKind::MembershipIds,
        CacheKind::ApiKeys,
        CacheKind::TeamMembers,
        CacheKind::SubTeams,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::UserMemberships => "user_memberships",
            CacheKind::TeamOrganizations => "team_organizations",
            CacheKind::RolePermissions => "role_permissions",
            CacheKind::MembershipViews => "membership_views",
            CacheKind::MembershipIds => "membership_ids",
            CacheKind::ApiKeys => "api_keys",
            CacheKind::TeamMembers => "team_members",
            CacheKind::SubTeams => "sub_teams",
        }
    }
}

/// One RPC's series. Registered on first use, so the output lists the methods that were called
/// and the codes they answered, not every method times every code.
struct Rpc {
    service: String,
    method: String,
    duration: OnceLock<Histogram>,
    requests: [OnceLock<Counter>; CODES.len()],
}

impl Rpc {
    fn new(service: String, method: String) -> Self {
        Self {
            service,
            method,
            duration: OnceLock::new(),
            requests: [const { OnceLock::new() }; CODES.len()],
        }
    }

    fn labels(&self) -> Vec<Label> {
        vec![
            Label::new("service", self.service.clone()),
            Label::new("method", self.method.clone()),
        ]
    }
}

/// The process-wide recorder and the handles registered on it.
struct Registry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// `/package.Service/Method` → its series.
    rpcs: HashMap<String, Rpc>,
    /// Any other path: a client may send any, and each must not become a series of its own.
    unknown_rpc: Rpc,
    in_flight: Gauge,
    shed: [Counter; Shed::ALL.len()],
    cache_hits: [Counter; CacheKind::ALL.len()],
    cache_misses: [Counter; CacheKind::ALL.len()],
    pool_wait: Histogram,
    watches_open: Gauge,
    events_delivered: Counter,
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

fn registry() -> Option<&'static Registry> {
    REGISTRY.get()
}

/// Every method the server serves, as (service, method): this service's, health and reflection.
fn served_methods() -> Vec<(String, String)> {
    let sets = [
        crate::pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut methods = Vec::new();
    for bytes in sets {
        let Ok(set) = prost_types::FileDescriptorSet::decode(bytes) else {
            continue;
        };
        for file in &set.file {
            for service in &file.service {
                let service_name = match file.package() {
                    "" => service.name().to_string(),
                    package => format!("{package}.{}", service.name()),
                };
                for method in &service.method {
                    methods.push((service_name.clone(), method.name().to_string()));
                }
            }
        }
    }
    methods
}

fn counter(recorder: &PrometheusRecorder, name: &'static str, labels: Vec<Label>) -> Counter {
    recorder.register_counter(&Key::from_parts(name, labels), &METADATA)
}

impl Registry {
    fn new() -> Registry {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(RPC_DURATION.into()), RPC_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(POOL_WAIT.into()), POOL_WAIT_BUCKETS)
            })
            .expect("the bucket lists are not empty")
            .build_recorder();
        describe_events(&recorder);
        let label = |key: &'static str, value: &'static str| vec![Label::new(key, value)];
        let rpcs = served_methods()
            .into_iter()
            .map(|(service, method)| (format!("/{service}/{method}"), Rpc::new(service, method)))
            .collect();
        Registry {
            rpcs,
            unknown_rpc: Rpc::new("unknown".into(), "unknown".into()),
            in_flight: recorder.register_gauge(&Key::from_static_name(RPC_IN_FLIGHT), &METADATA),
            shed: Shed::ALL.map(|s| counter(&recorder, RPC_SHED, label("reason", s.as_str()))),
            cache_hits: CacheKind::ALL
                .map(|c| counter(&recorder, CACHE_HITS, label("cache", c.as_str()))),
            cache_misses: CacheKind::ALL
                .map(|c| counter(&recorder, CACHE_MISSES, label("cache", c.as_str()))),
            pool_wait: recorder.register_histogram(&Key::from_static_name(POOL_WAIT), &METADATA),
            watches_open: recorder.register_gauge(&Key::from_static_name(WATCHES_OPEN), &METADATA),
            events_delivered: recorder
                .register_counter(&Key::from_static_name(EVENTS_DELIVERED), &METADATA),
            handle: recorder.handle(),
            recorder,
        }
    }

    fn rpc(&self, path: &str) -> &Rpc {
        self.rpcs.get(path).unwrap_or(&self.unknown_rpc)
    }

    fn record(&self, rpc: &Rpc, code: i32, elapsed: Duration) {
        let index = code_index(code);
        rpc.requests[index]
            .get_or_init(|| {
                let mut labels = rpc.labels();
                labels.push(Label::new("code", CODES[index]));
                counter(&self.recorder, RPC_REQUESTS, labels)
            })
            .increment(1);
        rpc.duration
            .get_or_init(|| {
                self.recorder
                    .register_histogram(&Key::from_parts(RPC_DURATION, rpc.labels()), &METADATA)
            })
            .record(elapsed.as_secs_f64());
    }
}

fn describe_events(recorder: &PrometheusRecorder) {
    recorder.describe_counter(
        RPC_REQUESTS.into(),
        None,
        "gRPC calls answered, by service, method and status code".into(),
    );
    recorder.describe_histogram(
        RPC_DURATION.into(),
        Some(Unit::Seconds),
        "Time from receiving a gRPC call to its response headers, by service and method".into(),
    );
    recorder.describe_gauge(
        RPC_IN_FLIGHT.into(),
        None,
        "gRPC calls received and not answered yet".into(),
    );
    recorder.describe_counter(
        RPC_SHED.into(),
        None,
        "gRPC calls refused without being served, by reason".into(),
    );
    recorder.describe_histogram(
        POOL_WAIT.into(),
        Some(Unit::Seconds),
        "Time a write transaction waited for a database connection (pool acquire and BEGIN)".into(),
    );
    recorder.describe_counter(
        CACHE_HITS.into(),
        None,
        "Cache lookups that found an entry, by cache".into(),
    );
    recorder.describe_counter(
        CACHE_MISSES.into(),
        None,
        "Cache lookups that found none (and read the database), by cache".into(),
    );
    recorder.describe_gauge(WATCHES_OPEN.into(), None, "WatchEvents streams open".into());
    recorder.describe_counter(
        EVENTS_DELIVERED.into(),
        None,
        "Events sent to WatchEvents streams".into(),
    );
}

/// Turns the event series on for this process; the first call registers them.
/// The event series in the exposition format, when metrics are on.
pub(crate) fn render_events() -> Option<String> {
    registry().map(|registry| registry.handle.render())
}

/// Drains the histograms' buckets the exporter keeps between scrapes.
pub(crate) fn upkeep() {
    if let Some(registry) = registry() {
        registry.handle.run_upkeep();
    }
}

pub fn enable() {
    REGISTRY.get_or_init(Registry::new);
}

/// One gRPC call, counted in flight until dropped. Dropped without [`RpcCall::finish`] (the
/// client went away, the server stopped), it counts as CANCELLED.
pub struct RpcCall {
    registry: &'static Registry,
    rpc: &'static Rpc,
    started: Instant,
    finished: bool,
}

/// Starts counting a call to `path` (`/package.Service/Method`); `None` when metrics are off.
pub fn rpc_started(path: &str) -> Option<RpcCall> {
    let registry = registry()?;
    registry.in_flight.increment(1.0);
    Some(RpcCall {
        registry,
        rpc: registry.rpc(path),
        started: Instant::now(),
        finished: false,
    })
}

impl RpcCall {
    /// The call was answered with this `grpc-status`.
    pub fn finish(mut self, code: i32) {
        self.finished = true;
        self.registry.record(self.rpc, code, self.started.elapsed());
    }
}

impl Drop for RpcCall {
    fn drop(&mut self) {
        if !self.finished {
            self.registry.record(
                self.rpc,
                tonic::Code::Cancelled as i32,
                self.started.elapsed(),
            );
        }
        self.registry.in_flight.decrement(1.0);
    }
}

/// A call refused without being served.
pub fn shed(reason: Shed) {
    if let Some(registry) = registry() {
        registry.shed[reason as usize].increment(1);
    }
}

/// Counts a lookup in `cache` as a hit or a miss, and hands its result on.
pub fn cache_lookup<T>(cache: CacheKind, found: Option<T>) -> Option<T> {
    if let Some(registry) = registry() {
        let counters = if found.is_some() {
            &registry.cache_hits
        } else {
            &registry.cache_misses
        };
        counters[cache as usize].increment(1);
    }
    found
}

/// A write transaction got its connection after `waited`.
pub fn pool_waited(waited: Duration) {
    if let Some(registry) = registry() {
        registry.pool_wait.record(waited.as_secs_f64());
    }
}

/// An open WatchEvents stream, counted until dropped.
pub struct OpenWatch(Option<&'static Registry>);

pub fn watch_opened() -> OpenWatch {
    let registry = registry();
    if let Some(registry) = registry {
        registry.watches_open.increment(1.0);
    }
    OpenWatch(registry)
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        if let Some(registry) = self.0 {
            registry.watches_open.decrement(1.0);
        }
    }
}

/// An event was sent to a watcher.
pub fn event_delivered() {
    if let Some(registry) = registry() {
        registry.events_delivered.increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_as_grpc_names_them() {
        let name = |code: i32| CODES[code_index(code)];
        assert_eq!(name(0), "OK");
        assert_eq!(name(tonic::Code::NotFound as i32), "NOT_FOUND");
        assert_eq!(name(tonic::Code::Unauthenticated as i32), "UNAUTHENTICATED");
        assert_eq!(
            name(tonic::Code::ResourceExhausted as i32),
            "RESOURCE_EXHAUSTED"
        );
        assert_eq!(name(17), "UNKNOWN");
        assert_eq!(name(-1), "UNKNOWN");
    }

    #[test]
    fn every_served_method_has_series_and_other_paths_share_one() {
        let methods = served_methods();
        assert!(
            methods
                .iter()
                .any(|(s, m)| s == "membership.v1.DirectoryService" && m == "GetUser")
        );
        assert!(
            methods
                .iter()
                .any(|(s, m)| s == "grpc.health.v1.Health" && m == "Check")
        );
        assert!(methods.iter().any(|(s, m)| {
            s == "grpc.reflection.v1alpha.ServerReflection" && m == "ServerReflectionInfo"
        }));
        let registry = Registry::new();
        let known = registry.rpc("/membership.v1.DirectoryService/GetUser");
        assert_eq!(
            (known.service.as_str(), known.method.as_str()),
            ("membership.v1.DirectoryService", "GetUser")
        );
        for path in ["/x.Y/Z", "/membership.v1.DirectoryService/Nope", "", "/"] {
            assert_eq!(registry.rpc(path).method, "unknown", "{path}");
        }
    }

    /// The value of the one line of `text` that starts with `series` (name and labels).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn calls_are_counted_by_code_and_timed() {
        let registry = Registry::new();
        let rpc = registry.rpc("/membership.v1.DirectoryService/GetUser");
        registry.record(rpc, 0, Duration::from_micros(300));
        registry.record(rpc, 5, Duration::from_millis(3));
        registry.record(rpc, 5, Duration::from_millis(30));
        registry.record(registry.rpc("/evil/path"), 12, Duration::ZERO);
        let text = registry.handle.render();
        let get_user = r#"service="membership.v1.DirectoryService",method="GetUser""#;
        assert_eq!(
            value(&text, &format!(r#"{RPC_REQUESTS}{{{get_user},code="OK"}}"#)),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                &format!(r#"{RPC_REQUESTS}{{{get_user},code="NOT_FOUND"}}"#)
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                &format!(
                    r#"{RPC_REQUESTS}{{service="unknown",method="unknown",code="UNIMPLEMENTED"}}"#
                )
            ),
            Some(1.0),
            "{text}"
        );
        // A real histogram (buckets, not a summary), cumulative.
        let bucket = |le: &str| {
            value(
                &text,
                &format!(r#"{RPC_DURATION}_bucket{{{get_user},le="{le}"}}"#),
            )
        };
        assert_eq!(bucket("0.0005"), Some(1.0), "{text}");
        assert_eq!(bucket("0.005"), Some(2.0), "{text}");
        assert_eq!(bucket("+Inf"), Some(3.0), "{text}");
        assert_eq!(
            value(&text, &format!("{RPC_DURATION}_count{{{get_user}}}")),
            Some(3.0)
        );
        // Methods never called have no series.
        assert!(!text.contains("method=\"CreateUser\""), "{text}");
    }

    #[test]
    fn shed_reasons_and_caches_start_at_zero() {
        let registry = Registry::new();
        registry.shed[Shed::Overloaded as usize].increment(2);
        registry.cache_misses[CacheKind::ApiKeys as usize].increment(1);
        let text = registry.handle.render();
        for (reason, want) in [
            ("OVERLOADED", 2.0),
            ("RATE_LIMITED", 0.0),
            ("DEADLINE_EXCEEDED", 0.0),
        ] {
            assert_eq!(
                value(&text, &format!(r#"{RPC_SHED}{{reason="{reason}"}}"#)),
                Some(want),
                "{text}"
            );
        }
        for cache in CacheKind::ALL {
            let misses = if cache == CacheKind::ApiKeys {
                1.0
            } else {
                0.0
            };
            let c = cache.as_str();
            assert_eq!(
                value(&text, &format!(r#"{CACHE_HITS}{{cache="{c}"}}"#)),
                Some(0.0)
            );
            assert_eq!(
                value(&text, &format!(r#"{CACHE_MISSES}{{cache="{c}"}}"#)),
                Some(misses)
            );
        }
        assert!(
            text.contains(&format!("# TYPE {RPC_SHED} counter")),
            "{text}"
        );
    }
}
