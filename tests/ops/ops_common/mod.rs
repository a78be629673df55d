//! Shared by the ops suite's tests of what is shipped around the binary (tests/ops/): the
//! prerequisite check that skips loudly locally and fails under `CI`, running one action
//! of the OCF agent in a given environment, installing the agent where every user of the
//! test bed's guest can read it, and `systemd-analyze verify` in a scratch root.
//!
//! Nothing here talks to a kernel: the kernel tests do that inside the test bed.

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod daemon;
pub mod systemd;

/// The agent, as the package installs it under /usr/lib/ocf/resource.d/bigbro/bigbro.
pub fn agent() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ocf/bigbro")
}

/// Where [`guest_agent`] installs the agent in the test bed's guest: its own tmpfs, in the
/// layout of an OCF root (`resource.d/PROVIDER/AGENT`).
pub const GUEST_AGENT: &str = "/run/bigbro-ocf/resource.d/bigbro/bigbro";

/// The agent installed in the test bed's guest where every user can read it (a copy at
/// [`GUEST_AGENT`], its directories and itself mode 755), for the tools that run it as
/// another user: ocf-tester runs its meta-data as `nobody`, who cannot reach a checkout
/// under /root (mode 700 on Debian). Guest only: it writes to the guest's own /run, and
/// refuses to run on the host.
pub fn guest_agent() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    assert!(
        std::env::var_os("BIGBRO_TESTBED_GUEST").is_some(),
        "guest_agent installs the agent in the test bed's guest only"
    );
    let path = PathBuf::from(GUEST_AGENT);
    let mode = || std::fs::Permissions::from_mode(0o755);
    for dir in path.ancestors().skip(1).take(3) {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        std::fs::set_permissions(dir, mode()).unwrap();
    }
    std::fs::copy(agent(), &path).unwrap_or_else(|e| panic!("installing the agent: {e}"));
    std::fs::set_permissions(&path, mode()).unwrap();
    path
}

/// The OCF root resource-agents installs.
pub const OCF_ROOT: &str = "/usr/lib/ocf";

/// The OCF exit codes (ocf-returncodes).
pub mod rc {
    pub const SUCCESS: i32 = 0;
    pub const ERR_GENERIC: i32 = 1;
    pub const ERR_ARGS: i32 = 2;
    pub const ERR_UNIMPLEMENTED: i32 = 3;
    pub const ERR_PERM: i32 = 4;
    pub const ERR_INSTALLED: i32 = 5;
    pub const ERR_CONFIGURED: i32 = 6;
    pub const NOT_RUNNING: i32 = 7;
}

/// True when every program in `needs` (paths or names on PATH) is there. Otherwise prints
/// one loud line and returns false, or panics when `CI` is set: tests/setup.sh installs
/// them.
pub fn have(test: &str, needs: &[&str]) -> bool {
    let missing: Vec<&str> = needs.iter().copied().filter(|n| !present(n)).collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "{test}: SKIPPED: missing {} (tests/setup.sh installs them)",
        missing.join(", ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{msg}; CI is set, so this is a failure");
    }
    eprintln!("*** {msg} ***");
    false
}

/// A path that exists, or a program name found on PATH.
pub fn present(name: &str) -> bool {
    if name.contains('/') {
        return Path::new(name).exists();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// What one run of the agent returned.
#[derive(Debug)]
pub struct Run {
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `shell agent action` in a clean environment holding only PATH, the OCF variables
/// and `env` (pairs like ("OCF_RESKEY_cluster", "web")).
pub fn run_agent(shell: &str, action: &str, env: &[(&str, &str)]) -> Run {
    let out = Command::new(shell)
        .arg(agent())
        .arg(action)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("OCF_ROOT", OCF_ROOT)
        .env("OCF_RA_VERSION_MAJOR", "1")
        .env("OCF_RA_VERSION_MINOR", "0")
        .env("OCF_RESOURCE_INSTANCE", "t")
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shell} {}: {e}", agent().display()));
    Run {
        rc: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts `run` ended with `want`, showing its output otherwise.
#[track_caller]
pub fn assert_rc(what: &str, run: &Run, want: i32) {
    assert_eq!(
        run.rc, want,
        "{what}: exit code {} instead of {want}\n--- stdout ---\n{}--- stderr ---\n{}--- end ---",
        run.rc, run.stdout, run.stderr
    );
}
