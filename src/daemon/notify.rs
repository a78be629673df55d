//! systemd's notification protocol (`sd_notify`), written out: one datagram of
//! `KEY=VALUE` lines to the Unix socket named by `NOTIFY_SOCKET` (a path, or an abstract
//! socket when it starts with `@`). bigbro sends `READY=1` once the kernel state is taken
//! over, `RELOADING=1` (with `MONOTONIC_USEC`, as `Type=notify-reload` wants) and `READY=1`
//! around a reload, `STOPPING=1` on SIGTERM, `STATUS=` lines, and `WATCHDOG=1` at half of
//! `WATCHDOG_USEC` when the unit has a watchdog.
//!
//! Without `NOTIFY_SOCKET` every call is a no-op. A failed send is logged once and never
//! stops the daemon: systemd's bookkeeping must never cost traffic. A send waits at most
//! `SEND_LIMIT` for room in the receiver's queue, so a reader that stops reading cannot
//! hang the daemon (sends run on the async runtime's threads).

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where notifications go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Path(PathBuf),
    /// An abstract socket (`@name` in `NOTIFY_SOCKET`), without the `@`.
    Abstract(Vec<u8>),
}

impl Target {
    /// Parses `NOTIFY_SOCKET`'s value; None for an empty or relative one (systemd only
    /// passes absolute paths or `@` names).
    pub fn parse(value: &str) -> Option<Target> {
        if let Some(name) = value.strip_prefix('@') {
            (!name.is_empty()).then(|| Target::Abstract(name.as_bytes().to_vec()))
        } else if value.starts_with('/') {
            Some(Target::Path(PathBuf::from(value)))
        } else {
            None
        }
    }

    fn address(&self) -> io::Result<SocketAddr> {
        match self {
            Target::Path(p) => SocketAddr::from_pathname(p),
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name)
            }
        }
    }
}

/// Sends notifications to systemd. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    target: Option<Target>,
    /// The watchdog interval systemd asked for (`WATCHDOG_USEC`), for this process.
    watchdog: Option<Duration>,
    warned: Arc<AtomicBool>,
}

impl Notifier {
    /// From the environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`).
    pub fn from_env() -> Notifier {
        let target = std::env::var("NOTIFY_SOCKET")
            .ok()
            .and_then(|v| Target::parse(&v));
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|us| *us > 0 && for_us)
            .map(Duration::from_micros);
        Notifier::new(target, watchdog)
    }

    pub fn new(target: Option<Target>, watchdog: Option<Duration>) -> Notifier {
        Notifier {
            target,
            watchdog,
            warned: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier::default()
    }

    /// How often to send `WATCHDOG=1`: half the interval systemd asked for.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.target.as_ref()?;
        self.watchdog.map(|w| w / 2)
    }

    /// Sends one datagram of `KEY=VALUE` lines.
    pub fn send(&self, lines: &[(&str, &str)]) {
        let Some(target) = &self.target else {
            return;
        };
        let mut text = String::new();
        for (key, value) in lines {
            // A value never spans lines: the protocol is line-based.
            let value = value.replace('\n', " ");
            text.push_str(&format!("{key}={value}\n"));
        }
        if let Err(e) = send_to(target, text.as_bytes()) {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!("cannot notify systemd through {target:?}: {e} (carrying on)");
            }
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&[("READY", "1"), ("STATUS", status)]);
    }

    pub fn reloading(&self) {
        let usec = monotonic_usec().to_string();
        self.send(&[
            ("RELOADING", "1"),
            ("MONOTONIC_USEC", &usec),
            ("STATUS", "reloading the configuration"),
        ]);
    }

    pub fn stopping(&self) {
        self.send(&[
            ("STOPPING", "1"),
            (
                "STATUS",
                "stopping; IPVS, nf_tables and the VIP addresses are left as they are",
            ),
        ]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[("STATUS", status)]);
    }

    pub fn watchdog(&self) {
        self.send(&[("WATCHDOG", "1")]);
    }
}

/// The longest a notification waits for room in the receiver's queue.
const SEND_LIMIT: Duration = Duration::from_secs(1);

fn send_to(target: &Target, bytes: &[u8]) -> io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    socket.set_write_timeout(Some(SEND_LIMIT))?;
    socket.send_to_addr(bytes, &target.address()?)?;
    Ok(())
}

/// CLOCK_MONOTONIC in microseconds, as systemd wants it with `RELOADING=1`.
fn monotonic_usec() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(t) => (t.tv_sec() as u64) * 1_000_000 + (t.tv_nsec() as u64) / 1_000,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_and_abstract_names() {
        assert_eq!(
            Target::parse("/run/systemd/notify"),
            Some(Target::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            Target::parse("@bigbro/x"),
            Some(Target::Abstract(b"bigbro/x".to_vec()))
        );
        assert_eq!(Target::parse(""), None);
        assert_eq!(Target::parse("@"), None);
        assert_eq!(Target::parse("relative"), None);
    }

    #[test]
    fn sends_datagrams_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(Some(Target::Path(path)), Some(Duration::from_secs(10)));
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(5)));
        n.ready("2 clusters\nrunning");
        let mut buf = [0u8; 256];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=2 clusters running\n");
        n.reloading();
        let len = listener.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        assert!(text.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{text}");
        let usec: u64 = text.lines().nth(1).unwrap()["MONOTONIC_USEC=".len()..]
            .parse()
            .unwrap();
        assert!(usec > 0);
    }

    #[test]
    fn sends_datagrams_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("bigbro-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::new(Target::parse(&format!("@{name}")), None);
        assert_eq!(n.watchdog_interval(), None);
        n.watchdog();
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1\n");
    }

    #[test]
    fn a_reader_that_stops_reading_does_not_hang_the_sender() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let _listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(Some(Target::Path(path)), None);
        // Sends until one fails: once the queue is full (net.unix.max_dgram_qlen, 10 to
        // 512), a send gives up after SEND_LIMIT instead of blocking for good.
        let started = std::time::Instant::now();
        while !n.warned.load(Ordering::Relaxed) {
            assert!(started.elapsed() < Duration::from_secs(30), "never failed");
            n.watchdog();
        }
        let took = started.elapsed();
        assert!(took >= SEND_LIMIT && took < SEND_LIMIT * 3, "{took:?}");
    }

    #[test]
    fn without_a_socket_nothing_happens() {
        let n = Notifier::disabled();
        n.ready("x");
        assert_eq!(n.watchdog_interval(), None);
        // A socket that does not exist: logged once, never an error to the caller.
        let gone = Notifier::new(Some(Target::Path("/nonexistent/notify".into())), None);
        gone.stopping();
        gone.stopping();
    }
}
