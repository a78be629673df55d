//! The kernel test bed's own tests: a guest test starts in a fresh network namespace, `sh`
//! and `sh_status` report what commands did, the data-plane fixtures behave as documented,
//! and the host reports guest failures and hung guest tests as failures of the right
//! tests, with the guest's output. Time limits: a test's own `#[time_limit(secs = N)]`
//! reaches the guest runner (the body reads it back), lets the test outlive the binary's
//! limit without the guest or the host's watchdog ending it, and is enforced when it is
//! shorter (checked in the misbehaving run, where the binary's limit is 6 s and the host's
//! slack 4 s, so that no selftest waits anywhere near 120 s).

use crate::testbed;

use std::process::Command;
use std::time::{Duration, Instant};

use testbed::dataplane::{http_get, DataPlane, Health, SERVICE_PORT};
use testbed::kernel_test;

/// Set for a second run of this binary in which the `deliberately_*` tests misbehave.
const MISBEHAVE: &str = "BIGBRO_TESTBED_SELFTEST_MISBEHAVE";

/// The misbehaving run's limit for tests that declare none (BIGBRO_TESTBED_TIMEOUT) and its
/// host slack (BIGBRO_TESTBED_SLACK): a guest test still running after 10 s there is
/// killed, by the guest at 6 s or by the host's watchdog at 10 s, unless its own limit says
/// otherwise.
const MISBEHAVING_LIMIT: u64 = 6;
const MISBEHAVING_SLACK: u64 = 4;
/// How long `deliberately_outliving_the_binary_limit_when_asked` runs when misbehaving:
/// past both of the above.
const OUTLIVE: Duration = Duration::from_secs(MISBEHAVING_LIMIT + MISBEHAVING_SLACK + 2);

kernel_test! {
    fn guest_test_starts_in_fresh_namespace_with_lo_up() {
        let ours = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let init = std::fs::read_link("/proc/1/ns/net").unwrap();
        assert_ne!(ours, init, "the test body runs in the guest's initial network namespace");

        let links = testbed::sh("ip -o link show");
        let names: Vec<&str> = links
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n))
            .collect();
        // tunl0 is created in every namespace once the ipip module is loaded.
        assert_eq!(names, ["lo", "tunl0"], "{links}");
        assert!(links.lines().next().unwrap().contains("UP"), "lo is not up: {links}");
        assert_eq!(testbed::sh("ip -4 addr show lo | grep -c 127.0.0.1"), "1\n");
    }

    fn sh_and_sh_status_report_status_and_output() {
        assert_eq!(testbed::sh("echo hello"), "hello\n");
        assert_eq!(
            testbed::sh_status("echo out; echo err >&2; exit 3"),
            (3, "out\n".to_string(), "err\n".to_string())
        );
        assert_eq!(testbed::sh_status("kill -9 $$").0, 128 + 9);
        let failed = std::panic::catch_unwind(|| testbed::sh("echo why >&2; false"));
        let message = *failed.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("exit status 1") && message.contains("why"), "{message}");
    }

    fn tests_may_return_results() -> Result<(), std::io::Error> {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
        assert!(release.starts_with("6.1."), "{release}");
        Ok(())
    }

    fn block_on_runs_tokio_in_the_test_namespace() {
        let ours = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let (theirs, echoed) = testbed::block_on(async {
            let theirs = tokio::spawn(async {
                std::fs::read_link("/proc/thread-self/ns/net").unwrap()
            })
            .await
            .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 5];
                tokio::io::AsyncReadExt::read_exact(&mut s, &mut buf).await.unwrap();
                buf
            });
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut c, b"hello").await.unwrap();
            (theirs, server.await.unwrap())
        });
        assert_eq!(ours, theirs);
        assert_eq!(&echoed, b"hello");
    }

    fn dataplane_health_answers_as_told_while_the_test_runs() {
        let plane = DataPlane::new(2);
        let rs1 = plane.server("rs1");
        let health = rs1.health_addr();
        let get = |path: &str| testbed::block_on(http_get(health, path)).unwrap();

        let r = get("/app/status");
        assert_eq!((r.status, r.header("X-Health")), (200, Some("100")));
        assert!(r.body.starts_with("Health: 100\n"), "{r:?}");

        rs1.set_health(Health::litmus(42).without_header());
        let r = get("/app/status");
        assert_eq!((r.status, r.header("X-Health")), (200, None));
        assert!(r.body.starts_with("Health: 42\n"), "{r:?}");

        rs1.set_health(Health::down());
        let r = get("/other");
        assert_eq!((r.status, r.header("X-Health"), r.body.as_str()), (503, Some("0"), "Health: 0\nMeasured Health: 0\n"));

        rs1.set_health(Health::litmus(5).with_status(500).with_header("61").with_body("oops"));
        let r = get("/");
        assert_eq!((r.status, r.header("X-Health"), r.body.as_str()), (500, Some("61"), "oops"));

        rs1.set_health(Health::litmus(9).with_delay(Duration::from_millis(400)));
        let started = Instant::now();
        assert_eq!(get("/").status, 200);
        assert!(started.elapsed() >= Duration::from_millis(400));

        // A hanging endpoint answers nothing until the test changes its health.
        rs1.set_health(Health::litmus(7).hanging());
        testbed::block_on(async {
            let mut pending = tokio::spawn(http_get(health, "/hang"));
            let early = tokio::time::timeout(Duration::from_millis(500), &mut pending).await;
            assert!(early.is_err(), "a hanging health endpoint answered: {early:?}");
            rs1.set_health(Health::litmus(7));
            let r = pending.await.unwrap().unwrap();
            assert_eq!((r.status, r.header("X-Health")), (200, Some("7")));
        });
        assert_eq!(
            rs1.health_requests(),
            ["/app/status", "/app/status", "/other", "/", "/", "/hang"]
        );
        // rs2 is independent.
        assert_eq!(plane.server("rs2").health_requests(), Vec::<String>::new());
        let r = testbed::block_on(http_get(plane.server("rs2").health_addr(), "/x")).unwrap();
        assert_eq!(r.header("X-Health"), Some("100"));

        // The client reaches each real server's own address through the director, and the
        // service port answers with the server's name.
        for rs in plane.servers() {
            let direct = std::net::SocketAddr::from((rs.addr(), SERVICE_PORT));
            let r = plane.client().get(direct, "/").unwrap();
            assert_eq!((r.status, r.body.as_str()), (200, format!("{}\n", rs.name()).as_str()));
            assert_eq!(rs.service_requests(), 1);
        }
        // Each real server carries the VIP on tunl0, with the IPIP sysctls.
        assert!(rs1.sh("ip -4 -o addr show dev tunl0").contains(&format!("{}/32", plane.vip())));
        assert_eq!(rs1.sh("cat /proc/sys/net/ipv4/conf/all/arp_ignore /proc/sys/net/ipv4/conf/all/arp_announce /proc/sys/net/ipv4/conf/tunl0/rp_filter"), "1\n2\n0\n");
    }

    fn dataplane_namespaces_go_away_when_dropped() {
        let names: Vec<String> = {
            let plane = DataPlane::new(3);
            let mut names: Vec<String> =
                plane.servers().iter().map(|s| s.netns().to_string()).collect();
            names.push(plane.client().netns().to_string());
            let listed = testbed::sh("ip netns list");
            for name in &names {
                assert!(listed.contains(name.as_str()), "{name} not in {listed}");
            }
            names
        };
        let listed = testbed::sh("ip netns list");
        for name in &names {
            assert!(!listed.contains(name.as_str()), "{name} still in {listed}");
        }
        // The director's ends of the veth pairs went with their peers.
        let links = testbed::sh("ip -o link show");
        for link in ["cl0:", "rs1:", "rs2:", "rs3:"] {
            assert!(!links.contains(link), "{link} left in {links}");
        }
        // So a second data plane can reuse the names at once.
        let again = DataPlane::new(1);
        assert_eq!(again.server("rs1").sh("echo hi"), "hi\n");
    }

    fn kernel_loads_modules_on_demand_and_modprobe_loads_the_rest() {
        // Not loaded at boot: the kernel asks the first stage's modprobe for them.
        testbed::sh("ipvsadm -A -f 3 -s sh");
        assert!(testbed::sh("cat /proc/modules").contains("ip_vs_sh "));
        testbed::sh("nft add table ip t && nft 'add chain ip t post { type nat hook postrouting priority 100; }'");
        assert!(testbed::sh("cat /proc/modules").contains("nft_chain_nat "));
        // Never loaded on demand: testbed::modprobe.
        assert!(!testbed::sh("cat /proc/modules").contains("ip_vs_ftp "));
        testbed::modprobe("ip_vs_ftp");
        assert!(testbed::sh("cat /proc/modules").contains("ip_vs_ftp "));
    }

    fn deliberately_failing_when_asked() {
        if std::env::var_os(MISBEHAVE).is_some() {
            panic!("deliberate failure inside the guest");
        }
    }

    fn deliberately_returning_an_error_when_asked() -> Result<(), String> {
        match std::env::var_os(MISBEHAVE) {
            Some(_) => Err("deliberate error inside the guest".into()),
            None => Ok(()),
        }
    }

    fn a_test_without_a_limit_gets_the_binary_default() {
        let default = std::env::var("BIGBRO_TESTBED_TIMEOUT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(120);
        assert_eq!(testbed::time_limit(), Duration::from_secs(default));
    }

    #[time_limit(secs = 60)]
    /// Declares 60 s: when misbehaving it outlives the binary's 6 s and the host's 6 + 4 s,
    /// and passes.
    fn deliberately_outliving_the_binary_limit_when_asked() {
        assert_eq!(testbed::time_limit(), Duration::from_secs(60));
        if std::env::var_os(MISBEHAVE).is_some() {
            std::thread::sleep(OUTLIVE);
            println!("outlived the binary's limit");
        }
    }

    #[time_limit(secs = 5)]
    /// Declares 5 s, less than any binary limit here: when misbehaving it hangs and must be
    /// ended after 5 s.
    fn deliberately_hanging_past_its_own_limit_when_asked() {
        assert_eq!(testbed::time_limit(), Duration::from_secs(5));
        if std::env::var_os(MISBEHAVE).is_some() {
            println!("about to hang past my own limit");
            // The hang under test: its own time limit must end it.
            std::thread::sleep(Duration::from_secs(3600));
        }
    }

    fn deliberately_hanging_when_asked() {
        if std::env::var_os(MISBEHAVE).is_some() {
            println!("about to hang");
            // The hang under test: the guest's time limit must end it.
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// Runs the `deliberately_*` kernel tests again, misbehaving, in a VM of their own with a
/// 6 s default time limit and a 4 s host slack, and checks the host reports the four that
/// fail as failed, with the guest's words (the two hangs as timed out after their own
/// limits), and the one whose own 60 s limit lets it outlive the binary's as passed.
#[test]
fn host_reports_guest_failures_and_hangs() {
    if !testbed::host_ready("host_reports_guest_failures_and_hangs") {
        return;
    }
    let run = Command::new(std::env::current_exe().unwrap())
        .args(["deliberately_", "--test-threads=2", "--show-output"])
        .env(MISBEHAVE, "1")
        .env("BIGBRO_TESTBED_TIMEOUT", MISBEHAVING_LIMIT.to_string())
        .env("BIGBRO_TESTBED_SLACK", MISBEHAVING_SLACK.to_string())
        .env("RUST_BACKTRACE", "0") // symbolizing is slow under TCG
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let all = format!("{stdout}\n{stderr}");
    assert!(!run.status.success(), "{all}");
    for expected in [
        "test testbed_selftest::deliberately_failing_when_asked ... FAILED",
        "test testbed_selftest::deliberately_hanging_when_asked ... FAILED",
        "test testbed_selftest::deliberately_returning_an_error_when_asked ... FAILED",
        "\"deliberate error inside the guest\"",
        "deliberate failure inside the guest",
        "about to hang",
        "timed out after 6s",
        "test testbed_selftest::deliberately_hanging_past_its_own_limit_when_asked ... FAILED",
        "about to hang past my own limit",
        "timed out after 5s",
        "test testbed_selftest::deliberately_outliving_the_binary_limit_when_asked ... ok",
        "outlived the binary's limit",
        "test result: FAILED. 1 passed; 4 failed",
        "testbed: 5 kernel test(s) ran in the guest",
        "testbed: guest kernel ",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
}
