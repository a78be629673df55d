//! Health probes against real HTTP servers on loopback. Each server is a raw tokio
//! `TcpListener` written here, so every byte, pause, hang and reset is under the test's
//! control. Timeouts are real (sockets do not run on tokio's paused clock); every wait is
//! bounded by the probe's own timeout, and nothing sleeps to synchronise.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bigbro::health::{
    probe, NetProber, Phase, ProbeError, ProbeKind, ProbeResult, ProbeScheduler, ProbeSettings,
    Sample, Target,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Generous slack for a loaded 2-core machine: a timeout must strike within this of its time.
const SLACK: Duration = Duration::from_millis(1500);

struct Server {
    addr: SocketAddr,
    requests: mpsc::UnboundedReceiver<Vec<u8>>,
    connections: Arc<AtomicUsize>,
}

impl Server {
    fn target(&self, kind: ProbeKind, path: &str) -> Target {
        Target::new(kind, self.addr.ip(), self.addr.port(), path).unwrap()
    }
    fn litmus(&self) -> Target {
        self.target(ProbeKind::Litmus, "/app/status")
    }
    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads one request head (up to the blank line) from the client.
async fn read_request(s: &mut TcpStream) -> Vec<u8> {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 64 * 1024 {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    req
}

/// A server on `bind` whose every connection, once its request is read, is handed to
/// `handler`.
async fn serve_on<F, Fut>(bind: &str, handler: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, requests) = mpsc::unbounded_channel();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let (tx, handler) = (tx.clone(), handler.clone());
            tokio::spawn(async move {
                let req = read_request(&mut s).await;
                let _ = tx.send(req);
                handler(s).await;
            });
        }
    });
    Server {
        addr,
        requests,
        connections,
    }
}

async fn serve<F, Fut>(handler: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    serve_on("127.0.0.1:0", handler).await
}

/// A server that answers `bytes` and closes.
async fn answering(bytes: impl Into<Vec<u8>>) -> Server {
    let bytes: Arc<Vec<u8>> = Arc::new(bytes.into());
    serve(move |mut s| {
        let bytes = bytes.clone();
        async move {
            let _ = s.write_all(&bytes).await;
            let _ = s.shutdown().await;
        }
    })
    .await
}

/// A server that answers `bytes` and then holds the connection open forever.
async fn answering_then_hanging(bytes: &'static [u8]) -> Server {
    serve(move |mut s| async move {
        let _ = s.write_all(bytes).await;
        std::future::pending::<()>().await;
    })
    .await
}

/// Keeps the connection open and silent forever.
async fn hold_forever(s: TcpStream) {
    let _open = s;
    std::future::pending::<()>().await
}

/// Probes `target` with `timeout`, returning the result and how long it took.
async fn timed(target: &Target, timeout: Duration) -> (ProbeResult, Duration) {
    let start = Instant::now();
    let result = probe(target, timeout).await;
    (result, start.elapsed())
}

async fn litmus_answer(bytes: &str) -> ProbeResult {
    let server = answering(bytes).await;
    probe(&server.litmus(), Duration::from_secs(5)).await
}

fn assert_timeout(got: (ProbeResult, Duration), timeout: Duration, phase: Phase) {
    assert_eq!(got.0, Err(ProbeError::Timeout { timeout, phase }));
    assert!(got.1 >= timeout, "gave up early: {:?}", got.1);
    assert!(got.1 < timeout + SLACK, "gave up late: {:?}", got.1);
}

// ---- parsing ----------------------------------------------------------------------------

#[tokio::test]
async fn header_wins_over_body() {
    let r = litmus_answer(
        "HTTP/1.1 200 OK\r\nX-Health: 61\r\nContent-Length: 36\r\n\r\nHealth: 20\nThis part is for people.\n",
    )
    .await;
    assert_eq!(r, Ok(61));
}

#[tokio::test]
async fn body_health_when_no_header() {
    let body =
        "Health: 59\nMeasured Health: 80\nDependency::HTTP(http://localhost/heartbeat): OK\n";
    let r = litmus_answer(&format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ))
    .await;
    assert_eq!(r, Ok(59));
    // big_brother's own stub server: HTTP/1.0, no length, body until close.
    assert_eq!(
        litmus_answer("HTTP/1.0 200 OK\r\n\r\nHealth: 87.5\n").await,
        Ok(87)
    );
    // A chunked body.
    let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHealt\r\n5\r\nh: 33\r\n0\r\n\r\n";
    assert_eq!(litmus_answer(chunked).await, Ok(33));
}

#[tokio::test]
async fn header_present_but_invalid_does_not_fall_back_to_the_body() {
    let r =
        litmus_answer("HTTP/1.1 200 OK\r\nX-Health: lots\r\nContent-Length: 10\r\n\r\nHealth: 50")
            .await;
    assert_eq!(r, Err(ProbeError::BadHealthHeader("lots".into())));
    let r =
        litmus_answer("HTTP/1.1 200 OK\r\nX-Health:\r\nContent-Length: 10\r\n\r\nHealth: 50").await;
    assert_eq!(r, Err(ProbeError::BadHealthHeader("".into())));
}

#[tokio::test]
async fn header_values_are_clamped_and_truncated() {
    let with = |v: &str| format!("HTTP/1.1 200 OK\r\nX-Health: {v}\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(litmus_answer(&with("-5")).await, Ok(0));
    assert_eq!(litmus_answer(&with("87.5")).await, Ok(87));
    assert_eq!(litmus_answer(&with("300")).await, Ok(300));
    assert_eq!(litmus_answer(&with("1000000")).await, Ok(65535));
    // Header names are case-insensitive.
    let lower = "HTTP/1.1 200 OK\r\nx-health: 12\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(litmus_answer(lower).await, Ok(12));
}

#[tokio::test]
async fn non_200_statuses_are_failures_whatever_the_body_says() {
    let r = litmus_answer(
        "HTTP/1.1 503 Service Unavailable\r\nX-Health: 19\r\nContent-Length: 10\r\n\r\nHealth: 19",
    )
    .await;
    assert_eq!(
        r,
        Err(ProbeError::Status {
            status: 503,
            wanted: "exactly 200"
        })
    );
    let r = litmus_answer("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n").await;
    assert_eq!(r.unwrap_err().code(), "status");
    let r = litmus_answer(
        "HTTP/1.1 404 Not Found\r\nX-Health: 0\r\nContent-Length: 9\r\n\r\nNOT FOUND",
    )
    .await;
    assert_eq!(
        r,
        Err(ProbeError::Status {
            status: 404,
            wanted: "exactly 200"
        })
    );
    // 204 is 2xx but not 200: litmus wants exactly 200.
    let r = litmus_answer("HTTP/1.1 204 No Content\r\nX-Health: 50\r\n\r\n").await;
    assert_eq!(
        r,
        Err(ProbeError::Status {
            status: 204,
            wanted: "exactly 200"
        })
    );
}

#[tokio::test]
async fn ok_without_any_health_is_a_failure() {
    let r = litmus_answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK").await;
    assert_eq!(r, Err(ProbeError::NoHealth));
    let r = litmus_answer("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
    assert_eq!(r, Err(ProbeError::NoHealth));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = answering(
        "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nX-Health: 100\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let r = probe(&server.litmus(), Duration::from_secs(5)).await;
    assert_eq!(
        r,
        Err(ProbeError::Status {
            status: 302,
            wanted: "exactly 200"
        })
    );
    let r = probe(&server.target(ProbeKind::Http, "/"), Duration::from_secs(5)).await;
    assert_eq!(
        r,
        Err(ProbeError::Status {
            status: 302,
            wanted: "2xx"
        })
    );
    assert_eq!(
        server.connections(),
        2,
        "one connection per probe, no second request"
    );
}

#[tokio::test]
async fn the_request_is_a_plain_origin_form_get() {
    let mut server = answering("HTTP/1.1 200 OK\r\nX-Health: 1\r\nContent-Length: 0\r\n\r\n").await;
    let target = server.target(ProbeKind::Litmus, "/svc/status?x=1");
    assert_eq!(probe(&target, Duration::from_secs(5)).await, Ok(1));
    let req = String::from_utf8(server.requests.recv().await.unwrap()).unwrap();
    let mut lines = req.split("\r\n");
    assert_eq!(lines.next(), Some("GET /svc/status?x=1 HTTP/1.1"));
    assert!(
        req.contains(&format!("\r\nHost: {}\r\n", server.addr)),
        "{req}"
    );
    assert!(req.contains("\r\nConnection: close\r\n"), "{req}");
}

#[tokio::test]
async fn ipv6_targets_work() {
    let mut server = serve_on("[::1]:0", |mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nX-Health: 44\r\nContent-Length: 0\r\n\r\n")
            .await;
    })
    .await;
    let target = server.litmus();
    assert!(target.addr().is_ipv6());
    assert_eq!(probe(&target, Duration::from_secs(5)).await, Ok(44));
    let req = String::from_utf8(server.requests.recv().await.unwrap()).unwrap();
    assert!(
        req.contains(&format!("\r\nHost: [::1]:{}\r\n", server.addr.port())),
        "{req}"
    );
}

// ---- http and tcp kinds -----------------------------------------------------------------

#[tokio::test]
async fn http_kind_takes_any_2xx() {
    for (answer, want) in [
        ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Ok(100)),
        ("HTTP/1.1 204 No Content\r\n\r\n", Ok(100)),
        (
            "HTTP/1.1 299 Whatever\r\nContent-Length: 0\r\n\r\n",
            Ok(100),
        ),
        ("HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", Err(500)),
        ("HTTP/1.1 301 Moved\r\nLocation: /\r\n\r\n", Err(301)),
    ] {
        let server = answering(answer).await;
        let r = probe(
            &server.target(ProbeKind::Http, "/health"),
            Duration::from_secs(5),
        )
        .await;
        let want = want.map_err(|status| ProbeError::Status {
            status,
            wanted: "2xx",
        });
        assert_eq!(r, want, "{answer:?}");
    }
}

#[tokio::test]
async fn tcp_kind_is_a_connect() {
    let server = answering_then_hanging(b"").await;
    let r = probe(&server.target(ProbeKind::Tcp, ""), Duration::from_secs(5)).await;
    assert_eq!(r, Ok(100));
    let closed = closed_port().await;
    let r = probe(&Target::tcp(LOCAL, closed).unwrap(), Duration::from_secs(5)).await;
    assert_eq!(r, Err(ProbeError::Refused));
}

// ---- failures ---------------------------------------------------------------------------

/// A port nothing listens on (bound, then released).
async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

#[tokio::test]
async fn refused() {
    let port = closed_port().await;
    let target = Target::litmus(LOCAL, port, "/").unwrap();
    let (r, took) = timed(&target, Duration::from_secs(5)).await;
    assert_eq!(r, Err(ProbeError::Refused));
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[tokio::test]
async fn connect_that_never_completes_times_out_while_connecting() {
    // A listener with a backlog of one that never accepts: once one connection fills the
    // queue, the kernel drops further SYNs, so our connect hangs.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..16 {
        let attempt = tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr));
        match attempt.await {
            Ok(Ok(s)) => fillers.push(s),
            _ => break,
        }
    }
    let timeout = Duration::from_millis(400);
    let target = Target::litmus(addr.ip(), addr.port(), "/").unwrap();
    assert_timeout(timed(&target, timeout).await, timeout, Phase::Connect);
    drop(listener);
}

#[tokio::test]
async fn hang_before_answering() {
    let server = serve(hold_forever).await;
    let timeout = Duration::from_millis(300);
    assert_timeout(
        timed(&server.litmus(), timeout).await,
        timeout,
        Phase::Headers,
    );
}

#[tokio::test]
async fn hang_after_headers() {
    // Everything a healthy answer needs is in the headers, but the announced body never
    // comes: an answer that does not finish within the timeout is a failure.
    let server = answering_then_hanging(
        b"HTTP/1.1 200 OK\r\nX-Health: 50\r\nContent-Length: 100\r\n\r\nHealth: 50",
    )
    .await;
    let timeout = Duration::from_millis(300);
    assert_timeout(timed(&server.litmus(), timeout).await, timeout, Phase::Body);
    // A 503 is known from its status line: no need to wait for its body.
    let server = answering_then_hanging(b"HTTP/1.1 503 No\r\nContent-Length: 100\r\n\r\n").await;
    let (r, took) = timed(&server.litmus(), Duration::from_secs(5)).await;
    assert_eq!(r.unwrap_err().code(), "status");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[tokio::test]
async fn slow_answers_within_the_timeout_count() {
    let server = serve(|mut s| async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nX-Health: 70\r\nContent-Length: 0\r\n\r\n")
            .await;
    })
    .await;
    let (r, took) = timed(&server.litmus(), Duration::from_secs(3)).await;
    assert_eq!(r, Ok(70));
    assert!(took >= Duration::from_millis(150), "{took:?}");
}

#[tokio::test]
async fn slow_answers_past_the_timeout_do_not() {
    let server = serve(|mut s| async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nX-Health: 70\r\nContent-Length: 0\r\n\r\n")
            .await;
    })
    .await;
    let timeout = Duration::from_millis(300);
    assert_timeout(
        timed(&server.litmus(), timeout).await,
        timeout,
        Phase::Headers,
    );
}

/// Writes `bytes` one at a time, `gap` apart, then forever nothing.
async fn trickle(mut s: TcpStream, bytes: &[u8], gap: Duration) {
    for b in bytes {
        if s.write_all(&[*b]).await.is_err() {
            return;
        }
        tokio::time::sleep(gap).await;
    }
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn trickled_headers_cost_only_the_timeout() {
    let server = serve(|s| async move {
        let answer = b"HTTP/1.1 200 OK\r\nX-Health: 90\r\nContent-Length: 0\r\n\r\n";
        trickle(s, answer, Duration::from_millis(50)).await;
    })
    .await;
    let timeout = Duration::from_millis(500);
    assert_timeout(
        timed(&server.litmus(), timeout).await,
        timeout,
        Phase::Headers,
    );
}

#[tokio::test]
async fn trickled_body_costs_only_the_timeout() {
    let server = serve(|mut s| async move {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
        let body = "Health: 90\n".repeat(1000);
        trickle(s, body.as_bytes(), Duration::from_millis(20)).await;
    })
    .await;
    let timeout = Duration::from_millis(500);
    assert_timeout(timed(&server.litmus(), timeout).await, timeout, Phase::Body);
}

/// A server sending a 10 MB answer; reports whether it managed to send it all.
async fn ten_megabytes(
    head: &'static str,
    first: &'static str,
) -> (Server, mpsc::UnboundedReceiver<bool>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = serve(move |mut s| {
        let tx = tx.clone();
        async move {
            let mut body = first.as_bytes().to_vec();
            body.resize(10 * 1024 * 1024, b'x');
            let answer = format!("{head}Content-Length: {}\r\n\r\n", body.len());
            let sent = async {
                s.write_all(answer.as_bytes()).await?;
                s.write_all(&body).await?;
                s.flush().await
            };
            let _ = tx.send(sent.await.is_ok());
        }
    })
    .await;
    (server, rx)
}

#[tokio::test]
async fn ten_megabyte_body_is_not_read() {
    let (server, mut sent) = ten_megabytes("HTTP/1.1 200 OK\r\n", "").await;
    let (r, took) = timed(&server.litmus(), Duration::from_secs(5)).await;
    assert_eq!(r, Err(ProbeError::BodyTooLarge { limit: 64 * 1024 }));
    assert!(took < Duration::from_secs(2), "{took:?}");
    // We stopped reading and closed: the server could not deliver its 10 MB.
    assert_eq!(sent.recv().await, Some(false));

    // With the health first, the first 64 KiB suffice; the rest is still not read.
    let (server, mut sent) = ten_megabytes("HTTP/1.1 200 OK\r\n", "Health: 42\n").await;
    assert_eq!(
        probe(&server.litmus(), Duration::from_secs(5)).await,
        Ok(42)
    );
    assert_eq!(sent.recv().await, Some(false));

    // With the header, the body is irrelevant and still capped.
    let (server, mut sent) = ten_megabytes("HTTP/1.1 200 OK\r\nX-Health: 9\r\n", "").await;
    assert_eq!(probe(&server.litmus(), Duration::from_secs(5)).await, Ok(9));
    assert_eq!(sent.recv().await, Some(false));
}

#[tokio::test]
async fn huge_headers_are_refused() {
    let mut answer = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..2000 {
        answer.extend_from_slice(format!("X-Pad-{i}: padding padding\r\n").as_bytes());
    }
    let server = answering(answer).await;
    let r = probe(&server.litmus(), Duration::from_secs(5)).await;
    assert_eq!(r, Err(ProbeError::HeadersTooLarge { limit: 16 * 1024 }));
}

#[tokio::test]
async fn reset_by_the_backend() {
    let server = serve(|s| async move {
        s.set_zero_linger().unwrap();
        drop(s);
    })
    .await;
    let (r, took) = timed(&server.litmus(), Duration::from_secs(5)).await;
    assert_eq!(r, Err(ProbeError::Reset));
    assert!(took < Duration::from_secs(1), "{took:?}");
    // Reset in the middle of a body.
    let server = serve(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHeal")
            .await;
        let _ = s.flush().await;
        s.set_zero_linger().unwrap();
        drop(s);
    })
    .await;
    let r = probe(&server.litmus(), Duration::from_secs(5)).await;
    assert!(
        matches!(r, Err(ProbeError::Reset | ProbeError::Truncated { .. })),
        "{r:?}"
    );
}

#[tokio::test]
async fn closed_without_an_answer() {
    let server = serve(|s| async move { drop(s) }).await;
    assert_eq!(
        probe(&server.litmus(), Duration::from_secs(5)).await,
        Err(ProbeError::Closed)
    );
    let server = answering("HTTP/1.1 200 OK\r\nX-Heal").await;
    assert_eq!(
        probe(&server.litmus(), Duration::from_secs(5)).await,
        Err(ProbeError::ClosedInHeaders { received: 23 })
    );
    let server = answering("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nHealth: 5").await;
    assert_eq!(
        probe(&server.litmus(), Duration::from_secs(5)).await,
        Err(ProbeError::Truncated {
            received: 9,
            expected: "50".into()
        })
    );
}

#[tokio::test]
async fn garbage_is_not_http() {
    let garbage: Vec<u8> = (0..600u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let server = answering(garbage).await;
    let r = probe(&server.litmus(), Duration::from_secs(5)).await;
    assert_eq!(r.as_ref().unwrap_err().code(), "malformed", "{r:?}");
    let r = litmus_answer("HTTP/1.1 OK 200\r\n\r\n").await;
    assert_eq!(
        r,
        Err(ProbeError::Malformed(
            "bad status line \"HTTP/1.1 OK 200\"".into()
        ))
    );
}

#[tokio::test]
async fn a_non_http_service_is_recognised_without_waiting() {
    // An SSH server speaks first and then waits for us: we must not wait for headers.
    let server = answering_then_hanging(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await;
    let (r, took) = timed(&server.litmus(), Duration::from_secs(5)).await;
    let err = r.unwrap_err();
    assert_eq!(err.code(), "malformed");
    assert!(err.to_string().contains("SSH-2.0"), "{err}");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

// ---- the scheduler over real sockets ----------------------------------------------------

#[tokio::test]
async fn a_hung_backend_does_not_delay_its_neighbours() {
    let hung = serve(hold_forever).await;
    let fine = answering("HTTP/1.1 200 OK\r\nX-Health: 80\r\nContent-Length: 0\r\n\r\n").await;
    let (hung_t, fine_t) = (hung.litmus(), fine.litmus());
    let settings = ProbeSettings {
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(150),
    };
    let (tx, mut rx) = mpsc::channel::<Sample>(256);
    let mut sched = ProbeScheduler::with_seed(NetProber::default(), tx, 7);
    sched.sync([(hung_t.clone(), settings), (fine_t.clone(), settings)]);

    // Wait (bounded) for ten samples of the healthy target.
    let mut fine_samples: Vec<Sample> = Vec::new();
    let mut hung_samples: Vec<Sample> = Vec::new();
    let collected = tokio::time::timeout(Duration::from_secs(10), async {
        while fine_samples.len() < 10 {
            let s = rx.recv().await.unwrap();
            if s.target == fine_t {
                fine_samples.push(s);
            } else {
                hung_samples.push(s);
            }
        }
    })
    .await;
    assert!(
        collected.is_ok(),
        "only {} samples of the healthy target",
        fine_samples.len()
    );
    for s in &fine_samples {
        assert_eq!(s.result, Ok(80));
        assert!(s.latency < Duration::from_millis(150), "{:?}", s.latency);
    }
    // Its probes stay on their own 200 ms grid although the neighbour hangs every time:
    // never delayed by the hang (upper bound), never doubled up (lower bound). A tick that
    // fires late under CPU load is followed by one on the grid, so the lower bound is half
    // an interval rather than a whole one (the exact grid is tested on the paused clock).
    for pair in fine_samples.windows(2) {
        let gap = pair[1].started - pair[0].started;
        assert!(
            gap >= Duration::from_millis(100) && gap < Duration::from_millis(600),
            "{gap:?}"
        );
    }
    assert!(!hung_samples.is_empty());
    for s in &hung_samples {
        assert_eq!(
            s.result,
            Err(ProbeError::Timeout {
                timeout: settings.timeout,
                phase: Phase::Headers
            })
        );
    }
    // The hung server sees one connection per probe, never two probes at once.
    drop(sched);
    assert!(hung.connections() <= hung_samples.len() + 1);
}
