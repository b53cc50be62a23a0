//! `hashpool pool -c pool.toml admin …` and `hashpool mint -c mint.toml admin …`: the admin
//! API from the command line, with the address and token taken from the role's config (or the
//! token file the role generated in its data dir).

use clap::Subcommand;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// Pool admin actions.
#[derive(Debug, Subcommand)]
pub enum PoolAdminAction {
    /// Connections and their channels.
    Connections,
    /// Close one connection.
    Disconnect {
        /// Connection number (from `connections`).
        connection: u64,
    },
    /// Refuse an address and close its connections.
    Ban {
        /// IP address.
        ip: IpAddr,
        /// Minutes (default: until lifted).
        #[arg(long)]
        minutes: Option<u64>,
    },
    /// Lift a ban.
    Unban {
        /// IP address.
        ip: IpAddr,
    },
    /// Bans in force.
    Bans,
}

/// Mint admin actions.
#[derive(Debug, Subcommand)]
pub enum MintAdminAction {
    /// Stop signing shares (pools see the mint as down and keep their journals).
    Pause,
    /// Sign shares again.
    Resume,
    /// Whether signing is paused.
    Signing,
    /// The per-epoch proof of liabilities.
    Liabilities,
    /// End the current epoch now: the next one opens at the tip with a fresh keyset.
    Rotate,
}

/// Where and how to call a role's admin API.
pub struct AdminTarget {
    base: String,
    token: String,
}

impl AdminTarget {
    /// From a role's `admin_listen`, `admin_token` and data dir.
    pub fn new(
        listen: Option<SocketAddr>,
        token: Option<&str>,
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        let listen = listen.ok_or_else(|| anyhow::anyhow!("the config sets no admin_listen"))?;
        let token = match token {
            Some(t) => t.to_string(),
            None => {
                let path = data_dir.join(hashpool_ops_http::admin::TOKEN_FILE);
                std::fs::read_to_string(&path)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot read the admin token {} (the role writes it on its first start): {e}",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_string()
            }
        };
        Ok(Self {
            base: format!("http://{listen}"),
            token,
        })
    }

    /// Calls `path` (GET without a body, POST with one) and returns the JSON answer.
    pub async fn call(
        &self,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        let request = match &body {
            Some(b) => bitreq::post(url.as_str())
                .with_header("Content-Type", "application/json")
                .with_body(b.to_string()),
            None => bitreq::get(url.as_str()),
        };
        let r = request
            .with_header("Authorization", format!("Bearer {}", self.token))
            .with_timeout(30)
            .send_async()
            .await
            .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
        let answer: serde_json::Value = serde_json::from_slice(r.as_bytes())
            .map_err(|e| anyhow::anyhow!("{url}: HTTP {}: {e}", r.status_code))?;
        if r.status_code != 200 {
            anyhow::bail!("{url}: HTTP {}: {answer}", r.status_code);
        }
        Ok(answer)
    }
}

impl PoolAdminAction {
    /// The endpoint and body of this action.
    fn request(&self) -> (&'static str, Option<serde_json::Value>) {
        use serde_json::json;
        match self {
            Self::Connections => ("/admin/v1/connections", None),
            Self::Disconnect { connection } => (
                "/admin/v1/disconnect",
                Some(json!({ "connection": connection })),
            ),
            Self::Ban { ip, minutes } => (
                "/admin/v1/ban",
                Some(json!({ "ip": ip, "minutes": minutes })),
            ),
            Self::Unban { ip } => ("/admin/v1/unban", Some(json!({ "ip": ip }))),
            Self::Bans => ("/admin/v1/bans", None),
        }
    }
}

impl MintAdminAction {
    /// The endpoint and body of this action.
    fn request(&self) -> (&'static str, Option<serde_json::Value>) {
        use serde_json::json;
        match self {
            Self::Pause => ("/admin/v1/signing", Some(json!({ "paused": true }))),
            Self::Resume => ("/admin/v1/signing", Some(json!({ "paused": false }))),
            Self::Signing => ("/admin/v1/signing", None),
            Self::Liabilities => ("/admin/v1/liabilities", None),
            Self::Rotate => ("/admin/v1/rotate", Some(json!({}))),
        }
    }
}

/// Calls a role's admin API and prints its answer.
async fn run(
    settings: hashpool_ops_http::admin::AdminSettings<'_>,
    data_dir: &Path,
    (path, body): (&'static str, Option<serde_json::Value>),
) -> anyhow::Result<()> {
    let target = AdminTarget::new(settings.listen, settings.token, data_dir)?;
    let answer = target.call(path, body).await?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

/// Runs a pool admin action.
pub async fn pool(
    config: &hashpool_pool::PoolConfig,
    action: PoolAdminAction,
) -> anyhow::Result<()> {
    run(config.admin(), &config.data_dir, action.request()).await
}

/// Runs a mint admin action.
pub async fn mint(
    config: &hashpool_mint::MintConfig,
    action: MintAdminAction,
) -> anyhow::Result<()> {
    run(config.admin(), &config.data_dir, action.request()).await
}
