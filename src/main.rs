//! `membership-service serve | migrate | keys`.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use membership_service::config::{Cli, Command, KeysCommand, ServeConfig, describe_database};
use membership_service::domain::page::{KeyedPageRequest, encode_keyed_token};
use membership_service::server::{self, App, StartupError};
use membership_service::{auth, storage::Store, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        // The service reports through its log, in the configured format.
        Command::Serve(config) => {
            telemetry::init(cli.log_format, "info");
            match serve(&config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        // Commands run by hand: their errors are their output, plain on stderr.
        Command::Migrate(db) => {
            telemetry::init(cli.log_format, "info");
            exit_code(migrate(&db.database_url).await)
        }
        // Only warnings: the output is the key or the list, not the migration steps.
        Command::Keys { command } => {
            telemetry::init(cli.log_format, "warn");
            exit_code(match command {
                KeysCommand::Create {
                    database,
                    scopes,
                    name,
                    rate_limit_per_second,
                } => {
                    create_key(
                        &database.database_url,
                        &name,
                        &scopes,
                        rate_limit_per_second,
                    )
                    .await
                }
                KeysCommand::List { database } => list_keys(&database.database_url).await,
                KeysCommand::Revoke { database, key_id } => {
                    revoke_key(&database.database_url, &key_id).await
                }
            })
        }
    }
}

/// Prepares the service, shows a generated bootstrap key, then serves. The key goes to stdout
/// once, alone on its line: logs are kept and shipped, so it never goes there.
async fn serve(config: &ServeConfig) -> Result<(), StartupError> {
    let mut app = App::prepare(config).await?;
    if let Some(key) = app.bootstrap_key.take() {
        let mut out = std::io::stdout().lock();
        match writeln!(out, "{key}").and_then(|()| out.flush()) {
            Ok(()) => tracing::warn!(
                "created a bootstrap API key with the admin scope; it is printed once, on stdout"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "created a bootstrap API key but cannot print it; create a key with `keys create`"
            ),
        }
    }
    server::run(app).await
}

fn exit_code(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(url: &str) -> Result<(), String> {
    let store = Store::connect(url, 1).await.map_err(|e| e.to_string())?;
    let migrated = store
        .migrate()
        .await
        .map_err(|e| format!("migrations failed: {e}"));
    let _ = store.close().await;
    migrated?;
    tracing::info!(database = %describe_database(url), "migrations applied");
    Ok(())
}

async fn create_key(
    url: &str,
    name: &str,
    scopes: &[String],
    rate_limit_per_second: Option<u32>,
) -> Result<(), String> {
    // Before touching the database: a typo must not create one.
    let scopes = auth::parse_scopes(scopes)?;
    let store = Store::connect(url, 1).await.map_err(|e| e.to_string())?;
    let created = async {
        store
            .migrate()
            .await
            .map_err(|e| format!("migrations failed: {e}"))?;
        let actor = membership_service::domain::model::Actor::default();
        auth::issue_key(
            &store,
            &actor,
            name,
            &scopes,
            None,
            None,
            rate_limit_per_second,
        )
        .await
        .map(|(_, secret)| secret)
        .map_err(|e| e.to_string())
    }
    .await;
    // Closing checkpoints SQLite's WAL: the file holds the key even if copied right away.
    let _ = store.close().await;
    let key = created?;
    // Where the key lives matters: a relative SQLite path depends on the working directory.
    eprintln!(
        "created an API key with the scopes {} in {}; it is shown only now:",
        scopes.join(","),
        describe_database(url)
    );
    // The key is the command's output: alone on the last line of stdout.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{key}").map_err(|e| e.to_string())
}

/// Runs `work` on the migrated database, then closes it (SQLite checkpoints its WAL).
async fn with_store<T>(
    url: &str,
    work: impl AsyncFnOnce(&Store) -> Result<T, String>,
) -> Result<T, String> {
    let store = Store::connect(url, 1).await.map_err(|e| e.to_string())?;
    let result = match store.migrate().await {
        Ok(()) => work(&store).await,
        Err(e) => Err(format!("migrations failed: {e}")),
    };
    let _ = store.close().await;
    result
}

async fn list_keys(url: &str) -> Result<(), String> {
    let keys = with_store(url, async |store| {
        let mut keys = Vec::new();
        let mut page = KeyedPageRequest::parse(1000, "").map_err(|_| "page size".to_string())?;
        loop {
            let listed = store
                .list_api_keys(&page, None)
                .await
                .map_err(|e| e.to_string())?;
            keys.extend(listed.items);
            match listed.next_after {
                Some(next) => {
                    page = KeyedPageRequest::parse(1000, &encode_keyed_token(next))
                        .map_err(|_| "page token".to_string())?
                }
                None => return Ok(keys),
            }
        }
    })
    .await?;
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| "-".into())
    };
    let mut out = std::io::stdout().lock();
    for key in keys {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            key.id,
            key.name,
            key.scopes.join(","),
            key.organization_id
                .map(|id| id.to_string())
                .unwrap_or_else(|| "-".into()),
            time(Some(key.created_at)),
            time(key.expires_at),
            time(key.revoked_at),
            time(key.last_used_at),
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn revoke_key(url: &str, key_id: &str) -> Result<(), String> {
    let revoked = with_store(url, async |store| {
        store
            .revoke_api_key(&Default::default(), key_id, None)
            .await
            .map_err(|e| e.to_string())
    })
    .await?;
    eprintln!("revoked {} in {}", revoked.value.id, describe_database(url));
    Ok(())
}
