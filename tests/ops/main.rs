//! The operations suite: bigbro as operators install and run it. The OCF resource agent
//! (against a fake daemon on the host, against the real daemon and under pacemaker in the
//! test bed's guest), the systemd unit (checked on the host, run by a real systemd in the
//! guest) and the Debian package. The kernel tests share one VM boot; each of them keeps
//! what it changes outside its network namespace (mounts, systemd, pacemaker) inside
//! namespaces of its own and stops every process it started.

#[path = "../support/daemon_bed.rs"]
mod daemon_bed;
mod ops_common;
#[path = "../support/testbed/mod.rs"]
mod testbed;

mod deb_package;
mod ocf_agent;
mod ocf_kernel;
mod ocf_pacemaker;
mod systemd_kernel;
mod systemd_unit;
