//! big_brother's defaults merge: every key of `_big_brother` applies to every cluster
//! that does not set it, and nested maps (`nagios`, `health`) merge key by key, the
//! cluster's value winning. An explicit `nagios: ~` on a cluster turns a defaulted nagios
//! off.
//!
//! Values keep the position and path where they were written, so an error in a value
//! that came from `_big_brother` points there. Merging never fills in bigbro's built-in
//! defaults (that is `validate.rs`) and never reports anything.

use super::raw::{RawHealth, RawNagios, RawSettings};
use super::read::{At, Slot};

/// The cluster's settings with `defaults` under them.
pub(crate) fn merge(cluster: RawSettings, defaults: &RawSettings) -> RawSettings {
    let d = defaults.clone();
    RawSettings {
        scheduler: cluster.scheduler.or(d.scheduler),
        check_interval: cluster.check_interval.or(d.check_interval),
        backend_mode: cluster.backend_mode.or(d.backend_mode),
        ramp_up_time: cluster.ramp_up_time.or(d.ramp_up_time),
        has_downpage: cluster.has_downpage.or(d.has_downpage),
        downpage_address: cluster.downpage_address.or(d.downpage_address),
        max_down_ticks: cluster.max_down_ticks.or(d.max_down_ticks),
        non_egress_locations: cluster.non_egress_locations.or(d.non_egress_locations),
        nagios: merge_nagios(cluster.nagios, d.nagios),
        offset: cluster.offset.or(d.offset),
        multi_datacenter: cluster.multi_datacenter.or(d.multi_datacenter),
        forwarding: cluster.forwarding.or(d.forwarding),
        gue_port: cluster.gue_port.or(d.gue_port),
        tunnel_checksum: cluster.tunnel_checksum.or(d.tunnel_checksum),
        health: merge_health(cluster.health, d.health),
    }
}

fn merge_nagios(
    cluster: Slot<Option<RawNagios>>,
    defaults: Slot<Option<RawNagios>>,
) -> Slot<Option<RawNagios>> {
    match (cluster, defaults) {
        (
            Slot::Given(At {
                value: Some(c),
                pos,
                path,
            }),
            Slot::Given(At { value: Some(d), .. }),
        ) => Slot::Given(At {
            value: Some(RawNagios {
                pos: c.pos,
                path: c.path,
                server: c.server.or(d.server),
                host: c.host.or(d.host),
                check: c.check.or(d.check),
            }),
            pos,
            path,
        }),
        (c, d) => c.or(d),
    }
}

fn merge_health(cluster: Slot<RawHealth>, defaults: Slot<RawHealth>) -> Slot<RawHealth> {
    match (cluster, defaults) {
        (Slot::Given(c), Slot::Given(d)) => Slot::Given(At {
            value: RawHealth {
                kind: c.value.kind.or(d.value.kind),
                timeout: c.value.timeout.or(d.value.timeout),
                rise: c.value.rise.or(d.value.rise),
                fall: c.value.fall.or(d.value.fall),
            },
            pos: c.pos,
            path: c.path,
        }),
        (c, d) => c.or(d),
    }
}
