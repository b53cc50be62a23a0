//! Helpers of the job declaration tests: a typed SV2 link, a declaration session with a
//! jd-server, the template provider's current template, channels and custom jobs on the pool.

use binary_sv2::{B0255Owned, B064KOwned, Seq064KOwned, Str0255Owned, U256Owned};
use hashpool::DevnetStack;
use hashpool_jd_client::declarer::job_factory;
use std::time::Duration;
use stratum_core::bitcoin::consensus::deserialize;
use stratum_core::bitcoin::{Amount, ScriptBuf, Transaction, TxOut};
use stratum_core::common_messages_sv2::Protocol;
use stratum_core::job_declaration_sv2::{AllocateMiningJobTokenOwned, DeclareMiningJobOwned};
use stratum_core::mining_sv2::{OpenExtendedMiningChannelOwned, SetCustomMiningJobOwned};
use stratum_core::parsers_sv2::{
    IsSv2Message, JobDeclaration, JobDeclarationOwned, Mining, MiningOwned, TemplateDistribution,
    TemplateDistributionOwned,
};
use stratum_core::template_distribution_sv2::{
    CoinbaseOutputConstraints, NewTemplateOwned, RequestTransactionData, SetNewPrevHashOwned,
    MESSAGE_TYPE_COINBASE_OUTPUT_CONSTRAINTS, MESSAGE_TYPE_REQUEST_TRANSACTION_DATA,
};
use sv2_io::{FrameReader, FrameSender};

/// A Noise link speaking typed SV2 messages.
pub struct Link {
    /// Frames from the peer.
    pub reader: FrameReader,
    /// Frames to the peer.
    pub sender: FrameSender,
}

impl Link {
    /// Connects with Noise and the setup handshake for `protocol` with `flags`.
    pub async fn open(
        addr: &str,
        key: &sv2_io::AuthorityPublicKey,
        protocol: Protocol,
        flags: u32,
    ) -> Self {
        let (reader, sender) = sv2_io::connect_with_setup(addr, key, protocol, flags)
            .await
            .expect("link");
        Self { reader, sender }
    }

    /// Sends one standard message.
    pub async fn send<T>(&self, msg: T)
    where
        T: binary_sv2::Serialize + binary_sv2::GetSize + IsSv2Message,
    {
        let frame = sv2_io::frame::encode_standard(msg).expect("encode");
        self.sender.send(frame).await.expect("send");
    }

    /// The next frame, within 20 s.
    pub async fn next_frame(&mut self) -> sv2_io::Frame {
        tokio::time::timeout(Duration::from_secs(20), self.reader.next())
            .await
            .expect("an answer in time")
            .expect("link open")
    }

    /// The next job declaration message.
    pub async fn jd(&mut self) -> JobDeclarationOwned {
        let mut f = self.next_frame().await;
        let (_, t) = sv2_io::frame::kind(&f);
        JobDeclaration::try_from((t, f.payload()))
            .expect("a job declaration message")
            .into_owned()
    }

    /// The next mining message (other traffic, e.g. targets, skipped by the caller's match).
    pub async fn mining(&mut self) -> MiningOwned {
        loop {
            let mut f = self.next_frame().await;
            let (ext, t) = sv2_io::frame::kind(&f);
            if ext != 0 {
                continue;
            }
            if let Ok(m) = Mining::try_from((t, f.payload())) {
                return m.into_owned();
            }
        }
    }

    /// The next template distribution message.
    pub async fn tdp(&mut self) -> TemplateDistributionOwned {
        let mut f = self.next_frame().await;
        let (_, t) = sv2_io::frame::kind(&f);
        TemplateDistribution::try_from((t, f.payload()))
            .expect("a TDP message")
            .into_owned()
    }
}

/// A template distribution link to the template provider at `addr`, with the coinbase
/// constraints sent, so templates follow.
pub async fn template_link(addr: &str, authority: &sv2_io::AuthorityPublicKey) -> Link {
    let tp = Link::open(addr, authority, Protocol::TemplateDistributionProtocol, 0).await;
    let constraints = CoinbaseOutputConstraints {
        coinbase_output_max_additional_size: 100,
        coinbase_output_max_additional_sigops: 0,
    };
    let frame = sv2_io::encode(
        constraints,
        MESSAGE_TYPE_COINBASE_OUTPUT_CONSTRAINTS,
        0,
        false,
    )
    .expect("encode");
    tp.sender.send(frame).await.expect("send");
    tp
}

/// The template provider's current template on the tip, with its transactions.
pub async fn current_template(
    stack: &DevnetStack,
) -> (NewTemplateOwned, SetNewPrevHashOwned, Vec<Transaction>) {
    let mut tp = template_link(&stack.tp.addr.to_string(), &stack.tp.authority).await;
    let (mut template, mut tip) = (None, None);
    while template.is_none() || tip.is_none() {
        match tp.tdp().await {
            TemplateDistributionOwned::NewTemplate(t) => template = Some(t),
            TemplateDistributionOwned::SetNewPrevHash(p) => tip = Some(p),
            _ => {}
        }
    }
    let template = template.expect("template");
    let ask = RequestTransactionData {
        template_id: template.template_id,
    };
    let frame =
        sv2_io::encode(ask, MESSAGE_TYPE_REQUEST_TRANSACTION_DATA, 0, false).expect("encode");
    tp.sender.send(frame).await.expect("send");
    let txs = loop {
        if let TemplateDistributionOwned::RequestTransactionDataSuccess(s) = tp.tdp().await {
            break s
                .transaction_list
                .into_inner()
                .iter()
                .map(|raw| deserialize(raw.as_bytes()).expect("transaction"))
                .collect::<Vec<Transaction>>();
        }
    };
    (template, tip.expect("tip"), txs)
}

/// A job declaration session with the pool's jd-server.
pub struct Declarations {
    /// The Noise link to the jd-server.
    pub link: Link,
    /// The last request id used.
    pub next_id: u32,
}

/// How a declaration ended.
#[derive(Debug)]
pub enum Answer {
    /// Declared: the token for SetCustomMiningJob.
    Token(B0255Owned),
    /// Refused: error code and details.
    Refused(String, String),
    /// The jd-server asks for these transactions (positions in the declaration).
    MissingAsked(Vec<u16>),
}

impl Declarations {
    /// Allocates a token; returns it and the pool's payout script.
    pub async fn token(&mut self) -> (B0255Owned, ScriptBuf) {
        self.next_id += 1;
        self.link
            .send(JobDeclarationOwned::AllocateMiningJobToken(
                AllocateMiningJobTokenOwned {
                    user_identifier: Str0255Owned::try_from("test".to_string()).expect("str"),
                    request_id: self.next_id,
                },
            ))
            .await;
        match self.link.jd().await {
            JobDeclarationOwned::AllocateMiningJobTokenSuccess(ok) => {
                let outs: Vec<TxOut> =
                    deserialize(ok.coinbase_outputs.as_bytes()).expect("outputs");
                (ok.mining_job_token, outs[0].script_pubkey.clone())
            }
            other => panic!("expected a token, got {other}"),
        }
    }

    /// Declares `template` paying `outputs`; returns the request id.
    pub async fn declare(
        &mut self,
        token: B0255Owned,
        template: &NewTemplateOwned,
        outputs: Vec<TxOut>,
        wtxids: Vec<[u8; 32]>,
        full_extranonce: usize,
    ) -> u32 {
        // The factory insists the outputs take the template's value; an underpaying coinbase
        // is built from a template that claims less.
        let mut claimed = template.clone();
        claimed.coinbase_tx_value_remaining = outputs.iter().map(|o| o.value.to_sat()).sum();
        let (prefix, suffix) = job_factory()
            .new_coinbase_tx_prefix_and_suffix(claimed, outputs, full_extranonce)
            .expect("coinbase");
        self.next_id += 1;
        self.link
            .send(JobDeclarationOwned::DeclareMiningJob(
                DeclareMiningJobOwned {
                    request_id: self.next_id,
                    mining_job_token: token,
                    version: template.version,
                    coinbase_tx_prefix: B064KOwned::try_from(prefix).expect("prefix"),
                    coinbase_tx_suffix: B064KOwned::try_from(suffix).expect("suffix"),
                    wtxid_list: Seq064KOwned::new(
                        wtxids.into_iter().map(U256Owned::from).collect(),
                    )
                    .expect("list"),
                    excess_data: B064KOwned::try_from(Vec::new()).expect("empty"),
                },
            ))
            .await;
        self.next_id
    }

    /// The next answer to a declaration.
    pub async fn answer(&mut self) -> (u32, Answer) {
        match self.link.jd().await {
            JobDeclarationOwned::DeclareMiningJobSuccess(ok) => {
                (ok.request_id, Answer::Token(ok.new_mining_job_token))
            }
            JobDeclarationOwned::DeclareMiningJobError(e) => (
                e.request_id,
                Answer::Refused(
                    e.error_code.as_utf8_or_hex(),
                    String::from_utf8_lossy(e.error_details.as_bytes()).to_string(),
                ),
            ),
            JobDeclarationOwned::ProvideMissingTransactions(m) => (
                m.request_id,
                Answer::MissingAsked(m.unknown_tx_position_list.into_inner()),
            ),
            other => panic!("unexpected {other}"),
        }
    }
}

pub fn pay(script: &ScriptBuf, value: u64) -> Vec<TxOut> {
    vec![TxOut {
        value: Amount::from_sat(value),
        script_pubkey: script.clone(),
    }]
}

/// An extended channel the pool opened.
#[derive(Debug, Clone)]
pub struct OpenedChannel {
    /// Channel id.
    pub id: u32,
    /// The pool's extranonce prefix.
    pub extranonce_prefix: Vec<u8>,
    /// Prefix plus the bytes the client rolls.
    pub full_extranonce: usize,
    /// Share target (little-endian).
    pub target: [u8; 32],
}

/// Opens an extended channel.
pub async fn open_channel(link: &mut Link, user: &str) -> OpenedChannel {
    link.send(MiningOwned::OpenExtendedMiningChannel(
        OpenExtendedMiningChannelOwned {
            request_id: 1,
            user_identity: Str0255Owned::try_from(user.to_string()).expect("str"),
            nominal_hash_rate: 1e6,
            max_target: [0xffu8; 32].into(),
            min_extranonce_size: 8,
        },
    ))
    .await;
    loop {
        match link.mining().await {
            MiningOwned::OpenExtendedMiningChannelSuccess(s) => {
                let extranonce_prefix = s.extranonce_prefix.as_bytes().to_vec();
                return OpenedChannel {
                    id: s.channel_id,
                    full_extranonce: extranonce_prefix.len() + usize::from(s.extranonce_size),
                    extranonce_prefix,
                    target: s.target.to_array(),
                };
            }
            MiningOwned::OpenMiningChannelError(e) => {
                panic!("channel refused: {}", e.error_code.as_utf8_or_hex())
            }
            _ => {}
        }
    }
}

/// The pool's answer to a custom job: its job id, or its error code.
pub async fn set_custom_job(pool: &mut Link, job: SetCustomMiningJobOwned) -> Result<u32, String> {
    let request_id = job.request_id;
    pool.send(MiningOwned::SetCustomMiningJob(job)).await;
    loop {
        match pool.mining().await {
            MiningOwned::SetCustomMiningJobSuccess(ok) if ok.request_id == request_id => {
                return Ok(ok.job_id)
            }
            MiningOwned::SetCustomMiningJobError(e) if e.request_id == request_id => {
                return Err(e.error_code.as_utf8_or_hex())
            }
            _ => {}
        }
    }
}
