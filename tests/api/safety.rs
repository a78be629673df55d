//! The API's safety rules over real sockets: the listen rule (no non-loopback address
//! without a token), the token rule (every change needs `Authorization: Bearer`; reads stay
//! open), the token never logged, and the limits on what one client can hold: head size
//! and header count, a deadline for the head and for the body, idle connections, the
//! number of connections, and path tricks. Every refusal leaves the daemon unchanged.

use crate::api_common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api_common::{exchange, request, start, start_with, Setup, CONFIG, TOKEN};
use bigbro::api::{self, Drained, Limits, ListenError, Token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn token() -> Token {
    Token::new(TOKEN).unwrap()
}

async fn start_limited(limits: Limits) -> api_common::Api {
    start_with(
        CONFIG,
        Setup {
            limits: Some(limits),
            ..Setup::default()
        },
    )
    .await
}

#[tokio::test]
async fn a_non_loopback_address_needs_a_token() {
    let e = api::bind("0.0.0.0:0".parse().unwrap(), None)
        .await
        .err()
        .expect("bound 0.0.0.0 without a token");
    assert!(matches!(e, ListenError::NeedsToken(_)), "{e}");
    assert!(e.to_string().contains("bigbro.api.token_file"), "{e}");
    // Loopback needs none.
    assert!(api::bind("127.0.0.1:0".parse().unwrap(), None)
        .await
        .is_ok());
}

#[tokio::test]
async fn changes_need_the_bearer_token_and_reads_do_not() {
    let api = start_with(
        CONFIG,
        Setup {
            token: Some(token()),
            ..Setup::default()
        },
    )
    .await;
    let good = format!("Bearer {TOKEN}");
    let wrong = format!("Bearer {TOKEN}x");

    // No token: 401 with a challenge, in the format of the route.
    let r = request(api.addr, "PUT", "/cluster/web", &[], b"").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"bigbro\"")
    );
    assert!(
        r.text().contains("needs `Authorization: Bearer <token>`"),
        "{}",
        r.text()
    );
    let r = request(api.addr, "POST", "/api/v1/reload", &[], b"").await;
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (401, "token_required".into())
    );
    // Wrong token, or another scheme: refused.
    for auth in [wrong.as_str(), "Basic dXNlcjpwYXNz", "Bearer", TOKEN] {
        let r = request(
            api.addr,
            "DELETE",
            "/cluster/web",
            &[("Authorization", auth)],
            b"",
        )
        .await;
        assert_eq!(r.status, 401, "{auth}");
    }
    let r = request(
        api.addr,
        "PUT",
        "/cluster/web",
        &[("Authorization", &wrong)],
        b"",
    )
    .await;
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"bigbro\", error=\"invalid_token\"")
    );
    assert!(!r.text().contains(TOKEN), "the answer quotes the token");
    assert_eq!(
        api.fake.kernel.save(),
        "",
        "a refused request changed the kernel"
    );

    // Reads need nothing (pacemaker's monitor and litmus_paper send no token).
    assert_eq!(
        request(api.addr, "GET", "/cluster/web", &[], b"")
            .await
            .status,
        200
    );
    assert_eq!(
        request(api.addr, "GET", "/metrics", &[], b"").await.status,
        200
    );
    assert_eq!(
        request(api.addr, "GET", "/api/v1/clusters", &[], b"")
            .await
            .status,
        200
    );

    // The right token: done.
    let r = request(
        api.addr,
        "PUT",
        "/cluster/web",
        &[("Authorization", &good)],
        b"",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    let r = request(
        api.addr,
        "PUT",
        "/cluster/web",
        &[("authorization", &format!("bearer {TOKEN}"))],
        b"",
    )
    .await;
    assert_eq!(r.status, 304, "the scheme is case-insensitive");
}

/// A `bigbro daemon` process whose stderr is collected.
struct Daemon {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Daemon {
    fn spawn(args: &[&str]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bigbro"))
            .args(args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run bigbro daemon");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Waits for a log line containing `needle` (at most 20 s).
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no log line with {needle:?} ({e}); log:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Waits for the process to end and returns its whole log.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().expect("wait for bigbro");
        self.log.extend(self.lines.iter());
        (status.code(), self.log.join("\n"))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_daemon_keeps_its_token_out_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let config = dir.path().join("bigbro.yml");
    let port = free_port();
    std::fs::write(
        &config,
        format!(
            "bigbro:\n  api:\n    listen: 127.0.0.1:{port}\n    token_file: {}\n{CONFIG}",
            token_file.display()
        ),
    )
    .unwrap();
    let mut daemon = Daemon::spawn(&["daemon", "-c", config.to_str().unwrap()]);
    let line = daemon.wait_for("HTTP API listening");
    assert!(line.contains("token=true"), "{line}");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let wrong = "Bearer wrong-token-that-must-not-be-logged";
    let r = request(
        addr,
        "PUT",
        "/cluster/web",
        &[("Authorization", wrong)],
        b"",
    )
    .await;
    assert_eq!(r.status, 401);
    daemon.wait_for("wrong bearer token");
    let r = request(
        addr,
        "PUT",
        "/cluster/web",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        b"",
    )
    .await;
    // The host kernel has no IPVS: the daemon says so (500), but the token was accepted.
    assert_ne!(r.status, 401, "{}", r.text());
    daemon.wait_for("path=/cluster/web");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (code, log) = daemon.finish();
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains(TOKEN), "the token is in the log:\n{log}");
    assert!(
        !log.contains("wrong-token-that-must"),
        "a presented token is in the log:\n{log}"
    );
}

#[tokio::test]
async fn the_daemon_refuses_to_listen_openly_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bigbro.yml");
    std::fs::write(&config, CONFIG).unwrap();
    // big_brother's -b/-p flags: 0.0.0.0 is refused before anything is bound.
    let daemon = Daemon::spawn(&[
        "daemon",
        "-c",
        config.to_str().unwrap(),
        "-b",
        "0.0.0.0",
        "-p",
        "1",
    ]);
    let (code, log) = daemon.finish();
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("would listen on 0.0.0.0:1") && log.contains("token_file"),
        "{log}"
    );

    // A token file holding a weak token: refused too, without echoing it.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "hunter2\n").unwrap();
    std::fs::write(
        &config,
        format!(
            "bigbro:\n  api:\n    token_file: {}\n{CONFIG}",
            token_file.display()
        ),
    )
    .unwrap();
    let daemon = Daemon::spawn(&[
        "daemon",
        "-c",
        config.to_str().unwrap(),
        "-p",
        &free_port().to_string(),
    ]);
    let (code, log) = daemon.finish();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("7 characters long"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
}

fn quick_limits() -> Limits {
    Limits {
        header_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        ..Limits::default()
    }
}

#[tokio::test]
async fn oversized_heads_and_too_many_headers_get_431() {
    let api = start(CONFIG).await;
    let big = "x".repeat(20_000);
    let r = request(api.addr, "GET", "/", &[("X-Big", &big)], b"").await;
    assert_eq!(r.status, 431);
    let many: Vec<(String, String)> = (0..100).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = request(api.addr, "PUT", "/cluster/web", &refs, b"").await;
    assert_eq!(r.status, 431);
    assert_eq!(api.fake.kernel.save(), "");
}

/// Reads until the server closes the connection; returns what it sent and how long it took.
async fn until_closed(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got))
        .await
        .expect("the server closes the connection within 10 s")
        .ok();
    (got, started.elapsed())
}

#[tokio::test]
async fn a_slow_head_or_an_idle_connection_is_closed_after_the_deadline() {
    let api = start_limited(quick_limits()).await;
    // Half a request line, then nothing.
    let mut slow = TcpStream::connect(api.addr).await.unwrap();
    slow.write_all(b"GET /cluster/web HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (_, took) = until_closed(&mut slow).await;
    assert!(took < Duration::from_secs(5), "closed only after {took:?}");

    // A kept-alive connection that goes quiet after one request.
    let mut idle = TcpStream::connect(api.addr).await.unwrap();
    idle.write_all(b"GET /cluster/web/status HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (got, took) = until_closed(&mut idle).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(
        text.ends_with("Running: false\nCombinedWeight: 0\n"),
        "{text}"
    );
    assert!(
        took < Duration::from_secs(5),
        "idle connection kept {took:?}"
    );
}

#[tokio::test]
async fn a_slow_body_gets_408_and_changes_nothing() {
    let api = start_limited(quick_limits()).await;
    assert_eq!(api.put("/cluster/web").await.status, 200);
    let mut s = TcpStream::connect(api.addr).await.unwrap();
    s.write_all(
        b"PUT /api/v1/clusters/web/nodes/10.0.0.1/override HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"force\": \"down\"",
    )
    .await
    .unwrap();
    let (got, _) = until_closed(&mut s).await;
    let r = api_common::parse(&got, false);
    assert_eq!(r.status, 408, "{}", r.text());
    assert_eq!(r.json()["code"], "body_timeout");
    let node = api.get("/api/v1/clusters/web/nodes/10.0.0.1").await.json();
    assert_eq!(node["override"], serde_json::Value::Null);
}

#[tokio::test]
async fn connections_beyond_the_bound_wait_for_a_free_slot() {
    let api = start_limited(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    // Two clients hold both slots and say nothing (the head deadline is 10 s here).
    let hog1 = TcpStream::connect(api.addr).await.unwrap();
    let hog2 = TcpStream::connect(api.addr).await.unwrap();
    // They connected first, so they are first in the accept queue and take both slots.
    let third = tokio::spawn(request(api.addr, "GET", "/cluster/web/status", &[], b""));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served while two held the slots"
    );
    drop(hog1);
    let r = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a slot was free")
        .unwrap();
    assert_eq!(r.status, 200);
    drop(hog2);
}

#[tokio::test]
async fn path_tricks_find_nothing_and_change_nothing() {
    let api = start(CONFIG).await;
    for (path, status) in [
        ("/cluster/web/../db", 404),
        ("//cluster/web", 404),
        ("/cluster/we%2Fb", 404),
        ("/cluster/web%00", 404),
        ("/cluster/%ZZ", 404),
        ("/api/v1/clusters/web/nodes/10.0.0.1%2F32/override", 400),
    ] {
        let raw = format!(
            "PUT {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
        let r = exchange(api.addr, raw.as_bytes(), false).await;
        assert_eq!(
            r.status,
            status,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    assert_eq!(
        api.fake.kernel.save(),
        "",
        "a trick path changed the kernel"
    );
    // A request line that is not HTTP at all.
    let r = exchange(api.addr, b"HELLO\r\n\r\n", false).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected() {
    let api = start_limited(Limits {
        write_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    // A small receive buffer and thousands of pipelined requests whose answers are never
    // read: the server's writes stall as soon as the buffers are full.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(api.addr).await.unwrap();
    let one = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    let pipelined: Vec<u8> = one.iter().copied().cycle().take(one.len() * 5000).collect();
    let (mut rd, mut wr) = stream.split();
    // The server may stop reading our requests too, once it stops writing: ignore how far
    // the sending gets.
    let _ = tokio::time::timeout(Duration::from_secs(5), wr.write_all(&pipelined)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Now read: the connection ends (closed or reset) long before 5000 answers.
    let mut got = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut got)).await;
    assert!(ended.is_ok(), "the stalled connection was kept open");
    let answers = String::from_utf8_lossy(&got)
        .matches("HTTP/1.1 200 OK")
        .count();
    assert!(
        answers < 5000,
        "all {answers} answers were written to a client that did not read"
    );
    // The server is still serving others.
    assert_eq!(api.get("/cluster/web/status").await.status, 200);
}

/// Sends the head of a node override with `Expect: 100-continue` and waits for the
/// server's `100 Continue`: from then on the request is in flight (its handler is reading
/// the body).
async fn override_in_flight(api: &api_common::Api, body_len: usize) -> TcpStream {
    let mut s = TcpStream::connect(api.addr).await.unwrap();
    let head = format!(
        "PUT /api/v1/clusters/web/nodes/10.0.0.1/override HTTP/1.1\r\nHost: x\r\n\
         Connection: close\r\nContent-Type: application/json\r\n\
         Expect: 100-continue\r\nContent-Length: {body_len}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("100 Continue within 10 s")
            .unwrap();
        assert_ne!(n, 0, "closed before 100 Continue: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"HTTP/1.1 100 Continue\r\n\r\n");
    s
}

/// Waits until the API refuses new connections (its listening socket is closed).
async fn until_refused(api: &api_common::Api) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(api.addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn shutdown_answers_the_request_in_flight_and_refuses_new_ones() {
    let mut api = start(CONFIG).await;
    assert_eq!(api.put("/cluster/web").await.status, 200);
    let body = br#"{"force": "down", "reason": "in flight at shutdown"}"#;
    let mut s = override_in_flight(&api, body.len()).await;
    // An idle kept-alive connection is closed at once, unanswered.
    let mut idle = TcpStream::connect(api.addr).await.unwrap();
    idle.write_all(b"GET /cluster/web/status HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 64];
    let n = idle.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200 OK"));

    api.begin_shutdown();
    until_refused(&api).await;
    // The idle connection is closed at once (its own deadline is 10 s, the grace 5 s).
    let (_, took) = until_closed(&mut idle).await;
    assert!(
        took < Duration::from_secs(1),
        "idle connection kept {took:?}"
    );
    // The rest of the body comes a while later (a slow client, not a synchronisation):
    // the grace period covers it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The listening socket is gone, yet the request in flight gets its whole answer and
    // takes effect.
    s.write_all(body).await.unwrap();
    let (got, _) = until_closed(&mut s).await;
    let r = api_common::parse(&got, false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["override"]["reason"], "in flight at shutdown");
    let drained = api.drained().await;
    assert_eq!(drained.cut, 0, "{drained:?}");
    assert!(drained.open >= 1, "{drained:?}");
    let policy = serde_json::to_string(&api.handle().policy().await.unwrap()).unwrap();
    assert!(
        policy.contains("in flight at shutdown"),
        "the override did not take effect: {policy}"
    );
}

#[tokio::test]
async fn a_slow_client_cannot_hold_shutdown_beyond_the_grace_period() {
    let grace = Duration::from_millis(500);
    let mut api = start_limited(Limits {
        shutdown_grace: grace,
        // Without the grace period, the slow body would hold its connection this long.
        body_timeout: Duration::from_secs(20),
        header_timeout: Duration::from_secs(20),
        ..Limits::default()
    })
    .await;
    assert_eq!(api.put("/cluster/web").await.status, 200);
    // Half a head, and a body that never comes. The head's connection is accepted before
    // the body's (one accept loop, in order), so by the body's `100 Continue` both are.
    let mut slow_head = TcpStream::connect(api.addr).await.unwrap();
    slow_head
        .write_all(b"GET /cluster/web HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut slow_body = override_in_flight(&api, 100).await;
    slow_body.write_all(b"{\"force\": ").await.unwrap();

    let started = Instant::now();
    api.begin_shutdown();
    let drained = api.drained().await;
    let took = started.elapsed();
    assert!(
        took >= grace,
        "shutdown did not wait for the request: {took:?}"
    );
    assert!(
        took < grace + Duration::from_secs(3),
        "a slow client held the shutdown for {took:?}"
    );
    // Both: hyper ends a connection gracefully only between requests, not mid-head.
    assert_eq!(drained, Drained { open: 2, cut: 2 });
    // The slow body's connection is closed without an answer, and nothing changed.
    let (got, _) = until_closed(&mut slow_body).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    let (got, _) = until_closed(&mut slow_head).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
}
