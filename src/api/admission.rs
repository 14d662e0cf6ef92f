//! Admission and deadlines. A bounded number of calls is in flight per server: one more is
//! refused at once with RESOURCE_EXHAUSTED `OVERLOADED` + RetryInfo instead of queueing. Every
//! admitted call ends by its deadline — the sooner of the client's `grpc-timeout` and
//! `--request-timeout-ms` — with DEADLINE_EXCEEDED, whatever it was waiting for (the pool, a
//! lock, the feed), including the wait for a slot of its connection (`--concurrency-limit`).
//! A streamed answer is bounded until its first message headers, not after; the connection
//! counts it as a call in flight until its body ends (see `connections`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Extensions, HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Semaphore;
use tonic::Status;
use tonic::transport::server::TlsConnectInfo;
use tower::{Layer, Service};

use crate::connections::{CallInFlight, ConnectionInfo, ConnectionState};
use crate::domain::DomainError;

#[derive(Clone)]
pub struct AdmissionLayer {
    permits: Arc<Semaphore>,
    timeout: Duration,
}

impl AdmissionLayer {
    pub fn new(max_in_flight: usize, timeout: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
            timeout,
        }
    }
}

impl AdmissionLayer {
    /// Runs one REST call under the same budget as the gRPC calls: a permit or OVERLOADED at
    /// once, the `--request-timeout-ms` deadline (DEADLINE_EXCEEDED), and a slot of its
    /// connection.
    pub async fn run<F: Future>(
        &self,
        extensions: &Extensions,
        call: F,
    ) -> Result<F::Output, DomainError> {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            crate::metrics::shed(crate::metrics::Shed::Overloaded);
            return Err(DomainError::Overloaded);
        };
        let connection = connection(extensions);
        let answer = tokio::time::timeout(self.timeout, async move {
            let _slot = match &connection {
                Some(c) => Some(Arc::clone(&c.calls).acquire_owned().await),
                None => None,
            };
            let _in_flight = connection.as_ref().map(ConnectionState::begin_call);
            call.await
        })
        .await;
        drop(permit);
        answer.map_err(|_| {
            crate::metrics::shed(crate::metrics::Shed::DeadlineExceeded);
            DomainError::DeadlineExceeded
        })
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admitted<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Admitted {
            inner,
            permits: Arc::clone(&self.permits),
            timeout: self.timeout,
        }
    }
}

#[derive(Clone)]
pub struct Admitted<S> {
    inner: S,
    permits: Arc<Semaphore>,
    timeout: Duration,
}

/// The client's `grpc-timeout` (`<digits><unit>`, unit one of H M S m u n), if it sent one.
fn client_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    if value.is_empty() || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The connection a request came on, over plain TCP or TLS (absent for a request that did
/// not come through the server's listener, as in unit tests).
fn connection(extensions: &Extensions) -> Option<Arc<ConnectionState>> {
    extensions
        .get::<ConnectionInfo>()
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<ConnectionInfo>>()
                .map(|tls| tls.get_ref())
        })
        .map(|info| Arc::clone(&info.state))
}

impl<S, B, RB> Service<Request<B>> for Admitted<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = Response<InFlightBody<RB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            crate::metrics::shed(crate::metrics::Shed::Overloaded);
            return Box::pin(async { Ok(refusal(DomainError::Overloaded)) });
        };
        let deadline = client_timeout(request.headers())
            .map_or(self.timeout, |client| client.min(self.timeout));
        let connection = connection(request.extensions());
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let answer = tokio::time::timeout(deadline, async move {
                // Queued behind the connection's other calls: within the deadline too.
                let slot = match &connection {
                    Some(c) => Some(Arc::clone(&c.calls).acquire_owned().await),
                    None => None,
                };
                let in_flight = connection.as_ref().map(ConnectionState::begin_call);
                let response = inner.call(request).await;
                drop(slot);
                response.map(|r| r.map(|body| InFlightBody::new(body, in_flight)))
            })
            .await;
            drop(permit);
            match answer {
                Ok(response) => response,
                Err(_) => {
                    crate::metrics::shed(crate::metrics::Shed::DeadlineExceeded);
                    Ok(refusal(DomainError::DeadlineExceeded))
                }
            }
        })
    }
}

fn refusal<RB: Default>(error: DomainError) -> Response<InFlightBody<RB>> {
    Status::from(error).into_http()
}

/// A response body that keeps its call counted in flight on its connection until it ends, so an
/// open watch keeps an otherwise quiet connection from being closed as idle.
#[derive(Default)]
pub struct InFlightBody<B> {
    inner: B,
    _call: Option<CallInFlight>,
}

impl<B> InFlightBody<B> {
    fn new(inner: B, call: Option<CallInFlight>) -> Self {
        Self { inner, _call: call }
    }
}

impl<B: Body + Unpin> Body for InFlightBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tokio::sync::oneshot;
    use tonic::Code;

    use super::*;

    fn code<B>(response: &Response<B>) -> Option<Code> {
        Status::from_header_map(response.headers()).map(|s| s.code())
    }

    #[test]
    fn grpc_timeouts_parse() {
        let mut headers = HeaderMap::new();
        for (value, want) in [
            ("100m", Some(Duration::from_millis(100))),
            ("2S", Some(Duration::from_secs(2))),
            ("1H", Some(Duration::from_secs(3600))),
            ("5u", Some(Duration::from_micros(5))),
            ("x", None),
            ("10X", None),
            ("1234567890S", None),
        ] {
            headers.insert("grpc-timeout", value.parse().unwrap());
            assert_eq!(client_timeout(&headers), want, "{value}");
        }
    }

    /// A service whose calls finish when the test says so.
    #[derive(Clone)]
    struct Gate(Arc<std::sync::Mutex<Vec<oneshot::Receiver<()>>>>);

    impl Service<Request<()>> for Gate {
        type Response = Response<()>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Response<()>, Infallible>> + Send>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<()>) -> Self::Future {
            let gate = self.0.lock().unwrap().pop();
            Box::pin(async move {
                if let Some(gate) = gate {
                    let _ = gate.await;
                }
                Ok(Response::new(()))
            })
        }
    }

    #[tokio::test]
    async fn beyond_the_limit_a_call_is_shed_at_once() {
        let (open, gate) = oneshot::channel();
        let gates = Gate(Arc::new(std::sync::Mutex::new(vec![gate])));
        let mut service = AdmissionLayer::new(1, Duration::from_secs(60)).layer(gates);
        let held = tokio::spawn(service.call(Request::new(())));
        tokio::task::yield_now().await;
        let shed = service.call(Request::new(())).await.unwrap();
        assert_eq!(code(&shed), Some(Code::ResourceExhausted));
        let status = Status::from_header_map(shed.headers()).unwrap();
        use tonic_types::StatusExt;
        let details = status.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "OVERLOADED");
        assert!(details.retry_info().is_some());
        open.send(()).unwrap();
        let done = held.await.unwrap().unwrap();
        assert_eq!(code(&done), None, "the admitted call succeeds");
        // Its permit is back.
        let after = service.call(Request::new(())).await.unwrap();
        assert_eq!(code(&after), None);
    }

    #[tokio::test]
    async fn rest_calls_take_permits_from_the_same_budget() {
        let layer = AdmissionLayer::new(1, Duration::from_secs(60));
        let extensions = Extensions::new();
        // While one REST call holds the only permit, another REST call and a gRPC call are shed.
        let (rest, grpc) = layer
            .run(&extensions, async {
                let rest = layer.run(&extensions, async {}).await;
                let grpc = layer
                    .layer(Gate(Default::default()))
                    .call(Request::new(()))
                    .await
                    .unwrap();
                (rest, code(&grpc))
            })
            .await
            .expect("the first call is admitted");
        assert!(matches!(rest, Err(DomainError::Overloaded)), "{rest:?}");
        assert_eq!(grpc, Some(Code::ResourceExhausted));
        assert!(
            layer.run(&extensions, async {}).await.is_ok(),
            "the permit is back"
        );
    }

    #[tokio::test]
    async fn the_sooner_deadline_ends_a_call_as_deadline_exceeded() {
        let (_never, gate) = oneshot::channel();
        let gates = Gate(Arc::new(std::sync::Mutex::new(vec![gate])));
        // The server's own deadline is an hour: only the client's 200 ms can end this call.
        let mut service = AdmissionLayer::new(4, Duration::from_secs(3600)).layer(gates);
        let mut request = Request::new(());
        request
            .headers_mut()
            .insert("grpc-timeout", "200m".parse().unwrap());
        let response = tokio::time::timeout(Duration::from_secs(600), service.call(request))
            .await
            .expect("the client's deadline ended the call")
            .unwrap();
        assert_eq!(code(&response), Some(Code::DeadlineExceeded));
    }
}
