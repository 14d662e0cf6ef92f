//! gRPC over TLS, and mutual TLS, with certificates made at test time: a CA, a server
//! certificate for `localhost`/127.0.0.1 and client certificates, one from another CA.
//!
//! Servers run in process (`App`) on SQLite, except one run of the built binary configured
//! through the environment, and `grpcurl -cacert` when grpcurl is found (`$GRPCURL`, then
//! `PATH`; `REQUIRE_GRPCURL=1` makes its absence a failure).

use crate::common::{TempDir, grpcurl};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use membership_service::config::ServeConfig;
use membership_service::pb;
use membership_service::server::App;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::sync::oneshot;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const KEY: &str = "mk_tls_admin_key_0123456789";
const BINARY: &str = env!("CARGO_BIN_EXE_membership-service");

/// A certificate and its private key, PEM.
struct Pem {
    cert: String,
    key: String,
}

impl Pem {
    fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert, &self.key)
    }
}

/// A CA that signs server and client certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn certificate(&self) -> Certificate {
        Certificate::from_pem(self.pem())
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Pem {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "membership test");
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn server(&self) -> Pem {
        self.issue(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    fn client(&self) -> Pem {
        self.issue(&["client.test"], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// An in-process server with TLS files in its own temp dir.
struct TlsServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: TempDir,
}

impl TlsServer {
    async fn start(server: &Pem, client_ca: Option<&Ca>) -> TlsServer {
        let dir = TempDir::new("server");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
        let mut config = ServeConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), url);
        config.bootstrap_key = Some(KEY.into());
        config.tls_cert = Some(dir.write("server.pem", &server.cert));
        config.tls_key = Some(dir.write("server.key", &server.key));
        config.tls_client_ca = client_ca.map(|ca| dir.write("clients-ca.pem", &ca.pem()));
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let app = App::prepare(&config).await.expect("prepare");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.serve(listener, async move {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        TlsServer {
            addr,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the server stops")
            .expect("server task");
    }
}

/// A health check over `channel`; any failure (handshake, transport, status) as text.
async fn health(channel: Result<Channel, tonic::transport::Error>) -> Result<(), String> {
    let channel = channel.map_err(|e| format!("connect: {e:?}"))?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map_err(|e| format!("check: {e:?}"))?;
    match answer.into_inner().status {
        1 => Ok(()),
        other => Err(format!("status {other}")),
    }
}

/// A TLS channel that trusts `ca`, presenting `identity` when given.
async fn tls_channel(
    addr: SocketAddr,
    ca: &Ca,
    identity: Option<&Pem>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(ca.certificate())
        .domain_name("localhost");
    if let Some(identity) = identity {
        tls = tls.identity(identity.identity());
    }
    Channel::from_shared(format!("https://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .tls_config(tls)?
        .connect()
        .await
}

async fn plaintext_channel(addr: SocketAddr) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_are_served_and_plaintext_is_refused() {
    let ca = Ca::new("membership test CA");
    let server = TlsServer::start(&ca.server(), None).await;

    health(tls_channel(server.addr, &ca, None).await)
        .await
        .expect("a TLS client that trusts the CA");
    let refused = health(plaintext_channel(server.addr).await).await;
    assert!(refused.is_err(), "a plaintext client is refused");
    let stranger = Ca::new("another CA");
    let untrusted = health(tls_channel(server.addr, &stranger, None).await).await;
    assert!(
        untrusted.is_err(),
        "a client that does not trust the server's CA fails"
    );

    // An authenticated call works too, and the refusals left the server serving.
    let channel = tls_channel(server.addr, &ca, None).await.expect("connect");
    let header: tonic::metadata::AsciiMetadataValue =
        format!("Bearer {KEY}").parse().expect("ASCII");
    let mut directory = pb::directory_service_client::DirectoryServiceClient::with_interceptor(
        channel,
        move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
            Ok(request)
        },
    );
    let user = directory
        .create_user(pb::CreateUserRequest {
            email: "tls@ops.test".into(),
            name: "TLS".into(),
            ..Default::default()
        })
        .await
        .expect("create user over TLS")
        .into_inner();
    assert!(user.id > 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let ca = Ca::new("membership test CA");
    let server = TlsServer::start(&ca.server(), Some(&ca)).await;

    let anonymous = health(tls_channel(server.addr, &ca, None).await).await;
    assert!(
        anonymous.is_err(),
        "a client without a certificate is refused"
    );
    let stranger = Ca::new("another CA").client();
    let foreign = health(tls_channel(server.addr, &ca, Some(&stranger)).await).await;
    assert!(
        foreign.is_err(),
        "a client certificate from another CA is refused"
    );
    let plaintext = health(plaintext_channel(server.addr).await).await;
    assert!(plaintext.is_err(), "a plaintext client is refused");

    health(tls_channel(server.addr, &ca, Some(&ca.client())).await)
        .await
        .expect("a client certificate signed by the CA is accepted");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_settings_stop_the_start() {
    let ca = Ca::new("membership test CA");
    let pem = ca.server();
    let other = ca.server();
    let dir = TempDir::new("bad");
    let cert = dir.write("server.pem", &pem.cert);
    let key = dir.write("server.key", &pem.key);
    let wrong_key = dir.write("other.key", &other.key);
    let missing = dir.path().join("missing.pem");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    /// --tls-cert, --tls-key, --tls-client-ca, and what the error names.
    type Case<'a> = (
        Option<&'a Path>,
        Option<&'a Path>,
        Option<&'a Path>,
        &'a str,
    );
    let cases: [Case; 5] = [
        (Some(&cert), None, None, "--tls-key"),
        (None, None, Some(&cert), "--tls-client-ca"),
        (Some(&missing), Some(&key), None, "missing.pem"),
        (Some(&key), Some(&key), None, "TLS"),
        (Some(&cert), Some(&wrong_key), None, "TLS"),
    ];
    for (tls_cert, tls_key, client_ca, needle) in cases {
        let mut config = ServeConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), url.clone());
        config.tls_cert = tls_cert.map(Path::to_path_buf);
        config.tls_key = tls_key.map(Path::to_path_buf);
        config.tls_client_ca = client_ca.map(Path::to_path_buf);
        match App::prepare(&config).await {
            Ok(_) => panic!("started with {tls_cert:?} {tls_key:?} {client_ca:?}"),
            Err(e) => assert!(
                e.to_string().contains(needle),
                "{tls_cert:?} {tls_key:?} {client_ca:?}: {e}"
            ),
        }
    }
    assert!(
        !dir.path().join("m.db").exists(),
        "checked before the database is created"
    );
}

// ---------------------------------------------------------------------------------------------
// The built binary

/// `serve` as a child process, TLS configured through the environment.
struct Service {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
    ca: Ca,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    async fn start() -> Service {
        let ca = Ca::new("membership test CA");
        let server = ca.server();
        let dir = TempDir::new("binary");
        let cert = dir.write("server.pem", &server.cert);
        let key = dir.write("server.key", &server.key);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(dir.path().join("service.log")).expect("log");
        let child = Command::new(BINARY)
            .args(["serve", "--listen", &addr.to_string(), "--database-url"])
            .arg(format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("m.db").display()
            ))
            .env("MEMBERSHIP_BOOTSTRAP_KEY", KEY)
            .env("MEMBERSHIP_TLS_CERT", &cert)
            .env("MEMBERSHIP_TLS_KEY", &key)
            .env_remove("MEMBERSHIP_TLS_CLIENT_CA")
            .env_remove("DATABASE_URL")
            .env_remove("MEMBERSHIP_LISTEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn membership-service");
        let mut service = Service {
            child,
            addr,
            dir,
            ca,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if health(tls_channel(addr, &service.ca, None).await)
                .await
                .is_ok()
            {
                return service;
            }
            let exited = matches!(service.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                panic!("no TLS service; its output:\n{}", service.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("service.log")).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_tls_from_the_environment() {
    let service = Service::start().await;
    assert!(
        health(plaintext_channel(service.addr).await).await.is_err(),
        "plaintext is refused"
    );
    assert!(service.log().contains("tls"), "{}", service.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_with_cacert() {
    let Some(grpcurl) = grpcurl() else { return };
    let service = Service::start().await;
    let ca = service.dir.write("ca.pem", &service.ca.pem());
    let addr = format!("localhost:{}", service.addr.port());
    let run = |args: &[&str]| {
        Command::new(&grpcurl)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run grpcurl")
    };
    let ca = ca.display().to_string();
    let out = run(&["-cacert", &ca, &addr, "grpc.health.v1.Health/Check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("SERVING"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header = format!("authorization: Bearer {KEY}");
    let out = run(&[
        "-cacert",
        &ca,
        "-H",
        &header,
        "-d",
        "{}",
        &addr,
        "membership.v1.DirectoryService/ListOrganizations",
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["-plaintext", &addr, "grpc.health.v1.Health/Check"]);
    assert!(!out.status.success(), "grpcurl -plaintext is refused");
}
