//! The conversions of single option values, as ipvsadm.c does them: `host[:port]` and
//! `[v6]:port` (`parse_service`), scheduler flags, timeouts, bounded numbers and C string
//! copies. Each takes bytes and gives a value or ipvsadm's error text; none of them knows
//! which option it serves or touches the parse state.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::super::cnum::{inet_aton, str_is_digit, string_to_number};
use super::super::names::Resolver;
use super::{ParseError, AF_INET, AF_INET6, DEFAULT_PERSISTENT_TIMEOUT};
use crate::ipvs::ServiceFlags;

pub(super) const SERVICE_ADDR: u8 = 1;
pub(super) const SERVICE_PORT: u8 = 2;

/// Where `parse_service` writes: the service itself or a copy used for `-r`.
pub(super) struct Endpoint {
    pub(super) af: u16,
    pub(super) addr: IpAddr,
    pub(super) port: u16,
    pub(super) netmask: u32,
}

/// `strncpy(dst, src, n)` into a zeroed buffer of which `n` bytes may be used, read back as
/// a C string.
pub(super) fn c_copy(src: &[u8], n: usize) -> Vec<u8> {
    let end = src.iter().position(|&b| b == 0).unwrap_or(src.len());
    src[..end.min(n)].to_vec()
}

pub(super) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// ipvsadm's `parse_service`: `host[:port]`, `[v6]:port`, names allowed.
pub(super) fn parse_service(buf: &[u8], proto: u16, ep: &mut Endpoint, names: &dyn Resolver) -> u8 {
    if str_is_digit(buf) {
        return 0;
    }
    let mut buf = buf;
    let mut bracket_port: Option<&[u8]> = None;
    if buf[0] == b'[' {
        let inner = &buf[1..];
        let Some(close) = inner.iter().position(|&b| b == b']') else {
            return 0;
        };
        if inner.get(close + 1) != Some(&b':') {
            return 0;
        }
        bracket_port = Some(&inner[close + 2..]);
        buf = &inner[..close];
    }
    let mut port_text = bracket_port;
    if let Some(v6) = std::str::from_utf8(buf)
        .ok()
        .and_then(|s| s.parse::<Ipv6Addr>().ok())
    {
        ep.addr = IpAddr::V6(v6);
        ep.af = AF_INET6;
        ep.netmask = 128;
    } else {
        port_text = None;
        let mut host = buf;
        if let Some(colon) = buf.iter().rposition(|&b| b == b':') {
            host = &buf[..colon];
            port_text = Some(&buf[colon + 1..]);
        }
        let v4 = match inet_aton(host) {
            Some(a) => Ipv4Addr::from(a),
            None => match names.host_to_v4(host) {
                Some(a) => a,
                None => return 0,
            },
        };
        ep.addr = IpAddr::V4(v4);
        ep.af = AF_INET;
    }
    let mut result = SERVICE_ADDR;
    if let Some(p) = port_text {
        result |= SERVICE_PORT;
        if let Some(n) = string_to_number(p, 0, 65535) {
            ep.port = n as u16;
        } else if let Some(n) = names.service_to_port(p, proto) {
            ep.port = n;
        } else {
            return 0;
        }
    }
    result
}

/// ipvsadm's `parse_sched_flags`.
pub(super) fn parse_sched_flags(sched: &[u8], arg: &[u8]) -> Result<u32, ParseError> {
    let sched: &[u8] = if sched.is_empty() { b"wlc" } else { sched };
    let mut flags = 0;
    let mut any = false;
    for flag in arg.split(|&b| b == b',').filter(|f| !f.is_empty()) {
        any = true;
        let need = |name: &[u8]| -> Result<(), ParseError> {
            if sched != name {
                return Err(ParseError::fail(format!(
                    "incompatible scheduler flag `{}'",
                    lossy(flag)
                )));
            }
            Ok(())
        };
        match flag {
            b"flag-1" => flags |= ServiceFlags::SCHED1,
            b"flag-2" => flags |= ServiceFlags::SCHED2,
            b"flag-3" => flags |= ServiceFlags::SCHED3,
            b"sh-fallback" => {
                flags |= ServiceFlags::SH_FALLBACK;
                need(b"sh")?;
            }
            b"sh-port" => {
                flags |= ServiceFlags::SH_PORT;
                need(b"sh")?;
            }
            b"mh-fallback" => {
                flags |= ServiceFlags::SH_FALLBACK;
                need(b"mh")?;
            }
            b"mh-port" => {
                flags |= ServiceFlags::SH_PORT;
                need(b"mh")?;
            }
            _ => {
                return Err(ParseError::fail(format!(
                    "invalid scheduler flag `{}'",
                    lossy(flag)
                )))
            }
        }
    }
    if !any {
        // ipvsadm dereferences a NULL token here and crashes; refuse cleanly instead.
        return Err(ParseError::fail("invalid scheduler flag `'"));
    }
    Ok(flags)
}

pub(super) fn parse_timeout(buf: Option<&[u8]>, min: i64, max: i64) -> Result<u32, ParseError> {
    let Some(buf) = buf else {
        return Ok(DEFAULT_PERSISTENT_TIMEOUT);
    };
    string_to_number(buf, min, max)
        .map(|v| v as u32)
        .ok_or_else(|| {
            ParseError::fail(format!("invalid timeout value `{}' specified", lossy(buf)))
        })
}

pub(super) fn number(arg: &[u8], min: i64, max: i64, what: &str) -> Result<i64, ParseError> {
    string_to_number(arg, min, max)
        .ok_or_else(|| ParseError::fail(format!("illegal {what} specified")))
}
