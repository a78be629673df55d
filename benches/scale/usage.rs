//! What a process costs, read from the kernel: CPU time (getrusage), peak and current
//! resident memory (/proc/self/status), the file-descriptor limit, and the machine's load.

use std::time::Duration;

use nix::sys::resource::{getrlimit, getrusage, setrlimit, Resource, UsageWho};

/// User plus system CPU time of this process (all threads) so far.
pub fn cpu_time() -> Duration {
    let (user, system) = cpu_times();
    user + system
}

/// User and system CPU time of this process (all threads) so far.
pub fn cpu_times() -> (Duration, Duration) {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000)
            };
            (tv(u.user_time()), tv(u.system_time()))
        }
        Err(_) => (Duration::ZERO, Duration::ZERO),
    }
}

/// Voluntary and involuntary context switches of this process so far.
pub fn context_switches() -> (i64, i64) {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => (
            u.voluntary_context_switches(),
            u.involuntary_context_switches(),
        ),
        Err(_) => (0, 0),
    }
}

/// A `/proc/self/status` field in KiB (`VmHWM`: peak RSS, `VmRSS`: current RSS).
pub fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Raises the soft open-files limit to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 0,
    }
}

/// The 1-minute load average of the machine.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}
