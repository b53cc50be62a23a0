//! The pool's per-share work: validating a share on an extended channel with `channels_sv2`
//! (coinbase, merkle root, header hash, target, duplicate check, accounting), and the share
//! journal's group commit (one fsync for a batch of claims).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hashpool_devnet::chain::Tip;
use hashpool_devnet::template::TemplateRecord;
use hashpool_pool::channel::{ChannelKind, PoolChannel, Share};
use hashpool_pool::journal::{JournalEntry, ShareJournal};
use std::time::Duration;
use stratum_core::bitcoin::{ScriptBuf, Target};
use stratum_core::channels_sv2::extranonce_manager::ExtranonceAllocator;
use stratum_core::channels_sv2::server::extended::ExtendedChannel;
use stratum_core::channels_sv2::server::share_accounting::ShareValidationResult;
use stratum_core::mining_sv2::SubmitSharesExtendedOwned;
use stratum_core::parsers_sv2::MiningOwned;

/// A mainnet-like nBits, so shares are shares and not blocks.
const NBITS: u32 = 0x1703_4e2c;

/// An extended channel with a job and a tip, whose target every hash meets.
fn channel() -> (PoolChannel, u32, u32, usize) {
    let mut alloc = ExtranonceAllocator::new(vec![], 16, 65_536).expect("allocator");
    let rollable = alloc.rollable_extranonce_size();
    let prefix = alloc.allocate_extended(8).expect("prefix");
    let ch = ExtendedChannel::new_for_pool(
        1,
        "bench".into(),
        prefix,
        Target::from_le_bytes([0xff; 32]),
        1e12,
        true,
        u16::from(rollable),
        1,
        1_000_000.0,
        "hashpool".into(),
        Some(32),
    )
    .expect("channel");
    let mut pc = PoolChannel {
        kind: ChannelKind::Extended(Box::new(ch)),
        k: 0,
        vardiff: ehash_protocol::vardiff::PowerOfTwoVardiff::new(Duration::from_secs(60), 20.0),
        work_seq: 0,
        counters: Default::default(),
        custom_jobs: Default::default(),
    };
    // The easiest target there is (rust-bitcoin's Target::MAX is difficulty 1).
    pc.set_target(0, Target::from_le_bytes([0xff; 32]))
        .expect("target");
    let tip = Tip {
        height: 900_000,
        hash: [7; 32],
        median_time_past: 1_700_000_000,
    };
    let record = TemplateRecord::on_tip(2, &tip, 1_700_000_100);
    let payout = ScriptBuf::from_bytes(vec![0x51, 0x20].into_iter().chain([3; 32]).collect());
    pc.on_template(&record.new_template(true).expect("template"), &payout)
        .expect("job");
    let mut prev = record.set_new_prev_hash([0xff; 32]);
    prev.n_bits = NBITS;
    let job_id = match pc.on_prev_hash(&prev).expect("prev hash") {
        Some(MiningOwned::SetNewPrevHash(p)) => p.job_id,
        other => panic!("no job after the prev hash: {other:?}"),
    };
    (pc, job_id, record.min_time, usize::from(rollable))
}

fn share_validation(c: &mut Criterion) {
    let (mut pc, job_id, ntime, rollable) = channel();
    let share = |nonce: u32| SubmitSharesExtendedOwned {
        channel_id: 1,
        sequence_number: nonce,
        job_id,
        nonce,
        ntime,
        version: 0x2000_0000,
        extranonce: vec![0u8; rollable].try_into().expect("extranonce"),
    };
    // The measured path is the full one: the share is valid and counted, not refused early.
    let first = pc.validate(Share::Extended(share(u32::MAX)));
    assert!(
        matches!(first, Ok(ShareValidationResult::Valid(_))),
        "{first:?}"
    );
    let second = pc.validate(Share::Extended(share(u32::MAX - 1)));
    assert!(
        matches!(second, Ok(ShareValidationResult::Valid(_))),
        "{second:?}"
    );
    let mut nonce = 0u32;
    let mut g = c.benchmark_group("share_validation");
    g.throughput(Throughput::Elements(1));
    g.bench_function("extended_channel", |bench| {
        bench.iter(|| {
            nonce = nonce.wrapping_add(1);
            pc.validate(Share::Extended(share(nonce))).is_ok()
        })
    });
    g.finish();
}

fn journal_batch(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("hashpool-bench-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let (journal, _) = ShareJournal::open(&dir.join("shares.sqlite")).expect("journal");
    let mut counter = 0u64;
    let mut g = c.benchmark_group("share_journal");
    g.sample_size(20);
    for batch in [1usize, 100] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("durable_batch_of_{batch}"), |bench| {
            bench.iter_batched(
                || {
                    (0..batch)
                        .map(|_| {
                            counter += 1;
                            let mut blinded = [2u8; 33];
                            blinded[1..9].copy_from_slice(&counter.to_le_bytes());
                            JournalEntry {
                                blinded,
                                keyset_id: vec![0, 1, 2, 3, 4, 5, 6, 7],
                                amount: 1,
                            }
                        })
                        .collect::<Vec<_>>()
                },
                |entries| {
                    let (tx, rx) = std::sync::mpsc::channel();
                    for e in entries {
                        let tx = tx.clone();
                        journal.record(e, move |outcome| {
                            let _ = tx.send(outcome);
                        });
                    }
                    drop(tx);
                    rx.iter().count()
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
    drop(journal);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, share_validation, journal_batch);
criterion_main!(benches);
