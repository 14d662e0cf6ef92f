//! A real server on `127.0.0.1:0` over a test database, and clients that carry an API key.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use membership_service::config::ServeConfig;
use membership_service::pb;
use membership_service::server::App;
use membership_service::storage::Store;
use pb::access_service_client::AccessServiceClient;
use pb::attribute_service_client::AttributeServiceClient;
use pb::directory_service_client::DirectoryServiceClient;
use pb::event_service_client::EventServiceClient;
use pb::invitation_service_client::InvitationServiceClient;
use pb::membership_service_client::MembershipServiceClient;
use pb::role_service_client::RoleServiceClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::{AsciiMetadataValue, MetadataKey};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

use super::database::{Engine, TestDb};

/// The bootstrap key every test server starts with: an `admin` key (every scope).
pub const ADMIN_KEY: &str = "mk_test_admin_key_0123456789";
/// Pool size of each test App: enough to race, small enough that parallel tests (and second
/// instances) stay well under PostgreSQL's default `max_connections` of 100.
const TEST_DB_MAX_CONNECTIONS: u32 = 8;

/// Adds `authorization: Bearer <key>` (and optionally `x-actor-user-id`) to every request.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    headers: Vec<(MetadataKey<tonic::metadata::Ascii>, AsciiMetadataValue)>,
}

/// The interceptor for a key: `auth(key)`, or `auth(key).actor(user_id)`.
pub fn auth(key: &str) -> Auth {
    Auth::default().header("authorization", &format!("Bearer {key}"))
}

impl Auth {
    /// No headers at all (for UNAUTHENTICATED checks).
    pub fn none() -> Auth {
        Auth::default()
    }

    /// Acts for this end user (`x-actor-user-id`).
    pub fn actor(self, user_id: i64) -> Auth {
        self.header("x-actor-user-id", &user_id.to_string())
    }

    /// Any other ASCII header.
    pub fn header(mut self, name: &str, value: &str) -> Auth {
        let key = MetadataKey::from_bytes(name.as_bytes()).expect("valid metadata key");
        let value = value.parse().expect("ASCII metadata value");
        self.headers.retain(|(k, _)| *k != key);
        self.headers.push((key, value));
        self
    }
}

impl Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        for (key, value) in &self.headers {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
        Ok(request)
    }
}

/// The channel type every harness client is built on.
pub type AuthChannel = InterceptedService<Channel, Auth>;

/// A running server on a fresh database. Dropping it shuts the server down and drops the
/// database (once no second instance uses it any more); `stop()` does the same and waits.
pub struct TestServer {
    pub engine: Engine,
    pub addr: SocketAddr,
    pub admin_key: String,
    pub database_url: String,
    pub config: ServeConfig,
    /// Where `/metrics` is served: set `config.metrics_listen` (port 0 picks a free one).
    pub metrics_addr: Option<SocketAddr>,
    channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    db: Option<Arc<TestDb>>,
    store: Store,
}

impl TestServer {
    /// A server on a fresh database, or `None` when the engine is skipped.
    pub async fn start(engine: Engine) -> Option<TestServer> {
        Self::start_with(engine, |_| {}).await
    }

    /// Like `start`, with the config adjusted by `tweak` before the App is prepared.
    pub async fn start_with(
        engine: Engine,
        tweak: impl FnOnce(&mut ServeConfig),
    ) -> Option<TestServer> {
        let db = Arc::new(TestDb::create(engine).await?);
        let mut config = ServeConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), db.url.clone());
        config.bootstrap_key = Some(ADMIN_KEY.to_owned());
        config.db_max_connections = TEST_DB_MAX_CONNECTIONS;
        tweak(&mut config);
        Some(Self::launch(engine, config, db).await)
    }

    /// A server on an existing database the test manages itself (say a PostgreSQL server of its
    /// own, see `PrivatePostgres`): it is left in place when the server stops.
    pub async fn start_on(
        engine: Engine,
        url: &str,
        tweak: impl FnOnce(&mut ServeConfig),
    ) -> TestServer {
        let db = Arc::new(TestDb::external(engine, url));
        let mut config = ServeConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), db.url.clone());
        config.bootstrap_key = Some(ADMIN_KEY.to_owned());
        config.db_max_connections = TEST_DB_MAX_CONNECTIONS;
        tweak(&mut config);
        Self::launch(engine, config, db).await
    }

    /// Another App (another "replica") on the same database, with the same config.
    pub async fn second_instance(&self) -> TestServer {
        let db = self.db.clone().expect("database of a running server");
        let mut config = self.config.clone();
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::launch(self.engine, config, db).await
    }

    async fn launch(engine: Engine, mut config: ServeConfig, db: Arc<TestDb>) -> TestServer {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .expect("bind test listener");
        let addr = listener.local_addr().expect("local addr");
        config.listen = addr;
        let app = match App::prepare(&config).await {
            Ok(app) => app,
            Err(err) => panic!("{}: App::prepare on {}: {err}", engine.name(), db.url),
        };
        let metrics_addr = app.metrics_addr();
        let store = app.store().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let task = tokio::spawn(async move {
            if let Err(err) = app.serve(listener, shutdown).await {
                eprintln!("test server on {addr} failed: {err}");
            }
        });
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        TestServer {
            engine,
            addr,
            admin_key: config
                .bootstrap_key
                .clone()
                .unwrap_or_else(|| ADMIN_KEY.to_owned()),
            database_url: db.url.clone(),
            config,
            metrics_addr,
            channel,
            shutdown: Some(tx),
            task: Some(task),
            db: Some(db),
            store,
        }
    }

    /// Shuts the server down, waits for it, and drops the database if no other instance uses it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
        {
            eprintln!("test server on {} did not stop within 10s", self.addr);
        }
        if let Some(db) = self.db.take()
            && let Ok(db) = Arc::try_unwrap(db)
        {
            db.cleanup().await;
        }
    }

    /// The server's own database handle: its pool, the connections its calls use.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A plain channel to the server (no headers added).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The admin key's interceptor; `.actor(id)` adds `x-actor-user-id`.
    pub fn auth(&self) -> Auth {
        auth(&self.admin_key)
    }

    /// Any generated client with the given interceptor: `srv.client_with(auth(key),
    /// RoleServiceClient::new)`.
    pub fn client_with<C>(&self, auth: Auth, make: impl FnOnce(AuthChannel) -> C) -> C {
        make(InterceptedService::new(self.channel(), auth))
    }

    /// Any generated client with the admin key: `srv.client(RoleServiceClient::new)`.
    pub fn client<C>(&self, make: impl FnOnce(AuthChannel) -> C) -> C {
        self.client_with(self.auth(), make)
    }

    /// Any generated client with this key.
    pub fn client_with_key<C>(&self, key: &str, make: impl FnOnce(AuthChannel) -> C) -> C {
        self.client_with(auth(key), make)
    }

    /// Any generated client without an `authorization` header.
    pub fn anonymous<C>(&self, make: impl FnOnce(AuthChannel) -> C) -> C {
        self.client_with(Auth::none(), make)
    }

    pub fn directory(&self) -> DirectoryServiceClient<AuthChannel> {
        self.client(DirectoryServiceClient::new)
    }

    pub fn memberships(&self) -> MembershipServiceClient<AuthChannel> {
        self.client(MembershipServiceClient::new)
    }

    pub fn events(&self) -> EventServiceClient<AuthChannel> {
        self.client(EventServiceClient::new)
    }

    pub fn roles(&self) -> RoleServiceClient<AuthChannel> {
        self.client(RoleServiceClient::new)
    }

    pub fn access(&self) -> AccessServiceClient<AuthChannel> {
        self.client(AccessServiceClient::new)
    }

    pub fn attributes(&self) -> AttributeServiceClient<AuthChannel> {
        self.client(AttributeServiceClient::new)
    }

    pub fn invitations(&self) -> InvitationServiceClient<AuthChannel> {
        self.client(InvitationServiceClient::new)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
        // The last holder's drop removes the database (TestDb's Drop).
        self.db.take();
    }
}
