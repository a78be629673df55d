//! The benchmark workload, shared by the micro benchmarks (benches/micro.rs), the kernel
//! benchmarks (tests/kernel_bench/main.rs) and the scale harness: N fwmark services of M IPIP
//! destinations each, as bigbro's desired and observed state, as `Op`s, as `ipvsadm -R`
//! input and as big_brother's own command lines (one `ipvsadm` process per change, as big_brother ran them).
//!
//! Pure data: building a workload never touches the kernel.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use bigbro::ipvs::{Dest, DestEntry, Op, Service, ServiceEntry, ServiceKey, Stats};
use bigbro::reconcile::{Desired, DesiredService, Observed};
use bigbro::types::Fwmark;

/// The bulk workload: 1,000 fwmark services × 10 IPIP destinations.
pub const SERVICES: u32 = 1000;
pub const DESTS: u32 = 10;

/// A state: each service with its destinations.
pub type State = Vec<(Service, Vec<Dest>)>;

/// Fwmark service `mark` (IPv4), as big_brother creates them.
pub fn key(mark: u32) -> ServiceKey {
    ServiceKey::fwmark_v4(Fwmark::new(mark).expect("fwmarks start at 1"))
}

/// Destination `i` (1-based) of service `mark`: a distinct address per (mark, i).
pub fn dest_addr(mark: u32, i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, (mark >> 8) as u8, mark as u8, i as u8))
}

/// `services` wrr fwmark services (marks 1..) of `dests` IPIP destinations at `weight`.
pub fn state(services: u32, dests: u32, weight: u32) -> State {
    (1..=services)
        .map(|mark| {
            let svc = Service::new(key(mark), "wrr");
            let dests = (1..=dests)
                .map(|i| Dest::ipip(dest_addr(mark, i), weight))
                .collect();
            (svc, dests)
        })
        .collect()
}

/// The same state with every destination at `weight`.
pub fn reweighted(state: &State, weight: u32) -> State {
    state
        .iter()
        .map(|(s, d)| {
            let dests = d
                .iter()
                .map(|d| Dest {
                    weight,
                    ..d.clone()
                })
                .collect();
            (s.clone(), dests)
        })
        .collect()
}

/// The state as the reconciler's desired state.
pub fn desired(state: &State) -> Desired {
    let mut out = Desired::default();
    for (svc, dests) in state {
        out.insert(DesiredService::new(svc.clone(), dests.iter().cloned()));
    }
    out
}

/// The service keys of the state: what bigbro owns.
pub fn owned(state: &State) -> BTreeSet<ServiceKey> {
    state.iter().map(|(s, _)| s.key).collect()
}

/// The state as a dump would report it (zero counters).
pub fn observed(state: &State) -> Vec<Observed> {
    state
        .iter()
        .map(|(svc, dests)| Observed {
            service: ServiceEntry {
                service: svc.clone(),
                stats: Stats::default(),
            },
            dests: dests.iter().map(|d| DestEntry::from(d.clone())).collect(),
        })
        .collect()
}

/// Building the state from an empty table: each service, then its destinations.
pub fn add_ops(state: &State) -> Vec<Op> {
    let mut ops = Vec::new();
    for (svc, dests) in state {
        ops.push(Op::AddService(svc.clone()));
        ops.extend(dests.iter().map(|d| Op::AddDest {
            service: svc.key,
            dest: d.clone(),
        }));
    }
    ops
}

/// Changing every destination of `state` to what it holds (an edit per destination).
pub fn edit_ops(state: &State) -> Vec<Op> {
    state
        .iter()
        .flat_map(|(svc, dests)| {
            dests.iter().map(|d| Op::EditDest {
                service: svc.key,
                dest: d.clone(),
            })
        })
        .collect()
}

/// `ops` as `ipvsadm -R` input, one numeric command per line.
pub fn restore_text(ops: &[Op]) -> String {
    let mut out = String::new();
    for op in ops {
        out.push_str(&op.ipvsadm_args());
        out.push('\n');
    }
    out
}

/// The arguments big_brother passes to `ipvsadm` for `op` (its exact templates, long
/// options, `--ipip`), or None for ops big_brother never issues.
pub fn big_brother_args(op: &Op) -> Option<Vec<String>> {
    let server = |verb: &str, key: &ServiceKey, d: &Dest| {
        let ServiceKey::Fwmark { mark, .. } = key else {
            return None;
        };
        Some(vec![
            verb.to_string(),
            "--fwmark-service".into(),
            mark.to_string(),
            "--real-server".into(),
            d.addr.to_string(),
            "--ipip".into(),
            "--weight".into(),
            d.weight.to_string(),
        ])
    };
    match op {
        Op::AddService(svc) => match svc.key {
            ServiceKey::Fwmark { mark, .. } => Some(vec![
                "--add-service".into(),
                "--fwmark-service".into(),
                mark.to_string(),
                "--scheduler".into(),
                svc.scheduler.clone(),
            ]),
            _ => None,
        },
        Op::AddDest { service, dest } => server("--add-server", service, dest),
        Op::EditDest { service, dest } => server("--edit-server", service, dest),
        _ => None,
    }
}
