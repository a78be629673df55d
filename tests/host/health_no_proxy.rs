//! No proxy environment variable may reroute a health probe. The test runs in a process of
//! its own (tests/support/own_process.rs), so setting the process environment races with
//! no other test of the suite: it points every proxy variable at a dead address, then
//! probes a real loopback server and checks the server itself got an origin-form request.

use std::time::Duration;

use bigbro::health::{probe, ProbeKind, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[test]
fn proxy_variables_are_ignored() {
    crate::own_process::run(
        module_path!(),
        "proxy_variables_are_ignored",
        check_proxy_variables_are_ignored,
    );
}

fn check_proxy_variables_are_ignored() {
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        // Port 1 on loopback: nothing listens, so a probe sent there would fail.
        std::env::set_var(var, "http://127.0.0.1:1");
    }
    std::env::remove_var("NO_PROXY");
    std::env::remove_var("no_proxy");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut requests = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    assert!(n > 0, "client closed early");
                    req.extend_from_slice(&buf[..n]);
                }
                s.write_all(b"HTTP/1.1 200 OK\r\nX-Health: 77\r\nContent-Length: 0\r\n\r\n")
                    .await
                    .unwrap();
                requests.push(String::from_utf8(req).unwrap());
            }
            requests
        });
        let litmus = Target::new(ProbeKind::Litmus, addr.ip(), addr.port(), "/svc/status").unwrap();
        assert_eq!(probe(&litmus, Duration::from_secs(5)).await, Ok(77));
        let http = Target::new(ProbeKind::Http, addr.ip(), addr.port(), "/svc/status").unwrap();
        assert_eq!(probe(&http, Duration::from_secs(5)).await, Ok(100));
        for req in server.await.unwrap() {
            assert!(req.starts_with("GET /svc/status HTTP/1.1\r\n"), "{req}");
        }
    });
}
