//! Noise NX over TCP with batched socket I/O.
//!
//! The handshake and the frame encryption are SRI's (`noise_sv2` through `codec_sv2`). What is
//! ours is how bytes meet the socket: the reader takes whatever the socket holds in one read and
//! decodes every frame in it, and the writer encrypts every queued frame into one buffer and
//! writes it with one call. Under load that is one syscall for many frames instead of two reads
//! and one write per frame, and the reader never yields between a frame's header and body.

use crate::frame::Frame;
use std::time::Duration;
use stratum_core::codec_sv2::{
    self, Decoded, Decrypted, ExpectsHandshakeMessage, Handshake, HandshakeMessage, InitiatorSent,
    NoiseDecoder, NoiseEncoder, Transport, TransportDecryptState, TransportEncryptState,
};
use stratum_core::noise_sv2::{
    Initiator, Responder, ELLSWIFT_ENCODING_SIZE, INITIATOR_EXPECTED_HANDSHAKE_MESSAGE_SIZE,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Smallest read buffer: a few share-sized frames, little memory for each of the thousands of
/// mostly idle miner connections a pool holds.
const MIN_READ: usize = 512;
/// Largest read buffer a busy link (the mint link under load) grows to.
const MAX_READ: usize = 64 * 1024;
/// Bytes of frames the writer gathers before it writes.
pub(crate) const WRITE_BATCH: usize = 64 * 1024;

/// Errors of a Noise connection.
#[derive(Debug, thiserror::Error)]
pub enum NoiseError {
    /// The socket failed or the peer closed it.
    #[error("socket closed: {0}")]
    Socket(String),
    /// A handshake message did not arrive in time.
    #[error("handshake timed out")]
    Timeout,
    /// The codec refused a frame or a handshake step (bad key, bad certificate, bad MAC).
    #[error("{0:?}")]
    Codec(codec_sv2::Error),
    /// The peer sent a handshake message of the wrong size.
    #[error("handshake message of the wrong size")]
    BadHandshake,
}

impl From<codec_sv2::Error> for NoiseError {
    fn from(e: codec_sv2::Error) -> Self {
        NoiseError::Codec(e)
    }
}

fn closed(e: std::io::Error) -> NoiseError {
    NoiseError::Socket(e.to_string())
}

/// Runs the initiator's side of the NX handshake; the responder must prove `initiator`'s key.
pub(crate) async fn initiate(
    stream: TcpStream,
    initiator: Box<Initiator>,
    timeout: Duration,
) -> Result<(NoiseReader, NoiseWriter), NoiseError> {
    let (mut reader, mut writer) = stream.into_split();
    let (mut decoder, mut encoder) = (NoiseDecoder::new(), NoiseEncoder::new());
    let (first, handshake) = Handshake::initiator(initiator).step_0()?;
    send_handshake(&mut writer, &mut encoder, first).await?;
    let reply = receive_handshake::<InitiatorSent>(&mut reader, &mut decoder, timeout).await?;
    let payload: [u8; INITIATOR_EXPECTED_HANDSHAKE_MESSAGE_SIZE] = reply
        .payload()
        .try_into()
        .map_err(|_| NoiseError::BadHandshake)?;
    let transport = handshake.step_2(payload)?;
    Ok(halves(reader, writer, decoder, encoder, transport))
}

/// Runs the responder's side of the NX handshake.
pub(crate) async fn respond(
    stream: TcpStream,
    responder: Box<Responder>,
    timeout: Duration,
) -> Result<(NoiseReader, NoiseWriter), NoiseError> {
    let (mut reader, mut writer) = stream.into_split();
    let (mut decoder, mut encoder) = (NoiseDecoder::new(), NoiseEncoder::new());
    let first = receive_handshake::<Responder>(&mut reader, &mut decoder, timeout).await?;
    let payload: [u8; ELLSWIFT_ENCODING_SIZE] = first
        .payload()
        .try_into()
        .map_err(|_| NoiseError::BadHandshake)?;
    let (reply, transport) = Handshake::responder(responder).step_1(payload)?;
    send_handshake(&mut writer, &mut encoder, reply).await?;
    Ok(halves(reader, writer, decoder, encoder, transport))
}

fn halves(
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    decoder: NoiseDecoder,
    encoder: NoiseEncoder,
    transport: Transport,
) -> (NoiseReader, NoiseWriter) {
    let (encrypt, decrypt) = transport.split();
    (
        NoiseReader {
            socket: reader,
            decoder,
            state: Some(decrypt),
            buf: vec![0; MIN_READ],
            start: 0,
            end: 0,
            last_read: 0,
            filled: false,
        },
        NoiseWriter {
            socket: writer,
            encoder,
            state: encrypt,
            out: Vec::new(),
        },
    )
}

async fn send_handshake(
    writer: &mut OwnedWriteHalf,
    encoder: &mut NoiseEncoder,
    message: HandshakeMessage,
) -> Result<(), NoiseError> {
    let bytes = encoder.encode_handshake(message);
    writer.write_all(bytes.as_ref()).await.map_err(closed)
}

async fn receive_handshake<R: ExpectsHandshakeMessage>(
    reader: &mut OwnedReadHalf,
    decoder: &mut NoiseDecoder,
    timeout: Duration,
) -> Result<HandshakeMessage, NoiseError> {
    loop {
        let mut bytes = vec![0u8; decoder.writable_len()];
        tokio::time::timeout(timeout, reader.read_exact(&mut bytes))
            .await
            .map_err(|_| NoiseError::Timeout)?
            .map_err(closed)?;
        decoder.writable().copy_from_slice(&bytes);
        if let Decoded::Frame(frame) = decoder.next_handshake_frame::<R>()? {
            return Ok(frame);
        }
    }
}

/// The receiving half: decrypts frames out of a buffer filled by as few reads as possible.
pub(crate) struct NoiseReader {
    socket: OwnedReadHalf,
    decoder: NoiseDecoder,
    /// Taken while the codec decrypts; `None` only after a codec error killed the connection.
    state: Option<TransportDecryptState>,
    buf: Vec<u8>,
    /// Bytes `buf[start..end]` are read and not yet given to the decoder.
    start: usize,
    end: usize,
    /// Bytes the last read returned, and whether they filled the buffer: the buffer doubles
    /// after a full read and halves after reads of under a quarter of it.
    last_read: usize,
    filled: bool,
}

impl NoiseReader {
    /// The next frame. Cancel-safe: the only await is a socket read into the buffer, and a
    /// frame is taken out of the buffer only when it is returned.
    pub(crate) async fn read_frame(&mut self) -> Result<Frame, NoiseError> {
        loop {
            if let Some(frame) = self.decode_buffered()? {
                return Ok(frame);
            }
            self.make_room();
            let n = self
                .socket
                .read(&mut self.buf[self.end..])
                .await
                .map_err(closed)?;
            if n == 0 {
                return Err(NoiseError::Socket("peer closed the connection".into()));
            }
            self.filled = self.end + n == self.buf.len();
            self.last_read = n;
            self.end += n;
        }
    }

    /// Feeds the decoder from the buffer while the buffer holds what it asks for.
    fn decode_buffered(&mut self) -> Result<Option<Frame>, NoiseError> {
        loop {
            let need = self.decoder.writable_len();
            if self.end - self.start < need {
                return Ok(None);
            }
            self.decoder
                .writable()
                .copy_from_slice(&self.buf[self.start..self.start + need]);
            self.start += need;
            let state = self
                .state
                .take()
                .ok_or_else(|| NoiseError::Socket("connection failed earlier".into()))?;
            match self.decoder.next_transport_frame(state)? {
                Decrypted::Frame(frame, state) => {
                    self.state = Some(state);
                    return Ok(Some(frame));
                }
                Decrypted::Incomplete(_, state) => self.state = Some(state),
            }
        }
    }

    /// Moves unread bytes to the front and sizes the buffer: to what the traffic fills, and
    /// never below the decoder's next request, so one read can always complete it.
    fn make_room(&mut self) {
        let pending = self.end - self.start;
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = pending;
        }
        let size = self.buf.len();
        let wanted = if self.filled {
            (size * 2).min(MAX_READ)
        } else if self.last_read < size / 4 {
            (size / 2).max(MIN_READ)
        } else {
            size
        };
        // Unread bytes are always fewer than the decoder's request.
        let wanted = wanted.max(self.decoder.writable_len()).max(pending);
        if wanted > size {
            self.buf.resize(wanted, 0);
        } else if wanted < size {
            self.buf.truncate(wanted);
            self.buf.shrink_to_fit();
        }
        self.filled = false;
    }
}

/// The sending half: encrypts frames into one buffer, written with one call.
pub(crate) struct NoiseWriter {
    socket: OwnedWriteHalf,
    encoder: NoiseEncoder,
    state: TransportEncryptState,
    out: Vec<u8>,
}

impl NoiseWriter {
    /// Encrypts `frame` behind those already gathered.
    pub(crate) fn gather(&mut self, frame: Frame) -> Result<(), NoiseError> {
        let bytes = self.encoder.encode_transport(frame, &mut self.state)?;
        self.out.extend_from_slice(bytes.as_ref());
        Ok(())
    }

    /// Bytes gathered and not yet written.
    pub(crate) fn gathered(&self) -> usize {
        self.out.len()
    }

    /// Writes every gathered frame.
    pub(crate) async fn flush(&mut self) -> Result<(), NoiseError> {
        self.socket.write_all(&self.out).await.map_err(closed)?;
        // Given back after each write: an idle connection holds no write buffer, and a busy
        // one allocates once per batch of frames.
        self.out = Vec::new();
        Ok(())
    }

    /// Closes the sending direction.
    pub(crate) async fn shutdown(&mut self) {
        let _ = self.socket.shutdown().await;
    }
}
