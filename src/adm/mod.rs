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
//! Layers: `popt` (words to options) → `parse` + `legality` (options to a [`Command`]) →
//! `exec` (commands to [`Backend`] calls) → `listing` / `json` (state to text). `client`
//! implements [`Backend`] on `ipvs::Client`.

pub mod backend;
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
pub use command::Command;
pub use exec::Runner;
