//! What every role shows its operator: `/metrics` (Prometheus text, from the `prometheus`
//! crate) and `/health` (200 when the role's own dependencies are reachable, 503 with a JSON
//! reason otherwise) on its `metrics_listen` address, the status of its links, rates for the
//! dashboards, and the checks of its config values.

pub mod admin;
pub mod bearer;
pub mod config_check;
pub mod rate;
pub mod status;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, IntCounter, IntGauge, Opts, Registry, TextEncoder};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Errors starting the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum OpsHttpError {
    /// The address could not be bound.
    #[error("cannot listen for /metrics and /health on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// A role's health check: `Ok(details)` (a JSON object added to `{"status":"ok"}`, e.g. which
/// peer is in use), or `Err(reason)` when a dependency is unreachable.
pub type HealthCheck = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<serde_json::Value, String>> + Send>>
        + Send
        + Sync,
>;

/// Builds a counter sample for a scrape-time collector (values come from the role's atomics).
pub fn counter(name: &str, help: &str, value: u64) -> Option<prometheus::proto::MetricFamily> {
    let c = IntCounter::with_opts(Opts::new(name, help)).ok()?;
    c.inc_by(value);
    prometheus::core::Collector::collect(&c).pop()
}

/// Builds a floating-point gauge sample (rates, hashrates beyond `i64`).
pub fn float_gauge(name: &str, help: &str, value: f64) -> Option<prometheus::proto::MetricFamily> {
    let g = prometheus::Gauge::with_opts(Opts::new(name, help)).ok()?;
    g.set(value);
    prometheus::core::Collector::collect(&g).pop()
}

/// A latency histogram in seconds, buckets from 50 µs doubling to about 1.6 s.
pub fn latency_histogram(name: &str, help: &str) -> prometheus::Histogram {
    let buckets = prometheus::exponential_buckets(0.000_05, 2.0, 16).unwrap_or_default();
    // Constant, valid options (a name, help and increasing buckets): construction cannot fail.
    prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(name, help).buckets(buckets))
        .expect("constant histogram options")
}

/// Registers extra collectors (histograms the role observes directly) in `registry`.
pub fn register_all(
    registry: Registry,
    collectors: Vec<Box<dyn prometheus::core::Collector>>,
) -> Registry {
    for c in collectors {
        if let Err(e) = registry.register(c) {
            tracing::error!(error = %e, "cannot register metrics collector");
        }
    }
    registry
}

/// Builds a gauge sample for a scrape-time collector.
pub fn gauge(name: &str, help: &str, value: i64) -> Option<prometheus::proto::MetricFamily> {
    let g = IntGauge::with_opts(Opts::new(name, help)).ok()?;
    g.set(value);
    prometheus::core::Collector::collect(&g).pop()
}

async fn metrics(registry: Arc<Registry>) -> Response {
    let mut buf = Vec::new();
    match TextEncoder::new().encode(&registry.gather(), &mut buf) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                TextEncoder::new().format_type().to_string(),
            )],
            buf,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn health(check: HealthCheck) -> Response {
    let (status, body) = match check().await {
        Ok(details) => {
            let mut body = serde_json::json!({"status": "ok"});
            if let (Some(b), serde_json::Value::Object(d)) = (body.as_object_mut(), details) {
                b.extend(d);
            }
            (StatusCode::OK, body)
        }
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unavailable", "reason": reason}),
        ),
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The router with `/metrics` and `/health`.
pub fn router(registry: Registry, check: HealthCheck) -> Router {
    let registry = Arc::new(registry);
    Router::new()
        .route("/metrics", get(move || metrics(registry.clone())))
        .route("/health", get(move || health(check.clone())))
}

/// Binds `addr`; returns the listener and the address it got.
pub(crate) async fn bind(
    addr: SocketAddr,
) -> Result<(tokio::net::TcpListener, SocketAddr), std::io::Error> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Serves `app` on `listener` until `shutdown` (handlers may ask for the peer's address).
pub(crate) fn spawn_server(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
    what: &'static str,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let r = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
        if let Err(e) = r {
            tracing::error!(error = %e, server = what, "HTTP server stopped");
        }
    })
}

/// Binds `addr` and serves `/metrics`, `/health` and the role's own `routes` (its dashboard)
/// until `shutdown`; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
    check: HealthCheck,
    routes: Router,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), OpsHttpError> {
    let (listener, bound) = bind(addr)
        .await
        .map_err(|source| OpsHttpError::Bind { addr, source })?;
    let app = router(registry, check).merge(routes);
    Ok((bound, spawn_server(listener, app, shutdown, "metrics")))
}

/// Serves the endpoint if the role configured `metrics_listen`; the serving task joins `tasks`.
pub async fn serve_configured(
    listen: Option<SocketAddr>,
    registry: impl FnOnce() -> Registry,
    check: impl FnOnce() -> HealthCheck,
    routes: impl FnOnce() -> Router,
    shutdown: CancellationToken,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Option<SocketAddr>, OpsHttpError> {
    let Some(addr) = listen else {
        return Ok(None);
    };
    let (bound, task) = serve(addr, registry(), check(), routes(), shutdown).await?;
    tasks.push(task);
    Ok(Some(bound))
}

/// A collector whose samples are built at scrape time by a closure (the roles keep their
/// counters in atomics; this turns a snapshot of them into metric families).
pub struct FnCollector {
    collect: Box<dyn Fn() -> Vec<prometheus::proto::MetricFamily> + Send + Sync>,
}

impl FnCollector {
    /// Wraps `collect`.
    pub fn new(
        collect: impl Fn() -> Vec<prometheus::proto::MetricFamily> + Send + Sync + 'static,
    ) -> Self {
        Self {
            collect: Box::new(collect),
        }
    }

    /// A registry holding just this collector.
    pub fn registry(self) -> Registry {
        let r = Registry::new();
        if let Err(e) = r.register(Box::new(self)) {
            tracing::error!(error = %e, "cannot register metrics collector");
        }
        r
    }
}

impl prometheus::core::Collector for FnCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        (self.collect)()
    }
}

/// A counter family with one label, one sample per `(label value, count)`.
pub fn labelled_counter(
    name: &str,
    help: &str,
    label: &str,
    values: &[(String, u64)],
) -> Option<prometheus::proto::MetricFamily> {
    let v = prometheus::IntCounterVec::new(Opts::new(name, help), &[label]).ok()?;
    for (l, n) in values {
        v.with_label_values(&[l.as_str()]).inc_by(*n);
    }
    prometheus::core::Collector::collect(&v).pop()
}

/// A gauge family with one label, one sample per `(label value, value)`.
pub fn labelled_gauge(
    name: &str,
    help: &str,
    label: &str,
    values: &[(String, i64)],
) -> Option<prometheus::proto::MetricFamily> {
    let v = prometheus::IntGaugeVec::new(Opts::new(name, help), &[label]).ok()?;
    for (l, n) in values {
        v.with_label_values(&[l.as_str()]).set(*n);
    }
    prometheus::core::Collector::collect(&v).pop()
}
