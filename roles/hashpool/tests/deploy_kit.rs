//! The Debian deploy kit, checked with Debian's own tools by `deploy/test-deploy.sh`:
//! shellcheck on every script, `systemd-analyze verify` and `security` on the units, `nginx -t`
//! and a smoke test of the site, the devnet example configs started with this build's binary,
//! and a backup/restore drill of a live mint.

use std::process::Command;

#[test]
fn deploy_kit_passes_its_checks() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new("bash")
        .arg(format!("{root}/deploy/test-deploy.sh"))
        .env("HASHPOOL_BIN", env!("CARGO_BIN_EXE_hashpool"))
        .output()
        .expect("bash runs deploy/test-deploy.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for section in [
        "shellcheck",
        "systemd-analyze verify",
        "nginx -t",
        "backup-mint.sh",
    ] {
        assert!(
            text.contains(&format!("=== {section}")),
            "no {section} section:\n{text}"
        );
    }
}
