//! tonic answers a request body it cannot decode (invalid UTF-8 in a string, a truncated varint,
//! nesting past its recursion limit) with INTERNAL. The client caused it, so this layer turns
//! that answer into INVALID_ARGUMENT `MALFORMED_REQUEST`; a body over the size limit, which
//! tonic answers OUT_OF_RANGE without details, becomes RESOURCE_EXHAUSTED `MESSAGE_TOO_LARGE`.
//! Nothing reached a handler.

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
/// tonic's words for a body over `max_decoding_message_size`.
const TOO_LARGE: &str = "Error,%20decoded%20message%20length%20too%20large";

/// What tonic's codec refused of the request body, if anything.
fn codec_refusal<B>(response: &Response<B>) -> Option<DomainError> {
    let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok());
    let message = header("grpc-message")?;
    match header("grpc-status")? {
        "13" if message.starts_with(DECODE_FAILURE) => Some(DomainError::Malformed(
            "the request is not a valid protobuf message of this method's type (truncated, \
             invalid UTF-8, or nested too deep)"
                .into(),
        )),
        "11" if message.starts_with(TOO_LARGE) => Some(DomainError::MessageTooLarge(
            percent_decode(message).replacen("Error, decoded", "the request", 1),
        )),
        _ => None,
    }
}

/// grpc-message is percent-encoded; tonic's own texts only escape spaces, commas and colons.
fn percent_decode(text: &str) -> String {
    text.replace("%20", " ")
        .replace("%2C", ",")
        .replace("%3A", ":")
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
            Ok(match codec_refusal(&response) {
                Some(refusal) => Status::from(refusal).into_http(),
                None => response,
            })
        })
    }
}
