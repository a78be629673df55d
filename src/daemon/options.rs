//! How the daemon runs: [`Options`] (timings, the weight driver's options, the programs it
//! calls, systemd notification) and [`CliOverrides`], big_brother's command-line flags
//! applied to every configuration loaded. Plain data; nothing here starts anything.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::notify::Notifier;
use crate::config::Model;
use crate::weight::DriverOptions;

/// big_brother's command-line flags, applied to every configuration loaded (the first and
/// each reload).
#[derive(Clone, Debug, Default)]
pub struct CliOverrides {
    pub data_dir: Option<PathBuf>,
    pub port: Option<u16>,
    pub binding: Option<IpAddr>,
}

impl CliOverrides {
    pub fn apply(&self, mut model: Model) -> Model {
        model.settings = model
            .settings
            .with_cli(self.data_dir.clone(), self.port, self.binding);
        model
    }
}

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The configuration file, read again on reload.
    pub config_path: PathBuf,
    pub cli: CliOverrides,
    /// Weight changes within this window after a weight pass share one pass at its end
    /// (a change outside it gets a pass at once). Default 100 ms.
    pub coalesce: Duration,
    /// First delay before retrying a failed pass (doubling up to the anti-entropy
    /// interval). Default 1 s.
    pub retry: Duration,
    /// The weight driver's options (tick, override-file directory, jitter seed).
    pub driver: DriverOptions,
    /// How long a destination that leaves a running service (the old active_passive
    /// node, the downpage on recovery, a node removed by reload, a remote load balancer)
    /// stays at weight 0 before it is deleted, so its connections finish. Zero deletes at
    /// once, as big_brother did. Default 5 s.
    pub drain: Duration,
    /// The `send_nsca` program. Default `send_nsca` (looked up on PATH).
    pub nsca_program: PathBuf,
    pub notifier: Notifier,
}

impl Options {
    pub fn new(config_path: impl Into<PathBuf>) -> Options {
        Options {
            config_path: config_path.into(),
            cli: CliOverrides::default(),
            coalesce: Duration::from_millis(100),
            retry: Duration::from_secs(1),
            drain: Duration::from_secs(5),
            driver: DriverOptions::default(),
            nsca_program: PathBuf::from("send_nsca"),
            notifier: Notifier::disabled(),
        }
    }
}
