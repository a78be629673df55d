//! The netlink socket under the IPVS client: sends a batch of serialized requests in one
//! `sendmsg`, gives each its own sequence number, and collects every reply until each
//! request has its terminal answer (ACK/error or end of dump).
//!
//! Why not `netlink-proto`: its connection task assigns sequence numbers internally,
//! logs and drops replies it cannot decode (a dump would come back silently short), and
//! turns a lost acknowledgement (receive-buffer overrun) into a request that never
//! completes. Here every reply is matched by sequence number, undecodable datagrams are
//! errors, and lost answers are reported per request. This file knows nothing about IPVS
//! attributes; it must never report success for a request it has no answer for.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkBuffer, NlasIterator, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN,
    NLM_F_ACK_TLVS, NLM_F_CAPPED,
};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};
use nix::libc;
use tokio::io::unix::AsyncFd;

/// How long to wait for the next datagram of an answer before giving up on it.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Receive buffer asked for: room for the acknowledgements of a whole chunk.
const WANTED_RCVBUF: usize = 4 << 20;
/// Kernel memory charged per queued acknowledgement (an skb's truesize), rounded up.
const ACK_COST: usize = 2048;
/// Largest datagram we send (the kernel refuses more than its send buffer).
const MAX_SEND_BYTES: usize = 64 << 10;
/// Largest datagram the kernel sends (dumps use at most 32 KiB skbs).
const RECV_BYTES: usize = 64 << 10;
/// `NLMSGERR_ATTR_MSG`: the extended-ack error text.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// One message of a received datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub seq: u32,
    pub port: u32,
    pub body: Body,
}

/// What a received message is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A protocol message (reply data), with its netlink type and payload.
    Data {
        msg_type: u16,
        payload: Vec<u8>,
    },
    /// `NLMSG_ERROR` with code 0.
    Ack,
    /// `NLMSG_ERROR` with a (positive) errno and the extended-ack text, if any.
    Error {
        errno: i32,
        text: Option<String>,
    },
    /// `NLMSG_DONE`, with the dump's (positive) errno, 0 on success.
    Done {
        errno: i32,
    },
    Overrun,
    Noop,
}

/// The terminal answer to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged, or a dump that ended cleanly.
    Done,
    /// The kernel refused it with `errno` (positive).
    Failed { errno: i32, text: Option<String> },
    /// No answer arrived; the request may or may not have taken effect.
    Lost(String),
}

/// Every message received for one request, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// `(netlink type, payload)` of each data message, in arrival order.
    pub data: Vec<(u16, Vec<u8>)>,
    pub outcome: Outcome,
}

/// Splits a datagram into messages. Never panics; a truncated or inconsistent datagram
/// is an error describing where it broke.
pub fn parse_datagram(buf: &[u8]) -> Result<Vec<Frame>, String> {
    let mut frames = Vec::new();
    let mut offset = 0;
    while offset < buf.len() {
        let nl = NetlinkBuffer::new_checked(&buf[offset..])
            .map_err(|e| format!("netlink message at byte {offset}: {e}"))?;
        let len = nl.length() as usize;
        let payload = &buf[offset + 16..offset + len];
        let body = match nl.message_type() {
            NLMSG_NOOP => Body::Noop,
            NLMSG_OVERRUN => Body::Overrun,
            NLMSG_ERROR => {
                let code = read_i32(payload)
                    .ok_or_else(|| format!("NLMSG_ERROR at byte {offset} is {len} bytes long"))?;
                if code == 0 {
                    Body::Ack
                } else {
                    Body::Error {
                        errno: code.saturating_neg(),
                        text: ext_ack_text(nl.flags(), payload),
                    }
                }
            }
            NLMSG_DONE => Body::Done {
                errno: read_i32(payload).unwrap_or(0).saturating_neg(),
            },
            msg_type => Body::Data {
                msg_type,
                payload: payload.to_vec(),
            },
        };
        frames.push(Frame {
            seq: nl.sequence_number(),
            port: nl.port_number(),
            body,
        });
        offset += (len + 3) & !3;
    }
    Ok(frames)
}

fn read_i32(b: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

/// The `NLMSGERR_ATTR_MSG` string of an error with extended-ack TLVs.
fn ext_ack_text(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // After the errno comes the offending message: its header only if capped.
    let echoed = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        let len = u32::from_ne_bytes(payload.get(4..8)?.try_into().ok()?) as usize;
        (len + 3) & !3
    };
    let tlvs = payload.get(4 + echoed..)?;
    for nla in NlasIterator::new(tlvs) {
        let nla = nla.ok()?;
        if nla.kind() == NLMSGERR_ATTR_MSG {
            let v = nla.value();
            let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
            return Some(String::from_utf8_lossy(&v[..end]).into_owned());
        }
    }
    None
}

/// A generic netlink socket bound to a kernel-assigned port.
pub struct Transport {
    fd: AsyncFd<Socket>,
    port: u32,
    seq: u32,
    rcvbuf: usize,
    buf: Vec<u8>,
}

impl Transport {
    /// Opens and binds the socket; needs a tokio runtime with I/O enabled.
    pub fn open() -> io::Result<Transport> {
        let mut socket = Socket::new(NETLINK_GENERIC)?;
        let addr = socket.bind_auto()?;
        socket.set_non_blocking(true)?;
        // Errors echo only the offending header; the kernel may add a text.
        socket.set_cap_ack(true)?;
        socket.set_ext_ack(true)?;
        // Best effort: capped at net.core.rmem_max for SO_RCVBUF.
        let _ = socket.set_rx_buf_sz(WANTED_RCVBUF as libc::c_int);
        let rcvbuf = socket.get_rx_buf_sz()?;
        // SAFETY: `Socket` owns its descriptor and closes it only when dropped, which
        // happens after the `AsyncFd` that owns it is dropped.
        let fd = unsafe { AsyncFd::register(socket) }?;
        Ok(Transport {
            fd,
            port: addr.port_number(),
            seq: 0,
            rcvbuf,
            buf: Vec::with_capacity(RECV_BYTES),
        })
    }

    /// How many requests one `sendmsg` may carry so that all their acknowledgements fit
    /// in the receive buffer (an overflowing ACK is dropped by the kernel).
    pub fn max_batch(&self) -> usize {
        (self.rcvbuf / ACK_COST).clamp(8, 4096)
    }

    /// Largest number of bytes for one `sendmsg`.
    pub fn max_batch_bytes(&self) -> usize {
        MAX_SEND_BYTES
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            self.seq = 1;
        }
        self.seq
    }

    /// Sends `requests` (complete netlink messages; sequence number and port are filled
    /// in here) in one datagram and returns one `Reply` per request, in order.
    pub async fn exchange(&mut self, mut requests: Vec<Vec<u8>>) -> io::Result<Vec<Reply>> {
        let mut pending: HashMap<u32, usize> = HashMap::new();
        let mut datagram = Vec::with_capacity(requests.iter().map(Vec::len).sum());
        for (index, req) in requests.iter_mut().enumerate() {
            let seq = self.next_seq();
            let mut nl = NetlinkBuffer::new(&mut req[..]);
            nl.set_sequence_number(seq);
            nl.set_port_number(self.port);
            pending.insert(seq, index);
            datagram.extend_from_slice(req);
        }
        let mut replies: Vec<Reply> = (0..requests.len())
            .map(|_| Reply {
                data: Vec::new(),
                outcome: Outcome::Lost(String::new()),
            })
            .collect();
        self.send(&datagram).await?;

        while !pending.is_empty() {
            let frames = match tokio::time::timeout(REPLY_TIMEOUT, self.recv()).await {
                Ok(Ok(frames)) => frames,
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Some answers were dropped. The kernel handled the whole datagram
                    // before `send` returned, so what survived is queued now: take it,
                    // and only the rest is lost.
                    while let Some(frames) = self.recv_queued()? {
                        absorb(frames, &mut pending, &mut replies);
                    }
                    lose(&mut replies, &pending, "netlink receive buffer overrun");
                    break;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    let why = format!("no answer within {} s", REPLY_TIMEOUT.as_secs());
                    lose(&mut replies, &pending, &why);
                    break;
                }
            };
            absorb(frames, &mut pending, &mut replies);
        }
        Ok(replies)
    }

    async fn send(&self, datagram: &[u8]) -> io::Result<()> {
        let kernel = SocketAddr::new(0, 0);
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| fd.get_ref().send_to(datagram, &kernel, 0)) {
                Ok(Ok(n)) if n == datagram.len() => return Ok(()),
                Ok(Ok(n)) => {
                    return Err(io::Error::other(format!(
                        "sent {n} of {} bytes to the kernel",
                        datagram.len()
                    )))
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Reads one datagram from the kernel and splits it into messages.
    async fn recv(&mut self) -> io::Result<Vec<Frame>> {
        let Transport { fd, buf, .. } = self;
        loop {
            let mut guard = fd.readable().await?;
            match guard.try_io(|fd| recv_one(fd.get_ref(), buf, 0)) {
                Ok(Ok(Some(frames))) => return Ok(frames),
                Ok(Ok(None)) => continue, // not from the kernel
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Reads one already-queued datagram without waiting; `None` when none is left.
    fn recv_queued(&mut self) -> io::Result<Option<Vec<Frame>>> {
        loop {
            match recv_one(self.fd.get_ref(), &mut self.buf, libc::MSG_DONTWAIT) {
                Ok(Some(frames)) => return Ok(Some(frames)),
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Files each frame under the pending request with its sequence number; a terminal
/// frame completes the request. Replies to requests given up on earlier are stale and
/// skipped.
fn absorb(frames: Vec<Frame>, pending: &mut HashMap<u32, usize>, replies: &mut [Reply]) {
    for frame in frames {
        let Some(&index) = pending.get(&frame.seq) else {
            continue;
        };
        let reply = &mut replies[index];
        let outcome = match frame.body {
            Body::Data { msg_type, payload } => {
                reply.data.push((msg_type, payload));
                continue;
            }
            Body::Noop => continue,
            Body::Ack | Body::Done { errno: 0 } => Outcome::Done,
            Body::Error { errno, text } => Outcome::Failed { errno, text },
            Body::Done { errno } => Outcome::Failed { errno, text: None },
            Body::Overrun => Outcome::Lost("netlink overrun".into()),
        };
        reply.outcome = outcome;
        pending.remove(&frame.seq);
    }
}

/// One `recvfrom`: `Ok(None)` if the datagram did not come from the kernel.
fn recv_one(
    socket: &Socket,
    buf: &mut Vec<u8>,
    flags: libc::c_int,
) -> io::Result<Option<Vec<Frame>>> {
    buf.clear();
    let (n, from) = socket.recv_from(buf, flags | libc::MSG_TRUNC)?;
    if from.port_number() != 0 {
        return Ok(None);
    }
    if n > buf.len() {
        return Err(io::Error::other(format!(
            "kernel datagram of {n} bytes truncated to {}",
            buf.len()
        )));
    }
    parse_datagram(buf).map(Some).map_err(io::Error::other)
}

fn lose(replies: &mut [Reply], pending: &HashMap<u32, usize>, why: &str) {
    for &index in pending.values() {
        replies[index].outcome = Outcome::Lost(why.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(msg_type: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = 16 + payload.len();
        let mut v = Vec::new();
        v.extend_from_slice(&(len as u32).to_ne_bytes());
        v.extend_from_slice(&msg_type.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&7u32.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn splits_acks_errors_data_and_done() {
        let mut dgram = msg(0x1c, 2, 5, &[1, 1, 0, 0]);
        let mut err = (-3i32).to_ne_bytes().to_vec();
        err.extend_from_slice(&[0; 16]);
        dgram.extend(msg(NLMSG_ERROR, NLM_F_CAPPED, 6, &err));
        dgram.extend(msg(NLMSG_ERROR, NLM_F_CAPPED, 7, &[0; 20]));
        dgram.extend(msg(NLMSG_DONE, 2, 8, &0i32.to_ne_bytes()));
        let frames = parse_datagram(&dgram).unwrap();
        let bodies: Vec<_> = frames.iter().map(|f| (f.seq, f.body.clone())).collect();
        assert_eq!(
            bodies,
            vec![
                (
                    5,
                    Body::Data {
                        msg_type: 0x1c,
                        payload: vec![1, 1, 0, 0]
                    }
                ),
                (
                    6,
                    Body::Error {
                        errno: 3,
                        text: None
                    }
                ),
                (7, Body::Ack),
                (8, Body::Done { errno: 0 }),
            ]
        );
    }

    #[test]
    fn reads_the_extended_ack_text() {
        let mut err = (-22i32).to_ne_bytes().to_vec();
        err.extend_from_slice(&[0; 16]); // capped echo of the request header
        err.extend_from_slice(&[9, 0, 1, 0, b'b', b'a', b'd', b'!', 0, 0, 0, 0]);
        let dgram = msg(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 1, &err);
        let frames = parse_datagram(&dgram).unwrap();
        assert_eq!(
            frames[0].body,
            Body::Error {
                errno: 22,
                text: Some("bad!".into())
            }
        );
    }

    #[test]
    fn truncated_and_garbage_datagrams_are_errors_not_panics() {
        let good = msg(NLMSG_ERROR, 0, 1, &[0; 20]);
        for cut in 1..good.len() {
            assert!(parse_datagram(&good[..cut]).is_err(), "cut at {cut}");
        }
        // A length field smaller than a header, and one pointing past the end.
        let mut bad = good.clone();
        bad[0] = 3;
        assert!(parse_datagram(&bad).is_err());
        bad[0] = 200;
        assert!(parse_datagram(&bad).is_err());
        // An NLMSG_ERROR too short to hold its errno.
        assert!(parse_datagram(&msg(NLMSG_ERROR, 0, 1, &[0, 0])).is_err());
        // Pseudo-random garbage never panics.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let len = (x % 97) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = parse_datagram(&bytes);
        }
    }

    /// A GETFAMILY request to nlctrl (which every kernel has, IPVS or not).
    fn get_family(name: &str) -> Vec<u8> {
        use netlink_packet_generic::ctrl::{nlas::GenlCtrlAttrs, GenlCtrl, GenlCtrlCmd};
        use netlink_packet_generic::GenlMessage;
        let mut genl = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(name.to_string())],
        });
        genl.finalize();
        crate::ipvs::message::encode_genl(genl, crate::ipvs::message::FLAGS_DO, 0, 0)
    }

    // Real kernel, no privileges needed: nlctrl answers anyone.
    #[tokio::test]
    async fn a_batch_gets_one_answer_per_request_in_order() {
        let mut t = Transport::open().unwrap();
        let replies = t
            .exchange(vec![
                get_family("nlctrl"),
                get_family("NO_SUCH_FAM"),
                get_family("nlctrl"),
            ])
            .await
            .unwrap();
        assert_eq!(replies.len(), 3);
        assert_eq!(replies[0].outcome, Outcome::Done);
        assert_eq!(replies[0].data.len(), 1, "nlctrl describes itself once");
        assert_eq!(replies[0].data[0].0, 0x10);
        assert!(matches!(
            replies[1].outcome,
            Outcome::Failed { errno, .. } if errno == libc::ENOENT
        ));
        assert!(replies[1].data.is_empty());
        assert_eq!(replies[2].outcome, Outcome::Done);
        // Sequence numbers keep increasing across exchanges; stale replies are skipped.
        let again = t.exchange(vec![get_family("nlctrl")]).await.unwrap();
        assert_eq!(again[0].outcome, Outcome::Done);
    }

    #[tokio::test]
    async fn an_overrun_loses_exactly_the_answers_that_did_not_fit() {
        let mut t = Transport::open().unwrap();
        // A small buffer (the kernel doubles it) so that 400 error acks cannot all fit.
        t.fd.get_ref()
            .set_rx_buf_sz(106_496 as libc::c_int)
            .unwrap();
        let requests: Vec<_> = (0..400).map(|_| get_family("NO_SUCH_FAM")).collect();
        let replies = t.exchange(requests).await.unwrap();
        let answered = replies
            .iter()
            .take_while(
                |r| matches!(r.outcome, Outcome::Failed { errno, .. } if errno == libc::ENOENT),
            )
            .count();
        assert!((100..400).contains(&answered), "answered {answered}");
        for r in &replies[answered..] {
            assert_eq!(
                r.outcome,
                Outcome::Lost("netlink receive buffer overrun".into())
            );
        }
        // The socket is usable afterwards and not confused by anything left over.
        let again = t.exchange(vec![get_family("nlctrl")]).await.unwrap();
        assert_eq!(again[0].outcome, Outcome::Done);
    }

    #[tokio::test]
    async fn a_full_batch_of_error_acks_fits_the_receive_buffer() {
        let mut t = Transport::open().unwrap();
        let n = t.max_batch();
        let requests: Vec<_> = (0..n).map(|_| get_family("NO_SUCH_FAM")).collect();
        let replies = t.exchange(requests).await.unwrap();
        assert_eq!(replies.len(), n);
        for r in &replies {
            assert!(
                matches!(r.outcome, Outcome::Failed { errno, .. } if errno == libc::ENOENT),
                "{:?}",
                r.outcome
            );
        }
    }
}
