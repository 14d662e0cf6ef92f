//! `membership-service serve | migrate | keys`.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use membership_service::config::{Cli, Command, KeysCommand, ServeConfig, describe_database};
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
        Command::Keys {
            command:
                KeysCommand::Create {
                    database,
                    scopes,
                    name,
                },
        } => {
            // Only warnings: the output is the key, not the migration steps.
            telemetry::init(cli.log_format, "warn");
            exit_code(create_key(&database.database_url, &name, &scopes).await)
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

async fn create_key(url: &str, name: &str, scopes: &[String]) -> Result<(), String> {
    // Before touching the database: a typo must not create one.
    let scopes = auth::parse_scopes(scopes)?;
    let store = Store::connect(url, 1).await.map_err(|e| e.to_string())?;
    let created = async {
        store
            .migrate()
            .await
            .map_err(|e| format!("migrations failed: {e}"))?;
        auth::create_key(&store, name, &scopes)
            .await
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
