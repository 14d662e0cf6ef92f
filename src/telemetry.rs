//! Logs, and the span every RPC runs in (method, status code, latency, the ids involved).

use std::io::IsTerminal;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Logs to stderr at `default_level` unless `RUST_LOG` says otherwise. Colours only on a
/// terminal: a log file or collector gets plain text.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second init (tests start several servers) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The span of one call, gRPC or REST (`method` is then `VERB /route`): handlers record the ids
/// they act on into it (`trace_ids!`).
pub fn rpc_span(method: &str) -> tracing::Span {
    tracing::info_span!(
        "rpc",
        method = %method,
        code = tracing::field::Empty,
        latency_us = tracing::field::Empty,
        user_id = tracing::field::Empty,
        team_id = tracing::field::Empty,
        organization_id = tracing::field::Empty,
        membership_id = tracing::field::Empty,
        role_id = tracing::field::Empty,
        attribute_id = tracing::field::Empty,
        key_id = tracing::field::Empty,
        invitation_id = tracing::field::Empty,
    )
}

/// Wraps each gRPC call in an `rpc` span and logs its outcome.
#[derive(Clone, Copy, Default)]
pub struct RpcSpanLayer;

impl<S> Layer<S> for RpcSpanLayer {
    type Service = RpcSpan<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RpcSpan { inner }
    }
}

#[derive(Clone)]
pub struct RpcSpan<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for RpcSpan<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = request.uri().path().to_string();
        let span = rpc_span(&method);
        let mut inner = self.inner.clone();
        let started = Instant::now();
        let metrics = crate::metrics::rpc_started(&method);
        Box::pin(
            async move {
                let result = inner.call(request).await;
                let span = tracing::Span::current();
                let latency = started.elapsed().as_micros() as u64;
                span.record("latency_us", latency);
                if let Ok(response) = &result {
                    // Errors travel as a trailers-only response with the code in the headers;
                    // an answer without it succeeded.
                    let code = response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .unwrap_or(0);
                    span.record("code", code);
                    if let Some(metrics) = metrics {
                        metrics.finish(code);
                    }
                    if code == 0 || method.starts_with("/grpc.") {
                        tracing::debug!("rpc done");
                    } else {
                        tracing::info!(code = ?tonic::Code::from_i32(code), "rpc failed");
                    }
                }
                result
            }
            .instrument(span),
        )
    }
}
