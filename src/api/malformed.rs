//! tonic answers a request body it cannot decode (invalid UTF-8 in a string, a truncated varint,
//! nesting past its recursion limit) with INTERNAL. The client caused it, so this layer turns
//! that answer into INVALID_ARGUMENT `MALFORMED_REQUEST`; nothing reached a handler.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::Status;
use tower::{Layer, Service};

use crate::domain::DomainError;

#[derive(Clone, Copy, Default)]
pub struct MalformedRequestLayer;

impl<S> Layer<S> for MalformedRequestLayer {
    type Service = MalformedRequest<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MalformedRequest { inner }
    }
}

#[derive(Clone)]
pub struct MalformedRequest<S> {
    inner: S,
}

/// tonic's own words for a body its codec could not decode, as they travel (percent-encoded).
const DECODE_FAILURE: &str = "failed%20to%20decode%20Protobuf%20message";

fn is_decode_failure<B>(response: &Response<B>) -> bool {
    let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok());
    header("grpc-status") == Some("13")
        && header("grpc-message").is_some_and(|m| m.starts_with(DECODE_FAILURE))
}

impl<S, B, RB> Service<Request<B>> for MalformedRequest<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
    RB: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            if !is_decode_failure(&response) {
                return Ok(response);
            }
            Ok(malformed().into_http())
        })
    }
}

fn malformed() -> Status {
    DomainError::Malformed(
        "the request is not a valid protobuf message of this method's type (truncated, invalid \
         UTF-8, or nested too deep)"
            .into(),
    )
    .into()
}
