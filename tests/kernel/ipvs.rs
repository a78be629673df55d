//! Kernel tests of `bigbro::ipvs` on the test bed's real Linux 6.1 (IPVS as modules):
//! every kind of service and destination is created, read back, edited and deleted
//! through `ipvs::Client`; the real `ipvsadm -S -n` is the oracle for what bigbro wrote,
//! and bigbro reads back exactly what the real ipvsadm wrote; every kernel error comes
//! back as its typed error naming the operation; batches of 11,000 operations and dumps of
//! 1,000 services × 10 destinations are complete.
//!
//! Each test runs in its own fresh network namespace inside the guest (IPVS state is per
//! namespace), so tests cannot see each other's services.

use crate::testbed;

use std::net::IpAddr;

use bigbro::ipvs::save::{save_text, sort_like_ipvsadm};
use bigbro::ipvs::{
    Client, DaemonState, Dest, Error, Family, ForwardMethod, Info, Op, Operation, Protocol,
    Service, ServiceFlags, ServiceKey, SyncDaemon, Timeouts, Tunnel, TunnelFlags,
};
use bigbro::types::Fwmark;
use testbed::kernel_test;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn fwm(mark: u32) -> ServiceKey {
    ServiceKey::fwmark_v4(Fwmark::new(mark).unwrap())
}

fn fwm6(mark: u32) -> ServiceKey {
    ServiceKey::Fwmark {
        family: Family::V6,
        mark: Fwmark::new(mark).unwrap(),
    }
}

fn key(protocol: Protocol, addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol,
        addr: ip(addr),
        port,
    }
}

fn persistent(mut svc: Service, timeout: u32, netmask: u32) -> Service {
    svc.flags = svc.flags.with(ServiceFlags::PERSISTENT);
    svc.timeout = timeout;
    svc.netmask = netmask;
    svc
}

fn with_flags(mut svc: Service, bits: u32) -> Service {
    svc.flags = svc.flags.with(bits);
    svc
}

fn dest(addr: &str, port: u16, forward: ForwardMethod, weight: u32) -> Dest {
    Dest {
        addr: ip(addr),
        port,
        forward,
        weight,
        upper_threshold: 0,
        lower_threshold: 0,
    }
}

fn gue(port: u16, flags: TunnelFlags) -> ForwardMethod {
    ForwardMethod::Tunnel(Tunnel::Gue { port, flags })
}

fn gre(flags: TunnelFlags) -> ForwardMethod {
    ForwardMethod::Tunnel(Tunnel::Gre { flags })
}

const IPIP: ForwardMethod = ForwardMethod::Tunnel(Tunnel::Ipip);

/// Applies `ops` as one batch; panics listing every failure.
async fn apply_ok(client: &Client, ops: &[Op]) {
    let failures: Vec<String> = client
        .apply(ops)
        .await
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    assert!(failures.is_empty(), "failed ops:\n{}", failures.join("\n"));
}

/// The kernel's state as the model, in ipvsadm's order.
async fn kernel_state(client: &Client) -> Vec<(Service, Vec<Dest>)> {
    let mut state: Vec<(Service, Vec<Dest>)> = client
        .state()
        .await
        .unwrap()
        .into_iter()
        .map(|(s, d)| (s.service, d.into_iter().map(|d| d.dest).collect()))
        .collect();
    sort_like_ipvsadm(&mut state);
    state
}

fn sorted(mut state: Vec<(Service, Vec<Dest>)>) -> Vec<(Service, Vec<Dest>)> {
    sort_like_ipvsadm(&mut state);
    state
}

fn ipvsadm_save() -> String {
    testbed::sh("ipvsadm -S -n")
}

/// Services of every kind: fwmark v4/v6, TCP/UDP/SCTP over v4/v6, persistent with an
/// IPv4 netmask and an IPv6 prefix, one-packet, sh/mh scheduler flags, the sip
/// persistence engine, scheduler "none".
fn every_kind_of_service() -> Vec<Service> {
    vec![
        Service::new(fwm(7), "wlc"),
        Service::new(fwm6(7), "wrr"),
        with_flags(
            Service::new(fwm(9), "mh"),
            ServiceFlags::SCHED1 | ServiceFlags::SCHED2,
        ),
        Service::new(fwm(10), "none"),
        with_flags(
            Service::new(fwm(11), "sh"),
            ServiceFlags::SCHED2 | ServiceFlags::SCHED3,
        ),
        with_flags(Service::new(fwm(12), "rr"), ServiceFlags::SCHED3),
        with_flags(
            Service::new(fwm(13), "mh"),
            ServiceFlags::SCHED1 | ServiceFlags::SCHED3,
        ),
        Service::new(key(Protocol::Tcp, "10.0.0.100", 80), "rr"),
        with_flags(
            Service::new(key(Protocol::Udp, "10.0.0.100", 53), "wlc"),
            ServiceFlags::ONEPACKET,
        ),
        Service::new(key(Protocol::Sctp, "10.0.0.100", 9), "lc"),
        Service::new(key(Protocol::Tcp, "2001:db8::100", 443), "wlc"),
        with_flags(
            Service::new(key(Protocol::Udp, "2001:db8::100", 53), "sh"),
            ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT,
        ),
        Service::new(key(Protocol::Sctp, "2001:db8::100", 9), "rr"),
        persistent(
            Service::new(key(Protocol::Tcp, "10.0.0.101", 80), "wrr"),
            300,
            0xffff_ff00,
        ),
        persistent(
            Service::new(key(Protocol::Tcp, "2001:db8::101", 80), "wlc"),
            120,
            64,
        ),
        {
            let mut sip = persistent(
                Service::new(key(Protocol::Udp, "10.0.0.102", 5060), "rr"),
                60,
                0xffff_ffff,
            );
            sip.pe_name = Some("sip".into());
            sip
        },
    ]
}

kernel_test! {
    /// Create, read back (bigbro and ipvsadm), edit, delete: every kind of service.
    fn every_kind_of_service_round_trips() {
        testbed::block_on(async {
            let client = Client::connect().await.unwrap();
            let services = every_kind_of_service();
            let adds: Vec<Op> = services.iter().cloned().map(Op::AddService).collect();
            apply_ok(&client, &adds).await;

            let expected = sorted(services.iter().map(|s| (s.clone(), vec![])).collect());
            assert_eq!(kernel_state(&client).await, expected);
            assert_eq!(ipvsadm_save(), save_text(&expected));
            let one = client.service(&services[4].key).await.unwrap();
            assert_eq!(one.service, services[4]);

            // Edit: scheduler, persistence on and off, netmask, flags, PE removed.
            let edited: Vec<Service> = services
                .iter()
                .map(|s| {
                    let mut e = s.clone();
                    e.scheduler = if s.scheduler == "wrr" { "lc" } else { "wrr" }.into();
                    if s.flags.contains(ServiceFlags::PERSISTENT) {
                        e.flags = ServiceFlags::default();
                        e.timeout = 0;
                        e.pe_name = None;
                        e.netmask = match s.key.family() {
                            Family::V4 => 0xffff_ffff,
                            Family::V6 => 128,
                        };
                    } else {
                        e = persistent(e, 900, match s.key.family() {
                            Family::V4 => 0xffff_0000,
                            Family::V6 => 96,
                        });
                    }
                    e
                })
                .collect();
            let edits: Vec<Op> = edited.iter().cloned().map(Op::EditService).collect();
            apply_ok(&client, &edits).await;
            let expected = sorted(edited.iter().map(|s| (s.clone(), vec![])).collect());
            assert_eq!(kernel_state(&client).await, expected);
            assert_eq!(ipvsadm_save(), save_text(&expected));

            let dels: Vec<Op> = services.iter().map(|s| Op::DelService(s.key)).collect();
            apply_ok(&client, &dels).await;
            assert!(client.services().await.unwrap().is_empty());
            assert_eq!(ipvsadm_save(), "");
        });
    }

    /// Create, read back, edit, delete: every forwarding method, tunnel type, checksum
    /// flag, thresholds, and an IPv6 destination behind an IPv4 fwmark service.
    fn every_kind_of_dest_round_trips() {
        testbed::block_on(async {
            let client = Client::connect().await.unwrap();
            let fw = Service::new(fwm(7), "wlc");
            let tcp = Service::new(key(Protocol::Tcp, "10.0.0.100", 80), "wlc");
            let mut thresholds = dest("10.0.0.7", 0, ForwardMethod::DirectRoute, 5);
            thresholds.upper_threshold = 1000;
            thresholds.lower_threshold = 100;
            let fw_dests = vec![
                dest("10.0.0.1", 0, IPIP, 100),
                dest("10.0.0.2", 0, gue(6080, TunnelFlags::CSUM), 1),
                dest("10.0.0.3", 0, gue(6081, TunnelFlags::REMCSUM), 2),
                dest("10.0.0.4", 0, gue(6082, TunnelFlags::NOCSUM), 3),
                dest("10.0.0.5", 0, gre(TunnelFlags::CSUM), 4),
                dest("10.0.0.6", 0, gre(TunnelFlags::NOCSUM), 0),
                thresholds,
                dest("2001:db8::8", 0, IPIP, 65535),
            ];
            let tcp_dests = vec![
                dest("10.0.0.1", 80, ForwardMethod::DirectRoute, 1),
                dest("10.0.0.2", 8080, ForwardMethod::Masquerade, 7),
                dest("10.0.0.3", 80, IPIP, 9),
            ];
            let mut ops = vec![Op::AddService(fw.clone()), Op::AddService(tcp.clone())];
            for d in &fw_dests {
                ops.push(Op::AddDest { service: fw.key, dest: d.clone() });
            }
            for d in &tcp_dests {
                ops.push(Op::AddDest { service: tcp.key, dest: d.clone() });
            }
            apply_ok(&client, &ops).await;
            let expected = sorted(vec![
                (fw.clone(), fw_dests.clone()),
                (tcp.clone(), tcp_dests.clone()),
            ]);
            assert_eq!(kernel_state(&client).await, expected);
            assert_eq!(ipvsadm_save(), save_text(&expected));

            // Counters and connection numbers come back too (all zero: no traffic).
            let entries = client.dests(&fw.key).await.unwrap();
            assert_eq!(entries.len(), fw_dests.len());
            assert!(entries.iter().all(|e| e.active_conns == 0 && e.stats.conns == 0));

            // Edit: weights, forwarding method, tunnel type and flags, thresholds.
            let rotate = |d: &Dest, i: usize| {
                let mut e = d.clone();
                e.weight = (d.weight + 11) % 65536;
                e.forward = match i % 4 {
                    0 => IPIP,
                    1 => gue(7000 + i as u16, TunnelFlags::REMCSUM),
                    2 => gre(TunnelFlags::CSUM),
                    _ => ForwardMethod::DirectRoute,
                };
                if e.addr.is_ipv6() {
                    e.forward = gre(TunnelFlags::NOCSUM); // mixed family: tunnels only
                }
                e.upper_threshold = 50 * i as u32;
                e.lower_threshold = 10 * i as u32;
                e
            };
            let fw_edited: Vec<Dest> =
                fw_dests.iter().enumerate().map(|(i, d)| rotate(d, i)).collect();
            let mut tcp_edited = tcp_dests.clone();
            tcp_edited[1].forward = ForwardMethod::DirectRoute;
            tcp_edited[1].port = 8080;
            tcp_edited[2].weight = 0;
            let mut edits = Vec::new();
            for d in &fw_edited {
                edits.push(Op::EditDest { service: fw.key, dest: d.clone() });
            }
            for d in &tcp_edited {
                edits.push(Op::EditDest { service: tcp.key, dest: d.clone() });
            }
            apply_ok(&client, &edits).await;
            let expected = sorted(vec![(fw.clone(), fw_edited.clone()), (tcp.clone(), tcp_edited)]);
            assert_eq!(kernel_state(&client).await, expected);
            assert_eq!(ipvsadm_save(), save_text(&expected));

            // Delete every destination of the fwmark service, one by one.
            let dels: Vec<Op> = fw_edited
                .iter()
                .map(|d| Op::DelDest { service: fw.key, addr: d.addr, port: d.port })
                .collect();
            apply_ok(&client, &dels).await;
            assert!(client.dests(&fw.key).await.unwrap().is_empty());
            assert_eq!(client.dests(&tcp.key).await.unwrap().len(), 3);
        });
    }

    /// The real ipvsadm writes; bigbro reads back exactly, and renders the same save text.
    fn bigbro_reads_exactly_what_ipvsadm_wrote() {
        testbed::sh(
            "set -e
             ipvsadm -A -f 7 -s wrr
             ipvsadm -a -f 7 -r 10.0.0.1 -i -w 100
             ipvsadm -a -f 7 -r 10.0.0.2 -i -w 0 --tun-type gue --tun-port 6080 --tun-csum
             ipvsadm -a -f 7 -r 10.0.0.3 -i --tun-type gre --tun-csum
             ipvsadm -a -f 7 -r 2001:db8::4 -i -w 3
             ipvsadm -A -f 8 -6 -s sh -b sh-fallback,sh-port
             ipvsadm -a -f 8 -6 -r 2001:db8::5 -i -w 2 -x 100 -y 10
             ipvsadm -A -t 10.0.0.100:80 -s wlc -p 300 -M 255.255.255.0
             ipvsadm -a -t 10.0.0.100:80 -r 10.0.0.1 -g
             ipvsadm -a -t 10.0.0.100:80 -r 10.0.0.2:8080 -m -w 5
             ipvsadm -A -u 10.0.0.100:53 -s rr -o
             ipvsadm -A -u 10.0.0.100:5060 -s rr -p 60 --pe sip
             ipvsadm -A --sctp-service 10.0.0.100:9 -s lc
             ipvsadm -A -t [2001:db8::100]:443 -s wlc -p -M 64
             ipvsadm -a -t [2001:db8::100]:443 -r [2001:db8::1]:443 -m",
        );
        let state = testbed::block_on(async {
            let client = Client::connect().await.unwrap();
            kernel_state(&client).await
        });
        let mut sip = persistent(
            Service::new(key(Protocol::Udp, "10.0.0.100", 5060), "rr"),
            60,
            0xffff_ffff,
        );
        sip.pe_name = Some("sip".into());
        let mut bounded = dest("2001:db8::5", 0, IPIP, 2);
        bounded.upper_threshold = 100;
        bounded.lower_threshold = 10;
        let expected = sorted(vec![
            (
                Service::new(fwm(7), "wrr"),
                vec![
                    dest("10.0.0.1", 0, IPIP, 100),
                    dest("10.0.0.2", 0, gue(6080, TunnelFlags::CSUM), 0),
                    dest("10.0.0.3", 0, gre(TunnelFlags::CSUM), 1),
                    dest("2001:db8::4", 0, IPIP, 3),
                ],
            ),
            (
                with_flags(
                    Service::new(fwm6(8), "sh"),
                    ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT,
                ),
                vec![bounded],
            ),
            (
                persistent(
                    Service::new(key(Protocol::Tcp, "10.0.0.100", 80), "wlc"),
                    300,
                    0xffff_ff00,
                ),
                vec![
                    dest("10.0.0.1", 80, ForwardMethod::DirectRoute, 1),
                    dest("10.0.0.2", 8080, ForwardMethod::Masquerade, 5),
                ],
            ),
            (
                with_flags(
                    Service::new(key(Protocol::Udp, "10.0.0.100", 53), "rr"),
                    ServiceFlags::ONEPACKET,
                ),
                vec![],
            ),
            (sip, vec![]),
            (Service::new(key(Protocol::Sctp, "10.0.0.100", 9), "lc"), vec![]),
            (
                persistent(
                    Service::new(key(Protocol::Tcp, "2001:db8::100", 443), "wlc"),
                    360,
                    64,
                ),
                vec![dest("2001:db8::1", 443, ForwardMethod::Masquerade, 1)],
            ),
        ]);
        assert_eq!(state, expected);
        assert_eq!(save_text(&state), ipvsadm_save());
    }

    /// ipvsadm's listing order, C integer wrap-around included, is what save.rs sorts to.
    fn ipvsadm_order_matches_sort_like_ipvsadm() {
        testbed::sh(
            "set -e
             ipvsadm -A -f 3 -s rr
             ipvsadm -A -f 3 -6 -s rr
             ipvsadm -A -t 200.0.0.1:80 -s rr
             ipvsadm -A -t 10.0.0.1:80 -s rr
             ipvsadm -A -u 10.0.0.1:80 -s rr
             ipvsadm -A -t 10.0.0.1:22 -s rr
             ipvsadm -A -t [2001:db8::1]:80 -s rr
             ipvsadm -a -f 3 -r 10.0.0.20 -i
             ipvsadm -a -f 3 -r 10.0.0.3 -i
             ipvsadm -a -t 10.0.0.1:22 -r 10.0.0.5:22 -m
             ipvsadm -a -t 10.0.0.1:22 -r 10.0.0.5:21 -m",
        );
        let state = testbed::block_on(async {
            let client = Client::connect().await.unwrap();
            kernel_state(&client).await
        });
        assert_eq!(save_text(&state), ipvsadm_save());
    }

    /// Info, timeouts, zeroing, flushing, and the sync daemon.
    fn info_config_zero_flush_and_daemons() {
        testbed::sh("ip link add sync0 type veth peer name sync1 && ip link set sync0 up");
        testbed::block_on(async {
            let client = Client::connect().await.unwrap();
            let info = client.info().await.unwrap();
            assert_eq!(info, Info { version: 0x010201, conn_tab_size: 4096 });
            let header = testbed::sh("ipvsadm -L -n | head -1");
            assert_eq!(
                header,
                format!(
                    "IP Virtual Server version {} (size={})\n",
                    info.version_text(),
                    info.conn_tab_size
                )
            );

            assert_eq!(
                client.timeouts().await.unwrap(),
                Timeouts { tcp: 900, tcp_fin: 120, udp: 300 }
            );
            let set = Timeouts { tcp: 1000, tcp_fin: 0, udp: 77 };
            client.execute(Op::SetTimeouts(set)).await.unwrap();
            let now = Timeouts { tcp: 1000, tcp_fin: 120, udp: 77 };
            assert_eq!(client.timeouts().await.unwrap(), now);
            assert_eq!(
                testbed::sh("ipvsadm -L -n --timeout"),
                "Timeout (tcp tcpfin udp): 1000 120 77\n"
            );

            apply_ok(&client, &[
                Op::AddService(Service::new(fwm(1), "rr")),
                Op::Zero(Some(fwm(1))),
                Op::Zero(None),
            ]).await;
            assert!(matches!(
                client.execute(Op::Zero(Some(fwm(2)))).await,
                Err(Error::ServiceNotFound { .. })
            ));
            client.execute(Op::Flush).await.unwrap();
            assert!(client.services().await.unwrap().is_empty());

            assert!(client.daemons().await.unwrap().is_empty());
            let daemon = SyncDaemon {
                state: DaemonState::Backup,
                mcast_ifn: "sync0".into(),
                sync_id: 9,
                sync_maxlen: 0,
                mcast_group: None,
                mcast_port: 0,
                mcast_ttl: 0,
            };
            client.execute(Op::StartDaemon(daemon.clone())).await.unwrap();
            let running = client.daemons().await.unwrap();
            assert_eq!(running.len(), 1);
            assert_eq!(
                (running[0].state, running[0].mcast_ifn.as_str(), running[0].sync_id),
                (DaemonState::Backup, "sync0", 9)
            );
            assert!(matches!(
                client.execute(Op::StartDaemon(daemon)).await,
                Err(Error::Exists { .. })
            ));
            client.execute(Op::StopDaemon(DaemonState::Backup)).await.unwrap();
            let stop_again = client.execute(Op::StopDaemon(DaemonState::Backup)).await;
            assert!(matches!(stop_again, Err(Error::DaemonNotRunning { .. })), "{stop_again:?}");
        });
    }

    /// Every kernel error comes back typed, naming the operation.
    fn kernel_errors_are_typed_and_name_the_operation() {
        testbed::block_on(async {
            let client = Client::connect().await.unwrap();
            let fw = Service::new(fwm(7), "wlc");
            let d = dest("10.0.0.1", 0, IPIP, 1);
            apply_ok(&client, &[
                Op::AddService(fw.clone()),
                Op::AddDest { service: fw.key, dest: d.clone() },
            ]).await;
            let missing = fwm(8);

            let cases: Vec<ErrorCase> = vec![
                (Op::AddService(fw.clone()), |e| matches!(e, Error::Exists { .. }),
                 "adding service FWM 7: service already exists"),
                (Op::EditService(Service::new(missing, "wlc")),
                 |e| matches!(e, Error::ServiceNotFound { .. }),
                 "editing service FWM 8: no such service"),
                (Op::DelService(missing), |e| matches!(e, Error::ServiceNotFound { .. }),
                 "deleting service FWM 8: no such service"),
                (Op::AddDest { service: missing, dest: d.clone() },
                 |e| matches!(e, Error::ServiceNotFound { .. }),
                 "adding destination 10.0.0.1:0 to FWM 8: no such service"),
                (Op::AddDest { service: fw.key, dest: d.clone() },
                 |e| matches!(e, Error::Exists { .. }),
                 "adding destination 10.0.0.1:0 to FWM 7: destination already exists"),
                (Op::EditDest { service: fw.key, dest: dest("10.0.0.9", 0, IPIP, 1) },
                 |e| matches!(e, Error::DestNotFound { .. }),
                 "editing destination 10.0.0.9:0 of FWM 7: no such destination"),
                (Op::DelDest { service: fw.key, addr: ip("10.0.0.9"), port: 0 },
                 |e| matches!(e, Error::DestNotFound { .. }),
                 "deleting destination 10.0.0.9:0 from FWM 7: no such destination"),
                (Op::AddService(Service::new(fwm(9), "nosuchsched")),
                 |e| matches!(e, Error::SchedulerNotFound { .. }),
                 "adding service FWM 9: scheduler or persistence engine not found"),
                (Op::AddDest { service: fw.key, dest: dest("10.0.0.2", 0, gue(0, TunnelFlags::NOCSUM), 1) },
                 |e| matches!(e, Error::Invalid { .. }),
                 "adding destination 10.0.0.2:0 to FWM 7: invalid destination"),
                (Op::AddDest { service: fw.key, dest: dest("224.0.0.1", 0, IPIP, 1) },
                 |e| matches!(e, Error::Invalid { .. }),
                 "adding destination 224.0.0.1:0 to FWM 7: invalid destination"),
                (Op::AddDest { service: fw.key, dest: dest("2001:db8::1", 0, ForwardMethod::DirectRoute, 1) },
                 |e| matches!(e, Error::Invalid { .. }),
                 "adding destination [2001:db8::1]:0 to FWM 7: invalid destination"),
                (Op::EditDest { service: fw.key, dest: Dest { lower_threshold: 10, upper_threshold: 5, ..d.clone() } },
                 |e| matches!(e, Error::Range { .. }),
                 "editing destination 10.0.0.1:0 of FWM 7: value out of range"),
                (Op::EditDest { service: fw.key, dest: Dest { weight: 0x8000_0000, ..d.clone() } },
                 |e| matches!(e, Error::Range { .. }),
                 "editing destination 10.0.0.1:0 of FWM 7: value out of range"),
            ];
            let ops: Vec<Op> = cases.iter().map(|c| c.0.clone()).collect();
            // All in one batch: each error must land on its own op.
            let results = client.apply(&ops).await;
            for ((op, is_right, text), result) in cases.iter().zip(&results) {
                let err = result.as_ref().expect_err(&format!("{op} succeeded"));
                assert!(is_right(err), "{op}: wrong error {err:?}");
                assert_eq!(err.operation(), &Operation::Apply(op.clone()));
                assert!(err.to_string().starts_with(text), "{err}");
            }
            // And one at a time, the same.
            for (op, is_right, _) in &cases {
                let err = client.execute(op.clone()).await.unwrap_err();
                assert!(is_right(&err), "{op}: wrong error {err:?}");
            }
            // Queries: a missing service.
            assert!(matches!(
                client.service(&missing).await,
                Err(Error::ServiceNotFound { .. })
            ));
            assert!(client.dests(&missing).await.unwrap().is_empty());
            // Nothing above changed the state.
            assert_eq!(kernel_state(&client).await, vec![(fw, vec![d])]);
        });
    }

    /// Without CAP_NET_ADMIN every IPVS command is refused with EPERM.
    fn without_cap_net_admin_operations_are_refused() {
        let op = Op::AddService(Service::new(fwm(7), "wlc"));
        let unprivileged = op.clone();
        let (apply, list) = std::thread::spawn(move || {
            drop_cap_net_admin_in_this_thread();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    // Resolving the family needs no privilege; IPVS commands do.
                    let client = Client::connect().await.unwrap();
                    (client.execute(unprivileged).await, client.services().await)
                })
        })
        .join()
        .unwrap();
        let err = apply.unwrap_err();
        assert!(matches!(err, Error::Permission { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "adding service FWM 7: permission denied (you must be root / need CAP_NET_ADMIN)"
        );
        assert!(matches!(list, Err(Error::Permission { .. })), "{list:?}");
        // The same op from this (privileged) thread works: it was the capability.
        testbed::block_on(async {
            Client::connect().await.unwrap().execute(op).await.unwrap();
        });
        assert_eq!(ipvsadm_save(), "-A -f 7 -s wlc\n");
    }

    /// One batch of 11,000 ops builds 1,000 services × 10 destinations, and a dump reads
    /// all of it back.
    fn a_thousand_services_of_ten_dests_in_one_batch() {
        let mut expected = Vec::new();
        let mut ops = Vec::new();
        for mark in 1..=1000u32 {
            let svc = Service::new(fwm(mark), "wrr");
            ops.push(Op::AddService(svc.clone()));
            let mut dests = Vec::new();
            for i in 1..=10u32 {
                let d = dest(&format!("10.0.{}.{i}", mark % 250), 0, IPIP, mark * 10 + i);
                ops.push(Op::AddDest { service: svc.key, dest: d.clone() });
                dests.push(d);
            }
            expected.push((svc, dests));
        }
        let expected = sorted(expected);
        testbed::block_on(async {
            let client = Client::connect().await.unwrap();
            let results = client.apply(&ops).await;
            assert_eq!(results.len(), 11_000);
            let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
            assert!(failed.is_empty(), "{} failed, first: {:?}", failed.len(), failed.first());
            assert_eq!(client.services().await.unwrap().len(), 1000);
            assert_eq!(kernel_state(&client).await, expected);
        });
        let save = ipvsadm_save();
        assert_eq!(save.lines().count(), 11_000);
        assert_eq!(save, save_text(&expected));
    }

    /// What bigbro sends for each op is byte for byte what ipvsadm sends for the same
    /// command (strace on the real ipvsadm), beyond the handful of captured messages.
    fn requests_equal_ipvsadms_for_every_command() {
        testbed::sh("ip link add sync0 type veth peer name sync1 && ip link set sync0 up");
        let svc = |k: ServiceKey, sched: &str| Service::new(k, sched);
        let mut v6p = persistent(svc(fwm6(8), "wrr"), 300, 64);
        v6p.scheduler = "wrr".into();
        let mut sip = persistent(svc(key(Protocol::Udp, "10.0.0.1", 5060), "rr"), 60, 0xffff_ffff);
        sip.pe_name = Some("sip".into());
        sip.flags = sip.flags.with(ServiceFlags::ONEPACKET);
        let mut bounded = dest("10.0.0.4", 8080, ForwardMethod::Masquerade, 5);
        bounded.upper_threshold = 100;
        bounded.lower_threshold = 10;
        let cases: Vec<(&str, Op)> = vec![
            ("-A -f 7 -s wlc", Op::AddService(svc(fwm(7), "wlc"))),
            ("-A -f 8 -6 -s wrr -p 300 -M 64", Op::AddService(v6p)),
            ("-A -t 10.0.0.100:80 -s rr -p 60 -M 255.255.255.0", Op::AddService(
                persistent(svc(key(Protocol::Tcp, "10.0.0.100", 80), "rr"), 60, 0xffff_ff00))),
            ("-A -u [2001:db8::1]:53 -s sh -b sh-fallback,sh-port", Op::AddService(with_flags(
                svc(key(Protocol::Udp, "2001:db8::1", 53), "sh"),
                ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT))),
            ("-A -u 10.0.0.1:5060 -s rr -p 60 --pe sip -o", Op::AddService(sip)),
            ("-A --sctp-service 10.0.0.1:9 -s lc",
             Op::AddService(svc(key(Protocol::Sctp, "10.0.0.1", 9), "lc"))),
            ("-E -f 7 -s wrr", Op::EditService(svc(fwm(7), "wrr"))),
            ("-a -f 7 -r 10.0.0.2 -i -w 3 --tun-type gue --tun-port 6080 --tun-remcsum",
             Op::AddDest { service: fwm(7),
                           dest: dest("10.0.0.2", 0, gue(6080, TunnelFlags::REMCSUM), 3) }),
            ("-a -f 7 -r 10.0.0.3 -i --tun-type gre --tun-csum",
             Op::AddDest { service: fwm(7), dest: dest("10.0.0.3", 0, gre(TunnelFlags::CSUM), 1) }),
            ("-a -t 10.0.0.100:80 -r 10.0.0.4:8080 -m -w 5 -x 100 -y 10",
             Op::AddDest { service: key(Protocol::Tcp, "10.0.0.100", 80), dest: bounded }),
            ("-a -f 8 -6 -r 2001:db8::9 -i",
             Op::AddDest { service: fwm6(8), dest: dest("2001:db8::9", 0, IPIP, 1) }),
            ("-e -f 7 -r 10.0.0.2 -i -w 9 --tun-type gue --tun-port 6080 --tun-csum",
             Op::EditDest { service: fwm(7),
                            dest: dest("10.0.0.2", 0, gue(6080, TunnelFlags::CSUM), 9) }),
            ("-d -f 7 -r 10.0.0.3", Op::DelDest { service: fwm(7), addr: ip("10.0.0.3"), port: 0 }),
            ("-d -t 10.0.0.100:80 -r 10.0.0.4:8080", Op::DelDest {
                service: key(Protocol::Tcp, "10.0.0.100", 80), addr: ip("10.0.0.4"), port: 8080 }),
            ("-d -f 8 -6 -r 2001:db8::9", Op::DelDest {
                service: fwm6(8), addr: ip("2001:db8::9"), port: 0 }),
            ("-D -t 10.0.0.100:80", Op::DelService(key(Protocol::Tcp, "10.0.0.100", 80))),
            ("-Z -f 7", Op::Zero(Some(fwm(7)))),
            ("-Z", Op::Zero(None)),
            ("--set 1000 0 77", Op::SetTimeouts(Timeouts { tcp: 1000, tcp_fin: 0, udp: 77 })),
            ("--start-daemon backup --mcast-interface sync0 --syncid 9",
             Op::StartDaemon(SyncDaemon { state: DaemonState::Backup, mcast_ifn: "sync0".into(),
                 sync_id: 9, sync_maxlen: 0, mcast_group: None, mcast_port: 0, mcast_ttl: 0 })),
            ("--stop-daemon backup", Op::StopDaemon(DaemonState::Backup)),
            ("-C", Op::Flush),
        ];
        let family = testbed::block_on(async { Client::connect().await.unwrap().family_id().await });
        let mut mismatches = Vec::new();
        for (args, op) in &cases {
            let sent = ipvsadm_requests(args, family);
            let mine = op.message().encode(family, bigbro::ipvs::message::FLAGS_DO, 0, 0);
            let expected = ("NLM_F_REQUEST|NLM_F_ACK".to_string(), mine[16..].to_vec());
            if sent != vec![expected.clone()] {
                mismatches.push(format!(
                    "ipvsadm {args}\n  ipvsadm: {sent:02x?}\n  bigbro:  {expected:02x?}"
                ));
            }
        }
        // Reads: a listing dumps the services, then each service's destinations; a
        // listing of one service asks for it alone (it is gone by now: -C above).
        testbed::sh("ipvsadm -A -f 7 -s wlc && ipvsadm -a -f 7 -r 10.0.0.1 -i");
        let dump = "NLM_F_REQUEST|NLM_F_ACK|0x300".to_string(); // strace: NLM_F_DUMP
        let genl = |m: bigbro::ipvs::message::IpvsMessage| m.encode(family, 0, 0, 0)[16..].to_vec();
        use bigbro::ipvs::message::IpvsMessage;
        let reads: Vec<(&str, Vec<Request>)> = vec![
            ("-L -n", vec![
                (dump.clone(), genl(IpvsMessage::dump_services())),
                (dump.clone(), genl(IpvsMessage::dump_dests(&fwm(7)))),
            ]),
            ("-L -n -f 7", vec![
                ("NLM_F_REQUEST|NLM_F_ACK".to_string(), genl(IpvsMessage::get_service(&fwm(7)))),
                (dump.clone(), genl(IpvsMessage::dump_dests(&fwm(7)))),
            ]),
        ];
        for (args, expected) in reads {
            let sent = ipvsadm_requests(args, family);
            if sent != expected {
                mismatches.push(format!(
                    "ipvsadm {args}\n  ipvsadm: {sent:02x?}\n  bigbro:  {expected:02x?}"
                ));
            }
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    }

    /// In a batch, a bad op fails alone, reported against exactly that op; the ops
    /// around it take effect.
    fn a_batch_reports_exactly_the_bad_op() {
        let svc = Service::new(fwm(7), "wrr");
        let ops = vec![
            Op::AddService(svc.clone()),
            Op::AddDest { service: svc.key, dest: dest("10.0.0.1", 0, IPIP, 1) },
            Op::AddDest { service: fwm(99), dest: dest("10.0.0.2", 0, IPIP, 1) },
            Op::AddDest { service: svc.key, dest: dest("10.0.0.3", 0, IPIP, 1) },
        ];
        testbed::block_on(async {
            let client = Client::connect().await.unwrap();
            let results = client.apply(&ops).await;
            assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok(), "{results:?}");
            let err = results[2].as_ref().unwrap_err();
            assert!(matches!(err, Error::ServiceNotFound { .. }), "{err:?}");
            assert_eq!(err.operation(), &Operation::Apply(ops[2].clone()));
            assert_eq!(
                err.to_string(),
                "adding destination 10.0.0.2:0 to FWM 99: no such service"
            );
        });
        assert_eq!(
            ipvsadm_save(),
            "-A -f 7 -s wrr\n\
             -a -f 7 -r 10.0.0.1:0 -i -w 1 --tun-type ipip\n\
             -a -f 7 -r 10.0.0.3:0 -i -w 1 --tun-type ipip\n"
        );
    }
}

/// One netlink request as strace shows it: flags, and genl header + attributes.
type Request = (String, Vec<u8>);

/// The IPVS requests ipvsadm sent while running `args` (under strace), as
/// `(netlink flags, genl header + attributes)`, GET_INFO left out.
fn ipvsadm_requests(args: &str, family: u16) -> Vec<Request> {
    testbed::sh(&format!(
        "strace -f -e trace=sendmsg -xx -s 65536 -o /tmp/ipvsadm.trace ipvsadm {args}"
    ));
    let trace = std::fs::read_to_string("/tmp/ipvsadm.trace").unwrap();
    // strace names the family when it knows it, else prints its number.
    let markers = [
        "nlmsg_type=IPVS,".to_string(),
        format!("nlmsg_type={family:#x} "),
    ];
    let mut out = Vec::new();
    for line in trace
        .lines()
        .filter(|l| markers.iter().any(|m| l.contains(m.as_str())))
    {
        let flags = line
            .split("nlmsg_flags=")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap()
            .to_string();
        let quoted = line.split("}, \"").nth(1).unwrap();
        let hex = quoted.split('"').next().unwrap();
        let bytes: Vec<u8> = hex
            .split("\\x")
            .filter(|h| !h.is_empty())
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        if bytes.first() != Some(&15) {
            out.push((flags, bytes)); // 15 = IPVS_CMD_GET_INFO, sent before every command
        }
    }
    out
}

/// An op that must fail, how to recognise its error, and how the message starts.
type ErrorCase = (Op, fn(&Error) -> bool, &'static str);

/// Clears CAP_NET_ADMIN from the effective set of the calling thread only (capabilities
/// are per thread; `capset` without glibc's set*id broadcast touches just this one).
fn drop_cap_net_admin_in_this_thread() {
    use nix::libc;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_ADMIN: u32 = 12;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset with a version-3 header read and write exactly two `Data`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !(1 << CAP_NET_ADMIN);
    // SAFETY: as above.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}
