//! What to probe and how often: a probe target (address, port, path, kind) and its timing.
//!
//! These are the probe layer's own input types, so that health does not depend on the
//! configuration module; the dependency goes the other way: the configuration's model uses
//! [`ProbeKind`] as its health kind, and its validation (src/config/raw.rs, validate.rs)
//! calls [`path_problem`] and [`Target::new`], so a node the prober would refuse is refused
//! when the file is read, never found at run time. A target's path is validated here once,
//! because it is written verbatim into an HTTP request line and must never be able to
//! smuggle bytes (CR, LF, spaces) into it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// How a target is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// big_brother semantics: `GET http://addr:port/path`; exactly 200, then the health is
    /// the `X-Health` header if present, else the first `Health: N` in the body.
    Litmus,
    /// Any 2xx answer to `GET http://addr:port/path` is health 100.
    Http,
    /// A completed TCP connect is health 100.
    Tcp,
}

impl ProbeKind {
    /// The name the configuration (`health: {kind: ...}`) and messages use.
    pub const fn name(self) -> &'static str {
        match self {
            ProbeKind::Litmus => "litmus",
            ProbeKind::Http => "http",
            ProbeKind::Tcp => "tcp",
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong with a request path, by [`path_problem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathProblem {
    /// It does not start with `/`.
    NotAbsolute,
    /// It holds this character, which is not visible ASCII (a space, a control character
    /// or anything outside ASCII).
    BadChar(char),
}

/// The rule for a litmus or http request path, which is written verbatim into the request
/// line: it starts with `/` and holds only visible ASCII. [`Target::new`] applies it, and
/// the configuration's check of a node's `path` calls it too, so a path the prober would
/// refuse is refused when the file is read.
pub fn path_problem(path: &str) -> Option<PathProblem> {
    if !path.starts_with('/') {
        return Some(PathProblem::NotAbsolute);
    }
    path.chars()
        .find(|c| !c.is_ascii_graphic())
        .map(PathProblem::BadChar)
}

/// One thing to probe. Two clusters that name the same address, port, path and kind share
/// one target, and so one probe. For `tcp` the path is irrelevant and always empty, so tcp
/// targets differing only in path are the same target.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    addr: IpAddr,
    port: u16,
    path: Arc<str>,
    kind: ProbeKind,
}

/// Why a target could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("health check port 0 for {addr} is not a port; set `port` to the port the health endpoint listens on")]
    PortZero { addr: IpAddr },
    #[error("health check path {path:?} for {addr}:{port} must start with '/' (for example /myapp/status)")]
    PathNotAbsolute {
        addr: IpAddr,
        port: u16,
        path: String,
    },
    #[error("health check path {path:?} for {addr}:{port} contains a space, control or non-ASCII character; percent-encode it")]
    PathBadChar {
        addr: IpAddr,
        port: u16,
        path: String,
    },
}

impl Target {
    /// Builds a target. For `Litmus` and `Http` the path must start with `/` and hold only
    /// visible ASCII (it goes into the request line as is); an empty path means `/`. For
    /// `Tcp` the path is ignored.
    pub fn new(
        kind: ProbeKind,
        addr: IpAddr,
        port: u16,
        path: &str,
    ) -> Result<Target, TargetError> {
        if port == 0 {
            return Err(TargetError::PortZero { addr });
        }
        let path = match kind {
            ProbeKind::Tcp => "",
            _ if path.is_empty() => "/",
            _ => path,
        };
        if kind != ProbeKind::Tcp {
            let path = path.to_string();
            match path_problem(&path) {
                Some(PathProblem::NotAbsolute) => {
                    return Err(TargetError::PathNotAbsolute { addr, port, path })
                }
                Some(PathProblem::BadChar(_)) => {
                    return Err(TargetError::PathBadChar { addr, port, path })
                }
                None => {}
            }
        }
        Ok(Target {
            addr,
            port,
            path: path.into(),
            kind,
        })
    }

    /// A litmus target (`GET http://addr:port/path`).
    pub fn litmus(addr: IpAddr, port: u16, path: &str) -> Result<Target, TargetError> {
        Target::new(ProbeKind::Litmus, addr, port, path)
    }

    /// A plain HTTP target (2xx = 100).
    pub fn http(addr: IpAddr, port: u16, path: &str) -> Result<Target, TargetError> {
        Target::new(ProbeKind::Http, addr, port, path)
    }

    /// A TCP-connect target.
    pub fn tcp(addr: IpAddr, port: u16) -> Result<Target, TargetError> {
        Target::new(ProbeKind::Tcp, addr, port, "")
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
    /// The request path (empty for tcp targets).
    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn kind(&self) -> ProbeKind {
        self.kind
    }
}

/// `litmus http://10.0.0.1:9292/app/status`, `tcp 10.0.0.1:80`, `http http://[::1]:80/`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ProbeKind::Tcp => write!(f, "tcp {}", self.socket_addr()),
            kind => write!(f, "{kind} http://{}{}", self.socket_addr(), self.path),
        }
    }
}

impl serde::Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// When and for how long a target is probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProbeSettings {
    /// Time between the starts of two probes of the target. A probe that is still running
    /// at a tick makes that tick be skipped, never doubled.
    pub interval: Duration,
    /// The whole probe (connect, request, headers and capped body) must finish within this.
    pub timeout: Duration,
}

impl Default for ProbeSettings {
    /// Every 2 s, 1 s timeout.
    fn default() -> Self {
        ProbeSettings {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
        }
    }
}

impl ProbeSettings {
    /// Zero durations are raised to 1 ms, so a bad value can never make a probe loop spin.
    pub fn sanitized(self) -> ProbeSettings {
        let floor = Duration::from_millis(1);
        ProbeSettings {
            interval: self.interval.max(floor),
            timeout: self.timeout.max(floor),
        }
    }

    /// The settings two users of one target share: the shorter interval and the shorter
    /// timeout, so every user gets at least what it asked for.
    pub fn merge(self, other: ProbeSettings) -> ProbeSettings {
        ProbeSettings {
            interval: self.interval.min(other.interval),
            timeout: self.timeout.min(other.timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

    #[test]
    fn paths_are_validated() {
        assert_eq!(Target::litmus(A, 80, "").unwrap().path(), "/");
        assert_eq!(
            Target::litmus(A, 80, "/a/status?x=1").unwrap().path(),
            "/a/status?x=1"
        );
        assert!(matches!(
            Target::litmus(A, 80, "a/status"),
            Err(TargetError::PathNotAbsolute { .. })
        ));
        for bad in ["/a b", "/a\r\nHost: evil", "/\u{e9}", "/a\tb"] {
            let err = Target::http(A, 80, bad).unwrap_err();
            assert!(matches!(err, TargetError::PathBadChar { .. }), "{bad:?}");
            assert!(err.to_string().contains("percent-encode"), "{err}");
        }
        assert_eq!(path_problem("/ok?a=1"), None);
        assert_eq!(path_problem("ok"), Some(PathProblem::NotAbsolute));
        assert_eq!(
            path_problem("/caf\u{e9}"),
            Some(PathProblem::BadChar('\u{e9}'))
        );
        assert!(matches!(
            Target::tcp(A, 0),
            Err(TargetError::PortZero { .. })
        ));
    }

    #[test]
    fn tcp_targets_ignore_the_path() {
        let a = Target::new(ProbeKind::Tcp, A, 80, "/x").unwrap();
        let b = Target::tcp(A, 80).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "tcp 10.0.0.1:80");
    }

    #[test]
    fn display_names_the_url() {
        let t = Target::litmus(A, 9292, "/app/status").unwrap();
        assert_eq!(t.to_string(), "litmus http://10.0.0.1:9292/app/status");
        let v6 = Target::http("::1".parse().unwrap(), 8080, "/").unwrap();
        assert_eq!(v6.to_string(), "http http://[::1]:8080/");
    }

    #[test]
    fn merged_settings_take_the_stricter_of_each() {
        let a = ProbeSettings {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(3),
        };
        let b = ProbeSettings {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
        };
        let m = a.merge(b);
        assert_eq!(m.interval, Duration::from_secs(2));
        assert_eq!(m.timeout, Duration::from_secs(1));
        let z = ProbeSettings {
            interval: Duration::ZERO,
            timeout: Duration::ZERO,
        }
        .sanitized();
        assert!(z.interval > Duration::ZERO && z.timeout > Duration::ZERO);
    }
}
