//! A minimal HTTP/1.1 GET client for health checks, on a tokio stream.
//!
//! Why the exchange is hand-written rather than a general HTTP client: a probe is one `GET`
//! with `Connection: close` to an IP literal, answered by a few hundred bytes. Writing the
//! request and driving the reads ourselves gives exact control of every limit: no
//! connection pool to keep sockets open to 10,000 backends, no proxy or environment lookup
//! (nothing here reads the environment, so `HTTP_PROXY` can never reroute a probe), no
//! redirect following, no decompression, a head capped at 16 KiB and a body read that stops
//! at 64 KiB however much the backend sends. The caller bounds the whole exchange with one
//! deadline; `phase` tells it where the exchange was when the deadline struck.
//!
//! The grammar is not ours: the status line, the headers and the chunk sizes are parsed by
//! httparse (hyper's parser, fuzzed far beyond what this crate is), over the bytes the read
//! loop has buffered. What stays here is what httparse does not decide: the read loop and
//! its limits, the body's framing (Content-Length, chunked, until close), and the error
//! messages that name the refused line.
//!
//! It must never read more than the limits, follow a redirect, or send anything but the one
//! request line and its fixed headers.

use std::net::SocketAddr;

use bytes::BufMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::{excerpt, Phase, ProbeError};

/// How much of an answer is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Status line plus headers; more is an error.
    pub max_head: usize,
    /// Body bytes kept; the rest is never read.
    pub max_body: usize,
}

impl Default for Limits {
    /// 16 KiB of head, 64 KiB of body.
    fn default() -> Self {
        Limits {
            max_head: 16 * 1024,
            max_body: 64 * 1024,
        }
    }
}

/// The status line and headers of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Header names lower-cased, values with surrounding blanks removed, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    /// The first header of that name (give it in lower case).
    pub fn header(&self, lower_name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == lower_name)
            .map(|(_, v)| v.as_slice())
    }
}

/// A body, possibly cut at the limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    pub bytes: Vec<u8>,
    /// False when the backend had more to send than the limit; the rest was not read.
    pub complete: bool,
}

/// A whole answer. `body` is `None` when the caller did not want it for that status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub head: Head,
    pub body: Option<Body>,
}

/// Connects to `addr` and performs `GET path`. The body is read only when
/// `want_body(status)` says so. Bound it with a timeout; `phase` is kept up to date.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    limits: Limits,
    want_body: impl Fn(u16) -> bool,
    phase: &mut Phase,
) -> Result<Response, ProbeError> {
    *phase = Phase::Connect;
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| ProbeError::from_io(&e, Phase::Connect))?;
    let _ = stream.set_nodelay(true);
    exchange(
        &mut stream,
        &addr.to_string(),
        path,
        limits,
        want_body,
        phase,
    )
    .await
}

/// The request bytes: origin-form path, `Host`, and `Connection: close`.
pub fn request_bytes(host: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bigbro/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// Sends the request on an open stream and reads the answer.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
    path: &str,
    limits: Limits,
    want_body: impl Fn(u16) -> bool,
    phase: &mut Phase,
) -> Result<Response, ProbeError> {
    *phase = Phase::Send;
    stream
        .write_all(&request_bytes(host, path))
        .await
        .map_err(|e| ProbeError::from_io(&e, Phase::Send))?;
    *phase = Phase::Headers;
    let mut reader = Reader {
        stream,
        buf: Vec::new(),
        pos: 0,
        next_read: FIRST_READ,
    };
    let (head, framing) = loop {
        let (head, framing) = reader.read_head(limits.max_head).await?;
        // Interim 1xx answers (100 Continue, 103 Early Hints) precede the real one.
        if (100..200).contains(&head.status) && head.status != 101 {
            continue;
        }
        break (head, framing);
    };
    if !want_body(head.status) {
        return Ok(Response { head, body: None });
    }
    *phase = Phase::Body;
    let body = reader.read_body(framing, limits.max_body).await?;
    Ok(Response {
        head,
        body: Some(body),
    })
}

/// How the body's end is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// What the first read of an answer may take.
const FIRST_READ: usize = 512;
/// The most one read may take.
const MAX_READ: usize = 16 * 1024;

struct Reader<'a, S> {
    stream: &'a mut S,
    buf: Vec<u8>,
    /// Bytes before `pos` are consumed.
    pos: usize,
    /// What the next read offers (see `fill`).
    next_read: usize,
}

impl<S: AsyncRead + Unpin> Reader<'_, S> {
    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more into the buffer, at most `max` bytes. Returns 0 at end of stream.
    ///
    /// Reads go into the buffer's spare capacity, never zero-filled: the first read offers
    /// `FIRST_READ` bytes (a litmus answer fits), and each read that fills what it was
    /// offered doubles the next offer, up to `MAX_READ`. So a probe in flight holds a few
    /// hundred bytes, not the most it may read.
    async fn fill(&mut self, max: usize, phase: Phase) -> Result<usize, ProbeError> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let offer = self.next_read.min(max.max(1));
        if self.buf.capacity() - self.buf.len() < offer {
            self.buf.reserve_exact(offer);
        }
        let room = (self.buf.capacity() - self.buf.len()).min(max.max(1));
        let n = self
            .stream
            .read_buf(&mut (&mut self.buf).limit(room))
            .await
            .map_err(|e| ProbeError::from_io(&e, phase))?;
        if n == room {
            self.next_read = (self.next_read * 2).min(MAX_READ);
        }
        Ok(n)
    }

    async fn read_head(&mut self, max_head: usize) -> Result<(Head, Framing), ProbeError> {
        loop {
            let pending = self.pending();
            let shown = &pending[..pending.len().min(5)];
            if !b"HTTP/".starts_with(shown) {
                return Err(ProbeError::Malformed(format!(
                    "it begins with \"{}\"",
                    excerpt(pending)
                )));
            }
            if let Parsed::Complete { head, len, blank } = parse_head(pending)? {
                if len - blank > max_head {
                    return Err(ProbeError::HeadersTooLarge { limit: max_head });
                }
                self.pos += len;
                let framing = framing(&head)?;
                return Ok((head, framing));
            }
            if pending.len() >= max_head {
                return Err(ProbeError::HeadersTooLarge { limit: max_head });
            }
            let room = max_head + 4 - pending.len();
            if self.fill(room, Phase::Headers).await? == 0 {
                return Err(match self.pending().len() {
                    0 => ProbeError::Closed,
                    received => ProbeError::ClosedInHeaders { received },
                });
            }
        }
    }

    async fn read_body(&mut self, framing: Framing, limit: usize) -> Result<Body, ProbeError> {
        match framing {
            Framing::Length(len) => {
                let want = usize::try_from(len).unwrap_or(usize::MAX).min(limit);
                let bytes = self.read_exact_upto(want, || len.to_string()).await?;
                Ok(Body {
                    bytes,
                    complete: len <= limit as u64,
                })
            }
            Framing::UntilClose => {
                let mut bytes = Vec::new();
                loop {
                    bytes.extend_from_slice(self.pending());
                    self.pos = self.buf.len();
                    if bytes.len() > limit {
                        bytes.truncate(limit);
                        return Ok(Body {
                            bytes,
                            complete: false,
                        });
                    }
                    if self.fill(limit + 1 - bytes.len(), Phase::Body).await? == 0 {
                        return Ok(Body {
                            bytes,
                            complete: true,
                        });
                    }
                }
            }
            Framing::Chunked => self.read_chunked(limit).await,
        }
    }

    /// Takes exactly `want` bytes; end of stream first is `Truncated`.
    async fn read_exact_upto(
        &mut self,
        want: usize,
        expected: impl Fn() -> String,
    ) -> Result<Vec<u8>, ProbeError> {
        // Not `want`: a backend may announce far more than it sends.
        let mut bytes = Vec::with_capacity(want.min(FIRST_READ));
        loop {
            let take = self.pending().len().min(want - bytes.len());
            bytes.extend_from_slice(&self.pending()[..take]);
            self.pos += take;
            if bytes.len() == want {
                return Ok(bytes);
            }
            if self.fill(want - bytes.len(), Phase::Body).await? == 0 {
                return Err(ProbeError::Truncated {
                    received: bytes.len(),
                    expected: expected(),
                });
            }
        }
    }

    /// One line (without its CR LF) of at most `max` bytes, inside a chunked body.
    async fn read_line(&mut self, max: usize, received: usize) -> Result<Vec<u8>, ProbeError> {
        loop {
            if let Some(nl) = self.pending().iter().position(|&b| b == b'\n') {
                let line = self.pending()[..nl].to_vec();
                self.pos += nl + 1;
                let line = line.strip_suffix(b"\r").unwrap_or(&line).to_vec();
                return Ok(line);
            }
            if self.pending().len() > max {
                return Err(ProbeError::Malformed(format!(
                    "chunked body has a line longer than {max} bytes"
                )));
            }
            if self.fill(max, Phase::Body).await? == 0 {
                return Err(ProbeError::Truncated {
                    received,
                    expected: "chunked".into(),
                });
            }
        }
    }

    async fn read_chunked(&mut self, limit: usize) -> Result<Body, ProbeError> {
        let mut bytes = Vec::new();
        loop {
            let line = self.read_line(1024, bytes.len()).await?;
            let size = chunk_size(&line)?;
            if size == 0 {
                return Ok(Body {
                    bytes,
                    complete: true,
                });
            }
            let room = (limit - bytes.len()) as u64;
            let take = size.min(room) as usize;
            let received = bytes.len();
            let chunk = self
                .read_exact_upto(take, || {
                    // Saturating: a backend may announce a chunk of 2^64 - 1 bytes.
                    format!("{} (chunked)", (received as u64).saturating_add(size))
                })
                .await
                .map_err(|e| match e {
                    // Counted over the whole body, like `expected`.
                    ProbeError::Truncated {
                        received: r,
                        expected,
                    } => ProbeError::Truncated {
                        received: received + r,
                        expected,
                    },
                    e => e,
                })?;
            bytes.extend_from_slice(&chunk);
            if size > room {
                return Ok(Body {
                    bytes,
                    complete: false,
                });
            }
            let end = self.read_line(2, bytes.len()).await?;
            if !end.is_empty() {
                return Err(ProbeError::Malformed(
                    "chunk data is not followed by CR LF".into(),
                ));
            }
        }
    }
}

/// What httparse made of the buffered start of an answer.
enum Parsed {
    /// The head is whole: its length with the blank line that ends it, and that line's.
    Complete {
        head: Head,
        len: usize,
        blank: usize,
    },
    /// More bytes are needed.
    Partial,
}

/// Parses the status line and headers at the start of `buf` with httparse (CR LF or bare
/// LF line ends). Only the status codes RFC 9110 §15 defines (100..=599) are accepted.
fn parse_head(buf: &[u8]) -> Result<Parsed, ProbeError> {
    // One slot per line: a head can never have more headers than lines, so httparse never
    // refuses it for their number (the head's size is what is bounded).
    let lines = buf.iter().filter(|&&b| b == b'\n').count();
    let mut slots = vec![httparse::EMPTY_HEADER; lines + 1];
    let mut response = httparse::Response::new(&mut slots);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(_) => return Err(malformed_line(buf)),
    };
    let status = response
        .code
        .filter(|c| (100..=599).contains(c))
        .ok_or_else(|| bad_status_line(buf))?;
    let headers = response
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.trim_ascii().to_vec()))
        .collect();
    let blank = if buf[..len].ends_with(b"\r\n") { 2 } else { 1 };
    Ok(Parsed::Complete {
        head: Head { status, headers },
        len,
        blank,
    })
}

/// The error for a head httparse refused, naming the first line it refuses on its own.
fn malformed_line(buf: &[u8]) -> ProbeError {
    let mut lines = buf
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let alone = |line: &[u8], parse: &dyn Fn(&[u8]) -> bool| {
        let mut whole = line.to_vec();
        whole.extend_from_slice(b"\r\n\r\n");
        parse(&whole)
    };
    let status_ok = |b: &[u8]| {
        let mut none = [];
        httparse::Response::new(&mut none).parse(b).is_ok()
    };
    if !alone(status_line, &status_ok) {
        return bad_status_line(buf);
    }
    let header_ok = |b: &[u8]| {
        let mut one = [httparse::EMPTY_HEADER; 1];
        httparse::parse_headers(b, &mut one).is_ok()
    };
    match lines.find(|l| !l.is_empty() && !alone(l, &header_ok)) {
        Some(line) => ProbeError::Malformed(format!("bad header line \"{}\"", excerpt(line))),
        None => ProbeError::Malformed(format!("bad head \"{}\"", excerpt(buf))),
    }
}

fn bad_status_line(buf: &[u8]) -> ProbeError {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    ProbeError::Malformed(format!("bad status line \"{}\"", excerpt(line)))
}

/// The size on a chunk-size line (without its line end), by httparse: hex digits (at most
/// 16, so it fits a u64), then blanks or `;extensions`. httparse reads a line without
/// digits as 0, the last chunk; here it is an error, as it always was.
fn chunk_size(line: &[u8]) -> Result<u64, ProbeError> {
    let mut whole = line.to_vec();
    whole.extend_from_slice(b"\r\n");
    match httparse::parse_chunk_size(&whole) {
        Ok(httparse::Status::Complete((_, size)))
            if line.first().is_some_and(u8::is_ascii_hexdigit) =>
        {
            Ok(size)
        }
        _ => Err(ProbeError::Malformed(format!(
            "bad chunk size line \"{}\"",
            excerpt(line)
        ))),
    }
}

fn framing(head: &Head) -> Result<Framing, ProbeError> {
    if (100..200).contains(&head.status) || head.status == 204 || head.status == 304 {
        return Ok(Framing::Length(0));
    }
    if let Some(te) = head.header("transfer-encoding") {
        let chunked = te
            .split(|&b| b == b',')
            .next_back()
            .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return Ok(if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut length = None;
    for (name, value) in &head.headers {
        if name != "content-length" {
            continue;
        }
        let parsed = std::str::from_utf8(value)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| {
                ProbeError::Malformed(format!("bad Content-Length \"{}\"", excerpt(value)))
            })?;
        if length.is_some_and(|l| l != parsed) {
            return Err(ProbeError::Malformed(
                "conflicting Content-Length headers".into(),
            ));
        }
        length = Some(parsed);
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    /// Runs one exchange against a peer that answers `answer` then closes.
    async fn answer(bytes: &[u8], limits: Limits) -> Result<Response, ProbeError> {
        let (mut client, mut server) = duplex(1 << 20);
        let bytes = bytes.to_vec();
        let peer = tokio::spawn(async move {
            let mut req = vec![0u8; 4096];
            let n = server.read(&mut req).await.unwrap();
            server.write_all(&bytes).await.unwrap();
            drop(server);
            String::from_utf8(req[..n].to_vec()).unwrap()
        });
        let mut phase = Phase::Connect;
        let got = exchange(
            &mut client,
            "10.0.0.1:80",
            "/s",
            limits,
            |_| true,
            &mut phase,
        )
        .await;
        let req = peer.await.unwrap();
        assert!(
            req.starts_with("GET /s HTTP/1.1\r\nHost: 10.0.0.1:80\r\n"),
            "{req}"
        );
        assert!(req.contains("\r\nConnection: close\r\n") && req.ends_with("\r\n\r\n"));
        got
    }

    fn body(r: Response) -> Body {
        r.body.unwrap()
    }

    #[tokio::test]
    async fn content_length_body() {
        let r = answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Health: 7\r\n\r\nhelloEXTRA",
            Limits::default(),
        )
        .await
        .unwrap();
        assert_eq!(r.head.status, 200);
        assert_eq!(r.head.header("x-health"), Some(&b"7"[..]));
        assert_eq!(
            body(r),
            Body {
                bytes: b"hello".to_vec(),
                complete: true
            }
        );
    }

    #[tokio::test]
    async fn bare_lf_and_http10_until_close() {
        let r = answer(
            b"HTTP/1.0 200 OK\nServer: x\n\nHealth: 3\n",
            Limits::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            body(r),
            Body {
                bytes: b"Health: 3\n".to_vec(),
                complete: true
            }
        );
    }

    #[tokio::test]
    async fn chunked_body_is_decoded() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nHeal\r\n6\r\nth: 42\r\n0\r\n\r\n";
        let r = answer(raw, Limits::default()).await.unwrap();
        assert_eq!(
            body(r),
            Body {
                bytes: b"Health: 42".to_vec(),
                complete: true
            }
        );
    }

    /// Found by fuzzing: the largest chunk size there is, cut short, is `Truncated` (the
    /// message's arithmetic used to overflow).
    #[tokio::test]
    async fn a_chunk_of_two_to_the_sixty_four_bytes_cut_short_is_truncated() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHealt\r\nFFFFFFFFFFFFFFFF\r\nh";
        assert_eq!(
            answer(raw, Limits::default()).await,
            Err(ProbeError::Truncated {
                received: 6,
                expected: "18446744073709551615 (chunked)".into()
            })
        );
    }

    #[tokio::test]
    async fn bodies_stop_at_the_limit() {
        let limits = Limits {
            max_head: 1024,
            max_body: 4,
        };
        let r = answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
            limits,
        )
        .await
        .unwrap();
        assert_eq!(
            body(r),
            Body {
                bytes: b"0123".to_vec(),
                complete: false
            }
        );
        let r = answer(b"HTTP/1.1 200 OK\r\n\r\n0123456789", limits)
            .await
            .unwrap();
        assert_eq!(
            body(r),
            Body {
                bytes: b"0123".to_vec(),
                complete: false
            }
        );
        let r = answer(b"HTTP/1.1 200 OK\r\n\r\n0123", limits)
            .await
            .unwrap();
        assert_eq!(
            body(r),
            Body {
                bytes: b"0123".to_vec(),
                complete: true
            }
        );
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
        let r = answer(chunked, limits).await.unwrap();
        assert_eq!(
            body(r),
            Body {
                bytes: b"abcd".to_vec(),
                complete: false
            }
        );
    }

    #[tokio::test]
    async fn interim_answers_are_skipped() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            answer(raw, Limits::default()).await.unwrap().head.status,
            503
        );
    }

    #[tokio::test]
    async fn broken_answers() {
        let l = Limits::default();
        let code = |r: Result<Response, ProbeError>| r.unwrap_err().code();
        assert_eq!(code(answer(b"", l).await), "closed");
        assert_eq!(code(answer(b"HTTP/1.1 200 OK\r\nX-A", l).await), "closed");
        assert_eq!(
            code(answer(b"SSH-2.0-OpenSSH_9.2\r\n", l).await),
            "malformed"
        );
        assert_eq!(code(answer(b"HTTP/2 200\r\n\r\n", l).await), "malformed");
        assert_eq!(
            code(answer(b"HTTP/1.1 20 OK\r\n\r\n", l).await),
            "malformed"
        );
        // Found by fuzzing: three digits outside 100..=599 are not a status (RFC 9110).
        for line in ["HTTP/1.1 099 OK", "HTTP/1.1 000 OK", "HTTP/1.1 600 OK"] {
            let raw = format!("{line}\r\nContent-Length: 0\r\n\r\n");
            assert_eq!(
                answer(raw.as_bytes(), l).await,
                Err(ProbeError::Malformed(format!("bad status line \"{line}\"")))
            );
        }
        assert_eq!(
            answer(b"HTTP/1.1 599 X\r\nContent-Length: 0\r\n\r\n", l)
                .await
                .unwrap()
                .head
                .status,
            599
        );
        assert_eq!(
            code(answer(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", l).await),
            "malformed"
        );
        assert_eq!(
            code(answer(b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", l).await),
            "malformed"
        );
        assert_eq!(
            code(
                answer(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                    l
                )
                .await
            ),
            "malformed"
        );
        assert_eq!(
            code(answer(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", l).await),
            "malformed"
        );
        assert_eq!(
            code(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", l).await),
            "truncated"
        );
        let bad_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(code(answer(bad_chunk, l).await), "malformed");
        let cut_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc";
        assert_eq!(code(answer(cut_chunk, l).await), "truncated");
        let small = Limits {
            max_head: 64,
            max_body: 10,
        };
        let big_head = format!("HTTP/1.1 200 OK\r\nX-Pad: {}\r\n\r\n", "p".repeat(100));
        assert_eq!(
            code(answer(big_head.as_bytes(), small).await),
            "headers_too_large"
        );
    }

    #[tokio::test]
    async fn body_is_skipped_when_not_wanted() {
        let (mut client, mut server) = duplex(1 << 16);
        tokio::spawn(async move {
            let mut req = [0u8; 1024];
            let _ = server.read(&mut req).await;
            // Announces a body it never sends, and keeps the connection open.
            server
                .write_all(b"HTTP/1.1 503 No\r\nContent-Length: 100\r\n\r\n")
                .await
                .unwrap();
            std::future::pending::<()>().await;
        });
        let mut phase = Phase::Connect;
        let r = exchange(
            &mut client,
            "h",
            "/",
            Limits::default(),
            |s| s == 200,
            &mut phase,
        )
        .await
        .unwrap();
        assert_eq!((r.head.status, r.body), (503, None));
        assert_eq!(phase, Phase::Headers);
    }

    #[test]
    fn head_end_variants() {
        let complete = |buf: &[u8]| match parse_head(buf).unwrap() {
            Parsed::Complete { len, blank, head } => Some((len, blank, head.headers.len())),
            Parsed::Partial => None,
        };
        assert_eq!(complete(b"HTTP/1.1 200 OK\r\n\r\nB"), Some((19, 2, 0)));
        assert_eq!(complete(b"HTTP/1.1 200 OK\n\nB"), Some((17, 1, 0)));
        assert_eq!(
            complete(b"HTTP/1.1 200 OK\r\nB: c\r\n\r\n"),
            Some((25, 2, 1))
        );
        assert_eq!(complete(b"HTTP/1.1 200 OK\r\nB: c\r\n"), None);
        assert_eq!(complete(b"HTTP/1.1 200 OK\r\n\r"), None);
        assert_eq!(complete(b"HTTP/1.1 200"), None);
    }

    #[test]
    fn refused_heads_name_the_line() {
        let error = |buf: &[u8]| match parse_head(buf) {
            Err(ProbeError::Malformed(m)) => m,
            _ => panic!("accepted {:?}", String::from_utf8_lossy(buf)),
        };
        for (head, want) in [
            (
                &b"HTTP/1.1 OK 200\r\n\r\n"[..],
                "bad status line \"HTTP/1.1 OK 200\"",
            ),
            (
                b"HTTP/1.1 700 Odd\r\n\r\n",
                "bad status line \"HTTP/1.1 700 Odd\"",
            ),
            (
                b"HTTP/1.1 099 Odd\r\n\r\n",
                "bad status line \"HTTP/1.1 099 Odd\"",
            ),
            (
                b"HTTP/1.1  200 OK\r\n\r\n",
                "bad status line \"HTTP/1.1  200 OK\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nA: b\r\nBroken\r\nC: d\r\n\r\n",
                "bad header line \"Broken\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
                "bad header line \"Bad Name: x\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
                "bad header line \" folded: x\"",
            ),
        ] {
            assert_eq!(error(head), want, "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"1a"), Ok(26));
        assert_eq!(chunk_size(b"1A;name=value"), Ok(26));
        assert_eq!(chunk_size(b"0"), Ok(0));
        assert_eq!(chunk_size(b"ffffffffffffffff"), Ok(u64::MAX));
        for bad in [
            &b""[..],
            b";ext",
            b" 5",
            b"x",
            b"-1",
            b"1 2",
            b"10000000000000000",
            b"0x10",
        ] {
            assert_eq!(
                chunk_size(bad),
                Err(ProbeError::Malformed(format!(
                    "bad chunk size line \"{}\"",
                    excerpt(bad)
                ))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
