//! The part of Bitcoin Core's JSON-RPC the pool uses to follow its blocks and the jd-server
//! uses to see the mempool and submit blocks (`getrawmempool`, `getrawtransaction`,
//! `submitblock`), answered from the kernel and the devnet's mempool, plus `hashpool_reorg` to
//! orphan blocks on purpose. Authentication works like Core's
//! cookie: `__cookie__:<random>` in `<data_dir>/.cookie`, sent as HTTP Basic credentials.

use crate::server::TemplateState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

/// User name of cookie authentication (as in Bitcoin Core).
pub const COOKIE_USER: &str = "__cookie__";
/// File name of the cookie in the data directory.
pub const COOKIE_FILE: &str = ".cookie";

struct RpcState {
    chain: Arc<TemplateState>,
    authorization: String,
}

/// Writes a fresh cookie (0600) and returns the router serving RPC at `/`.
pub fn router(state: Arc<TemplateState>, data_dir: &Path) -> std::io::Result<Router> {
    let secret: [u8; 32] = rand::random();
    let cookie = format!("{COOKIE_USER}:{}", hex::encode(secret));
    let path = data_dir.join(COOKIE_FILE);
    // As Bitcoin Core does: every start has a new cookie; the last run's is stale.
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    sv2_io::keys::write_private(&path, &cookie)?;
    let authorization = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(cookie.as_bytes())
    );
    Ok(Router::new()
        .route("/", post(handle))
        .with_state(Arc::new(RpcState {
            chain: state,
            authorization,
        })))
}

/// A JSON-RPC error with Bitcoin Core's code.
struct RpcError(i64, String);

async fn handle(
    State(state): State<Arc<RpcState>>,
    headers: HeaderMap,
    Json(request): Json<Value>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if presented != Some(state.authorization.as_str()) {
        return Err((StatusCode::UNAUTHORIZED, Json(Value::Null)));
    }
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let params = request.get("params").cloned().unwrap_or(json!([]));
    let chain = state.chain.clone();
    let outcome = tokio::task::spawn_blocking(move || dispatch(&chain, &method, &params))
        .await
        .unwrap_or_else(|e| Err(RpcError(-1, format!("rpc task failed: {e}"))));
    match outcome {
        Ok(result) => Ok(Json(json!({"result": result, "error": null, "id": id}))),
        Err(RpcError(code, message)) => {
            let status = if code == -32601 {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            Err((
                status,
                Json(
                    json!({"result": null, "error": {"code": code, "message": message}, "id": id}),
                ),
            ))
        }
    }
}

fn dispatch(state: &TemplateState, method: &str, params: &Value) -> Result<Value, RpcError> {
    let internal = |e: crate::chain::ChainError| RpcError(-1, e.to_string());
    match method {
        "getblockcount" => Ok(json!(state.chain.tip().map_err(internal)?.height)),
        "getbestblockhash" => Ok(json!(display_hash(
            state.chain.tip().map_err(internal)?.hash
        ))),
        "getblockhash" => {
            let height = param_u64(params, 0)?;
            let height = u32::try_from(height).map_err(|_| out_of_range())?;
            match state.chain.hash_at(height).map_err(internal)? {
                Some(h) => Ok(json!(display_hash(h))),
                None => Err(out_of_range()),
            }
        }
        "getblockheader" => {
            let hash = param_hash(params, 0)?;
            let place = state
                .chain
                .block_place(hash)
                .map_err(internal)?
                .ok_or_else(|| RpcError(-5, "Block not found".into()))?;
            let mut header = json!({
                "hash": display_hash(hash),
                "confirmations": place.confirmations,
                "height": place.height,
                "time": place.time,
            });
            if let Some(prev) = place.prev {
                header["previousblockhash"] = json!(display_hash(prev));
            }
            Ok(header)
        }
        "getrawmempool" => {
            let verbose = params.get(0).and_then(Value::as_bool).unwrap_or(false);
            let txs = state.mempool_transactions();
            if !verbose {
                let ids: Vec<String> = txs.iter().map(|t| t.compute_txid().to_string()).collect();
                return Ok(json!(ids));
            }
            let mut entries = serde_json::Map::new();
            for tx in txs.iter() {
                let fee = crate::mempool::fees(std::slice::from_ref(tx));
                entries.insert(
                    tx.compute_txid().to_string(),
                    json!({
                        "wtxid": tx.compute_wtxid().to_string(),
                        "vsize": tx.vsize(),
                        // Bitcoin Core reports fees in BTC.
                        "fees": {"base": fee as f64 / 100_000_000.0},
                    }),
                );
            }
            Ok(Value::Object(entries))
        }
        "getrawtransaction" => {
            let txid = params
                .get(0)
                .and_then(Value::as_str)
                .ok_or_else(|| RpcError(-8, "txid must be a hex string".into()))?;
            state
                .mempool_transactions()
                .iter()
                .find(|t| t.compute_txid().to_string() == txid)
                .map(|t| json!(hex::encode(stratum_core::bitcoin::consensus::serialize(t))))
                .ok_or_else(|| RpcError(-5, "No such mempool or blockchain transaction".into()))
        }
        "submitblock" => {
            let raw = params
                .get(0)
                .and_then(Value::as_str)
                .and_then(|h| hex::decode(h).ok())
                .ok_or_else(|| RpcError(-22, "Block decode failed".into()))?;
            // Bitcoin Core's answers: null when accepted, otherwise a reason string.
            match state.submit_raw_block(&raw).map_err(|e| RpcError(-22, e))? {
                crate::chain::BlockOutcome::Accepted => Ok(Value::Null),
                crate::chain::BlockOutcome::Duplicate => Ok(json!("duplicate")),
                crate::chain::BlockOutcome::Rejected => Ok(json!("rejected")),
            }
        }
        "hashpool_reorg" => {
            let depth = u32::try_from(param_u64(params, 0)?)
                .map_err(|_| RpcError(-8, "depth out of range".into()))?;
            let reorg = state.force_reorg(depth).map_err(|e| RpcError(-1, e))?;
            Ok(json!({
                "fork_height": reorg.fork_height,
                "orphaned": reorg.orphaned.into_iter().map(display_hash).collect::<Vec<_>>(),
                "new_blocks": reorg.new_blocks.into_iter().map(display_hash).collect::<Vec<_>>(),
            }))
        }
        _ => Err(RpcError(-32601, "Method not found".into())),
    }
}

fn out_of_range() -> RpcError {
    RpcError(-8, "Block height out of range".into())
}

fn param_u64(params: &Value, i: usize) -> Result<u64, RpcError> {
    params
        .get(i)
        .and_then(Value::as_u64)
        .ok_or_else(|| RpcError(-1, format!("parameter {i} must be a non-negative integer")))
}

fn param_hash(params: &Value, i: usize) -> Result<[u8; 32], RpcError> {
    let bad = || {
        RpcError(
            -8,
            format!("parameter {i} must be a 64-character hex block hash"),
        )
    };
    let text = params.get(i).and_then(Value::as_str).ok_or_else(bad)?;
    let mut bytes: [u8; 32] = hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(bad)?;
    bytes.reverse();
    Ok(bytes)
}

/// Hash in internal order to RPC hex (reversed).
pub fn display_hash(mut hash: [u8; 32]) -> String {
    hash.reverse();
    hex::encode(hash)
}
