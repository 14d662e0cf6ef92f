//! Command-line flags with environment fallbacks, validated once at start.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://membership.db?mode=rwc";
/// Loopback only: serving other machines is a decision (`--listen 0.0.0.0:50051`).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

#[derive(Debug, Parser)]
#[command(
    name = "membership-service",
    version,
    about = "Membership and roles service (gRPC)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format.
    #[arg(long, global = true, env = "MEMBERSHIP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

// Parsed once at start: the size of the `serve` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run migrations, then serve gRPC until SIGTERM or Ctrl-C.
    Serve(ServeConfig),
    /// Run the migrations and exit.
    Migrate(DatabaseArgs),
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key; the key is printed once, alone on the last line of stdout.
    Create {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Comma-separated scopes, e.g. `memberships.read,access.check`.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// A label for operators.
        #[arg(long, default_value = "")]
        name: String,
        /// Calls a second the key may make on each replica (absent: unlimited).
        #[arg(long)]
        rate_limit_per_second: Option<u32>,
    },
    /// List the API keys (never their secrets), one per line, tab-separated: id, name, scopes,
    /// organization, created, expires, revoked, last used.
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke an API key by its id (`key_…`): every replica refuses it within the change feed's
    /// delivery time.
    Revoke {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The key's id, as `keys list` shows it.
        key_id: String,
    },
}

#[derive(Clone, Args)]
pub struct DatabaseArgs {
    /// `sqlite://…`, `postgres://…` or `mysql://…`. A relative SQLite path is relative to the
    /// working directory.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true
    )]
    pub database_url: String,
}

impl DatabaseArgs {
    /// Where the data lives, safe to print: see [`describe_database`].
    pub fn describe(&self) -> String {
        describe_database(&self.database_url)
    }
}

impl fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseArgs")
            .field("database_url", &redact_url(&self.database_url))
            .finish()
    }
}

/// Where the data lives, as an operator needs to see it: the absolute path of a SQLite file (a
/// relative one depends on the working directory, so two commands run from different folders
/// can use different databases), else the URL without its password.
pub fn describe_database(url: &str) -> String {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return redact_url(url);
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return "sqlite in memory".into();
    }
    let path = Path::new(path);
    let absolute = match std::env::current_dir() {
        Ok(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    };
    absolute.display().to_string()
}

/// The URL with any password replaced by `***`: the one in the user info and `password=`-like
/// query parameters. Malformed URLs are redacted too (everything between the first `:` of the
/// user info and the last `@`), since they are exactly the ones that end up in error messages.
pub fn redact_url(url: &str) -> String {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let (scheme, rest) = url.split_at(authority);
    // The last `@`: a password may contain an unencoded `@`, `/` or `?`.
    let rest = match rest.rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{user}:***{}", &rest[at..]),
            None => rest.to_string(),
        },
        None => rest.to_string(),
    };
    let redacted = format!("{scheme}{rest}");
    match redacted.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if is_secret_parameter(name) => format!("{name}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
        None => redacted,
    }
}

fn is_secret_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("password") || name.contains("secret") || name == "pass" || name == "pwd"
}

/// `message` with the URL (and its password, should the message quote it alone) redacted.
pub fn redact_in(message: &str, url: &str) -> String {
    let mut out = message.replace(url, &redact_url(url));
    if let Some(password) = url_password(url).filter(|p| p.len() >= 4) {
        out = out.replace(password, "***");
    }
    out
}

fn url_password(url: &str) -> Option<&str> {
    let rest = &url[url.find("://").map_or(0, |i| i + 3)..];
    let userinfo = &rest[..rest.rfind('@')?];
    userinfo.split_once(':').map(|(_, password)| password)
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// `ip:port` or `host:port`; a host name is resolved at start-up (to its first IPv4
    /// address, if it has one). `0.0.0.0:50051` accepts other machines.
    #[arg(long, env = "MEMBERSHIP_LISTEN", default_value = DEFAULT_LISTEN, value_parser = parse_listen)]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Admin key to create on an empty key table (else one is generated and printed once, on
    /// stdout). Ignored, with a warning, when the database already has keys.
    #[arg(long, env = "MEMBERSHIP_BOOTSTRAP_KEY", hide_env_values = true)]
    pub bootstrap_key: Option<String>,
    /// Per-request deadline, in milliseconds (a client's sooner `grpc-timeout` wins).
    #[arg(long, env = "MEMBERSHIP_REQUEST_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: u64,
    /// Calls in flight on this server; one more is refused at once (RESOURCE_EXHAUSTED
    /// `OVERLOADED`) instead of queueing.
    #[arg(long, env = "MEMBERSHIP_MAX_IN_FLIGHT", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
    /// Calls served at once per connection; more wait, within their deadline.
    #[arg(long, env = "MEMBERSHIP_CONCURRENCY_LIMIT", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency_limit: u32,
    /// Open client connections; one more waits in the listen backlog until one closes (idle
    /// ones close after --idle-timeout).
    #[arg(long, env = "MEMBERSHIP_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// A connection with no call in flight (an open watch counts) for this long is closed.
    #[arg(long, env = "MEMBERSHIP_IDLE_TIMEOUT", default_value = "5m")]
    pub idle_timeout: Period,
    /// HTTP/2 pings on a connection quiet for this long, and TCP keep-alive probes, find
    /// peers that vanished.
    #[arg(long, env = "MEMBERSHIP_KEEPALIVE_INTERVAL", default_value = "30s")]
    pub keepalive_interval: Period,
    /// A ping unanswered for this long closes the connection.
    #[arg(long, env = "MEMBERSHIP_KEEPALIVE_TIMEOUT", default_value = "10s")]
    pub keepalive_timeout: Period,
    /// Database connections in the pool.
    #[arg(long, env = "MEMBERSHIP_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// Entries in each of the in-memory caches of the hot reads.
    #[arg(long, env = "MEMBERSHIP_CACHE_CAPACITY", default_value_t = 100_000)]
    pub cache_capacity: u64,
    /// Events a replica holds for its watchers; a watcher further behind re-reads from the
    /// database (it misses nothing either way).
    #[arg(long, env = "MEMBERSHIP_FEED_BUFFER", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub feed_buffer: u32,
    /// How long events are kept (`30d`, `12h`, `90m`, `45s`).
    #[arg(long, env = "MEMBERSHIP_EVENT_RETENTION", default_value = "30d")]
    pub event_retention: Retention,
    /// How often expired memberships are deleted (with their `membership.expired` event).
    /// Expiry itself is exact without it: reads judge `expires_at` at their own instant.
    #[arg(long, env = "MEMBERSHIP_SWEEP_INTERVAL", default_value = "1s")]
    pub sweep_interval: Period,
    /// Replaces the built-in permission catalog.
    #[arg(long, env = "MEMBERSHIP_PERMISSIONS_FILE")]
    pub permissions_file: Option<PathBuf>,
    /// Serve gRPC over TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "MEMBERSHIP_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "MEMBERSHIP_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: clients must present a certificate signed by one of these CA certificates
    /// (PEM). Needs --tls-cert.
    #[arg(long, env = "MEMBERSHIP_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (plain HTTP, no key: bind it where only
    /// the scraper reaches). Off when not given.
    #[arg(long, env = "MEMBERSHIP_METRICS_LISTEN", value_name = "ADDR", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,
}

impl ServeConfig {
    /// Defaults for embedding the server (tests, benchmarks).
    pub fn new(listen: SocketAddr, database_url: impl Into<String>) -> Self {
        Self {
            listen,
            database: DatabaseArgs {
                database_url: database_url.into(),
            },
            bootstrap_key: None,
            request_timeout_ms: 10_000,
            concurrency_limit: 1024,
            max_connections: 10_000,
            idle_timeout: Period(Duration::from_secs(300)),
            keepalive_interval: Period(Duration::from_secs(30)),
            keepalive_timeout: Period(Duration::from_secs(10)),
            max_in_flight: 1024,
            db_max_connections: 16,
            permissions_file: None,
            cache_capacity: 100_000,
            feed_buffer: 4096,
            event_retention: Period(Duration::from_secs(30 * 86_400)),
            sweep_interval: Period(Duration::from_secs(1)),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            metrics_listen: None,
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// An address to listen on: `ip:port`, or `host:port` resolved now. One address is bound, so a
/// name with both families (`localhost`) gets its IPv4 address, which every client reaches.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let expected = "expected ip:port or host:port, e.g. 127.0.0.1:50051 or localhost:50051";
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("{s:?}: {e} ({expected})"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{s:?} resolves to no address ({expected})"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A period: a number with a unit of `d`, `h`, `m`, `s` or `ms` (`30d`, `90m`, `500ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period(pub Duration);

/// How long events are kept.
pub type Retention = Period;

impl std::str::FromStr for Period {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{s:?}: expected e.g. 30d, 12h, 90m, 45s or 500ms"))?;
        let millis = match unit {
            "d" => n.checked_mul(86_400_000),
            "h" => n.checked_mul(3_600_000),
            "m" => n.checked_mul(60_000),
            "s" | "" => n.checked_mul(1_000),
            "ms" => Some(n),
            _ => None,
        }
        .filter(|ms| *ms > 0)
        .ok_or_else(|| format!("{s:?}: expected a positive number of d, h, m, s or ms"))?;
        Ok(Period(Duration::from_millis(millis)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse() {
        assert_eq!(
            "30d".parse::<Retention>().unwrap().0,
            Duration::from_secs(2_592_000)
        );
        assert_eq!(
            "90m".parse::<Retention>().unwrap().0,
            Duration::from_secs(5_400)
        );
        assert_eq!(
            "45".parse::<Retention>().unwrap().0,
            Duration::from_secs(45)
        );
        assert_eq!(
            "250ms".parse::<Period>().unwrap().0,
            Duration::from_millis(250)
        );
        for bad in ["", "0d", "0ms", "3w", "d", "-1h", "1.5s"] {
            assert!(bad.parse::<Period>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn listen_addresses_and_host_names() {
        assert_eq!(
            parse_listen("127.0.0.1:50051").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 50051))
        );
        assert_eq!(
            parse_listen("[::1]:7").unwrap(),
            "[::1]:7".parse::<SocketAddr>().unwrap()
        );
        let local = parse_listen("localhost:50051").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 50051, "{local}");
        for bad in ["localhost", "localhost:port", ":50051x", ""] {
            assert!(parse_listen(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            DEFAULT_LISTEN
                .parse::<SocketAddr>()
                .unwrap()
                .ip()
                .to_string(),
            "127.0.0.1"
        );
    }

    #[test]
    fn urls_lose_their_passwords() {
        for (url, shown) in [
            (
                "postgres://app:s3cret@db:5432/members",
                "postgres://app:***@db:5432/members",
            ),
            (
                "mysql://root:pa@ss/w?rd@127.0.0.1/m?ssl-mode=required",
                "mysql://root:***@127.0.0.1/m?ssl-mode=required",
            ),
            (
                "postgres://db/m?user=app&password=s3cret&sslmode=require",
                "postgres://db/m?user=app&password=***&sslmode=require",
            ),
            ("postgres://app@db/m", "postgres://app@db/m"),
            ("postgres://db/m", "postgres://db/m"),
            // Malformed: no `//`, or no scheme at all.
            ("postgres:app:s3cret@db/m", "postgres:***@db/m"),
            ("app:s3cret@db/m", "app:***@db/m"),
            (
                "sqlite://membership.db?mode=rwc",
                "sqlite://membership.db?mode=rwc",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn messages_lose_the_password() {
        let url = "postgres//app:hunter22@db/m";
        let message = format!("The connection string '{url}' has no supporting driver.");
        let shown = redact_in(&message, url);
        assert!(!shown.contains("hunter22"), "{shown}");
        assert!(shown.contains("app:***@db/m"), "{shown}");
        assert_eq!(
            redact_in("password authentication failed for hunter22", url),
            "password authentication failed for ***"
        );
    }

    #[test]
    fn databases_are_described_without_secrets() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            describe_database("sqlite://membership.db?mode=rwc"),
            cwd.join("membership.db").display().to_string()
        );
        assert_eq!(describe_database("sqlite:///var/lib/m.db"), "/var/lib/m.db");
        assert_eq!(
            describe_database("sqlite:m.db"),
            cwd.join("m.db").display().to_string()
        );
        assert_eq!(describe_database("sqlite::memory:"), "sqlite in memory");
        assert_eq!(
            describe_database("postgres://app:s3cret@db/m"),
            "postgres://app:***@db/m"
        );
        let args = DatabaseArgs {
            database_url: "mysql://root:s3cret@db/m".into(),
        };
        assert!(!format!("{args:?}").contains("s3cret"));
    }
}
