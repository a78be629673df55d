//! `bigbro ipvsadm`: an ipvsadm-compatible command line on bigbro's own netlink client, so
//! operators' fingers and scripts keep working where the ipvsadm package (and libnl) is not
//! installed. The same code runs when the binary is invoked as `ipvsadm`.
//!
//! Compatibility target: ipvsadm 1.31 as Debian 12 ships it (popt, libnl, glibc 2.36).
//! Arguments, error texts, exit codes, listings and `-S` output match it byte for byte;
//! `-R` reads what `-S` prints, with ipvsadm's quirks. The one addition is `--json` on
//! listings. This front end must never change kernel state except as the command line
//! asks, and never on a command line it refuses.
//!
//! Layers: `popt` (words to options) → `parse` + `legality` (options to an [`AdmCommand`]) →
//! `exec` (commands to [`Backend`] calls) → `listing` / `json` (state to text). `client`
//! implements [`Backend`] on `ipvs::Client`.

pub mod backend;
pub mod client;
pub mod cnum;
pub mod command;
pub mod conn;
pub mod exec;
pub mod help;
pub mod json;
pub mod legality;
pub mod listing;
pub mod names;
pub mod parse;
pub mod popt;
pub mod restore;
pub mod sort;

pub use backend::Backend;
pub use command::AdmCommand;
pub use exec::Runner;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;

/// Runs `ipvsadm ARGS` as the program named `program` (argv[0] as ipvsadm would print it)
/// against the running kernel; returns the exit status.
pub fn main(program: &str, args: Vec<OsString>) -> u8 {
    let args: Vec<Vec<u8>> = args.into_iter().map(OsString::into_vec).collect();
    let names = names::CachingResolver::new(names::SystemResolver);
    let mut stderr = std::io::stderr();
    let connect =
        Box::new(|| client::ClientBackend::connect().map(|b| Box::new(b) as Box<dyn Backend>));
    let mut runner = Runner::new(program, &names, connect, &mut stderr);
    let status = runner.run(&args, &mut std::io::stdin());
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&runner.out);
    let _ = stdout.flush();
    status
}
