//! The tower layer that authenticates every call and checks its scope before the handler runs,
//! so no handler can forget to. The handler receives the authenticated [`Caller`] in the
//! request extensions (see `api::actor`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Request, Response};
use tonic::Status;
use tower::{Layer, Service};

use super::scopes::{self, Access};
use crate::auth::{Authenticator, Caller};
use crate::domain::{DomainError, Reason};

/// Wraps every service of the server; see [`scopes`] for the table it applies.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(auth: Arc<Authenticator>) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authorized<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Authorized {
            inner,
            auth: Arc::clone(&self.auth),
        }
    }
}

#[derive(Clone)]
pub struct Authorized<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

/// Refuses a method the scope table does not list: served unchecked it would be open to all.
fn unlisted(path: &str) -> DomainError {
    DomainError::PermissionDenied {
        reason: Reason::MissingScope,
        message: format!("no API key scope grants {path}"),
        metadata: [("method".to_string(), path.to_string())]
            .into_iter()
            .collect(),
    }
}

/// The caller of a call to `path`, with the scope the method needs; `None` for open services.
/// The REST front door asks the same for the gRPC method a route calls.
pub(crate) async fn authorize(
    auth: &Authenticator,
    path: &str,
    headers: &HeaderMap,
) -> Result<Option<Caller>, Status> {
    let scope = match scopes::access(path) {
        Access::Open => return Ok(None),
        Access::Unlisted => return Err(unlisted(path).into()),
        Access::Scoped(scope) => scope,
    };
    let caller = auth.authenticate(headers).await?;
    caller.require(scope)?;
    Ok(Some(caller))
}

impl<S, B, RB> Service<Request<B>> for Authorized<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The instance that was polled ready serves this call; the clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = Arc::clone(&self.auth);
        Box::pin(async move {
            match authorize(&auth, request.uri().path(), request.headers()).await {
                Ok(Some(caller)) => {
                    request.extensions_mut().insert(caller);
                }
                Ok(None) => {}
                // A trailers-only answer, as tonic sends for a handler's error.
                Err(status) => return Ok(status.into_http()),
            }
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Mutex;

    use tonic::Code;
    use tonic_types::StatusExt;

    use super::*;
    use crate::auth::{ACTOR_HEADER, create_key};
    use crate::storage::Store;

    /// Stands in for the gRPC services: records the caller each call it receives carries.
    #[derive(Clone, Default)]
    struct Recorder {
        calls: Arc<Mutex<Vec<Option<Caller>>>>,
    }

    impl Service<Request<()>> for Recorder {
        type Response = Response<()>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<()>, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<()>) -> Self::Future {
            let caller = request.extensions().get::<Caller>().cloned();
            self.calls.lock().unwrap().push(caller);
            std::future::ready(Ok(Response::new(())))
        }
    }

    struct Fixture {
        store: Store,
        service: Authorized<Recorder>,
        calls: Arc<Mutex<Vec<Option<Caller>>>>,
    }

    async fn fixture() -> Fixture {
        let store = Store::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        let recorder = Recorder::default();
        let calls = Arc::clone(&recorder.calls);
        let cache = Arc::new(crate::cache::AccessCache::new(100));
        let service = AuthLayer::new(Authenticator::new(store.clone(), cache)).layer(recorder);
        Fixture {
            store,
            service,
            calls,
        }
    }

    impl Fixture {
        async fn key(&self, scopes: &[&str]) -> String {
            let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
            create_key(&self.store, "test", &scopes).await.unwrap()
        }

        /// Calls `path` with these headers: the refusal, if the layer refused it.
        async fn call(&mut self, path: &str, headers: &[(&'static str, &str)]) -> Option<Status> {
            let mut request = Request::builder().uri(path);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = self.service.call(request.body(()).unwrap()).await.unwrap();
            Status::from_header_map(response.headers())
        }

        fn handled(&self) -> Vec<Option<Caller>> {
            std::mem::take(&mut *self.calls.lock().unwrap())
        }
    }

    fn bearer(key: &str) -> String {
        format!("Bearer {key}")
    }

    fn reason(status: &Status) -> String {
        status
            .get_error_details()
            .error_info()
            .map(|info| info.reason.clone())
            .unwrap_or_default()
    }

    const UPDATE: &str = "/membership.v1.MembershipService/UpdateMembership";
    const WATCH: &str = "/membership.v1.EventService/WatchEvents";

    #[tokio::test]
    async fn hands_the_caller_to_the_handler() {
        let mut f = fixture().await;
        let key = f.key(&["memberships.write"]).await;
        let refused = f
            .call(
                UPDATE,
                &[("authorization", &bearer(&key)), (ACTOR_HEADER, "7")],
            )
            .await;
        assert!(refused.is_none(), "{refused:?}");
        let handled = f.handled();
        let caller = handled[0].as_ref().expect("the caller in the extensions");
        assert!(caller.key_id.starts_with("key_"));
        assert_eq!(caller.actor_user_id, Some(7));
    }

    #[tokio::test]
    async fn refuses_before_the_handler() {
        let mut f = fixture().await;
        let reader = f.key(&["memberships.read"]).await;
        let writer = f.key(&["memberships.write"]).await;
        let admin = f.key(&["admin"]).await;

        let status = f.call(UPDATE, &[]).await.expect("no key");
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(reason(&status), "API_KEY_UNKNOWN");

        let status = f
            .call(UPDATE, &[("authorization", "Bearer mk_nobody_knows")])
            .await
            .expect("unknown key");
        assert_eq!(status.code(), Code::Unauthenticated);

        let status = f
            .call(UPDATE, &[("authorization", &bearer(&reader))])
            .await
            .expect("read key writing");
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(reason(&status), "MISSING_SCOPE");

        // The streaming RPC goes through the same check.
        let status = f
            .call(WATCH, &[("authorization", &bearer(&writer))])
            .await
            .expect("watch without events.read");
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(reason(&status), "MISSING_SCOPE");

        let status = f
            .call(
                UPDATE,
                &[
                    ("authorization", &bearer(&writer)),
                    (ACTOR_HEADER, "7"),
                    (ACTOR_HEADER, "8"),
                ],
            )
            .await
            .expect("two actors");
        assert_eq!(status.code(), Code::InvalidArgument);

        // A method the table does not list is refused even to an admin key.
        let status = f
            .call(
                "/membership.v1.MembershipService/DropEverything",
                &[("authorization", &bearer(&admin))],
            )
            .await
            .expect("an unlisted method");
        assert_eq!(status.code(), Code::PermissionDenied);

        assert!(f.handled().is_empty(), "no refused call reached a handler");
    }

    #[tokio::test]
    async fn health_and_reflection_need_no_key() {
        let mut f = fixture().await;
        for path in [
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert!(f.call(path, &[]).await.is_none(), "{path}");
        }
        assert_eq!(f.handled(), vec![None, None, None]);
    }
}
