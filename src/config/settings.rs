//! The daemon-wide settings: the top-level `bigbro:` section with its defaults, and the
//! big_brother command-line flags (`-D`, `-p`, `-b`) that override it.
//!
//! Reads and fills in values only; it never opens the files or sockets it names.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::diag::Diags;
use super::model::{
    Api, Settings, SyncDaemon, DEFAULT_ANTI_ENTROPY_INTERVAL, DEFAULT_API_LISTEN, DEFAULT_DATA_DIR,
    DEFAULT_STATE_DIR,
};
use super::raw::RawGlobal;
use super::read::{At, Slot};

fn or<T: Clone>(slot: &Slot<T>, default: T) -> Option<T> {
    match slot {
        Slot::Given(at) => Some(at.value.clone()),
        Slot::Absent => Some(default),
        Slot::Invalid => None,
    }
}

pub(crate) fn build(g: &RawGlobal, d: &mut Diags) -> Option<Settings> {
    let sync_daemon = match &g.sync_daemon {
        Slot::Absent | Slot::Given(At { value: None, .. }) => Some(None),
        Slot::Invalid => None,
        Slot::Given(At { value: Some(s), .. }) => {
            let mut missing = |key: &str, why: &str| {
                d.at(s.pos, &s.path, format!("missing key {key} ({why})"));
            };
            let role = s.role.value().copied();
            if s.role.is_absent() {
                missing("role", "master, backup or both");
            }
            let interface = s.interface.value().cloned();
            if s.interface.is_absent() {
                missing("interface", "the interface sync messages use");
            }
            match (role, interface, or(&s.syncid, 0)) {
                (Some(role), Some(interface), Some(syncid)) => Some(Some(SyncDaemon {
                    role,
                    interface,
                    syncid,
                })),
                _ => None,
            }
        }
    };
    Some(Settings {
        api: Api {
            listen: or(&g.listen, DEFAULT_API_LISTEN)?,
            token_file: or(&g.token_file, None)?,
        },
        data_dir: or(&g.data_dir, PathBuf::from(DEFAULT_DATA_DIR))?,
        state_dir: or(&g.state_dir, PathBuf::from(DEFAULT_STATE_DIR))?,
        anti_entropy_interval: or(&g.anti_entropy_interval, DEFAULT_ANTI_ENTROPY_INTERVAL)?,
        sync_daemon: sync_daemon?,
    })
}

impl Settings {
    /// Applies big_brother's command-line flags, which win over the file: `-D` replaces
    /// `data_dir`, `-p` the API port and `-b` the API address.
    pub fn with_cli(
        mut self,
        data_dir: Option<PathBuf>,
        port: Option<u16>,
        binding: Option<IpAddr>,
    ) -> Settings {
        if let Some(dir) = data_dir {
            self.data_dir = std::path::absolute(&dir).unwrap_or(dir);
        }
        let ip = binding.unwrap_or(self.api.listen.ip());
        let port = port.unwrap_or(self.api.listen.port());
        self.api.listen = SocketAddr::new(ip, port);
        self
    }
}
