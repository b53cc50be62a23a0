//! A synthetic SV2 mining client for the pipeline benchmark: one extended channel over Noise,
//! the ehash extension negotiated, and valid shares (each with a fresh blinded message) sent as
//! fast as asked; it records the time from sending a share to receiving its signature.

use ehash_protocol::signature_batch::{EhashSignatures, MSG_EHASH_SIGNATURES};
use ehash_protocol::{messages as m, BlindedShare, EXTENSION_TYPE_EHASH};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratum_core::bitcoin::hashes::{sha256d, Hash};
use stratum_core::bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use stratum_core::common_messages_sv2::Protocol;
use stratum_core::extensions_sv2::RequestExtensionsOwned;
use stratum_core::mining_sv2::{
    NewExtendedMiningJobOwned, OpenExtendedMiningChannelOwned, SetNewPrevHashOwned,
    SubmitSharesExtendedOwned,
};
use stratum_core::parsers_sv2::{
    ExtensionsNegotiationOwned, ExtensionsOwned, Mining, MiningOwned, TlvList,
};
use sv2_io::{AuthorityPublicKey, FrameReader, FrameSender};

/// Counters shared by every client.
#[derive(Debug, Default)]
pub struct ClientCounters {
    /// Shares sent.
    pub sent: AtomicU64,
    /// `SubmitSharesSuccess` received.
    pub accepted: AtomicU64,
    /// `SubmitSharesError` received.
    pub rejected: AtomicU64,
    /// Signatures received.
    pub signed: AtomicU64,
    /// Ehash refusals received.
    pub refused: AtomicU64,
}

/// An open channel, ready to submit.
pub struct BenchClient {
    reader: Option<FrameReader>,
    sender: FrameSender,
    channel_id: u32,
    rollable: usize,
    target: [u8; 32],
    keyset: Vec<u8>,
    header: [u8; 80],
    job_id: u32,
    version: u32,
    ntime: u32,
    nonce: u32,
    point: PublicKey,
    step: PublicKey,
    sequence: u32,
    /// Nonces and `B_`s made before the clock starts: a miner's share and its wallet's
    /// blinding are the miner's work, on the miner's machine, not the pool's.
    prepared: std::collections::VecDeque<(u32, [u8; 33])>,
}

/// Setup failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Link failure.
    #[error("link: {0}")]
    Link(String),
    /// Protocol surprise.
    #[error("protocol: {0}")]
    Protocol(String),
}

fn link<E: std::fmt::Display>(e: E) -> ClientError {
    ClientError::Link(e.to_string())
}

impl BenchClient {
    /// Connects, negotiates ehash, opens a channel at the lowest difficulty and waits for work.
    pub async fn open(
        pool: &str,
        authority: &AuthorityPublicKey,
        index: u32,
    ) -> Result<Self, ClientError> {
        let (mut reader, sender) =
            sv2_io::connect_with_setup(pool, authority, Protocol::MiningProtocol, 0)
                .await
                .map_err(link)?;
        let ext = ExtensionsOwned::ExtensionsNegotiation(
            ExtensionsNegotiationOwned::RequestExtensions(RequestExtensionsOwned {
                request_id: 1,
                requested_extensions: stratum_core::binary_sv2::Seq064KOwned::new(vec![
                    EXTENSION_TYPE_EHASH,
                ])
                .map_err(|e| ClientError::Protocol(format!("{e:?}")))?,
            }),
        );
        sender
            .send(sv2_io::frame::encode_standard(ext).map_err(link)?)
            .await
            .map_err(link)?;
        let open = MiningOwned::OpenExtendedMiningChannel(OpenExtendedMiningChannelOwned {
            request_id: 2,
            user_identity: format!("bench-{index}")
                .try_into()
                .map_err(|e| ClientError::Protocol(format!("{e:?}")))?,
            nominal_hash_rate: 1.0,
            max_target: [0xff; 32].into(),
            min_extranonce_size: 4,
        });
        sender
            .send(sv2_io::frame::encode_standard(open).map_err(link)?)
            .await
            .map_err(link)?;
        let (mut channel, mut keyset, mut job, mut prev) = (
            None,
            None,
            None::<NewExtendedMiningJobOwned>,
            None::<SetNewPrevHashOwned>,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while channel.is_none() || keyset.is_none() || job.is_none() || prev.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut f = tokio::time::timeout(left, reader.next())
                .await
                .map_err(|_| ClientError::Protocol("no work within 30 s".into()))?
                .map_err(link)?;
            let h = f.header();
            match h.ext_type_without_channel_msg() {
                EXTENSION_TYPE_EHASH if h.msg_type() == m::MSG_EHASH_MINT_INFO => {
                    let i: m::EhashMintInfo = m::decode(f.payload())
                        .map_err(|e| ClientError::Protocol(format!("{e:?}")))?;
                    keyset = Some(i.keyset_id.into_bytes());
                }
                0 => match Mining::try_from((h.msg_type(), f.payload())).map(|m| m.into_owned()) {
                    Ok(MiningOwned::OpenExtendedMiningChannelSuccess(s)) => {
                        channel = Some((
                            s.channel_id,
                            s.extranonce_prefix.into_bytes(),
                            usize::from(s.extranonce_size),
                            s.target.to_array(),
                        ));
                    }
                    Ok(MiningOwned::NewExtendedMiningJob(j)) => job = Some(j),
                    Ok(MiningOwned::SetNewPrevHash(p)) => prev = Some(p),
                    Ok(MiningOwned::OpenMiningChannelError(e)) => {
                        return Err(ClientError::Protocol(format!("channel refused: {e:?}")))
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        let (Some((channel_id, prefix, rollable, target)), Some(keyset), Some(job), Some(prev)) =
            (channel, keyset, job, prev)
        else {
            return Err(ClientError::Protocol("incomplete setup".into()));
        };
        let extranonce = vec![0u8; rollable];
        let full = [prefix, extranonce].concat();
        let root = hashpool_translator::share_check::job_merkle_root(&job, &full)
            .ok_or_else(|| ClientError::Protocol("no merkle root".into()))?;
        let mut header = [0u8; 80];
        header[0..4].copy_from_slice(&job.version.to_le_bytes());
        header[4..36].copy_from_slice(&prev.prev_hash.to_array());
        header[36..68].copy_from_slice(&root);
        header[68..72].copy_from_slice(&prev.min_ntime.to_le_bytes());
        header[72..76].copy_from_slice(&prev.nbits.to_le_bytes());
        let secp = Secp256k1::new();
        // Distinct valid blinded messages by point addition: P, P+G, P+2G, ...
        let start = SecretKey::from_slice(&rand::random::<[u8; 32]>()).map_err(link)?;
        let step = SecretKey::from_slice(&[[0u8; 31].as_slice(), &[1u8]].concat()).map_err(link)?;
        Ok(Self {
            reader: Some(reader),
            sender,
            channel_id,
            rollable,
            target,
            keyset,
            header,
            job_id: prev.job_id,
            version: job.version,
            ntime: prev.min_ntime,
            nonce: 0,
            point: PublicKey::from_secret_key(&secp, &start),
            step: PublicKey::from_secret_key(&secp, &step),
            sequence: 0,
            prepared: Default::default(),
        })
    }

    /// Finds the nonces and makes the `B_`s of the next `n` shares now.
    pub fn prepare(&mut self, n: u64) -> Result<(), ClientError> {
        self.prepared.reserve(n as usize);
        for _ in 0..n {
            let work = self.make_work()?;
            self.prepared.push_back(work);
        }
        Ok(())
    }

    /// A nonce meeting the channel target and a fresh `B_`.
    fn make_work(&mut self) -> Result<(u32, [u8; 33]), ClientError> {
        loop {
            self.header[76..80].copy_from_slice(&self.nonce.to_le_bytes());
            self.nonce = self.nonce.wrapping_add(1);
            let hash = sha256d::Hash::hash(&self.header).to_byte_array();
            if ehash_protocol::difficulty::meets_target(&hash, &self.target) {
                break;
            }
        }
        self.point = self.point.combine(&self.step).map_err(link)?;
        Ok((self.nonce.wrapping_sub(1), self.point.serialize()))
    }

    /// Takes the reading half, for a task that collects verdicts and signatures.
    pub fn take_reader(&mut self) -> Option<FrameReader> {
        self.reader.take()
    }

    /// Sends the next share (prepared, or found now) with its `B_`, calling `before_send`
    /// with its sequence number just before it goes out (so answers always find it). Returns
    /// the sequence number.
    pub async fn submit_next(&mut self, before_send: impl FnOnce(u32)) -> Result<u32, ClientError> {
        let (nonce, blinded) = match self.prepared.pop_front() {
            Some(work) => work,
            None => self.make_work()?,
        };
        self.sequence = self.sequence.wrapping_add(1);
        let share = SubmitSharesExtendedOwned {
            channel_id: self.channel_id,
            sequence_number: self.sequence,
            job_id: self.job_id,
            nonce,
            ntime: self.ntime,
            version: self.version,
            extranonce: vec![0u8; self.rollable]
                .try_into()
                .map_err(|e| ClientError::Protocol(format!("{e:?}")))?,
        };
        let tlv = BlindedShare {
            keyset_id: self.keyset.clone(),
            blinded,
        }
        .to_tlv();
        let bytes = TlvList::from_slice(&[tlv])
            .map_err(|e| ClientError::Protocol(format!("{e:?}")))?
            .build_frame_bytes_with_tlvs(MiningOwned::SubmitSharesExtended(share))
            .map_err(|e| ClientError::Protocol(format!("{e:?}")))?;
        let frame = sv2_io::frame::from_bytes(bytes).map_err(link)?;
        before_send(self.sequence);
        self.sender.send(frame).await.map_err(link)?;
        Ok(self.sequence)
    }
}

/// Send times of shares waiting for their signature, by sequence number.
pub type InFlight = Arc<Mutex<HashMap<u32, Instant>>>;

/// Latencies (µs) the collectors measured.
#[derive(Debug, Default)]
pub struct Latencies {
    /// Share sent to its signature received.
    pub signature: Vec<u32>,
    /// Share sent to its `SubmitSharesSuccess` received (the pool's journal commit).
    pub ack: Vec<u32>,
}

fn micros_since(t: Instant) -> u32 {
    u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX)
}

/// Reads verdicts and signatures until the link closes or `expected` signatures or refusals
/// arrived; pushes latencies into `latencies`.
pub async fn collect(
    mut reader: FrameReader,
    in_flight: InFlight,
    counters: Arc<ClientCounters>,
    latencies: Arc<Mutex<Latencies>>,
    window: Arc<tokio::sync::Semaphore>,
    expected: u64,
) {
    let mut done = 0u64;
    let mut local = Latencies {
        signature: Vec::with_capacity(expected as usize),
        ack: Vec::with_capacity(expected as usize),
    };
    while done < expected {
        let Ok(mut f) = reader.next().await else {
            break;
        };
        let h = f.header();
        match (h.ext_type_without_channel_msg(), h.msg_type()) {
            (EXTENSION_TYPE_EHASH, t @ (m::MSG_EHASH_SIGNATURE | MSG_EHASH_SIGNATURES)) => {
                let sequences: Vec<u32> = if t == m::MSG_EHASH_SIGNATURE {
                    match m::decode::<m::EhashSignature>(f.payload()) {
                        Ok(sig) => vec![sig.sequence_number],
                        Err(_) => continue,
                    }
                } else {
                    match m::decode::<EhashSignatures>(f.payload()).map(|b| b.unpack()) {
                        Ok(Ok(sigs)) => sigs.iter().map(|s| s.sequence_number).collect(),
                        _ => continue,
                    }
                };
                for seq in sequences {
                    let sent = in_flight.lock().ok().and_then(|mut i| i.remove(&seq));
                    if let Some(t) = sent {
                        local.signature.push(micros_since(t));
                    }
                    counters.signed.fetch_add(1, Ordering::Relaxed);
                    window.add_permits(1);
                    done += 1;
                }
            }
            (EXTENSION_TYPE_EHASH, m::MSG_EHASH_SIGNATURE_ERROR) => {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                window.add_permits(1);
                done += 1;
            }
            (0, t) => match Mining::try_from((t, f.payload())) {
                Ok(Mining::SubmitSharesSuccess(s)) => {
                    let sent = in_flight
                        .lock()
                        .ok()
                        .and_then(|i| i.get(&s.last_sequence_number).copied());
                    if let Some(t) = sent {
                        local.ack.push(micros_since(t));
                    }
                    counters
                        .accepted
                        .fetch_add(u64::from(s.new_submits_accepted_count), Ordering::Relaxed);
                }
                Ok(Mining::SubmitSharesError(_)) => {
                    counters.rejected.fetch_add(1, Ordering::Relaxed);
                    window.add_permits(1);
                    done += 1;
                }
                _ => {}
            },
            _ => {}
        }
    }
    if let Ok(mut l) = latencies.lock() {
        l.signature.extend(local.signature);
        l.ack.extend(local.ack);
    }
}
