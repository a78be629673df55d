//! The API suite: the HTTP API, its JSON and big_brother's legacy answers, the metrics, the
//! web UI and the `bigbro` command-line client, all against the daemon's controller over
//! the fake kernel (`bigbro::daemon::testing`), on loopback. No VM and no kernel state: the
//! API over a real kernel is in the kernel suite (tests/kernel/api.rs).

mod api_common;

mod cli;
mod json;
mod legacy;
mod metrics;
mod safety;
mod ui;
