//! The mint's HTTP API: the standard Cashu routes (cdk-axum) plus hashpool's stats.

use crate::{EhashLedger, MintError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

/// Builds the router: Cashu NUT routes under `/v1`; stats and the per-epoch proof of
/// liabilities under `/hashpool/v1/`.
pub async fn router(ledger: Arc<EhashLedger>) -> Result<Router, MintError> {
    let cashu = cdk_axum::create_mint_router(ledger.mint().clone(), vec![])
        .await
        .map_err(|e| MintError::Http(e.to_string()))?;
    let ours = Router::new()
        .route("/hashpool/v1/stats", get(stats))
        .route("/hashpool/v1/epochs", get(epochs))
        .with_state(ledger);
    Ok(cashu.merge(ours))
}

async fn stats(
    State(ledger): State<Arc<EhashLedger>>,
) -> Result<Json<crate::MintStats>, (StatusCode, String)> {
    ledger
        .stats()
        .await
        .map(Json)
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
}

async fn epochs(
    State(ledger): State<Arc<EhashLedger>>,
) -> Result<Json<crate::epochs::report::Liabilities>, (StatusCode, String)> {
    ledger
        .epochs()
        .liabilities()
        .await
        .map(Json)
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
}
