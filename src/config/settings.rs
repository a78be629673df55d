//! The daemon-wide settings: the top-level `bigbro:` section with its `api:` and
//! `sync_daemon:` maps, each key declared once in a `section!` table (see `declare.rs`),
//! and the big_brother command-line flags (`-D`, `-p`, `-b`) that override them.
//!
//! Reads and fills in values only; it never opens the files or sockets it names.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::declare::{over, section, Section};
use super::diag::{quote, Diags, KeyPath, Pos};
use super::model::{
    Api, Settings, SyncDaemon, SyncRole, DEFAULT_ANTI_ENTROPY_INTERVAL, DEFAULT_API_LISTEN,
    DEFAULT_DATA_DIR, DEFAULT_STATE_DIR,
};
use super::raw::{entry_map, optional_section, IDENTITY_KEYS, SETTING_KEYS};
use super::read::{self, given, At, Slot};
use super::yaml::Node;

/// The words `sync_daemon: {role: ...}` accepts.
const SYNC_ROLES: [(&str, SyncRole); 3] = [
    ("master", SyncRole::Master),
    ("backup", SyncRole::Backup),
    ("both", SyncRole::Both),
];

section! {
    /// The top-level `bigbro:` section.
    RawGlobal, settled GlobalSettled, keys GLOBAL_KEYS;
    api: RawApi = ["api"]
        read |e, _, d| api(e.value, &e.path, d), merge over, default RawApi::default();
    data_dir: PathBuf = ["data_dir"]
        read |e, _, d| read::abs_path(e.value, &e.path, d),
        merge over, default PathBuf::from(DEFAULT_DATA_DIR);
    state_dir: PathBuf = ["state_dir"]
        read |e, _, d| read::abs_path(e.value, &e.path, d),
        merge over, default PathBuf::from(DEFAULT_STATE_DIR);
    anti_entropy_interval: Duration = ["anti_entropy_interval"]
        read |e, _, d| match read::seconds(e.value, &e.path, d) {
            Slot::Given(at) if at.value < Duration::from_secs(1) => {
                d.at(e.value.pos, &e.path, "must be at least 1 s");
                Slot::Invalid
            }
            other => other,
        },
        merge over, default DEFAULT_ANTI_ENTROPY_INTERVAL;
    /// `Given(None)`: written as `~` (no sync daemon).
    sync_daemon: Option<RawSync> = ["sync_daemon"]
        read |e, _, d| optional_section(e.value, &e.path, "sync daemon settings", d),
        merge over, default None;
    vip_interface: String = ["vip_interface"]
        read |e, _, d| read::interface(e.value, &e.path, d),
        merge over, default crate::route::DEFAULT_INTERFACE.to_string();
}

section! {
    /// `bigbro: {api: ...}`, the HTTP API.
    RawApi, settled ApiSettled, keys API_KEYS;
    listen: SocketAddr = ["listen"]
        read |e, _, d| listen(e.value, &e.path, d), merge over, default DEFAULT_API_LISTEN;
    /// `Given(None)`: written empty (no token).
    token_file: Option<PathBuf> = ["token_file"]
        read |e, _, d| if e.value.is_null() {
            given(None, e.value, &e.path)
        } else {
            read::abs_path(e.value, &e.path, d).map(Some)
        },
        merge over, default None;
}

section! {
    /// `bigbro: {sync_daemon: ...}`, IPVS connection synchronisation.
    RawSync, settled SyncSettled, keys SYNC_KEYS;
    role: SyncRole = ["role"]
        read |e, _, d| read::choice(e.value, &e.path, "a sync daemon role", &SYNC_ROLES, d),
        merge over, required "master, backup or both";
    interface: String = ["interface"]
        read |e, _, d| read::interface(e.value, &e.path, d),
        merge over, required "the interface sync messages use";
    syncid: u8 = ["syncid"]
        read |e, _, d| read::integer(e.value, &e.path, 0, 255, d).map(|n| n as u8),
        merge over, default 0;
}

/// Reads the top-level `bigbro:` section.
pub(crate) fn read(node: &Node, path: &KeyPath, d: &mut Diags) -> RawGlobal {
    let mut g = RawGlobal::default();
    if node.is_null() {
        return g;
    }
    let hint = |key: &str| {
        (SETTING_KEYS.contains(&key) || IDENTITY_KEYS.contains(&key)).then(|| {
            format!("{key} is a cluster key (set it on a cluster, or in _big_brother for all)")
        })
    };
    let Some(entries) = read::entries(node, path, "bigbro settings", GLOBAL_KEYS, &hint, d) else {
        return g;
    };
    for e in &entries {
        g.read_entry(e, d);
    }
    g
}

fn api(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<RawApi> {
    let no_hint = |_: &str| None;
    let Some(entries) = read::entries(node, path, "API settings", API_KEYS, &no_hint, d) else {
        return Slot::Invalid;
    };
    Slot::Given(entry_map(node, path, &entries, d))
}

fn listen(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<SocketAddr> {
    let Some(text) = read::scalar(node, path, "an address:port", d) else {
        return Slot::Invalid;
    };
    match text.trim().parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => given(a, node, path),
        Ok(_) => {
            d.at(node.pos, path, "port 0 is outside 1..65535");
            Slot::Invalid
        }
        Err(_) => {
            d.at(
                node.pos,
                path,
                format!(
                    "{} is not an address:port (write e.g. 127.0.0.1:9292 or [::1]:9292; host names are not resolved)",
                    quote(text)
                ),
            );
            Slot::Invalid
        }
    }
}

pub(crate) fn build(g: &RawGlobal, d: &mut Diags) -> Option<Settings> {
    let nowhere = (Pos::default(), &KeyPath::root());
    // Every missing key is reported before any `?` below gives up.
    let sync_daemon = match &g.sync_daemon {
        Slot::Absent | Slot::Given(At { value: None, .. }) => Some(None),
        Slot::Invalid => None,
        Slot::Given(At {
            value: Some(s),
            pos,
            path,
        }) => {
            let s = s.settle((*pos, path), "", d);
            match (s.role, s.interface, s.syncid) {
                (Some(role), Some(interface), Some(syncid)) => Some(Some(SyncDaemon {
                    role,
                    interface,
                    syncid,
                })),
                _ => None,
            }
        }
    };
    let s = g.settle(nowhere, "", d);
    let api = s.api?.settle(nowhere, "", d);
    Some(Settings {
        api: Api {
            listen: api.listen?,
            token_file: api.token_file?,
        },
        data_dir: s.data_dir?,
        state_dir: s.state_dir?,
        anti_entropy_interval: s.anti_entropy_interval?,
        sync_daemon: sync_daemon?,
        vip_interface: s.vip_interface?,
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
