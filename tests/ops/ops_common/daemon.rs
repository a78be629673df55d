//! The running daemon for the OCF agent's kernel tests (guest only): `bigbro daemon` in
//! the test's network namespace on a small configuration, started the way systemd's
//! Type=notify starts it (waiting for READY=1 on a notification socket of our own).

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIGBRO: &str = env!("CARGO_BIN_EXE_bigbro");

/// Cluster web: fwmark 7 and its relay 10007 (multi_datacenter); cluster dns: fwmark 53.
/// The nodes' health endpoints do not answer: their weights go to 0, which changes
/// nothing for the agent.
pub const CONFIG: &str = "\
bigbro:
  api:
    listen: 127.0.0.1:9292
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wlc
    multi_datacenter: true
    nodes:
      - {address: 127.0.0.2, port: 9, path: /web/status}
      - {address: 127.0.0.3, port: 9, path: /web/status}
  - cluster_name: dns
    fwmark: 53
    scheduler: rr
    nodes:
      - {address: 127.0.0.4, port: 9, path: /dns/status}
  - cluster_name: dns6
    fwmark: 54
    scheduler: rr
    nodes:
      - {address: \"2001:db8::1\", port: 9, path: /dns/status}
";

/// `bigbro daemon` in the test's namespace; SIGTERM and reaped on drop.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Starts the daemon on `config` and waits for READY=1 on a notification socket of
    /// our own (what systemd's Type=notify waits for).
    pub fn start(dir: &Path, config: &Path) -> Daemon {
        let socket_path = dir.join(format!("notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&socket_path);
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let log = dir.join("daemon.log");
        let child = Command::new(BIGBRO)
            .arg("daemon")
            .arg("-c")
            .arg(config)
            .env("NOTIFY_SOCKET", &socket_path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("daemon.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let daemon = Daemon {
            child: Some(child),
            log,
        };
        let mut buf = [0u8; 4096];
        loop {
            match socket.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]);
                    if msg.lines().any(|l| l == "READY=1") {
                        break;
                    }
                }
                Err(e) => panic!("no READY=1 from the daemon ({e}):\n{}", daemon.log()),
            }
        }
        let _ = std::fs::remove_file(&socket_path);
        daemon
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits: the daemon exits 0 and leaves IPVS as it is.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
            let status = child.wait().unwrap();
            assert!(status.success(), "daemon exit {status}:\n{}", self.log());
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A scratch directory with the configuration.
pub fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(&config, CONFIG).unwrap();
    (dir, config)
}
