//! Command-line flags with environment fallbacks, validated once at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://membership.db?mode=rwc";

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
    },
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `sqlite://…`, `postgres://…` or `mysql://…`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    #[arg(long, env = "MEMBERSHIP_LISTEN", default_value = "0.0.0.0:50051")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Admin key to create on an empty key table (else one is generated and printed).
    #[arg(long, env = "MEMBERSHIP_BOOTSTRAP_KEY", hide_env_values = true)]
    pub bootstrap_key: Option<String>,
    /// Per-request deadline, in milliseconds.
    #[arg(long, env = "MEMBERSHIP_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Requests served at once per connection.
    #[arg(long, env = "MEMBERSHIP_CONCURRENCY_LIMIT", default_value_t = 1024)]
    pub concurrency_limit: usize,
    /// Database connections in the pool.
    #[arg(long, env = "MEMBERSHIP_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// Entries in each of the in-memory caches of the hot reads.
    #[arg(long, env = "MEMBERSHIP_CACHE_CAPACITY", default_value_t = 100_000)]
    pub cache_capacity: u64,
    /// How long events are kept (`30d`, `12h`, `90m`, `45s`).
    #[arg(long, env = "MEMBERSHIP_EVENT_RETENTION", default_value = "30d")]
    pub event_retention: Retention,
    /// Replaces the built-in permission catalog.
    #[arg(long, env = "MEMBERSHIP_PERMISSIONS_FILE")]
    pub permissions_file: Option<PathBuf>,
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
            db_max_connections: 16,
            permissions_file: None,
            cache_capacity: 100_000,
            event_retention: Retention(Duration::from_secs(30 * 86_400)),
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A retention period: a number with a unit of `d`, `h`, `m` or `s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(pub Duration);

impl std::str::FromStr for Retention {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{s:?}: expected e.g. 30d, 12h, 90m or 45s"))?;
        let seconds = match unit {
            "d" => n.checked_mul(86_400),
            "h" => n.checked_mul(3_600),
            "m" => n.checked_mul(60),
            "s" | "" => Some(n),
            _ => None,
        }
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("{s:?}: expected a positive number of d, h, m or s"))?;
        Ok(Retention(Duration::from_secs(seconds)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_parses() {
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
        for bad in ["", "0d", "3w", "d", "-1h"] {
            assert!(bad.parse::<Retention>().is_err(), "{bad:?}");
        }
    }
}
