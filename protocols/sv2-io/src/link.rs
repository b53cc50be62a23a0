//! Noise connections: [`accept`] as responder, [`connect`] as initiator with a pinned key.

use crate::frame::Frame;
use crate::keys::{AuthorityKeypair, AuthorityPublicKey};
use crate::noise::{NoiseReader, NoiseWriter, WRITE_BATCH};
use std::net::SocketAddr;
use std::time::Duration;
use stratum_core::noise_sv2::{Initiator, Responder};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// How long a Noise handshake may take before the peer is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Validity of the certificate a responder signs for each handshake.
const CERT_VALIDITY: Duration = Duration::from_secs(3600);
/// Outgoing frames buffered per connection before senders wait.
const SEND_QUEUE: usize = 4096;

/// Errors of a Noise link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// TCP connect failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Where.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The Noise handshake failed (for an initiator: typically the responder's certificate is
    /// not signed by the pinned authority key).
    #[error("noise handshake with {peer} failed: {reason}")]
    Handshake {
        /// The peer.
        peer: String,
        /// Codec's reason.
        reason: String,
    },
    /// The handshake did not finish in time.
    #[error("noise handshake with {0} timed out")]
    HandshakeTimeout(String),
    /// The peer closed the connection or sent an undecryptable frame.
    #[error("connection to {peer} closed: {reason}")]
    Closed {
        /// The peer.
        peer: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The local writer is gone (connection already closed).
    #[error("connection to {0} is closed")]
    SenderClosed(SocketAddr),
    /// The responder did not answer SetupConnection with SetupConnectionSuccess.
    #[error("{peer} refused SetupConnection: {reason}")]
    SetupRefused {
        /// The peer.
        peer: String,
        /// What it answered instead.
        reason: String,
    },
    /// A key could not be used for Noise.
    #[error("invalid noise key: {0}")]
    Key(String),
}

/// Receiving half of a Noise connection.
pub struct FrameReader {
    inner: NoiseReader,
    peer: SocketAddr,
}

impl FrameReader {
    /// Next decrypted frame. Any error means the connection is unusable and must be dropped.
    pub async fn next(&mut self) -> Result<Frame, LinkError> {
        self.inner
            .read_frame()
            .await
            .map_err(|e| LinkError::Closed {
                peer: self.peer,
                reason: e.to_string(),
            })
    }

    /// Remote address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}

/// Cloneable sending half; frames are encrypted and written by a dedicated task.
#[derive(Clone)]
pub struct FrameSender {
    tx: mpsc::Sender<Frame>,
    peer: SocketAddr,
}

impl FrameSender {
    /// Queues a frame; waits if the peer is slow.
    pub async fn send(&self, frame: Frame) -> Result<(), LinkError> {
        self.tx
            .send(frame)
            .await
            .map_err(|_| LinkError::SenderClosed(self.peer))
    }

    /// Queues a frame without waiting; fails if the queue is full or the link closed.
    pub fn try_send(&self, frame: Frame) -> Result<(), LinkError> {
        self.tx
            .try_send(frame)
            .map_err(|_| LinkError::SenderClosed(self.peer))
    }

    /// Remote address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// True once the writer task ended (socket closed).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The writer task: every frame queued by the time it wakes goes out in one write.
fn spawn_writer(mut writer: NoiseWriter, peer: SocketAddr) -> FrameSender {
    let (tx, mut rx) = mpsc::channel::<Frame>(SEND_QUEUE);
    tokio::spawn(async move {
        'frames: while let Some(frame) = rx.recv().await {
            let mut next = Some(frame);
            while let Some(frame) = next.take() {
                if let Err(e) = writer.gather(frame) {
                    tracing::debug!(%peer, error = %e, "cannot encrypt a frame, closing link");
                    break 'frames;
                }
                if writer.gathered() < WRITE_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if let Err(e) = writer.flush().await {
                tracing::debug!(%peer, error = %e, "write failed, closing link");
                break;
            }
        }
        rx.close();
        writer.shutdown().await;
    });
    FrameSender { tx, peer }
}

/// Completes a Noise handshake as responder on an accepted socket.
pub async fn accept(
    stream: TcpStream,
    keys: &AuthorityKeypair,
) -> Result<(FrameReader, FrameSender), LinkError> {
    let peer = stream
        .peer_addr()
        .map_err(|e| LinkError::Key(format!("peer address: {e}")))?;
    let _ = stream.set_nodelay(true);
    let responder =
        Responder::from_authority_kp(&keys.public().0, &keys.secret_bytes(), CERT_VALIDITY)
            .map_err(|e| LinkError::Key(format!("{e:?}")))?;
    let handshake = crate::noise::respond(stream, responder, HANDSHAKE_TIMEOUT);
    let (reader, writer) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| LinkError::HandshakeTimeout(peer.to_string()))?
        .map_err(|e| LinkError::Handshake {
            peer: peer.to_string(),
            reason: e.to_string(),
        })?;
    Ok((
        FrameReader {
            inner: reader,
            peer,
        },
        spawn_writer(writer, peer),
    ))
}

/// Connects to `addr` and completes a Noise handshake that only succeeds if the responder's
/// certificate is signed by `authority`.
pub async fn connect(
    addr: &str,
    authority: &AuthorityPublicKey,
) -> Result<(FrameReader, FrameSender), LinkError> {
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| LinkError::HandshakeTimeout(addr.to_string()))?
        .map_err(|source| LinkError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    let peer = stream.peer_addr().map_err(|source| LinkError::Connect {
        addr: addr.to_string(),
        source,
    })?;
    let _ = stream.set_nodelay(true);
    let initiator =
        Initiator::from_raw_k(authority.0).map_err(|e| LinkError::Key(format!("{e:?}")))?;
    let handshake = crate::noise::initiate(stream, initiator, HANDSHAKE_TIMEOUT);
    let (reader, writer) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| LinkError::HandshakeTimeout(addr.to_string()))?
        .map_err(|e| LinkError::Handshake {
            peer: addr.to_string(),
            reason: format!(
                "{e} (is the server's certificate signed by authority key {authority}?)"
            ),
        })?;
    Ok((
        FrameReader {
            inner: reader,
            peer,
        },
        spawn_writer(writer, peer),
    ))
}

/// Binds a TCP listener on `addr`; returns it with the address actually bound (port 0
/// resolved).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Accepts Noise connections on `listener` until `shutdown`, running `handler` for each one in
/// its own task; a handler error closes only that connection and is logged with `role`.
pub async fn serve<F, Fut>(
    listener: tokio::net::TcpListener,
    keys: AuthorityKeypair,
    role: &'static str,
    shutdown: tokio_util::sync::CancellationToken,
    handler: F,
) where
    F: Fn(FrameReader, FrameSender, std::net::SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let handler = std::sync::Arc::new(handler);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(role, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (keys, handler, sd) = (keys.clone(), handler.clone(), shutdown.clone());
        tokio::spawn(async move {
            let result = async {
                let (reader, sender) = accept(stream, &keys).await.map_err(|e| e.to_string())?;
                tokio::select! {
                    _ = sd.cancelled() => Ok(()),
                    r = handler(reader, sender, peer) => r,
                }
            };
            match result.await {
                Ok(()) => tracing::info!(role, %peer, "connection closed"),
                Err(e) => tracing::info!(role, %peer, error = %e, "connection closed"),
            }
        });
    }
}

/// [`connect`], then `SetupConnection` for `protocol`; succeeds only on
/// `SetupConnectionSuccess`.
pub async fn connect_with_setup(
    address: &str,
    authority: &AuthorityPublicKey,
    protocol: stratum_core::common_messages_sv2::Protocol,
    flags: u32,
) -> Result<(FrameReader, FrameSender), LinkError> {
    use stratum_core::parsers_sv2::CommonMessages;
    let (mut reader, sender) = connect(address, authority).await?;
    let refused = |reason: String| LinkError::SetupRefused {
        peer: address.to_string(),
        reason,
    };
    let setup =
        crate::frame::setup_connection(protocol, flags).map_err(|e| refused(e.to_string()))?;
    sender.send(setup).await?;
    let mut reply = reader.next().await?;
    let (_, t) = crate::frame::kind(&reply);
    match CommonMessages::try_from((t, reply.payload())) {
        Ok(CommonMessages::SetupConnectionSuccess(_)) => Ok((reader, sender)),
        other => Err(refused(format!("{other:?}"))),
    }
}
