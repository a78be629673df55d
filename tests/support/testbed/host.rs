//! The host side of the test bed: checks that qemu and the test kernel are there (else
//! skips, or fails under CI), boots ONE VM per test binary on its first kernel test, runs
//! the selected kernel tests inside it, each with its time limit, and reports each test's
//! guest result to its own `#[test]`. A guest that hangs is killed after a bounded time (the
//! running test's limit plus a slack) and its tests fail; nothing here may ever block
//! `cargo test` forever or touch the host's network state.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::image::{self, Kernel};

/// The guest's second stage (see guest-run.sh).
const GUEST_RUN: &str = include_str!("guest-run.sh");

/// Modules the guest loads at boot (each costs ~0.1 s under TCG). The kernel loads the
/// others on demand: IPVS schedulers, nft expressions and chain types, link types.
/// crc32c_generic first: libcrc32c (needed by ip_vs and nf_tables) wants a crc32c provider
/// and qemu's default CPU has no SSE4.2 for crc32c-intel. ipip before any test makes its
/// namespaces, so that every namespace has `tunl0`.
const GUEST_MODULES: &str = "crc32c_generic ip_vs ip_vs_wrr ipip nf_tables veth";

/// How long the guest may take to boot before the host gives up.
const BOOT_LIMIT: Duration = Duration::from_secs(90);
/// Default time limit for one kernel test inside the guest, for tests that declare none
/// (`#[time_limit(secs = N)]`); BIGBRO_TESTBED_TIMEOUT (seconds) sets another for a binary.
const DEFAULT_TEST_LIMIT: Duration = Duration::from_secs(120);
/// Slack the host allows on top of the running test's own time limit before it kills the
/// VM (BIGBRO_TESTBED_SLACK, seconds, sets another: the test bed's selftest shortens it).
const HOST_SLACK: Duration = Duration::from_secs(30);

/// A kernel test the VM is to run, and its time limit.
struct Planned {
    name: String,
    limit: Duration,
}

/// What a kernel test needs from the host.
struct Prerequisites {
    qemu: PathBuf,
    busybox: PathBuf,
    kernel: Kernel,
}

/// The outcome of one kernel test inside the guest.
enum Outcome {
    Passed(String),
    Failed { status: String, output: String },
}

/// Everything one VM run produced.
struct Session {
    outcomes: HashMap<String, Outcome>,
    /// Why tests without an outcome have none (boot failure, hung guest...), with logs.
    trouble: String,
}

static PREREQUISITES: OnceLock<Result<Prerequisites, String>> = OnceLock::new();
static SESSION: OnceLock<Session> = OnceLock::new();

/// Reports the guest's result for kernel test `name` (libtest's name for it).
pub fn report(name: &str) {
    let prerequisites = match PREREQUISITES.get_or_init(prerequisites) {
        Ok(p) => p,
        Err(missing) => return skip(name, missing),
    };
    let session = SESSION.get_or_init(|| {
        let all = super::registered();
        let args: Vec<String> = std::env::args().skip(1).collect();
        let default = seconds_from_env("BIGBRO_TESTBED_TIMEOUT", DEFAULT_TEST_LIMIT);
        let planned: Vec<Planned> = super::filter::select(&all, &args)
            .into_iter()
            .map(|name| Planned {
                limit: super::declared_limit(&name).map_or(default, Duration::from_secs),
                name,
            })
            .collect();
        Session::run(prerequisites, &planned)
    });
    match session.outcomes.get(name) {
        Some(Outcome::Passed(output)) => {
            // Captured by libtest: shown with --nocapture / --show-output.
            println!("--- guest output of {name} ---\n{output}--- end of guest output ---");
        }
        Some(Outcome::Failed { status, output }) => panic!(
            "kernel test {name} failed in the guest ({status})\n\
             --- guest output of {name} ---\n{output}--- end of guest output ---"
        ),
        None => panic!(
            "kernel test {name} did not run in the guest: {}",
            session.trouble
        ),
    }
}

/// Whether the test bed can run; prints why not (or panics under CI) when it cannot.
pub fn ready(name: &str) -> bool {
    match PREREQUISITES.get_or_init(prerequisites) {
        Ok(_) => true,
        Err(missing) => {
            skip(name, missing);
            false
        }
    }
}

/// A line on the real stderr, past libtest's output capture, so it is always seen.
fn loud(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Without the test bed: one loud line locally; a failure when CI is set.
fn skip(name: &str, missing: &str) {
    let fix = "Install it with tests/setup.sh (as root).";
    if ci() {
        panic!(
            "testbed: kernel test {name} cannot run: {missing}. {fix} \
             CI is set, so a missing test bed is a failure."
        );
    }
    loud(&format!(
        "testbed: SKIPPED kernel test {name}: {missing}. {fix}"
    ));
}

/// Whether we run under CI (which sets CI=true).
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn prerequisites() -> Result<Prerequisites, String> {
    let qemu = match std::env::var_os("BIGBRO_TESTBED_QEMU") {
        Some(q) if Path::new(&q).is_file() => PathBuf::from(q),
        Some(q) => {
            return Err(format!(
                "BIGBRO_TESTBED_QEMU names {}, which is not a file",
                Path::new(&q).display()
            ))
        }
        None => on_path("qemu-system-x86_64").ok_or("qemu-system-x86_64 is not installed")?,
    };
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or("busybox (static) is not installed")?;
    if !is_static(&busybox) {
        return Err(format!(
            "{} is not statically linked (install busybox-static)",
            busybox.display()
        ));
    }
    for tool in ["ipvsadm", "nft", "ip"] {
        on_path(tool).ok_or(format!("{tool} is not installed"))?;
    }
    let kernel = Kernel::find()?;
    Ok(Prerequisites {
        qemu,
        busybox,
        kernel,
    })
}

/// Finds `program` on PATH (and in the sbin directories a non-root PATH may lack).
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Whether the ELF file at `path` has no program interpreter (PT_INTERP), i.e. is static.
fn is_static(path: &Path) -> bool {
    let Ok(elf) = fs::read(path) else {
        return false;
    };
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        elf.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return false; // not a little-endian 64-bit ELF
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..phnum as usize).all(|i| u32_at(phoff as usize + i * phentsize as usize) != Some(PT_INTERP))
}

/// A number of seconds from the environment variable `var`, or `default`.
fn seconds_from_env(var: &str, default: Duration) -> Duration {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(default)
}

/// `value` quoted for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

impl Session {
    /// Boots the VM, runs `tests` in it and collects their outcomes. Never panics: trouble
    /// is recorded and reported by every test that has no outcome.
    fn run(prerequisites: &Prerequisites, tests: &[Planned]) -> Session {
        let started = Instant::now();
        let mut session = match Session::try_run(prerequisites, tests) {
            Ok(session) => session,
            Err(trouble) => Session {
                outcomes: HashMap::new(),
                trouble,
            },
        };
        if session.trouble.is_empty() {
            session.trouble = "the guest did not report it (is it a kernel_test?)".into();
        }
        loud(&format!(
            "testbed: {} kernel test(s) ran in the guest in {:.1}s",
            tests.len(),
            started.elapsed().as_secs_f64()
        ));
        session
    }

    fn try_run(prerequisites: &Prerequisites, tests: &[Planned]) -> Result<Session, String> {
        let keep = std::env::var_os("BIGBRO_TESTBED_KEEP").is_some();
        let temp = tempfile::Builder::new()
            .prefix("bigbro-testbed-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let dir = temp.path().to_path_buf();
        if keep {
            let _ = temp.keep();
            loud(&format!(
                "testbed: keeping the VM's files in {}",
                dir.display()
            ));
        }
        let share = dir.join("share");
        prepare_share(prerequisites, &share, tests)?;
        let initrd = dir.join("initrd.cpio");
        image::write_initramfs(&prerequisites.kernel, &prerequisites.busybox, &initrd)?;

        let console = dir.join("console.log");
        let mut qemu = start_qemu(prerequisites, &initrd, &share, &console)?;
        let limits: Vec<Duration> = tests.iter().map(|t| t.limit).collect();
        let slack = seconds_from_env("BIGBRO_TESTBED_SLACK", HOST_SLACK);
        let hung = watch(&mut qemu, &share, &limits, slack);

        let logs = guest_logs(&share, &console);
        let kernel = fs::read_to_string(share.join("kernel")).unwrap_or_default();
        let mut kernel_lines = kernel.lines();
        if let Some(release) = kernel_lines.next() {
            loud(&format!(
                "testbed: guest kernel {release}: {}",
                kernel_lines.next().unwrap_or("").trim()
            ));
        }
        let mut outcomes = HashMap::new();
        for (i, test) in tests.iter().enumerate() {
            if let Some(outcome) = outcome(&share, i + 1, &test.name, test.limit) {
                outcomes.insert(test.name.clone(), outcome);
            }
        }
        let trouble = match hung {
            Some(why) => format!("{why}\n{logs}"),
            None if outcomes.len() < tests.len() => {
                format!("the guest stopped before running it\n{logs}")
            }
            None => String::new(),
        };
        Ok(Session { outcomes, trouble })
    }
}

/// Writes what the guest reads from the results share: boot.conf (guest-init.sh), run.sh,
/// run.conf, env and tests (guest-run.sh).
fn prepare_share(
    prerequisites: &Prerequisites,
    share: &Path,
    tests: &[Planned],
) -> Result<(), String> {
    let write = |name: &str, text: &str| {
        fs::write(share.join(name), text).map_err(|e| format!("writing {name}: {e}"))
    };
    fs::create_dir(share).map_err(|e| format!("creating {}: {e}", share.display()))?;

    let modules_dir = fs::canonicalize(prerequisites.kernel.root.join("lib/modules"))
        .map_err(|e| format!("kernel cache: {e}"))?;
    write(
        "boot.conf",
        &format!(
            "MODULES_DIR={}\nMODULES={}\n",
            shell_quote(&modules_dir.to_string_lossy()),
            shell_quote(GUEST_MODULES)
        ),
    )?;
    write("run.sh", GUEST_RUN)?;

    let bin = std::env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
    let bin = fs::canonicalize(&bin).unwrap_or(bin);
    for hidden in ["/tmp/", "/run/", "/var/tmp/", "/dev/", "/proc/", "/sys/"] {
        if bin.starts_with(hidden) {
            return Err(format!(
                "the test binary {} is under {hidden}, which the guest replaces with its own; \
                 build somewhere else (CARGO_TARGET_DIR)",
                bin.display()
            ));
        }
    }
    let cwd = std::env::current_dir().map_err(|e| format!("no current directory: {e}"))?;
    write(
        "run.conf",
        &format!(
            "BIN={}\nCWD={}\n",
            shell_quote(&bin.to_string_lossy()),
            shell_quote(&cwd.to_string_lossy()),
        ),
    )?;

    let mut env = String::new();
    for (key, value) in std::env::vars() {
        let shell_name = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let guest_owned = ["TMPDIR", "PWD", "OLDPWD", "SHLVL", "_", super::GUEST_ENV];
        if shell_name && !guest_owned.contains(&key.as_str()) {
            let _ = writeln!(env, "export {key}={}", shell_quote(&value));
        }
    }
    write("env", &env)?;

    // "LIMIT NAME" lines: libtest names have no spaces.
    let mut list = String::new();
    for test in tests {
        let _ = writeln!(list, "{} {}", test.limit.as_secs(), test.name);
    }
    write("tests", &list)
}

fn start_qemu(
    prerequisites: &Prerequisites,
    initrd: &Path,
    share: &Path,
    console: &Path,
) -> Result<Child, String> {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    // qemu's option syntax doubles a comma to quote it.
    let path = |p: &Path| p.to_string_lossy().replace(',', ",,");
    let log = File::create(console).map_err(|e| format!("creating {}: {e}", console.display()))?;
    let log2 = log.try_clone().map_err(|e| format!("console log: {e}"))?;
    let image = prerequisites.kernel.image()?;
    Command::new(&prerequisites.qemu)
        // KVM does not boot here (nested guest); BIGBRO_TESTBED_ACCEL=kvm where it works.
        .args(["-accel", &var("BIGBRO_TESTBED_ACCEL", "tcg")])
        // 1 GiB: more makes the guest kernel slower to boot under TCG. One vCPU: two made
        // the whole run slower on a loaded 2-core host (BIGBRO_TESTBED_CPUS=2 to try).
        .args(["-m", &var("BIGBRO_TESTBED_MEMORY", "1024")])
        .args(["-smp", &var("BIGBRO_TESTBED_CPUS", "1")])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-serial", "stdio", "-no-reboot"])
        .arg("-kernel")
        .arg(&image)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .arg("-virtfs")
        .arg("local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap")
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=results,security_model=none,multidevs=remap",
            path(share)
        ))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", prerequisites.qemu.display()))
}

/// Waits for qemu to power off. Kills it when the guest makes no progress: no boot within
/// BOOT_LIMIT, or no test starting or finishing within the running test's limit (`limits`,
/// in the order the guest runs them) plus `slack`. Returns why it was killed, if it was.
fn watch(qemu: &mut Child, share: &Path, limits: &[Duration], slack: Duration) -> Option<String> {
    let progress = |share: &Path| {
        let booted = share.join("booted").exists();
        let started = (1..=limits.len())
            .filter(|i| share.join(format!("{i}.out")).exists())
            .count();
        let finished = (1..=limits.len())
            .filter(|i| share.join(format!("{i}.rc")).exists())
            .count();
        (booted, started, finished)
    };
    let mut last = progress(share);
    let mut since = Instant::now();
    loop {
        match qemu.try_wait() {
            Ok(Some(_)) => return None,
            Ok(None) => {}
            Err(e) => return Some(format!("cannot wait for qemu: {e}")),
        }
        let now = progress(share);
        if now != last {
            last = now;
            since = Instant::now();
        }
        let (booted, _, finished) = last;
        let limit = allowed(booted, finished, limits, slack);
        if since.elapsed() > limit {
            let _ = qemu.kill();
            let _ = qemu.wait();
            let what = if booted {
                "the guest stopped making progress"
            } else {
                "the guest did not boot"
            };
            return Some(format!(
                "{what} within {}s; the VM was killed",
                limit.as_secs()
            ));
        }
        // Polling the share is the only signal a 9p export gives the host.
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How long the guest may go without progress: BOOT_LIMIT until it has booted, then the
/// limit of the test it runs (the first of `limits` not yet finished; tests run in order)
/// plus `slack`, and `slack` alone once every test has finished (powering off).
fn allowed(booted: bool, finished: usize, limits: &[Duration], slack: Duration) -> Duration {
    if !booted {
        return BOOT_LIMIT;
    }
    limits.get(finished).map_or(slack, |limit| *limit + slack)
}

/// The outcome of test number `i` (from 1), if the guest finished it.
fn outcome(share: &Path, i: usize, name: &str, test_limit: Duration) -> Option<Outcome> {
    let output = fs::read_to_string(share.join(format!("{i}.out"))).ok()?;
    let rc = fs::read_to_string(share.join(format!("{i}.rc"))).ok();
    let rc: Option<i32> = rc.as_deref().map(str::trim).and_then(|r| r.parse().ok());
    let ran = output.contains(&format!("test {name} ... "));
    Some(match rc {
        Some(0) if ran => Outcome::Passed(output),
        Some(0) => Outcome::Failed {
            status: "the guest's libtest did not run it".into(),
            output,
        },
        Some(124) | Some(137) => Outcome::Failed {
            status: format!("timed out after {}s", test_limit.as_secs()),
            output,
        },
        Some(rc) => Outcome::Failed {
            status: format!("exit status {rc}"),
            output,
        },
        None => Outcome::Failed {
            status: "the guest stopped while it ran".into(),
            output,
        },
    })
}

/// The guest's own logs and the end of its console, for failures that are not a test's.
fn guest_logs(share: &Path, console: &Path) -> String {
    let mut logs = String::new();
    for (what, path) in [
        ("init.log", share.join("init.log")),
        ("run.log", share.join("run.log")),
        ("console (last 40 lines)", console.to_path_buf()),
    ] {
        let text = fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(40)..];
        if !tail.is_empty() {
            let _ = writeln!(logs, "--- {what} ---\n{}", tail.join("\n"));
        }
    }
    logs
}

#[cfg(test)]
mod tests {
    use super::{allowed, BOOT_LIMIT};
    use std::time::Duration;

    #[test]
    fn the_watchdog_allows_the_running_tests_own_limit_plus_slack() {
        let s = Duration::from_secs;
        let limits = [s(120), s(480), s(5)];
        assert_eq!(allowed(false, 0, &limits, s(30)), BOOT_LIMIT);
        assert_eq!(allowed(true, 0, &limits, s(30)), s(150));
        assert_eq!(allowed(true, 1, &limits, s(30)), s(510));
        assert_eq!(allowed(true, 2, &limits, s(7)), s(12));
        assert_eq!(allowed(true, 3, &limits, s(7)), s(7));
    }
}
