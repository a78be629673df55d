//! Why a probe failed: a typed reason for every way a health check can go wrong, worded for
//! the operator reading the API or the log, with a stable short code for metrics labels.
//!
//! A failed probe always means health 0 to the weight policy; the reason exists only to be
//! shown. It must never carry more than a short excerpt of what the backend sent.

use std::fmt;
use std::time::Duration;

/// Where a probe was when it ran out of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Connect,
    Send,
    Headers,
    Body,
    /// The prober did not say (the scheduler cut off a probe that overran its deadline).
    Unknown,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "while connecting",
            Phase::Send => "while sending the request",
            Phase::Headers => "while waiting for the response headers",
            Phase::Body => "while reading the response body",
            Phase::Unknown => "before the probe finished",
        })
    }
}

/// A failed probe. Every variant means health 0.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("no complete answer within {timeout:?} (timed out {phase})")]
    Timeout { timeout: Duration, phase: Phase },
    #[error("connection refused: nothing listens on the health check port")]
    Refused,
    #[error("connection reset by the backend")]
    Reset,
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("I/O error {phase}: {message}")]
    Io { phase: Phase, message: String },
    #[error("connection closed without an answer")]
    Closed,
    #[error("connection closed after {received} bytes, before the end of the response headers")]
    ClosedInHeaders { received: usize },
    #[error("connection closed after {received} of the {expected} body bytes announced")]
    Truncated { received: usize, expected: String },
    #[error("the answer is not HTTP/1.x: {0}")]
    Malformed(String),
    #[error("the response headers are larger than {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("HTTP status {status} ({wanted} counts as healthy)")]
    Status { status: u16, wanted: &'static str },
    #[error("the X-Health header {0:?} is not a number")]
    BadHealthHeader(String),
    #[error("status 200 without an X-Health header or a `Health: N` line in the body")]
    NoHealth,
    #[error("status 200 without an X-Health header, and no complete `Health: N` in the first {limit} bytes of a larger body")]
    BodyTooLarge { limit: usize },
}

impl ProbeError {
    /// A short stable label, for metrics (`failures{reason="timeout"}`) and the JSON API.
    pub fn code(&self) -> &'static str {
        match self {
            ProbeError::Timeout { .. } => "timeout",
            ProbeError::Refused => "refused",
            ProbeError::Reset => "reset",
            ProbeError::Connect(_) => "connect",
            ProbeError::Io { .. } => "io",
            ProbeError::Closed | ProbeError::ClosedInHeaders { .. } => "closed",
            ProbeError::Truncated { .. } => "truncated",
            ProbeError::Malformed(_) => "malformed",
            ProbeError::HeadersTooLarge { .. } => "headers_too_large",
            ProbeError::Status { .. } => "status",
            ProbeError::BadHealthHeader(_) => "bad_health_header",
            ProbeError::NoHealth => "no_health",
            ProbeError::BodyTooLarge { .. } => "body_too_large",
        }
    }

    /// Maps an I/O error met in `phase`; resets and refusals get their own variants.
    pub(crate) fn from_io(err: &std::io::Error, phase: Phase) -> ProbeError {
        use std::io::ErrorKind::*;
        match err.kind() {
            ConnectionRefused => ProbeError::Refused,
            ConnectionReset | ConnectionAborted | BrokenPipe => ProbeError::Reset,
            _ if phase == Phase::Connect => ProbeError::Connect(err.to_string()),
            _ => ProbeError::Io {
                phase,
                message: err.to_string(),
            },
        }
    }
}

/// At most 80 characters of what the backend sent, escaped, for error messages.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let mut out: String = bytes
        .iter()
        .take(60)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .take(80)
        .collect();
    if bytes.len() > 60 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn io_errors_map_to_specific_reasons() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            ProbeError::from_io(&refused, Phase::Connect),
            ProbeError::Refused
        );
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(ProbeError::from_io(&reset, Phase::Body), ProbeError::Reset);
        let other = io::Error::other("no route to host");
        assert_eq!(
            ProbeError::from_io(&other, Phase::Connect).code(),
            "connect"
        );
        assert_eq!(ProbeError::from_io(&other, Phase::Headers).code(), "io");
    }

    #[test]
    fn messages_name_the_phase_and_limit() {
        let t = ProbeError::Timeout {
            timeout: Duration::from_millis(300),
            phase: Phase::Headers,
        };
        assert_eq!(
            t.to_string(),
            "no complete answer within 300ms (timed out while waiting for the response headers)"
        );
        assert_eq!(
            ProbeError::Status {
                status: 503,
                wanted: "exactly 200"
            }
            .to_string(),
            "HTTP status 503 (exactly 200 counts as healthy)"
        );
    }

    #[test]
    fn excerpts_are_short_and_escaped() {
        assert_eq!(excerpt(b"SSH-2.0\r\n"), "SSH-2.0\\r\\n");
        let long = vec![b'x'; 500];
        let e = excerpt(&long);
        assert!(e.chars().count() <= 81 && e.ends_with('…'), "{e}");
        assert_eq!(excerpt(&[0xff, 0]), "\\xff\\x00");
    }
}
