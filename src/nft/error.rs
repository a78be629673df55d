//! What can go wrong installing or reading bigbro's nf_tables rules, in words for the
//! operator: which message of the batch the kernel refused, with the errno, the kernel's own
//! extended-ack message and the attribute it pointed at (decoded from `NLMSGERR_ATTR_MSG` /
//! `NLMSGERR_ATTR_OFFS` against the bytes bigbro sent).
//!
//! Pure decoding: no I/O. It never turns an error into success, and never claims more than
//! the kernel said: a refused batch is reported as "nothing changed" only because an
//! nf_tables transaction is all-or-nothing.

use std::fmt;
use std::io;

use netlink_packet_core::{NlasIterator, NLM_F_ACK_TLVS, NLM_F_CAPPED};

use super::rule::InvalidRule;

/// `NLMSGERR_ATTR_MSG`: a human-readable error string.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// `NLMSGERR_ATTR_OFFS`: offset of the invalid attribute in the original message.
const NLMSGERR_ATTR_OFFS: u16 = 2;
/// Size of `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;
/// Size of `struct nlmsghdr` + `struct nfgenmsg`: where a message's attributes start.
const ATTRS_START: usize = NLMSG_HDRLEN + 4;

/// One message of a batch that the kernel answered with an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Position of the message in the batch (0 is `BATCH_BEGIN`).
    pub index: usize,
    /// What the message did ("add rule `…` to ip bigbro prerouting").
    pub purpose: String,
    /// The errno the kernel returned (positive).
    pub errno: i32,
    /// The kernel's extended-ack message, if it gave one.
    pub kernel_message: Option<String>,
    /// Where in the message the kernel's extended ack pointed, if it did.
    pub location: Option<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "message {} ({}): {}{}",
            self.index,
            self.purpose,
            io::Error::from_raw_os_error(self.errno),
            if self.index == 0 {
                hint(self.errno)
            } else {
                ""
            }
        )?;
        if let Some(m) = &self.kernel_message {
            write!(f, "; the kernel says \"{m}\"")?;
        }
        if let Some(l) = &self.location {
            write!(f, "; at {l}")?;
        }
        Ok(())
    }
}

/// Errors of [`Nft`](super::Nft).
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// A rule bigbro was asked to install is not valid; nothing was sent to the kernel.
    #[error("{0}; nothing was sent to the kernel")]
    InvalidRule(#[from] InvalidRule),
    /// The netfilter netlink socket could not be opened or set up.
    #[error("cannot open a netfilter netlink socket: {0} (bigbro needs CAP_NET_ADMIN and a kernel with nf_tables)")]
    Socket(#[source] io::Error),
    /// The kernel refused the batch. nf_tables transactions are all-or-nothing, so
    /// nothing was changed: the previous ruleset is still in place.
    #[error("the kernel refused the nf_tables batch, so nothing was changed and the previous rules stay in place: {}", join(.failures))]
    Refused { failures: Vec<Failure> },
    /// The kernel refused a request to read the ruleset.
    #[error("reading {what}: {}{}", io::Error::from_raw_os_error(*.errno), hint(*.errno))]
    Read { what: String, errno: i32 },
    /// No complete answer in time: whether a batch was committed is unknown.
    #[error("no complete answer from the kernel to {what} within {seconds} s; read the ruleset back to learn whether it was applied")]
    Timeout { what: String, seconds: u64 },
    /// Kernel replies were lost (socket receive buffer overrun).
    #[error("kernel replies to {what} were lost (netlink receive buffer overrun); read the ruleset back to learn whether it was applied")]
    Overrun { what: String },
    /// The netlink connection ended.
    #[error("the netlink connection closed during {what}")]
    Closed { what: String },
    /// The batch would not fit in one netlink datagram; nothing was sent.
    #[error("{rules} mark rules make an nf_tables batch of {bytes} bytes, more than the {limit} bytes one netlink message can carry; nothing was sent to the kernel")]
    TooLarge {
        rules: usize,
        bytes: usize,
        limit: usize,
    },
    /// The ruleset changed under every attempt to read it.
    #[error(
        "the nf_tables ruleset kept changing while bigbro read it ({tries} attempts); try again"
    )]
    Unstable { tries: usize },
}

/// What to do about the errors that mean bigbro cannot use nf_tables at all.
fn hint(errno: i32) -> &'static str {
    match errno {
        1 => " (bigbro needs CAP_NET_ADMIN to change nf_tables)",
        95 | 93 => " (this kernel has no nf_tables: load the nf_tables module)",
        _ => "",
    }
}

fn join(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The kernel's extended ack, from the payload of an `NLMSG_ERROR` after its error code
/// (`ErrorMessage::header`), given the flags of the error message's own header.
pub fn extack(flags: u16, payload: &[u8]) -> (Option<String>, Option<u32>) {
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < NLMSG_HDRLEN {
        return (None, None);
    }
    let start = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let len = u32::from_ne_bytes(payload[..4].try_into().unwrap()) as usize;
        (len + 3) & !3
    };
    let Some(tlvs) = payload.get(start..) else {
        return (None, None);
    };
    let (mut msg, mut offs) = (None, None);
    for nla in NlasIterator::new(tlvs).flatten() {
        match nla.kind() {
            NLMSGERR_ATTR_MSG => {
                let v = nla.value();
                let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
                msg = Some(String::from_utf8_lossy(&v[..end]).into_owned());
            }
            NLMSGERR_ATTR_OFFS if nla.value().len() == 4 => {
                offs = Some(u32::from_ne_bytes(nla.value().try_into().unwrap()));
            }
            _ => {}
        }
    }
    (msg, offs)
}

/// Names the attribute at byte `offset` of an nf_tables message (`bytes`, starting at its
/// netlink header), e.g. "NFTA_RULE_EXPRESSIONS, expression 4 (cmp)".
pub fn locate(bytes: &[u8], offset: u32) -> String {
    let offset = offset as usize;
    if offset < NLMSG_HDRLEN {
        return format!("byte {offset} of the netlink header");
    }
    if offset < ATTRS_START {
        return format!("byte {} of the nfgenmsg header", offset - NLMSG_HDRLEN);
    }
    let msg_type = bytes.get(4).copied().unwrap_or(0);
    let Some((kind, start, value)) = find(bytes, ATTRS_START, offset) else {
        return format!("byte {offset} of the message");
    };
    let name = attr_name(msg_type, kind);
    // NFT_MSG_NEWRULE's NFTA_RULE_EXPRESSIONS: say which expression.
    if msg_type == 6 && kind == 4 && offset > start {
        let mut at = value.start;
        let mut n = 0;
        while at < value.end {
            let Some(len) = nla_len(bytes, at) else { break };
            n += 1;
            let end = (at + ((len + 3) & !3)).min(value.end);
            if offset >= at && offset < end {
                let expr_name = expression_name(&bytes[at + 4..at + len]);
                return format!("{name}, expression {n} ({expr_name})");
            }
            at = end;
        }
    }
    name
}

fn nla_len(bytes: &[u8], at: usize) -> Option<usize> {
    let len = u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?) as usize;
    (len >= 4 && at + len <= bytes.len()).then_some(len)
}

/// The attribute (type without flags, start, value range) of the attribute list starting at
/// `from` that contains `offset`.
fn find(bytes: &[u8], from: usize, offset: usize) -> Option<(u16, usize, std::ops::Range<usize>)> {
    let mut at = from;
    while at < bytes.len() {
        let len = nla_len(bytes, at)?;
        let kind = u16::from_ne_bytes(bytes[at + 2..at + 4].try_into().ok()?) & 0x3fff;
        let end = at + ((len + 3) & !3);
        if offset >= at && offset < end {
            return Some((kind, at, at + 4..at + len));
        }
        at = end;
    }
    None
}

fn expression_name(elem: &[u8]) -> String {
    for nla in NlasIterator::new(elem).flatten() {
        if nla.kind() == 1 {
            let v = nla.value();
            let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
            return String::from_utf8_lossy(&v[..end]).into_owned();
        }
    }
    "unnamed".to_string()
}

fn attr_name(msg_type: u8, kind: u16) -> String {
    let name = match (msg_type, kind) {
        (0 | 2, 1) => "NFTA_TABLE_NAME",
        (0 | 2, 2) => "NFTA_TABLE_FLAGS",
        (3, 1) => "NFTA_CHAIN_TABLE",
        (3, 3) => "NFTA_CHAIN_NAME",
        (3, 4) => "NFTA_CHAIN_HOOK",
        (3, 5) => "NFTA_CHAIN_POLICY",
        (3, 7) => "NFTA_CHAIN_TYPE",
        (6, 1) => "NFTA_RULE_TABLE",
        (6, 2) => "NFTA_RULE_CHAIN",
        (6, 4) => "NFTA_RULE_EXPRESSIONS",
        _ => return format!("attribute type {kind}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::batch::Batch;
    use crate::nft::rule::{L4Proto, MarkRule, PortRange};

    fn rule_message() -> Vec<u8> {
        let rule = MarkRule {
            daddr: "10.0.0.100".parse().unwrap(),
            proto: L4Proto::Tcp,
            ports: PortRange::single(80),
            iifname: Some("eth0".into()),
            mark: 7,
        };
        let batch = Batch::new("bb", &[rule], &[]);
        let mut msg = batch.steps[5].message.clone();
        msg.finalize();
        let mut bytes = vec![0; msg.buffer_len()];
        msg.serialize(&mut bytes);
        bytes
    }

    #[test]
    fn locates_attributes_and_expressions() {
        let bytes = rule_message();
        assert_eq!(locate(&bytes, 3), "byte 3 of the netlink header");
        assert_eq!(locate(&bytes, 17), "byte 1 of the nfgenmsg header");
        assert_eq!(locate(&bytes, 20), "NFTA_RULE_TABLE");
        assert_eq!(locate(&bytes, 28), "NFTA_RULE_CHAIN");
        assert_eq!(locate(&bytes, 44), "NFTA_RULE_EXPRESSIONS");
        // The expressions attribute starts at 44; its first element at 48 (payload, 0x34
        // bytes), the second (cmp) at 100.
        assert_eq!(
            locate(&bytes, 48),
            "NFTA_RULE_EXPRESSIONS, expression 1 (payload)"
        );
        assert_eq!(
            locate(&bytes, 100),
            "NFTA_RULE_EXPRESSIONS, expression 2 (cmp)"
        );
        assert_eq!(
            locate(&bytes, 143),
            "NFTA_RULE_EXPRESSIONS, expression 2 (cmp)"
        );
        assert_eq!(
            locate(&bytes, 144),
            "NFTA_RULE_EXPRESSIONS, expression 3 (meta)"
        );
        assert_eq!(locate(&bytes, 5000), "byte 5000 of the message");
    }

    #[test]
    fn reads_extended_ack() {
        // A capped error: the echoed 16-byte header, then MSG and OFFS attributes.
        let mut payload = vec![0u8; 16];
        payload.extend([8, 0, 1, 0, b'b', b'a', b'd', 0]);
        payload.extend([8, 0, 2, 0]);
        payload.extend(48u32.to_ne_bytes());
        assert_eq!(
            extack(NLM_F_CAPPED | NLM_F_ACK_TLVS, &payload),
            (Some("bad".to_string()), Some(48))
        );
        assert_eq!(extack(NLM_F_CAPPED, &payload), (None, None));
        // Not capped: the whole original message (here 20 bytes) is echoed first.
        let mut payload = 20u32.to_ne_bytes().to_vec();
        payload.resize(20, 0);
        payload.extend([8, 0, 2, 0]);
        payload.extend(7u32.to_ne_bytes());
        assert_eq!(extack(NLM_F_ACK_TLVS, &payload), (None, Some(7)));
    }

    #[test]
    fn errors_that_stop_everything_say_what_to_do() {
        let e = NftError::Read {
            what: "the list of nf_tables tables".into(),
            errno: 95,
        };
        assert_eq!(
            e.to_string(),
            "reading the list of nf_tables tables: Operation not supported (os error 95) \
             (this kernel has no nf_tables: load the nf_tables module)"
        );
        let f = Failure {
            index: 0,
            purpose: "the batch as a whole".into(),
            errno: 1,
            kernel_message: None,
            location: None,
        };
        assert_eq!(
            f.to_string(),
            "message 0 (the batch as a whole): Operation not permitted (os error 1) \
             (bigbro needs CAP_NET_ADMIN to change nf_tables)"
        );
    }

    #[test]
    fn failures_read_like_sentences() {
        let f = Failure {
            index: 6,
            purpose: "create table ip6 bigbro".into(),
            errno: 1,
            kernel_message: Some("table owned by another process".into()),
            location: Some("NFTA_TABLE_NAME".into()),
        };
        let e = NftError::Refused { failures: vec![f] };
        assert_eq!(
            e.to_string(),
            "the kernel refused the nf_tables batch, so nothing was changed and the previous rules \
             stay in place: message 6 (create table ip6 bigbro): Operation not permitted (os error 1); \
             the kernel says \"table owned by another process\"; at NFTA_TABLE_NAME"
        );
    }
}
