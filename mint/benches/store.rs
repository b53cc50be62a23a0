//! Storing a batch of 256 signatures durably, as the mint's committer does: through CDK's own
//! SQLite store (`add_blind_signatures` in one transaction, plus the issue receipt), and, as the
//! floor SQLite itself sets, the same rows with one prepared statement on a bare connection
//! with the same pragmas and indexes. The difference is the cost per signature of CDK's
//! statement layer, which runs two statements per signature.

use cdk::cdk_database::MintDatabase;
use cdk::nuts::{BlindSignature, Id, PublicKey, SecretKey};
use cdk::Amount;
use cdk_sqlite::MintSqliteDatabase;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::path::PathBuf;

const BATCH: usize = 256;

/// A fresh batch of blinded messages with their signatures.
fn batch(id: Id, a: &SecretKey) -> (Vec<PublicKey>, Vec<BlindSignature>) {
    let a_pub = a.public_key();
    (0..BATCH)
        .map(|_| {
            let b = SecretKey::generate().public_key();
            let sig =
                hashpool_mint::dleq::sign(Amount::from(1u64), id, &b, a, &a_pub).expect("sign");
            (b, sig)
        })
        .unzip()
}

/// A directory of its own, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("hashpool-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn store(c: &mut Criterion) {
    let id: Id = "00ffffffffffffff".parse().expect("keyset id");
    let a = SecretKey::generate();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("store_signatures_256");
    g.throughput(Throughput::Elements(BATCH as u64));

    let cdk_dir = Scratch::new("cdk");
    let db = rt
        .block_on(MintSqliteDatabase::new(&cdk_dir.0.join("mint.sqlite")))
        .expect("cdk sqlite");
    let mut receipt = 0u64;
    g.bench_function("cdk_sqlite_with_receipt", |bench| {
        bench.iter_batched(
            || batch(id, &a),
            |(messages, signatures)| {
                receipt += BATCH as u64;
                rt.block_on(async {
                    let mut tx = db.begin_transaction().await.expect("begin");
                    tx.add_blind_signatures(&messages, &signatures, None)
                        .await
                        .expect("add");
                    let value = format!("0|{id}:{receipt}");
                    tx.kv_write("ehash", "issue", "bench-lane", value.as_bytes())
                        .await
                        .expect("receipt");
                    tx.commit().await.expect("commit");
                })
            },
            BatchSize::SmallInput,
        )
    });

    let bare_dir = Scratch::new("bare");
    let mut conn = rusqlite::Connection::open(bare_dir.0.join("bare.sqlite")).expect("open");
    conn.execute_batch(
        "pragma journal_mode = WAL;
         pragma synchronous = FULL;
         CREATE TABLE blind_signature (
             blinded_message BLOB PRIMARY KEY, amount INTEGER NOT NULL, keyset_id TEXT NOT NULL,
             c BLOB NULL, dleq_e TEXT, dleq_s TEXT, quote_id TEXT,
             created_time INTEGER NOT NULL DEFAULT 0, signed_time INTEGER,
             operation_kind TEXT, operation_id TEXT, order_index INTEGER DEFAULT 0);
         CREATE INDEX keyset_id_index ON blind_signature(keyset_id);
         CREATE INDEX blind_signature_quote_id_index ON blind_signature(quote_id);
         CREATE INDEX idx_blind_sig_operation_id ON blind_signature(operation_kind, operation_id);",
    )
    .expect("schema");
    g.bench_function("bare_rusqlite_same_rows", |bench| {
        bench.iter_batched(
            || batch(id, &a),
            |(messages, signatures)| {
                let tx = conn.transaction().expect("begin");
                {
                    let mut insert = tx
                        .prepare_cached(
                            "INSERT INTO blind_signature (blinded_message, amount, keyset_id, c, \
                             dleq_e, dleq_s, created_time, signed_time, order_index) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
                        )
                        .expect("prepare");
                    let keyset = id.to_string();
                    for (i, (b, s)) in messages.iter().zip(&signatures).enumerate() {
                        let dleq = s.dleq.as_ref().expect("dleq");
                        insert
                            .execute(rusqlite::params![
                                &b.to_bytes()[..],
                                u64::from(s.amount) as i64,
                                keyset,
                                &s.c.to_bytes()[..],
                                dleq.e.to_secret_hex(),
                                dleq.s.to_secret_hex(),
                                0i64,
                                i as i64,
                            ])
                            .expect("insert");
                    }
                }
                tx.commit().expect("commit");
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
