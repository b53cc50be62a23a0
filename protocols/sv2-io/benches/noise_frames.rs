//! Noise transport (ChaCha20-Poly1305 after an NX handshake, SRI's `noise_sv2`): encrypting and
//! decrypting one share-sized frame and one job-sized frame, as every link does per message.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stratum_core::noise_sv2::{Initiator, NoiseEngine, Responder};

/// Both ends of a completed handshake.
fn codecs() -> (NoiseEngine, NoiseEngine) {
    let keys = sv2_io::AuthorityKeypair::generate();
    let mut responder = Responder::from_authority_kp(
        &keys.public().0,
        &keys.secret_bytes(),
        std::time::Duration::from_secs(3600),
    )
    .expect("responder");
    let mut initiator = Initiator::from_raw_k(keys.public().0).expect("initiator");
    let first = initiator.step_0().expect("step 0");
    let (second, responder_codec) = responder.step_1(first).expect("step 1");
    let initiator_codec = initiator.step_2(second).expect("step 2");
    (initiator_codec, responder_codec)
}

fn frames(c: &mut Criterion) {
    let (mut sender, mut receiver) = codecs();
    let mut g = c.benchmark_group("noise_frame");
    g.throughput(Throughput::Elements(1));
    // SubmitSharesExtended with an ehash TLV is ~120 bytes; NewExtendedMiningJob ~300.
    for size in [120usize, 300] {
        let plain = vec![0x5a_u8; size];
        g.bench_function(format!("encrypt_decrypt_{size}_bytes"), |bench| {
            bench.iter(|| {
                let mut buf = plain.clone();
                sender.encrypt(&mut buf).expect("encrypt");
                receiver.decrypt(&mut buf).expect("decrypt");
                buf.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
