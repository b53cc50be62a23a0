//! Sign requests on the wire: whatever is queued when the link's request task wakes goes to
//! the mint in one `SignRequests` frame per keyset, so a busy pool seals one frame for many
//! shares instead of one each.

use crate::mint_client::PendingSign;
use ehash_protocol::sign_batch::{self as batch, RequestRecord, SignRequests};
use ehash_protocol::EXTENSION_TYPE_MINT_LINK;
use sv2_io::FrameSender;
use tokio::sync::mpsc;

/// A request on its way to the mint.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Keyset it names.
    pub keyset_id: Vec<u8>,
    /// The request.
    pub record: RequestRecord,
}

impl Outgoing {
    /// The request `id` for `p`.
    pub fn new(id: u64, p: &PendingSign) -> Self {
        Self {
            keyset_id: p.keyset_id.clone(),
            record: RequestRecord {
                request_id: id,
                amount: p.amount,
                replay: p.replay,
                blinded: p.blinded,
            },
        }
    }
}

/// `SignRequests` frames for `requests`: one per keyset and frame's worth, in order.
pub fn request_frames(requests: &[Outgoing]) -> Vec<Result<sv2_io::Frame, String>> {
    let by_keyset =
        batch::group_by_keyset(requests.iter().map(|r| (r.keyset_id.as_slice(), r.record)));
    let mut frames = Vec::new();
    for (keyset, records) in by_keyset {
        for chunk in records.chunks(batch::MAX_REQUESTS) {
            frames.push(
                SignRequests::pack(keyset, chunk)
                    .map_err(|e| e.to_string())
                    .and_then(|msg| {
                        sv2_io::encode(
                            msg,
                            batch::MSG_SIGN_REQUESTS,
                            EXTENSION_TYPE_MINT_LINK,
                            false,
                        )
                        .map_err(|e| e.to_string())
                    }),
            );
        }
    }
    frames
}

/// Sends queued requests until the queue or the link closes. A request lost with the link
/// stays in flight and is replayed on the next session.
pub async fn send_requests(mut queue: mpsc::UnboundedReceiver<Outgoing>, sender: FrameSender) {
    let mut queued = Vec::new();
    while queue.recv_many(&mut queued, batch::MAX_REQUESTS).await > 0 {
        for frame in request_frames(&queued) {
            match frame {
                Ok(f) => {
                    if sender.send(f).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot encode sign requests"),
            }
        }
        queued.clear();
    }
}

/// Aborts a task when dropped: a session's helper tasks end with the session.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ehash_protocol::messages::decode;

    fn outgoing(id: u64, keyset: u8) -> Outgoing {
        Outgoing {
            keyset_id: vec![keyset; 33],
            record: RequestRecord {
                request_id: id,
                amount: 4,
                replay: false,
                blinded: [id as u8; 33],
            },
        }
    }

    #[test]
    fn requests_are_split_by_keyset_and_frame_size() {
        let mut requests: Vec<_> = (0..batch::MAX_REQUESTS as u64 + 5)
            .map(|i| outgoing(i, 1))
            .collect();
        requests.insert(3, outgoing(99_999, 2));
        let frames: Vec<_> = request_frames(&requests)
            .into_iter()
            .map(|f| f.unwrap())
            .collect();
        assert_eq!(frames.len(), 3);
        let mut seen = Vec::new();
        for mut f in frames {
            assert_eq!(
                sv2_io::frame::kind(&f),
                (EXTENSION_TYPE_MINT_LINK, batch::MSG_SIGN_REQUESTS)
            );
            let msg: SignRequests = decode(f.payload()).unwrap();
            let keyset = msg.keyset_id.as_bytes()[0];
            seen.extend(
                msg.unpack()
                    .unwrap()
                    .into_iter()
                    .map(|r| (keyset, r.request_id)),
            );
        }
        assert_eq!(seen.len(), requests.len());
        assert!(seen.contains(&(2, 99_999)));
        assert!(seen.iter().filter(|(k, _)| *k == 1).count() == batch::MAX_REQUESTS + 5);
    }
}
