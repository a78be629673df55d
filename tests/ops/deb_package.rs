//! The Debian package: `cargo deb` builds it from Cargo.toml's [package.metadata.deb],
//! and its file list (`dpkg-deb -c`), control fields, conffiles and maintainer scripts
//! are what the operator guide promises. Then the package's own files, unpacked, are
//! checked working together: systemd-analyze verify on the unit with the packaged
//! binary, the packaged agent's meta-data, the `bigbro-ipvsadm` link, the man pages.
//!
//! To stay fast, the package is built with `cargo deb --no-build` around this test run's
//! (debug) binary, placed where cargo-deb expects a release build (a scratch
//! CARGO_TARGET_DIR), with the man pages that binary generates: the same metadata,
//! assets and scripts as a release package, with an unoptimised binary inside.
//! cargo-deb missing: a loud skip, or a failure under `CI` (tests/setup.sh installs it).

use crate::ops_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ops_common::systemd::{base_root, link_or_copy, verify};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn cargo_deb_present() -> bool {
    let ok = Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    let msg = "deb_package: SKIPPED: cargo-deb is not installed (cargo install cargo-deb --locked; tests/setup.sh does)";
    if std::env::var_os("CI").is_some() {
        panic!("{msg}; CI is set, so this is a failure");
    }
    eprintln!("*** {msg} ***");
    false
}

/// Builds the package into a scratch directory and returns (scratch, path of the .deb,
/// the man pages `bigbro man` wrote: one per visible subcommand, plus bigbro.1).
fn build_package() -> (tempfile::TempDir, PathBuf, Vec<String>) {
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let release = scratch.path().join("release");
    std::fs::create_dir_all(&release).unwrap();
    let bin = release.join("bigbro");
    link_or_copy(Path::new(env!("CARGO_BIN_EXE_bigbro")), &bin);
    let out = Command::new(&bin)
        .arg("man")
        .arg(release.join("man"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bigbro man: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pages: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            Path::new(l)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let deb = scratch.path().join("bigbro.deb");
    let out = Command::new("cargo")
        .args(["deb", "--no-build", "--output"])
        .arg(&deb)
        .current_dir(MANIFEST_DIR)
        .env("CARGO_TARGET_DIR", scratch.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo deb failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (scratch, deb, pages)
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dpkg-deb {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `dpkg-deb -c`: every entry that is not a directory, path -> (mode string, link target).
fn file_list(deb: &Path) -> BTreeMap<String, (String, Option<String>)> {
    dpkg_deb(&["-c"], deb)
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let mode = fields[0].to_string();
            let rest = fields[5..].join(" ");
            let (path, target) = match rest.split_once(" -> ") {
                Some((p, t)) => (p.to_string(), Some(t.to_string())),
                None => (rest, None),
            };
            (path.trim_start_matches('.').to_string(), (mode, target))
        })
        .collect()
}

#[test]
fn the_package_holds_what_the_guide_promises() {
    if !cargo_deb_present() {
        return;
    }
    let (scratch, deb, pages) = build_package();
    for page in [
        "bigbro.1",
        "bigbro-check.1",
        "bigbro-daemon.1",
        "bigbro-ipvsadm.1",
    ] {
        assert!(pages.iter().any(|p| p == page), "{page} not in {pages:?}");
    }
    assert!(!pages
        .iter()
        .any(|p| p == "bigbro-man.1" || p == "bigbro-help.1"));
    let files = file_list(&deb);
    let paths: Vec<&str> = files.keys().map(String::as_str).collect();
    let mut want: Vec<String> = [
        "/etc/bigbro/config.yml",
        "/usr/bin/bigbro",
        "/usr/bin/bigbro-ipvsadm",
        "/usr/lib/ocf/resource.d/bigbro/bigbro",
        "/usr/lib/systemd/system/bigbro.service",
        "/usr/lib/sysusers.d/bigbro.conf",
        "/usr/share/doc/bigbro/README.md",
        "/usr/share/doc/bigbro/api.md",
        "/usr/share/doc/bigbro/copyright",
        "/usr/share/doc/bigbro/examples/big_brother.yml",
        "/usr/share/doc/bigbro/examples/bigbro.yml",
        "/usr/share/doc/bigbro/examples/cluster_map.yml",
        "/usr/share/doc/bigbro/operator-guide.md",
    ]
    .iter()
    .map(|p| p.to_string())
    .chain(pages.iter().map(|p| format!("/usr/share/man/man1/{p}")))
    .collect();
    want.sort();
    assert_eq!(paths, want);
    let mode = |p: &str| files[p].0.as_str();
    assert_eq!(mode("/usr/bin/bigbro"), "-rwxr-xr-x");
    assert_eq!(mode("/usr/lib/ocf/resource.d/bigbro/bigbro"), "-rwxr-xr-x");
    assert_eq!(mode("/etc/bigbro/config.yml"), "-rw-r--r--");
    assert_eq!(
        files["/usr/bin/bigbro-ipvsadm"],
        ("lrwxrwxrwx".to_string(), Some("bigbro".to_string()))
    );

    // Control: name, section, what it needs, and /etc/bigbro/config.yml a conffile.
    let field = |name: &str| {
        dpkg_deb(&["-f"], &deb)
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
    };
    assert_eq!(field("Package").as_deref(), Some("bigbro"));
    assert_eq!(field("Section").as_deref(), Some("net"));
    let depends = field("Depends").unwrap();
    for need in [
        "curl",
        "libc6",
        "systemd (>= 247) | systemd-standalone-sysusers",
    ] {
        assert!(depends.contains(need), "Depends: {depends}");
    }
    let control = scratch.path().join("control");
    let out = Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(&control)
        .status()
        .unwrap();
    assert!(out.success());
    let read = |f: &str| std::fs::read_to_string(control.join(f)).unwrap_or_default();
    assert_eq!(read("conffiles"), "/etc/bigbro/config.yml\n");
    let postinst = read("postinst");
    assert!(postinst.contains("systemd-sysusers"), "{postinst}");
    assert!(
        postinst.contains("deb-systemd-helper enable bigbro.service"),
        "{postinst}"
    );
    // An upgrade restarts the daemon (which leaves IPVS as it is) instead of stopping it
    // before the files change.
    assert!(postinst.contains("_dh_action=restart"), "{postinst}");
    assert!(!read("prerm").contains("upgrade"), "{}", read("prerm"));
}

#[test]
fn the_unpacked_package_works_together() {
    if !cargo_deb_present() {
        return;
    }
    let (_scratch, deb, pages) = build_package();
    let root = base_root();
    let r = root.path();
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(r)
        .status()
        .unwrap();
    assert!(status.success());

    // The unit with the packaged binary where ExecStart says.
    if ops_common::have("deb: verify", &["systemd-analyze"]) {
        let (rc, stderr) = verify(r);
        assert_eq!(rc, 0, "{stderr}");
        assert_eq!(stderr, "");
    }

    // The configuration installed in /etc is valid and idle.
    let bigbro = r.join("usr/bin/bigbro");
    let out = Command::new(&bigbro)
        .args(["check", "--ipvs", "-c"])
        .arg(r.join("etc/bigbro/config.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");

    // bigbro-ipvsadm is the ipvsadm command line: its usage error, not bigbro's.
    let out = Command::new(r.join("usr/bin/bigbro-ipvsadm"))
        .arg("--no-such-option")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(!stderr.contains("Usage: bigbro"), "{stderr}");

    // The agent, as pacemaker finds it (ocf:bigbro:bigbro).
    if ops_common::have(
        "deb: agent",
        &["dash", "/usr/lib/ocf/lib/heartbeat/ocf-shellfuncs"],
    ) {
        let out = Command::new("dash")
            .arg(r.join("usr/lib/ocf/resource.d/bigbro/bigbro"))
            .arg("meta-data")
            .env("OCF_ROOT", "/usr/lib/ocf")
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("<resource-agent name=\"bigbro\""));
    }

    // Each man page renders and names its command.
    if ops_common::have("deb: man", &["man"]) {
        for file in &pages {
            let page = file.trim_end_matches(".1");
            let path = r.join(format!("usr/share/man/man1/{file}"));
            let out = Command::new("man")
                .arg("-l")
                .arg(&path)
                .env("MANPAGER", "cat")
                .env("MANWIDTH", "80")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{page}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                text.contains("NAME") && text.contains(page),
                "{page}:\n{text}"
            );
        }
    }
}

/// A `rust-version` such as "1.88" or "1.88.0", for comparison.
fn rust_version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

/// Cargo.toml's `rust-version` is true: no dependency (of any kind, on this platform)
/// declares a newer one. Only one toolchain is installed where the crate is built, so this
/// is what keeps the field honest for the dependencies; clippy's `incompatible_msrv` lint
/// checks our own code against it. Offline and fast: `cargo metadata` reads Cargo.lock.
#[test]
fn rust_version_covers_every_dependency() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let host = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host])
        .current_dir(MANIFEST_DIR)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = metadata["packages"].as_array().unwrap();
    let declared = |p: &serde_json::Value| p["rust_version"].as_str().map(rust_version);
    let ours = packages
        .iter()
        .find(|p| p["name"] == "bigbro")
        .and_then(declared)
        .expect("Cargo.toml declares rust-version");
    let newer: Vec<String> = packages
        .iter()
        .filter(|p| declared(p).is_some_and(|v| v > ours))
        .map(|p| format!("{} {} needs {}", p["name"], p["version"], p["rust_version"]))
        .collect();
    assert!(
        newer.is_empty(),
        "Cargo.toml's rust-version {ours:?} is older than what these need (raise it):\n{}",
        newer.join("\n")
    );
    assert!(packages.len() > 50, "only {} packages", packages.len());
}
