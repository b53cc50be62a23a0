//! The mint link's batched sign requests, as a pool would send them, over real Noise: every
//! request of a batch gets its own answer (signatures in `SignResponses`, refusals in
//! `SignError`), each signature carries a DLEQ proof that verifies against the keyset, and a
//! malformed batch closes that link only.

use cdk::nuts::{BlindSignature, BlindSignatureDleq, PublicKey, SecretKey};
use cdk::Amount;
use ehash_protocol::sign_batch::{self as batch, SignRequests};
use ehash_protocol::{messages as m, EXTENSION_TYPE_MINT_LINK};
use hashpool::DevnetStack;
use hashpool_tests::{fast_devnet, init_logs, MintLinkSession};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_requests_are_answered_one_by_one_and_a_bad_batch_closes_its_link_only() {
    init_logs();
    let opts = fast_devnet("mint-link-batch");
    let stack = DevnetStack::start(&opts).await.expect("stack");
    let keyset = stack.mint.ledger.active_keyset().expect("keyset");
    let keys = stack
        .mint
        .ledger
        .mint()
        .keyset_pubkeys(&keyset)
        .expect("keys")
        .keysets
        .remove(0)
        .keys;
    let point = || SecretKey::generate().public_key().to_bytes();
    let (a, b, c) = (point(), point(), point());
    // A B_ the mint already signed through a single request.
    let mut link = MintLinkSession::open(&opts, &stack).await;
    let earlier = point();
    assert_eq!(
        link.sign(&keyset.to_bytes(), earlier, 4).await,
        Ok(keyset.to_bytes().to_vec())
    );

    let requests = [
        (1, a, 1),
        (2, b, 2),
        (3, c, 8),
        (4, [5u8; 33], 1), // not a curve point
        (5, point(), 3),   // not a denomination
        (6, earlier, 4),   // signed before (and not a replay)
    ];
    let (answers, kinds) = link.sign_batch(&keyset.to_bytes(), &requests).await;
    assert_eq!(answers.len(), requests.len(), "{answers:?}");
    assert_eq!(answers[&4], vec![Err(m::ERR_INVALID_POINT.to_string())]);
    assert_eq!(answers[&5], vec![Err(m::ERR_INVALID_AMOUNT.to_string())]);
    assert_eq!(answers[&6], vec![Err(m::ERR_ALREADY_SIGNED.to_string())]);
    for &(id, blinded, amount) in &requests[..3] {
        let [Ok((c, e, s))] = answers[&id].as_slice() else {
            panic!("request {id}: {:?}", answers[&id]);
        };
        let signature = BlindSignature {
            amount: Amount::from(amount),
            keyset_id: keyset,
            c: PublicKey::from_slice(c).expect("C_"),
            dleq: Some(BlindSignatureDleq {
                e: SecretKey::from_slice(e).expect("e"),
                s: SecretKey::from_slice(s).expect("s"),
            }),
        };
        let key = keys.amount_key(Amount::from(amount)).expect("key");
        signature
            .verify_dleq(key, PublicKey::from_slice(&blinded).expect("B_"))
            .expect("DLEQ of a batched signature");
    }
    // The three signatures came in fewer frames than requests.
    let responses = kinds
        .iter()
        .filter(|&&k| k == batch::MSG_SIGN_RESPONSES)
        .count();
    assert!((1..=3).contains(&responses), "{kinds:?}");

    // A batch whose records are cut short closes that link; another one still signs.
    let bad = SignRequests {
        keyset_id: m::b0255(&keyset.to_bytes()).expect("keyset"),
        records: vec![0u8; batch::REQUEST_RECORD_SIZE + 1]
            .try_into()
            .expect("records"),
    };
    let f = sv2_io::encode(
        bad,
        batch::MSG_SIGN_REQUESTS,
        EXTENSION_TYPE_MINT_LINK,
        false,
    )
    .expect("encode");
    link.send_frame(f).await;
    assert!(link.closed_by_mint().await, "the mint kept a bad link open");
    let mut other = MintLinkSession::open(&opts, &stack).await;
    let (answers, _) = other
        .sign_batch(&keyset.to_bytes(), &[(9, point(), 1)])
        .await;
    assert!(matches!(answers[&9].as_slice(), [Ok(_)]), "{answers:?}");
    // The pool's own link stays up throughout.
    assert!(stack.pool.mint.is_up());
    stack.shutdown().await;
}
