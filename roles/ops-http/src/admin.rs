//! The operators' admin API of a role: a bearer token (generated into the data dir on first
//! run unless the config sets one), requests from other hosts refused unless allowed, and every
//! request logged with who (remote address) and what.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// File of the generated admin token in a role's data dir.
pub const TOKEN_FILE: &str = "admin.token";

/// Why the admin API could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Token file.
    #[error("admin token {path}: {source}")]
    Token {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Listener.
    #[error("cannot listen for the admin API on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// Who may call the admin API.
#[derive(Clone)]
pub struct AdminAccess {
    token: Arc<str>,
    remote_allowed: bool,
}

impl AdminAccess {
    /// The configured token, or the one in `data_dir/admin.token` (created 0600 if missing).
    pub fn load(
        configured: Option<&str>,
        data_dir: &Path,
        remote_allowed: bool,
    ) -> Result<Self, AdminError> {
        let token = match configured {
            Some(t) => t.to_string(),
            None => read_or_create_token(data_dir)?,
        };
        Ok(Self {
            token: token.into(),
            remote_allowed,
        })
    }
}

/// Reads the role's admin token file, creating it with a random token if absent.
pub fn read_or_create_token(data_dir: &Path) -> Result<String, AdminError> {
    let path = data_dir.join(TOKEN_FILE);
    let err = |source| AdminError::Token {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(t.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(err)?;
            let token = hex::encode(rand::random::<[u8; 24]>());
            sv2_io::keys::write_private(&path, &token).map_err(err)?;
            Ok(token)
        }
        Err(e) => Err(err(e)),
    }
}

/// A JSON error.
pub fn admin_error(status: StatusCode, detail: impl ToString) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": status.as_str(), "detail": detail.to_string() })),
    )
        .into_response()
}

async fn guard(
    State(access): State<AdminAccess>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    if !access.remote_allowed && !peer.ip().is_loopback() {
        tracing::warn!(%peer, %method, %path, "admin request from another host refused");
        return admin_error(
            StatusCode::FORBIDDEN,
            "the admin API answers localhost only",
        );
    }
    if !crate::bearer::matches(req.headers(), &access.token) {
        tracing::warn!(%peer, %method, %path, "admin request without a valid token refused");
        return admin_error(StatusCode::UNAUTHORIZED, "admin token required");
    }
    let response = next.run(req).await;
    tracing::info!(%peer, %method, %path, status = response.status().as_u16(), "admin action");
    response
}

/// Binds `addr` and serves `routes` behind the token until `shutdown`; returns the address.
pub async fn serve(
    addr: SocketAddr,
    access: AdminAccess,
    routes: Router,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), AdminError> {
    let (listener, bound) = crate::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })?;
    let app = routes.layer(axum::middleware::from_fn_with_state(access, guard));
    Ok((bound, crate::spawn_server(listener, app, shutdown, "admin")))
}

/// A role's admin settings (`admin_listen`, `admin_token`, `admin_allow_remote`).
#[derive(Debug, Clone, Copy)]
pub struct AdminSettings<'a> {
    /// Where to listen; none: no admin API.
    pub listen: Option<SocketAddr>,
    /// Configured token; none: the one in the data dir.
    pub token: Option<&'a str>,
    /// Accept other hosts.
    pub allow_remote: bool,
}

/// Serves the admin API if `settings.listen` is set; the serving task joins `tasks`.
pub async fn serve_configured(
    settings: AdminSettings<'_>,
    data_dir: &Path,
    routes: impl FnOnce() -> Router,
    shutdown: CancellationToken,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Option<SocketAddr>, AdminError> {
    let Some(addr) = settings.listen else {
        return Ok(None);
    };
    let access = AdminAccess::load(settings.token, data_dir, settings.allow_remote)?;
    let (bound, task) = serve(addr, access, routes(), shutdown).await?;
    tasks.push(task);
    Ok(Some(bound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn status(addr: SocketAddr, token: Option<&str>) -> u16 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!("GET /admin/v1/ping HTTP/1.0\r\nHost: x\r\n{auth}\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    }

    /// This host's address on its default route (not loopback), if it has one.
    fn outward_ip() -> Option<std::net::IpAddr> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        s.connect("192.0.2.1:9").ok()?;
        let ip = s.local_addr().ok()?.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    }

    #[tokio::test]
    async fn token_and_locality_are_enforced() {
        let dir = std::env::temp_dir().join(format!("hp-admin-{}", std::process::id()));
        let access = AdminAccess::load(None, &dir, false).unwrap();
        let token = read_or_create_token(&dir).unwrap();
        assert_eq!(token.len(), 48);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join(TOKEN_FILE))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let routes = Router::new().route("/admin/v1/ping", axum::routing::get(|| async { "pong" }));
        let (bound, _task) = serve(
            "0.0.0.0:0".parse().unwrap(),
            access,
            routes,
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let local = SocketAddr::from(([127, 0, 0, 1], bound.port()));
        assert_eq!(status(local, None).await, 401);
        assert_eq!(status(local, Some("not-the-token-at-all")).await, 401);
        assert_eq!(status(local, Some(&token)).await, 200);
        if let Some(ip) = outward_ip() {
            // From another address of this host: refused even with the token.
            assert_eq!(
                status(SocketAddr::new(ip, bound.port()), Some(&token)).await,
                403
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
