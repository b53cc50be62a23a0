//! Blind signature with DLEQ proof: CDK's stock path (which derives the mint's public key from
//! the secret for the proof) against ours with the public key cached, and a whole batch of 256
//! signatures on one and on two threads through the mint's own signer.

use cdk::nuts::{BlindSignature, Id, SecretKey};
use cdk::Amount;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn signing(c: &mut Criterion) {
    let id: Id = "00ffffffffffffff".parse().expect("keyset id");
    let a = SecretKey::generate();
    let a_pub = a.public_key();
    let mut g = c.benchmark_group("blind_signature_with_dleq");
    g.throughput(Throughput::Elements(1));
    g.bench_function("cdk_stock", |bench| {
        bench.iter_batched(
            || SecretKey::generate().public_key(),
            |b| {
                let c = cdk::dhke::sign_message(&a, &b).expect("sign");
                BlindSignature::new(Amount::from(8u64), c, id, &b, &a).expect("dleq")
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("hashpool_cached_key", |bench| {
        bench.iter_batched(
            || SecretKey::generate().public_key(),
            |b| hashpool_mint::dleq::sign(Amount::from(8u64), id, &b, &a, &a_pub).expect("sign"),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("signature_batch_256");
    g.throughput(Throughput::Elements(256));
    for threads in [1usize, 2] {
        g.bench_function(format!("{threads}_threads"), |bench| {
            bench.iter_batched(
                || {
                    (0..256)
                        .map(|_| SecretKey::generate().public_key())
                        .collect::<Vec<_>>()
                },
                |points| {
                    let chunk = points.len().div_ceil(threads);
                    std::thread::scope(|s| {
                        let handles: Vec<_> = points
                            .chunks(chunk)
                            .map(|part| {
                                s.spawn(|| {
                                    part.iter()
                                        .map(|b| {
                                            hashpool_mint::dleq::sign(
                                                Amount::from(8u64),
                                                id,
                                                b,
                                                &a,
                                                &a_pub,
                                            )
                                            .expect("sign")
                                        })
                                        .collect::<Vec<_>>()
                                        .len()
                                })
                            })
                            .collect();
                        handles
                            .into_iter()
                            .map(|h| h.join().expect("signer thread"))
                            .sum::<usize>()
                    })
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, signing);
criterion_main!(benches);
