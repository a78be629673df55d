//! The `bigbro daemon` binary's signals and systemd notifications, on the host: it runs in
//! a network namespace of its own (`unshare -n`), where the host kernel has no IPVS, so it
//! can never change anything and says so in its status. Checked: `READY=1` with a `STATUS=`
//! naming the problem, `WATCHDOG=1` at half of `WATCHDOG_USEC`, SIGHUP with a broken file
//! (`RELOADING=1`, `READY=1`, refused, still running) and with a valid one (applied),
//! SIGTERM (`STOPPING=1`, exit 0); and SIGTERM's graceful end of the HTTP API (reached from
//! a thread that joins the daemon's namespace): a request in flight still gets its whole
//! answer, while a slow client is cut at the grace period instead of holding the exit. The
//! kernel side of reloads and restarts is in tests/kernel/daemon.rs.

use std::io::{Read, Write};
use std::net::TcpStream;
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

/// Whether this host can give the daemon a network namespace of its own (a loud line when
/// not: the test is skipped).
fn can_unshare() -> bool {
    let can = Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !can {
        eprintln!("daemon_signals: SKIPPED: `unshare -n` is not available (needs root)");
    }
    can
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
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut child, pid, socket, ready) = started_daemon(dir.path());
    let log = || std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
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

/// Runs `f` on a thread of its own inside the network namespace of process `pid`, where
/// the daemon's API listens; sockets it opens stay in that namespace.
fn in_netns_of<T: Send + 'static>(pid: Pid, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

const API: &str = "127.0.0.1:9292";

/// A node override whose head has been read by the daemon (its `100 Continue` received):
/// the request is in flight, its handler waiting for the body.
fn override_in_flight(body_len: usize) -> TcpStream {
    let mut s = TcpStream::connect(API).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "PUT /api/v1/clusters/web/override HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nExpect: 100-continue\r\n\
         Content-Length: {body_len}\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed: {got:?}");
        got.push(byte[0]);
    }
    assert_eq!(got, b"HTTP/1.1 100 Continue\r\n\r\n");
    s
}

/// Waits (at most 30 s) for the child to exit; its status and when it exited.
fn exit_of(child: Child, log: impl Fn() -> String) -> (std::process::ExitStatus, Instant) {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut child = child;
    std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send((status, Instant::now()));
    });
    let (status, at) = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no exit within 30 s of SIGTERM:\n{}", log()));
    (status.unwrap(), at)
}

/// Reads until the peer closes; what it sent (empty when it closed or reset unanswered).
fn read_all(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

/// The daemon on [`CONFIG`] in `dir`, once it said READY=1: the process, its id, the
/// notification socket and the READY=1 datagram.
fn started_daemon(dir: &Path) -> (Child, Pid, UnixDatagram, String) {
    std::fs::write(dir.join("bigbro.yml"), CONFIG).unwrap();
    let socket_path = dir.join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let child = start(dir, &socket_path);
    let pid = Pid::from_raw(child.id() as i32);
    let ready = until(&socket, "READY=1");
    (child, pid, socket, ready)
}

#[test]
fn sigterm_answers_the_request_in_flight() {
    if !can_unshare() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (child, pid, socket, _) = started_daemon(dir.path());
    let log = || std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    let body = br#"{"force": "down", "reason": "in flight at SIGTERM"}"#;
    let mut s = in_netns_of(pid, move || override_in_flight(body.len()));

    kill(pid, Signal::SIGTERM).unwrap();
    until(&socket, "STOPPING=1");
    // The API stops listening: new connections are refused.
    in_netns_of(pid, || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(API).is_ok() {
            assert!(Instant::now() < deadline, "still accepting after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    // The body comes a while later (a slow client): it is still read and answered.
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(body).unwrap();
    // Its answer: 409, as this daemon has no IPVS to run the cluster on (tests/api/safety.rs
    // shows an override in flight taking effect), whole.
    let answer = read_all(&mut s);
    assert!(
        answer.starts_with("HTTP/1.1 409 Conflict\r\n"),
        "{answer}\n{}",
        log()
    );
    let json = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let json: serde_json::Value = serde_json::from_str(json).expect("the whole JSON answer");
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("cluster web is not running"),
        "{json}"
    );

    let (status, _) = exit_of(child, log);
    assert!(status.success(), "{status}:\n{}", log());
    assert!(
        log().contains("finishing the requests in flight"),
        "{}",
        log()
    );
    assert!(!log().contains("still open after"), "{}", log());
}

#[test]
fn a_slow_client_cannot_delay_exit_beyond_the_grace_period() {
    if !can_unshare() {
        return;
    }
    let grace = bigbro::api::Limits::default().shutdown_grace;
    // Without the grace period, a slow body or head holds its connection for 10 s.
    assert!(grace < Duration::from_secs(7), "{grace:?}");
    let dir = tempfile::tempdir().unwrap();
    let (child, pid, socket, _) = started_daemon(dir.path());
    let log = || std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    // Read every notification as it comes (the watchdog pings every 200 ms).
    let notifications = std::thread::spawn(move || {
        let mut all = String::new();
        let mut buf = [0u8; 4096];
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        while let Ok(len) = socket.recv(&mut buf) {
            all.push_str(&String::from_utf8_lossy(&buf[..len]));
            if all.contains("STOPPING=1") {
                break;
            }
        }
        all
    });
    let (mut slow_body, mut slow_head, mut idle) = in_netns_of(pid, || {
        let mut slow_body = override_in_flight(100);
        slow_body.write_all(b"{\"force\": ").unwrap();
        let mut slow_head = TcpStream::connect(API).unwrap();
        slow_head
            .write_all(b"GET /cluster/web HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let mut idle = TcpStream::connect(API).unwrap();
        idle.write_all(b"GET /cluster/web/status HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        // Its answer also means the slow head's connection, accepted before it, is open.
        let mut first = [0u8; 15];
        idle.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"HTTP/1.1 200 OK");
        (slow_body, slow_head, idle)
    });
    for s in [&slow_body, &slow_head, &idle] {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    }

    let sent = Instant::now();
    kill(pid, Signal::SIGTERM).unwrap();
    let (status, exited) = exit_of(child, log);
    let took = exited - sent;
    assert!(status.success(), "{status}:\n{}", log());
    // It waited for the request in flight, but no longer than the grace period allows.
    assert!(took >= grace, "exited after {took:?}:\n{}", log());
    assert!(
        took < grace + Duration::from_secs(3),
        "a slow client held the exit for {took:?}:\n{}",
        log()
    );
    assert!(notifications.join().unwrap().contains("STOPPING=1"));
    assert_eq!(read_all(&mut slow_body), "", "the slow body was answered");
    assert_eq!(read_all(&mut slow_head), "", "the slow head was answered");
    assert!(!read_all(&mut idle).contains("HTTP/1.1"), "idle got more");
    assert!(
        // The slow body and the slow head; the idle connection was closed at once.
        log().contains("closing 2 connection(s) still open after the 5s grace period"),
        "{}",
        log()
    );
}

#[test]
fn a_second_sigterm_cuts_the_grace_period_short() {
    if !can_unshare() {
        return;
    }
    let grace = bigbro::api::Limits::default().shutdown_grace;
    let dir = tempfile::tempdir().unwrap();
    let (child, pid, socket, _) = started_daemon(dir.path());
    let log = || std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    let mut slow_body = in_netns_of(pid, || override_in_flight(100));

    let sent = Instant::now();
    kill(pid, Signal::SIGTERM).unwrap();
    // Once STOPPING=1 is out, the daemon is draining the API: the next SIGTERM ends that.
    until(&socket, "STOPPING=1");
    kill(pid, Signal::SIGTERM).unwrap();
    let (status, exited) = exit_of(child, log);
    assert!(status.success(), "{status}:\n{}", log());
    let took = exited - sent;
    assert!(
        took < grace - Duration::from_secs(2),
        "exited after {took:?}"
    );
    assert_eq!(read_all(&mut slow_body), "", "the slow body was answered");
}
