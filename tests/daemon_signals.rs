//! The `bigbro daemon` binary's signals and systemd notifications, on the host: it runs in
//! a network namespace of its own (`unshare -n`), where the host kernel has no IPVS, so it
//! can never change anything and says so in its status. Checked: `READY=1` with a `STATUS=`
//! naming the problem, `WATCHDOG=1` at half of `WATCHDOG_USEC`, SIGHUP with a broken file
//! (`RELOADING=1`, `READY=1`, refused, still running) and with a valid one (applied),
//! SIGTERM (`STOPPING=1`, exit 0). The kernel side of reloads and restarts is in
//! tests/kernel_daemon.rs.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const CONFIG: &str = "\
bigbro:
  api: {listen: 127.0.0.1:9292}
  data_dir: /nonexistent/bigbro-test
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wrr
    nodes: [{address: 10.0.0.1, port: 9292, path: /s}]
";

/// Whether this host can give the daemon a network namespace of its own.
fn can_unshare() -> bool {
    Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Receives the next datagram (at most `limit` from now).
fn next(socket: &UnixDatagram, limit: Duration) -> String {
    socket.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    let len = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no notification within {limit:?}: {e}"));
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// Receives datagrams until one contains `want`; returns it.
fn until(socket: &UnixDatagram, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {want:?} notification");
        let msg = next(socket, left);
        if msg.contains(want) {
            return msg;
        }
    }
}

fn start(dir: &Path, socket: &Path) -> Child {
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    let script = format!(
        "ip link set lo up && exec {} daemon -c {}",
        env!("CARGO_BIN_EXE_bigbro"),
        dir.join("bigbro.yml").display()
    );
    Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .env("NOTIFY_SOCKET", socket)
        .env("WATCHDOG_USEC", "400000")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start bigbro daemon")
}

#[test]
fn signals_and_systemd_notifications() {
    if !can_unshare() {
        eprintln!("daemon_signals: SKIPPED: `unshare -n` is not available (needs root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bigbro.yml"), CONFIG).unwrap();
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut child = start(dir.path(), &socket_path);
    let log = || std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    let pid = Pid::from_raw(child.id() as i32);

    let ready = until(&socket, "READY=1");
    assert!(
        ready.contains("STATUS=1 clusters, 0 running; IPVS unavailable"),
        "{ready}"
    );
    // Watchdog pings at half of 400 ms.
    let started = Instant::now();
    until(&socket, "WATCHDOG=1");
    until(&socket, "WATCHDOG=1");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    std::fs::write(
        dir.path().join("bigbro.yml"),
        CONFIG.replace("fwmark: 7", "fwmark: [7"),
    )
    .unwrap();
    kill(pid, Signal::SIGHUP).unwrap();
    until(&socket, "RELOADING=1");
    until(&socket, "READY=1");
    assert!(
        child.try_wait().unwrap().is_none(),
        "a broken file stopped the daemon:\n{}",
        log()
    );
    assert!(
        log().contains("the running configuration is unchanged"),
        "{}",
        log()
    );

    std::fs::write(dir.path().join("bigbro.yml"), CONFIG.replace("wrr", "wlc")).unwrap();
    kill(pid, Signal::SIGHUP).unwrap();
    until(&socket, "RELOADING=1");
    until(&socket, "READY=1");
    assert!(log().contains("configuration reloaded"), "{}", log());

    kill(pid, Signal::SIGTERM).unwrap();
    until(&socket, "STOPPING=1");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no exit after SIGTERM:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}:\n{}", log());
    let text = log();
    assert!(text.contains("IPVS is not available"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}
