//! Who may change things through the API: the bearer token and the listen-address rule.
//!
//! The rule: the API may listen on a non-loopback address only with a token file; when a
//! token is configured, every mutating request (any method but GET, HEAD and OPTIONS) must
//! carry `Authorization: Bearer <token>`. Reads stay open, as big_brother's were, so
//! pacemaker's monitor and litmus_paper's `big_brother_service` keep working unchanged.
//!
//! The token is compared in constant time and never appears in a log line, an error
//! message or a `Debug` output.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::http::{HeaderMap, Method};

/// The shortest token accepted: a guessable token is no protection.
pub const MIN_TOKEN_LEN: usize = 16;
/// The longest token accepted (and the largest token file read).
pub const MAX_TOKEN_LEN: usize = 4096;

/// A bearer token. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token from its text (trailing whitespace and line ends removed).
    pub fn new(text: &str) -> Result<Token, TokenError> {
        let text = text.trim();
        if text.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort { len: text.len() });
        }
        if text.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::BadChar);
        }
        Ok(Token(text.to_string()))
    }

    /// Reads the token from `path` (the whole file, one token, surrounding whitespace
    /// ignored).
    pub fn from_file(path: &Path) -> Result<Token, TokenError> {
        let file = |e: std::io::Error| TokenError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let meta = std::fs::metadata(path).map_err(file)?;
        if meta.len() > MAX_TOKEN_LEN as u64 + 64 {
            return Err(TokenError::File {
                path: path.to_path_buf(),
                inner: Box::new(TokenError::TooLong),
            });
        }
        let text = std::fs::read_to_string(path).map_err(file)?;
        Token::new(&text).map_err(|inner| TokenError::File {
            path: path.to_path_buf(),
            inner: Box::new(inner),
        })
    }

    /// Whether `given` is this token, in time that depends only on the lengths.
    pub fn matches(&self, given: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), given)
    }

    /// The `Authorization` header value that carries this token (for the CLI client).
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is {len} characters long; use at least {MIN_TOKEN_LEN} random characters (for example `head -c 32 /dev/urandom | base64`)")]
    TooShort { len: usize },
    #[error("the token is longer than {MAX_TOKEN_LEN} characters")]
    TooLong,
    #[error("the token holds spaces or control characters; use printable ASCII only")]
    BadChar,
    #[error("cannot read the token file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("token file {path}: {inner}")]
    File {
        path: PathBuf,
        inner: Box<TokenError>,
    },
}

/// Why the API refuses to listen.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("the API would listen on {0}, which other hosts can reach, without a token: set `bigbro.api.token_file` (mutating requests will need `Authorization: Bearer <token>`) or listen on 127.0.0.1")]
    NeedsToken(SocketAddr),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("cannot listen on {addr}: {source} (is another bigbro or big_brother running? choose another port with -p)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Applies the listen rule: a non-loopback address needs a token.
pub fn check_listen(addr: SocketAddr, token: Option<&Token>) -> Result<(), ListenError> {
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(ListenError::NeedsToken(addr));
    }
    Ok(())
}

/// Whether a request with this method changes anything.
pub fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Why a mutating request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    Missing,
    Wrong,
}

impl Denied {
    pub fn message(self) -> &'static str {
        match self {
            Denied::Missing => "this request changes state and needs `Authorization: Bearer <token>` (the token in the daemon's bigbro.api.token_file; the CLI takes --token-file)",
            Denied::Wrong => "the bearer token is not the one in the daemon's token file",
        }
    }
}

/// Checks a request against the token rule.
pub fn authorize(
    token: Option<&Token>,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), Denied> {
    let Some(token) = token else { return Ok(()) };
    if !is_mutating(method) {
        return Ok(());
    }
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(Denied::Missing)?
        .as_bytes();
    let scheme = b"bearer ";
    if given.len() < scheme.len() || !given[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return Err(Denied::Missing);
    }
    let presented = trim_ascii(&given[scheme.len()..]);
    if token.matches(presented) {
        Ok(())
    } else {
        Err(Denied::Wrong)
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| *c != b' ').unwrap_or(b.len());
    let end = b.iter().rposition(|c| *c != b' ').map_or(start, |i| i + 1);
    &b[start..end]
}

/// Compares two byte strings without an early exit: the time taken depends on their
/// lengths only, never on where they first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(std::hint::black_box(x ^ y));
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const T: &str = "0123456789abcdefXYZ";

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_str(auth).unwrap(),
        );
        h
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn tokens_must_be_long_and_printable() {
        assert_eq!(Token::new("short"), Err(TokenError::TooShort { len: 5 }));
        assert_eq!(Token::new("0123456789 abcdefgh"), Err(TokenError::BadChar));
        assert!(
            Token::new(&format!("{T}\n")).is_ok(),
            "trailing newline ignored"
        );
        assert_eq!(format!("{:?}", Token::new(T).unwrap()), "Token(<redacted>)");
    }

    #[test]
    fn token_file_errors_name_the_file_but_not_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "tiny\n").unwrap();
        let e = Token::from_file(&path).unwrap_err().to_string();
        assert!(
            e.contains(&path.display().to_string()) && e.contains("4 characters"),
            "{e}"
        );
        assert!(!e.contains("tiny"), "{e}");
        let missing = Token::from_file(&dir.path().join("nope")).unwrap_err();
        assert!(
            missing.to_string().contains("cannot read the token file"),
            "{missing}"
        );
    }

    #[test]
    fn only_mutations_need_the_token() {
        let token = Token::new(T).unwrap();
        let none = HeaderMap::new();
        assert_eq!(authorize(Some(&token), &Method::GET, &none), Ok(()));
        assert_eq!(authorize(Some(&token), &Method::HEAD, &none), Ok(()));
        assert_eq!(
            authorize(Some(&token), &Method::PUT, &none),
            Err(Denied::Missing)
        );
        assert_eq!(
            authorize(Some(&token), &Method::DELETE, &headers("Basic abc")),
            Err(Denied::Missing)
        );
        assert_eq!(
            authorize(
                Some(&token),
                &Method::POST,
                &headers("Bearer 0123456789abcdefXYz")
            ),
            Err(Denied::Wrong)
        );
        assert_eq!(
            authorize(
                Some(&token),
                &Method::POST,
                &headers(&format!("bearer {T}"))
            ),
            Ok(())
        );
        assert_eq!(authorize(None, &Method::DELETE, &none), Ok(()));
    }

    #[test]
    fn non_loopback_needs_a_token() {
        let token = Token::new(T).unwrap();
        assert!(check_listen("127.0.0.1:9292".parse().unwrap(), None).is_ok());
        assert!(check_listen("[::1]:9292".parse().unwrap(), None).is_ok());
        let e = check_listen("0.0.0.0:9292".parse().unwrap(), None).unwrap_err();
        assert!(e.to_string().contains("token_file"), "{e}");
        assert!(check_listen("10.1.2.3:9292".parse().unwrap(), None).is_err());
        assert!(check_listen("0.0.0.0:9292".parse().unwrap(), Some(&token)).is_ok());
    }
}
