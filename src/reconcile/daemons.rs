//! The IPVS connection-synchronisation daemons (`ipvsadm --start-daemon`): which ones the
//! configuration asks for, and the operations that make the kernel run exactly those.
//!
//! A daemon is compared by role, interface and sync id only (the kernel fills in its own
//! defaults for the rest). One that differs is stopped and started again. Pure apart from
//! [`pass`], which reads and writes through the [`IpvsKernel`] seam.

use crate::config::{SyncDaemon as Wanted, SyncRole};
use crate::ipvs::{self, DaemonState, Op, SyncDaemon};

use super::kernel::IpvsKernel;

/// The kernel daemons a configuration asks for (none when `wanted` is None).
pub fn desired(wanted: Option<&Wanted>) -> Vec<SyncDaemon> {
    let Some(w) = wanted else {
        return Vec::new();
    };
    let states: &[DaemonState] = match w.role {
        SyncRole::Master => &[DaemonState::Master],
        SyncRole::Backup => &[DaemonState::Backup],
        SyncRole::Both => &[DaemonState::Master, DaemonState::Backup],
    };
    states
        .iter()
        .map(|state| SyncDaemon {
            state: *state,
            mcast_ifn: w.interface.clone(),
            sync_id: u32::from(w.syncid),
            sync_maxlen: 0,
            mcast_group: None,
            mcast_port: 0,
            mcast_ttl: 0,
        })
        .collect()
}

fn same(a: &SyncDaemon, b: &SyncDaemon) -> bool {
    a.state == b.state && a.mcast_ifn == b.mcast_ifn && a.sync_id == b.sync_id
}

/// The stops and starts that turn `running` into `wanted`: stops first (a daemon of the
/// same role must be gone before its replacement starts).
pub fn diff(wanted: &[SyncDaemon], running: &[SyncDaemon]) -> Vec<Op> {
    let mut stops = Vec::new();
    let mut starts = Vec::new();
    for state in [DaemonState::Master, DaemonState::Backup] {
        let want = wanted.iter().find(|d| d.state == state);
        let have = running.iter().find(|d| d.state == state);
        match (want, have) {
            (Some(w), Some(h)) if same(w, h) => {}
            (Some(w), Some(_)) => {
                stops.push(Op::StopDaemon(state));
                starts.push(Op::StartDaemon(w.clone()));
            }
            (Some(w), None) => starts.push(Op::StartDaemon(w.clone())),
            (None, Some(_)) => stops.push(Op::StopDaemon(state)),
            (None, None) => {}
        }
    }
    stops.extend(starts);
    stops
}

/// What [`pass`] did.
#[derive(Debug, Default)]
pub struct DaemonsReport {
    pub applied: Vec<Op>,
    pub failed: Vec<ipvs::Error>,
    pub dump_error: Option<ipvs::Error>,
}

/// Reads the running daemons and starts or stops what differs from `wanted`.
pub async fn pass<K: IpvsKernel>(kernel: &K, wanted: &[SyncDaemon]) -> DaemonsReport {
    let mut report = DaemonsReport::default();
    let running = match kernel.daemons().await {
        Ok(r) => r,
        Err(e) => {
            report.dump_error = Some(e);
            return report;
        }
    };
    let ops = diff(wanted, &running);
    let results = kernel.apply(&ops).await;
    for (op, result) in ops.into_iter().zip(results) {
        match result {
            Ok(()) => report.applied.push(op),
            // Stopping a daemon that is already gone has done its job.
            Err(ipvs::Error::DaemonNotRunning { .. }) if matches!(op, Op::StopDaemon(_)) => {}
            Err(e) => report.failed.push(e),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::FakeKernel;

    fn wanted(role: SyncRole, interface: &str, syncid: u8) -> Wanted {
        Wanted {
            role,
            interface: interface.into(),
            syncid,
        }
    }

    #[test]
    fn roles_map_to_kernel_daemons() {
        assert!(desired(None).is_empty());
        let both = desired(Some(&wanted(SyncRole::Both, "eth1", 7)));
        assert_eq!(both.len(), 2);
        assert_eq!(
            (both[0].state, both[1].state),
            (DaemonState::Master, DaemonState::Backup)
        );
        assert!(both.iter().all(|d| d.mcast_ifn == "eth1" && d.sync_id == 7));
    }

    #[tokio::test]
    async fn converges_restarts_on_change_and_stops_what_is_not_wanted() {
        let k = FakeKernel::new();
        let master = desired(Some(&wanted(SyncRole::Master, "eth1", 7)));
        let r = pass(&k, &master).await;
        assert_eq!(r.applied, vec![Op::StartDaemon(master[0].clone())]);
        assert!(
            pass(&k, &master).await.applied.is_empty(),
            "no-op when equal"
        );

        let moved = desired(Some(&wanted(SyncRole::Master, "eth2", 7)));
        let r = pass(&k, &moved).await;
        assert_eq!(
            r.applied,
            vec![
                Op::StopDaemon(DaemonState::Master),
                Op::StartDaemon(moved[0].clone())
            ]
        );
        let r = pass(&k, &[]).await;
        assert_eq!(r.applied, vec![Op::StopDaemon(DaemonState::Master)]);
        assert!(k.daemons().await.unwrap().is_empty());
    }
}
