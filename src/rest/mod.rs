//! The REST front door: cal.com, Close and Clerk membership routes on the gRPC port, so a team
//! that calls one of those vendors switches by changing a base URL. Each route translates the
//! vendor's JSON into the protobuf request, calls the gRPC service implementation in-process
//! (so validation, scopes, tenancy, the actor policy and every rule run unchanged), and
//! translates the answer back. Requests that are not gRPC (`application/grpc*`) are routed here
//! by [`RestLayer`] before the gRPC-only layers.

mod auth;
pub mod calcom;
pub mod clerk;
pub mod close;
pub mod errors;
pub mod openapi;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tower::{BoxError, Layer, Service, ServiceExt};
use tracing::Instrument;

use crate::api::Context;
use crate::api::admission::AdmissionLayer;
use crate::api::directory::DirectoryApi;
use crate::api::memberships::MembershipApi;
use crate::api::roles::RoleApi;
use crate::domain::DomainError;
use errors::{RestError, Vendor};

/// What every route handler needs: the services it calls in-process.
#[derive(Clone)]
pub struct Rest {
    context: Context,
}

impl Rest {
    fn memberships(&self) -> MembershipApi {
        MembershipApi(self.context.clone())
    }

    fn roles(&self) -> RoleApi {
        RoleApi(self.context.clone())
    }

    fn directory(&self) -> DirectoryApi {
        DirectoryApi(self.context.clone())
    }
}

/// The REST routes and `/openapi.json`, each call admitted like a gRPC call (same in-flight
/// budget and deadline) inside an `rpc` span.
pub fn router(context: Context, admission: AdmissionLayer) -> axum::Router {
    let (routes, api) = openapi::routes().split_for_parts();
    let document = Bytes::from(api.to_json().unwrap_or_else(|_| "{}".into()));
    routes
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let document = document.clone();
                async move { ([(http::header::CONTENT_TYPE, "application/json")], document) }
            }),
        )
        .route_layer(axum::middleware::from_fn_with_state(admission, admit))
        .fallback(not_found)
        .with_state(Rest { context })
}

async fn not_found(request: Request) -> Response {
    let path = request.uri().path().to_string();
    RestError(
        Vendor::of(&path),
        DomainError::not_found(format_args!("route {} {path}", request.method())).into(),
    )
    .into_response()
}

/// Admission and the span of one REST call.
async fn admit(State(admission): State<AdmissionLayer>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_string(),
        |p| p.as_str().to_string(),
    );
    let vendor = Vendor::of(request.uri().path());
    let span = crate::telemetry::rpc_span(&format!("{} {route}", request.method()));
    let extensions = request.extensions().clone();
    let started = Instant::now();
    async move {
        let response = match admission.run(&extensions, next.run(request)).await {
            Ok(response) => response,
            Err(e) => RestError(vendor, e.into()).into_response(),
        };
        tracing::Span::current().record("latency_us", started.elapsed().as_micros() as u64);
        let status = response.status().as_u16();
        if status < 400 {
            tracing::debug!(status, "rest call done");
        } else {
            tracing::info!(status, "rest call failed");
        }
        response
    }
    .instrument(span)
    .await
}

/// Sends everything that is not gRPC (`content-type: application/grpc…`, gRPC-web included) to
/// the REST router, ahead of the gRPC-only layers (span, admission, malformed-request and auth
/// layers answer in gRPC terms).
#[derive(Clone)]
pub struct RestLayer {
    router: axum::Router,
}

impl RestLayer {
    pub fn new(router: axum::Router) -> Self {
        Self { router }
    }
}

impl<S> Layer<S> for RestLayer {
    type Service = RestOrGrpc<S>;
    fn layer(&self, grpc: S) -> Self::Service {
        RestOrGrpc {
            grpc,
            rest: self.router.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RestOrGrpc<S> {
    grpc: S,
    rest: axum::Router,
}

fn is_grpc<B>(request: &http::Request<B>) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

impl<S, B, RB> Service<http::Request<B>> for RestOrGrpc<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.grpc.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if is_grpc(&request) {
            // Called at once on the instance that was polled ready: no clone of the stack.
            let call = self.grpc.call(request);
            Box::pin(async move {
                call.await
                    .map(|r| r.map(tonic::body::Body::new))
                    .map_err(Into::into)
            })
        } else {
            let rest = self.rest.clone();
            Box::pin(async move {
                let response = match rest.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                Ok(response.map(tonic::body::Body::new))
            })
        }
    }
}

/// Parses a path id; anything else is INVALID_ARGUMENT naming the parameter.
fn path_id(vendor: Vendor, field: &str, value: &str) -> Result<i64, RestError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| errors::invalid(vendor, field, "must be a positive integer id"))
}

/// Parses a JSON body; an empty body is `{}`.
fn json_body<T: serde::de::DeserializeOwned>(vendor: Vendor, body: &Bytes) -> Result<T, RestError> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(text).map_err(|e| errors::invalid(vendor, "body", e.to_string()))
}

/// Milliseconds since the epoch of a protobuf timestamp (Clerk's times).
fn millis(t: &Option<prost_types::Timestamp>) -> i64 {
    t.as_ref()
        .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// RFC 3339 UTC with milliseconds (cal.com's times).
fn rfc3339(t: &Option<prost_types::Timestamp>) -> String {
    let t = t.unwrap_or_default();
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A protobuf Struct as a JSON object (`{}` when absent).
fn object(s: Option<prost_types::Struct>) -> serde_json::Map<String, serde_json::Value> {
    s.map(crate::api::convert::from_struct).unwrap_or_default()
}

/// An `If-Match` header: the etag an update must apply to (else 412, as a gRPC `etag` gives
/// ABORTED).
fn if_match(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(http::header::IF_MATCH)?.to_str().ok()?.trim();
    let value = value.strip_prefix("W/").unwrap_or(value);
    Some(value.trim_matches('"').to_string())
}
