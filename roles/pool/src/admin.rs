//! The pool's admin API (token, localhost by default; see `hashpool_ops_http::admin`): list
//! connections and their channels, disconnect one, ban or unban an address.

use crate::admission::Admission;
use crate::board::{ChannelRow, MiningBoard};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hashpool_ops_http::admin::admin_error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// What the admin API acts on.
pub struct PoolAdmin {
    /// Live connections and bans.
    pub admission: Arc<Admission>,
    /// Channels.
    pub board: Arc<MiningBoard>,
}

#[derive(Serialize)]
struct ConnectionRow {
    connection: u64,
    peer: String,
    channels: Vec<ChannelRow>,
}

async fn connections(State(a): State<Arc<PoolAdmin>>) -> Json<Vec<ConnectionRow>> {
    let mut by: BTreeMap<u64, ConnectionRow> = BTreeMap::new();
    for ch in a.board.channels() {
        by.entry(ch.connection)
            .or_insert_with(|| ConnectionRow {
                connection: ch.connection,
                peer: ch.peer.clone(),
                channels: Vec::new(),
            })
            .channels
            .push(ch);
    }
    Json(by.into_values().collect())
}

#[derive(Deserialize)]
struct Disconnect {
    connection: u64,
}

async fn disconnect(State(a): State<Arc<PoolAdmin>>, Json(d): Json<Disconnect>) -> Response {
    if a.admission.disconnect(d.connection) {
        tracing::warn!(
            connection = d.connection,
            "connection disconnected by the operator"
        );
        Json(serde_json::json!({ "disconnected": d.connection })).into_response()
    } else {
        admin_error(
            StatusCode::NOT_FOUND,
            format!("no connection {}", d.connection),
        )
    }
}

#[derive(Deserialize)]
struct BanRequest {
    ip: IpAddr,
    /// Minutes; absent: until lifted.
    #[serde(default)]
    minutes: Option<u64>,
}

async fn ban(State(a): State<Arc<PoolAdmin>>, Json(b): Json<BanRequest>) -> Response {
    let duration = b.minutes.map(|m| Duration::from_secs(m.saturating_mul(60)));
    let closed = a.admission.ban(b.ip, duration);
    tracing::warn!(ip = %b.ip, minutes = ?b.minutes, closed, "address banned by the operator");
    Json(serde_json::json!({ "banned": b.ip, "disconnected": closed })).into_response()
}

#[derive(Deserialize)]
struct Unban {
    ip: IpAddr,
}

async fn unban(State(a): State<Arc<PoolAdmin>>, Json(u): Json<Unban>) -> Response {
    if a.admission.unban(u.ip) {
        tracing::warn!(ip = %u.ip, "ban lifted by the operator");
        Json(serde_json::json!({ "unbanned": u.ip })).into_response()
    } else {
        admin_error(StatusCode::NOT_FOUND, format!("{} is not banned", u.ip))
    }
}

async fn bans(State(a): State<Arc<PoolAdmin>>) -> Response {
    Json(a.admission.bans()).into_response()
}

/// The admin routes.
pub fn router(admin: Arc<PoolAdmin>) -> Router {
    Router::new()
        .route("/admin/v1/connections", get(connections))
        .route("/admin/v1/disconnect", post(disconnect))
        .route("/admin/v1/ban", post(ban))
        .route("/admin/v1/unban", post(unban))
        .route("/admin/v1/bans", get(bans))
        .with_state(admin)
}
