//! `bigbro daemon`'s start: big_brother's flags are accepted and win over the file, the
//! configuration is loaded and validated, and anything that would make the daemon run
//! wrongly stops it before it starts (exit 1, the reason logged): an invalid or missing
//! configuration, or an API token file that cannot be read. (The running daemon itself is
//! tested in tests/api_*.rs and the daemon's own tests.)

use crate::config_common;

use std::process::Output;

use config_common::{bigbro, text};

fn stderr(out: &Output) -> String {
    text(&out.stderr)
}

/// Whether `log` has a line at `level` whose message is `message` (whatever the target).
fn logged(log: &str, level: &str, message: &str) -> bool {
    log.lines()
        .any(|l| l.contains(&format!(" {level} ")) && l.ends_with(&format!(": {message}")))
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
    // The flags win over the file's bigbro: section.
    assert!(
        log.contains(
            "configuration config/bigbro.yml is valid clusters=3 api=127.0.0.2:9000 data_dir=/srv/bb"
        ),
        "{log}"
    );
    // The example names an API token file that does not exist here: nothing starts.
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        logged(
            &log,
            "ERROR",
            "cannot read the token file /etc/bigbro/api-token: No such file or directory (os error 2)"
        ),
        "{log}"
    );
    // no debug lines without -v, no colour codes in a pipe
    assert!(!log.contains("DEBUG"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log}");
}

#[test]
fn short_flags_and_verbose() {
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
    assert_eq!(out.status.code(), Some(1), "{log}");
    // -p alone keeps the file's address
    assert!(log.contains("api=127.0.0.1:9001 data_dir=/srv/bb"), "{log}");
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
        logged(
            &log,
            "ERROR",
            &format!("{p}:3:13: clusters[0].fwmark: 0 is not a valid fwmark (IPVS fwmark services are numbered from 1)")
        ),
        "{log}"
    );
    assert!(
        logged(
            &log,
            "ERROR",
            &format!("{p} is not valid (3 errors); nothing was started")
        ),
        "{log}"
    );
    assert!(!log.contains("is valid"), "{log}");
}

#[test]
fn a_missing_configuration_is_named() {
    let out = bigbro(&["daemon", "-c", "/nonexistent/x.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(logged(
        &stderr(&out),
        "ERROR",
        "Could not find /nonexistent/x.yml. Specify correct location with -c file"
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
