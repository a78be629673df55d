//! The nfnetlink batch that installs or removes bigbro's tables, built as plain messages
//! (no I/O), each paired with a sentence saying what it does, so a kernel error can be
//! reported against the message that caused it.
//!
//! One batch is one nf_tables transaction: all of it is committed, or none of it. A table is
//! replaced with `NEWTABLE, DELTABLE, NEWTABLE, NEWCHAIN, NEWRULE…` (as nft itself does: the capture in
//! `tests/data/nft_sendmsg_raw.txt`, read by this file's tests): the
//! first NEWTABLE makes the DELTABLE valid whether or not the table existed, so the same
//! batch works on a fresh host and on a running one, and packets see the old ruleset or the
//! new one, never an empty table in between. `NFT_MSG_DESTROYTABLE` (a delete that ignores a
//! missing table) would save one message but needs Linux 6.3; the test-bed and Debian 12
//! kernels are 6.1. A table bigbro no longer needs is removed with `NEWTABLE, DELTABLE`.
//! The owner flag (`NFT_TABLE_F_OWNER`) is never set: a table that vanished with the daemon
//! would stop forwarding whenever bigbro restarts.
//!
//! Every message carries only bigbro's table name: nothing here can address another table.
//! Object messages carry `NLM_F_ACK` so the kernel answers each one; `BATCH_BEGIN` and
//! `BATCH_END` do not (kernels before 6.10 never answer them).

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE,
    NLM_F_REQUEST,
};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, Hook, HookNumber, InetHookNumber, NfTablesMessage, RuleAttribute,
    RuleMessage, TableAttribute, TableFlags, TableMessage,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};

use super::expr;
use super::rule::{Family, MarkRule, CHAIN, PRIORITY_MANGLE};

/// `NFNL_SUBSYS_NFTABLES`: the `res_id` of `BATCH_BEGIN`/`BATCH_END`, naming the subsystem
/// the batch is for.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NF_ACCEPT`, the chain policy.
const NF_ACCEPT: u32 = 1;

/// One message of a batch and what it does, in words for an error report.
#[derive(Debug, Clone)]
pub struct Step {
    pub message: NetlinkMessage<NetfilterMessage>,
    pub purpose: String,
}

/// A whole nfnetlink batch: `BATCH_BEGIN`, the object messages, `BATCH_END`.
#[derive(Debug, Clone)]
pub struct Batch {
    pub steps: Vec<Step>,
}

pub fn proto_family(family: Family) -> NetfilterProtoFamily {
    match family {
        Family::Ip => NetfilterProtoFamily::IPv4,
        Family::Ip6 => NetfilterProtoFamily::IPv6,
    }
}

fn message(
    family: NetfilterProtoFamily,
    res_id: u16,
    flags: u16,
    inner: impl Into<netlink_packet_netfilter::NetfilterMessageInner>,
) -> NetlinkMessage<NetfilterMessage> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let mut msg = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(NetfilterMessage::new(
            NetfilterHeader::new(family, 0, res_id),
            inner,
        )),
    );
    msg.finalize();
    msg
}

fn object(family: Family, flags: u16, inner: NfTablesMessage) -> NetlinkMessage<NetfilterMessage> {
    message(
        proto_family(family),
        0,
        NLM_F_REQUEST | NLM_F_ACK | flags,
        inner,
    )
}

fn new_table(table: &str, family: Family) -> Step {
    Step {
        message: object(
            family,
            0,
            NfTablesMessage::NewTable(TableMessage {
                attributes: vec![
                    TableAttribute::Name(table.to_string()),
                    TableAttribute::Flags(TableFlags::empty()),
                ],
            }),
        ),
        purpose: format!("create table {family} {table}"),
    }
}

fn del_table(table: &str, family: Family) -> Step {
    Step {
        message: object(
            family,
            0,
            NfTablesMessage::DeleteTable(TableMessage {
                attributes: vec![TableAttribute::Name(table.to_string())],
            }),
        ),
        purpose: format!("delete table {family} {table}"),
    }
}

fn new_chain(table: &str, family: Family) -> Step {
    Step {
        message: object(
            family,
            NLM_F_CREATE,
            NfTablesMessage::NewChain(ChainMessage {
                attributes: vec![
                    ChainAttribute::Table(table.to_string()),
                    ChainAttribute::Name(CHAIN.to_string()),
                    ChainAttribute::Type("filter".to_string()),
                    ChainAttribute::Policy(NF_ACCEPT),
                    ChainAttribute::Hook(vec![
                        Hook::Number(HookNumber::Inet(InetHookNumber::PreRouting)),
                        Hook::Priority(PRIORITY_MANGLE as u32),
                    ]),
                ],
            }),
        ),
        purpose: format!(
            "create chain {family} {table} {CHAIN} (type filter hook prerouting priority mangle)"
        ),
    }
}

fn new_rule(table: &str, rule: &MarkRule) -> Step {
    let family = rule.family();
    Step {
        message: object(
            family,
            NLM_F_CREATE | NLM_F_APPEND,
            NfTablesMessage::NewRule(RuleMessage {
                attributes: vec![
                    RuleAttribute::Table(table.to_string()),
                    RuleAttribute::Chain(CHAIN.to_string()),
                    RuleAttribute::Expressions(expr::encode(rule)),
                ],
            }),
        ),
        purpose: format!("add rule `{}` to {family} {table} {CHAIN}", rule.nft_text()),
    }
}

fn control(inner: ControlMessage, what: &str) -> Step {
    Step {
        message: message(
            NetfilterProtoFamily::Unspec,
            NFNL_SUBSYS_NFTABLES,
            NLM_F_REQUEST,
            inner,
        ),
        purpose: what.to_string(),
    }
}

impl Batch {
    /// The batch that makes `table` hold exactly `rules` (in order) in each family that
    /// has rules, and removes the table from the families in `remove` (which must have no
    /// rules). The caller validates the rules and decides which families to remove; no
    /// rules and nothing to remove give a batch with no object message.
    pub fn new(table: &str, rules: &[MarkRule], remove: &[Family]) -> Batch {
        let mut steps = vec![control(ControlMessage::BatchBegin, "begin the batch")];
        let install = Family::ALL
            .into_iter()
            .filter(|f| rules.iter().any(|r| r.family() == *f));
        for family in install {
            steps.push(new_table(table, family));
            steps.push(del_table(table, family));
            steps.push(new_table(table, family));
            steps.push(new_chain(table, family));
            for rule in rules.iter().filter(|r| r.family() == family) {
                steps.push(new_rule(table, rule));
            }
        }
        for &family in remove {
            steps.push(new_table(table, family));
            steps.push(del_table(table, family));
        }
        steps.push(control(ControlMessage::BatchEnd, "end the batch"));
        Batch { steps }
    }

    /// Whether the batch changes anything (has a message between BEGIN and END).
    pub fn is_empty(&self) -> bool {
        self.steps.len() <= 2
    }

    /// The size of the batch on the wire.
    pub fn len_bytes(&self) -> usize {
        self.steps.iter().map(|s| s.message.buffer_len()).sum()
    }

    /// Whether the kernel answers message `index` (it carries `NLM_F_ACK`).
    pub fn acked(&self, index: usize) -> bool {
        self.steps[index].message.header.flags & NLM_F_ACK != 0
    }

    #[cfg(test)]
    /// The batch as the bytes of one `sendmsg`, numbering messages from `first_seq` with
    /// port id 0, as netlink-proto does (with its own sequence numbers).
    pub fn to_bytes(&self, first_seq: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let mut msg = step.message.clone();
            msg.header.sequence_number = first_seq + i as u32;
            msg.finalize();
            let start = out.len();
            out.resize(start + msg.buffer_len(), 0);
            msg.serialize(&mut out[start..]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::rule::{L4Proto, PortRange};

    /// Reads the strace rendering of the `sendmsg` that nft 1.0.6 made for
    /// `add table ip bb; delete table ip bb; add table ip bb; add chain ip bb prerouting {…};
    /// add rule ip bb prerouting ip daddr 10.0.0.100 tcp dport 80 iifname "eth0" meta mark
    /// set 0x7` (`tests/data/nft_sendmsg_raw.txt`) back into bytes: every
    /// `{nlmsg_len=…}` is a 16-byte netlink header, every `{nfgen_family=…}` a 4-byte
    /// nfgenmsg, every `{nla_len=…}` a 4-byte attribute header followed by its value (the
    /// next string literal, padded to 4 bytes).
    fn strace_bytes(text: &str) -> Vec<u8> {
        fn field<'a>(s: &'a str, key: &str) -> &'a str {
            let at = s.find(key).unwrap_or_else(|| panic!("no {key} in {s}")) + key.len();
            let rest = &s[at..];
            let end = rest.find([',', '}']).unwrap();
            &rest[..end]
        }
        fn num(v: &str) -> u32 {
            v.strip_prefix("0x")
                .map(|h| u32::from_str_radix(h, 16).unwrap())
                .unwrap_or_else(|| v.parse().unwrap())
        }
        fn symbols(v: &str) -> u32 {
            v.split('|')
                .map(|t| match t.trim() {
                    "NLM_F_REQUEST" => 1,
                    "NLM_F_ACK" => 4,
                    "NLM_F_CREATE" => 0x400,
                    "NLM_F_APPEND" => 0x800,
                    "NFNL_MSG_BATCH_BEGIN" => 0x10,
                    "NFNL_MSG_BATCH_END" => 0x11,
                    "NFNL_SUBSYS_NFTABLES<<8" => 10 << 8,
                    "NFT_MSG_NEWTABLE" => 0,
                    "NFT_MSG_DELTABLE" => 2,
                    "NFT_MSG_NEWCHAIN" => 3,
                    "NFT_MSG_NEWRULE" => 6,
                    "NLA_F_NESTED" => 0x8000,
                    "AF_UNSPEC" => 0,
                    "AF_INET" => 2,
                    "NFNETLINK_V0" => 0,
                    other => num(other),
                })
                .fold(0, |a, b| a | b)
        }
        let body = &text[text.find("iov_base=").unwrap()..];
        let mut out = Vec::new();
        let mut rest = body;
        while let Some(open) = rest.find(['{', '"']) {
            rest = &rest[open..];
            if rest.starts_with('"') {
                let end = rest[1..].find('"').unwrap() + 1;
                let lit = &rest[1..end];
                for byte in lit.split("\\x").skip(1) {
                    out.push(u8::from_str_radix(byte, 16).unwrap());
                }
                while out.len() % 4 != 0 {
                    out.push(0);
                }
                rest = &rest[end + 1..];
                continue;
            }
            let close = rest.find('}').unwrap();
            let item = &rest[..close + 1];
            if item.starts_with("{nlmsg_len=") {
                out.extend(num(field(item, "nlmsg_len=")).to_ne_bytes());
                out.extend((symbols(field(item, "nlmsg_type=")) as u16).to_ne_bytes());
                out.extend((symbols(field(item, "nlmsg_flags=")) as u16).to_ne_bytes());
                out.extend(num(field(item, "nlmsg_seq=")).to_ne_bytes());
                out.extend(num(field(item, "nlmsg_pid=")).to_ne_bytes());
            } else if item.starts_with("{nfgen_family=") {
                out.push(symbols(field(item, "nfgen_family=")) as u8);
                out.push(symbols(field(item, "version=")) as u8);
                let res = field(item, "res_id=htons(");
                out.extend((num(res.trim_end_matches(')')) as u16).to_be_bytes());
            } else if item.starts_with("{nla_len=") {
                out.extend((num(field(item, "nla_len=")) as u16).to_ne_bytes());
                out.extend((symbols(field(item, "nla_type=")) as u16).to_ne_bytes());
            } else if item.starts_with("{msg_name=")
                || item.starts_with("{sa_family=")
                || item.starts_with("{iov_base=")
            {
                // sockaddr and msghdr wrappers carry no message bytes
            }
            rest = &rest[1..];
        }
        out
    }

    fn captured_rule() -> MarkRule {
        MarkRule {
            daddr: "10.0.0.100".parse().unwrap(),
            proto: L4Proto::Tcp,
            ports: PortRange::single(80),
            iifname: Some("eth0".into()),
            mark: 7,
        }
    }

    /// The golden test: bigbro's batch for the captured rule is nft's batch, byte for
    /// byte, once two deliberate differences are accounted for:
    /// - the capture's table is `bb` (the research session's name); bigbro's is `bigbro`,
    ///   so the batch is built with the table name `bb` here;
    /// - nft 1.0.6 sets no `NLM_F_ACK`; bigbro sets it on every object message so the
    ///   kernel answers each one. The test checks it is set on exactly those five and
    ///   clears it before comparing.
    ///
    /// Sequence numbers (0..6) and port ids (0) are the capture's; netlink-proto chooses
    /// its own sequence numbers when sending.
    #[test]
    fn golden_batch_matches_nft_capture() {
        let text = include_str!("../../tests/data/nft_sendmsg_raw.txt");
        let want = strace_bytes(text);
        assert_eq!(want.len(), 716, "the capture says iov_len=716");

        let batch = Batch::new("bb", &[captured_rule()], &[]);
        let acked: Vec<bool> = (0..batch.steps.len()).map(|i| batch.acked(i)).collect();
        assert_eq!(acked, [false, true, true, true, true, true, false]);

        let mut got = batch.to_bytes(0);
        assert_eq!(batch.len_bytes(), got.len());
        let mut at = 0;
        while at < got.len() {
            let len = u32::from_ne_bytes(got[at..at + 4].try_into().unwrap()) as usize;
            let flags = u16::from_ne_bytes(got[at + 6..at + 8].try_into().unwrap());
            got[at + 6..at + 8].copy_from_slice(&(flags & !NLM_F_ACK).to_ne_bytes());
            at += len;
        }
        if got != want {
            let first = got.iter().zip(&want).position(|(a, b)| a != b);
            panic!(
                "batch differs from the capture (lengths {} vs {}, first difference at byte {first:?})\n got: {got:02x?}\nwant: {want:02x?}",
                got.len(),
                want.len()
            );
        }
    }

    #[test]
    fn purposes_name_each_message() {
        let v6 = MarkRule {
            daddr: "2001:db8::1".parse().unwrap(),
            ..captured_rule()
        };
        let batch = Batch::new("bigbro", &[v6], &[Family::Ip]);
        let purposes: Vec<&str> = batch.steps.iter().map(|s| s.purpose.as_str()).collect();
        assert_eq!(
            purposes,
            [
                "begin the batch",
                "create table ip6 bigbro",
                "delete table ip6 bigbro",
                "create table ip6 bigbro",
                "create chain ip6 bigbro prerouting (type filter hook prerouting priority mangle)",
                "add rule `ip6 daddr 2001:db8::1 tcp dport 80 iifname \"eth0\" meta mark set 0x00000007` to ip6 bigbro prerouting",
                "create table ip bigbro",
                "delete table ip bigbro",
                "end the batch",
            ]
        );
        assert!(!batch.is_empty());
        assert!(Batch::new("bigbro", &[], &[]).is_empty());
    }
}
