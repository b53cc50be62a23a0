//! Epochs on the in-process devnet: rates of final epochs recomputed from the mint's own report,
//! redemption (and everything that must not work), buyback, the sat view, and a reorg.

use cdk::nuts::{BlindedMessage, Id, Proof, Proofs, PublicKey, SecretKey, State};
use cdk::Amount;
use ehash_api::{BuybackQuote, ExchangeRequest, ExchangeResponse, Liabilities};
use ehash_protocol::economics::{net_reward_sat, redeem_msat, redeem_sat, MSAT_PER_SAT};
use hashpool::{DevnetOptions, DevnetStack};
use hashpool_tests::{fast_devnet, init_logs};
use hashpool_translator::wallet::{split_amount, WalletError};
use hashpool_translator::EhashWallet;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn epoch_devnet(name: &str, maturity: u32) -> DevnetOptions {
    DevnetOptions {
        epoch_blocks: 3,
        accrual_epochs: 2,
        maturity,
        buyback_quote_secs: 2,
        ..fast_devnet(name)
    }
}

/// The translator's wallet, once it opened (after the pool announced the mint).
async fn wallet(stack: &DevnetStack) -> Arc<EhashWallet> {
    let mut rx = stack.translator.wallet.clone();
    let opened = tokio::time::timeout(Duration::from_secs(60), rx.wait_for(|w| w.is_some()))
        .await
        .expect("the translator's wallet opens")
        .expect("translator alive")
        .clone();
    opened.expect("wallet")
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The credit of epoch `e` recomputed from the report's blocks and issued amounts.
fn recomputed_credit(r: &Liabilities, e: u32) -> u64 {
    let issued: BTreeMap<u32, u64> = r.epochs.iter().map(|x| (x.epoch, x.issued)).collect();
    let w = r.accrual_epochs;
    let mut blocks = BTreeMap::new();
    for x in &r.epochs {
        for b in &x.blocks {
            blocks.insert(b.hash.clone(), b.clone());
        }
    }
    let mut credit = 0u64;
    for b in blocks.values().filter(|b| b.status == "matured") {
        let j = b.found_in_epoch;
        if !(e <= j && j < e + w) {
            continue;
        }
        let window: u128 = (j.saturating_sub(w - 1)..=j)
            .map(|k| u128::from(issued.get(&k).copied().unwrap_or(0)))
            .sum();
        let net_msat = u128::from(net_reward_sat(b.reward_sat, r.pool_fee_ppm)) * 1000;
        credit += (net_msat * u128::from(issued[&e]) / window) as u64;
    }
    credit
}

/// Valid curve points as outputs the mint must never get to sign.
fn dummy_outputs(keyset: Id, total: u64) -> Vec<BlindedMessage> {
    split_amount(total)
        .into_iter()
        .map(|a| {
            let point: PublicKey = SecretKey::generate().public_key();
            BlindedMessage::new(Amount::from(a), keyset, point)
        })
        .collect()
}

fn refused_code(e: WalletError) -> String {
    match e {
        WalletError::Refused { code, .. } => code,
        other => panic!("expected a refusal, got {other}"),
    }
}

async fn unspent_of(w: &EhashWallet, keyset: Id) -> Proofs {
    w.cdk()
        .get_unspent_proofs()
        .await
        .expect("proofs")
        .into_iter()
        .filter(|p| p.keyset_id == keyset)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_epochs_pay_what_their_matured_blocks_earned() {
    init_logs();
    let opts = epoch_devnet("epochs-final", 2);
    let mut stack = DevnetStack::start(&opts).await.expect("stack starts");
    let w = wallet(&stack).await;
    wait_until("a final epoch", Duration::from_secs(240), || {
        let w = w.clone();
        async move { w.liabilities().await.is_ok_and(|r| r.epochs_final >= 1) }
    })
    .await;
    stack.quiesce(Duration::from_secs(30)).await;
    stack.settle_blocks(Duration::from_secs(20)).await;
    let report = w.liabilities().await.expect("report");
    assert!(report.solvent, "{report:?}");
    let finals: Vec<_> = report
        .epochs
        .iter()
        .filter(|e| e.status == "final")
        .cloned()
        .collect();
    assert!(!finals.is_empty());
    for e in &finals {
        let credit = e.credit_msat.expect("final epochs have a credit");
        assert_eq!(
            credit,
            recomputed_credit(&report, e.epoch),
            "epoch {}",
            e.epoch
        );
        assert!(e.issued > 0, "the wallet mined in epoch {}", e.epoch);
        assert!(credit > 0, "epoch {} earned from matured blocks", e.epoch);
    }
    let total_credit: u64 = finals.iter().filter_map(|e| e.credit_msat).sum();
    assert!(u128::from(total_credit) <= u128::from(report.matured_net_sat) * 1000);

    // Redeeming proofs of an epoch that is not final changes nothing.
    let open = report
        .epochs
        .iter()
        .find(|e| e.status != "final" && e.issued > 0)
        .expect("an epoch that is not final");
    let open_keyset: Id = open.keyset_id.as_deref().unwrap().parse().unwrap();
    let sat_keyset = w.sat().active_keyset().await.expect("sat keyset").id;
    let open_proofs = unspent_of(&w, open_keyset).await;
    let request = ExchangeRequest {
        quote: None,
        inputs: open_proofs.clone(),
        outputs: dummy_outputs(sat_keyset, 1),
    };
    let err = w
        .api()
        .post::<_, ExchangeResponse>(ehash_api::REDEEM_PATH, &request)
        .await
        .expect_err("not final");
    assert_eq!(refused_code(err), ehash_api::codes::EPOCH_NOT_FINAL);

    // Proofs of a keyset the mint never had.
    let mut forged: Proof = open_proofs[0].clone();
    forged.keyset_id = "00ffffffffffffff".parse().unwrap();
    let request = ExchangeRequest {
        quote: None,
        inputs: vec![forged],
        outputs: dummy_outputs(sat_keyset, 1),
    };
    let err = w
        .api()
        .post::<_, ExchangeResponse>(ehash_api::REDEEM_PATH, &request)
        .await
        .expect_err("unknown keyset");
    assert_eq!(refused_code(err), ehash_api::codes::UNKNOWN_KEYSET);

    // An expired buyback quote: refused, and the proofs stay unspent.
    let amount = u64::from(open_proofs[0].amount);
    let quote: BuybackQuote = w.quote(open_keyset, amount).await.expect("quote");
    tokio::time::sleep(Duration::from_secs(opts.buyback_quote_secs + 2)).await;
    let request = ExchangeRequest {
        quote: Some(quote.quote.clone()),
        inputs: vec![open_proofs[0].clone()],
        outputs: dummy_outputs(sat_keyset, quote.sat),
    };
    let err = w
        .api()
        .post::<_, ExchangeResponse>(ehash_api::BUYBACK_PATH, &request)
        .await
        .expect_err("expired");
    assert_eq!(refused_code(err), ehash_api::codes::QUOTE_EXPIRED);
    let states = w
        .cdk()
        .check_proofs_spent(open_proofs.clone())
        .await
        .expect("checkstate");
    assert!(states.iter().all(|s| s.state == State::Unspent));
    assert_eq!(stack.mint.ledger.stats().await.unwrap().sat_issued, 0);

    // A sale at a fresh quote pays at once.
    let sold = w.sell(open_keyset, amount).await.expect("sell");
    assert!(sold.sat > 0 && sold.hash == amount, "{sold:?}");

    // Splitting a final epoch's proofs (send and take back an odd amount through epoch swaps)
    // does not change what they are worth.
    let fin = &finals[0];
    let fin_keyset: Id = fin.keyset_id.as_deref().unwrap().parse().unwrap();
    let before = w.holdings(false).await.expect("holdings");
    let held = before
        .epochs
        .iter()
        .find(|h| h.keyset_id == fin.keyset_id.clone().unwrap())
        .expect("the wallet holds the final epoch")
        .clone();
    assert_eq!(
        held.amount, fin.issued,
        "the only holder holds all of it: {held:?} {fin:?}"
    );
    let amounts = |p: Proofs| {
        let mut a: Vec<u64> = p.iter().map(|p| u64::from(p.amount)).collect();
        a.sort_unstable();
        a
    };
    let amounts_before = amounts(unspent_of(&w, fin_keyset).await);
    let odd = (held.amount / 3) | 1;
    let token = w.send(fin_keyset, odd, None).await.expect("send");
    assert!(token.starts_with("cashuB"));
    assert_eq!(w.receive(&token).await.expect("receive"), odd);
    let after = w.holdings(false).await.expect("holdings");
    let held_after = after
        .epochs
        .iter()
        .find(|h| h.keyset_id == held.keyset_id)
        .unwrap();
    assert_eq!(held_after.amount, held.amount);
    assert_ne!(
        amounts(unspent_of(&w, fin_keyset).await),
        amounts_before,
        "proofs were split"
    );
    assert_eq!(held_after.value_sat, held.value_sat);
    let credit = fin.credit_msat.unwrap();
    assert_eq!(
        held.value_sat,
        Some(redeem_sat(held.amount, credit, fin.issued))
    );

    // Redeem everything final; the mint issued exactly that many sats.
    let spent_before = unspent_of(&w, fin_keyset).await;
    let expected_msat: u64 = finals
        .iter()
        .map(|e| redeem_msat(e.issued, e.credit_msat.unwrap(), e.issued))
        .sum();
    let redeemed = w.redeem_final().await.expect("redeem");
    assert_eq!(redeemed.sat, expected_msat / MSAT_PER_SAT);
    assert!(redeemed.sat > 0);
    // One holder of all of it gets the whole credit, less under one sat per epoch.
    assert!(total_credit / MSAT_PER_SAT - redeemed.sat <= finals.len() as u64);
    let mint = stack.mint.ledger.stats().await.unwrap();
    assert_eq!(mint.sat_issued, redeemed.sat + sold.sat);
    assert!(redeemed.sat <= report.matured_net_sat);
    assert_eq!(w.sat_balance().await.unwrap(), redeemed.sat + sold.sat);

    // Redeeming the same proofs again: refused, nothing issued.
    let request = ExchangeRequest {
        quote: None,
        inputs: spent_before,
        outputs: dummy_outputs(sat_keyset, 1),
    };
    let err = w
        .api()
        .post::<_, ExchangeResponse>(ehash_api::REDEEM_PATH, &request)
        .await
        .expect_err("double redemption");
    assert_eq!(refused_code(err), ehash_api::codes::ALREADY_SPENT);
    assert_eq!(
        stack.mint.ledger.stats().await.unwrap().sat_issued,
        mint.sat_issued
    );

    // A stock CDK wallet (its own seed and database) at the sat mint's URL takes a token of
    // redeemed sats: the sats are ordinary Cashu ecash.
    // (A small amount: CDK 0.18.3's proof selection overflows in debug builds when asked for
    // billions of sats.)
    let small = Amount::from(1000u64.min(w.sat_balance().await.unwrap()));
    let prepared = w
        .sat()
        .prepare_send(small, cdk::wallet::SendOptions::default())
        .await
        .expect("prepare sat send");
    let sat_token = prepared.confirm(None).await.expect("sat token");
    let stranger_dir = opts.data_dir.join("stranger");
    std::fs::create_dir_all(&stranger_dir).unwrap();
    let stranger = cdk::wallet::WalletBuilder::new()
        .mint_url(w.api().sat_url().parse().unwrap())
        .unit(cdk::nuts::CurrencyUnit::Sat)
        .localstore(Arc::new(
            cdk_sqlite::WalletSqliteDatabase::new(&stranger_dir.join("w.sqlite"))
                .await
                .unwrap(),
        ))
        .seed(rand::random::<[u8; 32]>().repeat(2).try_into().unwrap())
        .without_rate_limiting()
        .build()
        .unwrap();
    let got = stranger
        .receive(
            &sat_token.to_string(),
            cdk::wallet::ReceiveOptions::default(),
        )
        .await
        .expect("a stock wallet receives redeemed sats");
    assert_eq!(got, small);

    // The mint signs nothing for a final epoch's keyset (retired) or an unknown one; a request
    // blinded for a closed epoch that is not final yet is signed with the active keyset.
    let mut link = hashpool_tests::MintLinkSession::open(&opts, &stack).await;
    let point = || SecretKey::generate().public_key().to_bytes();
    assert_eq!(
        link.sign(&fin_keyset.to_bytes(), point(), 1).await,
        Err(ehash_protocol::ERR_RETIRED_KEYSET.to_string())
    );
    assert_eq!(
        link.sign(&[0u8; 33], point(), 1).await,
        Err(ehash_protocol::ERR_UNKNOWN_KEYSET.to_string())
    );
    let active = stack.mint.ledger.active_keyset().unwrap();
    if let Some(closed) = report.epochs.iter().find(|e| e.status == "closed") {
        let closed: Id = closed.keyset_id.as_deref().unwrap().parse().unwrap();
        assert_eq!(
            link.sign(&closed.to_bytes(), point(), 1).await,
            Ok(active.to_bytes())
        );
    }

    // The seed alone, on a new machine, restores every unspent proof: ehash of every epoch
    // (signed by whichever keyset) and sats.
    let fresh = opts.data_dir.join("restored-wallet");
    std::fs::create_dir_all(&fresh).unwrap();
    std::fs::copy(
        opts.data_dir.join("translator").join("wallet.seed"),
        fresh.join("wallet.seed"),
    )
    .unwrap();
    let restored = EhashWallet::open(&fresh, &stack.mint.http_url)
        .await
        .expect("wallet from seed");
    let r = restored.restore().await.expect("restore");
    assert_eq!(r.unspent, w.balance().await.unwrap(), "{r:?}");
    let sats = restored.sat().restore().await.expect("sat restore");
    assert_eq!(u64::from(sats.unspent), w.sat_balance().await.unwrap());

    // The sat mint lists only sat keysets; the ehash mint lists both.
    let sat_view: serde_json::Value = w.api().get("/sat/v1/keysets").await.unwrap();
    let units: Vec<&str> = sat_view["keysets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["unit"].as_str())
        .collect();
    assert!(
        !units.is_empty() && units.iter().all(|u| *u == "sat"),
        "{units:?}"
    );
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&opts.data_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_takes_an_orphaned_block_out_of_every_epoch_that_expected_it() {
    init_logs();
    // Maturity far away: the orphaned block is still pending, its epochs not final.
    let opts = epoch_devnet("epochs-reorg", 50);
    let mut stack = DevnetStack::start(&opts).await.expect("stack starts");
    let w = wallet(&stack).await;
    wait_until("four blocks", Duration::from_secs(240), || {
        let n = stack.blocks_found();
        async move { n >= 4 }
    })
    .await;
    stack.quiesce(Duration::from_secs(30)).await;
    stack.settle_blocks(Duration::from_secs(20)).await;
    let before = w.liabilities().await.expect("report");
    let tip = stack.tp.state.chain.tip().expect("tip");
    let mut tip_hex = tip.hash;
    tip_hex.reverse();
    let tip_hex = hex::encode(tip_hex);
    let credits_before: BTreeMap<u32, (u64, u64)> = before
        .epochs
        .iter()
        .filter_map(|e| {
            let b = e.blocks.iter().find(|b| b.hash == tip_hex)?;
            assert_eq!(b.status, "pending");
            Some((e.epoch, (e.expected_credit_msat, b.credit_msat)))
        })
        .collect();
    assert!(!credits_before.is_empty(), "the pool found the tip block");

    let rpc =
        hashpool_pool::chain_view::BitcoinRpc::new(hashpool_pool::chain_view::ChainRpcConfig {
            url: format!("http://{}", stack.tp.rpc_addr.expect("devnet RPC")),
            cookie_file: Some(opts.data_dir.join("template-provider").join(".cookie")),
            user: None,
            password: None,
        });
    let reorg = rpc
        .call("hashpool_reorg", serde_json::json!([1]))
        .await
        .expect("reorg");
    assert_eq!(
        reorg["orphaned"][0].as_str(),
        Some(tip_hex.as_str()),
        "{reorg}"
    );
    assert_eq!(stack.tp.state.chain.tip().unwrap().height, tip.height + 1);

    wait_until(
        "the mint to see the orphan",
        Duration::from_secs(30),
        || {
            let w = w.clone();
            let tip_hex = tip_hex.clone();
            async move {
                w.liabilities().await.is_ok_and(|r| {
                    r.epochs
                        .iter()
                        .flat_map(|e| e.blocks.iter())
                        .any(|b| b.hash == tip_hex && b.status == "orphaned")
                })
            }
        },
    )
    .await;
    let after = w.liabilities().await.expect("report");
    for (epoch, (expected_before, block_credit)) in &credits_before {
        let e = after.epochs.iter().find(|e| e.epoch == *epoch).unwrap();
        assert_ne!(e.status, "final");
        assert!(*block_credit > 0);
        assert_eq!(
            e.expected_credit_msat,
            expected_before - block_credit,
            "epoch {epoch} lost exactly the orphan's share"
        );
        let b = e.blocks.iter().find(|b| b.hash == tip_hex).unwrap();
        assert_eq!((b.status.as_str(), b.credit_msat), ("orphaned", 0));
    }
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&opts.data_dir);
}
