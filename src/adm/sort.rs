//! The order ipvsadm lists services and destinations in, applied to dumped entries: the
//! comparators and glibc's merge sort live in `ipvs::save` (shared with plans and tests);
//! this only adapts them to `ServiceEntry` / `DestEntry`. Nothing here does I/O.

use crate::ipvs::save::{glibc_msort, ipvsadm_cmp_dests, ipvsadm_cmp_services};
use crate::ipvs::{DestEntry, ServiceEntry};

/// Services in ipvsadm's listing order.
pub fn sort_services(v: &mut [ServiceEntry]) {
    glibc_msort(v, &|a, b| {
        ipvsadm_cmp_services(&a.service.key, &b.service.key)
    });
}

/// Destinations in ipvsadm's listing order.
pub fn sort_dests(v: &mut [DestEntry]) {
    glibc_msort(v, &|a, b| ipvsadm_cmp_dests(&a.dest, &b.dest));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::{Dest, Protocol, Service, ServiceKey, Stats};
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
            udp,
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
    fn dests_by_address_then_port_with_c_wraparound() {
        let mut v = vec![
            dest("10.0.0.2", 80),
            dest("10.0.0.1", 8080),
            dest("200.0.0.1", 0),
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
            [
                "200.0.0.1:0",
                "::1:80",
                "10.0.0.1:80",
                "10.0.0.1:8080",
                "10.0.0.2:80"
            ]
        );
    }
}
