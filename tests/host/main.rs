//! The host suite: bigbro's binary and library on the host alone, no VM. The command
//! lines (`bigbro check`, `bigbro daemon` and its signals, `bigbro ipvsadm` against the
//! recorded corpus), the health prober against loopback servers, and nf_tables in a
//! network namespace of the host's kernel (`nft_host`, needs root). It must never change
//! the host's own network state: what touches a kernel runs in a namespace of its own.
//!
//! One module per area; the helpers shared with other suites live in tests/support/.

#[path = "../support/adm_common.rs"]
mod adm_common;
mod config_common;
#[path = "../support/netns.rs"]
mod netns;
#[path = "../support/own_process.rs"]
mod own_process;

mod adm_cli;
mod adm_listing;
mod config_check;
mod config_daemon;
mod config_nft;
mod daemon_signals;
mod health_no_proxy;
mod health_probes;
mod nft_host;
