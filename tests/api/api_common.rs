//! Helpers shared by the API suite (tests/api/): a daemon on in-memory fakes (the real
//! controller, weight policy and reconciler over a fake IPVS table and a scripted prober)
//! behind the real HTTP API on a loopback socket, and a raw HTTP/1.1 client that shows
//! status, headers and body bytes exactly as sent.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bigbro::api::{self, Drained, Limits, Token};
use bigbro::daemon::testing::{spawn_fake_with, Fake};
use bigbro::daemon::{ClusterStatus, Handle};
use bigbro::health::Target;
use bigbro::reconcile::FakeKernel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Two clusters: `web` (fwmark 7, two nodes) and `db` (fwmark 8, one node). No ramp, quick
/// probes, so weights follow health within a fraction of a second. One file for every test
/// that wants "a small two-cluster config" (the status page's test adds a node and a ramp
/// to its own copy, tests/api/ui.rs).
pub const CONFIG: &str = include_str!("../fixtures/two_clusters.yml");

pub fn web1() -> Target {
    Target::litmus("10.0.0.1".parse().unwrap(), 9001, "/web/status").unwrap()
}
pub fn web2() -> Target {
    Target::litmus("10.0.0.2".parse().unwrap(), 9001, "/web/status").unwrap()
}

/// A token long enough to be accepted.
pub const TOKEN: &str = "s3cr3t-t0ken-for-tests-0123456789";

/// A fake daemon served over HTTP on 127.0.0.1.
pub struct Api {
    pub addr: SocketAddr,
    pub fake: Fake,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    stop: CancellationToken,
    server: JoinHandle<Drained>,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.server.abort();
        self.fake.task.abort();
    }
}

/// Options for [`start_with`].
#[derive(Default)]
pub struct Setup {
    pub token: Option<Token>,
    pub limits: Option<Limits>,
    pub kernel: Option<FakeKernel>,
}

pub async fn start(yaml: &str) -> Api {
    start_with(yaml, Setup::default()).await
}

pub async fn start_with(yaml: &str, setup: Setup) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bigbro.yml");
    std::fs::write(&config, yaml).unwrap();
    let fake = spawn_fake_with(&config, setup.kernel.unwrap_or_default())
        .unwrap_or_else(|e| panic!("test config refused:\n{e}"));
    let listener = api::bind("127.0.0.1:0".parse().unwrap(), setup.token)
        .await
        .unwrap();
    let listener = match setup.limits {
        Some(l) => listener.with_limits(l),
        None => listener,
    };
    let addr = listener.local_addr();
    let stop = CancellationToken::new();
    let server =
        tokio::spawn(listener.serve_until(fake.handle.clone(), stop.clone().cancelled_owned()));
    let api = Api {
        addr,
        fake,
        dir,
        config,
        stop,
        server,
    };
    // The daemon has taken over the kernel state once the first view is published.
    api.wait("the daemon's first view", |s| !s.is_empty()).await;
    api
}

impl Api {
    pub fn handle(&self) -> &Handle {
        &self.fake.handle
    }

    /// Begins the API's graceful shutdown (what SIGTERM does in the daemon).
    pub fn begin_shutdown(&self) {
        self.stop.cancel();
    }

    /// Waits for the API's shutdown to end (at most 30 s); what it found.
    pub async fn drained(&mut self) -> Drained {
        tokio::time::timeout(Duration::from_secs(30), &mut self.server)
            .await
            .expect("the API's shutdown ended within 30 s")
            .expect("the API task")
    }

    /// Waits (at most 10 s) until `cond` holds for the daemon's cluster statuses, woken by
    /// each published change.
    pub async fn wait(&self, what: &str, cond: impl Fn(&[ClusterStatus]) -> bool) {
        let mut handle = self.fake.handle.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let statuses = handle.statuses().await;
            if cond(&statuses) {
                return;
            }
            match tokio::time::timeout_at(deadline, handle.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("waiting for {what}: {e}"),
                Err(_) => panic!("waiting for {what}: not within 10 s; last: {statuses:#?}"),
            }
        }
    }

    /// Waits until cluster `name` runs with this combined weight.
    pub async fn wait_weight(&self, name: &str, combined: u64) {
        self.wait(&format!("{name} at combined weight {combined}"), |s| {
            s.iter()
                .any(|c| c.name.as_str() == name && c.running && c.combined_weight == combined)
        })
        .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path, &[], b"").await
    }
    pub async fn put(&self, path: &str) -> Reply {
        request(self.addr, "PUT", path, &[], b"").await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        request(self.addr, "DELETE", path, &[], b"").await
    }
    pub async fn post(&self, path: &str) -> Reply {
        request(self.addr, "POST", path, &[], b"").await
    }
    pub async fn send(&self, method: &str, path: &str, body: &str) -> Reply {
        request(
            self.addr,
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await
    }
}

/// An HTTP answer as received.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request on a new connection (`Connection: close`) and reads the whole answer.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "PUT" | "POST") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    exchange(addr, &raw, method == "HEAD").await
}

/// Writes `raw` bytes as they are and parses the answer.
pub async fn exchange(addr: SocketAddr, raw: &[u8], head_only: bool) -> Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect to the API");
    stream.write_all(raw).await.expect("send the request");
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .expect("answer within 10 s")
        .expect("read the answer");
    parse(&bytes, head_only)
}

/// Parses one HTTP/1.1 response (content-length or chunked; no body for HEAD/304).
pub fn parse(bytes: &[u8], head_only: bool) -> Reply {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(bytes)));
    let head = std::str::from_utf8(&bytes[..split]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &bytes[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if head_only || status == 304 || status == 204 {
        assert!(rest.is_empty(), "a body after a bodiless answer: {rest:?}");
        Vec::new()
    } else if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16)
                .unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}
