//! The mint's admin API (token, localhost by default; see `hashpool_ops_http::admin`): its
//! liabilities, pausing or resuming share signing, and ending the current epoch now (a fresh
//! keyset, e.g. when its keys may have leaked).

use crate::EhashLedger;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hashpool_ops_http::admin::admin_error;
use serde::Deserialize;
use std::sync::Arc;

/// `POST /admin/v1/signing` body.
#[derive(Debug, Deserialize)]
struct Signing {
    paused: bool,
}

async fn liabilities(State(ledger): State<Arc<EhashLedger>>) -> Response {
    match ledger.epochs().liabilities().await {
        Ok(l) => Json(l).into_response(),
        Err(e) => admin_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn signing(State(ledger): State<Arc<EhashLedger>>, Json(s): Json<Signing>) -> Response {
    let was = ledger.signing_paused.send_replace(s.paused);
    if was != s.paused {
        tracing::warn!(
            paused = s.paused,
            "share signing {} by the operator",
            if s.paused { "paused" } else { "resumed" }
        );
    }
    Json(serde_json::json!({ "paused": s.paused, "was_paused": was })).into_response()
}

async fn signing_state(State(ledger): State<Arc<EhashLedger>>) -> Response {
    Json(serde_json::json!({ "paused": *ledger.signing_paused.borrow() })).into_response()
}

async fn rotate(State(ledger): State<Arc<EhashLedger>>) -> Response {
    let before = ledger.epochs().current_epoch();
    match ledger.epochs().rotate_now().await {
        Ok(epoch) => {
            let keyset = ledger.active_keyset().map(|k| k.to_string()).ok();
            tracing::warn!(previous = before, epoch, keyset = ?keyset, "epoch rotated by the operator");
            Json(serde_json::json!({ "previous": before, "epoch": epoch, "keyset": keyset }))
                .into_response()
        }
        Err(e @ crate::MintError::Config { .. }) => admin_error(StatusCode::CONFLICT, e),
        Err(e) => admin_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// The admin routes.
pub fn router(ledger: Arc<EhashLedger>) -> Router {
    Router::new()
        .route("/admin/v1/liabilities", get(liabilities))
        .route("/admin/v1/signing", get(signing_state).post(signing))
        .route("/admin/v1/rotate", post(rotate))
        .with_state(ledger)
}
