//! The proxy dashboard: wallet, miners and pool pages (embedded, see `hashpool-web`) and the
//! JSON they poll, served next to `/metrics` and `/health`.
//!
//! The wallet page can spend ehash, so the API is for localhost unless a token is configured;
//! with a token every `/api/` request must carry it (`Authorization: Bearer`).

mod wallet_api;

use crate::board::{MinerRow, ProxyBoard, UpstreamView};
use crate::stats::TranslatorStats;
use crate::EhashWallet;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use hashpool_ops_http::status::ServiceStatus;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::watch;

/// What the dashboard reads and acts on.
pub struct ProxyDashboard {
    /// Counters.
    pub stats: Arc<TranslatorStats>,
    /// Published snapshots of the bridge.
    pub board: Arc<ProxyBoard>,
    /// The wallet, once the mint is known.
    pub wallet: watch::Receiver<Option<Arc<EhashWallet>>>,
    token: Option<String>,
    cache: wallet_api::WalletCache,
}

impl ProxyDashboard {
    /// A dashboard; `token` protects its API when set.
    pub fn new(
        stats: Arc<TranslatorStats>,
        board: Arc<ProxyBoard>,
        wallet: watch::Receiver<Option<Arc<EhashWallet>>>,
        token: Option<String>,
    ) -> Self {
        Self {
            stats,
            board,
            wallet,
            token,
            cache: wallet_api::WalletCache::default(),
        }
    }

    fn wallet(&self) -> Option<Arc<EhashWallet>> {
        self.wallet.borrow().clone()
    }
}

/// A JSON error answer.
pub(crate) fn error(status: StatusCode, detail: impl ToString) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": status.as_str(), "detail": detail.to_string() })),
    )
        .into_response()
}

/// The host part of a `Host` header value (`name`, `1.2.3.4`, `[::1]`, with or without port).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Without a token the API trusts only this machine's browser: a page from elsewhere must not
/// reach it, neither by a form post nor by a DNS name rebound to 127.0.0.1.
fn same_machine_request(req: &Request) -> Result<(), &'static str> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(host_name)
        .unwrap_or_default();
    // An IP literal cannot be rebound; a name can, unless it is `localhost`.
    if host != "localhost" && host.parse::<std::net::IpAddr>().is_err() {
        return Err("unexpected Host: open the dashboard by IP address or localhost");
    }
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // A cross-site form can post, but not with a JSON content type without a preflight.
    if req.method() == axum::http::Method::POST && !json {
        return Err("wallet actions are JSON requests");
    }
    Ok(())
}

async fn require_token(State(d): State<Arc<ProxyDashboard>>, req: Request, next: Next) -> Response {
    let Some(expected) = d.token.as_deref() else {
        return match same_machine_request(&req) {
            Ok(()) => next.run(req).await,
            Err(why) => {
                tracing::warn!(path = %req.uri().path(), why, "dashboard request refused");
                error(StatusCode::FORBIDDEN, why)
            }
        };
    };
    if hashpool_ops_http::bearer::matches(req.headers(), expected) {
        next.run(req).await
    } else {
        tracing::warn!(path = %req.uri().path(), "dashboard request without a valid token refused");
        error(
            StatusCode::UNAUTHORIZED,
            "this dashboard needs its token: open the page with ?token=…",
        )
    }
}

#[derive(Serialize)]
struct MinersAnswer {
    hashrate: f64,
    history: Vec<(i64, f64)>,
    miners: Vec<MinerRow>,
}

async fn miners(State(d): State<Arc<ProxyDashboard>>) -> Json<MinersAnswer> {
    Json(MinersAnswer {
        hashrate: d.board.hashrate(),
        history: d.board.history(),
        miners: d.board.miners(),
    })
}

#[derive(Serialize)]
struct UpstreamAnswer {
    pool_address: String,
    pool_failovers: u64,
    #[serde(flatten)]
    link: ServiceStatus,
    #[serde(flatten)]
    view: UpstreamView,
    shares_submitted: u64,
    shares_accepted: u64,
    shares_rejected: u64,
    blocks: Vec<ehash_api::BlockCredit>,
    blocks_error: Option<String>,
}

async fn upstream(State(d): State<Arc<ProxyDashboard>>) -> Json<UpstreamAnswer> {
    let (blocks, blocks_error) = match d.cache.pool_blocks(d.wallet()).await {
        Ok(b) => (b, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    Json(UpstreamAnswer {
        pool_address: d.stats.pool_failover.active(),
        pool_failovers: d.stats.pool_failover.failovers(),
        link: d.stats.pool_link.status(),
        view: d.board.upstream(),
        shares_submitted: l(&d.stats.shares_submitted),
        shares_accepted: l(&d.stats.shares_accepted),
        shares_rejected: l(&d.stats.shares_rejected),
        blocks,
        blocks_error,
    })
}

/// The dashboard's routes.
pub fn router(dashboard: Arc<ProxyDashboard>) -> Router {
    use hashpool_web::{page_route, Page};
    let api = Router::new()
        .route("/api/miners", get(miners))
        .route("/api/upstream", get(upstream))
        .merge(wallet_api::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            dashboard.clone(),
            require_token,
        ))
        .with_state(dashboard);
    Router::new()
        .route("/", get(|| async { Redirect::to("/wallet") }))
        .merge(page_route(&["/wallet"], Page::ProxyWallet))
        .merge(page_route(&["/miners"], Page::ProxyMiners))
        .merge(page_route(&["/pool"], Page::ProxyPool))
        .merge(hashpool_web::assets())
        .merge(api)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Status code of a GET over a real loopback socket.
    async fn status(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> u16 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!("GET {path} HTTP/1.0\r\nHost: x\r\n{auth}\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).to_string();
        text.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn a_configured_token_guards_the_api_not_the_pages() {
        let (_wallet_tx, wallet) = watch::channel(None);
        let d = Arc::new(ProxyDashboard::new(
            Arc::default(),
            Arc::default(),
            wallet,
            Some("sixteen-chars-token".into()),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router(d)).await });
        assert_eq!(status(addr, "/api/miners", None).await, 401);
        assert_eq!(
            status(addr, "/api/wallet", Some("wrong-token-xxxxxxx")).await,
            401
        );
        assert_eq!(
            status(addr, "/api/miners", Some("sixteen-chars-token")).await,
            200
        );
        // The wallet opens once the pool announces its mint: until then it says so.
        let w = status(addr, "/api/wallet", Some("sixteen-chars-token")).await;
        assert_eq!(w, 200);
        assert_eq!(status(addr, "/wallet", None).await, 200);
        assert_eq!(status(addr, "/assets/proxy.js", None).await, 200);
    }

    #[tokio::test]
    async fn without_a_token_only_this_machines_pages_may_call() {
        let (_wallet_tx, wallet) = watch::channel(None);
        let d = Arc::new(ProxyDashboard::new(
            Arc::default(),
            Arc::default(),
            wallet,
            None,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router(d)).await });
        let call = |host: &'static str, method: &'static str, ty: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let req = format!(
                "{method} /api/wallet/redeem HTTP/1.0\r\nHost: {host}\r\nContent-Type: {ty}\r\nContent-Length: 2\r\n\r\n{{}}"
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.unwrap();
            let text = String::from_utf8_lossy(&buf).to_string();
            text.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u16>()
                .unwrap()
        };
        // A DNS name rebound to 127.0.0.1, and a cross-site form post: refused.
        assert_eq!(
            call("evil.example:34256", "POST", "application/json").await,
            403
        );
        assert_eq!(call("127.0.0.1:34256", "POST", "text/plain").await, 403);
        // This machine's page: passes the guard (the wallet is not open yet: 503).
        assert_eq!(
            call("127.0.0.1:34256", "POST", "application/json").await,
            503
        );
        assert_eq!(
            call("localhost:34256", "POST", "application/json").await,
            503
        );
        assert_eq!(call("[::1]:34256", "POST", "application/json").await, 503);
    }
}
