//! Helpers shared by the integration tests.

pub mod jd;

use hashpool::DevnetOptions;
use std::path::PathBuf;

/// A fresh data directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "hashpool-test-{name}-{}-{}",
        std::process::id(),
        nanos()
    ));
    std::fs::create_dir_all(&d).ok();
    d
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Devnet options for fast tests: ephemeral ports, quick blocks, many small shares.
pub fn fast_devnet(name: &str) -> DevnetOptions {
    DevnetOptions {
        data_dir: temp_dir(name),
        miners: 1,
        threads: 1,
        block_interval_secs: 2.0,
        initial_block_hashes: 1_000_000.0,
        share_unit_log2: 10,
        shares_per_minute: 600.0,
        vardiff_interval_secs: 2.0,
        ephemeral_ports: true,
        ..DevnetOptions::default()
    }
}

/// Logs to the test output when RUST_LOG is set.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The translator config the devnet `opts` would use, pointed at the running stack's pool:
/// for tests that start a second or replacement translator.
pub fn translator_config(
    opts: &DevnetOptions,
    stack: &hashpool::DevnetStack,
) -> hashpool_translator::TranslatorConfig {
    let configs = hashpool::StackConfigs::generate(opts, hashpool::DevnetPorts::EPHEMERAL)
        .expect("devnet configs");
    let mut cfg = configs.translator;
    cfg.pool_address = stack.pool.addr.to_string();
    cfg
}

/// A raw mint-link session authenticated with the devnet pool's own key: for tests that send
/// the mint requests the pool would never send.
pub struct MintLinkSession {
    reader: sv2_io::FrameReader,
    sender: sv2_io::FrameSender,
}

impl MintLinkSession {
    /// Connects and authenticates as the pool of the devnet in `opts.data_dir`.
    pub async fn open(opts: &DevnetOptions, stack: &hashpool::DevnetStack) -> Self {
        use ehash_protocol::{auth, messages as m, EXTENSION_TYPE_MINT_LINK};
        let keys = sv2_io::AuthorityKeypair::load_or_generate(
            &opts.data_dir.join("pool").join("authority.key"),
        )
        .expect("pool key");
        let (mut reader, sender) =
            sv2_io::connect(&stack.mint.link_addr.to_string(), &stack.mint.authority)
                .await
                .expect("mint link");
        let mut frame = reader.next().await.expect("challenge");
        let challenge: m::MintChallenge = m::decode(frame.payload()).expect("challenge");
        let sig = auth::sign_challenge(
            &keys.keypair().expect("keypair"),
            &challenge.nonce.to_array(),
            &stack.mint.authority.0,
        );
        let answer = m::MintAuth {
            pool_pubkey: keys.public().0.into(),
            signature: sig.into(),
        };
        let f = sv2_io::encode(answer, m::MSG_MINT_AUTH, EXTENSION_TYPE_MINT_LINK, false)
            .expect("encode");
        sender.send(f).await.expect("send auth");
        let frame = reader.next().await.expect("ready");
        assert_eq!(
            sv2_io::frame::kind(&frame),
            (EXTENSION_TYPE_MINT_LINK, m::MSG_MINT_READY)
        );
        Self { reader, sender }
    }

    /// Sends one sign request and returns the answer: `Ok(keyset that signed)` or the error code.
    pub async fn sign(
        &mut self,
        keyset: &[u8],
        blinded: [u8; 33],
        amount: u64,
    ) -> Result<Vec<u8>, String> {
        use ehash_protocol::{messages as m, EXTENSION_TYPE_MINT_LINK};
        let req = m::SignRequest {
            request_id: 7,
            amount,
            keyset_id: m::b0255(keyset).expect("keyset"),
            blinded: m::b0255(&blinded).expect("point"),
            replay: false,
        };
        let f = sv2_io::encode(req, m::MSG_SIGN_REQUEST, EXTENSION_TYPE_MINT_LINK, false)
            .expect("encode");
        self.sender.send(f).await.expect("send");
        loop {
            let mut frame = self.reader.next().await.expect("answer");
            match sv2_io::frame::kind(&frame) {
                (EXTENSION_TYPE_MINT_LINK, m::MSG_SIGN_RESPONSE) => {
                    let r: m::SignResponse = m::decode(frame.payload()).expect("response");
                    return Ok(r.keyset_id.into_bytes());
                }
                (EXTENSION_TYPE_MINT_LINK, m::MSG_SIGN_ERROR) => {
                    let e: m::SignError = m::decode(frame.payload()).expect("error");
                    return Err(m::read_str(&e.error_code).expect("utf8"));
                }
                // Epoch announcements and the like.
                _ => continue,
            }
        }
    }
}

/// What the mint answered a request of a batch: the signature `(C_, e, s)` or the error code.
pub type BatchAnswer = Result<([u8; 33], [u8; 32], [u8; 32]), String>;

impl MintLinkSession {
    /// Sends a frame as it is.
    pub async fn send_frame(&self, frame: sv2_io::Frame) {
        self.sender.send(frame).await.expect("send");
    }

    /// Sends `(request_id, B_, amount)` requests in one `SignRequests` frame and returns each
    /// answer by request id, and the kinds of frames they came in.
    pub async fn sign_batch(
        &mut self,
        keyset: &[u8],
        requests: &[(u64, [u8; 33], u64)],
    ) -> (std::collections::HashMap<u64, Vec<BatchAnswer>>, Vec<u8>) {
        use ehash_protocol::sign_batch::{self as batch, RequestRecord};
        use ehash_protocol::{messages as m, EXTENSION_TYPE_MINT_LINK};
        let records: Vec<_> = requests
            .iter()
            .map(|&(request_id, blinded, amount)| RequestRecord {
                request_id,
                amount,
                replay: false,
                blinded,
            })
            .collect();
        let msg = batch::SignRequests::pack(keyset, &records).expect("pack");
        let f = sv2_io::encode(
            msg,
            batch::MSG_SIGN_REQUESTS,
            EXTENSION_TYPE_MINT_LINK,
            false,
        )
        .expect("encode");
        self.sender.send(f).await.expect("send");
        let mut answers: std::collections::HashMap<u64, Vec<BatchAnswer>> = Default::default();
        let mut kinds = Vec::new();
        while answers.values().map(Vec::len).sum::<usize>() < requests.len() {
            let mut frame = self.reader.next().await.expect("answer");
            let (_, t) = sv2_io::frame::kind(&frame);
            match sv2_io::frame::kind(&frame) {
                (EXTENSION_TYPE_MINT_LINK, batch::MSG_SIGN_RESPONSES) => {
                    let r: batch::SignResponses = m::decode(frame.payload()).expect("responses");
                    for rec in r.unpack().expect("records") {
                        answers.entry(rec.request_id).or_default().push(Ok((
                            rec.signature,
                            rec.dleq_e,
                            rec.dleq_s,
                        )));
                    }
                }
                (EXTENSION_TYPE_MINT_LINK, m::MSG_SIGN_ERROR) => {
                    let e: m::SignError = m::decode(frame.payload()).expect("error");
                    answers
                        .entry(e.request_id)
                        .or_default()
                        .push(Err(m::read_str(&e.error_code).expect("utf8")));
                }
                (EXTENSION_TYPE_MINT_LINK, m::MSG_SIGN_RESPONSE) => {
                    panic!("a batch was answered with single responses")
                }
                // Epoch announcements and the like.
                _ => continue,
            }
            kinds.push(t);
        }
        (answers, kinds)
    }

    /// True once the mint closed the link (within 5 s).
    pub async fn closed_by_mint(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, self.reader.next()).await {
                Err(_) => return false,
                Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }
}

/// Waits until the stack's pool has found `n` blocks; panics after 180 s.
pub async fn wait_for_blocks(stack: &hashpool::DevnetStack, n: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let found = stack.pool.stats.snapshot().blocks_found;
        if found >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {found} of {n} blocks found"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
