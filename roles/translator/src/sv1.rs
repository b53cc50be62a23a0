//! SV1 server side: one task per miner connection, lines in and out.

use crate::bridge::{BridgeEvent, MinerId};
use std::net::SocketAddr;
use stratum_core::sv1_api::json_rpc::Message;
use stratum_core::sv1_api::methods::Client2Server;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Longest accepted JSON-RPC line.
pub const MAX_LINE: usize = 16 * 1024;
/// Serves one SV1 miner. A miner that does not complete a line within `line_timeout` (idle, or
/// trickling bytes slowly) is dropped.
pub async fn serve_miner(
    id: MinerId,
    stream: TcpStream,
    peer: SocketAddr,
    bridge: mpsc::Sender<BridgeEvent>,
    line_timeout: std::time::Duration,
) {
    let (rd, mut wr) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<String>(1024);
    if bridge
        .send(BridgeEvent::MinerConnected { id, lines: out_tx })
        .await
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(mut line) = out_rx.recv().await {
            line.push('\n');
            if wr.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let mut reader = BufReader::new(rd);
    let mut buf = Vec::with_capacity(512);
    let reason = loop {
        buf.clear();
        let read = tokio::time::timeout(line_timeout, read_line(&mut reader, &mut buf)).await;
        match read {
            Err(_) => break "no complete line before the timeout".to_string(),
            Ok(Err(e)) => break e,
            Ok(Ok(())) => {}
        }
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.trim(),
            Err(_) => break "line is not UTF-8".into(),
        };
        if text.is_empty() {
            continue;
        }
        let msg: Message = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => break format!("malformed JSON-RPC: {e}"),
        };
        let request = match Client2Server::try_from(msg.clone()) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%peer, error = ?e, "unsupported SV1 message");
                if let Message::StandardRequest(r) = msg {
                    let _ = bridge
                        .send(BridgeEvent::Unsupported {
                            id,
                            request_id: r.id,
                        })
                        .await;
                }
                continue;
            }
        };
        if bridge
            .send(BridgeEvent::Request { id, request })
            .await
            .is_err()
        {
            break "translator stopped".into();
        }
    };
    tracing::info!(%peer, miner = id, %reason, "SV1 miner disconnected");
    let _ = bridge.send(BridgeEvent::MinerGone { id }).await;
    writer.abort();
}

/// Reads one line of at most `MAX_LINE` bytes.
async fn read_line(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    loop {
        let available = reader.fill_buf().await.map_err(|e| e.to_string())?;
        if available.is_empty() {
            return Err("connection closed".into());
        }
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        if buf.len() + chunk.len() > MAX_LINE {
            return Err(format!("line longer than {MAX_LINE} bytes"));
        }
        buf.extend_from_slice(chunk);
        let n = chunk.len();
        reader.consume(n);
        if done {
            return Ok(());
        }
    }
}
