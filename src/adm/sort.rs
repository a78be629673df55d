//! The order ipvsadm lists services and destinations in: libipvs's comparison functions
//! (`ipvs_cmp_services`, `ipvs_cmp_dests`) fed to glibc 2.36's `qsort`, which is a top-down
//! merge sort.
//!
//! The comparisons subtract unsigned values and read the result as a C `int`, so marks or
//! addresses more than 2^31 apart compare "backwards" (200.0.0.1 sorts before 10.0.0.1) and
//! the relation is not even transitive. Rust's sorts may panic on such a relation and would
//! in any case order differently, so this reproduces glibc's merge step by step: the same
//! comparisons in the same sequence give the same permutation. Nothing here does I/O.

use std::net::IpAddr;

use crate::ipvs::{DestEntry, ServiceEntry, ServiceKey};

/// glibc `msort_with_tmp`: stable top-down merge sort, left half first, ties to the left.
pub fn glibc_msort<T: Clone>(v: &mut [T], cmp: &dyn Fn(&T, &T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    glibc_msort(&mut v[..n1], cmp);
    glibc_msort(&mut v[n1..], cmp);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            merged.push(v[i].clone());
            i += 1;
        } else {
            merged.push(v[j].clone());
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..n1]);
    merged.extend_from_slice(&v[j..]);
    v.clone_from_slice(&merged);
}

/// The 16-byte `union nf_inet_addr` as four host-order words (IPv4 in the first word).
fn words(addr: &IpAddr) -> [u32; 4] {
    match addr {
        IpAddr::V4(a) => [u32::from(*a), 0, 0, 0],
        IpAddr::V6(a) => {
            let o = a.octets();
            std::array::from_fn(|i| {
                u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
            })
        }
    }
}

/// `ntohl(a) - ntohl(b)` read as an `int`, over the words libipvs looks at: all four if
/// the first operand is IPv6, else only the first.
fn addr_diff(a: &IpAddr, b: &IpAddr) -> i32 {
    let (wa, wb) = (words(a), words(b));
    let count = if a.is_ipv6() { 4 } else { 1 };
    let mut r = 0;
    for i in 0..count {
        r = wa[i].wrapping_sub(wb[i]) as i32;
        if r != 0 {
            break;
        }
    }
    r
}

/// What libipvs compares in a service entry: fwmark, af, protocol, address, port, with
/// the kernel's zero protocol/address/port for fwmark services.
fn service_fields(key: &ServiceKey) -> (u32, u16, u16, IpAddr, u16) {
    match key {
        ServiceKey::Fwmark { family, mark } => (
            mark.get(),
            family.af(),
            0,
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            0,
        ),
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => (0, key.family().af(), protocol.ipproto(), *addr, *port),
    }
}

/// libipvs `ipvs_cmp_services`.
pub fn cmp_services(a: &ServiceEntry, b: &ServiceEntry) -> i32 {
    let (fa, afa, pa, aa, porta) = service_fields(&a.service.key);
    let (fb, afb, pb, ab, portb) = service_fields(&b.service.key);
    let r = fa.wrapping_sub(fb) as i32;
    if r != 0 {
        return r;
    }
    let r = i32::from(afa) - i32::from(afb);
    if r != 0 {
        return r;
    }
    let r = i32::from(pa) - i32::from(pb);
    if r != 0 {
        return r;
    }
    let r = if afa == 10 {
        addr_diff(&aa, &ab)
    } else {
        words(&aa)[0].wrapping_sub(words(&ab)[0]) as i32
    };
    if r != 0 {
        return r;
    }
    i32::from(porta) - i32::from(portb)
}

/// libipvs `ipvs_cmp_dests`.
pub fn cmp_dests(a: &DestEntry, b: &DestEntry) -> i32 {
    let r = addr_diff(&a.dest.addr, &b.dest.addr);
    if r != 0 {
        return r;
    }
    i32::from(a.dest.port) - i32::from(b.dest.port)
}

/// Services in ipvsadm's listing order.
pub fn sort_services(v: &mut [ServiceEntry]) {
    glibc_msort(v, &cmp_services);
}

/// Destinations in ipvsadm's listing order.
pub fn sort_dests(v: &mut [DestEntry]) {
    glibc_msort(v, &cmp_dests);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::{Dest, Protocol, Service, Stats};
    use crate::types::Fwmark;

    fn svc(key: ServiceKey) -> ServiceEntry {
        ServiceEntry {
            service: Service::new(key, "wlc"),
            stats: Stats::default(),
        }
    }

    fn dest(addr: &str, port: u16) -> DestEntry {
        DestEntry {
            dest: Dest {
                port,
                ..Dest::ipip(addr.parse().unwrap(), 1)
            },
            active_conns: 0,
            inactive_conns: 0,
            persist_conns: 0,
            stats: Stats::default(),
        }
    }

    #[test]
    fn address_services_come_before_fwmarks() {
        let tcp = |a: &str, p| {
            svc(ServiceKey::Addr {
                protocol: Protocol::Tcp,
                addr: a.parse().unwrap(),
                port: p,
            })
        };
        let udp = svc(ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr: "10.0.0.1".parse().unwrap(),
            port: 53,
        });
        let fwm = |m| svc(ServiceKey::fwmark_v4(Fwmark::new(m).unwrap()));
        let mut v = vec![
            fwm(7),
            udp.clone(),
            tcp("10.0.0.2", 80),
            fwm(3),
            tcp("10.0.0.1", 443),
            tcp("10.0.0.1", 80),
        ];
        sort_services(&mut v);
        let keys: Vec<String> = v.iter().map(|e| e.service.key.to_string()).collect();
        assert_eq!(
            keys,
            [
                "-t 10.0.0.1:80",
                "-t 10.0.0.1:443",
                "-t 10.0.0.2:80",
                "-u 10.0.0.1:53",
                "-f 3",
                "-f 7"
            ]
        );
    }

    #[test]
    fn int_wraparound_orders_far_addresses_backwards() {
        let mut v = vec![dest("10.0.0.1", 0), dest("200.0.0.1", 0)];
        sort_dests(&mut v);
        assert_eq!(v[0].dest.addr.to_string(), "200.0.0.1");
        // A non-transitive cycle (0.0.0.0 < 96.0.0.0 < 192.0.0.0 < 0.0.0.0) still gives
        // glibc's deterministic answer instead of a panic.
        let mut v = vec![
            dest("192.0.0.0", 0),
            dest("96.0.0.0", 0),
            dest("0.0.0.0", 0),
        ];
        sort_dests(&mut v);
        let order: Vec<String> = v.iter().map(|d| d.dest.addr.to_string()).collect();
        assert_eq!(order, ["192.0.0.0", "0.0.0.0", "96.0.0.0"]);
    }

    #[test]
    fn dests_by_address_then_port() {
        let mut v = vec![
            dest("10.0.0.2", 80),
            dest("10.0.0.1", 8080),
            dest("10.0.0.1", 80),
            dest("::1", 80),
        ];
        sort_dests(&mut v);
        let order: Vec<String> = v
            .iter()
            .map(|d| format!("{}:{}", d.dest.addr, d.dest.port))
            .collect();
        assert_eq!(
            order,
            ["::1:80", "10.0.0.1:80", "10.0.0.1:8080", "10.0.0.2:80"]
        );
    }
}
