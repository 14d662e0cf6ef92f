//! `membership-service serve | migrate | keys`.

use std::process::ExitCode;

use clap::Parser;
use membership_service::config::{Cli, Command, KeysCommand};
use membership_service::{auth, server, storage::Store, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let result = match cli.command {
        Command::Serve(config) => server::run(config).await.map_err(|e| e.to_string()),
        Command::Migrate(db) => migrate(&db.database_url).await,
        Command::Keys {
            command:
                KeysCommand::Create {
                    database,
                    scopes,
                    name,
                },
        } => create_key(&database.database_url, &name, &scopes).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(url: &str) -> Result<(), String> {
    let store = Store::connect(url, 1).await.map_err(|e| e.to_string())?;
    store
        .migrate()
        .await
        .map_err(|e| format!("migrations failed: {e}"))?;
    tracing::info!("migrations applied");
    Ok(())
}

async fn create_key(url: &str, name: &str, scopes: &[String]) -> Result<(), String> {
    let store = Store::connect(url, 1).await.map_err(|e| e.to_string())?;
    store
        .migrate()
        .await
        .map_err(|e| format!("migrations failed: {e}"))?;
    let key = auth::create_key(&store, name, scopes)
        .await
        .map_err(|e| e.to_string())?;
    // The key is the command's output: alone on the last line of stdout.
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{key}").map_err(|e| e.to_string())
}
