//! The upstream link: Noise to the pool (pinned key), setup, ehash negotiation, one extended
//! channel. Reconnects with backoff; SV1 miners stay connected meanwhile.

use crate::bridge::BridgeEvent;
use ehash_protocol::EXTENSION_TYPE_EHASH;
use std::time::Duration;
use stratum_core::common_messages_sv2::Protocol;
use stratum_core::extensions_sv2::RequestExtensionsOwned;
use stratum_core::mining_sv2::OpenExtendedMiningChannelOwned;
use stratum_core::parsers_sv2::{ExtensionsNegotiationOwned, ExtensionsOwned, MiningOwned};
use sv2_io::{AuthorityPublicKey, Backoff, Failover};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Rollable extranonce bytes the translator asks for (2 of them tell its miners apart).
const MIN_EXTRANONCE: u16 = 8;

/// Keeps the upstream link up until shutdown.
pub async fn run(
    mut pools: Failover,
    user: String,
    hashrate: f32,
    events: mpsc::Sender<BridgeEvent>,
    stats: std::sync::Arc<crate::stats::TranslatorStats>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        let Some(pool) = pools.current().cloned() else {
            tracing::error!("no pool configured");
            return;
        };
        let ups = stats.pool_link.ups();
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = session(&pool.address, &pool.authority, &user, hashrate, &events, &stats) => r,
        };
        stats.pool_link.set_up(false);
        if events.send(BridgeEvent::UpstreamDown).await.is_err() {
            return;
        }
        match result {
            Ok(()) => backoff.reset(),
            Err(e) => {
                tracing::warn!(address = %pool.address, error = %e, retry_in = ?backoff.delay(), "pool link down")
            }
        }
        let before = pools.current().map(|p| p.address.clone());
        pools.session_ended(stats.pool_link.ups() > ups);
        if pools.current().map(|p| p.address.clone()) != before {
            // The next pool is tried at once; the backoff is for retrying the same one.
            backoff.reset();
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

async fn session(
    address: &str,
    authority: &AuthorityPublicKey,
    user: &str,
    hashrate: f32,
    events: &mpsc::Sender<BridgeEvent>,
    stats: &crate::stats::TranslatorStats,
) -> Result<(), String> {
    let (mut reader, sender) =
        sv2_io::connect_with_setup(address, authority, Protocol::MiningProtocol, 0)
            .await
            .map_err(|e| e.to_string())?;
    let request = ExtensionsOwned::ExtensionsNegotiation(
        ExtensionsNegotiationOwned::RequestExtensions(RequestExtensionsOwned {
            request_id: 1,
            requested_extensions: binary_sv2::Seq064KOwned::new(vec![EXTENSION_TYPE_EHASH])
                .map_err(|e| format!("{e:?}"))?,
        }),
    );
    sender
        .send(sv2_io::frame::encode_standard(request).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    let open = OpenExtendedMiningChannelOwned {
        request_id: 1,
        user_identity: binary_sv2::Str0255Owned::try_from(user.to_string())
            .map_err(|_| "user identity too long")?,
        nominal_hash_rate: hashrate,
        max_target: [0xffu8; 32].into(),
        min_extranonce_size: MIN_EXTRANONCE,
    };
    sender
        .send(
            sv2_io::frame::encode_standard(MiningOwned::OpenExtendedMiningChannel(open))
                .map_err(|e| e.to_string())?,
        )
        .await
        .map_err(|e| e.to_string())?;
    events
        .send(BridgeEvent::UpstreamUp(sender))
        .await
        .map_err(|_| "bridge stopped")?;
    stats.pool_link.set_up(true);
    tracing::info!(%address, "pool link up");
    loop {
        let frame = reader.next().await.map_err(|e| e.to_string())?;
        stats.pool_link.seen();
        events
            .send(BridgeEvent::Upstream(frame))
            .await
            .map_err(|_| "bridge stopped")?;
    }
}
