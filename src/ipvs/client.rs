//! `Client`: the async IPVS client. It resolves the "IPVS" generic netlink family through
//! nlctrl (and again when a request fails the way a stale family id fails, e.g. after
//! `ip_vs` was reloaded), reads state with dumps, and changes it with acknowledged
//! requests, one at a time (`execute`) or many per `sendmsg` (`apply`), reporting each
//! kernel error against the operation that caused it.
//!
//! It must never report an operation as done without the kernel's acknowledgement, never
//! return a partial dump as complete, and never panic on what the kernel sends.

use netlink_packet_core::{NlasIterator, ParseableParametrized};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::GenlMessage;
use nix::libc;
use tokio::sync::Mutex;

use super::convert;
use super::error::{Error, Operation};
use super::message::{encode_genl, IpvsCmd, IpvsMessage, FLAGS_DO as DO, FLAGS_DUMP as DUMP};
use super::model::*;
use super::nla::CmdAttr;
use super::op::Op;
use super::transport::{Outcome, Reply, Transport};
use super::uapi::IPVS_GENL_NAME;

/// nlctrl's static family id (`GENL_ID_CTRL`).
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

/// An IPVS client bound to the network namespace it was created in. Requests are
/// serialised: one request (or batch) is on the wire at a time. Dropping a request's
/// future before it completes is safe (late replies are recognised by sequence number and
/// skipped), but what it did is then unknown: re-read the state.
pub struct Client {
    inner: Mutex<Inner>,
}

struct Inner {
    transport: Transport,
    family: u16,
}

/// One request waiting to be encoded: the message and its netlink flags.
type Request = (IpvsMessage, u16);

impl Client {
    /// Opens a netlink socket and resolves the IPVS family.
    /// `Error::NotAvailable` if this kernel has no IPVS.
    pub async fn connect() -> Result<Client, Error> {
        let transport = Transport::open().map_err(|source| Error::Io {
            op: Box::new(Operation::Connect),
            source,
        })?;
        let mut inner = Inner {
            transport,
            family: 0,
        };
        inner.family = inner.lookup_family(&Operation::Connect).await?;
        Ok(Client {
            inner: Mutex::new(inner),
        })
    }

    /// The generic netlink id the IPVS family currently has.
    pub async fn family_id(&self) -> u16 {
        self.inner.lock().await.family
    }

    /// Every service of this network namespace, in kernel order.
    pub async fn services(&self) -> Result<Vec<ServiceEntry>, Error> {
        let op = Operation::ListServices;
        let msgs = self.one(&op, IpvsMessage::dump_services(), DUMP).await?;
        msgs.iter().map(|m| service_of(&op, m)).collect()
    }

    /// One service (GET_SERVICE); `ServiceNotFound` if absent.
    pub async fn service(&self, key: &ServiceKey) -> Result<ServiceEntry, Error> {
        let op = Operation::GetService(*key);
        let msgs = self.one(&op, IpvsMessage::get_service(key), DO).await?;
        match msgs.as_slice() {
            [m] => service_of(&op, m),
            other => Err(malformed(
                &op,
                format!("{} replies, expected 1", other.len()),
            )),
        }
    }

    /// The destinations of one service, in kernel order. The kernel answers a missing
    /// service with an empty list, not an error.
    pub async fn dests(&self, key: &ServiceKey) -> Result<Vec<DestEntry>, Error> {
        let op = Operation::ListDests(*key);
        let msgs = self.one(&op, IpvsMessage::dump_dests(key), DUMP).await?;
        msgs.iter().map(|m| dest_of(&op, m, key.family())).collect()
    }

    /// Every service with its destinations.
    pub async fn state(&self) -> Result<Vec<(ServiceEntry, Vec<DestEntry>)>, Error> {
        let mut out = Vec::new();
        for svc in self.services().await? {
            let dests = self.dests(&svc.service.key).await?;
            out.push((svc, dests));
        }
        Ok(out)
    }

    /// The IPVS version and connection table size (GET_INFO).
    pub async fn info(&self) -> Result<Info, Error> {
        let op = Operation::GetInfo;
        let msgs = self.one(&op, IpvsMessage::get_info(), DO).await?;
        let m = single(&op, &msgs, IpvsCmd::SetInfo)?;
        convert::info_from_attrs(&m.attrs).map_err(|e| malformed(&op, e))
    }

    /// The connection timeouts (GET_CONFIG).
    pub async fn timeouts(&self) -> Result<Timeouts, Error> {
        let op = Operation::GetTimeouts;
        let msgs = self.one(&op, IpvsMessage::get_config(), DO).await?;
        let m = single(&op, &msgs, IpvsCmd::SetConfig)?;
        Ok(convert::timeouts_from_attrs(&m.attrs))
    }

    /// The running connection-sync daemons (GET_DAEMON).
    pub async fn daemons(&self) -> Result<Vec<SyncDaemon>, Error> {
        let op = Operation::ListDaemons;
        let msgs = self.one(&op, IpvsMessage::dump_daemons(), DUMP).await?;
        let mut out = Vec::new();
        for m in &msgs {
            for a in &m.attrs {
                if let CmdAttr::Daemon(attrs) = a {
                    out.push(convert::daemon_from_attrs(attrs).map_err(|e| malformed(&op, e))?);
                }
            }
        }
        Ok(out)
    }

    /// Performs one operation and waits for the kernel's acknowledgement.
    pub async fn execute(&self, op: Op) -> Result<(), Error> {
        let mut results = self.apply(std::slice::from_ref(&op)).await;
        results.pop().unwrap_or_else(|| Err(unanswered(&op)))
    }

    /// Performs `ops` in order, many per `sendmsg` (each with its own ACK), and returns
    /// one result per op, in the same order. The kernel carries on after a failed op, so
    /// a failure affects only its own entry (and ops that depended on it fail on their
    /// own account, e.g. a destination added to a service that could not be created).
    pub async fn apply(&self, ops: &[Op]) -> Vec<Result<(), Error>> {
        let mut results: Vec<Option<Result<(), Error>>> = Vec::with_capacity(ops.len());
        let mut sendable = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match op.check() {
                Ok(()) => {
                    results.push(None);
                    sendable.push(i);
                }
                Err(reason) => results.push(Some(Err(Error::BadRequest {
                    op: Box::new(Operation::Apply(op.clone())),
                    reason,
                }))),
            }
        }
        let mut inner = self.inner.lock().await;
        let (max_count, max_bytes) = (
            inner.transport.max_batch(),
            inner.transport.max_batch_bytes(),
        );
        let mut start = 0;
        while start < sendable.len() {
            // A chunk: as many ops as the ACK budget and the datagram size allow.
            let (mut end, mut bytes) = (start, 0);
            while end < sendable.len() && end - start < max_count {
                let len = ops[sendable[end]].message().buffer_len_estimate();
                if end > start && bytes + len > max_bytes {
                    break;
                }
                bytes += len;
                end += 1;
            }
            let chunk = &sendable[start..end];
            let requests: Vec<Request> = chunk.iter().map(|&i| (ops[i].message(), DO)).collect();
            let ctx: Vec<Operation> = chunk
                .iter()
                .map(|&i| Operation::Apply(ops[i].clone()))
                .collect();
            let outcomes = inner.run(&ctx, requests).await;
            for (&i, outcome) in chunk.iter().zip(outcomes) {
                results[i] = Some(outcome.map(|_| ()));
            }
            start = end;
        }
        // Every op got its result above; an op without one is never reported as done.
        results
            .into_iter()
            .zip(ops)
            .map(|(r, op)| r.unwrap_or_else(|| Err(unanswered(op))))
            .collect()
    }

    /// One request; the replies' IPVS messages.
    async fn one(
        &self,
        op: &Operation,
        msg: IpvsMessage,
        flags: u16,
    ) -> Result<Vec<IpvsMessage>, Error> {
        let mut inner = self.inner.lock().await;
        let mut out = inner
            .run(std::slice::from_ref(op), vec![(msg, flags)])
            .await;
        out.pop()
            .unwrap_or_else(|| Err(malformed(op, "no reply slot".to_string())))
    }
}

impl IpvsMessage {
    /// Bytes this message takes on the wire (netlink and genl headers included).
    fn buffer_len_estimate(&self) -> usize {
        use netlink_packet_core::Emitable;
        16 + 4 + self.buffer_len()
    }
}

impl Inner {
    /// Sequence number and port are filled in by the transport.
    fn encode(&self, msg: IpvsMessage, flags: u16) -> Vec<u8> {
        msg.encode(self.family, flags, 0, 0)
    }

    /// Sends `requests` in one datagram and decodes each reply. If a request fails the
    /// way a stale family id fails (ENOENT or EINVAL) and the family id has changed, the
    /// failed requests are sent once more under the new id.
    async fn run(
        &mut self,
        ops: &[Operation],
        requests: Vec<Request>,
    ) -> Vec<Result<Vec<IpvsMessage>, Error>> {
        let encoded: Vec<Vec<u8>> = requests
            .iter()
            .map(|(m, f)| self.encode(m.clone(), *f))
            .collect();
        let mut replies = match self.transport.exchange(encoded).await {
            Ok(r) => r,
            Err(e) => return ops.iter().map(|op| Err(io_error(op, &e))).collect(),
        };

        let suspicious: Vec<usize> = replies
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                matches!(r.outcome, Outcome::Failed { errno, .. }
                    if errno == libc::ENOENT || errno == libc::EINVAL)
            })
            .map(|(i, _)| i)
            .collect();
        let mut gone = false;
        if !suspicious.is_empty() {
            match self.lookup_family(&ops[suspicious[0]]).await {
                Ok(id) if id != self.family => {
                    self.family = id;
                    let again: Vec<Vec<u8>> = suspicious
                        .iter()
                        .map(|&i| self.encode(requests[i].0.clone(), requests[i].1))
                        .collect();
                    match self.transport.exchange(again).await {
                        Ok(retried) => {
                            for (&i, r) in suspicious.iter().zip(retried) {
                                replies[i] = r;
                            }
                        }
                        Err(e) => {
                            return ops.iter().map(|op| Err(io_error(op, &e))).collect();
                        }
                    }
                }
                Err(Error::NotAvailable { .. }) => gone = true,
                _ => {}
            }
        }

        replies
            .into_iter()
            .enumerate()
            .map(|(i, reply)| {
                let op = &ops[i];
                if gone && suspicious.contains(&i) {
                    return Err(Error::NotAvailable {
                        op: Box::new(op.clone()),
                    });
                }
                decode_reply(op, reply, self.family)
            })
            .collect()
    }

    /// Asks nlctrl for the IPVS family id.
    async fn lookup_family(&mut self, op: &Operation) -> Result<u16, Error> {
        let mut genl = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(IPVS_GENL_NAME.to_string())],
        });
        genl.finalize();
        let request = encode_genl(genl, DO, 0, 0);
        let reply = self
            .transport
            .exchange(vec![request])
            .await
            .map_err(|e| io_error(op, &e))?
            .pop()
            .ok_or_else(|| malformed(op, "no reply to the family lookup".to_string()))?;
        match reply.outcome {
            Outcome::Done => {}
            Outcome::Failed { errno, .. } if errno == libc::ENOENT => {
                return Err(Error::NotAvailable {
                    op: Box::new(op.clone()),
                })
            }
            Outcome::Failed { errno, .. } => return Err(Error::from_errno(op.clone(), errno)),
            Outcome::Lost(reason) => {
                return Err(Error::NoAnswer {
                    op: Box::new(op.clone()),
                    reason,
                })
            }
        }
        for (msg_type, payload) in &reply.data {
            if *msg_type != GENL_ID_CTRL || payload.len() < 4 {
                continue;
            }
            if let Some(id) = family_id_of(&payload[4..]) {
                return Ok(id);
            }
        }
        Err(malformed(
            op,
            "nlctrl answered without the IPVS family id".to_string(),
        ))
    }
}

/// Reads CTRL_ATTR_FAMILY_ID from an nlctrl NEWFAMILY reply naming "IPVS". Only those
/// two attributes are read, so attributes a newer kernel adds cannot break it.
fn family_id_of(attrs: &[u8]) -> Option<u16> {
    let (mut id, mut name_ok) = (None, false);
    for nla in NlasIterator::new(attrs) {
        let nla = nla.ok()?;
        let v = nla.value();
        match nla.kind() {
            CTRL_ATTR_FAMILY_ID if v.len() == 2 => id = Some(u16::from_ne_bytes([v[0], v[1]])),
            CTRL_ATTR_FAMILY_NAME => {
                name_ok = v.split(|b| *b == 0).next() == Some(IPVS_GENL_NAME.as_bytes())
            }
            _ => {}
        }
    }
    if name_ok {
        id
    } else {
        None
    }
}

fn decode_reply(op: &Operation, reply: Reply, family: u16) -> Result<Vec<IpvsMessage>, Error> {
    match reply.outcome {
        Outcome::Done => {}
        Outcome::Failed { errno, .. } => return Err(Error::from_errno(op.clone(), errno)),
        Outcome::Lost(reason) => {
            return Err(Error::NoAnswer {
                op: Box::new(op.clone()),
                reason,
            })
        }
    }
    reply
        .data
        .iter()
        .map(|(msg_type, payload)| {
            if *msg_type != family {
                return Err(malformed(
                    op,
                    format!("reply of netlink type {msg_type}, expected IPVS ({family})"),
                ));
            }
            GenlMessage::<IpvsMessage>::parse_with_param(payload.as_slice(), *msg_type)
                .map(|g| g.payload)
                .map_err(|e| malformed(op, e))
        })
        .collect()
}

fn single<'a>(
    op: &Operation,
    msgs: &'a [IpvsMessage],
    cmd: IpvsCmd,
) -> Result<&'a IpvsMessage, Error> {
    match msgs {
        [m] if m.cmd == cmd => Ok(m),
        [m] => Err(malformed(
            op,
            format!("reply command {:?}, expected {cmd:?}", m.cmd),
        )),
        _ => Err(malformed(op, format!("{} replies, expected 1", msgs.len()))),
    }
}

fn service_of(op: &Operation, m: &IpvsMessage) -> Result<ServiceEntry, Error> {
    for a in &m.attrs {
        if let CmdAttr::Service(attrs) = a {
            return convert::service_from_attrs(attrs).map_err(|e| malformed(op, e));
        }
    }
    Err(malformed(op, "service reply without a service".to_string()))
}

fn dest_of(op: &Operation, m: &IpvsMessage, family: Family) -> Result<DestEntry, Error> {
    for a in &m.attrs {
        if let CmdAttr::Dest(attrs) = a {
            return convert::dest_from_attrs(attrs, family).map_err(|e| malformed(op, e));
        }
    }
    Err(malformed(
        op,
        "destination reply without a destination".to_string(),
    ))
}

fn unanswered(op: &Op) -> Error {
    Error::NoAnswer {
        op: Box::new(Operation::Apply(op.clone())),
        reason: "no result was recorded for it".to_string(),
    }
}

fn malformed(op: &Operation, detail: impl ToString) -> Error {
    Error::Malformed {
        op: Box::new(op.clone()),
        detail: detail.to_string(),
    }
}

fn io_error(op: &Operation, e: &std::io::Error) -> Error {
    Error::Io {
        op: Box::new(op.clone()),
        source: std::io::Error::new(e.kind(), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real kernel: the development host has no IPVS at all, the test bed has it. Either
    // way the client's verdict must agree with /proc/net/ip_vs, which exists exactly
    // when IPVS is registered in this network namespace.
    #[tokio::test]
    async fn connect_agrees_with_proc_about_ipvs_being_there() {
        let result = Client::connect().await;
        let proc_says = std::path::Path::new("/proc/net/ip_vs").exists();
        match result {
            Ok(client) => {
                assert!(proc_says, "family resolved but /proc/net/ip_vs is missing");
                assert_ne!(client.family_id().await, 0);
            }
            Err(e) => {
                assert!(!proc_says, "IPVS is there but connect failed: {e}");
                assert!(matches!(e, Error::NotAvailable { .. }), "{e:?}");
                assert_eq!(
                    e.to_string(),
                    "looking up the IPVS netlink family: IPVS is not available in this \
                     kernel (is ip_vs loaded?)"
                );
            }
        }
    }

    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    fn assert_send<T: Send>(_: &T) {}

    /// The reconciler and the API share one client across tasks: the client and the
    /// futures of its methods must be `Send`.
    #[allow(dead_code)]
    fn client_and_its_futures_are_send(client: &Client, ops: &[Op]) {
        assert_send_sync(client);
        assert_send(&client.apply(ops));
        assert_send(&client.state());
        assert_send(&Client::connect());
    }

    #[test]
    fn family_id_is_read_only_from_a_reply_naming_ipvs() {
        let attrs = |name: &[u8]| {
            let mut v = vec![6u8, 0, 1, 0, 0x1c, 0, 0, 0];
            let len = 4 + name.len();
            v.extend([len as u8, 0, 2, 0]);
            v.extend(name);
            while v.len() % 4 != 0 {
                v.push(0);
            }
            v.extend([8u8, 0, 99, 0, 1, 2, 3, 4]); // an attribute nobody knows
            v
        };
        assert_eq!(family_id_of(&attrs(b"IPVS\0")), Some(0x1c));
        assert_eq!(family_id_of(&attrs(b"IPVT\0")), None);
        assert_eq!(family_id_of(&[6, 0, 1, 0]), None);
    }
}
