//! The CLI client's transport: one HTTP/1.1 request to the local daemon over a fresh TCP
//! connection, on hyper's client connection (`hyper::client::conn::http1`), with the
//! address taken from `--url`.
//!
//! Hand-written rather than a general HTTP client because the daemon's API is plain HTTP
//! on a known address: no TLS, no proxy or environment lookup, no redirects, no connection
//! pool, no URL crate (a general client brought about 25 crates for IDNA and Unicode
//! tables the CLI never needs). It must never follow a redirect, use a proxy, send the
//! token anywhere but the `Authorization` header of the URL given, or wait without bound:
//! connecting is bounded by `CONNECT_TIMEOUT` and the whole exchange by
//! `REQUEST_TIMEOUT`. `https://` is refused before anything is sent: the API serves no
//! TLS, and saying so beats failing inside a library.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::auth::Token;
use super::error::quote;

/// Longest wait for the TCP connection to one address of the daemon.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a whole exchange: connecting, sending, and reading the whole answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why `--url` cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("--url {0} is https://, but the API is plain HTTP (the daemon serves no TLS): use http://, for example {example}", example = super::client::DEFAULT_URL)]
    Https(String),
    #[error("--url {0} must start with http:// (for example {example})", example = super::client::DEFAULT_URL)]
    NotHttp(String),
    #[error("--url {0} names no host (for example {example})", example = super::client::DEFAULT_URL)]
    NoHost(String),
    #[error("--url {0}: the port must be a number from 1 to 65535")]
    BadPort(String),
    #[error("--url {0}: user names and passwords are not sent; the API takes a bearer token (--token-file)")]
    UserInfo(String),
}

/// Where the daemon is: `http://HOST[:PORT][/PREFIX]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonUrl {
    /// The URL as given, without a trailing `/` (for messages).
    pub text: String,
    /// A name, an IPv4 address or a bracketed IPv6 address, as in the URL.
    host: String,
    port: u16,
    /// Prepended to every request path (empty, or starting with `/`).
    prefix: String,
}

impl DaemonUrl {
    pub fn parse(url: &str) -> Result<DaemonUrl, UrlError> {
        let text = url.trim_end_matches('/').to_string();
        let quoted = || quote(url);
        let scheme_end = url.find("://");
        let scheme = scheme_end.map(|i| url[..i].to_ascii_lowercase());
        let rest = match (scheme.as_deref(), scheme_end) {
            (Some("http"), Some(i)) => &url[i + 3..],
            (Some("https"), _) => return Err(UrlError::Https(quoted())),
            _ => return Err(UrlError::NotHttp(quoted())),
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(UrlError::UserInfo(quoted()));
        }
        // The port follows the last ':' outside an IPv6 literal's brackets.
        let (host, port) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                (&authority[..i], Some(&authority[i + 1..]))
            }
            _ => (authority, None),
        };
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| UrlError::BadPort(quoted()))?,
        };
        if host.is_empty() || host == "[]" {
            return Err(UrlError::NoHost(quoted()));
        }
        Ok(DaemonUrl {
            text,
            host: host.to_string(),
            port,
            prefix: prefix.to_string(),
        })
    }

    /// The `Host` header's value.
    fn authority(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The host for the resolver: an IPv6 literal without its brackets.
    fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// Why an exchange with the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("{host} has no address")]
    NoAddress { host: String },
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("connect to {addr}: no answer within {CONNECT_TIMEOUT:?}")]
    ConnectTimeout { addr: SocketAddr },
    #[error("no complete answer within {REQUEST_TIMEOUT:?}")]
    Timeout,
    #[error("the request failed: {0}")]
    Request(#[source] hyper::Error),
    /// The head arrived; the body was cut short.
    #[error("{0}")]
    Body(#[source] hyper::Error),
    #[error("a header value cannot be sent: {0}")]
    Header(#[from] hyper::header::InvalidHeaderValue),
}

impl TransportError {
    /// True when the daemon began its answer and broke it off (as opposed to not being
    /// reached at all).
    pub fn broke_off(&self) -> bool {
        matches!(self, TransportError::Body(_))
    }
}

/// An answer: its status and its whole body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

/// Sends one request (with a JSON body if given) and reads the whole answer, within
/// `REQUEST_TIMEOUT`.
pub async fn exchange(
    url: &DaemonUrl,
    token: Option<&Token>,
    method: Method,
    path: &str,
    json: Option<String>,
) -> Result<Response, TransportError> {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("{}{path}", url.prefix))
        .header(HOST, HeaderValue::from_str(&url.authority())?);
    if let Some(token) = token {
        let mut value = HeaderValue::from_str(&token.header_value())?;
        value.set_sensitive(true);
        request = request.header(AUTHORIZATION, value);
    }
    let body = match json {
        Some(json) => {
            request = request.header(CONTENT_TYPE, "application/json");
            Full::new(Bytes::from(json))
        }
        None => Full::new(Bytes::new()),
    };
    let request = request
        .body(body)
        .expect("a method, an origin-form path and valid header values make a request");
    let exchange = async {
        let stream = connect(url).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(TransportError::Request)?;
        // The connection's errors come back through `send_request` and the body; it ends
        // when `sender` is dropped and the answer is read.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let response = sender
            .send_request(request)
            .await
            .map_err(TransportError::Request)?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(TransportError::Body)?
            .to_bytes();
        Ok(Response { status, body })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or(Err(TransportError::Timeout))
}

/// Connects to the first address of the daemon's host that answers, each within
/// `CONNECT_TIMEOUT`; the last failure if none does.
async fn connect(url: &DaemonUrl) -> Result<TcpStream, TransportError> {
    let host = url.bare_host();
    let addrs: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, url.port)],
        Err(_) => tokio::net::lookup_host((host, url.port))
            .await
            .map_err(|source| TransportError::Resolve {
                host: host.to_string(),
                source,
            })?
            .collect(),
    };
    let mut last = TransportError::NoAddress {
        host: host.to_string(),
    };
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(source)) => last = TransportError::Connect { addr, source },
            Err(_) => last = TransportError::ConnectTimeout { addr },
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, u16, String) {
        let u = DaemonUrl::parse(url).unwrap();
        (u.host, u.port, u.prefix)
    }

    #[test]
    fn urls_name_a_host_a_port_and_a_prefix() {
        let p = |h: &str, port, pre: &str| (h.to_string(), port, pre.to_string());
        assert_eq!(parts("http://127.0.0.1:9292"), p("127.0.0.1", 9292, ""));
        assert_eq!(parts("http://127.0.0.1:9292/"), p("127.0.0.1", 9292, ""));
        assert_eq!(parts("HTTP://localhost"), p("localhost", 80, ""));
        assert_eq!(parts("http://[::1]:9292/lb/"), p("[::1]", 9292, "/lb"));
        assert_eq!(parts("http://[::1]"), p("[::1]", 80, ""));
        let u = DaemonUrl::parse("http://[::1]:9292/lb/").unwrap();
        assert_eq!(
            (u.authority(), u.bare_host(), u.text.as_str()),
            ("[::1]:9292".to_string(), "::1", "http://[::1]:9292/lb")
        );
    }

    #[test]
    fn urls_that_cannot_reach_the_api_are_refused_with_the_reason() {
        for (url, want) in [
            ("https://127.0.0.1:9292", "the API is plain HTTP"),
            ("HTTPS://lb", "the API is plain HTTP"),
            ("ftp://x", "must start with http://"),
            ("127.0.0.1:9292", "must start with http://"),
            ("http://", "names no host"),
            ("http://:9292", "names no host"),
            ("http://h:0", "the port must be a number"),
            ("http://h:http", "the port must be a number"),
            ("http://h:70000", "the port must be a number"),
            ("http://u:p@h", "bearer token"),
        ] {
            let e = DaemonUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(want), "{url}: {e}");
            assert!(e.contains(url), "{url}: {e}");
        }
    }

    /// A server that sends `answer` to whatever it is asked, then closes; the request it read.
    async fn one_answer(answer: &'static [u8]) -> (DaemonUrl, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = DaemonUrl::parse(&format!("http://{}/lb/", listener.local_addr().unwrap()));
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8];
                stream.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            stream.write_all(answer).await.unwrap();
            String::from_utf8(head).unwrap()
        });
        (url.unwrap(), server)
    }

    #[tokio::test]
    async fn a_request_carries_host_prefix_and_token_and_reads_the_whole_answer() {
        let (url, server) = one_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        let token = Token::new("t0ken-for-the-transport-test-0123456789").unwrap();
        let answer = exchange(&url, Some(&token), Method::GET, "/api/v1/clusters", None)
            .await
            .unwrap();
        assert_eq!((answer.status, &answer.body[..]), (200, &b"ok"[..]));
        let head = server.await.unwrap().to_ascii_lowercase();
        assert!(
            head.starts_with("get /lb/api/v1/clusters http/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("host: {}\r\n", url.authority())),
            "{head}"
        );
        assert!(
            head.contains("authorization: bearer t0ken-for-the-transport-test-0123456789\r\n"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn an_answer_cut_short_is_broken_off_not_unreachable() {
        let (url, _server) =
            one_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort").await;
        let e = exchange(&url, None, Method::GET, "/", None)
            .await
            .unwrap_err();
        assert!(e.broke_off(), "{e:?}");
        let (url, _server) = one_answer(b"").await;
        let e = exchange(&url, None, Method::GET, "/", None)
            .await
            .unwrap_err();
        assert!(matches!(e, TransportError::Request(_)), "{e:?}");
        assert!(!e.broke_off());
    }
}
