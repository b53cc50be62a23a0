//! The wallet page's API: holdings by epoch, send (a `cashuB` token and its QR code),
//! receive, redeem, sell, and the devnet faucet.
//!
//! Holdings with buyback offers ask the mint for a quote per epoch, so they are cached for a
//! few seconds; every wallet action drops the cache.

use super::{error, ProxyDashboard};
use crate::wallet::{Holdings, WalletError};
use crate::EhashWallet;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long holdings (with buyback quotes) and the pool's block list are reused.
const CACHE_FOR: Duration = Duration::from_secs(10);
/// Longest token shown as a QR code (binary mode, low error correction holds ~2.9 kB).
const MAX_QR_TOKEN: usize = 2_900;

type Cached<T> = Mutex<Option<(Instant, T)>>;

/// Short-lived copies of what the mint reports.
#[derive(Default)]
pub struct WalletCache {
    holdings: Cached<Holdings>,
    blocks: Cached<Vec<ehash_api::BlockCredit>>,
    faucet: Cached<bool>,
}

fn fresh<T: Clone>(slot: &Cached<T>) -> Option<T> {
    let guard = slot.lock().ok()?;
    let (at, value) = guard.as_ref()?;
    (at.elapsed() < CACHE_FOR).then(|| value.clone())
}

fn keep<T>(slot: &Cached<T>, value: T) {
    if let Ok(mut g) = slot.lock() {
        *g = Some((Instant::now(), value));
    }
}

impl WalletCache {
    fn forget_holdings(&self) {
        if let Ok(mut g) = self.holdings.lock() {
            *g = None;
        }
    }

    /// Whether the mint has a faucet (only devnet mints do).
    async fn faucet(&self, wallet: &EhashWallet) -> bool {
        if let Some(f) = fresh(&self.faucet) {
            return f;
        }
        let available = wallet.faucet_info().await.is_ok();
        keep(&self.faucet, available);
        available
    }

    /// The pool's found blocks as the mint reports them (each block once), newest last.
    pub async fn pool_blocks(
        &self,
        wallet: Option<Arc<EhashWallet>>,
    ) -> Result<Vec<ehash_api::BlockCredit>, String> {
        if let Some(b) = fresh(&self.blocks) {
            return Ok(b);
        }
        let wallet = wallet.ok_or("the pool has not announced its mint yet")?;
        let report = wallet.liabilities().await.map_err(|e| e.to_string())?;
        let mut by_hash = std::collections::BTreeMap::new();
        for b in report.epochs.into_iter().flat_map(|e| e.blocks) {
            by_hash.entry(b.hash.clone()).or_insert(b);
        }
        let mut blocks: Vec<_> = by_hash.into_values().collect();
        blocks.sort_by_key(|b| b.height);
        keep(&self.blocks, blocks.clone());
        Ok(blocks)
    }
}

#[derive(Serialize)]
struct WalletAnswer {
    ready: bool,
    mint_url: Option<String>,
    faucet: bool,
    #[serde(flatten)]
    holdings: Option<Holdings>,
}

/// Why a wallet request failed, answered as JSON.
struct ApiFailure {
    status: StatusCode,
    detail: String,
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        error(self.status, self.detail)
    }
}

impl From<WalletError> for ApiFailure {
    fn from(e: WalletError) -> Self {
        let status = match e {
            WalletError::Unavailable(_) | WalletError::Refused { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::BAD_GATEWAY,
        };
        Self {
            status,
            detail: e.to_string(),
        }
    }
}

fn need_wallet(d: &ProxyDashboard) -> Result<Arc<EhashWallet>, ApiFailure> {
    d.wallet().ok_or_else(|| ApiFailure {
        status: StatusCode::SERVICE_UNAVAILABLE,
        detail: "the wallet opens once the pool announces its mint".into(),
    })
}

async fn show(State(d): State<Arc<ProxyDashboard>>) -> Result<Json<WalletAnswer>, ApiFailure> {
    let Some(w) = d.wallet() else {
        return Ok(Json(WalletAnswer {
            ready: false,
            mint_url: None,
            faucet: false,
            holdings: None,
        }));
    };
    let holdings = match fresh(&d.cache.holdings) {
        Some(h) => h,
        None => {
            let h = w.holdings(true).await?;
            keep(&d.cache.holdings, h.clone());
            h
        }
    };
    Ok(Json(WalletAnswer {
        ready: true,
        mint_url: Some(w.cdk().mint_url.to_string()),
        faucet: d.cache.faucet(&w).await,
        holdings: Some(holdings),
    }))
}

#[derive(Deserialize)]
struct EpochAmount {
    epoch: u32,
    amount: u64,
}

#[derive(Serialize)]
struct Sent {
    epoch: u32,
    amount: u64,
    token: String,
    qr_svg: Option<String>,
}

/// The token as an SVG QR code, if it fits in one.
fn qr_svg(token: &str) -> Option<String> {
    if token.len() > MAX_QR_TOKEN {
        return None;
    }
    let code =
        qrcode::QrCode::with_error_correction_level(token.as_bytes(), qrcode::EcLevel::L).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color>()
            .min_dimensions(260, 260)
            .quiet_zone(true)
            .build(),
    )
}

fn positive(amount: u64) -> Result<u64, ApiFailure> {
    if amount == 0 {
        Err(ApiFailure {
            status: StatusCode::BAD_REQUEST,
            detail: "amount must be at least 1".into(),
        })
    } else {
        Ok(amount)
    }
}

async fn send(
    State(d): State<Arc<ProxyDashboard>>,
    Json(r): Json<EpochAmount>,
) -> Result<Json<Sent>, ApiFailure> {
    let out: Result<_, ApiFailure> = async {
        let w = need_wallet(&d)?;
        let amount = positive(r.amount)?;
        let keyset = w.keyset_of_epoch(r.epoch).await?;
        let token = w.send(keyset, amount, None).await?;
        tracing::info!(epoch = r.epoch, amount, "token created on the wallet page");
        Ok(Sent {
            epoch: r.epoch,
            amount,
            qr_svg: qr_svg(&token),
            token,
        })
    }
    .await;
    d.cache.forget_holdings();
    out.map(Json)
}

#[derive(Deserialize)]
struct TokenIn {
    token: String,
}

async fn receive(
    State(d): State<Arc<ProxyDashboard>>,
    Json(r): Json<TokenIn>,
) -> Result<Json<serde_json::Value>, ApiFailure> {
    let out: Result<_, ApiFailure> = async {
        let w = need_wallet(&d)?;
        let received = w.receive(&r.token).await?;
        tracing::info!(amount = received, "token received on the wallet page");
        Ok(serde_json::json!({ "received": received }))
    }
    .await;
    d.cache.forget_holdings();
    out.map(Json)
}

async fn redeem(
    State(d): State<Arc<ProxyDashboard>>,
) -> Result<Json<crate::wallet::SatsReceived>, ApiFailure> {
    let out: Result<_, ApiFailure> = async { Ok(need_wallet(&d)?.redeem_final().await?) }.await;
    d.cache.forget_holdings();
    out.map(Json)
}

async fn sell(
    State(d): State<Arc<ProxyDashboard>>,
    Json(r): Json<EpochAmount>,
) -> Result<Json<crate::wallet::SatsReceived>, ApiFailure> {
    let out: Result<_, ApiFailure> = async {
        let w = need_wallet(&d)?;
        let amount = positive(r.amount)?;
        let keyset = w.keyset_of_epoch(r.epoch).await?;
        Ok(w.sell(keyset, amount).await?)
    }
    .await;
    d.cache.forget_holdings();
    out.map(Json)
}

async fn faucet(
    State(d): State<Arc<ProxyDashboard>>,
) -> Result<Json<serde_json::Value>, ApiFailure> {
    let out: Result<_, ApiFailure> = async { Ok(need_wallet(&d)?.faucet().await?) }.await;
    d.cache.forget_holdings();
    let (epoch, received) = out?;
    Ok(Json(
        serde_json::json!({ "epoch": epoch, "received": received }),
    ))
}

/// The wallet routes (behind the dashboard's token check).
pub fn routes() -> Router<Arc<ProxyDashboard>> {
    Router::new()
        .route("/api/wallet", get(show))
        .route("/api/wallet/send", post(send))
        .route("/api/wallet/receive", post(receive))
        .route("/api/wallet/redeem", post(redeem))
        .route("/api/wallet/sell", post(sell))
        .route("/api/wallet/faucet", post(faucet))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_become_qr_codes_until_too_long() {
        let svg = qr_svg(&format!("cashuB{}", "a".repeat(600))).unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
        assert!(qr_svg(&"a".repeat(MAX_QR_TOKEN + 1)).is_none());
    }
}
