//! `systemd-analyze` in a scratch root: the units of this machine plus bigbro's, so that
//! verify sees the unit as the package installs it, with ExecStart's binary in place.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch root for `systemd-analyze --root`: this machine's units, the merged-/usr
/// symlinks and kill at /usr/bin/kill (ExecReload's /bin/kill), nothing of bigbro's. In
/// the target directory, so that binaries can be hard-linked rather than copied.
pub fn base_root() -> tempfile::TempDir {
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("usr/lib/systemd")).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg("/usr/lib/systemd/system")
        .arg(r.join("usr/lib/systemd"))
        .status()
        .unwrap();
    assert!(status.success(), "cannot copy /usr/lib/systemd/system");
    std::fs::create_dir_all(r.join("usr/bin")).unwrap();
    for (link, target) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib")] {
        std::os::unix::fs::symlink(target, r.join(link)).unwrap();
    }
    link_or_copy(&which("kill"), &r.join("usr/bin/kill"));
    root
}

/// [`base_root`] plus `unit` as /usr/lib/systemd/system/bigbro.service and, unless
/// `without_binary`, the built bigbro at /usr/bin/bigbro.
pub fn scratch_root(unit: &str, without_binary: bool) -> tempfile::TempDir {
    let root = base_root();
    let r = root.path();
    std::fs::write(r.join("usr/lib/systemd/system/bigbro.service"), unit).unwrap();
    if !without_binary {
        link_or_copy(
            Path::new(env!("CARGO_BIN_EXE_bigbro")),
            &r.join("usr/bin/bigbro"),
        );
    }
    root
}

fn which(name: &str) -> PathBuf {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no {name} on this machine"))
}

pub fn link_or_copy(from: &Path, to: &Path) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

/// `systemd-analyze verify --root=ROOT bigbro.service`: (exit code, stderr).
pub fn verify(root: &Path) -> (i32, String) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg("--man=no") // the man page is checked with the package (tests/ops/deb_package.rs)
        .arg("bigbro.service")
        .output()
        .expect("run systemd-analyze");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
