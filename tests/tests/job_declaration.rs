//! Job declaration: a jd-client in front of the translator declares the devnet template
//! provider's templates (with their transactions) to the pool's jd-server and mines them on the
//! pool as custom jobs; the blocks found are its templates, the kernel accepts them, the pool
//! records subsidy plus fees, and the shares earn ehash exactly as on pool templates. Then the
//! refusals: a coinbase that underpays or pays someone else, transactions never provided, a
//! stale or forged token, a job on a stale tip, and a custom job for another connection's
//! channel — each refused with its SV2 code, each leaving the connection usable.

use binary_sv2::{B0255Owned, Seq064KOwned, Str0255Owned};
use hashpool::DevnetStack;
use hashpool_devnet::mempool::TX_FEE;
use hashpool_jd_client::declarer::job_factory;
use hashpool_tests::jd::{
    current_template, open_channel, pay, set_custom_job, Answer, Declarations, Link,
};
use hashpool_tests::{fast_devnet, init_logs, wait_for_blocks};
use std::time::{Duration, Instant};
use stratum_core::bitcoin::consensus::{deserialize, serialize};
use stratum_core::bitcoin::hashes::Hash;
use stratum_core::bitcoin::{Amount, ScriptBuf, Transaction, TxOut};
use stratum_core::channels_sv2::chain_tip::ChainTip;
use stratum_core::common_messages_sv2::Protocol;
use stratum_core::job_declaration_sv2::ProvideMissingTransactionsSuccessOwned;
use stratum_core::parsers_sv2::{JobDeclarationOwned, MiningOwned};

const TXS: u32 = 3;
const SUBSIDY: u64 = 5_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_templates_are_mined_and_every_share_earns_ehash() {
    init_logs();
    let mut opts = fast_devnet("jd");
    opts.mempool_txs = TXS;
    opts.job_declaration = true;
    let mut stack = DevnetStack::start(&opts).await.expect("stack starts");
    wait_for_blocks(&stack, 3).await;
    stack.quiesce(Duration::from_secs(30)).await;
    let r = stack.report().await.expect("report");
    println!("{r:?}");
    let jdc = stack.jd_client.as_ref().expect("jd-client runs");
    let jdc_stats = &jdc.stats;
    use std::sync::atomic::Ordering::Relaxed;
    assert!(r.declared_jobs > 0 && r.custom_jobs > 0, "{r:?}");
    assert_eq!(
        jdc_stats.fallbacks.load(Relaxed),
        0,
        "the jd-client never fell back to pool templates"
    );
    // The blocks the pool found are the jd-client's: it saw each one on its own jobs, and the
    // kernel accepted each with the template's transactions.
    assert!(jdc_stats.blocks_found.load(Relaxed) >= r.blocks_found);
    assert_eq!(r.block_txs, u64::from(TXS) * r.blocks_found, "{r:?}");
    assert_eq!(r.block_fees_sats, r.block_txs * TX_FEE);
    // Every share was on a custom job (the pool gives a work-selection connection no
    // templates) and earned ehash, signed by the mint and DLEQ-verified by the wallet.
    assert!(r.shares_accepted > 0);
    assert_eq!(r.ehash_accepted, r.ehash_issued);
    assert_eq!(r.wallet_balance, r.ehash_issued);
    assert_eq!(r.wallet_proofs_dleq_ok, r.wallet_proofs);
    // The pool recorded each block with subsidy plus fees, as the coinbase paid it.
    let blocks = stack.pool.blocks.all().expect("found blocks");
    assert_eq!(blocks.len() as u64, r.blocks_found);
    let with_fees = SUBSIDY + u64::from(TXS) * TX_FEE;
    assert!(
        blocks.iter().all(|b| b.reward == with_fees),
        "{:?}",
        blocks.iter().map(|b| b.reward).collect::<Vec<_>>()
    );
    // Both solution paths were taken: the template provider (which accepted the blocks) and
    // the jd-server (which found each already known).
    let jds = stack.pool.jd_server.as_ref().expect("jd-server runs");
    assert!(jds.stats.solutions_pushed.load(Relaxed) >= r.blocks_found);
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&opts.data_dir);
}

/// The jd-server disappears mid-run: the jd-client falls back to pool templates (its miners
/// reconnect and get the pool's jobs), blocks keep coming, and every share still earns ehash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_jd_server_the_jd_client_falls_back_to_pool_templates() {
    use std::sync::atomic::Ordering::Relaxed;
    init_logs();
    let mut opts = fast_devnet("jd-fallback");
    opts.mempool_txs = 1;
    opts.job_declaration = true;
    let mut stack = DevnetStack::start(&opts).await.expect("stack starts");
    wait_for_blocks(&stack, 1).await;
    let custom_before = stack.pool.stats.custom_jobs.load(Relaxed);
    assert!(custom_before > 0);
    let jds_addr = stack.pool.jd_server.as_ref().expect("jd-server").addr;
    stack
        .pool
        .jd_server
        .take()
        .expect("jd-server")
        .shutdown()
        .await;
    let found_at_loss = stack.pool.stats.snapshot().blocks_found;
    // Blocks keep coming on pool templates.
    wait_for_blocks(&stack, found_at_loss + 2).await;
    let jdc = stack.jd_client.as_ref().expect("jd-client");
    assert!(jdc.stats.fallbacks.load(Relaxed) >= 1);
    assert_eq!(
        *jdc.mode.borrow(),
        hashpool_jd_client::declarer::Mode::PoolTemplates
    );
    // At most the custom jobs already in flight when the jd-server went away.
    let custom_after = stack.pool.stats.custom_jobs.load(Relaxed);
    assert!(
        custom_after <= custom_before + 2,
        "{custom_before} -> {custom_after}"
    );
    // The jd-server comes back (same address, the pool's key): the jd-client declares again
    // and moves its miner back to its own templates.
    let revived = revive_jd_server(&opts, &stack, jds_addr).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while stack.pool.stats.custom_jobs.load(Relaxed) <= custom_after {
        assert!(
            Instant::now() < deadline,
            "the jd-client never declared again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        *jdc.mode.borrow(),
        hashpool_jd_client::declarer::Mode::Declaring
    );
    stack.quiesce(Duration::from_secs(30)).await;
    let r = stack.report().await.expect("report");
    assert_eq!(r.wallet_balance, r.ehash_issued);
    assert_eq!(r.ehash_accepted, r.ehash_issued);
    revived.shutdown().await;
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&opts.data_dir);
}

/// A jd-server like the pool's embedded one (the pool's key and payout, the devnet node), on
/// `addr`.
async fn revive_jd_server(
    opts: &hashpool::DevnetOptions,
    stack: &DevnetStack,
    addr: std::net::SocketAddr,
) -> hashpool_jd_server::JdServerHandle {
    let keys = sv2_io::AuthorityKeypair::load_or_generate(
        &opts.data_dir.join("pool").join("authority.key"),
    )
    .expect("pool key");
    let mut payout = vec![0x51, 0x20];
    payout.extend_from_slice(&keys.public().0);
    let rpc = stack.tp.rpc_addr.expect("devnet RPC");
    let node =
        hashpool_pool::chain_view::BitcoinRpc::new(hashpool_pool::chain_view::ChainRpcConfig {
            url: format!("http://{rpc}"),
            cookie_file: Some(
                opts.data_dir
                    .join("template-provider")
                    .join(hashpool_devnet::rpc::COOKIE_FILE),
            ),
            user: None,
            password: None,
        });
    let policy = hashpool_jd_server::config::DeclarationSettings::default()
        .policy(ScriptBuf::from_bytes(payout))
        .expect("policy");
    let declarator =
        hashpool_jd_server::JobDeclarator::new(policy, &keys, node).expect("declarator");
    hashpool_jd_server::serve(
        addr,
        keys,
        std::sync::Arc::new(declarator),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("jd-server back on its address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_their_sv2_codes_and_leave_connections_usable() {
    init_logs();
    let mut opts = fast_devnet("jd-refusals");
    opts.mempool_txs = 2;
    opts.job_declaration = true;
    opts.miners = 0;
    let stack = DevnetStack::start(&opts).await.expect("stack starts");
    let pool_addr = stack.pool.addr.to_string();
    let key = stack.pool.authority;
    let jds_addr = stack
        .pool
        .jd_server
        .as_ref()
        .expect("jd-server")
        .addr
        .to_string();
    let mut pool = Link::open(
        &pool_addr,
        &key,
        Protocol::MiningProtocol,
        sv2_io::setup::REQUIRES_WORK_SELECTION,
    )
    .await;
    let opened = open_channel(&mut pool, "jd-test").await;
    let (channel, full) = (opened.id, opened.full_extranonce);
    // Custom jobs are extended jobs: no standard channel on a work-selection connection.
    pool.send(MiningOwned::OpenStandardMiningChannel(
        stratum_core::mining_sv2::OpenStandardMiningChannelOwned {
            request_id: 7,
            user_identity: Str0255Owned::try_from("jd-test".to_string()).expect("str"),
            nominal_hash_rate: 1e6,
            max_target: [0xffu8; 32].into(),
        },
    ))
    .await;
    loop {
        if let MiningOwned::OpenMiningChannelError(e) = pool.mining().await {
            assert_eq!(e.request_id, 7);
            assert_eq!(
                e.error_code.as_utf8_or_hex(),
                "standard-channels-not-supported-for-custom-work"
            );
            break;
        }
    }
    let mut other = Link::open(&pool_addr, &key, Protocol::MiningProtocol, 0).await;
    let foreign_channel = open_channel(&mut other, "someone-else").await.id;
    let (template, tip, txs) = current_template(&stack).await;
    assert_eq!(txs.len(), 2);
    let value = template.coinbase_tx_value_remaining;
    assert_eq!(value, SUBSIDY + 2 * TX_FEE);
    let wtxids: Vec<[u8; 32]> = txs
        .iter()
        .map(|t| t.compute_wtxid().to_byte_array())
        .collect();
    let mut jd = Declarations {
        link: Link::open(&jds_addr, &key, Protocol::JobDeclarationProtocol, 0).await,
        next_id: 0,
    };

    // Transactions named but never provided: the jd-server asks for the unknown one, waits,
    // then refuses. Meanwhile the connection serves other declarations.
    let (t, payout) = jd.token().await;
    let mut with_unknown = wtxids.clone();
    with_unknown.push([0x42; 32]);
    let never = jd
        .declare(t, &template, pay(&payout, value), with_unknown, full)
        .await;
    let (id, asked) = jd.answer().await;
    assert_eq!(id, never);
    assert!(
        matches!(asked, Answer::MissingAsked(ref p) if p == &vec![2]),
        "{asked:?}"
    );

    // Underpaying: the subsidy, but the fees of its transactions kept out.
    let (t, _) = jd.token().await;
    let id = jd
        .declare(
            t.clone(),
            &template,
            pay(&payout, SUBSIDY),
            wtxids.clone(),
            full,
        )
        .await;
    let (got, answer) = jd.answer().await;
    assert_eq!(got, id);
    assert!(
        matches!(&answer, Answer::Refused(c, d) if c == "invalid-coinbase-tx" && d.contains("reward")),
        "{answer:?}"
    );
    // The token that declaration used is spent: a stale token.
    let id = jd
        .declare(t, &template, pay(&payout, value), wtxids.clone(), full)
        .await;
    let (got, answer) = jd.answer().await;
    assert_eq!(got, id);
    assert!(
        matches!(&answer, Answer::Refused(c, _) if c == "invalid-mining-job-token"),
        "{answer:?}"
    );
    // Paying someone else.
    let (t, _) = jd.token().await;
    let thief = ScriptBuf::from_bytes(vec![0x51]);
    let id = jd
        .declare(t, &template, pay(&thief, value), wtxids.clone(), full)
        .await;
    let (got, answer) = jd.answer().await;
    assert_eq!(got, id);
    assert!(
        matches!(&answer, Answer::Refused(c, d) if c == "invalid-coinbase-tx" && d.contains("not the pool")),
        "{answer:?}"
    );
    // A good declaration on the same connection.
    let (t, _) = jd.token().await;
    let id = jd
        .declare(t, &template, pay(&payout, value), wtxids.clone(), full)
        .await;
    let (got, answer) = jd.answer().await;
    assert_eq!(got, id);
    let Answer::Token(token) = answer else {
        panic!("a good declaration was refused: {answer:?}");
    };
    // A transaction the node's mempool lacks, provided when asked: declared (its fee, unknown
    // to the jd-server, is not required of the coinbase).
    let private = Transaction {
        version: stratum_core::bitcoin::transaction::Version::TWO,
        lock_time: stratum_core::bitcoin::absolute::LockTime::ZERO,
        input: vec![stratum_core::bitcoin::TxIn {
            previous_output: stratum_core::bitcoin::OutPoint::new(
                stratum_core::bitcoin::Txid::from_byte_array([0x11; 32]),
                0,
            ),
            ..Default::default()
        }],
        output: vec![TxOut {
            value: Amount::from_sat(1_000),
            script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
        }],
    };
    let mut with_private = wtxids.clone();
    with_private.push(private.compute_wtxid().to_byte_array());
    let (t, _) = jd.token().await;
    let id = jd
        .declare(t, &template, pay(&payout, value), with_private, full)
        .await;
    let (got, asked) = jd.answer().await;
    assert_eq!(got, id);
    assert!(
        matches!(asked, Answer::MissingAsked(ref p) if p == &vec![2]),
        "{asked:?}"
    );
    jd.link
        .send(JobDeclarationOwned::ProvideMissingTransactionsSuccess(
            ProvideMissingTransactionsSuccessOwned {
                request_id: id,
                transaction_list: Seq064KOwned::new(vec![binary_sv2::B016MOwned::try_from(
                    serialize(&private),
                )
                .expect("tx")])
                .expect("list"),
            },
        ))
        .await;
    let (got, answer) = jd.answer().await;
    assert_eq!(got, id);
    assert!(matches!(answer, Answer::Token(_)), "{answer:?}");
    // The never-provided transactions time out.
    let (got, answer) = jd.answer().await;
    assert_eq!(got, never);
    assert!(
        matches!(&answer, Answer::Refused(c, _) if c == "missing-txs"),
        "{answer:?}"
    );

    // The pool: custom jobs checked against the token.
    let outputs = pay(&payout, value);
    let chain_tip = ChainTip::new(tip.prev_hash.clone(), tip.n_bits, tip.header_timestamp);
    let job = |channel_id: u32, request_id: u32, token: B0255Owned, outputs: Vec<TxOut>| {
        job_factory()
            .new_custom_job(
                channel_id,
                request_id,
                token,
                chain_tip.clone(),
                template.clone(),
                outputs,
                full,
            )
            .expect("custom job")
    };
    assert_eq!(
        set_custom_job(
            &mut pool,
            job(foreign_channel, 10, token.clone(), outputs.clone())
        )
        .await,
        Err("invalid-channel-id".into()),
        "another connection's channel"
    );
    let mut forged = token.as_bytes().to_vec();
    forged[20] ^= 1;
    let forged = B0255Owned::try_from(forged).expect("token");
    assert_eq!(
        set_custom_job(&mut pool, job(channel, 11, forged, outputs.clone())).await,
        Err("invalid-mining-job-token".into()),
        "a forged token"
    );
    let mut undeclared = job(channel, 12, token.clone(), outputs.clone());
    undeclared.coinbase_tx_locktime += 1;
    assert_eq!(
        set_custom_job(&mut pool, undeclared).await,
        Err("invalid-mining-job-token".into()),
        "a job other than the declared one"
    );
    assert_eq!(
        set_custom_job(
            &mut pool,
            job(channel, 13, token.clone(), pay(&thief, value))
        )
        .await,
        Err("invalid-coinbase-tx-outputs".into()),
        "a coinbase that does not pay the pool"
    );
    let job_id = set_custom_job(&mut pool, job(channel, 14, token.clone(), outputs.clone()))
        .await
        .expect("the declared job is set after every refusal");
    assert!(job_id > 0);
    // The same token for the plain connection's channel: it did not negotiate work selection.
    assert_eq!(
        set_custom_job(
            &mut other,
            job(foreign_channel, 15, token.clone(), outputs.clone())
        )
        .await,
        Err("jd-not-supported".into())
    );

    // A new tip: the declared job is stale at the pool.
    let state = stack.tp.state.clone();
    tokio::task::spawn_blocking(move || state.force_reorg(1))
        .await
        .expect("task")
        .expect("reorg");
    let deadline = Instant::now() + Duration::from_secs(20);
    while stack.pool.work.snapshot().prev_hash.map(|p| p.prev_hash) == Some(tip.prev_hash.clone()) {
        assert!(Instant::now() < deadline, "the pool never saw the new tip");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        set_custom_job(&mut pool, job(channel, 16, token, outputs)).await,
        Err("stale-chain-tip".into())
    );
    // Declared again on the new tip, the channel takes it.
    let (template, tip, txs) = current_template(&stack).await;
    let value = template.coinbase_tx_value_remaining;
    let wtxids: Vec<[u8; 32]> = txs
        .iter()
        .map(|t| t.compute_wtxid().to_byte_array())
        .collect();
    let (t, _) = jd.token().await;
    let id = jd
        .declare(t, &template, pay(&payout, value), wtxids, full)
        .await;
    let (got, answer) = jd.answer().await;
    assert_eq!(got, id);
    let Answer::Token(token) = answer else {
        panic!("declaration on the new tip refused: {answer:?}");
    };
    let fresh = job_factory()
        .new_custom_job(
            channel,
            17,
            token,
            ChainTip::new(tip.prev_hash.clone(), tip.n_bits, tip.header_timestamp),
            template.clone(),
            pay(&payout, value),
            full,
        )
        .expect("custom job");
    let new_job = set_custom_job(&mut pool, fresh)
        .await
        .expect("set on the new tip");
    assert!(new_job > job_id);
    drop((pool, other, jd));
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&opts.data_dir);
}

/// The miner's own node takes a block found on a declared job before the share that found it
/// reaches the pool, so the pool already has the block as its tip. That share is the pool's
/// block all the same: accepted and recorded with the template's reward. Any other share on
/// the old parent is stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_the_miners_node_took_first_is_still_the_pools() {
    use stratum_core::bitcoin::block::Header;
    use stratum_core::bitcoin::hashes::sha256d;
    use stratum_core::bitcoin::Block;
    use stratum_core::mining_sv2::SubmitSharesExtendedOwned;
    init_logs();
    let mut opts = fast_devnet("jd-first");
    opts.mempool_txs = 2;
    opts.job_declaration = true;
    opts.miners = 0;
    let stack = DevnetStack::start(&opts).await.expect("stack starts");
    let key = stack.pool.authority;
    let jds_addr = stack.pool.jd_server.as_ref().expect("jd-server").addr;
    let mut pool = Link::open(
        &stack.pool.addr.to_string(),
        &key,
        Protocol::MiningProtocol,
        sv2_io::setup::REQUIRES_WORK_SELECTION,
    )
    .await;
    let channel = open_channel(&mut pool, "jd-first").await;
    let full = channel.full_extranonce;
    let (template, tip, txs) = current_template(&stack).await;
    let value = template.coinbase_tx_value_remaining;
    let mut jd = Declarations {
        link: Link::open(
            &jds_addr.to_string(),
            &key,
            Protocol::JobDeclarationProtocol,
            0,
        )
        .await,
        next_id: 0,
    };
    let (t, payout) = jd.token().await;
    let wtxids = txs
        .iter()
        .map(|t| t.compute_wtxid().to_byte_array())
        .collect();
    jd.declare(t, &template, pay(&payout, value), wtxids, full)
        .await;
    let Answer::Token(token) = jd.answer().await.1 else {
        panic!("declaration refused");
    };
    let chain_tip = ChainTip::new(tip.prev_hash.clone(), tip.n_bits, tip.header_timestamp);
    let custom = job_factory()
        .new_custom_job(
            channel.id,
            1,
            token,
            chain_tip,
            template.clone(),
            pay(&payout, value),
            full,
        )
        .expect("custom job");
    let job_id = set_custom_job(&mut pool, custom).await.expect("job set");

    // Mine the declared job: one block, and one share that is not a block.
    let (prefix, suffix) = job_factory()
        .new_coinbase_tx_prefix_and_suffix(template.clone(), pay(&payout, value), full)
        .expect("coinbase");
    let rolled = vec![7u8; full - channel.extranonce_prefix.len()];
    let extranonce = [channel.extranonce_prefix.clone(), rolled.clone()].concat();
    let path: Vec<[u8; 32]> = template
        .merkle_path
        .clone()
        .into_inner()
        .iter()
        .map(|h| h.to_array())
        .collect();
    let root = stratum_core::channels_sv2::merkle_root::merkle_root_from_path(
        &prefix,
        &suffix,
        &extranonce,
        &path,
    )
    .expect("merkle root");
    let block_target = tip.target.to_array();
    let mut header = [0u8; 80];
    header[0..4].copy_from_slice(&template.version.to_le_bytes());
    header[4..36].copy_from_slice(&tip.prev_hash.to_array());
    header[36..68].copy_from_slice(&root);
    header[68..72].copy_from_slice(&tip.header_timestamp.to_le_bytes());
    header[72..76].copy_from_slice(&tip.n_bits.to_le_bytes());
    let (mut block_nonce, mut share_nonce) = (None, None);
    let mut nonce = 0u32;
    while block_nonce.is_none() || share_nonce.is_none() {
        header[76..80].copy_from_slice(&nonce.to_le_bytes());
        let hash = sha256d::Hash::hash(&header).to_byte_array();
        let share = ehash_protocol::difficulty::meets_target(&hash, &channel.target);
        let block = ehash_protocol::difficulty::meets_target(&hash, &block_target);
        match (share, block) {
            (true, true) if block_nonce.is_none() => block_nonce = Some((nonce, hash)),
            (true, false) if share_nonce.is_none() => share_nonce = Some(nonce),
            _ => {}
        }
        nonce = nonce.checked_add(1).expect("a block within 2^32 nonces");
    }
    let (block_nonce, block_hash) = block_nonce.expect("block");
    header[76..80].copy_from_slice(&block_nonce.to_le_bytes());
    let coinbase: Transaction =
        deserialize(&[prefix.clone(), extranonce.clone(), suffix.clone()].concat())
            .expect("coinbase tx");
    let block = Block {
        header: deserialize::<Header>(&header).expect("header"),
        txdata: std::iter::once(coinbase).chain(txs).collect(),
    };
    assert_eq!(block.block_hash().to_byte_array(), block_hash);

    // The miner's node takes the block first; the pool follows the template provider to it.
    let state = stack.tp.state.clone();
    let raw = serialize(&block);
    let outcome = tokio::task::spawn_blocking(move || state.submit_raw_block(&raw))
        .await
        .expect("task")
        .expect("submit");
    assert_eq!(outcome, hashpool_devnet::chain::BlockOutcome::Accepted);
    let deadline = Instant::now() + Duration::from_secs(20);
    while stack.pool.work.tip().map(|t| t.0) != Some(block_hash) {
        assert!(Instant::now() < deadline, "the pool never saw the new tip");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Then the shares reach the pool.
    let share = |sequence_number: u32, nonce: u32| {
        MiningOwned::SubmitSharesExtended(SubmitSharesExtendedOwned {
            channel_id: channel.id,
            sequence_number,
            job_id,
            nonce,
            ntime: tip.header_timestamp,
            version: template.version,
            extranonce: rolled.clone().try_into().expect("extranonce"),
        })
    };
    pool.send(share(1, share_nonce.expect("share"))).await;
    pool.send(share(2, block_nonce)).await;
    let mut answers = Vec::new();
    while answers.len() < 2 {
        match pool.mining().await {
            MiningOwned::SubmitSharesError(e) => {
                answers.push((e.sequence_number, Err(e.error_code.as_utf8_or_hex())))
            }
            MiningOwned::SubmitSharesSuccess(ok) => answers.push((ok.last_sequence_number, Ok(()))),
            _ => {}
        }
    }
    assert_eq!(
        answers,
        vec![(1, Err("stale-share".to_string())), (2, Ok(()))]
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let recorded = loop {
        let blocks = stack.pool.blocks.all().expect("found blocks");
        if !blocks.is_empty() {
            break blocks;
        }
        assert!(
            Instant::now() < deadline,
            "the pool never recorded its block"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].hash, block_hash);
    assert_eq!(recorded[0].reward, value);
    assert_eq!(stack.pool.stats.snapshot().blocks_found, 1);
    drop((pool, jd));
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&opts.data_dir);
}
