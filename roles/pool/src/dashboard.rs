//! The pool's dashboard: the page (embedded, see `hashpool-web`) and the JSON it polls.
//!
//! `/api/status` is built from the pool's own state; `/api/epochs` is the mint's proof of
//! liabilities (`/hashpool/v1/epochs` at the URL the mint announced), cached briefly so that
//! many open dashboards cost the mint one request per cache period.

use crate::board::{ChannelRow, MiningBoard};
use crate::found_blocks::BlockStore;
use crate::mint_client::MintLink;
use crate::stats::{now_ms, PoolStats, ServiceStatus};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ehash_protocol::messages::{BLOCK_MATURED, BLOCK_ORPHANED};
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the mint's epoch report is reused.
const EPOCHS_CACHE: Duration = Duration::from_secs(5);
/// Newest found blocks the dashboard lists.
const MAX_BLOCKS_SHOWN: usize = 100;
/// Largest epoch report accepted from the mint.
const MAX_EPOCHS_BODY: usize = 8 << 20;

/// What the pool's config says about the services it depends on.
#[derive(Debug, Clone)]
pub struct ServiceFacts {
    /// A chain RPC is configured.
    pub node_configured: bool,
    /// Confirmations for maturity.
    pub maturity: u32,
}

/// What the dashboard reads.
pub struct Dashboard {
    /// Counters.
    pub stats: Arc<PoolStats>,
    /// Channels and hashrate.
    pub board: Arc<MiningBoard>,
    /// Found blocks.
    pub blocks: Arc<BlockStore>,
    /// Mint link (its announced URL and keyset).
    pub mint: Arc<MintLink>,
    /// What the config says about the services.
    pub facts: ServiceFacts,
    epochs: Mutex<Option<(Instant, Result<serde_json::Value, String>)>>,
}

#[derive(Serialize)]
struct PoolFigures {
    hashrate: f64,
    channels: u64,
    shares_accepted: u64,
    shares_rejected: u64,
    ehash_requested: u64,
    ehash_signed: u64,
    ehash_refused: u64,
    work_accepted: u64,
    rejected_by_reason: std::collections::BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct Service<T: Serialize> {
    #[serde(flatten)]
    status: ServiceStatus,
    #[serde(flatten)]
    detail: T,
}

#[derive(Serialize)]
struct Services {
    template_provider: Service<serde_json::Value>,
    mint: Service<serde_json::Value>,
    node: Service<serde_json::Value>,
}

#[derive(Serialize)]
struct BlockRow {
    height: u32,
    hash: String,
    reward: u64,
    status: &'static str,
    confirmations: u32,
    found_at: i64,
}

#[derive(Serialize)]
struct Status {
    now_ms: i64,
    pool: PoolFigures,
    services: Services,
    history: Vec<(i64, f64)>,
    channels: Vec<ChannelRow>,
    blocks: Vec<BlockRow>,
    maturity: u32,
}

impl Dashboard {
    /// A dashboard over the pool's state.
    pub fn new(
        stats: Arc<PoolStats>,
        board: Arc<MiningBoard>,
        blocks: Arc<BlockStore>,
        mint: Arc<MintLink>,
        facts: ServiceFacts,
    ) -> Self {
        Self {
            stats,
            board,
            blocks,
            mint,
            facts,
            epochs: Mutex::new(None),
        }
    }

    fn status(&self) -> Result<Status, String> {
        let s = self.stats.snapshot();
        let tip = self.stats.chain_tip_height.load(Ordering::Relaxed) as u32;
        let blocks = self
            .blocks
            .all()
            .map_err(|e| e.to_string())?
            .into_iter()
            .take(MAX_BLOCKS_SHOWN)
            .map(|b| {
                let mut shown = b.hash;
                shown.reverse();
                let live = b.status != BLOCK_ORPHANED && tip >= b.height;
                BlockRow {
                    height: b.height,
                    hash: hex::encode(shown),
                    reward: b.reward,
                    status: match b.status {
                        BLOCK_MATURED => "matured",
                        BLOCK_ORPHANED => "orphaned",
                        _ => "pending",
                    },
                    confirmations: if live {
                        (tip - b.height + 1).max(b.confirmations)
                    } else {
                        b.confirmations
                    },
                    found_at: b.found_at,
                }
            })
            .collect();
        let mint = self.mint.current();
        Ok(Status {
            now_ms: now_ms(),
            pool: PoolFigures {
                hashrate: self.board.hashrate(),
                channels: self.board.channel_count() as u64,
                shares_accepted: s.shares_accepted,
                shares_rejected: s.shares_rejected,
                ehash_requested: s.ehash_requested,
                ehash_signed: s.ehash_signed,
                ehash_refused: s.ehash_refused,
                work_accepted: self.stats.work_accepted.load(Ordering::Relaxed),
                rejected_by_reason: self
                    .stats
                    .rejected_by_reason
                    .lock()
                    .map(|m| m.clone())
                    .unwrap_or_default(),
            },
            services: Services {
                template_provider: Service {
                    status: self.stats.tp.status(),
                    detail: serde_json::json!({
                        "address": self.stats.tp_failover.active(),
                        "failovers": self.stats.tp_failover.failovers(),
                    }),
                },
                mint: Service {
                    status: self.stats.mint.status(),
                    detail: serde_json::json!({
                        "address": self.stats.mint_failover.active(),
                        "failovers": self.stats.mint_failover.failovers(),
                        "url": mint.as_ref().map(|m| m.http_url.clone()),
                        "keyset": mint.as_ref().map(|m| hex::encode(&m.keyset_id)),
                        "epoch": mint.as_ref().map(|m| m.epoch),
                    }),
                },
                node: Service {
                    status: self.stats.node.status(),
                    detail: serde_json::json!({
                        "configured": self.facts.node_configured,
                        "height": tip,
                    }),
                },
            },
            history: self.board.history(),
            channels: self.board.channels(),
            blocks,
            maturity: self.facts.maturity,
        })
    }

    async fn fetch_epochs(&self) -> Result<serde_json::Value, String> {
        let url = self
            .mint
            .current()
            .map(|m| m.http_url)
            .ok_or("the mint link is down")?;
        let url = format!("{}/hashpool/v1/epochs", url.trim_end_matches('/'));
        let response = bitreq::get(url.as_str())
            .with_timeout(5)
            .with_max_body_size(Some(MAX_EPOCHS_BODY))
            .send_async()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if response.status_code != 200 {
            return Err(format!("{url}: HTTP {}", response.status_code));
        }
        serde_json::from_slice(response.as_bytes()).map_err(|e| format!("{url}: {e}"))
    }

    async fn epochs(&self) -> Result<serde_json::Value, String> {
        if let Ok(guard) = self.epochs.lock() {
            if let Some((at, cached)) = guard.as_ref() {
                if at.elapsed() < EPOCHS_CACHE {
                    return cached.clone();
                }
            }
        }
        let fresh = self.fetch_epochs().await;
        if let Ok(mut guard) = self.epochs.lock() {
            *guard = Some((Instant::now(), fresh.clone()));
        }
        fresh
    }
}

fn unavailable(reason: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({ "error": "unavailable", "detail": reason })),
    )
        .into_response()
}

async fn status(State(d): State<Arc<Dashboard>>) -> Response {
    match d.status() {
        Ok(s) => Json(s).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "dashboard status failed");
            unavailable(e)
        }
    }
}

async fn epochs(State(d): State<Arc<Dashboard>>) -> Response {
    match d.epochs().await {
        Ok(v) => Json(v).into_response(),
        Err(e) => unavailable(e),
    }
}

/// The dashboard's routes: `/` and the JSON it polls.
pub fn router(dashboard: Arc<Dashboard>) -> Router {
    Router::new()
        .route("/api/status", get(status))
        .route("/api/epochs", get(epochs))
        .with_state(dashboard)
        .merge(hashpool_web::page_route(&["/"], hashpool_web::Page::Pool))
        .merge(hashpool_web::assets())
}
