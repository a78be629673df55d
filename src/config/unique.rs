//! Rules that compare clusters with each other: unique names, unique fwmarks (relay
//! fwmarks `fwmark + offset` included) and vips that do not overlap, so no packet can be
//! claimed by two clusters.
//!
//! Works on the clusters as written (defaults merged) so that these errors are reported
//! even when a cluster has other errors too. Reports; never changes a value.

use super::diag::{Diags, KeyPath, Pos};
use super::model::BackendMode;
use super::raw::{ClusterSettled, RawCluster, RawSettings};
use super::read::Slot;
use crate::nft::{L4Proto, PortRange};

fn owner(c: &RawCluster) -> String {
    match c.name.value() {
        Some(n) => format!("cluster \"{n}\""),
        None => c.path.to_string(),
    }
}

/// Whether the cluster will have a relay service, as `validate.rs` decides it.
fn has_relay(s: &ClusterSettled) -> bool {
    let multi = s.multi_datacenter == Some(true);
    let passive = s.backend_mode == Some(BackendMode::ActivePassive);
    multi && !passive
}

pub(crate) fn check(clusters: &[(&RawCluster, RawSettings)], d: &mut Diags) {
    names(clusters, d);
    fwmarks(clusters, d);
    vips(clusters, d);
}

fn names(clusters: &[(&RawCluster, RawSettings)], d: &mut Diags) {
    let mut seen: Vec<(&str, Pos, &KeyPath)> = Vec::new();
    for (c, _) in clusters {
        let Slot::Given(at) = &c.name else { continue };
        if let Some((_, pos, path)) = seen.iter().find(|(n, _, _)| *n == at.value) {
            d.at(
                at.pos,
                &at.path,
                format!(
                    "duplicate cluster name \"{}\" (first at {pos}, {path})",
                    at.value
                ),
            );
        } else {
            seen.push((&at.value, at.pos, &at.path));
        }
    }
}

fn fwmarks(clusters: &[(&RawCluster, RawSettings)], d: &mut Diags) {
    // (mark, what holds it and where)
    let mut taken: Vec<(u32, String)> = Vec::new();
    for (c, s) in clusters {
        let Slot::Given(f) = &c.fwmark else { continue };
        let mark = f.value;
        if let Some((_, what)) = taken.iter().find(|(m, _)| *m == mark) {
            d.at(f.pos, &f.path, format!("fwmark {mark} is already {what}"));
            continue;
        }
        taken.push((mark, format!("the fwmark of {} (at {})", owner(c), f.pos)));
        // Defaults filled in (reported missing keys are validate.rs's business).
        let s = s.values();
        if !has_relay(&s) {
            continue;
        }
        let Some(offset) = s.offset else { continue };
        let Some(relay) = mark.checked_add(offset) else {
            d.at(
                f.pos,
                &f.path,
                format!(
                    "the relay fwmark {mark} + offset {offset} is above the largest fwmark, {}",
                    u32::MAX
                ),
            );
            continue;
        };
        if let Some((_, what)) = taken.iter().find(|(m, _)| *m == relay) {
            d.at(
                f.pos,
                &f.path,
                format!("the relay fwmark {relay} ({mark} + offset {offset}) is already {what}"),
            );
            continue;
        }
        taken.push((
            relay,
            format!(
                "the relay fwmark of {} ({mark} + offset {offset}, at {})",
                owner(c),
                f.pos
            ),
        ));
    }
}

fn overlaps(a: PortRange, b: PortRange) -> bool {
    a.first <= b.last && b.first <= a.last
}

fn ports_text(p: PortRange) -> String {
    if p.first == p.last {
        p.first.to_string()
    } else {
        format!("{}-{}", p.first, p.last)
    }
}

fn vips(clusters: &[(&RawCluster, RawSettings)], d: &mut Diags) {
    struct Seen {
        addr: std::net::IpAddr,
        proto: L4Proto,
        ports: PortRange,
        owner: String,
        path: KeyPath,
        pos: Pos,
    }
    let mut seen: Vec<Seen> = Vec::new();
    for (c, _) in clusters {
        let Slot::Given(list) = &c.vips else { continue };
        for at in &list.value {
            let v = &at.value;
            let (Some(addr), Some(ports)) = (v.address.value(), v.ports.value()) else {
                continue;
            };
            let proto = match &v.protocol {
                Slot::Given(at) => at.value,
                Slot::Absent => L4Proto::Tcp,
                Slot::Invalid => continue,
            };
            if let Some(o) = seen
                .iter()
                .find(|o| o.addr == *addr && o.proto == proto && overlaps(o.ports, *ports))
            {
                d.at(
                    at.pos,
                    &at.path,
                    format!(
                        "{addr} {} {} overlaps {} {} {} of {} ({} at {})",
                        proto.name(),
                        ports_text(*ports),
                        o.addr,
                        o.proto.name(),
                        ports_text(o.ports),
                        o.owner,
                        o.path,
                        o.pos
                    ),
                );
                continue;
            }
            seen.push(Seen {
                addr: *addr,
                proto,
                ports: *ports,
                owner: owner(c),
                path: at.path.clone(),
                pos: at.pos,
            });
        }
    }
}
