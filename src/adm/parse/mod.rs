//! ipvsadm's argument parsing (`parse_options` and the checks of `process_options` in
//! ipvsadm.c 1.31), reproduced decision for decision: the first option must be the command,
//! options are applied in order (so `-r` before `-t` sees no service yet), every value goes
//! through the same C conversions, and each failure carries ipvsadm's text and exit code.
//!
//! The result is an [`AdmCommand`] in the typed IPVS model. Parsing never touches the kernel; it
//! may consult the name service (a host or service name given as an address or port).
//!
//! One step a file, in the order a command line goes through them: `table.rs` (the popt
//! table), `state.rs` (the parse state and the command), `options.rs` (each option after
//! it), `values.rs` (the conversion of one value), `finish.rs` (the checks after the last
//! option, and the typed command). This file runs them.

mod finish;
mod options;
mod state;
mod table;
mod values;

use super::command::AdmCommand;
use super::legality::{check_command, Cmd};
use super::names::Resolver;
use super::popt::{Item, Scanner};
use crate::ipvs::{ServiceFlags, Timeouts};
use state::State;
use table::OPTIONS;
use values::{lossy, parse_sched_flags, parse_timeout};

/// `MAX_TIMEOUT`: 31 days.
const MAX_TIMEOUT: i64 = 86400 * 31;
/// `IPVS_SVC_PERSISTENT_TIMEOUT`.
const DEFAULT_PERSISTENT_TIMEOUT: u32 = 360;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const FWD_MASQ: u32 = 0;
const FWD_TUNNEL: u32 = 2;
const FWD_DROUTE: u32 = 3;

/// Why a command line was refused, and how ipvsadm reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// `fail(2, ...)`: the message (a newline is added) and exit status 2. Ends a restore.
    Fail(String),
    /// A popt error in the middle of the options: `"WORD: reason"`, status 255 (-1). In a
    /// restore this only fails the line.
    Popt(String),
    /// `tryhelp_exit(argv[0], -1)`: no command first, or a popt error on it. Status 255.
    TryHelp,
}

impl ParseError {
    fn fail(msg: impl Into<String>) -> ParseError {
        ParseError::Fail(msg.into())
    }
}

/// Parses one ipvsadm command line (`args` without argv[0]).
pub fn parse(args: &[Vec<u8>], names: &dyn Resolver) -> Result<AdmCommand, ParseError> {
    let mut st = State::new();
    let mut scan = Scanner::new(OPTIONS, args);
    match scan.next_item() {
        Item::Opt(tag, arg) => st.command(tag, arg.as_deref())?,
        Item::End | Item::Error(_) => return Err(ParseError::TryHelp),
    }
    if let Some(cmd) = st.help_or_version.take() {
        return Ok(cmd);
    }
    loop {
        match scan.next_item() {
            Item::Opt(tag, arg) => {
                let bad = scan.bad_option().to_vec();
                st.option(tag, arg.as_deref(), &bad, names)?;
            }
            Item::End => break,
            Item::Error(e) => {
                return Err(ParseError::Popt(format!(
                    "{}: {}",
                    lossy(scan.bad_option()),
                    e.text()
                )))
            }
        }
    }
    let cmd = st.cmd.expect("the first option set the command");
    if cmd == Cmd::Timeout {
        match (
            scan.next_leftover(),
            scan.next_leftover(),
            scan.next_leftover(),
        ) {
            (Some(tcp), Some(fin), Some(udp)) => {
                st.timeouts = Timeouts {
                    tcp: parse_timeout(Some(&tcp), 0, MAX_TIMEOUT)?,
                    tcp_fin: parse_timeout(Some(&fin), 0, MAX_TIMEOUT)?,
                    udp: parse_timeout(Some(&udp), 0, MAX_TIMEOUT)?,
                };
            }
            _ => return Err(ParseError::fail("--set option requires 3 timeout values")),
        }
    }
    if let Some(extra) = scan.next_leftover() {
        return Err(ParseError::fail(format!(
            "unexpected argument {}",
            lossy(&extra)
        )));
    }
    if !st.sched_flags_arg.is_empty() {
        st.svc.flags &= !(ServiceFlags::SCHED1 | ServiceFlags::SCHED2 | ServiceFlags::SCHED3);
        st.svc.flags |= parse_sched_flags(&st.svc.sched_name, &st.sched_flags_arg)?;
    }
    check_command(cmd, st.options).map_err(ParseError::Fail)?;
    finish::finish(cmd, st)
}
