//! The mint's HTTP API.
//!
//! - `/v1/...`: the standard Cashu routes (cdk-axum) for the ehash unit; an ehash swap must stay
//!   inside one keyset (epoch), so ehash never moves between epochs.
//! - `/sat/v1/...`: the same routes restricted to the `sat` unit, so ordinary Cashu wallets —
//!   which refuse a mint that lists an unknown unit — can hold and spend redeemed sats.
//! - `/hashpool/v1/...`: stats, the per-epoch proof of liabilities, redemption and buyback.

use crate::exchange::{self, Buyback, ExchangeError};
use crate::faucet::{Faucet, FaucetError, FaucetRequest, FAUCET_PATH};
use crate::{EhashLedger, MintError};
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cdk::nuts::Id;
use ehash_api::{ApiError, BuybackQuoteRequest, ExchangeRequest};
use serde_json::Value;
use std::sync::Arc;

/// Largest request or filtered response body handled by the unit filters.
const MAX_BODY: usize = 4 << 20;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The ledger.
    pub ledger: Arc<EhashLedger>,
    /// Buyback quotes.
    pub buyback: Arc<Buyback>,
}

/// Builds the router.
pub async fn router(
    ledger: Arc<EhashLedger>,
    buyback: Arc<Buyback>,
    faucet: Option<Arc<Faucet>>,
) -> Result<Router, MintError> {
    let cashu = || async {
        cdk_axum::create_mint_router(ledger.mint().clone(), vec![])
            .await
            .map_err(|e| MintError::Http(e.to_string()))
    };
    let state = ApiState {
        ledger: ledger.clone(),
        buyback,
    };
    let ehash_view = cashu()
        .await?
        .layer(middleware::from_fn_with_state(state.clone(), ehash_filter));
    let sat_view = cashu()
        .await?
        .layer(middleware::from_fn_with_state(state.clone(), sat_filter));
    let ours = Router::new()
        .route("/hashpool/v1/stats", get(stats))
        .route(ehash_api::EPOCHS_PATH, get(epochs))
        .route(ehash_api::REDEEM_PATH, post(redeem))
        .route(ehash_api::BUYBACK_QUOTE_PATH, post(buyback_quote))
        .route(ehash_api::BUYBACK_PATH, post(accept_buyback))
        .route(ehash_api::EPOCH_SWAP_PATH, post(epoch_swap))
        .with_state(state);
    let ours = match faucet {
        Some(f) => ours.merge(
            Router::new()
                .route(FAUCET_PATH, get(faucet_info).post(faucet_give))
                .with_state(f),
        ),
        None => ours,
    };
    Ok(ehash_view
        .nest(ehash_api::SAT_MINT_PATH, sat_view)
        .merge(ours))
}

async fn faucet_info(State(f): State<Arc<Faucet>>) -> Response {
    Json(f.info()).into_response()
}

async fn faucet_give(State(f): State<Arc<Faucet>>, Json(r): Json<FaucetRequest>) -> Response {
    match f.give(r).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            let status = match e {
                FaucetError::TooSoon => StatusCode::TOO_MANY_REQUESTS,
                FaucetError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            api_error(status, "faucet", e)
        }
    }
}

fn api_error(status: StatusCode, code: &str, detail: impl ToString) -> Response {
    let body = ApiError {
        code: code.to_string(),
        detail: detail.to_string(),
    };
    (status, Json(body)).into_response()
}

fn exchange_error(e: ExchangeError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    api_error(status, e.code(), e)
}

async fn stats(State(s): State<ApiState>) -> Response {
    match s.ledger.stats().await {
        Ok(v) => Json(v).into_response(),
        Err(e) => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            ehash_api::codes::INTERNAL,
            e,
        ),
    }
}

async fn epochs(State(s): State<ApiState>) -> Response {
    match s.ledger.epochs().liabilities().await {
        Ok(v) => Json(v).into_response(),
        Err(e) => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            ehash_api::codes::INTERNAL,
            e,
        ),
    }
}

async fn redeem(State(s): State<ApiState>, Json(r): Json<ExchangeRequest>) -> Response {
    match exchange::redeem(&s.ledger, r.inputs, r.outputs).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => exchange_error(e),
    }
}

async fn buyback_quote(State(s): State<ApiState>, Json(r): Json<BuybackQuoteRequest>) -> Response {
    match s.buyback.quote(&s.ledger, r.keyset_id, r.amount) {
        Ok(v) => Json(v).into_response(),
        Err(e) => exchange_error(e),
    }
}

async fn accept_buyback(State(s): State<ApiState>, Json(r): Json<ExchangeRequest>) -> Response {
    let Some(quote) = r.quote else {
        return exchange_error(ExchangeError::Invalid("`quote` is required".into()));
    };
    match s
        .buyback
        .accept(&s.ledger, &quote, r.inputs, r.outputs)
        .await
    {
        Ok(v) => Json(v).into_response(),
        Err(e) => exchange_error(e),
    }
}

async fn epoch_swap(State(s): State<ApiState>, Json(r): Json<cdk::nuts::SwapRequest>) -> Response {
    match exchange::swap_in_epoch(&s.ledger, r).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => exchange_error(e),
    }
}

/// Keyset ids named by a swap or restore body (`inputs[].id`, `outputs[].id`).
fn named_keysets(body: &Value) -> (Vec<Option<Id>>, Vec<Option<Id>>) {
    let ids = |field: &str| -> Vec<Option<Id>> {
        body.get(field)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|x| {
                        x.get("id")
                            .and_then(Value::as_str)
                            .and_then(|s| s.parse().ok())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    (ids("inputs"), ids("outputs"))
}

/// Reads a request body so a filter can look at it and pass it on.
async fn buffer(req: Request) -> Result<(Request, Value), Response> {
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| api_error(StatusCode::PAYLOAD_TOO_LARGE, ehash_api::codes::INVALID, e))?;
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((Request::from_parts(parts, Body::from(bytes)), value))
}

/// The ehash view: a swap with ehash inputs must keep every input and output in one keyset.
async fn ehash_filter(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    if req.uri().path() != "/v1/swap" {
        return next.run(req).await;
    }
    let (req, body) = match buffer(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (inputs, outputs) = named_keysets(&body);
    let ehash_in = inputs
        .iter()
        .flatten()
        .any(|id| s.ledger.is_ehash_keyset(id));
    if ehash_in {
        let first = inputs.first().copied().flatten();
        let one_keyset = inputs.iter().chain(outputs.iter()).all(|id| *id == first);
        if !one_keyset {
            return api_error(
                StatusCode::BAD_REQUEST,
                ehash_api::codes::INVALID,
                "an ehash swap must keep all inputs and outputs in one keyset (epoch)",
            );
        }
    }
    next.run(req).await
}

/// The sat view: only `sat` keysets are listed, and only `sat` proofs and outputs accepted.
async fn sat_filter(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let is_sat = |id: &Option<Id>| id.as_ref().is_some_and(|i| s.ledger.is_sat_keyset(i));
    if path == "/v1/swap" || path == "/v1/restore" {
        let (req, body) = match buffer(req).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        let (inputs, outputs) = named_keysets(&body);
        if !inputs.iter().chain(outputs.iter()).all(is_sat) {
            return api_error(
                StatusCode::BAD_REQUEST,
                ehash_api::codes::NOT_SAT,
                "this is the sat mint: only sat keysets",
            );
        }
        return next.run(req).await;
    }
    let listing = path == "/v1/keysets" || path == "/v1/keys" || path.starts_with("/v1/keys/");
    let response = next.run(req).await;
    if !listing || !response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            ehash_api::codes::INTERNAL,
            "keyset listing too large",
        );
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if let Some(list) = value.get_mut("keysets").and_then(Value::as_array_mut) {
        list.retain(|k| k.get("unit").and_then(Value::as_str) == Some("sat"));
        if list.is_empty() && path.starts_with("/v1/keys/") {
            return api_error(
                StatusCode::NOT_FOUND,
                ehash_api::codes::NOT_SAT,
                "not a sat keyset",
            );
        }
    }
    let mut parts = parts;
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(value.to_string()))
}
