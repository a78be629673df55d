//! The kernel test bed's smoke test: the guest has IPVS; the real ipvsadm builds
//! a fwmark service with two IPIP real servers; an nft mark rule on the VIP, installed
//! with the real `nft -f`, is what delivers the VIP's packets to it; and 40 requests
//! through the data plane all succeed, split 3:1 by weight. Plus isolation: what one
//! kernel test leaves in the kernel is absent from the next.

use crate::testbed;

use testbed::dataplane::{DataPlane, SERVICE_PORT, VIP};
use testbed::{kernel_test, sh};

/// Where the isolation tests leave word that the first one ran.
const ISOLATION_MARKER: &str = "/tmp/bigbro-isolation-marker";

kernel_test! {
    fn smoke_fwmark_ipip_service_behind_nft_mark_splits_by_weight() {
        assert!(std::path::Path::new("/proc/net/ip_vs").exists(), "no IPVS in the guest");
        let plane = DataPlane::new(2);
        let (rs1, rs2) = (&plane.servers()[0], &plane.servers()[1]);
        let vip = plane.vip_addr(SERVICE_PORT);

        // The real ipvsadm is the oracle: an FWM 7 wrr service, two IPIP real servers.
        sh("ipvsadm -A -f 7 -s wrr");
        sh(&format!("ipvsadm -a -f 7 -r {} -i -w 3", rs1.addr()));
        sh(&format!("ipvsadm -a -f 7 -r {} -i -w 1", rs2.addr()));
        assert_eq!(
            sh("ipvsadm -S -n"),
            format!(
                "-A -f 7 -s wrr\n\
                 -a -f 7 -r {}:0 -i -w 3 --tun-type ipip\n\
                 -a -f 7 -r {}:0 -i -w 1 --tun-type ipip\n",
                rs1.addr(),
                rs2.addr()
            )
        );
        plane.route_fwmark_locally(7);

        // Without the mark the director has no route to the VIP: the request fails.
        let unmarked = plane.client().get(vip, "/");
        assert!(unmarked.is_err(), "reached the VIP without a mark rule: {unmarked:?}");

        sh(&format!(
            "nft -f - <<'EOF'
table ip bigbro_smoke {{
    chain prerouting {{
        type filter hook prerouting priority mangle; policy accept;
        ip daddr {VIP} tcp dport {SERVICE_PORT} counter meta mark set 0x00000007
    }}
}}
EOF"
        ));
        let rule = sh("nft list chain ip bigbro_smoke prerouting");
        assert!(
            rule.contains(&format!("ip daddr {VIP} tcp dport {SERVICE_PORT}"))
                && rule.contains("meta mark set 0x00000007"),
            "{rule}"
        );

        let tally = plane.client().tally(vip, 40);
        assert!(tally.failures.is_empty(), "failed requests: {:#?}", tally.failures);
        // Tolerance 0: wrr is deterministic. With weights 3 and 1 it repeats the cycle
        // rs1 rs1 rs1 rs2 whatever its starting point, each request is one new connection
        // scheduled exactly once, and 40 requests are exactly 10 cycles.
        assert_eq!((tally.count("rs1"), tally.count("rs2")), (30, 10), "{tally:?}");
        assert_eq!((rs1.service_requests(), rs2.service_requests()), (30, 10));

        // The mark rule saw every packet to the VIP (at least SYN, request, ACK of the
        // answer per connection).
        let counted = sh("nft list chain ip bigbro_smoke prerouting");
        let packets: u64 = counted
            .split("counter packets ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no counter in {counted}"));
        assert!(packets >= 40 * 3, "only {packets} packets marked for 40 connections");
        // IPVS's connection table (not its stats: those are summed by the estimator, up to
        // 2 s late) holds the 40 connections, each to the real server that answered.
        let connections = sh("ipvsadm -L -n -c");
        let to = |rs: &testbed::dataplane::RealServer| {
            connections
                .lines()
                .filter(|l| l.split_whitespace().nth(5) == Some(&format!("{}:{SERVICE_PORT}", rs.addr())))
                .count()
        };
        assert_eq!((to(rs1), to(rs2)), (30, 10), "{connections}");
    }

    fn isolation_1_leaves_state_behind() {
        sh("ipvsadm -A -f 9 -s rr && ipvsadm -a -f 9 -r 127.0.0.1 -g -w 1");
        sh("nft add table ip leftover && nft add chain ip leftover c");
        sh("ip link add leftover0 type dummy && ip link set leftover0 up");
        sh("ip addr add 192.0.2.99/32 dev leftover0");
        sh("ip rule add fwmark 9 lookup 109");
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").unwrap();
        assert!(sh("ipvsadm -S -n").contains("-A -f 9 -s rr"));
        assert!(sh("nft list tables").contains("leftover"));
        std::fs::write(ISOLATION_MARKER, "state left behind\n").unwrap();
    }

    fn isolation_2_finds_none_of_it() {
        let first_ran = testbed::session_tests()
            .iter()
            .any(|t| t.rsplit("::").next() == Some("isolation_1_leaves_state_behind"));
        // The marker proves isolation_1 ran earlier in this same VM (same kernel, same
        // /tmp), so everything it made would still be there if namespaces leaked.
        let marker = std::path::Path::new(ISOLATION_MARKER).exists();
        if first_ran {
            assert!(marker, "isolation_1 ran first but left no marker");
        } else {
            eprintln!("isolation_1 did not run in this VM; checking a clean start only");
        }
        assert_eq!(sh("ipvsadm -S -n"), "");
        assert_eq!(sh("nft list ruleset"), "");
        assert_eq!(sh("ip -o link show | grep -c leftover || true"), "0\n");
        assert_eq!(sh("ip -o addr show | grep -c 192.0.2.99 || true"), "0\n");
        assert!(!sh("ip rule show").contains("fwmark"), "{}", sh("ip rule show"));
        assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(), "0\n");
    }
}
