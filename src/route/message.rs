//! The route netlink requests bigbro sends and the replies it reads, built from
//! `netlink-packet-route`'s types: whole `NetlinkMessage`s with their header flags, so
//! that what the golden tests compare (`golden_tests.rs`, against `ip` from iproute2) is
//! exactly what the client sends, less the sequence number netlink-proto sets.
//!
//! Attribute order follows iproute2's (`IFA_LOCAL` before `IFA_ADDRESS`; rtnetlink's own
//! builder emits them the other way round): the kernel does not care, the byte comparison
//! does. Nothing here talks to the kernel.

use std::net::IpAddr;

use netlink_packet_core::{
    DefaultNla, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_EXCL, NLM_F_REQUEST,
};
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope,
};
use rtnetlink::packet_route::link::{
    InfoKind, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use super::model::{host_prefix, Link};

/// `IFLA_INFO_KIND` (include/uapi/linux/if_link.h).
const IFLA_INFO_KIND: u16 = 1;

/// A request as sent, before netlink-proto numbers it.
pub type Request = NetlinkMessage<RouteNetlinkMessage>;

fn request(message: RouteNetlinkMessage, flags: u16) -> Request {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let mut request = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    request.finalize();
    request
}

fn address_message(index: u32, addr: IpAddr, prefix_len: u8) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.family = match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    message.header.prefix_len = prefix_len;
    message.header.scope = AddressScope::Universe;
    message.header.index = index;
    message.attributes = vec![
        AddressAttribute::Local(addr),
        AddressAttribute::Address(addr),
    ];
    message
}

/// `ip addr add ADDR/32 dev IFINDEX` (IPv4), `ip addr add ADDR/128 dev IFINDEX nodad`
/// (IPv6): `RTM_NEWADDR`, create, exclusive, acknowledged.
pub fn add_address(index: u32, addr: IpAddr) -> Request {
    let mut message = address_message(index, addr, host_prefix(&addr));
    if addr.is_ipv6() {
        message.header.flags = AddressHeaderFlags::Nodad;
    }
    request(
        RouteNetlinkMessage::NewAddress(message),
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE,
    )
}

/// `ip addr del ADDR/PREFIX dev IFINDEX`: `RTM_DELADDR`, acknowledged.
pub fn del_address(index: u32, addr: IpAddr, prefix_len: u8) -> Request {
    request(
        RouteNetlinkMessage::DelAddress(address_message(index, addr, prefix_len)),
        NLM_F_REQUEST | NLM_F_ACK,
    )
}

/// Every address of the namespace, both families (`ip addr show`'s dump).
pub fn dump_addresses() -> Request {
    request(
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        NLM_F_REQUEST | NLM_F_DUMP,
    )
}

/// One interface by name, as `ip` asks for it (`RTM_GETLINK`, VF info and statistics
/// skipped); the kernel answers ENODEV when there is none.
pub fn get_link(name: &str) -> Request {
    let mut message = LinkMessage::default();
    message.attributes = vec![
        LinkAttribute::ExtMask(vec![LinkExtentMask::Vf, LinkExtentMask::SkipStats]),
        LinkAttribute::IfName(name.to_string()),
    ];
    request(RouteNetlinkMessage::GetLink(message), NLM_F_REQUEST)
}

/// Every interface of the namespace.
pub fn dump_links() -> Request {
    let mut message = LinkMessage::default();
    message.attributes = vec![LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])];
    request(
        RouteNetlinkMessage::GetLink(message),
        NLM_F_REQUEST | NLM_F_DUMP,
    )
}

/// `ip link add NAME type dummy`: `RTM_NEWLINK`, create, exclusive (never adopts a
/// same-named interface created in between).
pub fn new_dummy(name: &str) -> Request {
    let mut message = LinkMessage::default();
    message.attributes = vec![
        LinkAttribute::IfName(name.to_string()),
        // IFLA_INFO_KIND as iproute2 writes it, without a terminating NUL
        // (`LinkInfo::Kind` adds one; the kernel takes both).
        LinkAttribute::LinkInfo(vec![LinkInfo::Other(DefaultNla::new(
            IFLA_INFO_KIND,
            InfoKind::Dummy.to_string().into_bytes(),
        ))]),
    ];
    request(
        RouteNetlinkMessage::NewLink(message),
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE,
    )
}

/// `ip link set IFINDEX up`: `RTM_NEWLINK` with `IFF_UP` in flags and change mask.
pub fn set_up(index: u32) -> Request {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.header.flags = LinkFlags::Up;
    message.header.change_mask = LinkFlags::Up;
    request(
        RouteNetlinkMessage::NewLink(message),
        NLM_F_REQUEST | NLM_F_ACK,
    )
}

/// An interface from a `RTM_NEWLINK` reply; `None` without a name.
pub fn parse_link(message: &LinkMessage) -> Option<Link> {
    let mut name = None;
    let mut kind = None;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(k) = info {
                        kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Some(Link {
        index: message.header.index,
        name: name?,
        kind,
        up: message.header.flags.contains(LinkFlags::Up),
    })
}

/// (interface index, address, prefix length) from a `RTM_NEWADDR` reply: `IFA_LOCAL`
/// when present (the local end of an IPv4 point-to-point address), else `IFA_ADDRESS`
/// (IPv6 sends only that); `None` for a message with neither.
pub fn parse_address(message: &AddressMessage) -> Option<(u32, IpAddr, u8)> {
    let mut local = None;
    let mut address = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            _ => {}
        }
    }
    let addr = local.or(address)?;
    Some((message.header.index, addr, message.header.prefix_len))
}
