//! The nf_tables bytecode of one mark rule, both ways: [`encode`] turns a [`MarkRule`] into
//! the expression list `nft` itself emits for
//! `ip daddr VIP tcp dport PORTS [iifname IF] meta mark set MARK`, and [`decode`] turns a
//! dumped expression list back into a `MarkRule`, or says why it is not one of bigbro's.
//!
//! The bytecode (verified with `nft --debug=netlink`, nft 1.0.6):
//!
//! ```text
//! [ payload load 4b @ network header + 16 => reg 1 ]     ip daddr (ip6: 16b @ + 24)
//! [ cmp eq reg 1 <address, network order> ]
//! [ meta load l4proto => reg 1 ]
//! [ cmp eq reg 1 <protocol, 1 byte> ]
//! [ payload load 2b @ transport header + 2 => reg 1 ]    th dport
//! [ cmp eq reg 1 <port, be16> ]                          a range is
//!                                                        [ cmp gte reg 1 <first> ]
//!                                                        [ cmp lte reg 1 <last> ]
//! [ meta load iifname => reg 1 ]                         optional
//! [ cmp eq reg 1 <name, zero padded to 16 bytes> ]
//! [ immediate reg 1 <mark, host order u32> ]
//! [ meta set mark with reg 1 ]
//! ```
//!
//! Pure data transformation: no I/O, no validation of the rule (see
//! [`MarkRule::validate`]), and it never guesses: anything that is not exactly this shape
//! is reported as foreign by [`decode`].

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_netfilter::nftables::{
    Cmp, DataAttribute, ExpressionAttribute, Expressions, Immediate, ListAttribute, Meta, MetaKey,
    Operator, Payload, Register, Verdict, VerdictAttribute,
};

use super::rule::{Family, L4Proto, MarkRule, PortRange};

/// One element of `NFTA_RULE_EXPRESSIONS`.
pub type Expr = ListAttribute<ExpressionAttribute>;

/// `NFT_PAYLOAD_NETWORK_HEADER`.
const BASE_NETWORK: u32 = 1;
/// `NFT_PAYLOAD_TRANSPORT_HEADER`.
const BASE_TRANSPORT: u32 = 2;
/// `IFNAMSIZ`: nft compares interface names over 16 zero-padded bytes.
const IFNAMSIZ: usize = 16;

/// The destination address field of the family's network header: (offset, length).
fn daddr_field(family: Family) -> (u32, u32) {
    match family {
        Family::Ip => (16, 4),
        Family::Ip6 => (24, 16),
    }
}

fn load_payload(base: u32, offset: u32, len: u32) -> Expr {
    Expressions::Payload(vec![
        Payload::DestinationRegister(Register::Reg1),
        Payload::Base(base),
        Payload::Offset(offset),
        Payload::Len(len),
    ])
    .into()
}

fn cmp(op: Operator, value: Vec<u8>) -> Expr {
    Expressions::Cmp(vec![
        Cmp::SourceRegister(Register::Reg1),
        Cmp::Op(op),
        Cmp::Data(DataAttribute::Value(value)),
    ])
    .into()
}

fn load_meta(key: MetaKey) -> Expr {
    Expressions::Meta(vec![
        Meta::Key(key),
        Meta::DestinationRegister(Register::Reg1),
    ])
    .into()
}

/// The expression list for one rule, exactly as nft 1.0.6 emits it.
pub fn encode(rule: &MarkRule) -> Vec<Expr> {
    let (offset, len) = daddr_field(rule.family());
    let addr = match rule.daddr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut exprs = vec![
        load_payload(BASE_NETWORK, offset, len),
        cmp(Operator::Equal, addr),
        load_meta(MetaKey::L4Proto),
        cmp(Operator::Equal, vec![rule.proto.ipproto()]),
        load_payload(BASE_TRANSPORT, 2, 2),
    ];
    let PortRange { first, last } = rule.ports;
    if first == last {
        exprs.push(cmp(Operator::Equal, first.to_be_bytes().to_vec()));
    } else {
        exprs.push(cmp(
            Operator::GreatherThanEqual,
            first.to_be_bytes().to_vec(),
        ));
        exprs.push(cmp(Operator::LessThanEqual, last.to_be_bytes().to_vec()));
    }
    if let Some(name) = &rule.iifname {
        let mut padded = name.as_bytes().to_vec();
        padded.resize(IFNAMSIZ.max(padded.len()), 0);
        exprs.push(load_meta(MetaKey::Iifname));
        exprs.push(cmp(Operator::Equal, padded));
    }
    exprs.push(
        Expressions::Immediate(vec![
            Immediate::DestinationRegister(Register::Reg1),
            Immediate::Data(DataAttribute::Value(rule.mark.to_ne_bytes().to_vec())),
        ])
        .into(),
    );
    exprs.push(
        Expressions::Meta(vec![
            Meta::Key(MetaKey::Mark),
            Meta::SourceRegister(Register::Reg1),
        ])
        .into(),
    );
    exprs
}

/// One expression reduced to what bigbro's shape can contain. Registers other than reg 1,
/// missing attributes and unknown expression types become [`Op::Other`].
#[derive(Debug, PartialEq, Eq)]
enum Op {
    Payload { base: u32, offset: u32, len: u32 },
    MetaLoad(MetaKey),
    Cmp(Operator, Vec<u8>),
    Immediate(Vec<u8>),
    MetaSet(MetaKey),
    Other(String),
}

fn op_of(expr: &Expr) -> Op {
    let ListAttribute::Element(attrs) = expr else {
        return Op::Other(format!("{expr:?}"));
    };
    let mut name = None;
    let mut data = None;
    for attr in attrs {
        match attr {
            ExpressionAttribute::Name(n) => name = Some(n.as_str()),
            ExpressionAttribute::Data(d) => data = Some(d),
            _ => {}
        }
    }
    let (Some(name), Some(data)) = (name, data) else {
        return Op::Other(format!("{attrs:?}"));
    };
    let other = || Op::Other(format!("{name} (not of bigbro's form)"));
    match data {
        Expressions::Payload(attrs) => {
            let (mut dreg, mut base, mut offset, mut len, mut extra) = (None, None, None, None, 0);
            for a in attrs {
                match a {
                    Payload::DestinationRegister(r) => dreg = Some(*r),
                    Payload::Base(v) => base = Some(*v),
                    Payload::Offset(v) => offset = Some(*v),
                    Payload::Len(v) => len = Some(*v),
                    _ => extra += 1,
                }
            }
            match (dreg, base, offset, len, extra) {
                (Some(Register::Reg1), Some(base), Some(offset), Some(len), 0) => {
                    Op::Payload { base, offset, len }
                }
                _ => other(),
            }
        }
        Expressions::Meta(attrs) => {
            let (mut key, mut dreg, mut sreg, mut extra) = (None, None, None, 0);
            for a in attrs {
                match a {
                    Meta::Key(k) => key = Some(*k),
                    Meta::DestinationRegister(r) => dreg = Some(*r),
                    Meta::SourceRegister(r) => sreg = Some(*r),
                    _ => extra += 1,
                }
            }
            match (key, dreg, sreg, extra) {
                (Some(k), Some(Register::Reg1), None, 0) => Op::MetaLoad(k),
                (Some(k), None, Some(Register::Reg1), 0) => Op::MetaSet(k),
                _ => other(),
            }
        }
        Expressions::Cmp(attrs) => {
            let (mut sreg, mut op, mut value, mut extra) = (None, None, None, 0);
            for a in attrs {
                match a {
                    Cmp::SourceRegister(r) => sreg = Some(*r),
                    Cmp::Op(o) => op = Some(*o),
                    Cmp::Data(DataAttribute::Value(v)) => value = Some(v.clone()),
                    _ => extra += 1,
                }
            }
            match (sreg, op, value, extra) {
                (Some(Register::Reg1), Some(op), Some(v), 0) => Op::Cmp(op, v),
                _ => other(),
            }
        }
        Expressions::Immediate(attrs) => {
            let (mut dreg, mut value, mut extra) = (None, None, 0);
            for a in attrs {
                match a {
                    Immediate::DestinationRegister(r) => dreg = Some(*r),
                    Immediate::Data(DataAttribute::Value(v)) => value = Some(v.clone()),
                    Immediate::Data(DataAttribute::Verdict(v)) => {
                        return Op::Other(format!("immediate verdict {}", verdict_text(v)))
                    }
                    _ => extra += 1,
                }
            }
            match (dreg, value, extra) {
                (Some(Register::Reg1), Some(v), 0) => Op::Immediate(v),
                _ => other(),
            }
        }
        Expressions::Other { .. } | Expressions::Unknown(_) => Op::Other(name.to_string()),
        _ => other(),
    }
}

/// `accept`, `drop`, `jump CHAIN`… as nft writes verdicts.
fn verdict_text(attrs: &[VerdictAttribute]) -> String {
    let mut code = None;
    let mut chain = None;
    for a in attrs {
        match a {
            VerdictAttribute::Code(c) => code = Some(u32::from(*c)),
            VerdictAttribute::Chain(c) => chain = Some(c.as_str()),
            _ => {}
        }
    }
    let word = match code.map(Verdict::from) {
        Some(Verdict::Continue) => "continue".to_string(),
        Some(Verdict::Break) => "break".to_string(),
        Some(Verdict::Jump) => "jump".to_string(),
        Some(Verdict::Goto) => "goto".to_string(),
        Some(Verdict::Return) => "return".to_string(),
        Some(Verdict::Other(0)) => "drop".to_string(),
        Some(Verdict::Other(1)) => "accept".to_string(),
        Some(Verdict::Other(3)) => "queue".to_string(),
        Some(other) => format!("code {}", u32::from(other)),
        None => "(no code)".to_string(),
    };
    match chain {
        Some(c) => format!("{word} {c}"),
        None => word,
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::from("0x");
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn describe_op(op: &Op) -> String {
    match op {
        Op::Payload { base, offset, len } => {
            let base = match *base {
                0 => "link".to_string(),
                BASE_NETWORK => "network".to_string(),
                BASE_TRANSPORT => "transport".to_string(),
                b => format!("base {b}"),
            };
            format!("payload load {len}b @ {base} header + {offset} => reg 1")
        }
        Op::MetaLoad(k) => format!("meta load {k:?} => reg 1"),
        Op::Cmp(op, v) => format!("cmp {op:?} reg 1 {}", hex(v)),
        Op::Immediate(v) => format!("immediate reg 1 {}", hex(v)),
        Op::MetaSet(k) => format!("meta set {k:?} with reg 1"),
        Op::Other(s) => s.clone(),
    }
}

/// A one-line description of a dumped expression list, in the spirit of
/// `nft --debug=netlink`, for reporting rules that are not bigbro's.
pub fn describe(exprs: &[Expr]) -> String {
    exprs
        .iter()
        .map(|e| format!("[ {} ]", describe_op(&op_of(e))))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a dumped expression list back as a [`MarkRule`] of the given table family.
/// `Err` says, for a person, why the rule is not of bigbro's shape.
pub fn decode(family: Family, exprs: &[Expr]) -> Result<MarkRule, String> {
    let ops: Vec<Op> = exprs.iter().map(op_of).collect();
    let mut it = ops.iter().peekable();
    let mut next = |what: &str| {
        it.next()
            .ok_or_else(|| format!("ends where {what} was expected"))
    };
    let unexpected =
        |what: &str, op: &Op| format!("has [ {} ] where {what} was expected", describe_op(op));

    let (offset, len) = daddr_field(family);
    let want = Op::Payload {
        base: BASE_NETWORK,
        offset,
        len,
    };
    let op = next("the destination address load")?;
    if *op != want {
        return Err(unexpected("the destination address load", op));
    }
    let daddr = match next("the destination address comparison")? {
        Op::Cmp(Operator::Equal, v) if v.len() == len as usize => match family {
            Family::Ip => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(&v[..]).unwrap())),
            Family::Ip6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&v[..]).unwrap())),
        },
        op => return Err(unexpected("the destination address comparison", op)),
    };

    let op = next("the layer-4 protocol load")?;
    if *op != Op::MetaLoad(MetaKey::L4Proto) {
        return Err(unexpected("the layer-4 protocol load", op));
    }
    let proto = match next("the layer-4 protocol comparison")? {
        Op::Cmp(Operator::Equal, v) if v.len() == 1 => match v[0] {
            6 => L4Proto::Tcp,
            17 => L4Proto::Udp,
            132 => L4Proto::Sctp,
            p => {
                return Err(format!(
                    "matches layer-4 protocol {p}, not tcp, udp or sctp"
                ))
            }
        },
        op => return Err(unexpected("the layer-4 protocol comparison", op)),
    };

    let op = next("the destination port load")?;
    let dport = Op::Payload {
        base: BASE_TRANSPORT,
        offset: 2,
        len: 2,
    };
    if *op != dport {
        return Err(unexpected("the destination port load", op));
    }
    let port = |v: &[u8]| <[u8; 2]>::try_from(v).ok().map(u16::from_be_bytes);
    let ports = match next("the destination port comparison")? {
        Op::Cmp(Operator::Equal, v) if v.len() == 2 => PortRange::single(port(v).unwrap()),
        Op::Cmp(Operator::GreatherThanEqual, v) if v.len() == 2 => {
            let first = port(v).unwrap();
            match next("the upper end of the port range")? {
                Op::Cmp(Operator::LessThanEqual, w) if w.len() == 2 => PortRange {
                    first,
                    last: port(w).unwrap(),
                },
                op => return Err(unexpected("the upper end of the port range", op)),
            }
        }
        op => return Err(unexpected("the destination port comparison", op)),
    };

    let mut iifname = None;
    let op = next("the mark")?;
    let op = if *op == Op::MetaLoad(MetaKey::Iifname) {
        match next("the interface name comparison")? {
            Op::Cmp(Operator::Equal, v) => iifname = Some(ifname_of(v)?),
            op => return Err(unexpected("the interface name comparison", op)),
        }
        next("the mark")?
    } else {
        op
    };
    let mark = match op {
        Op::Immediate(v) if v.len() == 4 => {
            u32::from_ne_bytes(<[u8; 4]>::try_from(&v[..]).unwrap())
        }
        op => return Err(unexpected("the mark", op)),
    };
    let op = next("meta mark set")?;
    if *op != Op::MetaSet(MetaKey::Mark) {
        return Err(unexpected("meta mark set", op));
    }
    if let Some(op) = it.next() {
        return Err(format!(
            "goes on after meta mark set with [ {} ]",
            describe_op(op)
        ));
    }
    Ok(MarkRule {
        daddr,
        proto,
        ports,
        iifname,
        mark,
    })
}

/// An exact interface-name match: the name, a NUL, and zero padding up to 16 bytes.
fn ifname_of(v: &[u8]) -> Result<String, String> {
    let nul = v.iter().position(|&b| b == 0);
    let ok =
        v.len() <= IFNAMSIZ && matches!(nul, Some(n) if n > 0 && v[n..].iter().all(|&b| b == 0));
    match (ok, nul) {
        (true, Some(n)) => String::from_utf8(v[..n].to_vec())
            .map_err(|_| format!("matches an interface name that is not UTF-8: {}", hex(v))),
        _ => Err(format!(
            "matches an interface name that is not an exact name: {}",
            hex(v)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        daddr: &str,
        proto: L4Proto,
        ports: (u16, u16),
        iif: Option<&str>,
        mark: u32,
    ) -> MarkRule {
        MarkRule {
            daddr: daddr.parse().unwrap(),
            proto,
            ports: PortRange {
                first: ports.0,
                last: ports.1,
            },
            iifname: iif.map(String::from),
            mark,
        }
    }

    #[test]
    fn describes_like_nft_debug() {
        let r = rule("10.0.0.100", L4Proto::Udp, (8000, 8080), Some("eth0"), 7);
        let text = describe(&encode(&r));
        assert_eq!(
            text,
            "[ payload load 4b @ network header + 16 => reg 1 ] [ cmp Equal reg 1 0x0a000064 ] \
             [ meta load L4Proto => reg 1 ] [ cmp Equal reg 1 0x11 ] \
             [ payload load 2b @ transport header + 2 => reg 1 ] \
             [ cmp GreatherThanEqual reg 1 0x1f40 ] [ cmp LessThanEqual reg 1 0x1f90 ] \
             [ meta load Iifname => reg 1 ] [ cmp Equal reg 1 0x65746830000000000000000000000000 ] \
             [ immediate reg 1 0x07000000 ] [ meta set Mark with reg 1 ]"
        );
    }

    #[test]
    fn decode_inverts_encode() {
        let rules = [
            rule("10.0.0.100", L4Proto::Tcp, (80, 80), Some("eth0"), 7),
            rule("192.0.2.1", L4Proto::Udp, (8000, 8080), None, 0xffff_ffff),
            rule(
                "2001:db8::1",
                L4Proto::Sctp,
                (1, 65535),
                Some("veth-long-name1"),
                1,
            ),
            rule("::", L4Proto::Tcp, (0, 0), None, 42),
        ];
        for r in rules {
            assert_eq!(decode(r.family(), &encode(&r)), Ok(r.clone()), "{r:?}");
        }
    }

    #[test]
    fn decode_names_what_is_not_bigbros() {
        let r = rule("10.0.0.100", L4Proto::Tcp, (80, 80), None, 7);
        let mut e = encode(&r);
        // Wrong family: an ip rule read as ip6 has a 4-byte load at +16.
        assert!(decode(Family::Ip6, &e)
            .unwrap_err()
            .contains("where the destination address load was expected"));
        // A trailing verdict (here: an extra immediate).
        e.push(e[e.len() - 2].clone());
        assert_eq!(
            decode(Family::Ip, &e).unwrap_err(),
            "goes on after meta mark set with [ immediate reg 1 0x07000000 ]"
        );
        // Truncated.
        let e = encode(&r);
        assert_eq!(
            decode(Family::Ip, &e[..4]).unwrap_err(),
            "ends where the destination port load was expected"
        );
        // A source-address match instead of the destination.
        let mut e = encode(&r);
        e[0] = load_payload(BASE_NETWORK, 12, 4);
        assert!(decode(Family::Ip, &e)
            .unwrap_err()
            .contains("network header + 12"));
        // icmp is not a port protocol bigbro knows.
        let mut e = encode(&r);
        e[3] = cmp(Operator::Equal, vec![1]);
        assert_eq!(
            decode(Family::Ip, &e).unwrap_err(),
            "matches layer-4 protocol 1, not tcp, udp or sctp"
        );
        // A wildcard interface match (`iifname "eth*"` is a 3-byte prefix compare).
        let r = rule("10.0.0.100", L4Proto::Tcp, (80, 80), Some("eth0"), 7);
        let mut e = encode(&r);
        e[7] = cmp(Operator::Equal, b"eth".to_vec());
        assert!(decode(Family::Ip, &e)
            .unwrap_err()
            .contains("not an exact name"));
        // A register other than reg 1 is not bigbro's.
        let mut e = encode(&r);
        e[2] = Expressions::Meta(vec![
            Meta::Key(MetaKey::L4Proto),
            Meta::DestinationRegister(Register::Reg2),
        ])
        .into();
        assert!(decode(Family::Ip, &e)
            .unwrap_err()
            .contains("where the layer-4 protocol load was expected"));
    }

    #[test]
    fn interface_names_read_back_exactly() {
        assert_eq!(ifname_of(b"eth0\0").unwrap(), "eth0");
        let mut sixteen = b"eth0".to_vec();
        sixteen.resize(16, 0);
        assert_eq!(ifname_of(&sixteen).unwrap(), "eth0");
        assert!(ifname_of(b"eth0\0x").is_err());
        assert!(ifname_of(b"\0\0\0\0").is_err());
        assert!(ifname_of(b"0123456789abcdef").is_err());
    }
}
