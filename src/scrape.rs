//! The `/metrics` endpoint: the process's event series (see `metrics`), then the levels of this
//! server — its pool, caches and feed — read at each scrape.

use std::net::SocketAddr;
use std::sync::Arc;

use ::metrics::{Key, Label, Recorder};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::net::TcpListener;

use crate::cache::AccessCache;
use crate::feed::Feed;
use crate::metrics::{
    CACHE_ENTRIES, FEED_APPLIED, FEED_HEAD, HEAD_QUERY_TIMEOUT, METADATA, POOL_CONNECTIONS,
    UPKEEP_EVERY,
};
use crate::storage::Store;

/// What the levels of one server are read from at each scrape.
pub struct Levels {
    store: Store,
    cache: Arc<AccessCache>,
    feed: Arc<Feed>,
}

impl Levels {
    pub fn new(store: Store, cache: Arc<AccessCache>, feed: Arc<Feed>) -> Self {
        Self { store, cache, feed }
    }

    /// The levels in the exposition format, from a recorder of their own: a fresh one per
    /// scrape, so a value that cannot be read now (the database head) is left out, not stale.
    async fn render(&self) -> String {
        let recorder = PrometheusBuilder::new().build_recorder();
        let gauge = |name: &'static str, labels: Vec<Label>, value: u64| {
            recorder
                .register_gauge(&Key::from_parts(name, labels), &METADATA)
                .set(value as f64);
        };
        recorder.describe_gauge(
            POOL_CONNECTIONS.into(),
            None,
            "Database pool connections: in_use, idle, and the max the pool opens".into(),
        );
        let pool = self.store.pool_use();
        for (state, value) in [
            ("in_use", pool.in_use()),
            ("idle", u64::from(pool.idle)),
            ("max", u64::from(pool.max)),
        ] {
            gauge(POOL_CONNECTIONS, vec![Label::new("state", state)], value);
        }
        recorder.describe_gauge(CACHE_ENTRIES.into(), None, "Entries held, by cache".into());
        for (cache, entries) in self.cache.entry_counts() {
            gauge(
                CACHE_ENTRIES,
                vec![Label::new("cache", cache.as_str())],
                entries,
            );
        }
        recorder.describe_gauge(
            FEED_APPLIED.into(),
            None,
            "Last event sequence this server has read, applied to its cache and delivered".into(),
        );
        let applied = self.feed.head();
        gauge(FEED_APPLIED, Vec::new(), applied.max(0) as u64);
        recorder.describe_gauge(
            FEED_HEAD.into(),
            None,
            "Last event sequence committed in the database (any server's)".into(),
        );
        match tokio::time::timeout(HEAD_QUERY_TIMEOUT, self.store.feed_head()).await {
            Ok(Ok(head)) => gauge(FEED_HEAD, Vec::new(), head.last.max(0) as u64),
            Ok(Err(error)) => tracing::debug!(%error, "metrics: cannot read the feed head"),
            Err(_) => tracing::debug!("metrics: the feed head query timed out"),
        }
        recorder.handle().render()
    }
}

/// The whole exposition: the process's event series, then this server's levels.
async fn exposition(levels: &Levels) -> String {
    let mut text = crate::metrics::render_events().unwrap_or_default();
    text.push_str(&levels.render().await);
    text
}

async fn scrape(State(levels): State<Arc<Levels>>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        exposition(&levels).await,
    )
}

/// Serves `GET /metrics` on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, levels: Levels) {
    crate::metrics::enable();
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a: SocketAddr| a.to_string());
    tracing::info!(listen = %addr, "serving Prometheus metrics at /metrics");
    let router = axum::Router::new()
        .route("/metrics", get(scrape))
        .with_state(Arc::new(levels));
    let upkeep = async {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            crate::metrics::upkeep();
        }
    };
    tokio::select! {
        served = axum::serve(listener, router) => if let Err(error) = served {
            tracing::warn!(%error, "the metrics listener failed");
        },
        _ = upkeep => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pool_use_counts_connections_in_use() {
        let dir = std::env::temp_dir().join(format!(
            "membership-metrics-pool-test-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("m.db").display());
        let store = Store::connect(&url, 3).await.unwrap();
        let pool = store.conn().get_sqlite_connection_pool();
        let held = pool.acquire().await.unwrap();
        let used = store.pool_use();
        // The connection the pool opened at connect may still be on its way back to idle.
        assert!((1..=2).contains(&used.in_use()), "{used:?}");
        assert_eq!(used.max, 3);
        assert!(!used.exhausted(), "{used:?}");
        drop(held);
        store.close().await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
