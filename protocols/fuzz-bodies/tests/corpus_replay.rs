//! Replays the fuzz corpus (and any saved crash reproducers) through the fuzz bodies, so every
//! input the fuzzer ever kept is checked by the normal test suite.

use std::path::PathBuf;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Runs `body` on every file under fuzz/corpus/<target> and fuzz/regressions/<target>.
fn replay(target: &str, body: fn(&[u8])) -> usize {
    let mut n = 0;
    for kind in ["corpus", "regressions"] {
        let dir = fuzz_dir().join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let data = std::fs::read(entry.path()).expect("corpus file");
            body(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn sv2_frame_corpus() {
    let n = replay("sv2_frame", hashpool_fuzz_bodies::sv2_frame);
    assert!(n > 0, "no sv2_frame corpus under {}", fuzz_dir().display());
}

#[test]
fn ehash_message_corpus() {
    let n = replay("ehash_message", hashpool_fuzz_bodies::ehash_message);
    assert!(n > 0, "no ehash_message corpus");
}

#[test]
fn sv1_line_corpus() {
    let n = replay("sv1_line", hashpool_fuzz_bodies::sv1_line);
    assert!(n > 0, "no sv1_line corpus");
}
