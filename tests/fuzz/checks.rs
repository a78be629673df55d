//! The bodies of bigbro's fuzz targets: each takes arbitrary bytes, feeds them to one of
//! bigbro's parsers of untrusted input, and asserts what must hold whatever the bytes (no
//! panic, bounded reads, errors that say something, decode ∘ encode = identity where both
//! exist). The libFuzzer targets in `fuzz_targets/` call these, and so does
//! `tests/reliability/fuzz.rs` on the seed corpora and on every input a fuzz run ever
//! found, so a crash once found stays a plain `cargo test` failure.
//!
//! This file is shared by two crates (the fuzz crate and the main crate's tests) and uses
//! only bigbro's public API and its dependencies; it must never touch the kernel, the
//! network or the file system.

#![allow(dead_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::task::{Context, Poll};

use bigbro::adm::backend::{Backend, KernelError, EEXIST, ENOENT};
use bigbro::adm::names::StaticResolver;
use bigbro::adm::Runner;
use bigbro::health::http::{self, Limits};
use bigbro::health::{judge, reads_body, Phase, ProbeError, ProbeKind};
use bigbro::ipvs::message::IpvsMessage;
use bigbro::ipvs::nla::CmdAttr;
use bigbro::ipvs::transport::{parse_datagram, Body};
use bigbro::ipvs::{
    convert, save, Dest, DestEntry, Family, ForwardMethod, Info, Op, Service, ServiceEntry,
    ServiceKey, SyncDaemon, Timeouts, Tunnel,
};
use bigbro::nft::{self, Dumped, L4Proto, Live, MarkRule, PortRange};
use netlink_packet_core::{Emitable, NetlinkMessage, NetlinkPayload, ParseableParametrized};
use netlink_packet_generic::GenlMessage;
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The targets: name (as in `fuzz_targets/NAME.rs` and `seeds/NAME/`) and body.
/// A target's body.
pub type Check = fn(&[u8]);

pub const TARGETS: &[(&str, Check)] = &[
    ("config", config),
    ("litmus", litmus),
    ("ipvs_netlink", ipvs_netlink),
    ("nft_netlink", nft_netlink),
    ("ipvsadm_args", ipvsadm_args),
];

// ---- config ------------------------------------------------------------------------------

/// `config::parse_bytes` on anything: a model or a non-empty list of errors, each naming a
/// file and saying something; a model's plan renders, and its mark rules are valid.
pub fn config(data: &[u8]) {
    match bigbro::config::parse_bytes("fuzz.yml", data) {
        Ok(model) => {
            let text = bigbro::desired::plan::render(&model, "fuzz.yml");
            assert!(
                text.starts_with("# bigbro check: fuzz.yml is valid"),
                "{text}"
            );
            let plan = bigbro::desired::plan::plan(&model);
            for rule in &plan.marks {
                if let Err(e) = rule.validate() {
                    panic!("a valid configuration planned an invalid mark rule {rule:?}: {e}");
                }
            }
            for svc in plan.desired.services.values() {
                let _ = convert::service_attrs(&svc.service);
                for d in svc.dests.values() {
                    let _ = convert::dest_attrs(d);
                }
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without a reason");
            for d in &errors.list {
                assert!(
                    !d.message.trim().is_empty(),
                    "an empty error message: {d:?}"
                );
            }
            assert!(!errors.to_string().is_empty());
        }
    }
}

// ---- litmus ------------------------------------------------------------------------------

/// A stream that answers with fixed bytes, `chunk` bytes per read at most, then ends
/// (EOF, or a connection reset when `reset`). It never returns `Pending`, so a future
/// reading it can be driven by a plain `block_on`. It counts what was read.
pub struct Scripted<'a> {
    data: &'a [u8],
    pos: usize,
    chunk: usize,
    reset: bool,
}

impl<'a> Scripted<'a> {
    pub fn new(data: &'a [u8], chunk: usize, reset: bool) -> Scripted<'a> {
        Scripted {
            data,
            pos: 0,
            chunk: chunk.max(1),
            reset,
        }
    }
    /// Bytes handed to the reader so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }
}

impl AsyncRead for Scripted<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let rest = &self.data[self.pos..];
        if rest.is_empty() && self.reset {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        let n = rest.len().min(self.chunk).min(buf.remaining());
        buf.put_slice(&rest[..n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A health endpoint's answer, read by the probe's HTTP client from an in-memory stream
/// and judged as a litmus (or http) probe would judge it.
///
/// Input: byte 0 picks the kind (even: litmus, odd: http) and whether the stream ends in
/// a reset (bit 1); byte 1 the read size (1..=256, or the whole answer when 0); byte 2
/// the limits (0: the defaults, else small ones so the limits themselves are reached);
/// the rest is the answer.
pub fn litmus(data: &[u8]) {
    let [mode, chunk, limits, answer @ ..] = data else {
        return;
    };
    let kind = if mode & 1 == 0 {
        ProbeKind::Litmus
    } else {
        ProbeKind::Http
    };
    let chunk = match *chunk {
        0 => answer.len(),
        n => usize::from(n),
    };
    let limits = match *limits {
        0 => Limits::default(),
        n => Limits {
            max_head: 16 + 8 * usize::from(n),
            max_body: usize::from(n % 64),
        },
    };
    let mut stream = Scripted::new(answer, chunk, mode & 2 != 0);
    let mut phase = Phase::Connect;
    let got = futures::executor::block_on(http::exchange(
        &mut stream,
        "192.0.2.1:9292",
        "/app/status",
        limits,
        |status| reads_body(kind, status),
        &mut phase,
    ));
    // What must hold of any answer: the head is bounded, the body is bounded and read only
    // when the status asks for it, and the result is a health or a reason.
    let head_bound = limits.max_head + 4;
    match got {
        Ok(response) => {
            assert!((100..=599).contains(&response.head.status));
            let head_bytes: usize = response
                .head
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len())
                .sum();
            assert!(head_bytes <= head_bound, "{head_bytes} header bytes kept");
            match &response.body {
                Some(body) => {
                    assert!(reads_body(kind, response.head.status));
                    assert!(
                        body.bytes.len() <= limits.max_body,
                        "{} > {limits:?}",
                        body.bytes.len()
                    );
                    assert_eq!(phase, Phase::Body);
                }
                None => assert!(!reads_body(kind, response.head.status)),
            }
            let status = response.head.status;
            match judge(kind, response, limits) {
                Ok(health) => assert!(
                    reads_body(kind, status),
                    "health {health} from status {status}"
                ),
                Err(e) => assert_error_is_clear(&e),
            }
        }
        Err(e) => {
            assert_error_is_clear(&e);
            if let ProbeError::Timeout { .. } = e {
                panic!("a timeout without a clock: {e}");
            }
        }
    }
}

fn assert_error_is_clear(e: &ProbeError) {
    let text = e.to_string();
    assert!(!text.is_empty() && !e.code().is_empty(), "{e:?}");
    // Excerpts of the backend's bytes are bounded, whatever it sent.
    assert!(text.len() < 4096, "a {}-byte error message", text.len());
}

// ---- IPVS netlink ------------------------------------------------------------------------

/// IPVS generic netlink replies as the kernel would send them.
///
/// Byte 0 picks the layer: even, the rest is one datagram of netlink messages (split by
/// `transport::parse_datagram`, each data message decoded as an IPVS message); odd, the
/// rest is one genl payload (genl header and attributes) decoded directly. Every decoded
/// message must re-encode to something that decodes to the same message, and every
/// service and destination in it must survive model → attributes → model unchanged.
pub fn ipvs_netlink(data: &[u8]) {
    let [mode, rest @ ..] = data else { return };
    if mode & 1 == 1 {
        ipvs_payload(rest);
        return;
    }
    let Ok(frames) = parse_datagram(rest) else {
        return;
    };
    for frame in frames {
        if let Body::Data { payload, .. } = frame.body {
            ipvs_payload(&payload);
        }
    }
}

fn ipvs_payload(payload: &[u8]) {
    let Ok(genl) = GenlMessage::<IpvsMessage>::parse_with_param(payload, 0) else {
        return;
    };
    let header = genl.header;
    let message = genl.payload;
    // Emit and decode again: the same message. Not for messages holding attributes bigbro
    // does not know: those are kept only to be read past, and netlink-packet-core's
    // `DefaultNla` does not re-emit their flag bits as read (bigbro never sends them).
    if !format!("{message:?}").contains("Other(DefaultNla") {
        roundtrip(header.cmd, header.version, &message);
    }
    let _ = convert::info_from_attrs(&message.attrs);
    let _ = convert::timeouts_from_attrs(&message.attrs);
    let mut family = Family::V4;
    for attr in &message.attrs {
        match attr {
            CmdAttr::Service(attrs) => {
                if let Ok(entry) = convert::service_from_attrs(attrs) {
                    family = entry.service.key.family();
                    let back = convert::service_from_attrs(&convert::service_attrs(&entry.service))
                        .unwrap_or_else(|e| panic!("{:?} does not read back: {e}", entry.service));
                    assert_eq!(back.service, entry.service);
                    let line = save::service_line(&entry.service);
                    assert!(line.starts_with("-A "), "{line}");
                }
            }
            CmdAttr::Dest(attrs) => {
                if let Ok(entry) = convert::dest_from_attrs(attrs, family) {
                    let back = convert::dest_from_attrs(&convert::dest_attrs(&entry.dest), family)
                        .unwrap_or_else(|e| panic!("{:?} does not read back: {e}", entry.dest));
                    assert_eq!(back.dest, entry.dest);
                }
            }
            CmdAttr::Daemon(attrs) => {
                if let Ok(daemon) = convert::daemon_from_attrs(attrs) {
                    let back = convert::daemon_from_attrs(&convert::daemon_attrs(&daemon))
                        .unwrap_or_else(|e| panic!("{daemon:?} does not read back: {e}"));
                    assert_eq!(back, daemon);
                }
            }
            _ => {}
        }
    }
}

fn roundtrip(cmd: u8, version: u8, message: &IpvsMessage) {
    let mut again = vec![0u8; message.buffer_len()];
    message.emit(&mut again);
    let mut framed = vec![cmd, version, 0, 0];
    framed.extend_from_slice(&again);
    let reparsed = GenlMessage::<IpvsMessage>::parse_with_param(framed.as_slice(), 0)
        .unwrap_or_else(|e| panic!("bigbro cannot read what it wrote for {message:?}: {e}"))
        .payload;
    assert_eq!(&reparsed, message, "decode(encode(m)) != m");
}

// ---- nf_tables netlink -------------------------------------------------------------------

/// The rules bigbro would want, to compare what was read back against.
fn wanted_rules() -> Vec<MarkRule> {
    vec![MarkRule {
        daddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)),
        proto: L4Proto::Tcp,
        ports: PortRange::single(80),
        iifname: None,
        mark: 7,
    }]
}

/// nf_tables dump replies (a run of netlink messages) read back as `Nft::read` reads them:
/// every message that netlink-packet-netfilter decodes goes to [`Dumped`], tables named
/// `bigbro` decide the families, and [`Live`] interprets the lot. Also, for every message,
/// the kernel's extended-ack reader and the error locator on its bytes.
pub fn nft_netlink(data: &[u8]) {
    let mut offset = 0;
    let mut tables = Vec::new();
    let mut dumped = Dumped::default();
    while offset + 16 <= data.len() {
        let len = u32::from_ne_bytes(data[offset..offset + 4].try_into().unwrap()) as usize;
        if len < 16 || offset + len > data.len() {
            break;
        }
        let bytes = &data[offset..offset + len];
        // The error paths of `Nft::apply` read these out of the kernel's answers.
        let flags = u16::from_ne_bytes([bytes[6], bytes[7]]);
        let _ = nft::extack(flags, &bytes[16..]);
        for at in [0, 16, 20, 24, len / 2, len.saturating_sub(1), len, len + 4] {
            let _ = nft::locate(bytes, at as u32);
        }
        // As `Nft`'s codec does: messages the decoder cannot take without panicking are
        // dropped (nft::decodable), the rest decoded.
        if !nft::decodable(bytes) {
            offset += (len + 3) & !3;
            continue;
        }
        if let Ok(msg) = NetlinkMessage::<NetfilterMessage>::deserialize(bytes) {
            if let NetlinkPayload::InnerMessage(NetfilterMessage {
                header,
                inner: NetfilterMessageInner::NfTables(m),
                ..
            }) = msg.payload
            {
                let family = match header.family {
                    NetfilterProtoFamily::IPv4 => Some(nft::Family::Ip),
                    NetfilterProtoFamily::IPv6 => Some(nft::Family::Ip6),
                    _ => None,
                };
                if let Some(family) = family {
                    if let netlink_packet_netfilter::nftables::NfTablesMessage::NewTable(t) = &m {
                        if t.attributes.contains(
                            &netlink_packet_netfilter::nftables::TableAttribute::Name(
                                nft::TABLE.into(),
                            ),
                        ) && !tables.contains(&family)
                        {
                            tables.push(family);
                        }
                    }
                    dumped.add(family, m);
                }
            }
        }
        offset += (len + 3) & !3;
    }
    tables.sort();
    let live = Live::from_dumps(tables, &dumped);
    for rule in &live.rules {
        // What reads back as bigbro's own rule renders as nft syntax.
        let text = rule.nft_text();
        assert!(text.contains("meta mark set"), "{text}");
    }
    for u in &live.unknown {
        assert!(!u.to_string().is_empty());
    }
    let differences = live.differences(&wanted_rules());
    assert_eq!(differences.is_empty(), live.matches(&wanted_rules()));
}

// ---- ipvsadm arguments -------------------------------------------------------------------

/// A kernel for `bigbro ipvsadm` that never changes: two services (FWM 7 with two IPIP
/// destinations, TCP 192.0.2.1:80 with one masqueraded one), every change accepted, except
/// adding what exists and deleting what does not.
struct FixedKernel {
    services: Vec<(ServiceEntry, Vec<DestEntry>)>,
}

impl FixedKernel {
    fn new() -> FixedKernel {
        let fwm = ServiceKey::fwmark_v4(bigbro::types::Fwmark::new(7).unwrap());
        let tcp = ServiceKey::Addr {
            protocol: bigbro::ipvs::Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            port: 80,
        };
        let dest = |a: [u8; 4], port: u16, forward: ForwardMethod, weight: u32| DestEntry {
            dest: Dest {
                port,
                forward,
                ..Dest::ipip(IpAddr::V4(a.into()), weight)
            },
            active_conns: 3,
            inactive_conns: 1,
            persist_conns: 0,
            stats: Default::default(),
        };
        let entry = |service: Service| ServiceEntry {
            service,
            stats: Default::default(),
        };
        FixedKernel {
            services: vec![
                (
                    entry(Service::new(fwm, "wlc")),
                    vec![
                        dest([10, 0, 0, 1], 0, ForwardMethod::Tunnel(Tunnel::Ipip), 100),
                        dest([10, 0, 0, 2], 0, ForwardMethod::Tunnel(Tunnel::Ipip), 0),
                    ],
                ),
                (
                    entry(Service::new(tcp, "rr")),
                    vec![dest([10, 0, 0, 3], 8080, ForwardMethod::Masquerade, 5)],
                ),
            ],
        }
    }

    fn find(&self, key: &ServiceKey) -> Option<&(ServiceEntry, Vec<DestEntry>)> {
        self.services.iter().find(|(s, _)| s.service.key == *key)
    }

    fn has(&self, key: &ServiceKey) -> bool {
        self.find(key).is_some()
    }
}

/// IPVS 1.2.1 with a 4096-entry connection table, as Debian's kernel reports.
const KERNEL_INFO: Info = Info {
    version: 0x010201,
    conn_tab_size: 1 << 12,
};

impl Backend for FixedKernel {
    fn info(&mut self) -> Result<Info, KernelError> {
        Ok(KERNEL_INFO)
    }
    fn services(&mut self) -> Result<Vec<ServiceEntry>, KernelError> {
        Ok(self.services.iter().map(|(s, _)| s.clone()).collect())
    }
    fn service(&mut self, key: &ServiceKey) -> Result<ServiceEntry, KernelError> {
        // ESRCH, as the kernel answers for a missing service.
        self.find(key)
            .map(|(s, _)| s.clone())
            .ok_or(KernelError::from(3))
    }
    fn dests(&mut self, key: &ServiceKey) -> Result<Vec<DestEntry>, KernelError> {
        Ok(self.find(key).map(|(_, d)| d.clone()).unwrap_or_default())
    }
    fn timeouts(&mut self) -> Result<Timeouts, KernelError> {
        Ok(Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        })
    }
    fn daemons(&mut self) -> Result<Vec<SyncDaemon>, KernelError> {
        Ok(Vec::new())
    }
    fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), KernelError>> {
        ops.iter()
            .map(|op| match op {
                Op::AddService(s) if self.has(&s.key) => Err(EEXIST.into()),
                Op::DelService(k) if !self.has(k) => Err(3.into()),
                Op::AddDest { .. } | Op::EditDest { .. } | Op::DelDest { .. } => {
                    match op.service() {
                        Some(k) if !self.has(k) => Err(ENOENT.into()),
                        _ => Ok(()),
                    }
                }
                _ => Ok(()),
            })
            .collect()
    }
}

/// `bigbro ipvsadm` on anything: byte 0 picks the mode; the rest is either the command
/// line (words separated by NUL bytes) or, for odd modes, the input of `ipvsadm -R`. The
/// run goes against [`FixedKernel`] with a resolver that knows no names, so nothing
/// outside the process is consulted. It must end with one of ipvsadm's exit statuses, and
/// a refused command line (status 2) must say why on stderr.
pub fn ipvsadm_args(data: &[u8]) {
    let [mode, rest @ ..] = data else { return };
    let (args, stdin): (Vec<Vec<u8>>, &[u8]) = if mode & 1 == 1 {
        (vec![b"-R".to_vec()], rest)
    } else {
        let words = rest.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
        (words, &[][..])
    };
    let names = StaticResolver::empty();
    let mut err: Vec<u8> = Vec::new();
    let status = {
        let mut kernel = Some(FixedKernel::new());
        let connect = Box::new(move || {
            kernel
                .take()
                .map(|k| Box::new(k) as Box<dyn Backend>)
                .ok_or(KernelError::from(ENOENT))
        });
        let mut runner = Runner::new("ipvsadm", &names, connect, &mut err);
        runner.conn_file = std::path::PathBuf::from("/dev/null");
        let mut input = stdin;
        let status = runner.run(&args, &mut input);
        // Listings are text a person reads: ipvsadm prints no NUL but what it was given.
        let _ = String::from_utf8_lossy(&runner.out);
        status
    };
    assert!(
        [0, 1, 2, 255].contains(&status),
        "exit status {status} for {args:?}"
    );
    if status == 2 {
        assert!(
            !err.is_empty(),
            "status 2 without a word on stderr for {args:?}"
        );
    }
}
