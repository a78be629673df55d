//! ipvsadm's save format (`ipvsadm -S -n`), the lingua franca for IPVS state: big_brother
//! parsed it, operators diff it, `bigbro check` prints plans in it and `bigbro ipvsadm -S`
//! must reproduce it byte for byte.
//!
//! Only the numeric form lives here (no name resolution); `adm` adds names on top.

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

/// The `-b` text for a service's scheduler flags (`sh-fallback,sh-port`), or "".
pub fn sched_flag_names(scheduler: &str, flags: ServiceFlags) -> String {
    let prefix = if scheduler == "mh" { "mh" } else { "sh" };
    let mut names = Vec::new();
    if flags.contains(ServiceFlags::SH_FALLBACK) {
        names.push(format!("{prefix}-fallback"));
    }
    if flags.contains(ServiceFlags::SH_PORT) {
        names.push(format!("{prefix}-port"));
    }
    if flags.contains(ServiceFlags::SCHED3) {
        names.push("flag-3".to_string());
    }
    names.join(",")
}

/// One `-a ...` line for a destination of `key` (no trailing newline).
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
    if dest.upper_threshold != 0 {
        line.push_str(&format!(" -x {}", dest.upper_threshold));
    }
    if dest.lower_threshold != 0 {
        line.push_str(&format!(" -y {}", dest.lower_threshold));
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
}
