//! The connection to nf_tables: [`Nft::apply`] installs bigbro's mark rules in one atomic
//! batch, [`Nft::read`] reads bigbro's tables back, [`Nft::remove`] deletes them.
//!
//! Every write is one nfnetlink batch (one nf_tables transaction) built by [`Batch`]; every
//! object message carries `NLM_F_ACK`, and the answers are matched back to the messages by
//! sequence number so a refusal names the message that caused it. Reads dump tables, chains,
//! rules, sets, objects and flowtables between two reads of the ruleset generation, and start
//! over if the ruleset changed meanwhile.
//!
//! It must never address a table other than bigbro's own (`ip bigbro`, `ip6 bigbro`), and
//! never report success for a batch the kernel did not fully accept.

use std::time::Duration;

use futures_channel::mpsc::UnboundedReceiver;
use futures_util::StreamExt;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_netfilter::nftables::{
    ChainMessage, GenAttribute, GenMessage, NfTablesMessage, RuleAttribute, RuleMessage,
    SetMessage, TableAttribute, TableMessage,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_proto::sys::{protocols::NETLINK_NETFILTER, AsyncSocket, SocketAddr, TokioSocket};
use netlink_proto::{ConnectionHandle, ReplyExpectation};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::batch::{proto_family, Batch};
use super::decodable::CheckedCodec;
use super::error::{extack, locate, Failure, NftError};
use super::readback::{Dumped, Live};
use super::rule::{Family, MarkRule, TABLE};

type Msg = NetlinkMessage<NetfilterMessage>;
type Unsolicited = UnboundedReceiver<(Msg, SocketAddr)>;

/// How long to wait for the kernel to answer one batch or dump.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for per-message answers once the kernel refused the batch as a whole.
const AFTER_REFUSAL: Duration = Duration::from_secs(1);
/// Socket buffer limits: a batch is one datagram (about 500 bytes a rule) and the kernel
/// queues every answer before bigbro reads any, so the defaults (about 200 KiB) would limit
/// a batch to a few hundred rules. These are limits, not allocations.
const SEND_BUFFER: usize = 32 << 20;
const RECEIVE_BUFFER: usize = 32 << 20;
/// How many times [`Nft::read`] starts over when the ruleset changes under it.
const READ_ATTEMPTS: usize = 5;

/// A netfilter netlink connection, owned by whoever writes bigbro's mark rules.
///
/// Operations are serialised: one batch or read at a time.
pub struct Nft {
    handle: ConnectionHandle<NetfilterMessage>,
    /// Answers netlink-proto could not match to a pending request (an error against
    /// `BATCH_BEGIN`, a buffer overrun). Locked for the whole of each operation.
    unsolicited: Mutex<Unsolicited>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Nft {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn nf_message(family: NetfilterProtoFamily, flags: u16, inner: NfTablesMessage) -> Msg {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let mut msg = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(NetfilterMessage::new(
            NetfilterHeader::new(family, 0, 0),
            inner,
        )),
    );
    msg.finalize();
    msg
}

fn family_of(header: &NetfilterHeader) -> Option<Family> {
    match header.family {
        NetfilterProtoFamily::IPv4 => Some(Family::Ip),
        NetfilterProtoFamily::IPv6 => Some(Family::Ip6),
        _ => None,
    }
}

/// One dump's messages, and whether the kernel flagged it as interrupted by a change.
struct Dump {
    messages: Vec<(NetfilterHeader, NfTablesMessage)>,
    interrupted: bool,
}

impl Nft {
    /// Opens a netfilter netlink socket and spawns its connection task on the current tokio
    /// runtime (so it must be called from within one). The socket belongs to the network
    /// namespace of the calling thread.
    pub fn connect() -> Result<Nft, NftError> {
        let (mut conn, handle, unsolicited) = netlink_proto::new_connection_with_codec::<
            NetfilterMessage,
            TokioSocket,
            CheckedCodec,
        >(NETLINK_NETFILTER)
        .map_err(NftError::Socket)?;
        conn.set_forward_ack(true);
        conn.set_forward_done(true);
        let socket = conn.socket_mut().socket_mut();
        socket.set_ext_ack(true).map_err(NftError::Socket)?;
        socket.set_cap_ack(true).map_err(NftError::Socket)?;
        use nix::sys::socket::{setsockopt, sockopt};
        // The FORCE variants need CAP_NET_ADMIN, which nf_tables needs anyway; without it
        // fall back to the plain options (capped by the sysctl limits).
        if setsockopt(&*socket, sockopt::SndBufForce, &SEND_BUFFER).is_err() {
            let _ = setsockopt(&*socket, sockopt::SndBuf, &SEND_BUFFER);
        }
        if setsockopt(&*socket, sockopt::RcvBufForce, &RECEIVE_BUFFER).is_err() {
            let _ = setsockopt(&*socket, sockopt::RcvBuf, &RECEIVE_BUFFER);
        }
        let task = tokio::spawn(conn);
        Ok(Nft {
            handle,
            unsolicited: Mutex::new(unsolicited),
            task,
        })
    }

    /// Makes bigbro's tables hold exactly `rules`, in order: `ip bigbro` the IPv4 ones and
    /// `ip6 bigbro` the IPv6 ones, each with a `prerouting` chain (type filter, hook
    /// prerouting, priority mangle, policy accept). A family with no rule gets no table (an
    /// existing one is removed). One atomic batch: on any error nothing changed.
    /// Idempotent; it rebuilds the tables every time (resetting nothing but their handles),
    /// so call it when [`Nft::read`] shows a difference. Other tables are never touched.
    ///
    /// After [`NftError::Closed`] the connection is gone: [`Nft::connect`] again.
    pub async fn apply(&self, rules: &[MarkRule]) -> Result<(), NftError> {
        for rule in rules {
            rule.validate()?;
        }
        // The kernel refuses a datagram larger than the send buffer less some overhead. An
        // upper bound of the batch's size (as if both tables also had to be removed):
        let bytes = Batch::new(TABLE, rules, &Family::ALL).len_bytes();
        let limit = SEND_BUFFER - 64 * 1024;
        if bytes > limit {
            return Err(NftError::TooLarge {
                rules: rules.len(),
                bytes,
                limit,
            });
        }
        let mut rx = self.unsolicited.lock().await;
        let present = self.tables(&mut rx).await?;
        let remove: Vec<Family> = present
            .into_iter()
            .filter(|f| !rules.iter().any(|r| r.family() == *f))
            .collect();
        let batch = Batch::new(TABLE, rules, &remove);
        if batch.is_empty() {
            return Ok(());
        }
        self.send(&mut rx, &batch).await
    }

    /// Deletes bigbro's tables (both families) with everything in them. A missing table is
    /// fine. Other tables are never touched.
    pub async fn remove(&self) -> Result<(), NftError> {
        self.apply(&[]).await
    }

    /// Reads bigbro's tables back: their mark rules and anything else found in them.
    pub async fn read(&self) -> Result<Live, NftError> {
        let mut rx = self.unsolicited.lock().await;
        for _ in 0..READ_ATTEMPTS {
            let before = self.generation(&mut rx).await?;
            let (live, interrupted) = self.read_once(&mut rx).await?;
            let after = self.generation(&mut rx).await?;
            if before == after && !interrupted {
                return Ok(live);
            }
        }
        Err(NftError::Unstable {
            tries: READ_ATTEMPTS,
        })
    }

    async fn read_once(&self, rx: &mut Unsolicited) -> Result<(Live, bool), NftError> {
        let tables_dump = self.dump_tables(rx).await?;
        let mut interrupted = tables_dump.interrupted;
        let tables = bigbro_tables(&tables_dump);
        let mut dumped = Dumped::default();
        for &family in &tables {
            let requests = [
                (
                    "chains",
                    NfTablesMessage::GetChain(ChainMessage { attributes: vec![] }),
                ),
                (
                    // The kernel limits a rule dump to the table named in the request.
                    "rules",
                    NfTablesMessage::GetRule(RuleMessage {
                        attributes: vec![RuleAttribute::Table(TABLE.into())],
                    }),
                ),
                (
                    "sets",
                    NfTablesMessage::GetSet(SetMessage { attributes: vec![] }),
                ),
                ("objects", NfTablesMessage::GetObject(vec![])),
                ("flowtables", NfTablesMessage::GetFlowTable(vec![])),
            ];
            for (what, request) in requests {
                let what = format!("the {what} of {family} {TABLE}");
                let dump = self.dump(rx, &what, proto_family(family), request).await?;
                interrupted |= dump.interrupted;
                for (_, message) in dump.messages {
                    dumped.add(family, message);
                }
            }
        }
        Ok((Live::from_dumps(tables, &dumped), interrupted))
    }

    /// The families in which a `bigbro` table exists.
    async fn tables(&self, rx: &mut Unsolicited) -> Result<Vec<Family>, NftError> {
        Ok(bigbro_tables(&self.dump_tables(rx).await?))
    }

    async fn dump_tables(&self, rx: &mut Unsolicited) -> Result<Dump, NftError> {
        self.dump(
            rx,
            "the list of nf_tables tables",
            NetfilterProtoFamily::Unspec,
            NfTablesMessage::GetTable(TableMessage { attributes: vec![] }),
        )
        .await
    }

    /// The ruleset generation id (changes with every committed transaction).
    async fn generation(&self, rx: &mut Unsolicited) -> Result<u32, NftError> {
        let what = "the nf_tables generation";
        let msg = nf_message(
            NetfilterProtoFamily::Unspec,
            NLM_F_REQUEST,
            NfTablesMessage::GetGen(GenMessage { attributes: vec![] }),
        );
        let replies = self.exchange(rx, what, msg).await?;
        for (_, m) in replies.messages {
            if let NfTablesMessage::NewGen(GenMessage { attributes }) = m {
                if let Some(id) = attributes.iter().find_map(|a| match a {
                    GenAttribute::Id(id) => Some(*id),
                    _ => None,
                }) {
                    return Ok(id);
                }
            }
        }
        Err(NftError::Closed {
            what: format!("the read of {what} (no generation id in the answer)"),
        })
    }

    async fn dump(
        &self,
        rx: &mut Unsolicited,
        what: &str,
        family: NetfilterProtoFamily,
        request: NfTablesMessage,
    ) -> Result<Dump, NftError> {
        let msg = nf_message(family, NLM_F_REQUEST | NLM_F_DUMP, request);
        self.exchange(rx, what, msg).await
    }

    /// Sends one request and collects its answers up to the end of the dump (or the single
    /// answer), turning a kernel error into [`NftError::Read`].
    async fn exchange(&self, rx: &mut Unsolicited, what: &str, msg: Msg) -> Result<Dump, NftError> {
        let mut stream = self
            .handle
            .request(msg, SocketAddr::new(0, 0))
            .map_err(|_| NftError::Closed {
                what: format!("the read of {what}"),
            })?;
        let mut dump = Dump {
            messages: Vec::new(),
            interrupted: false,
        };
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            tokio::select! {
                reply = stream.next() => {
                    let Some(reply) = reply else { break };
                    dump.interrupted |= reply.header.flags & NLM_F_DUMP_INTR != 0;
                    match reply.payload {
                        NetlinkPayload::InnerMessage(NetfilterMessage {
                            header,
                            inner: NetfilterMessageInner::NfTables(m),
                            ..
                        }) => dump.messages.push((header, m)),
                        NetlinkPayload::Error(e) if e.code.is_some() => {
                            return Err(NftError::Read { what: what.to_string(), errno: -e.raw_code() });
                        }
                        _ => {}
                    }
                }
                other = rx.next() => {
                    match other {
                        Some((m, _)) if matches!(m.payload, NetlinkPayload::Overrun(_)) => {
                            return Err(NftError::Overrun { what: format!("the read of {what}") });
                        }
                        Some(_) => {}
                        None => return Err(NftError::Closed { what: format!("the read of {what}") }),
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(NftError::Timeout { what: format!("the read of {what}"), seconds: ANSWER_TIMEOUT.as_secs() });
                }
            }
        }
        Ok(dump)
    }

    /// Sends a batch and waits for every answer; succeeds only if the kernel acknowledged
    /// every object message and refused nothing.
    async fn send(&self, rx: &mut Unsolicited, batch: &Batch) -> Result<(), NftError> {
        const WHAT: &str = "the nf_tables batch";
        // Anything left over from an earlier operation that gave up waiting is not about
        // this batch.
        while rx.try_recv().is_ok() {}
        let expected: Vec<usize> = (0..batch.steps.len()).filter(|&i| batch.acked(i)).collect();
        let messages = batch.steps.iter().enumerate().map(|(i, s)| {
            let expect = if batch.acked(i) {
                ReplyExpectation::Expected
            } else {
                ReplyExpectation::NotExpected
            };
            (s.message.clone(), expect)
        });
        let mut stream = self
            .handle
            .request_batch_with_expectation(messages, SocketAddr::new(0, 0))
            .map_err(|_| NftError::Closed {
                what: WHAT.to_string(),
            })?;

        let mut answers: Vec<Msg> = Vec::new();
        // Errors the kernel reported against the batch as a whole (against BATCH_BEGIN,
        // which netlink-proto does not track): a commit failure, missing privileges, OOM.
        let mut batch_errors: Vec<Msg> = Vec::new();
        let mut deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            tokio::select! {
                reply = stream.next() => match reply {
                    Some(m) => answers.push(m),
                    None => break,
                },
                other = rx.next() => match other {
                    Some((m, _)) => match &m.payload {
                        NetlinkPayload::Overrun(_) => return Err(NftError::Overrun { what: WHAT.to_string() }),
                        NetlinkPayload::Error(e) if e.code.is_some() => {
                            batch_errors.push(m);
                            deadline = deadline.min(Instant::now() + AFTER_REFUSAL);
                        }
                        _ => {}
                    },
                    None => return Err(NftError::Closed { what: WHAT.to_string() }),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    if batch_errors.is_empty() {
                        return Err(NftError::Timeout { what: WHAT.to_string(), seconds: ANSWER_TIMEOUT.as_secs() });
                    }
                    break;
                }
            }
        }
        while let Ok((m, _)) = rx.try_recv() {
            if matches!(&m.payload, NetlinkPayload::Error(e) if e.code.is_some()) {
                batch_errors.push(m);
            }
        }

        let failures = attribute(batch, &answers, &batch_errors);
        if !failures.is_empty() {
            return Err(NftError::Refused { failures });
        }
        if answers.len() != expected.len() {
            return Err(NftError::Closed {
                what: format!(
                    "{WHAT} ({} of {} answers received)",
                    answers.len(),
                    expected.len()
                ),
            });
        }
        Ok(())
    }
}

/// The families in which the table dump shows a `bigbro` table.
fn bigbro_tables(dump: &Dump) -> Vec<Family> {
    let mut found: Vec<Family> = dump
        .messages
        .iter()
        .filter_map(|(header, m)| match m {
            NfTablesMessage::NewTable(t)
                if t.attributes.contains(&TableAttribute::Name(TABLE.into())) =>
            {
                family_of(header)
            }
            _ => None,
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Matches the kernel's error answers to the batch's messages. Answers to a batch come in
/// message order, one per acknowledged message, and netlink-proto numbers a batch's
/// messages consecutively; so the lowest answered sequence number is the first object
/// message's (index 1), and every other index follows from its sequence number.
fn attribute(batch: &Batch, answers: &[Msg], batch_errors: &[Msg]) -> Vec<Failure> {
    let mut failures = Vec::new();
    let first = answers.iter().map(|m| m.header.sequence_number).min();
    for m in answers {
        let NetlinkPayload::Error(e) = &m.payload else {
            continue;
        };
        let Some(code) = e.code else { continue };
        let seq = m.header.sequence_number;
        // The error echoes the failed message's header; its type must be the one sent at
        // that index, or the index is not trusted.
        let echoed_type = e.header.get(4..6).map(|t| u16::from_ne_bytes([t[0], t[1]]));
        let index = first
            .map(|f| seq.wrapping_sub(f) as usize + 1)
            .filter(|&i| batch.steps.get(i).map(|s| s.message.header.message_type) == echoed_type);
        let step = index.and_then(|i| batch.steps.get(i));
        let (kernel_message, offset) = extack(m.header.flags, &e.header);
        let location = match (step, offset) {
            (Some(step), Some(offset)) => {
                let mut msg = step.message.clone();
                msg.header.sequence_number = seq;
                msg.finalize();
                let mut bytes = vec![0; msg.buffer_len()];
                msg.serialize(&mut bytes);
                Some(locate(&bytes, offset))
            }
            _ => None,
        };
        failures.push(Failure {
            index: index.unwrap_or(0),
            purpose: step.map_or_else(
                || format!("the message with sequence number {seq}"),
                |s| s.purpose.clone(),
            ),
            errno: -code.get(),
            kernel_message,
            location,
        });
    }
    for m in batch_errors {
        let NetlinkPayload::Error(e) = &m.payload else {
            continue;
        };
        let Some(code) = e.code else { continue };
        let (kernel_message, _) = extack(m.header.flags, &e.header);
        failures.push(Failure {
            index: 0,
            purpose: "the batch as a whole".to_string(),
            errno: -code.get(),
            kernel_message,
            location: None,
        });
    }
    failures
}

#[cfg(test)]
#[path = "../../tests/support/netns.rs"]
mod netns;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::rule::{L4Proto, PortRange};
    use netlink_packet_netfilter::nftables::{
        Cmp, DataAttribute, ExpressionAttribute, Expressions, ListAttribute,
    };

    use super::netns::in_netns;

    fn rule(daddr: &str, mark: u32) -> MarkRule {
        MarkRule {
            daddr: daddr.parse().unwrap(),
            proto: L4Proto::Tcp,
            ports: PortRange::single(80),
            iifname: Some("eth0".into()),
            mark,
        }
    }

    /// A rule the kernel itself refuses (an interface-name comparison of 20 bytes, more than
    /// a register compare can hold; `MarkRule::validate` keeps such names from ever being
    /// encoded, so the message is doctored here), in the middle of a batch (after a good
    /// rule): the whole transaction is refused, the previous rules stay, and the error
    /// names the rule and, from the kernel's extended ack, the expression.
    #[test]
    fn a_rule_the_kernel_refuses_is_named_down_to_the_expression() {
        in_netns(|| async {
            let nft = Nft::connect().unwrap();
            let old = vec![rule("10.0.0.1", 1)];
            nft.apply(&old).await.unwrap();

            let new = vec![
                rule("10.0.0.2", 2),
                rule("10.0.0.3", 3),
                rule("10.0.0.4", 4),
            ];
            let mut batch = Batch::new(TABLE, &new, &[]);
            // Steps: BEGIN, 3 table messages, chain, rules at 5, 6, 7, END.
            let NetlinkPayload::InnerMessage(m) = &mut batch.steps[6].message.payload else {
                unreachable!()
            };
            let NetfilterMessageInner::NfTables(NfTablesMessage::NewRule(r)) = &mut m.inner else {
                unreachable!()
            };
            let RuleAttribute::Expressions(exprs) = &mut r.attributes[2] else {
                unreachable!()
            };
            // Expression 8 is the interface name comparison.
            let ListAttribute::Element(attrs) = &mut exprs[7] else {
                unreachable!()
            };
            let ExpressionAttribute::Data(Expressions::Cmp(cmp)) = &mut attrs[1] else {
                unreachable!()
            };
            cmp[2] = Cmp::Data(DataAttribute::Value(
                b"an-interface-name-too-long"[..20].to_vec(),
            ));
            batch.steps[6].message.finalize();

            let mut rx = nft.unsolicited.lock().await;
            let err = nft.send(&mut rx, &batch).await.unwrap_err();
            drop(rx);
            let NftError::Refused { failures } = &err else {
                panic!("{err:?}")
            };
            assert_eq!(failures.len(), 1, "{err}");
            let f = &failures[0];
            assert_eq!(f.index, 6, "{err}");
            assert_eq!(
                f.purpose,
                "add rule `ip daddr 10.0.0.3 tcp dport 80 iifname \"eth0\" meta mark set 0x00000003` to ip bigbro prerouting"
            );
            assert_eq!(
                f.location.as_deref(),
                Some("NFTA_RULE_EXPRESSIONS, expression 8 (cmp)"),
                "{err}"
            );
            let live = nft.read().await.unwrap();
            assert!(live.matches(&old), "{:?}", live.differences(&old));
        });
    }
}
