//! `bigbro daemon` as far as this stage builds it: big_brother's flags are accepted, the
//! configuration is loaded and validated, the command-line overrides applied, the result
//! logged (debug with -v), and an invalid configuration starts nothing (exit 1).

mod config_common;

use std::process::Output;

use config_common::{bigbro, text};

fn stderr(out: &Output) -> String {
    text(&out.stderr)
}

#[test]
fn loads_validates_and_reports_with_big_brothers_flags() {
    let out = bigbro(&[
        "daemon",
        "--config",
        "config/bigbro.yml",
        "--data-dir",
        "/srv/bb",
        "--port",
        "9000",
        "--binding",
        "127.0.0.2",
    ]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains(
            "INFO bigbro: configuration config/bigbro.yml is valid clusters=3 spelling=BigBrother"
        ),
        "{log}"
    );
    // the flags win over the file's bigbro: section
    assert!(
        log.contains("settings api=127.0.0.2:9000 data_dir=/srv/bb state_dir=/var/lib/bigbro"),
        "{log}"
    );
    assert!(log.contains("WARN bigbro: the daemon proper"), "{log}");
    // no debug lines without -v, no colour codes in a pipe
    assert!(!log.contains("DEBUG"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log}");
}

#[test]
fn short_flags_and_verbose_debug() {
    let out = bigbro(&[
        "daemon",
        "-c",
        "config/bigbro.yml",
        "-D",
        "/srv/bb",
        "-p",
        "9001",
        "-v",
    ]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("DEBUG bigbro: cluster cluster=webapp fwmark=7 scheduler=wlc nodes=2 interpol=1 vips=2 relay=Some(10007)"),
        "{log}"
    );
    // -p alone keeps the file's address
    assert!(
        log.contains("settings api=127.0.0.1:9001 data_dir=/srv/bb"),
        "{log}"
    );
}

#[test]
fn an_invalid_configuration_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    std::fs::write(&path, "clusters:\n  - cluster_name: web\n    fwmark: 0\n").unwrap();
    let p = path.display().to_string();
    let out = bigbro(&["daemon", "-c", &p]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "ERROR bigbro: {p}:3:13: clusters[0].fwmark: 0 is not a valid fwmark (IPVS fwmark services are numbered from 1)"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "ERROR bigbro: {p} is not valid (3 errors); nothing was started"
        )),
        "{log}"
    );
    assert!(!log.contains("is valid"), "{log}");
}

#[test]
fn a_missing_configuration_is_named() {
    let out = bigbro(&["daemon", "-c", "/nonexistent/x.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(
        "ERROR bigbro: Could not find /nonexistent/x.yml. Specify correct location with -c file"
    ));
}

#[test]
fn bad_flag_values_are_usage_errors() {
    for args in [["daemon", "-p", "70000"], ["daemon", "-b", "localhost"]] {
        let out = bigbro(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains("invalid value"), "{args:?}");
    }
}
