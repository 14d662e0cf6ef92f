//! Builds the gRPC server: the services, reflection, health, and the layers around them.

mod tls;

use std::future::Future;
use std::path::Path;

use tokio::net::TcpListener;
use tonic::transport::{Server, ServerTlsConfig};
use tonic_web::GrpcWebLayer;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::api::Context;
use crate::api::access::AccessApi;
use crate::api::admission::AdmissionLayer;
use crate::api::api_keys::ApiKeyApi;
use crate::api::attributes::AttributeApi;
use crate::api::auth_layer::AuthLayer;
use crate::api::directory::DirectoryApi;
use crate::api::events::EventApi;
use crate::api::invitations::InvitationApi;
use crate::api::malformed::MalformedRequestLayer;
use crate::api::memberships::MembershipApi;
use crate::api::roles::RoleApi;
use crate::auth::{self, Authenticator};
use crate::cache::AccessCache;
use crate::config::ServeConfig;
use crate::connections;
use crate::domain::access::Policy;
use crate::domain::catalog::{CatalogFormat, PermissionCatalog};
use crate::feed::Feed;
use crate::health::HealthMonitor;
use crate::pb;
use crate::reads::Reads;
use crate::rest::RestLayer;
use crate::storage::Store;
use crate::telemetry::RpcSpanLayer;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Connect(#[from] crate::storage::ConnectError),
    #[error("cannot reach the database: {0}")]
    Database(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("migrations failed: {0}")]
    Migration(String),
    #[error("cannot listen: {0}")]
    Listen(String),
    #[error("server failed: {0}")]
    Serve(String),
}

/// How long shutdown waits for the database connections to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A migrated database and the services over it, ready to serve.
pub struct App {
    config: ServeConfig,
    context: Context,
    /// A generated bootstrap key, to be shown once (and never logged).
    pub bootstrap_key: Option<String>,
    /// `None`: plaintext.
    tls: Option<ServerTlsConfig>,
    /// The feed follower, the retention task and the sweeper; they end with the server.
    background: Vec<JoinHandle<()>>,
    /// Drives `grpc.health.v1`; stopped before the pool closes (it has a connection of its own).
    health: Option<HealthMonitor>,
    stop: tokio::sync::watch::Sender<bool>,
    /// `--metrics-listen`, bound at start-up so a taken port fails it, and what it reports.
    metrics: Option<(TcpListener, crate::scrape::Levels)>,
}

impl Drop for App {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

/// A configured bootstrap key is only stored when the key table is empty (say `keys create` ran
/// first, or in another folder with the relative default SQLite path): then it is silently not a
/// key at all, unless it was stored by an earlier start.
async fn bootstrap_key_is_ignored(
    store: &Store,
    configured: &str,
) -> Result<bool, crate::domain::DomainError> {
    Ok(store.count_api_keys().await? > 0
        && store
            .find_api_key(&auth::hash_key(configured))
            .await?
            .is_none())
}

/// Removes events older than the retention, now and then.
async fn prune_events(store: Store, retention: Duration) {
    let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    loop {
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(retention).unwrap_or_default();
        match store.prune_events(cutoff.timestamp_micros()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed events past their retention"),
            Err(e) => tracing::warn!(error = %e, "cannot remove old events"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Removes the answers of creates past the retry window, now and then (they are ignored from
/// then on already: this only keeps the table small).
async fn prune_request_ids(store: Store) {
    let window = crate::domain::retries::REMEMBERED_FOR;
    loop {
        let cutoff = chrono::Utc::now() - window;
        match store.prune_request_ids(cutoff.timestamp_micros()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed request ids past the retry window"),
            Err(e) => tracing::warn!(error = %e, "cannot remove old request ids"),
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// Reads an operator's `--permissions-file`, in the format its extension names.
fn read_permissions_file(path: &Path) -> Result<PermissionCatalog, String> {
    let format = path
        .extension()
        .and_then(|e| e.to_str())
        .and_then(CatalogFormat::from_extension)
        .ok_or("unknown format, expected a .json, .toml, .yaml or .yml extension")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the file: {e}"))?;
    PermissionCatalog::parse(&text, format)
}

impl App {
    pub async fn prepare(config: &ServeConfig) -> Result<App, StartupError> {
        // Files and the metrics port first: a bad one must not leave a new, migrated database
        // behind.
        let tls = tls::server_config(config)?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| StartupError::Listen(format!("--metrics-listen {addr}: {e}")))?,
            ),
            None => None,
        };
        if metrics_listener.is_some() {
            crate::metrics::enable();
        }
        let store =
            Store::connect(&config.database.database_url, config.db_max_connections).await?;
        store
            .migrate()
            .await
            .map_err(|e| StartupError::Migration(e.to_string()))?;
        let catalog = match &config.permissions_file {
            Some(path) => read_permissions_file(path).map_err(|e| {
                StartupError::Config(format!("--permissions-file {}: {e}", path.display()))
            })?,
            None => PermissionCatalog::default_catalog(),
        };
        let store = store.with_policy(Arc::new(Policy::new(catalog)));
        let configured_key = config.bootstrap_key.as_deref().filter(|k| !k.is_empty());
        if let Some(key) = configured_key
            && bootstrap_key_is_ignored(&store, key)
                .await
                .map_err(|e| StartupError::Database(e.to_string()))?
        {
            tracing::warn!(
                database = %config.database.describe(),
                "the bootstrap key (--bootstrap-key, MEMBERSHIP_BOOTSTRAP_KEY) is not used: this \
                 database already has API keys and the bootstrap key is only created in an empty \
                 key table; calls with it fail UNAUTHENTICATED (use an existing key, or create one \
                 with `keys create` on this database)"
            );
        }
        let bootstrap_key = auth::bootstrap(&store, configured_key)
            .await
            .map_err(|e| StartupError::Database(e.to_string()))?;
        let cache = Arc::new(AccessCache::new(config.cache_capacity));
        let (feed, follower) = Feed::start(
            store.clone(),
            Arc::clone(&cache),
            config.feed_buffer as usize,
        )
        .await
        .map_err(|e| StartupError::Database(e.to_string()))?;
        let metrics = metrics_listener.map(|listener| {
            let levels =
                crate::scrape::Levels::new(store.clone(), Arc::clone(&cache), Arc::clone(&feed));
            (listener, levels)
        });
        let retention = tokio::spawn(prune_events(store.clone(), config.event_retention.0));
        let request_ids = tokio::spawn(prune_request_ids(store.clone()));
        let sweeper = tokio::spawn(crate::sweeper::run(store.clone(), config.sweep_interval.0));
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let health = HealthMonitor::start(
            store.clone(),
            &config.database.database_url,
            health_services(),
            stopping.clone(),
        )
        .await;
        let context = Context {
            stopping,
            auth: Authenticator::new(store.clone(), Arc::clone(&cache)),
            reads: Reads::new(store.clone(), cache, Arc::clone(&feed)),
            store,
            feed,
        };
        Ok(App {
            config: config.clone(),
            context,
            bootstrap_key,
            tls,
            background: vec![follower, retention, request_ids, sweeper],
            health: Some(health),
            stop,
            metrics,
        })
    }

    /// Where `/metrics` is served, when `--metrics-listen` is set.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The database handle the services use (for tests that need to reach behind the API).
    pub fn store(&self) -> &Store {
        &self.context.store
    }

    /// Serves on `listener` until `shutdown` completes, then drains in-flight calls.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        if let Some((listener, levels)) = self.metrics.take() {
            self.background
                .push(tokio::spawn(crate::scrape::serve(listener, levels)));
        }
        let health_service = tonic_health::pb::health_server::HealthServer::new(
            tonic_health::server::HealthService::from_health_reporter(
                self.health
                    .as_ref()
                    .expect("the health monitor runs until the server stops")
                    .reporter(),
            ),
        );
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| StartupError::Serve(e.to_string()))?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| StartupError::Serve(e.to_string()))?;

        let directory = pb::directory_service_server::DirectoryServiceServer::new(DirectoryApi(
            self.context.clone(),
        ));
        let memberships = pb::membership_service_server::MembershipServiceServer::new(
            MembershipApi(self.context.clone()),
        );
        let events =
            pb::event_service_server::EventServiceServer::new(EventApi(self.context.clone()));
        let roles = pb::role_service_server::RoleServiceServer::new(RoleApi(self.context.clone()));
        let access =
            pb::access_service_server::AccessServiceServer::new(AccessApi(self.context.clone()));
        let attributes = pb::attribute_service_server::AttributeServiceServer::new(AttributeApi(
            self.context.clone(),
        ));
        let api_keys =
            pb::api_key_service_server::ApiKeyServiceServer::new(ApiKeyApi(self.context.clone()));
        let invitations = pb::invitation_service_server::InvitationServiceServer::new(
            InvitationApi(self.context.clone()),
        );

        let stop = self.stop.clone();
        let (incoming, accepting) = connections::incoming(
            listener,
            connections::Limits {
                max_connections: self.config.max_connections as usize,
                calls_per_connection: self.config.concurrency_limit as usize,
                idle_timeout: self.config.idle_timeout.0,
                tcp_keepalive: self.config.keepalive_interval.0,
            },
        );
        let admission = AdmissionLayer::new(
            self.config.max_in_flight as usize,
            self.config.request_timeout(),
        );
        let rest = crate::rest::router(self.context.clone(), admission.clone());
        let mut builder = Server::builder()
            // HTTP/1.1 for the REST front door and gRPC-web.
            .accept_http1(true)
            .http2_keepalive_interval(Some(self.config.keepalive_interval.0))
            .http2_keepalive_timeout(Some(self.config.keepalive_timeout.0));
        if let Some(tls) = self.tls.clone() {
            builder = builder
                .tls_config(tls)
                .map_err(|e| StartupError::Config(format!("TLS: {e}")))?;
        }
        let served = builder
            // Everything but `application/grpc*` goes to the REST routes, which admit their
            // calls themselves (same budget): the layers below answer in gRPC terms.
            .layer(RestLayer::new(rest))
            // gRPC-web (HTTP/1.1) becomes plain gRPC for the layers and services below.
            .layer(GrpcWebLayer::new())
            .layer(RpcSpanLayer)
            // Inside the span layer, so shed and timed-out calls are logged with their code.
            .layer(admission)
            .layer(MalformedRequestLayer)
            // Inside the span layer, so refusals are logged with their code.
            .layer(AuthLayer::new(Arc::clone(&self.context.auth)))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(directory)
            .add_service(memberships)
            .add_service(events)
            .add_service(roles)
            .add_service(access)
            .add_service(attributes)
            .add_service(api_keys)
            .add_service(invitations)
            .serve_with_incoming_shutdown(incoming, async move {
                shutdown.await;
                let _ = stop.send(true);
            })
            .await
            .map_err(|e| StartupError::Serve(e.to_string()));
        accepting.abort();
        self.close().await;
        served
    }

    /// Stops the background tasks, then closes the database pool (bounded: a connection still
    /// held by a stuck task must not keep the process alive).
    async fn close(mut self) {
        let _ = self.stop.send(true);
        if let Some(health) = self.health.take() {
            health.stopped().await;
        }
        for task in std::mem::take(&mut self.background) {
            task.abort();
            let _ = task.await;
        }
        match tokio::time::timeout(CLOSE_TIMEOUT, self.context.store.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot close the database connections"),
            Err(_) => tracing::warn!(
                "the database connections did not close within {CLOSE_TIMEOUT:?}; exiting anyway"
            ),
        }
    }
}

/// Every service the health monitor reports on, besides the overall server ("").
fn health_services() -> Vec<&'static str> {
    vec![
        pb::directory_service_server::SERVICE_NAME,
        pb::membership_service_server::SERVICE_NAME,
        pb::event_service_server::SERVICE_NAME,
        pb::role_service_server::SERVICE_NAME,
        pb::access_service_server::SERVICE_NAME,
        pb::attribute_service_server::SERVICE_NAME,
        pb::api_key_service_server::SERVICE_NAME,
        pb::invitation_service_server::SERVICE_NAME,
    ]
}

/// Binds the configured address and serves until SIGTERM or Ctrl-C. A generated bootstrap key
/// is the caller's to show (`App::bootstrap_key`): it never goes into the log.
pub async fn run(app: App) -> Result<(), StartupError> {
    let listener = TcpListener::bind(app.config.listen)
        .await
        .map_err(|e| StartupError::Listen(format!("{}: {e}", app.config.listen)))?;
    let listen = listener.local_addr().unwrap_or(app.config.listen);
    let tls = match (&app.tls, &app.config.tls_client_ca) {
        (None, _) => "off",
        (Some(_), None) => "on",
        (Some(_), Some(_)) => "on, client certificates required",
    };
    tracing::info!(
        %listen,
        database = %app.config.database.describe(),
        tls,
        "serving gRPC"
    );
    app.serve(listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down; draining in-flight calls");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_file_format_follows_the_extension() {
        let dir = std::env::temp_dir().join(format!(
            "membership-permissions-file-test-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let files = [
            (
                "c.json",
                r#"{"permissions": [{"permission": "a.b", "organization_only": true}]}"#,
            ),
            (
                "c.toml",
                "[[permissions]]\npermission = \"a.b\"\norganization_only = true\n",
            ),
            (
                "c.yaml",
                "permissions:\n  - permission: a.b\n    organization_only: true\n",
            ),
            (
                "c.YML",
                "permissions:\n  - permission: a.b\n    organization_only: true\n",
            ),
        ];
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            let catalog = read_permissions_file(&path).unwrap();
            let names: Vec<&str> = catalog
                .entries()
                .iter()
                .map(|e| e.permission.as_str())
                .collect();
            assert_eq!(names, ["a.b"], "{name}");
            assert!(catalog.entries()[0].organization_only, "{name}");
        }
        // A TOML text under a .json name is read as JSON, and fails as such.
        let misnamed = dir.join("toml.json");
        std::fs::write(&misnamed, files[1].1).unwrap();
        assert!(read_permissions_file(&misnamed).is_err());
        let txt = dir.join("c.txt");
        std::fs::write(&txt, "").unwrap();
        let err = read_permissions_file(&txt).unwrap_err();
        assert!(err.contains("unknown format"), "{err}");
        let err = read_permissions_file(&dir.join("missing.json")).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
