//! Hostile health endpoints (docs/RELIABILITY.md), all at once, under the real `health::ProbeScheduler` and
//! `NetProber`, on loopback: a backend that hangs after its headers, trickles one byte a
//! second, sends 10 MB, speaks invalid HTTP, speaks TLS on the plain port, resets, redirects
//! to itself, or sends a thousand headers costs only its own timeout and its own node's
//! health, while healthy neighbours probed by the same scheduler keep their schedule.
//!
//! The single-probe behaviour of most of these is in tests/host/health_probes.rs
//! (`hang_after_headers`, `trickled_headers_cost_only_the_timeout`,
//! `ten_megabyte_body_is_not_read`, `garbage_is_not_http`, `reset_by_the_backend`,
//! `redirects_are_not_followed`, `huge_headers_are_refused`,
//! `a_hung_backend_does_not_delay_its_neighbours`); this file adds TLS on a plain port, a
//! redirect loop, a thousand headers, a real one-byte-a-second trickle, and every one of them
//! in one scheduler next to healthy neighbours. Timeouts are real (sockets do not run on
//! tokio's paused clock); every wait is bounded.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bigbro::health::{
    probe, NetProber, Phase, ProbeError, ProbeResult, ProbeScheduler, ProbeSettings, Sample, Target,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// What an endpoint does once it has read the probe's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    /// A litmus answer with `X-Health: 90`.
    Healthy,
    /// Says nothing until the prober gives up.
    HangBeforeAnswer,
    /// A 200 head announcing 100 body bytes, 10 of them, then nothing.
    HangAfterHeaders,
    /// A healthy answer, one byte a second.
    TrickleOneByteASecond,
    /// A 200 head and a 10 MB body without a health value in its first 64 KiB.
    TenMegabytes,
    /// A status line and then a header line without a colon.
    InvalidHttp,
    /// What a TLS server sends to a client that does not start with a ClientHello: a fatal
    /// handshake_failure alert, then it closes.
    TlsAlert,
    /// The start of a TLS ServerHello record, then silence.
    TlsServerHello,
    /// Resets the connection (SO_LINGER 0).
    Reset,
    /// `302 Found` to its own URL, every time.
    RedirectLoop,
    /// 1000 headers (about 14 KiB, under the 16 KiB limit), the last one `X-Health: 77`.
    ThousandHeaders,
    /// 1000 headers of 40 bytes: over the limit.
    ThousandLongHeaders,
}

/// What the prober must make of each behaviour.
fn expected(b: Behaviour, timeout: Duration, result: &ProbeResult) -> bool {
    let timed_out = |phase| *result == Err(ProbeError::Timeout { timeout, phase });
    match b {
        Behaviour::Healthy => *result == Ok(90),
        Behaviour::ThousandHeaders => *result == Ok(77),
        Behaviour::HangBeforeAnswer => timed_out(Phase::Headers),
        Behaviour::HangAfterHeaders => timed_out(Phase::Body),
        Behaviour::TrickleOneByteASecond => timed_out(Phase::Headers),
        Behaviour::TenMegabytes => *result == Err(ProbeError::BodyTooLarge { limit: 64 * 1024 }),
        Behaviour::InvalidHttp => {
            *result == Err(ProbeError::Malformed("bad header line \"Broken\"".into()))
        }
        Behaviour::TlsAlert | Behaviour::TlsServerHello => {
            matches!(result, Err(ProbeError::Malformed(m)) if m.starts_with("it begins with"))
        }
        Behaviour::Reset => *result == Err(ProbeError::Reset),
        Behaviour::RedirectLoop => {
            *result
                == Err(ProbeError::Status {
                    status: 302,
                    wanted: "exactly 200",
                })
        }
        Behaviour::ThousandLongHeaders => {
            *result == Err(ProbeError::HeadersTooLarge { limit: 16 * 1024 })
        }
    }
}

/// Connection counts of one endpoint.
#[derive(Default)]
struct Counts {
    accepted: AtomicUsize,
    open: AtomicUsize,
    max_open: AtomicUsize,
    /// Signalled each time a connection ends.
    closed: Notify,
}

struct Endpoint {
    behaviour: Behaviour,
    addr: SocketAddr,
    counts: Arc<Counts>,
}

impl Endpoint {
    fn target(&self) -> Target {
        Target::litmus(self.addr.ip(), self.addr.port(), "/app/status").unwrap()
    }
}

/// Starts an endpoint on 127.0.0.1 with its own listener.
async fn endpoint(behaviour: Behaviour) -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            c.accepted.fetch_add(1, Ordering::SeqCst);
            let open = c.open.fetch_add(1, Ordering::SeqCst) + 1;
            c.max_open.fetch_max(open, Ordering::SeqCst);
            let c = c.clone();
            tokio::spawn(async move {
                serve(stream, behaviour, addr).await;
                c.open.fetch_sub(1, Ordering::SeqCst);
                c.closed.notify_one();
            });
        }
    });
    Endpoint {
        behaviour,
        addr,
        counts,
    }
}

/// Reads the request head, then behaves.
async fn serve(mut s: TcpStream, behaviour: Behaviour, addr: SocketAddr) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let healthy = b"HTTP/1.1 200 OK\r\nX-Health: 90\r\nContent-Length: 0\r\n\r\n";
    match behaviour {
        Behaviour::Healthy => {
            let _ = s.write_all(healthy).await;
        }
        Behaviour::HangBeforeAnswer => until_closed(s).await,
        Behaviour::HangAfterHeaders => {
            let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHealth: 50";
            let _ = s.write_all(head).await;
            until_closed(s).await
        }
        Behaviour::TrickleOneByteASecond => {
            for b in healthy {
                if s.write_all(&[*b]).await.is_err() {
                    return;
                }
                // Stop at once when the prober gives up (a read sees its FIN).
                let mut probe_gone = [0u8; 1];
                let gap = tokio::time::sleep(Duration::from_secs(1));
                tokio::select! {
                    _ = gap => {}
                    _ = s.read(&mut probe_gone) => return,
                }
            }
        }
        Behaviour::TenMegabytes => {
            let mut body = vec![b'x'; 10 * 1024 * 1024];
            body[70_000..70_010].copy_from_slice(b"Health: 99");
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&body).await;
        }
        Behaviour::InvalidHttp => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nBroken\r\n\r\n").await;
        }
        Behaviour::TlsAlert => {
            // TLS record: alert (21), TLS 1.0 record version, length 2, fatal (2),
            // handshake_failure (40).
            let _ = s
                .write_all(&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28])
                .await;
        }
        Behaviour::TlsServerHello => {
            // Handshake record (22), TLS 1.2, length 90; ServerHello (2), length 86, version.
            let mut hello = vec![
                0x16, 0x03, 0x03, 0x00, 0x5a, 0x02, 0x00, 0x00, 0x56, 0x03, 0x03,
            ];
            hello.extend_from_slice(&[0xab; 32]); // random
            let _ = s.write_all(&hello).await;
            until_closed(s).await
        }
        Behaviour::Reset => {
            let _ = s.set_zero_linger();
            drop(s);
        }
        Behaviour::RedirectLoop => {
            let answer = format!(
                "HTTP/1.1 302 Found\r\nLocation: http://{addr}/app/status\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = s.write_all(answer.as_bytes()).await;
        }
        Behaviour::ThousandHeaders | Behaviour::ThousandLongHeaders => {
            let pad = if behaviour == Behaviour::ThousandHeaders {
                ""
            } else {
                "-padding-padding-padding"
            };
            let mut answer = String::from("HTTP/1.1 200 OK\r\n");
            for i in 0..999 {
                answer.push_str(&format!("X-{i:03}{pad}: v\r\n"));
            }
            answer.push_str("X-Health: 77\r\nContent-Length: 0\r\n\r\n");
            let _ = s.write_all(answer.as_bytes()).await;
        }
    }
}

/// Holds the connection until the prober closes it.
async fn until_closed(mut s: TcpStream) {
    let mut buf = [0u8; 256];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

const HOSTILE: [Behaviour; 11] = [
    Behaviour::HangBeforeAnswer,
    Behaviour::HangAfterHeaders,
    Behaviour::TrickleOneByteASecond,
    Behaviour::TenMegabytes,
    Behaviour::InvalidHttp,
    Behaviour::TlsAlert,
    Behaviour::TlsServerHello,
    Behaviour::Reset,
    Behaviour::RedirectLoop,
    Behaviour::ThousandHeaders,
    Behaviour::ThousandLongHeaders,
];

/// A loaded 2-core machine's allowance for a timer or a loopback answer being late.
const SLACK: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_endpoint_costs_only_its_own_timeout_and_health() {
    let settings = ProbeSettings {
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(400),
    };
    let mut endpoints = Vec::new();
    for _ in 0..3 {
        endpoints.push(endpoint(Behaviour::Healthy).await);
    }
    for b in HOSTILE {
        endpoints.push(endpoint(b).await);
    }
    let (tx, mut rx) = mpsc::channel::<Sample>(1024);
    let mut scheduler = ProbeScheduler::with_seed(NetProber::default(), tx, 12);
    scheduler.sync(endpoints.iter().map(|e| (e.target(), settings)));

    // Seven probes of every target: the first starts within one interval, so about 8 s.
    const PROBES: usize = 7;
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); endpoints.len()];
    let gathered = tokio::time::timeout(Duration::from_secs(30), async {
        while samples.iter().any(|s| s.len() < PROBES) {
            let sample = rx.recv().await.expect("the scheduler stopped");
            let i = endpoints
                .iter()
                .position(|e| e.target() == sample.target)
                .unwrap();
            samples[i].push(sample);
        }
    })
    .await;
    let counts: Vec<String> = samples.iter().map(|s| s.len().to_string()).collect();
    assert!(
        gathered.is_ok(),
        "samples per target after 30 s: {counts:?}"
    );
    drop(scheduler);

    for (e, samples) in endpoints.iter().zip(&samples) {
        let who = format!("{:?} ({})", e.behaviour, e.addr);
        for s in samples {
            assert!(
                expected(e.behaviour, settings.timeout, &s.result),
                "{who}: unexpected result {:?}",
                s.result
            );
            // Its own timeout at most: the prober never waits longer than it was told.
            assert!(
                s.latency <= settings.timeout + SLACK,
                "{who}: a probe took {:?}",
                s.latency
            );
        }
        // Every probe started on its grid (first + k × interval), none skipped, none
        // late by more than the slack: hostile or healthy, each keeps its own schedule.
        let first = samples[0].started;
        for (k, s) in samples.iter().enumerate() {
            let due = first + settings.interval * k as u32;
            assert!(
                s.started + SLACK >= due && s.started <= due + SLACK,
                "{who}: probe {k} started {:?} after its tick",
                s.started.saturating_duration_since(due)
            );
        }
        // One probe at a time, and no retries or redirects followed: one connection per
        // probe (the last may still have been under way when the scheduler stopped).
        let accepted = e.counts.accepted.load(Ordering::SeqCst);
        assert!(
            (samples.len()..=samples.len() + 1).contains(&accepted),
            "{who}: {accepted} connections for {} probes",
            samples.len()
        );
        assert_eq!(e.counts.max_open.load(Ordering::SeqCst), 1, "{who}");
    }
}

/// Probes `target` once, returning the result and how long it took.
async fn timed(target: &Target, timeout: Duration) -> (ProbeResult, Duration) {
    let start = Instant::now();
    (probe(target, timeout).await, start.elapsed())
}

#[tokio::test]
async fn tls_on_the_plain_port_is_recognised_at_once() {
    for b in [Behaviour::TlsAlert, Behaviour::TlsServerHello] {
        let e = endpoint(b).await;
        let (result, took) = timed(&e.target(), Duration::from_secs(5)).await;
        assert!(
            expected(b, Duration::from_secs(5), &result),
            "{b:?}: {result:?}"
        );
        let text = result.unwrap_err().to_string();
        assert!(
            text.starts_with("the answer is not HTTP/1.x: it begins with"),
            "{text}"
        );
        // Not the 5 s timeout: the first bytes are enough to tell.
        assert!(took < Duration::from_secs(2), "{b:?}: {took:?}");
    }
}

#[tokio::test]
async fn a_redirect_loop_is_one_connection_per_probe() {
    let e = endpoint(Behaviour::RedirectLoop).await;
    for n in 1..=3 {
        let (result, took) = timed(&e.target(), Duration::from_secs(5)).await;
        assert!(
            expected(e.behaviour, Duration::from_secs(5), &result),
            "{result:?}"
        );
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert_eq!(e.counts.accepted.load(Ordering::SeqCst), n);
    }
}

#[tokio::test]
async fn a_thousand_headers_are_read_and_the_health_found() {
    let e = endpoint(Behaviour::ThousandHeaders).await;
    assert_eq!(probe(&e.target(), Duration::from_secs(5)).await, Ok(77));
    let e = endpoint(Behaviour::ThousandLongHeaders).await;
    assert_eq!(
        probe(&e.target(), Duration::from_secs(5)).await,
        Err(ProbeError::HeadersTooLarge { limit: 16 * 1024 })
    );
}

#[tokio::test]
async fn one_byte_a_second_costs_exactly_the_timeout() {
    let e = endpoint(Behaviour::TrickleOneByteASecond).await;
    let timeout = Duration::from_millis(2500);
    let (result, took) = timed(&e.target(), timeout).await;
    assert_eq!(
        result,
        Err(ProbeError::Timeout {
            timeout,
            phase: Phase::Headers
        })
    );
    assert!(took >= timeout && took < timeout + SLACK, "{took:?}");
    // The connection is given up, not left open: the server sees it close.
    let closed = tokio::time::timeout(Duration::from_secs(3), e.counts.closed.notified()).await;
    assert!(closed.is_ok(), "the prober left the connection open");
    assert_eq!(e.counts.open.load(Ordering::SeqCst), 0);
}
