//! ipvsadm's save format (`ipvsadm -S -n`), the lingua franca for IPVS state: big_brother
//! parsed it, operators diff it, `bigbro check` prints plans in it and `bigbro ipvsadm -S`
//! must reproduce it byte for byte.
//!
//! The lines are ipvsadm 1.31's `FMT_RULE` output exactly, quirks included: fwmarks print
//! as signed ints, thresholds are not saved, `--pe` is saved even without `-p`, the bypass
//! method prints as `(null)`, and IPv6 addresses are written as glibc's `inet_ntop` writes
//! them. Only the numeric form is built here; `adm` renders names and passes them in.
//! Nothing here sorts (ipvsadm's order lives in `adm`) or performs I/O.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv6Addr};

use super::model::{
    Dest, Family, ForwardMethod, Protocol, Service, ServiceFlags, ServiceKey, Tunnel, TunnelFlags,
};

/// An address as glibc's `inet_ntop` prints it (IPv6: RFC 5952 compression, plus the
/// dotted quad for IPv4-mapped `::ffff:a.b.c.d` and IPv4-compatible `::a.b.c.d`).
pub fn ntop(addr: &IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => ntop6(a),
    }
}

fn ntop6(addr: &Ipv6Addr) -> String {
    let words = addr.segments();
    // The first longest run of zero words, if at least two long.
    let (mut base, mut len) = (usize::MAX, 0);
    let mut i = 0;
    while i < 8 {
        let start = i;
        while i < 8 && words[i] == 0 {
            i += 1;
        }
        if i - start > len {
            (base, len) = (start, i - start);
        }
        i += 1;
    }
    if len < 2 {
        (base, len) = (usize::MAX, 0);
    }
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if i >= base && i < base + len {
            if i == base {
                out.push(':');
            }
            i += 1;
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6 && base == 0 && (len == 6 || (len == 5 && words[5] == 0xffff)) {
            let o = addr.octets();
            out.push_str(&format!("{}.{}.{}.{}", o[12], o[13], o[14], o[15]));
            return out;
        }
        out.push_str(&format!("{:x}", words[i]));
        i += 1;
    }
    if base != usize::MAX && base + len == 8 {
        out.push(':');
    }
    out
}

/// `10.0.0.1:80` or `[2001:db8::1]:80`: ipvsadm's numeric `addrport_to_anyname`.
pub fn endpoint_text(addr: &IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(_) => format!("{}:{port}", ntop(addr)),
        IpAddr::V6(_) => format!("[{}]:{port}", ntop(addr)),
    }
}

/// The service switch ipvsadm writes in rules: `-f 7`, `-f 7 -6`, or `-t|-u|--sctp-service`
/// followed by `endpoint` (numeric or named; for fwmark services it is not used). Fwmarks
/// print as C `int`s, as ipvsadm 1.31 prints them.
pub fn service_arg_with(key: &ServiceKey, endpoint: &str) -> String {
    match key {
        ServiceKey::Fwmark { family, mark } => {
            let mark = mark.get() as i32;
            match family {
                Family::V4 => format!("-f {mark}"),
                Family::V6 => format!("-f {mark} -6"),
            }
        }
        ServiceKey::Addr { protocol, .. } => {
            let switch = match protocol {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
                Protocol::Sctp => "--sctp-service",
            };
            format!("{switch} {endpoint}")
        }
    }
}

/// The numeric service switch (`-f 7`, `-t 10.0.0.1:80`).
pub fn service_arg(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Fwmark { .. } => service_arg_with(key, ""),
        ServiceKey::Addr { addr, port, .. } => service_arg_with(key, &endpoint_text(addr, *port)),
    }
}

/// The `-A` rule for `svc`, given its rendered service switch (no trailing newline).
pub fn service_rule(svc_arg: &str, svc: &Service) -> String {
    let mut line = format!("-A {svc_arg} -s {}", svc.scheduler);
    if svc.flags.contains(ServiceFlags::PERSISTENT) {
        line.push_str(&format!(" -p {}", svc.timeout));
        match svc.key.family() {
            Family::V4 if svc.netmask != 0xffff_ffff => {
                line.push_str(&format!(" -M {}", std::net::Ipv4Addr::from(svc.netmask)));
            }
            Family::V6 if svc.netmask != 128 => {
                line.push_str(&format!(" -M {}", svc.netmask as i32))
            }
            _ => {}
        }
    }
    if let Some(pe) = svc.pe_name.as_deref().filter(|p| !p.is_empty()) {
        line.push_str(&format!(" --pe {pe}"));
    }
    if svc.flags.contains(ServiceFlags::ONEPACKET) {
        line.push_str(" -o");
    }
    if has_sched_flags(svc.flags) {
        line.push_str(" -b ");
        line.push_str(&sched_flag_names(&svc.scheduler, svc.flags));
    }
    line
}

/// One `-A ...` line for a service (no trailing newline).
pub fn service_line(svc: &Service) -> String {
    service_rule(&service_arg(&svc.key), svc)
}

/// True if any of the scheduler flag bits (SCHED1..3) is set.
pub fn has_sched_flags(flags: ServiceFlags) -> bool {
    flags.bits() & (ServiceFlags::SCHED1 | ServiceFlags::SCHED2 | ServiceFlags::SCHED3) != 0
}

/// The scheduler flags as ipvsadm names them (`print_sched_flags`): `sh-fallback,sh-port`
/// for sh, `mh-fallback,mh-port` for mh, `flag-1,flag-2,flag-3` for any other scheduler.
/// Bits without a name for that scheduler are not shown, so the result may be "".
pub fn sched_flag_names(scheduler: &str, flags: ServiceFlags) -> String {
    let named: &[(u32, &str)] = match scheduler {
        "sh" => &[
            (ServiceFlags::SH_FALLBACK, "sh-fallback"),
            (ServiceFlags::SH_PORT, "sh-port"),
        ],
        "mh" => &[
            (ServiceFlags::SH_FALLBACK, "mh-fallback"),
            (ServiceFlags::SH_PORT, "mh-port"),
        ],
        _ => &[
            (ServiceFlags::SCHED1, "flag-1"),
            (ServiceFlags::SCHED2, "flag-2"),
            (ServiceFlags::SCHED3, "flag-3"),
        ],
    };
    named
        .iter()
        .filter(|(bit, _)| flags.contains(*bit))
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(",")
}

/// The `-a` rule for `dest`, given the rendered service switch and destination endpoint
/// (no trailing newline). Thresholds are not part of ipvsadm's rules.
pub fn dest_rule(svc_arg: &str, dest_endpoint: &str, dest: &Dest) -> String {
    let mut line = format!(
        "-a {svc_arg} -r {dest_endpoint} {} -w {}",
        forward_switch(dest.forward),
        dest.weight as i32
    );
    if let ForwardMethod::Tunnel(t) = dest.forward {
        line.push_str(&tunnel_args(t));
    }
    line
}

/// One `-a ...` line for a destination of `key` (no trailing newline).
pub fn dest_line(key: &ServiceKey, dest: &Dest) -> String {
    dest_rule(
        &service_arg(key),
        &endpoint_text(&dest.addr, dest.port),
        dest,
    )
}

/// `-m`, `-i` or `-g` (LocalNode saves as `-g`; Bypass has no switch and ipvsadm prints
/// C's `(null)` for it).
pub fn forward_switch(fwd: ForwardMethod) -> &'static str {
    match fwd {
        ForwardMethod::Masquerade => "-m",
        ForwardMethod::Tunnel(_) => "-i",
        ForwardMethod::DirectRoute | ForwardMethod::LocalNode => "-g",
        ForwardMethod::Bypass => "(null)",
    }
}

/// `--tun-nocsum`, `--tun-csum` or `--tun-remcsum` (ipvsadm indexes its table by the raw
/// flag value; combined bits cannot be set through ipvsadm and print as remcsum).
pub fn csum_switch(flags: TunnelFlags) -> &'static str {
    ["--tun-nocsum", "--tun-csum", "--tun-remcsum"][csum_index(flags)]
}

/// Which checksum mode tunnel flags select: 0 nocsum, 1 csum, 2 remcsum (remcsum wins
/// when both bits are set, which ipvsadm cannot request).
pub fn csum_index(flags: TunnelFlags) -> usize {
    if flags.0 & TunnelFlags::REMCSUM.0 != 0 {
        2
    } else if flags.0 & TunnelFlags::CSUM.0 != 0 {
        1
    } else {
        0
    }
}

fn tunnel_args(t: Tunnel) -> String {
    match t {
        Tunnel::Ipip => " --tun-type ipip".to_string(),
        Tunnel::Gue { port, flags } => {
            format!(" --tun-type gue --tun-port {port} {}", csum_switch(flags))
        }
        Tunnel::Gre { flags } => format!(" --tun-type gre {}", csum_switch(flags)),
    }
}

/// A whole save listing: each service line followed by its dests' lines, in the order given.
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

/// glibc 2.36's `qsort` (`msort_with_tmp`): a top-down merge sort, left half first, ties
/// to the left. libipvs's comparators are not transitive when values wrap around (see
/// above), so only the same comparisons in the same sequence give ipvsadm's order; Rust's
/// own sorts would order such input differently (or panic).
pub fn glibc_msort<T: Clone>(v: &mut [T], cmp: &dyn Fn(&T, &T) -> Ordering) {
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
        if cmp(&v[i], &v[j]) != Ordering::Greater {
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

/// Sorts services and each service's destinations the way `ipvsadm -S` lists them.
pub fn sort_like_ipvsadm(state: &mut [(Service, Vec<Dest>)]) {
    glibc_msort(state, &|a, b| ipvsadm_cmp_services(&a.0.key, &b.0.key));
    for (_, dests) in state.iter_mut() {
        glibc_msort(dests, &ipvsadm_cmp_dests);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Fwmark;

    fn tcp(addr: &str, port: u16) -> ServiceKey {
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: addr.parse().unwrap(),
            port,
        }
    }

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
        let d = Dest {
            port: 80,
            forward: ForwardMethod::DirectRoute,
            ..Dest::ipip("10.0.0.1".parse().unwrap(), 1)
        };
        assert_eq!(
            save_text(&[(Service::new(tcp("10.0.0.100", 80), "wlc"), vec![d])]),
            "-A -t 10.0.0.100:80 -s wlc\n-a -t 10.0.0.100:80 -r 10.0.0.1:80 -g -w 1\n"
        );
    }

    #[test]
    fn every_service_option_in_ipvsadm_order() {
        let mut svc = Service::new(tcp("10.0.0.1", 5060), "sh");
        svc.flags = ServiceFlags::from_bits(
            ServiceFlags::PERSISTENT
                | ServiceFlags::ONEPACKET
                | ServiceFlags::SH_FALLBACK
                | ServiceFlags::SH_PORT
                | ServiceFlags::SCHED3,
        );
        svc.timeout = 60;
        svc.netmask = 0xffff_ff00;
        svc.pe_name = Some("sip".into());
        assert_eq!(
            service_line(&svc),
            "-A -t 10.0.0.1:5060 -s sh -p 60 -M 255.255.255.0 --pe sip -o -b sh-fallback,sh-port"
        );
        // --pe is saved even without persistence; a lone flag the scheduler cannot name
        // leaves "-b " with nothing after it, as ipvsadm prints it.
        let mut svc = Service::new(tcp("10.0.0.1", 80), "sh");
        svc.pe_name = Some("sip".into());
        svc.flags = ServiceFlags::from_bits(ServiceFlags::SCHED3);
        assert_eq!(service_line(&svc), "-A -t 10.0.0.1:80 -s sh --pe sip -b ");
        let mut v6 = Service::new(
            ServiceKey::Fwmark {
                family: Family::V6,
                mark: Fwmark::new(u32::MAX).unwrap(),
            },
            "rr",
        );
        v6.flags = ServiceFlags::from_bits(ServiceFlags::PERSISTENT | ServiceFlags::SCHED1);
        v6.timeout = 360;
        v6.netmask = 64;
        assert_eq!(
            service_line(&v6),
            "-A -f -1 -6 -s rr -p 360 -M 64 -b flag-1"
        );
    }

    #[test]
    fn dest_lines_for_every_method_and_tunnel() {
        let key = tcp("2001:db8::1", 80);
        let base = Dest {
            addr: "::1.2.3.4".parse().unwrap(),
            port: 80,
            forward: ForwardMethod::Masquerade,
            weight: 3,
            upper_threshold: 10,
            lower_threshold: 5,
        };
        let line = |forward| {
            dest_line(
                &key,
                &Dest {
                    forward,
                    ..base.clone()
                },
            )
        };
        assert_eq!(
            line(ForwardMethod::Masquerade),
            "-a -t [2001:db8::1]:80 -r [::1.2.3.4]:80 -m -w 3"
        );
        assert_eq!(
            line(ForwardMethod::LocalNode),
            "-a -t [2001:db8::1]:80 -r [::1.2.3.4]:80 -g -w 3"
        );
        assert_eq!(
            line(ForwardMethod::Tunnel(Tunnel::Gue {
                port: 6080,
                flags: TunnelFlags::REMCSUM
            })),
            "-a -t [2001:db8::1]:80 -r [::1.2.3.4]:80 -i -w 3 --tun-type gue --tun-port 6080 --tun-remcsum"
        );
        assert_eq!(
            line(ForwardMethod::Tunnel(Tunnel::Gre {
                flags: TunnelFlags::NOCSUM
            })),
            "-a -t [2001:db8::1]:80 -r [::1.2.3.4]:80 -i -w 3 --tun-type gre --tun-nocsum"
        );
        assert_eq!(
            line(ForwardMethod::Bypass),
            "-a -t [2001:db8::1]:80 -r [::1.2.3.4]:80 (null) -w 3"
        );
    }

    #[test]
    fn ntop_matches_glibc() {
        let t = |s: &str| ntop(&s.parse().unwrap());
        assert_eq!(t("::"), "::");
        assert_eq!(t("::1"), "::1");
        assert_eq!(t("2001:db8::1"), "2001:db8::1");
        assert_eq!(t("2001:db8:0:1:0:0:0:1"), "2001:db8:0:1::1");
        assert_eq!(t("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1");
        assert_eq!(t("1:0:1:1:1:1:1:1"), "1:0:1:1:1:1:1:1");
        assert_eq!(t("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(t("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(t("1::"), "1::");
        assert_eq!(t("fe80::1:0:0:1"), "fe80::1:0:0:1");
        assert_eq!(t("10.0.0.1"), "10.0.0.1");
    }

    #[test]
    fn ipvsadm_order_keeps_c_integer_quirks() {
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
        // A non-transitive cycle (0.0.0.0 < 96.0.0.0 < 192.0.0.0 < 0.0.0.0) gets glibc's
        // deterministic answer.
        let mut v = vec![d("192.0.0.0", 0), d("96.0.0.0", 0), d("0.0.0.0", 0)];
        glibc_msort(&mut v, &ipvsadm_cmp_dests);
        let order: Vec<String> = v.iter().map(|d| d.addr.to_string()).collect();
        assert_eq!(order, ["192.0.0.0", "0.0.0.0", "96.0.0.0"]);
    }
}
