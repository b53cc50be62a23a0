//! Hostile peers are cut off alone: over-long and never-finished SV1 lines, slow-loris miners,
//! SV2 frames that fail to decrypt, unknown message types, oversized frames, too many channels
//! on one connection and share floods. Throughout, the honest miner keeps earning.

use hashpool::DevnetStack;
use hashpool_tests::{fast_devnet, init_logs, translator_config};
use std::time::{Duration, Instant};
use stratum_core::common_messages_sv2::Protocol;
use stratum_core::mining_sv2::{OpenExtendedMiningChannelOwned, SubmitSharesExtendedOwned};
use stratum_core::parsers_sv2::{Mining, MiningOwned};
use sv2_io::{FrameReader, FrameSender};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Waits until the pool accepted `more` shares from the honest miner.
async fn honest_miner_keeps_earning(stack: &DevnetStack, more: u64) {
    let before = stack.pool.stats.snapshot().shares_accepted;
    let deadline = Instant::now() + Duration::from_secs(60);
    while stack.pool.stats.snapshot().shares_accepted < before + more {
        assert!(
            Instant::now() < deadline,
            "the honest miner stopped earning"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads until the peer closes; returns how long that took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("connection still open after {limit:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sv1_miners_are_dropped() {
    init_logs();
    let opts = fast_devnet("hostile-sv1");
    let stack = DevnetStack::start(&opts).await.expect("stack starts");
    // A second translator on the same pool with a short line timeout.
    let mut cfg = translator_config(&opts, &stack);
    cfg.data_dir = opts.data_dir.join("translator-strict");
    cfg.user_identity = "strict".into();
    cfg.nominal_hashrate = 1.0;
    cfg.miner_shares_per_minute = 20.0;
    cfg.miner_vardiff_interval_secs = 30.0;
    cfg.sv1_line_timeout_secs = 1.0;
    let strict = hashpool_translator::start(cfg).await.expect("translator");

    // A line over the 16 KiB cap, never terminated: dropped at once.
    let mut s = TcpStream::connect(strict.sv1_addr).await.expect("connect");
    let long = vec![b'a'; hashpool_translator::sv1::MAX_LINE + 1];
    let _ = s.write_all(&long).await;
    closed_within(&mut s, Duration::from_secs(5)).await;

    // A slow loris trickles a line that never ends: dropped after the line timeout.
    let mut s = TcpStream::connect(strict.sv1_addr).await.expect("connect");
    let trickle = tokio::spawn({
        let mut w = TcpStream::connect(strict.sv1_addr).await.expect("connect");
        async move {
            for _ in 0..40 {
                if w.write_all(b" ").await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    });
    let _ = s.write_all(b"{\"id\":1,").await;
    let took = closed_within(&mut s, Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(800),
        "dropped too early: {took:?}"
    );
    assert!(
        trickle.await.expect("trickle"),
        "the trickling client was never cut off"
    );

    // Garbage JSON closes that connection only.
    let mut s = TcpStream::connect(strict.sv1_addr).await.expect("connect");
    let _ = s.write_all(b"not json at all\n").await;
    closed_within(&mut s, Duration::from_secs(5)).await;

    honest_miner_keeps_earning(&stack, 3).await;
    strict.shutdown().await;
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&opts.data_dir);
}

async fn connect(stack: &DevnetStack) -> (FrameReader, FrameSender) {
    let pool = stack.pool.addr.to_string();
    sv2_io::connect_with_setup(&pool, &stack.pool.authority, Protocol::MiningProtocol, 0)
        .await
        .expect("connect and set up")
}

async fn expect_closed(reader: &mut FrameReader) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline.into(), reader.next()).await {
            Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
            Err(_) => panic!("the pool kept a hostile connection open"),
        }
    }
}

fn raw_frame(msg_type: u8, payload: &[u8]) -> sv2_io::Frame {
    let len = payload.len() as u32;
    let mut bytes = vec![0, 0, msg_type];
    bytes.extend_from_slice(&len.to_le_bytes()[..3]);
    bytes.extend_from_slice(payload);
    sv2_io::frame::from_bytes(bytes).expect("frame")
}

fn open_channel(request_id: u32) -> sv2_io::Frame {
    let open = OpenExtendedMiningChannelOwned {
        request_id,
        user_identity: "hostile".to_string().try_into().expect("user"),
        nominal_hash_rate: 1.0,
        max_target: [0xff; 32].into(),
        min_extranonce_size: 4,
    };
    sv2_io::frame::encode_standard(MiningOwned::OpenExtendedMiningChannel(open)).expect("open")
}

/// Next mining message, skipping everything else.
async fn next_mining(reader: &mut FrameReader) -> MiningOwned {
    loop {
        let mut f = tokio::time::timeout(Duration::from_secs(30), reader.next())
            .await
            .expect("frame in time")
            .expect("link up");
        let h = f.header();
        if h.ext_type_without_channel_msg() != 0 {
            continue;
        }
        if let Ok(m) = Mining::try_from((h.msg_type(), f.payload())) {
            return m.into_owned();
        }
    }
}

/// A TCP proxy that forwards both ways and, once told, injects bytes towards the pool.
async fn injecting_proxy(
    pool: std::net::SocketAddr,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (inject_tx, inject_rx) = tokio::sync::oneshot::channel::<Vec<u8>>();
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let Ok(upstream) = TcpStream::connect(pool).await else {
            return;
        };
        let (mut cr, mut cw) = client.into_split();
        let (mut ur, mut uw) = upstream.into_split();
        let down = tokio::spawn(async move { tokio::io::copy(&mut ur, &mut cw).await });
        let mut inject_rx = inject_rx;
        let mut buf = vec![0u8; 65536];
        loop {
            tokio::select! {
                bytes = &mut inject_rx => {
                    if let Ok(b) = bytes { let _ = uw.write_all(&b).await; }
                    // keep forwarding after the injection
                    let _ = tokio::io::copy(&mut cr, &mut uw).await;
                    break;
                }
                n = cr.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => if uw.write_all(&buf[..n]).await.is_err() { break },
                },
            }
        }
        let _ = down.await;
    });
    (addr, inject_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sv2_peers_are_cut_off_alone() {
    init_logs();
    let mut opts = fast_devnet("hostile-sv2");
    opts.block_interval_secs = 3600.0;
    opts.initial_block_hashes = 1e15;
    let stack = DevnetStack::start(&opts).await.expect("stack starts");

    // Bytes that do not decrypt, after a good handshake: the pool drops the connection, and
    // frames the client sends afterwards go nowhere.
    let (proxy, inject) = injecting_proxy(stack.pool.addr).await;
    let (mut reader, sender) = sv2_io::connect(&proxy.to_string(), &stack.pool.authority)
        .await
        .expect("handshake through the proxy");
    inject.send(vec![0x5a; 200]).expect("inject");
    let _ = sender
        .send(sv2_io::frame::setup_connection(Protocol::MiningProtocol, 0).expect("setup"))
        .await;
    expect_closed(&mut reader).await;

    // An unknown message type closes that connection.
    let (mut reader, sender) = connect(&stack).await;
    sender
        .send(raw_frame(0x7f, &[1, 2, 3]))
        .await
        .expect("send");
    expect_closed(&mut reader).await;

    // An oversized frame (1 MiB of garbage as OpenExtendedMiningChannel) closes it too.
    let (mut reader, sender) = connect(&stack).await;
    sender
        .send(raw_frame(0x13, &vec![0xee; 1 << 20]))
        .await
        .expect("send");
    expect_closed(&mut reader).await;

    // At most 64 channels per connection; the 65th is refused with a clear code.
    let (mut reader, sender) = connect(&stack).await;
    for i in 0..65u32 {
        sender.send(open_channel(i)).await.expect("send");
    }
    let (mut opened, mut refused, mut channel_id) = (0, Vec::new(), 0);
    while opened + refused.len() < 65 {
        match next_mining(&mut reader).await {
            MiningOwned::OpenExtendedMiningChannelSuccess(s) => {
                opened += 1;
                channel_id = s.channel_id;
            }
            MiningOwned::OpenMiningChannelError(e) => {
                refused.push(String::from_utf8_lossy(e.error_code.as_bytes()).to_string())
            }
            _ => {}
        }
    }
    assert_eq!(opened, 64);
    assert_eq!(refused, vec!["too-many-channels".to_string()]);

    // A flood of bad shares on one of them: every one is answered with an error, and the pool
    // keeps serving the honest miner.
    const FLOOD: u32 = 5_000;
    let start = Instant::now();
    let flood_sender = sender.clone();
    let flood = tokio::spawn(async move {
        for seq in 0..FLOOD {
            let share = SubmitSharesExtendedOwned {
                channel_id,
                sequence_number: seq,
                job_id: 0xdead_beef,
                nonce: seq,
                ntime: 0,
                version: 0x2000_0000,
                extranonce: vec![0u8; 4].try_into().expect("extranonce"),
            };
            let f = sv2_io::frame::encode_standard(MiningOwned::SubmitSharesExtended(share))
                .expect("frame");
            if flood_sender.send(f).await.is_err() {
                return;
            }
        }
    });
    let mut errors = 0u32;
    while errors < FLOOD {
        match next_mining(&mut reader).await {
            MiningOwned::SubmitSharesError(_) => errors += 1,
            MiningOwned::SubmitSharesSuccess(s) => panic!("flood share accepted: {s:?}"),
            _ => {}
        }
    }
    flood.await.expect("flood");
    println!("{FLOOD} bad shares answered in {:?}", start.elapsed());
    honest_miner_keeps_earning(&stack, 3).await;
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&opts.data_dir);
}
