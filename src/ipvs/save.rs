//! ipvsadm's save format (`ipvsadm -S -n`), the lingua franca for IPVS state: big_brother
//! parsed it, operators diff it, `bigbro check` prints plans in it and `bigbro ipvsadm -S`
//! must reproduce it byte for byte.
//!
//! Only the numeric form lives here (no name resolution); `adm` adds names on top.

use std::cmp::Ordering;
use std::net::IpAddr;

use super::model::{
    Dest, Family, ForwardMethod, Service, ServiceFlags, ServiceKey, Tunnel, TunnelFlags,
};

/// One `-A ...` line for a service (no trailing newline).
pub fn service_line(svc: &Service) -> String {
    let mut line = format!("-A {} -s {}", svc.key, svc.scheduler);
    if svc.flags.contains(ServiceFlags::PERSISTENT) {
        line.push_str(&format!(" -p {}", svc.timeout));
        match svc.key.family() {
            Family::V4 if svc.netmask != 0xffff_ffff => {
                line.push_str(&format!(" -M {}", std::net::Ipv4Addr::from(svc.netmask)));
            }
            Family::V6 if svc.netmask != 128 => line.push_str(&format!(" -M {}", svc.netmask)),
            _ => {}
        }
        if let Some(pe) = &svc.pe_name {
            line.push_str(&format!(" --pe {pe}"));
        }
    }
    if svc.flags.contains(ServiceFlags::ONEPACKET) {
        line.push_str(" -o");
    }
    let sched_flags = sched_flag_names(&svc.scheduler, svc.flags);
    if !sched_flags.is_empty() {
        line.push_str(&format!(" -b {sched_flags}"));
    }
    line
}

/// The `-b` text for a service's scheduler flags, or "": ipvsadm names the two
/// scheduler-specific bits after the scheduler (`sh-fallback,sh-port` for sh,
/// `mh-fallback,mh-port` for mh, and leaves the third bit out for those two) and calls
/// them `flag-1,flag-2,flag-3` for any other scheduler.
pub fn sched_flag_names(scheduler: &str, flags: ServiceFlags) -> String {
    let (first, second, third) = match scheduler {
        "sh" => ("sh-fallback", "sh-port", None),
        "mh" => ("mh-fallback", "mh-port", None),
        _ => ("flag-1", "flag-2", Some("flag-3")),
    };
    let mut names = Vec::new();
    if flags.contains(ServiceFlags::SCHED1) {
        names.push(first);
    }
    if flags.contains(ServiceFlags::SCHED2) {
        names.push(second);
    }
    if let Some(third) = third.filter(|_| flags.contains(ServiceFlags::SCHED3)) {
        names.push(third);
    }
    names.join(",")
}

/// One `-a ...` line for a destination of `key` (no trailing newline). Like ipvsadm's,
/// it leaves the connection thresholds out: `-S` does not save `-x`/`-y`.
pub fn dest_line(key: &ServiceKey, dest: &Dest) -> String {
    let mut line = format!(
        "-a {key} -r {} {} -w {}",
        dest_text(&dest.addr, dest.port),
        forward_switch(dest.forward),
        dest.weight
    );
    if let ForwardMethod::Tunnel(t) = dest.forward {
        line.push_str(&tunnel_args(t));
    }
    line
}

fn dest_text(addr: &IpAddr, port: u16) -> String {
    super::model::socket_text(addr, port)
}

/// `-m`, `-i` or `-g` (LocalNode and Bypass save as `-g`, as ipvsadm does).
pub fn forward_switch(fwd: ForwardMethod) -> &'static str {
    match fwd {
        ForwardMethod::Masquerade => "-m",
        ForwardMethod::Tunnel(_) => "-i",
        ForwardMethod::DirectRoute | ForwardMethod::LocalNode | ForwardMethod::Bypass => "-g",
    }
}

fn csum_arg(flags: TunnelFlags) -> &'static str {
    if flags.0 & TunnelFlags::REMCSUM.0 != 0 {
        " --tun-remcsum"
    } else if flags.0 & TunnelFlags::CSUM.0 != 0 {
        " --tun-csum"
    } else {
        " --tun-nocsum"
    }
}

fn tunnel_args(t: Tunnel) -> String {
    match t {
        Tunnel::Ipip => " --tun-type ipip".to_string(),
        Tunnel::Gue { port, flags } => {
            format!(" --tun-type gue --tun-port {port}{}", csum_arg(flags))
        }
        Tunnel::Gre { flags } => format!(" --tun-type gre{}", csum_arg(flags)),
    }
}

/// A whole save listing: each service line followed by its dests' lines.
pub fn save_text(state: &[(Service, Vec<Dest>)]) -> String {
    let mut out = String::new();
    for (svc, dests) in state {
        out.push_str(&service_line(svc));
        out.push('\n');
        for d in dests {
            out.push_str(&dest_line(&svc.key, d));
            out.push('\n');
        }
    }
    out
}

/// `a - b` of two C unsigned ints stored into an `int`, as libipvs's comparators do:
/// differences of 2^31 or more wrap around and flip the sign.
fn c_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// The four big-endian words of an address as `union nf_inet_addr` holds it (IPv4 in
/// the first word, the rest zero).
fn words(addr: &IpAddr) -> [u32; 4] {
    match addr {
        IpAddr::V4(a) => [u32::from(*a), 0, 0, 0],
        IpAddr::V6(a) => {
            let s = a.segments();
            [0, 1, 2, 3].map(|i| (u32::from(s[2 * i]) << 16) | u32::from(s[2 * i + 1]))
        }
    }
}

/// `a - b` of two addresses the way libipvs compares them: all four words if the first
/// one is IPv6, only the first word otherwise.
fn c_addr_diff(a: &IpAddr, b: &IpAddr) -> i32 {
    let (wa, wb) = (words(a), words(b));
    let n = if a.is_ipv6() { 4 } else { 1 };
    (0..n)
        .map(|i| c_diff(wa[i], wb[i]))
        .find(|r| *r != 0)
        .unwrap_or(0)
}

/// libipvs's `ipvs_cmp_services`, the order of `ipvsadm -L`/`-S`: fwmark, family,
/// protocol, address, port, each as a C `int` difference (so a difference of 2^31 or more
/// compares backwards, e.g. 10.0.0.1 sorts after 200.0.0.1, exactly as ipvsadm prints).
pub fn ipvsadm_cmp_services(a: &ServiceKey, b: &ServiceKey) -> Ordering {
    // What libipvs holds for each: fwmark services have protocol 0, address 0, port 0.
    let parts = |k: &ServiceKey| match k {
        ServiceKey::Fwmark { family, mark } => {
            (mark.get(), family.af(), 0u16, IpAddr::from([0u8; 4]), 0u16)
        }
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => (0, Family::of(addr).af(), protocol.ipproto(), *addr, *port),
    };
    let (fa, afa, pa, aa, pta) = parts(a);
    let (fb, afb, pb, ab, ptb) = parts(b);
    let mut r = c_diff(fa, fb);
    if r == 0 {
        r = i32::from(afa) - i32::from(afb);
    }
    if r == 0 {
        r = i32::from(pa) - i32::from(pb);
    }
    if r == 0 {
        r = if afa == Family::AF_INET6 {
            c_addr_diff(&aa, &ab)
        } else {
            c_diff(words(&aa)[0], words(&ab)[0])
        };
    }
    if r == 0 {
        r = i32::from(pta) - i32::from(ptb);
    }
    r.cmp(&0)
}

/// libipvs's `ipvs_cmp_dests`: address (C `int` differences, as above), then port.
pub fn ipvsadm_cmp_dests(a: &Dest, b: &Dest) -> Ordering {
    let mut r = c_addr_diff(&a.addr, &b.addr);
    if r == 0 {
        r = i32::from(a.port) - i32::from(b.port);
    }
    r.cmp(&0)
}

/// Sorts services and each service's destinations the way `ipvsadm -S` lists them
/// (a stable merge sort, like glibc's `qsort` on Debian 12, so ties and the rare
/// non-transitive wrap-around cases come out as ipvsadm prints them).
pub fn sort_like_ipvsadm(state: &mut [(Service, Vec<Dest>)]) {
    state.sort_by(|a, b| ipvsadm_cmp_services(&a.0.key, &b.0.key));
    for (_, dests) in state.iter_mut() {
        dests.sort_by(ipvsadm_cmp_dests);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Fwmark;

    #[test]
    fn matches_the_reference_save_sample() {
        let key = ServiceKey::fwmark_v4(Fwmark::new(7).unwrap());
        let mut svc = Service::new(key, "wlc");
        svc.flags = svc.flags.with(ServiceFlags::PERSISTENT);
        svc.timeout = 300;
        let dest = Dest::ipip("10.0.0.1".parse().unwrap(), 100);
        assert_eq!(
            save_text(&[(svc, vec![dest])]),
            "-A -f 7 -s wlc -p 300\n-a -f 7 -r 10.0.0.1:0 -i -w 100 --tun-type ipip\n"
        );
        let tcp = ServiceKey::Addr {
            protocol: super::super::model::Protocol::Tcp,
            addr: "10.0.0.100".parse().unwrap(),
            port: 80,
        };
        let d = Dest {
            port: 80,
            forward: ForwardMethod::DirectRoute,
            ..Dest::ipip("10.0.0.1".parse().unwrap(), 1)
        };
        assert_eq!(
            save_text(&[(Service::new(tcp, "wlc"), vec![d])]),
            "-A -t 10.0.0.100:80 -s wlc\n-a -t 10.0.0.100:80 -r 10.0.0.1:80 -g -w 1\n"
        );
    }

    #[test]
    fn ipvsadm_order_keeps_c_integer_quirks() {
        use super::super::model::Protocol;
        let tcp = |a: &str, port| ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: a.parse().unwrap(),
            port,
        };
        let fwm = |m| ServiceKey::fwmark_v4(Fwmark::new(m).unwrap());
        // Address services (fwmark 0) before fwmark services; then by fwmark.
        assert_eq!(
            ipvsadm_cmp_services(&tcp("10.0.0.1", 80), &fwm(1)),
            Ordering::Less
        );
        assert_eq!(ipvsadm_cmp_services(&fwm(7), &fwm(8)), Ordering::Less);
        // Ports, and protocol before address.
        assert_eq!(
            ipvsadm_cmp_services(&tcp("10.0.0.1", 80), &tcp("10.0.0.1", 443)),
            Ordering::Less
        );
        // The wrap-around: 0x0a000001 - 0xc8000001 is positive as a C int.
        assert_eq!(
            ipvsadm_cmp_services(&tcp("10.0.0.1", 80), &tcp("200.0.0.1", 80)),
            Ordering::Greater
        );
        let d = |a: &str, port| Dest {
            port,
            ..Dest::ipip(a.parse().unwrap(), 1)
        };
        assert_eq!(
            ipvsadm_cmp_dests(&d("10.0.0.2", 0), &d("10.0.0.10", 0)),
            Ordering::Less
        );
        assert_eq!(
            ipvsadm_cmp_dests(&d("2001:db8::1", 0), &d("2001:db8::1", 1)),
            Ordering::Less
        );
    }
}
