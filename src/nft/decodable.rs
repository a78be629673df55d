//! A guard in front of netlink-packet-netfilter 0.4's decoder: [`decodable`] says whether one
//! nf_tables netlink message can be handed to `NetlinkMessage::deserialize` without making it
//! panic, and [`CheckedCodec`] is netlink-proto's codec with that check in front, so a
//! malformed message is logged and dropped instead of killing the connection task.
//!
//! Why: the crate reads every attribute that holds one nested data attribute (`NFTA_CMP_DATA`,
//! `NFTA_BITWISE_MASK`/`_XOR`/`_DATA`, `NFTA_IMMEDIATE_DATA`, `NFTA_SET_EXPR`,
//! `NFTA_SET_ELEM_KEY`/`_DATA`/`_EXPR`) with an unchecked `NlaBuffer::new`, which panics when
//! that inner attribute's length is shorter than its header or longer than its room (found
//! by fuzzing: `tests/fuzz/regressions/nft_netlink/`). The kernel never sends such a message,
//! so no real answer is ever dropped; this only keeps bytes that are not the kernel's from
//! turning into a panic. Everything else the crate checks itself (and returns an error for).
//!
//! It walks only the paths that lead to those attributes, and never rejects a well-formed
//! message.

use std::fmt::Debug;
use std::io;

use bytes::BytesMut;
use netlink_packet_core::{
    NetlinkBuffer, NetlinkDeserializable, NetlinkMessage, NetlinkSerializable, NlasIterator,
};
use netlink_proto::{NetlinkCodec, NetlinkMessageCodec};

/// `NFNL_SUBSYS_NFTABLES`: the high byte of an nf_tables message's type.
const SUBSYS_NFTABLES: u16 = 10;
/// NFT_MSG_NEWRULE, _GETRULE, _DELRULE: all decoded as a rule.
const RULE_MESSAGES: std::ops::RangeInclusive<u8> = 6..=8;
/// NFT_MSG_NEWSET, _GETSET, _DELSET.
const SET_MESSAGES: std::ops::RangeInclusive<u8> = 9..=11;
/// NFT_MSG_NEWSETELEM, _GETSETELEM, _DELSETELEM.
const SET_ELEMENT_MESSAGES: std::ops::RangeInclusive<u8> = 12..=14;
#[cfg(test)]
const NFT_MSG_NEWRULE: u8 = 6;
#[cfg(test)]
const NFT_MSG_NEWSET: u8 = 9;
#[cfg(test)]
const NFT_MSG_NEWSETELEM: u8 = 12;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_SET_EXPR: u16 = 17;
const NFTA_SET_EXPRESSIONS: u16 = 18;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_EXPR: u16 = 7;
const NFTA_SET_ELEM_EXPRESSIONS: u16 = 11;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
/// nlmsghdr + nfgenmsg.
const ATTRS_START: usize = 16 + 4;

/// The attributes, within the data of an expression called `name`, that hold one nested
/// data attribute.
fn data_attributes(name: &[u8]) -> &'static [u16] {
    match name {
        b"cmp" => &[3],           // NFTA_CMP_DATA
        b"bitwise" => &[4, 5, 7], // NFTA_BITWISE_MASK, _XOR, _DATA
        b"immediate" => &[2],     // NFTA_IMMEDIATE_DATA
        _ => &[],
    }
}

/// A check of one attribute's value.
type Check = fn(&[u8]) -> bool;

/// Whether `message` (one netlink message: header, nfgenmsg, attributes) can be decoded by
/// netlink-packet-netfilter without a panic.
pub fn decodable(message: &[u8]) -> bool {
    let Ok(header) = NetlinkBuffer::new_checked(message) else {
        return true; // the crate refuses it with an error
    };
    let msg_type = header.message_type();
    if msg_type >> 8 != SUBSYS_NFTABLES {
        return true;
    }
    let Some(attrs) = message.get(ATTRS_START..header.length() as usize) else {
        return true;
    };
    let msg = (msg_type & 0xff) as u8;
    let wanted: &[(u16, Check)] = if RULE_MESSAGES.contains(&msg) {
        &[(NFTA_RULE_EXPRESSIONS, expression_list)]
    } else if SET_MESSAGES.contains(&msg) {
        &[
            (NFTA_SET_EXPR, one_attribute),
            (NFTA_SET_EXPRESSIONS, expression_list),
        ]
    } else if SET_ELEMENT_MESSAGES.contains(&msg) {
        &[(NFTA_SET_ELEM_LIST_ELEMENTS, set_elements)]
    } else {
        return true;
    };
    each(attrs, |kind, value| {
        wanted.iter().all(|(k, check)| *k != kind || check(value))
    })
}

/// Calls `check(kind, value)` on each attribute of a list until one fails. A list the crate
/// cannot split passes: it reports that itself.
fn each(list: &[u8], mut check: impl FnMut(u16, &[u8]) -> bool) -> bool {
    for nla in NlasIterator::new(list) {
        let Ok(nla) = nla else { return true };
        if !check(nla.kind(), nla.value()) {
            return false;
        }
    }
    true
}

/// A value read as one attribute with an unchecked `NlaBuffer::new`: it must begin with a
/// complete attribute.
fn one_attribute(value: &[u8]) -> bool {
    let Some(len) = value
        .get(..2)
        .map(|b| usize::from(u16::from_ne_bytes([b[0], b[1]])))
    else {
        return false;
    };
    (4..=value.len()).contains(&len)
}

/// A list of `NFTA_LIST_ELEM` expressions.
fn expression_list(value: &[u8]) -> bool {
    each(value, |kind, elem| {
        kind != NFTA_LIST_ELEM || expression(elem)
    })
}

/// One expression: its data attributes, read by the type its name gives.
fn expression(elem: &[u8]) -> bool {
    let mut name: Vec<u8> = Vec::new();
    each(elem, |kind, value| match kind {
        NFTA_EXPR_NAME => {
            name = value.split(|b| *b == 0).next().unwrap_or_default().to_vec();
            true
        }
        NFTA_EXPR_DATA => {
            let nested = data_attributes(&name);
            each(value, |k, v| !nested.contains(&k) || one_attribute(v))
        }
        _ => true,
    })
}

/// `NFTA_SET_ELEM_LIST_ELEMENTS`: a list of elements, each a list of element attributes.
fn set_elements(value: &[u8]) -> bool {
    each(value, |kind, elem| {
        kind != NFTA_LIST_ELEM
            || each(elem, |k, v| match k {
                NFTA_SET_ELEM_KEY | NFTA_SET_ELEM_DATA | NFTA_SET_ELEM_EXPR => one_attribute(v),
                NFTA_SET_ELEM_EXPRESSIONS => expression_list(v),
                _ => true,
            })
    })
}

/// netlink-proto's codec, with [`decodable`] in front of the decoder: a message that fails
/// it is logged and skipped, as netlink-proto does with messages it cannot decode.
pub struct CheckedCodec;

impl NetlinkMessageCodec for CheckedCodec {
    fn decode<T>(src: &mut BytesMut) -> io::Result<Option<NetlinkMessage<T>>>
    where
        T: NetlinkDeserializable + Debug,
    {
        loop {
            if src.is_empty() {
                return Ok(None);
            }
            let len = match NetlinkBuffer::new_checked(src.as_ref()) {
                Ok(buf) => buf.length() as usize,
                // Truncated or garbled: the rest of the datagram cannot be framed.
                Err(_) => return NetlinkCodec::decode(src),
            };
            // One message at a time, so the inner codec never reaches an unchecked one.
            let mut one = src.split_to(len.min(src.len()));
            if decodable(&one) {
                match NetlinkCodec::decode(&mut one)? {
                    Some(message) => return Ok(Some(message)),
                    None => continue, // undecodable: netlink-proto logged it
                }
            }
            let dropped = one;
            tracing::error!(
                "dropped a malformed nf_tables message from the kernel ({} bytes, type {:#x})",
                dropped.len(),
                u16::from_ne_bytes([dropped[4], dropped[5]])
            );
        }
    }

    fn encode<T>(msg: NetlinkMessage<T>, buf: &mut BytesMut) -> io::Result<()>
    where
        T: Debug + NetlinkSerializable,
    {
        NetlinkCodec::encode(msg, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::batch::Batch;
    use crate::nft::rule::{Family, L4Proto, MarkRule, PortRange};
    use netlink_packet_netfilter::NetfilterMessage;

    /// One attribute: header, value, padding.
    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut out = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        out.resize(out.len().next_multiple_of(4), 0);
        out
    }

    /// An nf_tables message of type `msg` (NFT_MSG_*) holding `attrs`.
    fn message(msg: u8, attrs: &[u8]) -> Vec<u8> {
        let len = (ATTRS_START + attrs.len()) as u32;
        let mut out = len.to_ne_bytes().to_vec();
        out.extend_from_slice(&((SUBSYS_NFTABLES << 8) | u16::from(msg)).to_ne_bytes());
        out.extend_from_slice(&[0; 2 + 4 + 4]); // flags, seq, port
        out.extend_from_slice(&[2, 0, 0, 0]); // nfgenmsg: AF_INET
        out.extend_from_slice(attrs);
        out
    }

    /// A rule with one expression `name` whose data holds attribute `kind` = `value`.
    fn rule_with(name: &str, kind: u16, value: &[u8]) -> Vec<u8> {
        let data = nla(kind, value);
        let elem = [
            nla(NFTA_EXPR_NAME, format!("{name}\0").as_bytes()),
            nla(NFTA_EXPR_DATA, &data),
        ]
        .concat();
        let list = nla(NFTA_LIST_ELEM, &elem);
        message(NFT_MSG_NEWRULE, &nla(NFTA_RULE_EXPRESSIONS, &list))
    }

    fn parse(bytes: &[u8]) -> bool {
        NetlinkMessage::<NetfilterMessage>::deserialize(bytes).is_ok()
    }

    #[test]
    fn every_message_bigbro_sends_is_decodable() {
        let rule = |daddr: &str, iifname: Option<&str>| MarkRule {
            daddr: daddr.parse().unwrap(),
            proto: L4Proto::Udp,
            ports: PortRange {
                first: 53,
                last: 60,
            },
            iifname: iifname.map(String::from),
            mark: 9,
        };
        let batch = Batch::new(
            "bigbro",
            &[rule("10.0.0.1", Some("eth0")), rule("2001:db8::1", None)],
            &[Family::Ip6],
        );
        let bytes = batch.to_bytes(1);
        let mut at = 0;
        while at < bytes.len() {
            let len = u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            assert!(decodable(&bytes[at..at + len]), "message at byte {at}");
            at += len;
        }
        assert!(at > 1000, "{at}");
    }

    #[test]
    fn get_and_delete_messages_are_checked_like_new_ones() {
        // Found by fuzzing: NFT_MSG_GETRULE is decoded as a rule too.
        let bad = rule_with("cmp", 3, &[2, 0, 1, 0]);
        for msg in 6..=8u8 {
            let mut m = bad.clone();
            m[4] = msg;
            assert!(!decodable(&m), "message type {msg}");
        }
        let set = message(NFT_MSG_NEWSET, &nla(NFTA_SET_EXPR, &[2, 0, 1, 0]));
        let elem = message(
            NFT_MSG_NEWSETELEM,
            &nla(
                NFTA_SET_ELEM_LIST_ELEMENTS,
                &nla(NFTA_LIST_ELEM, &nla(NFTA_SET_ELEM_KEY, &[2, 0, 1, 0])),
            ),
        );
        for offset in 0..=2u8 {
            let (mut s, mut e) = (set.clone(), elem.clone());
            s[4] += offset;
            e[4] += offset;
            assert!(!decodable(&s) && !decodable(&e), "offset {offset}");
        }
        // Other message types are the crate's own business.
        let mut chain = bad.clone();
        chain[4] = 3;
        assert!(decodable(&chain));
    }

    #[test]
    fn nested_data_shorter_than_its_header_is_refused() {
        // Found by fuzzing (tests/fuzz/regressions/nft_netlink/): NFTA_CMP_DATA whose inner
        // attribute claims 2 bytes made netlink-packet-netfilter 0.4 panic.
        let good = rule_with("cmp", 3, &nla(1, &[10, 0, 0, 1]));
        assert!(decodable(&good) && parse(&good));
        for inner in [
            vec![2, 0, 1, 0],
            vec![0, 0, 1, 0],
            vec![200, 0, 1, 0, 1, 2, 3, 4],
            vec![8],
        ] {
            for (name, kind) in [
                ("cmp", 3),
                ("bitwise", 4),
                ("bitwise", 5),
                ("bitwise", 7),
                ("immediate", 2),
            ] {
                let bad = rule_with(name, kind, &inner);
                assert!(
                    !decodable(&bad),
                    "{name} attribute {kind} holding {inner:?}"
                );
            }
        }
        // The same bytes in an attribute that is not nested data are the crate's business.
        assert!(decodable(&rule_with("cmp", 1, &[2, 0, 1, 0])));
        assert!(decodable(&rule_with("payload", 3, &[2, 0, 1, 0])));
    }

    #[test]
    fn sets_and_set_elements_are_checked_too() {
        let bad = [2u8, 0, 1, 0];
        assert!(!decodable(&message(
            NFT_MSG_NEWSET,
            &nla(NFTA_SET_EXPR, &bad)
        )));
        assert!(decodable(&message(
            NFT_MSG_NEWSET,
            &nla(NFTA_SET_EXPR, &nla(1, b"counter\0"))
        )));
        let elem = |attr: Vec<u8>| {
            message(
                NFT_MSG_NEWSETELEM,
                &nla(NFTA_SET_ELEM_LIST_ELEMENTS, &nla(NFTA_LIST_ELEM, &attr)),
            )
        };
        for kind in [NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_EXPR] {
            assert!(!decodable(&elem(nla(kind, &bad))), "{kind}");
            let good = elem(nla(kind, &nla(1, &[1, 2, 3, 4])));
            assert!(decodable(&good), "{kind}");
        }
    }

    #[test]
    fn the_codec_drops_the_bad_message_and_decodes_the_next() {
        let bad = rule_with("cmp", 3, &[2, 0, 1, 0]);
        let good = rule_with("cmp", 3, &nla(1, &[10, 0, 0, 1]));
        let mut src = BytesMut::from(&[bad.clone(), good.clone(), bad].concat()[..]);
        let first = CheckedCodec::decode::<NetfilterMessage>(&mut src).unwrap();
        assert!(first.is_some());
        assert!(CheckedCodec::decode::<NetfilterMessage>(&mut src)
            .unwrap()
            .is_none());
        assert!(src.is_empty());
    }
}
