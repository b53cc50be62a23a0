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
        .send(BridgeEvent::MinerConnected {
            id,
            lines: out_tx,
            peer,
        })
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
        let request = match parse_line(&buf) {
            Ok(ParsedLine::Empty) => continue,
            Ok(ParsedLine::Request(r)) => r,
            Ok(ParsedLine::Unsupported(request_id)) => {
                tracing::debug!(%peer, ?request_id, "unsupported SV1 message");
                if let Some(request_id) = request_id {
                    let _ = bridge
                        .send(BridgeEvent::Unsupported { id, request_id })
                        .await;
                }
                continue;
            }
            Err(e) => break e,
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

/// One SV1 line, parsed.
#[derive(Debug)]
pub enum ParsedLine {
    /// Blank line.
    Empty,
    /// A request the translator handles.
    Request(Client2Server),
    /// Valid JSON-RPC the translator does not handle (with the request id to answer, if any).
    Unsupported(Option<u64>),
}

/// Parses one line from a miner; an error means the connection must be closed.
pub fn parse_line(line: &[u8]) -> Result<ParsedLine, String> {
    let text = std::str::from_utf8(line)
        .map_err(|_| "line is not UTF-8".to_string())?
        .trim();
    if text.is_empty() {
        return Ok(ParsedLine::Empty);
    }
    let msg: Message =
        serde_json::from_str(text).map_err(|e| format!("malformed JSON-RPC: {e}"))?;
    let request_id = match &msg {
        Message::StandardRequest(r) => Some(r.id),
        _ => None,
    };
    Ok(match Client2Server::try_from(msg) {
        Ok(r) => ParsedLine::Request(r),
        Err(_) => ParsedLine::Unsupported(request_id),
    })
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
