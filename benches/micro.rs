//! Micro benchmarks of bigbro's hot paths (criterion): reading a litmus answer, encoding
//! and decoding the netlink messages of one service with 10 destinations, and the
//! reconciler's diff over 1,000 services × 10 destinations (10,000 destinations).
//!
//! `cargo bench --bench micro`; `cargo bench --bench micro -- diff` for one group.
//! Nothing here touches the network or the kernel.

#[path = "common/workload.rs"]
mod workload;

use std::hint::black_box;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use netlink_packet_core::ParseableParametrized;
use netlink_packet_generic::GenlMessage;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use bigbro::health::http::{self, Limits};
use bigbro::health::parse::{body_health, header_health};
use bigbro::health::Phase;
use bigbro::ipvs::convert::{dest_attrs, dest_from_attrs, service_attrs, service_from_attrs};
use bigbro::ipvs::message::{IpvsCmd, IpvsMessage, FLAGS_DO};
use bigbro::ipvs::nla::{CmdAttr, Counter, DestAttr, StatsAttr, SvcAttr};
use bigbro::ipvs::transport::{parse_datagram, Body};
use bigbro::ipvs::{Family, Op};
use bigbro::reconcile::diff;

/// A generic netlink family id, as the kernel might assign to IPVS.
const FAMILY: u16 = 0x1c;

/// litmus_paper's answer for health 87, as it sends it.
const LITMUS_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/plain\r\n\
X-Health: 87\r\n\
X-Health-Forced: none\r\n\
Content-Length: 32\r\n\
Connection: close\r\n\
\r\n\
Health: 87\nMeasured Health: 87\n\n";

/// An in-memory connection: reads give the canned answer, writes are swallowed.
struct Canned {
    answer: &'static [u8],
    pos: usize,
}

impl AsyncRead for Canned {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let rest = &self.answer[self.pos..];
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Canned {
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

/// One litmus exchange over the canned connection: request written, head and body read,
/// health taken from `X-Health` (as the prober does for a 200).
fn litmus_exchange() -> u16 {
    let mut conn = Canned {
        answer: LITMUS_ANSWER,
        pos: 0,
    };
    let mut phase = Phase::Connect;
    let response = futures::executor::block_on(http::exchange(
        &mut conn,
        "10.0.0.1:9292",
        "/myapp/status",
        Limits::default(),
        |s| s == 200,
        &mut phase,
    ))
    .expect("a valid answer");
    let value = response.head.header("x-health").expect("X-Health");
    header_health(value).expect("a number")
}

fn litmus(c: &mut Criterion) {
    let mut g = c.benchmark_group("litmus");
    g.bench_function("x_health_header_value", |b| {
        b.iter(|| header_health(black_box(b" 87.5 ")))
    });
    let body = b"Some status text for people.\nHealth: 87\nMeasured Health: 87\n";
    g.bench_function("health_in_body", |b| {
        b.iter(|| body_health(black_box(body), true))
    });
    g.throughput(Throughput::Bytes(LITMUS_ANSWER.len() as u64));
    g.bench_function("whole_answer_in_memory", |b| b.iter(litmus_exchange));
    g.finish();
}

/// Every counter of a stats nest, 64-bit ones after a pad as the kernel aligns them.
fn stats(all_64: bool) -> Vec<StatsAttr> {
    let mut out = Vec::new();
    let kinds: [fn(Counter) -> StatsAttr; 10] = [
        StatsAttr::Conns,
        StatsAttr::InPkts,
        StatsAttr::OutPkts,
        StatsAttr::InBytes,
        StatsAttr::OutBytes,
        StatsAttr::Cps,
        StatsAttr::InPps,
        StatsAttr::OutPps,
        StatsAttr::InBps,
        StatsAttr::OutBps,
    ];
    for (i, kind) in kinds.into_iter().enumerate() {
        let wide = all_64 || i == 3 || i == 4;
        if wide {
            out.push(StatsAttr::Pad(vec![]));
            out.push(kind(Counter::U64(1 << 40 | i as u64)));
        } else {
            out.push(kind(Counter::U32(1000 + i as u32)));
        }
    }
    out
}

/// The reply datagram of a dump of one service and of its destinations, shaped like the
/// kernel's (NEW_SERVICE / NEW_DEST with connection counters and both stats nests).
fn kernel_replies(svc: &bigbro::ipvs::Service, dests: &[bigbro::ipvs::Dest]) -> Vec<u8> {
    let mut svc_attrs = service_attrs(svc);
    svc_attrs.push(SvcAttr::Stats(stats(false)));
    svc_attrs.push(SvcAttr::Stats64(stats(true)));
    let mut datagram = IpvsMessage::new(IpvsCmd::NewService, vec![CmdAttr::Service(svc_attrs)])
        .encode(FAMILY, 2, 1, 0);
    for d in dests {
        let mut attrs = dest_attrs(d);
        attrs.extend([
            DestAttr::ActiveConns(12),
            DestAttr::InactConns(3),
            DestAttr::PersistConns(0),
            DestAttr::Stats(stats(false)),
            DestAttr::Stats64(stats(true)),
        ]);
        let msg = IpvsMessage::new(IpvsCmd::NewDest, vec![CmdAttr::Dest(attrs)]);
        datagram.extend(msg.encode(FAMILY, 2, 2, 0));
    }
    datagram
}

/// Decodes a reply datagram into the model, as the client does.
fn decode(datagram: &[u8]) -> usize {
    let mut decoded = 0;
    for frame in parse_datagram(datagram).expect("a valid datagram") {
        let Body::Data { msg_type, payload } = frame.body else {
            continue;
        };
        let msg = GenlMessage::<IpvsMessage>::parse_with_param(payload.as_slice(), msg_type)
            .expect("a valid IPVS message")
            .payload;
        for attr in &msg.attrs {
            match attr {
                CmdAttr::Service(a) => {
                    black_box(service_from_attrs(a).expect("a service"));
                    decoded += 1;
                }
                CmdAttr::Dest(a) => {
                    black_box(dest_from_attrs(a, Family::V4).expect("a dest"));
                    decoded += 1;
                }
                _ => {}
            }
        }
    }
    decoded
}

fn netlink(c: &mut Criterion) {
    let state = workload::state(1, 10, 100);
    let ops = workload::add_ops(&state);
    let mut g = c.benchmark_group("netlink_service_10_dests");
    g.throughput(Throughput::Elements(ops.len() as u64));
    g.bench_function("encode_11_requests", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for (seq, op) in black_box(&ops).iter().enumerate() {
                bytes += Op::message(op)
                    .encode(FAMILY, FLAGS_DO, seq as u32, 0)
                    .len();
            }
            bytes
        })
    });
    let datagram = kernel_replies(&state[0].0, &state[0].1);
    assert_eq!(decode(&datagram), 11);
    g.bench_function("decode_11_replies", |b| {
        b.iter(|| decode(black_box(&datagram)))
    });
    g.finish();
}

fn reconcile_diff(c: &mut Criterion) {
    let state = workload::state(workload::SERVICES, workload::DESTS, 100);
    let owned = workload::owned(&state);
    let desired = workload::desired(&state);
    let same = workload::observed(&state);
    let reweighted = workload::observed(&workload::reweighted(&state, 50));
    assert!(diff(&owned, &desired, &same).is_empty());
    assert_eq!(diff(&owned, &desired, &reweighted).len(), 10_000);

    let mut g = c.benchmark_group("diff_1000_services_10000_dests");
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("no_change", |b| {
        b.iter(|| diff(black_box(&owned), black_box(&desired), black_box(&same)))
    });
    g.bench_function("every_weight_changed", |b| {
        b.iter(|| {
            diff(
                black_box(&owned),
                black_box(&desired),
                black_box(&reweighted),
            )
        })
    });
    g.bench_function("from_empty", |b| {
        b.iter(|| diff(black_box(&owned), black_box(&desired), &[]))
    });
    g.finish();
}

criterion_group!(benches, litmus, netlink, reconcile_diff);
criterion_main!(benches);
