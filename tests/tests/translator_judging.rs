//! The translator judges SV1 shares itself: every miner mines at its own power-of-two
//! difficulty (vardiff, never above the channel's), shares below it, duplicates and unknown jobs
//! are refused locally with the SV1 error codes, and only shares meeting the channel target
//! reach the pool and earn ehash.

use ehash_protocol::difficulty::{meets_target, work_log2};
use hashpool::DevnetStack;
use hashpool_miner::{target_from_difficulty, Sv1Job};
use hashpool_tests::{fast_devnet, init_logs};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use stratum_core::sv1_api::json_rpc::Message;
use stratum_core::sv1_api::methods::{Method, Server2Client};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// A scripted SV1 miner over a real socket.
struct Sv1Client {
    wr: OwnedWriteHalf,
    lines: Lines<BufReader<OwnedReadHalf>>,
    next_id: u64,
    extranonce: Option<(Vec<u8>, usize)>,
    difficulty: Option<f64>,
    job: Option<Sv1Job>,
    responses: HashMap<u64, Value>,
    en2_counter: u64,
}

impl Sv1Client {
    async fn connect(stack: &DevnetStack) -> Self {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let stream = TcpStream::connect(stack.translator.sv1_addr)
                .await
                .expect("connect to the translator");
            let (rd, wr) = stream.into_split();
            let mut c = Self {
                wr,
                lines: BufReader::new(rd).lines(),
                next_id: 0,
                extranonce: None,
                difficulty: None,
                job: None,
                responses: HashMap::new(),
                en2_counter: 0,
            };
            let id = c.request("mining.subscribe", json!(["test-miner"])).await;
            let r = c.response(id).await;
            if let Some(result) = r.get("result").filter(|v| !v.is_null()) {
                let en1 = hex::decode(result[1].as_str().expect("extranonce1")).expect("hex");
                let en2 = result[2].as_u64().expect("extranonce2 size") as usize;
                c.extranonce = Some((en1, en2));
                let id = c.request("mining.authorize", json!(["w1", "x"])).await;
                assert_eq!(c.response(id).await["result"], json!(true));
                return c;
            }
            // The translator has no upstream channel yet.
            assert!(
                Instant::now() < deadline,
                "translator never opened a channel"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn request(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let line = json!({"id": self.next_id, "method": method, "params": params}).to_string();
        self.wr
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
        self.next_id
    }

    /// Reads one line, recording notifications and responses.
    async fn read_one(&mut self) {
        let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("the translator went silent")
            .expect("read")
            .expect("connection closed");
        let v: Value = serde_json::from_str(&line).expect("json line");
        if v.get("method").is_none() {
            let id = v["id"].as_u64().expect("response id");
            self.responses.insert(id, v);
            return;
        }
        let msg: Message = serde_json::from_str(&line).expect("SV1 message");
        match Method::try_from(msg) {
            Ok(Method::Server2Client(Server2Client::SetDifficulty(d))) => {
                self.difficulty = Some(d.value)
            }
            Ok(Method::Server2Client(Server2Client::Notify(n))) => {
                let (en1, en2) = self.extranonce.clone().expect("subscribed");
                self.job = Some(Sv1Job::from_notify(&n, &en1, en2).expect("job"));
            }
            _ => {}
        }
    }

    async fn response(&mut self, id: u64) -> Value {
        loop {
            if let Some(v) = self.responses.remove(&id) {
                return v;
            }
            self.read_one().await;
        }
    }

    /// Waits for work (a difficulty and a job).
    async fn work(&mut self) -> (Sv1Job, [u8; 32]) {
        while self.job.is_none() || self.difficulty.is_none() {
            self.read_one().await;
        }
        let d = self.difficulty.expect("difficulty");
        (self.job.clone().expect("job"), target_from_difficulty(d))
    }

    /// Hashes until `accept(hash)`; returns (extranonce2, nonce, hash).
    fn mine(
        &mut self,
        job: &Sv1Job,
        accept: impl Fn(&[u8; 32]) -> bool,
    ) -> (Vec<u8>, u32, [u8; 32]) {
        loop {
            self.en2_counter += 1;
            let en2: Vec<u8> = self.en2_counter.to_le_bytes()[..job.extranonce2_size.min(8)]
                .iter()
                .copied()
                .chain(std::iter::repeat(0))
                .take(job.extranonce2_size)
                .collect();
            for nonce in 0..1_000_000u32 {
                let h = job.hash(&en2, nonce);
                if accept(&h) {
                    return (en2, nonce, h);
                }
            }
        }
    }

    async fn submit(&mut self, job_id: &str, en2: &[u8], ntime: u32, nonce: u32) -> Value {
        let params = json!([
            "w1",
            job_id,
            hex::encode(en2),
            format!("{ntime:08x}"),
            format!("{nonce:08x}")
        ]);
        let id = self.request("mining.submit", params).await;
        self.response(id).await
    }
}

fn error_code(v: &Value) -> Option<i64> {
    let e = v.get("error")?;
    e.get("code").or_else(|| e.get(0)).and_then(Value::as_i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translator_judges_shares_at_each_miners_difficulty() {
    init_logs();
    let mut opts = fast_devnet("sv1-judging");
    opts.miners = 0;
    let stack = DevnetStack::start(&opts).await.expect("stack starts");
    let unit = u32::from(opts.share_unit_log2);
    let mut c = Sv1Client::connect(&stack).await;
    let (job, target) = c.work().await;
    // With nothing mined yet the miner starts at the channel's difficulty: one unit share.
    assert_eq!(work_log2(&target), unit);

    // Unknown job.
    let r = c
        .submit("4294967295", &vec![0; job.extranonce2_size], job.ntime, 0)
        .await;
    assert_eq!(error_code(&r), Some(21), "{r}");

    // Below the miner's difficulty.
    let (en2, nonce, _) = c.mine(&job, |h| !meets_target(h, &target));
    let r = c.submit(&job.job_id, &en2, job.ntime, nonce).await;
    assert_eq!(error_code(&r), Some(23), "{r}");
    assert_eq!(stack.translator.stats.snapshot().shares_submitted, 0);

    // A channel share goes to the pool and is accepted there.
    let (en2, nonce, _) = c.mine(&job, |h| meets_target(h, &target));
    let r = c.submit(&job.job_id, &en2, job.ntime, nonce).await;
    assert_eq!(r["result"], json!(true), "{r}");
    let t = stack.translator.stats.snapshot();
    assert_eq!((t.shares_submitted, t.shares_accepted), (1, 1));
    assert_eq!(stack.pool.stats.snapshot().shares_accepted, 1);

    // The same share again is a duplicate, refused without bothering the pool.
    let r = c.submit(&job.job_id, &en2, job.ntime, nonce).await;
    assert_eq!(error_code(&r), Some(22), "{r}");
    assert_eq!(stack.translator.stats.snapshot().shares_submitted, 1);

    // Too few shares: vardiff makes this miner's difficulty easier than the channel's.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (job, easy) = loop {
        let (job, t) = c.work().await;
        if work_log2(&t) < unit {
            break (job, t);
        }
        assert!(
            Instant::now() < deadline,
            "miner difficulty never went down"
        );
        c.read_one().await;
    };
    // A share at the miner's difficulty that misses the channel target stays local.
    let channel_target = ehash_protocol::difficulty::ladder_target_le(unit);
    let (en2, nonce, _) = c.mine(&job, |h| {
        meets_target(h, &easy) && !meets_target(h, &channel_target)
    });
    let r = c.submit(&job.job_id, &en2, job.ntime, nonce).await;
    assert_eq!(r["result"], json!(true), "{r}");
    let t = stack.translator.stats.snapshot();
    assert_eq!(
        t.shares_submitted, 1,
        "a miner-only share never reaches the pool"
    );
    assert_eq!(t.miner_shares, 2);
    assert_eq!(t.shares_rejected_locally, 3);
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&opts.data_dir);
}
