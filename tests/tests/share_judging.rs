//! A raw SV2 client (real Noise, real frames) mines its own shares against the pool and checks
//! how each is judged: a bad share gets an SV2 error and no token; an invalid curve point or an
//! unknown keyset is refused for ehash while the share itself is still judged and accepted.
//! Standard channels (header-only devices) earn ehash the same way.

use ehash_protocol::{messages as m, BlindedShare, EXTENSION_TYPE_EHASH};
use hashpool::DevnetStack;
use hashpool_tests::{fast_devnet, init_logs};
use std::time::Duration;
use stratum_core::bitcoin::hashes::{sha256d, Hash};
use stratum_core::common_messages_sv2::Protocol;
use stratum_core::extensions_sv2::RequestExtensionsOwned;
use stratum_core::mining_sv2::{
    NewExtendedMiningJobOwned, NewMiningJobOwned, OpenExtendedMiningChannelOwned,
    OpenStandardMiningChannelOwned, SetNewPrevHashOwned, SubmitSharesExtendedOwned,
    SubmitSharesStandard,
};
use stratum_core::parsers_sv2::{
    ExtensionsNegotiationOwned, ExtensionsOwned, Mining, MiningOwned, TlvList,
};
use sv2_io::{FrameReader, FrameSender};

/// Which kind of channel the client opens.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Extended,
    Standard,
}

/// A share of either channel kind.
enum TestShare {
    Extended(SubmitSharesExtendedOwned),
    Standard(SubmitSharesStandard),
}

struct Client {
    reader: FrameReader,
    sender: FrameSender,
    kind: Kind,
    channel_id: u32,
    prefix: Vec<u8>,
    rollable: usize,
    target: [u8; 32],
    job: Option<NewExtendedMiningJobOwned>,
    standard_job: Option<NewMiningJobOwned>,
    prev: Option<SetNewPrevHashOwned>,
    keyset: Vec<u8>,
    seq: u32,
}

enum Outcome {
    Accepted,
    Rejected(String),
    EhashSigned,
    EhashRefused(String),
}

async fn send(sender: &FrameSender, f: sv2_io::Frame) {
    sender.send(f).await.expect("send");
}

impl Client {
    async fn connect(stack: &DevnetStack, kind: Kind) -> Self {
        let pool = stack.pool.addr.to_string();
        let (reader, sender) =
            sv2_io::connect_with_setup(&pool, &stack.pool.authority, Protocol::MiningProtocol, 0)
                .await
                .expect("connect and set up");
        let ext = ExtensionsOwned::ExtensionsNegotiation(
            ExtensionsNegotiationOwned::RequestExtensions(RequestExtensionsOwned {
                request_id: 1,
                requested_extensions: binary_seq(vec![EXTENSION_TYPE_EHASH]),
            }),
        );
        send(&sender, sv2_io::frame::encode_standard(ext).expect("ext")).await;
        let open = match kind {
            Kind::Extended => {
                MiningOwned::OpenExtendedMiningChannel(OpenExtendedMiningChannelOwned {
                    request_id: 7,
                    user_identity: "raw-client".to_string().try_into().expect("user"),
                    nominal_hash_rate: 1.0,
                    max_target: [0xff; 32].into(),
                    min_extranonce_size: 4,
                })
            }
            Kind::Standard => {
                MiningOwned::OpenStandardMiningChannel(OpenStandardMiningChannelOwned {
                    request_id: 7,
                    user_identity: "raw-device".to_string().try_into().expect("user"),
                    nominal_hash_rate: 1.0,
                    max_target: [0xff; 32].into(),
                })
            }
        };
        send(&sender, sv2_io::frame::encode_standard(open).expect("open")).await;
        let mut c = Client {
            reader,
            sender,
            kind,
            channel_id: 0,
            prefix: vec![],
            rollable: 0,
            target: [0; 32],
            job: None,
            standard_job: None,
            prev: None,
            keyset: vec![],
            seq: 0,
        };
        // Read until we have a channel, a keyset and work.
        while c.channel_id == 0 || c.keyset.is_empty() || !c.has_job() || c.prev.is_none() {
            let o = c.next_event().await;
            assert!(o.is_none(), "no share outcomes expected yet");
        }
        c
    }

    fn has_job(&self) -> bool {
        match self.kind {
            Kind::Extended => self.job.is_some(),
            Kind::Standard => self.standard_job.is_some(),
        }
    }

    /// Reads one frame; returns a share/ehash outcome if it was one.
    async fn next_event(&mut self) -> Option<Outcome> {
        let mut f = tokio::time::timeout(Duration::from_secs(30), self.reader.next())
            .await
            .expect("frame in time")
            .expect("link up");
        let h = f.header();
        match h.ext_type_without_channel_msg() {
            EXTENSION_TYPE_EHASH => match h.msg_type() {
                m::MSG_EHASH_MINT_INFO => {
                    let i: m::EhashMintInfo = m::decode(f.payload()).expect("info");
                    self.keyset = i.keyset_id.into_bytes();
                    None
                }
                // The pool batches signatures that are ready together; these tests wait for
                // each share's outcome, so a batch holds one share's signature here too.
                m::MSG_EHASH_SIGNATURE | ehash_protocol::signature_batch::MSG_EHASH_SIGNATURES => {
                    Some(Outcome::EhashSigned)
                }
                m::MSG_EHASH_SIGNATURE_ERROR => {
                    let e: m::EhashSignatureError = m::decode(f.payload()).expect("err");
                    Some(Outcome::EhashRefused(
                        m::read_str(&e.error_code).expect("utf8"),
                    ))
                }
                _ => None,
            },
            0 => match Mining::try_from((h.msg_type(), f.payload())).map(|m| m.into_owned()) {
                Ok(MiningOwned::OpenExtendedMiningChannelSuccess(s)) => {
                    self.channel_id = s.channel_id;
                    self.prefix = s.extranonce_prefix.into_bytes();
                    self.rollable = usize::from(s.extranonce_size);
                    self.target = s.target.to_array();
                    None
                }
                Ok(MiningOwned::OpenStandardMiningChannelSuccess(s)) => {
                    self.channel_id = s.channel_id;
                    self.prefix = s.extranonce_prefix.into_bytes();
                    self.target = s.target.to_array();
                    None
                }
                Ok(MiningOwned::NewMiningJob(j)) => {
                    if j.min_ntime.clone().into_inner().is_some() || self.standard_job.is_none() {
                        self.standard_job = Some(j);
                    }
                    None
                }
                Ok(MiningOwned::NewExtendedMiningJob(j)) => {
                    if j.min_ntime.clone().into_inner().is_some() || self.job.is_none() {
                        self.job = Some(j);
                    }
                    None
                }
                Ok(MiningOwned::SetNewPrevHash(p)) => {
                    self.prev = Some(p);
                    None
                }
                Ok(MiningOwned::SetTarget(t)) => {
                    self.target = t.maximum_target.to_array();
                    None
                }
                Ok(MiningOwned::SubmitSharesSuccess(_)) => Some(Outcome::Accepted),
                Ok(MiningOwned::SubmitSharesError(e)) => Some(Outcome::Rejected(
                    String::from_utf8_lossy(e.error_code.as_bytes()).to_string(),
                )),
                _ => None,
            },
            _ => None,
        }
    }

    /// Finds a share meeting (or, with `valid = false`, missing) the channel target.
    fn make_share(&mut self, valid: bool) -> TestShare {
        let prev = self.prev.clone().expect("prev");
        let mut extranonce = vec![0u8; self.rollable];
        let (version, root) = match self.kind {
            Kind::Extended => {
                let job = self.job.clone().expect("job");
                extranonce[..4].copy_from_slice(&self.seq.to_le_bytes());
                let full: Vec<u8> = [self.prefix.clone(), extranonce.clone()].concat();
                let root = hashpool_translator::share_check::job_merkle_root(&job, &full)
                    .expect("merkle root");
                (job.version, root)
            }
            Kind::Standard => {
                // A header-only device: the pool fixed the merkle root; only nonce and ntime roll.
                let job = self.standard_job.clone().expect("standard job");
                (job.version, job.merkle_root.to_array())
            }
        };
        let ntime = prev.min_ntime + self.seq;
        let mut header = [0u8; 80];
        header[0..4].copy_from_slice(&version.to_le_bytes());
        header[4..36].copy_from_slice(&prev.prev_hash.to_array());
        header[36..68].copy_from_slice(&root);
        header[68..72].copy_from_slice(&ntime.to_le_bytes());
        header[72..76].copy_from_slice(&prev.nbits.to_le_bytes());
        let mut nonce = 0u32;
        loop {
            header[76..80].copy_from_slice(&nonce.to_le_bytes());
            let hash = sha256d::Hash::hash(&header).to_byte_array();
            if ehash_protocol::difficulty::meets_target(&hash, &self.target) == valid {
                break;
            }
            nonce += 1;
        }
        self.seq += 1;
        match self.kind {
            Kind::Extended => TestShare::Extended(SubmitSharesExtendedOwned {
                channel_id: self.channel_id,
                sequence_number: self.seq,
                job_id: prev.job_id,
                nonce,
                ntime,
                version,
                extranonce: extranonce.try_into().expect("extranonce"),
            }),
            Kind::Standard => TestShare::Standard(SubmitSharesStandard {
                channel_id: self.channel_id,
                sequence_number: self.seq,
                job_id: prev.job_id,
                nonce,
                ntime,
                version,
            }),
        }
    }

    async fn submit(&mut self, share: TestShare, blinded: Option<BlindedShare>) {
        let msg = match share {
            TestShare::Extended(s) => MiningOwned::SubmitSharesExtended(s),
            TestShare::Standard(s) => MiningOwned::SubmitSharesStandard(s),
        };
        let frame = match blinded {
            Some(b) => {
                let list = TlvList::from_slice(&[b.to_tlv()]).expect("tlv");
                let bytes = list.build_frame_bytes_with_tlvs(msg).expect("bytes");
                sv2_io::frame::from_bytes(bytes).expect("frame")
            }
            None => sv2_io::frame::encode_standard(msg).expect("frame"),
        };
        send(&self.sender, frame).await;
    }

    /// Collects the outcomes of one submission (share verdict, then the ehash verdict if any).
    async fn outcomes(&mut self, expect: usize) -> Vec<Outcome> {
        let mut out = Vec::new();
        while out.len() < expect {
            if let Some(o) = self.next_event().await {
                out.push(o);
            }
        }
        out
    }
}

fn binary_seq(v: Vec<u16>) -> stratum_core::binary_sv2::Seq064KOwned<u16> {
    stratum_core::binary_sv2::Seq064KOwned::new(v).expect("seq")
}

fn valid_point() -> [u8; 33] {
    // The secp256k1 generator G, compressed.
    let mut p = [0u8; 33];
    p.copy_from_slice(&hex_decode(
        "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
    ));
    p
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_are_judged_and_bad_ehash_is_refused() {
    init_logs();
    let mut opts = fast_devnet("judging");
    opts.miners = 0;
    // Keep the work fixed while the client mines: no block can be found and the pacer never
    // eases (it re-announces work after 3 idle intervals), so no share here can go stale.
    opts.block_interval_secs = 3600.0;
    opts.initial_block_hashes = 1e15;
    let stack = DevnetStack::start(&opts).await.expect("stack");
    let mut c = Client::connect(&stack, Kind::Extended).await;
    let keyset = c.keyset.clone();

    // A share that misses the target: SV2 error, and no token.
    let bad = c.make_share(false);
    c.submit(
        bad,
        Some(BlindedShare {
            keyset_id: keyset.clone(),
            blinded: valid_point(),
        }),
    )
    .await;
    match c.outcomes(1).await.remove(0) {
        Outcome::Rejected(code) => assert_eq!(code, "difficulty-too-low"),
        _ => panic!("a share under target must be rejected"),
    }

    // An invalid curve point: the share is accepted, the ehash is refused.
    let mut bad_point = [0u8; 33];
    bad_point[0] = 0x02;
    bad_point[1..].copy_from_slice(&[0xff; 32]);
    let share = c.make_share(true);
    c.submit(
        share,
        Some(BlindedShare {
            keyset_id: keyset.clone(),
            blinded: bad_point,
        }),
    )
    .await;
    let o = c.outcomes(2).await;
    assert!(matches!(o[0], Outcome::Accepted));
    assert!(matches!(&o[1], Outcome::EhashRefused(code) if code == m::ERR_INVALID_POINT));

    // An unknown keyset: accepted share, refused ehash.
    let share = c.make_share(true);
    c.submit(
        share,
        Some(BlindedShare {
            keyset_id: vec![0x01; 33],
            blinded: valid_point(),
        }),
    )
    .await;
    let o = c.outcomes(2).await;
    assert!(matches!(o[0], Outcome::Accepted));
    assert!(matches!(&o[1], Outcome::EhashRefused(code) if code == m::ERR_UNKNOWN_KEYSET));

    // A good blinded message is signed; the same B_ again is refused (never signed twice).
    let share = c.make_share(true);
    c.submit(
        share,
        Some(BlindedShare {
            keyset_id: keyset.clone(),
            blinded: valid_point(),
        }),
    )
    .await;
    let o = c.outcomes(2).await;
    assert!(matches!(o[0], Outcome::Accepted));
    assert!(matches!(o[1], Outcome::EhashSigned));
    let share = c.make_share(true);
    c.submit(
        share,
        Some(BlindedShare {
            keyset_id: keyset.clone(),
            blinded: valid_point(),
        }),
    )
    .await;
    let o = c.outcomes(2).await;
    assert!(matches!(o[0], Outcome::Accepted));
    assert!(matches!(&o[1], Outcome::EhashRefused(code) if code == m::ERR_ALREADY_SIGNED));

    // A share without the TLV mines plainly: accepted, nothing else.
    let share = c.make_share(true);
    c.submit(share, None).await;
    assert!(matches!(c.outcomes(1).await.remove(0), Outcome::Accepted));

    let mint = stack.mint.ledger.stats().await.expect("mint stats");
    assert_eq!(mint.signatures, 1, "exactly one signature was issued");
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&opts.data_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_channel_shares_earn_ehash() {
    init_logs();
    let mut opts = fast_devnet("standard");
    opts.miners = 0;
    opts.block_interval_secs = 3600.0;
    opts.initial_block_hashes = 1e15;
    let stack = DevnetStack::start(&opts).await.expect("stack");
    let mut c = Client::connect(&stack, Kind::Standard).await;
    let keyset = c.keyset.clone();

    let bad = c.make_share(false);
    c.submit(bad, None).await;
    match c.outcomes(1).await.remove(0) {
        Outcome::Rejected(code) => assert_eq!(code, "difficulty-too-low"),
        _ => panic!("a share under target must be rejected"),
    }
    let share = c.make_share(true);
    c.submit(
        share,
        Some(BlindedShare {
            keyset_id: keyset,
            blinded: valid_point(),
        }),
    )
    .await;
    let o = c.outcomes(2).await;
    assert!(matches!(o[0], Outcome::Accepted));
    assert!(matches!(o[1], Outcome::EhashSigned));
    let share = c.make_share(true);
    c.submit(share, None).await;
    assert!(matches!(c.outcomes(1).await.remove(0), Outcome::Accepted));

    assert_eq!(stack.pool.stats.snapshot().shares_accepted, 2);
    let mint = stack.mint.ledger.stats().await.expect("mint stats");
    assert_eq!(mint.signatures, 1);
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&opts.data_dir);
}
