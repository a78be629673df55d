//! systemd/bigbro.service: `systemd-analyze verify` accepts it as the package installs it
//! (in a scratch root holding the systemd units of this machine, the unit at
//! /usr/lib/systemd/system and the freshly built binary at /usr/bin/bigbro, the path
//! ExecStart names), with no warning at all; the same harness rejects a unit with a typo
//! or without its binary, so a pass means something; `systemd-analyze security` rates it
//! "OK" or better; and its command lines are ones the binary accepts.
//!
//! The unit running under a real systemd (as PID 1 of a container in the test bed's guest,
//! with real IPVS) is tests/ops/systemd_kernel.rs.

use crate::ops_common;

use std::path::Path;
use std::process::Command;

use ops_common::systemd::{scratch_root, verify};

const UNIT: &str = include_str!("../../systemd/bigbro.service");

fn ready(test: &str) -> bool {
    ops_common::have(
        test,
        &["systemd-analyze", "/usr/lib/systemd/system/sysinit.target"],
    )
}

#[test]
fn the_unit_verifies_without_a_warning() {
    if !ready("systemd verify") {
        return;
    }
    let root = scratch_root(UNIT, false);
    let (rc, stderr) = verify(root.path());
    assert_eq!(rc, 0, "systemd-analyze verify failed:\n{stderr}");
    assert_eq!(stderr, "", "systemd-analyze verify warned");
}

#[test]
fn the_verify_harness_catches_mistakes() {
    if !ready("systemd verify harness") {
        return;
    }
    // A misspelt key is only a warning to systemd: the test above fails on any.
    let typo = UNIT.replace("KillMode=mixed", "KilMode=mixed");
    assert_ne!(typo, UNIT);
    let root = scratch_root(&typo, false);
    let (rc, stderr) = verify(root.path());
    assert_eq!(rc, 0);
    assert!(stderr.contains("Unknown key 'KilMode'"), "{stderr}");
    // Without the binary ExecStart names, verify fails.
    let root = scratch_root(UNIT, true);
    let (rc, stderr) = verify(root.path());
    assert_ne!(rc, 0);
    assert!(stderr.contains("/usr/bin/bigbro"), "{stderr}");
}

#[test]
fn the_unit_is_rated_ok_by_systemd_analyze_security() {
    if !ready("systemd security") {
        return;
    }
    let root = scratch_root(UNIT, false);
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--root={}", root.path().display()))
        .arg("bigbro.service")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let level: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for bigbro.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    // 0 is the best, 10 the worst; up to 2.0 is what systemd calls "OK". What remains is
    // what a load balancer needs: the host's network, CAP_NET_ADMIN, netlink and INET.
    assert!(level <= 2.0, "exposure {level}:\n{text}");
}

/// The unit's settings that matter to bigbro, as the issue and the daemon's code ask.
#[test]
fn the_unit_says_what_the_daemon_needs() {
    let settings: Vec<(&str, &str)> = UNIT
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    let get = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect()
    };
    for (key, want) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        (
            "ExecStart",
            "/usr/bin/bigbro daemon -c /etc/bigbro/config.yml",
        ),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        ("KillMode", "mixed"),
        ("CapabilityBoundingSet", "CAP_NET_ADMIN"),
        ("AmbientCapabilities", "CAP_NET_ADMIN"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ConfigurationDirectory", "bigbro"),
        ("StateDirectory", "bigbro"),
        ("User", "bigbro"),
    ] {
        assert_eq!(get(key), [want], "{key}");
    }
    let families: Vec<&str> = get("RestrictAddressFamilies")[0].split(' ').collect();
    assert_eq!(families, ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"]);
    // The daemon pings at half the interval; a whole number of seconds systemd accepts.
    let watchdog = get("WatchdogSec")[0];
    assert!(watchdog.ends_with('s') && watchdog.trim_end_matches('s').parse::<u32>().is_ok());
    // IPVS and nf_tables must be the host's.
    for forbidden in ["PrivateNetwork", "PrivateUsers", "DynamicUser"] {
        assert!(get(forbidden).is_empty(), "{forbidden} must not be set");
    }
    // The package ships the user the unit runs as.
    let sysusers = include_str!("../../systemd/bigbro.sysusers");
    assert!(
        sysusers.lines().any(|l| l.starts_with("u bigbro ")),
        "{sysusers}"
    );
}

/// ExecStart's command line is one the binary parses: with a configuration that does not
/// exist it fails on the configuration (exit 1, naming the file), not on its arguments
/// (clap's exit 2).
#[test]
fn exec_start_is_a_command_line_bigbro_accepts() {
    let exec = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let mut words = exec.split(' ');
    assert_eq!(words.next(), Some("/usr/bin/bigbro"));
    let mut args: Vec<String> = words.map(str::to_string).collect();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("config.yml").display().to_string();
    let c = args.iter().position(|a| a == "-c").unwrap();
    args[c + 1] = missing.clone();
    let out = Command::new(env!("CARGO_BIN_EXE_bigbro"))
        .args(&args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&missing), "{stderr}");
}

/// systemd-sysusers reads the package's sysusers file and would create user and group
/// bigbro (a dry run in a scratch root: nothing is written).
#[test]
fn the_sysusers_file_creates_the_user() {
    if !ops_common::have("sysusers", &["systemd-sysusers"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/bigbro.sysusers");
    let out = Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg("--dry-run")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Creating group 'bigbro'"), "{stderr}");
    assert!(stderr.contains("Creating user 'bigbro'"), "{stderr}");
    assert!(!root.path().join("etc/passwd").exists());
}

/// The operator guide explains every setting of the unit ("The systemd unit").
#[test]
fn the_guide_explains_every_setting() {
    let guide = include_str!("../../docs/operator-guide.md");
    let section = guide
        .split("## The systemd unit")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("the guide has a section on the unit");
    for line in UNIT
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
    {
        if let Some((key, _)) = line.split_once('=') {
            assert!(
                section.contains(&format!("`{key}")),
                "the guide does not explain {key}="
            );
        }
    }
}
