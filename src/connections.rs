//! The connections the server accepts: at most `--max-connections` at once (more wait in the
//! listen backlog), each closed after
//! `--idle-timeout` without a call in flight, each serving at most `--concurrency-limit` calls
//! at once. Running out of file descriptors slows accepting down instead of spinning on the
//! failing `accept`, and is logged at most once a minute.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// What every accepted connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub calls_per_connection: usize,
    pub idle_timeout: Duration,
    /// TCP keep-alive probes start after this much silence.
    pub tcp_keepalive: Duration,
}

/// The calls of one connection: how many may run at once, how many do, and when the last one
/// started or ended.
pub struct ConnectionState {
    /// Taken by each call for its whole life (see `api::admission`).
    pub calls: Arc<Semaphore>,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` of the last call's start or end.
    last_active_ms: AtomicU64,
    opened: Instant,
}

impl ConnectionState {
    fn new(calls_per_connection: usize) -> Self {
        Self {
            calls: Arc::new(Semaphore::new(calls_per_connection.max(1))),
            in_flight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(0),
            opened: Instant::now(),
        }
    }

    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_active_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Marks a call in flight until the guard is dropped (for a stream, when its body ends).
    pub fn begin_call(self: &Arc<Self>) -> CallInFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        CallInFlight(Arc::clone(self))
    }

    /// When the connection becomes idle, or `None` if it already is.
    fn idle_at(&self, idle_timeout: Duration) -> Option<Instant> {
        let now = Instant::now();
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Some(now + idle_timeout);
        }
        let last = self.opened + Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        let idle_at = last + idle_timeout;
        (idle_at > now).then_some(idle_at)
    }
}

/// A call in flight on its connection; see [`ConnectionState::begin_call`].
pub struct CallInFlight(Arc<ConnectionState>);

impl Drop for CallInFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a request learns of its connection (tonic puts it in the request extensions; under TLS
/// wrapped in `TlsConnectInfo`).
#[derive(Clone)]
pub struct ConnectionInfo {
    pub remote_addr: Option<SocketAddr>,
    pub state: Arc<ConnectionState>,
}

/// An accepted TCP connection that ends itself (end of stream to the HTTP/2 server) once idle.
pub struct Connection {
    stream: TcpStream,
    info: ConnectionInfo,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl Connected for Connection {
    type ConnectInfo = ConnectionInfo;
    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // The server always has a read pending, so this timer is polled however quiet the
        // connection is; HTTP/2 pings do not count as activity, calls do.
        if this.idle.as_mut().poll(cx).is_ready() {
            match this.info.state.idle_at(this.idle_timeout) {
                None => {
                    tracing::debug!(remote = ?this.info.remote_addr, "closing an idle connection");
                    return Poll::Ready(Ok(()));
                }
                Some(at) => {
                    this.idle.as_mut().reset(at);
                    let _ = this.idle.as_mut().poll(cx);
                }
            }
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The connections of `listener`, accepted by a task that ends when the stream is dropped (or
/// is aborted through the handle).
pub fn incoming(
    listener: TcpListener,
    limits: Limits,
) -> (ReceiverStream<io::Result<Connection>>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1);
    let task = tokio::spawn(accept_loop(listener, limits, tx));
    (ReceiverStream::new(rx), task)
}

/// EMFILE and ENFILE (the same numbers on Linux and the BSDs), ENOBUFS and ENOMEM: the process
/// or the system is out of something an accept needs, and trying again at once only spins.
fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(23 | 24 | 105 | 12))
}

const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Descriptors freed by closing connections are soon taken by the backlog's next ones: spells
/// that follow each other this closely are reported as one.
const REPORT_EVERY: Duration = Duration::from_secs(60);

async fn accept_loop(
    listener: TcpListener,
    limits: Limits,
    tx: mpsc::Sender<io::Result<Connection>>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut backoff = FIRST_BACKOFF;
    let mut starved = false;
    let mut reported: Option<Instant> = None;
    loop {
        // At the cap a new connection waits in the listen backlog, and is served as soon as
        // another closes (an idle one within --idle-timeout).
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "at the connection cap: new connections wait until one closes"
                );
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                tracing::info!("below the connection cap again");
                slot
            }
        };
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) if is_resource_exhaustion(&error) => {
                if !starved && reported.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
                    reported = Some(Instant::now());
                    tracing::error!(
                        %error,
                        "cannot accept connections: out of file descriptors or memory; \
                         accepting more slowly until some are freed (raise `ulimit -n` or lower \
                         --max-connections)"
                    );
                }
                starved = true;
                drop(slot);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            // A peer that gave up before we accepted it, and the like: nothing to wait for.
            Err(error) => {
                tracing::debug!(%error, "accept failed");
                continue;
            }
        };
        if starved {
            starved = false;
            tracing::debug!("accepting connections again");
        }
        backoff = FIRST_BACKOFF;
        let _ = stream.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(limits.tcp_keepalive)
            .with_interval(limits.tcp_keepalive);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        let state = Arc::new(ConnectionState::new(limits.calls_per_connection));
        let connection = Connection {
            stream,
            info: ConnectionInfo {
                remote_addr: Some(remote),
                state,
            },
            idle_timeout: limits.idle_timeout,
            idle: Box::pin(tokio::time::sleep(limits.idle_timeout)),
            _slot: slot,
        };
        if tx.send(Ok(connection)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_without_calls() {
        let idle = Duration::from_secs(10);
        let state = Arc::new(ConnectionState::new(4));
        assert!(state.idle_at(idle).is_some());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(
            state.idle_at(idle),
            None,
            "no call for longer than the timeout"
        );
        let call = state.begin_call();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(state.idle_at(idle).is_some(), "a long call keeps it open");
        drop(call);
        assert!(
            state.idle_at(idle).is_some(),
            "the end of a call is activity"
        );
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(state.idle_at(idle), None);
    }

    #[test]
    fn descriptor_exhaustion_is_recognised() {
        assert!(is_resource_exhaustion(&io::Error::from_raw_os_error(24)));
        assert!(is_resource_exhaustion(&io::Error::from_raw_os_error(23)));
        assert!(!is_resource_exhaustion(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
    }
}
