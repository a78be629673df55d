//! Golden-byte tests of the route netlink requests against what `ip` (iproute2 6.1) sent
//! to the kernel for the same objects (`strace -e trace=sendmsg -e write=3`, in a private
//! network namespace, interface `lo`, index 1; the bytes are kept in this file): bigbro's
//! requests must equal iproute2's byte for byte, sequence numbers set to the captured
//! ones (the link dump alone differs on purpose: bigbro asks the kernel to skip statistics,
//! `ip addr show` asks for VF information); a captured kernel address dump (Linux 6.18,
//! `strace -e read=3`) parses to every address it holds; and the requests bigbro writes
//! parse back to the values it wrote.

use netlink_packet_core::{Emitable, NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;

use super::message::*;
use super::model::testing::ip;
use super::model::Link;

/// The sequence number of the address captures.
const ADDR_SEQ: u32 = 0x6b17_551b;
/// The sequence number of the link captures.
const LINK_SEQ: u32 = 0x6b17_551c;

/// `ip addr add 192.0.2.10/32 dev lo`.
const ADD_V4: &str =
    "2800000014000506 1b55176b00000000022000000100000008000200c000020a08000100c000020a";
/// `ip addr add 2001:db8::10/128 dev lo nodad`.
const ADD_V6: &str = concat!(
    "40000000140005061b55176b000000000a8002000100000014000200",
    "20010db80000000000000000000000101400010020010db8000000000000000000000010",
);
/// `ip addr del 192.0.2.10/32 dev lo`.
const DEL_V4: &str =
    "28000000150005001b55176b00000000022000000100000008000200c000020a08000100c000020a";
/// `ip addr del 2001:db8::10/128 dev lo`.
const DEL_V6: &str = concat!(
    "40000000150005001b55176b000000000a8000000100000014000200",
    "20010db80000000000000000000000101400010020010db8000000000000000000000010",
);
/// `ip link add bigbro0 type dummy`.
const NEW_DUMMY: &str = concat!(
    "3c000000100005061c55176b00000000000000000000000000000000000000000c000300",
    "62696762726f3000100012000900010064756d6d79000000",
);
/// `ip link set lo up`.
const SET_UP: &str = "20000000100005001c55176b00000000000000000100000001000000 01000000";
/// `ip link set lo up`'s lookup of `lo` by name.
const GET_LINK: &str = concat!(
    "30000000120001001c55176b0000000000000000000000000000000000000000",
    "08001d0009000000070003006c6f0000",
);

/// The kernel's answer to `ip addr show` (Linux 6.18, `lo` holding 127.0.0.1/8,
/// 192.0.2.10/32, 2001:db8::10/128 nodad and ::1/128): four `RTM_NEWADDR` in one datagram.
const ADDR_DUMP_REPLY: &str = concat!(
    "4c000000140002006859176b84260000020880fe01000000080001007f000001080002007f00000107000300",
    "6c6f0000080008008000000014000600ffffffffffffffffe0540300e05403004c000000140002006859176b",
    "84260000022080000100000008000100c000020a08000200c000020a070003006c6f00000800080080000000",
    "14000600ffffffffffffffffe0540300e054030048000000140002006859176b842600000a80820001000000",
    "1400010020010db800000000000000000000001014000600ffffffffffffffffe1540300e154030008000800",
    "8200000050000000140002006859176b842600000a8080fe0100000014000100000000000000000000000000",
    "0000000114000600ffffffffffffffffe0540300e0540300080008008000000005000b0001000000",
);
/// `ip addr show`'s address dump request.
const DUMP_ADDR_REQ: &str = "18000000160001036a59176b000000000000000000000000";

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn bytes(mut request: Request, seq: u32) -> Vec<u8> {
    request.header.sequence_number = seq;
    request.finalize();
    let mut buf = vec![0; request.buffer_len()];
    request.emit(&mut buf);
    buf
}

#[test]
fn address_requests_equal_iproute2s() {
    assert_eq!(
        bytes(add_address(1, ip("192.0.2.10")), ADDR_SEQ),
        hex(ADD_V4)
    );
    assert_eq!(
        bytes(add_address(1, ip("2001:db8::10")), ADDR_SEQ),
        hex(ADD_V6)
    );
    assert_eq!(
        bytes(del_address(1, ip("192.0.2.10"), 32), ADDR_SEQ),
        hex(DEL_V4)
    );
    assert_eq!(
        bytes(del_address(1, ip("2001:db8::10"), 128), ADDR_SEQ),
        hex(DEL_V6)
    );
}

#[test]
fn the_address_dump_request_equals_iproute2s() {
    assert_eq!(bytes(dump_addresses(), 0x6b17_596a), hex(DUMP_ADDR_REQ));
}

#[test]
fn a_kernel_address_dump_parses_to_every_address() {
    let datagram = hex(ADDR_DUMP_REPLY);
    let mut found = Vec::new();
    let mut offset = 0;
    while offset < datagram.len() {
        let len = u32::from_le_bytes(datagram[offset..offset + 4].try_into().unwrap()) as usize;
        match parse(&datagram[offset..offset + len]) {
            RouteNetlinkMessage::NewAddress(m) => found.push(parse_address(&m).unwrap()),
            other => panic!("{other:?}"),
        }
        offset += len;
    }
    assert_eq!(
        found,
        vec![
            (1, ip("127.0.0.1"), 8),
            (1, ip("192.0.2.10"), 32),
            (1, ip("2001:db8::10"), 128),
            (1, ip("::1"), 128),
        ]
    );
}

#[test]
fn link_requests_equal_iproute2s() {
    assert_eq!(bytes(new_dummy("bigbro0"), LINK_SEQ), hex(NEW_DUMMY));
    assert_eq!(bytes(set_up(1), LINK_SEQ), hex(SET_UP));
    assert_eq!(bytes(get_link("lo"), LINK_SEQ), hex(GET_LINK));
}

fn parse(bytes: &[u8]) -> RouteNetlinkMessage {
    match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
        .expect("parses")
        .payload
    {
        NetlinkPayload::InnerMessage(m) => m,
        other => panic!("not a route message: {other:?}"),
    }
}

#[test]
fn addresses_read_back_as_written() {
    for (bytes, want) in [
        (hex(ADD_V4), (1, ip("192.0.2.10"), 32)),
        (hex(ADD_V6), (1, ip("2001:db8::10"), 128)),
    ] {
        match parse(&bytes) {
            RouteNetlinkMessage::NewAddress(m) => assert_eq!(parse_address(&m), Some(want)),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn links_read_back_with_their_kind() {
    match parse(&hex(NEW_DUMMY)) {
        RouteNetlinkMessage::NewLink(m) => assert_eq!(
            parse_link(&m),
            Some(Link {
                index: 0,
                name: "bigbro0".into(),
                kind: Some("dummy".into()),
                up: false
            })
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_requests_do_not_panic_the_parser() {
    for full in [ADD_V4, ADD_V6, NEW_DUMMY, GET_LINK, ADDR_DUMP_REPLY] {
        let full = hex(full);
        for len in 0..full.len() {
            let _ = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&full[..len]);
        }
    }
}
