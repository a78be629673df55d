//! The nf_tables ruleset `bigbro check --nft` prints is real nft syntax: loaded into a
//! fresh network namespace with the real `nft` against the host kernel's nf_tables, it is
//! accepted and listed back byte for byte.
//!
//! Needs root, `unshare` and `nft` (tests/setup.sh installs nftables); without them the
//! test says why and passes without checking (it cannot run in an unprivileged sandbox).

use std::process::Command;

fn can_run() -> Result<(), String> {
    if !nix_is_root() {
        return Err("not root".into());
    }
    let probe = Command::new("unshare")
        .args(["-n", "nft", "list", "ruleset"])
        .output();
    match probe {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "unshare -n nft: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!("unshare/nft: {e}")),
    }
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn nft_accepts_and_lists_the_plan_unchanged() {
    if let Err(why) = can_run() {
        eprintln!("skipping the nf_tables check: {why}");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_bigbro"))
        .args(["check", "--nft", "-c", "config/bigbro.yml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let ruleset = String::from_utf8(out.stdout).unwrap();
    assert!(ruleset.contains("table ip6 bigbro"), "{ruleset}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.nft");
    std::fs::write(&file, &ruleset).unwrap();
    let listed = Command::new("unshare")
        .args(["-n", "sh", "-c", "nft -f \"$1\" && nft list ruleset", "sh"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "nft refused the plan: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert_eq!(String::from_utf8(listed.stdout).unwrap(), ruleset);
}
