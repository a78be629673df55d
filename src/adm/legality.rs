//! ipvsadm's legality rules: which options each command requires, refuses, or allows only
//! one of (`commands_v_options` in ipvsadm.c), and which tunnel options each tunnel type
//! takes (`tunnel_types_v_options`), with ipvsadm's exact wording when a rule is broken.
//!
//! The tables are checked column by column in ipvsadm's order, so the first complaint is the
//! same one ipvsadm makes. bigbro's own `--json` is an extra column, legal only for listings.
//! Nothing here parses words or talks to the kernel.

/// The commands, in ipvsadm's `CMD_*` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

impl Cmd {
    /// ipvsadm's `cmdnames[]`.
    pub fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Timeout => "set",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
        }
    }

    fn row(self) -> &'static [u8] {
        &COMMANDS_V_OPTIONS[self as usize]
    }
}

/// Option classes, in ipvsadm's `OPTC_*` bit order (plus bigbro's `Json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optc {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Mcast,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    SyncId,
    Exact,
    OnePacket,
    PersistenceEngine,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
    /// bigbro's `--json` (not in ipvsadm).
    Json,
}

const NUMBER_OF_OPT: usize = 35;

const ALL_OPTC: [Optc; NUMBER_OF_OPT] = [
    Optc::Numeric,
    Optc::Connection,
    Optc::Service,
    Optc::Scheduler,
    Optc::Persistent,
    Optc::Netmask,
    Optc::Server,
    Optc::Forward,
    Optc::Weight,
    Optc::UThreshold,
    Optc::LThreshold,
    Optc::Mcast,
    Optc::Timeout,
    Optc::Daemon,
    Optc::Stats,
    Optc::Rate,
    Optc::Thresholds,
    Optc::PersistentConn,
    Optc::NoSort,
    Optc::SyncId,
    Optc::Exact,
    Optc::OnePacket,
    Optc::PersistenceEngine,
    Optc::SchedFlags,
    Optc::McastGroup,
    Optc::McastPort,
    Optc::McastTtl,
    Optc::SyncMaxlen,
    Optc::TunInfo,
    Optc::TunType,
    Optc::TunPort,
    Optc::TunNocsum,
    Optc::TunCsum,
    Optc::TunRemcsum,
    Optc::Json,
];

impl Optc {
    /// ipvsadm's `optnames[]`.
    pub fn name(self) -> &'static str {
        match self {
            Optc::Numeric => "numeric",
            Optc::Connection => "connection",
            Optc::Service => "service-address",
            Optc::Scheduler => "scheduler",
            Optc::Persistent => "persistent",
            Optc::Netmask => "netmask",
            Optc::Server => "real-server",
            Optc::Forward => "forwarding-method",
            Optc::Weight => "weight",
            Optc::UThreshold => "u-threshold",
            Optc::LThreshold => "l-threshold",
            Optc::Mcast => "mcast-interface",
            Optc::Timeout => "timeout",
            Optc::Daemon => "daemon",
            Optc::Stats => "stats",
            Optc::Rate => "rate",
            Optc::Thresholds => "thresholds",
            Optc::PersistentConn => "persistent-conn",
            Optc::NoSort => "nosort",
            Optc::SyncId => "syncid",
            Optc::Exact => "exact",
            Optc::OnePacket => "ops",
            Optc::PersistenceEngine => "pe",
            Optc::SchedFlags => "sched-flags",
            Optc::McastGroup => "mcast-group",
            Optc::McastPort => "mcast-port",
            Optc::McastTtl => "mcast-ttl",
            Optc::SyncMaxlen => "sync-maxlen",
            Optc::TunInfo => "tun-info",
            Optc::TunType => "tun-type",
            Optc::TunPort => "tun-port",
            Optc::TunNocsum => "tun-nocsum",
            Optc::TunCsum => "tun-csum",
            Optc::TunRemcsum => "tun-remcsum",
            Optc::Json => "json",
        }
    }

    pub fn bit(self) -> u64 {
        1u64 << (self as u32)
    }
}

/// The set of option classes given on one command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptSet(pub u64);

impl OptSet {
    pub fn has(self, o: Optc) -> bool {
        self.0 & o.bit() != 0
    }
    /// ipvsadm's `set_option`: a class may be given once.
    pub fn insert(&mut self, o: Optc) -> Result<(), String> {
        if self.has(o) {
            return Err(format!("multiple '{}' options specified", o.name()));
        }
        self.0 |= o.bit();
        Ok(())
    }
}

// Key: '+' required, 'x' illegal, '1' at most one of the '1's, ' ' optional.
// Columns: -n -c svc -s -p -M -r fwd -w -x -y -mc tot dmn -st -rt thr -pc srt sid -ex ops
//          -pe -b grp port ttl size tinf type tprt nocs csum remc json
const COMMANDS_V_OPTIONS: [[u8; NUMBER_OF_OPT]; 14] = [
    *b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxx", // add-service
    *b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxx", // edit-service
    *b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-service
    *b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // flush
    *b" 11xxxxxxxxx11       xxxxxxx xxxxx ", // list
    *b"xx+xxx+    xxxxxxxxxxxxxxxxxx     x", // add-server
    *b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-server
    *b"xx+xxx+    xxxxxxxxxxxxxxxxxx     x", // edit-server
    *b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // set
    *b"xxxxxxxxxxx xxxxxxx xxxx    xxxxxxx", // start-daemon
    *b"xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxxx", // stop-daemon
    *b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // restore
    *b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // save
    *b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // zero
];

/// The check both of ipvsadm's tables share: walk the columns in order; the first
/// missing '+', present 'x' or second '1' is the complaint. `what` ends each message:
/// "the 'add-service' command" or "the 'gue' tunnel type".
fn check_row(row: &[u8], columns: &[Optc], options: OptSet, what: &str) -> Result<(), String> {
    let mut exclusive: Option<Optc> = None;
    for (o, rule) in columns.iter().zip(row) {
        match (options.has(*o), rule) {
            (false, b'+') => {
                return Err(format!(
                    "You need to supply the '{}' option for {what}",
                    o.name()
                ))
            }
            (true, b'x') => return Err(format!("Illegal '{}' option with {what}", o.name())),
            (true, b'1') => match exclusive {
                None => exclusive = Some(*o),
                Some(last) => {
                    return Err(format!(
                        "The option '{}' conflicts with the '{}' option in {what}",
                        o.name(),
                        last.name()
                    ))
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// ipvsadm's `generic_opt_check`.
pub fn check_command(cmd: Cmd, options: OptSet) -> Result<(), String> {
    let what = format!("the '{}' command", cmd.name());
    check_row(cmd.row(), &ALL_OPTC, options, &what)
}

/// Tunnel types (`IP_VS_CONN_F_TUNNEL_TYPE_*`) by their ipvsadm names.
pub const TUNNEL_NAMES: [&str; 3] = ["ipip", "gue", "gre"];

const TUNNEL_OPTS: [Optc; 4] = [
    Optc::TunPort,
    Optc::TunNocsum,
    Optc::TunCsum,
    Optc::TunRemcsum,
];

// Columns: tun-port, tun-nocsum, tun-csum, tun-remcsum.
const TUNNEL_TYPES_V_OPTIONS: [[u8; 4]; 3] = [*b"xxxx", *b"+111", *b"x11x"];

/// ipvsadm's `tunnel_opt_check` for tunnel type `tun_type` (0 ipip, 1 gue, 2 gre).
pub fn check_tunnel(tun_type: u8, options: OptSet) -> Result<(), String> {
    let ty = usize::from(tun_type).min(2);
    let what = format!("the '{}' tunnel type", TUNNEL_NAMES[ty]);
    check_row(&TUNNEL_TYPES_V_OPTIONS[ty], &TUNNEL_OPTS, options, &what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(opts: &[Optc]) -> OptSet {
        let mut s = OptSet::default();
        for o in opts {
            s.insert(*o).unwrap();
        }
        s
    }

    #[test]
    fn table_rows_match_ipvsadm() {
        // Spot checks against ipvsadm.c's commands_v_options, column by column.
        assert!(check_command(Cmd::Add, set(&[Optc::Service, Optc::Scheduler])).is_ok());
        assert_eq!(
            check_command(Cmd::Add, set(&[])).unwrap_err(),
            "You need to supply the 'service-address' option for the 'add-service' command"
        );
        assert_eq!(
            check_command(Cmd::Add, set(&[Optc::Service, Optc::Weight])).unwrap_err(),
            "Illegal 'weight' option with the 'add-service' command"
        );
        assert_eq!(
            check_command(Cmd::List, set(&[Optc::Connection, Optc::Timeout])).unwrap_err(),
            "The option 'timeout' conflicts with the 'connection' option in the 'list' command"
        );
        assert!(check_command(
            Cmd::List,
            set(&[
                Optc::Numeric,
                Optc::Service,
                Optc::Stats,
                Optc::Exact,
                Optc::NoSort,
                Optc::TunInfo,
                Optc::SyncId,
                Optc::Json
            ])
        )
        .is_ok());
        assert_eq!(
            check_command(Cmd::AddDest, set(&[Optc::Service])).unwrap_err(),
            "You need to supply the 'real-server' option for the 'add-server' command"
        );
        assert!(check_command(
            Cmd::EditDest,
            set(&[
                Optc::Service,
                Optc::Server,
                Optc::Forward,
                Optc::Weight,
                Optc::UThreshold,
                Optc::LThreshold,
                Optc::TunType,
                Optc::TunPort,
                Optc::TunNocsum,
                Optc::TunCsum,
                Optc::TunRemcsum
            ])
        )
        .is_ok());
        assert!(check_command(
            Cmd::StartDaemon,
            set(&[
                Optc::Mcast,
                Optc::SyncId,
                Optc::McastGroup,
                Optc::McastPort,
                Optc::McastTtl,
                Optc::SyncMaxlen
            ])
        )
        .is_ok());
        assert_eq!(
            check_command(Cmd::StopDaemon, set(&[Optc::Mcast])).unwrap_err(),
            "Illegal 'mcast-interface' option with the 'stop-daemon' command"
        );
        assert!(check_command(Cmd::Save, set(&[Optc::Numeric])).is_ok());
        assert!(check_command(Cmd::Zero, set(&[Optc::Service])).is_ok());
        assert_eq!(
            check_command(Cmd::Save, set(&[Optc::Json])).unwrap_err(),
            "Illegal 'json' option with the 'save' command"
        );
    }

    #[test]
    fn tunnel_rules() {
        assert!(check_tunnel(0, set(&[])).is_ok());
        assert_eq!(
            check_tunnel(1, set(&[])).unwrap_err(),
            "You need to supply the 'tun-port' option for the 'gue' tunnel type"
        );
        assert_eq!(
            check_tunnel(1, set(&[Optc::TunPort, Optc::TunCsum, Optc::TunRemcsum])).unwrap_err(),
            "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type"
        );
        assert_eq!(
            check_tunnel(2, set(&[Optc::TunRemcsum])).unwrap_err(),
            "Illegal 'tun-remcsum' option with the 'gre' tunnel type"
        );
        assert_eq!(
            check_tunnel(0, set(&[Optc::TunPort])).unwrap_err(),
            "Illegal 'tun-port' option with the 'ipip' tunnel type"
        );
    }

    #[test]
    fn repeated_class_is_refused() {
        let mut s = OptSet::default();
        s.insert(Optc::Forward).unwrap();
        assert_eq!(
            s.insert(Optc::Forward).unwrap_err(),
            "multiple 'forwarding-method' options specified"
        );
    }
}
