//! `ipvsadm -L -c`: the connection table, read from `/proc/net/ip_vs_conn` exactly as
//! ipvsadm reads it (`list_conn`, `print_conn`): the first line is skipped, each other line
//! is scanned as `%s %s %hX %s %hX %s %hX %s %d %s %s`, addresses are IPv6 text, IPv4
//! text or IPv4 hex, and each row is printed with ipvsadm's columns.
//!
//! This only reads the proc file the caller hands over; it never writes anything.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::command::Format;
use super::listing::addrport;
use super::names::{Resolver, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};

/// Where the kernel publishes the connection table.
pub const CONN_PROC_FILE: &str = "/proc/net/ip_vs_conn";

/// One connection, as scanned from the proc file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Conn {
    pub protocol: String,
    pub client: IpAddr,
    pub client_port: u16,
    pub virtual_addr: IpAddr,
    pub virtual_port: u16,
    pub dest: IpAddr,
    pub dest_port: u16,
    pub state: String,
    pub expires: i32,
    pub pe_name: Option<String>,
    pub pe_data: Option<String>,
}

/// `%hX`: optional sign and `0x`, hex digits, truncated to 16 bits; None if no digits.
fn scan_hex_u16(tok: &str) -> Option<u16> {
    let (neg, t) = match tok.as_bytes().first() {
        Some(b'-') => (true, &tok[1..]),
        Some(b'+') => (false, &tok[1..]),
        _ => (false, tok),
    };
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .filter(|r| r.starts_with(|c: char| c.is_ascii_hexdigit()))
        .unwrap_or(t);
    let digits: String = t.chars().take_while(char::is_ascii_hexdigit).collect();
    if digits.is_empty() {
        return None;
    }
    let v = digits.chars().fold(0u64, |acc, c| {
        acc.wrapping_mul(16)
            .wrapping_add(u64::from(c.to_digit(16).unwrap_or(0)))
    });
    let v = if neg { v.wrapping_neg() } else { v };
    Some(v as u16)
}

/// `strtoul(text, NULL, 16)` as an IPv4 address (ipvsadm's fallback for hex addresses).
fn hex_v4(text: &str) -> Ipv4Addr {
    let t = text.trim_start();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let digits: String = t.chars().take_while(char::is_ascii_hexdigit).collect();
    let v =
        u64::from_str_radix(&digits, 16).unwrap_or(if digits.is_empty() { 0 } else { u64::MAX });
    Ipv4Addr::from(v as u32)
}

fn v6(text: &str) -> Option<Ipv6Addr> {
    text.parse().ok()
}

fn v4(text: &str) -> Option<Ipv4Addr> {
    text.parse().ok()
}

/// Scans one line of the proc file; None for a line ipvsadm would give up on (empty).
pub fn scan_line(line: &str) -> Option<(Conn, usize)> {
    let toks: Vec<&str> = line.split_ascii_whitespace().collect();
    if toks.is_empty() {
        return None;
    }
    // sscanf stops at the first conversion that fails; later fields keep defaults.
    let get = |i: usize| toks.get(i).copied();
    let spec = *b"ssxsxsxsdss";
    let mut n = 0;
    let mut ports = [0u16; 3];
    for (i, kind) in spec.iter().enumerate() {
        let Some(tok) = get(i) else { break };
        match kind {
            b'x' => match scan_hex_u16(tok) {
                Some(p) => ports[(i - 2) / 2] = p,
                None => break,
            },
            b'd' if tok.parse::<i32>().is_err() => break,
            _ => {}
        }
        n += 1;
    }
    let c_text = get(1).unwrap_or("");
    let v_text = get(3).unwrap_or("");
    let d_text = get(5).unwrap_or("");
    let (client, virtual_addr) = if let Some(c) = v6(c_text) {
        (
            IpAddr::V6(c),
            IpAddr::V6(v6(v_text).unwrap_or(Ipv6Addr::UNSPECIFIED)),
        )
    } else if let Some(c) = v4(c_text) {
        (
            IpAddr::V4(c),
            IpAddr::V4(v4(v_text).unwrap_or(Ipv4Addr::UNSPECIFIED)),
        )
    } else {
        (IpAddr::V4(hex_v4(c_text)), IpAddr::V4(hex_v4(v_text)))
    };
    let dest = if let Some(d) = v6(d_text) {
        IpAddr::V6(d)
    } else if let Some(d) = v4(d_text) {
        IpAddr::V4(d)
    } else {
        IpAddr::V4(hex_v4(d_text))
    };
    let conn = Conn {
        protocol: toks[0].to_string(),
        client,
        client_port: ports[0],
        virtual_addr,
        virtual_port: ports[1],
        dest,
        dest_port: ports[2],
        state: get(7).unwrap_or("").to_string(),
        expires: get(8).and_then(|t| t.parse().ok()).unwrap_or(0),
        pe_name: get(9).map(str::to_string),
        pe_data: get(10).map(str::to_string),
    };
    Some((conn, n))
}

fn proto_number(name: &str) -> u16 {
    match name {
        "TCP" => IPPROTO_TCP,
        "UDP" => IPPROTO_UDP,
        "SCTP" => IPPROTO_SCTP,
        _ => 0,
    }
}

fn padded(out: &mut Vec<u8>, text: &[u8], width: usize) {
    out.extend_from_slice(text);
    out.resize(out.len() + width.saturating_sub(text.len()), b' ');
}

/// The column titles (`list_conn`).
pub fn title(format: &Format) -> String {
    let mut s = String::from("IPVS connection entries\n");
    if format.persistent_conn {
        s.push_str(&format!(
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} {}\n",
            "state", "source", "virtual", "destination", "pe name", "pe_data"
        ));
    } else {
        s.push_str(&format!(
            "pro expire {:<11} {:<18} {:<18} {}\n",
            "state", "source", "virtual", "destination"
        ));
    }
    s
}

/// One row (`print_conn`); `fields` is how many of the eleven conversions succeeded.
pub fn row(c: &Conn, fields: usize, format: &Format, names: &dyn Resolver) -> Vec<u8> {
    let proto = proto_number(&c.protocol);
    let cname = addrport(&c.client, c.client_port, proto, format, names);
    let vname = addrport(&c.virtual_addr, c.virtual_port, proto, format, names);
    let dname = addrport(&c.dest, c.dest_port, proto, format, names);
    let expires = c.expires as u32;
    let expire = format!("{:02}:{:02}", (expires / 60) as i32, (expires % 60) as i32);
    let mut out = Vec::new();
    padded(&mut out, c.protocol.as_bytes(), 3);
    out.push(b' ');
    padded(&mut out, expire.as_bytes(), 6);
    out.push(b' ');
    padded(&mut out, c.state.as_bytes(), 11);
    out.push(b' ');
    padded(&mut out, &cname, 18);
    out.push(b' ');
    padded(&mut out, &vname, 18);
    out.push(b' ');
    if format.persistent_conn && fields == 11 {
        padded(&mut out, &dname, 16);
        out.push(b' ');
        padded(&mut out, c.pe_name.as_deref().unwrap_or("").as_bytes(), 18);
        out.push(b' ');
        out.extend_from_slice(c.pe_data.as_deref().unwrap_or("").as_bytes());
    } else {
        out.extend_from_slice(&dname);
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adm::names::StaticResolver;

    #[test]
    fn hex_ipv4_rows_print_like_ipvsadm() {
        let line = "TCP 0A000002 D431 C0000201 0050 0A000001 0050 ESTABLISHED 899\n";
        let (c, n) = scan_line(line).unwrap();
        assert_eq!(n, 9);
        assert_eq!(c.client, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(c.client_port, 0xd431);
        let f = Format {
            numeric: true,
            ..Format::default()
        };
        let out = row(&c, n, &f, &StaticResolver::empty());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "TCP 14:59  ESTABLISHED 10.0.0.2:54321     192.0.2.1:80       10.0.0.1:80\n"
        );
    }

    #[test]
    fn ipv6_and_persistence_engine_columns() {
        let line = "UDP 2001:0db8:0000:0000:0000:0000:0000:0002 13C4 2001:0db8:0000:0000:0000:0000:0000:0001 13C4 2001:0db8:0000:0000:0000:0000:0000:0003 13C4 UDP 299 sip callid\n";
        let (c, n) = scan_line(line).unwrap();
        assert_eq!(n, 11);
        let f = Format {
            numeric: true,
            persistent_conn: true,
            ..Format::default()
        };
        let out = String::from_utf8(row(&c, n, &f, &StaticResolver::empty())).unwrap();
        assert_eq!(
            out,
            "UDP 04:59  UDP         [2001:db8::2]:5060 [2001:db8::1]:5060 [2001:db8::3]:5060 sip                callid\n"
        );
        assert!(title(&f).ends_with("destination        pe name          pe_data\n"));
    }
}
