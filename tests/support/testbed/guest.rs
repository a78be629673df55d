//! The guest side of the test bed: what runs around a kernel test's body inside the VM
//! (a fresh network namespace with `lo` up, so no IPVS, nft or routing state can leak
//! between tests), and the helpers test bodies use: `sh`, `sh_status`, `block_on`. These
//! helpers change kernel state, so they must only be called from kernel test bodies, which
//! only ever run inside the guest.

use std::future::Future;
use std::process::Command;

use nix::sched::{unshare, CloneFlags};

/// Runs the body of kernel test `name` in a fresh network namespace with `lo` up.
pub fn run(name: &str, body: impl FnOnce()) {
    // A new network namespace for this thread; the processes and threads it starts
    // (sh, tokio workers, fixtures) inherit it.
    unshare(CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("testbed: {name}: cannot create a network namespace: {e}"));
    sh("ip link set lo up");
    body();
}

/// Runs `command` with `/bin/sh -c` and returns its standard output. Panics, showing the
/// command, its exit status, stdout and stderr, when it exits non-zero.
pub fn sh(command: &str) -> String {
    let (status, stdout, stderr) = sh_status(command);
    if status != 0 {
        panic!(
            "command failed (exit status {status}): {command}\n\
             --- stdout ---\n{stdout}--- stderr ---\n{stderr}--- end ---"
        );
    }
    stdout
}

/// Runs `command` with `/bin/sh -c` and returns (exit status, stdout, stderr). A command
/// killed by signal N reports 128 + N, as shells do. Panics only when `/bin/sh` cannot be
/// started at all.
pub fn sh_status(command: &str) -> (i32, String, String) {
    let output = Command::new("/bin/sh")
        .args(["-c", command])
        .output()
        .unwrap_or_else(|e| panic!("cannot run /bin/sh for `{command}`: {e}"));
    let status = output.status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        128 + output.status.signal().unwrap_or(0)
    });
    (
        status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `future` to completion on a new multi-threaded tokio runtime (2 workers, IO and
/// time enabled) whose threads share the test's network namespace.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("testbed: cannot build a tokio runtime")
        .block_on(future)
}

/// The kernel tests this VM runs, in order (guest only): lets a test tell whether another
/// one ran before it in the same guest.
pub fn session_tests() -> Vec<String> {
    std::fs::read_to_string("/run/testbed/tests")
        .map(|list| {
            list.lines()
                .filter_map(|line| line.split_once(' ').map(|(_limit, name)| name.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The time limit the guest runner gave this test (guest only): its own
/// `#[time_limit(secs = N)]`, else the binary's default. Panics outside the guest runner.
pub fn time_limit() -> std::time::Duration {
    std::env::var(LIMIT_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(std::time::Duration::from_secs)
        .unwrap_or_else(|| panic!("testbed::time_limit: {LIMIT_ENV} is not set (guest only)"))
}

/// The environment variable in which guest-run.sh passes a test its time limit (seconds).
const LIMIT_ENV: &str = "BIGBRO_TESTBED_LIMIT";

/// IPVS modules currently loaded, schedulers first (`ip_vs` itself last), the order they
/// can be unloaded in.
pub fn loaded_ipvs_modules() -> Vec<String> {
    let modules = std::fs::read_to_string("/proc/modules").unwrap();
    let mut names: Vec<String> = modules
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("ip_vs"))
        .map(str::to_string)
        .collect();
    names.sort_by_key(|n| n == "ip_vs");
    names
}

/// Loads kernel module `module` (and what it needs) from the test kernel's modules, for
/// the rare module the kernel does not load on demand (guest only). The guest's `/lib`
/// is the host's, which has no modules for the test kernel: this points modprobe at the
/// kernel cache. Panics with modprobe's error when it fails.
pub fn modprobe(module: &str) {
    let conf = std::fs::read_to_string("/run/testbed/boot.conf")
        .unwrap_or_else(|e| panic!("testbed::modprobe runs only in the guest: {e}"));
    let modules_dir = conf
        .lines()
        .find_map(|l| l.strip_prefix("MODULES_DIR="))
        .map(|v| v.trim_matches('\''))
        .expect("boot.conf names no MODULES_DIR");
    let root = modules_dir
        .strip_suffix("/lib/modules")
        .expect("MODULES_DIR does not end in /lib/modules");
    sh(&format!("modprobe -d '{root}' {module}"));
}
